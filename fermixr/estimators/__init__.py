"""Estimators: functions from a frozen analysis state (:mod:`fermixr.likelihood.roi`) and
options to results.

Each estimator lives in ``estimators/<name>.py`` as one function ``(state, name=None, *,
options...)`` whose keyword names and defaults are those of its recipe section, and is
registered here with a version (part of its cache key), the product contract its Dataset
meets (``schemas/products/<product>.schema.json``) and its recipe section.  It returns an
:class:`EstimatorResult`: the Dataset and, optionally, a proposed sky model (with the fit
that belongs to it) that the caller may adopt.  An estimator never changes the state it was
given; the state is frozen.

    >>> import fermixr.estimators as e
    >>> sorted(e.available())                                     # doctest: +SKIP
    ['bowtie', 'fit', 'optimize', 'profile', 'profile_norm', 'sourcedict', 'ts']
    >>> res = e.run("ts", state, "Crab")                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Callable

from ..errors import EstimatorError

__all__ = ["Estimator", "EstimatorResult", "register", "available", "get", "run"]

_MODULES = ("fit", "optimize", "profile", "bowtie", "sourcedict", "ts", "residmap", "tsmap",
            "sed", "tscube", "localize", "find_sources", "extension", "curvature")


@dataclasses.dataclass(frozen=True)
class EstimatorResult:
    """An estimator's Dataset and, optionally, a proposed state (e.g. the model after a fit
    or a localization) that the caller may adopt."""

    dataset: object
    state: object = None


@dataclasses.dataclass(frozen=True)
class Estimator:
    name: str
    version: str
    product: str
    func: Callable
    section: str | None = None      # the recipe section holding its options
    needs_source: bool = True       # takes a source name
    description: str = ""

    @property
    def options(self) -> dict:
        """Keyword options and their defaults, from the function's signature."""
        sig = inspect.signature(self.func)
        return {p.name: p.default for p in sig.parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}


_REGISTRY: dict[str, Estimator] = {}


def register(name: str, *, version: str, product: str, section: str | None = None,
             needs_source: bool = True):
    """Decorator registering ``func`` as the estimator ``name``."""

    def deco(func):
        old = _REGISTRY.get(name)
        if old is not None and old.func is not func:
            raise ValueError(f"estimator {name!r} registered twice")
        doc = (func.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Estimator(name, str(version), product, func, section, needs_source,
                                    doc[0] if doc else "")
        return func

    return deco


def _load() -> None:
    for m in _MODULES:
        importlib.import_module(f"{__name__}.{m}")


def available() -> list[str]:
    """The names of the registered estimators."""
    _load()
    return sorted(_REGISTRY)


def get(name: str) -> Estimator:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EstimatorError(f"unknown estimator {name!r}; available: "
                             f"{', '.join(sorted(_REGISTRY))}") from None


def run(name: str, state, source: str | None = None, **options) -> EstimatorResult:
    """Run the estimator ``name`` on ``state`` (for ``source`` when it takes one)."""
    est = get(name)
    unknown = sorted(set(options) - set(est.options))
    if unknown:
        raise EstimatorError(f"{name}: unknown option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(est.options))}")
    if est.needs_source:
        if source is None:
            raise EstimatorError(f"{name}: needs a source name")
        return est.func(state, source, **options)
    return est.func(state, **options)
