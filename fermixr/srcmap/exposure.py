"""Exposure providers for the convolved source maps: callables ``f(ra, dec) -> (nE, n)``
[cm2 s] at the energy nodes, for 1-D arrays of ICRS directions (deg).

* :func:`ltcube_exposure`: computed at each direction from the livetime cube (gtexpcube2's
  calculation, :func:`fermixr.exposure.expcube.exposure_at`) -- the accurate choice.
* :func:`cube_exposure`: looked up in a precomputed exposure cube on a WCS grid (the
  ``exposure`` product or a gtexpcube2 file), ``method``:

  - ``"nearest"``: the pixel holding the direction;
  - ``"linear"``: bilinear interpolation between pixel centres;
  - ``"st"``: the Science Tools' ``BinnedExposure::operator()``: pixel index
    ``int(x - 1)``, ``int(y - 1)`` of the 1-based FITS pixel coordinates, i.e. truncation
    instead of rounding (the pixel whose centre is up to one pixel *below* the direction),
    clamped at the edges.  gtsrcmaps reads diffuse-source exposure this way.

  Outside the cube the edge values are used (clamped).
"""

from __future__ import annotations

import numpy as np

from ..errors import GeometryError
from ..geom.frames import transform
from ..geom.wcs import WcsGeom

__all__ = ["ltcube_exposure", "cube_exposure", "constant_exposure"]


def ltcube_exposure(ltcube, irfs, energies, *, efficiency: bool = True, caldb=None, evtype=3):
    """Exposure from a livetime-cube Dataset and IRFs (an IRFSet or a name) at ``energies``
    (MeV)."""
    from ..exposure.expcube import exposure_at

    e = np.asarray(energies, dtype=np.float64).ravel()

    def fn(ra, dec):
        kw = {"efficiency": efficiency}
        if isinstance(irfs, str):
            kw.update(caldb=caldb, evtype=evtype)
        return exposure_at(ltcube, irfs, np.asarray(ra, float).ravel(),
                           np.asarray(dec, float).ravel(), e, **kw)

    return fn


def constant_exposure(values):
    """The same exposure (nE,) everywhere."""
    v = np.asarray(values, dtype=np.float64).ravel()

    def fn(ra, dec):
        return np.broadcast_to(v[:, None], (v.size, np.asarray(ra).size))

    return fn


def cube_exposure(cube, geom: WcsGeom, method: str = "linear"):
    """Exposure looked up in ``cube`` (nE, ny, nx) [cm2 s] on the WCS grid ``geom``."""
    c = np.asarray(cube, dtype=np.float64)
    if not isinstance(geom, WcsGeom):
        raise GeometryError(f"cube_exposure: geom must be a WcsGeom, got {geom!r}")
    if c.ndim != 3 or c.shape[1:] != geom.shape:
        raise GeometryError(f"exposure cube shape {c.shape} does not match the grid "
                            f"(nE,) + {geom.shape}")
    if method not in ("nearest", "linear", "st"):
        raise GeometryError(f"cube_exposure: method must be 'nearest', 'linear' or 'st', got {method!r}")
    ny, nx = geom.shape

    def fn(ra, dec):
        lon, lat = transform(np.asarray(ra, float).ravel(), np.asarray(dec, float).ravel(),
                             "CEL", geom.frame)
        x, y = geom.world_to_pix(lon, lat)     # 0-based
        x = np.where(np.isfinite(x), x, -1e9)
        y = np.where(np.isfinite(y), y, -1e9)
        if method == "linear":
            xc = np.clip(x, 0, nx - 1)
            yc = np.clip(y, 0, ny - 1)
            i0 = np.clip(np.floor(xc).astype(np.int64), 0, max(nx - 2, 0))
            j0 = np.clip(np.floor(yc).astype(np.int64), 0, max(ny - 2, 0))
            i1 = np.minimum(i0 + 1, nx - 1)
            j1 = np.minimum(j0 + 1, ny - 1)
            tx = xc - i0
            ty = yc - j0
            return ((1 - tx) * (1 - ty) * c[:, j0, i0] + tx * (1 - ty) * c[:, j0, i1]
                    + (1 - tx) * ty * c[:, j1, i0] + tx * ty * c[:, j1, i1])
        if method == "nearest":
            i = np.floor(x + 0.5)
            j = np.floor(y + 0.5)
        else:  # st: int(X - 1) with X = x + 1 the FITS coordinate (truncation toward 0)
            i = np.trunc(x)
            j = np.trunc(y)
        i = np.clip(i, 0, nx - 1).astype(np.int64)
        j = np.clip(j, 0, ny - 1).astype(np.int64)
        return c[:, j, i]

    return fn
