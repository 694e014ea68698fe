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
import sys
import tempfile
import threading

import numba
from numba.core import event as _numba_event


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

ANNOUNCEMENT = ("fermixr: compiling numba kernels for this machine (first run only: later "
                "runs load them from the cache) ...")


class _FirstCompileNotice(_numba_event.Listener):
    """Announces, once per process and only on a terminal, that a fermixr kernel is being
    compiled (a cache miss: numba sends no compile event when it loads a cached kernel).
    A first run spends tens of seconds there with nothing else to show."""

    def __init__(self):
        self._done = False
        self._lock = threading.Lock()

    def on_start(self, event):
        if self._done:
            return
        disp = (event.data or {}).get("dispatcher")
        module = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
        if not module.startswith("fermixr."):
            return
        with self._lock:
            if self._done:
                return
            self._done = True
        stream = sys.stderr
        try:
            if stream is not None and stream.isatty():
                print(ANNOUNCEMENT, file=stream, flush=True)
        except (ValueError, OSError):   # a closed or detached stream: stay quiet
            pass

    def on_end(self, event):
        pass


_numba_event.register("numba:compile", _FirstCompileNotice())


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
