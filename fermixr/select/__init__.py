"""Event selection (gtselect), good time intervals (gtmktime), the filter parser and
counts binning (gtbin)."""

from .binning import bin_counts, energy_bin_index, pixel_index
from .cuts import event_mask, resolve_center, select_events
from .filter import FilterExpression, evaluate_filter, filter_columns, parse_filter
from .gti import (
    clip,
    from_mask,
    in_gti,
    intersect,
    make_gti,
    make_gti_dataset,
    ontime,
    roi_zenith_mask,
    union,
)

__all__ = [
    "bin_counts", "energy_bin_index", "pixel_index",
    "event_mask", "resolve_center", "select_events",
    "FilterExpression", "evaluate_filter", "filter_columns", "parse_filter",
    "clip", "from_mask", "in_gti", "intersect", "make_gti", "make_gti_dataset", "ontime",
    "roi_zenith_mask", "union",
]
