"""gtselect: event cuts with the Science Tools' conventions.

Boundaries are those of dataSubselector's ``RangeCut``: ``min < X <= max`` (both ends
closed when min == max), e.g. ``200 < ENERGY && ENERGY <= 20000``, ``tmin < TIME <= tmax``,
``zmin < ZENITH_ANGLE <= zmax`` (applied only when zmin > 0 or zmax < 180),
``phasemin < PULSE_PHASE <= phasemax`` (only when not 0..1).  The cone is
``angsep(RA, DEC, ra, dec) < radius`` (only when radius < 180).  ``evclass``/``evtype``
are bit tests ``(EVENT_CLASS & evclass) != 0`` for Pass 8; Pass 7 files take the bit
position (``1 << evclass``); Pass 6 and earlier files (scalar class) keep
``EVENT_CLASS >= evclass``.  ``convtype`` >= 0 keeps ``CONVERSION_TYPE == convtype``.
GTIs are closed at both ends (CFITSIO's ``gtifilter``).
"""

from __future__ import annotations

import math

import numpy as np

from ..conventions import ATTR_TSTART, ATTR_TSTOP, DIM_EVENT
from ..errors import SelectionError
from . import _kernels as K


def _num(name, v):
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise SelectionError(f"selection.{name} must be a number, got {v!r}") from None
    if math.isnan(f):
        raise SelectionError(f"selection.{name} is NaN")
    return f


def resolve_center(ra=None, dec=None, glon=None, glat=None, target=None):
    """(ra, dec) [deg] of the cone centre from Fermipy's options (``target`` as an
    (ra, dec) pair wins, then ra/dec, then glon/glat converted as Fermipy does); None
    when nothing is given."""
    if target is not None:
        if isinstance(target, str):
            raise SelectionError(
                f"selection.target {target!r}: resolve the source name to a position first "
                "(the model/catalog layer does it) and pass ra/dec"
            )
        if isinstance(target, dict):
            return _num("target.ra", target.get("ra")), _num("target.dec", target.get("dec"))
        try:
            t_ra, t_dec = target
        except (TypeError, ValueError):
            raise SelectionError(f"selection.target must be a name or (ra, dec), got {target!r}") from None
        return _num("target.ra", t_ra), _num("target.dec", t_dec)
    if ra is not None or dec is not None:
        if ra is None or dec is None:
            raise SelectionError(f"selection: give both ra and dec (got ra={ra!r}, dec={dec!r})")
        return _num("ra", ra), _num("dec", dec)
    if glon is not None or glat is not None:
        if glon is None or glat is None:
            raise SelectionError(f"selection: give both glon and glat (got glon={glon!r}, glat={glat!r})")
        from ..geom.frames import fermipy_gal_to_cel

        return fermipy_gal_to_cel(_num("glon", glon), _num("glat", glat))
    return None


def _range(lo, hi, default_lo=-np.inf, default_hi=np.inf, name=""):
    lo_v = default_lo if lo is None else lo
    hi_v = default_hi if hi is None else hi
    if lo_v > hi_v:
        raise SelectionError(f"selection: minimum {lo_v} is greater than the maximum {hi_v} for {name}")
    mode = K.RANGE_CLOSED if lo_v == hi_v else K.RANGE_HALF_OPEN
    return float(lo_v), float(hi_v), mode


def event_mask(events, *, emin=None, emax=None, logemin=None, logemax=None, tmin=None,
               tmax=None, ra=None, dec=None, glon=None, glat=None, target=None, radius=None,
               zmin=None, zmax=None, evclass=None, evtype=None, convtype=None, phasemin=None,
               phasemax=None, gti_start=None, gti_stop=None):
    """Boolean mask of the events passing gtselect's cuts, and the dict of applied cuts."""
    n = events.sizes.get(DIM_EVENT, 0) if hasattr(events, "sizes") else len(events["TIME"])
    attrs = getattr(events, "attrs", {}) or {}
    if emin is None and logemin is not None:
        emin = 10.0 ** float(logemin)
    if emax is None and logemax is not None:
        emax = 10.0 ** float(logemax)
    emin, emax, tmin, tmax = (_num(k, v) for k, v in
                              (("emin", emin), ("emax", emax), ("tmin", tmin), ("tmax", tmax)))
    zmin, zmax = _num("zmin", zmin), _num("zmax", zmax)
    phasemin, phasemax = _num("phasemin", phasemin), _num("phasemax", phasemax)
    radius = _num("radius", radius)

    applied: dict = {}
    lo = np.zeros(4)
    hi = np.zeros(4)
    mode = np.zeros(4, dtype=np.int64)

    def col(name, dtype=np.float64, required=True):
        if name in events:
            v = events[name]
            return np.ascontiguousarray(np.asarray(getattr(v, "values", v)), dtype=dtype)
        if required:
            raise SelectionError(
                f"events have no {name} column, needed for the requested cut; "
                f"columns: {sorted(map(str, events.keys()))}"
            )
        return np.empty(0, dtype=dtype)

    empty_f = np.empty(0, dtype=np.float64)
    empty_i = np.empty(0, dtype=np.int64)
    energy = time = zen = phase = ra_c = dec_c = empty_f
    ev_cls = ev_typ = conv = empty_i

    if emin is not None or emax is not None:
        lo[0], hi[0], mode[0] = _range(emin, emax, 0.0, np.inf, "ENERGY")
        energy = col("ENERGY")
        applied["emin"], applied["emax"] = float(lo[0]), float(hi[0])
    if tmin is not None or tmax is not None:
        lo[1], hi[1], mode[1] = _range(tmin, tmax, -np.inf, np.inf, "TIME")
        applied["tmin"], applied["tmax"] = float(lo[1]), float(hi[1])
    time = col("TIME")  # always read: its length is the event count
    z0 = 0.0 if zmin is None else zmin
    z1 = 180.0 if zmax is None else zmax
    if z0 > 0 or z1 < 180.0:
        lo[2], hi[2], mode[2] = _range(z0, z1, name="ZENITH_ANGLE")
        zen = col("ZENITH_ANGLE")
        applied["zmin"], applied["zmax"] = z0, z1
    p0 = 0.0 if phasemin is None else phasemin
    p1 = 1.0 if phasemax is None else phasemax
    if p0 != 0.0 or p1 != 1.0:
        lo[3], hi[3], mode[3] = _range(p0, p1, name="PULSE_PHASE")
        phase = col("PULSE_PHASE")
        applied["phasemin"], applied["phasemax"] = p0, p1

    cone = np.array([0.0, 0.0, -1.0])
    center = resolve_center(ra, dec, glon, glat, target)
    if radius is not None and radius < 180.0:
        if center is None:
            raise SelectionError(f"selection.radius={radius} needs the cone centre (ra/dec, glon/glat or target)")
        if radius < 0:
            raise SelectionError(f"selection.radius must be >= 0 deg, got {radius}")
        cone[:] = (center[0], center[1], radius)
        ra_c, dec_c = col("RA"), col("DEC")
        applied["ra"], applied["dec"], applied["radius"] = center[0], center[1], radius

    class_mode, class_value = K.CLASS_OFF, 0
    pass_ver = str(attrs.get("PASS_VER", "NONE") or "NONE").upper()
    if evclass is not None:
        ec = int(evclass)
        if ec != evclass or ec < 0:
            raise SelectionError(f"selection.evclass must be a non-negative integer, got {evclass!r}")
        kind = attrs.get("event_class_kind", "bitmask")
        if kind == "scalar":
            class_mode, class_value = K.CLASS_SCALAR, ec
        else:
            class_mode = K.CLASS_BITS
            class_value = (1 << ec) if pass_ver.startswith("P7") else ec
            if class_value == 0:
                raise SelectionError("selection.evclass=0 selects no event class bit")
        ev_cls = col("EVENT_CLASS", np.int64)
        applied["evclass"] = ec
    type_on, type_mask = 0, 0
    if evtype is not None:
        et = int(evtype)
        if et != evtype or et <= 0:
            raise SelectionError(f"selection.evtype must be a positive integer bit mask, got {evtype!r}")
        type_on, type_mask = 1, et
        ev_typ = col("EVENT_TYPE", np.int64)
        applied["evtype"] = et
    conv_value = -1
    if convtype is not None and int(convtype) >= 0:
        conv_value = int(convtype)
        conv = col("CONVERSION_TYPE", np.int64)
        applied["convtype"] = conv_value

    gti_on = 0
    gs = ge = empty_f
    if gti_start is not None or gti_stop is not None:
        if gti_start is None or gti_stop is None:
            raise SelectionError("selection: give both gti_start and gti_stop")
        from ..io.gti import normalize_intervals

        gs, ge = normalize_intervals(gti_start, gti_stop)
        gs, ge = np.ascontiguousarray(gs), np.ascontiguousarray(ge)
        gti_on = 1
        applied["gti"] = {"n": int(gs.size), "ontime": float(np.sum(ge - gs))}

    if time.size != n:
        raise SelectionError(f"events: TIME has {time.size} rows, the dataset {n}")
    mask = K.select_mask(energy, time, zen, phase, ra_c, dec_c, ev_cls, ev_typ, conv,
                         lo, hi, mode, cone, int(class_value), int(class_mode), int(type_mask),
                         int(type_on), int(conv_value), gs, ge, int(gti_on))
    return mask, applied


def select_events(events, *, emin=None, emax=None, logemin=None, logemax=None, tmin=None,
                  tmax=None, ra=None, dec=None, glon=None, glat=None, target=None,
                  radius=None, zmin=None, zmax=None, evclass=None, evtype=None, convtype=None,
                  phasemin=None, phasemax=None, gti_start=None, gti_stop=None,
                  allow_empty: bool = False):
    """Events passing gtselect's cuts (and inside the GTIs), a new ``events`` dataset.

    Options are Fermipy's ``selection`` spellings; None leaves a cut off.  ``attrs``
    record the cuts (``selection``; merged with earlier ones), the DSS keywords gtselect
    would write (``dss``) and TSTART/TSTOP narrowed to [tmin, tmax].  An empty result
    raises :class:`SelectionError` naming the cuts unless ``allow_empty``.
    """
    mask, applied = event_mask(
        events, emin=emin, emax=emax, logemin=logemin, logemax=logemax, tmin=tmin, tmax=tmax,
        ra=ra, dec=dec, glon=glon, glat=glat, target=target, radius=radius, zmin=zmin,
        zmax=zmax, evclass=evclass, evtype=evtype, convtype=convtype, phasemin=phasemin,
        phasemax=phasemax, gti_start=gti_start, gti_stop=gti_stop)
    n_in = int(mask.size)
    idx = np.flatnonzero(mask)
    if idx.size == 0 and not allow_empty:
        raise SelectionError(
            f"no event passes the selection {applied} (of {n_in} events in "
            f"{events.attrs.get('files', 'the input')})"
        )
    out = events.isel({DIM_EVENT: idx}) if idx.size != n_in else events.copy()
    attrs = dict(events.attrs)
    prev = dict(attrs.get("selection") or {})
    prev.update(applied)
    attrs["selection"] = prev
    attrs["n_events_in"] = n_in
    if "tmin" in applied and attrs.get(ATTR_TSTART) is not None:
        attrs[ATTR_TSTART] = max(float(attrs[ATTR_TSTART]), applied["tmin"])
    if "tmax" in applied and attrs.get(ATTR_TSTOP) is not None:
        attrs[ATTR_TSTOP] = min(float(attrs[ATTR_TSTOP]), applied["tmax"])
    attrs["dss"] = _update_dss(list(attrs.get("dss") or []), applied,
                               str(attrs.get("PASS_VER", "NONE")))
    out.attrs = attrs
    return out


# --- DSS keywords --------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return repr(float(x)).rstrip("0").rstrip(".") if float(x) != int(x) else str(int(x))


def _merge_range(dss, typ, unit, lo, hi):
    for d in dss:
        if d.get("type") == typ and ":" in d.get("value", ""):
            try:
                a, b = (float(v) for v in d["value"].split(":"))
            except ValueError:
                continue
            lo, hi = max(lo, a), min(hi, b)
            d["value"] = f"{_fmt(lo)}:{_fmt(hi)}"
            return
    dss.append({"type": typ, "unit": unit, "value": f"{_fmt(lo)}:{_fmt(hi)}"})


def _update_dss(dss, applied, pass_ver):
    dss = [dict(d) for d in dss]
    if "evclass" in applied:
        typ = f"BIT_MASK(EVENT_CLASS,{applied['evclass']},{pass_ver})"
        dss = [d for d in dss if not d.get("type", "").startswith("BIT_MASK(EVENT_CLASS")] + \
              [{"type": typ, "unit": "DIMENSIONLESS", "value": "1:1"}]
    if "evtype" in applied:
        typ = f"BIT_MASK(EVENT_TYPE,{applied['evtype']},{pass_ver})"
        dss = [d for d in dss if not d.get("type", "").startswith("BIT_MASK(EVENT_TYPE")] + \
              [{"type": typ, "unit": "DIMENSIONLESS", "value": "1:1"}]
    if "gti" in applied and not any(d.get("type") == "TIME" and d.get("value") == "TABLE" for d in dss):
        dss.append({"type": "TIME", "unit": "s", "value": "TABLE", "ref": ":GTI"})
    if "radius" in applied:
        val = f"CIRCLE({_fmt(applied['ra'])},{_fmt(applied['dec'])},{_fmt(applied['radius'])})"
        dss = [d for d in dss if d.get("type") != "POS(RA,DEC)"] + \
              [{"type": "POS(RA,DEC)", "unit": "deg", "value": val}]
    if "emin" in applied:
        _merge_range(dss, "ENERGY", "MeV", applied["emin"], applied["emax"])
    if "zmax" in applied:
        _merge_range(dss, "ZENITH_ANGLE", "deg", applied["zmin"], applied["zmax"])
    if "convtype" in applied:
        _merge_range(dss, "CONVERSION_TYPE", "dimensionless", applied["convtype"], applied["convtype"])
    if "phasemin" in applied:
        _merge_range(dss, "PULSE_PHASE", "dimensionless", applied["phasemin"], applied["phasemax"])
    return dss
