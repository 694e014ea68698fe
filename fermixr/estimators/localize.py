"""Localization of a source (Fermipy's ``localize``): two passes and an ellipse.

1. **TS map around the source.**  On a lattice of positions within ``dtheta_max`` of the
   source (spacing: the first component's pixel size, at least ``dtheta_max / 8``), the
   source's amplitude A >= 0 is fitted with everything else fixed (its spectral shape as
   it is), TS = 2 (lnL(A) - lnL(0)) with lnL(0) the model without the source.  A
   quadratic fitted to TS around the lattice maximum gives the first position and scale.
2. **Likelihood scan.**  An ``nstep`` x ``nstep`` grid in the tangent plane around that
   position (half-width 2.5 sigma of the first pass, then of the previous scan), at each
   point the source's free parameters refitted (its norm, and its shape unless
   ``fix_shape``; the background's free parameters with ``free_background``, the norms of
   sources within ``free_radius``); a 2-D quadratic fitted to log L gives the position and
   the size of its covariance (sqrt of its determinant: pos_err), the Hessian of log L at
   that position (central differences) its orientation and axis ratio.  The grid is
   re-centred / re-scaled until the peak lies inside it and the grid spans 1.8 to 3.5
   sigma.  Where the quadratic is not negative definite or its peak stays
   outside the grid, the position is found by maximising log L directly (Nelder-Mead) with
   errors from a finite-difference Hessian (``method: 'direct'``); where even that Hessian
   is not positive definite, the best grid point with the grid's half-width as a
   conservative error (``method: 'grid'``, ``fit_success`` false).  Every localization ends
   with a position and an error.

**Moved-source maps (the approximation).**  Making a source map costs ~2 s (its PSF table),
so the maps at trial positions are not made one by one: the source's map at its current
position (exact, in the state) is moved.  Per true-energy node the map's core is fitted by
up to two Gaussians integrated over the pixels (WCS: analytic box integrals; HEALPix: 64
sub-pixels per pixel); the core moves exactly, the remainder (tails, and what the
Gaussians miss) moves by separable cubic convolution over pixels (WCS) or along its radial
profile (HEALPix).  Exact at zero shift.  A source within 0.1 pixel of a WCS pixel edge or
corner splits a core narrower than a pixel equally whatever the core's width, so there the
core is fitted together with one exact map of the source half a pixel away diagonally
(made through the state's map maker, cached in the store).  ``tests/test_localize.py``
compares log L of moved sources with exact maps (synthetic data: equal to 1e-4; the Crab
day, whose source sits on a pixel corner: within 2%).  The spectrum, exposure scales,
energy dispersion and likelihood weights go through the ordinary cost
(:func:`fermixr.likelihood.roi.component_costs`).  The proposed state (``update``)
carries the exact map at the new position, made when its components are first read.

Position angle: of the major axis, degrees east of north (IAU), in [0, 180).
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import EstimatorError
from ..likelihood.roi import (AnalysisState, LazyComponents, component_costs, ensure_maps,
                              loglike, map_key)
from ..geom.tangent import tangent_offsets, tangent_to_sky
from . import EstimatorResult, register

__all__ = ["localize", "fit_ellipse", "ellipse_from_cov", "tangent_offsets",
           "tangent_to_sky", "Mover"]

# chi2 (2 dof) quantiles: r68 = 1.517 sigma, r95 = 2.447 sigma, r99 = 3.035 sigma
# half-width of the scan grid in units of the major-axis sigma: its edge lies near the r95
# contour, where the quadratic should match log L for the r95 ellipse to be right
_SPAN = 2.5
_R = {"68": math.sqrt(2.30), "95": math.sqrt(5.99), "99": math.sqrt(9.21)}


# --------------------------------------------------------------------- geometry -------
def ellipse_from_cov(cov):
    """(semi-major, semi-minor, position angle [deg east of north, in [0, 180)]) of the
    1-sigma ellipse of a covariance in (east, north) offsets [deg^2]."""
    cov = np.asarray(cov, float)
    w, v = np.linalg.eigh(cov)
    major = v[:, 1]                       # (east, north) components of the major axis
    pa = math.degrees(math.atan2(major[0], major[1])) % 180.0
    return math.sqrt(max(w[1], 0.0)), math.sqrt(max(w[0], 0.0)), pa


def fit_ellipse(x, y, z):
    """Least-squares 2-D quadratic z = c + b.d - 1/2 d^T H d over points d = (x, y).
    Returns (peak (x, y), H, ok) where ok means H is positive definite."""
    x, y, z = (np.ravel(np.asarray(a, float)) for a in (x, y, z))
    good = np.isfinite(z)
    x, y, z = x[good], y[good], z[good]
    if z.size < 6:
        return np.array([np.nan, np.nan]), np.full((2, 2), np.nan), False
    sx, sy = max(np.ptp(x), 1e-12), max(np.ptp(y), 1e-12)      # conditioning
    u, v = x / sx, y / sy
    A = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    coef, *_ = np.linalg.lstsq(A, z, rcond=None)
    H = -np.array([[2 * coef[3] / sx ** 2, coef[4] / (sx * sy)],
                   [coef[4] / (sx * sy), 2 * coef[5] / sy ** 2]])
    b = np.array([coef[1] / sx, coef[2] / sy])
    ok = bool(np.all(np.isfinite(H)) and H[0, 0] > 0 and np.linalg.det(H) > 0)
    peak = np.linalg.solve(H, b) if ok else np.array([np.nan, np.nan])
    return peak, H, ok


# ------------------------------------------------------------- moved-source maps ------
def _fit_two_gaussians(data, pix, basis):
    """Up to two Gaussians (amplitudes >= 0, widths from a grid of 0.05 to 6 pixels of
    ``pix`` deg) integrated over pixels (``basis(sigma)``) least-squares fitted to
    ``data``: ([(amplitude, sigma [deg])], the widest sigma)."""
    if not np.any(data > 0):
        return [], pix
    sig = pix * np.geomspace(0.05, 6.0, 28)
    G = np.stack([basis(s_) for s_ in sig])
    gram = G @ G.T
    proj = G @ data
    dd = float(data @ data)
    best = (dd, [], pix)
    for i in range(sig.size):           # one Gaussian
        if gram[i, i] > 0 and proj[i] > 0:
            r = dd - proj[i] ** 2 / gram[i, i]
            if r < best[0]:
                best = (r, [(proj[i] / gram[i, i], sig[i])], sig[i])
    ii, jj = np.triu_indices(sig.size, 1)    # two
    det = gram[ii, ii] * gram[jj, jj] - gram[ii, jj] ** 2
    ok = det > 1e-12 * gram[ii, ii] * gram[jj, jj]
    with np.errstate(divide="ignore", invalid="ignore"):
        a1 = (gram[jj, jj] * proj[ii] - gram[ii, jj] * proj[jj]) / det
        a2 = (gram[ii, ii] * proj[jj] - gram[ii, jj] * proj[ii]) / det
        r = dd - (a1 * proj[ii] + a2 * proj[jj])
    ok &= (a1 >= 0) & (a2 >= 0) & np.isfinite(r)
    if ok.any():
        k = int(np.argmin(np.where(ok, r, np.inf)))
        if r[k] < best[0]:
            best = (r[k], [(a1[k], sig[ii[k]]), (a2[k], sig[jj[k]])], sig[jj[k]])
    return [(float(a_), float(s_)) for a_, s_ in best[1]], float(best[2])


class Mover:
    """The map of a source moved to (ra, dec) on one component, from its map at its
    current position (see the module notes)."""

    def __init__(self, comp, src, second_map=None):
        from ..geom.hpx import HpxGeom

        self.src = src
        self.second_map = second_map     # (ra, dec) -> exact map, or None
        self.m0 = np.asarray(comp.maps[src.name], float)
        self.geom = comp.geom
        self.ra0, self.dec0 = src.skydir
        self.hpx = isinstance(self.geom, HpxGeom)
        if self.hpx:
            self._init_hpx()
        else:
            self._init_wcs()

    def _init_wcs(self):
        ny, nx = self.geom.shape
        x0, y0 = self.geom.world_to_pix(np.array([self.ra0]), np.array([self.dec0]),
                                        frame="CEL")
        self.x0, self.y0 = float(np.ravel(x0)[0]), float(np.ravel(y0)[0])
        # pixel offsets per deg of tangent-plane offset at the source (central
        # differences): moved positions go to pixels through this linear map
        eps = 1e-2
        cols = []
        for ex, ey in ((eps, 0.0), (0.0, eps)):
            r, d = tangent_to_sky(self.ra0, self.dec0, np.array([ex, -ex]),
                                  np.array([ey, -ey]))
            px, py = self.geom.world_to_pix(np.asarray(r), np.asarray(d), frame="CEL")
            px, py = np.ravel(px), np.ravel(py)
            cols.append([(px[0] - px[1]) / (2 * eps), (py[0] - py[1]) / (2 * eps)])
        self.jac = np.array(cols).T                  # d(x, y) / d(xi, eta)
        jx = math.hypot(*self.jac[:, 0])
        jy = math.hypot(*self.jac[:, 1])
        self.jx, self.jy = jx, jy
        cube = self.m0.reshape(-1, ny, nx)
        # the core of each node: a Gaussian integrated over pixels, fitted to the map
        # (pixel centres at integer coordinates, edges at half-integers)
        # a source on a pixel edge or corner (within 0.1 pixel) whose core is narrower
        # than a pixel splits its core equally whatever the core's width: the core is then
        # fitted to this map and to the exact map of the source half a pixel away
        # diagonally, together
        fx, fy = self.x0 - math.floor(self.x0), self.y0 - math.floor(self.y0)
        other = None
        if self.second_map is not None and (abs(fx - 0.5) < 0.1 or abs(fy - 0.5) < 0.1):
            d_xy = np.array([0.5 if fx < 0.5 else -0.5, 0.5 if fy < 0.5 else -0.5])
            xi1, eta1 = np.linalg.solve(self.jac, d_xy)
            r1, de1 = tangent_to_sky(self.ra0, self.dec0, xi1, eta1)
            m1 = np.asarray(self.second_map(float(r1), float(de1)), float)
            other = (m1.reshape(-1, ny, nx), self.x0 + d_xy[0], self.y0 + d_xy[1])
        self.joint = other is not None
        self.core = [self._fit_core(c, None if other is None else (other[0][k], other[1],
                                                                   other[2]))
                     for k, c in enumerate(cube)]
        resid = cube - np.stack([self._core_map(k, self.x0, self.y0)
                                 for k in range(cube.shape[0])])
        self.resid = np.ascontiguousarray(resid)

    @staticmethod
    def _box(lo_edges, hi_edges, s):
        from scipy.special import erf

        r2 = math.sqrt(2.0) * s
        return 0.5 * (erf(hi_edges / r2) - erf(lo_edges / r2))

    def _gauss_pix(self, sig_deg, xc, yc, win):
        """A unit-amplitude Gaussian of sigma ``sig_deg`` at pixel (xc, yc) integrated
        over the pixels of the window ``win`` (y slice, x slice)."""
        ys, xs = win
        gx = np.arange(xs.start, xs.stop, dtype=float) - xc
        gy = np.arange(ys.start, ys.stop, dtype=float) - yc
        bx = self._box(gx - 0.5, gx + 0.5, sig_deg * self.jx)
        by = self._box(gy - 0.5, gy + 0.5, sig_deg * self.jy)
        return np.outer(by, bx)

    def _window(self, xc, yc, half):
        ny, nx = self.geom.shape
        return (slice(max(int(math.floor(yc - half)), 0), min(int(math.ceil(yc + half)) + 1,
                                                               ny)),
                slice(max(int(math.floor(xc - half)), 0), min(int(math.ceil(xc + half)) + 1,
                                                               nx)))

    def _fit_core(self, img, other=None):
        """The core of a node's WCS map (see :func:`_fit_two_gaussians`), with ``other``
        = (map, x, y) of the source elsewhere fitted together."""
        win = self._window(self.x0, self.y0, 3.5)
        if other is None:
            data = img[win].ravel()

            def basis(s_):
                return self._gauss_pix(s_, self.x0, self.y0, win).ravel()
        else:
            img1, x1, y1 = other
            win1 = self._window(x1, y1, 3.5)
            data = np.concatenate([img[win].ravel(), img1[win1].ravel()])

            def basis(s_):
                return np.concatenate([self._gauss_pix(s_, self.x0, self.y0, win).ravel(),
                                       self._gauss_pix(s_, x1, y1, win1).ravel()])
        comps, smax = _fit_two_gaussians(data, 1.0 / max(self.jx, self.jy), basis)
        return comps, 4.0 * smax * max(self.jx, self.jy) + 2.0

    def _core_map(self, k, xc, yc):
        ny, nx = self.geom.shape
        out = np.zeros((ny, nx))
        comps, half = self.core[k]
        if comps:
            win = self._window(xc, yc, half)
            out[win] = sum(a_ * self._gauss_pix(s_, xc, yc, win) for a_, s_ in comps)
        return out

    def _init_hpx(self):
        import healpy as hp

        from ..geom.frames import angular_separation, transform

        g = self.geom
        lon, lat = g.pixel_centers()
        self.lon, self.lat = np.asarray(lon, float), np.asarray(lat, float)
        clon, clat = transform(np.array([self.ra0]), np.array([self.dec0]), "CEL", g.frame)
        self.frame = g.frame
        d0 = angular_separation(self.lon, self.lat, float(clon[0]), float(clat[0]))
        res = hp.nside2resol(g.nside, arcmin=True) / 60.0
        # sub-pixels (64 per pixel) of the pixels near the source, as tangent offsets
        self.near = np.nonzero(d0 <= max(2.0, 10.0 * res))[0]
        hpix = np.asarray(g.pix, dtype=np.int64)[self.near]
        nest = hpix if g.nest else hp.ring2nest(g.nside, hpix)
        kids = (nest[:, None] * 64 + np.arange(64)[None, :]).ravel()
        klon, klat = hp.pix2ang(g.nside * 8, kids, nest=True, lonlat=True)
        kra, kdec = transform(np.asarray(klon), np.asarray(klat), g.frame, "CEL")
        xi, eta = tangent_offsets(self.ra0, self.dec0, kra, kdec)
        self.sub = (np.asarray(xi).reshape(-1, 64), np.asarray(eta).reshape(-1, 64))
        fitw = d0[self.near] <= 3.5 * res
        self.core = []
        for m in self.m0:
            comps, smax = _fit_two_gaussians(
                m[self.near][fitw], res, lambda s_: self._gauss_hpx(s_, 0.0, 0.0)[fitw])
            self.core.append(comps)
        self.g0 = np.stack([self._core_hpx(k, 0.0, 0.0) for k in range(len(self.core))])
        resid = self.m0 - self.g0
        step = res / 4.0
        ring = np.floor(d0 / step).astype(np.int64)
        nr = int(ring.max()) + 1
        cnt = np.bincount(ring, minlength=nr)
        has = cnt > 0
        self.r_mid = np.bincount(ring, d0, minlength=nr)[has] / cnt[has]
        self.prof = np.stack([np.bincount(ring, m, minlength=nr)[has] / cnt[has]
                              for m in resid])
        self.p0 = self._profile(d0)

    def _gauss_hpx(self, sig, xc, yc):
        """A Gaussian of sigma ``sig`` [deg] centred at tangent offsets (xc, yc), averaged
        over the sub-pixels of each near pixel (unit peak density)."""
        xi, eta = self.sub
        return np.exp(-((xi - xc) ** 2 + (eta - yc) ** 2) / (2 * sig * sig)).mean(axis=1) \
            / (sig * sig)

    def _core_hpx(self, k, xc, yc):
        out = np.zeros(self.m0.shape[1])
        if self.core[k]:
            out[self.near] = sum(a_ * self._gauss_hpx(s_, xc, yc) for a_, s_ in self.core[k])
        return out

    def _profile(self, d):
        return np.stack([np.interp(d, self.r_mid, p) for p in self.prof])

    def map_at(self, ra, dec) -> np.ndarray:
        """(n_nodes, n_pix) map of the source at (ra, dec)."""
        if self.hpx:
            from ..geom.frames import angular_separation, transform

            lo, la = transform(np.array([ra]), np.array([dec]), "CEL", self.frame)
            d = angular_separation(self.lon, self.lat, float(lo[0]), float(la[0]))
            xc, yc = (float(v) for v in tangent_offsets(self.ra0, self.dec0, ra, dec))
            core = np.stack([self._core_hpx(k, xc, yc) for k in range(len(self.core))])
            return np.maximum(self.m0 + self._profile(d) - self.p0 + core - self.g0, 0.0)
        xi, eta = tangent_offsets(self.ra0, self.dec0, ra, dec)
        dx, dy = (float(v) for v in self.jac @ np.array([float(xi), float(eta)]))
        if dx == 0.0 and dy == 0.0:
            return self.m0
        out = _shift_cubic(self.resid, dx, dy)
        xc, yc = self.x0 + dx, self.y0 + dy
        for k in range(out.shape[0]):
            out[k] += self._core_map(k, xc, yc)
        return np.maximum(out.reshape(self.m0.shape), 0.0)


def _keys(t):
    """Weights of Keys' cubic convolution (a = -1/2) for the taps -1, 0, 1, 2 at
    fractional offset t in [0, 1); (0, 1, 0, 0) at t = 0."""
    a = -0.5
    return (((a * t - 2 * a) * t + a) * t,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((-(a + 2) * t + (2 * a + 3)) * t - a) * t,
            (-a * t + a) * t * t)


def _shift_cubic(cube, dx, dy):
    """``cube`` (n, ny, nx) moved by (dx, dy) pixels, out[:, i, j] = cube(i - dy, j - dx),
    by separable cubic convolution, edge pixels repeated outside."""
    n, ny, nx = cube.shape

    def along(arr, shift, axis, size):
        s = -shift
        base = math.floor(s)
        w = _keys(s - base)
        idx = np.arange(size) + base
        out = 0.0
        for k, wk in zip((-1, 0, 1, 2), w):
            if wk == 0.0:
                continue
            out = out + wk * np.take(arr, np.clip(idx + k, 0, size - 1), axis=axis)
        return out

    return np.ascontiguousarray(along(along(cube, dx, 2, nx), dy, 1, ny), dtype=float)


def _moved(src, ra, dec):
    out = src
    for par, v in (("RA", ra), ("DEC", dec)):
        p = src.param(par)
        out = out.with_param(par, value=float(v) / p.scale)
    meta = dict(out.meta)
    meta.pop("pos_ellipse", None)
    return out.replace(meta=meta)


# ------------------------------------------------------------------ likelihood -------
class _Surface:
    """log L of the model with the source moved to a position, its free parameters (and
    the chosen background ones) refitted; the background-fixed amplitude-only TS."""

    def __init__(self, state, src, fit_options):
        from ..model.skymodel import SkyModel

        self.state, self.src = state, src
        self.fit_options = fit_options
        maker = state.map_maker

        def second(i):
            if maker is None:
                return None
            return lambda ra, dec: maker(_moved(src, ra, dec), i)

        self.movers = [Mover(c, src, second(i)) for i, c in enumerate(state.components)]
        self.nfit = 0
        self._a_last = None
        # amplitude-only pass: background counts without the source, fixed
        rest = state.model.remove(src.name)
        self.terms = []
        if len(rest):
            costs = component_costs(state, rest)
            for comp, c in zip(state.components, costs):
                m = np.asarray(c.model_cube(c.x0), float).reshape(comp.counts.shape)
                w = np.ones_like(m) if comp.wmap is None else np.asarray(comp.wmap, float)
                self.terms.append((np.asarray(comp.counts, float), m, w))
        self._one = SkyModel

    def state_at(self, ra, dec):
        src = _moved(self.src, ra, dec)
        key = map_key(src)
        comps = tuple(c.with_map(src.name, mv.map_at(ra, dec).reshape(
            c.maps[src.name].shape), key) for c, mv in zip(self.state.components,
                                                          self.movers))
        return self.state.replace(components=comps,
                                  model=self.state.model.replace_source(src)), src

    def source_counts(self, ra, dec):
        """Per component the counts cube of the source at (ra, dec), current spectrum."""
        src = _moved(self.src, ra, dec)
        out = []
        for comp, mv in zip(self.state.components, self.movers):
            one = comp.replace(maps={src.name: mv.map_at(ra, dec)},
                               map_keys={src.name: map_key(src)})
            sub = self.state.replace(components=(one,), model=self._one((src,)), priors={})
            c = component_costs(sub)[0]
            out.append(np.asarray(c.source_cube(src.name, c.x0), float).reshape(
                comp.counts.shape))
        return out

    def amplitude_ts(self, ra, dec):
        """(TS, A) of the source's amplitude (a multiple of its current counts) at
        (ra, dec) over the fixed background."""
        if not self.terms:
            raise EstimatorError(f"localize: {self.src.name!r} is the only source of the "
                                 "model; the first pass needs a background")
        s = self.source_counts(ra, dec)
        parts = []
        for (n, m, w), si in zip(self.terms, s):
            sel = si > 0
            parts.append((n[sel], m[sel], w[sel], si[sel]))

        def derivs(a, want_dl=False):
            g1 = g2 = dl = 0.0
            for nn, mm, ww, ss in parts:
                mu = mm + a * ss
                r = ww * nn * ss / mu
                g1 += float(np.sum(r - ww * ss))
                g2 -= float(np.sum(r * ss / mu))
                if want_dl:
                    dl += float(np.sum(ww * (nn * np.log1p(a * ss / mm) - a * ss)))
            return g1, g2, dl

        g1, g2, _ = derivs(0.0)
        if g1 <= 0:
            return 0.0, 0.0
        a, lo, hi = (g1 / -g2 if g2 < 0 else 1.0), 0.0, np.inf
        if self._a_last is not None:         # the previous position's amplitude
            a = self._a_last
        for _ in range(60):
            d1, d2, _ = derivs(a)
            if d1 > 0:
                lo = a
            else:
                hi = a
            new = a - d1 / d2 if d2 < 0 else np.nan
            if not (lo < new < hi):
                new = 0.5 * (lo + hi) if np.isfinite(hi) else 2.0 * a + 1e-12
            if abs(new - a) <= 1e-9 * max(abs(a), 1e-12):
                a = new
                break
            a = new
        self._a_last = a
        return max(2.0 * derivs(a, want_dl=True)[2], 0.0), a

    def fitted(self, ra, dec):
        """(log L, fit dict, state) with the source at (ra, dec), free parameters
        refitted (log L of the model as it is when nothing is free)."""
        from .fit import fit_state

        st, _ = self.state_at(ra, dec)
        self.nfit += 1
        free = any(p.free for s in st.model for p in s.spectral)
        if not free:
            return loglike(st), {"fit_success": True}, st
        out, new = fit_state(st, **self.fit_options)
        ll = out.get("loglike") if out.get("fit_success") else None
        if ll is None or not np.isfinite(ll):
            ll = loglike(st)           # a failed refit: log L at the starting values
        return float(ll), out, new


# ----------------------------------------------------------------- the estimator ------
def _free_set(state, src, fix_shape, free_background, free_radius):
    """The state with the parameters to refit at each position free: the source's norm
    (and shape unless fix_shape), the background's free ones with free_background, the
    norms of sources within free_radius."""
    from ..geom.frames import angular_separation
    from . import edits

    st = state
    if not free_background:
        st = edits.free_sources(st, free=False)[0]
    if free_radius is not None:
        ra0, dec0 = src.skydir
        for s in st.model:
            if s.name == src.name or s.skydir is None:
                continue
            d = float(angular_separation(np.array([s.skydir[0]]), np.array([s.skydir[1]]),
                                         ra0, dec0)[0])
            if d <= float(free_radius):
                st = edits.free_norm(st, s.name)
    st = edits.free_source(st, src.name, free=False)
    st = edits.free_norm(st, src.name)
    if not fix_shape:
        sm = st.spectral(src)
        if sm.shape_params:
            st = edits.free_shape(st, src.name)
    return st


def _check(name, value, cond, expected):
    if not cond:
        raise EstimatorError(f"localize: {name}: got {value!r}; expected {expected}")


@register("localize", version="1", product="localize", section="localize")
def localize(state: AnalysisState, name: str, *, nstep=5, dtheta_max=0.5,
             free_background=False, free_radius=None, fix_shape=False, update=True,
             optimizer=None):
    """Position of a source: a TS map within dtheta_max, then an nstep x nstep
    likelihood scan with the free parameters refitted and an ellipse fitted to log L."""
    import xarray as xr

    from ..geom.frames import angular_separation, fermipy_cel_to_gal
    from ..geom.hpx import HpxGeom
    from .sourcedict import ellipse_dict

    from ..errors import ModelError

    try:
        src = state.model.find(name)
    except ModelError as e:
        raise ModelError(f"localize: {e}") from None
    if src.is_diffuse or src.skydir is None:
        raise EstimatorError(f"localize: {src.name!r} is a diffuse source "
                             f"({src.spatial_model}); only sources with a position (point "
                             "or radial models) can be localised")
    _check("nstep", nstep, isinstance(nstep, (int, np.integer)) and not isinstance(
        nstep, bool) and nstep >= 3, "an integer >= 3 (the scan needs 3 x 3 points)")
    _check("dtheta_max", dtheta_max, isinstance(dtheta_max, (int, float)) and not
           isinstance(dtheta_max, bool) and dtheta_max > 0, "a positive angle in deg")
    _check("free_radius", free_radius, free_radius is None or (
        isinstance(free_radius, (int, float)) and free_radius >= 0), "null or an angle >= 0")
    if state.map_maker is None and update:
        raise EstimatorError("localize: this analysis state cannot make the moved source's "
                             "map (it has no map_maker); use update=False")
    nstep, dtheta_max = int(nstep), float(dtheta_max)
    fit_options = {"optimizer": str(optimizer or "NEWTON").upper()}
    ra0, dec0 = src.skydir
    loglike_init = loglike(state)

    work = _free_set(state, src, fix_shape, free_background, free_radius)
    surf = _Surface(work, work.model.find(src.name), fit_options)
    loglike_base, _, _ = surf.fitted(ra0, dec0)

    # ---- pass 1: amplitude-only TS on a lattice within dtheta_max
    g0 = state.components[0].geom
    pix = (math.degrees(math.sqrt(4 * math.pi / g0.npix_allsky))
           if isinstance(g0, HpxGeom) else float(g0.binsz))
    step1 = max(pix, dtheta_max / 8.0)
    n1 = int(math.floor(dtheta_max / step1 + 1e-9))
    off1 = np.arange(-n1, n1 + 1) * step1
    XI, ETA = np.meshgrid(off1, off1)
    inside = np.hypot(XI, ETA) <= dtheta_max + 1e-9
    RA1, DEC1 = tangent_to_sky(ra0, dec0, XI, ETA)
    TS = np.full(XI.shape, np.nan)
    for j in zip(*np.nonzero(inside)):
        TS[j] = surf.amplitude_ts(float(RA1[j]), float(DEC1[j]))[0]
    jmax = np.unravel_index(int(np.nanargmax(TS)), TS.shape)
    near = inside & (np.abs(XI - XI[jmax]) <= 1.01 * step1) & \
        (np.abs(ETA - ETA[jmax]) <= 1.01 * step1)
    pk, H1, ok1 = fit_ellipse(XI[near], ETA[near], 0.5 * TS[near])
    if ok1 and np.all(np.abs(pk - [XI[jmax], ETA[jmax]]) <= step1):
        c1 = pk
        cov1 = np.linalg.inv(H1)
        sig1 = math.sqrt(max(np.linalg.eigvalsh(cov1)[1], 0.0))
    else:
        c1 = np.array([XI[jmax], ETA[jmax]])
        cov1, sig1 = np.diag([step1 ** 2, step1 ** 2]), step1
    ra1, dec1 = (float(v) for v in tangent_to_sky(ra0, dec0, c1[0], c1[1]))
    fit_init = {"ra": ra1, "dec": dec1, "pos_err": float(math.sqrt(max(np.linalg.det(
        cov1), 0.0) ** 0.5)), "ts": float(np.nanmax(TS)), "fit_success": bool(ok1)}

    # ---- pass 2: likelihood scan with refits, a quadratic to log L
    cra, cdec = ra1, dec1
    h = float(np.clip(_SPAN * sig1, 1e-4, dtheta_max))
    grid = None
    method, ok, inb = "ellipse", False, False
    for _ in range(5):
        off = np.linspace(-h, h, nstep)
        GX, GY = np.meshgrid(off, off)
        GRA, GDEC = tangent_to_sky(cra, cdec, GX, GY)
        LL = np.array([[surf.fitted(float(GRA[i, j]), float(GDEC[i, j]))[0]
                        for j in range(nstep)] for i in range(nstep)])
        grid = (cra, cdec, h, GX, GY, GRA, GDEC, LL)
        peak, H, ok = fit_ellipse(GX, GY, LL)
        if ok:
            sig = math.sqrt(max(np.linalg.eigvalsh(np.linalg.inv(H))[1], 0.0))
            inb = bool(np.all(np.abs(peak) <= h))
            if inb and (1.8 <= h / sig <= 3.5 or h >= dtheta_max):
                break
            step = np.clip(peak, -h, h)
            cra, cdec = (float(v) for v in tangent_to_sky(cra, cdec, step[0], step[1]))
            h = float(np.clip(_SPAN * sig, 1e-4, dtheta_max))
        else:
            inb = False
            b = np.unravel_index(int(np.nanargmax(LL)), LL.shape)
            on_edge = b[0] in (0, nstep - 1) or b[1] in (0, nstep - 1)
            cra, cdec = float(GRA[b]), float(GDEC[b])
            h = float(min(h * (1.0 if on_edge else 2.0), dtheta_max))
    cra_g, cdec_g, h_g, GX, GY, GRA, GDEC, LL = grid
    if ok and inb:
        pra, pdec = (float(v) for v in tangent_to_sky(cra_g, cdec_g, peak[0], peak[1]))
        cov = _local_shape(surf, pra, pdec, np.linalg.inv(H))
    else:
        pra, pdec, cov, method = _direct(surf, GRA, GDEC, LL, h_g, dtheta_max)
    fit_success = method != "grid"
    # the covariance in (east, north) at the final position (the tangent plane at the
    # grid centre; the difference is second order in the offset)
    a, b, pa = ellipse_from_cov(cov)
    loglike_loc, fit_out, st_loc = surf.fitted(pra, pdec)
    offset = float(angular_separation(np.array([pra]), np.array([pdec]), ra0, dec0)[0])
    fit_inbounds = bool(inb and offset <= dtheta_max)

    # ---- results
    glon, glat = fermipy_cel_to_gal(pra, pdec)
    glon0, glat0 = fermipy_cel_to_gal(ra0, dec0)
    ell = ellipse_dict(pra, pdec, (a, b, pa))
    if isinstance(g0, HpxGeom):
        xpix = float(g0.world_to_pix(np.array([pra]), np.array([pdec]), frame="CEL")[0])
        ypix = float("nan")
    else:
        xp, yp = g0.world_to_pix(np.array([pra]), np.array([pdec]), frame="CEL")
        xpix, ypix = float(np.ravel(xp)[0]), float(np.ravel(yp)[0])
    dxi, deta = tangent_offsets(ra0, dec0, pra, pdec)
    scal = {
        "name": src.name, "ra": pra, "dec": pdec, "glon": glon, "glat": glat,
        "ra_preloc": ra0, "dec_preloc": dec0, "glon_preloc": glon0, "glat_preloc": glat0,
        "xpix": xpix, "ypix": ypix, "deltax": float(-dxi), "deltay": float(deta),
        "pos_offset": offset, "pos_ecc": math.sqrt(max(1.0 - (b / a) ** 2, 0.0)) if a > 0
        else float("nan"),
        "pos_ecc2": math.sqrt(max((a / b) ** 2 - 1.0, 0.0)) if b > 0 else float("nan"),
        "loglike_init": float(loglike_init), "loglike_base": float(loglike_base),
        "loglike_loc": float(loglike_loc),
        "dloglike_loc": float(loglike_loc - loglike_base),
        "fit_success": bool(fit_success), "fit_inbounds": fit_inbounds,
        "method": method, "tsmap_peak": float(np.nanmax(TS)),
        "dtheta_max": dtheta_max, "nstep": nstep, "fix_shape": bool(fix_shape),
        "free_background": bool(free_background),
        "free_radius": float("nan") if free_radius is None else float(free_radius),
        "update": bool(update), "nfit": int(surf.nfit),
        "scan_center_ra": cra_g, "scan_center_dec": cdec_g, "scan_halfwidth": h_g,
    }
    for k, v in ell.items():
        if np.ndim(v) == 0:
            scal[k] = float(v)
    for k, v in fit_init.items():
        scal[f"fit_init_{k}"] = v
    mats = {k: (("axis", "axis_b"), np.asarray(ell[k], float))
            for k in ("pos_cel_cov", "pos_cel_corr", "pos_gal_cov", "pos_gal_corr")}
    ds = xr.Dataset(
        {"tsmap": (("tsmap_y", "tsmap_x"), TS, {"description": "amplitude-only TS of the "
                                                "source within dtheta_max (pass 1)"}),
         "loglike_scan": (("scan_y", "scan_x"), LL, {"description": "log L on the last "
                                                     "scan grid, free parameters refitted"}),
         "dloglike_scan": (("scan_y", "scan_x"), LL - np.nanmax(LL)),
         **mats},
        coords={"tsmap_ra": (("tsmap_y", "tsmap_x"), RA1, {"units": "deg"}),
                "tsmap_dec": (("tsmap_y", "tsmap_x"), DEC1, {"units": "deg"}),
                "tsmap_xi": ("tsmap_x", off1, {"units": "deg", "description": "east"}),
                "tsmap_eta": ("tsmap_y", off1, {"units": "deg", "description": "north"}),
                "scan_ra": (("scan_y", "scan_x"), GRA, {"units": "deg"}),
                "scan_dec": (("scan_y", "scan_x"), GDEC, {"units": "deg"}),
                "axis": ["x", "y"], "axis_b": ["x", "y"]},
        attrs={"fermixr_product": "localize", **scal,
               "model": json.dumps(state.model.to_dict())})
    proposed = None
    if update:
        new_src = st_loc.model.find(src.name)
        new_src = new_src.replace(meta=dict(new_src.meta, pos_ellipse=(a, b, pa)))
        # the exact map at the new position (made when the components are first read)
        base = state.model.replace_source(new_src)
        # keep the caller's free/fixed flags; the fitted values of the refitted parameters
        orig = state.model
        model = base
        for s in st_loc.model:
            o = orig.find(s.name)
            t = o if s.name != src.name else new_src
            for p in s.spectral:
                t = t.with_param(p.name, value=p.value, error=p.error,
                                 free=o.param(p.name).free)
            model = model.replace_source(t)
        comps, maker = state.components, state.map_maker
        moved = model.find(src.name)
        proposed = state.replace(model=model, fit=None, components=LazyComponents(
            lambda: ensure_maps(comps, moved, maker)))
    return EstimatorResult(ds, proposed)


def _hessian(f, h):
    """-(second derivatives) of f(dx, dy) at (0, 0), central differences of step h."""
    f0 = f(0.0, 0.0)
    hxx = -(f(h, 0.0) - 2 * f0 + f(-h, 0.0)) / h ** 2
    hyy = -(f(0.0, h) - 2 * f0 + f(0.0, -h)) / h ** 2
    hxy = -(f(h, h) - f(h, -h) - f(-h, h) + f(-h, -h)) / (4 * h * h)
    return np.array([[hxx, hxy], [hxy, hyy]])


def _local_shape(surf, ra, dec, cov_grid):
    """The ellipse's orientation and axis ratio from the Hessian of log L at the maximum
    (central differences, step pos_err / 2), its size (det, i.e. pos_err) from the
    quadratic fitted over the scan grid (+-2.5 sigma, the scale of the r95 contour that
    calibrates the coverage).  log L is not exactly quadratic, so the grid's quadratic
    alone tilts the ellipse towards the surface's shape at 2-3 sigma (up to ~10 deg on
    elongated ellipses).  Falls back to the grid's covariance where the Hessian is not
    positive definite."""
    det_g = float(np.linalg.det(cov_grid))
    h = 0.5 * det_g ** 0.25

    def f(dx, dy):
        r, d = tangent_to_sky(ra, dec, dx, dy)
        return surf.fitted(float(r), float(d))[0]

    H = _hessian(f, h)
    if not (np.all(np.isfinite(H)) and H[0, 0] > 0 and np.linalg.det(H) > 0):
        return cov_grid
    cov = np.linalg.inv(H)
    return cov * math.sqrt(det_g / float(np.linalg.det(cov)))


def _direct(surf, GRA, GDEC, LL, h, dtheta_max):
    """Maximise log L in position directly (Nelder-Mead), errors from a finite-difference
    Hessian; (ra, dec, cov, method)."""
    from scipy.optimize import minimize

    b = np.unravel_index(int(np.nanargmax(LL)), LL.shape)
    ra_b, dec_b = float(GRA[b]), float(GDEC[b])

    def f(v):
        if math.hypot(v[0], v[1]) > dtheta_max:      # stay within dtheta_max
            return np.inf
        r, d = tangent_to_sky(ra_b, dec_b, v[0], v[1])
        return -surf.fitted(float(r), float(d))[0]

    res = minimize(f, np.zeros(2), method="Nelder-Mead",
                   options={"initial_simplex": [[0, 0], [h / 2, 0], [0, h / 2]],
                            "xatol": h * 1e-3, "fatol": 1e-4, "maxfev": 200})
    x0 = res.x
    f0 = float(res.fun)
    hs = max(h / 4.0, 1e-5)
    ev = {}

    def fv(i, j):
        if (i, j) not in ev:
            ev[(i, j)] = f0 if i == j == 0 else f(x0 + hs * np.array([i, j]))
        return ev[(i, j)]

    Hxx = (fv(1, 0) - 2 * f0 + fv(-1, 0)) / hs ** 2
    Hyy = (fv(0, 1) - 2 * f0 + fv(0, -1)) / hs ** 2
    Hxy = (fv(1, 1) - fv(1, -1) - fv(-1, 1) + fv(-1, -1)) / (4 * hs ** 2)
    H = np.array([[Hxx, Hxy], [Hxy, Hyy]])
    ra, dec = (float(v) for v in tangent_to_sky(ra_b, dec_b, x0[0], x0[1]))
    if np.all(np.isfinite(H)) and H[0, 0] > 0 and np.linalg.det(H) > 0:
        return ra, dec, np.linalg.inv(H), "direct"
    return ra, dec, np.diag([h * h, h * h]), "grid"
