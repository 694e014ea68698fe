"""Path spellings of Science Tools and Fermipy files: ``$VAR``, ``${VAR}``, ``$(VAR)`` and
``~`` expanded, relative names joined to the folder of the file that names them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InputFileError

__all__ = ["expand_path", "find_file"]

_ENV_RE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}"
                     r"|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_path(path: str | os.PathLike, base: str | os.PathLike | None = None,
                env: dict | None = None) -> str:
    """``path`` with ``$VAR``, ``${VAR}``, ``$(VAR)`` and ``~`` expanded and, when still
    relative, joined to ``base``.  Undefined variables are left as written (the file is
    then reported missing with the variable's name in it)."""
    env = os.environ if env is None else env

    def sub(m):
        key = m.group(1) or m.group(2) or m.group(3)
        return env.get(key, m.group(0))

    s = _ENV_RE.sub(sub, os.fspath(path))
    s = os.path.expanduser(s)
    if base is not None and not os.path.isabs(s) and not s.startswith("$"):
        s = os.path.join(os.fspath(base), s)
    return os.path.normpath(s) if not s.startswith("$") else s


def find_file(f: str, dirs: list[Path], where: str, what: str) -> str:
    """The file ``f`` (``$VARS`` and ``~`` expanded): itself when absolute, else the first
    ``dir / f`` that exists.  InputFileError names ``where``, ``what`` and the folders."""
    s = expand_path(f)
    if os.path.isabs(s):
        if os.path.isfile(s):
            return s
    else:
        for d in dirs:
            q = d / s
            if q.is_file():
                return str(q)
    looked = "" if os.path.isabs(s) else f" in {', '.join(str(d) for d in dirs) or '(no folders)'}"
    raise InputFileError(f"{where}: {what} {f!r} not found{looked}")
