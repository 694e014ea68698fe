"""Exposure cube against gtexpcube2's binned_expmap.fits.gz of the shared Crab day."""

from __future__ import annotations

import time

import numpy as np
import pytest
import xarray as xr

from fermixr.exposure.expcube import costheta_points, exposure_at

pytestmark = pytest.mark.shared_data


def _read_ltcube(path):
    try:
        from fermixr.io.ltcube import read_ltcube
    except ImportError:  # private fallback until fermixr.io.ltcube exists
        from astropy.io import fits

        with fits.open(path) as h:
            lt = np.array(h["EXPOSURE"].data["COSBINS"], float)
            wlt = np.array(h["WEIGHTED_EXPOSURE"].data["COSBINS"], float)
            cb = h["CTHETABOUNDS"].data
            hd = h["EXPOSURE"].header
            return xr.Dataset(
                {"exposure": (("pix", "costheta"), lt, {"units": "s"}),
                 "weighted_exposure": (("pix", "costheta"), wlt, {"units": "s"})},
                coords={"pix": np.arange(lt.shape[0]),
                        "costheta_min": ("costheta", np.array(cb["CTHETA_MIN"], float)),
                        "costheta_max": ("costheta", np.array(cb["CTHETA_MAX"], float))},
                attrs={"nside": hd["NSIDE"], "ordering": hd["ORDERING"],
                       "frame": "CEL" if hd["COORDSYS"].startswith("EQU") else "GAL"})
    return read_ltcube(path)


@pytest.fixture(scope="module")
def ltcube(crab_day):
    return _read_ltcube(crab_day / "ltcube.fits.gz")


@pytest.fixture(scope="module")
def expmap(crab_day):
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(crab_day / "binned_expmap.fits.gz") as h:
        ref = h[0].data.astype(float)
        energies = np.array(h["ENERGIES"].data["Energy"], float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = WCS(h[0].header).celestial
    ny, nx = ref.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx]
    sky = w.pixel_to_world(xx, yy).icrs
    return ref, energies, sky.ra.deg.ravel(), sky.dec.deg.ravel()


def test_costheta_points_sqrt_binning():
    n = 40
    i = np.arange(n)
    edges = 1 - (np.arange(n + 1) / n) ** 2
    np.testing.assert_allclose(costheta_points(edges[1:], edges[:-1]),
                               1 - ((i + 0.5) / n) ** 2, rtol=1e-14)


def test_binned_expmap(ltcube, expmap, caldb_dir):
    ref, energies, ra, dec = expmap
    exposure_at(ltcube, "P8R2_SOURCE_V6", ra[:2], dec[:2], energies[:2], caldb=caldb_dir)
    t0 = time.perf_counter()
    exp = exposure_at(ltcube, "P8R2_SOURCE_V6", ra, dec, energies, evtype=3,
                      caldb=caldb_dir).reshape(ref.shape)
    dt = time.perf_counter() - t0
    rel = np.abs(exp / ref - 1)
    print(f"\nexposure cube vs gtexpcube2 ({ref.size} values): median |rel| "
          f"{np.median(rel):.2e}, worst {rel.max():.2e}, {dt * 1e3:.0f} ms")
    assert rel.max() < 0.01
    assert np.median(rel) < 1e-5
    # the efficiency correction matters at the 1e-3 level and is on by default
    off = exposure_at(ltcube, "P8R2_SOURCE_V6", ra[:50], dec[:50], energies, caldb=caldb_dir,
                      efficiency=False).reshape(ref.shape[0], -1)
    assert np.max(np.abs(off / ref.reshape(ref.shape[0], -1)[:, :50] - 1)) > 5e-4
