"""Cost of a light curve: the per-bin cost and the time of an N-bin curve on the built-in
example (one simulated day, the quickstart recipe), and an ESTIMATE of a weekly curve over
17 years (~900 bins) from those figures.

    python benchmarks/lightcurve.py [--nbins 8] [--scheduler local:2]

The curve runs twice into a fresh folder: the first computes every bin (its GTIs, events,
counts, livetime cube, source maps and fit), the second finds every bin in the store.  The
per-step seconds come from the curve's run record (<outdir>/lightcurve/<source>/run.json).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
import warnings
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "quickstart.yaml"
SOURCE = "SYN_CRAB"
WEEK = 7 * 86400.0
MISSION_BINS = 900


def recipe(outdir: Path) -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    for k in ("evfile", "scfile", "caldb"):
        doc["data"][k] = str(EXAMPLE.parent / doc["data"][k])
    doc["model"]["catalogs"] = [str(EXAMPLE.parent / c) for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str(EXAMPLE.parent / doc["model"]["isodiff"])
    doc.pop("steps")
    doc["fileio"] = {"outdir": str(outdir)}
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nbins", type=int, default=8)
    ap.add_argument("--scheduler", default=None, help="e.g. local:2 (default: one process)")
    ap.add_argument("--scaled", action="store_true",
                    help="use_scaled_srcmap: the full-range maps scaled by each bin's exposure")
    args = ap.parse_args()
    from fermixr import Analysis

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gta = Analysis(recipe(out)).setup()
        gta.free_source(SOURCE)
        gta.free_norm("isodiff")
        gta.fit()
        t_setup = time.perf_counter() - t0
        main = json.loads((out / "run.json").read_text())
        lt_day = next((t["seconds"] for t in main["tasks"]
                       if t["step"] == "ltcube" and t["status"] == "computed"), None)
        kw = dict(nbins=args.nbins, free_background=True, write_npy=False,
                  use_scaled_srcmap=args.scaled)
        t1 = time.perf_counter()
        lc = gta.lightcurve(SOURCE, scheduler=args.scheduler, **kw)
        t_first = time.perf_counter() - t1
        doc = json.loads((out / "lightcurve" / SOURCE / "run.json").read_text())
        t2 = time.perf_counter()
        gta.lightcurve(SOURCE, scheduler=args.scheduler, **kw)
        t_again = time.perf_counter() - t2
    per_step = collections.defaultdict(float)
    for t in doc["tasks"]:
        per_step[t["step"]] += t["seconds"]
    n = args.nbins
    span = float(lc["tmax"][-1] - lc["tmin"][0])
    bin_s = span / n
    print(f"example: {EXAMPLE.name} (one simulated day), source {SOURCE}, {n} bins of "
          f"{bin_s / 3600:.2f} h, scheduler {args.scheduler or 'one process'}, "
          f"use_scaled_srcmap {args.scaled}")
    print(f"setup + full-range fit          : {t_setup:7.2f} s")
    print(f"curve, every bin computed       : {t_first:7.2f} s  "
          f"({t_first / n:.2f} s per bin, wall)")
    print(f"curve again, every bin reused   : {t_again:7.2f} s")
    print(f"ts_var {lc['ts_var']:.2f} over {int(sum(lc['fit_success']))} bins")
    print("per-bin task seconds (summed over workers, divided by the bins; the scaled "
          "mode's full-range maps and exposure are counted here too):")
    for step, s in sorted(per_step.items(), key=lambda kv: -kv[1]):
        if s > 0:
            print(f"  {step:<10} {s / n:7.3f} s")
    # ESTIMATE of the target: weekly bins over 17 years.  Everything but the
    # livetime cube costs the same per bin; the livetime cube's cost is a + b * duration,
    # a and b from this curve's bins and the full day's cube of the setup.
    lt = per_step.get("ltcube", 0.0) / n
    other = sum(per_step.values()) / n - lt
    overhead = max(t_first / n - sum(per_step.values()) / n, 0.0)
    b = max((lt_day - lt) / (span - bin_s), 0.0) if lt_day is not None and span > bin_s \
        else lt / bin_s
    a = max(lt - b * bin_s, 0.0)
    lt_week = a + b * WEEK
    print(f"livetime cube: {lt:.2f} s for a {bin_s / 3600:.1f} h bin, "
          f"{'n/a' if lt_day is None else f'{lt_day:.2f}'} s for the whole day "
          f"-> {a:.2f} s + {b * 86400:.2f} s per day of data")
    week_bin = other + lt_week + overhead
    workers = int(args.scheduler.split(":")[1]) if args.scheduler and \
        args.scheduler.startswith("local:") else 1
    est = MISSION_BINS * week_bin / workers
    print(f"ESTIMATE (not measured): a weekly bin ~ {week_bin:.1f} s (livetime cube "
          f"{lt_week:.1f} s), so {MISSION_BINS} weekly bins ~ {est / 60:.0f} min on "
          f"{workers} worker(s); the ROI, energy binning and source count of the example set "
          "the other terms")


if __name__ == "__main__":
    main()
