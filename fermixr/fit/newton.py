"""The fast default optimiser: Fisher scoring (Newton's method with the expected
information) with Levenberg-Marquardt damping, a backtracking line search along the
projected path, and an active set for the bounds.

Every iteration costs one fused pass over the source maps for log L and its gradient (and
one per rejected trial step) plus one pass for the Fisher matrix.  Convergence follows
MINUIT as the Science Tools drive it: with Fermipy's ``tol`` (absolute) MIGRAD stops when
its estimated distance to the minimum EDM = 0.5 g^T H^-1 g is below ``tol`` (the Science
Tools pass ``2000 tol`` to MINUIT, whose criterion is EDM < 0.001 x tolerance x UP, UP = 0.5;
NewMinuit passes ``1000 tol`` to Minuit2's 0.002 x tolerance x UP).  Fermipy's own
norm-only Newton fitter (``FitUtils::fitNorms_newton``) stops on |g^T H^-1 g| < tol, twice
as strict; here the EDM test uses the free (not bound-active) parameters and, once it
passes, the already computed step is taken when it lowers -log L, so the returned point is
usually well inside the tolerance.

The covariance is the inverse of the observed information (the exact Hessian of -log L,
what MINUIT's HESSE estimates numerically): fit_quality 3.  If that is not positive
definite the expected (Fisher) information is inverted instead, which is positive definite
by construction: fit_quality 2 (MINUIT's "forced positive-definite").  Diagonal only: 1.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from .result import FitResult, bound_and_condition, correlation_from_covariance

__all__ = ["newton_fit"]


def _scaled_solve(F, g, lam):
    """Solve (F + lam diag F) d = -g (F symmetric PSD); parameters with F_ii <= 0 get
    d_i = 0.  Returns (d, ok)."""
    n = g.size
    d = np.zeros(n)
    diag = np.diag(F).copy()
    use = diag > 0
    if not use.any():
        return d, False
    s = np.sqrt(diag[use])
    Fn = F[np.ix_(use, use)] / np.outer(s, s)
    gn = g[use] / s
    extra = lam
    for _ in range(30):
        try:
            L = np.linalg.cholesky(Fn + extra * np.eye(Fn.shape[0]))
        except np.linalg.LinAlgError:
            extra = max(10.0 * extra, 1e-10)
            continue
        y = np.linalg.solve(L, -gn)
        d[use] = np.linalg.solve(L.T, y) / s
        return d, True
    return d, False


def _sigmas(F):
    """sqrt(diag(F^-1)) (inf where F cannot be inverted)."""
    try:
        return np.sqrt(np.clip(np.diag(np.linalg.inv(F)), 0.0, None))
    except np.linalg.LinAlgError:
        return np.full(F.shape[0], np.inf)


def _edm(F, g):
    """0.5 g^T F^-1 g (nan when F is not positive definite)."""
    if g.size == 0:
        return 0.0
    try:
        L = np.linalg.cholesky(F)
    except np.linalg.LinAlgError:
        return math.nan
    y = np.linalg.solve(L, g)
    return 0.5 * float(y @ y)


def _covariance(cost, x, free):
    """(cov, quality, edm_matrix) from the observed information, else the Fisher one."""
    n = x.size
    for quality, which in ((3, "hessian"), (2, "fisher")):
        try:
            H = np.asarray(getattr(cost, which)(x), dtype=float)
        except Exception:     # noqa: BLE001 - a backend failing here degrades the quality
            continue
        if not np.all(np.isfinite(H)):
            continue
        try:
            np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            continue
        return np.linalg.inv(H), quality, H
    try:
        H = np.asarray(cost.fisher(x), dtype=float)
        d = np.diag(H)
        if np.all(d > 0):
            return np.diag(1.0 / d), 1, np.diag(d)
    except Exception:         # noqa: BLE001
        pass
    return np.full((n, n), np.nan), 0, None


def newton_fit(cost, x0, *, tol: float = 1e-3, max_iter: int = 100,
               init_lambda: float = 1e-4, covar: bool = True,
               optimizer: str = "NEWTON", reuse_sigma: float = 1.0,
               verbosity: int = 0) -> FitResult:
    """Minimise ``cost`` (a fermixr cost: value_and_grad, fisher, hessian, bounds) from
    ``x0`` (scaled units, inside the bounds).  ``init_lambda`` is the initial damping
    (divided by 5 after a full step, multiplied by 3 after a shortened one; 0 disables
    damping).  The Fisher matrix is recomputed after a step unless every parameter moved
    by less than ``reuse_sigma`` of its Fisher error (0 recomputes it at every iteration).
    ``verbosity`` > 0 prints one line per iteration to stderr.  Returns a
    :class:`FitResult` whose ``fit_success`` only reflects this attempt (status 0,
    quality >= 1); its ``edm`` is 0.5 g^T F^-1 g at the returned point over the parameters
    not held by a bound, with the Fisher matrix F of the last convergence test (the
    quantity compared with ``tol``)."""
    t_start = time.perf_counter()
    x0 = np.array(x0, dtype=float)
    bounds = np.asarray(cost.bounds, dtype=float).reshape(-1, 2)
    lb, ub = bounds[:, 0], bounds[:, 1]
    x = np.clip(x0, lb, ub)
    f, g = cost.value_and_grad(x)
    nfev = 1
    nfisher = 0
    f0 = f
    status = 0
    edm = math.nan
    lam = float(init_lambda)
    damped = lam > 0
    it = 0
    message = ""
    free = np.ones(x.size, dtype=bool)
    if not math.isfinite(f) or not np.all(np.isfinite(g)):
        status = 4
        message = f"-log L is not finite at the start ({f})"
    else:
        converged = False
        F = None
        F_test = None
        for it in range(1, int(max_iter) + 1):
            if F is None:
                F = cost.fisher(x)
                nfisher += 1
            at_lo = (x <= lb) & (g > 0)
            at_hi = (x >= ub) & (g < 0)
            free = ~(at_lo | at_hi)
            gf = g[free]
            Ff = F[np.ix_(free, free)]
            edm = _edm(Ff, gf)
            if not math.isfinite(edm):
                edm = _edm(Ff + 1e-12 * np.diag(np.diag(Ff)) + 1e-300 * np.eye(gf.size), gf)
            F_test = F
            if verbosity > 0:
                print(f"NEWTON iter {it:3d}: -logL {f:.6f}  edm {edm:.3g}  lambda {lam:.3g}  "
                      f"free {int(free.sum())}/{x.size}", file=sys.stderr, flush=True)
            d = np.zeros(x.size)
            df, ok = _scaled_solve(Ff, gf, lam if not (edm < tol) else 0.0)
            d[free] = df
            if not ok:
                status = 3
                message = "the Fisher matrix has no positive diagonal element"
                break
            if edm < tol:
                converged = True
                # polish: the (undamped) Newton step is computed already; keep it if
                # it lowers -log L
                xn = np.clip(x + d, lb, ub)
                if np.any(xn != x):
                    fn, gn = cost.value_and_grad(xn)
                    nfev += 1
                    if math.isfinite(fn) and fn <= f:
                        x, f, g = xn, fn, gn
                break
            t = 1.0
            accepted = False
            for _ in range(40):
                xn = np.clip(x + t * d, lb, ub)
                dx = xn - x
                if not np.any(dx):
                    break
                fn, gn = cost.value_and_grad(xn)
                nfev += 1
                if math.isfinite(fn) and fn <= f + 1e-4 * float(g @ dx):
                    accepted = True
                    break
                t *= 0.3
            if not accepted:
                if edm < 10.0 * tol:       # MINUIT tolerates up to 10x the goal
                    converged = True
                else:
                    status = 2
                    message = (f"line search found no decrease of -log L at EDM {edm:.3g} "
                               f"> tol {tol}")
                break
            # the Fisher matrix changes little over a step of less than ~1 sigma: keep it
            # (a Fisher-scoring step with slightly stale curvature still converges)
            sig = _sigmas(F)
            if not (t == 1.0 and np.all(np.abs(dx) <= reuse_sigma * sig)):
                F = None
            x, f, g = xn, fn, gn
            if damped:
                lam = max(lam / 5.0, 1e-10) if t == 1.0 else lam * 3.0
        else:
            status = 1
            message = f"max_iter={max_iter} reached with EDM {edm:.3g} > tol {tol}"
        if converged:
            message = "converged"
        # the reported EDM: at the returned point, with the matrix of the convergence test
        if F_test is None:
            F_test = cost.fisher(x)
            nfisher += 1
        fr = ~(((x <= lb) & (g > 0)) | ((x >= ub) & (g < 0)))
        if fr.any():
            Ft = F_test[np.ix_(fr, fr)]
            e_final = _edm(Ft, g[fr])
            if not math.isfinite(e_final):
                e_final = _edm(Ft + 1e-12 * np.diag(np.diag(Ft))
                               + 1e-300 * np.eye(int(fr.sum())), g[fr])
        else:
            e_final = 0.0
        edm = e_final
        if verbosity > 0:
            print(f"NEWTON end     : -logL {f:.6f}  edm {edm:.3g}  ({message or 'stopped'})",
                  file=sys.stderr, flush=True)
    # covariance
    n = x.size
    cov = np.full((n, n), np.nan)
    quality = 0
    if covar and status in (0, 1, 2) and math.isfinite(f):
        cov, quality, _ = _covariance(cost, x, free)
        if quality == 0 and status == 0:
            status = 3
            message = "covariance could not be computed"
    errors = np.sqrt(np.clip(np.diag(cov), 0.0, None)) if quality else np.full(n, np.nan)
    at_bound, cond = bound_and_condition(cost.parameters, x, bounds, cov if quality else None)
    return FitResult(
        optimizer=optimizer, backend="fermixr-newton", par_names=tuple(cost.parameters),
        values=x, errors=errors, covariance=cov,
        correlation=correlation_from_covariance(cov) if quality else np.full((n, n), np.nan),
        loglike=-float(f), loglike0=-float(f0), edm=float(edm), fit_quality=int(quality),
        fit_status=int(status), fit_success=(status == 0 and quality >= 1), niter=1,
        nfev=nfev,
        config={"optimizer": optimizer, "tol": tol, "max_iter": max_iter,
                "init_lambda": init_lambda},
        x0=x0, last_values=x.copy(), message=message,
        info={"iterations": it, "fisher_evaluations": nfisher,
              "time_s": time.perf_counter() - t_start},
        params_at_bound=at_bound, cond=cond)
