"""Resolve the ways Fermipy accepts input files: one path, a list of paths, or a text
file list (``@list.txt`` or a path ending in ``.lst``/``.txt`` holding one path per line).

Paths are expanded for ``~`` and ``$ENV`` variables; relative paths in a list file are
taken relative to the list file's folder.  Every file must exist; the error names it.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

from ..errors import InputFileError

_LIST_SUFFIXES = (".lst", ".txt")


def expand_path(path: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """Expand ``~`` and ``$VAR`` in ``path``; make it absolute against ``base`` if given."""
    s = os.path.expandvars(os.path.expanduser(os.fspath(path)))
    p = Path(s)
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    return p


def resolve_files(spec, *, what: str = "input", base=None) -> list[Path]:
    """Return the list of existing files named by ``spec``.

    ``spec`` may be a path, ``@listfile``, a ``.lst``/``.txt`` list file, a glob pattern,
    or a sequence of any of these.  ``what`` names the option in error messages
    (e.g. ``"data.evfile"``).
    """
    if spec is None or (isinstance(spec, (list, tuple)) and len(spec) == 0):
        raise InputFileError(f"{what}: no file given")
    items: Iterable = spec if isinstance(spec, (list, tuple)) else [spec]
    out: list[Path] = []
    for item in items:
        out.extend(_resolve_one(item, what=what, base=base))
    if not out:
        raise InputFileError(f"{what}: {spec!r} names no file")
    return out


def _resolve_one(item, *, what: str, base) -> list[Path]:
    s = os.fspath(item)
    is_at = s.startswith("@")
    if is_at:
        s = s[1:]
    p = expand_path(s, base)
    if is_at or (p.suffix.lower() in _LIST_SUFFIXES and p.is_file()):
        if not p.is_file():
            raise InputFileError(f"{what}: file list {str(p)!r} does not exist")
        files: list[Path] = []
        with open(p) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                q = expand_path(line, p.parent)
                if not q.is_file():
                    raise InputFileError(
                        f"{what}: file list {str(p)!r} line {lineno} names "
                        f"{str(q)!r}, which does not exist"
                    )
                files.append(q)
        return files
    if any(ch in s for ch in "*?[") and not p.exists():
        matches = sorted(Path(m) for m in glob.glob(str(p)))
        if not matches:
            raise InputFileError(f"{what}: pattern {str(p)!r} matches no file")
        return matches
    if not p.exists():
        raise InputFileError(f"{what}: file {str(p)!r} does not exist")
    if not p.is_file():
        raise InputFileError(f"{what}: {str(p)!r} is not a file")
    return [p]
