"""Numbers in FITS headers, as archival LAT files store them.

LAT files of the Pass 6 and Pass 7 era, and gtltcube files made from them, carry some
numeric keywords as character strings, with a Fortran ``D`` exponent:
``MJDREFF = '7.428703703703703D-4'``.  astropy returns such a value as ``str``, and
``float()`` of it fails.  Every reader in :mod:`fermixr.io` reads a header number through
:func:`header_float` (or :func:`header_int`), which accepts Python numbers and strings
holding a number (``D``/``d`` exponents included) and raises :class:`FileFormatError` naming
the file and the keyword for anything else.  :func:`numeric_header` does the same for the
WCS keywords of an image header before it is handed to :class:`fermixr.geom.WcsGeom`.
"""

from __future__ import annotations

import math
import re

from ..errors import FileFormatError

__all__ = ["parse_header_number", "header_float", "header_int", "numeric_header", "WCS_NUMBER_KEYS"]

_MISSING = object()
_FORTRAN_EXP = re.compile(r"(?<=[0-9.])[dD](?=[+-]?[0-9])")

#: keywords of an image header that hold numbers (the WCS of a map, a cube's energy axis)
WCS_NUMBER_KEYS = re.compile(
    r"^(CRVAL\d|CDELT\d|CRPIX\d|CROTA\d|CD\d_\d|PC\d_\d|EQUINOX|LONPOLE|LATPOLE|MJDREF[IF]?|"
    r"TSTART|TSTOP|PV\d_\d+)$"
)


def parse_header_number(value):
    """The float a header value stands for, or None when it is not a number.

    Accepts int and float (not bool: a FITS logical is not a number) and strings such as
    ``'7.428703703703703D-4'``, ``' 51910 '``, ``'1.5E+03'``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        text = _FORTRAN_EXP.sub("E", value.strip())
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            return None
    try:  # numpy scalars
        return float(value)
    except (TypeError, ValueError):
        return None


def _where(path, hdu):
    where = str(path) if path is not None else "FITS header"
    return f"{where} HDU {hdu}" if hdu else where


def header_float(header, key: str, path=None, default=_MISSING, *, hdu: str | None = None,
                 finite: bool = True) -> float:
    """``header[key]`` as a float, whether the file stores it as a number or as a string
    (Fortran ``D`` exponents included).

    A missing keyword returns ``default`` when one is given, else raises
    :class:`FileFormatError`; a value that is not a number (or not finite, unless
    ``finite=False``) raises :class:`FileFormatError` naming ``path``, ``hdu`` and ``key``."""
    try:
        raw = header[key]
    except (KeyError, IndexError):
        raw = _MISSING
    if raw is _MISSING or raw is None:
        if default is not _MISSING:
            return default
        raise FileFormatError(f"{_where(path, hdu)}: header keyword {key} is missing; a number "
                              "is expected there")
    v = parse_header_number(raw)
    if v is None:
        raise FileFormatError(
            f"{_where(path, hdu)}: header keyword {key} = {raw!r} is not a number"
        )
    if finite and not math.isfinite(v):
        raise FileFormatError(
            f"{_where(path, hdu)}: header keyword {key} = {raw!r} is not a finite number"
        )
    return v


def header_int(header, key: str, path=None, default=_MISSING, *, hdu: str | None = None) -> int:
    """``header[key]`` as an int (a string such as ``'16'`` or ``'1.6D1'`` is accepted);
    a value with a fractional part raises :class:`FileFormatError`."""
    v = header_float(header, key, path, default, hdu=hdu)
    if v is default and default is not _MISSING:
        return default
    if v != int(v):
        raise FileFormatError(
            f"{_where(path, hdu)}: header keyword {key} = {header[key]!r} is not an integer"
        )
    return int(v)


def numeric_header(header, path=None, *, hdu: str | None = None, keys=WCS_NUMBER_KEYS) -> dict:
    """A plain dict copy of ``header`` in which every keyword matching ``keys`` (the WCS and
    time keywords by default) holds a float, read with :func:`header_float`."""
    out = {}
    for k in header.keys() if hasattr(header, "keys") else header:
        if not k or k in ("COMMENT", "HISTORY"):
            continue
        v = header[k]
        if keys.match(k) and (isinstance(v, bool) or not isinstance(v, (int, float))):
            v = header_float(header, k, path, hdu=hdu)
        out[k] = v
    return out
