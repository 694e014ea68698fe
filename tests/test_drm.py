"""Detector response matrix (fermixr.irf.drm): synthetic dispersions with analytic
answers, the Science Tools' matrix element recomputed by scipy quadrature on the real
CALDB, counts conservation, and the per-source / older-approximation switches."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from scipy.integrate import IntegrationWarning, quad
from scipy.special import ndtr

from fermixr.errors import GeometryError, IRFError
from fermixr.irf.drm import (apply_drm, convolve_true_spectrum, cth_weights, drm_dataset,
                             drm_matrix, edisp_scale_factors, extrapolate_true_counts,
                             identity_drm, source_drm, true_energy_axis)
from fermixr.irf.mean import LivetimeProfile

CRAB = (83.6331, 22.0145)
MEAS = np.logspace(math.log10(200.0), math.log10(2e4), 21)   # the cntmap binning


# ------------------------------------------------------------------------------------
# a synthetic IRF set: Gaussian dispersion in ln E, inclination-dependent area and width
# ------------------------------------------------------------------------------------
class GaussIRF:
    """Stand-in for an IRFSet: D(E'; E, c) = N(ln E'; ln E + bias, sigma) / E'."""

    event_types = ["FRONT", "BACK"]

    def __init__(self, sigma=(0.08, 0.12), bias=(0.0, -0.02)):
        self.sigma = dict(zip(self.event_types, sigma))
        self.bias = dict(zip(self.event_types, bias))

    def aeff(self, energy, costheta, phi=None, event_type=None):
        e, c = np.broadcast_arrays(np.asarray(energy, float), np.asarray(costheta, float))
        scale = 1.0 if event_type == "FRONT" else 0.7
        return scale * 8000.0 * np.clip(c - 0.2, 0, None) * (e / (e + 300.0))

    def sig(self, t, c):
        return self.sigma[t] * (1.5 - 0.5 * np.asarray(c, float))

    def edisp(self, erec, etrue, costheta, event_type=None):
        s = self.sig(event_type, costheta)
        z = (np.log(erec) - np.log(etrue) - self.bias[event_type]) / s
        return np.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * s * erec)

    def prob(self, t, lo, hi, etrue, c):
        s = self.sig(t, c)
        mid = np.log(etrue) + self.bias[t]
        return ndtr((np.log(hi) - mid) / s) - ndtr((np.log(lo) - mid) / s)


def _sqrt_profile(n=20, seed=1):
    rng = np.random.default_rng(seed)
    edges = 1.0 - (np.arange(n, -1, -1) / n) ** 2          # ascending, uniform in sqrt(1-c)
    return LivetimeProfile(edges, rng.uniform(100.0, 5000.0, n))


def _st_points_weights(prof):
    """CosineBinner points 1 - ((i + 0.5)/n)^2 and the trapezoid weights over them,
    written out independently of the module."""
    n = prof.livetime.size
    i = np.arange(n)                       # bin 0 next to cos theta = 1
    mu = 1.0 - ((i + 0.5) / n) ** 2
    lt = prof.livetime[::-1]               # profile is ascending in cos theta
    return mu, lt


def _analytic_drm(irf, prof, meas, true, weighting="st"):
    mu, lt = _st_points_weights(prof)
    et = np.sqrt(true[:-1] * true[1:])
    out = np.zeros((meas.size - 1, et.size))
    for j, e in enumerate(et):
        top = np.zeros((meas.size - 1, mu.size))
        bot = np.zeros(mu.size)
        for t in irf.event_types:
            a = irf.aeff(e, mu, event_type=t) * lt
            top += a[None, :] * irf.prob(t, meas[:-1, None], meas[1:, None], e, mu[None, :])
            bot += a
        if weighting == "st":
            order = np.argsort(mu)
            num = np.trapezoid(top[:, order], mu[order], axis=1)
            den = np.trapezoid(bot[order], mu[order])
        else:
            num, den = top.sum(axis=1), bot.sum()
        out[:, j] = num / den
    return out


# ------------------------------------------------------------------------------------
# axes
# ------------------------------------------------------------------------------------
def test_true_energy_axis():
    assert np.array_equal(true_energy_axis(MEAS, 0), MEAS)
    t2 = true_energy_axis(MEAS, 2)
    assert t2.size == MEAS.size + 4
    np.testing.assert_array_equal(t2[2:-2], MEAS)
    np.testing.assert_allclose(np.diff(np.log10(t2)), 0.1, rtol=1e-12)
    np.testing.assert_allclose(t2[[0, -1]], [200 * 10 ** -0.2, 2e4 * 10 ** 0.2], rtol=1e-12)
    np.testing.assert_array_equal(true_energy_axis(MEAS, -2), t2)
    # uneven edges: each end keeps the log width of its end bin
    e = np.array([100.0, 200.0, 300.0, 1000.0])
    np.testing.assert_allclose(true_energy_axis(e, 1), [50.0, 100, 200, 300, 1000, 1000 * 10 / 3])
    with pytest.raises(GeometryError, match="strictly increasing"):
        true_energy_axis([100.0, 50.0], 1)
    with pytest.raises(GeometryError, match="integer"):
        true_energy_axis(MEAS, 1.5)


def test_cth_weights_trapezoid():
    prof = _sqrt_profile()
    mu, w = cth_weights(prof, cth_weighting="st")
    mu_ref, lt_ref = _st_points_weights(prof)
    np.testing.assert_allclose(np.sort(mu), np.sort(mu_ref), rtol=0, atol=1e-14)
    # sum w f = trapezoid(lt f) over the points, for any f
    f = np.cos(3 * mu) + 2
    order = np.argsort(mu_ref)
    lt_by_mu = dict(zip(np.round(mu_ref, 12), lt_ref))
    lt_at = np.array([lt_by_mu[round(m, 12)] for m in mu])
    ref = np.trapezoid((lt_at * f)[np.argsort(mu)], np.sort(mu))
    assert np.sum(w * f) == pytest.approx(ref, rel=1e-13)
    _, w_lt = cth_weights(prof, cth_weighting="livetime")
    assert np.sum(w_lt) == pytest.approx(np.sum(prof.livetime), rel=1e-14)
    with pytest.raises(IRFError, match="cth_weighting"):
        cth_weights(prof, cth_weighting="median")
    with pytest.raises(IRFError, match="LivetimeProfile"):
        cth_weights(42)


# ------------------------------------------------------------------------------------
# synthetic dispersion: analytic matrix, identity limit, conservation
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("weighting", ["st", "livetime"])
def test_drm_matches_analytic_gaussian(weighting):
    irf = GaussIRF()
    prof = _sqrt_profile()
    true = true_energy_axis(MEAS, 2)
    m = drm_matrix(irf, prof, 0.0, 0.0, MEAS, true, cth_weighting=weighting)
    ref = _analytic_drm(irf, prof, MEAS, true, weighting)
    assert m.shape == (20, 24)
    np.testing.assert_allclose(m, ref, rtol=1e-5, atol=1e-9)
    # the two inclination weightings genuinely differ
    other = _analytic_drm(irf, prof, MEAS, true, "livetime" if weighting == "st" else "st")
    assert np.max(np.abs(other - ref)) > 1e-3


def test_column_sums_are_fraction_inside():
    irf = GaussIRF()
    prof = _sqrt_profile()
    true = true_energy_axis(MEAS, 2)
    m = drm_matrix(irf, prof, 0.0, 0.0, MEAS, true)
    inside = _analytic_drm(irf, prof, MEAS[[0, -1]], true)[0]     # one bin = whole range
    np.testing.assert_allclose(m.sum(axis=0), inside, rtol=1e-6, atol=1e-9)
    assert np.all(m.sum(axis=0)[4:-4] > 0.99)                      # well inside
    assert m.sum(axis=0)[0] < 0.3 and m.sum(axis=0)[-1] < 0.3      # outer extra bins leak


def test_narrow_dispersion_tends_to_identity():
    true = true_energy_axis(MEAS, 1)
    prof = _sqrt_profile()
    errs = []
    for sigma in (0.05, 0.02, 0.004):
        m = drm_matrix(GaussIRF((sigma, sigma), (0.0, 0.0)), prof, 0, 0, MEAS, true)
        errs.append(np.max(np.abs(m - identity_drm(20, 1))))
    assert errs[0] > errs[1] > errs[2]
    assert errs[0] > 0.01
    assert errs[2] < 1e-9


def test_power_law_counts_conserved():
    irf = GaussIRF()
    prof = _sqrt_profile()
    true = true_energy_axis(MEAS, 2)
    m = drm_matrix(irf, prof, 0, 0, MEAS, true)
    g = 2.2
    t = (true[:-1] ** (1 - g) - true[1:] ** (1 - g)) / (g - 1) * 1e6   # counts per true bin
    meas = apply_drm(t, m)
    # leak: probability outside [200 MeV, 20 GeV], from the analytic CDFs
    below = _analytic_drm(irf, prof, np.array([1e-3, MEAS[0]]), true)[0]
    above = _analytic_drm(irf, prof, np.array([MEAS[-1], 1e12]), true)[0]
    leak = np.sum(t * (below + above))
    assert meas.sum() == pytest.approx(t.sum() - leak, rel=1e-6)
    assert leak / t.sum() > 0.05                           # the extra bins matter here


# ------------------------------------------------------------------------------------
# applying the matrix, per-source switch, older approximation
# ------------------------------------------------------------------------------------
def test_apply_drm_shapes_and_labels():
    rng = np.random.default_rng(3)
    m = rng.uniform(size=(5, 9))
    t = rng.uniform(size=(9, 3, 4))
    out = apply_drm(t, m)
    ref = np.einsum("ij,jab->iab", m, t)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    da_m = xr.DataArray(m, dims=("energy", "energy_true"))
    da_t = xr.DataArray(t, dims=("energy_true", "y", "x"))
    lab = apply_drm(da_t, da_m)
    assert lab.dims == ("energy", "y", "x")
    np.testing.assert_allclose(lab.values, ref, rtol=1e-13)
    with pytest.raises(GeometryError, match="9 rows"):
        apply_drm(t[:8], m)
    with pytest.raises(GeometryError, match="energy_true"):
        apply_drm(da_t.isel(energy_true=slice(0, 8)), da_m)


def test_source_drm_identity_for_disabled_sources():
    rng = np.random.default_rng(4)
    m = rng.uniform(size=(20, 24))
    t = rng.uniform(size=(24, 7))
    ident = source_drm("isodiff", m, edisp_disable=["isodiff", "galdiff"])
    np.testing.assert_array_equal(apply_drm(t, ident), t[2:-2])
    np.testing.assert_array_equal(source_drm("Crab", m, edisp_disable=["isodiff"]), m)
    np.testing.assert_array_equal(source_drm("Crab", m, edisp=False), identity_drm(20, 2))
    np.testing.assert_array_equal(identity_drm(3, 0), np.eye(3))
    with pytest.raises(GeometryError, match="n_true"):
        source_drm("x", rng.uniform(size=(20, 23)), edisp=False)


def test_extrapolation_and_scale_factors():
    e = MEAS
    c = 1000.0 * 0.7 ** np.arange(20)                       # geometric: exact in log-log
    ext = extrapolate_true_counts(c, e, 2)
    np.testing.assert_allclose(ext[:2], [1000 / 0.7 ** 2, 1000 / 0.7], rtol=1e-12)
    np.testing.assert_allclose(ext[-2:], [c[-1] * 0.7, c[-1] * 0.49], rtol=1e-12)
    np.testing.assert_array_equal(ext[2:-2], c)
    # below the threshold: linear in energy, d = (E0 - E2) / (E1 - E2)
    small = np.full(20, 1e-3)
    small[0], small[1] = 2e-3, 1e-3
    d = (e[0] - e[2]) / (e[1] - e[2])
    assert extrapolate_true_counts(small, e, 1)[0] == pytest.approx(d * (2e-3 - 1e-3) + 1e-3)
    # identity matrix: xi = 1; a zero bin refers to the last bin with counts
    xi, kref = edisp_scale_factors(c, identity_drm(20, 1), e)
    np.testing.assert_allclose(xi, 1.0, rtol=1e-14)
    assert np.all(kref == -1)
    c0 = c.copy()
    c0[5] = 0.0
    m = np.zeros((20, 22))
    m[np.arange(20), np.arange(20) + 1] = 0.5
    m[5, 5] = 0.25                                          # bin 5 collects from true bin 4
    xi, kref = edisp_scale_factors(c0, m, e)
    assert kref[5] == 4 and xi[5] == pytest.approx(0.25)     # 0.25 c[4] / c[4]
    np.testing.assert_allclose(np.delete(xi, 5), 0.5)
    meas = convolve_true_spectrum(c, m, e)
    assert meas[0] == pytest.approx(0.5 * c[0])


# ------------------------------------------------------------------------------------
# real CALDB: the Science Tools' element by quadrature, the Crab matrix
# ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crab_setup(caldb_dir, crab_day):
    from fermixr.io.ltcube import read_ltcube
    from fermixr.irf.irfset import load_irfs

    lt = read_ltcube(crab_day / "ltcube.fits.gz")
    irf = load_irfs("P8R2_SOURCE_V6", 3, caldb_dir)
    drms = {nb: drm_matrix(irf, lt, *CRAB, MEAS, true_energy_axis(MEAS, nb)) for nb in (0, 1, 2)}
    return irf, lt, drms


def _st_element(irf, lt, etrue, lo, hi):
    """Drm::matrix_element written out: livetime x Aeff per livetime-cube bin and event
    type, trapezoid over the CosineBinner points, the dispersion integrated over
    [lo, hi] by scipy quad (the trapezoid is linear, so one quad of the weighted sum)."""
    import healpy as hp

    ipix = hp.ang2pix(lt.attrs["nside"], *CRAB, nest=True, lonlat=True)
    live = lt["exposure"].sel(pix=ipix).values
    n = live.size
    mu = 1.0 - ((np.arange(n) + 0.5) / n) ** 2
    np.testing.assert_allclose(mu, lt["costheta"].values, rtol=1e-6)
    q = np.array([np.trapezoid(np.eye(n)[k][::-1], mu[::-1]) for k in range(n)])
    use = live > 0
    mu, w = mu[use], (q * live)[use]
    a = {t: irf.aeff(etrue, mu, event_type=t) * w for t in irf.event_types}
    den = sum(v.sum() for v in a.values())

    def f(x):
        return sum(float(np.dot(irf.edisp(x, etrue, mu, event_type=t), a[t]))
                   for t in irf.event_types) / den

    pts = [etrue] if lo < etrue < hi else None
    with warnings.catch_warnings():
        # quad may report round-off at the 1e-8 goal; the results agree to ~1e-6
        warnings.simplefilter("ignore", IntegrationWarning)
        return quad(f, lo, hi, points=pts, epsabs=1e-12, epsrel=1e-8, limit=400)[0]


@pytest.mark.shared_data
def test_crab_elements_against_quadrature(crab_setup):
    irf, lt, drms = crab_setup
    m = drms[1]
    true = true_energy_axis(MEAS, 1)
    et = np.sqrt(true[:-1] * true[1:])
    cases = [(0, 0), (0, 1), (0, 2), (1, 1), (3, 2), (10, 11), (10, 12), (11, 10),
             (19, 20), (19, 21), (18, 21), (5, 12), (15, 3)]
    rel = []
    for i, j in cases:
        ref = _st_element(irf, lt, et[j], MEAS[i], MEAS[i + 1])
        assert m[i, j] == pytest.approx(ref, rel=1e-3, abs=1e-9), (i, j)
        if ref > 1e-6:
            rel.append(abs(m[i, j] / ref - 1))
    print(f"\nDRM vs quad: {len(cases)} elements, median rel {np.median(rel):.2e}, "
          f"max rel {np.max(rel):.2e}")
    assert np.max(rel) < 1e-4


@pytest.mark.shared_data
def test_crab_counts_conservation(crab_setup):
    """Column sums = probability inside [200 MeV, 20 GeV] (one quadrature over the
    whole range); a power law loses exactly the leaked counts."""
    irf, lt, drms = crab_setup
    m = drms[2]
    true = true_energy_axis(MEAS, 2)
    et = np.sqrt(true[:-1] * true[1:])
    for j in (0, 1, 2, 12, 22, 23):
        inside = _st_element(irf, lt, et[j], MEAS[0], MEAS[-1])
        assert m[:, j].sum() == pytest.approx(inside, rel=1e-4), j
    g = 2.2
    t = (true[:-1] ** (1 - g) - true[1:] ** (1 - g)) / (g - 1) * 1e6
    lost = t.sum() - apply_drm(t, m).sum()
    leak = np.sum(t * (1.0 - m.sum(axis=0)))
    assert lost == pytest.approx(leak, rel=1e-10)
    # most of the loss: the two true bins below 200 MeV, which hold 43% of the counts
    assert 0.3 < lost / t.sum() < 0.6


@pytest.mark.shared_data
def test_crab_drm_diagonal(crab_setup):
    irf, lt, drms = crab_setup
    np.set_printoptions(precision=4, linewidth=160)
    for nb, m in drms.items():
        diag = m[np.arange(20), np.arange(20) + nb]
        print(f"\nedisp_bins={nb}: shape {m.shape}, diagonal:\n{diag}")
        assert np.all((diag > 0.5) & (diag < 0.95))
        assert diag[-1] > diag[0] + 0.25                       # resolution improves with E
        # off-diagonals: below the diagonal in every column, decreasing away from it
        for j in range(m.shape[1]):
            col = m[:, j]
            i0 = int(np.argmax(col))
            assert abs(i0 - np.clip(j - nb, 0, 19)) <= 1
            assert np.all(np.diff(col[i0:]) <= 1e-12) and np.all(np.diff(col[:i0 + 1]) >= -1e-12)
        far = np.abs(np.arange(20)[:, None] - (np.arange(m.shape[1])[None, :] - nb)) >= 2
        assert m[far].max() < 0.06
        near = np.abs(np.arange(20)[:, None] - (np.arange(m.shape[1])[None, :] - nb)) == 1
        assert m[near].max() < 0.25
    # the extension only adds columns
    np.testing.assert_allclose(drms[1][:, 1:-1], drms[0], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(drms[2][:, 1:-1], drms[1], rtol=1e-9, atol=1e-13)


@pytest.mark.shared_data
def test_crab_drm_dataset(crab_setup, crab_day):
    irf, lt, drms = crab_setup
    ds = drm_dataset(irf, lt, *CRAB, MEAS, edisp_bins=1)
    assert ds["drm"].dims == ("energy", "energy_true")
    assert ds.sizes == {"energy": 20, "energy_true": 22}
    np.testing.assert_allclose(ds["drm"].values, drms[1], rtol=1e-12)
    np.testing.assert_allclose(ds["energy_true_min"].values[1:-1], MEAS[:-1], rtol=1e-12)
    np.testing.assert_allclose(ds["energy"].values, np.sqrt(MEAS[:-1] * MEAS[1:]), rtol=1e-12)
    assert ds.attrs["edisp_bins"] == 1 and ds.attrs["irfs"] == "P8R2_SOURCE_V6"
    assert ds.attrs["evtype"] == 3 and ds.attrs["ra"] == CRAB[0]
    # a path and a LivetimeProfile give the same matrix
    prof = LivetimeProfile.from_ltcube(lt, *CRAB)
    m_path = drm_matrix(irf, crab_day / "ltcube.fits.gz", *CRAB, MEAS[:6], MEAS[:6])
    m_prof = drm_matrix(irf, prof, *CRAB, MEAS[:6], MEAS[:6])
    np.testing.assert_allclose(m_path, drms[0][:5, :5], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(m_prof, m_path, rtol=1e-12)


@pytest.mark.shared_data
def test_monkeypatched_narrow_edisp_gives_identity(caldb_dir, crab_day, monkeypatch):
    """Real effective areas and livetime, a delta-like dispersion patched in."""
    from fermixr.irf.irfset import load_irfs

    irf = load_irfs("P8R2_SOURCE_V6", 3, caldb_dir)

    def narrow(erec, etrue, costheta, event_type=None):
        s = 0.003
        z = np.log(np.asarray(erec) / np.asarray(etrue)) / s
        return np.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * s * np.asarray(erec)) + \
            0.0 * np.asarray(costheta)

    monkeypatch.setattr(irf, "edisp", narrow)
    m = drm_matrix(irf, crab_day / "ltcube.fits.gz", *CRAB, MEAS, true_energy_axis(MEAS, 2))
    np.testing.assert_allclose(m, identity_drm(20, 2), rtol=0, atol=1e-9)
