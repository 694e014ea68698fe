"""Science Tools XML model files as files: reading their bytes and writing their text
atomically.  Parsing them into sources and writing sources as XML is
:mod:`fermixr.model.xml`."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputFileError
from .paths import expand_path

__all__ = ["read_xml_bytes", "write_text_atomic"]


def read_xml_bytes(path: str | os.PathLike, *, env: dict | None = None) -> tuple[Path, bytes]:
    """(the expanded path, the content) of an XML model file; InputFileError names the file
    (and what it expanded to) when it does not exist."""
    p = Path(expand_path(path, env=env))
    if not p.is_file():
        raise InputFileError(f"XML model file {os.fspath(path)!r} not found"
                             + (f" (expanded to {str(p)!r})" if str(p) != os.fspath(path) else ""))
    return p, p.read_bytes()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary sibling renamed into place,
    making the folder if needed.  Returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p
