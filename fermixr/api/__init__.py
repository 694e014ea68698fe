"""The Fermipy-style facade: :class:`Analysis` (also as ``GTAnalysis``) and its ROI view."""

from .analysis import Analysis, GTAnalysis
from .roi import ROI, ROISource

__all__ = ["Analysis", "GTAnalysis", "ROI", "ROISource"]
