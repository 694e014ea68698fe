"""TS map: at every pixel of the first component's sky grid, the maximum-likelihood
amplitude A >= 0 of a test source (default a point source with a power law of index 2)
over the fixed background m (the state's model without the ``exclude`` sources), summed
over energies and components,

    lnL(A) - lnL(0) = sum_k w_k [n_k log(1 + A s_k / m_k) - A s_k],

found by safeguarded Newton iterations on A (analytic first and second derivatives), and
TS = 2 (lnL(A) - lnL(0)) clipped at 0.

The kernel s of each component and energy bin is that component's own map of the test
source (its PSF, pixel size, exposure and energy dispersion: made by ``state.map_maker``
like any source map), cut at ``max_kernel_radius``.  On WCS grids the kernel is made once
per sub-pixel offset class (one class when the component's pixels are the output's, n^2
when they are n times larger) and shifted; on HEALPix each output pixel takes the
component's pixels within the radius, with kernel values from the radial profile of the
map of a source at a pixel centre.  Likelihood weights (``wmap``) weight every term.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import EstimatorError
from ..likelihood.roi import AnalysisState, component_costs, map_key
from . import EstimatorResult, register
from . import _tsmap_kernels as K

__all__ = ["tsmap", "make_test_source", "solve_amplitudes"]

TEST_NAME = "tsmap_testsource"
_DEFAULT_MODEL = {"SpatialModel": "PointSource", "SpectrumType": "PowerLaw", "Index": 2.0}


def make_test_source(state: AnalysisState, model, lonlat=None, frame="CEL"):
    """The test source (``model`` merged over the default point source / power law of
    index 2) at ``lonlat`` in ``frame`` (default the ROI centre)."""
    from ..geom.frames import transform
    from ..model.build import source_from_dict

    if model is not None and not isinstance(model, dict):
        raise EstimatorError(f"tsmap: model: got {model!r}; expected a source dictionary "
                             "such as {'SpatialModel': 'PointSource', 'Index': 2.0}")
    d = dict(_DEFAULT_MODEL)
    d.update(model or {})
    d["name"] = TEST_NAME
    for k in ("ra", "dec", "glon", "glat"):
        d.pop(k, None)
    if lonlat is None:
        if state.roi_center is None:
            raise EstimatorError("tsmap: the analysis state has no ROI centre")
        ra, dec = state.roi_center
    else:
        lo, la = transform(np.atleast_1d(float(lonlat[0])), np.atleast_1d(float(lonlat[1])),
                           frame, "CEL")
        ra, dec = float(np.ravel(lo)[0]), float(np.ravel(la)[0])
    d["ra"], d["dec"] = float(ra), float(dec)
    try:
        return source_from_dict(d, state.roi_center, where="tsmap.model")
    except EstimatorError:
        raise
    except Exception as e:           # a model that does not parse
        raise EstimatorError(f"tsmap: model: {e}") from None


def _source_counts(state, i, src) -> np.ndarray:
    """Counts (n_bins, n_pix) of ``src`` (at its parameter values) on component ``i``."""
    from ..model.skymodel import SkyModel

    if state.map_maker is None:
        raise EstimatorError("tsmap: this analysis state cannot make the test source's "
                             "maps (it was not loaded from a run and has no map_maker)")
    arr = np.asarray(state.map_maker(src, i), dtype=np.float64)
    comp = state.components[i]
    one = comp.replace(maps={src.name: arr.reshape(arr.shape[0], -1)},
                       map_keys={src.name: map_key(src)})
    sub = state.replace(components=(one,), model=SkyModel((src,)), priors={})
    c = component_costs(sub)[0]
    return np.asarray(c.source_cube(src.name, c.x0)).reshape(comp.counts.shape)


def _bin_mask(edges, loge_bounds):
    le = np.log10(np.asarray(edges, dtype=float))
    if loge_bounds is None:
        return np.ones(le.size - 1, dtype=bool)
    lo, hi = (-np.inf if v is None else float(v) for v in loge_bounds)
    hi = np.inf if loge_bounds[1] is None else hi
    tol = 1e-6
    return (le[:-1] >= lo - tol) & (le[1:] <= hi + tol)


def _wcs_part(state, i, out_lon, out_lat, out_frame, ref_binsz, model, radius, mask):
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
    kern = np.zeros((nsub * nsub, comp.counts.shape[0], 2 * r + 1, 2 * r + 1))
    for qy in range(nsub):
        for qx in range(nsub):
            lon, lat = g.pix_to_world(cx + qx / nsub, cy + qy / nsub)
            src = make_test_source(state, model, (float(lon), float(lat)), g.frame)
            cube = _source_counts(state, i, src).reshape((-1, ny, nx))
            sep = angular_separation(lon_c[win], lat_c[win], float(lon), float(lat))
            k = cube[(slice(None),) + win] * (sep <= radius)[None]
            k[~mask] = 0.0
            kern[qy * nsub + qx] = k
    _trim_kernel(kern, KERNEL_TOL)
    ix, iy, cls = wcs_placement(g, nsub, out_lon, out_lat, out_frame)
    shape3 = (-1, ny, nx)
    return ("wcs", kern, ix, iy, cls, shape3)


def wcs_placement(g, nsub, out_lon, out_lat, out_frame):
    """(ix, iy, cls): the component pixel under each output pixel centre (grid ``g``) and
    its sub-pixel offset class (of ``nsub`` x ``nsub``); off-grid centres land far out."""
    x, y = g.world_to_pix(out_lon, out_lat, frame=out_frame)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    x, y = np.where(bad, -1e6, x), np.where(bad, -1e6, y)
    ix, iy = np.floor(x), np.floor(y)
    qx = np.rint((x - ix) * nsub).astype(np.int64)
    qy = np.rint((y - iy) * nsub).astype(np.int64)
    ix = ix.astype(np.int64) + qx // nsub
    iy = iy.astype(np.int64) + qy // nsub
    cls = ((qy % nsub) * nsub + (qx % nsub)).astype(np.int64)
    return ix, iy, cls


def _sep(lon1, lat1, lon2, lat2):
    """Angular distance [deg] between arrays of directions (haversine)."""
    r = np.radians
    a = (np.sin(r(lat2 - lat1) / 2) ** 2
         + np.cos(r(lat1)) * np.cos(r(lat2)) * np.sin(r(lon2 - lon1) / 2) ** 2)
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def _hpx_part(state, i, out_lon, out_lat, out_frame, model, radius, mask):
    import healpy as hp

    from ..geom.frames import angular_separation, transform

    comp = state.components[i]
    g = comp.geom
    ra, dec = state.roi_center
    clon, clat = transform(np.atleast_1d(ra), np.atleast_1d(dec), "CEL", g.frame)
    hpix = int(g.healpix_index(float(clon[0]), float(clat[0]), frame=g.frame))
    plon, plat = hp.pix2ang(g.nside, hpix, nest=g.nest, lonlat=True)
    src = make_test_source(state, model, (float(plon), float(plat)), g.frame)
    cube = _source_counts(state, i, src)                        # (nb, npix)
    lon_c, lat_c = g.pixel_centers()
    sep = angular_separation(lon_c, lat_c, float(plon), float(plat))
    # radial profile: mean map value in rings a quarter of a pixel wide
    res = hp.nside2resol(g.nside, arcmin=True) / 60.0
    step = res / 4.0
    ring = np.floor(sep / step).astype(np.int64)
    keep = sep <= radius + res
    nr = int(ring[keep].max()) + 1 if keep.any() else 1
    cnt = np.bincount(ring[keep], minlength=nr)
    has = cnt > 0
    r_mid = np.bincount(ring[keep], sep[keep], minlength=nr)[has] / cnt[has]
    prof = np.stack([np.bincount(ring[keep], cube[k, keep], minlength=nr)[has] / cnt[has]
                     for k in range(cube.shape[0])])
    # neighbours of every output pixel within the radius
    olon, olat = out_lon, out_lat
    if out_frame != g.frame:
        olon, olat = transform(out_lon, out_lat, out_frame, g.frame)
    vec = hp.ang2vec(np.asarray(olon), np.asarray(olat), lonlat=True)
    idx_l, ptr = [], [0]
    for v in np.atleast_2d(vec):
        nb = g.local_index(hp.query_disc(g.nside, v, math.radians(radius), nest=g.nest))
        nb = nb[nb >= 0]
        idx_l.append(nb)
        ptr.append(ptr[-1] + nb.size)
    idx = np.concatenate(idx_l) if idx_l else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(idx_l)), np.diff(ptr))
    d = _sep(lon_c[idx], lat_c[idx], np.asarray(olon)[owner], np.asarray(olat)[owner])
    vals = np.stack([np.interp(d, r_mid, prof[k]) for k in range(cube.shape[0])]) \
        if idx.size else np.zeros((cube.shape[0], 0))
    vals[~mask] = 0.0
    return ("hpx", np.ascontiguousarray(vals), np.asarray(ptr, dtype=np.int64),
            idx.astype(np.int64))


KERNEL_TOL = 1e-6
"""Per energy bin, the kernel's outer square rings holding together at most this fraction
of its sum are dropped (WCS): the TS changes by far less than 1e-4 (tested), and the high
energies, where the PSF is narrow, visit a few pixels instead of the whole disk."""
DLNL_UL = 1.353
"""lnL drop of the one-sided 95% upper limit on the one-parameter profile."""


def _trim_kernel(kern, tol):
    """Zero, per energy bin, the outer square rings of the kernels (ncls, nb, kh, kw) whose
    summed mass is <= tol x the kernel's sum (for every offset class); in place."""
    kh = kern.shape[2]
    r0 = kh // 2
    yy, xx = np.mgrid[0:kh, 0:kh]
    d = np.maximum(np.abs(yy - r0), np.abs(xx - r0)).ravel()
    for k in range(kern.shape[1]):
        r_keep = -1
        for c in range(kern.shape[0]):
            v = kern[c, k].ravel()
            tot = float(v[v > 0].sum())
            if tot <= 0:
                continue
            ring = np.bincount(d, np.where(v > 0, v, 0.0), minlength=r0 + 1)
            outside = tot - np.cumsum(ring)       # mass beyond each radius
            cut = outside <= tol * tot
            r_c = int(np.argmax(cut)) if (tol > 0 and cut.any()) else int(d[v > 0].max())
            r_keep = max(r_keep, r_c)
        kern[:, k][:, d.reshape(kh, kh) > r_keep] = 0.0
    return kern


def _box_radii(kern):
    """Per energy bin the half-width of the box holding every non-zero kernel value
    (-1: none)."""
    kh = kern.shape[2]
    r0 = kh // 2
    yy, xx = np.mgrid[0:kh, 0:kh]
    d = np.maximum(np.abs(yy - r0), np.abs(xx - r0))
    nz = (kern > 0).any(axis=0)                    # (nb, kh, kw)
    return np.array([int(d[z].max()) if z.any() else -1 for z in nz], dtype=np.int64)


def _correlate(data, kern):
    """(nb, ny + 2R, nx + 2R): at [., y + R, x + R] the sum of kern[., dy, dx] x
    data[., y + dy - R, x + dx - R] (kern (nb, 2R + 1, 2R + 1)), for every centre within R
    of the grid."""
    from scipy.signal import fftconvolve

    return fftconvolve(data, kern[:, ::-1, ::-1], mode="full", axes=(1, 2))


def _gather(F, ix, iy, cls, R):
    """Values of the padded per-class maps F (ncls, H, W) at the output pixels."""
    y, x = iy + R, ix + R
    ok = (y >= 0) & (y < F.shape[1]) & (x >= 0) & (x < F.shape[2])
    out = np.zeros(ix.size)
    out[ok] = F[cls[ok], y[ok], x[ok]]
    return out


class _Part:
    """One component's placement with its counts, background and weights, ready for the
    solver: ``sums(A, sel, want_dl, g1, g2, dl)`` adds the component's full sums (numba:
    the terms with counts, then -C and -A C; numpy: the reference over
    every term); ``C`` = sum w s and ``ksum`` = sum s per output pixel."""

    def __init__(self, part, npix, backend, sel):
        place, n, m, w = part
        self.place, self.n, self.m, self.w, self.backend = place, n, m, w, backend
        self.C = np.zeros(npix)
        self.ksum = np.zeros(npix)
        self.M = None
        unit_w = bool(np.all(w == 1.0))
        if backend == "numba" and place[0] == "wcs":
            self._init_wcs(place, n, m, w, unit_w)
            return
        if backend == "numba":
            _, vals, ptr, idx = place
            K.sparse_weight_sum(w, ptr, idx, vals, self.C, sel)
            if unit_w:
                self.ksum[:] = self.C
            else:
                K.sparse_weight_sum(np.ones_like(w), ptr, idx, vals, self.ksum, sel)
            return
        # numpy: C and the kernel sum from the reference with n = 0
        a0 = np.zeros(npix)
        for wt, out in ((w, self.C), (np.ones_like(w), self.ksum)):
            g = [np.zeros(npix) for _ in range(3)]
            self._reference(a0, np.zeros_like(n), np.ones_like(m), wt, False, g)
            out[:] = -g[0]

    def _init_wcs(self, place, n, m, w, unit_w):
        _, kern, ix, iy, cls, shape3 = place[:6]
        n3, m3, w3 = (a.reshape(shape3) for a in (n, m, w))
        ncls, nb, kh = kern.shape[0], kern.shape[1], kern.shape[2]
        R = kh // 2
        rk = self.rk = _box_radii(kern)
        nzr = (kern > 0).any(axis=0)                       # (nb, kh, kw)
        dx = np.abs(np.arange(kh) - R)
        self.xr = np.where(nzr.any(axis=2), np.where(nzr, dx, -1).max(axis=2),
                           -1).astype(np.int64)
        self.cells = K.sparse_cells(n3, m3, w3)
        used = rk >= 0
        if not used.any():
            return
        self.C[:] = _gather(np.stack([_correlate(w3[used], kern[c][used]).sum(axis=0)
                                      for c in range(ncls)]), ix, iy, cls, R)
        if unit_w:
            self.ksum[:] = self.C
        else:
            self.ksum[:] = _gather(np.stack([
                _correlate(np.ones_like(w3[used]), kern[c][used]).sum(axis=0)
                for c in range(ncls)]), ix, iy, cls, R)
        # moments M_p = sum w n s^p / m^p (p = 1..4), kernel correlations, once: the
        # sums at A = 0 (g1 = M1 - C, g2 = -M2) and the start values
        has = (n3[used] > 0) & (w3[used] > 0)
        inv = np.where(has, 1.0 / np.where(has, m3[used], 1.0), 0.0)
        data = np.where(has, w3[used] * n3[used], 0.0) * inv
        kU = kern[:, used]
        self.M = np.empty((4, ix.size))
        for p in range(4):
            kp = kU ** (p + 1)
            self.M[p] = _gather(np.stack([_correlate(data, kp[c]).sum(axis=0)
                                          for c in range(ncls)]), ix, iy, cls, R)
            data = data * inv
        if not np.all(m3[used][has] > 0):      # a cell with counts and no background
            self.M = None
        # FFT rounding where the kernel does not reach: exact zeros
        for a in (self.C, self.ksum) + (() if self.M is None else tuple(self.M)):
            a[a < 1e-12 * max(float(a.max()), 0.0)] = 0.0

    def _reference(self, A, n, m, w, want_dl, g):
        if self.place[0] == "wcs":
            _, kern, ix, iy, cls, shape3 = self.place[:6]
            K.wcs_accumulate_numpy(A, n.reshape(shape3), m.reshape(shape3),
                                   w.reshape(shape3), kern, ix, iy, cls, want_dl, *g)
        else:
            _, vals, ptr, idx = self.place
            K.sparse_accumulate_numpy(A, n, m, w, ptr, idx, vals, want_dl, *g)

    def sums(self, A, sel, want_dl, g1, g2, dl, g3):
        """Adds g1, g2, dl (where ``want_dl``) and g3 = d3lnL/dA3 at A for ``sel``."""
        if self.backend == "numpy":
            self._reference(A, self.n, self.m, self.w, want_dl, (g1, g2, dl, g3))
            return
        if self.place[0] == "wcs":
            _, kern, ix, iy, cls, shape3 = self.place[:6]
            rowptr, xs, nw, mm = self.cells
            K.wcs_accumulate(A, rowptr, xs, nw, mm, shape3[1], shape3[2], kern,
                             self.rk, self.xr, ix, iy, cls, want_dl, g1, g2, dl, g3, sel)
        else:
            _, vals, ptr, idx = self.place
            K.sparse_accumulate(A, self.n, self.m, self.w, ptr, idx, vals, want_dl, g1,
                                g2, dl, g3, sel)
        g1[sel] -= self.C[sel]
        dl[sel] -= A[sel] * self.C[sel]

    def sums_at_zero(self, sel, g1, g2):
        """g1, g2 at A = 0 added for the pixels ``sel`` (from the correlations where
        made)."""
        if self.M is None:
            z = np.zeros(g1.size)
            self.sums(z, sel, np.zeros(g1.size, dtype=bool), g1, g2, np.zeros(g1.size),
                      np.zeros(g1.size))
            return
        g1[sel] += self.M[0, sel] - self.C[sel]
        g2[sel] -= self.M[1, sel]


def solve_amplitudes(parts, npix, backend="numba", sel=None, eps=1e-5, max_iter=100,
                     ul=False, info=None):
    """Per output pixel the amplitude A >= 0 maximising the sum of the parts' lnL:
    (A, TS, sum of the kernel, -d2lnL/dA2 at A, A of the upper limit (NaN without ``ul``)).
    ``parts``: (placement tuple, n, m, w) per component; ``sel``: the output pixels to
    compute (default all; the others stay 0).

    At A = 0 the derivatives are kernel correlations (WCS, numba: FFT) or sums; pixels
    where dlnL/dA <= 0 there stop: A = 0, TS = 0.  The start is the root of a two-point
    Gauss quadrature of sum w n s / (m + A s) from four FFT moments (:func:`_gauss_start`).
    Each iteration steps to the root of the second-order model of dlnL/dA (its third
    derivative is summed too: cubic convergence; below the maximum never less than the
    Newton, reciprocal-Newton and EM steps of :func:`_steps`, which all stay below it).
    A pixel stops when the cubic model's predicted gain is below ``eps``; that step is
    taken and TS = 2 (lnL + gain) (the error is of fourth order: far below 1e-6 in TS).
    The upper limit (``ul``): lnL(A) = lnL(A_hat) - 1.353 above A_hat, from the
    parabola's estimate, with steps to the root of its second-order model until it holds
    to 3e-2 in lnL, then one more step (third order: the limit to ~1e-5 of itself).
    ``info`` (a dict) receives the number of
    passes and of output pixels evaluated."""
    if sel is None:
        sel = np.arange(npix, dtype=np.int64)
    sel = np.ascontiguousarray(sel, dtype=np.int64)
    if backend not in ("numba", "numpy"):
        raise EstimatorError(f"tsmap: backend: got {backend!r}; expected 'numba' or 'numpy'")
    ops = [_Part(p, npix, backend, sel) for p in parts]
    C = np.sum([o.C for o in ops], axis=0) if ops else np.zeros(npix)
    ksum = np.sum([o.ksum for o in ops], axis=0) if ops else np.zeros(npix)
    count = {"passes": 0, "pixels_evaluated": 0}
    g1, g2, dl, g3 = np.zeros(npix), np.zeros(npix), np.zeros(npix), np.zeros(npix)

    def evaluate(A, todo, want_dl):
        if np.ndim(want_dl) == 0:
            want_dl = np.full(npix, bool(want_dl))
        g1[todo] = 0.0
        g2[todo] = 0.0
        g3[todo] = 0.0
        dl[todo] = 0.0
        for o in ops:
            o.sums(A, todo, want_dl, g1, g2, dl, g3)
        count["passes"] += 1
        count["pixels_evaluated"] += int(todo.size)

    A = np.zeros(npix)
    ts = np.zeros(npix)
    curv = np.zeros(npix)
    g1[sel] = 0.0
    g2[sel] = 0.0
    for o in ops:
        o.sums_at_zero(sel, g1, g2)
    curv[sel] = -g2[sel]
    ok = (g1[sel] > 0) & (C[sel] > 0)
    todo = sel[ok]
    A[todo] = _steps(np.zeros(todo.size), g1[todo], g2[todo], C[todo])
    if ops and all(o.M is not None for o in ops):
        mom = np.sum([o.M[:, todo] for o in ops], axis=0)
        a2 = _gauss_start(mom, C[todo])
        A[todo] = np.where(np.isfinite(a2) & (a2 > 0), a2, A[todo])
    _maximise(A, todo, evaluate, C, g1, g2, dl, g3, ts, curv, eps, max_iter)
    A_ul = np.full(npix, np.nan)
    if ul:
        A_ul[sel] = _upper_limits(A, ts, curv, C, sel, evaluate, g1, g2, dl)
    if info is not None:
        info.update(count)
    return A, ts, ksum, curv, A_ul


def _gauss_start(mom, c):
    """Start amplitudes from the moments mom[p - 1] = sum w n (s/m)^p (p = 1..4) and
    c = sum w s: sum w n s / (m + A s) = sum_cells omega / (1 + A r) (omega = w n s / m,
    r = s / m) is a Stieltjes function of A; its two-point Gauss quadrature from the
    measure's first four moments (exact for cells of two kinds, a good approximation
    otherwise) set equal to c is a quadratic in A.  NaN where degenerate."""
    m0, m1, m2, m3 = mom
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        D = m1 * m1 - m0 * m2
        a = (m0 * m3 - m1 * m2) / D
        b = (m2 * m2 - m1 * m3) / D
        disc = np.sqrt(a * a - 4.0 * b)
        r1 = 0.5 * (-a + disc)
        r2 = 0.5 * (-a - disc)
        c1 = (m1 - m0 * r2) / (r1 - r2)
        c2 = m0 - c1
        qa = c * r1 * r2
        qb = c * (r1 + r2) - c1 * r2 - c2 * r1
        qc = c - m0
        root = (-qb + np.sqrt(qb * qb - 4.0 * qa * qc)) / (2.0 * qa)
        ok = (D < -1e-12 * np.abs(m0 * m2)) & (r1 > 0) & (r2 > 0) & (c1 > 0) & (c2 > 0)
    return np.where(ok, root, np.nan)


def _steps(a, d1, d2, c):
    """The next amplitudes from a with dlnL/dA = d1, d2lnL/dA2 = d2 (see
    solve_amplitudes)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        newton = a - d1 / d2
        P = d1 + c                                  # sum w n s / mu
        harmonic = a + (P / d2) * (1.0 - P / c)
        em = a * P / c
    below = d1 >= 0

    def fin(x):
        return np.where(np.isfinite(x), x, -np.inf)

    step = np.where(below, np.fmax(np.fmax(fin(newton), fin(harmonic)), fin(em)), newton)
    bad = ~np.isfinite(step) | (step < 0)
    return np.where(bad, np.where(below, 2.0 * a + 1.0 / np.maximum(c, 1e-300), 0.5 * a),
                    step)


def _maximise(A, todo, evaluate, C, g1, g2, dl, g3, ts, curv, eps, max_iter,
              dl_from=1.0):
    """Iterations on the pixels ``todo`` (A updated in place; ts and curv filled where
    converged, and at the last iterate where not).  Each step is the smallest root of
    the second-order model of dlnL/dA (g1 + g2 d + g3 d^2 / 2: cubic convergence), or
    where that has none the steps of :func:`_steps`; the predicted gain is the cubic
    model's lnL(A + d) - lnL(A).  lnL itself (a logarithm per term) is summed only in
    the passes of pixels whose last predicted gain was below ``dl_from`` (then they
    usually converge); a pixel that converges without it takes its step and one more
    pass with it."""
    want = np.zeros(A.size, dtype=bool)
    for _ in range(max_iter):
        if not todo.size:
            return
        evaluate(A, todo, want)
        a, d1, d2, d3, had = A[todo], g1[todo], g2[todo], g3[todo], want[todo]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            disc = d2 * d2 - 2.0 * d1 * d3
            quad = 2.0 * d1 / (-d2 + np.sqrt(disc))          # root of the model
            d = np.where((disc >= 0) & (d2 < 0) & np.isfinite(quad), quad, -d1 / d2)
            gain = d1 * d + 0.5 * d2 * d * d + d3 * d ** 3 / 6.0
            gain = np.where(np.isfinite(gain) & (d2 < 0), np.abs(gain), np.inf)
            halley = a + d
        fallback = _steps(a, d1, d2, C[todo])
        step = np.where(np.isfinite(halley) & (halley >= 0) & (d1 >= 0),
                        np.fmax(halley, fallback), np.where(np.isfinite(halley) &
                                                            (halley >= 0), halley,
                                                            fallback))
        conv = (gain <= eps) | (np.abs(step - a) <= 1e-12 * a)
        done = conv & had
        fin = todo[done]
        ts[fin] = np.maximum(2.0 * (dl[fin] + np.where(np.isfinite(gain[done]),
                                                        gain[done], 0.0)), 0.0)
        curv[fin] = -g2[fin]
        A[fin] = np.maximum(np.where(np.isfinite(halley[done]), halley[done], a[done]), 0.0)
        rest = ~done
        A[todo[rest]] = np.where(conv[rest], np.maximum(np.where(
            np.isfinite(halley[rest]), halley[rest], a[rest]), 0.0), step[rest])
        want[todo[rest]] = conv[rest] | (gain[rest] < dl_from)
        todo = todo[rest]
    if todo.size:     # not converged in max_iter: the last iterate
        evaluate(A, todo, True)
        ts[todo] = np.maximum(2.0 * dl[todo], 0.0)
        curv[todo] = -g2[todo]


def _ul_newton(U, todo, tgt, ahat, evaluate, g1, g2, dl, f_tol, max_iter, out, where):
    """lnL(U) = tgt above ahat for the pixels ``todo``: steps to the root of the
    second-order model f + g1 d + g2 d^2 / 2 of f = lnL - tgt (Newton where it has none);
    the converged U (after a last step) go to out[where]; returns the unconverged
    (todo, where, tgt, ahat)."""
    for _ in range(max_iter):
        if not todo.size:
            break
        evaluate(U, todo, True)
        f = dl[todo] - tgt
        d = g1[todo]
        d2 = g2[todo]
        u = U[todo]
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = d * d - 2.0 * d2 * f
            quad = u - 2.0 * f / (d - np.sqrt(disc))
            new = np.where((disc >= 0) & np.isfinite(quad), quad, u - f / d)
        bad = ~np.isfinite(new) | (new <= ahat) | (d >= 0)
        new = np.where(bad, np.where(f > 0, ahat + 2.0 * (u - ahat), 0.5 * (u + ahat)), new)
        done = ~bad & ((np.abs(f) <= f_tol) | (np.abs(new - u) <= 1e-12 * u))
        out[where[done]] = new[done]
        U[todo[~done]] = new[~done]
        todo, where, tgt, ahat = todo[~done], where[~done], tgt[~done], ahat[~done]
    return todo, where, tgt, ahat


def _upper_limits(A, ts, curv, C, sel, evaluate, g1, g2, dl):
    """Per pixel of ``sel`` the amplitude above A where lnL falls DLNL_UL below its value
    at A (Newton on a concave function, started at the parabola's estimate)."""
    a_hat = A[sel]
    target = 0.5 * ts[sel] - DLNL_UL
    with np.errstate(divide="ignore", invalid="ignore"):
        start = np.where(curv[sel] > 0, a_hat + np.sqrt(2.0 * DLNL_UL / curv[sel]),
                         a_hat + DLNL_UL / C[sel])
    U = np.zeros_like(A)
    U[sel] = np.where(np.isfinite(start), start, np.nan)
    out = np.full(sel.size, np.nan)
    live = np.isfinite(U[sel]) & (C[sel] > 0)
    todo, where = sel[live], np.arange(sel.size)[live]
    left = _ul_newton(U, todo, target[live], a_hat[live], evaluate, g1, g2, dl, 3e-2, 50, out,
                      where)
    if left[0].size:      # not converged: the last iterate
        out[left[1]] = U[left[0]]
    return out


def _cutout(geom, x0, x1, y0, y1):
    """The WCS grid of pixels x0..x1, y0..y1 (inclusive) of ``geom``: the same pixels."""
    from ..geom.wcs import WcsGeom

    c1, c2 = geom.crpix
    return WcsGeom(geom.center, (x1 - x0 + 1, y1 - y0 + 1), proj=geom.proj, frame=geom.frame,
                   crpix=(c1 - x0, c2 - y0), rotation=geom.rotation, cdelt=geom.cdelt)


def _region(geom, map_skydir, map_size, disk, pixel_mask):
    """(output grid, boolean mask of its pixels to compute, index of its pixels in
    ``geom``'s flattened pixels) for the region options.  A box (``map_skydir`` +
    ``map_size``) or a disk on a WCS grid gives a cut-out: the smallest rectangle of the
    grid's own pixels holding the region (Fermipy's map_skydir/map_size); a pixel mask, or
    any region on HEALPix, keeps the whole grid.  Pixels outside the region are NaN."""
    from ..geom.frames import angular_separation
    from ..geom.wcs import WcsGeom

    lon, lat = (np.ravel(a) for a in geom.pixel_centers())
    keep = np.ones(lon.size, dtype=bool)
    wcs = isinstance(geom, WcsGeom)
    crop = None
    if map_skydir is not None:
        try:
            c_lon, c_lat = (float(v) for v in map_skydir)
        except (TypeError, ValueError):
            raise EstimatorError(f"tsmap: map_skydir: got {map_skydir!r}; expected [lon, lat] "
                                 f"in deg in the map's frame ({geom.frame})") from None
        if not (isinstance(map_size, (int, float)) and map_size > 0):
            raise EstimatorError(f"tsmap: map_size: got {map_size!r}; expected a positive "
                                 "width in deg")
        h = 0.5 * float(map_size)
        if wcs:
            x0, y0 = (float(np.ravel(v)[0]) for v in geom.world_to_pix(c_lon, c_lat))
            d = h / geom.binsz
            yy, xx = np.divmod(np.arange(lon.size), geom.nx)
            keep &= (np.abs(xx - x0) <= d + 1e-9) & (np.abs(yy - y0) <= d + 1e-9)
            crop = True
        else:
            dlon = (lon - c_lon + 180.0) % 360.0 - 180.0
            keep &= (np.abs(lat - c_lat) <= h) & (np.abs(dlon) * np.cos(np.radians(c_lat))
                                                   <= h)
    if disk is not None:
        try:
            d_lon, d_lat, d_r = (float(v) for v in disk)
        except (TypeError, ValueError):
            d_r = -1.0
        if not d_r > 0:
            raise EstimatorError(f"tsmap: disk: got {disk!r}; expected [lon, lat, radius] in "
                                 f"deg in the map's frame ({geom.frame}), radius > 0")
        keep &= angular_separation(lon, lat, d_lon, d_lat) <= d_r
        crop = wcs
    if pixel_mask is not None:
        pm = np.asarray(pixel_mask)
        if pm.dtype != bool or pm.shape != tuple(geom.shape):
            raise EstimatorError(f"tsmap: pixel_mask: got an array of {pm.dtype} with shape "
                                 f"{pm.shape}; expected booleans of the map's shape "
                                 f"{tuple(geom.shape)}")
        keep &= pm.ravel()
    if not keep.any():
        raise EstimatorError("tsmap: the region (map_skydir/map_size, disk or pixel_mask) "
                             "holds no pixel of the map; give a region that overlaps it")
    index = np.arange(lon.size)
    if crop:
        yy, xx = np.divmod(np.nonzero(keep)[0], geom.nx)
        x0, x1, y0, y1 = int(xx.min()), int(xx.max()), int(yy.min()), int(yy.max())
        sub = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        index = index.reshape(geom.shape)[sub].ravel()
        return _cutout(geom, x0, x1, y0, y1), keep.reshape(geom.shape)[sub].ravel(), index
    return geom, keep, index


@register("tsmap", version="2", product="tsmap", section="tsmap", needs_source=False)
def tsmap(state: AnalysisState, *, model=None, exclude=None, multithread=False,
          nthread=None, max_kernel_radius=3.0, loge_bounds=None, map_skydir=None,
          map_size=1.0, disk=None, pixel_mask=None, flux_ul=True, sum_over_energy=False,
          backend="numba"):
    """TS map of a test source: per pixel the amplitude >= 0 over the fixed background,
    TS, sqrt(TS), npred, flux, its error and 95% upper limit, on the first component's
    sky grid or a region of it.

    Regions (each output pixel costs the same, so the time follows the region's pixels):
    ``map_skydir`` [lon, lat] + ``map_size`` (deg, the binning frame): the pixels whose
    centres lie in that box, as a cut-out map (Fermipy's); ``disk`` [lon, lat, radius]:
    the cut-out of its bounding box with NaN outside the disk; ``pixel_mask`` (booleans of
    the grid's shape): the whole grid, NaN where False.  On HEALPix every region keeps the
    whole pixel list (NaN outside).  ``flux_ul``: compute flux_ul95 (about a third of
    the time).

    ``sum_over_energy``: counts, background and kernel summed over the selected energy
    bins of each component into one image before the fit (Gammapy's default
    ``sum_over_energy_groups``): faster, and an approximation -- the energy information
    of the test source's spectrum and PSF is used only through the summed kernel.  Not
    with likelihood weights that vary with energy."""
    import xarray as xr

    from ..geom.coords import geom_attrs, geom_coords, sky_dims
    from ..geom.hpx import HpxGeom

    if backend not in ("numba", "numpy"):
        raise EstimatorError(f"tsmap: backend: got {backend!r}; expected 'numba' or 'numpy'")
    if not (isinstance(max_kernel_radius, (int, float)) and max_kernel_radius > 0):
        raise EstimatorError(f"tsmap: max_kernel_radius: got {max_kernel_radius!r}; "
                             "expected a positive angle in deg")
    if loge_bounds is not None and (len(loge_bounds) != 2 or (
            None not in loge_bounds and loge_bounds[0] >= loge_bounds[1])):
        raise EstimatorError(f"tsmap: loge_bounds: got {list(loge_bounds)!r}; expected "
                             "[log10(emin/MeV), log10(emax/MeV)] with emin < emax")
    bkg = state.model
    for name in exclude or ():
        try:
            bkg = bkg.remove(state.model.find(name).name)
        except Exception:
            raise EstimatorError(f"tsmap: exclude: no source {name!r} in the model") from None
    if not len(bkg):
        raise EstimatorError("tsmap: no background left after exclude; the TS map needs a "
                             "background model")
    src0 = make_test_source(state, model)          # fails early on a model that does not parse
    if state.map_maker is None:
        raise EstimatorError("tsmap: this analysis state cannot make the test source's "
                             "maps (it was not loaded from a run and has no map_maker)")
    comps = state.components
    grid = comps[0].geom
    out_geom, keep, index = _region(grid, map_skydir, map_size, disk, pixel_mask)
    g_lon, g_lat = (np.ravel(a) for a in grid.pixel_centers())
    pix = index[keep]                         # the grid pixels computed
    out_lon, out_lat = g_lon[pix], g_lat[pix]
    ref_binsz = grid.binsz if not isinstance(grid, HpxGeom) else \
        math.degrees(math.sqrt(4 * math.pi / grid.npix_allsky))
    costs = component_costs(state, bkg)
    parts, emin, emax = [], np.inf, 0.0
    for i, (comp, c) in enumerate(zip(comps, costs)):
        mask = _bin_mask(comp.edges, loge_bounds)
        if not mask.any():
            continue
        emin = min(emin, float(comp.edges[:-1][mask][0]))
        emax = max(emax, float(comp.edges[1:][mask][-1]))
        m = np.asarray(c.model_cube(c.x0), dtype=np.float64).reshape(comp.counts.shape)
        w = np.ones_like(m) if comp.wmap is None else np.asarray(comp.wmap, float)
        if isinstance(comp.geom, HpxGeom):
            place = _hpx_part(state, i, out_lon, out_lat, grid.frame, model,
                              float(max_kernel_radius), mask)
        else:
            place = _wcs_part(state, i, out_lon, out_lat, grid.frame, ref_binsz, model,
                              float(max_kernel_radius), mask)
        n = np.asarray(comp.counts, dtype=np.float64)
        if sum_over_energy:
            place, n, m, w = _summed_part(place, n, m, w, mask, i)
        parts.append((place, np.ascontiguousarray(n), np.ascontiguousarray(m),
                      np.ascontiguousarray(w)))
    if not parts:
        raise EstimatorError(f"tsmap: loge_bounds {list(loge_bounds)!r} select no energy "
                             f"bin of the analysis ({state.energy_range[0]:g}-"
                             f"{state.energy_range[1]:g} MeV)")
    # multithread / nthread: accepted without effect (the table says so); the kernels
    # run on numba's threads (NUMBA_NUM_THREADS)
    info = {}
    A, ts, ksum, curv, A_ul = solve_amplitudes(parts, out_lon.size, backend=backend,
                                               ul=bool(flux_ul), info=info)
    sm = state.spectral(src0)
    norm = src0.param(sm.norm_param)
    p = src0.spectral_values()
    flux1 = float(sm.flux(emin, emax, p))
    with np.errstate(divide="ignore", invalid="ignore"):
        a_err = np.where(curv > 0, 1.0 / np.sqrt(curv), np.nan)
    shape = out_geom.shape
    dims = sky_dims(out_geom)

    def var(x, units, desc):
        full = np.full(keep.size, np.nan)
        full[keep] = x
        return (dims, full.reshape(shape), {"units": units, "description": desc})

    src_dict = {k: v for k, v in dict(_DEFAULT_MODEL, **(model or {})).items()}
    region = {"map_skydir": None if map_skydir is None else [float(v) for v in map_skydir],
              "map_size": float(map_size) if map_skydir is not None else None,
              "disk": None if disk is None else [float(v) for v in disk],
              "pixel_mask": pixel_mask is not None}
    data = {"ts": var(ts, "", "test statistic 2 (lnL(A) - lnL(0)), clipped at 0"),
            "sqrt_ts": var(np.sqrt(ts), "", "sqrt of ts"),
            "npred": var(A * ksum, "count", "predicted counts of the test source at its "
                                             "best amplitude (within the kernel)"),
            "amplitude": var(A * norm.physical, "cm-2 s-1 MeV-1",
                             f"best-fit {norm.name} of the test source"),
            "amplitude_err": var(a_err * norm.physical, "cm-2 s-1 MeV-1",
                                 f"1-sigma error of {norm.name} (curvature)"),
            "flux": var(A * flux1, "cm-2 s-1", f"photon flux {emin:g}-{emax:g} MeV of the "
                                                "test source at its best amplitude"),
            "flux_err": var(a_err * flux1, "cm-2 s-1",
                            "1-sigma error of flux (curvature of lnL in the amplitude)")}
    if flux_ul:
        data["flux_ul95"] = var(A_ul * flux1, "cm-2 s-1",
                                f"95% upper limit of flux: lnL {DLNL_UL} below its maximum "
                                "(amplitude >= 0) on the one-parameter profile")
    ds = xr.Dataset(
        data, coords=geom_coords(out_geom),
        attrs={"fermixr_product": "tsmap", **geom_attrs(out_geom),
               "model": json.dumps(state.model.to_dict()),
               "name": _model_name(src_dict),
               "src_dict": json.dumps(src_dict, default=str),
               "exclude": json.dumps(list(exclude or [])),
               "max_kernel_radius": float(max_kernel_radius),
               "loge_bounds": json.dumps(None if loge_bounds is None else list(loge_bounds)),
               "region": json.dumps(region),
               "sum_over_energy": bool(sum_over_energy),
               "pixels_computed": int(pix.size),
               "pixel_evaluations": int(info["pixels_evaluated"]),
               "emin": emin, "emax": emax})
    return EstimatorResult(ds)


def _summed_part(place, n, m, w, mask, i):
    """One component's kernel, counts, background and weights summed over its selected
    energy bins (one 'energy bin' left)."""
    sel = np.flatnonzero(mask)
    ws = w[sel]
    if not np.allclose(ws, ws[:1], rtol=1e-12, atol=0.0):
        raise EstimatorError(f"tsmap: sum_over_energy: component {i} has likelihood weights "
                             "that vary with energy; summing the energy bins would change "
                             "their meaning (use sum_over_energy: false)")
    n1 = n[sel].sum(axis=0, keepdims=True)
    m1 = m[sel].sum(axis=0, keepdims=True)
    w1 = ws[:1].copy()
    if place[0] == "wcs":
        kind, kern, ix, iy, cls, shape3 = place
        place = (kind, np.ascontiguousarray(kern[:, sel].sum(axis=1, keepdims=True)), ix, iy,
                 cls, shape3)
    else:
        kind, vals, ptr, idx = place
        place = (kind, np.ascontiguousarray(vals[sel].sum(axis=0, keepdims=True)), ptr, idx)
    return place, n1, m1, w1


def _model_name(src_dict) -> str:
    """Fermipy's name of a TS map: the spatial model and the power-law index."""
    sp = str(src_dict.get("SpatialModel", "PointSource")).lower()
    sp = {"pointsource": "pointsource"}.get(sp, sp)
    idx = src_dict.get("Index", 2.0)
    out = f"{sp}_{str(src_dict.get('SpectrumType', 'PowerLaw')).lower()}_{float(idx):.2f}"
    return out
