"""The one ordered map-reduce (fermixr._parallel.ordered_map) on a Dask client: results
folded in item order, so a floating-point sum -- the livetime cube's row blocks, the
engine's tasks -- is bit-identical on 1, 2 workers and without a cluster; memory estimates
handed to Dask as the MEMORY resource, a task larger than any worker refused at once; a
failed item recorded while the others finish; a killed worker loses nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fermixr._parallel import MEMORY, largest_memory, ordered_map
from fermixr.engine.cluster import dask_client
from fermixr.errors import FermixrError, ResourceError

REPO = Path(__file__).resolve().parent.parent
FT2 = REPO / "examples" / "data" / "ft2.fits"


@pytest.fixture(scope="module")
def one():
    with dask_client("local:1") as c:
        yield c


@pytest.fixture(scope="module")
def two():
    with dask_client("local:2") as c:
        yield c


def _scrambled(x):
    """Slow for early items so that later ones finish first."""
    i, arr = x
    time.sleep(0.05 * (i % 3 == 0))
    return arr * 1.0


def _add(acc, part):
    return part.copy() if acc is None else acc + part


def test_fold_is_in_item_order_whatever_the_workers(one, two):
    rng = np.random.default_rng(3)
    # magnitudes over 30 decades: the sum depends on the order of the additions
    items = [(i, rng.standard_normal(64) * 10.0 ** rng.uniform(-15, 15)) for i in range(24)]
    here = ordered_map(None, _scrambled, items, reduce=_add)
    res = [ordered_map(c, _scrambled, items, reduce=_add, window=6) for c in (one, two)]
    for r in res:
        assert r.tobytes() == here.tobytes()
    # and the test can tell: another order gives other bits
    back = ordered_map(None, _scrambled, items[::-1], reduce=_add)
    assert back.tobytes() != here.tobytes()
    # without reduce: the results in item order
    got = ordered_map(two, _scrambled, items[:7])
    assert [g.tobytes() for g in got] == [a.tobytes() for _, a in items[:7]]


def test_livetime_cube_identical_on_1_and_2_workers_and_matches_brute_force(one, two):
    from fermixr.exposure.ltcube import compute_ltcube, compute_ltcube_reference
    from fermixr.io.ft2 import read_ft2
    from fermixr.select.gti import ft2_coverage

    ft2 = read_ft2(FT2)
    gs, ge = ft2_coverage(ft2)
    kw = dict(nside=16, zmax=90.0, chunk_rows=500, ordering="RING")   # 6 row blocks
    calls = []
    here = compute_ltcube(FT2, gs, ge, progress=lambda d, t: calls.append((d, t)), **kw)
    assert calls[-1] == (2880, 2880) and len(calls) >= 6
    for c in (one, two):
        lt = compute_ltcube(FT2, gs, ge, client=c, **kw)
        for v in ("exposure", "weighted_exposure"):
            assert lt[v].values.tobytes() == here[v].values.tobytes(), v
    # the numbers themselves: the brute-force per-row x per-pixel sum
    ref = compute_ltcube_reference(ft2, gs, ge, zmax=90.0, nside=16, ordering="RING")
    np.testing.assert_allclose(here.exposure.values, ref.exposure.values, rtol=1e-9,
                               atol=1e-6)
    assert here.exposure.values.sum() > 1e4 * 16


def _restrictions(_item):
    from distributed import get_worker

    w = get_worker()
    return dict(w.state.tasks[w.get_current_task()].resource_restrictions or {})


def test_memory_estimates_reach_dask_and_a_too_large_task_is_refused(two):
    top = largest_memory(two)
    assert top is not None and top > 2 ** 26         # the workers declare their memory
    got = ordered_map(two, _restrictions, [0, 1, 2],
                      memory=lambda i: 2 ** 20 * (i + 1))
    assert got == [{MEMORY: 2 ** 20 * (i + 1)} for i in range(3)]
    t0 = time.monotonic()
    with pytest.raises(ResourceError) as e:
        ordered_map(two, _restrictions, [0], memory=top * 4, name="huge")
    assert time.monotonic() - t0 < 10                 # refused, not waiting for a worker
    assert isinstance(e.value, FermixrError) and isinstance(e.value, MemoryError)
    msg = str(e.value)
    assert "huge 0: needs an estimated" in msg and "largest worker offers" in msg
    assert len(msg.splitlines()) == 1


def _maybe_fail(i):
    if i == 2:
        raise ValueError("item two is broken")
    return i * i


def test_a_failed_item_is_recorded_and_the_others_finish(two):
    for c in (None, two):
        got = ordered_map(c, _maybe_fail, range(5), errors="return")
        assert [g for k, g in enumerate(got) if k != 2] == [0, 1, 9, 16]
        assert isinstance(got[2], ValueError)
        with pytest.raises(ValueError, match="item two is broken"):
            ordered_map(c, _maybe_fail, range(5))
    # a fold that would leave a failed item out of its sum is refused
    with pytest.raises(ValueError, match="cannot be combined with reduce"):
        ordered_map(None, _maybe_fail, range(5), errors="return", reduce=lambda a, b: b)


def _marked(args):
    folder, i = args
    time.sleep(0.6)
    Path(folder, f"done-{i}-{os.getpid()}").write_text(str(i))
    return i * 10


@pytest.mark.slow
def test_a_killed_worker_loses_no_finished_item(tmp_path):
    with dask_client("local:2") as c:
        pids = list(c.run(os.getpid).values())

        killed = []

        def killer():               # the worker that wrote the first marker
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                marks = list(tmp_path.glob("done-*"))
                if marks:
                    killed.append(int(marks[0].name.rsplit("-", 1)[1]))
                    os.kill(killed[0], signal.SIGKILL)
                    return
                time.sleep(0.02)

        t = threading.Thread(target=killer)
        t.start()
        got = ordered_map(c, _marked, [(str(tmp_path), i) for i in range(8)], window=8)
        t.join()
    assert got == [i * 10 for i in range(8)]
    done = {int(p.name.split("-")[1]) for p in tmp_path.glob("done-*")}
    assert done == set(range(8))
    # the killed worker finished an item before it died; the survivor ran the rest,
    # including what the killed one had not reported
    assert killed and killed[0] in pids
    assert any(p.name.endswith(f"-{pids[1 - pids.index(killed[0])]}")
               for p in tmp_path.glob("done-*"))


# ----------------------------------------------------------- the executor's loop ---------
def _gti(n):
    import xarray as xr

    start = np.arange(n) * 10.0
    return xr.Dataset(
        {"START": ("gti", start, {"units": "s"}), "STOP": ("gti", start + 5.0, {"units": "s"})},
        attrs={"fermixr_product": "gti", "TSTART": 0.0, "TSTOP": float(start[-1] + 5.0),
               "MJDREF": 51910.0})


def _register_toys():
    from fermixr.engine.steps import _REGISTRY, register_step

    if "_par_make" in _REGISTRY:
        return

    @register_step("_par_make", version="1", product="gti")
    def _make(inputs, params, ctx):
        return _gti(params["n"])

    @register_step("_par_fail", version="1", product="gti")
    def _fail(inputs, params, ctx):
        raise RuntimeError("this step always fails")


def test_keep_going_records_a_failed_task_and_skips_what_needs_it(tmp_path):
    from fermixr.engine.executor import Executor, Task

    _register_toys()
    tasks = [Task("a", "_par_make", {"n": 2}),
             Task("bad", "_par_fail", {"x": 1}, inputs={"a": "a"}),
             Task("after_bad", "_par_make", {"n": 4}, inputs={"b": "bad"}),
             Task("b", "_par_make", {"n": 3})]
    with pytest.raises(FermixrError, match="always fails"):
        Executor(tmp_path / "strict", verbose=False).run(tasks)
    st = Executor(tmp_path / "kg", verbose=False, keep_going=True).run(tasks)
    assert {n: s.status for n, s in st.items()} == {
        "a": "computed", "bad": "failed", "after_bad": "failed", "b": "computed"}
    assert "always fails" in str(st["bad"].error)
    assert "its input 'bad' failed" in str(st["after_bad"].error)


def test_memory_estimate_of_the_livetime_cube_covers_its_arrays():
    from fermixr.engine.executor import Task, estimate_memory

    # binsz 1 deg -> nside 64, dcostheta 0.025 -> 40 bins: two float64 tables of 31.5 MB
    t = Task("ltcube", "ltcube", {"zmax": 90.0, "binsz": 1.0, "dcostheta": 0.025,
                                  "phibins": 0})
    cube = 12 * 64 ** 2 * 40 * 2 * 8
    assert 3 * cube < estimate_memory(t) < 20 * cube
    finer = dict(t.params, binsz=0.5)                   # nside 128: four times the pixels
    assert estimate_memory(Task("ltcube", "ltcube", finer)) > 3.5 * (estimate_memory(t)
                                                                     - 384 * 2 ** 20)
    geom = {"type": "wcs", "npix": [100, 100]}
    big = Task("s", "srcmap", {"geom": geom, "energies": list(range(33)), "rfactor": 2})
    assert estimate_memory(big) >= 100 * 100 * 33 * 8 * 4
