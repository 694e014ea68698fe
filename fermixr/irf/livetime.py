"""Plain-array access to a livetime-cube product: its arrays, the cos theta at which each
inclination bin is evaluated, and the cube row holding a sky direction.

Shared by the inclination averages of this layer (:class:`fermixr.irf.mean.LivetimeProfile`)
and by the exposure layer (:mod:`fermixr.exposure.expcube`, :mod:`fermixr.exposure.psftable`).

Livetime-cube contract (``schemas/products/ltcube.schema.json``): variables ``exposure``
and ``weighted_exposure`` (dims ``pix``, ``costheta`` [, ``phi``], s), coords
``costheta_min``/``costheta_max`` (dim ``costheta``) and ``pix``; attrs ``nside``,
``ordering``, ``frame``.  A ``phi`` dim is summed over.
"""

from __future__ import annotations

import numpy as np

from ..errors import GeometryError, ProductError

__all__ = ["ltcube_arrays", "ltcube_pixel_rows", "ltcube_costheta", "costheta_points"]


def ltcube_arrays(ltcube) -> dict:
    """Plain arrays of a livetime-cube Dataset (phi summed out when present)."""
    missing = [v for v in ("exposure",) if v not in ltcube.data_vars]
    missing += [c for c in ("costheta_min", "costheta_max") if c not in ltcube.coords
                and c not in ltcube.data_vars]
    if missing:
        raise ProductError(
            f"livetime cube lacks {missing}; expected variables exposure, "
            f"weighted_exposure (dims pix, costheta) and coords costheta_min/max"
        )

    def arr(name):
        da = ltcube[name]
        if "phi" in da.dims:
            da = da.sum("phi")
        return np.ascontiguousarray(da.transpose("pix", "costheta").values, dtype=np.float64)

    lt = arr("exposure")
    wlt = arr("weighted_exposure") if "weighted_exposure" in ltcube.data_vars else None
    pix = (np.asarray(ltcube["pix"].values, dtype=np.int64) if "pix" in ltcube.coords
           else np.arange(lt.shape[0], dtype=np.int64))
    return {
        "exposure": lt,
        "weighted_exposure": wlt,
        "costheta_min": np.asarray(ltcube["costheta_min"].values, dtype=np.float64),
        "costheta_max": np.asarray(ltcube["costheta_max"].values, dtype=np.float64),
        "pix": pix,
    }


def costheta_points(cmin, cmax, thetabin: str = "SQRT(1-COSTHETA)") -> np.ndarray:
    """The cos theta at which a livetime-cube bin is evaluated: the bin centre in
    sqrt(1 - cos theta) (gtltcube's default binning) or in cos theta."""
    cmin = np.asarray(cmin, dtype=np.float64)
    cmax = np.asarray(cmax, dtype=np.float64)
    if str(thetabin).upper().startswith("SQRT"):
        u = 0.5 * (np.sqrt(np.clip(1.0 - cmax, 0, None)) + np.sqrt(np.clip(1.0 - cmin, 0, None)))
        return 1.0 - u * u
    return 0.5 * (cmin + cmax)


def ltcube_costheta(ltcube, arr=None) -> np.ndarray:
    """Evaluation cos theta of each livetime-cube bin: the ``costheta`` coordinate when
    the Dataset has one, else :func:`costheta_points` of the bounds and ``thetabin``."""
    if "costheta" in ltcube.coords and np.issubdtype(ltcube["costheta"].dtype, np.floating):
        return np.asarray(ltcube["costheta"].values, dtype=np.float64)
    arr = arr or ltcube_arrays(ltcube)
    thetabin = ltcube.attrs.get("thetabin", ltcube.attrs.get("THETABIN", "SQRT(1-COSTHETA)"))
    return costheta_points(arr["costheta_min"], arr["costheta_max"], thetabin)


def _frame_lonlat(ltcube, ra, dec):
    frame = str(ltcube.attrs.get("frame", "CEL")).upper()
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    if frame in ("CEL", "EQU", "C", "ICRS", "FK5"):
        return ra, dec
    if frame in ("GAL", "G", "GALACTIC"):
        from astropy.coordinates import SkyCoord

        g = SkyCoord(ra, dec, unit="deg", frame="icrs").galactic
        return g.l.deg, g.b.deg
    raise GeometryError(f"livetime cube frame {frame!r} is not CEL or GAL")


def ltcube_pixel_rows(ltcube, ra, dec) -> np.ndarray:
    """Row of the livetime cube holding each direction (ra, dec in deg, ICRS); -1 where
    the cube has no such pixel."""
    import healpy as hp

    nside = int(ltcube.attrs["nside"])
    ordering = str(ltcube.attrs.get("ordering", "RING")).upper()
    lon, lat = _frame_lonlat(ltcube, ra, dec)
    ipix = hp.ang2pix(nside, lon.ravel(), lat.ravel(), nest=ordering.startswith("NEST"),
                      lonlat=True)
    pix = (np.asarray(ltcube["pix"].values, dtype=np.int64) if "pix" in ltcube.coords
           else np.arange(12 * nside * nside))
    if pix.size == 12 * nside * nside and np.array_equal(pix, np.arange(pix.size)):
        return ipix.astype(np.int64).reshape(np.shape(lon))
    order = np.argsort(pix)
    pos = np.searchsorted(pix[order], ipix)
    pos = np.clip(pos, 0, pix.size - 1)
    rows = np.where(pix[order][pos] == ipix, order[pos], -1)
    return rows.astype(np.int64).reshape(np.shape(lon))
