"""Recipe steps that act on the analysis state: ``free_source``, ``free_sources``,
``optimize``, ``fit``, ``write_roi`` — Fermipy's methods, run in order on an
:class:`~fermixr.api.Analysis` built on the run's (cached) data products.

Each step has a key chained from the previous one (data products, the model as built,
every earlier step and its parameters), so a re-run with nothing changed takes every
result from the store, and changing one step recomputes it and what follows.  ``fit``
and ``optimize`` store a ``fit`` product (the fit dataset; the model after the step in
its attrs), ``write_roi`` the ``roi`` product plus Fermipy's files.
"""

from __future__ import annotations

import json
import time

from .._version import __version__
from .hashing import digest
from .store import NameIndex, ProductStore, read_attrs

STATE_STEPS = ("free_source", "free_sources")
RESULT_STEPS = {"optimize": "fit", "fit": "fit", "write_roi": "roi"}
ANALYSIS_STEPS = STATE_STEPS + tuple(RESULT_STEPS)
STEP_VERSION = "2"  # 2: energy dispersion applied in the fit


def _product(name, gta, result):
    import numpy as np
    import xarray as xr

    if name == "write_roi":
        from ..api.analysis import _sources_dataset

        return _sources_dataset(gta.roi_results())
    if name == "fit":
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
    # optimize: no parameter vector of its own
    return xr.Dataset(
        {"value": ("param", np.zeros(0)), "error": ("param", np.zeros(0)),
         "covariance": (("param", "param_b"), np.zeros((0, 0)))},
        coords={"param": np.array([], dtype=object)},
        attrs={"fermixr_product": "fit", "loglike": float(result["loglike1"]),
               "fit_quality": 3, "fit_status": 0, "edm": None, "optimizer": "optimize",
               "loglike0": float(result["loglike0"])})


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
    done = []
    for i, (name, params) in enumerate(steps):
        params = dict(params or {})
        key = digest({"prev": chain, "step": name, "version": STEP_VERSION, "params": params})
        t0 = time.monotonic()
        status = "computed"
        if name in STATE_STEPS:
            getattr(gta, name)(**params)
            status = "applied"
        else:
            kind = RESULT_STEPS[name]
            if store.exists(kind, key):
                attrs = read_attrs(store.path(kind, key))
                gta.model = SkyModel.from_dict(json.loads(attrs["model"]))
                status = "cached"
            else:
                if name == "fit":
                    kw = {k: v for k, v in params.items() if k != "update"}
                    result = gta.fit(**kw)
                elif name == "optimize":
                    result = gta.optimize(**params)
                else:
                    gta.write_roi(params.get("outfile") or "fit_roi")
                    result = None
                ds = _product(name, gta, result)
                ds.attrs["model"] = json.dumps(gta.model.to_dict())
                store.write(ds, kind, key, {"step": name, "step_version": STEP_VERSION,
                                            "fermixr_version": __version__, "params": params,
                                            "name": name, "inputs": {"prev": chain}})
            product = name if name != "write_roi" else "roi"
            names.link(product, store.path(kind, key))
        chain = key
        secs = time.monotonic() - t0
        done.append({"name": name, "step": name, "key": key, "status": status,
                     "seconds": round(secs, 3)})
        if verbose:
            print(f"[analysis {i + 1}/{len(steps)}] {name:<12} {status} in {secs:.2f} s  "
                  f"({key[:12]})", file=stream, flush=True)
    return done
