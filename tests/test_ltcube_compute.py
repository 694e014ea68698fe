"""Livetime cube computation: kernel vs brute force, options, and the gtltcube reference."""

from __future__ import annotations

import math

import healpy as hp
import numpy as np
import pytest

from fermixr.errors import SelectionError
from fermixr.exposure import _kernels
from fermixr.exposure.ltcube import (
    compute_ltcube,
    compute_ltcube_reference,
    prepare_rows,
    ring_geometry,
)
from fermixr.io.ltcube import nbins_from_dcostheta, nside_from_binsz, read_ltcube


def _radec(v):
    v = np.asarray(v)
    return np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360.0, np.degrees(np.arcsin(v[:, 2]))


def random_ft2(rng, n, t0=1e8, rock=50.0, live_frac=0.9):
    """Random spacecraft rows: zenith anywhere, boresight ``rock`` deg (+-10) from it,
    x axis orthogonal to the boresight."""
    zen = rng.normal(size=(n, 3))
    zen /= np.linalg.norm(zen, axis=1)[:, None]
    a = rng.normal(size=(n, 3))
    a -= (a * zen).sum(1)[:, None] * zen
    a /= np.linalg.norm(a, axis=1)[:, None]
    ang = np.radians(rock + rng.uniform(-10, 10, n))[:, None]
    z = np.cos(ang) * zen + np.sin(ang) * a
    x = np.cross(z, rng.normal(size=(n, 3)))
    x /= np.linalg.norm(x, axis=1)[:, None]
    start = t0 + 30.0 * np.arange(n)
    d = {"START": start, "STOP": start + 30.0,
         "LIVETIME": 30.0 * live_frac * rng.uniform(0.8, 1.0, n)}
    d["RA_SCZ"], d["DEC_SCZ"] = _radec(z)
    d["RA_ZENITH"], d["DEC_ZENITH"] = _radec(zen)
    d["RA_SCX"], d["DEC_SCX"] = _radec(x)
    return d


def _span(ft2):
    """One GTI from the first row's START to the last row's STOP (random_ft2's rows are
    contiguous, so FT2 rows cover it)."""
    return [ft2["START"][0]], [ft2["STOP"][-1]]


def test_binning_rules_of_gtltcube():
    assert nside_from_binsz(1.0) == 64
    assert nside_from_binsz(4.0) == 16
    assert nside_from_binsz(0.5) == 128
    assert nside_from_binsz(0.01) == 512
    assert nbins_from_dcostheta(0.025) == 40
    assert nbins_from_dcostheta(0.05) == 20
    assert nbins_from_dcostheta(0.03) == 33


def test_ring_geometry_matches_healpy():
    for nside in (1, 4, 16):
        g = ring_geometry(nside)
        assert g.ring_npix.sum() == 12 * nside ** 2
        for r in range(g.ring_first.size):
            j = np.arange(g.ring_npix[r])
            theta, phi = hp.pix2ang(nside, g.ring_first[r] + j)
            assert np.allclose(np.cos(theta), g.ring_z[r], atol=1e-14)
            assert np.allclose(phi, g.ring_phi0[r] + j / g.ring_invdphi[r], atol=1e-12)


@pytest.mark.parametrize("nside,zmax,phibins", [(8, 180.0, 0), (8, 90.0, 0), (4, 105.0, 3),
                                                 (16, 60.0, 0), (2, 90.0, 2)])
def test_kernel_equals_bruteforce(nside, zmax, phibins):
    rng = np.random.default_rng(nside * 1000 + int(zmax) + phibins)
    ft2 = random_ft2(rng, 150)
    # GTIs that cut some rows partially and drop others
    gs = np.array([1e8 + 100.0, 1e8 + 1000.0, 1e8 + 2000.0])
    ge = np.array([1e8 + 995.0, 1e8 + 1817.0, 1e8 + 4400.0])
    ref = compute_ltcube_reference(ft2, gs, ge, zmax=zmax, nside=nside, dcostheta=0.05,
                                   phibins=phibins)
    for parallel in (False, True):
        ds = compute_ltcube(ft2, gs, ge, zmax=zmax, nside=nside, dcostheta=0.05,
                            phibins=phibins, parallel=parallel)
        assert ds.exposure.dims == ref.exposure.dims
        np.testing.assert_allclose(ds.exposure.values, ref.exposure.values, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(ds.weighted_exposure.values, ref.weighted_exposure.values,
                                   rtol=1e-12, atol=1e-9)
    assert ref.exposure.values.sum() > 0


def test_serial_and_parallel_kernels_agree_bitwise():
    rng = np.random.default_rng(7)
    ft2 = random_ft2(rng, 400)
    a = compute_ltcube(ft2, *_span(ft2), zmax=95.0, nside=16, parallel=False)
    b = compute_ltcube(ft2, *_span(ft2), zmax=95.0, nside=16, parallel=True)
    assert np.array_equal(a.exposure.values, b.exposure.values)
    assert np.array_equal(a.weighted_exposure.values, b.weighted_exposure.values)


def test_kernel_random_pixels_reference():
    """The raw kernel on random inputs against the numpy reference (RING order)."""
    rng = np.random.default_rng(11)
    g = ring_geometry(8)
    ft2 = random_ft2(rng, 60)
    rows = prepare_rows(ft2, np.array([0.0]), np.array([2e8]), phibins=4)
    nring = g.ring_first.size
    for cosmin, zmax in ((0.0, 100.0), (0.3, 180.0)):
        out = np.zeros((g.npix, 20 * 5, 2))
        _kernels.ring_fill_serial(**g.kernel_arrays(), reg_lo=np.zeros(nring, np.int64),
                                  row_mode=np.full(rows["dt"].size, 2, dtype=np.int8),
                                  reg_cnt=np.zeros(nring, np.int64), use_region=False, **rows,
                                  cosmin=cosmin, nbins=20, sqrt_bins=True,
                                  coszmax=math.cos(math.radians(zmax)), use_zenith=zmax < 180,
                                  phibins=4, ntask=7, out=out)
        P = np.stack([g.px, g.py, g.pz], 1)
        o, w = _kernels.ltcube_fill_reference(
            P, np.stack([rows["zx"], rows["zy"], rows["zz"]], 1),
            np.stack([rows["nx"], rows["ny"], rows["nz"]], 1),
            np.stack([rows["xx"], rows["xy"], rows["xz"]], 1), rows["dt"], rows["dtw"],
            cosmin, 20, True, math.cos(math.radians(zmax)), zmax < 180, 4)
        np.testing.assert_allclose(out[..., 0], o, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(out[..., 1], w, rtol=1e-12, atol=1e-9)
        # azimuth blocks add up to the summed block
        np.testing.assert_allclose(o[:, 20:].reshape(-1, 4, 20).sum(1), o[:, :20], rtol=1e-12)


def test_partial_gti_overlap_and_weights():
    """One 30 s interval with 24 s livetime, pointing at the north pole."""
    ft2 = {"START": np.array([100.0]), "STOP": np.array([130.0]), "LIVETIME": np.array([24.0]),
           "RA_SCZ": np.array([0.0]), "DEC_SCZ": np.array([90.0]),
           "RA_ZENITH": np.array([0.0]), "DEC_ZENITH": np.array([90.0])}
    # GTIs cover 5 + 7.5 = 12.5 s of the 30 s -> livetime 24 * 12.5/30 = 10
    ds = compute_ltcube(ft2, [100.0, 120.0], [105.0, 127.5], nside=4, dcostheta=0.05,
                        ordering="RING")
    lt = ds.exposure.values
    assert lt[0].sum() == pytest.approx(10.0)          # pixel near the pole: one bin
    k = int(math.sqrt(1.0 / 48.0) * 20)                # first ring: cos theta = 1 - 1/48
    assert k == 2 and lt[0, k] == pytest.approx(10.0)
    np.testing.assert_allclose(ds.weighted_exposure.values, lt * 24.0 / 30.0)
    # pixels below the horizon (dec < 0) get nothing, the rest exactly 10 s each
    dec = ds.dec.values
    tot = lt.sum(1)
    assert np.all(tot[dec < 0] == 0)
    assert np.allclose(tot[dec > 0], 10.0)
    # GTIs outside the FT2 rows -> an error naming the uncovered time (it used to be an
    # all-zero cube); no GTI at all -> error
    with pytest.raises(SelectionError, match=r"does not cover 50.0 s .*MET 0.0-50.0"):
        compute_ltcube(ft2, [0.0], [50.0], nside=4)
    with pytest.raises(SelectionError, match=r"does not cover 10.0 s"):
        compute_ltcube(ft2, [90.0, 120.0], [105.0, 127.5], nside=4)
    with pytest.raises(SelectionError, match="GTI"):
        compute_ltcube(ft2, [], [], nside=4)


def test_zero_livetime_rows_are_skipped():
    rng = np.random.default_rng(5)
    ft2 = random_ft2(rng, 20)
    ft2["LIVETIME"][::2] = 0.0
    full = compute_ltcube(ft2, *_span(ft2), nside=4)
    keep = {k: v[1::2] for k, v in ft2.items()}
    half = compute_ltcube(keep, keep["START"], keep["STOP"], nside=4)
    assert np.array_equal(full.exposure.values, half.exposure.values)
    assert full.attrs["ft2_rows_used"] == 10


def test_region_equals_full_sky_inside():
    rng = np.random.default_rng(9)
    ft2 = random_ft2(rng, 300)
    full = compute_ltcube(ft2, *_span(ft2), zmax=90.0, nside=16)
    reg = compute_ltcube(ft2, *_span(ft2), zmax=90.0, nside=16, region=(83.63, 22.01, 30.0))
    m = reg.in_region.values
    sep = hp.rotator.angdist([83.63, 22.01], [full.ra.values, full.dec.values], lonlat=True)
    assert np.array_equal(m, np.degrees(sep) < 30.0)
    assert 0 < m.sum() < m.size
    assert np.array_equal(reg.exposure.values[m], full.exposure.values[m])
    assert np.array_equal(reg.weighted_exposure.values[m], full.weighted_exposure.values[m])
    assert np.all(reg.exposure.values[~m] == 0)
    # a region containing a pole and one wrapping RA = 0
    for region in ((10.0, 80.0, 25.0), (359.0, -5.0, 12.0)):
        r = compute_ltcube(ft2, *_span(ft2), zmax=90.0, nside=16, region=region)
        mm = r.in_region.values
        assert np.array_equal(r.exposure.values[mm], full.exposure.values[mm])


def test_galactic_frame_and_ring_ordering():
    rng = np.random.default_rng(12)
    ft2 = random_ft2(rng, 80)
    gal = compute_ltcube(ft2, *_span(ft2), zmax=100.0, nside=8, frame="GAL", ordering="RING")
    assert gal.attrs["frame"] == "GAL" and "glon" in gal.coords
    # brute force on the Galactic pixel centres converted to equatorial unit vectors
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    c = SkyCoord(l=gal.glon.values * u.deg, b=gal.glat.values * u.deg, frame="galactic")
    c = c.transform_to("fk5")
    P = np.stack([np.cos(c.dec.rad) * np.cos(c.ra.rad), np.cos(c.dec.rad) * np.sin(c.ra.rad),
                  np.sin(c.dec.rad)], 1)
    rows = prepare_rows(ft2, np.array([0.0]), np.array([2e8]))
    o, _ = _kernels.ltcube_fill_reference(
        P, np.stack([rows["zx"], rows["zy"], rows["zz"]], 1),
        np.stack([rows["nx"], rows["ny"], rows["nz"]], 1), None, rows["dt"], rows["dtw"],
        0.0, 40, True, math.cos(math.radians(100.0)), True, 0)
    # a pixel centre within ~1e-9 of a bin edge could fall either way: compare totals
    # and require all but a handful of (pixel, bin) cells to match
    np.testing.assert_allclose(gal.exposure.values.sum(1), o.sum(1), rtol=1e-9, atol=1e-6)
    assert np.mean(np.isclose(gal.exposure.values, o, atol=1e-6)) > 0.999
    cel = compute_ltcube(ft2, *_span(ft2), zmax=100.0, nside=8, ordering="RING")
    nest = compute_ltcube(ft2, *_span(ft2), zmax=100.0, nside=8, ordering="NESTED")
    r2n = hp.ring2nest(8, np.arange(768))
    assert np.array_equal(nest.exposure.values[r2n], cel.exposure.values)


def test_progress_and_chunk_iterable():
    rng = np.random.default_rng(13)
    ft2 = random_ft2(rng, 100)
    chunks = [{k: v[i:i + 30] for k, v in ft2.items()} for i in range(0, 100, 30)]
    calls = []
    ds = compute_ltcube(iter(chunks), *_span(ft2), nside=4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(30, None), (60, None), (90, None), (100, None)]
    whole = compute_ltcube(ft2, *_span(ft2), nside=4)
    np.testing.assert_allclose(ds.exposure.values, whole.exposure.values, rtol=1e-13)
    from fermixr.conventions import validate_product

    validate_product(ds)
    validate_product(compute_ltcube(ft2, *_span(ft2), nside=4, phibins=2,
                                    region=(10.0, 20.0, 40.0)))


def test_weighted_false_marks_table_unusable():
    rng = np.random.default_rng(14)
    ft2 = random_ft2(rng, 10)
    ds = compute_ltcube(ft2, *_span(ft2), nside=2, weighted=False)
    assert np.isnan(ds.weighted_exposure.values).all()
    assert ds.attrs["weighted"] is False


# --------------------------------------------------------------------------------------
# against the Science Tools
# --------------------------------------------------------------------------------------

def _compare(ds, ref, var):
    a, b = ds[var].values, ref[var].values
    ta, tb = a.sum(1), b.sum(1)
    m = tb > 0.01 * tb.max()
    rel = np.abs(ta[m] - tb[m]) / tb[m]
    c = ds.costheta.values
    dmu = np.abs((a * c).sum(1)[m] / ta[m] - (b * c).sum(1)[m] / tb[m])
    return rel, dmu


@pytest.mark.shared_data
def test_matches_gtltcube_reference(crab_day):
    from astropy.io import fits

    gti = fits.open(crab_day / "ft1.fits.gz")["GTI"].data
    ref = read_ltcube(crab_day / "ltcube.fits.gz")
    # the reference binning: nside 16 (binsz 4), 20 bins (dcostheta 0.05), no zenith cut
    ds = compute_ltcube(crab_day / "ft2.fits.gz", gti["START"], gti["STOP"], zmax=180.0,
                        binsz=4.0, dcostheta=0.05)
    assert ds.attrs["nside"] == 16 and ds.sizes["costheta"] == 20
    np.testing.assert_allclose(ds.costheta_min.values, ref.costheta_min.values)
    for var in ("exposure", "weighted_exposure"):
        rel, dmu = _compare(ds, ref, var)
        print(f"\n{var}: total livetime per pixel rel. diff median {np.median(rel):.2e} "
              f"worst {rel.max():.2e}; mean cos theta diff median {np.median(dmu):.2e} "
              f"worst {dmu.max():.2e}; per-cell max |diff| "
              f"{np.abs(ds[var].values - ref[var].values).max():.3g} s")
        assert rel.max() < 1e-3
        assert dmu.max() < 5e-3
        # in fact equal to gtltcube's float32 accumulation
        np.testing.assert_allclose(ds[var].values, ref[var].values, rtol=1e-5, atol=0.05)
    # zmax = 90 differs by ~13 % (median) as the data README says
    z90 = compute_ltcube(crab_day / "ft2.fits.gz", gti["START"], gti["STOP"], zmax=90.0,
                         binsz=4.0, dcostheta=0.05)
    t90 = z90.exposure.values.sum(1)
    tref = ref.exposure.values.sum(1)
    m = tref > 0.01 * tref.max()
    med = np.median(np.abs(t90[m] - tref[m]) / tref[m])
    print(f"zmax=90 vs reference: median rel. difference {med:.3f}")
    assert 0.10 < med < 0.16


@pytest.mark.shared_data
def test_shared_day_equals_bruteforce(crab_day):
    """The whole shared day (5604 rows) against the per-row x per-pixel reference."""
    from fermixr.io.ft2 import read_ft2

    from fermixr.select.gti import clip, ft2_coverage

    ft2 = read_ft2(crab_day / "ft2.fits.gz")
    # the time the rows cover (the day has gaps in its rows), cut to a window
    gs, ge = clip(*ft2_coverage(ft2), ft2["START"][0] + 4000.0, ft2["STOP"][-1] - 9000.0)
    for zmax in (90.0, 180.0):
        ref = compute_ltcube_reference(ft2, gs, ge, zmax=zmax, nside=8, dcostheta=0.025)
        ds = compute_ltcube(ft2, gs, ge, zmax=zmax, nside=8, dcostheta=0.025)
        np.testing.assert_allclose(ds.exposure.values, ref.exposure.values, rtol=1e-12, atol=1e-7)
        np.testing.assert_allclose(ds.weighted_exposure.values, ref.weighted_exposure.values,
                                   rtol=1e-12, atol=1e-7)


def _block_reference(ft2_chunks, gs, ge, nside, nbins, zmax):
    """Brute force in blocks of rows (rows x pixels matrices), for long inputs."""
    g = ring_geometry(nside)
    P = np.stack([g.px, g.py, g.pz], 1)
    out = np.zeros((g.npix, nbins))
    czm = math.cos(math.radians(zmax))
    for ch in ft2_chunks:
        r = prepare_rows(ch, np.asarray(gs), np.asarray(ge))
        c = np.stack([r["zx"], r["zy"], r["zz"]], 1) @ P.T
        ok = (c > 0) & ((np.stack([r["nx"], r["ny"], r["nz"]], 1) @ P.T) > czm)
        k = np.minimum((np.sqrt(np.maximum(1 - c, 0)) * nbins).astype(int), nbins - 1)
        w = np.where(ok, r["dt"][:, None], 0.0)
        pix = np.broadcast_to(np.arange(g.npix), c.shape)
        out += np.bincount((pix * nbins + k).ravel(), weights=w.ravel(),
                           minlength=g.npix * nbins).reshape(g.npix, nbins)
    return out


@pytest.mark.slow
@pytest.mark.shared_data
def test_simulated_year_equals_bruteforce(crab_day):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from ltcube_year import ROWS_PER_YEAR, tiled_ft2_chunks, tiled_time_range

    t0, t1 = tiled_time_range(ROWS_PER_YEAR)
    # one GTI across the tiled day's gaps in its rows: the coverage check is off here
    ds = compute_ltcube(tiled_ft2_chunks(ROWS_PER_YEAR), [t0], [t1], zmax=90.0, nside=4,
                        ordering="RING", ft2_tolerance=math.inf)
    ref = _block_reference(tiled_ft2_chunks(ROWS_PER_YEAR, chunk_rows=20000), [t0], [t1], 4, 40, 90.0)
    tot, rtot = ds.exposure.values.sum(1), ref.sum(1)
    assert np.max(np.abs(tot - rtot) / rtot) < 1e-9
    np.testing.assert_allclose(ds.exposure.values, ref, rtol=1e-9, atol=1e-4)


@pytest.mark.shared_data
def test_file_input_progress_and_dict_input_agree(crab_day):
    from fermixr.io.ft2 import read_ft2

    calls = []
    p = crab_day / "ft2.fits.gz"
    from fermixr.select.gti import clip, ft2_coverage

    ft2 = read_ft2(p)
    # the time the rows cover within a window that ends inside a row
    gs, ge = clip(*ft2_coverage(ft2), ft2["START"][100], ft2["STOP"][3000] + 7.0)
    a = compute_ltcube(p, gs, ge, nside=8, zmax=100.0, chunk_rows=1000,
                       progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (5604, 5604)
    assert all(t == 5604 for _, t in calls) and len(calls) >= 3
    b = compute_ltcube(ft2, gs, ge, nside=8, zmax=100.0)
    np.testing.assert_allclose(a.exposure.values, b.exposure.values, rtol=1e-12)
    assert a.attrs["ft2_rows_used"] == 2902
