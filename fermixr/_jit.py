"""The one numba policy of the package.

Kernels live in ``_kernels.py`` modules and import only this module.  ``njit`` compiles
with caching, ``nogil`` (so dask threads can run kernels side by side) and numpy's error
model (division by zero gives inf/nan as numpy does, no exception from inside a kernel).
``pnjit`` is the same with ``parallel=True`` for kernels that use ``prange``.

Trap: numba's on-disk cache is indexed by the Python function, so compiling ONE function
object with both ``njit`` and ``pnjit`` makes the second load the first's machine code (the
"parallel" variant silently runs on one thread).  Give a parallel variant a function object
of its own (e.g. a thin wrapper defined separately), as ``fermixr.exposure._kernels`` does.
"""

from __future__ import annotations

import os
import tempfile

import numba


def _ensure_cache_dir() -> None:
    # numba writes its cache beside the source or in ~/.cache; when neither is writable
    # the import of a cached kernel fails.  Only fill the variable when it is unset.
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    if os.access(here, os.W_OK) or os.access(os.path.expanduser("~"), os.W_OK):
        return
    numba.config.CACHE_DIR = os.path.join(tempfile.gettempdir(), "fermixr-numba-cache")


_ensure_cache_dir()

_POLICY = dict(cache=True, nogil=True, error_model="numpy")


def njit(*args, **kwargs):
    """``numba.njit`` with fermixr's policy (cache, nogil, numpy error model)."""
    opts = dict(_POLICY)
    opts.update(kwargs)
    if args and callable(args[0]) and len(args) == 1:
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


def pnjit(*args, **kwargs):
    """Parallel variant of :func:`njit` (``parallel=True``) for ``prange`` loops."""
    kwargs.setdefault("parallel", True)
    return njit(*args, **kwargs)


prange = numba.prange
