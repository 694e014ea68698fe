"""Reading the binary tables of likelihood-profile ("castro") files: Fermipy's SED file
(HDU ``SED``) and its TS-cube / castro file (``SCANDATA`` + ``EBOUNDS``).

Only the file access lives here: :mod:`fermixr.estimators.castro` turns the tables into
profiles.  A table comes back as a :class:`FitsTable`: lower-case column names (Fermipy's
readers lower-case them and read the old ``dfde`` spelling as ``dnde``), float64 arrays, the
column units and the header cards.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError

__all__ = ["FitsTable", "table_hdu_names", "read_fits_table"]


@dataclasses.dataclass(frozen=True)
class FitsTable:
    """One binary-table HDU (or one row of it): ``columns`` maps the lower-case column name
    to its values (numeric columns as float64), ``units`` to its TUNIT string ('' if none)."""

    path: str
    hdu: str
    columns: dict
    units: dict
    header: dict
    nrows: int

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


def _canonical(name: str) -> str:
    return name.lower().replace("dfde", "dnde")


def _open(path):
    from astropy.io import fits

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such file (expected a FITS file with likelihood "
                             f"profiles: a SED file or a TS-cube file)")
    try:
        return fits.open(p, memmap=True)
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{p}: not a readable FITS file ({exc})") from None


def table_hdu_names(path) -> list[str]:
    """Names (upper case, in file order) of the binary-table HDUs of ``path``; an unnamed
    table is listed as ``HDU<n>``."""
    from astropy.io import fits

    with _open(path) as hdul:
        out = []
        for i, h in enumerate(hdul):
            if isinstance(h, fits.BinTableHDU):
                out.append((h.name or f"HDU{i}").upper())
        return out


def read_fits_table(path, hdu, row: int | None = None) -> FitsTable:
    """The table ``hdu`` (a name or an index) of ``path``; with ``row``, that row only
    (vector columns then keep their per-row shape)."""
    from astropy.io import fits

    with _open(path) as hdul:
        try:
            h = hdul[hdu]
        except (KeyError, IndexError):
            names = [x.name for x in hdul]
            raise FileFormatError(f"{path}: no HDU {hdu!r} (the file has "
                                  f"{', '.join(names)})") from None
        if not isinstance(h, fits.BinTableHDU):
            raise FileFormatError(f"{path}: HDU {hdu!r} is not a binary table")
        data = h.data
        nrows = 0 if data is None else len(data)
        if row is not None:
            if not -nrows <= int(row) < nrows:
                raise FileFormatError(f"{path}: HDU {h.name}: row {row} does not exist "
                                      f"(the table has {nrows} rows)")
        columns, units = {}, {}
        for col in h.columns:
            key = _canonical(col.name)
            if data is None:
                vals = np.zeros((0,))
            else:
                vals = data[col.name] if row is None else data[col.name][int(row)]
            vals = np.array(vals)
            if vals.dtype.kind in "fiub":
                vals = vals.astype(np.float64)
            columns[key] = vals
            units[key] = (col.unit or "").strip()
        header = {k: h.header[k] for k in h.header if k}
        return FitsTable(path=str(path), hdu=h.name or str(hdu), columns=columns,
                         units=units, header=header, nrows=1 if row is not None else nrows)
