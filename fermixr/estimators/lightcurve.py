"""The numbers of a light curve (Fermipy's ``lightcurve``): the time bins, which parameters
each bin fits, the fit of one bin (the source dictionary's flux families with errors and
95% upper limits, a likelihood scan of the source's normalisation), and the reduction over
the bins (the constant-flux fit, ``loglike_const`` and the 2FGL variability statistic
``ts_var``).

Everything here is a plain function of an analysis state and options; the engine
(:mod:`fermixr.engine.lightcurve`) plans one keyed sub-plan per bin (its GTIs, livetime
cube, source maps, counts) and calls :func:`fit_bin` in that bin's task.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import RecipeError
from ..likelihood.roi import AnalysisState, build_cost, loglike

__all__ = ["time_bins", "gti_in_bin", "free_plan", "fit_bin", "failed_bin", "reduce_curve",
           "constant_flux", "ts_var", "FAMILY_KEYS", "BIN_SCALARS", "SCAN_NPTS"]

UL95_DLOGLIKE = 1.353      # 2 dlnL = 2.706: one-sided 95% upper limit
SCAN_NPTS = 30             # points of each bin's normalisation scan (incl. 0 and the fit)

# the source dictionary's flux / eflux / dN/dE families, reported per bin
_BANDS = ("", "100", "1000", "10000")
FAMILY_KEYS = tuple(
    [f"{f}{b}{s}" for f in ("flux", "eflux") for b in _BANDS for s in ("", "_err", "_ul95")]
    + [f"dnde{b}{s}" for b in _BANDS for s in ("", "_err", "_index")])
BIN_SCALARS = ("ts", "npred", "loglike", "loglike_fixed", "fit_quality", "fit_status",
               "pivot_energy") + FAMILY_KEYS


# ---------------------------------------------------------------------------- bins -----
def time_bins(data_start: float, data_stop: float, *, binsz: float | None = 86400.0,
              nbins: int | None = None, time_bins=None,
              span: str = "the selection's GTIs") -> np.ndarray:
    """The (n, 2) array of [tmin, tmax] (MET s) of the light curve's bins: explicit
    ``time_bins`` edges win over ``nbins`` equal bins, which win over bins of ``binsz``
    seconds; bins are clipped to the data's range [``data_start``, ``data_stop``].

    Explicit edges that do not increase (overlapping bins) or a bin entirely outside the
    data raise :class:`~fermixr.errors.RecipeError` naming it (``span``: what the data's
    range is, for the message)."""
    t0, t1 = float(data_start), float(data_stop)
    if not t1 > t0:
        raise RecipeError(f"lightcurve: the data cover no time (MET {t0:.1f}-{t1:.1f} s)")
    if time_bins is not None and len(time_bins):
        edges = np.asarray(time_bins, dtype=float).ravel()
        if edges.size < 2:
            raise RecipeError(f"lightcurve.time_bins: got {list(edges)}; expected at least "
                              "two bin edges (MET s)")
        bad = np.flatnonzero(np.diff(edges) <= 0)
        if bad.size:
            i = int(bad[0])
            raise RecipeError(
                f"lightcurve.time_bins: edges {edges[i]:.1f} and {edges[i + 1]:.1f} (positions "
                f"{i} and {i + 1}) do not increase: the bins overlap; give increasing edges")
        out = []
        for a, b in zip(edges[:-1], edges[1:]):
            if b <= t0 or a >= t1:
                raise RecipeError(
                    f"lightcurve.time_bins: the bin MET {a:.1f}-{b:.1f} s is outside the data "
                    f"(MET {t0:.1f}-{t1:.1f} s, {span}); give bins within it")
            out.append((max(a, t0), min(b, t1)))
        return np.array(out, dtype=float)
    if nbins:
        edges = np.linspace(t0, t1, int(nbins) + 1)
    else:
        if binsz is None or not binsz > 0:
            raise RecipeError(f"lightcurve.binsz: got {binsz!r}; expected a width > 0 s")
        n = max(int(math.ceil((t1 - t0) / float(binsz) - 1e-9)), 1)
        edges = np.minimum(t0 + float(binsz) * np.arange(n + 1), t1)
    return np.column_stack([edges[:-1], edges[1:]])


def gti_in_bin(start, stop, tmin: float, tmax: float) -> tuple[np.ndarray, np.ndarray]:
    """The GTIs (``start``, ``stop``) intersected with [``tmin``, ``tmax``]; empty arrays
    when the bin falls in a gap."""
    s = np.maximum(np.asarray(start, dtype=float), tmin)
    e = np.minimum(np.asarray(stop, dtype=float), tmax)
    keep = e > s
    return s[keep], e[keep]


# ------------------------------------------------------------------- what is freed -----
def free_plan(state: AnalysisState, name: str, *, free_params=None,
              free_background: bool = False, free_radius: float | None = None,
              free_sources=None, max_free_sources: int = 5) -> dict:
    """Which parameters each bin fits: the source's ``free_params`` (None or empty: every
    spectral parameter but the reference energies), split into its normalisation and its
    shape, and the background sources whose normalisations are refitted: those named in
    ``free_sources``, then (with ``free_background``) the diffuse sources and the sources
    within ``free_radius`` deg of the source (all of them without a radius), nearest first
    -- at most ``max_free_sources`` point-like ones in all."""
    from ..geom.frames import angular_separation

    src = state.model.find(name)
    sm = state.spectral(src)
    allowed = [n for n in sm.par_names if n not in sm.scale_params]
    pars = list(free_params or ())
    if not pars:
        pars = allowed
    expanded = []
    for p in pars:
        if p == "norm":
            expanded.append(sm.norm_param)
        elif p == "shape":
            expanded.extend(sm.shape_params)
        elif p not in sm.par_names:
            raise RecipeError(f"lightcurve.free_params: {src.name!r} ({src.spectrum}) has no "
                              f"parameter {p!r}; its parameters: {', '.join(sm.par_names)}")
        else:
            expanded.append(p)
    shape = [p for p in dict.fromkeys(expanded) if p != sm.norm_param]
    bkg: list[str] = []
    for n in free_sources or ():
        other = state.model.find(n)
        if other.name != src.name and other.name not in bkg:
            bkg.append(other.name)
    diffuse: list[str] = []
    if free_background:
        cands = []
        for other in state.model:
            if other.name == src.name or other.name in bkg:
                continue
            if other.is_diffuse:
                diffuse.append(other.name)
                continue
            if src.skydir is None:
                continue
            d = float(angular_separation(np.array([other.skydir[0]]),
                                         np.array([other.skydir[1]]),
                                         src.skydir[0], src.skydir[1])[0])
            if free_radius is None or d <= float(free_radius):
                cands.append((d, other.name))
        bkg.extend(n for _, n in sorted(cands))
    point = [n for n in bkg if not state.model.find(n).is_diffuse]
    keep = set(point[:int(max_free_sources)])
    bkg = [n for n in bkg if n in keep or state.model.find(n).is_diffuse] + diffuse
    return {"source": src.name, "norm": sm.norm_param, "shape": shape,
            "background": list(dict.fromkeys(bkg))}


def _fixed_model(model):
    """``model`` with every parameter fixed."""
    for s in model:
        for p in s.spectral:
            if p.free:
                model = model.replace_source(model.find(s.name).with_param(p.name, free=False))
                s = model.find(s.name)
    return model


def _freed(state, plan, shape: bool):
    from .edits import free_norm, free_parameter

    st = state.with_model(_fixed_model(state.model), fit=None)
    for n in plan["background"]:
        st = free_norm(st, n)
    st = free_parameter(st, plan["source"], plan["norm"])
    if shape:
        for p in plan["shape"]:
            st = free_parameter(st, plan["source"], p)
    return st


# ------------------------------------------------------------------------ one bin ------
def failed_bin(tmin: float, tmax: float, status: str, reason: str, **extra) -> dict:
    """The record of a bin that has no fit: NaN numbers, ``fit_success`` False and why."""
    d = {k: float("nan") for k in BIN_SCALARS}
    d.update(tmin=float(tmin), tmax=float(tmax), fit_success=False, status=str(status),
             reason=str(reason), shape_free=False, exposure_s=float("nan"),
             norm_scan=np.full(SCAN_NPTS, np.nan), flux_scan=np.full(SCAN_NPTS, np.nan),
             eflux_scan=np.full(SCAN_NPTS, np.nan), loglike_scan=np.full(SCAN_NPTS, np.nan),
             dloglike_scan=np.full(SCAN_NPTS, np.nan), var_loglike=float("nan"),
             var_flux_scan=np.full(SCAN_NPTS, np.nan),
             var_loglike_scan=np.full(SCAN_NPTS, np.nan))
    d.update(extra)
    return d


def fit_bin(state: AnalysisState, name: str, plan: dict, *, tmin: float, tmax: float,
            shape_ts_threshold: float = 16.0, fit_options=None,
            npts: int = SCAN_NPTS, profile: str = "newton") -> dict:
    """Fit one time bin (``state``: the bin's counts and maps, the model of the global fit).

    The normalisations of the source and of ``plan["background"]`` are fitted; when the
    source's TS in the bin reaches ``shape_ts_threshold`` its ``plan["shape"]`` parameters
    are fitted too (otherwise they keep the global fit's values).  Returns the bin's record:
    tmin, tmax, fit_success, fit_quality, fit_status, ts, npred, loglike, the flux / eflux /
    dN/dE families with errors and 95% upper limits, ``loglike_fixed`` (the source held at
    the global fit, the background refitted), the normalisation scan (``norm_scan``,
    ``flux_scan``, ``eflux_scan``, ``loglike_scan``; the background refitted at each point,
    the source's shape held at the bin's values), ``status`` "ok" or "fit_failed" and
    ``reason``.  A fit that fails is a record with ``fit_success`` False, not an error.

    ``var_flux_scan`` / ``var_loglike_scan`` / ``var_loglike``: the profile TS_var uses,
    with the source's shape at the GLOBAL fit's values (as 2FGL/4FGL compute variability).
    In a bin whose shape was not refitted they are the scan above; in one whose shape was
    refitted, a scan at the bin's own shape is narrower than the flux's profile over the
    shape, and TS_var summed over such bins came out far above chi2(n-1) for a steady
    source (1449.9 for 887 degrees of freedom over 17 simulated years, 892.3 with these).

    ``profile``: how the scan and ``loglike_fixed`` refit the background normalisations:
    "newton" (default) maximises log L over them by Newton steps on the model cubes (log L
    is concave in normalisations: the same maximum as a fit, in milliseconds), "fit" with
    the fitter at every point (the reference; :func:`_scan_refit`)."""
    from .fit import fit_state
    from .sourcedict import source_dict
    from .ts import ts_value

    fo = dict(fit_options or {})
    global_model = state.model
    st0 = _freed(state, plan, shape=False)
    out1, st1 = fit_state(st0, **fo)
    if not out1["fit_success"]:
        return failed_bin(tmin, tmax, "fit_failed",
                          f"the fit of the normalisations failed: {out1.get('message', '')}",
                          fit_quality=float(out1.get("fit_quality", np.nan)),
                          fit_status=float(out1.get("fit_status", np.nan)))
    fit_out, st = out1, st1
    shape_free = False
    ts1 = ts_value(st1, name)
    if plan["shape"] and ts1 >= shape_ts_threshold:
        st_s = _freed(st1, plan, shape=True)
        out2, st2 = fit_state(st_s, **fo)
        if out2["fit_success"]:
            fit_out, st, shape_free = out2, st2, True
    d = source_dict(st, name, scan=False)
    rec = {k: float(d.get(k, np.nan)) for k in BIN_SCALARS
           if k not in ("fit_quality", "fit_status", "loglike_fixed")}
    rec.update(tmin=float(tmin), tmax=float(tmax), fit_success=True, status="ok",
               reason="", shape_free=shape_free,
               fit_quality=float(fit_out["fit_quality"]),
               fit_status=float(fit_out["fit_status"]))
    g = global_model.find(name).param(plan["norm"]).value
    fast = None
    if profile == "newton":
        fast = _NormProfile.make(st, name, plan)
    elif profile != "fit":
        raise ValueError(f"fit_bin: profile {profile!r}; expected 'newton' or 'fit'")
    if fast is not None:
        rec.update(_scan(st, name, plan, fo, npts, rec, float(g), fast=fast))
        rec["loglike_fixed"] = fast.loglike_fixed(global_model.find(name))
    else:
        rec.update(_scan(st, name, plan, fo, npts, rec, float(g)))
        rec["loglike_fixed"] = _loglike_fixed(st, global_model, name, plan, fo)
    if shape_free:
        # the variability profile at the global fit's shape: the fit of the norms (st1)
        d1 = source_dict(st1, name, scan=False)
        rec1 = {"flux": float(d1["flux"]), "eflux": float(d1["eflux"]),
                "loglike": float(d1["loglike"])}
        fast1 = _NormProfile.make(st1, name, plan) if profile == "newton" else None
        var = _scan(st1, name, plan, fo, npts, rec1, float(g), fast=fast1)
        rec.update(var_flux_scan=var["flux_scan"], var_loglike_scan=var["loglike_scan"],
                   var_loglike=max(rec1["loglike"], float(np.nanmax(var["loglike_scan"]))))
    else:
        rec.update(var_flux_scan=rec["flux_scan"], var_loglike_scan=rec["loglike_scan"],
                   var_loglike=max(rec["loglike"], float(np.nanmax(rec["loglike_scan"]))))
    return rec


class _NormProfile:
    """log L of a bin as a function of the normalisations of the source (``a``, scaled
    units) and of the background sources refitted in it: m = F + (a / a0) S + sum_k b_k B_k
    on the bins in use of every component (S, B_k: the sources' model counts at the fit,
    b_k their relative normalisations, F the rest), maximised over b within the
    parameters' bounds by Newton steps (log L is concave in b).  log L = sum w n log m -
    sum w m: the first sum runs over the bins with counts only, the second is linear in
    the normalisations (sums of the cubes, once).  ``make`` returns None when it cannot
    reproduce the state's log L (the caller then refits with the fitter)."""

    def __init__(self, st, name, wn, fixed, src, bkg, lin, lo, hi, a0):
        self.st, self.name, self.wn = st, name, wn
        self.fixed, self.src, self.bkg = fixed, src, bkg    # on the bins with counts
        self.lin = lin          # (sum w F, sum w S, [sum w B_k]) over every bin
        self.lo, self.hi, self.a0, self.offset = lo, hi, a0, 0.0

    @classmethod
    def make(cls, st, name, plan):
        from ..likelihood.roi import bin_range
        from .ts import model_cubes

        src = st.model.find(name)
        a0 = float(src.param(plan["norm"]).value)
        if not a0 > 0:
            return None
        total = model_cubes(st)
        s_cubes = model_cubes(st, name)
        bkg, lo, hi = [], [], []
        for b in plan["background"]:
            o = st.model.find(b)
            par = o.param(st.spectral(o).norm_param)
            if not par.value > 0:
                return None
            bkg.append(model_cubes(st, o.name))
            lo.append(par.min / par.value if par.min is not None else 0.0)
            hi.append(par.max / par.value if par.max is not None else np.inf)
        wn, fx, sx, bx = [], [], [], []
        lin = np.zeros(2 + len(bkg))
        for i, comp in enumerate(st.components):
            k0, k1 = bin_range(comp, st.loge_bounds)
            n = np.asarray(comp.counts, float)[k0:k1].ravel()
            w = np.ones_like(n) if comp.wmap is None else \
                np.asarray(comp.wmap, float)[k0:k1].ravel()
            bk = [np.asarray(c[i], float)[k0:k1].ravel() for c in bkg]
            sc = np.asarray(s_cubes[i], float)[k0:k1].ravel()
            fc = np.asarray(total[i], float)[k0:k1].ravel() - sc - sum(bk, 0.0)
            lin += [np.sum(w * fc), np.sum(w * sc)] + [np.sum(w * c) for c in bk]
            pos = n > 0
            wn.append(w[pos] * n[pos])
            fx.append(fc[pos])
            sx.append(sc[pos])
            bx.append([c[pos] for c in bk])
        bcubes = np.array([np.concatenate([b[k] for b in bx]) for k in range(len(bkg))]) \
            if bkg else np.zeros((0, sum(x.size for x in wn)))
        prof = cls(st, name, np.concatenate(wn), np.concatenate(fx), np.concatenate(sx),
                   bcubes, lin, np.array(lo, float), np.array(hi, float), a0)
        ll_state = float(loglike(st))
        ll_here = prof._ll(prof.fixed + prof.src + bcubes.sum(axis=0), 1.0,
                           np.ones(len(bkg)))
        # the same log L as the fitter's cost (to rounding), or no fast profile
        if not abs(ll_here - ll_state) <= 1e-7 * max(abs(ll_state), 1.0):
            return None
        prof.offset = ll_state - ll_here
        return prof

    def _ll(self, m, a_rel, b) -> float:
        if np.any(m <= 0):
            return -np.inf
        lin = self.lin[0] + a_rel * self.lin[1] + float(b @ self.lin[2:])
        return float(self.wn @ np.log(m)) - lin

    def _max_b(self, a_rel, base, b):
        """max over b of log L with m = base + b . B (projected Newton within bounds)."""
        B = self.bkg
        if B.shape[0] == 0:
            return self._ll(base, a_rel, b), b
        lin_b = self.lin[2:]
        m = base + b @ B
        ll = self._ll(m, a_rel, b)
        for _ in range(50):
            u = self.wn / m
            g = B @ u - lin_b
            H = (B * (u / m)) @ B.T
            free = ~(((b <= self.lo) & (g < 0)) | ((b >= self.hi) & (g > 0)))
            if not np.any(free):
                break
            step = np.zeros_like(b)
            Hf = H[np.ix_(free, free)] + 1e-12 * np.eye(int(free.sum()))
            step[free] = np.linalg.solve(Hf, g[free])
            if 0.5 * float(g[free] @ step[free]) < 1e-10:
                break           # the Newton decrement: log L within 1e-10 of its maximum
            t = 1.0
            while True:
                b_new = np.clip(b + t * step, self.lo, self.hi)
                m_new = base + b_new @ B
                ll_new = self._ll(m_new, a_rel, b_new)
                if ll_new >= ll - 1e-12 * abs(ll) or t < 1e-6:
                    break
                t *= 0.5
            done = abs(ll_new - ll) < 1e-10 * max(abs(ll), 1.0) and \
                np.max(np.abs(b_new - b)) < 1e-9
            if ll_new >= ll:
                b, m, ll = b_new, m_new, ll_new
            if done or t < 1e-6:
                break
        return ll, b

    def scan(self, xs) -> np.ndarray:
        """log L at each source normalisation of ``xs`` (scaled units), the background
        normalisations refitted (warm-started from the nearest point done)."""
        xs = np.asarray(xs, float)
        out = np.empty(xs.size)
        done: dict = {}
        for j in np.argsort(np.abs(xs - self.a0), kind="stable"):
            a_rel = float(xs[j]) / self.a0
            near = min(done, key=lambda v: abs(v - a_rel)) if done else None
            start = np.ones(self.bkg.shape[0]) if near is None else done[near]
            ll, b = self._max_b(a_rel, self.fixed + a_rel * self.src, start.copy())
            out[j] = ll + self.offset
            done[a_rel] = b
        return out

    def loglike_fixed(self, global_src) -> float:
        """log L with the source at the global fit's parameters, the background refitted."""
        from ..likelihood.roi import bin_range
        from .ts import model_cubes

        held = global_src
        for p in held.spectral:
            if p.free:
                held = held.with_param(p.name, free=False)
        stg = self.st.with_model(self.st.model.replace_source(held), fit=None)
        cubes = model_cubes(stg, self.name)
        wsum, parts = 0.0, []
        for i, comp in enumerate(self.st.components):
            k0, k1 = bin_range(comp, self.st.loge_bounds)
            n = np.asarray(comp.counts, float)[k0:k1].ravel()
            w = np.ones_like(n) if comp.wmap is None else \
                np.asarray(comp.wmap, float)[k0:k1].ravel()
            c = np.asarray(cubes[i], float)[k0:k1].ravel()
            wsum += float(np.sum(w * c))
            parts.append(c[n > 0])
        # the source's linear term: its cube's sum in place of a_rel * sum w S
        a_rel = wsum / self.lin[1] if self.lin[1] > 0 else 0.0
        ll, _ = self._max_b(a_rel, self.fixed + np.concatenate(parts),
                            np.ones(self.bkg.shape[0]))
        return float(ll + self.offset)


def _scan(st, name, plan, fo, npts, rec, global_norm, fast=None) -> dict:
    """The normalisation scan (0 to well past the fit and to 3 times the global fit's
    value, so that the curve's constant flux falls inside every bin's scan, plus the best
    fit itself) with the background refitted at each point, and the 95% upper limits read
    from it."""
    from .profile import profile_values

    src = st.model.find(name)
    norm = src.param(plan["norm"])
    # the source's shape is held in the scan: flux is proportional to the normalisation
    held = src
    for p in held.spectral:
        if p.free and p.name != norm.name:
            held = held.with_param(p.name, free=False)
    sth = st.with_model(st.model.replace_source(held), fit=None)
    err = norm.error if norm.error and np.isfinite(norm.error) else abs(norm.value) or 1.0
    hi = max(norm.value + 10 * err, 3 * abs(norm.value), 3 * abs(global_norm), 1e-30)
    # a grid from 0, and the best fit with points at -2 .. +4 errors around it (where the
    # errors and the upper limit are read)
    near = norm.value + err * np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0])
    xs = np.unique(np.concatenate([np.linspace(0.0, hi, int(npts) - near.size),
                                   near[near > 0], [norm.value]]))
    while xs.size < npts:                   # points that coincide: fill the widest gap
        i = int(np.argmax(np.diff(xs)))
        xs = np.insert(xs, i + 1, 0.5 * (xs[i] + xs[i + 1]))
    xs = xs[:npts]
    if fast is not None:
        # flux and energy flux are proportional to the normalisation (shape held)
        ll = fast.scan(xs)
        flux = float(rec["flux"]) * xs / norm.value
        eflux = float(rec["eflux"]) * xs / norm.value
    else:
        reopt = bool(plan["background"])
        prof = profile_values(sth, name, norm.name, xvals=xs, reoptimize=reopt,
                              fit_options=fo)
        ll = np.asarray(prof["loglike"], dtype=float)
        flux = np.asarray(prof["flux"], float)
        eflux = np.asarray(prof["eflux"], float)
    lmax = max(float(np.nanmax(ll)), float(rec["loglike"]))
    out = {"norm_scan": xs, "flux_scan": flux, "eflux_scan": eflux, "loglike_scan": ll,
           "dloglike_scan": ll - lmax}
    out.update(_ul_family(st, held, norm.name, _ul_norm(xs, ll - lmax)))
    return out


def _ul_norm(xs, dll) -> float:
    """The normalisation above the best one where log L has dropped by 1.353 (95% one-sided
    upper limit), on a monotone spline of the scan; NaN when the scan does not reach it."""
    from scipy.interpolate import PchipInterpolator

    imax = int(np.nanargmax(dll))
    if not dll[-1] < -UL95_DLOGLIKE or imax >= len(xs) - 1:
        return float("nan")
    f = PchipInterpolator(xs[imax:], dll[imax:] + UL95_DLOGLIKE)
    fine = np.linspace(xs[imax], xs[-1], 4001)
    cross = np.flatnonzero(f(fine) < 0)
    return float(fine[cross[0]]) if cross.size else float("nan")


def _ul_family(st, src, norm_name, ul_norm) -> dict:
    """The flux / eflux family of ``src`` with its normalisation at ``ul_norm`` (scaled
    units), as the ``_ul95`` entries."""
    from .sourcedict import flux_family

    keys = [f"{f}{b}" for f in ("flux", "eflux") for b in _BANDS]
    if not np.isfinite(ul_norm):
        return {f"{k}_ul95": float("nan") for k in keys}
    at = src.with_param(norm_name, value=float(ul_norm))
    emin, emax = st.energy_range
    fam = flux_family(st.spectral(at), at.spectral_values(), np.zeros((0, 0)),
                      np.zeros(0, dtype=int), emin, emax)
    return {f"{k}_ul95": float(fam[k]) for k in keys}


def _loglike_fixed(st, global_model, name, plan, fo) -> float:
    """log L of the bin with the source's parameters at the global fit and the background
    normalisations refitted."""
    from .fit import fit_state

    fixed = global_model.find(name)
    for p in fixed.spectral:
        if p.free:
            fixed = fixed.with_param(p.name, free=False)
    model = st.model.replace_source(fixed)
    stf = st.with_model(model, fit=None)
    if build_cost(stf).npar:
        out, stf2 = fit_state(stf, **fo)
        if out["fit_success"]:
            return float(loglike(stf2))
    return float(loglike(stf))


# ------------------------------------------------------------------------- reduction ---
def _spline(flux, ll):
    """log L of a bin between its scan points: a cubic spline through the scan, with
    points closer than a thousandth of the scan's span merged (the higher log L kept).
    Points a rounding step apart (the best fit beside a grid point) made the spline
    overshoot by up to 8.6 in log L above the bin's maximum, moving flux_const and
    TS_var."""
    from scipy.interpolate import CubicSpline

    ok = np.isfinite(flux) & np.isfinite(ll)
    f, y = np.asarray(flux, float)[ok], np.asarray(ll, float)[ok]
    order = np.argsort(f, kind="stable")
    f, y = f[order], y[order]
    tol = 1e-3 * max(float(f[-1] - f[0]), 1e-300)
    keep_f, keep_y = [f[0]], [y[0]]
    for a, b in zip(f[1:], y[1:]):
        if a - keep_f[-1] > tol:
            keep_f.append(a)
            keep_y.append(b)
        elif b > keep_y[-1]:
            keep_f[-1], keep_y[-1] = a, b
    return CubicSpline(np.array(keep_f), np.array(keep_y), extrapolate=True), \
        float(keep_f[-1])


def constant_flux(flux_scans, loglike_scans) -> tuple[float, np.ndarray]:
    """The flux F_const maximising the sum of the bins' likelihoods (each interpolated on
    its scan of log L versus flux) and each bin's log L there (``loglike_const``)."""
    from scipy.optimize import minimize_scalar

    splines = [_spline(f, y) for f, y in zip(flux_scans, loglike_scans)]
    if not splines:
        return float("nan"), np.zeros(0)
    top = max(s[1] for s in splines)

    def total(x):
        return -sum(float(s(x)) for s, _ in splines)

    grid = np.linspace(0.0, top, 401)
    vals = np.array([total(x) for x in grid])
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    if hi > lo:
        res = minimize_scalar(total, bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-6 * max(top, 1e-300)})
        f0 = float(res.x) if res.fun <= vals[i] else float(grid[i])
    else:
        f0 = float(grid[i])
    return f0, np.array([float(s(f0)) for s, _ in splines])


def ts_var(loglike_best, loglike_const, flux_err, flux_const: float,
           systematic: float = 0.02) -> float:
    """2FGL's variability statistic: TS_var = 2 sum_i [ln L_i(F_i) - ln L_i(F_const)]
    sigma_i^2 / (sigma_i^2 + (f F_const)^2), f = ``systematic`` (each term clipped at 0)."""
    lb, lc = np.asarray(loglike_best, float), np.asarray(loglike_const, float)
    s2 = np.asarray(flux_err, float) ** 2
    w = s2 / (s2 + (float(systematic) * float(flux_const)) ** 2)
    w = np.where(np.isfinite(w), w, 1.0)
    return float(2.0 * np.sum(np.clip(lb - lc, 0.0, None) * w))


def reduce_curve(records: list[dict], systematic: float = 0.02) -> dict:
    """The curve's constant-flux fit over the successful bins: ``flux_const``, each bin's
    ``loglike_const`` (NaN for failed bins) and ``ts_var``, all on the bins' profiles at
    the global fit's spectral shape (``var_*``, see :func:`fit_bin`)."""
    ok = [i for i, r in enumerate(records) if r["fit_success"]]
    lc = np.full(len(records), np.nan)
    if not ok:
        return {"flux_const": float("nan"), "loglike_const": lc, "ts_var": float("nan"),
                "n_ok": 0}
    # the profiles at the global fit's shape (var_*; records of an earlier version have
    # only the bin's own scan)
    fl = [records[i].get("var_flux_scan", records[i]["flux_scan"]) for i in ok]
    ll = [records[i].get("var_loglike_scan", records[i]["loglike_scan"]) for i in ok]
    f0, lls = constant_flux(fl, ll)
    lc[ok] = lls
    best = [max(float(records[i].get("var_loglike", records[i]["loglike"])),
                float(np.nanmax(y))) for i, y in zip(ok, ll)]
    tv = ts_var(best, lls, [records[i]["flux_err"] for i in ok], f0, systematic)
    return {"flux_const": f0, "loglike_const": lc, "ts_var": tv, "n_ok": len(ok)}
