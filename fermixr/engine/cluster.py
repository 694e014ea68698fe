"""Where the engine's parallel work runs: the ``--scheduler`` of ``fermixr run``.

* ``local`` (default): no cluster, everything in this process;
* ``local:N``: a Dask ``LocalCluster`` of N single-threaded worker processes;
* ``tcp://HOST:PORT``: an existing Dask scheduler;
* ``slurm`` / ``pbs`` (``slurm:N``: N jobs): a batch cluster through dask-jobqueue, its
  jobs described by the recipe's ``cluster`` section (cores, processes, memory, walltime,
  queue, account, job_extra, jobs) or a YAML file of those keys (``--cluster FILE``).

Every worker fermixr starts declares its memory as the Dask resource ``MEMORY``
(:func:`fermixr._parallel.memory_resources`): tasks that carry a memory estimate ask for
it, so a worker never runs together more than its memory holds, and a task larger than
any worker is refused (:class:`~fermixr.errors.ResourceError`) instead of waiting forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

from .._parallel import memory_resources
from ..errors import RecipeError

__all__ = ["dask_client", "jobqueue_kwargs", "make_jobqueue_cluster", "load_cluster_options",
           "JOBQUEUE_CLASSES"]

_USAGE = "expected local, local:N, tcp://HOST:PORT, slurm[:JOBS] or pbs[:JOBS]"

# the dask-jobqueue class of each batch system (a test puts a LocalCluster stand-in here)
JOBQUEUE_CLASSES = {"slurm": "dask_jobqueue.SLURMCluster", "pbs": "dask_jobqueue.PBSCluster"}


def _count(scheduler: str, default=None) -> int | None:
    if ":" not in scheduler:
        return default
    try:
        n = int(scheduler.split(":", 1)[1])
        if n < 1:
            raise ValueError
    except ValueError:
        raise RecipeError(f"--scheduler {scheduler!r}: {_USAGE}, with N >= 1") from None
    return n


def local_worker_memory(n: int) -> int:
    """Each of ``n`` local workers' share of this machine's memory (bytes)."""
    from distributed.system import MEMORY_LIMIT

    return int(MEMORY_LIMIT // max(1, n))


def load_cluster_options(source=None, recipe=None) -> dict:
    """The batch jobs' options: the table's ``cluster`` defaults, updated by the recipe's
    ``cluster`` section, updated by the YAML file ``source`` (keys of that section, or a
    mapping with a ``cluster`` key)."""
    import yaml

    from . import options as O

    opts = {k: o.default for k, o in O.SECTIONS["cluster"].items()}
    if recipe is not None:
        opts.update(dict(recipe.options[0].cluster.to_dict()))
    if source is not None:
        p = Path(source).expanduser()
        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except OSError as exc:
            from ..errors import InputFileError

            raise InputFileError(f"--cluster {source}: cannot read it ({exc.strerror})") from None
        if isinstance(doc, Mapping) and isinstance(doc.get("cluster"), Mapping):
            doc = doc["cluster"]
        if not isinstance(doc, Mapping):
            raise RecipeError(f"--cluster {source}: expected a mapping of the cluster options "
                              f"({', '.join(opts)})")
        for k, v in doc.items():
            if k not in opts:
                raise RecipeError(f"--cluster {source}: unknown option {k!r}; options: "
                                  f"{', '.join(opts)}")
            if O.SECTIONS["cluster"][k].listify and isinstance(v, str):
                v = [v]
            _check_type(O.SECTIONS["cluster"][k], v, f"--cluster {source}: {k}")
            O.check_value("cluster", k, v, where=f"--cluster {source}: {k}")
            opts[k] = v
    return opts


def _check_type(opt, v, where: str) -> None:
    want = opt.types
    ok = ((v is None and "null" in want)
          or ("integer" in want and isinstance(v, int) and not isinstance(v, bool))
          or ("string" in want and isinstance(v, str))
          or ("array" in want and isinstance(v, list) and all(isinstance(x, str) for x in v)))
    if not ok:
        kinds = {"integer": "an integer", "string": "a string", "array": "a list of strings"}
        expected = " or ".join(kinds[t] for t in want if t in kinds)
        raise RecipeError(f"{where}: got {v!r}; expected {expected}")


def jobqueue_kwargs(opts: Mapping) -> dict:
    """dask-jobqueue keyword arguments of the cluster options ``opts``: each job has
    ``cores`` cores and ``memory`` split among ``processes`` worker processes, each
    declaring its share as the ``MEMORY`` resource and running numba on its share of the
    cores."""
    from dask.utils import parse_bytes

    procs = int(opts["processes"])
    cores = int(opts["cores"])
    if procs > cores:
        raise RecipeError(f"cluster.processes {procs}: more worker processes than the "
                          f"{cores} cores of a job; give processes <= cores")
    try:
        per_worker = parse_bytes(str(opts["memory"])) // procs
    except ValueError:
        raise RecipeError(f"cluster.memory {opts['memory']!r}: expected an amount such as "
                          f"'8GB' or '16GiB'") from None
    threads = max(1, cores // procs)
    res = memory_resources(per_worker)
    kw = dict(cores=cores, processes=procs, memory=str(opts["memory"]),
              walltime=str(opts["walltime"]),
              job_extra_directives=list(opts.get("job_extra") or ()),
              worker_extra_args=["--resources", ",".join(f"{k}={v}" for k, v in res.items())],
              job_script_prologue=[f"export NUMBA_NUM_THREADS={threads}",
                                   f"export OMP_NUM_THREADS={threads}"])
    for k in ("queue", "account"):
        if opts.get(k):
            kw[k] = str(opts[k])
    return kw


def make_jobqueue_cluster(kind: str, opts: Mapping, jobs: int | None = None):
    """A started dask-jobqueue cluster of ``kind`` ("slurm" or "pbs") asking for ``jobs``
    jobs (default ``opts["jobs"]``; 0 submits none, e.g. to look at ``job_script()``)."""
    import importlib

    spec = JOBQUEUE_CLASSES[kind]
    if isinstance(spec, str):
        mod, _, cls = spec.rpartition(".")
        spec = getattr(importlib.import_module(mod), cls)
    cluster = spec(**jobqueue_kwargs(opts))
    n = int(opts.get("jobs", 1)) if jobs is None else int(jobs)
    if n:
        cluster.scale(jobs=n)
    return cluster


@contextlib.contextmanager
def dask_client(scheduler: str | None, *, cluster_options: Mapping | None = None,
                wait_timeout: float = 600.0):
    """A Dask client on the cluster ``scheduler`` names (see the module docstring), closed
    (with the cluster fermixr started) on exit; None for ``local``."""
    if scheduler in (None, "", "local"):
        yield None
        return
    scheduler = str(scheduler)
    from distributed import Client, LocalCluster

    kind = scheduler.split(":", 1)[0]
    if scheduler.startswith("tcp://"):
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    if kind == "local":
        n = _count(scheduler)
        mem = local_worker_memory(n)
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
            memory_limit=mem, resources=memory_resources(mem),
            env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
    elif kind in JOBQUEUE_CLASSES:
        opts = dict(cluster_options or load_cluster_options())
        cluster = make_jobqueue_cluster(kind, opts, _count(scheduler))
    else:
        raise RecipeError(f"--scheduler {scheduler!r}: {_USAGE}")
    try:
        client = Client(cluster)
        try:
            if kind in JOBQUEUE_CLASSES:
                client.wait_for_workers(1, timeout=wait_timeout)
            yield client
        finally:
            client.close()
    finally:
        cluster.close()
