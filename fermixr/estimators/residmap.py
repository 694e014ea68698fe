"""Residual significance map (Fermipy's ``residmap``): the counts and the model filtered
with the test source's own counts image as a matched kernel, compared pixel by pixel.

Kernel.  The test source (a dictionary merged over a PowerLaw point source of index 2) is
added at the centre of the first component's pixel nearest the ROI centre, and its map
is made through the state's ``map_maker`` (the engine's, cached in the store like any
source map), so its counts cube ``s`` carries each component's own PSF, exposure, pixel
size and energy dispersion.  ``s`` is normalised to unit sum over every component and
selected energy bin, and the kernel is ``f = s / sum(s**2)`` (Fermipy).  Because pixels
of different components (or a HEALPix grid) cannot be shifted onto each other, ``f`` of
each component and energy bin is read as a radial profile (the mean of ``s`` in rings
of half a pixel around the test source) and applied by angular separation: for every
pixel ``p`` of the output grid (the first component's sky grid) and every pixel ``q`` of
component ``c`` within the kernel radius (99 % of the kernel's weight, found with a
KD-tree on unit vectors), ``n~(p) = sum_c sum_E sum_q f_cE(theta_pq) n_cE(q)`` and ``m~``
likewise for the model.  WCS and HEALPix, one or many components, go the same way.

Calibration.  ``n~`` is a weighted sum of Poisson counts: its variance is
``v = sum f**2 w**2 m``, not its mean ``m~ = sum f w m``.  With ``c = v / m~`` (the issue's
``(m (x) k**2) / (m (x) k)``), ``n~ / c`` has mean and variance ``m~ / c``, so
``sigma = sign(n' - m') sqrt(2 [n' ln(n'/m') - (n' - m')])`` with ``n' = n~/c``,
``m' = m~/c`` follows N(0, 1) on a null map, once its known mean bias ``-1/(6 sqrt(m'))``
(the second-order term of the signed root of a Poisson deviance) is added back: the map
differs from Fermipy's by that much (0.03 sigma at 36 effective counts), and its null mean
is 0 instead of -0.03 to -0.08 at the counts of a small ROI.  With ``use_weights`` the counts and the
model are multiplied by the likelihood weights ``w`` (ones without a weights map).

Outputs (Fermipy's keys): ``sigma``, ``excess = n~ - m~``, ``data = n~``, ``model = m~``
(counts of a test source at the pixel, since ``f`` is the matched filter of ``s``).
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import EstimatorError
from ..likelihood.roi import AnalysisState
from . import EstimatorResult, register

__all__ = ["residmap", "residmap_arrays", "TEST_SOURCE", "TEST_SOURCE_NAME"]

TEST_SOURCE = {"SpatialModel": "PointSource", "SpectrumType": "PowerLaw", "Index": 2.0}
TEST_SOURCE_NAME = "residmap_testsource"
_KERNEL_CONTAINMENT = 0.99
_BLOCK = 2048           # output pixels per KD-tree query


def _unit(lon, lat) -> np.ndarray:
    lon, lat = np.radians(np.ravel(lon)), np.radians(np.ravel(lat))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)


def _centres_cel(comp):
    from ..geom.frames import transform

    lon, lat = comp.geom.pixel_centers()
    lon, lat = np.ravel(lon), np.ravel(lat)
    if comp.geom.frame != "CEL":
        lon, lat = transform(lon, lat, comp.geom.frame, "CEL")
    return lon, lat


def _energy_bins(edges: np.ndarray, loge_bounds) -> np.ndarray:
    """Indices of the measured bins whose log-centre lies within ``loge_bounds``."""
    loge = np.log10(edges)
    if loge_bounds is None:
        return np.arange(edges.size - 1)
    try:
        lo, hi = (None if b is None else float(b) for b in loge_bounds)
    except (TypeError, ValueError):
        raise EstimatorError(f"residmap: loge_bounds {loge_bounds!r}; expected [min, max] "
                             "in log10(E/MeV)") from None
    lo = loge[0] if lo is None else lo
    hi = loge[-1] if hi is None else hi
    if not (lo < hi) or lo < loge[0] - 1e-6 or hi > loge[-1] + 1e-6:
        raise EstimatorError(f"residmap: loge_bounds [{lo:g}, {hi:g}] must be increasing "
                             f"and within the analysis range [{loge[0]:g}, {loge[-1]:g}]")
    ctr = 0.5 * (loge[:-1] + loge[1:])
    sel = np.flatnonzero((ctr >= lo - 1e-9) & (ctr <= hi + 1e-9))
    if not sel.size:
        raise EstimatorError(f"residmap: no energy bin has its centre within loge_bounds "
                             f"[{lo:g}, {hi:g}]")
    return sel


def _test_source_state(state: AnalysisState, model):
    """The state with the test source added at the centre of the first component's pixel
    nearest the ROI centre; returns (state, source)."""
    from ..geom.frames import angular_separation
    from .edits import add_source

    if model is not None and not isinstance(model, dict):
        raise EstimatorError(f"residmap: model {model!r}; expected a source dictionary "
                             "(SpatialModel, SpectrumType, Index, ...)")
    d = dict(TEST_SOURCE)
    d.update(model or {})
    for k in ("ra", "dec", "glon", "glat", "name", "Source_Name"):
        d.pop(k, None)
    comp = state.components[0]
    lon, lat = _centres_cel(comp)
    if state.roi_center is not None:
        k = int(np.nanargmin(angular_separation(lon, lat, *state.roi_center)))
    else:
        k = lon.size // 2
    d["ra"], d["dec"] = float(lon[k]), float(lat[k])
    name = TEST_SOURCE_NAME
    while name in state.model:
        name += "_"
    try:
        return add_source(state, name, d)
    except EstimatorError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise EstimatorError(f"residmap: the test-source model does not parse: {e}") from None


def _radial_profile(theta: np.ndarray, s: np.ndarray, step: float):
    """(ring centres, mean of ``s``) in rings of width ``step`` (deg) around theta = 0."""
    ring = np.floor(theta / step).astype(np.int64)
    n = np.bincount(ring)
    ok = n > 0
    t = np.bincount(ring, weights=theta)[ok] / n[ok]
    v = np.bincount(ring, weights=s)[ok] / n[ok]
    return t, v


def residmap_arrays(state: AnalysisState, *, model=None, exclude=None, loge_bounds=None,
                    use_weights=False) -> dict:
    """sigma, excess, data, model (flat arrays on the first component's sky grid) and the
    test source used; see the module doc."""
    from ..geom.frames import angular_separation
    from .ts import model_cubes

    comps = state.components
    excl = [state.model.find(n).name for n in (exclude or ())]
    sel = _energy_bins(comps[0].edges, loge_bounds)
    lo, hi = np.log10(comps[0].edges[sel[0]]), np.log10(comps[0].edges[sel[-1] + 1])
    sels = [sel] + [_energy_bins(c.edges, [lo, hi]) for c in comps[1:]]

    tstate, tsrc = _test_source_state(state, model)
    kern = [np.asarray(k, dtype=float) for k in model_cubes(tstate, tsrc.name)]
    total = model_cubes(state)
    for n in excl:
        total = [t - x for t, x in zip(total, model_cubes(state, n))]
    s_sum = sum(float(k[s].sum()) for k, s in zip(kern, sels))
    if not s_sum > 0:
        raise EstimatorError("residmap: the test source predicts no counts in the selected "
                             "energy bins")
    kern = [k / s_sum for k in kern]
    norm = sum(float((k[s] ** 2).sum()) for k, s in zip(kern, sels))

    out_lon, out_lat = _centres_cel(comps[0])
    out_vec = _unit(out_lon, out_lat)
    npix = out_vec.shape[0]
    n_t = np.zeros(npix)
    m_t = np.zeros(npix)
    v_t = np.zeros(npix)
    from scipy.spatial import cKDTree

    for comp, k, m, s in zip(comps, kern, total, sels):
        w = comp.wmap if (use_weights and comp.wmap is not None) else None
        lon, lat = _centres_cel(comp)
        theta0 = angular_separation(lon, lat, tsrc.skydir[0], tsrc.skydir[1])
        step = 0.5 * math.degrees(math.sqrt(float(np.mean(comp.geom.solid_angle()))))
        f = k[s] / norm                                    # (n_sel, n_pix)
        # kernel radius: 99 % of the kernel's weight (sum over energies of f * s)
        order = np.argsort(theta0)
        cum = np.cumsum((f * k[s]).sum(axis=0)[order])
        radius = float(theta0[order][min(np.searchsorted(cum, _KERNEL_CONTAINMENT * cum[-1]),
                                         order.size - 1)]) + step
        profiles = [_radial_profile(theta0, fe, step) for fe in f]
        n_c = np.asarray(comp.counts[s], dtype=float)
        m_c = np.asarray(m[s], dtype=float)
        if w is not None:
            n_c = n_c * w[s]
            m_c = m_c * w[s]
            v_c = m_c * w[s]                                  # w**2 m
        else:
            v_c = m_c
        tree = cKDTree(_unit(lon, lat))
        chord = 2.0 * math.sin(math.radians(min(radius, 180.0)) / 2.0)
        for b0 in range(0, npix, _BLOCK):
            block = cKDTree(out_vec[b0:b0 + _BLOCK])
            pairs = block.query_ball_tree(tree, chord)
            rows = np.repeat(np.arange(len(pairs)), [len(p) for p in pairs])
            cols = np.fromiter((j for p in pairs for j in p), dtype=np.int64,
                               count=rows.size)
            d = np.linalg.norm(out_vec[b0 + rows] - tree.data[cols], axis=1)
            theta = np.degrees(2.0 * np.arcsin(np.clip(d / 2.0, 0.0, 1.0)))
            nb = len(pairs)
            for e, (tp, vp) in enumerate(profiles):
                fe = np.interp(theta, tp, vp, right=0.0)
                n_t[b0:b0 + nb] += np.bincount(rows, fe * n_c[e, cols], minlength=nb)
                m_t[b0:b0 + nb] += np.bincount(rows, fe * m_c[e, cols], minlength=nb)
                v_t[b0:b0 + nb] += np.bincount(rows, fe * fe * v_c[e, cols], minlength=nb)

    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(v_t > 0, m_t / v_t, np.nan)       # 1 / c
        n1, m1 = n_t * scale, m_t * scale
        ts = 2.0 * (np.where(n1 > 0, n1 * np.log(n1 / m1), 0.0) - (n1 - m1))
        sigma = np.sign(n1 - m1) * np.sqrt(np.clip(ts, 0.0, None))
        # the signed root of a Poisson deviance of mean m' has mean -1/(6 sqrt(m')) + O(m'^-3/2)
        # (its z - z**2 / (6 sqrt(m')) expansion); removing it centres a null map on 0
        sigma = sigma + 1.0 / (6.0 * np.sqrt(m1))
    sigma = np.where(m_t > 0, sigma, np.nan)
    return {"sigma": sigma, "excess": n_t - m_t, "data": n_t, "model": m_t,
            "source": tsrc, "energy_bins": sel}


def residmap_dataset(state: AnalysisState, res: dict, *, name: str = TEST_SOURCE_NAME,
                     src_dict=None, loge_bounds=None, use_weights=False, exclude=None):
    """The ``residmap`` product on the first component's sky grid."""
    import xarray as xr

    comp = state.components[0]
    tpl = comp.template
    shape = tuple(comp.sky_shape)
    lon, lat = comp.geom.pixel_centers()
    if len(shape) == 2:
        dims, coords = ("y", "x"), {}
    else:
        dims = ("pix",)
        coords = {"pix": ("pix", np.asarray(comp.geom.pix))}
    coords["lon"] = (dims, np.asarray(lon).reshape(shape), {"units": "deg"})
    coords["lat"] = (dims, np.asarray(lat).reshape(shape), {"units": "deg"})
    geom = dict(comp.geom_attrs)
    if tpl is not None and "geom" in getattr(tpl, "attrs", {}):
        geom = tpl.attrs["geom"]
    edges = comp.edges[res["energy_bins"]]
    sv = {"units": "sigma"}
    cnt = {"units": "count"}
    ds = xr.Dataset(
        {"sigma": (dims, res["sigma"].reshape(shape), sv),
         "excess": (dims, res["excess"].reshape(shape), cnt),
         "data": (dims, res["data"].reshape(shape), cnt),
         "model": (dims, res["model"].reshape(shape), cnt)},
        coords=coords,
        attrs={"fermixr_product": "residmap", "name": str(name),
               "src_dict": json.dumps(src_dict or {}, sort_keys=True, default=str),
               "geom": json.loads(json.dumps(dict(geom), default=str)),
               "loge_min": float(np.log10(edges[0])),
               "loge_max": float(np.log10(comp.edges[res["energy_bins"][-1] + 1])),
               "use_weights": int(bool(use_weights)),
               "exclude": json.dumps(list(exclude or []))})
    return ds


@register("residmap", version="1", product="residmap", section="residmap",
          needs_source=False)
def residmap(state: AnalysisState, *, model=None, exclude=None, loge_bounds=None,
             use_weights=False):
    """Residual significance map of a test source's kernel (Fermipy's residmap)."""
    res = residmap_arrays(state, model=model, exclude=exclude, loge_bounds=loge_bounds,
                          use_weights=use_weights)
    src = res["source"]
    src_dict = dict(TEST_SOURCE)
    src_dict.update(model or {})
    src_dict.update(ra=float(src.skydir[0]), dec=float(src.skydir[1]))
    name = "residmap" if not model or "name" not in model else str(model["name"])
    return EstimatorResult(residmap_dataset(state, res, name=name, src_dict=src_dict,
                                            loge_bounds=loge_bounds,
                                            use_weights=use_weights, exclude=exclude))
