"""Shared fixtures: the location of the LAT reference data in ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """``$FERMIXR_SHARED_DATA`` if set, else ``<repo>/../shared/data``; None if absent."""
    env = os.environ.get("FERMIXR_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(_REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "lat-crab-1day").is_dir() and (c / "caldb").is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip(
            "LAT reference data not found: set FERMIXR_SHARED_DATA or place shared/data "
            "beside the repository"
        )
    return d


@pytest.fixture(scope="session")
def crab_day(shared_data) -> Path:
    return shared_data / "lat-crab-1day"


@pytest.fixture(scope="session")
def caldb_dir(shared_data) -> Path:
    return shared_data / "caldb"


# ------------------------------------------------- expensive set-ups made once a session --
# Several modules start from the same set-up ROI or the same run of the example recipe: the
# work is done once a session here.  Analysis states are frozen, run folders are not (tests
# write into them): a test that writes into a session folder gets a copy of its own, except
# where the fixture says otherwise.

def _copy_run(src: Path, dest: Path) -> Path:
    """A copy of the run folder ``src`` at ``dest`` (the product links are relative, so the
    copy's ``products/`` point into the copy's own ``.store``)."""
    import shutil

    shutil.copytree(src, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def _roi_setups(tmp_path_factory):
    """mode -> the session's run folder of the conformance ROI (test_estimators_conformance's
    ``_doc``) after ``setup``; made on first use."""
    import warnings

    from fermixr import Analysis
    from test_estimators_conformance import _doc

    root = tmp_path_factory.mktemp("roi_setups")
    done: dict[str, Path] = {}

    def get(mode: str) -> Path:
        if mode not in done:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                done[mode] = Analysis(_doc(mode, root)).setup().outdir
        return done[mode]

    return get


@pytest.fixture(scope="session")
def roi_setup(_roi_setups):
    """``roi_setup(mode, root)``: an Analysis of its own on the conformance ROI in
    ``root/<mode>``, as ``Analysis(_doc(mode, root)).setup()`` gives it; the products are
    the session's (a copy of its run folder), so this setup finds every one in the store."""
    import warnings

    from fermixr import Analysis
    from test_estimators_conformance import _doc

    def make(mode: str, root: Path):
        doc = _doc(mode, Path(root))
        _copy_run(_roi_setups(mode), Path(doc["fileio"]["outdir"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Analysis(doc).setup()

    return make


@pytest.fixture(scope="session")
def _example_setup_dir(tmp_path_factory) -> Path:
    """The session's run folder of test_analysis's ``example_doc`` (the example recipe,
    absolute paths, no energy dispersion) after ``setup``."""
    import warnings

    from fermixr import Analysis
    from test_analysis import example_doc

    out = tmp_path_factory.mktemp("example_setup") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Analysis(example_doc(out)).setup()
    return out


@pytest.fixture(scope="session")
def example_setup(_example_setup_dir):
    """``example_setup(dest)``: a copy at ``dest`` of the session's run folder of the
    example recipe without energy dispersion after ``setup`` (its data products in the
    store, so that a setup or run of that recipe into ``dest`` finds them); returns dest."""
    return lambda dest: _copy_run(_example_setup_dir, Path(dest))


_EXAMPLE = _REPO / "examples" / "quickstart.yaml"


@pytest.fixture(scope="session")
def example_cli_run(tmp_path_factory):
    """``fermixr run examples/quickstart.yaml --outdir DIR`` once a session: (DIR, the
    completed process, the tasks' statuses in run.json right after that first run).
    Tests read DIR; two write into it: test_run_example reruns the example there (a
    cached rerun: the same products) and test_report adds report.html, which nothing else
    reads.  Any other test that writes there takes a copy.  (A copy is not the same run:
    its recorded files and fileio.workdir name the original folder, so write_roi runs
    again there and loading its recipe warns.)"""
    import json
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("example_cli_run") / "run"
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", "run", str(_EXAMPLE), "--outdir",
                        str(out)], capture_output=True, text=True, cwd=_REPO)
    assert r.returncode == 0, r.stderr
    statuses = {t["name"]: t["status"]
                for t in json.loads((out / "run.json").read_text())["tasks"]}
    return out, r, statuses


# ------------------------------------------------- the example run for the Gammapy tests --
@pytest.fixture(scope="session")
def syn_run(tmp_path_factory):
    """The example's data (examples/quickstart.yaml) on a small ROI with energy
    dispersion (one extra true-energy bin on each side), the synthetic Crab fitted; built
    once per session for tests/test_gammapy_export.py and tests/test_gammapy_roundtrip.py."""
    import yaml

    from fermixr.engine.run import run_recipe

    from test_analysis import example_recipe

    tmp = tmp_path_factory.mktemp("gpx")
    doc = example_recipe()
    doc["model"]["src_roiwidth"] = 8.0
    doc["binning"].update(roiwidth=5.0, binsz=0.25, binsperdec=4)
    doc["gtlike"].update(edisp=True, edisp_bins=1)
    doc["ltcube"].update(binsz=2.0, dcostheta=0.05)
    doc["steps"] = ["setup", {"free_source": {"name": "SYN_CRAB"}}, "fit"]
    recipe = tmp / "syn.yaml"
    recipe.write_text(yaml.safe_dump(doc))
    run = tmp / "run"
    run_recipe(str(recipe), outdir=run, verbose=False)
    return run


@pytest.fixture(scope="session")
def syn_export(syn_run, tmp_path_factory):
    """``syn_run`` exported with ``export_gammapy``: (folder, files written)."""
    from fermixr.engine.gammapy_export import export_gammapy

    dest = tmp_path_factory.mktemp("gpx_out")
    files = export_gammapy(syn_run, dest)
    return dest, files
