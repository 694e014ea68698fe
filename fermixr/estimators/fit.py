"""The fit of a state's free parameters: the fitter run on the state's cost, its result as
Fermipy's ``fit()`` dict and as the ``fit`` product, and, on success, the state with the
best-fit values and errors and the fit's covariance (a failed fit proposes nothing)."""

from __future__ import annotations

import numpy as np

from ..errors import FitError
from ..likelihood.roi import AnalysisState, FitRecord, build_cost
from . import EstimatorResult, register

__all__ = ["fit_state", "fit", "fit_dataset", "DEFAULT_OPTIMIZER"]

DEFAULT_OPTIMIZER = "MINUIT"      # Fermipy's; optimizer.optimizer in the option table


def fit_state(state: AnalysisState, *, optimizer: str | None = None, tol: float = 1e-3,
              max_iter: int = 100, init_lambda: float = 1e-4, retries: int = 3,
              min_fit_quality: int = 2, verbosity: int = 0, minos: bool = False,
              **extra) -> tuple[dict, AnalysisState]:
    """Maximise the likelihood over the free parameters.  Returns (Fermipy's fit() dict,
    the state after the fit): on success the model takes the best-fit values and errors
    and the state the fit's covariance; on failure the state is the one given."""
    from ..fit.fitter import fit as run_fit

    cost = build_cost(state)
    if cost.npar == 0:
        raise FitError("fit: no free parameter; free some with free_source()/free_norm()")
    kw = dict(optimizer=str(optimizer or DEFAULT_OPTIMIZER).upper(), tol=tol,
              max_iter=max_iter, init_lambda=init_lambda, retries=retries,
              min_fit_quality=min_fit_quality, minos=minos)
    import inspect

    accepted = inspect.signature(run_fit).parameters
    if "verbosity" in accepted:
        kw["verbosity"] = verbosity
    kw.update({k: v for k, v in extra.items() if k in accepted})
    res = run_fit(cost, **kw)
    out = res.to_dict()
    out["loglike0"] = float(res.loglike0)
    out["message"] = str(res.message)
    if not res.fit_success:
        return out, state
    model = state.model
    for name, v, e in zip(res.par_names, res.values, res.errors):
        src, par = name.rsplit(":", 1)
        model = model.replace_source(model.find(src).with_param(par, value=float(v),
                                                                 error=float(e)))
    rec = FitRecord(tuple(res.par_names), np.array(res.covariance, dtype=float))
    return out, state.with_model(model, fit=rec)


def fit_dataset(result: dict):
    """Fermipy's fit() dict (or optimize()'s) as the ``fit`` product."""
    import xarray as xr

    if "covariance" not in result:     # optimize: no parameter vector of its own
        return xr.Dataset(
            {"value": ("param", np.zeros(0)), "error": ("param", np.zeros(0)),
             "covariance": (("param", "param_b"), np.zeros((0, 0)))},
            coords={"param": np.array([], dtype=object)},
            attrs={"fermixr_product": "fit", "loglike": float(result["loglike1"]),
                   "fit_quality": 3, "fit_status": 0, "edm": None, "optimizer": "optimize",
                   "loglike0": float(result["loglike0"]), "fit_success": True})
    cov = np.asarray(result["covariance"])
    pars = [f"{s}:{p}" for s, p in zip(result["src_names"], result["par_names"])]
    return xr.Dataset(
        {"value": ("param", np.asarray(result["values"])),
         "error": ("param", np.asarray(result["errors"])),
         "covariance": (("param", "param_b"), cov),
         "correlation": (("param", "param_b"), np.asarray(result["correlation"]))},
        coords={"param": np.array(pars, dtype=object)},
        attrs={"fermixr_product": "fit", "loglike": float(result["loglike"]),
               "fit_quality": int(result["fit_quality"]),
               "fit_status": int(result["fit_status"]), "edm": float(result["edm"]),
               "optimizer": str(result["optimizer"]),
               "fit_success": bool(result["fit_success"]),
               "message": str(result.get("message", ""))})


@register("fit", version="1", product="fit", section="optimizer", needs_source=False)
def fit(state: AnalysisState, *, optimizer: str = DEFAULT_OPTIMIZER, tol: float = 1e-3,
        max_iter: int = 100, init_lambda: float = 1e-4, retries: int = 3,
        min_fit_quality: int = 2, verbosity: int = 0, minos: bool = False):
    """Fit the free parameters (Fermipy's fit())."""
    out, new = fit_state(state, optimizer=optimizer, tol=tol, max_iter=max_iter,
                         init_lambda=init_lambda, retries=retries,
                         min_fit_quality=min_fit_quality, verbosity=verbosity, minos=minos)
    return EstimatorResult(fit_dataset(out), new if out["fit_success"] else None)
