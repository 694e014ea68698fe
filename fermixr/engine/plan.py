"""From a recipe to the list of tasks (products) that make it.

The recipe's ``steps`` name what the user wants (``setup``, or single data-preparation
products such as ``counts``); each expands, for every component, to the products it needs.
Parameters are resolved here, from the component's configuration, into exactly what the
product depends on, so cache keys see nothing else: the livetime cube's parameters are its
zenith cut and binning, never the event type, energies or the counts geometry, so components
and recipes that share data and GTIs share one livetime cube.
"""

from __future__ import annotations

import numpy as np

from ..errors import RecipeError
from .executor import Task
from .resolved import thaw

# what each user-level step needs, in dependency order
PREP_PRODUCTS = ("gti", "events", "counts", "ltcube", "exposure", "psf", "drm", "srcmaps")
_EXPANSION = {
    "setup": PREP_PRODUCTS,
    "srcmaps": ("gti", "ltcube", "drm", "srcmaps"),
    "drm": ("gti", "ltcube", "drm"),
    "gti": ("gti",),
    "events": ("gti", "events"),
    "counts": ("gti", "events", "counts"),
    "ltcube": ("gti", "ltcube"),
    "exposure": ("gti", "ltcube", "exposure"),
    "psf": ("gti", "ltcube", "psf"),
}
NOT_YET: tuple[str, ...] = ()


def plan_tasks(recipe) -> list[Task]:
    wanted: list[str] = []
    requested = {name for name, _ in recipe.steps}
    from .analysis_steps import ANALYSIS_STEPS

    for name, _params in recipe.steps:
        if name in ANALYSIS_STEPS:
            name = "setup"  # they act on the data products setup makes
        if name in NOT_YET:
            raise RecipeError(
                f"steps: {name!r} is not available in this version of fermixr yet; "
                f"available: {', '.join(sorted(_EXPANSION))}"
            )
        if name not in _EXPANSION:
            raise RecipeError(f"steps: unknown step {name!r}; known: {', '.join(sorted(_EXPANSION))}")
        for p in _EXPANSION[name]:
            if p not in wanted:
                wanted.append(p)
    wanted.sort(key=PREP_PRODUCTS.index)
    for k, (name, params) in enumerate(recipe.steps):
        if name == "lightcurve":      # its source and bins checked before any work
            from .lightcurve import check_step

            check_step(recipe, dict(params or {}), recipe.steps[:k])
    comps = recipe.options
    tasks: list[Task] = []
    for i, opts in enumerate(comps):
        sfx = f"/{i:02d}" if len(comps) > 1 else ""
        need = list(wanted)
        if (opts.gtlike.bexpmap and "ltcube" in need and "psf" not in need
                and "ltcube" not in requested):
            need.remove("ltcube")  # the given exposure cube replaces it
        tasks.extend(_prep_tasks(opts, need, sfx))
    return tasks


def _options(cfg):
    """Resolved options from a Resolved object or a resolved configuration mapping."""
    from .resolved import resolve

    return resolve(cfg)


def roi_center(cfg) -> tuple[float, float]:
    """(ra, dec) of the ROI centre (``selection.ra/dec``; the recipe derived them from
    glon/glat when those were given).  ``cfg``: resolved options or a resolved component
    configuration."""
    sel = _options(cfg).selection
    if sel.ra is not None and sel.dec is not None:
        return float(sel.ra), float(sel.dec)
    if sel.target:
        raise RecipeError(f"selection.target {sel.target!r} was not resolved to a position "
                          "(the recipe was not resolved); give selection.ra/dec or glon/glat")
    raise RecipeError("selection: the ROI centre is not set; give ra/dec, glon/glat or target")


def _files(spec, what: str):
    from ..io.filelist import resolve_files

    return [str(p) for p in resolve_files(thaw(spec), what=what)]


def _prep_tasks(opts, wanted, sfx) -> list[Task]:
    from ..geom import EnergyAxis, geom_from_config

    sel, data, lt, gtl = opts.selection, opts.data, opts.ltcube, opts.gtlike
    ra, dec = roi_center(opts)
    out: list[Task] = []
    need_events = any(w in wanted for w in ("events", "counts"))
    need_ft2 = "ltcube" in wanted and not data.ltcube
    evfiles = _files(data.evfile, "data.evfile")
    roi = {"ra": ra, "dec": dec, "radius": sel.radius}
    roicut = sel.roicut == "yes"

    if sel.filter:
        from ..select.filter import parse_filter

        try:
            parse_filter(sel.filter)  # a syntax error stops the run before any work
        except Exception as exc:
            raise type(exc)(f"selection.filter: {exc}") from None
    # the GTI step reads the FT2 for the filter and the ROI zenith cut, and to check that
    # its rows cover the GTIs whenever the livetime cube is made from it
    gti_files = {"evfile": evfiles}
    if sel.filter or roicut or need_ft2:
        gti_files["scfile"] = _files(data.scfile, "data.scfile")
    scfiles = _files(data.scfile, "data.scfile") if need_ft2 else None
    out.append(Task(
        f"gti{sfx}", "gti",
        {"tmin": sel.tmin, "tmax": sel.tmax, "filter": sel.filter,
         "roicut": roicut,
         "zmax": sel.zmax if roicut else None,
         "roi": roi if roicut else None,
         "trim_to_ft2": bool(sel.trim_to_ft2) if "scfile" in gti_files else None},
        files=gti_files,
    ))
    emin, emax = _energy_range(sel)
    axis = EnergyAxis.from_bounds(emin, emax, binsperdec=opts.binning.binsperdec,
                                  enumbins=opts.binning.enumbins)
    geom = geom_from_config(opts.binning.to_dict(), (ra, dec))
    if need_events:
        out.append(Task(
            f"events{sfx}", "events",
            {"emin": emin, "emax": emax, "tmin": sel.tmin, "tmax": sel.tmax,
             "ra": ra, "dec": dec, "radius": sel.radius, "zmax": sel.zmax,
             "evclass": sel.evclass, "evtype": sel.evtype,
             "convtype": sel.convtype, "phasemin": sel.phasemin,
             "phasemax": sel.phasemax},
            inputs={"gti": f"gti{sfx}"}, files={"evfile": evfiles},
        ))
    if "counts" in wanted:
        out.append(Task(f"counts{sfx}", "counts",
                        {"geom": geom.to_dict(), "energy": axis.to_dict()},
                        inputs={"events": f"events{sfx}"}))
    if "ltcube" in wanted:
        if data.ltcube:
            out.append(Task(f"ltcube{sfx}", "ltcube_file", {"zmax": lt.zmax},
                            inputs={"gti": f"gti{sfx}"},
                            files={"ltcube": _files(data.ltcube, "data.ltcube")}))
        else:
            out.append(Task(
                f"ltcube{sfx}", "ltcube",
                {"zmax": lt.zmax, "binsz": lt.binsz,
                 "dcostheta": lt.dcostheta, "phibins": lt.phibins},
                inputs={"gti": f"gti{sfx}"}, files={"scfile": scfiles},
            ))
    irf = _irf_params(opts)
    if "exposure" in wanted and gtl.bexpmap:
        out.append(Task(
            f"exposure{sfx}", "exposure_bexpmap",
            {"geom": geom.to_dict(), "energies": list(axis.edges), **irf["params"]},
            files={"bexpmap": _files(gtl.bexpmap, "gtlike.bexpmap")},
        ))
    elif "exposure" in wanted:
        out.append(Task(
            f"exposure{sfx}", "exposure",
            {"geom": geom.to_dict(), "energies": list(axis.edges), **irf["params"]},
            inputs={"ltcube": f"ltcube{sfx}"}, files={"irf": irf["files"]},
        ))
    if "psf" in wanted:
        out.append(Task(
            f"psf{sfx}", "psf",
            {"ra": ra, "dec": dec, "energies": list(axis.edges), **irf["params"]},
            inputs={"ltcube": f"ltcube{sfx}"}, files={"irf": irf["files"]},
        ))
    # energy dispersion: source maps at the true-energy nodes of the measured range
    # extended by edisp_bins bins on each side, and the response matrix at the ROI centre
    # that maps true-energy counts to measured bins (Science Tools' Drm)
    nodes = np.asarray(axis.edges)
    if gtl.edisp:
        from ..geom.axes import extend_log_edges  # = irf.drm.true_energy_axis

        nodes = extend_log_edges(axis.edges, gtl.edisp_bins)
        if "drm" in wanted:
            out.append(Task(
                f"drm{sfx}", "drm",
                {"ra": ra, "dec": dec, "energies": list(axis.edges),
                 "edisp_bins": gtl.edisp_bins, **irf["params"]},
                inputs={"ltcube": f"ltcube{sfx}"}, files={"irf": irf["files"]},
            ))
    if "srcmaps" in wanted:
        out.extend(_srcmap_tasks(opts, sfx, geom, nodes, (ra, dec), irf))
    return out


def sky_model(cfg):
    """The component's sky model from its ``model`` section (parameters as configured).
    ``cfg``: resolved options or a resolved component configuration."""
    from ..model.build import build_sky_model

    opts = _options(cfg)
    return build_sky_model(opts.model.to_dict(), roi_center(opts),
                           coordsys=opts.binning.coordsys)


def product_name(source_name: str) -> str:
    """A source name as a product-name segment (no path separators)."""
    return source_name.replace("/", "_").strip()


def _srcmap_tasks(opts, sfx, geom, nodes, center, irf) -> list[Task]:
    """One task per source (cached per source: moving one source recomputes one map) and
    one that joins them.  A source found in ``gtlike.srcmap`` (a gtsrcmaps file) takes its
    map from there."""
    model = sky_model(opts)
    if not len(model):
        return []
    given = {}
    if opts.gtlike.srcmap:
        from ..io.st_fits import srcmap_hdu_names

        path = _files(opts.gtlike.srcmap, "gtlike.srcmap")[0]
        given = {n.lower(): (n, path) for n in srcmap_hdu_names(path)}
    tasks, inputs = [], {}
    for i, src in enumerate(model):
        task = _source_map_task(opts, sfx, src, geom, nodes, center, irf, given)
        tasks.append(task)
        inputs[f"s{i:04d}"] = task.name
    tasks.append(Task(f"srcmaps{sfx}", "srcmaps", {"sources": model.names}, inputs=inputs))
    return tasks


def _source_map_task(opts, sfx, src, geom, nodes, center, irf, given) -> Task:
    """The task making one source's map (from a gtsrcmaps file when ``given`` holds it)."""
    name = f"srcmap{sfx}/{product_name(src.name)}"
    hit = given.get(src.name.lower())
    if hit:
        return Task(name, "srcmap_file",
                    {"source": src.name, "hdu": hit[0], "geom": geom.to_dict(),
                     "energies": list(nodes)},
                    files={"srcmap": [hit[1]]})
    spatial = src.spatial_key()
    files = {"irf": irf["files"]}
    if spatial.get("Spatial_Filename"):
        files["template"] = [spatial["Spatial_Filename"]]
        spatial = dict(spatial, Spatial_Filename=None)  # the content is in the key
    params = {"source": src.name, "spatial": spatial, "geom": geom.to_dict(),
              "energies": list(nodes), "rfactor": opts.gtlike.rfactor,
              **irf["params"]}
    if src.is_diffuse:
        params["roi_center"] = list(center)  # the PSF is taken at the ROI centre
    return Task(name, "srcmap", params, inputs={"ltcube": f"ltcube{sfx}"}, files=files)


def source_map_task(opts, sfx, src, geom, nodes) -> Task:
    """The srcmap task of ``src`` (any source, e.g. one added or moved by an analysis step)
    on a component's grid: the same step, parameters and so key as the planned maps of
    the recipe's own sources."""
    return _source_map_task(opts, sfx, src, geom, nodes, roi_center(opts), _irf_params(opts),
                            {})


def _irf_params(opts) -> dict:
    from ..io.caldb import find_irf_files

    irfs = opts.gtlike.irfs
    evtype = opts.selection.evtype
    caldb = opts.data.caldb
    files = sorted({
        str(entry[0])
        for f in find_irf_files(irfs, evtype, caldb=caldb).values()
        for entry in (f.aeff, f.psf, f.edisp)
    })
    # the CALDB location is not a parameter: the IRF files' content is in the key
    return {"params": {"irfs": irfs, "evtype": evtype}, "files": [str(f) for f in files]}


def _energy_range(sel) -> tuple[float, float]:
    """(emin, emax) [MeV]; the recipe derived them from logemin/logemax when those were
    given."""
    for key in ("emin", "emax"):
        if getattr(sel, key) is None:
            raise RecipeError(f"selection.{key} (or log{key}) is required")
    return float(sel.emin), float(sel.emax)
