"""find_sources (fermixr.estimators.find_sources) against known truth: two sources injected
at b +- 2 deg of the ROI centre (Prefactor 1e-12 at 1 GeV, index 2, as Fermipy's test) on
the example ROI with its exposure scaled 3000-fold (one synthetic day holds ~0.1 counts of
such a source) are each found within 1.5 x r99 of their true position with a flux within 3
sigma of the true one, on WCS and on HEALPix; source-free simulations give no source above
5 sigma; Fermipy's names; the step, the files and the Analysis method; bad input gives one
clear error and writes nothing."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

import fermixr.estimators as E
from fermixr.conventions import validate_product
from fermixr.errors import EstimatorError
from fermixr.estimators import edits
from fermixr.estimators.find_sources import source_name
from fermixr.geom.frames import angular_separation, fermipy_cel_to_gal, fermipy_gal_to_cel

from test_estimators_conformance import _doc

EXPSCALE = 3000.0


def _setup(roi_setup, mode, root):
    g = roi_setup(mode, root)
    st = g.state
    st = st.replace(components=tuple(c.replace(expscale=EXPSCALE) for c in st.components))
    g.state = st
    return g


@pytest.fixture(scope="module")
def gtas(tmp_path_factory, roi_setup):
    root = tmp_path_factory.mktemp("find_sources")
    cache = {}

    def get(mode):
        if mode not in cache:
            cache[mode] = _setup(roi_setup, mode, root)
        return cache[mode]

    return get


def _injected(st, seed):
    """Counts simulated with two sources at b +- 2 deg of the ROI centre; the model
    without them, and their truth (name, ra, dec, flux over the analysis range)."""
    l0, b0 = fermipy_cel_to_gal(*st.roi_center)
    inj, truth = st, []
    for i, db in enumerate((2.0, -2.0)):
        ra, dec = fermipy_gal_to_cel(l0, b0 + db)
        inj, src = edits.add_source(inj, f"INJ{i}", {
            "ra": ra, "dec": dec, "SpectrumType": "PowerLaw", "Index": 2.0,
            "Prefactor": 1e-12, "Scale": 1000.0}, free=False)
        emin, emax = st.energy_range
        flux = float(st.spectral(src).flux(emin, emax, src.spectral_values()))
        truth.append((ra, dec, flux))
    sim = edits.generate_model(inj, seed=seed)[0]
    for i in range(2):
        sim = edits.delete_source(sim, f"INJ{i}")[0]
    return sim, truth


@pytest.mark.parametrize("mode", ["wcs_no_edisp", "healpix"])
def test_two_injected_sources_are_found(gtas, mode):
    st = gtas(mode).state
    sim, truth = _injected(st, seed=42)
    res = E.run("find_sources", sim)
    ds = res.dataset
    validate_product(ds, "find_sources")
    assert ds.attrs["nsources"] == 2, ds["peak_sqrt_ts"].values
    assert res.state is not None
    for ra, dec, flux in truth:
        d = angular_separation(ds["ra"].values, ds["dec"].values, ra, dec)
        j = int(np.argmin(d))
        name = str(ds["source"].values[j])
        loc = E.run("localize", res.state, name, update=False).dataset.attrs
        dist = float(angular_separation(np.array([loc["ra"]]), np.array([loc["dec"]]),
                                        ra, dec)[0])
        f, fe = float(ds["flux"].values[j]), float(ds["flux_err"].values[j])
        print(f"{mode} {name}: {d[j]:.3f} deg from the truth as found, localised "
              f"{dist:.3f} deg (r99 {loc['pos_r99']:.3f}); flux {f:.3g} +- {fe:.2g}, "
              f"true {flux:.3g}; TS {float(ds['ts'].values[j]):.1f}")
        assert d[j] <= 1.5 * loc["pos_r99"]
        assert abs(f - flux) <= 3 * fe
        assert name.startswith("PS J")
        # the new source is fixed again in the proposed model, its norm fitted
        src = res.state.model.find(name)
        assert not any(p.free for p in src.spectral)


def _null_max_sqrt_ts(st, seeds):
    bkg = st
    for n in ("SYN_CRAB", "SYN_HARD"):
        bkg = edits.delete_source(bkg, n)[0]
    found, worst = 0, 0.0
    for s in seeds:
        sim = edits.generate_model(bkg, seed=s)[0]
        ds = E.run("find_sources", sim, max_iter=1).dataset
        found += int(ds.attrs["nsources"])
        worst = max(worst, float(np.nanmax(ds["map_sqrt_ts"].values)))
    return found, worst


def test_no_source_in_20_source_free_simulations(gtas):
    found, worst = _null_max_sqrt_ts(gtas("wcs_no_edisp").state, range(900, 920))
    print(f"source-free: {found} sources, highest sqrt(TS) {worst:.2f}")
    assert found == 0


@pytest.mark.slow
def test_no_source_above_5_sigma_in_100_source_free_simulations(gtas):
    found, worst = _null_max_sqrt_ts(gtas("wcs_no_edisp").state, range(1000, 1100))
    print(f"source-free: {found} sources, highest sqrt(TS) {worst:.2f}")
    assert found == 0 and worst < 5.0


@pytest.mark.parametrize("ra,dec,name", [
    (83.6331, 22.0145, "PS J0534.5+2200"),
    (0.0, -0.5, "PS J0000.0-0030"),
    (359.999, 89.99, "PS J2359.9+8959"),
    (266.4168, -29.0078, "PS J1745.6-2900"),
])
def test_fermipys_source_names(ra, dec, name):
    """'PS J%02.f%04.1f%+03.f%02.f' of (RA h, RA min floored to 0.1, Dec deg, Dec arcmin
    floored): the Crab pulsar is 05h34m31.9s +22d00m52s."""
    assert source_name(ra, dec) == name


def test_analysis_find_sources_adds_them_and_writes_the_peaks(gtas, tmp_path):
    from astropy.io import fits

    g = gtas("wcs_no_edisp").copy()
    g.outdir = tmp_path
    sim, truth = _injected(g.state, seed=42)
    g.state = sim
    n0 = len(g.model)
    out = g.find_sources(prefix="fs", make_plots=True)
    assert len(out["sources"]) == 2 and len(out["peaks"]) >= 2
    assert len(g.model) == n0 + 2
    assert {s["name"] for s in out["sources"]} <= {s.name for s in g.model}
    assert all(s["ts"] > 25 for s in out["sources"])
    with fits.open(tmp_path / "fs_sourcefind.fits") as h:
        assert [x.name for x in h] == ["PRIMARY", "PEAKS", "SOURCES"]
        assert list(h["SOURCES"].data["NAME"]) == [s["name"] for s in out["sources"]]
    assert (tmp_path / "fs_sourcefind.npy").is_file()
    assert (tmp_path / "fs_sourcefind_sqrt_ts.png").stat().st_size > 1000


@pytest.mark.parametrize("kwargs,match", [
    ({"tsmap_fitter": "tscube"}, r"find_sources: tsmap_fitter: got 'tscube'; only 'tsmap'"),
    ({"sqrt_ts_threshold": -1.0}, r"find_sources: sqrt_ts_threshold: got -1.0"),
    ({"max_iter": 0}, r"find_sources: max_iter: got 0; expected an integer >= 1"),
    ({"model": "PointSource"}, r"find_sources: model: got 'PointSource'"),
    ({"tsmap": {"bogus": 1}}, r"find_sources: tsmap: unknown option\(s\) bogus"),
    ({"bogus": 1}, r"find_sources: unknown option 'bogus'"),
])
def test_bad_input_one_clear_error_nothing_written(gtas, tmp_path, kwargs, match):
    g = gtas("wcs_no_edisp").copy()
    g.outdir = tmp_path
    st = g.state
    with pytest.raises(EstimatorError, match=match) as ei:
        g.find_sources(**kwargs)
    assert isinstance(ei.value, ValueError) and "\n" not in str(ei.value)
    assert g.state is st
    assert not list(tmp_path.iterdir())


def test_the_recipe_step_adds_the_sources_and_is_cached(tmp_path):
    import fermixr
    from fermixr.engine.run import run_recipe

    doc = _doc("wcs_no_edisp", tmp_path)
    # a bright source in the data that the model lacks: delete SYN_HARD from the model
    doc["steps"] = ["setup", {"delete_source": {"name": "SYN_HARD"}},
                    {"find_sources": {"sqrt_ts_threshold": 3.0, "max_iter": 2}},
                    {"write_roi": {"outfile": "after"}}]
    outdir = tmp_path / "run"
    run_recipe(copy.deepcopy(doc), outdir=outdir, verbose=False)
    rec = json.loads((outdir / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["applied", "computed", "computed"]
    ds = fermixr.open_run(outdir)["find_sources"]
    validate_product(ds)
    assert (outdir / "sourcefind.fits").is_file()
    roi = np.load(outdir / "after.npy", allow_pickle=True).item()
    names = {s["name"] for s in roi["roi"]["model"]["sources"]}
    assert set(str(n) for n in ds["source"].values) <= names
    run_recipe(copy.deepcopy(doc), outdir=outdir, verbose=False)
    rec = json.loads((outdir / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["applied", "cached", "cached"]
