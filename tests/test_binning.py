"""gtbin: counts cubes against cntmap.fits.gz, HEALPix conservation, kernels vs references."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from fermixr.conventions import validate_product
from fermixr.geom import EnergyAxis, HpxGeom, WcsGeom, geom_from_attrs, geom_from_config
from fermixr.select import _kernels as K
from fermixr.select.binning import bin_counts

CRAB = (83.6331, 22.0145)


def _events(ra, dec, energy, **attrs):
    ds = xr.Dataset({"RA": ("event", np.asarray(ra, float)), "DEC": ("event", np.asarray(dec, float)),
                     "ENERGY": ("event", np.asarray(energy, float)),
                     "TIME": ("event", np.arange(len(ra), dtype=float))})
    ds.attrs.update({"TSTART": 0.0, "TSTOP": 1.0, "MJDREF": 51910.0}, **attrs)
    return ds


@pytest.mark.shared_data
def test_counts_cube_equals_gtbin_reference(crab_day):
    from astropy.io import fits

    from fermixr.io.ft1 import read_ft1

    ev, _ = read_ft1(crab_day / "ft1.fits.gz")
    with fits.open(crab_day / "cntmap.fits.gz") as ref:
        geom = WcsGeom.from_header(ref[0].header)
        axis = EnergyAxis.from_ebounds(ref[1].data["E_MIN"], ref[1].data["E_MAX"], unit="keV")
        cube = ref[0].data.copy()
    counts = bin_counts(ev, geom, axis)
    validate_product(counts)
    assert counts["counts"].dims == ("energy", "y", "x") and counts["counts"].dtype == np.int32
    np.testing.assert_array_equal(counts["counts"].values, cube)
    assert cube.sum() == 853 and counts.attrs["n_events_binned"] == 853
    assert geom_from_attrs(counts) == geom
    np.testing.assert_allclose(counts["energy_min"].values[1], 251.785078, rtol=1e-7)

    # the same cube from Fermipy-style options
    g2 = geom_from_config({"projtype": "WCS", "coordsys": "GAL", "proj": "CAR", "npix": 100,
                           "binsz": 0.2}, CRAB)
    a2 = EnergyAxis.from_bounds(200, 20000, enumbins=20)
    assert a2 == axis
    np.testing.assert_array_equal(bin_counts(ev, g2, a2)["counts"].values, cube)


@pytest.mark.shared_data
def test_iau_galactic_frame_would_misplace_events(crab_day):
    """Why the Science Tools' rotation is used: astropy's Galactic frame moves events
    across pixel edges of the reference cube."""
    from astropy.coordinates import SkyCoord
    from astropy.io import fits

    from fermixr.io.ft1 import read_ft1

    ev, _ = read_ft1(crab_day / "ft1.fits.gz")
    with fits.open(crab_day / "cntmap.fits.gz") as ref:
        geom = WcsGeom.from_header(ref[0].header)
        cube = ref[0].data.sum(axis=0)
    c = SkyCoord(ev["RA"].values.astype(float), ev["DEC"].values.astype(float), unit="deg",
                 frame="fk5").galactic
    e = ev["ENERGY"].values
    keep = (e >= 200) & (e < 20000)
    ix, iy = geom.pixel_index(c.l.deg[keep], c.b.deg[keep])
    img = np.zeros(geom.shape, int)
    ok = ix >= 0
    np.add.at(img, (iy[ok], ix[ok]), 1)
    assert np.abs(img - cube).sum() > 0


def test_bin_counts_matches_numpy_histogram_on_random_events():
    rng = np.random.default_rng(4)
    n = 20000
    ra = rng.uniform(75, 92, n)
    dec = rng.uniform(14, 30, n)
    energy = 10 ** rng.uniform(2, 4.5, n)
    geom = WcsGeom(CRAB, (40, 30), 0.3, proj="TAN", frame="CEL")
    axis = EnergyAxis.from_bounds(200, 20000, enumbins=8)
    got = bin_counts(_events(ra, dec, energy), geom, axis)["counts"].values
    # numpy reference: wcslib pixel coords, floor(x + 0.5) in 0-based, searchsorted energies
    x, y = geom.world_to_pix(ra, dec)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    ie = np.searchsorted(axis.edges, energy, side="right") - 1
    ok = (ix >= 0) & (ix < 40) & (iy >= 0) & (iy < 30) & (ie >= 0) & (ie < 8)
    ref = np.zeros((8, 30, 40), int)
    np.add.at(ref, (ie[ok], iy[ok], ix[ok]), 1)
    np.testing.assert_array_equal(got, ref)


def test_energy_edges_follow_gtbin():
    geom = WcsGeom((0.0, 0.0), 3, 1.0, proj="CAR", frame="CEL")
    axis = EnergyAxis([100.0, 1000.0, 10000.0])
    ev = _events([0.0] * 5, [0.0] * 5, [99.99, 100.0, 1000.0, 9999.0, 10000.0])
    c = bin_counts(ev, geom, axis)["counts"].values[:, 1, 1]
    assert c.tolist() == [1, 2]  # emin kept, emax dropped, an edge goes to the upper bin


def test_pixel_edges_follow_gtbin():
    geom = WcsGeom((0.0, 0.0), (4, 1), 1.0, proj="CAR", frame="CEL")
    # FITS x = 2.5 - lon: pixel i covers [i + 0.5, i + 1.5), the left edge included
    lon = np.array([2.0, 1.0, 0.0, -1.0, -2.0, 2.4999, 1.0001])
    ix, _ = geom.pixel_index(lon % 360, np.zeros(7))
    assert ix.tolist() == [0, 1, 2, 3, -1, -1, 0]
    x1 = geom._world_to_fits_pix(lon % 360, np.zeros(7))[0]
    np.testing.assert_array_equal(K.fits_pixel_index(x1, 4), ix)


def test_bin_index_kernels_match_references():
    rng = np.random.default_rng(9)
    e = 10 ** rng.uniform(1.5, 5.5, 50000)
    log_axis = EnergyAxis.from_bounds(100, 100000, binsperdec=7)
    np.testing.assert_array_equal(K.log_bin_index(e, log_axis.emin, log_axis.emax, log_axis.nbin),
                                  log_axis.bin_index(e))
    # log formula and edge search agree away from float ties
    ss = np.searchsorted(log_axis.edges, e, side="right") - 1
    ss[(e < 100) | (e >= 100000)] = -1
    assert np.mean(ss == log_axis.bin_index(e)) > 0.9999
    edges = np.array([30.0, 50.0, 300.0, 1000.0, 3e4])
    ref = np.searchsorted(edges, e, side="right") - 1
    ref[(e < edges[0]) | (e >= edges[-1])] = -1
    np.testing.assert_array_equal(K.edge_bin_index(e, edges), ref)
    p = rng.uniform(-2, 12, 1000)
    ref_p = np.where((p >= 0.5) & (p < 10.5), np.floor(p - 0.5), -1).astype(int)
    np.testing.assert_array_equal(K.fits_pixel_index(p, 10), ref_p)
    ie, iy, ix = (rng.integers(-1, 4, 5000) for _ in range(3))
    ref3 = np.zeros((4, 4, 4), int)
    ok = (ie >= 0) & (iy >= 0) & (ix >= 0)
    np.add.at(ref3, (ie[ok], iy[ok], ix[ok]), 1)
    np.testing.assert_array_equal(K.histogram_3d(ie, iy, ix, 4, 4, 4), ref3)


def test_healpix_allsky_conserves_events_and_orderings_agree():
    import healpy as hp

    rng = np.random.default_rng(2)
    n = 30000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    energy = 10 ** rng.uniform(2, 5, n)
    axis = EnergyAxis.from_bounds(100, 100000, enumbins=6)
    ev = _events(ra, dec, energy)
    ring = bin_counts(ev, HpxGeom(nside=16, ordering="RING", frame="GAL"), axis)
    nest = bin_counts(ev, HpxGeom(nside=16, ordering="NESTED", frame="GAL"), axis)
    validate_product(ring)
    assert ring["counts"].dims == ("energy", "pix")
    in_range = np.sum((energy >= 100) & (energy < 100000))
    assert ring["counts"].values.sum() == nest["counts"].values.sum() == in_range
    # NESTED pixel k is RING pixel nest2ring(k)
    r = ring["counts"].values
    nst = nest["counts"].values
    np.testing.assert_array_equal(nst, r[:, hp.nest2ring(16, np.arange(hp.nside2npix(16)))])
    assert ring.attrs["geom"]["ordering"] == "RING"


def test_healpix_region_is_a_subset_of_allsky():
    rng = np.random.default_rng(8)
    n = 20000
    ra = rng.uniform(60, 110, n)
    dec = rng.uniform(0, 45, n)
    energy = 10 ** rng.uniform(2.5, 4, n)
    axis = EnergyAxis.from_bounds(300, 10000, enumbins=3)
    ev = _events(ra, dec, energy)
    region = HpxGeom(nside=32, ordering="NESTED", frame="CEL", region=(CRAB[0], CRAB[1], 8.0))
    full = HpxGeom(nside=32, ordering="NESTED", frame="CEL")
    cr = bin_counts(ev, region, axis)
    cf = bin_counts(ev, full, axis)
    np.testing.assert_array_equal(cr["counts"].values, cf["counts"].values[:, region.pix])
    np.testing.assert_array_equal(cr["pix"].values, region.pix)
    assert 0 < cr["counts"].values.sum() < cf["counts"].values.sum()


def test_threaded_projection_equals_single_call(monkeypatch):
    import fermixr.geom.wcs as wcs_mod

    rng = np.random.default_rng(12)
    lon = rng.uniform(170, 200, 5000)
    lat = rng.uniform(-20, 10, 5000)
    geom = WcsGeom((184.5, -5.8), 100, 0.2, proj="AIT", frame="GAL")
    x_ref, y_ref = geom._world_to_fits_pix(lon, lat)
    monkeypatch.setattr(wcs_mod, "_THREAD_MIN", 10)
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    x, y = geom._world_to_fits_pix(lon, lat)
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)
