"""The option table: defaults equal Fermipy 0.16's (reference/fermipy-0.16.md), every option
is documented, and the committed JSON Schema is the one the table generates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from fermixr.engine import options as O

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "recipe.schema.json"

# Defaults as listed in reference/fermipy-0.16.md (which wins over anything else).
FERMIPY_016_DEFAULTS = {
    "binning": {"roiwidth": 10.0, "binsz": 0.1, "npix": None, "binsperdec": 8, "proj": "AIT",
                "coordsys": "CEL", "projtype": "WCS", "hpx_order": 10,
                "hpx_ordering_scheme": "RING", "hpx_ebin": True},
    "selection": {"evclass": 128, "evtype": 3, "zmax": None, "roicut": "no", "radius": None,
                  "target": None, "tmin": None, "tmax": None},
    "ltcube": {"binsz": 1.0, "phibins": 0, "dcostheta": 0.025, "use_local_ltcube": False,
               "zmax": None},
    "gtlike": {"edisp": True, "rfactor": 2, "minbinsz": 0.05, "llscan_npts": 20,
               "convolve": True, "resample": True, "edisp_disable": None},
    "optimizer": {"optimizer": "MINUIT", "tol": 1e-3, "max_iter": 100, "init_lambda": 1e-4,
                  "retries": 3, "min_fit_quality": 2},
    "roiopt": {"npred_frac": 0.95, "npred_threshold": 1.0, "shape_ts_threshold": 25,
               "max_free_sources": 5},
    "model": {"assoc_xmatch_columns": ["3FGL_Name"], "src_radius": None,
              "src_roiwidth": None},
    "sed": {"bin_index": 2.0, "use_local_index": False, "cov_scale": 3.0,
            "ul_confidence": 0.95, "free_background": False, "free_radius": None},
    "tsmap": {"model": None, "max_kernel_radius": 3.0},
    "tscube": {"nnorm": 10, "norm_sigma": 5.0, "max_iter": 30, "tol": 1e-3, "tol_type": 0,
               "cov_scale": -1, "cov_scale_bb": -1, "init_lambda": 0, "do_sed": True},
    "sourcefind": {"sqrt_ts_threshold": 5.0, "min_separation": 1.0, "max_iter": 5,
                   "sources_per_iter": 4, "tsmap_fitter": "tsmap"},
    "localize": {"dtheta_max": 0.5, "nstep": 5, "update": True, "fix_shape": False},
    "extension": {"spatial_model": "RadialGaussian", "width_min": 0.01, "width_max": 1.0,
                  "width_nstep": 21, "fit_position": False, "update": False,
                  "make_tsmap": True},
    "lightcurve": {"binsz": 86400, "shape_ts_threshold": 16, "systematic": 0.02,
                   "max_free_sources": 5, "use_local_ltcube": True,
                   "use_scaled_srcmap": False, "time_bins": None, "nbins": None},
    "fileio": {"outdir": None},
    "data": {"evfile": None, "scfile": None, "ltcube": None, "cacheft1": True},
}

REQUIRED_SECTIONS = ["fileio", "logging", "data", "binning", "selection", "gtlike", "model",
                     "optimizer", "roiopt", "ltcube", "sed", "tsmap", "tscube", "residmap",
                     "sourcefind", "localize", "extension", "lightcurve", "plotting", "mc"]


@pytest.mark.parametrize("section", sorted(FERMIPY_016_DEFAULTS))
def test_defaults_equal_fermipy_016(section):
    defaults = O.default_config()[section]
    for key, expected in FERMIPY_016_DEFAULTS[section].items():
        assert key in defaults, f"{section}.{key} missing from the option table"
        got = defaults[key]
        assert got == expected, f"{section}.{key}: {got!r} != {expected!r}"


def test_sections_and_fermixr_additions():
    assert set(REQUIRED_SECTIONS) <= set(O.SECTIONS)
    # fermixr's own options are flagged and have derived defaults documented
    assert O.SECTIONS["fileio"]["cachedir"].fermixr
    assert "store" in O.SECTIONS["fileio"]["cachedir"].derived
    assert O.SECTIONS["data"]["caldb"].fermixr
    assert "CALDB" in O.SECTIONS["data"]["caldb"].derived
    assert O.SECTIONS["ltcube"]["zmax"].fermixr
    assert "selection.zmax" in O.SECTIONS["ltcube"]["zmax"].derived
    assert "round(roiwidth / binsz)" in O.SECTIONS["binning"]["npix"].derived
    # accepted spellings
    assert O.SECTIONS["tsmap"]["erange"].alias_of == "loge_bounds"
    assert O.SECTIONS["tsmap"]["erange"].deprecated
    assert "free_pars" in O.SECTIONS["sed"] and "free_params" not in O.SECTIONS["sed"]
    assert "free_params" in O.SECTIONS["lightcurve"]
    assert "free_params" in O.SECTIONS["sourcefind"]
    assert O.SECTION_ALIASES == {"roiOpt": "roiopt"}
    assert O.SECTIONS["optimizer"]["optimizer"].enum == ("MINUIT", "NEWMINUIT", "NEWTON")


def test_every_option_is_documented_and_default_valid():
    import jsonschema as js

    for sec, opts in O.SECTIONS.items():
        for key, opt in opts.items():
            assert len(opt.description) > 10, f"{sec}.{key} has no description"
            # the default satisfies the option's own schema
            errs = list(js.Draft202012Validator(opt.schema()).iter_errors(opt.default))
            assert not errs, f"{sec}.{key} default {opt.default!r}: {errs[0].message}"
    for name, spec in O.STEPS.items():
        for key, opt in spec.extras.items():
            assert opt.description, f"step {name}.{key}"


def test_units_on_angle_and_energy_options():
    s = O.recipe_schema()["$defs"]
    assert s["section_binning"]["properties"]["binsz"]["x-unit"] == "deg"
    assert s["section_selection"]["properties"]["emin"]["x-unit"] == "MeV"
    assert s["section_selection"]["properties"]["tmin"]["x-unit"] == "s"
    assert s["section_tsmap"]["properties"]["loge_bounds"]["x-unit"] == "log10(MeV)"
    binsz = s["section_binning"]["properties"]["binsz"]
    assert binsz["exclusiveMinimum"] == 0 and binsz["default"] == 0.1
    assert s["section_binning"]["properties"]["hpx_order"]["maximum"] == 12
    assert s["section_binning"]["properties"]["npix"]["type"] == ["integer", "null"]


def test_schema_is_valid_draft_2020_12():
    schema = O.recipe_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"steps", "components"} <= set(schema["properties"])
    bare = set(schema["properties"]["steps"]["items"]["oneOf"][0]["enum"])
    needs_params = {n for n, spec in O.STEPS.items() if spec.required}
    assert {"sed", "localize", "extension", "lightcurve", "free_source", "set_parameter",
            "add_source", "profile"} <= needs_params
    assert bare == set(O.STEP_NAMES) - needs_params


def test_committed_schema_is_up_to_date():
    """`python -m fermixr.engine.options > schemas/recipe.schema.json` was run."""
    assert SCHEMA_FILE.is_file(), "schemas/recipe.schema.json is missing"
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == O.recipe_schema(), (
        "schemas/recipe.schema.json is stale: run "
        "`python -m fermixr.engine.options > schemas/recipe.schema.json`")
    assert SCHEMA_FILE.read_text() == O.schema_json()


def test_module_main_writes_the_schema():
    out = subprocess.run([sys.executable, "-m", "fermixr.engine.options"],
                         capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) == O.recipe_schema()


def _published_validator():
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def test_published_schema_accepts_recipes_and_rejects_bad_ones():
    v = _published_validator()
    example = yaml.safe_load((REPO / "examples" / "fermipy_config.yaml").read_text())
    assert not list(v.iter_errors(example))
    good = {
        "binning": {"binsz": 0.2, "npix": 50},
        "selection": {"evtype": [4, 8], "tmin": 239557417.5},
        "components": [{"selection": {"evtype": 4}}, {"selection": {"evtype": 8}}],
        "steps": ["setup", {"fit": None}, {"sed": {"name": "Crab", "bin_index": 2.5}},
                  {"sed": "Crab"}, {"tsmap": {"model": {"Index": 2.0}}}],
    }
    assert not list(v.iter_errors(good))
    bad = [
        {"binning": {"binsz": "big"}},
        {"selection": {"evclass": 0}},
        {"steps": ["nope"]},
        {"steps": [{"sed": {"bin_index": 2}}]},          # name required
        {"steps": ["sed"]},                              # likewise
        {"steps": [{"sed": {"name": "a"}, "fit": {}}]},  # two keys in one item
        {"components": [{"binning": {"proj": "XYZ"}}]},
    ]
    for doc in bad:
        assert list(v.iter_errors(doc)), doc


# --- every option consumed, or marked accepted-without-effect / not implemented -----------


def _table_options():
    for sec, opts in O.SECTIONS.items():
        if sec in O.PENDING_SECTIONS:
            continue
        for key, opt in opts.items():
            if not opt.alias_of:
                yield sec, key, opt


def test_every_option_is_read_or_marked():
    """The option table and the consumers' declarations (resolved.READS) cover each other:
    an option nobody reads must be marked no_effect (with the reason) or not_implemented."""
    from fermixr.engine.resolved import READS

    declared = {o for r in READS.values() for o in r.options}
    orphans, both = [], []
    for sec, key, opt in _table_options():
        name = f"{sec}.{key}"
        marked = bool(opt.no_effect or opt.not_implemented)
        if name in declared and opt.no_effect:
            both.append(name)
        elif name not in declared and not marked:
            orphans.append(name)
    assert not orphans, f"options neither read by a declared consumer nor marked: {orphans}"
    assert not both, f"options declared read and also marked without effect: {both}"
    unknown = sorted(o for o in declared
                     if o.split(".")[0] not in O.SECTIONS
                     or o.split(".", 1)[1] not in O.SECTIONS[o.split(".")[0]])
    assert not unknown, f"READS names options the table does not have: {unknown}"
    for sec, key, opt in _table_options():
        for why in (opt.no_effect, opt.not_implemented):
            assert why is None or len(why) > 20, f"{sec}.{key}: give the reason"


def test_declared_readers_name_the_options_they_read():
    """Each consumer's module reads each option it declares (as an attribute ``.key`` of a
    resolved section or a mapping key ``"key"``): a declaration cannot outlive the code."""
    import importlib
    import inspect
    import re

    from fermixr.engine.resolved import READS

    missing = []
    for consumer, reads in READS.items():
        mods = (reads.module,) if isinstance(reads.module, str) else reads.module
        src = "\n".join(inspect.getsource(importlib.import_module(m)) for m in mods)
        for name in reads.options:
            key = name.split(".", 1)[1]
            if not re.search(rf"\.{key}\b|[\"']{key}[\"']", src):
                missing.append(f"{consumer} ({reads.module}): {name}")
    assert not missing, missing


def test_option_without_effect_warns_naming_it_and_the_reason():
    import warnings

    from fermixr.engine.recipe import OptionWithoutEffectWarning, RecipeWarning, load_recipe

    assert issubclass(OptionWithoutEffectWarning, UserWarning)
    assert issubclass(OptionWithoutEffectWarning, RecipeWarning)
    with pytest.warns(OptionWithoutEffectWarning,
                      match=r"gtlike\.minbinsz: set to 0\.1, accepted without effect: "
                            r"fermixr's diffuse source maps have no minimum rebinning"):
        load_recipe({"gtlike": {"minbinsz": 0.1}})
    with pytest.warns(OptionWithoutEffectWarning, match=r"components\[0\]\.logging\.verbosity"):
        load_recipe({"components": [{"logging": {"verbosity": 1}}]})
    with pytest.warns(OptionWithoutEffectWarning, match=r"steps\[0\]\.fit\.init_lambda"):
        load_recipe({"steps": [{"fit": {"init_lambda": 0.1}}]})
    with pytest.warns(OptionWithoutEffectWarning, match=r"fileio\.workdir: set to '/elsewhere'"):
        load_recipe({"fileio": {"workdir": "/elsewhere"}})
    # at its default, or as a resolved recipe holds it (workdir derived = outdir): silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = load_recipe({"gtlike": {"minbinsz": 0.05}, "fileio": {"outdir": "/tmp/x"}})
        load_recipe(rec.to_dict())
        load_recipe(rec.to_yaml())


@pytest.mark.parametrize("where,recipe", [
    ("gtlike.convolve", {"gtlike": {"convolve": False}}),
    ("components[1].gtlike.convolve", {"components": [{}, {"gtlike": {"convolve": False}}]}),
    ("gtlike.resample", {"gtlike": {"resample": False}}),
    ("gtlike.use_scaled_srcmap", {"gtlike": {"use_scaled_srcmap": True}}),
    ("steps[0].optimize.skip", {"steps": [{"optimize": {"skip": ["Crab"]}}]}),
])
def test_physics_changing_values_fermixr_lacks_are_refused(where, recipe):
    from fermixr.engine.recipe import load_recipe
    from fermixr.errors import RecipeError

    import re

    with pytest.raises(RecipeError, match=re.escape(where) + r": got .*; not implemented: "):
        load_recipe(recipe)
    # the default value is what fermixr does: accepted silently
    load_recipe({"gtlike": {"convolve": True, "resample": True}})


def test_schema_annotates_marked_options():
    s = O.recipe_schema()["$defs"]
    assert "x-not-implemented" in s["section_gtlike"]["properties"]["convolve"]
    assert "x-no-effect" in s["section_gtlike"]["properties"]["minbinsz"]
    assert "x-no-effect" not in s["section_gtlike"]["properties"]["expscale"]
