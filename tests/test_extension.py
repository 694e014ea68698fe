"""Extension test (fermixr.estimators.extension) against simulations with known truth: a
RadialGaussian of 68% radius 0.5 deg is recovered without bias; for a point source
P(TS_ext > 2.71) is 0.05 (1/2 chi2_0 + 1/2 chi2_1); the reported best fit is the maximum
of the reported profile and its limits sit where the profile drops by 0.5 / 1.353; the
radial convolution behind the maps agrees with closed forms; the step and the Analysis
method write Fermipy's files; bad input gives one clear error and changes nothing."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

import fermixr.estimators as E
from fermixr.conventions import validate_product
from fermixr.errors import EstimatorError, FermixrError
from fermixr.estimators import edits
from fermixr.estimators.extension import DLNL_UL95, profile_limits
from fermixr.model.spatial import GAUSS_R68

from test_estimators_conformance import _doc

SRC = "SYN_CRAB"


@pytest.fixture(scope="module")
def gta(tmp_path_factory, roi_setup):
    g = roi_setup("wcs_no_edisp", tmp_path_factory.mktemp("extension"))
    g.state.components
    return g


def _bright(state, factor=20.0):
    """SYN_CRAB twenty times brighter (~2,500 counts): the asymptotic regime."""
    p = state.model.find(SRC).param("Prefactor")
    return edits.set_parameter(state, SRC, "Prefactor", p.value * factor, true_value=False)


def _extended_truth(state, r68=0.5, kind="RadialGaussian"):
    par = "Sigma" if kind == "RadialGaussian" else "Radius"
    from fermixr.model.spatial import width_to_param

    return edits.set_source_morphology(state, SRC, kind, {par: width_to_param(kind, r68)[1]})


_FAST = dict(width_min=0.1, width_max=1.5, width_nstep=11, make_tsmap=False)


def _recover(gta, seeds, r68=0.5, kind="RadialGaussian"):
    truth = _extended_truth(_bright(gta.state), r68, kind)
    exts, ts = [], []
    for seed in seeds:
        sim = edits.generate_model(truth, seed=seed)[0]
        ds = E.run("extension", sim, SRC, spatial_model=kind, **_FAST).dataset
        exts.append(ds.attrs["ext"])
        ts.append(ds.attrs["ts_ext"])
    return np.array(exts), np.array(ts)


def test_a_gaussian_of_half_a_degree_is_recovered(gta):
    """12 realisations: the mean radius within 3 standard errors (+1% for the
    refinement's resolution) of 0.5 deg, every one clearly extended."""
    ext, ts = _recover(gta, range(100, 112))
    sem = ext.std(ddof=1) / math.sqrt(ext.size)
    print(f"\nr68 = 0.5: mean {ext.mean():.4f} +- {sem:.4f} (sd {ext.std(ddof=1):.3f}), "
          f"TS_ext {ts.min():.1f}..{ts.max():.1f}")
    assert abs(ext.mean() - 0.5) < 3 * sem + 0.005
    assert ts.min() > 25


@pytest.mark.slow
def test_a_gaussian_of_half_a_degree_mean_within_2_percent(gta):
    """200 realisations: the mean fitted 68% radius within 2% of the truth."""
    ext, ts = _recover(gta, range(1000, 1200))
    sem = ext.std(ddof=1) / math.sqrt(ext.size)
    print(f"\n200 realisations: mean {ext.mean():.4f} +- {sem:.4f}")
    assert abs(ext.mean() / 0.5 - 1.0) < 0.02


def test_a_disk_is_recovered(gta):
    ext, ts = _recover(gta, range(200, 206), 0.5, "RadialDisk")
    sem = ext.std(ddof=1) / math.sqrt(ext.size)
    print(f"\ndisk r68 = 0.5: mean {ext.mean():.4f} +- {sem:.4f}")
    assert abs(ext.mean() - 0.5) < 3 * sem + 0.005


def _null_fraction(gta, seeds):
    st = _bright(gta.state)
    ts = []
    for seed in seeds:
        sim = edits.generate_model(st, seed=seed)[0]
        ds = E.run("extension", sim, SRC, make_tsmap=False).dataset
        ts.append(ds.attrs["ts_ext"])
    return np.array(ts)


def test_point_source_ts_ext_is_small(gta):
    """30 point-source realisations: TS_ext is 0 about half the time, and the number above
    2.71 within the binomial 99.9% range of p = 0.05."""
    from scipy.stats import binom

    ts = _null_fraction(gta, range(300, 330))
    k = int((ts > 2.71).sum())
    lo, hi = binom.ppf([0.0005, 0.9995], ts.size, 0.05)
    print(f"\nnull: {k}/{ts.size} above 2.71, {int((ts < 1e-3).sum())} at ~0")
    assert lo <= k <= hi
    assert ts.min() > -1e-2


@pytest.mark.slow
def test_point_source_p_ts_ext_above_2_71_is_5_percent(gta):
    ts = _null_fraction(gta, range(5000, 5800))
    p = float(np.mean(ts > 2.71))
    print(f"\nP(TS_ext > 2.71) = {p:.4f} over {ts.size}")
    assert abs(p - 0.05) <= 0.015


def test_best_fit_is_the_profile_maximum_and_limits_where_it_drops(gta):
    truth = _extended_truth(_bright(gta.state), 0.3)
    sim = edits.generate_model(truth, seed=11)[0]
    ds = E.run("extension", sim, SRC, make_tsmap=False).dataset
    validate_product(ds)
    a = ds.attrs
    w, ll = ds["profile_width"].values, ds["profile_loglike"].values
    # the reported best fit is a point of the profile, and the highest one
    assert a["ext"] in w
    assert a["loglike_ext"] == pytest.approx(ll.max(), abs=0)
    assert ll.max() >= ds["loglike"].values.max()
    assert a["ts_ext"] == pytest.approx(2 * (a["loglike_ext"] - a["loglike_ptsrc"]))
    np.testing.assert_allclose(ds["dloglike"].values, ds["loglike"].values - a["loglike_ptsrc"])
    # the refinement evaluated widths between the grid points around the maximum
    assert ds.sizes["profile"] > ds.sizes["width"]
    # limits: where the interpolated profile has dropped by 0.5 and 1.353
    from scipy.interpolate import PchipInterpolator

    f = PchipInterpolator(np.log10(w), ll)
    lo, hi = a["ext"] - a["ext_err_lo"], a["ext"] + a["ext_err_hi"]
    assert float(f(np.log10(lo))) == pytest.approx(ll.max() - 0.5, abs=1e-4)
    assert float(f(np.log10(hi))) == pytest.approx(ll.max() - 0.5, abs=1e-4)
    assert float(f(np.log10(a["ext_ul95"]))) == pytest.approx(ll.max() - DLNL_UL95, abs=1e-4)
    assert lo < a["ext"] < hi < a["ext_ul95"]
    assert a["ext_err"] == pytest.approx(0.5 * (a["ext_err_lo"] + a["ext_err_hi"]))
    assert json.loads(a["flags"]) == {}
    assert ds["fit_success"].values.all()
    print(f"\next {a['ext']:.4f} -{a['ext_err_lo']:.4f} +{a['ext_err_hi']:.4f}, "
          f"UL {a['ext_ul95']:.4f}, TS_ext {a['ts_ext']:.1f}")


def test_limits_that_cannot_be_computed_are_flagged():
    """A profile rising to the largest width: no upper error, no upper limit -- NaN and
    named in flags, never a silent NaN."""
    w = np.geomspace(0.01, 1.0, 9)
    out = profile_limits(w, -((np.log10(w) - 0.5) ** 2))
    assert out["ext"] == pytest.approx(1.0)
    assert math.isnan(out["ext_err_hi"]) and math.isnan(out["ext_ul95"])
    assert "ext_err_hi" in out["flags"] and "ext_ul95" in out["flags"]
    assert "raise width_max" in out["flags"]["ext_ul95"]
    assert np.isfinite(out["ext_err_lo"]) and out["ext_err"] == out["ext_err_lo"]
    assert "one-sided" in out["flags"]["ext_err"]


def test_update_proposes_the_extended_source_and_keeps_the_given_state(gta):
    truth = _extended_truth(_bright(gta.state), 0.4)
    sim = edits.generate_model(truth, seed=3)[0]
    before = sim.model.to_dict()
    res = E.run("extension", sim, SRC, update=True, make_tsmap=False, **{
        k: v for k, v in _FAST.items() if k != "make_tsmap"})
    assert sim.model.to_dict() == before
    new = res.state
    s = new.model.find(SRC)
    assert s.spatial_model == "RadialGaussian"
    assert s.param("Sigma").physical * GAUSS_R68 == pytest.approx(res.dataset.attrs["ext"])
    # free flags as given, the log-likelihood of the proposal is the extended fit's
    assert [p.free for p in s.spectral] == [p.free for p in sim.model.find(SRC).spectral]
    from fermixr.likelihood.roi import loglike

    assert loglike(new) == pytest.approx(res.dataset.attrs["loglike_ext"], abs=1e-6)
    # a threshold that is not passed proposes nothing
    res2 = E.run("extension", sim, SRC, update=True, sqrt_ts_threshold=1e3,
                 **_FAST)
    assert res2.state is None and not res2.dataset.attrs["updated"]


def test_fit_ebin_and_model_maps(gta):
    truth = _extended_truth(_bright(gta.state), 0.5)
    sim = edits.generate_model(truth, seed=5)[0]
    ds = E.run("extension", sim, SRC, fit_ebin=True, save_model_map=True,
               **_FAST).dataset
    validate_product(ds)
    nb = sim.components[0].counts.shape[0]
    assert ds["ebin_ext"].shape == (nb,) and ds["ebin_loglike"].shape == (nb, 11)
    np.testing.assert_allclose(ds["ebin_e_min"].values, sim.components[0].edges[:-1])
    # the bins with most counts see the extension
    ok = np.isfinite(ds["ebin_ts_ext"].values)
    assert np.nanmax(ds["ebin_ts_ext"].values) > 9 and ok.all()
    assert ds["ext_model_map"].shape == sim.components[0].template["counts"].shape[1:]
    assert float(ds["ext_model_map"].sum()) == pytest.approx(
        float(ds["ptsrc_model_map"].sum()), rel=0.05)


def test_fit_position_recovers_an_offset_source(gta):
    """The source 0.15 deg from its catalog position: with fit_position the test moves it
    back and the extended fit is at least as good."""
    truth = _extended_truth(_bright(gta.state), 0.4)
    ra, dec = truth.model.find(SRC).skydir
    sim = edits.generate_model(truth, seed=9)[0]
    moved = edits.set_source_morphology(sim, SRC, spatial_pars={"DEC": dec + 0.15})
    few = dict(_FAST, width_min=0.2, width_max=0.8, width_nstep=5)
    a = E.run("extension", moved, SRC, **few).dataset.attrs
    b = E.run("extension", moved, SRC, fit_position=True, **few).dataset.attrs
    print(f"\nfit_position: dec {b['dec']:.3f} (truth {dec:.3f}), ext {a['ext']:.3f} -> "
          f"{b['ext']:.3f}, lnL_ext {a['loglike_ext']:.2f} -> {b['loglike_ext']:.2f}")
    assert abs(b["dec"] - dec) < 0.08 and abs((b["ra"] - ra) * math.cos(math.radians(dec))) < 0.08
    assert b["loglike_ext"] >= a["loglike_ext"] - 1e-3


@pytest.mark.parametrize("name,kwargs,match", [
    ("NOPE", {}, r"extension: no source matches 'NOPE'"),
    ("isodiff", {}, r"extension: 'isodiff' is a diffuse source \(ConstantValue\)"),
    (SRC, {"spatial_model": "PointSource"}, r"extension: spatial_model: got 'PointSource'"),
    (SRC, {"psf_scale_fn": [[2.0, 3.0], [0.1, 0.2]]}, r"extension: psf_scale_fn: .*not "
                                                       r"implemented"),
    (SRC, {"width_min": 1.0, "width_max": 0.5}, r"expected 0 < width_min < width_max"),
    (SRC, {"width": [0.1]}, r"extension: width: got \[0.1\]"),
    (SRC, {"bogus": 1}, r"extension: unknown option 'bogus'"),
])
def test_bad_input_one_clear_error_nothing_changed(gta, tmp_path, name, kwargs, match):
    g = gta.copy()
    g.outdir = tmp_path
    before = g.state
    with pytest.raises(EstimatorError, match=match) as ei:
        g.extension(name, **kwargs)
    assert isinstance(ei.value, FermixrError) and isinstance(ei.value, ValueError)
    assert "\n" not in str(ei.value)
    assert g.state is before
    assert not list(tmp_path.iterdir())


def test_analysis_method_writes_fermipys_files(gta, tmp_path):
    from astropy.io import fits

    g = gta.copy()
    g.outdir = tmp_path
    g.state = _extended_truth(_bright(g.state), 0.5)
    g.state = edits.generate_model(g.state, seed=21)[0]
    out = g.extension(SRC, prefix="t1", update=True, make_plots=True, **{
        k: v for k, v in _FAST.items() if k != "make_tsmap"})
    assert {"width", "dloglike", "loglike", "ext", "ext_err", "ext_err_lo", "ext_err_hi",
            "ext_ul95", "ts_ext", "loglike_ptsrc", "loglike_ext", "loglike_init",
            "loglike_base", "source_fit", "tsmap", "file"} <= set(out)
    assert Path(out["file"]) == tmp_path / "t1_syn_crab_ext.fits"
    with fits.open(out["file"]) as h:
        assert [x.name for x in h] == ["PRIMARY", "EXTENSION", "PROFILE"]
        row = h["EXTENSION"].data[0]
        assert row["ext"] == pytest.approx(out["ext"])
        np.testing.assert_allclose(row["loglike"], out["loglike"])
        assert "CONFIG" in h[0].header
    assert (tmp_path / "t1_syn_crab_ext.npy").is_file()
    assert (tmp_path / "t1_syn_crab_ext_profile.png").stat().st_size > 1000
    # update: the model now holds the extended source
    assert g.state.model.find(SRC).spatial_model == "RadialGaussian"
    assert out["tsmap"].shape == g.state.components[0].template["counts"].shape[1:]


def test_the_recipe_step_writes_the_product_and_caches(gta):
    from fermixr.engine.run import run_recipe

    doc = _doc("wcs_no_edisp", Path(gta.outdir).parent)
    doc["steps"] = ["setup", {"extension": {"name": SRC, "prefix": "st", "width_nstep": 5,
                                            "make_tsmap": False}},
                    {"curvature": SRC}]
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["computed", "computed"]
    assert (Path(gta.outdir) / "st_syn_crab_ext.fits").is_file()
    import fermixr

    run = fermixr.open_run(gta.outdir)
    validate_product(run["extension"])
    validate_product(run["curvature"])
    assert run["extension"].sizes["width"] == 5
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["cached", "cached"]
    (Path(gta.outdir) / "st_syn_crab_ext.npy").unlink()
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert rec[0]["status"] == "computed"


# ------------------------------------------------------------ the maps behind it ----
def _gauss(r, s):
    sr = math.radians(s)
    return np.exp(-0.5 * (np.radians(r) / sr) ** 2) / (2 * math.pi * sr * sr)


def test_ring_convolution_against_closed_forms():
    """Gaussian (x) Gaussian is the Gaussian of summed variances; the disk (x) Gaussian
    equals the Gaussian (x) disk (the two closed-form kernels, commuted)."""
    from fermixr.srcmap.extended import ring_convolve

    sp, s = 0.3, 0.2
    h = 0.01
    r = np.arange(0.0, 4.0, h)
    g = ring_convolve("RadialGaussian", s, r, _gauss(r, sp))
    t = _gauss(r, math.hypot(s, sp))
    assert np.max(np.abs(g / t - 1)[r < 1.5]) < 2e-3
    # disk (x) Gaussian PSF against the same ring integral by adaptive quadrature
    from scipy.integrate import quad
    from scipy.special import i0e

    R = 0.5
    h = R / 40
    r = np.arange(0.0, 4.0, h)
    a = ring_convolve("RadialDisk", R, r, _gauss(r, sp))
    s_, R_ = math.radians(sp), math.radians(R)

    def ref(x):
        x = math.radians(x)
        f = lambda y: math.exp(-0.5 * ((x - y) / s_) ** 2) * i0e(x * y / s_ ** 2) / s_ ** 2 * y
        return quad(f, 0.0, R_, epsrel=1e-10, limit=200)[0] / (math.pi * R_ * R_)

    peak = ref(0.0)
    for x in (0.0, 0.3, 0.5, 0.8, 1.2, 1.5):      # 0.5% in the core, 1e-3 of the peak in
        i = int(round(x / h))                      # the tail (1% of the peak at 1.2 deg)
        assert a[i] == pytest.approx(ref(r[i]), rel=5e-3, abs=1e-3 * peak), x
    # normalisation: the convolved profile integrates to the PSF's integral
    rr = np.radians(r)
    assert np.trapezoid(2 * np.pi * rr * a, rr) == pytest.approx(
        np.trapezoid(2 * np.pi * rr * _gauss(r, sp), rr), rel=2e-3)


@pytest.mark.parametrize("sigma,psf_sigma,tol", [(0.02, 0.1, 5e-4), (0.3, 0.1, 3e-3),
                                                 (0.3, 0.8, 5e-4)])
def test_convolved_table_of_a_gaussian_psf_is_the_wider_gaussian(sigma, psf_sigma, tol):
    """The whole radial table (steps, tail, renormalisation) of a Gaussian profile over a
    Gaussian PSF table: the Gaussian of summed variances, to ``tol`` of its peak."""
    from fermixr.srcmap.extended import convolved_radial_table
    from fermixr.srcmap.tables import RadialTable

    off = np.concatenate(([0.0], np.geomspace(1e-4, 30, 600)))
    o, v = convolved_radial_table("RadialGaussian", sigma, off, _gauss(off, psf_sigma)[None])
    x = np.linspace(0.0, 3 * max(sigma, psf_sigma), 300)
    truth = _gauss(x, math.hypot(sigma, psf_sigma))
    got = RadialTable(o, v).at(x)[0]
    assert np.max(np.abs(got - truth)) / truth.max() < tol
