"""The result of a fit, with Fermipy's ``fit()`` keys.

``FitResult`` is immutable.  It reads like Fermipy's output dict (``res["loglike"]``,
``res["fit_quality"]`` ...) and converts to an ``xarray.Dataset`` that conforms to
``schemas/products/fit.schema.json``.

Conventions (as Fermipy/pyLikelihood):

* ``values``, ``errors``, ``covariance`` are in the parameters' SCALED units (the XML
  ``value``; physical = value x scale), in the order of ``par_names`` ("source:param");
* ``loglike`` is log L at the result (priors included), ``dloglike`` = loglike - loglike0;
* ``fit_quality``: 3 full accurate covariance, 2 full but forced positive-definite,
  1 diagonal approximation only, 0 none;
* ``fit_status``: 0 success, otherwise an optimiser code (see :data:`STATUS_CODES`);
* ``fit_success``: fit_status == 0 and fit_quality >= min_fit_quality.  A failed fit
  carries the start vector ``x0`` in ``values`` (the caller keeps its state), the last
  attempt's values in ``last_values``.

Two flags for fits that are not what they seem (neither changes ``fit_success``):

* ``params_at_bound``: the free parameters whose value ends within 1e-6 of the span
  (max - min) of a finite bound (1e-6 x max(1, |bound|) when the other bound is infinite):
  their error and the covariance describe a one-sided situation;
* ``cond``: the condition number (largest / smallest eigenvalue) of the covariance in
  scaled units (inf when it is singular, nan when there is none); a huge value means
  (nearly) degenerate parameters.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

__all__ = ["FitResult", "STATUS_CODES", "correlation_from_covariance", "bound_and_condition"]

STATUS_CODES = {
    0: "converged",
    1: "call or iteration limit reached",
    2: "no further decrease possible above the EDM tolerance",
    3: "covariance (Hessian) could not be computed",
    4: "invalid minimum (non-finite value or optimiser failure)",
}


def correlation_from_covariance(cov: np.ndarray) -> np.ndarray:
    cov = np.asarray(cov, dtype=float)
    d = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    inv = np.zeros_like(d)
    ok = d > 0
    inv[ok] = 1.0 / d[ok]
    return cov * np.outer(inv, inv)


def bound_and_condition(names, values, bounds, cov) -> tuple[tuple[str, ...], float]:
    """(names of the parameters at a finite bound, condition number of ``cov``); see the
    module docstring.  ``cov`` None skips the condition number (nan)."""
    x = np.asarray(values, dtype=float).ravel()
    b = np.asarray(bounds, dtype=float).reshape(-1, 2)
    lo, hi = b[:, 0], b[:, 1]
    span = hi - lo
    at = np.zeros(x.size, dtype=bool)
    with np.errstate(invalid="ignore"):
        for edge in (lo, hi):
            fin = np.isfinite(edge)
            eps = np.where(np.isfinite(span), 1e-6 * span,
                           1e-6 * np.maximum(1.0, np.abs(np.where(fin, edge, 0.0))))
            at |= fin & (np.abs(x - np.where(fin, edge, 0.0)) <= eps)
    at_bound = tuple(str(n) for n, a in zip(names, at) if a)
    cond = math.nan
    if cov is not None:
        c = np.asarray(cov, dtype=float)
        if c.size and np.all(np.isfinite(c)):
            ev = np.abs(np.linalg.eigvalsh(0.5 * (c + c.T)))
            cond = float(ev.max() / ev.min()) if ev.min() > 0 else math.inf
    return at_bound, cond


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    optimizer: str                      # NEWTON, MINUIT or NEWMINUIT (as requested)
    backend: str                        # what ran: "fermixr-newton", "iminuit x.y migrad"
    par_names: tuple[str, ...]
    values: np.ndarray
    errors: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    loglike: float
    loglike0: float
    edm: float
    fit_quality: int
    fit_status: int
    fit_success: bool
    niter: int = 1                      # attempts (retries) made
    nfev: int = 0                       # function evaluations of the last attempt
    config: dict = dataclasses.field(default_factory=dict)
    x0: np.ndarray | None = None
    last_values: np.ndarray | None = None
    minos: dict | None = None           # {name: (lower, upper)} when MINOS ran
    message: str = ""
    info: dict = dataclasses.field(default_factory=dict)   # diagnostics (iterations, time)
    params_at_bound: tuple[str, ...] = ()  # free parameters ending on a finite bound
    cond: float = math.nan              # condition number of the covariance

    # -- Fermipy-style access --------------------------------------------------------
    @property
    def dloglike(self) -> float:
        return float(self.loglike - self.loglike0)

    @property
    def src_names(self) -> list[str]:
        return [n.rsplit(":", 1)[0] for n in self.par_names]

    @property
    def param_names(self) -> list[str]:
        return [n.rsplit(":", 1)[1] for n in self.par_names]

    def value(self, name: str) -> float:
        return float(self.values[self.par_names.index(name)])

    def error(self, name: str) -> float:
        return float(self.errors[self.par_names.index(name)])

    def to_dict(self) -> dict[str, Any]:
        """Fermipy's fit() dict (plus fermixr's ``optimizer``, ``backend``,
        ``params_at_bound`` and ``cond``)."""
        return {
            "fit_quality": int(self.fit_quality),
            "fit_status": int(self.fit_status),
            "fit_success": bool(self.fit_success),
            "loglike": float(self.loglike),
            "dloglike": self.dloglike,
            "values": np.array(self.values),
            "errors": np.array(self.errors),
            "covariance": np.array(self.covariance),
            "correlation": np.array(self.correlation),
            "edm": float(self.edm),
            "config": dict(self.config),
            "niter": int(self.niter),
            "src_names": self.src_names,
            "par_names": self.param_names,
            "optimizer": self.optimizer,
            "backend": self.backend,
            "params_at_bound": list(self.params_at_bound),
            "cond": float(self.cond),
        }

    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def keys(self):
        return self.to_dict().keys()

    def to_dataset(self):
        """xarray Dataset conforming to ``schemas/products/fit.schema.json``."""
        import xarray as xr

        names = list(self.par_names)
        ds = xr.Dataset(
            data_vars={
                "value": ("param", np.asarray(self.values, dtype=float)),
                "error": ("param", np.asarray(self.errors, dtype=float)),
                "covariance": (("param", "param_b"),
                               np.asarray(self.covariance, dtype=float)),
                "correlation": (("param", "param_b"),
                                np.asarray(self.correlation, dtype=float)),
            },
            coords={"param": names, "param_b": names,
                    "source": ("param", self.src_names),
                    "parname": ("param", self.param_names)},
            attrs={
                "fermixr_product": "fit",
                "loglike": float(self.loglike),
                "loglike0": float(self.loglike0),
                "dloglike": self.dloglike,
                "fit_quality": int(self.fit_quality),
                "fit_status": int(self.fit_status),
                "fit_success": int(bool(self.fit_success)),
                "edm": float(self.edm),
                "optimizer": str(self.optimizer),
                "backend": str(self.backend),
                "niter": int(self.niter),
                "config": json.dumps(self.config, sort_keys=True, default=str),
                "params_at_bound": json.dumps(list(self.params_at_bound)),
                "cond": float(self.cond),
            },
        )
        ds["value"].attrs["units"] = "scaled (XML value; physical = value x scale)"
        return ds

    def __repr__(self) -> str:
        return (f"FitResult(optimizer={self.optimizer}, loglike={self.loglike:.4f}, "
                f"fit_quality={self.fit_quality}, fit_status={self.fit_status}, "
                f"edm={self.edm:.3g}, npar={len(self.par_names)})")
