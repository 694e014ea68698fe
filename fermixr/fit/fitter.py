"""``fit()``: run an optimiser on a cost, with Fermipy's retries and quality rules.

Fermipy's ``optimizer`` section maps as follows (defaults as Fermipy's and as the option
table, :mod:`fermixr.engine.options`):

* ``optimizer`` (default MINUIT): MINUIT and NEWMINUIT select iminuit
  (:mod:`fermixr.fit.minuit`; MIGRAD gets the cost's analytic gradient and, when the cost
  has one, its analytic Hessian, so HESSE never differentiates numerically); NEWTON selects
  fermixr's Fisher-scoring fitter (:mod:`fermixr.fit.newton`), which reaches the same
  optimum and covariance (see the tests).  Unlike Fermipy's NEWTON (which falls back to
  MINUIT when a shape parameter is free), fermixr's fitter handles shape parameters through
  the analytic spectral gradient.
* ``tol``: the absolute EDM tolerance (both backends stop at EDM < ``tol``).
* ``max_iter``: NEWTON's iteration limit (as Fermipy's, it does not limit MINUIT).
* ``init_lambda``: NEWTON's initial Levenberg-Marquardt damping (0 disables damping).
* ``retries``: the number of attempts (>= 1).
* ``min_fit_quality``: the lowest fit_quality (0-3) that counts as a success.
* ``verbosity``: 0 silent; > 0 is MINUIT's print level (capped at 3) and makes NEWTON
  print one line per iteration to stderr.

A fit succeeds when fit_status is 0 and fit_quality >= ``min_fit_quality``.  Otherwise it is
repeated, up to ``retries`` attempts in all, from starts perturbed with an explicit random
generator (the seed is recorded in ``config``); if every attempt fails the result has
``fit_success=False`` and carries the start vector ``x0`` (the caller keeps its parameters,
as Fermipy restores its state), with the last attempt's values in ``last_values``.

Bad settings, start values or bounds raise :class:`fermixr.errors.FitError` (a ``ValueError``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ..errors import FitError
from .minuit import DEFAULT_STRATEGY, has_hessian, minuit_fit
from .newton import newton_fit
from .result import FitResult, bound_and_condition

__all__ = ["fit", "OPTIMIZERS", "DEFAULT_OPTIMIZER"]

OPTIMIZERS = ("NEWTON", "MINUIT", "NEWMINUIT")
DEFAULT_OPTIMIZER = "MINUIT"      # Fermipy's default (and fermixr's option table's)


def _int_option(name: str, value, lo: int, hi: int | None = None) -> int:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and value.is_integer():
        ok = True
    if not ok or value < lo or (hi is not None and value > hi):
        rng = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        raise FitError(f"optimizer.{name}: got {value!r}; expected {rng}")
    return int(value)


def _float_option(name: str, value, lo: float, strict: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not math.isfinite(v) or (v <= lo if strict else v < lo):
        raise FitError(f"optimizer.{name}: got {value!r}; expected a finite number "
                       f"{'>' if strict else '>='} {lo:g}")
    return v


def _check_start(cost, x0) -> np.ndarray:
    names = list(cost.parameters)
    if not names:
        raise FitError("fit: the model has no free parameter; free at least one "
                       "parameter (e.g. a source normalisation) before fitting")
    try:
        x0 = np.array(cost.x0 if x0 is None else x0, dtype=float).ravel()
    except (TypeError, ValueError):
        raise FitError(f"fit: start values {x0!r} are not numbers") from None
    if x0.size != len(names):
        raise FitError(f"fit: {x0.size} start value(s) for {len(names)} free "
                       f"parameters ({', '.join(names)})")
    b = np.asarray(cost.bounds, dtype=float).reshape(-1, 2)
    for k, n in enumerate(names):
        if np.isnan(b[k]).any():
            raise FitError(f"fit: the bounds of {n!r} are [{b[k, 0]}, {b[k, 1]}]; expected "
                           "numbers (an infinite bound means none), not NaN")
        if b[k, 0] > b[k, 1]:
            raise FitError(f"fit: the bounds of {n!r} are [{b[k, 0]}, {b[k, 1]}]; expected "
                           "min <= max")
        if not np.isfinite(x0[k]):
            raise FitError(f"fit: start value of {n!r} is {float(x0[k])!r}; expected a finite "
                           "number")
        if x0[k] < b[k, 0] or x0[k] > b[k, 1]:
            raise FitError(f"fit: start value {float(x0[k])!r} of {n!r} is outside its bounds "
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


def fit(cost, x0=None, *, optimizer: str = DEFAULT_OPTIMIZER, tol: float = 1e-3,
        max_iter: int = 100, init_lambda: float = 1e-4, retries: int = 3,
        min_fit_quality: int = 2, verbosity: int = 0, covar: bool = True,
        strategy: int | None = None, minos: bool = False,
        analytic_hessian: bool | None = None, rng: np.random.Generator | None = None,
        seed: int = 0, perturb: float = 0.1) -> FitResult:
    """Fit the free parameters of ``cost`` starting from ``x0`` (default ``cost.x0``),
    in scaled units.

    ``optimizer``: MINUIT (default, as Fermipy) or NEWMINUIT (iminuit), or NEWTON (fermixr's
    Fisher-scoring fitter); ``tol``, ``max_iter``, ``init_lambda``, ``retries``,
    ``min_fit_quality`` and ``verbosity`` as Fermipy's ``optimizer`` section (see the module
    docstring).  iminuit only: ``strategy`` (default: see :mod:`fermixr.fit.minuit`; raised by
    one at each retry), ``minos``, ``analytic_hessian`` (None: hand MIGRAD/HESSE the cost's
    Hessian whenever it has one; False: let HESSE differentiate numerically).
    """
    opt = str(optimizer).upper()
    if opt not in OPTIMIZERS:
        raise FitError(f"optimizer.optimizer: got {optimizer!r}; expected one of "
                       f"{', '.join(OPTIMIZERS)}")
    retries = _int_option("retries", retries, 1)
    min_fit_quality = _int_option("min_fit_quality", min_fit_quality, 0, 3)
    max_iter = _int_option("max_iter", max_iter, 1)
    verbosity = _int_option("verbosity", verbosity, 0)
    tol = _float_option("tol", tol, 0.0, strict=True)
    init_lambda = _float_option("init_lambda", init_lambda, 0.0, strict=False)
    if strategy is not None:
        strategy = _int_option("strategy", strategy, 0, 2)
    x0 = _check_start(cost, x0)
    bounds = np.asarray(cost.bounds, dtype=float).reshape(-1, 2)
    if opt != "NEWTON":
        if analytic_hessian is None:
            analytic_hessian = has_hessian(cost)
        elif analytic_hessian and not has_hessian(cost):
            raise FitError(f"fit: analytic_hessian=True but the cost "
                           f"({type(cost).__name__}) has no Hessian; drop the option")
    if rng is None:
        rng = np.random.default_rng(seed)
    config = {"optimizer": opt, "tol": tol, "max_iter": max_iter,
              "init_lambda": init_lambda, "retries": retries,
              "min_fit_quality": min_fit_quality, "verbosity": verbosity,
              "covar": bool(covar), "seed": seed}
    if opt != "NEWTON":
        config.update(minos=bool(minos), analytic_hessian=bool(analytic_hessian))

    def run(start, attempt):
        if opt == "NEWTON":
            return newton_fit(cost, start, tol=tol, max_iter=max_iter,
                              init_lambda=init_lambda, covar=covar, optimizer=opt,
                              verbosity=verbosity)
        first = DEFAULT_STRATEGY if strategy is None else strategy
        return minuit_fit(cost, start, tol=tol, strategy=min(2, first + attempt - 1),
                          minos=minos, analytic_hessian=analytic_hessian, covar=covar,
                          optimizer=opt, print_level=min(verbosity, 3))

    loglike0 = -float(cost(x0))
    start = x0
    res = None
    for attempt in range(1, retries + 1):
        res = run(start, attempt)
        ok = res.fit_status == 0 and res.fit_quality >= min_fit_quality
        if ok:
            # the fit's settings, with what the backend actually used (e.g. the strategy)
            return dataclasses.replace(res, loglike0=loglike0, fit_success=True,
                                       niter=attempt, config={**config, **res.config},
                                       x0=x0)
        start = _perturbed(x0, bounds, np.asarray(res.errors, dtype=float), rng, perturb)
    at_bound = bound_and_condition(res.par_names, x0, bounds, None)[0]
    return dataclasses.replace(
        res, values=x0.copy(), loglike=loglike0, loglike0=loglike0, fit_success=False,
        niter=retries, config={**config, **res.config},
        x0=x0, last_values=np.array(res.values), params_at_bound=at_bound,
        message=f"failed after {retries} attempt(s): {res.message}")
