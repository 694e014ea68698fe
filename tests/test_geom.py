"""Geometry: energy axes, WCS and HEALPix grids, frames, xarray labels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fermixr.errors import GeometryError
from fermixr.geom import (
    EQ_TO_GAL,
    EnergyAxis,
    HpxGeom,
    WcsGeom,
    angular_separation,
    cel_to_gal,
    gal_to_cel,
    geom_attrs,
    geom_coords,
    geom_from_attrs,
    geom_from_config,
    geom_from_dict,
    transform,
)
from fermixr.geom._kernels import angsep_deg, rotate_lonlat

CRAB = (83.6331, 22.0145)


# --- energy axis ---------------------------------------------------------------------------
def test_energy_axis_from_bounds_enumbins_and_binsperdec():
    ax = EnergyAxis.from_bounds(200, 20000, enumbins=20)
    assert ax.nbin == 20 and ax.is_log
    assert ax.edges[0] == 200.0 and ax.edges[-1] == 20000.0
    np.testing.assert_allclose(ax.edges, np.logspace(np.log10(200), np.log10(20000), 21), rtol=1e-14)
    np.testing.assert_allclose(ax.centers, np.sqrt(ax.edges[:-1] * ax.edges[1:]))
    # Fermipy: round(binsperdec * log10(emax/emin))
    assert EnergyAxis.from_bounds(100, 100000, binsperdec=8).nbin == 24
    assert EnergyAxis.from_bounds(1000, 10 ** 3.3, binsperdec=8).nbin == 2  # 2.4 -> 2
    assert EnergyAxis.from_bounds(1000, 10 ** 3.32, binsperdec=8).nbin == 3  # 2.56 -> 3
    assert EnergyAxis.from_bounds(1000, 1001, binsperdec=8).nbin == 1      # at least one
    assert EnergyAxis.from_bounds(100, 10 ** 5.5, binsperdec=None).nbin == 28  # default 8
    assert EnergyAxis.from_log_bounds(2, 5, binsperdec=4).nbin == 12


@pytest.mark.parametrize("edges", [[1.0], [10, 5], [0, 1, 2], [1, np.nan], [1, 1]])
def test_energy_axis_rejects_bad_edges(edges):
    with pytest.raises(GeometryError, match="energy axis"):
        EnergyAxis(edges)


def test_energy_axis_bad_bounds_messages():
    with pytest.raises(GeometryError, match="emin < emax"):
        EnergyAxis.from_bounds(300, 200, enumbins=3)
    with pytest.raises(GeometryError, match="enumbins"):
        EnergyAxis.from_bounds(100, 200, enumbins=0)


def test_energy_axis_dict_roundtrip_and_json():
    ax = EnergyAxis([100.0, 316.2, 1000.0, 5000.0])
    d = ax.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert EnergyAxis.from_dict(json.loads(json.dumps(d))) == ax
    assert not ax.is_log


def test_energy_axis_from_ebounds_snaps_float32_keV():
    exact = EnergyAxis.from_bounds(200, 20000, enumbins=20)
    e_min = (exact.edges[:-1] * 1000).astype(np.float32)
    e_max = (exact.edges[1:] * 1000).astype(np.float32)
    ax = EnergyAxis.from_ebounds(e_min, e_max, unit="keV")
    assert ax == exact
    raw = EnergyAxis.from_ebounds(e_min, e_max, unit="keV", snap=False)
    assert raw != exact and np.allclose(raw.edges, exact.edges, rtol=1e-7)


def test_energy_bin_index_conventions():
    ax = EnergyAxis.from_bounds(100, 10000, enumbins=2)
    idx = ax.bin_index([99.999, 100.0, 999.999, 1000.0, 9999.99, 10000.0, 2e4])
    assert idx.tolist() == [-1, 0, 0, 1, 1, -1, -1]
    lin = EnergyAxis([1.0, 2.0, 5.0])
    assert lin.bin_index([0.5, 1.0, 2.0, 4.99, 5.0]).tolist() == [-1, 0, 1, 1, -1]


def test_energy_axis_coords_roundtrip():
    import xarray as xr

    ax = EnergyAxis.from_bounds(100, 1000, enumbins=4)
    ds = xr.Dataset(coords=ax.to_coords())
    assert ds["energy"].attrs["units"] == "MeV"
    assert EnergyAxis.from_coords(ds) == ax


# --- frames ----------------------------------------------------------------------------------
def _rotate_reference(lon, lat, rot):
    lo, la = np.radians(lon), np.radians(lat)
    v = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    w = rot @ v
    return np.degrees(np.arctan2(w[1], w[0])) % 360.0, np.degrees(np.arcsin(np.clip(w[2], -1, 1)))


def test_rotate_kernel_matches_numpy_reference():
    rng = np.random.default_rng(11)
    lon = rng.uniform(0, 360, 5000)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 5000)))
    got = rotate_lonlat(lon, lat, np.ascontiguousarray(EQ_TO_GAL))
    ref = _rotate_reference(lon, lat, EQ_TO_GAL)
    dl = (got[0] - ref[0] + 180.0) % 360.0 - 180.0
    assert np.max(np.abs(dl * np.cos(np.radians(ref[1])))) < 1e-9
    assert np.max(np.abs(got[1] - ref[1])) < 1e-9


def test_st_rotation_matches_ft1_lb_columns(crab_day):
    from astropy.io import fits

    d = fits.getdata(crab_day / "ft1.fits.gz", "EVENTS")
    l, b = cel_to_gal(d["RA"].astype(float), d["DEC"].astype(float))
    # the LAT pipeline's L/B columns (float32) come from the same rotation
    dl = (l - d["L"].astype(float) + 180) % 360 - 180
    assert np.max(np.abs(dl)) < 2e-5 and np.max(np.abs(b - d["B"].astype(float))) < 1e-5


def test_st_rotation_differs_from_iau_by_about_an_arcsecond():
    from astropy.coordinates import SkyCoord

    l, b = cel_to_gal(*CRAB)
    c = SkyCoord(*CRAB, unit="deg", frame="fk5").galactic
    sep = angular_separation(np.array([l]), np.array([b]), c.l.deg, c.b.deg)[0] * 3600
    assert 0.5 < sep < 2.5


def test_gal_cel_roundtrip_and_transform():
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, 1000)
    dec = rng.uniform(-89, 89, 1000)
    l, b = cel_to_gal(ra, dec)
    ra2, dec2 = gal_to_cel(l, b)
    assert np.max(np.abs((ra2 - ra + 180) % 360 - 180) * np.cos(np.radians(dec))) < 1e-9
    assert np.max(np.abs(dec2 - dec)) < 1e-9
    l3, b3 = transform(ra, dec, "icrs", "galactic")
    np.testing.assert_array_equal(l3, l)
    with pytest.raises(GeometryError, match="unknown sky frame 'ECL'"):
        transform(ra, dec, "CEL", "ECL")


def test_angsep_kernel_matches_reference():
    rng = np.random.default_rng(5)
    lon = rng.uniform(0, 360, 2000)
    lat = rng.uniform(-90, 90, 2000)
    got = angsep_deg(lon, lat, 83.6, 22.0)
    a, b = np.radians(lat), math.radians(22.0)
    cosd = np.sin(a) * math.sin(b) + np.cos(a) * math.cos(b) * np.cos(np.radians(lon - 83.6))
    ref = np.degrees(np.arccos(np.clip(cosd, -1, 1)))
    assert np.max(np.abs(got - ref)) < 1e-6
    # haversine stays accurate for tiny separations
    assert abs(angsep_deg(np.array([10.0]), np.array([0.0]), 10.0 + 1e-7, 0.0)[0] - 1e-7) < 1e-15


# --- WCS ------------------------------------------------------------------------------------
def test_wcs_from_reference_header(crab_day):
    from astropy.io import fits

    h = fits.getheader(crab_day / "cntmap.fits.gz")
    g = WcsGeom.from_header(h)
    assert (g.frame, g.proj, g.npix, g.binsz) == ("GAL", "CAR", (100, 100), 0.2)
    assert g.crpix == (50.5, 50.5) and g.cdelt == (-0.2, 0.2)
    assert g.center == (h["CRVAL1"], h["CRVAL2"])
    hdr = g.to_header()
    for k in ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2"):
        assert hdr[k] == h[k], k


def test_wcs_from_fermipy_config_reproduces_reference_header(crab_day):
    from astropy.io import fits

    h = fits.getheader(crab_day / "cntmap.fits.gz")
    g = geom_from_config({"coordsys": "GAL", "proj": "CAR", "npix": 100, "binsz": 0.2}, CRAB)
    hdr = g.to_header()
    for k in ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "NAXIS1", "NAXIS2"):
        assert hdr[k] == h[k], k
    # centre converted as Fermipy does (astropy): within 1e-5 deg of gtbin's header
    assert abs(hdr["CRVAL1"] - h["CRVAL1"]) < 1e-5 and abs(hdr["CRVAL2"] - h["CRVAL2"]) < 1e-5


def test_wcs_from_config_defaults_and_npix():
    g = WcsGeom.from_config({}, CRAB)
    assert (g.frame, g.proj, g.npix, g.binsz) == ("CEL", "AIT", (100, 100), 0.1)
    assert g.center == CRAB and g.crpix == (50.5, 50.5)
    assert WcsGeom.from_config({"roiwidth": 3.0, "binsz": 0.1}, CRAB).npix == (30, 30)
    # ceil(roiwidth / binsz), float noise rounded away
    assert WcsGeom.from_config({"roiwidth": 3.05, "binsz": 0.1}, CRAB).npix == (31, 31)
    assert WcsGeom.from_config({"roiwidth": 3.07, "binsz": 0.1}, CRAB).npix == (31, 31)
    assert WcsGeom.from_config({"roiwidth": 10, "binsz": 0.3}, CRAB).npix == (34, 34)


def test_wcs_dict_roundtrip_json():
    g = WcsGeom((10.0, -30.0), (40, 30), 0.25, proj="TAN", frame="CEL")
    d = json.loads(json.dumps(g.to_dict()))
    assert geom_from_dict(d) == g
    assert g.shape == (30, 40) and g.crpix == (20.5, 15.5)


def test_wcs_pixel_centers_and_world_to_pix_roundtrip():
    g = WcsGeom(CRAB, (21, 15), 0.5, proj="AIT", frame="CEL")
    lon, lat = g.pixel_centers()
    assert lon.shape == (15, 21)
    assert abs(lon[7, 10] - CRAB[0]) < 1e-9 and abs(lat[7, 10] - CRAB[1]) < 1e-9
    x, y = g.world_to_pix(lon, lat)
    yy, xx = np.mgrid[0:15, 0:21]
    np.testing.assert_allclose(x, xx, atol=1e-8)
    np.testing.assert_allclose(y, yy, atol=1e-8)
    # same directions given in Galactic coordinates
    l, b = g.pixel_centers(frame="GAL")
    x2, y2 = g.world_to_pix(l, b, frame="GAL")
    np.testing.assert_allclose(x2, xx, atol=1e-7)
    ix, iy = g.pixel_index(lon, lat)
    np.testing.assert_array_equal(ix, xx)
    assert g.contains(np.array([CRAB[0], CRAB[0] + 20]), np.array([CRAB[1], CRAB[1]])).tolist() == [True, False]


def test_wcs_solid_angle_sums_to_region_area():
    # CAR centred on the equator: rows of pixels lie between parallels (exact area known)
    g = WcsGeom((0.0, 0.0), (40, 40), 0.5, proj="CAR", frame="GAL")
    om = g.solid_angle()
    area = math.radians(20.0) * (2 * math.sin(math.radians(10.0)))
    assert abs(om.sum() / area - 1) < 1e-5
    # the Science Tools' approximation agrees to the same order here
    assert abs(g.solid_angle("st").sum() / area - 1) < 1e-4
    # small TAN pixels near the centre: binsz^2
    t = WcsGeom((50.0, 60.0), 11, 0.05, proj="TAN")
    assert abs(t.solid_angle()[5, 5] / math.radians(0.05) ** 2 - 1) < 1e-6


def test_wcs_ait_allsky_solid_angle_is_4pi():
    g = WcsGeom((0.0, 0.0), (360, 180), 1.0, proj="AIT", frame="GAL")
    om = g.solid_angle()
    assert abs(om.sum() / (4 * math.pi) - 1) < 2e-2  # edge pixels straddle the boundary
    assert om[0, 0] == 0.0


def test_wcs_errors_name_the_problem():
    with pytest.raises(GeometryError, match="npix"):
        WcsGeom(CRAB, 0, 0.1)
    with pytest.raises(GeometryError, match="binsz"):
        WcsGeom(CRAB, 10, -0.1)
    with pytest.raises(GeometryError, match="projection"):
        WcsGeom(CRAB, 10, 0.1, proj="XY")
    with pytest.raises(GeometryError, match="not RA/DEC or GLON/GLAT"):
        WcsGeom.from_header({"CTYPE1": "ELON-CAR", "CTYPE2": "ELAT-CAR", "NAXIS1": 2, "NAXIS2": 2,
                             "CRPIX1": 1, "CRPIX2": 1, "CRVAL1": 0, "CRVAL2": 0,
                             "CDELT1": -1, "CDELT2": 1})
    with pytest.raises(GeometryError, match="projtype"):
        geom_from_config({"projtype": "MOC"}, CRAB)


# --- HEALPix -----------------------------------------------------------------------------------
def test_hpx_region_holds_pixel_centres_inside_radius():
    import healpy as hp

    g = HpxGeom(nside=64, ordering="NESTED", frame="GAL", region=(184.5, -5.8, 5.0))
    lon, lat = g.pixel_centers()
    sep = angular_separation(lon, lat, 184.5, -5.8)
    assert np.all(sep <= 5.0) and g.npix > 50
    # every pixel centre inside the disk is held
    all_lon, all_lat = hp.pix2ang(64, np.arange(hp.nside2npix(64)), nest=True, lonlat=True)
    inside = angular_separation(all_lon, all_lat, 184.5, -5.8) < 5.0 - 1e-9
    assert set(np.flatnonzero(inside)) <= set(g.pix.tolist())
    assert np.all(np.diff(g.pix) > 0)


def test_hpx_from_config_and_dict_roundtrip():
    g = HpxGeom.from_config({"hpx_order": 5, "hpx_ordering_scheme": "NESTED", "coordsys": "CEL",
                             "roiwidth": 20}, CRAB)
    assert (g.nside, g.ordering, g.frame, g.region[2]) == (32, "NESTED", "CEL", 10.0)
    d = json.loads(json.dumps(g.to_dict()))
    assert geom_from_dict(d) == g
    full = HpxGeom(order=2)
    assert full.is_allsky and full.npix == 192
    np.testing.assert_allclose(full.solid_angle().sum(), 4 * math.pi)
    assert geom_from_config({"projtype": "HPX", "hpx_order": 3, "roiwidth": 360}, CRAB).is_allsky


def test_hpx_local_index_and_reordering():
    g = HpxGeom(nside=16, ordering="RING", region=(83.6, 22.0, 20.0))
    lon, lat = g.pixel_centers()
    np.testing.assert_array_equal(g.world_to_pix(lon, lat), np.arange(g.npix))
    assert g.world_to_pix(np.array([263.6]), np.array([-22.0]))[0] == -1
    gn = HpxGeom(nside=16, ordering="NESTED", region=(83.6, 22.0, 20.0))
    assert sorted(g.reorder_index("NESTED").tolist()) == gn.pix.tolist()


def test_hpx_errors():
    with pytest.raises(GeometryError, match="power of 2"):
        HpxGeom(nside=12)
    with pytest.raises(GeometryError, match="RING or NESTED"):
        HpxGeom(nside=8, ordering="ZIGZAG")
    with pytest.raises(GeometryError, match="holds no pixel"):
        HpxGeom(nside=1, region=(20.0, 10.0, 0.001))


# --- xarray labels -------------------------------------------------------------------------------
def test_geom_coords_attrs_roundtrip():
    import xarray as xr

    ax = EnergyAxis.from_bounds(100, 1000, enumbins=3)
    for g in (WcsGeom(CRAB, (8, 6), 0.5, proj="CAR", frame="GAL"), HpxGeom(nside=4, frame="CEL")):
        ds = xr.Dataset(coords=geom_coords(g, ax), attrs=geom_attrs(g))
        assert geom_from_attrs(ds) == g
        assert geom_from_attrs(json.loads(json.dumps(ds.attrs))) == g
        assert ds["lon"].attrs["units"] == "deg" and ds["energy_min"].attrs["units"] == "MeV"
    wcs_ds = xr.Dataset(coords=geom_coords(WcsGeom(CRAB, (8, 6), 0.5), ax))
    assert wcs_ds["lon"].dims == ("y", "x")
    with pytest.raises(GeometryError, match="no 'geom'"):
        geom_from_attrs({})


def test_configured_positions_transform_as_astropy_does():
    """The constant ICRS -> Galactic rotation used for configured centres equals astropy's."""
    from astropy.coordinates import SkyCoord

    from fermixr.geom.frames import fermipy_cel_to_gal, fermipy_gal_to_cel

    rng = np.random.default_rng(7)
    for ra, dec in zip(rng.uniform(0, 360, 50), np.degrees(np.arcsin(rng.uniform(-1, 1, 50)))):
        g = SkyCoord(ra, dec, unit="deg", frame="icrs").galactic
        lon, lat = fermipy_cel_to_gal(ra, dec)
        assert abs((lon - g.l.deg + 180) % 360 - 180) * np.cos(np.radians(lat)) < 1e-9
        assert abs(lat - g.b.deg) < 1e-9
        back = fermipy_gal_to_cel(lon, lat)
        assert abs((back[0] - ra + 180) % 360 - 180) * np.cos(np.radians(dec)) < 1e-9
        assert abs(back[1] - dec) < 1e-9
