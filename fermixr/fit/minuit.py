"""iminuit backend (MIGRAD, then HESSE; MINOS on request), selected by Fermipy's
``optimizer: MINUIT`` or ``NEWMINUIT``.

Mapping of the Science Tools' settings:

* tolerance: pyLikelihood passes Fermipy's ``tol`` (absolute) to MINUIT as ``2000 tol``
  (old MINUIT, EDM < 0.001 x tolerance x UP) or to Minuit2 as ``1000 tol`` (NewMinuit, EDM
  < 0.002 x tolerance x UP); with UP = 0.5 both stop at EDM < ``tol``.  iminuit's criterion
  is EDM < 0.002 x ``Minuit.tol`` x errordef, so ``Minuit.tol = 1000 tol``.
* errordef 0.5 (the cost is -log L); bounds are the parameters' scaled min/max.
* the analytic gradient is always supplied and, whenever the cost has one
  (:func:`has_hessian`), the analytic Hessian too (``Minuit(..., grad=, hessian=)``, with
  its diagonal as G2): MIGRAD's seed and its checks and the final HESSE then use the exact
  matrix and nothing is differentiated numerically (on 51 free parameters a numerical
  HESSE took 3,428 evaluations).  ``analytic_hessian=False`` restores the numerical HESSE.
  HESSE runs after MIGRAD (as in the Science Tools).
* strategy: MINUIT's 1, as the Science Tools use (fit() raises it by one at each retry).
  Measured with the analytic Hessian on 300 simulated realisations each of three toy
  problems (a zero-flux source bounded at 0, four norms and an index, and three shape
  parameters): strategy 1 failed in none at the first attempt and ended within 2e-3 in
  log L of a NEWTON fit at tol 1e-7; strategy 0 was no faster there and ended up to 9e-3
  away (up to 1.6% in the errors).  Without the Hessian, strategy 0 stopped above the EDM
  goal in ~25% of the zero-flux cases, strategy 1 in none.
* a parameter whose constrained optimum is on a bound: Minuit2 carries a user Hessian into
  its internal (sine / square-root) coordinates without the gradient term of the
  transform, so MIGRAD (or the HESSE after it) reports "above max EDM" there although the
  point is right (~40% of the zero-flux cases).  MIGRAD therefore runs once without
  iminuit's automatic re-runs; if it ends above the goal, each parameter on a finite bound
  with the gradient pointing outwards is held at the bound and MIGRAD finishes over the
  others (the active set of the NEWTON fitter; ``info["held_at_bound"]`` names them).  The
  covariance is then the inverse of the full Hessian, as NEWTON's.
* a start value exactly on a limit (where MINUIT's sine transform is flat) is moved a
  hair inside.
* fit_quality from MINUIT's covariance status: 3 accurate, 2 forced positive-definite,
  1 approximate only, 0 none.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .result import FitResult, bound_and_condition, correlation_from_covariance

__all__ = ["minuit_fit", "has_hessian", "DEFAULT_STRATEGY"]

DEFAULT_STRATEGY = 1


def has_hessian(cost) -> bool:
    """True when ``cost.hessian`` is implemented (for a sum: by every component)."""
    from ..likelihood.cost import Cost

    comps = getattr(cost, "components", None)
    if comps is not None:
        return all(has_hessian(c) for c in comps)
    impl = getattr(type(cost), "hessian", None)
    return callable(impl) and impl is not Cost.hessian


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


def _pin_at_bounds(m, cost, bounds) -> list[int]:
    """Hold at its bound (fix) every parameter that MIGRAD left on a finite bound with the
    gradient pointing outwards; returns their indices.

    Minuit2 turns a user Hessian into its internal (sine / square-root transformed)
    coordinates with the Jacobian only, without the gradient x second-derivative term of
    the transform.  For a parameter whose constrained optimum is on its bound that term is
    the whole internal curvature, so MIGRAD's EDM stays at the unconstrained 0.5 g^2 / H
    and it reports "above max EDM" at the right point (seen for a zero-flux source with its
    norm bounded at 0, in ~40% of simulated cases).  Holding such a parameter at its bound
    and finishing MIGRAD over the others is the active-set step of the NEWTON fitter."""
    x = np.array(m.values, dtype=float)
    g = np.asarray(cost.grad(x), dtype=float)
    lo, hi = bounds[:, 0], bounds[:, 1]
    span = hi - lo
    near = np.where(np.isfinite(span), 1e-6 * span, 1e-6)
    at_lo = np.isfinite(lo) & (x - lo <= near) & (g > 0)
    at_hi = np.isfinite(hi) & (hi - x <= near) & (g < 0)
    pinned = [k for k in range(x.size) if (at_lo[k] or at_hi[k]) and not m.fixed[k]]
    if len(pinned) == x.size:
        return []
    for k in pinned:
        m.values[k] = lo[k] if at_lo[k] else hi[k]
        m.fixed[k] = True
    return pinned


def _hessian_and_g2(cost):
    """``cost.hessian`` and its diagonal (MINUIT's G2), sharing one evaluation per point."""
    memo: dict = {"computed": 0}

    def hessian(x):
        x = np.asarray(x, dtype=float)
        key = x.tobytes()
        if memo.get("key") != key:
            memo["key"], memo["H"] = key, np.asarray(cost.hessian(x), dtype=float)
            memo["computed"] += 1
        return memo["H"]

    hessian.memo = memo

    def g2(x):
        return np.diag(hessian(x)).copy()

    return hessian, g2


def _full_covariance(cost, x) -> tuple[np.ndarray | None, int]:
    for quality, which in ((3, "hessian"), (2, "fisher")):
        try:
            H = np.asarray(getattr(cost, which)(x), dtype=float)
            np.linalg.cholesky(H)
        except Exception:     # noqa: BLE001 - not positive definite / not available
            continue
        if np.all(np.isfinite(H)):
            return np.linalg.inv(H), quality
    return None, 0


def minuit_fit(cost, x0, *, tol: float = 1e-3, strategy: int = DEFAULT_STRATEGY,
               ncall: int | None = None, minos: bool = False,
               analytic_hessian: bool | None = None, covar: bool = True,
               optimizer: str = "MINUIT", print_level: int = 0) -> FitResult:
    """Minimise ``cost`` with iminuit from ``x0`` (scaled units).  ``analytic_hessian``
    None hands iminuit ``cost.hessian`` whenever the cost has one (:func:`has_hessian`)."""
    import iminuit
    from iminuit import Minuit

    t_start = time.perf_counter()
    if analytic_hessian is None:
        analytic_hessian = has_hessian(cost)
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
    hessian = None
    if analytic_hessian:
        hessian, g2 = _hessian_and_g2(cost)
        with warnings.catch_warnings():
            # iminuit warns that the Hessian overrides g2; Minuit2 still asks for G2 in its
            # negative-curvature line search, and iminuit 2.33 then calls g2 and fails
            # with "'NoneType' object is not callable" when none was given
            warnings.simplefilter("ignore", iminuit.util.IMinuitWarning)
            m = Minuit(cost, start, grad=cost.grad, hessian=hessian, g2=g2, name=names)
    else:
        m = Minuit(cost, start, grad=cost.grad, hessian=False, name=names)
    if getattr(cost, "errordef", None) != Minuit.LIKELIHOOD:
        m.errordef = Minuit.LIKELIHOOD
    m.limits = [tuple(b) for b in bounds]
    m.tol = 1000.0 * float(tol)
    m.strategy = int(strategy)
    # iminuit's print level is global to the session: set it for this fit only
    level_before = m.print_level
    m.print_level = int(print_level)
    message = ""
    pinned: list[int] = []
    merr = None
    try:
        # with the analytic Hessian, a first MIGRAD without iminuit's automatic re-runs:
        # if it stops above the EDM goal because a parameter sits on its bound, re-running
        # it only repeats that (see _pin_at_bounds); otherwise it is re-run as usual
        m.migrad(ncall=ncall, iterate=1 if analytic_hessian else 5)
        if covar and m.valid:
            m.hesse()
        # (HESSE re-estimates the EDM: a valid MIGRAD minimum can end above the goal)
        if analytic_hessian and m.fmin is not None and m.fmin.is_above_max_edm:
            pinned = _pin_at_bounds(m, cost, bounds)
            if pinned or not m.valid:
                m.migrad(ncall=ncall)
                if covar and m.valid:
                    m.hesse()
        if minos and m.valid:
            m.minos()
            merr = {k: (float(v.lower), float(v.upper)) for k, v in m.merrors.items()}
    except Exception as exc:   # noqa: BLE001 - reported as an invalid minimum
        merr = None
        message = f"iminuit raised {type(exc).__name__}: {exc}"
    finally:
        m.print_level = level_before
    fmin = m.fmin
    status = _status(fmin) if not message else 4
    quality = _quality(fmin) if covar else 0
    n = len(names)
    x = np.array(m.values, dtype=float)
    cov = None
    if pinned and quality:
        # the parameters held at a bound have no row in MINUIT's covariance: invert the
        # full Hessian as the NEWTON fitter does (its Fisher matrix if that is not
        # positive definite: forced positive-definite, quality 2)
        cov, q_full = _full_covariance(cost, x)
        quality = min(quality, q_full)
    elif m.covariance is not None and quality:
        cov = np.array(m.covariance, dtype=float)
    if cov is not None and quality:
        errors = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        corr = correlation_from_covariance(cov)
    else:
        cov = np.full((n, n), np.nan)
        errors = np.array(m.errors, dtype=float) if quality else np.full(n, np.nan)
        corr = np.full((n, n), np.nan)
    fval = float(m.fval) if m.fval is not None else math.nan
    at_bound, cond = bound_and_condition(names, x, bounds, cov if quality else None)
    hess = "analytic" if analytic_hessian else "numerical"
    return FitResult(
        optimizer=optimizer,
        backend=(f"iminuit {iminuit.__version__} migrad+hesse (strategy {int(strategy)}, "
                 f"analytic gradient, {hess} Hessian)"),
        par_names=tuple(names), values=x, errors=errors, covariance=cov, correlation=corr,
        loglike=-fval, loglike0=-f0, edm=float(fmin.edm) if fmin is not None else math.nan,
        fit_quality=int(quality), fit_status=int(status),
        fit_success=(status == 0 and quality >= 1), niter=1, nfev=int(m.nfcn),
        config={"optimizer": optimizer, "tol": tol, "strategy": int(strategy),
                "minuit_tol": m.tol, "analytic_hessian": bool(analytic_hessian)},
        x0=x0, last_values=x.copy(), minos=merr,
        message=message or (("converged" if status == 0 else "MIGRAD did not converge")
                            + (f" ({', '.join(names[k] for k in pinned)} held at the bound)"
                               if pinned else "")),
        info={"ngrad": int(m.ngrad), "nhessian": int(m.nhessian),
              "hessian_evaluations": hessian.memo["computed"] if hessian else 0,
              "held_at_bound": [names[k] for k in pinned],
              "time_s": time.perf_counter() - t_start},
        params_at_bound=at_bound, cond=cond)
