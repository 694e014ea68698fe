"""Likelihood kernels against their slow numpy references, on random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from fermixr.likelihood import _kernels as K

EMPTY = np.zeros((0, 0))


def _problem(rng, ns=6, nb=7, npix=1000, dtype=np.float64, weights=True, fixed=True,
             zeros=True):
    maps = rng.random((ns, nb + 1, npix)).astype(dtype)
    maps[1, :, : npix // 3] = 0.0                      # a source that misses pixels
    idx = np.array([0, 1, 3, 5], dtype=np.int64)
    lo = rng.uniform(0.1, 2.0, (idx.size, nb))
    hi = rng.uniform(0.1, 2.0, (idx.size, nb))
    counts = rng.poisson(2.0, (nb, npix)).astype(float)
    if zeros:
        counts[:, ::7] = 0.0
    w = rng.uniform(0.0, 1.0, (nb, npix)) if weights else EMPTY
    if weights:
        w[:, ::11] = 0.0                               # masked pixels
    fx = rng.uniform(0.0, 0.5, (nb, npix)) if fixed else EMPTY
    return counts, w, fx, maps, idx, lo, hi


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights,fixed", [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize("krange", [(0, 7), (2, 5)])
def test_loglike_kernels_match_reference(dtype, weights, fixed, krange):
    rng = np.random.default_rng(11)
    counts, w, fx, maps, idx, lo, hi = _problem(rng, dtype=dtype, weights=weights,
                                                fixed=fixed)
    k0, k1 = krange
    ll_r, A_r, B_r, m_r = K.loglike_reference(counts, w, fx, maps, idx, lo, hi, k0, k1)
    for kern in (K.loglike_serial, K.loglike_parallel):
        for seg, blk in ((128, 2), (1000, 1), (77, 3), (333, 7), (5000, 4)):
            m = np.zeros(counts.shape)
            ll, A, B = kern(counts, w, fx, maps, idx, lo, hi, k0, k1, seg, blk, True, m)
            assert ll == pytest.approx(ll_r, rel=1e-12)
            np.testing.assert_allclose(A, A_r, rtol=1e-10, atol=1e-10 * abs(A_r).max())
            np.testing.assert_allclose(B, B_r, rtol=1e-10, atol=1e-10 * abs(B_r).max())
            np.testing.assert_allclose(m[k0:k1], m_r[k0:k1], rtol=1e-12)
            ll2, A2, _ = kern(counts, w, fx, maps, idx, lo, hi, k0, k1, seg, blk,
                              False, EMPTY)
            assert ll2 == ll                      # value-only pass: same number
            assert not A2.any()


def test_serial_and_parallel_are_identical():
    rng = np.random.default_rng(5)
    args = _problem(rng, npix=5000)
    for seg, blk in ((256, 2), (999, 3)):
        a = K.loglike_serial(*args, 0, 7, seg, blk, True, EMPTY)
        b = K.loglike_parallel(*args, 0, 7, seg, blk, True, EMPTY)
        assert a[0] == b[0]
        assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])


def test_zero_model_under_counts_is_minus_infinity():
    counts = np.array([[1.0, 0.0, 2.0]])
    maps = np.array([[[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]])
    idx = np.array([0], dtype=np.int64)
    lo = np.array([[0.5]])
    hi = np.array([[0.5]])
    # pixel 1: m = 0 with n = 0 contributes 0; fine
    ll, _, _ = K.loglike_serial(counts, EMPTY, EMPTY, maps, idx, lo, hi, 0, 1, 4, 2,
                                True, EMPTY)
    assert ll == pytest.approx(1.0 * np.log(1.0) - 1.0 + 2.0 * np.log(1.0) - 1.0)
    counts[0, 1] = 3.0
    ll, _, _ = K.loglike_serial(counts, EMPTY, EMPTY, maps, idx, lo, hi, 0, 1, 4, 2,
                                False, EMPTY)
    assert ll == -np.inf
    # a zero weight masks the pixel completely, even there
    w = np.ones_like(counts)
    w[0, 1] = 0.0
    ll, A, _ = K.loglike_serial(counts, w, EMPTY, maps, idx, lo, hi, 0, 1, 4, 2, True,
                                EMPTY)
    assert np.isfinite(ll) and np.all(np.isfinite(A))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_model_cube_and_node_sums(dtype):
    rng = np.random.default_rng(2)
    counts, w, fx, maps, idx, lo, hi = _problem(rng, dtype=dtype)
    ref = K.model_cube_reference(fx, maps, idx, lo, hi, 1, 6)
    outs = []
    for kern in (K.model_cube_serial, K.model_cube_parallel):
        out = np.zeros(counts.shape)
        kern(fx, maps, idx, lo, hi, 1, 6, out)
        np.testing.assert_allclose(out, ref, rtol=1e-12)
        assert not out[0].any() and not out[6].any()
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])
    for wts in (w, EMPTY):
        Lr, Ur = K.node_sums_reference(maps, wts, 1, 6)
        for kern in (K.node_sums_serial, K.node_sums_parallel):
            L, U = kern(maps, wts, 1, 6)
            np.testing.assert_allclose(L, Lr, rtol=1e-10)
            np.testing.assert_allclose(U, Ur, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("krange", [(0, 7), (3, 4)])
def test_information_kernel_matches_reference(dtype, krange):
    rng = np.random.default_rng(8)
    counts, w, fx, maps, idx, lo, hi = _problem(rng, dtype=dtype, npix=777)
    v = rng.random(counts.shape)
    q = np.array([0, 0, 1, 4, 5], dtype=np.int64)
    dlo = rng.normal(size=(5, 7))
    dhi = rng.normal(size=(5, 7))
    Fr = K.info_reference(v, maps.astype(float), q, dlo, dhi, *krange)
    for seg in (100, 777, 64, 5000):
        F = K.info_matrix(np.sqrt(v), maps, q, dlo, dhi, *krange, seg)
        np.testing.assert_allclose(F, Fr, rtol=1e-10, atol=1e-12 * abs(Fr).max())
        assert np.array_equal(F, F.T)


def test_information_weights():
    rng = np.random.default_rng(9)
    counts = rng.poisson(3.0, (4, 50)).astype(float)
    m = rng.uniform(0.5, 4.0, (4, 50))
    m[0, 0] = 0.0
    w = rng.random((4, 50))
    out = np.empty_like(m)
    K.info_weights(counts, w, m, 1, 3, False, out)
    ref = np.zeros_like(m)
    ref[1:3] = w[1:3] / m[1:3]
    np.testing.assert_allclose(out ** 2, ref, rtol=1e-14)
    K.info_weights(counts, EMPTY, m, 0, 4, True, out)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = np.where(m > 0, counts / m ** 2, 0.0)
    np.testing.assert_allclose(out ** 2, ref, rtol=1e-14)
