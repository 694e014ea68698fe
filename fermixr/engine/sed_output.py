"""The sed analysis as the step and the ``Analysis`` method run it: options from the
recipe's ``sed`` section with the call's parameters over them, the estimator, and
Fermipy's files -- ``<prefix>_<name>_sed.fits`` (``<name>_sed.fits`` without a prefix;
the name lower-cased, spaces as underscores; or ``outfile``) with the HDUs SED,
MODEL_FLUX and PARAMS in Fermipy 0.16's layout, the .npy dict beside it and, with
``make_plots``, ``<stem>.png`` -- each written to a temporary sibling and renamed into
place.  Every header carries the options as JSON in CONFIG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import EstimatorError
from .roi_output import kept_files, save_npy_atomic, write_atomic

# the step's own parameters (besides the sed section's options)
STEP_EXTRAS = ("name", "prefix", "outfile", "loge_bins", "optimizer")
_EST_KEYS = ("loge_bins", "bin_index", "use_local_index", "free_background", "free_radius",
             "free_pars", "ul_confidence", "cov_scale", "optimizer")


def sed_options(section: dict, params: dict) -> dict:
    """The section's options with ``params`` over them; unknown names are refused."""
    from .options import OPTION_ALIASES

    opts = dict(section)
    for k in STEP_EXTRAS:
        opts.setdefault(k, None)
    aliases = OPTION_ALIASES.get("sed", {})
    for k, v in params.items():
        k = aliases.get(k, k)
        if k not in opts:
            raise EstimatorError(f"sed: unknown option {k!r}; known: "
                                 f"{', '.join(sorted(opts))}")
        opts[k] = v
    if opts.get("optimizer") is not None and not isinstance(opts["optimizer"], dict):
        raise EstimatorError(f"sed: optimizer: got {opts['optimizer']!r}; expected a "
                             "mapping of optimizer options")
    return opts


def sed_files(outdir, opts: dict, name: str) -> dict:
    """Fermipy's names: ``<prefix>_<name>_sed.fits`` or ``outfile``; .npy and .png beside."""
    stem = opts.get("outfile")
    if not stem:
        tag = str(name).lower().replace(" ", "_")
        stem = "_".join(p for p in (opts.get("prefix") or "", tag, "sed") if p)
    stem = str(stem)[:-5] if str(stem).endswith(".fits") else str(stem)
    fits_path = Path(outdir) / f"{stem}.fits"
    return {"fits": fits_path, "npy": fits_path.with_suffix(".npy"),
            "png": fits_path.with_suffix(".png")}


def sed_written(section: dict, params: dict, outdir, name: str) -> dict:
    """The files a sed call with these options writes, by kind."""
    opts = sed_options(section, params)
    return kept_files(sed_files(outdir, opts, name), opts)


def run_sed(state, section: dict, outdir, params: dict, *, llscan_npts: int = 20):
    """(Dataset, {kind: path written}) of the SED of ``params['name']`` with the section
    ``section`` and the call's ``params`` over it; files as the options say.  Nothing is
    written when the estimator refuses its input."""
    from ..estimators.sed import sed

    opts = sed_options(section, params)
    if not opts.get("name"):
        raise EstimatorError("sed: needs the name of a source")
    ds = sed(state, opts["name"], llscan_npts=int(llscan_npts),
             **{k: opts[k] for k in _EST_KEYS}).dataset
    written = sed_written(section, params, outdir, ds.attrs["name"])
    config = {k: v for k, v in opts.items()}
    paths = {}
    if written:
        Path(outdir).mkdir(parents=True, exist_ok=True)
    if "fits" in written:
        paths["fits"] = write_atomic(written["fits"],
                                     lambda tmp: write_sed_fits(ds, tmp, config))
    if "npy" in written:
        from ..estimators.sed import sed_dict

        doc = sed_dict(ds, None if "fits" not in paths else str(paths["fits"]))
        doc["config"] = config
        paths["npy"] = save_npy_atomic(written["npy"], doc)
    if "png" in written:
        from ..plot.roi import save_figure
        from ..plot.sed import sed_figure

        paths["png"] = save_figure(sed_figure(ds), written["png"])
    return ds, paths


def write_sed_fits(ds, path, config: dict | None = None) -> Path:
    """Fermipy 0.16's SED file: HDU SED (one row per bin: e_min, e_ref, e_max in MeV, the
    ref_* columns, norm, norm_err, norm_errp, norm_errn, norm_ul, ts, loglike, the scans
    as per-row arrays, and the rest of the flux families; header UL_CONF), MODEL_FLUX
    (the global fit's bowtie) and PARAMS (the source's parameters and covariance)."""
    from astropy.io import fits

    cfg = json.dumps(config or {}, sort_keys=True, default=str)

    def col(name, var, unit=None, fmt="D"):
        a = np.asarray(ds[var].values, dtype=np.float64)
        if a.ndim == 2:
            return fits.Column(name=name, format=f"{a.shape[1]}D", array=a, unit=unit)
        return fits.Column(name=name, format=fmt, array=a, unit=unit)

    dnde_u, flux_u, eflux_u = "ph / (MeV cm2 s)", "ph / (cm2 s)", "MeV / (cm2 s)"
    cols = [col("e_min", "e_min", "MeV"), col("e_ref", "e_ref", "MeV"),
            col("e_max", "e_max", "MeV"),
            col("ref_dnde_e_min", "ref_dnde_e_min", dnde_u),
            col("ref_dnde_e_max", "ref_dnde_e_max", dnde_u),
            col("ref_dnde", "ref_dnde", dnde_u), col("ref_flux", "ref_flux", flux_u),
            col("ref_eflux", "ref_eflux", eflux_u), col("ref_npred", "ref_npred"),
            col("norm", "norm"), col("norm_err", "norm_err"),
            col("norm_errp", "norm_err_hi"), col("norm_errn", "norm_err_lo"),
            col("norm_ul", "norm_ul"), col("ts", "ts"), col("loglike", "loglike"),
            col("norm_scan", "norm_scan"), col("dloglike_scan", "dloglike_scan"),
            # beyond Fermipy's columns (read by name, so they do not disturb its readers)
            col("norm_ul95", "norm_ul95"), col("ref_e2dnde", "ref_e2dnde", eflux_u),
            col("npred", "npred"), col("index", "index"),
            fits.Column(name="fit_quality", format="J",
                        array=np.asarray(ds["fit_quality"].values, dtype=np.int32)),
            fits.Column(name="fit_status", format="J",
                        array=np.asarray(ds["fit_status"].values, dtype=np.int32))]
    sed_hdu = fits.BinTableHDU.from_columns(cols, name="SED")
    sed_hdu.header["UL_CONF"] = float(ds.attrs["ul_confidence"])
    sed_hdu.header["SRCNAME"] = str(ds.attrs["name"])[:60]
    e = np.asarray(ds["model_energy"].values, dtype=np.float64)
    mcols = [fits.Column(name="energy", format="D", array=e, unit="MeV")]
    for k in ("dnde", "dnde_lo", "dnde_hi", "dnde_err"):
        mcols.append(fits.Column(name=k, format="D", unit=dnde_u,
                                 array=np.asarray(ds[f"model_flux_{k}"].values, float)))
    mcols.append(fits.Column(name="dnde_ferr", format="D",
                             array=np.asarray(ds["model_flux_dnde_ferr"].values, float)))
    model_hdu = fits.BinTableHDU.from_columns(mcols, name="MODEL_FLUX")
    names = [str(v) for v in ds["param"].values]
    npar = len(names)
    cov = np.asarray(ds["param_covariance"].values, dtype=np.float64).reshape(npar, npar)
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(np.outer(err, err) > 0, cov / np.outer(err, err), 0.0)
    pcols = [fits.Column(name="name", format="A32", array=np.array(names)),
             fits.Column(name="value", format="D",
                         array=np.asarray(ds["param_values"].values, float)),
             fits.Column(name="error", format="D",
                         array=np.asarray(ds["param_errors"].values, float)),
             fits.Column(name="covariance", format=f"{max(npar, 1)}D", dim=f"({npar})",
                         array=cov),
             fits.Column(name="correlation", format=f"{max(npar, 1)}D", dim=f"({npar})",
                         array=corr)]
    params_hdu = fits.BinTableHDU.from_columns(pcols, name="PARAMS")
    primary = fits.PrimaryHDU()
    hdus = [primary, sed_hdu, model_hdu, params_hdu]
    for h in hdus:
        h.header["CONFIG"] = cfg
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return Path(path)


def read_sed_fits(path) -> dict:
    """The numbers of a SED file as arrays (columns of SED, MODEL_FLUX, PARAMS; UL_CONF
    and CONFIG)."""
    from astropy.io import fits

    with fits.open(path) as h:
        out = {"SED": {c.name: np.array(h["SED"].data[c.name]) for c in h["SED"].columns},
               "MODEL_FLUX": {c.name: np.array(h["MODEL_FLUX"].data[c.name])
                              for c in h["MODEL_FLUX"].columns},
               "PARAMS": {c.name: np.array(h["PARAMS"].data[c.name])
                          for c in h["PARAMS"].columns},
               "UL_CONF": float(h["SED"].header["UL_CONF"]),
               "CONFIG": json.loads(h["SED"].header["CONFIG"])}
    return out
