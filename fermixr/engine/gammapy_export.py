"""A run as Gammapy MapDatasets (``fermixr export RUN --format gammapy``).

For each component of the run, one FITS file in Gammapy's MapDataset layout
(``mapdataset_NN.fits``, read by ``gammapy.datasets.MapDataset.read``), plus the exported
sources as Gammapy models (``gammapy_models.yaml``, read by ``Models.read``) and a datasets
file naming both (``gammapy_datasets.yaml``, ``Datasets.read(filename=...,
filename_models=...)``).  Gammapy is not needed to write them.

What Gammapy's ``npred`` then reproduces is fermixr's likelihood model of the fitted run:

* **true-energy axis**: the bins between fermixr's true-energy nodes (the counts-bin edges,
  extended by ``gtlike.edisp_bins`` bins on each side with energy dispersion): the ``drm``
  product is exactly a kernel from these bins to the measured ones.
* **exposure**: fermixr predicts the counts of true bin k with the log-log trapezoid
  ln(E_k+1/E_k)/2 (E_k f(E_k) S_k + E_k+1 f(E_k+1) S_k+1) on source maps S at the nodes;
  Gammapy multiplies the spectrum's integral over the bin by one exposure per bin.  The
  exposure written for bin k is fermixr's trapezoid of the exposure cube weighted by the
  spectrum f of the exported source(s) at the fitted parameters, divided by f's integral
  over the bin: at the fitted spectrum Gammapy's counts equal fermixr's, and a change of
  spectral index by dG changes the ratio only at order dG x (bin width)^2.
* **PSF**: fermixr's exposure-weighted PSF (``psf_table``, what its point-source maps
  use) at the position of the exported source (of most counts, when several), combined per
  true bin with the same spectral weights as the exposure, on a coarse sky grid (the PSF
  varies by far less than a per cent across an ROI; the PSF exposure of each coarse pixel
  is the dataset's exposure under its centre).
* **energy dispersion**: the ``drm`` product transposed (an identity kernel without
  dispersion).
* **background**: fermixr's predicted counts of every other source of the fitted model
  (measured energy, dispersed as fermixr disperses them); the FoVBackgroundModel written
  with it keeps its norm at 1, frozen.
* **masks**: MASK_SAFE everywhere true (fermixr's counts cube holds only selected
  events); MASK_FIT true everywhere, or where ``gtlike.wmap`` is 1 when its weights are 0
  or 1 (Gammapy has no likelihood weights: other weights are refused).

Exported sources: ``sources`` names them; by default every point, RadialGaussian or
RadialDisk source with a free spectral parameter in the fitted model (if none, the one
nearest the ROI centre).  Several exported sources share one exposure, exact for their
summed spectrum: a source whose counts Gammapy would then miss by more than 1% in a bin is
named in a warning (export it alone).  A named source that does not map to Gammapy is refused, naming
it; a default one is folded into the background, with a warning naming it.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import GeometryError, InputFileError, ModelError, ProductError

__all__ = ["export_gammapy", "fitted_model", "select_sources", "true_bin_weights"]

PSF_GRID_DEG = 10.0
"""Target pixel size (deg) of the coarse sky grid of the PSF and energy-dispersion maps
(at least 2 x 2 pixels)."""


def fitted_model(run_dir: Path):
    """The sky model after the run's analysis steps (from the last result product), or
    :class:`~fermixr.errors.ProductError` when the run holds no successful fit."""
    from ..model.skymodel import SkyModel
    from .steps import get_step
    from .run import read_run_record
    from .store import ProductStore, read_attrs

    doc = read_run_record(run_dir)
    records = [r for r in doc.get("analysis_steps", []) if r.get("step") in _RESULT_STEPS()]
    fits = [r for r in records if r["step"] in ("fit", "optimize")]
    if not fits:
        raise ProductError(f"run {str(run_dir)!r} holds no fit (no fit or optimize step in "
                           "its run.json): a Gammapy export needs the fitted model; add "
                           "`- fit` to the recipe's steps and run it again")
    if fits[-1].get("status") == "failed":
        raise ProductError(f"run {str(run_dir)!r}: its last fit (step {fits[-1]['step']}, "
                           f"{fits[-1]['key'][:12]}) failed; fix the fit before exporting")
    store = ProductStore(doc.get("store") or run_dir / ".store")
    last = records[-1]
    path = store.path(get_step(last["step"]).product, last["key"])
    try:
        attrs = read_attrs(path)
    except OSError:
        raise ProductError(f"run {str(run_dir)!r}: the product of its step {last['step']} "
                           f"({last['key'][:12]}) is missing from {str(store.root)!r}; run "
                           "the recipe again") from None
    if "model" not in attrs:
        raise ProductError(f"run {str(run_dir)!r}: the product of step {last['step']} "
                           "records no model")
    return SkyModel.from_dict(json.loads(attrs["model"]))


def _RESULT_STEPS():
    from .steps import known_steps

    return set(known_steps("result"))


def _mappable(src) -> str | None:
    """Why ``src`` cannot be exported to Gammapy, or None."""
    from ..io.gammapy_maps import SPATIAL, SPECTRA

    if src.spatial_model not in SPATIAL:
        return (f"source {src.name!r}: spatial model {src.spatial_model!r} has no Gammapy "
                f"counterpart (mapped: {', '.join(SPATIAL)})")
    if src.spectrum not in SPECTRA:
        return (f"source {src.name!r}: spectrum {src.spectrum!r} has no Gammapy counterpart "
                f"(mapped: {', '.join(SPECTRA)})")
    return None


def select_sources(model, names=None, roi_center=None) -> tuple[list, list]:
    """(sources to export, default sources folded into the background as unmappable)."""
    if names:
        out = []
        for n in names:
            src = model.find(n)
            why = _mappable(src)
            if why:
                raise ModelError(f"cannot export {why}; export other sources (--sources) or "
                                 "leave it in the background")
            out.append(src)
        return out, []
    extended = [s for s in model if not s.is_diffuse and s.skydir is not None]
    picked = [s for s in extended if any(p.free for p in s.spectral)]
    if not picked and extended:
        if roi_center is not None:
            from ..geom.frames import angular_separation

            d = [float(angular_separation(roi_center[0], roi_center[1], *s.skydir))
                 for s in extended]
            picked = [extended[int(np.argmin(d))]]
        else:
            picked = extended[:1]
    ok = [s for s in picked if _mappable(s) is None]
    folded = [s for s in picked if _mappable(s) is not None]
    if not ok:
        raise ModelError("no source of the fitted model can be exported to Gammapy"
                         + (f" ({'; '.join(_mappable(s) for s in folded)})" if folded else
                            " (no point, RadialGaussian or RadialDisk source)"))
    return ok, folded


def true_bin_weights(nodes, dnde, flux):
    """(lo, hi), each (n_bins,): the exposure of true bin k for Gammapy is
    lo_k A(E_k) + hi_k A(E_k+1), so that Gammapy's flux x exposure equals fermixr's
    trapezoid ln(E_k+1/E_k)/2 (E_k f_k A_k + E_k+1 f_k+1 A_k+1) for the spectrum ``dnde``
    (at the nodes) whose integrals over the bins are ``flux``.  Where the spectrum
    vanishes, weights of an E^-2 spectrum."""
    e = np.asarray(nodes, dtype=np.float64)
    f = np.asarray(dnde, dtype=np.float64)
    F = np.asarray(flux, dtype=np.float64)
    half = 0.5 * np.log(e[1:] / e[:-1])
    ok = (F > 0) & (f[:-1] > 0) & (f[1:] > 0)
    f2 = e ** -2.0
    F2 = 1.0 / e[:-1] - 1.0 / e[1:]
    fl = np.where(ok, f[:-1], f2[:-1])
    fh = np.where(ok, f[1:], f2[1:])
    FF = np.where(ok, F, F2)
    return half * e[:-1] * fl / FF, half * e[1:] * fh / FF


def _coarse_grid(geom, wcs: dict, step_deg: float):
    """(FITS cards, the column and row of the dataset pixel under each pixel centre (each
    (cy, cx))) of a coarse grid over the footprint of ``geom`` (same projection and
    reference)."""
    nx, ny = geom.nx, geom.ny
    cx = max(2, math.ceil(nx * abs(geom.cdelt[0]) / step_deg))
    cy = max(2, math.ceil(ny * abs(geom.cdelt[1]) / step_deg))
    hdr = dict(wcs)
    hdr.update(NAXIS1=cx, NAXIS2=cy,
               CDELT1=float(wcs["CDELT1"]) * nx / cx, CDELT2=float(wcs["CDELT2"]) * ny / cy,
               CRPIX1=(float(wcs["CRPIX1"]) - 0.5) * cx / nx + 0.5,
               CRPIX2=(float(wcs["CRPIX2"]) - 0.5) * cy / ny + 0.5)
    yc, xc = np.mgrid[0:cy, 0:cx].astype(np.float64)
    ix = np.clip(np.floor((xc + 0.5) * nx / cx).astype(int), 0, nx - 1)
    iy = np.clip(np.floor((yc + 0.5) * ny / cy).astype(int), 0, ny - 1)
    return hdr, ix, iy


def _source_spectrum(state, comp, sources, nodes):
    """dN/dE at ``nodes`` and the integrals over the bins between them, summed over
    ``sources`` at their fitted parameters."""
    dnde = np.zeros(nodes.size)
    flux = np.zeros(nodes.size - 1)
    for s in sources:
        m = state.spectral(s, comp)
        p = s.spectral_values()
        dnde += np.asarray(m.evaluate(nodes, p), dtype=np.float64)
        flux += np.asarray(m.flux(nodes[:-1], nodes[1:], p), dtype=np.float64)
    return dnde, flux


def _params(src) -> dict:
    out = {}
    for p in src.spectral:
        lo, hi = p.bounds_physical
        out[p.name] = {"value": p.physical, "free": bool(p.free),
                       "error": None if p.error is None else abs(p.error * p.scale),
                       "bounds": (lo if np.isfinite(lo) else None,
                                  hi if np.isfinite(hi) else None)}
    return out


def _model_dict(src) -> dict:
    from ..io.gammapy_maps import sky_model_dict

    size = None
    if src.spatial_model == "RadialGaussian":
        size = src.param("Sigma").physical
    elif src.spatial_model == "RadialDisk":
        size = src.param("Radius").physical
    ra, dec = src.skydir
    return sky_model_dict(src.name, src.spectrum, _params(src), src.spatial_model, ra, dec,
                          size)


def _exposure_at_nodes(run, sfx, nodes, geom, irfs_of):
    """The exposure cube (n_nodes, ny, nx) at the true-energy ``nodes``: the run's
    exposure product where its energies are nodes, computed from the livetime cube for
    the others (the extra nodes of energy dispersion)."""
    from ..exposure.expmap import exposure_map

    out = np.full((nodes.size,) + tuple(geom.shape), np.nan)
    name = f"exposure{sfx}"
    if name in run:
        ds = run[name]
        have = np.asarray(ds["energy_true"].values, dtype=np.float64)
        vals = np.asarray(ds["exposure"].values, dtype=np.float64)
        for k, e in enumerate(nodes):
            j = np.flatnonzero(np.isclose(have, e, rtol=1e-6))
            if j.size:
                out[k] = vals[j[0]]
    miss = np.flatnonzero(np.isnan(out[:, 0, 0]))
    if miss.size:
        lt = run[f"ltcube{sfx}"].load()
        ds = exposure_map(lt, irfs_of(), geom, nodes[miss])
        out[miss] = np.asarray(ds["exposure"].values, dtype=np.float64)
    return out


def _psf_at(run, sfx, nodes, ra, dec, irfs_of):
    """(offsets (deg), psf (n_nodes, n_off) in sr^-1, exposure (n_nodes,) in cm2 s):
    fermixr's exposure-weighted PSF at (ra, dec) (what its point-source maps use), from the
    run's psf product where it was made there at these energies, else computed."""
    from ..exposure.psftable import psf_table

    name = f"psf{sfx}"
    psf = exp = off = None
    have = np.zeros(0)
    if name in run:
        ds = run[name]
        if (abs(float(ds.attrs.get("ra", np.nan)) - ra) < 1e-6
                and abs(float(ds.attrs.get("dec", np.nan)) - dec) < 1e-6):
            have = np.asarray(ds["energy_true"].values, dtype=np.float64)
            off = np.asarray(ds["offset"].values, dtype=np.float64)
            psf = np.zeros((nodes.size, off.size))
            exp = np.zeros(nodes.size)
            tab_psf = np.asarray(ds["psf"].values, dtype=np.float64)
            tab_exp = np.asarray(ds["exposure"].values, dtype=np.float64)
    found = np.zeros(nodes.size, dtype=bool)
    if psf is not None:
        for k, e in enumerate(nodes):
            j = np.flatnonzero(np.isclose(have, e, rtol=1e-6))
            if j.size:
                psf[k], exp[k], found[k] = tab_psf[j[0]], tab_exp[j[0]], True
    miss = np.flatnonzero(~found)
    if miss.size:
        lt = run[f"ltcube{sfx}"].load()
        t = psf_table(lt, irfs_of(), ra, dec, nodes[miss], offsets=off)
        if psf is None:
            off = np.asarray(t["offset"].values, dtype=np.float64)
            psf = np.zeros((nodes.size, off.size))
            exp = np.zeros(nodes.size)
        psf[miss] = t["psf"].values
        exp[miss] = t["exposure"].values
    return off, psf, exp


MISMATCH_WARN = 0.01
"""Relative difference between Gammapy's and fermixr's counts of an exported source in a
true-energy bin above which the export warns (several sources share one exposure)."""


def _warn_spectral_mismatch(state, comp, chosen, nodes, lo, hi, expo, i):
    """Warn, naming them, about exported sources whose counts Gammapy will not reproduce
    within MISMATCH_WARN: the exposure is exact for the summed spectrum of the exported
    sources; fermixr integrates each spectrum over a bin with the trapezoid rule, whose
    error depends on the spectrum's shape."""
    half = 0.5 * np.log(nodes[1:] / nodes[:-1])
    for s in chosen:
        g, G = _source_spectrum(state, comp, [s], nodes)
        fx = half * (nodes[:-1] * g[:-1] * expo[:-1] + nodes[1:] * g[1:] * expo[1:])
        gp = G * (lo * expo[:-1] + hi * expo[1:])
        sel = fx > 1e-3 * fx.max() if fx.size and fx.max() > 0 else np.zeros(0, bool)
        if not sel.any():
            continue
        worst = float(np.max(np.abs(gp[sel] / fx[sel] - 1.0)))
        if worst > MISMATCH_WARN:
            warnings.warn(
                f"component {i}: Gammapy's counts of {s.name!r} will differ from fermixr's "
                f"by up to {100 * worst:.1f}% per true-energy bin (one exposure serves the "
                f"{len(chosen)} exported sources and is exact for their summed spectrum; "
                f"fermixr integrates each spectrum over a bin by the trapezoid rule): "
                f"export it alone (--sources {s.name!r}) or bin finer in energy")


def _mask_fit(comp, i):
    """MASK_FIT: where the weights map is 1 (everywhere without one)."""
    if comp.wmap is None:
        return np.ones((comp.counts.shape[0],) + comp.sky_shape, dtype=bool)
    w = comp.wmap
    if not np.all((w == 0.0) | (w == 1.0)):
        raise ProductError(f"component {i}: gtlike.wmap holds weights other than 0 and 1 "
                           f"(range {w.min():.3g}..{w.max():.3g}); Gammapy's MapDataset has "
                           "masks but no likelihood weights: export without the weights "
                           "map, or with one of 0s and 1s")
    return (w > 0).reshape((w.shape[0],) + comp.sky_shape)


def export_gammapy(run_dir, dest=None, sources=None, psf_grid_deg: float = PSF_GRID_DEG
                   ) -> list[Path]:
    """Write the Gammapy MapDataset of each component of the fitted run ``run_dir`` and
    the models of the exported sources into ``dest`` (default ``RUN/export``); return the
    files written.  Nothing is written when anything is refused."""
    from ..estimators.edits import with_all_maps
    from ..geom.wcs import WcsGeom
    from ..io.gammapy_maps import (background_model_dict, datasets_yaml, mapdataset_hdulist,
                                   models_yaml)
    from ..irf.irfset import load_irfs
    from ..likelihood.roi import component_costs
    from .recipe import load_recipe
    from .run import RECIPE_COPY, open_run, require_run_dir
    from .state import component_suffix, load_state

    run_dir = require_run_dir(run_dir).resolve()
    copy = run_dir / RECIPE_COPY
    if not copy.is_file():
        raise InputFileError(f"{str(run_dir)!r} holds no {RECIPE_COPY}: is it the folder a "
                             "`fermixr run` wrote?")
    model = fitted_model(run_dir)
    recipe = load_recipe(copy, fileio={"outdir": str(run_dir)})
    run = open_run(run_dir, dask=False)
    state = with_all_maps(load_state(recipe, run_dir, model=model))
    if isinstance(sources, str):
        sources = [s.strip() for s in sources.split(",") if s.strip()]
    chosen, folded = select_sources(state.model, sources, state.roi_center)
    for s in folded:
        warnings.warn(f"{_mappable(s)}: folded into the Gammapy background")
    dest = Path(dest) if dest is not None else run_dir / "export"
    comps = state.components
    costs = component_costs(state)
    n = len(comps)
    files: dict[str, object] = {}
    entries = []
    models = [_model_dict(s) for s in chosen]
    for i, (comp, cost) in enumerate(zip(comps, costs)):
        geom = comp.geom
        if not isinstance(geom, WcsGeom):
            raise GeometryError(f"component {i}: a HEALPix grid; the Gammapy export writes "
                                "WCS MapDatasets only (bin the component on a WCS grid)")
        sfx = component_suffix(i, n)
        file_sfx = f"{i:02d}"
        opts = recipe.options[i]
        irf_memo = {}

        def irfs_of(opts=opts, memo=irf_memo):
            if "v" not in memo:
                memo["v"] = load_irfs(opts.gtlike.irfs, opts.selection.evtype,
                                      caldb=opts.data.caldb)
            return memo["v"]

        scales = {float(comp.src_expscale.get(s.name, comp.expscale)) for s in chosen}
        if len(scales) > 1:
            raise ModelError(f"component {i}: the exported sources have different exposure "
                             f"scales (gtlike.src_expscale: {sorted(scales)}); one Gammapy "
                             "exposure cannot hold both: export them separately")
        scale = scales.pop()
        if comp.drm is not None:
            off_edisp = [s.name for s in chosen if s.name in comp.edisp_disable]
            if off_edisp:
                raise ModelError(f"component {i}: exported source(s) {off_edisp} are in "
                                 "gtlike.edisp_disable while the others are dispersed; one "
                                 "Gammapy energy-dispersion kernel cannot do both")
        # fermixr's true-energy nodes: padded by edisp_bins with a response matrix; the
        # counts-bin edges without one (its maps are then taken at the edges only)
        nodes = comp.nodes if comp.drm is not None else comp.edges
        ny, nx = geom.shape
        wcs = dict(comp.geom_attrs.get("wcs_header") or geom.to_header())
        dnde, flux = _source_spectrum(state, comp, chosen, nodes)
        lo, hi = true_bin_weights(nodes, dnde, flux)
        expo = _exposure_at_nodes(run, sfx, nodes, geom, irfs_of)
        exposure = scale * (lo[:, None, None] * expo[:-1] + hi[:, None, None] * expo[1:])
        cwcs, cix, ciy = _coarse_grid(geom, wcs, psf_grid_deg)
        cy, cx = cix.shape
        # the PSF at the exported source (of most counts), as fermixr's point-source maps
        n_meas, n_true = comp.counts.shape[0], nodes.size - 1
        sky = (n_meas, ny, nx)
        own = {s.name: cost.source_cube(s.name).reshape(sky) for s in chosen}
        lead = max(chosen, key=lambda s: float(own[s.name].sum()))
        off, ptab, pexp = _psf_at(run, sfx, nodes, *lead.skydir, irfs_of)
        wl, wh = lo * pexp[:-1], hi * pexp[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(wl + wh > 0, wl / (wl + wh), 0.5)[:, None]
        psf_bins = a * ptab[:-1] + (1.0 - a) * ptab[1:]                     # (nt, noff)
        if len(chosen) > 1:
            _warn_spectral_mismatch(state, comp, chosen, nodes, lo, hi, pexp, i)
        psf = np.broadcast_to(psf_bins[:, :, None, None], psf_bins.shape + (cy, cx))
        psf_exposure = exposure[:, ciy, cix]                                # (nt, cy, cx)
        if comp.drm is not None:
            kernel = np.asarray(comp.drm, dtype=np.float64).T               # (nt, n_meas)
        else:
            kernel = np.eye(n_true, n_meas)
        edisp = np.broadcast_to(kernel[:, :, None, None], (n_true, n_meas, cy, cx))
        total = cost.model_cube().reshape(sky)
        background = np.clip(total - sum(own.values()), 0.0, None)
        mask_fit = _mask_fit(comp, i)
        gti = None
        if f"gti{sfx}" in run:
            g = run[f"gti{sfx}"]
            mjdref = float(comp.geom_attrs.get("MJDREF", g.attrs.get("MJDREF", 51910.00074287037)))
            gti = (np.asarray(g["START"].values), np.asarray(g["STOP"].values), mjdref)
        name = f"fermixr_{file_sfx}"
        fname = f"mapdataset_{file_sfx}.fits"
        files[fname] = mapdataset_hdulist(
            name=name, wcs=wcs, coarse_wcs=cwcs, energy_edges=comp.edges,
            energy_true_edges=nodes, counts=comp.counts.reshape(sky), exposure=exposure,
            background=background, psf=psf, psf_rad=off, psf_exposure=psf_exposure,
            edisp=edisp, edisp_exposure=psf_exposure,
            mask_safe=np.ones(sky, dtype=bool), mask_fit=mask_fit, gti=gti)
        entries.append((name, fname))
        models.append(background_model_dict(name))
    files["gammapy_models.yaml"] = models_yaml(models)
    files["gammapy_datasets.yaml"] = datasets_yaml(entries)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, content in files.items():
        path = dest / fname
        tmp = dest / f".{fname}.{os.getpid()}.tmp"
        if isinstance(content, str):
            tmp.write_text(content)
        else:
            content.writeto(tmp, overwrite=True)
        os.replace(tmp, path)
        written.append(path)
    return written
