"""Loading recipes: Fermipy spellings, validation messages, warnings, steps, components,
overrides, derived defaults and paths."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from pathlib import Path

import pytest

from fermixr.engine import options as O
from fermixr.engine.recipe import (
    Recipe,
    RecipeDeprecationWarning,
    RecipeWarning,
    load_recipe,
    merge_config,
    validate_file,
)
from fermixr.errors import FermixrError, InputFileError, RecipeError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "fermipy_config.yaml"

# Fermipy's quickstart configuration, as users write it
QUICKSTART = """
data:
  evfile : ft1.lst
  scfile : ft2.fits

binning:
  roiwidth   : 10.0
  binsz      : 0.1
  binsperdec : 8

selection :
  emin : 100
  emax : 316227.76
  zmax    : 90
  evclass : 128
  evtype  : 3
  tmin    : 239557414
  tmax    : 428903014
  filter  : null
  target : 'mkn421'

gtlike:
  edisp : True
  irfs : 'P8R2_SOURCE_V6'
  edisp_disable : ['isodiff','galdiff']

model:
  src_roiwidth : 15.0
  galdiff  : '$FERMI_DIFFUSE_DIR/gll_iem_v06.fits'
  isodiff  : 'iso_P8R2_SOURCE_V6_v06.txt'
  catalogs : ['3FGL']
"""


def _quiet(fn, *a, **k):
    """Call fn with every warning turned into an error (asserts none is raised)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*a, **k)


def _write(tmp_path, text, name="config.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# --- plain Fermipy configurations --------------------------------------------------------


def test_quickstart_target_without_its_catalog_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FERMI_DIFFUSE_DIR", "/opt/diffuse")
    for var in ("FERMIPY_DATA_DIR", "FERMI_DIR", "FERMIXR_CATALOG_DIR"):
        monkeypatch.delenv(var, raising=False)
    p = _write(tmp_path, QUICKSTART)
    with pytest.raises(InputFileError, match=r"^selection.target 'mkn421': catalog '3FGL': "
                                             r"no file matching gll_psc_v16.fit"):
        _quiet(load_recipe, p)


def test_quickstart_config_loads_with_setup_step(tmp_path, monkeypatch, shared_data):
    """The manual's quickstart, its target resolved through 4FGL-DR4 (the shared copy)."""
    monkeypatch.setenv("FERMI_DIFFUSE_DIR", "/opt/diffuse")
    cat = shared_data / "catalogs" / "gll_psc_v35.fit.gz"
    p = _write(tmp_path, QUICKSTART.replace("['3FGL']", f"['{cat}']"))
    r = _quiet(load_recipe, p)
    sel0 = r.section("selection")
    # Mkn 421 = 4FGL J1104.4+3812 (ASSOC1 'Mkn 421'): RAJ2000 166.1187, DEJ2000 38.2070
    assert (sel0["ra"], sel0["dec"]) == pytest.approx((166.1187, 38.2070), abs=1e-3)
    p = _write(tmp_path, QUICKSTART.replace("target : 'mkn421'", "ra: 166.1187\n  dec: 38.2070"))
    r = _quiet(load_recipe, p)
    assert r.steps == [("setup", {})]
    assert r.path == p.resolve()
    sel = r.section("selection")
    assert sel["target"] is None
    assert sel["tmin"] == 239557414.0 and isinstance(sel["tmin"], float)
    assert sel["zmax"] == 90.0
    assert r.config["gtlike"]["edisp_disable"] == ["isodiff", "galdiff"]
    # one string given where Fermipy takes a list becomes a list
    assert r.config["model"]["galdiff"] == ["/opt/diffuse/gll_iem_v06.fits"]
    # a bare template name with no such file beside the recipe stays a name
    assert r.config["model"]["isodiff"] == ["iso_P8R2_SOURCE_V6_v06.txt"]
    assert r.config["model"]["catalogs"] == ["3FGL"]
    # relative data paths are taken from the recipe's folder
    assert r.config["data"]["evfile"] == str(tmp_path / "ft1.lst")
    assert r.config["data"]["scfile"] == str(tmp_path / "ft2.fits")
    # outdir defaults to the recipe's folder
    assert r.config["fileio"]["outdir"] == str(tmp_path.resolve())
    assert r.config["fileio"]["cachedir"] == str(tmp_path.resolve() / ".store")
    assert r.config["fileio"]["workdir"] == str(tmp_path.resolve())
    assert len(r.components) == 1 and r.components[0]["selection"] == sel


def test_defaults_are_filled():
    r = _quiet(load_recipe, {})
    b, s, o = r.config["binning"], r.config["selection"], r.config["optimizer"]
    assert (b["proj"], b["coordsys"], b["binsperdec"], b["hpx_order"]) == ("AIT", "CEL", 8, 10)
    assert b["hpx_ordering_scheme"] == "RING"
    assert (s["evclass"], s["evtype"]) == (128, 3)
    assert (o["optimizer"], o["tol"], o["retries"], o["min_fit_quality"]) == (
        "MINUIT", 1e-3, 3, 2)
    assert r.config["ltcube"]["dcostheta"] == 0.025
    assert set(O.SECTIONS) <= set(r.config)
    assert r.config["components"] is None


def test_example_config_is_a_plain_fermipy_config(monkeypatch):
    monkeypatch.setenv("FERMIXR_SHARED_DATA", "/data/shared")
    r = _quiet(load_recipe, EXAMPLE)
    assert r.steps == [("setup", {})]
    assert r.config["data"]["evfile"] == "/data/shared/lat-crab-1day/ft1.fits.gz"
    assert r.config["data"]["scfile"] == "/data/shared/lat-crab-1day/ft2.fits.gz"
    b, s = r.config["binning"], r.config["selection"]
    assert (b["coordsys"], b["proj"], b["npix"], b["binsz"]) == ("GAL", "CAR", 100, 0.2)
    assert b["enumbins"] == 20          # cntmap.fits.gz: 20 bins 200 MeV .. 20 GeV
    assert (s["emin"], s["emax"], s["zmax"], s["evclass"], s["evtype"]) == (
        200.0, 20000.0, 90.0, 128, 3)
    assert (s["ra"], s["dec"]) == (83.6331, 22.0145)
    assert r.config["gtlike"]["irfs"] == "P8R2_SOURCE_V6"
    assert r.config["ltcube"]["zmax"] == 90.0


@pytest.mark.shared_data
def test_validate_file_on_example_with_real_data(shared_data, monkeypatch):
    monkeypatch.setenv("FERMIXR_SHARED_DATA", str(shared_data))
    monkeypatch.setenv("CALDB", str(shared_data / "caldb"))   # as the example says
    assert validate_file(EXAMPLE) == []
    monkeypatch.delenv("CALDB")       # validate resolves the IRFs: not without a CALDB
    assert any(p.startswith("gtlike.irfs:") and "CALDB" in p for p in validate_file(EXAMPLE))
    monkeypatch.setenv("CALDB", str(shared_data / "caldb"))
    monkeypatch.setenv("FERMIXR_SHARED_DATA", str(shared_data / "nowhere"))
    probs = validate_file(EXAMPLE)
    assert len(probs) == 2
    assert any("data.evfile" in p and "ft1.fits.gz" in p for p in probs)
    assert any("data.scfile" in p and "ft2.fits.gz" in p for p in probs)


# --- error messages -----------------------------------------------------------------------


def test_wrong_type_names_path_value_and_expected():
    with pytest.raises(RecipeError, match=r"binning\.binsz: got 'big'; expected a number"):
        load_recipe({"binning": {"binsz": "big"}})


def test_all_problems_reported_at_once():
    with pytest.raises(RecipeError) as info:
        load_recipe({
            "binning": {"binsz": "big", "proj": "XYZ", "hpx_order": 13},
            "selection": {"evclass": "SOURCE", "zmax": 200, "emin": 1000, "emax": 100},
            "optimizer": {"optimizer": "MIGRAD"},
            "sed": {"cov_scale": True},
        })
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, FermixrError)
    msg = str(err)
    assert "8 problems" in msg
    assert err.problems == msg.split("\n  ")[1:]
    assert "binning.proj: got 'XYZ'; expected one of 'AIT', 'ARC', 'CAR'" in msg
    assert "binning.hpx_order: got 13; expected an integer >= 0 and <= 12" in msg
    assert "selection.evclass: got 'SOURCE'; expected an integer >= 1" in msg
    assert "selection.zmax: got 200; expected a number > 0 and <= 180 or null (in deg)" in msg
    assert "selection.emin: got 1000 with emax 100; expected emin < emax" in msg
    assert "optimizer.optimizer: got 'MIGRAD'; expected one of 'MINUIT', 'NEWMINUIT', " \
           "'NEWTON'" in msg
    # a boolean is not a number
    assert "sed.cov_scale: got True; expected a number or null" in msg


@pytest.mark.parametrize("section,key,value,expected", [
    ("binning", "npix", 0, r"an integer >= 1"),
    ("binning", "npix", 10.5, r"an integer >= 1"),
    ("binning", "coordsys", "ICRS", r"one of 'CEL', 'GAL'"),
    ("selection", "evtype", "FRONT", r"an integer >= 1 and <= 1023 or a list"),
    ("selection", "tmin", "2008-08-04", r"a number or null \(in s\)"),
    ("gtlike", "edisp", "yes", r"true or false"),
    ("tsmap", "loge_bounds", [2.0], r"a list of 2 items"),
    ("model", "catalogs", [4], r"a string"),
    ("extension", "spatial_model", "Gauss", r"one of 'RadialGaussian', 'RadialDisk'"),
    ("data", "evfile", 5, r"a string or a list"),
    # bounds that execution assumes: refused here, not deep inside a run
    ("optimizer", "retries", 0, r"an integer >= 1"),
    ("selection", "zmax", 0, r"a number > 0 and <= 180 or null"),
    ("ltcube", "zmax", 0.0, r"a number > 0 and <= 180 or null"),
    ("gtlike", "expscale", 0.0, r"a number > 0 or null"),
])
def test_each_bad_value_message(section, key, value, expected):
    with pytest.raises(RecipeError, match=rf"{section}\.{key}(\[0\])?: got ") as info:
        load_recipe({section: {key: value}})
    msg = str(info.value)
    assert re.search(expected, msg), msg
    shown = repr(value[0]) if key == "catalogs" else repr(value)
    assert shown in msg


def test_section_that_is_not_a_mapping():
    with pytest.raises(RecipeError, match=r"binning: got 5; expected a mapping of binning"):
        load_recipe({"binning": 5})


def test_cross_checks():
    with pytest.raises(RecipeError, match=r"selection\.dec: required with ra"):
        load_recipe({"selection": {"ra": 83.6}})
    with pytest.raises(RecipeError, match=r"selection\.tmin: got 2\.0 with tmax 1\.0"):
        load_recipe({"selection": {"tmin": 2.0, "tmax": 1.0}})
    with pytest.raises(RecipeError, match=r"selection\.logemin: got 3\.0 but emin is 200"):
        load_recipe({"selection": {"emin": 200, "logemin": 3.0}})


def test_yaml_problems(tmp_path):
    p = _write(tmp_path, "binning:\n  binsz: 0.1\n  binsz: 0.2\n")
    with pytest.raises(RecipeError, match=r"line 3: key 'binsz' appears twice"):
        load_recipe(p)
    p = _write(tmp_path, "binning: {binsz: 0.1\nselection: 3\n")
    with pytest.raises(RecipeError, match=r"config\.yaml, line \d+, column \d+: not valid YAML"):
        load_recipe(p)
    p = _write(tmp_path, "- a\n- b\n")
    with pytest.raises(RecipeError, match=r"a recipe is a mapping of sections"):
        load_recipe(p)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(InputFileError, match=r"recipe file .*nothere\.yaml.* does not exist"):
        load_recipe(str(tmp_path / "nothere.yaml"))
    with pytest.raises(FileNotFoundError):
        load_recipe(tmp_path / "nothere.yaml")


# --- Fermipy-compatible types ----------------------------------------------------------------


def test_fermipy_types_are_accepted_and_normalised(tmp_path):
    p = _write(tmp_path, """
binning: {binsz: 1, npix: 20.0}
selection:
  tmin: 239557417.5
  tmax: 239643817
  evtype: [4, 8, 16, 32]
  roicut: no
  target: SYN_CRAB
  radius: null
model: {catalogs: [fermixr_example]}
optimizer: {tol: 1e-4}
roiopt: {npred_threshold: 1E-5}
""")
    r = _quiet(load_recipe, p)
    b, s, o = r.config["binning"], r.config["selection"], r.config["optimizer"]
    assert b["binsz"] == 1.0 and isinstance(b["binsz"], float)
    assert b["npix"] == 20 and isinstance(b["npix"], int)
    assert s["tmin"] == 239557417.5                  # never truncated
    assert s["tmax"] == 239643817.0 and isinstance(s["tmax"], float)
    assert s["evtype"] == 60                         # union of PSF0..3
    assert s["roicut"] == "no"                       # YAML 1.1 'no' is a boolean
    assert s["target"] == "SYN_CRAB"                 # resolved in the example catalog
    assert (s["ra"], s["dec"]) == pytest.approx((83.6331, 22.0145), abs=1e-3)
    assert o["tol"] == 1e-4                          # '1e-4' is a float, not a string
    assert r.config["roiopt"]["npred_threshold"] == 1e-5


# --- warnings: unknown keys and old spellings ------------------------------------------------


def test_unknown_option_warns_naming_key_and_section():
    with pytest.warns(RecipeWarning, match=r"binning\.binsize: unknown option 'binsize' in "
                                           r"section 'binning' is ignored \(did you mean "
                                           r"'binsz'\?\)"):
        r = load_recipe({"binning": {"binsize": 0.2}})
    assert "binsize" not in r.config["binning"]
    assert r.config["binning"]["binsz"] == 0.1


def test_unknown_section_warns():
    with pytest.warns(RecipeWarning, match=r"unknown section 'selections' is ignored \(did "
                                           r"you mean 'selection'\?\)"):
        r = load_recipe({"selections": {"emin": 100}})
    assert "selections" not in r.config


def test_unknown_option_in_component_and_step_warns():
    with pytest.warns(RecipeWarning, match=r"components\[0\]\.selection\.evtyp: unknown "
                                           r"option 'evtyp' in section 'selection'"):
        load_recipe({"components": [{"selection": {"evtyp": 4}}]})
    with pytest.warns(RecipeWarning, match=r"steps\[0\]\.sed\.nme: unknown option 'nme' in "
                                           r"step 'sed'"):
        with pytest.raises(RecipeError, match=r"steps\[0\]\.sed\.name: required"):
            load_recipe({"steps": [{"sed": {"nme": "Crab"}}]})


def test_erange_is_renamed_with_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=r"tsmap\.erange: 'erange' is the old spelling "
                                                r"of 'loge_bounds'"):
        r = load_recipe({"tsmap": {"erange": [3, 4]}, "residmap": {"loge_bounds": [2, 3.5]}})
    assert r.config["tsmap"]["loge_bounds"] == [3.0, 4.0]
    assert "erange" not in r.config["tsmap"]
    assert r.config["residmap"]["loge_bounds"] == [2.0, 3.5]
    with pytest.warns(RecipeDeprecationWarning):
        with pytest.raises(RecipeError, match=r"both 'erange' and 'loge_bounds' are given"):
            load_recipe({"tsmap": {"erange": [3, 4], "loge_bounds": [3, 4]}})


def test_roiOpt_is_renamed():
    with pytest.warns(DeprecationWarning, match=r"section 'roiOpt' is spelled 'roiopt'"):
        r = load_recipe({"roiOpt": {"npred_frac": 0.9}})
    assert r.config["roiopt"]["npred_frac"] == 0.9
    assert "roiOpt" not in r.config


def test_free_pars_and_free_params_where_fermipy_accepts_each():
    r = _quiet(load_recipe, {"sed": {"free_pars": ["Index"]},
                             "lightcurve": {"free_params": ["Prefactor"]},
                             "sourcefind": {"free_params": ["Index"]}})
    assert r.config["sed"]["free_pars"] == ["Index"]
    assert r.config["lightcurve"]["free_params"] == ["Prefactor"]
    with pytest.warns(RecipeWarning, match=r"sed\.free_params: section 'sed' spells this "
                                           r"option 'free_pars'"):
        r = load_recipe({"sed": {"free_params": ["Index"]}})
    assert r.config["sed"]["free_pars"] == ["Index"]
    with pytest.warns(RecipeWarning, match=r"lightcurve\.free_pars: section 'lightcurve' "
                                           r"spells this option 'free_params'"):
        r = load_recipe({"lightcurve": {"free_pars": ["Index"]}})
    assert r.config["lightcurve"]["free_params"] == ["Index"]


# --- steps ------------------------------------------------------------------------------------


def test_steps_forms_and_validation():
    r = _quiet(load_recipe, {"steps": [
        "setup",
        {"optimize": None},
        {"fit": {"optimizer": "NEWTON"}},
        {"sed": {"name": "Crab", "bin_index": 2.5, "loge_bins": [2.3, 3, 4.3]}},
        {"localize": "Crab"},
        {"tsmap": {"model": {"Index": 2.0}}},
        "counts",
        {"write_roi": "final"},
    ]})
    assert r.steps == [
        ("setup", {}),
        ("optimize", {}),
        ("fit", {"optimizer": "NEWTON"}),
        ("sed", {"name": "Crab", "bin_index": 2.5, "loge_bins": [2.3, 3.0, 4.3]}),
        ("localize", {"name": "Crab"}),
        ("tsmap", {"model": {"Index": 2.0}}),
        ("counts", {}),
        ("write_roi", {"outfile": "final"}),
    ]


def test_step_options_merge_section_and_params():
    r = _quiet(load_recipe, {
        "sed": {"ul_confidence": 0.9},
        "optimizer": {"tol": 1e-4},
        "tsmap": {"max_kernel_radius": 2.0},
        "steps": [{"sed": {"name": "Crab", "bin_index": 2.5, "optimizer": {"retries": 1}}},
                  {"tsmap": {"model": {"Index": 2.5}}}],
    })
    sed = r.step_options(0)
    assert (sed["name"], sed["bin_index"], sed["ul_confidence"]) == ("Crab", 2.5, 0.9)
    assert sed["use_local_index"] is False and sed["prefix"] == ""
    assert sed["optimizer"]["retries"] == 1 and sed["optimizer"]["tol"] == 1e-4
    ts = r.step_options(1)
    assert ts["max_kernel_radius"] == 2.0
    assert ts["model"] == {"SpatialModel": "PointSource", "SpectrumType": "PowerLaw",
                           "Index": 2.5}
    # the stored params stay as given
    assert r.steps[0][1]["optimizer"] == {"retries": 1}


def test_unknown_step_lists_known_steps():
    with pytest.raises(RecipeError, match=r"steps\[1\]: unknown step 'sedd' \(did you mean "
                                          r"'sed'\?\); known steps: events, gti, counts, "
                                          r"ltcube, exposure, psf, drm, srcmaps, setup, optimize, fit, sed"):
        load_recipe({"steps": ["setup", "sedd"]})


def test_step_params_validated_against_section():
    with pytest.raises(RecipeError) as info:
        load_recipe({"steps": ["setup", "bogus",
                               {"sed": {"name": "Crab", "bin_index": "soft"}},
                               {"localize": {"dtheta_max": -1}},
                               {"fit": 3},
                               {"sed": {"name": "a"}, "fit": {}},
                               {"find_sources": {"tsmap": {"max_kernel_radius": "x"}}}]})
    msg = str(info.value)
    assert "steps[2].sed.bin_index: got 'soft'; expected a number" in msg
    assert "steps[3].localize.name: required, not given" in msg
    assert "steps[3].localize.dtheta_max: got -1; expected a number > 0 (in deg)" in msg
    assert "steps[4].fit: got 3; expected a mapping of parameters" in msg
    assert "steps[5]: got {'sed': {'name': 'a'}, 'fit': {}}; expected a step name or a " \
           "one-key mapping" in msg
    assert "steps[6].find_sources.tsmap.max_kernel_radius: got 'x'" in msg
    # in the order of the steps
    order = [msg.index(f"steps[{i}]") for i in (1, 2, 3, 4, 5, 6)]
    assert order == sorted(order)


def test_steps_must_be_a_list():
    with pytest.raises(RecipeError, match=r"steps: got 'setup'; expected a list"):
        load_recipe({"steps": "setup"})


def test_empty_and_null_steps():
    assert _quiet(load_recipe, {"steps": None}).steps == [("setup", {})]
    assert _quiet(load_recipe, {"steps": []}).steps == []


# --- components ---------------------------------------------------------------------------


def test_components_inherit_and_override():
    r = _quiet(load_recipe, {
        "binning": {"roiwidth": 10.0, "binsz": 0.1},
        "selection": {"emin": 100, "emax": 100000, "zmax": 100, "ra": 10.0, "dec": 20.0},
        "components": [
            {"selection": {"evtype": 4, "zmax": 85}, "binning": {"binsz": 0.2}},
            {"selection": {"evtype": 8}},
        ],
    })
    c0, c1 = r.components
    assert (c0["selection"]["evtype"], c0["selection"]["zmax"]) == (4, 85.0)
    assert c0["selection"]["emin"] == 100.0 and c0["selection"]["ra"] == 10.0
    # derived options are derived per component, after merging
    assert (c0["binning"]["binsz"], c0["binning"]["npix"]) == (0.2, 50)
    assert c0["ltcube"]["zmax"] == 85.0
    assert (c1["selection"]["evtype"], c1["selection"]["zmax"]) == (8, 100.0)
    assert (c1["binning"]["binsz"], c1["binning"]["npix"]) == (0.1, 100)
    assert c1["ltcube"]["zmax"] == 100.0
    assert r.config["selection"]["evtype"] == 3
    assert r.config["components"] == [
        {"selection": {"evtype": 4, "zmax": 85.0}, "binning": {"binsz": 0.2}},
        {"selection": {"evtype": 8}},
    ]


def test_component_errors_carry_their_index():
    with pytest.raises(RecipeError) as info:
        load_recipe({"components": [{"binning": {"binsz": 0.2}},
                                    {"binning": {"binsz": "x"}, "steps": ["fit"]},
                                    5]})
    msg = str(info.value)
    assert "components[1].binning.binsz: got 'x'; expected a number > 0" in msg
    assert "components[1].steps: not allowed inside a component" in msg
    assert "components[2]: got 5; expected a mapping of sections" in msg
    assert "components[0]" not in msg


def test_merge_config_is_fermipy_merge():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    upd = {"a": {"y": [3], "z": None}, "c": 3}
    out = merge_config(base, upd)
    assert out == {"a": {"x": 1, "y": [3], "z": None}, "b": 2, "c": 3}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2}   # inputs unchanged


# --- overrides --------------------------------------------------------------------------------


def test_overrides_merge_over_the_file(tmp_path):
    p = _write(tmp_path, "selection: {emin: 100, emax: 100000, zmax: 90}\n"
                         "binning: {binsz: 0.2}\nsteps: [setup, fit]\n")
    r = _quiet(load_recipe, p, selection={"emax": 10000}, optimizer={"optimizer": "NEWTON"})
    s = r.config["selection"]
    assert (s["emin"], s["emax"], s["zmax"]) == (100.0, 10000.0, 90.0)
    assert r.config["binning"]["binsz"] == 0.2
    assert r.config["optimizer"]["optimizer"] == "NEWTON"
    assert [n for n, _ in r.steps] == ["setup", "fit"]
    r = _quiet(load_recipe, p, steps=["counts"])
    assert r.steps == [("counts", {})]
    with pytest.raises(RecipeError, match=r"selection\.emax: got 'high'"):
        load_recipe(p, selection={"emax": "high"})


def test_overrides_accept_numpy_scalars():
    np = pytest.importorskip("numpy")
    r = _quiet(load_recipe, {}, binning={"npix": np.int64(40), "binsz": np.float32(0.25)},
               selection={"evtype": np.int32(4)})
    assert r.config["binning"]["npix"] == 40 and type(r.config["binning"]["npix"]) is int
    assert r.config["binning"]["binsz"] == 0.25
    assert r.config["selection"]["evtype"] == 4


# --- derived defaults ---------------------------------------------------------------------


@pytest.mark.parametrize("roiwidth,binsz,npix", [
    (10.0, 0.1, 100), (7.0, 0.1, 70), (10.0, 0.3, 34), (10.0, 0.35, 29), (12.0, 0.1, 120),
    (15, 0.2, 75), (10.0, 0.25, 40), (3.3, 0.1, 33), (2.5, 1.0, 3),
])
def test_npix_is_ceil_of_roiwidth_over_binsz(roiwidth, binsz, npix):
    """Fermipy 0.16: npix = ceil(roiwidth / binsz) (float noise rounded away); the recipe
    and the geometry agree."""
    r = _quiet(load_recipe, {"binning": {"roiwidth": roiwidth, "binsz": binsz}})
    assert r.config["binning"]["npix"] == npix
    from fermixr.geom import WcsGeom

    assert WcsGeom.from_config({"roiwidth": roiwidth, "binsz": binsz}, (0.0, 0.0)).npix == (
        npix, npix)
    assert r.config["selection"]["radius"] == pytest.approx(
        math.sqrt(2) * 0.5 * npix * binsz + 0.5, rel=1e-15)


def test_npix_given_sets_roiwidth():
    r = _quiet(load_recipe, {"binning": {"npix": 100, "binsz": 0.2}})
    assert r.config["binning"]["roiwidth"] == pytest.approx(20.0, rel=1e-15)
    assert r.config["selection"]["radius"] == pytest.approx(math.sqrt(2) * 10 + 0.5)
    with pytest.warns(RecipeWarning, match=r"npix 100 x binsz 0\.2 = 20 deg differs from "
                                           r"roiwidth 10"):
        r = load_recipe({"binning": {"npix": 100, "binsz": 0.2, "roiwidth": 10}})
    assert r.config["binning"]["npix"] == 100


def test_energy_and_coordinate_derivations():
    r = _quiet(load_recipe, {"selection": {"logemin": 2.0, "emax": 10000, "ra": 83.6331,
                                           "dec": 22.0145}})
    s, b = r.config["selection"], r.config["binning"]
    assert s["emin"] == pytest.approx(100.0, rel=1e-14)
    assert s["logemax"] == pytest.approx(4.0, rel=1e-14)
    assert b["enumbins"] == 16
    # Crab: l = 184.5575, b = -5.7843 (ICRS -> Galactic)
    assert s["glon"] == pytest.approx(184.5575, abs=1e-3)
    assert s["glat"] == pytest.approx(-5.7843, abs=1e-3)
    r = _quiet(load_recipe, {"selection": {"glon": s["glon"], "glat": s["glat"]}})
    assert r.config["selection"]["ra"] == pytest.approx(83.6331, abs=1e-9)
    assert r.config["selection"]["dec"] == pytest.approx(22.0145, abs=1e-9)
    assert r.config["binning"]["enumbins"] is None     # no energy range yet


def test_ltcube_zmax_follows_selection():
    assert _quiet(load_recipe, {"selection": {"zmax": 90}}).config["ltcube"]["zmax"] == 90.0
    assert _quiet(load_recipe, {}).config["ltcube"]["zmax"] == 180.0
    r = _quiet(load_recipe, {"selection": {"zmax": 90}, "ltcube": {"zmax": 180}})
    assert (r.config["selection"]["zmax"], r.config["ltcube"]["zmax"]) == (90.0, 180.0)


# --- paths and environment ------------------------------------------------------------------


def test_env_and_home_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("LATDATA", "/lat/data")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "iso.txt").write_text("1 1\n")
    (tmp_path / "iso_local.txt").write_text("1 1\n")
    p = _write(tmp_path, """
data:
  evfile: [$LATDATA/ft1_a.fits, '${LATDATA}/ft1_b.fits']
  scfile: ~/ft2.fits
  ltcube: ltcube.fits
  caldb: $LATDATA/caldb
model:
  isodiff: [templates/iso.txt, iso_local.txt, iso_elsewhere.txt]
  catalogs: [4FGL-DR3, cats/mycat.fits]
fileio: {outdir: out}
""")
    r = _quiet(load_recipe, p)
    d = r.config["data"]
    assert d["evfile"] == ["/lat/data/ft1_a.fits", "/lat/data/ft1_b.fits"]
    assert d["scfile"] == str(tmp_path / "home" / "ft2.fits")
    assert d["ltcube"] == str(tmp_path / "ltcube.fits")
    assert d["caldb"] == "/lat/data/caldb"
    assert r.config["model"]["isodiff"] == [str(tmp_path / "templates" / "iso.txt"),
                                           str(tmp_path / "iso_local.txt"),
                                           "iso_elsewhere.txt"]
    assert r.config["model"]["catalogs"] == ["4FGL-DR3", str(tmp_path / "cats" / "mycat.fits")]
    assert r.config["fileio"]["outdir"] == str(tmp_path / "out")
    assert r.config["fileio"]["cachedir"] == str(tmp_path / "out" / ".store")


def test_file_list_spec_keeps_its_at(tmp_path):
    p = _write(tmp_path, "data: {evfile: '@files.txt'}\n")
    assert _quiet(load_recipe, p).config["data"]["evfile"] == "@" + str(tmp_path / "files.txt")


def test_unset_env_var_warns(monkeypatch):
    monkeypatch.delenv("FERMIXR_NOT_SET_VAR", raising=False)
    with pytest.warns(RecipeWarning, match=r"data\.evfile: environment variable "
                                           r"\$FERMIXR_NOT_SET_VAR .* is not set"):
        load_recipe({"data": {"evfile": "/x/$FERMIXR_NOT_SET_VAR/ft1.fits"}})


def test_caldb_falls_back_to_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CALDB", str(tmp_path / "caldb"))
    assert _quiet(load_recipe, {}).config["data"]["caldb"] == str(tmp_path / "caldb")
    r = _quiet(load_recipe, {"data": {"caldb": "/my/caldb"}})
    assert r.config["data"]["caldb"] == "/my/caldb"
    monkeypatch.delenv("CALDB")
    assert _quiet(load_recipe, {}).config["data"]["caldb"] is None


def test_dict_and_text_recipes_resolve_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = _quiet(load_recipe, "data: {evfile: ft1.fits}\nsteps: [counts]\n")
    assert r.path is None
    assert r.config["data"]["evfile"] == str(tmp_path / "ft1.fits")
    assert r.config["fileio"]["outdir"] == str(tmp_path)
    assert r.steps == [("counts", {})]


# --- the Recipe object --------------------------------------------------------------------


def test_recipe_is_frozen_and_section_is_a_copy():
    r = _quiet(load_recipe, {"binning": {"binsz": 0.2}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.steps = []
    b = r.section("binning")
    b["binsz"] = 5.0
    assert r.config["binning"]["binsz"] == 0.2
    assert r.section("roiOpt") == r.config["roiopt"]
    with pytest.raises(RecipeError, match=r"no section 'bining'"):
        r.section("bining")


def test_to_yaml_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("FERMIXR_SHARED_DATA", "/data/shared")
    r = _quiet(load_recipe, EXAMPLE, components=[{"selection": {"evtype": 1}},
                                                 {"selection": {"evtype": 2},
                                                  "binning": {"binsz": 0.4}}],
               steps=["setup", {"sed": {"name": "Crab", "bin_index": 2.2}}])
    text = r.to_yaml()
    r2 = _quiet(load_recipe, text)
    assert r2.steps == r.steps
    assert r2.components == r.components
    assert {k: v for k, v in r2.config.items() if k != "components"} == \
           {k: v for k, v in r.config.items() if k != "components"}
    # a Recipe is accepted as a source too
    r3 = _quiet(load_recipe, r)
    assert r3.components == r.components and r3.path == r.path
    d = r.to_dict()
    assert d["steps"] == ["setup", {"sed": {"name": "Crab", "bin_index": 2.2}}]
    assert isinstance(r, Recipe)


def test_validate_file_lists_problems(tmp_path):
    p = _write(tmp_path, "binning: {binsz: big}\nselection: {evclass: x}\nfoo: {}\n"
                         "steps: [setup, nope]\n")
    probs = validate_file(p, check_files=False)
    assert len(probs) == 3
    assert probs[0].startswith("binning.binsz: got 'big'")
    assert probs[1].startswith("selection.evclass: got 'x'")
    assert probs[2].startswith("steps[1]: unknown step 'nope'")
    with_w = validate_file(p, check_files=False, include_warnings=True)
    assert with_w[:3] == probs
    assert any(w.startswith("warning: foo: unknown section 'foo'") for w in with_w[3:])
    assert validate_file(tmp_path / "missing.yaml")[0].startswith("recipe file")
    ok = _write(tmp_path, f"data: {{evfile: {tmp_path / 'nope.fits'}}}\n", "ok.yaml")
    assert validate_file(ok, check_files=False) == []
    (probs,) = [validate_file(ok)]
    assert "data.evfile" in probs[0] and "nope.fits" in probs[0]
    # and what else this recipe lacks to run (validate does every check needing no
    # computation): a CALDB for the IRFs, the ROI centre, the energy range; one line each
    assert [q.split(":")[0].split(" ")[0] for q in probs[1:]] == [
        "gtlike.irfs", "selection", "selection.emin"], probs


def test_loading_does_not_touch_environment_or_cwd(tmp_path):
    env = dict(os.environ)
    cwd = os.getcwd()
    _quiet(load_recipe, {"binning": {"binsz": 0.2}, "steps": ["setup"]})
    assert dict(os.environ) == env and os.getcwd() == cwd


def test_inputs_are_not_mutated():
    src = {"selection": {"evtype": [4, 8], "emin": 100}, "tsmap": {"erange": [2, 3]},
           "steps": [{"sed": "Crab"}], "components": [{"binning": {"binsz": 0.2}}]}
    over = {"selection": {"emax": 1000}}
    import copy

    src0, over0 = copy.deepcopy(src), copy.deepcopy(over)
    with pytest.warns(DeprecationWarning):
        load_recipe(src, **over)
    assert src == src0 and over == over0


@pytest.mark.parametrize("where,recipe", [
    ("selection.dec", {"selection": {"ra": 83.6, "dec": float("nan")}}),
    ("selection.tmin", {"selection": {"tmin": float("inf")}}),
    ("gtlike.expscale", {"gtlike": {"expscale": float("nan")}}),
    ("components[0].binning.binsz", {"components": [{"binning": {"binsz": float("-inf")}}]}),
    ("steps[0].fit.tol", {"steps": [{"fit": {"tol": float("nan")}}]}),
])
def test_nan_and_infinity_are_refused(where, recipe):
    with pytest.raises(RecipeError, match=re.escape(where) + r": got (nan|inf|-inf); "
                                                             r"expected a finite number"):
        load_recipe(recipe)


def test_nan_in_yaml_is_refused(tmp_path):
    p = _write(tmp_path, "selection: {ra: 83.6, dec: .nan}\n")
    with pytest.raises(RecipeError, match=r"selection\.dec: got nan; expected a finite number"):
        load_recipe(p)


def test_table_bounds_are_the_checks_outside_the_schema():
    from fermixr.engine import options as O

    assert O.bounds("optimizer", "retries") == {"minimum": 1}
    assert O.bounds("selection", "zmax") == {"exclusiveMinimum": 0, "maximum": 180}
    O.check_value("optimizer", "retries", 1)
    for bad in (0, float("nan")):
        with pytest.raises(RecipeError, match=r"optimizer\.retries: got .*; expected a finite "
                                              r"number >= 1"):
            O.check_value("optimizer", "retries", bad)


# --- resolved options -------------------------------------------------------------------------


def test_resolved_sections_are_frozen_typed_and_filled_once():
    import dataclasses

    from fermixr.engine.resolved import Resolved, SECTION_TYPES, resolve

    r = _quiet(load_recipe, {"selection": {"zmax": 90, "evtype": [1, 2]},
                             "binning": {"roiwidth": 3.0, "binsz": 0.1},
                             "data": {"evfile": ["a.fits", "b.fits"]}})
    o = r.options[0]
    assert isinstance(o, Resolved) and type(o.selection) is SECTION_TYPES["selection"]
    # derived once, by the recipe: ltcube.zmax follows selection.zmax, npix the roiwidth
    assert (o.selection.zmax, o.ltcube.zmax, o.binning.npix, o.selection.evtype) == (
        90.0, 90.0, 30, 3)
    assert o.selection.radius == pytest.approx(math.sqrt(2) * 0.5 * 3.0 + 0.5)
    # defaults come from the table only
    assert o.optimizer.retries == O.SECTIONS["optimizer"]["retries"].default == 3
    assert o.gtlike.edisp is True and o.gtlike.edisp_bins == 1
    # frozen, lists as tuples, plain data back
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.selection.zmax = 100.0
    assert isinstance(o.data.evfile, tuple)
    assert o.to_dict() == {s: r.components[0][s] for s in SECTION_TYPES}
    assert resolve(r.components[0]) == o
    # no zenith cut given: the livetime cube has none (180), the events no cut (None)
    o2 = _quiet(load_recipe, {}).options[0]
    assert (o2.selection.zmax, o2.ltcube.zmax) == (None, 180.0)


def test_resolved_options_per_component_and_per_step():
    r = _quiet(load_recipe, {
        "optimizer": {"tol": 1e-4},
        "components": [{"selection": {"evtype": 1}}, {"selection": {"evtype": 2},
                                                      "binning": {"binsz": 0.2}}],
        "steps": ["setup", {"fit": {"optimizer": "NEWTON"}}, "optimize"]})
    a, b = r.options
    assert (a.selection.evtype, b.selection.evtype) == (1, 2)
    assert (a.binning.binsz, b.binning.binsz) == (0.1, 0.2)
    assert r.step_section(0) is None
    fit = r.step_section(1, component=1)
    assert (fit.section, fit.optimizer, fit.tol, fit.retries) == ("optimizer", "NEWTON",
                                                                   1e-4, 3)
    assert r.step_section(2).npred_frac == 0.95
    assert r.options[0].optimizer.optimizer == "MINUIT"      # the step changed only itself
    with pytest.raises(RecipeError, match=r"optimizer: no option 'tolerance'"):
        fit.replace(tolerance=1.0)


def test_read_values_give_a_consumers_options_for_its_key():
    from fermixr.engine.hashing import digest
    from fermixr.engine.resolved import READS, read_values

    a = _quiet(load_recipe, {}).options[0]
    b = _quiet(load_recipe, {"gtlike": {"expscale": 2.0}}).options[0]
    va, vb = read_values(a, "analysis"), read_values(b, "analysis")
    assert set(va) == set(READS["analysis"].options)
    assert (va["gtlike.expscale"], vb["gtlike.expscale"]) == (None, 2.0)
    assert digest(va) != digest(vb)
    assert read_values(a, "ltcube") == read_values(
        _quiet(load_recipe, {"selection": {"evtype": 1}}).options[0], "ltcube")
