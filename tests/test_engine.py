"""The engine on toy steps: keys, atomic commits, caching, recomputation, sharing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr

from fermixr.engine import store as store_mod
from fermixr.engine.executor import Executor, Task
from fermixr.engine.hashing import canonical_json, digest, drop_empty
from fermixr.engine.steps import register_step
from fermixr.errors import StepError

CALLS: list[str] = []


def _gti_like(start, stop):
    return xr.Dataset(
        {"START": ("gti", np.asarray(start, float), {"units": "s"}),
         "STOP": ("gti", np.asarray(stop, float), {"units": "s"})},
        attrs={"fermixr_product": "gti", "TSTART": float(start[0]), "TSTOP": float(stop[-1]),
               "MJDREF": 51910.0},
    )


@register_step("_toy_source", version="1", product="gti", identity="content")
def _toy_source(inputs, params, ctx):
    CALLS.append("source")
    n = params["n"]
    return _gti_like(np.arange(n) * 10.0, np.arange(n) * 10.0 + params.get("width", 5.0))


@register_step("_toy_scale", version="1", product="gti")
def _toy_scale(inputs, params, ctx):
    CALLS.append("scale")
    ds = inputs["src"].load()
    return _gti_like(ds["START"].values * params["factor"], ds["STOP"].values * params["factor"])


@register_step("_toy_fail", version="1", product="gti")
def _toy_fail(inputs, params, ctx):
    raise RuntimeError("boom")


def _tasks(n=3, width=5.0, factor=2.0):
    return [
        Task("src", "_toy_source", {"n": n, "width": width}),
        Task("scaled", "_toy_scale", {"factor": factor}, inputs={"src": "src"}),
    ]


def test_canonical_json_is_order_free_and_int_float_equal():
    a = canonical_json({"b": 1, "a": [2.0, {"y": 1, "x": None}]})
    b = canonical_json({"a": [2, {"x": None, "y": 1}], "b": 1.0})
    assert a == b
    assert digest({"p": 1.5}) != digest({"p": 1.50000001})
    assert drop_empty({"a": None, "b": "", "c": [], "d": {"e": None}, "f": 0}) == {"f": 0}


def test_run_cache_and_recompute_downstream(tmp_path):
    CALLS.clear()
    ex = Executor(tmp_path, verbose=False)
    st1 = ex.run(_tasks())
    assert CALLS == ["source", "scale"]
    assert {s.status for s in st1.values()} == {"computed"}
    # unchanged: nothing recomputed
    CALLS.clear()
    st2 = Executor(tmp_path, verbose=False).run(_tasks())
    assert CALLS == [] and {s.status for s in st2.values()} == {"cached"}
    assert st2["scaled"].key == st1["scaled"].key
    # change the last step's parameter: only it recomputes
    CALLS.clear()
    st3 = Executor(tmp_path, verbose=False).run(_tasks(factor=3.0))
    assert CALLS == ["scale"]
    assert st3["src"].status == "cached" and st3["scaled"].status == "computed"
    # change the first: both recompute
    CALLS.clear()
    Executor(tmp_path, verbose=False).run(_tasks(n=4))
    assert CALLS == ["source", "scale"]
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert [t["status"] for t in manifest["tasks"]] == ["computed", "computed"]


def test_content_identity_shares_downstream(tmp_path):
    """A source product whose content does not change keeps downstream keys (GTIs)."""
    CALLS.clear()
    a = Executor(tmp_path, verbose=False).run(_tasks(width=5.0))
    # the width parameter changes the source key, but 5 and 5.0 are the same value;
    # use the force option to recompute the source with identical content
    CALLS.clear()
    b = Executor(tmp_path, verbose=False, force={"_toy_source"}).run(_tasks(width=5.0))
    assert CALLS == ["source"]
    assert b["scaled"].status == "cached" and b["scaled"].key == a["scaled"].key


def test_products_open_lazily_and_carry_provenance(tmp_path):
    st = Executor(tmp_path, verbose=False).run(_tasks())
    ds = xr.open_zarr(st["scaled"].path, consolidated=False)
    np.testing.assert_array_equal(ds["START"].values, [0.0, 20.0, 40.0])
    prov = store_mod.read_marker(st["scaled"].path)
    assert ds.attrs["fermixr_complete"]["key"] == st["scaled"].key
    assert prov["step"] == "_toy_scale" and prov["params"] == {"factor": 2.0}
    assert prov["key"] == st["scaled"].key
    assert os.path.islink(tmp_path / "products" / "scaled")


def test_failed_step_leaves_no_product(tmp_path):
    tasks = _tasks() + [Task("bad", "_toy_fail", {}, inputs={"src": "src"})]
    with pytest.raises(StepError, match="_toy_fail.*boom"):
        Executor(tmp_path, verbose=False).run(tasks)
    store = tmp_path / ".store"
    names = sorted(p.name for p in store.iterdir() if p.is_dir())
    assert all(not n.startswith(".tmp") for n in names)
    assert all(store_mod.read_marker(store / n) is not None for n in names)
    assert not (tmp_path / "products" / "bad").exists()


def test_interrupted_write_is_invisible(tmp_path, monkeypatch):
    """An exception (or a kill) between the zarr write and the commit leaves nothing."""
    st = store_mod.ProductStore(tmp_path / "s")
    ds = _gti_like([0.0], [1.0])

    def explode(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod.os, "rename", explode)
    with pytest.raises(KeyboardInterrupt):
        st.write(ds, "gti", "k" * 64, {})
    monkeypatch.undo()
    assert not st.exists("gti", "k" * 64)
    assert list((tmp_path / "s").iterdir()) == []


def test_debris_of_dead_writers_is_removed(tmp_path):
    st = store_mod.ProductStore(tmp_path)
    dead = tmp_path / ".tmp-gti-abc-999999999-dead"
    dead.mkdir()
    (dead / "zarr.json").write_text("{}")
    assert dead in st.clean_debris()
    assert not dead.exists()


def test_input_file_rewritten_with_same_size_and_mtime_changes_the_key(tmp_path, monkeypatch):
    """A FileFunction table edited in place, its size kept and its mtime put back with
    os.utime, is hashed again: the step's key changes and it recomputes; an untouched file
    is served from the hash cache without being read."""
    from fermixr.engine import hashing

    # keep every entry, so that it is the (size, mtime, inode, ctime) rule that is tested
    # here and not the refusal to remember files changed in the last seconds
    monkeypatch.setattr(hashing.FileHashCache, "RACY_SECONDS", 0.0)
    reads = []
    real_sha = hashing.file_sha256
    monkeypatch.setattr(hashing, "file_sha256", lambda p: reads.append(p) or real_sha(p))
    table = tmp_path / "iso.txt"
    table.write_text("100 1.000e-03\n1000 1.000e-05\n")

    def tasks():
        return [Task("src", "_toy_source", {"n": 2}, files={"table": [str(table)]})]

    a = Executor(tmp_path / "run", verbose=False).run(tasks())
    assert len(reads) >= 1
    reads.clear()
    b = Executor(tmp_path / "run", verbose=False).run(tasks())
    assert reads == [] and b["src"].key == a["src"].key and b["src"].status == "cached"
    st = os.stat(table)
    import time
    time.sleep(0.05)                     # past the kernel's timestamp tick
    with open(table, "r+") as f:         # in place: same inode, same size
        f.write("100 3.000e-03\n1000 3.000e-05\n")
    os.utime(table, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(table).st_size == st.st_size and os.stat(table).st_mtime_ns == st.st_mtime_ns
    c = Executor(tmp_path / "run", verbose=False).run(tasks())
    assert c["src"].key != a["src"].key and c["src"].status == "computed"
