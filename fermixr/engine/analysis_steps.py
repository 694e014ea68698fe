"""Recipe steps that act on the analysis state (Fermipy's method names and parameters),
registered in the one step registry (:mod:`fermixr.engine.steps`) each with its own
version, and run in order on the frozen :class:`~fermixr.likelihood.roi.AnalysisState` of
the run's (cached) data products.

Two kinds:

* **state steps** (``free_source``, ``set_parameter``, ``add_source``, ``add_gauss_prior``,
  ``generate_model``, ``load_roi``, ``write_xml``, ``print_roi`` ...) return an edited
  state (or print/write something); they are cheap and replayed on every run;
* **result steps** (``fit``, ``optimize``, ``write_roi``, ``get_src_model``, ``get_sources``,
  ``get_params``, ``profile``, ``profile_norm``, ``bowtie``, ``model_counts_map``,
  ``counts_map``, ``residmap``) store a product under a key chained from the data products, the model as
  built, every option and file byte the analysis reads, and every earlier step with its
  parameters and version.  A re-run with nothing changed takes each from the store (and the
  model after it from the product's attrs); changing one step recomputes it and what
  follows.  A fit that fails is stored as failed (``fit_success`` false, with its message),
  is never taken for a success, and makes the run end with exit status 1 naming the step.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import RecipeError, StepError
from ..estimators import edits as E
from .hashing import digest, file_sha256
from .steps import get_step, known_steps, register_step
from .store import NameIndex, ProductStore, read_attrs, read_marker


@dataclasses.dataclass
class AnalysisContext:
    """What an analysis step may use besides the state: the recipe, the run folder, the
    step's key (the default seed of ``generate_model``) and the output stream."""

    recipe: object
    outdir: Path
    key: str = ""
    stream: object = None
    client: object = None          # the run's dask client, or None
    store_root: Path | None = None
    force: frozenset = frozenset()  # --force names (a lightcurve passes lc_bin on)

    @property
    def config(self) -> dict:
        return self.recipe.config

    def fit_options(self, **given) -> dict:
        opt = self.recipe.options[0].optimizer.to_dict()
        opt = {k: v for k, v in opt.items()
               if k in ("optimizer", "tol", "max_iter", "init_lambda", "retries",
                        "min_fit_quality", "verbosity")}
        opt.update({k: v for k, v in given.items() if v is not None})
        return opt

    @property
    def llscan_npts(self) -> int:
        return int(self.recipe.options[0].gtlike.llscan_npts)


# --------------------------------------------------------------------- state steps --
def _edit_step(name: str, func, version: str = "1"):
    """Register the edit ``func(state, **params)`` (returning a state or (state, value))
    as the state step ``name``."""

    def step(state, params, ctx):
        out = func(state, **params)
        return out[0] if isinstance(out, tuple) else out

    step.__doc__ = func.__doc__
    register_step(name, version=version, product=None, kind="state")(step)


for _name in ("free_source", "free_sources", "free_norm", "free_index", "free_shape",
              "free_parameter", "set_norm", "set_parameter", "set_parameter_bounds",
              "set_source_spectrum", "set_source_morphology", "add_source", "delete_source",
              "delete_sources", "zero_source", "unzero_source", "add_gauss_prior",
              "remove_prior", "remove_priors", "constrain_norms"):
    _edit_step(_name, getattr(E, _name))


def _seed(params, ctx):
    if params.get("seed") is not None:
        return int(params["seed"])
    seed = ctx.recipe.options[0].mc.seed
    return int(seed) if seed is not None else int(ctx.key[:8], 16)


@register_step("generate_model", version="1", product=None, kind="state")
def _generate_model(state, params, ctx):
    """Replace the counts by a Poisson realisation of the model (seeded)."""
    return E.generate_model(state, params.get("model_name"), seed=_seed(params, ctx))[0]


@register_step("load_roi", version="1", product=None, kind="state")
def _load_roi(state, params, ctx):
    """Restore the model from a write_roi .npy file."""
    from ..model.skymodel import SkyModel

    doc = np.load(_roi_npy(params["infile"], ctx.outdir), allow_pickle=True).item()
    return E.with_all_maps(state.with_model(SkyModel.from_dict(doc["roi"]["model"])))


@register_step("write_xml", version="1", product=None, kind="state")
def _write_xml(state, params, ctx):
    """Write the model as a Science Tools XML file."""
    from .roi_output import write_model_xml

    path = Path(params["xmlfile"])
    write_model_xml(state.model, path if path.is_absolute() else ctx.outdir / path)
    return state


@register_step("print_roi", version="1", product=None, kind="state")
def _print_roi(state, params, ctx):
    """Print the sources with their npred and free parameters."""
    print(E.roi_text(state), file=sys.stdout)
    return state


@register_step("print_params", version="1", product=None, kind="state")
def _print_params(state, params, ctx):
    """Print the free spectral parameters (every one with allpars)."""
    print(E.params_text(state, params.get("allpars", False)), file=sys.stdout)
    return state


# -------------------------------------------------------------------- result steps --
@register_step("fit", version="4", product="fit", kind="result")
def _fit(state, params, ctx):
    """Fit the free parameters; ``update: false`` keeps the model (and its fit) as it was."""
    from ..estimators.fit import fit_dataset, fit_state

    p = dict(params)
    update = p.pop("update", True)
    out, new = fit_state(state, **ctx.fit_options(**p))
    return (new if update else state), fit_dataset(out)


@register_step("optimize", version="4", product="fit", kind="result")
def _optimize(state, params, ctx):
    """Fermipy's optimize() (roiopt section, overridden by the step's parameters)."""
    from ..estimators.fit import fit_dataset
    from ..estimators.optimize import optimize_state

    ro = ctx.recipe.options[0].roiopt.to_dict()
    opts = {k: (params[k] if params.get(k) is not None else ro[k])
            for k in ("npred_frac", "npred_threshold", "shape_ts_threshold",
                      "max_free_sources", "skip")}
    out, new = optimize_state(state, fit_options=ctx.fit_options(),
                              **{k: v for k, v in opts.items() if v is not None})
    return new, fit_dataset(out)


@register_step("write_roi", version="4", product="roi", kind="result")
def _write_roi(state, params, ctx):
    """Write the ROI files; the product is the ROI table written beside them."""
    import xarray as xr

    from .roi_output import files_record, write_roi

    paths = write_roi(state, ctx.recipe.to_dict(), ctx.outdir,
                      params.get("outfile") or "fit_roi",
                      save_model_map=bool(params.get("save_model_map")),
                      make_plots=bool(params.get("make_plots")))
    ds = xr.open_zarr(paths["zarr"]).load()
    # what was written (taken into the product's provenance by run_analysis_steps), so that
    # a cached run can tell a truncated or edited file
    ds.attrs[WRITTEN_FILES] = files_record(paths)
    return state, ds


def _source_table(state, names, ctx):
    from ..estimators.sourcedict import source_dict, sources_dataset

    return sources_dataset({n: source_dict(state, n, llscan_npts=ctx.llscan_npts)
                            for n in names})


@register_step("get_src_model", version="4", product="roi", kind="result")
def _get_src_model(state, params, ctx):
    """One source's dictionary as a one-row ROI table."""
    return state, _source_table(state, [state.model.find(params["name"]).name], ctx)


@register_step("get_sources", version="4", product="roi", kind="result")
def _get_sources(state, params, ctx):
    """The selected sources' dictionaries as an ROI table."""
    p = dict(params)
    p.setdefault("coordsys", ctx.recipe.options[0].binning.coordsys)
    return state, _source_table(state, [s.name for s in E.get_sources(state, **p)], ctx)


@register_step("get_params", version="4", product="params", kind="result")
def _get_params(state, params, ctx):
    """Every spectral parameter (or the free ones)."""
    rows = E.get_params(state, freeonly=bool(params.get("freeonly", False)))

    def col(k, dtype=float):
        return ("param", np.array([np.nan if r[k] is None and dtype is float else r[k]
                                   for r in rows], dtype=dtype))

    import xarray as xr

    ds = xr.Dataset(
        {"src_name": col("src_name", object), "par_name": col("par_name", object),
         "value": col("value"), "scale": col("scale"), "min": col("min"), "max": col("max"),
         "free": col("free", bool), "error": col("error")},
        coords={"param": np.array([f"{r['src_name']}:{r['par_name']}" for r in rows],
                                  dtype=object)},
        attrs={"fermixr_product": "params"})
    return state, ds


@register_step("profile", version="4", product="profile", kind="result")
def _profile(state, params, ctx):
    """Likelihood profile of one spectral parameter."""
    from ..estimators.profile import profile_dataset, profile_values

    src = state.model.find(params["name"])
    res = profile_values(state, src.name, params["parName"], params.get("xvals"),
                         npts=params.get("npts") or ctx.llscan_npts,
                         reoptimize=bool(params.get("reoptimize")),
                         fit_options=ctx.fit_options())
    return state, profile_dataset(res, src.name, bool(params.get("reoptimize")))


@register_step("profile_norm", version="4", product="profile", kind="result")
def _profile_norm(state, params, ctx):
    """Likelihood profile of a source's normalisation."""
    from ..estimators.profile import norm_xvals, profile_dataset, profile_values

    src = state.model.find(params["name"])
    xvals = params.get("xvals")
    if xvals is None:
        xvals = norm_xvals(state, src.name, params.get("npts") or ctx.llscan_npts)
    res = profile_values(state, src.name, state.spectral(src).norm_param, xvals,
                         reoptimize=bool(params.get("reoptimize")),
                         fit_options=ctx.fit_options())
    return state, profile_dataset(res, src.name, bool(params.get("reoptimize")))


@register_step("bowtie", version="4", product="bowtie", kind="result")
def _bowtie(state, params, ctx):
    """dN/dE of a source with its 1-sigma band."""
    from ..estimators.bowtie import bowtie_dataset, bowtie_values

    src = state.model.find(params["name"])
    res = bowtie_values(state, src.name, params.get("loge"), params.get("npts") or 50)
    return state, bowtie_dataset(res, src.name)


def _cube_dataset(state, cubes, kind):
    """Per-component cubes summed onto the counts geometry, as the ``counts`` /
    ``model_counts`` product."""
    from ..likelihood.roi import require_one_grid

    comps = state.components
    require_one_grid(comps, kind)
    ref = comps[0].template
    total = sum(m.reshape(ref["counts"].shape) for m in cubes)
    var = "counts" if kind == "counts" else "model_counts"
    if kind == "counts":
        total = total.astype(ref["counts"].dtype)
    ds = ref.drop_vars("counts").assign({var: (ref["counts"].dims, total)})
    ds[var].attrs["units"] = "count"
    ds.attrs = dict(ref.attrs, fermixr_product=kind)
    return ds


@register_step("model_counts_map", version="4", product="model_counts", kind="result")
def _model_counts_map(state, params, ctx):
    """Model counts of the whole model or one source, summed over components."""
    from ..estimators.ts import model_cubes

    return state, _cube_dataset(state, model_cubes(state, params.get("name")),
                                "model_counts")


@register_step("counts_map", version="4", product="counts", kind="result")
def _counts_map(state, params, ctx):
    """The counts, summed over components."""
    return state, _cube_dataset(state, [c.counts for c in state.components], "counts")


RESIDMAP_OPTIONS = ("model", "exclude", "loge_bounds", "use_weights")


def _section_params(ctx, section: str, params: dict) -> dict:
    """The resolved recipe section (first component) with the step's parameters over it."""
    out = getattr(ctx.recipe.options[0], section).to_dict()
    out.update({k: v for k, v in params.items() if k != "prefix"})
    return out


@register_step("residmap", version="1", product="residmap", kind="result")
def _residmap(state, params, ctx):
    """Residual significance map of the test source's kernel, with Fermipy's files."""
    from ..estimators import run
    from .residmap_output import write_residmap_outputs

    opts = _section_params(ctx, "residmap", params)
    ds = run("residmap", state, **{k: opts.get(k) for k in RESIDMAP_OPTIONS}).dataset
    paths = write_residmap_outputs(
        ds, state.components[0].geom, ctx.outdir, params.get("prefix") or "",
        config=opts, write_fits=bool(opts.get("write_fits")),
        write_npy=bool(opts.get("write_npy")), make_plots=bool(opts.get("make_plots")),
        center_radec=state.roi_center)
    from .roi_output import files_record

    if paths:
        ds.attrs[WRITTEN_FILES] = files_record(paths)
    return state, ds


@register_step("tsmap", version="2", product="tsmap", kind="result")
def _tsmap(state, params, ctx):
    """Fermipy's tsmap(): TS map of a test source (the tsmap section, the step's
    parameters over it); writes <prefix>_tsmap.fits and .npy (and the plot with
    make_plots) in the run folder."""
    from .tsmap_output import run_tsmap

    section = ctx.recipe.options[0].tsmap.to_dict()   # model, exclude, max_kernel_radius,
    # loge_bounds, multithread, nthread, make_plots, write_fits, write_npy
    ds, paths = run_tsmap(state, section, ctx.outdir, params)
    from .roi_output import files_record

    ds.attrs[WRITTEN_FILES] = files_record(paths)
    return state, ds


@register_step("sed", version="1", product="sed", kind="result")
def _sed(state, params, ctx):
    """Fermipy's sed(): the SED of one source (the sed section, the step's parameters
    over it); writes <prefix>_<name>_sed.fits and .npy (and the plot with make_plots) in
    the run folder."""
    from .roi_output import files_record
    from .sed_output import run_sed

    section = ctx.recipe.options[0].sed.to_dict()
    ds, paths = run_sed(state, section, ctx.outdir, params, llscan_npts=ctx.llscan_npts)
    ds.attrs[WRITTEN_FILES] = files_record(paths)
    return state, ds


@register_step("tscube", version="1", product="tscube", kind="result")
def _tscube(state, params, ctx):
    """Fermipy's tscube(): TS cube of a test source (the tscube section, the step's
    parameters over it); writes <prefix>_tscube.fits and .npy (and the plot with
    make_plots) in the run folder."""
    from .roi_output import files_record
    from .tscube_output import run_tscube

    section = ctx.recipe.options[0].tscube.to_dict()
    ds, paths = run_tscube(state, section, ctx.outdir, params)
    ds.attrs[WRITTEN_FILES] = files_record(paths)
    return state, ds


from . import lightcurve as _lightcurve  # noqa: E402,F401  (registers the lightcurve steps)
from . import wtlike_step as _wtlike_step  # noqa: E402,F401  (weighted_lightcurve)


@register_step("localize", version="1", product="localize", kind="result")
def _localize(state, params, ctx):
    """Fermipy's localize(): the position of a source (the localize section, the step's
    parameters over it); with update (default) the model after the step has the source at
    its new position.  Writes <prefix>_<name>_loc.fits and .npy (and the plot)."""
    from .localize_output import run_localize
    from .roi_output import files_record

    section = ctx.recipe.options[0].localize.to_dict()   # nstep, dtheta_max, update ...
    res, paths = run_localize(state, section, ctx.outdir, params)
    res.dataset.attrs[WRITTEN_FILES] = files_record(paths)
    return (res.state if res.state is not None else state), res.dataset


@register_step("find_sources", version="1", product="find_sources", kind="result")
def _find_sources(state, params, ctx):
    """Fermipy's find_sources(): new point sources at TS-map peaks (the sourcefind
    section, the step's parameters over it); the model after the step holds them."""
    from .localize_output import run_find_sources
    from .roi_output import files_record

    section = ctx.recipe.options[0].sourcefind.to_dict()  # sqrt_ts_threshold, max_iter ...
    res, paths = run_find_sources(state, section, ctx.outdir, params)
    res.dataset.attrs[WRITTEN_FILES] = files_record(paths)
    return (res.state if res.state is not None else state), res.dataset


@register_step("extension", version="1", product="extension", kind="result")
def _extension(state, params, ctx):
    """Fermipy's extension(): the width scan of one source (the extension section, the
    step's parameters over it); writes <prefix>_<name>_ext.fits and .npy (and the profile
    plot with make_plots); with update the model takes the extended source."""
    from .extension_output import run_extension
    from .roi_output import files_record

    section = ctx.recipe.options[0].extension.to_dict()
    new, ds, paths = run_extension(state, section, ctx.outdir, params,
                                   fit_options=ctx.fit_options(),
                                   config=json.dumps(ctx.recipe.to_dict(), default=str))
    ds.attrs[WRITTEN_FILES] = files_record(paths)
    return (new if new is not None else state), ds


@register_step("curvature", version="1", product="curvature", kind="result")
def _curvature(state, params, ctx):
    """Fermipy's curvature(): PowerLaw against LogParabola and PLSuperExpCutoff4."""
    from ..estimators import run

    fo = ctx.fit_options(**(params.get("optimizer") or {}))
    return state, run("curvature", state, params["name"], optimizer=fo).dataset


def analysis_steps() -> tuple[str, ...]:
    return tuple(known_steps("state")) + tuple(known_steps("result"))


# ------------------------------------------------------------------------------- keys --
def _roi_npy(infile, outdir) -> Path:
    p = Path(infile)
    p = p if p.is_absolute() or p.exists() else Path(outdir) / p
    p = p if p.suffix == ".npy" else p.with_suffix(".npy")
    if not p.is_file():
        raise RecipeError(f"load_roi: file {str(p)!r} does not exist")
    return p


def _key_inputs(name, params, outdir) -> dict:
    """What a step depends on beyond its parameters: the content of a file it reads."""
    if name == "load_roi":
        return {"infile_sha256": file_sha256(_roi_npy(params["infile"], outdir))}
    return {}


def _section_inputs(recipe, name) -> dict:
    """The options a step reads from its own section (the READS consumer named after the
    step, e.g. "tsmap"), per component: part of that step's key only."""
    from .resolved import READS, read_values

    if name not in READS or name not in known_steps("result"):
        return {}
    return {"section_options": [read_values(o, name) for o in recipe.options]}


def analysis_inputs(recipe) -> dict:
    """Every option the analysis steps read (declared as the "analysis" consumer in
    :data:`fermixr.engine.resolved.READS`), per component, and the bytes of the files they
    read (weights maps): part of the first key of the chain."""
    from .resolved import read_values

    out = []
    for opts in recipe.options:
        files = {}
        wmap = opts.gtlike.wmap
        if wmap and Path(wmap).is_file():
            files["wmap"] = file_sha256(wmap)
        out.append({"options": read_values(opts, "analysis"), "files": files})
    return {"components": out}


def _model_files(model) -> dict:
    """sha256 of every spectrum table file the model's sources name (their spatial
    templates are in the source maps' keys)."""
    out = {}
    for s in model:
        f = s.spectrum_file
        if f and Path(f).is_file():
            out[str(f)] = file_sha256(f)
    return out


# ---------------------------------------------------------------------------- running --
WRITTEN_FILES = "written_files"   # provenance of write_roi: {key: {path, size, sha256}}
def run_analysis_steps(recipe, steps, outdir, store_root, prep_keys, *, verbose=True,
                       stream=None, force=(), client=None) -> list[dict]:
    """Run the analysis steps of ``steps`` (list of (name, params)) in order.  Returns one
    record per step (name, key, status: applied / cached / computed / failed, seconds)."""
    from ..likelihood.roi import FitRecord
    from ..model.skymodel import SkyModel
    from .state import load_state

    stream = stream if stream is not None else sys.stderr
    store = ProductStore(store_root)
    names = NameIndex(outdir)
    state = load_state(recipe, outdir, store_root)
    ctx = AnalysisContext(recipe, Path(outdir), stream=stream, client=client,
                          store_root=Path(store_root), force=frozenset(force or ()))
    chain = digest({"data": prep_keys, "model": state.model.to_dict(),
                    "analysis": analysis_inputs(recipe),
                    "model_files": _model_files(state.model)})
    force = set(force or ())
    done, seen = [], {}
    for i, (name, params) in enumerate(steps):
        params = dict(params or {})
        step = get_step(name)
        key = digest({"prev": chain, "step": name, "version": step.version,
                      "params": params, **_key_inputs(name, params, outdir),
                      **_section_inputs(recipe, name)})
        ctx.key = key
        t0 = time.monotonic()
        if step.kind == "state":
            state = step.func(state, params, ctx)
            status = "applied"
        else:
            kind = step.product
            cached = (store.exists(kind, key) and name not in force
                      and not (force & set(getattr(step.func, "forced_by", ())))
                      and not read_attrs(store.path(kind, key)).get("retry_on_rerun")
                      and not _files_missing(state, ctx, name, params,
                                             store.path(kind, key)))
            if cached:
                attrs = read_attrs(store.path(kind, key))
                state = E.with_all_maps(state.with_model(
                    SkyModel.from_dict(json.loads(attrs["model"]))))
                if name in ("fit", "optimize") and attrs.get("fit_success", True) \
                        and (name == "optimize" or params.get("update", True)):
                    path = store.path(kind, key)
                    state = state.replace(fit=FitRecord(loader=lambda path=path:
                                                        _read_fit(path)))
                status = "failed" if attrs.get("fit_success") is False else "cached"
            else:
                state, ds = step.func(state, params, ctx)
                ds.attrs["model"] = json.dumps(state.model.to_dict())
                if ds.attrs.get("fit_success") is False:
                    status = "failed"
                else:
                    status = "computed"
                if store.exists(kind, key):                 # forced
                    from .store import _remove_tree

                    _remove_tree(store.path(kind, key))
                written = ds.attrs.pop(WRITTEN_FILES, None)    # in this run folder
                store.write(ds, kind, key, {"step": name, "step_version": step.version,
                                            "fermixr_version": __version__,
                                            "params": params, "name": name,
                                            "inputs": {"prev": chain},
                                            **({WRITTEN_FILES: written} if written else {})})
            seen[name] = seen.get(name, 0) + 1
            link = {"write_roi": "roi"}.get(name, name)
            names.link(link if seen[name] == 1 else f"{link}_{seen[name]}",
                       store.path(kind, key))
        chain = key
        secs = time.monotonic() - t0
        rec = {"name": name, "step": name, "key": key, "status": status,
               "seconds": round(secs, 3)}
        if status == "failed":
            attrs = read_attrs(store.path(step.product, key))
            rec["message"] = str(attrs.get("message", "the fit failed"))
        done.append(rec)
        if verbose:
            print(f"[analysis {i + 1}/{len(steps)}] {name:<12} {status} in {secs:.2f} s  "
                  f"({key[:12]})", file=stream, flush=True)
    return done


def failed_steps(records) -> list[dict]:
    return [r for r in records if r["status"] == "failed"]


def raise_for_failures(records) -> None:
    """A run whose analysis steps include a failed fit ends with this error (exit 1)."""
    bad = failed_steps(records)
    if bad:
        what = "; ".join(f"step {r['name']} ({r['key'][:12]}): {r.get('message', '')}"
                         for r in bad)
        raise StepError(f"{len(bad)} analysis step(s) failed: {what}")


def _read_fit(path):
    from .store import open_product_dir

    fit = open_product_dir(path, dask=False)
    if not fit.sizes.get("param", 0):
        return None
    return [str(v) for v in fit["param"].values], fit["covariance"].values.astype(float)


def _files_missing(state, ctx, name, params, product) -> bool:
    """Whether a cached step's files beside the store are not as the step wrote them
    (``write_roi``'s .npy, .fits, .yaml, .zarr, XML and, when asked for, model-cube and plot
    files: deleted, moved, truncated or edited, by size and sha256 against the record in
    the product's provenance): the step then runs again and writes them."""
    if name == "residmap":
        from .residmap_output import residmap_files
        from .roi_output import files_differ

        opts = _section_params(ctx, "residmap", params)
        files = residmap_files(ctx.outdir, params.get("prefix") or "",
                               bool(opts.get("make_plots")), bool(opts.get("write_fits")),
                               bool(opts.get("write_npy")))
        recorded = (read_marker(product) or {}).get(WRITTEN_FILES) or {}
        return bool(files_differ(files, recorded))
    if name == "tsmap":
        from .roi_output import files_differ
        from .tsmap_output import tsmap_written

        recorded = (read_marker(product) or {}).get(WRITTEN_FILES) or {}
        return bool(files_differ(tsmap_written(ctx.recipe.options[0].tsmap.to_dict(),
                                               params, ctx.outdir), recorded))
    if name == "sed":
        from .roi_output import files_differ
        from .sed_output import sed_written

        recorded = (read_marker(product) or {}).get(WRITTEN_FILES) or {}
        src = state.model.find(params["name"]).name
        return bool(files_differ(sed_written(ctx.recipe.options[0].sed.to_dict(), params,
                                             ctx.outdir, src), recorded))
    if name == "tscube":
        from .roi_output import files_differ
        from .tscube_output import tscube_written

        recorded = (read_marker(product) or {}).get(WRITTEN_FILES) or {}
        return bool(files_differ(tscube_written(ctx.recipe.options[0].tscube.to_dict(),
                                                params, ctx.outdir), recorded))
    if name == "lightcurve":
        from .lightcurve import lightcurve_written
        from .roi_output import files_differ

        recorded = (read_marker(product) or {}).get(WRITTEN_FILES) or {}
        return bool(files_differ(lightcurve_written(ctx.recipe, params, ctx.outdir,
                                                    state.model.find(params["name"]).name),
                                 recorded))
    if name in ("localize", "find_sources"):
        from .localize_output import find_sources_written, localize_written
        from .roi_output import files_differ

        recorded = (read_marker(product) or {}).get(WRITTEN_FILES) or {}
        if name == "localize":
            files = localize_written(ctx.recipe.options[0].localize.to_dict(), params,
                                     ctx.outdir, state.model.find(params["name"]).name)
        else:
            files = find_sources_written(ctx.recipe.options[0].sourcefind.to_dict(),
                                         params, ctx.outdir)
        return bool(files_differ(files, recorded))
    if name == "extension":
        from .extension_output import extension_written
        from .roi_output import files_differ

        recorded = (read_marker(product) or {}).get(WRITTEN_FILES) or {}
        src = state.model.find(params["name"]).name
        return bool(files_differ(extension_written(
            ctx.recipe.options[0].extension.to_dict(), params, ctx.outdir, src), recorded))
    if name != "write_roi":
        return False
    from .roi_output import files_differ, roi_files

    files = roi_files(ctx.outdir, len(ctx.recipe.components),
                      params.get("outfile") or "fit_roi",
                      save_model_map=bool(params.get("save_model_map")),
                      make_plots=bool(params.get("make_plots")))
    # none recorded (written by an older version): written again
    recorded = (read_marker(product) or {}).get(WRITTEN_FILES) or {}
    return bool(files_differ(files, recorded))


ANALYSIS_STEPS = analysis_steps()
