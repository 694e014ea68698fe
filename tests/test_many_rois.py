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

import numpy as np
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


# --------------------------------------------------------------- many regions, one plan --
def _region(tmp_path, i, broken=False):
    """A small region (3 deg, 1-100 GeV) at offset i of a 5 x 4 grid of 0.4 deg steps
    around the example's centre; setup, the sources' norms freed, a fit."""
    doc = _doc("wcs_no_edisp", tmp_path / "unused")
    doc.pop("fileio")
    doc["binning"].update(roiwidth=3.0, binsz=0.25)
    doc["selection"].update(emin=1000.0, ra=83.6331 + 0.4 * (i % 5 - 2),
                            dec=22.0145 + 0.4 * (i // 5 - 2))
    doc["steps"] = ["setup", {"free_sources": {"pars": "norm"}}, "fit"]
    if broken:        # a model whose isotropic spectrum is not numbers: fails in the fit
        bad = tmp_path / "bad_iso.txt"
        bad.write_text("this is not a spectrum\n")
        doc["model"]["isodiff"] = str(bad)
    p = tmp_path / f"roi{i:02d}.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


@pytest.mark.slow
def test_twenty_regions_on_two_workers_make_one_livetime_cube(tmp_path):
    import time

    recipes = [_region(tmp_path, i, broken=(i == 7)) for i in range(20)]
    out = tmp_path / "many"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", "run", *map(str, recipes),
                        "--outdir", str(out), "--scheduler", "local:2", "-q"],
                       capture_output=True, text=True, cwd=REPO, env=dict(os.environ))
    secs = time.monotonic() - t0
    print(f"20 regions on 2 workers: {secs:.1f} s")
    assert r.returncode in (1, 2), r.stderr
    assert "1 of 20 regions failed: roi07" in r.stderr
    assert "fermixr: roi07: " in r.stderr and "bad_iso.txt" in r.stderr
    table = {ln.split()[0]: ln.split()[1] for ln in r.stdout.splitlines()[1:]}
    assert table == {f"roi{i:02d}": ("failed" if i == 7 else "done") for i in range(20)}
    # ONE livetime cube: computed for one region, the same key for the 19 others
    assert len(list((out / ".store").glob("ltcube-*"))) == 1
    lt = [_tasks(out / f"roi{i:02d}")["ltcube"] for i in range(20) if i != 7]
    assert lt.count("computed") == 1 and lt.count("shared") == 18, lt
    for i in range(20):
        if i != 7:
            assert "fit" in fermixr.open_run(out / f"roi{i:02d}")
    # the regions' products are those of the region run alone, serially, in its own store
    from fermixr.engine.run import run_recipe

    for i in (0, 13):
        alone = tmp_path / f"alone{i:02d}"
        run_recipe(str(recipes[i]), outdir=alone, verbose=False)
        ra, rm = fermixr.open_run(alone), fermixr.open_run(out / f"roi{i:02d}")
        assert sorted(ra) == sorted(rm) and "fit" in ra
        for name in ra:
            _same(ra[name], rm[name])


# ------------------------------------------------------------------------ targets --------
def _targets_recipe(tmp_path, **targets):
    p = _write(tmp_path, "many")
    doc = yaml.safe_load(p.read_text())
    doc["targets"] = targets
    p.write_text(yaml.safe_dump(doc))
    return p


def test_a_targets_recipe_expands_to_one_region_per_target(tmp_path):
    from fermixr.engine.many import expand_regions
    from fermixr.engine.recipe import load_recipe

    p = _targets_recipe(tmp_path, names=["SYN_CRAB", "syn_hard"],
                        catalog=str(REPO / "catalogs" / "fermixr_example.fits"),
                        where="RAJ2000 < 82")            # SYN_SOFT at 80, 17
    regions = expand_regions(p)
    assert [g.name for g in regions] == ["SYN_CRAB", "syn_hard", "SYN_SOFT"]
    rec = load_recipe(p, **regions[1].overrides)
    # centred on the catalog source, as selection.target centres it
    alone = yaml.safe_load(p.read_text())
    alone.pop("targets")
    alone["selection"] = {**{k: v for k, v in alone["selection"].items()
                             if k not in ("ra", "dec")}, "target": "SYN_HARD"}
    ref = load_recipe(alone, fileio={"outdir": str(tmp_path)})
    for k in ("ra", "dec", "glon", "glat"):
        assert rec.options[0].selection.__getattribute__(k) == \
            ref.options[0].selection.__getattribute__(k), k
    assert rec.options[0].selection.ra == pytest.approx(86.5)
    assert not rec.options[0].targets.names and not rec.options[0].targets.where


@pytest.mark.slow
def test_a_targets_recipe_runs_one_region_per_target(tmp_path):
    from fermixr.engine.many import run_many

    p = _targets_recipe(tmp_path, names=["SYN_CRAB", "syn_hard"])
    outs = run_many([p], tmp_path / "o", verbose=False)
    assert [(o.name, o.status) for o in outs] == [("SYN_CRAB", "done"), ("syn_hard", "done")]
    # each centred on its catalog source (examples/catalogs: SYN_HARD at 86.5, 23.3)
    rec = yaml.safe_load((tmp_path / "o" / "syn_hard" / ".fermixr" /
                          "recipe.resolved.yaml").read_text())
    assert (rec["selection"]["ra"], rec["selection"]["dec"]) == pytest.approx((86.5, 23.3),
                                                                              abs=1e-5)
    assert not (rec.get("targets") or {}).get("names")
    # one livetime cube for both
    assert len(list((tmp_path / "o" / ".store").glob("ltcube-*"))) == 1


def test_an_unknown_target_stops_the_command_before_any_work(tmp_path):
    p = _targets_recipe(tmp_path, names=["SYN_CRAB", "NO_SUCH_SOURCE", "ALSO_MISSING"])
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", "run", str(p), "--outdir",
                        str(out)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "targets.names: 2 unknown source(s): 'NO_SUCH_SOURCE', 'ALSO_MISSING'" in line
    assert not out.exists()
    # run as one region, such a recipe is refused (it is many regions)
    from fermixr.engine.run import run_recipe
    from fermixr.errors import RecipeError

    with pytest.raises(RecipeError, match="one region per target"):
        run_recipe(str(p), outdir=tmp_path / "x", verbose=False)


def test_a_cut_on_4fgl_dr4_selects_its_sources(shared_data):
    """targets.where on the real 4FGL-DR4, against the same cut made with astropy."""
    from astropy.io import fits

    from fermixr.engine.many import select_targets
    from fermixr.errors import RecipeError

    cat = shared_data / "catalogs" / "gll_psc_v35.fit.gz"
    if not cat.is_file():
        pytest.skip("4FGL-DR4 not in the shared data")
    got = select_targets(cat, "Signif_Avg > 40 and abs(GLAT) > 30", limit=8)
    t = fits.getdata(cat, 1)
    sel = (t["Signif_Avg"] > 40) & (abs(t["GLAT"]) > 30)
    order = np.argsort(-t["Signif_Avg"][sel], kind="stable")[:8]
    want = [s.strip() for s in t["Source_Name"][sel][order]]
    assert [n for n, _, _ in got] == want and len(want) == 8
    assert got[0][1] == pytest.approx(float(t["RAJ2000"][sel][order][0]))
    with pytest.raises(RecipeError, match="no column 'Signif'; did you mean Signif_Avg"):
        select_targets(cat, "Signif > 40")
    with pytest.raises(RecipeError, match="is not allowed"):
        select_targets(cat, "__import__('os').system('true')")


# ------------------------------------------------------------ batch clusters --------------
def test_slurm_and_pbs_job_scripts_carry_the_requested_directives():
    from fermixr.engine.cluster import make_jobqueue_cluster

    opts = dict(cores=8, processes=2, memory="16GB", walltime="04:00:00", queue="fermi",
                account="lat-123", job_extra=["--constraint=cpu"], jobs=1)
    c = make_jobqueue_cluster("slurm", opts, jobs=0)
    try:
        s = c.job_script()
    finally:
        c.close()
    for d in ("#SBATCH -p fermi", "#SBATCH -A lat-123", "#SBATCH --cpus-per-task=8",
              "#SBATCH --mem=15G", "#SBATCH -t 04:00:00", "#SBATCH --constraint=cpu",
              "--nworkers 2", "--resources MEMORY=8000000000",
              "export NUMBA_NUM_THREADS=4"):
        assert d in s, (d, s)
    c = make_jobqueue_cluster("pbs", dict(opts, job_extra=["-l place=scatter"]), jobs=0)
    try:
        s = c.job_script()
    finally:
        c.close()
    for d in ("#PBS -q fermi", "#PBS -A lat-123", "#PBS -l select=1:ncpus=8:mem=",
              "#PBS -l walltime=04:00:00", "#PBS -l place=scatter",
              "--resources MEMORY=8000000000"):
        assert d in s, (d, s)


@pytest.mark.slow
def test_scheduler_slurm_runs_on_a_local_stand_in(tmp_path, monkeypatch, capsys):
    """--scheduler slurm:2 with a --cluster file: the SLURM cluster class replaced by a
    LocalCluster that takes the same arguments; the workers declare the memory asked."""
    from distributed import LocalCluster

    import fermixr.engine.cluster as C
    from fermixr.cli import main

    made = {}

    class StandIn(LocalCluster):
        def __init__(self, *, cores, processes, memory, walltime, job_extra_directives,
                     worker_extra_args, job_script_prologue, queue=None, account=None):
            made.update(cores=cores, processes=processes, memory=memory, queue=queue,
                        account=account, extra=job_extra_directives)
            res = dict(kv.split("=") for kv in worker_extra_args[1].split(","))
            super().__init__(n_workers=0, threads_per_worker=1, processes=True,
                             dashboard_address=None,
                             resources={k: float(v) for k, v in res.items()})

        def scale(self, jobs=None, **kw):
            made.setdefault("jobs", jobs)          # the first call: the one fermixr makes
            return super().scale(jobs)

    monkeypatch.setitem(C.JOBQUEUE_CLASSES, "slurm", StandIn)
    spec = tmp_path / "cluster.yaml"
    spec.write_text(yaml.safe_dump({"cluster": {"cores": 2, "processes": 1,
                                                "memory": "3GB", "queue": "short",
                                                "job_extra": ["--constraint=cpu"]}}))
    a = _write(tmp_path, "crab")
    b = _write(tmp_path, "crab_east", shift=0.3)
    code = main(["run", str(a), str(b), "--outdir", str(tmp_path / "o"), "--scheduler",
                 "slurm:2", "--cluster", str(spec), "-q"])
    assert code == 0
    assert made == dict(cores=2, processes=1, memory="3GB", queue="short", account=None,
                        extra=["--constraint=cpu"], jobs=2)
    assert _tasks(tmp_path / "o" / "crab")["ltcube"] == "computed"
    # a bad option in the file: one line naming it
    spec.write_text(yaml.safe_dump({"cores": 2, "gpus": 1}))
    capsys.readouterr()
    assert main(["run", str(a), "--scheduler", "slurm", "--cluster", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown option 'gpus'" in err


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_no_finished_product(tmp_path):
    """SIGKILL one of two workers while the regions' data products are being made: the
    run completes (Dask reruns the lost tasks on the other), the products finished before
    the kill stay in the store, and a rerun computes nothing."""
    import signal
    import threading
    import time

    from fermixr.engine.cluster import dask_client
    from fermixr.engine.many import run_many
    from fermixr.engine.store import read_marker

    recipes = [_write(tmp_path, f"r{i}", shift=0.25 * i) for i in range(4)]
    store = tmp_path / "o" / ".store"
    seen = {}
    with dask_client("local:2") as c:
        pids = list(c.run(os.getpid).values())

        def killer():
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                if store.is_dir() and any(read_marker(p) for p in store.glob("srcmaps-*")):
                    seen["before"] = {p.name for p in store.iterdir() if read_marker(p)}
                    os.kill(pids[0], signal.SIGKILL)
                    seen["killed"] = True
                    return
                time.sleep(0.05)

        t = threading.Thread(target=killer)
        t.start()
        outs = run_many(recipes, tmp_path / "o", client=c, verbose=False)
        t.join()
    assert seen.get("killed"), "no product appeared before the deadline"
    assert [o.status for o in outs] == ["done"] * 4, [o.error for o in outs]
    after = {p.name for p in store.iterdir() if p.is_dir()}
    assert seen["before"] <= after                     # nothing finished was lost
    again = run_many(recipes, tmp_path / "o", verbose=False)
    assert [o.status for o in again] == ["done"] * 4
    assert sum(o.computed for o in again) == 0         # the rerun found everything
