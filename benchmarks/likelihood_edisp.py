"""Benchmark of the binned Poisson likelihood with energy dispersion.

Problem (defaults): 30 measured bins x 200 x 200 pixels, 50 sources (an isotropic template
and 49 King-PSF blobs, built by ``benchmarks/likelihood.py``'s ``build`` on the true-energy
axis), ``n_extra`` = 2 true bins on each side, 60 free parameters (50 normalisations + 10
PowerLaw indices).  The response is a Gaussian in ln E with a resolution from 15% (100 MeV)
to 10% (100 GeV), columns normalised, entries below 1e-7 dropped (a band of ~7 true bins
per measured one); the isotropic template has dispersion disabled (identity), as Fermipy
does for the diffuse components.  Poisson data are simulated from the truth.

Figures printed, for the numba cost (``DispersedPoissonCost``), the old dense numpy cost
(``ReferenceDispersedPoissonCost``) and the dispersion-free cost on the measured bins of
the same problem (``BinnedPoissonCost``):

* log L alone, log L + gradient, the Fisher matrix, the Hessian;
* a full NEWTON fit (``fermixr.fit.fitter.fit``) from a perturbed start (the
  dispersion-free cost is fitted to the dispersed data, where its model is wrong and it
  needs more iterations, and to data simulated without dispersion);
* the agreement of the new cost with the old one (value, gradient, Fisher).

    python benchmarks/likelihood_edisp.py [--dtype float32] [--npix 200] [--old-fit]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from likelihood import build, timeit  # noqa: E402  (the dispersion-free benchmark)


def gaussian_drm(meas, true, cut=1e-7):
    """(n_meas, n_true): Gaussian in ln E, sigma 0.15 at 100 MeV -> 0.10 at 100 GeV."""
    from scipy.special import erf

    et = np.sqrt(true[:-1] * true[1:])
    sig = 0.15 - 0.05 * np.clip(np.log10(et / 100.0) / 3.0, 0.0, 1.0)
    z = (np.log(meas)[:, None] - np.log(et)[None, :]) / (np.sqrt(2.0) * sig[None, :])
    d = 0.5 * (erf(z[1:]) - erf(z[:-1]))
    d[d < cut] = 0.0
    return d / d.sum(axis=0)[None, :]     # every photon lands in some measured bin


def problem(npix, nbins, nsrc, nindex, n_extra, dtype, seed=1):
    from fermixr.irf.drm import identity_drm
    from fermixr.likelihood.cost import BinnedPoissonCost
    from fermixr.likelihood.dispersed import DispersedPoissonCost

    nt = nbins + 2 * n_extra
    _, maps, true, terms, rng = build(npix, nt, nsrc, nindex, dtype, seed)
    meas = true[n_extra:n_extra + nbins + 1]
    drm = gaussian_drm(meas, true)
    ident = identity_drm(nbins, n_extra)
    drms = [ident] + [drm] * (nsrc - 1)
    truth = DispersedPoissonCost(np.zeros((nbins, maps.shape[2])), maps, true, terms, drms)
    counts = rng.poisson(truth.model_cube()).astype(np.float64)
    cost = DispersedPoissonCost(counts, maps, true, terms, drms)
    mmaps = maps[:, n_extra:n_extra + nbins + 1]
    plain = BinnedPoissonCost(counts, mmaps, meas, terms)
    # the dispersion-free cost on data simulated without dispersion (for a fit on an
    # equal footing: on the dispersed data its model is misspecified)
    own = BinnedPoissonCost(rng.poisson(plain.model_cube()).astype(np.float64), mmaps, meas,
                            terms)
    return cost, plain, own, (counts, maps, true, terms, drms), drm, rng


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--npix", type=int, default=200)
    ap.add_argument("--nbins", type=int, default=30)
    ap.add_argument("--nsrc", type=int, default=50)
    ap.add_argument("--nindex", type=int, default=10)
    ap.add_argument("--n-extra", type=int, default=2)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--old-fit", action="store_true",
                    help="also run the full fit with the old numpy cost (minutes: its "
                         "Hessian takes 2 x npar gradient evaluations)")
    args = ap.parse_args(argv)
    import numba

    from fermixr.fit import fit
    from fermixr.likelihood.dispersed import ReferenceDispersedPoissonCost

    dtype = np.dtype(args.dtype)
    t = time.perf_counter()
    cost, plain, own, inputs, drm, rng = problem(args.npix, args.nbins, args.nsrc, args.nindex,
                                            args.n_extra, dtype)
    bw = np.count_nonzero(drm, axis=1)
    print(f"problem: {args.nbins} measured bins (+{args.n_extra} true each side) x "
          f"{args.npix}x{args.npix} pixels, {args.nsrc} sources in {len(cost._groups)} "
          f"response groups, {cost.npar} free parameters, maps {dtype.name} "
          f"{inputs[1].nbytes / 2**20:.0f} MiB, DRM band {bw.min()}-{bw.max()} true bins "
          f"per row, {int(cost.counts.sum())} counts; numba threads "
          f"{numba.get_num_threads()}, seg {cost.seg} px (built in "
          f"{time.perf_counter() - t:.1f} s)")
    x0 = cost.x0
    for c in (cost, plain):            # compile / warm up
        c.value_and_grad(x0)
        c(x0 * 1.01)
        c.fisher(x0)

    def xk(k):
        return x0 * (1.0 + 1e-9 * (k + 1))   # a new point each time (defeats the memo)

    def quiet(fn, rep):
        # BLAS threads spin for a while after a matrix product and slow down numba's
        # threads: let them settle before each measurement
        time.sleep(0.5)
        return timeit(fn, rep)[0]

    def times(c, rep, hess=True):
        out = {"v": quiet(lambda k: c(xk(k + 100)), rep),
               "vg": quiet(lambda k: c.value_and_grad(xk(k)), rep),
               "f": quiet(lambda k: c.fisher(xk(k + 200)), max(1, rep // 2))}
        if hess:
            out["h"] = quiet(lambda k: c.hessian(xk(k + 300)), 1)
        return out

    tn = times(cost, args.repeat)
    tp = times(plain, args.repeat)
    old = ReferenceDispersedPoissonCost(*inputs)
    to = times(old, 1, hess=False)
    t = time.perf_counter()
    vo, go = old.value_and_grad(x0)
    Fo = old.fisher(x0)
    vn, gn = cost.value_and_grad(x0)
    Fn = cost.fisher(x0)
    print(f"agreement new vs old at x0: |dlogL|/|logL| {abs(vn - vo) / abs(vo):.1e}, "
          f"max |dgrad|/max|grad| {np.max(np.abs(gn - go)) / np.max(np.abs(go)):.1e}, "
          f"max |dFisher|/|Fisher| {np.max(np.abs(Fn - Fo) / np.abs(Fo)):.1e}")
    del Fo, old

    def row(label, key):
        n, o, p = tn.get(key), to.get(key), tp.get(key)
        ostr = f"{1e3 * o:9.1f} ms  x{o / n:6.1f}" if o is not None else " " * 19
        print(f"{label:18s}: new {1e3 * n:8.1f} ms | old numpy {ostr} | no edisp "
              f"{1e3 * p:7.1f} ms (new/no-edisp {n / p:.2f})")

    row("log L alone", "v")
    row("log L + gradient", "vg")
    row("Fisher matrix", "f")
    row("Hessian (exact)", "h")
    print("   (the old cost's Hessian is 2 x npar gradient evaluations by differences: "
          f"~{2 * cost.npar * to['vg']:.0f} s)")

    # full fits from a perturbed start
    xs = x0.copy()
    nrm = cost.is_norm
    xs[nrm] *= np.exp(0.3 * rng.standard_normal(nrm.sum()))
    xs[~nrm] += 0.15 * rng.standard_normal((~nrm).sum())
    xs = np.clip(xs, cost.bounds[:, 0], cost.bounds[:, 1])
    for label, c in (("NEWTON fit (new)", cost), ("NEWTON fit no-edisp", plain),
                     ("  idem, own data", own)):
        t = time.perf_counter()
        res = fit(c, xs, optimizer="NEWTON")
        dt = time.perf_counter() - t
        print(f"{label:20s}: {dt:7.2f} s  success {res.fit_success}, quality "
              f"{res.fit_quality}, {res.info['iterations']} iterations, {res.nfev} log L+grad"
              f", {res.info['fisher_evaluations']} Fisher + 1 Hessian, edm {res.edm:.2g}")
        if c is cost:
            res_new = res
    if args.old_fit:
        old = ReferenceDispersedPoissonCost(*inputs)
        t = time.perf_counter()
        ro = fit(old, xs, optimizer="NEWTON")
        dt = time.perf_counter() - t
        dv = np.abs(ro.values - res_new.values) / res_new.errors
        print(f"NEWTON fit (old)    : {dt:7.2f} s  success {ro.fit_success}, quality "
              f"{ro.fit_quality}; vs new: |d loglike| {abs(ro.loglike - res_new.loglike):.1e}"
              f", max |d value|/error {dv.max():.1e}, max rel d error "
              f"{np.max(np.abs(ro.errors / res_new.errors - 1)):.1e}")


if __name__ == "__main__":
    main()
