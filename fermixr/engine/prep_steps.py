"""Data-preparation steps: gtmktime, gtselect, gtbin, gtltcube, gtexpcube2, gtpsf.

Each is a thin wire from input products, files and resolved parameters to a function of
the compute layers; no numbers are made here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RecipeError
from .steps import register_step


@register_step("gti", version="2", product="gti", identity="content")
def gti_step(inputs, params, ctx):
    """Good time intervals: event-file GTIs, [tmin, tmax], FT2 filter and ROI zenith cut;
    GTIs the FT2 rows do not cover are refused (or cut away with ``trim_to_ft2``)."""
    from ..io.ft1 import read_ft1_gti
    from ..select.gti import make_gti_dataset

    event_gti = read_ft1_gti(ctx.files["evfile"])
    ft2 = None
    if "scfile" in ctx.files:
        from ..io.ft2 import read_ft2
        from ..select.filter import filter_columns

        cols = ["START", "STOP"]
        if params.get("filter") or params.get("roicut"):
            cols += ["LIVETIME", "RA_ZENITH", "DEC_ZENITH"]
        if params.get("filter"):
            cols += [c for c in filter_columns(params["filter"]) if c not in cols]
        ft2 = read_ft2(ctx.files["scfile"], columns=cols)
    roi = params.get("roi") or {}
    return make_gti_dataset(
        event_gti, ft2, filter=params.get("filter"), roicut=bool(params.get("roicut")),
        zmax=params.get("zmax"), roi_center=(roi.get("ra"), roi.get("dec")) if roi else None,
        roi_radius=roi.get("radius"), tmin=params.get("tmin"), tmax=params.get("tmax"),
        trim_to_ft2=bool(params.get("trim_to_ft2")),
    )


@register_step("events", version="1", product="events")
def events_step(inputs, params, ctx):
    """Photon events passing the selection cuts, inside the GTIs."""
    from ..io.ft1 import read_ft1
    from ..select.cuts import select_events

    events, _ = read_ft1(ctx.files["evfile"])
    gti = inputs["gti"]
    return select_events(
        events,
        gti_start=np.asarray(gti["START"].values), gti_stop=np.asarray(gti["STOP"].values),
        **{k: v for k, v in params.items()},
    )


@register_step("counts", version="1", product="counts")
def counts_step(inputs, params, ctx):
    """Counts cube binned on the analysis geometry (gtbin)."""
    from ..geom import EnergyAxis, geom_from_dict
    from ..select.binning import bin_counts

    geom = geom_from_dict(params["geom"])
    axis = EnergyAxis.from_dict(params["energy"])
    return bin_counts(inputs["events"].load(), geom, axis)


@register_step("ltcube", version="1", product="ltcube")
def ltcube_step(inputs, params, ctx):
    """Livetime cube from the spacecraft file and the GTIs (gtltcube)."""
    from ..exposure.ltcube import compute_ltcube

    gti = inputs["gti"]
    ds = compute_ltcube(
        ctx.files["scfile"], np.asarray(gti["START"].values), np.asarray(gti["STOP"].values),
        zmax=params["zmax"], binsz=params["binsz"], dcostheta=params["dcostheta"],
        phibins=params["phibins"],
        progress=lambda done, total: ctx.progress(done, total, "FT2 rows"),
        client=ctx.client,
    )
    # products are deterministic: timings belong to the provenance, not the data
    ds.attrs.pop("wall_time_s", None)
    return ds


@register_step("ltcube_file", version="1", product="ltcube")
def ltcube_file_step(inputs, params, ctx):
    """A precomputed livetime cube (data.ltcube: one gtltcube file or several, summed),
    checked against the analysis GTIs and zenith cut."""
    import warnings

    from ..errors import SelectionError
    from ..io.ltcube import check_ltcube_against_gti, read_ltcube

    files = ctx.files["ltcube"]
    ds = read_ltcube(files)
    gti = inputs["gti"]
    start, stop = np.asarray(gti["START"].values), np.asarray(gti["STOP"].values)
    c0, c1 = float(np.min(ds["gti_start"].values)), float(np.max(ds["gti_stop"].values))
    a0, a1 = float(start.min()), float(stop.max())
    if c1 <= a0 or a1 <= c0:
        raise SelectionError(
            f"data.ltcube {', '.join(files)}: the livetime cube covers MET {c0:.1f}-{c1:.1f} s, "
            f"the selection's GTIs cover MET {a0:.1f}-{a1:.1f} s: they do not overlap"
        )
    msgs = [f"data.ltcube (MET {c0:.1f}-{c1:.1f} s) vs selection (MET {a0:.1f}-{a1:.1f} s): {m}"
            for m in check_ltcube_against_gti(ds, start, stop)]
    want = params["zmax"]
    have = ds.attrs.get("zmax")
    if have is None:
        msgs.append(f"data.ltcube does not record its zenith cut; ltcube.zmax is {want} deg")
    elif abs(float(have) - float(want)) > 1e-6:
        msgs.append(f"data.ltcube was made with zmax {float(have):g} deg but ltcube.zmax "
                    f"(default: selection.zmax) is {float(want):g} deg")
    for m in msgs:
        ctx.info("warning: " + m)
        warnings.warn(m, stacklevel=2)
    ds.attrs["warnings"] = msgs
    return ds


def _caldb_from_files(files) -> Path | None:
    # .../bcf/<ea|psf|edisp>/<file>: the 'bcf' folder
    return Path(files[0]).resolve().parents[1] if files else None


@register_step("exposure", version="1", product="exposure")
def exposure_step(inputs, params, ctx):
    """Exposure cube on the analysis geometry at the energy-bin edges (gtexpcube2)."""
    from ..exposure.expmap import exposure_map
    from ..geom import geom_from_dict
    from ..irf.irfset import load_irfs

    irfs = load_irfs(params["irfs"], params["evtype"], caldb=_caldb_from_files(ctx.files["irf"]))
    geom = geom_from_dict(params["geom"])
    return exposure_map(inputs["ltcube"].load(), irfs, geom, np.asarray(params["energies"]))


@register_step("exposure_bexpmap", version="1", product="exposure")
def exposure_bexpmap_step(inputs, params, ctx):
    """Exposure resampled from a precomputed all-sky gtexpcube2 cube (gtlike.bexpmap)."""
    from ..exposure.bexpmap import exposure_from_bexpmap
    from ..geom import geom_from_dict

    return exposure_from_bexpmap(ctx.files["bexpmap"][0], geom_from_dict(params["geom"]),
                                 np.asarray(params["energies"]), irfs=params["irfs"],
                                 evtype=int(params["evtype"]))


@register_step("psf", version="2", product="psf")
def psf_step(inputs, params, ctx):
    """Exposure-weighted PSF at the ROI centre versus energy and offset (gtpsf)."""
    from ..exposure.psftable import psf_table
    from ..irf.irfset import load_irfs

    irfs = load_irfs(params["irfs"], params["evtype"], caldb=_caldb_from_files(ctx.files["irf"]))
    if not params.get("energies"):
        raise RecipeError("psf: no energies")
    ds = psf_table(inputs["ltcube"].load(), irfs, params["ra"], params["dec"],
                   np.asarray(params["energies"]))
    ds.attrs.update({"fermixr_product": "psf", "ra": float(params["ra"]),
                     "dec": float(params["dec"]), "irfs": irfs.irfs, "evtype": int(irfs.evtype)})
    return ds


@register_step("drm", version="1", product="drm")
def drm_step(inputs, params, ctx):
    """Energy-dispersion response matrix at the ROI centre (gtdrm)."""
    from ..irf.drm import drm_dataset
    from ..irf.irfset import load_irfs

    irfs = load_irfs(params["irfs"], params["evtype"], caldb=_caldb_from_files(ctx.files["irf"]))
    ds = drm_dataset(irfs, inputs["ltcube"].load(), params["ra"], params["dec"],
                     np.asarray(params["energies"]), edisp_bins=int(params["edisp_bins"]))
    ds.attrs["fermixr_product"] = "drm"
    return ds


@register_step("srcmap", version="3", product="srcmaps")
def srcmap_step(inputs, params, ctx):
    """One source's map: PSF-convolved exposure x spatial model at the energy nodes."""
    from ..geom import geom_from_dict
    from ..irf.irfset import load_irfs
    from ..srcmap.build import source_map_array, srcmap_dataset

    irfs = load_irfs(params["irfs"], params["evtype"], caldb=_caldb_from_files(ctx.files["irf"]))
    geom = geom_from_dict(params["geom"])
    spatial = dict(params["spatial"])
    if "template" in ctx.files:
        spatial["Spatial_Filename"] = ctx.files["template"][0]
    center = params.get("roi_center") or (None, None)
    values = source_map_array(spatial, geom, params["energies"], inputs["ltcube"].load(), irfs,
                              center, rfactor=params["rfactor"], name=params["source"])
    return srcmap_dataset(params["source"], values, geom, params["energies"],
                          irfs=irfs.irfs, evtype=int(irfs.evtype),
                          SpatialModel=spatial["SpatialModel"])


@register_step("srcmap_file", version="1", product="srcmaps")
def srcmap_file_step(inputs, params, ctx):
    """One source's map taken from a gtsrcmaps file (gtlike.srcmap), after checking that
    its geometry and energies are the analysis ones."""
    from ..errors import GeometryError
    from ..geom import WcsGeom, geom_from_dict
    from ..io.st_fits import read_srcmap_hdus
    from ..srcmap.build import srcmap_dataset

    path = ctx.files["srcmap"][0]
    edges, arr, hdr = read_srcmap_hdus(path, names=[params["hdu"]])[params["hdu"]]
    geom = geom_from_dict(params["geom"])
    theirs = WcsGeom.from_header(hdr)
    if theirs.to_dict() != geom.to_dict() and not _same_grid(theirs, geom):
        raise GeometryError(
            f"gtlike.srcmap {path!r} HDU {params['hdu']!r}: its grid {theirs.to_dict()} is not "
            f"the analysis grid {geom.to_dict()}")
    want = np.asarray(params["energies"], dtype=float)
    if edges.shape != want.shape or not np.allclose(edges, want, rtol=1e-5):
        hint = ""
        if want.size > edges.size:
            hint = ("; with energy dispersion on, the source maps sit on the counts bins "
                    "extended by gtlike.edisp_bins true-energy bins on each side: give a file "
                    "made for those energies, or set gtlike.edisp_bins: 0 or gtlike.edisp: "
                    "false")
        raise GeometryError(
            f"gtlike.srcmap {path!r}: energies {edges[0]:g}..{edges[-1]:g} MeV in "
            f"{edges.size} planes, the analysis has {want[0]:g}..{want[-1]:g} MeV in "
            f"{want.size}{hint}")
    return srcmap_dataset(params["source"], arr, geom, want, source_file=str(path))


def _same_grid(a, b) -> bool:
    da, db = a.to_dict(), b.to_dict()
    keys = ("npix", "proj", "frame")
    if any(da[k] != db[k] for k in keys):
        return False
    return all(np.allclose(da[k], db[k], rtol=0, atol=1e-5) for k in ("crval", "crpix", "cdelt"))


@register_step("srcmaps", version="1", product="srcmaps")
def srcmaps_step(inputs, params, ctx):
    """All source maps of the sky model, joined along ``source`` in model order."""
    from ..srcmap.build import concat_srcmaps

    parts = [inputs[k].load() for k in sorted(inputs)]
    out = concat_srcmaps(parts).assign_attrs(sources=list(params["sources"]))
    out["srcmap"].encoding["chunks"] = (1,) + out["srcmap"].shape[1:]  # one chunk per source
    return out
