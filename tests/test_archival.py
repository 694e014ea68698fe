"""Archival headers (issue 15): numbers stored as strings, Fortran ``D`` exponents included,
read as numbers by every reader; anything else is a one-line FileFormatError naming the file
and the keyword."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from fermixr.errors import FileFormatError
from fermixr.io.headers import header_float, header_int, numeric_header, parse_header_number

MJDREFF_ARCHIVAL = "7.428703703703703D-4"   # as Pass 6/7 LAT files store it
FERMI_MJDREF = 51910.0 + 7.428703703703703e-4


@pytest.mark.parametrize("value,expected", [
    (MJDREFF_ARCHIVAL, 7.428703703703703e-4),
    ("7.428703703703703d-4", 7.428703703703703e-4),
    (" 51910. ", 51910.0),
    ("2.3955741750000000D+08", 239557417.5),
    ("1.5E3", 1500.0),
    (16, 16.0),
    (0.5, 0.5),
    ("ABC", None),
    ("", None),
    (True, None),          # a FITS logical is not a number
    ("1D", None),
])
def test_parse_header_number(value, expected):
    assert parse_header_number(value) == expected


def test_header_float_names_file_and_keyword():
    h = fits.Header({"MJDREFF": MJDREFF_ARCHIVAL, "TSTART": "soon", "NSIDE": "1.6D1",
                     "BAD": "NaN", "HALF": "2.5"})
    assert header_float(h, "MJDREFF", "x.fits") == pytest.approx(7.428703703703703e-4, rel=1e-15)
    assert header_int(h, "NSIDE", "x.fits") == 16
    assert header_float(h, "MISSING", "x.fits", 3.0) == 3.0
    with pytest.raises(FileFormatError, match=r"^x.fits HDU EVENTS: header keyword TSTART = "
                                              r"'soon' is not a number$"):
        header_float(h, "TSTART", "x.fits", hdu="EVENTS")
    with pytest.raises(FileFormatError, match="BAD = 'NaN' is not a finite number"):
        header_float(h, "BAD", "x.fits")
    with pytest.raises(FileFormatError, match="HALF = '2.5' is not an integer"):
        header_int(h, "HALF", "x.fits")
    with pytest.raises(FileFormatError, match="keyword MISSING is missing"):
        header_float(h, "MISSING", "x.fits")
    with pytest.raises(ValueError):   # still a ValueError for callers that catch that
        header_float(h, "TSTART", "x.fits")


def _string_numbers(hdr):
    """Rewrite a header's time keywords as archival LAT files store them."""
    if "MJDREFF" in hdr:
        hdr["MJDREFF"] = MJDREFF_ARCHIVAL
    if "MJDREFI" in hdr:
        hdr["MJDREFI"] = "51910."
    for k in ("TSTART", "TSTOP"):
        if k in hdr:
            hdr[k] = f"{float(hdr[k]):.16E}".replace("E", "D")


def _small_ft1(path, mjdreff=MJDREFF_ARCHIVAL, tstart="1.0D+08"):
    cols = [fits.Column(n, "E", array=np.array(v, dtype=np.float32)) for n, v in
            (("ENERGY", [300.0, 1000.0]), ("RA", [83.6, 83.7]), ("DEC", [22.0, 22.1]),
             ("L", [184.5, 184.6]), ("B", [-5.8, -5.7]), ("THETA", [30.0, 40.0]),
             ("PHI", [10.0, 20.0]), ("ZENITH_ANGLE", [50.0, 60.0]))]
    cols.append(fits.Column("TIME", "D", array=np.array([1e8 + 10, 1e8 + 20])))
    cols.append(fits.Column("EVENT_CLASS", "32X", array=np.zeros((2, 32), dtype=bool)))
    cols.append(fits.Column("EVENT_TYPE", "32X", array=np.zeros((2, 32), dtype=bool)))
    cols.append(fits.Column("CONVERSION_TYPE", "I", array=np.array([0, 1], dtype=np.int16)))
    ev = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    ev.header["PASS_VER"] = "P8R2"
    ev.header["MJDREFI"] = "51910"
    ev.header["MJDREFF"] = mjdreff
    ev.header["TSTART"] = tstart
    ev.header["TSTOP"] = "1.0000001D+08"
    gti = fits.BinTableHDU.from_columns(
        [fits.Column("START", "D", array=np.array([1e8])),
         fits.Column("STOP", "D", array=np.array([1e8 + 100]))], name="GTI")
    fits.HDUList([fits.PrimaryHDU(), ev, gti]).writeto(path, overwrite=True)
    return path


def test_crafted_ft1_with_string_numbers(tmp_path):
    from fermixr.io.ft1 import read_ft1, read_ft1_gti

    p = _small_ft1(tmp_path / "ft1.fits")
    ev, gti = read_ft1(p)
    assert ev.attrs["MJDREF"] == pytest.approx(FERMI_MJDREF, abs=1e-12)
    assert ev.attrs["TSTART"] == 1e8 and ev.attrs["TSTOP"] == 1.0000001e8
    g = read_ft1_gti(p)
    assert g.attrs["MJDREF"] == pytest.approx(FERMI_MJDREF, abs=1e-12) and g.attrs["TSTART"] == 1e8
    # a value that is not a number: one line naming the file and the keyword
    bad = _small_ft1(tmp_path / "bad.fits", mjdreff="seven")
    with pytest.raises(FileFormatError, match=r"bad.fits HDU EVENTS: header keyword MJDREFF = "
                                              r"'seven' is not a number"):
        read_ft1_gti(bad)
    with pytest.raises(FileFormatError, match="MJDREFF"):
        read_ft1(bad)


@pytest.mark.filterwarnings("ignore:Card is too long")
def test_crafted_ltcube_srcmap_and_template_with_string_numbers(tmp_path):
    """gtltcube files made from archival data, and image headers (source maps, map cubes,
    templates, exposure cubes) whose WCS numbers are strings."""
    from fermixr.exposure.bexpmap import read_bexpmap
    from fermixr.io.ltcube import make_ltcube_dataset, read_ltcube, write_ltcube
    from fermixr.io.mapcube import read_template

    e = np.random.default_rng(1).uniform(0, 100, (12, 3))
    ds = make_ltcube_dataset(e, e * 0.9, nside=1, gti_start=[1e8], gti_stop=[1e8 + 50],
                             zmax=90.0)
    p = write_ltcube(ds, tmp_path / "lt.fits")
    with fits.open(p) as h:
        for hdu in h:
            _string_numbers(hdu.header)
        h["EXPOSURE"].header["NSIDE"] = "1"
        h["EXPOSURE"].header["ZENMAX"] = "9.0D+01"
        h["EXPOSURE"].header["COSMIN"] = "0.0D0"
        h.writeto(tmp_path / "lt_str.fits")
    back = read_ltcube(tmp_path / "lt_str.fits")
    assert back.attrs["MJDREF"] == pytest.approx(FERMI_MJDREF, abs=1e-12)
    assert back.attrs["TSTART"] == 1e8 and back.attrs["zmax"] == 90.0
    np.testing.assert_array_equal(back.exposure.values, read_ltcube(p).exposure.values)
    with fits.open(p) as h:
        h["EXPOSURE"].header["NSIDE"] = "one"
        h.writeto(tmp_path / "lt_bad.fits")
    with pytest.raises(FileFormatError, match=r"lt_bad.fits HDU EXPOSURE: header keyword NSIDE "
                                              r"= 'one' is not a number"):
        read_ltcube(tmp_path / "lt_bad.fits")

    # an image whose WCS numbers are strings
    img = fits.PrimaryHDU(np.ones((3, 4, 5), dtype=np.float32))
    for k, v in (("CTYPE1", "RA---CAR"), ("CTYPE2", "DEC--CAR"), ("CRVAL1", "8.36331D+01"),
                 ("CRVAL2", "2.20145D+01"), ("CRPIX1", "3.0"), ("CRPIX2", "2.5D0"),
                 ("CDELT1", "-5.0D-01"), ("CDELT2", "0.5")):
        img.header[k] = v
    en = fits.BinTableHDU.from_columns([fits.Column("Energy", "D", array=[100.0, 1e3, 1e4])],
                                       name="ENERGIES")
    fits.HDUList([img, en]).writeto(tmp_path / "img.fits")
    geom, energies, cube = read_bexpmap(tmp_path / "img.fits")
    assert geom.center == pytest.approx((83.6331, 22.0145)) and geom.cdelt == (-0.5, 0.5)
    tgeom = read_template(tmp_path / "img.fits")[1]
    assert tgeom.to_dict() == geom.to_dict()
    h = numeric_header(fits.getheader(tmp_path / "img.fits"), "img.fits")
    assert h["CRPIX2"] == 2.5 and h["CTYPE1"] == "RA---CAR"


@pytest.mark.shared_data
@pytest.mark.filterwarnings("ignore:Card is too long")
def test_crab_day_with_archival_headers_gives_the_same_products(crab_day, caldb_dir, tmp_path):
    """The Crab day's FT1 and FT2 rewritten with MJDREFF = '7.428703703703703D-4' (and
    MJDREFI, TSTART, TSTOP as strings): the same counts, livetime and exposure.  Before the
    fix the run stopped at the GTI step with ``ValueError: could not convert string to
    float: '7.428703703703703D-4'``."""
    import fermixr
    from fermixr.engine.run import run_recipe

    for name in ("ft1.fits.gz", "ft2.fits.gz", "ltcube.fits.gz"):
        with fits.open(crab_day / name) as h:
            for hdu in h:
                _string_numbers(hdu.header)
            h.writeto(tmp_path / name.replace(".gz", ""))
    assert fits.getheader(tmp_path / "ft1.fits", "EVENTS")["MJDREFF"] == MJDREFF_ARCHIVAL

    def recipe(folder, **data):
        return {
            "data": {"evfile": str(folder / "ft1.fits"), "scfile": str(folder / "ft2.fits"),
                     "caldb": str(caldb_dir), **data},
            "binning": {"coordsys": "GAL", "proj": "CAR", "npix": 40, "binsz": 0.5,
                        "binsperdec": 5},
            "selection": {"emin": 200, "emax": 20000, "zmax": 90, "evclass": 128, "evtype": 3,
                          "ra": 83.6331, "dec": 22.0145},
            "gtlike": {"irfs": "P8R2_SOURCE_V6"},
            "ltcube": {"zmax": 180, "dcostheta": 0.05, "binsz": 4.0},
            "steps": ["counts", "exposure"],
        }

    rec_orig = recipe(crab_day)
    rec_orig["data"].update(evfile=str(crab_day / "ft1.fits.gz"),
                            scfile=str(crab_day / "ft2.fits.gz"))
    run_recipe(rec_orig, outdir=tmp_path / "orig", verbose=False)
    run_recipe(recipe(tmp_path), outdir=tmp_path / "arch", verbose=False)
    a, b = fermixr.open_run(tmp_path / "orig"), fermixr.open_run(tmp_path / "arch")
    np.testing.assert_array_equal(b["counts"]["counts"].values, a["counts"]["counts"].values)
    assert int(b["counts"]["counts"].sum()) == int(a["counts"]["counts"].sum()) > 0
    np.testing.assert_array_equal(b["ltcube"]["exposure"].values, a["ltcube"]["exposure"].values)
    np.testing.assert_array_equal(b["exposure"]["exposure"].values,
                                  a["exposure"]["exposure"].values)
    assert b["counts"].attrs["MJDREF"] == a["counts"].attrs["MJDREF"]
    print(f"\ncounts {int(b['counts']['counts'].sum())}, livetime sum "
          f"{float(b['ltcube']['exposure'].sum()):.6g} s, exposure sum "
          f"{float(b['exposure']['exposure'].sum()):.6g} cm2 s: identical")
    # the gtltcube file made from such data, given as data.ltcube
    run_recipe(recipe(tmp_path, ltcube=str(tmp_path / "ltcube.fits")), outdir=tmp_path / "given",
               verbose=False)
    c = fermixr.open_run(tmp_path / "given")
    ref = fermixr.io.ltcube.read_ltcube(crab_day / "ltcube.fits.gz")
    np.testing.assert_array_equal(c["ltcube"]["exposure"].values, ref.exposure.values)
