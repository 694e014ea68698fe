"""The built-in synthetic example data set (fermixr.simulate.synthetic, examples/data)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from fermixr.simulate import synthetic as S

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "data"
BCF = EXAMPLE / "caldb" / "data" / "glast" / "lat" / "bcf"
REAL_BCF = Path("caldb") / "data" / "glast" / "lat" / "bcf"

# a small configuration for tests that generate data (a few seconds at most)
SMALL = S.SyntheticConfig(seed=7, duration=4 * 3600.0, roi_radius=8.0, background_margin=12.0)


def _vec(ra, dec):
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def _sep(a, b):
    return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1, 1)))


@pytest.fixture(scope="module")
def truth():
    with open(EXAMPLE / "truth.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    a = tmp_path_factory.mktemp("synth_a")
    paths = S.make_example_dataset(a, SMALL)
    return paths


# ---------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------
def test_generator_is_deterministic(small_run, tmp_path):
    again = S.make_example_dataset(tmp_path / "b", SMALL)
    names = ["ft1", "ft2", "model", "iso", "truth", "caldb_ea", "caldb_psf", "caldb_edisp",
             "caldb_index"]
    for key in names:
        assert Path(small_run[key]).read_bytes() == Path(again[key]).read_bytes(), key
    other = S.make_example_dataset(tmp_path / "c", SMALL.replace(seed=8))
    assert Path(other["ft1"]).read_bytes() != Path(small_run["ft1"]).read_bytes()
    # the FT2 and the response do not depend on the seed
    assert Path(other["ft2"]).read_bytes() == Path(small_run["ft2"]).read_bytes()


def test_committed_data_match_generator(truth):
    """examples/data was made by the generator with its default configuration."""
    cfg = S.SyntheticConfig()
    assert truth["seed"] == cfg.seed
    ft2 = S.make_ft2_rows(cfg)
    with fits.open(EXAMPLE / "ft2.fits") as h:
        d = h["SC_DATA"].data
        np.testing.assert_array_equal(d["START"], ft2["START"])
        np.testing.assert_allclose(d["RA_SCZ"], ft2["RA_SCZ"], atol=1e-4)
        np.testing.assert_allclose(d["LIVETIME"], ft2["LIVETIME"], rtol=1e-12)
    with fits.open(EXAMPLE / "ft1.fits") as h:
        assert len(h["EVENTS"].data) == truth["n_events"]
        assert h["EVENTS"].header["NAXIS2"] == truth["n_events"]
    assert sum(s["n_selected"] for s in truth["sources"]) + truth["background"][
        "n_selected"] == truth["n_events"]
    total = sum(p.stat().st_size for p in EXAMPLE.rglob("*") if p.is_file())
    assert total < 2.0e6, f"examples/data is {total} bytes"


# ---------------------------------------------------------------------------------------
# layout against the real files
# ---------------------------------------------------------------------------------------
def _layout(path):
    with fits.open(path) as h:
        return [(hdu.name, [(c.name, c.format.upper(), c.dim) for c in hdu.columns]
                 if isinstance(hdu, fits.BinTableHDU) else None) for hdu in h]


@pytest.mark.shared_data
@pytest.mark.parametrize("ours, real", [
    ("ft1.fits", "lat-crab-1day/ft1.fits.gz"),
    ("ft2.fits", "lat-crab-1day/ft2.fits.gz"),
    ("caldb/data/glast/lat/bcf/ea/aeff_FXR_SYNTH_V1_FB.fits",
     "caldb/data/glast/lat/bcf/ea/aeff_P8R2_SOURCE_V6_FB.fits.gz"),
    ("caldb/data/glast/lat/bcf/psf/psf_FXR_SYNTH_V1_FB.fits",
     "caldb/data/glast/lat/bcf/psf/psf_P8R2_SOURCE_V6_FB.fits.gz"),
    ("caldb/data/glast/lat/bcf/edisp/edisp_FXR_SYNTH_V1_FB.fits",
     "caldb/data/glast/lat/bcf/edisp/edisp_P8R2_SOURCE_V6_FB.fits.gz"),
    ("caldb/data/glast/lat/caldb.indx", "caldb/data/glast/lat/caldb.indx.gz"),
])
def test_same_layout_as_real_files(shared_data, ours, real):
    assert _layout(EXAMPLE / ours) == _layout(shared_data / real)
    with fits.open(EXAMPLE / ours) as a, fits.open(shared_data / real) as b:
        for ha, hb in zip(a[1:], b[1:]):
            assert [c.unit for c in ha.columns] == [c.unit for c in hb.columns], ha.name
            for key in ("HDUCLAS1", "HDUCLAS2", "DETNAM", "CCNM0001", "PSFVER", "EDISPVER",
                        "TIMESYS", "MJDREFI", "CIFVERSN"):
                if key in hb.header:
                    assert ha.header[key] == hb.header[key], (ha.name, key)


@pytest.mark.shared_data
def test_table_grids_equal_p8r2(shared_data):
    real = shared_data / REAL_BCF
    pairs = [("ea/aeff_FXR_SYNTH_V1_FB.fits", "ea/aeff_P8R2_SOURCE_V6_FB.fits.gz"),
             ("psf/psf_FXR_SYNTH_V1_FB.fits", "psf/psf_P8R2_SOURCE_V6_FB.fits.gz"),
             ("edisp/edisp_FXR_SYNTH_V1_FB.fits", "edisp/edisp_P8R2_SOURCE_V6_FB.fits.gz")]
    for ours, theirs in pairs:
        with fits.open(BCF / ours) as a, fits.open(real / theirs) as b:
            for ha, hb in zip(a[1:], b[1:]):
                for col in ("ENERG_LO", "ENERG_HI", "CTHETA_LO", "CTHETA_HI"):
                    if col in hb.columns.names:
                        np.testing.assert_allclose(ha.data[col], hb.data[col], rtol=2e-6,
                                                   err_msg=f"{ours} {ha.name} {col}")


def test_files_are_marked_synthetic():
    for path in [EXAMPLE / "ft1.fits", EXAMPLE / "ft2.fits", *sorted(BCF.rglob("*.fits"))]:
        with fits.open(path) as h:
            comments = " ".join(str(c) for hdu in h for c in hdu.header.get("COMMENT", []))
            assert "SYNTHETIC" in comments, path


# ---------------------------------------------------------------------------------------
# the response tables
# ---------------------------------------------------------------------------------------
def test_caldb_index_points_at_the_hdus():
    with fits.open(BCF.parent / "caldb.indx") as h:
        rows = h["CIF"].data
        assert len(rows) == 16   # aeff 2x3, psf 2x3, edisp 2x2
        for r in rows:
            path = BCF.parent.parent.parent.parent / r["CAL_DIR"] / r["CAL_FILE"]
            cbd = [r["CAL_CBD"][i * 70:(i + 1) * 70].strip() for i in range(9)] \
                if isinstance(r["CAL_CBD"], str) else [s.strip() for s in r["CAL_CBD"]]
            assert cbd[0] == "VERSION(FXR_SYNTH_V1)"
            with fits.open(path) as f:
                hdu = f[int(r["CAL_XNO"])]
                assert hdu.header["DETNAM"] == r["DETNAM"]
                assert hdu.header["CCNM0001"] == r["CAL_CNAM"]
                assert hdu.header["CBD20001"] == cbd[1]


def test_effective_area_size_and_shape():
    with fits.open(BCF / "ea" / "aeff_FXR_SYNTH_V1_FB.fits") as h:
        tot = h["EFFECTIVE AREA_FRONT"].data["EFFAREA"][0] + \
            h["EFFECTIVE AREA_BACK"].data["EFFAREA"][0]          # (ncth, nE) in m2
        elo = h["EFFECTIVE AREA_FRONT"].data["ENERG_LO"][0]
    on_axis = tot[-1]
    band = (elo > 1000) & (elo < 3e5)
    assert np.all((on_axis[band] > 0.8) & (on_axis[band] < 0.9))
    i100 = np.searchsorted(elo, 100.0)
    assert 0.15 < on_axis[i100] < 0.4           # falls at low energy
    assert np.all(np.diff(tot[:, i100 + 20]) > 0)  # falls with inclination
    assert tot[0, i100 + 20] < 0.01 * on_axis[i100 + 20]


def test_psf_containment_and_normalisation():
    # 68% containment of FRONT+BACK events weighted by Aeff (on axis)
    r = np.concatenate([[0.0], np.geomspace(1e-4, 60.0, 6000)])
    sinr = np.sin(np.radians(r))
    for energy, lo, hi in ((100.0, 3.5, 7.0), (1.0e4, 0.08, 0.25), (1.0e5, 0.06, 0.15)):
        w = {c: S.aeff_cm2(energy, 0.95, c) for c in ("FRONT", "BACK")}
        pv = sum(w[c] * S.psf_value(r, energy, 0.95, c) for c in w) / sum(w.values())
        integrand = 2 * np.pi * pv * sinr
        cum = np.concatenate([[0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1])
                                             * np.radians(np.diff(r)))])
        assert abs(cum[-1] - 1.0) < 0.02, (energy, cum[-1])
        r68 = np.interp(0.68, cum, r)
        assert lo < r68 < hi, (energy, r68)


def test_psf_sampling_matches_tabulated_psf():
    rng = np.random.default_rng(3)
    n = 40000
    for conv, ci in (("FRONT", 0), ("BACK", 1)):
        for energy, cth in ((150.0, 0.85), (2500.0, 0.55)):
            d = np.tile([0.0, 0.0, 1.0], (n, 1))
            _, off = S._apply_psf(rng, np.full(n, energy), np.full(n, cth),
                                  np.full(n, ci, np.int16), d)
            q = np.quantile(off, [0.25, 0.5, 0.68, 0.9, 0.95])
            r = np.linspace(0, 2 * q[-1], 20001)
            pv = S.psf_value(r, energy, cth, conv) * 2 * np.pi * np.sin(np.radians(r))
            cum = np.concatenate([[0], np.cumsum(0.5 * (pv[1:] + pv[:-1]))
                                  * np.radians(r[1] - r[0])])
            np.testing.assert_allclose(np.interp(q, r, cum), [0.25, 0.5, 0.68, 0.9, 0.95],
                                       atol=0.012, err_msg=f"{conv} {energy}")


def test_edisp_sampling_matches_tabulated_dispersion():
    rng = np.random.default_rng(4)
    n = 40000
    for conv, ci in (("FRONT", 0), ("BACK", 1)):
        for energy, cth in ((100.0, 0.9), (3.0e4, 0.45)):
            erec = S._apply_edisp(rng, np.full(n, energy), np.full(n, cth),
                                  np.full(n, ci, np.int16))
            x = np.linspace(0.05 * energy, 4 * energy, 40001)
            dv = S.edisp_value(x, energy, cth, conv)
            cum = np.cumsum(dv) * (x[1] - x[0])
            assert abs(cum[-1] - 1) < 2e-3
            q = np.quantile(erec, [0.16, 0.5, 0.84])
            np.testing.assert_allclose(np.interp(q, x, cum), [0.16, 0.5, 0.84], atol=0.012)
            half_width = (q[2] - q[0]) / 2 / energy
            assert 0.05 < half_width < 0.16, (conv, energy, half_width)


# ---------------------------------------------------------------------------------------
# FT2 geometry
# ---------------------------------------------------------------------------------------
def test_orbit_geometry_is_sensible():
    with fits.open(EXAMPLE / "ft2.fits") as h:
        d = h["SC_DATA"].data
        z = _vec(d["RA_SCZ"], d["DEC_SCZ"])
        x = _vec(d["RA_SCX"], d["DEC_SCX"])
        zen = _vec(d["RA_ZENITH"], d["DEC_ZENITH"])
        npole = _vec(d["RA_NPOLE"], d["DEC_NPOLE"])
        rock = d["ROCK_ANGLE"].astype(float)
        # z axis at the rock angle from the zenith, x perpendicular to z
        assert np.max(np.abs(_sep(z, zen) - np.abs(rock))) < 0.1
        assert np.max(np.abs(np.sum(z * x, -1))) < 1e-5
        # rocking +-50 deg, alternating north (towards the orbit pole) and south each orbit
        assert rock.max() == pytest.approx(50.0, abs=0.01)
        assert rock.min() == pytest.approx(-50.0, abs=0.01)
        north = np.sum((z - zen) * npole, -1)
        big = np.abs(rock) > 1
        assert np.all(np.sign(north[big]) == np.sign(rock[big]))
        t = d["START"]
        flips = t[1:][np.diff(np.sign(rock)) != 0]
        period = np.median(np.diff(flips))      # north on one orbit, south on the next
        assert 93 * 60 < period < 97 * 60
        # inclination 25.6 deg: zenith declination and orbit pole
        assert np.max(np.abs(d["DEC_ZENITH"])) == pytest.approx(25.6, abs=0.05)
        np.testing.assert_allclose(d["DEC_NPOLE"], 90 - 25.6, atol=1e-3)
        # position along the zenith, altitude ~545 km
        pos = d["SC_POSITION"].astype(float)
        rad = np.linalg.norm(pos, axis=1)
        assert np.max(_sep(pos / rad[:, None], zen)) < 0.01
        assert np.all((d["RAD_GEO"] > 5.3e5) & (d["RAD_GEO"] < 5.8e5))
        # quaternion reproduces the axes (QSJ_4 scalar)
        q1, q2, q3, q4 = (d[f"QSJ_{i}"] for i in range(1, 5))
        zq = np.stack([2 * (q1 * q3 + q2 * q4), 2 * (q2 * q3 - q1 * q4),
                       1 - 2 * (q1 ** 2 + q2 ** 2)], -1)
        assert np.max(_sep(zq, z)) < 0.01
        # livetime ~0.9 x 30 s, zero in the SAA, flags as requested
        dt = d["STOP"] - d["START"]
        np.testing.assert_allclose(dt, 30.0)
        saa = d["IN_SAA"]
        assert 0.03 < saa.mean() < 0.25
        assert np.all(d["LIVETIME"][saa] == 0)
        frac = d["LIVETIME"][~saa] / dt[~saa]
        assert np.all((frac > 0.8) & (frac < 0.95)) and abs(np.median(frac) - 0.9) < 0.04
        assert np.all(d["DATA_QUAL"] == 1) and np.all(d["LAT_CONFIG"] == 1)
        # the Sun lies in the x-z plane on the +x side
        sun = _vec(d["RA_SUN"], d["DEC_SUN"])
        y = np.cross(z, x)
        assert np.max(np.abs(np.sum(sun * y, -1))) < 1e-4
        assert np.all(np.sum(sun * x, -1) > 0)


# ---------------------------------------------------------------------------------------
# FT1 events
# ---------------------------------------------------------------------------------------
def test_events_inside_roi_energy_and_gtis(truth):
    with fits.open(EXAMPLE / "ft1.fits") as h:
        ev = h["EVENTS"].data
        gti = h["GTI"].data
        hdr = h["EVENTS"].header
    roi = truth["roi"]
    d = _vec(ev["RA"], ev["DEC"])
    assert np.all(_sep(d, _vec(roi["ra"], roi["dec"])) <= roi["radius"] + 1e-4)
    assert np.all((ev["ENERGY"] >= roi["emin"] * (1 - 1e-6))
                  & (ev["ENERGY"] <= roi["emax"] * (1 + 1e-6)))
    t = ev["TIME"]
    assert np.all(np.diff(t) >= 0)
    k = np.searchsorted(gti["START"], t, side="right") - 1
    assert np.all(k >= 0) and np.all(t <= gti["STOP"][k])
    # no event in SAA rows
    with fits.open(EXAMPLE / "ft2.fits") as h2:
        sc = h2["SC_DATA"].data
    row = np.searchsorted(sc["START"], t, side="right") - 1
    assert not np.any(sc["IN_SAA"][row])
    # bits: SOURCE class on every event, FRONT/BACK bit consistent with CONVERSION_TYPE
    evclass = S.bits_to_int(ev["EVENT_CLASS"])
    evtype = S.bits_to_int(ev["EVENT_TYPE"])
    assert np.all(evclass & 128)
    conv = ev["CONVERSION_TYPE"]
    assert np.all(((evtype & 1) > 0) == (conv == 0)) and np.all(((evtype & 2) > 0) == (conv == 1))
    assert np.all(np.array([bin(w & 60).count("1") for w in evtype]) == 1)   # one PSF type
    # galactic coordinates, zenith and inclination consistent with the pointing
    assert "BIT_MASK(EVENT_CLASS,128,P8R2)" in [hdr[f"DSTYP{i}"] for i in range(1, 6)]
    gl, gb = S.equatorial_to_galactic(83.6331, 22.0145)
    assert gl == pytest.approx(184.5575, abs=1e-3) and gb == pytest.approx(-5.7843, abs=1e-3)
    zen = _vec(sc["RA_ZENITH"][row], sc["DEC_ZENITH"][row])
    # the FT2 row holds the pointing at the row start; the event time is within 30 s
    assert np.max(np.abs(_sep(d, zen) - ev["ZENITH_ANGLE"])) < 2.5
    # no photon comes from below the horizon; a few land there through the PSF tails
    assert np.mean(ev["ZENITH_ANGLE"] > truth["horizon_zenith_angle"]) < 0.01
    z = _vec(sc["RA_SCZ"][row], sc["DEC_SCZ"][row])
    # (the z axis moves up to ~6 deg within a row while the rocking angle switches)
    dtheta = np.abs(_sep(d, z) - ev["THETA"])
    assert np.median(dtheta) < 1.0 and np.max(dtheta) < 7.0
    # true inclinations stop at cos(theta) = 0.2 (78.5 deg) where the effective area ends
    assert np.median(ev["THETA"]) < 60 and np.mean(ev["THETA"] > 78.5) < 0.02
    assert 1000 < len(ev) < 6000


def test_drawn_counts_agree_with_exposure_times_flux(small_run):
    """n_detected of every component and of their sum vs the quadrature expectation."""
    tr = small_run["truth_dict"]
    comps = tr["sources"] + [tr["background"]]
    n_tot = sum(c["n_detected"] for c in comps)
    mu_tot = sum(c["expected_detected"] for c in comps)
    for c in comps:
        assert abs(c["n_detected"] - c["expected_detected"]) < 4 * math.sqrt(
            c["expected_detected"]), c
    assert abs(n_tot - mu_tot) < 4 * math.sqrt(mu_tot)
    assert mu_tot > 1000


def _efficiency_from_file(pars, loge):
    """The Science Tools' piecewise-linear efficiency parameter (slow reference)."""
    out = []
    for le in np.atleast_1d(loge):
        a0, b0, a1, e1, a2, e2 = [float(v) for v in pars]
        if le < e1:
            out.append(a0 * le + b0)
            continue
        b1 = (a0 - a1) * e1 + b0
        if le < e2:
            out.append(a1 * le + b1)
            continue
        out.append(a2 * le + (a1 - a2) * e2 + b1)
    return np.array(out)


def test_files_reproduce_the_truth_expectation(truth):
    """Exposure x flux from the written FT2 rows and the written Aeff table (row-start
    pointing, bilinear table interpolation as the Science Tools do) agrees with the
    truth's expectation, and the drawn counts with both."""
    from scipy.interpolate import RegularGridInterpolator

    with fits.open(BCF / "ea" / "aeff_FXR_SYNTH_V1_FB.fits") as h:
        tabs = []
        for conv in ("FRONT", "BACK"):
            t = h[f"EFFECTIVE AREA_{conv}"].data
            le = np.log10(np.sqrt(t["ENERG_LO"][0] * t["ENERG_HI"][0]))
            ct = 0.5 * (t["CTHETA_LO"][0] + t["CTHETA_HI"][0])
            ct = ct.astype(float)
            tabs.append(RegularGridInterpolator((ct, le.astype(float)),
                                                t["EFFAREA"][0].astype(float) * 1e4))
            eff = h[f"EFFICIENCY_PARAMS_{conv}"].data["EFFICIENCY_PARS"]
    with fits.open(EXAMPLE / "ft2.fits") as h:
        sc = h["SC_DATA"].data
        live = sc["LIVETIME"].astype(float)
        ok = live > 0
        z = _vec(sc["RA_SCZ"][ok], sc["DEC_SCZ"][ok])
        zen = _vec(sc["RA_ZENITH"][ok], sc["DEC_ZENITH"][ok])
        live = live[ok]
        frac = live / (sc["STOP"][ok] - sc["START"][ok])
    e_lo, e_hi = truth["simulated_true_energy"]
    edges = np.geomspace(e_lo, e_hi, 121)
    ec = np.sqrt(edges[:-1] * edges[1:])
    p0 = _efficiency_from_file(eff[0], np.log10(ec))
    p1 = _efficiency_from_file(eff[1], np.log10(ec))
    for src in truth["sources"]:
        sp = src["spectrum"]
        g = 1 - sp["Index"]
        norm = sp["Integral"] / (sp["UpperLimit"] ** g - sp["LowerLimit"] ** g)
        fint = norm * (edges[1:] ** g - edges[:-1] ** g)
        d = _vec(src["ra"], src["dec"])
        cth = z @ d
        vis = (cth >= 0.2) & (_sep(zen, d) < truth["horizon_zenith_angle"])
        c = np.clip(cth[vis], ct[0], ct[-1])
        pts = np.stack(np.broadcast_arrays(c[:, None], np.log10(ec)[None, :]), -1)
        area = sum(t(pts) for t in tabs)                          # (rows, energies)
        eff_f = p0[None, :] * frac[vis, None] + p1[None, :]
        mu = np.sum(live[vis, None] * area * eff_f * fint[None, :])
        assert mu == pytest.approx(src["expected_detected"], rel=0.03), src["name"]
        assert abs(src["n_detected"] - mu) < 4 * math.sqrt(mu), src["name"]


def test_side_files(truth):
    iso = np.loadtxt(EXAMPLE / "iso_FXR_SYNTH_V1.txt")
    b = truth["background"]
    e = iso[:, 0]
    assert np.sum((e >= 100) & (e <= 1e5)) > 10
    # the tabulated intensity (log-log interpolation, as FileFunction) integrates to the
    # true one over 100 MeV - 100 GeV
    fine = np.geomspace(100, 1e5, 4001)
    val = np.exp(np.interp(np.log(fine), np.log(e), np.log(iso[:, 1])))
    integral = np.sum(0.5 * (val[1:] + val[:-1]) * np.diff(fine))
    assert integral == pytest.approx(b["intensity"], rel=1e-3)
    xml = (EXAMPLE / "source_model.xml").read_text()
    for s in truth["sources"]:
        assert f'name="{s["name"]}"' in xml
    assert 'file="iso_FXR_SYNTH_V1.txt"' in xml


def test_bit_arrays_round_trip(tmp_path):
    words = np.array([0, 1, 128, 16877567, 2 ** 31 - 1, 2 ** 31 + 5])
    bits = S._bits32(words)
    assert bits.shape == (6, 32)
    np.testing.assert_array_equal(S.bits_to_int(bits), words)
    col = fits.Column("EVENT_CLASS", "32X", array=bits)
    fits.BinTableHDU.from_columns([col]).writeto(tmp_path / "b.fits")
    with fits.open(tmp_path / "b.fits") as h:
        np.testing.assert_array_equal(S.bits_to_int(h[1].data["EVENT_CLASS"]), words)
