"""The Analysis facade on the built-in synthetic data set (no external data)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from fermixr.api import Analysis
from fermixr.errors import FitError, ModelError, RecipeError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml"


def example_recipe() -> dict:
    """The example recipe (examples/quickstart.yaml) with its files as absolute paths,
    otherwise as written."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    base = EXAMPLE.parent
    for k in ("evfile", "scfile", "caldb"):
        doc["data"][k] = str((base / doc["data"][k]).resolve())
    doc["model"]["catalogs"] = [str((base / c).resolve()) for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str((base / doc["model"]["isodiff"]).resolve())
    return doc


def example_doc(outdir) -> dict:
    """The example recipe with absolute paths, no steps, no energy dispersion, its run
    folder ``outdir``."""
    doc = example_recipe()
    doc.pop("steps")
    doc["gtlike"]["edisp"] = False
    doc["fileio"] = {"outdir": str(outdir)}
    return doc


def example_fit(outdir, cls=Analysis):
    """The example recipe (:func:`example_doc`) set up in ``outdir``, optimised, SYN_CRAB
    and the isotropic norm fitted with NEWTON."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = cls(example_doc(outdir)).setup()
    a.optimize()
    a.free_source("SYN_CRAB")
    a.free_norm("isodiff")
    a.fit(optimizer="NEWTON")
    return a


@pytest.fixture(scope="module")
def gta(tmp_path_factory, example_setup):
    return example_fit(example_setup(tmp_path_factory.mktemp("ana") / "run"))


def test_fit_recovers_the_simulated_crab(gta):
    src = gta.roi_source("synthetic crab")          # through its association
    index = -src.param("Index").physical
    err = src.param("Index").error
    assert abs(index - 2.2) < 3 * err
    d = gta.get_src_model("SYN_CRAB")
    assert d["ts"] > 100 and d["npred"] > 100
    assert abs(d["flux100"] - 6e-6) < 3 * d["flux100_err"] + 0.1e-6   # truth 6e-6 (0.1-100 GeV)


def test_profile_is_parabolic_near_the_best_fit(gta):
    norm = gta.roi_source("SYN_CRAB").param("Prefactor")
    x = norm.value + norm.error * np.array([-1.0, 0.0, 1.0])
    prof = gta.profile_norm("SYN_CRAB", xvals=x, reoptimize=True)
    d = prof["loglike"] - prof["loglike"][1]
    np.testing.assert_allclose(d[[0, 2]], [-0.5, -0.5], atol=0.15)
    assert gta.roi_source("SYN_CRAB").param("Prefactor") == norm     # state unchanged


def test_priors_pull_the_fit(gta):
    a = gta
    saved = a.model
    try:
        idx = a.roi_source("SYN_CRAB").param("Index")
        a.add_gauss_prior("SYN_CRAB", "Index", idx.value + 5 * idx.error, 0.1 * idx.error)
        a.fit(optimizer="NEWTON")
        moved = a.roi_source("SYN_CRAB").param("Index").value
        assert moved > idx.value + 3 * idx.error
    finally:
        a.remove_priors()
        a.model = saved


def test_bad_input_leaves_the_state(gta):
    before = gta.model
    with pytest.raises(ModelError, match="no source matches 'Nope'"):
        gta.free_source("Nope")
    with pytest.raises(ModelError, match="above its maximum"):
        gta.set_parameter("SYN_CRAB", "Index", 99.0, true_value=False)
    assert gta.model == before
    other = Analysis.__new__(Analysis)
    other.__dict__.update(gta.__dict__)
    for s in list(other.model):
        for p in s.spectral:
            if p.free:
                other.model = other.model.replace_source(other.model.find(s.name).with_param(
                    p.name, free=False))
    with pytest.raises(FitError, match="no free parameter"):
        other.fit()


def test_a_failed_fit_leaves_every_parameter_as_it_was(gta):
    saved = gta.model
    try:
        norm = gta.roi_source("SYN_CRAB").param("Prefactor")
        gta.set_norm("SYN_CRAB", 4.0 * norm.value)
        before = gta.model
        ll0 = gta.loglike()
        out = gta.fit(optimizer="NEWTON", max_iter=1, retries=1)
        assert not out["fit_success"] and out["fit_status"] != 0
        assert gta.model == before and gta.loglike() == ll0
        assert gta.fit(optimizer="NEWTON")["fit_quality"] == 3      # and it can be refitted
    finally:
        gta.model = saved


def test_generate_model_is_reproducible(gta, tmp_path):
    a = gta.copy()
    a.generate_model(seed=5)
    c1 = a.counts_map().values.copy()
    a.generate_model(seed=5)
    np.testing.assert_array_equal(c1, a.counts_map().values)
    assert not np.array_equal(c1, gta.counts_map().values)     # the original keeps its data
    assert abs(c1.sum() - gta.model_counts_map().sum().values) < 5 * np.sqrt(c1.sum())


def test_add_move_and_respectrum_a_source(gta):
    a = gta.copy()
    ll0 = a.loglike()
    a.add_source("test_src", {"ra": 85.0, "dec": 20.0, "SpectrumType": "PowerLaw",
                              "Index": 2.0, "Prefactor": 1e-13, "Scale": 1000.0}, free=True)
    assert "test_src" in a.model and a.roi_source("test_src").param("Prefactor").free
    m = a.model_counts_map("test_src").sum().values
    assert 0 < m < 5                                  # a faint source
    a.set_source_morphology("test_src", spatial_pars={"RA": 86.5, "DEC": 23.3})
    moved = a.model_counts_map("test_src").sum().values
    assert moved == pytest.approx(m, rel=0.2)         # same flux, other place
    res = a.fit(optimizer="NEWTON")
    assert res["fit_quality"] >= 2 and res["loglike"] > ll0   # sits on SYN_HARD now
    a.set_source_spectrum("test_src", "LogParabola", {"norm": 1e-12, "alpha": 2.0, "beta": 0.1})
    assert a.roi_source("test_src").spectrum == "LogParabola"
    a.delete_source("test_src")
    assert "test_src" not in a.model
    assert a.model.names == gta.model.names
    assert "test_src" not in gta.state.components[0].maps      # the original is untouched
    with pytest.raises(ModelError, match="already in the sky model"):
        a.add_source("SYN_CRAB", {"ra": 1.0, "dec": 2.0})


def test_source_dictionary_keys_and_upper_limit(gta):
    d = gta.get_src_model("SYN_CRAB")
    for key in ("dnde", "dnde_err", "dnde_index", "dnde1000", "pivot_energy", "norm_scan",
                "dloglike_scan", "flux_scan", "eflux_scan", "flux_ul95", "eflux1000_ul95"):
        assert key in d, key
    # a power law: the local index is the photon index everywhere
    assert d["dnde1000_index"] == pytest.approx(-gta.roi_source("SYN_CRAB").param("Index").physical,
                                                rel=1e-3)
    assert 100 < d["pivot_energy"] < 1e5
    # the pivot is where dN/dE is best known
    assert d["dnde_err"] / d["dnde"] <= d["dnde10000_err"] / d["dnde10000"]
    # the 95% upper limit lies above the best flux, about 1.6-2 sigma away
    assert d["flux"] + 1.2 * d["flux_err"] < d["flux_ul95"] < d["flux"] + 2.6 * d["flux_err"]
    assert np.max(d["dloglike_scan"]) == 0.0


def test_weights_and_exposure_scales(gta, tmp_path):
    from astropy.io import fits

    doc = gta.recipe.to_dict()
    ones = np.ones(gta.state.components[0].template["counts"].shape, dtype=np.float32)
    fits.writeto(tmp_path / "wmap.fits", ones)
    base = Analysis(doc)._load_products()
    base.model = gta.model
    weighted = Analysis(doc, gtlike={"wmap": str(tmp_path / "wmap.fits")})._load_products()
    weighted.model = gta.model
    assert weighted.loglike() == pytest.approx(base.loglike(), rel=1e-12)   # weights of 1
    fits.writeto(tmp_path / "half.fits", 0.5 * ones)
    half = Analysis(doc, gtlike={"wmap": str(tmp_path / "half.fits")})._load_products()
    half.model = gta.model
    assert half.loglike() == pytest.approx(0.5 * base.loglike(), rel=1e-12)
    scaled = Analysis(doc, gtlike={"expscale": 0.5,
                                   "src_expscale": {"SYN_CRAB": 0.0}})._load_products()
    scaled.model = gta.model
    total = base.model_counts_map().sum().values
    crab = base.model_counts_map("SYN_CRAB").sum().values
    assert scaled.model_counts_map().sum().values == pytest.approx(0.5 * (total - crab),
                                                                   rel=1e-9)


def test_profile_of_the_index_and_bowtie(gta):
    idx = gta.roi_source("SYN_CRAB").param("Index")
    prof = gta.profile("SYN_CRAB", "Index", idx.value + idx.error * np.array([-1.0, 0.0, 1.0]),
                       reoptimize=True)
    d = prof["loglike"] - prof["loglike"][1]
    np.testing.assert_allclose(d[[0, 2]], [-0.5, -0.5], atol=0.15)
    bt = gta.bowtie("SYN_CRAB")
    i = int(np.argmin(bt["dnde_ferr"]))
    assert bt["energies"][i] == pytest.approx(gta.get_src_model("SYN_CRAB", scan=False)
                                              ["pivot_energy"], rel=0.1)
    assert np.all(bt["dnde_lo"] < bt["dnde"]) and np.all(bt["dnde"] < bt["dnde_hi"])


def _copy(gta):
    return gta.copy()


def test_full_source_dictionary(gta):
    from fermixr.model.catalog import R68_SIGMA

    d = gta.get_src_model("SYN_CRAB")
    keys = ("name Source_Name SpatialModel SpatialWidth SpatialType SourceType SpectrumType "
            "Spatial_Filename Spectrum_Filename ra dec glon glat ra_err dec_err glon_err "
            "glat_err pos_err pos_r68 pos_r95 pos_r99 pos_err_semimajor pos_err_semiminor "
            "pos_angle pos_gal_cov pos_gal_corr pos_cel_cov pos_cel_corr offset offset_ra "
            "offset_dec offset_glon offset_glat offset_roi_edge ts loglike npred "
            "pivot_energy param_names param_values param_errors correlation model_counts "
            "norm_scan dloglike_scan loglike_scan flux_scan eflux_scan").split()
    for band in ("", "100", "1000", "10000"):
        keys += [f"flux{band}", f"flux{band}_err", f"flux{band}_ul95", f"eflux{band}",
                 f"eflux{band}_err", f"eflux{band}_ul95", f"dnde{band}", f"dnde{band}_err",
                 f"dnde{band}_index"]
    assert [k for k in keys if k not in d] == []
    assert d["SpatialType"] == "SkyDirFunction" and d["SourceType"] == "PointSource"
    assert d["model_counts"].shape == (gta.state.components[0].counts.shape[0],)
    assert d["model_counts"].sum() == pytest.approx(d["npred"], rel=1e-12)
    assert d["offset"] < 1e-3 and d["offset_roi_edge"] == pytest.approx(-6.0, abs=0.01)
    # the last fit freed the Crab's norm and the isotropic norm: one correlation, negative
    assert set(d["correlation"]) == {"isodiff"} and -1 < d["correlation"]["isodiff"] < 0
    soft = gta.get_src_model("SYN_SOFT", scan=False)
    assert soft["correlation"] == {} and 5.5 < soft["offset"] < 6.5
    # a catalog position error carried to the dictionary
    a = _copy(gta)
    src = a.roi_source("SYN_HARD")
    a.model = a.model.replace_source(src.replace(meta={**src.meta,
                                                       "pos_ellipse": (0.05, 0.03, 20.0)}))
    h = a.get_src_model("SYN_HARD", scan=False)
    assert h["pos_r68"] == pytest.approx(R68_SIGMA * np.sqrt(0.05 * 0.03))
    assert h["pos_angle"] == 20.0


def test_get_sources_and_free_sources_selections(gta):
    a = _copy(gta)
    names = [s.name for s in a.get_sources()]
    assert names[0] == "SYN_CRAB" and names[-1] == "isodiff"        # by offset, diffuse last
    assert [s.name for s in a.get_sources(distance=3.5)] == ["SYN_CRAB", "SYN_HARD", "isodiff"]
    # SYN_SOFT: 5.2 deg off, inside the 6 x 6 deg square half-width but outside 5.1 deg
    circ = {s.name for s in a.get_sources(distance=5.1)}
    sq = {s.name for s in a.get_sources(distance=5.1, square=True)}
    assert "SYN_SOFT" not in circ and "SYN_SOFT" in sq
    bright = [s.name for s in a.get_sources(minmax_ts=[100, None])]
    assert "SYN_CRAB" in bright and "isodiff" not in bright
    assert [s.name for s in a.get_sources(cuts={"offset": [None, 1.0]})] == ["SYN_CRAB"]
    assert [s.name for s in a.get_sources(cuts=("offset", None, 1.0))] == ["SYN_CRAB"]
    assert [s.name for s in a.get_sources(cuts=[("offset", None, 1.0), ("ts", 1e9, None)])] == []
    with pytest.raises(ModelError, match="no source has a property .Signif_Avgg."):
        a.get_sources(cuts={"Signif_Avgg": [5, None]})
    with pytest.raises(ModelError, match=r"expected \(key, min, max\)"):
        a.get_sources(cuts=["offset"])
    for s in a.model:
        for p in s.spectral:
            if p.free:
                a.free_parameter(s.name, p.name, False)
    changed = a.free_sources(distance=5.1, square=True, pars="norm", exclude=["isodiff"])
    assert {s.name for s in changed} == sq - {"isodiff"}
    free = {p["src_name"] for p in a.get_params(freeonly=True)}
    assert free == sq - {"isodiff"}
    assert gta.model != a.model


def test_maps_follow_the_model(gta):
    a = _copy(gta)
    before = a.model_counts_map("SYN_SOFT").sum().values
    a.set_source_morphology("SYN_SOFT", spatial_pars={"RA": 81.0})
    moved = a.model_counts_map("SYN_SOFT").sum().values
    assert moved != before
    a.model = gta.model           # e.g. load_roi of the earlier model: its map again
    assert a.model_counts_map("SYN_SOFT").sum().values == pytest.approx(before, rel=1e-12)


def test_prior_on_a_fixed_parameter_is_refused(gta):
    before = gta.model
    with pytest.raises(ModelError, match="prior on SYN_SOFT:Index: the parameter is fixed"):
        gta.add_gauss_prior("SYN_SOFT", "Index", 2.0, 0.1)
    assert dict(gta.state.priors) == {} and gta.model == before


def test_write_roi_model_map_and_plots(gta, tmp_path):
    from astropy.io import fits
    from matplotlib.image import imread

    paths = gta.write_roi(tmp_path / "r", save_model_map=True, make_plots=True)
    cube = fits.getdata(paths["mcube_00"])
    ref = gta.model_counts_map().values
    assert cube.shape == ref.shape
    np.testing.assert_allclose(cube, ref, rtol=1e-6)          # float32 on disk
    assert paths["counts_spectrum"] == tmp_path / "r_counts_spectrum.png"
    assert paths["counts_map"] == tmp_path / "r_counts_map.png"
    for k, (h, w) in (("counts_spectrum", (660, 770)), ("counts_map", (550, 1650))):
        img = imread(paths[k])
        assert img.shape[:2] == (h, w)
        assert img[..., :3].std() > 0.05                      # not a blank canvas
    assert not list(tmp_path.glob(".*.tmp"))
    # what write_roi wrote is what roi_files (the cached step's check) names
    assert {k: Path(v) for k, v in paths.items()} == gta.roi_files(
        tmp_path / "r.npy", save_model_map=True, make_plots=True)


def test_component_geometry_must_match(gta):
    from fermixr.errors import GeometryError
    from fermixr.likelihood.roi import Component

    comp = gta.state.components[0]
    maps = {n: m.reshape(m.shape[0], 60, 60)[:, :, :59] for n, m in comp.maps.items()}
    with pytest.raises(GeometryError, match=r"source map of 'SYN_CRAB': shape \(\d+, 3540\), "
                                            r"expected \(\d+ energy nodes, 3600 pixels\)"):
        Component(counts=comp.counts, edges=comp.edges, maps=maps)
    with pytest.raises(GeometryError, match="energies do not match"):
        Component(counts=comp.counts, edges=comp.edges * 1.1, maps=dict(comp.maps),
                  nodes=comp.nodes)


def test_isodiff_per_component(gta, tmp_path):
    """Two components on the same data, the second with an isotropic spectrum twice as
    bright: each component's likelihood term uses its own file."""
    iso = Path(gta.recipe.config["model"]["isodiff"][0])
    rows = np.loadtxt(iso)
    rows[:, 1:] *= 2.0
    iso2 = tmp_path / "iso_double.txt"
    np.savetxt(iso2, rows)
    doc = gta.recipe.to_dict()
    doc["components"] = [{"model": {"isodiff": [str(iso)]}},
                         {"model": {"isodiff": [str(iso2)]}}]
    doc["fileio"] = {"outdir": str(tmp_path / "two")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = Analysis(doc).setup()
    c0, c1 = two._component_cubes("isodiff")
    assert c1.sum() == pytest.approx(2.0 * c0.sum(), rel=1e-9)


def test_analysis_is_reachable_from_the_package():
    import fermixr

    assert fermixr.Analysis is Analysis
    from fermixr import Analysis as A

    assert A is Analysis


def test_maps_of_added_sources_are_store_products_keyed_like_the_plan(gta):
    """The map of a source added or moved by an analysis step is made through the product
    store under the srcmap step's key: a recipe source gets the key the plan gave it, and
    the same added source is computed once."""
    import json

    from fermixr.engine.store import ProductStore

    maker = gta.state.map_maker
    crab = gta.model.find("SYN_CRAB")
    _, key, _ = maker.task(crab, 0)
    run = json.loads((gta.outdir / "run.json").read_text())
    planned = {t["name"]: t["key"] for t in run["tasks"]}
    assert planned["srcmap/SYN_CRAB"] == key
    store = ProductStore(maker.store_root)
    before = set(store.root.iterdir())
    a = gta.copy()
    src = a.add_source("store_src", {"ra": 84.5, "dec": 21.0, "Index": 2.0,
                                     "Prefactor": 1e-12, "Scale": 1000.0})
    new = set(store.root.iterdir()) - before
    _, key2, _ = maker.task(src, 0)
    assert [p.name for p in new if not p.name.startswith(".")] == [store.dirname("srcmaps",
                                                                               key2)]
    b = gta.copy()
    b.add_source("store_src", {"ra": 84.5, "dec": 21.0, "Index": 2.0, "Prefactor": 1e-12,
                               "Scale": 1000.0})
    assert set(store.root.iterdir()) - before == new           # taken from the store
    np.testing.assert_array_equal(a.state.components[0].maps["store_src"],
                                  b.state.components[0].maps["store_src"])


def test_optimize_leaves_the_skipped_sources_alone(gta):
    a = gta.copy()
    a.set_norm("SYN_HARD", 3.0 * a.roi_source("SYN_HARD").param("Prefactor").value)
    before = a.roi_source("SYN_HARD")
    out = a.optimize(skip=["SYN_HARD"])
    assert out["config"]["skip"] == ["SYN_HARD"]
    assert a.roi_source("SYN_HARD") == before
    b = gta.copy()
    b.set_norm("SYN_HARD", 3.0 * b.roi_source("SYN_HARD").param("Prefactor").value)
    b.optimize()
    assert b.roi_source("SYN_HARD").param("Prefactor").value < before.param("Prefactor").value


def test_an_analysis_over_a_state_built_in_memory(gta):
    """Analysis.from_state wraps arrays from elsewhere: the same fit as the run's, and a
    clear error where a map would have to be made."""
    from fermixr.errors import LikelihoodError
    from fermixr.likelihood.roi import AnalysisState, Component

    c = gta.state.components[0]
    comp = Component(counts=c.counts, edges=c.edges, maps=dict(c.maps), nodes=c.nodes,
                     map_keys=dict(c.map_keys), sky_shape=c.sky_shape)
    mem = Analysis.from_state(AnalysisState([comp], gta.model, roi_center=(83.63, 22.01)))
    assert mem.loglike() == pytest.approx(gta.loglike(), rel=1e-12)
    a, b = gta.copy(), mem
    fa, fb = a.fit(optimizer="NEWTON"), b.fit(optimizer="NEWTON")
    np.testing.assert_allclose(fb["values"], fa["values"], rtol=1e-8)
    assert b.model_counts_map().shape == (c.counts.shape[0],) + tuple(c.sky_shape)
    with pytest.raises(LikelihoodError, match="cannot make maps"):
        b.set_source_morphology("SYN_SOFT", spatial_pars={"RA": 81.0})


def test_a_bad_fit_option_in_optimize_is_an_error_not_a_skipped_pass(gta):
    with pytest.raises(FitError, match="retries"):
        gta.copy().optimize(retries=0)
