"""Checks of a recipe against its data that need no computation.

Before anything is computed, ``fermixr run`` (:func:`check_data`) refuses a selection wider
than the cuts the event file records (DSS keywords: energy, circle, time, zenith, class,
type), an event file without events and products larger than the machine's memory, and
warns when the IRF class is not the events' class.  ``fermixr validate``
(:func:`check_recipe`) adds what reads whole files: data files read to their end, model
files parse, IRFs resolve, steps are available, the FT2 rows cover the GTIs (the ``gti``
step checks it again when it reads the FT2)."""

from __future__ import annotations

import warnings

import numpy as np


class DataWarning(UserWarning):
    """The recipe and its data disagree in a way that changes numbers but may be meant."""


def check_data(recipe, *, ft2_coverage: bool = False, sizes: bool = True,
               headers: bool = True) -> None:
    """Raise :class:`~fermixr.errors.SelectionError` for a selection wider than the event
    file's own cuts (and, with ``ft2_coverage``, for GTIs the FT2 does not cover); warn
    when the IRF class is not the events' class.  With ``headers``, an event file without
    events is refused (:class:`~fermixr.errors.FileFormatError`); with ``sizes``, products
    that need more than the machine's memory (:class:`~fermixr.errors.RecipeError`, with
    the estimate).  These are the checks ``run`` makes before any work: they read headers
    only."""
    from ..errors import FileFormatError, RecipeError
    from ..geom import EnergyAxis, geom_from_config
    from ..io.dss import dss_cuts
    from ..select.cuts import check_selection_within, irf_class_mismatch
    from .plan import _energy_range, _files, roi_center

    for i, opts in enumerate(recipe.options):
        sel, data = opts.selection, opts.data
        pre = "" if len(recipe.options) == 1 else f"components[{i}]."
        if sizes:
            too_big = check_sizes(recipe, opts, pre)
            if too_big:
                raise RecipeError(too_big[0])
        evfiles = _files(data.evfile, "data.evfile")
        if not evfiles:
            continue
        if headers:
            for f in evfiles:
                msg = _zero_events(f, pre + "data.evfile")
                if msg:
                    raise FileFormatError(msg)
        where = "selection" if len(recipe.options) == 1 else f"components[{i}].selection"
        ra, dec = roi_center(opts)
        emin, emax = _energy_range(sel)
        axis = EnergyAxis.from_bounds(emin, emax, binsperdec=opts.binning.binsperdec,
                                      enumbins=opts.binning.enumbins)
        geom = geom_from_config(opts.binning.to_dict(), (ra, dec))
        try:
            cuts = dss_cuts(evfiles[0])
        except FileFormatError:
            # a truncated gzip file reads as one without EVENTS: say what it is
            msg = _fits_problem(evfiles[0], pre + "data.evfile") if headers else None
            if msg:
                raise FileFormatError(msg) from None
            raise
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # the IRF warning is issued below, once
            check_selection_within(
                cuts, emin=emin, emax=emax, tmin=sel.tmin, tmax=sel.tmax,
                ra=ra, dec=dec, radius=sel.radius, zmax=sel.zmax, evclass=sel.evclass,
                evtype=sel.evtype, geom=geom, energy_edges=axis.edges, what=where)
        msg = irf_class_mismatch(opts.gtlike.irfs, sel.evclass)
        if msg:
            warnings.warn(f"gtlike.irfs: {msg}", DataWarning, stacklevel=2)
        if ft2_coverage and data.scfile and not data.ltcube:
            from ..io.ft1 import read_ft1_gti
            from ..select.gti import check_ft2_files_cover, make_gti

            s, e = make_gti(read_ft1_gti(evfiles), tmin=sel.tmin, tmax=sel.tmax)
            check_ft2_files_cover(s, e, _files(data.scfile, "data.scfile"))


# ---------------------------------------------------------------------------------------
# everything ``fermixr validate`` checks without computing
# ---------------------------------------------------------------------------------------


def check_recipe(recipe) -> list[str]:
    """Every problem of a loaded recipe that can be found without computing anything, one
    line each naming the key path or the file: the steps are available, the data files
    exist and open (FT1 headers and events, FT2 tables; a gzip file is read to its end),
    the IRFs resolve through the CALDB, the model files exist and parse (XML models,
    catalogs, FileFunction tables, map cubes and templates), the products fit in memory,
    the selection lies within the event file's cuts and the FT2 covers the GTIs.  Warnings
    (:class:`DataWarning`) are issued, not returned."""
    from ..errors import FermixrError

    problems: list[str] = []

    def add(msg):
        if msg not in problems:
            problems.append(msg)

    from .plan import _energy_range, roi_center

    problems += check_steps(recipe)
    data_ok = True
    for i, opts in enumerate(recipe.options):
        pre = "" if len(recipe.options) == 1 else f"components[{i}]."
        bad = check_data_files(opts, pre)
        data_ok = data_ok and not bad
        for m in bad:
            add(m)
        for m in check_irfs(opts, pre):
            add(m)
        basics = []
        for what in (lambda: roi_center(opts), lambda: _energy_range(opts.selection)):
            try:
                what()
            except FermixrError as exc:
                msg = str(exc)
                basics.append(msg if not pre or msg.startswith(pre) else pre + msg)
        for m in basics:
            add(m)
        if basics:              # the model and the sizes need the ROI and energies
            data_ok = False
            continue
        model_msgs, n_sources = check_model(opts, pre)
        for m in model_msgs:
            add(m)
        for m in check_sizes(recipe, opts, pre, n_sources=n_sources):
            add(m)
    if data_ok:
        try:
            check_data(recipe, ft2_coverage=True, sizes=False, headers=False)
        except (FermixrError, OSError) as exc:
            add(str(exc))
    if not problems:
        # whatever else the planner refuses (it reads nothing the checks above did not)
        from .plan import plan_tasks

        try:
            plan_tasks(recipe)
        except (FermixrError, OSError) as exc:
            add(str(exc))
    return problems


def available_steps() -> set[str]:
    """The step names a recipe can run: the data-preparation expansions of the planner and
    the registered analysis steps."""
    from .analysis_steps import ANALYSIS_STEPS
    from .plan import _EXPANSION
    from .steps import known_steps

    return set(_EXPANSION) | (set(ANALYSIS_STEPS) & set(known_steps()))


def check_steps(recipe) -> list[str]:
    """One line per step of the recipe this version cannot run."""
    avail = available_steps()
    return [f"steps[{i}]: {name!r} is not available in this version of fermixr yet; "
            f"available: {', '.join(sorted(avail))}"
            for i, (name, _p) in enumerate(recipe.steps) if name not in avail]


def _fits_problem(path, what: str, *, need: tuple[str, ...] = ()) -> str | None:
    """None when ``path`` reads as FITS to its end (with the extensions ``need``), else the
    line saying why not."""
    import gzip
    import zlib
    from pathlib import Path

    from astropy.io import fits

    p = Path(path)
    if not p.is_file():
        return f"{what}: file {str(p)!r} does not exist"
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rb") as f:     # a truncated download fails only at its end
                while f.read(1 << 22):
                    pass
        ragged = p.suffix != ".gz" and p.stat().st_size % 2880 != 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(p, memmap=p.suffix != ".gz") as hdul:
                names = [h.name for h in hdul]
                missing = [n for n in need if n not in names]
                if missing and ragged:
                    return (f"{what}: {str(p)!r} is truncated: it ends before its "
                            f"{'/'.join(missing)} extension, {p.stat().st_size} bytes is "
                            "not a whole number of 2880-byte FITS blocks")
                if missing:
                    return (f"{what}: {str(p)!r} has no {'/'.join(missing)} extension "
                            f"(HDUs: {', '.join(names)})")
                if p.suffix != ".gz":
                    info = hdul.fileinfo(len(hdul) - 1)
                    end = info["datLoc"] + info["datSpan"]
                    size = p.stat().st_size
                    if size < end:
                        return (f"{what}: {str(p)!r} is truncated: {size} bytes, its headers "
                                f"describe {end}")
    except EOFError as exc:
        return f"{what}: {str(p)!r} is truncated ({exc}); download it again"
    except (OSError, zlib.error, ValueError) as exc:
        return f"{what}: {str(p)!r} cannot be read as FITS: {exc}"
    return None


def check_data_files(opts, pre: str = "") -> list[str]:
    """The data files exist and read to their end: FT1 (EVENTS with at least one event,
    GTI), FT2 (a spacecraft table), and the given livetime cube, exposure cube and source
    map files."""
    from ..errors import FermixrError
    from ..io.filelist import resolve_files
    from .resolved import thaw

    out: list[str] = []
    data, gtl = opts.data, opts.gtlike
    specs = [("data.evfile", data.evfile, ("EVENTS", "GTI")), ("data.scfile", data.scfile, ()),
             ("data.ltcube", data.ltcube, ()), ("gtlike.bexpmap", gtl.bexpmap, ()),
             ("gtlike.srcmap", gtl.srcmap, ())]
    for key, spec, need in specs:
        if not spec:
            continue
        try:
            paths = resolve_files(thaw(spec), what=pre + key)
        except (FermixrError, OSError) as exc:
            out.append(str(exc))
            continue
        for p in paths:
            msg = _fits_problem(p, pre + key, need=need)
            if msg is None and key == "data.evfile":
                msg = _zero_events(p, pre + key)
            if msg is None and key == "data.scfile":
                from ..io.ft2 import ft2_info

                try:
                    if ft2_info(p)["nrows"] == 0:
                        msg = f"{pre}{key}: {str(p)!r} holds no spacecraft rows"
                except (FermixrError, OSError) as exc:
                    msg = f"{pre}{key}: {exc}"
            if msg:
                out.append(msg)
    return out


def _zero_events(path, what: str) -> str | None:
    """The line refusing an FT1 file without events (NAXIS2 = 0 in EVENTS), else None."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as h:
            n = int(h["EVENTS"].header.get("NAXIS2", 0))
    except (OSError, KeyError, ValueError):
        return None                         # the readers say what is wrong with it
    if n == 0:
        return (f"{what}: {str(path)!r} holds no events (NAXIS2 = 0 in EVENTS); remove it "
                "from the file list or give the file the selection was made from")
    return None


def check_irfs(opts, pre: str = "") -> list[str]:
    """The IRF name resolves through the CALDB index for the selected event types."""
    from ..errors import FermixrError
    from ..io.caldb import find_irf_files

    try:
        find_irf_files(opts.gtlike.irfs, opts.selection.evtype, caldb=opts.data.caldb)
    except (FermixrError, OSError) as exc:
        return [f"{pre}gtlike.irfs: {exc}"]
    return []


def check_model(opts, pre: str = "") -> tuple[list[str], int]:
    """(problems, number of sources): the sky model builds as the planner builds it (XML
    models and catalogs read), and every file a source names parses: FileFunction tables,
    map cubes (header and ENERGIES table; the planes are not read) and spatial templates."""
    from ..errors import FermixrError
    from .plan import sky_model

    try:
        model = sky_model(opts)
    except (FermixrError, OSError) as exc:
        msg = str(exc)
        if not msg.startswith(("model", "components")):
            key = "model.catalogs" if "catalog" in msg else "model"
            msg = f"{pre}{key}: {msg}"
        return [msg], 0
    out: list[str] = []
    seen: set = set()
    for src in model:
        for kind, path in (("FileFunction", src.spectrum_file),
                           (src.spatial_model, src.spatial_file)):
            if not path or (kind, str(path)) in seen:
                continue
            seen.add((kind, str(path)))
            where = f"{pre}model: source {src.name!r} {kind}"
            try:
                if kind == "FileFunction":
                    from ..model.spectral import FileFunction

                    FileFunction.from_file(path)
                elif kind == "MapCubeFunction":
                    msg = _mapcube_problem(path, where)
                    if msg:
                        out.append(msg)
                else:
                    from ..io.mapcube import read_template

                    read_template(path, what=where)
            except (FermixrError, OSError, ValueError) as exc:
                msg = str(exc)
                out.append(msg if src.name in msg else f"{where}: {msg}")
    return out, len(model)


def _mapcube_problem(path, what: str) -> str | None:
    """A map cube's header and ENERGIES table agree (without reading its planes)."""
    from astropy.io import fits

    msg = _fits_problem(path, what, need=("ENERGIES",))
    if msg:
        return msg
    with fits.open(path) as h:
        hdr = h[0].header
        naxis = int(hdr.get("NAXIS", 0))
        nplanes = int(hdr.get("NAXIS3", 1)) if naxis >= 3 else 1
        if naxis < 2:
            return f"{what}: {str(path)!r} has no image in its primary HDU"
        n_e = len(h["ENERGIES"].data)
    if n_e != nplanes:
        return f"{what}: {str(path)!r} has {nplanes} image planes but {n_e} ENERGIES rows"
    return None


# ---------------------------------------------------------------------------------------
# sizes against memory
# ---------------------------------------------------------------------------------------


def memory_bytes() -> int | None:
    """The machine's physical memory in bytes (psutil, else sysconf, else /proc/meminfo);
    ``FERMIXR_MEMORY_BYTES`` overrides it."""
    import os

    env = os.environ.get("FERMIXR_MEMORY_BYTES")
    if env:
        return int(float(env))
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n} B"  # pragma: no cover


def _wanted(recipe) -> set[str]:
    from .analysis_steps import ANALYSIS_STEPS
    from .plan import _EXPANSION

    out: set[str] = set()
    for name, _p in recipe.steps:
        out.update(_EXPANSION.get("setup" if name in ANALYSIS_STEPS else name, ()))
    return out


def size_estimates(opts, n_sources: int) -> dict:
    """Bytes of the counts cube (n_pix x n_ebins x 8), the source maps (n_sources x
    n_nodes x n_pix x 8; nodes: the energy edges, extended by edisp_bins on each side
    with energy dispersion) and the livetime cube (12 nside^2 x cos(theta) bins x phi bins
    x 2 (livetime and its weighted twin) x 8), with the numbers they are made of."""
    from ..geom import EnergyAxis, geom_from_config
    from ..io.ltcube import nbins_from_dcostheta, nside_from_binsz
    from .plan import _energy_range, roi_center

    emin, emax = _energy_range(opts.selection)
    axis = EnergyAxis.from_bounds(emin, emax, binsperdec=opts.binning.binsperdec,
                                  enumbins=opts.binning.enumbins)
    geom = geom_from_config(opts.binning.to_dict(), roi_center(opts))
    npix = int(np.prod(geom.npix))                  # (nx, ny) of a WCS map, n of HEALPix
    nebins = len(axis.edges) - 1
    nodes = nebins + 1 + (2 * int(opts.gtlike.edisp_bins) if opts.gtlike.edisp else 0)
    lt = opts.ltcube
    nside = nside_from_binsz(lt.binsz)
    ncos = nbins_from_dcostheta(lt.dcostheta)
    nphi = max(int(lt.phibins or 0), 1)
    return {
        "npix": npix, "nebins": nebins, "nodes": nodes, "n_sources": n_sources,
        "counts": npix * nebins * 8,
        "srcmaps": n_sources * nodes * npix * 8,
        "ltcube": 12 * nside * nside * ncos * nphi * 2 * 8,
        "nside": nside, "ncos": ncos, "nphi": nphi,
    }


def check_sizes(recipe, opts, pre: str = "", *, n_sources: int | None = None,
                memory: int | None = None) -> list[str]:
    """Refuse (one line with the estimate) products the recipe asks for that need more
    than the machine's memory; warn (:class:`DataWarning`) above half of it."""
    from ..errors import FermixrError

    wanted = _wanted(recipe)
    if not wanted:
        return []
    memory = memory if memory is not None else memory_bytes()
    if not memory:
        return []
    if n_sources is None:
        from .plan import sky_model

        try:
            n_sources = len(sky_model(opts)) if "srcmaps" in wanted else 0
        except (FermixrError, OSError):
            n_sources = 0
    try:
        est = size_estimates(opts, n_sources)
    except (FermixrError, OSError, ValueError) as exc:
        return [f"{pre}binning: {exc}"]
    mem = _fmt_bytes(memory)
    items = []
    if "counts" in wanted:
        items.append(("binning", "the counts cube needs", est["counts"],
                      f"{est['npix']} pixels x {est['nebins']} energy bins x 8 bytes",
                      "a larger binning.binsz, a smaller binning.roiwidth or fewer "
                      "binning.binsperdec"))
    if "srcmaps" in wanted and n_sources:
        items.append(("binning", "the source maps need", est["srcmaps"],
                      f"{n_sources} sources x {est['nodes']} energy nodes x {est['npix']} "
                      "pixels x 8 bytes",
                      "a larger binning.binsz, a smaller binning.roiwidth, fewer "
                      "binning.binsperdec or fewer sources"))
    if "ltcube" in wanted and not opts.data.ltcube:
        items.append(("ltcube", "the livetime cube needs", est["ltcube"],
                      f"nside {est['nside']} x {est['ncos']} cos(theta) bins x "
                      f"{est['nphi']} phi bins x 2 x 8 bytes",
                      "a larger ltcube.binsz or dcostheta, or fewer ltcube.phibins"))
    out = []
    for key, what, nbytes, how, fix in items:
        if nbytes > memory:
            out.append(f"{pre}{key}: {what} {_fmt_bytes(nbytes)} ({how}), more than "
                       f"this machine's memory ({mem}); use {fix}")
        elif nbytes > memory / 2:
            warnings.warn(f"{pre}{key}: {what} {_fmt_bytes(nbytes)} ({how}), more than "
                          f"half of this machine's memory ({mem})", DataWarning, stacklevel=2)
    return out
