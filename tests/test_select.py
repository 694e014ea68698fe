"""gtselect cuts (kernel vs numpy reference, shared data) and gtmktime GTIs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from fermixr.errors import SelectionError
from fermixr.select import _kernels as K
from fermixr.select.cuts import select_events
from fermixr.select.gti import (
    clip,
    from_mask,
    in_gti,
    intersect,
    make_gti,
    make_gti_dataset,
    ontime,
    union,
)

CRAB = (83.6331, 22.0145)


def _haversine(ra, dec, ra0, dec0):
    d = np.pi / 180
    a = np.sin((dec0 - dec) * d / 2) ** 2 + np.cos(dec * d) * np.cos(dec0 * d) * np.sin((ra0 - ra) * d / 2) ** 2
    a = np.clip(a, 0, 1)
    return 2 * np.arctan2(np.sqrt(a), np.sqrt(1 - a)) / d


def _reference_mask(ev, *, emin, emax, tmin, tmax, ra0, dec0, radius, zmax, evclass, evtype,
                    convtype=None, gti=None):
    """Obvious numpy re-implementation of gtselect's cuts."""
    e = ev["ENERGY"].astype(float)
    t = ev["TIME"]
    m = (emin < e) & (e <= emax) & (tmin < t) & (t <= tmax)
    z = ev["ZENITH_ANGLE"].astype(float)
    m &= (0 < z) & (z <= zmax)
    m &= _haversine(ev["RA"].astype(float), ev["DEC"].astype(float), ra0, dec0) < radius
    m &= (ev["EVENT_CLASS"].astype(np.int64) & evclass) != 0
    m &= (ev["EVENT_TYPE"].astype(np.int64) & evtype) != 0
    if convtype is not None:
        m &= ev["CONVERSION_TYPE"] == convtype
    if gti is not None:
        inside = np.zeros(t.size, bool)
        for s, e_ in zip(*gti):
            inside |= (t >= s) & (t <= e_)
        m &= inside
    return m


def _random_events(rng, n):
    return {
        "ENERGY": rng.uniform(50, 5e4, n).astype(np.float32),
        "TIME": np.sort(rng.uniform(0, 1000, n)),
        "ZENITH_ANGLE": rng.uniform(0, 120, n).astype(np.float32),
        "RA": rng.uniform(60, 110, n).astype(np.float32),
        "DEC": rng.uniform(-5, 50, n).astype(np.float32),
        "EVENT_CLASS": rng.integers(0, 2 ** 12, n).astype(np.uint32),
        "EVENT_TYPE": rng.integers(0, 2 ** 10, n).astype(np.uint32),
        "CONVERSION_TYPE": rng.integers(0, 2, n).astype(np.int16),
    }


def _as_dataset(cols, **attrs):
    ds = xr.Dataset({k: ("event", v) for k, v in cols.items()})
    ds.attrs.update({"fermixr_product": "events", "TSTART": 0.0, "TSTOP": 1000.0,
                     "MJDREF": 51910.0, "PASS_VER": "P8R2", "event_class_kind": "bitmask"})
    ds.attrs.update(attrs)
    return ds


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_select_kernel_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    cols = _random_events(rng, 20000)
    ds = _as_dataset(cols)
    gti = (np.array([0.0, 300.0, 700.0]), np.array([200.0, 650.0, 1000.0]))
    opts = dict(emin=100.0, emax=2e4, tmin=50.0, tmax=900.0, radius=12.0, zmax=90.0,
                evclass=128 + 256, evtype=3, convtype=1)
    got = select_events(ds, ra=CRAB[0], dec=CRAB[1], gti_start=gti[0], gti_stop=gti[1], **opts)
    ref = _reference_mask(cols, ra0=CRAB[0], dec0=CRAB[1], gti=gti, **opts)
    assert got.sizes["event"] == ref.sum() > 0
    np.testing.assert_array_equal(got["TIME"].values, cols["TIME"][ref])


def test_range_boundaries_follow_rangecut():
    cols = {"ENERGY": np.array([100.0, 100.0001, 1000.0, 1000.0001]),
            "TIME": np.array([1.0, 2.0, 3.0, 4.0]),
            "ZENITH_ANGLE": np.array([0.0, 10.0, 90.0, 90.0001])}
    ds = _as_dataset(cols)
    assert select_events(ds, emin=100, emax=1000)["ENERGY"].values.tolist() == [100.0001, 1000.0]
    # lo == hi: both ends closed (a single value)
    assert select_events(ds, emin=1000, emax=1000)["ENERGY"].values.tolist() == [1000.0]
    assert select_events(ds, zmax=90)["TIME"].values.tolist() == [2.0, 3.0]  # 0 < Z <= 90
    assert select_events(ds, zmax=180).sizes["event"] == 4                   # no cut at 180
    assert select_events(ds, tmin=1.0, tmax=3.0)["TIME"].values.tolist() == [2.0, 3.0]
    sel = select_events(ds, logemin=2, logemax=3)
    assert sel.attrs["selection"]["emin"] == 100.0 and sel.sizes["event"] == 2


def test_class_conventions_pass7_and_scalar():
    cols = {"TIME": np.arange(4.0), "EVENT_CLASS": np.array([4, 2, 6, 1], dtype=np.uint32),
            "EVENT_TYPE": np.array([1, 2, 1, 2], dtype=np.uint32)}
    p7 = _as_dataset(cols, PASS_VER="P7REP")
    # Pass 7: evclass is a bit position (2 -> SOURCE bit 4)
    assert select_events(p7, evclass=2)["TIME"].values.tolist() == [0.0, 2.0]
    scalar = _as_dataset(cols, PASS_VER="NONE", event_class_kind="scalar")
    assert select_events(scalar, evclass=2)["TIME"].values.tolist() == [0.0, 1.0, 2.0]
    p8 = _as_dataset(cols)
    assert select_events(p8, evclass=2, evtype=2)["TIME"].values.tolist() == [1.0]


def test_empty_selection_names_the_cuts():
    ds = _as_dataset({"TIME": np.arange(3.0), "ENERGY": np.array([1.0, 2.0, 3.0])})
    with pytest.raises(SelectionError, match=r"no event passes the selection \{'emin': 10.0"):
        select_events(ds, emin=10, emax=20)
    assert select_events(ds, emin=10, emax=20, allow_empty=True).sizes["event"] == 0
    with pytest.raises(SelectionError, match="needs the cone centre"):
        select_events(ds, radius=5)
    with pytest.raises(SelectionError, match="no RA column"):
        select_events(ds, ra=1, dec=2, radius=5)
    with pytest.raises(SelectionError, match="resolve the source name"):
        select_events(ds, target="Crab", radius=5)


@pytest.mark.shared_data
def test_reference_cuts_keep_all_events(crab_day):
    from fermixr.io.ft1 import read_ft1

    ev, gti = read_ft1(crab_day / "ft1.fits.gz")
    sel = select_events(ev, emin=200, emax=20000, ra=CRAB[0], dec=CRAB[1], radius=15, zmax=90,
                        evclass=128, evtype=3, tmin=239557417.5, tmax=239643817.5,
                        gti_start=gti["START"].values, gti_stop=gti["STOP"].values)
    assert sel.sizes["event"] == 1507
    dss = {d["type"]: d["value"] for d in sel.attrs["dss"]}
    assert dss["ENERGY"] == "200:20000" and dss["ZENITH_ANGLE"] == "0:90"
    # the same centre given in Galactic coordinates
    from fermixr.geom import fermipy_cel_to_gal

    l, b = fermipy_cel_to_gal(*CRAB)
    assert select_events(ev, glon=l, glat=b, radius=15).sizes["event"] == 1507


@pytest.mark.shared_data
@pytest.mark.parametrize("opts", [
    dict(emin=1000, emax=20000, radius=5, zmax=90, evclass=128, evtype=1),
    dict(emin=300, emax=3000, radius=10, zmax=70, evclass=1024, evtype=2, convtype=1),
    dict(emin=200, emax=20000, radius=2, zmax=85, evclass=128, evtype=32),
])
def test_tighter_cuts_match_numpy(crab_day, opts):
    from fermixr.io.ft1 import read_ft1

    ev, gti = read_ft1(crab_day / "ft1.fits.gz")
    tmin, tmax = 239570000.0, 239630000.0
    sel = select_events(ev, ra=CRAB[0], dec=CRAB[1], tmin=tmin, tmax=tmax, **opts)
    cols = {k: ev[k].values for k in ev.data_vars}
    ref = _reference_mask(cols, ra0=CRAB[0], dec0=CRAB[1], tmin=tmin, tmax=tmax,
                          **{k: v for k, v in opts.items()})
    assert 0 < sel.sizes["event"] == ref.sum() < 1507
    np.testing.assert_array_equal(sel["TIME"].values, cols["TIME"][ref])
    assert sel.attrs["TSTART"] == tmin and sel.attrs["TSTOP"] == tmax


# --- GTIs -----------------------------------------------------------------------------------------
def test_interval_algebra():
    s, e = intersect([0, 10, 20], [5, 15, 30], [3, 14, 25], [12, 22, 40])
    assert s.tolist() == [3, 10, 14, 20, 25] and e.tolist() == [5, 12, 15, 22, 30]
    s, e = union([0, 10], [5, 15], [5, 20], [8, 21])
    assert s.tolist() == [0, 10, 20] and e.tolist() == [8, 15, 21]
    s, e = clip([0, 10], [5, 15], 3, 12)
    assert s.tolist() == [3, 10] and e.tolist() == [5, 12]
    assert ontime([0, 10], [5, 15]) == 10.0
    assert in_gti([0, 5, 5.5, 10], [0, 10], [5, 15]).tolist() == [True, True, False, True]


def _reference_intersect(s1, e1, s2, e2):
    """Brute force on a fine grid of breakpoints."""
    pts = np.unique(np.concatenate([s1, e1, s2, e2]))
    mid = 0.5 * (pts[:-1] + pts[1:])
    inside = in_gti(mid, s1, e1) & in_gti(mid, s2, e2)
    return float(np.sum(np.diff(pts)[inside]))


def test_intersect_matches_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(20):
        a = np.sort(rng.uniform(0, 100, 10))
        b = np.sort(rng.uniform(0, 100, 12))
        s, e = intersect(a[::2], a[1::2], b[::2], b[1::2])
        assert abs(ontime(s, e) - _reference_intersect(a[::2], a[1::2], b[::2], b[1::2])) < 1e-9


def test_from_mask_merges_contiguous_rows_like_gtmktime():
    start = np.array([0, 30, 60, 90, 125, 155, 185.0])
    stop = start + 30
    stop[3] = 120.0  # gap 120..125
    mask = np.array([1, 1, 0, 1, 1, 1, 1], bool)
    s, e = from_mask(start, stop, mask)
    assert s.tolist() == [0, 90, 125] and e.tolist() == [60, 120, 215]
    s, e = from_mask(start, stop, mask, tmin=40, tmax=140)
    assert s.tolist() == [30, 90, 125] and e.tolist() == [60, 120, 155]


def _read_ft2(path):
    from astropy.io import fits

    d = fits.getdata(path, "SC_DATA")
    names = ["START", "STOP", "DATA_QUAL", "LAT_CONFIG", "RA_ZENITH", "DEC_ZENITH", "ROCK_ANGLE",
             "IN_SAA", "LIVETIME"]
    return {n: np.asarray(d[n]).astype(np.asarray(d[n]).dtype.newbyteorder("=")) for n in names}


@pytest.mark.shared_data
def test_make_gti_on_shared_ft2(crab_day):
    from fermixr.io.ft1 import read_ft1_gti

    ft2 = _read_ft2(crab_day / "ft2.fits.gz")
    ev_gti = read_ft1_gti(crab_day / "ft1.fits.gz")
    # the standard filter reproduces the server's GTIs exactly
    s, e = make_gti(ev_gti, ft2, filter="DATA_QUAL>0 && LAT_CONFIG==1")
    np.testing.assert_array_equal(s, ev_gti["START"].values)
    np.testing.assert_array_equal(e, ev_gti["STOP"].values)
    # ROI-based zenith cut: the rows with angsep(zenith, ROI) < zmax - radius
    ds = make_gti_dataset(ev_gti, ft2, filter="DATA_QUAL>0 && LAT_CONFIG==1", roicut=True, zmax=90,
                          roi_center=CRAB, roi_radius=15, tmin=239560000.0)
    ok = _haversine(ft2["RA_ZENITH"], ft2["DEC_ZENITH"], *CRAB) < 75.0
    ok &= (ft2["DATA_QUAL"] > 0) & (ft2["LAT_CONFIG"] == 1)
    ref_s, ref_e = from_mask(ft2["START"], ft2["STOP"], ok)
    ref_s, ref_e = intersect(ref_s, ref_e, ev_gti["START"].values, ev_gti["STOP"].values)
    ref_s, ref_e = clip(ref_s, ref_e, 239560000.0, None)
    np.testing.assert_array_equal(ds["START"].values, ref_s)
    np.testing.assert_array_equal(ds["STOP"].values, ref_e)
    assert 0.3 * ev_gti.attrs["ontime"] < ds.attrs["ontime"] < 0.7 * ev_gti.attrs["ontime"]
    assert ds.attrs["TSTART"] == 239560000.0 and ds.attrs["roicut"] is True
    # an impossible filter is an error naming it
    with pytest.raises(SelectionError, match="zero FT2 rows pass the filter 'DATA_QUAL>5'"):
        make_gti(ev_gti, ft2, filter="DATA_QUAL>5")
    with pytest.raises(SelectionError, match="spacecraft"):
        make_gti(ev_gti, None, filter="DATA_QUAL>0")
    # no filter, no FT2: the event GTIs cut to [tmin, tmax]
    s, e = make_gti(ev_gti, None, tmax=239610000.0)
    assert e[-1] == 239610000.0 and s.size == 9


@pytest.mark.shared_data
def test_products_conform_to_contracts(crab_day):
    from fermixr.conventions import validate_product
    from fermixr.io.ft1 import read_ft1

    ev, gti = read_ft1(crab_day / "ft1.fits.gz")
    sel = select_events(ev, emin=1000, emax=20000, ra=CRAB[0], dec=CRAB[1], radius=10)
    validate_product(sel)
    validate_product(make_gti_dataset(gti, tmin=239570000.0))
