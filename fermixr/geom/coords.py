"""Geometry <-> xarray labels.

WCS products have dims (``energy``, ``y``, ``x``) with 2-D coords ``lon``/``lat`` [deg] in
the geometry frame; HEALPix products have dims (``energy``, ``pix``) with coords ``pix``
(HEALPix index), ``lon``, ``lat``.  ``attrs["geom"]`` holds the canonical geometry dict and,
for WCS, ``attrs["wcs_header"]`` the FITS cards; an energy axis adds ``energy``,
``energy_min``, ``energy_max`` [MeV] on dim ``energy``.
"""

from __future__ import annotations

import numpy as np

from ..conventions import ATTR_GEOM, DIM_PIX, DIM_X, DIM_Y, UNIT_ANGLE
from ..errors import GeometryError
from .axes import EnergyAxis
from .hpx import HpxGeom
from .wcs import WcsGeom


def geom_from_dict(d: dict):
    """WcsGeom or HpxGeom from its ``to_dict()``."""
    if not isinstance(d, dict):
        raise GeometryError(f"geometry must be a dict, got {type(d).__name__}")
    kind = d.get("type")
    if kind == "wcs":
        return WcsGeom.from_dict(d)
    if kind == "hpx":
        return HpxGeom.from_dict(d)
    raise GeometryError(f"unknown geometry type {kind!r}: expected 'wcs' or 'hpx'")


def geom_from_config(binning: dict, center_radec):
    """WCS or HEALPix geometry from Fermipy ``binning`` options (``projtype`` WCS/HPX)."""
    projtype = str((binning or {}).get("projtype") or "WCS").upper()
    if projtype == "WCS":
        return WcsGeom.from_config(binning, center_radec)
    if projtype in ("HPX", "HEALPIX"):
        return HpxGeom.from_config(binning, center_radec)
    raise GeometryError(f"binning.projtype must be 'WCS' or 'HPX', got {projtype!r}")


def sky_dims(geom) -> tuple[str, ...]:
    """Spatial dims of a geometry: ('y', 'x') or ('pix',)."""
    if isinstance(geom, WcsGeom):
        return (DIM_Y, DIM_X)
    if isinstance(geom, HpxGeom):
        return (DIM_PIX,)
    raise GeometryError(f"not a sky geometry: {geom!r}")


def geom_coords(geom, energy_axis: EnergyAxis | None = None) -> dict:
    """Coordinates for a product on ``geom`` (and ``energy_axis``), as a dict of
    (dims, values, attrs) tuples for ``xr.Dataset(coords=...)``."""
    deg = {"units": UNIT_ANGLE, "frame": geom.frame}
    if isinstance(geom, WcsGeom):
        lon, lat = geom.pixel_centers()
        coords = {
            "lon": ((DIM_Y, DIM_X), lon, dict(deg)),
            "lat": ((DIM_Y, DIM_X), lat, dict(deg)),
        }
    elif isinstance(geom, HpxGeom):
        lon, lat = geom.pixel_centers()
        coords = {
            DIM_PIX: ((DIM_PIX,), np.array(geom.pix), {"long_name": "HEALPix index",
                                                       "ordering": geom.ordering,
                                                       "nside": geom.nside}),
            "lon": ((DIM_PIX,), lon, dict(deg)),
            "lat": ((DIM_PIX,), lat, dict(deg)),
        }
    else:
        raise GeometryError(f"not a sky geometry: {geom!r}")
    if energy_axis is not None:
        coords.update(energy_axis.to_coords())
    return coords


def geom_attrs(geom) -> dict:
    """Dataset attrs describing ``geom``: ``geom`` (canonical dict) and, for WCS,
    ``wcs_header`` (FITS cards)."""
    attrs = {ATTR_GEOM: geom.to_dict()}
    if isinstance(geom, WcsGeom):
        attrs["wcs_header"] = geom.to_header()
    return attrs


def geom_from_attrs(attrs) -> "WcsGeom | HpxGeom":
    """Geometry of a dataset from its attrs (``geom`` dict, else ``wcs_header``).
    Accepts a Dataset/DataArray too."""
    a = getattr(attrs, "attrs", attrs)
    d = a.get(ATTR_GEOM) if hasattr(a, "get") else None
    if isinstance(d, str):
        import json

        d = json.loads(d)
    if d:
        return geom_from_dict(dict(d))
    hdr = a.get("wcs_header") if hasattr(a, "get") else None
    if hdr:
        return WcsGeom.from_header(dict(hdr))
    raise GeometryError("dataset attrs hold no 'geom' (or 'wcs_header') to rebuild the geometry from")


def energy_axis_from_dataset(ds, name: str = "energy") -> EnergyAxis:
    """Energy axis of a dataset (from ``energy_min``/``energy_max`` coords)."""
    return EnergyAxis.from_coords(ds, name=name)
