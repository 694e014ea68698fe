"""Kernels of the TS map: for every output pixel at its current test-source amplitude A,
the sums over energies and kernel pixels of one component

    g1 = sum w (n s / (m + A s) - s)            (d lnL / dA)
    g2 = -sum w n s^2 / (m + A s)^2             (d2 lnL / dA2)
    g3 = 2 sum w n s^3 / (m + A s)^3            (d3 lnL / dA3)
    dl = sum w (n log(1 + A s / m) - A s)       (lnL(A) - lnL(0))

added into the output arrays.  Terms without counts (n = 0) contribute -w s to g1 and
-A w s to dl and nothing to g2: their sum over the kernel, C = sum w s, does not depend on
A, so the numba kernels take it once (:func:`wcs_weight_sum`, :func:`sparse_weight_sum`)
and each iteration visits only the (energy, pixel) cells with counts
(:func:`wcs_accumulate` over :func:`sparse_cells`, :func:`sparse_accumulate`); the caller
adds -C and -A C.  Two placements: WCS (one kernel per sub-pixel offset class shifted to
each pixel; per energy bin only the centre box of half-width ``rk[k]`` is visited: the
kernel is zero outside it) and sparse (a neighbour list per output pixel with its own
kernel values, used for HEALPix).  The numba kernels run in parallel over output pixels;
each has a numpy reference that computes the full sums (every term, zero counts or not)."""

from __future__ import annotations

import numpy as np

from .._jit import njit, pnjit, prange


def sparse_cells(n, m, w):
    """The cells with counts (n > 0 and w > 0) of a (nb, ny, nx) cube, row by row:
    (rowptr (nb * ny + 1,), xs, nw = w n, mm = m), cells of row (k, y) at
    rowptr[k ny + y] : rowptr[k ny + y + 1], x increasing."""
    nb, ny, nx = n.shape
    keep = (n > 0) & (w > 0)
    k, y, x = np.nonzero(keep)                      # C order: (k, y, x) sorted
    rows = np.bincount(k * ny + y, minlength=nb * ny)
    rowptr = np.zeros(nb * ny + 1, dtype=np.int64)
    np.cumsum(rows, out=rowptr[1:])
    return (rowptr, x.astype(np.int64), np.ascontiguousarray((w * n)[keep]),
            np.ascontiguousarray(m[keep]))


def _wcs_accumulate_impl(A, rowptr, xs, nw, mm, ny, nx, K, rk, xr, ix, iy, cls, want_dl,
                         g1, g2, dl, g3, sel):
    """Terms with counts of one WCS component: ``rowptr, xs, nw, mm``
    from :func:`sparse_cells` of the (nb, ny, nx) cube; K : (ncls, nb, kh, kw) centred
    kernels, zero outside the centre box of half-width rk[k] (rk[k] < 0: bin unused) and, in
    its row dy, beyond |dx - R| > xr[k, dy]; ix, iy, cls : the component pixel under each
    output pixel and its offset class; want_dl : per output pixel, whether dl is wanted;
    only the output pixels ``sel`` (parallel over them)."""
    nb = K.shape[1]
    R = K.shape[2] // 2
    for jj in prange(sel.size):
        j = sel[jj]
        a = A[j]
        c = cls[j]
        cx = ix[j]
        cy = iy[j]
        wdl = want_dl[j]
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        for k in range(nb):
            r = rk[k]
            if r < 0:
                continue
            y0 = max(cy - r, 0)
            y1 = min(cy + r, ny - 1)
            if cx + r < 0 or cx - r >= nx:
                continue
            for y in range(y0, y1 + 1):
                row = k * ny + y
                p0 = rowptr[row]
                p1 = rowptr[row + 1]
                if p0 == p1:
                    continue
                h = xr[k, y - cy + R]
                if h < 0:
                    continue
                xlo = cx - h
                xhi = cx + h
                # first cell with x >= xlo (binary search)
                lo = p0
                hi = p1
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if xs[mid] < xlo:
                        lo = mid + 1
                    else:
                        hi = mid
                dy = y - cy + R
                for p in range(lo, p1):
                    x = xs[p]
                    if x > xhi:
                        break
                    s = K[c, k, dy, x - cx + R]
                    if s <= 0.0:
                        continue
                    inv = 1.0 / (mm[p] + a * s)
                    t = nw[p] * s * inv
                    q = s * inv
                    s1 += t
                    s2 -= t * q
                    s4 += t * q * q
                    if wdl:
                        s3 += nw[p] * np.log1p(a * s / mm[p])
        g1[j] += s1
        g2[j] += s2
        g3[j] += 2.0 * s4
        if wdl:
            dl[j] += s3


wcs_accumulate = pnjit(_wcs_accumulate_impl)


def _wcs_weight_sum_impl(w, K, rk, ix, iy, cls, out, sel):
    """C = sum w s over the kernel of every output pixel in ``sel``
    (WCS placement), added to ``out``."""
    nb, ny, nx = w.shape
    R = K.shape[2] // 2
    for jj in prange(sel.size):
        j = sel[jj]
        c = cls[j]
        cx = ix[j]
        cy = iy[j]
        acc = 0.0
        for k in range(nb):
            r = rk[k]
            if r < 0:
                continue
            for y in range(max(cy - r, 0), min(cy + r, ny - 1) + 1):
                dy = y - cy + R
                for x in range(max(cx - r, 0), min(cx + r, nx - 1) + 1):
                    s = K[c, k, dy, x - cx + R]
                    if s > 0.0:
                        acc += w[k, y, x] * s
        out[j] += acc


wcs_weight_sum = pnjit(_wcs_weight_sum_impl)


def wcs_accumulate_numpy(A, n, m, w, K, ix, iy, cls, want_dl, g1, g2, dl, g3=None, sel=None):
    """numpy reference of the WCS sums (every term; one shift of the kernel at a time;
    every pixel, ``sel`` or not)."""
    nb, ny, nx = n.shape
    kh, kw = K.shape[2], K.shape[3]
    ry, rx = kh // 2, kw // 2
    for dy in range(kh):
        y = iy + dy - ry
        for dx in range(kw):
            x = ix + dx - rx
            ok = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
            if not ok.any():
                continue
            j = np.nonzero(ok)[0]
            s = K[cls[j], :, dy, dx].T                     # (nb, nj)
            nn = n[:, y[j], x[j]]
            mm = m[:, y[j], x[j]]
            ww = w[:, y[j], x[j]]
            a = A[j][None, :]
            pos = s > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                mu = mm + a * s
                t1 = np.where(pos, ww * (nn * s / mu - s), 0.0)
                t2 = np.where(pos, -ww * nn * s * s / mu ** 2, 0.0)
                g1[j] += t1.sum(axis=0)
                g2[j] += t2.sum(axis=0)
                if g3 is not None:
                    g3[j] += np.where(pos, 2.0 * ww * nn * s ** 3 / mu ** 3, 0.0).sum(axis=0)
                if np.any(want_dl):
                    t3 = np.where(pos, ww * (np.where(nn > 0, nn * np.log1p(a * s / mm),
                                                      0.0) - a * s), 0.0)
                    dl[j] += t3.sum(axis=0)


def _sparse_accumulate_impl(A, n, m, w, indptr, idx, vals, want_dl, g1, g2, dl, g3, sel):
    """Terms with counts of a sparse placement: n, m, w : (nb,
    npix); output pixel j uses component pixels idx[indptr[j]:indptr[j+1]] with kernel values
    vals[:, same range]; want_dl : per output pixel, whether dl is wanted; only the pixels
    ``sel`` (parallel over them)."""
    nb = n.shape[0]
    for jj in prange(sel.size):
        j = sel[jj]
        a = A[j]
        wdl = want_dl[j]
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        for e in range(indptr[j], indptr[j + 1]):
            p = idx[e]
            for k in range(nb):
                nn = n[k, p]
                if nn == 0.0:
                    continue
                s = vals[k, e]
                if s <= 0.0:
                    continue
                ww = w[k, p]
                inv = 1.0 / (m[k, p] + a * s)
                t = ww * nn * s * inv
                q = s * inv
                s1 += t
                s2 -= t * q
                s4 += t * q * q
                if wdl:
                    s3 += ww * nn * np.log1p(a * s / m[k, p])
        g1[j] += s1
        g2[j] += s2
        g3[j] += 2.0 * s4
        if wdl:
            dl[j] += s3


sparse_accumulate = pnjit(_sparse_accumulate_impl)


def _sparse_weight_sum_impl(w, indptr, idx, vals, out, sel):
    """C = sum w s over the neighbours of every output pixel in
    ``sel`` (sparse placement), added to ``out``."""
    nb = w.shape[0]
    for jj in prange(sel.size):
        j = sel[jj]
        acc = 0.0
        for e in range(indptr[j], indptr[j + 1]):
            p = idx[e]
            for k in range(nb):
                s = vals[k, e]
                if s > 0.0:
                    acc += w[k, p] * s
        out[j] += acc


sparse_weight_sum = pnjit(_sparse_weight_sum_impl)


def sparse_accumulate_numpy(A, n, m, w, indptr, idx, vals, want_dl, g1, g2, dl, g3=None,
                            sel=None):
    """numpy reference of the sparse sums (every term; segment sums; every pixel)."""
    if idx.size == 0:
        return
    counts = np.diff(indptr)
    owner = np.repeat(np.arange(A.size), counts)
    a = A[owner][None, :]
    s = vals
    nn, mm, ww = n[:, idx], m[:, idx], w[:, idx]
    pos = s > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = mm + a * s
        t1 = np.where(pos, ww * (nn * s / mu - s), 0.0).sum(axis=0)
        t2 = np.where(pos, -ww * nn * s * s / mu ** 2, 0.0).sum(axis=0)
        g1 += np.bincount(owner, t1, minlength=A.size)
        g2 += np.bincount(owner, t2, minlength=A.size)
        if g3 is not None:
            t4 = np.where(pos, 2.0 * ww * nn * s ** 3 / mu ** 3, 0.0).sum(axis=0)
            g3 += np.bincount(owner, t4, minlength=A.size)
        if np.any(want_dl):
            t3 = np.where(pos, ww * (np.where(nn > 0, nn * np.log1p(a * s / mm), 0.0)
                                     - a * s), 0.0).sum(axis=0)
            dl += np.bincount(owner, t3, minlength=A.size)
