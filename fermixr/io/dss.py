"""The cuts an event file records about itself: its data-subspace (DSS) keywords.

gtselect and gtmktime (and the LAT data server) write each cut they apply as a triplet of
keywords in the EVENTS header: ``DSTYPn`` (what: ``ENERGY``, ``POS(RA,DEC)``, ``TIME``,
``ZENITH_ANGLE``, ``BIT_MASK(EVENT_CLASS,128,P8R2)`` ...), ``DSUNIn`` (unit) and ``DSVALn``
(value: ``200:20000``, ``CIRCLE(83.6331,22.0145,15)``, ``TABLE`` for the GTI table,
``1:1`` for a bit mask).  :func:`dss_cuts` turns them into plain numbers so a selection
can be compared with what the file holds (:func:`fermixr.select.cuts.check_selection_within`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

__all__ = ["dss_cuts"]

_CIRCLE = re.compile(r"^\s*CIRCLE\s*\(([^,]+),([^,]+),([^)]+)\)\s*$", re.IGNORECASE)
_BITMASK = re.compile(r"^\s*BIT_MASK\s*\(\s*(EVENT_CLASS|EVENT_TYPE)\s*,\s*(\d+)\s*(?:,\s*([^)]*))?\)\s*$",
                      re.IGNORECASE)


def _num(text):
    text = str(text).strip()
    if not text:
        return None
    try:
        v = float(text.replace("D", "E").replace("d", "e"))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _range(value):
    """(lo, hi) of a DSS range ``a:b`` (an empty side is open: None); None if not a range."""
    if ":" not in value:
        return None
    a, _, b = value.partition(":")
    lo, hi = _num(a), _num(b)
    if (a.strip() and lo is None) or (b.strip() and hi is None):
        return None
    return lo, hi


def _events_header(path: Path):
    from astropy.io import fits

    from ..errors import FileFormatError, InputFileError

    try:
        with fits.open(path) as hdul:
            if "EVENTS" not in hdul:
                raise FileFormatError(f"{path}: no 'EVENTS' extension (is this an FT1 file?)")
            return hdul["EVENTS"].header.copy()
    except FileNotFoundError:
        raise InputFileError(f"FT1 file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise InputFileError(f"FT1 file {str(path)!r} cannot be read as FITS: {exc}") from None


def dss_cuts(source, *, path=None, tstart=None, tstop=None) -> dict:
    """The cuts an FT1 file records in its DSS keywords, as numbers.

    ``source``: an FT1 path (the first file of a list or ``@list``; its EVENTS header is
    read) or the list of DSS dicts :func:`fermixr.io.ft1.read_dss` returns (then ``path``
    names the file in messages and ``tstart``/``tstop`` give its time range).

    Returns a dict with ``path`` and, for each cut the file records, an entry (absent when
    the file does not restrict it; ``key`` names the keyword holding it):
    ``energy`` {min, max, key} in MeV; ``circle`` {ra, dec, radius, key} in deg;
    ``time`` {min, max, key} in MET s (a ``TIME`` range, else the file's TSTART/TSTOP when
    known); ``zenith`` {min, max, key} in deg; ``evclass`` {mask, pass_ver, key} (Pass 7/8
    bit masks) or {min, max, key} (Pass 6 scalar classes); ``evtype`` {mask, key}.
    """
    from .ft1 import read_dss
    from .headers import header_float

    if isinstance(source, (str, Path)) or (isinstance(source, (list, tuple)) and source
                                           and isinstance(source[0], (str, Path))):
        from .filelist import resolve_files

        first = resolve_files(source, what="data.evfile")[0]
        hdr = _events_header(first)
        dss = read_dss(hdr, first)
        path = first
        tstart = header_float(hdr, "TSTART", first, None, hdu="EVENTS")
        tstop = header_float(hdr, "TSTOP", first, None, hdu="EVENTS")
    else:
        dss = list(source or [])
    name = Path(str(path)).name if path is not None else "the event file"
    out: dict = {"path": str(path) if path is not None else None, "name": name}
    for i, d in enumerate(dss, start=1):
        typ = str(d.get("type", "")).strip()
        utyp = typ.upper()
        val = str(d.get("value", "")).strip()
        key = d.get("key") or f"DSVAL{i}"
        if utyp == "ENERGY":
            r = _range(val)
            if r:
                out["energy"] = {"min": r[0], "max": r[1], "key": key}
        elif utyp == "ZENITH_ANGLE":
            r = _range(val)
            if r:
                out["zenith"] = {"min": r[0], "max": r[1], "key": key}
        elif utyp == "TIME":
            r = _range(val)
            if r:
                out["time"] = {"min": r[0], "max": r[1], "key": key}
        elif utyp.replace(" ", "") in ("POS(RA,DEC)",):
            m = _CIRCLE.match(val)
            if m:
                ra, dec, rad = (_num(v) for v in m.groups())
                if None not in (ra, dec, rad):
                    out["circle"] = {"ra": ra, "dec": dec, "radius": rad, "key": key}
        elif utyp == "EVENT_CLASS":  # Pass 6: a range of scalar class numbers
            r = _range(val)
            if r:
                out["evclass"] = {"min": r[0], "max": r[1], "key": key}
        else:
            m = _BITMASK.match(typ)
            if m and val.replace(" ", "") == "1:1":
                which = m.group(1).upper()
                entry = {"mask": int(m.group(2)), "key": f"DSTYP{key[5:]}" if key.startswith("DSVAL") else key}
                if which == "EVENT_CLASS":
                    entry["pass_ver"] = (m.group(3) or "").strip().upper() or None
                    out["evclass"] = entry
                else:
                    out["evtype"] = entry
    if "time" not in out and tstart is not None and tstop is not None:
        out["time"] = {"min": float(tstart), "max": float(tstop), "key": "TSTART/TSTOP"}
    return out
