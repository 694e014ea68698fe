"""Kernels of the TS map: for every output pixel at its current test-source amplitude A,
the sums over energies and kernel pixels of one component

    g1 = sum w (n s / (m + A s) - s)            (d lnL / dA)
    g2 = -sum w n s^2 / (m + A s)^2             (d2 lnL / dA2)
    dl = sum w (n log(1 + A s / m) - A s)       (lnL(A) - lnL(0))

added into the output arrays.  Two placements: WCS (one kernel per sub-pixel offset class
shifted to each pixel) and sparse (a neighbour list per output pixel with its own kernel
values, used for HEALPix).  Each has a numba version and a numpy reference of its own."""

from __future__ import annotations

import numpy as np

from .._jit import njit


@njit
def _terms(a, s, nn, mm, ww, want_dl):
    """One (energy, pixel) term of g1, g2 and dl for kernel value ``s`` > 0, counts
    ``nn``, background ``mm`` and weight ``ww``; a pixel without counts skips the
    division (its g2 term is 0)."""
    if nn == 0.0:
        return -ww * s, 0.0, (-ww * a * s if want_dl else 0.0)
    mu = mm + a * s
    d3 = ww * (nn * np.log1p(a * s / mm) - a * s) if want_dl else 0.0
    return ww * (nn * s / mu - s), -ww * nn * s * s / (mu * mu), d3


@njit
def wcs_accumulate(A, n, m, w, K, ix, iy, cls, want_dl, g1, g2, dl, sel):
    """n, m, w : (nb, ny, nx); K : (ncls, nb, kh, kw) centred kernels; ix, iy, cls : the
    component pixel under each output pixel and its offset class; only the output pixels
    ``sel`` are computed."""
    nb, ny, nx = n.shape
    kh, kw = K.shape[2], K.shape[3]
    ry, rx = kh // 2, kw // 2
    for jj in range(sel.size):
        j = sel[jj]
        a = A[j]
        c = cls[j]
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for dy in range(kh):
            y = iy[j] + dy - ry
            if y < 0 or y >= ny:
                continue
            for dx in range(kw):
                x = ix[j] + dx - rx
                if x < 0 or x >= nx:
                    continue
                for k in range(nb):
                    s = K[c, k, dy, dx]
                    if s <= 0.0:
                        continue
                    d1, d2, d3 = _terms(a, s, n[k, y, x], m[k, y, x], w[k, y, x], want_dl)
                    s1 += d1
                    s2 += d2
                    s3 += d3
        g1[j] += s1
        g2[j] += s2
        if want_dl:
            dl[j] += s3


def wcs_accumulate_numpy(A, n, m, w, K, ix, iy, cls, want_dl, g1, g2, dl, sel=None):
    """numpy reference of :func:`wcs_accumulate` (one shift of the kernel at a time; every
    pixel, ``sel`` or not)."""
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
                if want_dl:
                    t3 = np.where(pos, ww * (nn * np.log1p(a * s / mm) - a * s), 0.0)
                    dl[j] += t3.sum(axis=0)


@njit
def sparse_accumulate(A, n, m, w, indptr, idx, vals, want_dl, g1, g2, dl, sel):
    """n, m, w : (nb, npix); output pixel j uses component pixels idx[indptr[j]:
    indptr[j+1]] with kernel values vals[:, same range]; only the pixels ``sel``."""
    nb = n.shape[0]
    for jj in range(sel.size):
        j = sel[jj]
        a = A[j]
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for e in range(indptr[j], indptr[j + 1]):
            p = idx[e]
            for k in range(nb):
                s = vals[k, e]
                if s <= 0.0:
                    continue
                d1, d2, d3 = _terms(a, s, n[k, p], m[k, p], w[k, p], want_dl)
                s1 += d1
                s2 += d2
                s3 += d3
        g1[j] += s1
        g2[j] += s2
        if want_dl:
            dl[j] += s3


def sparse_accumulate_numpy(A, n, m, w, indptr, idx, vals, want_dl, g1, g2, dl, sel=None):
    """numpy reference of :func:`sparse_accumulate` (segment sums; every pixel)."""
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
        if want_dl:
            t3 = np.where(pos, ww * (nn * np.log1p(a * s / mm) - a * s), 0.0).sum(axis=0)
            dl += np.bincount(owner, t3, minlength=A.size)
