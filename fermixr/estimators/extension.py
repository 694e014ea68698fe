"""Spatial extension of a source: the likelihood profile in the 68% containment radius of a
RadialGaussian or RadialDisk at the source's position, against the point source.

For each width of the scan (``width``, or ``width_nstep`` widths log-spaced in
[``width_min``, ``width_max``]) the source takes that morphology (its maps made by the
state's ``map_maker`` and kept for the call) and the free parameters are refitted: the
source's spectrum (its normalisation, and its shape unless ``fix_shape``), the background
parameters free in the model with ``free_background``, the normalisations of the
point-like sources within ``free_radius``.  The scan's maximum is then refined by
successive parabolas in log(width) through the best point and its neighbours (to 0.004 dex,
widths snapped to a 0.001 dex lattice so that their maps are reused), every point a refit; the
profile is every width evaluated, and the reported best fit ``ext`` IS the profile's
largest log-likelihood (never a point off it).  With ``TS_ext = 2 (lnL_ext - lnL_ptsrc)``
and on a monotone (PCHIP) interpolation of the profile in log(width):
``ext_err_lo`` / ``ext_err_hi`` where it has dropped by 0.5, ``ext_ul95`` where it has
dropped by 1.353 above the maximum.  A limit the profile does not reach inside the scanned
range is NaN and flagged (``flags``), never a NaN without a reason.

``fit_position`` alternates a fit of the position (Nelder-Mead on the sky, each point a
refit) with the width scan; ``fit_ebin`` repeats the test in each energy bin (the other
bins weighted out); ``update`` proposes the state with the extended source at its best
fit when sqrt(TS_ext) passes ``sqrt_ts_threshold``.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import EstimatorError, FermixrError
from ..likelihood.roi import AnalysisState, loglike, map_key
from . import EstimatorResult, register

__all__ = ["extension", "width_grid", "profile_limits", "DLNL_ERR", "DLNL_UL95"]

DLNL_ERR = 0.5
DLNL_UL95 = 0.5 * 2.705543454095404        # 0.5 * (sqrt(2) erfinv(0.9))**2 = 1.3528
_KINDS = ("RadialGaussian", "RadialDisk")
_LATTICE = 0.001          # dex: refinement widths are snapped to it


def width_grid(width=None, width_min=0.01, width_max=1.0, width_nstep=21) -> np.ndarray:
    """The widths scanned (68% containment radii, deg)."""
    if width is not None:
        w = np.asarray(width, dtype=float).ravel()
        if w.size < 2 or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise EstimatorError(f"extension: width: got {w.tolist()!r}; expected at least two "
                                 "positive widths in deg")
        return np.unique(w)
    if not (width_min > 0 and width_max > width_min):
        raise EstimatorError(f"extension: width_min {width_min!r}, width_max {width_max!r}: "
                             "expected 0 < width_min < width_max (deg)")
    if int(width_nstep) < 2:
        raise EstimatorError(f"extension: width_nstep: got {width_nstep!r}; expected >= 2")
    return np.geomspace(float(width_min), float(width_max), int(width_nstep))


def profile_limits(widths, loglikes, drop_err=DLNL_ERR, drop_ul=DLNL_UL95) -> dict:
    """Best width and the limits of a profile (widths need not be sorted): on a PCHIP
    interpolation in log10(width) of lnL - max; a limit outside the range is NaN with a
    flag naming why."""
    from scipy.interpolate import PchipInterpolator
    from scipy.optimize import brentq

    w = np.asarray(widths, dtype=float)
    ll = np.asarray(loglikes, dtype=float)
    order = np.argsort(w)
    w, ll = w[order], ll[order]
    ok = np.isfinite(ll)
    w, ll = w[ok], ll[ok]
    x = np.log10(w)
    ib = int(np.argmax(ll))
    out = {"ext": float(w[ib]), "loglike_ext": float(ll[ib]), "flags": {}}
    if w.size < 2:
        for k in ("ext_err_lo", "ext_err_hi", "ext_ul95"):
            out[k] = math.nan
            out["flags"][k] = "fewer than two finite points on the profile"
        return out
    f = PchipInterpolator(x, ll - ll[ib])

    def cross(drop, side):
        g = (lambda t: float(f(t)) + drop)
        idx = range(ib, 0, -1) if side < 0 else range(ib, x.size - 1)
        for j in idx:
            a, b = (x[j - 1], x[j]) if side < 0 else (x[j], x[j + 1])
            if g(a) * g(b) <= 0:
                return 10 ** brentq(g, a, b, xtol=1e-6)
        return math.nan

    lo, hi, ul = cross(drop_err, -1), cross(drop_err, +1), cross(drop_ul, +1)
    out["ext_err_lo"] = float(w[ib] - lo) if np.isfinite(lo) else math.nan
    out["ext_err_hi"] = float(hi - w[ib]) if np.isfinite(hi) else math.nan
    out["ext_ul95"] = float(ul)
    if not np.isfinite(lo):
        out["flags"]["ext_err_lo"] = (f"the profile does not drop by {drop_err} below the "
                                      f"best width {w[ib]:.4g} deg down to the smallest "
                                      f"width scanned ({w[0]:.4g} deg)")
    if not np.isfinite(hi):
        out["flags"]["ext_err_hi"] = (f"the profile does not drop by {drop_err} above the "
                                      f"best width {w[ib]:.4g} deg up to the largest width "
                                      f"scanned ({w[-1]:.4g} deg)")
    if not np.isfinite(ul):
        out["flags"]["ext_ul95"] = (f"the profile does not drop by {drop_ul:.4f} up to the "
                                    f"largest width scanned ({w[-1]:.4g} deg): the upper "
                                    "limit lies beyond it; raise width_max")
    errs = [v for v in (out["ext_err_lo"], out["ext_err_hi"]) if np.isfinite(v)]
    out["ext_err"] = float(np.mean(errs)) if errs else math.nan
    if not errs:
        out["flags"]["ext_err"] = "neither side of the profile drops by 0.5 in the range"
    elif len(errs) == 1:
        out["flags"]["ext_err"] = "one-sided: only one side of the profile drops by 0.5"
    return out


# ------------------------------------------------------------------ the machinery --
class _Maps:
    """Maps of the source of interest per spatial model, kept for one call (each made once
    by the state's map maker, which also keeps them in the product store)."""

    def __init__(self, state: AnalysisState):
        self.maker = state.map_maker
        self.cache: dict = {}

    def state_with(self, st: AnalysisState, src) -> AnalysisState:
        key = map_key(src)
        comps = []
        for i, c in enumerate(st.components):
            if c.map_keys.get(src.name) == key:
                comps.append(c)
                continue
            arr = self.cache.get((key, i))
            if arr is None:
                if self.maker is None:
                    raise EstimatorError("extension: this analysis state cannot make the "
                                         "source's maps (it was not loaded from a run and "
                                         "has no map_maker)")
                arr = np.asarray(self.maker(src, i), dtype=np.float64)
                arr = arr.reshape(arr.shape[0], -1)
                arr.setflags(write=False)
                self.cache[(key, i)] = arr
            comps.append(c.with_map(src.name, arr, key))
        return st.replace(components=tuple(comps)).with_model(
            st.model.replace_source(src), fit=None)


def _morph(src, kind, width=None, radec=None):
    """``src`` with spatial model ``kind`` (PointSource, RadialGaussian, RadialDisk) of 68%
    radius ``width`` (deg) at ``radec`` (default its own position)."""
    from ..model.parameters import Parameter
    from ..model.spatial import default_params, width_to_param

    ra, dec = radec if radec is not None else src.skydir
    pars = []
    for q in default_params(kind):
        if q.name == "RA":
            pars.append(q.replace(value=float(ra), scale=1.0))
        elif q.name == "DEC":
            pars.append(q.replace(value=float(dec), scale=1.0))
        else:
            pname, v = width_to_param(kind, float(width))
            pars.append(Parameter(pname, float(v), 1.0, 1e-10, 10.0, False))
    return src.replace(spatial_model=kind, spatial=tuple(pars), meta={})


def _fit(st: AnalysisState, fit_options: dict):
    """(log L, fit dict, state after): the free parameters refitted; a fit that fails or
    ends below its start keeps the start (flagged by fit_success / fit_quality)."""
    from .fit import fit_state

    ll0 = loglike(st)
    try:
        out, new = fit_state(st, **fit_options)
    except FermixrError as exc:          # no free parameter: the start is the answer
        return ll0, {"fit_success": False, "fit_quality": 0, "message": str(exc)}, st
    ll = loglike(new) if out.get("fit_success") else ll0
    if not out.get("fit_success") or ll < ll0:
        return ll0, dict(out, fit_success=False), st
    return ll, out, new


def _prepare(state, src, free_background, free_radius, fix_shape):
    """The state with the parameters the test fits free."""
    from ..geom.frames import angular_separation
    from . import edits as E

    st = state if free_background else E.free_sources(state, free=False)[0]
    if free_radius is not None:
        ra, dec = src.skydir
        for s in state.model:
            if s.name == src.name or s.skydir is None:
                continue
            d = float(angular_separation(np.array([s.skydir[0]]), np.array([s.skydir[1]]),
                                         ra, dec)[0])
            if d <= float(free_radius):
                st = E.free_norm(st, s.name)
    st = E.free_source(st, src.name)
    if fix_shape:
        st = E.free_shape(st, src.name, free=False)
    return st


class _Profile:
    """Refits at widths of one morphology at one position; every evaluation kept."""

    def __init__(self, start, name, kind, maps, fit_options, radec=None):
        self.start, self.name, self.kind = start, name, kind
        self.maps, self.fit_options, self.radec = maps, fit_options, radec
        self.points: dict[float, tuple] = {}

    def __call__(self, w: float, snap: bool = False):
        w = float(w)
        if snap:     # refinement widths on a lattice of 0.001 dex: maps reused across calls
            w = float(10 ** (round(math.log10(w) / _LATTICE) * _LATTICE))
        if w not in self.points:
            src = _morph(self.start.model.find(self.name), self.kind, w, self.radec)
            self.points[w] = _fit(self.maps.state_with(self.start, src), self.fit_options)
        return self.points[w]

    def scan(self, widths):
        return np.array([self(w)[0] for w in widths])

    def refine(self, xtol=0.004, max_iter=8):
        """Successive parabolas in log10(width) through the best point and its two
        neighbours on the profile, each vertex (kept strictly inside the bracket, snapped
        to the lattice) a refit, until it moves less than ``xtol`` dex or the bracket is
        narrower than 2 ``xtol``.  A maximum at an end of the range stays there."""
        for _ in range(max_iter):
            w, y = self.arrays()
            x = np.log10(w)
            i = int(np.argmax(y))
            if i == 0 or i == x.size - 1:
                return
            x0, x1, x2 = x[i - 1:i + 2]
            y0, y1, y2 = y[i - 1:i + 2]
            if x2 - x0 < 2 * xtol:
                return
            den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
            num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
            xn = x1 - 0.5 * num / den if den != 0 else 0.5 * (x0 + x2)
            xn = float(np.clip(xn, x0 + 0.1 * (x1 - x0), x2 - 0.1 * (x2 - x1)))
            if abs(xn - x1) < xtol:
                return
            n = len(self.points)
            self(10 ** xn, snap=True)
            if len(self.points) == n:          # the lattice point was evaluated already
                return

    def arrays(self):
        w = np.array(sorted(self.points))
        return w, np.array([self.points[v][0] for v in w])

    def best(self):
        w, ll = self.arrays()
        wb = float(w[int(np.argmax(ll))])
        return wb, self.points[wb]


def _fit_position(start, name, kind, width, maps, fit_options, step):
    """Maximum-likelihood position (ra, dec) of ``name`` as ``kind`` of ``width``, each
    point a refit (Nelder-Mead on tangent-plane offsets, deg)."""
    from scipy.optimize import minimize

    ra0, dec0 = start.model.find(name).skydir
    cosd = max(math.cos(math.radians(dec0)), 1e-6)
    memo = {}

    def radec(p):
        return ((ra0 + p[0] / cosd) % 360.0, float(np.clip(dec0 + p[1], -90.0, 90.0)))

    def f(p):
        key = (round(float(p[0]), 7), round(float(p[1]), 7))
        if key not in memo:
            src = _morph(start.model.find(name), kind, width, radec(p))
            memo[key] = _fit(maps.state_with(start, src), fit_options)
        return -memo[key][0]

    simplex = np.array([[0.0, 0.0], [step, 0.0], [0.0, step]])
    res = minimize(f, np.zeros(2), method="Nelder-Mead",
                   options={"initial_simplex": simplex, "xatol": step / 50.0,
                            "fatol": 1e-3, "maxfev": 80})
    return radec(res.x), bool(res.success)


def _ebin_masks(state):
    """(edges of component 0, per bin the weights-masked state)."""
    edges = np.asarray(state.components[0].edges, dtype=float)
    out = []
    for k in range(edges.size - 1):
        lo, hi = edges[k], edges[k + 1]
        comps = []
        for c in state.components:
            ctr = np.sqrt(c.edges[:-1] * c.edges[1:])
            sel = ((ctr > lo) & (ctr < hi)).astype(float)[:, None]
            w = (np.ones_like(c.counts) if c.wmap is None else np.asarray(c.wmap)) * sel
            comps.append(c.replace(wmap=w))
        out.append(state.replace(components=tuple(comps)))
    return edges, out


def _test(start, name, kind, widths, maps, fit_options, radec=None, refine=True):
    """(point-source fit, profile): the extension test of ``name`` in ``start``."""
    src = start.model.find(name)
    pt_src = _morph(src, "PointSource", radec=radec)
    ll_pt, out_pt, st_pt = _fit(maps.state_with(start, pt_src), fit_options)
    prof = _Profile(st_pt, name, kind, maps, fit_options, radec)
    ll = prof.scan(widths)
    if refine and np.isfinite(ll).any():
        prof.refine()
    return (ll_pt, out_pt, st_pt), prof, ll


def _source_fit(st, name) -> dict:
    s = st.model.find(name)
    return {"SpatialModel": s.spatial_model, "SpectrumType": s.spectrum,
            "spatial_pars": {p.name: p.physical for p in s.spatial},
            "spectral_pars": {p.name: {"value": p.physical,
                                       "error": None if p.error is None
                                       else p.error * abs(p.scale)}
                              for p in s.spectral}}


@register("extension", version="1", product="extension", section="extension")
def extension(state: AnalysisState, name: str, *, spatial_model="RadialGaussian", width=None,
              fit_position=False, width_min=0.01, width_max=1.0, width_nstep=21,
              free_background=False, free_radius=None, fix_shape=False, fit_ebin=False,
              update=False, save_model_map=False, sqrt_ts_threshold=None, psf_scale_fn=None,
              make_tsmap=True, optimizer=None):
    """Spatial extension test of a source: width scan refined at its maximum, TS_ext,
    ext with errors and 95% upper limit (Fermipy's extension())."""
    import xarray as xr

    from ..geom.frames import transform
    from ..model.spatial import spatial_type

    try:
        src0 = state.model.find(name)
    except FermixrError as exc:
        raise EstimatorError(f"extension: {exc}") from None
    if src0.skydir is None:
        raise EstimatorError(f"extension: {src0.name!r} is a diffuse source "
                             f"({src0.spatial_model}); the extension test needs a point or "
                             "radial source with a position")
    try:
        kind = spatial_type(spatial_model)
    except FermixrError:
        kind = None
    if kind not in _KINDS:
        raise EstimatorError(f"extension: spatial_model: got {spatial_model!r}; expected "
                             "'RadialGaussian' or 'RadialDisk'")
    if psf_scale_fn is not None:
        raise EstimatorError(f"extension: psf_scale_fn: got {psf_scale_fn!r}; a rescaled PSF "
                             "is not implemented: leave psf_scale_fn null")
    if free_radius is not None and not float(free_radius) >= 0:
        raise EstimatorError(f"extension: free_radius: got {free_radius!r}; expected an "
                             "angle >= 0 deg or null")
    widths = width_grid(width, width_min, width_max, width_nstep)
    if state.map_maker is None:
        raise EstimatorError("extension: this analysis state cannot make the source's maps "
                             "(it was not loaded from a run and has no map_maker)")
    fit_options = dict(optimizer or {})
    name = src0.name
    maps = _Maps(state)

    loglike_init = loglike(state)
    start = _prepare(state, src0, free_background, free_radius, fix_shape)
    ll_base, _, st_base = _fit(start, fit_options)
    radec = src0.skydir
    pos_success = None
    (ll_pt, out_pt, st_pt), prof, ll = _test(st_base, name, kind, widths, maps, fit_options)
    if fit_position:
        step, st_from = 0.1, st_pt
        for _it in range(3):
            wb = prof.best()[0]
            new_pos, pos_success = _fit_position(st_from, name, kind, wb, maps, fit_options,
                                                 step)
            moved = float(np.hypot((new_pos[0] - radec[0]) * math.cos(math.radians(radec[1])),
                                   new_pos[1] - radec[1]))
            radec = new_pos
            (ll_pt, out_pt, st_pt), prof, ll = _test(st_base, name, kind, widths, maps,
                                                     fit_options, radec)
            st_from = prof.best()[1][2]
            step = max(0.02, wb / 2.0)
            if moved < 0.01:
                break
        # the point-source hypothesis at its own best position
        pt_pos, _ok = _fit_position(st_pt, name, "PointSource", None, maps, fit_options,
                                    0.05)
        ll2, out2, st2 = _fit(maps.state_with(st_base, _morph(
            st_base.model.find(name), "PointSource", radec=pt_pos)), fit_options)
        if ll2 > ll_pt:
            ll_pt, out_pt, st_pt = ll2, out2, st2
    w_all, ll_all = prof.arrays()
    lim = profile_limits(w_all, ll_all)
    wb, (ll_ext, out_ext, st_ext) = prof.best()
    ts_ext = 2.0 * (ll_ext - ll_pt)
    flags = dict(lim["flags"])
    fs = np.array([bool(prof.points[float(w)][1].get("fit_success")) for w in widths])
    fq = np.array([int(prof.points[float(w)][1].get("fit_quality", 0) or 0) for w in widths])
    if not out_pt.get("fit_success", True):
        flags["loglike_ptsrc"] = "the point-source fit failed; its start is reported"
    if not out_ext.get("fit_success", True):
        flags["loglike_ext"] = "the fit at the best width failed; its start is reported"
    if not fs.all():
        flags["loglike"] = f"the fit failed at {int((~fs).sum())} width(s) (fit_success)"
    if ts_ext < -1e-3:
        flags["ts_ext"] = "negative: the point source fits better than every width"

    data = {"loglike": ("width", np.array([prof.points[float(w)][0] for w in widths])),
            "fit_success": ("width", fs), "fit_quality": ("width", fq),
            "profile_loglike": ("profile", ll_all)}
    data["dloglike"] = ("width", data["loglike"][1] - ll_pt)
    coords = {"width": ("width", widths, {"units": "deg"}),
              "profile_width": ("profile", w_all, {"units": "deg"})}
    if fit_ebin:
        eb = _ebins(st_base, name, kind, widths, maps, fit_options, radec)
        for k, v in eb.items():
            data[k] = (("ebin", "width") if np.ndim(v) == 2 else ("ebin",), v)
    if save_model_map:
        from .ts import model_cubes

        for label, st_h in (("ptsrc", st_pt), ("ext", st_ext)):
            cube = model_cubes(st_h)[0].sum(axis=0).reshape(state.components[0].sky_shape)
            data[f"{label}_model_map"] = (("y", "x") if cube.ndim == 2 else ("pix",), cube)
    if make_tsmap:
        from .tsmap import tsmap

        tm = tsmap(st_ext, exclude=[name]).dataset
        data["tsmap"] = (tuple(f"tsmap_{d}" for d in tm["ts"].dims), tm["ts"].values)
    glon, glat = transform(np.array([radec[0]]), np.array([radec[1]]), "CEL", "GAL")
    sqrt_ts = math.sqrt(max(ts_ext, 0.0))
    adopt = bool(update) and (sqrt_ts_threshold is None or sqrt_ts > float(sqrt_ts_threshold))
    attrs = {"fermixr_product": "extension", "name": name, "spatial_model": kind,
             "ext": lim["ext"], "ext_err": lim["ext_err"], "ext_err_lo": lim["ext_err_lo"],
             "ext_err_hi": lim["ext_err_hi"], "ext_ul95": lim["ext_ul95"],
             "ts_ext": float(ts_ext), "loglike_ptsrc": float(ll_pt),
             "loglike_ext": float(ll_ext), "loglike_init": float(loglike_init),
             "loglike_base": float(ll_base), "ra": float(radec[0]), "dec": float(radec[1]),
             "glon": float(glon[0]), "glat": float(glat[0]),
             "fit_position": bool(fit_position), "updated": adopt,
             "flags": json.dumps(flags), "source_fit": json.dumps(_source_fit(st_ext, name)),
             "ptsrc_fit": json.dumps(_source_fit(st_pt, name))}
    if pos_success is not None:
        attrs["fit_position_success"] = bool(pos_success)
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    new = None
    if adopt:
        new = _proposal(state, st_ext, name, maps)
    return EstimatorResult(ds, new)


def _proposal(state, st_ext, name, maps):
    """The given state with the source as fitted at its best width and the fitted values
    of the other parameters; every parameter keeps the given free flag; no fit record (the
    free set differs)."""
    model = state.model
    for s in st_ext.model:
        old = model.find(s.name)
        spectral = tuple(p.replace(free=old.param(p.name).free) for p in s.spectral)
        model = model.replace_source(s.replace(spectral=spectral))
    src = model.find(name)
    return maps.state_with(state, src).with_model(model, fit=None)


def _ebins(st_base, name, kind, widths, maps, fit_options, radec) -> dict:
    """The test in each energy bin of component 0 (the others weighted out; the source's
    norm refitted, its shape held)."""
    from . import edits as E

    edges, states = _ebin_masks(E.free_shape(st_base, name, free=False))
    keys = ("ext", "ext_err", "ext_err_lo", "ext_err_hi", "ext_ul95", "ts_ext",
            "loglike_ptsrc", "loglike_ext")
    out = {f"ebin_{k}": np.full(len(states), np.nan) for k in keys}
    out["ebin_loglike"] = np.full((len(states), widths.size), np.nan)
    out["ebin_e_min"] = edges[:-1].copy()
    out["ebin_e_max"] = edges[1:].copy()
    out["ebin_e_ctr"] = np.sqrt(edges[:-1] * edges[1:])
    for k, stk in enumerate(states):
        (ll_pt, _, _), prof, ll = _test(stk, name, kind, widths, maps, fit_options, radec)
        w_all, ll_all = prof.arrays()
        lim = profile_limits(w_all, ll_all)
        out["ebin_loglike"][k] = ll
        for key in ("ext", "ext_err", "ext_err_lo", "ext_err_hi", "ext_ul95"):
            out[f"ebin_{key}"][k] = lim[key]
        out["ebin_loglike_ptsrc"][k] = ll_pt
        out["ebin_loglike_ext"][k] = lim["loglike_ext"]
        out["ebin_ts_ext"][k] = 2.0 * (lim["loglike_ext"] - ll_pt)
    out["ebin_dloglike"] = out["ebin_loglike"] - out["ebin_loglike_ptsrc"][:, None]
    return out
