"""iminuit backend (MIGRAD, then HESSE; MINOS on request), selected by Fermipy's
``optimizer: MINUIT`` or ``NEWMINUIT``.

Mapping of the Science Tools' settings:

* tolerance: pyLikelihood passes Fermipy's ``tol`` (absolute) to MINUIT as ``2000 tol``
  (old MINUIT, EDM < 0.001 x tolerance x UP) or to Minuit2 as ``1000 tol`` (NewMinuit, EDM
  < 0.002 x tolerance x UP); with UP = 0.5 both stop at EDM < ``tol``.  iminuit's criterion
  is EDM < 0.002 x ``Minuit.tol`` x errordef, so ``Minuit.tol = 1000 tol``.
* errordef 0.5 (the cost is -log L); bounds are the parameters' scaled min/max.
* the analytic gradient is always supplied, and HESSE runs after MIGRAD (as in the
  Science Tools).  The default is MINUIT's strategy 1, as the Science Tools use: strategy 0
  makes better use of a supplied gradient but is fragile when a parameter ends near a
  limit (a zero-flux source with its norm bounded at 0: MIGRAD stopped above the EDM goal
  in ~25% of simulated cases with strategy 0, in none of 60 with strategy 1).  fit()
  raises the strategy by one at each retry.  ``analytic_hessian=True`` hands iminuit the
  cost's exact Hessian too (HESSE then inverts the same matrix as the NEWTON fitter).
* a start value exactly on a limit (where MINUIT's sine transform is flat) is moved a
  hair inside.
* fit_quality from MINUIT's covariance status: 3 accurate, 2 forced positive-definite,
  1 approximate only, 0 none.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .result import FitResult, correlation_from_covariance

__all__ = ["minuit_fit"]


def _quality(fmin) -> int:
    if fmin is None or not fmin.has_covariance:
        return 0
    if fmin.has_made_posdef_covar:
        return 2
    if fmin.has_accurate_covar:
        return 3
    return 1


def _status(fmin) -> int:
    if fmin is None:
        return 4
    if fmin.has_reached_call_limit:
        return 1
    if fmin.is_above_max_edm:
        return 2
    if fmin.hesse_failed:
        return 3
    if not fmin.is_valid:
        return 4
    return 0


def minuit_fit(cost, x0, *, tol: float = 1e-3, strategy: int = 1, ncall: int | None = None,
               minos: bool = False, analytic_hessian: bool = False, covar: bool = True,
               optimizer: str = "MINUIT", print_level: int = 0) -> FitResult:
    """Minimise ``cost`` with iminuit from ``x0`` (scaled units)."""
    import iminuit
    from iminuit import Minuit

    t_start = time.perf_counter()
    x0 = np.array(x0, dtype=float)
    names = list(cost.parameters)
    f0 = float(cost(x0))
    bounds = np.asarray(cost.bounds, dtype=float).reshape(-1, 2)
    # MINUIT maps a bounded parameter through a sine: started exactly on a bound it sits
    # where that map is flat and MIGRAD cannot move it; start a hair inside instead
    start = x0.copy()
    span = bounds[:, 1] - bounds[:, 0]
    nudge = np.minimum(1e-4 * np.maximum(np.abs(x0), 1.0), 0.01 * span)
    start = np.where(x0 <= bounds[:, 0], bounds[:, 0] + nudge, start)
    start = np.where(x0 >= bounds[:, 1], bounds[:, 1] - nudge, start)
    m = Minuit(cost, start, grad=cost.grad,
               hessian=cost.hessian if analytic_hessian else False, name=names)
    if getattr(cost, "errordef", None) != Minuit.LIKELIHOOD:
        m.errordef = Minuit.LIKELIHOOD
    m.limits = [tuple(b) for b in bounds]
    m.tol = 1000.0 * float(tol)
    m.strategy = int(strategy)
    m.print_level = int(print_level)
    message = ""
    try:
        m.migrad(ncall=ncall)
        if covar and m.valid:
            m.hesse()
        merr = None
        if minos and m.valid:
            m.minos()
            merr = {k: (float(v.lower), float(v.upper)) for k, v in m.merrors.items()}
    except Exception as exc:   # noqa: BLE001 - reported as an invalid minimum
        merr = None
        message = f"iminuit raised {type(exc).__name__}: {exc}"
    fmin = m.fmin
    status = _status(fmin) if not message else 4
    quality = _quality(fmin) if covar else 0
    n = len(names)
    x = np.array(m.values, dtype=float)
    if m.covariance is not None and quality:
        cov = np.array(m.covariance, dtype=float)
        errors = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        corr = correlation_from_covariance(cov)
    else:
        cov = np.full((n, n), np.nan)
        errors = np.array(m.errors, dtype=float) if quality else np.full(n, np.nan)
        corr = np.full((n, n), np.nan)
    fval = float(m.fval) if m.fval is not None else math.nan
    return FitResult(
        optimizer=optimizer,
        backend=f"iminuit {iminuit.__version__} migrad+hesse (strategy {int(strategy)})",
        par_names=tuple(names), values=x, errors=errors, covariance=cov, correlation=corr,
        loglike=-fval, loglike0=-f0, edm=float(fmin.edm) if fmin is not None else math.nan,
        fit_quality=int(quality), fit_status=int(status),
        fit_success=(status == 0 and quality >= 1), niter=1, nfev=int(m.nfcn),
        config={"optimizer": optimizer, "tol": tol, "strategy": int(strategy),
                "minuit_tol": m.tol, "analytic_hessian": bool(analytic_hessian)},
        x0=x0, last_values=x.copy(), minos=merr,
        message=message or ("converged" if status == 0 else "MIGRAD did not converge"),
        info={"ngrad": int(m.ngrad), "time_s": time.perf_counter() - t_start})
