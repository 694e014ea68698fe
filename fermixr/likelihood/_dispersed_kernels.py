"""numba kernels of the binned Poisson likelihood with energy dispersion.

The model counts in measured bin i, pixel p are

    m[i, p] = fixed[i, p] + sum_g sum_k D_g[i, k] T_g[k, p],
    T_g[k, p] = sum_{j in g} lo[j, k] S_j[k, p] + hi[j, k] S_j[k + 1, p]

with g running over the GROUPS of sources that share one response matrix D_g (in practice
two: the DRM of the ROI and the identity of the ``edisp_disable`` sources), k over the
true-energy bins and S_j the source maps at the true-energy nodes.  So the true counts are
summed per group first and each group is dispersed once; for the gradient the residuals
r = w (n/m - 1) are folded back once per group, RT_g = D_g^T r, and

    d log L / d theta = sum_k dlo[k] sum_p RT_g[k, p] S_j[k, p] + dhi[k] sum_p RT_g[k, p] S_j[k+1, p]

needs per source only the two sums A[j, k] and B[j, k] of the map rows against RT_g.

Data layout (plain arrays):

* ``counts`` (n_meas, n_pix) float64; ``wts`` the same or (0, 0) for "no weights";
  ``fixed`` (n_meas, n_pix) float64 measured counts of the sources without free
  parameters (already dispersed), or (0, 0);
* ``maps`` (n_src, n_true + 1, n_pix) float32 or float64 source maps, never copied;
  ``idx`` (n_fs,) int64 picks the sources a kernel works on, ordered by group, with
  ``gstart`` (n_groups + 1,) int64 the offsets of each group in ``idx``;
* ``drm`` (n_groups, n_meas, n_true) float64 response matrices; ``kl``/``kh``
  (n_groups, n_meas) int64: the entries of row i of group g that may be non-zero are the
  true bins kl <= k < kh (a banded matrix touches only those); ``tlo``/``thi``
  (n_groups,) int64: the true bins any row of the group uses (union of the bands);
* ``lo``/``hi`` (n_fs, n_true) float64 node weights (see
  :func:`fermixr.likelihood.npred.node_weights`, times any exposure scale).

Work units are segments of ``seg`` pixels over ALL energies (a band couples every measured
bin to several true bins, so blocking in energy would recompute true rows): pass 1 streams
the node rows of every source of the segment into the true-count rows of its group,
disperses them into the model rows and forms log L and the residual rows; pass 2
(gradient) folds the residuals back through each group's matrix and streams the same map
rows again (still in cache when the segment is sized for it).  Partial sums are kept per
segment and added in a fixed order, so the serial and parallel variants (which share the
unit function) give identical numbers whatever the thread count.

Information matrices (Fisher, observed) use per-parameter effective coefficients on the
NODES: the derivative of the model in measured bin i w.r.t. parameter q is

    dm_q[i, p] = sum_node C[q, i, node] S_{src(q)}[node, p],
    C[q, i, node] = D[i, node] dlo[q, node] + D[i, node - 1] dhi[q, node - 1]

(band: nodes kl[i] .. kh[i] inclusive), so the rows sqrt(v) dm_q of a pixel segment are
built directly (:func:`info_rows_serial` / :func:`info_rows_parallel`) and the caller adds
G G^T with one BLAS product.

The slow numpy references are the ``*_reference`` functions at the end of this module
(tested against the kernels in ``tests/test_dispersed_kernels.py``).
"""

from __future__ import annotations

import numpy as np

from .._jit import njit, pnjit, prange
from ._kernels import delta_term, poisson_row

# reassociation lets LLVM vectorise the reductions; no nnan/ninf, so inf and nan keep
# their meaning (a zero model under observed counts gives log L = -inf)
_FM = {"reassoc", "contract"}
_TINY = 1e-280     # derivative values below this are flushed to 0 (no subnormal BLAS)


# ---------------------------------------------------------------------------------------
# pass 1: true-count rows of each group, dispersed into the model rows
# ---------------------------------------------------------------------------------------
@njit(fastmath=_FM)
def _true_rows1(T, maps, s, lo, hi, j, k0, k1, p0, p1):
    """Add source j's (map s) true counts of bins k0..k1-1, pixels p0..p1, into T (n_true,
    n): node row k feeds bin k (weight lo[j, k]) and bin k - 1 (weight hi[j, k - 1])."""
    n = p1 - p0
    for k in range(k0, k1 + 1):
        row = maps[s, k, p0:p1]
        if k0 < k < k1:
            b = hi[j, k - 1]
            a = lo[j, k]
            tb = T[k - 1]
            ta = T[k]
            for p in range(n):
                x = row[p]
                tb[p] += b * x
                ta[p] += a * x
        elif k > k0:
            b = hi[j, k - 1]
            tb = T[k - 1]
            for p in range(n):
                tb[p] += b * row[p]
        else:
            a = lo[j, k]
            ta = T[k]
            for p in range(n):
                ta[p] += a * row[p]


@njit(fastmath=_FM)
def _true_rows4(T, maps, idx, lo, hi, j, k0, k1, p0, p1):
    """:func:`_true_rows1` for sources j..j+3 (of one group) at once."""
    n = p1 - p0
    for k in range(k0, k1 + 1):
        x0 = maps[idx[j], k, p0:p1]
        x1 = maps[idx[j + 1], k, p0:p1]
        x2 = maps[idx[j + 2], k, p0:p1]
        x3 = maps[idx[j + 3], k, p0:p1]
        b0 = b1 = b2 = b3 = 0.0
        a0 = a1 = a2 = a3 = 0.0
        if k > k0:
            b0 = hi[j, k - 1]
            b1 = hi[j + 1, k - 1]
            b2 = hi[j + 2, k - 1]
            b3 = hi[j + 3, k - 1]
        if k < k1:
            a0 = lo[j, k]
            a1 = lo[j + 1, k]
            a2 = lo[j + 2, k]
            a3 = lo[j + 3, k]
        if k0 < k < k1:
            tb = T[k - 1]
            ta = T[k]
            for p in range(n):
                y0 = x0[p]
                y1 = x1[p]
                y2 = x2[p]
                y3 = x3[p]
                tb[p] += b0 * y0 + b1 * y1 + b2 * y2 + b3 * y3
                ta[p] += a0 * y0 + a1 * y1 + a2 * y2 + a3 * y3
        elif k > k0:
            tb = T[k - 1]
            for p in range(n):
                tb[p] += b0 * x0[p] + b1 * x1[p] + b2 * x2[p] + b3 * x3[p]
        else:
            ta = T[k]
            for p in range(n):
                ta[p] += a0 * x0[p] + a1 * x1[p] + a2 * x2[p] + a3 * x3[p]


@njit(fastmath=_FM)
def _model_rows(fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi, p0, p1, T, M):
    """Model rows M (n_meas, n) of pixels p0..p1: fixed (or 0) + sum_g D_g T_g, with the
    true rows T (n_groups, n_true, n) built here (zeroed first)."""
    n = p1 - p0
    nm = M.shape[0]
    ng = gstart.shape[0] - 1
    for ii in range(nm):
        mr = M[ii]
        if fixed.shape[0] > 0:
            fr = fixed[ii, p0:p1]
            for p in range(n):
                mr[p] = fr[p]
        else:
            for p in range(n):
                mr[p] = 0.0
    for g in range(ng):
        j0 = gstart[g]
        j1 = gstart[g + 1]
        k0 = tlo[g]
        k1 = thi[g]
        if j1 <= j0 or k1 <= k0:
            continue
        Tg = T[g]
        for k in range(k0, k1):
            tr = Tg[k]
            for p in range(n):
                tr[p] = 0.0
        j4 = j0 + (j1 - j0) - (j1 - j0) % 4
        for j in range(j0, j4, 4):
            _true_rows4(Tg, maps, idx, lo, hi, j, k0, k1, p0, p1)
        for j in range(j4, j1):
            _true_rows1(Tg, maps, idx[j], lo, hi, j, k0, k1, p0, p1)
        for ii in range(nm):
            mr = M[ii]
            for k in range(kl[g, ii], kh[g, ii]):
                d = drm[g, ii, k]
                if d == 0.0:
                    continue
                tr = Tg[k]
                for p in range(n):
                    mr[p] += d * tr[p]


# ---------------------------------------------------------------------------------------
# pass 2: residuals folded back per group, sums against the map rows
# ---------------------------------------------------------------------------------------
@njit(fastmath=_FM)
def _resid_sums1(RT, maps, s, j, k0, k1, p0, p1, A, B):
    """A[j, k] += RT_k . S_k and B[j, k] += RT_k . S_{k+1} for true bins k0..k1-1."""
    n = p1 - p0
    for k in range(k0, k1 + 1):
        row = maps[s, k, p0:p1]
        if k0 < k < k1:
            rb = RT[k - 1]
            ra = RT[k]
            sb = 0.0
            sa = 0.0
            for p in range(n):
                x = row[p]
                sb += rb[p] * x
                sa += ra[p] * x
            B[j, k - 1] += sb
            A[j, k] += sa
        elif k > k0:
            rb = RT[k - 1]
            sb = 0.0
            for p in range(n):
                sb += rb[p] * row[p]
            B[j, k - 1] += sb
        else:
            ra = RT[k]
            sa = 0.0
            for p in range(n):
                sa += ra[p] * row[p]
            A[j, k] += sa


@njit(fastmath=_FM)
def _resid_sums4(RT, maps, idx, j, k0, k1, p0, p1, A, B):
    """:func:`_resid_sums1` for sources j..j+3 (of one group) at once."""
    n = p1 - p0
    for k in range(k0, k1 + 1):
        x0 = maps[idx[j], k, p0:p1]
        x1 = maps[idx[j + 1], k, p0:p1]
        x2 = maps[idx[j + 2], k, p0:p1]
        x3 = maps[idx[j + 3], k, p0:p1]
        if k > k0:
            rb = RT[k - 1]
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
        if k < k1:
            ra = RT[k]
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
def _loglike_unit(counts, wts, fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi,
                  p0, p1, want_grad, A, B, llb, mout):
    """One work unit: every measured bin x pixels p0..p1.  log L per measured bin into
    ``llb[i]``; with ``want_grad`` the sums A[j, k] = sum_p RT S_k, B[j, k] = sum_p RT
    S_{k+1} (RT = D^T r of the source's group) are added into A, B; the model rows into
    ``mout`` unless it is (0, 0)."""
    n = p1 - p0
    nm = counts.shape[0]
    nt = lo.shape[1]
    ng = gstart.shape[0] - 1
    T = np.empty((ng, nt, n))
    M = np.empty((nm, n))
    _model_rows(fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi, p0, p1, T, M)
    R = np.empty((nm, n)) if want_grad else np.empty((0, 0))
    for i in range(nm):
        mr = M[i]
        llb[i] = poisson_row(mr, counts[i, p0:p1], wts, i, p0, R, i, want_grad)
        if mout.shape[0] > 0:
            mo = mout[i, p0:p1]
            for p in range(n):
                mo[p] = mr[p]
    if not want_grad:
        return
    RT = T            # the true rows are not needed any more: reuse the buffer
    for g in range(ng):
        j0 = gstart[g]
        j1 = gstart[g + 1]
        k0 = tlo[g]
        k1 = thi[g]
        if j1 <= j0 or k1 <= k0:
            continue
        RTg = RT[g]
        for k in range(k0, k1):
            tr = RTg[k]
            for p in range(n):
                tr[p] = 0.0
        for i in range(nm):
            rr = R[i]
            for k in range(kl[g, i], kh[g, i]):
                d = drm[g, i, k]
                if d == 0.0:
                    continue
                tr = RTg[k]
                for p in range(n):
                    tr[p] += d * rr[p]
        j4 = j0 + (j1 - j0) - (j1 - j0) % 4
        for j in range(j0, j4, 4):
            _resid_sums4(RTg, maps, idx, j, k0, k1, p0, p1, A, B)
        for j in range(j4, j1):
            _resid_sums1(RTg, maps, idx[j], j, k0, k1, p0, p1, A, B)


@njit
def _reduce_units(llb, A, B):
    tot = 0.0
    for sg in range(llb.shape[0]):
        for i in range(llb.shape[1]):
            tot += llb[sg, i]
    As = A[0].copy()
    Bs = B[0].copy()
    for sg in range(1, llb.shape[0]):
        As += A[sg]
        Bs += B[sg]
    return tot, As, Bs


@njit
def loglike_serial(counts, wts, fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi,
                   seg, want_grad, mout):
    """(log L, A, B): log L = sum_{i,p} w (n log m - m) of the dispersed model, A[j, k] =
    sum_p RT_g[k, p] S_{idx[j]}[k, p] and B[j, k] = sum_p RT_g[k, p] S_{idx[j]}[k+1, p]
    (RT_g = D_g^T r, r = w (n/m - 1), g the group of j; zeros unless ``want_grad``),
    each (n_fs, n_true).  ``mout`` (n_meas, n_pix) receives the model cube unless it is a
    (0, 0) array.  Work units are segments of ``seg`` pixels; partial sums are kept per
    segment and added in a fixed order."""
    npix = counts.shape[1]
    seg = max(1, min(seg, npix))
    nseg = (npix + seg - 1) // seg
    nfs = idx.shape[0]
    nt = lo.shape[1]
    A = np.zeros((nseg, nfs, nt))
    B = np.zeros((nseg, nfs, nt))
    llb = np.zeros((nseg, counts.shape[0]))
    for sg in range(nseg):
        p0 = sg * seg
        p1 = min(npix, p0 + seg)
        _loglike_unit(counts, wts, fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi,
                      p0, p1, want_grad, A[sg], B[sg], llb[sg], mout)
    return _reduce_units(llb, A, B)


@pnjit
def loglike_parallel(counts, wts, fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi,
                     seg, want_grad, mout):
    """Parallel twin of :func:`loglike_serial` (one pixel segment per task, the same
    reduction order: identical numbers whatever the thread count)."""
    npix = counts.shape[1]
    seg = max(1, min(seg, npix))
    nseg = (npix + seg - 1) // seg
    nfs = idx.shape[0]
    nt = lo.shape[1]
    A = np.zeros((nseg, nfs, nt))
    B = np.zeros((nseg, nfs, nt))
    llb = np.zeros((nseg, counts.shape[0]))
    for sg in prange(nseg):
        p0 = sg * seg
        p1 = min(npix, p0 + seg)
        _loglike_unit(counts, wts, fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi,
                      p0, p1, want_grad, A[sg], B[sg], llb[sg], mout)
    return _reduce_units(llb, A, B)


# ---------------------------------------------------------------------------------------
# incremental log-likelihood: a few sources' node weights changed by (dlo, dhi)
# ---------------------------------------------------------------------------------------
@njit(fastmath=_FM)
def _delta_unit(counts, wts, m, maps, idx, gstart, drm, kl, kh, tlo, thi, dlo, dhi, p0,
                p1, write, nofixed):
    """Change of log L over pixels p0..p1 (every measured bin): the model change
    dm = sum_g D_g dT_g of the changed sources (their true rows from dlo/dhi), then the
    change of each term where dm != 0 (``_kernels.delta_term``)."""
    n = p1 - p0
    nm = counts.shape[0]
    T = np.empty((gstart.shape[0] - 1, dlo.shape[1], n))
    M = np.empty((nm, n))
    _model_rows(nofixed, maps, idx, gstart, drm, kl, kh, tlo, thi, dlo, dhi, p0, p1, T, M)
    has_w = wts.shape[0] > 0
    acc = 0.0
    err = 0.0
    bad = False
    for i in range(nm):
        dr = M[i]
        for p in range(n):
            d = dr[p]
            if d == 0.0:
                continue
            q = p0 + p
            mo = m[i, q]
            t, e, b = delta_term(mo, d, counts[i, q], wts[i, q] if has_w else 1.0)
            acc += t
            err += e
            bad = bad or b
            if write:
                m[i, q] = mo + d
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
def delta_loglike_serial(counts, wts, m, maps, idx, gstart, drm, kl, kh, tlo, thi, dlo,
                         dhi, chunks, ch, write):
    """(d log L, rounding scale, bad) when sources ``idx`` (grouped by matrix as in
    :func:`loglike_serial`) change their node weights by ``dlo``/``dhi`` (len(idx),
    n_true) on the model cube ``m`` (n_meas, n_pix); work units are the pixel chunks
    ``chunks`` of ``ch`` pixels (where a changed map is non-zero), each over every
    measured bin; with ``write`` the new model is stored in ``m``.  See
    ``_kernels.delta_loglike_serial``."""
    npix = counts.shape[1]
    nu = chunks.shape[0]
    dll = np.zeros(nu)
    err = np.zeros(nu)
    bad = np.zeros(nu, dtype=np.bool_)
    nofixed = np.empty((0, 0))
    for u in range(nu):
        p0 = chunks[u] * ch
        dll[u], err[u], bad[u] = _delta_unit(counts, wts, m, maps, idx, gstart, drm, kl,
                                             kh, tlo, thi, dlo, dhi, p0,
                                             min(npix, p0 + ch), write, nofixed)
    return _delta_reduce(dll, err, bad)


@pnjit
def delta_loglike_parallel(counts, wts, m, maps, idx, gstart, drm, kl, kh, tlo, thi, dlo,
                           dhi, chunks, ch, write):
    """Parallel twin of :func:`delta_loglike_serial` (one chunk per task, the same
    reduction order)."""
    npix = counts.shape[1]
    nu = chunks.shape[0]
    dll = np.zeros(nu)
    err = np.zeros(nu)
    bad = np.zeros(nu, dtype=np.bool_)
    nofixed = np.empty((0, 0))
    for u in prange(nu):
        p0 = chunks[u] * ch
        dll[u], err[u], bad[u] = _delta_unit(counts, wts, m, maps, idx, gstart, drm, kl,
                                             kh, tlo, thi, dlo, dhi, p0,
                                             min(npix, p0 + ch), write, nofixed)
    return _delta_reduce(dll, err, bad)


@njit
def _model_unit(fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi, p0, p1, out):
    nm = out.shape[0]
    T = np.empty((gstart.shape[0] - 1, lo.shape[1], p1 - p0))
    M = np.empty((nm, p1 - p0))
    _model_rows(fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi, p0, p1, T, M)
    for i in range(nm):
        out[i, p0:p1] = M[i]


@njit
def model_cube_serial(fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi, seg, out):
    """Write the dispersed model cube into ``out`` (n_meas, n_pix):
    fixed (or 0) + sum_g D_g T_g (module docstring)."""
    npix = out.shape[1]
    seg = max(1, min(seg, npix))
    nseg = (npix + seg - 1) // seg
    for sg in range(nseg):
        p0 = sg * seg
        _model_unit(fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi, p0,
                    min(npix, p0 + seg), out)


@pnjit
def model_cube_parallel(fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi, seg, out):
    """Parallel twin of :func:`model_cube_serial` (one pixel segment per task)."""
    npix = out.shape[1]
    seg = max(1, min(seg, npix))
    nseg = (npix + seg - 1) // seg
    for sg in prange(nseg):
        p0 = sg * seg
        _model_unit(fixed, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi, p0,
                    min(npix, p0 + seg), out)


# ---------------------------------------------------------------------------------------
# information matrices: rows sqrt(v) dm_q for one pixel segment
# ---------------------------------------------------------------------------------------
@njit(fastmath=_FM)
def _info_rows_q(sqrtv, maps, s, C, cl, ch, q, p0, p1, Gq):
    """Gq[i, p] = sqrtv[i, p0+p] sum_{node=cl..ch-1} C[q, i, node] S_s[node, p0+p]."""
    n = p1 - p0
    for i in range(Gq.shape[0]):
        g = Gq[i]
        for p in range(n):
            g[p] = 0.0
        for node in range(cl[q, i], ch[q, i]):
            c = C[q, i, node]
            if c == 0.0:
                continue
            row = maps[s, node, p0:p1]
            for p in range(n):
                g[p] += c * row[p]
        sv = sqrtv[i, p0:p1]
        for p in range(n):
            d = g[p]
            if -_TINY < d < _TINY:
                d = 0.0
            g[p] = d * sv[p]


@njit
def info_rows_serial(sqrtv, maps, qsrc, C, cl, ch, p0, p1, G):
    """Fill G (n_q, n_meas, >= p1 - p0) with sqrt(v) dm_q of pixels p0..p1:
    G[q, i, p] = sqrtv[i, p0+p] sum_node C[q, i, node] S_{qsrc[q]}[node, p0+p], nodes
    cl[q, i] <= node < ch[q, i].  Then sum_{i,p} v dm_q dm_r = (G G^T)[q, r]."""
    for q in range(qsrc.shape[0]):
        _info_rows_q(sqrtv, maps, qsrc[q], C, cl, ch, q, p0, p1, G[q])


@pnjit
def info_rows_parallel(sqrtv, maps, qsrc, C, cl, ch, p0, p1, G):
    """Parallel twin of :func:`info_rows_serial` (one parameter per task)."""
    for q in prange(qsrc.shape[0]):
        _info_rows_q(sqrtv, maps, qsrc[q], C, cl, ch, q, p0, p1, G[q])


# ---------------------------------------------------------------------------------------
# slow references (plain numpy, obvious)
# ---------------------------------------------------------------------------------------
def model_cube_reference(fixed, maps, idx, gstart, drm, lo, hi):
    """fixed + sum_g D_g @ (sum_{j in g} lo_j S_j[:-1] + hi_j S_j[1:]), dense matrices."""
    nm = drm.shape[1]
    m = np.zeros((nm, maps.shape[2])) if fixed.shape[0] == 0 else np.array(fixed, float)
    for g in range(len(gstart) - 1):
        for j in range(gstart[g], gstart[g + 1]):
            s = maps[idx[j]].astype(float)
            true = lo[j][:, None] * s[:-1] + hi[j][:, None] * s[1:]
            m = m + drm[g] @ true
    return m


def loglike_reference(counts, wts, fixed, maps, idx, gstart, drm, lo, hi):
    """(log L, A, B, model) by the book (A, B as :func:`loglike_serial`)."""
    m = model_cube_reference(fixed, maps, idx, gstart, drm, lo, hi)
    w = np.ones_like(m) if wts.shape[0] == 0 else wts
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(np.where(m > 0, m, 0.0)), 0.0) - m
        r = np.where(counts > 0, w * (counts / m - 1.0), -w)
    terms = np.where(w != 0, w * terms, 0.0)
    r = np.where(w != 0, r, 0.0)
    nt = lo.shape[1]
    A = np.zeros((len(idx), nt))
    B = np.zeros((len(idx), nt))
    for g in range(len(gstart) - 1):
        rt = drm[g].T @ r
        for j in range(gstart[g], gstart[g + 1]):
            s = maps[idx[j]].astype(float)
            A[j] = np.sum(rt * s[:-1], axis=1)
            B[j] = np.sum(rt * s[1:], axis=1)
    return float(np.sum(terms)), A, B, m


def info_reference(vcube, maps, qsrc, C):
    """sum_{i,p} v[i,p] dm_q[i,p] dm_r[i,p], dm_q = C[q] @ S_{qsrc[q]} (dense)."""
    D = np.array([C[q] @ maps[s].astype(float) for q, s in enumerate(qsrc)])
    return np.einsum("qip,ip,rip->qr", D, vcube, D)
