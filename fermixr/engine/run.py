"""Running a recipe, listing a run's products and reading them back.

``run_recipe`` validates the recipe, plans its tasks (checking every input file exists),
executes them against the product store and records the run in ``<outdir>/run.json``;
``open_run`` returns the products as lazily opened datasets; ``list_run`` tells, for each
product a recipe asks for, whether the run holds it fresh, stale or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputFileError, RecipeError
from .store import RUN_META_DIR, NameIndex, RunLock, open_product_dir, read_marker

# the run's own copy of the recipe it ran (expanded, resolved), under a name of its own so
# that it never replaces a user's file: the recipe given is often in the run folder itself
RECIPE_COPY = f"{RUN_META_DIR}/recipe.resolved.yaml"
_COPY_HEADER = ("# written by fermixr run: the resolved recipe of the last run in this folder; "
                "rewritten at every run (edit your own recipe, not this copy)\n")


def _load(recipe, overrides=None):
    from .recipe import Recipe, load_recipe

    if isinstance(recipe, Recipe) and not overrides:
        return recipe
    return load_recipe(recipe, **(overrides or {}))


def resolve_outdir(recipe) -> Path:
    """``fileio.outdir`` (the recipe derived it: the recipe's folder when not given)."""
    from .resolved import resolve

    return Path(resolve(recipe.config).fileio.outdir).expanduser().resolve()


def store_root(recipe, outdir: Path) -> Path:
    """``fileio.cachedir`` (the recipe derived it: ``<outdir>/.store`` when not given)."""
    from .resolved import resolve

    return Path(resolve(recipe.config).fileio.cachedir).expanduser().resolve()


def dask_client(scheduler: str | None, **kw):
    """``None``/"local": no cluster; "local:N": a LocalCluster of N single-threaded workers
    (numba limited to one thread each); "tcp://host:port": an existing scheduler;
    "slurm"/"pbs": a batch cluster (see :mod:`fermixr.engine.cluster`)."""
    from .cluster import dask_client as _client

    return _client(scheduler, **kw)


def run_recipe(recipe, *, outdir=None, scheduler=None, force=(), verbose=True, stream=None,
               overrides=None, summary=None, client=None):
    """Run every step of ``recipe`` (a path, YAML text, dict or Recipe). Returns the
    per-task states. Nothing is computed before the recipe and its inputs are validated;
    the run folder is locked while the run writes (a second run into it stops with
    :class:`~fermixr.engine.store.RunLockedError`).  ``client``: a Dask client to use
    instead of the one ``scheduler`` names (several recipes run on one cluster)."""
    from .plan import plan_tasks

    stream = stream if stream is not None else sys.stderr
    t0 = time.monotonic()
    overrides = dict(overrides or {})
    if outdir:
        # the run directory given on the command line is fileio.outdir (and, unless the
        # recipe names a shared cachedir, the store is inside it)
        fio = dict(overrides.get("fileio") or {})
        fio["outdir"] = str(Path(outdir).expanduser().resolve())
        overrides["fileio"] = fio
    rec = _load(recipe, overrides)
    tg = rec.options[0].targets
    if tg.names or tg.where:
        raise RecipeError(f"{rec.path or 'recipe'}: its targets section makes one region per "
                          "target; run it with 'fermixr run RECIPE --outdir DIR' "
                          "(fermixr.engine.many.run_many), not as one region")
    out = resolve_outdir(rec)
    tasks = plan_tasks(rec)
    from .preflight import check_data

    check_data(rec)          # a selection wider than the data refused before any work
    from .analysis_steps import ANALYSIS_STEPS

    analysis = [(n, p) for n, p in rec.steps if n in ANALYSIS_STEPS]
    if force:
        known = {t.step for t in tasks} | {t.name for t in tasks} | {n for n, _ in analysis}
        if any(n == "lightcurve" for n, _ in analysis):
            from .lightcurve import FORCEABLE

            known |= set(FORCEABLE)     # the fits of the curve's bins
        bad = [f for f in force if f not in known]
        if bad:
            raise RecipeError(
                f"--force {', '.join(bad)}: not a step or product of this recipe; "
                f"known: {', '.join(sorted(known))}"
            )
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        return _run_locked(rec, out, tasks, analysis, scheduler=scheduler, force=force,
                           verbose=verbose, stream=stream, summary=summary, t0=t0,
                           client=client)


def _given_client(client):
    @contextlib.contextmanager
    def ctx():
        yield client
    return ctx()


def _run_locked(rec, out, tasks, analysis, *, scheduler, force, verbose, stream, summary, t0,
                client=None):
    """The writing part of :func:`run_recipe`, with the run folder's lock held."""
    from .analysis_steps import raise_for_failures, run_analysis_steps
    from .executor import Executor

    copy = out / RECIPE_COPY
    copy.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(copy, _COPY_HEADER + rec.to_yaml())
    with (dask_client(scheduler) if client is None else _given_client(client)) as client:
        ex = Executor(out, store_root(rec, out), client=client, force=force, verbose=verbose,
                      stream=stream)
        states = ex.run(tasks)
        done = []
        if analysis:
            keys = {name: st.key for name, st in states.items()
                    if name.split("/")[0] in ("counts", "srcmaps", "drm")}
            # the cluster stays up for the steps that plan tasks of their own (lightcurve)
            done = run_analysis_steps(rec, analysis, out, store_root(rec, out), keys,
                                      verbose=verbose, stream=stream, force=force,
                                      client=client)
    if analysis:
        manifest = out / "run.json"
        doc = json.loads(manifest.read_text())
        doc["analysis_steps"] = done
        _write_text_atomic(manifest, json.dumps(doc, indent=1))
    secs = time.monotonic() - t0
    if verbose if summary is None else summary:
        _print_last_fit(out, done, stream)
        n_cached = sum(s.status in ("cached", "shared") for s in states.values())
        print(
            f"run finished in {secs:.2f} s: {len(states) - n_cached} computed, "
            f"{n_cached} cached; products in {out}",
            file=stream,
        )
    raise_for_failures(done)
    return states


def _print_last_fit(out: Path, done: list, stream) -> None:
    """The result of the run's last fit (fit or optimize step), as ``fermixr show`` gives
    it."""
    from .summaries import fit_summary

    fits = [d for d in done if d["step"] == "fit"]
    if not fits:
        return
    n = len(fits)
    name = "fit" if n == 1 else f"fit_{n}"
    try:
        ds = RunProducts(out)[name]
    except KeyError:
        return
    print(fit_summary(ds), file=stream)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunProducts(Mapping):
    """Read-only mapping product name -> lazily opened ``xarray.Dataset``."""

    def __init__(self, run_dir, dask: bool = True):
        self.run_dir = Path(run_dir)
        self._dask = dask
        require_run_dir(self.run_dir)
        self._index = NameIndex(self.run_dir)
        self._cache = {}

    def __getitem__(self, name):
        if name not in self._cache:
            path = self._index.resolve(name)
            if path is None:
                raise KeyError(f"{name!r} is not a product of run {str(self.run_dir)!r}; "
                               f"it has: {', '.join(self)}")
            self._cache[name] = open_product_dir(path, dask=self._dask)
        return self._cache[name]

    def __iter__(self):
        return iter(n for n in self._index.names() if self._index.resolve(n) is not None)

    def __len__(self):
        return sum(1 for _ in self)

    def path(self, name) -> Path:
        p = self._index.resolve(name)
        if p is None:
            raise KeyError(name)
        return p

    def provenance(self, name) -> dict:
        return read_marker(self.path(name))

    def __repr__(self):
        return f"<fermixr run {str(self.run_dir)!r}: {', '.join(self)}>"


def require_run_dir(run_dir) -> Path:
    """``run_dir`` as a Path if it is a run directory (it holds ``products/``,
    ``run.json`` or the run's recipe copy); else :class:`~fermixr.errors.InputFileError`
    naming it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file" if run_dir.exists() else "does not exist"
        raise InputFileError(f"run directory {str(run_dir)!r} {what}; give the folder a "
                             "`fermixr run` wrote (its --outdir)")
    if not any((run_dir / n).exists() for n in ("products", "run.json", RECIPE_COPY)):
        raise InputFileError(f"{str(run_dir)!r} is not a fermixr run directory (it holds no "
                             f"products/, run.json or {RECIPE_COPY}); give the folder a "
                             "`fermixr run` wrote (its --outdir)")
    return run_dir


def open_run(run_dir, dask: bool = True) -> RunProducts:
    """The products of a run directory (:class:`RunProducts`); a folder that is no run
    directory raises :class:`~fermixr.errors.InputFileError`."""
    return RunProducts(run_dir, dask=dask)


def list_run(run_dir, recipe=None) -> list[dict]:
    """State of every product the recipe asks for: ``fresh`` (the run holds it with the key
    the recipe gives now), ``stale`` (the run's name points to a product made from other
    inputs or parameters: its key is not the one the recipe gives now), ``interrupted``
    (no committed product with the key, but a temporary directory of it, or its directory
    without the completion marker: a run stopped while writing it), ``missing`` (none of
    these); ``shared with NAME`` when it is the same stored product as an earlier name."""
    from .executor import Executor, TaskState
    from .plan import plan_tasks
    from .steps import get_step

    run_dir = require_run_dir(run_dir)
    if recipe is None:
        copy = run_dir / RECIPE_COPY
        if not copy.is_file() and (run_dir / "recipe.yaml").is_file() \
                and (run_dir / "run.json").is_file():
            copy = run_dir / "recipe.yaml"      # where earlier versions kept their copy
        if not copy.is_file():
            raise InputFileError(f"{str(run_dir)!r} holds no {RECIPE_COPY}: give the recipe "
                                 "with --recipe")
        recipe = copy
    rec = _load(recipe, {"fileio": {"outdir": str(run_dir.resolve())}})
    tasks = plan_tasks(rec)
    doc = read_run_record(run_dir)
    last = {t["name"]: t for t in doc.get("tasks", [])}
    analysis = doc.get("analysis_steps", [])
    ex = Executor(run_dir, store_root(rec, run_dir), verbose=False)
    states = {t.name: TaskState(t) for t in tasks}
    rows = []
    seen_keys = {}
    for t in tasks:
        st = states[t.name]
        step = get_step(t.step)
        try:
            st.key = ex.resolve_key(st, states)
        except FileNotFoundError:
            st.key = None
        linked = ex.names.resolve(t.name)
        if st.key is not None and ex.store.exists(step.product, st.key):
            st.path = ex.store.path(step.product, st.key)
            state = "fresh" if linked == st.path.resolve() else "stale"
            if st.key in seen_keys:
                state = f"shared with {seen_keys[st.key]}"
            else:
                seen_keys[st.key] = t.name
        elif st.key is not None and _unfinished(ex.store, step.product, st.key):
            state = "interrupted"
        elif linked is not None:
            state = "stale"
        else:
            state = "missing"
        lt = last.get(t.name, {})
        rows.append({
            "name": t.name, "step": t.step, "state": state,
            "key": (st.key or "?")[:12],
            "last_run": lt.get("status", "-"),
            "seconds": lt.get("seconds", 0.0),
        })
    # analysis steps (optimize, fit, write_roi ...) as the last run recorded them: their
    # keys chain on the model, known only by running them
    for a in analysis:
        rows.append({"name": a["name"], "step": a["step"], "state": "(analysis step)",
                     "key": a["key"][:12], "last_run": a["status"], "seconds": a["seconds"]})
    return rows


def _unfinished(store, kind: str, key: str) -> bool:
    """A temporary directory of (kind, key) is in the store, or its directory is there
    without the completion marker."""
    final = store.path(kind, key)
    if final.is_dir() and read_marker(final) is None:
        return True
    prefix = f".tmp-{store.dirname(kind, key)[:40]}-"
    return store.root.is_dir() and any(p.name.startswith(prefix) for p in store.root.iterdir())


def verify_run(run_dir) -> tuple[int, list[str]]:
    """Read every chunk of every product of a run: each chunk's checksum (zstd's, stored
    since fermixr writes it) is checked as it is decompressed; a product written before
    has its chunks re-read, which finds the ones that no longer decompress.  Returns
    (number of products read, one line per damaged chunk or product, naming its file)."""
    run_dir = require_run_dir(run_dir)
    index = NameIndex(run_dir)
    seen: dict = {}
    damaged: list[str] = []
    for name in index.names():
        link = index.dir / name
        target = link.resolve()
        if read_marker(target) is None:
            damaged.append(f"{name}: {target} is not a committed product (no completion "
                           "marker); rerun the recipe")
            continue
        if target in seen:
            continue
        seen[target] = name
        damaged += [f"{name}: {m}" for m in verify_product(target)]
    return len(seen), damaged


def verify_product(path) -> list[str]:
    """Damaged chunks of one committed product, one line each naming the chunk file."""
    import itertools

    import zarr

    path = Path(path)
    out: list[str] = []
    try:
        group = zarr.open_group(os.fspath(path), mode="r")
        arrays = list(group.arrays())
    except Exception as exc:
        return [f"{path}: its zarr metadata cannot be read ({type(exc).__name__}: {exc})"]
    for aname, arr in arrays:
        grid = [range(n) for n in arr.cdata_shape] if arr.ndim else [()]
        for idx in itertools.product(*grid) if arr.ndim else [()]:
            sl = tuple(slice(i * c, min((i + 1) * c, n))
                       for i, c, n in zip(idx, arr.chunks, arr.shape))
            try:
                arr[sl]
            except Exception as exc:
                chunk = path / aname / "c" / "/".join(str(i) for i in idx)
                if not arr.ndim:
                    chunk = path / aname / "c"
                out.append(f"{chunk}: damaged ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})")
    return out


def read_run_record(run_dir) -> dict:
    """The run record ``<run_dir>/run.json`` ({} when the run has none yet);
    :class:`InputFileError` when it is not valid JSON."""
    mf = Path(run_dir) / "run.json"
    if not mf.is_file():
        return {}
    try:
        return json.loads(mf.read_text())
    except ValueError:
        raise InputFileError(f"{str(mf)!r} is not valid JSON (damaged run record); "
                             "rerun the recipe to rewrite it") from None
