"""Exposure cubes on analysis geometries (gtexpcube2's binned exposure map).

Wires :func:`fermixr.exposure.expcube.exposure_at` (exposure at sky directions) onto a WCS
or HEALPix geometry and labels the result as the ``exposure`` product: exposure in cm2 s
at the true-energy nodes (for a binned analysis, the counts-cube bin edges, as gtsrcmaps
expects), dims (``energy_true``, ``y``, ``x``) or (``energy_true``, ``pix``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..conventions import DIM_ENERGY_TRUE, UNIT_ENERGY, UNIT_EXPOSURE
from ..geom.coords import geom_attrs, geom_coords, sky_dims
from ..geom.frames import transform
from .expcube import exposure_at


def exposure_map(ltcube, irfs, geom, energies, *, efficiency: bool = True) -> xr.Dataset:
    """Exposure cube (cm2 s) of ``irfs`` (an IRFSet) on ``geom`` at ``energies`` (MeV)."""
    energies = np.asarray(energies, dtype=np.float64).ravel()
    lon, lat = geom.pixel_centers()
    ra, dec = transform(np.ravel(lon), np.ravel(lat), geom.frame, "CEL")
    exp = exposure_at(ltcube, irfs, ra, dec, energies, efficiency=efficiency)
    exp = exp.reshape((energies.size,) + tuple(geom.shape))
    dims = (DIM_ENERGY_TRUE,) + sky_dims(geom)
    coords = {k: v for k, v in geom_coords(geom).items()}
    coords[DIM_ENERGY_TRUE] = ((DIM_ENERGY_TRUE,), energies, {"units": UNIT_ENERGY})
    attrs = dict(geom_attrs(geom))
    attrs.update({
        "fermixr_product": "exposure",
        "irfs": str(irfs.irfs),
        "evtype": int(irfs.evtype),
        "efficiency_correction": bool(efficiency),
        "TSTART": ltcube.attrs.get("TSTART"),
        "TSTOP": ltcube.attrs.get("TSTOP"),
        "MJDREF": ltcube.attrs.get("MJDREF"),
        "ltcube_zmax": ltcube.attrs.get("zmax"),
    })
    return xr.Dataset(
        {"exposure": (dims, exp, {"units": UNIT_EXPOSURE})}, coords=coords, attrs=attrs
    )
