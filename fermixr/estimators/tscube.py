"""TS cube (Fermipy's ``tscube``, gttscube's semantics): at every pixel of the first
component's sky grid, a joint Newton fit of a test source's norm A >= 0 (default a point
source with a power law of index 2) and of the shifts d_b of the free background norms
(the sources whose norm is free in the state), over the pixels and energy bins where the
test source's kernel is positive (within ``KERNEL_RADIUS`` of the pixel, as the TS map's
kernel; the kernel is cut out of the test source's map made at the centre pixel, so it
reaches no farther than that map's nearest edge), summed over energies and components,
with likelihood weights:

    lnL(A, d) = sum w [n log(mu / m) - (mu - m)],   mu = m + A s + sum_b d_b B_b,

minus 1/2 d^T (cov_scale_bb C)^-1 d, C the covariance of the free background norms (the
last fit's, relative to their values; without one, the inverse of the Poisson Hessian of
the norms over the ROI).  The rest of the ROI's constraint on the background norms is that
prior; the background norms move only with the pixels the test source touches.
``cov_scale_bb`` <= 0: background norms fixed, and the fit is the TS map's.

TS = 2 (max lnL(A, d) - max lnL(0, d)), clipped at 0.  With ``do_sed``, per energy bin the
same fit on that bin alone (background norms fixed at the broadband fit's values, or free
within ``cov_scale`` times the broadband fit's covariance), its TS, error (curvature), 95%
upper limit (Delta lnL = 1.353 on the profile), log-likelihood over the kernel's pixels, a
scan of ``nnorm`` norms from 0 over +- ``norm_sigma`` sigma around the best norm (which is
one of the points), with Delta lnL relative to the bin's maximum.  Norms are relative to
the test source's spectrum; ``ref_*`` give its dN/dE, flux, energy flux and counts per bin.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np

from ..errors import EstimatorError
from ..likelihood.roi import AnalysisState, component_costs
from . import EstimatorResult, register
from . import _tscube_kernels as K
from .tsmap import _bin_mask, _hpx_part, _source_counts, make_test_source, wcs_placement

__all__ = ["tscube", "KERNEL_RADIUS", "DLNL_UL95"]

KERNEL_RADIUS = 3.0          # deg: the footprint, the TS map's default max_kernel_radius
DLNL_UL95 = 1.3527717270477028   # Delta lnL of a one-sided 95% upper limit (chi2_1 2.7055/2)
_DEFAULT_MODEL = {"SpatialModel": "PointSource", "SpectrumType": "PowerLaw", "Index": 2.0}


class TscubeWarning(UserWarning):
    """An option of the tscube section that has no effect in fermixr was set."""


# ----------------------------------------------------------------------- placements --
def _wcs_part(state, i, out_lon, out_lat, out_frame, ref_binsz, model, radius):
    """WCS placement: kernels per sub-pixel offset class (ncls, ne, kh, kw), footprint
    masks (ncls, kh, kw), and the component pixel and class under each output pixel."""
    from ..geom.frames import angular_separation

    comp = state.components[i]
    g = comp.geom
    ny, nx = g.shape
    nsub = max(1, int(round(g.binsz / ref_binsz)))
    cx, cy = nx // 2, ny // 2
    r = int(math.ceil(radius / g.binsz))
    r = max(0, min(r, cx, cy, nx - 1 - cx, ny - 1 - cy))
    lon_c, lat_c = g.pixel_centers()
    win = (slice(cy - r, cy + r + 1), slice(cx - r, cx + r + 1))
    ne = comp.counts.shape[0]
    kern = np.zeros((nsub * nsub, ne, 2 * r + 1, 2 * r + 1))
    foot = np.zeros((nsub * nsub, 2 * r + 1, 2 * r + 1), dtype=np.uint8)
    for qy in range(nsub):
        for qx in range(nsub):
            lon, lat = g.pix_to_world(cx + qx / nsub, cy + qy / nsub)
            src = make_test_source(state, model, (float(lon), float(lat)), g.frame)
            cube = _source_counts(state, i, src).reshape((-1, ny, nx))
            inside = angular_separation(lon_c[win], lat_c[win], float(lon),
                                        float(lat)) <= radius
            kern[qy * nsub + qx] = cube[(slice(None),) + win] * inside[None]
            foot[qy * nsub + qx] = inside
    ix, iy, cls = wcs_placement(g, nsub, out_lon, out_lat, out_frame)
    return ("wcs", kern, foot, ix, iy, cls, (ne, ny, nx))


# ----------------------------------------------------------------------------- sums --
class _Sums:
    """The log L, gradient and Hessian of every output pixel summed over the components
    (``parts``: placement, n, m, w, B per component), for one energy bin or all."""

    def __init__(self, parts, npix, nparam, backend):
        self.parts, self.npix, self.P = parts, npix, nparam
        self.numba = backend == "numba"
        self.boxes = [K.wcs_box(pl[1], pl[2], False) if pl[0] == "wcs" else None
                      for pl, n, m, w, B in parts]
        self.kboxes = self.boxes

    def scan(self, apts, theta, kbin):
        """log L minus its value at norm 0 at the norms ``apts`` (npix, q) of every pixel,
        the background shifts fixed at theta[:, 1:], in bin ``kbin`` (None: all)."""
        out = np.zeros(apts.shape)
        sel = np.arange(self.npix, dtype=np.int64)
        apts = np.ascontiguousarray(apts, dtype=float)
        theta = np.ascontiguousarray(theta, dtype=float)
        for (place, n, m, w, B), box in zip(self.parts, self.kboxes):
            ne = n.shape[0]
            k0, k1 = (0, ne) if kbin is None else (int(kbin), int(kbin) + 1)
            if place[0] == "wcs":
                _, kern, foot, ix, iy, cls, shape3 = place
                f = K.wcs_scan if self.numba else K.wcs_scan_numpy
                f(apts, theta, n.reshape(shape3), m.reshape(shape3), w.reshape(shape3),
                  B.reshape(shape3 + (B.shape[-1],)), kern, foot, box, ix, iy, cls, k0, k1,
                  out, sel)
            else:
                _, vals, ptr, idx = place
                f = K.sparse_scan if self.numba else K.sparse_scan_numpy
                f(apts, theta, n, m, w, B, ptr, idx, vals, k0, k1, out, sel)
        return out

    def __call__(self, theta_sel, sel, kbin=None):
        n_sel = sel.size
        theta = np.zeros((self.npix, self.P))
        theta[sel] = theta_sel
        g = np.zeros((self.npix, self.P))
        H = np.zeros((self.npix, self.P, self.P))
        L = np.zeros(self.npix)
        for (place, n, m, w, B), box in zip(self.parts, self.boxes):
            ne = n.shape[0]
            k0, k1 = (0, ne) if kbin is None else (int(kbin), int(kbin) + 1)
            if place[0] == "wcs":
                _, kern, foot, ix, iy, cls, shape3 = place
                f = K.wcs_accumulate if self.numba else K.wcs_accumulate_numpy
                f(theta, n.reshape(shape3), m.reshape(shape3), w.reshape(shape3),
                  B.reshape(shape3 + (B.shape[-1],)), kern, foot, box, ix, iy, cls, k0, k1,
                  g, H, L, sel)
            else:
                _, vals, ptr, idx = place
                f = K.sparse_accumulate if self.numba else K.sparse_accumulate_numpy
                f(theta, n, m, w, B, ptr, idx, vals, k0, k1, g, H, L, sel)
        if n_sel == self.npix:
            return g, H, L
        return g[sel], H[sel], L[sel]


def _objective(sums, theta, sel, kbin, prior):
    """log L with the Gaussian prior on the background shifts: (g, H, F)."""
    g, H, F = sums(theta, sel, kbin)
    if prior is not None:
        mean, prec = prior                           # (nsel, nb), (nsel, nb, nb)
        dd = theta[:, 1:] - mean
        pd = np.einsum("jab,jb->ja", prec, dd)
        F = F - 0.5 * np.einsum("ja,ja->j", dd, pd)
        g = g.copy()
        g[:, 1:] -= pd
        H = H.copy()
        H[:, 1:, 1:] -= prec
    return g, H, F


def _newton(sums, theta0, sel, *, kbin=None, free_a=True, free_bkg=False, prior=None,
            tol=1e-3, tol_type=0, max_iter=30, init_lambda=0.0):
    """Maximise the objective per pixel of ``sel`` from ``theta0`` (nsel, P): Newton
    steps (damped as Levenberg-Marquardt with ``init_lambda`` > 0, else halved until the
    objective rises), A >= 0 with an active set, background norms >= 0 (d >= -1).
    Converged when the estimated rise of the next step (EDM) is below ``tol`` (absolute,
    tol_type 0; relative to |log L|, 1).  Returns theta, F, H (with the prior) and the
    status (0 converged, 1 iteration limit)."""
    P = theta0.shape[1]
    nsel = sel.size
    free = np.zeros(P, dtype=bool)
    free[0] = free_a
    free[1:] = free_bkg
    theta = np.array(theta0, dtype=float)
    best = theta.copy()
    bF = np.full(nsel, -np.inf)
    bg = np.zeros((nsel, P))
    bH = np.zeros((nsel, P, P))
    t = np.ones(nsel)
    lam = np.full(nsel, float(init_lambda))
    status = np.ones(nsel, dtype=np.int64)
    todo = np.arange(nsel)
    if not free.any():
        g, H, F = _objective(sums, theta, sel, kbin, None if prior is None else prior)
        return theta, F, H, np.zeros(nsel, dtype=np.int64)
    for _ in range(max_iter + 1):
        if not todo.size:
            break
        pr = None if prior is None else (prior[0][todo], prior[1][todo])
        g, H, F = _objective(sums, theta[todo], sel[todo], kbin, pr)
        ok = np.isfinite(F) & (F >= bF[todo] - 1e-12 * np.maximum(1.0, np.abs(bF[todo])))
        ok |= ~np.isfinite(bF[todo]) & np.isfinite(F)
        a, r = todo[ok], todo[~ok]
        best[a], bF[a], bg[a], bH[a] = theta[a], F[ok], g[ok], H[ok]
        if init_lambda > 0:
            lam[a] = lam[a] / 10.0
            lam[r] = np.maximum(lam[r] * 10.0, 1e-3)
        else:
            t[a] = 1.0
            t[r] = t[r] * 0.5
        # the step from the best point
        gb, Hb = bg[todo].copy(), bH[todo].copy()
        fr = np.broadcast_to(free, gb.shape).copy()
        fr[:, 0] &= ~((best[todo, 0] <= 0.0) & (gb[:, 0] <= 0.0))   # A held at its bound
        M = -Hb
        M = M + lam[todo, None, None] * np.einsum("jpp->jp", M)[:, :, None] * np.eye(P)
        outer = fr[:, :, None] & fr[:, None, :]
        M = np.where(outer, M, 0.0) + np.where(fr, 0.0, 1.0)[:, :, None] * np.eye(P)
        # log L linear in A (no counts under the kernel) and falling: its maximum is A = 0
        to_zero = fr[:, 0] & ~(M[:, 0, 0] > 0) & (gb[:, 0] < 0)
        gb = np.where(fr, gb, 0.0)
        dia = np.einsum("jpp->jp", M)
        void = ~(dia > 0) | ~np.isfinite(dia)        # no information on that parameter
        if void.any():
            M = np.where((void[:, :, None] | void[:, None, :]), 0.0, M) \
                + void[:, :, None] * np.eye(P)
            gb = np.where(void, 0.0, gb)
        with np.errstate(all="ignore"):
            try:
                step = np.linalg.solve(M, gb[..., None])[..., 0]
            except np.linalg.LinAlgError:
                step = np.stack([np.linalg.lstsq(Mi, gi, rcond=None)[0]
                                 for Mi, gi in zip(M, gb)])
        step = np.where(np.isfinite(step), step, 0.0)
        edm = 0.5 * np.einsum("jp,jp->j", gb, step)
        scale = 1.0 if tol_type == 0 else np.maximum(np.abs(bF[todo]), 1e-300)
        conv = (np.abs(edm) < tol * scale) & ok
        stalled = (t[todo] < 1e-8) | (lam[todo] > 1e12)
        new = best[todo] + t[todo, None] * step
        new[:, 0] = np.where(to_zero, 0.0, np.maximum(new[:, 0], 0.0))
        conv &= ~(to_zero & (best[todo, 0] > 0))
        new[:, 1:] = np.maximum(new[:, 1:], -1.0)
        theta[todo] = new
        status[todo[conv | stalled]] = np.where(conv[conv | stalled], 0, 1)
        todo = todo[~(conv | stalled)]
    # the last steps taken (converged pixels) and the best points of the others
    pr = prior
    g, H, F = _objective(sums, theta, sel, kbin, pr)
    worse = ~(F >= bF - 1e-12 * np.maximum(1.0, np.abs(bF)))
    if worse.any():
        theta[worse], F[worse], H[worse] = best[worse], bF[worse], bH[worse]
    return theta, F, H, status


def _sigma_a(H, free_bkg):
    """1-sigma error of A from the curvature (the background shifts profiled)."""
    P = H.shape[1]
    if P == 1 or not free_bkg:
        c = -H[:, 0, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(c > 0, 1.0 / np.sqrt(c), np.nan)
    out = np.full(H.shape[0], np.nan)
    for j in range(H.shape[0]):
        try:
            cov = np.linalg.inv(-H[j])
        except np.linalg.LinAlgError:
            continue
        if cov[0, 0] > 0:
            out[j] = math.sqrt(cov[0, 0])
    return out


def _profile_at(sums, a, theta_ref, sel, kbin, free_bkg, prior, fit_kw):
    """log L at norm ``a`` (nsel,) with the background shifts profiled (or fixed at
    ``theta_ref``): (F, dF/dA)."""
    F, dF, _ = _profile_full(sums, a, theta_ref, sel, kbin, free_bkg, prior, fit_kw)
    return F, dF


def _profile_full(sums, a, theta_ref, sel, kbin, free_bkg, prior, fit_kw):
    """:func:`_profile_at` and the parameters at the profile's maximum (the start of the
    next profile near ``a``)."""
    th = np.array(theta_ref, dtype=float)
    th[:, 0] = a
    if free_bkg:
        th, F, _, _ = _newton(sums, th, sel, kbin=kbin, free_a=False, free_bkg=True,
                              prior=prior, **fit_kw)
    g, _, F = _objective(sums, th, sel, kbin, prior)
    return F, g[:, 0], th


def _upper_limit(sums, theta, Fmax, sigma, sel, kbin, free_bkg, prior, fit_kw,
                 dlnl=DLNL_UL95, n_iter=50):
    """Norm above the best one where the profile falls ``dlnl`` below its maximum
    (Newton on the concave profile, kept inside its bracket; pixels leave the loop once
    the profile is within 1e-6 of the target)."""
    a_hat = theta[:, 0]
    target = Fmax - dlnl
    s = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.maximum(a_hat, 1.0))
    a = a_hat + math.sqrt(2 * dlnl) * s
    lo = a_hat.copy()
    hi = np.full_like(a, np.inf)
    todo = np.arange(a.size)
    start = np.array(theta, dtype=float)
    for _ in range(n_iter):
        if not todo.size:
            break
        pr = None if prior is None else (prior[0][todo], prior[1][todo])
        F, dF, th = _profile_full(sums, a[todo], start[todo], sel[todo], kbin, free_bkg,
                                  pr, fit_kw)
        start[todo] = th                 # the background where the profile was
        f = F - target[todo]
        at, lt, ht = a[todo], lo[todo], hi[todo]
        above = f > 0
        lt = np.where(above, np.maximum(lt, at), lt)
        ht = np.where(above, ht, np.minimum(ht, at))
        with np.errstate(all="ignore"):
            new = at - f / dF
        bad = ~np.isfinite(new) | (new <= lt) | (new >= ht)
        new = np.where(bad, np.where(np.isfinite(ht), 0.5 * (lt + ht), 2.0 * at + s[todo]),
                       new)
        hit = np.abs(f) < 1e-6
        done = hit | (np.abs(new - at) <= 1e-9 * np.abs(at) + 1e-14 * s[todo])
        a[todo] = np.where(hit, at, new)
        lo[todo], hi[todo] = lt, ht
        todo = todo[~done]
    return a


def _scan_points(a_hat, sigma, ul, nnorm, norm_sigma):
    """``nnorm`` increasing norms per pixel: 0, then a grid over [best - norm_sigma sigma,
    best + norm_sigma sigma] (above 0) with the best norm one of them."""
    s = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.nan)
    width = norm_sigma * s
    width = np.where(np.isfinite(width) & (width > 0), width,
                     np.where(np.isfinite(ul) & (ul > 0), 2.0 * ul, 1.0))
    hi = a_hat + width
    lo = np.maximum(a_hat - width, 0.0)
    n1 = nnorm - 1
    frac = np.arange(1, n1 + 1) / n1 if n1 else np.zeros(0)
    start = np.where(lo > 0, lo, 0.0)
    base = np.where((lo > 0)[:, None],
                    lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, n1)[None, :],
                    hi[:, None] * frac[None, :])
    del start
    pos = a_hat > 0
    if n1 and pos.any():
        near = np.argmin(np.abs(base - a_hat[:, None]), axis=1)
        rows = np.nonzero(pos)[0]
        base[rows, near[rows]] = a_hat[rows]
    pts = np.concatenate([np.zeros((a_hat.size, 1)), base], axis=1)
    return np.sort(pts, axis=1)


# ------------------------------------------------------------------------- estimator --
def _check(nnorm, norm_sigma, tol, max_iter, tol_type, init_lambda, cov_scale,
           cov_scale_bb, remake_test_source, st_scan_level, backend, model):
    def bad(key, got, want):
        raise EstimatorError(f"tscube: {key}: got {got!r}; expected {want}")

    if backend not in ("numba", "numpy"):
        bad("backend", backend, "'numba' or 'numpy'")
    if isinstance(nnorm, bool) or not isinstance(nnorm, (int, np.integer)) or nnorm < 2:
        bad("nnorm", nnorm, "an integer >= 2")
    for key, v in (("norm_sigma", norm_sigma), ("tol", tol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            bad(key, v, "a number > 0")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) \
            or max_iter < 1:
        bad("max_iter", max_iter, "an integer >= 1")
    if tol_type not in (0, 1) or isinstance(tol_type, bool):
        bad("tol_type", tol_type, "0 (absolute) or 1 (relative)")
    if isinstance(init_lambda, bool) or not isinstance(init_lambda, (int, float)) \
            or not init_lambda >= 0:
        bad("init_lambda", init_lambda, "a number >= 0")
    for key, v in (("cov_scale", cov_scale), ("cov_scale_bb", cov_scale_bb)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            bad(key, v, "a number (< 0: background norms fixed)")
    if remake_test_source:
        raise EstimatorError("tscube: remake_test_source: got True; remaking the test "
                             "source's map at every pixel is not implemented (its map is "
                             "made once per sub-pixel offset and shifted); leave it false")
    if st_scan_level:
        warnings.warn(f"tscube.st_scan_level: set to {st_scan_level!r}, accepted without "
                      "effect: it asks for Science Tools cross-check fits, and fermixr has "
                      "no Science Tools", TscubeWarning, stacklevel=3)
    if model is not None and not isinstance(model, dict):
        raise EstimatorError(f"tscube: model: got {model!r}; expected a source dictionary "
                             "such as {'SpatialModel': 'PointSource', 'Index': 2.0}")


def _background(state, costs):
    """The free background norms: names 'source:param', baseline values, and per
    component the counts of each of their sources (ne, npix, nb)."""
    c0 = costs[0]
    names = [p for p, isn in zip(c0.parameters, c0.is_norm) if isn]
    x0 = np.array([c0.x0[list(c0.parameters).index(p)] for p in names], dtype=float)
    cubes = []
    for c, comp in zip(costs, state.components):
        ne = comp.counts.shape[0]
        arr = np.zeros((ne, comp.counts[0].size, len(names)))
        for b, p in enumerate(names):
            arr[:, :, b] = np.asarray(c.source_cube(p.rsplit(":", 1)[0], c.x0)).reshape(ne, -1)
        cubes.append(arr)
    return names, x0, cubes


def _norm_covariance(state, names, x0, parts):
    """Covariance of the relative background norms theta_b = x_b / x0_b: the last fit's
    (when it holds them all), else the inverse of the Poisson Hessian of the norms."""
    fc = state.fit_covariance()
    if fc is not None and all(n in fc[0] for n in names):
        ix = [list(fc[0]).index(n) for n in names]
        cov = np.asarray(fc[1], dtype=float)[np.ix_(ix, ix)]
        return cov / np.outer(x0, x0), "fit"
    nb = len(names)
    Hs = np.zeros((nb, nb))
    for _, n, m, w, B in parts:
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(m > 0, w * n / m ** 2, 0.0).reshape(-1)
        Bf = B.reshape(-1, nb)
        Hs += (Bf * c[:, None]).T @ Bf
    try:
        return np.linalg.inv(Hs), "hessian"
    except np.linalg.LinAlgError:
        raise EstimatorError("tscube: the free background norms are not constrained by "
                             "the data (singular Hessian); fix them or fit first") from None


def _prec(cov, scale):
    try:
        return np.linalg.inv(scale * np.asarray(cov))
    except np.linalg.LinAlgError:
        return np.linalg.pinv(scale * np.asarray(cov))


@register("tscube", version="1", product="tscube", section="tscube", needs_source=False)
def tscube(state: AnalysisState, *, model=None, do_sed=True, nnorm=10, norm_sigma=5.0,
           cov_scale_bb=-1.0, cov_scale=-1.0, tol=1e-3, max_iter=30, tol_type=0,
           remake_test_source=False, st_scan_level=0, init_lambda=0, backend="numba"):
    """TS cube of a test source: per pixel a joint fit of its norm and the free
    background norms (prior from the fit covariance), TS, and per energy bin the norm,
    its TS, error, upper limit and likelihood scan (Fermipy's gttscube)."""
    import xarray as xr

    from ..geom.axes import EnergyAxis
    from ..geom.coords import geom_attrs, geom_coords, sky_dims
    from ..geom.hpx import HpxGeom

    _check(nnorm, norm_sigma, tol, max_iter, tol_type, init_lambda, cov_scale,
           cov_scale_bb, remake_test_source, st_scan_level, backend, model)
    if not len(state.model):
        raise EstimatorError("tscube: the model has no source; the TS cube needs a "
                             "background model")
    try:                                            # fails early on a model that does not parse
        src0 = make_test_source(state, model)
    except EstimatorError as e:
        raise EstimatorError(str(e).replace("tsmap:", "tscube:", 1)) from None
    if state.map_maker is None:
        raise EstimatorError("tscube: this analysis state cannot make the test source's "
                             "maps (it was not loaded from a run and has no map_maker)")
    comps = state.components
    edges = np.asarray(comps[0].edges, dtype=float)
    if do_sed and any(c.edges.shape != edges.shape or not np.allclose(c.edges, edges,
                                                                       rtol=1e-9)
                      for c in comps[1:]):
        raise EstimatorError("tscube: do_sed: the components have different energy bins "
                             "(" + "; ".join(f"{len(c.edges) - 1} bins {c.edges[0]:g}-"
                                              f"{c.edges[-1]:g} MeV" for c in comps)
                             + "); per-bin fits need one binning, or set do_sed false")
    out_geom = comps[0].geom
    out_lon, out_lat = (np.ravel(a) for a in out_geom.pixel_centers())
    npix = out_lon.size
    if npix == 0:
        raise EstimatorError("tscube: the first component's sky grid has no pixel")
    ref_binsz = out_geom.binsz if not isinstance(out_geom, HpxGeom) else \
        math.degrees(math.sqrt(4 * math.pi / out_geom.npix_allsky))
    costs = component_costs(state)
    bb_free = cov_scale_bb > 0
    bin_free = do_sed and cov_scale > 0
    names, x0, bcubes = [], np.zeros(0), None
    if bb_free or bin_free:
        names, x0, bcubes = _background(state, costs)
    nb = len(names)
    parts = []
    for i, (comp, c) in enumerate(zip(comps, costs)):
        ne = comp.counts.shape[0]
        m = np.asarray(c.model_cube(c.x0), dtype=np.float64).reshape(ne, -1)
        w = np.ones_like(m) if comp.wmap is None else \
            np.asarray(comp.wmap, float).reshape(ne, -1)
        if isinstance(comp.geom, HpxGeom):
            place = _hpx_part(state, i, out_lon, out_lat, out_geom.frame, model,
                              KERNEL_RADIUS, np.ones(ne, dtype=bool))
        else:
            place = _wcs_part(state, i, out_lon, out_lat, out_geom.frame, ref_binsz, model,
                              KERNEL_RADIUS)
        B = np.zeros((ne, m.shape[1], nb)) if bcubes is None else bcubes[i]
        parts.append((place, np.ascontiguousarray(comp.counts.reshape(ne, -1), dtype=float),
                      np.ascontiguousarray(m), np.ascontiguousarray(w),
                      np.ascontiguousarray(B)))
    P = 1 + nb
    sums = _Sums(parts, npix, P, backend)
    sel = np.arange(npix, dtype=np.int64)
    fit_kw = dict(tol=float(tol), tol_type=int(tol_type), max_iter=int(max_iter),
                  init_lambda=float(init_lambda))
    prior_src = "none"
    cov_theta = None
    if nb:
        cov_theta, prior_src = _norm_covariance(state, names, x0, parts)

    # ---- broadband
    theta0 = np.zeros((npix, P))
    prior_bb = None
    if bb_free:
        prior_bb = (np.zeros((npix, nb)),
                    np.broadcast_to(_prec(cov_theta, cov_scale_bb), (npix, nb, nb)))
    th1, F1, H1, status = _newton(sums, theta0, sel, free_a=True, free_bkg=bb_free,
                                  prior=prior_bb, **fit_kw)
    if bb_free:
        _, F0, _, _ = _newton(sums, theta0, sel, free_a=False, free_bkg=True,
                              prior=prior_bb, **fit_kw)
    else:
        F0 = np.zeros(npix)
    ts = np.maximum(2.0 * (F1 - F0), 0.0)
    ts = np.where(th1[:, 0] > 0, ts, 0.0)
    a_err = _sigma_a(H1, bb_free)
    a_ul = _upper_limit(sums, th1, F1, a_err, sel, None, bb_free, prior_bb, fit_kw)
    ksum = _kernel_sum(parts, npix, None, backend)

    sm = state.spectral(src0)
    normp = src0.param(sm.norm_param)
    p = src0.spectral_values()
    shape = out_geom.shape
    dims = sky_dims(out_geom)
    ebins = EnergyAxis(edges)
    e_min, e_max = edges[:-1], edges[1:]
    e_ref = np.sqrt(e_min * e_max)

    def sky(x, units, desc):
        return (dims, np.asarray(x, dtype=np.float64).reshape(shape),
                {"units": units, "description": desc})

    data = {
        "ts": sky(ts, "", "test statistic of the broadband fit, 2 (lnL(A) - lnL(0)), "
                          "clipped at 0"),
        "sqrt_ts": sky(np.sqrt(ts), "", "sqrt of ts"),
        "npred": sky(th1[:, 0] * ksum, "count", "predicted counts of the test source at "
                                                "its best norm (within the footprint)"),
        "amplitude": sky(th1[:, 0] * normp.physical, "cm-2 s-1 MeV-1",
                         f"best-fit {normp.name} of the test source"),
        "amplitude_err": sky(a_err * normp.physical, "cm-2 s-1 MeV-1",
                             f"1-sigma error of {normp.name} (curvature)"),
        "fit_norm": sky(th1[:, 0], "", "broadband norm relative to the test source's "
                                       "spectrum"),
        "fit_norm_err": sky(a_err, "", "1-sigma error of fit_norm (curvature)"),
        "fit_norm_ul": sky(a_ul, "", "95% upper limit of fit_norm (Delta lnL 1.353)"),
        "fit_loglike": sky(F1, "", "log L of the broadband fit over the footprint minus "
                                   "its value at the baseline"),
        "fit_status": (dims, status.reshape(shape).astype(np.int32),
                       {"units": "", "description": "0: the Newton fit converged; 1: it "
                                                    "stopped at max_iter or stalled"}),
    }
    if nb and bb_free:
        data["fit_bkg_norm"] = (dims + ("bkg_param",), (1.0 + th1[:, 1:]).reshape(
            shape + (nb,)), {"units": "", "description": "free background norms of the "
                                                         "broadband fit, relative to the "
                                                         "baseline"})

    if do_sed:
        nbin = edges.size - 1
        out = {k: np.zeros((npix, nbin)) for k in ("norm", "norm_err", "norm_ul", "ts",
                                                   "loglike")}
        scan_n = np.zeros((npix, nbin, nnorm))
        scan_l = np.zeros((npix, nbin, nnorm))
        const = _baseline_loglike(parts, npix, nbin, backend)
        ksum_bins = np.stack([_kernel_sum(parts, npix, k, backend) for k in range(nbin)],
                             axis=1)
        if bin_free:
            cov_bb = _bkg_cov(H1, cov_theta) if bb_free else np.broadcast_to(
                cov_theta, (npix, nb, nb))
            prior_bin = (th1[:, 1:].copy(), np.stack([_prec(c, cov_scale) for c in cov_bb]))
        else:
            prior_bin = None
        for k in range(nbin):
            start = th1.copy()               # from the broadband norm and background
            thk, Fk, Hk, _ = _newton(sums, start, sel, kbin=k, free_a=True,
                                     free_bkg=bin_free, prior=prior_bin, **fit_kw)
            sk = _sigma_a(Hk, bin_free)
            ulk = _upper_limit(sums, thk, Fk, sk, sel, k, bin_free, prior_bin, fit_kw)
            pts = _scan_points(thk[:, 0], sk, ulk, int(nnorm), float(norm_sigma))
            ibest = np.argmin(np.abs(pts - thk[:, :1]), axis=1)
            if bin_free:                 # the background re-fitted at every norm
                Fq = np.zeros((npix, nnorm))
                th_q = thk.copy()
                for q in range(nnorm):
                    Fq[:, q], _, th_q = _profile_full(sums, pts[:, q], th_q, sel, k, True,
                                                      prior_bin, fit_kw)
            else:                        # the norm alone changes: one pass for all norms
                Fq = sums.scan(pts, thk, k)
            Fbest = Fq[np.arange(npix), ibest]
            out["norm"][:, k] = thk[:, 0]
            out["norm_err"][:, k] = sk
            out["norm_ul"][:, k] = ulk
            out["ts"][:, k] = np.where(thk[:, 0] > 0, np.maximum(2.0 * (Fbest - Fq[:, 0]),
                                                                 0.0), 0.0)
            out["loglike"][:, k] = Fk + const[:, k]
            scan_l[:, k] = np.minimum(Fq - Fbest[:, None], 0.0)
            scan_n[:, k] = pts
        if not (np.all(np.isfinite(scan_l)) and np.all(np.isfinite(scan_n))):
            raise EstimatorError("tscube: a likelihood scan holds a non-finite value "
                                 "(a model with no counts where there are counts?)")
        ref_dnde = np.asarray(sm.evaluate(e_ref, p), dtype=float)
        ref_flux = np.asarray(sm.flux(e_min, e_max, p), dtype=float)
        ref_eflux = np.asarray(sm.eflux(e_min, e_max, p), dtype=float)
        cube_dims = dims + ("energy",)
        cshape = shape + (nbin,)

        def cube(x, units, desc):
            return (cube_dims, np.asarray(x, dtype=np.float64).reshape(cshape),
                    {"units": units, "description": desc})

        data.update({
            "norm": cube(out["norm"], "", "norm in the bin, relative to the test source's "
                                          "spectrum"),
            "norm_err": cube(out["norm_err"], "", "1-sigma error of norm (curvature)"),
            "norm_ul": cube(out["norm_ul"], "", "95% upper limit of norm"),
            "bin_ts": cube(out["ts"], "", "test statistic in the bin"),
            "loglike": cube(out["loglike"], "", "log L of the bin's fit over the footprint"),
            "ref_npred": cube(ksum_bins, "count", "counts of the test source at norm 1"),
            "norm_scan": (cube_dims + ("norm_point",), scan_n.reshape(cshape + (nnorm,)),
                          {"units": "", "description": "norms of the likelihood scan"}),
            "dloglike_scan": (cube_dims + ("norm_point",), scan_l.reshape(cshape + (nnorm,)),
                              {"units": "", "description": "lnL(norm) - lnL(best norm) "
                                                           "in the bin"}),
            "ref_dnde": (("energy",), ref_dnde, {"units": "cm-2 s-1 MeV-1",
                                                 "description": "dN/dE of the test source "
                                                                "at e_ref, norm 1"}),
            "ref_flux": (("energy",), ref_flux, {"units": "cm-2 s-1",
                                                 "description": "photon flux in the bin, "
                                                                "norm 1"}),
            "ref_eflux": (("energy",), ref_eflux, {"units": "MeV cm-2 s-1",
                                                   "description": "energy flux in the bin, "
                                                                  "norm 1"}),
        })
    coords = geom_coords(out_geom, ebins)
    coords["e_ref"] = (("energy",), e_ref, {"units": "MeV"})
    if nb and bb_free:
        coords["bkg_param"] = (("bkg_param",), np.array(names, dtype=object), {})
    src_dict = dict(_DEFAULT_MODEL, **(model or {}))
    from ..geom.frames import angular_separation, transform

    clon, clat = transform(np.atleast_1d(src0.skydir[0]), np.atleast_1d(src0.skydir[1]),
                           "CEL", out_geom.frame)
    ref_pixel = int(np.argmin(angular_separation(out_lon, out_lat, float(clon[0]),
                                                 float(clat[0]))))
    ds = xr.Dataset(data, coords=coords, attrs={
        "fermixr_product": "tscube", **geom_attrs(out_geom),
        "model": json.dumps(state.model.to_dict()),
        "name": _model_name(src_dict),
        "src_dict": json.dumps(src_dict, default=str),
        "prefactor": float(normp.physical), "norm_param": str(normp.name),
        "kernel_radius": KERNEL_RADIUS, "do_sed": bool(do_sed), "nnorm": int(nnorm),
        "norm_sigma": float(norm_sigma), "cov_scale_bb": float(cov_scale_bb),
        "cov_scale": float(cov_scale), "tol": float(tol), "tol_type": int(tol_type),
        "max_iter": int(max_iter), "init_lambda": float(init_lambda),
        "free_background": json.dumps(names), "prior_covariance": prior_src,
        "ref_pixel": ref_pixel, "emin": float(edges[0]), "emax": float(edges[-1])})
    return EstimatorResult(ds)


def _kernel_sum(parts, npix, kbin, backend):
    """Counts of the test source at norm 1 within the footprint, per output pixel (the
    negative gradient in A at n = 0, m = w = 1)."""
    unit = [(pl, np.zeros_like(n), np.ones_like(m), np.ones_like(w), B[..., :0])
            for pl, n, m, w, B in parts]
    g, _, _ = _Sums(unit, npix, 1, backend)(np.zeros((npix, 1)),
                                            np.arange(npix, dtype=np.int64), kbin)
    return -g[:, 0]


def _baseline_loglike(parts, npix, nbin, backend):
    """Per output pixel and bin, the baseline log L over the kernel's pixels, sum w (n log
    m - m) (gtlike's value, without log n!)."""
    out = np.zeros((npix, nbin))
    for pl, n, m, w, B in parts:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(n > 0, w * n * np.log(np.where(m > 0, m, 1.0)), 0.0) - w * m
        # sum of t over each output pixel's footprint: a correlation of t with the
        # footprint mask of its offset class (FFT), read at the pixel under it
        if pl[0] == "wcs":
            from scipy.signal import fftconvolve

            _, kern, foot, ix, iy, cls, shape3 = pl
            ne, ny, nx = shape3
            kh, kw = foot.shape[1:]
            ry, rx = kh // 2, kw // 2
            pad = np.zeros((ne, ny + 2 * ry, nx + 2 * rx))
            pad[:, ry:ry + ny, rx:rx + nx] = t.reshape(shape3)
            y, x = iy + ry, ix + rx
            ok = (y >= 0) & (y < ny + 2 * ry) & (x >= 0) & (x < nx + 2 * rx)
            for c in range(foot.shape[0]):
                js = np.nonzero(ok & (cls == c))[0]
                if not js.size:
                    continue
                on = ((kern[c] > 0) & (foot[c][None] != 0)).astype(float)   # (ne, kh, kw)
                corr = fftconvolve(pad, on[:, ::-1, ::-1], mode="same", axes=(1, 2))
                out[js] += corr[:, y[js], x[js]].T
        else:
            _, vals, ptr, idx = pl
            owner = np.repeat(np.arange(npix), np.diff(ptr))
            for k in range(nbin):
                out[:, k] += np.bincount(owner, np.where(vals[k] > 0, t[k, idx], 0.0),
                                         minlength=npix)
    return out


def _bkg_cov(H, cov_theta):
    """Per pixel the covariance of the background shifts from the broadband fit's
    Hessian (the global one where it is singular)."""
    out = np.empty((H.shape[0],) + cov_theta.shape)
    for j in range(H.shape[0]):
        try:
            out[j] = np.linalg.inv(-H[j])[1:, 1:]
        except np.linalg.LinAlgError:
            out[j] = cov_theta
    return out


def _model_name(src_dict) -> str:
    """Fermipy's name of a TS cube: the spatial model and the power-law index."""
    sp = str(src_dict.get("SpatialModel", "PointSource")).lower()
    idx = src_dict.get("Index", 2.0)
    return f"{sp}_{str(src_dict.get('SpectrumType', 'PowerLaw')).lower()}_{float(idx):.2f}"
