"""Several regions in one command (fermixr.engine.many, `fermixr run A.yaml B.yaml --outdir
DIR`): each region in its own sub-folder, one shared product store in which the livetime
cube that the regions share is computed once, a broken region recorded with its reason
while the others finish, and products identical to those of a region run alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

import fermixr
from test_estimators_conformance import _doc

REPO = Path(__file__).resolve().parent.parent


def _write(tmp_path, name, shift=0.0, **model):
    doc = _doc("wcs_no_edisp", tmp_path / "unused")
    doc.pop("fileio")
    doc["selection"]["ra"] = doc["selection"].get("ra", 83.6331) + shift
    doc["model"].update(model)
    doc["steps"] = ["setup"]
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def _tasks(run_dir) -> dict:
    return {t["name"]: t["status"]
            for t in json.loads((Path(run_dir) / "run.json").read_text())["tasks"]}


def _same(a: xr.Dataset, b: xr.Dataset):
    a, b = a.load(), b.load()
    for ds in (a, b):
        for k in ("provenance", "fermixr_complete"):
            ds.attrs.pop(k, None)
    xr.testing.assert_identical(a, b)


def test_regions_share_the_store_keep_going_and_match_a_lone_run(tmp_path):
    a = _write(tmp_path, "crab")
    b = _write(tmp_path, "crab_east", shift=0.3)
    bad = _write(tmp_path, "broken", catalogs=[str(tmp_path / "no_such_catalog.fits")])
    out = tmp_path / "many"
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", "run", str(a), str(bad), str(b),
                        "--outdir", str(out), "--scheduler", "local:2"],
                       capture_output=True, text=True, cwd=REPO, env=dict(os.environ))
    # the broken region is bad input: named with its one line, exit 2; the others finished
    assert r.returncode == 2, r.stderr
    assert "fermixr: broken: error: " in r.stderr and "no_such_catalog.fits" in r.stderr
    assert "1 of 3 regions failed: broken" in r.stderr
    table = {ln.split()[0]: ln.split()[1] for ln in r.stdout.splitlines()[1:]}
    assert table == {"crab": "done", "broken": "failed", "crab_east": "done"}
    ta, tb = _tasks(out / "crab"), _tasks(out / "crab_east")
    # one livetime cube: computed by the first region, found in the shared store by the next
    assert ta["ltcube"] == "computed" and tb["ltcube"] == "shared"
    assert tb["counts"] == "computed"                 # its own counts (another centre)
    assert len(list((out / ".store").glob("ltcube-*"))) == 1
    assert not (out / "broken" / "run.json").exists()
    # identical to the region run alone, serially, in a store of its own
    from fermixr.engine.run import run_recipe

    alone = tmp_path / "alone"
    run_recipe(str(a), outdir=alone, verbose=False)
    ra, rm = fermixr.open_run(alone), fermixr.open_run(out / "crab")
    assert sorted(ra) == sorted(rm)
    for name in ra:
        _same(ra[name], rm[name])


def test_several_recipes_need_an_outdir_and_distinct_names(tmp_path):
    a = _write(tmp_path, "x")
    (tmp_path / "sub").mkdir()
    b = tmp_path / "sub" / "x.yaml"
    b.write_text(a.read_text())
    for args, msg in ([[a, a], "give --outdir DIR"],
                      [[a, b, "--outdir", tmp_path / "o"], "would both write into the "
                                                           "sub-folder 'x'"]):
        r = subprocess.run([sys.executable, "-m", "fermixr.cli", "run", *map(str, args)],
                           capture_output=True, text=True, cwd=REPO)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
