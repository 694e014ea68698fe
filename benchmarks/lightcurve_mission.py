"""A weekly full-likelihood light curve over 17 simulated years, measured (not estimated).

    PYTHONPATH=. python benchmarks/lightcurve_mission.py [--cache DIR] [--scheduler local:2]
        [--binsz-days 7] [--roiwidth 6] [--pixsz 0.1] [--local-ltcube 12] [--max-bins N]

The data: benchmarks/_mission.py's 17-year FT1/FT2 of the example's region (made once by
fermixr's simulator; steady sources, 5 deg event cut).  The analysis: the quickstart
recipe on those files with a square ROI inside the event cut; the full range's livetime
cube on the pixels within 12 deg of the ROI (Fermipy's use_local_ltcube; fermixr's setup
would fill the whole sky: ~2 CPU-hours for 17 years, extrapolated from the example day) given as data.ltcube; setup and the
global fit
(SYN_CRAB's spectrum and the isotropic norm free), then ``lightcurve`` of SYN_CRAB in
weekly bins (point sources' maps exact per bin from the livetime at the source by
inclination, the isotropic's scaled by the exposure ratio; --scaled: use_scaled_srcmap,
--computed-maps: every map computed per bin) and the background refitted in every bin
(free_background), on ``--scheduler``.  Every bin is a keyed task of the store: the curve
runs into a fresh folder, then a second call reads every bin back.

Prints the setup's time, the curve's total wall time and per-bin cost, and the breakdown
of the curve's task seconds by step (from the curve's run record)."""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
SOURCE = "SYN_CRAB"


def recipe(paths: dict, outdir: Path, roiwidth: float, pixsz: float) -> dict:
    ex = REPO / "examples"
    return {
        "data": {"evfile": str(paths["ft1"]), "scfile": str(paths["ft2"]),
                 "caldb": str(paths["caldb"])},
        "binning": {"coordsys": "CEL", "proj": "CAR", "roiwidth": roiwidth, "binsz": pixsz,
                    "binsperdec": 8},
        "selection": {"emin": 100, "emax": 100000, "zmax": 90, "evclass": 128, "evtype": 3,
                      "ra": 83.6331, "dec": 22.0145,
                      "filter": "DATA_QUAL>0 && LAT_CONFIG==1"},
        "gtlike": {"irfs": "FXR_SYNTH_V1"},
        "ltcube": {"dcostheta": 0.025, "binsz": 1.0},
        "model": {"src_roiwidth": roiwidth + 4.0,
                  "catalogs": [str(REPO / "catalogs" / "fermixr_example.fits")],
                  "isodiff": str(paths["iso"])},
        "fileio": {"outdir": str(outdir)},
    }


def local_ltcube(doc: dict, out: Path, work: Path, radius: float) -> tuple[float, str]:
    """The full range's livetime cube on the pixels within ``radius`` deg of the ROI
    centre (Fermipy's use_local_ltcube; fermixr's setup computes the whole sky, ~2
    CPU-hours for 17 years), over the run's GTIs, written as a gtltcube file: (seconds,
    path)."""
    from fermixr.engine.executor import Executor
    from fermixr.engine.plan import plan_tasks
    from fermixr.engine.recipe import load_recipe
    from fermixr.engine.run import store_root
    from fermixr.engine.store import open_product_dir
    from fermixr.exposure.ltcube import compute_ltcube
    from fermixr.io.ltcube import write_ltcube

    t0 = time.perf_counter()
    path = work / f"ltcube_local_{radius:g}deg.fits"
    rec = load_recipe(doc)
    st = Executor(out, store_root(rec, out), verbose=False).run(
        [t for t in plan_tasks(rec) if t.name == "gti"])
    gti = open_product_dir(st["gti"].path, dask=False)
    if not path.exists():
        sel = doc["selection"]
        lt = compute_ltcube(doc["data"]["scfile"], gti["START"].values, gti["STOP"].values,
                            zmax=sel["zmax"], binsz=doc["ltcube"]["binsz"],
                            dcostheta=doc["ltcube"]["dcostheta"],
                            region=(sel["ra"], sel["dec"], radius))
        write_ltcube(lt, path)
    return time.perf_counter() - t0, str(path)


def _cpu() -> float:
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=None, help="folder of the mission data set")
    ap.add_argument("--scheduler", default="local:2")
    ap.add_argument("--binsz-days", type=float, default=7.0)
    ap.add_argument("--roiwidth", type=float, default=6.0)
    ap.add_argument("--pixsz", type=float, default=0.1)
    ap.add_argument("--max-bins", type=int, default=None,
                    help="only the first N bins (a quick look; not the benchmark)")
    ap.add_argument("--workdir", default=None, help="keep the run here (default: a temp dir)")
    ap.add_argument("--scaled", action="store_true",
                    help="use_scaled_srcmap: the full-range maps scaled by each bin's "
                         "exposure ratio (Fermipy's approximation, the full range's PSF)")
    ap.add_argument("--computed-maps", action="store_true",
                    help="every source map of each bin computed from its livetime cube "
                         "(the slow reference) instead of the default: point sources' "
                         "exact maps from the livetime at the source by inclination, "
                         "diffuse ones scaled by the exposure ratio")
    ap.add_argument("--shape-ts-threshold", type=float, default=None,
                    help="lightcurve.shape_ts_threshold (default: the option's, 16: the "
                         "source's index is refitted in every bin of a bright source)")
    ap.add_argument("--local-ltcube", type=float, default=12.0, metavar="DEG",
                    help="the setup's full-range livetime cube on the pixels within DEG of "
                         "the ROI centre (0: the whole sky, as fermixr's setup makes it)")
    args = ap.parse_args()
    from _mission import mission_dataset

    from fermixr import Analysis

    paths = mission_dataset(cache=args.cache)
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(args.workdir or tmp.name)
    out = work / "run"
    t0 = time.perf_counter()
    doc = recipe(paths, out, args.roiwidth, args.pixsz)
    t_lt = None
    if args.local_ltcube:
        t_lt, doc["data"]["ltcube"] = local_ltcube(doc, out, work, args.local_ltcube)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gta = Analysis(doc).setup()
    t_setup = time.perf_counter() - t0
    gta.free_source(SOURCE)
    gta.free_norm("isodiff")
    t1 = time.perf_counter()
    assert gta.fit()["fit_success"]
    t_fit = time.perf_counter() - t1
    glob = gta.get_src_model(SOURCE)
    if t_lt is None:
        main_doc = json.loads((out / "run.json").read_text())
        t_lt = sum(t["seconds"] for t in main_doc["tasks"] if t["step"] == "ltcube")
    import fermixr.engine.lightcurve as ELC

    ELC.COMPUTED_MAPS = args.computed_maps
    kw = dict(binsz=args.binsz_days * 86400.0, use_scaled_srcmap=args.scaled,
              free_background=True, write_npy=False)
    if args.shape_ts_threshold is not None:
        kw["shape_ts_threshold"] = args.shape_ts_threshold
    if args.max_bins:
        from fermixr.engine.lightcurve import data_range

        a, z, _ = data_range(out, 1)
        edges = a + kw["binsz"] * np.arange(args.max_bins + 1)
        kw = dict(kw, time_bins=[float(v) for v in np.minimum(edges, z)])
    t2 = time.perf_counter()
    c2, l2 = _cpu(), os.getloadavg()[0]
    lc = gta.lightcurve(SOURCE, scheduler=args.scheduler, **kw)
    t_curve = time.perf_counter() - t2
    cpu_curve, l3 = _cpu() - c2, os.getloadavg()[0]
    doc = json.loads((out / "lightcurve" / SOURCE / "run.json").read_text())
    t3 = time.perf_counter()
    lc2 = gta.lightcurve(SOURCE, scheduler=args.scheduler, **kw)
    t_again = time.perf_counter() - t3
    n = len(lc["tmin"])
    ok = np.asarray(lc["fit_success"], bool)
    per_step = collections.defaultdict(float)
    count = collections.Counter()
    for t in doc["tasks"]:
        if t["status"] == "computed":
            per_step[t["step"]] += t["seconds"]
            count[t["step"]] += 1
    print(f"data: {paths['ft1'].parent} ({os.path.getsize(paths['ft2']) / 2**30:.1f} GiB FT2, "
          f"{os.path.getsize(paths['ft1']) / 2**20:.0f} MiB FT1); ROI {args.roiwidth} deg at "
          f"{args.pixsz} deg, {len(gta.state.model)} sources; scheduler {args.scheduler}; "
          f"CPUs {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    what = (f"a local livetime cube within {args.local_ltcube} deg, given as data.ltcube"
            if args.local_ltcube else "the whole-sky livetime cube")
    print(f"setup (selection, full-range livetime cube, maps): {t_setup:8.1f} s "
          f"(of which {what}: {t_lt:.1f} s)")
    print(f"global fit                                       : {t_fit:8.1f} s "
          f"(flux {glob['flux']:.4g} +- {glob['flux_err']:.2g})")
    print(f"LIGHT CURVE: {n} bins of {args.binsz_days:g} d, every bin computed: "
          f"{t_curve:8.1f} s = {t_curve / 60:.2f} min ({t_curve / n:.3f} s per bin, wall)")
    print(f"  CPU time of the curve (this process and its finished children, i.e. the "
          f"dask workers): {cpu_curve:.1f} s = {cpu_curve / 60:.2f} CPU-min; machine load "
          f"{l2:.1f} before, {l3:.1f} after (2 cores, shared)")
    print(f"the same curve again, every bin read back  : {t_again:8.1f} s")
    print(f"bin maps: {lc.get('bin_maps')}")
    print(f"bins fitted {int(ok.sum())}/{n}; ts_var {lc['ts_var']:.1f} (chi2 dof {ok.sum() - 1});"
          f" flux_const {lc['flux_const']:.4g}; median bin TS {np.nanmedian(lc['ts']):.0f}")
    # ts_var's own terms: each bin's profile at the global fit's spectral shape
    best = np.maximum(lc["var_loglike"], np.nanmax(lc["var_loglike_scan"], axis=1))[ok]
    raw = 2.0 * np.sum(np.clip(best - lc["loglike_const"][ok], 0.0, None))
    from scipy import stats
    print(f"ts_var without the systematic term (2 sum dlogL): {raw:.1f} (chi2 99% quantile "
          f"{stats.chi2.ppf(0.99, ok.sum() - 1):.1f}); the source's shape refitted in "
          f"{int(np.sum(lc['shape_free'][ok]))} bins (ts_var uses each bin's profile at the "
          f"global fit's shape)")
    pulls = (lc["flux"][ok] - glob["flux"]) / lc["flux_err"][ok]
    print(f"pulls of the bins' fluxes against the global fit: mean {np.mean(pulls):+.3f}, "
          f"sd {np.std(pulls):.3f}")
    assert np.array_equal(np.asarray(lc2["flux"]), np.asarray(lc["flux"]), equal_nan=True)
    print("breakdown: task seconds by step (summed over workers; count of tasks):")
    total = sum(per_step.values())
    for step, s in sorted(per_step.items(), key=lambda kv: -kv[1]):
        print(f"  {step:<12} {s:9.1f} s  {count[step]:5d} tasks  {s / n:7.3f} s per bin")
    print(f"  {'sum':<12} {total:9.1f} s; wall {t_curve:.1f} s on {args.scheduler}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
