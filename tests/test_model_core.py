"""Parameters, sources and the sky model: conventions, immutability, name matching."""

import math

import numpy as np
import pytest

from fermixr.errors import ModelError
from fermixr.model import Parameter, SkyModel, Source
from fermixr.model.spatial import (DISK_R68, GAUSS_R68, param_to_width, spatial_type,
                                   width_to_param)


def test_parameter_scaled_convention_and_fermipy_numbers():
    idx = Parameter("Index", 2.0, -1.0, 0.0, 5.0)
    assert idx.physical == -2.0
    assert idx.bounds_physical == (-5.0, 0.0)
    # Index: a bare number keeps the negative scale (2.0 means E^-2)
    assert Parameter.from_any("Index", 2.5, idx).physical == -2.5
    # a positive-scale parameter given as a physical number is rescaled to a power of ten
    pref = Parameter("Prefactor", 1.0, 1e-9, 1e-5, 1e3)
    p = Parameter.from_any("Prefactor", 3.2e-12, pref)
    assert p.scale == 1e-12 and p.value == pytest.approx(3.2)
    assert p.physical == pytest.approx(3.2e-12)
    assert p.min * p.scale == pytest.approx(1e-14) and p.max * p.scale == pytest.approx(1e-6)
    d = Parameter.from_any("Prefactor", {"value": 3.0, "scale": 1e-11, "free": True}, pref)
    assert (d.value, d.scale, d.free, d.min) == (3.0, 1e-11, True, 1e-5)
    with pytest.raises(ModelError, match=r"src\.Prefactor: unknown keys \['vlaue'\]"):
        Parameter.from_any("Prefactor", {"vlaue": 1}, pref, where="src")
    with pytest.raises(ModelError, match="above its maximum"):
        Parameter("Index", 7.0, -1.0, 0.0, 5.0).check()


def _src(name="Mkn 421", assoc=("4FGL J1104.4+3812",)):
    return Source(name, "PowerLaw",
                  (Parameter("Prefactor", 1.0, 1e-11, 1e-5, 1e5, free=True),
                   Parameter("Index", 2.0, -1.0, 0.0, 5.0), Parameter("Scale", 1000.0)),
                  "SkyDirFunction",
                  (Parameter("RA", 166.11), Parameter("DEC", 38.21)), associations=assoc)


def test_source_is_immutable_and_roundtrips():
    s = _src()
    assert s.spatial_model == "PointSource" and s.skydir == (166.11, 38.21)
    t = s.with_param("Index", value=2.5, free=True)
    assert s.param("Index").value == 2.0 and t.param("Index").physical == -2.5
    np.testing.assert_allclose(t.spectral_values(), [1e-11, -2.5, 1000.0])
    assert Source.from_dict(t.to_dict()) == t
    with pytest.raises(ModelError, match="has no parameter 'index'"):
        s.param("index")


def test_name_matching_case_whitespace_associations():
    m = SkyModel((_src(), _src("PKS 2155-304", ("4FGL J2158.8-3013",))))
    for key in ("mkn421", "Mkn 421", " MKN  421 ", "4FGL J1104.4+3812", "4fglj1104.4+3812"):
        assert m.find(key).name == "Mkn 421"
    with pytest.raises(ModelError, match="no source matches 'Crab'"):
        m.find("Crab")
    amb = SkyModel((_src("a", ("X",)), _src("b", ("X",))))
    with pytest.raises(ModelError, match="matches several sources: a, b"):
        amb.find("x")
    with pytest.raises(ModelError, match="two sources named"):
        SkyModel((_src(), _src("MKN421")))
    m2 = m.merge(SkyModel((_src().with_param("Index", value=3.0),)))
    assert m2.find("mkn421").param("Index").value == 3.0 and len(m2) == 2
    assert m.remove("mkn 421").names == ["PKS 2155-304"]


def test_spatial_widths():
    assert spatial_type("SkyDirFunction") == "PointSource"
    name, sig = width_to_param("RadialGaussian", 0.3)
    assert name == "Sigma" and sig == pytest.approx(0.3 / GAUSS_R68)
    assert param_to_width("RadialDisk", 1.0) == pytest.approx(DISK_R68)
    # GAUSS_R68 is the 68% radius of a 2-D Gaussian; DISK_R68 that of a uniform disk
    assert GAUSS_R68 == pytest.approx(math.sqrt(-2 * math.log(0.32)), rel=1e-12)
    assert DISK_R68 == pytest.approx(math.sqrt(0.68), rel=1e-12)
    with pytest.raises(ModelError, match="unknown spatial model 'Blob'"):
        spatial_type("Blob")


def test_source_from_dict_keeps_the_models_parameter_order_when_keys_are_sorted():
    """spectral_values() is positional: a dict with sorted keys (a JSON marker) must give
    the same values in the same order, hence the same spectrum."""
    import json

    import numpy as np

    from fermixr.model.skymodel import SkyModel
    from fermixr.model.source import Source
    from fermixr.model.xml import spectral_defaults

    names = [p.name for p in spectral_defaults("LogParabola")[1]]
    assert names != sorted(names)          # otherwise this test could not fail
    src = Source.from_dict({
        "name": "x", "SpectrumType": "LogParabola", "SpatialModel": "PointSource",
        "spectral_pars": {n: {"value": v, "scale": 1.0, "free": False}
                          for n, v in zip(names, (3.0, 2.1, 0.05, 1000.0))},
        "spatial_pars": {"RA": {"value": 10.0, "scale": 1.0, "free": False},
                         "DEC": {"value": 20.0, "scale": 1.0, "free": False}}})
    d = json.loads(json.dumps(SkyModel((src,)).to_dict(), sort_keys=True))
    back = SkyModel.from_dict(d).sources[0]
    assert [p.name for p in back.spectral] == names
    np.testing.assert_array_equal(back.spectral_values(), src.spectral_values())
