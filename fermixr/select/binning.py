"""gtbin: counts cubes on WCS and HEALPix geometries.

Events are placed as gtbin places them: the event's RA/DEC (not the FT1 L/B columns) are
rotated to Galactic with the Science Tools' matrix when the map is Galactic, projected
with wcslib to 1-based FITS pixel coordinates, and pixel i takes [i + 0.5, i + 1.5)
(``LinearBinner(0.5, n + 0.5, 1)``).  Energies use ``LogBinner`` on log-uniform axes
(``int(n log(E/emin) / log(emax/emin))`` for ``emin <= E < emax``) and left-closed edges
otherwise.  Events outside the map or the energy range are dropped (and counted in attrs).
HEALPix maps use ``healpy.ang2pix`` in the map frame; region maps keep the held pixels.
"""

from __future__ import annotations

import numpy as np

from ..conventions import ATTR_MJDREF, ATTR_PRODUCT, ATTR_TSTART, ATTR_TSTOP, DIM_ENERGY, DIM_EVENT
from ..errors import GeometryError, SelectionError
from ..geom import EnergyAxis, HpxGeom, WcsGeom, geom_attrs, geom_coords, sky_dims
from ..geom.frames import cel_to_gal
from . import _kernels as K


def energy_bin_index(energy, axis: EnergyAxis) -> np.ndarray:
    """Energy bin of every event (-1 outside), as gtbin bins (see module doc)."""
    e = np.ascontiguousarray(energy, dtype=np.float64)
    if axis.is_log:
        return K.log_bin_index(e, axis.emin, axis.emax, axis.nbin)
    return K.edge_bin_index(e, np.ascontiguousarray(axis.edges))


def sky_coords_in_frame(events, frame: str):
    """(lon, lat) float64 of the events in ``frame`` from RA/DEC (Science Tools rotation)."""
    for c in ("RA", "DEC"):
        if c not in events:
            raise SelectionError(f"events have no {c} column; gtbin needs RA and DEC")
    ra = np.ascontiguousarray(np.asarray(events["RA"].values), dtype=np.float64)
    dec = np.ascontiguousarray(np.asarray(events["DEC"].values), dtype=np.float64)
    if frame == "GAL":
        return cel_to_gal(ra, dec)
    return ra, dec


def pixel_index(events, geom):
    """Spatial index of every event: (iy, ix) for WCS, (ipix,) for HEALPix (-1 outside)."""
    lon, lat = sky_coords_in_frame(events, geom.frame)
    if isinstance(geom, WcsGeom):
        x1, y1 = geom._world_to_fits_pix(lon, lat)
        ix = K.fits_pixel_index(np.ascontiguousarray(x1), geom.nx)
        iy = K.fits_pixel_index(np.ascontiguousarray(y1), geom.ny)
        return iy, ix
    if isinstance(geom, HpxGeom):
        return (geom.world_to_pix(lon, lat),)
    raise GeometryError(f"bin_counts: not a sky geometry: {geom!r}")


def bin_counts(events, geom, energy_axis: EnergyAxis) -> "xr.Dataset":
    """The ``counts`` product: ``counts`` (int32) with dims (energy, y, x) on a
    :class:`WcsGeom` or (energy, pix) on a :class:`HpxGeom`."""
    import xarray as xr

    if not isinstance(energy_axis, EnergyAxis):
        raise GeometryError(f"bin_counts: energy_axis must be an EnergyAxis, got {type(energy_axis).__name__}")
    if "ENERGY" not in events:
        raise SelectionError("events have no ENERGY column; gtbin needs it")
    from .cuts import check_selection_within, file_cuts

    # a cube reaching beyond the event file's own cuts would hold empty bins the model fills
    check_selection_within(file_cuts(events), geom=geom, energy_edges=energy_axis.edges,
                           what="binning")
    ie = energy_bin_index(np.asarray(events["ENERGY"].values), energy_axis)
    sp = pixel_index(events, geom)
    ne = energy_axis.nbin
    if isinstance(geom, WcsGeom):
        iy, ix = sp
        cube = K.histogram_3d(ie, iy, ix, ne, geom.ny, geom.nx)
    else:
        (ip,) = sp
        cube = K.histogram_2d(ie, ip, ne, geom.npix)
    n_in = int(events.sizes.get(DIM_EVENT, ie.size))
    n_binned = int(cube.sum())
    if cube.max(initial=0) > np.iinfo(np.int32).max:
        raise SelectionError("bin_counts: a bin holds more than 2**31-1 events; int32 overflows")
    coords = geom_coords(geom, energy_axis)
    attrs = {ATTR_PRODUCT: "counts"}
    attrs.update(geom_attrs(geom))
    attrs["energy_axis"] = energy_axis.to_dict()
    for k in (ATTR_TSTART, ATTR_TSTOP, ATTR_MJDREF):
        if k in events.attrs:
            attrs[k] = events.attrs[k]
    for k in ("selection", "dss", "PASS_VER", "file_cuts"):
        if k in events.attrs:
            attrs[k] = events.attrs[k]
    attrs["n_events_in"] = n_in
    attrs["n_events_binned"] = n_binned
    dims = (DIM_ENERGY,) + sky_dims(geom)
    return xr.Dataset({"counts": (dims, cube.astype(np.int32), {"units": "count"})},
                      coords=coords, attrs=attrs)
