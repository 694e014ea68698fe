"""Energy axes and sky grids (WCS, HEALPix), with canonical dicts for cache keys and the
labels products carry in xarray.

Conventions (see the module docstrings): energies in MeV, angles in degrees, frames
``"CEL"``/``"GAL"`` with the Science Tools' equatorial->Galactic rotation for data, and
Fermipy's astropy conversion for configured centres.
"""

from .axes import EnergyAxis
from .coords import (
    energy_axis_from_dataset,
    geom_attrs,
    geom_coords,
    geom_from_attrs,
    geom_from_config,
    geom_from_dict,
    sky_dims,
)
from .frames import (
    EQ_TO_GAL,
    angular_separation,
    cel_to_gal,
    fermipy_cel_to_gal,
    fermipy_gal_to_cel,
    gal_to_cel,
    normalize_frame,
    transform,
)
from .hpx import HpxGeom
from .wcs import WcsGeom

__all__ = [
    "EnergyAxis",
    "WcsGeom",
    "HpxGeom",
    "geom_from_dict",
    "geom_from_config",
    "geom_from_attrs",
    "geom_coords",
    "geom_attrs",
    "sky_dims",
    "energy_axis_from_dataset",
    "EQ_TO_GAL",
    "cel_to_gal",
    "gal_to_cel",
    "transform",
    "normalize_frame",
    "angular_separation",
    "fermipy_cel_to_gal",
    "fermipy_gal_to_cel",
]
