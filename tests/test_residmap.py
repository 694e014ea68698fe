"""residmap: the residual significance map of a test source's kernel.

Truth from simulations (seeded): on counts drawn from the model itself the sigma map is
N(0, 1); an excess injected where the model has none is a positive peak at its position.
Also Fermipy's FITS layout, the Analysis method's dictionary, the recipe step and clear
errors on bad input."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

from fermixr.errors import EstimatorError, FermixrError
from fermixr.estimators import edits as E
from fermixr.estimators import run
from fermixr.estimators.residmap import residmap_arrays
from fermixr.geom.frames import angular_separation

from test_estimators_conformance import _doc


def _analysis(tmp_path, mode="wcs_no_edisp", **binning):
    from fermixr import Analysis

    doc = _doc(mode, tmp_path)
    doc["binning"].update(binning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Analysis(doc).setup()


@pytest.fixture(scope="module")
def gta(tmp_path_factory, roi_setup):
    return roi_setup("wcs_no_edisp", tmp_path_factory.mktemp("residmap"))


def _bright(state, factor):
    """The isotropic background ``factor`` times brighter (more counts per kernel)."""
    src = state.model.find("isodiff")
    norm = state.spectral(src).norm_param
    return E.set_norm(state, "isodiff", src.param(norm).value * factor)


def test_null_map_is_standard_normal(tmp_path):
    """Counts drawn from the model: sigma over 60 realisations of an 80 x 80 map above
    3 GeV (a kernel of a few pixels, so ~ 20,000 independent values) has mean 0 and
    standard deviation 1 within 0.02."""
    doc_gta = _analysis(tmp_path, roiwidth=8.0, binsz=0.1)
    st = _bright(doc_gta.state, 1000.0)
    rng = np.random.default_rng(20261206)
    sig = []
    for _ in range(60):
        sim, _ = E.generate_model(st, rng=rng)
        sig.append(residmap_arrays(sim, loge_bounds=[3.5, None])["sigma"])
    sig = np.array(sig)
    assert np.isfinite(sig).all()
    mean, std = float(sig.mean()), float(sig.std())
    print(f"null residmap: mean {mean:.4f} std {std:.4f} over {sig.size} pixels")
    assert abs(mean) < 0.02
    assert abs(std - 1.0) < 0.02


def test_injected_excess_peaks_at_its_position(gta):
    st = _bright(gta.state, 30.0)
    ra, dec = 84.6, 21.4
    with_src, _ = E.add_source(st, "injected", {"ra": ra, "dec": dec, "Index": 2.0,
                                                "Prefactor": 1e-9, "Scale": 1000.0})
    sim, _ = E.generate_model(with_src, seed=3)
    sim = sim.with_model(st.model)                 # the model knows nothing of it
    ds = run("residmap", sim).dataset
    sig = ds["sigma"].values
    k = np.unravel_index(np.nanargmax(sig), sig.shape)
    lon, lat = ds["lon"].values[k], ds["lat"].values[k]
    assert angular_separation(lon, lat, ra, dec) < 0.3          # within about a pixel
    assert sig[k] > 5.0
    assert ds["excess"].values[k] > 0
    # the null of the same realisation without the injected source is not significant
    null = run("residmap", E.generate_model(st, seed=3)[0]).dataset["sigma"].values
    assert np.nanmax(null) < 4.5


def test_weights(gta):
    """use_weights: a constant weight scales data and model and leaves sigma as it is (the
    calibration divides the weights out); weights that vary change sigma; without
    use_weights the weights map is ignored."""
    sim, _ = E.generate_model(gta.state, seed=5)
    half = sim.replace(components=tuple(c.replace(wmap=np.full_like(c.counts, 0.5))
                                        for c in sim.components))
    a = run("residmap", sim).dataset
    b = run("residmap", half, use_weights=True).dataset
    np.testing.assert_allclose(b["sigma"].values, a["sigma"].values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b["data"].values, 0.5 * a["data"].values, rtol=1e-9)
    np.testing.assert_allclose(b["model"].values, 0.5 * a["model"].values, rtol=1e-9)
    c = run("residmap", half).dataset
    np.testing.assert_array_equal(c["data"].values, a["data"].values)
    ramp = sim.replace(components=tuple(
        c.replace(wmap=np.linspace(0.2, 1.0, c.counts.shape[0])[:, None]
                  * np.ones_like(c.counts)) for c in sim.components))
    d = run("residmap", ramp, use_weights=True).dataset
    assert np.nanmax(np.abs(d["sigma"].values - a["sigma"].values)) > 0.05


def test_exclude_and_energy_range(gta):
    """Leaving a source out of the model makes its position an excess; loge_bounds
    narrows the bins used."""
    sim, _ = E.generate_model(gta.state, seed=11)
    a = run("residmap", sim).dataset
    b = run("residmap", sim, exclude=["SYN_CRAB"]).dataset
    crab = sim.model.find("SYN_CRAB").skydir
    k = np.unravel_index(np.argmin(angular_separation(a["lon"].values, a["lat"].values,
                                                      *crab)), a["sigma"].shape)
    assert b["sigma"].values[k] > a["sigma"].values[k] + 3.0
    c = run("residmap", sim, loge_bounds=[3.0, 4.0]).dataset
    # bins whose centres lie in the range (4 bins per decade here)
    assert 2.875 - 1e-6 <= c.attrs["loge_min"] <= 3.0 <= 4.0 <= c.attrs["loge_max"] + 0.125
    assert c.attrs["loge_max"] <= 4.125 + 1e-6
    assert float(c["data"].sum()) != pytest.approx(float(a["data"].sum()))


def test_analysis_method_writes_fermipys_fits(gta, tmp_path):
    from astropy.io import fits

    a = gta.copy()
    a.outdir = tmp_path
    out = a.residmap("test", make_plots=True)
    assert {"sigma", "excess", "data", "model", "name", "file", "src_dict"} <= set(out)
    assert out["file"] == str(tmp_path / "test_residmap.fits")
    assert out["src_dict"]["SpectrumType"] == "PowerLaw" and out["src_dict"]["Index"] == 2.0
    with fits.open(out["file"]) as h:
        assert [x.name for x in h] == ["SIGMA", "EXCESS", "DATA", "MODEL"]
        np.testing.assert_allclose(h[0].data, out["sigma"])
        np.testing.assert_allclose(h["MODEL"].data, out["model"])
        assert h[0].header["CTYPE1"].startswith("RA")
        assert "use_weights" in h[0].header["CONFIG"]
    np.testing.assert_allclose(out["excess"], out["data"] - out["model"])
    assert (tmp_path / "test_residmap.npy").is_file()
    assert (tmp_path / "test_residmap_sigma.png").stat().st_size > 10_000
    assert not list(tmp_path.glob(".*.tmp*"))


def test_healpix_fits_has_the_hdus(tmp_path, roi_setup):
    from astropy.io import fits

    a = roi_setup("healpix", tmp_path)
    a.outdir = tmp_path
    out = a.residmap(write_npy=False)
    with fits.open(out["file"]) as h:
        assert [x.name for x in h] == ["PRIMARY", "SIGMA", "EXCESS", "DATA", "MODEL"]
        assert h["SIGMA"].header["PIXTYPE"] == "HEALPIX"
        np.testing.assert_allclose(h["SIGMA"].data["VALUE"], out["sigma"])


def test_bad_input_gives_one_clear_error(gta, tmp_path):
    a = gta.copy()
    a.outdir = tmp_path
    with pytest.raises(EstimatorError, match="residmap: unknown option.*bogus"):
        a.residmap(bogus=1)
    with pytest.raises(EstimatorError, match="residmap: model 'PowerLaw'; expected a source "
                                             "dictionary"):
        a.residmap(model="PowerLaw")
    with pytest.raises(FermixrError, match="SpectrumType"):
        a.residmap(model={"SpectrumType": "NoSuchSpectrum"})
    with pytest.raises(EstimatorError, match="loge_bounds .* within the analysis range"):
        a.residmap(loge_bounds=[1.0, 2.0])
    with pytest.raises(ValueError, match="NOPE"):
        a.residmap(exclude=["NOPE"])
    assert not list(tmp_path.iterdir())                     # nothing written


def test_recipe_step_writes_and_caches(tmp_path):
    from fermixr.engine.run import run_recipe

    doc = _doc("wcs_no_edisp", tmp_path)
    doc["steps"] = ["setup", {"residmap": {"prefix": "r1"}}]
    doc["residmap"] = {"loge_bounds": [3.0, None]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_recipe(copy.deepcopy(doc), verbose=False)
        out = tmp_path / "wcs_no_edisp"
        f = out / "r1_residmap.fits"
        assert f.is_file()
        first = f.read_bytes()
        f.unlink()                                    # a cached run writes it again
        run_recipe(copy.deepcopy(doc), verbose=False)
        assert f.read_bytes() == first
        from astropy.io import fits

        with fits.open(f) as h:
            assert [x.name for x in h] == ["SIGMA", "EXCESS", "DATA", "MODEL"]
            assert '"loge_bounds": [3.0, null]' in h[0].header["CONFIG"]
