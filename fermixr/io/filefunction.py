"""Science Tools FileFunction tables: text files of two or three whitespace-separated
columns (energy in MeV, dN/dE, an optional error that is ignored) with ``#`` comments, as
the isotropic templates ``iso_*.txt``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError

__all__ = ["read_filefunction_table"]


def read_filefunction_table(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(energy MeV, dN/dE) columns of a FileFunction file, in file order (the checks of
    positivity and order are the spectral model's).  InputFileError / FileFormatError name
    the file and the line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputFileError(f"FileFunction file {str(path)!r} does not exist")
    rows = []
    with open(path, "r") as fh:
        for k, line in enumerate(fh, start=1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            tok = s.split()
            if len(tok) < 2:
                raise FileFormatError(f"FileFunction file {str(path)!r} line {k}: expected "
                                      f"two or three columns (energy MeV, dN/dE[, error]); "
                                      f"got {s!r}")
            try:
                rows.append((float(tok[0]), float(tok[1])))
            except ValueError:
                raise FileFormatError(f"FileFunction file {str(path)!r} line {k}: "
                                      f"{s!r} is not numeric") from None
    if not rows:
        raise FileFormatError(f"FileFunction file {str(path)!r} holds no data rows")
    arr = np.asarray(rows)
    return arr[:, 0], arr[:, 1]
