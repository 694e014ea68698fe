"""The tscube analysis as the step and the ``Analysis`` method run it: options from the
recipe's ``tscube`` section with the call's parameters over them, the estimator, Fermipy's
files (``<prefix>_tscube.fits``: the TS map as primary HDU, then SCANDATA (one row per
pixel: per-bin arrays and the likelihood scans), FITDATA (one row per pixel: the broadband
fit) and EBOUNDS (one row per energy bin: bounds and the reference spectrum);
``<prefix>_tscube.npy``; with ``make_plots`` ``<prefix>_tscube_sqrt_ts.png``), each written
to a temporary sibling and renamed into place, and Fermipy's result dict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import EstimatorError
from .roi_output import kept_files, save_npy_atomic, write_atomic

# the step's own parameters (besides the tscube section's options)
STEP_EXTRAS = ("prefix",)
_EST_KEYS = ("model", "do_sed", "nnorm", "norm_sigma", "cov_scale_bb", "cov_scale", "tol",
             "max_iter", "tol_type", "remake_test_source", "st_scan_level", "init_lambda")


def tscube_options(section: dict, params: dict) -> dict:
    """The section's options with ``params`` over them; unknown names are refused."""
    opts = dict(section)
    opts.setdefault("prefix", None)
    for k, v in params.items():
        if k not in opts:
            raise EstimatorError(f"tscube: unknown option {k!r}; known: "
                                 f"{', '.join(sorted(opts))}")
        opts[k] = v
    return opts


def tscube_files(outdir, opts: dict, make_plots: bool) -> dict:
    """Fermipy's names: ``<prefix>_tscube.fits`` (``tscube.fits`` without a prefix); the
    .npy and the plot beside it."""
    stem = "_".join(p for p in (opts.get("prefix") or "", "tscube") if p)
    fits_path = Path(outdir) / f"{stem}.fits"
    files = {"fits": fits_path, "npy": fits_path.with_suffix(".npy")}
    if make_plots:
        files["png"] = fits_path.with_name(fits_path.stem + "_sqrt_ts.png")
    return files


def tscube_written(section: dict, params: dict, outdir) -> dict:
    """The files a tscube call with these options writes, by kind."""
    opts = tscube_options(section, params)
    return kept_files(tscube_files(outdir, opts, bool(opts.get("make_plots"))), opts)


def run_tscube(state, section: dict, outdir, params: dict):
    """(Dataset, {kind: path written}) of a TS cube with the section ``section`` and the
    call's ``params`` over it; files as the options say.  Nothing is written when the
    estimator refuses its input."""
    from ..estimators.tscube import tscube

    opts = tscube_options(section, params)
    ds = tscube(state, **{k: opts[k] for k in _EST_KEYS if k in opts}).dataset
    if opts.get("prefix"):
        ds.attrs["name"] = f"{opts['prefix']}_{ds.attrs['name']}"
    files = tscube_files(outdir, opts, bool(opts.get("make_plots")))
    paths = {}
    if opts.get("write_fits", True):
        paths["fits"] = write_atomic(files["fits"], lambda tmp: write_tscube_fits(ds, tmp))
    if opts.get("write_npy", True):
        doc = tscube_dict(ds, str(files["fits"]) if "fits" in paths else None, opts)
        doc.pop("tscube")
        paths["npy"] = save_npy_atomic(files["npy"], doc)
    if opts.get("make_plots"):
        from ..plot.roi import save_figure
        from ..plot.tscube import tscube_figure

        paths["png"] = save_figure(tscube_figure(ds), files["png"])
    return ds, paths


def tscube_dict(ds, file=None, config=None) -> dict:
    """Fermipy's tscube() dict: ts, sqrt_ts, npred, amplitude (maps on the sky grid), name,
    src_dict, file, config, tscube (here the Dataset: per-bin norms, TS, limits, scans)."""
    out = {k: np.asarray(ds[k].values) for k in ("ts", "sqrt_ts", "npred", "amplitude")}
    out.update(name=ds.attrs["name"], file=None if file is None else Path(file).name,
               path=file, src_dict=json.loads(ds.attrs["src_dict"]),
               config=dict(config or {}), tscube=ds)
    return out


def _rows(ds, var):
    """One row per pixel (the sky grid in C order: x fastest, or the HEALPix pixels in
    the product's order) of ``var``'s trailing dims."""
    a = np.asarray(ds[var].values)
    nsky = 2 if "x" in ds[var].dims else 1
    return a.reshape((-1,) + a.shape[nsky:])


def _array_col(name, a, unit=None):
    """A FITS column holding a per-row array ``a`` (nrow, ...) (TDIM for 2-D cells)."""
    from astropy.io import fits

    a = np.ascontiguousarray(a, dtype=np.float64)
    shape = a.shape[1:]
    n = int(np.prod(shape)) if shape else 1
    kw = {"dim": "(" + ",".join(str(s) for s in reversed(shape)) + ")"} \
        if len(shape) > 1 else {}
    return fits.Column(name, f"{n}D" if shape else "D", unit=unit,
                       array=a.reshape(a.shape[0], *shape) if shape else a, **kw)


def write_tscube_fits(ds, path) -> Path:
    """Fermipy's TS cube file: the broadband TS map (WCS primary image with the grid's
    header; on HEALPix an empty primary and an explicit-index HEALPix table TS_MAP), then
    SCANDATA (with do_sed), FITDATA and EBOUNDS."""
    from astropy.io import fits

    from ..geom.coords import geom_from_attrs
    from ..geom.wcs import WcsGeom

    geom = geom_from_attrs(ds.attrs)
    hdus = []
    if isinstance(geom, WcsGeom):
        hdr = fits.Header({k: v for k, v in geom.to_header().items()
                           if not k.startswith("NAXIS")})
        hdus.append(fits.PrimaryHDU(np.asarray(ds["ts"].values, dtype=np.float64),
                                    header=hdr))
    else:
        hdus.append(fits.PrimaryHDU())
        cols = [fits.Column("PIX", "K", array=np.asarray(geom.pix, dtype=np.int64)),
                fits.Column("CHANNEL1", "D", array=_rows(ds, "ts"))]
        h = fits.BinTableHDU.from_columns(cols, name="TS_MAP")
        h.header.update(PIXTYPE="HEALPIX", ORDERING=geom.ordering, NSIDE=geom.nside,
                        INDXSCHM="EXPLICIT", COORDSYS="C" if geom.frame == "CEL" else "G",
                        HPX_CONV="FGST_SRCMAP_SPARSE")
        hdus.append(h)
    e_min = np.asarray(ds["energy_min"].values, dtype=float)
    e_max = np.asarray(ds["energy_max"].values, dtype=float)
    e_ref = np.asarray(ds["e_ref"].values, dtype=float)
    nrow = _rows(ds, "ts").shape[0]
    if "norm" in ds:
        per = lambda x: np.broadcast_to(x, (nrow, x.size))            # noqa: E731
        cols = [_array_col("e_min", per(e_min), "MeV"), _array_col("e_ref", per(e_ref), "MeV"),
                _array_col("e_max", per(e_max), "MeV"),
                _array_col("ts", _rows(ds, "bin_ts")),
                _array_col("norm", _rows(ds, "norm")),
                _array_col("norm_err", _rows(ds, "norm_err")),
                _array_col("norm_ul", _rows(ds, "norm_ul")),
                _array_col("loglike", _rows(ds, "loglike")),
                _array_col("norm_scan", _rows(ds, "norm_scan")),
                _array_col("dloglike_scan", _rows(ds, "dloglike_scan")),
                _array_col("ref_dnde", per(ds["ref_dnde"].values), "ph / (cm2 MeV s)"),
                _array_col("ref_flux", per(ds["ref_flux"].values), "ph / (cm2 s)"),
                _array_col("ref_eflux", per(ds["ref_eflux"].values), "MeV / (cm2 s)"),
                _array_col("ref_npred", _rows(ds, "ref_npred"))]
        hdus.append(fits.BinTableHDU.from_columns(cols, name="SCANDATA"))
    fcols = [fits.Column("fit_ts", "D", array=_rows(ds, "ts")),
             fits.Column("fit_status", "J", array=_rows(ds, "fit_status").astype(np.int32)),
             fits.Column("fit_norm", "D", array=_rows(ds, "fit_norm")),
             fits.Column("fit_norm_err", "D", array=_rows(ds, "fit_norm_err")),
             fits.Column("fit_norm_ul", "D", array=_rows(ds, "fit_norm_ul")),
             fits.Column("fit_loglike", "D", array=_rows(ds, "fit_loglike"))]
    hdus.append(fits.BinTableHDU.from_columns(fcols, name="FITDATA"))
    ecols = [fits.Column("CHANNEL", "J", array=np.arange(1, e_min.size + 1, dtype=np.int32)),
             fits.Column("E_MIN", "D", unit="MeV", array=e_min),
             fits.Column("E_REF", "D", unit="MeV", array=e_ref),
             fits.Column("E_MAX", "D", unit="MeV", array=e_max)]
    if "norm" in ds:
        ref = int(ds.attrs.get("ref_pixel", 0))
        ecols += [fits.Column("REF_DNDE", "D", unit="ph / (cm2 MeV s)",
                              array=np.asarray(ds["ref_dnde"].values, float)),
                  fits.Column("REF_FLUX", "D", unit="ph / (cm2 s)",
                              array=np.asarray(ds["ref_flux"].values, float)),
                  fits.Column("REF_EFLUX", "D", unit="MeV / (cm2 s)",
                              array=np.asarray(ds["ref_eflux"].values, float)),
                  fits.Column("REF_NPRED", "D", array=_rows(ds, "ref_npred")[ref])]
    hdus.append(fits.BinTableHDU.from_columns(ecols, name="EBOUNDS"))
    for h in hdus:
        h.header["SRCNAME"] = (str(ds.attrs["name"])[:60], "TS cube of this test source")
    hdus[0].header["NORMTYPE"] = ("norm", "scan norms relative to the test source")
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return Path(path)
