"""Numba kernels of the IRF evaluation (plain float64 arrays in, arrays out).

The grids follow the Science Tools' ``latResponse`` conventions: a table of values on the
(log10 E, cos theta) bin centres is padded with one node on each side (log10 E = 0 and 10,
cos theta = -1 and 1) that repeats the edge values, and is interpolated bilinearly between
the four surrounding nodes.  ``find_index`` reproduces ``Psf3::findIndex`` /
``Bilinear::operator()``: the index of the first node above ``x`` (``upper_bound``), moved
to 1 when ``x`` is at or below the first node and to ``n - 1`` when it equals the last;
points above the last node are out of range (-1).

The PSF and energy dispersion interpolate the *distributions*, not the parameters: each
of the four corner nodes is evaluated with its own parameters (and its own energy in the
scale functions) and the four values are combined with the bilinear weights.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit, pnjit, prange


@njit
def find_index(xs, x):
    """Index ``i`` (1 <= i < len(xs)) of the upper node bracketing ``x``; -1 if out of range."""
    n = xs.shape[0]
    if x == xs[n - 1]:
        return n - 1
    if x <= xs[0]:
        return 1
    # upper_bound: first element > x
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if xs[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    if lo >= n:
        return -1
    return lo


@njit
def bilinear_at(xs, ys, vals, x, y):
    """Bilinear interpolation of ``vals[iy, ix]`` on nodes ``xs`` x ``ys`` (ST rules)."""
    i = find_index(xs, x)
    j = find_index(ys, y)
    if i < 0 or j < 0:
        return np.nan
    tt = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
    uu = (y - ys[j - 1]) / (ys[j] - ys[j - 1])
    return ((1.0 - tt) * (1.0 - uu) * vals[j - 1, i - 1]
            + tt * (1.0 - uu) * vals[j - 1, i]
            + tt * uu * vals[j, i]
            + (1.0 - tt) * uu * vals[j, i - 1])


@pnjit
def aeff_values(loge, costh, xs, ys, vals, min_costh, max_center):
    """Effective area at paired (log10 E, cos theta) points (``Aeff::value``).

    Zero below the table's lowest cos theta edge; cos theta is capped at 0.99999 and at
    the highest bin centre; ``vals`` is the padded table in the output units.
    """
    n = loge.shape[0]
    out = np.empty(n)
    for k in prange(n):
        c = costh[k]
        if not (c >= min_costh):
            out[k] = 0.0
            continue
        if c > 0.99999:
            c = 0.99999
        if c > max_center:
            c = max_center
        out[k] = bilinear_at(xs, ys, vals, loge[k], c)
    return out


@njit
def nearest_bin_index(bounds, x):
    """1-based bin index ``upper_bound(bounds, x)`` clipped to [1, len(bounds) - 1]."""
    n = bounds.shape[0]
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if bounds[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    if lo < 1:
        lo = 1
    if lo > n - 1:
        lo = n - 1
    return lo


@pnjit
def phi_modulation(loge, costh, phi_deg, ebounds, cbounds, par0, par1, loge_min):
    """Azimuthal modulation of the effective area (``Aeff::phi_modulation``), with the
    parameters looked up in their bin (no interpolation) as the Science Tools do."""
    n = loge.shape[0]
    out = np.empty(n)
    for k in prange(n):
        le = loge[k]
        if le <= loge_min:
            le = loge_min
        ix = nearest_bin_index(ebounds, le)
        iy = nearest_bin_index(cbounds, costh[k])
        p0 = par0[(iy - 1), (ix - 1)]
        p1 = par1[(iy - 1), (ix - 1)]
        norm = 1.0 / (1.0 + p0 / (1.0 + p1))
        a = phi_deg[k] * math.pi / 180.0
        phi_pv = (a - math.pi * math.trunc(a / math.pi)) - math.pi / 2.0  # C fmod
        xx = 2.0 * abs(2.0 / math.pi * abs(phi_pv) - 0.5)
        out[k] = norm * (1.0 + p0 * xx ** p1)
    return out


# ------------------------------------------------------------------------------------
# PSF: double King function
# ------------------------------------------------------------------------------------
@njit
def king_base(u, gamma):
    """``Psf2::psf_base_function``: (1 - 1/g) (1 + u/g)^-g (g == 1 nudged to 1.001)."""
    if gamma == 1.0:
        gamma = 1.001
    return (1.0 - 1.0 / gamma) * (1.0 + u / gamma) ** (-gamma)


@njit
def king_base_integral(u, gamma):
    """``Psf2::psf_base_integral``: 1 - (1 + u/g)^(1 - g)."""
    return 1.0 - (1.0 + u / gamma) ** (1.0 - gamma)


@njit
def double_king(sep, ncore, ntail, score, stail, gcore, gtail):
    """Double King function at separation ``sep`` (rad), sigmas already scaled (rad)."""
    rc = sep / score
    rt = sep / stail
    return ncore * (king_base(0.5 * rc * rc, gcore) + ntail * king_base(0.5 * rt * rt, gtail))


@pnjit
def psf3_values(sep, loge, costh, xs, ys, pars):
    """PSF (sr^-1) at separations ``sep`` (rad) for paired (log10 E, cos theta) points.

    ``pars[iy, ix, :]`` holds per padded node (ncore normalised, ntail, score, stail,
    gcore, gtail) with the sigmas multiplied by the node's scale factor.  Returns an
    array of shape (len(loge), len(sep)).
    """
    n = loge.shape[0]
    ns = sep.shape[0]
    out = np.empty((n, ns))
    for k in prange(n):
        i = find_index(xs, loge[k])
        j = find_index(ys, costh[k])
        if i < 0 or j < 0:
            for m in range(ns):
                out[k, m] = np.nan
            continue
        tt = (loge[k] - xs[i - 1]) / (xs[i] - xs[i - 1])
        uu = (costh[k] - ys[j - 1]) / (ys[j] - ys[j - 1])
        w0 = (1.0 - tt) * (1.0 - uu)
        w1 = tt * (1.0 - uu)
        w2 = tt * uu
        w3 = (1.0 - tt) * uu
        for m in range(ns):
            s = sep[m]
            v = 0.0
            if w0 != 0.0:
                p = pars[j - 1, i - 1]
                v += w0 * double_king(s, p[0], p[1], p[2], p[3], p[4], p[5])
            if w1 != 0.0:
                p = pars[j - 1, i]
                v += w1 * double_king(s, p[0], p[1], p[2], p[3], p[4], p[5])
            if w2 != 0.0:
                p = pars[j, i]
                v += w2 * double_king(s, p[0], p[1], p[2], p[3], p[4], p[5])
            if w3 != 0.0:
                p = pars[j, i - 1]
                v += w3 * double_king(s, p[0], p[1], p[2], p[3], p[4], p[5])
            out[k, m] = v
    return out


# ------------------------------------------------------------------------------------
# energy dispersion
# ------------------------------------------------------------------------------------
@njit
def edisp_scale(loge, costh, sp):
    """Scale function of the dispersion (``Edisp3::scaleFactor``), |cos theta| used."""
    c = abs(costh)
    return (sp[0] * loge * loge + sp[1] * c * c + sp[2] * loge + sp[3] * c
            + sp[4] * loge * c + sp[5])


@njit
def thibaut_base(x, sigma, kk, bb, pp):
    """One component of the Pass 8 dispersion function (normalised in x)."""
    u = x - bb
    up = u if u >= 0.0 else 0.0
    um = -u if u <= 0.0 else 0.0
    g = math.exp(math.lgamma(1.0 / pp))
    return (pp / sigma / g * kk / (1.0 + kk * kk)
            * math.exp(-((kk * up / sigma) ** pp))
            * math.exp(-((um / kk / sigma) ** pp)))


@njit
def thibaut(x, p):
    """Pass 8 dispersion function; p = (F, S1, K1, BIAS, BIAS2, S2, K2, PINDEX1, PINDEX2)."""
    return (p[0] * thibaut_base(x, p[1], p[2], p[3], p[7])
            + (1.0 - p[0]) * thibaut_base(x, p[5], p[6], p[4], p[8]))


@njit
def edisp2_function(x, p, p1, p2, t0):
    """Pass 7 dispersion function (``Edisp2::old_function``);
    p = (NORM, LS1, RS1, BIAS, LS2, RS2)."""
    tt = abs(x - p[3])
    s1 = p[1]
    s2 = p[4]
    if x > p[3]:
        s1 = p[2]
        s2 = p[5]
    if tt > t0:
        nscale = math.exp(0.5 * ((t0 / s2) ** p2 - (t0 / s1) ** p1))
        return p[0] * nscale * math.exp(-0.5 * (tt / s2) ** p2)
    return p[0] * math.exp(-0.5 * (tt / s1) ** p1)


@njit
def _edisp_node(version, x, pars, sf, p1, p2, t0):
    if version == 3:
        return thibaut(x / sf, pars) / sf
    return edisp2_function(x / sf, pars, p1, p2, t0) / sf


@pnjit
def edisp_values(version, xrel, loge, costh, xs, ys, pars, sp, ctmax, p1, p2, t0):
    """Energy dispersion x E_true at paired points (a density in
    x = (E_rec - E_true)/E_true), interpolating the distributions of the four corner
    nodes bilinearly in the scaled deviation (``EdispInterpolator``).  ``version`` 3
    (Pass 8) or 2 (Pass 7).

    The Science Tools' rule: with S the scale function,
    s = S(log10 E, cos theta) at the requested point (cos theta NOT capped) and, per
    corner node (L_i, c_i), r_i = S(L_i, c_i) / S(L_i, min(c_i, ctmax)) (1 except on the
    padding row cos theta = 1, where the node's own evaluation caps cos theta at the
    top bin centre ``ctmax``), each corner contributes f_i(r_i x / s) r_i / s."""
    n = loge.shape[0]
    out = np.empty(n)
    for k in prange(n):
        i = find_index(xs, loge[k])
        j = find_index(ys, costh[k])
        if i < 0 or j < 0:
            out[k] = np.nan
            continue
        tt = (loge[k] - xs[i - 1]) / (xs[i] - xs[i - 1])
        uu = (costh[k] - ys[j - 1]) / (ys[j] - ys[j - 1])
        x = xrel[k]
        s0 = edisp_scale(loge[k], costh[k], sp)
        v = 0.0
        for corner in range(4):
            if corner == 0:
                jj, ii, w = j - 1, i - 1, (1.0 - tt) * (1.0 - uu)
            elif corner == 1:
                jj, ii, w = j - 1, i, tt * (1.0 - uu)
            elif corner == 2:
                jj, ii, w = j, i, tt * uu
            else:
                jj, ii, w = j, i - 1, (1.0 - tt) * uu
            if w == 0.0:
                continue
            r = edisp_scale(xs[ii], ys[jj], sp) / edisp_scale(xs[ii], min(ys[jj], ctmax), sp)
            v += w * r * _edisp_node(version, r * x, pars[jj, ii], s0, p1, p2, t0)
        out[k] = v
    return out
