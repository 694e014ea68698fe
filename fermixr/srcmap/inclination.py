"""Per-bin maps of point and radial sources from the livetime at the source, by inclination.

A point source's map (:func:`fermixr.srcmap.build.source_map_array`) is its exposure
times the pixel integral of the exposure-weighted mean PSF
(:func:`fermixr.exposure.psftable.psf_table`).  Both depend on the livetime cube only
through the livetime distribution over inclination at the cube's pixel holding the
source: with ``lt_c`` / ``wlt_c`` the livetime / livetime-fraction-weighted livetime of
cos theta bin ``c`` there, ``f1(E)``, ``f2(E)`` the efficiency factors of the first
event type and ``A_t(E, c)`` the effective area of type ``t``,

    w_tc(E)    = A_t(E, c) (f1(E) lt_c + f2(E) wlt_c)
    exposure   = sum_tc w_tc                                     (exposure_at)
    psf(E, r)  = sum_tc w_tc PSF_t(r; E, c) / sum_tc w_tc I_tc(E)  (psf_table, renormalised)

where ``I_tc`` is the integral of ``PSF_t(.; E, c)`` over the sphere on psf_table's fine
grid (the trapezoid sum is linear, so the renormalisation's integral is the weighted
sum of the per-bin integrals).  The per-inclination tables ``PSF_t(r; E, c)`` at the
table's offsets and the ``I_tc`` do not depend on the position or on time: computed once
per (IRFs, event types, energies, cos theta grid) (:class:`InclinationPsf`, cached per
process), a bin's table is two contractions with that bin's livetime at the source.  The
map is then made by the same pixel integration as the source-map step
(:func:`~fermixr.srcmap.point.point_source_map`, for radial extended sources
:func:`~fermixr.srcmap.extended.extended_source_map`), so it equals the map the
source-map step makes from the bin's livetime cube up to rounding.  (The pixel
integration interpolates the table in log-log, which is not linear in the table: it is
applied to the bin's mixed table, not to each inclination's, which is why the pixel
integration stays per bin.)
"""

from __future__ import annotations

import numpy as np

from ..errors import GeometryError, ModelError
from ..exposure.psftable import _cumulative, _fine_grid, default_offsets

__all__ = ["InclinationPsf", "inclination_psf", "livetime_at", "bin_source_map"]


class InclinationPsf:
    """Per-inclination effective areas and PSF tables of an IRF set at true energies
    ``energies`` (MeV) and the livetime cube's cos theta evaluation points ``costheta``."""

    def __init__(self, irf, energies, costheta, *, offsets=None, efficiency: bool = True):
        e = np.atleast_1d(np.asarray(energies, dtype=np.float64)).ravel()
        cth = np.asarray(costheta, dtype=np.float64).ravel()
        off = default_offsets() if offsets is None else \
            np.asarray(offsets, dtype=np.float64).ravel()
        grid = np.union1d(_fine_grid(), off)
        idx = np.searchsorted(grid, off)
        self.energies, self.costheta, self.offsets = e, cth, off
        if efficiency:
            self.f1, self.f2 = (np.asarray(v, dtype=np.float64)
                                for v in irf.efficiency_factors(e))
        else:
            self.f1, self.f2 = np.ones_like(e), np.zeros_like(e)
        aeff, tab, integ = [], [], []
        for r in irf.responses.values():
            aeff.append(np.asarray(r.aeff.value(e[:, None], cth[None, :]), dtype=np.float64))
            p = np.asarray(r.psf.value(grid, e[:, None], cth[None, :]), dtype=np.float64)
            integ.append(_cumulative(grid, p)[..., -1])        # (nE, nc)
            tab.append(np.ascontiguousarray(p[..., idx]))      # (nE, nc, noff)
        self.aeff = np.stack(aeff)           # (nt, nE, nc)
        self.table = np.stack(tab)           # (nt, nE, nc, noff)
        self.integral = np.stack(integ)      # (nt, nE, nc)

    def weights(self, lt, wlt) -> np.ndarray:
        """w_tc(E) (nt, nE, nc) for the livetimes ``lt``, ``wlt`` (nc,) at a pixel."""
        lt = np.asarray(lt, dtype=np.float64).ravel()
        wlt = np.zeros_like(lt) if wlt is None else np.asarray(wlt, dtype=np.float64).ravel()
        if lt.size != self.costheta.size or wlt.size != lt.size:
            raise GeometryError(f"livetime at the source has {lt.size} cos theta bins, the "
                                f"inclination tables {self.costheta.size}")
        ltw = self.f1[:, None] * lt[None, :] + self.f2[:, None] * wlt[None, :]
        return self.aeff * ltw[None]

    def psf(self, lt, wlt) -> tuple[np.ndarray, np.ndarray]:
        """(exposure (nE,) cm2 s, psf (nE, noff) sr^-1) at a pixel with livetimes ``lt``,
        ``wlt``: psf_table's ``exposure`` and ``psf`` (normalised to 1 over the sphere)."""
        w = self.weights(lt, wlt)
        exposure = w.sum(axis=(0, 2))
        num = np.einsum("tec,teco->eo", w, self.table)
        total = np.einsum("tec,tec->e", w, self.integral)
        ok = (exposure > 0) & (total > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            psf = np.where(ok[:, None], num / np.where(ok, total, 1.0)[:, None], 0.0)
        return exposure, psf


_CACHE: dict = {}
_CACHE_SIZE = 8


def inclination_psf(irf, energies, costheta, *, efficiency: bool = True) -> InclinationPsf:
    """The :class:`InclinationPsf` of ``irf`` (an IRFSet), cached per process by the IRF
    set's identity (name, event types, CALDB), the energies and the cos theta points."""
    e = np.atleast_1d(np.asarray(energies, dtype=np.float64)).ravel()
    c = np.asarray(costheta, dtype=np.float64).ravel()
    key = (str(getattr(irf, "irfs", irf)), str(getattr(irf, "evtype", "")),
           str(getattr(irf, "caldb", "")), tuple(getattr(irf, "responses", {}) or ()),
           e.tobytes(), c.tobytes(), bool(efficiency))
    hit = _CACHE.get(key)
    if hit is None:
        hit = InclinationPsf(irf, e, c, efficiency=efficiency)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = hit
    return hit


def livetime_at(ltcube, ra: float, dec: float):
    """(cos theta points (nc,), lt (nc,), wlt (nc,) or None) of the livetime cube's pixel
    holding (``ra``, ``dec``) (deg, ICRS), as exposure_at and psf_table read them."""
    from ..irf.livetime import ltcube_arrays, ltcube_costheta, ltcube_pixel_rows

    arr = ltcube_arrays(ltcube)
    row = int(ltcube_pixel_rows(ltcube, np.array([float(ra)]), np.array([float(dec)]))[0])
    if row < 0:
        raise GeometryError(f"livetime cube has no pixel at (ra, dec) = ({ra}, {dec})")
    w = arr["weighted_exposure"]
    return (ltcube_costheta(ltcube, arr), np.asarray(arr["exposure"][row], dtype=np.float64),
            None if w is None else np.asarray(w[row], dtype=np.float64))


DECOMPOSABLE = ("PointSource", "RadialGaussian", "RadialDisk")


def bin_source_map(spatial: dict, geom, energies, ltcube, irf, *, rfactor=2,
                   oversample=2, name: str = "") -> np.ndarray:
    """The map (nE, *geom.shape) of a point or radial source from the livetime cube
    ``ltcube`` (e.g. one light-curve bin's), through the cached per-inclination tables;
    equal to :func:`fermixr.srcmap.build.source_map_array` on that cube."""
    from .extended import extended_source_map
    from .point import point_source_map

    kind = spatial["SpatialModel"]
    if kind not in DECOMPOSABLE:
        raise ModelError(f"source {name!r}: spatial model {kind!r} has no per-inclination "
                         f"map (only {', '.join(DECOMPOSABLE)})")
    pars = spatial.get("spatial_pars") or {}
    ra, dec = float(pars["RA"]), float(pars["DEC"])
    e = np.asarray(energies, dtype=np.float64)
    cth, lt, wlt = livetime_at(ltcube, ra, dec)
    tabs = inclination_psf(irf, e, cth)
    exposure, psf = tabs.psf(lt, wlt)
    if kind == "PointSource":
        return point_source_map(geom, e, ra, dec, exposure, tabs.offsets, psf,
                                rfactor=rfactor)
    size = pars["Sigma" if kind == "RadialGaussian" else "Radius"]
    return extended_source_map(geom, e, (kind, size), exposure, tabs.offsets, psf, ra=ra,
                               dec=dec, rfactor=rfactor, oversample=oversample)
