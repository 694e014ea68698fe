"""The one table of recipe options: Fermipy 0.16's configuration sections, option names and
defaults, plus fermixr's own additions, each with its type, unit, allowed values and a
description.  The JSON Schema of a recipe (``schemas/recipe.schema.json``) is generated from
this table::

    python -m fermixr.engine.options > schemas/recipe.schema.json

Loading and validation live in :mod:`fermixr.engine.recipe`; this module only describes.

Conventions of the table
------------------------
* ``type`` is a JSON Schema type name or a tuple of them; an option whose default is
  ``None`` also accepts ``null``.  Integers are accepted where numbers are expected.
* ``unit`` is recorded in the schema as the annotation ``x-unit``.
* ``derived`` documents how a ``null`` default is filled from other options
  (:func:`fermixr.engine.recipe.resolve_config` implements it); it appears in the schema
  as ``x-derived``.
* ``path`` marks options naming files or folders: ``~`` and ``$VARS`` are expanded and
  relative paths are taken from the recipe's folder.  ``path="name"`` also accepts bare
  names (catalog names such as ``4FGL``, diffuse templates looked up in the standard
  diffuse folders) and leaves a bare name alone when no such file sits beside the recipe.
* ``listify`` options accept one string where a list is expected (Fermipy does the same).
* ``alias_of`` marks an accepted old spelling; ``deprecated`` ones warn with a
  :class:`DeprecationWarning`.
* ``no_effect`` (a reason) marks an option fermixr accepts for Fermipy compatibility but
  does not use; a recipe that sets it to anything but its default warns with
  :class:`fermixr.engine.recipe.OptionWithoutEffectWarning` naming the option and the
  reason.  Schema annotation ``x-no-effect``.
* ``not_implemented`` (a reason) marks an option whose default is what fermixr does and
  whose other values would change the physics in a way fermixr does not implement: any
  other value is refused with a :class:`~fermixr.errors.RecipeError`.  Schema annotation
  ``x-not-implemented``.
* Every other option is read by a consumer declared in
  :data:`fermixr.engine.resolved.READS`; a test checks that the table and the
  declarations cover each other.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

SCHEMA_ID = "https://fermixr.invalid/schemas/recipe.schema.json"
SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Option:
    """Specification of one option."""

    type: str | tuple[str, ...]
    default: Any = None
    description: str = ""
    unit: str | None = None
    enum: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    items: dict | None = None          # JSON Schema of list items
    min_items: int | None = None
    max_items: int | None = None
    extra: dict | None = None          # further JSON Schema keywords (additionalProperties ...)
    nullable: bool | None = None       # default: True when default is None
    path: bool | str = False           # True, or "name" (bare names allowed)
    listify: bool = False
    derived: str | None = None
    fermixr: bool = False              # fermixr's own option, not in Fermipy
    alias_of: str | None = None
    deprecated: bool = False
    no_effect: str | None = None       # accepted without effect: the reason
    not_implemented: str | None = None  # values other than the default are refused: why

    @property
    def types(self) -> tuple[str, ...]:
        t = (self.type,) if isinstance(self.type, str) else tuple(self.type)
        nullable = self.nullable if self.nullable is not None else self.default is None
        if nullable and "null" not in t:
            t = t + ("null",)
        return t

    def schema(self) -> dict:
        """JSON Schema (draft 2020-12) fragment of this option."""
        types = self.types
        s: dict[str, Any] = {"type": list(types) if len(types) > 1 else types[0]}
        if self.enum is not None:
            enum = list(self.enum)
            if "null" in types and None not in enum:
                enum.append(None)
            s["enum"] = enum
        for key, val in (("minimum", self.minimum), ("maximum", self.maximum),
                         ("exclusiveMinimum", self.exclusive_minimum)):
            if val is not None:
                s[key] = val
        if self.items is not None:
            s["items"] = self.items
        if self.min_items is not None:
            s["minItems"] = self.min_items
        if self.max_items is not None:
            s["maxItems"] = self.max_items
        if self.extra:
            s.update(self.extra)
        s["default"] = _jsonable(self.default)
        desc = self.description
        if self.alias_of:
            desc = f"Old spelling of '{self.alias_of}', accepted and renamed. " + desc
        s["description"] = desc.strip()
        if self.unit:
            s["x-unit"] = self.unit
        if self.derived:
            s["x-derived"] = self.derived
        if self.path:
            s["x-path"] = True
        if self.fermixr:
            s["x-fermixr"] = True
        if self.deprecated:
            s["deprecated"] = True
        if self.no_effect:
            s["x-no-effect"] = self.no_effect
        if self.not_implemented:
            s["x-not-implemented"] = self.not_implemented
        return s


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


# --- small constructors ----------------------------------------------------------------
def num(default, desc, unit=None, **kw) -> Option:
    return Option("number", default, desc, unit=unit, **kw)


def integer(default, desc, unit=None, **kw) -> Option:
    return Option("integer", default, desc, unit=unit, **kw)


def flag(default, desc, **kw) -> Option:
    return Option("boolean", default, desc, **kw)


def text(default, desc, **kw) -> Option:
    return Option("string", default, desc, **kw)


def choice(default, values, desc, **kw) -> Option:
    return Option("string", default, desc, enum=tuple(values), **kw)


_STR_ITEMS = {"type": "string"}
_NUM_ITEMS = {"type": "number"}
_NUM_OR_NULL_ITEMS = {"type": ["number", "null"]}


def strings(default, desc, **kw) -> Option:
    """A list of strings (one string accepted and wrapped)."""
    kw.setdefault("listify", True)
    return Option(("array", "string"), default, desc, items=_STR_ITEMS, **kw)


def diffuse_files(desc) -> Option:
    """Diffuse templates as Fermipy takes them: a path, a list of paths, or a list of
    ``{name, file}`` mappings (each naming its component)."""
    item = {"anyOf": [{"type": "string"},
                      {"type": "object", "required": ["file"],
                       "properties": {"name": {"type": "string"}, "file": {"type": "string"}}}]}
    return Option(("array", "string"), None, desc + " A path, a list of paths or a list of "
                  "{name, file} mappings.", items=item, listify=True, path="name")


def numbers(default, desc, unit=None, **kw) -> Option:
    return Option("array", default, desc, unit=unit, items=_NUM_ITEMS, **kw)


def mapping(default, desc, **kw) -> Option:
    return Option("object", default, desc, **kw)


def loge_bounds_opt(what: str) -> Option:
    return Option("array", None,
                  f"Energy range [min, max] of {what}, log10(E/MeV); it must lie within the "
                  "analysis range.  null (or a null bound) keeps the analysis range.",
                  unit="log10(MeV)", items=_NUM_OR_NULL_ITEMS, min_items=2, max_items=2)


def erange_alias(what: str) -> Option:
    o = loge_bounds_opt(what)
    return Option(o.type, None, o.description, unit=o.unit, items=o.items, min_items=2,
                  max_items=2, alias_of="loge_bounds", deprecated=True)


TEST_SOURCE_DESC = (
    "Test source as a source dictionary (SpatialModel, SpectrumType, Index, ...).  null "
    "means a point source with a PowerLaw spectrum of Index 2.0; keys given are merged "
    "over that default."
)


def _model_opt() -> Option:
    return mapping(None, TEST_SOURCE_DESC)


def _exclude_opt(what: str) -> Option:
    return strings(None, f"Sources left out of the model when computing the {what}.")


def _common_outputs(make_plots=False) -> dict[str, Option]:
    return {
        "make_plots": flag(make_plots, "Draw diagnostic plots of the result."),
        "write_fits": flag(True, "Write the result to a FITS file."),
        "write_npy": flag(True, "Write the result dictionary to a .npy file."),
    }


def _threads() -> dict[str, Option]:
    return {
        "multithread": flag(False, "Spread the computation over nthread processes."),
        "nthread": integer(None, "Number of processes when multithread is true; null uses "
                                 "every available core.", minimum=1),
    }


def _free_bkg() -> dict[str, Option]:
    return {
        "free_background": flag(False, "Fit the background parameters that are free in the "
                                       "model together with the source of interest."),
        "free_radius": num(None, "Free the normalisations of background sources within this "
                                 "distance of the source of interest; null frees none.",
                           unit="deg", minimum=0),
    }


_FIX_SHAPE = flag(False, "Keep the spectral shape of the source of interest fixed and fit "
                         "only its normalisation.")

# --- the sections ----------------------------------------------------------------------
SECTION_DESCRIPTIONS: dict[str, str] = {
    "fileio": "Where results, logs and the product store go.",
    "logging": "Verbosity of messages.",
    "data": "Input files: events (FT1), spacecraft history (FT2), an optional precomputed "
            "livetime cube, and the CALDB holding the instrument response.",
    "binning": "Spatial and energy binning of the counts cube.",
    "selection": "Event selection (gtselect/gtmktime equivalent) and the ROI centre.",
    "gtlike": "Likelihood setup: IRFs, energy dispersion, source-map options.",
    "model": "The sky model: catalogs, diffuse templates and extra sources.",
    "optimizer": "Likelihood maximisation.",
    "roiopt": "ROI optimisation (optimize step).",
    "ltcube": "Livetime cube computation.",
    "sed": "Spectral energy distribution (sed step).",
    "tsmap": "Test-statistic map (tsmap step).",
    "tscube": "Test-statistic cube (tscube step).",
    "residmap": "Residual significance map (residmap step).",
    "sourcefind": "Iterative source finding (find_sources step).",
    "localize": "Source localisation (localize step).",
    "extension": "Spatial extension test (extension step).",
    "lightcurve": "Light curve (lightcurve step).",
    "plotting": "Appearance of plots.",
    "mc": "Simulation options.",
    "targets": "Many regions from one recipe (fermixr run RECIPE --outdir DIR): one region "
               "per target, centred on it (as selection.target), named after it, all run "
               "in one plan sharing one product store.",
    "cluster": "Batch jobs of a SLURM or PBS cluster (fermixr run --scheduler slurm|pbs), "
               "started through dask-jobqueue.",
}

SECTIONS: dict[str, dict[str, Option]] = {
    "fileio": {
        "outdir": text(None, "Output folder of the analysis.", path=True,
                       derived="the folder of the recipe file (the current folder for a "
                               "recipe given as text or a dict)"),
        "scratchdir": text("/scratch", "Folder under which a temporary working folder is "
                                       "made when usescratch is true.", path=True),
        "workdir": text(None, "Working folder.", path=True, derived="fileio.outdir"),
        "logfile": text(None, "Log file; null lets the logger choose its default name in "
                              "outdir.", path=True),
        "savefits": flag(True, "Keep intermediate FITS files."),
        "workdir_regex": strings([r"\.fits$|\.fit$|\.xml$|\.npy$"],
                                 "Regular expressions of the files copied to the working "
                                 "folder (only with usescratch)."),
        "outdir_regex": strings([r"\.fits$|\.fit$|\.xml$|\.npy$|\.png$|\.pdf$|\.yaml$"],
                                "Regular expressions of the files copied back to outdir "
                                "(only with usescratch)."),
        "usescratch": flag(False, "Work in a temporary folder under scratchdir."),
        "cachedir": text(None, "Content-addressed product store shared by runs; products "
                               "made with identical inputs and parameters are reused.",
                         path=True, fermixr=True, derived="<fileio.outdir>/.store"),
    },
    "logging": {
        "prefix": text("", "Prefix added to the logger name."),
        "chatter": integer(3, "Chatter level (kept for Fermipy compatibility).", minimum=0),
        "verbosity": integer(3, "Verbosity: 0 silent ... 4 debug.", minimum=0),
    },
    "data": {
        "evfile": Option(("string", "array"), None,
                         "FT1 event file(s): a path, a glob, a list of paths, or a text file "
                         "list given as @list.txt (or ending in .lst/.txt).",
                         items=_STR_ITEMS, path=True),
        "scfile": Option(("string", "array"), None,
                         "FT2 spacecraft file(s), in the same forms as evfile.",
                         items=_STR_ITEMS, path=True),
        "ltcube": Option(("string", "array"), None,
                         "Precomputed livetime cube (one file or a list), used instead of "
                         "computing one.", items=_STR_ITEMS, path=True),
        "cacheft1": flag(True, "Keep the selected event list after binning."),
        "caldb": text(None, "CALDB folder holding data/glast/lat/bcf/... of the IRFs.",
                      path=True, fermixr=True, derived="the CALDB environment variable"),
    },
    "binning": {
        "projtype": choice("WCS", ("WCS", "HPX"), "Map type: WCS image or HEALPix."),
        "proj": choice("AIT", ("AIT", "ARC", "CAR", "GLS", "MER", "NCP", "SIN", "STG", "TAN",
                               "ZEA"),
                       "WCS projection code."),
        "coordsys": choice("CEL", ("CEL", "GAL"), "Coordinate frame of the map: celestial "
                                                  "(RA/Dec) or Galactic."),
        "npix": integer(None, "Number of pixels along each side of the map.", minimum=1,
                        derived="ceil(roiwidth / binsz)"),
        "roiwidth": num(10.0, "Width of the ROI map.", unit="deg", exclusive_minimum=0,
                        derived="npix * binsz when npix is given and roiwidth is not"),
        "binsz": num(0.1, "Pixel size.", unit="deg", exclusive_minimum=0),
        "binsperdec": num(8, "Energy bins per decade.", exclusive_minimum=0),
        "enumbins": integer(None, "Number of energy bins.", minimum=1,
                            derived="round(binsperdec * log10(emax / emin)) when the energy "
                                    "range is known"),
        "hpx_ordering_scheme": choice("RING", ("RING", "NESTED"), "HEALPix pixel ordering."),
        "hpx_order": integer(10, "HEALPix order (nside = 2**order).", minimum=0, maximum=12),
        "hpx_ebin": flag(True, "HEALPix maps carry an energy axis."),
    },
    "selection": {
        "emin": num(None, "Lower energy bound.", unit="MeV", exclusive_minimum=0,
                    derived="10**logemin"),
        "emax": num(None, "Upper energy bound.", unit="MeV", exclusive_minimum=0,
                    derived="10**logemax"),
        "logemin": num(None, "Lower energy bound, log10(E/MeV).", unit="log10(MeV)",
                       derived="log10(emin)"),
        "logemax": num(None, "Upper energy bound, log10(E/MeV).", unit="log10(MeV)",
                       derived="log10(emax)"),
        "tmin": num(None, "Start time (mission elapsed time, kept as a float).", unit="s"),
        "tmax": num(None, "Stop time (mission elapsed time, kept as a float).", unit="s"),
        "zmax": num(None, "Maximum zenith angle of events; null applies no cut.", unit="deg",
                    exclusive_minimum=0, maximum=180),
        "evclass": integer(128, "Event class bit mask (128 = SOURCE).", minimum=1),
        "evtype": Option(("integer", "array"), 3,
                         "Event type bit mask: FRONT 1, BACK 2, PSF0..3 4, 8, 16, 32, "
                         "EDISP0..3 64..512.  A list of types is read as their union.",
                         minimum=1, maximum=1023,
                         items={"type": "integer", "minimum": 1, "maximum": 1023}),
        "convtype": integer(None, "Conversion type: -1 both, 0 front, 1 back.", minimum=-1,
                            maximum=1),
        "phasemin": num(None, "Lower pulsar phase bound.", minimum=0, maximum=1),
        "phasemax": num(None, "Upper pulsar phase bound.", minimum=0, maximum=1),
        "target": text(None, "Name of a catalog source at which to centre the ROI; it "
                             "overrides ra/dec and glon/glat."),
        "ra": num(None, "Right ascension of the ROI centre.", unit="deg",
                  derived="from glon/glat"),
        "dec": num(None, "Declination of the ROI centre.", unit="deg", minimum=-90,
                   maximum=90, derived="from glon/glat"),
        "glat": num(None, "Galactic latitude of the ROI centre.", unit="deg", minimum=-90,
                    maximum=90, derived="from ra/dec"),
        "glon": num(None, "Galactic longitude of the ROI centre.", unit="deg",
                    derived="from ra/dec"),
        "radius": num(None, "Radius of the event selection around the ROI centre.",
                      unit="deg", exclusive_minimum=0,
                      derived="sqrt(2) * 0.5 * npix * binsz + 0.5 (the ROI's half-diagonal "
                              "plus half a degree)"),
        "filter": text(None, "gtmktime filter expression on FT2 columns."),
        "roicut": Option(("string", "boolean"), "no",
                         "Drop time intervals when the ROI comes within zmax of the Earth "
                         "limb (gtmktime roicut).  YAML yes/no are accepted.",
                         enum=("yes", "no", True, False)),
        "trim_to_ft2": flag(False, "Cut the GTIs to the time the spacecraft file's rows "
                                   "cover, as gtmktime does, instead of refusing GTIs the "
                                   "FT2 does not cover (the time cut away is recorded in "
                                   "the gti product's attrs).", fermixr=True),
    },
    "gtlike": {
        "irfs": text(None, "IRF name, e.g. P8R3_SOURCE_V3 or P8R2_SOURCE_V6."),
        "edisp": flag(True, "Account for energy dispersion."),
        "edisp_bins": integer(1, "Extra true-energy bins on each side of the counts energy "
                                 "range over which energy dispersion is computed (the "
                                 "response matrix maps n + 2 edisp_bins true bins to n "
                                 "measured ones).", minimum=0, fermixr=True),
        "edisp_disable": strings(None, "Sources evaluated without energy dispersion "
                                       "(typically the diffuse ones)."),
        "minbinsz": num(0.05, "Smallest pixel size used when resampling diffuse maps.",
                        unit="deg", exclusive_minimum=0),
        "rfactor": integer(2, "Oversampling factor of source maps.", minimum=1),
        "convolve": flag(True, "Convolve source maps with the PSF."),
        "resample": flag(True, "Resample diffuse maps onto the analysis grid."),
        "srcmap": text(None, "Source-map file used instead of computing one.", path=True),
        "bexpmap": text(None, "All-sky binned exposure cube used instead of computing one.",
                        path=True),
        "bexpmap_roi": text(None, "ROI binned exposure cube used instead of computing one.",
                            path=True),
        "srcmap_base": text(None, "Baseline source-map file that scaled source maps are "
                                  "made from.", path=True),
        "bexpmap_base": text(None, "Baseline all-sky exposure cube for scaled source maps.",
                             path=True),
        "bexpmap_roi_base": text(None, "Baseline ROI exposure cube for scaled source maps.",
                                 path=True),
        "use_external_srcmap": flag(False, "Use the precomputed srcmap file as it is."),
        "use_scaled_srcmap": flag(False, "Make source maps by scaling srcmap_base with the "
                                         "exposure ratio."),
        "wmap": text(None, "Likelihood weights map.", path=True),
        "llscan_npts": integer(20, "Points of a likelihood scan.", minimum=2),
        "src_expscale": mapping(None, "Exposure scale per source name (1.0 = nominal); it "
                                      "takes precedence over expscale.",
                                extra={"additionalProperties": {"type": "number",
                                                                "minimum": 0}}),
        "expscale": num(None, "Exposure scale applied to every source of the component "
                              "(e.g. the width of a phase interval).", exclusive_minimum=0),
    },
    "model": {
        "src_radius": num(None, "Include catalog sources within this radius of the ROI "
                                "centre (a source must pass this and the src_roiwidth cut, "
                                "as in Fermipy); null: no such cut.", unit="deg", minimum=0),
        "src_roiwidth": num(None, "Include catalog sources within a square of this width "
                                  "centred on the ROI (and within src_radius, as in Fermipy).",
                            unit="deg", minimum=0),
        "src_radius_roi": num(None, "Half-width of the src_roiwidth square, an alternative "
                                    "way to give it.", unit="deg", minimum=0),
        "isodiff": diffuse_files("Isotropic template(s) (FileFunction tables), one "
                                 "component each."),
        "galdiff": diffuse_files("Galactic diffuse map cube(s), one component each."),
        "limbdiff": strings(None, "Earth-limb template(s).", path="name"),
        "diffuse": Option("array", None, "Further diffuse components as source "
                                         "dictionaries.", items={"type": ["object", "string"]}),
        "sources": Option("array", None, "Extra sources as source dictionaries (name, ra, "
                                         "dec, SpectrumType, ...).", items={"type": "object"}),
        "extdir": text(None, "Folder of extended-source templates, searched before the "
                             "catalog's own templates.", path=True),
        "diffuse_dir": strings(None, "Folders searched for diffuse templates.", path=True),
        "catalogs": strings(None, "Source catalogs: names (3FGL, 4FGL, 4FGL-DR3 ...) or "
                                  "FITS/XML files.  When sources merge, the last catalog "
                                  "wins.", path="name"),
        "merge_sources": flag(True, "Merge a source that appears in several catalogs; if "
                                    "false the later copies are ignored."),
        "assoc_xmatch_columns": strings(["3FGL_Name"], "Association columns used to match "
                                                       "sources across catalogs."),
        "extract_diffuse": flag(False, "Cut out the map cubes around the ROI."),
    },
    "optimizer": {
        "optimizer": choice("MINUIT", ("MINUIT", "NEWMINUIT", "NEWTON"),
                            "Likelihood maximiser: MINUIT and NEWMINUIT select the iminuit "
                            "backend, NEWTON fermixr's fast Newton fitter."),
        "tol": num(1e-3, "Convergence tolerance (estimated distance to the maximum).",
                   exclusive_minimum=0),
        "max_iter": integer(100, "Iteration limit of the Newton fitter.", minimum=1),
        "init_lambda": num(1e-4, "Initial damping of the Newton fitter; 0 disables "
                                 "damping.", minimum=0),
        "retries": integer(3, "Attempts when the fit quality is below min_fit_quality "
                              "(the first attempt counts).", minimum=1),
        "min_fit_quality": integer(2, "Minimum fit quality: 3 accurate covariance, 2 forced "
                                      "positive-definite, 1 diagonal only, 0 none.",
                                   minimum=0, maximum=3),
        "verbosity": integer(0, "Verbosity of the optimiser.", minimum=0),
    },
    "roiopt": {
        "npred_threshold": num(1.0, "Sources predicting fewer counts are not fitted.",
                               minimum=0),
        "npred_frac": num(0.95, "Fit the brightest sources that together hold this fraction "
                                "of the predicted counts.", minimum=0, maximum=1),
        "shape_ts_threshold": num(25.0, "TS above which a source's shape parameters are "
                                        "fitted in the last pass.", minimum=0),
        "max_free_sources": integer(5, "Sources fitted together in the first pass.",
                                    minimum=1),
        "skip": strings(None, "Sources left alone by the optimisation."),
    },
    "ltcube": {
        "binsz": num(1.0, "Pixel size of the livetime cube's sky grid.", unit="deg",
                     exclusive_minimum=0),
        "phibins": integer(0, "Azimuth bins (0: no azimuth dependence).", minimum=0),
        "dcostheta": num(0.025, "Inclination bin width in cos(theta).", exclusive_minimum=0,
                         maximum=1),
        "use_local_ltcube": flag(False, "Compute the livetime cube only around the ROI."),
        "zmax": num(None, "Zenith cut of the livetime cube.  The Science Tools' gtltcube "
                          "default is no cut (180).", unit="deg", exclusive_minimum=0,
                    maximum=180,
                    fermixr=True,
                    derived="selection.zmax, or 180 (no cut) when that is null"),
    },
    "sed": {
        "bin_index": num(2.0, "Power-law index fitted inside each energy bin (dN/dE ~ "
                              "E^-index)."),
        "use_local_index": flag(False, "Use the local slope of the global spectrum in each "
                                       "bin instead of bin_index."),
        **_free_bkg(),
        "free_pars": strings(None, "Parameters of the source of interest freed in the "
                                   "global fit; null frees all."),
        "ul_confidence": num(0.95, "Confidence level of upper limits.", exclusive_minimum=0,
                             maximum=1),
        "cov_scale": num(3.0, "Strength of the prior on free nuisance parameters; null "
                              "disables the prior.", nullable=True),
        **_common_outputs(),
    },
    "tsmap": {
        "model": _model_opt(),
        "exclude": _exclude_opt("TS map"),
        **_threads(),
        "max_kernel_radius": num(3.0, "Radius of the test-source kernel; smaller is faster "
                                      "and less accurate.", unit="deg", exclusive_minimum=0),
        "loge_bounds": loge_bounds_opt("the TS map"),
        "erange": erange_alias("the TS map"),
        "flux_ul": flag(True, "Also map the 95% upper limit of the test source's flux "
                              "(about 2.4 times the work of the TS map alone).",
                        fermixr=True),
        "sum_over_energy": flag(False, "Sum counts, background and kernel over the energy "
                                       "bins into one image before the fit (Gammapy's "
                                       "default; faster, approximate).", fermixr=True),
        **_common_outputs(),
    },
    "tscube": {
        "model": _model_opt(),
        "do_sed": flag(True, "Also fit each energy bin separately."),
        "nnorm": integer(10, "Points of the likelihood scan in normalisation.", minimum=2),
        "norm_sigma": num(5.0, "Width of the normalisation scan in sigma.",
                          exclusive_minimum=0),
        "cov_scale_bb": num(-1.0, "Scale of the prior from the global fit covariance in the "
                                  "broadband fits; < 0: no prior."),
        "cov_scale": num(-1.0, "Scale of the prior from the broadband covariance in the "
                               "bin-by-bin fits; < 0: fixed."),
        "tol": num(1e-3, "Convergence tolerance.", exclusive_minimum=0),
        "max_iter": integer(30, "Iteration limit of the Newton fitter.", minimum=1),
        "tol_type": integer(0, "Tolerance type: 0 absolute, 1 relative.", enum=(0, 1)),
        "remake_test_source": flag(False, "Recompute the test-source image at each pixel "
                                          "instead of shifting it."),
        "st_scan_level": integer(0, "Science Tools cross-check level (testing only).",
                                 minimum=0),
        "init_lambda": num(0, "Initial damping of the Newton fitter; 0 disables damping.",
                           minimum=0),
        **_common_outputs(),
    },
    "residmap": {
        "model": _model_opt(),
        "exclude": _exclude_opt("residual map"),
        "loge_bounds": loge_bounds_opt("the residual map"),
        "erange": erange_alias("the residual map"),
        "use_weights": flag(False, "Use the likelihood-weighted maps."),
        **_common_outputs(),
    },
    "sourcefind": {
        "model": _model_opt(),
        "min_separation": num(1.0, "Smallest separation between sources added in one "
                                   "iteration.", unit="deg", minimum=0),
        "sqrt_ts_threshold": num(5.0, "Peaks above this sqrt(TS) seed new sources.",
                                 minimum=0),
        "max_iter": integer(5, "Maximum number of search iterations.", minimum=1),
        "sources_per_iter": integer(4, "Most sources added per iteration (the highest TS "
                                       "peaks).", minimum=1),
        "tsmap_fitter": choice("tsmap", ("tsmap", "tscube"), "Method making the TS map."),
        "free_params": strings(None, "Parameters of new sources fitted after they are "
                                     "added; null fits all."),
        **_threads(),
    },
    "localize": {
        "nstep": integer(5, "Steps per axis of the refined position scan (nstep**2 points).",
                         minimum=1),
        "dtheta_max": num(0.5, "Half-width of the first-pass search region.", unit="deg",
                          exclusive_minimum=0),
        **_free_bkg(),
        "fix_shape": _FIX_SHAPE,
        "update": flag(True, "Move the source to the fitted position."),
        **_common_outputs(),
    },
    "extension": {
        "spatial_model": choice("RadialGaussian", ("RadialGaussian", "RadialDisk"),
                                "Extended template tested; its width is the 68% "
                                "containment radius."),
        "width": numbers(None, "Widths scanned (68% containment radii); null uses "
                               "width_min/width_max/width_nstep.", unit="deg"),
        "fit_position": flag(False, "Fit position and extension together."),
        "width_min": num(0.01, "Smallest width of the scan.", unit="deg",
                         exclusive_minimum=0),
        "width_max": num(1.0, "Largest width of the scan.", unit="deg", exclusive_minimum=0),
        "width_nstep": integer(21, "Scan points, log-spaced from width_min to width_max.",
                               minimum=2),
        **_free_bkg(),
        "fix_shape": _FIX_SHAPE,
        "fit_ebin": flag(False, "Also fit the extension in each energy bin."),
        "update": flag(False, "Replace the source with the best-fit extended model when "
                              "sqrt(TS_ext) passes sqrt_ts_threshold."),
        "save_model_map": flag(False, "Save model counts cubes of both hypotheses."),
        "sqrt_ts_threshold": num(None, "sqrt(TS_ext) required for update; null: none.",
                                 minimum=0),
        "psf_scale_fn": Option("array", None,
                               "Energy-dependent PSF correction as two lists [log10(E/MeV), "
                               "f]: the PSF becomes P(x / (1 + f(E))).",
                               items={"type": "array", "items": _NUM_ITEMS},
                               min_items=2, max_items=2),
        "make_tsmap": flag(True, "Make a TS map of the source of interest."),
        **_common_outputs(),
    },
    "lightcurve": {
        "outdir": text(None, "Sub-folder of the light-curve products; null: the analysis "
                             "outdir."),
        "use_local_ltcube": flag(True, "Compute each bin's livetime cube only around the "
                                       "ROI."),
        "use_scaled_srcmap": flag(False, "Scale the full-range source maps by the ratio of "
                                         "each bin's exposure to the full range's (per "
                                         "energy and pixel) instead of recomputing them: "
                                         "faster; the PSF and the energy-dispersion matrix "
                                         "stay the full range's."),
        "save_bin_data": flag(True, "Keep the products of each time bin."),
        "binsz": num(86400.0, "Time bin width.", unit="s", exclusive_minimum=0),
        "shape_ts_threshold": num(16.0, "Below this TS in a bin, sources keep the shape "
                                        "fitted on the full range.", minimum=0),
        "nbins": integer(None, "Number of equal time bins; used when binsz is not wanted.",
                         minimum=1),
        "time_bins": numbers(None, "Explicit bin edges (MET); wins over binsz and nbins.",
                             unit="s"),
        **_free_bkg(),
        "free_sources": strings(None, "Sources freed in every bin, besides those within "
                                      "free_radius."),
        "free_params": strings(None, "Parameters of the source of interest refitted in each "
                                     "bin; null or empty frees all."),
        "max_free_sources": integer(5, "Most sources fitted together with the source of "
                                       "interest.", minimum=0),
        **_common_outputs(),
        **_threads(),
        "systematic": num(0.02, "Fractional systematic flux error in the variability TS.",
                          minimum=0),
    },
    "plotting": {
        "loge_bounds": loge_bounds_opt("the plots"),
        "erange": erange_alias("the plots"),
        "catalogs": strings(None, "Catalogs whose sources are marked on maps.", path="name"),
        "graticule_radii": numbers(None, "Radii of circular graticules.", unit="deg"),
        "format": text("png", "Image file format."),
        "cmap": text("magma", "Colour map of sky maps."),
        "cmap_resid": text("RdBu_r", "Colour map of residual maps."),
        "figsize": numbers([8.0, 6.0], "Figure size (width, height).", unit="inch",
                           min_items=2, max_items=2),
        "label_ts_threshold": num(0.0, "Label sources above this TS; null labels none.",
                                  nullable=True),
        "interactive": flag(False, "Show each figure as it is drawn."),
    },
    "mc": {
        "seed": integer(None, "Seed of the random generator of simulations.", minimum=0),
    },
    "targets": {
        "names": strings(None, "Source names or associations, each the centre of one region "
                               "(resolved as selection.target, in model.catalogs or "
                               "targets.catalog).", fermixr=True),
        "catalog": text(None, "Catalog (name such as 4FGL-DR4, or FITS file) whose sources "
                              "passing targets.where become the regions; also where "
                              "targets.names are looked up first.", path="name",
                        fermixr=True),
        "where": text(None, "Cut on the catalog's columns selecting the regions' sources, a "
                            "Python-like expression such as 'Signif_Avg > 30 and abs(GLAT) > "
                            "10' (and, or, not, comparisons, abs).", fermixr=True),
        "max": integer(None, "Keep at most this many of the sources passing targets.where, "
                             "the most significant (Signif_Avg) first.", minimum=1,
                       fermixr=True),
    },
    "cluster": {
        "cores": integer(1, "Cores of each batch job.", minimum=1, fermixr=True),
        "processes": integer(1, "Dask worker processes per job (they share its cores and "
                                "memory).", minimum=1, fermixr=True),
        "memory": text("4GB", "Memory of each batch job, e.g. '16GB'; split among its worker "
                              "processes, each declaring its share as the MEMORY resource.",
                       fermixr=True),
        "walltime": text("01:00:00", "Wall-time limit of each job (HH:MM:SS).", fermixr=True),
        "queue": text(None, "Queue (SLURM partition, PBS queue).", fermixr=True),
        "account": text(None, "Account (project) the jobs are charged to.", fermixr=True),
        "job_extra": strings([], "Extra directives of the job script, e.g. "
                                 "['--constraint=cpu'] (SLURM) or ['-l place=scatter'] (PBS).",
                             fermixr=True),
        "jobs": integer(1, "Jobs started (--scheduler slurm:N overrides).", minimum=1,
                        fermixr=True),
    },
}

# --- options accepted without effect, and values refused ------------------------------
_NO_STORE_FOLDERS = ("fermixr keeps its products in the content-addressed store "
                     "(fileio.cachedir) and writes results to fileio.outdir; it has no "
                     "working or scratch folder")
_NO_LOGGING = ("fermixr's messages are set on the command line (--quiet) and by Python's "
               "logging, not by this option")
_SCALED = ("used only with gtlike.use_scaled_srcmap, which fermixr does not implement")
_NO_PLOTTING = "fermixr's plots (write_roi make_plots) do not read the plotting section yet"

NO_EFFECT: dict[tuple[str, str], str] = {
    ("fileio", "scratchdir"): _NO_STORE_FOLDERS,
    ("fileio", "workdir"): _NO_STORE_FOLDERS,
    ("fileio", "usescratch"): _NO_STORE_FOLDERS,
    ("fileio", "workdir_regex"): _NO_STORE_FOLDERS,
    ("fileio", "outdir_regex"): _NO_STORE_FOLDERS,
    ("fileio", "savefits"): "fermixr's intermediate products are zarr stores in "
                            "fileio.cachedir, kept always; 'fermixr export' writes FITS",
    ("fileio", "logfile"): "fermixr writes no log file; messages go to stderr and the run "
                           "record to <outdir>/run.json",
    ("logging", "prefix"): _NO_LOGGING,
    ("logging", "chatter"): _NO_LOGGING,
    ("logging", "verbosity"): _NO_LOGGING,
    ("data", "cacheft1"): "the selected events are always kept, as the 'events' product "
                          "of the store",
    ("gtlike", "minbinsz"): "fermixr's diffuse source maps have no minimum rebinning "
                            "pixel size; they are computed on the analysis grid "
                            "oversampled by gtlike.rfactor",
    ("gtlike", "bexpmap_roi"): "fermixr computes the ROI exposure cube itself, or "
                               "resamples the all-sky cube given as gtlike.bexpmap",
    ("gtlike", "srcmap_base"): _SCALED,
    ("gtlike", "bexpmap_base"): _SCALED,
    ("gtlike", "bexpmap_roi_base"): _SCALED,
    ("gtlike", "use_external_srcmap"): "fermixr takes a source's map from gtlike.srcmap "
                                       "whenever that file holds it, with this flag or "
                                       "without",
    ("model", "extract_diffuse"): "fermixr reads the map cubes where they are; cutting "
                                  "them out around the ROI changes no number",
    ("ltcube", "use_local_ltcube"): "the livetime cube is computed on the whole sky; a "
                                    "local one gives the same exposure inside the ROI",
    ("lightcurve", "use_local_ltcube"): "each bin's livetime cube is always local: the "
                                        "pixels of a cap around the ROI, every bin from "
                                        "one pass over the spacecraft file",
    ("lightcurve", "save_bin_data"): "each bin's products (GTIs, events, counts, livetime "
                                     "cube, source maps, fit) are always kept in the store, "
                                     "readable under <outdir>/lightcurve/<source>",
    **{("lightcurve", k): "the bins run as tasks on the engine's scheduler (fermixr run "
                          "--scheduler local:N spreads them over N processes)"
       for k in ("multithread", "nthread")},
    **{("tsmap", k): "fermixr's TS map runs its kernels on one thread in one process; "
                     "it is fast enough without (a fraction of a second per ROI)"
       for k in ("multithread", "nthread")},
    ("tscube", "st_scan_level"): "it asks gttscube for Science Tools cross-check fits of "
                                 "the scans; fermixr has no Science Tools to run",
    **{("sourcefind", k): "find_sources' TS maps run on one thread in one process, as "
                          "tsmap's"
       for k in ("multithread", "nthread")},
    **{("plotting", k): _NO_PLOTTING
       for k in ("loge_bounds", "catalogs", "graticule_radii", "format", "cmap",
                 "cmap_resid", "figsize", "label_ts_threshold", "interactive")},
}

NOT_IMPLEMENTED: dict[tuple[str, str], str] = {
    ("gtlike", "convolve"): "source maps without PSF convolution (Fermipy's convolve: "
                            "false) are not implemented; fermixr always convolves with "
                            "the PSF",
    ("gtlike", "resample"): "diffuse maps taken without resampling onto the analysis grid "
                            "(Fermipy's resample: false) are not implemented; fermixr "
                            "always resamples",
    ("gtlike", "use_scaled_srcmap"): "source maps scaled from srcmap_base by an exposure "
                                     "ratio are not implemented; fermixr computes them",
    ("tscube", "remake_test_source"): "remaking the test source's map at every pixel is "
                                      "not implemented; fermixr makes it once per "
                                      "sub-pixel offset and shifts it",
    ("binning", "hpx_ebin"): "HEALPix maps without an energy axis are not implemented",
    ("extension", "psf_scale_fn"): "an energy-dependent rescaling of the PSF in the "
                                   "extension test is not implemented; leave it null",
}


def _mark_table() -> None:
    import dataclasses as _dc

    for (sec, key), why in NO_EFFECT.items():
        SECTIONS[sec][key] = _dc.replace(SECTIONS[sec][key], no_effect=why)
    for (sec, key), why in NOT_IMPLEMENTED.items():
        SECTIONS[sec][key] = _dc.replace(SECTIONS[sec][key], not_implemented=why)


_mark_table()

# Sections of steps not available yet (the steps refuse to run, so their options cannot
# act); the option-table test covers every other section.
PENDING_SECTIONS: tuple[str, ...] = ()

# Other spellings accepted for whole sections (warns, then renames).
SECTION_ALIASES: dict[str, str] = {"roiOpt": "roiopt"}

# Spellings accepted inside a section that are not deprecated, just the other Fermipy
# method's name for the same thing (warns with a plain RecipeWarning).
OPTION_ALIASES: dict[str, dict[str, str]] = {
    "sed": {"free_params": "free_pars"},
    "lightcurve": {"free_pars": "free_params"},
    "sourcefind": {"free_pars": "free_params"},
}

COMPONENT_KEYS = ("components",)

# --- steps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepSpec:
    """A step a recipe may name: its options section (whose options are its parameters),
    extra parameters of its own, which parameter a scalar shorthand (``sed: Crab``) sets,
    and which parameters are required."""

    name: str
    description: str
    section: str | None = None
    extras: dict[str, Option] = field(default_factory=dict)
    positional: str | None = None
    required: tuple[str, ...] = ()
    sub_sections: tuple[str, ...] = ()   # parameters that are a whole section's mapping
    test_source: bool = False            # 'model' defaults to a PowerLaw point source


def _name_opt(what: str) -> Option:
    return text(None, f"Name of the source {what}.")


_PREFIX = text("", "String prepended to the names of the output files.")
_PAR = text(None, "Parameter name.")
_BOUNDS = Option("array", None, "[min, max] (scaled); a null bound is unbounded.",
                 items=_NUM_OR_NULL_ITEMS, min_items=2, max_items=2)


def _src_step(name: str, description: str, required: tuple[str, ...] = (),
              **extras: Option) -> StepSpec:
    """A step acting on one source: ``name`` first (the string shorthand), then its own
    parameters."""
    return StepSpec(name, description, extras={"name": text(None, "Name of the source."),
                                               **extras},
                    positional="name", required=("name",) + tuple(required))


def _selection_opts(exclude_desc: str) -> dict[str, Option]:
    """get_sources' selection options (free_sources, delete_sources, get_sources)."""
    return {
        "cuts": Option(("object", "array"), None, "Cuts on source properties: {key: [min, "
                       "max]} or a list of [key, min, max]; keys of the source dictionary "
                       "(ts, npred, offset, flux ...) or of the catalog row."),
        "distance": num(None, "Only sources within this distance of skydir.", unit="deg",
                        minimum=0),
        "skydir": numbers(None, "Centre [ra, dec] of the distance selection; null: the ROI "
                                "centre.", unit="deg", min_items=2, max_items=2),
        "square": flag(False, "Square selection |x|, |y| <= distance in the AIT projection "
                              "of the binning frame, instead of a circle."),
        "minmax_ts": Option("array", None, "Only sources with TS in [min, max].",
                            items=_NUM_OR_NULL_ITEMS, min_items=2, max_items=2),
        "minmax_npred": Option("array", None, "Only sources with npred in [min, max].",
                               items=_NUM_OR_NULL_ITEMS, min_items=2, max_items=2),
        "exclude": strings(None, exclude_desc),
    }

STEPS: dict[str, StepSpec] = {
    # data preparation
    "events": StepSpec("events", "Select events (gtselect and gtmktime)."),
    "gti": StepSpec("gti", "Good time intervals of the selection."),
    "counts": StepSpec("counts", "Bin the selected events into the counts cube (gtbin)."),
    "ltcube": StepSpec("ltcube", "Livetime cube (gtltcube).", section="ltcube"),
    "exposure": StepSpec("exposure", "Binned exposure cube (gtexpcube2)."),
    "psf": StepSpec("psf", "Exposure-weighted PSF at the ROI centre (gtpsf)."),
    "drm": StepSpec("drm", "Energy-dispersion response matrix at the ROI centre (gtdrm)."),
    "srcmaps": StepSpec("srcmaps", "Source maps of every model component (gtsrcmaps)."),
    # analysis
    "setup": StepSpec("setup", "Prepare every product the likelihood needs (Fermipy's "
                               "setup).",
                      extras={"init_sources": flag(True, "Build the sky model's sources."),
                              "overwrite": flag(False, "Recompute products that exist.")}),
    "optimize": StepSpec("optimize", "Optimise the ROI model in passes.", section="roiopt"),
    "fit": StepSpec("fit", "Maximise the likelihood over the free parameters.",
                    section="optimizer",
                    extras={"update": flag(True, "Adopt the fitted parameters.")}),
    "sed": StepSpec("sed", "Spectral energy distribution of a source.", section="sed",
                    extras={"name": _name_opt("whose SED is computed"),
                            "prefix": _PREFIX,
                            "outfile": text(None, "Output file name; null derives it from "
                                                  "prefix and name."),
                            "loge_bins": numbers(None, "SED bin edges, log10(E/MeV); they "
                                                       "must be analysis bin edges.  null: "
                                                       "the analysis bins.",
                                                 unit="log10(MeV)"),
                            "optimizer": mapping(None, "Optimizer options for this step.")},
                    positional="name", required=("name",), sub_sections=("optimizer",)),
    "tsmap": StepSpec("tsmap", "Test-statistic map of a test source.", section="tsmap",
                      extras={"prefix": _PREFIX,
                              "map_skydir": numbers(None, "Map centre [lon, lat] in the "
                                                          "binning frame; null: the ROI "
                                                          "centre.", unit="deg",
                                                    min_items=2, max_items=2),
                              "map_size": num(1.0, "Width of the map when map_skydir is "
                                                   "given.", unit="deg", exclusive_minimum=0),
                              "threshold": num(1e-2, "Fractional kernel threshold below "
                                                     "which pixels are skipped.", minimum=0),
                              "outfile": text(None, "Output file name.")},
                      positional="prefix", test_source=True),
    "tscube": StepSpec("tscube", "Test-statistic cube of a test source.", section="tscube",
                       extras={"prefix": _PREFIX}, positional="prefix", test_source=True),
    "residmap": StepSpec("residmap", "Residual significance map.", section="residmap",
                         extras={"prefix": _PREFIX}, positional="prefix", test_source=True),
    "find_sources": StepSpec(
        "find_sources", "Add new point sources at significant TS-map peaks.",
        section="sourcefind",
        extras={"search_skydir": numbers(None, "Centre [ra, dec] of the search region; null: "
                                               "the ROI centre.", unit="deg",
                                         min_items=2, max_items=2),
                "search_minmax_radius": Option("array", [None, 1.0],
                                               "Inner and outer radius of the search region "
                                               "(null inner: 0).", unit="deg",
                                               items=_NUM_OR_NULL_ITEMS, min_items=2,
                                               max_items=2),
                "tsmap": mapping(None, "tsmap options for the TS maps made."),
                "tscube": mapping(None, "tscube options for the TS cubes made.")},
        sub_sections=("tsmap", "tscube"), test_source=True),
    "localize": StepSpec("localize", "Fit the position of a source.", section="localize",
                         extras={"name": _name_opt("to localise"), "prefix": _PREFIX,
                                 "optimizer": mapping(None, "Optimizer options for this "
                                                            "step.")},
                         positional="name", required=("name",), sub_sections=("optimizer",)),
    "extension": StepSpec("extension", "Test a source for spatial extension.",
                          section="extension",
                          extras={"name": _name_opt("to test"), "prefix": _PREFIX,
                                  "outfile": text(None, "Output file name."),
                                  "optimizer": mapping(None, "Optimizer options for this "
                                                             "step.")},
                          positional="name", required=("name",),
                          sub_sections=("optimizer",)),
    "curvature": StepSpec("curvature", "Test a source's spectrum for curvature: PowerLaw "
                                       "against LogParabola and PLSuperExpCutoff4 (a "
                                       "'curvature' product).",
                          extras={"name": _name_opt("to test"),
                                  "optimizer": mapping(None, "Optimizer options for this "
                                                             "step.")},
                          positional="name", required=("name",),
                          sub_sections=("optimizer",)),
    "weighted_lightcurve": StepSpec(
        "weighted_lightcurve", "Weighted-photon light curve of a source (Kerr 2019, as "
                               "wtlike) from the fitted model: photon weights from the model "
                               "cubes, cell exposure from the FT2 rows (a 'wtlike' product).",
        extras={"name": _name_opt("whose light curve is computed"),
                "binsz": num(86400.0, "Cell width.", unit="s", exclusive_minimum=0),
                "nbins": integer(None, "Number of equal cells; wins over binsz.", minimum=1),
                "time_bins": numbers(None, "Explicit cell edges (MET); win over binsz and "
                                           "nbins.", unit="s"),
                "interpolate": flag(True, "Interpolate the model's source fraction at each "
                                          "photon (log energy, position); false: the "
                                          "photon's bin and pixel."),
                "blocks": flag(False, "Also the Bayesian-blocks partition of the cells."),
                "bayesian_blocks_prior": num(None, "Prior ncp_prior of the blocks; null: "
                                                   "Scargle et al. (2013) eq. 21 at p0.",
                                             minimum=0),
                "p0": num(0.05, "False-positive rate per change point of the default "
                                "prior.", exclusive_minimum=0, maximum=1),
                "psf_containment": flag(True, "The cells' expected counts follow the PSF's "
                                              "containment in the ROI at each inclination."),
                "write_fits": flag(True, "Write <prefix>_<name>_wtlike.fits."),
                "make_plots": flag(False, "Write <prefix>_<name>_wtlike.png."),
                "prefix": _PREFIX},
        positional="name", required=("name",)),
    "lightcurve": StepSpec("lightcurve", "Light curve of a source.", section="lightcurve",
                           extras={"name": _name_opt("whose light curve is computed"),
                                   "prefix": _PREFIX,
                                   "optimizer": mapping(None, "Optimizer options for this "
                                                              "step.")},
                           positional="name", required=("name",),
                           sub_sections=("optimizer",)),
    "free_sources": StepSpec(
        "free_sources", "Free (or fix) the parameters of the sources passing a selection.",
        extras={"free": flag(True, "Free (true) or fix (false)."),
                "pars": Option(("string", "array"), None, "Parameters: null (all but the "
                               "reference energies), 'norm', 'shape' or a list of names.",
                               items=_STR_ITEMS),
                **_selection_opts("Sources left alone.")}),
    "delete_sources": StepSpec(
        "delete_sources", "Delete every source passing a selection (all of them without "
                          "one, as Fermipy does).",
        extras={**_selection_opts("Sources kept."),
                "names": strings(None, "Only these sources are considered.")}),
    "get_sources": StepSpec(
        "get_sources", "Source dictionaries of the sources passing a selection (an 'roi' "
                       "product).", extras=_selection_opts("Sources left out.")),
    "free_source": StepSpec(
        "free_source", "Free (or fix) the parameters of one source.",
        extras={"name": _name_opt("to free or fix"), "free": flag(True, "Free or fix."),
                "pars": Option(("string", "array"), None, "Parameters: null, 'norm', 'shape' "
                               "or a list of names.", items=_STR_ITEMS)},
        positional="name", required=("name",)),
    # the other Analysis methods
    "free_norm": _src_step("free_norm", "Free (or fix) a source's normalisation.",
                           free=flag(True, "Free or fix.")),
    "free_index": _src_step("free_index", "Free (or fix) a source's spectral index.",
                            free=flag(True, "Free or fix.")),
    "free_shape": _src_step("free_shape", "Free (or fix) a source's shape parameters.",
                            free=flag(True, "Free or fix.")),
    "free_parameter": _src_step("free_parameter", "Free (or fix) one parameter.",
                                required=("par",), par=_PAR, free=flag(True, "Free or fix.")),
    "set_norm": _src_step("set_norm", "Set a source's normalisation (scaled value).",
                          required=("value",), value=num(None, "New value.")),
    "set_parameter": _src_step(
        "set_parameter", "Set a parameter's value (and optionally scale, bounds, error).",
        required=("par", "value"), par=_PAR, value=num(None, "New value."),
        true_value=flag(True, "value is the physical value (else the scaled one)."),
        scale=num(None, "New scale."), bounds=_BOUNDS, error=num(None, "Error (scaled).")),
    "set_parameter_bounds": _src_step("set_parameter_bounds", "Set a parameter's bounds.",
                                      required=("par", "bounds"), par=_PAR, bounds=_BOUNDS),
    "set_source_spectrum": _src_step(
        "set_source_spectrum", "Give a source another spectral model.",
        spectrum_type=text("PowerLaw", "Spectral model (PowerLaw, LogParabola ...)."),
        spectrum_pars=mapping(None, "Parameter values or dicts; others at the model's "
                                    "defaults.")),
    "set_source_morphology": _src_step(
        "set_source_morphology", "Change a source's spatial model or its parameters "
                                 "(RA, DEC, Sigma, Radius ...).",
        spatial_model=text(None, "New spatial model; null keeps it."),
        spatial_pars=mapping(None, "Spatial parameter values (physical).")),
    "add_source": _src_step("add_source", "Add a source from a Fermipy source dictionary.",
                            required=("src_dict",),
                            src_dict=mapping(None, "ra/dec or glon/glat, SpectrumType, "
                                                   "SpatialModel and parameters."),
                            free=flag(None, "Free (true) or fix (false) its parameters; "
                                            "null: as the dictionary says.")),
    "delete_source": _src_step("delete_source", "Delete one source."),
    "zero_source": _src_step("zero_source", "Set a source's normalisation to zero "
                                            "(unzero_source restores it)."),
    "unzero_source": _src_step("unzero_source", "Restore a zeroed source's normalisation."),
    "add_gauss_prior": _src_step("add_gauss_prior", "A Gaussian prior on a free parameter "
                                                    "(scaled units).",
                                 required=("parName", "mean", "sigma"), parName=_PAR,
                                 mean=num(None, "Mean (scaled)."),
                                 sigma=num(None, "Width (scaled).", exclusive_minimum=0)),
    "remove_prior": _src_step("remove_prior", "Remove the prior of a parameter.",
                              required=("parName",), parName=_PAR),
    "remove_priors": StepSpec("remove_priors", "Remove every prior."),
    "constrain_norms": StepSpec(
        "constrain_norms", "Gaussian priors on normalisations at their values, of width "
                           "cov_scale x their errors.",
        extras={"srcNames": strings(None, "Sources whose norms are constrained."),
                "cov_scale": num(1.0, "Width of the priors in units of the errors.",
                                 exclusive_minimum=0)},
        positional="srcNames", required=("srcNames",)),
    "load_roi": StepSpec("load_roi", "Restore the model from a write_roi file (.npy).",
                         extras={"infile": text(None, "The .npy file (or its prefix).",
                                                path=True)},
                         positional="infile", required=("infile",)),
    "generate_model": StepSpec(
        "generate_model", "Replace the counts by a Poisson realisation of the model (of one "
                          "source with model_name).",
        extras={"model_name": text(None, "Simulate only this source."),
                "seed": integer(None, "Random seed; null: mc.seed, else one derived from "
                                      "the step's key (reproducible).", minimum=0)}),
    "write_xml": StepSpec("write_xml", "Write the model as a Science Tools XML file.",
                          extras={"xmlfile": text(None, "File name (in the run directory "
                                                        "when relative).")},
                          positional="xmlfile", required=("xmlfile",)),
    "print_roi": StepSpec("print_roi", "Print the sources of the model with their offset, "
                                      "TS and npred."),
    "print_params": StepSpec("print_params", "Print the spectral parameters.",
                             extras={"allpars": flag(False, "All parameters (else only the "
                                                            "free ones).")}),
    "get_src_model": _src_step("get_src_model", "The source dictionary of one source (an "
                                                "'roi' product with one row)."),
    "get_params": StepSpec("get_params", "The spectral parameters as a table (a 'params' "
                                         "product).",
                           extras={"freeonly": flag(False, "Only the free parameters.")}),
    "profile": _src_step("profile", "Likelihood profile of one parameter (a 'profile' "
                                    "product).",
                         required=("parName",), parName=_PAR,
                         xvals=numbers(None, "Values (scaled); null: npts values around "
                                             "the current value."),
                         npts=integer(None, "Number of values when xvals is null; null: "
                                            "gtlike.llscan_npts.", minimum=2),
                         reoptimize=flag(False, "Refit the other free parameters at each "
                                                "value.")),
    "profile_norm": _src_step("profile_norm", "Likelihood profile of a source's "
                                              "normalisation (a 'profile' product).",
                              xvals=numbers(None, "Values (scaled); null: from 0 to well "
                                                  "past the best value."),
                              npts=integer(None, "Number of values when xvals is null.",
                                           minimum=2),
                              reoptimize=flag(False, "Refit the other free parameters at "
                                                     "each value.")),
    "bowtie": _src_step("bowtie", "The spectrum with its 1-sigma band (a 'bowtie' product).",
                        loge=numbers(None, "log10(E/MeV) of the points; null: npts over the "
                                           "analysis range.", unit="log10(MeV)"),
                        npts=integer(50, "Number of points.", minimum=2)),
    "model_counts_map": StepSpec("model_counts_map", "Model counts cube of the model or of "
                                                     "one source (a 'model_counts' product).",
                                 extras={"name": text(None, "Only this source.")},
                                 positional="name"),
    "counts_map": StepSpec("counts_map", "Counts cube summed over components (a "
                                         "'counts' product)."),
    "write_roi": StepSpec("write_roi", "Write the ROI model and results (.npy, .fits, XML "
                                       "per component).",
                          extras={"outfile": text(None, "Base name of the files written; "
                                                        "null lets fermixr choose."),
                                  "make_plots": flag(False, "Also draw the counts spectrum "
                                                            "and the counts / model / "
                                                            "residual maps of each "
                                                            "component (PNG)."),
                                  "save_model_map": flag(False, "Also write the model counts "
                                                                "cube of each component "
                                                                "(<outfile>_mcube_NN.fits).")},
                          positional="outfile"),
}

STEP_NAMES: tuple[str, ...] = tuple(STEPS)
DATA_STEPS: tuple[str, ...] = ("events", "gti", "counts", "ltcube", "exposure", "psf",
                                "drm", "srcmaps")
DEFAULT_STEPS: tuple[str, ...] = ("setup",)

TEST_SOURCE_DEFAULTS = {"SpatialModel": "PointSource", "SpectrumType": "PowerLaw",
                        "Index": 2.0}


def step_options(name: str) -> dict[str, Option]:
    """Every parameter a step accepts: its section's options, then its extras."""
    spec = STEPS[name]
    out: dict[str, Option] = {}
    if spec.section:
        out.update(SECTIONS[spec.section])
    out.update(spec.extras)
    return out


# --- accessors -------------------------------------------------------------------------


def section_names() -> list[str]:
    return list(SECTIONS)


def get_option(section: str, key: str) -> Option:
    return SECTIONS[section][key]


def bounds(section: str, key: str) -> dict:
    """The numeric bounds of an option as JSON Schema keywords (``minimum``,
    ``exclusiveMinimum``, ``maximum``), for checks outside the schema that must agree with
    it."""
    o = SECTIONS[section][key]
    return {k: v for k, v in (("minimum", o.minimum), ("exclusiveMinimum", o.exclusive_minimum),
                              ("maximum", o.maximum)) if v is not None}


def check_value(section: str, key: str, value, where: str | None = None) -> None:
    """Raise :class:`~fermixr.errors.RecipeError` when ``value`` is outside the table's
    bounds of ``section.key`` (or not finite): the one place such checks come from."""
    import math

    from ..errors import RecipeError

    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    b = bounds(section, key)
    ok = math.isfinite(value)
    ok = ok and ("minimum" not in b or value >= b["minimum"])
    ok = ok and ("exclusiveMinimum" not in b or value > b["exclusiveMinimum"])
    ok = ok and ("maximum" not in b or value <= b["maximum"])
    if not ok:
        words = [f">= {b['minimum']}" if "minimum" in b else None,
                 f"> {b['exclusiveMinimum']}" if "exclusiveMinimum" in b else None,
                 f"<= {b['maximum']}" if "maximum" in b else None]
        want = " and ".join(w for w in words if w) or "finite"
        raise RecipeError(f"{where or f'{section}.{key}'}: got {value!r}; expected a finite "
                          f"number {want}".rstrip())


def default_config() -> dict:
    """Every section with every option at its default (aliases left out; derived options
    ``None``)."""
    import copy

    return {sec: {k: copy.deepcopy(o.default) for k, o in opts.items() if not o.alias_of}
            for sec, opts in SECTIONS.items()}


# --- JSON Schema -------------------------------------------------------------------------


def _section_schema(name: str) -> dict:
    return {
        "type": "object",
        "description": SECTION_DESCRIPTIONS[name],
        "properties": {k: o.schema() for k, o in SECTIONS[name].items()},
    }


def _partial_config_schema(description: str) -> dict:
    return {
        "type": "object",
        "description": description,
        "properties": {s: {"$ref": f"#/$defs/section_{s}"} for s in SECTIONS},
    }


def _step_params_schema(spec: StepSpec) -> dict:
    props: dict[str, Any] = {}
    if spec.section:
        for k in SECTIONS[spec.section]:
            props[k] = {"$ref": f"#/$defs/section_{spec.section}/properties/{k}"}
    for k, o in spec.extras.items():
        if k in spec.sub_sections:
            sch = {"anyOf": [{"$ref": f"#/$defs/section_{k}"}, {"type": "null"}],
                   "default": None, "description": o.description}
        else:
            sch = o.schema()
        props[k] = sch
    s: dict[str, Any] = {"type": "object", "description": spec.description,
                         "properties": props}
    if spec.required:
        s["required"] = list(spec.required)
    return s


def _step_item_schema() -> dict:
    forms: list[dict] = [{
        "type": "string",
        "enum": [n for n, sp in STEPS.items() if not sp.required],
        "description": "A step name, run with its section's options (steps that need a "
                       "source name take the mapping form).",
    }]
    for name, spec in STEPS.items():
        value: list[dict] = [{"$ref": f"#/$defs/step_{name}"}]
        if not spec.required:
            value.append({"type": "null"})
        if spec.positional:
            value.append({"type": "string",
                          "description": f"Shorthand for {{{spec.positional}: ...}}."})
        forms.append({
            "type": "object",
            "description": f"{name} with parameters.",
            "properties": {name: {"anyOf": value} if len(value) > 1 else value[0]},
            "required": [name],
            "additionalProperties": False,
        })
    return {"oneOf": forms}


def recipe_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a recipe, generated from the table."""
    defs: dict[str, Any] = {}
    for s in SECTIONS:
        defs[f"section_{s}"] = _section_schema(s)
    for name, spec in STEPS.items():
        defs[f"step_{name}"] = _step_params_schema(spec)
    props: dict[str, Any] = {s: {"$ref": f"#/$defs/section_{s}"} for s in SECTIONS}
    for alias, target in SECTION_ALIASES.items():
        props[alias] = {"$ref": f"#/$defs/section_{target}", "deprecated": True,
                        "description": f"Old spelling of '{target}', accepted and renamed."}
    props["components"] = {
        "type": ["array", "null"],
        "default": None,
        "description": "Analysis components (e.g. one per event type).  Each item is a "
                       "partial configuration merged over the top level: a component "
                       "inherits every top-level section and overrides the keys it gives.  "
                       "null or absent: one component, the top level.",
        "items": _partial_config_schema("Options of one component, overriding the top "
                                        "level."),
    }
    props["steps"] = {
        "type": "array",
        "default": list(DEFAULT_STEPS),
        "description": "What to run, in order.  Each item is a step name or a one-key "
                       "mapping from the step name to its parameters, which override the "
                       "step's section for that step only.  Absent: [setup] (a plain "
                       "Fermipy configuration).",
        "items": _step_item_schema(),
    }
    return {
        "$schema": SCHEMA_DRAFT,
        "$id": SCHEMA_ID,
        "title": "fermixr recipe",
        "description": "A Fermipy 0.16 configuration (same sections, option names and "
                       "defaults) plus fermixr's additions and a list of steps.  Units are "
                       "given by x-unit; x-derived tells how a null default is filled; "
                       "x-fermixr marks options Fermipy does not have.",
        "type": "object",
        "properties": props,
        "$defs": defs,
    }


def schema_json() -> str:
    return json.dumps(recipe_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    sys.stdout.write(schema_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
