"""Checks of a recipe against its data that need no computation, run by ``fermixr
validate`` and before anything is computed by ``fermixr run``: the selection must lie
within the cuts the event file records (DSS keywords: energy, circle, time, zenith, class,
type), the IRF class should be the events' class (a warning), and, in ``validate``, the FT2
rows must cover the GTIs (the ``gti`` step checks it again when it reads the FT2)."""

from __future__ import annotations

import warnings


class DataWarning(UserWarning):
    """The recipe and its data disagree in a way that changes numbers but may be meant."""


def check_data(recipe, *, ft2_coverage: bool = False) -> None:
    """Raise :class:`~fermixr.errors.SelectionError` for a selection wider than the event
    file's own cuts (and, with ``ft2_coverage``, for GTIs the FT2 does not cover); warn
    when the IRF class is not the events' class."""
    from ..geom import EnergyAxis, geom_from_config
    from ..io.dss import dss_cuts
    from ..select.cuts import check_selection_within, irf_class_mismatch
    from .plan import _energy_range, _files, roi_center

    for i, opts in enumerate(recipe.options):
        sel, data = opts.selection, opts.data
        evfiles = _files(data.evfile, "data.evfile")
        if not evfiles:
            continue
        where = "selection" if len(recipe.options) == 1 else f"components[{i}].selection"
        ra, dec = roi_center(opts)
        emin, emax = _energy_range(sel)
        axis = EnergyAxis.from_bounds(emin, emax, binsperdec=opts.binning.binsperdec,
                                      enumbins=opts.binning.enumbins)
        geom = geom_from_config(opts.binning.to_dict(), (ra, dec))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # the IRF warning is issued below, once
            check_selection_within(
                dss_cuts(evfiles[0]), emin=emin, emax=emax, tmin=sel.tmin, tmax=sel.tmax,
                ra=ra, dec=dec, radius=sel.radius, zmax=sel.zmax, evclass=sel.evclass,
                evtype=sel.evtype, geom=geom, energy_edges=axis.edges, what=where)
        msg = irf_class_mismatch(opts.gtlike.irfs, sel.evclass)
        if msg:
            warnings.warn(f"gtlike.irfs: {msg}", DataWarning, stacklevel=2)
        if ft2_coverage and data.scfile and not data.ltcube:
            from ..io.ft1 import read_ft1_gti
            from ..select.gti import check_ft2_files_cover, make_gti

            s, e = make_gti(read_ft1_gti(evfiles), tmin=sel.tmin, tmax=sel.tmax)
            check_ft2_files_cover(s, e, _files(data.scfile, "data.scfile"))
