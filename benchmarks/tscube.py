"""Time of a TS cube (fermixr.estimators.tscube) of 100 x 100 pixels x 20 energy bins x 10
norm points on a synthetic ROI (benchmarks/_problem.py: flat exposure, Gaussian PSF, 10
power-law point sources over an isotropic background, Poisson counts; 0.1 deg pixels, 100
MeV - 100 GeV), background norms fixed (Fermipy's defaults); with --free the isotropic
norm free in the broadband fits within the prior of its covariance (cov_scale_bb = 1),
with --free-bins in the per-bin fits too (cov_scale = 1).
Printed, not asserted; the acceptance target is <= 60 s on 2 cores.

    python benchmarks/tscube.py [--npix 100] [--nbins 20] [--nnorm 10] [--free]
                                [--free-bins]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _problem import (CENTER, EXPOSURE, make_problem, psf_offsets_deg,  # noqa: E402
                      psf_sigma_deg, truncated_gaussian)


def synthetic_state(npix=100, nbins=20, binsz=0.1, nsrc=10, seed=7):
    """An AnalysisState of the benchmark problem that can make maps of new point sources
    (its map_maker), as a state loaded from a run."""
    from fermixr.geom.coords import geom_attrs
    from fermixr.geom.wcs import WcsGeom
    from fermixr.likelihood.roi import AnalysisState, Component
    from fermixr.srcmap.point import point_source_map

    from gammapy_side_by_side import _fermixr_model

    prob = make_problem(nbins=nbins, npix=npix, binsz=binsz, nsrc=nsrc, seed=seed)
    geom = WcsGeom(CENTER, npix, binsz=binsz, proj="CAR", frame="CEL")
    off = psf_offsets_deg(float(psf_sigma_deg(prob.edges).max()))
    table = truncated_gaussian(off, psf_sigma_deg(prob.edges))

    def map_maker(src, i):
        ra, dec = src.skydir
        return point_source_map(geom, prob.edges, ra, dec, EXPOSURE, off,
                                table).reshape(nbins + 1, -1)

    model = _fermixr_model(prob, prob.prefactor, 1.0)
    for s in model:              # only the isotropic norm free (fixed unless --free asks)
        if s.name != "bkg":
            model = model.replace_source(s.with_param("Prefactor", free=False))
    maps = {s.name: map_maker(s, 0) for s in model if s.name != "bkg"}
    maps["bkg"] = prob.bkg_node_map()
    comp = Component(counts=prob.counts().reshape(nbins, -1), edges=prob.edges, maps=maps,
                     sky_shape=(npix, npix), geom_attrs=geom_attrs(geom))
    return AnalysisState(components=(comp,), model=model, map_maker=map_maker,
                         roi_center=CENTER)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npix", type=int, default=100)
    ap.add_argument("--nbins", type=int, default=20)
    ap.add_argument("--nnorm", type=int, default=10)
    ap.add_argument("--free", action="store_true", help="isotropic norm free (prior)")
    ap.add_argument("--free-bins", action="store_true",
                    help="isotropic norm free in the per-bin fits too")
    args = ap.parse_args(argv)
    import numba

    import fermixr.estimators as E

    state = synthetic_state(args.npix, args.nbins)
    kw = dict(nnorm=args.nnorm)
    if args.free or args.free_bins:
        kw.update(cov_scale_bb=1.0)
    if args.free_bins:
        kw.update(cov_scale=1.0)
    small = synthetic_state(20, 4)
    t0 = time.perf_counter()
    E.run("tscube", small, **kw)                 # numba compilation, not timed
    warm = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    ds = E.run("tscube", state, **kw).dataset
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"tscube {args.npix} x {args.npix} pixels x {args.nbins} bins x {args.nnorm} "
          f"norm points{' (background norm free)' if args.free else ''}"
          f"{' (background norm free, in the bins too)' if args.free_bins else ''}: "
          f"{wall:.1f} s wall, "
          f"{cpu:.1f} s cpu, {numba.get_num_threads()} numba threads (warm-up {warm:.1f} s); "
          f"max TS {float(np.nanmax(ds['ts'].values)):.1f}, "
          f"{int((ds['fit_status'].values != 0).sum())} unconverged pixels")


if __name__ == "__main__":
    main()
