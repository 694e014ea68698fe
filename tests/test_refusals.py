"""Data the instrument did not see is refused through the command line, in ``validate`` and
in ``run``, before anything is computed (issue: no silent wrong answers)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml
from astropy.io import fits

pytestmark = pytest.mark.shared_data

CRAB = (83.6331, 22.0145)


def _recipe(crab_day, caldb_dir, path, **sections):
    rec = {
        "data": {"evfile": str(crab_day / "ft1.fits.gz"),
                 "scfile": str(crab_day / "ft2.fits.gz"), "caldb": str(caldb_dir)},
        "binning": {"coordsys": "CEL", "proj": "CAR", "roiwidth": 6.0, "binsz": 0.5,
                    "binsperdec": 4},
        "selection": {"emin": 200, "emax": 20000, "zmax": 90, "evclass": 128, "evtype": 3,
                      "ra": CRAB[0], "dec": CRAB[1]},
        "gtlike": {"irfs": "P8R2_SOURCE_V6"},
        "ltcube": {"zmax": 180, "dcostheta": 0.05, "binsz": 4.0},
        "steps": ["setup"],
    }
    for k, v in sections.items():
        rec[k] = {**rec.get(k, {}), **v}
    path.write_text(yaml.safe_dump(rec))
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fermixr.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_an_ft2_cut_to_half_the_gtis_is_refused_naming_the_uncovered_time(crab_day,
                                                                         caldb_dir, tmp_path):
    gs = fits.getdata(crab_day / "ft1.fits.gz", "GTI")["START"]
    with fits.open(crab_day / "ft2.fits.gz") as h:
        k = int(np.searchsorted(h["SC_DATA"].data["START"], gs[gs.size // 2]))
        h["SC_DATA"].data = h["SC_DATA"].data[:k]
        h.writeto(tmp_path / "ft2_half.fits")
    r = _recipe(crab_day, caldb_dir, tmp_path / "half.yaml",
                data={"scfile": str(tmp_path / "ft2_half.fits")})
    v = _cli("validate", r)
    assert v.returncode == 2, v.stdout + v.stderr
    assert "does not cover 41192.3 s of the 63395.7 s of good time" in v.stdout + v.stderr
    out = tmp_path / "run"
    p = _cli("run", r, "--outdir", out, "-q")
    assert p.returncode == 2, p.stderr
    assert "does not cover 41192.3 s" in p.stderr and "trim_to_ft2" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not list((out / ".store").glob("ltcube-*"))          # refused before the work


@pytest.mark.parametrize("section,given,named", [
    ({"selection": {"emin": 100}}, "emin 100 MeV", "200 MeV"),
    ({"binning": {"roiwidth": 40.0}}, "", "15"),
    ({"selection": {"zmax": 100}}, "zmax", "90"),
])
def test_a_selection_wider_than_the_event_file_is_refused(crab_day, caldb_dir, tmp_path,
                                                         section, given, named):
    r = _recipe(crab_day, caldb_dir, tmp_path / "wide.yaml", **section)
    for cmd in (["validate", r], ["run", r, "--outdir", tmp_path / "run", "-q"]):
        p = _cli(*cmd)
        text = p.stdout + p.stderr
        assert p.returncode == 2, text
        assert given in text and named in text, text
    assert not (tmp_path / "run" / ".store").exists() or not list(
        (tmp_path / "run" / ".store").glob("events-*"))


def test_irf_class_other_than_the_events_class_warns_in_validate(crab_day, caldb_dir,
                                                                tmp_path):
    r = _recipe(crab_day, caldb_dir, tmp_path / "ucv.yaml", selection={"evclass": 1024})
    p = _cli("validate", r)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "P8R2_SOURCE_V6 are for SOURCE events but the events are class 1024" in \
        p.stdout + p.stderr
