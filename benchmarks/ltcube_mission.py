"""Benchmark: livetime cube of a 17-year mission (~17.9M FT2 rows of 30 s).

gtltcube's default resolution (binsz 1 deg -> nside 64, dcostheta 0.025 -> 40 bins),
zenith cut 90 deg, weighted table, FT2 chunks generated on the fly by tiling the shared
one-day FT2 (see ltcube_year.py), so memory stays flat:

  (a) a 30 deg region around the Crab (83.63, 22.01), this process (numba threads);
  (b) the whole sky, this process (numba threads);
  (c) the whole sky on a dask LocalCluster of 2 single-threaded workers.

    python benchmarks/ltcube_mission.py [--years 17] [--only a,b,c]

Prints wall and CPU time, peak memory (ru_maxrss of this process and of the workers)
and throughput (FT2 rows x sky pixels per second).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ltcube_year import ROWS_PER_YEAR, peak_rss_gib, tiled_ft2_chunks, tiled_time_range  # noqa: E402


def _load():
    return os.getloadavg()[0]


def bench(label, nrows, *, region=None, client=None, chunk_rows=250_000):
    from fermixr.exposure.ltcube import compute_ltcube

    t0, t1 = tiled_time_range(nrows)
    load0 = _load()
    cpu0 = time.process_time()
    ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    # one GTI across the tiled day's gaps in its rows: coverage check off, this times the kernel
    ds = compute_ltcube(tiled_ft2_chunks(nrows, chunk_rows), [t0], [t1], zmax=90.0, binsz=1.0,
                        dcostheta=0.025, region=region, client=client, chunk_rows=chunk_rows,
                        ft2_tolerance=math.inf)
    wall = time.perf_counter() - t
    cpu = time.process_time() - cpu0
    npix = int(ds.in_region.sum()) if region is not None else ds.sizes["pix"]
    worker_rss = ""
    if client is not None:
        rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2)
        worker_rss = " + workers " + ", ".join(f"{v:.2f}" for v in rss.values()) + " GiB"
        wcpu = client.run(lambda: time.process_time())
        cpu_note = f"driver CPU {cpu:.0f} s, workers CPU {sum(wcpu.values()):.0f} s (cumulative)"
    else:
        cpu_note = f"CPU {cpu:.0f} s ({cpu / wall:.2f} cores busy)"
    tot = ds.exposure.sum("costheta").values
    print(f"({label}) rows={nrows:,} nside={ds.attrs['nside']} bins={ds.sizes['costheta']} "
          f"zmax=90 pixels={npix:,} rows used={ds.attrs['ft2_rows_used']:,}", flush=True)
    print(f"({label})   wall {wall:.1f} s  {cpu_note}  load avg at start {load0:.1f}", flush=True)
    print(f"({label})   peak RSS {peak_rss_gib():.2f} GiB{worker_rss}", flush=True)
    print(f"({label})   throughput {nrows * npix / wall:.3g} rows x pixels / s; livetime per "
          f"pixel max {tot.max():.4g} s", flush=True)
    return ds, wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=float, default=17.0)
    ap.add_argument("--only", default="a,b,c")
    ap.add_argument("--chunk-rows", type=int, default=250_000)
    a = ap.parse_args(argv)
    which = set(a.only.split(","))
    nrows = int(a.years * ROWS_PER_YEAR)
    import numba

    print(f"{a.years} years = {nrows:,} FT2 rows; numba threads {numba.get_num_threads()}, "
          f"cores {os.cpu_count()}", flush=True)
    from fermixr.exposure.ltcube import compute_ltcube

    # compile / load the kernels outside the timings
    t0, t1 = tiled_time_range(2000)
    compute_ltcube(tiled_ft2_chunks(2000), [t0], [t1], zmax=90.0, nside=4,
                   ft2_tolerance=math.inf)
    compute_ltcube(tiled_ft2_chunks(2000), [t0], [t1], zmax=90.0, nside=4, region=(83.63, 22.01, 30),
                   ft2_tolerance=math.inf)
    results = {}
    if "a" in which:
        results["a"] = bench("a: 30 deg region", nrows, region=(83.63, 22.01, 30.0),
                             chunk_rows=a.chunk_rows)
    if "b" in which:
        results["b"] = bench("b: whole sky, threads", nrows, chunk_rows=a.chunk_rows)
    if "c" in which:
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          env={"NUMBA_NUM_THREADS": "1"}, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            # warm the workers (numba cache load)
            bench("c: warm-up", 2000, client=client)
            results["c"] = bench("c: whole sky, dask 2 workers", nrows, client=client,
                                 chunk_rows=a.chunk_rows)
    if "b" in results and "c" in results:
        d = np.abs(results["b"][0].exposure.values - results["c"][0].exposure.values).max()
        print(f"max |threads - dask| = {d:.3g} s", flush=True)


if __name__ == "__main__":
    main()
