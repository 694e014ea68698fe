"""IRF names resolve through the CALDB index (caldb.indx), as the Science Tools look them
up: the shared CALDB, and a crafted CALDB whose IRFs (P8R3 V3 SOURCE, CLEAN and
ULTRACLEANVETO, every partition) live in files of non-standard names."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fermixr.errors import FileFormatError, InputFileError, IRFError
from fermixr.io import caldb as C
from fermixr.irf.irfset import IRFSet

pytestmark = pytest.mark.shared_data

SHARED_INDEX = "data/glast/lat/caldb.indx.gz"


# ---------------------------------------------------------------- the shared CALDB
def test_shared_index_lists_every_irf_with_its_event_types(caldb_dir):
    entries = C.read_caldb_index(caldb_dir)
    assert len(entries) == 194  # every row of caldb.indx.gz has CAL_QUAL 0
    names = C.caldb_irf_names(caldb_dir)
    assert names == ["P6_V3_DIFFUSE", "P7REP_SOURCE_V15", "P7SOURCE_V6", "P8R2_SOURCE_V6",
                     "P8R3_SOURCE_V2"]
    assert C.caldb_irf_names(caldb_dir, with_files=True) == ["P7SOURCE_V6", "P8R2_SOURCE_V6",
                                                             "P8R3_SOURCE_V2"]
    types = {e.event_type for e in entries if e.irfs == "P8R3_SOURCE_V2"}
    assert types == {"FRONT", "BACK", "PSF0", "PSF1", "PSF2", "PSF3",
                     "EDISP0", "EDISP1", "EDISP2", "EDISP3"}
    # the index names .fits files; the CALDB here holds them gzipped
    e = next(e for e in entries if e.irfs == "P8R3_SOURCE_V2" and e.cnam == "RPSF"
             and e.event_type == "PSF3")
    assert e.listed == "data/glast/lat/bcf/psf/psf_P8R3_SOURCE_V2_PSF.fits"
    assert e.path.name == "psf_P8R3_SOURCE_V2_PSF.fits.gz" and e.hdu == 10


@pytest.mark.parametrize("evtype, types", [(3, ["FRONT", "BACK"]),
                                           (60, ["PSF0", "PSF1", "PSF2", "PSF3"]),
                                           (960, ["EDISP0", "EDISP1", "EDISP2", "EDISP3"])])
def test_shared_partitions_resolve_to_the_indexed_hdus(caldb_dir, evtype, types):
    from astropy.io import fits

    files = C.find_irf_files("p8r3_source_v2", evtype, caldb_dir)
    assert list(files) == types
    part = C.evtype_names(evtype)[0]
    for t in types:
        f = files[t]
        assert f.irfs == "P8R3_SOURCE_V2" and f.is_front == (t != "BACK")
        assert f.aeff[0].name == f"aeff_P8R3_SOURCE_V2_{part}.fits.gz"
        # the HDU named by the index's CAL_XNO is the table the file names for that type
        for (path, ext), want in ((f.aeff, f"EFFECTIVE AREA_{t}"), (f.psf, f"RPSF_{t}"),
                                  (f.edisp, f"ENERGY DISPERSION_{t}"),
                                  (f.psf_scaling, f"PSF_SCALING_PARAMS_{t}"),
                                  (f.efficiency, f"EFFICIENCY_PARAMS_{t}")):
            assert ext == want
            with fits.open(path) as h:
                assert h[ext].header.get("DETNAM", t).strip() == t
    irf = IRFSet.from_caldb("P8R3_SOURCE_V2", evtype, caldb_dir)
    assert irf.event_types == types
    assert np.all(irf.aeff(np.array([1e2, 1e3, 1e4]), 0.9) > 0)


def test_listed_irf_without_files_names_the_missing_file(caldb_dir):
    with pytest.raises(InputFileError,
                       match=r"P7REP_SOURCE_V15.*aeff_P7REP_SOURCE_V15_front\.fits"):
        C.find_irf_files("P7REP_SOURCE_V15", 3, caldb_dir)


def test_unknown_name_lists_what_the_index_offers(caldb_dir):
    with pytest.raises(IRFError) as exc:
        C.find_irf_files("P8R3_SOURCE_V3", 3, caldb_dir)
    msg = str(exc.value)
    assert "caldb.indx.gz" in msg and "P8R3_SOURCE_V2" in msg and "P6_V3_DIFFUSE" in msg
    with pytest.raises(IRFError, match=r"no PSF0 responses .*lists it for FRONT, BACK"):
        C.find_irf_files("P7SOURCE_V6", 4, caldb_dir)


# ---------------------------------------------------------------- a crafted CALDB
NEW_IRFS = {
    # IRF name -> how its files are named in the crafted CALDB (not the standard names)
    "P8R3_SOURCE_V3": "{kind}_P8R3_SOURCE_V3_{part}.fits",
    "P8R3_CLEAN_V3": "lat_clean_v3_{part}_{kind}.fits.gz",
    "P8R3_ULTRACLEANVETO_V3": "ucv3/{kind}-{part}.fits",
}


def _write_index(path, rows):
    from astropy.io import fits

    def col(name, fmt, key):
        return fits.Column(name, fmt, array=np.array([r[key] for r in rows]))

    cols = [col("TELESCOP", "10A", "TELESCOP"), col("INSTRUME", "10A", "INSTRUME"),
            col("DETNAM", "20A", "DETNAM"), col("FILTER", "10A", "FILTER"),
            col("CAL_DIR", "70A", "CAL_DIR"), col("CAL_FILE", "40A", "CAL_FILE"),
            col("CAL_CNAM", "20A", "CAL_CNAM"), col("CAL_CBD", "630A70", "CAL_CBD"),
            fits.Column("CAL_XNO", "I", array=np.array([r["CAL_XNO"] for r in rows], np.int16)),
            fits.Column("CAL_QUAL", "I", array=np.array([r["CAL_QUAL"] for r in rows], np.int16))]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="CIF")]
                 ).writeto(path)


@pytest.fixture(scope="module")
def crafted(caldb_dir, tmp_path_factory):
    """A CALDB whose index lists the P8R3 V3 IRFs (files: links to the shared P8R2 ones
    under other names), one IRF with FRONT and BACK areas swapped by CAL_XNO, one whose
    file is missing and one whose rows are flagged bad (CAL_QUAL 5)."""
    from astropy.io import fits

    root = tmp_path_factory.mktemp("caldb")
    bcf = root / "data" / "glast" / "lat" / "bcf"
    shared_bcf = C.resolve_caldb(caldb_dir)
    with fits.open(caldb_dir / SHARED_INDEX) as h:
        src = [dict(zip(h["CIF"].columns.names, r)) for r in h["CIF"].data.tolist()]
    src = [{k: (v.strip() if isinstance(v, str) else v) for k, v in r.items()} for r in src
           if "VERSION(P8R2_SOURCE_V6)" in r["CAL_CBD"]]
    rows = []
    for name, pattern in NEW_IRFS.items():
        for r in src:
            kind, part = re.match(r"(aeff|psf|edisp)_P8R2_SOURCE_V6_(\w+)\.fits",
                                  r["CAL_FILE"]).groups()
            sub = r["CAL_DIR"].rsplit("/", 1)[1]
            rel = pattern.format(kind=kind, part=part)
            target = bcf / sub / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(shared_bcf / sub / f"{kind}_P8R2_SOURCE_V6_{part}.fits.gz")
            cal_dir = f"{r['CAL_DIR']}/{rel.rsplit('/', 1)[0]}" if "/" in rel else r["CAL_DIR"]
            rows.append({**r, "CAL_DIR": cal_dir, "CAL_FILE": rel.rsplit("/", 1)[-1],
                         "CAL_CBD": r["CAL_CBD"].replace("P8R2_SOURCE_V6", name)})
    fb_aeff = [r for r in src if r["CAL_FILE"].startswith("aeff_") and "_FB" in r["CAL_FILE"]]
    swap = {1: 4, 2: 5, 3: 6, 4: 1, 5: 2, 6: 3}  # FRONT rows -> BACK HDUs and back
    for r in src:
        if r["CAL_FILE"].endswith("_FB.fits"):
            xno = swap[r["CAL_XNO"]] if r in fb_aeff else r["CAL_XNO"]
            rows.append({**r, "CAL_FILE": r["CAL_FILE"].replace("P8R2_SOURCE_V6", "P8R3_SOURCE_V3"),
                         "CAL_XNO": xno,
                         "CAL_CBD": r["CAL_CBD"].replace("P8R2_SOURCE_V6", "P8R3_SWAPPED_V1")})
            rows.append({**r, "CAL_CBD": r["CAL_CBD"].replace("P8R2_SOURCE_V6", "P8R3_BAD_V1"),
                         "CAL_QUAL": 5})
    rows.append({**fb_aeff[0], "CAL_FILE": "aeff_P8R3_GONE_V3_FB.fits",
                 "CAL_CBD": fb_aeff[0]["CAL_CBD"].replace("P8R2_SOURCE_V6", "P8R3_GONE_V3")})
    _write_index(root / "data" / "glast" / "lat" / "caldb.indx", rows)
    return root


def test_crafted_index_names_resolve_whatever_the_file_names(crafted, caldb_dir):
    assert C.caldb_irf_names(crafted) == list(NEW_IRFS) + ["P8R3_SWAPPED_V1", "P8R3_GONE_V3"]
    assert C.caldb_irf_names(crafted, with_files=True) == list(NEW_IRFS) + ["P8R3_SWAPPED_V1"]
    files = C.find_irf_files("P8R3_ULTRACLEANVETO_V3", 60, crafted)
    assert list(files) == ["PSF0", "PSF1", "PSF2", "PSF3"]
    assert files["PSF2"].psf[0].name == "psf-PSF.fits" and files["PSF2"].psf[1] == "RPSF_PSF2"
    assert files["PSF2"].psf[0].parent.name == "ucv3"
    clean = C.find_irf_files("P8R3_CLEAN_V3", 960, crafted)
    assert clean["EDISP1"].edisp == (clean["EDISP1"].edisp[0], "ENERGY DISPERSION_EDISP1")
    assert clean["EDISP1"].edisp[0].name == "lat_clean_v3_EDISP_edisp.fits.gz"
    # the same tables as the shared P8R2_SOURCE_V6, so the same responses
    e, c = np.array([150.0, 2e3, 5e4]), np.array([0.95, 0.6, 0.3])
    ref = {ev: IRFSet.from_caldb("P8R2_SOURCE_V6", ev, caldb_dir) for ev in (3, 60, 960)}
    for name in NEW_IRFS:
        for ev in (3, 60, 960):
            irf = IRFSet.from_caldb(name, ev, crafted)
            assert irf.irfs == name and irf.event_types == ref[ev].event_types
            np.testing.assert_array_equal(irf.aeff(e, c), ref[ev].aeff(e, c))
            np.testing.assert_array_equal(irf.psf(np.array([0.1, 1.0]), e, c),
                                          ref[ev].psf(np.array([0.1, 1.0]), e, c))


def test_crafted_index_decides_the_hdu(crafted, caldb_dir):
    """CAL_XNO, not the HDU names, says which table a row is: with FRONT and BACK effective
    areas swapped in the index, FRONT gets the BACK table."""
    files = C.find_irf_files("P8R3_SWAPPED_V1", 3, crafted)
    assert files["FRONT"].aeff[1] == "EFFECTIVE AREA_BACK"
    assert files["FRONT"].psf[1] == "RPSF_FRONT"
    ref = IRFSet.from_caldb("P8R2_SOURCE_V6", 3, caldb_dir)
    swapped = IRFSet.from_caldb("P8R3_SWAPPED_V1", 3, crafted)
    e = np.array([300.0, 3e3])
    np.testing.assert_array_equal(swapped.aeff(e, 0.8, event_type="FRONT"),
                                  ref.aeff(e, 0.8, event_type="BACK"))


def test_crafted_index_errors(crafted, tmp_path):
    with pytest.raises(IRFError) as exc:
        C.find_irf_files("P8R2_SOURCE_V6", 3, crafted)
    msg = str(exc.value)
    assert "caldb.indx" in msg
    assert all(n in msg for n in ("P8R3_SOURCE_V3", "P8R3_CLEAN_V3", "P8R3_ULTRACLEANVETO_V3"))
    assert "P8R3_BAD_V1" not in msg  # its rows are flagged bad (CAL_QUAL 5)
    with pytest.raises(IRFError, match="unknown IRF name 'P8R3_BAD_V1'"):
        C.find_irf_files("P8R3_BAD_V1", 3, crafted)
    with pytest.raises(InputFileError, match=r"P8R3_GONE_V3' FRONT EFF_AREA.*aeff_P8R3_GONE_V3_FB"):
        C.find_irf_files("P8R3_GONE_V3", 1, crafted)
    with pytest.raises(IRFError, match=r"P8R3_GONE_V3.*no BACK responses"):
        C.find_irf_files("P8R3_GONE_V3", 3, crafted)
    # an index without the CALDB columns is refused, naming the file
    from astropy.io import fits

    bad = tmp_path / "data" / "glast" / "lat"
    (bad / "bcf" / "ea").mkdir(parents=True)
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column("CAL_FILE", "40A", array=np.array(["x.fits"]))], name="CIF")]
    ).writeto(bad / "caldb.indx")
    with pytest.raises(FileFormatError, match=r"caldb\.indx.*lacks the columns DETNAM"):
        C.find_irf_files("P8R2_SOURCE_V6", 3, tmp_path)
