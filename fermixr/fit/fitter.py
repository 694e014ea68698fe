"""``fit()``: run an optimiser on a cost, with Fermipy's retries and quality rules.

Fermipy's ``optimizer`` section maps as follows: ``optimizer`` NEWTON selects fermixr's
fast Fisher-scoring fitter (:mod:`fermixr.fit.newton`, the default here: it reaches the same
optimum and covariance as MINUIT, see the tests), MINUIT and NEWMINUIT select iminuit
(:mod:`fermixr.fit.minuit`); ``tol`` (absolute EDM tolerance), ``max_iter``,
``init_lambda``, ``retries`` and ``min_fit_quality`` keep their meaning.  Unlike Fermipy's
NEWTON (which falls back to MINUIT when a shape parameter is free), fermixr's fitter handles
shape parameters through the analytic spectral gradient.

A fit succeeds when fit_status is 0 and fit_quality >= ``min_fit_quality``.  Otherwise it is
repeated up to ``retries`` times from starts perturbed with an explicit random generator
(the seed is recorded in ``config``); if every attempt fails the result has
``fit_success=False`` and carries the start vector ``x0`` (the caller keeps its parameters,
as Fermipy restores its state), with the last attempt's values in ``last_values``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import RecipeError
from .minuit import minuit_fit
from .newton import newton_fit
from .result import FitResult

__all__ = ["fit", "OPTIMIZERS"]

OPTIMIZERS = ("NEWTON", "MINUIT", "NEWMINUIT")


def _check_start(cost, x0) -> np.ndarray:
    names = list(cost.parameters)
    if not names:
        raise RecipeError("fit: the model has no free parameter; free at least one "
                          "parameter (e.g. a source normalisation) before fitting")
    x0 = np.array(cost.x0 if x0 is None else x0, dtype=float).ravel()
    if x0.size != len(names):
        raise RecipeError(f"fit: {x0.size} start value(s) for {len(names)} free "
                          f"parameters ({', '.join(names)})")
    b = np.asarray(cost.bounds, dtype=float).reshape(-1, 2)
    for k, n in enumerate(names):
        if not np.isfinite(x0[k]):
            raise RecipeError(f"fit: start value of {n!r} is {float(x0[k])!r}; expected a finite "
                              "number")
        if x0[k] < b[k, 0] or x0[k] > b[k, 1]:
            raise RecipeError(f"fit: start value {float(x0[k])!r} of {n!r} is outside its bounds "
                              f"[{b[k, 0]}, {b[k, 1]}] (scaled units); change the value or "
                              "the bounds")
    return x0


def _perturbed(x0, bounds, errors, rng, frac):
    width = np.where(np.isfinite(errors) & (errors > 0), errors,
                     frac * np.maximum(np.abs(x0), 1e-3))
    x = x0 + width * rng.standard_normal(x0.size)
    lo, hi = bounds[:, 0], bounds[:, 1]
    # stay strictly inside finite bounds when the start was inside
    span = np.where(np.isfinite(hi - lo), hi - lo, np.inf)
    eps = np.where(np.isfinite(span), 1e-6 * span, 0.0)
    return np.clip(x, np.where(x0 > lo, lo + eps, lo), np.where(x0 < hi, hi - eps, hi))


def fit(cost, x0=None, *, optimizer: str = "NEWTON", tol: float = 1e-3,
        max_iter: int = 100, init_lambda: float = 1e-4, retries: int = 3,
        min_fit_quality: int = 2, covar: bool = True, strategy: int = 1,
        minos: bool = False, analytic_hessian: bool = False,
        rng: np.random.Generator | None = None, seed: int = 0,
        perturb: float = 0.1) -> FitResult:
    """Fit the free parameters of ``cost`` starting from ``x0`` (default ``cost.x0``),
    in scaled units.  ``optimizer``: NEWTON (fast, default), MINUIT or NEWMINUIT
    (iminuit; ``strategy`` (raised by one at each retry), ``minos`` and
    ``analytic_hessian`` apply there)."""
    opt = str(optimizer).upper()
    if opt not in OPTIMIZERS:
        raise RecipeError(f"optimizer.optimizer: got {optimizer!r}; expected one of "
                          f"{', '.join(OPTIMIZERS)}")
    if int(retries) < 1:
        raise RecipeError(f"optimizer.retries: got {retries!r}; expected an integer >= 1")
    if int(min_fit_quality) not in (0, 1, 2, 3):
        raise RecipeError(f"optimizer.min_fit_quality: got {min_fit_quality!r}; expected "
                          "0, 1, 2 or 3")
    if not (float(tol) > 0):
        raise RecipeError(f"optimizer.tol: got {tol!r}; expected a number > 0")
    x0 = _check_start(cost, x0)
    bounds = np.asarray(cost.bounds, dtype=float).reshape(-1, 2)
    if rng is None:
        rng = np.random.default_rng(seed)
    config = {"optimizer": opt, "tol": float(tol), "max_iter": int(max_iter),
              "init_lambda": float(init_lambda), "retries": int(retries),
              "min_fit_quality": int(min_fit_quality), "covar": bool(covar),
              "strategy": int(strategy), "minos": bool(minos), "seed": seed}

    def run(start, attempt):
        if opt == "NEWTON":
            return newton_fit(cost, start, tol=tol, max_iter=max_iter,
                              init_lambda=init_lambda, covar=covar, optimizer=opt)
        return minuit_fit(cost, start, tol=tol, strategy=min(2, int(strategy) + attempt - 1),
                          minos=minos, analytic_hessian=analytic_hessian, covar=covar,
                          optimizer=opt)

    loglike0 = -float(cost(x0))
    start = x0
    res = None
    for attempt in range(1, int(retries) + 1):
        res = run(start, attempt)
        ok = res.fit_status == 0 and res.fit_quality >= int(min_fit_quality)
        if ok:
            return dataclasses.replace(res, loglike0=loglike0, fit_success=True,
                                       niter=attempt, config=config, x0=x0)
        start = _perturbed(x0, bounds, np.asarray(res.errors, dtype=float), rng, perturb)
    return dataclasses.replace(
        res, values=x0.copy(), loglike=loglike0, loglike0=loglike0, fit_success=False,
        niter=int(retries), config=config, x0=x0, last_values=np.array(res.values),
        message=f"failed after {retries} attempt(s): {res.message}")
