"""Spectral models of the Fermi Science Tools, with analytic integrals and derivatives.

Every model is a class named and parameterised as in the Science Tools XML
(``PowerLaw``: Prefactor, Index, Scale; ``LogParabola``: norm, alpha, beta, Eb; ...).  The
class attributes describe the parameters; the methods compute on PHYSICAL parameter arrays
``p`` (XML value x scale, in ``params`` order), so a PowerLaw Index is negative (-2), as the
Science Tools see it, whatever the XML writes (Fermipy writes value 2 with scale -1)::

    pl = PowerLaw()
    p = pl.make_p(Prefactor=3e-12, Index=-2.2)          # physical values, defaults elsewhere
    pl.evaluate(energy, p)        # dN/dE, ph cm-2 s-1 MeV-1, same shape as energy (MeV)
    pl.gradient(energy, p)        # d(dN/dE)/dp_k, shape (npar,) + energy.shape
    pl.flux(100., 316227.8, p)    # ph cm-2 s-1
    pl.eflux(100., 316227.8, p)   # MeV cm-2 s-1
    pl.flux_gradient(emin, emax, p)  # d flux / dp_k, shape (npar,) + broadcast shape

dN/dE and its gradient come from the numba kernels in :mod:`fermixr.model._kernels`.
Integrals are analytic where a closed form exists (power laws; PowerLaw2/BrokenPowerLaw2 by
construction; LogParabola through erfcx / Dawson's function; the exponential cut-off
families and the Band function through incomplete gamma functions; FileFunction as exact
piecewise power laws); elsewhere, and wherever a closed form would lose precision, an
adaptive Gauss-Legendre rule in ln E (converged to 1e-12 relative, split at breaks)
evaluates them.  Flux gradients integrate the analytic gradient with the same rule.

Defaults: value, scale and bounds are Fermipy 0.16's ``fermipy/data/models.yaml`` (with
normalisations rescaled to value 1 and a power-of-ten scale, as Fermipy's
``make_parameter_dict`` writes them); ``free`` is the Science Tools constructors' flag
(``Likelihood/src/*.cxx``: Scale, Eb-type references and integration limits fixed).
PLSuperExpCutoff3/4 are not in that file: their defaults are fermixr's (marked below).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import FileFormatError, GeometryError, ModelError
from ..io.filefunction import read_filefunction_table
from . import _kernels as K
from .parameters import Parameter

ParamSpec = Parameter
"""A parameter specification (name, value, scale, min, max, free) in the Science Tools'
XML convention: physical value = value x scale, bounds in the units of value.  The same
immutable class as :class:`fermixr.model.parameters.Parameter`."""

__all__ = [
    "ParamSpec", "SpectralModel", "SPECTRAL_MODELS", "get_spectral_model",
    "PowerLaw", "PowerLaw2", "BrokenPowerLaw", "BrokenPowerLaw2", "LogParabola",
    "ExpCutoff", "PLSuperExpCutoff", "PLSuperExpCutoff2", "PLSuperExpCutoff3",
    "PLSuperExpCutoff4", "BandFunction", "ConstantValue", "FileFunction",
]


def _special():
    """scipy.special, imported on first use (a quarter of a second that planning a cached
    run should not pay)."""
    from scipy import special

    return special


def _P(name, value, scale=1.0, lo=None, hi=None, free=False) -> Parameter:
    return Parameter(name, float(value), float(scale), None if lo is None else float(lo),
                     None if hi is None else float(hi), bool(free))


# Gauss-Legendre rule used by the adaptive integrator.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)
_RTOL = 1e-12
_MAX_WIDTH = 0.5           # initial sub-intervals at most this wide in ln E


def _adaptive_log_integral(fun, e1: float, e2: float, moment: int, breaks=()) -> np.ndarray:
    """Integral from e1 to e2 (0 < e1 < e2) of E^moment fun(E) dE, for a vector-valued
    ``fun(E) -> (k, n)``, by adaptive 16-point Gauss-Legendre on u = ln E.

    Each interval is compared with its two halves; it is accepted when they agree to
    ``_RTOL`` times the integral of |fun| over the whole range (per component)."""
    u1, u2 = math.log(e1), math.log(e2)
    cuts = [u1] + sorted(math.log(b) for b in breaks if e1 < b < e2) + [u2]
    lo, hi = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        n = max(1, int(math.ceil((b - a) / _MAX_WIDTH)))
        edges = np.linspace(a, b, n + 1)
        lo.extend(edges[:-1])
        hi.extend(edges[1:])
    lo = np.asarray(lo)
    hi = np.asarray(hi)
    total = None
    abs_total = None
    accepted = None
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        # nodes: whole interval, left half, right half
        a = np.concatenate([lo, lo, mid])
        b = np.concatenate([hi, mid, hi])
        half = 0.5 * (b - a)
        u = 0.5 * (a + b)[:, None] + half[:, None] * _GL_X[None, :]
        e = np.exp(u)
        vals = np.asarray(fun(e.ravel()), dtype=float)
        if vals.ndim == 1:
            vals = vals[None, :]
        vals = vals.reshape(vals.shape[0], e.shape[0], e.shape[1]) * e[None] ** (moment + 1)
        est = np.einsum("kmj,j->km", vals, _GL_W) * half[None, :]
        aest = np.einsum("kmj,j->km", np.abs(vals), _GL_W) * half[None, :]
        m = lo.size
        whole = est[:, :m]
        halves = est[:, m:2 * m] + est[:, 2 * m:]
        ahalves = aest[:, m:2 * m] + aest[:, 2 * m:]
        if total is None:
            accepted = np.zeros(est.shape[0])
            abs_total = ahalves.sum(axis=1)
        scale = np.maximum(abs_total, 1e-300)
        err = np.abs(whole - halves)
        ok = np.all(err <= _RTOL * scale[:, None], axis=0) | ((hi - lo) < 1e-12)
        accepted = accepted + halves[:, ok].sum(axis=1)
        total = accepted
        if ok.all():
            return total
        lo_bad, hi_bad, mid_bad = lo[~ok], hi[~ok], mid[~ok]
        lo = np.concatenate([lo_bad, mid_bad])
        hi = np.concatenate([mid_bad, hi_bad])
    # not converged in 60 rounds: add the best estimate of what is left
    return accepted + halves[:, ~ok].sum(axis=1)


def _pl_integral(e1, e2, e0, g, moment):
    """Integral of E^moment (E/e0)^g from e1 to e2 (arrays, 0 < e1 <= e2), exact."""
    a = g + moment + 1.0
    s = np.log(e2 / e1)
    em = s if a == 0.0 else np.expm1(a * s) / a
    return e0 ** (moment + 1.0) * np.exp(a * np.log(e1 / e0)) * em


def _gamma_diff(a: float, x1: float, x2: float) -> float:
    """Integral of t^(a-1) e^-t from x1 to x2 (0 < x1 <= x2) for any real a, from
    incomplete gamma functions; where that would lose precision (a within 1e-3 below a
    non-positive integer, x1 > 25 with a < 0, a > 150) the adaptive rule integrates it."""
    if x2 <= x1:
        return 0.0
    if a > 0.0:
        if a > 150.0:
            return _gamma_diff_numeric(a, x1, x2)
        g = math.gamma(a)
        if x1 >= a:
            return g * (_special().gammaincc(a, x1) - _special().gammaincc(a, x2))
        return g * (_special().gammainc(a, x2) - _special().gammainc(a, x1))
    # a <= 0: upward from a0 = a + n in [0, 1) with Gamma(b, x) = (Gamma(b+1, x) - x^b e^-x)/b
    n = int(math.ceil(-a))
    a0 = a + n
    if a0 >= 1.0:                       # rounding
        a0 -= 1.0
        n -= 1
    if n > 30 or x1 > 25.0 or (n > 0 and a0 > 1.0 - 1e-3):
        # the recurrence would divide by b ~ 0 or cancel: integrate instead
        return _gamma_diff_numeric(a, x1, x2)
    if abs(a0) < 1e-12:
        d = _special().exp1(x1) - _special().exp1(x2)
        a0 = 0.0
    else:
        d = _gamma_diff(a0, x1, x2)
    b = a0
    lx1, lx2 = math.log(x1), math.log(x2)
    for _ in range(n):
        b -= 1.0
        bound = math.exp(b * lx1 - x1) - math.exp(b * lx2 - x2)
        d = (d - bound) / b
    return d


def _gamma_diff_numeric(a: float, x1: float, x2: float) -> float:
    fun = lambda t: np.exp((a - 1.0) * np.log(t) - t)  # noqa: E731
    return float(_adaptive_log_integral(fun, x1, x2, 0)[0])


def _gamma_term(logcoef: float, a: float, t1: float, t2: float) -> float:
    """exp(logcoef) x _gamma_diff(a, t1, t2) computed in logs (NaN if not available)."""
    lo, hi = min(t1, t2), max(t1, t2)
    d = _gamma_diff(a, lo, hi)
    if not np.isfinite(d):
        return math.nan
    if d == 0.0:
        return 0.0
    if d < 0.0:
        return math.nan
    return math.exp(logcoef + math.log(d))


class SpectralModel:
    """Base class: subclasses set the class attributes and their kernels."""

    tag: ClassVar[str] = ""
    params: ClassVar[tuple[Parameter, ...]] = ()
    norm_param: ClassVar[str] = ""
    index_params: ClassVar[tuple[str, ...]] = ()
    # reference energies and integration limits, fixed by convention (not "shape")
    scale_params: ClassVar[tuple[str, ...]] = ()
    _dnde_kernel: ClassVar = None
    _grad_kernel: ClassVar = None

    # -- parameters ---------------------------------------------------------------------
    @property
    def par_names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.params)

    @property
    def npar(self) -> int:
        return len(self.params)

    @property
    def shape_params(self) -> tuple[str, ...]:
        """Parameters Fermipy's ``free_shape`` acts on: all but the normalisation and the
        fixed reference/limit parameters."""
        return tuple(n for n in self.par_names
                     if n != self.norm_param and n not in self.scale_params)

    def param_index(self, name: str) -> int:
        try:
            return self.par_names.index(name)
        except ValueError:
            raise ModelError(f"spectral model {self.tag} has no parameter {name!r}; its "
                             f"parameters are {', '.join(self.par_names)}") from None

    def default_p(self) -> np.ndarray:
        """Physical default values (value x scale) in ``params`` order."""
        return np.array([q.value * q.scale for q in self.params], dtype=float)

    def make_p(self, **values: float) -> np.ndarray:
        """Physical parameter array from keyword PHYSICAL values, defaults elsewhere."""
        p = self.default_p()
        for k, v in values.items():
            p[self.param_index(k)] = float(v)
        return p

    def _check_p(self, p) -> np.ndarray:
        p = np.ascontiguousarray(p, dtype=float)
        if p.ndim != 1 or p.size != self.npar:
            raise ModelError(f"spectral model {self.tag}: got {p.size} parameter value(s) "
                             f"{p.tolist()!r}; expected {self.npar} physical values for "
                             f"({', '.join(self.par_names)})")
        return p

    @staticmethod
    def _energy(energy) -> tuple[np.ndarray, tuple]:
        e = np.asarray(energy, dtype=float)
        flat = np.ascontiguousarray(e.ravel())
        if flat.size and not (flat.min() > 0.0):
            raise GeometryError(f"spectral models need energies > 0 MeV; got minimum "
                                f"{flat.min()!r}")
        return flat, e.shape

    # -- dN/dE and derivatives ----------------------------------------------------------
    def evaluate(self, energy, p) -> np.ndarray:
        """dN/dE (ph cm-2 s-1 MeV-1) at ``energy`` (MeV, any shape)."""
        flat, shape = self._energy(energy)
        return self._dnde(flat, self._check_p(p)).reshape(shape)

    def gradient(self, energy, p) -> np.ndarray:
        """d(dN/dE)/dp_k for the physical parameters: shape (npar,) + energy.shape."""
        flat, shape = self._energy(energy)
        return self._grad(flat, self._check_p(p)).reshape((self.npar,) + shape)

    def _dnde(self, e, p):
        return type(self)._dnde_kernel(e, p)

    def _grad(self, e, p):
        return type(self)._grad_kernel(e, p)

    # -- integrals ------------------------------------------------------------------------
    def flux(self, emin, emax, p):
        """Photon flux between emin and emax (MeV; arrays broadcast), ph cm-2 s-1."""
        return self._integral(emin, emax, p, 0)

    def eflux(self, emin, emax, p):
        """Energy flux between emin and emax (MeV; arrays broadcast), MeV cm-2 s-1."""
        return self._integral(emin, emax, p, 1)

    def flux_gradient(self, emin, emax, p):
        """d flux / dp_k: shape (npar,) + broadcast shape of emin, emax."""
        return self._integral_gradient(emin, emax, p, 0)

    def eflux_gradient(self, emin, emax, p):
        """d eflux / dp_k: shape (npar,) + broadcast shape of emin, emax."""
        return self._integral_gradient(emin, emax, p, 1)

    def _breaks(self, p) -> tuple[float, ...]:
        """Energies where dN/dE or its derivatives are not smooth."""
        return ()

    def _analytic_integral(self, e1: np.ndarray, e2: np.ndarray, p, moment: int):
        """Closed-form integrals for 0 < e1 < e2 (1-d arrays); NaN where unavailable."""
        return np.full(e1.shape, np.nan)

    def _numeric_integral(self, e1: float, e2: float, p, moment: int) -> float:
        fun = lambda e: self._dnde(e, p)  # noqa: E731
        return float(_adaptive_log_integral(fun, e1, e2, moment, self._breaks(p))[0])

    def _limits(self, emin, emax):
        e1, e2 = np.broadcast_arrays(np.asarray(emin, dtype=float),
                                     np.asarray(emax, dtype=float))
        shape = e1.shape
        e1 = e1.ravel()
        e2 = e2.ravel()
        if e1.size and not (min(e1.min(), e2.min()) > 0.0):
            raise GeometryError(f"spectral integrals need energies > 0 MeV; got emin "
                                f"{e1.min()!r}, emax {e2.min()!r}")
        sign = np.where(e2 < e1, -1.0, 1.0)
        lo = np.minimum(e1, e2)
        hi = np.maximum(e1, e2)
        return lo, hi, sign, shape

    def _integral(self, emin, emax, p, moment):
        p = self._check_p(p)
        lo, hi, sign, shape = self._limits(emin, emax)
        out = np.zeros(lo.shape)
        nz = hi > lo
        if nz.any():
            res = np.asarray(self._analytic_integral(lo[nz], hi[nz], p, moment), dtype=float)
            bad = ~np.isfinite(res)
            if bad.any():
                idx = np.flatnonzero(bad)
                l2, h2 = lo[nz][idx], hi[nz][idx]
                res[idx] = [self._numeric_integral(a, b, p, moment) for a, b in zip(l2, h2)]
            out[nz] = res
        out = out * sign
        return out.reshape(shape) if shape else float(out[0])

    def _integral_gradient(self, emin, emax, p, moment):
        p = self._check_p(p)
        lo, hi, sign, shape = self._limits(emin, emax)
        out = np.zeros((self.npar, lo.size))
        brk = self._breaks(p)
        fun = lambda e: self._grad(e, p)  # noqa: E731
        for i in range(lo.size):
            if hi[i] > lo[i]:
                out[:, i] = sign[i] * _adaptive_log_integral(fun, lo[i], hi[i], moment, brk)
        return out.reshape((self.npar,) + shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# =======================================================================================
# Models
# =======================================================================================
# Norm/index defaults used by many models: Fermipy models.yaml (Prefactor 1e-12 with ratio
# bounds 1e-5..1e3, Index value 2 scale -1 in [0, 5], Scale 1000 in [0.001, 1000]).
def _prefactor(name="Prefactor", value=1e-12):
    return _P(name, 1.0, value, 1e-5, 1e3, True)


def _index(name, free=True):
    return _P(name, 2.0, -1.0, 0.0, 5.0, free)


_SCALE = _P("Scale", 1000.0, 1.0, 0.001, 1000.0, False)


class PowerLaw(SpectralModel):
    """dN/dE = Prefactor (E/Scale)^Index (Science Tools PowerLaw.cxx)."""

    tag = "PowerLaw"
    params = (_prefactor(), _index("Index"), _SCALE)
    norm_param = "Prefactor"
    index_params = ("Index",)
    scale_params = ("Scale",)
    _dnde_kernel = K.powerlaw_dnde
    _grad_kernel = K.powerlaw_grad

    def _analytic_integral(self, e1, e2, p, moment):
        return p[0] * _pl_integral(e1, e2, p[2], p[1], moment)


class PowerLaw2(SpectralModel):
    """dN/dE = Integral (Index+1) E^Index / (UpperLimit^(Index+1) - LowerLimit^(Index+1)):
    a power law whose photon flux between LowerLimit and UpperLimit is Integral
    (Science Tools PowerLaw2.cxx, including the Index = -1 limit)."""

    tag = "PowerLaw2"
    params = (_P("Integral", 1.0, 1e-6, 1e-5, 1e3, True), _index("Index"),
              _P("LowerLimit", 100.0, 1.0, 20.0, 1e6, False),
              _P("UpperLimit", 1e5, 1.0, 20.0, 1e6, False))
    norm_param = "Integral"
    index_params = ("Index",)
    scale_params = ("LowerLimit", "UpperLimit")
    _dnde_kernel = K.powerlaw2_dnde
    _grad_kernel = K.powerlaw2_grad

    def _analytic_integral(self, e1, e2, p, moment):
        nn, g, lo, hi = p
        a0 = g + 1.0
        r = math.log(hi / lo)
        norm = r if a0 == 0.0 else math.expm1(a0 * r) / a0
        # dN/dE = nn / (lo * norm) * (E/lo)^g
        return nn / (lo * norm) * _pl_integral(e1, e2, lo, g, moment)


class BrokenPowerLaw(SpectralModel):
    """dN/dE = Prefactor (E/BreakValue)^Index1 for E < BreakValue, ^Index2 above
    (Science Tools BrokenPowerLaw.cxx)."""

    tag = "BrokenPowerLaw"
    params = (_prefactor(), _index("Index1"), _index("Index2"),
              _P("BreakValue", 1000.0, 1.0, 0.001, 1000.0, True))
    norm_param = "Prefactor"
    index_params = ("Index1", "Index2")
    _dnde_kernel = K.brokenpowerlaw_dnde
    _grad_kernel = K.brokenpowerlaw_grad

    def _breaks(self, p):
        return (float(p[3]),)

    def _analytic_integral(self, e1, e2, p, moment):
        n0, g1, g2, eb = p
        below = _pl_integral(np.minimum(e1, eb), np.minimum(e2, eb), eb, g1, moment)
        above = _pl_integral(np.maximum(e1, eb), np.maximum(e2, eb), eb, g2, moment)
        return n0 * (below + above)


class BrokenPowerLaw2(SpectralModel):
    """BrokenPowerLaw normalised by its photon flux ``Integral`` between LowerLimit and
    UpperLimit (Science Tools BrokenPowerLaw2.cxx)."""

    tag = "BrokenPowerLaw2"
    params = (_P("Integral", 1.0, 1e-6, 1e-5, 1e3, True), _index("Index1"), _index("Index2"),
              _P("BreakValue", 1000.0, 1.0, 0.001, 1000.0, True),
              _P("LowerLimit", 100.0, 1.0, 20.0, 1e6, False),
              _P("UpperLimit", 1e5, 1.0, 20.0, 1e6, False))
    norm_param = "Integral"
    index_params = ("Index1", "Index2")
    scale_params = ("LowerLimit", "UpperLimit")
    _dnde_kernel = K.brokenpowerlaw2_dnde
    _grad_kernel = K.brokenpowerlaw2_grad

    def _breaks(self, p):
        return (float(p[3]),)

    def _analytic_integral(self, e1, e2, p, moment):
        nn, g1, g2, eb = p[0], p[1], p[2], p[3]
        d = K.bpl2_pieces(p)[0]
        below = _pl_integral(np.minimum(e1, eb), np.minimum(e2, eb), eb, g1, moment)
        above = _pl_integral(np.maximum(e1, eb), np.maximum(e2, eb), eb, g2, moment)
        return nn / d * (below + above)


class LogParabola(SpectralModel):
    """dN/dE = norm (E/Eb)^-(alpha + beta ln(E/Eb)) (Science Tools LogParabola.cxx)."""

    tag = "LogParabola"
    params = (_prefactor("norm"), _P("alpha", 2.0, 1.0, -5.0, 5.0, True),
              _P("beta", 0.0, 1.0, -2.0, 2.0, True), _P("Eb", 1000.0, 1.0, 0.001, 1000.0, True))
    norm_param = "norm"
    index_params = ("alpha", "beta")
    scale_params = ("Eb",)
    _dnde_kernel = K.logparabola_dnde
    _grad_kernel = K.logparabola_grad

    def _analytic_integral(self, e1, e2, p, moment):
        n0, al, be, eb = p
        if be == 0.0:
            return n0 * _pl_integral(e1, e2, eb, -al, moment)
        # with u = ln(E/Eb): n0 Eb^(m+1) * integral of exp(c u - beta u^2) du, c = m + 1 - alpha
        c = moment + 1.0 - al
        u1 = np.log(e1 / eb)
        u2 = np.log(e2 / eb)
        q1 = c * u1 - be * u1 * u1
        q2 = c * u2 - be * u2 * u2
        if be > 0.0:
            sb = math.sqrt(be)
            z1 = sb * (u1 - c / (2.0 * be))
            z2 = sb * (u2 - c / (2.0 * be))
            k = math.sqrt(math.pi) / (2.0 * sb)
            res = np.empty(u1.shape)
            up = z1 >= 0.0
            dn = z2 <= 0.0
            mid = ~(up | dn)
            res[up] = (np.exp(q1[up]) * _special().erfcx(z1[up])
                       - np.exp(q2[up]) * _special().erfcx(z2[up]))
            res[dn] = (np.exp(q2[dn]) * _special().erfcx(-z2[dn])
                       - np.exp(q1[dn]) * _special().erfcx(-z1[dn]))
            if mid.any():
                res[mid] = (2.0 * np.exp(c * c / (4.0 * be))
                            - np.exp(q1[mid]) * _special().erfcx(-z1[mid])
                            - np.exp(q2[mid]) * _special().erfcx(z2[mid]))
            res = res * k
        else:
            bb = -be
            sb = math.sqrt(bb)
            w1 = sb * (u1 + c / (2.0 * bb))
            w2 = sb * (u2 + c / (2.0 * bb))
            res = (np.exp(q2) * _special().dawsn(w2) - np.exp(q1) * _special().dawsn(w1)) / sb
        return n0 * eb ** (moment + 1.0) * res


class ExpCutoff(SpectralModel):
    """dN/dE = Prefactor (E/Scale)^Index, times exp(-((E-Ebreak)/P1 + P2 ln(E/Ebreak) +
    P3 ln^2(E/Ebreak))) for E >= Ebreak (Science Tools ExpCutoff.cxx)."""

    tag = "ExpCutoff"
    params = (_prefactor(), _P("Index", -2.1, 1.0, None, None, True), _SCALE,
              _P("Ebreak", 10.0, 1.0, None, None, True), _P("P1", 150.0, 1.0, None, None, True),
              _P("P2", 0.0, 1.0, None, None, True), _P("P3", 0.0, 1.0, None, None, True))
    norm_param = "Prefactor"
    index_params = ("Index",)
    scale_params = ("Scale",)
    _dnde_kernel = K.expcutoff_dnde
    _grad_kernel = K.expcutoff_grad

    def _breaks(self, p):
        return (float(p[3]),)

    def _analytic_integral(self, e1, e2, p, moment):
        n0, g, e0, eb, p1, p2, p3 = p
        below = n0 * _pl_integral(np.minimum(e1, eb), np.minimum(e2, eb), e0, g, moment)
        if p3 != 0.0 or not p1 > 0.0:
            return np.where(e2 <= eb, below, np.nan)
        # above Ebreak: C E^(g - P2 + m) exp(-E/P1) -> incomplete gamma in t = E/P1
        a = g - p2 + moment + 1.0
        logc = (math.log(n0) if n0 > 0 else math.nan) + g * math.log(p1 / e0) \
            + p2 * math.log(eb / p1) + eb / p1 + (moment + 1.0) * math.log(p1)
        above = np.array([
            _gamma_term(logc, a, max(a1, eb) / p1, max(a2, eb) / p1) if a2 > eb else 0.0
            for a1, a2 in zip(e1, e2)])
        return below + above


class PLSuperExpCutoff(SpectralModel):
    """dN/dE = Prefactor (E/Scale)^Index1 exp(-(E/Cutoff)^Index2)
    (Science Tools PowerLawSuperExpCutoff.cxx)."""

    tag = "PLSuperExpCutoff"
    params = (_prefactor(), _index("Index1"), _SCALE,
              _P("Cutoff", 1000.0, 1.0, 0.001, 1000.0, True),
              _P("Index2", 1.0, 1.0, 0.0, 2.0, True))
    norm_param = "Prefactor"
    index_params = ("Index1", "Index2")
    scale_params = ("Scale",)
    _dnde_kernel = K.plsec_dnde
    _grad_kernel = K.plsec_grad

    def _analytic_integral(self, e1, e2, p, moment):
        n0, g1, e0, ec, b = p
        if b == 0.0 or not n0 > 0.0:
            return np.full(e1.shape, np.nan)
        # t = (E/Ec)^b:  n0 (Ec/E0)^g1 Ec^(m+1)/|b| * Gamma-difference at a = (g1+m+1)/b
        a = (g1 + moment + 1.0) / b
        logc = math.log(n0) + g1 * math.log(ec / e0) + (moment + 1.0) * math.log(ec) \
            - math.log(abs(b))
        return np.array([_gamma_term(logc, a, (x1 / ec) ** b, (x2 / ec) ** b)
                         for x1, x2 in zip(e1, e2)])


class PLSuperExpCutoff2(SpectralModel):
    """dN/dE = Prefactor (E/Scale)^Index1 exp(-Expfactor E^Index2), E in MeV; the exponent
    is clamped at ln(1e100) as in the Science Tools (PowerLawSuperExpCutoff2.cxx)."""

    tag = "PLSuperExpCutoff2"
    params = (_prefactor(), _index("Index1"), _SCALE,
              _P("Expfactor", 0.0, 1.0, -0.5, 0.5, True), _P("Index2", 1.0, 1.0, 0.0, 2.0, True))
    norm_param = "Prefactor"
    index_params = ("Index1", "Index2")
    scale_params = ("Scale",)
    _dnde_kernel = K.plsec2_dnde
    _grad_kernel = K.plsec2_grad

    def _analytic_integral(self, e1, e2, p, moment):
        n0, g1, e0, ea, b = p
        if ea == 0.0:
            return n0 * _pl_integral(e1, e2, e0, g1, moment)
        if not (ea > 0.0 and b != 0.0 and n0 > 0.0):
            return np.full(e1.shape, np.nan)
        # t = A E^b:  n0 E0^-g1 A^-a / |b| * Gamma-difference, a = (g1+m+1)/b
        a = (g1 + moment + 1.0) / b
        logc = math.log(n0) - g1 * math.log(e0) - a * math.log(ea) - math.log(abs(b))
        return np.array([_gamma_term(logc, a, ea * x1 ** b, ea * x2 ** b)
                         for x1, x2 in zip(e1, e2)])


def _plec34_integral(n0, g, e0, c, b, e1, e2, moment):
    """Integral of E^m n0 e^c x^g exp(-c x^b), x = E/e0 (c > 0, b != 0)."""
    a = (g + moment + 1.0) / b
    logc = math.log(n0) + c - a * math.log(c) + (moment + 1.0) * math.log(e0) - math.log(abs(b))
    return np.array([_gamma_term(logc, a, c * (x1 / e0) ** b, c * (x2 / e0) ** b)
                     for x1, x2 in zip(e1, e2)])


class PLSuperExpCutoff3(SpectralModel):
    """dN/dE = Prefactor exp((IndexS + Expfactor2 Index2) ln x + Expfactor2 (1 - x^Index2)),
    x = E/Scale (Science Tools PowerLawSuperExpCutoff3.cxx; IndexS is the local slope at
    Scale).  Defaults of Expfactor2 and Index2 are fermixr's (not in Fermipy 0.16)."""

    tag = "PLSuperExpCutoff3"
    params = (_prefactor(), _index("IndexS"), _SCALE,
              _P("Expfactor2", 0.0, 1.0, -1.0, 1.0, True),
              _P("Index2", 0.6667, 1.0, 0.0, 2.0, True))
    norm_param = "Prefactor"
    index_params = ("IndexS", "Index2")
    scale_params = ("Scale",)
    _dnde_kernel = K.plsec3_dnde
    _grad_kernel = K.plsec3_grad

    def _analytic_integral(self, e1, e2, p, moment):
        n0, gs, e0, d, b = p
        if d == 0.0:
            return n0 * _pl_integral(e1, e2, e0, gs, moment)
        if not (d > 0.0 and b != 0.0 and n0 > 0.0) or d > 600.0:
            return np.full(e1.shape, np.nan)
        return _plec34_integral(n0, gs + d * b, e0, d, b, e1, e2, moment)


class PLSuperExpCutoff4(SpectralModel):
    """4FGL-DR3 PLEC4: dN/dE = Prefactor x^(IndexS + ExpfactorS/Index2)
    exp(ExpfactorS/Index2^2 (1 - x^Index2)), x = E/Scale; the log-parabola limit
    Prefactor x^(IndexS - ExpfactorS ln(x)/2) at Index2 -> 0 is evaluated without loss
    (Science Tools PowerLawSuperExpCutoff4.cxx).  ExpfactorS and Index2 defaults are
    fermixr's (4FGL-DR3 fixes Index2 = 2/3 for pulsars)."""

    tag = "PLSuperExpCutoff4"
    params = (_prefactor(), _index("IndexS"), _SCALE,
              _P("ExpfactorS", 0.0, 1.0, -1.0, 1.0, True),
              _P("Index2", 0.6667, 1.0, 0.0, 2.0, True))
    norm_param = "Prefactor"
    index_params = ("IndexS", "Index2")
    scale_params = ("Scale",)
    _dnde_kernel = K.plsec4_dnde
    _grad_kernel = K.plsec4_grad

    def _analytic_integral(self, e1, e2, p, moment):
        n0, gs, e0, d, b = p
        if d == 0.0:
            return n0 * _pl_integral(e1, e2, e0, gs, moment)
        if b == 0.0:
            lp = LogParabola()
            return lp._analytic_integral(e1, e2, np.array([n0, -gs, d / 2.0, e0]), moment)
        c = d / (b * b)
        if not (c > 0.0 and n0 > 0.0) or c > 600.0:
            return np.full(e1.shape, np.nan)
        return _plec34_integral(n0, gs + d / b, e0, c, b, e1, e2, moment)


class BandFunction(SpectralModel):
    """Band function as the Science Tools write it (BandFunction.cxx), x = E/Scale,
    ep = Ep/Scale: norm x^alpha exp(-x/ep) below x_b = ep (alpha - beta), norm x^beta
    x_b^(alpha-beta) exp(beta - alpha) above; norm x^beta when alpha <= beta.  (The
    Science Tools return a non-zero d/dalpha for alpha <= beta, where the function does
    not depend on alpha; here it is 0.)"""

    tag = "BandFunction"
    params = (_P("norm", 1.0, 1.0, None, None, True), _P("alpha", -1.0, 1.0, None, None, True),
              _P("beta", -2.0, 1.0, None, None, True), _P("Ep", 0.1, 1.0, None, None, True),
              _SCALE)
    norm_param = "norm"
    index_params = ("alpha", "beta")
    scale_params = ("Scale",)
    _dnde_kernel = K.band_dnde
    _grad_kernel = K.band_grad

    def _breaks(self, p):
        n0, al, be, ep, sc = p
        return (float(ep * (al - be)),) if al > be else ()

    def _analytic_integral(self, e1, e2, p, moment):
        n0, al, be, ep, sc = p
        if al <= be:
            return n0 * _pl_integral(e1, e2, sc, be, moment)
        if not (ep > 0.0 and n0 > 0.0):
            return np.full(e1.shape, np.nan)
        ebr = ep * (al - be)                          # MeV
        xb = ebr / sc
        # above: norm xb^(al-be) e^(be-al) (E/sc)^be
        hi_coef = n0 * math.exp((al - be) * math.log(xb) + be - al)
        above = hi_coef * _pl_integral(np.maximum(e1, ebr), np.maximum(e2, ebr), sc, be, moment)
        # below: norm (E/sc)^al exp(-E/Ep): t = E/Ep, norm (Ep/sc)^al Ep^(m+1) Gamma(al+m+1)
        a = al + moment + 1.0
        logc = math.log(n0) + al * math.log(ep / sc) + (moment + 1.0) * math.log(ep)
        below = np.array([_gamma_term(logc, a, x1 / ep, min(x2, ebr) / ep) if x1 < ebr else 0.0
                          for x1, x2 in zip(e1, e2)])
        return above + below


class ConstantValue(SpectralModel):
    """dN/dE = Value (Science Tools ConstantValue)."""

    tag = "ConstantValue"
    params = (_P("Value", 1.0, 1.0, None, None, True),)
    norm_param = "Value"
    index_params = ()
    _dnde_kernel = K.constant_dnde
    _grad_kernel = K.constant_grad

    def _analytic_integral(self, e1, e2, p, moment):
        return p[0] * (e2 ** (moment + 1.0) - e1 ** (moment + 1.0)) / (moment + 1.0)


class FileFunction(SpectralModel):
    """dN/dE = Normalization x the tabulated spectrum, interpolated linearly in
    (ln E, ln dN/dE) (Science Tools FileFunction.cxx).

    The table is two or three whitespace-separated columns (energy in MeV, dN/dE, an
    optional error that is ignored), ``#`` comments.  As in the Science Tools an energy
    outside the table raises an error; ``extrapolate=True`` continues the end segments.
    Integrals are exact (the interpolant is a power law between nodes)."""

    tag = "FileFunction"
    params = (_P("Normalization", 1.0, 1.0, 1e-5, 1e3, True),)
    norm_param = "Normalization"
    index_params = ()

    def __init__(self, energy=None, dnde=None, *, extrapolate: bool = False,
                 source: str | None = None):
        self.extrapolate = bool(extrapolate)
        self.source = source
        if energy is None and dnde is None:
            self._logx = None
            self._logy = None
            return
        e = np.asarray(energy, dtype=float).ravel()
        f = np.asarray(dnde, dtype=float).ravel()
        where = f"FileFunction table {source}" if source else "FileFunction table"
        if e.size != f.size or e.size < 2:
            raise FileFormatError(f"{where}: needs at least two (energy, dN/dE) rows of equal "
                                  f"length; got {e.size} energies and {f.size} values")
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(f))):
            raise FileFormatError(f"{where}: energies and dN/dE must be finite numbers")
        if e.min() <= 0.0 or f.min() <= 0.0:
            bad = int(np.flatnonzero((e <= 0) | (f <= 0))[0])
            raise FileFormatError(f"{where}: row {bad + 1} has energy {e[bad]!r}, dN/dE "
                                  f"{f[bad]!r}; both must be > 0 for log-log interpolation")
        if np.any(np.diff(e) < 0.0):
            bad = int(np.flatnonzero(np.diff(e) < 0.0)[0])
            raise FileFormatError(f"{where}: energies must increase; row {bad + 2} "
                                  f"({e[bad + 1]!r}) follows {e[bad]!r}")
        self._logx = np.log(e)
        self._logy = np.log(f)
        self._logx.setflags(write=False)
        self._logy.setflags(write=False)

    @classmethod
    def from_file(cls, path, *, extrapolate: bool = False) -> "FileFunction":
        """Read a Science Tools FileFunction text table
        (:func:`fermixr.io.filefunction.read_filefunction_table`)."""
        path = Path(path).expanduser()
        energy, dnde = read_filefunction_table(path)
        return cls(energy, dnde, extrapolate=extrapolate, source=str(path))

    @property
    def energy(self) -> np.ndarray:
        self._need_table()
        return np.exp(self._logx)

    @property
    def dnde_table(self) -> np.ndarray:
        self._need_table()
        return np.exp(self._logy)

    def _need_table(self):
        if self._logx is None:
            raise ModelError("FileFunction has no table: build it with "
                             "FileFunction.from_file(path) or FileFunction(energy, dnde)")

    def _shape(self, e):
        self._need_table()
        vals, nbad = K.loglog_interp(np.log(e), self._logx, self._logy, self.extrapolate)
        if nbad:
            lo, hi = math.exp(self._logx[0]), math.exp(self._logx[-1])
            # tolerate round-off at the table ends (exp(log(E)) != E)
            near = (e >= lo * (1 - 1e-12)) & (e <= hi * (1 + 1e-12))
            bad = np.isnan(vals)
            fix = bad & near
            if fix.any():
                vals[fix] = np.where(e[fix] < math.sqrt(lo * hi), self._logy[0], self._logy[-1])
            if (bad & ~near).any():
                out = e[bad & ~near]
                where = f" of {self.source}" if self.source else ""
                raise GeometryError(
                    f"FileFunction: {out.size} requested energies (from {out.min():.6g} to "
                    f"{out.max():.6g} MeV) lie outside the table range{where}, {lo:.6g} to "
                    f"{hi:.6g} MeV (the Science Tools refuse them too); pass "
                    "extrapolate=True to continue the end segments")
        return np.exp(vals)

    def _dnde(self, e, p):
        return p[0] * self._shape(e)

    def _grad(self, e, p):
        return self._shape(e)[None, :]

    def _breaks(self, p):
        return tuple(np.exp(self._logx))

    def _analytic_integral(self, e1, e2, p, moment):
        self._need_table()
        lx, ly = self._logx, self._logy
        if self.extrapolate:
            # extend the table with its end segments to cover the requested range
            lo = min(float(e1.min()), math.exp(lx[0]))
            hi = max(float(e2.max()), math.exp(lx[-1]))
            ends = np.log(np.array([lo, hi]))
            yends = K.loglog_interp(ends, lx, ly, True)[0]
            lx = np.concatenate([[ends[0]], lx, [ends[1]]])
            ly = np.concatenate([[yends[0]], ly, [yends[1]]])
        else:
            self._shape(np.array([float(e1.min()), float(e2.max())]))  # range check
        return p[0] * np.array([K.loglog_integral(a, b, lx, ly, float(moment))
                                for a, b in zip(e1, e2)])

    def _integral_gradient(self, emin, emax, p, moment):
        p = self._check_p(p)
        f = np.asarray(self._integral(emin, emax, np.array([1.0]), moment))
        return f[None, ...]

    def __repr__(self) -> str:
        src = f"{self.source!r}" if self.source else ("<table>" if self._logx is not None
                                                      else "<no table>")
        return f"FileFunction({src})"


# =======================================================================================
# Registry
# =======================================================================================
SPECTRAL_MODELS: dict[str, type[SpectralModel]] = {
    cls.tag: cls for cls in (
        PowerLaw, PowerLaw2, BrokenPowerLaw, BrokenPowerLaw2, LogParabola, ExpCutoff,
        PLSuperExpCutoff, PLSuperExpCutoff2, PLSuperExpCutoff3, PLSuperExpCutoff4,
        BandFunction, ConstantValue, FileFunction)
}


def get_spectral_model(tag: str) -> type[SpectralModel]:
    """The spectral model class of a Science Tools tag; ModelError names unknown tags."""
    try:
        return SPECTRAL_MODELS[tag]
    except (KeyError, TypeError):
        raise ModelError(f"unknown spectral model {tag!r}; known spectral models: "
                         f"{', '.join(sorted(SPECTRAL_MODELS))}") from None
