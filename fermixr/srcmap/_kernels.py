"""numba kernels of the source-map layer: PSF-table interpolation and pixel averages of a
radial profile around a direction.

Plain float64 arrays in and out, angles in radians.  A radial table is ``off`` (ascending
offsets, rad, ``off[0] >= 0``) with ``val`` (nE, noff); ``logoff``/``logval`` are their
logs (``-inf`` where the value is 0), prepared once by the caller.  Between two nodes the
value is interpolated linearly in log-log (exact for power-law tails) when both nodes are
positive, linearly otherwise; beyond the last node it is 0.

The slow references these kernels are tested against live in ``tests/test_srcmap_kernels.py``.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit, pnjit, prange


@njit
def interp_radial(r, off, logoff, val, logval):
    """Value of one radial table row at offset ``r`` (rad)."""
    n = off.shape[0]
    if r > off[n - 1] or r < 0.0:
        return 0.0
    if r == off[n - 1]:
        return val[n - 1]
    # binary search: off[i] <= r < off[i + 1]
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if off[mid] <= r:
            lo = mid
        else:
            hi = mid
    i = lo
    v0 = val[i]
    v1 = val[i + 1]
    if off[i] > 0.0 and v0 > 0.0 and v1 > 0.0:
        t = (math.log(r) - logoff[i]) / (logoff[i + 1] - logoff[i])
        return math.exp(logval[i] + t * (logval[i + 1] - logval[i]))
    t = (r - off[i]) / (off[i + 1] - off[i])
    return v0 + t * (v1 - v0)


@njit
def _angle(ax, ay, az, bx, by, bz):
    cx = ay * bz - az * by
    cy = az * bx - ax * bz
    cz = ax * by - ay * bx
    return math.atan2(math.sqrt(cx * cx + cy * cy + cz * cz), ax * bx + ay * by + az * bz)


@pnjit
def separation(vec, src):
    """Angle (rad) between each unit vector ``vec`` (n, 3) and ``src`` (3,)."""
    n = vec.shape[0]
    out = np.empty(n)
    for i in prange(n):
        out[i] = _angle(vec[i, 0], vec[i, 1], vec[i, 2], src[0], src[1], src[2])
    return out


@pnjit
def radial_at(sep, off, logoff, val, logval):
    """Table values (nE, n) at separations ``sep`` (n,) rad."""
    ne = val.shape[0]
    n = sep.shape[0]
    out = np.empty((ne, n))
    for i in prange(n):
        for k in range(ne):
            out[k, i] = interp_radial(sep[i], off, logoff, val[k], logval[k])
    return out


@pnjit
def wcs_pixel_mean(centers, corners, src, nsub, off, logoff, val, logval):
    """Mean of a radial table around ``src`` over each WCS pixel.

    ``centers`` (ny, nx, 3) pixel-centre unit vectors, ``corners`` (ny+1, nx+1, 3) unit
    vectors of the pixel corners (NaN outside the projection), ``nsub`` (ny, nx) samples
    per axis.  A pixel with ``nsub == 1`` (or a corner outside the projection) takes the
    value at its centre; otherwise the mean over an ``nsub x nsub`` grid of sample points
    placed by bilinear interpolation of the corner vectors (then normalised), i.e. equal
    weights in pixel coordinates.  Pixels whose centre is undefined get 0.  Returns
    (nE, ny, nx).
    """
    ny = centers.shape[0]
    nx = centers.shape[1]
    ne = val.shape[0]
    out = np.zeros((ne, ny, nx))
    sx = src[0]
    sy = src[1]
    sz = src[2]
    for j in prange(ny):
        acc = np.empty(ne)
        for i in range(nx):
            cx = centers[j, i, 0]
            if not math.isfinite(cx):
                continue
            n = nsub[j, i]
            ok = True
            if n > 1:
                for a in range(2):
                    for b in range(2):
                        if not math.isfinite(corners[j + a, i + b, 0]):
                            ok = False
            if n <= 1 or not ok:
                r = _angle(cx, centers[j, i, 1], centers[j, i, 2], sx, sy, sz)
                for k in range(ne):
                    out[k, j, i] = interp_radial(r, off, logoff, val[k], logval[k])
                continue
            for k in range(ne):
                acc[k] = 0.0
            for q in range(n):
                v = (q + 0.5) / n
                for p in range(n):
                    u = (p + 0.5) / n
                    w00 = (1.0 - u) * (1.0 - v)
                    w01 = u * (1.0 - v)
                    w10 = (1.0 - u) * v
                    w11 = u * v
                    px = (w00 * corners[j, i, 0] + w01 * corners[j, i + 1, 0]
                          + w10 * corners[j + 1, i, 0] + w11 * corners[j + 1, i + 1, 0])
                    py = (w00 * corners[j, i, 1] + w01 * corners[j, i + 1, 1]
                          + w10 * corners[j + 1, i, 1] + w11 * corners[j + 1, i + 1, 1])
                    pz = (w00 * corners[j, i, 2] + w01 * corners[j, i + 1, 2]
                          + w10 * corners[j + 1, i, 2] + w11 * corners[j + 1, i + 1, 2])
                    nrm = math.sqrt(px * px + py * py + pz * pz)
                    r = _angle(px / nrm, py / nrm, pz / nrm, sx, sy, sz)
                    for k in range(ne):
                        acc[k] += interp_radial(r, off, logoff, val[k], logval[k])
            inv = 1.0 / (n * n)
            for k in range(ne):
                out[k, j, i] = acc[k] * inv
    return out


@pnjit
def samples_mean(samples, src, off, logoff, val, logval):
    """Mean of a radial table around ``src`` over sample directions: ``samples`` (m, ns, 3)
    unit vectors (ns samples of each of m pixels, equal weights).  Returns (nE, m)."""
    m = samples.shape[0]
    ns = samples.shape[1]
    ne = val.shape[0]
    out = np.zeros((ne, m))
    for i in prange(m):
        for s in range(ns):
            r = _angle(samples[i, s, 0], samples[i, s, 1], samples[i, s, 2],
                       src[0], src[1], src[2])
            for k in range(ne):
                out[k, i] += interp_radial(r, off, logoff, val[k], logval[k])
        for k in range(ne):
            out[k, i] /= ns
    return out
