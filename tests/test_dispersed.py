"""The likelihood with energy dispersion against the dispersion-free one and against finite
differences."""

import numpy as np
import pytest

from fermixr.irf.drm import identity_drm, true_energy_axis
from fermixr.likelihood.cost import BinnedPoissonCost, SourceTerm
from fermixr.likelihood.dispersed import DispersedPoissonCost


def _problem(n_extra=1, seed=1):
    rng = np.random.default_rng(seed)
    meas = np.geomspace(200.0, 20000.0, 11)
    true = true_energy_axis(meas, n_extra)
    npix = 40
    maps = rng.uniform(5e9, 2e10, (2, true.size, npix))
    terms = [SourceTerm.make("a", "PowerLaw", [3e-11, -2.2, 1000.0], free=["Prefactor", "Index"]),
             SourceTerm.make("b", "PowerLaw", [1e-11, -1.8, 1000.0], free=["Prefactor"])]
    return meas, true, maps, terms, rng


def test_identity_response_equals_the_plain_cost():
    meas, true, maps, terms, rng = _problem()
    k = 1
    plain = BinnedPoissonCost(np.zeros((10, 40)), maps[:, k:-k], meas, terms)
    counts = rng.poisson(plain.model_cube(plain.x0).reshape(10, 40)).astype(float)
    plain = BinnedPoissonCost(counts, maps[:, k:-k], meas, terms)
    disp = DispersedPoissonCost(counts, maps, true, terms, [identity_drm(10, k)] * 2)
    assert disp.parameters == plain.parameters
    x = plain.x0 * 1.1
    np.testing.assert_allclose(disp(x), plain(x), rtol=1e-12)
    np.testing.assert_allclose(disp.grad(x), plain.grad(x), rtol=1e-9)
    np.testing.assert_allclose(disp.fisher(x), plain.fisher(x), rtol=1e-9)


def test_gradient_and_dispersion():
    meas, true, maps, terms, rng = _problem()
    d = np.zeros((10, 12))
    for i in range(10):
        d[i, i:i + 3] = (0.15, 0.7, 0.15)          # 70% in place, 15% to each neighbour
    cost = DispersedPoissonCost(np.ones((10, 40)), maps, true, terms, [d, d])
    counts = rng.poisson(cost.model_cube()).astype(float)
    cost = DispersedPoissonCost(counts, maps, true, terms, [d, d])
    x = cost.x0 * np.array([1.05, 0.97, 0.9])
    g = cost.grad(x)
    for a in range(x.size):
        h = 1e-6 * abs(x[a])
        xp, xm = x.copy(), x.copy()
        xp[a] += h
        xm[a] -= h
        assert g[a] == pytest.approx((cost(xp) - cost(xm)) / (2 * h), rel=1e-5)
    assert not np.allclose(cost.model_cube(), cost.source_cube("a") * 0)
