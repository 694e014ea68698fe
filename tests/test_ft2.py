"""FT2 reader: streaming chunks, gzip, file order, missing columns."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits

from fermixr.errors import FileFormatError, InputFileError
from fermixr.io.ft2 import check_ft2_columns, ft2_info, iter_ft2_chunks, read_ft2


def _write_ft2(path, t0, n, rng, drop=(), gz=False):
    start = t0 + 30.0 * np.arange(n)
    cols = {
        "START": ("D", start), "STOP": ("D", start + 30.0),
        "SC_POSITION": ("3E", rng.normal(size=(n, 3)).astype(np.float32) * 7e6),
        "RA_ZENITH": ("E", rng.uniform(0, 360, n).astype(np.float32)),
        "DEC_ZENITH": ("E", rng.uniform(-30, 30, n).astype(np.float32)),
        "IN_SAA": ("L", rng.uniform(size=n) < 0.2),
        "RA_SCZ": ("E", rng.uniform(0, 360, n).astype(np.float32)),
        "DEC_SCZ": ("E", rng.uniform(-60, 60, n).astype(np.float32)),
        "RA_SCX": ("E", rng.uniform(0, 360, n).astype(np.float32)),
        "DEC_SCX": ("E", rng.uniform(-60, 60, n).astype(np.float32)),
        "LAT_MODE": ("J", rng.integers(0, 10, n).astype(np.int32)),
        "DATA_QUAL": ("I", np.ones(n, dtype=np.int16)),
        "LIVETIME": ("D", rng.uniform(20, 28, n)),
    }
    hdu = fits.BinTableHDU.from_columns(
        [fits.Column(name=k, format=f, array=a) for k, (f, a) in cols.items() if k not in drop],
        name="SC_DATA")
    hdu.header["TSTART"] = float(start[0])
    target = path.with_suffix("") if gz else path
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(target, overwrite=True)
    if gz:
        with open(target, "rb") as f, gzip.open(path, "wb") as g:
            shutil.copyfileobj(f, g)
        target.unlink()
    return {k: a for k, (f, a) in cols.items() if k not in drop}


def test_read_matches_astropy_and_gzip(tmp_path):
    rng = np.random.default_rng(1)
    truth = _write_ft2(tmp_path / "a.fits", 1e8, 1000, rng)
    _write_ft2(tmp_path / "b.fits.gz", 1e8, 1000, np.random.default_rng(1), gz=True)
    d = read_ft2(tmp_path / "a.fits")
    dz = read_ft2(tmp_path / "b.fits.gz")
    for k, v in truth.items():
        assert np.array_equal(d[k], v), k
        assert np.array_equal(dz[k], v), k
        assert d[k].dtype.isnative
    assert d["IN_SAA"].dtype == bool
    assert d["SC_POSITION"].shape == (1000, 3)


def test_chunks_concatenate_to_whole_and_time_filter(tmp_path):
    rng = np.random.default_rng(2)
    truth = _write_ft2(tmp_path / "a.fits", 1e8, 1003, rng)
    chunks = list(iter_ft2_chunks(tmp_path / "a.fits", ["START", "LIVETIME"], chunk_rows=100))
    assert [len(c["START"]) for c in chunks] == [100] * 10 + [3]
    assert set(chunks[0]) == {"START", "LIVETIME"}
    assert np.array_equal(np.concatenate([c["LIVETIME"] for c in chunks]), truth["LIVETIME"])
    tmin, tmax = 1e8 + 30 * 250 + 10, 1e8 + 30 * 600
    got = np.concatenate([c["START"] for c in iter_ft2_chunks(
        tmp_path / "a.fits", ["START"], chunk_rows=64, tmin=tmin, tmax=tmax)])
    keep = (truth["STOP"] > tmin) & (truth["START"] < tmax)
    assert np.array_equal(got, truth["START"][keep])
    assert got.size == 350


def test_files_out_of_order_and_list_file(tmp_path):
    rng = np.random.default_rng(3)
    a = _write_ft2(tmp_path / "w1.fits", 1e8, 500, rng)
    b = _write_ft2(tmp_path / "w2.fits.gz", 1e8 + 15000, 400, rng, gz=True)
    lst = tmp_path / "ft2.lst"
    lst.write_text("w2.fits.gz\nw1.fits\n")
    for spec in ([tmp_path / "w2.fits.gz", tmp_path / "w1.fits"], f"@{lst}", str(lst)):
        d = read_ft2(spec, columns=["START", "RA_SCZ"])
        assert np.array_equal(d["START"], np.concatenate([a["START"], b["START"]]))
        assert np.array_equal(d["RA_SCZ"], np.concatenate([a["RA_SCZ"], b["RA_SCZ"]]))
    assert ft2_info(tmp_path / "w2.fits.gz")["nrows"] == 400


def test_missing_column_names_column_and_file(tmp_path):
    rng = np.random.default_rng(4)
    _write_ft2(tmp_path / "ok.fits", 1e8, 50, rng)
    _write_ft2(tmp_path / "bad.fits", 1e8 + 1500, 50, rng, drop=("DEC_ZENITH",))
    with pytest.raises(FileFormatError, match=r"bad\.fits.*'DEC_ZENITH'"):
        check_ft2_columns([tmp_path / "ok.fits", tmp_path / "bad.fits"], ["START", "DEC_ZENITH"])
    with pytest.raises(FileFormatError, match=r"bad\.fits.*'DEC_ZENITH'"):
        next(iter_ft2_chunks(tmp_path / "bad.fits", ["START", "DEC_ZENITH"]))
    from fermixr.exposure.ltcube import compute_ltcube

    with pytest.raises(FileFormatError, match=r"bad\.fits.*'DEC_ZENITH'"):
        compute_ltcube(tmp_path / "bad.fits", [1e8], [1e8 + 3000], nside=2)


def test_not_fits_and_missing_file(tmp_path):
    p = tmp_path / "junk.fits"
    p.write_bytes(b"hello, this is not FITS" * 200)
    with pytest.raises(FileFormatError, match="junk.fits"):
        read_ft2(p)
    with pytest.raises(InputFileError, match="nothere"):
        read_ft2(tmp_path / "nothere.fits")
    # a FITS file without a spacecraft table
    q = tmp_path / "img.fits"
    fits.PrimaryHDU(np.zeros((3, 3))).writeto(q)
    with pytest.raises(FileFormatError, match="img.fits.*SC_DATA"):
        read_ft2(q)
    # something that names no file at all
    with pytest.raises(InputFileError, match=r"scfile: got 42 \(int\); expected an FT2 file"):
        read_ft2(42)


@pytest.mark.shared_data
def test_shared_ft2_matches_astropy(crab_day):
    p = crab_day / "ft2.fits.gz"
    d = read_ft2(p)
    ref = fits.open(p)[1].data
    assert len(d) == len(ref.columns.names) == 30
    for c in ref.columns.names:
        assert np.array_equal(np.asarray(ref[c]), d[c]), c
    assert d["START"].size == 5604
