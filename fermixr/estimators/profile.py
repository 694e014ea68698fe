"""Likelihood profiles of a spectral parameter (Fermipy's ``profile`` and
``profile_norm``) and the normalisation scan of the source dictionary with the 95% upper
limits read from it."""

from __future__ import annotations

import numpy as np

from ..likelihood.roi import AnalysisState, build_cost, loglike, loglike_scan
from . import EstimatorResult, register

__all__ = ["profile_values", "profile", "profile_norm", "norm_scan", "profile_dataset"]

UL95_DLOGLIKE = 1.353      # 2 dlnL = 2.706: one-sided 95% upper limit


def profile_values(state: AnalysisState, name: str, par_name: str, xvals=None,
                   npts: int = 20, reoptimize: bool = False, fit_options=None) -> dict:
    """log L with ``par_name`` of source ``name`` held at each of ``xvals`` (scaled units;
    default ``npts`` values over +-3 errors within the bounds), the others held or refitted
    (``reoptimize``).  Returns xvals, loglike, dloglike and the source's flux / eflux over
    the analysis energy range at each point."""
    from .fit import fit_state

    src = state.model.find(name)
    sm = state.spectral(src)
    p = src.param(par_name)
    if xvals is None:
        half = 3 * (p.error or 0.1 * abs(p.value) or 0.1)
        lo = p.value - half if p.min is None else max(p.min, p.value - half)
        hi = p.value + half if p.max is None else min(p.max, p.value + half)
        xvals = np.linspace(lo, hi, int(npts))
    emin, emax = state.energy_range
    # others held: every point from one cost (an update by this source's counts each)
    held = not reoptimize and p.name in [q.name for q in src.spectral]
    ll, fl, efl = [], [], []
    for x in np.asarray(xvals, dtype=float):
        lo = None if p.min is None else min(p.min, x)
        hi = None if p.max is None else max(p.max, x)
        moved = src.with_param(par_name, value=float(x), free=False, min=lo, max=hi)
        if held:
            pv = moved.spectral_values()
        else:
            st = state.with_model(state.model.replace_source(moved), fit=None)
            if reoptimize and build_cost(st).npar:    # nothing left free: log L as it is
                _, st = fit_state(st, **dict(fit_options or {}))
            ll.append(loglike(st))
            pv = st.model.find(src.name).spectral_values()
        fl.append(float(sm.flux(emin, emax, pv)))
        efl.append(float(sm.eflux(emin, emax, pv)))
    ll = (loglike_scan(state, src.name, p.name, xvals, hold=True) if held
          else np.array(ll))
    return {"xvals": np.asarray(xvals, float), "loglike": ll, "dloglike": ll - ll.max(),
            "flux": np.array(fl), "eflux": np.array(efl), "par_name": par_name}


def profile_dataset(result: dict, name: str, reoptimize: bool):
    import xarray as xr

    return xr.Dataset(
        {"loglike": ("point", result["loglike"]), "dloglike": ("point", result["dloglike"]),
         "flux": ("point", result["flux"], {"units": "ph cm-2 s-1"}),
         "eflux": ("point", result["eflux"], {"units": "MeV cm-2 s-1"})},
        coords={"xvals": ("point", np.asarray(result["xvals"], dtype=float))},
        attrs={"fermixr_product": "profile", "name": str(name),
               "par_name": str(result["par_name"]), "reoptimize": bool(reoptimize)})


@register("profile", version="1", product="profile", section="gtlike")
def profile(state: AnalysisState, name: str, *, par_name: str | None = None, xvals=None,
            llscan_npts: int = 20, reoptimize: bool = False):
    """Likelihood profile of one spectral parameter (default the normalisation)."""
    src = state.model.find(name)
    par = par_name or state.spectral(src).norm_param
    res = profile_values(state, src.name, par, xvals=xvals, npts=llscan_npts,
                         reoptimize=reoptimize)
    return EstimatorResult(profile_dataset(res, src.name, reoptimize))


def norm_xvals(state: AnalysisState, name: str, npts: int = 20) -> np.ndarray:
    """profile_norm's default grid: 0 to well past the best value."""
    src = state.model.find(name)
    norm = src.param(state.spectral(src).norm_param)
    hi = norm.value + 5 * (norm.error or 0.5 * abs(norm.value) or 1.0)
    return np.linspace(0.0, max(hi, 2 * norm.value), int(npts))


@register("profile_norm", version="1", product="profile", section="gtlike")
def profile_norm(state: AnalysisState, name: str, *, xvals=None, llscan_npts: int = 20,
                 reoptimize: bool = False):
    """Likelihood profile of a source's normalisation from 0 to well past its best value."""
    src = state.model.find(name)
    if xvals is None:
        xvals = norm_xvals(state, src.name, llscan_npts)
    res = profile_values(state, src.name, state.spectral(src).norm_param, xvals=xvals,
                         reoptimize=reoptimize)
    return EstimatorResult(profile_dataset(res, src.name, reoptimize))


def norm_scan(state: AnalysisState, name: str, fluxes: dict, npts: int = 20) -> dict:
    """Fermipy's likelihood scan of the normalisation (others held) and the 95% upper
    limits of the flux family ``fluxes`` (key -> value at the current norm) read from it
    (2 dlogL = 2.71, on a monotone spline of the scan)."""
    from scipy.interpolate import PchipInterpolator

    src = state.model.find(name)
    norm = src.param(state.spectral(src).norm_param)
    err = norm.error if norm.error else abs(norm.value) or 1.0
    hi = max(norm.value + 10 * err, 3 * abs(norm.value), 1e-30)
    xs = np.linspace(0.0, hi, int(npts))
    prof = profile_values(state, src.name, norm.name, xvals=xs)
    out = {"norm_scan": xs, "loglike_scan": prof["loglike"],
           "dloglike_scan": prof["dloglike"], "flux_scan": prof["flux"],
           "eflux_scan": prof["eflux"]}
    dll = prof["dloglike"]
    imax = int(np.argmax(dll))
    ul_x = float("nan")
    if dll[-1] < -UL95_DLOGLIKE and imax < len(xs) - 1:
        f = PchipInterpolator(xs[imax:], dll[imax:] + UL95_DLOGLIKE)
        fine = np.linspace(xs[imax], xs[-1], 2001)
        cross = np.flatnonzero(f(fine) < 0)
        if cross.size:
            ul_x = float(fine[cross[0]])
    ratio = ul_x / norm.value if norm.value else float("nan")
    for key, value in fluxes.items():
        out[f"{key}_ul95"] = value * ratio
    return out
