"""Spectral curvature of a source: the power law against its curved extensions, each fitted
with the free parameters of the state (the other sources as the user left them, every
spectral parameter of the source but its reference energy):

* PowerLaw (the null hypothesis; a source with another spectrum is converted first, with
  dN/dE and its local slope kept at the reference energy);
* LogParabola, started from the power law's optimum (beta = 0, alpha = -Index, Eb =
  Scale): ``lp_ts_curv = 2 (lnL_lp - lnL_pl)``; beta within its bounds [-2, 2] may go
  negative, so under the null lp_ts_curv follows chi2 with one degree of freedom;
* PLSuperExpCutoff4 with Index2 = b = 2/3 fixed, started from the power law's optimum
  (ExpfactorS = 0, IndexS = Index): ``ple_ts_curv``;
* PLSuperExpCutoff4 with b free as well, started from the b = 2/3 optimum:
  ``ple_free_ts_curv``.

Every curved model starts where it equals the power law's optimum, so a fit that fails or
ends below its start keeps the start: a TS is never negative because of a failed fit, and
each model's ``fit_quality`` / ``fit_success`` say how its fit went.  ``ts_curv`` is
``lp_ts_curv``, Fermipy's choice (the log-parabola test is the one with a known null
distribution; the others are reported beside it).
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import EstimatorError, FermixrError
from ..likelihood.roi import AnalysisState
from . import EstimatorResult, register

__all__ = ["curvature", "convert_spectrum", "MODELS"]

MODELS = ("pl", "lp", "ple", "ple_free")
_TAGS = {"pl": "PowerLaw", "lp": "LogParabola", "ple": "PLSuperExpCutoff4",
         "ple_free": "PLSuperExpCutoff4"}
_PLE_B = 2.0 / 3.0


def _reference_energy(src) -> float:
    for n in ("Scale", "Eb", "Pivot_Energy"):
        try:
            v = src.param(n).physical
        except FermixrError:
            continue
        if v > 0:
            return float(v)
    return 1000.0


def _with_physical(q, x: float, free: bool | None = None, norm: bool = False):
    """Parameter ``q`` holding the physical value ``x`` (a norm gets a power-of-ten scale);
    bounds widened to hold it."""
    scale = q.scale
    if norm and x > 0:
        scale = 10.0 ** math.floor(math.log10(x))
    v = float(x) / scale
    lo, hi = q.min, q.max
    if lo is not None and v < lo:
        lo = v
    if hi is not None and v > hi:
        hi = v
    return q.replace(value=v, scale=scale, min=lo, max=hi,
                     free=q.free if free is None else bool(free), error=None)


def convert_spectrum(src, spectrum_type: str, old_model, pivot: float | None = None,
                     **physical):
    """``src`` with the spectrum ``spectrum_type`` (PowerLaw, LogParabola,
    PLSuperExpCutoff4) equal to its current one in value and local slope at ``pivot``
    (MeV; default its reference energy): curvature zero, so a power law converts exactly.
    ``old_model``: the spectral model instance of the current spectrum.  ``physical``:
    values set after (e.g. ``Index2=2/3``).  A pure function: ``src`` is not changed."""
    from ..model.spectral import get_spectral_model

    e0 = float(pivot) if pivot is not None else _reference_energy(src)
    p = src.spectral_values()
    f = 1.0 + 1e-4
    d = np.asarray(old_model.evaluate(np.array([e0 / f, e0, e0 * f]), p), dtype=float)
    if not (np.all(np.isfinite(d)) and np.all(d > 0)):
        raise EstimatorError(f"convert_spectrum: {src.name!r} ({src.spectrum}) has dN/dE "
                             f"{d[1]!r} at {e0:g} MeV; expected a positive value")
    slope = float((math.log(d[2]) - math.log(d[0])) / (2.0 * math.log(f)))
    cls = get_spectral_model(spectrum_type)
    want = {"PowerLaw": {"Prefactor": d[1], "Index": slope, "Scale": e0},
            "LogParabola": {"norm": d[1], "alpha": -slope, "beta": 0.0, "Eb": e0},
            "PLSuperExpCutoff4": {"Prefactor": d[1], "IndexS": slope, "Scale": e0,
                                  "ExpfactorS": 0.0, "Index2": _PLE_B}}.get(spectrum_type)
    if want is None:
        raise EstimatorError(f"convert_spectrum: got {spectrum_type!r}; expected PowerLaw, "
                             "LogParabola or PLSuperExpCutoff4")
    want.update(physical)
    pars = []
    for q in cls.params:
        x = want.get(q.name, q.physical)
        pars.append(_with_physical(q, x, norm=(q.name == cls.norm_param)))
    return src.replace(spectrum=spectrum_type, spectral=tuple(pars))


def _fit_model(st, name, fit_options, free):
    """Refit with the source's parameters ``free`` (others as given); returns
    (lnL, fit dict, state after)."""
    from .extension import _fit

    src = st.model.find(name)
    for p in src.spectral:
        src = src.with_param(p.name, free=p.name in free)
    return _fit(st.with_model(st.model.replace_source(src), fit=None), fit_options)


def _params(st, name) -> dict:
    s = st.model.find(name)
    return {p.name: {"value": p.physical, "free": bool(p.free),
                     "error": None if p.error is None else p.error * abs(p.scale)}
            for p in s.spectral}


@register("curvature", version="1", product="curvature")
def curvature(state: AnalysisState, name: str, *, optimizer=None):
    """Spectral curvature test: PowerLaw against LogParabola and PLSuperExpCutoff4 (b = 2/3
    fixed, and free); ts_curv, lp_ts_curv, ple_ts_curv, ple_free_ts_curv (Fermipy's
    curvature())."""
    import xarray as xr

    from ..likelihood.roi import loglike

    try:
        src = state.model.find(name)
    except FermixrError as exc:
        raise EstimatorError(f"curvature: {exc}") from None
    if src.is_diffuse or src.skydir is None:
        raise EstimatorError(f"curvature: {src.name!r} is a diffuse source "
                             f"({src.spatial_model}, {src.spectrum}); the curvature test "
                             "needs a point or extended source with a spectrum of its own")
    name = src.name
    fit_options = dict(optimizer or {})
    loglike_init = loglike(state)
    sm = state.spectral(src)
    pl = src if src.spectrum == "PowerLaw" else convert_spectrum(src, "PowerLaw", sm)
    st0 = state.with_model(state.model.replace_source(pl), fit=None)
    res = {}
    res["pl"] = _fit_model(st0, name, fit_options, {"Prefactor", "Index"})
    st_pl = res["pl"][2]
    pl_fit = st_pl.model.find(name)
    from ..model.spectral import get_spectral_model

    plm = get_spectral_model("PowerLaw")()
    for m, free, extra in (("lp", {"norm", "alpha", "beta"}, {}),
                           ("ple", {"Prefactor", "IndexS", "ExpfactorS"}, {})):
        s = convert_spectrum(pl_fit, _TAGS[m], plm, pivot=pl_fit.param("Scale").physical,
                             **extra)
        st_m = st_pl.with_model(st_pl.model.replace_source(s), fit=None)
        res[m] = _fit_model(st_m, name, fit_options, free)
    res["ple_free"] = _fit_model(res["ple"][2], name, fit_options,
                                 {"Prefactor", "IndexS", "ExpfactorS", "Index2"})
    ll = {m: float(res[m][0]) for m in MODELS}
    flags = {}
    ts = {}
    for m in MODELS[1:]:
        t = 2.0 * (ll[m] - ll["pl"])
        if t < 0:
            if t < -1e-6:
                flags[f"{m}_ts_curv"] = f"negative ({t:.3g}): the curved fit ended below " \
                                        "the power law's optimum it started from"
            t = 0.0
        ts[m] = t
    for m in MODELS:
        if not res[m][1].get("fit_success", False):
            flags[f"fit_{m}"] = (f"the {m} fit failed (fit_quality "
                                 f"{res[m][1].get('fit_quality')}); its start is reported")
    attrs = {"fermixr_product": "curvature", "name": name,
             "ts_curv": ts["lp"], "lp_ts_curv": ts["lp"], "ple_ts_curv": ts["ple"],
             "ple_free_ts_curv": ts["ple_free"], "loglike_init": float(loglike_init),
             "flags": json.dumps(flags), "spectrum_type": src.spectrum}
    for m in MODELS:
        attrs[f"loglike_{m}"] = ll[m]
        attrs[f"{m}_params"] = json.dumps(_params(res[m][2], name))
    ds = xr.Dataset(
        {"loglike": ("model", np.array([ll[m] for m in MODELS])),
         "fit_quality": ("model", np.array([int(res[m][1].get("fit_quality", 0) or 0)
                                            for m in MODELS])),
         "fit_success": ("model", np.array([bool(res[m][1].get("fit_success", False))
                                            for m in MODELS]))},
        coords={"model": np.array(list(MODELS), dtype=object),
                "spectrum": ("model", np.array([_TAGS[m] for m in MODELS], dtype=object))},
        attrs=attrs)
    return EstimatorResult(ds)
