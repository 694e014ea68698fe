"""TS map: fermixr's ``tsmap`` estimator against Gammapy's ``TSMapEstimator``, same run.

Problem (benchmarks/_problem.py): ``--nbins`` (30) logarithmic bins 100 MeV - 100 GeV x
``--npix`` (100) x ``--npix`` pixels of 0.05 deg, ``--nsrc`` point sources with power-law
spectra on pixel centres over an isotropic background, a flat exposure, a Gaussian PSF
whose width falls with energy, cut at 3.717 sigma; Poisson counts from a truth computed by
neither library.  The background model of both TS maps is the isotropic background alone
(at its true norm), so the map shows the sources.

Test source on both sides: a point source with a power law of index 2.  Kernel: fermixr's
``max_kernel_radius`` R (deg, a disk) against Gammapy's ``kernel_width`` 2 R (a square box of
the same half-width, (2 R / binsz + 1)^2 pixels).  Energies: fermixr sums the per-energy-bin
Poisson terms of the full cube (the kernel of each bin from its own PSF);
Gammapy is run twice: ``sum_over_energy_groups=False`` (its fit on the full cube with a
kernel per energy), compared with fermixr's default (the same computation), and its default
``sum_over_energy_groups=True`` (counts, background and kernel summed over energy into one
image before the fit), compared with fermixr's ``sum_over_energy=True`` (the same summed
computation).  Both on one process (Gammapy's default ``n_jobs``).

Timed: fermixr warm-up (first call: numba compilation or cache load, the test-source maps),
then fermixr warm (median of ``--repeat`` calls; the kernel maps are recomputed in each),
Gammapy warm-up and Gammapy warm (one call each mode after the warm-up).  Printed: times,
the ratio, TS at the brightest source on each side and the correlation of the TS maps.

    PYTHONPATH=$PWD /work/gammapy-venv/bin/python benchmarks/tsmap.py
    options: --nbins 30 --npix 100 --nsrc 20 --radius 1.5 --repeat 3 --skip-gammapy-default
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _problem import (BKG_INDEX, BKG_PREFACTOR, CENTER, E_REF, EXPOSURE,  # noqa: E402
                      make_problem, psf_offsets_deg, psf_sigma_deg, truncated_gaussian)


# ---------------------------------------------------------------------------- fermixr
def fermixr_state(prob, counts):
    """An analysis state: one component (counts, the isotropic background's map), the
    background as the only source, and a map maker of point sources (fermixr's
    ``point_source_map`` with the problem's PSF table)."""
    from fermixr.geom.coords import geom_attrs
    from fermixr.geom.wcs import WcsGeom
    from fermixr.likelihood.roi import AnalysisState, Component, map_key
    from fermixr.model.build import source_from_dict
    from fermixr.model.skymodel import SkyModel
    from fermixr.srcmap.point import point_source_map

    geom = WcsGeom(CENTER, prob.npix, binsz=prob.binsz, proj="CAR", frame="CEL")
    off = psf_offsets_deg(float(psf_sigma_deg(prob.edges).max()))
    table = truncated_gaussian(off, psf_sigma_deg(prob.edges))

    def maker(src, i):
        ra, dec = src.skydir
        m = point_source_map(geom, prob.edges, ra, dec, EXPOSURE, off, table)
        return m.reshape(prob.nbins + 1, -1)

    bkg = source_from_dict({
        "name": "bkg", "SpatialModel": "ConstantValue", "SpectrumType": "PowerLaw",
        "spectral_pars": {
            "Prefactor": {"value": 1.0, "scale": BKG_PREFACTOR, "min": 0.0, "max": 100.0,
                          "free": True},
            "Index": {"value": BKG_INDEX, "scale": -1.0, "min": 0.0, "max": 5.0,
                      "free": False},
            "Scale": {"value": E_REF, "scale": 1.0, "free": False}}})
    comp = Component(counts=counts.reshape(prob.nbins, -1), edges=prob.edges,
                     maps={"bkg": prob.bkg_node_map()}, map_keys={"bkg": map_key(bkg)},
                     sky_shape=(prob.npix, prob.npix), geom_attrs=geom_attrs(geom))
    return AnalysisState(components=(comp,), model=SkyModel((bkg,)), map_maker=maker,
                         roi_center=CENTER)


def run_fermixr(state, radius, repeat, **kw):
    from fermixr.estimators.tsmap import tsmap

    t0 = time.perf_counter()
    ds = tsmap(state, max_kernel_radius=radius, **kw).dataset
    warm_up = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ds = tsmap(state, max_kernel_radius=radius, **kw).dataset
        times.append(time.perf_counter() - t0)
    return ds, warm_up, float(np.median(times)), times


# ---------------------------------------------------------------------------- Gammapy
def gammapy_dataset(prob, counts):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gammapy_side_by_side import _gp_dataset

    ds, _ = _gp_dataset(prob, counts)
    return ds


def run_gammapy(ds, radius, sum_over):
    import astropy.units as u
    from gammapy.estimators import TSMapEstimator
    from gammapy.modeling.models import PointSpatialModel, PowerLawSpectralModel, SkyModel

    model = SkyModel(spatial_model=PointSpatialModel(frame="icrs"),
                     spectral_model=PowerLawSpectralModel(index=2.0), name="test")
    est = TSMapEstimator(kernel_model=model, kernel_width=2 * radius * u.deg,
                         sum_over_energy_groups=sum_over)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = est.run(ds)
    dt = time.perf_counter() - t0
    ts = np.asarray(maps["ts"].data)[0]
    return ts, dt, est


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nbins", type=int, default=30)
    ap.add_argument("--npix", type=int, default=100)
    ap.add_argument("--nsrc", type=int, default=20)
    ap.add_argument("--binsz", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--radius", type=float, default=1.5, help="kernel radius, deg")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-gammapy", action="store_true")
    ap.add_argument("--skip-gammapy-default", action="store_true")
    args = ap.parse_args(argv)

    import fermixr

    prob = make_problem(args.nbins, args.npix, args.binsz, args.nsrc, args.seed)
    counts = prob.counts()
    print(f"problem: {prob.nbins} bins x {prob.npix} x {prob.npix} px of {prob.binsz} deg, "
          f"{prob.nsrc} point sources + isotropic background ({counts.sum():.0f} counts); "
          f"background model of both TS maps: the isotropic background at its true norm")
    print(f"fermixr from {os.path.dirname(fermixr.__file__)}")
    try:
        import numba

        nthreads = numba.get_num_threads()
    except ImportError:
        nthreads = "?"
    print(f"machine: {os.cpu_count()} cores, numba threads {nthreads}, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    npk = int(round(args.radius / prob.binsz))
    print(f"kernel: fermixr max_kernel_radius {args.radius} deg (disk of radius {npk} px); "
          f"gammapy kernel_width {2 * args.radius} deg (box {2 * npk + 1} x {2 * npk + 1} "
          "px)")
    print("energies: fermixr sums the Poisson terms of all 30 bins, a kernel per bin")

    state = fermixr_state(prob, counts)
    ds, fx_warm, fx, fx_all = run_fermixr(state, args.radius, args.repeat, flux_ul=False)
    fx_ts = np.asarray(ds["ts"].values)
    print(f"fermixr tsmap (ts, sqrt_ts, npred, amplitude, flux, flux_err; flux_ul=False): "
          f"warm-up (first call, compilation / cache load) {fx_warm:.3f} s; warm median "
          f"{fx:.3f} s over {args.repeat} ({', '.join(f'{t:.3f}' for t in fx_all)}); "
          f"{ds.attrs['pixel_evaluations']} pixel evaluations for "
          f"{ds.attrs['pixels_computed']} pixels", flush=True)
    _, _, fx_ul, _ = run_fermixr(state, args.radius, args.repeat, flux_ul=True)
    print(f"fermixr tsmap with flux_ul95 (its default): warm median {fx_ul:.3f} s",
          flush=True)
    dss, _, fxs, fxs_all = run_fermixr(state, args.radius, args.repeat, flux_ul=False,
                                       sum_over_energy=True)
    fxs_ts = np.asarray(dss["ts"].values)
    print(f"fermixr tsmap sum_over_energy=True (one summed image, as Gammapy's default; "
          f"flux_ul=False): warm median {fxs:.3f} s ({', '.join(f'{t:.3f}' for t in fxs_all)})",
          flush=True)
    if args.skip_gammapy:
        return
    import gammapy

    print(f"gammapy {gammapy.__version__}")
    gds = gammapy_dataset(prob, counts)
    t0 = time.perf_counter()
    run_gammapy(gammapy_dataset(prob, counts), args.radius, True)
    print(f"gammapy warm-up (one default TS map, first-use imports / compilation): "
          f"{time.perf_counter() - t0:.2f} s", flush=True)
    modes = [(False, "sum_over_energy_groups=False (fit on the full cube, kernel per "
                     "energy: like for like)")]
    if not args.skip_gammapy_default:
        modes.append((True, "sum_over_energy_groups=True (its default: one summed image)"))
    j = int(np.argmax(prob.prefactor))
    for sum_over, label in modes:
        fx, fx_ts = (fxs, fxs_ts) if sum_over else (fx, np.asarray(ds["ts"].values))
        gp_ts, gp, _ = run_gammapy(gds, args.radius, sum_over)
        gp_ts = np.maximum(gp_ts, 0.0)   # Gammapy signs TS by the norm; fermixr has A >= 0
        ok = np.isfinite(gp_ts) & np.isfinite(fx_ts)
        corr = float(np.corrcoef(fx_ts[ok], gp_ts[ok])[0, 1])
        iy, ix = int(prob.iy[j]), int(prob.ix[j])
        print(f"gammapy {label}: {gp:.3f} s; fermixr/gammapy time {fx / gp:.4f} "
              f"(gammapy / fermixr = {gp / fx:.1f} x)")
        print(f"    TS at the brightest source (pixel {iy}, {ix}): fermixr {fx_ts[iy, ix]:.2f}"
              f"  gammapy {gp_ts[iy, ix]:.2f}  (ratio {fx_ts[iy, ix] / gp_ts[iy, ix]:.4f});"
              f" map maxima fermixr {np.nanmax(fx_ts):.2f} gammapy {np.nanmax(gp_ts):.2f}; "
              f"correlation of the TS maps {corr:.5f}", flush=True)


if __name__ == "__main__":
    main()
