"""Model counts from source maps at energy nodes, with and without energy dispersion."""

import numpy as np
import pytest
from scipy.integrate import quad

from fermixr.irf.drm import identity_drm, true_energy_axis
from fermixr.likelihood.npred import measured_model_counts, model_counts, model_cube


def test_log_trapezoid_is_exact_for_power_law_times_power_law_maps():
    """E S(E) dN/dE linear in log E between nodes is integrated exactly; for a smooth
    product the rule converges to the integral."""
    e = np.geomspace(100.0, 1e5, 61)
    s = 1e10 * (e / 1000.0) ** 0.3            # exposure-like node values
    f = 1e-9 * (e / 1000.0) ** -2.3
    got = model_counts(s[:, None], e, f)[:, 0]
    want = [quad(lambda x: 1e10 * (x / 1000) ** 0.3 * 1e-9 * (x / 1000) ** -2.3, a, b)[0]
            for a, b in zip(e[:-1], e[1:])]
    np.testing.assert_allclose(got, want, rtol=2e-3)


def test_disabled_dispersion_takes_the_measured_bins_of_the_extended_maps():
    meas = np.geomspace(200.0, 20000.0, 21)
    true = true_energy_axis(meas, 2)
    rng = np.random.default_rng(3)
    maps = rng.uniform(1e9, 2e9, (true.size, 4, 5))
    dnde = 1e-9 * (true / 1000.0) ** -2
    plain = model_counts(maps[2:-2], meas, dnde[2:-2])
    np.testing.assert_allclose(measured_model_counts(maps, true, dnde, None, 2), plain, rtol=1e-13)
    np.testing.assert_allclose(measured_model_counts(maps, true, dnde, identity_drm(20, 2), 2),
                               plain, rtol=1e-13)
    # with a dispersing matrix, a source listed in edisp_disable still gets the plain counts
    drm = 0.8 * identity_drm(20, 2) + 0.1 * np.roll(identity_drm(20, 2), 1, axis=1) \
        + 0.1 * np.roll(identity_drm(20, 2), -1, axis=1)
    cube = model_cube(np.stack([maps, maps]), true, np.stack([dnde, dnde]), names=["a", "b"],
                      drm=drm, edisp_disable=["b"], n_extra=2)
    a = measured_model_counts(maps, true, dnde, drm, 2)
    np.testing.assert_allclose(cube, a + plain, rtol=1e-13)
    assert not np.allclose(a, plain, rtol=1e-3)
    with pytest.raises(ValueError, match="true-energy bins"):
        measured_model_counts(maps[:-1], true[:-1], dnde[:-1], drm, 2)
