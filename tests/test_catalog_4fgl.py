"""4FGL-DR4 as the LAT team publishes it (../shared/data/catalogs: gll_psc_v35.fit.gz and
the 14-year extended-source archive): the file is found by its name ('4FGL-DR4', and
'4FGL' with a warning when only DR4 is present), read as DR4, its extended sources get
the catalog's shapes (IC 443: Model_SemiMajor 0.27 deg is the 68% radius, sigma 0.179
as in its XML), templates resolve through the archive, and selection.target resolves a
name or an association to a position."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from fermixr.errors import InputFileError, ModelError
from fermixr.io.catalog import resolve_catalog
from fermixr.model.catalog import find_target, open_catalog


@pytest.fixture(scope="module")
def catdir(shared_data):
    d = shared_data / "catalogs"
    if not (d / "gll_psc_v35.fit.gz").is_file():
        pytest.skip(f"4FGL-DR4 not in {d}")
    return d


@pytest.fixture(scope="module")
def dr4(catdir):
    return open_catalog(catdir / "gll_psc_v35.fit.gz")


def _near(cat, center, radius, extdir=None):
    return list(cat.to_sky_model(cat.select(center, src_radius=radius), extdir=extdir,
                                 center=center))


def test_dr4_is_found_by_name_and_read_as_dr4(catdir, dr4, monkeypatch):
    for var in ("FERMIPY_DATA_DIR", "FERMI_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FERMIXR_CATALOG_DIR", str(catdir))
    assert resolve_catalog("4FGL-DR4") == catdir / "gll_psc_v35.fit.gz"
    with pytest.warns(UserWarning, match=r"catalog '4FGL' \(DR1 in Fermipy.*not found; "
                                         r"using 4FGL-DR4"):
        assert resolve_catalog("4FGL") == catdir / "gll_psc_v35.fit.gz"
    with pytest.raises(InputFileError, match=r"catalog '4FGL-DR3': no file matching"):
        resolve_catalog("4FGL-DR3")
    assert len(dr4) == 7195 and dr4.family == "4FGL-DR4"


def test_the_crab_is_three_sources(dr4, catdir):
    srcs = {s.name: s for s in _near(dr4, (83.633, 22.015), 0.2,
                                      catdir / "Extended_14years")}
    assert set(srcs) == {"4FGL J0534.5+2200", "4FGL J0534.5+2201i", "4FGL J0534.5+2201s"}
    assert srcs["4FGL J0534.5+2200"].spectrum == "PLSuperExpCutoff4"
    assert srcs["4FGL J0534.5+2201s"].spectrum == "LogParabola"
    assert srcs["4FGL J0534.5+2201i"].spectrum == "LogParabola"
    assert srcs["4FGL J0534.5+2201i"].spatial_model == "RadialGaussian"
    assert srcs["4FGL J0534.5+2201s"].spatial_model == "PointSource"


def test_extended_shapes_and_templates(dr4, catdir):
    ext = catdir / "Extended_14years"
    (ic443,) = _near(dr4, (94.31, 22.58), 0.05, ext)
    assert ic443.name == "4FGL J0617.2+2234e" and ic443.spatial_model == "RadialGaussian"
    sigma = {p.name: p.physical for p in ic443.spatial}["Sigma"]
    assert sigma == pytest.approx(0.27 / 1.50959, rel=1e-3)       # 0.179, as its XML
    (vela_x,) = _near(dr4, (128.6, -45.7), 0.05, ext)
    assert vela_x.spatial_model == "SpatialMap"
    assert vela_x.spatial_file == str(ext / "Templates" / "VelaX_radio.fits")
    w44 = [s for s in _near(dr4, (283.99, 1.355), 0.05, ext) if s.name.endswith("e")]
    assert [s.spatial_file for s in w44] == [str(ext / "Templates" / "W44.fits")]


def test_a_missing_template_is_named_with_where_it_was_looked_for(catdir, tmp_path,
                                                                  monkeypatch):
    monkeypatch.delenv("LATEXTDIR", raising=False)
    monkeypatch.delenv("FERMIPY_DATA_DIR", raising=False)
    lone = tmp_path / "gll_psc_v35.fit.gz"            # the catalog without its archive
    shutil.copy(catdir / "gll_psc_v35.fit.gz", lone)
    cat = open_catalog(lone)
    with pytest.raises(Exception, match=r"VelaX_radio.fits.*" + str(tmp_path)):
        _near(cat, (128.6, -45.7), 0.05, tmp_path / "noext")


@pytest.mark.parametrize("query, name, column", [
    # the nebula: i (Signif_Avg NaN, a fixed template) and s (14.0): s
    ("Crab", "4FGL J0534.5+2201s", "ASSOC_TEV"),
    ("crab nebula", "4FGL J0534.5+2201s", "ASSOC1"),
    ("4FGL J0534.5+2200", "4FGL J0534.5+2200", "Source_Name"),
    ("J0534.5+2200", "4FGL J0534.5+2200", "Source_Name"),
    ("PSR J0534+2200", "4FGL J0534.5+2200", "ASSOC1"),
    ("IC 443", "4FGL J0617.2+2234e", "Extended_Source_Name"),
    ("mkn421", "4FGL J1104.4+3812", "ASSOC1"),
])
def test_target_names_and_associations(catdir, query, name, column):
    m = find_target(query, [catdir / "gll_psc_v35.fit.gz"])
    assert (m.name, m.column) == (name, column)
    cat = open_catalog(catdir / "gll_psc_v35.fit.gz")
    i = cat.names.index(name)
    assert (m.ra, m.dec) == (pytest.approx(cat.ra[i]), pytest.approx(cat.dec[i]))


def test_target_errors_are_one_line_with_a_hint(catdir):
    with pytest.raises(ModelError, match=r"^selection.target 'Crabb': no source of "
                                         r"gll_psc_v35.fit.gz is named or associated with it; "
                                         r"closest names: 'Crab'"):
        find_target("Crabb", [catdir / "gll_psc_v35.fit.gz"])
    with pytest.raises(ModelError, match=r"needs a catalog; give model.catalogs"):
        find_target("Crab", [])


def test_a_recipe_centred_by_target(catdir, tmp_path):
    from fermixr.engine.recipe import load_recipe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = load_recipe({"selection": {"target": "3C 454.3"},
                         "model": {"catalogs": [str(catdir / "gll_psc_v35.fit.gz")]},
                         "fileio": {"outdir": str(tmp_path)}})
    s = r.config["selection"]
    assert (s["ra"], s["dec"]) == pytest.approx((343.4963, 16.1506), abs=1e-3)
    assert np.isfinite([s["glon"], s["glat"]]).all()


def test_latextdir_finds_the_templates(catdir, tmp_path, monkeypatch):
    """The archive's own variable: $LATEXTDIR stands for model.extdir, and the archive's
    '$LATEXTDIR/Templates/...' file names resolve through it."""
    from fermixr.io.catalog import find_extended_template

    monkeypatch.delenv("FERMIPY_DATA_DIR", raising=False)
    lone = tmp_path / "gll_psc_v35.fit.gz"
    shutil.copy(catdir / "gll_psc_v35.fit.gz", lone)
    monkeypatch.setenv("LATEXTDIR", str(catdir / "Extended_14years"))
    (vela_x,) = _near(open_catalog(lone), (128.6, -45.7), 0.05)
    assert vela_x.spatial_file == str(catdir / "Extended_14years" / "Templates" /
                                      "VelaX_radio.fits")
    assert find_extended_template("$LATEXTDIR/Templates/W44.fits", "4FGL-DR4", lone) == \
        catdir / "Extended_14years" / "Templates" / "W44.fits"
    monkeypatch.delenv("LATEXTDIR")
    assert find_extended_template("$LATEXTDIR/Templates/W44.fits", "4FGL-DR4", lone,
                                  extdir=catdir / "Extended_14years") == \
        catdir / "Extended_14years" / "Templates" / "W44.fits"
