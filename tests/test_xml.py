"""Science Tools XML models: reading the shared and example files exactly, round trips,
GammaLib spellings, paths and errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fermixr.errors import FileFormatError, InputFileError
from fermixr.model import SkyModel
from fermixr.model.xml import expand_path, parse_xml, read_xml, to_xml_string, write_xml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_XML = ROOT / "examples" / "data" / "source_model.xml"


def _par(src, name):
    return src.param(name)


def _check(p, value, scale, lo, hi, free):
    assert (p.value, p.scale, p.min, p.max, p.free) == (value, scale, lo, hi, free)


@pytest.mark.shared_data
def test_shared_crab_model_values(crab_day):
    m = read_xml(crab_day / "source_model.xml")
    assert m.names == ["Extragal_diffuse", "Galactic_diffuse", "Crab"]
    iso, gal, crab = m.sources

    assert iso.spectrum == "FileFunction" and iso.spatial_model == "ConstantValue"
    assert iso.spectrum_file == str(crab_day / "iso_P8R2_SOURCE_V6_v06.txt")
    assert Path(iso.spectrum_file).is_file()
    _check(_par(iso, "Normalization"), 1.0, 1.0, 0.0, 1000.0, True)
    _check(_par(iso, "Value"), 1.0, 1.0, 0.0, 10.0, False)
    assert iso.meta["xml_spatial_type"] == "DiffuseIsotropic"

    # GammaLib's Constant spectrum (Normalization) is the Science Tools' ConstantValue
    assert gal.spectrum == "ConstantValue" and gal.spatial_model == "MapCubeFunction"
    _check(_par(gal, "Value"), 1.0, 1.0, 0.0, 1000.0, True)
    _check(_par(gal, "Normalization"), 1.0, 1.0, 0.001, 1000.0, False)
    assert gal.spatial_file == str(crab_day / "test_cube.fits")   # not shipped: not required

    # a PowerLaw given by PhotonFlux + limits is the integral power law PowerLaw2
    assert crab.spectrum == "PowerLaw2" and crab.meta["xml_spectrum_type"] == "PowerLaw"
    assert [p.name for p in crab.spectral] == ["Integral", "Index", "LowerLimit", "UpperLimit"]
    _check(_par(crab, "Integral"), 1.0, 1e-7, 1e-7, 1000.0, True)
    _check(_par(crab, "Index"), -2.0, 1.0, -5.0, 5.0, True)
    _check(_par(crab, "LowerLimit"), 100.0, 1.0, 10.0, 1e6, False)
    _check(_par(crab, "UpperLimit"), 500000.0, 1.0, 10.0, 1e6, False)
    assert crab.skydir == (83.6331, 22.0145)
    assert crab.spectral_values().tolist() == [1e-7, -2.0, 100.0, 500000.0]


@pytest.mark.shared_data
def test_shared_crab_model_round_trip(crab_day, tmp_path):
    m = read_xml(crab_day / "source_model.xml")
    out = write_xml(m, tmp_path / "sub" / "model.xml")
    back = read_xml(out)
    assert back == m
    assert read_xml(write_xml(back, tmp_path / "again.xml")) == m
    # files outside the output folder are written as absolute paths
    text = out.read_text()
    assert f'file="{crab_day / "iso_P8R2_SOURCE_V6_v06.txt"}"' in text
    assert 'type="SkyDirFunction"' in text and 'type="ConstantValue"' in text


def test_example_model_values_and_round_trip(tmp_path):
    m = read_xml(EXAMPLE_XML)
    assert m.names == ["isodiff", "SYN_CRAB", "SYN_HARD", "SYN_SOFT"]
    crab = m["syn_crab"]
    _check(_par(crab, "Integral"), 60.0, 1e-7, 1e-5, 1000.0, True)
    _check(_par(crab, "Index"), 2.2, -1.0, 0.0, 5.0, True)
    assert math.isclose(_par(crab, "Integral").physical, 6e-6, rel_tol=1e-15)
    assert _par(crab, "Index").physical == -2.2
    assert m["SYN_SOFT"].skydir == (80.0, 17.0)
    iso = m["isodiff"]
    assert iso.spectrum_file == str(EXAMPLE_XML.parent / "iso_FXR_SYNTH_V1.txt")
    # same folder: relative names are written, and read back to the same file
    (tmp_path / "iso_FXR_SYNTH_V1.txt").write_text("")
    moved = SkyModel(tuple(s.replace(spectrum_file=str(tmp_path / "iso_FXR_SYNTH_V1.txt"))
                           if s.spectrum_file else s for s in m.sources))
    out = write_xml(moved, tmp_path / "model.xml")
    assert 'file="iso_FXR_SYNTH_V1.txt"' in out.read_text()
    assert read_xml(out) == moved
    assert read_xml(write_xml(m, tmp_path / "m2.xml")) == m


def _xml(body: str) -> str:
    return f'<?xml version="1.0" ?>\n<source_library title="t">\n{body}\n</source_library>\n'


PL_SRC = """  <source name="{name}" type="PointSource">
    <spectrum type="{stype}"{sattr}>
      <parameter name="Scale" value="1000" scale="1" min="30" max="1e5" free="0"/>
      <parameter name="Index" value="2.5" scale="-1" min="0" max="5" free="1"/>
      <parameter name="Prefactor" value="3.5" scale="1e-12" min="1e-5" max="1e3" free="1"/>
    </spectrum>
    <spatialModel type="{ptype}">
      <parameter name="RA" value="166.11" scale="1" min="-360" max="360" free="0"/>
      <parameter name="DEC" value="38.21" scale="1" min="-90" max="90" free="0"/>
    </spatialModel>
  </source>"""


def _pl(name="Mkn 421", stype="PowerLaw", ptype="SkyDirFunction", sattr=""):
    return PL_SRC.format(name=name, stype=stype, ptype=ptype, sattr=sattr)


def test_parameters_put_in_model_order_and_extra_attributes_kept(tmp_path):
    text = _xml(_pl(sattr=' apply_edisp="false"'))
    m = parse_xml(text, base=tmp_path)
    s = m["mkn421"]
    assert [p.name for p in s.spectral] == ["Prefactor", "Index", "Scale"]
    assert s.spectral_values().tolist() == [3.5e-12, -2.5, 1000.0]
    assert s.meta["xml_spectrum_attrs"] == {"apply_edisp": "false"}
    out = to_xml_string(m)
    assert 'apply_edisp="false"' in out
    assert parse_xml(out) == m


def test_missing_parameters_take_model_defaults():
    text = _xml("""  <source name="a" type="PointSource">
    <spectrum type="PowerLaw"><parameter name="Prefactor" value="2" scale="1e-11"/></spectrum>
    <spatialModel type="SkyDirFunction">
      <parameter name="RA" value="10" scale="1"/><parameter name="DEC" value="-5" scale="1"/>
    </spatialModel></source>""")
    s = parse_xml(text)["a"]
    assert s.spectral_values().tolist() == [2e-11, -2.0, 1000.0]   # Index, Scale defaults
    assert s.param("Prefactor").min is None and s.param("Prefactor").free is False


def test_spatial_map_and_radial_models(tmp_path):
    (tmp_path / "tmpl").mkdir()
    (tmp_path / "tmpl" / "W44.fits").write_text("")
    text = _xml("""  <source name="W44" type="DiffuseSource">
    <spectrum type="LogParabola">
      <parameter name="norm" value="1.2" scale="1e-11" min="1e-5" max="1e3" free="1"/>
      <parameter name="alpha" value="2.1" scale="1" min="0" max="5" free="1"/>
      <parameter name="beta" value="0.1" scale="1" min="0" max="2" free="0"/>
      <parameter name="Eb" value="1500" scale="1" min="1500" max="1500" free="0"/>
    </spectrum>
    <spatialModel type="SpatialMap" file="tmpl/W44.fits" map_based_integral="true">
      <parameter name="Prefactor" value="1" scale="1" min="0.001" max="1000" free="0"/>
    </spatialModel></source>
  <source name="disk" type="DiffuseSource">
    <spectrum type="PowerLaw2">
      <parameter name="Integral" value="1" scale="1e-8" min="1e-5" max="1e3" free="1"/>
      <parameter name="Index" value="2" scale="-1" min="0" max="5" free="1"/>
      <parameter name="LowerLimit" value="1000" scale="1" free="0"/>
      <parameter name="UpperLimit" value="1e5" scale="1" free="0"/>
    </spectrum>
    <spatialModel type="RadialDisk">
      <parameter name="RA" value="10" scale="1"/><parameter name="DEC" value="20" scale="1"/>
      <parameter name="Radius" value="0.4" scale="1" min="0.001" max="10"/>
    </spatialModel></source>""")
    (tmp_path / "m.xml").write_text(text)
    m = read_xml(tmp_path / "m.xml", check_files=True)
    w44 = m["W44"]
    assert w44.spatial_model == "SpatialMap"
    assert w44.spatial_file == str(tmp_path / "tmpl" / "W44.fits")
    assert m["disk"].param("Radius").physical == 0.4
    assert m["disk"].skydir == (10.0, 20.0)
    out = write_xml(m, tmp_path / "out.xml")
    t = out.read_text()
    assert 'file="tmpl/W44.fits"' in t and 'map_based_integral="true"' in t
    assert read_xml(out) == m


@pytest.mark.parametrize("form", ["$(FXR_XML_DIR)", "${FXR_XML_DIR}", "$FXR_XML_DIR"])
def test_environment_variables_expanded(tmp_path, monkeypatch, form):
    d = tmp_path / "diffuse"
    d.mkdir()
    (d / "iso.txt").write_text("100 1e-7\n1000 1e-9\n")
    monkeypatch.setenv("FXR_XML_DIR", str(d))
    text = _xml(f"""  <source name="iso" type="DiffuseSource">
    <spectrum type="FileFunction" file="{form}/iso.txt">
      <parameter name="Normalization" value="1" scale="1" min="0" max="10" free="1"/>
    </spectrum>
    <spatialModel type="ConstantValue">
      <parameter name="Value" value="1" scale="1" min="0" max="10" free="0"/>
    </spatialModel></source>""")
    (tmp_path / "m.xml").write_text(text)
    m = read_xml(tmp_path / "m.xml", check_files=True)
    assert m["iso"].spectrum_file == str(d / "iso.txt")
    assert expand_path(f"{form}/x.fits") == str(d / "x.fits")
    assert expand_path("a/b.txt", tmp_path) == str(tmp_path / "a" / "b.txt")


def test_error_bad_xml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.xml"
    p.write_text('<source_library>\n  <source name="a">\n  <spectrum type="PowerLaw">\n'
                 '</source_library>\n')
    with pytest.raises(FileFormatError, match=r"bad\.xml: line 4, column 3: the XML does not "
                                              r"parse \(mismatched tag\)"):
        read_xml(p)


def test_error_unknown_spectral_type_names_source_and_type(tmp_path):
    p = tmp_path / "m.xml"
    p.write_text(_xml(_pl(name="Src A", stype="PowerLaw9")))
    with pytest.raises(FileFormatError,
                       match=r"m\.xml: source 'Src A', line 4: unknown spectral type "
                             r"'PowerLaw9'.*PowerLaw2"):
        read_xml(p)


def test_error_unknown_spatial_type_and_parameter(tmp_path):
    with pytest.raises(FileFormatError, match=r"source 'B', line 9: unknown spatial model "
                                              r"'SkyDirFunctionX'"):
        parse_xml(_xml(_pl(name="B", ptype="SkyDirFunctionX")))
    bad = _pl(name="C").replace('name="Scale"', 'name="Scael"')
    with pytest.raises(FileFormatError, match=r"source 'C', line 4: spectral type 'PowerLaw' "
                                              r"has no parameter 'Scael'; its parameters are "
                                              r"Prefactor, Index, Scale"):
        parse_xml(_xml(bad))
    bad = _pl(name="D").replace('value="2.5"', 'value="two"')
    with pytest.raises(FileFormatError, match=r"source 'D', line 6: parameter 'Index' value: "
                                              r"got 'two'; expected a number"):
        parse_xml(_xml(bad))


def test_error_missing_files(tmp_path):
    with pytest.raises(InputFileError, match=r"XML model file .*nope\.xml' not found"):
        read_xml(tmp_path / "nope.xml")
    p = tmp_path / "m.xml"
    p.write_text(_xml("""  <source name="gal" type="DiffuseSource">
    <spectrum type="PowerLaw"/>
    <spatialModel type="MapCubeFunction" file="gll_iem_missing.fits">
      <parameter name="Normalization" value="1" scale="1"/>
    </spatialModel></source>"""))
    assert read_xml(p)["gal"].spatial_file == str(tmp_path / "gll_iem_missing.fits")
    with pytest.raises(InputFileError, match=r"source 'gal', line 5: spatial template "
                                             r"'gll_iem_missing.fits' not found"):
        read_xml(p, check_files=True)


def test_error_wrong_root_and_duplicates(tmp_path):
    with pytest.raises(FileFormatError, match=r"root element is <sources>; expected "
                                              r"<source_library>"):
        parse_xml("<sources/>")
    with pytest.raises(FileFormatError, match=r"source 'Mkn421' is defined twice \(first at "
                                              r"line 3\)"):
        parse_xml(_xml(_pl() + "\n" + _pl(name="Mkn421")))
