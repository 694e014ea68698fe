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
NOT_YET = ("sed", "tsmap", "tscube", "residmap", "find_sources", "localize", "extension",
           "lightcurve")


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
    comps = recipe.components
    tasks: list[Task] = []
    for i, cfg in enumerate(comps):
        sfx = f"/{i:02d}" if len(comps) > 1 else ""
        need = list(wanted)
        if (cfg["gtlike"].get("bexpmap") and "ltcube" in need and "psf" not in need
                and "ltcube" not in requested):
            need.remove("ltcube")  # the given exposure cube replaces it
        tasks.extend(_prep_tasks(cfg, need, sfx))
    return tasks


def roi_center(cfg) -> tuple[float, float]:
    """(ra, dec) of the ROI centre from ``selection`` (ra/dec, else glon/glat)."""
    sel = cfg["selection"]
    if sel.get("ra") is not None and sel.get("dec") is not None:
        return float(sel["ra"]), float(sel["dec"])
    if sel.get("glon") is not None and sel.get("glat") is not None:
        from ..geom.frames import fermipy_gal_to_cel

        return fermipy_gal_to_cel(sel["glon"], sel["glat"])
    if sel.get("target"):
        raise RecipeError(
            f"selection.target {sel['target']!r}: resolving a target name needs the source "
            "catalog, which this version does not read yet; give selection.ra/dec or glon/glat"
        )
    raise RecipeError("selection: the ROI centre is not set; give ra/dec, glon/glat or target")


def _files(cfg, key: str, what: str, section: str = "data"):
    from ..io.filelist import resolve_files

    return [str(p) for p in resolve_files(cfg[section].get(key), what=what)]


def _prep_tasks(cfg, wanted, sfx) -> list[Task]:
    from ..geom import EnergyAxis, geom_from_config

    sel, data, lt, gtl = cfg["selection"], cfg["data"], cfg["ltcube"], cfg["gtlike"]
    ra, dec = roi_center(cfg)
    out: list[Task] = []
    need_events = any(w in wanted for w in ("events", "counts"))
    need_ft2 = "ltcube" in wanted and not data.get("ltcube")
    evfiles = _files(cfg, "evfile", "data.evfile")
    roi = {"ra": ra, "dec": dec, "radius": sel.get("radius")}

    if sel.get("filter"):
        from ..select.filter import parse_filter

        try:
            parse_filter(sel["filter"])  # a syntax error stops the run before any work
        except Exception as exc:
            raise type(exc)(f"selection.filter: {exc}") from None
    gti_files = {"evfile": evfiles}
    if sel.get("filter") or _truthy(sel.get("roicut")) or need_ft2:
        gti_files["scfile"] = _files(cfg, "scfile", "data.scfile")
    out.append(Task(
        f"gti{sfx}", "gti",
        {"tmin": sel.get("tmin"), "tmax": sel.get("tmax"), "filter": sel.get("filter"),
         "roicut": _truthy(sel.get("roicut")),
         "zmax": sel.get("zmax") if _truthy(sel.get("roicut")) else None,
         "roi": roi if _truthy(sel.get("roicut")) else None},
        files=gti_files,
    ))
    axis = EnergyAxis.from_bounds(_emin(sel), _emax(sel), binsperdec=cfg["binning"].get("binsperdec"),
                                  enumbins=cfg["binning"].get("enumbins"))
    geom = geom_from_config(cfg["binning"], (ra, dec))
    if need_events:
        out.append(Task(
            f"events{sfx}", "events",
            {"emin": _emin(sel), "emax": _emax(sel), "tmin": sel.get("tmin"), "tmax": sel.get("tmax"),
             "ra": ra, "dec": dec, "radius": sel.get("radius"), "zmax": sel.get("zmax"),
             "evclass": sel.get("evclass"), "evtype": sel.get("evtype"),
             "convtype": sel.get("convtype"), "phasemin": sel.get("phasemin"),
             "phasemax": sel.get("phasemax")},
            inputs={"gti": f"gti{sfx}"}, files={"evfile": evfiles},
        ))
    if "counts" in wanted:
        out.append(Task(f"counts{sfx}", "counts",
                        {"geom": geom.to_dict(), "energy": axis.to_dict()},
                        inputs={"events": f"events{sfx}"}))
    lt_zmax = lt.get("zmax")
    if lt_zmax is None:
        lt_zmax = sel.get("zmax")
    lt_zmax = 180.0 if lt_zmax is None else float(lt_zmax)
    if "ltcube" in wanted:
        if data.get("ltcube"):
            out.append(Task(f"ltcube{sfx}", "ltcube_file", {"zmax": lt_zmax},
                            inputs={"gti": f"gti{sfx}"},
                            files={"ltcube": _files(cfg, "ltcube", "data.ltcube")}))
        else:
            out.append(Task(
                f"ltcube{sfx}", "ltcube",
                {"zmax": lt_zmax, "binsz": lt.get("binsz"),
                 "dcostheta": lt.get("dcostheta"), "phibins": lt.get("phibins")},
                inputs={"gti": f"gti{sfx}"}, files={"scfile": gti_files["scfile"]},
            ))
    irf = _irf_params(cfg)
    if "exposure" in wanted and gtl.get("bexpmap"):
        out.append(Task(
            f"exposure{sfx}", "exposure_bexpmap",
            {"geom": geom.to_dict(), "energies": list(axis.edges), **irf["params"]},
            files={"bexpmap": _files(cfg, "bexpmap", "gtlike.bexpmap", section="gtlike")},
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
    if gtl.get("edisp"):
        from ..geom.axes import extend_log_edges  # = irf.drm.true_energy_axis

        nodes = extend_log_edges(axis.edges, int(gtl.get("edisp_bins") or 0))
        if "drm" in wanted:
            out.append(Task(
                f"drm{sfx}", "drm",
                {"ra": ra, "dec": dec, "energies": list(axis.edges),
                 "edisp_bins": int(gtl.get("edisp_bins") or 0), **irf["params"]},
                inputs={"ltcube": f"ltcube{sfx}"}, files={"irf": irf["files"]},
            ))
    if "srcmaps" in wanted:
        out.extend(_srcmap_tasks(cfg, sfx, geom, nodes, (ra, dec), irf))
    return out


def sky_model(cfg):
    """The component's sky model from its ``model`` section (parameters as configured)."""
    from ..model.build import build_sky_model

    return build_sky_model(cfg.get("model"), roi_center(cfg),
                           coordsys=cfg["binning"].get("coordsys") or "CEL")


def product_name(source_name: str) -> str:
    """A source name as a product-name segment (no path separators)."""
    return source_name.replace("/", "_").strip()


def _srcmap_tasks(cfg, sfx, geom, nodes, center, irf) -> list[Task]:
    """One task per source (cached per source: moving one source recomputes one map) and
    one that joins them.  A source found in ``gtlike.srcmap`` (a gtsrcmaps file) takes its
    map from there."""
    model = sky_model(cfg)
    if not len(model):
        return []
    given = {}
    srcmap_file = cfg["gtlike"].get("srcmap")
    if srcmap_file:
        from ..io.st_fits import srcmap_hdu_names

        path = _files(cfg, "srcmap", "gtlike.srcmap", section="gtlike")[0]
        given = {n.lower(): (n, path) for n in srcmap_hdu_names(path)}
    tasks, inputs = [], {}
    for i, src in enumerate(model):
        task = _source_map_task(cfg, sfx, src, geom, nodes, center, irf, given)
        tasks.append(task)
        inputs[f"s{i:04d}"] = task.name
    tasks.append(Task(f"srcmaps{sfx}", "srcmaps", {"sources": model.names}, inputs=inputs))
    return tasks


def _source_map_task(cfg, sfx, src, geom, nodes, center, irf, given) -> Task:
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
              "energies": list(nodes), "rfactor": cfg["gtlike"].get("rfactor"),
              **irf["params"]}
    if src.is_diffuse:
        params["roi_center"] = list(center)  # the PSF is taken at the ROI centre
    return Task(name, "srcmap", params, inputs={"ltcube": f"ltcube{sfx}"}, files=files)


def source_map_task(cfg, sfx, src, geom, nodes) -> Task:
    """The srcmap task of ``src`` (any source, e.g. one added or moved by an analysis step)
    on a component's grid: the same step, parameters and so key as the planned maps of
    the recipe's own sources."""
    return _source_map_task(cfg, sfx, src, geom, nodes, roi_center(cfg), _irf_params(cfg), {})


def _irf_params(cfg) -> dict:
    from ..io.caldb import find_irf_files

    irfs = cfg["gtlike"].get("irfs")
    evtype = cfg["selection"].get("evtype")
    caldb = cfg.get("data", {}).get("caldb")
    files = sorted({
        str(entry[0])
        for f in find_irf_files(irfs, evtype, caldb=caldb).values()
        for entry in (f.aeff, f.psf, f.edisp)
    })
    # the CALDB location is not a parameter: the IRF files' content is in the key
    return {"params": {"irfs": irfs, "evtype": evtype}, "files": [str(f) for f in files]}


def _truthy(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("yes", "true", "1", "y")
    return bool(v)


def _emin(sel):
    if sel.get("emin") is not None:
        return float(sel["emin"])
    if sel.get("logemin") is not None:
        return 10 ** float(sel["logemin"])
    raise RecipeError("selection.emin (or logemin) is required")


def _emax(sel):
    if sel.get("emax") is not None:
        return float(sel["emax"])
    if sel.get("logemax") is not None:
        return 10 ** float(sel["logemax"])
    raise RecipeError("selection.emax (or logemax) is required")
