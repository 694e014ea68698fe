"""Sky model: parameters, spectral and spatial models, sources, catalogs and XML files."""

from .build import build_sky_model
from .catalog import open_catalog, read_catalog
from .parameters import Parameter
from .skymodel import SkyModel
from .source import Source, normalize_name
from .xml import read_xml, write_xml

__all__ = ["Parameter", "SkyModel", "Source", "normalize_name", "build_sky_model",
           "open_catalog", "read_catalog", "read_xml", "write_xml"]
