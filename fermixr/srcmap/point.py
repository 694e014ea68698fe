"""Point-source maps: exposure at the source x the PSF integrated over each pixel.

For a source at (ra, dec) and each true-energy node E_k

    srcmap[k, pix] = exposure(E_k, src) x int_pixel PSF_k(angle(dir, src)) dOmega

in cm2 s (predicted counts per unit dN/dE).  The PSF is a radial table (the exposure-weighted
mean PSF at the source, :func:`fermixr.exposure.psftable.psf_table`), interpolated in log-log
between nodes.  The pixel integral is the pixel solid angle times the mean of the PSF over an
``n x n`` grid of sample points, n chosen per pixel (:func:`~fermixr.srcmap.tables.nsub_rule`):
many samples near the source, where the PSF varies within a pixel, one at the pixel centre
far away.  Summed over a map that contains the PSF this is ``exposure x 1`` (tested to 1%).
Sources outside the map contribute what spills in.  No renormalisation to the map is applied
(gtsrcmaps' "PSF map corrections" rescale the sum inside the map to the PSF integral; with
accurate pixel integration they are not needed).

WCS: sample points come from the bilinear interpolation of the pixel corner vectors (exact for
the pixel's corners, second order inside).  HEALPix: the NESTED children of the pixel at a
finer order are the sample points (equal area, exact).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError
from ..geom.frames import transform
from ..geom.hpx import HpxGeom
from ..geom.wcs import WcsGeom
from .tables import (RadialTable, as_energy_vector, check_energies, nsub_rule, pixel_size_rad,
                     unit_vectors)

__all__ = ["point_source_map", "radial_source_map", "wcs_pixel_vectors"]


def wcs_pixel_vectors(geom: WcsGeom):
    """(centers (ny, nx, 3), corners (ny+1, nx+1, 3)) unit vectors of a WCS grid, in the
    geometry frame (NaN outside the projection)."""
    lon, lat = geom.pixel_centers()
    centers = unit_vectors(lon, lat)
    yc, xc = np.mgrid[0:geom.ny + 1, 0:geom.nx + 1].astype(np.float64) - 0.5
    clon, clat = geom.pix_to_world(xc, yc)
    corners = unit_vectors(clon, clat)
    return np.ascontiguousarray(centers), np.ascontiguousarray(corners)


def point_source_map(geom, energies, ra, dec, exposure_at_src, psf_offsets, psf_values,
                     rfactor: float = 2, nsub_max: int = 64, solid_angle: str = "exact",
                     _pixels=None) -> np.ndarray:
    """Source map of a point source at (``ra``, ``dec``) (deg, ICRS) on ``geom``.

    Parameters
    ----------
    geom : WcsGeom or HpxGeom.
    energies : true-energy nodes (nE,) [MeV] (used for shape checks; the PSF table rows
        and exposures must be at these energies).
    exposure_at_src : (nE,) exposure at the source [cm2 s] (a scalar is broadcast).
    psf_offsets : (noff,) [deg]; psf_values : (nE, noff) [sr^-1], normalised to 1 over the
        sphere (the map sums to exposure x the PSF's integral over the map).
    rfactor : refinement of the pixel integration (sample spacing <= max(d, h) / (8
        rfactor), see :func:`fermixr.srcmap.tables.nsub_rule`); 2 keeps the pixel error
        below ~0.5%.
    nsub_max : cap on samples per pixel axis (WCS) / 2**order (HEALPix).
    solid_angle : WCS pixel solid angles, ``"exact"`` or ``"st"`` (the Science Tools').

    Returns (nE, ny, nx) for WCS or (nE, npix) for HEALPix [cm2 s].
    """
    e = check_energies(energies)
    table = RadialTable(psf_offsets, psf_values, e.size, "psf")
    expo = as_energy_vector(exposure_at_src, e.size, "exposure_at_src")
    prof = radial_source_map(geom, ra, dec, table, rfactor=rfactor, nsub_max=nsub_max,
                             solid_angle=solid_angle, _pixels=_pixels)
    shape = (e.size,) + (1,) * (prof.ndim - 1)
    return prof * expo.reshape(shape)


def radial_source_map(geom, ra, dec, table: RadialTable, rfactor: float = 2,
                      nsub_max: int = 64, solid_angle: str = "exact", _pixels=None) -> np.ndarray:
    """Integral over each pixel of the radial table ``table`` centred on (ra, dec) (deg,
    ICRS): (nE, ny, nx) or (nE, npix), dimensionless (sr^-1 x sr)."""
    ra = float(ra)
    dec = float(dec)
    if not (math.isfinite(ra) and math.isfinite(dec) and -90 <= dec <= 90):
        raise GeometryError(f"source position must be finite (ra, dec) in deg, got ({ra}, {dec})")
    lon, lat = transform(ra, dec, "CEL", geom.frame)
    src = unit_vectors(lon, lat).reshape(3)
    r_core = float(np.radians(np.min(table.containment(0.68))))
    if isinstance(geom, WcsGeom):
        return _wcs(geom, src, table, rfactor, nsub_max, r_core, solid_angle, _pixels)
    if isinstance(geom, HpxGeom):
        return _hpx(geom, src, table, rfactor, nsub_max, r_core)
    raise GeometryError(f"point_source_map: geom must be a WcsGeom or HpxGeom, got {geom!r}")


def _wcs(geom, src, table, rfactor, nsub_max, r_core, solid_angle, pixels):
    from ._kernels import separation, wcs_pixel_mean

    if pixels is None:
        centers, corners = wcs_pixel_vectors(geom)
        omega = geom.solid_angle(solid_angle)
    else:
        centers, corners, omega = pixels
    sep = separation(centers.reshape(-1, 3), src).reshape(geom.shape)
    h = pixel_size_rad(omega)
    nsub = nsub_rule(sep, h, rfactor, r_core, nsub_max)
    mean = wcs_pixel_mean(centers, corners, src, nsub, *table.args())
    return mean * omega[None]


def _hpx(geom, src, table, rfactor, nsub_max, r_core):
    import healpy as hp

    from ._kernels import samples_mean, separation

    nside = geom.nside
    vec = np.ascontiguousarray(np.stack(hp.pix2vec(nside, geom.pix, nest=geom.nest), axis=-1))
    sep = separation(vec, src)
    omega = 4.0 * math.pi / geom.npix_allsky
    h = math.sqrt(omega)
    n = nsub_rule(sep, np.full(sep.shape, h), rfactor, r_core, nsub_max)
    level = np.ceil(np.log2(n)).astype(np.int64)
    level = np.minimum(level, max(0, 29 - int(round(math.log2(nside)))))
    out = np.empty((table.n_energy, geom.npix))
    sel0 = level == 0
    if sel0.any():
        from ._kernels import radial_at

        out[:, sel0] = radial_at(np.ascontiguousarray(sep[sel0]), *table.args())
    nest_pix = geom.pix if geom.nest else np.asarray(hp.ring2nest(nside, geom.pix), dtype=np.int64)
    for m in np.unique(level[~sel0]):
        idx = np.nonzero(level == m)[0]
        nchild = 4 ** int(m)
        children = (nest_pix[idx][:, None] * nchild + np.arange(nchild)[None, :]).ravel()
        cv = np.stack(hp.pix2vec(nside * 2 ** int(m), children, nest=True), axis=-1)
        cv = np.ascontiguousarray(cv.reshape(idx.size, nchild, 3))
        out[:, idx] = samples_mean(cv, src, *table.args())
    return out * omega
