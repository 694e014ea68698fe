"""Fermipy ``model`` section -> SkyModel: diffuse naming and defaults, catalog selection,
merging across catalogs, recipe sources, fixing, ordering and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fermixr.errors import InputFileError, ModelError
from fermixr.model.build import build_sky_model, source_from_dict

from test_catalog import MKN421, pl_row, write_catalog

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "data"
CENTER = (83.6331, 22.0145)


@pytest.fixture
def diffuse_dir(tmp_path, monkeypatch):
    for var in ("FERMI_DIR", "FERMI_DIFFUSE_DIR", "FERMIPY_DATA_DIR", "FERMIXR_CATALOG_DIR"):
        monkeypatch.delenv(var, raising=False)
    d = tmp_path / "diffuse"
    d.mkdir()
    for f in ("gll_iem_v07.fits", "gll_iem_v06.fits.gz", "iso_P8R3_SOURCE_V3_v1.txt",
              "iso_P8R3_SOURCE_V3_PSF0_v1.txt"):
        (d / f).write_text("")
    return d


def _spec(src):
    return {p.name: (p.value, p.scale, p.min, p.max, p.free) for p in src.spectral}


# -- diffuse components ------------------------------------------------------------------
def test_single_diffuse_names_types_and_defaults(diffuse_dir):
    m = build_sky_model({"galdiff": str(diffuse_dir / "gll_iem_v07.fits"),
                         "isodiff": [str(diffuse_dir / "iso_P8R3_SOURCE_V3_v1.txt")]}, CENTER)
    assert m.names == ["isodiff", "galdiff"]          # Fermipy loads isodiff first
    gal, iso = m["galdiff"], m["isodiff"]
    assert gal.spatial_model == "MapCubeFunction" and gal.spectrum == "PowerLaw"
    assert gal.spatial_file == str(diffuse_dir / "gll_iem_v07.fits")
    assert _spec(gal) == {"Prefactor": (1.0, 1.0, 0.1, 10.0, False),
                          "Index": (0.0, -1.0, -1.0, 1.0, False),
                          "Scale": (1000.0, 1.0, 1000.0, 1000.0, False)}
    assert [(p.name, p.value, p.min, p.max) for p in gal.spatial] == \
        [("Normalization", 1.0, 0.0, 10.0)]
    assert iso.spectrum == "FileFunction" and iso.spatial_model == "ConstantValue"
    assert iso.spectrum_file == str(diffuse_dir / "iso_P8R3_SOURCE_V3_v1.txt")
    assert _spec(iso) == {"Normalization": (1.0, 1.0, 0.001, 1000.0, False)}
    # reachable by the template's base name
    assert m.find("gll_iem_v07") is gal
    assert m.find("iso_P8R3_SOURCE_V3_v1") is iso


def test_several_diffuse_components_and_search_dirs(diffuse_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FXR_DIFF", str(diffuse_dir))
    cfg = {"galdiff": ["$FXR_DIFF/gll_iem_v07.fits", "gll_iem_v06.fits.gz"],
           "isodiff": ["iso_P8R3_SOURCE_V3_v1.txt",
                       {"name": "iso_psf0", "file": "iso_P8R3_SOURCE_V3_PSF0_v1.txt",
                        "Normalization": {"value": 1.1, "free": True}}],
           "diffuse_dir": [str(diffuse_dir)]}
    m = build_sky_model(cfg, CENTER, base=tmp_path)
    assert m.names == ["isodiff00", "iso_psf0", "galdiff00", "galdiff01"]
    assert m["galdiff01"].spatial_file == str(diffuse_dir / "gll_iem_v06.fits.gz")
    assert m.find("gll_iem_v06") is m["galdiff01"]
    assert m.find("iso_P8R3_SOURCE_V3_PSF0_v1").name == "iso_psf0"
    # every parameter is fixed but the one the recipe frees
    assert _spec(m["iso_psf0"])["Normalization"] == (1.1, 1.0, 0.001, 1000.0, True)
    assert [(s.name, p.name) for s in m for p in s.spectral + s.spatial if p.free] == \
        [("iso_psf0", "Normalization")]
    # $FERMI_DIFFUSE_DIR and $FERMI_DIR/refdata/fermi/galdiffuse are searched too
    monkeypatch.setenv("FERMI_DIFFUSE_DIR", str(diffuse_dir))
    assert build_sky_model({"galdiff": "gll_iem_v07.fits"}, CENTER)["galdiff"].spatial_file \
        == str(diffuse_dir / "gll_iem_v07.fits")
    monkeypatch.delenv("FERMI_DIFFUSE_DIR")
    fd = tmp_path / "fermi" / "refdata" / "fermi" / "galdiffuse"
    fd.mkdir(parents=True)
    (fd / "gll_iem_v07.fits").write_text("")
    monkeypatch.setenv("FERMI_DIR", str(tmp_path / "fermi"))
    assert build_sky_model({"galdiff": "gll_iem_v07.fits"}, CENTER)["galdiff"].spatial_file \
        == str(fd / "gll_iem_v07.fits")


def test_diffuse_errors(diffuse_dir, tmp_path):
    with pytest.raises(InputFileError, match=r"model.galdiff: diffuse template "
                                             r"'gll_iem_v99.fits' not found in .*diffuse"):
        build_sky_model({"galdiff": "gll_iem_v99.fits", "diffuse_dir": str(diffuse_dir)},
                        CENTER, base=tmp_path)
    (diffuse_dir / "template.dat").write_text("")
    with pytest.raises(ModelError, match=r"model.galdiff: template .*template.dat' is "
                                          r"neither a .txt"):
        build_sky_model({"galdiff": str(diffuse_dir / "template.dat")}, CENTER)
    with pytest.raises(ModelError, match=r"model.isodiff\[1\]: no 'file'"):
        build_sky_model({"isodiff": [str(diffuse_dir / "iso_P8R3_SOURCE_V3_v1.txt"),
                                     {"name": "x"}]}, CENTER)


# -- catalogs: selection, merging ---------------------------------------------------------
def _grid_catalog(path, n=9, step=1.0):
    """Sources along dec at 0, step, 2 step ... from the ROI centre."""
    rows = [pl_row(f"4FGL J{i:04d}", CENTER[0], CENTER[1] + step * i, k=1e-12 * (i + 1))
            for i in range(n)]
    return write_catalog(path, rows)


def test_src_radius_and_roiwidth_counts(tmp_path):
    cat = _grid_catalog(tmp_path / "cat.fits")
    n = lambda **kw: len(build_sky_model({"catalogs": [str(cat)], **kw}, CENTER))  # noqa: E731
    assert n() == 9
    assert n(src_radius=3.5) == 4           # 0, 1, 2, 3 deg
    assert n(src_radius=2.5) == 3
    assert n(src_roiwidth=9.0) == 5         # |offset| < 4.5
    assert n(src_roiwidth=9.0, src_radius=2.5) == 3       # AND, as Fermipy
    assert n(src_radius_roi=3.5) == 4
    m = build_sky_model({"catalogs": [str(cat)], "src_radius": 4.5}, CENTER)
    assert m.names == [f"4FGL J{i:04d}" for i in range(5)]           # sorted by offset
    assert [round(s.meta["offset"], 4) for s in m] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_catalog_name_not_found(tmp_path, monkeypatch):
    for var in ("FERMIPY_DATA_DIR", "FERMI_DIR", "FERMIXR_CATALOG_DIR"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InputFileError, match=r"catalog '4FGL': no file matching "
                                             r"gll_psc_v2\[0-2\].fit or gll_psc_v19.fit "
                                             r"\(or .fits, .gz\) in "):
        build_sky_model({"catalogs": ["4FGL"]}, CENTER, base=tmp_path)


def test_last_catalog_wins_and_xmatch(tmp_path):
    old = write_catalog(tmp_path / "gll_psc_v16.fit", [
        dict(Source_Name="3FGL J1104.4+3812", RAJ2000=166.11, DEJ2000=38.21,
             SpectrumType="PowerLaw", Pivot_Energy=1000.0, Flux_Density=2.5e-11,
             Spectral_Index=1.8, ASSOC1="Mkn 421"),
        dict(Source_Name="3FGL J1100.0+4000", RAJ2000=165.0, DEJ2000=40.0,
             SpectrumType="PowerLaw", Pivot_Energy=1000.0, Flux_Density=1e-12,
             Spectral_Index=2.5)], kind="3FGL")
    new = write_catalog(tmp_path / "gll_psc_v31.fit",
                        [MKN421, pl_row("4FGL J1100.0+4000", 165.0, 40.0)])
    center = (166.11, 38.21)
    m = build_sky_model({"catalogs": [str(old), str(new)]}, center)
    # Mkn 421: matched through ASSOC_FGL = 3FGL name; replaced by the 4FGL model in place
    assert m.names == ["4FGL J1104.4+3812", "3FGL J1100.0+4000", "4FGL J1100.0+4000"]
    mk = m["mkn421"]
    assert mk.spectrum == "LogParabola" and mk.meta["catalog"].endswith("gll_psc_v31.fit")
    assert "3FGL J1104.4+3812" in mk.associations and m.find("3fglj1104.4+3812") is mk
    # no xmatch column: the 4FGL source is a different source (Fermipy matches names only),
    # and its association is then ambiguous
    m2 = build_sky_model({"catalogs": [str(old), str(new)], "assoc_xmatch_columns": []},
                         center)
    assert len(m2) == 4 and m2["4FGL J1104.4+3812"].spectrum == "LogParabola"
    with pytest.raises(ModelError, match=r"'Mkn 421' matches several sources: "
                                          r"3FGL J1104.4\+3812, 4FGL J1104.4\+3812"):
        m2.find("Mkn 421")
    # merge_sources false: the first model stays, the new name becomes an association
    m3 = build_sky_model({"catalogs": [str(old), str(new)], "merge_sources": False}, center)
    mk3 = m3["Mkn 421"]
    assert mk3.name == "3FGL J1104.4+3812" and mk3.spectrum == "PowerLaw"
    assert m3.find("4FGL J1104.4+3812") is mk3
    assert not any(p.free for s in m for p in s.spectral + s.spatial)


def test_ambiguous_merge_is_an_error(tmp_path):
    a = write_catalog(tmp_path / "a.fits", [pl_row("A1", 10.0, 10.0, ASSOC1="Blazar X"),
                                            pl_row("A2", 10.5, 10.0, ASSOC1="Blazar Y")])
    b = write_catalog(tmp_path / "b.fits", [pl_row("Blazar X", 10.0, 10.0, ASSOC1="Blazar Y")])
    with pytest.raises(ModelError, match=r"source 'Blazar X' matches several sources already "
                                          r"in the model \(A1, A2\)"):
        build_sky_model({"catalogs": [str(a), str(b)],
                         "assoc_xmatch_columns": ["ASSOC1"]}, (10.0, 10.0))


def test_xml_catalog_selection(diffuse_dir):
    m = build_sky_model({"catalogs": [str(EXAMPLE / "source_model.xml")], "src_radius": 5.0},
                        CENTER)
    assert m.names == ["SYN_CRAB", "SYN_HARD", "isodiff"]   # SYN_SOFT is 7.1 deg away
    assert not any(p.free for s in m for p in s.spectral + s.spatial)
    assert m["SYN_CRAB"].param("Integral").physical == pytest.approx(6e-6, rel=1e-15)


def test_example_catalog_by_name(diffuse_dir):
    cfg = {"catalogs": ["fermixr_example"], "src_roiwidth": 15.0,
           "isodiff": str(EXAMPLE / "iso_FXR_SYNTH_V1.txt")}
    m = build_sky_model(cfg, CENTER)
    assert m.names == ["SYN_CRAB", "SYN_HARD", "SYN_SOFT", "isodiff"]
    assert m.find("Synthetic Soft").name == "SYN_SOFT"
    assert m.find("iso_FXR_SYNTH_V1") is m["isodiff"]


# -- recipe sources -----------------------------------------------------------------------
def test_recipe_sources(tmp_path):
    cat = write_catalog(tmp_path / "cat.fits", [MKN421])
    cfg = {"catalogs": [str(cat)], "sources": [
        {"name": "Mkn 421", "ra": 166.1138, "dec": 38.2088, "SpectrumType": "PowerLaw",
         "Index": 2.0, "Prefactor": {"value": 2e-11, "free": True}},
        {"name": "newsrc", "glon": 180.0, "glat": 60.0, "SpatialModel": "RadialGaussian",
         "SpatialWidth": 0.3, "SpectrumType": "LogParabola", "alpha": 2.2, "beta": 0.05,
         "Eb": 1000.0},
        {"name": "at_centre", "SpatialModel": "RadialDisk", "Radius": 0.2},
    ]}
    m = build_sky_model(cfg, (166.1, 38.2))
    # Mkn 421 from the recipe replaces the catalog source and keeps its names
    mk = m.find("4FGL J1104.4+3812")
    assert mk.name == "Mkn 421" and mk.spectrum == "PowerLaw"
    assert mk.spectral_values().tolist() == pytest.approx([2e-11, -2.0, 1000.0], rel=1e-15)
    assert mk.param("Prefactor").free and not mk.param("Index").free
    assert "4FGL J1104.4+3812" in mk.associations
    ns = m["newsrc"]
    from astropy.coordinates import SkyCoord
    c = SkyCoord(180.0, 60.0, unit="deg", frame="galactic").icrs
    assert ns.skydir == pytest.approx((c.ra.deg, c.dec.deg), abs=1e-10)
    assert ns.param("Sigma").physical == pytest.approx(0.3 / 1.5095921854516636, rel=1e-5)
    assert ns.param("alpha").physical == 2.2 and not ns.param("alpha").free
    cen = m["at_centre"]
    assert cen.skydir == (166.1, 38.2) and cen.param("Radius").physical == 0.2
    assert [s.name for s in m][:2] == ["at_centre", "Mkn 421"]     # by offset


def test_source_dict_conventions():
    s = source_from_dict({"name": "a", "ra": 1.0, "dec": 2.0, "Index": {"value": 2.5,
                                                                      "scale": -1.0}})
    assert s.param("Index").physical == -2.5
    s = source_from_dict({"name": "b", "radec": "10 20", "SpectrumType": "PowerLaw2",
                          "Integral": 3e-8, "spatial_pars": {"RA": {"value": 11.0}}})
    assert s.skydir == (11.0, 20.0) and s.param("Integral").physical == pytest.approx(3e-8)
    assert s.param("RA").scale == 1.0
    with pytest.warns(UserWarning, match=r"unknown key 'Prefator' ignored"):
        source_from_dict({"name": "c", "ra": 0.0, "dec": 0.0, "Prefator": 1e-12})


def test_recipe_source_errors(tmp_path):
    with pytest.raises(ModelError, match=r"model.sources\[1\]: no 'name'"):
        build_sky_model({"sources": [{"name": "ok"}, {"ra": 1.0, "dec": 2.0}]}, CENTER)
    with pytest.raises(ModelError, match=r"model.sources\[0\] \(x\).SpectrumType: unknown "
                                          r"spectral type 'PowerLow'"):
        build_sky_model({"sources": [{"name": "x", "SpectrumType": "PowerLow"}]}, CENTER)
    with pytest.raises(ModelError, match=r"model.sources\[0\] \(y\).SpatialModel: unknown "
                                          r"spatial model 'Gauss'"):
        build_sky_model({"sources": [{"name": "y", "SpatialModel": "Gauss"}]}, CENTER)
    with pytest.raises(InputFileError, match=r"\(m\).Spatial_Filename: 'nomap.fits' not found"):
        build_sky_model({"sources": [{"name": "m", "SpatialModel": "SpatialMap",
                                      "Spatial_Filename": "nomap.fits"}]}, CENTER, base=tmp_path)
    with pytest.raises(ModelError, match=r"Index.value: got 'soft'; expected a number"):
        build_sky_model({"sources": [{"name": "z", "Index": {"value": "soft"}}]}, CENTER)
    with pytest.raises(ModelError, match=r"roi_center: got 'crab'"):
        build_sky_model({}, "crab")


def test_diffuse_source_dicts_and_limbdiff(diffuse_dir):
    cfg = {"limbdiff": str(diffuse_dir / "iso_P8R3_SOURCE_V3_PSF0_v1.txt"),
           "diffuse": [{"name": "bubbles", "SpatialModel": "MapCubeFunction",
                        "Spatial_Filename": str(diffuse_dir / "gll_iem_v06.fits.gz"),
                        "SpectrumType": "PowerLaw", "Index": 0.1}]}
    m = build_sky_model(cfg, CENTER)
    assert m.names == ["limbdiff", "bubbles"]
    assert m["limbdiff"].spatial_model == "ConstantValue"
    b = m["bubbles"]
    assert b.spatial_model == "MapCubeFunction" and b.param("Index").physical == -0.1


def test_xml_spatial_map_position_from_template(tmp_path):
    from astropy.io import fits

    for name, (lon, lat, frame) in {"near": (84.0, 22.5, "RA---CAR"),
                                    "far": (184.557, -5.784 + 20.0, "GLON-CAR")}.items():
        h = fits.PrimaryHDU(np.zeros((3, 3), np.float32))
        h.header.update(CTYPE1=frame, CTYPE2=frame.replace("RA--", "DEC-").replace("GLON",
                                                                                    "GLAT"),
                        CRVAL1=lon, CRVAL2=lat, CRPIX1=2.0, CRPIX2=2.0, CDELT1=-0.1,
                        CDELT2=0.1)
        h.writeto(tmp_path / f"{name}.fits")
    src = """  <source name="{n}" type="DiffuseSource">
    <spectrum type="PowerLaw"/>
    <spatialModel type="SpatialMap" file="{n}.fits">
      <parameter name="Prefactor" value="1" scale="1"/></spatialModel></source>"""
    (tmp_path / "ext.xml").write_text('<source_library title="x">\n' + src.format(n="near")
                                      + src.format(n="far") + "\n</source_library>\n")
    m = build_sky_model({"catalogs": [str(tmp_path / "ext.xml")], "src_radius": 5.0}, CENTER)
    assert m.names == ["near"]
    from astropy.coordinates import SkyCoord
    ref = SkyCoord(*CENTER, unit="deg").separation(SkyCoord(84.0, 22.5, unit="deg")).deg
    assert m["near"].meta["offset"] == pytest.approx(ref, abs=1e-9)


def test_built_model_through_xml(diffuse_dir, tmp_path):
    from fermixr.model.xml import read_xml, write_xml

    cfg = {"catalogs": ["fermixr_example"], "isodiff": str(EXAMPLE / "iso_FXR_SYNTH_V1.txt"),
           "sources": [{"name": "blob", "ra": 84.0, "dec": 21.0,
                        "SpatialModel": "RadialDisk", "SpatialWidth": 0.5,
                        "Prefactor": {"value": 1e-11, "free": True}}]}
    m = build_sky_model(cfg, CENTER)
    back = read_xml(write_xml(m, tmp_path / "roi_00.xml"))
    assert back.names == m.names
    for a, b in zip(m, back):
        assert (a.spectrum, a.spatial_model, a.spectral, a.spatial, a.spatial_file,
                a.spectrum_file) == (b.spectrum, b.spatial_model, b.spectral, b.spatial,
                                     b.spatial_file, b.spectrum_file)
    assert back["blob"].param("Prefactor").free
    # spatial.DISK_R68 is sqrt(0.68) to 5 decimals (Fermipy: 0.8246211251235321)
    assert back["blob"].param("Radius").physical == pytest.approx(0.5 / 0.8246211251235321,
                                                                  rel=2e-6)
