"""Weighted-photon light curves (fermixr.estimators.wtlike): the kernels against slow
references, the cell estimates against simulations with known truth (pulls, upper-limit
coverage, Bayesian blocks on steady and stepped sources), bad input refused before any work,
and (slow) the whole chain on the built-in example and against the full-likelihood light
curve on a simulated data set."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from fermixr.errors import EstimatorError, FermixrError, InputFileError, RecipeError
from fermixr.estimators import _wtlike_kernels as K
from fermixr.estimators.wtlike import (RowExposure, bayesian_blocks, default_ncp_prior,
                                       fit_cells_reference, weighted_lightcurve)

EXAMPLE_DATA = Path(__file__).resolve().parent.parent / "examples" / "data"


# --------------------------------------------------------------------- a toy with truth --
def toy_cells(rng, ncell, S, bfac=3.0, npix=40, ntrue=1.0):
    """Photons of ``ncell`` cells: a source (expected counts ntrue x S per cell, a Gaussian
    profile over ``npix`` "pixels") over a flat background (bfac x S); each photon's weight
    is the true source fraction of its pixel at ntrue = 1, as the model gives."""
    r = np.linspace(0.0, 3.0, npix)
    s = np.exp(-0.5 * (r / 0.6) ** 2)
    s /= s.sum()
    b = np.full(npix, 1.0 / npix)
    S = np.broadcast_to(np.asarray(S, float), (ncell,)).copy()
    nt = np.broadcast_to(np.asarray(ntrue, float), (ncell,))
    w = s / (s + bfac * b)
    k = rng.poisson(nt[:, None] * S[:, None] * s + bfac * S[:, None] * b)
    ww = np.repeat(np.broadcast_to(w, k.shape).ravel(), k.ravel())
    off = np.concatenate([[0], np.cumsum(k.sum(axis=1))]).astype(np.int64)
    return np.ascontiguousarray(ww), off, S


# --------------------------------------------------------------------------- kernels ----
def test_cell_fits_agree_with_the_scipy_reference():
    rng = np.random.default_rng(3)
    w, off, S = toy_cells(rng, 40, rng.uniform(0.5, 40.0, 40), ntrue=rng.uniform(0, 2, 40))
    S[5] = 0.0                                   # no exposure: NaN row
    fast = K.fit_cells(w, off, S)
    ref = fit_cells_reference(w, off, S)
    assert np.all(np.isnan(fast[5])) and np.all(np.isnan(ref[5]))
    ok = np.isfinite(ref[:, 0])
    np.testing.assert_allclose(fast[ok], ref[ok], rtol=1e-6, atol=1e-7)


def test_block_fitness_of_the_tables_matches_the_exact_maximum():
    rng = np.random.default_rng(4)
    w, off, S = toy_cells(rng, 30, rng.uniform(20, 200, 30), ntrue=rng.uniform(0.3, 3, 30))
    grid = np.concatenate([[0.0], np.geomspace(1e-2, 8.0, 159)])
    L, D = K.cell_tables(w, off, S, grid)
    CL = np.vstack([np.zeros(grid.size), np.cumsum(L, axis=0)])
    CD = np.vstack([np.zeros(grid.size), np.cumsum(D, axis=0)])
    for l, r in [(0, 30), (3, 4), (5, 17), (10, 12), (0, 1)]:
        seg = np.ascontiguousarray(w[off[l]:off[r]])
        exact = K.fit_cells(seg, np.array([0, seg.size]), np.array([S[l:r].sum()]))[0, 5]
        assert abs(K._block_max(CL, CD, l, r, grid) - exact) < 0.02


def test_bayesian_blocks_dp_matches_the_brute_force_recursion():
    rng = np.random.default_rng(5)
    nt = np.r_[np.full(6, 1.0), np.full(5, 2.5), np.full(5, 0.6)]
    w, off, S = toy_cells(rng, nt.size, 60.0, ntrue=nt)

    def fitness(l, r):
        seg = np.ascontiguousarray(w[off[l]:off[r]])
        return K.fit_cells(seg, np.array([0, seg.size]), np.array([S[l:r].sum()]))[0, 5]

    for prior in (2.0, 6.0, 40.0):
        fast = bayesian_blocks(w, off, S, prior)
        ref = K.bayesian_blocks_reference(nt.size, fitness, prior)
        np.testing.assert_array_equal(fast, ref)
    assert list(bayesian_blocks(w, off, S, 6.0)) == [0, 6, 11]


def test_row_exposure_cells_are_exact_sums_of_rows():
    rows = RowExposure(start=np.array([0.0, 30.0, 90.0]), stop=np.array([30.0, 60.0, 120.0]),
                       counts=np.array([3.0, 6.0, 9.0]), livetime=np.ones(3))
    np.testing.assert_allclose(rows.in_cells(np.array([0.0, 15.0, 60.0]),
                                             np.array([30.0, 45.0, 120.0])), [3.0, 4.5, 9.0])


# ------------------------------------------------------------------ known truth ----------
def test_pulls_and_upper_limit_coverage_on_steady_cells():
    rng = np.random.default_rng(11)
    w, off, S = toy_cells(rng, 4000, rng.uniform(10, 60, 4000))
    f = K.fit_cells(w, off, S)
    n, lo, hi = f[:, 0], f[:, 1], f[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pull = np.where(n < 1, (n - 1) / hi, (n - 1) / lo)
    assert abs(pull.mean()) < 0.06 and abs(pull.std() - 1.0) < 0.05
    # 95% upper limits: at the truth n = 1 they cover ~95%; near the boundary (faint
    # cells, n = 0.3 of S = 5) the bounded profile over-covers, never under-covers
    assert 0.935 < np.mean(f[:, 3] >= 1.0) < 0.965
    w, off, S = toy_cells(rng, 4000, 5.0, ntrue=0.3)
    assert np.mean(K.fit_cells(w, off, S)[:, 3] >= 0.3) > 0.95


def test_bayesian_blocks_steady_source_is_one_block_and_a_step_is_found():
    rng = np.random.default_rng(21)
    one = 0
    for _ in range(60):
        w, off, S = toy_cells(rng, 40, rng.uniform(10, 60, 40))
        one += bayesian_blocks(w, off, S, default_ncp_prior(40)).size == 1
    assert one >= 55              # measured 96.5% over 200 realisations (p0 = 0.05)
    nt = np.where(np.arange(40) < 20, 1.0, 2.0)
    found = 0
    for _ in range(10):
        w, off, S = toy_cells(rng, 40, 30.0, ntrue=nt)
        st = bayesian_blocks(w, off, S, default_ncp_prior(40))
        found += st.size == 2 and abs(int(st[1]) - 20) <= 2
    assert found >= 9


# ------------------------------------------------------------------------- bad input ----
class _Untouchable:
    """Components that fail the test if anything reads them (proves no work was done)."""

    def get(self):
        raise AssertionError("the components were read before the input was checked")


@pytest.fixture(scope="module")
def lazy_state():
    from fermixr.likelihood.roi import AnalysisState, LazyComponents
    from fermixr.model.xml import read_xml

    model = read_xml(EXAMPLE_DATA / "source_model.xml")
    return AnalysisState(components=LazyComponents(_Untouchable().get), model=model)


def _call(state, name="SYN_CRAB", ft2=EXAMPLE_DATA / "ft2.fits", gti=(3e8, 3e8 + 86400),
          **kw):
    return weighted_lightcurve(state, name, [], ft2, [gti[0]], [gti[1]], irf_sets=[],
                               **kw)


def test_unknown_source_is_refused_before_any_work(lazy_state):
    with pytest.raises(EstimatorError, match="no source 'NOPE' in the model"):
        _call(lazy_state, "NOPE")


def test_missing_ft2_is_refused_before_any_work(lazy_state):
    with pytest.raises(InputFileError, match="no spacecraft \\(FT2\\) file"):
        _call(lazy_state, ft2=None)
    with pytest.raises(FileNotFoundError):
        _call(lazy_state, ft2=EXAMPLE_DATA / "nope_ft2.fits")


def test_cells_outside_the_ft2_span_are_refused_before_any_work(lazy_state):
    with pytest.raises(RecipeError, match="outside the spacecraft \\(FT2\\) file's span"):
        _call(lazy_state, gti=(3e8, 3e8 + 3 * 86400), binsz=86400.0)
    with pytest.raises(FermixrError):
        _call(lazy_state, time_bins=[1e8, 1e8 + 10])


# ---------------------------------------------------------------- end to end (slow) ----
@pytest.fixture(scope="module")
def example(tmp_path_factory):
    from test_analysis import example_fit

    return example_fit(tmp_path_factory.mktemp("wtlike"))


@pytest.mark.slow
def test_example_curve_is_consistent_with_the_fit(example):
    from astropy.io import fits

    from fermixr.conventions import validate_product
    from fermixr.engine.wtlike_output import gather_inputs
    from fermixr.estimators.ts import npred
    from fermixr.estimators.wtlike import source_exposure

    gta = example
    timing = {}
    ds = gta.weighted_lightcurve("SYN_CRAB", binsz=3 * 3600.0, blocks=True, make_plots=True,
                                 timing=timing)
    validate_product(ds)
    np_src = npred(gta.state, "SYN_CRAB")
    # the cells' expected counts add up to the model's; the weights to it too, up to the
    # fit's residuals (a Poisson fluctuation of the photons: a few percent here)
    assert abs(ds.attrs["npred_model"] - np_src) < 1e-6 * np_src
    assert abs(float(ds["npred"].sum()) - np_src) < 1e-6 * np_src
    assert abs(ds.attrs["sum_weights_total"] - np_src) < 3 * math.sqrt(np_src)
    # the steady source: one block at the fitted flux; cells scatter as their errors say
    assert ds.attrs["nblocks"] == 1
    assert abs(float(ds["block_norm"][0]) - 1.0) < 0.02
    ok = ds["status"].values == "ok"
    n, e = ds["norm"].values[ok], ds["norm_err"].values[ok]
    chi2 = float(np.sum(((n - 1) / e) ** 2))
    assert chi2 < ok.sum() + 4 * math.sqrt(2 * ok.sum())
    # the source's exposure from the FT2 rows = the exposure cube at the source
    events, gs, ge, ft2, irfs, zmax = gather_inputs(gta.state, gta.recipe, gta.outdir)
    rows = source_exposure(gta.state, "SYN_CRAB", ft2, gs, ge, irf_sets=irfs, zmax=zmax,
                           containment=False)
    from fermixr.engine.run import open_run

    expo = open_run(gta.outdir, dask=False)["exposure"]
    src = gta.roi_source("SYN_CRAB")
    cube = expo[[v for v in expo.data_vars][0]]
    geom = gta.state.components[0].geom
    x, y = geom.world_to_pix(np.array([src.skydir[0]]), np.array([src.skydir[1]]))
    ec = np.sqrt(gta.state.components[0].edges[:-1] * gta.state.components[0].edges[1:])
    vals = cube.values[:, int(round(float(y[0]))), int(round(float(x[0])))]
    evals = np.exp(np.interp(np.log(ec), np.log(cube[cube.dims[0]].values), np.log(vals)))
    np.testing.assert_allclose(rows.exposure[0], evals, rtol=0.03)
    with fits.open(gta.outdir / "syn_crab_wtlike.fits") as h:
        assert len(h["LIGHTCURVE"].data) == ds.sizes["time"]
        assert len(h["BLOCKS"].data) == 1
    assert (gta.outdir / "syn_crab_wtlike.png").stat().st_size > 5000


@pytest.mark.slow
def test_unknown_source_through_the_analysis(example):
    with pytest.raises(EstimatorError, match="no source 'NOPE'"):
        example.weighted_lightcurve("NOPE")
    with pytest.raises(RecipeError, match="unknown option"):
        example.weighted_lightcurve("SYN_CRAB", free_radius=3.0)


# ------------------------------------------- against the full-likelihood curve (slow) ---
WEEK = 7 * 86400.0


def simulated_recipe(root: Path, weeks: float, seed: int = 20250101):
    """A ``weeks``-long synthetic data set of the example's region (5 deg event cut, as the
    mission benchmark's) and the quickstart recipe on it (a 6 deg square: its derived selection radius, half its diagonal + 0.5 deg, stays inside the cut)."""
    import yaml

    from fermixr.simulate.synthetic import SyntheticConfig, make_example_dataset

    cfg = SyntheticConfig(duration=weeks * WEEK, roi_radius=5.0, background_margin=8.0,
                          seed=seed)
    paths = make_example_dataset(root / "data", cfg, compute_expected=False)
    example = Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml"
    doc = yaml.safe_load(example.read_text())
    doc.pop("steps")
    doc["data"] = {"evfile": str(paths["ft1"]), "scfile": str(paths["ft2"]),
                   "caldb": str(paths["caldb"])}
    doc["binning"]["roiwidth"] = 6.0
    doc["model"]["catalogs"] = [str((example.parent / c).resolve())
                                for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str(paths["iso"])
    doc["gtlike"]["edisp"] = False
    doc["fileio"] = {"outdir": str(root / "run")}
    return doc


def compare_with_full_likelihood(doc, name="SYN_CRAB", free_params=("norm",)):
    """(weighted Dataset, full-likelihood dict, per-bin |difference| / sigma_full,
    / sigma_combined): weekly bins of both curves from the same full-range fit."""
    from fermixr import Analysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gta = Analysis(doc).setup()
    gta.free_source(name)
    gta.free_norm("isodiff")
    gta.fit(optimizer="NEWTON")
    wt = gta.weighted_lightcurve(name, binsz=WEEK)
    lc = gta.lightcurve(name, binsz=WEEK, free_params=list(free_params) or None,
                        write_npy=False, write_fits=False)
    ok = np.asarray(lc["fit_success"], bool)
    fw, ew = wt["flux"].values, wt["flux_err"].values
    ff, ef = np.asarray(lc["flux"]), np.asarray(lc["flux_err"])
    assert np.allclose(np.asarray(lc["tmin"]), wt["tmin"].values)
    d_full = np.abs(fw - ff)[ok] / ef[ok]
    d_comb = np.abs(fw - ff)[ok] / np.hypot(ew, ef)[ok]
    return wt, lc, d_full, d_comb


@pytest.mark.slow
def test_weekly_fluxes_agree_with_the_full_likelihood_curve(tmp_path):
    doc = simulated_recipe(tmp_path, weeks=30)
    wt, lc, d_full, d_comb = compare_with_full_likelihood(doc)
    assert d_full.size >= 25
    # within 1 sigma of the full-likelihood bin's error in >= 90% of the bins
    assert np.mean(d_full < 1.0) >= 0.9, d_full


@pytest.mark.slow
def test_the_recipe_step_makes_the_product(tmp_path):
    import fermixr
    from fermixr.conventions import validate_product
    from fermixr.engine.run import run_recipe

    from test_analysis import example_doc

    doc = example_doc(tmp_path)
    doc["steps"] = ["setup", {"free_source": "SYN_CRAB"}, {"free_norm": "isodiff"}, "fit",
                    {"weighted_lightcurve": {"name": "SYN_CRAB", "binsz": 21600.0,
                                             "blocks": True}}]
    run_recipe(doc, outdir=tmp_path, verbose=False)
    ds = fermixr.open_run(tmp_path)["weighted_lightcurve"].load()
    validate_product(ds)
    assert ds.sizes["time"] == 4 and ds.attrs["nblocks"] == 1
    assert (tmp_path / "syn_crab_wtlike.fits").is_file()
    bad = dict(doc, steps=["setup", {"weighted_lightcurve": {"name": "NOPE"}}])
    with pytest.raises(FermixrError, match="NOPE"):
        run_recipe(bad, outdir=tmp_path / "bad", verbose=False)


@pytest.mark.slow
def test_front_and_back_components_of_different_pixels(tmp_path):
    """Per-event-type weights: FRONT and BACK as two components (0.2 and 0.3 deg pixels),
    each photon weighted by its own component's model."""
    from fermixr import Analysis

    from test_analysis import example_doc

    doc = example_doc(tmp_path)
    doc["components"] = [{"selection": {"evtype": 1}},
                         {"selection": {"evtype": 2}, "binning": {"binsz": 0.3}}]
    doc["fileio"] = {"outdir": str(tmp_path)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gta = Analysis(doc).setup()
    gta.free_source("SYN_CRAB")
    gta.free_norm("isodiff")
    gta.fit(optimizer="NEWTON")
    ds = gta.weighted_lightcurve("SYN_CRAB", binsz=6 * 3600.0, blocks=True)
    npred = ds.attrs["npred_model"]
    assert abs(ds.attrs["sum_weights_total"] - npred) < 3 * math.sqrt(npred)
    assert abs(float(ds["npred"].sum()) - npred) < 1e-6 * npred
    assert ds.attrs["nblocks"] == 1 and abs(float(ds["block_norm"][0]) - 1) < 0.03
