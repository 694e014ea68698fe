"""Livetime cubes of many time bins in one pass over the spacecraft file, on a few sky pixels.

A light curve needs one livetime cube per time bin, but only on the HEALPix pixels its
exposure looks up (the pixels holding the counts map's pixel centres, with a margin).
:func:`compute_ltcube` per bin reads the whole FT2 file for every bin and fills the whole
sky; :func:`ltcube_bins` reads the FT2 rows once, hands each bin the rows that overlap it
with the bin's GTIs (the selection's GTIs cut to the bin) and fills only the pixels of a
cap around the region, with the same kernel and the same per-row arithmetic as
:func:`compute_ltcube` (so each bin's pixels are those of ``compute_ltcube`` over the bin's
GTIs with ``region=``: the sums run over the same rows in the same order).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError, SelectionError
from ..io.ft2 import FT2_LTCUBE_COLUMNS, iter_ft2_chunks
from ..io.ltcube import nbins_from_dcostheta, nside_from_binsz
from ..select.gti import check_ft2_coverage
from .ltcube import _DEG, _fill, _merge_gti, _region_arcs, _unit, prepare_rows, ring_geometry

__all__ = ["ltcube_bins", "cap_pixels"]


def cap_pixels(nside: int, ra: float, dec: float, radius: float,
               ordering: str = "NESTED") -> np.ndarray:
    """The HEALPix pixels (``ordering``, celestial) whose centre lies within ``radius``
    deg of (``ra``, ``dec``): the pixels :func:`ltcube_bins` fills for that cap."""
    import healpy as hp

    geom = ring_geometry(int(nside), "CEL")
    _, _, mask = _region_arcs(geom, (ra, dec, radius))
    ring = np.flatnonzero(mask)
    if ordering.upper() == "NESTED":
        return np.sort(hp.ring2nest(int(nside), ring)).astype(np.int64)
    return ring.astype(np.int64)


def ltcube_bins(ft2, gti_start, gti_stop, bins, region, *, zmax: float = 180.0,
                binsz: float = 1.0, nside: int | None = None, dcostheta: float = 0.025,
                ordering: str = "NESTED", chunk_rows: int = 250_000, progress=None,
                ft2_tolerance: float = 1.0) -> dict:
    """Livetime per time bin on the pixels of a cap, from one pass over ``ft2``.

    ``bins``: (n, 2) [tmin, tmax] MET, increasing and not overlapping; ``gti_start`` /
    ``gti_stop``: the selection's GTIs (each bin uses their intersection with it; a bin
    without GTIs gets zeros); ``region`` = (ra, dec, radius) deg, celestial: the pixels
    whose centre is within it are computed.  Returns ``pix`` (the pixels, ``ordering``),
    ``exposure`` and ``weighted_exposure`` (n_bins, n_pix, n_costheta) in s, ``nside``,
    ``nbins_costheta``, ``ft2_rows_used`` (rows that added livetime to some bin).
    ``progress(done_bins, n_bins)`` after each bin.  The GTIs within the bins must be
    covered by FT2 rows, as :func:`compute_ltcube` requires."""
    import healpy as hp

    bins = np.asarray(bins, dtype=np.float64).reshape(-1, 2)
    if bins.size and (np.any(bins[:, 1] <= bins[:, 0]) or np.any(bins[1:, 0] < bins[:-1, 1])):
        raise SelectionError("ltcube_bins: the bins must be increasing, non-empty and not "
                             "overlap")
    zmax = float(zmax)
    if not (0.0 < zmax <= 180.0):
        raise SelectionError(f"zmax must be in (0, 180] deg, got {zmax}")
    nside = int(nside) if nside is not None else nside_from_binsz(binsz)
    ncos = nbins_from_dcostheta(dcostheta)
    gs, ge = _merge_gti(gti_start, gti_stop)
    geom = ring_geometry(nside, "CEL")
    garr = geom.kernel_arrays()
    ra, dec, radius = (float(v) for v in region)
    reg_lo, reg_cnt, mask = _region_arcs(geom, (ra, dec, radius))
    ring_pix = np.flatnonzero(mask)
    # every pixel the kernel may write (rings it covers whole, arcs), zeroed between bins
    touched = np.concatenate([
        geom.ring_first[r] + (reg_lo[r] + np.arange(reg_cnt[r])) % geom.ring_npix[r]
        for r in np.flatnonzero(reg_cnt)]) if reg_cnt.any() else np.zeros(0, np.int64)
    if ordering.upper() == "NESTED":
        pix = hp.ring2nest(nside, ring_pix).astype(np.int64)
        order = np.argsort(pix)
        pix, ring_pix = pix[order], ring_pix[order]
    elif ordering.upper() == "RING":
        pix = ring_pix.astype(np.int64)
    else:
        raise GeometryError(f"ordering must be 'NESTED' or 'RING', got {ordering!r}")
    region_vec = np.array(_unit(ra, dec))
    kw = dict(cosmin=0.0, nbins=ncos, coszmax=math.cos(zmax * _DEG), use_zenith=zmax < 180.0,
              phibins=0, region_vec=region_vec, region_radius=radius, zmax=zmax)
    n = bins.shape[0]
    lt = np.zeros((n, pix.size, ncos))
    wlt = np.zeros((n, pix.size, ncos))
    buf = np.zeros((geom.npix, ncos, 2))
    # the bins' GTIs
    bgti = []
    for a, z in bins:
        s = np.maximum(gs, a)
        e = np.minimum(ge, z)
        keep = e > s
        bgti.append((s[keep], e[keep]))
    todo = [b for b in range(n) if bgti[b][0].size]
    for b in range(n):
        if not bgti[b][0].size and progress is not None:
            progress(b + 1, n)
    if not todo:
        return dict(pix=pix, exposure=lt, weighted_exposure=wlt, nside=nside,
                    nbins_costheta=ncos, ft2_rows_used=0)
    t_lo = min(float(bgti[b][0][0]) for b in todo)
    t_hi = max(float(bgti[b][1][-1]) for b in todo)
    stats: dict = {"coverage": []}
    carry: dict | None = None
    nused = 0
    k = 0                           # next bin of ``todo`` to fill

    def fill(b, rows_all):
        nonlocal nused
        s, e = bgti[b]
        start, stop = rows_all["START"], rows_all["STOP"]
        i0 = int(np.searchsorted(stop, s[0], side="right"))
        i1 = int(np.searchsorted(start, e[-1], side="left"))
        sub = {c: v[i0:i1] for c, v in rows_all.items()}
        rows = prepare_rows(sub, s, e, source="FT2 rows")
        nused += rows["dt"].size
        _fill(buf, garr, reg_lo, reg_cnt, True, rows, parallel=False, **kw)
        lt[b] = buf[ring_pix, :, 0]
        wlt[b] = buf[ring_pix, :, 1]
        buf[touched] = 0.0
        if progress is not None:
            progress(b + 1, n)

    chunks = iter_ft2_chunks(ft2, list(FT2_LTCUBE_COLUMNS), chunk_rows=chunk_rows,
                             tmin=t_lo, tmax=t_hi, stats=stats)
    for chunk in chunks:
        chunk = {c: np.asarray(chunk[c]) for c in FT2_LTCUBE_COLUMNS}
        if carry is not None:
            chunk = {c: np.concatenate([carry[c], chunk[c]]) for c in chunk}
        if np.any(np.diff(chunk["START"]) < 0):
            raise SelectionError("ltcube_bins: the FT2 rows are not in time order")
        last_start = float(chunk["START"][-1]) if chunk["START"].size else -np.inf
        # bins whose every row has been read: a later row starts at or after their end
        while k < len(todo) and last_start >= bgti[todo[k]][1][-1]:
            fill(todo[k], chunk)
            k += 1
        # keep the rows that may still overlap the next bins
        if k < len(todo):
            keep_from = int(np.searchsorted(chunk["STOP"], bgti[todo[k]][0][0], side="right"))
            carry = {c: v[keep_from:] for c, v in chunk.items()}
        else:
            carry = None
    while k < len(todo):
        fill(todo[k], carry if carry is not None else
             {c: np.zeros(0) for c in FT2_LTCUBE_COLUMNS})
        k += 1
    cov = stats["coverage"]
    cs = np.concatenate([c[0] for c in cov]) if cov else np.zeros(0)
    ce = np.concatenate([c[1] for c in cov]) if cov else np.zeros(0)
    allg = np.concatenate([bgti[b][0] for b in todo]), np.concatenate([bgti[b][1] for b in todo])
    check_ft2_coverage(allg[0], allg[1], cs, ce, source=str(ft2), tol=ft2_tolerance)
    return dict(pix=pix, exposure=lt, weighted_exposure=wlt, nside=nside,
                nbins_costheta=ncos, ft2_rows_used=int(nused))
