"""Fermipy's ``lightcurve`` as a plan: one keyed sub-plan per time bin, then a reduction.

Each bin has its own tasks, keyed like every product of the store:

* ``lc_gti``: the selection's GTIs intersected with the bin (identity: its content);
* ``lc_events``: the selection's events inside those GTIs;
* ``ltcube`` (step ``lc_ltcube``): the bin's livetime cube on a cap of pixels around the
  ROI, cut out of ``ltcubes`` (step ``lc_ltcubes``: every bin's cube from one pass over
  the spacecraft file, a task shared by the bins);
* ``counts`` (the setup's step on the bin's events) and the bin's ``exposure`` (on the
  bin's livetime cube); the source maps are made in the fit's task (no per-bin map
  products), in one of three ways (:func:`maps_mode`, recorded as the product's
  ``bin_maps`` attribute):

  - default ("inclination"): point and radial sources' maps from the bin's livetime at
    the source by inclination (:mod:`fermixr.srcmap.inclination`: equal to the maps the
    source-map step computes from the bin's livetime cube, in ~0.1 s a source), the
    diffuse sources' full-range maps times the ratio of the bin's exposure to the full
    range's, the full range's response matrix;
  - ``use_scaled_srcmap`` (Fermipy's approximation; warned once): every map is the full
    range's times the exposure ratio, keeping the full range's PSF -- the inclination mix
    at a source changes with the ~53-day precession, so a steady source's TS_var comes
    out too high on long curves;
  - "computed" (:data:`COMPUTED_MAPS`, the slow reference): ``srcmap`` (one per source),
    ``srcmaps`` and ``drm`` per bin, the setup's steps on the bin's livetime cube;
* ``lc_bin``: the fit of the bin (:func:`fermixr.estimators.lightcurve.fit_bin`), a
  one-bin ``lightcurve`` product.

The bins' tasks run on the engine's executor (on the dask cluster when the run has one) in
a sub-run folder ``<outdir>/lightcurve/<source>`` (``fermixr.open_run`` reads the finished
bins while the curve runs: ``products/bins/bin0003``).  A bin with no GTIs (in a gap of the
data) or no events, and a bin whose fit fails or raises, is a record with ``fit_success``
false and its ``status`` / ``reason``; it never stops the curve (a fit that raised is not
kept in the store: the next run computes that bin again; ``--force lc_bin`` fits every bin
again).  A killed curve, run again, finds the finished bins in the store and computes
only the missing ones.  The
reduction (the constant flux, ``loglike_const`` and ``ts_var`` over the successful bins)
then writes the ``lightcurve`` product and Fermipy's files: ``<prefix>_<name>_lightcurve
.fits`` and ``.npy`` (and the plot with ``make_plots``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import RecipeError
from ..estimators import lightcurve as LC
from .executor import Executor, Task
from .steps import register_step

SUBDIR = "lightcurve"
MJDREF = 51910.0 + 7.428703703703703e-4

# ------------------------------------------------------------------------ data steps --
@register_step("lc_gti", version="1", product="gti", identity="content")
def lc_gti_step(inputs, params, ctx):
    """The selection's GTIs inside one light-curve bin."""
    from ..io.gti import gti_dataset

    gti = inputs["gti"]
    s, e = LC.gti_in_bin(gti["START"].values, gti["STOP"].values, params["tmin"],
                         params["tmax"])
    attrs = {k: v for k, v in gti.attrs.items()
             if k in ("filter", "roicut", "zmax", "roi_center", "roi_radius")}
    attrs["lightcurve_bin"] = [float(params["tmin"]), float(params["tmax"])]
    return gti_dataset(s, e, tstart=float(params["tmin"]), tstop=float(params["tmax"]),
                       mjdref=float(gti.attrs.get("MJDREF", MJDREF)), attrs=attrs,
                       normalize=False)


_TIMES: dict = {}        # events product key -> (its TIME column, sorted?) in this process


@register_step("lc_events", version="1", product="events")
def lc_events_step(inputs, params, ctx):
    """The selection's events inside one light-curve bin's GTIs (none is not an error)."""
    from ..select.cuts import select_events

    from ..conventions import DIM_EVENT

    gti = inputs["gti"]
    ev = inputs["events"]
    # the times (read once per process: a mission's event list is large, the product is
    # immutable under its key), then only the bin's rows
    key = _product_key(ev)
    if key not in _TIMES:
        if len(_TIMES) > 4:
            _TIMES.clear()
        t = np.asarray(ev["TIME"].values)
        _TIMES[key] = (t, bool(np.all(t[1:] >= t[:-1])))
    t, is_sorted = _TIMES[key]
    tmin, tmax = float(params["tmin"]), float(params["tmax"])
    if is_sorted:
        rows = np.arange(np.searchsorted(t, tmin, side="left"),
                         np.searchsorted(t, tmax, side="right"))
    else:
        rows = np.flatnonzero((t >= tmin) & (t <= tmax))
    return select_events(ev.isel({DIM_EVENT: rows}).load(), tmin=float(params["tmin"]),
                         tmax=float(params["tmax"]),
                         gti_start=np.asarray(gti["START"].values),
                         gti_stop=np.asarray(gti["STOP"].values), allow_empty=True)


@register_step("lc_ltcubes", version="1", product="ltcube_bins")
def lc_ltcubes_step(inputs, params, ctx):
    """The livetime cubes of every bin of a curve on the pixels of a cap around the region,
    from one pass over the spacecraft file (:func:`fermixr.exposure.ltcube_bins.ltcube_bins`)."""
    import xarray as xr

    from ..exposure.ltcube_bins import ltcube_bins
    from ..io.ltcube import costheta_edges, THETABIN_SQRT

    gti = inputs["gti"]
    bins = np.asarray(params["bins"], dtype=float).reshape(-1, 2)
    r = ltcube_bins(ctx.files["scfile"], np.asarray(gti["START"].values),
                    np.asarray(gti["STOP"].values), bins, params["region"],
                    zmax=params["zmax"], binsz=params["binsz"], dcostheta=params["dcostheta"],
                    progress=lambda done, total: ctx.progress(done, total, "time bins"))
    edges = costheta_edges(r["nbins_costheta"], 0.0, THETABIN_SQRT)
    dims = ("time_bin", "pix", "costheta")
    ds = xr.Dataset(
        {"exposure": (dims, r["exposure"], {"units": "s"}),
         "weighted_exposure": (dims, r["weighted_exposure"], {"units": "s"})},
        coords={"pix": ("pix", r["pix"]), "tmin": ("time_bin", bins[:, 0]),
                "tmax": ("time_bin", bins[:, 1]),
                "costheta_min": ("costheta", edges[1:].copy()),
                "costheta_max": ("costheta", edges[:-1].copy())},
        attrs={"fermixr_product": "ltcube_bins", "nside": int(r["nside"]),
               "ordering": "NESTED", "frame": "CEL", "zmax": float(params["zmax"]),
               "region": [float(v) for v in params["region"]],
               "ft2_rows_used": int(r["ft2_rows_used"])})
    for v in ("exposure", "weighted_exposure"):      # one chunk per bin: a bin reads its own
        ds[v].encoding["chunks"] = (1,) + ds[v].shape[1:]
    return ds


@register_step("lc_ltcube", version="1", product="ltcube")
def lc_ltcube_step(inputs, params, ctx):
    """One bin's livetime cube (on the pixels of the curve's cap: a ``pix`` coordinate
    lists them) out of the curve's one-pass livetime cubes."""
    from ..io.ltcube import make_ltcube_dataset

    st = inputs["ltcubes"]
    b = int(params["bin"])
    tmin, tmax = float(st["tmin"].values[b]), float(st["tmax"].values[b])
    if abs(tmin - float(params["tmin"])) > 1e-6 or abs(tmax - float(params["tmax"])) > 1e-6:
        raise RecipeError(f"lc_ltcube: bin {b} of the livetime cubes is MET {tmin}-{tmax}, "
                          f"the task asks for {params['tmin']}-{params['tmax']}")
    nside = int(st.attrs["nside"])
    pix = np.asarray(st["pix"].values, dtype=np.int64)
    one = st.isel(time_bin=b)
    exp = np.zeros((12 * nside * nside, st.sizes["costheta"]))
    wexp = np.zeros_like(exp)
    exp[pix] = np.asarray(one["exposure"].values)
    wexp[pix] = np.asarray(one["weighted_exposure"].values)
    gti = inputs["gti"]
    ds = make_ltcube_dataset(exp, wexp, nside=nside, ordering=st.attrs["ordering"],
                             frame=st.attrs["frame"], gti_start=gti["START"].values,
                             gti_stop=gti["STOP"].values, tstart=tmin, tstop=tmax,
                             zmax=float(st.attrs["zmax"]),
                             extra_attrs={"region": list(st.attrs["region"]),
                                          "weighted": True})
    return ds.isel(pix=pix)


@register_step("lc_bin", version="3", product="lightcurve")
def lc_bin_step(inputs, params, ctx):
    """The fit of one light-curve bin (a one-bin ``lightcurve`` product); a fit that fails
    or raises is recorded with its reason."""
    tmin, tmax = float(params["tmin"]), float(params["tmax"])
    state = _bin_state(inputs, params, ctx)
    n_counts = float(sum(c.counts.sum() for c in state.components))
    if n_counts == 0:
        rec = LC.failed_bin(tmin, tmax, "no_events",
                            "no event of the selection in the bin's GTIs")
    else:
        try:
            rec = LC.fit_bin(state, params["name"], params["plan"], tmin=tmin, tmax=tmax,
                             shape_ts_threshold=float(params["shape_ts_threshold"]),
                             fit_options=params["fit_options"], npts=int(params["npts"]))
        except Exception as exc:      # recorded, never raised: the curve goes on
            rec = LC.failed_bin(tmin, tmax, "fit_failed",
                                f"the fit raised {type(exc).__name__}: {exc}")
            rec["retry"] = True
    rec["exposure_s"] = float(params["ontime"])
    rec["n_counts"] = n_counts
    ds = curve_dataset([rec], params["name"])
    if rec.get("retry"):
        # an exception may not happen again (memory, a killed worker, a bug fixed since):
        # the curve records it, and the next run computes the bin again
        ds.attrs[RETRY_ATTR] = True
    return ds


RETRY_ATTR = "retry_on_rerun"
FORCEABLE = ("lc_bin",)       # sub-steps of a curve that ``--force`` accepts


def _bin_state(inputs, params, ctx):
    """The analysis state of one bin: its counts and source maps, the curve's model."""
    from ..likelihood.roi import AnalysisState, Component, map_key
    from ..model.skymodel import SkyModel
    from .state import read_wmap

    model = SkyModel.from_dict(params["model"])
    comps = []
    for i, cp in enumerate(params["components"]):
        cds = inputs[f"counts{i:02d}"].load()
        shape = cds["counts"].shape
        edges = np.append(cds["energy_min"].values, cds["energy_max"].values[-1])
        if f"srcmaps{i:02d}" in inputs:
            sm = inputs[f"srcmaps{i:02d}"].load()
            arr = np.asarray(sm["srcmap"].values, dtype=np.float64)
            names = [str(v) for v in sm["source"].values]
            enodes = np.asarray(sm["energy_true"].values, dtype=np.float64)
        elif params.get("bin_maps"):
            arr, names, enodes = _inclination_maps(inputs, i, params["bin_maps"][i], ctx)
        else:
            arr, names, enodes = _scaled_maps(inputs, i)
        own = SkyModel.from_dict(cp["model"]) if cp.get("model") else model
        counts = np.asarray(cds["counts"].values, dtype=np.float64).reshape(shape[0], -1)
        drm = None
        if f"drm{i:02d}" in inputs:
            drm = np.asarray(inputs[f"drm{i:02d}"]["drm"].values, dtype=np.float64)
        wmap = None
        if f"wmap{i:02d}" in ctx.files:
            wmap = read_wmap(ctx.files[f"wmap{i:02d}"][0], counts.shape)
        comps.append(Component(
            counts=counts, edges=edges,
            maps={n: arr[k].reshape(arr.shape[1], -1) for k, n in enumerate(names)},
            nodes=enodes,
            map_keys={s.name: map_key(s) for s in model if s.name in names},
            drm=drm, wmap=wmap, expscale=float(cp["expscale"]),
            src_expscale=dict(cp["src_expscale"] or {}),
            edisp_disable=tuple(cp["edisp_disable"] or ()), sky_shape=tuple(shape[1:]),
            geom_attrs=dict(cds.attrs), template=cds, model=own))
    return AnalysisState(components=comps, model=model, roi_center=tuple(params["roi_center"]),
                         coordsys=params["coordsys"])


_FULL_MAPS: dict = {}           # (product keys) -> full-range maps, names, nodes, exposure


def _product_key(ds) -> str:
    prov = ds.attrs.get("provenance") or {}
    return str(prov.get("key") or id(ds))


def _scaled_maps(inputs, i: int):
    """Component ``i``'s source maps scaled to the bin (Fermipy's use_scaled_srcmap): the
    full-range maps times the ratio of the bin's exposure to the full range's, per energy
    node and pixel.  The full-range maps are read once per process (products are
    immutable under their keys)."""
    from ..errors import GeometryError

    roles = sorted(k for k in inputs if k.startswith(f"map{i:02d}_"))
    key = tuple(_product_key(inputs[k]) for k in roles) + (
        _product_key(inputs[f"exposure{i:02d}"]),)
    if key not in _FULL_MAPS:
        from ..srcmap.build import concat_srcmaps

        full = concat_srcmaps([inputs[k].load() for k in roles])
        e_full = np.asarray(inputs[f"exposure{i:02d}"]["exposure"].values, dtype=np.float64)
        arr = np.asarray(full["srcmap"].values, dtype=np.float64)
        if e_full.shape != arr.shape[1:]:
            raise GeometryError(f"lightcurve scaled source maps: exposure of shape "
                                f"{e_full.shape} for source maps of shape {arr.shape[1:]}")
        if len(_FULL_MAPS) > 8:
            _FULL_MAPS.clear()
        _FULL_MAPS[key] = (arr, [str(v) for v in full["source"].values],
                           np.asarray(full["energy_true"].values, dtype=np.float64), e_full)
    arr, names, nodes, e_full = _FULL_MAPS[key]
    e_bin = np.asarray(inputs[f"exposure_bin{i:02d}"]["exposure"].values, dtype=np.float64)
    if e_bin.shape != e_full.shape:
        raise GeometryError(f"lightcurve scaled source maps: the bin's exposure has shape "
                            f"{e_bin.shape}, the full range's {e_full.shape}")
    ratio = np.divide(e_bin, e_full, out=np.zeros_like(e_bin), where=e_full > 0)
    return arr * ratio[None], names, nodes


def _inclination_maps(inputs, i: int, bin_maps: dict, ctx):
    """Component ``i``'s maps in mode "inclination": those of the sources in ``bin_maps``
    (point and radial sources; {sNNNN: their srcmap task parameters}) from the bin's
    livetime at the source (:func:`fermixr.srcmap.inclination.bin_source_map`, equal to
    the source-map step on the bin's livetime cube), the others scaled by the exposure
    ratio (:func:`_scaled_maps`)."""
    from ..geom import geom_from_dict
    from ..irf.irfset import load_irfs
    from ..srcmap.inclination import bin_source_map
    from .prep_steps import _caldb_from_files

    own: dict = {}
    nodes = None
    if any(k.startswith(f"map{i:02d}_") for k in inputs):
        arr, names, nodes = _scaled_maps(inputs, i)
        own = {n: arr[j].reshape(arr.shape[1], -1) for j, n in enumerate(names)}
    lt = inputs[f"ltcube{i:02d}"]
    caldb = _caldb_from_files(ctx.files[f"irf{i:02d}"])
    made = {}
    for k in sorted(bin_maps):
        p = bin_maps[k]
        irf = load_irfs(p["irfs"], p["evtype"], caldb=caldb)
        e = np.asarray(p["energies"], dtype=np.float64)
        if nodes is not None and not np.allclose(e, nodes, rtol=1e-12):
            from ..errors import GeometryError

            raise GeometryError(f"lightcurve: source {p['source']!r}: energy nodes differ "
                                "from the other sources' maps")
        nodes = e
        m = bin_source_map(p["spatial"], geom_from_dict(p["geom"]), e, lt, irf,
                           rfactor=p["rfactor"], name=p["source"])
        made[p["source"]] = m.reshape(e.size, -1)
    names = list(own) + list(made)
    shape = next(iter(own.values())).shape if own else next(iter(made.values())).shape
    arr = np.empty((len(names),) + tuple(shape))
    for j, n in enumerate(names):
        arr[j] = (own.get(n) if n in own else made[n]).reshape(shape)
    return arr, names, nodes


def bin_state(curve_dir, b: int):
    """(the analysis state of bin ``b`` of a computed curve -- its counts and maps, the
    curve's model --, the parameters of its fit task) from the curve's run folder
    ``<outdir>/lightcurve/<source>``: to look at one bin, or to simulate it."""
    from .run import open_run
    from .store import read_marker

    run = open_run(curve_dir, dask=False)
    pfx = f"bins/bin{b:04d}"
    fit = [n for n in run if n.startswith(f"{pfx}/fit/")]
    if not fit:
        raise RecipeError(f"{str(curve_dir)!r}: bin {b} has no fit product (a bin without "
                          "GTIs, or not computed yet)")
    marker = read_marker(run.path(fit[0]))
    params = marker["params"]
    n = len(params["components"])
    inputs = {}
    for i in range(n):
        sfx = f"/{i:02d}" if n > 1 else ""
        inputs[f"counts{i:02d}"] = run[f"{pfx}/counts{sfx}"]
        if f"{pfx}/srcmaps{sfx}" in run:
            inputs[f"srcmaps{i:02d}"] = run[f"{pfx}/srcmaps{sfx}"]
        else:                       # use_scaled_srcmap: the full-range maps, two exposures
            from ..model.skymodel import SkyModel
            from .plan import product_name

            own = (params.get("bin_maps") or [{}] * n)[i]
            for k, src in enumerate(SkyModel.from_dict(params["model"])):
                if f"s{k:04d}" not in own:
                    inputs[f"map{i:02d}_{k:04d}"] = run[
                        f"srcmap{sfx}/{product_name(src.name)}"]
            inputs[f"exposure{i:02d}"] = run[f"exposure_nodes{sfx}"]
            inputs[f"exposure_bin{i:02d}"] = run[f"{pfx}/exposure{sfx}"]
            if own:
                inputs[f"ltcube{i:02d}"] = run[f"{pfx}/ltcube{sfx}"]
        if f"{pfx}/drm{sfx}" in run:
            inputs[f"drm{i:02d}"] = run[f"{pfx}/drm{sfx}"]
    from .steps import StepContext

    ctx = StepContext(fit[0], files=marker.get("files"), verbose=False)
    return _bin_state(inputs, params, ctx), params


# --------------------------------------------------------------------- the product -----
_UNITS = {"flux": "cm-2 s-1", "eflux": "MeV cm-2 s-1", "dnde": "cm-2 s-1 MeV-1"}


def _unit(key: str) -> str | None:
    if key.endswith("_index"):
        return None
    for fam, u in _UNITS.items():
        if key.startswith(fam):
            return u
    return {"tmin": "s", "tmax": "s", "exposure_s": "s", "npred": "count",
            "n_counts": "count", "pivot_energy": "MeV"}.get(key)


def curve_dataset(records: list[dict], name: str, reduction: dict | None = None):
    """The ``lightcurve`` product of ``records`` (one per bin, in time order)."""
    import xarray as xr

    n = len(records)
    data = {}
    scalars = ("tmin", "tmax", "exposure_s", "n_counts") + LC.BIN_SCALARS
    for k in scalars:
        data[k] = ("time_bin", np.array([float(r.get(k, np.nan)) for r in records]))
    data["fit_success"] = ("time_bin", np.array([bool(r["fit_success"]) for r in records]))
    data["shape_free"] = ("time_bin", np.array([bool(r.get("shape_free")) for r in records]))
    for k in ("status", "reason"):
        data[k] = ("time_bin", np.array([str(r.get(k, "")) for r in records], dtype=object))
    data["var_loglike"] = ("time_bin", np.array([float(r.get("var_loglike", np.nan))
                                                 for r in records]))
    for k in ("norm_scan", "flux_scan", "eflux_scan", "loglike_scan", "dloglike_scan",
              "var_flux_scan", "var_loglike_scan"):
        arr = np.full((n, LC.SCAN_NPTS), np.nan)
        for i, r in enumerate(records):
            v = np.asarray(r.get(k, ()), float)[:LC.SCAN_NPTS]
            arr[i, :v.size] = v
        data[k] = (("time_bin", "scan_point"), arr)
    ds = xr.Dataset(data, coords={"time_bin": np.arange(n)})
    t0, t1 = ds["tmin"].values, ds["tmax"].values
    ds = ds.assign(tmin_mjd=("time_bin", t0 / 86400.0 + MJDREF),
                   tmax_mjd=("time_bin", t1 / 86400.0 + MJDREF))
    for k in ds.data_vars:
        u = _unit(k)
        fam = k.removeprefix("var_").split("_")[0]
        if k.endswith("_scan") and fam in _UNITS:
            u = _UNITS[fam]
        if u:
            ds[k].attrs["units"] = u
    ds["tmin_mjd"].attrs["units"] = ds["tmax_mjd"].attrs["units"] = "d"
    attrs = {"fermixr_product": "lightcurve", "name": str(name), "ts_var": None,
             "MJDREF": MJDREF}
    if reduction is not None:
        ds = ds.assign(loglike_const=("time_bin", np.asarray(reduction["loglike_const"],
                                                             float)))
        attrs.update(ts_var=float(reduction["ts_var"]),
                     flux_const=float(reduction["flux_const"]),
                     n_bins_fitted=int(reduction["n_ok"]))
    ds.attrs = attrs
    return ds


# ------------------------------------------------------------------------ the plan -----
@dataclasses.dataclass
class CurvePlan:
    name: str
    bins: np.ndarray                  # (n, 2) MET
    tasks: list                       # every task to run (the setup's it needs first)
    bin_tasks: dict                   # bin index -> its lc_bin task name
    skipped: dict                     # bin index -> record of a bin without GTIs
    run_dir: Path


def lightcurve_options(recipe, params: dict | None = None) -> dict:
    """The lightcurve section (first component) with the step's or the call's parameters
    over it; refuses what fermixr does not implement and warns for what has no effect."""
    import warnings

    from .recipe import OptionWithoutEffectWarning

    opts = recipe.options[0].lightcurve.to_dict()
    extra = {k: v for k, v in (params or {}).items()
             if k not in ("name", "prefix", "optimizer")}
    unknown = [k for k in extra if k not in opts]
    if unknown:
        raise RecipeError(f"lightcurve: unknown option(s) {', '.join(map(repr, unknown))}; "
                          f"options: {', '.join(opts)}")
    opts.update(extra)
    from .options import SECTIONS

    for k, v in extra.items():          # the table's marks, for options given as keywords
        opt = SECTIONS["lightcurve"][k]
        if opt.not_implemented and v != opt.default:
            raise RecipeError(f"lightcurve.{k}: got {v!r}; not implemented: "
                              f"{opt.not_implemented}")
        if opt.no_effect and v != opt.default:
            warnings.warn(f"lightcurve.{k}: accepted without effect: {opt.no_effect}",
                          OptionWithoutEffectWarning, stacklevel=3)
    return opts


def data_range(run_dir: Path, n_comp: int) -> tuple[float, float, list]:
    """(first GTI start, last GTI stop, per-component (START, STOP)) of the run's GTIs."""
    from .run import open_run
    from .state import component_suffix

    run = open_run(run_dir, dask=False)
    gtis = []
    for i in range(n_comp):
        name = f"gti{component_suffix(i, n_comp)}"
        if name not in run:
            raise RecipeError(f"lightcurve: the run {str(run_dir)!r} has no {name}: run "
                              "setup first")
        g = run[name]
        gtis.append((np.asarray(g["START"].values, float), np.asarray(g["STOP"].values,
                                                                       float)))
    s0 = min(float(s.min()) for s, _ in gtis if s.size)
    s1 = max(float(e.max()) for _, e in gtis if e.size)
    return s0, s1, gtis


def plan_curve(recipe, outdir, state, name: str, opts: dict, fit_options: dict,
               npts: int = LC.SCAN_NPTS) -> CurvePlan:
    """The tasks of every bin of the curve of ``name`` (checked before any work: the
    source, the bins against the data, the free parameters)."""
    from ..geom import geom_from_dict
    from .plan import plan_tasks, product_name, source_map_task
    from .state import component_suffix

    src = state.model.find(name)
    outdir = Path(outdir)
    n = len(recipe.components)
    t0, t1, gtis = data_range(outdir, n)
    bins = LC.time_bins(t0, t1, binsz=opts["binsz"], nbins=opts["nbins"],
                        time_bins=opts["time_bins"])
    plan = LC.free_plan(state, src.name, free_params=opts["free_params"],
                        free_background=bool(opts["free_background"]),
                        free_radius=opts["free_radius"], free_sources=opts["free_sources"],
                        max_free_sources=int(opts["max_free_sources"]))
    setup = {t.name: t for t in plan_tasks(dataclasses.replace(recipe, steps=[("setup", {})]))}
    tasks: list[Task] = []
    for i in range(n):
        sfx = component_suffix(i, n)
        for base in (f"gti{sfx}", f"events{sfx}"):
            tasks.append(setup[base])
        if not recipe.options[i].data.scfile:
            raise RecipeError("lightcurve: each bin's livetime cube is computed from the "
                              "spacecraft file: give data.scfile (a precomputed data.ltcube "
                              "covers the whole range only)")
    model_dict = state.model.to_dict()
    comp_params = []
    for i, comp in enumerate(state.components):
        gl = recipe.options[i].gtlike
        comp_params.append({"expscale": comp.expscale,
                            "src_expscale": dict(comp.src_expscale),
                            "edisp_disable": list(comp.edisp_disable),
                            "model": comp.model.to_dict() if (i and comp.model is not None)
                            else None, "wmap": bool(gl.wmap)})
    scaled = bool(opts["use_scaled_srcmap"])
    mode = maps_mode(opts)
    if scaled:
        _warn_scaled()
    # per component, the sources whose bin maps come from the bin's livetime at the source
    # (mode "inclination"): {model index: srcmap task params}
    decomp: dict[int, dict] = {i: {} for i in range(n)}
    irf_files: dict[int, list] = {}
    if mode == "inclination":
        from ..srcmap.inclination import DECOMPOSABLE

        for i in range(n):
            sfx = component_suffix(i, n)
            ref = next(t for nm, t in setup.items() if nm.startswith(f"srcmap{sfx}/"))
            for k, s in enumerate(state.model):
                t = source_map_task(recipe.options[i], sfx, s,
                                    geom_from_dict(ref.params["geom"]), ref.params["energies"])
                if t.step == "srcmap" and t.params["spatial"]["SpatialModel"] in DECOMPOSABLE:
                    decomp[i][k] = dict(t.params)
                    irf_files[i] = list(t.files["irf"])
    full = {}        # component -> (exposure task name, {s0000: full-range map task name})
    if mode in ("scaled", "inclination"):
        from .plan import _irf_params

        for i in range(n):
            sfx = component_suffix(i, n)
            opts_i = recipe.options[i]
            tasks.append(setup[f"ltcube{sfx}"])
            if f"drm{sfx}" in setup and opts_i.gtlike.edisp:
                tasks.append(setup[f"drm{sfx}"])
            ref = next(t for nm, t in setup.items() if nm.startswith(f"srcmap{sfx}/"))
            irf = _irf_params(opts_i)
            exp = Task(f"exposure_nodes{sfx}", "exposure",
                       {"geom": ref.params["geom"], "energies": list(ref.params["energies"]),
                        **irf["params"]}, inputs={"ltcube": f"ltcube{sfx}"},
                       files={"irf": irf["files"]})
            tasks.append(exp)
            maps = {}
            for k, s in enumerate(state.model):
                if k in decomp[i]:      # made in each bin from its livetime at the source
                    continue
                t = source_map_task(opts_i, sfx, s, geom_from_dict(ref.params["geom"]),
                                    ref.params["energies"])
                tasks.append(t)
                maps[f"s{k:04d}"] = t.name
            full[i] = (exp, maps)
    # every bin's livetime cube from one pass over the spacecraft file, on the pixels of a
    # cap around the ROI (those the bin's exposure or source maps look up)
    stacks = {}
    for i in range(n):
        sfx = component_suffix(i, n)
        opts_i = recipe.options[i]
        ref = next(t for nm, t in setup.items() if nm.startswith(f"srcmap{sfx}/"))
        ltp = opts_i.ltcube
        region = _ltcube_region(geom_from_dict(ref.params["geom"]), state, mode,
                                float(ltp.binsz))
        stack = Task(f"ltcubes{sfx}", "lc_ltcubes",
                     {"bins": [[float(a), float(z)] for a, z in bins], "zmax": ltp.zmax,
                      "binsz": ltp.binsz, "dcostheta": ltp.dcostheta, "region": region},
                     inputs={"gti": f"gti{sfx}"}, files={"scfile": _scfiles(opts_i)})
        if ltp.phibins:
            raise RecipeError(f"lightcurve: ltcube.phibins is {ltp.phibins}; the bins' "
                              "livetime cubes have no azimuth bins (give phibins 0)")
        tasks.append(stack)
        stacks[i] = stack.name
    bin_tasks, skipped = {}, {}
    srcname = product_name(src.name)
    for b, (a, z) in enumerate(bins):
        pfx = f"bins/bin{b:04d}"
        ontime = sum(float(np.sum(e - s)) for s, e in
                     (LC.gti_in_bin(S, E, a, z) for S, E in gtis)) / n
        if all(LC.gti_in_bin(S, E, a, z)[0].size == 0 for S, E in gtis):
            skipped[b] = LC.failed_bin(a, z, "no_gti", "the bin holds no good time interval "
                                       f"of the selection (MET {a:.1f}-{z:.1f} s falls in a "
                                       "gap of the data)", exposure_s=0.0, n_counts=0.0)
            continue
        inputs, files = {}, {}
        for i in range(n):
            sfx = component_suffix(i, n)
            opts_i = recipe.options[i]
            g = f"{pfx}/gti{sfx}"
            tasks.append(Task(g, "lc_gti", {"tmin": float(a), "tmax": float(z)},
                              inputs={"gti": f"gti{sfx}"}))
            ev = f"{pfx}/events{sfx}"
            tasks.append(Task(ev, "lc_events", {"tmin": float(a), "tmax": float(z)},
                              inputs={"events": f"events{sfx}", "gti": g}))
            c = f"{pfx}/counts{sfx}"
            tasks.append(Task(c, "counts", dict(setup[f"counts{sfx}"].params),
                              inputs={"events": ev}))
            lt = f"{pfx}/ltcube{sfx}"
            tasks.append(Task(lt, "lc_ltcube", {"bin": b, "tmin": float(a), "tmax": float(z)},
                              inputs={"ltcubes": stacks[i], "gti": g}))
            ref = next(t for nm, t in setup.items() if nm.startswith(f"srcmap{sfx}/"))
            geom = geom_from_dict(ref.params["geom"])
            sm = f"{pfx}/srcmaps{sfx}"
            if mode in ("scaled", "inclination"):
                exp, maps = full[i]
                be = dataclasses.replace(exp, name=f"{pfx}/exposure{sfx}",
                                         inputs={"ltcube": lt})
                tasks.append(be)
                # the bin's maps are the full-range ones scaled by the exposure ratio,
                # made in the fit's task (no per-bin copy of every map in the store); in
                # mode "inclination" those of point and radial sources are made there
                # from the bin's livetime at the source
                inputs.update({f"map{i:02d}_{k[1:]}": v for k, v in maps.items()})
                inputs[f"exposure{i:02d}"] = exp.name
                inputs[f"exposure_bin{i:02d}"] = be.name
                if decomp[i]:
                    inputs[f"ltcube{i:02d}"] = lt
                    files[f"irf{i:02d}"] = list(irf_files[i])
            else:
                maps = {}
                for k, s in enumerate(state.model):
                    t = source_map_task(opts_i, sfx, s, geom, ref.params["energies"])
                    t = dataclasses.replace(
                        t, name=f"{pfx}/srcmap{sfx}/{product_name(s.name)}",
                        inputs={"ltcube": lt})
                    tasks.append(t)
                    maps[f"s{k:04d}"] = t.name
                tasks.append(Task(sm, "srcmaps", {"sources": state.model.names},
                                  inputs=maps))
            inputs[f"counts{i:02d}"] = c
            if mode == "computed":
                inputs[f"srcmaps{i:02d}"] = sm
            if f"drm{sfx}" in setup and opts_i.gtlike.edisp and mode != "computed":
                # scaled maps: the full range's response matrix too (as Fermipy's scaled
                # mode keeps the full range's response); the same with the inclination
                # maps (the dispersion's change with the inclination mix is left out)
                inputs[f"drm{i:02d}"] = f"drm{sfx}"
            elif f"drm{sfx}" in setup and opts_i.gtlike.edisp:
                d = f"{pfx}/drm{sfx}"
                tasks.append(Task(d, "drm", dict(setup[f"drm{sfx}"].params),
                                  inputs={"ltcube": lt},
                                  files=dict(setup[f"drm{sfx}"].files)))
                inputs[f"drm{i:02d}"] = d
            if opts_i.gtlike.wmap:
                files[f"wmap{i:02d}"] = [str(opts_i.gtlike.wmap)]
        fit = f"{pfx}/fit/{srcname}"
        extra = {}
        if mode == "inclination":
            extra["bin_maps"] = [{f"s{k:04d}": p for k, p in decomp[i].items()}
                                 for i in range(n)]
        tasks.append(Task(fit, "lc_bin", {**extra,
            "name": src.name, "tmin": float(a), "tmax": float(z), "ontime": ontime,
            "plan": plan, "model": model_dict, "components": comp_params,
            "shape_ts_threshold": float(opts["shape_ts_threshold"]),
            "fit_options": dict(fit_options), "npts": int(npts),
            "roi_center": list(state.roi_center), "coordsys": state.coordsys},
            inputs=inputs, files=files))
        bin_tasks[b] = fit
    return CurvePlan(src.name, bins, tasks, bin_tasks, skipped,
                     outdir / SUBDIR / srcname)


def _ltcube_region(geom, state, mode: str, ltbinsz: float) -> list[float]:
    """(ra, dec, radius) deg of the cap of livetime-cube pixels a bin needs: every pixel
    holding a counts-map pixel centre (the exposure looks up the pixel holding each
    direction), the model's sources with a position (mode "inclination": their maps take
    the livetime at the source) and, for source maps computed per bin (mode "computed"),
    5 deg more for the PSF-convolved diffuse maps; plus two livetime-cube pixels of
    margin."""
    from ..geom.frames import angular_separation, transform
    from ..io.ltcube import nside_from_binsz

    lon, lat = geom.pixel_centers()
    ra, dec = transform(np.ravel(lon), np.ravel(lat), geom.frame, "CEL")
    c_ra, c_dec = (float(v) for v in state.roi_center)          # (ra, dec)
    r = float(np.max(angular_separation(np.asarray(ra), np.asarray(dec), c_ra, c_dec)))
    if mode != "scaled":
        r += 5.0 if mode == "computed" else 0.0
        for s in state.model:
            if s.skydir is not None:                                # (ra, dec)
                r = max(r, float(angular_separation(np.array([s.skydir[0]]),
                                                    np.array([s.skydir[1]]), c_ra,
                                                    c_dec)[0]))
    pixdeg = math.degrees(math.sqrt(4 * math.pi / (12 * nside_from_binsz(ltbinsz) ** 2)))
    return [c_ra, c_dec, min(r + 2.0 * pixdeg, 180.0)]


COMPUTED_MAPS = False      # True: mode "computed" instead of "inclination" (a reference)

MAPS_ATTRS = {
    "scaled": "use_scaled_srcmap (Fermipy's approximation): every source's map is the full "
              "range's times the ratio of the bin's exposure to the full range's; the maps "
              "keep the full range's PSF (its mix of inclinations), which the precession "
              "changes from bin to bin",
    "inclination": "point and radial sources: each bin's exact map from its livetime at "
                   "the source by inclination (fermixr.srcmap.inclination); diffuse and "
                   "template sources: the full range's map times the exposure ratio (the "
                   "full range's PSF blur of a smooth template); energy dispersion: the "
                   "full range's response matrix",
    "computed": "every source's map computed from the bin's livetime cube (and the bin's "
                "response matrix)",
}


def maps_mode(opts: dict) -> str:
    """How a curve makes its bins' source maps: "scaled" (use_scaled_srcmap), else
    "inclination" (exact point-source maps, :data:`MAPS_ATTRS`), or "computed" when
    :data:`COMPUTED_MAPS` is set (every map per bin: slow, the reference)."""
    if opts.get("use_scaled_srcmap"):
        return "scaled"
    return "computed" if COMPUTED_MAPS else "inclination"


class ScaledSrcmapWarning(UserWarning):
    """A light curve uses use_scaled_srcmap (the full range's PSF in every bin)."""


_WARNED = []


def _warn_scaled() -> None:
    import warnings

    if _WARNED:
        return
    _WARNED.append(True)
    warnings.warn("lightcurve.use_scaled_srcmap: every bin's source maps are the full "
                  "range's scaled by the exposure ratio and keep the full range's PSF; the "
                  "inclination mix at the source changes with the orbit's precession, so a "
                  "steady source's TS_var comes out too high on long curves (the default, "
                  "use_scaled_srcmap false, makes exact per-bin point-source maps at little "
                  "cost)", ScaledSrcmapWarning, stacklevel=4)


def _scfiles(opts) -> list[str]:
    from .plan import _files

    return _files(opts.data.scfile, "data.scfile")


# ---------------------------------------------------------------------- the running ----
class _CurveExecutor(Executor):
    """The executor, reporting bins done / total (on a terminal) instead of every task."""

    def __init__(self, *a, n_bins=0, progress=None, **kw):
        super().__init__(*a, **kw)
        self.n_bins, self.done_bins, self._progress = n_bins, 0, progress

    def _finish(self, st, i, n):
        self.names.link(st.task.name, st.path)
        if st.task.step == "lc_bin":
            self.done_bins += 1
            if self._progress:
                self._progress(self.done_bins, self.n_bins)


def _chunks(cplan: CurvePlan, client) -> list[list]:
    """The curve's tasks in chunks of bins (4 per worker, at least 4 bins), each chunk
    with the shared tasks (the selection's GTIs and events, full-range products) first."""
    shared = [t for t in cplan.tasks if not t.name.startswith("bins/")]
    per_bin: dict[str, list] = {}
    for t in cplan.tasks:
        if t.name.startswith("bins/"):
            per_bin.setdefault(t.name.split("/")[1], []).append(t)
    if not per_bin:
        return [shared] if shared else []
    workers = 1
    if client is not None:
        try:
            workers = max(len(client.nthreads()), 1)
        except Exception:       # a client without workers' info: one
            workers = 1
    size = max(4 * workers, 4)
    keys = sorted(per_bin)
    return [shared + [t for k in keys[i:i + size] for t in per_bin[k]]
            for i in range(0, len(keys), size)]


def run_curve(cplan: CurvePlan, store_root, *, client=None, verbose=True,
              stream=None, force=()) -> tuple[list[dict], dict]:
    """Run every bin's tasks (reusing finished ones; ``force``: steps of :data:`FORCEABLE`
    computed again) and read the bins back.  Returns the records in time order and counts
    {"computed", "reused", "no_gti", "retry"}.  A bin whose fit raised is recorded, then
    its product is dropped from the store so that the next run computes it again."""
    from .store import _remove_tree, open_product_dir, read_attrs

    stream = stream if stream is not None else sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    n = len(cplan.bins)
    last = [0.0]

    def progress(done, total):
        if not (verbose and tty):
            return
        now = time.monotonic()
        if done < total and now - last[0] < 1.0:
            return
        last[0] = now
        frac = done / max(total, 1)
        print(f"\r      lightcurve {cplan.name}: [{'#' * int(30 * frac):<30}] "
              f"{done}/{total} bins", end="" if done < total else "\n", file=stream,
              flush=True)

    ex = _CurveExecutor(cplan.run_dir, store_root, client=client, verbose=False,
                        stream=stream, n_bins=len(cplan.bin_tasks), progress=progress,
                        force=[f for f in force or () if f in FORCEABLE])
    states = {}
    t_run = time.monotonic()
    for chunk in _chunks(cplan, client):
        # a few bins at a time, so that finished bins appear while the curve runs (the
        # executor runs a chunk's independent tasks together, on the cluster if any)
        for name, st in ex.run(chunk).items():
            # a shared task computed by an earlier chunk stays "computed" in the record
            if name not in states or states[name].status != "computed":
                states[name] = st
    if states:
        ex._write_manifest(states, list(states), time.monotonic() - t_run)
    records: list[dict] = []
    counts = {"computed": 0, "reused": 0, "no_gti": len(cplan.skipped), "retry": 0}
    for b in range(n):
        if b in cplan.skipped:
            records.append(dict(cplan.skipped[b]))
            continue
        st = states[cplan.bin_tasks[b]]
        counts["computed" if st.status == "computed" else "reused"] += 1
        ds = open_product_dir(st.path, dask=False)
        records.append(_record(ds))
        if read_attrs(st.path).get(RETRY_ATTR):
            records[-1]["reason"] += " (not kept: the next run computes this bin again)"
            counts["retry"] += 1
            _remove_tree(st.path)
    return records, counts


def _record(ds) -> dict:
    """The record of a one-bin ``lightcurve`` product."""
    rec = {}
    for k, v in ds.data_vars.items():
        val = v.values[0]
        if v.ndim == 2:
            rec[k] = np.asarray(val, float)
        elif v.dtype == bool:
            rec[k] = bool(val)
        elif v.dtype.kind in "OUST":
            rec[k] = str(val)
        else:
            rec[k] = float(val)
    return rec


def run_lightcurve(state, recipe, outdir, name: str, params: dict | None = None, *,
                   fit_options=None, store_root=None, client=None, verbose=True,
                   stream=None, force=()) -> tuple[object, dict]:
    """Fermipy's ``lightcurve(name, **params)`` on the analysis ``state`` of a run: plans
    (and checks) every bin, runs them, reduces, writes the files.  Returns (the
    ``lightcurve`` product, {kind: path} of the files written)."""
    from .run import store_root as default_store_root

    stream = stream if stream is not None else sys.stderr
    params = dict(params or {})
    opts = lightcurve_options(recipe, params)
    root = store_root if store_root is not None else default_store_root(recipe, Path(outdir))
    fo = dict(fit_options or {})
    fo.update(params.get("optimizer") or {})
    cplan = plan_curve(recipe, outdir, state, name, opts, fo)
    t0 = time.monotonic()
    records, counts = run_curve(cplan, root, client=client, verbose=verbose, stream=stream,
                                force=force)
    red = LC.reduce_curve(records, float(opts["systematic"]))
    ds = curve_dataset(records, cplan.name, red)
    failed = [(i, r["status"], r["reason"]) for i, r in enumerate(records)
              if not r["fit_success"]]
    # (how many bins this call computed or reused is printed, not stored: the product is
    # the same whichever run made it)
    mode = maps_mode(opts)
    ds.attrs.update(bins_failed=len(failed), systematic=float(opts["systematic"]),
                    config=json.dumps(_jsonable(opts)), bin_maps=mode,
                    bin_maps_method=MAPS_ATTRS[mode])
    if counts["retry"]:
        ds.attrs[RETRY_ATTR] = True     # the curve's step is computed again on a rerun
    if verbose:
        print(f"      lightcurve {cplan.name}: {len(records)} bins: {counts['computed']} "
              f"computed, {counts['reused']} reused, {len(failed)} without a fit "
              f"({counts['no_gti']} without GTIs; recorded with their reasons, the curve is "
              f"complete"
              + (f"; {counts['retry']} whose fit raised, computed again on the next run"
                 if counts["retry"] else "")
              + f") in {time.monotonic() - t0:.1f} s; "
              f"ts_var {red['ts_var']:.2f} over {red['n_ok']} bins", file=stream, flush=True)
        for i, status, reason in failed:
            print(f"      lightcurve {cplan.name}: bin {i} ({status}): {reason}",
                  file=stream, flush=True)
    paths = write_outputs(ds, opts, Path(outdir), params.get("prefix") or "")
    return ds, paths


def _jsonable(v):
    return json.loads(json.dumps(v, default=lambda o: o.tolist()
                                 if hasattr(o, "tolist") else str(o)))


# ------------------------------------------------------------------------ the files ----
def output_files(opts: dict, outdir: Path, prefix: str, name: str) -> dict:
    from .plan import product_name

    folder = Path(outdir) / opts["outdir"] if opts.get("outdir") else Path(outdir)
    stem = f"{prefix}_" if prefix else ""
    base = folder / f"{stem}{product_name(name).replace(' ', '_').lower()}_lightcurve"
    out = {}
    if opts.get("write_fits", True):
        out["fits"] = base.with_suffix(".fits")
    if opts.get("write_npy", True):
        out["npy"] = base.with_suffix(".npy")
    if opts.get("make_plots"):
        out["png"] = base.with_suffix(".png")
    return out


def lightcurve_dict(ds, fits_path=None) -> dict:
    """Fermipy's lightcurve() dict: name, tmin, tmax (and _mjd), fit_success, ts_var,
    config and per bin the source dictionary's families, loglike_const, loglike_fixed,
    the scans, status and reason."""
    d = {"name": ds.attrs["name"], "ts_var": ds.attrs.get("ts_var"),
         "flux_const": ds.attrs.get("flux_const"),
         "config": json.loads(ds.attrs.get("config", "{}")),
         "bin_maps": ds.attrs.get("bin_maps"),
         "file": None if fits_path is None else str(fits_path)}
    for k, v in ds.data_vars.items():
        d[k] = np.asarray(v.values)
    return d


def write_outputs(ds, opts: dict, outdir: Path, prefix: str) -> dict:
    from .roi_output import save_npy_atomic, write_atomic

    files = output_files(opts, outdir, prefix, ds.attrs["name"])
    if files:
        next(iter(files.values())).parent.mkdir(parents=True, exist_ok=True)
    out = {}
    if "fits" in files:
        out["fits"] = write_atomic(files["fits"], lambda tmp: _write_fits(ds, tmp))
    if "npy" in files:
        out["npy"] = save_npy_atomic(files["npy"], lightcurve_dict(ds, out.get("fits")))
    if "png" in files:
        from ..plot.lightcurve import lightcurve_figure
        from ..plot.roi import save_figure

        fig = lightcurve_figure(ds["tmin"].values, ds["tmax"].values, ds["flux"].values,
                                ds["flux_err"].values, ds["flux_ul95"].values,
                                ds["ts"].values, ds["fit_success"].values,
                                flux_const=ds.attrs.get("flux_const"), name=ds.attrs["name"])
        out["png"] = save_figure(fig, files["png"])
    return out


def _write_fits(ds, path):
    """One row per bin with Fermipy's column names; TS_VAR, the constant flux and the
    configuration (CONFIG, JSON) in the header."""
    from astropy.io import fits
    from astropy.table import Table

    t = Table()
    for k, v in ds.data_vars.items():
        vals = v.values
        if vals.dtype == object:
            vals = vals.astype(str)
        t[k] = vals
        if v.attrs.get("units"):
            t[k].unit = v.attrs["units"].replace("count", "ct")
    hdu = fits.table_to_hdu(t)
    hdu.name = "LIGHTCURVE"
    hdu.header["SRCNAME"] = ds.attrs["name"]
    tv = ds.attrs.get("ts_var")
    hdu.header["TS_VAR"] = (float("nan") if tv is None else float(tv), "2FGL variability TS")
    hdu.header["FLUXCONS"] = (float(ds.attrs.get("flux_const", float("nan"))),
                              "constant flux, cm-2 s-1")
    hdu.header["SYSTEMAT"] = float(ds.attrs.get("systematic", float("nan")))
    hdu.header["MJDREF"] = MJDREF
    hdu.header["CONFIG"] = ds.attrs.get("config", "{}")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)


# ----------------------------------------------------------------- the recipe step -----
def check_step(recipe, params: dict, earlier_steps) -> None:
    """What can be checked of a lightcurve step before any work: its options, the source
    (in the configured model or added by an earlier add_source step) and the bins against
    the data's time range (the event files' GTIs within selection.tmin/tmax)."""
    from ..io.ft1 import read_ft1_gti
    from .plan import _files, sky_model

    opts = lightcurve_options(recipe, params)
    name = params.get("name")
    if not name:
        raise RecipeError("steps: lightcurve needs the name of a source (lightcurve: "
                          "{name: ...})")
    added = {str(p.get("name")) for n, p in earlier_steps if n == "add_source" and p}
    if str(name) not in added:
        try:
            sky_model(recipe.components[0]).find(str(name))
        except Exception as exc:
            raise RecipeError(f"steps: lightcurve: {exc}") from None
    sel = recipe.options[0].selection
    g = read_ft1_gti(_files(recipe.options[0].data.evfile, "data.evfile"))
    s, e = np.asarray(g["START"].values, float), np.asarray(g["STOP"].values, float)
    t0 = float(s.min()) if sel.tmin is None else max(float(s.min()), float(sel.tmin))
    t1 = float(e.max()) if sel.tmax is None else min(float(e.max()), float(sel.tmax))
    what = "the event files' GTIs within the selection"
    scfile = recipe.options[0].data.scfile
    if scfile:                  # the bins' livetime comes from the spacecraft file
        f0, f1 = ft2_span(_files(scfile, "data.scfile"))
        if f0 > t0 or f1 < t1:
            what += f" and the spacecraft file's rows (MET {f0:.1f}-{f1:.1f} s)"
        t0, t1 = max(t0, f0), min(t1, f1)
    LC.time_bins(t0, t1, binsz=opts["binsz"], nbins=opts["nbins"],
                 time_bins=opts["time_bins"], span=what)


def ft2_span(files) -> tuple[float, float]:
    """(first START, last STOP) of the rows of the spacecraft files, read from the first
    and last rows (the header's TSTART/TSTOP when the file cannot seek)."""
    from ..io.ft2 import open_ft2
    from ..io.headers import header_float

    t0, t1 = np.inf, -np.inf
    for f in files:
        with open_ft2(f) as t:
            first = t.read_rows(1, ["START", "STOP"])
            if first is None:
                continue
            t0 = min(t0, float(first["START"][0]))
            last = None
            try:
                t._stream.seek((t.nrows - 2) * t.rowbytes, 1)
                t._rows_read = t.nrows - 1
                last = t.read_rows(1, ["STOP"])
            except Exception:        # a stream that cannot seek (gzip): the header's
                last = None
            stop = float(last["STOP"][0]) if last is not None else header_float(
                t.header, "TSTOP", f, float(first["STOP"][0]), hdu="SC_DATA")
            t1 = max(t1, stop)
    return float(t0), float(t1)


@register_step("lightcurve", version="1", product="lightcurve", kind="result")
def lightcurve_step(state, params, ctx):
    """Fermipy's lightcurve(): the source fitted in each time bin (a keyed sub-plan per
    bin), the constant flux and TS_var; writes <prefix>_<name>_lightcurve.fits / .npy
    (and the plot with make_plots)."""
    from .roi_output import files_record

    params = dict(params)
    fo = ctx.fit_options(**(params.pop("optimizer", None) or {}))
    ds, paths = run_lightcurve(state, ctx.recipe, ctx.outdir, params["name"], params,
                               fit_options=fo, store_root=getattr(ctx, "store_root", None),
                               client=getattr(ctx, "client", None),
                               stream=ctx.stream, force=getattr(ctx, "force", ()))
    if paths:
        ds.attrs["written_files"] = files_record(paths)
    return state, ds


lightcurve_step.forced_by = FORCEABLE      # --force lc_bin: the step runs, its fits again


def lightcurve_written(recipe, params, outdir, name) -> dict:
    """The files a lightcurve step writes (to tell a cached step whose files are gone)."""
    opts = lightcurve_options(recipe, params)
    return output_files(opts, Path(outdir), params.get("prefix") or "", name)


__all__ = ["run_lightcurve", "plan_curve", "run_curve", "curve_dataset", "lightcurve_dict",
           "check_step", "bin_state"]
