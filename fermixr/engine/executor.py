"""Run a planned list of tasks against the product store.

Keys are resolved in dependency order: a task's key needs the identities of its inputs,
and an input whose identity is its content (the GTIs) must exist first.  A task whose key
is committed in the store is *cached*; otherwise it is computed, checked against its data
contract, written atomically, and linked under its run-level name.  Independent tasks that
are ready together are submitted to the dask cluster when there is one; a task that runs
alone runs in this process and may use the cluster itself (``ctx.client``).  Tasks sent
to the cluster go through :func:`fermixr._parallel.ordered_map`, each with its memory
estimate (:func:`estimate_memory`) as the Dask resource ``MEMORY``; a product is committed
to the store by the worker that made it, so a worker lost later loses no finished product
(Dask runs the lost tasks again on the others; a rerun finds the finished ones cached).

``keep_going=True`` records a failed task (status "failed", its exception in ``error``),
fails the tasks that need it without running them, and runs every other task.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

from .._version import __version__
from ..errors import FermixrError, StepError
from .hashing import FileHashCache, dataset_digest, digest, drop_empty
from .steps import StepContext, get_step
from .store import NameIndex, ProductStore, open_product_dir, read_marker


@dataclasses.dataclass
class Task:
    """One product to make: run-level ``name``, the ``step`` that makes it, its resolved
    ``params``, its input products (role -> task name) and input files (role -> paths)."""

    name: str
    step: str
    params: dict
    inputs: dict = dataclasses.field(default_factory=dict)
    files: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TaskState:
    task: Task
    key: str | None = None
    status: str = "pending"  # pending | cached | computed | shared | failed
    seconds: float = 0.0
    path: Path | None = None
    error: BaseException | None = None


_MIB = 2 ** 20


def _map_size(geom) -> int:
    """Pixels of a planned geometry (WCS ``npix`` [nx, ny] or HEALPix ``nside``)."""
    if not isinstance(geom, dict):
        return 0
    npix = geom.get("npix")
    if isinstance(npix, (list, tuple)) and npix:
        n = 1
        for v in npix[:2]:
            n *= int(v)
        return n
    if isinstance(npix, (int, float)):
        return int(npix)
    if geom.get("nside"):
        return 12 * int(geom["nside"]) ** 2
    return 0


def estimate_memory(task: Task) -> int:
    """A rough upper estimate (bytes) of the memory one task needs beyond its worker's
    own: 128 MiB of working room plus a few copies of the arrays it makes (the all-sky
    livetime cube; a map cube of the task's geometry and energies, oversampled by
    ``rfactor`` for source maps).  Handed to Dask as the ``MEMORY`` resource."""
    p = task.params or {}
    est = 128 * _MIB
    if task.step == "ltcube":
        import math

        binsz = float(p.get("binsz") or 1.0)
        nside = 1
        while 12 * nside * nside * binsz * binsz < 41252.96:
            nside *= 2
        nbins = int(1.0 / float(p.get("dcostheta") or 0.025))
        cols = nbins * (1 + int(p.get("phibins") or 0))
        est += 4 * 12 * nside * nside * cols * 2 * 8 + int(math.ceil(256 * _MIB))
    npix = _map_size(p.get("geom"))
    if npix:
        energy = p.get("energies") or (p.get("energy") or {}).get("edges") or [0, 0]
        ne = max(1, len(energy))
        rf = int(p.get("rfactor") or 1)
        est += 6 * npix * ne * 8 * rf * rf
    return int(est)


def task_key(task: Task, input_ids: dict, file_hashes: dict) -> str:
    step = get_step(task.step)
    return digest(
        {
            "step": step.name,
            "version": step.version,
            "params": drop_empty(task.params),
            "inputs": input_ids,
            "files": file_hashes,
        }
    )


class Executor:
    def __init__(self, run_dir, store_root=None, client=None, force=(), verbose=True,
                 stream=None, keep_going=False):
        self.run_dir = Path(run_dir)
        self.store = ProductStore(store_root or self.run_dir / ".store")
        self.names = NameIndex(self.run_dir)
        self.client = client
        self.keep_going = bool(keep_going)
        self.force = set(force or ())
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stderr
        self.hashes = FileHashCache(self.store.root / "file-hashes.json")
        self._ids: dict[str, str] = {}

    # -- helpers ------------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        if self.verbose:
            print(msg, file=self.stream, flush=True)

    def _file_hashes(self, task: Task) -> dict:
        return {role: [self.hashes.hash(p) for p in paths] for role, paths in task.files.items()}

    def _identity(self, st: TaskState) -> str:
        if st.task.name in self._ids:
            return self._ids[st.task.name]
        step = get_step(st.task.step)
        if step.identity == "content":
            # written into the marker when the product was committed
            ident = "content:" + read_marker(st.path)["content_digest"]
        else:
            ident = st.key
        self._ids[st.task.name] = ident
        return ident

    def resolve_key(self, st: TaskState, states: dict[str, TaskState]) -> str | None:
        """Key of a task, or None while an input it needs by content does not exist."""
        ids = {}
        for role, dep in st.task.inputs.items():
            dst = states[dep]
            if get_step(dst.task.step).identity == "content":
                if dst.path is None:
                    return None
                ids[role] = self._identity(dst)
            else:
                if dst.key is None:
                    return None
                ids[role] = dst.key
        return task_key(st.task, ids, self._file_hashes(st.task))

    def plan_keys(self, tasks: list[Task]) -> dict[str, TaskState]:
        """The key (and, for committed products, the path) of every task, computing
        nothing and writing nothing; a task whose input is not committed and is needed by
        content gets no key."""
        states = {t.name: TaskState(t) for t in tasks}
        for t in tasks:
            st = states[t.name]
            st.key = self.resolve_key(st, states)
            if st.key is not None:
                kind = get_step(t.step).product
                if self.store.exists(kind, st.key):
                    st.path = self.store.path(kind, st.key)
                    st.status = "cached"
        return states

    # -- running ------------------------------------------------------------------------
    def run(self, tasks: list[Task]) -> dict[str, TaskState]:
        self.store.clean_debris()
        states = {t.name: TaskState(t) for t in tasks}
        order = [t.name for t in tasks]
        n = len(order)
        done: set[str] = set()
        committed_by_key: dict[str, str] = {}
        t_run = time.monotonic()
        try:
            while len(done) < n:
                ready = [
                    name for name in order
                    if name not in done and all(d in done for d in states[name].task.inputs.values())
                ]
                if not ready:
                    raise StepError("the task graph has a cycle: " + ", ".join(sorted(set(order) - done)))
                to_compute: list[TaskState] = []
                for name in ready:
                    st = states[name]
                    bad = [d for d in st.task.inputs.values() if states[d].status == "failed"]
                    if bad:
                        st.status = "failed"
                        st.error = StepError(f"{name}: not made, its input {bad[0]!r} failed")
                        self._finish(st, len(done) + 1, n)
                        done.add(name)
                        continue
                    st.key = self.resolve_key(st, states)
                    kind = get_step(st.task.step).product
                    forced = st.task.step in self.force or st.task.name in self.force
                    if st.key in committed_by_key:
                        st.status = "shared"
                        st.path = self.store.path(kind, st.key)
                    elif self.store.exists(kind, st.key) and not forced:
                        st.status = "cached"
                        st.path = self.store.path(kind, st.key)
                    else:
                        if any(o.key == st.key for o in to_compute):
                            st.status = "shared"  # same product, computed once below
                        else:
                            to_compute.append(st)
                        continue
                    committed_by_key.setdefault(st.key, name)
                    self._finish(st, len(done) + 1, n)
                    done.add(name)
                self._compute(to_compute)
                for st in to_compute:
                    if st.status != "failed":
                        committed_by_key.setdefault(st.key, st.task.name)
                    self._finish(st, len(done) + 1, n)
                    done.add(st.task.name)
                failed_keys = {st.key: st for st in to_compute if st.status == "failed"}
                for name in ready:
                    st = states[name]
                    if name not in done and st.status == "shared":
                        kind = get_step(st.task.step).product
                        if st.key in failed_keys:      # the one computing it failed
                            st.status, st.error = "failed", failed_keys[st.key].error
                            self._finish(st, len(done) + 1, n)
                            done.add(name)
                            continue
                        st.path = self.store.path(kind, st.key)
                        self._finish(st, len(done) + 1, n)
                        done.add(name)
        finally:
            self.hashes.save()
            self._write_manifest(states, order, time.monotonic() - t_run)
        return states

    def _finish(self, st: TaskState, i: int, n: int) -> None:
        if st.status == "failed":
            self._say(f"[{i}/{n}] {st.task.name:<16} failed: {st.error}")
            return
        self.names.link(st.task.name, st.path)
        if st.status == "computed":
            self._say(f"[{i}/{n}] {st.task.name:<16} computed in {st.seconds:.2f} s  ({st.key[:12]})")
        else:
            self._say(f"[{i}/{n}] {st.task.name:<16} {st.status}  ({st.key[:12]})")

    def _compute(self, sts: list[TaskState]) -> None:
        if not sts:
            return
        jobs = []
        for st in sts:
            step = get_step(st.task.step)
            inputs = {role: os.fspath(self._input_path(dep)) for role, dep in st.task.inputs.items()}
            files = {role: [os.fspath(p) for p in ps] for role, ps in st.task.files.items()}
            prov = {
                "step": step.name,
                "step_version": step.version,
                "fermixr_version": __version__,
                "params": st.task.params,
                "inputs": {role: self._ids.get(dep) or self._state_key(dep)
                           for role, dep in st.task.inputs.items()},
                "files": files,
                "host": platform.node(),
                "name": st.task.name,
            }
            overwrite = st.task.step in self.force or st.task.name in self.force
            jobs.append((st, (step.name, st.task.params, inputs, files, os.fspath(self.store.root),
                              step.product, st.key, prov, overwrite,
                              estimate_memory(st.task))))
        if self.client is not None and len(jobs) > 1:
            from .._parallel import ordered_map

            self._say(f"      submitting {len(jobs)} independent tasks to the dask cluster")
            results = ordered_map(
                self.client, _execute_job, [args for _, args in jobs],
                memory=lambda args: args[-1], errors="return", name="fermixr-task")
        else:
            results = []
            for st, args in jobs:
                self._say(f"      {st.task.name}: computing ({st.task.step})")
                try:
                    results.append(execute_task(*args[:-1], self.verbose, client=self.client))
                except Exception as exc:     # noqa: BLE001 -- recorded or re-raised below
                    if not self.keep_going:
                        raise
                    results.append(exc)
        for (st, _), res in zip(jobs, results):
            if isinstance(res, BaseException):
                if not self.keep_going:
                    raise res
                st.status, st.error = "failed", res
                continue
            path, secs = res
            st.path, st.seconds, st.status = Path(path), secs, "computed"

    def _input_path(self, dep: str) -> Path:
        p = self.names.resolve(dep)
        if p is None:
            raise StepError(f"input product {dep!r} is missing from the run")
        return p

    def _state_key(self, dep: str) -> str | None:
        p = self.names.resolve(dep)
        if p is None:
            return None
        return (read_marker(p) or {}).get("key")

    def _write_manifest(self, states, order, seconds) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        doc = {
            "fermixr_version": __version__,
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_seconds": round(seconds, 3),
            "store": os.fspath(self.store.root.resolve()),
            "tasks": [
                {
                    "name": name,
                    "step": states[name].task.step,
                    "key": states[name].key,
                    "status": states[name].status,
                    "seconds": round(states[name].seconds, 3),
                }
                for name in order
            ],
        }
        tmp = self.run_dir / f".run.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.run_dir / "run.json")


def _execute_job(args):
    """:func:`execute_task` of one job tuple (its last item, the memory estimate, is for
    the scheduler), quietly, on a worker."""
    return execute_task(*args[:-1], False)


def execute_task(step_name, params, input_paths, files, store_root, product, key, prov,
                 overwrite, verbose=True, client=None):
    """Compute one product and commit it; runs in this process or on a dask worker.
    Returns (committed path, seconds)."""
    from ..conventions import ATTR_PRODUCT, validate_product

    step = get_step(step_name)
    store = ProductStore(store_root)
    t0 = time.monotonic()
    if not overwrite and store.exists(product, key):
        # committed already: by this task on a worker that was lost before it reported,
        # or by another run sharing the store
        return os.fspath(store.path(product, key)), time.monotonic() - t0
    inputs = {role: open_product_dir(p, dask=False) for role, p in input_paths.items()}
    ctx = StepContext(prov.get("name", step_name), files=files, client=client, verbose=verbose)
    try:
        ds = step.func(inputs, params, ctx)
    except FermixrError:
        raise
    except Exception as exc:  # keep the traceback, name the step
        raise StepError(f"step {step_name!r} ({prov.get('name')}) failed: {exc!r}") from exc
    ds.attrs.setdefault(ATTR_PRODUCT, product)
    validate_product(ds)
    secs = time.monotonic() - t0
    prov = dict(prov, wall_seconds=round(secs, 3))
    if step.identity == "content":
        prov["content_digest"] = dataset_digest(ds.load())
    ds.attrs["provenance"] = {k: prov[k] for k in ("step", "step_version", "fermixr_version", "name")}
    ds.attrs["provenance"]["key"] = key
    if overwrite and store.exists(product, key):
        from .store import _remove_tree

        _remove_tree(store.path(product, key))
    path = store.write(ds, product, key, prov)
    return os.fspath(path), time.monotonic() - t0
