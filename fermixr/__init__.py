"""fermixr: Fermi-LAT analysis on xarray and zarr, without the Science Tools."""

from ._version import __version__

__all__ = ["__version__", "open_run", "Analysis", "GTAnalysis"]


def __getattr__(name):
    # fermixr.Analysis without importing the analysis stack at ``import fermixr``
    if name in ("Analysis", "GTAnalysis"):
        from .api.analysis import Analysis

        return Analysis
    raise AttributeError(f"module 'fermixr' has no attribute {name!r}")


def open_run(run_dir):
    """Open the products of a run directory as a read-only mapping name -> Dataset."""
    from .engine.run import open_run as _open_run

    return _open_run(run_dir)
