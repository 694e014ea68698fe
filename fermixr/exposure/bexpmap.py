"""Exposure from a precomputed all-sky exposure cube (``gtlike.bexpmap``: a gtexpcube2
output), resampled onto the analysis geometry.

As the Science Tools read a binned exposure map: the value at a sky direction is the
bilinear interpolation of the four surrounding pixel centres (in the map's pixel grid),
and between energy planes the exposure is interpolated linearly in log(exposure) versus
log(energy).  Energies outside the map's planes are an error, not an extrapolation.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..conventions import DIM_ENERGY_TRUE, UNIT_ENERGY, UNIT_EXPOSURE
from ..errors import FileFormatError, GeometryError, InputFileError
from ..geom.coords import geom_attrs, geom_coords, sky_dims
from ..geom.frames import transform
from ..geom.wcs import WcsGeom
from ..io.headers import numeric_header


def read_bexpmap(path):
    """(WcsGeom of the map, energies MeV, cube (n_energy, ny, nx) cm2 s) of a gtexpcube2
    WCS file."""
    from astropy.io import fits

    try:
        hl = fits.open(path)
    except FileNotFoundError:
        raise InputFileError(f"gtlike.bexpmap: file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise FileFormatError(f"gtlike.bexpmap: cannot read {str(path)!r}: {exc}") from None
    with hl:
        if "ENERGIES" not in hl or hl[0].data is None or hl[0].data.ndim != 3:
            raise FileFormatError(
                f"gtlike.bexpmap {str(path)!r} is not a gtexpcube2 exposure cube: expected a "
                "3-D primary image (energy, lat, lon) and an ENERGIES table"
            )
        cube = np.asarray(hl[0].data, dtype=np.float64)
        energies = np.asarray(hl["ENERGIES"].data.field(0), dtype=np.float64)
        geom = WcsGeom.from_header(numeric_header(hl[0].header, path, hdu="PRIMARY"))
    if cube.shape[0] != energies.size:
        raise FileFormatError(
            f"gtlike.bexpmap {str(path)!r}: {cube.shape[0]} planes but {energies.size} energies"
        )
    return geom, energies, cube


def _bilinear(cube, px, py):
    """Bilinear interpolation of every plane of ``cube`` at 0-based pixel coordinates."""
    ny, nx = cube.shape[1:]
    x0 = np.clip(np.floor(px).astype(int), 0, nx - 2)
    y0 = np.clip(np.floor(py).astype(int), 0, ny - 2)
    fx = np.clip(px - x0, 0.0, 1.0)
    fy = np.clip(py - y0, 0.0, 1.0)
    return (cube[:, y0, x0] * (1 - fx) * (1 - fy) + cube[:, y0, x0 + 1] * fx * (1 - fy)
            + cube[:, y0 + 1, x0] * (1 - fx) * fy + cube[:, y0 + 1, x0 + 1] * fx * fy)


def _loglog(e_nodes, values, energies):
    le = np.log(e_nodes)
    out = np.empty((energies.size, values.shape[1]))
    for i, e in enumerate(np.log(energies)):
        j = int(np.clip(np.searchsorted(le, e) - 1, 0, le.size - 2))
        w = (e - le[j]) / (le[j + 1] - le[j])
        a, b = values[j], values[j + 1]
        pos = (a > 0) & (b > 0)
        out[i] = np.where(pos, np.exp(np.log(np.where(pos, a, 1)) * (1 - w)
                                      + np.log(np.where(pos, b, 1)) * w), a * (1 - w) + b * w)
    return out


def exposure_from_bexpmap(path, geom, energies, *, irfs: str, evtype: int) -> xr.Dataset:
    """The ``exposure`` product on ``geom`` at ``energies`` from the all-sky cube ``path``."""
    mgeom, e_nodes, cube = read_bexpmap(path)
    energies = np.asarray(energies, dtype=np.float64).ravel()
    lo, hi = e_nodes.min(), e_nodes.max()
    bad = energies[(energies < lo * (1 - 1e-9)) | (energies > hi * (1 + 1e-9))]
    if bad.size:
        raise GeometryError(
            f"gtlike.bexpmap {str(path)!r} covers {lo:g}-{hi:g} MeV; the analysis needs "
            f"exposure at {bad.min():g}-{bad.max():g} MeV"
        )
    lon, lat = geom.pixel_centers()
    mlon, mlat = transform(np.ravel(lon), np.ravel(lat), geom.frame, mgeom.frame)
    px, py = mgeom.wcs.world_to_pixel_values(mlon, mlat)
    px, py = np.asarray(px, float), np.asarray(py, float)
    if not np.all(np.isfinite(px) & np.isfinite(py)):
        raise GeometryError(f"gtlike.bexpmap {str(path)!r} does not cover the analysis region")
    vals = _loglog(e_nodes, _bilinear(cube, px, py), np.clip(energies, lo, hi))
    dims = (DIM_ENERGY_TRUE,) + sky_dims(geom)
    coords = dict(geom_coords(geom))
    coords[DIM_ENERGY_TRUE] = ((DIM_ENERGY_TRUE,), energies, {"units": UNIT_ENERGY})
    attrs = dict(geom_attrs(geom))
    attrs.update({"fermixr_product": "exposure", "irfs": str(irfs), "evtype": int(evtype),
                  "source_file": str(path)})
    return xr.Dataset({"exposure": (dims, vals.reshape((energies.size,) + tuple(geom.shape)),
                                    {"units": UNIT_EXPOSURE})}, coords=coords, attrs=attrs)
