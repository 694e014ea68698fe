"""Sky model: parameters, spectral and spatial models, sources, catalogs and XML files."""

from .parameters import Parameter
from .skymodel import SkyModel
from .source import Source, normalize_name

__all__ = ["Parameter", "SkyModel", "Source", "normalize_name"]
