"""The likelihood quantities of one source: model counts (npred, per bin and map) and the
test statistic TS = 2 (log L with the source - log L with its flux at zero), the other
parameters held."""

from __future__ import annotations

import numpy as np

from ..likelihood.roi import AnalysisState, component_costs, loglike, loglike_scan
from . import register

__all__ = ["model_cubes", "npred", "ts_value", "ts"]


def model_cubes(state: AnalysisState, name: str | None = None, weighted: bool = False
                ) -> list[np.ndarray]:
    """Model counts (n_bins, n_pix) of each component: the whole model or one source
    (multiplied by the likelihood weights with ``weighted``)."""
    src = None if name is None else state.model.find(name).name
    out = []
    for comp, c in zip(state.components, component_costs(state)):
        m = c.model_cube(c.x0) if src is None else c.source_cube(src, c.x0)
        m = np.asarray(m).reshape(comp.counts.shape)
        if weighted and comp.wmap is not None:
            m = m * comp.wmap
        out.append(m)
    return out


def npred(state: AnalysisState, name: str | None = None, weighted: bool = False) -> float:
    """Predicted counts of one source (or the whole model), summed over components."""
    return float(sum(m.sum() for m in model_cubes(state, name, weighted)))


def ts_value(state: AnalysisState, name: str) -> float:
    """TS of a source (NaN for a diffuse background; a SpatialMap template source, which
    has a position, has one): its flux set to zero, same maps."""
    src = state.model.find(name)
    if src.position is None:
        return float("nan")
    norm = src.param(state.spectral(src).norm_param)
    # log L at the norm and at 0 from one cost: the second is an update by this source
    ll1, ll0 = loglike_scan(state, src.name, norm.name, [norm.value, 0.0], hold=False)
    return float(max(2.0 * (ll1 - ll0), 0.0))


@register("ts", version="1", product="ts")
def ts(state: AnalysisState, name: str):
    """TS, npred (plain and weighted) and log L of one source, other parameters held."""
    import xarray as xr

    from . import EstimatorResult

    src = state.model.find(name)
    ds = xr.Dataset(attrs={"fermixr_product": "ts", "name": src.name,
                           "ts": ts_value(state, src.name),
                           "npred": npred(state, src.name),
                           "npred_wt": npred(state, src.name, weighted=True),
                           "loglike": loglike(state)})
    return EstimatorResult(ds)
