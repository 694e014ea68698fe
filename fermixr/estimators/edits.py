"""Edits of an analysis state's model, priors and counts, with Fermipy's method names:
pure functions ``(state, ...) -> new state`` (the facade and the recipe's state steps both
call them; neither holds any logic of its own).  Sources are found by name, case- and
whitespace-insensitively, or by association."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..likelihood.roi import AnalysisState, with_maps_for
from ..model.source import Source

__all__ = [
    "free_parameter", "free_norm", "free_index", "free_shape", "free_source", "free_sources",
    "set_parameter", "set_parameter_bounds", "set_norm", "zero_source", "unzero_source",
    "add_source", "set_source_spectrum", "set_source_morphology", "delete_source",
    "delete_sources", "get_sources", "get_params", "add_gauss_prior", "remove_prior",
    "remove_priors", "constrain_norms", "generate_model", "with_all_maps", "roi_text",
    "params_text"]


def _replace(state: AnalysisState, src: Source) -> AnalysisState:
    return state.with_model(state.model.replace_source(src))


def _set_free(state, name, pars, free) -> AnalysisState:
    """Free (or fix) ``pars`` of a source, leaving locked parameters (lock_parameter) as
    they are."""
    src = state.model.find(name)
    locked = src.meta.get("locked", ())
    for p in pars:
        src.param(p)
        if p not in locked:
            src = src.with_param(p, free=bool(free))
    return _replace(state, src)


def free_parameter(state, name, par, free=True):
    return _set_free(state, name, [par], free)


def free_norm(state, name, free=True):
    src = state.model.find(name)
    return _set_free(state, name, [state.spectral(src).norm_param], free)


def free_index(state, name, free=True):
    src = state.model.find(name)
    idx = state.spectral(src).index_params[:1]
    if not idx:
        raise ModelError(f"source {src.name!r} ({src.spectrum}) has no index parameter")
    return _set_free(state, name, idx, free)


def free_shape(state, name, free=True):
    src = state.model.find(name)
    return _set_free(state, name, state.spectral(src).shape_params, free)


def free_source(state, name, free=True, pars=None):
    """Free (or fix) a source's spectral parameters: all but the reference energies and
    limits (``pars=None``), ``'norm'``, ``'shape'``, or a list of names."""
    src = state.model.find(name)
    sm = state.spectral(src)
    if pars is None:
        names = [n for n in sm.par_names if n not in sm.scale_params]
    elif pars == "norm":
        names = [sm.norm_param]
    elif pars == "shape":
        names = list(sm.shape_params)
    else:
        names = [pars] if isinstance(pars, str) else list(pars)
    return _set_free(state, name, names, free)


def free_sources(state, free=True, pars=None, **selection):
    """Free (or fix) ``pars`` of every source :func:`get_sources` selects with
    ``selection``; returns (new state, the sources changed as they are now)."""
    srcs = get_sources(state, **selection)
    for src in srcs:
        state = free_source(state, src.name, free=free, pars=pars)
    return state, [state.model.find(s.name) for s in srcs]


def set_parameter(state, name, par, value, true_value=True, scale=None, bounds=None,
                  error=None):
    """Set a parameter; ``true_value`` (default) means ``value`` is the physical value."""
    src = state.model.find(name)
    p = src.param(par)
    changes = {}
    if scale is not None:
        changes["scale"] = float(scale)
    sc = changes.get("scale", p.scale)
    changes["value"] = float(value) / sc if true_value else float(value)
    if bounds is not None:
        changes["min"], changes["max"] = (None if b is None else float(b) for b in bounds)
    if error is not None:
        changes["error"] = float(error)
    new = p.replace(**changes).check(where=src.name)
    return _replace(state, src.with_param(par, **{k: getattr(new, k) for k in changes}))


def set_parameter_bounds(state, name, par, bounds):
    src = state.model.find(name)
    lo, hi = bounds
    src.param(par).replace(min=lo, max=hi).check(where=src.name)
    return _replace(state, src.with_param(par, min=lo, max=hi))


def set_norm(state, name, value):
    src = state.model.find(name)
    return set_parameter(state, name, state.spectral(src).norm_param, value, true_value=False)


def zero_source(state, name):
    src = state.model.find(name)
    norm = state.spectral(src).norm_param
    p = src.param(norm)
    zeroed = dict(state.zeroed, **{src.name: p.value})
    state = state.replace(zeroed=zeroed)
    return _replace(state, src.with_param(norm, value=0.0, min=min(0.0, p.min or 0.0)))


def unzero_source(state, name):
    src = state.model.find(name)
    if src.name not in state.zeroed:
        return state
    zeroed = dict(state.zeroed)
    value = zeroed.pop(src.name)
    state = state.replace(zeroed=zeroed)
    return _replace(state, src.with_param(state.spectral(src).norm_param, value=value))


def add_source(state, name, src_dict, free=None):
    """Add a source from a Fermipy source dictionary (``ra``/``dec`` or ``glon``/``glat``,
    ``SpectrumType``, ``SpatialModel``, parameters ...) with its maps.  Returns (new state,
    the source)."""
    from ..model.build import source_from_dict

    src = source_from_dict(dict(src_dict, name=name), state.roi_center,
                           where=f"add_source({name!r})")
    if free is not None:
        sm = state.spectral(src)
        for p in sm.par_names:
            if p not in sm.scale_params:
                src = src.with_param(p, free=bool(free))
    model = state.model.add(src)            # raises if the name exists
    state = with_maps_for(state, src)
    return state.with_model(model), src


def set_source_spectrum(state, name, spectrum_type="PowerLaw", spectrum_pars=None):
    """Give a source another spectral model (parameters from ``spectrum_pars``, else the
    model's defaults); its map does not change."""
    from ..model.parameters import Parameter
    from ..model.spectral import get_spectral_model

    src = state.model.find(name)
    cls = get_spectral_model(spectrum_type)
    given = dict(spectrum_pars or {})
    pars = tuple(Parameter.from_any(q.name, given[q.name], q, where=src.name)
                 if q.name in given else q for q in cls.params)
    return _replace(state, src.replace(spectrum=spectrum_type, spectral=pars))


def _radec(pars):
    p = {q.name: q.physical for q in pars}
    return (p["RA"], p["DEC"]) if "RA" in p and "DEC" in p else None


def set_source_morphology(state, name, spatial_model=None, spatial_pars=None):
    """Change a source's spatial model or parameters (``RA``, ``DEC``, ``Sigma``,
    ``Radius`` ..., physical values) and make its maps."""
    from ..model.parameters import Parameter
    from ..model.spatial import default_params, spatial_type

    src = state.model.find(name)
    kind = spatial_type(spatial_model or src.spatial_model)
    old = {p.name: p for p in src.spatial}
    given = dict(spatial_pars or {})
    pars = []
    for q in default_params(kind):
        base = old.get(q.name, q)
        pars.append(Parameter.from_any(q.name, given[q.name], base, where=src.name)
                    if q.name in given else base)
    meta = dict(src.meta)
    if src.skydir != _radec(pars):
        meta.pop("pos_ellipse", None)      # the old position's uncertainty
    new = src.replace(spatial_model=kind, spatial=tuple(pars), meta=meta)
    state = with_maps_for(state, new)
    return _replace(state, new)


def with_all_maps(state: AnalysisState) -> AnalysisState:
    """Every source of the model with a map of its current spatial model (after a model
    was replaced as a whole, e.g. by load_roi); unread components stay unread."""
    from ..likelihood.roi import LazyComponents, ensure_maps

    model, maker = state.model, state.map_maker

    def ensure(comps):
        for src in model:
            comps = ensure_maps(comps, src, maker)
        return comps

    if not state.loaded:
        inner = state._components
        return state.replace(components=LazyComponents(lambda: ensure(inner.get())))
    comps = ensure(state.components)
    changed = any(a is not b for a, b in zip(comps, state.components))
    return state.replace(components=comps) if changed else state


def delete_source(state, name):
    """(new state, the deleted source)."""
    src = state.model.find(name)
    return state.with_model(state.model.remove(src.name)), src


def delete_sources(state, **selection):
    """Delete every source :func:`get_sources` selects (with no selection, every source, as
    Fermipy does); returns (new state, the deleted sources)."""
    srcs = get_sources(state, **selection)
    for s in srcs:
        state, _ = delete_source(state, s.name)
    return state, srcs


# ------------------------------------------------------------------ selections ---------
def _in_range(v, minmax):
    """Fermipy's min/max selection: a bound of None passes everything, a NaN value fails
    a bound that is set."""
    if v is None:
        return False
    lo, hi = minmax
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _minmax(v, what):
    try:
        lo, hi = v
        return (None if lo is None else float(lo), None if hi is None else float(hi))
    except (TypeError, ValueError):
        raise ModelError(f"{what}: got {v!r}; expected [min, max] (either may be null)") \
            from None


def parse_cuts(cuts) -> dict:
    """``cuts`` as {key: (min, max)} from a dict, a (key, min, max) tuple or a list."""
    if cuts is None:
        return {}
    if isinstance(cuts, dict):
        return {str(k): _minmax(v, f"cuts[{k!r}]") for k, v in cuts.items()}
    if isinstance(cuts, tuple) and len(cuts) == 3 and isinstance(cuts[0], str):
        cuts = [cuts]
    out = {}
    for c in cuts:
        if not (isinstance(c, (list, tuple)) and len(c) == 3 and isinstance(c[0], str)):
            raise ModelError(f"cuts: got {c!r}; expected (key, min, max)")
        out[c[0]] = _minmax(c[1:], f"cuts[{c[0]!r}]")
    return out


def source_property(state, src: Source, key: str):
    """A value of the source dictionary or the source's catalog row, or None."""
    from .sourcedict import CATALOG_COLUMNS, SCALARS, position_dict, source_dict
    from .ts import npred, ts_value

    if key == "ts":
        return ts_value(state, src.name)
    if key == "npred":
        return npred(state, src.name)
    if key in src.meta and isinstance(src.meta[key], (int, float)):
        return float(src.meta[key])
    pos = position_dict(src, state.roi_center, state.components[0].geom)
    if key in pos:
        return pos[key]
    if key not in SCALARS + CATALOG_COLUMNS:
        return None
    v = source_dict(state, src.name, scan=False).get(key)
    return float(v) if isinstance(v, (int, float, np.floating)) else None


def get_sources(state, cuts=None, distance=None, skydir=None, minmax_ts=None,
                minmax_npred=None, exclude=None, square=False, coordsys=None,
                names=None) -> list[Source]:
    """The sources passing Fermipy's selection, point-like ones by distance from
    ``skydir`` (default the ROI centre), then the diffuse ones (which have no position and
    pass the distance cut):

    * ``distance`` (deg): on the sky, or with ``square`` within |x|, |y| <= distance of
      the AIT projection centred on ``skydir`` in ``coordsys`` (default the binning frame);
    * ``cuts``: ``{key: [min, max]}`` (either may be null), a ``(key, min, max)`` tuple or
      a list of them, on entries of the source dictionary (``ts``, ``npred``, ``offset``,
      ``flux`` ...) or columns of the source's catalog row (``Signif_Avg``,
      ``Variability_Index`` ...); a source without the key fails;
    * ``minmax_ts``, ``minmax_npred``: [min, max] of TS and npred (computed now, with the
      current parameters);
    * ``exclude``, ``names``: names left out / the only names considered."""
    from ..geom.frames import ait_offsets, angular_separation, fermipy_cel_to_gal

    cuts = parse_cuts(cuts)
    for what, mm in (("minmax_ts", minmax_ts), ("minmax_npred", minmax_npred)):
        if mm is not None:
            cuts[what[7:]] = _minmax(mm, what)
    center = (tuple(float(v) for v in skydir) if skydir is not None else state.roi_center)
    frame = str(coordsys or state.coordsys or "CEL").upper()
    exclude = {str(n) for n in (exclude or [])}
    wanted = None if names is None else [state.model.find(n).name for n in names]
    point, diffuse = [], []
    for src in state.model:
        if src.name in exclude or any(src.matches(n) for n in exclude):
            continue
        if wanted is not None and src.name not in wanted:
            continue
        pos = src.position          # a SpatialMap template has the catalog's position
        if pos is None:
            diffuse.append(src)
            continue
        ra, dec = pos
        d = float(angular_separation(np.array([ra]), np.array([dec]), *center)[0])
        if distance is not None:
            if square:
                if frame == "GAL":
                    x, y = ait_offsets(*fermipy_cel_to_gal(*center),
                                       *fermipy_cel_to_gal(ra, dec), "GAL")
                else:
                    x, y = ait_offsets(*center, ra, dec, "CEL")
                if max(abs(float(x[0])), abs(float(y[0]))) > distance:
                    continue
            elif d > distance:
                continue
        point.append((d, src))
    point.sort(key=lambda t: t[0])
    candidates = [s for _, s in point] + diffuse
    for key in cuts:
        if candidates and key not in ("ts", "npred") and not any(
                source_property(state, s, key) is not None for s in candidates):
            raise ModelError(f"cuts: no source has a property {key!r} (keys of the source "
                             "dictionary or of the catalog row)")
    return [s for s in candidates
            if all(_in_range(source_property(state, s, k), mm) for k, mm in cuts.items())]


def get_params(state, freeonly=False) -> list[dict]:
    """One dict per spectral parameter (Fermipy's ``get_params``)."""
    out = []
    for s in state.model:
        for p in s.spectral:
            if freeonly and not p.free:
                continue
            out.append({"src_name": s.name, "par_name": p.name, "value": p.value,
                        "scale": p.scale, "min": p.min, "max": p.max, "free": p.free,
                        "error": p.error, "idx": len(out)})
    return out


# ---------------------------------------------------------------------- priors -----------
def add_gauss_prior(state, name, parName, mean, sigma):
    """A Gaussian prior (scaled units, as the Science Tools apply it) on a parameter; it
    takes part in fits while the parameter is free."""
    src = state.model.find(name)
    if not src.param(parName).free:
        raise ModelError(f"prior on {src.name}:{parName}: the parameter is fixed; free it "
                         "first (free_parameter / free_source)")
    if not (float(sigma) > 0):
        raise ModelError(f"prior on {src.name}:{parName}: sigma must be > 0, got {sigma}")
    return state.with_priors(dict(state.priors, **{f"{src.name}:{parName}":
                                                   (float(mean), float(sigma))}))


def remove_prior(state, name, parName):
    priors = dict(state.priors)
    priors.pop(f"{state.model.find(name).name}:{parName}", None)
    return state.with_priors(priors)


def remove_priors(state):
    return state.with_priors({})


def constrain_norms(state, srcNames, cov_scale=1.0):
    """Gaussian priors on the norms of ``srcNames`` at their current values, with sigma =
    cov_scale x their errors (Fermipy's constrain_norms)."""
    for n in srcNames:
        src = state.model.find(n)
        norm = src.param(state.spectral(src).norm_param)
        if norm.error is None or not norm.error > 0:
            raise ModelError(f"constrain_norms: {src.name} has no error on its norm; fit "
                             "first")
        state = add_gauss_prior(state, src.name, norm.name, norm.value,
                                cov_scale * norm.error)
    return state


# ---------------------------------------------------------------- simulation -----------
def generate_model(state, model_name=None, rng=None, seed=None):
    """The state with every component's counts replaced by a Poisson realisation of the
    current model (of one source with ``model_name``); ``rng`` (a numpy Generator) or
    ``seed`` makes it reproducible.  Returns (new state, the seed used)."""
    from .ts import model_cubes

    if rng is None:
        seed = int(np.random.SeedSequence().entropy % (2 ** 32)) if seed is None else seed
        rng = np.random.default_rng(seed)
    cubes = model_cubes(state, model_name)
    data = state.data_counts
    if data is None:         # kept, so that simulate_roi(restore=True) brings them back
        data = tuple(c.counts for c in state.components)
    new = state.with_counts([rng.poisson(m).astype(float) for m in cubes])
    record = {"kind": "generate_model", "name": model_name, "seed": seed, "randomize": True}
    return new.replace(data_counts=data, simulation=state.simulation + (record,)), seed


# ------------------------------------------------------------------- summaries ---------
def roi_text(state) -> str:
    """Fermipy's print_roi table: each source with its types, offset from the ROI centre
    (deg; '-----' for diffuse sources), TS (with the other parameters held), npred and the
    number of free parameters."""
    from ..geom.frames import angular_separation
    from .ts import npred, ts_value

    lines = [f"{'name':<24}{'SpatialModel':<16}{'SpectrumType':<18}{'offset':>8}"
             f"{'ts':>10}{'npred':>12}  free",
             "-" * 94]
    for s in state.model:
        nfree = sum(p.free for p in s.spectral)
        off = "-----"
        pos = s.position
        if pos is not None and state.roi_center is not None:
            d = angular_separation(np.array([pos[0]]), np.array([pos[1]]),
                                   *state.roi_center)
            off = f"{float(d[0]):.3f}"
        ts = ts_value(state, s.name)
        ts_txt = "" if not np.isfinite(ts) else f"{ts:.2f}"
        lines.append(f"{s.name:<24.23}{s.spatial_model:<16.15}{s.spectrum:<18.17}{off:>8}"
                     f"{ts_txt:>10}{npred(state, s.name):12.2f}  {nfree or ''}")
    return "\n".join(lines)


def params_text(state, allpars=False) -> str:
    """Fermipy's print_params table: the free spectral parameters (every one with
    ``allpars``)."""
    lines = [f"{'source':<24}{'parameter':<14}{'value':>12}{'error':>12}{'scale':>10} free"]
    for p in get_params(state, freeonly=not allpars):
        err = "" if p["error"] is None else f"{p['error']:12.4g}"
        lines.append(f"{p['src_name']:<24}{p['par_name']:<14}{p['value']:12.5g}{err:>12}"
                     f"{p['scale']:10.3g} {'*' if p['free'] else ''}")
    return "\n".join(lines)
