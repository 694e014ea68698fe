"""Source finding (Fermipy's ``find_sources``): iterate a TS map, its peaks and new point
sources.

Each iteration makes a TS map of the test source ``model`` (the ``tsmap`` estimator, with
the ``tsmap`` options given) over the current model, takes its local maxima above
``sqrt_ts_threshold`` (a maximum within a circle of radius ``min_separation`` on WCS grids;
on HEALPix a pixel at least as high as its HEALPix neighbours and as every pixel within
``min_separation``), sorted by TS, refines each position by a quadratic (parabola) fitted to
TS over the peak pixel and its 8 neighbours, and adds up to ``sources_per_iter`` point
sources named ``PS Jhhmm.m+ddmm`` (Fermipy's ``create_source_name``) with the test source's
spectrum and the map's amplitude as their norm.  The new sources' parameters
(``free_params``; null: all but the scales) are then fitted with the model's free
parameters, and fixed again; the sources' table holds them as that fit left them.  Up to
``max_iter`` iterations; it stops at the first map without a peak.  Returns the peaks and
the new sources (dataset) and proposes the new model.  Without ``search_skydir`` the whole
map is searched; with it, peaks between the radii of ``search_minmax_radius``.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import EstimatorError
from ..likelihood.roi import AnalysisState
from . import EstimatorResult, register

__all__ = ["find_sources", "source_name", "find_peaks"]

_TSMAP_KEYS = ("max_kernel_radius", "loge_bounds", "exclude")
_TSMAP_IGNORED = ("model", "multithread", "nthread", "make_plots", "write_fits", "write_npy")


def source_name(ra: float, dec: float, prefix: str = "PS") -> str:
    """Fermipy's name of a new source: ``'PS J%02.f%04.1f%+03.f%02.f'`` of (RA hours, RA
    minutes floored to 0.1, Dec degrees, Dec arcminutes floored)."""
    h = (float(ra) % 360.0) / 15.0
    hh = int(math.floor(h))
    mm = math.floor((h - hh) * 600.0 + 1e-9) / 10.0
    if mm >= 60.0:
        hh, mm = hh + 1, 0.0
    ad = abs(float(dec))
    dd = int(math.floor(ad))
    am = int(math.floor((ad - dd) * 60.0 + 1e-9))
    if am >= 60:
        dd, am = dd + 1, 0
    sign = "-" if float(dec) < 0 else "+"
    return f"{prefix} J{hh % 24:02d}{mm:04.1f}{sign}{dd:02d}{am:02d}"


def _quad_peak(xs, ys, zs, lim):
    """Vertex of a quadratic fitted to z over (x, y) when it is a maximum within ``lim``
    of the origin, else (0, 0)."""
    from .localize import fit_ellipse

    pk, _, ok = fit_ellipse(xs, ys, zs)
    if ok and np.all(np.abs(pk) <= lim):
        return float(pk[0]), float(pk[1])
    return 0.0, 0.0


def find_peaks(ds, threshold_ts: float, min_separation: float):
    """Local maxima of ``ds['ts']`` (a tsmap Dataset) at or above ``threshold_ts``, each
    the highest within ``min_separation`` [deg]: list of dicts (ra, dec, glon, glat, ts,
    sqrt_ts, amplitude, pix), sub-pixel positions, highest TS first."""
    from ..geom.coords import geom_from_attrs
    from ..geom.frames import fermipy_cel_to_gal, transform
    from ..geom.hpx import HpxGeom

    geom = geom_from_attrs(ds.attrs)
    ts = np.asarray(ds["ts"].values, float)
    amp = np.asarray(ds["amplitude"].values, float)
    out = []
    if isinstance(geom, HpxGeom):
        import healpy as hp

        from .localize import tangent_offsets, tangent_to_sky

        lon, lat = (np.asarray(a, float) for a in geom.pixel_centers())
        res = math.degrees(math.sqrt(4 * math.pi / geom.npix_allsky))
        for j in np.nonzero(ts >= threshold_ts)[0]:
            hpix = int(geom.pix[j])
            nb = hp.get_all_neighbours(geom.nside, hpix, nest=geom.nest)
            nb = geom.local_index(nb[nb >= 0])
            nb = nb[nb >= 0]
            vec = hp.ang2vec(lon[j], lat[j], lonlat=True)
            disc = geom.local_index(hp.query_disc(geom.nside, vec,
                                                  math.radians(min_separation),
                                                  nest=geom.nest))
            disc = disc[disc >= 0]
            if (nb.size and ts[nb].max() > ts[j]) or (disc.size and ts[disc].max() > ts[j]):
                continue
            ra_c, dec_c = transform(np.array([lon[j]]), np.array([lat[j]]), geom.frame,
                                    "CEL")
            ra_c, dec_c = float(ra_c[0]), float(dec_c[0])
            pts = np.concatenate([[j], nb])
            pra, pdec = transform(lon[pts], lat[pts], geom.frame, "CEL")
            xi, eta = tangent_offsets(ra_c, dec_c, pra, pdec)
            dx, dy = _quad_peak(xi, eta, ts[pts], res)
            ra, dec = (float(v) for v in tangent_to_sky(ra_c, dec_c, dx, dy))
            out.append((ts[j], ra, dec, amp[j], int(j)))
    else:
        from scipy import ndimage

        r = max(1.0, float(min_separation) / float(geom.binsz))
        n = int(math.floor(r))
        yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
        fp = (xx ** 2 + yy ** 2) <= r * r + 1e-9
        mx = ndimage.maximum_filter(ts, footprint=fp, mode="constant", cval=-np.inf)
        ny, nx = ts.shape
        for iy, ix in zip(*np.nonzero((ts == mx) & (ts >= threshold_ts))):
            y0, y1 = max(iy - 1, 0), min(iy + 2, ny)
            x0, x1 = max(ix - 1, 0), min(ix + 2, nx)
            gy, gx = np.mgrid[y0:y1, x0:x1]
            dx, dy = _quad_peak(gx - ix, gy - iy, ts[y0:y1, x0:x1], 1.0)
            lo, la = geom.pix_to_world(np.array([ix + dx]), np.array([iy + dy]))
            ra, dec = transform(np.atleast_1d(lo), np.atleast_1d(la), geom.frame, "CEL")
            out.append((ts[iy, ix], float(np.ravel(ra)[0]), float(np.ravel(dec)[0]),
                        amp[iy, ix], int(iy * nx + ix)))
    out.sort(key=lambda t: -t[0])
    peaks = []
    for t, ra, dec, a, pix in out:
        glon, glat = fermipy_cel_to_gal(ra, dec)
        peaks.append({"ra": ra, "dec": dec, "glon": glon, "glat": glat, "ts": float(t),
                      "sqrt_ts": float(math.sqrt(max(t, 0.0))), "amplitude": float(a),
                      "pix": pix})
    return peaks


def _check(name, value, cond, expected):
    if not cond:
        raise EstimatorError(f"find_sources: {name}: got {value!r}; expected {expected}")


def _num(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@register("find_sources", version="1", product="find_sources", section="sourcefind",
          needs_source=False)
def find_sources(state: AnalysisState, *, model=None, min_separation=1.0,
                 sqrt_ts_threshold=5.0, max_iter=5, sources_per_iter=4,
                 tsmap_fitter="tsmap", free_params=None, multithread=False, nthread=None,
                 search_skydir=None, search_minmax_radius=(None, 1.0), tsmap=None,
                 tscube=None, optimizer=None):
    """New point sources at the TS-map peaks above sqrt_ts_threshold (iterated), fitted;
    returns the peaks and the sources and proposes the new model."""
    from ..geom.frames import angular_separation
    from . import edits, run
    from .fit import fit_state
    from .sourcedict import source_dict
    from .tsmap import _DEFAULT_MODEL

    _check("sqrt_ts_threshold", sqrt_ts_threshold, _num(sqrt_ts_threshold) and
           sqrt_ts_threshold >= 0, "a number >= 0")
    _check("min_separation", min_separation, _num(min_separation) and min_separation >= 0,
           "an angle >= 0 in deg")
    _check("max_iter", max_iter, isinstance(max_iter, (int, np.integer)) and not
           isinstance(max_iter, bool) and max_iter >= 1, "an integer >= 1")
    _check("sources_per_iter", sources_per_iter, isinstance(sources_per_iter, (int, np.integer))
           and not isinstance(sources_per_iter, bool) and sources_per_iter >= 1,
           "an integer >= 1")
    if tsmap_fitter != "tsmap":
        raise EstimatorError(f"find_sources: tsmap_fitter: got {tsmap_fitter!r}; only "
                             "'tsmap' is implemented (TS cubes are not used for source "
                             "finding)")
    if tscube is not None:
        raise EstimatorError("find_sources: tscube: TS cubes are not used for source "
                             "finding (tsmap_fitter 'tsmap' only); leave tscube null")
    if model is not None and not isinstance(model, dict):
        raise EstimatorError(f"find_sources: model: got {model!r}; expected a source "
                             "dictionary such as {'Index': 2.0}")
    tsopts = dict(tsmap or {})
    if "erange" in tsopts:
        tsopts.setdefault("loge_bounds", tsopts.pop("erange"))
    bad = sorted(set(tsopts) - set(_TSMAP_KEYS) - set(_TSMAP_IGNORED))
    if bad:
        raise EstimatorError(f"find_sources: tsmap: unknown option(s) {', '.join(bad)}; "
                             f"known: {', '.join(_TSMAP_KEYS + _TSMAP_IGNORED)}")
    # the test source is find_sources' model; files and threads are not the TS map's here
    tsopts = {k: v for k, v in tsopts.items() if k in _TSMAP_KEYS and v is not None}
    srcmodel = dict(_DEFAULT_MODEL)
    srcmodel.update(model or {})
    if srcmodel.get("SpatialModel", "PointSource") != "PointSource":
        raise EstimatorError(f"find_sources: model: SpatialModel "
                             f"{srcmodel['SpatialModel']!r}; new sources are point sources")
    if search_skydir is not None:
        _check("search_skydir", search_skydir, len(search_skydir) == 2, "[ra, dec] in deg")
    rmin, rmax = (list(search_minmax_radius) + [None, None])[:2]
    # multithread / nthread: accepted without effect (the TS map runs on one thread)
    fit_options = {"optimizer": str((optimizer or {}).get("optimizer", "NEWTON")
                                    if isinstance(optimizer, dict) else optimizer or
                                    "NEWTON").upper()}
    thr = float(sqrt_ts_threshold) ** 2
    peaks_all, rows, first_map = [], [], None
    cur = state
    for it in range(int(max_iter)):
        ds = run("tsmap", cur, model=srcmodel, **tsopts).dataset
        if first_map is None:
            first_map = ds
        peaks = find_peaks(ds, thr, float(min_separation))
        if search_skydir is not None:
            keep = []
            for p in peaks:
                d = float(angular_separation(np.array([p["ra"]]), np.array([p["dec"]]),
                                             float(search_skydir[0]),
                                             float(search_skydir[1]))[0])
                if (rmin is None or d >= rmin) and (rmax is None or d <= rmax):
                    keep.append(p)
            peaks = keep
        if not peaks:
            break
        new_names = []
        for p in peaks[:int(sources_per_iter)]:
            name = source_name(p["ra"], p["dec"])
            base, k = name, 0
            while name in cur.model:
                k += 1
                name = f"{base}{chr(ord('a') + k - 1)}"
            d = dict(srcmodel, ra=p["ra"], dec=p["dec"])
            d.pop("SpatialModel", None)
            cur, src = edits.add_source(cur, name, d, free=False)
            norm = src.param(cur.spectral(src).norm_param)
            if p["amplitude"] > 0:
                cur = edits.set_parameter(cur, name, norm.name, p["amplitude"])
            p.update(name=name, iter=it)
            new_names.append(name)
        for p in peaks[int(sources_per_iter):]:
            p.update(name="", iter=it)
        peaks_all.extend(peaks)
        fitst = cur
        for n in new_names:
            fitst = edits.free_source(fitst, n, pars=free_params)
        out, fitted = fit_state(fitst, **fit_options)
        ok = bool(out.get("fit_success"))
        # the new sources as fitted in this iteration (errors from this fit's covariance)
        for n in new_names:
            sd = source_dict(fitted if ok else fitst, n, scan=False)
            rows.append({"name": n, "iter": it, "fit_success": ok, **{
                k: float(sd[k]) for k in ("ra", "dec", "glon", "glat", "ts", "npred",
                                          "flux", "flux_err", "eflux", "eflux_err")}})
        if ok:
            cur = fitted
            for n in new_names:
                cur = edits.free_source(cur, n, free=False)
    ds = _dataset(state, first_map, peaks_all, rows, cur, dict(
        sqrt_ts_threshold=float(sqrt_ts_threshold), min_separation=float(min_separation),
        max_iter=int(max_iter), sources_per_iter=int(sources_per_iter),
        src_dict=json.dumps(srcmodel, default=str)))
    return EstimatorResult(ds, cur if rows else None)


def _dataset(state, tsds, peaks, rows, final, attrs):
    import xarray as xr

    def col(items, k, dtype=float):
        return np.array([r[k] for r in items], dtype=dtype)

    pk = {f"peak_{k}": ("peak", col(peaks, k)) for k in ("ra", "dec", "glon", "glat", "ts",
                                                         "sqrt_ts", "amplitude")}
    pk["peak_iter"] = ("peak", col(peaks, "iter", np.int64))
    pk["peak_pix"] = ("peak", col(peaks, "pix", np.int64))
    sv = {k: ("source", col(rows, k)) for k in ("ra", "dec", "glon", "glat", "ts", "npred",
                                                "flux", "flux_err", "eflux", "eflux_err")}
    sv["iter"] = ("source", col(rows, "iter", np.int64))
    sv["fit_success"] = ("source", col(rows, "fit_success", bool))
    dims = tsds["ts"].dims
    ds = xr.Dataset(
        {**pk, **sv,
         "peak_name": ("peak", np.array([p["name"] for p in peaks], dtype=object)),
         "map_sqrt_ts": (dims, np.asarray(tsds["sqrt_ts"].values, float),
                         {"description": "sqrt(TS) of the first iteration's TS map"}),
         "map_ts": (dims, np.asarray(tsds["ts"].values, float),
                    {"description": "TS of the first iteration's TS map"})},
        coords={"source": np.array([r["name"] for r in rows], dtype=object),
                "lon": tsds["lon"], "lat": tsds["lat"]},
        attrs={k: v for k, v in tsds.attrs.items() if k not in ("fermixr_product",
                                                                "model", "name",
                                                                "src_dict")})
    ds.attrs.update(fermixr_product="find_sources", nsources=len(rows), npeaks=len(peaks),
                    model=json.dumps(final.model.to_dict()), **attrs)
    return ds
