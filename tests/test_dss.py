"""A selection wider than the event file's own cuts (its DSS keywords) is refused (issue 15),
naming both ranges and the keyword; an IRF class that differs from the events' class warns."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fermixr.errors import SelectionError
from fermixr.io.dss import dss_cuts
from fermixr.select.cuts import check_selection_within, irf_class_mismatch

CRAB = (83.6331, 22.0145)
CRAB_DSS = [  # the Crab day's EVENTS header, as read_dss returns it
    {"type": "BIT_MASK(EVENT_CLASS,128,P8R2)", "unit": "DIMENSIONLESS", "value": "1:1", "key": "DSVAL1"},
    {"type": "BIT_MASK(EVENT_TYPE,3,P8R2)", "unit": "DIMENSIONLESS", "value": "1:1", "key": "DSVAL2"},
    {"type": "TIME", "unit": "s", "value": "TABLE", "ref": ":GTI", "key": "DSVAL3"},
    {"type": "POS(RA,DEC)", "unit": "deg", "value": "CIRCLE(83.6331,22.0145,15)", "key": "DSVAL4"},
    {"type": "ENERGY", "unit": "MeV", "value": "200:20000", "key": "DSVAL5"},
    {"type": "ZENITH_ANGLE", "unit": "deg", "value": "0:90", "key": "DSVAL6"},
]


@pytest.fixture
def cuts():
    return dss_cuts(CRAB_DSS, path="ft1.fits", tstart=239557417.5, tstop=239643817.5)


def test_dss_cuts_as_numbers(cuts):
    assert cuts["energy"] == {"min": 200.0, "max": 20000.0, "key": "DSVAL5"}
    assert cuts["circle"] == {"ra": 83.6331, "dec": 22.0145, "radius": 15.0, "key": "DSVAL4"}
    assert cuts["zenith"]["max"] == 90.0
    assert cuts["evclass"] == {"mask": 128, "pass_ver": "P8R2", "key": "DSTYP1"}
    assert cuts["evtype"]["mask"] == 3
    assert cuts["time"] == {"min": 239557417.5, "max": 239643817.5, "key": "TSTART/TSTOP"}
    # open-ended and explicit time ranges, Pass 6 scalar classes
    c = dss_cuts([{"type": "ENERGY", "value": ":30000"}, {"type": "TIME", "value": "10:20"},
                  {"type": "EVENT_CLASS", "value": "3:10"}])
    assert c["energy"] == {"min": None, "max": 30000.0, "key": "DSVAL1"}
    assert c["time"]["min"] == 10.0 and c["evclass"]["min"] == 3.0


@pytest.mark.parametrize("opts,message", [
    (dict(emin=100), r"^selection.emin 100 MeV is below the event file's own cut of 200 MeV "
                     r"\(ft1.fits DSS keyword DSVAL5\).*set emin >= 200$"),
    (dict(emax=30000), r"emax 30000 MeV is above the event file's own cut of 20000 MeV"),
    (dict(ra=CRAB[0], dec=CRAB[1], radius=20), r"radius 20 deg .* reaches 20.000 deg from the "
                                               r"centre of the event file's own circle of 15 deg"
                                               r".*DSVAL4.*set radius <= 15"),
    (dict(ra=CRAB[0] + 3, dec=CRAB[1], radius=14), r"set radius <= 12.2"),
    (dict(tmax=239700000.0), r"tmax 239700000.0 s \(MET\) is after the event file's own time "
                             r"range 239557417.5-239643817.5 s"),
    (dict(tmin=239000000.0), r"tmin .* is before"),
    (dict(zmax=100), r"zmax 100 deg is wider than the event file's own zenith cut of 90 deg "
                     r"\(ft1.fits DSS keyword DSVAL6\)"),
    (dict(evclass=64), r"evclass 64 asks for events of a class the event file was not cut to "
                       r"hold: it keeps only class 128 \(ft1.fits DSS keyword DSTYP1\)"),
    (dict(evclass=128 | 64), r"evclass 192"),
])
def test_wider_selections_are_refused(cuts, opts, message):
    with pytest.raises(SelectionError, match=message):
        check_selection_within(cuts, **opts)


def test_selections_within_the_file_pass(cuts):
    check_selection_within(cuts, emin=200, emax=20000, ra=CRAB[0], dec=CRAB[1], radius=15,
                           zmax=90, evclass=128, evtype=3, tmin=239557417.5, tmax=239643817.5)
    check_selection_within(cuts, emin=1000, emax=10000, ra=CRAB[0] + 1, dec=CRAB[1], radius=5,
                           zmax=70, tmin=239557417.0)   # 0.5 s before TSTART: rounding
    # Pass 8 classes are nested (SOURCE > CLEAN > ULTRACLEAN > ULTRACLEANVETO): a SOURCE
    # file holds every event of the narrower classes
    for ec in (256, 512, 1024, 128 | 1024):
        check_selection_within(cuts, evclass=ec)
    # event types: a FRONT+BACK file holds every type; a PSF3-only file only PSF3
    for et in (1, 2, 4, 32, 512):
        check_selection_within(cuts, evtype=et)
    psf3 = dss_cuts([{"type": "BIT_MASK(EVENT_TYPE,32,P8R2)", "value": "1:1"}])
    check_selection_within(psf3, evtype=32)
    with pytest.raises(SelectionError, match=r"evtype 3 asks for event types the event file does "
                                             r"not hold: it keeps only types 32"):
        check_selection_within(psf3, evtype=3)
    check_selection_within({}, emin=1)   # no DSS keywords: nothing to compare


def test_irf_class_that_differs_from_the_events_warns(cuts):
    assert irf_class_mismatch("P8R2_SOURCE_V6", 128) is None
    assert irf_class_mismatch("P8R2_ULTRACLEANVETO_V6", 1024) is None
    msg = irf_class_mismatch("P8R2_SOURCE_V6", 1024)
    assert "IRFs P8R2_SOURCE_V6 are for SOURCE events but the events are class 1024 " \
           "(ULTRACLEANVETO)" in msg
    with pytest.warns(UserWarning, match="are for SOURCE events but the events are class 1024"):
        out = check_selection_within(cuts, evclass=1024, irfs="P8R2_SOURCE_V6")
    assert len(out) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_selection_within(cuts, evclass=128, irfs="P8R2_SOURCE_V6") == []


def test_counts_cube_reaching_beyond_the_file_circle_is_refused(cuts):
    from fermixr.geom import EnergyAxis, WcsGeom
    from fermixr.geom.frames import fermipy_cel_to_gal

    gal = fermipy_cel_to_gal(*CRAB)
    ok = WcsGeom(center=gal, npix=(100, 100), binsz=0.2, proj="CAR", frame="GAL")  # 20 deg
    check_selection_within(cuts, geom=ok)
    big = WcsGeom(center=gal, npix=(200, 200), binsz=0.2, proj="CAR", frame="GAL")  # 40 deg
    with pytest.raises(SelectionError, match=r"the counts-cube geometry \(40 x 40 deg\) reaches "
                                             r"2[78].\d+ deg from the centre of the event file's "
                                             r"own circle of 15 deg"):
        check_selection_within(cuts, geom=big)
    axis = EnergyAxis.from_bounds(100.0, 20000.0, binsperdec=8)
    with pytest.raises(SelectionError, match=r"counts cube's lowest energy edge 100 MeV is "
                                             r"below the event file's own cut of 200 MeV"):
        check_selection_within(cuts, energy_edges=axis.edges)


@pytest.mark.shared_data
def test_crab_day_selections(crab_day, caldb_dir, tmp_path):
    """On the Crab day: emin 100 (the Crab index moved from -2.466 to -1.903), roiwidth 40
    (-2.795) and zmax 100 used to run with exit 0; now the run stops with exit 2 naming the
    file's own cut.  The default recipe (20 deg ROI) runs unchanged, and evclass 1024 (a class
    nested in the file's SOURCE class) selects its 979 events."""
    import fermixr
    from fermixr.engine.run import run_recipe
    from fermixr.io.ft1 import read_ft1
    from fermixr.select.cuts import select_events

    assert dss_cuts(crab_day / "ft1.fits.gz")["energy"]["key"] == "DSVAL5"
    ev, gti = read_ft1(crab_day / "ft1.fits.gz")
    assert select_events(ev, evclass=1024).sizes["event"] == 979
    with pytest.warns(UserWarning, match="IRFs P8R2_SOURCE_V6 are for SOURCE events but the "
                                         "events are class 1024"):
        select_events(ev, evclass=1024, irfs="P8R2_SOURCE_V6")
    with pytest.raises(SelectionError, match=r"emin 100 MeV is below the event file's own cut "
                                             r"of 200 MeV \(ft1.fits.gz DSS keyword DSVAL5\)"):
        select_events(ev, emin=100, emax=20000)

    def recipe(**sections):
        rec = {"data": {"evfile": str(crab_day / "ft1.fits.gz"),
                        "scfile": str(crab_day / "ft2.fits.gz"), "caldb": str(caldb_dir)},
               "binning": {"coordsys": "GAL", "proj": "CAR", "npix": 100, "binsz": 0.2,
                           "binsperdec": 10},
               "selection": {"emin": 200, "emax": 20000, "zmax": 90, "evclass": 128,
                             "evtype": 3, "ra": CRAB[0], "dec": CRAB[1]},
               "gtlike": {"irfs": "P8R2_SOURCE_V6"}, "steps": ["counts"]}
        for k, v in sections.items():
            rec[k] = {**rec[k], **v}
        return rec

    run_recipe(recipe(), outdir=tmp_path / "ok", verbose=False)
    assert int(fermixr.open_run(tmp_path / "ok")["counts"]["counts"].sum()) == 853
    with pytest.raises(SelectionError, match=r"emin 100 MeV .*DSVAL5.*set emin >= 200"):
        run_recipe(recipe(selection={"emin": 100}), outdir=tmp_path / "e", verbose=False)
    wide = recipe()
    wide["binning"] = {"coordsys": "GAL", "proj": "CAR", "roiwidth": 40, "binsz": 0.2}
    with pytest.raises(SelectionError, match=r"radius 28.78\d* deg .*circle of 15 deg"):
        run_recipe(wide, outdir=tmp_path / "w", verbose=False)
    wide["selection"]["radius"] = 10.0     # a small cone does not save a 40 deg cube
    with pytest.raises(SelectionError, match=r"counts-cube geometry \(40 x 40 deg\)"):
        run_recipe(wide, outdir=tmp_path / "w2", verbose=False)
