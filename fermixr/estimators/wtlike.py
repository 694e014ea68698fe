"""Weighted-photon light curves (Kerr 2019, arXiv:1910.00140, the method of wtlike) from
fermixr's own fitted model.

Three pieces, each a plain function:

* :func:`photon_weights` -- every selected photon's weight w = (the source's model counts)
  / (all model counts) at its energy, position and component (event-type selection), from
  the fitted state's model cubes.  Resolution: the ratio cube of the binned analysis
  (its pixels and energy bins, per component), interpolated at the photon: linearly in
  log E between the bins' log centres and bilinearly between pixel centres (WCS; HEALPix
  takes the photon's pixel).  The ratio varies on the PSF's scale, which at every energy of
  a LAT analysis is wider than a 0.1-0.2 deg pixel but not than an energy bin of 8-10 per
  decade near the source's core, hence the interpolation in energy.  Weights of the same
  cube the likelihood fitted are consistent with it: sum_i w_i equals the source's model
  counts up to the fit's residuals (both are recorded in the product).
* :func:`source_exposure` -- the source's expected counts per FT2 row: livetime x
  effective area at the source's inclination (each component's event types, with the
  livetime-fraction efficiency), weighted over the energy bins by the fitted model's counts
  of the source, normalised so that the rows sum to the source's model counts.  Made once
  per row; a cumulative sum gives the expected counts S of any time cell.
* :func:`weighted_lightcurve` -- per time cell the likelihood
  log L(n) = sum_i log(1 - w_i + w_i n) - n S of the source's flux relative to the fit
  (n = 1 + alpha of Kerr's paper, background held at its mean), maximised in a numba
  kernel: n, profile errors (dlogL 0.5), 95% upper limit (dlogL 1.353), TS; flux = n x the
  fitted flux.  Optional Bayesian blocks (Scargle et al. 2013) with the cells' likelihoods
  as block fitness.

Inputs come as arrays (events per component, the FT2 files, GTIs, IRF names); the engine
(:mod:`fermixr.engine.wtlike_output`) gathers them from a run.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ..errors import EstimatorError, InputFileError, RecipeError
from ..likelihood.roi import AnalysisState, bin_range
from . import _wtlike_kernels as K

__all__ = ["photon_weights", "source_exposure", "RowExposure", "weighted_lightcurve",
           "bayesian_blocks", "default_ncp_prior", "check_cells_in_ft2", "ft2_span",
           "WEIGHT_MAX", "fit_cells_reference"]

WEIGHT_MAX = 1.0 - 1e-9          # a weight of exactly 1 makes log L(0) = -inf
FT2_COLUMNS = ("START", "STOP", "LIVETIME", "RA_SCZ", "DEC_SCZ", "RA_ZENITH", "DEC_ZENITH")
N_COSTHETA = 1001                # cos(theta) nodes of the exposure tables (0 .. 1)
BB_GRID = 160                    # values of n of the Bayesian-blocks tables


def _unit(ra, dec):
    ra = np.radians(np.asarray(ra, dtype=np.float64))
    dec = np.radians(np.asarray(dec, dtype=np.float64))
    c = np.cos(dec)
    return c * np.cos(ra), c * np.sin(ra), np.sin(dec)


def _source(state: AnalysisState, name: str):
    from ..errors import ModelError

    try:
        src = state.model.find(name)
    except ModelError as exc:
        raise EstimatorError(f"weighted_lightcurve: no source {name!r} in the model "
                             f"({exc})") from None
    if src.skydir is None:
        raise EstimatorError(f"weighted_lightcurve: {src.name!r} is a diffuse source; "
                             "weighted-photon light curves need a source with a position")
    return src


# --------------------------------------------------------------------------- weights ----
def _ratio_cubes(state: AnalysisState, name: str):
    """Per component: (source model counts, total model counts), each (n_bins, n_pix)."""
    from .ts import model_cubes

    return list(zip(model_cubes(state, name), model_cubes(state)))


def _interp_energy(loge, lc):
    """(k_lo, k_hi, f): linear interpolation between log-centres ``lc``, clamped."""
    n = lc.size
    if n == 1:
        z = np.zeros(loge.size, dtype=np.int64)
        return z, z, np.zeros(loge.size)
    u = np.interp(loge, lc, np.arange(n, dtype=np.float64))
    k0 = np.clip(np.floor(u).astype(np.int64), 0, n - 2)
    return k0, k0 + 1, u - k0


def photon_weights(state: AnalysisState, name: str, events, *,
                   interpolate: bool = True) -> list[dict]:
    """Weights of the photons of each component.

    ``events``: per component of ``state``, a mapping (or events Dataset) with TIME,
    ENERGY, RA, DEC of the photons the component selected.  Photons outside the
    component's map or energy bins in use are dropped (they are not in its likelihood
    either).  Returns per component ``{"time", "weight", "energy_bin"}`` sorted by time.
    ``interpolate`` False takes the ratio of the photon's own bin and pixel."""
    from ..geom import EnergyAxis, WcsGeom
    from ..select._kernels import fits_pixel_index
    from ..select.binning import energy_bin_index, pixel_index, sky_coords_in_frame

    src = _source(state, name)
    comps = state.components
    if len(events) != len(comps):
        raise EstimatorError(f"photon_weights: {len(events)} event lists for "
                             f"{len(comps)} components")
    out = []
    for comp, (s_cube, t_cube), ev in zip(comps, _ratio_cubes(state, src.name), events):
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(t_cube > 0, s_cube / t_cube, 0.0)
        geom = comp.geom
        t = np.asarray(ev["TIME"], dtype=np.float64)
        energy = np.asarray(ev["ENERGY"], dtype=np.float64)
        axis = EnergyAxis(comp.edges)
        ie = energy_bin_index(energy, axis)
        k0, k1 = bin_range(comp, state.loge_bounds)
        view = _EventView(ev)
        wcs = isinstance(geom, WcsGeom)
        if wcs:
            # one projection serves the pixel test (gtbin's rule) and the interpolation
            lon, lat = sky_coords_in_frame(view, geom.frame)
            x1, y1 = (np.ascontiguousarray(v, dtype=np.float64)
                      for v in geom._world_to_fits_pix(lon, lat))
            sp = (fits_pixel_index(y1, geom.ny), fits_pixel_index(x1, geom.nx))
        else:
            sp = pixel_index(view, geom)
        inside = (ie >= k0) & (ie < k1)
        for p in sp:
            inside &= p >= 0
        idx = np.flatnonzero(inside)
        nb = comp.counts.shape[0]
        if not interpolate or idx.size == 0:
            pix = sp[0][idx] if len(sp) == 1 else sp[0][idx] * geom.nx + sp[1][idx]
            w = ratio[ie[idx], pix]
        else:
            lc = 0.5 * (np.log10(comp.edges[:-1]) + np.log10(comp.edges[1:]))
            # only the bins in use: the model is zero outside them
            ka, kb, fe = _interp_energy(np.log10(energy[idx]), lc[k0:k1])
            ka, kb = ka + k0, kb + k0
            if wcs:
                x = np.clip(x1[idx] - 1.0, 0.0, geom.nx - 1.0)
                y = np.clip(y1[idx] - 1.0, 0.0, geom.ny - 1.0)
                ix0 = np.minimum(np.floor(x).astype(np.int64), max(geom.nx - 2, 0))
                iy0 = np.minimum(np.floor(y).astype(np.int64), max(geom.ny - 2, 0))
                fx = x - ix0 if geom.nx > 1 else np.zeros_like(x)
                fy = y - iy0 if geom.ny > 1 else np.zeros_like(y)
                ix1 = np.minimum(ix0 + 1, geom.nx - 1)
                iy1 = np.minimum(iy0 + 1, geom.ny - 1)
                r3 = ratio.reshape(nb, geom.ny, geom.nx)

                def spatial(k):
                    return ((1 - fy) * ((1 - fx) * r3[k, iy0, ix0] + fx * r3[k, iy0, ix1])
                            + fy * ((1 - fx) * r3[k, iy1, ix0] + fx * r3[k, iy1, ix1]))
            else:
                pix = sp[0][idx]

                def spatial(k):
                    return ratio[k, pix]
            w = (1.0 - fe) * spatial(ka) + fe * spatial(kb)
        w = np.clip(w, 0.0, WEIGHT_MAX)
        tt = t[idx]
        order = np.argsort(tt, kind="stable")
        out.append({"time": np.ascontiguousarray(tt[order]),
                    "weight": np.ascontiguousarray(w[order]),
                    "energy_bin": ie[idx][order]})
    return out


class _EventView:
    """What select.binning reads of an events table (``events["RA"].values``), over a
    mapping of arrays or a Dataset alike."""

    def __init__(self, ev, idx=None):
        self._ev = ev
        self._idx = idx

    def __contains__(self, k):
        return k in self._ev

    def __getitem__(self, k):
        a = np.asarray(self._ev[k])
        if self._idx is not None:
            a = a[self._idx]
        return _Values(a)

    def subset(self, idx):
        return _EventView(self._ev, idx)


@dataclasses.dataclass
class _Values:
    values: np.ndarray


# -------------------------------------------------------------------------- exposure ----
@dataclasses.dataclass(frozen=True)
class RowExposure:
    """The source's expected counts per FT2 row (``counts``, rows with livetime in the
    GTIs), the rows' ``start`` / ``stop`` (MET s) and ``livetime`` (s, GTI part)."""

    start: np.ndarray
    stop: np.ndarray
    counts: np.ndarray
    livetime: np.ndarray
    exposure: tuple = ()        # per component, (n_bins,) cm2 s at the source

    def cumulative(self, t) -> np.ndarray:
        """Expected counts from the first row to each time ``t`` (linear within a row)."""
        c = np.concatenate([[0.0], np.cumsum(self.counts)])
        x = np.column_stack([self.start, self.stop]).ravel()
        y = np.column_stack([c[:-1], c[1:]]).ravel()
        return np.interp(np.asarray(t, dtype=np.float64), x, y)

    def in_cells(self, edges_lo, edges_hi) -> np.ndarray:
        return self.cumulative(edges_hi) - self.cumulative(edges_lo)


def _merge(gs, ge):
    gs = np.asarray(gs, dtype=np.float64)
    ge = np.asarray(ge, dtype=np.float64)
    o = np.argsort(gs, kind="stable")
    gs, ge = gs[o], ge[o]
    ms, me = [], []
    for a, b in zip(gs, ge):
        if b <= a:
            continue
        if ms and a <= me[-1]:
            me[-1] = max(me[-1], b)
        else:
            ms.append(a)
            me.append(b)
    return np.array(ms), np.array(me)


def _gti_time_before(t, gs, ge):
    cum = np.concatenate([[0.0], np.cumsum(ge - gs)])
    i = np.searchsorted(gs, t, side="right") - 1
    ii = np.maximum(i, 0)
    inside = np.clip(t - gs[ii], 0.0, ge[ii] - gs[ii])
    return np.where(i >= 0, cum[ii] + inside, 0.0)


def ft2_span(ft2_files) -> tuple[float, float]:
    """(first START, TSTOP keyword) of the FT2 files, from their headers and first rows."""
    from ..io.ft2 import check_ft2_columns, ft2_info, open_ft2
    from ..io.headers import header_float

    paths = check_ft2_columns(ft2_files, FT2_COLUMNS)
    lo, hi = math.inf, -math.inf
    for p in paths:
        info = ft2_info(p)
        lo = min(lo, info["tstart"])
        with open_ft2(p) as t:
            hi = max(hi, header_float(t.header, "TSTOP", p, -math.inf, hdu="SC_DATA"))
    return lo, hi


def check_cells_in_ft2(cells, span, what="weighted_lightcurve") -> None:
    """Refuse time cells reaching outside the FT2 files' span (before any work)."""
    lo, hi = span
    cells = np.asarray(cells, dtype=np.float64)
    bad = np.flatnonzero((cells[:, 0] < lo - 1e-6) | (cells[:, 1] > hi + 1e-6))
    if bad.size:
        a, b = cells[bad[0]]
        raise RecipeError(
            f"{what}: the time cell MET {a:.1f}-{b:.1f} s ({bad.size} cell(s) in all) "
            f"reaches outside the spacecraft (FT2) file's span MET {lo:.1f}-{hi:.1f} s; "
            "give cells within it or add the FT2 file covering them")


def roi_radius(comp) -> float:
    """Radius (deg) of the disc with the solid angle of the component's map."""
    sa = float(np.sum(comp.geom.solid_angle()))
    return math.degrees(math.acos(max(1.0 - sa / (2 * math.pi), -1.0)))


def _irf_tables(irf_sets, centres, radii, containment=True):
    """Per component: (n_bins, N_COSTHETA) effective area x PSF containment within the
    ROI's radius, summed over the component's event types, at the bins' centres, and the
    (f1, f2) livetime-fraction factors (n_bins,).  The containment varies with the
    inclination (the PSF widens off axis), so the share of a source's photons that lands
    in the ROI follows the orbit's inclination history; without it the low-energy photons'
    exposure would be off by a few percent with the ~53-day precession period."""
    cgrid = np.linspace(0.0, 1.0, N_COSTHETA)
    out = []
    for irf, ec, rad in zip(irf_sets, centres, radii):
        a = np.zeros((ec.size, cgrid.size))
        if containment:
            ccoarse = np.linspace(0.2, 1.0, 33)
            off = np.linspace(0.0, rad, 400)
            ring = 2 * np.pi * np.sin(np.radians(off)) * np.radians(off[1] - off[0])
            ring[0] *= 0.5
            ring[-1] *= 0.5
        for r in irf.responses.values():
            ar = np.asarray(r.aeff.value(ec[:, None], cgrid[None, :]), dtype=np.float64)
            if containment:
                pv = r.psf.value(off, ec[:, None], ccoarse[None, :])      # (n, 33, n_off)
                cont = np.clip(np.sum(pv * ring, axis=-1), 0.0, 1.0)
                ar = ar * np.stack([np.interp(cgrid, ccoarse, cont[k]) for k in
                                    range(ec.size)])
            a += ar
        f1, f2 = irf.efficiency_factors(ec)
        out.append((a, np.asarray(f1, dtype=np.float64) * np.ones(ec.size),
                    np.asarray(f2, dtype=np.float64) * np.ones(ec.size)))
    return cgrid, out


def source_exposure(state: AnalysisState, name: str, ft2_files, gti_start, gti_stop, *,
                    irf_sets, zmax=None, containment: bool = True,
                    chunk_rows: int = 2_000_000) -> RowExposure:
    """The source's expected counts per FT2 row (see the module doc).

    ``irf_sets``: per component its :class:`~fermixr.irf.irfset.IRFSet` (the component's
    IRF name and event types); ``zmax``: per component its zenith cut (deg) or None
    (rows whose zenith is farther than zmax from the source add nothing, as in the
    livetime cube).  The energy weighting is the source's model counts per energy bin and
    component over the total exposure of that bin, so the rows add up to the source's
    model counts (npred).  ``containment``: weight the effective area by the PSF's
    containment within the ROI (a disc of the map's solid angle) at each inclination;
    ``exposure`` then holds exposure x containment."""
    from ..io.ft2 import iter_ft2_chunks
    from .ts import model_cubes

    src = _source(state, name)
    comps = state.components
    sx, sy, sz = (float(v) for v in _unit(*src.skydir))
    gs, ge = _merge(gti_start, gti_stop)
    if gs.size == 0:
        raise EstimatorError("weighted_lightcurve: no good time interval")
    zm = list(zmax) if isinstance(zmax, (list, tuple)) else [zmax] * len(comps)
    zlim = [180.0 if z is None else float(z) for z in zm]
    starts, stops, lts, cths, dts, dtws, zens = [], [], [], [], [], [], []
    for ch in iter_ft2_chunks(ft2_files, FT2_COLUMNS, chunk_rows=chunk_rows,
                              tmin=float(gs[0]), tmax=float(ge[-1])):
        start = np.asarray(ch["START"], dtype=np.float64)
        stop = np.asarray(ch["STOP"], dtype=np.float64)
        live = np.asarray(ch["LIVETIME"], dtype=np.float64)
        dur = stop - start
        ok = (live > 0) & (dur > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = (_gti_time_before(stop, gs, ge) - _gti_time_before(start, gs, ge)) / dur
        ok &= frac > 0
        start, stop, live, dur, frac = start[ok], stop[ok], live[ok], dur[ok], frac[ok]
        frac = np.minimum(frac, 1.0)
        zx, zy, zz = _unit(ch["RA_SCZ"][ok], ch["DEC_SCZ"][ok])
        nx, ny, nz = _unit(ch["RA_ZENITH"][ok], ch["DEC_ZENITH"][ok])
        cth = zx * sx + zy * sy + zz * sz
        czen = nx * sx + ny * sy + nz * sz
        dt = live * frac
        starts.append(start)
        stops.append(stop)
        lts.append(dt)
        cths.append(cth)
        dts.append(dt)
        dtws.append(dt * live / dur)
        zens.append(czen)
    if not starts:
        raise EstimatorError("weighted_lightcurve: no FT2 row with livetime inside the GTIs")
    start = np.concatenate(starts)
    stop = np.concatenate(stops)
    cth = np.concatenate(cths)
    dt = np.concatenate(dts)
    dtw = np.concatenate(dtws)
    czen = np.concatenate(zens)
    # the source's model counts per component and energy bin, and the IRF tables
    src_counts = [m.sum(axis=1) for m in model_cubes(state, src.name)]
    centres = [np.sqrt(c.edges[:-1] * c.edges[1:]) for c in comps]
    cgrid, tables = _irf_tables(irf_sets, centres, [roi_radius(c) for c in comps],
                                containment)
    g = cgrid.size - 1
    u = np.clip(cth, 0.0, 1.0) * g
    j = np.minimum(np.floor(u).astype(np.int64), g - 1)
    f = u - j
    counts = np.zeros(start.size)
    exposures = []
    for ic, (comp, (aeff, f1, f2)) in enumerate(zip(comps, tables)):
        keep = czen >= math.cos(math.radians(zlim[ic])) - 1e-12
        d1 = np.where(keep, dt, 0.0)
        d2 = np.where(keep, dtw, 0.0)
        # livetime (and fraction-weighted livetime) at the source versus cos(theta)
        h1 = np.bincount(j, d1 * (1 - f), g + 1) + np.bincount(j + 1, d1 * f, g + 1)
        h2 = np.bincount(j, d2 * (1 - f), g + 1) + np.bincount(j + 1, d2 * f, g + 1)
        expo = f1 * (aeff @ h1) + f2 * (aeff @ h2)           # (n_bins,) cm2 s
        exposures.append(expo)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(expo > 0, src_counts[ic] / expo, 0.0)
        t1 = (a * f1) @ aeff                                  # (N_COSTHETA,)
        t2 = (a * f2) @ aeff
        counts += d1 * ((1 - f) * t1[j] + f * t1[j + 1]) + d2 * ((1 - f) * t2[j] + f * t2[j + 1])
    return RowExposure(start=start, stop=stop, counts=counts, livetime=dt,
                       exposure=tuple(exposures))


# --------------------------------------------------------------------- Bayesian blocks ---
def default_ncp_prior(ncells: int, p0: float = 0.05) -> float:
    """Scargle et al. (2013) eq. 21 (their calibration for event data): the prior on the
    number of blocks that gives a false-positive rate ~p0 per change point."""
    return 4.0 - math.log(73.53 * p0 * max(int(ncells), 1) ** -0.478)


def bayesian_blocks(w, offsets, S, ncp_prior: float, grid=None) -> np.ndarray:
    """First cell of each block of the optimal partition (Scargle et al. 2013) with the
    maximum of the summed cell likelihoods as block fitness."""
    S = np.ascontiguousarray(S, dtype=np.float64)
    good = S > 0
    if grid is None:
        fits = K.fit_cells(w, offsets, S)
        top = fits[good, 0] + 3 * fits[good, 2]
        top = top[np.isfinite(top)]
        nmax = max(4.0, float(np.quantile(top, 0.999)) if top.size else 4.0)
        grid = np.concatenate([[0.0], np.geomspace(1e-2, nmax, BB_GRID - 1)])
    L, D = K.cell_tables(w, offsets, np.where(good, S, 0.0), grid)
    CL = np.vstack([np.zeros(grid.size), np.cumsum(L, axis=0)])
    CD = np.vstack([np.zeros(grid.size), np.cumsum(D, axis=0)])
    return K.bayesian_blocks_dp(CL, CD, grid, float(ncp_prior))


def fit_cells_reference(w, offsets, S):
    """numpy/scipy reference of :func:`~fermixr.estimators._wtlike_kernels.fit_cells` (bracketing with brentq)."""
    from scipy.optimize import brentq, minimize_scalar

    out = np.full((S.size, 6), np.nan)
    for c in range(S.size):
        ww = w[offsets[c]:offsets[c + 1]]
        s = S[c]
        if not s > 0:
            continue

        def ll(n):
            return float(np.sum(np.log1p(ww * (n - 1.0))) - n * s)

        top = max(ww.size / s, 1e-9)
        r = minimize_scalar(lambda n: -ll(n), bounds=(0.0, top), method="bounded",
                            options={"xatol": 1e-12})
        nhat = float(r.x)
        if ll(0.0) >= ll(nhat):
            nhat = 0.0
        lmax, l0 = ll(nhat), ll(0.0)

        def up(dl):
            hi = nhat + max(nhat, 1.0 / s)
            while ll(hi) > lmax - dl:
                hi = nhat + 2 * (hi - nhat)
            return brentq(lambda n: ll(n) - (lmax - dl), nhat, hi, xtol=1e-12)

        lo = 0.0 if l0 >= lmax - 0.5 else brentq(lambda n: ll(n) - (lmax - 0.5), 0.0,
                                                   nhat, xtol=1e-12)
        out[c] = (nhat, nhat - lo, up(0.5) - nhat, up(K.UL95_DLOGLIKE), max(2 * (lmax - l0), 0),
                  lmax)
    return out


# -------------------------------------------------------------------------- the curve ---
def _cell_index(times, cells):
    """offsets (ncell + 1,) into the time-sorted photons, and the photons in cells."""
    lo = np.searchsorted(times, cells[:, 0], side="left")
    hi = np.searchsorted(times, cells[:, 1], side="left")
    return lo, hi


def weighted_lightcurve(state: AnalysisState, name: str, events, ft2_files, gti_start,
                        gti_stop, *, irf_sets, zmax=None, binsz: float | None = 86400.0,
                        nbins: int | None = None, time_bins=None, interpolate: bool = True,
                        bayesian_blocks_prior: float | None = None, blocks: bool = False,
                        p0: float = 0.05, psf_containment: bool = True,
                        mjdref: float | None = None,
                        timing: dict | None = None):
    """The weighted-photon light curve of ``name`` as a ``wtlike`` Dataset (see the module
    doc and ``schemas/products/wtlike.schema.json``).

    Cells: ``time_bins`` edges, else ``nbins`` equal cells, else cells of ``binsz`` s,
    over the GTIs' span (as the lightcurve's bins).  ``blocks`` adds the Bayesian-blocks
    partition with prior ``bayesian_blocks_prior`` (default :func:`default_ncp_prior` of
    the number of cells at ``p0``).  ``timing`` (a dict) receives the seconds of weights,
    exposure and cells (and blocks), wall and (cpu_*) process CPU time."""
    import xarray as xr

    from ..conventions import FERMI_MJDREF
    from .lightcurve import time_bins as make_bins

    src = _source(state, name)
    if ft2_files is None or (isinstance(ft2_files, (list, tuple)) and not ft2_files):
        raise InputFileError("weighted_lightcurve: no spacecraft (FT2) file; the cells' "
                             "exposure comes from its rows: give data.scfile")
    gs, ge = _merge(gti_start, gti_stop)
    if gs.size == 0:
        raise EstimatorError("weighted_lightcurve: no good time interval")
    cells = make_bins(float(gs[0]), float(ge[-1]), binsz=binsz, nbins=nbins,
                      time_bins=time_bins)
    check_cells_in_ft2(cells, ft2_span(ft2_files))
    if len(irf_sets) != len(state.components):
        raise EstimatorError(f"weighted_lightcurve: {len(irf_sets)} IRF sets for "
                             f"{len(state.components)} components")
    timing = {} if timing is None else timing
    t0, c0 = time.perf_counter(), time.process_time()
    per_comp = photon_weights(state, src.name, events, interpolate=interpolate)
    times = np.concatenate([p["time"] for p in per_comp])
    w = np.concatenate([p["weight"] for p in per_comp])
    order = np.argsort(times, kind="stable")
    times, w = times[order], np.ascontiguousarray(w[order])
    t1, c1 = time.perf_counter(), time.process_time()
    rows = source_exposure(state, src.name, ft2_files, gs, ge, irf_sets=irf_sets, zmax=zmax,
                           containment=psf_containment)
    S = rows.in_cells(cells[:, 0], cells[:, 1])
    t2, c2 = time.perf_counter(), time.process_time()
    lo, hi = _cell_index(times, cells)
    # cells may leave photons out (gaps between explicit bins): pack each cell's photons
    if np.all(lo[1:] == hi[:-1]):
        wc = w
        offsets = np.append(lo, hi[-1]).astype(np.int64)
        offsets -= offsets[0]
        wc = np.ascontiguousarray(w[lo[0]:hi[-1]])
    else:
        wc = np.ascontiguousarray(np.concatenate([w[a:b] for a, b in zip(lo, hi)]))
        offsets = np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int64)
    fits = K.fit_cells(wc, offsets, np.ascontiguousarray(S))
    t3, c3 = time.perf_counter(), time.process_time()
    sm = state.spectral(src)
    emin, emax = state.energy_range
    pvals = src.spectral_values()
    flux0 = float(sm.flux(emin, emax, pvals))
    eflux0 = float(sm.eflux(emin, emax, pvals))
    npred = float(rows.counts.sum())
    n = fits[:, 0]
    err_lo, err_hi = fits[:, 1], fits[:, 2]
    err = 0.5 * (err_lo + err_hi)
    nph = (hi - lo).astype(np.int64)
    sumw = np.add.reduceat(wc, offsets[:-1]) if wc.size else np.zeros(len(cells))
    sumw = np.where(nph > 0, sumw, 0.0)
    mref = FERMI_MJDREF if mjdref is None else float(mjdref)
    tmid = 0.5 * (cells[:, 0] + cells[:, 1])
    status = np.where(~(S > 0), "no_exposure", "ok")
    data = {
        "tmin": ("time", cells[:, 0], {"units": "s"}),
        "tmax": ("time", cells[:, 1], {"units": "s"}),
        "n_photons": ("time", nph),
        "sum_weights": ("time", sumw),
        "npred": ("time", S, {"description": "source counts expected at the fitted flux"}),
        "norm": ("time", n),
        "norm_err": ("time", err),
        "norm_err_lo": ("time", err_lo),
        "norm_err_hi": ("time", err_hi),
        "norm_ul95": ("time", fits[:, 3]),
        "ts": ("time", fits[:, 4]),
        "loglike": ("time", fits[:, 5]),
        "status": ("time", status.astype(str)),
    }
    for fam, ref, unit in (("flux", flux0, "ph cm-2 s-1"), ("eflux", eflux0, "MeV cm-2 s-1")):
        data[fam] = ("time", n * ref, {"units": unit})
        data[f"{fam}_err"] = ("time", err * ref, {"units": unit})
        data[f"{fam}_err_lo"] = ("time", err_lo * ref, {"units": unit})
        data[f"{fam}_err_hi"] = ("time", err_hi * ref, {"units": unit})
        data[f"{fam}_ul95"] = ("time", fits[:, 3] * ref, {"units": unit})
    coords = {"time": ("time", tmid, {"units": "s"}),
              "mjd": ("time", mref + tmid / 86400.0, {"units": "d"})}
    attrs = {"fermixr_product": "wtlike", "name": src.name, "method": "kerr2019",
             "emin": float(emin), "emax": float(emax), "flux_ref": flux0, "eflux_ref": eflux0,
             "npred_model": npred, "sum_weights_total": float(w.sum()),
             "n_photons_total": int(w.size), "MJDREF": mref,
             "weights": "model ratio cube interpolated in log E and position" if interpolate
             else "model ratio of the photon's bin and pixel",
             "ncells": int(len(cells)), "psf_containment": int(bool(psf_containment))}
    tb = 0.0
    if blocks:
        prior = (default_ncp_prior(len(cells), p0) if bayesian_blocks_prior is None
                 else float(bayesian_blocks_prior))
        tb0 = time.perf_counter()
        starts = bayesian_blocks(wc, offsets, S, prior)
        tb = time.perf_counter() - tb0
        ends = np.append(starts[1:], len(cells))
        bfit = np.empty((starts.size, 6))
        bS = np.empty(starts.size)
        for k, (a, b) in enumerate(zip(starts, ends)):
            bS[k] = S[a:b].sum()
            seg = np.ascontiguousarray(wc[offsets[a]:offsets[b]])
            bfit[k] = K.fit_cells(seg, np.array([0, seg.size], dtype=np.int64),
                                  np.array([bS[k]]))[0]
        block_id = np.zeros(len(cells), dtype=np.int64)
        for k, (a, b) in enumerate(zip(starts, ends)):
            block_id[a:b] = k
        data["block_index"] = ("time", block_id)
        data["block_tmin"] = ("block", cells[starts, 0], {"units": "s"})
        data["block_tmax"] = ("block", cells[ends - 1, 1], {"units": "s"})
        data["block_norm"] = ("block", bfit[:, 0])
        data["block_norm_err_lo"] = ("block", bfit[:, 1])
        data["block_norm_err_hi"] = ("block", bfit[:, 2])
        data["block_flux"] = ("block", bfit[:, 0] * flux0, {"units": "ph cm-2 s-1"})
        data["block_flux_err"] = ("block", 0.5 * (bfit[:, 1] + bfit[:, 2]) * flux0,
                                  {"units": "ph cm-2 s-1"})
        data["block_ts"] = ("block", bfit[:, 4])
        attrs["ncp_prior"] = prior
        attrs["nblocks"] = int(starts.size)
    timing.update(weights=t1 - t0, exposure=t2 - t1, cells=t3 - t2, blocks=tb,
                  cpu_weights=c1 - c0, cpu_exposure=c2 - c1, cpu_cells=c3 - c2)
    return xr.Dataset(data, coords=coords, attrs=attrs)
