"""FT1 photon event files -> ``events`` and ``gti`` datasets.

One file, a list, an ``@list`` file or a glob (see :func:`fermixr.io.filelist.resolve_files`);
gzip is read transparently.  Pass 8 stores ``EVENT_CLASS``/``EVENT_TYPE`` as 32-bit bit
arrays (``32X``); they become ``uint32`` masks with bit k = 2**k (so SOURCE, ``evclass=128``,
is ``EVENT_CLASS & 128``).  Pre-Pass 8 files keep their integer ``EVENT_CLASS``; files
without ``PASS_VER`` (Pass 6 and earlier) hold a scalar class number there
(``attrs["event_class_kind"] = "scalar"``), Pass 7 files a bit mask.  Without an
``EVENT_TYPE`` column (Pass 7) it is made from ``CONVERSION_TYPE`` (FRONT -> 1, BACK -> 2)
and ``attrs["event_type_from_conversion"]`` is set.

Column dtypes are the file's (float32 energies and directions, float64 times) in native
byte order; float32 -> float64 is exact, so cuts evaluated in double agree with CFITSIO.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..conventions import (
    ATTR_MJDREF,
    ATTR_PRODUCT,
    ATTR_TSTART,
    ATTR_TSTOP,
    DIM_EVENT,
    UNIT_ANGLE,
    UNIT_ENERGY,
    UNIT_TIME,
)
from ..errors import FileFormatError, InputFileError
from .filelist import resolve_files
from .gti import gti_dataset, mjdref_from_header, read_gti_hdu
from .headers import header_float

#: Columns read by default (PULSE_PHASE too when the file has it).
DEFAULT_COLUMNS = (
    "ENERGY", "RA", "DEC", "L", "B", "THETA", "PHI", "ZENITH_ANGLE", "TIME",
    "EVENT_CLASS", "EVENT_TYPE", "CONVERSION_TYPE",
)
OPTIONAL_COLUMNS = ("PULSE_PHASE",)

_UNITS = {
    "ENERGY": UNIT_ENERGY, "RA": UNIT_ANGLE, "DEC": UNIT_ANGLE, "L": UNIT_ANGLE, "B": UNIT_ANGLE,
    "THETA": UNIT_ANGLE, "PHI": UNIT_ANGLE, "ZENITH_ANGLE": UNIT_ANGLE,
    "EARTH_AZIMUTH_ANGLE": UNIT_ANGLE, "TIME": UNIT_TIME, "LIVETIME": UNIT_TIME,
}


def read_ft1(files, columns=None, *, what: str = "data.evfile"):
    """Read FT1 file(s).

    Returns ``(events, gti)``: ``events`` with dim ``event`` (sorted by TIME when several
    files are given), attrs ``fermixr_product="events"``, MJDREF, TSTART, TSTOP, PASS_VER,
    ``event_class_kind``, ``dss`` (the DSS selection keywords of the first file, a list of
    dicts), ``files``; ``gti`` the union of the files' GTIs (the ``gti`` product).
    ``columns`` adds to or replaces the default set (``None``: defaults).
    """
    import xarray as xr

    paths = resolve_files(files, what=what)
    parts = [_read_one(p, columns) for p in paths]
    mjd = {round(p["mjdref"], 12) for p in parts}
    if len(mjd) > 1:
        raise FileFormatError(
            f"{what}: FT1 files disagree on MJDREF ({sorted(mjd)}): "
            + ", ".join(f"{p['path']}={p['mjdref']}" for p in parts)
        )
    kinds = {p["class_kind"] for p in parts}
    if len(kinds) > 1:
        raise FileFormatError(f"{what}: FT1 files mix Pass 8 bit-mask and scalar EVENT_CLASS columns")
    passver = {p["pass_ver"] for p in parts}
    if len(passver) > 1:
        raise FileFormatError(
            f"{what}: PASS_VER is not consistent across FT1 files ({sorted(map(str, passver))})"
        )
    names = list(parts[0]["cols"])
    for p in parts[1:]:
        if list(p["cols"]) != names:
            raise FileFormatError(f"{p['path']}: columns {list(p['cols'])} differ from {names} of {parts[0]['path']}")

    cols = {}
    for n in names:
        arrs = [p["cols"][n] for p in parts]
        cols[n] = arrs[0] if len(arrs) == 1 else np.concatenate(arrs)
    if len(parts) > 1 and "TIME" in cols:
        order = np.argsort(cols["TIME"], kind="stable")
        if np.any(order != np.arange(order.size)):
            cols = {n: v[order] for n, v in cols.items()}

    data_vars = {}
    for n, v in cols.items():
        attrs = {"units": _UNITS[n]} if n in _UNITS else {}
        dims = (DIM_EVENT,) if v.ndim == 1 else (DIM_EVENT, f"{n}_index")
        data_vars[n] = (dims, v, attrs)

    gti_s = np.concatenate([p["gti"][0] for p in parts])
    gti_e = np.concatenate([p["gti"][1] for p in parts])
    tstart = min(p["tstart"] for p in parts)
    tstop = max(p["tstop"] for p in parts)
    mjdref = parts[0]["mjdref"]
    attrs = {
        ATTR_PRODUCT: "events",
        ATTR_MJDREF: mjdref,
        ATTR_TSTART: tstart,
        ATTR_TSTOP: tstop,
        "PASS_VER": parts[0]["pass_ver"] or "NONE",
        "event_class_kind": parts[0]["class_kind"],
        "dss": parts[0]["dss"],
        "files": [str(p["path"]) for p in parts],
    }
    if any(p["type_from_conv"] for p in parts):
        attrs["event_type_from_conversion"] = True
    events = xr.Dataset(data_vars, attrs=attrs)
    gti = gti_dataset(gti_s, gti_e, tstart=tstart, tstop=tstop, mjdref=mjdref,
                      attrs={"files": attrs["files"]})
    return events, gti


def read_ft1_gti(files, *, what: str = "data.evfile"):
    """The union of the GTIs of FT1 file(s) (the ``gti`` product), without reading events."""
    paths = resolve_files(files, what=what)
    s_all, e_all, t0, t1, mjd = [], [], [], [], None
    for p in paths:
        with _open(p) as hdul:
            ev = _events_hdu(hdul, p)
            s, e = read_gti_hdu(hdul, p)
            hdr = ev.header
            s_all.append(s)
            e_all.append(e)
            t0.append(header_float(hdr, "TSTART", p, s.min() if s.size else 0.0, hdu="EVENTS"))
            t1.append(header_float(hdr, "TSTOP", p, e.max() if e.size else 0.0, hdu="EVENTS"))
            mjd = mjdref_from_header(hdr, p, hdu="EVENTS") if mjd is None else mjd
    return gti_dataset(np.concatenate(s_all), np.concatenate(e_all), tstart=min(t0),
                       tstop=max(t1), mjdref=mjd, attrs={"files": [str(p) for p in paths]})


# --- internals ---------------------------------------------------------------------------
def _open(path: Path):
    from astropy.io import fits

    try:
        return fits.open(path, memmap=not str(path).endswith(".gz"))
    except FileNotFoundError:
        raise InputFileError(f"FT1 file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise InputFileError(f"FT1 file {str(path)!r} cannot be read as FITS: {exc}") from None


def _events_hdu(hdul, path):
    try:
        return hdul["EVENTS"]
    except KeyError:
        raise FileFormatError(
            f"{path}: no 'EVENTS' extension; HDUs are {[h.name for h in hdul]} (is this an FT1 file?)"
        ) from None


def _read_one(path: Path, columns) -> dict:
    with _open(path) as hdul:
        hdu = _events_hdu(hdul, path)
        hdr = hdu.header
        names = [n.upper() for n in hdu.columns.names]
        formats = {n.upper(): str(f).upper() for n, f in zip(hdu.columns.names, hdu.columns.formats)}
        want = list(DEFAULT_COLUMNS) if columns is None else [str(c).upper() for c in columns]
        if columns is None:
            want += [c for c in OPTIONAL_COLUMNS if c in names]
        pass_ver = str(hdr.get("PASS_VER", "")).strip() or None
        type_from_conv = False
        if "EVENT_TYPE" in want and "EVENT_TYPE" not in names and "CONVERSION_TYPE" in names:
            type_from_conv = True
        missing = [c for c in want if c not in names and not (c == "EVENT_TYPE" and type_from_conv)]
        if missing:
            raise FileFormatError(
                f"{path}: EVENTS extension has no column(s) {missing}; it has {names}"
            )
        data = hdu.data
        raw = data.base if getattr(data, "base", None) is not None else None
        cols: dict[str, np.ndarray] = {}
        class_kind = "bitmask"
        for c in want:
            if c == "EVENT_TYPE" and type_from_conv:
                continue
            fmt = formats[c]
            if fmt.endswith("X"):
                cols[c] = _bits_to_uint(data, raw, c, fmt, path)
            else:
                v = np.asarray(data[c])
                v = v.astype(v.dtype.newbyteorder("="), copy=True)
                if c in ("EVENT_CLASS", "EVENT_TYPE"):
                    if v.ndim != 1:
                        raise FileFormatError(f"{path}: column {c} has unexpected shape {v.shape}")
                    if c == "EVENT_CLASS" and (pass_ver is None or pass_ver.upper() == "NONE"):
                        class_kind = "scalar"
                    v = v.astype(np.uint32) if c == "EVENT_TYPE" or class_kind == "bitmask" else v.astype(np.int32)
                cols[c] = v
        if type_from_conv:
            conv = np.asarray(data["CONVERSION_TYPE"]).astype(np.int64)
            cols["EVENT_TYPE"] = np.where(conv == 0, 1, np.where(conv == 1, 2, 0)).astype(np.uint32)
        # keep the order: defaults first, as requested
        cols = {c: cols[c] for c in want if c in cols}
        cols = _drop_nan_events(cols, path)
        gti = read_gti_hdu(hdul, path)
        return {
            "path": path,
            "cols": cols,
            "gti": gti,
            "tstart": header_float(hdr, "TSTART", path, gti[0].min() if gti[0].size else 0.0,
                                   hdu="EVENTS"),
            "tstop": header_float(hdr, "TSTOP", path, gti[1].max() if gti[1].size else 0.0,
                                  hdu="EVENTS"),
            "mjdref": mjdref_from_header(hdr, path, hdu="EVENTS"),
            "pass_ver": pass_ver,
            "class_kind": class_kind,
            "type_from_conv": type_from_conv,
            "dss": read_dss(hdr, path),
        }


#: columns whose NaN makes an event unusable (dropped with a warning that counts them)
CHECKED_COLUMNS = ("ENERGY", "RA", "DEC", "L", "B", "THETA", "PHI", "ZENITH_ANGLE", "TIME")


def _drop_nan_events(cols: dict, path) -> dict:
    """Events with NaN (or infinity) in a column of :data:`CHECKED_COLUMNS` removed, with a
    warning naming the file and counting them per column."""
    n = len(next(iter(cols.values()))) if cols else 0
    bad = np.zeros(n, dtype=bool)
    why = {}
    for c in CHECKED_COLUMNS:
        v = cols.get(c)
        if v is None or v.dtype.kind != "f":
            continue
        b = ~np.isfinite(v) if v.ndim == 1 else ~np.isfinite(v).all(axis=1)
        if b.any():
            why[c] = int(np.count_nonzero(b))
            bad |= b
    if not bad.any():
        return cols
    import warnings

    warnings.warn(
        f"{path}: dropped {int(np.count_nonzero(bad))} of {n} events with NaN or infinite "
        f"values ({', '.join(f'{k}: {v}' for k, v in why.items())})", stacklevel=4)
    keep = ~bad
    return {k: v[keep] for k, v in cols.items()}


def _bits_to_uint(data, raw, col, fmt, path) -> np.ndarray:
    nbits = int(fmt[:-1] or 1)
    if nbits > 32:
        raise FileFormatError(f"{path}: bit column {col} has {nbits} bits; at most 32 are supported")
    if raw is not None and col in (raw.dtype.names or ()):
        b = np.ascontiguousarray(raw[col]).reshape(len(raw), -1).astype(np.uint8)
    else:  # astropy's bool expansion, MSB first
        b = np.packbits(np.asarray(data[col], dtype=bool).reshape(len(data), -1), axis=1)
    nbytes = b.shape[1]
    out = np.zeros(b.shape[0], dtype=np.uint64)
    for k in range(nbytes):
        out = (out << np.uint64(8)) | b[:, k].astype(np.uint64)
    # the FITS bit array is left-aligned in its bytes: drop the padding bits
    out >>= np.uint64(8 * nbytes - nbits)
    return out.astype(np.uint32)


def read_dss(header, path=None) -> list[dict]:
    """The data-subspace (DSS) keywords of a header as a list of dicts
    ``{"type", "unit", "value", "ref", "key"}`` (gtselect/gtmktime record their cuts there;
    ``key`` is the DSVALn keyword that holds the value)."""
    from .headers import header_int

    n = header_int(header, "NDSKEYS", path, 0, hdu="EVENTS")
    out = []
    for i in range(1, n + 1):
        typ = header.get(f"DSTYP{i}")
        if typ is None:
            continue
        d = {"type": str(typ).strip(), "unit": str(header.get(f"DSUNI{i}", "")).strip(),
             "value": str(header.get(f"DSVAL{i}", "")).strip(), "key": f"DSVAL{i}"}
        ref = header.get(f"DSREF{i}")
        if ref is not None:
            d["ref"] = str(ref).strip()
        out.append(d)
    return out
