"""Numba kernels of the geometry layer: rotations between celestial and Galactic axes.

Plain float64 arrays in, arrays out; angles in degrees at the interface (the conversion to
radians happens inside), a 3x3 rotation matrix passed explicitly.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit, pnjit, prange


@pnjit
def rotate_lonlat(lon, lat, rot):
    """Rotate the directions (lon, lat) [deg] by the 3x3 matrix ``rot``.

    Returns (lon', lat') in degrees with lon' in [0, 360).  The new longitude is
    ``atan2(y, x)`` and the latitude ``asin(z)`` of ``rot @ (cos b cos l, cos b sin l, sin b)``,
    as ``astro::SkyDir`` of the Science Tools computes Galactic coordinates.
    """
    n = lon.shape[0]
    out_lon = np.empty(n, dtype=np.float64)
    out_lat = np.empty(n, dtype=np.float64)
    d2r = math.pi / 180.0
    r2d = 180.0 / math.pi
    for i in prange(n):
        lo = lon[i] * d2r
        la = lat[i] * d2r
        cb = math.cos(la)
        x = cb * math.cos(lo)
        y = cb * math.sin(lo)
        z = math.sin(la)
        xp = rot[0, 0] * x + rot[0, 1] * y + rot[0, 2] * z
        yp = rot[1, 0] * x + rot[1, 1] * y + rot[1, 2] * z
        zp = rot[2, 0] * x + rot[2, 1] * y + rot[2, 2] * z
        if zp > 1.0:
            zp = 1.0
        elif zp < -1.0:
            zp = -1.0
        L = math.atan2(yp, xp) * r2d
        if L < 0.0:
            L += 360.0
        if L >= 360.0:
            L -= 360.0
        out_lon[i] = L
        out_lat[i] = math.asin(zp) * r2d
    return out_lon, out_lat


@njit
def angsep_deg(lon1, lat1, lon2, lat2):
    """Angular separation [deg] of (lon1, lat1) arrays from one point (lon2, lat2) [deg].

    Haversine form, as CFITSIO's ``angsep()`` (stable for small separations).
    """
    n = lon1.shape[0]
    out = np.empty(n, dtype=np.float64)
    d2r = math.pi / 180.0
    c2 = math.cos(lat2 * d2r)
    for i in range(n):
        sra = math.sin((lon2 - lon1[i]) * d2r / 2.0)
        sdec = math.sin((lat2 - lat1[i]) * d2r / 2.0)
        a = sdec * sdec + math.cos(lat1[i] * d2r) * c2 * sra * sra
        if a < 0.0:
            a = 0.0
        if a > 1.0:
            a = 1.0
        out[i] = 2.0 * math.atan2(math.sqrt(a), math.sqrt(1.0 - a)) / d2r
    return out
