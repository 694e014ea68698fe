"""Benchmark: gtselect-style cuts and gtbin WCS/HEALPix binning of 10 M synthetic events.

Run ``python benchmarks/select_bin.py [n_events]``.  Prints wall times (the first call of
each kernel compiles or loads numba's cache; it is timed separately) and the peak resident
memory of the process.  No assertions.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np


def make_events(n: int, rng: np.random.Generator):
    import xarray as xr

    ra = rng.uniform(60.0, 110.0, n).astype(np.float32)
    dec = rng.uniform(-5.0, 50.0, n).astype(np.float32)
    energy = (100.0 * rng.pareto(1.2, n) + 100.0).astype(np.float32)
    time_ = np.sort(rng.uniform(239557417.5, 239643817.5, n))
    ds = xr.Dataset({
        "ENERGY": ("event", energy), "RA": ("event", ra), "DEC": ("event", dec),
        "ZENITH_ANGLE": ("event", rng.uniform(0, 120, n).astype(np.float32)),
        "TIME": ("event", time_),
        "EVENT_CLASS": ("event", rng.choice(np.array([128 + 1024, 128, 4], np.uint32), n)),
        "EVENT_TYPE": ("event", rng.integers(1, 1024, n).astype(np.uint32)),
        "CONVERSION_TYPE": ("event", rng.integers(0, 2, n).astype(np.int16)),
    })
    ds.attrs.update({"fermixr_product": "events", "TSTART": 239557417.5, "TSTOP": 239643817.5,
                     "MJDREF": 51910.00074287037, "PASS_VER": "P8R2",
                     "event_class_kind": "bitmask"})
    return ds


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(n: int = 10_000_000) -> None:
    from fermixr.geom import EnergyAxis, HpxGeom, WcsGeom
    from fermixr.select.binning import bin_counts
    from fermixr.select.cuts import select_events

    rng = np.random.default_rng(20240601)
    t0 = time.perf_counter()
    ev = make_events(n, rng)
    print(f"events: {n:,} synthetic in {time.perf_counter() - t0:.2f} s; RSS {peak_rss_mib():.0f} MiB")
    gti_s = np.linspace(239557417.5, 239643000.0, 16)[:-1]
    gti_e = gti_s + 4000.0
    cuts = dict(emin=200, emax=20000, ra=83.6331, dec=22.0145, radius=15, zmax=90,
                evclass=128, evtype=3, gti_start=gti_s, gti_stop=gti_e)
    geom = WcsGeom((184.5575, -5.7843), 300, 0.1, proj="CAR", frame="GAL")
    axis = EnergyAxis.from_bounds(200, 20000, enumbins=20)

    small = ev.isel(event=slice(0, 1000))  # compile / load the kernels
    t0 = time.perf_counter()
    bin_counts(select_events(small, **cuts), geom, axis)
    print(f"warm-up (numba compile or cache load): {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    sel = select_events(ev, **cuts)
    t_sel = time.perf_counter() - t0
    t0 = time.perf_counter()
    counts = bin_counts(sel, geom, axis)
    t_bin = time.perf_counter() - t0
    t0 = time.perf_counter()
    counts_all = bin_counts(ev, geom, axis)
    t_bin_all = time.perf_counter() - t0
    print(f"select_events: {t_sel:.2f} s -> {sel.sizes['event']:,} events kept")
    print(f"bin_counts WCS CAR 300x300x20 on the selection: {t_bin:.2f} s "
          f"({int(counts['counts'].sum()):,} binned)")
    print(f"selection + WCS binning: {t_sel + t_bin:.2f} s (goal < 10 s)")
    print(f"bin_counts WCS on all {n:,} events: {t_bin_all:.2f} s "
          f"({int(counts_all['counts'].sum()):,} binned)")
    hpx = HpxGeom(nside=256, ordering="RING", frame="GAL")
    t0 = time.perf_counter()
    ch = bin_counts(ev, hpx, axis)
    print(f"bin_counts HEALPix nside 256 all-sky on all events: {time.perf_counter() - t0:.2f} s "
          f"({int(ch['counts'].sum()):,} binned)")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 10_000_000)
