"""More of Fermipy's everyday model and data edits, as pure functions ``(state, ...) -> new
state`` (or ``(new state, value)``), beside :mod:`fermixr.estimators.edits`: the energy
range, parameter locks, scales and vectors, energy dispersion flags, map reloads, sources
copied from another model, the TS with the other parameters refitted, and the simulation of
the counts (``simulate_roi`` / ``simulate_source``) with a recorded seed."""

from __future__ import annotations

import numpy as np

from ..errors import GeometryError, ModelError
from ..likelihood.roi import AnalysisState, bin_range, ensure_maps, with_maps_for
from . import edits as E

__all__ = [
    "set_energy_range", "model_counts_spectrum", "load_xml", "lock_parameter", "lock_source",
    "locked_params", "free_sources_by_name", "set_edisp_flag", "get_source_dnde",
    "set_norm_bounds", "set_norm_scale", "set_parameter_scale", "get_norm",
    "get_free_param_vector", "set_free_param_vector", "get_free_source_params",
    "get_source_name", "reload_sources", "add_sources_from_model", "model_text",
    "ts_reoptimized", "simulate_roi", "simulate_source", "component_seeds"]


# ----------------------------------------------------------------------- energy range ------
def _log_edges(state) -> np.ndarray:
    return np.log10(state.components[0].edges)


def set_energy_range(state: AnalysisState, logemin=None, logemax=None):
    """The state restricted to the energy bins between ``logemin`` and ``logemax`` (log10
    MeV; each taken to the nearest bin edge of the analysis binning, None: the first / last
    edge).  Returns (new state, [logemin, logemax] actually used)."""
    loge = _log_edges(state)
    lo = loge[0] if logemin is None else loge[int(np.argmin(np.abs(loge - float(logemin))))]
    hi = loge[-1] if logemax is None else loge[int(np.argmin(np.abs(loge - float(logemax))))]
    if not hi > lo:
        raise GeometryError(
            f"set_energy_range({logemin}, {logemax}): no bin between them (the analysis bin "
            f"edges run from log10(E/MeV) = {loge[0]:.4g} to {loge[-1]:.4g} in steps of "
            f"{np.diff(loge).mean():.3g}); give a range at least one bin wide")
    full = bool(np.isclose(lo, loge[0]) and np.isclose(hi, loge[-1]))
    new = state.replace(loge_bounds=None if full else (float(lo), float(hi)))
    for comp in new.components:                 # every component must keep a bin
        bin_range(comp, new.loge_bounds)
    return new, np.array([lo, hi])


def model_counts_spectrum(state: AnalysisState, name=None, logemin=None, logemax=None,
                          summed=False, weighted=False) -> np.ndarray:
    """Model counts per energy bin of one source (or of the model with ``name=None``) in
    the analysis bins between ``logemin`` and ``logemax`` (default: the energy range in
    use), whatever the range in use: the bins of every component are added into the
    first component's bins by their centres.  ``summed`` (Fermipy's spelling) requires
    every component on the same energy bins; ``weighted`` multiplies by the likelihood
    weights."""
    from .ts import model_cubes

    full = state.replace(loge_bounds=None)
    loge = _log_edges(state)
    if logemin is None or logemax is None:
        e0, e1 = state.energy_range
        logemin = np.log10(e0) if logemin is None else logemin
        logemax = np.log10(e1) if logemax is None else logemax
    imin = int(np.argmin(np.abs(loge - float(logemin))))
    imax = int(np.argmin(np.abs(loge - float(logemax))))
    if imax <= imin:
        raise GeometryError(f"model_counts_spectrum: no bin between log10(E/MeV) = "
                            f"{logemin} and {logemax}")
    out = np.zeros(loge.size - 1)
    for comp, cube in zip(full.components, model_cubes(full, name, weighted)):
        spec = cube.sum(axis=1)
        lc = np.log10(comp.edges)
        if lc.size == loge.size and np.allclose(lc, loge, atol=1e-6):
            out += spec
            continue
        if summed:
            raise GeometryError("model_counts_spectrum(summed=True): the components have "
                                "different energy bins; use summed=False")
        centres = 0.5 * (lc[:-1] + lc[1:])
        out += np.histogram(centres, bins=loge, weights=spec)[0]
    return out[imin:imax]


# ---------------------------------------------------------------------------- model -------
def load_xml(state: AnalysisState, path) -> AnalysisState:
    """The state whose model is the one in the XML file ``path`` (maps made for sources
    that are new or moved); the fit record is dropped."""
    from ..model.xml import read_xml

    model = read_xml(path)
    return E.with_all_maps(state.with_model(model, fit=None))


def locked_params(src) -> frozenset:
    return frozenset(src.meta.get("locked", ()))


def lock_parameter(state, name, par, lock=True):
    """Lock (or unlock) a parameter: free_source / free_sources / free_parameter then
    leave its free flag as it is (set_parameter still changes its value)."""
    src = state.model.find(name)
    src.param(par)                          # raises naming the parameter
    locked = set(locked_params(src))
    (locked.add if lock else locked.discard)(par)
    return E._replace(state, src.replace(meta={**src.meta, "locked": frozenset(locked)}))


def lock_source(state, name, lock=True):
    """Lock (or unlock) every spectral parameter of a source."""
    src = state.model.find(name)
    for p in src.spectral:
        state = lock_parameter(state, src.name, p.name, lock)
    return state


def free_sources_by_name(state, names, free=True, pars=None):
    """free_source for each of ``names``; returns (new state, the sources as they are)."""
    if isinstance(names, str):
        names = [names]
    found = [state.model.find(n).name for n in names]   # every name checked before a change
    for n in found:
        state = E.free_source(state, n, free=free, pars=pars)
    return state, [state.model.find(n) for n in found]


def set_edisp_flag(state, name, flag=True):
    """Evaluate a source with (``flag``) or without energy dispersion (Fermipy's
    set_edisp_flag); no effect on components without dispersion."""
    src = state.model.find(name)
    comps = []
    for c in state.components:
        off = [n for n in c.edisp_disable if n != src.name]
        if not flag:
            off.append(src.name)
        comps.append(c.replace(edisp_disable=tuple(off)))
    return state.replace(components=comps)


def get_source_dnde(state, name):
    """(log10 E/MeV, dN/dE): a FileFunction's table (without its Normalization), any
    other spectrum evaluated at the analysis bin edges."""
    src = state.model.find(name)
    sm = state.spectral(src)
    if src.spectrum == "FileFunction" and getattr(sm, "_logx", None) is not None:
        return np.log10(np.exp(sm._logx)), np.exp(sm._logy)
    e = state.components[0].edges
    return np.log10(e), np.asarray(sm.evaluate(e, src.spectral_values()), dtype=float)


def set_norm_bounds(state, name, bounds):
    src = state.model.find(name)
    return E.set_parameter_bounds(state, name, state.spectral(src).norm_param, bounds)


def set_parameter_scale(state, name, par, scale):
    """Give a parameter another scale, keeping its physical value, bounds and error."""
    src = state.model.find(name)
    p = src.param(par)
    scale = float(scale)
    if not np.isfinite(scale) or scale == 0:
        raise ModelError(f"{src.name}:{par}: scale must be a finite non-zero number, got "
                         f"{scale!r}")
    f = p.scale / scale
    lo, hi = (None if b is None else b * f for b in (p.min, p.max))
    if f < 0:
        lo, hi = hi, lo
    new = p.replace(scale=scale, value=p.value * f, min=lo, max=hi,
                    error=None if p.error is None else abs(p.error * f)).check(where=src.name)
    return E._replace(state, src.with_param(par, scale=new.scale, value=new.value,
                                            min=new.min, max=new.max, error=new.error))


def set_norm_scale(state, name, scale):
    """The normalisation's scale changed, its physical value kept."""
    src = state.model.find(name)
    return set_parameter_scale(state, name, state.spectral(src).norm_param, scale)


def get_norm(state, name) -> float:
    """The normalisation's value in scaled units."""
    src = state.model.find(name)
    return float(src.param(state.spectral(src).norm_param).value)


def _free_keys(state) -> list[tuple[str, str]]:
    return [(p["src_name"], p["par_name"]) for p in E.get_params(state, freeonly=True)]


def get_free_param_vector(state) -> np.ndarray:
    """Scaled values of the free spectral parameters, source by source in model order."""
    return np.array([p["value"] for p in E.get_params(state, freeonly=True)], dtype=float)


def set_free_param_vector(state, values):
    """Set the free parameters (scaled units, the order of get_free_param_vector)."""
    v = np.asarray(values, dtype=float).ravel()
    keys = _free_keys(state)
    if v.size != len(keys):
        raise ModelError(f"set_free_param_vector: {v.size} values for {len(keys)} free "
                         f"parameters ({', '.join(f'{s}:{p}' for s, p in keys)})")
    model = state.model
    for (s, par), x in zip(keys, v):
        src = model.find(s)
        src.param(par).replace(value=float(x)).check(where=s)
        model = model.replace_source(src.with_param(par, value=float(x)))
    return state.with_model(model)


def get_free_source_params(state, name) -> list[str]:
    return [p.name for p in state.model.find(name).spectral if p.free]


def get_source_name(state, name) -> str:
    return state.model.find(name).name


def reload_sources(state, names):
    """The maps of ``names`` made again (e.g. after a template file changed on disk)."""
    if isinstance(names, str):
        names = [names]
    srcs = [state.model.find(n) for n in names]
    comps = list(state.components)
    for src in srcs:
        comps = [c.replace(map_keys={**c.map_keys, src.name: ""}) for c in comps]
        comps = list(ensure_maps(comps, src, state.map_maker))
    return state.replace(components=comps)


def add_sources_from_model(state, names, model):
    """Copy the sources ``names`` of another sky model (e.g. another ROI's) into this one,
    with their maps; returns (new state, the sources added)."""
    if isinstance(names, str):
        names = [names]
    srcs = [model.find(n) for n in names]
    new = state.model
    for s in srcs:
        new = new.add(s)                    # raises for a name already here
    for s in srcs:
        state = with_maps_for(state, s)
    return state.with_model(new), srcs


def model_text(state) -> str:
    """Every source with every spectral parameter (Fermipy's print_model)."""
    lines = []
    for s in state.model:
        locked = locked_params(s)
        lines.append(f"{s.name}  ({s.spatial_model}, {s.spectrum})")
        for p in s.spectral:
            err = "" if p.error is None else f" +/- {p.error:.4g}"
            flags = ("free" if p.free else "fixed") + (", locked" if p.name in locked else "")
            lo = "-inf" if p.min is None else f"{p.min:.4g}"
            hi = "inf" if p.max is None else f"{p.max:.4g}"
            lines.append(f"    {p.name:<14}{p.value:12.5g}{err:<16} x {p.scale:<10.4g} "
                         f"[{lo}, {hi}]  {flags}")
    return "\n".join(lines)


# -------------------------------------------------------------------- TS with a refit -----
def ts_reoptimized(state, name, fit_options=None) -> float:
    """gtlike's TS: 2 (log L of the state - log L with the source's flux at zero and the
    other free parameters refitted).  Equal to the held TS when nothing else is free."""
    from ..likelihood.roi import build_cost, loglike
    from .fit import fit_state

    src = state.model.find(name)
    if src.position is None:
        return float("nan")
    norm = src.param(state.spectral(src).norm_param)
    null = state.with_model(state.model.replace_source(src.with_param(
        norm.name, value=0.0, free=False,
        min=None if norm.min is None else min(norm.min, 0.0))), fit=None)
    ll0 = loglike(null)
    if build_cost(null).npar:
        out, fitted = fit_state(null, **dict(fit_options or {}))
        if out["fit_success"]:
            ll0 = max(ll0, loglike(fitted))
    return float(max(2.0 * (loglike(state) - ll0), 0.0))


# ------------------------------------------------------------------------- simulation -----
def component_seeds(seed, n: int) -> list[np.random.SeedSequence]:
    """One child SeedSequence per component, spawned in component order from ``seed``: a
    component's draw depends on the seed and its index only (not on how many workers)."""
    return np.random.SeedSequence(int(seed)).spawn(int(n))


def _seed_of(seed, rng) -> int:
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ModelError(f"seed: got {seed!r}; expected a non-negative integer")
        return int(seed)
    if rng is not None:
        return int(rng.integers(0, 2 ** 63 - 1))
    return int(np.random.SeedSequence().entropy)


def _draw(cubes, seed, randomize):
    if not randomize:
        return [np.asarray(m, dtype=float) for m in cubes]
    out = []
    for m, ss in zip(cubes, component_seeds(seed, len(cubes))):
        out.append(np.random.default_rng(ss).poisson(np.clip(m, 0.0, None)).astype(float))
    return out


def simulate_roi(state, name=None, randomize=True, restore=False, *, seed=None, rng=None):
    """Fermipy's simulate_roi: every component's counts replaced by a Poisson draw of the
    current model (of the source ``name`` only), or with ``randomize=False`` by the model
    expectation itself; ``restore=True`` puts the data back (bit for bit).  The data
    counts are kept in the state while the counts are simulated.  ``seed`` (or a
    Generator ``rng`` that draws one) makes the draw reproducible on any machine; the
    seed is recorded in ``state.simulation``.  Returns (new state, the record)."""
    from .ts import model_cubes

    if restore:
        if state.data_counts is None:
            return state, None
        back = state.with_counts(state.data_counts)
        return back.replace(data_counts=None, simulation=()), None
    src = None if name is None else state.model.find(name).name
    seed = _seed_of(seed, rng) if randomize else None
    counts = _draw(model_cubes(state.replace(loge_bounds=None), src), seed, randomize)
    return _with_simulated(state, counts, {"kind": "roi", "name": src, "seed": seed,
                                           "randomize": bool(randomize)})


def _with_simulated(state, counts, record):
    data = state.data_counts
    if data is None:
        data = tuple(c.counts for c in state.components)
    new = state.with_counts(counts)
    return new.replace(data_counts=data, simulation=state.simulation + (record,)), record


def simulate_source(state, src_dict=None, *, seed=None, rng=None, randomize=True):
    """Fermipy's simulate_source: add to the counts a Poisson draw of the model counts of
    a source given by a source dictionary (defaults as Fermipy's: at the ROI centre, a
    point source, PowerLaw Index 2, Prefactor 1e-13); the source is not added to the
    model.  Returns (new state, the record, with the source's npred)."""
    from .ts import model_cubes

    d = dict(src_dict or {})
    if not any(k in d for k in ("ra", "dec", "glon", "glat", "RA", "DEC")):
        d["ra"], d["dec"] = state.roi_center
    d.setdefault("SpatialModel", "PointSource")
    d.setdefault("SpectrumType", "PowerLaw")
    if d["SpectrumType"] == "PowerLaw":
        d.setdefault("Index", 2.0)
        d.setdefault("Prefactor", 1e-13)
    tmp, _ = E.add_source(state, "mcsource", d)
    cubes = model_cubes(tmp.replace(loge_bounds=None), "mcsource")
    seed = _seed_of(seed, rng) if randomize else None
    extra = _draw(cubes, seed, randomize)
    counts = [c.counts + x for c, x in zip(state.components, extra)]
    rec = {"kind": "source", "name": "mcsource", "seed": seed, "randomize": bool(randomize),
           "npred": float(sum(m.sum() for m in cubes)),
           "counts": float(sum(x.sum() for x in extra))}
    return _with_simulated(state, counts, rec)
