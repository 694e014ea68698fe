"""FT1 reader: columns, bit masks, GTIs, multiple files, errors."""

from __future__ import annotations

import numpy as np
import pytest

from fermixr.conventions import validate_product
from fermixr.errors import FileFormatError, InputFileError, SelectionError
from fermixr.io.ft1 import read_ft1, read_ft1_gti
from fermixr.io.gti import normalize_intervals


@pytest.mark.shared_data
def test_read_shared_ft1(crab_day):
    from astropy.io import fits

    ev, gti = read_ft1(crab_day / "ft1.fits.gz")
    validate_product(ev)
    validate_product(gti)
    assert ev.sizes["event"] == 1507
    assert ev["ENERGY"].dtype == np.float32 and ev["TIME"].dtype == np.float64
    assert ev["EVENT_CLASS"].dtype == np.uint32 and ev["EVENT_TYPE"].dtype == np.uint32
    assert ev.attrs["event_class_kind"] == "bitmask" and ev.attrs["PASS_VER"] == "P8R2"
    assert ev.attrs["TSTART"] == 239557417.5 and ev.attrs["TSTOP"] == 239643817.5
    assert abs(ev.attrs["MJDREF"] - (51910 + 7.428703703703703e-4)) < 1e-12
    assert ev["ENERGY"].attrs["units"] == "MeV" and ev["RA"].attrs["units"] == "deg"
    # every event is SOURCE class (bit 7) and FRONT or BACK
    assert np.all(ev["EVENT_CLASS"].values & 128)
    assert np.all(ev["EVENT_TYPE"].values & 3)
    # FRONT/BACK bits agree with CONVERSION_TYPE
    conv = ev["CONVERSION_TYPE"].values
    et = ev["EVENT_TYPE"].values
    assert np.all(((et & 1) != 0) == (conv == 0)) and np.all(((et & 2) != 0) == (conv == 1))
    # the integer masks equal astropy's bool expansion (element 31 is bit 0)
    bits = fits.getdata(crab_day / "ft1.fits.gz", "EVENTS")["EVENT_CLASS"]
    ref = (bits.astype(np.uint64) * (2 ** np.arange(31, -1, -1, dtype=np.uint64))).sum(axis=1)
    np.testing.assert_array_equal(ev["EVENT_CLASS"].values, ref.astype(np.uint32))
    # GTIs: the 15 intervals of the file, their ONTIME header value
    hdr = fits.getheader(crab_day / "ft1.fits.gz", "GTI")
    assert gti.sizes["gti"] == 15
    assert abs(gti.attrs["ontime"] - hdr["ONTIME"]) < 1e-6
    dss = {d["type"]: d["value"] for d in ev.attrs["dss"]}
    assert dss["POS(RA,DEC)"] == "CIRCLE(83.6331,22.0145,15)" and dss["ENERGY"] == "200:20000"


@pytest.mark.shared_data
def test_read_ft1_columns_and_gti_only(crab_day):
    ev, _ = read_ft1(str(crab_day / "ft1.fits.gz"), columns=["energy", "TIME", "LIVETIME"])
    assert list(ev.data_vars) == ["ENERGY", "TIME", "LIVETIME"]
    gti = read_ft1_gti(crab_day / "ft1.fits.gz")
    assert gti.sizes["gti"] == 15 and gti.attrs["fermixr_product"] == "gti"


@pytest.mark.shared_data
def test_read_several_files_and_list(crab_day, tmp_path):
    lst = tmp_path / "files.lst"
    f = crab_day / "ft1.fits.gz"
    lst.write_text(f"{f}\n{f}\n")
    ev, gti = read_ft1(f"@{lst}")
    assert ev.sizes["event"] == 3014
    assert np.all(np.diff(ev["TIME"].values) >= 0)
    assert gti.sizes["gti"] == 15  # union of identical GTIs


@pytest.mark.shared_data
def test_missing_column_and_file_errors(crab_day, tmp_path):
    with pytest.raises(FileFormatError, match="PULSE_PHASE"):
        read_ft1(crab_day / "ft1.fits.gz", columns=["ENERGY", "PULSE_PHASE"])
    with pytest.raises(InputFileError, match="nothere.fits"):
        read_ft1(tmp_path / "nothere.fits")
    bad = tmp_path / "bad.fits"
    bad.write_text("not a fits file")
    with pytest.raises(InputFileError, match="bad.fits"):
        read_ft1(bad)


def _write_ft1(path, *, pass7=False, n=5, with_gti=True):
    from astropy.io import fits

    rng = np.random.default_rng(1)
    cols = [
        fits.Column("ENERGY", "E", array=rng.uniform(100, 1000, n)),
        fits.Column("RA", "E", array=rng.uniform(0, 10, n)),
        fits.Column("DEC", "E", array=rng.uniform(0, 10, n)),
        fits.Column("L", "E", array=rng.uniform(0, 10, n)),
        fits.Column("B", "E", array=rng.uniform(0, 10, n)),
        fits.Column("THETA", "E", array=rng.uniform(0, 60, n)),
        fits.Column("PHI", "E", array=rng.uniform(0, 360, n)),
        fits.Column("ZENITH_ANGLE", "E", array=rng.uniform(0, 100, n)),
        fits.Column("TIME", "D", array=np.sort(rng.uniform(10, 20, n))),
        fits.Column("CONVERSION_TYPE", "I", array=np.array([0, 1, 0, 1, 1][:n])),
        fits.Column("PULSE_PHASE", "E", array=rng.uniform(0, 1, n)),
    ]
    if pass7:
        cols.append(fits.Column("EVENT_CLASS", "J", array=np.array([4, 4, 6, 1, 4][:n])))
    else:
        bits = np.zeros((n, 32), dtype=bool)
        bits[:, 31 - 7] = True   # SOURCE
        bits[1, 31 - 9] = True   # + bit 9 on the second event
        types = np.zeros((n, 32), dtype=bool)
        types[:, 31] = True      # FRONT
        cols += [fits.Column("EVENT_CLASS", "32X", array=bits),
                 fits.Column("EVENT_TYPE", "32X", array=types)]
    ev = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    ev.header["TSTART"] = 10.0
    ev.header["TSTOP"] = 20.0
    ev.header["MJDREFI"] = 51910
    ev.header["MJDREFF"] = 7.428703703703703e-4
    ev.header["PASS_VER"] = "P7V6" if pass7 else "P8R3"
    hdus = [fits.PrimaryHDU(), ev]
    if with_gti:
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("START", "D", array=[10.0, 15.0]), fits.Column("STOP", "D", array=[14.0, 20.0])],
            name="GTI"))
    fits.HDUList(hdus).writeto(path)
    return path


def test_synthetic_pass8_bits_and_pulse_phase(tmp_path):
    ev, gti = read_ft1(_write_ft1(tmp_path / "p8.fits"))
    assert ev["EVENT_CLASS"].values.tolist() == [128, 128 + 512, 128, 128, 128]
    assert ev["EVENT_TYPE"].values.tolist() == [1] * 5
    assert "PULSE_PHASE" in ev and gti["START"].values.tolist() == [10.0, 15.0]


def test_synthetic_pass7_integer_class_and_type_from_conversion(tmp_path):
    ev, _ = read_ft1(_write_ft1(tmp_path / "p7.fits", pass7=True))
    assert ev.attrs["event_class_kind"] == "bitmask"  # Pass 7: an integer bit mask
    assert ev["EVENT_CLASS"].values.tolist() == [4, 4, 6, 1, 4]
    assert ev.attrs["event_type_from_conversion"] is True
    assert ev["EVENT_TYPE"].values.tolist() == [1, 2, 1, 2, 2]


def test_missing_gti_extension(tmp_path):
    with pytest.raises(FileFormatError, match="no 'GTI' extension"):
        read_ft1(_write_ft1(tmp_path / "nogti.fits", with_gti=False))


def test_normalize_intervals_union():
    s, e = normalize_intervals([5, 0, 2, 10, 9], [6, 3, 4, 10, 12])
    assert s.tolist() == [0, 5, 9] and e.tolist() == [4, 6, 12]
    with pytest.raises(SelectionError, match=r"START and STOP differ in length \(2 vs 1\)"):
        normalize_intervals([0, 5], [3])
