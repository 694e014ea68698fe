"""PSF convolution of intensity x exposure on oversampled, padded grids (diffuse sources,
spatial templates), for WCS and HEALPix geometries.

WCS (:func:`convolved_map_wcs`), as gtsrcmaps does it for diffuse sources:

1. a grid aligned with the analysis grid, each pixel split into ``oversample`` x
   ``oversample`` (gtsrcmaps' ``rfactor``, default 2) and padded by ``pad`` deg on every
   side (gtsrcmaps pads to 10 deg beyond the map corners; default here the PSF's largest
   99.5% radius, at most 15 deg) so that emission outside the map spills in;
2. intensity (sr^-1) x exposure (cm2 s) at the fine pixel centres;
3. FFT convolution (``scipy.signal.fftconvolve``) with the PSF kernel: the PSF integrated
   over fine pixels around a pixel-centred source, out to ``kernel_radius`` deg (default:
   the 99.5% containment radius at each energy), normalised to a sum of 1 (as the Science
   Tools normalise their PSF image);
4. the mean over the fine pixels of each analysis pixel, times its solid angle.

HEALPix (:func:`convolved_map_hpx`): for a region (radius <= 45 deg) the same on a local CAR
grid centred on the region, then each HEALPix pixel takes the mean of the convolved grid
(bilinear) over its NESTED children two orders down, times its solid angle.  For the whole
sky (or larger regions) the convolution is done in spherical harmonics on an all-sky map two
orders finer: ``healpy.smoothing`` with the PSF's Legendre window, then averaged down.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError
from ..geom.frames import transform
from ..geom.hpx import HpxGeom
from ..geom.wcs import WcsGeom
from .point import radial_source_map
from .tables import RadialTable, check_energies

__all__ = ["fine_geom", "psf_kernel", "convolved_map_wcs", "convolved_map_hpx",
           "convolved_map", "psf_beam_window"]


def fine_geom(geom: WcsGeom, oversample: int, pad_pix: int) -> WcsGeom:
    """The grid aligned with ``geom``: pixels split ``oversample`` times per axis and
    ``pad_pix`` fine pixels added on every side."""
    o = int(oversample)
    if o < 1:
        raise GeometryError(f"oversample must be a positive integer, got {oversample!r}")
    c1, c2 = geom.cdelt
    p1, p2 = geom.crpix
    return WcsGeom(geom.center, (o * geom.nx + 2 * pad_pix, o * geom.ny + 2 * pad_pix),
                   proj=geom.proj, frame=geom.frame, rotation=geom.rotation,
                   cdelt=(c1 / o, c2 / o),
                   crpix=(o * (p1 - 0.5) + 0.5 + pad_pix, o * (p2 - 0.5) + 0.5 + pad_pix))


def psf_kernel(geom: WcsGeom, table: RadialTable, radius_deg: float, rfactor: float = 2,
               normalize: bool = True) -> np.ndarray:
    """PSF kernel (nE, 2K+1, 2K+1) on ``geom``'s pixel grid around its reference point:
    the PSF integrated over pixels of a local grid with ``geom``'s projection and pixel size
    centred on the reference direction, K = ceil(radius / pixel size).  ``normalize``
    scales each plane to a sum of 1."""
    bx, by = abs(geom.cdelt[0]), abs(geom.cdelt[1])
    kx = int(math.ceil(radius_deg / bx))
    ky = int(math.ceil(radius_deg / by))
    kg = WcsGeom(geom.center, (2 * kx + 1, 2 * ky + 1), proj=geom.proj, frame=geom.frame,
                 cdelt=geom.cdelt, rotation=geom.rotation)
    ra, dec = transform(*geom.center, geom.frame, "CEL")
    k = radial_source_map(kg, ra, dec, table, rfactor=rfactor)
    if normalize:
        s = k.sum(axis=(1, 2), keepdims=True)
        k = k / np.where(s > 0, s, 1.0)
    return k


def _as_planes(values, n_energy, shape, what):
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == len(shape):
        a = np.broadcast_to(a, (n_energy,) + tuple(shape))
    if a.shape != (n_energy,) + tuple(shape):
        raise GeometryError(f"{what} must have shape {(n_energy,) + tuple(shape)}, got {a.shape}")
    return a


def _evaluate(fn, ra, dec, n_energy, what):
    v = np.asarray(fn(ra, dec), dtype=np.float64)
    if v.ndim == 1:
        v = np.broadcast_to(v, (n_energy, v.size))
    if v.shape != (n_energy, ra.size):
        raise GeometryError(f"{what} callable returned shape {v.shape}; expected "
                            f"({n_energy}, {ra.size}) or ({ra.size},)")
    return v


def convolved_map_wcs(geom: WcsGeom, energies, intensity_fn, exposure_fn, psf_offsets,
                      psf_values, *, oversample: int = 2, pad: float | None = None,
                      kernel_radius: float | None = None, solid_angle: str = "exact",
                      convolve: bool = True, rfactor: float = 2) -> np.ndarray:
    """Map (nE, ny, nx) [cm2 s] of intensity x exposure convolved with the PSF.

    ``intensity_fn(ra, dec)`` and ``exposure_fn(ra, dec)`` take 1-D arrays of ICRS
    directions (deg) and return (nE, n) (or (n,) for energy-independent values):
    intensity in sr^-1, exposure in cm2 s at the energy nodes.  ``pad`` (deg) is the
    border of the computation grid outside the map (default: the largest 99.5%
    containment radius of the PSF, clipped to [1, 15] deg); ``kernel_radius`` (deg) the
    extent of the PSF kernel, default per energy the 99.5% containment radius (at most
    ``pad``); each kernel plane is normalised to a sum of 1 within its radius.
    ``convolve=False`` skips the PSF.
    """
    e = check_energies(energies)
    table = RadialTable(psf_offsets, psf_values, e.size, "psf")
    o = int(oversample)
    fine_bin = min(abs(geom.cdelt[0]), abs(geom.cdelt[1])) / o
    r995 = table.containment(0.995)
    if pad is None:
        pad = float(np.clip(np.max(r995), 1.0, 15.0))
    pad_pix = int(math.ceil(max(float(pad), 0.0) / fine_bin))
    fg = fine_geom(geom, o, pad_pix)
    lon, lat = fg.pixel_centers()
    ok = np.isfinite(lon) & np.isfinite(lat)
    ra, dec = transform(lon[ok], lat[ok], geom.frame, "CEL")
    ra = np.atleast_1d(ra)
    dec = np.atleast_1d(dec)
    vals = _evaluate(intensity_fn, ra, dec, e.size, "intensity")
    vals = vals * _evaluate(exposure_fn, ra, dec, e.size, "exposure")
    counts = np.zeros((e.size,) + fg.shape)
    counts[:, ok] = vals
    del vals
    if convolve:
        from scipy.signal import fftconvolve

        if kernel_radius is None:
            krad = np.minimum(r995, float(pad))
        else:
            krad = np.full(e.size, float(kernel_radius))
        krad = np.maximum(krad, fine_bin)
        kern = psf_kernel(fg, table, float(krad.max()), rfactor=rfactor, normalize=False)
        cy, cx = kern.shape[1] // 2, kern.shape[2] // 2
        for k in range(e.size):
            kk = int(math.ceil(krad[k] / fine_bin))
            sub = kern[k, max(cy - kk, 0):cy + kk + 1, max(cx - kk, 0):cx + kk + 1]
            tot = sub.sum()
            if tot > 0:
                counts[k] = fftconvolve(counts[k], sub / tot, mode="same")
    inner = counts[:, pad_pix:pad_pix + o * geom.ny, pad_pix:pad_pix + o * geom.nx]
    mean = inner.reshape(e.size, geom.ny, o, geom.nx, o).mean(axis=(2, 4))
    return mean * geom.solid_angle(solid_angle)[None]


# --- HEALPix ---------------------------------------------------------------------------------
def psf_beam_window(table: RadialTable, lmax: int, n: int = 6000) -> np.ndarray:
    """Legendre coefficients b_l (nE, lmax+1) of the PSF, b_l = 2 pi int PSF(t) P_l(cos t)
    sin t dt / (same for l = 0): the beam window of ``healpy.smoothing``."""
    rmax = table.offsets[-1]
    t = np.concatenate(([0.0], np.geomspace(max(rmax * 1e-6, 1e-7), rmax, n)))
    tr = np.radians(t)
    f = table.at(t) * np.sin(tr)[None, :]
    w = np.zeros_like(tr)
    dt = np.diff(tr)
    w[:-1] += 0.5 * dt
    w[1:] += 0.5 * dt
    fw = f * w[None, :]
    x = np.cos(tr)
    out = np.empty((table.n_energy, lmax + 1))
    p_prev = np.ones_like(x)
    out[:, 0] = fw @ p_prev
    if lmax >= 1:
        p = x.copy()
        out[:, 1] = fw @ p
        for ell in range(2, lmax + 1):
            p_next = ((2 * ell - 1) * x * p - (ell - 1) * p_prev) / ell
            p_prev, p = p, p_next
            out[:, ell] = fw @ p
    return out / np.where(out[:, :1] > 0, out[:, :1], 1.0)


def _children_vectors(geom: HpxGeom, levels: int):
    import healpy as hp

    nest = geom.pix if geom.nest else np.asarray(hp.ring2nest(geom.nside, geom.pix), dtype=np.int64)
    nchild = 4 ** levels
    children = (nest[:, None] * nchild + np.arange(nchild)[None, :]).ravel()
    return children, geom.nside * 2 ** levels


def convolved_map_hpx(geom: HpxGeom, energies, intensity_fn, exposure_fn, psf_offsets,
                      psf_values, *, oversample: int = 2, pad: float | None = None,
                      kernel_radius: float | None = None, method: str = "auto",
                      convolve: bool = True, rfactor: float = 2) -> np.ndarray:
    """HEALPix analogue of :func:`convolved_map_wcs`: (nE, npix) [cm2 s].

    ``method``: ``"local"`` (CAR grid around the region, pixel size = HEALPix pixel size /
    ``oversample``), ``"harmonic"`` (all-sky map at ``nside * 2**ceil(log2(oversample))``,
    ``healpy.smoothing`` with the PSF window) or ``"auto"`` (local for regions of radius
    <= 45 deg).
    """
    import healpy as hp

    e = check_energies(energies)
    table = RadialTable(psf_offsets, psf_values, e.size, "psf")
    if method == "auto":
        method = "local" if (geom.region is not None and geom.region[2] <= 45.0) else "harmonic"
    o = max(int(oversample), 1)
    lev = int(math.ceil(math.log2(o))) if o > 1 else 0
    omega = 4 * math.pi / geom.npix_allsky
    if method == "local":
        if geom.region is None:
            raise GeometryError("convolved_map_hpx: method 'local' needs a region geometry")
        lon0, lat0, rad = geom.region
        pix_deg = math.degrees(math.sqrt(omega))
        binsz = pix_deg / o
        npix = 2 * int(math.ceil((rad + pix_deg) / binsz))
        wg = WcsGeom((lon0, lat0), npix, binsz, proj="CAR", frame=geom.frame)
        # convolve on the local grid without its own oversampling, then sample it
        conv = convolved_map_wcs(wg, e, intensity_fn, exposure_fn, table.offsets, table.values,
                                 oversample=1, pad=pad, kernel_radius=kernel_radius,
                                 solid_angle="exact", convolve=convolve, rfactor=rfactor)
        dens = conv / wg.solid_angle("exact")[None]   # convolved intensity x exposure, sr^-1
        children, nside_c = _children_vectors(geom, max(lev, 1))
        clon, clat = hp.pix2ang(nside_c, children, nest=True, lonlat=True)
        x, y = wg.world_to_pix(clon, clat)
        from scipy.ndimage import map_coordinates

        nchild = children.size // geom.npix
        out = np.empty((e.size, geom.npix))
        for k in range(e.size):
            v = map_coordinates(dens[k], [y, x], order=1, mode="nearest")
            out[k] = v.reshape(geom.npix, nchild).mean(axis=1)
        return out * omega
    if method != "harmonic":
        raise GeometryError(f"convolved_map_hpx: method must be 'auto', 'local' or 'harmonic', got {method!r}")
    nside_w = geom.nside * 2 ** lev
    npw = hp.nside2npix(nside_w)
    lon, lat = hp.pix2ang(nside_w, np.arange(npw), nest=False, lonlat=True)
    ra, dec = transform(lon, lat, geom.frame, "CEL")
    dens = _evaluate(intensity_fn, ra, dec, e.size, "intensity") * \
        _evaluate(exposure_fn, ra, dec, e.size, "exposure")
    lmax = 3 * nside_w - 1
    bl = psf_beam_window(table, lmax) if convolve else None
    out = np.empty((e.size, geom.npix))
    for k in range(e.size):
        m = np.ascontiguousarray(dens[k])
        if convolve:
            m = hp.smoothing(m, beam_window=bl[k], lmax=lmax, use_pixel_weights=False,
                             iter=1)
        low = hp.ud_grade(m, geom.nside, order_in="RING",
                          order_out="NESTED" if geom.nest else "RING")
        out[k] = low[geom.pix]
    return out * omega


def convolved_map(geom, energies, intensity_fn, exposure_fn, psf_offsets, psf_values, **kw):
    """Dispatch to :func:`convolved_map_wcs` or :func:`convolved_map_hpx`."""
    if isinstance(geom, WcsGeom):
        kw.pop("method", None)
        return convolved_map_wcs(geom, energies, intensity_fn, exposure_fn, psf_offsets,
                                 psf_values, **kw)
    if isinstance(geom, HpxGeom):
        kw.pop("solid_angle", None)
        return convolved_map_hpx(geom, energies, intensity_fn, exposure_fn, psf_offsets,
                                 psf_values, **kw)
    raise GeometryError(f"geom must be a WcsGeom or HpxGeom, got {geom!r}")
