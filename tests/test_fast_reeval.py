"""Incremental re-evaluation of the binned Poisson cost (``__call__`` after a change of a few
sources' parameters) against full evaluations of the same cost, over long random sequences
of changes."""

from __future__ import annotations

import numpy as np
import pytest

from fermixr.irf.drm import identity_drm, true_energy_axis
from fermixr.likelihood import cost as C
from fermixr.likelihood._kernels import loglike_reference
from fermixr.likelihood.cost import BinnedPoissonCost, SourceTerm
from fermixr.likelihood.dispersed import DispersedPoissonCost

NY = NX = 40
NSRC = 16          # compact sources; one more, the last, is a flat background


def _blob_maps(nodes, rng, nsrc=NSRC):
    """(nsrc + 1, n_nodes, NY * NX) maps: truncated Gaussians whose width falls with
    energy (a PSF-like support: wide at the first nodes, a few pixels at the last) and a
    flat background map last."""
    yy, xx = np.mgrid[:NY, :NX]
    maps = np.zeros((nsrc + 1, nodes.size, NY * NX))
    for s in range(nsrc):
        cy, cx = rng.uniform(0, NY), rng.uniform(0, NX)
        for k, e in enumerate(nodes):
            sig = 5.0 * (e / nodes[0]) ** -0.6 + 0.7
            g = np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / sig ** 2)
            g[g < 2e-3] = 0.0
            maps[s, k] = g.ravel() / g.sum() * 3e11 * (1.0 + 0.2 * rng.random())
    maps[nsrc] = 3e11 / (NY * NX) * 40.0
    return maps


def _terms(rng, nsrc=NSRC):
    t = [SourceTerm.make(f"s{j:02d}", "PowerLaw",
                         [1e-12 * rng.uniform(0.3, 4.0), -rng.uniform(1.6, 2.6), 1000.0],
                         free=["Prefactor", "Index"] if j % 3 == 0 else ["Prefactor"])
         for j in range(nsrc - 2)]
    t.append(SourceTerm.make(f"s{nsrc - 2:02d}", "LogParabola",
                             [2e-12, 2.0, 0.1, 1000.0], free=["norm", "alpha", "beta"]))
    t.append(SourceTerm.make(f"s{nsrc - 1:02d}", "PowerLaw", [1e-12, -2.0, 1000.0]))  # fixed
    t.append(SourceTerm.make("bkg", "PowerLaw", [1e-12, -2.1, 1000.0], free=["Prefactor"]))
    return t


@pytest.fixture(scope="module")
def plain():
    rng = np.random.default_rng(7)
    edges = np.geomspace(100.0, 1e5, 9)
    maps = _blob_maps(edges, rng)
    terms = _terms(rng)
    c0 = BinnedPoissonCost(np.zeros((edges.size - 1, NY * NX)), maps, edges, terms)
    counts = rng.poisson(c0.model_cube(c0.x0).reshape(edges.size - 1, -1)).astype(float)
    wmap = rng.uniform(0.2, 1.0, counts.shape)
    wmap[:, :NX] = 0.0                      # a zero-weight stripe
    return edges, maps, terms, counts, wmap


def _step(cost, x, rng, saved):
    """One random change of ``x``: mostly one parameter of one compact source (norm or
    shape), sometimes a norm to 0 and later back, two sources at once, or the background
    (which needs a full evaluation)."""
    x = x.copy()
    names = cost.parameters
    src = [n.split(":")[0] for n in names]
    u = rng.random()
    if u < 0.08 and saved:                                 # a zeroed norm comes back
        q, v = saved.popitem()
        x[q] = v
    elif u < 0.16:                                         # a compact source's norm to 0
        q = int(rng.choice([k for k, n in enumerate(names) if cost.is_norm[k]
                            and not n.startswith("bkg")]))
        if x[q] != 0.0:
            saved[q] = x[q]
        x[q] = 0.0
    elif u < 0.24:                                         # two sources at once
        for q in rng.choice([k for k, s in enumerate(src) if s != "bkg"], 2, replace=False):
            x[q] = x[q] * (1.0 + 0.2 * rng.standard_normal()) if x[q] else 0.1
    elif u < 0.28:                                         # the background
        q = src.index("bkg")
        x[q] *= 1.0 + 0.05 * rng.standard_normal()
    else:                                                  # one parameter of one source
        q = int(rng.choice([k for k, s in enumerate(src) if s != "bkg"]))
        if cost.is_norm[q]:
            x[q] = x[q] * np.exp(0.5 * rng.standard_normal()) if x[q] else 0.5
        else:
            x[q] += 0.15 * rng.standard_normal()
    return x


def _compare(cost, ref, rng, nsteps=300, rtol=1e-10):
    x = cost.x0.copy()
    saved: dict = {}
    worst = 0.0
    for k in range(nsteps):
        x = _step(cost, x, rng, saved)
        a = cost(x)
        b = ref(x)
        if k % 40 == 0:          # the gradient path in between (a full evaluation)
            va, ga = cost.value_and_grad(x)
            vb, gb = ref.value_and_grad(x)
            assert va == vb
            np.testing.assert_array_equal(ga, gb)
        assert np.isfinite(b)
        worst = max(worst, abs(a - b) / abs(b))
        assert a == pytest.approx(b, rel=rtol, abs=0.0), f"step {k}"
    return worst


def _pair(*args, **kw):
    cost = BinnedPoissonCost(*args, **kw)
    ref = BinnedPoissonCost(*args, **kw)
    ref.incremental = False
    return cost, ref


@pytest.mark.parametrize("case", ["plain", "wmap", "bin_range", "float32", "parallel",
                                  "serial"])
def test_incremental_equals_full_over_random_sequences(plain, case):
    edges, maps, terms, counts, wmap = plain
    kw = {}
    if case == "wmap":
        kw["wmap"] = wmap
    elif case == "bin_range":
        kw["bin_range"] = (2, 6)
    elif case == "float32":
        maps = maps.astype(np.float32)
    elif case in ("parallel", "serial"):
        kw["parallel"] = case == "parallel"
    cost, ref = _pair(counts, maps, edges, terms, **kw)
    worst = _compare(cost, ref, np.random.default_rng(11))
    n = cost.n_evaluations
    # the path under test was taken for most steps (the background steps, the 'every N'
    # rule and the gradient calls are full)
    assert n["incremental"] > 200, n
    assert ref.n_evaluations["incremental"] == 0
    assert worst < 1e-10


def test_value_matches_the_numpy_reference_after_many_updates(plain):
    """After a long sequence (with writes into the kept cube), the value equals the plain
    numpy reference (an independent implementation) at the final point."""
    edges, maps, terms, counts, wmap = plain
    cost = BinnedPoissonCost(counts, maps, edges, terms, wmap=wmap)
    rng = np.random.default_rng(3)
    x = cost.x0.copy()
    saved: dict = {}
    for _ in range(150):
        x = _step(cost, x, rng, saved)
        cost(x)
    assert cost.n_evaluations["incremental"] > 100
    assert cost._base.commits > 0          # the last value stands on written updates
    v = cost(x)
    lo, hi = cost._node_weights_of(range(len(cost.sources)), x)
    ll, *_ = loglike_reference(counts, wmap, np.zeros((0, 0)), maps,
                               np.arange(len(cost.sources)), lo, hi, 0, counts.shape[0])
    assert -v == pytest.approx(ll, rel=1e-11)


def test_memo_never_returns_a_stale_value(plain):
    edges, maps, terms, counts, _ = plain
    cost, ref = _pair(counts, maps, edges, terms)
    rng = np.random.default_rng(5)
    xs = [cost.x0.copy()]
    for _ in range(6):
        xs.append(_step(cost, xs[-1], rng, {}))
    truth = [ref(x) for x in xs]
    order = list(rng.integers(0, len(xs), 200))
    for k, i in enumerate(order):
        x = xs[i].copy()                      # a new array with the same values
        if k % 7 == 0:
            v = cost.value_and_grad(x)[0]
        else:
            v = cost(x)
        assert v == pytest.approx(truth[i], rel=1e-10), (k, i)
    # one ulp away from a memoised point is another point
    x = xs[-1].copy()
    cost(x)
    q = int(np.flatnonzero(cost.is_norm)[0])
    y = x.copy()
    y[q] = np.nextafter(y[q], np.inf) * (1 + 1e-6)
    assert cost(y) != cost(x)
    assert cost(y) == pytest.approx(ref(y), rel=1e-12)
    # products at an incrementally reached point are those of the point
    np.testing.assert_allclose(cost.model_cube(y), ref.model_cube(y), rtol=1e-12)
    np.testing.assert_allclose(cost.grad(y), ref.grad(y), rtol=1e-12)


def test_a_zero_model_under_counts_gives_minus_infinity(plain):
    """A pixel with counts whose model becomes 0 (the only source there switched off) is
    log L = -inf, incremental or not; switched back on, finite again."""
    edges, _, _, counts, _ = plain
    rng = np.random.default_rng(2)
    maps = _blob_maps(edges, rng, nsrc=6)[:6]            # no background
    terms = [SourceTerm.make(f"s{j}", "PowerLaw", [1e-12, -2.0, 1000.0], free=["Prefactor"])
             for j in range(6)]
    c0 = BinnedPoissonCost(np.zeros(counts.shape), maps, edges, terms)
    mu = c0.model_cube(c0.x0).reshape(counts.shape)
    n = rng.poisson(mu).astype(float)
    cost, ref = _pair(n, maps, edges, terms)
    x = cost.x0.copy()
    assert np.isfinite(cost(x))
    for j in range(6):
        y = x.copy()
        y[j] = 0.0
        assert cost(y) == pytest.approx(ref(y), rel=1e-10)
        assert cost(x) == pytest.approx(ref(x), rel=1e-10)
    y = np.zeros_like(x)
    assert cost(y) == np.inf == ref(y)


def test_large_changes_are_caught_by_the_rounding_bound(plain):
    """A norm pushed up by 1e8 and back: the cancellation would cost ~8 digits on the
    pixels it dominates; the rounding bound sends those points to a full evaluation."""
    edges, maps, terms, counts, _ = plain
    cost, ref = _pair(counts, maps, edges, terms)
    x = cost.x0.copy()
    cost(x)
    q = int(np.flatnonzero(cost.is_norm)[0])
    r = int(np.flatnonzero(cost.is_norm)[1])
    for f in (1e8, 1.0, 1e8, 1.0):
        y = x.copy()
        y[q] *= f
        y[r] *= 1.0 + 1e-3 * f ** 0.1        # two sources: written into the cube
        assert cost(y) == pytest.approx(ref(y), rel=1e-11)
    assert cost(x) == pytest.approx(ref(x), rel=1e-11)


def test_cost_sum_updates_each_component(plain):
    edges, maps, terms, counts, wmap = plain
    a, ra = _pair(counts, maps, edges, terms)
    b, rb = _pair(counts[::-1].copy(), maps, edges, terms, wmap=wmap)
    tot, ref = a + b, ra + rb
    _compare(tot, ref, np.random.default_rng(9), nsteps=120)
    assert a.n_evaluations["incremental"] > 60 and b.n_evaluations["incremental"] > 60


# -- energy dispersion -------------------------------------------------------------------
@pytest.fixture(scope="module")
def dispersed():
    rng = np.random.default_rng(17)
    meas = np.geomspace(200.0, 50000.0, 9)
    true = true_energy_axis(meas, 1)
    nm, nt = meas.size - 1, true.size - 1
    maps = _blob_maps(true, rng)
    terms = _terms(rng)
    drm = np.zeros((nm, nt))
    for i in range(nm):                         # a banded response, columns sum to ~1
        drm[i, i] = 0.2
        drm[i, i + 1] = 0.6
        drm[i, i + 2] = 0.15
    drms = [identity_drm(nm, 1) if j % 5 == 4 else drm for j in range(len(terms))]
    c0 = DispersedPoissonCost(np.zeros((nm, NY * NX)), maps, true, terms, drms)
    counts = rng.poisson(c0.model_cube(c0.x0).reshape(nm, -1)).astype(float)
    wmap = rng.uniform(0.0, 1.0, counts.shape)
    return counts, maps, true, terms, drms, wmap


@pytest.mark.parametrize("case", ["plain", "wmap", "parallel"])
def test_dispersed_incremental_equals_full(dispersed, case):
    counts, maps, true, terms, drms, wmap = dispersed
    kw = {"wmap": wmap} if case == "wmap" else {}
    if case == "parallel":
        kw["parallel"] = True
    cost = DispersedPoissonCost(counts, maps, true, terms, drms, **kw)
    ref = DispersedPoissonCost(counts, maps, true, terms, drms, **kw)
    ref.incremental = False
    _compare(cost, ref, np.random.default_rng(13), nsteps=200)
    assert cost.n_evaluations["incremental"] > 120, cost.n_evaluations
    assert ref.n_evaluations["incremental"] == 0


def test_written_updates_are_bounded(plain, monkeypatch):
    """At most INCREMENTAL_MAX_COMMITS updates are written into the kept cube; after
    that the cube stays where it is, and once more sources differ from it than
    INCREMENTAL_MAX_SOURCES a full evaluation starts afresh."""
    edges, maps, terms, counts, _ = plain
    monkeypatch.setattr(C, "INCREMENTAL_MAX_COMMITS", 5)
    cost, ref = _pair(counts, maps, edges, terms)
    x = cost.x0.copy()
    cost(x)
    norms = [int(k) for k in np.flatnonzero(cost.is_norm)[:-1]]     # not the background
    most = 0
    for k in range(40):
        x = x.copy()
        q, r = norms[k % len(norms)], norms[(k + 1) % len(norms)]
        x[q] *= 1.01
        x[r] *= 0.99
        assert cost(x) == pytest.approx(ref(x), rel=1e-11)
        most = max(most, cost._base.commits)
    assert most == 5
    assert cost.n_evaluations["full"] >= 4
    assert cost.n_evaluations["incremental"] >= 30
