"""The option table: defaults equal Fermipy 0.16's (reference/fermipy-0.16.md), every option
is documented, and the committed JSON Schema is the one the table generates."""

from __future__ import annotations

import json
import math
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
    assert "ceil" in O.SECTIONS["binning"]["npix"].derived
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
    with pytest.warns(OptionWithoutEffectWarning, match=r"plotting\.cmap"):
        load_recipe({"plotting": {"cmap": "viridis"}})
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


# --- keys: every option a data step reads enters its key, and no other -------------------

CRAB_RADEC = (83.6331, 22.0145)
_FAMILY = {"ltcube_file": "ltcube", "exposure_bexpmap": "exposure", "srcmap_file": "srcmap"}


def _xml_catalog(path):
    """Three point sources 0.5, 2 and 4 deg north of the Crab."""
    rows = []
    for i, off in enumerate((0.5, 2.0, 4.0)):
        rows.append(
            f'<source type="PointSource" name="PS{i}">'
            '<spectrum type="PowerLaw"><parameter name="Prefactor" value="1" scale="1e-12" '
            'min="0" max="100" free="1"/><parameter name="Index" value="-2" scale="1" '
            'min="-5" max="5" free="0"/><parameter name="Scale" value="1000" scale="1" '
            'min="30" max="1e6" free="0"/></spectrum>'
            '<spatialModel type="SkyDirFunction"><parameter name="RA" value="83.6331" '
            f'scale="1" min="-360" max="360" free="0"/><parameter name="DEC" '
            f'value="{22.0145 + off}" scale="1" min="-90" max="90" free="0"/>'
            '</spatialModel></source>')
    path.write_text('<?xml version="1.0" ?>\n<source_library title="t">'
                    + "".join(rows) + "</source_library>\n")
    return path


def _base_recipes(crab_day, caldb_dir, tmp):
    common = {
        "data": {"evfile": str(crab_day / "ft1.fits.gz"), "scfile": str(crab_day / "ft2.fits.gz"),
                 "caldb": str(caldb_dir)},
        "selection": {"emin": 200.0, "emax": 20000.0, "ra": CRAB_RADEC[0],
                      "dec": CRAB_RADEC[1], "tmin": 239557417.0, "tmax": 239643817.0},
        "gtlike": {"irfs": "P8R2_SOURCE_V6"},
        "model": {"isodiff": [{"name": "Extragal_diffuse",
                               "file": str(crab_day / "iso_P8R2_SOURCE_V6_v06.txt")}],
                  "sources": [{"name": "Crab", "ra": CRAB_RADEC[0], "dec": CRAB_RADEC[1],
                               "SpectrumType": "PowerLaw", "Index": 2.3}],
                  "catalogs": [str(_xml_catalog(tmp / "cat.xml"))], "src_radius": 3.0},
        "steps": ["setup"],
    }
    # A: WCS, npix given, no FT2 cuts in the GTIs
    a = {**common, "binning": {"npix": 30, "binsz": 0.2, "binsperdec": 4}}
    # B: HEALPix, roiwidth given, the ROI zenith cut and a filter (the GTIs read the FT2)
    b = {**common, "binning": {"projtype": "HPX", "hpx_order": 6, "roiwidth": 6.0,
                               "binsperdec": 4},
         "selection": {**common["selection"], "zmax": 100.0, "roicut": "yes",
                       "filter": "DATA_QUAL>0"}}
    return {"A": a, "B": b}


def _copy_changed(src, dst):
    """A copy of a file with other bytes (planning never parses FT1/FT2 files)."""
    dst.write_bytes(src.read_bytes() + b"\0")
    return str(dst)


def _alternatives(crab_day, caldb_dir, tmp):
    """Another valid value for options the generic rule cannot make one for; a callable
    gets the recipe and changes it."""
    caldb_link = tmp / "caldb-link"
    if not caldb_link.exists():
        caldb_link.symlink_to(caldb_dir)

    def energies_as_logs(key, value):
        def change(r):
            r["selection"] = {k: v for k, v in r["selection"].items()
                              if k not in ("emin", "emax")}
            r["selection"].update(logemin=math.log10(200.0), logemax=math.log10(20000.0))
            r["selection"][key] = value
        return change

    def galactic(glon, glat):
        def change(r):
            r["selection"] = {k: v for k, v in r["selection"].items() if k not in ("ra", "dec")}
            r["selection"].update(glon=glon, glat=glat)
        return change

    def target(name):
        def change(r):        # the Crab pulsar of 4FGL-DR4, by its association
            r["selection"] = {k: v for k, v in r["selection"].items() if k not in ("ra", "dec")}
            r["selection"]["target"] = name
            r.setdefault("model", {})
            r["model"] = {**r["model"], "catalogs": [str(crab_day.parent / "catalogs" /
                                                         "gll_psc_v35.fit.gz")],
                          "src_radius": 0.5, "sources": []}   # its Crab: the catalog's
        return change

    return {
        ("data", "evfile"): _copy_changed(crab_day / "ft1.fits.gz", tmp / "ft1b.fits.gz"),
        ("data", "scfile"): _copy_changed(crab_day / "ft2.fits.gz", tmp / "ft2b.fits.gz"),
        ("data", "ltcube"): str(crab_day / "ltcube.fits.gz"),
        ("data", "caldb"): str(caldb_link),   # the same IRF files: content, not path
        ("gtlike", "irfs"): "P8R3_SOURCE_V2",
        ("gtlike", "srcmap"): str(crab_day / "srcmap.fits.gz"),
        ("gtlike", "bexpmap"): str(crab_day / "binned_expmap.fits.gz"),
        ("gtlike", "wmap"): str(crab_day / "cntmap.fits.gz"),
        ("gtlike", "edisp_disable"): ["Extragal_diffuse"],
        ("gtlike", "src_expscale"): {"Crab": 0.5},
        ("roiopt", "skip"): ["Crab"],
        ("residmap", "model"): {"SpectrumType": "PowerLaw", "Index": 2.5},
        ("residmap", "exclude"): ["Crab"],
        ("residmap", "loge_bounds"): [3.0, 4.0],
        ("tsmap", "model"): {"Index": 2.5},
        ("tsmap", "exclude"): ["Crab"],
        ("tsmap", "loge_bounds"): [2.5, 4.0],
        ("sed", "free_pars"): ["Prefactor"],
        ("tscube", "model"): {"Index": 2.5},
        ("lightcurve", "time_bins"): [239557417.0, 239600000.0, 239650000.0],
        ("lightcurve", "free_sources"): ["Crab"],
        ("lightcurve", "free_params"): ["Index"],
        ("lightcurve", "outdir"): "lc",
        ("sourcefind", "model"): {"Index": 2.5},
        ("sourcefind", "free_params"): ["Prefactor"],
        ("extension", "width"): [0.1, 0.2, 0.4],
        ("selection", "evtype"): 1,
        ("selection", "convtype"): 0,
        ("selection", "tmin"): 239560000.0,
        ("selection", "tmax"): 239640000.0,
        ("selection", "target"): target("PSR J0534+2200"),
        ("selection", "glon"): galactic(184.6, -5.8),
        ("selection", "glat"): galactic(184.557, -5.9),
        ("selection", "logemin"): energies_as_logs("logemin", math.log10(300.0)),
        ("selection", "logemax"): energies_as_logs("logemax", math.log10(10000.0)),
        ("selection", "filter"): "DATA_QUAL>0 && LAT_CONFIG==1",
        ("selection", "phasemin"): 0.1,
        ("selection", "phasemax"): 0.9,
        # the isotropic map does not depend on the spectrum table: another component
        ("model", "isodiff"): [{"name": "iso_other",
                                "file": str(crab_day / "iso_P8R3_SOURCE_V2.txt")}],
        ("model", "src_radius"): 1.0,
        ("model", "galdiff"): None,      # no map cube in the shared data: untested
        ("model", "limbdiff"): None,     # idem
        ("model", "diffuse"): [{"name": "iso2", "SpatialModel": "ConstantValue",
                                "SpectrumType": "Constant", "Value": 1.0}],
        ("model", "sources"): [{"name": "Crab", "ra": CRAB_RADEC[0], "dec": 22.1,
                                "SpectrumType": "PowerLaw", "Index": 2.3}],
        ("model", "extdir"): str(tmp),
        ("model", "diffuse_dir"): [str(tmp)],
        ("model", "catalogs"): [],
        ("model", "assoc_xmatch_columns"): ["ASSOC1"],
        # many regions and batch jobs: no product key depends on them
        ("targets", "names"): ["Crab"],
        ("targets", "catalog"): str(crab_day.parent / "catalogs" / "gll_psc_v35.fit.gz"),
        ("targets", "where"): "Signif_Avg > 30",
        ("cluster", "memory"): "8GB",
        ("cluster", "walltime"): "02:00:00",
        ("cluster", "queue"): "normal",
        ("cluster", "account"): "fermi",
        ("cluster", "job_extra"): ["--constraint=cpu"],
        ("fileio", "outdir"): str(tmp / "elsewhere"),
        ("fileio", "cachedir"): str(tmp / "store2"),
        ("fileio", "scratchdir"): str(tmp / "scratch"),
        ("fileio", "workdir"): str(tmp / "work"),
        ("fileio", "logfile"): str(tmp / "log.txt"),
        ("fileio", "workdir_regex"): [r"\.fits$"],
        ("fileio", "outdir_regex"): [r"\.fits$"],
        ("logging", "prefix"): "x",
        ("gtlike", "bexpmap_roi"): str(crab_day / "binned_expmap.fits.gz"),
        ("gtlike", "srcmap_base"): str(crab_day / "srcmap.fits.gz"),
        ("gtlike", "bexpmap_base"): str(crab_day / "binned_expmap.fits.gz"),
        ("gtlike", "bexpmap_roi_base"): str(crab_day / "binned_expmap.fits.gz"),
        ("plotting", "loge_bounds"): [3.0, 4.0],
        ("plotting", "catalogs"): ["3FGL"],
        ("plotting", "graticule_radii"): [1.0],
        ("plotting", "format"): "pdf",
        ("plotting", "cmap"): "viridis",
        ("plotting", "cmap_resid"): "coolwarm",
        ("plotting", "figsize"): [4.0, 3.0],
        ("model", "src_roiwidth"): 3.0,
        ("model", "src_radius_roi"): 1.0,
    }


# options a base recipe cannot exercise, with the reason (kept short on purpose)
_UNEXERCISED = {
    "model.galdiff": "no Galactic map cube in the shared data",
    "model.limbdiff": "no Earth-limb template in the shared data",
    "model.merge_sources": "needs one source in two catalogs",
    "model.assoc_xmatch_columns": "needs one source in two catalogs",
    "model.extdir": "needs an extended source template",
    "model.diffuse_dir": "needs a diffuse template named without its folder",
}


def _generic_alternative(opt, cur):
    if opt.enum:
        for v in opt.enum:
            if v is not None and not isinstance(v, bool) and v != cur:
                return v
    types = opt.types
    if "boolean" in types and isinstance(cur, bool):
        return not cur
    if "integer" in types and (cur is None or isinstance(cur, int)):
        v = (cur if cur is not None else int(opt.minimum or 1)) + 1
        if opt.maximum is not None and v > opt.maximum:
            v = (cur or 2) - 1
        return v
    if "number" in types and (cur is None or isinstance(cur, (int, float))):
        v = 1.0 if cur is None else (cur * 0.8 if cur else 0.5)
        if opt.maximum is not None:
            v = min(v, 0.9 * opt.maximum)
        return v
    return _NO_ALT


_NO_ALT = object()


def _family_keys(rec):
    """Key of each data-step family (all its tasks) as the executor makes it, the GTIs
    keyed by their parameters (the executor keys downstream products by the GTIs'
    content, which follows them), files by content."""
    from fermixr.engine.executor import task_key
    from fermixr.engine.hashing import FileHashCache, digest
    from fermixr.engine.plan import plan_tasks

    tasks = plan_tasks(rec)
    by = {t.name: t for t in tasks}
    hashes = _family_keys.hashes
    memo: dict = {}

    def key(name):
        if name not in memo:
            t = by[name]
            files = {r: [hashes.hash(p) for p in ps] for r, ps in t.files.items()}
            memo[name] = task_key(t, {r: key(d) for r, d in t.inputs.items()}, files)
        return memo[name]

    fam: dict[str, list] = {}
    up: dict[str, set] = {}
    for t in tasks:
        f = _FAMILY.get(t.step, t.step)
        fam.setdefault(f, []).append(key(t.name))
        up.setdefault(f, set()).update(_FAMILY.get(by[d].step, by[d].step)
                                       for d in t.inputs.values())
    return {f: digest(sorted(v)) for f, v in fam.items()}, up


def _upstream(up, fam):
    seen, todo = set(), [fam]
    while todo:
        for g in up.get(todo.pop(), ()):
            if g not in seen:
                seen.add(g)
                todo.append(g)
    return seen


def _resolved_flat(rec):
    return {f"{sec}.{k}": v for sec, body in rec.options[0].to_dict().items()
            for k, v in body.items()}


def test_option_changes_change_exactly_the_keys_of_the_steps_that_read_it(
        crab_day, caldb_dir, tmp_path):
    """For every option of the table: change it in a base recipe, plan, and compare the
    keys of every data step.  A step's key changes only when an option it declares reading
    (resolved.READS, directly or through its inputs) changed -- the livetime cube ignores
    event types and energy bins, so components share it -- and every declared reader's key
    changes in at least one base recipe.  Options marked without effect change no key."""
    import copy
    import warnings

    from fermixr.engine.hashing import FileHashCache
    from fermixr.engine.recipe import load_recipe
    from fermixr.engine.resolved import READS

    _family_keys.hashes = FileHashCache(tmp_path / "hashes.json")
    keyed = {c: set(r.options) for c, r in READS.items() if r.keyed}
    bases = _base_recipes(crab_day, caldb_dir, tmp_path)
    alts = _alternatives(crab_day, caldb_dir, tmp_path)
    base_state = {}
    for name, doc in bases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = load_recipe(copy.deepcopy(doc))
        keys, up = _family_keys(rec)
        base_state[name] = (rec, keys, up)
    assert set(base_state["A"][1]) >= {"gti", "events", "counts", "ltcube", "exposure", "psf",
                                       "drm", "srcmap", "srcmaps"}

    problems, missed = [], {}
    for sec, opts in O.SECTIONS.items():
        if sec in O.PENDING_SECTIONS:
            continue
        for key, opt in opts.items():
            name = f"{sec}.{key}"
            if opt.alias_of or opt.not_implemented or name in _UNEXERCISED:
                continue
            readers = {c for c, reads in keyed.items() if name in reads}
            changed_somewhere: set = set()
            for bname, (rec0, keys0, up0) in base_state.items():
                doc = copy.deepcopy(bases[bname])
                alt = alts.get((sec, key), _NO_ALT)
                if callable(alt):
                    alt(doc)
                else:
                    if alt is _NO_ALT:
                        alt = _generic_alternative(opt, _resolved_flat(rec0)[name])
                    if alt is _NO_ALT:
                        problems.append(f"{name}: no alternative value; add one to "
                                        "_alternatives")
                        break
                    doc.setdefault(sec, {})
                    doc[sec] = {**doc[sec], key: alt}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rec1 = load_recipe(doc)
                changed_opts = {k for k, v in _resolved_flat(rec1).items()
                                if _resolved_flat(rec0)[k] != v}
                keys1, up1 = _family_keys(rec1)
                changed = {f for f in set(keys0) | set(keys1) if keys0.get(f) != keys1.get(f)}
                changed_somewhere |= changed
                for f in changed:
                    reads = set(keyed.get(f, ()))
                    for g in _upstream(up0, f) | _upstream(up1, f):
                        reads |= keyed.get(g, set())
                    if not reads & changed_opts:
                        problems.append(f"{name} (base {bname}): the key of {f} changed but "
                                        f"{f} declares none of {sorted(changed_opts)}")
            if opt.no_effect and changed_somewhere:
                problems.append(f"{name} is marked without effect but changes the keys of "
                                f"{sorted(changed_somewhere)}")
            if readers - changed_somewhere:
                missed[name] = sorted(readers - changed_somewhere)
    problems += [f"{n}: declared read by {f} but changing it never changed their keys"
                 for n, f in missed.items()]
    assert not problems, "\n".join(problems)
