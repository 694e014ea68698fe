"""Intensity map cubes (MapCubeFunction: Galactic diffuse models) and 2-D spatial templates
(SpatialMap) from FITS files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError
from .headers import numeric_header


def _open(path, what):
    from astropy.io import fits

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{what}: file {str(p)!r} does not exist")
    try:
        return fits.open(p)
    except OSError as exc:
        raise FileFormatError(f"{what}: cannot read {str(p)!r} as FITS: {exc}") from None


def read_mapcube(path, what: str = "MapCubeFunction"):
    """(cube (nE, ny, nx) [ph cm-2 s-1 MeV-1 sr-1], WcsGeom, energies MeV) of a map cube:
    primary image plus an ``ENERGIES`` table, as the Galactic diffuse model files."""
    from ..geom.wcs import WcsGeom

    with _open(path, what) as h:
        if h[0].data is None:
            raise FileFormatError(f"{what}: {str(path)!r} has no image in its primary HDU")
        data = np.asarray(h[0].data, dtype=np.float64)
        geom = WcsGeom.from_header(numeric_header(h[0].header, path, hdu="PRIMARY"))
        if "ENERGIES" not in h:
            raise FileFormatError(
                f"{what}: {str(path)!r} has no ENERGIES extension (expected a map cube)")
        energies = np.asarray(h["ENERGIES"].data.field(0), dtype=np.float64)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape[0] != energies.size:
        raise FileFormatError(f"{what}: {str(path)!r} has {data.shape} image planes but "
                              f"{energies.size} ENERGIES rows")
    return data, geom, energies


def read_template(path, what: str = "SpatialMap"):
    """(image (ny, nx), WcsGeom) of a 2-D spatial template (a 3-D file's first plane)."""
    from ..geom.wcs import WcsGeom

    with _open(path, what) as h:
        hdu = next((x for x in h if x.data is not None and getattr(x, "is_image", False)), None)
        if hdu is None:
            raise FileFormatError(f"{what}: {str(path)!r} holds no image")
        data = np.asarray(hdu.data, dtype=np.float64)
        geom = WcsGeom.from_header(numeric_header(hdu.header, path, hdu=hdu.name))
    if data.ndim == 3:
        data = data[0]
    if data.ndim != 2:
        raise FileFormatError(f"{what}: {str(path)!r}: expected a 2-D image, got {data.shape}")
    return data, geom


def template_reference(path):
    """(CRVAL1, CRVAL2, CTYPE1) of a spatial template's primary header (Fermipy takes a
    SpatialMap's position from them); None when the file cannot be read or lacks them."""
    from astropy.io import fits

    try:
        h = fits.getheader(path)
        lon, lat = float(h["CRVAL1"]), float(h["CRVAL2"])
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return lon, lat, str(h.get("CTYPE1", ""))
