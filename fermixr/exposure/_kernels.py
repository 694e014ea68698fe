"""Numba kernels of the livetime cube (gtltcube).

For every spacecraft (FT2) interval ``i`` with livetime ``dt[i]`` (already multiplied by
its GTI overlap fraction) and every sky pixel ``p`` with unit vector ``v_p``:

- ``c = v_p . z_i`` (cosine of the inclination to the LAT boresight z_i);
- the pixel counts if ``c > cosmin`` and, with a zenith cut, ``v_p . n_i > cos(zmax)``
  (``n_i`` the zenith direction), exactly as map_tools ``Exposure::Filler`` does;
- bin ``k = int(sqrt((1 - c)/(1 - cosmin)) * nbins)`` (``healpix::CosineBinner``), at most
  ``nbins - 1``; ``out[p, k] += dt[i]``, ``outw[p, k] += dtw[i]``;
- with ``phibins > 0`` the azimuth ``phi`` of ``v_p`` in the spacecraft frame (x axis
  ``x_i``, y = z x x) is folded to ``f = 1 - |pi/4 - fmod(phi, pi/2)| / (pi/4)`` in [0, 1]
  and the livetime is also added to column ``(int(f * phibins) + 1) * nbins + k``
  (gtltcube's layout: the first ``nbins`` columns are the azimuth-summed table).

The fast kernel walks HEALPix rings (RING order): on a ring of colatitude z_r the pixels
with ``v . u > c0`` form one arc of azimuth, found with one arccos; the arcs of the
boresight, zenith and optional region are intersected and only their pixels are visited
(with a one-pixel margin, every visited pixel is tested exactly, so the result equals the
per-row-per-pixel computation).  The output arrays are in RING order; rings are
distributed over threads, so no two threads write the same pixel.

Only numpy, math and :mod:`fermixr._jit` are imported here.
"""

from __future__ import annotations

import math
import types

import numpy as np

from .._jit import njit, pnjit, prange

_PI4 = math.pi / 4.0
_PI2 = math.pi / 2.0
_TWOPI = 2.0 * math.pi


# --------------------------------------------------------------------------------------
# slow, obvious reference (numpy, per row x per pixel)
# --------------------------------------------------------------------------------------

def ltcube_fill_reference(pvec, zvec, nvec, xvec, dt, dtw, cosmin, nbins, sqrt_bins,
                          coszmax, use_zenith, phibins):
    """Exact livetime histogram by brute force: ``pvec`` (npix, 3) pixel unit vectors,
    ``zvec``/``nvec``/``xvec`` (nrow, 3) boresight, zenith and x-axis unit vectors (x
    orthogonal to z; unused when ``phibins == 0``), ``dt``/``dtw`` (nrow,) livetimes.
    Returns ``(out, outw)`` of shape (npix, nbins * (1 + phibins)) (gtltcube layout)."""
    pvec = np.asarray(pvec, dtype=np.float64)
    npix = pvec.shape[0]
    ncol = nbins * (1 + phibins) if phibins else nbins
    out = np.zeros((npix, ncol))
    outw = np.zeros((npix, ncol))
    for i in range(len(dt)):
        c = pvec @ np.asarray(zvec[i], dtype=np.float64)
        ok = c > cosmin
        if use_zenith:
            ok &= (pvec @ np.asarray(nvec[i], dtype=np.float64)) > coszmax
        idx = np.nonzero(ok)[0]
        t = np.maximum(1.0 - c[idx], 0.0) / (1.0 - cosmin)
        if sqrt_bins:
            t = np.sqrt(t)
        k = np.minimum((t * nbins).astype(np.int64), nbins - 1)
        np.add.at(out, (idx, k), dt[i])
        np.add.at(outw, (idx, k), dtw[i])
        if phibins:
            z = np.asarray(zvec[i], dtype=np.float64)
            x = np.asarray(xvec[i], dtype=np.float64)
            y = np.cross(z, x)
            phi = np.arctan2(pvec[idx] @ y, pvec[idx] @ x)
            phi = np.where(phi < 0, phi + 2 * np.pi, phi)
            f = 1.0 - np.abs(np.pi / 4 - np.fmod(phi, np.pi / 2)) / (np.pi / 4)
            pk = np.minimum((f * phibins).astype(np.int64), phibins - 1)
            col = (pk + 1) * nbins + k
            np.add.at(out, (idx, col), dt[i])
            np.add.at(outw, (idx, col), dtw[i])
    return out, outw


# --------------------------------------------------------------------------------------
# ring walking
# --------------------------------------------------------------------------------------

@njit(inline="always")
def _acos_fast(q):
    """arccos with |error| < 1e-4 rad (Abramowitz & Stegun 4.4.45); only used to bound
    index ranges, which carry a margin of one pixel (>= 0.01 rad at nside <= 512)."""
    x = q if q >= 0.0 else -q
    r = math.sqrt(1.0 - x) * (1.5707288 + x * (-0.2121144 + x * (0.0742610 - 0.0187293 * x)))
    return r if q >= 0.0 else math.pi - r


@njit(inline="always")
def _arc(ux, uy, uz, rho, phiu, c0, zr, rr, phi0, inv_dphi, n):
    """Pixels (index range on a ring of n pixels at z=zr, radius rr, azimuths
    phi0 + j/inv_dphi) that can have v.u > c0: returns (lo, cnt) with 0 <= lo < n;
    cnt == n means the whole ring, 0 none.  One pixel of margin on each side."""
    den = rr * rho
    num = c0 - zr * uz
    if den < 1e-12:
        if num < 1e-9:
            return 0, n
        return 0, 0
    q = num / den
    if q < -1.0:
        return 0, n
    if q > 1.0 + 1e-9:
        return 0, 0
    if q > 1.0:
        q = 1.0
    w = _acos_fast(q) + 2e-4
    lo = int(math.floor((phiu - w - phi0) * inv_dphi)) - 1
    hi = int(math.floor((phiu + w - phi0) * inv_dphi)) + 2
    cnt = hi - lo + 1
    if cnt >= n:
        return 0, n
    lo = lo % n
    if lo < 0:
        lo += n
    return lo, cnt


@njit(inline="always")
def _intersect(alo, acnt, blo, bcnt, n, olo, ocnt, m):
    """Append to (olo, ocnt)[m:] the pieces of arc A & arc B (index space mod n);
    return the new count.  Pieces are in A's unwrapped frame: lo in [0, 2n)."""
    if bcnt >= n:
        olo[m] = alo
        ocnt[m] = acnt
        return m + 1
    if acnt >= n:
        olo[m] = blo
        ocnt[m] = bcnt
        return m + 1
    a1 = alo + acnt
    for s in (-n, 0, n):
        b0 = blo + s
        b1 = b0 + bcnt
        lo = alo if alo > b0 else b0
        hi = a1 if a1 < b1 else b1
        if hi > lo:
            olo[m] = lo
            ocnt[m] = hi - lo
            m += 1
    return m


@njit(inline="always")
def _bins_segment(xs, ys, zs, uzx, uzy, uzz, unx, uny, unz, cosmin, inv_range,
                  nbins, sqrt_bins, coszmax, use_zenith, kbuf):
    """Bin index (or -1 when the pixel does not count) of the pixels with unit vectors
    (xs, ys, zs)[j] into kbuf[j].  Branch-free loops over range(n) so that numba drops
    its negative-index checks and LLVM vectorises them."""
    nb1 = nbins - 1
    m = xs.shape[0]
    if use_zenith:
        if sqrt_bins:
            for j in range(m):
                c = xs[j] * uzx + ys[j] * uzy + zs[j] * uzz
                cn = xs[j] * unx + ys[j] * uny + zs[j] * unz
                t = (1.0 - c) * inv_range
                t = math.sqrt(t if t > 0.0 else 0.0)
                k = np.int64(t * nbins)
                k = k if k < nb1 else nb1
                kbuf[j] = k if ((c > cosmin) & (cn > coszmax)) else -1
        else:
            for j in range(m):
                c = xs[j] * uzx + ys[j] * uzy + zs[j] * uzz
                cn = xs[j] * unx + ys[j] * uny + zs[j] * unz
                t = (1.0 - c) * inv_range
                t = t if t > 0.0 else 0.0
                k = np.int64(t * nbins)
                k = k if k < nb1 else nb1
                kbuf[j] = k if ((c > cosmin) & (cn > coszmax)) else -1
    else:
        if sqrt_bins:
            for j in range(m):
                c = xs[j] * uzx + ys[j] * uzy + zs[j] * uzz
                t = (1.0 - c) * inv_range
                t = math.sqrt(t if t > 0.0 else 0.0)
                k = np.int64(t * nbins)
                k = k if k < nb1 else nb1
                kbuf[j] = k if c > cosmin else -1
        else:
            for j in range(m):
                c = xs[j] * uzx + ys[j] * uzy + zs[j] * uzz
                t = (1.0 - c) * inv_range
                t = t if t > 0.0 else 0.0
                k = np.int64(t * nbins)
                k = k if k < nb1 else nb1
                kbuf[j] = k if c > cosmin else -1


def _ring_fill_impl(ring_first, ring_npix, ring_z, ring_r, ring_phi0, ring_invdphi,
                    px, py, pz, reg_lo, reg_cnt, use_region,
                    zx, zy, zz, zrho, zphi, nx, ny, nz, nrho, nphi,
                    xx, xy, xz, dt, dtw, row_mode,
                    cosmin, nbins, sqrt_bins, coszmax, use_zenith, phibins, ntask, out):
    """Add the livetime of every row to ``out`` (RING-ordered pixels, ncol, 2): [..., 0]
    livetime, [..., 1] weighted livetime; ncol = nbins * (1 + phibins) or nbins.
    ``row_mode[i]``: 0 the row adds nothing (region out of view), 1 the whole region is
    in view (its pixels are visited without computing arcs, still tested exactly),
    2 general case."""
    nring = ring_first.shape[0]
    nrow = dt.shape[0]
    inv_range = 1.0 / (1.0 - cosmin)
    nmax = 0
    for ring in range(nring):
        if ring_npix[ring] > nmax:
            nmax = ring_npix[ring]
    for task in prange(ntask):
        plo = np.empty(4, dtype=np.int64)
        pcnt = np.empty(4, dtype=np.int64)
        qlo = np.empty(8, dtype=np.int64)
        qcnt = np.empty(8, dtype=np.int64)
        kbuf = np.empty(nmax, dtype=np.int64)
        for ring in range(task, nring, ntask):
            n = ring_npix[ring]
            if use_region and reg_cnt[ring] == 0:
                continue
            first = ring_first[ring]
            zr = ring_z[ring]
            rr = ring_r[ring]
            phi0 = ring_phi0[ring]
            invd = ring_invdphi[ring]
            for i in range(nrow):
                mode = row_mode[i]
                if mode == 0:
                    continue
                if mode == 1:
                    alo = 0
                    acnt = n
                else:
                    alo, acnt = _arc(zx[i], zy[i], zz[i], zrho[i], zphi[i], cosmin,
                                     zr, rr, phi0, invd, n)
                if acnt == 0:
                    continue
                if use_zenith and mode == 2:
                    blo, bcnt = _arc(nx[i], ny[i], nz[i], nrho[i], nphi[i], coszmax,
                                     zr, rr, phi0, invd, n)
                    if bcnt == 0:
                        continue
                    m = _intersect(alo, acnt, blo, bcnt, n, plo, pcnt, 0)
                else:
                    plo[0] = alo
                    pcnt[0] = acnt
                    m = 1
                if use_region:
                    mm = 0
                    for t in range(m):
                        lo = plo[t] % n
                        mm = _intersect(lo, pcnt[t], reg_lo[ring], reg_cnt[ring], n,
                                        qlo, qcnt, mm)
                else:
                    for t in range(m):
                        qlo[t] = plo[t]
                        qcnt[t] = pcnt[t]
                    mm = m
                d1 = dt[i]
                d2 = dtw[i]
                uzx = zx[i]
                uzy = zy[i]
                uzz = zz[i]
                for t in range(mm):
                    j0 = qlo[t]
                    if j0 >= n:
                        j0 -= n
                    j1 = j0 + qcnt[t]
                    # the piece is at most two runs of contiguous RING indices
                    for seg in range(2):
                        if seg == 0:
                            a = first + j0
                            b = first + (j1 if j1 < n else n)
                        else:
                            if j1 <= n:
                                break
                            a = first
                            b = first + (j1 - n)
                        xs = px[a:b]
                        ys = py[a:b]
                        zs = pz[a:b]
                        _bins_segment(xs, ys, zs, uzx, uzy, uzz, nx[i], ny[i], nz[i],
                                      cosmin, inv_range, nbins, sqrt_bins, coszmax,
                                      use_zenith, kbuf)
                        o = out[a:b]
                        for j in range(b - a):
                            k = kbuf[j]
                            if k < 0:
                                continue
                            uk = np.uint64(k)
                            o[j, uk, 0] += d1
                            o[j, uk, 1] += d2
                            if phibins > 0:
                                vx = xs[j]
                                vy = ys[j]
                                vz = zs[j]
                                # y = z cross x
                                yx = uzy * xz[i] - uzz * xy[i]
                                yy = uzz * xx[i] - uzx * xz[i]
                                yz = uzx * xy[i] - uzy * xx[i]
                                phi = math.atan2(vx * yx + vy * yy + vz * yz,
                                                 vx * xx[i] + vy * xy[i] + vz * xz[i])
                                if phi < 0.0:
                                    phi += _TWOPI
                                f = 1.0 - abs(_PI4 - (phi - math.floor(phi / _PI2) * _PI2)) / _PI4
                                pk = int(f * phibins)
                                if pk >= phibins:
                                    pk = phibins - 1
                                col = np.uint64((pk + 1) * nbins + k)
                                o[j, col, 0] += d1
                                o[j, col, 1] += d2


def _renamed(fn, name):
    # numba's cache is keyed by the function's qualified name, not by the compile
    # options: a serial and a parallel compilation of one function object would load
    # each other's machine code.  Give each variant its own function object and name.
    g = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    g.__qualname__ = name
    g.__doc__ = fn.__doc__
    return g


ring_fill_serial = njit(_renamed(_ring_fill_impl, "ring_fill_serial"))
ring_fill_parallel = pnjit(_renamed(_ring_fill_impl, "ring_fill_parallel"))
