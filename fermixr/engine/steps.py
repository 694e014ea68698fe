"""The step registry.

A step is a small frozen description (name, explicit version, the product contract it
writes, whether downstream keys use its key or its content) around a pure function::

    func(inputs: dict[str, xr.Dataset], params: dict, ctx: StepContext) -> xr.Dataset

Steps do no file I/O of their own beyond reading declared input files through ``fermixr.io``;
the engine opens input products and writes the output.  Bump ``version`` whenever a change
to the step (or anything it calls) changes its numbers: the version is part of the key.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Callable

from ..errors import RecipeError


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    version: str
    func: Callable
    product: str
    identity: str = "key"  # "key" or "content": what downstream cache keys see
    description: str = ""
    kind: str = "data"     # "data": a product of the plan; "state": an edit of the
    #                        analysis state, replayed; "result": an analysis result, cached


_REGISTRY: dict[str, Step] = {}


def register_step(name: str, *, version: str, product: str | None, identity: str = "key",
                  kind: str = "data"):
    """Decorator registering ``func`` as the step ``name``: a data step
    ``func(inputs, params, ctx) -> Dataset``, or an analysis step (``kind`` "state" or
    "result") ``func(state, params, ctx) -> (state, Dataset or None)``."""
    if kind not in ("data", "state", "result"):
        raise ValueError(f"step {name!r}: kind {kind!r}")

    def deco(func):
        if name in _REGISTRY and _REGISTRY[name].func is not func:
            raise ValueError(f"step {name!r} registered twice")
        doc = (func.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Step(name, version, func, product, identity, doc[0] if doc else "",
                               kind)
        return func

    return deco


def get_step(name: str) -> Step:
    _load_builtin_steps()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RecipeError(
            f"unknown step {name!r}; known steps: {', '.join(sorted(_REGISTRY))}"
        ) from None


def known_steps(kind: str | None = None) -> list[str]:
    """The registered steps (of one ``kind``)."""
    _load_builtin_steps()
    return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def _load_builtin_steps() -> None:
    from . import analysis_steps, prep_steps  # noqa: F401  (register the steps)


class StepContext:
    """What a running step may use besides its input products: its input files (role ->
    paths; their content hashes, not their paths, are in the key), progress reporting and,
    when the engine runs the step in the main process with a cluster, the dask client."""

    def __init__(self, name: str, files=None, client=None, verbose: bool = True, stream=None):
        self.name = name
        self.files = dict(files or {})
        self.client = client
        self.verbose = verbose
        self._stream = stream if stream is not None else sys.stderr
        self._last = 0.0

    def progress(self, done: float, total: float, what: str = "") -> None:
        """Report progress; throttled to one line every 2 s (and the last one)."""
        if not self.verbose or total <= 0:
            return
        now = time.monotonic()
        if done < total and now - self._last < 2.0:
            return
        self._last = now
        frac = min(max(done / total, 0.0), 1.0)
        bar = "#" * int(frac * 30)
        print(
            f"      {self.name}: [{bar:<30}] {100 * frac:5.1f}% {what}",
            file=self._stream,
            flush=True,
        )

    def info(self, msg: str) -> None:
        if self.verbose:
            print(f"      {self.name}: {msg}", file=self._stream, flush=True)
