"""BinnedPoissonCost, CostSum and priors: values, derivatives and conventions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from fermixr.errors import GeometryError, LikelihoodError
from fermixr.likelihood.cost import BinnedPoissonCost, CostSum, SourceTerm
from fermixr.likelihood.npred import model_counts
from fermixr.likelihood.priors import GaussianPrior, gaussian_priors_from_errors
from fermixr.model.parameters import Parameter
from fermixr.model.source import Source
from fermixr.simulate.toy import toy_roi

FREE_ALL = {"PS": ["Prefactor", "Index"], "iso": ["Prefactor"],
            "gal": ["norm", "alpha", "beta"]}


@pytest.fixture(scope="module")
def roi():
    return toy_roi(npix=14, nbins=6, binsz=0.4)


@pytest.fixture(scope="module")
def data(roi):
    return roi.simulate(np.random.default_rng(42))


def _cost(roi, counts, free=FREE_ALL, **kw):
    return roi.cost(counts, roi.with_free(free), **kw)


def _x_near(cost, rng, frac=0.05):
    return cost.x0 * (1.0 + frac * rng.standard_normal(cost.npar))


# -- values ------------------------------------------------------------------------------
def test_value_is_poisson_loglike_without_log_factorial(roi, data):
    cost = _cost(roi, data)
    x = cost.x0
    # independent model: npred.model_counts per source, summed
    mu = sum(model_counts(roi.srcmaps[j], roi.energies, s.model.evaluate(roi.energies, s.p))
             for j, s in enumerate(roi.sources))
    ref = np.sum(special.xlogy(data, mu) - mu)
    assert -cost(x) == pytest.approx(ref, rel=1e-12)
    # gtlike's convention: log L = sum log Poisson + sum log n!  (the constant is dropped)
    full = np.sum(stats.poisson.logpmf(data, mu))
    assert -cost(x) == pytest.approx(full + np.sum(special.gammaln(data + 1.0)), rel=1e-10)
    np.testing.assert_allclose(cost.model_cube(x), mu, rtol=1e-12)
    assert cost.loglike(x) == -cost(x)


def test_npred_and_source_cubes(roi, data):
    cost = _cost(roi, data)
    x = _x_near(cost, np.random.default_rng(1))
    npred = cost.npred(x)
    total = np.zeros(data.shape)
    for j, name in enumerate(cost.source_names):
        sc = cost.source_cube(name, x)
        np.testing.assert_allclose(npred[j], sc.reshape(sc.shape[0], -1).sum(axis=1),
                                   rtol=1e-11)
        total = total + sc
    np.testing.assert_allclose(cost.model_cube(x), total, rtol=1e-11)


def test_float32_maps_agree(roi, data):
    terms = roi.with_free(FREE_ALL)
    c64 = BinnedPoissonCost(data, roi.srcmaps, roi.energies, terms)
    c32 = BinnedPoissonCost(data, roi.srcmaps.astype(np.float32), roi.energies, terms)
    x = c64.x0
    assert c32(x) == pytest.approx(c64(x), rel=1e-6)
    np.testing.assert_allclose(c32.grad(x), c64.grad(x), rtol=1e-4,
                               atol=1e-5 * abs(c64.grad(x)).max())


def test_parallel_and_serial_costs_agree(roi, data):
    terms = roi.with_free(FREE_ALL)
    a = BinnedPoissonCost(data, roi.srcmaps, roi.energies, terms, parallel=False)
    b = BinnedPoissonCost(data, roi.srcmaps, roi.energies, terms, parallel=True)
    x = _x_near(a, np.random.default_rng(3))
    assert a(x) == b(x)
    assert np.array_equal(a.grad(x), b.grad(x))
    assert np.array_equal(a.fisher(x), b.fisher(x))


# -- derivatives -------------------------------------------------------------------------
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_matches_finite_differences(roi, data, weighted):
    rng = np.random.default_rng(7)
    wmap = rng.uniform(0.2, 1.0, data.shape) if weighted else None
    cost = _cost(roi, data, wmap=wmap, expscale=0.8, src_expscale={"PS": 1.3})
    x = _x_near(cost, rng)
    g = cost.grad(x)
    num = np.empty_like(g)
    for k in range(x.size):
        h = 1e-6 * max(1.0, abs(x[k]))
        e = np.zeros_like(x)
        e[k] = h
        num[k] = (cost(x + e) - cost(x - e)) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=2e-6, atol=1e-6 * abs(g).max())


def test_hessian_matches_numerical_hessian(roi, data):
    rng = np.random.default_rng(8)
    cost = _cost(roi, data, wmap=rng.uniform(0.5, 1.0, data.shape))
    x = _x_near(cost, rng)
    H = cost.hessian(x)
    num = np.empty_like(H)
    for k in range(x.size):
        h = 1e-5 * max(1.0, abs(x[k]))
        e = np.zeros_like(x)
        e[k] = h
        num[:, k] = (cost.grad(x + e) - cost.grad(x - e)) / (2 * h)
    num = 0.5 * (num + num.T)
    scale = np.sqrt(np.outer(np.diag(num), np.diag(num)))
    assert np.max(np.abs(H - num) / scale) < 1e-6
    assert np.array_equal(H, H.T)


def test_fisher_close_to_numerical_hessian_at_best_fit():
    # large counts: exposure x 100
    roi = toy_roi(npix=14, nbins=6, binsz=0.4)
    big = dict(roi.__dict__)
    big["srcmaps"] = roi.srcmaps * 100.0
    roi = type(roi)(**big)
    counts = roi.simulate(np.random.default_rng(12))
    cost = _cost(roi, counts)
    from fermixr.fit import fit

    res = fit(cost)
    assert res.fit_success
    x = res.values
    F = cost.fisher(x)
    num = np.empty_like(F)
    for k in range(x.size):          # second differences of the VALUE only
        for l in range(x.size):
            hk = 1e-4 * max(1.0, abs(x[k]))
            hl = 1e-4 * max(1.0, abs(x[l]))
            ek = np.zeros_like(x)
            el = np.zeros_like(x)
            ek[k] = hk
            el[l] = hl
            num[k, l] = (cost(x + ek + el) - cost(x + ek - el) - cost(x - ek + el)
                         + cost(x - ek - el)) / (4 * hk * hl)
    scale = np.sqrt(np.outer(np.diag(num), np.diag(num)))
    rel = np.abs(F - num) / scale
    assert rel.max() < 0.02            # expected vs observed information, ~1e5 counts
    np.testing.assert_allclose(np.diag(F), np.diag(num), rtol=0.02)


# -- weights, components, priors ---------------------------------------------------------
def test_weights_of_one_change_nothing(roi, data):
    a = _cost(roi, data)
    b = _cost(roi, data, wmap=np.ones(data.shape))
    x = _x_near(a, np.random.default_rng(4))
    assert b(x) == pytest.approx(a(x), rel=1e-14, abs=0)
    np.testing.assert_allclose(b.grad(x), a.grad(x), rtol=1e-12, atol=0)
    np.testing.assert_allclose(b.fisher(x), a.fisher(x), rtol=1e-12, atol=0)
    np.testing.assert_allclose(b.hessian(x), a.hessian(x), rtol=1e-12, atol=0)
    np.testing.assert_allclose(b.npred(x, weighted=True), a.npred(x), rtol=1e-12)


def test_zero_weights_mask_pixels(roi, data):
    w = np.ones(data.shape)
    w[:, :5, :] = 0.0
    a = _cost(roi, data, wmap=w)
    # the same as a likelihood over the unmasked pixels only
    terms = roi.with_free(FREE_ALL)
    b = BinnedPoissonCost(data[:, 5:, :], roi.srcmaps[:, :, 5:, :], roi.energies, terms)
    x = a.x0
    assert a(x) == pytest.approx(b(x), rel=1e-12)
    np.testing.assert_allclose(a.grad(x), b.grad(x), rtol=1e-9)


def test_bin_range_equals_sliced_arrays(roi, data):
    terms = roi.with_free(FREE_ALL)
    a = BinnedPoissonCost(data, roi.srcmaps, roi.energies, terms, bin_range=(2, 5))
    b = BinnedPoissonCost(data[2:5], roi.srcmaps[:, 2:6], roi.energies[2:6], terms)
    x = _x_near(a, np.random.default_rng(5))
    assert a(x) == pytest.approx(b(x), rel=1e-12)
    np.testing.assert_allclose(a.grad(x), b.grad(x), rtol=1e-10)
    np.testing.assert_allclose(a.fisher(x), b.fisher(x), rtol=1e-10)


def test_expscale_multiplies_maps(roi, data):
    terms = roi.with_free(FREE_ALL)
    a = BinnedPoissonCost(data, roi.srcmaps, roi.energies, terms, expscale=0.4,
                          src_expscale={"iso": 0.5})
    f = np.array([0.4, 0.2, 0.4])[:, None, None, None]
    b = BinnedPoissonCost(data, roi.srcmaps * f, roi.energies, terms)
    x = a.x0
    assert a(x) == pytest.approx(b(x), rel=1e-12)
    np.testing.assert_allclose(a.grad(x), b.grad(x), rtol=1e-10)


def test_cost_sum_is_the_sum_of_components(roi):
    rng = np.random.default_rng(6)
    d1 = roi.simulate(rng)
    d2 = roi.simulate(rng)
    c1 = _cost(roi, d1)
    # the second component: different exposure, gal shape fixed
    c2 = BinnedPoissonCost(d2, roi.srcmaps * 0.7, roi.energies,
                           roi.with_free({"PS": ["Prefactor", "Index"], "iso": ["Prefactor"],
                                          "gal": ["norm"]}))
    s = c1 + c2
    assert isinstance(s, CostSum)
    assert s.parameters == c1.parameters
    x = _x_near(s, rng)
    sel = [s.parameters.index(n) for n in c2.parameters]
    assert s(x) == pytest.approx(c1(x) + c2(x[sel]), rel=1e-14)
    assert s.loglike(x) == pytest.approx(c1.loglike(x) + c2.loglike(x[sel]), rel=1e-14)
    g = c1.grad(x)
    g[sel] += c2.grad(x[sel])
    np.testing.assert_allclose(s.grad(x), g, rtol=1e-14)
    F = c1.fisher(x)
    F[np.ix_(sel, sel)] += c2.fisher(x[sel])
    np.testing.assert_allclose(s.fisher(x), F, rtol=1e-14)
    assert sum([c1, c2]).npar == s.npar


def test_gaussian_prior_adds(roi, data):
    c = _cost(roi, data)
    pr = GaussianPrior("PS:Index", mean=2.1, sigma=0.05)
    s = c + pr
    x = _x_near(c, np.random.default_rng(9))
    k = c.parameters.index("PS:Index")
    z = (x[k] - 2.1) / 0.05
    assert s(x) - c(x) == pytest.approx(0.5 * z * z + np.log(np.sqrt(2 * np.pi) * 0.05),
                                        rel=1e-10)
    assert s.grad(x)[k] - c.grad(x)[k] == pytest.approx(z / 0.05, rel=1e-10)
    assert s.fisher(x)[k, k] - c.fisher(x)[k, k] == pytest.approx(1 / 0.05 ** 2)
    pri = gaussian_priors_from_errors(["PS:Prefactor", "iso:Prefactor"], [3.0, 1.5],
                                      [0.1, 0.0], cov_scale=3.0)
    assert len(pri) == 1 and pri[0].sigma == pytest.approx(0.3)


def test_prior_on_fixed_parameter_is_an_error(roi, data):
    c = _cost(roi, data, free={"PS": ["Prefactor"]})
    with pytest.raises(LikelihoodError, match="prior on 'PS:Index'.*not a free parameter"):
        c + GaussianPrior("PS:Index", 2.0, 0.1)
    with pytest.raises(LikelihoodError, match="sigma"):
        GaussianPrior("PS:Index", 2.0, 0.0)


# -- inputs ------------------------------------------------------------------------------
def test_source_terms_from_sources_and_tuples(roi, data):
    pl = roi.sources[0]
    src = Source("PS", "PowerLaw", (
        Parameter("Prefactor", 3.0, 1e-12, 1e-5, 1e3, True),
        Parameter("Index", 2.2, -1.0, 0.0, 5.0, True),
        Parameter("Scale", 1000.0, 1.0, None, None, False)))
    t = SourceTerm.coerce(src)
    np.testing.assert_allclose(t.p, pl.p)
    assert t.free.tolist() == [True, True, False]
    np.testing.assert_allclose(t.x, [3.0, 2.2, 1000.0])
    t2 = SourceTerm.coerce(("PS", "PowerLaw", pl.p, ["Prefactor", "Index"]))
    assert t2.free.tolist() == [True, True, False]
    c = BinnedPoissonCost(data, roi.srcmaps, roi.energies, [t] + list(roi.sources[1:]))
    assert c.parameters == ("PS:Prefactor", "PS:Index")
    assert c.is_norm.tolist() == [True, False]
    np.testing.assert_allclose(c.bounds, [[1e-5, 1e3], [0.0, 5.0]])


def test_bad_shapes_are_errors(roi, data):
    terms = roi.with_free(FREE_ALL)
    with pytest.raises(GeometryError, match="srcmaps must be"):
        BinnedPoissonCost(data, roi.srcmaps[:, :-1], roi.energies, terms)
    with pytest.raises(GeometryError, match="energies must be"):
        BinnedPoissonCost(data, roi.srcmaps, roi.energies[:-1], terms)
    with pytest.raises(GeometryError, match="wmap must have"):
        BinnedPoissonCost(data, roi.srcmaps, roi.energies, terms, wmap=np.ones(5))
    with pytest.raises(LikelihoodError, match="src_expscale names 'nope'"):
        BinnedPoissonCost(data, roi.srcmaps, roi.energies, terms, src_expscale={"nope": 0})
    with pytest.raises(LikelihoodError, match="counts must be finite"):
        BinnedPoissonCost(-data, roi.srcmaps, roi.energies, terms)
    c = BinnedPoissonCost(data, roi.srcmaps, roi.energies, terms)
    with pytest.raises(LikelihoodError, match="called with 2 value"):
        c([1.0, 2.0])
