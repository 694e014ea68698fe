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
                  allow_empty: bool = False, irfs=None):
    """Events passing gtselect's cuts (and inside the GTIs), a new ``events`` dataset.

    Options are Fermipy's ``selection`` spellings; None leaves a cut off.  ``attrs``
    record the cuts (``selection``; merged with earlier ones), the DSS keywords gtselect
    would write (``dss``) and TSTART/TSTOP narrowed to [tmin, tmax].  An empty result
    raises :class:`SelectionError` naming the cuts unless ``allow_empty``.

    A selection wider than the event file's own cuts (its DSS keywords, kept in ``attrs``
    as ``file_cuts``) is refused: see :func:`check_selection_within`; ``irfs`` (the IRF
    name the events will be analysed with) warns when its class is not the events' one.
    """
    cuts = file_cuts(events)
    if cuts:
        e0 = emin if emin is not None else (10.0 ** float(logemin) if logemin is not None else None)
        e1 = emax if emax is not None else (10.0 ** float(logemax) if logemax is not None else None)
        center = resolve_center(ra, dec, glon, glat, target)
        check_selection_within(
            cuts, emin=e0, emax=e1, tmin=tmin, tmax=tmax,
            ra=None if center is None else center[0], dec=None if center is None else center[1],
            radius=radius, zmin=zmin, zmax=zmax, evclass=evclass, evtype=evtype, irfs=irfs)
    elif irfs:
        msg = irf_class_mismatch(irfs, evclass)
        if msg:
            import warnings

            warnings.warn(msg, stacklevel=2)
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
    if cuts:
        attrs["file_cuts"] = cuts
    out.attrs = attrs
    return out


def file_cuts(events) -> dict | None:
    """The event file's own cuts (:func:`fermixr.io.dss.dss_cuts`) of an ``events`` or
    ``counts`` dataset: ``attrs["file_cuts"]`` once a selection recorded them, else made
    from the file's DSS keywords in ``attrs["dss"]``; None without DSS keywords."""
    attrs = getattr(events, "attrs", None) or {}
    if attrs.get("file_cuts"):
        return dict(attrs["file_cuts"])
    if not attrs.get("dss"):
        return None
    from ..io.dss import dss_cuts

    files = attrs.get("files") or [None]
    return dss_cuts(attrs["dss"], path=files[0], tstart=attrs.get(ATTR_TSTART),
                    tstop=attrs.get(ATTR_TSTOP))


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


# --- the event file's own cuts -----------------------------------------------------------
#: Pass 8 standard classes, each a subset of the one before (an event of a later class has
#: the earlier classes' bits set too: checked on the Crab day's events)
P8_NESTED_CLASSES = (128, 256, 512, 1024)
P8_CLASS_NAMES = {128: "SOURCE", 256: "CLEAN", 512: "ULTRACLEAN", 1024: "ULTRACLEANVETO"}
#: event-type partitions: every event has exactly one type of each
EVTYPE_PARTITIONS = (0b11, 0b111100, 0b1111000000)

_TOL_ENERGY = 1e-6   # relative
_TOL_TIME = 1.0      # s
_TOL_ANGLE = 1e-3    # deg: DSS values are written with a few decimals


def _g(x) -> str:
    return f"{float(x):g}"


def _class_within(sel: int, file_mask: int) -> bool:
    """Whether every event of class bit mask ``sel`` (Pass 8) is of class ``file_mask``."""
    for b in range(32):
        bit = 1 << b
        if not sel & bit or file_mask & bit:
            continue
        if bit in P8_NESTED_CLASSES:
            parents = P8_NESTED_CLASSES[:P8_NESTED_CLASSES.index(bit)]
            if any(file_mask & p for p in parents):
                continue
        return False
    return True


def _type_within(sel: int, file_mask: int) -> bool:
    if any(file_mask & p == p for p in EVTYPE_PARTITIONS):
        return True  # the file holds every event type
    return sel & ~file_mask == 0


def region_points(geom, frame: str = "CEL"):
    """(lon, lat) [deg] of points on the outer edge of a sky geometry (WCS: every half
    pixel along the four sides, corners included; HEALPix: pixel centres), in ``frame``;
    with the HEALPix pixel radius as a margin (0 for WCS)."""
    from ..geom.wcs import WcsGeom

    if isinstance(geom, WcsGeom):
        nx, ny = geom.nx, geom.ny
        xs = np.linspace(-0.5, nx - 0.5, 2 * nx + 1)
        ys = np.linspace(-0.5, ny - 0.5, 2 * ny + 1)
        x = np.concatenate([xs, xs, np.full(ys.size, -0.5), np.full(ys.size, nx - 0.5)])
        y = np.concatenate([np.full(xs.size, -0.5), np.full(xs.size, ny - 0.5), ys, ys])
        lon, lat = geom.pix_to_world(x, y, frame=frame)
        return lon, lat, 0.0
    lon, lat = geom.pixel_centers(frame=frame)
    import healpy as hp

    return lon, lat, float(np.degrees(hp.max_pixrad(geom.nside)))


def check_selection_within(cuts: dict, *, emin=None, emax=None, tmin=None, tmax=None,
                           ra=None, dec=None, radius=None, zmin=None, zmax=None,
                           evclass=None, evtype=None, geom=None, energy_edges=None,
                           irfs=None, what: str = "selection") -> list[str]:
    """Refuse a selection wider than what the event file holds.

    ``cuts``: :func:`fermixr.io.dss.dss_cuts` of the event file.  Each given option is
    compared with the file's own cut and :class:`SelectionError` names both, the DSS
    keyword and the fix: ``emin``/``emax`` (and ``energy_edges``, the counts cube's energy
    bin edges) outside the file's ENERGY range; the cone ``ra``, ``dec``, ``radius`` or
    the sky geometry ``geom`` (its outer edge) reaching outside the file's circle;
    ``tmin``/``tmax`` outside its time range; ``zmax`` above its zenith cut; ``evclass``
    selecting events of a class the file was not cut to contain (Pass 8: the SOURCE ->
    CLEAN -> ULTRACLEAN -> ULTRACLEANVETO chain is nested, so a narrower class of the
    file's one is complete); ``evtype`` not contained in the file's types.  None leaves an
    option unchecked.  Returns warnings (also issued): an IRF class (``irfs``) that
    differs from the events' class.
    """
    if not cuts:
        return []
    name = cuts.get("name") or "the event file"

    def where(c):
        return f"({name} DSS keyword {c['key']})" if str(c.get("key", "")).startswith("DS") \
            else f"({name} {c.get('key')})"

    e = cuts.get("energy")
    if e:
        lo, hi = e.get("min"), e.get("max")
        given = [(f"{what}.emin", emin, "below", lo, "emin >="), (f"{what}.emax", emax, "above", hi, "emax <=")]
        if energy_edges is not None and len(energy_edges):
            given += [("the counts cube's lowest energy edge", float(np.min(energy_edges)), "below",
                       lo, "emin >="),
                      ("the counts cube's highest energy edge", float(np.max(energy_edges)),
                       "above", hi, "emax <=")]
        for label, v, side, ref, fix in given:
            if v is None or ref is None:
                continue
            v = float(v)
            bad = v < ref * (1 - _TOL_ENERGY) if side == "below" else v > ref * (1 + _TOL_ENERGY)
            if bad:
                raise SelectionError(
                    f"{label} {_g(v)} MeV is {side} the event file's own cut of {_g(ref)} MeV "
                    f"{where(e)}: there are no events {'below' if side == 'below' else 'above'} "
                    f"it; set {fix} {_g(ref)}")
    t = cuts.get("time")
    if t:
        for label, v, ref, side in ((f"{what}.tmin", tmin, t.get("min"), "before"),
                                    (f"{what}.tmax", tmax, t.get("max"), "after")):
            if v is None or ref is None:
                continue
            v = float(v)
            if (side == "before" and v < ref - _TOL_TIME) or (side == "after" and v > ref + _TOL_TIME):
                raise SelectionError(
                    f"{label} {v:.1f} s (MET) is {side} the event file's own time range "
                    f"{t['min']:.1f}-{t['max']:.1f} s {where(t)}; set {label.split('.')[-1]} "
                    f"{'>=' if side == 'before' else '<='} {ref:.1f}")
    z = cuts.get("zenith")
    if z and z.get("max") is not None and zmax is not None and float(zmax) > z["max"] + 1e-6:
        raise SelectionError(
            f"{what}.zmax {_g(zmax)} deg is wider than the event file's own zenith cut of "
            f"{_g(z['max'])} deg {where(z)}: events beyond it were removed; set zmax <= "
            f"{_g(z['max'])}")
    if z and z.get("min") and zmin is not None and float(zmin) < z["min"] - 1e-6:
        raise SelectionError(
            f"{what}.zmin {_g(zmin)} deg is below the event file's own zenith cut of "
            f"{_g(z['min'])} deg {where(z)}; set zmin >= {_g(z['min'])}")
    c = cuts.get("circle")
    if c:
        from ..geom.frames import angular_separation

        r_file = c["radius"]
        circ = f"circle of {_g(r_file)} deg around RA, Dec = {_g(c['ra'])}, {_g(c['dec'])}"
        if radius is not None and ra is not None and dec is not None and float(radius) < 180:
            sep = float(angular_separation(np.array([float(ra)]), np.array([float(dec)]),
                                           c["ra"], c["dec"])[0])
            if sep + float(radius) > r_file + _TOL_ANGLE:
                fix = max(r_file - sep, 0.0)
                raise SelectionError(
                    f"{what}.radius {_g(radius)} deg around RA, Dec = {_g(ra)}, {_g(dec)} reaches "
                    f"{sep + float(radius):.3f} deg from the centre of the event file's own "
                    f"{circ} {where(c)}: there are no events beyond it; set radius <= "
                    f"{fix:.4g}")
        if geom is not None:
            lon, lat, margin = region_points(geom, "CEL")
            ok = np.isfinite(lon) & np.isfinite(lat)
            if not ok.all():
                raise SelectionError(
                    f"the sky geometry reaches outside the projection's domain, far beyond the "
                    f"event file's own {circ} {where(c)}")
            d = angular_separation(lon, lat, c["ra"], c["dec"]) + margin
            worst = float(np.max(d)) if d.size else 0.0
            if worst > r_file + _TOL_ANGLE:
                w = getattr(geom, "width", None)
                size = (f" ({_g(w[0])} x {_g(w[1])} deg)" if w is not None else "")
                raise SelectionError(
                    f"the counts-cube geometry{size} reaches {worst:.3f} deg from the centre of "
                    f"the event file's own {circ} {where(c)}: its pixels beyond {_g(r_file)} deg "
                    f"would have no events; make binning.roiwidth (or npix x binsz) smaller, at "
                    f"most {2 * r_file / math.sqrt(2):.2f} deg for a square ROI at the centre")
    ec = cuts.get("evclass")
    warns: list[str] = []
    if ec and evclass is not None:
        sel = int(evclass)
        if "mask" in ec:
            pv = str(ec.get("pass_ver") or "").upper()
            if pv.startswith("P8") or not pv:
                if not _class_within(sel, ec["mask"]):
                    raise SelectionError(
                        f"{what}.evclass {sel} asks for events of a class the event file was not "
                        f"cut to hold: it keeps only class {ec['mask']} {where(ec)}, so events of "
                        f"class {sel} outside it are missing; set evclass to {ec['mask']} or a "
                        f"class nested in it ({', '.join(str(b) for b in P8_NESTED_CLASSES if _class_within(b, ec['mask']))})")
        elif ec.get("min") is not None and sel < ec["min"]:
            raise SelectionError(
                f"{what}.evclass {sel} is below the event file's own class cut "
                f"{_g(ec['min'])} {where(ec)}; set evclass >= {_g(ec['min'])}")
    et = cuts.get("evtype")
    if et and evtype is not None:
        sel = int(evtype)
        if not _type_within(sel, et["mask"]):
            raise SelectionError(
                f"{what}.evtype {sel} asks for event types the event file does not hold: it "
                f"keeps only types {et['mask']} {where(et)}; set evtype to a subset of "
                f"{et['mask']}")
    if irfs:
        cls = evclass if evclass is not None else (ec or {}).get("mask")
        msg = irf_class_mismatch(irfs, cls)
        if msg:
            import warnings

            warnings.warn(msg, stacklevel=2)
            warns.append(msg)
    return warns


def irf_class_mismatch(irfs: str, evclass) -> str | None:
    """A message when the IRF name's event class (``P8R2_SOURCE_V6`` -> SOURCE) is a
    Pass 8 class other than the one of ``evclass``; None when they match or cannot be
    compared."""
    if evclass is None or not irfs:
        return None
    name = P8_CLASS_NAMES.get(int(evclass))
    parts = str(irfs).upper().split("_")
    irf_cls = next((p for p in parts if p in P8_CLASS_NAMES.values()), None)
    if name is None or irf_cls is None or irf_cls == name:
        return None
    return (f"the IRFs {irfs} are for {irf_cls} events but the events are class {int(evclass)} "
            f"({name}): exposure and PSF will not match the events; use the {name} IRFs or "
            f"evclass {next(k for k, v in P8_CLASS_NAMES.items() if v == irf_cls)}")
