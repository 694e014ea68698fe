"""Optimisers for fermixr costs: the fast Fisher-scoring fitter (NEWTON), iminuit (MINUIT,
NEWMINUIT), and :func:`fit` with Fermipy's retries and fit-quality rules."""

from .fitter import OPTIMIZERS, fit
from .minuit import minuit_fit
from .newton import newton_fit
from .result import STATUS_CODES, FitResult, correlation_from_covariance

__all__ = ["fit", "OPTIMIZERS", "newton_fit", "minuit_fit", "FitResult", "STATUS_CODES",
           "correlation_from_covariance"]
