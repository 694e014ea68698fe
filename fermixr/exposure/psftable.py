"""Exposure-weighted PSF at a sky position (gtpsf): the PSF table versus true energy and
angular offset, normalised to 1 over the sphere, with 68/95/99% containment radii.

At the livetime-cube pixel holding the position, each cos theta bin contributes with
weight Aeff_t(E, cos theta) x (f1(E) livetime + f2(E) weighted livetime) for every event
type t (the efficiency factors of the first type, as in :mod:`fermixr.exposure.expcube`):

    psf(r; E) = sum_{t, c} w_tc PSF_t(r; E, c) / sum_{t, c} w_tc,

with the sums over every inclination bin of the livetime cube.  There is no inclination
cut: the Science Tools' ``MeanPsf`` dropped inclinations above 70 deg until February 2012
and has had no cut since; the exposure counts the photons seen at those inclinations
(the IRFs are defined down to cos theta = 0.2), so their PSF belongs in the mean.  The
old cut made the P8R2 PSF core 0.6-2.1% too high and r68 1-3% too small (3.109 deg
instead of 3.138 deg at 200 MeV on the shared Crab day).  ``exposure`` is the full
exposure, the denominator of the mean.  The King functions of the IRFs are normalised
in the flat-sky approximation, so the mean is
renormalised to 1 over the sphere (integral of 2 pi sin r psf dr, 0..180 deg, on a fine
log grid); the factor applied is kept as ``norm_correction``.  Containment radii come
from the cumulative integral on that fine grid (linear interpolation).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..conventions import (ATTR_PRODUCT, DIM_ENERGY_TRUE, DIM_OFFSET, UNIT_ANGLE,
                           UNIT_ENERGY, UNIT_EXPOSURE, UNIT_PSF)
from ..errors import GeometryError

__all__ = ["psf_table", "default_offsets"]


def default_offsets(thetamax: float = 30.0, ntheta: int = 300) -> np.ndarray:
    """0 followed by ``ntheta - 1`` offsets log-spaced from 1e-3 deg to ``thetamax``."""
    return np.concatenate(([0.0], np.logspace(-3, np.log10(thetamax), ntheta - 1)))


def _fine_grid(n: int = 3000) -> np.ndarray:
    return np.concatenate(([0.0], np.logspace(-5, np.log10(180.0), n)))


def _cumulative(off_deg, psf):
    r = np.radians(off_deg)
    f = 2 * np.pi * np.sin(r) * psf
    seg = 0.5 * (f[..., 1:] + f[..., :-1]) * np.diff(r)
    return np.concatenate((np.zeros(psf.shape[:-1] + (1,)), np.cumsum(seg, axis=-1)), axis=-1)


def _radius(off_deg, cum, fraction):
    out = np.empty(cum.shape[0])
    for i, row in enumerate(cum):
        out[i] = np.interp(fraction, row, off_deg) if row[-1] >= fraction else np.nan
    return out


def psf_table(ltcube, irfs, ra: float, dec: float, energies, *, evtype=3, caldb=None,
              offsets=None, efficiency: bool = True, normalize: bool = True,
              fractions=(0.68, 0.95, 0.99)) -> xr.Dataset:
    """gtpsf: the exposure-weighted PSF at (``ra``, ``dec``) (deg, ICRS).

    ``energies`` true energies (MeV); ``offsets`` (deg, ascending, default
    :func:`default_offsets`).  Returns a Dataset with ``psf`` (energy_true, offset;
    sr^-1), ``exposure`` (energy_true; cm2 s), ``containment_68/95/99`` (deg) and
    ``norm_correction`` (the renormalisation factor applied).
    """
    from ..irf.irfset import load_irfs
    from ..irf.livetime import ltcube_arrays, ltcube_costheta, ltcube_pixel_rows

    irf = load_irfs(irfs, evtype, caldb)
    e = np.atleast_1d(np.asarray(energies, dtype=np.float64)).ravel()
    off = default_offsets() if offsets is None else np.asarray(offsets, dtype=np.float64).ravel()
    if off.size < 2 or np.any(np.diff(off) <= 0) or off[0] < 0:
        raise GeometryError("offsets must be >= 2 ascending non-negative angles (deg)")
    arr = ltcube_arrays(ltcube)
    row = int(ltcube_pixel_rows(ltcube, np.array([ra]), np.array([dec]))[0])
    if row < 0:
        raise GeometryError(f"livetime cube has no pixel at (ra, dec) = ({ra}, {dec})")
    cth = ltcube_costheta(ltcube, arr)
    lt = arr["exposure"][row]
    wlt = arr["weighted_exposure"][row] if arr["weighted_exposure"] is not None else np.zeros_like(lt)
    f1, f2 = irf.efficiency_factors(e) if efficiency else (np.ones_like(e), np.zeros_like(e))
    ltw = f1[:, None] * lt[None, :] + f2[:, None] * wlt[None, :]  # (ne, nc)
    fine = _fine_grid()
    grid = np.union1d(fine, off)
    exposure = np.zeros(e.size)
    num = np.zeros((e.size, grid.size))
    for r in irf.responses.values():
        w = r.aeff.value(e[:, None], cth[None, :]) * ltw
        exposure += w.sum(axis=1)
        p = r.psf.value(grid, e[:, None], cth[None, :])  # (ne, ncth, ngrid)
        num += np.einsum("ec,ecg->eg", w, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        psf = np.where(exposure[:, None] > 0, num / exposure[:, None], 0.0)
    cum = _cumulative(grid, psf)
    total = cum[:, -1]
    corr = np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 1.0) if normalize \
        else np.ones_like(total)
    psf = psf * corr[:, None]
    cum = cum * corr[:, None]
    idx = np.searchsorted(grid, off)
    ds = xr.Dataset(
        {
            "psf": ((DIM_ENERGY_TRUE, DIM_OFFSET), psf[:, idx], {"units": UNIT_PSF}),
            "exposure": ((DIM_ENERGY_TRUE,), exposure, {"units": UNIT_EXPOSURE}),
            "norm_correction": ((DIM_ENERGY_TRUE,), corr, {"units": ""}),
        },
        coords={
            DIM_ENERGY_TRUE: (DIM_ENERGY_TRUE, e, {"units": UNIT_ENERGY}),
            DIM_OFFSET: (DIM_OFFSET, off, {"units": UNIT_ANGLE}),
        },
        attrs={ATTR_PRODUCT: "psf", "ra": float(ra), "dec": float(dec), "irfs": irf.irfs,
               "evtype": int(irf.evtype), "efficiency": int(bool(efficiency))},
    )
    for fr in fractions:
        ds[f"containment_{int(round(fr * 100))}"] = (
            (DIM_ENERGY_TRUE,), _radius(grid, cum, fr), {"units": UNIT_ANGLE})
    return ds
