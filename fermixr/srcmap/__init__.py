"""Source maps (gtsrcmaps): predicted counts per unit dN/dE at true-energy nodes, for
point, extended and diffuse sources on WCS and HEALPix geometries."""

from .diffuse import isotropic_map, mapcube_map
from .extended import extended_source_map
from .point import point_source_map

__all__ = ["point_source_map", "extended_source_map", "isotropic_map", "mapcube_map"]
