"""The product store: immutable, keyed zarr directories committed atomically.

Layout under the store root (``<outdir>/.store`` unless ``fileio.cachedir`` names a shared
one)::

    <kind>-<key[:20]>/            a committed product: a zarr group whose root attributes
                                  hold the completion marker (``fermixr_complete``: the
                                  provenance), added last
    .tmp-<kind>-<key[:12]>-<pid>-<rand>/   work in progress, never read

A product is written into a temporary sibling, the marker is added to its root metadata,
and the directory is renamed into place with one ``os.rename``.  A directory without the
marker does not exist for the engine, so a run killed at any instant leaves nothing a later
run takes for complete.  (The marker lives in ``zarr.json`` rather than in a file of its
own because zarr warns about every foreign file inside a group.)
Committed directories are never modified; a different result has a different key.

Run-level names (``counts``, ``counts/00``, ``sed/Crab``) are symlinks in
``<outdir>/products`` pointing at keyed directories; they are swapped with ``os.replace``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path

from ..errors import RecipeError, StoreError

MARKER = "fermixr_complete"  # key in the root zarr.json attributes
ZARR_CONSOLIDATED = True  # decided once: plain xr.open_zarr(path) then opens without a warning


class ProductStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- paths ------------------------------------------------------------------------
    def dirname(self, kind: str, key: str) -> str:
        safe = kind.replace("/", "_")
        return f"{safe}-{key[:20]}"

    def path(self, kind: str, key: str) -> Path:
        return self.root / self.dirname(kind, key)

    def exists(self, kind: str, key: str) -> bool:
        return read_marker(self.path(kind, key)) is not None

    def provenance(self, kind: str, key: str) -> dict | None:
        return read_marker(self.path(kind, key))

    # -- reading ----------------------------------------------------------------------
    def open(self, kind: str, key: str):
        """Open a committed product lazily (dask-backed) as an ``xarray.Dataset``."""
        p = self.path(kind, key)
        if read_marker(p) is None:
            raise StoreError(f"product {kind!r} with key {key[:12]} is not in the store {self.root}")
        return open_product_dir(p, dask=False)

    # -- writing ----------------------------------------------------------------------
    def write(self, ds, kind: str, key: str, provenance: dict) -> Path:
        """Write ``ds`` as the product (kind, key); return its committed path.

        If another writer committed the same key first, its directory is kept (same key,
        same content) and ours is discarded.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(kind, key)
        if read_marker(final) is not None:
            return final
        tmp = self.root / (
            f".tmp-{self.dirname(kind, key)[:40]}-{os.getpid()}-{secrets.token_hex(4)}"
        )
        _WRITING.add(tmp)
        try:
            _to_zarr(ds, tmp)
            _debug_pause()
            prov = dict(provenance)
            prov.setdefault("committed_utc", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            prov["key"] = key
            prov["kind"] = kind
            _add_marker(tmp, prov)
            if final.exists():
                # committed by a racing writer (same key, same content), or a directory
                # without marker that is no product: replace it
                if read_marker(final) is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return final
                _remove_tree(final)
            os.rename(tmp, final)
        except BaseException as exc:
            _remove_unfinished_dir(tmp)
            _name_os_error(exc, final)
            raise
        _WRITING.discard(tmp)
        return final

    # -- housekeeping -----------------------------------------------------------------
    def clean_debris(self) -> list[Path]:
        """Remove temporary directories left by dead processes."""
        removed = []
        if not self.root.is_dir():
            return removed
        for p in self.root.glob(".tmp-*"):
            parts = p.name.split("-")
            try:
                pid = int(parts[-2])
            except (ValueError, IndexError):
                continue
            if pid != os.getpid() and _pid_alive(pid):
                continue
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
        return removed


# temporary directories this process is writing (removed by remove_unfinished after an
# interrupt, should a second Ctrl-C have stopped write's own clean-up)
_WRITING: set = set()


def remove_unfinished() -> list[Path]:
    """Remove the temporary directories this process was writing or failed to write (the
    command line calls it before it exits on an error or Ctrl-C); returns them."""
    removed = []
    for tmp in list(_WRITING):
        if os.path.lexists(tmp):
            _remove_unfinished_dir(tmp, wait=1.0)
            removed.append(tmp)
        _WRITING.discard(tmp)
    return removed


def _drain_zarr_io(timeout: float = 10.0) -> None:
    """Wait for the chunk writes zarr's I/O thread still has pending: when one write of a
    product fails (a full disk), the others go on, and would recreate the directory
    removed after the failure."""
    import asyncio

    loop = None
    try:
        from zarr.core import sync as zsync

        loop = zsync.loop[0]
    except Exception:           # another zarr layout: nothing to wait for that we know of
        return
    if loop is None or not loop.is_running():
        return

    async def _wait():
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    try:
        asyncio.run_coroutine_threadsafe(_wait(), loop).result(timeout + 1.0)
    except Exception:
        pass


def _remove_unfinished_dir(tmp: Path, wait: float = 0.3) -> None:
    """Remove a temporary directory, once zarr's pending writes into it are over; try
    again until it stays away (``wait`` s)."""
    _drain_zarr_io()
    t_end = time.monotonic() + wait
    while True:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.lexists(tmp) or time.monotonic() > t_end:
            return
        time.sleep(0.05)


def _name_os_error(exc: BaseException, path: Path) -> None:
    """An operating-system error raised without a file name (zarr's writes: a full disk)
    gets the directory being written, so the message names it."""
    if isinstance(exc, OSError) and exc.errno and exc.filename is None:
        exc.filename = os.fspath(path)


def _debug_pause() -> None:
    """Fault injection for tests: ``FERMIXR_DEBUG_PAUSE_BEFORE_COMMIT=<seconds>`` holds a
    written but uncommitted product, so a test can kill the process mid-write."""
    pause = os.environ.get("FERMIXR_DEBUG_PAUSE_BEFORE_COMMIT")
    if pause:
        time.sleep(float(pause))


def read_marker(path: str | os.PathLike) -> dict | None:
    """The completion marker (provenance) of a product directory, or None if the
    directory is not a committed product."""
    try:
        with open(Path(path) / "zarr.json") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return (meta.get("attributes") or {}).get(MARKER)


def read_attrs(path: str | os.PathLike) -> dict:
    """The root attributes of a committed product, read from its metadata alone (no zarr
    or xarray needed)."""
    with open(Path(path) / "zarr.json") as f:
        return json.load(f).get("attributes") or {}


def _add_marker(path: Path, prov: dict) -> None:
    meta_file = path / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta.setdefault("attributes", {})[MARKER] = _json_safe(prov)
    tmp = path / ".zarr.json.tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, meta_file)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_tree(path: Path) -> None:
    trash = path.with_name(f".tmp-trash-{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _to_zarr(ds, path: Path) -> None:
    """Write a dataset to a new zarr directory, with attrs made JSON-safe."""
    import warnings

    ds = ds.copy(deep=False)
    ds.attrs = _json_safe(dict(ds.attrs))
    for name in list(ds.variables):
        var = ds.variables[name]
        if var.dtype.kind == "U":
            # fixed-width unicode has no zarr v3 specification; variable-length strings do
            ds = ds.assign_coords({name: var.astype(object)}) if name in ds.coords else \
                ds.assign({name: var.astype(object)})
        ds[name].attrs = _json_safe(dict(ds[name].attrs))
        # a product may ask for its chunking (source maps: one chunk per source)
        chunks = ds[name].encoding.get("chunks")
        ds[name].encoding = {"chunks": chunks} if chunks else {}
        if ds[name].dtype.kind in "biufc":
            # every chunk carries its checksum: `fermixr ls --verify` finds damaged ones
            from zarr.codecs import ZstdCodec

            ds[name].encoding["compressors"] = [ZstdCodec(level=0, checksum=True)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*consolidated.*")
        ds.to_zarr(path, mode="w-", consolidated=ZARR_CONSOLIDATED)


def open_product_dir(path: str | os.PathLike, dask: bool = True):
    """Open a product lazily: with dask arrays (``dask=True``, for users and large
    products) or with xarray's own lazy arrays (``dask=False``: no dask import, for the
    engine's small reads)."""
    import xarray as xr

    kw = {} if dask else {"chunks": None}
    try:
        return xr.open_zarr(os.fspath(path), consolidated=ZARR_CONSOLIDATED, **kw)
    except (ValueError, KeyError):
        # a product written before metadata was consolidated
        return xr.open_zarr(os.fspath(path), consolidated=False, **kw)


def _json_safe(obj):
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


# -- run-level names ------------------------------------------------------------------
class NameIndex:
    """Symlinks ``<outdir>/products/<name>`` -> keyed product directories."""

    def __init__(self, run_dir: str | os.PathLike):
        self.dir = Path(run_dir) / "products"

    def link(self, name: str, target: Path) -> None:
        link = self.dir / name
        link.parent.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(target, link.parent)
        tmp = link.with_name(f".{link.name}.{os.getpid()}.{secrets.token_hex(3)}.lnk")
        os.symlink(rel, tmp)
        os.replace(tmp, link)

    def resolve(self, name: str) -> Path | None:
        link = self.dir / name
        if not link.is_symlink() and not link.exists():
            return None
        target = link.resolve()
        if read_marker(target) is None:
            return None
        return target

    def names(self) -> list[str]:
        out = []
        if not self.dir.is_dir():
            return out
        for p in sorted(self.dir.rglob("*")):
            if p.is_symlink() and not p.name.startswith("."):
                out.append(p.relative_to(self.dir).as_posix())
        return out


def write_dataset_atomic(ds, path) -> Path:
    """Write ``ds`` as a zarr directory at ``path`` (outside the keyed store, e.g. a
    ``write_roi`` result): into a temporary sibling first, then renamed into place, so a
    reader never sees a half-written store and an existing one is replaced whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(3)}.tmp")
    _WRITING.add(tmp)
    trash = None
    try:
        _to_zarr(ds, tmp)
        if path.exists():
            # the old store is moved aside, not deleted, until the new one is in place
            trash = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(3)}.old")
            os.rename(path, trash)
        os.rename(tmp, path)
    except BaseException as exc:
        _remove_unfinished_dir(tmp)
        if trash is not None and not path.exists():
            os.rename(trash, path)
            trash = None
        _name_os_error(exc, path)
        raise
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    _WRITING.discard(tmp)
    return path


# -- the run folder's lock ------------------------------------------------------------
RUN_META_DIR = ".fermixr"          # fermixr's own files inside a run folder
LOCK_FILE = f"{RUN_META_DIR}/lock"


class RunLockedError(RecipeError):
    """The run folder (``fileio.outdir`` / ``--outdir``) is being written by another run."""


class RunLockWarning(UserWarning):
    """A stale lock (its run is no longer running) was taken over."""


def _flock(fd: int) -> bool | None:
    """An exclusive, non-blocking kernel lock on ``fd``: True when taken, False when another
    open file holds it, None where the file system offers no such lock."""
    try:
        import fcntl
    except ImportError:                         # not POSIX
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:                             # ENOLCK, EOPNOTSUPP: e.g. some network mounts
        return None
    return True


def _read_holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        doc = json.loads(raw.decode() or "{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _describe(holder: dict) -> str:
    if not holder:
        return "a run that has not yet written its pid"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"started {holder.get('started_utc', '?')}")


class RunLock:
    """The lock of a run folder, held while a run writes into it: ``<outdir>/.fermixr/lock``
    holds the holder's pid, host and start time.

    The file carries an exclusive ``flock``, which the kernel releases when the holder
    dies, so a lock left by a killed run is taken over (with a :class:`RunLockWarning`
    naming it); where ``flock`` is not available the recorded pid decides (a dead pid on
    this host is stale; a holder on another host is respected).  A second run into a locked
    folder stops at once with :class:`RunLockedError` (exit status 2) naming the holder."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import socket
        import warnings

        self.path.parent.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                got = _flock(fd)
                holder = _read_holder(fd)
                if got is False:
                    raise RunLockedError(
                        f"run folder {str(self.run_dir)!r} is in use by another fermixr run "
                        f"({_describe(holder)}); wait for it to end or give another --outdir")
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:            # released (unlinked) between our open and lock
                    os.close(fd)
                    continue
                if holder:
                    pid = holder.get("pid")
                    alive = (holder.get("host") == host and isinstance(pid, int)
                             and pid != os.getpid() and _pid_alive(pid))
                    if got is None and (alive or holder.get("host") != host):
                        raise RunLockedError(
                            f"run folder {str(self.run_dir)!r} is locked by "
                            f"{_describe(holder)} (no kernel lock on this file system, so "
                            f"its lock file {str(self.path)!r} decides); wait for it to end, "
                            f"or remove that file if that run is gone")
                    warnings.warn(
                        f"run folder {str(self.run_dir)!r}: taking over the stale lock of a "
                        f"run that is no longer running ({_describe(holder)})",
                        RunLockWarning, stacklevel=3)
                me = {"pid": os.getpid(), "host": host,
                      "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(me).encode(), 0)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self
        raise StoreError(f"could not take the lock {str(self.path)!r}: it keeps being replaced")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            # unlinked while still held, so that nobody takes a lock on a file about to go
            self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
