"""Files of a residual significance map beside the run, as Fermipy writes them:
``<prefix>_residmap.fits`` (primary HDU the SIGMA map, then EXCESS, DATA and MODEL;
HEALPix maps as an empty primary then one table per map, columns PIX and VALUE, with
the HEALPix header cards), ``<prefix>_residmap.npy`` (the result dictionary) and, with
``make_plots``, ``<prefix>_residmap_sigma.png``.  Each is written through a temporary
sibling and one rename; every FITS header carries the options as JSON in CONFIG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .roi_output import save_npy_atomic, write_atomic

__all__ = ["residmap_files", "write_residmap_fits", "write_residmap_outputs",
           "residmap_dict", "residmap_outputs"]

MAPS = ("sigma", "excess", "data", "model")


def residmap_files(outdir, prefix: str = "", make_plots=False, write_fits=True,
                   write_npy=True) -> dict:
    stem = f"{prefix}_residmap" if prefix else "residmap"
    out = {}
    if write_fits:
        out["fits"] = Path(outdir) / f"{stem}.fits"
    if write_npy:
        out["npy"] = Path(outdir) / f"{stem}.npy"
    if make_plots:
        out["png"] = Path(outdir) / f"{stem}_sigma.png"
    return out


def residmap_dict(ds, file=None) -> dict:
    """Fermipy's residmap() dictionary from the product: sigma, excess, data, model
    (arrays shaped like the sky grid), name, file, src_dict."""
    out = {k: np.asarray(ds[k].values) for k in MAPS}
    out["name"] = str(ds.attrs["name"])
    out["file"] = None if file is None else str(file)
    out["src_dict"] = json.loads(ds.attrs["src_dict"])
    return out


def write_residmap_fits(ds, geom, path, config: dict | None = None) -> Path:
    """SIGMA (primary), EXCESS, DATA, MODEL on the product's sky grid."""
    from astropy.io import fits

    from ..geom.wcs import WcsGeom

    cfg = json.dumps(config or {}, sort_keys=True, default=str)

    def write(tmp):
        if isinstance(geom, WcsGeom):
            hdr = fits.Header()
            for k, v in geom.to_header().items():
                if k not in ("NAXIS", "NAXIS1", "NAXIS2"):
                    hdr[k] = v
            hdus = []
            for i, k in enumerate(MAPS):
                h = hdr.copy()
                h["EXTNAME"] = k.upper()
                h["BUNIT"] = ds[k].attrs.get("units", "")
                h["CONFIG"] = cfg
                data = np.asarray(ds[k].values, dtype=np.float64).reshape(geom.shape)
                hdus.append(fits.PrimaryHDU(data, header=h) if i == 0
                            else fits.ImageHDU(data, header=h))
        else:
            p = fits.PrimaryHDU()
            p.header["CONFIG"] = cfg
            hdus = [p]
            for k in MAPS:
                cols = [fits.Column("PIX", "K", array=np.asarray(geom.pix, dtype=np.int64)),
                        fits.Column("VALUE", "D", array=np.ravel(ds[k].values))]
                t = fits.BinTableHDU.from_columns(cols, name=k.upper())
                t.header["PIXTYPE"] = "HEALPIX"
                t.header["ORDERING"] = geom.ordering
                t.header["NSIDE"] = int(geom.nside)
                t.header["COORDSYS"] = "C" if geom.frame == "CEL" else "G"
                t.header["INDXSCHM"] = "EXPLICIT"
                t.header["BUNIT"] = ds[k].attrs.get("units", "")
                t.header["CONFIG"] = cfg
                hdus.append(t)
        fits.HDUList(hdus).writeto(tmp, overwrite=True)

    return write_atomic(Path(path), write)


def write_residmap_outputs(ds, geom, outdir, prefix="", *, config=None, write_fits=True,
                           write_npy=True, make_plots=False, center_radec=None) -> dict:
    """Write the files asked for; returns {kind: path}."""
    files = residmap_files(outdir, prefix, make_plots, write_fits, write_npy)
    Path(outdir).mkdir(parents=True, exist_ok=True)
    out = {}
    if "fits" in files:
        out["fits"] = write_residmap_fits(ds, geom, files["fits"], config)
    if "npy" in files:
        d = residmap_dict(ds, out.get("fits"))
        d["config"] = dict(config or {})
        out["npy"] = save_npy_atomic(files["npy"], d)
    if "png" in files:
        from ..plot import residmap_figure, save_figure

        fig = residmap_figure(geom, ds["sigma"].values, center_radec=center_radec,
                              title=f"residual significance ({ds.attrs['name']})")
        out["png"] = save_figure(fig, files["png"])
    return out


OUTPUT_OPTIONS = ("make_plots", "write_fits", "write_npy")


def residmap_outputs(state, outdir, prefix="", config=None, given=None):
    """Run the residmap estimator on ``state`` with the residmap section of ``config``
    (defaults from the option table where absent) overridden by ``given``, and write the
    files asked for; returns (the product, {kind: path})."""
    from ..errors import EstimatorError
    from ..estimators import get, run
    from . import options as O

    est = get("residmap")
    known = set(est.options) | set(OUTPUT_OPTIONS)
    unknown = sorted(set(given or {}) - known)
    if unknown:
        raise EstimatorError(f"residmap: unknown option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
    opts = {k: opt.default for k, opt in O.SECTIONS["residmap"].items() if not opt.alias_of}
    opts.update({k: v for k, v in dict((config or {}).get("residmap") or {}).items()
                 if k in known})
    opts.update(given or {})
    ds = run("residmap", state, **{k: opts[k] for k in est.options}).dataset
    paths = write_residmap_outputs(
        ds, state.components[0].geom, outdir, prefix or "", config=opts,
        write_fits=bool(opts["write_fits"]), write_npy=bool(opts["write_npy"]),
        make_plots=bool(opts["make_plots"]), center_radec=state.roi_center)
    return ds, paths
