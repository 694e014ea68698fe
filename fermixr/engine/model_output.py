"""Files the everyday Analysis methods write besides ``write_roi``: model counts cubes per
component (``write_model_map``), the ROI plots (``make_plots``) and FileFunction tables
(``set_source_dnde``); every file goes through the atomic writer of
:mod:`fermixr.engine.roi_output`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import GeometryError, ModelError
from ..likelihood.roi import AnalysisState
from .roi_output import roi_files, write_atomic

__all__ = ["write_model_map", "make_plots", "PLOTS", "set_source_dnde"]

# the plots make_plots writes, per component (suffix _NN with several components)
PLOTS = ("counts_spectrum", "counts_map")


def write_model_map(state: AnalysisState, config: dict, outdir, model_name=None,
                    name=None) -> dict:
    """Model counts cube of each component (the whole model, or the source ``name``) in
    gtmodel's layout: ``mcube_<model_name>_NN.fits`` in ``outdir`` (``mcube_NN.fits``
    without a model name).  Returns {"mcube_NN": path}."""
    from ..estimators.ts import model_cubes
    from ..io.st_fits import write_ccube

    src = None if name is None else state.model.find(name).name
    stem = "mcube" if not model_name else f"mcube_{model_name}"
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, (comp, m) in enumerate(zip(state.components, model_cubes(state, src))):
        ref = comp.template
        if ref is None:
            raise GeometryError("write_model_map: this analysis state has no counts "
                                "template (coordinates and WCS) to write a cube with")
        ds = ref.drop_vars("counts").assign(
            model_counts=(ref["counts"].dims, m.reshape(ref["counts"].shape)))
        path = outdir / f"{stem}_{i:02d}.fits"
        paths[f"mcube_{i:02d}"] = write_atomic(path, lambda tmp, ds=ds: write_ccube(
            ds, tmp, config=config, var="model_counts", dtype=np.float32))
    return paths


def make_plots(state: AnalysisState, outdir, prefix: str, mcube_map=None) -> dict:
    """The plots fermixr makes of an ROI (:data:`PLOTS`): per component the counts
    spectrum (data, model and its brightest sources, residuals) and the counts map
    (counts, model, residual significance), as ``<prefix>_counts_spectrum.png`` and
    ``<prefix>_counts_map.png``.  ``mcube_map``: model counts to show instead of the
    current model's (one array per component, or one array for one component)."""
    from ..estimators.ts import model_cubes
    from .roi_output import _write_plots

    files = roi_files(outdir, len(state.components), prefix or "roi", make_plots=True)
    Path(files["npy"]).parent.mkdir(parents=True, exist_ok=True)
    if mcube_map is None:
        cubes = model_cubes(state)
    else:
        given = [mcube_map] if len(state.components) == 1 and not isinstance(
            mcube_map, (list, tuple)) else list(mcube_map)
        if len(given) != len(state.components):
            raise GeometryError(f"make_plots: {len(given)} model cube(s) for "
                                f"{len(state.components)} components")
        cubes = []
        for comp, m in zip(state.components, given):
            m = np.asarray(getattr(m, "values", m), dtype=float)
            if m.size != comp.counts.size:
                raise GeometryError(f"make_plots: a model cube of shape {m.shape} for "
                                    f"counts of {comp.counts.size} values")
            cubes.append(m.reshape(comp.counts.shape))
    return _write_plots(state, files, cubes)


def set_source_dnde(state: AnalysisState, name, dnde, outdir) -> AnalysisState:
    """A FileFunction source with the table values ``dnde`` (one per energy of its
    table), written as ``<outdir>/<name>_dnde.txt`` and used from there (Fermipy's
    set_source_dnde)."""
    from ..estimators.edits import _replace
    from ..estimators.edits_more import get_source_dnde

    src = state.model.find(name)
    if src.spectrum != "FileFunction":
        raise ModelError(f"set_source_dnde: {src.name!r} has a {src.spectrum} spectrum; "
                         "only a FileFunction has a dN/dE table (use set_parameter)")
    loge, old = get_source_dnde(state, src.name)
    v = np.asarray(dnde, dtype=float).ravel()
    if v.size != old.size or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ModelError(f"set_source_dnde({src.name!r}): expected {old.size} finite "
                         f"positive values (one per energy of its table), got {v.size}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{src.name.replace(' ', '_').replace('/', '_')}_dnde.txt"
    text = "".join(f"{10 ** e:.10g} {f:.10g}\n" for e, f in zip(loge, v))
    write_atomic(path, lambda tmp: tmp.write_text(text))
    comps = []
    for c in state.components:         # a component's own isodiff table would win
        if c.model is not None and src.name in c.model:
            own = c.model.find(src.name)
            c = c.replace(model=c.model.replace_source(own.replace(spectrum_file=str(path))))
        comps.append(c)
    state = state.replace(components=comps)
    return _replace(state, src.replace(spectrum_file=str(path)))
