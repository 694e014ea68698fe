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


# -- scans of an analysis state (profile, TS): one memoised cost ------------------------
@pytest.fixture(scope="module")
def state(plain):
    from fermixr.likelihood.roi import AnalysisState, Component
    from fermixr.model.build import source_from_dict
    from fermixr.model.skymodel import SkyModel

    edges, maps, _, counts, wmap = plain
    srcs = []
    for k in range(NSRC):
        srcs.append(source_from_dict({
            "name": f"s{k:02d}", "ra": 10.0 + 0.1 * k, "dec": 0.0,
            "SpatialModel": "PointSource", "SpectrumType": "PowerLaw",
            "spectral_pars": {
                "Prefactor": {"value": 1.0 + 0.2 * k, "scale": 1e-12, "min": 0.0,
                              "max": 1e3, "free": k % 4 == 0},
                "Index": {"value": 2.0 + 0.03 * k, "scale": -1.0, "min": 0.0, "max": 5.0,
                          "free": k == 4},
                "Scale": {"value": 1000.0, "scale": 1.0, "free": False}}}))
    srcs.append(source_from_dict({
        "name": "bkg", "SpatialModel": "ConstantValue", "SpectrumType": "PowerLaw",
        "spectral_pars": {
            "Prefactor": {"value": 1.0, "scale": 1e-12, "min": 0.0, "max": 100.0,
                          "free": True},
            "Index": {"value": 2.1, "scale": -1.0, "free": False},
            "Scale": {"value": 1000.0, "scale": 1.0, "free": False}}}))
    model = SkyModel(tuple(srcs))
    names = [s.name for s in srcs]
    comp = Component(counts=counts, edges=edges, maps=dict(zip(names, maps)),
                     sky_shape=(NY, NX), wmap=wmap)
    priors = {"s00:Prefactor": (1.1, 0.3), "s04:Index": (2.0, 0.1)}
    return AnalysisState(components=(comp,), model=model, priors=priors)


@pytest.mark.parametrize("src,par,hold", [("s00", "Prefactor", True),
                                          ("s00", "Prefactor", False),
                                          ("s03", "Prefactor", True),
                                          ("s04", "Index", True), ("s04", "Index", False),
                                          ("s07", "Index", True)])
def test_loglike_scan_equals_loglike_of_each_state(state, src, par, hold):
    """loglike_scan (one memoised cost, incremental updates) against loglike of the state
    with the parameter set (and fixed with ``hold``) at each value: a new cost each."""
    from fermixr.likelihood.roi import loglike, loglike_scan

    s = state.model.find(src)
    p = s.param(par)
    vals = p.value * np.array([0.0, 0.5, 1.0, 1.3, 2.0]) if par == "Prefactor" else \
        p.value + np.array([-0.4, -0.1, 0.0, 0.2, 0.5])
    got = loglike_scan(state, src, par, vals, hold=hold)
    want = []
    for v in vals:
        moved = s.with_param(par, value=float(v), min=None if p.min is None
                             else min(p.min, v), **({"free": False} if hold else {}))
        want.append(loglike(state.with_model(state.model.replace_source(moved))))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the prior on a scanned free parameter is in the values unless held
    if f"{src}:{par}" in state.priors and p.free:
        other = loglike_scan(state, src, par, vals, hold=not hold)
        assert np.all(other != got)


def test_scan_cost_is_memoised_per_model(state):
    from fermixr.likelihood.roi import _scan_cost, loglike_scan

    c1, _ = _scan_cost(state)
    loglike_scan(state, "s01", "Prefactor", [0.5, 1.0])
    loglike_scan(state, "s05", "Prefactor", [0.5, 1.0])
    assert _scan_cost(state)[0] is c1
    assert c1.n_evaluations["full"] == 1 and c1.n_evaluations["incremental"] >= 3
    moved = state.model.find("s01").with_param("Prefactor", value=3.0)
    st2 = state.with_model(state.model.replace_source(moved))
    c2, _ = _scan_cost(st2)
    assert c2 is not c1                  # another model: another cost
    a = loglike_scan(st2, "s05", "Prefactor", [1.0])
    b = loglike_scan(state, "s05", "Prefactor", [1.0])
    assert a[0] != b[0]


def test_ts_and_profile_from_the_scan(state):
    """ts_value and profile_values (others held) give what a state per point gives."""
    from fermixr.estimators.profile import profile_values
    from fermixr.estimators.ts import ts_value
    from fermixr.likelihood.roi import loglike

    for name in ("s02", "s04"):
        s = state.model.find(name)
        norm = s.param("Prefactor")
        zero = state.model.replace_source(s.with_param("Prefactor", value=0.0))
        want = 2.0 * (loglike(state) - loglike(state, zero))
        assert ts_value(state, name) == pytest.approx(max(want, 0.0), rel=1e-9, abs=1e-7)
        xs = norm.value * np.linspace(0.0, 2.0, 7)
        prof = profile_values(state, name, "Prefactor", xvals=xs)
        ll = [loglike(state.with_model(state.model.replace_source(
            s.with_param("Prefactor", value=float(x), free=False)))) for x in xs]
        np.testing.assert_allclose(prof["loglike"], ll, rtol=1e-12)
        assert prof["flux"][0] == 0.0 and np.all(np.diff(prof["flux"]) > 0)


def test_scan_follows_the_energy_range_of_the_state(state):
    """A state with loge_bounds shares its memo with the full-range one: the scan cost
    must be the one of its own range."""
    from fermixr.likelihood.roi import loglike, loglike_scan

    loglike_scan(state, "s01", "Prefactor", [1.0])        # memo for the full range
    narrow = state.replace(loge_bounds=(2.75, 4.25))
    got = loglike_scan(narrow, "s01", "Prefactor", [0.5, 1.2])
    s = narrow.model.find("s01")
    want = [loglike(narrow.with_model(narrow.model.replace_source(
        s.with_param("Prefactor", value=v, free=False)))) for v in (0.5, 1.2)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    full = loglike_scan(state, "s01", "Prefactor", [0.5, 1.2])
    assert np.all(np.abs(full - got) > 1.0)
