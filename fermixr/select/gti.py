"""Good time intervals: interval algebra and gtmktime.

Intervals are sorted, disjoint (START, STOP) arrays in MET seconds.  :func:`make_gti`
reproduces gtmktime: the FT2 rows passing the filter (and the ROI-based zenith cut with
``roicut``) become intervals, a row joining the previous one when its START equals that
one's STOP exactly; rows are taken from the first one ending after the event file's
TSTART up to the last one starting before its TSTOP; the result is intersected with the
event file's GTIs and with [tmin, tmax] (gtselect's time cut).

GTIs must be covered by FT2 rows (a row covers [START, STOP]): livetime exists only where
the spacecraft file has rows, so a GTI outside them would enter the counts without
exposure.  :func:`uncovered_intervals` finds such time, :func:`check_ft2_coverage` refuses
it naming the intervals, and ``make_gti(..., trim_to_ft2=True)`` cuts the GTIs to the rows
instead, as gtmktime does (it makes GTIs from FT2 rows only).
"""

from __future__ import annotations

import numpy as np

from ..conventions import ATTR_MJDREF, ATTR_TSTART, ATTR_TSTOP, FERMI_MJDREF
from ..errors import SelectionError
from ..io.gti import gti_dataset, normalize_intervals
from .filter import FilterExpression, in_intervals

__all__ = [
    "normalize_intervals", "union", "intersect", "clip", "from_mask", "in_gti", "ontime",
    "make_gti", "make_gti_dataset", "roi_zenith_mask", "ft2_coverage", "uncovered_intervals",
    "check_ft2_coverage", "check_ft2_files_cover", "FT2_COVERAGE_TOLERANCE",
]

#: uncovered pieces of a GTI up to this long [s] are not an error: rounding of START/STOP
#: between files and tools, and the sub-second edges between a GTI and the FT2 row it
#: starts in (the Crab day's GTIs are covered to the last second)
FT2_COVERAGE_TOLERANCE = 1.0


def union(start1, stop1, start2, stop2):
    """Union of two interval lists (sorted, disjoint, touching intervals merged)."""
    return normalize_intervals(np.concatenate([np.asarray(start1, float), np.asarray(start2, float)]),
                               np.concatenate([np.asarray(stop1, float), np.asarray(stop2, float)]))


def intersect(start1, stop1, start2, stop2):
    """Intersection of two interval lists; empty pieces (STOP <= START) are dropped."""
    s1, e1 = normalize_intervals(start1, stop1)
    s2, e2 = normalize_intervals(start2, stop2)
    out_s, out_e = [], []
    i = j = 0
    while i < s1.size and j < s2.size:
        lo = max(s1[i], s2[j])
        hi = min(e1[i], e2[j])
        if hi > lo:
            out_s.append(lo)
            out_e.append(hi)
        if e1[i] < e2[j]:
            i += 1
        else:
            j += 1
    return np.array(out_s, dtype=np.float64), np.array(out_e, dtype=np.float64)


def clip(start, stop, tmin=None, tmax=None):
    """Intervals cut to [tmin, tmax] (None: open end)."""
    lo = -np.inf if tmin is None else float(tmin)
    hi = np.inf if tmax is None else float(tmax)
    return intersect(start, stop, [lo], [hi])


def from_mask(start, stop, mask, tmin=None, tmax=None):
    """gtmktime's consolidation of the good FT2 rows: the first good row ending after
    ``tmin``, then every good row starting no later than ``tmax``; a row whose START equals
    the previous interval's STOP extends it, any other row opens a new interval."""
    s = np.asarray(start, dtype=np.float64).reshape(-1)
    e = np.asarray(stop, dtype=np.float64).reshape(-1)
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if not (s.shape == e.shape == m.shape):
        raise SelectionError(
            f"GTI from rows: START, STOP and mask differ in length ({s.size}, {e.size}, {m.size})"
        )
    s, e = s[m], e[m]
    if tmin is not None:
        first = np.flatnonzero(e > float(tmin))
        if first.size == 0:
            return np.empty(0), np.empty(0)
        s, e = s[first[0]:], e[first[0]:]
    if tmax is not None and s.size:
        # the first row is always kept (as gtmktime does); later rows stop after tmax
        late = np.flatnonzero(s[1:] > float(tmax))
        if late.size:
            s, e = s[:late[0] + 1], e[:late[0] + 1]
    if s.size == 0:
        return s.copy(), e.copy()
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    new[1:] = s[1:] != e[:-1]
    starts = s[new]
    ends_idx = np.append(np.flatnonzero(new)[1:] - 1, s.size - 1)
    stops = e[ends_idx]
    return starts.copy(), stops.copy()


def in_gti(t, start, stop) -> np.ndarray:
    """True where ``t`` lies in a GTI (both ends closed, as CFITSIO's gtifilter)."""
    s, e = normalize_intervals(start, stop)
    return in_intervals(np.asarray(t, dtype=np.float64), s, e)


def ontime(start, stop) -> float:
    """Sum of interval lengths [s]."""
    s, e = normalize_intervals(start, stop)
    return float(np.sum(e - s))


def roi_zenith_mask(ft2, zmax, roi_center, roi_radius) -> np.ndarray:
    """gtmktime ``roicut=yes``: FT2 rows where the ROI lies within ``zmax`` of the zenith,
    ``angsep(RA_ZENITH, DEC_ZENITH, ra, dec) < zmax - radius``."""
    from ..geom.frames import angular_separation

    ra_z = _column(ft2, "RA_ZENITH")
    dec_z = _column(ft2, "DEC_ZENITH")
    ra, dec = (float(v) for v in roi_center)
    sep = angular_separation(ra_z, dec_z, ra, dec)
    return sep < float(zmax) - float(roi_radius)


def ft2_coverage(ft2):
    """The time covered by the rows of an FT2 table (a mapping with START and STOP), as
    merged intervals; rows with a non-finite START or STOP cover nothing."""
    s, e = _column(ft2, "START"), _column(ft2, "STOP")
    ok = np.isfinite(s) & np.isfinite(e)
    return normalize_intervals(s[ok], e[ok])


def uncovered_intervals(gti_start, gti_stop, cov_start, cov_stop, *,
                        tol: float = FT2_COVERAGE_TOLERANCE):
    """Pieces of the GTIs outside the covered intervals, each longer than ``tol`` seconds,
    as (start, stop) arrays."""
    gs, ge = normalize_intervals(gti_start, gti_stop)
    cs, ce = normalize_intervals(cov_start, cov_stop)
    # the complement of the coverage
    hs = np.concatenate([[-np.inf], ce])
    he = np.concatenate([cs, [np.inf]])
    us, ue = intersect(gs, ge, hs, he)
    keep = (ue - us) > float(tol)
    return us[keep], ue[keep]


def _fmt_intervals(s, e, nmax=5) -> str:
    parts = [f"MET {a:.1f}-{b:.1f} ({b - a:.1f} s)" for a, b in zip(s[:nmax], e[:nmax])]
    if s.size > nmax:
        parts.append(f"and {s.size - nmax} more")
    return ", ".join(parts)


def check_ft2_coverage(gti_start, gti_stop, cov_start, cov_stop, *, source: str = "",
                       tol: float = FT2_COVERAGE_TOLERANCE) -> None:
    """Raise :class:`SelectionError` when the GTIs hold time (pieces longer than ``tol`` s)
    not covered by FT2 rows (``cov_start``/``cov_stop``: :func:`ft2_coverage`), naming the
    uncovered intervals and their total duration."""
    us, ue = uncovered_intervals(gti_start, gti_stop, cov_start, cov_stop, tol=tol)
    if us.size == 0:
        return
    gs, ge = normalize_intervals(gti_start, gti_stop)
    total = float(np.sum(ue - us))
    ontime = float(np.sum(ge - gs))
    cs, ce = normalize_intervals(cov_start, cov_stop)
    span = (f"its rows cover MET {cs[0]:.1f}-{ce[-1]:.1f}" if cs.size else "it has no rows")
    raise SelectionError(
        f"spacecraft data{' ' + source if source else ''} does not cover {total:.1f} s of the {ontime:.1f} s of good "
        f"time ({span}): uncovered {_fmt_intervals(us, ue)}; the livetime there would be "
        "missing. Give the FT2 files for that time, or set selection.trim_to_ft2: true to cut "
        "the GTIs to the FT2 rows as gtmktime does"
    )


def check_ft2_files_cover(gti_start, gti_stop, ft2_files, *,
                          tol: float = FT2_COVERAGE_TOLERANCE) -> None:
    """:func:`check_ft2_coverage` against FT2 file(s) (path, list, ``@list``), reading only
    their START and STOP columns (for ``fermixr validate``: no livetime is computed)."""
    from ..io.ft2 import iter_ft2_chunks

    gs, ge = normalize_intervals(gti_start, gti_stop)
    if gs.size == 0:
        return
    stats: dict = {}
    for _ in iter_ft2_chunks(ft2_files, ["START", "STOP"], tmin=gs[0], tmax=ge[-1], stats=stats):
        pass
    cov = stats.get("coverage") or []
    cs = np.concatenate([c[0] for c in cov]) if cov else np.zeros(0)
    ce = np.concatenate([c[1] for c in cov]) if cov else np.zeros(0)
    check_ft2_coverage(gs, ge, cs, ce, source=", ".join(stats.get("files", [])), tol=tol)


def make_gti(event_gti, ft2=None, filter=None, roicut=False, zmax=None, roi_center=None,
             roi_radius=None, tmin=None, tmax=None, trim_to_ft2=False,
             ft2_tolerance=FT2_COVERAGE_TOLERANCE):
    """Good time intervals as gtmktime (+ gtselect's time cut) makes them.

    ``event_gti``: the event file's GTIs (the ``gti`` dataset of :func:`read_ft1`, or a
    (start, stop) pair; TSTART/TSTOP from its attrs, else its extent).  ``ft2``: a mapping of
    FT2 columns (START, STOP, the filter's columns, RA_ZENITH/DEC_ZENITH for ``roicut``).
    ``filter``: gtmktime filter string.  ``roicut``: apply the ROI-based zenith cut with
    ``zmax``, ``roi_center`` (ra, dec) and ``roi_radius`` [deg] (no cut when zmax >= 180).
    When ``ft2`` is given, the resulting GTIs must be covered by its rows (pieces up to
    ``ft2_tolerance`` s excepted): otherwise :class:`SelectionError` names the uncovered
    time, unless ``trim_to_ft2`` cuts the GTIs to the rows.
    Returns (START, STOP) float64 arrays.
    """
    ev_s, ev_e, t0, t1 = _event_gti(event_gti)
    need_ft2 = bool(filter) or bool(roicut and zmax is not None and float(zmax) < 180.0)
    if roicut and (zmax is None or roi_center is None or roi_radius is None
                   or any(v is None for v in roi_center)):
        raise SelectionError(
            "roicut=yes needs zmax, roi_center (ra, dec) and roi_radius; got "
            f"zmax={zmax!r}, roi_center={roi_center!r}, roi_radius={roi_radius!r}"
        )
    if need_ft2:
        if ft2 is None:
            raise SelectionError(
                f"a spacecraft (FT2) table is needed for filter={filter!r}, roicut={roicut!r}"
            )
        fs, fe = _column(ft2, "START"), _column(ft2, "STOP")
        mask = np.ones(fs.shape, dtype=bool)
        if filter:
            mask &= FilterExpression(str(filter)).evaluate(ft2, nrows=fs.size)
        if roicut and float(zmax) < 180.0:
            mask &= roi_zenith_mask(ft2, zmax, roi_center, roi_radius)
        if not mask.any():
            raise SelectionError(
                f"zero FT2 rows pass the filter {filter!r}"
                + (f" and the ROI zenith cut (zmax={zmax}, radius={roi_radius})" if roicut else "")
            )
        gs, ge = from_mask(fs, fe, mask, tmin=t0, tmax=t1)
        s, e = intersect(gs, ge, ev_s, ev_e)
    else:
        s, e = normalize_intervals(ev_s, ev_e)
    if tmin is not None or tmax is not None:
        s, e = clip(s, e, tmin, tmax)
    if ft2 is not None:
        cs, ce = ft2_coverage(ft2)
        if trim_to_ft2:
            s, e = intersect(s, e, cs, ce)
        else:
            check_ft2_coverage(s, e, cs, ce, tol=ft2_tolerance)
    return s, e


def make_gti_dataset(event_gti, ft2=None, filter=None, roicut=False, zmax=None, roi_center=None,
                     roi_radius=None, tmin=None, tmax=None, trim_to_ft2=False,
                     ft2_tolerance=FT2_COVERAGE_TOLERANCE):
    """:func:`make_gti` as the ``gti`` product; attrs record the filter and cuts (and, with
    ``trim_to_ft2``, the time cut away: ``trimmed_to_ft2_s``)."""
    s, e = make_gti(event_gti, ft2, filter=filter, roicut=roicut, zmax=zmax,
                    roi_center=roi_center, roi_radius=roi_radius, tmin=tmin, tmax=tmax,
                    trim_to_ft2=trim_to_ft2, ft2_tolerance=ft2_tolerance)
    _, _, t0, t1 = _event_gti(event_gti)
    mjdref = FERMI_MJDREF
    attrs = getattr(event_gti, "attrs", None) or {}
    if ATTR_MJDREF in attrs:
        mjdref = float(attrs[ATTR_MJDREF])
    if tmin is not None:
        t0 = max(t0, float(tmin))
    if tmax is not None:
        t1 = min(t1, float(tmax))
    extra = {"filter": str(filter) if filter else "", "roicut": bool(roicut)}
    if roicut:
        extra.update(zmax=float(zmax), roi_center=[float(v) for v in roi_center],
                     roi_radius=float(roi_radius))
    if tmin is not None:
        extra["tmin"] = float(tmin)
    if tmax is not None:
        extra["tmax"] = float(tmax)
    if trim_to_ft2 and ft2 is not None:
        before = make_gti(event_gti, None if not (filter or roicut) else ft2, filter=filter,
                          roicut=roicut, zmax=zmax, roi_center=roi_center,
                          roi_radius=roi_radius, tmin=tmin, tmax=tmax, trim_to_ft2=True)
        extra["trim_to_ft2"] = True
        extra["trimmed_to_ft2_s"] = float(np.sum(before[1] - before[0]) - np.sum(e - s))
    return gti_dataset(s, e, tstart=t0, tstop=t1, mjdref=mjdref, attrs=extra, normalize=False)


# --- helpers -----------------------------------------------------------------------------
def _event_gti(event_gti):
    if hasattr(event_gti, "data_vars") or hasattr(event_gti, "attrs"):
        s = np.asarray(event_gti["START"].values if hasattr(event_gti["START"], "values")
                       else event_gti["START"], dtype=np.float64)
        e = np.asarray(event_gti["STOP"].values if hasattr(event_gti["STOP"], "values")
                       else event_gti["STOP"], dtype=np.float64)
        attrs = getattr(event_gti, "attrs", {}) or {}
        t0 = float(attrs.get(ATTR_TSTART, s.min() if s.size else 0.0))
        t1 = float(attrs.get(ATTR_TSTOP, e.max() if e.size else 0.0))
        return s, e, t0, t1
    if isinstance(event_gti, dict):
        s = np.asarray(event_gti["START"], dtype=np.float64)
        e = np.asarray(event_gti["STOP"], dtype=np.float64)
    else:
        try:
            s, e = (np.asarray(v, dtype=np.float64) for v in event_gti)
        except (TypeError, ValueError):
            raise SelectionError(
                f"event GTIs must be a gti dataset or a (start, stop) pair, got {type(event_gti).__name__}"
            ) from None
    return s, e, float(s.min()) if s.size else 0.0, float(e.max()) if e.size else 0.0


def _column(table, name):
    keys = {str(k).upper(): k for k in table.keys()}
    if name not in keys:
        raise SelectionError(
            f"spacecraft table has no column {name!r}; it has {sorted(keys)}"
        )
    v = table[keys[name]]
    return np.asarray(getattr(v, "values", v), dtype=np.float64)
