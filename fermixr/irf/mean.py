"""Exposure-weighted responses over the inclination distribution of an observation --
the functionality of Fermipy's ``fermipy.irfs`` module on fermixr's IRF evaluation.

The livetime distribution at a sky direction is a :class:`LivetimeProfile` (livetime per
cos theta bin, from a livetime cube or an isotropic model).  Inclination bins
``cth_bins`` are split into ``npts`` equal sub-bins (default: ceil(max width / 0.05));
responses are evaluated at the sub-bin centres and weighted by Aeff x livetime of the
sub-bin, summed over event types:

* :func:`exposure_cth` -- exposure (cm2 s) per inclination bin;
* :func:`mean_psf` -- exposure-weighted PSF (sr^-1);
* :func:`mean_edisp` -- exposure-weighted energy dispersion (MeV^-1);
* :func:`psf_model` -- a PSF table versus true energy (or, with ``use_edisp``, versus
  reconstructed energy for a power-law source, the dispersion folded in) with its
  exposure, spectral weights and 68/95/99% containment radii; :func:`psf_model_interp`
  and :func:`psf_model_containment` evaluate it at any energy.

Results are labelled xarray objects with dims ``offset`` (deg), ``energy_true`` (MeV),
``energy`` (MeV, reconstructed) and ``cth_bin`` (coords ``cth_lo``, ``cth_hi``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..conventions import (DIM_ENERGY, DIM_ENERGY_TRUE, DIM_OFFSET, UNIT_ANGLE,
                           UNIT_ENERGY, UNIT_EXPOSURE, UNIT_PSF)
from ..errors import GeometryError, IRFError

__all__ = [
    "LivetimeProfile",
    "split_cth_bins",
    "exposure_cth",
    "mean_psf",
    "mean_edisp",
    "psf_model",
    "psf_model_interp",
    "psf_model_containment",
    "containment_radius",
    "power_law",
]

DIM_CTH = "cth_bin"


@dataclass(frozen=True)
class LivetimeProfile:
    """Livetime (s) in cos theta bins at one sky direction.

    ``edges`` ascending cos theta bin edges, ``livetime`` per bin, and optionally the
    livetime-fraction weighted livetime ``weighted`` (for efficiency corrections).
    """

    edges: np.ndarray
    livetime: np.ndarray
    weighted: np.ndarray | None = None

    def __post_init__(self):
        e = np.asarray(self.edges, dtype=np.float64)
        lt = np.asarray(self.livetime, dtype=np.float64)
        if e.ndim != 1 or lt.ndim != 1 or e.size != lt.size + 1 or np.any(np.diff(e) <= 0):
            raise GeometryError(
                f"livetime profile needs ascending cos theta edges (n+1) and n livetimes; "
                f"got {e.size} edges and {lt.size} values"
            )

    @classmethod
    def isotropic(cls, total_time: float, nbins: int = 40) -> "LivetimeProfile":
        """A flat profile over cos theta in [0, 1]: each bin holds T dcos / 2 (Fermipy's
        ``LTCube.create_from_obs_time``)."""
        edges = np.linspace(0.0, 1.0, nbins + 1)
        return cls(edges, float(total_time) * np.diff(edges) / 2.0)

    @classmethod
    def from_ltcube(cls, ltcube, ra: float, dec: float) -> "LivetimeProfile":
        """The profile of the livetime-cube pixel holding (ra, dec) (deg, ICRS)."""
        from .livetime import ltcube_arrays, ltcube_pixel_rows

        arr = ltcube_arrays(ltcube)
        row = ltcube_pixel_rows(ltcube, np.atleast_1d(ra), np.atleast_1d(dec))[0]
        cmin, cmax = arr["costheta_min"], arr["costheta_max"]
        order = np.argsort(cmin)
        edges = np.concatenate((cmin[order], [cmax[order][-1]]))
        lt = arr["exposure"][row][order]
        wlt = arr["weighted_exposure"][row][order] if arr["weighted_exposure"] is not None else None
        return cls(edges, lt, wlt)

    def lthist(self, cth_edges, *, weighted: bool = False) -> np.ndarray:
        """Livetime in the bins ``cth_edges`` (ascending): the livetime density of the
        profile interpolated linearly between its bin centres at four points per bin
        (Fermipy's ``get_skydir_lthist``)."""
        cth_edges = np.asarray(cth_edges, dtype=np.float64)
        vals = self.weighted if weighted else self.livetime
        if vals is None:
            raise IRFError("livetime profile has no livetime-fraction weighted table")
        e = np.asarray(self.edges, dtype=np.float64)
        ctr = 0.5 * (e[1:] + e[:-1])
        dens = np.asarray(vals, dtype=np.float64) / np.diff(e)
        lo, hi = cth_edges[:-1], cth_edges[1:]
        t = (np.arange(4) + 0.5) / 4.0
        pts = lo[:, None] + (hi - lo)[:, None] * t[None, :]
        return np.sum(np.interp(pts, ctr, dens) * ((hi - lo) / 4.0)[:, None], axis=1)


def split_cth_bins(cth_bins, npts: int | None = None):
    """(fine edges, sub-bin centres, npts) of inclination bins split in ``npts`` equal
    parts; ``npts`` defaults to ceil(max bin width / 0.05)."""
    b = np.asarray(cth_bins, dtype=np.float64)
    if b.ndim != 1 or b.size < 2 or np.any(np.diff(b) <= 0):
        raise GeometryError(f"cth_bins must be >= 2 ascending cos theta edges, got {b!r}")
    if npts is None:
        npts = int(np.ceil(np.max(np.diff(b)) / 0.05 - 1e-12))
        npts = max(npts, 1)
    fine = [np.linspace(b[i], b[i + 1], npts + 1)[:-1] for i in range(b.size - 1)]
    fine = np.concatenate(fine + [b[-1:]])
    ctr = 0.5 * (fine[1:] + fine[:-1])
    return fine, ctr, int(npts)


def _theta_roundtrip(c):
    # Fermipy passes inclination angles in degrees to the Science Tools
    return np.cos(np.radians(np.degrees(np.arccos(c))))


def _cth_coords(cth_bins):
    b = np.asarray(cth_bins, dtype=np.float64)
    return {"cth_lo": (DIM_CTH, b[:-1]), "cth_hi": (DIM_CTH, b[1:])}


def _weights(irfset, energies, cth_bins, livetime, npts):
    from .irfset import load_irfs

    irf = load_irfs(irfset)
    fine, ctr, npts = split_cth_bins(cth_bins, npts)
    lt = livetime.lthist(fine)
    c = _theta_roundtrip(ctr)
    e = np.asarray(energies, dtype=np.float64).ravel()
    return irf, c, lt, e, npts


def exposure_cth(irfset, energies, cth_bins, livetime: LivetimeProfile, npts=None
                 ) -> xr.DataArray:
    """Exposure (cm2 s) per inclination bin: sum over event types and sub-bins of
    Aeff(E, cos theta_sub) x livetime(sub-bin).  Dims (energy_true, cth_bin)."""
    irf, c, lt, e, npts = _weights(irfset, energies, cth_bins, livetime, npts)
    nb = len(cth_bins) - 1
    a = irf.aeff(e[:, None], c[None, :])
    exp = (a * lt[None, :]).reshape(e.size, nb, npts).sum(-1)
    return xr.DataArray(
        exp, dims=(DIM_ENERGY_TRUE, DIM_CTH),
        coords={DIM_ENERGY_TRUE: (DIM_ENERGY_TRUE, e, {"units": UNIT_ENERGY}),
                **_cth_coords(cth_bins)},
        name="exposure", attrs={"units": UNIT_EXPOSURE, "irfs": irf.irfs, "evtype": irf.evtype},
    )


def _mean_psf_array(irf, offsets, e, c, lt, nb, npts):
    num = np.zeros((offsets.size, e.size, nb))
    den = np.zeros((e.size, nb))
    for r in irf.responses.values():
        a = r.aeff.value(e[:, None], c[None, :]) * lt[None, :]  # (ne, nsub)
        p = r.psf.value(offsets, e[:, None], c[None, :])  # (ne, nsub, noff)
        num += np.einsum("esk,es->kes", p.reshape(e.size, nb * npts, offsets.size), a
                         ).reshape(offsets.size, e.size, nb, npts).sum(-1)
        den += a.reshape(e.size, nb, npts).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den[None] > 0, num / den[None], 0.0), den


def mean_psf(irfset, offsets, energies, cth_bins, livetime: LivetimeProfile, npts=None
             ) -> xr.DataArray:
    """Exposure-weighted PSF (sr^-1) per inclination bin:
    sum PSF x Aeff x livetime / sum Aeff x livetime over event types and sub-bins.
    Dims (offset, energy_true, cth_bin), offsets in deg."""
    irf, c, lt, e, npts = _weights(irfset, energies, cth_bins, livetime, npts)
    off = np.asarray(offsets, dtype=np.float64).ravel()
    val, _ = _mean_psf_array(irf, off, e, c, lt, len(cth_bins) - 1, npts)
    return xr.DataArray(
        val, dims=(DIM_OFFSET, DIM_ENERGY_TRUE, DIM_CTH),
        coords={DIM_OFFSET: (DIM_OFFSET, off, {"units": UNIT_ANGLE}),
                DIM_ENERGY_TRUE: (DIM_ENERGY_TRUE, e, {"units": UNIT_ENERGY}),
                **_cth_coords(cth_bins)},
        name="psf", attrs={"units": UNIT_PSF, "irfs": irf.irfs, "evtype": irf.evtype},
    )


def _mean_edisp_array(irf, erec, e, c, lt, nb, npts, ratio_range):
    num = np.zeros((erec.size, e.size, nb))
    den = np.zeros((e.size, nb))
    ratio = erec[:, None] / e[None, :]
    mask = np.ones_like(ratio, dtype=bool)
    if ratio_range is not None:
        mask = (ratio > ratio_range[0]) & (ratio < ratio_range[1])
    for r in irf.responses.values():
        a = r.aeff.value(e[:, None], c[None, :]) * lt[None, :]  # (ne, nsub)
        d = r.edisp.value(erec[:, None, None], e[None, :, None], c[None, None, :])
        d = np.where(mask[:, :, None], d, 0.0)
        num += (d * a[None]).reshape(erec.size, e.size, nb, npts).sum(-1)
        den += a.reshape(e.size, nb, npts).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den[None] > 0, num / den[None], 0.0), den


def mean_edisp(irfset, erec, etrue, cth_bins, livetime: LivetimeProfile, npts=None,
               ratio_range=(0.333, 3.0)) -> xr.DataArray:
    """Exposure-weighted energy dispersion (MeV^-1) per inclination bin, set to 0 where
    E_rec / E_true is outside ``ratio_range`` (open interval; None keeps all).
    Dims (energy, energy_true, cth_bin)."""
    irf, c, lt, e, npts = _weights(irfset, etrue, cth_bins, livetime, npts)
    er = np.asarray(erec, dtype=np.float64).ravel()
    val, _ = _mean_edisp_array(irf, er, e, c, lt, len(cth_bins) - 1, npts, ratio_range)
    return xr.DataArray(
        val, dims=(DIM_ENERGY, DIM_ENERGY_TRUE, DIM_CTH),
        coords={DIM_ENERGY: (DIM_ENERGY, er, {"units": UNIT_ENERGY}),
                DIM_ENERGY_TRUE: (DIM_ENERGY_TRUE, e, {"units": UNIT_ENERGY}),
                **_cth_coords(cth_bins)},
        name="edisp", attrs={"units": "MeV-1", "irfs": irf.irfs, "evtype": irf.evtype},
    )


# ------------------------------------------------------------------------------------
# PSF model
# ------------------------------------------------------------------------------------
def power_law(prefactor: float = 1e-13, index: float = 2.0, scale: float = 1.0):
    """dN/dE = prefactor (E/scale)^-index as (dnde, integral) callables (MeV units)."""

    def dnde(e):
        return prefactor * (np.asarray(e, dtype=np.float64) / scale) ** (-index)

    def flux(emin, emax):
        emin = np.asarray(emin, dtype=np.float64)
        emax = np.asarray(emax, dtype=np.float64)
        if abs(index - 1.0) < 1e-12:
            return prefactor * scale * np.log(emax / emin)
        g = 1.0 - index
        return prefactor * scale / g * ((emax / scale) ** g - (emin / scale) ** g)

    return dnde, flux


def _spectrum(spectrum):
    if spectrum is None:
        return power_law()
    if isinstance(spectrum, tuple) and len(spectrum) == 2:
        return spectrum
    if callable(spectrum):
        dnde = spectrum
        x, w = np.polynomial.legendre.leggauss(8)

        def flux(emin, emax):
            lmin, lmax = np.log(np.asarray(emin, float)), np.log(np.asarray(emax, float))
            le = 0.5 * (lmax - lmin)[..., None] * x + 0.5 * (lmax + lmin)[..., None]
            return np.sum(w * dnde(np.exp(le)) * np.exp(le), axis=-1) * 0.5 * (lmax - lmin)

        return dnde, flux
    raise IRFError("spectrum must be None, a dN/dE callable or a (dnde, flux) pair")


def _center_to_edge(c):
    c = np.asarray(c, dtype=np.float64)
    d = np.diff(c) if c.size > 1 else np.array([1.0])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate(([c[0] - 0.5 * d[0]], mid, [c[-1] + 0.5 * d[-1]]))


def containment_radius(offsets, psf, fraction=0.68):
    """Offset (deg) where the cumulative trapezoid integral of 2 pi sin(r) psf(r) dr
    (r in rad, ``psf`` in sr^-1 on the ``offsets`` grid, last axis) first reaches
    ``fraction`` (linear interpolation between grid points; nan if never)."""
    off = np.radians(np.asarray(offsets, dtype=np.float64))
    p = np.asarray(psf, dtype=np.float64)
    f = p * np.sin(off)
    csum = np.cumsum(0.5 * (f[..., 1:] + f[..., :-1]) * np.diff(off) * 2 * np.pi, axis=-1)
    flat = csum.reshape(-1, csum.shape[-1])
    out = np.empty(flat.shape[0])
    for i, row in enumerate(flat):
        k = np.searchsorted(row, fraction, side="left")
        if k >= row.size:
            out[i] = np.nan
        elif k == 0:
            out[i] = np.degrees(off[1])
        else:
            t = (fraction - row[k - 1]) / (row[k] - row[k - 1])
            out[i] = np.degrees(off[k] + t * (off[k + 1] - off[k]))
    return out.reshape(csum.shape[:-1])


def psf_model(irfset, livetime: LivetimeProfile, energies, cth_bins=(0.2, 1.0), *,
              ndtheta: int = 500, use_edisp: bool = False, spectrum=None, nbin: int = 64,
              npts: int | None = None, fractions=(0.68, 0.95, 0.99)) -> xr.Dataset:
    """PSF model over one or more inclination bins (Fermipy's ``PSFModel.create``).

    Offsets: 0 then ``ndtheta`` points log-spaced from 1e-4 to 10**1.75 deg.  Without
    ``use_edisp`` the PSF is the exposure-weighted mean at each true energy.  With
    ``use_edisp`` the energies are the centres of reconstructed-energy bins (edges at
    the log mid-points) and the PSF of each bin mixes the true-energy PSFs (``nbin``
    bins per decade from 10 MeV to 10**6.5 MeV) with the predicted counts of
    ``spectrum`` (default dN/dE = 1e-13 E^-2) dispersed into it.

    Returns a Dataset with ``psf`` (offset, energy[, cth_bin]), ``exposure`` (energy),
    ``weights`` (predicted counts of the bin) and ``containment_<pct>`` (deg); the
    energy dim is ``energy_true`` or, with ``use_edisp``, ``energy``.
    """
    from .irfset import load_irfs

    irf = load_irfs(irfset)
    energies = np.asarray(energies, dtype=np.float64).ravel()
    cth_bins = np.asarray(cth_bins, dtype=np.float64)
    dtheta = np.concatenate(([0.0], np.logspace(-4, 1.75, ndtheta)))
    loge = np.log10(energies)
    egy_bins = 10 ** _center_to_edge(loge)
    dnde, flux = _spectrum(spectrum)
    nb = cth_bins.size - 1
    fine, ctr, npts = split_cth_bins(cth_bins, npts)
    lt = livetime.lthist(fine)
    c = _theta_roundtrip(ctr)

    def exposure_at(e):
        a = irf.aeff(e[:, None], c[None, :]) * lt[None, :]
        return a.reshape(e.size, nb, npts).sum(-1)

    def counts_true(edges):
        # predicted counts per true-energy bin: log-log trapezoid of dN/dE x exposure
        # sampled at the bin edges (Fermipy's calc_counts / loglog_quad)
        y = dnde(edges)[:, None] * exposure_at(edges)
        return 0.5 * (y[:-1] * edges[:-1, None] + y[1:] * edges[1:, None]) * \
            np.log(edges[1:] / edges[:-1])[:, None]

    if use_edisp:
        nt = int(round(nbin * 5.5)) + 1
        etrue_bins = 10 ** np.linspace(1.0, 6.5, nt)
        etrue = 10 ** (0.5 * (np.log10(etrue_bins[1:]) + np.log10(etrue_bins[:-1])))
        psf_t, _ = _mean_psf_array(irf, dtheta, etrue, c, lt, nb, npts)  # (noff, nt, nb)
        # response matrix: dispersion integrated over each reconstructed-energy bin by
        # sampling it at ceil(128 / bins-per-decade) log-spaced points
        nsplit = int(np.ceil(128.0 / ((egy_bins.size - 1) / np.log10(egy_bins[-1] / egy_bins[0]))
                             - 1e-9))
        lf = np.log(egy_bins)
        fine = np.exp(np.concatenate(
            [np.linspace(lf[i], lf[i + 1], nsplit + 1)[:-1] for i in range(lf.size - 1)]
            + [lf[-1:]]))
        efine = 10 ** (0.5 * (np.log10(fine[1:]) + np.log10(fine[:-1])))
        ed, _ = _mean_edisp_array(irf, efine, etrue, c, lt, nb, npts, (0.333, 3.0))
        ed = ed * np.diff(fine)[:, None, None]
        drm = ed.reshape(egy_bins.size - 1, nsplit, etrue.size, nb).sum(axis=1)
        cnts_t = counts_true(etrue_bins)  # (nt, nb)
        w = drm * cnts_t[None]
        wsum = w.sum(axis=1)  # (nrec, nb)
        wnorm = np.where(wsum == 0, 1.0, wsum)
        psf = np.einsum("rtb,otb->orb", w / wnorm[:, None, :], psf_t)
        wts = wsum
        edim = DIM_ENERGY
    else:
        psf, _ = _mean_psf_array(irf, dtheta, energies, c, lt, nb, npts)
        wts = counts_true(egy_bins)
        edim = DIM_ENERGY_TRUE
    exp = exposure_at(energies)

    squeeze = nb == 1
    dims_p = (DIM_OFFSET, edim) if squeeze else (DIM_OFFSET, edim, DIM_CTH)
    dims_e = (edim,) if squeeze else (edim, DIM_CTH)
    psf_v = psf[..., 0] if squeeze else psf
    coords = {
        DIM_OFFSET: (DIM_OFFSET, dtheta, {"units": UNIT_ANGLE}),
        edim: (edim, energies, {"units": UNIT_ENERGY}),
        "energy_edges": (edim + "_edges", egy_bins, {"units": UNIT_ENERGY}),
    }
    if not squeeze:
        coords.update(_cth_coords(cth_bins))
    ds = xr.Dataset(
        {
            "psf": (dims_p, psf_v, {"units": UNIT_PSF}),
            "exposure": (dims_e, exp[:, 0] if squeeze else exp, {"units": UNIT_EXPOSURE}),
            "weights": (dims_e, wts[:, 0] if squeeze else wts, {"units": "counts"}),
        },
        coords=coords,
        attrs={"irfs": irf.irfs, "evtype": irf.evtype, "use_edisp": int(bool(use_edisp)),
               "cth_bins": [float(x) for x in cth_bins]},
    )
    for fr in fractions:
        r = containment_radius(dtheta, np.moveaxis(psf_v, 0, -1), fr)
        ds[f"containment_{int(round(fr * 100))}"] = (dims_e, r, {"units": UNIT_ANGLE})
    return ds


def _energy_dim(model) -> str:
    return DIM_ENERGY if DIM_ENERGY in model["psf"].dims else DIM_ENERGY_TRUE


def psf_model_interp(model: xr.Dataset, energy, offset) -> np.ndarray:
    """PSF of a :func:`psf_model` at any energies and offsets (broadcast together):
    linear interpolation of log(psf) in offset and log10 E, extrapolating linearly
    outside the grid (Fermipy's ``PSFModel.interp``)."""
    from scipy.interpolate import RegularGridInterpolator

    edim = _energy_dim(model)
    p = model["psf"]
    if p.ndim != 2:
        raise GeometryError("psf_model_interp needs a model of one inclination bin")
    with np.errstate(divide="ignore"):
        lp = np.log(p.transpose(DIM_OFFSET, edim).values)
    fn = RegularGridInterpolator((model[DIM_OFFSET].values, np.log10(model[edim].values)),
                                 lp, bounds_error=False, fill_value=None)
    e, o = np.broadcast_arrays(np.asarray(energy, float), np.asarray(offset, float))
    return np.exp(fn((o, np.log10(e))))


def psf_model_containment(model: xr.Dataset, energy, fraction=0.68) -> np.ndarray:
    """Containment radius (deg) of a :func:`psf_model` at any energies, from the
    interpolated PSF on the model's offset grid."""
    e = np.atleast_1d(np.asarray(energy, dtype=np.float64))
    off = model[DIM_OFFSET].values
    vals = psf_model_interp(model, e[:, None], off[None, :])
    r = containment_radius(off, vals, fraction)
    return r if np.ndim(energy) else r[0]
