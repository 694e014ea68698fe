"""The localize and find_sources analyses as the steps and the ``Analysis`` methods run them:
options from the recipe's ``localize`` / ``sourcefind`` section with the call's parameters
over them, the estimator, Fermipy's files (each written to a temporary sibling and renamed
into place) and Fermipy's result dicts.

* localize: ``<prefix>_<name>_loc.fits`` (primary: the first pass's TS map, SCAN: log L of
  the scan minus its maximum, both on a gnomonic grid centred where each was made; LOC: one
  row of the results), ``<prefix>_<name>_loc.npy`` (the dict), with ``make_plots``
  ``<prefix>_<name>_loc.png``; ``<name>`` lower-case with spaces as underscores.
* find_sources: ``<prefix>_sourcefind.fits`` (PEAKS and SOURCES tables),
  ``<prefix>_sourcefind.npy``, with ``make_plots`` ``<prefix>_sourcefind_sqrt_ts.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import EstimatorError
from .roi_output import save_npy_atomic, write_atomic

LOC_EST_KEYS = ("nstep", "dtheta_max", "free_background", "free_radius", "fix_shape",
                "update")
LOC_OUT_KEYS = ("make_plots", "write_fits", "write_npy")
FIND_EST_KEYS = ("model", "min_separation", "sqrt_ts_threshold", "max_iter",
                 "sources_per_iter", "tsmap_fitter", "free_params", "multithread",
                 "nthread", "search_skydir", "search_minmax_radius", "tsmap")


def _optimizer(params: dict):
    opt = params.get("optimizer")
    if isinstance(opt, dict):
        return opt.get("optimizer")
    return opt


def _merge(what, section: dict, params: dict, allowed) -> dict:
    opts = dict(section)
    for k, v in params.items():
        if k not in allowed:
            raise EstimatorError(f"{what}: unknown option {k!r}; known: "
                                 f"{', '.join(sorted(allowed))}")
        opts[k] = v
    return opts


# ------------------------------------------------------------------------ localize ----
def localize_options(section: dict, params: dict) -> dict:
    allowed = set(LOC_EST_KEYS) | set(LOC_OUT_KEYS) | {"name", "prefix", "optimizer"}
    return _merge("localize", section, params, allowed)


def localize_files(outdir, name: str, opts: dict) -> dict:
    stem = "_".join(p for p in (opts.get("prefix") or "",
                                str(name).lower().replace(" ", "_"), "loc") if p)
    base = Path(outdir) / stem
    files = {}
    if opts.get("write_fits", True):
        files["fits"] = base.with_suffix(".fits")
    if opts.get("write_npy", True):
        files["npy"] = base.with_suffix(".npy")
    if opts.get("make_plots"):
        files["png"] = base.with_suffix(".png")
    return files


def localize_written(section: dict, params: dict, outdir, name: str) -> dict:
    return localize_files(outdir, name, localize_options(section, params))


def run_localize(state, section: dict, outdir, params: dict):
    """(EstimatorResult, {kind: path written}) of localize with the section and the call's
    parameters over it.  Nothing is written when the estimator fails."""
    from ..estimators import run

    opts = localize_options(section, params)
    if not opts.get("name"):
        raise EstimatorError("localize: needs a source name")
    from ..errors import ModelError

    try:
        src = state.model.find(opts["name"])
    except ModelError as e:
        raise ModelError(f"localize: {e}") from None
    res = run("localize", state, src.name, optimizer=_optimizer(opts),
              **{k: opts[k] for k in LOC_EST_KEYS if k in opts})
    ds = res.dataset
    files = localize_files(outdir, src.name, opts)
    paths = {}
    if "fits" in files:
        paths["fits"] = write_atomic(files["fits"], lambda t: write_localize_fits(ds, t))
    if "npy" in files:
        paths["npy"] = save_npy_atomic(files["npy"], localize_dict(
            ds, str(files.get("fits")) if "fits" in files else None, with_dataset=False))
    if "png" in files:
        from ..plot.localize import localize_figure
        from ..plot.roi import save_figure

        paths["png"] = save_figure(localize_figure(ds), files["png"])
    return res, paths


_MATS = ("pos_cel_cov", "pos_cel_corr", "pos_gal_cov", "pos_gal_corr")


def localize_dict(ds, file=None, with_dataset=True) -> dict:
    """Fermipy's localize() dict: the position and its errors, ``*_preloc``, log L values,
    fit flags, the TS map and the scan (``fit_init``, ``fit_scan``)."""
    a = ds.attrs
    out = {k: v for k, v in a.items() if k not in ("model", "fermixr_product")
           and not k.startswith("fit_init_")}
    for k in _MATS:
        out[k] = np.asarray(ds[k].values, float)
    out["skydir"] = (float(a["ra"]), float(a["dec"]))
    out["tsmap"] = np.asarray(ds["tsmap"].values, float)
    out["fit_init"] = {k[len("fit_init_"):]: v for k, v in a.items()
                       if k.startswith("fit_init_")}
    out["fit_scan"] = {"loglike": np.asarray(ds["loglike_scan"].values, float),
                       "dloglike": np.asarray(ds["dloglike_scan"].values, float),
                       "ra": np.asarray(ds["scan_ra"].values, float),
                       "dec": np.asarray(ds["scan_dec"].values, float)}
    out["file"] = file
    if with_dataset:
        out["dataset"] = ds
    return out


def _tan_header(ra0, dec0, step, n):
    return {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": float(ra0),
            "CRVAL2": float(dec0), "CRPIX1": (n + 1) / 2.0, "CRPIX2": (n + 1) / 2.0,
            "CDELT1": -float(step), "CDELT2": float(step), "CUNIT1": "deg",
            "CUNIT2": "deg", "RADESYS": "FK5", "EQUINOX": 2000.0}


def write_localize_fits(ds, path) -> Path:
    """The TS map (primary; x towards west, so its columns run opposite to xi), the scan
    (SCAN) and the results (LOC) of one localization."""
    from astropy.io import fits

    a = ds.attrs
    xi = np.asarray(ds["tsmap_xi"].values, float)
    step = float(xi[1] - xi[0]) if xi.size > 1 else 1.0
    ts = np.asarray(ds["tsmap"].values, float)[:, ::-1]
    prim = fits.PrimaryHDU(ts, header=fits.Header(_tan_header(a["ra_preloc"], a["dec_preloc"],
                                                              step, ts.shape[0])))
    sc = np.asarray(ds["dloglike_scan"].values, float)[:, ::-1]
    n = sc.shape[0]
    h = 2.0 * float(a["scan_halfwidth"]) / max(n - 1, 1)
    scan = fits.ImageHDU(sc, header=fits.Header(_tan_header(a["scan_center_ra"],
                                                            a["scan_center_dec"], h, n)),
                         name="SCAN")
    cols = []
    for k, v in a.items():
        if k in ("model", "fermixr_product"):
            continue
        if isinstance(v, bool):
            cols.append(fits.Column(k.upper(), "L", array=np.array([v])))
        elif isinstance(v, (int, float)):
            cols.append(fits.Column(k.upper(), "D", array=np.array([float(v)])))
        elif isinstance(v, str):
            cols.append(fits.Column(k.upper(), f"{max(len(v), 1)}A", array=np.array([v])))
    for k in _MATS:
        cols.append(fits.Column(k.upper(), "4D", array=np.asarray(ds[k].values,
                                                                  float).reshape(1, 4)))
    loc = fits.BinTableHDU.from_columns(cols, name="LOC")
    for hdu in (prim, scan, loc):
        hdu.header["SRCNAME"] = (str(a["name"])[:60], "localised source")
    fits.HDUList([prim, scan, loc]).writeto(path, overwrite=True)
    return Path(path)


# ------------------------------------------------------------------- find_sources ----
def find_sources_options(section: dict, params: dict) -> dict:
    opts = dict(section)
    opts.setdefault("search_skydir", None)
    opts.setdefault("search_minmax_radius", [None, 1.0])
    opts.setdefault("tsmap", None)
    allowed = set(FIND_EST_KEYS) | {"prefix", "optimizer", "tscube", "make_plots",
                                    "write_fits", "write_npy"}
    opts = _merge("find_sources", opts, params, allowed)
    if opts.get("tscube") is not None:
        raise EstimatorError("find_sources: tscube: TS cubes are not used for source "
                             "finding (tsmap_fitter 'tsmap' only); leave tscube null")
    return opts


def find_sources_files(outdir, opts: dict) -> dict:
    stem = "_".join(p for p in (opts.get("prefix") or "", "sourcefind") if p)
    base = Path(outdir) / stem
    files = {}
    if opts.get("write_fits", True):
        files["fits"] = base.with_suffix(".fits")
    if opts.get("write_npy", True):
        files["npy"] = base.with_suffix(".npy")
    if opts.get("make_plots"):
        files["png"] = base.with_name(base.name + "_sqrt_ts.png")
    return files


def find_sources_written(section: dict, params: dict, outdir) -> dict:
    return find_sources_files(outdir, find_sources_options(section, params))


def run_find_sources(state, section: dict, outdir, params: dict):
    """(EstimatorResult, {kind: path}) of find_sources with the section (the
    ``sourcefind`` options; write_fits / write_npy / make_plots from the call)."""
    from ..estimators import run

    opts = find_sources_options(section, params)
    res = run("find_sources", state, optimizer=_optimizer(opts),
              **{k: opts[k] for k in FIND_EST_KEYS if k in opts})
    ds = res.dataset
    files = find_sources_files(outdir, opts)
    paths = {}
    if "fits" in files:
        paths["fits"] = write_atomic(files["fits"], lambda t: write_peaks_fits(ds, t))
    if "npy" in files:
        doc = find_sources_dict(ds, res.state, str(files.get("fits")) if "fits" in files
                                else None, with_dataset=False)
        paths["npy"] = save_npy_atomic(files["npy"], doc)
    if "png" in files:
        from ..plot.localize import find_sources_figure
        from ..plot.roi import save_figure

        paths["png"] = save_figure(find_sources_figure(ds), files["png"])
    return res, paths


_PEAK_COLS = ("ra", "dec", "glon", "glat", "ts", "sqrt_ts", "amplitude", "iter")
_SRC_COLS = ("ra", "dec", "glon", "glat", "ts", "npred", "flux", "flux_err", "eflux",
             "eflux_err", "iter", "fit_success")


def find_sources_dict(ds, state=None, file=None, with_dataset=True) -> dict:
    """Fermipy's find_sources() dict: ``peaks`` (one dict per peak) and ``sources`` (the
    new sources' dictionaries when the proposed state is given, else their table rows)."""
    peaks = [{"name": str(ds["peak_name"].values[i]),
              **{k: ds[f"peak_{k}"].values[i].item() for k in _PEAK_COLS}}
             for i in range(ds.sizes.get("peak", 0))]
    names = [str(n) for n in ds["source"].values]
    if state is not None:
        from ..estimators.sourcedict import source_dict

        sources = [source_dict(state, n, scan=False) for n in names]
    else:
        sources = [{"name": n, **{k: ds[k].values[i].item() for k in _SRC_COLS}}
                   for i, n in enumerate(names)]
    out = {"peaks": peaks, "sources": sources, "file": file,
           "sqrt_ts": np.asarray(ds["map_sqrt_ts"].values, float)}
    if with_dataset:
        out["dataset"] = ds
    return out


def write_peaks_fits(ds, path) -> Path:
    """PEAKS (name, position, TS, amplitude, iteration) and SOURCES (the new sources as
    fitted) tables."""
    from astropy.io import fits

    def table(items, cols, name, prefix=""):
        out = []
        n = ds.sizes.get(items, 0)
        key = "peak_name" if items == "peak" else "source"
        names = [str(v) for v in ds[key].values]
        out.append(fits.Column("NAME", f"{max([len(s) for s in names] + [1])}A",
                               array=np.array(names, dtype=str) if n else np.array([], "U1")))
        for c in cols:
            v = np.asarray(ds[prefix + c].values)
            fmt = "L" if v.dtype == bool else ("K" if v.dtype.kind in "iu" else "D")
            out.append(fits.Column(c.upper(), fmt, array=v))
        return fits.BinTableHDU.from_columns(out, name=name)

    h = [fits.PrimaryHDU(), table("peak", _PEAK_COLS, "PEAKS", "peak_"),
         table("source", _SRC_COLS, "SOURCES")]
    h[0].header["SQRTTS"] = (float(ds.attrs["sqrt_ts_threshold"]), "peak threshold")
    h[0].header["MINSEP"] = (float(ds.attrs["min_separation"]), "deg")
    fits.HDUList(h).writeto(path, overwrite=True)
    return Path(path)


def json_model(ds) -> dict:
    return json.loads(ds.attrs["model"])
