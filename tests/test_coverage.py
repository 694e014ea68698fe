"""Data the instrument did not see is refused (issue 15): GTIs not covered by FT2 rows are an
error naming the uncovered time (or, on request, cut to the rows as gtmktime would); NaN rows
of FT1/FT2 files are dropped with a warning counting them and the livetime lost."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits

from fermixr.errors import SelectionError
from fermixr.exposure.ltcube import compute_ltcube
from fermixr.select.gti import (
    check_ft2_coverage,
    check_ft2_files_cover,
    ft2_coverage,
    make_gti,
    make_gti_dataset,
    uncovered_intervals,
)


def _rows(t0, n, step=30.0, gap_after=None, gap=0.0):
    start = t0 + step * np.arange(n)
    if gap_after is not None:
        start[gap_after:] += gap
    rng = np.random.default_rng(3)
    return {"START": start, "STOP": start + step, "LIVETIME": np.full(n, 0.8 * step),
            "RA_SCZ": rng.uniform(0, 360, n), "DEC_SCZ": rng.uniform(-60, 60, n),
            "RA_ZENITH": rng.uniform(0, 360, n), "DEC_ZENITH": rng.uniform(-30, 30, n)}


def test_uncovered_intervals_and_tolerance():
    cs, ce = [100.0, 400.0], [300.0, 500.0]
    us, ue = uncovered_intervals([50.0, 350.0], [320.0, 600.0], cs, ce)
    np.testing.assert_array_equal(us, [50.0, 300.0, 350.0, 500.0])
    np.testing.assert_array_equal(ue, [100.0, 320.0, 400.0, 600.0])
    # pieces up to the tolerance (1 s) at GTI edges do not count
    us, _ = uncovered_intervals([99.5], [300.8], cs, ce)
    assert us.size == 0
    us, _ = uncovered_intervals([98.0], [300.0], cs, ce)
    assert us.size == 1
    with pytest.raises(SelectionError, match=r"does not cover 220.0 s of the 520.0 s of good "
                                             r"time .*MET 50.0-100.0 \(50.0 s\).*trim_to_ft2"):
        check_ft2_coverage([50.0, 350.0], [320.0, 600.0], cs, ce)
    check_ft2_coverage([100.0, 410.0], [300.0, 500.0], cs, ce)   # covered: no error


def test_ltcube_refuses_uncovered_gtis_instead_of_a_low_or_empty_cube():
    """Before: the cube silently held the livetime of the rows there were (half of the
    GTIs -> half of the livetime; a disjoint FT2 -> all zeros)."""
    ft2 = _rows(1000.0, 20)                          # rows cover 1000-1600 s
    full = compute_ltcube(ft2, [1000.0], [1600.0], nside=2)
    assert full.exposure.values.sum() > 0
    with pytest.raises(SelectionError, match=r"does not cover 600.0 s of the 1200.0 s .*"
                                             r"MET 1600.0-2200.0 \(600.0 s\)"):
        compute_ltcube(ft2, [1000.0], [2200.0], nside=2)
    with pytest.raises(SelectionError, match=r"does not cover 300.0 s of the 300.0 s"):
        compute_ltcube(ft2, [5000.0], [5300.0], nside=2)
    # a gap of rows inside a GTI (rows 10.. shifted by 90 s)
    holed = _rows(1000.0, 20, gap_after=10, gap=90.0)
    with pytest.raises(SelectionError, match=r"MET 1300.0-1390.0 \(90.0 s\)"):
        compute_ltcube(holed, [1000.0], [1690.0], nside=2)
    # sub-second edges are tolerated; the livetime is that of the covered time
    edge = compute_ltcube(ft2, [999.6], [1600.4], nside=2)
    np.testing.assert_array_equal(edge.exposure.values, full.exposure.values)


def test_make_gti_checks_or_trims_to_the_ft2_rows():
    ft2 = _rows(1000.0, 20, gap_after=10, gap=90.0)   # rows: 1000-1300, 1390-1690
    event_gti = ([900.0], [1800.0])
    with pytest.raises(SelectionError, match=r"does not cover 300.0 s"):
        make_gti(event_gti, ft2)
    s, e = make_gti(event_gti, ft2, trim_to_ft2=True)
    np.testing.assert_array_equal(s, [1000.0, 1390.0])
    np.testing.assert_array_equal(e, [1300.0, 1690.0])
    ds = make_gti_dataset(event_gti, ft2, trim_to_ft2=True)
    assert ds.attrs["trimmed_to_ft2_s"] == pytest.approx(300.0) and ds.attrs["trim_to_ft2"]
    # trimmed GTIs give the cube of the rows there are, and pass the ltcube's own check
    a = compute_ltcube(ft2, s, e, nside=2)
    assert a.exposure.values.sum() > 0
    # without FT2 rows (no filter, no FT2 given) the event GTIs pass through unchanged
    s2, e2 = make_gti(event_gti)
    np.testing.assert_array_equal(s2, [900.0])


@pytest.mark.shared_data
def test_crab_day_ft2_cut_to_half_is_refused(crab_day, tmp_path):
    """The Crab day with FT2 rows for the first half of its GTIs: the livetime cube used to
    be 35% of the real one (0.355 measured); now an error naming 41192.3 s uncovered.
    With the GTIs trimmed to the rows (gtmktime's behaviour) the cube equals the one from
    the full FT2 on those GTIs."""
    from fermixr.io.ft1 import read_ft1_gti
    from fermixr.io.ft2 import read_ft2

    gti = read_ft1_gti(crab_day / "ft1.fits.gz")
    gs, ge = gti["START"].values, gti["STOP"].values
    with fits.open(crab_day / "ft2.fits.gz") as h:
        k = int(np.searchsorted(h["SC_DATA"].data["START"], gs[gs.size // 2]))
        h["SC_DATA"].data = h["SC_DATA"].data[:k]
        h.writeto(tmp_path / "ft2_half.fits")
    kw = dict(zmax=90.0, binsz=4.0, dcostheta=0.05)
    with pytest.raises(SelectionError, match=r"does not cover 41192.3 s of the 63395.7 s of "
                                             r"good time .*MET 239601279.0-239606861.1"):
        compute_ltcube(tmp_path / "ft2_half.fits", gs, ge, **kw)
    # the same check without computing anything (for validate)
    with pytest.raises(SelectionError, match=r"ft2_half.fits does not cover 41192.3 s"):
        check_ft2_files_cover(gs, ge, tmp_path / "ft2_half.fits")
    check_ft2_files_cover(gs, ge, crab_day / "ft2.fits.gz")
    half = read_ft2(tmp_path / "ft2_half.fits", columns=["START", "STOP"])
    tgti = make_gti_dataset(gti, half, trim_to_ft2=True)
    assert tgti.attrs["trimmed_to_ft2_s"] == pytest.approx(41192.3, abs=0.1)
    ts, te = tgti["START"].values, tgti["STOP"].values
    a = compute_ltcube(tmp_path / "ft2_half.fits", ts, te, **kw)
    b = compute_ltcube(crab_day / "ft2.fits.gz", ts, te, **kw)
    np.testing.assert_array_equal(a.exposure.values, b.exposure.values)
    # the whole day is covered to the second: it passes unchanged
    assert uncovered_intervals(gs, ge, *ft2_coverage(read_ft2(crab_day / "ft2.fits.gz",
                                                              columns=["START", "STOP"])),
                               tol=0.0)[0].size == 0


def _write_ft2(path, ft2):
    cols = [fits.Column(name=k, format="D", array=np.asarray(v, dtype=np.float64))
            for k, v in ft2.items()]
    fits.HDUList([fits.PrimaryHDU(),
                  fits.BinTableHDU.from_columns(cols, name="SC_DATA")]).writeto(path)
    return path


def test_nan_ft2_rows_are_dropped_with_a_warning_counting_livetime(tmp_path):
    """Before: a NaN pointing row went into the kernel (its livetime silently lost or
    misplaced) and a negative LIVETIME row was skipped without a word."""
    from fermixr.io.ft2 import read_ft2

    ft2 = _rows(1000.0, 20)
    clean = compute_ltcube(_write_ft2(tmp_path / "clean.fits", ft2), [1000.0], [1600.0],
                           nside=2)
    bad = {k: v.copy() for k, v in ft2.items()}
    bad["RA_SCZ"][3] = np.nan
    bad["DEC_ZENITH"][4] = np.nan
    bad["LIVETIME"][7] = -1.0
    p = _write_ft2(tmp_path / "bad.fits", bad)
    with pytest.warns(UserWarning, match=r"bad.fits: dropped 3 of 20 rows read with NaN or "
                                         r"negative values \(LIVETIME NaN or < 0: 1, RA_SCZ NaN: 1, "
                                         r"DEC_ZENITH NaN: 1\); 48.0 s of livetime lost"):
        ds = compute_ltcube(p, [1000.0], [1600.0], nside=2)
    # the rows are gone but their time is covered (no coverage error); the cube is the one
    # of the 17 good rows, finite everywhere
    assert ds.attrs["ft2_rows_dropped"] == 3 and ds.attrs["ft2_livetime_dropped_s"] == 48.0
    assert clean.exposure.values.sum() > ds.exposure.values.sum()
    assert np.isfinite(ds.exposure.values).all()
    keep = np.ones(20, bool)
    keep[[3, 4, 7]] = False
    ref = compute_ltcube({k: v[keep] for k, v in ft2.items()}, ft2["START"][keep],
                         ft2["STOP"][keep], nside=2)
    np.testing.assert_allclose(ds.exposure.values, ref.exposure.values, rtol=1e-12)
    with pytest.warns(UserWarning, match="dropped 3 of 20 rows"):
        t = read_ft2(p)
    assert t["START"].size == 17
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_ft2(tmp_path / "clean.fits")     # no warning for a clean file
    # given as a table (not a file): the same
    with pytest.warns(UserWarning, match=r"dropped 3 of 20 .*48.0 s of livetime lost"):
        ds2 = compute_ltcube(bad, [1000.0], [1600.0], nside=2)
    np.testing.assert_array_equal(ds2.exposure.values, ds.exposure.values)


def test_nan_ft1_events_are_dropped_with_a_warning(tmp_path):
    from fermixr.io.ft1 import read_ft1

    n = 6
    vals = {"ENERGY": np.array([300, 400, np.nan, 600, 700, 800.0]),
            "RA": np.array([83.0, np.nan, 83.2, 83.3, 83.4, 83.5]),
            "DEC": np.full(n, 22.0), "L": np.full(n, 184.5), "B": np.full(n, -5.8),
            "THETA": np.full(n, 30.0), "PHI": np.full(n, 10.0),
            "ZENITH_ANGLE": np.array([50, 50, 50, 50, np.inf, 50.0])}
    cols = [fits.Column(k, "E", array=v.astype(np.float32)) for k, v in vals.items()]
    cols += [fits.Column("TIME", "D", array=1e8 + np.arange(n, dtype=float)),
             fits.Column("EVENT_CLASS", "32X", array=np.zeros((n, 32), bool)),
             fits.Column("EVENT_TYPE", "32X", array=np.zeros((n, 32), bool)),
             fits.Column("CONVERSION_TYPE", "I", array=np.zeros(n, np.int16))]
    ev = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    ev.header["PASS_VER"] = "P8R2"
    gti = fits.BinTableHDU.from_columns([fits.Column("START", "D", array=[1e8]),
                                         fits.Column("STOP", "D", array=[1e8 + 10])], name="GTI")
    fits.HDUList([fits.PrimaryHDU(), ev, gti]).writeto(tmp_path / "ft1.fits")
    with pytest.warns(UserWarning, match=r"ft1.fits: dropped 3 of 6 events with NaN or infinite "
                                         r"values \(ENERGY: 1, RA: 1, ZENITH_ANGLE: 1\)"):
        events, _ = read_ft1(tmp_path / "ft1.fits")
    np.testing.assert_array_equal(events["ENERGY"].values, [300, 600, 800])
    np.testing.assert_array_equal(events["TIME"].values, 1e8 + np.array([0, 3, 5.0]))
