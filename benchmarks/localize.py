"""localize and find_sources timings on the built-in synthetic ROI (examples/data).

    python benchmarks/localize.py [outdir]

* localize('SYN_CRAB') on the example ROI (6 x 6 deg, 0.25 deg pixels, 500 MeV - 100 GeV,
  SYN_CRAB's norm and index free): the first call (numba compilation, the moved-map model)
  and the next ones (same process).  The map of the source at its new position (update) is
  made when the state's components are next read; its time is printed separately.
* find_sources on a 100 x 100 ROI (0.1 deg pixels) with SYN_HARD left out of the model:
  the first call (the TS-map kernel and the new sources' maps are made and cached) and a
  second one (taken from the product store).

Targets (issue 17): localize <= 3 s, find_sources on a 100 x 100 ROI <= 10 s, on 2 cores.
Printed, not asserted.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _doc(outdir, **binning):
    import yaml

    ex = ROOT / "examples" / "quickstart.yaml"
    doc = yaml.safe_load(ex.read_text())
    for k in ("evfile", "scfile", "caldb"):
        doc["data"][k] = str(ex.parent / doc["data"][k])
    doc["model"]["catalogs"] = [str(ex.parent / c) for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str(ex.parent / doc["model"]["isodiff"])
    doc["model"]["src_roiwidth"] = 12.0
    doc.pop("steps")
    doc["binning"].update(binning)
    doc["selection"].update(emin=500.0, emax=100000.0)
    doc["fileio"] = {"outdir": str(outdir)}
    return doc


def _setup(doc):
    from fermixr import Analysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gta = Analysis(copy.deepcopy(doc)).setup()
    gta.state.components
    return gta


def main(outdir):
    import fermixr.estimators as E
    from fermixr.estimators import edits

    gta = _setup(_doc(Path(outdir) / "small", roiwidth=6.0, binsz=0.25, binsperdec=4))
    st = edits.free_source(gta.state, "SYN_CRAB", pars=["Prefactor", "Index"])
    times = []
    for i in range(4):
        t0 = time.perf_counter()
        res = E.run("localize", st, "SYN_CRAB")
        times.append(time.perf_counter() - t0)
    a = res.dataset.attrs
    t0 = time.perf_counter()
    res.state.components                      # the exact map at the new position
    t_map = time.perf_counter() - t0
    print(f"localize SYN_CRAB (24 x 24 px, {st.components[0].counts.shape[0]} energy bins):"
          f" first {times[0]:.2f} s, then {min(times[1:]):.3f}-{max(times[1:]):.3f} s "
          f"({a['nfit']} fits, method {a['method']}, r95 {a['pos_r95']:.4f} deg); "
          f"map at the new position {t_map:.2f} s")

    big = _setup(_doc(Path(outdir) / "big", roiwidth=10.0, binsz=0.1, binsperdec=4))
    st = edits.delete_source(big.state, "SYN_HARD")[0]
    E.run("tsmap", st)                        # its kernel made and cached
    t0 = time.perf_counter()
    E.run("tsmap", st)
    t_ts = time.perf_counter() - t0
    print(f"(one TS map of the 100 x 100 ROI, the tsmap estimator: {t_ts:.2f} s; "
          "find_sources makes one per iteration, the last one finding nothing)")
    for label in ("first", "second"):
        t0 = time.perf_counter()
        res = E.run("find_sources", st, sqrt_ts_threshold=5.0)
        dt = time.perf_counter() - t0
        ds = res.dataset
        print(f"find_sources on {st.components[0].geom.shape[0]} x "
              f"{st.components[0].geom.shape[1]} px ({label} call): {dt:.2f} s, "
              f"{ds.attrs['nsources']} source(s) "
              f"{[str(n) for n in ds['source'].values]}, {ds.attrs['npeaks']} peak(s)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))          # this checkout's fermixr
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as d:
            main(d)
