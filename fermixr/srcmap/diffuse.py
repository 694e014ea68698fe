"""Diffuse-source maps: the isotropic background (ConstantValue / DiffuseIsotropic) and
map cubes (MapCubeFunction), PSF-convolved with spill-in from a padded border.

The spectrum is not in the map (a FileFunction or the cube's own spectrum is applied by the
likelihood): the isotropic map is for an intensity of 1 sr^-1, the map cube's for its
intensity x ``norm``.  What gtsrcmaps does (``SourceMap::makeDiffuseMap_wcs``, Science Tools
10/11), and how it is followed here:

* the computation grid is the counts-map grid split ``rfactor`` = 2 times per axis and padded
  to 10 deg beyond the map corners (here ``pad``, 10 deg beyond the edges by default);
* intensity at the fine pixel centres (map cubes: bilinear in space, power law between the
  cube's energy planes) x exposure at the same centres; gtsrcmaps takes the exposure from
  the binned exposure cube with its truncating lookup (:func:`~fermixr.srcmap.exposure.
  cube_exposure` ``method="st"``), fermixr by default computes it at each centre;
* FFT convolution with a PSF image normalised to a sum of 1 (the mean PSF at the ROI centre);
* the mean over the fine pixels of a counts-map pixel times that pixel's solid angle
  (``solid_angle="st"`` uses the Science Tools' pixel solid angles).

The result agrees with ``srcmap.fits.gz`` of the shared Crab day (tests/test_srcmap_reference.py).
"""

from __future__ import annotations

import numpy as np

from ..errors import GeometryError
from ..geom.frames import transform
from ..geom.wcs import WcsGeom
from .convolve import convolved_map
from .tables import check_energies

__all__ = ["isotropic_map", "mapcube_map", "mapcube_intensity"]


def _exposure_callable(exposure, n_energy):
    if callable(exposure):
        return exposure
    from .exposure import constant_exposure

    v = np.asarray(exposure, dtype=np.float64)
    if v.ndim <= 1:
        return constant_exposure(np.broadcast_to(v, (n_energy,)))
    raise GeometryError("exposure must be a callable f(ra, dec) -> (nE, n) cm2 s (see "
                        "fermixr.srcmap.exposure) or a per-energy vector (nE,)")


def isotropic_map(geom, energies, exposure, psf_offsets, psf_values, *, value: float = 1.0,
                  **kw) -> np.ndarray:
    """Source map of an isotropic intensity ``value`` (sr^-1): (nE, ny, nx) or (nE, npix)
    [cm2 s].  ``exposure``: callable ``f(ra, dec) -> (nE, n)`` or (nE,) constant.
    Keywords go to :func:`fermixr.srcmap.convolve.convolved_map` (``oversample``, ``pad``,
    ``kernel_radius``, ``solid_angle``, ``method`` ...)."""
    e = check_energies(energies)
    v = float(value)

    def intensity(ra, dec):
        return np.full(np.asarray(ra).size, v)

    return convolved_map(geom, e, intensity, _exposure_callable(exposure, e.size),
                         psf_offsets, psf_values, **kw)


# --- map cubes -------------------------------------------------------------------------------
# (files are read by fermixr.io.mapcube.read_mapcube)

def mapcube_intensity(cube, cube_geom: WcsGeom, cube_energies, energies, norm: float = 1.0):
    """Callable ``f(ra, dec) -> (nE, n)``: the cube's intensity at ``energies``, bilinear
    between pixel centres (longitude periodic and latitude clamped for all-sky CAR cubes;
    0 outside a partial cube, edge pixels' values in their outer half pixel) and power-law (log-log)
    between energy planes (extrapolated from the end planes)."""
    c = np.asarray(cube, dtype=np.float64)
    ce = np.asarray(cube_energies, dtype=np.float64).ravel()
    e = check_energies(energies)
    if c.ndim != 3 or c.shape[0] != ce.size or c.shape[1:] != cube_geom.shape:
        raise GeometryError(f"map cube shape {c.shape} does not match {ce.size} energies x "
                            f"grid {cube_geom.shape}")
    if ce.size > 1 and np.any(np.diff(ce) <= 0):
        raise GeometryError("map cube energies must be strictly increasing")
    # energy planes needed and weights (log-log)
    if ce.size == 1:
        k0 = np.zeros(e.size, dtype=np.int64)
        w = np.zeros(e.size)
    else:
        k0 = np.clip(np.searchsorted(ce, e, side="right") - 1, 0, ce.size - 2)
        w = np.log(e / ce[k0]) / np.log(ce[k0 + 1] / ce[k0])
    ny, nx = cube_geom.shape
    periodic = abs(round(nx * abs(cube_geom.cdelt[0]))) == 360 and cube_geom.proj == "CAR"
    full_lat = round(ny * abs(cube_geom.cdelt[1])) >= 180 and cube_geom.proj == "CAR"

    def fn(ra, dec):
        lon, lat = transform(np.asarray(ra, float).ravel(), np.asarray(dec, float).ravel(),
                             "CEL", cube_geom.frame)
        x, y = cube_geom.world_to_pix(lon, lat)
        bad = ~(np.isfinite(x) & np.isfinite(y))
        x = np.where(bad, 0.0, x)
        y = np.where(bad, 0.0, y)
        if periodic:
            x = np.mod(x, nx)
            i0 = np.floor(x).astype(np.int64) % nx
            i1 = (i0 + 1) % nx
            tx = x - np.floor(x)
        else:
            bad |= (x < -0.5) | (x > nx - 0.5)
            xc = np.clip(x, 0, nx - 1)
            i0 = np.clip(np.floor(xc).astype(np.int64), 0, max(nx - 2, 0))
            i1 = np.minimum(i0 + 1, nx - 1)
            tx = xc - i0
        if not full_lat:
            bad |= (y < -0.5) | (y > ny - 0.5)
        yc = np.clip(y, 0, ny - 1)
        j0 = np.clip(np.floor(yc).astype(np.int64), 0, max(ny - 2, 0))
        j1 = np.minimum(j0 + 1, ny - 1)
        ty = yc - j0
        planes = np.unique(np.concatenate((k0, np.minimum(k0 + 1, ce.size - 1))))
        vals = {}
        for p in planes:
            cp = c[p]
            v = ((1 - tx) * (1 - ty) * cp[j0, i0] + tx * (1 - ty) * cp[j0, i1]
                 + (1 - tx) * ty * cp[j1, i0] + tx * ty * cp[j1, i1])
            vals[int(p)] = np.where(bad, 0.0, v)
        out = np.empty((e.size, lon.size))
        for k in range(e.size):
            a = vals[int(k0[k])]
            if ce.size == 1:
                out[k] = a
                continue
            b = vals[int(k0[k] + 1)]
            with np.errstate(divide="ignore", invalid="ignore"):
                pl = a * np.exp(w[k] * np.log(b / a))
            lin = a + w[k] * (b - a)   # where a plane is 0: no power law
            out[k] = np.where((a > 0) & (b > 0), pl, np.maximum(lin, 0.0))
        return out * norm

    return fn


def mapcube_map(geom, energies, cube, exposure, psf_offsets, psf_values, *, norm: float = 1.0,
                **kw) -> np.ndarray:
    """Source map of a map cube (MapCubeFunction): (nE, ny, nx) or (nE, npix) [cm2 s].

    ``cube``: a FITS path or a tuple (cube (nEc, ny, nx) [cm^-2 s^-1 MeV^-1 sr^-1],
    WcsGeom, cube energies [MeV]).  The map is per unit of the cube's intensity: the
    likelihood multiplies by the spectral factor (Constant, PowerLaw ...).
    ``exposure`` and keywords as :func:`isotropic_map`.
    """
    e = check_energies(energies)
    if isinstance(cube, (str, bytes)) or hasattr(cube, "__fspath__"):
        from ..io.mapcube import read_mapcube

        cube = read_mapcube(cube)
    try:
        data, cgeom, cen = cube
    except (TypeError, ValueError):
        raise GeometryError("cube must be a FITS path or (cube, WcsGeom, energies)") from None
    intensity = mapcube_intensity(data, cgeom, cen, e, norm=norm)
    return convolved_map(geom, e, intensity, _exposure_callable(exposure, e.size),
                         psf_offsets, psf_values, **kw)
