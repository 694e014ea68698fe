"""Extended-source maps: RadialGaussian, RadialDisk, spatial templates and callables.

Radial models (``("RadialGaussian", sigma)``, ``("RadialDisk", radius)``, deg) are handled
as Fermipy does (``make_cgauss_kernel`` / ``make_cdisk_kernel``): the profile, normalised to
1, is convolved with the PSF into a radial table g(E, r) (sr^-1) that then goes through the
point-source pixel integration (:func:`fermixr.srcmap.point.radial_source_map`) with the
exposure at the source centre.  The convolution of two radial functions is a 1-D sum
(:func:`ring_convolve`: the profile's ring average in closed form, on radii a tenth of
min(width, r68(E)) apart, a fortieth for the disk's sharp edge);
g is carried to the output offsets as the ratio g/PSF
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

_RADIAL = {"radialgaussian": "gauss", "gaussian": "gauss", "gauss": "gauss",
           "radialdisk": "disk", "disk": "disk"}


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


_N_MAX = 8000       # most radial nodes of the convolution per energy


def ring_convolve(kind: str, width: float, r, p) -> np.ndarray:
    """The radial profile ``kind`` of ``width`` (deg: Gaussian sigma or disk radius)
    convolved with the radial function ``p`` (sr^-1) given on the uniform radii ``r``
    (deg, from 0), at those radii:

        g(r_i) = sum_j p(r_j) r_j dr K(r_i, r_j),   K(r, r') = int_0^2pi S(|r - r'|) dphi,

    the ring average of the profile S in closed form (Gaussian: exp(-(r - r')^2 / 2 s^2)
    I0e(r r' / s^2) / s^2; disk: 2 arccos((r^2 + r'^2 - R^2) / 2 r r') / (pi R^2)), summed
    over the band of r' where K is not negligible.  A profile narrower than two radial
    steps leaves ``p`` as it is (the point-source limit)."""
    from scipy.special import i0e

    k = _kind(kind)
    rr = np.radians(np.asarray(r, dtype=np.float64))
    p = np.asarray(p, dtype=np.float64)
    n = rr.size
    h = rr[1] - rr[0]
    s = math.radians(float(width))
    c = np.ones(n)
    if k == "gauss":
        # Simpson's weights in r' (the integrand p r' K vanishes at r' = 0 but not its
        # slope: the trapezoid's error would be ~ (h / s)^2 / 12); an even count ends on a
        # trapezoid.  The disk's kernel has square-root edges: the trapezoid.
        m = n if n % 2 == 1 else n - 1
        c[1:m - 1:2], c[2:m - 1:2] = 4.0, 2.0
        c[:m] /= 3.0
        if m < n:
            c[m - 1] = 1.0 / 3.0 + 0.5
            c[n - 1] = 0.5
    else:
        c[-1] = 0.5
    wts = p * rr * h * c
    if s < 2.0 * h:
        return p.copy()
    if k == "gauss":
        band = int(math.ceil(7.0 * s / h))
    else:
        band = int(math.ceil(s / h)) + 1
    g = np.zeros(n)
    idx = np.arange(n)
    for d in range(-min(band, n - 1), min(band, n - 1) + 1):
        i = idx[max(0, -d):n - max(0, d)]
        j = i + d
        ri, rj = rr[i], rr[j]
        if k == "gauss":
            kern = np.exp(-0.5 * ((ri - rj) / s) ** 2) * i0e(ri * rj / (s * s)) / (s * s)
        else:
            prod = 2.0 * ri * rj
            with np.errstate(divide="ignore", invalid="ignore"):
                c = np.where(prod > 0, (ri * ri + rj * rj - s * s) / prod,
                             np.where(np.maximum(ri, rj) < s, -1.0, 1.0))
            kern = 2.0 * np.arccos(np.clip(c, -1.0, 1.0)) / (math.pi * s * s)
        g[i] += kern * wts[j]
    if k == "disk":
        # at the centre the ring average is a step at r' = R: integrate p up to R exactly
        # (trapezoid, the last partial step interpolated) instead of summing the step
        cum = np.concatenate(([0.0], np.cumsum(0.5 * (p[1:] * rr[1:] + p[:-1] * rr[:-1])
                                               * np.diff(rr))))
        g[0] = 2.0 * float(np.interp(s, rr, cum)) / (s * s)
    return g


def _row_at(table: RadialTable, e: int, r_deg) -> np.ndarray:
    """Row ``e`` of ``table`` at ``r_deg``, as the kernel ``interp_radial`` interpolates
    (log-log between positive nodes, else linear, 0 beyond the last node), in numpy: one
    short serial call per energy (the parallel kernel's start-up dominates at this size)."""
    off, logoff = table.off_rad, table.logoff
    val, logval = table.values[e], table.logval[e]
    r = np.radians(np.asarray(r_deg, dtype=np.float64))
    n = off.size
    i = np.clip(np.searchsorted(off, r, side="right") - 1, 0, n - 2)
    v0, v1 = val[i], val[i + 1]
    loglog = (off[i] > 0) & (v0 > 0) & (v1 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tl = (np.log(r) - logoff[i]) / (logoff[i + 1] - logoff[i])
        vlog = np.exp(logval[i] + tl * (logval[i + 1] - logval[i]))
    t = (r - off[i]) / (off[i + 1] - off[i])
    out = np.where(loglog, vlog, v0 + t * (v1 - v0))
    return np.where((r >= 0) & (r <= off[-1]), out, 0.0)


def convolved_radial_table(kind: str, width: float, psf_offsets, psf_values, *,
                           n_out: int = 512):
    """(offsets (n,) deg, values (nE, n) sr^-1): the profile ``kind`` of ``width`` (deg:
    Gaussian sigma or disk radius) convolved with the PSF table (:func:`ring_convolve`
    on radii a tenth (disk: a
    fortieth) of min(width, r68(E)) apart, at least r68 / 40 (disk: / 400)), normalised to 1."""
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
        # radial step, deg: a tenth of the narrower of profile and PSF (the disk's ring
        # average has a square-root edge: a fortieth), no finer than the PSF needs
        if k == "gauss":
            h = max(min(width, r68[e]) / 10.0, r68[e] / 40.0)
        else:
            h = max(min(width, r68[e]) / 40.0, r68[e] / 400.0)
        n = int(math.ceil(R / h))
        if n > _N_MAX:
            n, h = _N_MAX, R / _N_MAX
        r_lin = np.arange(n + 1) * h
        p_lin = _row_at(table, e, r_lin)
        g = ring_convolve(k, width, r_lin, p_lin)
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
