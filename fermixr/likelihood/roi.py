"""The frozen analysis state: everything a likelihood, a fit or an estimator needs, and
nothing that changes under it.

An :class:`AnalysisState` holds, per component, the arrays of one likelihood term
(:class:`Component`: counts, source maps at the true-energy nodes with their source names,
edges and nodes, the response matrix or none, the weights map or none, exposure scales, the
geometry), plus the sky model, the Gaussian priors, the sources set to zero and the fit that
belongs to this model.  A state never changes: every edit returns a new state
(:meth:`AnalysisState.with_model`, :meth:`~AnalysisState.with_priors`, ...), so an estimator
given a state cannot disturb its caller, and a discarded fit cannot leave its covariance
behind.

:func:`build_cost` makes the plain or the dispersed Poisson cost of a state.  Maps of a
source whose spatial model is not the one mapped (an added, moved or reshaped source) come
from the state's ``map_maker`` (the engine gives one that computes and caches them through
the product store, keyed like the srcmap step); :func:`with_maps_for` asks it.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from ..errors import GeometryError, LikelihoodError
from ..model.skymodel import SkyModel
from ..model.source import Source

__all__ = ["Component", "FitRecord", "AnalysisState", "LazyComponents", "build_cost",
           "map_key", "spectral_model", "with_maps_for", "ensure_maps", "component_costs",
           "loglike", "loglike_scan", "bin_range"]


def map_key(src: Source) -> str:
    """What a source map depends on (the spatial model and its parameters), as a digest."""
    import hashlib
    import json

    text = json.dumps(src.spatial_key(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _frozen(a, dtype=np.float64):
    if a is None:
        return None
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


@dataclasses.dataclass(frozen=True, eq=False)
class Component:
    """The arrays of one likelihood term.

    counts : (n_bins, n_pix) measured counts (sky pixels flattened).
    edges : (n_bins + 1,) measured-energy bin edges, MeV.
    nodes : true-energy nodes of the source maps (the edges, plus ``n_extra`` nodes at
        each end with energy dispersion; with a response matrix, any increasing grid
        whose bins are the matrix's columns, and then no ``edisp_disable``).
    maps : source name -> (n_nodes, n_pix) source map (counts per unit spectrum,
        integrated over each pixel), read-only.
    map_keys : source name -> :func:`map_key` of the spatial model each map was made for.
    drm : (n_bins, n_nodes - 1) response matrix, or None without energy dispersion.
    wmap : (n_bins, n_pix) likelihood weights, or None.
    expscale, src_expscale : exposure scale of the component and per source.
    edisp_disable : sources evaluated without dispersion.
    sky_shape, geom_attrs : the sky grid ((ny, nx) or (npix,), its WCS/HEALPix attrs).
    template : the counts Dataset (coordinates and attributes of the counts cube), or None.
    model : the component's own configured model (a FileFunction isodiff per component).
    """

    counts: np.ndarray
    edges: np.ndarray
    maps: Mapping[str, np.ndarray]
    nodes: np.ndarray | None = None
    map_keys: Mapping[str, str] = dataclasses.field(default_factory=dict)
    drm: np.ndarray | None = None
    wmap: np.ndarray | None = None
    expscale: float = 1.0
    src_expscale: Mapping[str, float] = dataclasses.field(default_factory=dict)
    edisp_disable: tuple[str, ...] = ()
    sky_shape: tuple[int, ...] = ()
    geom_attrs: Mapping = dataclasses.field(default_factory=dict)
    template: object = None
    model: SkyModel | None = None
    _memo: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        counts = _frozen(self.counts)
        if counts.ndim != 2:
            raise LikelihoodError(f"component counts: expected (n_bins, n_pix), got shape "
                                  f"{counts.shape}")
        edges = _frozen(self.edges)
        nodes = edges if self.nodes is None else _frozen(self.nodes)
        if edges.size != counts.shape[0] + 1:
            raise GeometryError(f"component: {edges.size} energy edges for "
                                f"{counts.shape[0]} counts bins")
        n_extra, rem = divmod(nodes.size - edges.size, 2)
        if rem or n_extra < 0 or not np.allclose(nodes[n_extra:nodes.size - n_extra], edges,
                                                 rtol=1e-6):
            # any increasing true-energy grid, when a response matrix maps its bins to
            # the measured bins (a state imported from Gammapy); the identity of
            # edisp_disable sources is defined only on the extended edges
            if self.drm is None or np.shape(self.drm) != (counts.shape[0], nodes.size - 1) \
                    or not np.all(np.diff(nodes) > 0):
                raise GeometryError("source-map energies do not match the counts cube's "
                                    "bin edges")
            if self.edisp_disable:
                raise GeometryError(
                    f"edisp_disable ({', '.join(self.edisp_disable)}): this component's "
                    f"true-energy grid ({nodes.size} nodes) is not its counts bin edges "
                    "extended at each end, so it has no dispersion-free matrix; every "
                    "source is evaluated through its response matrix")
        maps = {}
        for name, m in dict(self.maps).items():
            m = np.asarray(m)
            if m.dtype != np.float64:
                m = m.astype(np.float64)
            m = m.reshape(m.shape[0], -1)
            if m.shape != (nodes.size, counts.shape[1]):
                raise GeometryError(f"source map of {name!r}: shape {m.shape}, expected "
                                    f"({nodes.size} energy nodes, {counts.shape[1]} pixels)")
            if m.flags.writeable:
                m = m.view()
                m.setflags(write=False)
            maps[str(name)] = m
        wmap = _frozen(self.wmap)
        if wmap is not None and wmap.shape != counts.shape:
            raise LikelihoodError(f"weights map of shape {wmap.shape} for counts of shape "
                                  f"{counts.shape}")
        drm = _frozen(self.drm)
        set_ = object.__setattr__
        set_(self, "counts", counts)
        set_(self, "edges", edges)
        set_(self, "nodes", nodes)
        set_(self, "maps", MappingProxyType(maps))
        set_(self, "map_keys", MappingProxyType(dict(self.map_keys)))
        set_(self, "wmap", wmap)
        set_(self, "drm", drm)
        set_(self, "src_expscale", MappingProxyType(dict(self.src_expscale or {})))
        set_(self, "edisp_disable", tuple(self.edisp_disable or ()))
        set_(self, "sky_shape", tuple(self.sky_shape) or (counts.shape[1],))
        set_(self, "geom_attrs", MappingProxyType(dict(self.geom_attrs or {})))

    @property
    def n_extra(self) -> int:
        return (self.nodes.size - self.edges.size) // 2

    def measured_maps(self, name: str) -> np.ndarray:
        """A source's maps at the measured bins' edges (no dispersion)."""
        m = self.maps[name]
        return m[self.n_extra:m.shape[0] - self.n_extra]

    def stacked(self, model: SkyModel, true_nodes: bool) -> np.ndarray:
        """The maps of ``model``'s sources as one (n_src, n_nodes, n_pix) array; memoised
        per source list (a fit, a scan or a TS evaluates the same stack many times and
        stacking copies every map)."""
        key = (true_nodes, tuple((s.name, self.map_keys.get(s.name)) for s in model))
        hit = self._memo.get("stack")
        if hit is None or hit[0] != key:
            get = self.maps.__getitem__ if true_nodes else self.measured_maps
            hit = (key, np.stack([get(s.name) for s in model]))
            self._memo["stack"] = hit
        return hit[1]

    def replace(self, **changes) -> "Component":
        """A new component with ``changes``; the stack memo is kept when maps stay."""
        new = dataclasses.replace(self, **changes)
        if "maps" not in changes and "map_keys" not in changes:
            object.__setattr__(new, "_memo", self._memo)
        return new

    def with_map(self, name: str, array, key: str) -> "Component":
        maps = dict(self.maps)
        maps[name] = array
        keys = dict(self.map_keys)
        keys[name] = key
        return self.replace(maps=maps, map_keys=keys)

    @property
    def geom(self):
        from ..geom.coords import geom_from_attrs

        return geom_from_attrs(dict(self.geom_attrs))


@dataclasses.dataclass(frozen=True, eq=False)
class FitRecord:
    """The fit that belongs to a model: its free parameters' names ("source:param") and
    covariance in scaled units, or a ``loader`` returning them when first needed (a fit
    taken from the product store)."""

    par_names: tuple[str, ...] = ()
    covariance: np.ndarray | None = None
    loader: Callable | None = None
    _memo: dict = dataclasses.field(default_factory=dict, repr=False)

    def get(self):
        """(names, covariance) or None (a fit without free parameters)."""
        if self.loader is not None:
            if "v" not in self._memo:
                self._memo["v"] = self.loader()
            return self._memo["v"]
        if self.covariance is None or not len(self.par_names):
            return None
        return list(self.par_names), np.asarray(self.covariance)


class LazyComponents:
    """Components read when first needed (a recipe's state steps that only edit the model
    never read the data products)."""

    def __init__(self, loader: Callable):
        self._loader = loader
        self._value = None

    def get(self) -> tuple:
        if self._value is None:
            value = tuple(self._loader())
            if not value:
                raise LikelihoodError("an analysis state needs at least one component")
            self._value = value
        return self._value


_STATE_FIELDS = ("components", "model", "priors", "zeroed", "fit", "map_maker",
                 "roi_center", "coordsys", "options", "loge_bounds", "data_counts",
                 "simulation")


class AnalysisState:
    """Components, sky model, priors, zeroed sources and the fit of this model; frozen.

    components : a sequence of :class:`Component`, or a :class:`LazyComponents`.
    map_maker : ``map_maker(src, i) -> (n_nodes, n_pix) array``, the map of a source on
        component ``i`` (None: maps of new spatial models cannot be made).
    roi_center : (ra, dec) of the ROI centre, deg; coordsys : the binning frame.
    options : resolved options an estimator may read (e.g. ``gtlike.llscan_npts``).
    loge_bounds : (log10 emin, log10 emax) of the energy range in use (bin edges; see
        :func:`bin_range`), or None for every bin: the likelihood, the model counts and
        the fluxes then cover only the bins inside.
    data_counts : the measured counts of each component while the counts are a
        simulation (None when they are the data), so that a restore is exact.
    simulation : records of the simulations behind the current counts (kind, source,
        seed, randomize), oldest first.
    """

    def __init__(self, components, model: SkyModel, priors=None, zeroed=None,
                 fit: FitRecord | None = None, map_maker: Callable | None = None,
                 roi_center=None, coordsys: str = "CEL", options=None, loge_bounds=None,
                 data_counts=None, simulation=(), _memo=None):
        set_ = object.__setattr__
        if not isinstance(components, LazyComponents):
            components = tuple(components)
            if not components:
                raise LikelihoodError("an analysis state needs at least one component")
        set_(self, "_components", components)
        set_(self, "model", model)
        set_(self, "priors", MappingProxyType(dict(priors or {})))
        set_(self, "zeroed", MappingProxyType(dict(zeroed or {})))
        set_(self, "fit", fit)
        set_(self, "map_maker", map_maker)
        set_(self, "roi_center", None if roi_center is None else
             (float(roi_center[0]), float(roi_center[1])))
        set_(self, "coordsys", str(coordsys).upper())
        set_(self, "options", MappingProxyType(dict(options or {})))
        set_(self, "loge_bounds", None if loge_bounds is None else
             (float(loge_bounds[0]), float(loge_bounds[1])))
        set_(self, "data_counts", None if data_counts is None else
             tuple(_frozen(c) for c in data_counts))
        set_(self, "simulation", tuple(MappingProxyType(dict(r)) for r in simulation or ()))
        set_(self, "_memo", {} if _memo is None else _memo)   # spectral tables read

    def __setattr__(self, name, value):
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}: an "
                                              "analysis state is frozen; use replace()")

    @property
    def components(self) -> tuple[Component, ...]:
        c = self._components
        return c.get() if isinstance(c, LazyComponents) else c

    @property
    def loaded(self) -> bool:
        """Whether the components have been read."""
        c = self._components
        return not isinstance(c, LazyComponents) or c._value is not None

    def replace(self, **changes) -> "AnalysisState":
        kw = {f: getattr(self, f) for f in _STATE_FIELDS if f != "components"}
        kw["components"] = self._components
        unknown = set(changes) - set(_STATE_FIELDS)
        if unknown:
            raise TypeError(f"AnalysisState has no field(s) {sorted(unknown)}")
        kw.update(changes)
        return AnalysisState(**kw, _memo=self._memo)

    def with_model(self, model: SkyModel, fit: FitRecord | None | str = "keep"
                   ) -> "AnalysisState":
        """The state with another model; ``fit`` a new fit record, None to drop it, or
        "keep" (default: parameter edits keep the last fit's covariance, as Fermipy)."""
        changes = {"model": model}
        if fit != "keep":
            changes["fit"] = fit
        return self.replace(**changes)

    def with_priors(self, priors) -> "AnalysisState":
        return self.replace(priors=dict(priors))

    def with_counts(self, counts_per_component) -> "AnalysisState":
        comps = tuple(c.replace(counts=np.asarray(n, dtype=np.float64).reshape(c.counts.shape))
                      for c, n in zip(self.components, counts_per_component))
        return self.replace(components=comps)

    def source(self, name: str) -> Source:
        return self.model.find(name)

    def spectral(self, src: Source, comp: Component | None = None):
        return spectral_model(src, comp, self._memo)

    @property
    def energy_range(self) -> tuple[float, float]:
        """(emin, emax) in MeV of the bins in use (every bin unless ``loge_bounds``)."""
        e = self.components[0].edges
        k0, k1 = bin_range(self.components[0], self.loge_bounds)
        return float(e[k0]), float(e[k1])

    def fit_covariance(self):
        """(parameter names, covariance in scaled units) of the last fit, or None."""
        return None if self.fit is None else self.fit.get()

    def __repr__(self) -> str:
        n = len(self.components) if self.loaded else "?"
        return (f"AnalysisState({n} component(s), {len(self.model)} sources, "
                f"{len(self.priors)} priors, fit={'yes' if self.fit else 'no'})")


def spectral_model(src: Source, comp: Component | None = None, memo: dict | None = None):
    """The spectral model instance of ``src``; a FileFunction reads its table (memoised by
    path), the component's own when its configuration names another file (an isodiff per
    component)."""
    from ..model.spectral import get_spectral_model

    cls = get_spectral_model(src.spectrum)
    if src.spectrum != "FileFunction":
        return cls()
    if comp is not None and comp.model is not None and src.name in comp.model:
        own = comp.model.find(src.name)
        if own.spectrum == "FileFunction":
            src = own
    memo = {} if memo is None else memo
    tables = memo.setdefault("spectra", {})
    path = str(src.spectrum_file)
    try:
        st = Path(path).stat()
        key = (path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    except OSError:
        key = (path,)
    if key not in tables:
        tables[key] = cls.from_file(src.spectrum_file)
    return tables[key]


def bin_range(comp: Component, loge_bounds) -> tuple[int, int]:
    """(k0, k1): the measured-energy bins k0 <= i < k1 of ``comp`` inside ``loge_bounds``
    (log10 MeV; each bound taken to the component's nearest bin edge), all bins for None."""
    nb = comp.counts.shape[0]
    if loge_bounds is None:
        return 0, nb
    loge = np.log10(comp.edges)
    k0 = int(np.argmin(np.abs(loge - float(loge_bounds[0]))))
    k1 = int(np.argmin(np.abs(loge - float(loge_bounds[1]))))
    if k1 <= k0:
        raise GeometryError(
            f"energy range log10(E/MeV) {loge_bounds[0]:g}..{loge_bounds[1]:g} holds no bin "
            f"of a component with edges {loge[0]:.4g}..{loge[-1]:.4g} "
            f"({nb} bins); give a range at least one bin wide")
    return k0, k1


def ensure_maps(comps, src: Source, maker) -> tuple:
    """``comps`` with a map of ``src``'s current spatial model in each (from ``maker``)."""
    key = map_key(src)
    comps = list(comps)
    for i, comp in enumerate(comps):
        if comp.map_keys.get(src.name) != key:
            if maker is None:
                raise LikelihoodError(
                    f"no source map of {src.name!r} for its current spatial model, and this "
                    "analysis state cannot make maps (it was not loaded from a run)")
            arr = np.asarray(maker(src, i), dtype=np.float64)
            comps[i] = comp.with_map(src.name, arr.reshape(arr.shape[0], -1), key)
    return tuple(comps)


def with_maps_for(state: AnalysisState, src: Source) -> AnalysisState:
    """The state with every component holding a map of ``src``'s current spatial model
    (asked of ``state.map_maker`` where missing or stale).  Components not read yet stay
    unread: the maps are made when they are."""
    if not state.loaded:
        inner, maker = state._components, state.map_maker
        return state.replace(components=LazyComponents(
            lambda: ensure_maps(inner.get(), src, maker)))
    comps = ensure_maps(state.components, src, state.map_maker)
    changed = any(a is not b for a, b in zip(comps, state.components))
    return state.replace(components=comps) if changed else state


def component_costs(state: AnalysisState, model: SkyModel | None = None,
                    free_all: bool = False) -> list:
    """One cost per component (no priors) for ``model`` (default the state's); with
    ``free_all`` every spectral parameter of every source is a free parameter of it."""
    from ..irf.drm import source_drm
    from .cost import BinnedPoissonCost, SourceTerm
    from .dispersed import DispersedPoissonCost

    model = state.model if model is None else model
    out = []
    for comp in state.components:
        for src in model:
            if comp.map_keys.get(src.name, None) != map_key(src) and src.name in comp.map_keys:
                raise LikelihoodError(
                    f"the source map of {src.name!r} was made for another spatial model; "
                    "make its map first (fermixr.likelihood.roi.with_maps_for)")
            if src.name not in comp.maps:
                raise LikelihoodError(f"no source map of {src.name!r} in the analysis state")
        terms = [SourceTerm.from_source(s, model=state.spectral(s, comp)) for s in model]
        if free_all:
            terms = [SourceTerm.make(t.name, t.model, t.p, free=np.ones(t.p.size, bool),
                                     bounds=t.bounds, scale=t.scale) for t in terms]
        scales = [float(comp.src_expscale.get(s.name, comp.expscale)) for s in model]
        k0, k1 = bin_range(comp, state.loge_bounds)
        ranged = (k0, k1) != (0, comp.counts.shape[0])
        if comp.drm is not None:
            drms = [source_drm(s.name, comp.drm, edisp=True, edisp_disable=comp.edisp_disable)
                    for s in model]
            if ranged:
                # the dispersed kernels take every measured bin: bins outside the range get
                # weight 0 in log L, and zero model counts
                wmap = np.ones(comp.counts.shape) if comp.wmap is None else comp.wmap.copy()
                wmap[:k0] = 0.0
                wmap[k1:] = 0.0
                cost = _ranged_dispersed_class()(comp.counts, comp.stacked(model, True),
                                                 comp.nodes, terms, drms, wmap=wmap,
                                                 scales=scales)
                cost.bin_range = (k0, k1)
            else:
                cost = DispersedPoissonCost(comp.counts, comp.stacked(model, True), comp.nodes,
                                            terms, drms, wmap=comp.wmap, scales=scales)
        else:
            cost = BinnedPoissonCost(comp.counts, comp.stacked(model, False), comp.edges,
                                     terms, wmap=comp.wmap, src_expscale=scales,
                                     bin_range=(k0, k1) if ranged else None)
        out.append(cost)
    return out


@functools.lru_cache(maxsize=None)
def _ranged_dispersed_class():
    from .dispersed import DispersedPoissonCost

    class RangedDispersedPoissonCost(DispersedPoissonCost):
        """The dispersed cost over measured bins ``bin_range`` only (model counts zero
        outside, as the plain cost's)."""

        def _clip(self, cube):
            k0, k1 = self.bin_range
            cube = np.array(cube, copy=True)
            cube[:k0] = 0.0
            cube[k1:] = 0.0
            return cube

        def model_cube(self, x=None):
            return self._clip(super().model_cube(x))

        def source_cube(self, name, x=None):
            return self._clip(super().source_cube(name, x))

    return RangedDispersedPoissonCost



def build_cost(state: AnalysisState, model: SkyModel | None = None):
    """The cost (-log L) of ``model`` (default the state's) on every component, summed as
    SummedLikelihood does, plus the state's Gaussian priors on free parameters."""
    costs = component_costs(state, model)
    total = costs[0]
    for c in costs[1:]:
        total = total + c
    if state.priors:
        from .priors import GaussianPrior

        free = set(total.parameters)
        for name, (mean, sigma) in state.priors.items():
            if name in free:
                total = total + GaussianPrior(name, mean, sigma)
    return total


def loglike(state: AnalysisState, model: SkyModel | None = None) -> float:
    """log L of ``model`` (default the state's), gtlike's value (without log n!)."""
    c = build_cost(state, model)
    return -float(c(c.x0)) if c.npar else -float(c(np.zeros(0)))


def _scan_cost(state: AnalysisState):
    """(cost, lock): the likelihood of the state's components (no priors) with every
    spectral parameter of every source free, memoised on the state (one entry, for its
    model, components and energy range): the cost keeps its last model cube, so log L at points that
    differ from each other in one source's parameters is an incremental update."""
    import threading

    model, comps, bounds = state.model, state.components, state.loge_bounds
    hit = state._memo.get("scan_cost")
    if hit is not None and hit[0] is model and hit[1] is comps and hit[2] == bounds:
        return hit[3], hit[4]
    costs = component_costs(state, model, free_all=True)
    total = costs[0]
    for c in costs[1:]:
        total = total + c
    entry = (model, comps, bounds, total, threading.Lock())
    state._memo["scan_cost"] = entry
    return entry[3], entry[4]


def loglike_scan(state: AnalysisState, name: str, par_name: str, values,
                 hold: bool = True) -> np.ndarray:
    """log L of the state with spectral parameter ``par_name`` of source ``name`` at each
    of ``values`` (scaled units), every other parameter at its value: what :func:`loglike`
    gives for each such state (the Gaussian priors of the free parameters included; with
    ``hold`` the scanned parameter counts as fixed, so its own prior is left out, as in a
    likelihood profile; without, it keeps its free flag).  All points come from one cost
    memoised on the state, so each costs an update by one source's model counts; the
    values agree with :func:`loglike`'s to rounding (INCREMENTAL_RTOL)."""
    from .priors import GaussianPrior

    src = state.model.find(name)
    p = src.param(par_name)
    spectral = [q.name for q in src.spectral]
    if p.name not in spectral:
        raise LikelihoodError(f"loglike_scan: {p.name!r} of {src.name!r} is not a spectral "
                              f"parameter ({', '.join(spectral)}); a spatial parameter "
                              "needs new source maps at each value")
    key = f"{src.name}:{p.name}"
    cost, lock = _scan_cost(state)
    q = cost.parameters.index(key)
    free_now = {f"{s.name}:{t.name}" for s in state.model for t in s.spectral if t.free}
    priors = [(cost.parameters.index(k), GaussianPrior(k, m, sd))
              for k, (m, sd) in state.priors.items()
              if k in free_now and not (hold and k == key)]
    vals = np.asarray(values, dtype=np.float64).ravel()
    out = np.empty(vals.size)
    x = np.array(cost.x0, dtype=np.float64)
    with lock:
        for a, v in enumerate(vals):
            x[q] = v
            c = float(cost(x.copy()))
            for i, pr in priors:
                c += float(pr(x[i:i + 1]))
            out[a] = -c
    return out


def require_one_grid(components, what: str) -> None:
    """Refuse to sum maps of components on different sky or energy grids (``what``: the
    map asked for), naming the grids."""
    shapes = [tuple(c.counts.shape) for c in components]
    grids = [(dict(c.geom_attrs).get("geom"), tuple(c.edges)) for c in components]
    if len(set(shapes)) > 1 or any(g != grids[0] for g in grids[1:]):
        raise GeometryError(
            f"{what}: the components have different grids (counts shapes "
            f"{', '.join(str(s) for s in shapes)}), so their maps cannot be summed pixel "
            "by pixel; use components of one binning for summed maps")
