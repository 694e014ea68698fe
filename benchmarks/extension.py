"""Extension and curvature timings on the shared Crab day (100 x 100 pixels of 0.2 deg,
20 energy bins, 200 MeV - 20 GeV; the Science Tools' diffuse maps), after setup and a fit:

* extension('Crab') with 21 widths (Fermipy's defaults), cold: every width's map made (and
  committed to a fresh product store), then warm: the maps in memory;
* the same with the TS map (make_tsmap, the default) and without;
* curvature('Crab') (the Crab is a PowerLaw2: converted to a power law first).

    FERMIXR_SHARED_DATA=../shared/data python benchmarks/extension.py

Goal (issue 17): extension with 21 widths <= 5 s on 2 cores.  Measured on the shared
2-core machine (load average ~2): cold 4.5 s (2.4 s with NUMBA_NUM_THREADS=1), warm 0.23 s,
warm with the TS map 1.0 s, curvature 0.12-0.27 s; under a load of ~15 (other jobs) cold
27 s and warm 2.6 s.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path


def main():
    from fermixr import Analysis

    shared = Path(os.environ.get("FERMIXR_SHARED_DATA", "../shared/data"))
    crab = shared / "lat-crab-1day"
    tmp = Path(tempfile.mkdtemp(prefix="fxr-ext-bench-"))
    cfg = {
        "data": {"evfile": str(crab / "ft1.fits.gz"), "scfile": str(crab / "ft2.fits.gz"),
                 "caldb": str(shared / "caldb"), "ltcube": str(crab / "ltcube.fits.gz")},
        "binning": {"coordsys": "GAL", "proj": "CAR", "npix": 100, "binsz": 0.2,
                    "binsperdec": 10},
        "selection": {"emin": 200, "emax": 20000, "zmax": 90, "evclass": 128, "evtype": 3,
                      "ra": 83.6331, "dec": 22.0145},
        "gtlike": {"irfs": "P8R2_SOURCE_V6", "edisp": False,
                   "srcmap": str(crab / "srcmap.fits.gz")},
        "ltcube": {"zmax": 180},
        "model": {"catalogs": [str(crab / "source_model.xml")]},
        "fileio": {"outdir": str(tmp / "run"), "cachedir": str(tmp / "store")},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        gta = Analysis(cfg).setup()
        gta.state.components
        print(f"setup (fresh store):                   {time.perf_counter() - t0:6.2f} s")
    gta.free_source("Crab", pars=["Integral", "Index"])
    gta.free_norm("Extragal_diffuse")
    gta.free_norm("Galactic_diffuse")
    gta.fit()
    print(f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', '(default)')}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    def timed(label, f):
        t = time.perf_counter()
        out = f()
        print(f"{label:<39}{time.perf_counter() - t:6.2f} s")
        return out

    out = timed("extension, 21 widths, cold (no TS map):",
                lambda: gta.extension("Crab", make_tsmap=False, write_fits=False,
                                      write_npy=False))
    timed("extension, 21 widths, warm (no TS map):",
          lambda: gta.extension("Crab", make_tsmap=False, write_fits=False, write_npy=False))
    timed("extension, 21 widths, warm + TS map:",
          lambda: gta.extension("Crab", write_fits=False, write_npy=False))
    print(f"   ext {out['ext']:.4f} deg, TS_ext {out['ts_ext']:.2f}, UL95 "
          f"{out['ext_ul95']:.4f} deg, {out['profile_width'].size} widths evaluated, "
          f"flags {sorted(out['flags'])}")
    c = timed("curvature:", lambda: gta.curvature("Crab"))
    print(f"   ts_curv {c['ts_curv']:.2f}, ple {c['ple_ts_curv']:.2f}, ple_free "
          f"{c['ple_free_ts_curv']:.2f}")


if __name__ == "__main__":
    main()
