"""Benchmark: livetime cube of one year of FT2 (~1.05M rows of 30 s) at nside 64.

The year is simulated by tiling the shared one-day FT2 (lat-crab-1day/ft2.fits.gz,
5604 rows) in time: every copy is shifted by the span of the file and its sky directions
(boresight, zenith, x axis) are rotated about the celestial pole by 7.3 deg more than the
previous copy, so that the pointings do not repeat.  Chunks are generated on the fly, so
memory does not grow with the number of rows.

    python benchmarks/ltcube_year.py [--years 1] [--zmax 90] [--nside 64] [--dcostheta 0.025]

Prints wall time, peak memory (ru_maxrss) and throughput (FT2 rows x sky pixels / s).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROWS_PER_YEAR = int(365.25 * 86400 / 30)  # 1,051,920 rows of 30 s
_COLS = ("START", "STOP", "LIVETIME", "RA_SCZ", "DEC_SCZ", "RA_ZENITH", "DEC_ZENITH",
         "RA_SCX", "DEC_SCX")


def shared_ft2_path() -> Path:
    env = os.environ.get("FERMIXR_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    p = base / "lat-crab-1day" / "ft2.fits.gz"
    if not p.exists():
        sys.exit(f"shared FT2 not found at {p}: set FERMIXR_SHARED_DATA")
    return p


def tiled_ft2_chunks(nrows: int, chunk_rows: int = 250_000, ra_step: float = 7.3):
    """Yield FT2 chunk dicts with ``nrows`` rows in total, tiling the shared FT2."""
    from fermixr.io.ft2 import read_ft2

    base = read_ft2(shared_ft2_path(), columns=list(_COLS))
    n0 = base["START"].size
    span = math.ceil((base["STOP"][-1] - base["START"][0]) / 30.0) * 30.0 + 30.0
    t_first = base["START"][0]
    done = 0
    while done < nrows:
        m = min(chunk_rows, nrows - done)
        idx = np.arange(done, done + m)
        tile, row = np.divmod(idx, n0)
        shift = tile * span
        dra = (tile * ra_step) % 360.0
        chunk = {
            "START": base["START"][row] + shift,
            "STOP": base["STOP"][row] + shift,
            "LIVETIME": base["LIVETIME"][row],
        }
        for c in ("RA_SCZ", "RA_ZENITH", "RA_SCX"):
            chunk[c] = (base[c][row] + dra) % 360.0
        for c in ("DEC_SCZ", "DEC_ZENITH", "DEC_SCX"):
            chunk[c] = base[c][row]
        done += m
        yield chunk
    _ = t_first


def tiled_time_range(nrows: int):
    """(tstart, tstop) covering the rows of :func:`tiled_ft2_chunks`."""
    from fermixr.io.ft2 import read_ft2

    base = read_ft2(shared_ft2_path(), columns=["START", "STOP"])
    n0 = base["START"].size
    span = math.ceil((base["STOP"][-1] - base["START"][0]) / 30.0) * 30.0 + 30.0
    ntile = (nrows + n0 - 1) // n0
    return float(base["START"][0]), float(base["START"][0] + ntile * span)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 ** 2


def run(nrows, *, zmax, nside, dcostheta, region=None, client=None, label="", chunk_rows=250_000):
    from fermixr.exposure.ltcube import compute_ltcube

    t0, t1 = tiled_time_range(nrows)
    load0 = os.getloadavg()[0]
    cpu0 = time.process_time()
    t = time.perf_counter()
    # one GTI over the tiled rows, across the day's gaps in its rows: the FT2 coverage
    # check is switched off (ft2_tolerance=inf), this measures the kernel
    ds = compute_ltcube(tiled_ft2_chunks(nrows, chunk_rows), [t0], [t1], zmax=zmax,
                        nside=nside, dcostheta=dcostheta, region=region, client=client,
                        chunk_rows=chunk_rows, ft2_tolerance=math.inf)
    wall = time.perf_counter() - t
    cpu = time.process_time() - cpu0
    npix = 12 * nside * nside
    if region is not None:
        npix_eff = int(ds.in_region.sum())
    else:
        npix_eff = npix
    tot = ds.exposure.sum("costheta").values
    print(f"{label} rows={nrows:,} nside={nside} nbins={ds.sizes['costheta']} zmax={zmax} "
          f"region={region} pixels={npix_eff:,}")
    print(f"{label}   wall {wall:.1f} s   CPU {cpu:.1f} s   load avg at start {load0:.1f}   peak RSS {peak_rss_gib():.2f} GiB   "
          f"throughput {nrows * npix_eff / wall:.3g} rows x pixels / s")
    print(f"{label}   livetime per pixel: max {tot.max():.4g} s, median {np.median(tot[tot > 0]):.4g} s")
    return ds, wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=float, default=1.0)
    ap.add_argument("--zmax", type=float, default=90.0)
    ap.add_argument("--nside", type=int, default=64)
    ap.add_argument("--dcostheta", type=float, default=0.025)
    a = ap.parse_args(argv)
    import numba

    print(f"numba threads: {numba.get_num_threads()}, cores: {os.cpu_count()}")
    nrows = int(a.years * ROWS_PER_YEAR)
    # compile once outside the timing (numba cache makes this fast on later runs)
    run(5000, zmax=a.zmax, nside=a.nside, dcostheta=a.dcostheta, label="[warm-up]")
    run(nrows, zmax=a.zmax, nside=a.nside, dcostheta=a.dcostheta, label="[year]")


if __name__ == "__main__":
    main()
