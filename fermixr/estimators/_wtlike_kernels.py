"""Kernels of the weighted-photon light curve (Kerr 2019): per time cell the likelihood of
the source's relative flux n = 1 + alpha, with the background held at its mean,

    log L(n) = sum_i log(1 - w_i + w_i n) - n S

(w_i the photons' weights, S the source's expected counts in the cell), its maximum, the
profile errors (dlogL 0.5), the 95% upper limit (dlogL 1.353 above the best n >= 0) and
TS = 2 (log L(n_hat) - log L(0)); and the Bayesian-blocks partition (Scargle et al. 2013,
dynamic programming) whose block fitness is the maximum of the summed cell likelihoods,
evaluated from cumulative tables of log L and d log L / dn on a grid of n with a cubic
Hermite step between the two grid points that bracket the maximum.

``log L`` is concave in n (each term is), so every maximum and every level crossing is
found by a safeguarded Newton step inside a bracket.  Every numba kernel has a slow reference (``bayesian_blocks_reference`` here;
``fermixr.estimators.wtlike.fit_cells_reference``, which uses scipy), tested against it on
random inputs.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit, pnjit, prange

UL95_DLOGLIKE = 1.3527724      # chi2(1) 90% / 2: one-sided 95% upper limit
ERR_DLOGLIKE = 0.5


@njit
def _ll(w, i0, i1, S, n):
    s = 0.0
    for i in range(i0, i1):
        s += math.log(1.0 - w[i] + w[i] * n)
    return s - n * S


@njit
def _d12(w, i0, i1, S, n):
    d1 = 0.0
    d2 = 0.0
    for i in range(i0, i1):
        q = w[i] / (1.0 - w[i] + w[i] * n)
        d1 += q
        d2 -= q * q
    return d1 - S, d2


@njit
def _argmax(w, i0, i1, S):
    """n >= 0 maximising log L (0 when the slope at 0 is not positive)."""
    d0, _ = _d12(w, i0, i1, S, 0.0)
    if d0 <= 0.0:
        return 0.0
    lo = 0.0
    hi = (i1 - i0) / S          # d1(n) <= N / n - S < 0 beyond
    x = min(1.0, 0.5 * hi)
    for _ in range(200):
        d1, d2 = _d12(w, i0, i1, S, x)
        if d1 > 0.0:
            lo = x
        else:
            hi = x
        step = d1 / d2 if d2 < 0.0 else 0.0
        xn = x - step
        if not (lo < xn < hi) or step == 0.0:
            xn = 0.5 * (lo + hi)
        if abs(xn - x) <= 1e-12 * max(1.0, abs(x)) or hi - lo <= 1e-14 * max(1.0, hi):
            x = xn
            break
        x = xn
    return x


@njit
def _level(w, i0, i1, S, target, lo, hi):
    """n in [lo, hi] where log L(n) = target; log L monotone there and the level between
    its values at the ends."""
    flo = _ll(w, i0, i1, S, lo) - target
    x = 0.5 * (lo + hi)
    for _ in range(200):
        f = _ll(w, i0, i1, S, x) - target
        if (f > 0.0) == (flo > 0.0):
            lo = x
            flo = f
        else:
            hi = x
        d1, _ = _d12(w, i0, i1, S, x)
        xn = x - f / d1 if d1 != 0.0 else 0.5 * (lo + hi)
        if not (lo < xn < hi):
            xn = 0.5 * (lo + hi)
        if abs(xn - x) <= 1e-10 * max(1.0, abs(x)) or hi - lo <= 1e-12 * max(1.0, hi):
            return xn
        x = xn
    return x


@njit
def _upper(w, i0, i1, S, nhat, lmax, dl):
    """n > nhat where log L drops by dl."""
    target = lmax - dl
    step = max(nhat, 1.0 / S) if S > 0.0 else max(nhat, 1.0)
    hi = nhat + step
    for _ in range(200):
        if _ll(w, i0, i1, S, hi) < target:
            break
        step *= 2.0
        hi = nhat + step
    return _level(w, i0, i1, S, target, nhat, hi)


@njit
def _fit_one(w, i0, i1, S, out):
    """out: n_hat, err_lo, err_hi, ul95, ts, loglike (max)."""
    if not S > 0.0:
        for k in range(6):
            out[k] = np.nan
        return
    nhat = _argmax(w, i0, i1, S)
    lmax = _ll(w, i0, i1, S, nhat)
    l0 = _ll(w, i0, i1, S, 0.0)
    hi = _upper(w, i0, i1, S, nhat, lmax, ERR_DLOGLIKE)
    if nhat <= 0.0 or l0 >= lmax - ERR_DLOGLIKE:
        lo = 0.0
    else:
        lo = _level(w, i0, i1, S, lmax - ERR_DLOGLIKE, 0.0, nhat)
    out[0] = nhat
    out[1] = nhat - lo
    out[2] = hi - nhat
    out[3] = _upper(w, i0, i1, S, nhat, lmax, UL95_DLOGLIKE)
    out[4] = max(2.0 * (lmax - l0), 0.0)
    out[5] = lmax


@pnjit
def fit_cells(w, offsets, S):
    """Per cell c (photons w[offsets[c]:offsets[c+1]], expected source counts S[c]): the
    (ncell, 6) array n_hat, err_lo, err_hi, ul95, ts, log L max (NaN rows where S <= 0)."""
    nc = S.size
    out = np.empty((nc, 6))
    for c in prange(nc):
        _fit_one(w, offsets[c], offsets[c + 1], S[c], out[c])
    return out


# ------------------------------------------------------------------ Bayesian blocks -----
@pnjit
def cell_tables(w, offsets, S, grid):
    """(ncell, G) log L and d log L / dn of every cell at every grid value of n."""
    nc = S.size
    G = grid.size
    L = np.zeros((nc, G))
    D = np.zeros((nc, G))
    for c in prange(nc):
        for g in range(G):
            n = grid[g]
            s = 0.0
            d = 0.0
            for i in range(offsets[c], offsets[c + 1]):
                v = 1.0 - w[i] + w[i] * n
                s += math.log(v)
                d += w[i] / v
            L[c, g] = s - n * S[c]
            D[c, g] = d - S[c]
    return L, D


@njit
def _block_max(CL, CD, l, r, grid):
    """max over n of the summed log L of cells l..r-1 (cumulative tables CL, CD with a
    leading zero row): bisection on the slope's sign over the grid, then the cubic Hermite
    interpolant's maximum inside the bracketing interval."""
    G = grid.size
    if CD[r, 0] - CD[l, 0] <= 0.0:
        return CL[r, 0] - CL[l, 0]
    if CD[r, G - 1] - CD[l, G - 1] >= 0.0:
        return CL[r, G - 1] - CL[l, G - 1]
    a = 0
    b = G - 1          # slope > 0 at a, < 0 at b
    while b - a > 1:
        m = (a + b) // 2
        if CD[r, m] - CD[l, m] > 0.0:
            a = m
        else:
            b = m
    h = grid[b] - grid[a]
    f0 = CL[r, a] - CL[l, a]
    f1 = CL[r, b] - CL[l, b]
    d0 = (CD[r, a] - CD[l, a]) * h
    d1 = (CD[r, b] - CD[l, b]) * h
    # Hermite cubic on t in [0, 1]: p(t) = f0 h00 + d0 h10 + f1 h01 + d1 h11;
    # p'(t) = A t^2 + B t + C
    A = 6.0 * f0 + 3.0 * d0 - 6.0 * f1 + 3.0 * d1
    B = -6.0 * f0 - 4.0 * d0 + 6.0 * f1 - 2.0 * d1
    C = d0
    t = 0.5
    if abs(A) < 1e-300:
        t = -C / B if B != 0.0 else 0.5
    else:
        disc = B * B - 4.0 * A * C
        if disc < 0.0:
            disc = 0.0
        sq = math.sqrt(disc)
        t1 = (-B + sq) / (2.0 * A)
        t2 = (-B - sq) / (2.0 * A)
        # the root where p' goes from + to -: p'' = 2 A t + B < 0
        t = t1 if 2.0 * A * t1 + B < 0.0 else t2
    if not (0.0 <= t <= 1.0):
        t = 0.0 if f0 >= f1 else 1.0
    t2_ = t * t
    t3 = t2_ * t
    val = (f0 * (2 * t3 - 3 * t2_ + 1) + d0 * (t3 - 2 * t2_ + t)
           + f1 * (-2 * t3 + 3 * t2_) + d1 * (t3 - t2_))
    return max(val, f0, f1)


@njit
def bayesian_blocks_dp(CL, CD, grid, ncp_prior):
    """Optimal partition (Scargle et al. 2013, section 2.5): best[r] = max over the last
    block's first cell l of best[l] + fitness(l..r) - ncp_prior.  Returns the first cell
    of every block (increasing)."""
    n = CL.shape[0] - 1
    best = np.zeros(n + 1)
    last = np.zeros(n + 1, dtype=np.int64)
    for r in range(1, n + 1):
        bv = -np.inf
        bl = 0
        for l in range(r):
            v = best[l] + _block_max(CL, CD, l, r, grid) - ncp_prior
            if v > bv:
                bv = v
                bl = l
        best[r] = bv
        last[r] = bl
    starts = []
    r = n
    while r > 0:
        starts.append(last[r])
        r = last[r]
    out = np.empty(len(starts), dtype=np.int64)
    for k in range(len(starts)):
        out[k] = starts[len(starts) - 1 - k]
    return out


def bayesian_blocks_reference(n, fitness, ncp_prior):
    """Reference of :func:`bayesian_blocks_dp`: the same recursion over ``n`` cells with an
    exact block fitness ``fitness(l, r)`` (max of the summed log L of cells l..r-1)."""
    best = np.zeros(n + 1)
    last = np.zeros(n + 1, dtype=int)
    for r in range(1, n + 1):
        vals = [best[l] + fitness(l, r) - ncp_prior for l in range(r)]
        last[r] = int(np.argmax(vals))
        best[r] = vals[last[r]]
    starts = []
    r = n
    while r > 0:
        starts.append(last[r])
        r = last[r]
    return np.array(starts[::-1], dtype=np.int64)
