"""Cache keys: sha256 over canonical JSON, and content hashes of input files.

A key never uses Python's ``hash()``/``id()`` and never hashes source code: it is built from
the step name, the step's explicit version, its resolved parameters (empty values dropped),
the identities of its input products and the content hashes of its input files.
Execution options (scheduler, threads, progress) are not part of it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np

_CHUNK = 1 << 22


def _canonical(obj):
    """Turn ``obj`` into plain JSON types with a stable representation."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_canonical(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return _canonical(obj.item())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj) and obj == int(obj) and abs(obj) < 2**53:
            # 2 and 2.0 are the same parameter value
            return int(obj)
        return repr(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot build a cache key from a value of type {type(obj).__name__}")


def drop_empty(obj):
    """Drop ``None``, empty strings, lists and dicts from (nested) mappings, so that an
    option left at "nothing" does not change the key."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            v = drop_empty(v)
            if v is None or (isinstance(v, (str, list, tuple, dict)) and len(v) == 0):
                continue
            out[k] = v
        return out
    if isinstance(obj, (list, tuple)):
        return [drop_empty(v) for v in obj]
    return obj


def canonical_json(obj) -> str:
    return json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest(obj) -> str:
    """sha256 hex digest of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(_CHUNK)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


class FileHashCache:
    """Content hashes of files, remembered in a small JSON file so that a decade of FT2 is
    read once, not at every run.

    An entry is trusted only while the file's size, mtime, inode and ctime are all unchanged.
    A rewrite in place changes ctime and a replacement changes the inode even when size and
    mtime are put back (``os.utime`` cannot set ctime), so changed content is always hashed
    again.  An entry made within ``RACY_SECONDS`` of the file's last change is not kept: the
    kernel stamps times at tick resolution, so a rewrite in that same tick could keep every
    field (git's "racy clean" case); such a file is hashed again at the next look."""

    RACY_SECONDS = 2.0

    def __init__(self, cache_file: str | os.PathLike | None):
        self._file = Path(cache_file) if cache_file else None
        self._data: dict[str, list] = {}
        if self._file and self._file.exists():
            try:
                self._data = json.loads(self._file.read_text())
            except (OSError, ValueError):
                self._data = {}
        self._dirty = False

    @staticmethod
    def signature(st: os.stat_result) -> list:
        """What must be unchanged for a remembered hash to be used."""
        return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]

    def hash(self, path: str | os.PathLike) -> str:
        p = Path(path).resolve()
        sig = self.signature(p.stat())
        ent = self._data.get(str(p))
        if ent and len(ent) == len(sig) + 1 and ent[:-1] == sig:
            return ent[-1]
        h = file_sha256(p)
        after = p.stat()
        if self.signature(after) != sig:
            # changed while being read: hash what is there now, remember nothing
            return file_sha256(p)
        if time.time_ns() - after.st_ctime_ns > self.RACY_SECONDS * 1e9:
            self._data[str(p)] = sig + [h]
            self._dirty = True
        elif str(p) in self._data:
            del self._data[str(p)]
            self._dirty = True
        return h

    def save(self) -> None:
        if not (self._file and self._dirty):
            return
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_name(f".{self._file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._data, sort_keys=True))
        os.replace(tmp, self._file)
        self._dirty = False


def dataset_digest(ds) -> str:
    """Content hash of a dataset's variables and coordinates, attrs left out (for small products
    whose identity should be their content, e.g. GTIs)."""
    h = hashlib.sha256()
    for name in sorted(list(ds.coords) + list(ds.data_vars)):
        arr = np.ascontiguousarray(ds[name].values)
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()
