"""numba kernels of the binned Poisson likelihood.

Data layout (plain arrays, no xarray):

* ``counts``  (n_bins, n_pix) float64 observed counts;
* ``wts``     (n_bins, n_pix) float64 likelihood weights, or a (0, 0) array for "no weights";
* ``fixed``   (n_bins, n_pix) float64 counts of the sources without free parameters, or
  (0, 0) for none;
* ``maps``    (n_src, n_nodes, n_pix) float32 or float64 source maps at the energy nodes
  (n_nodes = n_bins + 1), never copied: ``idx`` (n_fs,) int64 picks the sources a kernel
  works on;
* ``lo``/``hi`` (n_fs, n_bins) node weights: counts of source j in bin i, pixel p are
  ``lo[j, i] maps[idx[j], i, p] + hi[j, i] maps[idx[j], i + 1, p]`` (see
  :func:`fermixr.likelihood.npred.node_weights`);
* ``k0``, ``k1``: the energy bins used, ``k0 <= i < k1``.

The model cube is a weighted sum of the maps, so a change of normalisation is a change of
``lo``/``hi`` only (a multiply-add per map element).  log L = sum_{i,p} w (n log m - m),
without the constant -log n! (gtlike's ``BinnedLikelihood::value`` does not include it
either, so values compare with gtlike/Fermipy ``loglike`` directly).

The log-likelihood kernels work on units of (a block of ``blk`` energy bins) x (a segment
of ``seg`` pixels): each unit streams the long contiguous node rows of every source once
into its model rows, and, for the gradient, once more while they are still in cache.
Partial sums are kept per pixel segment and added in a fixed order, so the serial and the
parallel variants (which share the unit function) give identical numbers whatever the
thread count.

The slow numpy references of every kernel are the ``*_reference`` functions at the end of
this module (tested against the kernels in ``tests/test_likelihood_kernels.py``).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit, pnjit, prange

# reassociation lets LLVM vectorise the reductions; no nnan/ninf, so inf and nan keep
# their meaning (a zero model under observed counts gives log L = -inf)
_FM = {"reassoc", "contract"}


# ---------------------------------------------------------------------------------------
# log-likelihood, its residual sums (for the gradient) and the model cube
# ---------------------------------------------------------------------------------------
@njit(fastmath=_FM)
def _model_rows1(M, maps, idx, lo, hi, j, i0, i1, p0, p1):
    """Add source j's node rows i0..i1 (pixels p0..p1) into the block's model rows M."""
    n = p1 - p0
    s = idx[j]
    for k in range(i0, i1 + 1):
        row = maps[s, k, p0:p1]
        if i0 < k < i1:
            b = hi[j, k - 1]
            a = lo[j, k]
            mb = M[k - 1 - i0]
            ma = M[k - i0]
            for p in range(n):
                x = row[p]
                mb[p] += b * x
                ma[p] += a * x
        elif k > i0:
            b = hi[j, k - 1]
            mb = M[k - 1 - i0]
            for p in range(n):
                mb[p] += b * row[p]
        else:
            a = lo[j, k]
            ma = M[k - i0]
            for p in range(n):
                ma[p] += a * row[p]


@njit(fastmath=_FM)
def _model_rows4(M, maps, idx, lo, hi, j, i0, i1, p0, p1):
    """:func:`_model_rows1` for sources j..j+3 at once."""
    n = p1 - p0
    for k in range(i0, i1 + 1):
        x0 = maps[idx[j], k, p0:p1]
        x1 = maps[idx[j + 1], k, p0:p1]
        x2 = maps[idx[j + 2], k, p0:p1]
        x3 = maps[idx[j + 3], k, p0:p1]
        if k > i0:
            b0 = hi[j, k - 1]
            b1 = hi[j + 1, k - 1]
            b2 = hi[j + 2, k - 1]
            b3 = hi[j + 3, k - 1]
        if k < i1:
            a0 = lo[j, k]
            a1 = lo[j + 1, k]
            a2 = lo[j + 2, k]
            a3 = lo[j + 3, k]
        if i0 < k < i1:
            mb = M[k - 1 - i0]
            ma = M[k - i0]
            for p in range(n):
                y0 = x0[p]
                y1 = x1[p]
                y2 = x2[p]
                y3 = x3[p]
                mb[p] += b0 * y0 + b1 * y1 + b2 * y2 + b3 * y3
                ma[p] += a0 * y0 + a1 * y1 + a2 * y2 + a3 * y3
        elif k > i0:
            mb = M[k - 1 - i0]
            for p in range(n):
                mb[p] += b0 * x0[p] + b1 * x1[p] + b2 * x2[p] + b3 * x3[p]
        else:
            ma = M[k - i0]
            for p in range(n):
                ma[p] += a0 * x0[p] + a1 * x1[p] + a2 * x2[p] + a3 * x3[p]


@njit(fastmath=_FM)
def _resid_sums1(R, maps, idx, j, i0, i1, p0, p1, A, B):
    """A[j, i] += r_i . S_i and B[j, i] += r_i . S_{i+1} for the block's bins."""
    n = p1 - p0
    s = idx[j]
    for k in range(i0, i1 + 1):
        row = maps[s, k, p0:p1]
        if i0 < k < i1:
            rb = R[k - 1 - i0]
            ra = R[k - i0]
            sb = 0.0
            sa = 0.0
            for p in range(n):
                x = row[p]
                sb += rb[p] * x
                sa += ra[p] * x
            B[j, k - 1] += sb
            A[j, k] += sa
        elif k > i0:
            rb = R[k - 1 - i0]
            sb = 0.0
            for p in range(n):
                sb += rb[p] * row[p]
            B[j, k - 1] += sb
        else:
            ra = R[k - i0]
            sa = 0.0
            for p in range(n):
                sa += ra[p] * row[p]
            A[j, k] += sa


@njit(fastmath=_FM)
def _resid_sums4(R, maps, idx, j, i0, i1, p0, p1, A, B):
    """:func:`_resid_sums1` for sources j..j+3 at once (one load of r per four rows)."""
    n = p1 - p0
    for k in range(i0, i1 + 1):
        x0 = maps[idx[j], k, p0:p1]
        x1 = maps[idx[j + 1], k, p0:p1]
        x2 = maps[idx[j + 2], k, p0:p1]
        x3 = maps[idx[j + 3], k, p0:p1]
        if k > i0:
            rb = R[k - 1 - i0]
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for p in range(n):
                r = rb[p]
                s0 += r * x0[p]
                s1 += r * x1[p]
                s2 += r * x2[p]
                s3 += r * x3[p]
            B[j, k - 1] += s0
            B[j + 1, k - 1] += s1
            B[j + 2, k - 1] += s2
            B[j + 3, k - 1] += s3
        if k < i1:
            ra = R[k - i0]
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for p in range(n):
                r = ra[p]
                s0 += r * x0[p]
                s1 += r * x1[p]
                s2 += r * x2[p]
                s3 += r * x3[p]
            A[j, k] += s0
            A[j + 1, k] += s1
            A[j + 2, k] += s2
            A[j + 3, k] += s3


@njit(fastmath=_FM)
def poisson_row(mr, cr, wts, i, p0, R, r, want_grad):
    """sum_p w (n log m - m) over one row of pixels: model ``mr``, counts ``cr``, weights
    ``wts[i, p0 + p]`` (all 1 when ``wts`` is empty); with ``want_grad`` the residuals
    w (n/m - 1) go to ``R[r, p]``.  A pixel of weight 0 contributes nothing; counts on a
    zero model give -inf."""
    has_w = wts.shape[0] > 0
    acc = 0.0
    for p in range(mr.shape[0]):
        mp = mr[p]
        nn = cr[p]
        w = wts[i, p0 + p] if has_w else 1.0
        if w == 0.0:
            rr = 0.0
        elif nn > 0.0:
            if mp > 0.0:
                acc += w * (nn * math.log(mp) - mp)
            else:
                acc += -math.inf
            rr = w * (nn / mp - 1.0)
        else:
            acc += -w * mp
            rr = -w
        if want_grad:
            R[r, p] = rr
    return acc


@njit(fastmath=_FM)
def _loglike_unit(counts, wts, fixed, maps, idx, lo, hi, i0, i1, p0, p1, want_grad, A, B,
                  llb, mout):
    """One work unit: bins i0..i1 (a block) x pixels p0..p1 (a segment).

    Pass 1 streams, source by source, the rows of nodes i0..i1 (each node row feeds the
    bin below and the bin above it) into the block's model rows; then log L per bin
    (into ``llb[i]``) and the residual rows r = w (n/m - 1); pass 2 (``want_grad``) streams
    the same node rows again (still in cache) into A[j, i] += r_i . S_i and
    B[j, i] += r_i . S_{i+1}."""
    n = p1 - p0
    nblk = i1 - i0
    nfs = idx.shape[0]
    M = np.empty((nblk, n))
    for ii in range(nblk):
        mr = M[ii]
        if fixed.shape[0] > 0:
            fr = fixed[i0 + ii, p0:p1]
            for p in range(n):
                mr[p] = fr[p]
        else:
            for p in range(n):
                mr[p] = 0.0
    # sources in groups of four: one load/store of the model rows per four map rows
    j4 = nfs - nfs % 4
    for j in range(0, j4, 4):
        _model_rows4(M, maps, idx, lo, hi, j, i0, i1, p0, p1)
    for j in range(j4, nfs):
        _model_rows1(M, maps, idx, lo, hi, j, i0, i1, p0, p1)
    R = np.empty((nblk, n)) if want_grad else np.empty((0, 0))
    for ii in range(nblk):
        i = i0 + ii
        mr = M[ii]
        llb[i] = poisson_row(mr, counts[i, p0:p1], wts, i, p0, R, ii, want_grad)
        if mout.shape[0] > 0:
            mo = mout[i, p0:p1]
            for p in range(n):
                mo[p] = mr[p]
    if not want_grad:
        return
    for j in range(0, j4, 4):
        _resid_sums4(R, maps, idx, j, i0, i1, p0, p1, A, B)
    for j in range(j4, nfs):
        _resid_sums1(R, maps, idx, j, i0, i1, p0, p1, A, B)


@njit
def _units(npix, k0, k1, seg, blk):
    nseg = (npix + seg - 1) // seg
    nbk = (k1 - k0 + blk - 1) // blk
    return nseg, nbk


@njit
def _unit_bounds(u, nbk, npix, k0, k1, seg, blk):
    sg = u // nbk
    bk = u - sg * nbk
    i0 = k0 + bk * blk
    return sg, i0, min(k1, i0 + blk), sg * seg, min(npix, sg * seg + seg)


@njit
def _reduce_units(llb, A, B, k0, k1):
    tot = 0.0
    for sg in range(llb.shape[0]):
        for i in range(k0, k1):
            tot += llb[sg, i]
    As = A[0].copy()
    Bs = B[0].copy()
    for sg in range(1, llb.shape[0]):
        As += A[sg]
        Bs += B[sg]
    return tot, As, Bs


@njit
def loglike_serial(counts, wts, fixed, maps, idx, lo, hi, k0, k1, seg, blk, want_grad,
                   mout):
    """(log L, A, B) over bins k0..k1, with A[j, i] = sum_p r S_{idx[j], i, p},
    B[j, i] = sum_p r S_{idx[j], i+1, p}, r = w (n/m - 1) (zeros unless ``want_grad``).
    ``mout`` (n_bins, n_pix) receives the model cube of bins k0..k1 unless it is a (0, 0)
    array.  Work units are blocks of ``blk`` bins x segments of ``seg`` pixels; partial
    sums are kept per pixel segment and added in a fixed order."""
    nb, npix = counts.shape
    nseg, nbk = _units(npix, k0, k1, seg, blk)
    nfs = idx.shape[0]
    A = np.zeros((nseg, nfs, nb))
    B = np.zeros((nseg, nfs, nb))
    llb = np.zeros((nseg, nb))
    for u in range(nseg * nbk):
        sg, i0, i1, p0, p1 = _unit_bounds(u, nbk, npix, k0, k1, seg, blk)
        _loglike_unit(counts, wts, fixed, maps, idx, lo, hi, i0, i1, p0, p1, want_grad,
                      A[sg], B[sg], llb[sg], mout)
    return _reduce_units(llb, A, B, k0, k1)


@pnjit
def loglike_parallel(counts, wts, fixed, maps, idx, lo, hi, k0, k1, seg, blk, want_grad,
                     mout):
    """Parallel twin of :func:`loglike_serial`: the same units and the same reduction
    order, so the same numbers whatever the thread count."""
    nb, npix = counts.shape
    nseg, nbk = _units(npix, k0, k1, seg, blk)
    nfs = idx.shape[0]
    A = np.zeros((nseg, nfs, nb))
    B = np.zeros((nseg, nfs, nb))
    llb = np.zeros((nseg, nb))
    for u in prange(nseg * nbk):
        sg, i0, i1, p0, p1 = _unit_bounds(u, nbk, npix, k0, k1, seg, blk)
        _loglike_unit(counts, wts, fixed, maps, idx, lo, hi, i0, i1, p0, p1, want_grad,
                      A[sg], B[sg], llb[sg], mout)
    return _reduce_units(llb, A, B, k0, k1)


@njit(fastmath=_FM)
def _model_cube_bin(fixed, maps, idx, lo, hi, i, out):
    o = out[i]
    npix = out.shape[1]
    if fixed.shape[0] > 0:
        for p in range(npix):
            o[p] = fixed[i, p]
    else:
        for p in range(npix):
            o[p] = 0.0
    for j in range(idx.shape[0]):
        a = lo[j, i]
        b = hi[j, i]
        if a == 0.0 and b == 0.0:
            continue
        u = maps[idx[j], i]
        v = maps[idx[j], i + 1]
        for p in range(npix):
            o[p] += a * u[p] + b * v[p]


@njit
def model_cube_serial(fixed, maps, idx, lo, hi, k0, k1, out):
    """Write the model cube into ``out`` (n_bins, n_pix) for bins k0..k1:
    fixed (or 0) + sum_j lo[j, i] S_{idx[j], i} + hi[j, i] S_{idx[j], i+1}."""
    for i in range(k0, k1):
        _model_cube_bin(fixed, maps, idx, lo, hi, i, out)


@pnjit
def model_cube_parallel(fixed, maps, idx, lo, hi, k0, k1, out):
    """Parallel twin of :func:`model_cube_serial` (one bin per task)."""
    for i in prange(k0, k1):
        _model_cube_bin(fixed, maps, idx, lo, hi, i, out)


@njit(fastmath=_FM)
def _node_sums_src(maps, wts, k0, k1, s, L, U):
    npix = maps.shape[2]
    has_w = wts.shape[0] > 0
    for i in range(k0, k1):
        u = maps[s, i]
        v = maps[s, i + 1]
        sa = 0.0
        sb = 0.0
        if has_w:
            w = wts[i]
            for p in range(npix):
                sa += w[p] * u[p]
                sb += w[p] * v[p]
        else:
            for p in range(npix):
                sa += u[p]
                sb += v[p]
        L[s, i] = sa
        U[s, i] = sb


@njit
def node_sums_serial(maps, wts, k0, k1):
    """Per-source pixel sums feeding the bin counts: (L, U), each (n_src, n_bins), with
    L[s, i] = sum_p w[i, p] S[s, i, p] and U[s, i] = sum_p w[i, p] S[s, i+1, p]
    (w = 1 when ``wts`` is a (0, 0) array).  Counts of source s in bin i are then
    lo[s, i] L[s, i] + hi[s, i] U[s, i]."""
    L = np.zeros((maps.shape[0], maps.shape[1] - 1))
    U = np.zeros_like(L)
    for s in range(maps.shape[0]):
        _node_sums_src(maps, wts, k0, k1, s, L, U)
    return L, U


@pnjit
def node_sums_parallel(maps, wts, k0, k1):
    """Parallel twin of :func:`node_sums_serial` (one source per task)."""
    L = np.zeros((maps.shape[0], maps.shape[1] - 1))
    U = np.zeros_like(L)
    for s in prange(maps.shape[0]):
        _node_sums_src(maps, wts, k0, k1, s, L, U)
    return L, U


# ---------------------------------------------------------------------------------------
# incremental log-likelihood: a few sources' node weights changed by (dlo, dhi)
# ---------------------------------------------------------------------------------------
@njit
def chunk_support(maps, s, ch):
    """(n_nodes, n_chunks) bool: whether node row k of map ``s`` has a non-zero pixel in
    chunk c (pixels c*ch .. min(n_pix, (c+1)*ch))."""
    nn = maps.shape[1]
    npix = maps.shape[2]
    nch = (npix + ch - 1) // ch
    out = np.zeros((nn, nch), dtype=np.bool_)
    for k in range(nn):
        row = maps[s, k]
        for c in range(nch):
            for p in range(c * ch, min(npix, c * ch + ch)):
                if row[p] != 0.0:
                    out[k, c] = True
                    break
    return out


@njit(fastmath=_FM)
def delta_term(mo, d, nn, w):
    """(change of w (n log m - m) when m goes from ``mo`` to ``mo + d``, its rounding
    scale in units of the machine epsilon, bad).  The change is w (n log1p(x) - d) with
    x = d/mo (log1p by its series below |x| = 1e-4, where the series' error is under
    1e-16 of the term); the scale bounds w (|mo| + |d|) (1 + n/(mo + d)), the rounding
    error of mo + d carried into the term, which is large where the change cancels most
    of the model; ``bad`` when a pixel with counts has (or had) a model <= 0 (log L is
    -inf there: only a full evaluation says what it is)."""
    if w == 0.0:
        return 0.0, 0.0, False
    sc = abs(mo) + abs(d)
    if nn > 0.0:
        if mo <= 0.0:
            return 0.0, 0.0, True
        inv = 1.0 / mo
        x = d * inv
        if x > -0.5:                       # mo + d > mo / 2: 1/(mo + d) < 2/mo
            if abs(x) < 1e-4:
                lx = x * (1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x)))
            else:
                lx = math.log1p(x)
            return w * (nn * lx - d), w * sc * (1.0 + 2.0 * nn * inv), False
        mn = mo + d
        if mn <= 0.0:
            return 0.0, 0.0, True
        return w * (nn * math.log1p(x) - d), w * sc * (1.0 + nn / mn), False
    return -w * d, w * sc, False


@njit(fastmath=_FM)
def _delta_bin(counts, wts, m, maps, idx, dlo, dhi, i, chunks, c0, c1, ch, write):
    """Change of log L of bin i over the pixel chunks chunks[c0:c1] (see
    :func:`delta_loglike_serial`); the new model into ``m`` with ``write``."""
    npix = counts.shape[1]
    has_w = wts.shape[0] > 0
    nk = idx.shape[0]
    acc = 0.0
    err = 0.0
    bad = False
    a0 = dlo[0, i]
    b0 = dhi[0, i]
    u0 = maps[idx[0], i]
    v0 = maps[idx[0], i + 1]
    mi = m[i]
    ci = counts[i]
    for cc in range(c0, c1):
        p0 = chunks[cc] * ch
        p1 = min(npix, p0 + ch)
        for p in range(p0, p1):
            d = a0 * u0[p] + b0 * v0[p]
            for j in range(1, nk):
                d += dlo[j, i] * maps[idx[j], i, p] + dhi[j, i] * maps[idx[j], i + 1, p]
            if d == 0.0:
                continue
            mo = mi[p]
            t, e, b = delta_term(mo, d, ci[p], wts[i, p] if has_w else 1.0)
            acc += t
            err += e
            bad = bad or b
            if write:
                mi[p] = mo + d
    return acc, err, bad


@njit
def _delta_reduce(dll, err, bad):
    tot = 0.0
    et = 0.0
    bb = False
    for u in range(dll.shape[0]):
        tot += dll[u]
        et += err[u]
        bb = bb or bad[u]
    return tot, et, bb


@njit
def delta_loglike_serial(counts, wts, m, maps, idx, dlo, dhi, ubin, uptr, chunks, ch,
                         write):
    """(d log L, rounding scale, bad) when sources ``idx`` (map indices) change their node
    weights by ``dlo``/``dhi`` (len(idx), n_bins) on the model cube ``m`` (n_bins, n_pix).

    Work units are the bins ``ubin``: unit u covers the pixel chunks
    ``chunks[uptr[u]:uptr[u+1]]`` of ``ch`` pixels (the chunks where a changed map is
    non-zero).  A pixel whose model does not change (d = 0) is skipped.  The rounding
    scale is the sum of :func:`delta_term`'s scales (times the machine epsilon: a bound
    on how far d log L may be from the difference of two full evaluations); ``bad`` when a
    pixel with counts has a model <= 0 before or after.  With ``write`` the new model is
    stored in ``m``.  Per-unit partial sums are added in unit order."""
    nu = ubin.shape[0]
    dll = np.zeros(nu)
    err = np.zeros(nu)
    bad = np.zeros(nu, dtype=np.bool_)
    for u in range(nu):
        dll[u], err[u], bad[u] = _delta_bin(counts, wts, m, maps, idx, dlo, dhi, ubin[u],
                                            chunks, uptr[u], uptr[u + 1], ch, write)
    return _delta_reduce(dll, err, bad)


@pnjit
def delta_loglike_parallel(counts, wts, m, maps, idx, dlo, dhi, ubin, uptr, chunks, ch,
                           write):
    """Parallel twin of :func:`delta_loglike_serial` (one unit per task, the same
    reduction order)."""
    nu = ubin.shape[0]
    dll = np.zeros(nu)
    err = np.zeros(nu)
    bad = np.zeros(nu, dtype=np.bool_)
    for u in prange(nu):
        dll[u], err[u], bad[u] = _delta_bin(counts, wts, m, maps, idx, dlo, dhi, ubin[u],
                                            chunks, uptr[u], uptr[u + 1], ch, write)
    return _delta_reduce(dll, err, bad)


# ---------------------------------------------------------------------------------------
# information matrices: sum_{i,p} v[i,p] D_q[i,p] D_r[i,p],
# D_q = dlo[q, i] S[src[q], i] + dhi[q, i] S[src[q], i+1]
# (v = w/m: expected (Fisher) information; v = w n/m^2: the observed one, norm part)
# ---------------------------------------------------------------------------------------
_TINY = 1e-280     # derivative-cube values below this are flushed to 0 (no subnormal BLAS)


@njit(fastmath=_FM)
def _fill_scaled_derivs(sv, maps, qsrc, dlo, dhi, i, p0, p1, G):
    """G[q, p] = sqrt(v)[p] (dlo[q, i] S[qsrc[q], i, p0+p] + dhi[q, i] S[qsrc[q], i+1, p0+p])."""
    n = p1 - p0
    for q in range(qsrc.shape[0]):
        a = dlo[q, i]
        b = dhi[q, i]
        u = maps[qsrc[q], i, p0:p1]
        v = maps[qsrc[q], i + 1, p0:p1]
        g = G[q]
        for p in range(n):
            d = a * u[p] + b * v[p]
            if -_TINY < d < _TINY:
                d = 0.0
            g[p] = d * sv[p]


@njit
def info_matrix(sqrtv, maps, qsrc, dlo, dhi, k0, k1, seg):
    """(nq, nq) matrix sum_{i,p} v[i,p] D_q[i,p] D_r[i,p] over bins k0..k1 from the square
    roots of the weights ``sqrtv`` (n_bins, n_pix), with
    D_q = dlo[q, i] S[qsrc[q], i] + dhi[q, i] S[qsrc[q], i+1].  Per bin and pixel segment
    of ``seg`` pixels the rows G = D sqrt(v) are built and G G^T is added with one BLAS
    matrix product (which brings its own threads, so there is no parallel twin)."""
    npix = sqrtv.shape[1]
    nq = qsrc.shape[0]
    F = np.zeros((nq, nq))
    seg = max(1, min(seg, npix))
    for p0 in range(0, npix, seg):
        p1 = min(npix, p0 + seg)
        G = np.empty((nq, p1 - p0))
        for i in range(k0, k1):
            _fill_scaled_derivs(sqrtv[i, p0:p1], maps, qsrc, dlo, dhi, i, p0, p1, G)
            F += np.dot(G, G.T)
    for q in range(nq):
        for r in range(q + 1, nq):
            x = 0.5 * (F[q, r] + F[r, q])
            F[q, r] = x
            F[r, q] = x
    return F


@njit
def info_weights(counts, wts, model, k0, k1, observed, out):
    """Square roots of the information weights into ``out`` (n_bins, n_pix):
    sqrt(w/m) (expected) or sqrt(w n)/m (observed); 0 where m <= 0 or outside k0..k1."""
    npix = counts.shape[1]
    has_w = wts.shape[0] > 0
    for i in range(counts.shape[0]):
        o = out[i]
        if i < k0 or i >= k1:
            for p in range(npix):
                o[p] = 0.0
            continue
        for p in range(npix):
            m = model[i, p]
            w = wts[i, p] if has_w else 1.0
            if m > 0.0:
                if observed:
                    o[p] = math.sqrt(w * counts[i, p]) / m
                else:
                    o[p] = math.sqrt(w / m)
            else:
                o[p] = 0.0


# ---------------------------------------------------------------------------------------
# slow references (plain numpy, obvious)
# ---------------------------------------------------------------------------------------
def _sel(nb, k0, k1):
    sel = np.zeros(nb, dtype=bool)
    sel[k0:k1] = True
    return sel


def model_cube_reference(fixed, maps, idx, lo, hi, k0, k1):
    nb = maps.shape[1] - 1
    m = np.zeros((nb, maps.shape[2])) if fixed.shape[0] == 0 else np.array(fixed, float)
    for j, s in enumerate(idx):
        m = m + lo[j][:, None] * maps[s, :-1].astype(float) \
            + hi[j][:, None] * maps[s, 1:].astype(float)
    m[~_sel(nb, k0, k1)] = 0.0
    return m


def loglike_reference(counts, wts, fixed, maps, idx, lo, hi, k0, k1):
    """(log L, A, B, model) by the book."""
    nb = counts.shape[0]
    sel = _sel(nb, k0, k1)
    m = model_cube_reference(fixed, maps, idx, lo, hi, k0, k1)
    w = np.ones_like(m) if wts.shape[0] == 0 else wts
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(np.where(m > 0, m, 0.0)), 0.0) - m
        r = np.where(counts > 0, w * (counts / m - 1.0), -w)
        terms = np.where(w != 0, w * terms, 0.0)
        r = np.where(w != 0, r, 0.0)
    ll = float(np.sum(terms[sel]))
    r[~sel] = 0.0
    A = np.array([np.sum(r * maps[s, :-1], axis=1) for s in idx]).reshape(len(idx), nb)
    B = np.array([np.sum(r * maps[s, 1:], axis=1) for s in idx]).reshape(len(idx), nb)
    return ll, A, B, m


def node_sums_reference(maps, wts, k0, k1):
    nb = maps.shape[1] - 1
    w = np.ones((nb, maps.shape[2])) if wts.shape[0] == 0 else wts
    L = np.einsum("ip,sip->si", w, maps[:, :-1].astype(float))
    U = np.einsum("ip,sip->si", w, maps[:, 1:].astype(float))
    sel = _sel(nb, k0, k1)
    L[:, ~sel] = 0.0
    U[:, ~sel] = 0.0
    return L, U


def info_reference(vcube, maps, qsrc, dlo, dhi, k0, k1):
    nb = vcube.shape[0]
    sel = _sel(nb, k0, k1)
    D = np.array([dlo[q][:, None] * maps[s, :-1] + dhi[q][:, None] * maps[s, 1:]
                  for q, s in enumerate(qsrc)]).reshape(len(qsrc), nb, -1)
    D = D[:, sel]
    return np.einsum("qip,ip,rip->qr", D, vcube[sel], D)
