"""Spatial models with the Science Tools' names and parameters.

| type              | XML function      | parameters            | intensity (sr^-1)                     |
|-------------------|-------------------|-----------------------|---------------------------------------|
| PointSource       | SkyDirFunction    | RA, DEC               | delta at (RA, DEC)                    |
| RadialGaussian    | RadialGaussian    | RA, DEC, Sigma [deg]  | 2-D Gaussian in angular distance      |
| RadialDisk        | RadialDisk        | RA, DEC, Radius [deg] | uniform inside Radius                 |
| SpatialMap        | SpatialMap        | Prefactor             | a FITS template (normalised to 1)     |
| MapCubeFunction   | MapCubeFunction   | Normalization         | a FITS intensity cube per energy      |
| ConstantValue     | ConstantValue     | Value                 | isotropic: Value (1 sr^-1)            |

``SpatialWidth`` is the 68% containment radius, as Fermipy defines it: a RadialGaussian of
width w has Sigma = w / 1.50959, a RadialDisk Radius = w / 0.82462.  The profiles
themselves are evaluated (and PSF-convolved) in :mod:`fermixr.srcmap.extended`.
"""

from __future__ import annotations

from ..errors import ModelError
from .parameters import Parameter

GAUSS_R68 = 1.5095921854516636  # 68% radius / sigma of a 2-D Gaussian: sqrt(-2 ln 0.32)
DISK_R68 = 0.8246211251235321   # 68% radius / radius of a uniform disk: sqrt(0.68)

_P = Parameter
SPATIAL_PARAMS: dict[str, tuple[Parameter, ...]] = {
    "PointSource": (_P("RA", 0.0, 1.0, -360.0, 360.0), _P("DEC", 0.0, 1.0, -90.0, 90.0)),
    "RadialGaussian": (_P("RA", 0.0, 1.0, -360.0, 360.0), _P("DEC", 0.0, 1.0, -90.0, 90.0),
                       _P("Sigma", 0.1, 1.0, 1e-10, 10.0)),
    "RadialDisk": (_P("RA", 0.0, 1.0, -360.0, 360.0), _P("DEC", 0.0, 1.0, -90.0, 90.0),
                   _P("Radius", 0.1, 1.0, 1e-10, 10.0)),
    "SpatialMap": (_P("Prefactor", 1.0, 1.0, 0.001, 1000.0),),
    "MapCubeFunction": (_P("Normalization", 1.0, 1.0, 0.001, 1000.0),),
    "ConstantValue": (_P("Value", 1.0, 1.0, 0.0, 10.0),),
}
XML_FUNCTION = {"PointSource": "SkyDirFunction"}
ALIASES = {"SkyDirFunction": "PointSource", "PSFSource": "PointSource",
           "RadialGauss": "RadialGaussian", "GaussianSource": "RadialGaussian",
           "DiskSource": "RadialDisk", "MapCube": "MapCubeFunction",
           "Isotropic": "ConstantValue", "IsotropicSource": "ConstantValue",
           "DiffuseIsotropic": "ConstantValue", "DiffuseMapCube": "MapCubeFunction"}
DIFFUSE_TYPES = ("SpatialMap", "MapCubeFunction", "ConstantValue")


def spatial_type(name: str) -> str:
    """The canonical spatial type of ``name`` (XML function names and aliases accepted)."""
    t = ALIASES.get(name, name)
    if t not in SPATIAL_PARAMS:
        raise ModelError(f"unknown spatial model {name!r}; known: "
                         f"{', '.join(sorted(set(SPATIAL_PARAMS) | set(ALIASES)))}")
    return t


def default_params(kind: str) -> tuple[Parameter, ...]:
    return SPATIAL_PARAMS[spatial_type(kind)]


def width_to_param(kind: str, width_deg: float) -> tuple[str, float]:
    """(parameter name, value) for a 68% containment radius ``width_deg``."""
    kind = spatial_type(kind)
    if kind == "RadialGaussian":
        return "Sigma", width_deg / GAUSS_R68
    if kind == "RadialDisk":
        return "Radius", width_deg / DISK_R68
    raise ModelError(f"SpatialWidth applies to RadialGaussian and RadialDisk, not {kind}")


def param_to_width(kind: str, value_deg: float) -> float:
    kind = spatial_type(kind)
    if kind == "RadialGaussian":
        return value_deg * GAUSS_R68
    if kind == "RadialDisk":
        return value_deg * DISK_R68
    return 0.0
