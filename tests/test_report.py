"""`fermixr report RUN`: one self-contained HTML page of a run -- the fit's numbers, the
source table, every figure inline, the products with their provenance -- that a headless
browser opens with no console error and every figure drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fermixr

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def run_dir(example_cli_run):
    """The session's run of the example recipe (the report adds report.html to it)."""
    return example_cli_run[0]


@pytest.fixture(scope="module")
def page(run_dir):
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", "report", str(run_dir)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert path == run_dir / "report.html"
    return path


def test_the_page_holds_the_runs_numbers(run_dir, page):
    text = page.read_text()
    run = fermixr.open_run(run_dir)
    fit = run["fit"].load()
    assert f"log L = {fit.attrs['loglike']:.3f}" in text
    for p, v in zip(fit["param"].values, fit["value"].values):
        assert re.search(rf"<td class='l'>{re.escape(str(p))}</td><td>{float(v):.6g}</td>", text)
    roi = run["roi"].load()
    for s, ts in zip(roi["source"].values, roi["ts"].values):
        if np.isfinite(ts):
            assert re.search(rf"<td class='l'>{re.escape(str(s))}</td>.*?<td>{ts:.1f}</td>",
                             text), s
    # every figure of the run folder inline, plus the counts figure made here; nothing
    # fetched from elsewhere
    pngs = sorted(p.name for p in run_dir.glob("*.png"))
    assert len(pngs) >= 2
    assert text.count('<img src="data:image/png;base64,') == len(pngs) + 1
    assert not re.search(r'(src|href)="(https?:|file:|/)', text)
    from fermixr.engine.run import list_run

    for row in list_run(run_dir):
        assert f"<td class='l'>{row['name']}</td><td class='l'>{row['step']}</td>" in text
    assert "No warnings" in text


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium)")
def test_a_headless_browser_shows_every_figure_without_errors(page, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright not installed (pip install playwright)")
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            tab = browser.new_page()
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(page.as_uri())
            total = tab.evaluate("document.images.length")
            drawn = tab.evaluate("Array.from(document.images).filter("
                                 "i => i.complete && i.naturalWidth > 100).length")
            headings = tab.evaluate("Array.from(document.querySelectorAll('h2'))"
                                    ".map(h => h.textContent)")
            tab.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert total >= 3 and drawn == total
    assert headings == ["Warnings", "Fit", "Sources", "Figures", "Products", "Recipe"]
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_a_folder_that_is_not_a_run_is_one_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", "report", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"fermixr: error: {str(tmp_path.resolve())!r} is not a fermixr run folder (no "
        "run.json); give the --outdir of a `fermixr run`"]
    assert list(tmp_path.iterdir()) == []
