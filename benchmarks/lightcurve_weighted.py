"""Cost of a weighted-photon light curve (fermixr.estimators.wtlike) over the 17-year
synthetic mission (benchmarks/_mission.py): the setup and full-range fit (reported apart),
then the DAILY curve timed in three parts (photon weights, exposure from the FT2 rows,
cell fits), the weekly curve, and optionally the Bayesian blocks of the daily cells and a
comparison of the weekly fluxes with the full-likelihood curve (Fermipy-style, fermixr's
``lightcurve``) over the first ``--compare`` weeks.

    python benchmarks/lightcurve_weighted.py [--cache DIR] [--years 17] [--blocks]
                                             [--compare 30] [--outdir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]     # this checkout's fermixr
EXAMPLE = REPO / "examples" / "quickstart.yaml"
SOURCE = "SYN_CRAB"
DAY = 86400.0
WEEK = 7 * DAY


def recipe(paths: dict, outdir: Path) -> dict:
    """The quickstart recipe on the mission files: a map inside the 5 deg event
    cut (6 deg square: the selection radius it derives, half the diagonal + 0.5 deg, must
    stay inside the 5 deg cut of the event file)."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc.pop("steps")
    doc["data"] = {"evfile": str(paths["ft1"]), "scfile": str(paths["ft2"]),
                   "caldb": str(paths["caldb"])}
    doc["binning"]["roiwidth"] = 6.0
    doc["model"]["catalogs"] = [str((EXAMPLE.parent / c).resolve())
                                for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str(paths["iso"])
    doc["gtlike"]["edisp"] = False
    doc["fileio"] = {"outdir": str(outdir)}
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=None, help="mission folder (see _mission.py)")
    ap.add_argument("--years", type=float, default=17.0)
    ap.add_argument("--blocks", action="store_true", help="Bayesian blocks of the daily cells")
    ap.add_argument("--compare", type=int, default=0,
                    help="compare the first N weekly bins with the full-likelihood curve")
    ap.add_argument("--outdir", default=None, help="run folder (default: a temporary one)")
    args = ap.parse_args()
    from _mission import mission_dataset

    from fermixr import Analysis

    paths = mission_dataset(args.years, cache=args.cache)
    out = Path(args.outdir) if args.outdir else Path(tempfile.mkdtemp(prefix="wtlike-"))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gta = Analysis(recipe(paths, out / "run")).setup()
    t_setup = time.perf_counter() - t0
    gta.free_source(SOURCE)
    gta.free_norm("isodiff")
    gta.fit(optimizer="NEWTON")
    t_fit = time.perf_counter() - t0 - t_setup
    print(f"mission: {args.years:g} years, {paths['ft1']}")
    print(f"setup (selection, binning, livetime cube, maps): {t_setup:8.1f} s")
    print(f"full-range fit                                 : {t_fit:8.1f} s")
    gta.weighted_lightcurve(SOURCE, nbins=4, write_fits=False)   # numba compilation, once
    for label, binsz in (("daily", DAY), ("weekly", WEEK)):
        tm: dict = {}
        t1 = time.perf_counter()
        ds = gta.weighted_lightcurve(SOURCE, binsz=binsz, timing=tm, write_fits=True,
                                     make_plots=label == "weekly",
                                     prefix=label)
        wall = time.perf_counter() - t1
        ok = ds["status"].values == "ok"
        n = ds["norm"].values[ok]
        e = ds["norm_err"].values[ok]
        print(f"{label} curve: {ds.sizes['time']} cells, {ds.attrs['n_photons_total']} "
              f"photons, wall {wall:.1f} s = weights {tm['weights']:.1f} + exposure "
              f"{tm['exposure']:.1f} + cells {tm['cells']:.2f} s (+ {wall - tm['weights'] - tm['exposure'] - tm['cells']:.1f}"
              f" s reading the run's events and writing)")
        print(f"   process CPU: weights {tm['cpu_weights']:.1f} + exposure "
              f"{tm['cpu_exposure']:.1f} + cells {tm['cpu_cells']:.1f} s (all threads); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"   sum of weights {ds.attrs['sum_weights_total']:.1f} vs model npred "
              f"{ds.attrs['npred_model']:.1f}; cells with exposure {ok.sum()}; "
              f"chi2/ndf of norm vs 1: {np.sum(((n - 1) / e) ** 2) / max(ok.sum(), 1):.3f}")
        if label == "daily" and args.blocks:
            t2 = time.perf_counter()
            tb: dict = {}
            db = gta.weighted_lightcurve(SOURCE, binsz=binsz, timing=tb, blocks=True,
                                         write_fits=False)
            print(f"   Bayesian blocks of the daily cells: {db.attrs['nblocks']} block(s) "
                  f"(ncp_prior {db.attrs['ncp_prior']:.2f}), blocks step {tb['blocks']:.1f} s,"
                  f" wall {time.perf_counter() - t2:.1f} s")
        if label == "weekly":
            weekly = ds
    if args.compare:
        edges = weekly["tmin"].values[:args.compare + 1]
        t3 = time.perf_counter()
        lc = gta.lightcurve(SOURCE, time_bins=list(edges), free_params=["norm"],
                            write_npy=False, write_fits=False)
        t_lc = time.perf_counter() - t3
        ok = np.asarray(lc["fit_success"], bool)
        fw = weekly["flux"].values[:args.compare]
        ew = weekly["flux_err"].values[:args.compare]
        ff, ef = np.asarray(lc["flux"]), np.asarray(lc["flux_err"])
        d = np.abs(fw - ff)[ok] / ef[ok]
        dc = np.abs(fw - ff)[ok] / np.hypot(ew, ef)[ok]
        print(f"full-likelihood weekly curve, first {args.compare} weeks (norm free, "
              f"background held): {t_lc:.0f} s; {ok.sum()} bins fitted")
        print(f"   weighted vs full: |diff| < 1 sigma_full in {np.mean(d < 1):.0%} of the "
              f"bins (< 1 sigma_combined in {np.mean(dc < 1):.0%}); median |diff|/sigma_full "
              f"{np.median(d):.2f}, max {d.max():.2f}")
    print(f"products in {out}")


if __name__ == "__main__":
    main()
