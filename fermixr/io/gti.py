"""Good-time-interval tables: reading the ``GTI`` extension and the ``gti`` product.

Intervals are (START, STOP) pairs in MET seconds.  :func:`normalize_intervals` returns
them sorted, without empty intervals, with overlapping or touching intervals merged
(the union).  The interval algebra of gtmktime lives in :mod:`fermixr.select.gti`.
"""

from __future__ import annotations

import numpy as np

from ..conventions import ATTR_MJDREF, ATTR_PRODUCT, ATTR_TSTART, ATTR_TSTOP, DIM_GTI, FERMI_MJDREF, UNIT_TIME
from ..errors import FileFormatError, SelectionError


def normalize_intervals(start, stop):
    """Union of intervals: sorted, disjoint, empty ones (stop <= start) dropped,
    overlapping or touching ones merged.  Returns new float64 arrays (start, stop)."""
    s = np.asarray(start, dtype=np.float64).reshape(-1)
    e = np.asarray(stop, dtype=np.float64).reshape(-1)
    if s.shape != e.shape:
        raise SelectionError(f"GTI START and STOP differ in length ({s.size} vs {e.size})")
    keep = e > s
    s, e = s[keep], e[keep]
    if s.size == 0:
        return s.copy(), e.copy()
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    run_end = np.maximum.accumulate(e)
    # a new interval starts where its start lies beyond every earlier stop
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    new[1:] = s[1:] > run_end[:-1]
    starts = s[new]
    group = np.cumsum(new) - 1
    stops = np.zeros(starts.size, dtype=np.float64)
    np.maximum.at(stops, group, e)
    stops = np.maximum(stops, starts)
    return starts, stops


def gti_dataset(start, stop, *, tstart=None, tstop=None, mjdref=FERMI_MJDREF, attrs=None,
                normalize=True):
    """The ``gti`` product (dim ``gti``; START, STOP in s; attrs TSTART, TSTOP, MJDREF,
    ontime)."""
    import xarray as xr

    if normalize:
        s, e = normalize_intervals(start, stop)
    else:
        s = np.asarray(start, dtype=np.float64).reshape(-1).copy()
        e = np.asarray(stop, dtype=np.float64).reshape(-1).copy()
    a = dict(attrs or {})
    a[ATTR_PRODUCT] = "gti"
    a[ATTR_TSTART] = float(tstart if tstart is not None else (s[0] if s.size else 0.0))
    a[ATTR_TSTOP] = float(tstop if tstop is not None else (e[-1] if e.size else 0.0))
    a[ATTR_MJDREF] = float(mjdref)
    a["ontime"] = float(np.sum(e - s))
    return xr.Dataset(
        {"START": ((DIM_GTI,), s, {"units": UNIT_TIME}),
         "STOP": ((DIM_GTI,), e, {"units": UNIT_TIME})},
        attrs=a,
    )


def mjdref_from_header(header, path=None, *, hdu: str | None = None) -> float:
    """MJDREF of a FITS header (MJDREFI + MJDREFF, or MJDREF), Fermi's value if absent.
    Values stored as strings (``'7.428703703703703D-4'``) are read as numbers; anything else
    raises :class:`FileFormatError` naming ``path`` and the keyword."""
    from .headers import header_float

    if "MJDREFI" in header:
        return (header_float(header, "MJDREFI", path, hdu=hdu)
                + header_float(header, "MJDREFF", path, 0.0, hdu=hdu))
    if "MJDREF" in header:
        return header_float(header, "MJDREF", path, hdu=hdu)
    return FERMI_MJDREF


def read_gti_hdu(hdul, path) -> tuple[np.ndarray, np.ndarray]:
    """(START, STOP) of the ``GTI`` extension of an open FITS file."""
    try:
        hdu = hdul["GTI"]
    except KeyError:
        raise FileFormatError(f"{path}: no 'GTI' extension (an FT1 file has EVENTS and GTI)") from None
    names = [n.upper() for n in hdu.columns.names]
    for col in ("START", "STOP"):
        if col not in names:
            raise FileFormatError(f"{path}: GTI extension has no {col} column (has {names})")
    data = hdu.data
    return (np.asarray(data["START"], dtype=np.float64).copy(),
            np.asarray(data["STOP"], dtype=np.float64).copy())
