"""Options resolved once: typed, frozen section objects made from the option table.

A recipe's configuration is validated, defaulted and derived exactly once, by
:func:`fermixr.engine.recipe.load_recipe` (:func:`~fermixr.engine.recipe.resolve_config`
fills the ``derived`` column of the table: npix, radius, emin/logemin, ra/dec from
glon/glat, ltcube.zmax ...).  This module turns each resolved component configuration into
a :class:`Resolved` object whose attributes are the sections, each a frozen dataclass
generated from :data:`fermixr.engine.options.SECTIONS`::

    rec = load_recipe("recipe.yaml")
    opts = rec.options[0]              # component 0 (the top level when there is none)
    opts.selection.zmax                # float or None (no cut)
    opts.ltcube.zmax                   # float, always set (derived)
    opts.optimizer.retries             # int >= 1
    opts.gtlike.edisp                  # bool

Consumers read attributes and never supply defaults of their own: the table is the only
home of defaults and bounds.  Lists are tuples and mappings read-only
(:class:`types.MappingProxyType`), so a section cannot be changed in place;
:meth:`replace` returns a new one (``opts.optimizer.replace(optimizer="NEWTON")``) and
``to_dict()`` gives plain data back.

Which code reads which option is declared in :data:`READS` (see there); a test walks the
table and fails on an option that is neither read by a declared consumer nor marked
``no_effect`` in the table.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import RecipeError
from . import options as O

__all__ = ["Resolved", "SECTION_TYPES", "resolve", "section_type", "READS", "Reads",
           "freeze", "thaw"]


def freeze(v):
    """Immutable form of plain option data: lists -> tuples, dicts -> read-only mappings."""
    if isinstance(v, Mapping):
        return MappingProxyType({k: freeze(x) for k, x in v.items()})
    if isinstance(v, (list, tuple)):
        return tuple(freeze(x) for x in v)
    return v


def thaw(v):
    """Plain data (lists and dicts) from :func:`freeze`'s output."""
    if isinstance(v, Mapping):
        return {k: thaw(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return [thaw(x) for x in v]
    return v


def _section_to_dict(self) -> dict:
    """The section as plain data (lists and dicts), e.g. for functions taking Fermipy's
    mapping form."""
    return {f.name: thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _section_replace(self, **changes):
    """A copy with some options changed (values are frozen; names are checked)."""
    bad = [k for k in changes if k not in self.__dataclass_fields__]
    if bad:
        raise RecipeError(f"{self.section}: no option {', '.join(map(repr, bad))}; options: "
                          f"{', '.join(self.__dataclass_fields__)}")
    return dataclasses.replace(self, **{k: freeze(v) for k, v in changes.items()})


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_")) + "Options"


def _make_section_type(sec: str) -> type:
    fields = []
    for key, opt in O.SECTIONS[sec].items():
        if opt.alias_of:
            continue
        fields.append((key, Any, dataclasses.field(default=freeze(opt.default))))
    ns = {"section": sec, "to_dict": _section_to_dict, "replace": _section_replace,
          "__doc__": f"Resolved options of section {sec!r}: {O.SECTION_DESCRIPTIONS[sec]}"}
    ns["__module__"] = __name__
    return dataclasses.make_dataclass(_camel(sec), fields, frozen=True, namespace=ns)


SECTION_TYPES: dict[str, type] = {sec: _make_section_type(sec) for sec in O.SECTIONS}
for _t in SECTION_TYPES.values():
    globals()[_t.__name__] = _t


def section_type(name: str) -> type:
    return SECTION_TYPES[name]


def _resolved_to_dict(self) -> dict:
    """Every section as plain data (the resolved configuration)."""
    return {sec: getattr(self, sec).to_dict() for sec in SECTION_TYPES}


Resolved = dataclasses.make_dataclass(
    "Resolved",
    [(sec, t, dataclasses.field(default_factory=t)) for sec, t in SECTION_TYPES.items()],
    frozen=True,
    namespace={"to_dict": _resolved_to_dict,
               "__module__": __name__,
               "__doc__": "One component's resolved options: one frozen section object per "
                          "section of the option table (``opts.selection.zmax``)."},
)


def make_section(sec: str, body: Mapping, where: str = "") -> Any:
    """The section object of ``sec`` from a mapping of resolved values (options not given
    take the table's default)."""
    t = SECTION_TYPES[sec]
    unknown = [k for k in body if k not in t.__dataclass_fields__]
    if unknown:
        raise RecipeError(f"{where or sec}: unknown option(s) {', '.join(map(repr, unknown))}; "
                          f"options: {', '.join(t.__dataclass_fields__)}")
    return t(**{k: freeze(v) for k, v in body.items()})


def resolve(config: Mapping) -> Any:
    """:class:`Resolved` options from one resolved component configuration (an item of
    ``Recipe.components``; a ``Recipe`` gives them as ``recipe.options``).  Defaults and
    derived options are not filled here: :func:`fermixr.engine.recipe.load_recipe` filled
    them once."""
    if isinstance(config, Resolved):
        return config
    return Resolved(**{sec: make_section(sec, config.get(sec) or {}, sec)
                       for sec in SECTION_TYPES})


# ---------------------------------------------------------------------------------------
# who reads what
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Reads:
    """The options one consumer reads.

    ``module``: the module that reads them, or a tuple of modules when the consumer hands
    a whole section to a function elsewhere (a test checks that each option's name appears
    in the source of one of them as an attribute or a key); ``keyed``: the consumer is a planned data step
    whose cache key must change with each of these options (and with no other option) --
    a test plans a recipe, changes each option of the table in turn and compares keys.
    """

    module: str | tuple[str, ...]
    options: tuple[str, ...]
    keyed: bool = False


_PLAN = "fermixr.engine.plan"
# plan hands the binning section to geom_from_config and the model section to
# build_sky_model
_PLAN_GEOM = (_PLAN, "fermixr.geom.coords", "fermixr.geom.wcs", "fermixr.geom.hpx")
_PLAN_MODEL = _PLAN_GEOM + ("fermixr.model.build",)

# consumer -> what it reads.  Data steps (keyed) list what enters their own parameters;
# a step's key also follows its inputs' keys (the test walks the task graph).  The
# analysis code (optimizer, roiopt, gtlike likelihood options) is declared under the
# module that reads it today; when that code moves, move its entry with it.
READS: dict[str, Reads] = {
    # --- the recipe machinery -------------------------------------------------------
    "run": Reads("fermixr.engine.run", ("fileio.outdir", "fileio.cachedir")),
    "many": Reads("fermixr.engine.many", (
        "targets.names", "targets.catalog", "targets.where", "targets.max")),
    "cluster": Reads("fermixr.engine.cluster", (
        "cluster.cores", "cluster.processes", "cluster.memory", "cluster.walltime",
        "cluster.queue", "cluster.account", "cluster.job_extra", "cluster.jobs")),
    "recipe.resolve": Reads("fermixr.engine.recipe", (
        "data.caldb", "binning.roiwidth", "binning.npix", "binning.binsz",
        "binning.binsperdec", "selection.logemin", "selection.logemax", "selection.glon",
        "selection.glat", "selection.emin", "selection.emax", "selection.zmax",
        "ltcube.zmax")),
    # the CALDB folder locates the IRF files; their content, not the folder, is in the keys
    "plan.irf": Reads(_PLAN, ("data.caldb",)),
    # --- planned data steps (their parameters are their keys) ------------------------
    "gti": Reads(_PLAN, (
        "data.evfile", "data.scfile", "selection.tmin", "selection.tmax", "selection.filter",
        "selection.roicut", "selection.zmax", "selection.ra", "selection.dec",
        "selection.radius", "selection.target", "selection.trim_to_ft2", "data.ltcube"),
        keyed=True),
    "events": Reads(_PLAN, (
        "data.evfile", "selection.emin", "selection.emax", "selection.tmin",
        "selection.tmax", "selection.ra", "selection.dec", "selection.radius",
        "selection.zmax", "selection.evclass", "selection.evtype", "selection.convtype",
        "selection.phasemin", "selection.phasemax"), keyed=True),
    "counts": Reads(_PLAN_GEOM, (
        "binning.projtype", "binning.proj", "binning.coordsys", "binning.npix",
        "binning.binsz", "binning.roiwidth", "binning.hpx_order",
        "binning.hpx_ordering_scheme", "binning.binsperdec", "binning.enumbins",
        "selection.emin", "selection.emax", "selection.ra", "selection.dec"), keyed=True),
    "ltcube": Reads(_PLAN, (
        "data.scfile", "data.ltcube", "ltcube.zmax", "ltcube.binsz", "ltcube.dcostheta",
        "ltcube.phibins"), keyed=True),
    "exposure": Reads(_PLAN_GEOM, (
        "binning.projtype", "binning.proj", "binning.coordsys", "binning.npix",
        "binning.binsz", "binning.roiwidth", "binning.hpx_order",
        "binning.hpx_ordering_scheme", "binning.binsperdec", "binning.enumbins",
        "selection.emin", "selection.emax", "selection.ra", "selection.dec",
        "selection.evtype", "gtlike.irfs", "gtlike.bexpmap"), keyed=True),
    "psf": Reads(_PLAN, (
        "selection.ra", "selection.dec", "selection.emin", "selection.emax",
        "binning.binsperdec", "binning.enumbins", "selection.evtype", "gtlike.irfs"),
        keyed=True),
    "drm": Reads(_PLAN, (
        "selection.ra", "selection.dec", "selection.emin", "selection.emax",
        "binning.binsperdec", "binning.enumbins", "selection.evtype", "gtlike.irfs",
        "gtlike.edisp", "gtlike.edisp_bins"), keyed=True),
    "srcmap": Reads(_PLAN_MODEL, (
        "binning.projtype", "binning.proj", "binning.coordsys", "binning.npix",
        "binning.binsz", "binning.roiwidth", "binning.hpx_order",
        "binning.hpx_ordering_scheme", "binning.binsperdec", "binning.enumbins",
        "selection.emin", "selection.emax", "selection.ra", "selection.dec",
        "selection.evtype", "gtlike.irfs", "gtlike.edisp", "gtlike.edisp_bins",
        "gtlike.rfactor", "gtlike.srcmap",
        "model.src_radius", "model.src_roiwidth", "model.src_radius_roi", "model.isodiff",
        "model.galdiff", "model.limbdiff", "model.diffuse", "model.sources", "model.extdir",
        "model.diffuse_dir", "model.catalogs", "model.merge_sources",
        "model.assoc_xmatch_columns"), keyed=True),
    # --- the analysis: its steps' keys hold these values (analysis_steps.analysis_inputs)
    "analysis": Reads(("fermixr.engine.analysis_steps", "fermixr.engine.state"), (
        "optimizer.optimizer", "optimizer.tol", "optimizer.max_iter", "optimizer.retries",
        "optimizer.min_fit_quality", "optimizer.init_lambda", "optimizer.verbosity",
        "roiopt.npred_threshold", "roiopt.npred_frac", "roiopt.shape_ts_threshold",
        "roiopt.max_free_sources", "roiopt.skip",
        "gtlike.wmap", "gtlike.expscale", "gtlike.src_expscale", "gtlike.edisp_disable",
        "gtlike.llscan_npts", "gtlike.edisp", "binning.coordsys", "mc.seed")),
    # result steps reading their own section (its values enter the step's key)
    "residmap": Reads("fermixr.engine.analysis_steps", (
        "residmap.model", "residmap.exclude", "residmap.loge_bounds", "residmap.use_weights",
        "residmap.make_plots", "residmap.write_fits", "residmap.write_npy")),
    # the tsmap step: in its own key only (analysis_steps._section_inputs)
    "tsmap": Reads(("fermixr.engine.analysis_steps", "fermixr.engine.tsmap_output"), (
        "tsmap.model", "tsmap.exclude", "tsmap.max_kernel_radius", "tsmap.loge_bounds",
        "tsmap.flux_ul", "tsmap.sum_over_energy", "tsmap.make_plots", "tsmap.write_fits", "tsmap.write_npy")),
    # the sed step: in its own key only (analysis_steps._section_inputs)
    "sed": Reads(("fermixr.engine.analysis_steps", "fermixr.engine.sed_output"), (
        "sed.bin_index", "sed.use_local_index", "sed.free_background", "sed.free_radius",
        "sed.free_pars", "sed.ul_confidence", "sed.cov_scale", "sed.make_plots",
        "sed.write_fits", "sed.write_npy")),
    # the tscube step: in its own key only (analysis_steps._section_inputs)
    "tscube": Reads(("fermixr.engine.analysis_steps", "fermixr.engine.tscube_output"), (
        "tscube.model", "tscube.do_sed", "tscube.nnorm", "tscube.norm_sigma",
        "tscube.cov_scale_bb", "tscube.cov_scale", "tscube.tol", "tscube.max_iter",
        "tscube.tol_type", "tscube.init_lambda", "tscube.make_plots", "tscube.write_fits",
        "tscube.write_npy")),
    # the lightcurve step: in its own key only; the bins' fits take the values in their
    # task parameters (engine.lightcurve.plan_curve)
    "lightcurve": Reads("fermixr.engine.lightcurve", (
        "lightcurve.binsz", "lightcurve.nbins", "lightcurve.time_bins",
        "lightcurve.free_background", "lightcurve.free_radius", "lightcurve.free_sources",
        "lightcurve.free_params", "lightcurve.max_free_sources",
        "lightcurve.shape_ts_threshold", "lightcurve.systematic", "lightcurve.outdir",
        "lightcurve.make_plots", "lightcurve.write_fits", "lightcurve.write_npy",
        "lightcurve.use_scaled_srcmap")),
    # the localize and find_sources steps: in their own keys only
    "localize": Reads(("fermixr.engine.analysis_steps", "fermixr.engine.localize_output"), (
        "localize.nstep", "localize.dtheta_max", "localize.free_background",
        "localize.free_radius", "localize.fix_shape", "localize.update",
        "localize.make_plots", "localize.write_fits", "localize.write_npy")),
    "find_sources": Reads(("fermixr.engine.analysis_steps",
                           "fermixr.engine.localize_output"), (
        "sourcefind.model", "sourcefind.min_separation", "sourcefind.sqrt_ts_threshold",
        "sourcefind.max_iter", "sourcefind.sources_per_iter", "sourcefind.tsmap_fitter",
        "sourcefind.free_params")),
    # the extension step: in its own key only
    "extension": Reads(("fermixr.engine.analysis_steps", "fermixr.engine.extension_output"), (
        "extension.spatial_model", "extension.width", "extension.fit_position",
        "extension.width_min", "extension.width_max", "extension.width_nstep",
        "extension.free_background", "extension.free_radius", "extension.fix_shape",
        "extension.fit_ebin", "extension.update", "extension.save_model_map",
        "extension.sqrt_ts_threshold", "extension.make_tsmap", "extension.make_plots",
        "extension.write_fits", "extension.write_npy")),
}


def declared_reads(option: str) -> list[str]:
    """Consumers declaring that they read ``section.option``."""
    return [name for name, r in READS.items() if option in r.options]


def read_values(opts, consumer: str) -> dict:
    """``{"section.option": value}`` of every option ``consumer`` declares in
    :data:`READS`, from resolved options ``opts`` (plain data, ready for a cache key): a
    consumer whose parameters are not planned (an analysis step) puts this in its key so
    that a change of any option it reads makes a new product."""
    opts = resolve(opts)
    out = {}
    for name in READS[consumer].options:
        sec, key = name.split(".", 1)
        out[name] = thaw(getattr(getattr(opts, sec), key))
    return out
