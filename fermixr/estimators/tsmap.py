"""TS map: at every pixel of the first component's sky grid, the maximum-likelihood
amplitude A >= 0 of a test source (default a point source with a power law of index 2)
over the fixed background m (the state's model without the ``exclude`` sources), summed
over energies and components,

    lnL(A) - lnL(0) = sum_k w_k [n_k log(1 + A s_k / m_k) - A s_k],

found by safeguarded Newton iterations on A (analytic first and second derivatives), and
TS = 2 (lnL(A) - lnL(0)) clipped at 0.

The kernel s of each component and energy bin is that component's own map of the test
source (its PSF, pixel size, exposure and energy dispersion: made by ``state.map_maker``
like any source map), cut at ``max_kernel_radius``.  On WCS grids the kernel is made once
per sub-pixel offset class (one class when the component's pixels are the output's, n^2
when they are n times larger) and shifted; on HEALPix each output pixel takes the
component's pixels within the radius, with kernel values from the radial profile of the
map of a source at a pixel centre.  Likelihood weights (``wmap``) weight every term.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import EstimatorError
from ..likelihood.roi import AnalysisState, component_costs, map_key
from . import EstimatorResult, register
from . import _tsmap_kernels as K

__all__ = ["tsmap", "make_test_source", "solve_amplitudes"]

TEST_NAME = "tsmap_testsource"
_DEFAULT_MODEL = {"SpatialModel": "PointSource", "SpectrumType": "PowerLaw", "Index": 2.0}


def make_test_source(state: AnalysisState, model, lonlat=None, frame="CEL"):
    """The test source (``model`` merged over the default point source / power law of
    index 2) at ``lonlat`` in ``frame`` (default the ROI centre)."""
    from ..geom.frames import transform
    from ..model.build import source_from_dict

    if model is not None and not isinstance(model, dict):
        raise EstimatorError(f"tsmap: model: got {model!r}; expected a source dictionary "
                             "such as {'SpatialModel': 'PointSource', 'Index': 2.0}")
    d = dict(_DEFAULT_MODEL)
    d.update(model or {})
    d["name"] = TEST_NAME
    for k in ("ra", "dec", "glon", "glat"):
        d.pop(k, None)
    if lonlat is None:
        if state.roi_center is None:
            raise EstimatorError("tsmap: the analysis state has no ROI centre")
        ra, dec = state.roi_center
    else:
        lo, la = transform(np.atleast_1d(float(lonlat[0])), np.atleast_1d(float(lonlat[1])),
                           frame, "CEL")
        ra, dec = float(np.ravel(lo)[0]), float(np.ravel(la)[0])
    d["ra"], d["dec"] = float(ra), float(dec)
    try:
        return source_from_dict(d, state.roi_center, where="tsmap.model")
    except EstimatorError:
        raise
    except Exception as e:           # a model that does not parse
        raise EstimatorError(f"tsmap: model: {e}") from None


def _source_counts(state, i, src) -> np.ndarray:
    """Counts (n_bins, n_pix) of ``src`` (at its parameter values) on component ``i``."""
    from ..model.skymodel import SkyModel

    if state.map_maker is None:
        raise EstimatorError("tsmap: this analysis state cannot make the test source's "
                             "maps (it was not loaded from a run and has no map_maker)")
    arr = np.asarray(state.map_maker(src, i), dtype=np.float64)
    comp = state.components[i]
    one = comp.replace(maps={src.name: arr.reshape(arr.shape[0], -1)},
                       map_keys={src.name: map_key(src)})
    sub = state.replace(components=(one,), model=SkyModel((src,)), priors={})
    c = component_costs(sub)[0]
    return np.asarray(c.source_cube(src.name, c.x0)).reshape(comp.counts.shape)


def _bin_mask(edges, loge_bounds):
    le = np.log10(np.asarray(edges, dtype=float))
    if loge_bounds is None:
        return np.ones(le.size - 1, dtype=bool)
    lo, hi = (-np.inf if v is None else float(v) for v in loge_bounds)
    hi = np.inf if loge_bounds[1] is None else hi
    tol = 1e-6
    return (le[:-1] >= lo - tol) & (le[1:] <= hi + tol)


def _wcs_part(state, i, out_lon, out_lat, out_frame, ref_binsz, model, radius, mask):
    from ..geom.frames import angular_separation

    comp = state.components[i]
    g = comp.geom
    ny, nx = g.shape
    nsub = max(1, int(round(g.binsz / ref_binsz)))
    cx, cy = nx // 2, ny // 2
    r = int(math.ceil(radius / g.binsz))
    r = max(0, min(r, cx, cy, nx - 1 - cx, ny - 1 - cy))
    lon_c, lat_c = g.pixel_centers()
    win = (slice(cy - r, cy + r + 1), slice(cx - r, cx + r + 1))
    kern = np.zeros((nsub * nsub, comp.counts.shape[0], 2 * r + 1, 2 * r + 1))
    for qy in range(nsub):
        for qx in range(nsub):
            lon, lat = g.pix_to_world(cx + qx / nsub, cy + qy / nsub)
            src = make_test_source(state, model, (float(lon), float(lat)), g.frame)
            cube = _source_counts(state, i, src).reshape((-1, ny, nx))
            sep = angular_separation(lon_c[win], lat_c[win], float(lon), float(lat))
            k = cube[(slice(None),) + win] * (sep <= radius)[None]
            k[~mask] = 0.0
            kern[qy * nsub + qx] = k
    x, y = g.world_to_pix(out_lon, out_lat, frame=out_frame)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    x, y = np.where(bad, -1e6, x), np.where(bad, -1e6, y)
    ix, iy = np.floor(x), np.floor(y)
    qx = np.rint((x - ix) * nsub).astype(np.int64)
    qy = np.rint((y - iy) * nsub).astype(np.int64)
    ix = ix.astype(np.int64) + qx // nsub
    iy = iy.astype(np.int64) + qy // nsub
    cls = (qy % nsub) * nsub + (qx % nsub)
    shape3 = (-1, ny, nx)
    return ("wcs", kern, ix, iy, cls.astype(np.int64), shape3)


def _sep(lon1, lat1, lon2, lat2):
    """Angular distance [deg] between arrays of directions (haversine)."""
    r = np.radians
    a = (np.sin(r(lat2 - lat1) / 2) ** 2
         + np.cos(r(lat1)) * np.cos(r(lat2)) * np.sin(r(lon2 - lon1) / 2) ** 2)
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def _hpx_part(state, i, out_lon, out_lat, out_frame, model, radius, mask):
    import healpy as hp

    from ..geom.frames import angular_separation, transform

    comp = state.components[i]
    g = comp.geom
    ra, dec = state.roi_center
    clon, clat = transform(np.atleast_1d(ra), np.atleast_1d(dec), "CEL", g.frame)
    hpix = int(g.healpix_index(float(clon[0]), float(clat[0]), frame=g.frame))
    plon, plat = hp.pix2ang(g.nside, hpix, nest=g.nest, lonlat=True)
    src = make_test_source(state, model, (float(plon), float(plat)), g.frame)
    cube = _source_counts(state, i, src)                        # (nb, npix)
    lon_c, lat_c = g.pixel_centers()
    sep = angular_separation(lon_c, lat_c, float(plon), float(plat))
    # radial profile: mean map value in rings a quarter of a pixel wide
    res = hp.nside2resol(g.nside, arcmin=True) / 60.0
    step = res / 4.0
    ring = np.floor(sep / step).astype(np.int64)
    keep = sep <= radius + res
    nr = int(ring[keep].max()) + 1 if keep.any() else 1
    cnt = np.bincount(ring[keep], minlength=nr)
    has = cnt > 0
    r_mid = np.bincount(ring[keep], sep[keep], minlength=nr)[has] / cnt[has]
    prof = np.stack([np.bincount(ring[keep], cube[k, keep], minlength=nr)[has] / cnt[has]
                     for k in range(cube.shape[0])])
    # neighbours of every output pixel within the radius
    olon, olat = out_lon, out_lat
    if out_frame != g.frame:
        olon, olat = transform(out_lon, out_lat, out_frame, g.frame)
    vec = hp.ang2vec(np.asarray(olon), np.asarray(olat), lonlat=True)
    idx_l, ptr = [], [0]
    for v in np.atleast_2d(vec):
        nb = g.local_index(hp.query_disc(g.nside, v, math.radians(radius), nest=g.nest))
        nb = nb[nb >= 0]
        idx_l.append(nb)
        ptr.append(ptr[-1] + nb.size)
    idx = np.concatenate(idx_l) if idx_l else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(idx_l)), np.diff(ptr))
    d = _sep(lon_c[idx], lat_c[idx], np.asarray(olon)[owner], np.asarray(olat)[owner])
    vals = np.stack([np.interp(d, r_mid, prof[k]) for k in range(cube.shape[0])]) \
        if idx.size else np.zeros((cube.shape[0], 0))
    vals[~mask] = 0.0
    return ("hpx", np.ascontiguousarray(vals), np.asarray(ptr, dtype=np.int64),
            idx.astype(np.int64))


def solve_amplitudes(parts, npix, backend="numba", tol=1e-8, max_iter=100):
    """Per output pixel the amplitude A >= 0 maximising sum of the parts' lnL and
    (A, TS, -d2lnL/dA2 at A).  ``parts``: (placement tuple, n, m, w) per component."""
    acc = {"numba": (K.wcs_accumulate, K.sparse_accumulate),
           "numpy": (K.wcs_accumulate_numpy, K.sparse_accumulate_numpy)}[backend]

    def accumulate(A, want_dl=False, unit=False, sel=None):
        g1, g2, dl = np.zeros(npix), np.zeros(npix), np.zeros(npix)
        sel = np.arange(npix, dtype=np.int64) if sel is None else sel
        for place, n, m, w in parts:
            if unit:     # sum of the kernel: n = 0, m = w = 1 gives g1 = -sum s
                n, m, w = np.zeros_like(n), np.ones_like(m), np.ones_like(w)
            if place[0] == "wcs":
                _, kern, ix, iy, cls, shape3 = place
                acc[0](A, n.reshape(shape3), m.reshape(shape3), w.reshape(shape3), kern,
                       ix, iy, cls, want_dl, g1, g2, dl, sel)
            else:
                _, vals, ptr, idx = place
                acc[1](A, n, m, w, ptr, idx, vals, want_dl, g1, g2, dl, sel)
        return g1, g2, dl

    ksum = -accumulate(np.zeros(npix), unit=True)[0]
    g1, g2, _ = accumulate(np.zeros(npix))
    active = (g1 > 0) & (ksum > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        A = np.where(active, g1 / -g2, 0.0)
        A = np.where(np.isfinite(A), A, 1.0 / np.maximum(ksum, 1e-300))
        atol = tol / np.maximum(ksum, 1e-300)
    lo, hi = np.zeros(npix), np.full(npix, np.inf)
    todo = np.nonzero(active)[0].astype(np.int64)
    for _ in range(max_iter):      # Newton kept inside its bracket, on unconverged pixels
        if not todo.size:
            break
        g1, g2, _ = accumulate(A, sel=todo)
        a, d1, d2 = A[todo], g1[todo], g2[todo]
        up = d1 > 0
        lo[todo] = np.where(up, a, lo[todo])
        hi[todo] = np.where(up, hi[todo], a)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = a - d1 / d2
        out = ~((new > lo[todo]) & (new < hi[todo]))
        new = np.where(out, np.where(np.isfinite(hi[todo]), 0.5 * (lo[todo] + hi[todo]),
                                     2.0 * a + atol[todo]), new)
        done = np.abs(new - a) <= tol * np.abs(a) + atol[todo]
        A[todo] = new
        todo = todo[~done]
    _, g2, dl = accumulate(A, want_dl=True)
    ts = np.where(active, np.maximum(2.0 * dl, 0.0), 0.0)
    return A, ts, ksum, -g2


@register("tsmap", version="1", product="tsmap", section="tsmap", needs_source=False)
def tsmap(state: AnalysisState, *, model=None, exclude=None, multithread=False,
          nthread=None, max_kernel_radius=3.0, loge_bounds=None, backend="numba"):
    """TS map of a test source: per pixel the amplitude >= 0 over the fixed background,
    TS, sqrt(TS), npred and flux, on the first component's sky grid."""
    import xarray as xr

    from ..geom.coords import geom_attrs, geom_coords, sky_dims
    from ..geom.hpx import HpxGeom

    if backend not in ("numba", "numpy"):
        raise EstimatorError(f"tsmap: backend: got {backend!r}; expected 'numba' or 'numpy'")
    if not (isinstance(max_kernel_radius, (int, float)) and max_kernel_radius > 0):
        raise EstimatorError(f"tsmap: max_kernel_radius: got {max_kernel_radius!r}; "
                             "expected a positive angle in deg")
    if loge_bounds is not None and (len(loge_bounds) != 2 or (
            None not in loge_bounds and loge_bounds[0] >= loge_bounds[1])):
        raise EstimatorError(f"tsmap: loge_bounds: got {list(loge_bounds)!r}; expected "
                             "[log10(emin/MeV), log10(emax/MeV)] with emin < emax")
    bkg = state.model
    for name in exclude or ():
        try:
            bkg = bkg.remove(state.model.find(name).name)
        except Exception:
            raise EstimatorError(f"tsmap: exclude: no source {name!r} in the model") from None
    if not len(bkg):
        raise EstimatorError("tsmap: no background left after exclude; the TS map needs a "
                             "background model")
    src0 = make_test_source(state, model)          # fails early on a model that does not parse
    if state.map_maker is None:
        raise EstimatorError("tsmap: this analysis state cannot make the test source's "
                             "maps (it was not loaded from a run and has no map_maker)")
    comps = state.components
    out_geom = comps[0].geom
    out_lon, out_lat = (np.ravel(a) for a in out_geom.pixel_centers())
    ref_binsz = out_geom.binsz if not isinstance(out_geom, HpxGeom) else \
        math.degrees(math.sqrt(4 * math.pi / out_geom.npix_allsky))
    costs = component_costs(state, bkg)
    parts, emin, emax = [], np.inf, 0.0
    for i, (comp, c) in enumerate(zip(comps, costs)):
        mask = _bin_mask(comp.edges, loge_bounds)
        if not mask.any():
            continue
        emin = min(emin, float(comp.edges[:-1][mask][0]))
        emax = max(emax, float(comp.edges[1:][mask][-1]))
        m = np.asarray(c.model_cube(c.x0), dtype=np.float64).reshape(comp.counts.shape)
        w = np.ones_like(m) if comp.wmap is None else np.asarray(comp.wmap, float)
        if isinstance(comp.geom, HpxGeom):
            place = _hpx_part(state, i, out_lon, out_lat, out_geom.frame, model,
                              float(max_kernel_radius), mask)
        else:
            place = _wcs_part(state, i, out_lon, out_lat, out_geom.frame, ref_binsz, model,
                              float(max_kernel_radius), mask)
        parts.append((place, np.ascontiguousarray(comp.counts), np.ascontiguousarray(m),
                      np.ascontiguousarray(w)))
    if not parts:
        raise EstimatorError(f"tsmap: loge_bounds {list(loge_bounds)!r} select no energy "
                             f"bin of the analysis ({state.energy_range[0]:g}-"
                             f"{state.energy_range[1]:g} MeV)")
    # multithread / nthread: accepted without effect (the table says so); the kernels
    # run on one thread
    A, ts, ksum, curv = solve_amplitudes(parts, out_lon.size, backend=backend)
    sm = state.spectral(src0)
    norm = src0.param(sm.norm_param)
    p = src0.spectral_values()
    flux1 = float(sm.flux(emin, emax, p))
    with np.errstate(divide="ignore", invalid="ignore"):
        a_err = np.where(curv > 0, 1.0 / np.sqrt(curv), np.nan)
    shape = out_geom.shape
    dims = sky_dims(out_geom)

    def var(x, units, desc):
        return (dims, np.asarray(x, dtype=np.float64).reshape(shape),
                {"units": units, "description": desc})

    src_dict = {k: v for k, v in dict(_DEFAULT_MODEL, **(model or {})).items()}
    ds = xr.Dataset(
        {"ts": var(ts, "", "test statistic 2 (lnL(A) - lnL(0)), clipped at 0"),
         "sqrt_ts": var(np.sqrt(ts), "", "sqrt of ts"),
         "npred": var(A * ksum, "count", "predicted counts of the test source at its "
                                         "best amplitude (within the kernel)"),
         "amplitude": var(A * norm.physical, "cm-2 s-1 MeV-1",
                          f"best-fit {norm.name} of the test source"),
         "amplitude_err": var(a_err * norm.physical, "cm-2 s-1 MeV-1",
                              f"1-sigma error of {norm.name} (curvature)"),
         "flux": var(A * flux1, "cm-2 s-1", f"photon flux {emin:g}-{emax:g} MeV"),
         "flux_err": var(a_err * flux1, "cm-2 s-1", "1-sigma error of flux (curvature)")},
        coords=geom_coords(out_geom),
        attrs={"fermixr_product": "tsmap", **geom_attrs(out_geom),
               "model": json.dumps(state.model.to_dict()),
               "name": _model_name(src_dict),
               "src_dict": json.dumps(src_dict, default=str),
               "exclude": json.dumps(list(exclude or [])),
               "max_kernel_radius": float(max_kernel_radius),
               "loge_bounds": json.dumps(None if loge_bounds is None else list(loge_bounds)),
               "emin": emin, "emax": emax})
    return EstimatorResult(ds)


def _model_name(src_dict) -> str:
    """Fermipy's name of a TS map: the spatial model and the power-law index."""
    sp = str(src_dict.get("SpatialModel", "PointSource")).lower()
    sp = {"pointsource": "pointsource"}.get(sp, sp)
    idx = src_dict.get("Index", 2.0)
    out = f"{sp}_{str(src_dict.get('SpectrumType', 'PowerLaw')).lower()}_{float(idx):.2f}"
    return out
