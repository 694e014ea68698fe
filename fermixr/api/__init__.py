"""The Fermipy-style facade: :class:`Analysis`."""

from .analysis import Analysis

__all__ = ["Analysis"]
