"""End to end through the CLI on the built-in example: caching, recomputation of exactly
what changed, resumption after SIGKILL mid-write, and product contracts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

import fermixr
from fermixr.conventions import validate_product
from fermixr.engine.store import read_marker

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "quickstart.yaml"
VOLATILE_ATTRS = ("provenance", "fermixr_complete")


def _cli(*args, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", *map(str, args)], capture_output=True,
                       text=True, env=e, cwd=REPO)
    if check and r.returncode != 0:
        raise AssertionError(f"fermixr {' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr}")
    return r


def _recipe_copy(tmp_path, **changes) -> Path:
    """The example recipe with absolute data paths and some sections changed."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    for key in ("evfile", "scfile", "caldb", "ltcube"):
        if doc.get("data", {}).get(key):
            doc["data"][key] = str((EXAMPLE.parent / doc["data"][key]).resolve())
    for section, values in changes.items():
        if section == "steps":
            doc["steps"] = values
        else:
            doc.setdefault(section, {}).update(values)
    p = tmp_path / f"recipe-{len(list(tmp_path.glob('recipe-*')))}.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def _statuses(run_dir) -> dict:
    return {t["name"]: t["status"] for t in json.loads((Path(run_dir) / "run.json").read_text())["tasks"]}


def _ls(run_dir, recipe=None) -> dict:
    """State of every data product (analysis steps, listed after them, are left out)."""
    args = ["ls", run_dir] + (["--recipe", recipe] if recipe else [])
    out = _cli(*args).stdout.splitlines()[1:]
    return {line.split()[0]: line.split()[2] for line in out if "(analysis step)" not in line}


def _assert_same_products(a, b):
    ra, rb = fermixr.open_run(a), fermixr.open_run(b)
    assert sorted(ra) == sorted(rb)
    for name in ra:
        da, db = ra[name].load(), rb[name].load()
        for ds in (da, db):
            for k in VOLATILE_ATTRS:
                ds.attrs.pop(k, None)
        xr.testing.assert_identical(da, db)


def test_example_runs_validates_and_reruns_cached(example_cli_run):
    out, r1, first = example_cli_run          # `fermixr run EXAMPLE --outdir out`, once a session
    assert "computed" in r1.stderr
    assert set(first.values()) == {"computed"}, first
    r2 = _cli("run", EXAMPLE, "--outdir", out)
    assert set(_statuses(out).values()) == {"cached"}
    assert "0 computed" in r2.stderr
    steps = json.loads((out / "run.json").read_text())["analysis_steps"]
    assert {s["name"]: s["status"] for s in steps if s["name"] in ("optimize", "fit",
                                                                    "write_roi")} == \
        {"optimize": "cached", "fit": "cached", "write_roi": "cached"}
    for kind in ("spectrum", "map"):           # write_roi's make_plots: true
        assert (out / f"quickstart_roi_counts_{kind}.png").stat().st_size > 10_000
    run = fermixr.open_run(out)
    for name in run:
        ds = xr.open_zarr(run.path(name), consolidated=False)
        validate_product(ds)
    assert set(_ls(out).values()) == {"fresh"}
    # the run ends with the fit's result; `show fit` prints the same values, not placeholders
    fit = run["fit"].load()
    rows = {}
    for line in r2.stderr.splitlines():
        parts = line.split()
        if len(parts) == 5 and ":" in parts[0] and parts[0] in fit["param"].values:
            rows[parts[0]] = [float(x) for x in parts[1:]]
    assert sorted(rows) == sorted(str(n) for n in fit["param"].values)
    for n in rows:
        v, e = float(fit["value"].sel(param=n)), float(fit["error"].sel(param=n))
        assert rows[n][0] == pytest.approx(v, rel=1e-5)
        assert rows[n][1] == pytest.approx(e, rel=2e-3)
    assert f"quality {fit.attrs['fit_quality']} " in r2.stderr
    shown = _cli("show", out / "fit").stdout
    assert f"log L = {fit.attrs['loglike']:.3f}" in shown
    assert all(n in shown for n in rows)
    assert "values:" in _cli("show", out / "gti").stdout
    from fermixr._version import __version__
    assert _cli("--version").stdout.strip() == f"fermixr {__version__}"


def test_changing_the_last_step_recomputes_only_it(tmp_path):
    out = tmp_path / "run"
    rec1 = _recipe_copy(tmp_path, steps=["counts", "ltcube"])
    _cli("run", rec1, "--outdir", out)
    rec2 = _recipe_copy(tmp_path, steps=["counts", "ltcube"], ltcube={"dcostheta": 0.05})
    before = _ls(out, rec2)
    assert before == {"gti": "fresh", "events": "fresh", "counts": "fresh", "ltcube": "stale"}
    _cli("run", rec2, "--outdir", out)
    assert _statuses(out) == {"gti": "cached", "events": "cached", "counts": "cached",
                              "ltcube": "computed"}
    assert set(_ls(out, rec2).values()) == {"fresh"}
    lt = fermixr.open_run(out)["ltcube"]
    assert lt.sizes["costheta"] == 20


def test_sigkill_mid_write_then_resume_gives_identical_products(tmp_path, example_cli_run):
    clean = example_cli_run[0]                # an uninterrupted run of the example
    out = tmp_path / "killed"
    env = dict(os.environ, FERMIXR_DEBUG_PAUSE_BEFORE_COMMIT="60")
    proc = subprocess.Popen([sys.executable, "-m", "fermixr.cli", "run", str(EXAMPLE), "--outdir",
                             str(out)], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        pending = []
        while time.monotonic() < deadline and not pending:
            pending = [p for p in (out / ".store").glob(".tmp-*") if (p / "zarr.json").exists()]
            time.sleep(0.05)
        assert pending, "the run never reached a product write"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the half-written product is not a product: not linked, listed as interrupted (its
    # temporary directory is there), and everything that is linked is committed
    kinds = {p.name.split("-")[1] for p in pending}
    states = _ls(out)
    assert any(states[name] == "interrupted" for name in states
               if name.split("/")[0] in kinds), states
    run = fermixr.open_run(out)
    assert all(read_marker(run.path(n)) is not None for n in run)
    assert not (set(run) & {n for n in states if states[n] in ("missing", "interrupted")})
    _cli("run", EXAMPLE, "--outdir", out)
    assert not list((out / ".store").glob(".tmp-*"))
    _assert_same_products(clean, out)


@pytest.mark.slow     # 37 s; the many-regions test runs the example on a local:2 cluster too
def test_same_numbers_with_a_dask_cluster(tmp_path, example_cli_run):
    pytest.importorskip("distributed")
    a, b = example_cli_run[0], tmp_path / "cluster"     # a: the serial run
    _cli("run", EXAMPLE, "--outdir", b, "--scheduler", "local:2")
    _assert_same_products(a, b)


def test_validate_bad_recipe_exits_2_and_writes_nothing(tmp_path):
    rec = _recipe_copy(tmp_path, binning={"binsz": "big"})
    before = sorted(tmp_path.iterdir())
    r = _cli("validate", rec, check=False)
    assert r.returncode == 2
    assert "binning.binsz" in r.stderr and "number" in r.stderr and "'big'" in r.stderr
    r = _cli("run", rec, "--outdir", tmp_path / "out", check=False)
    assert r.returncode == 2 and "binning.binsz" in r.stderr
    assert sorted(tmp_path.iterdir()) == before
    np.testing.assert_equal(len(before), 1)
