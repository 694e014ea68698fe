"""The ROI object (``gta.roi``), the rest of Fermipy's everyday Analysis API and the
seeded simulations (simulate_roi / simulate_source), on the built-in synthetic data set;
and the Fermipy manual's quickstart on the shared Crab day with the 4FGL-DR4 model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fermixr import GTAnalysis
from fermixr.api import Analysis
from fermixr.errors import GeometryError, ModelError


@pytest.fixture(scope="module")
def gta(tmp_path_factory, example_setup):
    from test_analysis import example_fit

    return example_fit(example_setup(tmp_path_factory.mktemp("roiapi") / "run"),
                       cls=GTAnalysis)


@pytest.fixture
def fresh(gta):
    """A copy of the fitted analysis that a test may change freely."""
    return gta.copy()


def test_gtanalysis_is_analysis():
    assert GTAnalysis is Analysis


# ------------------------------------------------------------------------ the ROI -------
def test_roi_source_has_the_estimators_numbers(gta):
    from fermixr.estimators import run

    roi = gta.roi
    src = roi["syntheticCRAB"]                     # by association, any case and spaces
    assert src.name == "SYN_CRAB"
    ts = float(run("ts", gta.state, "SYN_CRAB").dataset.attrs["ts"])
    assert src["ts"] == ts and ts > 100
    assert src["npred"] == pytest.approx(gta.npred("SYN_CRAB"), rel=1e-12)
    d = gta.get_src_model("SYN_CRAB")
    for k in ("flux", "flux_err", "eflux", "ra", "dec", "offset", "dnde"):
        assert src[k] == pytest.approx(d[k], rel=1e-12), k
    np.testing.assert_array_equal(src["param_values"], d["param_values"])
    # the position as a SkyCoord
    assert src.skydir.ra.deg == pytest.approx(d["ra"]) and src.skydir.dec.deg == \
        pytest.approx(d["dec"])
    assert src["flux_ul95"] > src["flux"]          # from the scan, computed when asked
    assert "SYN_CRAB" in roi and "syn_crab" in roi and "nope" not in roi
    assert len(roi) == len(gta.model) == len(list(roi))
    assert [s.name for s in roi] == gta.model.names
    assert {s.name for s in roi.diffuse_sources} == {"isodiff"}
    assert all(s["SpatialModel"] == "PointSource" for s in roi.point_sources)


def test_get_sources_by_distance_against_hand_computed_offsets(gta):
    roi = gta.roi
    ra0, dec0 = gta.state.roi_center
    assert roi.skydir.ra.deg == pytest.approx(ra0) and roi.skydir.dec.deg == \
        pytest.approx(dec0)

    def sep(ra, dec):        # haversine, independent of fermixr's geometry
        r1, d1, r2, d2 = np.radians([ra0, dec0, ra, dec])
        h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
        return np.degrees(2 * np.arcsin(np.sqrt(h)))

    offsets = {s.name: sep(*s.skydir) for s in gta.model if s.skydir is not None}
    for dist in (1.0, 3.0, 6.0):
        got = [s.name for s in roi.get_sources(distance=dist) if not s.diffuse]
        want = sorted((n for n, o in offsets.items() if o <= dist), key=offsets.get)
        assert got == want
    for s in roi.get_sources(distance=6.0):
        if not s.diffuse:
            assert s["offset"] == pytest.approx(offsets[s.name], abs=1e-9)
    # by position, with an inner radius
    name = max(offsets, key=offsets.get)
    far = gta.model.find(name).skydir
    hits = roi.get_sources_by_position(far, 0.01)
    assert [s.name for s in hits] == [name]
    assert roi.get_sources_by_position(far, 0.01, min_dist=0.005) == []
    assert [s.name for s in roi.get_sources_by_name("synthetic crab")] == ["SYN_CRAB"]


def test_unknown_source_is_one_error_naming_the_closest(gta):
    before = gta.state
    with pytest.raises(ModelError, match=r"no source matches 'SYN_CRAM'.*closest names: "
                                         r"SYN_CRAB"):
        gta.roi["SYN_CRAM"]
    with pytest.raises(ModelError, match="SYN_CRAB"):
        gta.lock_source("SYN_CRAM")
    with pytest.raises(ModelError, match="no source matches"):
        gta.free_sources_by_name(["SYN_CRAB", "nope"])
    assert gta.state is before


def test_roi_write_and_print(gta, tmp_path):
    from astropy.io import fits

    from fermixr.model.xml import read_xml

    roi = gta.roi
    x = roi.write_xml(tmp_path / "m.xml")
    assert read_xml(x).names == gta.model.names
    f = roi.write_fits(tmp_path / "m.fits")
    with fits.open(f) as h:
        t = h[1].data
        i = list(t["name"]).index("SYN_CRAB")
        assert t["ts"][i] == pytest.approx(roi["SYN_CRAB"]["ts"], rel=1e-6)
        assert len(t) == len(roi)
    text = gta.print_roi()
    line = next(ln for ln in text.splitlines() if ln.startswith("SYN_CRAB"))
    assert f"{roi['SYN_CRAB']['ts']:.2f}" in line and f"{roi['SYN_CRAB']['offset']:.3f}" \
        in line
    assert str(roi) == text
    assert gta.write_fits("roi_table.fits").exists()


def test_create_from_position_reads_the_catalog(gta):
    from fermixr.api.roi import ROI

    cfg = {"catalogs": gta.config["model"]["catalogs"], "src_radius": 2.0}
    roi = ROI.create_from_position(gta.roi["SYN_CRAB"].skydir, cfg)
    assert "SYN_CRAB" in roi
    assert all(s["offset"] <= 2.0 + 1e-9 for s in roi)
    assert roi["SYN_CRAB"]["offset"] == pytest.approx(0.0, abs=1e-6)


def test_a_template_source_has_its_catalog_position(gta):
    """A SpatialMap source (4FGL's S 147) is placed at its catalog position: a distance cut
    applies to it (only the isotropic and map-cube backgrounds pass every cut), and its
    dictionary has ra, dec and offset."""
    from fermixr.api.roi import ROI
    from fermixr.model.skymodel import SkyModel

    crab = gta.model.find("SYN_CRAB")
    iso = gta.model.find("isodiff")
    tmpl = crab.replace(name="S147_like", spatial_model="SpatialMap", spatial=(),
                        spatial_file="/nonexistent/S147.fits",
                        meta={"ra": 85.10, "dec": 27.93})
    roi = ROI(model=SkyModel((crab, tmpl, iso)), skydir=crab.skydir)
    near = [v.name for v in roi.get_sources(distance=3.0)]
    assert near == ["SYN_CRAB", "isodiff"]
    assert [v.name for v in roi.get_sources(distance=7.0)] == ["SYN_CRAB", "S147_like",
                                                              "isodiff"]
    r1, d1, r2, d2 = np.radians([*crab.skydir, 85.10, 27.93])
    want = np.degrees(np.arccos(np.sin(d1) * np.sin(d2)
                                + np.cos(d1) * np.cos(d2) * np.cos(r2 - r1)))
    assert roi["S147_like"]["offset"] == pytest.approx(want, abs=1e-9)
    assert roi["S147_like"].extended and not roi["S147_like"].diffuse
    assert [v.name for v in roi.diffuse_sources] == ["isodiff"]


# ---------------------------------------------------------------- everyday API ----------
def test_set_energy_range_keeps_only_the_bins_inside(fresh):
    gta = fresh
    loge = np.log10(gta.state.components[0].edges)
    full = gta.model_counts_spectrum("SYN_CRAB")
    assert full.size == loge.size - 1
    assert full.sum() == pytest.approx(gta.npred("SYN_CRAB"), rel=1e-10)
    ll_full = gta.loglike()
    used = gta.set_energy_range(loge[3] + 0.01, loge[10] - 0.02)   # nearest edges
    np.testing.assert_allclose(used, [loge[3], loge[10]])
    np.testing.assert_allclose(gta.loge_bounds, used, rtol=1e-12)
    np.testing.assert_array_equal(gta.log_energies, loge)
    assert gta.npred("SYN_CRAB") == pytest.approx(full[3:10].sum(), rel=1e-10)
    assert gta.npred("SYN_CRAB") < 0.99 * full.sum()
    # the spectrum in the whole range is unchanged; by default it is the range in use
    np.testing.assert_allclose(gta.model_counts_spectrum("SYN_CRAB", loge[0], loge[-1]),
                               full, rtol=1e-12)
    np.testing.assert_allclose(gta.model_counts_spectrum("SYN_CRAB"), full[3:10], rtol=1e-12)
    # log L over the kept bins only: the Poisson terms of bins 3..9
    n = gta.state.components[0].counts
    m = np.asarray(gta.model_counts_map().values).reshape(n.shape)
    assert np.all(m[:3] == 0) and np.all(m[10:] == 0)
    k = slice(3, 10)
    mk = m[k]
    want = float(np.sum(np.where(n[k] > 0, n[k] * np.log(np.where(mk > 0, mk, 1)), 0) - mk))
    assert gta.loglike() == pytest.approx(want, rel=1e-9)
    assert gta.loglike() != pytest.approx(ll_full)
    d = gta.get_src_model("SYN_CRAB", paramsonly=True)
    e0, e1 = gta.state.energy_range
    assert (e0, e1) == pytest.approx((10 ** loge[3], 10 ** loge[10]))
    sm = gta.state.spectral(gta.model.find("SYN_CRAB"))
    assert d["flux"] == pytest.approx(sm.flux(e0, e1, d["param_values"]), rel=1e-10)
    out = gta.fit(optimizer="NEWTON")
    assert out["fit_success"]
    with pytest.raises(GeometryError, match="at least one bin wide"):
        gta.set_energy_range(loge[4], loge[4] + 0.01)
    assert gta.set_energy_range() == pytest.approx([loge[0], loge[-1]])
    assert gta.state.loge_bounds is None
    assert gta.loglike() != pytest.approx(want)


def test_set_energy_range_with_energy_dispersion(gta):
    """A dispersed component: the measured bins inside the range are predicted from every
    true-energy bin (model counts there unchanged), the bins outside drop out of log L and
    npred."""
    from fermixr.likelihood.roi import AnalysisState, Component

    c = gta.state.components[0]
    nb = c.counts.shape[0]
    drm = 0.8 * np.eye(nb) + 0.1 * np.eye(nb, k=1) + 0.1 * np.eye(nb, k=-1)
    comp = Component(counts=c.counts, edges=c.edges, maps=dict(c.maps), nodes=c.nodes,
                     map_keys=dict(c.map_keys), sky_shape=c.sky_shape, drm=drm)
    a = Analysis.from_state(AnalysisState([comp], gta.model, roi_center=(83.63, 22.01)))
    m_full = np.asarray(a.model_counts_map().values).reshape(c.counts.shape)
    src_full = a.model_counts_spectrum("SYN_CRAB")
    loge = np.log10(c.edges)
    a.set_energy_range(loge[2], loge[9])
    m = np.asarray(a.model_counts_map().values).reshape(c.counts.shape)
    np.testing.assert_allclose(m[2:9], m_full[2:9], rtol=1e-12)
    assert np.all(m[:2] == 0) and np.all(m[9:] == 0)
    n = c.counts[2:9]
    mk = m_full[2:9]
    want = float(np.sum(np.where(n > 0, n * np.log(mk), 0) - mk))
    assert a.loglike() == pytest.approx(want, rel=1e-9)
    assert a.npred("SYN_CRAB") == pytest.approx(src_full[2:9].sum(), rel=1e-10)
    # the dispersion moves counts between bins: not the same as without it
    b = Analysis.from_state(AnalysisState([comp.replace(drm=None)], gta.model,
                                          roi_center=(83.63, 22.01)))
    b.set_energy_range(loge[2], loge[9])
    assert abs(b.npred("SYN_CRAB") / a.npred("SYN_CRAB") - 1) > 1e-3
    assert a.get_free_param_vector().size and a.fit(optimizer="NEWTON")["fit_success"]


def test_lock_parameter_survives_free_sources(fresh):
    gta = fresh
    gta.free_sources(free=False)
    gta.lock_parameter("SYN_CRAB", "Index")
    gta.free_sources(pars=None)
    assert not gta.model.find("SYN_CRAB").param("Index").free
    assert gta.model.find("SYN_CRAB").param("Prefactor").free
    gta.free_source("SYN_CRAB", free=False)
    gta.lock_source("SYN_CRAB")
    gta.free_sources_by_name(["SYN_CRAB", "isodiff"])
    assert gta.get_free_source_params("SYN_CRAB") == []
    assert gta.get_free_source_params("isodiff") == ["Normalization"]
    gta.unlock_source("SYN_CRAB")
    gta.free_source("SYN_CRAB")
    assert set(gta.get_free_source_params("SYN_CRAB")) == {"Prefactor", "Index"}


def test_free_param_vector_round_trip(fresh):
    gta = fresh
    gta.free_sources(free=False)
    gta.free_source("SYN_CRAB", pars="norm")
    gta.free_norm("isodiff")
    v = gta.get_free_param_vector()
    assert [p["par_name"] for p in gta.get_params(freeonly=True)] == ["Prefactor",
                                                                       "Normalization"]
    np.testing.assert_array_equal(v, [gta.get_norm("SYN_CRAB"), gta.get_norm("isodiff")])
    ll0 = gta.loglike()
    # doubling the Crab's norm: log L changes by the Poisson sum of the model cubes
    n = [c.counts for c in gta.state.components]
    m_all = [np.asarray(c) for c in gta._component_cubes()]
    m_src = [np.asarray(c) for c in gta._component_cubes("SYN_CRAB")]
    want = sum(float(np.sum(np.where(k > 0, k * np.log((a + s) / a), 0) - s))
               for k, a, s in zip(n, m_all, m_src))
    gta.set_free_param_vector(v * np.array([2.0, 1.0]))
    assert gta.get_norm("SYN_CRAB") == pytest.approx(2 * v[0])
    assert gta.loglike() - ll0 == pytest.approx(want, rel=1e-9)
    gta.set_free_param_vector(v)
    assert gta.loglike() == ll0
    with pytest.raises(ModelError, match="3 values for 2 free parameters"):
        gta.set_free_param_vector([1.0, 1.0, 1.0])


def test_scales_bounds_names_and_maps(fresh):
    gta = fresh
    p0 = gta.model.find("SYN_CRAB").param("Prefactor")
    ll0 = gta.loglike()
    gta.set_norm_scale("SYN_CRAB", p0.scale * 10)
    p1 = gta.model.find("SYN_CRAB").param("Prefactor")
    assert p1.physical == pytest.approx(p0.physical, rel=1e-14)
    assert p1.max * p1.scale == pytest.approx(p0.max * p0.scale)
    assert gta.loglike() == pytest.approx(ll0, rel=1e-12)
    i0 = gta.model.find("SYN_CRAB").param("Index")
    gta.set_parameter_scale("SYN_CRAB", "Index", 2.0 * i0.scale)
    i1 = gta.model.find("SYN_CRAB").param("Index")
    assert (i1.physical, i1.value, i1.scale) == pytest.approx((i0.physical, i0.value / 2,
                                                               2 * i0.scale))
    assert gta.loglike() == pytest.approx(ll0, rel=1e-12)
    gta.set_norm_bounds("SYN_CRAB", [0.0, 1e3])
    assert gta.model.find("SYN_CRAB").param("Prefactor").max == 1e3
    assert gta.get_source_name("synthetic crab") == "SYN_CRAB"
    before = gta.state.components[0].maps["SYN_CRAB"]
    gta.reload_source("SYN_CRAB")
    np.testing.assert_array_equal(gta.state.components[0].maps["SYN_CRAB"], before)
    gta.set_edisp_flag("SYN_CRAB", False)
    assert "SYN_CRAB" in gta.state.components[0].edisp_disable
    gta.set_edisp_flag("SYN_CRAB", True)
    assert "SYN_CRAB" not in gta.state.components[0].edisp_disable
    text = gta.print_model()
    assert "SYN_CRAB" in text and "Prefactor" in text
    loge, dnde = gta.get_source_dnde("isodiff")
    gta.set_source_dnde("isodiff", 2 * dnde)
    np.testing.assert_allclose(gta.get_source_dnde("isodiff")[1], 2 * dnde, rtol=1e-9)
    npred_iso = gta.npred("isodiff")
    assert npred_iso == pytest.approx(2 * fresh_npred(gta, "isodiff", dnde), rel=1e-6)


def fresh_npred(gta, name, dnde):
    g = gta.copy()
    g.set_source_dnde(name, dnde)
    return g.npred(name)


def test_load_xml_add_sources_and_model_maps(fresh, tmp_path):
    gta = fresh
    other = gta.copy()
    other.add_source("extra", {"ra": 85.0, "dec": 23.0, "SpectrumType": "PowerLaw",
                               "Index": 2.0, "Prefactor": 1e-12})
    gta.add_sources_from_roi(["extra"], other.roi)
    assert gta.npred("extra") == pytest.approx(other.npred("extra"), rel=1e-12)
    xml = gta.write_xml(tmp_path / "with_extra.xml")
    gta.delete_source("extra")
    gta.load_xml(xml)
    assert "extra" in gta.model.names
    assert gta.npred("extra") == pytest.approx(other.npred("extra"), rel=1e-9)
    paths = gta.write_model_map("test", name="SYN_CRAB")
    from astropy.io import fits

    cube = fits.getdata(paths["mcube_00"])
    assert cube.sum() == pytest.approx(gta.npred("SYN_CRAB"), rel=1e-5)
    plots = gta.make_plots("roiplots")
    assert set(plots) == {"counts_spectrum", "counts_map"}
    assert all(Path(p).stat().st_size > 1000 for p in plots.values())


def test_get_src_model_reoptimize_refits_the_rest(fresh):
    gta = fresh
    gta.free_sources(free=False)
    held = gta.get_src_model("SYN_CRAB", paramsonly=True)["ts"]
    assert gta.get_src_model("SYN_CRAB", paramsonly=True, reoptimize=True)["ts"] == \
        pytest.approx(held, rel=1e-12)        # nothing else free: the same TS
    gta.free_norm("isodiff")
    refit = gta.get_src_model("SYN_CRAB", paramsonly=True, reoptimize=True)["ts"]
    # independent: fit the null hypothesis by hand
    null = gta.copy()
    null.zero_source("SYN_CRAB")
    null.fit(optimizer="MINUIT")
    assert refit == pytest.approx(2 * (gta.loglike() - null.loglike()), abs=0.05)
    assert refit < held                        # the isotropic norm absorbs some counts


# -------------------------------------------------------------------- simulation --------
def _counts(gta):
    return [c.counts.copy() for c in gta.state.components]


def test_simulate_roi_is_reproducible_and_restores_the_data(fresh):
    gta = fresh
    data = _counts(gta)
    rec = gta.simulate_roi(seed=1234)
    assert rec["seed"] == 1234 and gta.state.simulation[-1]["seed"] == 1234
    a = _counts(gta)
    gta.simulate_roi(seed=1234)
    b = _counts(gta)
    gta.simulate_roi(seed=1235)
    c = _counts(gta)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    # the draw is numpy's Poisson on a child SeedSequence per component
    model = gta._component_cubes()
    ss = np.random.SeedSequence(1234).spawn(len(model))
    for x, m, s in zip(a, model, ss):
        np.testing.assert_array_equal(x, np.random.default_rng(s).poisson(m))
    gta.simulate_roi(randomize=False)
    for x, m in zip(_counts(gta), gta._component_cubes()):
        np.testing.assert_array_equal(x, m)
    gta.simulate_roi(restore=True)
    assert all(np.array_equal(x, y) for x, y in zip(_counts(gta), data))
    assert gta.state.data_counts is None and gta.state.simulation == ()
    rng = np.random.default_rng(7)
    rec = gta.simulate_roi(rng=rng)
    assert rec["seed"] == int(np.random.default_rng(7).integers(0, 2 ** 63 - 1))


def test_each_component_draws_from_its_own_child_seed(gta):
    """Two identical components: each draw comes from the child SeedSequence of its index
    (so a component's counts do not depend on the others or on who computes them)."""
    from fermixr.likelihood.roi import AnalysisState

    c = gta.state.components[0]
    two = Analysis.from_state(AnalysisState([c, c], gta.model, roi_center=(83.63, 22.01)))
    rec = two.simulate_roi(seed=2024)
    m = np.asarray(gta._component_cubes()[0])
    kids = np.random.SeedSequence(2024).spawn(2)
    got = [k.counts for k in two.state.components]
    for i in range(2):
        np.testing.assert_array_equal(got[i], np.random.default_rng(kids[i]).poisson(m))
    assert not np.array_equal(got[0], got[1])
    assert rec["seed"] == 2024
    one = Analysis.from_state(AnalysisState([c], gta.model, roi_center=(83.63, 22.01)))
    one.simulate_roi(seed=2024)
    np.testing.assert_array_equal(one.state.components[0].counts, got[0])
    with pytest.raises(ModelError, match="seed: got -1"):
        two.simulate_roi(seed=-1)


def test_simulated_counts_average_to_the_model(fresh):
    gta = fresh
    model = np.concatenate([m.ravel() for m in gta._component_cubes()])
    n = 200
    total = np.zeros_like(model)
    for seed in range(n):
        gta.simulate_roi(seed=seed)
        total += np.concatenate([c.counts.ravel() for c in gta.state.components])
    gta.simulate_roi(restore=True)
    # the sum over the whole cube: mean within 3 sigma of the model's expectation
    mean = total.sum() / n
    assert abs(mean - model.sum()) < 3 * np.sqrt(model.sum() / n)
    # per energy bin, chi2 of the means against the model
    nb = gta.state.components[0].counts.shape[0]
    per_bin = total.reshape(nb, -1).sum(axis=1) / n
    exp = model.reshape(nb, -1).sum(axis=1)
    chi2 = float(np.sum((per_bin - exp) ** 2 / (exp / n)))
    assert chi2 < nb + 5 * np.sqrt(2 * nb)


def test_simulate_source_adds_its_npred(fresh):
    gta = fresh
    data = _counts(gta)
    src = {"ra": 84.5, "dec": 21.0, "SpectrumType": "PowerLaw", "Index": 2.0,
           "Prefactor": 1e-10}
    rec = gta.simulate_source(src, seed=99)
    assert "mcsource" not in gta.model.names
    added = sum(float((x - y).sum()) for x, y in zip(_counts(gta), data))
    assert added == rec["counts"]
    assert rec["npred"] > 80
    assert abs(added - rec["npred"]) < 4 * np.sqrt(rec["npred"])
    probe = gta.copy()
    probe.simulate_roi(restore=True)
    probe.add_source("probe", src)
    assert probe.npred("probe") == pytest.approx(rec["npred"], rel=1e-12)
    gta.simulate_roi(restore=True)
    assert all(np.array_equal(x, y) for x, y in zip(_counts(gta), data))


# ------------------------------------------------------------- the manual's quickstart ---
QUICKSTART = """
data:
  evfile : {d}/ft1.fits.gz
  scfile : {d}/ft2.fits.gz
  ltcube : {d}/ltcube.fits.gz
  caldb  : {caldb}

binning:
  roiwidth   : 10.0
  binsz      : 0.2
  binsperdec : 8
  coordsys   : GAL
  proj       : CAR

selection :
  emin : 200
  emax : 20000
  zmax    : 90
  evclass : 128
  evtype  : 3
  target : 'Crab'

gtlike:
  edisp : False
  irfs : 'P8R2_SOURCE_V6'

ltcube:
  zmax : 180

model:
  src_roiwidth : 15.0
  isodiff : {d}/iso_P8R2_SOURCE_V6_v06.txt
  catalogs : ['4FGL-DR4']

fileio:
  outdir : {out}
"""


@pytest.mark.slow
@pytest.mark.shared_data
def test_manual_quickstart_runs_unchanged(crab_day, caldb_dir, tmp_path, monkeypatch):
    cat = crab_day.parent / "catalogs"
    if not (cat / "gll_psc_v35.fit.gz").exists():
        pytest.skip(f"4FGL-DR4 not in {cat}")
    monkeypatch.setenv("FERMIXR_CATALOG_DIR", str(cat))
    config = tmp_path / "config.yaml"
    config.write_text(QUICKSTART.format(d=crab_day, caldb=caldb_dir, out=tmp_path / "out"))

    # --- the manual's lines, unchanged ---
    gta = GTAnalysis(str(config), logging={"verbosity": 3})
    gta.setup()
    gta.optimize()
    gta.print_roi()
    gta.free_sources(distance=3.0, pars="norm")
    gta.free_source("isodiff")
    gta.fit()
    gta.write_roi("fit0")
    src = gta.roi["Crab"]
    print(src)
    print(src["ts"], src["flux"], src["param_values"])
    # --- checks ---
    # 4FGL-DR4 models the Crab as three components, one of them a RadialGaussian
    names = {"4FGL J0534.5+2200", "4FGL J0534.5+2201s", "4FGL J0534.5+2201i"}
    assert names <= set(gta.model.names)
    assert gta.model.find("4FGL J0534.5+2201i").spatial_model == "RadialGaussian"
    assert src.name in names
    assert src["ts"] == gta.get_src_model(src.name, paramsonly=True)["ts"]
    # S 147, a SpatialMap template 6 deg away: outside the distance cut, with a TS
    s147 = gta.roi["S 147"]
    assert s147.name == "4FGL J0540.3+2756e" and s147.extended
    assert s147["offset"] == pytest.approx(6.07, abs=0.01) and np.isfinite(s147["ts"])
    assert s147.name not in {p["src_name"] for p in gta.get_params(freeonly=True)}
    pulsar = gta.roi["PSR J0534+2200"]
    assert pulsar.name == "4FGL J0534.5+2200" and pulsar["ts"] > 100
    assert (tmp_path / "out" / "fit0.fits").exists()
