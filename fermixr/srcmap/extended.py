"""Extended-source maps: RadialGaussian, RadialDisk, spatial templates and callables.

Radial models (``("RadialGaussian", sigma)``, ``("RadialDisk", radius)``, deg) are handled
as Fermipy does (``make_cgauss_kernel`` / ``make_cdisk_kernel``): the profile, normalised to
1, is convolved with the PSF into a radial table g(E, r) (sr^-1) that then goes through the
point-source pixel integration (:func:`fermixr.srcmap.point.radial_source_map`) with the
exposure at the source centre.  The convolution is a 2-D FFT on a flat grid centred on the
profile (pixel = min(width, r68(E)) / 10, no coarser than (width extent + r99.5(E)) / 256);
g is taken along the grid's central row and carried to the output offsets as the ratio g/PSF
(smooth, and exactly 1 for a vanishing width, so width -> 0 gives the point-source map);
beyond the grid g is the PSF tail.  The table is renormalised to the PSF table's own integral (1 up to the part beyond its
last offset).  Flat-sky
approximation: fine for widths up to a few deg.

Templates (``(array (ny, nx), WcsGeom)`` in sr^-1, normalised here to 1 over the sphere) and
callables ``f(ra, dec) -> sr^-1`` go through :func:`fermixr.srcmap.convolve.convolved_map`
(oversampled, padded grid, FFT with the PSF kernel), with an exposure callable or constant.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError
from ..geom.wcs import WcsGeom
from .convolve import convolved_map
from .point import radial_source_map
from .tables import RadialTable, as_energy_vector, check_energies

__all__ = ["extended_source_map", "convolved_radial_table", "radial_intensity"]

_RADIAL = {"radialgaussian": "gauss", "gaussian": "gauss", "radialdisk": "disk", "disk": "disk"}


def _kind(name):
    k = _RADIAL.get(str(name).replace("_", "").lower())
    if k is None:
        raise GeometryError(f"unknown radial model {name!r}; known: RadialGaussian, RadialDisk")
    return k


def radial_intensity(kind: str, width: float, r_deg) -> np.ndarray:
    """Profile intensity (sr^-1) at ``r_deg`` normalised to 1 over the sphere (flat-sky
    normalisation): Gaussian exp(-r^2 / 2 sigma^2) / (2 pi sigma^2), disk 1 / (pi R^2)."""
    k = _kind(kind)
    w = math.radians(float(width))
    r = np.radians(np.asarray(r_deg, dtype=np.float64))
    if k == "gauss":
        return np.exp(-0.5 * (r / w) ** 2) / (2 * math.pi * w * w)
    return np.where(r <= w, 1.0 / (math.pi * w * w), 0.0)


def _profile_grid(kind, width, x):
    """Pixel probabilities (sum 1) of the profile on the flat grid with centres ``x`` (deg)."""
    d = x[1] - x[0]
    if kind == "gauss":
        from scipy.special import erf

        s = math.sqrt(2.0) * width
        edges = np.concatenate((x - 0.5 * d, x[-1:] + 0.5 * d))
        p1 = np.diff(0.5 * erf(edges / s))
        g = p1[:, None] * p1[None, :]
    else:
        rr = np.hypot(x[:, None], x[None, :])
        g = np.clip((width - rr) / d + 0.5, 0.0, 1.0)   # anti-aliased edge
        if g.sum() == 0:
            g[x.size // 2, x.size // 2] = 1.0
    return g / g.sum()


def convolved_radial_table(kind: str, width: float, psf_offsets, psf_values, *,
                           max_half: int = 256, n_out: int = 512):
    """(offsets (n,) deg, values (nE, n) sr^-1): the profile ``kind`` of ``width`` (deg:
    Gaussian sigma or disk radius) convolved with the PSF table, normalised to 1."""
    from scipy.signal import fftconvolve

    k = _kind(kind)
    width = float(width)
    if not (width > 0 and math.isfinite(width)):
        raise GeometryError(f"{kind}: width must be > 0 deg, got {width!r}")
    table = RadialTable(psf_offsets, psf_values, None, "psf")
    r68 = table.containment(0.68)
    r995 = table.containment(0.995)
    ext = 5.0 * width if k == "gauss" else width
    rmax_all = float(np.max(ext + r995))
    out_off = np.union1d(table.offsets, np.linspace(0.0, rmax_all, n_out))
    psf_out = table.at(out_off)
    vals = np.empty((table.n_energy, out_off.size))
    for e in range(table.n_energy):
        R = ext + r995[e]
        delta = max(min(width, r68[e]) / 10.0, R / max_half)
        M = int(math.ceil(R / delta))
        x = np.arange(-M, M + 1) * delta
        src = _profile_grid(k, width, x)
        rr = np.hypot(x[:, None], x[None, :])
        drad = math.radians(delta)
        one = RadialTable(table.offsets, table.values[e:e + 1], 1)
        psf_grid = one.at(rr.ravel()).reshape(rr.shape) * drad * drad
        conv = fftconvolve(src, psf_grid, mode="same")
        g = np.maximum(conv[M, M:] / (drad * drad), 0.0)       # r_i = i * delta
        r_lin = np.arange(M + 1) * delta
        p_lin = one.at(r_lin)[0]
        inside = out_off <= r_lin[-1]
        v = psf_out[e].copy()                                    # tail: the PSF
        pos = (p_lin > 0) & (g > 0)
        if pos.sum() >= 2:
            lq = np.interp(out_off[inside], r_lin[pos], np.log(g[pos] / p_lin[pos]))
            vi = np.exp(lq) * psf_out[e][inside]
            direct = np.interp(out_off[inside], r_lin, g)
            v[inside] = np.where(psf_out[e][inside] > 0, vi, direct)
        else:
            v[inside] = np.interp(out_off[inside], r_lin, g)
        vals[e] = v
    # keep the PSF table's own normalisation (1 up to what lies beyond its last offset)
    target = RadialTable(out_off, psf_out, None, "psf").integral()
    norm = RadialTable(out_off, vals, None, "convolved profile").integral()
    vals = vals * (target / np.where(norm > 0, norm, 1.0))[:, None]
    return out_off, vals


def extended_source_map(geom, energies, spatial, exposure, psf_offsets, psf_values, *,
                        ra=None, dec=None, rfactor: float = 2, oversample: int = 2,
                        **kw) -> np.ndarray:
    """Source map (nE, ny, nx) or (nE, npix) [cm2 s] of an extended source.

    ``spatial``: ``("RadialGaussian", sigma_deg)`` or ``("RadialDisk", radius_deg)`` (give
    ``ra``, ``dec`` of the centre, deg ICRS), a template ``(array (ny, nx), WcsGeom)`` of
    intensities (normalised here to 1 over the sphere), or a callable
    ``f(ra, dec) -> sr^-1`` (used as is).  ``exposure``: (nE,) at the source (radial
    models; a callable is evaluated at the centre) or a callable ``f(ra, dec) -> (nE, n)``
    (templates/callables; a vector is used as a constant).  Further keywords go to
    :func:`fermixr.srcmap.convolve.convolved_map` (``pad``, ``kernel_radius`` ...).
    """
    e = check_energies(energies)
    if isinstance(spatial, (tuple, list)) and len(spatial) == 2 and isinstance(spatial[0], str):
        if ra is None or dec is None:
            raise GeometryError(f"{spatial[0]}: give ra and dec of the source centre (deg)")
        if callable(exposure):
            expo = np.asarray(exposure(np.array([float(ra)]), np.array([float(dec)])),
                              dtype=np.float64).reshape(-1)
        else:
            expo = exposure
        expo = as_energy_vector(expo, e.size, "exposure")
        off, vals = convolved_radial_table(spatial[0], spatial[1], psf_offsets, psf_values)
        table = RadialTable(off, vals, e.size, "convolved profile")
        prof = radial_source_map(geom, ra, dec, table, rfactor=rfactor)
        return prof * expo.reshape((e.size,) + (1,) * (prof.ndim - 1))
    from .diffuse import _exposure_callable, mapcube_intensity

    if callable(spatial):
        intensity = spatial
    else:
        try:
            arr, tgeom = spatial
        except (TypeError, ValueError):
            raise GeometryError("spatial must be (model name, width), (array, WcsGeom) or a "
                                "callable f(ra, dec) -> sr^-1") from None
        if not isinstance(tgeom, WcsGeom):
            raise GeometryError(f"template geometry must be a WcsGeom, got {tgeom!r}")
        a = np.asarray(arr, dtype=np.float64)
        if a.shape != tgeom.shape:
            raise GeometryError(f"template shape {a.shape} does not match its grid {tgeom.shape}")
        tot = float(np.sum(a * tgeom.solid_angle("exact")))
        if not tot > 0:
            raise GeometryError("template integrates to <= 0 over the sphere")
        one = mapcube_intensity((a / tot)[None], tgeom, [1.0], [1.0])

        def intensity(r, d):
            return one(r, d)[0]
    kw.setdefault("oversample", oversample)
    kw.setdefault("rfactor", rfactor)
    return convolved_map(geom, e, intensity, _exposure_callable(exposure, e.size),
                         psf_offsets, psf_values, **kw)
