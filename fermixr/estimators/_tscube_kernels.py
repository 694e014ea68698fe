"""Kernels of the TS cube: for every output pixel j at its parameters theta[j] = (A,
d_1 .. d_nb) -- the test source's norm A and the shifts d_b of the free background norms
from their baseline -- the sums over the energy bins k0 <= k < k1 and the pixels of one
component where the test source's kernel s is positive (within its footprint) of

    mu = m + A s + sum_b d_b B_b                        (model counts)
    L  = sum w (n log(mu / m) - (mu - m))               (log L minus its baseline value)
    g  = sum w (n / mu - 1) v                           (gradient, v = (s, B_1 .. B_nb))
    H  = -sum w n / mu^2 v v^T                          (Hessian)

added into the output arrays (L = -inf where mu <= 0 under counts).  Two placements, as the
TS map's: WCS (one kernel per sub-pixel offset class shifted to each pixel, the footprint a
mask of the kernel box) and sparse (a neighbour list per output pixel with its own kernel
values; HEALPix).  Each has a parallel numba version and a numpy reference of its own."""

from __future__ import annotations

import numpy as np

from .._jit import njit, pnjit, prange


@njit
def _add_term(a, s, nn, mm, ww, bvals, d, gj, hj, nbg):
    """Add one (energy, pixel) term to gj (P,) and hj (P, P); returns its log L term."""
    mu = mm + a * s
    for b in range(nbg):
        mu += d[b] * bvals[b]
    if nn == 0.0:
        gj[0] -= ww * s
        for b in range(nbg):
            gj[1 + b] -= ww * bvals[b]
        return -ww * (mu - mm)
    if mu <= 0.0 or mm <= 0.0:
        return -np.inf
    r = nn / mu
    c1 = ww * (r - 1.0)
    c2 = ww * r / mu
    gj[0] += c1 * s
    hj[0, 0] -= c2 * s * s
    for b in range(nbg):
        vb = bvals[b]
        gj[1 + b] += c1 * vb
        hj[0, 1 + b] -= c2 * s * vb
        hj[1 + b, 0] -= c2 * s * vb
        for c in range(nbg):
            hj[1 + b, 1 + c] -= c2 * vb * bvals[c]
    return ww * (nn * np.log1p((mu - mm) / mm) - (mu - mm))


@njit
def _add_term_a(a, s, nn, mm, ww, acc):
    """One term without free background norms (s > 0): adds to acc = [g, H, L]."""
    if nn == 0.0:
        acc[0] -= ww * s
        acc[2] -= ww * a * s
        return
    mu = mm + a * s
    if mu <= 0.0 or mm <= 0.0:
        acc[2] = -np.inf
        return
    r = nn / mu
    acc[0] += ww * (r - 1.0) * s
    acc[1] -= ww * r / mu * s * s
    acc[2] += ww * (nn * np.log1p(a * s / mm) - a * s)


@pnjit
def wcs_accumulate(theta, n, m, w, B, K, F, box, ix, iy, cls, k0, k1, g, H, L, sel):
    """n, m, w : (ne, ny, nx); B : (ne, ny, nx, nb) background counts of the free norms;
    K : (ncls, ne, kh, kw) centred kernels; F : (ncls, kh, kw) footprint (1 inside the
    radius); box : (ncls, ne, 4) rows [y0, y1) and columns [x0, x1) of the box of the
    kernel's positive values (the terms); ix, iy, cls : the component pixel under each output
    pixel and its offset class; only the output pixels ``sel`` and the energy bins
    [k0, k1) are summed."""
    ne, ny, nx = n.shape
    nbg = B.shape[3]
    kh, kw = K.shape[2], K.shape[3]
    ry, rx = kh // 2, kw // 2
    P = theta.shape[1]
    for jj in prange(sel.size):
        j = sel[jj]
        a = theta[j, 0]
        d = theta[j, 1:]
        c = cls[j]
        gj = np.zeros(P)
        hj = np.zeros((P, P))
        acc = np.zeros(3)
        lj = 0.0
        for k in range(k0, k1):
            for dy in range(box[c, k, 0], box[c, k, 1]):
                y = iy[j] + dy - ry
                if y < 0 or y >= ny:
                    continue
                for dx in range(box[c, k, 2], box[c, k, 3]):
                    x = ix[j] + dx - rx
                    if x < 0 or x >= nx or F[c, dy, dx] == 0:
                        continue
                    s = K[c, k, dy, dx]
                    if s <= 0.0:           # the terms are those of the kernel's pixels
                        continue
                    if nbg == 0:
                        _add_term_a(a, s, n[k, y, x], m[k, y, x], w[k, y, x], acc)
                    else:
                        lj += _add_term(a, s, n[k, y, x], m[k, y, x], w[k, y, x],
                                        B[k, y, x], d, gj, hj, nbg)
        if nbg == 0:
            gj[0] += acc[0]
            hj[0, 0] += acc[1]
            lj += acc[2]
        L[j] += lj
        for p in range(P):
            g[j, p] += gj[p]
            for q in range(P):
                H[j, p, q] += hj[p, q]


@pnjit
def sparse_accumulate(theta, n, m, w, B, indptr, idx, vals, k0, k1, g, H, L, sel):
    """n, m, w : (ne, npix); B : (ne, npix, nb); output pixel j uses the component pixels
    idx[indptr[j]:indptr[j+1]] (its footprint) with kernel values vals[:, same range]."""
    nbg = B.shape[2]
    P = theta.shape[1]
    for jj in prange(sel.size):
        j = sel[jj]
        a = theta[j, 0]
        d = theta[j, 1:]
        gj = np.zeros(P)
        hj = np.zeros((P, P))
        acc = np.zeros(3)
        lj = 0.0
        for e in range(indptr[j], indptr[j + 1]):
            p = idx[e]
            for k in range(k0, k1):
                s = vals[k, e]
                if s <= 0.0:
                    continue
                if nbg == 0:
                    _add_term_a(a, s, n[k, p], m[k, p], w[k, p], acc)
                else:
                    lj += _add_term(a, s, n[k, p], m[k, p], w[k, p], B[k, p], d, gj, hj,
                                    nbg)
        if nbg == 0:
            gj[0] += acc[0]
            hj[0, 0] += acc[1]
            lj += acc[2]
        L[j] += lj
        for p in range(P):
            g[j, p] += gj[p]
            for q in range(P):
                H[j, p, q] += hj[p, q]


def _terms_numpy(theta_j, s, nn, mm, ww, bb):
    """numpy reference of the terms of one output pixel: s, nn, mm, ww (ne, q); bb
    (ne, q, nb).  Returns (g (P,), H (P, P), L)."""
    keep = s > 0
    s, nn, mm, ww, bb = s[keep], nn[keep], mm[keep], ww[keep], bb[keep]
    a, d = theta_j[0], theta_j[1:]
    mu = mm + a * s + (bb @ d if d.size else 0.0)
    v = np.concatenate([s[..., None], bb], axis=-1)            # (terms, P)
    with np.errstate(divide="ignore", invalid="ignore"):
        has = nn > 0
        bad = has & ((mu <= 0) | (mm <= 0))
        lt = np.where(has, ww * (nn * (np.log(mu) - np.log(mm)) - (mu - mm)), -ww * (mu - mm))
        r = np.where(has & ~bad, nn / mu, 0.0)
        c1 = np.where(bad, 0.0, ww * (r - 1.0))
        c2 = np.where(bad, 0.0, ww * r / mu)
    if bad.any():
        lsum = -np.inf
    else:
        lsum = float(lt.sum())
    g = np.einsum("q,qp->p", c1, v)
    H = -np.einsum("q,qp,qr->pr", c2, v, v)
    return g, H, lsum


def wcs_accumulate_numpy(theta, n, m, w, B, K, F, box, ix, iy, cls, k0, k1, g, H, L, sel):
    """numpy reference of :func:`wcs_accumulate` (one output pixel at a time, the whole
    footprint: ``box`` is not used)."""
    ne, ny, nx = n.shape
    kh, kw = K.shape[2], K.shape[3]
    ry, rx = kh // 2, kw // 2
    for j in np.asarray(sel):
        ys = iy[j] + np.arange(kh) - ry
        xs = ix[j] + np.arange(kw) - rx
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx) & (F[cls[j]] != 0)
        dy, dx = np.nonzero(ok)
        y, x = yy[ok], xx[ok]
        ks = slice(k0, k1)
        s = K[cls[j]][ks][:, dy, dx]
        gj, hj, lj = _terms_numpy(theta[j], s, n[ks][:, y, x], m[ks][:, y, x],
                                  w[ks][:, y, x], B[ks][:, y, x, :])
        g[j] += gj
        H[j] += hj
        L[j] += lj


def sparse_accumulate_numpy(theta, n, m, w, B, indptr, idx, vals, k0, k1, g, H, L, sel):
    """numpy reference of :func:`sparse_accumulate` (one output pixel at a time)."""
    ks = slice(k0, k1)
    for j in np.asarray(sel):
        e = slice(indptr[j], indptr[j + 1])
        p = idx[e]
        gj, hj, lj = _terms_numpy(theta[j], vals[ks, e], n[ks][:, p], m[ks][:, p],
                                  w[ks][:, p], B[ks][:, p, :])
        g[j] += gj
        H[j] += hj
        L[j] += lj


def wcs_box(K, F, whole):
    """(ncls, ne, 4) int64 kernel boxes for :func:`wcs_accumulate`: the footprint's box
    when ``whole``, else the box of the kernel's positive values (empty when none)."""
    ncls, ne, kh, kw = K.shape
    out = np.zeros((ncls, ne, 4), dtype=np.int64)
    for c in range(ncls):
        for k in range(ne):
            on = (F[c] != 0) if whole else ((K[c, k] > 0) & (F[c] != 0))
            ys, xs = np.nonzero(on.any(axis=1))[0], np.nonzero(on.any(axis=0))[0]
            if ys.size:
                out[c, k] = (ys[0], ys[-1] + 1, xs[0], xs[-1] + 1)
    return out


@njit
def _scan_term(s, nn, mm, ww, bvals, d, apts, lj, nbg):
    """Add one (energy, pixel) term of log L at each norm of ``apts`` to ``lj``, the
    background at the shifts ``d`` (fixed): w (n log(1 + a s / mb) - a s), mb = m +
    sum_b d_b B_b.  Terms without counts are linear in a."""
    mb = mm
    for b in range(nbg):
        mb += d[b] * bvals[b]
    for q in range(apts.size):
        a = apts[q]
        if nn == 0.0:
            lj[q] -= ww * a * s
        elif mb <= 0.0:
            lj[q] = -np.inf
        else:
            lj[q] += ww * (nn * np.log1p(a * s / mb) - a * s)


@pnjit
def wcs_scan(apts, theta, n, m, w, B, K, F, box, ix, iy, cls, k0, k1, out, sel):
    """log L (minus its value at norm 0) at the norms ``apts[j]`` (npix, q) of every
    output pixel j of ``sel``, the background shifts fixed at theta[j, 1:]; the kernel's
    terms only (those with s = 0 do not depend on the norm), within ``box`` (the box of
    the kernel's positive values)."""
    ne, ny, nx = n.shape
    nbg = B.shape[3]
    kh, kw = K.shape[2], K.shape[3]
    ry, rx = kh // 2, kw // 2
    for jj in prange(sel.size):
        j = sel[jj]
        d = theta[j, 1:]
        c = cls[j]
        ap = apts[j]
        lj = np.zeros(ap.size)
        for k in range(k0, k1):
            for dy in range(box[c, k, 0], box[c, k, 1]):
                y = iy[j] + dy - ry
                if y < 0 or y >= ny:
                    continue
                for dx in range(box[c, k, 2], box[c, k, 3]):
                    x = ix[j] + dx - rx
                    if x < 0 or x >= nx or F[c, dy, dx] == 0:
                        continue
                    s = K[c, k, dy, dx]
                    if s <= 0.0:
                        continue
                    _scan_term(s, n[k, y, x], m[k, y, x], w[k, y, x], B[k, y, x], d, ap,
                               lj, nbg)
        for q in range(ap.size):
            out[j, q] += lj[q]


@pnjit
def sparse_scan(apts, theta, n, m, w, B, indptr, idx, vals, k0, k1, out, sel):
    """:func:`wcs_scan` for the sparse (HEALPix) placement."""
    nbg = B.shape[2]
    for jj in prange(sel.size):
        j = sel[jj]
        d = theta[j, 1:]
        ap = apts[j]
        lj = np.zeros(ap.size)
        for e in range(indptr[j], indptr[j + 1]):
            p = idx[e]
            for k in range(k0, k1):
                s = vals[k, e]
                if s <= 0.0:
                    continue
                _scan_term(s, n[k, p], m[k, p], w[k, p], B[k, p], d, ap, lj, nbg)
        for q in range(ap.size):
            out[j, q] += lj[q]


def s_size(nk, pix) -> int:
    """Terms of ``nk`` bins over the pixels ``pix`` (explicit: a reshape with -1 fails
    on size 0)."""
    return int(nk) * int(np.size(pix))


def _scan_numpy(ap, d, s, nn, mm, ww, bb):
    mb = mm + (bb @ d if d.size else 0.0)
    pos = s > 0
    s, nn, mb, ww = s[pos], nn[pos], mb[pos], ww[pos]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(nn[None] > 0, ww[None] * (nn[None] * np.log1p(ap[:, None] * s[None]
                                                                     / mb[None])),
                     0.0) - ww[None] * ap[:, None] * s[None]
    bad = (nn > 0) & (mb <= 0)
    return np.where(bad.any(), -np.inf, t.sum(axis=1))


def wcs_scan_numpy(apts, theta, n, m, w, B, K, F, box, ix, iy, cls, k0, k1, out, sel):
    """numpy reference of :func:`wcs_scan` (one output pixel at a time, the whole
    footprint)."""
    ne, ny, nx = n.shape
    kh, kw = K.shape[2], K.shape[3]
    ry, rx = kh // 2, kw // 2
    ks = slice(k0, k1)
    for j in np.asarray(sel):
        yy, xx = np.meshgrid(iy[j] + np.arange(kh) - ry, ix[j] + np.arange(kw) - rx,
                             indexing="ij")
        ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx) & (F[cls[j]] != 0)
        dy, dx = np.nonzero(ok)
        y, x = yy[ok], xx[ok]
        out[j] += _scan_numpy(apts[j], theta[j, 1:], K[cls[j]][ks][:, dy, dx].ravel(),
                              n[ks][:, y, x].ravel(), m[ks][:, y, x].ravel(),
                              w[ks][:, y, x].ravel(),
                              B[ks][:, y, x, :].reshape(s_size(k1 - k0, y), B.shape[3]))


def sparse_scan_numpy(apts, theta, n, m, w, B, indptr, idx, vals, k0, k1, out, sel):
    """numpy reference of :func:`sparse_scan`."""
    ks = slice(k0, k1)
    for j in np.asarray(sel):
        e = slice(indptr[j], indptr[j + 1])
        p = idx[e]
        out[j] += _scan_numpy(apts[j], theta[j, 1:], vals[ks, e].ravel(),
                              n[ks][:, p].ravel(), m[ks][:, p].ravel(), w[ks][:, p].ravel(),
                              B[ks][:, p, :].reshape(s_size(k1 - k0, p), B.shape[2]))
