"""One source's map from its spatial model: the dispatch gtsrcmaps does per source type,
and the ``srcmap`` product around it.

- point sources: exposure and mean PSF at the source position (``psf_table``);
- RadialGaussian / RadialDisk: the profile convolved with the PSF at the source position;
- SpatialMap templates, isotropic (ConstantValue) and map cubes (MapCubeFunction): intensity
  x exposure (computed from the livetime cube at every sample point) convolved with the
  mean PSF at the ROI centre, with spill-in from a padded border, as gtsrcmaps does.

The map is per unit dN/dE of the source's spectrum: spectral parameters play no part, and a
normalisation parameter of the spatial model (Prefactor, Normalization, Value) is applied
with the spectrum, not here.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..conventions import DIM_ENERGY_TRUE, DIM_SOURCE, UNIT_ENERGY, UNIT_EXPOSURE
from ..errors import ModelError
from ..exposure.expcube import exposure_at
from ..exposure.psftable import psf_table
from ..geom.coords import geom_attrs, geom_coords, sky_dims
from .diffuse import isotropic_map, mapcube_map
from .exposure import ltcube_exposure
from .extended import extended_source_map
from .point import point_source_map


# PSF tables by (livetime-cube product key, IRFs, livetime-cube pixel, energies): a width
# scan or a position fit makes many maps near one position from one livetime cube, the
# table depends on the position only through the cube's pixel (psf_table), and a product
# of the store never changes under its key.  Bounded; tables are read-only.
_PSF_MEMO: dict = {}
_PSF_MEMO_SIZE = 64


def _psf_at(ltcube, irfs, ra, dec, energies):
    prov = (getattr(ltcube, "attrs", None) or {}).get("provenance") or {}
    key = None
    if isinstance(prov, dict) and prov.get("key"):
        from ..irf.livetime import ltcube_pixel_rows

        # the table depends on the position only through the livetime-cube pixel
        row = int(ltcube_pixel_rows(ltcube, np.array([float(ra)]),
                                    np.array([float(dec)]))[0])
        key = (str(prov["key"]), str(getattr(irfs, "irfs", irfs)),
               str(getattr(irfs, "evtype", "")), str(getattr(irfs, "caldb", "")),
               row, tuple(np.asarray(energies, dtype=float).tolist()))
        hit = _PSF_MEMO.get(key)
        if hit is not None:
            return hit
    t = psf_table(ltcube, irfs, ra, dec, energies)
    out = (np.asarray(t["offset"].values), np.asarray(t["psf"].values))
    for a in out:
        a.setflags(write=False)
    if key is not None:
        if len(_PSF_MEMO) >= _PSF_MEMO_SIZE:
            _PSF_MEMO.pop(next(iter(_PSF_MEMO)))
        _PSF_MEMO[key] = out
    return out


def source_map_array(spatial: dict, geom, energies, ltcube, irfs, roi_center, *, rfactor=2,
                     oversample=2, name: str = "") -> np.ndarray:
    """Map (n_nodes, *geom.shape) in cm2 s of a source with spatial model ``spatial`` (as
    :meth:`fermixr.model.Source.spatial_key` gives it: ``SpatialModel``, ``spatial_pars``
    with physical values, ``Spatial_Filename``)."""
    e = np.asarray(energies, dtype=np.float64)
    kind = spatial["SpatialModel"]
    pars = spatial.get("spatial_pars") or {}
    if kind == "PointSource":
        ra, dec = pars["RA"], pars["DEC"]
        exp_src = exposure_at(ltcube, irfs, [ra], [dec], e)[:, 0]
        off, val = _psf_at(ltcube, irfs, ra, dec, e)
        return point_source_map(geom, e, ra, dec, exp_src, off, val, rfactor=rfactor)
    if kind in ("RadialGaussian", "RadialDisk"):
        ra, dec = pars["RA"], pars["DEC"]
        size = pars["Sigma" if kind == "RadialGaussian" else "Radius"]
        exp_src = exposure_at(ltcube, irfs, [ra], [dec], e)[:, 0]
        off, val = _psf_at(ltcube, irfs, ra, dec, e)
        return extended_source_map(geom, e, (kind, size), exp_src, off, val, ra=ra, dec=dec,
                                   rfactor=rfactor, oversample=oversample)
    expfn = ltcube_exposure(ltcube, irfs, e)
    off, val = _psf_at(ltcube, irfs, roi_center[0], roi_center[1], e)
    if kind == "ConstantValue":
        return isotropic_map(geom, e, expfn, off, val, value=1.0, oversample=oversample)
    if kind == "MapCubeFunction":
        from ..io.mapcube import read_mapcube

        cube = read_mapcube(spatial["Spatial_Filename"], what=f"source {name!r} MapCubeFunction")
        return mapcube_map(geom, e, cube, expfn, off, val, oversample=oversample)
    if kind == "SpatialMap":
        from ..io.mapcube import read_template

        tmpl = read_template(spatial["Spatial_Filename"], what=f"source {name!r} SpatialMap")
        return extended_source_map(geom, e, tmpl, expfn, off, val, oversample=oversample)
    raise ModelError(f"source {name!r}: no source-map method for spatial model {kind!r}")


def srcmap_dataset(name: str, values: np.ndarray, geom, energies, **attrs) -> xr.Dataset:
    """The ``srcmaps`` product for one source (dims source=1, energy_true, sky...)."""
    e = np.asarray(energies, dtype=np.float64)
    dims = (DIM_SOURCE, DIM_ENERGY_TRUE) + sky_dims(geom)
    coords = dict(geom_coords(geom))
    coords[DIM_ENERGY_TRUE] = ((DIM_ENERGY_TRUE,), e, {"units": UNIT_ENERGY})
    coords[DIM_SOURCE] = ((DIM_SOURCE,), np.array([str(name)]))
    a = dict(geom_attrs(geom))
    a.update({"fermixr_product": "srcmaps", **attrs})
    data = np.asarray(values, dtype=np.float64).reshape((1, e.size) + tuple(geom.shape))
    return xr.Dataset({"srcmap": (dims, data, {"units": UNIT_EXPOSURE})}, coords=coords, attrs=a)


def concat_srcmaps(parts: list[xr.Dataset]) -> xr.Dataset:
    """Join per-source products along ``source`` (same geometry and energies required)."""
    if not parts:
        raise ModelError("no source maps to join")
    out = xr.concat(parts, dim=DIM_SOURCE, join="exact", combine_attrs="drop_conflicts")
    out.attrs["fermixr_product"] = "srcmaps"
    return out
