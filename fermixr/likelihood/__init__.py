"""The binned Poisson likelihood: model counts from source maps, costs, priors."""

from .cost import BinnedPoissonCost, CostSum, SourceTerm
from .priors import GaussianPrior

__all__ = ["BinnedPoissonCost", "CostSum", "SourceTerm", "GaussianPrior"]
