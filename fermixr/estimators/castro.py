"""Likelihood profiles ("castro" data) with Fermipy 0.16's names.

A castro is a set of one-dimensional likelihood profiles, one per energy bin: the negative
log-likelihood of a source's normalisation in that bin, tabulated on a scan.  Fermipy's SED
file (HDU ``SED``) and its TS-cube file (``SCANDATA`` + ``EBOUNDS``) both hold them, in the
same column names (``norm_scan``, ``dloglike_scan`` and the ``ref_*`` reference fluxes), and
fermixr writes the same layouts::

    c = CastroData.create_from_sedfile("sed.fits")             # norm_type 'eflux'
    c = CastroData.create_from_fits("tscube.fits", irow=1234)  # one pixel of a TS cube
    c = read_castro(path)                                      # either layout
    c.mles(), c.ts_vals(), c.getLimits(0.05), c.getIntervals(0.32)
    out = c.test_spectra()        # {'PowerLaw': {'Result', 'Spectrum', 'TS', ...}, ...}
    stacked = CastroData.create_from_stack((nE, 101), [c1, c2, c3], ylims=(1e-8, 1e-4))

Conventions kept from Fermipy so that its recipes carry over: ``LnLFn`` and ``CastroData``
take and return the NEGATIVE log-likelihood (``__call__``, ``fn_mle``, ``nll_null``); the
``x`` of a profile is the normalisation times the reference value of ``norm_type`` (``norm``:
the bare normalisation; ``flux``, ``eflux``, ``npred``, ``dnde``, ``e2dnde``); ``alpha`` is
one minus the confidence level; spectral parameters are Fermipy's castro ones (PowerLaw
[Prefactor, Index] with a signed index, -2 for E^-2; LogParabola [norm, alpha, beta] with
dN/dE = norm x^(alpha - beta ln x); PLExpCutoff [Prefactor, Index1, Cutoff]), at the pivot
``scale`` (1 GeV).

Where fermixr differs, on purpose:

- profiles are interpolated with a cubic spline (a line beyond the scan, with the end
  slopes), not piecewise-linearly, so the MLE and the limits do not sit on scan points; the
  MLE is the spline's minimum and the limits its exact crossings;
- non-finite scan points are dropped with a :class:`CastroWarning` naming the file, column
  and bin, and a profile with fewer than two finite points is an error; a reference value of
  the chosen ``norm_type`` that is missing, zero or not finite is an error naming the
  column (Fermipy reads a missing ``ref_*`` column as ones);
- a limit the profile never reaches (a flat profile) is ``inf`` with a warning, never a scan
  edge passed off as a limit;
- spectral fits start from the data (the normalisation of the starting shape is fitted
  first), fit positive parameters in log10, start LogParabola and PLExpCutoff from the
  PowerLaw fit in :meth:`CastroData.test_spectra` (so nested models never fit worse), and
  give parameter errors from the Hessian of the summed profile.
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping

import numpy as np

from ..errors import EstimatorError, FileFormatError, FitError, LikelihoodError
from ..io.castro_fits import FitsTable, read_fits_table, table_hdu_names
from ..model.spectral import LogParabola as _LogParabola
from ..model.spectral import PLSuperExpCutoff as _PLSuperExpCutoff
from ..model.spectral import PowerLaw as _PowerLaw

__all__ = [
    "CastroWarning", "NORM_TYPES", "SPEC_TYPES", "PAR_NAMES",
    "onesided_cl_to_dlnl", "twosided_cl_to_dlnl",
    "Interpolator", "LnLFn", "ReferenceSpec", "SpecData", "SEDFunctor",
    "CastroData_Base", "CastroData", "FitSpectrumResult",
    "spectrum_loader", "read_castro",
]

NORM_TYPES = ("norm", "flux", "eflux", "npred", "dnde", "e2dnde")
SPEC_TYPES = ("PowerLaw", "LogParabola", "PLExpCutoff")
PAR_NAMES = {"PowerLaw": ("Prefactor", "Index"),
             "LogParabola": ("norm", "alpha", "beta"),
             "PLExpCutoff": ("Prefactor", "Index1", "Cutoff")}
# Fermipy's starting values
_INIT_PARS = {"PowerLaw": (5e-13, -2.0), "LogParabola": (5e-13, -2.0, 0.0),
              "PLExpCutoff": (5e-13, -1.0, 1e4)}
_POSITIVE = {"PowerLaw": (True, False), "LogParabola": (True, False, False),
             "PLExpCutoff": (True, False, True)}
_BAD = 1e30            # objective value of a parameter vector whose spectrum is not finite


class CastroWarning(UserWarning):
    """A likelihood profile had to be cleaned or a quantity could not be bounded."""


# =======================================================================================
# Confidence levels
# =======================================================================================
def _check_cl(cl) -> float:
    cl = float(cl)
    if not 0.0 < cl < 1.0:
        raise EstimatorError(f"castro: confidence level {cl!r} must lie strictly between 0 "
                             f"and 1 (alpha = 1 - confidence level: 0.05 for 95%)")
    return cl


def onesided_cl_to_dlnl(cl) -> float:
    """ΔlnL of a one-sided limit at confidence ``cl``: ½ z², z the ``cl`` quantile of the
    normal distribution (1.353 at 95%, 2.706 at 99%... 0.5 at 84.1%)."""
    from scipy.special import ndtri

    cl = _check_cl(cl)
    z = ndtri(cl)
    return 0.5 * float(z) ** 2 if z > 0 else 0.0


def twosided_cl_to_dlnl(cl) -> float:
    """ΔlnL of a two-sided interval at confidence ``cl``: ½ z², z the (1+cl)/2 quantile of
    the normal distribution (0.5 at 68.27%, 1.921 at 95%)."""
    from scipy.special import ndtri

    cl = _check_cl(cl)
    return 0.5 * float(ndtri(0.5 * (1.0 + cl))) ** 2


# =======================================================================================
# One profile
# =======================================================================================
class Interpolator:
    """A tabulated function: a cubic spline through the points (not-a-knot; a line for two
    points, a parabola for three) continued by straight lines with the end slopes."""

    def __init__(self, x, y):
        from scipy.interpolate import CubicSpline

        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size < 2:
            raise LikelihoodError(f"Interpolator needs two 1-d arrays of the same length "
                                  f">= 2; got shapes {x.shape} and {y.shape}")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise LikelihoodError("Interpolator needs finite values")
        if not np.all(np.diff(x) > 0):
            raise LikelihoodError("Interpolator needs strictly increasing x values")
        self._x = x
        self._y = y
        self._sp = CubicSpline(x, y, bc_type="not-a-knot", extrapolate=True)
        self._d1 = self._sp.derivative(1)
        self._slope_lo = float(self._d1(x[0]))
        self._slope_hi = float(self._d1(x[-1]))

    @property
    def x(self) -> np.ndarray:
        return self._x

    @property
    def y(self) -> np.ndarray:
        return self._y

    @property
    def xmin(self) -> float:
        return float(self._x[0])

    @property
    def xmax(self) -> float:
        return float(self._x[-1])

    @property
    def spline(self):
        """The underlying :class:`scipy.interpolate.CubicSpline` (inside the scan)."""
        return self._sp

    @property
    def end_slopes(self) -> tuple[float, float]:
        return self._slope_lo, self._slope_hi

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64)
        out = np.asarray(self._sp(x), dtype=np.float64)
        lo = x < self._x[0]
        hi = x > self._x[-1]
        if lo.any() or hi.any():
            out = np.where(lo, self._y[0] + self._slope_lo * (x - self._x[0]), out)
            out = np.where(hi, self._y[-1] + self._slope_hi * (x - self._x[-1]), out)
        return out

    def derivative(self, x, der: int = 1):
        x = np.asarray(x, dtype=np.float64)
        out = np.asarray(self._sp(x, der), dtype=np.float64)
        lo = x < self._x[0]
        hi = x > self._x[-1]
        if lo.any() or hi.any():
            if der == 1:
                out = np.where(lo, self._slope_lo, np.where(hi, self._slope_hi, out))
            else:
                out = np.where(lo | hi, 0.0, out)
        return out


def _clean_profile(x, y, where: str):
    """Sorted, finite, de-duplicated (x, y) of one scan; a warning names dropped points."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise LikelihoodError(f"{where}: the scan has {x.size} normalisation values but "
                              f"{y.size} log-likelihood values")
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.all():
        warnings.warn(f"{where}: dropped {int((~ok).sum())} of {x.size} scan points that "
                      f"are not finite", CastroWarning, stacklevel=4)
        x, y = x[ok], y[ok]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    ux, inv = np.unique(x, return_inverse=True)
    if ux.size != x.size:
        uy = np.full(ux.size, np.inf)
        np.minimum.at(uy, inv, y)
        x, y = ux, uy
    if x.size < 2:
        raise LikelihoodError(f"{where}: the likelihood profile has {x.size} distinct finite "
                              f"scan point(s); at least 2 are needed")
    return x, y


class LnLFn:
    """One likelihood profile: ``y`` is the NEGATIVE log-likelihood at the values ``x`` of
    the free parameter (any offset).  ``where`` names the profile in messages."""

    def __init__(self, x, y, norm_type=0, where: str = "likelihood profile"):
        x, y = _clean_profile(x, y, where)
        self._interp = Interpolator(x, y)
        self._norm_type = norm_type
        self._where = where
        self._mle = None

    @property
    def interp(self) -> Interpolator:
        return self._interp

    @property
    def norm_type(self):
        return self._norm_type

    def __call__(self, x):
        return self._interp(x)

    def _compute_mle(self) -> float:
        it = self._interp
        roots = it.spline.derivative(1).roots(extrapolate=False)
        cand = np.concatenate([it.x, np.asarray(roots, dtype=float).ravel()])
        cand = cand[np.isfinite(cand) & (cand >= it.xmin) & (cand <= it.xmax)]
        vals = it(cand)
        best = float(cand[int(np.argmin(vals))])
        if best == it.xmax and it.end_slopes[1] < 0:
            warnings.warn(f"{self._where}: the scan ends at x = {it.xmax:.6g} before the "
                          f"profile reaches its minimum; the MLE is that last point",
                          CastroWarning, stacklevel=3)
        return best

    def mle(self) -> float:
        """The maximum-likelihood value of x (within the scan)."""
        if self._mle is None:
            self._mle = self._compute_mle()
        return self._mle

    def fn_mle(self) -> float:
        """The negative log-likelihood at the MLE."""
        return float(self._interp(self.mle()))

    def TS(self) -> float:
        """2 (nll(0) - nll(MLE)), at least 0."""
        return max(0.0, 2.0 * (float(self._interp(0.0)) - self.fn_mle()))

    def getDeltaLogLike(self, dlnl, upper: bool = True) -> float:
        """The x above (``upper``) or below the MLE where the log-likelihood has fallen by
        ``dlnl`` from its maximum."""
        it = self._interp
        m = self.mle()
        target = self.fn_mle() + float(dlnl)
        sols = np.asarray(it.spline.solve(target, extrapolate=False), dtype=float).ravel()
        sols = sols[np.isfinite(sols)]
        if upper:
            above = sols[sols > m]
            if above.size:
                return float(above.min())
            y_end = float(it(it.xmax))
            slope = it.end_slopes[1]
            if y_end >= target:
                return it.xmax
            if slope > 0:
                return it.xmax + (target - y_end) / slope
            warnings.warn(f"{self._where}: the profile never falls by {float(dlnl):.4g} "
                          f"above its MLE (flat or still rising at the end of the scan, "
                          f"x = {it.xmax:.6g}); the upper limit is inf", CastroWarning,
                          stacklevel=3)
            return math.inf
        below = sols[sols < m]
        if below.size:
            return float(below.max())
        if it.xmin <= 0.0:
            return it.xmin
        y0 = float(it(it.xmin))
        slope = it.end_slopes[0]
        if y0 >= target:
            return it.xmin
        if slope < 0:
            return max(0.0, it.xmin - (target - y0) / (-slope))
        return 0.0

    def getLimit(self, alpha, upper: bool = True) -> float:
        """One-sided limit at confidence 1 - alpha (ΔlnL 1.353 for alpha = 0.05)."""
        return self.getDeltaLogLike(onesided_cl_to_dlnl(1.0 - float(alpha)), upper=upper)

    def getInterval(self, alpha) -> tuple[float, float]:
        """Two-sided interval at confidence 1 - alpha (ΔlnL 0.5 for alpha = 0.3173)."""
        dlnl = twosided_cl_to_dlnl(1.0 - float(alpha))
        return (self.getDeltaLogLike(dlnl, upper=False),
                self.getDeltaLogLike(dlnl, upper=True))


class _Profiles:
    """All the bins' splines in padded arrays, evaluated in one vectorised pass (the hot
    path of spectral fits)."""

    def __init__(self, fns: list[LnLFn]):
        n = len(fns)
        m = max(f.interp.x.size for f in fns)
        self.knots = np.full((n, m), np.inf)
        self.coef = np.zeros((4, n, m - 1))
        self.nseg = np.zeros(n, dtype=np.int64)
        self.x0 = np.empty(n)
        self.x1 = np.empty(n)
        self.y0 = np.empty(n)
        self.y1 = np.empty(n)
        self.s0 = np.empty(n)
        self.s1 = np.empty(n)
        for i, f in enumerate(fns):
            it = f.interp
            k = it.x.size
            self.knots[i, :k] = it.x
            self.coef[:, i, :k - 1] = it.spline.c
            self.nseg[i] = k - 1
            self.x0[i], self.x1[i] = it.xmin, it.xmax
            self.y0[i], self.y1[i] = it.y[0], it.y[-1]
            self.s0[i], self.s1[i] = it.end_slopes
        self.n = n

    def value(self, x, der: int = 0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[:1] != (self.n,):
            raise LikelihoodError(f"castro: expected one value per energy bin ({self.n}) "
                                  f"along the first axis; got an array of shape {x.shape}")
        shape = x.shape
        xf = x.reshape(self.n, -1)
        idx = (xf[:, :, None] >= self.knots[:, None, :]).sum(-1) - 1
        idx = np.clip(idx, 0, (self.nseg - 1)[:, None])
        rows = np.arange(self.n)[:, None]
        dx = xf - self.knots[rows, idx]
        c0, c1, c2, c3 = (self.coef[j][rows, idx] for j in range(4))
        if der == 0:
            out = ((c0 * dx + c1) * dx + c2) * dx + c3
        elif der == 1:
            out = (3.0 * c0 * dx + 2.0 * c1) * dx + c2
        elif der == 2:
            out = 6.0 * c0 * dx + 2.0 * c1
        else:
            out = 6.0 * c0 if der == 3 else np.zeros_like(dx)
        lo = xf < self.x0[:, None]
        hi = xf > self.x1[:, None]
        if lo.any() or hi.any():
            if der == 0:
                out = np.where(lo, self.y0[:, None] + self.s0[:, None] * (xf - self.x0[:, None]),
                               out)
                out = np.where(hi, self.y1[:, None] + self.s1[:, None] * (xf - self.x1[:, None]),
                               out)
            elif der == 1:
                out = np.where(lo, self.s0[:, None], np.where(hi, self.s1[:, None], out))
            else:
                out = np.where(lo | hi, 0.0, out)
        return out.reshape(shape)


# =======================================================================================
# Reference spectrum
# =======================================================================================
_E_SCALE = {"": 1.0, "mev": 1.0, "kev": 1e-3, "gev": 1e3, "tev": 1e6, "ev": 1e-6}


def _energy_col(cols: Mapping, units: Mapping, name: str, where: str) -> np.ndarray:
    vals = np.asarray(cols[name], dtype=np.float64)
    unit = str(units.get(name, "") or "").strip().lower()
    if unit not in _E_SCALE:
        raise FileFormatError(f"{where}: column {name!r} has unit {unit!r}; expected an "
                              f"energy unit (MeV, keV, GeV, TeV, eV)")
    return vals * _E_SCALE[unit]


class ReferenceSpec:
    """Energy bins and the reference spectrum's value in each (the quantities a castro's
    normalisations multiply): ``ref_dnde`` (ph cm-2 s-1 MeV-1 at ``eref``), ``ref_flux``
    (ph cm-2 s-1), ``ref_eflux`` (MeV cm-2 s-1), ``ref_npred`` (counts), ``ref_e2dnde``
    (MeV cm-2 s-1, ``ref_dnde`` eref² when not given).  Energies in MeV; ``eref`` defaults
    to the bins' geometric centres.  A reference not given is None."""

    def __init__(self, emin, emax, ref_dnde=None, ref_flux=None, ref_eflux=None,
                 ref_npred=None, eref=None, ref_dnde_e_min=None, ref_dnde_e_max=None,
                 ref_e2dnde=None, where: str = "reference spectrum"):
        emin = np.atleast_1d(np.asarray(emin, dtype=np.float64))
        emax = np.atleast_1d(np.asarray(emax, dtype=np.float64))
        if emin.ndim != 1 or emin.shape != emax.shape or emin.size == 0:
            raise FileFormatError(f"{where}: e_min and e_max must be two 1-d arrays of the "
                                  f"same length; got shapes {emin.shape} and {emax.shape}")
        if not (np.all(np.isfinite(emin)) and np.all(np.isfinite(emax))
                and np.all(emin > 0) and np.all(emax > emin)):
            raise FileFormatError(f"{where}: energy bins must satisfy 0 < e_min < e_max; got "
                                  f"e_min {emin.tolist()}, e_max {emax.tolist()}")
        self._where = where
        self._emin = emin
        self._emax = emax
        self._eref = np.sqrt(emin * emax) if eref is None else self._arr(eref, "e_ref")
        self._refs = {
            "dnde": self._opt(ref_dnde, "ref_dnde"),
            "flux": self._opt(ref_flux, "ref_flux"),
            "eflux": self._opt(ref_eflux, "ref_eflux"),
            "npred": self._opt(ref_npred, "ref_npred"),
            "dnde_e_min": self._opt(ref_dnde_e_min, "ref_dnde_e_min"),
            "dnde_e_max": self._opt(ref_dnde_e_max, "ref_dnde_e_max"),
        }
        e2 = self._opt(ref_e2dnde, "ref_e2dnde")
        if e2 is None and self._refs["dnde"] is not None:
            e2 = self._refs["dnde"] * self._eref ** 2
        self._refs["e2dnde"] = e2

    def _arr(self, v, name):
        a = np.atleast_1d(np.asarray(v, dtype=np.float64))
        if a.shape != self._emin.shape:
            raise FileFormatError(f"{self._where}: column {name!r} has shape {a.shape}; "
                                  f"expected one value per energy bin ({self._emin.size})")
        return a

    def _opt(self, v, name):
        return None if v is None else self._arr(v, name)

    # Fermipy's attribute names
    @property
    def nE(self) -> int:
        return self._emin.size

    @property
    def emin(self) -> np.ndarray:
        return self._emin

    @property
    def emax(self) -> np.ndarray:
        return self._emax

    @property
    def ebins(self) -> np.ndarray:
        return np.append(self._emin, self._emax[-1])

    @property
    def log_ebins(self) -> np.ndarray:
        return np.log10(self.ebins)

    @property
    def bin_widths(self) -> np.ndarray:
        return self._emax - self._emin

    @property
    def eref(self) -> np.ndarray:
        return self._eref

    @property
    def ref_dnde(self):
        return self._refs["dnde"]

    @property
    def ref_flux(self):
        return self._refs["flux"]

    @property
    def ref_eflux(self):
        return self._refs["eflux"]

    @property
    def ref_npred(self):
        return self._refs["npred"]

    @property
    def ref_dnde_e_min(self):
        return self._refs["dnde_e_min"]

    @property
    def ref_dnde_e_max(self):
        return self._refs["dnde_e_max"]

    @property
    def ref_e2dnde(self):
        return self._refs["e2dnde"]

    def ref_values(self, norm_type: str) -> np.ndarray:
        """The reference value per bin that a normalisation multiplies to give
        ``norm_type`` (ones for 'norm'); an error names a missing or unusable column."""
        nt = _check_norm_type(norm_type)
        if nt == "norm":
            return np.ones(self.nE)
        v = self._refs[nt]
        if v is None:
            extra = " (or 'ref_dnde')" if nt == "e2dnde" else ""
            raise FileFormatError(f"{self._where}: no column 'ref_{nt}'{extra}, needed for "
                                  f"norm_type {nt!r}; choose another norm_type or 'norm'")
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FileFormatError(f"{self._where}: column 'ref_{nt}' is {float(v[i])!r} in energy "
                                  f"bin {i}; expected a finite positive reference value")
        return v

    @staticmethod
    def create_from_table(tab_e, where: str | None = None) -> "ReferenceSpec":
        """From a table (a FITS table read by :mod:`fermixr.io.castro_fits`, an astropy
        Table or a mapping of columns) with ``e_min``, ``e_max`` and ``ref_*`` columns."""
        cols, units, name = _columns(tab_e)
        where = where or name
        for c in ("e_min", "e_max"):
            if c not in cols:
                raise FileFormatError(f"{where}: no column {c!r} (expected the energy bins "
                                      f"e_min, e_max and the ref_* columns; found "
                                      f"{', '.join(sorted(cols)) or 'none'})")
        emin = _energy_col(cols, units, "e_min", where)
        emax = _energy_col(cols, units, "e_max", where)
        eref = _energy_col(cols, units, "e_ref", where) if "e_ref" in cols else None
        get = {k: (np.asarray(cols[k], dtype=np.float64) if k in cols else None)
               for k in ("ref_dnde", "ref_flux", "ref_eflux", "ref_npred", "ref_dnde_e_min",
                         "ref_dnde_e_max", "ref_e2dnde")}
        return ReferenceSpec(emin, emax, eref=eref, where=where, **get)

    def build_ebound_table(self):
        """An astropy Table in Fermipy's EBOUNDS layout (E_MIN, E_MAX, E_REF in MeV and the
        reference columns present)."""
        from astropy.table import Column, Table

        cols = [Column(self._emin, name="E_MIN", unit="MeV"),
                Column(self._emax, name="E_MAX", unit="MeV"),
                Column(self._eref, name="E_REF", unit="MeV")]
        units = {"dnde": "ph / (MeV cm2 s)", "flux": "ph / (cm2 s)",
                 "eflux": "MeV / (cm2 s)", "npred": "ph", "e2dnde": "MeV / (cm2 s)",
                 "dnde_e_min": "ph / (MeV cm2 s)", "dnde_e_max": "ph / (MeV cm2 s)"}
        for k, v in self._refs.items():
            if v is not None:
                cols.append(Column(v, name=f"REF_{k.upper()}", unit=units[k]))
        return Table(cols)


class SpecData(ReferenceSpec):
    """A reference spectrum plus the fitted normalisations of a SED (``norm``,
    ``norm_err``) and their flux families."""

    def __init__(self, ref_spec: ReferenceSpec, norm, norm_err):
        super().__init__(ref_spec.emin, ref_spec.emax, ref_spec.ref_dnde, ref_spec.ref_flux,
                         ref_spec.ref_eflux, ref_spec.ref_npred, ref_spec.eref,
                         ref_spec.ref_dnde_e_min, ref_spec.ref_dnde_e_max,
                         ref_spec.ref_e2dnde, where=ref_spec._where)
        self._norm = self._arr(norm, "norm")
        self._norm_err = self._arr(norm_err, "norm_err")

    @property
    def norm(self):
        return self._norm

    @property
    def norm_err(self):
        return self._norm_err

    def _times(self, key):
        r = self._refs[key]
        return None if r is None else self._norm * r

    @property
    def dnde(self):
        return self._times("dnde")

    @property
    def dnde_err(self):
        r = self._refs["dnde"]
        return None if r is None else self._norm_err * r

    @property
    def flux(self):
        return self._times("flux")

    @property
    def eflux(self):
        return self._times("eflux")

    @property
    def e2dnde(self):
        return self._times("e2dnde")


def _check_norm_type(norm_type) -> str:
    nt = str(norm_type).lower().replace("dfde", "dnde")
    if nt == "edfde":
        nt = "e2dnde"
    if nt not in NORM_TYPES:
        raise EstimatorError(f"castro: unknown norm_type {norm_type!r}; expected one of "
                             f"{', '.join(NORM_TYPES)}")
    return nt


class _TableView(dict):
    """Columns plus their units, read by :func:`_columns` as a table."""

    def __init__(self, cols, units):
        super().__init__(cols)
        self.units = units


def _columns(tab) -> tuple[dict, dict, str]:
    """(lower-case columns, units, a name for messages) of a table-like object."""
    if isinstance(tab, _TableView):
        return dict(tab), dict(tab.units), "table"
    if isinstance(tab, FitsTable):
        return dict(tab.columns), dict(tab.units), f"{tab.path}[{tab.hdu}]"
    names = getattr(tab, "colnames", None)
    if names is not None:            # astropy Table or Row
        cols, units = {}, {}
        for n in names:
            key = n.lower().replace("dfde", "dnde")
            cols[key] = np.asarray(tab[n])
            col = tab.columns[n] if hasattr(tab, "columns") else None
            unit = getattr(col, "unit", None)
            units[key] = "" if unit is None else str(unit)
        return cols, units, "table"
    if isinstance(tab, Mapping):
        cols = {str(k).lower().replace("dfde", "dnde"): np.asarray(v) for k, v in tab.items()}
        return cols, {}, "table"
    raise EstimatorError(f"castro: expected a table (astropy Table, FITS table or mapping "
                         f"of columns); got {type(tab).__name__}")


# =======================================================================================
# Spectral functions evaluated in the bins
# =======================================================================================
class _SpectralFunction:
    """A castro spectral type with Fermipy's castro parameters, computed by the fermixr
    spectral models (analytic integrals)."""

    def __init__(self, spec_type: str):
        self.spec_type = spec_type
        self.par_names = PAR_NAMES[spec_type]
        self.default_params = np.array(_INIT_PARS[spec_type], dtype=float)
        self.positive = _POSITIVE[spec_type]
        self._model = {"PowerLaw": _PowerLaw, "LogParabola": _LogParabola,
                       "PLExpCutoff": _PLSuperExpCutoff}[spec_type]()

    def model_params(self, params, scale: float) -> np.ndarray:
        """The fermixr model's physical parameter vector."""
        p = np.asarray(params, dtype=float)
        if p.shape != (len(self.par_names),):
            raise EstimatorError(f"castro {self.spec_type}: expected {len(self.par_names)} "
                                 f"parameters ({', '.join(self.par_names)}); got "
                                 f"{np.atleast_1d(p).tolist()!r}")
        if self.spec_type == "PowerLaw":
            return np.array([p[0], p[1], scale])
        if self.spec_type == "LogParabola":
            return np.array([p[0], -p[1], p[2], scale])
        return np.array([p[0], p[1], scale, p[2], 1.0])

    def dnde(self, energy, params, scale: float = 1e3):
        return self._model.evaluate(energy, self.model_params(params, scale))

    def flux(self, emin, emax, params, scale: float = 1e3):
        return self._model.flux(emin, emax, self.model_params(params, scale))

    def eflux(self, emin, emax, params, scale: float = 1e3):
        return self._model.eflux(emin, emax, self.model_params(params, scale))

    def __repr__(self):
        return f"spectrum_loader({self.spec_type!r})"


def spectrum_loader(spec_type: str) -> _SpectralFunction:
    """The spectral function of a castro spectral type ('PowerLaw', 'LogParabola',
    'PLExpCutoff'): ``dnde(E, params)``, ``flux``/``eflux(emin, emax, params)``,
    ``par_names``, ``default_params`` (Fermipy's starting values)."""
    if spec_type not in PAR_NAMES:
        raise EstimatorError(f"castro: unknown spectral type {spec_type!r}; expected one of "
                             f"{', '.join(SPEC_TYPES)}")
    return _SpectralFunction(spec_type)


class SEDFunctor:
    """Maps a parameter vector of a spectral type to its values in the energy bins, in the
    units of ``norm_type`` (what a castro's x is): integrals over the bins for flux and
    eflux, values at ``eref`` for dnde and e2dnde, and the flux over the reference flux
    (times the reference npred) for norm (npred)."""

    def __init__(self, spec_type: str, norm_type: str, ref_spec: ReferenceSpec,
                 params=None, scale: float = 1e3):
        self._fn = spectrum_loader(spec_type)
        self.spec_type = spec_type
        self.norm_type = _check_norm_type(norm_type)
        self.ref_spec = ref_spec
        self.scale = float(scale)
        if not self.scale > 0:
            raise EstimatorError(f"castro: pivot energy scale {scale!r} must be > 0 MeV")
        self.params = np.array(self._fn.default_params if params is None else params,
                               dtype=float)
        self._fn.model_params(self.params, self.scale)          # checks the length
        if self.norm_type in ("norm", "npred"):
            self._ref_flux = ref_spec.ref_values("flux")
            self._ref_npred = ref_spec.ref_values("npred") if self.norm_type == "npred" \
                else None

    @property
    def par_names(self):
        return self._fn.par_names

    @property
    def positive(self):
        return self._fn.positive

    @property
    def emin(self):
        return self.ref_spec.emin

    @property
    def emax(self):
        return self.ref_spec.emax

    @property
    def spectral_function(self) -> _SpectralFunction:
        return self._fn

    def __call__(self, params=None) -> np.ndarray:
        p = self.params if params is None else params
        rs = self.ref_spec
        nt = self.norm_type
        if nt == "flux":
            return np.asarray(self._fn.flux(rs.emin, rs.emax, p, self.scale), dtype=float)
        if nt == "eflux":
            return np.asarray(self._fn.eflux(rs.emin, rs.emax, p, self.scale), dtype=float)
        if nt == "dnde":
            return self._fn.dnde(rs.eref, p, self.scale)
        if nt == "e2dnde":
            return self._fn.dnde(rs.eref, p, self.scale) * rs.eref ** 2
        ratio = np.asarray(self._fn.flux(rs.emin, rs.emax, p, self.scale)) / self._ref_flux
        return ratio if nt == "norm" else ratio * self._ref_npred

    def __repr__(self):
        return (f"SEDFunctor({self.spec_type!r}, norm_type={self.norm_type!r}, "
                f"params={self.params.tolist()}, scale={self.scale:g})")


# =======================================================================================
# Fit results
# =======================================================================================
class FitSpectrumResult(tuple):
    """The result of :meth:`CastroData_Base.fit_spectrum`: unpacks as Fermipy's
    ``(params, spec_vals, ts_spec)`` and reads as Fermipy's later dict (``r['params']``,
    ``'spec_vals'``, ``'spec_npred'``, ``'ts_spec'``, ``'chi2_vals'``, ``'chi2_spec'``,
    ``'pval_spec'``) plus ``'errors'``, ``'covariance'``, ``'nll'``, ``'free'``."""

    def __new__(cls, info: dict):
        self = super().__new__(cls, (info["params"], info["spec_vals"], info["ts_spec"]))
        self._info = info
        return self

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._info[key]
        return super().__getitem__(key)

    def __getattr__(self, name):
        try:
            return self.__dict__["_info"][name]
        except KeyError:
            raise AttributeError(name) from None

    def keys(self):
        return self._info.keys()

    def as_dict(self) -> dict:
        return dict(self._info)


# =======================================================================================
# Castro data
# =======================================================================================
class CastroData_Base:
    """Likelihood profiles of N bins: ``norm_vals`` and ``nll_vals`` (N x M arrays, NaN
    allowed for absent points) of the free parameter and the NEGATIVE log-likelihood."""

    def __init__(self, norm_vals, nll_vals, norm_type, where: str = "castro"):
        norm_vals = np.asarray(norm_vals, dtype=np.float64)
        nll_vals = np.asarray(nll_vals, dtype=np.float64)
        if norm_vals.ndim == 1:
            norm_vals = norm_vals[None, :]
            nll_vals = nll_vals.reshape(1, -1)
        if norm_vals.ndim != 2 or norm_vals.shape != nll_vals.shape:
            raise LikelihoodError(f"{where}: normalisation and log-likelihood scans must be "
                                  f"two arrays of shape (bins, scan points); got "
                                  f"{norm_vals.shape} and {nll_vals.shape}")
        if norm_vals.shape[0] == 0:
            raise LikelihoodError(f"{where}: no energy bins")
        self._where = where
        self._norm_vals = norm_vals
        self._nll_vals = nll_vals
        self._norm_type = norm_type
        self._loglikes = [self._buildLnLFn(nv, lv, f"{where}: energy bin {i}")
                          for i, (nv, lv) in enumerate(zip(norm_vals, nll_vals))]
        self._profiles = _Profiles(self._loglikes)
        self._nll_null = float(sum(float(f.interp(0.0)) for f in self._loglikes))
        self._xscale = np.array([max(abs(f.interp.xmax), abs(f.interp.xmin), 1e-300)
                                 for f in self._loglikes])

    def _buildLnLFn(self, normv, nllv, where):
        return LnLFn(normv, nllv, self._norm_type, where=where)

    @property
    def nx(self) -> int:
        """Number of profiles (energy bins)."""
        return len(self._loglikes)

    @property
    def ny(self) -> int:
        """Number of scan points per profile."""
        return self._norm_vals.shape[1]

    @property
    def norm_type(self):
        return self._norm_type

    @property
    def norm_vals(self) -> np.ndarray:
        return self._norm_vals

    @property
    def nll_vals(self) -> np.ndarray:
        return self._nll_vals

    @property
    def nll_null(self) -> float:
        """Summed negative log-likelihood at zero normalisation in every bin."""
        return self._nll_null

    def __getitem__(self, i) -> LnLFn:
        return self._loglikes[i]

    def __len__(self) -> int:
        return self.nx

    def __call__(self, x):
        """Negative log-likelihood summed over the bins for x of shape (N,) (a float) or
        (N, ...) (an array).  Negative x are unphysical: they cost 1000 plus a slope
        away from zero, as Fermipy's fits expect."""
        x = np.asarray(x, dtype=np.float64)
        neg = x < 0
        if neg.any():
            xc = np.where(neg, 0.0, x)
            pen = np.where(neg, -x / self._xscale.reshape((-1,) + (1,) * (x.ndim - 1)),
                           0.0).sum(0)
            vals = self._profiles.value(xc).sum(0) + np.where(neg.any(0), 1000.0, 0.0) \
                + 1000.0 * pen
        else:
            vals = self._profiles.value(x).sum(0)
        return float(vals) if x.ndim == 1 else vals

    def derivative(self, x, der: int = 1):
        """d^der/dx^der of the negative log-likelihood, summed over bins."""
        x = np.asarray(x, dtype=np.float64)
        vals = self._profiles.value(x, der=der).sum(0)
        return float(vals) if x.ndim == 1 else vals

    def norm_derivative(self, spec, norm):
        """d/d(norm) of the summed negative log-likelihood at norm x spec."""
        spec = np.asarray(spec, dtype=np.float64)
        norm = np.asarray(norm, dtype=np.float64)
        x = spec.reshape((-1,) + (1,) * norm.ndim) * norm
        d = self._profiles.value(x, der=1) * spec.reshape((-1,) + (1,) * norm.ndim)
        out = d.sum(0)
        return float(out) if norm.ndim == 0 else out

    def mles(self) -> np.ndarray:
        return np.array([f.mle() for f in self._loglikes])

    def fn_mles(self) -> float:
        """Summed negative log-likelihood at each bin's own MLE."""
        return float(sum(f.fn_mle() for f in self._loglikes))

    def ts_vals(self) -> np.ndarray:
        return np.array([f.TS() for f in self._loglikes])

    def chi2_vals(self, x) -> np.ndarray:
        """2 |nll(x_i) - nll(MLE_i)| per bin: the goodness of fit of values x."""
        x = np.asarray(x, dtype=np.float64)
        return np.array([2.0 * abs(float(f.interp(xi)) - f.fn_mle())
                         for f, xi in zip(self._loglikes, x)])

    def getLimits(self, alpha, upper: bool = True) -> np.ndarray:
        """One-sided limits at confidence 1 - alpha, one per bin."""
        return np.array([f.getLimit(alpha, upper) for f in self._loglikes])

    def getIntervals(self, alpha) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) two-sided intervals at confidence 1 - alpha, one per bin."""
        lims = [f.getInterval(alpha) for f in self._loglikes]
        return np.array([a for a, _ in lims]), np.array([b for _, b in lims])

    # -- fits ---------------------------------------------------------------------------
    def _best_scale(self, spec, lo: float, hi: float) -> float:
        """The a in [lo, hi] minimising nll(a spec): a grid, then a bounded refinement."""
        from scipy.optimize import minimize_scalar

        spec = np.asarray(spec, dtype=np.float64)
        if lo > 0:
            grid = np.geomspace(lo, hi, 121)
        else:
            grid = np.concatenate([[lo], np.linspace(lo, hi, 121)[1:]])
        vals = self(spec[:, None] * grid[None, :])
        k = int(np.argmin(vals))
        a, b = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
        if b <= a:
            return float(grid[k])
        res = minimize_scalar(lambda t: self(spec * t), bounds=(a, b), method="bounded",
                              options={"xatol": 1e-10 * max(abs(b), 1e-300)})
        best = float(res.x) if self(spec * res.x) <= vals[k] else float(grid[k])
        return best

    def fitNormalization(self, specVals, xlims) -> float:
        """The normalisation a (within ``xlims``) maximising the likelihood of a x
        ``specVals``."""
        lo, hi = float(xlims[0]), float(xlims[1])
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise EstimatorError(f"castro fitNormalization: xlims {xlims!r} must be two "
                                 f"finite increasing values")
        return self._best_scale(specVals, lo, hi)

    def fitNorm_v2(self, specVals) -> float:
        """The normalisation of ``specVals`` over a wide range (10^-6 to 10^6 times the
        scale where the spectrum reaches the scans' ends)."""
        spec = np.asarray(specVals, dtype=np.float64)
        ref = self._norm_scale(spec)
        return self._best_scale(spec, ref * 1e-6, ref * 1e6)

    def _norm_scale(self, spec) -> float:
        spec = np.abs(np.asarray(spec, dtype=np.float64))
        ok = spec > 0
        if not ok.any():
            raise FitError(f"{self._where}: the spectral values are all zero; no "
                           f"normalisation can be fitted")
        xmax = np.array([f.interp.xmax for f in self._loglikes])
        return float(np.median(xmax[ok] / spec[ok]))

    def TS_spectrum(self, spec_vals) -> float:
        """2 (nll_null - nll(spec_vals))."""
        return 2.0 * (self._nll_null - self(np.asarray(spec_vals, dtype=np.float64)))

    def fit_spectrum(self, specFunc, initPars=None, freePars=None) -> FitSpectrumResult:
        """Fit the free parameters of a spectral function to the profiles.

        ``specFunc`` is a :class:`SEDFunctor` (from :meth:`CastroData.create_functor`) or a
        spectral type name.  Returns a :class:`FitSpectrumResult`: ``(params, spec_vals,
        ts_spec)`` as Fermipy, with errors and covariance from the Hessian (fixed
        parameters have error 0)."""
        from scipy.optimize import minimize

        if isinstance(specFunc, str):
            specFunc = self.create_functor(specFunc, initPars)
        if not isinstance(specFunc, SEDFunctor):
            raise EstimatorError(f"castro fit_spectrum: expected a SEDFunctor or a spectral "
                                 f"type name; got {type(specFunc).__name__}")
        p0 = np.array(specFunc.params if initPars is None else initPars, dtype=float)
        npar = len(specFunc.par_names)
        if p0.shape != (npar,):
            raise EstimatorError(f"castro fit_spectrum: {specFunc.spec_type} takes {npar} "
                                 f"parameters ({', '.join(specFunc.par_names)}); got "
                                 f"{p0.tolist()!r}")
        free = np.ones(npar, dtype=bool) if freePars is None else \
            np.asarray(freePars, dtype=bool)
        if free.shape != (npar,):
            raise EstimatorError(f"castro fit_spectrum: freePars must have {npar} entries; "
                                 f"got {np.asarray(freePars).tolist()!r}")
        pos = np.asarray(specFunc.positive, dtype=bool)
        bad = pos & ~(p0 > 0)
        if bad.any():
            names = [specFunc.par_names[i] for i in np.flatnonzero(bad)]
            raise FitError(f"castro fit_spectrum: {specFunc.spec_type} parameter(s) "
                           f"{', '.join(names)} must start > 0; got {p0.tolist()!r}")

        def spec_of(p):
            with np.errstate(all="ignore"):
                return specFunc(p)

        if free[0]:                     # start from the data: fit the starting shape's norm
            unit = p0.copy()
            unit[0] = 1.0
            s = spec_of(unit)
            if np.all(np.isfinite(s)) and np.any(s > 0):
                ref = self._norm_scale(s)
                p0[0] = self._best_scale(s, ref * 1e-8, ref * 1e4)
                if not p0[0] > 0:
                    p0[0] = ref * 1e-8

        def to_theta(p):
            t = p.copy()
            t[pos] = np.log10(p[pos])
            return t[free]

        def to_p(theta):
            t = p0.copy()
            if pos.any():
                t[pos] = np.log10(p0[pos])
            t[free] = theta
            out = t.copy()
            out[pos] = 10.0 ** t[pos]
            return out

        def objective(theta):
            s = spec_of(to_p(theta))
            if not np.all(np.isfinite(s)):
                return _BAD
            v = self(s)
            return v if np.isfinite(v) else _BAD

        theta = to_theta(p0)
        if theta.size:
            opts = {"xatol": 1e-9, "fatol": 1e-10, "maxiter": 20000, "maxfev": 20000,
                    "adaptive": theta.size > 2}
            res = minimize(objective, theta, method="Nelder-Mead", options=opts)
            for _ in range(2):          # restarts: Nelder-Mead can stall on a ridge
                res2 = minimize(objective, res.x, method="Nelder-Mead", options=opts)
                improved = res2.fun < res.fun - 1e-9
                res = res2 if res2.fun <= res.fun else res
                if not improved:
                    break
            theta = np.asarray(res.x, dtype=float)
        best = to_p(theta)
        spec_vals = spec_of(best)
        nll = objective(theta) if theta.size else self(spec_vals)
        if not (np.all(np.isfinite(spec_vals)) and nll < _BAD):
            raise FitError(f"{self._where}: the {specFunc.spec_type} fit ended on a spectrum "
                           f"that is not finite (parameters {best.tolist()!r})")
        cov, errors = self._covariance(objective, theta, best, pos, free, specFunc)
        ts_spec = self.TS_spectrum(spec_vals)
        chi2_vals = self.chi2_vals(spec_vals)
        chi2_spec = float(chi2_vals.sum())
        from scipy.special import chdtrc

        pval = float(chdtrc(len(spec_vals), chi2_spec))
        rs = getattr(self, "refSpec", None)
        spec_npred = np.zeros(len(spec_vals))
        if rs is not None and rs.ref_npred is not None:
            nt = specFunc.norm_type
            ref = rs.ref_values(nt) if nt != "norm" else np.ones(rs.nE)
            spec_npred = spec_vals / ref * rs.ref_npred
        specFunc.params = best.copy()
        return FitSpectrumResult({
            "params": best, "spec_vals": spec_vals, "ts_spec": float(ts_spec),
            "spec_npred": spec_npred, "chi2_vals": chi2_vals, "chi2_spec": chi2_spec,
            "pval_spec": pval, "errors": errors, "covariance": cov, "nll": float(nll),
            "free": free.copy(), "par_names": tuple(specFunc.par_names),
            "spec_type": specFunc.spec_type, "scale": specFunc.scale})

    def _covariance(self, objective, theta, best, pos, free, specFunc):
        """Covariance of the physical parameters from the finite-difference Hessian of the
        negative log-likelihood in the fit's parameters (log10 for positive ones)."""
        npar = best.size
        cov = np.zeros((npar, npar))
        errors = np.zeros(npar)
        k = theta.size
        if k == 0:
            return cov, errors
        h = np.full(k, 1e-3)
        f0 = objective(theta)
        H = np.empty((k, k))
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = h[i]
            H[i, i] = (objective(theta + ei) - 2 * f0 + objective(theta - ei)) / h[i] ** 2
            for j in range(i + 1, k):
                ej = np.zeros(k)
                ej[j] = h[j]
                H[i, j] = H[j, i] = (objective(theta + ei + ej) - objective(theta + ei - ej)
                                     - objective(theta - ei + ej)
                                     + objective(theta - ei - ej)) / (4 * h[i] * h[j])
        try:
            ok = np.all(np.isfinite(H)) and np.all(np.linalg.eigvalsh(H) > 0)
            ct = np.linalg.inv(H) if ok else None
        except np.linalg.LinAlgError:
            ct = None
        if ct is None:
            warnings.warn(f"{self._where}: the {specFunc.spec_type} fit's Hessian is not "
                          f"positive definite at {best.tolist()!r} (a parameter at a "
                          f"boundary or unconstrained); its errors are NaN",
                          CastroWarning, stacklevel=3)
            cov[np.ix_(free, free)] = np.nan
            errors[free] = np.nan
            return cov, errors
        jac = np.where(pos, best * math.log(10.0), 1.0)[free]
        cf = ct * jac[:, None] * jac[None, :]
        cov[np.ix_(free, free)] = cf
        errors[free] = np.sqrt(np.diag(cf))
        return cov, errors

    @staticmethod
    def stack_nll(shape, components, ylims, weights=None):
        """Summed (weighted) negative log-likelihoods of ``components`` on a common grid:
        per bin, x = 0 then ``shape[1] - 1`` log-spaced values over ``ylims``; each bin's
        minimum is subtracted.  Returns (norm_vals, nll_vals)."""
        comps = list(components)
        if not comps:
            raise EstimatorError("castro create_from_stack: no components to stack")
        try:
            n_bins, n_vals = (int(v) for v in shape)
        except (TypeError, ValueError):
            raise EstimatorError(f"castro create_from_stack: shape {shape!r} must be "
                                 f"(energy bins, scan points)") from None
        nx = {c.nx for c in comps}
        if nx != {n_bins}:
            raise EstimatorError(f"castro create_from_stack: shape {shape!r} asks for "
                                 f"{n_bins} bins; the components have "
                                 f"{sorted(nx)} bins")
        nts = {str(c.norm_type) for c in comps}
        if len(nts) != 1:
            raise EstimatorError(f"castro create_from_stack: components have different "
                                 f"norm_types {sorted(nts)}; convert them first "
                                 f"(to_norm_type)")
        if n_vals < 3:
            raise EstimatorError(f"castro create_from_stack: shape {shape!r} needs at least "
                                 f"3 scan points")
        lo, hi = (float(v) for v in ylims)
        if not (0 < lo < hi and np.isfinite(hi)):
            raise EstimatorError(f"castro create_from_stack: ylims {ylims!r} must be two "
                                 f"increasing positive values (the scan range, in the units "
                                 f"of norm_type {nts.pop()!r})")
        w = np.ones(len(comps)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(comps),) or not np.all(np.isfinite(w)):
            raise EstimatorError(f"castro create_from_stack: weights must be {len(comps)} "
                                 f"finite values; got {np.asarray(weights).tolist()!r}")
        norm_vals = np.zeros((n_bins, n_vals))
        norm_vals[:, 1:] = np.geomspace(lo, hi, n_vals - 1)[None, :]
        nll_vals = np.zeros((n_bins, n_vals))
        for c, wk in zip(comps, w):
            nll_vals += wk * c._profiles.value(norm_vals)
        for i in range(n_bins):
            nll_vals[i] -= LnLFn(norm_vals[i], nll_vals[i]).fn_mle()
        return norm_vals, nll_vals


class CastroData(CastroData_Base):
    """Likelihood profiles of a SED's energy bins with their reference spectrum
    (``refSpec``); ``norm_type`` says what x is (see the module docstring)."""

    def __init__(self, norm_vals, nll_vals, refSpec: ReferenceSpec, norm_type="eflux",
                 where: str = "castro"):
        nt = _check_norm_type(norm_type)
        if not isinstance(refSpec, ReferenceSpec):
            raise EstimatorError(f"castro: refSpec must be a ReferenceSpec; got "
                                 f"{type(refSpec).__name__}")
        super().__init__(norm_vals, nll_vals, nt, where=where)
        if refSpec.nE != self.nx:
            raise FileFormatError(f"{where}: {self.nx} likelihood profiles but "
                                  f"{refSpec.nE} energy bins")
        self._refSpec = refSpec
        self.header: dict = {}

    @property
    def nE(self) -> int:
        return self.nx

    @property
    def refSpec(self) -> ReferenceSpec:
        return self._refSpec

    @property
    def specData(self) -> ReferenceSpec:
        return self._refSpec

    @property
    def ul_conf(self):
        """The UL_CONF card of the SED file, if any."""
        return self.header.get("UL_CONF")

    def x_edges(self) -> np.ndarray:
        """Energy bin edges (MeV), the x axis of a castro plot."""
        return self._refSpec.ebins

    def to_norm_type(self, norm_type) -> "CastroData":
        """The same profiles with x in another ``norm_type`` (through the reference
        columns)."""
        nt = _check_norm_type(norm_type)
        f = self._refSpec.ref_values(nt) / self._refSpec.ref_values(self._norm_type)
        out = CastroData(self._norm_vals * f[:, None], self._nll_vals, self._refSpec, nt,
                         where=self._where)
        out.header = dict(self.header)
        return out

    # -- construction -------------------------------------------------------------------
    @staticmethod
    def create_from_tables(norm_type="eflux", tab_s="SCANDATA", tab_e="EBOUNDS",
                           where: str | None = None) -> "CastroData":
        """From a scan table (one row: ``norm_scan`` and ``dloglike_scan`` of shape (bins,
        points), or one row per bin) and an energy table (``e_min``, ``e_max``,
        ``ref_*``; reference columns in the scan table are used where the energy table
        has none)."""
        nt = _check_norm_type(norm_type)
        cs, us, name_s = _columns(tab_s)
        ce, ue, name_e = _columns(tab_e)
        where = where or name_s
        if "norm_scan" not in cs:
            raise FileFormatError(f"{where}: no column 'norm_scan' (expected norm_scan and "
                                  f"dloglike_scan; found {', '.join(sorted(cs)) or 'none'})")
        norm_scan = np.asarray(cs["norm_scan"], dtype=np.float64)
        if "dloglike_scan" in cs:
            dll = np.asarray(cs["dloglike_scan"], dtype=np.float64)
        elif "loglike_scan" in cs:
            ll = np.asarray(cs["loglike_scan"], dtype=np.float64)
            dll = ll - np.nanmax(ll, axis=-1, keepdims=True)
        else:
            raise FileFormatError(f"{where}: no column 'dloglike_scan' (or 'loglike_scan'); "
                                  f"found {', '.join(sorted(cs))}")
        merged_cols = dict(cs)
        merged_cols.update(ce)
        merged_units = dict(us)
        merged_units.update(ue)
        ref = ReferenceSpec.create_from_table(_TableView(merged_cols, merged_units),
                                              where=name_e if "e_min" in ce else where)
        ne = ref.nE
        norm_scan, dll = _bins_first(norm_scan, dll, ne, where)
        x = norm_scan * ref.ref_values(nt)[:, None]
        return CastroData(x, -dll, ref, nt, where=where)

    @staticmethod
    def create_from_fits(fitsfile, norm_type="eflux", hdu_scan="SCANDATA",
                         hdu_energies="EBOUNDS", irow=None) -> "CastroData":
        """From a TS-cube / castro FITS file: row ``irow`` of the ``hdu_scan`` table (one row
        per pixel; ``irow`` may be None when the table has one row) and the energy bins and
        reference values of ``hdu_energies`` (keV energies are converted)."""
        names = table_hdu_names(fitsfile)
        if str(hdu_scan).upper() not in names:
            raise FileFormatError(f"{fitsfile}: no table HDU {hdu_scan!r} (expected a TS-cube "
                                  f"file with SCANDATA and EBOUNDS; found "
                                  f"{', '.join(names) or 'no tables'})")
        if irow is None:
            tab_s = read_fits_table(fitsfile, hdu_scan)
            if tab_s.nrows != 1:
                raise FileFormatError(f"{fitsfile}: HDU {hdu_scan} has {tab_s.nrows} rows "
                                      f"(one per pixel); pass irow= to choose one")
            tab_s = read_fits_table(fitsfile, hdu_scan, row=0)
        else:
            tab_s = read_fits_table(fitsfile, hdu_scan, row=int(irow))
        if str(hdu_energies).upper() in names:
            tab_e = read_fits_table(fitsfile, hdu_energies)
        elif "e_min" in tab_s:
            tab_e = tab_s
        else:
            raise FileFormatError(f"{fitsfile}: no table HDU {hdu_energies!r} with the "
                                  f"energy bins, and no e_min/e_max columns in {hdu_scan} "
                                  f"(found {', '.join(names)})")
        where = f"{fitsfile}[{hdu_scan}" + (f", row {int(irow)}]" if irow is not None else "]")
        c = CastroData.create_from_tables(norm_type, tab_s, tab_e, where=where)
        c.header = dict(tab_s.header)
        return c

    @staticmethod
    def create_from_sedfile(fitsfile, norm_type="eflux") -> "CastroData":
        """From a SED FITS file in Fermipy's layout (HDU ``SED``, else the first table:
        one row per energy bin with e_min, e_max, ref_*, norm_scan, dloglike_scan)."""
        names = table_hdu_names(fitsfile)
        if not names:
            raise FileFormatError(f"{fitsfile}: no table HDU (expected a SED file with an "
                                  f"HDU 'SED')")
        hdu = "SED" if "SED" in names else 1
        tab = read_fits_table(fitsfile, hdu)
        where = f"{fitsfile}[{tab.hdu}]"
        c = CastroData.create_from_tables(norm_type, tab, tab, where=where)
        c.header = dict(tab.header)
        if "norm" in tab and "norm_err" in tab:
            sd = SpecData(c.refSpec, tab["norm"], tab["norm_err"])
            c._refSpec = sd
        return c

    @staticmethod
    def create_from_stack(shape, components, ylims, weights=None) -> "CastroData":
        """The stack of several castros (e.g. several sources): per bin the weighted sum of
        their negative log-likelihoods on a common grid (see
        :meth:`CastroData_Base.stack_nll`); the reference spectrum of the first."""
        norm_vals, nll_vals = CastroData_Base.stack_nll(shape, components, ylims, weights)
        comps = list(components)
        return CastroData(norm_vals, nll_vals, comps[0].refSpec, comps[0].norm_type,
                          where=f"stack of {len(comps)} castros")

    spectrum_loader = staticmethod(spectrum_loader)

    # -- spectra ------------------------------------------------------------------------
    def create_functor(self, specType, initPars=None, scale=1e3) -> SEDFunctor:
        """A :class:`SEDFunctor` giving a spectral type's values in this castro's bins and
        ``norm_type``, with ``initPars`` (Fermipy's defaults if None)."""
        if isinstance(specType, SEDFunctor):
            return SEDFunctor(specType.spec_type, self._norm_type, self._refSpec,
                              specType.params if initPars is None else initPars,
                              specType.scale)
        return SEDFunctor(specType, self._norm_type, self._refSpec, initPars, scale)

    def spectrum_loglike(self, specType, params, scale=1e3) -> float:
        """Summed negative log-likelihood of a spectrum."""
        fn = self.create_functor(specType, params, scale)
        return self(fn(params))

    def test_spectra(self, spec_types=None) -> dict:
        """Fit spectral types to the profiles.  Returns {type: {'Function', 'Result'
        (best parameters), 'Spectrum' (values in the bins), 'ScaleEnergy', 'TS', 'Errors',
        'Fit' (the full :class:`FitSpectrumResult`)}}.  TS differences between nested types
        (LogParabola or PLExpCutoff against PowerLaw) measure curvature."""
        if spec_types is None:
            spec_types = list(SPEC_TYPES)
        for st in spec_types:
            if st not in PAR_NAMES:
                raise EstimatorError(f"castro test_spectra: unknown spectral type {st!r}; "
                                     f"expected some of {', '.join(SPEC_TYPES)}")
        # the PowerLaw fit is also the start of the nested types
        pl = self.fit_spectrum(self.create_functor("PowerLaw")) if spec_types else None
        out = {}
        for st in spec_types:
            if st == "PowerLaw":
                fit = pl
                fn = self.create_functor("PowerLaw", fit["params"])
            else:
                starts = [None]
                if pl is not None:
                    n0, idx = pl["params"]
                    if st == "LogParabola":
                        starts.append([n0, idx, 0.0])
                    else:
                        emax = float(self._refSpec.emax[-1])
                        starts += [[n0, idx, 1e4], [n0, idx, 10.0 * emax]]
                fit = None
                for s in starts:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", CastroWarning)
                            cand = self.fit_spectrum(self.create_functor(st, s))
                    except FitError:
                        continue
                    if fit is None or cand["nll"] < fit["nll"]:
                        fit = cand
                if fit is None:
                    raise FitError(f"{self._where}: the {st} fit failed from every start")
                if not np.all(np.isfinite(fit["errors"])):   # warn once, for the best fit
                    warnings.warn(f"{self._where}: the {st} fit's errors are undefined at "
                                  f"{fit['params'].tolist()!r}", CastroWarning, stacklevel=2)
                fn = self.create_functor(st, fit["params"])
            out[st] = {"Function": fn, "Result": fit["params"], "Spectrum": fit["spec_vals"],
                       "ScaleEnergy": fn.scale, "TS": fit["ts_spec"],
                       "Errors": fit["errors"], "Fit": fit}
        return out


def _bins_first(norm_scan, dll, ne: int, where: str):
    """Scans as (bins, points) arrays: one row holding (bins, points), one row per bin, or
    the transposed (points, bins) layout."""
    if norm_scan.shape != dll.shape:
        raise FileFormatError(f"{where}: columns 'norm_scan' {norm_scan.shape} and "
                              f"'dloglike_scan' {dll.shape} differ in shape")
    a, b = norm_scan, dll
    if a.ndim == 3 and a.shape[0] == 1:
        a, b = a[0], b[0]
    if a.ndim == 1 and ne == 1:
        a, b = a[None, :], b[None, :]
    if a.ndim != 2:
        raise FileFormatError(f"{where}: 'norm_scan' has shape {norm_scan.shape}; expected "
                              f"(energy bins = {ne}, scan points) per row (pass irow= for a "
                              f"table with one row per pixel)")
    if a.shape[0] != ne:
        if a.shape[1] == ne:
            a, b = a.T, b.T
        else:
            raise FileFormatError(f"{where}: 'norm_scan' has shape {a.shape}; expected "
                                  f"{ne} energy bins along one axis")
    return a, b


# =======================================================================================
# Files of either layout
# =======================================================================================
def read_castro(path, norm_type="eflux", irow=None) -> CastroData:
    """A :class:`CastroData` from a SED file (HDU ``SED``) or a TS-cube / castro file
    (``SCANDATA`` + ``EBOUNDS``; ``irow`` picks the pixel), in Fermipy's or fermixr's
    layout (the same).  Anything else is one error saying what was expected."""
    names = table_hdu_names(path)
    if "SED" in names:
        if irow is not None:
            raise EstimatorError(f"{path}: irow={irow!r} applies to TS-cube files; this is a "
                                 f"SED file (HDU SED)")
        return CastroData.create_from_sedfile(path, norm_type)
    if "SCANDATA" in names:
        return CastroData.create_from_fits(path, norm_type, irow=irow)
    if names:
        first = read_fits_table(path, 1)
        if {"norm_scan", "e_min", "e_max"} <= set(first.columns) and \
                ("dloglike_scan" in first or "loglike_scan" in first):
            return CastroData.create_from_sedfile(path, norm_type)
    raise FileFormatError(
        f"{path}: not a likelihood-profile file: expected a SED file (HDU 'SED' with "
        f"e_min, e_max, ref_*, norm_scan, dloglike_scan) or a TS-cube file (HDUs 'SCANDATA' "
        f"with norm_scan, dloglike_scan and 'EBOUNDS'); found "
        f"{'table HDUs ' + ', '.join(names) if names else 'no table HDU'}")
