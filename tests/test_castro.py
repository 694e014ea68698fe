"""Likelihood-profile ("castro") tools against known truth.

Profiles are made here from Poisson likelihoods of simulated counts (a power law of index
2.2, or a log-parabola, over a known background, seen with a constant exposure), written to
FITS in Fermipy's SED and TS-cube layouts and read back through ``CastroData``.  The checks
compare with the analytic Poisson answers: the MLE (n - b)/s, upper limits as exact roots of
ΔlnL = 1.353, the MLE of stacked profiles from the summed counts, and the pulls of spectral
fits over seeded realisations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from scipy.optimize import brentq

from fermixr.errors import FermixrError, FileFormatError, InputFileError, LikelihoodError
from fermixr.estimators.castro import (
    CastroData,
    CastroWarning,
    LnLFn,
    ReferenceSpec,
    onesided_cl_to_dlnl,
    read_castro,
    twosided_cl_to_dlnl,
)

EDGES = np.geomspace(100.0, 1e5, 13)            # 12 bins, 4 per decade (MeV)
E1, E2 = EDGES[:-1], EDGES[1:]
EREF = np.sqrt(E1 * E2)
EXPOSURE = 1e11                                 # cm2 s, constant in energy
REF_N0 = 1e-12                                  # reference: E^-2, at 1 GeV
REF_FLUX = REF_N0 * 1e6 * (1.0 / E1 - 1.0 / E2)
REF_EFLUX = REF_N0 * 1e6 * np.log(E2 / E1)
REF_DNDE = REF_N0 * (EREF / 1e3) ** -2.0
REF_NPRED = EXPOSURE * REF_FLUX
BKG = 300.0 * (E1 / 100.0) ** -1.0              # background counts per bin


def _pl_flux(n0, gamma, e1=E1, e2=E2):
    g1 = 1.0 - gamma
    return n0 * 1e3 / g1 * ((e2 / 1e3) ** g1 - (e1 / 1e3) ** g1)


def _lp_flux(n0, alpha, beta):
    out = []
    for a, b in zip(E1, E2):
        e = np.geomspace(a, b, 2001)
        x = e / 1e3
        f = n0 * x ** -(alpha + beta * np.log(x))
        out.append(np.trapezoid(f * e, np.log(e)))
    return np.array(out)


class Sim:
    """Counts in each bin and their exact Poisson log-likelihood in the SED norm (the
    multiple of the reference npred)."""

    def __init__(self, flux, rng, bkg=BKG, counts=None):
        self.norm_true = flux / REF_FLUX
        self.s = REF_NPRED
        self.b = np.asarray(bkg, dtype=float)
        self.n = rng.poisson(EXPOSURE * flux + self.b) if counts is None else counts
        self.nhat = np.maximum(0.0, (self.n - self.b) / self.s)
        self.sig = np.sqrt(self.n + self.b + 1.0) / self.s

    def lnl(self, i, x):
        mu = np.asarray(x) * self.s[i] + self.b[i]
        return self.n[i] * np.log(mu) - mu

    def scans(self, npts=30, nsig=6.0):
        # 0, log-spaced points near it and linear ones up to well past the upper limit
        unit = np.concatenate([[0.0], np.geomspace(1e-3, 0.1, npts // 3),
                               np.linspace(0.0, 1.0, npts - 1 - npts // 3)[1:], [1.02]])
        grid = np.array([unit * (h + nsig * s) for h, s in zip(self.nhat, self.sig)])
        ll = np.array([self.lnl(i, grid[i]) for i in range(len(self.n))])
        llmax = np.array([self.lnl(i, self.nhat[i]) for i in range(len(self.n))])
        return grid, ll - llmax[:, None], llmax

    def upper_limit(self, i, dlnl=1.3527717270477064):
        top = self.lnl(i, self.nhat[i])
        return brentq(lambda x: top - self.lnl(i, x) - dlnl, self.nhat[i],
                      self.nhat[i] + 50 * self.sig[i], xtol=1e-14)

    def lower_limit(self, i, dlnl):
        top = self.lnl(i, self.nhat[i])
        if top - self.lnl(i, 0.0) < dlnl:
            return 0.0
        return brentq(lambda x: top - self.lnl(i, x) - dlnl, 0.0, self.nhat[i], xtol=1e-14)

    def castro(self, norm_type="norm"):
        grid, dll, _ = self.scans()
        ref = ReferenceSpec(E1, E2, REF_DNDE, REF_FLUX, REF_EFLUX, REF_NPRED, eref=EREF)
        return CastroData(grid * ref.ref_values(norm_type)[:, None], -dll, ref, norm_type)


def _sed_columns(sim):
    grid, dll, llmax = sim.scans()
    return [
        fits.Column("e_min", "D", unit="MeV", array=E1),
        fits.Column("e_ref", "D", unit="MeV", array=EREF),
        fits.Column("e_max", "D", unit="MeV", array=E2),
        fits.Column("ref_dnde", "D", unit="ph / (MeV cm2 s)", array=REF_DNDE),
        fits.Column("ref_flux", "D", unit="ph / (cm2 s)", array=REF_FLUX),
        fits.Column("ref_eflux", "D", unit="MeV / (cm2 s)", array=REF_EFLUX),
        fits.Column("ref_npred", "D", array=REF_NPRED),
        fits.Column("ref_dnde_e_min", "D", array=REF_N0 * (E1 / 1e3) ** -2.0),
        fits.Column("ref_dnde_e_max", "D", array=REF_N0 * (E2 / 1e3) ** -2.0),
        fits.Column("ref_e2dnde", "D", array=REF_DNDE * EREF ** 2),
        fits.Column("norm", "D", array=sim.nhat),
        fits.Column("norm_err", "D", array=sim.sig),
        fits.Column("ts", "D", array=2 * (llmax - np.array(
            [sim.lnl(i, 0.0) for i in range(len(E1))]))),
        fits.Column("loglike", "D", array=llmax),
        fits.Column("norm_scan", f"{grid.shape[1]}D", array=grid),
        fits.Column("dloglike_scan", f"{grid.shape[1]}D", array=dll),
    ]


def write_sedfile(path, sim, drop=(), edit=None):
    cols = [c for c in _sed_columns(sim) if c.name not in drop]
    hdu = fits.BinTableHDU.from_columns(cols, name="SED")
    hdu.header["UL_CONF"] = 0.95
    if edit is not None:
        edit(hdu.data)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
    return path


def write_tscube(path, sims):
    """Fermipy's TS-cube layout: a TS map, SCANDATA (one row per pixel with (bins, points)
    scans), EBOUNDS in keV (as gttscube writes it)."""
    scans = [s.scans() for s in sims]
    npix, (ne, npts) = len(sims), scans[0][0].shape
    grid = np.stack([g for g, _, _ in scans])
    dll = np.stack([d for _, d, _ in scans])
    ts = np.stack([2 * (llmax - np.array([s.lnl(i, 0.0) for i in range(ne)]))
                   for s, (_, _, llmax) in zip(sims, scans)])
    dim = f"({npts},{ne})"
    scan = fits.BinTableHDU.from_columns([
        fits.Column("NORM_SCAN", f"{ne * npts}D", dim=dim, array=grid),
        fits.Column("DLOGLIKE_SCAN", f"{ne * npts}D", dim=dim, array=dll),
        fits.Column("NORM", f"{ne}D", array=np.stack([s.nhat for s in sims])),
        fits.Column("TS", f"{ne}D", array=ts),
    ], name="SCANDATA")
    ebounds = fits.BinTableHDU.from_columns([
        fits.Column("E_MIN", "D", unit="keV", array=E1 * 1e3),
        fits.Column("E_MAX", "D", unit="keV", array=E2 * 1e3),
        fits.Column("REF_DNDE", "D", array=REF_DNDE),
        fits.Column("REF_FLUX", "D", array=REF_FLUX),
        fits.Column("REF_EFLUX", "D", array=REF_EFLUX),
        fits.Column("REF_NPRED", "D", array=REF_NPRED),
    ], name="EBOUNDS")
    side = int(round(np.sqrt(npix)))
    tsmap = fits.PrimaryHDU(ts.sum(1).reshape(side, side))
    fits.HDUList([tsmap, scan, ebounds]).writeto(path, overwrite=True)
    return path


@pytest.fixture(scope="module")
def sim():
    return Sim(_pl_flux(3e-12, 2.2), np.random.default_rng(1))


# -- confidence levels ----------------------------------------------------------------------
def test_delta_loglike_of_confidence_levels():
    assert onesided_cl_to_dlnl(0.95) == pytest.approx(1.35277, abs=1e-5)
    assert onesided_cl_to_dlnl(0.99) == pytest.approx(0.5 * 2.326348 ** 2, rel=1e-6)
    assert twosided_cl_to_dlnl(0.6826894921) == pytest.approx(0.5, rel=1e-8)
    assert twosided_cl_to_dlnl(0.95) == pytest.approx(0.5 * 1.959964 ** 2, rel=1e-6)
    with pytest.raises(FermixrError, match="between 0 and 1"):
        onesided_cl_to_dlnl(1.0)


# -- one file: MLEs, limits, TS against the analytic Poisson answers --------------------------
def test_sedfile_mle_ul_and_ts_match_the_poisson_truth(sim, tmp_path):
    path = write_sedfile(tmp_path / "sed.fits", sim)
    c = CastroData.create_from_sedfile(path, norm_type="norm")
    assert c.nE == 12 and c.ul_conf == pytest.approx(0.95)
    np.testing.assert_allclose(c.x_edges(), EDGES, rtol=1e-12)
    # MLE: (n - b) / s, clipped at 0, to 0.3% of the bin's error
    assert np.all(np.abs(c.mles() - sim.nhat) < 1e-2 * sim.sig)
    # 95% UL: exact root of lnL(MLE) - lnL(x) = 1.353
    ul = np.array([sim.upper_limit(i) for i in range(12)])
    assert np.all(np.abs(c.getLimits(0.05) - ul) < 1e-2 * sim.sig)
    # 68% interval: roots of ΔlnL = 0.5 on both sides (0 where the profile never rises 0.5)
    lo, hi = c.getIntervals(0.3173105)
    lo_true = np.array([sim.lower_limit(i, 0.5) for i in range(12)])
    hi_true = np.array([sim.upper_limit(i, 0.5) for i in range(12)])
    assert np.all(np.abs(lo - lo_true) < 1e-2 * sim.sig)
    assert np.all(np.abs(hi - hi_true) < 1e-2 * sim.sig)
    ts_true = 2 * np.array([sim.lnl(i, sim.nhat[i]) - sim.lnl(i, 0.0) for i in range(12)])
    np.testing.assert_allclose(c.ts_vals(), ts_true, rtol=1e-4, atol=1e-3)
    # the file's own SED columns come along
    np.testing.assert_allclose(c.specData.norm, sim.nhat)


def test_norm_types_scale_by_the_reference_columns(sim, tmp_path):
    path = write_sedfile(tmp_path / "sed.fits", sim)
    base = CastroData.create_from_sedfile(path, norm_type="norm").mles()
    refs = {"flux": REF_FLUX, "eflux": REF_EFLUX, "npred": REF_NPRED, "dnde": REF_DNDE,
            "e2dnde": REF_DNDE * EREF ** 2}
    for nt, ref in refs.items():
        c = CastroData.create_from_sedfile(path, norm_type=nt)
        np.testing.assert_allclose(c.mles(), base * ref, rtol=1e-6, atol=1e-30)
        np.testing.assert_allclose(c.getLimits(0.05),
                                   [sim.upper_limit(i) * ref[i] for i in range(12)],
                                   rtol=3e-3)
    conv = CastroData.create_from_sedfile(path).to_norm_type("flux")
    np.testing.assert_allclose(conv.mles(), base * REF_FLUX, rtol=1e-6)


def test_tscube_rows_are_pixels(tmp_path):
    rng = np.random.default_rng(7)
    sims = [Sim(_pl_flux(a * 1e-12, 2.2), rng) for a in np.linspace(0.0, 8.0, 9)]
    path = write_tscube(tmp_path / "tscube.fits", sims)
    for irow in (0, 4, 8):
        c = CastroData.create_from_fits(path, norm_type="norm", irow=irow)
        s = sims[irow]
        assert np.all(np.abs(c.mles() - s.nhat) < 1e-2 * s.sig)
        ul = np.array([s.upper_limit(i) for i in range(12)])
        assert np.all(np.abs(c.getLimits(0.05) - ul) < 1e-2 * s.sig)
    # keV energies in EBOUNDS are read as MeV
    np.testing.assert_allclose(c.refSpec.emin, E1, rtol=1e-12)
    c = read_castro(path, norm_type="flux", irow=4)
    np.testing.assert_allclose(c.mles(), sims[4].nhat * REF_FLUX, rtol=3e-3,
                               atol=3e-3 * np.max(sims[4].sig * REF_FLUX))
    with pytest.raises(FileFormatError, match="9 rows.*irow="):
        CastroData.create_from_fits(path)
    with pytest.raises(FileFormatError, match="row 9 does not exist"):
        CastroData.create_from_fits(path, irow=9)


def test_read_castro_detects_the_sed_layout(sim, tmp_path):
    path = write_sedfile(tmp_path / "sed.fits", sim)
    a = read_castro(path)
    b = CastroData.create_from_sedfile(path)
    np.testing.assert_array_equal(a.mles(), b.mles())
    assert a.norm_type == "eflux"


# -- edge cases of single profiles ------------------------------------------------------------
def test_empty_bin_is_linear_with_an_exact_limit():
    # n = 0: lnL = -(x s + b); MLE 0; UL = 1.353 / s exactly; TS 0
    s, b = 37.0, 2.5
    x = np.linspace(0.0, 0.2, 5)
    f = LnLFn(x, x * s + b)
    assert f.mle() == 0.0 and f.TS() == 0.0
    assert f.getLimit(0.05) == pytest.approx(1.3527717270477064 / s, rel=1e-12)
    # beyond the scan, the line continues
    f2 = LnLFn(x[:2], (x * s + b)[:2])
    assert f2.getLimit(0.05) == pytest.approx(1.3527717270477064 / s, rel=1e-12)


def test_three_point_parabola_is_exact():
    x = np.array([0.0, 1.0, 3.0])
    f = LnLFn(x, 0.5 * ((x - 1.7) / 0.4) ** 2)
    assert f.mle() == pytest.approx(1.7, abs=1e-12)
    assert f.getLimit(0.05) == pytest.approx(1.7 + 0.4 * 1.6448536269514722, rel=1e-10)
    lo, hi = f.getInterval(0.3173105078629141)
    assert (lo, hi) == (pytest.approx(1.3, abs=1e-8), pytest.approx(2.1, abs=1e-8))


def test_flat_profile_gives_an_infinite_limit_with_a_warning():
    f = LnLFn(np.linspace(0, 1, 6), np.zeros(6), where="bin 11")
    assert f.mle() == 0.0 and f.TS() == 0.0
    with pytest.warns(CastroWarning, match="bin 11.*never falls"):
        assert f.getLimit(0.05) == np.inf


def test_non_finite_points_are_dropped_loudly_and_too_few_are_an_error(sim, tmp_path):
    def poison(data):
        data["dloglike_scan"][3, 5] = np.nan
        data["dloglike_scan"][4, :] = np.inf

    path = write_sedfile(tmp_path / "bad.fits", sim, edit=poison)
    with pytest.raises(LikelihoodError, match=r"bad\.fits\[SED\]: energy bin 4.*0 distinct"):
        with pytest.warns(CastroWarning):
            CastroData.create_from_sedfile(path)

    def one_nan(data):
        data["dloglike_scan"][3, 5] = np.nan

    path = write_sedfile(tmp_path / "nan.fits", sim, edit=one_nan)
    with pytest.warns(CastroWarning, match=r"nan\.fits\[SED\]: energy bin 3: dropped 1 of 30"):
        c = CastroData.create_from_sedfile(path, norm_type="norm")
    assert np.all(np.isfinite(c.getLimits(0.05)))
    assert abs(c.mles()[3] - sim.nhat[3]) < 1e-2 * sim.sig[3]
    # the vectorised sum over bins handles scans of different lengths
    x = sim.nhat + 0.7 * sim.sig
    assert c(x) == pytest.approx(sum(float(c[i].interp(x[i])) for i in range(12)), rel=1e-12)


def test_a_flat_bin_does_not_break_the_castro(sim):
    grid, dll, _ = sim.scans()
    dll[11] = 0.0                                   # no exposure in the last bin
    ref = ReferenceSpec(E1, E2, REF_DNDE, REF_FLUX, REF_EFLUX, REF_NPRED)
    c = CastroData(grid * REF_FLUX[:, None], -dll, ref, "flux")
    with pytest.warns(CastroWarning, match="energy bin 11.*upper limit is inf"):
        ul = c.getLimits(0.05)
    assert ul[11] == np.inf and np.all(np.isfinite(ul[:11]))
    assert c.ts_vals()[11] == 0.0
    r = c.fit_spectrum("PowerLaw")
    assert np.all(np.isfinite(r["errors"])) and abs(r["params"][1] + 2.2) < 3 * r["errors"][1]


# -- bad files: one clear error each ---------------------------------------------------------
def test_bad_files_give_one_clear_error(sim, tmp_path):
    with pytest.raises(InputFileError, match="no such file") as e:
        read_castro(tmp_path / "missing.fits")
    assert isinstance(e.value, FileNotFoundError)

    img = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((3, 3))).writeto(img)
    with pytest.raises(FileFormatError, match="not a likelihood-profile file.*'SED'.*"
                                              "'SCANDATA'.*no table HDU") as e:
        read_castro(img)
    assert isinstance(e.value, ValueError)

    other = tmp_path / "events.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column("ENERGY", "D", array=[1.0])], name="EVENTS")]).writeto(other)
    with pytest.raises(FileFormatError, match="found table HDUs EVENTS"):
        read_castro(other)

    text = tmp_path / "notes.fits"
    text.write_text("not a FITS file")
    with pytest.raises(FileFormatError, match="notes.fits: not a readable FITS file"):
        read_castro(text)

    noref = write_sedfile(tmp_path / "noref.fits", sim, drop=("ref_eflux",))
    with pytest.raises(FileFormatError, match=r"noref\.fits\[SED\]: no column 'ref_eflux'"):
        read_castro(noref)
    assert read_castro(noref, norm_type="flux").nE == 12      # other norm types still work

    def zero_ref(data):
        data["ref_flux"][2] = 0.0

    zero = write_sedfile(tmp_path / "zero.fits", sim, edit=zero_ref)
    with pytest.raises(FileFormatError, match="'ref_flux' is 0.0 in energy bin 2"):
        read_castro(zero, norm_type="flux")

    noscan = write_sedfile(tmp_path / "noscan.fits", sim, drop=("norm_scan",))
    with pytest.raises(FileFormatError, match=r"noscan\.fits\[SED\]: no column 'norm_scan'"):
        read_castro(noscan)

    with pytest.raises(FermixrError, match="unknown norm_type 'photons'"):
        read_castro(write_sedfile(tmp_path / "ok.fits", sim), norm_type="photons")


# -- stacking ---------------------------------------------------------------------------------
def test_stack_of_identical_profiles(sim):
    c = sim.castro("norm")
    n = 4
    hi = float(np.max(sim.nhat + 6 * sim.sig))
    st = CastroData.create_from_stack((12, 301), [c] * n, ylims=(1e-4, hi))
    grid = st.norm_vals
    single = np.array([c[i].interp(grid[i]) - c[i].fn_mle() for i in range(12)])
    # N x the log-likelihood on the common grid, up to the offset of each bin's minimum
    diff = st.nll_vals - n * single
    np.testing.assert_allclose(diff - diff[:, :1], 0.0, atol=1e-8)
    assert np.all(np.abs(diff[:, 0]) < 1e-3)
    np.testing.assert_allclose(st.mles(), c.mles(), atol=3e-3 * sim.sig.max())
    # the UL is where one profile has fallen by 1.353 / N
    ul_n = np.array([c[i].getDeltaLogLike(1.3527717270477064 / n) for i in range(12)])
    np.testing.assert_allclose(st.getLimits(0.05), ul_n, rtol=2e-3)
    assert np.all(st.getLimits(0.05) < c.getLimits(0.05))
    # weights multiply
    st2 = CastroData.create_from_stack((12, 301), [c], ylims=(1e-4, hi), weights=[n])
    np.testing.assert_allclose(st2.nll_vals, st.nll_vals, rtol=1e-9, atol=1e-9)


def test_stack_of_independent_observations_matches_the_summed_counts():
    rng = np.random.default_rng(11)
    flux = _pl_flux(1e-12, 2.2)
    sims = [Sim(flux, rng) for _ in range(5)]
    hi = float(np.max([s.nhat + 6 * s.sig for s in sims]))
    st = CastroData.create_from_stack((12, 401), [s.castro("norm") for s in sims],
                                      ylims=(1e-4, hi))
    ntot = np.sum([s.n for s in sims], axis=0)
    s0 = sims[0]
    mle = np.maximum(0.0, (ntot / 5.0 - s0.b) / s0.s)
    sig = np.sqrt(ntot / 5.0 + s0.b) / s0.s / np.sqrt(5)
    assert np.all(np.abs(st.mles() - mle) < 0.01 * sig)

    def lnl(i, x):
        return sum(s.lnl(i, x) for s in sims)

    for i in range(12):
        top = lnl(i, mle[i])
        ul = brentq(lambda x: top - lnl(i, x) - 1.3527717270477064, mle[i], mle[i] + 40 * sig[i])
        assert abs(st[i].getLimit(0.05) - ul) < 0.01 * sig[i]


def test_stack_refuses_bad_arguments(sim):
    c = sim.castro("norm")
    with pytest.raises(FermixrError, match="no components"):
        CastroData.create_from_stack((12, 11), [], ylims=(1e-3, 1.0))
    with pytest.raises(FermixrError, match="asks for 10 bins"):
        CastroData.create_from_stack((10, 11), [c], ylims=(1e-3, 1.0))
    with pytest.raises(FermixrError, match="different norm_types"):
        CastroData.create_from_stack((12, 11), [c, sim.castro("flux")], ylims=(1e-3, 1.0))
    with pytest.raises(FermixrError, match="ylims"):
        CastroData.create_from_stack((12, 11), [c], ylims=(0.0, 1.0))


# -- spectral fits -----------------------------------------------------------------------------
def test_test_spectra_on_a_power_law(tmp_path):
    sim = Sim(_pl_flux(1e-11, 2.2), np.random.default_rng(5))
    c = read_castro(write_sedfile(tmp_path / "sed.fits", sim))      # eflux, as Fermipy
    out = c.test_spectra()
    assert set(out) == {"PowerLaw", "LogParabola", "PLExpCutoff"}
    for d in out.values():
        assert set(d) >= {"Function", "Result", "Spectrum", "ScaleEnergy", "TS"}
        assert d["ScaleEnergy"] == 1e3
    pl = out["PowerLaw"]
    idx, err = pl["Result"][1], pl["Errors"][1]
    assert 0.005 < err < 0.05
    assert abs(idx - (-2.2)) < 2 * err
    # the spectrum is the functor at the best parameters, in eflux
    np.testing.assert_allclose(pl["Spectrum"], pl["Function"](pl["Result"]), rtol=1e-12)
    assert pl["TS"] == pytest.approx(c.TS_spectrum(pl["Spectrum"]))
    assert pl["TS"] > 1000
    # no curvature in a pure power law: nested models gain TS ~ chi2(1)
    for st in ("LogParabola", "PLExpCutoff"):
        gain = out[st]["TS"] - pl["TS"]
        assert -1e-6 < gain < 4.0


def test_test_spectra_finds_curvature_of_a_log_parabola(tmp_path):
    flux = _lp_flux(1e-11, 2.0, 0.3)
    sim = Sim(flux, np.random.default_rng(6))
    c = read_castro(write_sedfile(tmp_path / "sed.fits", sim))
    out = c.test_spectra(["PowerLaw", "LogParabola"])
    ts_curv = out["LogParabola"]["TS"] - out["PowerLaw"]["TS"]
    assert ts_curv > 25
    n0, alpha, beta = out["LogParabola"]["Result"]
    errs = out["LogParabola"]["Errors"]
    assert abs(beta - 0.3) < 3 * errs[2]
    assert abs(alpha - (-2.0)) < 3 * errs[1]            # Fermipy's sign: x^(alpha - beta ln x)


def test_fit_spectrum_tuple_and_dict_and_fixed_parameters(sim):
    c = sim.castro("flux")
    res = c.fit_spectrum(c.create_functor("PowerLaw"), [5e-13, -2.0])
    params, spec, ts = res                    # Fermipy's 3-tuple
    assert res["ts_spec"] == ts and res.params is params
    assert res["chi2_spec"] == pytest.approx(res["chi2_vals"].sum())
    fixed = c.fit_spectrum("PowerLaw", [5e-13, -2.2], freePars=[True, False])
    assert fixed["params"][1] == -2.2 and fixed["errors"][1] == 0.0
    assert fixed["nll"] >= res["nll"] - 1e-9
    # a prefactor fit alone is the norm along the fixed shape
    shape = c.create_functor("PowerLaw", [1.0, -2.2])()
    a = c.fitNormalization(shape, (1e-14, 1e-10))
    assert a == pytest.approx(fixed["params"][0], rel=1e-5)


def _pull_run(nreal, seed):
    n0, gamma = 3e-12, 2.2
    flux = _pl_flux(n0, gamma)
    rng = np.random.default_rng(seed)
    pulls = []
    for _ in range(nreal):
        c = Sim(flux, rng).castro("flux")
        r = c.fit_spectrum("PowerLaw", [1e-12, -2.0])
        pulls.append((np.asarray(r["params"]) - [n0, -gamma]) / r["errors"])
    return np.array(pulls)


def test_fit_spectrum_pulls_are_standard_normal():
    pulls = _pull_run(100, seed=2024)
    mean, std = pulls.mean(0), pulls.std(0)
    assert np.all(np.abs(mean) < 0.3), mean
    assert np.all(np.abs(std - 1.0) < 0.25), std


@pytest.mark.slow
def test_fit_spectrum_pulls_over_more_realisations():
    pulls = _pull_run(500, seed=99)
    mean, std = pulls.mean(0), pulls.std(0)
    assert np.all(np.abs(mean) < 0.12), mean
    assert np.all(np.abs(std - 1.0) < 0.1), std


def test_summed_call_and_derivative_agree_with_the_bins(sim):
    c = sim.castro("norm")
    x = sim.nhat + 0.3 * sim.sig
    assert c(x) == pytest.approx(sum(float(c[i].interp(x[i])) for i in range(12)))
    h = 1e-6 * sim.sig
    num = sum((float(c[i].interp(x[i] + h[i])) - float(c[i].interp(x[i] - h[i]))) / (2 * h[i])
              for i in range(12))
    assert c.derivative(x) == pytest.approx(num, rel=1e-5)
    grid = np.stack([x, 2 * x], axis=1)
    np.testing.assert_allclose(c(grid), [c(x), c(2 * x)])
    assert c(-x) > 1000                       # negative norms are unphysical
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(c.nll_null) and np.all(np.isfinite(c.ts_vals()))


def test_spectral_fits_agree_across_norm_types_and_table_inputs(sim, tmp_path):
    from astropy.table import Table

    path = write_sedfile(tmp_path / "sed.fits", sim)
    fits_by_type = {nt: read_castro(path, nt).fit_spectrum("PowerLaw")
                    for nt in ("norm", "flux", "eflux", "npred", "dnde", "e2dnde")}
    ref = fits_by_type["flux"]
    for nt, r in fits_by_type.items():
        # the same data: the same index; the prefactor within a fraction of its error
        # (eflux and dnde see the reference's E^-2 shape inside each bin, not the truth's)
        assert abs(r["params"][1] - ref["params"][1]) < 0.01 * ref["errors"][1], nt
        assert abs(r["params"][0] - ref["params"][0]) < 0.2 * ref["errors"][0], nt
        assert r["ts_spec"] == pytest.approx(ref["ts_spec"], rel=1e-6)
    # astropy tables (and a row of a TS cube) work as Fermipy's create_from_tables inputs
    tab = Table.read(path, hdu="SED")
    np.testing.assert_array_equal(CastroData.create_from_tables("flux", tab, tab).mles(),
                                  read_castro(path, "flux").mles())
    rng = np.random.default_rng(3)
    cube = write_tscube(tmp_path / "cube.fits",
                        [Sim(_pl_flux(a * 1e-12, 2.2), rng) for a in (0.5, 1.0, 2.0, 4.0)])
    row = Table.read(cube, hdu="SCANDATA")[2]
    c = CastroData.create_from_tables("eflux", row, Table.read(cube, hdu="EBOUNDS"))
    np.testing.assert_array_equal(c.mles(), read_castro(cube, irow=2).mles())
    np.testing.assert_allclose(c.refSpec.emin, E1, rtol=1e-12)        # keV read as MeV
