"""Priors on single parameters, as costs that add to a likelihood.

A Gaussian prior on a parameter in SCALED units (the Science Tools apply
``Parameter::addGaussianPrior(mean, sigma)`` to the parameter's value, not value x scale)::

    cost = like + GaussianPrior("Crab:Prefactor", mean=3.1, sigma=0.2)

adds -log of the normalised Gaussian density, 0.5 ((x - mean)/sigma)^2 + ln(sqrt(2 pi) sigma),
as the Science Tools' ``LogGaussian`` prior does, so log-likelihood values with priors
compare with gtlike's.  A prior on a parameter that is not free in the likelihood is an
error (raised when the sum is formed).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..errors import LikelihoodError
from .cost import Cost

__all__ = ["GaussianPrior", "gaussian_priors_from_errors"]


class GaussianPrior(Cost):
    is_prior = True

    def __init__(self, parameter: str, mean: float, sigma: float):
        if not isinstance(parameter, str) or ":" not in parameter:
            raise LikelihoodError(f"prior parameter {parameter!r}: expected 'source:param'")
        mean = float(mean)
        sigma = float(sigma)
        if not math.isfinite(mean) or not (math.isfinite(sigma) and sigma > 0):
            raise LikelihoodError(f"prior on {parameter!r}: mean {mean} and sigma {sigma} must "
                                  "be finite with sigma > 0")
        self.parameter = parameter
        self.parameters = (parameter,)
        self.mean = mean
        self.sigma = sigma
        self.x0 = np.array([mean])
        self.bounds = np.array([[-np.inf, np.inf]])
        self._log_term = math.log(math.sqrt(2.0 * math.pi) * sigma)

    def value_and_grad(self, x):
        x = self._x(x)
        z = (x[0] - self.mean) / self.sigma
        return 0.5 * z * z + self._log_term, np.array([z / self.sigma])

    def fisher(self, x) -> np.ndarray:
        return np.array([[1.0 / self.sigma ** 2]])

    hessian = fisher

    def __repr__(self) -> str:
        return f"GaussianPrior({self.parameter!r}, mean={self.mean}, sigma={self.sigma})"


def gaussian_priors_from_errors(names: Iterable[str], values, errors,
                                cov_scale: float = 1.0) -> list[GaussianPrior]:
    """Priors centred on ``values`` with sigma = ``errors`` x ``cov_scale`` (Fermipy's
    ``constrain_norms``); entries with a non-positive or non-finite error are skipped, as
    Fermipy skips parameters without an error."""
    out = []
    for n, v, e in zip(names, np.asarray(values, float), np.asarray(errors, float)):
        if np.isfinite(e) and e > 0:
            out.append(GaussianPrior(n, v, e * cov_scale))
    return out
