"""The weighted-photon light curve of a run (:mod:`fermixr.estimators.wtlike`): its inputs
gathered from the run (each component's selected events, the GTIs, the FT2 files, the IRF
set of each component's event types, the zenith cut), its FITS table and its plot.

Everything a bad call could get wrong is refused before the weights or the exposure are
computed: an unknown source, no FT2 file, cells outside the FT2 span, unknown options.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError, RecipeError

WTLIKE_KEYS = ("binsz", "nbins", "time_bins", "interpolate", "blocks",
               "bayesian_blocks_prior", "p0", "psf_containment")
OUT_KEYS = ("write_fits", "make_plots", "prefix")


def gather_inputs(state, recipe, outdir):
    """(events per component, GTI start, GTI stop, FT2 files, IRF sets, zmax per
    component) of the run in ``outdir``."""
    from ..irf.irfset import load_irfs
    from .plan import _files
    from .run import open_run
    from .state import component_suffix

    n = len(recipe.components)
    scfile = recipe.options[0].data.scfile
    if not scfile:
        raise InputFileError("weighted_lightcurve: no spacecraft (FT2) file (data.scfile); "
                             "the cells' exposure comes from its rows: give data.scfile")
    ft2 = _files(scfile, "data.scfile")
    run = open_run(outdir, dask=False)
    events, irfs, zmax = [], [], []
    gti = None
    for i, opts in enumerate(recipe.options):
        sfx = component_suffix(i, n)
        if f"events{sfx}" not in run:
            raise RecipeError(f"the run {str(outdir)!r} has no events{sfx}: call setup() "
                              "first")
        ev = run[f"events{sfx}"]
        events.append({k: np.asarray(ev[k].values) for k in ("TIME", "ENERGY", "RA", "DEC")})
        if gti is None:
            g = run[f"gti{sfx}"]
            gti = (np.asarray(g["START"].values), np.asarray(g["STOP"].values))
        irfs.append(load_irfs(opts.gtlike.irfs, opts.selection.evtype, opts.data.caldb))
        zmax.append(opts.ltcube.zmax if opts.ltcube.zmax is not None else
                    opts.selection.zmax)
    return events, gti[0], gti[1], ft2, irfs, zmax


def precheck_cells(recipe, outdir, opts) -> None:
    """Refuse a recipe without FT2 and cells outside the FT2 span from the run's GTIs and
    the FT2 headers alone."""
    from ..estimators.lightcurve import time_bins
    from ..estimators.wtlike import _merge, check_cells_in_ft2, ft2_span
    from .plan import _files
    from .run import open_run
    from .state import component_suffix

    scfile = recipe.options[0].data.scfile
    if not scfile:
        raise InputFileError("weighted_lightcurve: no spacecraft (FT2) file (data.scfile); "
                             "the cells' exposure comes from its rows: give data.scfile")
    run = open_run(outdir, dask=False)
    sfx = component_suffix(0, len(recipe.components))
    if f"gti{sfx}" not in run:
        raise RecipeError(f"the run {str(outdir)!r} has no gti{sfx}: call setup() first")
    g = run[f"gti{sfx}"]
    gs, ge = _merge(g["START"].values, g["STOP"].values)
    cells = time_bins(float(gs[0]), float(ge[-1]), binsz=opts.get("binsz", 86400.0),
                      nbins=opts.get("nbins"), time_bins=opts.get("time_bins"))
    check_cells_in_ft2(cells, ft2_span(_files(scfile, "data.scfile")))


def run_weighted_lightcurve(state, recipe, outdir, name, options: dict, timing=None):
    """(Dataset, written paths) of the weighted-photon light curve of ``name``."""
    from ..estimators.wtlike import _source, weighted_lightcurve

    opts = dict(options)
    unknown = set(opts) - set(WTLIKE_KEYS) - set(OUT_KEYS)
    if unknown:
        raise RecipeError(f"weighted_lightcurve: unknown option(s) {sorted(unknown)}; "
                          f"known: {', '.join(WTLIKE_KEYS + OUT_KEYS)}")
    src = _source(state, name)              # an unknown source stops here, before any work
    precheck_cells(recipe, outdir, opts)    # no FT2, or cells outside it: before any work
    events, gs, ge, ft2, irfs, zmax = gather_inputs(state, recipe, outdir)
    est = {k: opts[k] for k in WTLIKE_KEYS if k in opts}
    ds = weighted_lightcurve(state, src.name, events, ft2, gs, ge, irf_sets=irfs,
                             zmax=zmax, timing=timing, **est)
    paths = {}
    prefix = opts.get("prefix") or ""
    stem = f"{prefix + '_' if prefix else ''}{src.name.lower().replace(' ', '_')}_wtlike"
    out = Path(outdir)
    if opts.get("write_fits", True):
        paths["fits"] = write_fits(ds, out / f"{stem}.fits")
    if opts.get("make_plots", False):
        from ..plot.roi import save_figure
        from ..plot.wtlike import wtlike_figure

        paths["png"] = save_figure(wtlike_figure(ds), out / f"{stem}.png")
    return ds, paths


def write_fits(ds, path) -> Path:
    """A FITS table: one row per cell (LIGHTCURVE HDU), one per block (BLOCKS) when
    computed; attrs as header cards."""
    import os

    from astropy.io import fits

    path = Path(path)

    def table(dim, extname):
        cols = []
        for k, v in ds.data_vars.items():
            if v.dims != (dim,):
                continue
            a = v.values
            if a.dtype.kind in "US":
                cols.append(fits.Column(name=k.upper(), format=f"{max(a.dtype.itemsize // 4, 1)}A",
                                        array=a.astype(str)))
            elif a.dtype.kind in "iu":
                cols.append(fits.Column(name=k.upper(), format="K", array=a.astype(np.int64)))
            else:
                cols.append(fits.Column(name=k.upper(), format="D", array=a.astype(float),
                                        unit=v.attrs.get("units")))
        hdu = fits.BinTableHDU.from_columns(cols, name=extname)
        return hdu

    hdus = [fits.PrimaryHDU(), table("time", "LIGHTCURVE")]
    if "block" in ds.dims:
        hdus.append(table("block", "BLOCKS"))
    for k, v in ds.attrs.items():
        if isinstance(v, (int, float, str, np.integer, np.floating)):
            key = k.upper()[:8] if len(k) <= 8 else f"HIERARCH {k.upper()}"
            hdus[1].header[key] = v
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fits.HDUList(hdus).writeto(tmp, overwrite=True)
    os.replace(tmp, path)
    return path
