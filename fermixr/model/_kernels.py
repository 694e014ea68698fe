"""numba kernels of the Science Tools spectral functions.

Every model has a ``<name>_dnde(energy, p)`` kernel returning dN/dE for a float64 array of
energies (MeV) and a ``<name>_grad(energy, p)`` kernel returning d(dN/dE)/dp_k with shape
(npar, nE).  ``p`` holds PHYSICAL parameter values (XML value x scale) in the Science Tools'
order, so a PowerLaw index is negative.  The formulas are those of the Science Tools'
``Likelihood`` functions (PowerLaw.cxx, PowerLaw2.cxx, LogParabola.cxx, ...); where the
Science Tools clamp an exponent at ln(1e100) the kernels clamp it too and the derivatives
of the clamped function (zero for the shape parameters) are returned.

Only numpy, math and :mod:`fermixr._jit` are imported here (the kernel layering rule).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit

# The Science Tools clamp the exponent of PLSuperExpCutoff2/3/4 at log(1e100).
MAX_EXPONENT = math.log(1e100)


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------
@njit
def expm1_over(a, s):
    """(exp(a s) - 1) / a, continuous at a = 0 (value s)."""
    if a == 0.0:
        return s
    return math.expm1(a * s) / a


@njit
def dexpm1_over_da(a, s):
    """d/da of :func:`expm1_over` (s^2/2 at a = 0), with a series near a s = 0."""
    t = a * s
    if abs(t) < 1e-2:
        # sum_{n>=2} (n-1) a^(n-2) s^n / n!  = s^2 sum_{k>=0} (k+1) t^k / (k+2)!
        term = 1.0
        fact = 2.0
        tot = 0.0
        for k in range(12):
            tot += (k + 1) * term / fact
            term *= t
            fact *= k + 3
        return s * s * tot
    return (s * math.exp(t) - math.expm1(t) / a) / a


@njit
def powerlaw_int(x1, x2, a):
    """Integral of x^(a-1) from x1 to x2 (x1, x2 > 0), stable at a = 0."""
    return math.exp(a * math.log(x1)) * expm1_over(a, math.log(x2 / x1))


@njit
def _g4(t):
    """(t - expm1(t)) / t^2 with its series near 0 (value -1/2)."""
    if abs(t) < 0.1:
        # -sum_{n>=0} t^n / (n+2)!
        term = 1.0
        fact = 2.0
        tot = 0.0
        for n in range(14):
            tot += term / fact
            term *= t
            fact *= n + 3
        return -tot
    return (t - math.expm1(t)) / (t * t)


@njit
def _dg4(t):
    """d/dt of :func:`_g4` (value -1/6 at 0)."""
    if abs(t) < 0.1:
        # -sum_{n>=1} n t^(n-1) / (n+2)!
        term = 1.0
        fact = 6.0
        tot = 0.0
        for n in range(1, 15):
            tot += n * term / fact
            term *= t
            fact *= n + 3
        return -tot
    return ((2.0 - t) * math.expm1(t) - 2.0 * t) / (t * t * t)


@njit
def _k4(t):
    """expm1(t) / t (value 1 at 0)."""
    if t == 0.0:
        return 1.0
    return math.expm1(t) / t


# ---------------------------------------------------------------------------------------
# PowerLaw: Prefactor (E/Scale)^Index            p = [Prefactor, Index, Scale]
# ---------------------------------------------------------------------------------------
@njit
def powerlaw_dnde(energy, p):
    n0, g, e0 = p[0], p[1], p[2]
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        out[i] = n0 * math.exp(g * math.log(energy[i] / e0))
    return out


@njit
def powerlaw_grad(energy, p):
    n0, g, e0 = p[0], p[1], p[2]
    out = np.empty((3, energy.shape[0]))
    for i in range(energy.shape[0]):
        lx = math.log(energy[i] / e0)
        shape = math.exp(g * lx)
        f = n0 * shape
        out[0, i] = shape
        out[1, i] = f * lx
        out[2, i] = -f * g / e0
    return out


# ---------------------------------------------------------------------------------------
# PowerLaw2: Integral (Index+1) E^Index / (Upper^(Index+1) - Lower^(Index+1))
#            p = [Integral, Index, LowerLimit, UpperLimit]
# ---------------------------------------------------------------------------------------
@njit
def _pl2_q(a, r):
    """a / expm1(a r), value 1/r at a = 0."""
    if a == 0.0:
        return 1.0 / r
    return a / math.expm1(a * r)


@njit
def _pl2_h(a, r):
    """1/a - r e^(a r)/expm1(a r): d/da of log(a / expm1(a r)), value -r/2 at a = 0."""
    t = a * r
    if abs(t) < 1e-4:
        return -r / 2.0 - a * r * r / 12.0 + a * a * a * r ** 4 / 720.0
    return 1.0 / a - r / (-math.expm1(-t))


@njit
def powerlaw2_dnde(energy, p):
    nn, g, lo, hi = p[0], p[1], p[2], p[3]
    a = g + 1.0
    r = math.log(hi / lo)
    q = _pl2_q(a, r)
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        e = energy[i]
        out[i] = nn / e * math.exp(a * math.log(e / lo)) * q
    return out


@njit
def powerlaw2_grad(energy, p):
    nn, g, lo, hi = p[0], p[1], p[2], p[3]
    a = g + 1.0
    r = math.log(hi / lo)
    q = _pl2_q(a, r)
    h = _pl2_h(a, r)
    out = np.empty((4, energy.shape[0]))
    for i in range(energy.shape[0]):
        e = energy[i]
        lel = math.log(e / lo)
        shape = math.exp(a * lel) * q / e
        f = nn * shape
        out[0, i] = shape
        out[1, i] = f * (lel + h)
        out[2, i] = f * q / lo
        out[3, i] = -f * (a + q) / hi
    return out


# ---------------------------------------------------------------------------------------
# BrokenPowerLaw: Prefactor (E/BreakValue)^Index1 below the break, ^Index2 above
#                 p = [Prefactor, Index1, Index2, BreakValue]
# ---------------------------------------------------------------------------------------
@njit
def brokenpowerlaw_dnde(energy, p):
    n0, g1, g2, eb = p[0], p[1], p[2], p[3]
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        e = energy[i]
        g = g1 if e < eb else g2
        out[i] = n0 * math.exp(g * math.log(e / eb))
    return out


@njit
def brokenpowerlaw_grad(energy, p):
    n0, g1, g2, eb = p[0], p[1], p[2], p[3]
    out = np.zeros((4, energy.shape[0]))
    for i in range(energy.shape[0]):
        e = energy[i]
        lx = math.log(e / eb)
        g = g1 if e < eb else g2
        shape = math.exp(g * lx)
        f = n0 * shape
        out[0, i] = shape
        if e < eb:
            out[1, i] = f * lx
        else:
            out[2, i] = f * lx
        out[3, i] = -f * g / eb
    return out


# ---------------------------------------------------------------------------------------
# BrokenPowerLaw2: BrokenPowerLaw normalised by its Integral between LowerLimit and
# UpperLimit.  p = [Integral, Index1, Index2, BreakValue, LowerLimit, UpperLimit]
# ---------------------------------------------------------------------------------------
@njit
def bpl2_pieces(p):
    """(D, D1, D2, dD1/dIndex1, dD2/dIndex2): D = D1 + D2 is the integral of
    (E/BreakValue)^Index between the limits, D1 below and D2 above the break."""
    g1, g2, eb, lo, hi = p[1], p[2], p[3], p[4], p[5]
    d1 = 0.0
    d2 = 0.0
    dd1 = 0.0
    dd2 = 0.0
    if lo < eb:
        x1 = lo / eb
        x2 = min(hi, eb) / eb
        a = g1 + 1.0
        s = math.log(x2 / x1)
        w = math.exp(a * math.log(x1))
        d1 = eb * w * expm1_over(a, s)
        dd1 = eb * w * (math.log(x1) * expm1_over(a, s) + dexpm1_over_da(a, s))
    if hi > eb:
        x1 = max(lo, eb) / eb
        x2 = hi / eb
        a = g2 + 1.0
        s = math.log(x2 / x1)
        w = math.exp(a * math.log(x1))
        d2 = eb * w * expm1_over(a, s)
        dd2 = eb * w * (math.log(x1) * expm1_over(a, s) + dexpm1_over_da(a, s))
    return d1 + d2, d1, d2, dd1, dd2


@njit
def brokenpowerlaw2_dnde(energy, p):
    nn, g1, g2, eb = p[0], p[1], p[2], p[3]
    d = bpl2_pieces(p)[0]
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        e = energy[i]
        g = g1 if e < eb else g2
        out[i] = nn / d * math.exp(g * math.log(e / eb))
    return out


@njit
def brokenpowerlaw2_grad(energy, p):
    nn, g1, g2, eb, lo, hi = p[0], p[1], p[2], p[3], p[4], p[5]
    d, d1, d2, dd1, dd2 = bpl2_pieces(p)
    # d log D / d BreakValue: the integrand is continuous at the break, so only the
    # explicit (E/BreakValue)^Index dependence counts.
    dlogd_deb = -(g1 * d1 + g2 * d2) / (eb * d)
    glo = g1 if lo < eb else g2
    ghi = g1 if hi < eb else g2
    dlogd_dlo = -math.exp(glo * math.log(lo / eb)) / d
    dlogd_dhi = math.exp(ghi * math.log(hi / eb)) / d
    out = np.zeros((6, energy.shape[0]))
    for i in range(energy.shape[0]):
        e = energy[i]
        lx = math.log(e / eb)
        below = e < eb
        g = g1 if below else g2
        shape = math.exp(g * lx) / d
        f = nn * shape
        out[0, i] = shape
        out[1, i] = f * ((lx if below else 0.0) - dd1 / d)
        out[2, i] = f * ((0.0 if below else lx) - dd2 / d)
        out[3, i] = f * (-g / eb - dlogd_deb)
        out[4, i] = -f * dlogd_dlo
        out[5, i] = -f * dlogd_dhi
    return out


# ---------------------------------------------------------------------------------------
# LogParabola: norm (E/Eb)^-(alpha + beta ln(E/Eb))      p = [norm, alpha, beta, Eb]
# ---------------------------------------------------------------------------------------
@njit
def logparabola_dnde(energy, p):
    n0, al, be, eb = p[0], p[1], p[2], p[3]
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        lx = math.log(energy[i] / eb)
        out[i] = n0 * math.exp(-(al + be * lx) * lx)
    return out


@njit
def logparabola_grad(energy, p):
    n0, al, be, eb = p[0], p[1], p[2], p[3]
    out = np.empty((4, energy.shape[0]))
    for i in range(energy.shape[0]):
        lx = math.log(energy[i] / eb)
        shape = math.exp(-(al + be * lx) * lx)
        f = n0 * shape
        out[0, i] = shape
        out[1, i] = -f * lx
        out[2, i] = -f * lx * lx
        out[3, i] = f * (al + 2.0 * be * lx) / eb
    return out


# ---------------------------------------------------------------------------------------
# ExpCutoff: Prefactor (E/Scale)^Index, times exp(-((E-Ebreak)/P1 + P2 ln(E/Ebreak)
#            + P3 ln^2(E/Ebreak))) for E >= Ebreak.
#            p = [Prefactor, Index, Scale, Ebreak, P1, P2, P3]
# ---------------------------------------------------------------------------------------
@njit
def expcutoff_dnde(energy, p):
    n0, g, e0, eb, p1, p2, p3 = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        e = energy[i]
        lg = g * math.log(e / e0)
        if e >= eb:
            ln = math.log(e / eb)
            lg -= (e - eb) / p1 + p2 * ln + p3 * ln * ln
        out[i] = n0 * math.exp(lg)
    return out


@njit
def expcutoff_grad(energy, p):
    n0, g, e0, eb, p1, p2, p3 = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    out = np.zeros((7, energy.shape[0]))
    for i in range(energy.shape[0]):
        e = energy[i]
        lx = math.log(e / e0)
        lg = g * lx
        ln = 0.0
        if e >= eb:
            ln = math.log(e / eb)
            lg -= (e - eb) / p1 + p2 * ln + p3 * ln * ln
        shape = math.exp(lg)
        f = n0 * shape
        out[0, i] = shape
        out[1, i] = f * lx
        out[2, i] = -f * g / e0
        if e >= eb:
            out[3, i] = f * (1.0 / p1 + p2 / eb + 2.0 * p3 * ln / eb)
            out[4, i] = f * (e - eb) / (p1 * p1)
            out[5, i] = -f * ln
            out[6, i] = -f * ln * ln
    return out


# ---------------------------------------------------------------------------------------
# PLSuperExpCutoff: Prefactor (E/Scale)^Index1 exp(-(E/Cutoff)^Index2)
#                   p = [Prefactor, Index1, Scale, Cutoff, Index2]
# ---------------------------------------------------------------------------------------
@njit
def plsec_dnde(energy, p):
    n0, g1, e0, ec, b = p[0], p[1], p[2], p[3], p[4]
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        e = energy[i]
        out[i] = n0 * math.exp(g1 * math.log(e / e0) - math.exp(b * math.log(e / ec)))
    return out


@njit
def plsec_grad(energy, p):
    n0, g1, e0, ec, b = p[0], p[1], p[2], p[3], p[4]
    out = np.empty((5, energy.shape[0]))
    for i in range(energy.shape[0]):
        e = energy[i]
        lx = math.log(e / e0)
        lc = math.log(e / ec)
        t = math.exp(b * lc)
        shape = math.exp(g1 * lx - t)
        f = n0 * shape
        out[0, i] = shape
        out[1, i] = f * lx
        out[2, i] = -f * g1 / e0
        out[3, i] = f * b * t / ec
        out[4, i] = -f * t * lc
    return out


# ---------------------------------------------------------------------------------------
# PLSuperExpCutoff2: Prefactor (E/Scale)^Index1 exp(-Expfactor E^Index2), E in MeV
#                    p = [Prefactor, Index1, Scale, Expfactor, Index2]
# ---------------------------------------------------------------------------------------
@njit
def plsec2_dnde(energy, p):
    n0, g1, e0, a, b = p[0], p[1], p[2], p[3], p[4]
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        e = energy[i]
        x = min(-a * math.exp(b * math.log(e)), MAX_EXPONENT)
        out[i] = n0 * math.exp(g1 * math.log(e / e0) + x)
    return out


@njit
def plsec2_grad(energy, p):
    n0, g1, e0, a, b = p[0], p[1], p[2], p[3], p[4]
    out = np.empty((5, energy.shape[0]))
    for i in range(energy.shape[0]):
        e = energy[i]
        le = math.log(e)
        lx = math.log(e / e0)
        eb = math.exp(b * le)
        x = -a * eb
        clamped = x > MAX_EXPONENT
        if clamped:
            x = MAX_EXPONENT
        shape = math.exp(g1 * lx + x)
        f = n0 * shape
        out[0, i] = shape
        out[1, i] = f * lx
        out[2, i] = -f * g1 / e0
        out[3, i] = 0.0 if clamped else -f * eb
        out[4, i] = 0.0 if clamped else -f * a * eb * le
    return out


# ---------------------------------------------------------------------------------------
# PLSuperExpCutoff3: Prefactor exp((IndexS + Expfactor2 Index2) y + Expfactor2 (1 - x^Index2))
#                    x = E/Scale, y = ln x.  p = [Prefactor, IndexS, Scale, Expfactor2, Index2]
# ---------------------------------------------------------------------------------------
@njit
def plsec3_dnde(energy, p):
    n0, gs, e0, d, b = p[0], p[1], p[2], p[3], p[4]
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        y = math.log(energy[i] / e0)
        z = (gs + d * b) * y + d * (1.0 - math.exp(b * y))
        out[i] = n0 * math.exp(min(z, MAX_EXPONENT))
    return out


@njit
def plsec3_grad(energy, p):
    n0, gs, e0, d, b = p[0], p[1], p[2], p[3], p[4]
    out = np.zeros((5, energy.shape[0]))
    for i in range(energy.shape[0]):
        y = math.log(energy[i] / e0)
        xb = math.exp(b * y)
        z = (gs + d * b) * y + d * (1.0 - xb)
        clamped = z > MAX_EXPONENT
        shape = math.exp(min(z, MAX_EXPONENT))
        f = n0 * shape
        out[0, i] = shape
        if not clamped:
            out[1, i] = f * y
            out[2, i] = f / e0 * (-(gs + d * b) + d * b * xb)
            out[3, i] = f * (b * y + 1.0 - xb)
            out[4, i] = f * d * y * (1.0 - xb)
    return out


# ---------------------------------------------------------------------------------------
# PLSuperExpCutoff4 (4FGL-DR3 PLEC4):
#   Prefactor exp((IndexS + ExpfactorS/Index2) y + ExpfactorS/Index2^2 (1 - exp(Index2 y)))
#   = Prefactor exp(IndexS y + ExpfactorS y^2 g(Index2 y)),  g(t) = (t - expm1 t)/t^2,
#   which is the log-parabola limit at Index2 = 0.  p = [Prefactor, IndexS, Scale,
#   ExpfactorS, Index2]
# ---------------------------------------------------------------------------------------
@njit
def plsec4_dnde(energy, p):
    n0, gs, e0, d, b = p[0], p[1], p[2], p[3], p[4]
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        y = math.log(energy[i] / e0)
        z = gs * y + d * y * y * _g4(b * y)
        out[i] = n0 * math.exp(min(z, MAX_EXPONENT))
    return out


@njit
def plsec4_grad(energy, p):
    n0, gs, e0, d, b = p[0], p[1], p[2], p[3], p[4]
    out = np.zeros((5, energy.shape[0]))
    for i in range(energy.shape[0]):
        y = math.log(energy[i] / e0)
        t = b * y
        g = _g4(t)
        z = gs * y + d * y * y * g
        clamped = z > MAX_EXPONENT
        shape = math.exp(min(z, MAX_EXPONENT))
        f = n0 * shape
        out[0, i] = shape
        if not clamped:
            out[1, i] = f * y
            out[2, i] = -f / e0 * (gs - d * y * _k4(t))
            out[3, i] = f * y * y * g
            out[4, i] = f * d * y * y * y * _dg4(t)
    return out


# ---------------------------------------------------------------------------------------
# BandFunction (Science Tools form, energies in units of Scale, Ep the e-folding energy):
#   alpha > beta:  norm x^alpha exp(-x/ep)                        x < ep (alpha-beta)
#                  norm x^beta (ep (alpha-beta))^(alpha-beta) e^(beta-alpha)   above
#   alpha <= beta: norm x^beta.          p = [norm, alpha, beta, Ep, Scale]
# ---------------------------------------------------------------------------------------
@njit
def band_dnde(energy, p):
    n0, al, be, ep, sc = p[0], p[1], p[2], p[3], p[4]
    out = np.empty(energy.shape[0])
    epk = ep / sc
    for i in range(energy.shape[0]):
        x = energy[i] / sc
        lx = math.log(x)
        if al <= be:
            out[i] = n0 * math.exp(be * lx)
        else:
            xb = epk * (al - be)
            if x < xb:
                out[i] = n0 * math.exp(al * lx - x / epk)
            else:
                out[i] = n0 * math.exp(be * lx + (al - be) * math.log(xb) + be - al)
    return out


@njit
def band_grad(energy, p):
    n0, al, be, ep, sc = p[0], p[1], p[2], p[3], p[4]
    out = np.zeros((5, energy.shape[0]))
    epk = ep / sc
    for i in range(energy.shape[0]):
        e = energy[i]
        x = e / sc
        lx = math.log(x)
        if al <= be:
            shape = math.exp(be * lx)
            f = n0 * shape
            out[0, i] = shape
            out[2, i] = f * lx
            out[4, i] = -f * be / sc
        else:
            xb = epk * (al - be)
            lxb = math.log(xb)
            if x < xb:
                shape = math.exp(al * lx - x / epk)
                f = n0 * shape
                out[0, i] = shape
                out[1, i] = f * lx
                out[3, i] = f * e / (ep * ep)
            else:
                shape = math.exp(be * lx + (al - be) * lxb + be - al)
                f = n0 * shape
                out[0, i] = shape
                out[1, i] = f * lxb
                out[2, i] = f * (lx - lxb)
                out[3, i] = f * (al - be) / ep
            out[4, i] = -f * al / sc
    return out


# ---------------------------------------------------------------------------------------
# ConstantValue: Value           p = [Value]
# ---------------------------------------------------------------------------------------
@njit
def constant_dnde(energy, p):
    out = np.empty(energy.shape[0])
    for i in range(energy.shape[0]):
        out[i] = p[0]
    return out


@njit
def constant_grad(energy, p):
    return np.ones((1, energy.shape[0]))


# ---------------------------------------------------------------------------------------
# FileFunction: Normalization x exp(linear interpolation of ln dN/dE in ln E)
# ---------------------------------------------------------------------------------------
@njit
def loglog_interp(loge, logx, logy, extrapolate):
    """Linear interpolation of (logx, logy) at each loge (all natural logs).

    Returns the interpolated values and the count of points outside [logx[0], logx[-1]]
    (which are evaluated on the end segments when ``extrapolate`` is true and are set to
    NaN otherwise)."""
    n = logx.shape[0]
    out = np.empty(loge.shape[0])
    nbad = 0
    for i in range(loge.shape[0]):
        u = loge[i]
        if u < logx[0] or u > logx[n - 1]:
            if not extrapolate:
                out[i] = np.nan
                nbad += 1
                continue
        # first node strictly above u, clipped to a valid segment
        j = np.searchsorted(logx, u, side="right")
        if j < 1:
            j = 1
        if j > n - 1:
            j = n - 1
        x0 = logx[j - 1]
        x1 = logx[j]
        if x1 == x0:
            out[i] = logy[j]
        else:
            w = (u - x0) / (x1 - x0)
            out[i] = logy[j - 1] + w * (logy[j] - logy[j - 1])
    return out, nbad


@njit
def loglog_integral(e1, e2, logx, logy, moment):
    """Exact integral of E^moment x (log-log interpolated table) from e1 to e2 (MeV),
    e1 <= e2 within the table (piecewise power laws)."""
    n = logx.shape[0]
    u1 = math.log(e1)
    u2 = math.log(e2)
    tot = 0.0
    for j in range(n - 1):
        a0 = logx[j]
        a1 = logx[j + 1]
        lo = max(a0, u1)
        hi = min(a1, u2)
        if hi <= lo or a1 == a0:
            continue
        slope = (logy[j + 1] - logy[j]) / (a1 - a0)
        # value at lo (log), power law of index slope from lo to hi
        ylo = logy[j] + slope * (lo - a0)
        a = slope + moment + 1.0
        tot += math.exp(ylo + (moment + 1.0) * lo) * expm1_over(a, hi - lo)
    return tot
