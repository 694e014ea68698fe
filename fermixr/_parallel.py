"""One ordered map-reduce on a Dask client, for every parallel loop of the package.

``ordered_map(client, func, items)`` applies ``func(item, *shared)`` to each item -- in
this process when ``client`` is None, on the cluster's workers otherwise -- and hands the
results back, or folds them with ``reduce``, strictly in item order.  Whatever the number
of workers and whichever task finishes first, the fold sees the same results in the same
order, so a floating-point sum is bit-identical on 1, 2 or N workers (and equal to the
in-process run).  Items may be a generator: at most ``window`` items are taken ahead of
the fold, so a loop over the row blocks of a large FT2 file never holds them all.

Memory is a Dask resource: workers started by fermixr declare ``MEMORY`` (bytes, from
their memory limit, see :func:`memory_resources`) and a task given an estimate asks for
that much, so a worker never runs together more tasks than its memory holds.  A task whose
estimate exceeds what every worker declares would wait forever; it is refused, never
submitted, with :class:`~fermixr.errors.ResourceError`.

Used by the livetime cube's row blocks (:mod:`fermixr.exposure.ltcube`), the engine's
independent tasks -- products, time bins of a light curve, regions of a many-ROI run --
(:mod:`fermixr.engine.executor`), and the regions of ``fermixr run A.yaml B.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .errors import ResourceError

__all__ = ["MEMORY", "memory_resources", "worker_memory", "largest_memory", "check_memory",
           "ordered_map"]

MEMORY = "MEMORY"          # the name of the Dask resource: bytes of memory


def memory_resources(limit_bytes) -> dict:
    """The ``resources`` a worker with a memory limit of ``limit_bytes`` declares."""
    return {MEMORY: int(limit_bytes)}


def _workers(client) -> dict:
    return client.scheduler_info(n_workers=-1).get("workers", {}) if _new_info(client) \
        else client.scheduler_info().get("workers", {})


def _new_info(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def worker_memory(client) -> dict[str, float | None]:
    """``{worker address: MEMORY it declares, or None}``."""
    return {addr: (w.get("resources") or {}).get(MEMORY)
            for addr, w in _workers(client).items()}


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def largest_memory(client) -> float | None:
    """The most ``MEMORY`` a worker declares, or None when none declares it (then tasks
    must not ask for it: they would wait forever)."""
    declared = [m for m in worker_memory(client).values() if m is not None]
    return max(declared) if declared else None


def check_memory(estimate: float, top: float | None, what: str) -> bool:
    """Whether a task of ``estimate`` bytes should ask for ``MEMORY`` (``top``: what the
    largest worker declares, see :func:`largest_memory`); raises :class:`ResourceError`
    when the estimate exceeds it."""
    if top is None:
        return False
    if estimate > top:
        raise ResourceError(
            f"{what}: needs an estimated {_gib(estimate)} of memory but the largest worker "
            f"offers {_gib(top)} (its {MEMORY} resource); give the workers more memory "
            f"(scheduler option memory) or make the task smaller")
    return True


def _nworkers(client) -> int:
    try:
        return max(1, len(client.nthreads()))
    except Exception:          # noqa: BLE001 -- a client without worker info: one
        return 1


def ordered_map(client, func: Callable, items: Iterable, *, shared: tuple = (),
                reduce: Callable | None = None, initial=None, memory=None,
                errors: str = "raise", window: int | None = None,
                on_result: Callable | None = None, scatter: bool = False,
                name: str = "task", local: Callable | None = None):
    """``func(item, *shared)`` for every item, results taken in item order.

    ``client``: a ``distributed.Client`` or None (run here, one item after another).
    ``shared``: arguments common to every call (scattered once to every worker).
    ``reduce(acc, result) -> acc`` folds the results in item order starting from
    ``initial`` and the fold is returned; without it the list of results is returned.
    ``memory``: the estimated bytes of one task, a number or ``memory(item)``; handed to
    Dask as the ``MEMORY`` resource (see the module docstring).  ``errors``: "raise" (the
    first failure in item order is raised, the tasks not started are cancelled) or
    "return" (the exception takes the failed item's place and the others run on).
    ``window``: most tasks running at once (default 3 per worker); finished results wait
    for their turn in the fold, at most 4 x ``window`` items held.
    ``on_result(index, item, result)`` is called in item order (progress, bookkeeping).
    ``scatter``: send each item to the cluster ahead of its task (large arrays).
    ``local``: the function to call in this process instead of ``func`` (e.g. a variant
    that uses this process's threads); same arguments."""
    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
    if errors == "return" and reduce is not None:
        # a failed item left out of a fold would be a silently wrong sum
        raise ValueError("errors='return' cannot be combined with reduce")
    acc = initial
    results: list = []

    def take(i, item, res):
        nonlocal acc
        if on_result is not None:
            on_result(i, item, res)
        if reduce is not None and not isinstance(res, BaseException):
            acc = reduce(acc, res)
        elif reduce is None:
            results.append(res)

    def mem_of(item):
        if memory is None:
            return None
        return float(memory(item) if callable(memory) else memory)

    if client is None:
        f = local or func
        for i, item in enumerate(items):
            try:
                res = f(item, *shared)
            except Exception as exc:        # noqa: BLE001 -- recorded or re-raised
                if errors == "raise":
                    raise
                res = exc
            take(i, item, res)
        return acc if reduce is not None else results

    from distributed import wait

    nw = _nworkers(client)
    window = int(window) if window else 3 * nw
    shared_f = client.scatter(list(shared), broadcast=True) if shared else []
    top: list = []                            # [largest MEMORY declared], once
    inflight: dict[int, tuple] = {}          # index -> (item, future)
    next_i = 0                                # the next index to fold
    it = enumerate(items)
    exhausted = False

    def submit(i, item):
        kw = {}
        est = mem_of(item)
        if est is not None:
            if not top:
                top.append(largest_memory(client))
            if check_memory(est, top[0], f"{name} {i}"):
                kw["resources"] = {MEMORY: est}
        arg = client.scatter([item])[0] if scatter else item
        fut = client.submit(func, arg, *shared_f, pure=False, key=f"{name}-{i}-{_token()}",
                            **kw)
        inflight[i] = (item, fut)

    try:
        while True:
            # keep ``window`` tasks running; finished ones wait for their turn in the fold
            # (at most 4 x window items held)
            running = sum(not f.done() for _, f in inflight.values())
            while not exhausted and running < window and len(inflight) < 4 * window:
                try:
                    i, item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                submit(i, item)
                running += 1
            if not inflight:
                break
            folded = False
            while next_i in inflight and inflight[next_i][1].done():
                item, fut = inflight.pop(next_i)
                try:
                    res = fut.result()
                except Exception as exc:    # noqa: BLE001 -- recorded or re-raised
                    if errors == "raise":
                        raise
                    res = exc
                finally:
                    fut.release()
                take(next_i, item, res)
                next_i += 1
                folded = True
            if not folded:
                wait([f for _, f in inflight.values() if not f.done()],
                     return_when="FIRST_COMPLETED")
    finally:
        for _, fut in inflight.values():
            fut.cancel()
    return acc if reduce is not None else results


def _token() -> str:
    import uuid

    return uuid.uuid4().hex[:12]
