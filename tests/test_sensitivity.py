"""Flux sensitivity (fermixr.estimators.sensitivity, `fermixr sensitivity`) on the LAT's
own IRFs (the shared CALDB, P8R3_SOURCE_V2) and isotropic spectrum: thresholds fall as
1/sqrt(t) where the background dominates and as 1/t where the minimum counts do; the
integral threshold agrees with the differential ones (Gaussian limit: 1/n^2 adds over
bins); WCS and HEALPix maps agree where they overlap; extended sources need more flux;
bad input is one clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from fermixr.errors import EstimatorError
from fermixr.estimators import sensitivity as S

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def inputs(shared_data):
    caldb = shared_data / "caldb"
    iso = shared_data / "lat-crab-1day" / "iso_P8R3_SOURCE_V2.txt"
    if not iso.is_file():
        pytest.skip(f"{iso} not found")
    return caldb, iso


def _model(inputs, years, **kw):
    caldb, iso = inputs
    return S.SensitivityModel("P8R3_SOURCE_V2", 3, caldb=str(caldb), obs_time_yr=years,
                              isodiff=str(iso), **kw)


def test_asimov_threshold_solves_ts_and_counts():
    s = np.array([5.0, 3.0, 1.0])
    b = np.array([100.0, 50.0, 10.0])
    n = S.threshold_norm(s, b, 25.0, 3.0)
    assert S.asimov_ts(n * s, b) == pytest.approx(25.0, rel=1e-8)
    n = S.threshold_norm(s, b * 1e-6, 25.0, 3.0)           # no background: counts rule
    assert n * s.sum() == pytest.approx(3.0)


def test_thresholds_scale_with_time_and_integral_matches_differential(inputs):
    years = [0.03, 0.3, 30.0, 300.0]
    res = {t: S.flux_sensitivity(_model(inputs, t), glon=120.0, glat=45.0) for t in years}
    fl = {t: res[t]["int"]["flux"] for t in years}
    assert fl[0.03] > fl[0.3] > fl[30.0] > fl[300.0]
    # between the regimes over 0.1-100 GeV: steeper than 1/sqrt(t), shallower than 1/t
    slopes = np.diff(np.log([fl[t] for t in years])) / np.diff(np.log(years))
    assert np.all((slopes < -0.5) & (slopes > -1.0)), slopes
    assert slopes[0] < slopes[-1]                     # nearer 1/t at short exposure
    # integral thresholds in a background-dominated band (100 MeV - 1 GeV): 1/sqrt(t);
    # in a counts-limited one (30 - 100 GeV, short exposure): 1/t
    low = [S.flux_sensitivity(_model(inputs, t), glon=120.0, glat=45.0, emin=100.0,
                              emax=1000.0, nbin=4)["int"]["flux"] for t in (3.0, 30.0, 300.0)]
    low_slopes = np.diff(np.log(low)) / np.log(10.0)      # measured: -0.525, -0.510
    assert low_slopes[1] == pytest.approx(-0.5, abs=0.015)
    assert -0.5 > low_slopes[1] > low_slopes[0]           # approaching 1/sqrt(t)
    high = [S.flux_sensitivity(_model(inputs, t), glon=120.0, glat=45.0, emin=3e4,
                               emax=1e5, nbin=2)["int"] for t in (0.01, 0.1)]
    assert high[0]["npred"] == pytest.approx(3.0) and high[1]["npred"] == pytest.approx(3.0)
    assert high[0]["flux"] / high[1]["flux"] == pytest.approx(10.0, rel=1e-6)
    # the lowest bin is background-limited already at 0.3 yr
    d = {t: res[t]["diff"] for t in years}
    s0 = np.log(d[300.0]["flux"][0] / d[0.3]["flux"][0]) / np.log(1000.0)
    assert s0 == pytest.approx(-0.5, abs=0.02)
    # the highest bin at short exposure is counts-limited (3 counts): 1/t exactly
    assert d[0.03]["npred"][-1] == pytest.approx(3.0) and d[0.3]["npred"][-1] == \
        pytest.approx(3.0)
    assert d[0.03]["flux"][-1] / d[0.3]["flux"][-1] == pytest.approx(10.0, rel=1e-6)
    # integral against differential: TS adds over bins, so the integral norm lies below
    # every bin's and, where TS ~ n^2 (background-limited, 300 yr), 1/n^2 adds up
    for t in years:
        it, df = res[t]["int"], res[t]["diff"]
        assert it["ts"] == pytest.approx(25.0, rel=1e-6) or it["npred"] == \
            pytest.approx(3.0)
        assert it["ebin_ts"].sum() == pytest.approx(it["ts"], rel=1e-9)
        n_int = it["dnde"] / 1e-13
        n_bins = df["dnde"] / (1e-13 * (df["e_ref"] / 1000.0) ** -2.0)
        assert n_int <= n_bins.min() * (1 + 1e-9)
    # in the background-dominated band TS ~ n^2 per bin, so 1/n^2 adds over the bins
    # (measured: 1.023 at 30 yr, 1.008 at 300 yr)
    r = S.flux_sensitivity(_model(inputs, 300.0), glon=120.0, glat=45.0, emin=100.0,
                           emax=1000.0, nbin=4)
    n_int = r["int"]["dnde"] / 1e-13
    n_bins = r["diff"]["dnde"] / (1e-13 * (r["diff"]["e_ref"] / 1000.0) ** -2.0)
    assert n_int ** -2 == pytest.approx(np.sum(n_bins ** -2.0), rel=0.02)
    print("integral flux (ph cm-2 s-1) vs years:", {t: f"{fl[t]:.3e}" for t in years})


def test_extended_sources_need_more_flux(inputs):
    m = _model(inputs, 10.0)
    pt = S.flux_sensitivity(m, glon=120.0, glat=45.0)["int"]["flux"]
    g = S.flux_sensitivity(m, glon=120.0, glat=45.0, spatial_model="RadialGaussian",
                           spatial_size=1.0)["int"]["flux"]
    d = S.flux_sensitivity(m, glon=120.0, glat=45.0, spatial_model="RadialDisk",
                           spatial_size=1.0)["int"]["flux"]
    assert g > 1.5 * pt and d > 1.5 * pt


def _galdiff(path):
    """A smooth Galactic 'diffuse' cube: intensity rising towards the plane."""
    ny, nx = 41, 61
    e = np.geomspace(50.0, 2e5, 20)
    glat = -10.0 + 0.5 * np.arange(ny)
    cube = (1e-6 * (e / 100.0) ** -2.6)[:, None, None] * (1 + 4 * np.exp(-np.abs(glat) / 4.0)
                                                         )[None, :, None] * np.ones(nx)
    h = fits.PrimaryHDU(cube.astype(np.float32))
    h.header.update(CTYPE1="GLON-CAR", CTYPE2="GLAT-CAR", CRVAL1=120.0, CRVAL2=0.0,
                    CRPIX1=31.0, CRPIX2=21.0, CDELT1=-0.5, CDELT2=0.5, CUNIT1="deg",
                    CUNIT2="deg", BUNIT="photon/cm**2/MeV/s/sr")
    en = fits.BinTableHDU.from_columns([fits.Column(name="Energy", format="D", array=e,
                                                    unit="MeV")], name="ENERGIES")
    fits.HDUList([h, en]).writeto(path)
    return path


def test_wcs_and_healpix_maps_agree_where_they_overlap(inputs, tmp_path):
    from fermixr.geom.hpx import HpxGeom
    from fermixr.geom.wcs import WcsGeom

    m = _model(inputs, 10.0, galdiff=str(_galdiff(tmp_path / "gal.fits")))
    opts = dict(nbin=6, emin=300.0, emax=3e4)
    wcs = WcsGeom((120.0, 2.0), (9, 9), 0.5, proj="CAR", frame="GAL")
    wm = S.sensitivity_map(m, wcs, **opts)
    hpx = HpxGeom(order=7, frame="GAL", region=(120.0, 2.0, 1.5))
    hm = S.sensitivity_map(m, hpx, **opts)
    lon, lat = hpx.pixel_centers()
    x, y = wcs.world_to_pix(lon, lat, frame="GAL")
    inside = (x >= 0) & (x <= 8) & (y >= 0) & (y <= 8)
    assert inside.sum() > 20
    from scipy.ndimage import map_coordinates

    w_at = map_coordinates(np.log(wm["flux"]), [y[inside], x[inside]], order=1)
    rel = np.abs(np.exp(w_at) / hm["flux"][inside] - 1)
    assert rel.max() < 0.01, rel.max()
    # the map follows the background: more flux needed towards the plane
    assert wm["flux"][0].mean() > wm["flux"][-1].mean()


def test_cli_writes_fermipys_hdus_and_bad_input_is_one_line(inputs, tmp_path):
    caldb, iso = inputs
    out = tmp_path / "s.fits"
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", "sensitivity", "--glon", "120",
                        "--glat", "45", "--obs_time_yr", "5", "--isodiff", str(iso),
                        "--caldb", str(caldb), "--map_type", "wcs", "--wcs_npix", "3",
                        "--nbin", "4", "--output", str(out)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    with fits.open(out) as h:
        assert [x.name for x in h] == ["PRIMARY", "DIFF_FLUX", "INT_FLUX", "MAP_FLUX",
                                       "MAP_EFLUX", "MAP_NPRED", "MAP_DIFF_FLUX",
                                       "MAP_DIFF_NPRED", "EBOUNDS"]
        assert h["DIFF_FLUX"].columns.names[:8] == ["e_min", "e_ref", "e_max", "flux",
                                                    "eflux", "dnde", "e2dnde", "npred"]
        assert h["MAP_DIFF_FLUX"].data.shape == (4, 3, 3)
        assert np.allclose(h["MAP_FLUX"].data, h["INT_FLUX"].data["flux"][0], rtol=1e-9)
    for args, msg in ([["--glon", "1", "--glat", "1", "--isodiff", str(iso)],
                       "no exposure; give ltcube"],
                      [["--glon", "1", "--glat", "1", "--obs_time_yr", "1"],
                       "no background model; give galdiff"]):
        r = subprocess.run([sys.executable, "-m", "fermixr.cli", "sensitivity", *args,
                            "--output", str(tmp_path / "x.fits")],
                           capture_output=True, text=True, cwd=REPO)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.splitlines()) == 1
        assert not (tmp_path / "x.fits").exists()
    with pytest.raises(EstimatorError, match="does not cover"):
        S.flux_sensitivity(_model(inputs, 1.0, galdiff=str(tmp_path / "g2.fits")
                                  if _galdiff(tmp_path / "g2.fits") else None),
                           glon=300.0, glat=60.0)
