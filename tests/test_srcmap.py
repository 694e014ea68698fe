"""Source maps on synthetic PSFs: normalisation (exposure x 1), positions, spill-over,
extended sources, diffuse maps on WCS and HEALPix, map-cube interpolation, errors."""

from __future__ import annotations

import numpy as np
import pytest

from fermixr.errors import GeometryError
from fermixr.geom import HpxGeom, WcsGeom, angular_separation
from fermixr.srcmap.diffuse import isotropic_map, mapcube_intensity, mapcube_map
from fermixr.srcmap.exposure import cube_exposure
from fermixr.srcmap.extended import extended_source_map
from fermixr.srcmap.point import point_source_map
from fermixr.srcmap.tables import RadialTable

ENERGIES = np.array([1e3, 3e3, 1e4, 1e5])
SIGMAS = np.array([0.8, 0.35, 0.15, 0.06])      # King core widths (deg) per energy
GAMMA = 2.5


def king_table(sigmas=SIGMAS, gamma=GAMMA):
    off = np.concatenate(([0.0], np.logspace(-4, np.log10(60.0), 800)))
    s = np.asarray(sigmas)[:, None]
    val = (1 + off[None] ** 2 / (2 * gamma * s ** 2)) ** -gamma
    t = RadialTable(off, val)
    # normalise to 1 over the sphere (up to 60 deg)
    return off, val / t.integral()[:, None]


OFF, PSF = king_table()
CENTER = (83.6331, 22.0145)


@pytest.fixture(scope="module")
def roi30():
    return WcsGeom(CENTER, 150, 0.2, proj="CAR", frame="CEL")


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.5, 0.5), (0.31, -0.17)],
                         ids=["centre", "corner", "off-centre"])
def test_point_source_total_is_exposure(roi30, shift):
    x0 = (roi30.nx - 1) / 2.0 + 0.5 + shift[0]      # 150 pixels: centre of pixel 75
    y0 = (roi30.ny - 1) / 2.0 + 0.5 + shift[1]
    ra, dec = roi30.pix_to_world(x0, y0)
    expo = np.array([1e10, 2e10, 3e10, 4e10])
    m = point_source_map(roi30, ENERGIES, float(ra), float(dec), expo, OFF, PSF)
    assert m.shape == (4, 150, 150)
    # PSF fraction inside the 30 deg square (the King tails reach beyond it)
    inside = RadialTable(OFF, PSF).integral(15.0)
    tot = m.sum(axis=(1, 2)) / expo
    print("\nsum / exposure:", tot, " PSF within 15 deg:", inside)
    np.testing.assert_allclose(tot, 1.0, atol=0.01)
    assert np.all(tot >= inside - 2e-3)
    # the peak pixel is the one holding the source
    ix, iy = roi30.pixel_index(float(ra), float(dec))
    if shift == (0.0, 0.0):
        assert np.unravel_index(np.argmax(m[-1]), m.shape[1:]) == (iy, ix)


def test_point_source_pixel_integration_converges(roi30):
    """rfactor 2 against a much finer integration (rfactor 8): per pixel near the source."""
    ra, dec = roi30.pix_to_world(75.2, 74.9)
    a = point_source_map(roi30, ENERGIES, float(ra), float(dec), 1.0, OFF, PSF)
    b = point_source_map(roi30, ENERGIES, float(ra), float(dec), 1.0, OFF, PSF, rfactor=8)
    rel = np.abs(a - b) / b.max(axis=(1, 2), keepdims=True)
    print("\nmax |rfactor2 - rfactor8| / peak:", rel.max(axis=(1, 2)))
    assert rel.max() < 2e-3
    # without any sub-sampling the peak is badly wrong at high energy (PSF << pixel)
    c = point_source_map(roi30, ENERGIES, float(ra), float(dec), 1.0, OFF, PSF, rfactor=1e-3,
                         nsub_max=1)
    assert abs(c[-1].max() / b[-1].max() - 1) > 0.1


def test_point_source_outside_map_spills_in():
    g = WcsGeom((0.0, 0.0), 20, 0.25, proj="CAR", frame="GAL")   # 5 x 5 deg
    from fermixr.geom.frames import gal_to_cel

    ra, dec = gal_to_cel(3.5, 0.0)                                # 1 deg off the edge
    m = point_source_map(g, ENERGIES, ra, dec, 1.0, OFF, PSF)
    assert np.all(m.sum(axis=(1, 2)) > 0)
    assert np.all(m.sum(axis=(1, 2)) < 0.5)
    # the edge nearest the source is brighter than the far edge
    assert np.all(m[:, :, 0].sum(axis=1) > 10 * m[:, :, -1].sum(axis=1))
    # far in a big map the same source gives the same pixels
    big = WcsGeom((0.0, 0.0), 60, 0.25, proj="CAR", frame="GAL")
    mb = point_source_map(big, ENERGIES, ra, dec, 1.0, OFF, PSF)
    np.testing.assert_allclose(m, mb[:, 20:40, 20:40], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("ordering", ["RING", "NESTED"])
def test_point_source_healpix_total(ordering):
    h = HpxGeom(nside=128, ordering=ordering, frame="CEL", region=(*CENTER, 15.0))
    m = point_source_map(h, ENERGIES, CENTER[0] + 0.1, CENTER[1] - 0.05, 2.0, OFF, PSF)
    tot = m.sum(axis=1) / 2.0
    print("\nHEALPix sum / exposure:", tot)
    np.testing.assert_allclose(tot, 1.0, atol=0.01)
    # agrees with a WCS map of the same source, radially (flux within 1 deg)
    lon, lat = h.pixel_centers()
    r = angular_separation(lon, lat, CENTER[0] + 0.1, CENTER[1] - 0.05)
    g = WcsGeom(CENTER, 200, 0.05, proj="TAN", frame="CEL")
    mw = point_source_map(g, ENERGIES, CENTER[0] + 0.1, CENTER[1] - 0.05, 2.0, OFF, PSF)
    lw, bw = g.pixel_centers()
    rw = angular_separation(lw, bw, CENTER[0] + 0.1, CENTER[1] - 0.05)
    for k in (2, 3):
        a = m[k][r < 1.0].sum()
        b = mw[k][rw < 1.0].sum()
        assert a == pytest.approx(b, rel=0.02)


@pytest.mark.parametrize("model", ["RadialGaussian", "RadialDisk"])
def test_extended_converges_to_point_and_conserves(roi30, model):
    ra, dec = roi30.pix_to_world(74.3, 75.6)
    ra, dec = float(ra), float(dec)
    p = point_source_map(roi30, ENERGIES, ra, dec, 1.0, OFF, PSF)
    small = extended_source_map(roi30, ENERGIES, (model, 1e-3), 1.0 + 0 * ENERGIES, OFF, PSF,
                                ra=ra, dec=dec)
    rel = np.abs(small - p).max(axis=(1, 2)) / p.max(axis=(1, 2))
    print(f"\n{model} 0.001 deg vs point, max diff / peak:", rel)
    assert rel.max() < 1e-3
    big = extended_source_map(roi30, ENERGIES, (model, 1.0), np.ones(4), OFF, PSF, ra=ra, dec=dec)
    np.testing.assert_allclose(big.sum(axis=(1, 2)), 1.0, atol=0.01)
    # the extension spreads the emission: lower peak than the point source
    assert np.all(big.max(axis=(1, 2)) < p.max(axis=(1, 2)))
    assert np.all(big.max(axis=(1, 2))[1:] < 0.5 * p.max(axis=(1, 2))[1:])


def test_extended_template_matches_radial(roi30):
    tg = WcsGeom((84.0, 22.3), 160, 0.025, proj="CAR", frame="CEL")
    lon, lat = tg.pixel_centers()
    r = angular_separation(lon, lat, 84.0, 22.3)
    tmpl = np.exp(-0.5 * (r / 0.4) ** 2) * 123.0       # any scale: normalised inside
    expo = np.array([1e10, 2e10, 3e10, 4e10])
    mt = extended_source_map(roi30, ENERGIES, (tmpl, tg), expo, OFF, PSF)
    mg = extended_source_map(roi30, ENERGIES, ("RadialGaussian", 0.4), expo, OFF, PSF,
                             ra=84.0, dec=22.3)
    np.testing.assert_allclose(mt.sum(axis=(1, 2)) / expo, 1.0, atol=0.01)
    rel = np.abs(mt - mg).max(axis=(1, 2)) / mg.max(axis=(1, 2))
    print("\ntemplate vs RadialGaussian, max diff / peak:", rel)
    assert rel.max() < 0.02


def test_isotropic_wcs_constant_exposure_is_exposure_times_solid_angle():
    g = WcsGeom((120.0, 30.0), 40, 0.25, proj="CAR", frame="GAL")
    expo = np.array([1e10, 2e10, 3e10, 4e10])
    m = isotropic_map(g, ENERGIES, expo, OFF, PSF, value=2.0)
    ref = 2.0 * expo[:, None, None] * g.solid_angle()[None]
    np.testing.assert_allclose(m, ref, rtol=2e-3)


def test_isotropic_exposure_gradient_is_smoothed_and_conserved():
    """A step in exposure across a map that is padded enough: the PSF smooths the step and
    the total within the inner region is conserved."""
    g = WcsGeom((0.0, 0.0), 60, 0.2, proj="CAR", frame="GAL")
    ecube = np.ones((4, 1, 2)) * np.array([1.0, 3.0])[None, None, :] * 1e10
    eg = WcsGeom((0.0, 0.0), (2, 1), (90.0, 90.0), proj="CAR", frame="GAL")
    fn = cube_exposure(ecube, eg, method="nearest")
    m = isotropic_map(g, ENERGIES, fn, OFF, PSF)
    m0 = isotropic_map(g, ENERGIES, fn, OFF, PSF, convolve=False)
    om = g.solid_angle()
    # far from the step (|l| > 5 sigma): unchanged
    assert m[-1, 30, 5] == pytest.approx(m0[-1, 30, 5], rel=1e-3)
    # at the step the convolved map is in between
    col = m[0, 30] / om[30] / 1e10
    assert 1.2 < col[29] < 2.8 and 1.2 < col[30] < 2.8
    # totals agree (the PSF only moves counts across the step, well inside the map)
    np.testing.assert_allclose(m.sum(axis=(1, 2)), m0.sum(axis=(1, 2)), rtol=5e-3)


@pytest.mark.parametrize("method", ["local", "harmonic"])
def test_isotropic_healpix(method):
    h = HpxGeom(nside=32, frame="GAL", region=(30.0, 10.0, 12.0))
    expo = np.array([1e10, 2e10, 3e10, 4e10])
    m = isotropic_map(h, ENERGIES, expo, OFF, PSF, method=method)
    ref = expo[:, None] * 4 * np.pi / h.npix_allsky
    np.testing.assert_allclose(m, np.broadcast_to(ref, m.shape), rtol=3e-3)


def test_mapcube_interpolation_and_map():
    cg = WcsGeom((0.0, 0.0), (360, 180), 1.0, proj="CAR", frame="GAL")
    ce = np.array([100.0, 1000.0, 10000.0, 100000.0])
    lon, lat = cg.pixel_centers()
    spatial = 1.0 + 0.5 * np.cos(np.radians(lat)) ** 2
    cube = spatial[None] * (ce[:, None, None] / 1000.0) ** -2.7
    e = np.array([300.0, 3000.0])
    f = mapcube_intensity(cube, cg, ce, e)
    from fermixr.geom.frames import gal_to_cel

    ra, dec = gal_to_cel(np.array([0.5, 10.5]), np.array([0.5, -20.5]))
    v = f(ra, dec)
    expected = (1 + 0.5 * np.cos(np.radians([0.5, -20.5])) ** 2)[None] * (e[:, None] / 1e3) ** -2.7
    np.testing.assert_allclose(v, expected, rtol=1e-3)
    # map of the cube on a WCS ROI: flat-ish intensity x constant exposure
    g = WcsGeom((0.0, 0.0), 30, 0.2, proj="CAR", frame="GAL")
    table = king_table(SIGMAS[:2])
    m = mapcube_map(g, e, (cube, cg, ce), np.array([1e10, 1e10]), *table)
    lg, bg = g.pixel_centers()
    approx = (1 + 0.5 * np.cos(np.radians(bg)) ** 2)[None] * (e[:, None, None] / 1e3) ** -2.7
    np.testing.assert_allclose(m / (1e10 * g.solid_angle()), approx, rtol=5e-3)


def test_errors_name_the_problem(roi30):
    with pytest.raises(GeometryError, match="energy rows"):
        point_source_map(roi30, ENERGIES[:3], *CENTER, 1.0, OFF, PSF)
    with pytest.raises(GeometryError, match="one value per energy"):
        point_source_map(roi30, ENERGIES, *CENTER, [1.0, 2.0], OFF, PSF)
    with pytest.raises(GeometryError, match="ascending"):
        point_source_map(roi30, ENERGIES, *CENTER, 1.0, OFF[::-1], PSF)
    with pytest.raises(GeometryError, match="unknown radial model"):
        extended_source_map(roi30, ENERGIES, ("RadialBanana", 1.0), np.ones(4), OFF, PSF,
                            ra=1.0, dec=2.0)
    with pytest.raises(GeometryError, match="ra and dec"):
        extended_source_map(roi30, ENERGIES, ("RadialDisk", 1.0), np.ones(4), OFF, PSF)
    with pytest.raises(GeometryError, match="method"):
        cube_exposure(np.ones((4, 2, 2)), WcsGeom((0, 0), 2, 1.0), method="cubic")
