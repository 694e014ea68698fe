"""Exception hierarchy.

Every error fermixr raises on purpose derives from :class:`FermixrError` and from the
builtin that fits it, so callers can catch either.  Messages name what came in (file, key
path, source, value), what was expected and, where it helps, the fix.
"""

from __future__ import annotations


class FermixrError(Exception):
    """Base class of all fermixr errors."""


class RecipeError(FermixrError, ValueError):
    """A recipe or configuration value is invalid (names the key path)."""


class InputFileError(FermixrError, FileNotFoundError):
    """An input file is missing or unreadable (names the file)."""


class FileFormatError(FermixrError, ValueError):
    """A file exists but is not what was expected (names the file, HDU or column)."""


class SelectionError(FermixrError, ValueError):
    """A data selection is invalid or selects nothing."""


class FilterSyntaxError(FermixrError, ValueError):
    """A gtmktime-style filter expression does not parse (names the position)."""


class IRFError(FermixrError, LookupError):
    """An instrument response cannot be found or evaluated."""


class GeometryError(FermixrError, ValueError):
    """A sky or energy geometry is invalid or inconsistent."""


class ProductError(FermixrError, ValueError):
    """A dataset does not conform to its data contract in ``schemas/products``."""


class StoreError(FermixrError, RuntimeError):
    """The product store is in a state that cannot be used."""


class StepError(FermixrError, RuntimeError):
    """A pipeline step failed while computing."""


class ModelError(FermixrError, ValueError):
    """A sky model, source or parameter value is invalid (names the source and parameter)."""


class LikelihoodError(FermixrError, ValueError):
    """The inputs of a likelihood (counts, maps, weights, priors) are invalid or
    inconsistent."""


class FitError(FermixrError, ValueError):
    """A fit cannot start: no free parameter, a start value outside its bounds, an invalid
    optimizer setting."""


class EstimatorError(FermixrError, ValueError):
    """An estimator's options or inputs are invalid (names the estimator and option)."""


class ResourceError(FermixrError, MemoryError):
    """A task needs more of a resource (memory) than any worker of the cluster offers."""
