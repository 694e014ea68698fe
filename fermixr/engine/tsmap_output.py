"""The tsmap analysis as the step and the ``Analysis`` method run it: options from the
recipe's ``tsmap`` section with the call's parameters over them, the estimator, Fermipy's
files (``<prefix>_tsmap.fits``: the TS map as primary HDU, then SQRT_TS_MAP, NPRED_MAP,
N_MAP, and after Fermipy's HDUs fermixr's FLUX_MAP, FLUX_ERR_MAP, FLUX_UL95_MAP;
``<prefix>_tsmap.npy``; with ``make_plots`` ``<prefix>_tsmap_sqrt_ts.png``), each written
to a temporary sibling and renamed into place, and Fermipy's result dict.

``map_skydir`` + ``map_size``: the map of the pixels within that box only, a cut-out of
the ROI grid (Fermipy's); the estimator's ``disk`` and ``pixel_mask`` are accepted as call
parameters too (``Analysis.tsmap(disk=[lon, lat, r])``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import EstimatorError
from .roi_output import kept_files, save_npy_atomic, write_atomic

# the step's own parameters (besides the tsmap section's options)
STEP_EXTRAS = ("prefix", "map_skydir", "map_size", "threshold", "outfile")
_EST_KEYS = ("model", "exclude", "multithread", "nthread", "max_kernel_radius",
             "loge_bounds", "map_skydir", "map_size", "disk", "pixel_mask", "flux_ul",
             "sum_over_energy")


def tsmap_options(section: dict, params: dict) -> dict:
    """The section's options with ``params`` over them; unknown names are refused."""
    opts = dict(section)
    opts.pop("erange", None)
    for k in ("prefix", "map_skydir", "threshold", "outfile"):
        opts.setdefault(k, None)
    opts.setdefault("map_size", 1.0)
    opts.setdefault("disk", None)
    opts.setdefault("pixel_mask", None)
    opts.setdefault("flux_ul", True)
    opts.setdefault("sum_over_energy", False)
    for k, v in params.items():
        if k == "erange":
            k = "loge_bounds"
        if k not in opts:
            raise EstimatorError(f"tsmap: unknown option {k!r}; known: "
                                 f"{', '.join(sorted(opts))}")
        opts[k] = v
    if params.get("threshold") is not None:
        import warnings

        from .recipe import OptionWithoutEffectWarning

        warnings.warn(f"tsmap.threshold: set to {params['threshold']!r}, accepted without "
                      "effect: the kernel is cut at max_kernel_radius, never by a fraction "
                      "of its peak (every kernel pixel counts)", OptionWithoutEffectWarning,
                      stacklevel=2)
    return opts


def tsmap_files(outdir, opts: dict, make_plots: bool) -> dict:
    """Fermipy's names: ``<prefix>_tsmap.fits`` (``tsmap.fits`` without a prefix), or
    ``outfile``; the .npy and the plot beside it."""
    stem = opts.get("outfile") or "_".join(p for p in (opts.get("prefix") or "", "tsmap")
                                           if p)
    stem = str(stem)[:-5] if str(stem).endswith(".fits") else str(stem)
    fits_path = Path(outdir) / f"{stem}.fits"
    files = {"fits": fits_path, "npy": fits_path.with_suffix(".npy")}
    if make_plots:
        files["png"] = fits_path.with_name(fits_path.stem + "_sqrt_ts.png")
    return files


def tsmap_written(section: dict, params: dict, outdir) -> dict:
    """The files a tsmap call with these options writes, by kind."""
    opts = tsmap_options(section, params)
    return kept_files(tsmap_files(outdir, opts, bool(opts.get("make_plots"))), opts)


def run_tsmap(state, section: dict, outdir, params: dict):
    """(Dataset, {kind: path written}) of a TS map with the section ``section`` and the
    call's ``params`` over it; files as the options say."""
    from ..estimators.tsmap import tsmap

    opts = tsmap_options(section, params)
    ds = tsmap(state, **{k: opts[k] for k in _EST_KEYS}).dataset
    if opts.get("prefix"):
        ds.attrs["name"] = f"{opts['prefix']}_{ds.attrs['name']}"
    files = tsmap_files(outdir, opts, bool(opts.get("make_plots")))
    paths = {}
    if opts.get("write_fits", True):
        paths["fits"] = write_atomic(files["fits"], lambda tmp: write_tsmap_fits(ds, tmp))
    if opts.get("write_npy", True):
        doc = tsmap_dict(ds, str(files["fits"]))
        paths["npy"] = save_npy_atomic(files["npy"], doc)
    if opts.get("make_plots"):
        from ..plot.roi import save_figure
        from ..plot.tsmap import tsmap_figure

        paths["png"] = save_figure(tsmap_figure(ds), files["png"])
    return ds, paths


def tsmap_dict(ds, file=None) -> dict:
    """Fermipy's tsmap() dict: ts, sqrt_ts, npred, amplitude (arrays on the sky grid),
    name, file, src_dict (plus flux, flux_err, flux_ul95 and the Dataset)."""
    out = {k: np.asarray(ds[k].values) for k in ("ts", "sqrt_ts", "npred", "amplitude",
                                                  "flux", "flux_err", "flux_ul95")
           if k in ds}
    out.update(name=ds.attrs["name"], file=file,
               src_dict=json.loads(ds.attrs["src_dict"]), dataset=ds)
    return out


_HDUS = (("ts", None), ("sqrt_ts", "SQRT_TS_MAP"), ("npred", "NPRED_MAP"),
         ("amplitude", "N_MAP"), ("flux", "FLUX_MAP"), ("flux_err", "FLUX_ERR_MAP"),
         ("flux_ul95", "FLUX_UL95_MAP"))


def write_tsmap_fits(ds, path) -> Path:
    """Fermipy's TS map file: WCS images (primary TS, then SQRT_TS_MAP, NPRED_MAP, N_MAP)
    with the grid's header; on HEALPix an empty primary and one explicit-index HEALPix
    table per map (TS_MAP, SQRT_TS_MAP, NPRED_MAP, N_MAP).  After Fermipy's HDUs, those
    of the flux maps the dataset has (FLUX_MAP, FLUX_ERR_MAP, FLUX_UL95_MAP, cm-2 s-1,
    with the energy range in EMIN/EMAX).  Pixels outside a region are NaN."""
    from astropy.io import fits

    from ..geom.coords import geom_from_attrs
    from ..geom.wcs import WcsGeom

    geom = geom_from_attrs(ds.attrs)
    hdus = []
    if isinstance(geom, WcsGeom):
        hdr = fits.Header({k: v for k, v in geom.to_header().items()
                           if not k.startswith("NAXIS")})
        for var, ext in _HDUS:
            if var not in ds:
                continue
            data = np.asarray(ds[var].values, dtype=np.float64)
            if ext is None:
                hdus.append(fits.PrimaryHDU(data, header=hdr))
            else:
                h = fits.ImageHDU(data, header=hdr, name=ext)
                hdus.append(h)
    else:
        hdus.append(fits.PrimaryHDU())
        for var, ext in _HDUS:
            if var not in ds:
                continue
            cols = [fits.Column("PIX", "K", array=np.asarray(geom.pix, dtype=np.int64)),
                    fits.Column("CHANNEL1", "D",
                                array=np.asarray(ds[var].values, dtype=np.float64))]
            h = fits.BinTableHDU.from_columns(cols, name=ext or "TS_MAP")
            h.header.update(PIXTYPE="HEALPIX", ORDERING=geom.ordering, NSIDE=geom.nside,
                            INDXSCHM="EXPLICIT", COORDSYS="C" if geom.frame == "CEL"
                            else "G", HPX_CONV="FGST_SRCMAP_SPARSE")
            hdus.append(h)
    for h in hdus:
        h.header["SRCNAME"] = (str(ds.attrs["name"])[:60], "TS map of this test source")
        if h.name.startswith("FLUX"):
            h.header["BUNIT"] = "cm-2 s-1"
            h.header["EMIN"] = (float(ds.attrs["emin"]), "MeV, energy range of the flux")
            h.header["EMAX"] = (float(ds.attrs["emax"]), "MeV")
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return Path(path)
