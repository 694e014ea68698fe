"""fit()'s optimizer options (Fermipy's ``optimizer`` section), the default optimizer
(MINUIT with the analytic gradient and Hessian) against NEWTON on simulations, and the
flags of fits that are not what they seem (params_at_bound, cond, EDM)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from fermixr.errors import FitError, RecipeError
from fermixr.fit import fit, newton_fit
from fermixr.fit.fitter import DEFAULT_OPTIMIZER
from fermixr.simulate.toy import toy_roi

FREE = {"PS": ["Prefactor", "Index"], "iso": ["Prefactor"], "gal": ["norm"]}
BKG = {"PS": ["Prefactor"], "iso": ["Prefactor"], "gal": ["norm"]}


@pytest.fixture(scope="module")
def roi():
    return toy_roi(with_null=True)


@pytest.fixture(scope="module")
def mu(roi):
    return roi.expected()


@pytest.fixture(scope="module")
def cost(roi, mu):
    counts = np.random.default_rng(31).poisson(mu).astype(float)
    return roi.cost(counts, roi.with_free(FREE))


@pytest.fixture(scope="module")
def roi10(roi):
    return type(roi)(roi.energies, roi.srcmaps * 10.0, roi.sources)


def test_default_is_minuit_with_the_analytic_hessian(cost):
    # Fermipy's default optimizer, as the option table says
    from fermixr.engine.options import SECTIONS

    assert DEFAULT_OPTIMIZER == "MINUIT" == SECTIONS["optimizer"]["optimizer"].default
    res = fit(cost)
    assert res.optimizer == "MINUIT" and res.backend.startswith("iminuit")
    assert "analytic Hessian" in res.backend
    assert res.config["analytic_hessian"] is True and res.config["strategy"] == 1
    assert res.fit_success and res.fit_quality == 3
    # the exact Hessian was used, and HESSE differentiated nothing: a numerical HESSE
    # needs of order npar^2 extra evaluations
    assert res.info["nhessian"] >= 1
    num = fit(cost, analytic_hessian=False)
    assert num.config["analytic_hessian"] is False and "numerical Hessian" in num.backend
    assert res.nfev < num.nfev
    # same optimum and covariance either way
    assert abs(res.loglike - num.loglike) < 2e-3
    np.testing.assert_allclose(res.errors, num.errors, rtol=0.02)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_minuit_and_newton_agree_within_one_percent(roi, mu, seed):
    counts = np.random.default_rng(100 + seed).poisson(mu).astype(float)
    free = {"PS": ["Prefactor", "Index"], "iso": ["Prefactor"], "gal": ["norm", "alpha"]}
    c = roi.cost(counts, roi.with_free(free))
    rm = fit(c)
    rn = fit(c, optimizer="NEWTON")
    assert rm.fit_success and rn.fit_success
    assert rm.backend.startswith("iminuit") and rn.backend == "fermixr-newton"
    np.testing.assert_allclose(rm.values, rn.values, rtol=0.01)
    np.testing.assert_allclose(rm.errors, rn.errors, rtol=0.01)
    assert abs(rm.loglike - rn.loglike) < 2e-3


def test_minuit_on_a_zero_flux_source_at_its_bound(roi10):
    # the case that made MIGRAD stop "above max EDM" with the analytic Hessian: a source
    # of zero flux with its norm bounded at 0 ends on the bound in about half the cases
    mu10 = roi10.expected()
    t1 = roi10.with_free(dict(BKG, NULL=["Prefactor"]))
    t0 = roi10.with_free(BKG)
    rng = np.random.default_rng(2718)
    held = 0
    for _ in range(40):
        counts = rng.poisson(mu10).astype(float)
        c1 = roi10.cost(counts, t1)
        c0 = roi10.cost(counts, t0)
        m1, m0 = fit(c1), fit(c0)
        n1, n0 = fit(c1, optimizer="NEWTON"), fit(c0, optimizer="NEWTON")
        assert m1.fit_success and m1.niter == 1 and m1.fit_quality == 3
        assert abs(2 * (m1.loglike - m0.loglike) - 2 * (n1.loglike - n0.loglike)) < 4e-3
        np.testing.assert_allclose(m1.errors, n1.errors, rtol=0.01)
        if m1.info["held_at_bound"]:
            held += 1
            assert m1.info["held_at_bound"] == ["NULL:Prefactor"]
            assert m1.value("NULL:Prefactor") == 0.0
            assert "NULL:Prefactor" in m1.params_at_bound
            assert "NULL:Prefactor" in n1.params_at_bound
    assert 8 <= held <= 32


def test_params_at_bound_and_condition_number(cost):
    res = fit(cost, optimizer="NEWTON")
    assert res.params_at_bound == ()
    ev = np.linalg.eigvalsh(res.covariance)
    assert res.cond == pytest.approx(ev.max() / ev.min(), rel=1e-8)
    d = res.to_dict()
    assert d["params_at_bound"] == [] and d["cond"] == res.cond
    for key in ("fit_quality", "fit_status", "fit_success", "loglike", "dloglike", "values",
                "errors", "covariance", "correlation", "edm", "config", "niter",
                "src_names", "par_names", "optimizer", "backend"):
        assert key in d
    ds = res.to_dataset()
    assert ds.attrs["cond"] == res.cond and ds.attrs["params_at_bound"] == "[]"
    # a bound moved onto the optimum: the parameter is flagged, for both backends
    k = cost.parameters.index("PS:Index")
    b = np.array(cost.bounds, dtype=float)
    b[k, 1] = res.values[k] - 3 * res.errors[k]
    capped = copy.copy(cost)
    capped.bounds = b
    x0 = np.clip(cost.x0, b[:, 0], b[:, 1])
    for opt in ("NEWTON", "MINUIT"):
        r = fit(capped, x0, optimizer=opt)
        assert r.fit_success, (opt, r.message)
        assert r.params_at_bound == ("PS:Index",), opt
        assert r.values[k] == pytest.approx(b[k, 1], abs=1e-6 * (b[k, 1] - b[k, 0]))


def test_newton_reports_the_edm_it_tested(cost):
    # EDM = 0.5 g^T F^-1 g with the Fisher matrix of the convergence test: with the
    # Fisher matrix recomputed at every iteration, that is the matrix at (or one polish
    # step before) the returned point
    start = np.array([2.0, 2.6, 2.5, 3.0])
    for tol in (1e-3, 1e-1):
        r = newton_fit(cost, start, tol=tol, reuse_sigma=0.0)
        assert r.fit_status == 0
        g = cost.grad(r.values)
        F = cost.fisher(r.values)
        assert r.edm == pytest.approx(0.5 * g @ np.linalg.solve(F, g), rel=0.05, abs=1e-12)
        assert r.edm < tol


def test_init_lambda_reaches_newton_and_is_recorded(cost, capfd):
    start = np.array([2.0, 2.6, 2.5, 3.0])
    res = fit(cost, start, optimizer="NEWTON", init_lambda=0.37, verbosity=1)
    assert res.config["init_lambda"] == 0.37
    err = capfd.readouterr().err.splitlines()
    first = [ln for ln in err if ln.startswith("NEWTON iter")][0]
    assert "lambda 0.37" in first
    # heavy damping takes more iterations to the same optimum; 0 disables damping
    slow = fit(cost, start, optimizer="NEWTON", init_lambda=100.0)
    free = fit(cost, start, optimizer="NEWTON", init_lambda=0.0)
    assert slow.info["iterations"] > res.info["iterations"] >= free.info["iterations"]
    assert abs(slow.loglike - free.loglike) < 1e-3
    assert free.config["init_lambda"] == 0.0


def test_verbosity(cost, capfd):
    res = fit(cost, optimizer="NEWTON")
    out = capfd.readouterr()
    assert out.err == "" and out.out == ""
    res = fit(cost, optimizer="NEWTON", verbosity=1)
    err = capfd.readouterr().err.splitlines()
    assert len([ln for ln in err if ln.startswith("NEWTON iter")]) == res.info["iterations"]
    assert err[-1].startswith("NEWTON end")
    assert res.config["verbosity"] == 1
    fit(cost)
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""
    r2 = fit(cost, verbosity=2)            # MINUIT's print level 2 (Minuit2 prints)
    out = capfd.readouterr()
    assert "MnSeedGenerator" in out.out + out.err and r2.config["verbosity"] == 2
    fit(cost)                              # the print level was set for that fit only
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""


def test_retries_count_attempts(cost):
    x0 = np.array([1.0, 1.5, 3.0, 2.0])
    one = fit(cost, x0, optimizer="NEWTON", max_iter=1, retries=1)
    assert not one.fit_success and one.niter == 1
    assert one.config["retries"] == 1 and one.config["max_iter"] == 1


@pytest.mark.parametrize("kw, match", [
    ({"retries": 0}, r"optimizer.retries: got 0; expected an integer >= 1"),
    ({"retries": 1.5}, "optimizer.retries"),
    ({"tol": 0.0}, r"optimizer.tol: got 0.0; expected a finite number > 0"),
    ({"tol": float("nan")}, "optimizer.tol"),
    ({"max_iter": 0}, "optimizer.max_iter"),
    ({"init_lambda": -1.0}, r"optimizer.init_lambda: got -1.0; expected a finite number >= 0"),
    ({"verbosity": -1}, "optimizer.verbosity"),
    ({"min_fit_quality": 5},
     r"optimizer.min_fit_quality: got 5; expected an integer in \[0, 3\]"),
    ({"strategy": 3}, "optimizer.strategy"),
    ({"optimizer": "LBFGS"}, "optimizer.optimizer: got 'LBFGS'"),
])
def test_bad_options_raise_fit_error(cost, kw, match):
    with pytest.raises(FitError, match=match) as info:
        fit(cost, **kw)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, RecipeError)


def test_bad_start_and_bounds_raise_fit_error(cost):
    with pytest.raises(FitError, match=r"start value of 'PS:Index' is nan"):
        fit(cost, [3.0, np.nan, 1.5, 5.0])
    with pytest.raises(FitError, match="3 start value"):
        fit(cost, [3.0, 2.0, 1.5])
    b = np.array(cost.bounds, dtype=float)
    b[1, 0] = np.nan
    bad = copy.copy(cost)
    bad.bounds = b
    with pytest.raises(FitError, match=r"bounds of 'PS:Index' are \[nan, 5.0\]"):
        fit(bad)
