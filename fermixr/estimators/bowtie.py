"""The spectrum of a source with its 1-sigma band from the fit's covariance."""

from __future__ import annotations

import numpy as np

from ..likelihood.roi import AnalysisState
from . import EstimatorResult, register

__all__ = ["physical_covariance", "bowtie_values", "bowtie"]


def physical_covariance(state: AnalysisState, src, idx) -> np.ndarray:
    """Covariance (physical units) of the source's free parameters ``idx`` from the fit of
    the state's model, else the diagonal of their errors."""
    scales = np.array([src.spectral[i].scale for i in idx])
    fc = state.fit_covariance()
    if fc is not None:
        names, cov = fc
        keys = [f"{src.name}:{src.spectral[i].name}" for i in idx]
        if all(k in names for k in keys):
            j = [names.index(k) for k in keys]
            return cov[np.ix_(j, j)] * np.outer(scales, scales)
    errs = np.array([src.spectral[i].error or 0.0 for i in idx]) * np.abs(scales)
    return np.diag(errs ** 2)


def bowtie_values(state: AnalysisState, name: str, loge=None, npts: int = 50) -> dict:
    """energies (MeV), dnde, dnde_err, dnde_lo, dnde_hi, dnde_ferr (fractional)."""
    src = state.model.find(name)
    sm = state.spectral(src)
    p = src.spectral_values()
    idx = np.flatnonzero([q.free for q in src.spectral])
    cov = physical_covariance(state, src, idx)
    if loge is None:
        emin, emax = state.energy_range
        e = np.geomspace(emin, emax, int(npts))
    else:
        e = 10 ** np.asarray(loge, dtype=float)
    f = np.asarray(sm.evaluate(e, p), dtype=float)
    err = np.zeros_like(f)
    if idx.size:
        g = np.asarray(sm.gradient(e, p), dtype=float)[idx]
        err = np.sqrt(np.clip(np.einsum("ai,ab,bi->i", g, cov, g), 0, None))
    return {"energies": e, "dnde": f, "dnde_err": err, "dnde_lo": f - err,
            "dnde_hi": f + err, "dnde_ferr": err / f}


def bowtie_dataset(result: dict, name: str):
    import xarray as xr

    unit = {"units": "ph cm-2 s-1 MeV-1"}
    return xr.Dataset(
        {k: ("energy", result[k], unit) for k in ("dnde", "dnde_err", "dnde_lo", "dnde_hi")}
        | {"dnde_ferr": ("energy", result["dnde_ferr"])},
        coords={"energy": ("energy", result["energies"], {"units": "MeV"})},
        attrs={"fermixr_product": "bowtie", "name": str(name)})


@register("bowtie", version="1", product="bowtie")
def bowtie(state: AnalysisState, name: str, *, loge=None, npts: int = 50):
    """dN/dE of a source and its 1-sigma band from the fit covariance."""
    src = state.model.find(name)
    return EstimatorResult(bowtie_dataset(bowtie_values(state, src.name, loge, npts),
                                          src.name))
