"""The analysis state of a run: its products read into a frozen
:class:`~fermixr.likelihood.roi.AnalysisState`, with a map maker that computes the maps of
added, moved or reshaped sources through the product store, under the same step and key as
the planned maps of the recipe's own sources (so a test source is cached like any product)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import GeometryError, RecipeError
from ..likelihood.roi import AnalysisState, Component, map_key


def component_suffix(i: int, n: int) -> str:
    return f"/{i:02d}" if n > 1 else ""


def read_wmap(path, shape):
    """A likelihood weights map (gtlike.wmap: a FITS cube on the counts geometry, as
    gtwtsmap / Fermipy's weights maps) flattened to ``shape``."""
    from astropy.io import fits

    from ..errors import FileFormatError, InputFileError

    if not Path(path).is_file():
        raise InputFileError(f"gtlike.wmap: file {str(path)!r} does not exist")
    data = np.asarray(fits.getdata(path), dtype=np.float64)
    if data.size != int(np.prod(shape)) or data.shape[0] != shape[0]:
        raise FileFormatError(f"gtlike.wmap {str(path)!r}: shape {data.shape} does not match "
                              f"the counts cube ({shape[0]} energy bins, {shape[1]} pixels)")
    return data.reshape(shape)


class StoreMapMaker:
    """``maker(src, i)``: the (n_nodes, n_pix) map of ``src`` on component ``i``, from the
    store when a product of the same key is there, else computed and committed."""

    def __init__(self, recipe, outdir, store_root, verbose=False):
        self.recipe = recipe
        self.outdir = Path(outdir)
        self.store_root = Path(store_root)
        self.verbose = verbose
        self._states = None
        self._memo: dict = {}       # (component, spatial model) -> map, read-only
        self._memo_bytes = 0

    def _planned(self):
        if self._states is None:
            from .executor import Executor
            from .plan import plan_tasks
            import dataclasses

            rec = dataclasses.replace(self.recipe, steps=[("setup", {})])
            ex = Executor(self.outdir, self.store_root, verbose=False)
            self._executor = ex
            self._tasks = plan_tasks(rec)
            self._states = ex.plan_keys(self._tasks)
        return self._executor, self._states

    def task(self, src, i):
        """(the srcmap task of ``src`` on component ``i``, its key, the ltcube path)."""
        from ..geom import geom_from_dict
        from .executor import TaskState
        from .plan import source_map_task

        ex, states = self._planned()
        n = len(self.recipe.components)
        sfx = component_suffix(i, n)
        ref = next((st.task for name, st in states.items()
                    if name.startswith(f"srcmap{sfx}/")), None)
        if ref is None:
            raise RecipeError("the recipe plans no source map to take the grid from")
        task = source_map_task(self.recipe.options[i], sfx, src,
                               geom_from_dict(ref.params["geom"]), ref.params["energies"])
        st = TaskState(task)
        key = ex.resolve_key(st, states)
        return task, key, states[f"ltcube{sfx}"].path

    MEMO_BYTES = 256 * 2 ** 20

    def __call__(self, src, i):
        """The map (kept in memory too: a width scan or a position fit asks for many maps
        and may come back to one; bounded to MEMO_BYTES, oldest dropped first)."""
        import json

        mk = (int(i), json.dumps(src.spatial_key(), sort_keys=True, default=str))
        hit = self._memo.get(mk)
        if hit is not None:
            return hit
        arr = self._make(src, i)
        arr.setflags(write=False)
        self._memo[mk] = arr
        self._memo_bytes += arr.nbytes
        while self._memo_bytes > self.MEMO_BYTES and len(self._memo) > 1:
            old = self._memo.pop(next(iter(self._memo)))
            self._memo_bytes -= old.nbytes
        return arr

    def _make(self, src, i):
        from .._version import __version__
        from .executor import execute_task
        from .steps import get_step
        from .store import ProductStore

        task, key, ltcube = self.task(src, i)
        store = ProductStore(self.store_root)
        kind = get_step(task.step).product
        if not store.exists(kind, key):
            if ltcube is None:
                raise RecipeError("no livetime cube in the run to make a source map from: "
                                  "run setup first")
            prov = {"step": task.step, "step_version": get_step(task.step).version,
                    "fermixr_version": __version__, "params": task.params,
                    "name": task.name, "inputs": {"ltcube": str(ltcube)}}
            execute_task(task.step, task.params, {"ltcube": str(ltcube)}, task.files,
                         str(self.store_root), kind, key, prov, overwrite=False,
                         verbose=self.verbose)
        ds = store.open(kind, key)
        m = np.asarray(ds["srcmap"].values, dtype=np.float64)     # (1, nodes, sky...)
        return m.reshape(m.shape[1], -1)


def load_state(recipe, outdir, store_root=None, model=None) -> AnalysisState:
    """The analysis state of a run's products (counts, source maps, response matrix,
    weights map per component: read when first needed), with the recipe's sky model (or
    ``model``)."""
    from ..likelihood.roi import LazyComponents
    from .plan import roi_center, sky_model
    from .run import store_root as default_store_root

    first_model = sky_model(recipe.components[0])
    root = store_root if store_root is not None else default_store_root(recipe, outdir)
    return AnalysisState(
        components=LazyComponents(lambda: read_components(recipe, outdir, first_model)),
        model=first_model if model is None else model,
        map_maker=StoreMapMaker(recipe, outdir, root),
        roi_center=roi_center(recipe.components[0]),
        coordsys=recipe.options[0].binning.coordsys)


def read_components(recipe, outdir, first_model=None) -> list[Component]:
    """Each component's arrays, read from the run's products."""
    from .plan import sky_model
    from .run import open_run

    outdir = Path(outdir)
    run = open_run(outdir, dask=False)
    n = len(recipe.components)
    comps = []
    first_model = sky_model(recipe.components[0]) if first_model is None else first_model
    for i, cfg in enumerate(recipe.components):
        sfx = component_suffix(i, n)
        if f"counts{sfx}" not in run:
            raise RecipeError(f"the run {str(outdir)!r} has no counts{sfx}: call setup() "
                              "first")
        counts_ds = run[f"counts{sfx}"].load()
        if f"srcmaps{sfx}" not in run:
            raise RecipeError("setup made no source maps: the recipe's model section holds "
                              "no source")
        sm = run[f"srcmaps{sfx}"].load()
        shape = counts_ds["counts"].shape
        edges = np.append(counts_ds["energy_min"].values, counts_ds["energy_max"].values[-1])
        if tuple(sm["srcmap"].shape[2:]) != tuple(shape[1:]):
            raise GeometryError(f"component {i}: source maps of sky shape "
                                f"{tuple(sm['srcmap'].shape[2:])} for a counts cube of sky "
                                f"shape {tuple(shape[1:])}")
        gl = recipe.options[i].gtlike
        drm = None
        if gl.edisp and f"drm{sfx}" in run:
            drm = np.asarray(run[f"drm{sfx}"]["drm"].values, dtype=np.float64)
        arr = np.asarray(sm["srcmap"].values, dtype=np.float64)
        names = [str(v) for v in sm["source"].values]
        maps = {nm: arr[k].reshape(arr.shape[1], -1) for k, nm in enumerate(names)}
        own = sky_model(cfg) if i else first_model
        counts = np.asarray(counts_ds["counts"].values, dtype=np.float64).reshape(shape[0], -1)
        wmap = read_wmap(gl.wmap, counts.shape) if gl.wmap else None
        try:
            comp = Component(
                counts=counts, edges=edges, maps=maps,
                nodes=np.asarray(sm["energy_true"].values, dtype=np.float64),
                map_keys={s.name: map_key(s) for s in own if s.name in maps},
                drm=drm, wmap=wmap,
                # no expscale: the nominal exposure; None lists: nothing
                expscale=1.0 if gl.expscale is None else float(gl.expscale),
                src_expscale=dict(gl.src_expscale or {}),
                edisp_disable=tuple(gl.edisp_disable or ()),
                sky_shape=tuple(shape[1:]), geom_attrs=dict(counts_ds.attrs),
                template=counts_ds, model=own)
        except (GeometryError, ValueError) as exc:
            raise GeometryError(f"component {i}: {exc}") from None
        comps.append(comp)
    return comps
