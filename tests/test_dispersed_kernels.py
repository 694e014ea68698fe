"""Kernels of the likelihood with energy dispersion against their numpy references, and
the fast cost against the dense numpy cost (ReferenceDispersedPoissonCost)."""

from __future__ import annotations

import numpy as np
import pytest

from fermixr.errors import GeometryError, LikelihoodError
from fermixr.irf.drm import identity_drm, true_energy_axis
from fermixr.likelihood import _dispersed_kernels as KD
from fermixr.likelihood.cost import SourceTerm
from fermixr.likelihood.dispersed import (DispersedPoissonCost,
                                          ReferenceDispersedPoissonCost, _band)

EMPTY = np.zeros((0, 0))


def _gauss_drm(meas, true, sigma=0.12, cut=1e-6):
    """Gaussian in ln E, columns normalised over all measured bins, small entries cut."""
    lm = np.log(meas)
    et = np.sqrt(true[:-1] * true[1:])
    from scipy.special import erf

    z = (lm[:, None] - np.log(et)[None, :]) / (np.sqrt(2) * sigma)
    d = 0.5 * (erf(z[1:]) - erf(z[:-1]))
    d[d < cut] = 0.0
    return d / np.maximum(d.sum(axis=0), 1e-300)[None, :] * 0.97


# ---------------------------------------------------------------------------------------
# kernel level
# ---------------------------------------------------------------------------------------
def _kernel_problem(rng, nm=8, n_extra=2, npix=700, dtype=np.float64, weights=True,
                    fixed=True):
    nt = nm + 2 * n_extra
    meas = np.geomspace(100.0, 1e4, nm + 1)
    true = true_energy_axis(meas, n_extra)
    banded = _gauss_drm(meas, true)
    full = rng.uniform(0.0, 0.2, (nm, nt))                # dense: every entry non-zero
    ident = identity_drm(nm, n_extra)
    drm = np.stack([banded, full, ident])
    kl, kh = np.array([_band(d) for d in drm]).transpose(1, 0, 2)
    kl, kh = np.ascontiguousarray(kl), np.ascontiguousarray(kh)
    tlo = kl.min(axis=1)
    thi = kh.max(axis=1)
    ns = 12
    maps = rng.random((ns, nt + 1, npix)).astype(dtype)
    maps[2, :, : npix // 3] = 0.0
    # groups: 6 sources (one block of 4 + 2), 1 source, 3 sources
    idx = np.array([0, 2, 3, 5, 7, 8, 1, 4, 9, 11], dtype=np.int64)
    gstart = np.array([0, 6, 7, 10], dtype=np.int64)
    lo = rng.uniform(0.1, 2.0, (idx.size, nt))
    hi = rng.uniform(0.1, 2.0, (idx.size, nt))
    counts = rng.poisson(3.0, (nm, npix)).astype(float)
    counts[:, ::7] = 0.0
    w = rng.uniform(0.0, 1.0, (nm, npix)) if weights else EMPTY
    if weights:
        w[:, ::11] = 0.0
    fx = rng.uniform(0.0, 0.5, (nm, npix)) if fixed else EMPTY
    return counts, w, fx, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi


def test_band_of_a_matrix():
    d = np.array([[0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 4.0]])
    kl, kh = _band(d)
    assert kl.tolist() == [1, 0, 0] and kh.tolist() == [3, 0, 4]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights,fixed", [(True, True), (False, False)])
def test_loglike_kernels_match_reference(dtype, weights, fixed):
    rng = np.random.default_rng(3)
    (counts, w, fx, maps, idx, gstart, drm, kl, kh, tlo, thi, lo,
     hi) = _kernel_problem(rng, dtype=dtype, weights=weights, fixed=fixed)
    ll_r, A_r, B_r, m_r = KD.loglike_reference(counts, w, fx, maps, idx, gstart, drm, lo, hi)
    band = (kl, kh, tlo, thi)
    for kern in (KD.loglike_serial, KD.loglike_parallel):
        for seg in (64, 700, 113, 5000):
            m = np.zeros(counts.shape)
            ll, A, B = kern(counts, w, fx, maps, idx, gstart, drm, *band, lo, hi, seg, True, m)
            assert ll == pytest.approx(ll_r, rel=1e-12)
            np.testing.assert_allclose(A, A_r, rtol=1e-10, atol=1e-11 * abs(A_r).max())
            np.testing.assert_allclose(B, B_r, rtol=1e-10, atol=1e-11 * abs(B_r).max())
            np.testing.assert_allclose(m, m_r, rtol=1e-12)
            ll2, A2, _ = kern(counts, w, fx, maps, idx, gstart, drm, *band, lo, hi, seg,
                              False, EMPTY)
            assert ll2 == ll                       # the value-only pass: the same number
            assert not A2.any()
        for cube in (KD.model_cube_serial, KD.model_cube_parallel):
            out = np.full(counts.shape, np.nan)
            cube(fx, maps, idx, gstart, drm, *band, lo, hi, 100, out)
            np.testing.assert_allclose(out, m_r, rtol=1e-12)


def test_kernels_serial_and_parallel_are_identical():
    rng = np.random.default_rng(8)
    (counts, w, fx, maps, idx, gstart, drm, kl, kh, tlo, thi, lo,
     hi) = _kernel_problem(rng, npix=4000)
    args = (counts, w, fx, maps, idx, gstart, drm, kl, kh, tlo, thi, lo, hi)
    for seg in (256, 999):
        ma, mb = np.empty(counts.shape), np.empty(counts.shape)
        a = KD.loglike_serial(*args, seg, True, ma)
        b = KD.loglike_parallel(*args, seg, True, mb)
        assert a[0] == b[0]
        assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
        assert np.array_equal(ma, mb)


def test_an_empty_band_group_and_no_free_source():
    rng = np.random.default_rng(2)
    (counts, w, fx, maps, idx, gstart, drm, kl, kh, tlo, thi, lo,
     hi) = _kernel_problem(rng)
    drm = drm.copy()
    drm[1] = 0.0                                   # the second group sees nothing
    kl, kh = (np.ascontiguousarray(a) for a in np.array([_band(d) for d in drm])
              .transpose(1, 0, 2))
    tlo, thi = kl.min(axis=1), kh.max(axis=1)
    ll_r, A_r, B_r, _ = KD.loglike_reference(counts, w, fx, maps, idx, gstart, drm, lo, hi)
    ll, A, B = KD.loglike_serial(counts, w, fx, maps, idx, gstart, drm, kl, kh, tlo, thi,
                                 lo, hi, 128, True, EMPTY)
    assert ll == pytest.approx(ll_r, rel=1e-12)
    assert not A[6].any() and not B[6].any()
    np.testing.assert_allclose(A, A_r, rtol=1e-10, atol=1e-11 * abs(A_r).max())
    # no free source at all: log L of the fixed cube alone
    z = np.zeros(0, np.int64)
    ll0, A0, _ = KD.loglike_serial(counts, w, fx, maps, z, np.zeros(1, np.int64),
                                   np.zeros((0,) + drm.shape[1:]), kl[:0], kh[:0], z, z,
                                   lo[:0], hi[:0], 128, True, EMPTY)
    ref0 = KD.loglike_reference(counts, w, fx, maps, z, np.zeros(1, np.int64),
                                np.zeros((0,) + drm.shape[1:]), lo[:0], hi[:0])[0]
    assert ll0 == pytest.approx(ref0, rel=1e-12) and A0.shape == (0, lo.shape[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_info_rows_match_reference(dtype):
    rng = np.random.default_rng(4)
    nm, nt, npix, nq = 6, 10, 300, 5
    maps = rng.random((4, nt + 1, npix)).astype(dtype)
    qsrc = np.array([0, 0, 2, 3, 1], dtype=np.int64)
    C = rng.normal(size=(nq, nm, nt + 1))
    cl = rng.integers(0, 5, (nq, nm))
    ch = cl + rng.integers(0, 6, (nq, nm))
    mask = np.zeros_like(C, dtype=bool)
    for q in range(nq):
        for i in range(nm):
            mask[q, i, cl[q, i]:ch[q, i]] = True
    C = np.where(mask, C, 0.0)
    v = rng.uniform(0.0, 2.0, (nm, npix))
    F_r = KD.info_reference(v, maps, qsrc, C)
    for rows in (KD.info_rows_serial, KD.info_rows_parallel):
        F = np.zeros((nq, nq))
        for p0 in range(0, npix, 128):
            p1 = min(npix, p0 + 128)
            G = np.empty((nq, nm, p1 - p0))
            rows(np.sqrt(v), maps, qsrc, C, cl, ch, p0, p1, G)
            F += G.reshape(nq, -1) @ G.reshape(nq, -1).T
        np.testing.assert_allclose(F, F_r, rtol=1e-10, atol=1e-12 * abs(F_r).max())


# ---------------------------------------------------------------------------------------
# the cost against the dense numpy cost
# ---------------------------------------------------------------------------------------
def _cost_problem(seed=1, dtype=np.float64, weights=True, scales=True, npix=(9, 11),
                  n_extra=2):
    rng = np.random.default_rng(seed)
    meas = np.geomspace(200.0, 20000.0, 11)
    true = true_energy_axis(meas, n_extra)
    nm, nt = meas.size - 1, true.size - 1
    banded = _gauss_drm(meas, true, 0.15)
    full = rng.uniform(0.01, 0.15, (nm, nt))
    ident = identity_drm(nm, n_extra)
    terms = [
        SourceTerm.make("a", "PowerLaw", [3e-11, -2.2, 1000.0], free=["Prefactor", "Index"]),
        SourceTerm.make("b", "PowerLaw", [1e-11, -1.8, 1000.0], free=["Prefactor"]),
        SourceTerm.make("c", "LogParabola", [2e-11, 2.0, 0.1, 1500.0],
                        free=["norm", "alpha", "beta"]),
        SourceTerm.make("d", "PowerLaw", [5e-12, -2.5, 1000.0]),                 # fixed
        SourceTerm.make("e", "PowerLaw", [8e-12, -2.0, 1000.0], free=["Prefactor"]),
        SourceTerm.make("f", "PowerLaw", [4e-12, -2.1, 1000.0], free=["Prefactor"]),
        SourceTerm.make("g", "PowerLaw", [6e-12, -2.3, 1000.0]),                 # fixed
        SourceTerm.make("h", "PowerLaw", [7e-12, -1.9, 1000.0], free=["Index"]),
    ]
    # a banded group of five (with one fixed), the identity for two, a dense one
    drms = [banded, banded.copy(), ident, banded, banded, full, ident.copy(), banded]
    maps = rng.uniform(5e9, 2e10, (len(terms), true.size) + npix).astype(dtype)
    maps[1, :, :3] *= 1e-3
    sc = rng.uniform(0.5, 1.5, len(terms)) if scales else None
    shape = (nm,) + npix
    w = rng.uniform(0.2, 1.0, shape) if weights else None
    if weights:
        w[:, 0, :4] = 0.0
    tmp = DispersedPoissonCost(np.ones(shape), maps, true, terms, drms, scales=sc)
    counts = rng.poisson(tmp.model_cube()).astype(float)
    return counts, maps, true, terms, drms, w, sc, rng


@pytest.mark.parametrize("dtype,weights,scales", [(np.float64, True, True),
                                                   (np.float32, False, True),
                                                   (np.float64, False, False),
                                                   (np.float32, True, False)])
def test_cost_matches_numpy_reference(dtype, weights, scales):
    counts, maps, true, terms, drms, w, sc, rng = _cost_problem(2, dtype, weights, scales)
    ref = ReferenceDispersedPoissonCost(counts, maps, true, terms, drms, wmap=w, scales=sc)
    for par in (False, True):
        cost = DispersedPoissonCost(counts, maps, true, terms, drms, wmap=w, scales=sc,
                                    seg=37, parallel=par)
        assert cost.parameters == ref.parameters
        assert len(cost._groups) == 3 and cost.fixed.shape == (10, 99)
        np.testing.assert_array_equal(cost.x0, ref.x0)
        np.testing.assert_array_equal(cost.bounds, ref.bounds)
        x = cost.x0 * rng.uniform(0.9, 1.1, cost.npar)
        v_r, g_r = ref.value_and_grad(x)
        assert cost(x) == pytest.approx(v_r, rel=1e-11)
        v, g = cost.value_and_grad(x)
        assert v == pytest.approx(v_r, rel=1e-11)
        np.testing.assert_allclose(g, g_r, rtol=1e-9, atol=1e-10 * abs(g_r).max())
        F_r = ref.fisher(x)
        np.testing.assert_allclose(cost.fisher(x), F_r, rtol=1e-9,
                                   atol=1e-11 * abs(F_r).max())
        np.testing.assert_allclose(cost.model_cube(x).reshape(10, -1), ref.model_cube(x),
                                   rtol=1e-11)
        for name in ("a", "d", "f", "h"):
            np.testing.assert_allclose(cost.source_cube(name, x).reshape(10, -1),
                                       ref.source_cube(name, x), rtol=1e-11)
        # the exact Hessian against the reference's differences of the gradient
        H_r = ref.hessian(x)
        np.testing.assert_allclose(cost.hessian(x), H_r, rtol=2e-5,
                                   atol=1e-7 * abs(H_r).max())


def test_gradient_and_hessian_against_finite_differences():
    counts, maps, true, terms, drms, w, sc, rng = _cost_problem(5)
    cost = DispersedPoissonCost(counts, maps, true, terms, drms, wmap=w, scales=sc)
    x = cost.x0 * rng.uniform(0.95, 1.05, cost.npar)
    g = cost.grad(x)
    H = cost.hessian(x)
    for a in range(x.size):
        h = 1e-6 * abs(x[a])
        xp, xm = x.copy(), x.copy()
        xp[a] += h
        xm[a] -= h
        assert g[a] == pytest.approx((cost(xp) - cost(xm)) / (2 * h), rel=1e-5, abs=1e-6)
        dg = (cost.grad(xp) - cost.grad(xm)) / (2 * h)
        np.testing.assert_allclose(H[a], dg, rtol=1e-4, atol=1e-6 * abs(H).max())


def test_memo_and_value_paths_agree():
    counts, maps, true, terms, drms, w, sc, rng = _cost_problem(6)
    cost = DispersedPoissonCost(counts, maps, true, terms, drms, wmap=w, scales=sc)
    x1, x2 = cost.x0, cost.x0 * 1.03
    v1, g1 = cost.value_and_grad(x1)
    assert cost(x2) != v1                       # the memo holds x1 only
    assert cost(x1) == v1
    v2, _ = cost.value_and_grad(x2)
    assert v2 == pytest.approx(cost.__class__(counts, maps, true, terms, drms, wmap=w,
                                              scales=sc)(x2), rel=1e-14)
    g1[:] = 0.0                                 # the returned gradient is a copy
    assert np.any(cost.value_and_grad(x1)[1] != 0.0)


def test_unit_weights_and_grouping_change_nothing():
    counts, maps, true, terms, drms, _, sc, rng = _cost_problem(7, weights=False)
    a = DispersedPoissonCost(counts, maps, true, terms, drms, scales=sc)
    b = DispersedPoissonCost(counts, maps, true, terms, drms, wmap=np.ones(counts.shape),
                             scales=sc)
    # every source with its own copy of a matrix that differs in the last bit: 8 groups
    drms8 = [d + np.where(d > 0, np.spacing(d) * k, 0.0) for k, d in enumerate(drms)]
    c = DispersedPoissonCost(counts, maps, true, terms, drms8, scales=sc)
    assert len(c._groups) == 8
    x = a.x0 * 1.02
    assert a(x) == b(x)
    np.testing.assert_array_equal(a.grad(x), b.grad(x))
    assert c(x) == pytest.approx(a(x), rel=1e-13)
    np.testing.assert_allclose(c.grad(x), a.grad(x), rtol=1e-10)


def test_errors_name_the_mismatch():
    counts, maps, true, terms, drms, w, sc, rng = _cost_problem(1)
    with pytest.raises(GeometryError, match=r"srcmaps must be \(n_src=8, n_nodes=15"):
        DispersedPoissonCost(counts, maps[:, 1:], true, terms, drms)
    with pytest.raises(GeometryError,
                       match=r"wmap must have the counts. shape \(10, 9, 11\); got \(10,\)"):
        DispersedPoissonCost(counts, maps, true, terms, drms, wmap=np.ones(10))
    with pytest.raises(GeometryError, match=r"response matrix of shape \(10, 13\)"):
        DispersedPoissonCost(counts, maps, true, terms, [d[:, 1:] for d in drms])
    with pytest.raises(GeometryError, match="7 response matrices for 8 sources"):
        DispersedPoissonCost(counts, maps, true, terms, drms[:-1])
    with pytest.raises(GeometryError, match="n_src=7"):
        DispersedPoissonCost(counts, maps, true, terms[:-1], drms[:-1])
    with pytest.raises(GeometryError, match="scales: 3 factor"):
        DispersedPoissonCost(counts, maps, true, terms, drms, scales=[1, 2, 3])
    cost = DispersedPoissonCost(counts, maps, true, terms, drms)
    with pytest.raises(LikelihoodError, match="no source 'zz'"):
        cost.source_cube("zz")
    with pytest.raises(LikelihoodError, match="called with 2 value"):
        cost(np.ones(2))


def test_fit_recovers_the_same_optimum_as_the_reference():
    from fermixr.fit.fitter import fit

    counts, maps, true, terms, drms, w, sc, rng = _cost_problem(9, npix=(20, 20))
    cost = DispersedPoissonCost(counts, maps, true, terms, drms, wmap=w, scales=sc)
    ref = ReferenceDispersedPoissonCost(counts, maps, true, terms, drms, wmap=w, scales=sc)
    start = cost.x0 * rng.uniform(0.9, 1.1, cost.npar)
    r = fit(cost, start)
    assert r.fit_success and r.fit_quality == 3
    v_r, g_r = ref.value_and_grad(r.values)
    assert -r.loglike == pytest.approx(v_r, rel=1e-11)
    # at the optimum: the reference's Newton step is negligible against the errors
    step = np.linalg.solve(ref.fisher(r.values), g_r)
    assert np.all(np.abs(step) < 1e-2 * r.errors)
    np.testing.assert_allclose(r.errors, np.sqrt(np.diag(np.linalg.inv(
        ref.hessian(r.values)))), rtol=1e-3)
