"""Spacecraft (FT2) files: the SC_DATA table of pointing and livetime history.

Two readers:

- :func:`iter_ft2_chunks` streams row chunks (dicts of numpy arrays) from one file, a list
  or ``@list`` of files, gzip or plain, in time order of the files.  It parses the FITS
  binary table itself from a byte stream, so memory stays at one chunk whatever the
  length of the mission (astropy would decompress a whole ``.gz`` file into memory).
- :func:`read_ft2` returns the whole table (selected columns) sorted by START.

Columns are returned in native byte order with their FITS type (float32 columns such as
RA_SCZ stay float32; START/STOP/LIVETIME are float64).  TSCALn/TZEROn are applied.
"""

from __future__ import annotations

import gzip
import re
import reprlib
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import FileFormatError, InputFileError
from .filelist import resolve_files
from .headers import header_float

__all__ = [
    "FT2_LTCUBE_COLUMNS",
    "FT2_PHI_COLUMNS",
    "FT2Table",
    "open_ft2",
    "ft2_info",
    "check_ft2_columns",
    "iter_ft2_chunks",
    "read_ft2",
    "drop_bad_ft2_rows",
    "FT2_CHECKED_COLUMNS",
]

#: columns gtltcube reads (livetime cube without azimuth bins)
FT2_LTCUBE_COLUMNS = ("START", "STOP", "LIVETIME", "RA_SCZ", "DEC_SCZ", "RA_ZENITH", "DEC_ZENITH")
#: extra columns for azimuth (phi) bins
FT2_PHI_COLUMNS = ("RA_SCX", "DEC_SCX")
#: columns whose NaN makes a row unusable (times, livetime, pointing); a row with one of
#: them NaN, or with a negative LIVETIME, is dropped with a warning counting the rows and
#: the livetime lost
FT2_CHECKED_COLUMNS = ("START", "STOP", "LIVETIME", "RA_SCZ", "DEC_SCZ", "RA_SCX", "DEC_SCX",
                       "RA_ZENITH", "DEC_ZENITH")

_BLOCK = 2880
_TFORM = re.compile(r"^\s*(\d*)\s*([LXBIJKAEDCMPQ])", re.IGNORECASE)
_CODE = {  # FITS binary-table code -> (numpy big-endian type, bytes per element)
    "L": ("i1", 1), "B": ("u1", 1), "I": (">i2", 2), "J": (">i4", 4), "K": (">i8", 8),
    "E": (">f4", 4), "D": (">f8", 8), "C": (">c8", 8), "M": (">c16", 16),
}


def _open_stream(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb", buffering=1 << 20)


def _read_header(stream, path, index):
    from astropy.io import fits

    try:
        return fits.Header.fromfile(stream, endcard=True, padding=True)
    except EOFError:
        return None
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{path}: HDU {index} header cannot be parsed as FITS: {exc}") from None


def _data_bytes(h) -> int:
    naxis = int(h.get("NAXIS", 0))
    if naxis == 0:
        return 0
    n = 1
    for i in range(1, naxis + 1):
        n *= int(h[f"NAXIS{i}"])
    n = abs(int(h["BITPIX"])) // 8 * int(h.get("GCOUNT", 1)) * (int(h.get("PCOUNT", 0)) + n)
    return n


def _skip(stream, nbytes):
    padded = (nbytes + _BLOCK - 1) // _BLOCK * _BLOCK
    while padded > 0:
        got = stream.read(min(padded, 1 << 24))
        if not got:
            break
        padded -= len(got)


class FT2Table:
    """An open SC_DATA table positioned at its first row (use as a context manager)."""

    def __init__(self, path: Path, stream, header):
        self.path = path
        self._stream = stream
        self.header = header
        self.nrows = int(header["NAXIS2"])
        self.rowbytes = int(header["NAXIS1"])
        self._rows_read = 0
        names, formats, offsets, scale = [], [], [], {}
        off = 0
        for i in range(1, int(header["TFIELDS"]) + 1):
            name = str(header.get(f"TTYPE{i}", f"COL{i}")).strip().upper()
            tform = str(header[f"TFORM{i}"])
            m = _TFORM.match(tform)
            if not m:
                raise FileFormatError(f"{path}: column {name}: unsupported TFORM{i}={tform!r}")
            rep = int(m.group(1)) if m.group(1) else 1
            code = m.group(2).upper()
            if code == "X":
                size, np_t = (rep + 7) // 8, None
            elif code == "A":
                size, np_t = rep, f"S{rep}" if rep else None
            elif code in ("P", "Q"):
                size, np_t = (8 if code == "P" else 16), None
            else:
                t, b = _CODE[code]
                size = b * rep
                np_t = t if rep == 1 else (t, (rep,))
            if np_t is not None and rep > 0:
                names.append(name)
                formats.append(np_t)
                offsets.append(off)
                ts = header_float(header, f"TSCAL{i}", path, 1.0, hdu="SC_DATA")
                tz = header_float(header, f"TZERO{i}", path, 0.0, hdu="SC_DATA")
                if ts != 1.0 or tz != 0.0:
                    scale[name] = (ts, tz)
            off += size
        if off != self.rowbytes:
            raise FileFormatError(
                f"{path}: SC_DATA columns add up to {off} bytes per row but NAXIS1={self.rowbytes}"
            )
        self.columns = names
        self._bool = {n for n, f in zip(names, formats) if f == "i1"}
        self._dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                                "itemsize": self.rowbytes})
        self._scale = scale

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def check_columns(self, columns: Iterable[str]) -> list[str]:
        cols = [c.upper() for c in columns]
        missing = [c for c in cols if c not in self.columns]
        if missing:
            raise FileFormatError(
                f"{self.path}: spacecraft table SC_DATA has no column "
                f"{', '.join(repr(c) for c in missing)} (needed here); it has "
                f"{', '.join(self.columns)}"
            )
        return cols

    def read_rows(self, nrows: int, columns: Sequence[str]) -> dict[str, np.ndarray] | None:
        """Next ``nrows`` rows (fewer at the end; None when exhausted)."""
        nrows = min(nrows, self.nrows - self._rows_read)
        if nrows <= 0:
            return None
        want = nrows * self.rowbytes
        buf = self._stream.read(want)
        if len(buf) != want:
            raise FileFormatError(
                f"{self.path}: file ends after row {self._rows_read + len(buf) // self.rowbytes} "
                f"of the {self.nrows} rows NAXIS2 announces (truncated file?)"
            )
        self._rows_read += nrows
        rec = np.frombuffer(buf, dtype=self._dtype, count=nrows)
        out = {}
        for c in columns:
            a = rec[c]
            if c in self._bool:
                a = a == ord("T")
            else:
                a = a.astype(a.dtype.newbyteorder("="), copy=True)
            if c in self._scale:
                s, z = self._scale[c]
                a = a * s + z
            out[c] = a
        return out


def open_ft2(path, *, extname: str = "SC_DATA") -> FT2Table:
    """Open the spacecraft table of ``path`` (HDU ``extname``, else the first binary table
    with START/STOP columns) and return it positioned at its first row."""
    path = Path(path)
    stream = _open_stream(path)
    index = 0
    fallback = None
    try:
        while True:
            h = _read_header(stream, path, index)
            if h is None:
                break
            if index == 0 and "SIMPLE" not in h:
                raise FileFormatError(f"{path}: not a FITS file (no SIMPLE card); expected an "
                                      "FT2 spacecraft file")
            is_table = str(h.get("XTENSION", "")).strip().upper() == "BINTABLE"
            name = str(h.get("EXTNAME", "")).strip().upper()
            if is_table and name == extname.upper():
                return FT2Table(path, stream, h)
            if is_table and fallback is None:
                ttypes = {str(h.get(f"TTYPE{i}", "")).strip().upper()
                          for i in range(1, int(h.get("TFIELDS", 0)) + 1)}
                if {"START", "STOP"} <= ttypes:
                    fallback = index
            _skip(stream, _data_bytes(h))
            index += 1
    except FileFormatError:
        stream.close()
        raise
    except (OSError, EOFError) as exc:
        stream.close()
        raise FileFormatError(f"{path}: cannot be read as FITS ({exc}); expected an FT2 "
                              "spacecraft file") from None
    stream.close()
    if fallback is not None:
        stream = _open_stream(path)
        for i in range(fallback):
            h = _read_header(stream, path, i)
            _skip(stream, _data_bytes(h))
        return FT2Table(path, stream, _read_header(stream, path, fallback))
    raise FileFormatError(
        f"{path}: no {extname} binary table (nor any table with START/STOP columns); "
        "expected an FT2 spacecraft file"
    )


def ft2_info(path) -> dict:
    """Columns, row count and the START of the first row of one FT2 file."""
    with open_ft2(path) as t:
        first = t.read_rows(1, ["START"]) if "START" in t.columns else None
        return {
            "path": Path(path), "columns": list(t.columns), "nrows": t.nrows,
            "tstart": float(first["START"][0]) if first else header_float(
                t.header, "TSTART", path, 0.0, hdu="SC_DATA"),
        }


def _resolve(files) -> list[Path]:
    if isinstance(files, (str, Path)) or (isinstance(files, (list, tuple))
                                          and all(isinstance(f, (str, Path)) for f in files)):
        return resolve_files(files, what="scfile")
    raise InputFileError(f"scfile: got {reprlib.repr(files)} ({type(files).__name__}); expected "
                         "an FT2 file path, a list of paths or an @list file")


def check_ft2_columns(files, columns: Iterable[str]) -> list[Path]:
    """Raise :class:`FileFormatError` naming the file and the missing column unless every
    file has ``columns``; returns the resolved files ordered by their first START."""
    paths = _resolve(files)
    infos = [ft2_info(p) for p in paths]
    cols = [c.upper() for c in columns]
    for info in infos:
        missing = [c for c in cols if c not in info["columns"]]
        if missing:
            raise FileFormatError(
                f"{info['path']}: spacecraft table SC_DATA has no column "
                f"{', '.join(repr(c) for c in missing)} (needed here); it has "
                f"{', '.join(info['columns'])}"
            )
    infos.sort(key=lambda d: d["tstart"])
    return [d["path"] for d in infos]


def iter_ft2_chunks(
    files,
    columns: Sequence[str] | None = None,
    *,
    chunk_rows: int = 250_000,
    tmin: float | None = None,
    tmax: float | None = None,
    stats: dict | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield dicts ``{column: array}`` of at most ``chunk_rows`` rows, file after file in
    order of their first START (as stored within a file).  ``columns=None`` gives every
    column.  With ``tmin``/``tmax`` only rows with STOP > tmin and START < tmax are
    yielded (chunks that become empty are skipped).  Missing columns raise
    :class:`FileFormatError` naming the column and the file before any row is read.

    Rows with NaN in a column of :data:`FT2_CHECKED_COLUMNS` that is read, or a negative
    LIVETIME, are dropped; once the rows are exhausted a warning counts them and the
    livetime lost.  ``stats``, a dict, receives ``coverage`` (list of (start, stop) arrays:
    the time spanned by the rows read, dropped rows included, since the spacecraft was
    there), ``rows_dropped``, ``livetime_dropped`` [s] and ``dropped_by`` (column -> rows)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    paths = _resolve(files)
    if columns is not None:
        cols = [c.upper() for c in columns]
        if (tmin is not None or tmax is not None):
            extra = [c for c in ("START", "STOP") if c not in cols]
        else:
            extra = []
        paths = check_ft2_columns(paths, cols + extra)
    else:
        cols, extra = None, []
        if len(paths) > 1:
            paths = check_ft2_columns(paths, [])
    if stats is None:
        stats = {}
    stats.setdefault("coverage", [])
    stats.setdefault("rows_dropped", 0)
    stats.setdefault("rows_read", 0)
    stats.setdefault("livetime_dropped", 0.0)
    stats.setdefault("dropped_by", {})
    stats.setdefault("files", [str(p) for p in paths])
    for p in paths:
        with open_ft2(p) as t:
            use = list(t.columns) if cols is None else cols
            if cols is None and (tmin is not None or tmax is not None):
                t.check_columns(["START", "STOP"])
            # START/STOP (for the coverage) and LIVETIME (for the livetime lost) ride along
            ride = [c for c in ("START", "STOP", "LIVETIME") if c in t.columns
                    and c not in use and c not in extra]
            while True:
                chunk = t.read_rows(chunk_rows, use + extra + ride)
                if chunk is None:
                    break
                chunk = drop_bad_ft2_rows(chunk, stats)
                for r in ride:
                    chunk.pop(r)
                if tmin is not None or tmax is not None:
                    keep = np.ones(len(chunk["START"]), dtype=bool)
                    if tmin is not None:
                        keep &= chunk["STOP"] > tmin
                    if tmax is not None:
                        keep &= chunk["START"] < tmax
                    if not keep.any():
                        if tmax is not None and chunk["START"][0] >= tmax:
                            break  # rows are time ordered within a file
                        continue
                    if not keep.all():
                        chunk = {k: v[keep] for k, v in chunk.items()}
                for e in extra:
                    chunk.pop(e)
                yield chunk
    if stats["rows_dropped"]:
        import warnings

        why = ", ".join(f"{k}: {v}" for k, v in stats["dropped_by"].items())
        warnings.warn(
            f"spacecraft data {', '.join(stats['files'])}: dropped {stats['rows_dropped']} of "
            f"{stats['rows_read']} rows read with NaN or negative values ({why}); "
            f"{stats['livetime_dropped']:.1f} s of livetime lost", stacklevel=2)


def drop_bad_ft2_rows(chunk: dict, stats: dict) -> dict:
    """``chunk`` without the rows that have NaN in a column of :data:`FT2_CHECKED_COLUMNS`
    or a negative LIVETIME; ``stats`` (see :func:`iter_ft2_chunks`) is updated."""
    for k, v in (("coverage", []), ("rows_dropped", 0), ("livetime_dropped", 0.0),
                 ("dropped_by", {})):
        stats.setdefault(k, v)
    n = len(next(iter(chunk.values()))) if chunk else 0
    stats["rows_read"] = stats.get("rows_read", 0) + n
    if "START" in chunk and "STOP" in chunk:
        s, e = chunk["START"], chunk["STOP"]
        ok = np.isfinite(s) & np.isfinite(e) & (e > s)
        if ok.any():
            stats["coverage"].append((s[ok].copy(), e[ok].copy()))
    bad = np.zeros(n, dtype=bool)
    for c in FT2_CHECKED_COLUMNS:
        if c in chunk and chunk[c].dtype.kind == "f":
            b = np.isnan(chunk[c]) if chunk[c].ndim == 1 else np.isnan(chunk[c]).any(axis=1)
            if c == "LIVETIME":
                b = b | (chunk[c] < 0)
            nb = int(np.count_nonzero(b & ~bad))
            if nb:
                key = "LIVETIME NaN or < 0" if c == "LIVETIME" else f"{c} NaN"
                stats["dropped_by"][key] = stats["dropped_by"].get(key, 0) + nb
            bad |= b
    if not bad.any():
        return chunk
    stats["rows_dropped"] += int(np.count_nonzero(bad))
    if "LIVETIME" in chunk:
        lt = chunk["LIVETIME"][bad]
        stats["livetime_dropped"] += float(np.sum(lt[np.isfinite(lt) & (lt > 0)]))
    keep = ~bad
    return {k: v[keep] for k, v in chunk.items()}


def read_ft2(files, columns: Sequence[str] | None = None, *, tmin=None, tmax=None,
             chunk_rows: int = 1_000_000) -> dict[str, np.ndarray]:
    """The whole SC_DATA table (``columns``, default all) of one or several FT2 files as a
    dict of numpy arrays, sorted by START (files may be given in any order)."""
    parts: dict[str, list] = {}
    for chunk in iter_ft2_chunks(files, columns, chunk_rows=chunk_rows, tmin=tmin, tmax=tmax):
        for k, v in chunk.items():
            parts.setdefault(k, []).append(v)
    if not parts:
        names = [c.upper() for c in columns] if columns is not None else \
            ft2_info(_resolve(files)[0])["columns"]
        return {c: np.zeros(0) for c in names}
    out = {k: np.concatenate(v) if len(v) > 1 else v[0] for k, v in parts.items()}
    if "START" in out:
        st = out["START"]
        if st.size > 1 and np.any(st[1:] < st[:-1]):
            order = np.argsort(st, kind="stable")
            out = {k: v[order] for k, v in out.items()}
    return out
