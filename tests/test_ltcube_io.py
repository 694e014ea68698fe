"""gtltcube FITS files <-> xarray: reading, writing, summing, errors."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from fermixr.conventions import validate_product
from fermixr.errors import FileFormatError
from fermixr.io.ltcube import (
    check_ltcube_against_gti,
    costheta_edges,
    make_ltcube_dataset,
    read_ltcube,
    write_ltcube,
)


def _cube(rng, nside=4, nbins=10, phibins=0, ordering="NESTED", frame="CEL", gti=((1e8, 1e8 + 500),)):
    shape = (12 * nside * nside, nbins) + ((phibins,) if phibins else ())
    e = rng.uniform(0, 1000, shape)
    gs, ge = np.array(gti).T
    return make_ltcube_dataset(e, e * 0.9, nside=nside, ordering=ordering, frame=frame,
                               gti_start=gs, gti_stop=ge, zmax=90.0)


def test_roundtrip_is_float32_cast(tmp_path):
    rng = np.random.default_rng(0)
    for kw in ({}, {"phibins": 3}, {"ordering": "RING"}, {"frame": "GAL"}):
        ds = _cube(rng, **kw)
        validate_product(ds)
        p = write_ltcube(ds, tmp_path / "lt.fits")
        back = read_ltcube(p)
        validate_product(back)
        assert back.exposure.dims == ds.exposure.dims
        for v in ("exposure", "weighted_exposure"):
            assert np.array_equal(back[v].values, ds[v].values.astype(np.float32).astype(np.float64))
        for k in ("nside", "ordering", "frame", "phibins", "zmax", "nbins", "TSTART", "TSTOP"):
            assert back.attrs[k] == ds.attrs[k], k
        assert np.array_equal(back.gti_start.values, ds.gti_start.values)
        np.testing.assert_allclose(back.costheta_min.values, ds.costheta_min.values)
        # and a second write/read is bit-exact
        write_ltcube(back, tmp_path / "lt2.fits.gz")
        again = read_ltcube(tmp_path / "lt2.fits.gz")
        assert np.array_equal(again.exposure.values, back.exposure.values)


def test_written_layout_like_gtltcube(tmp_path):
    rng = np.random.default_rng(1)
    ds = _cube(rng, nbins=20, phibins=2)
    p = write_ltcube(ds, tmp_path / "lt.fits")
    with fits.open(p) as h:
        assert [x.name for x in h] == ["PRIMARY", "EXPOSURE", "WEIGHTED_EXPOSURE",
                                       "CTHETABOUNDS", "GTI"]
        e = h["EXPOSURE"]
        assert e.columns.names == ["COSBINS", "RA", "DEC"]
        assert e.columns["COSBINS"].format == "60E"
        for key, val in (("PIXTYPE", "HEALPIX"), ("ORDERING", "NESTED"), ("COORDSYS", "EQU"),
                         ("NSIDE", 4), ("NBRBINS", 20), ("PHIBINS", 2), ("COSMIN", 0.0),
                         ("THETABIN", "SQRT(1-COSTHETA)"), ("ZENMAX", 90.0), ("FIRSTPIX", 0),
                         ("LASTPIX", 191)):
            assert e.header[key] == val, key
        # first NBRBINS values: summed over azimuth
        cos = e.data["COSBINS"].astype(np.float64)
        np.testing.assert_allclose(cos[:, :20], cos[:, 20:40] + cos[:, 40:], rtol=1e-6)
        b = h["CTHETABOUNDS"].data
        np.testing.assert_allclose(b["CTHETA_MAX"][:2], [1.0, 0.9975], rtol=1e-7)
        assert h["GTI"].header["HDUCLAS1"] == "GTI"


def test_costheta_edges():
    e = costheta_edges(20)
    assert e[0] == 1.0 and e[-1] == 0.0
    np.testing.assert_allclose(e[1:3], [0.9975, 0.99])


def test_sum_of_files_and_mismatch(tmp_path):
    rng = np.random.default_rng(2)
    a = _cube(rng, gti=((1e8, 1e8 + 500),))
    b = _cube(rng, gti=((1e8 + 600, 1e8 + 900), (1e8 + 1000, 1e8 + 1100)))
    pa = write_ltcube(a, tmp_path / "a.fits")
    pb = write_ltcube(b, tmp_path / "b.fits")
    s = read_ltcube([pa, pb])
    ra, rb = read_ltcube(pa), read_ltcube(pb)
    np.testing.assert_allclose(s.exposure.values, ra.exposure.values + rb.exposure.values)
    assert s.sizes["gti"] == 3
    assert s.attrs["TSTART"] == 1e8 and s.attrs["TSTOP"] == 1e8 + 1100
    lst = tmp_path / "lt.lst"
    lst.write_text("a.fits\nb.fits\n")
    assert np.array_equal(read_ltcube(f"@{lst}").exposure.values, s.exposure.values)
    c = write_ltcube(_cube(rng, nside=2, gti=((1e9, 1e9 + 1),)), tmp_path / "c.fits")
    with pytest.raises(FileFormatError, match=r"a\.fits.*nside=4.*c\.fits.*nside=2"):
        read_ltcube([pa, c])
    with pytest.raises(FileFormatError, match="overlap"):
        read_ltcube([pa, pa])


def test_not_a_livetime_cube(tmp_path, crab_day=None):
    p = tmp_path / "img.fits"
    fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4))),
                  fits.BinTableHDU.from_columns([fits.Column(name="X", format="E",
                                                             array=np.zeros(3))],
                                                name="EVENTS")]).writeto(p)
    with pytest.raises(FileFormatError, match=r"img\.fits.*EXPOSURE"):
        read_ltcube(p)
    q = tmp_path / "text.fits"
    q.write_text("not a fits file at all")
    with pytest.raises(FileFormatError, match=r"text\.fits"):
        read_ltcube(q)


def test_unknown_binning_keyword_names_the_file(tmp_path):
    p = write_ltcube(_cube(np.random.default_rng(3)), tmp_path / "lt.fits")
    with fits.open(p, mode="update") as h:
        h["EXPOSURE"].header["THETABIN"] = "LOG(COSTHETA)"
    with pytest.raises(FileFormatError, match=r"lt\.fits.*THETABIN='LOG\(COSTHETA\)'"):
        read_ltcube(p)


def test_bad_binning_arguments_are_geometry_errors():
    from fermixr.errors import GeometryError
    from fermixr.io.ltcube import nbins_from_dcostheta, nside_from_binsz

    with pytest.raises(GeometryError, match="dcostheta must be in"):
        nbins_from_dcostheta(0.0)
    with pytest.raises(GeometryError, match="binsz must be > 0"):
        nside_from_binsz(-1.0)
    with pytest.raises(GeometryError, match="ordering must be"):
        _cube(np.random.default_rng(4), ordering="ZIGZAG")


def test_check_against_gti():
    rng = np.random.default_rng(3)
    ds = _cube(rng, gti=((100.0, 200.0), (300.0, 400.0)))
    assert check_ltcube_against_gti(ds, [100.0, 300.0], [200.0, 400.0]) == []
    msgs = check_ltcube_against_gti(ds, [100.0], [450.0])
    assert len(msgs) == 1 and "misses 150.0 s" in msgs[0]
    msgs = check_ltcube_against_gti(ds, [150.0, 380.0], [250.0, 450.0])
    assert len(msgs) == 2 and "misses 100.0 s" in msgs[0]
    assert "includes 130.0 s outside" in msgs[1]


@pytest.mark.shared_data
def test_read_reference_file(crab_day, tmp_path):
    ds = read_ltcube(crab_day / "ltcube.fits.gz")
    validate_product(ds)
    assert ds.exposure.dims == ("pix", "costheta")
    assert ds.sizes == {"pix": 3072, "costheta": 20, "gti": 15}
    assert ds.attrs["nside"] == 16 and ds.attrs["ordering"] == "NESTED"
    assert ds.attrs["frame"] == "CEL" and ds.attrs["zmax"] is None
    assert ds.attrs["TSTART"] == 239557417.5
    with fits.open(crab_day / "ltcube.fits.gz") as h:
        raw = h["EXPOSURE"].data["COSBINS"]
        assert np.array_equal(ds.exposure.values, raw.astype(np.float64))
        np.testing.assert_allclose(ds.ra.values, h["EXPOSURE"].data["RA"], atol=2e-5)
    assert ds.exposure.values.sum() == pytest.approx(8.798407e7, rel=1e-6)
    # re-written: COSBINS identical bit for bit
    p = write_ltcube(ds, tmp_path / "copy.fits")
    with fits.open(p) as a, fits.open(crab_day / "ltcube.fits.gz") as b:
        for ext in ("EXPOSURE", "WEIGHTED_EXPOSURE"):
            assert np.array_equal(a[ext].data["COSBINS"], b[ext].data["COSBINS"])
            for key in ("NSIDE", "ORDERING", "COORDSYS", "NBRBINS", "COSMIN", "PHIBINS",
                        "THETABIN", "TSTART", "TSTOP", "MJDREFI", "MJDREFF"):
                assert a[ext].header[key] == b[ext].header[key], key
        assert np.array_equal(a["GTI"].data["START"], b["GTI"].data["START"])
        assert a[0].header["DATE-OBS"][:19] == b[0].header["DATE-OBS"][:19]
    # an FT1 file is not a livetime cube
    with pytest.raises(FileFormatError, match=r"ft1\.fits\.gz.*EXPOSURE"):
        read_ltcube(crab_day / "ft1.fits.gz")
