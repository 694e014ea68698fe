"""Event selection (gtselect), good time intervals (gtmktime), the filter parser and
counts binning (gtbin).

Names are imported from their modules on first use, so that planning a run (which only
parses the filter expression) does not load the numba kernels of the binning."""

import importlib

_EXPORTS = {
    "bin_counts": "binning", "energy_bin_index": "binning", "pixel_index": "binning",
    "event_mask": "cuts", "resolve_center": "cuts", "select_events": "cuts",
    "FilterExpression": "filter", "evaluate_filter": "filter", "filter_columns": "filter",
    "parse_filter": "filter",
    "clip": "gti", "from_mask": "gti", "in_gti": "gti", "intersect": "gti", "make_gti": "gti",
    "make_gti_dataset": "gti", "ontime": "gti", "roi_zenith_mask": "gti", "union": "gti",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
