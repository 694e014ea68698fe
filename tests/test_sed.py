"""SED (fermixr.estimators.sed) against known truth: on simulations of a power law of index
1.9 the per-bin pulls are N(0, 1) and the 95% upper limits of a faint source cover the
truth 95% of the time; one bin over the whole range with the source's own index gives the
norm, TS and error of a direct fit of the source's norm on the full likelihood; priors of
vanishing width give the fixed-background SED; on the real Crab day the bins where the Crab
dominates are detected and the bin fluxes add up to the global flux.  Every scan includes
norm 0, reaches 2.71 below the maximum and is finite.  The FITS file has Fermipy's HDUs
and columns and round-trips; the recipe step writes the product and the file; bad input
gives one clear error and writes nothing."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import fermixr.estimators as E
from fermixr.conventions import validate_product
from fermixr.errors import EstimatorError, FermixrError
from fermixr.estimators import edits
from fermixr.estimators.sed import ul_dloglike

from test_estimators_conformance import _doc

SRC = "SYN_CRAB"


@pytest.fixture(scope="module")
def gta(tmp_path_factory, roi_setup):
    g = roi_setup("wcs_no_edisp", tmp_path_factory.mktemp("sed"))
    g.state.components                                      # read the products once
    return g


def _truth(state, prefactor, index=1.9):
    """The state with SYN_CRAB a power law of ``index`` (Prefactor at 1 GeV)."""
    out = edits.set_source_spectrum(state, SRC, "PowerLaw",
                                    {"Prefactor": prefactor, "Index": index, "Scale": 1000.0})
    return out[0] if isinstance(out, tuple) else out


def _pulls(state, nreal, seed0, loge_bins=None):
    rows = []
    for seed in range(nreal):
        sim = edits.generate_model(state, seed=seed0 + seed)[0]
        ds = E.run("sed", sim, SRC, loge_bins=loge_bins).dataset
        rows.append([ds[k].values for k in ("norm", "norm_err", "norm_ul95", "ref_npred")])
    a = np.array(rows)
    return a[:, 0], a[:, 1], a[:, 2], a[0, 3]


# Prefactor 1e-9 at 1 GeV (Fermipy's test uses 3e-12 on a year of data; the example ROI's
# exposure is ~300 times smaller): 119, 76, 46, 27, 16 ... expected source counts per bin.
BRIGHT = 1e-9
MIN_COUNTS = 25.0        # pulls are tested in bins with at least this many source counts


@pytest.mark.slow
def test_pulls_over_200_realisations(gta):
    """Per bin with >= 25 expected source counts: mean pull |m| < 0.2, std within 15% of
    1 (the SED's reference is the truth, so the true norm is 1 in every bin)."""
    n, err, _, ref_npred = _pulls(_truth(gta.state, BRIGHT), 200, 0)
    sel = ref_npred >= MIN_COUNTS
    assert sel.sum() >= 4
    pull = ((n - 1.0) / err)[:, sel]
    m, s = pull.mean(axis=0), pull.std(axis=0)
    print(f"\nexpected counts {np.round(ref_npred[sel], 1)}; pull mean {np.round(m, 3)}, "
          f"std {np.round(s, 3)}")
    assert np.all(np.abs(m) < 0.2)
    assert np.all(np.abs(s - 1.0) < 0.15)


def test_pulls_over_30_realisations(gta):
    """The quick version: 30 realisations, the bins with >= 25 expected source counts
    pooled (120 pulls: standard errors 0.09 on the mean, 0.065 on the std); bounds at
    about 3 standard errors."""
    n, err, _, ref_npred = _pulls(_truth(gta.state, BRIGHT), 30, 5000)
    sel = ref_npred >= MIN_COUNTS
    pull = ((n - 1.0) / err)[:, sel].ravel()
    print(f"\npooled pulls ({pull.size}): mean {pull.mean():.3f}, std {pull.std():.3f}")
    assert abs(pull.mean()) < 0.27
    assert abs(pull.std() - 1.0) < 0.2


FAINT = 5e-11            # a faint source: ~12 and ~8 expected counts in the two SED bins
FAINT_BINS = [2.699, 3.466, 5.0]


@pytest.mark.slow
def test_upper_limits_cover_the_truth_95_percent(gta):
    """1000 realisations of a faint source, two SED bins: the 95% upper limit lies above
    the true norm (1) in 95 +- 2% of them, in each bin."""
    _, _, ul, ref_npred = _pulls(_truth(gta.state, FAINT), 1000, 10000, FAINT_BINS)
    cover = (ul >= 1.0).mean(axis=0)
    print(f"\nexpected counts {np.round(ref_npred, 1)}; coverage {cover}")
    assert np.all(np.abs(cover - 0.95) <= 0.02)


# ----------------------------------------------------------------- exact properties --
def test_every_scan_includes_zero_reaches_271_and_is_finite(gta):
    ds = E.run("sed", gta.state, SRC).dataset
    x, d = ds["norm_scan"].values, ds["dloglike_scan"].values
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(d))
    assert np.all(x[:, 0] == 0.0)
    assert np.all(d.min(axis=1) <= -2.71) and np.all(d.max(axis=1) <= 1e-9)
    assert np.all(np.diff(x, axis=1) > 0)
    # TS is twice the drop at norm 0; the limits lie where the scan has fallen by 0.5
    # and 1.353 (read here from the scan by linear interpolation: within a grid step)
    np.testing.assert_allclose(ds["ts"].values, np.maximum(-2 * d[:, 0], 0), rtol=1e-9,
                               atol=1e-9)
    for j in range(x.shape[0]):
        up = x[j] >= ds["norm"].values[j]
        xs, ds_ = x[j][up], d[j][up]
        ul = np.interp(-ul_dloglike(0.95), ds_[::-1], xs[::-1])
        step = np.diff(x[j]).max()
        assert abs(ul - ds["norm_ul95"].values[j]) < step
        hi = np.interp(-0.5, ds_[::-1], xs[::-1])
        assert abs(hi - ds["norm"].values[j] - ds["norm_err_hi"].values[j]) < step
    assert ul_dloglike(0.95) == pytest.approx(1.3527, abs=1e-4)
    assert np.all(ds["fit_status"].values == 0) and np.all(ds["fit_quality"].values >= 1)
    # the families are the norm times the reference
    for fam in ("flux", "eflux", "dnde", "e2dnde"):
        for suf in ("", "_err", "_err_lo", "_err_hi", "_ul95", "_ul"):
            np.testing.assert_allclose(ds[fam + suf].values,
                                       ds["norm" + suf].values * ds[f"ref_{fam}"].values,
                                       rtol=1e-12)
    np.testing.assert_allclose(ds["e_ref"].values,
                               np.sqrt(ds["e_min"].values * ds["e_max"].values))


def test_one_bin_with_the_sources_index_is_the_fit_of_its_norm(gta):
    """One SED bin over the whole range with the source's own index (2.2, given or as the
    local index): norm x reference = the norm fitted on the full likelihood by MINUIT;
    TS = the source's TS there; the error = the fit's error."""
    from fermixr.estimators.fit import fit_state
    from fermixr.estimators.ts import ts_value

    st = gta.state
    for s in st.model:       # everything fixed ...
        st = edits.free_source(st, s.name, free=False)
        st = st[0] if isinstance(st, tuple) else st
    st = edits.free_norm(st, SRC)                          # ... but the source's norm
    st = st[0] if isinstance(st, tuple) else st
    fit, fitted = fit_state(st, optimizer="MINUIT", tol=1e-8)
    assert fit["fit_success"]
    src0, src1 = st.model.find(SRC), fitted.model.find(SRC)
    norm = st.spectral(src0).norm_param
    ratio = src1.param(norm).value / src0.param(norm).value
    index = -src0.param("Index").physical
    assert index == pytest.approx(2.2)
    lo, hi = np.log10(st.energy_range)
    one = E.run("sed", st, SRC, loge_bins=[lo, hi], bin_index=index).dataset
    local = E.run("sed", st, SRC, loge_bins=[lo, hi], use_local_index=True).dataset
    assert float(one["norm"][0]) == pytest.approx(ratio, rel=1e-5)
    assert float(local["norm"][0]) == pytest.approx(float(one["norm"][0]), rel=1e-6)
    assert float(local["index"][0]) == pytest.approx(2.2, rel=1e-6)
    assert float(one["ts"][0]) == pytest.approx(ts_value(fitted, SRC), rel=1e-5)
    err_fit = src1.param(norm).error / src0.param(norm).value
    assert float(one["norm_err"][0]) == pytest.approx(err_fit, rel=0.03)
    assert float(one["loglike"][0]) == pytest.approx(fit["loglike"], abs=1e-6)


def test_priors_of_vanishing_width_hold_the_background(gta):
    """With the isotropic norm free in the bin fits: a prior of width 1e-6 x its error
    gives the fixed-background SED; without a prior the norms move and the errors grow."""
    from fermixr.estimators.fit import fit_state

    st = gta.state
    st = edits.free_norm(st, "isodiff")
    st = st[0] if isinstance(st, tuple) else st
    _, st = fit_state(st, optimizer="NEWTON")
    fixed = E.run("sed", st, SRC).dataset
    tight = E.run("sed", st, SRC, free_background=True, cov_scale=1e-6).dataset
    loose = E.run("sed", st, SRC, free_background=True, cov_scale=None).dataset
    assert json.loads(tight.attrs["free_sources"]) == ["isodiff"]
    np.testing.assert_allclose(tight["norm"].values, fixed["norm"].values, rtol=1e-4,
                               atol=1e-6)
    assert np.max(np.abs(loose["norm"].values - fixed["norm"].values)) > 1e-3
    # free_radius frees the norm of SYN_HARD (a point source) when it is close enough
    assert json.loads(E.run("sed", st, SRC, free_radius=10.0).dataset.attrs[
        "free_sources"]) == ["SYN_HARD"]
    assert json.loads(E.run("sed", st, SRC, free_radius=0.0).dataset.attrs[
        "free_sources"]) == []


def test_the_state_is_not_changed(gta):
    st = gta.state
    before = (st.model.to_dict(), [c.counts.copy() for c in st.components])
    E.run("sed", st, SRC, free_background=True, free_radius=3.0)
    assert st.model.to_dict() == before[0]
    for c, n in zip(st.components, before[1]):
        np.testing.assert_array_equal(c.counts, n)


# ------------------------------------------------------------------------- real data --
@pytest.mark.slow
@pytest.mark.shared_data
def test_crab_day(crab_day, caldb_dir, tmp_path):
    """The real Crab day (200 MeV - 20 GeV, the Science Tools' source maps): in the SED
    bins (200-632 MeV, 0.63-2 GeV, 2-20 GeV: one day holds ~20 Crab photons above 2 GeV,
    so half-decade bins up there reach TS ~ 20 only) where the Crab makes most of the
    model counts within 1 deg, TS > 25; the sum of its bin fluxes agrees with the global
    fit's 200 MeV - 20 GeV flux within that flux's 1-sigma error."""
    from fermixr.api import Analysis
    from fermixr.estimators.bowtie import physical_covariance
    from fermixr.estimators.ts import model_cubes

    from test_crab_fit import _config, _free

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = Analysis(_config(crab_day, caldb_dir, tmp_path)).setup()
    _free(g)
    assert g.fit(optimizer="NEWTON")["fit_success"]
    st = g.state
    edges = np.log10(st.components[0].edges)
    starts = np.array([0, 5, 10])
    loge_bins = edges[[0, 5, 10, 20]]
    ds = E.run("sed", st, "Crab", loge_bins=loge_bins, free_background=True).dataset
    # where the Crab dominates: its share of the model counts within 1 deg, per SED bin
    comp = st.components[0]
    lon, lat = comp.geom.pixel_centers()
    from fermixr.geom.frames import angular_separation, transform

    ra, dec = st.model.find("Crab").skydir
    clon, clat = transform(np.atleast_1d(ra), np.atleast_1d(dec), "CEL", comp.geom.frame)
    near = (angular_separation(lon, lat, float(clon[0]), float(clat[0])) < 1.0).ravel()
    crab = model_cubes(st, "Crab")[0][:, near].sum(axis=1)
    total = model_cubes(st)[0][:, near].sum(axis=1)
    share = np.add.reduceat(crab, starts) / np.add.reduceat(total, starts)
    dominant = share > 0.5
    print(f"\nCrab share within 1 deg {np.round(share, 2)}; TS {np.round(ds['ts'].values, 1)}")
    assert dominant.sum() >= 2 and ds.sizes["energy"] == 3
    assert np.all(ds["ts"].values[dominant] > 25)
    src = st.model.find("Crab")
    sm = st.spectral(src)
    emin, emax = st.energy_range
    p = src.spectral_values()
    idx = np.flatnonzero([q.free for q in src.spectral])
    grad = np.asarray(sm.flux_gradient(emin, emax, p), dtype=float)[idx]
    sigma = float(np.sqrt(grad @ physical_covariance(st, src, idx) @ grad))
    glob = float(sm.flux(emin, emax, p))
    total_flux = float(ds["flux"].values.sum())
    print(f"sum of bin fluxes {total_flux:.4g}, global {glob:.4g} +- {sigma:.3g}")
    assert abs(total_flux - glob) < sigma
    # Fermipy's SED file of the Crab, read back by the castro tools: the same scans
    from fermixr.engine.sed_output import run_sed
    from fermixr.estimators.castro import CastroData

    section = dict(g.config["sed"], free_background=True, make_plots=False)
    ds2, paths = run_sed(st, section, tmp_path, {"name": "Crab", "prefix": "crab",
                                                   "loge_bins": list(loge_bins)})
    c = CastroData.create_from_sedfile(paths["fits"], norm_type="norm")
    np.testing.assert_allclose(c.norm_vals, ds2["norm_scan"].values, rtol=1e-12)
    np.testing.assert_allclose(c.nll_vals, -ds2["dloglike_scan"].values, rtol=1e-12,
                               atol=1e-12)
    res = c.test_spectra()
    assert all(np.isfinite(r["TS"]) and r["TS"] > 25 for r in res.values())


# ----------------------------------------------------------------------- files, steps --
def test_fits_file_plot_and_dict(gta, tmp_path):
    from astropy.io import fits

    g = gta.copy()
    g.outdir = tmp_path
    out = g.sed(SRC, prefix="t1", make_plots=True, ul_confidence=0.9)
    for k in ("e_min", "e_ctr", "e_max", "e_ref", "ref_flux", "ref_eflux", "ref_dnde",
              "ref_dnde_e_min", "ref_dnde_e_max", "ref_e2dnde", "ref_npred", "norm",
              "norm_err", "norm_err_lo", "norm_err_hi", "norm_ul95", "norm_ul", "flux_ul95",
              "eflux_err_lo", "dnde_err_hi", "e2dnde_ul", "ts", "loglike", "npred",
              "fit_quality", "fit_status", "index", "norm_scan", "dloglike_scan",
              "param_covariance", "model_flux", "loge_min", "loge_ctr", "name", "file"):
        assert k in out, k
    assert set(out["model_flux"]) == {"energies", "dnde", "dnde_lo", "dnde_hi", "dnde_err",
                                      "dnde_ferr"}
    assert np.all(out["norm_ul"] < out["norm_ul95"])         # 90% below 95%
    path = Path(out["file"])
    assert path == tmp_path / "t1_syn_crab_sed.fits"
    with fits.open(path) as h:
        assert [x.name for x in h] == ["PRIMARY", "SED", "MODEL_FLUX", "PARAMS"]
        t = h["SED"]
        names = [c.name for c in t.columns]
        assert names[:18] == ["e_min", "e_ref", "e_max", "ref_dnde_e_min", "ref_dnde_e_max",
                              "ref_dnde", "ref_flux", "ref_eflux", "ref_npred", "norm",
                              "norm_err", "norm_errp", "norm_errn", "norm_ul", "ts",
                              "loglike", "norm_scan", "dloglike_scan"]
        assert t.columns["e_min"].unit == "MeV"
        assert t.columns["ref_flux"].unit == "ph / (cm2 s)"
        assert t.header["UL_CONF"] == 0.9
        assert json.loads(t.header["CONFIG"])["ul_confidence"] == 0.9
        for col, key in (("e_min", "e_min"), ("e_ref", "e_ref"), ("ref_dnde", "ref_dnde"),
                         ("ref_npred", "ref_npred"), ("norm", "norm"),
                         ("norm_errp", "norm_err_hi"), ("norm_errn", "norm_err_lo"),
                         ("norm_ul", "norm_ul"), ("ts", "ts"), ("loglike", "loglike"),
                         ("norm_scan", "norm_scan"), ("dloglike_scan", "dloglike_scan")):
            np.testing.assert_array_equal(t.data[col], out[key], err_msg=col)
        assert t.data["norm_scan"].shape == out["norm_scan"].shape
        mf = h["MODEL_FLUX"].data
        np.testing.assert_array_equal(mf["energy"], out["model_flux"]["energies"])
        np.testing.assert_array_equal(mf["dnde_hi"], out["model_flux"]["dnde_hi"])
        p = h["PARAMS"].data
        assert list(p["name"]) == [q.name for q in gta.state.model.find(SRC).spectral]
        np.testing.assert_array_equal(p["covariance"], out["param_covariance"])
    assert (tmp_path / "t1_syn_crab_sed.npy").is_file()
    doc = np.load(tmp_path / "t1_syn_crab_sed.npy", allow_pickle=True).item()
    np.testing.assert_array_equal(doc["norm"], out["norm"])
    assert (tmp_path / "t1_syn_crab_sed.png").stat().st_size > 1000


def test_product_meets_its_contract(gta):
    validate_product(E.run("sed", gta.state, SRC).dataset, "sed")


@pytest.mark.parametrize("name,kwargs,match", [
    ("NOPE", {}, r"sed: no source 'NOPE' in the model"),
    (SRC, {"loge_bins": [2.0, 3.4660]}, r"sed: loge_bins .* reach outside the analysis "
                                        r"energy range \[2.6990, 5.0000\]"),
    (SRC, {"loge_bins": [2.699, 3.5]}, r"sed: loge_bins: 3.5 is not an analysis bin edge; "
                                       r"the edges are 2.6990, 2.9546"),
    (SRC, {"loge_bins": [3.466, 2.699]}, r"sed: loge_bins: got \[3.466, 2.699\]; expected "
                                         r"at least two increasing"),
    (SRC, {"ul_confidence": 1.5}, r"sed: ul_confidence: got 1.5; expected a confidence"),
    (SRC, {"cov_scale": -1.0}, r"sed: cov_scale: got -1.0; expected null"),
    (SRC, {"bin_index": "two"}, r"sed: bin_index: got 'two'"),
    (SRC, {"free_radius": -1}, r"sed: free_radius: got -1"),
    (SRC, {"optimizer": "MINUIT"}, r"sed: optimizer: got 'MINUIT'; expected a mapping"),
    (SRC, {"bogus": 1}, r"sed: unknown option 'bogus'"),
    ("isodiff", {}, r"sed: 'isodiff' is a diffuse source"),
])
def test_bad_input_one_clear_error_nothing_written(gta, tmp_path, name, kwargs, match):
    g = gta.copy()
    g.outdir = tmp_path
    with pytest.raises(EstimatorError, match=match) as ei:
        g.sed(name, prefix="bad", **kwargs)
    assert isinstance(ei.value, FermixrError) and isinstance(ei.value, ValueError)
    assert "\n" not in str(ei.value)
    assert not list(tmp_path.iterdir())


def test_the_general_fitter_gives_the_same_bins(gta):
    """The optimizer mapping selects the general fitter for the bin fits: same optimum."""
    st = gta.state
    st = edits.free_norm(st, "isodiff")
    st = st[0] if isinstance(st, tuple) else st
    a = E.run("sed", st, SRC, free_background=True, cov_scale=None).dataset
    b = E.run("sed", st, SRC, free_background=True, cov_scale=None,
              optimizer={"optimizer": "MINUIT", "tol": 1e-8}).dataset
    np.testing.assert_allclose(b["norm"].values, a["norm"].values, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b["loglike"].values, a["loglike"].values, atol=1e-5)


def test_the_recipe_step_writes_the_product_and_fermipys_file(gta, tmp_path):
    from fermixr.engine.run import run_recipe

    import fermixr

    doc = _doc("wcs_no_edisp", Path(gta.outdir).parent)
    doc["steps"] = ["setup", {"sed": {"name": SRC, "prefix": "st",
                                      "loge_bins": FAINT_BINS}}]
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["computed"]
    path = Path(gta.outdir) / "st_syn_crab_sed.fits"
    assert path.is_file()
    ds = fermixr.open_run(gta.outdir)["sed"]
    validate_product(ds)
    assert ds.sizes["energy"] == 2 and float(ds["ts"].min()) > 25
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["cached"]
    path.unlink()                  # a cached step whose file is gone runs again
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["computed"]
    assert path.is_file()
    # the section's options enter the step's key
    doc["sed"] = {"bin_index": 2.5}
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["computed"]
    assert np.all(fermixr.open_run(gta.outdir)["sed"]["index"].values == 2.5)


def test_free_pars_conditions_the_global_fit(gta, tmp_path):
    """free_pars: the global fit with only those of the source's parameters free.  From
    the fit with Prefactor and Index free, free_pars [Prefactor] gives the Prefactor
    variance of a fit with the Index held (1 / its information; checked against a fit
    that holds it), a bowtie no wider anywhere, and no index variance."""
    from fermixr.estimators.fit import fit_state

    st = edits.free_source(gta.state, SRC, pars=["Prefactor", "Index"])
    st = st[0] if isinstance(st, tuple) else st
    _, st = fit_state(st, optimizer="MINUIT", tol=1e-8)
    src = st.model.find(SRC)
    norm = st.spectral(src).norm_param
    both = E.run("sed", st, SRC).dataset
    one = E.run("sed", st, SRC, free_pars=[norm]).dataset
    held = edits.free_parameter(st, SRC, "Index", free=False)
    held = held[0] if isinstance(held, tuple) else held
    _, held = fit_state(held, optimizer="MINUIT", tol=1e-8)
    i = [q.name for q in src.spectral].index(norm)
    k = [q.name for q in src.spectral].index("Index")
    want = (held.model.find(SRC).param(norm).error * src.param(norm).scale) ** 2
    assert float(one["param_covariance"].values[i, i]) == pytest.approx(want, rel=0.02)
    assert float(one["param_covariance"].values[k, k]) == 0.0
    assert float(both["param_covariance"].values[k, k]) > 0.0
    assert np.all(one["model_flux_dnde_err"].values
                  <= both["model_flux_dnde_err"].values * (1 + 1e-9))
    np.testing.assert_array_equal(one["norm"].values, both["norm"].values)
    with pytest.raises(EstimatorError, match=r"sed: free_pars: \['Nope'\] are not "
                                             r"parameters of 'SYN_CRAB'"):
        E.run("sed", st, SRC, free_pars=["Nope"])
    g = gta.copy()
    g.outdir = tmp_path
    out = g.sed(SRC, free_pars=[norm], write_fits=False, write_npy=False)
    assert out["file"] is None and not list(tmp_path.iterdir())


@pytest.mark.parametrize("mode", ["wcs_edisp", "two_pixel_sizes"])
def test_bin_costs_are_the_full_likelihood_restricted_to_the_bin(mode, tmp_path):
    """With the reference equal to the global spectrum (the source's own power law), a
    bin's cost is the full model's Poisson log L summed over that bin's measured energies
    only -- with energy dispersion (the bin's rows of the response and the true-energy
    band they draw from) and with components of different pixel sizes."""
    from fermixr import Analysis
    from fermixr.estimators.sed import _ComponentTerms, _reference_term, sed_bins
    from fermixr.likelihood.roi import component_costs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = Analysis(_doc(mode, tmp_path)).setup().state
    src = st.model.find(SRC)
    sm = st.spectral(src)
    index = -src.param("Index").physical
    parts = [_ComponentTerms(st, c, st.model, SRC) for c in st.components]
    cubes = [np.asarray(c.model_cube(c.x0)).reshape(comp.counts.shape)
             for c, comp in zip(component_costs(st), st.components)]
    if mode == "wcs_edisp":
        assert st.components[0].drm is not None
    for e0, e1 in sed_bins(st, [2.699, 3.2103, 3.9773, 5.0]):
        e_ref = np.sqrt(e0 * e1)
        ref = float(sm.evaluate(np.array([e_ref]), src.spectral_values())[0])
        term = _reference_term(SRC, ref, index, e_ref)
        got = 0.0
        want = 0.0
        for part, comp, m in zip(parts, st.components, cubes):
            c = part.cost(term, e0, e1)
            got += -float(c(c.x0))
            le = np.log10(comp.edges)
            k0 = int(np.argmin(np.abs(le - np.log10(e0))))
            k1 = int(np.argmin(np.abs(le - np.log10(e1))))
            n, mm = comp.counts[k0:k1], m[k0:k1]
            want += float(np.sum(np.where(n > 0, n * np.log(mm), 0.0) - mm))
        assert got == pytest.approx(want, rel=1e-9, abs=1e-6)


def test_the_sed_file_reads_back_through_castrodata(gta, tmp_path):
    """A SED FITS written by fermixr, read by the castro tools in Fermipy's layout: the
    same scans (norm x the reference eflux, -dloglike), the same MLEs and limits, and
    test_spectra() on it finds the power law (the simulated source is one)."""
    from fermixr.estimators.castro import CastroData

    g = gta.copy()
    g.outdir = tmp_path
    out = g.sed(SRC, prefix="rt")
    c = CastroData.create_from_sedfile(out["file"], norm_type="norm")
    np.testing.assert_allclose(c.norm_vals, out["norm_scan"], rtol=1e-12)
    np.testing.assert_allclose(c.nll_vals, -out["dloglike_scan"], rtol=1e-12, atol=1e-12)
    ce = CastroData.create_from_sedfile(out["file"])            # Fermipy's default: eflux
    np.testing.assert_allclose(ce.norm_vals, out["norm_scan"] * out["ref_eflux"][:, None],
                               rtol=1e-12)
    det = out["ts"] > 9
    assert det.sum() >= 3
    # the castro tools interpolate the scan; the SED solved the profile exactly: they
    # agree within a fraction of the error
    err = out["norm_err"][det]
    assert np.all(np.abs(c.mles()[det] - out["norm"][det]) < 0.15 * err)
    assert np.all(np.abs(c.getLimits(0.05)[det] - out["norm_ul95"][det]) < 0.15 * err)
    res = c.test_spectra()
    assert set(res) >= {"PowerLaw", "LogParabola", "PLExpCutoff"}
    for r in res.values():
        assert {"Function", "Result", "Spectrum", "ScaleEnergy", "TS"} <= set(r)
        assert np.isfinite(r["TS"]) and r["TS"] > 25
    # nested shapes: curvature adds no significant TS on a power-law source
    assert res["LogParabola"]["TS"] - res["PowerLaw"]["TS"] < 9
