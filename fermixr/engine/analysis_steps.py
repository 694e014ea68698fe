"""Recipe steps that act on the analysis state: every public method of
:class:`~fermixr.api.Analysis` (Fermipy's names and parameters), run in order on an
``Analysis`` built on the run's (cached) data products.

Two kinds:

* **state steps** (``free_source``, ``set_parameter``, ``add_source``, ``add_gauss_prior``,
  ``generate_model``, ``load_roi``, ``write_xml``, ``print_roi`` ...) change the analysis or
  print/write something; they are cheap and replayed on every run;
* **result steps** (``fit``, ``optimize``, ``write_roi``, ``get_src_model``, ``get_sources``,
  ``get_params``, ``profile``, ``profile_norm``, ``bowtie``, ``model_counts_map``,
  ``counts_map``) store a product under a key chained from the data products, the model as
  built and every earlier step with its parameters.  A re-run with nothing changed takes
  each from the store (and the model after it from the product's attrs); changing one step
  recomputes it and what follows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .._version import __version__
from ..errors import RecipeError
from .hashing import digest, file_sha256
from .store import NameIndex, ProductStore, read_attrs

STATE_STEPS = (
    "free_source", "free_sources", "free_norm", "free_index", "free_shape", "free_parameter",
    "set_norm", "set_parameter", "set_parameter_bounds", "set_source_spectrum",
    "set_source_morphology", "add_source", "delete_source", "delete_sources", "zero_source",
    "unzero_source", "add_gauss_prior", "remove_prior", "remove_priors", "constrain_norms",
    "load_roi", "generate_model", "write_xml", "print_roi", "print_params")
# result step -> the product kind it stores
RESULT_STEPS = {"optimize": "fit", "fit": "fit", "write_roi": "roi", "get_src_model": "roi",
                "get_sources": "roi", "get_params": "params", "profile": "profile",
                "profile_norm": "profile", "bowtie": "bowtie",
                "model_counts_map": "model_counts", "counts_map": "counts"}
ANALYSIS_STEPS = STATE_STEPS + tuple(RESULT_STEPS)
STEP_VERSION = "3"  # 3: every Analysis method a step; full source dictionaries


# ---------------------------------------------------------------------------- products --
def _fit_dataset(result):
    import numpy as np
    import xarray as xr

    if "covariance" not in result:     # optimize: no parameter vector of its own
        return xr.Dataset(
            {"value": ("param", np.zeros(0)), "error": ("param", np.zeros(0)),
             "covariance": (("param", "param_b"), np.zeros((0, 0)))},
            coords={"param": np.array([], dtype=object)},
            attrs={"fermixr_product": "fit", "loglike": float(result["loglike1"]),
                   "fit_quality": 3, "fit_status": 0, "edm": None, "optimizer": "optimize",
                   "loglike0": float(result["loglike0"])})
    cov = np.asarray(result["covariance"])
    pars = [f"{s}:{p}" for s, p in zip(result["src_names"], result["par_names"])]
    return xr.Dataset(
        {"value": ("param", np.asarray(result["values"])),
         "error": ("param", np.asarray(result["errors"])),
         "covariance": (("param", "param_b"), cov),
         "correlation": (("param", "param_b"), np.asarray(result["correlation"]))},
        coords={"param": np.array(pars, dtype=object)},
        attrs={"fermixr_product": "fit", "loglike": float(result["loglike"]),
               "fit_quality": int(result["fit_quality"]),
               "fit_status": int(result["fit_status"]), "edm": float(result["edm"]),
               "optimizer": str(result["optimizer"])})


def _profile_dataset(result, params):
    import numpy as np
    import xarray as xr

    return xr.Dataset(
        {"loglike": ("point", result["loglike"]), "dloglike": ("point", result["dloglike"]),
         "flux": ("point", result["flux"], {"units": "ph cm-2 s-1"}),
         "eflux": ("point", result["eflux"], {"units": "MeV cm-2 s-1"})},
        coords={"xvals": ("point", np.asarray(result["xvals"], dtype=float))},
        attrs={"fermixr_product": "profile", "name": str(params["name"]),
               "par_name": str(result["par_name"]),
               "reoptimize": bool(params.get("reoptimize", False))})


def _bowtie_dataset(result, params):
    import xarray as xr

    unit = {"units": "ph cm-2 s-1 MeV-1"}
    return xr.Dataset(
        {k: ("energy", result[k], unit) for k in ("dnde", "dnde_err", "dnde_lo", "dnde_hi")}
        | {"dnde_ferr": ("energy", result["dnde_ferr"])},
        coords={"energy": ("energy", result["energies"], {"units": "MeV"})},
        attrs={"fermixr_product": "bowtie", "name": str(params["name"])})


def _params_dataset(rows):
    import numpy as np
    import xarray as xr

    def col(k, dtype=float):
        return ("param", np.array([np.nan if r[k] is None and dtype is float else r[k]
                                   for r in rows], dtype=dtype))

    return xr.Dataset(
        {"src_name": col("src_name", object), "par_name": col("par_name", object),
         "value": col("value"), "scale": col("scale"), "min": col("min"), "max": col("max"),
         "free": col("free", bool), "error": col("error")},
        coords={"param": np.array([f"{r['src_name']}:{r['par_name']}" for r in rows],
                                  dtype=object)},
        attrs={"fermixr_product": "params"})


def _map_dataset(gta, da, kind):
    """A counts-geometry cube as the ``counts`` / ``model_counts`` product."""
    var = "counts" if kind == "counts" else "model_counts"
    ref = gta._components[0].counts_ds
    ds = (da.astype(ref["counts"].dtype) if kind == "counts" else da).to_dataset(name=var)
    ds[var].attrs["units"] = "count"
    ds.attrs = dict(ref.attrs, fermixr_product=kind)
    return ds


# ------------------------------------------------------------------------------ running --
def _seed(params, gta, key):
    if params.get("seed") is not None:
        return int(params["seed"])
    mc = gta.config.get("mc") or {}
    return int(mc["seed"]) if mc.get("seed") is not None else int(key[:8], 16)


def _apply(gta, name, params, key):
    """Run a state step."""
    p = dict(params)
    if name == "generate_model":
        gta.generate_model(p.get("model_name"), seed=_seed(p, gta, key))
    elif name == "print_params":
        gta.print_params(allpars=bool(p.get("allpars", False)))
    elif name == "add_source":
        gta.add_source(p["name"], p["src_dict"], free=p.get("free"))
    else:
        getattr(gta, name)(**p)


def _compute(gta, name, params):
    """Run a result step; returns its product dataset."""
    from ..estimators.sourcedict import sources_dataset

    p = dict(params)
    if name == "fit":
        update = p.pop("update", True)
        saved = gta.model
        result = gta.fit(**p)
        if not update:
            gta.model = saved
        return _fit_dataset(result)
    if name == "optimize":
        return _fit_dataset(gta.optimize(**p))
    if name == "write_roi":          # the table write_roi just wrote
        import xarray as xr

        paths = gta.write_roi(p.get("outfile") or "fit_roi",
                              save_model_map=bool(p.get("save_model_map")),
                              make_plots=bool(p.get("make_plots")))
        return xr.open_zarr(paths["zarr"]).load()
    if name == "get_src_model":
        src = gta.roi_source(p["name"])
        return sources_dataset({src.name: gta.get_src_model(src.name)})
    if name == "get_sources":
        return sources_dataset({s.name: gta.get_src_model(s.name)
                                for s in gta.get_sources(**p)})
    if name == "get_params":
        return _params_dataset(gta.get_params(freeonly=bool(p.get("freeonly", False))))
    if name in ("profile", "profile_norm"):
        src = gta.roi_source(p["name"])
        kw = {k: p.get(k) for k in ("xvals", "npts")}
        if name == "profile":
            result = gta.profile(src.name, p["parName"], reoptimize=bool(p.get("reoptimize")),
                                 **kw)
            result["par_name"] = p["parName"]
        else:
            result = gta.profile_norm(src.name, reoptimize=bool(p.get("reoptimize")), **kw)
            result["par_name"] = gta._spectral(src).norm_param
        return _profile_dataset(result, p)
    if name == "bowtie":
        return _bowtie_dataset(gta.bowtie(p["name"], loge=p.get("loge"),
                                          npts=p.get("npts") or 50), p)
    if name == "model_counts_map":
        return _map_dataset(gta, gta.model_counts_map(p.get("name")), "model_counts")
    if name == "counts_map":
        return _map_dataset(gta, gta.counts_map(), "counts")
    raise RecipeError(f"steps: {name!r} is not an analysis step")


def _key_inputs(name, params, outdir) -> dict:
    """What a step depends on beyond its parameters: the content of a file it reads."""
    if name == "load_roi":
        p = Path(params["infile"])
        p = p if p.is_absolute() or p.exists() else Path(outdir) / p
        p = p if p.suffix == ".npy" else p.with_suffix(".npy")
        if not p.is_file():
            raise RecipeError(f"load_roi: file {str(p)!r} does not exist")
        return {"infile_sha256": file_sha256(p)}
    return {}


def _files_missing(gta, name, params) -> bool:
    """Whether a cached step's files beside the store are gone (``write_roi``'s .npy,
    .fits, .yaml, XML and, when asked for, model-cube and plot files, deleted or moved by
    the user): the step then runs again and writes them."""
    if name != "write_roi":
        return False
    files = gta.roi_files(params.get("outfile") or "fit_roi",
                          save_model_map=bool(params.get("save_model_map")),
                          make_plots=bool(params.get("make_plots")))
    return not all(f.exists() for f in files.values())


def run_analysis_steps(recipe, steps, outdir, store_root, prep_keys, *, verbose=True,
                       stream=None) -> list[dict]:
    """Run the analysis steps of ``steps`` (list of (name, params)) in order."""
    import sys

    from ..api.analysis import Analysis
    from ..model.skymodel import SkyModel

    stream = stream if stream is not None else sys.stderr
    store = ProductStore(store_root)
    names = NameIndex(outdir)
    gta = Analysis(recipe)
    gta._load_products()  # the model now; the data products when a step needs them
    chain = digest({"data": prep_keys, "model": gta.model.to_dict()})
    done, seen = [], {}
    for i, (name, params) in enumerate(steps):
        params = dict(params or {})
        key = digest({"prev": chain, "step": name, "version": STEP_VERSION, "params": params,
                      **_key_inputs(name, params, outdir)})
        t0 = time.monotonic()
        if name in STATE_STEPS:
            _apply(gta, name, params, key)
            status = "applied"
        else:
            kind = RESULT_STEPS[name]
            if store.exists(kind, key) and not _files_missing(gta, name, params):
                attrs = read_attrs(store.path(kind, key))
                gta.model = SkyModel.from_dict(json.loads(attrs["model"]))
                if name == "fit":    # the covariance later steps' errors come from
                    gta._fit_cov = store.path(kind, key)     # read when first needed
                status = "cached"
            else:
                ds = _compute(gta, name, params)
                ds.attrs["model"] = json.dumps(gta.model.to_dict())
                store.write(ds, kind, key, {"step": name, "step_version": STEP_VERSION,
                                            "fermixr_version": __version__, "params": params,
                                            "name": name, "inputs": {"prev": chain}})
                status = "computed"
            seen[name] = seen.get(name, 0) + 1
            link = {"write_roi": "roi"}.get(name, name)
            names.link(link if seen[name] == 1 else f"{link}_{seen[name]}",
                       store.path(kind, key))
        chain = key
        secs = time.monotonic() - t0
        done.append({"name": name, "step": name, "key": key, "status": status,
                     "seconds": round(secs, 3)})
        if verbose:
            print(f"[analysis {i + 1}/{len(steps)}] {name:<12} {status} in {secs:.2f} s  "
                  f"({key[:12]})", file=stream, flush=True)
    return done
