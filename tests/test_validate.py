"""`fermixr validate` does every check that needs no computation: data files exist and
read to their end, model files exist and parse, IRFs resolve through the CALDB, steps are
available, products fit in memory (with the estimate in the message), NaN is refused.
Each problem is one line naming the key path or the file; exit 2."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from fermixr.engine.recipe import load_recipe, validate_file

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "quickstart.yaml"
DATA = EXAMPLE.parent / "data"


def _doc(**changes) -> dict:
    """The built-in example with absolute paths, sections updated by ``changes``."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    for key in ("evfile", "scfile", "caldb"):
        doc["data"][key] = str((EXAMPLE.parent / doc["data"][key]).resolve())
    doc["model"]["catalogs"] = [str((EXAMPLE.parent / c).resolve())
                                for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str((EXAMPLE.parent / doc["model"]["isodiff"]).resolve())
    for section, values in changes.items():
        if section == "steps":
            doc["steps"] = values
        else:
            doc.setdefault(section, {}).update(values)
    return doc


def _write(tmp_path, doc, name="recipe.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return p


def _validate(tmp_path, **changes) -> list[str]:
    return validate_file(_write(tmp_path, _doc(**changes)))


def _cli(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "fermixr.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, env=e)


def test_the_example_is_valid(tmp_path):
    assert _validate(tmp_path) == []


def test_wrong_irf_name(tmp_path):
    (p,) = _validate(tmp_path, gtlike={"irfs": "P8R9_NOPE_V1"})
    assert p.startswith("gtlike.irfs: unknown IRF name 'P8R9_NOPE_V1'") and "FXR_SYNTH_V1" in p


def test_missing_model_files(tmp_path):
    (p,) = _validate(tmp_path, model={"isodiff": str(tmp_path / "iso_nope.txt")})
    assert p.startswith("model.isodiff") and "iso_nope.txt" in p
    (p,) = _validate(tmp_path, model={"catalogs": [str(tmp_path / "cat_nope.fits")]})
    assert p.startswith("model.catalogs") and "cat_nope.fits" in p


def test_model_files_that_do_not_parse(tmp_path):
    bad_xml = tmp_path / "model.xml"
    bad_xml.write_text("<source_library><source name='x'>\n")
    (p,) = _validate(tmp_path, model={"catalogs": [str(bad_xml)]})
    assert "model.xml" in p and "XML" in p
    table = tmp_path / "iso_neg.txt"
    table.write_text("100 1e-3\n1000 -1e-5\n10000 1e-7\n")
    (p,) = _validate(tmp_path, model={"isodiff": str(table)})
    assert "iso_neg.txt" in p and "row 2" in p and "isodiff" in p


def test_map_cube_planes_against_energies(tmp_path):
    from astropy.io import fits

    cube = tmp_path / "galdiff.fits"
    img = fits.PrimaryHDU(np.ones((3, 20, 20), dtype=np.float32))
    h = img.header
    h.update(CTYPE1="RA---CAR", CTYPE2="DEC--CAR", CRPIX1=10.5, CRPIX2=10.5, CRVAL1=83.6,
             CRVAL2=22.0, CDELT1=-1.0, CDELT2=1.0, CUNIT1="deg", CUNIT2="deg")
    energies = fits.BinTableHDU.from_columns(
        [fits.Column(name="Energy", format="D", array=[100.0, 1000.0])], name="ENERGIES")
    fits.HDUList([img, energies]).writeto(cube)
    (p,) = _validate(tmp_path, model={"galdiff": str(cube)})
    assert "galdiff.fits" in p and "3 image planes but 2 ENERGIES rows" in p


def test_nan_is_refused_by_the_schema(tmp_path):
    (p,) = _validate(tmp_path, selection={"dec": float("nan")})
    assert p == "selection.dec: got nan; expected a finite number"
    (p,) = _validate(tmp_path, binning={"binsz": float("inf")})
    assert p == "binning.binsz: got inf; expected a finite number"


def test_every_step_is_available_and_an_unknown_one_is_named(tmp_path):
    from fermixr.engine import plan

    assert plan.NOT_YET == ()          # every step of Fermipy's that the table lists runs
    (p,) = _validate(tmp_path, steps=["setup", {"localise": {"name": "SYN_CRAB"}}])
    assert p.startswith("steps[1]: unknown step 'localise' (did you mean 'localize'?); "
                        "known steps: ")


def test_every_problem_one_line_each(tmp_path):
    probs = _validate(tmp_path, gtlike={"irfs": "P8R9_NOPE_V1"},
                      model={"isodiff": str(tmp_path / "iso_nope.txt")},
                      data={"ltcube": str(tmp_path / "lt_nope.fits")})
    assert len(probs) == 3 and all("\n" not in p for p in probs)
    assert {p.split(":")[0] for p in probs} == {"data.ltcube", "gtlike.irfs", "model.isodiff"}


def test_data_files_read_to_their_end(tmp_path):
    ft1 = DATA / "ft1.fits"
    raw = gzip.compress(ft1.read_bytes())
    trunc = tmp_path / "ft1_trunc.fits.gz"
    trunc.write_bytes(raw[: int(len(raw) * 0.95)])          # headers intact, data cut
    (p,) = _validate(tmp_path, data={"evfile": str(trunc)})
    assert p.startswith("data.evfile:") and "ft1_trunc.fits.gz" in p and "truncated" in p
    plain = tmp_path / "ft1_cut.fits"
    plain.write_bytes(ft1.read_bytes()[:-5000])
    (p,) = _validate(tmp_path, data={"evfile": str(plain)})
    assert "ft1_cut.fits" in p and "truncated" in p
    ft2 = tmp_path / "ft2.fits"
    ft2.write_bytes(b"not a FITS file" * 200)
    probs = _validate(tmp_path, data={"scfile": str(ft2)})
    assert probs and all("ft2.fits" in p for p in probs) and probs[0].startswith("data.scfile")


def test_zero_event_ft1(tmp_path):
    from astropy.io import fits

    zero = tmp_path / "ft1_empty.fits"
    with fits.open(DATA / "ft1.fits") as h:
        h["EVENTS"].data = h["EVENTS"].data[:0]
        h.writeto(zero)
    (p,) = _validate(tmp_path, data={"evfile": str(zero)})
    assert p.startswith("data.evfile:") and "ft1_empty.fits" in p and "no events" in p


def test_size_estimates_are_the_product_shapes():
    """The counts cube of the example is 60 x 60 pixels x 24 energy bins (12 deg at 0.2
    deg, 100 MeV - 100 GeV at 8 bins per decade); its source maps add one node and, with
    energy dispersion, edisp_bins on each side; the livetime cube is HEALPix nside 64 (1
    deg) x 40 cos(theta) bins (dcostheta 0.025)."""
    from fermixr.engine.preflight import size_estimates

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opts = load_recipe(_doc()).options[0]
    est = size_estimates(opts, n_sources=4)
    assert (est["npix"], est["nebins"]) == (3600, 24)
    assert est["nodes"] == 25 + 2 * opts.gtlike.edisp_bins * bool(opts.gtlike.edisp)
    assert est["counts"] == 3600 * 24 * 8
    assert est["srcmaps"] == 4 * est["nodes"] * 3600 * 8
    assert est["ltcube"] == 12 * 64 ** 2 * 40 * 1 * 2 * 8


def test_source_maps_larger_than_memory_refused_in_validate_and_run(tmp_path):
    big = _doc(binning={"binsz": 0.001})        # 12000^2 pixels: 4 x 27 x 1.44e8 x 8 B
    recipe = _write(tmp_path, big)
    mem = {"FERMIXR_MEMORY_BYTES": str(8e9)}
    r = _cli("validate", recipe, env=mem)
    assert r.returncode == 2, r.stderr
    lines = [ln.strip() for ln in r.stderr.splitlines()]
    (srcmaps,) = [ln for ln in lines if "source maps" in ln]
    assert srcmaps.startswith("binning: the source maps need 124.4 GB (4 sources x 27 "
                              "energy nodes x 144000000 pixels x 8 bytes), more than this "
                              "machine's memory (8.0 GB)"), srcmaps
    out = tmp_path / "out"
    r = _cli("run", recipe, "--outdir", out, env=mem)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("fermixr: error: binning: the counts cube needs") \
        or line.startswith("fermixr: error: binning: the source maps need"), line
    assert not (out / "products").exists()


def test_warns_above_half_the_memory(tmp_path):
    # source maps: 4 x 27 x 3600 x 8 = 3.1 MB; livetime cube (nside 16): 2.0 MB
    recipe = _write(tmp_path, _doc(ltcube={"binsz": 4.0}))
    r = _cli("validate", recipe, env={"FERMIXR_MEMORY_BYTES": "5e6"})
    assert r.returncode == 0, r.stderr
    assert "warning: binning: the source maps need 3.1 MB" in r.stderr
    assert "more than half of this machine's memory (5.0 MB)" in r.stderr
    r = _cli("validate", recipe, env={"FERMIXR_MEMORY_BYTES": "3e6"})
    assert r.returncode == 2 and "the source maps need 3.1 MB" in r.stderr


def test_memory_is_read():
    from fermixr.engine.preflight import memory_bytes

    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    assert abs(memory_bytes() - total) < 0.01 * total


def test_cli_validate_exit_codes(tmp_path):
    r = _cli("validate", _write(tmp_path, _doc(gtlike={"irfs": "P8R9_NOPE_V1"})))
    assert r.returncode == 2 and "gtlike.irfs: unknown IRF name" in r.stderr
    r = _cli("validate", _write(tmp_path, _doc(), "ok.yaml"))
    assert r.returncode == 0 and "valid" in r.stdout, r.stderr
