"""Fitters on simulations with known truth: pulls, TS distribution, NEWTON vs MINUIT,
the fit() contract (retries, errors, result keys, product schema).  The simulation tests
use fit()'s default optimizer (MINUIT with the analytic gradient and Hessian); the options
are tested in test_fit_options.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fermixr.conventions import validate_product
from fermixr.errors import FitError, LikelihoodError
from fermixr.fit import FitResult, fit
from fermixr.likelihood.cost import BinnedPoissonCost
from fermixr.likelihood.priors import GaussianPrior
from fermixr.simulate.toy import toy_roi

FREE = {"PS": ["Prefactor", "Index"], "iso": ["Prefactor"], "gal": ["norm"]}
TRUTH = np.array([3.0, 2.2, 1.5, 5.0])          # scaled truth of FREE, in cost order


@pytest.fixture(scope="module")
def roi():
    return toy_roi(with_null=True)


@pytest.fixture(scope="module")
def mu(roi):
    return roi.expected()


@pytest.fixture(scope="module")
def roi10(roi):
    # ten times the exposure: the asymptotic regime of the TS distribution (at the nominal
    # exposure, ~0.3 background counts per pixel and bin, P(TS > 2.71) is 0.042 +- 0.003
    # from 4000 realisations, the known low-count deficit)
    return type(roi)(roi.energies, roi.srcmaps * 10.0, roi.sources)


@pytest.fixture(scope="module")
def mu10(roi10):
    return roi10.expected()


def _pulls(roi, mu, n, seed):
    # fit()'s default optimizer: MINUIT with the analytic gradient and Hessian
    terms = roi.with_free(FREE)
    rng = np.random.default_rng(seed)
    pulls, failed = [], 0
    for _ in range(n):
        counts = rng.poisson(mu).astype(float)
        res = fit(BinnedPoissonCost(counts, roi.srcmaps, roi.energies, terms))
        if not res.fit_success:
            failed += 1
            continue
        pulls.append((res.values - TRUTH) / res.errors)
    return np.array(pulls), failed


def _ts_values(roi, mu, n, seed):
    # NEWTON: its active set puts a norm whose optimum is on the bound exactly on it, so
    # TS = 0 is exact (MINUIT stops within its EDM tolerance of the bound, TS ~ 1e-4; it
    # is compared with NEWTON case by case in test_ts_newton_equals_minuit and
    # test_fit_options.py)
    bkg = {"PS": ["Prefactor"], "iso": ["Prefactor"], "gal": ["norm"]}
    t1 = roi.with_free(dict(bkg, NULL=["Prefactor"]))       # NULL bounded at 0
    t0 = roi.with_free(bkg)                                 # NULL fixed at 0 flux
    rng = np.random.default_rng(seed)
    ts = np.empty(n)
    for k in range(n):
        counts = rng.poisson(mu).astype(float)
        r1 = fit(BinnedPoissonCost(counts, roi.srcmaps, roi.energies, t1), optimizer="NEWTON")
        r0 = fit(BinnedPoissonCost(counts, roi.srcmaps, roi.energies, t0), optimizer="NEWTON")
        assert r1.fit_success and r0.fit_success
        ts[k] = max(0.0, 2.0 * (r1.loglike - r0.loglike))
    return ts


def _check_pulls(p):
    assert np.all(np.abs(p.mean(axis=0)) < 0.1), p.mean(axis=0)
    assert np.all(np.abs(p.std(axis=0) - 1.0) < 0.1), p.std(axis=0)


def _check_ts(ts, tol=0.015):
    frac = np.mean(ts > 2.71)
    assert abs(frac - 0.05) < tol, frac
    # the chi2_0 half: TS = 0 in about half of the realisations
    assert abs(np.mean(ts < 1e-6) - 0.5) < 0.06
    # the chi2_1 half above 0: a few quantiles (P(chi2_1 > t) / 2)
    for t in (0.5, 1.0, 4.0):
        assert abs(np.mean(ts > t) - 0.5 * stats.chi2.sf(t, 1)) < 0.035


def test_pulls_of_all_free_parameters(roi, mu):
    # 1000 realisations: the mean pull is known to +-0.03, its spread to +-0.02
    p, failed = _pulls(roi, mu, 1000, seed=2024)
    assert failed == 0
    _check_pulls(p)


def test_ts_of_a_zero_flux_source(roi10, mu10):
    # 1000 realisations: P(TS > 2.71) = 0.05 is measured to +-0.007
    _check_ts(_ts_values(roi10, mu10, 1000, seed=77))


def test_ts_newton_equals_minuit(roi10, mu10):
    # the zero-flux norm sits at (or next to) its bound 0 in half of the cases
    bkg = {"PS": ["Prefactor"], "iso": ["Prefactor"], "gal": ["norm"]}
    t1 = roi10.with_free(dict(bkg, NULL=["Prefactor"]))
    t0 = roi10.with_free(bkg)
    rng = np.random.default_rng(15)
    for _ in range(8):
        counts = rng.poisson(mu10).astype(float)
        ts = []
        for opt in ("NEWTON", "MINUIT"):
            r1 = fit(BinnedPoissonCost(counts, roi10.srcmaps, roi10.energies, t1),
                     optimizer=opt, tol=1e-4)
            r0 = fit(BinnedPoissonCost(counts, roi10.srcmaps, roi10.energies, t0),
                     optimizer=opt, tol=1e-4)
            assert r1.fit_success and r0.fit_success
            ts.append(2.0 * (r1.loglike - r0.loglike))
        assert abs(ts[0] - ts[1]) < 2e-3, ts


@pytest.mark.slow
def test_ts_and_pulls_many_realisations(roi, mu, roi10, mu10):
    _check_ts(_ts_values(roi10, mu10, 5000, seed=78), tol=0.008)
    p, failed = _pulls(roi, mu, 5000, seed=79)
    assert failed == 0
    assert np.all(np.abs(p.mean(axis=0)) < 0.05)
    assert np.all(np.abs(p.std(axis=0) - 1.0) < 0.04)


# -- NEWTON against iminuit ------------------------------------------------------------
@pytest.mark.parametrize("free", [
    FREE,
    {"PS": ["Prefactor", "Index"], "iso": ["Prefactor"], "gal": ["norm", "alpha", "beta"]},
])
@pytest.mark.parametrize("seed", [1, 2])
def test_newton_agrees_with_minuit(roi, mu, free, seed):
    counts = np.random.default_rng(seed).poisson(mu).astype(float)
    cost = roi.cost(counts, roi.with_free(free))
    rn = fit(cost, optimizer="NEWTON")
    rm = fit(cost, optimizer="MINUIT", tol=1e-4)
    assert rn.optimizer == "NEWTON" and rn.backend == "fermixr-newton"
    assert rm.optimizer == "MINUIT" and rm.backend.startswith("iminuit")
    assert rn.fit_quality == 3 and rm.fit_quality == 3
    assert abs(rn.loglike - rm.loglike) < 1e-3
    assert rn.loglike >= rm.loglike - 1e-6          # Newton ends at least as low
    np.testing.assert_allclose(rn.errors, rm.errors, rtol=0.05)
    assert np.all(np.abs(rn.values - rm.values) < 0.05 * rn.errors)
    # at Fermipy's default tolerance MIGRAD stops once EDM < tol
    rd = fit(cost, optimizer="NEWMINUIT")
    assert rd.fit_success and rd.edm < 1e-3 * 10
    assert abs(rd.loglike - rn.loglike) < 1e-2


def test_minos_and_analytic_hessian(roi, mu):
    counts = np.random.default_rng(3).poisson(mu).astype(float)
    cost = roi.cost(counts, roi.with_free(FREE))
    rn = fit(cost, optimizer="NEWTON")
    rm = fit(cost, optimizer="MINUIT", minos=True, analytic_hessian=True, tol=1e-4)
    assert rm.fit_success
    assert set(rm.minos) == set(cost.parameters)
    for k, name in enumerate(cost.parameters):
        lo, hi = rm.minos[name]
        assert lo < 0 < hi
        assert -lo == pytest.approx(rn.errors[k], rel=0.1)
        assert hi == pytest.approx(rn.errors[k], rel=0.1)
    # with the analytic Hessian HESSE inverts the same matrix as the Newton fitter
    np.testing.assert_allclose(rm.errors, rn.errors, rtol=5e-3)


def test_fisher_reuse_does_not_change_the_optimum(roi, mu):
    from fermixr.fit import newton_fit

    counts = np.random.default_rng(9).poisson(mu).astype(float)
    cost = roi.cost(counts, roi.with_free(FREE))
    start = np.array([2.0, 2.6, 2.5, 3.0])
    a = newton_fit(cost, start)                    # Fisher kept over sub-sigma steps
    b = newton_fit(cost, start, reuse_sigma=0.0)   # Fisher at every iteration
    assert a.fit_status == 0 and b.fit_status == 0
    assert b.info["fisher_evaluations"] == b.info["iterations"]
    assert a.info["fisher_evaluations"] <= b.info["fisher_evaluations"]
    assert abs(a.loglike - b.loglike) < 1e-6
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-4)


def test_prior_pulls_the_fit(roi, mu):
    counts = np.random.default_rng(4).poisson(mu).astype(float)
    like = roi.cost(counts, roi.with_free(FREE))
    free = fit(like)
    k = like.parameters.index("PS:Index")
    tight = fit(like + GaussianPrior("PS:Index", 2.5, 1e-3))
    assert tight.values[k] == pytest.approx(2.5, abs=5e-3)
    assert tight.errors[k] < 1e-3
    assert tight.loglike < free.loglike


# -- the fit() contract ----------------------------------------------------------------
def test_result_keys_and_dataset(roi, mu):
    counts = np.random.default_rng(5).poisson(mu).astype(float)
    cost = roi.cost(counts, roi.with_free(FREE))
    res = fit(cost)
    for key in ("fit_quality", "fit_status", "loglike", "dloglike", "values", "errors",
                "covariance", "correlation", "edm", "config"):
        assert key in res.keys()
    assert res["fit_quality"] == 3 and res["fit_status"] == 0
    assert res["loglike"] == pytest.approx(-cost(res.values), rel=1e-14)
    assert res["dloglike"] == pytest.approx(res.loglike + cost(cost.x0), rel=1e-12)
    assert res["dloglike"] > 0
    np.testing.assert_allclose(res["errors"], np.sqrt(np.diag(res["covariance"])))
    np.testing.assert_allclose(np.diag(res["correlation"]), 1.0)
    assert res["src_names"] == ["PS", "PS", "iso", "gal"]
    assert res["par_names"] == ["Prefactor", "Index", "Prefactor", "norm"]
    assert res.config["optimizer"] == "MINUIT" and res.config["tol"] == 1e-3
    assert res.optimizer == "MINUIT" and res.backend.startswith("iminuit")
    ds = res.to_dataset()
    validate_product(ds)
    assert list(ds["param"].values) == list(cost.parameters)
    np.testing.assert_array_equal(ds["value"].values, res.values)
    assert ds.attrs["fit_quality"] == 3 and ds.attrs["optimizer"] == "MINUIT"
    # deterministic: the same fit gives the same numbers, bit for bit
    again = fit(cost)
    assert np.array_equal(again.values, res.values) and again.loglike == res.loglike


def test_failed_fit_returns_start_values(roi, mu):
    counts = np.random.default_rng(6).poisson(mu).astype(float)
    cost = roi.cost(counts, roi.with_free(FREE))
    x0 = np.array([1.0, 1.5, 3.0, 2.0])
    res = fit(cost, x0, optimizer="NEWTON", max_iter=1, retries=2)   # max_iter: NEWTON's
    assert not res.fit_success
    assert res.fit_status == 1 and res.niter == 2
    np.testing.assert_array_equal(res.values, x0)
    assert res.loglike == res.loglike0 == pytest.approx(-cost(x0))
    assert not np.array_equal(res.last_values, x0)
    assert "failed after 2 attempt" in res.message
    # quality rule: min_fit_quality 3 passes for a good fit
    assert fit(cost, x0, min_fit_quality=3).fit_success
    assert fit(cost, x0, optimizer="NEWTON", min_fit_quality=3).fit_success


def test_fit_errors(roi, mu):
    counts = np.random.default_rng(7).poisson(mu).astype(float)
    none_free = roi.cost(counts, roi.sources)
    with pytest.raises(FitError, match="no free parameter"):
        fit(none_free)
    cost = roi.cost(counts, roi.with_free(FREE))
    with pytest.raises(FitError, match=r"start value 6.0 of 'PS:Index' is outside its "
                                       r"bounds \[0.0, 5.0\]"):
        fit(cost, [3.0, 6.0, 1.5, 5.0])
    with pytest.raises(FitError, match="optimizer.optimizer: got 'LBFGS'"):
        fit(cost, optimizer="LBFGS")
    with pytest.raises(FitError, match="min_fit_quality"):
        fit(cost, min_fit_quality=5)
    with pytest.raises(FitError, match="optimizer.retries: got 0"):
        fit(cost, retries=0)
    # a prior on a fixed parameter is refused when the cost is built (likelihood layer)
    with pytest.raises(LikelihoodError, match="prior on 'NULL:Prefactor'"):
        fit(cost + GaussianPrior("NULL:Prefactor", 0.0, 1.0))


def test_joint_components_fit(roi, mu):
    rng = np.random.default_rng(8)
    c1 = roi.cost(rng.poisson(mu).astype(float), roi.with_free(FREE))
    c2 = roi.cost(rng.poisson(mu).astype(float), roi.with_free(FREE))
    joint = fit(c1 + c2)
    single = fit(c1)
    assert joint.fit_success
    # two equal exposures: errors shrink by about sqrt(2)
    np.testing.assert_allclose(joint.errors, single.errors / np.sqrt(2), rtol=0.05)
    assert isinstance(joint, FitResult)
