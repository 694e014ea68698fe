"""Fermipy's ROI optimisation (``optimize``, the ``roiopt`` section): three passes of quick
fits that bring every source near its optimum before the real fit."""

from __future__ import annotations

from ..likelihood.roi import AnalysisState, build_cost, loglike
from . import EstimatorResult, register
from .fit import fit_dataset, fit_state
from .ts import npred, ts_value

__all__ = ["optimize_state", "optimize"]


def _with_free(state: AnalysisState, flags: dict) -> AnalysisState:
    """The state with the free flag of every spectral parameter (source, par) -> bool."""
    model = state.model
    for s in model:
        new = s
        for p in s.spectral:
            want = bool(flags.get((s.name, p.name), False))
            if p.free != want:
                new = new.with_param(p.name, free=want)
        if new is not s:
            model = model.replace_source(new)
    return state.with_model(model)


def optimize_state(state: AnalysisState, *, npred_frac: float = 0.95,
                   npred_threshold: float = 1.0, shape_ts_threshold: float = 25.0,
                   max_free_sources: int = 5, skip=None, fit_options=None
                   ) -> tuple[dict, AnalysisState]:
    """Fermipy's three passes: (1) the norms of the brightest sources holding
    ``npred_frac`` of the predicted counts, jointly; (2) the norm of each other source
    with npred above ``npred_threshold``, one at a time; (3) the shape of each source with
    TS above ``shape_ts_threshold`` (at most ``max_free_sources`` at a time, brightest
    first).  Sources named in ``skip`` are left alone.  Every parameter's free flag is
    restored.  Returns (loglike0, loglike1, dloglike, config) and the optimised state."""
    fit_kw = dict(fit_options or {})       # the configured optimizer (default MINUIT)
    skip = {state.model.find(n).name for n in (skip or ())}
    flags = {(s.name, p.name): p.free for s in state.model for p in s.spectral}
    loglike0 = loglike(state)

    def quiet_fit(st, free):
        st = _with_free(st, free)
        if build_cost(st).npar:        # nothing free (e.g. every norm fixed): no fit
            _, st = fit_state(st, **fit_kw)
        return _with_free(st, {})

    def norm_flag(name):
        src = state.model.find(name)
        return {(src.name, state.spectral(src).norm_param): True}

    counts = {s.name: npred(state, s.name) for s in state.model if s.name not in skip}
    order = sorted(counts, key=lambda n: -counts[n])
    total = sum(max(v, 0.0) for v in counts.values()) or 1.0
    st = _with_free(state, {})
    bright, acc = [], 0.0
    for n in order:
        if acc / total >= npred_frac:
            break
        bright.append(n)
        acc += max(counts[n], 0.0)
    free = {}
    for n in bright:
        free.update(norm_flag(n))
    st = quiet_fit(st, free)
    for n in order:
        if n in bright or counts[n] < npred_threshold:
            continue
        st = quiet_fit(st, norm_flag(n))
    shaped = [n for n in order if ts_value(st, n) > shape_ts_threshold]
    step = max(int(max_free_sources), 1)
    for i in range(0, len(shaped), step):
        free = {}
        for n in shaped[i:i + step]:
            src = st.model.find(n)
            free.update({(src.name, p): True for p in st.spectral(src).shape_params})
        st = quiet_fit(st, free)
    st = _with_free(st, {k: v for k, v in flags.items() if v})
    loglike1 = loglike(st)
    out = {"loglike0": loglike0, "loglike1": loglike1, "dloglike": loglike1 - loglike0,
           "config": {"npred_frac": npred_frac, "npred_threshold": npred_threshold,
                      "shape_ts_threshold": shape_ts_threshold,
                      "max_free_sources": max_free_sources, "skip": sorted(skip)}}
    return out, st


@register("optimize", version="1", product="fit", section="roiopt", needs_source=False)
def optimize(state: AnalysisState, *, npred_frac: float = 0.95, npred_threshold: float = 1.0,
             shape_ts_threshold: float = 25.0, max_free_sources: int = 5, skip=None):
    """Fermipy's optimize(): quick fits of norms then shapes, brightest sources first."""
    out, new = optimize_state(state, npred_frac=npred_frac, npred_threshold=npred_threshold,
                              shape_ts_threshold=shape_ts_threshold,
                              max_free_sources=max_free_sources, skip=skip)
    return EstimatorResult(fit_dataset(out), new)
