"""The extension and curvature analyses as the steps and the ``Analysis`` methods run
them: options from the recipe's ``extension`` section with the call's parameters over them
(curvature has no section: keyword options), the estimators, Fermipy's files
(``<prefix>_<name>_ext.fits``: one-row table EXTENSION with the scalars and the scan, table
PROFILE with every width evaluated; ``<prefix>_<name>_ext.npy``; with ``make_plots``
``<prefix>_<name>_ext_profile.png``), written through a temporary sibling and a rename,
and Fermipy's result dicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import EstimatorError
from .roi_output import save_npy_atomic, write_atomic

# the step's own parameters besides the extension section's options
STEP_EXTRAS = ("name", "prefix", "outfile", "optimizer")
# the section's options the estimator takes (the others choose files)
EST_KEYS = ("spatial_model", "width", "fit_position", "width_min", "width_max",
            "width_nstep", "free_background", "free_radius", "fix_shape", "fit_ebin",
            "update", "save_model_map", "sqrt_ts_threshold", "psf_scale_fn", "make_tsmap")
FILE_KEYS = ("make_plots", "write_fits", "write_npy")


def extension_options(section: dict, params: dict) -> dict:
    """The section's options with ``params`` over them; unknown names are refused."""
    opts = dict(section)
    for k in ("prefix", "outfile", "optimizer"):
        opts.setdefault(k, None)
    for k, v in params.items():
        if k == "name":
            continue
        if k not in opts:
            raise EstimatorError(f"extension: unknown option {k!r}; known: "
                                 f"{', '.join(sorted(opts))}")
        opts[k] = v
    return opts


def extension_files(outdir, name: str, opts: dict) -> dict:
    """Fermipy's names: ``<prefix>_<name>_ext.fits`` (``<name>_ext.fits`` without a
    prefix; the source name lower-cased, blanks as underscores), or ``outfile``; the .npy
    and the plot beside it."""
    tag = str(name).lower().replace(" ", "_")
    stem = opts.get("outfile") or "_".join(p for p in (opts.get("prefix") or "", tag, "ext")
                                           if p)
    stem = str(stem)[:-5] if str(stem).endswith(".fits") else str(stem)
    fits_path = Path(outdir) / f"{stem}.fits"
    files = {}
    if opts.get("write_fits", True):
        files["fits"] = fits_path
    if opts.get("write_npy", True):
        files["npy"] = fits_path.with_suffix(".npy")
    if opts.get("make_plots"):
        files["png"] = fits_path.with_name(fits_path.stem + "_profile.png")
    return files


def extension_written(section: dict, params: dict, outdir, name: str) -> dict:
    """The files an extension call with these options writes, by kind."""
    return extension_files(outdir, name, extension_options(section, params))


def run_extension(state, section: dict, outdir, params: dict, fit_options=None,
                  config=None):
    """(proposed state or None, Dataset, {kind: path written}) of the extension test of
    ``params['name']`` with the section ``section`` and ``params`` over it."""
    from ..estimators.extension import extension

    if not params.get("name"):
        raise EstimatorError("extension: needs a source name")
    opts = extension_options(section, params)
    fo = dict(fit_options or {})
    fo.update(opts.get("optimizer") or {})
    res = extension(state, params["name"], optimizer=fo, **{k: opts[k] for k in EST_KEYS})
    ds = res.dataset
    files = extension_files(outdir, ds.attrs["name"], opts)
    cfg = json.dumps({k: opts.get(k) for k in EST_KEYS + FILE_KEYS}, default=str)
    paths = {}
    if "fits" in files:
        paths["fits"] = write_atomic(files["fits"],
                                     lambda tmp: write_extension_fits(ds, tmp, config or cfg))
    if "npy" in files:
        doc = extension_dict(ds, str(files.get("fits", "")) or None)
        doc.pop("dataset")
        paths["npy"] = save_npy_atomic(files["npy"], doc)
    if "png" in files:
        from ..plot.extension import extension_figure
        from ..plot.roi import save_figure

        paths["png"] = save_figure(extension_figure(ds), files["png"])
    return res.state, ds, paths


def extension_dict(ds, file=None) -> dict:
    """Fermipy's extension() dict: width, dloglike, loglike, ext, ext_err, ext_err_lo,
    ext_err_hi, ext_ul95, ts_ext, loglike_ptsrc, loglike_ext, loglike_init, loglike_base,
    ebin_* arrays (with fit_ebin), tsmap (with make_tsmap), source_fit, ra, dec, glon,
    glat, flags, file, plus the profile (every width evaluated) and the Dataset."""
    a = ds.attrs
    out = {"name": a["name"], "spatial_model": a["spatial_model"],
           "width": np.asarray(ds["width"].values), "loglike": np.asarray(ds["loglike"].values),
           "dloglike": np.asarray(ds["dloglike"].values),
           "fit_success": np.asarray(ds["fit_success"].values),
           "profile_width": np.asarray(ds["profile_width"].values),
           "profile_loglike": np.asarray(ds["profile_loglike"].values)}
    for k in ("ext", "ext_err", "ext_err_lo", "ext_err_hi", "ext_ul95", "ts_ext",
              "loglike_ptsrc", "loglike_ext", "loglike_init", "loglike_base", "ra", "dec",
              "glon", "glat"):
        out[k] = float("nan") if a[k] is None else float(a[k])    # NaN is null once stored
    out["updated"] = bool(a["updated"])
    out["flags"] = json.loads(a["flags"])
    out["source_fit"] = json.loads(a["source_fit"])
    out["ptsrc_fit"] = json.loads(a["ptsrc_fit"])
    for k in ds.data_vars:
        if k.startswith("ebin_") or k in ("tsmap", "ptsrc_model_map", "ext_model_map"):
            out[k] = np.asarray(ds[k].values)
    out["file"] = file
    out["dataset"] = ds
    return out


_SCALARS = ("ext", "ext_err", "ext_err_lo", "ext_err_hi", "ext_ul95", "ts_ext",
            "loglike_ptsrc", "loglike_ext", "loglike_init", "loglike_base", "ra", "dec",
            "glon", "glat")


def write_extension_fits(ds, path, config: str = "") -> Path:
    """EXTENSION: one row (name, spatial model, the scalars, the scan as array columns,
    ebin_* arrays with fit_ebin); PROFILE: every width evaluated.  CONFIG holds the
    options as JSON."""
    from astropy.io import fits

    a = ds.attrs
    cols = [fits.Column("name", "A64", array=np.array([a["name"]])),
            fits.Column("spatial_model", "A20", array=np.array([a["spatial_model"]]))]
    for k in _SCALARS:
        cols.append(fits.Column(k, "D", array=np.array([float(a[k])]),
                                unit="deg" if k.startswith("ext") else None))
    nw = ds.sizes["width"]
    for k, v in (("width", ds["width"].values), ("loglike", ds["loglike"].values),
                 ("dloglike", ds["dloglike"].values)):
        cols.append(fits.Column(k, f"{nw}D", array=np.asarray(v, float)[None, :]))
    for k in ds.data_vars:
        if k.startswith("ebin_"):
            v = np.asarray(ds[k].values, float)
            cols.append(fits.Column(k, f"{v.size}D", array=v.reshape(1, -1),
                                    dim=f"({','.join(str(d) for d in v.shape[::-1])})"
                                    if v.ndim == 2 else None))
    h1 = fits.BinTableHDU.from_columns(cols, name="EXTENSION")
    h1.header["FLAGS"] = a["flags"]          # JSON: limits that are NaN and why
    h2 = fits.BinTableHDU.from_columns(
        [fits.Column("width", "D", array=np.asarray(ds["profile_width"].values), unit="deg"),
         fits.Column("loglike", "D", array=np.asarray(ds["profile_loglike"].values))],
        name="PROFILE")
    prim = fits.PrimaryHDU()
    if config:
        prim.header["CONFIG"] = config          # long: CONTINUE cards
    fits.HDUList([prim, h1, h2]).writeto(path, overwrite=True)
    return Path(path)


# ------------------------------------------------------------------------ curvature --
def curvature_dict(ds) -> dict:
    """Fermipy's curvature() dict: ts_curv, lp_ts_curv, ple_ts_curv, ple_free_ts_curv,
    loglike_pl / lp / ple / ple_free, and per model its refitted parameters
    (``<model>_params``), fit_quality and fit_success, flags."""
    a = ds.attrs
    out = {"name": a["name"]}
    for k in ("ts_curv", "lp_ts_curv", "ple_ts_curv", "ple_free_ts_curv", "loglike_init"):
        out[k] = float(a[k])
    for i, m in enumerate(ds["model"].values):
        m = str(m)
        out[f"loglike_{m}"] = float(a[f"loglike_{m}"])
        out[f"{m}_params"] = json.loads(a[f"{m}_params"])
        out[f"{m}_fit_quality"] = int(ds["fit_quality"].values[i])
        out[f"{m}_fit_success"] = bool(ds["fit_success"].values[i])
    out["flags"] = json.loads(a["flags"])
    out["dataset"] = ds
    return out
