"""Command line: ``fermixr run | validate | ls | show | report | export`` and Fermipy's
file tools ``coadd | vstack | healview | collect-sources | cluster-sources``.

Exit codes: 0 success, 2 bad input (recipe, options, input files, an output folder that
cannot be written), 1 failure while computing (a full disk included), 130 interrupted
(Ctrl-C).  Errors are printed as one clear line, without a traceback (``--debug`` keeps
it).
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import threading
from pathlib import Path

from .errors import FermixrError

# bad input (recipe, options, input files, model values): every fermixr error that is also
# a ValueError, a LookupError or a FileNotFoundError; other fermixr errors (StepError,
# StoreError) and anything else are failures while computing
BAD_INPUT_BASES = (ValueError, LookupError, FileNotFoundError)


def exit_code(exc: BaseException) -> int:
    """2 for bad input (a :class:`FermixrError` that is a ValueError, LookupError or
    FileNotFoundError, or a folder that cannot be written: read-only, no permission),
    1 for any other failure (a full disk included)."""
    if isinstance(exc, FermixrError) and isinstance(exc, BAD_INPUT_BASES):
        return 2
    os_err = _os_error(exc)
    if os_err is not None and os_err.errno in _NOT_WRITABLE:
        return 2
    return 1


_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _os_error(exc: BaseException) -> OSError | None:
    """The operating-system error behind ``exc`` (itself, or the cause a step's error
    wraps), unless it is a fermixr error that says what is wrong itself."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and not isinstance(exc, FermixrError) and exc.errno:
            return exc
        exc = exc.__cause__ if exc.__cause__ is not None else (
            None if exc.__suppress_context__ else exc.__context__)
        seen += 1
    return None


def error_line(exc: BaseException) -> tuple[int, str]:
    """(exit code, the one line printed for ``exc``)."""
    code = exit_code(exc)
    os_err = _os_error(exc)
    named = os_err is not None and (not isinstance(exc, FermixrError)
                                    or os_err.errno in _NOT_WRITABLE + _DISK_FULL)
    if named:
        where = os_err.filename if os_err.filename is not None else "(file not named)"
        why = os_err.strerror or str(os_err)
        if os_err.errno in _DISK_FULL:
            text = (f"{where}: {why}: the disk is full; free space (or give --outdir on "
                    "another disk) and rerun: finished products are kept")
        elif os_err.errno == errno.EROFS:
            text = (f"{where}: {why}: give --outdir (or fileio.outdir / fileio.cachedir) "
                    "a writable folder")
        elif os_err.errno in _NOT_WRITABLE:
            text = (f"{where}: {why}; check its permissions (for the output, give --outdir "
                    "a writable folder)")
        else:
            text = f"{where}: {why}"
    else:
        text = str(exc) or type(exc).__name__
    return code, f"fermixr: {'error' if code == 2 else 'failed'}: {text}"


def _version() -> str:
    from ._version import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fermixr", description="Fermi-LAT analysis with xarray and zarr")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"fermixr {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a recipe")
    r.add_argument("recipe", nargs="+",
                   help="YAML recipe (or a plain Fermipy config.yaml); several recipes (regions) "
                        "run into one sub-folder each of --outdir, sharing one product store")
    r.add_argument("--outdir", help="run directory (default: fileio.outdir, else the recipe's "
                                    "folder); required with several recipes")
    r.add_argument("--scheduler", default="local",
                   help="local (in process), local:N (dask LocalCluster of N workers), "
                        "tcp://HOST:PORT, or slurm[:JOBS] / pbs[:JOBS] (batch jobs through "
                        "dask-jobqueue, described by the recipe's cluster section or --cluster)")
    r.add_argument("--cluster", metavar="FILE",
                   help="YAML file of the batch jobs' options (cores, processes, memory, "
                        "walltime, queue, account, job_extra, jobs) for --scheduler slurm|pbs")
    r.add_argument("--force", action="append", default=[], metavar="STEP",
                   help="recompute this step (or product name) even if cached; repeatable")
    r.add_argument("-q", "--quiet", action="store_true", help="print only the summary")

    v = sub.add_parser("validate", help="check a recipe against the schema; writes nothing")
    v.add_argument("recipe")

    ls = sub.add_parser("ls", help="list a run's products with their cache state "
                                   "(fresh, stale, interrupted, missing)")
    ls.add_argument("run_dir")
    ls.add_argument("--recipe", help="compare with this recipe instead of the run's own copy")
    ls.add_argument("--verify", action="store_true",
                    help="read every chunk of every product and report the damaged ones "
                         "(exit 1 if any)")

    s = sub.add_parser("show", help="summarise a product: dims, coords, attrs, provenance")
    s.add_argument("store", help="a product directory, or RUN_DIR/NAME, or RUN_DIR with --name")
    s.add_argument("--name", help="product name within RUN_DIR (e.g. counts, counts/00)")

    rp = sub.add_parser("report", help="one self-contained HTML page about a run: fit, "
                                       "sources, figures, products and provenance")
    rp.add_argument("run_dir")
    rp.add_argument("-o", "--output", help="HTML file to write (default RUN_DIR/report.html)")

    c = sub.add_parser("coadd", help="add counts cubes of one grid (fermipy-coadd)")
    c.add_argument("files", nargs="+")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--clobber", action="store_true", help="replace the output file")

    vs = sub.add_parser("vstack", help="stack the energy planes of HEALPix maps "
                                       "(fermipy-vstack)")
    vs.add_argument("files", nargs="+")
    vs.add_argument("-o", "--output", required=True)
    vs.add_argument("--hdu", help="HDU name of the maps (default: the first HEALPix table)")
    vs.add_argument("--clobber", action="store_true", help="replace the output file")

    hv = sub.add_parser("healview", help="a HEALPix map file as a PNG image "
                                         "(fermipy-healview)")
    hv.add_argument("file")
    hv.add_argument("-o", "--output", required=True, help="PNG file to write")
    hv.add_argument("--hdu")
    hv.add_argument("--plane", type=int, help="one energy plane (default: their sum)")
    hv.add_argument("--log", action="store_true", help="log10 of the values")
    hv.add_argument("--clobber", action="store_true", help="replace the output file")

    cs = sub.add_parser("collect-sources", help="the source tables of many ROIs' write_roi "
                                                "outputs in one FITS table "
                                                "(fermipy-collect-sources)")
    cs.add_argument("files", nargs="+", help="write_roi outputs (.fits, .npy, .yaml)")
    cs.add_argument("-o", "--output", required=True)
    cs.add_argument("--all-sources", action="store_true",
                    help="every source, not only those find_sources added (PS ...)")
    cs.add_argument("--clobber", action="store_true", help="replace the output file")

    cl = sub.add_parser("cluster-sources", help="group sources of a collected table closer "
                                                "than --dist deg or --sigma position errors "
                                                "(fermipy-cluster-sources)")
    cl.add_argument("table")
    cl.add_argument("-o", "--output", required=True)
    cl.add_argument("--dist", type=float)
    cl.add_argument("--sigma", type=float)
    cl.add_argument("--remove-duplicates", action="store_true")
    cl.add_argument("--clobber", action="store_true", help="replace the output file")

    se = sub.add_parser("sensitivity", help="point/extended-source flux sensitivity "
                                            "(fermipy-flux-sensitivity)")
    se.add_argument("--glon", type=float)
    se.add_argument("--glat", type=float)
    se.add_argument("--ra", type=float)
    se.add_argument("--dec", type=float)
    se.add_argument("--ltcube", help="livetime cube (default: an isotropic survey of "
                                     "--obs_time_yr years)")
    se.add_argument("--obs_time_yr", type=float,
                    help="observation time; with --ltcube, rescales it")
    se.add_argument("--galdiff", help="Galactic diffuse map cube")
    se.add_argument("--isodiff", help="isotropic spectrum table")
    se.add_argument("--event_class", default="P8R3_SOURCE_V2", help="IRF name")
    se.add_argument("--event_type", default="3",
                    help="event-type mask or names (FRONT,BACK / PSF0,...); default 3")
    se.add_argument("--joint", action="store_true",
                    help="each event type its own PSF; TS summed")
    se.add_argument("--caldb", help="CALDB folder (default $CALDB)")
    se.add_argument("--ts_thresh", type=float, default=25.0)
    se.add_argument("--min_counts", type=float, default=3.0)
    se.add_argument("--index", type=float, default=2.0)
    se.add_argument("--emin", type=float, default=100.0)
    se.add_argument("--emax", type=float, default=100000.0)
    se.add_argument("--nbin", type=int, default=12)
    se.add_argument("--spatial_model", default="PointSource",
                    choices=["PointSource", "RadialGaussian", "RadialDisk"])
    se.add_argument("--spatial_size", type=float, help="68%% radius (deg)")
    se.add_argument("--map_type", default="none", choices=["none", "wcs", "hpx"])
    se.add_argument("--wcs_npix", type=int, default=40)
    se.add_argument("--wcs_cdelt", type=float, default=0.5)
    se.add_argument("--wcs_proj", default="AIT")
    se.add_argument("--hpx_order", type=int, default=5)
    se.add_argument("--map_radius", type=float,
                    help="HEALPix map: a disk of this radius (deg) around the position "
                         "(default all sky)")
    se.add_argument("--output", default="sensitivity.fits")
    se.add_argument("--clobber", action="store_true", help="replace the output file")

    e = sub.add_parser("export", help="write a run's products in another format")
    e.add_argument("run_dir")
    e.add_argument("--format", default="st", choices=["st", "gammapy"],
                   help="st: the Fermi Science Tools' FITS layouts; gammapy: one Gammapy "
                        "MapDataset FITS per component and the models as Gammapy YAML")
    e.add_argument("--dest", help="folder for the files (default RUN_DIR/export)")
    e.add_argument("--sources", help="gammapy: the sources to export, comma-separated "
                                     "(default: the free point-like sources); every other "
                                     "source goes into the background")
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fermixr: warning: {message}", file=file or sys.stderr)


def main(argv=None) -> int:
    import warnings

    from .engine.recipe import RecipeDeprecationWarning, RecipeWarning

    args = _parser().parse_args(argv)
    if argv is None:
        sys.unraisablehook = _unraisable
    warnings.showwarning = _one_line_warning
    warnings.simplefilter("default", RecipeWarning)
    warnings.simplefilter("default", RecipeDeprecationWarning)
    try:
        if getattr(args, "command", None) in _SHIELDED_COMMANDS:
            _import_shielded(_SHIELDED_IMPORTS)
        code = _dispatch(args)
        _STOPPING.set()
        return code
    except KeyboardInterrupt:
        _STOPPING.set()
        warnings.simplefilter("ignore")     # e.g. an abandoned zarr coroutine collected late
        code = _interrupted(args)
    except Exception as exc:
        _STOPPING.set()
        if args.debug:
            raise
        warnings.simplefilter("ignore")     # the one line is all the command says
        _remove_unfinished()
        code, line = error_line(exc)
        print(line, file=sys.stderr)
    if argv is None:
        _silence_shutdown()
        _exit_watchdog(code)
    return code


# healpy imports its C extension under a bare ``except:``, so a Ctrl-C landing in that
# import is swallowed and leaves healpy without its pixel functions (the step then fails
# with a NameError instead of the command stopping).  Commands that compute import it up
# front with SIGINT held back; a Ctrl-C during the import is raised right after it.
_SHIELDED_COMMANDS = ("run", "sensitivity")
_SHIELDED_IMPORTS = ("healpy",)


def _import_shielded(modules) -> None:
    """Import ``modules`` with SIGINT blocked (a pending one is delivered, and raised as
    KeyboardInterrupt, when the imports are done)."""
    import importlib
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        for m in modules:
            importlib.import_module(m)
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for m in modules:
            importlib.import_module(m)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_STOPPING = threading.Event()
"""Set once the command has its outcome (done, failed or interrupted): a KeyboardInterrupt
reported later (a finalizer at shutdown) is not sent again."""


def _unraisable(info) -> None:
    """A Ctrl-C that lands in a callback from C (numba's LLVM object cache calls back into
    Python while it compiles or loads a kernel) cannot be raised there: Python would print
    a traceback and carry on.  Send the signal again instead, so that it is raised when
    the callback has returned and the command stops with its one line."""
    if info.exc_type is KeyboardInterrupt:
        import threading

        if _STOPPING.is_set():
            return              # the command already has its outcome: nothing to re-send
        # from another thread, a moment later: a signal sent from here would be handled
        # (and lost) inside this hook
        t = threading.Timer(0.05, _resend_sigint)
        t.daemon = True
        t.start()
        return
    sys.__unraisablehook__(info)


def _resend_sigint() -> None:
    """Send SIGINT again, unless the command is already stopping or Python's handler is
    gone (at interpreter shutdown the default action would kill the process and lose its
    exit status)."""
    import os
    import signal

    if not _STOPPING.is_set() and signal.getsignal(signal.SIGINT) is \
            signal.default_int_handler:
        os.kill(os.getpid(), signal.SIGINT)


def _exit_watchdog(code: int, seconds: float = 10.0) -> None:
    """Exit with ``code`` even if a thread an error or an interrupt left behind holds up
    the interpreter's shutdown (zarr's I/O thread, joined at exit)."""
    import os
    import threading

    t = threading.Timer(seconds, os._exit, args=(code,))
    t.daemon = True
    t.start()


def _remove_unfinished() -> None:
    from .engine.store import remove_unfinished

    remove_unfinished()


def _silence_shutdown() -> None:
    """After the one line of an error or an interrupt, the command says nothing more:
    what threads left behind (zarr's pending writes on a full disk) would otherwise print
    at interpreter shutdown."""
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _interrupted(args) -> int:
    """Ctrl-C: one line, exit 130; a further Ctrl-C is ignored while the products being
    written are removed (committed ones are kept: a rerun resumes from them)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _remove_unfinished()
    what = ("finished products are kept and a rerun resumes from them"
            if args.command == "run" else "nothing was changed")
    print(f"fermixr: interrupted (Ctrl-C); {what}", file=sys.stderr)
    return 130


def _dispatch(args) -> int:
    if args.command == "validate":
        from .engine.recipe import load_recipe, validate_file

        lines = validate_file(args.recipe, include_warnings=True)
        errors = [ln for ln in lines if not ln.startswith("warning:")]
        for ln in lines:
            if ln.startswith("warning:"):
                print(f"fermixr: {ln}", file=sys.stderr)
        if errors:
            print(f"fermixr: error: {args.recipe}: {len(errors)} problem(s)", file=sys.stderr)
            for ln in errors:
                print(f"  {ln}", file=sys.stderr)
            return 2
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = load_recipe(args.recipe)
        print(f"{args.recipe}: valid; steps: {', '.join(n for n, _ in rec.steps) or '(none)'}; "
              f"{len(rec.components)} component(s)")
        return 0
    if args.command == "run":
        from .engine.many import has_targets

        if len(args.recipe) > 1 or has_targets(args.recipe[0]):
            return _run_many(args)
        from .engine.run import run_recipe

        with _batch_client(args) as client:
            run_recipe(args.recipe[0], outdir=args.outdir, scheduler=args.scheduler,
                       force=tuple(args.force), verbose=not args.quiet, summary=True,
                       client=client)
        return 0
    if args.command == "ls":
        from .engine.run import list_run, verify_run

        if args.verify:
            n, damaged = verify_run(args.run_dir)
            for ln in damaged:
                print(f"damaged: {ln}")
            print(f"{n} product(s) read, {len(damaged) or 'none'} damaged"
                  + ("; rerun the recipe with --force on them" if damaged else ""),
                  file=sys.stderr if damaged else sys.stdout)
            if damaged:
                return 1
        rows = list_run(args.run_dir, args.recipe)
        print(f"{'product':<18} {'step':<10} {'state':<24} {'key':<13} {'last run':<10} seconds")
        for r in rows:
            print(f"{r['name']:<18} {r['step']:<10} {r['state']:<24} {r['key']:<13} "
                  f"{r['last_run']:<10} {r['seconds']:.2f}")
        return 0
    if args.command == "show":
        print(_show(args.store, args.name))
        return 0
    if args.command in ("coadd", "vstack", "collect-sources", "cluster-sources"):
        from .engine import tools

        if args.command == "coadd":
            out = tools.coadd(args.files, args.output, clobber=args.clobber)
        elif args.command == "vstack":
            out = tools.vstack(args.files, args.output, hdu=args.hdu, clobber=args.clobber)
        elif args.command == "collect-sources":
            out = tools.collect_sources(args.files, args.output,
                                        all_sources=args.all_sources, clobber=args.clobber)
        else:
            out = tools.cluster_sources(args.table, args.output, dist=args.dist,
                                        sigma=args.sigma,
                                        remove_duplicates=args.remove_duplicates,
                                        clobber=args.clobber)
        print(out)
        return 0
    if args.command == "healview":
        from .engine.tools import _check_output
        from .plot.healview import healview

        _check_output(args.output, args.clobber)
        print(healview(args.file, args.output, hdu=args.hdu, plane=args.plane, log=args.log))
        return 0
    if args.command == "sensitivity":
        return _sensitivity(args)
    if args.command == "report":
        from .engine.report import write_report

        if args.output and Path(args.output).is_dir():
            from .errors import RecipeError

            raise RecipeError(f"-o {args.output}: is a folder; give the HTML file to write")
        print(write_report(args.run_dir, args.output))
        return 0
    if args.command == "export":
        from .engine.export import export_run

        dest = Path(args.dest) if args.dest else Path(args.run_dir) / "export"
        if Path(args.run_dir).is_dir() and args.format == "st":   # else export_run names
            dest.mkdir(parents=True, exist_ok=True)                # the missing run
        written = export_run(args.run_dir, fmt=args.format, dest=dest, sources=args.sources)
        for p in written:
            print(p)
        return 0
    raise AssertionError(args.command)


def _batch_client(args):
    """The client of a batch cluster (--scheduler slurm|pbs), its jobs described by the
    first recipe's cluster section updated by --cluster FILE; a null context otherwise
    (run_recipe / run_many start the other kinds of scheduler themselves)."""
    import contextlib

    from .engine.cluster import JOBQUEUE_CLASSES, dask_client, load_cluster_options
    from .errors import RecipeError

    kind = str(args.scheduler or "").split(":", 1)[0]
    if kind not in JOBQUEUE_CLASSES:
        if getattr(args, "cluster", None):
            raise RecipeError(f"--cluster {args.cluster}: batch job options need --scheduler "
                              "slurm or pbs")
        return contextlib.nullcontext(None)
    from .engine.recipe import load_recipe

    rec = load_recipe(args.recipe[0])
    return dask_client(args.scheduler,
                       cluster_options=load_cluster_options(args.cluster, rec))


def _run_many(args) -> int:
    """Several recipes: each into its own sub-folder of --outdir; the failed regions are
    named at the end, each with its one line; exit 1 if any computation failed, else 2 if
    any recipe was bad input, else 0."""
    from .engine.many import run_many
    from .errors import RecipeError

    if not args.outdir:
        what = (f"{len(args.recipe)} recipes given" if len(args.recipe) > 1 else
                f"{args.recipe[0]} has a targets section (one region per target)")
        raise RecipeError(f"{what}: give --outdir DIR (each region runs into "
                          "DIR/<region name>)")
    with _batch_client(args) as client:
        outcomes = run_many(args.recipe, args.outdir, scheduler=args.scheduler,
                            client=client, force=tuple(args.force), verbose=not args.quiet)
    width = max(len(o.name) for o in outcomes)
    print(f"{'region':<{width}}  {'status':<7} {'computed':>8} {'seconds':>8}  folder")
    codes = []
    for o in outcomes:
        print(f"{o.name:<{width}}  {o.status:<7} {o.computed:>8} {o.seconds:>8.2f}  {o.outdir}")
    for o in outcomes:
        if o.error is not None:
            code, line = error_line(o.error)
            codes.append(code)
            print(f"{line.replace('fermixr: ', f'fermixr: {o.name}: ', 1)}", file=sys.stderr)
    if codes:
        print(f"fermixr: {len(codes)} of {len(outcomes)} regions failed: "
              f"{', '.join(o.name for o in outcomes if o.error is not None)}", file=sys.stderr)
        return 1 if 1 in codes else 2
    return 0


def _sensitivity(args) -> int:
    from .engine.tools import _check_output
    from .estimators import sensitivity as S

    _check_output(args.output, args.clobber)
    evtype = args.event_type
    evtype = int(evtype) if str(evtype).isdigit() else [t.strip() for t in evtype.split(",")]
    model = S.SensitivityModel(args.event_class, evtype, caldb=args.caldb, ltcube=args.ltcube,
                               obs_time_yr=args.obs_time_yr, galdiff=args.galdiff,
                               isodiff=args.isodiff, joint=args.joint)
    opts = dict(emin=args.emin, emax=args.emax, nbin=args.nbin, index=args.index,
                ts_thresh=args.ts_thresh, min_counts=args.min_counts,
                spatial_model=args.spatial_model, spatial_size=args.spatial_size)
    res = S.flux_sensitivity(model, glon=args.glon, glat=args.glat, ra=args.ra,
                             dec=args.dec, **opts)
    m = geom = None
    if args.map_type != "none":
        if args.glon is not None:
            lon, lat, frame = args.glon, args.glat, "GAL"
        else:
            lon, lat, frame = args.ra, args.dec, "CEL"
        if args.map_type == "wcs":
            from .geom.wcs import WcsGeom

            geom = WcsGeom((lon, lat), (args.wcs_npix, args.wcs_npix), args.wcs_cdelt,
                           proj=args.wcs_proj, frame=frame)
        else:
            from .geom.hpx import HpxGeom

            region = None if args.map_radius is None else (lon, lat, args.map_radius)
            geom = HpxGeom(order=args.hpx_order, frame=frame, region=region)
        m = S.sensitivity_map(model, geom, **opts, progress=_progress_printer("pixels"))
    config = {k: v for k, v in vars(args).items() if k not in ("command", "debug")}
    S.write_sensitivity(res, args.output, map_result=m, geom=geom, config=config)
    it = res["int"]
    print(f"integral threshold ({it['e_min']:g}-{it['e_max']:g} MeV, index {it['index']:g}, "
          f"TS {args.ts_thresh:g}): flux {it['flux']:.4g} ph cm-2 s-1, eflux "
          f"{it['eflux']:.4g} MeV cm-2 s-1, npred {it['npred']:.1f}")
    print(args.output)
    return 0


def _progress_printer(what: str):
    """A progress callback printing 'done/total what' on a terminal, quiet otherwise."""
    if not sys.stderr.isatty():
        return None

    def show(done, total):
        if done == total or done % max(1, total // 100) == 0:
            print(f"\r{done}/{total} {what}", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)
    return show


def _show(store: str, name: str | None) -> str:
    from .engine.store import NameIndex, open_product_dir, read_marker
    from .errors import InputFileError

    p = Path(store)
    if name:
        target = NameIndex(p).resolve(name)
    elif read_marker(p) is not None:
        target = p.resolve()
    else:
        target = NameIndex(p.parent).resolve(p.name) if p.parent else None
    if target is None:
        raise InputFileError(f"{store!r}{' / ' + name if name else ''}: not a committed "
                             "fermixr product; give a product folder, RUN_DIR/NAME or "
                             "RUN_DIR --name NAME (names: `fermixr ls RUN_DIR`)")
    from .engine.summaries import fit_summary, small_values

    ds = open_product_dir(target)
    prov = read_marker(target)
    lines = [f"product {prov.get('name', '?')} ({prov.get('kind')}) at {target}", "", repr(ds)]
    if ds.attrs.get("fermixr_product") == "fit":
        lines += ["", fit_summary(ds)]
    else:
        values = small_values(ds)
        if values:
            lines += ["", "values:", values]
    lines += ["", "provenance:"]
    for k in ("step", "step_version", "fermixr_version", "key", "wall_seconds", "committed_utc", "host"):
        if k in prov:
            lines.append(f"  {k}: {prov[k]}")
    lines.append(f"  params: {json.dumps(prov.get('params', {}), sort_keys=True)}")
    lines.append(f"  inputs: {json.dumps(prov.get('inputs', {}), sort_keys=True)}")
    lines.append(f"  files: {json.dumps(prov.get('files', {}), sort_keys=True)}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
