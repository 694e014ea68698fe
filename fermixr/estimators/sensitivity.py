"""Point- and extended-source flux sensitivity (Fermipy's ``fermipy-flux-sensitivity``).

The flux at which a source would be detected with TS >= ``ts_thresh`` and at least
``min_counts`` counts, from the median expected ("Asimov") test statistic with the
background known:

    TS(n) = 2 sum_k [(n s_k + b_k) ln(1 + n s_k / b_k) - n s_k],

over annuli k around the source (30 annuli out to 3 x the 68% radius of the PSF, widened
by the source's own extent) and, for the integral threshold, over the energy bins.  s_k are
the counts of the reference spectrum (a power law of ``index``, 1e-13 cm-2 s-1 MeV-1 at
1 GeV) in the annulus: the spectrum integrated over each energy bin with four log-spaced
sub-energies, times the exposure and the fraction of the (PSF convolved with the source's
shape) falling in the annulus.  b_k is the background intensity (``galdiff`` map cube plus
``isodiff`` spectrum) times exposure, energy width and solid angle.  The differential
threshold solves TS = ts_thresh in each energy bin alone; the integral threshold solves it
with all bins summed, for the same power-law shape.

Exposure and PSF come from the IRFs averaged over the inclination distribution of the
observation: a livetime cube (``ltcube``; ``obs_time_yr`` rescales it) or, without one,
an isotropic survey of ``obs_time_yr`` years (each direction seen with its livetime spread
uniformly in cos(inclination), Fermipy's ``LTCube.create_empty``).  With ``joint`` every
event type (FRONT and BACK, or PSF0..3) has its own PSF and exposure and their TS add.

:func:`flux_sensitivity` gives the tables at one position, :func:`sensitivity_map` the
integral and differential thresholds on a WCS or HEALPix grid, :func:`write_sensitivity`
writes Fermipy's FITS layout (``DIFF_FLUX``, ``INT_FLUX``, and with a map ``MAP_FLUX``,
``MAP_EFLUX``, ``MAP_NPRED``, ``MAP_DIFF_FLUX``, ``MAP_DIFF_NPRED``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import EstimatorError, InputFileError

__all__ = ["SensitivityModel", "asimov_ts", "threshold_norm", "flux_sensitivity",
           "sensitivity_map", "write_sensitivity", "YEAR"]

YEAR = 365.25 * 86400.0
_REF_PREFACTOR = 1e-13          # cm-2 s-1 MeV-1 at 1 GeV: the reference spectrum
_N_ANNULI = 30
_SUB = 4                        # sub-energies per energy bin
_CTH_MIN = 0.2                  # lowest cos(inclination) in the PSF average (Fermipy's)


def asimov_ts(s, b, axis=None):
    """Median expected TS of signal counts ``s`` over known background ``b`` (summed over
    ``axis``)."""
    s = np.asarray(s, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(b > 0, 2.0 * ((s + b) * np.log1p(s / np.where(b > 0, b, 1.0)) - s),
                     np.where(s > 0, np.inf, 0.0))
    return np.sum(t, axis=axis)


def threshold_norm(sig, bkg, ts_thresh: float = 25.0, min_counts: float = 3.0) -> float:
    """The factor n by which the counts ``sig`` must be scaled for TS(n) = ``ts_thresh``
    and n sum(sig) >= ``min_counts`` (``sig``, ``bkg`` arrays of one shape, summed)."""
    from scipy.optimize import brentq

    sig = np.asarray(sig, dtype=np.float64)
    bkg = np.asarray(bkg, dtype=np.float64)
    total = float(sig.sum())
    if not total > 0:
        return math.inf
    n_counts = float(min_counts) / total

    def f(logn):
        return asimov_ts(math.exp(logn) * sig, bkg) - ts_thresh

    lo, hi = math.log(n_counts) - 40.0, math.log(n_counts) + 40.0
    if f(lo) > 0:
        n_ts = math.exp(lo)
    else:
        while f(hi) < 0:
            hi += 40.0
        n_ts = math.exp(brentq(f, lo, hi, xtol=1e-10, rtol=1e-10))
    return max(n_ts, n_counts)


def _psf_with_shape(psf_off, psf_val, spatial_model, size):
    """The PSF convolved with a RadialGaussian (``size`` = 68% radius) or RadialDisk
    (``size`` = 68% radius) on a flat-sky grid, as (offsets, values) per energy: values
    (n_off, n_e) in sr^-1."""
    if spatial_model in (None, "PointSource") or not size:
        return psf_off, psf_val
    r68 = float(size)
    rmax = float(psf_off[-1])
    n = 401
    half = min(rmax, 3.0 * r68 + 10.0)
    x = np.linspace(-half, half, n)
    d = x[1] - x[0]
    xx, yy = np.meshgrid(x, x)
    rr = np.hypot(xx, yy)
    if spatial_model == "RadialGaussian":
        sigma = r68 / 1.50959
        shape = np.exp(-0.5 * (rr / sigma) ** 2)
    elif spatial_model == "RadialDisk":
        radius = r68 / 0.82462
        shape = (rr <= radius).astype(float)
    else:
        raise EstimatorError(f"sensitivity: spatial_model {spatial_model!r}; expected "
                             "PointSource, RadialGaussian or RadialDisk")
    shape /= shape.sum()
    out_off = np.linspace(0.0, half, 200)
    out = np.empty((out_off.size, psf_val.shape[1]))
    fs = np.fft.rfft2(np.fft.ifftshift(shape))
    for j in range(psf_val.shape[1]):
        p = np.interp(rr, psf_off, psf_val[:, j], right=0.0)
        conv = np.fft.irfft2(np.fft.rfft2(p) * fs, s=p.shape)
        # radial profile of the convolved map (sr^-1), normalised to unit integral
        ring = np.clip((rr / d).astype(int), 0, n)
        prof = np.bincount(ring.ravel(), conv.ravel()) / np.maximum(
            np.bincount(ring.ravel()), 1)
        rc = (np.arange(prof.size) + 0.5) * d
        vals = np.interp(out_off, rc, prof, left=prof[0], right=0.0)
        norm = np.trapezoid(2 * np.pi * np.sin(np.radians(out_off)) * vals,
                            np.radians(out_off))
        out[:, j] = vals / norm if norm > 0 else vals
    return out_off, out


@dataclass
class SensitivityModel:
    """The inputs of a sensitivity calculation (see the module docstring)."""

    irfs: str
    evtype: int = 3
    caldb: str | None = None
    ltcube: str | None = None
    obs_time_yr: float | None = None
    galdiff: str | None = None
    isodiff: str | None = None
    joint: bool = False

    def __post_init__(self):
        if self.ltcube is None and self.obs_time_yr is None:
            raise EstimatorError("sensitivity: no exposure; give ltcube (a livetime cube) or "
                                 "obs_time_yr (an isotropic survey of that many years)")
        if self.obs_time_yr is not None and not self.obs_time_yr > 0:
            raise EstimatorError(f"sensitivity: obs_time_yr {self.obs_time_yr!r}; expected "
                                 "a positive number of years")
        if self.galdiff is None and self.isodiff is None:
            raise EstimatorError("sensitivity: no background model; give galdiff (a map "
                                 "cube) and/or isodiff (an isotropic spectrum table)")
        self._iso = self._gal = self._lt = None

    # -- inputs ---------------------------------------------------------------------
    def _ltcube(self):
        if self._lt is None and self.ltcube is not None:
            from ..io.ltcube import read_ltcube

            self._lt = read_ltcube(self.ltcube)
        return self._lt

    def profile(self, ra: float, dec: float):
        """The livetime profile (cos inclination) at (ra, dec)."""
        from ..irf.mean import LivetimeProfile

        lt = self._ltcube()
        if lt is None:
            return LivetimeProfile.isotropic(self.obs_time_yr * YEAR)
        prof = LivetimeProfile.from_ltcube(lt, ra, dec)
        if self.obs_time_yr is not None:
            span = float(lt.attrs.get("TSTOP", 0.0)) - float(lt.attrs.get("TSTART", 0.0))
            if not span > 0:
                raise InputFileError(f"ltcube {self.ltcube}: no TSTART/TSTOP to rescale to "
                                     "obs_time_yr")
            prof = LivetimeProfile(prof.edges, prof.livetime * self.obs_time_yr * YEAR / span)
        return prof

    def background(self, glon, glat, energies) -> np.ndarray:
        """Background intensity (cm-2 s-1 MeV-1 sr-1), shape (n_pos, n_e)."""
        glon = np.atleast_1d(np.asarray(glon, float))
        glat = np.atleast_1d(np.asarray(glat, float))
        e = np.asarray(energies, float)
        out = np.zeros((glon.size, e.size))
        if self.isodiff is not None:
            if self._iso is None:
                from ..io.filefunction import read_filefunction_table

                self._iso = read_filefunction_table(self.isodiff)
            ie, iv = self._iso
            ok = iv > 0
            out += np.exp(np.interp(np.log(e), np.log(ie[ok]), np.log(iv[ok])))[None, :]
        if self.galdiff is not None:
            if self._gal is None:
                from ..io.mapcube import read_mapcube

                self._gal = read_mapcube(self.galdiff, "galdiff")
            from scipy.ndimage import map_coordinates

            cube, geom, ge = self._gal
            x, y = geom.world_to_pix(glon, glat, frame="GAL")
            inside = np.isfinite(x) & (x > -0.5) & (x < cube.shape[2] - 0.5) & \
                (y > -0.5) & (y < cube.shape[1] - 0.5)
            if not inside.all():
                raise EstimatorError(f"sensitivity: galdiff {self.galdiff} does not cover "
                                     f"(glon, glat) = ({glon[~inside][0]:.3f}, "
                                     f"{glat[~inside][0]:.3f})")
            # bilinear in the sky, log-log in energy
            logc = np.log(np.maximum(cube, 1e-300))
            lv = np.array([map_coordinates(plane, [y, x], order=1, mode="nearest")
                           for plane in logc])                    # (n_ge, n_pos)
            lge = np.log(ge)
            le = np.log(e)
            k = np.clip(np.searchsorted(lge, le) - 1, 0, lge.size - 2)
            t = (le - lge[k]) / (lge[k + 1] - lge[k])
            out += np.exp(lv[k] * (1 - t)[:, None] + lv[k + 1] * t[:, None]).T
        return out

    def response(self, prof, energies, offsets):
        """Per event-type group: (exposure (n_e), PSF (n_off, n_e)) averaged over the
        inclination distribution ``prof``."""
        from ..io.caldb import evtype_mask
        from ..irf.irfset import load_irfs
        from ..irf.mean import exposure_cth, mean_psf

        mask = evtype_mask(self.evtype)
        groups = [mask] if not self.joint else [1 << b for b in range(32) if mask >> b & 1]
        edges = np.asarray(prof.edges, float)
        cth = np.unique(np.clip(np.concatenate(([_CTH_MIN], edges[edges > _CTH_MIN])),
                                _CTH_MIN, 1.0))
        out = []
        for g in groups:
            irf = load_irfs(self.irfs, g, self.caldb)
            exp_b = exposure_cth(irf, energies, cth, prof).values            # (e, b)
            psf_b = mean_psf(irf, offsets, energies, cth, prof).values       # (o, e, b)
            exp = exp_b.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                psf = np.where(exp[None] > 0, (psf_b * exp_b[None]).sum(-1) / exp[None], 0.0)
            out.append((exp, psf))
        return out


def _sub_energies(ebins):
    """(sub-energy centres (nb, SUB), widths (nb, SUB)) of each bin split in _SUB
    log-equal parts."""
    sub_edges = np.exp(np.linspace(np.log(ebins[:-1]), np.log(ebins[1:]), _SUB + 1)).T
    return np.sqrt(sub_edges[:, 1:] * sub_edges[:, :-1]), np.diff(sub_edges, axis=1)


def _geometry(model, prof, ebins, spatial_model, size):
    """What depends on the observation but not on the background: per event-type group,
    the exposure at the sub-energies and, per energy bin, the annuli's solid angles and
    the fraction of the (shaped) PSF of each sub-energy in each annulus."""
    from ..irf.mean import containment_radius

    nb = ebins.size - 1
    ctr, _ = _sub_energies(ebins)
    e_all = ctr.ravel()
    offsets = np.concatenate(([0.0], np.logspace(-3, 1.5, 300)))
    out = []
    for exp, psf in model.response(prof, e_all, offsets):
        off, shaped = _psf_with_shape(offsets, psf, spatial_model, size)
        r68 = containment_radius(off, shaped.T, 0.68).reshape(nb, _SUB).max(axis=1)
        frac = np.zeros((nb, _SUB, _N_ANNULI))
        dom = np.zeros((nb, _N_ANNULI))
        for i in range(nb):
            edges = np.linspace(0.0, 3.0 * r68[i], _N_ANNULI + 1)
            dom[i] = 2 * np.pi * (np.cos(np.radians(edges[:-1])) -
                                  np.cos(np.radians(edges[1:])))
            fine = np.linspace(0.0, edges[-1], 20 * _N_ANNULI + 1)
            for k in range(_SUB):
                p = np.interp(fine, off, shaped[:, i * _SUB + k], right=0.0)
                f = 2 * np.pi * np.sin(np.radians(fine)) * p
                cum = np.concatenate(([0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) *
                                                       np.diff(np.radians(fine)))))
                frac[i, k] = np.diff(np.interp(edges, fine, cum))
        out.append((exp.reshape(nb, _SUB), frac, dom))
    return out


def _counts(model: SensitivityModel, glon, glat, ebins, index, geometry):
    """Signal counts of the reference spectrum and background counts, each
    (n_groups, n_bins, n_annuli), for the observation ``geometry`` (:func:`_geometry`)."""
    ctr, width = _sub_energies(ebins)
    bkg_i = model.background(glon, glat, ctr.ravel())[0].reshape(ctr.shape)
    dnde = _REF_PREFACTOR * (ctr / 1000.0) ** (-index)
    sig, bkg = [], []
    for exp, frac, dom in geometry:
        sig.append(np.einsum("bk,bka->ba", dnde * width * exp, frac))
        bkg.append((bkg_i * width * exp).sum(axis=1)[:, None] * dom)
    return np.array(sig), np.array(bkg)


def _ref_integrals(ebins, index):
    e0 = 1000.0
    lo, hi = np.asarray(ebins[:-1], float), np.asarray(ebins[1:], float)
    if abs(index - 1.0) < 1e-9:
        flux = _REF_PREFACTOR * e0 * np.log(hi / lo)
    else:
        g = 1.0 - index
        flux = _REF_PREFACTOR * e0 / g * ((hi / e0) ** g - (lo / e0) ** g)
    if abs(index - 2.0) < 1e-9:
        eflux = _REF_PREFACTOR * e0 ** 2 * np.log(hi / lo)
    else:
        g = 2.0 - index
        eflux = _REF_PREFACTOR * e0 ** 2 / g * ((hi / e0) ** g - (lo / e0) ** g)
    return flux, eflux


def flux_sensitivity(model: SensitivityModel, *, glon: float | None = None,
                     glat: float | None = None, ra: float | None = None,
                     dec: float | None = None, emin: float = 100.0, emax: float = 1e5,
                     nbin: int = 12, index: float = 2.0, ts_thresh: float = 25.0,
                     min_counts: float = 3.0, spatial_model: str = "PointSource",
                     spatial_size: float | None = None) -> dict:
    """Differential and integral thresholds at one position (Galactic or celestial, deg).
    Returns ``diff`` (per energy bin: e_min, e_ref, e_max, flux, eflux, dnde, e2dnde,
    npred, ts) and ``int`` (index, e_min, e_max, e_ref, flux, eflux, dnde, e2dnde at
    e_ref = 1 GeV, npred, ts, and the per-bin ``ebin_*`` npred and ts)."""
    from ..geom.frames import transform

    ra, dec, glon, glat = _position(glon, glat, ra, dec, transform)
    if not (emin > 0 and emax > emin and int(nbin) >= 1):
        raise EstimatorError(f"sensitivity: emin {emin!r}, emax {emax!r}, nbin {nbin!r}; "
                             "expected 0 < emin < emax and nbin >= 1")
    if spatial_model not in ("PointSource", None) and not (spatial_size or 0) > 0:
        raise EstimatorError(f"sensitivity: spatial_model {spatial_model!r} needs "
                             "spatial_size > 0 (its 68% radius, deg)")
    ebins = np.geomspace(emin, emax, int(nbin) + 1)
    geometry = _geometry(model, model.profile(ra, dec), ebins, spatial_model, spatial_size)
    sig, bkg = _counts(model, glon, glat, ebins, index, geometry)
    return _tables(sig, bkg, ebins, index, ts_thresh, min_counts)


def _position(glon, glat, ra, dec, transform):
    if (glon is None) != (glat is None) or (ra is None) != (dec is None) or (
            glon is None and ra is None):
        raise EstimatorError("sensitivity: give the position as glon and glat, or ra and dec")
    if glon is not None:
        r, d = transform(np.atleast_1d(float(glon)), np.atleast_1d(float(glat)), "GAL", "CEL")
        return float(np.ravel(r)[0]), float(np.ravel(d)[0]), float(glon), float(glat)
    lo, la = transform(np.atleast_1d(float(ra)), np.atleast_1d(float(dec)), "CEL", "GAL")
    return float(ra), float(dec), float(np.ravel(lo)[0]), float(np.ravel(la)[0])


def _tables(sig, bkg, ebins, index, ts_thresh, min_counts) -> dict:
    nb = ebins.size - 1
    ectr = np.sqrt(ebins[1:] * ebins[:-1])
    rflux, reflux = _ref_integrals(ebins, index)
    rdnde = _REF_PREFACTOR * (ectr / 1000.0) ** (-index)
    norms = np.array([threshold_norm(sig[:, i], bkg[:, i], ts_thresh, min_counts)
                      for i in range(nb)])
    npred = norms * sig.sum(axis=(0, 2))
    ts = np.array([asimov_ts(norms[i] * sig[:, i], bkg[:, i]) for i in range(nb)])
    diff = {"e_min": ebins[:-1], "e_ref": ectr, "e_max": ebins[1:], "flux": norms * rflux,
            "eflux": norms * reflux, "dnde": norms * rdnde,
            "e2dnde": norms * rdnde * ectr ** 2, "npred": npred, "ts": ts}
    n_int = threshold_norm(sig, bkg, ts_thresh, min_counts)
    e_ref = 1000.0
    tot_flux, tot_eflux = _ref_integrals(ebins[[0, -1]], index)
    integral = {"index": float(index), "e_min": float(ebins[0]), "e_max": float(ebins[-1]),
                "e_ref": e_ref, "flux": float(n_int * tot_flux[0]),
                "eflux": float(n_int * tot_eflux[0]), "dnde": float(n_int * _REF_PREFACTOR),
                "e2dnde": float(n_int * _REF_PREFACTOR * e_ref ** 2),
                "npred": float(n_int * sig.sum()),
                "ts": float(asimov_ts(n_int * sig, bkg)),
                "ebin_npred": n_int * sig.sum(axis=(0, 2)),
                "ebin_ts": np.array([asimov_ts(n_int * sig[:, i], bkg[:, i])
                                     for i in range(nb)])}
    return {"diff": diff, "int": integral, "ts_thresh": float(ts_thresh),
            "min_counts": float(min_counts)}


def sensitivity_map(model: SensitivityModel, geom, *, emin: float = 100.0,
                    emax: float = 1e5, nbin: int = 12, index: float = 2.0,
                    ts_thresh: float = 25.0, min_counts: float = 3.0,
                    spatial_model: str = "PointSource", spatial_size: float | None = None,
                    progress=None) -> dict:
    """Integral and differential thresholds at every pixel centre of ``geom`` (a
    :class:`fermixr.geom.wcs.WcsGeom` or :class:`fermixr.geom.hpx.HpxGeom`): ``flux``,
    ``eflux``, ``npred`` (pixel shape) and ``diff_flux``, ``diff_npred`` (n_bins, pixel
    shape).  Positions sharing a livetime profile and a background (an isotropic survey
    with only the isotropic background) are computed once; the exposure and PSF once per
    livetime profile."""
    from ..geom.frames import transform

    lon, lat = geom.pixel_centers()
    shape = np.shape(lon)
    lon, lat = np.ravel(lon), np.ravel(lat)
    frame = getattr(geom, "frame", "CEL")
    ra, dec = transform(lon, lat, frame, "CEL")
    glon, glat = transform(lon, lat, frame, "GAL")
    ebins = np.geomspace(emin, emax, int(nbin) + 1)
    out = {k: np.full(lon.size, np.nan) for k in ("flux", "eflux", "npred")}
    out["diff_flux"] = np.full((int(nbin), lon.size), np.nan)
    out["diff_npred"] = np.full((int(nbin), lon.size), np.nan)
    geometries: dict = {}        # one per livetime profile (one for an isotropic survey)
    results: dict = {}
    for p in range(lon.size):
        prof = model.profile(float(ra[p]), float(dec[p]))
        pkey = prof.livetime.tobytes()
        if pkey not in geometries:
            geometries[pkey] = _geometry(model, prof, ebins, spatial_model, spatial_size)
        bkey = (pkey, None if model.galdiff is None else (float(glon[p]), float(glat[p])))
        if bkey not in results:
            sig, bkg = _counts(model, float(glon[p]), float(glat[p]), ebins, index,
                               geometries[pkey])
            results[bkey] = _tables(sig, bkg, ebins, index, ts_thresh, min_counts)
        res = results[bkey]
        out["flux"][p] = res["int"]["flux"]
        out["eflux"][p] = res["int"]["eflux"]
        out["npred"][p] = res["int"]["npred"]
        out["diff_flux"][:, p] = res["diff"]["flux"]
        out["diff_npred"][:, p] = res["diff"]["npred"]
        if progress is not None:
            progress(p + 1, lon.size)
    for k in ("flux", "eflux", "npred"):
        out[k] = out[k].reshape(shape)
    for k in ("diff_flux", "diff_npred"):
        out[k] = out[k].reshape((int(nbin),) + shape)
    out["ebins"] = ebins
    return out


def write_sensitivity(result: dict, path, *, map_result: dict | None = None, geom=None,
                      config: dict | None = None):
    """Fermipy's sensitivity FITS: ``DIFF_FLUX`` and ``INT_FLUX`` tables and, with a map,
    ``MAP_FLUX``, ``MAP_EFLUX``, ``MAP_NPRED``, ``MAP_DIFF_FLUX``, ``MAP_DIFF_NPRED``
    (images on a WCS grid, HEALPix tables on a HEALPix one)."""
    import json

    from astropy.io import fits

    d = result["diff"]
    units = {"e_min": "MeV", "e_ref": "MeV", "e_max": "MeV", "flux": "ph / (cm2 s)",
             "eflux": "MeV / (cm2 s)", "dnde": "ph / (MeV cm2 s)", "e2dnde": "MeV / (cm2 s)",
             "npred": "ph", "ts": ""}
    diff = fits.BinTableHDU.from_columns(
        [fits.Column(name=k, format="D", array=np.asarray(d[k]), unit=units[k] or None)
         for k in ("e_min", "e_ref", "e_max", "flux", "eflux", "dnde", "e2dnde", "npred",
                   "ts")], name="DIFF_FLUX")
    it = result["int"]
    nb = len(d["e_min"])
    icols = [fits.Column(name=k, format="D", array=np.array([it[k]]),
                         unit=units.get(k) or None)
             for k in ("index", "e_min", "e_max", "e_ref", "flux", "eflux", "dnde", "e2dnde",
                       "npred", "ts")]
    icols += [fits.Column(name=k, format=f"{nb}D", array=np.asarray(it[k])[None, :])
              for k in ("ebin_npred", "ebin_ts")]
    integ = fits.BinTableHDU.from_columns(icols, name="INT_FLUX")
    prim = fits.PrimaryHDU()
    prim.header["TSTHRESH"] = (result["ts_thresh"], "detection threshold (TS)")
    prim.header["MINCOUNT"] = (result["min_counts"], "minimum counts")
    if config is not None:
        prim.header["CONFIG"] = json.dumps(config, default=str)
    hdus = [prim, diff, integ]
    if map_result is not None:
        hdus += _map_hdus(map_result, geom)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _map_hdus(m, geom):
    from astropy.io import fits

    out = []
    names = [("MAP_FLUX", "flux"), ("MAP_EFLUX", "eflux"), ("MAP_NPRED", "npred"),
             ("MAP_DIFF_FLUX", "diff_flux"), ("MAP_DIFF_NPRED", "diff_npred")]
    if hasattr(geom, "nside"):                                    # HEALPix
        for ext, k in names:
            a = np.asarray(m[k])
            planes = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a[None]
            cols = [fits.Column(name="PIX", format="K", array=np.asarray(geom.pix))]
            cols += [fits.Column(name=f"CHANNEL{i + 1}", format="D", array=pl)
                     for i, pl in enumerate(planes)]
            h = fits.BinTableHDU.from_columns(cols, name=ext)
            h.header.update(PIXTYPE="HEALPIX", ORDERING="NESTED" if geom.nest else "RING",
                            NSIDE=int(geom.nside), INDXSCHM="EXPLICIT",
                            COORDSYS="GAL" if geom.frame == "GAL" else "CEL")
            out.append(h)
    else:
        hdr = fits.Header(geom.to_header())
        for ext, k in names:
            out.append(fits.ImageHDU(np.asarray(m[k], dtype=np.float64), header=hdr,
                                     name=ext))
    ebins = np.asarray(m["ebins"])
    out.append(fits.BinTableHDU.from_columns(
        [fits.Column(name="CHANNEL", format="J", array=np.arange(1, ebins.size)),
         fits.Column(name="E_MIN", format="D", array=ebins[:-1] * 1e3, unit="keV"),
         fits.Column(name="E_MAX", format="D", array=ebins[1:] * 1e3, unit="keV")],
        name="EBOUNDS"))
    return out
