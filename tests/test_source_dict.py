"""The source-dictionary entries that need no likelihood: offsets, the positional-error
ellipse, catalog-style spectral columns, and the ROI table / dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fermixr.estimators.sourcedict import (R68, R95, catalog_columns, ellipse_dict, position_dict,
                                          roi_edge_distance, sources_dataset, sources_table)
from fermixr.geom.hpx import HpxGeom
from fermixr.geom.wcs import WcsGeom
from fermixr.model.catalog import _position_ellipse
from fermixr.model.parameters import Parameter
from fermixr.model.source import Source


def _point(ra, dec, ellipse=None):
    spat = (Parameter("RA", ra, 1.0, None, None, False),
            Parameter("DEC", dec, 1.0, None, None, False))
    spec = (Parameter("Prefactor", 1.0, 1e-12, 1e-5, 1e3, True),
            Parameter("Index", 2.0, -1.0, 0.0, 5.0, False),
            Parameter("Scale", 1000.0, 1.0, None, None, False))
    meta = {} if ellipse is None else {"pos_ellipse": ellipse}
    return Source("P", "PowerLaw", spec, "PointSource", spat, meta=meta)


def test_ellipse_axes_angles_and_radii():
    a, b = 0.05, 0.02
    north = ellipse_dict(83.6, 22.0, (a, b, 0.0))      # major axis along declination
    assert north["dec_err"] == pytest.approx(a) and north["ra_err"] == pytest.approx(b)
    east = ellipse_dict(83.6, 22.0, (a, b, 90.0))
    assert east["ra_err"] == pytest.approx(a) and east["dec_err"] == pytest.approx(b)
    assert north["pos_err"] == pytest.approx(math.sqrt(a * b))
    assert north["pos_r68"] == pytest.approx(1.5166 * math.sqrt(a * b), rel=1e-4)
    assert north["pos_r95"] == pytest.approx(2.4474 * math.sqrt(a * b), rel=1e-4)
    assert north["pos_r99"] == pytest.approx(3.0348 * math.sqrt(a * b), rel=1e-4)
    # at 45 deg the axes mix: the off-diagonal term is -(a^2 - b^2)/2 in Fermipy's frame
    # (x towards smaller RA), and the correlation follows
    mid = ellipse_dict(83.6, 22.0, (a, b, 45.0))
    cov = mid["pos_cel_cov"]
    assert cov[0, 1] == pytest.approx(-(a * a - b * b) / 2)
    assert mid["pos_cel_corr"][0, 1] == pytest.approx(cov[0, 1] / (mid["ra_err"] * mid["dec_err"]))
    # the galactic covariance is the same ellipse rotated: trace and determinant kept,
    # orientation changed (the Crab: galactic north is ~ -60 deg from celestial north)
    gal = mid["pos_gal_cov"]
    assert np.trace(gal) == pytest.approx(a * a + b * b)
    assert np.linalg.det(gal) == pytest.approx((a * b) ** 2)
    assert abs(gal[0, 1] - cov[0, 1]) > 1e-4
    nan = ellipse_dict(None, None, None)
    assert math.isnan(nan["pos_r95"]) and np.isnan(nan["pos_cel_cov"]).all()


def test_catalog_ellipse_to_one_sigma():
    row = {"Conf_68_SemiMajor": 0.06, "Conf_68_SemiMinor": 0.03, "Conf_68_PosAng": 30.0,
           "Conf_95_SemiMajor": 0.09, "Conf_95_SemiMinor": 0.05, "Conf_95_PosAng": 30.0}
    a, b, ang = _position_ellipse(row)
    assert (a * R68, b * R68, ang) == pytest.approx((0.06, 0.03, 30.0))
    row68 = {k: v for k, v in row.items() if "68" not in k}
    a, b, _ = _position_ellipse(row68)
    assert (a * R95, b * R95) == pytest.approx((0.09, 0.05))
    assert _position_ellipse({"Conf_68_SemiMajor": float("nan"),
                              "Conf_68_SemiMinor": 0.1}) is None
    # kept through the model's dict form (write_roi / load_roi, cached steps)
    src = _point(83.6, 22.0, (0.04, 0.02, 30.0))
    back = Source.from_dict(src.to_dict())
    assert back.meta["pos_ellipse"] == (0.04, 0.02, 30.0) and back == src


def test_offsets_and_distance_to_the_roi_edge():
    geom = WcsGeom((83.6331, 22.0145), (60, 60), 0.2, proj="CAR", frame="CEL")
    c = (83.6331, 22.0145)
    d = position_dict(_point(*c), c, geom)
    assert d["offset"] == pytest.approx(0.0, abs=1e-9)
    assert d["offset_roi_edge"] == pytest.approx(-6.0, abs=1e-6)
    # 1 deg north: offset_dec = 1, offset_ra = 0, 5 deg from the top edge
    d = position_dict(_point(83.6331, 23.0145), c, geom)
    assert d["offset"] == pytest.approx(1.0, abs=1e-9)
    assert d["offset_dec"] == pytest.approx(1.0, abs=1e-4)   # AIT: 1.3e-5 distortion
    assert d["offset_ra"] == pytest.approx(0.0, abs=1e-6)
    assert d["offset_roi_edge"] == pytest.approx(-5.0, abs=1e-3)
    # east (larger RA) is negative x in Fermipy's frame; outside the map is positive
    d = position_dict(_point(85.0, 22.0145), c, geom)
    assert d["offset_ra"] < 0
    assert position_dict(_point(83.6331, 29.0145), c, geom)["offset_roi_edge"] == \
        pytest.approx(1.0, abs=1e-3)
    # galactic offsets have the same length
    assert math.hypot(d["offset_glon"], d["offset_glat"]) == pytest.approx(
        math.hypot(d["offset_ra"], d["offset_dec"]), rel=1e-3)
    hpx = HpxGeom(order=6, frame="CEL", region=(83.6331, 22.0145, 5.0))
    assert roi_edge_distance(hpx, 83.6331, 24.0145) == pytest.approx(-3.0, abs=1e-9)
    assert math.isnan(roi_edge_distance(HpxGeom(order=2), 83.0, 22.0))


def test_catalog_style_columns():
    pl = catalog_columns("PowerLaw", ["Prefactor", "Index", "Scale"], [3e-11, -2.3, 900.0])
    assert pl["Spectral_Index"] == 2.3 and pl["Flux_Density"] == 3e-11
    assert pl["Pivot_Energy"] == 900.0 and math.isnan(pl["beta"])
    lp = catalog_columns("LogParabola", ["norm", "alpha", "beta", "Eb"], [1e-12, 2.1, 0.1, 1e3])
    assert (lp["Spectral_Index"], lp["beta"], lp["Pivot_Energy"]) == (2.1, 0.1, 1e3)
    assert all(math.isnan(v) for v in catalog_columns("FileFunction", ["Normalization"],
                                                        [1.0]).values())


def test_table_and_dataset_columns():
    geom = WcsGeom((83.6331, 22.0145), (60, 60), 0.2, proj="CAR", frame="CEL")
    d = position_dict(_point(83.7, 22.1, (0.04, 0.02, 30.0)), (83.6331, 22.0145), geom)
    d.update(name="P", SpatialModel="PointSource", SpatialType="SkyDirFunction",
             SpectrumType="PowerLaw", SourceType="PointSource", ts=30.0,
             param_names=np.array(["Prefactor", "Index", "Scale"]),
             param_values=np.array([1e-12, -2.0, 1e3]), param_errors=np.array([1e-13, .1, 0]),
             model_counts=np.array([3.0, 2.0]), norm_scan=np.linspace(0, 2, 5),
             **catalog_columns("PowerLaw", ["Prefactor", "Index", "Scale"], [1e-12, -2.0, 1e3]))
    iso = {"name": "iso", "SpatialModel": "ConstantValue", "param_names": np.array(["N"]),
           "param_values": np.array([1.0]), "param_errors": np.array([np.nan])}
    t = sources_table({"P": d, "iso": iso})
    assert t["Conf_95_SemiMajor"][0] == pytest.approx(0.04 * R95)
    assert t["Conf_68_SemiMinor"][0] == pytest.approx(0.02 * R68)
    assert t["RAJ2000"][0] == pytest.approx(83.7) and t["Spectral_Index"][0] == 2.0
    assert t["pos_cel_cov"].shape == (2, 2, 2) and t["model_counts"].shape == (2, 2)
    assert np.isnan(t["model_counts"][1]).all() and str(t["offset"].unit) == "deg"
    ds = sources_dataset({"P": d, "iso": iso})
    df = ds.to_dataframe()
    assert list(df.index) == ["P", "iso"] and df.loc["P", "ts"] == 30.0
    assert df.loc["P", "SpatialType"] == "SkyDirFunction"
