"""The binned likelihood fit of the real LAT day against the Science Tools (issue: binned
likelihood, fitting and the Analysis API)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fermixr.api import Analysis

pytestmark = pytest.mark.shared_data


def _config(crab_day, caldb_dir, outdir, **sections):
    cfg = {
        "data": {"evfile": str(crab_day / "ft1.fits.gz"), "scfile": str(crab_day / "ft2.fits.gz"),
                 "caldb": str(caldb_dir), "ltcube": str(crab_day / "ltcube.fits.gz")},
        "binning": {"coordsys": "GAL", "proj": "CAR", "npix": 100, "binsz": 0.2, "binsperdec": 10},
        "selection": {"emin": 200, "emax": 20000, "zmax": 90, "evclass": 128, "evtype": 3,
                      "ra": 83.6331, "dec": 22.0145},
        # the Science Tools' products were made without energy dispersion
        "gtlike": {"irfs": "P8R2_SOURCE_V6", "edisp": False,
                   "srcmap": str(crab_day / "srcmap.fits.gz")},
        "ltcube": {"zmax": 180},
        "model": {"catalogs": [str(crab_day / "source_model.xml")]},
        "fileio": {"outdir": str(outdir)},
    }
    for k, v in sections.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def _free(gta):
    gta.free_source("Crab", pars=["Integral", "Index"])
    gta.free_norm("Extragal_diffuse")
    gta.free_norm("Galactic_diffuse")


@pytest.fixture(scope="module")
def fitted(crab_day, caldb_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("crabfit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gta = Analysis(_config(crab_day, caldb_dir, out)).setup()
    _free(gta)
    start = gta.model
    fast = gta.fit(optimizer="NEWTON")
    fast_model = gta.model
    gta.model = start
    mn = gta.fit(optimizer="MINUIT", analytic_hessian=False)   # HESSE by finite differences
    gta.model = fast_model
    return gta, fast, mn


def test_fit_converges_and_errors_agree_with_hesse(fitted):
    gta, fast, mn = fitted
    assert fast["fit_quality"] == 3 and mn["fit_quality"] == 3
    assert fast["loglike"] == pytest.approx(mn["loglike"], abs=1e-2)
    ts = gta.get_src_model("Crab")["ts"]
    print("\nparameter           value        error(NEWTON)  error(HESSE)")
    for n, v, e1, e2 in zip(fast["par_names"], fast["values"], fast["errors"], mn["errors"]):
        print(f"{n:<18}{v:12.5g}{e1:14.5g}{e2:14.5g}")
    print(f"-log L = {-fast['loglike']:.3f}; TS(Crab) = {ts:.1f}")
    np.testing.assert_allclose(fast["errors"], mn["errors"], rtol=0.05)
    np.testing.assert_allclose(fast["values"], mn["values"], rtol=0.05)
    assert ts > 100


def test_model_counts_match_gtmodel(fitted, crab_day):
    from astropy.io import fits

    gta, *_ = fitted
    model = gta.model_counts_map().sum("energy").values
    ref = fits.getdata(crab_day / "modmap.fits.gz").astype(float)
    total = abs(model.sum() / ref.sum() - 1)
    sel = ref > 1
    rel = np.abs(model[sel] / ref[sel] - 1)
    print(f"\nmodel counts {model.sum():.2f} vs gtmodel {ref.sum():.2f} (total {total:.2e}); "
          f"pixels with > 1 count: median {np.median(rel):.2e}, worst {rel.max():.2e}")
    assert total < 0.03 and rel.max() < 0.05


def test_write_load_roi_restores_every_parameter(fitted, tmp_path):
    import xarray as xr
    from astropy.table import Table

    gta, *_ = fitted
    paths = gta.write_roi(tmp_path / "fit_roi")
    assert {"npy", "fits", "xml_00", "yaml", "zarr"} <= set(paths)
    doc = np.load(paths["npy"], allow_pickle=True).item()
    assert set(doc) == {"roi", "sources", "config", "version"}
    t = Table.read(paths["fits"])
    for col in ("Source_Name", "ts", "npred", "flux", "flux_err", "eflux", "flux1000",
                "param_names", "param_values", "param_errors", "ra", "dec", "glon", "glat"):
        assert col in t.colnames
    assert "CONFIG" in t.meta
    df = xr.open_zarr(paths["zarr"]).to_dataframe()
    assert list(df.index) == gta.model.names
    fresh = Analysis.create(paths["npy"])
    assert fresh.model == gta.model          # every parameter, bit for bit
    assert fresh.loglike() == gta.loglike()
    other = Analysis.create(paths["npy"])
    other.set_norm("Crab", 1.0)
    assert other.model != gta.model
    other.load_roi(paths["npy"])
    assert other.model == gta.model


def test_front_back_joint_likelihood_is_the_sum(crab_day, caldb_dir, tmp_path):
    model = {"sources": [{"name": "Crab", "ra": 83.6331, "dec": 22.0145,
                          "SpectrumType": "PowerLaw", "Index": 2.3, "Prefactor": 3e-10}],
             "isodiff": [{"name": "iso", "file": str(crab_day / "iso_P8R2_SOURCE_V6_v06.txt")}],
             "catalogs": []}
    common = dict(model=model, gtlike={"srcmap": None}, binning={"npix": 50, "binsz": 0.4})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = Analysis(_config(crab_day, caldb_dir, tmp_path / "joint",
                                 components=[{"selection": {"evtype": 1}},
                                             {"selection": {"evtype": 2}}], **common)).setup()
        front = Analysis(_config(crab_day, caldb_dir, tmp_path / "front",
                                 selection={"evtype": 1}, **common)).setup()
        back = Analysis(_config(crab_day, caldb_dir, tmp_path / "back",
                                selection={"evtype": 2}, **common)).setup()
    assert joint.loglike() == pytest.approx(front.loglike() + back.loglike(), rel=1e-12)
    joint.free_source("Crab", pars="norm")
    joint.free_norm("iso")
    res = joint.fit(optimizer="NEWTON")
    assert res["fit_quality"] == 3
    front.model = back.model = joint.model
    assert res["loglike"] == pytest.approx(front.loglike() + back.loglike(), rel=1e-12)
    paths = joint.write_roi(tmp_path / "joint_roi", make_plots=True)
    assert {"xml_00", "xml_01", "counts_spectrum_00", "counts_spectrum_01", "counts_map_00",
            "counts_map_01"} <= set(paths)
    assert all(paths[k].stat().st_size > 10_000 for k in paths if k.startswith("counts_"))


def test_srcmap_file_without_the_dispersion_bins_says_how_to_proceed(crab_day, caldb_dir,
                                                                     tmp_path):
    from fermixr.errors import GeometryError

    cfg = _config(crab_day, caldb_dir, tmp_path, gtlike={"edisp": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(GeometryError, match=r"200\.\.20000 MeV in 21 planes, the analysis "
                                                r"has 158\.866\.\.25178\.5 MeV in 23; .*"
                                                r"gtlike\.edisp_bins: 0"):
            Analysis(cfg).setup()


def test_a_cached_fit_follows_every_option_and_file_it_reads(crab_day, caldb_dir, tmp_path):
    """Issue acceptance on the Crab day: steps [setup, free_source Crab, fit] run, then the
    same recipe with gtlike.expscale 2 recomputes the fit (its values change), and so does
    the isotropic table rewritten x3 with its size and mtime kept."""
    import json
    import os
    import shutil

    from fermixr import open_run
    from fermixr.engine.run import run_recipe

    for name in ("source_model.xml", "iso_P8R2_SOURCE_V6_v06.txt"):
        shutil.copy(crab_day / name, tmp_path / name)
    iso = tmp_path / "iso_P8R2_SOURCE_V6_v06.txt"
    rows = [ln.split() for ln in iso.read_text().splitlines() if ln.strip()]

    def table(k):          # "%.5e" keeps every row's width whatever the factor
        return "\n".join(f"{e} {k * float(f):.5e} {k * float(s):.5e}" for e, f, s in rows) + "\n"

    iso.write_text(table(1))
    cfg = _config(crab_day, caldb_dir, tmp_path / "run")
    cfg["model"] = {"catalogs": [str(tmp_path / "source_model.xml")]}
    cfg["steps"] = ["setup", {"free_source": {"name": "Crab", "pars": "norm"}},
                    {"free_norm": "Extragal_diffuse"}, "fit"]

    def fit(recipe):
        run_recipe(recipe, outdir=tmp_path / "run", verbose=False)
        rec = json.loads((tmp_path / "run" / "run.json").read_text())["analysis_steps"]
        f = open_run(tmp_path / "run")["fit"].load()
        return rec[-1]["status"], dict(zip(f["param"].values, f["value"].values))

    status, v0 = fit(cfg)
    assert status == "computed"
    assert fit(cfg)[0] == "cached"
    status, v1 = fit(dict(cfg, gtlike={**cfg["gtlike"], "expscale": 2.0}))
    assert status == "computed"
    assert v1["Crab:Integral"] < 0.6 * v0["Crab:Integral"]
    st = iso.stat()
    iso.write_text(table(3))
    os.utime(iso, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (iso.stat().st_size, iso.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    status, v3 = fit(cfg)
    assert status == "computed"
    assert v3["Extragal_diffuse:Normalization"] == pytest.approx(
        v0["Extragal_diffuse:Normalization"] / 3, rel=0.05)
