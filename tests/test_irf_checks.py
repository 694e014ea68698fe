"""The Science Tools IRF evaluations of ``reference/irf-checks.md`` (Fermipy's test_irfs)
reproduced on the shared CALDB (P8R2_SOURCE_V6, FRONT+BACK)."""

from __future__ import annotations

import numpy as np
import pytest

from fermixr.irf.irfset import IRFSet
from fermixr.irf.mean import (LivetimeProfile, exposure_cth, mean_edisp, mean_psf,
                              psf_model, psf_model_interp)

pytestmark = pytest.mark.shared_data

T_OBS = 3.1536e8
CTH_BINS = np.array([0.2, 0.6, 1.0])
E6 = 10.0 ** np.arange(1, 7)


@pytest.fixture(scope="module")
def irf(caldb_dir):
    return IRFSet.from_caldb("P8R2_SOURCE_V6", 3, caldb_dir)


@pytest.fixture(scope="module")
def lt():
    return LivetimeProfile.isotropic(T_OBS)


def _worst(calc, ref):
    calc, ref = np.asarray(calc), np.asarray(ref)
    m = ref != 0
    return float(np.max(np.abs(calc[m] / ref[m] - 1)))


def test_section1_exposure(irf, lt):
    ref = np.array([[1.99488297e+07, 1.19873696e+08], [2.62408989e+10, 1.45160418e+11],
                    [1.48892140e+11, 4.16821553e+11], [1.54396951e+11, 4.62333934e+11],
                    [1.64080383e+11, 4.69147489e+11], [1.26298212e+11, 4.12446229e+11]])
    exp = exposure_cth(irf, E6, CTH_BINS, lt)
    assert exp.dims == ("energy_true", "cth_bin")
    print(f"\nsection 1 (exposure) worst relative residual: {_worst(exp.values, ref):.3e}")
    np.testing.assert_allclose(exp.values, ref, rtol=1e-3)


def test_section2_mean_psf(irf, lt):
    ref0 = np.array([[1.18130643e+00, 3.28292468e+00], [6.84688131e+01, 1.14113625e+02],
                     [3.38398660e+03, 6.28834012e+03], [9.53575281e+04, 1.32718447e+05],
                     [4.34116995e+05, 5.66676868e+05], [7.38865869e+05, 7.17838392e+05]])
    ref1 = np.array([[1.17856092e+00, 3.26537299e+00], [5.72311084e+01, 8.61070947e+01],
                     [1.95186605e+02, 1.49160620e+02], [6.48954807e+01, 2.29121961e+01],
                     [1.47953386e+01, 7.85470899e+00], [5.79479621e+00, 2.80795367e+00]])
    psf = mean_psf(irf, [0.0, 1.0], E6, CTH_BINS, lt)
    assert psf.dims == ("offset", "energy_true", "cth_bin")
    ref = np.stack([ref0, ref1])
    print(f"\nsection 2 (mean PSF) worst relative residual: {_worst(psf.values, ref):.3e}")
    np.testing.assert_allclose(psf.values, ref, rtol=1e-3)


def test_section3_mean_edisp(irf, lt):
    ref = np.array([[0, 0], [1.18478609e-05, 1.19762369e-05], [2.01589611e-04, 1.53937204e-04],
                    [9.66320297e-06, 2.22120074e-05], [1.35586410e-08, 7.26040089e-09], [0, 0]])
    ed = mean_edisp(irf, 10 ** np.linspace(3, 4, 6), [10 ** 3.5], CTH_BINS, lt)
    v = ed.values[:, 0, :]
    print(f"\nsection 3 (mean edisp) worst relative residual: {_worst(v, ref):.3e}")
    assert np.all(v[[0, -1]] == 0)
    np.testing.assert_allclose(v, ref, rtol=1e-3)
    # The Science Tools' EdispInterpolator rule (point scale with cos theta uncapped,
    # r_i factor on the cos theta = 1 padding row) reproduces every value to ~3e-9; the
    # far-tail value at E_rec = 10**3.8 in bin [0.6, 1.0] is 4.3e-3 off when cos theta
    # in the point scale is capped at the top bin centre, so hold it tighter.
    np.testing.assert_allclose(v, ref, rtol=1e-6)


def test_section4_psf_model(irf, lt):
    loge = np.linspace(2.0, 6.0, 17)
    m = psf_model(irf, lt, 10 ** loge, [0.2, 1.0], ndtheta=400)
    d = np.array([0.0, 0.5, 1.0, 2.0])
    ref = np.array([107.12557515, 99.51633488, 81.6831002, 46.26852089])
    v = 10 ** np.interp(d, m.offset.values, np.log10(m.psf.values[:, 0]))
    r68 = np.array([5.26027904, 3.39225156, 2.17733773, 1.3545119, 0.8388698, 0.52372673,
                    0.33596259, 0.22476962, 0.16023516, 0.12436676, 0.10858581, 0.1022676,
                    0.10153258, 0.10137515, 0.09766877, 0.09070837, 0.08331364])
    worst = max(_worst(v, ref), _worst(m.containment_68.values, r68))
    print(f"\nsection 4 (PSF model, r68) worst relative residual: {worst:.3e}")
    np.testing.assert_allclose(v, ref, rtol=1e-3)
    np.testing.assert_allclose(m.containment_68.values, r68, rtol=1e-3)
    # interpolation at a node reproduces the node; containment ordered 68 < 95 < 99
    np.testing.assert_allclose(psf_model_interp(m, 100.0, d), v, rtol=1e-6)
    assert np.all(m.containment_68 < m.containment_95)
    assert np.all(m.containment_95 < m.containment_99)


def test_section5_psf_model_edisp(irf, lt):
    loge = np.linspace(2.0, 6.0, 17)
    m = psf_model(irf, lt, 10 ** loge, [0.2, 1.0], ndtheta=100, use_edisp=True, nbin=64)
    assert m.psf.dims == ("offset", "energy")
    d = np.array([0.0, 0.5, 1.0, 2.0])
    refs = {0: [118.75080503, 107.16226208, 84.17906815, 45.74811465],
            8: [1.22250413e+05, 2.50655759e+02, 3.38000338e+01, 1.61790809e+00]}
    r68 = np.array([5.29456712, 3.38903389, 2.17160528, 1.35119099, 0.83606193, 0.52268297,
                    0.33887066, 0.22721536, 0.16208684, 0.12568082, 0.10895818, 0.10243248,
                    0.10157182, 0.10136436, 0.09777351, 0.0906484, 0.08328053])
    worst = _worst(m.containment_68.values, r68)
    for i, ref in refs.items():
        v = 10 ** np.interp(d, m.offset.values, np.log10(m.psf.values[:, i]))
        worst = max(worst, _worst(v, ref))
        np.testing.assert_allclose(v, ref, rtol=1e-2)
    print(f"\nsection 5 (PSF model with edisp) worst relative residual: {worst:.3e}")
    np.testing.assert_allclose(m.containment_68.values, r68, rtol=1e-2)
    # the fold is not a no-op: the dispersed PSF differs from the true-energy one
    m0 = psf_model(irf, lt, 10 ** loge, [0.2, 1.0], ndtheta=100)
    assert abs(m.psf.values[0, 0] / m0.psf.values[0, 0] - 1) > 0.05
