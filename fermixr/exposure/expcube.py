"""Exposure (cm2 s) at sky directions and true energies from a livetime cube, as
gtexpcube2 computes it.

For each direction the livetime distribution of the HEALPix pixel that contains it is
used (no interpolation between pixels, as the Science Tools' ``HealpixArray`` lookup).
The effective area of each event type is evaluated at one point per cos theta bin --
the bin centre in sqrt(1 - cos theta) for gtltcube's binning, i.e.
cos theta_i = 1 - ((i + 1/2)/n)^2 (1 - cosmin) -- multiplied by the bin's livetime and
summed over bins and event types.  With the efficiency correction (default) the
exposure is f1(E) * sum(lt * Aeff) + f2(E) * sum(weighted lt * Aeff) with the
livetime-fraction factors of the first event type of the set (FRONT, PSF0, EDISP0), the
pair the Science Tools apply to every type.

The livetime cube is read through :mod:`fermixr.irf.livetime` (its contract is described
there; the helpers are re-exported here).  A ``phi`` dim is summed over (the azimuthal
modulation of the effective area is not applied).
"""

from __future__ import annotations

import numpy as np

from ..errors import GeometryError
from ..irf.livetime import (costheta_points, ltcube_arrays, ltcube_costheta,
                             ltcube_pixel_rows)
from ._expcube_kernels import exposure_from_livetime

__all__ = ["exposure_at", "ltcube_arrays", "ltcube_pixel_rows", "ltcube_costheta",
           "costheta_points"]


def exposure_at(ltcube, irfs, ra, dec, energies, *, evtype=3, caldb=None,
                efficiency: bool = True, efficiency_mode: str = "first",
                thmin: float = 0.0, thmax: float = 180.0) -> np.ndarray:
    """Exposure (cm2 s), shape (n_energy, n_dir), at directions (``ra``, ``dec`` in deg,
    1-D, ICRS) and true ``energies`` (MeV).

    ``irfs`` is an :class:`~fermixr.irf.irfset.IRFSet` or an IRF name (loaded with
    ``evtype`` and ``caldb``).  ``efficiency`` applies the livetime-fraction
    correction; ``efficiency_mode="first"`` uses the first event type's factors for all
    types (the Science Tools), ``"per_type"`` each type's own.  ``thmin``/``thmax``
    (deg) restrict the inclination range as gtexpcube2's parameters of that name do.
    """
    from ..irf.irfset import load_irfs

    irf = load_irfs(irfs, evtype, caldb)
    arr = ltcube_arrays(ltcube)
    e = np.atleast_1d(np.asarray(energies, dtype=np.float64)).ravel()
    ra = np.atleast_1d(np.asarray(ra, dtype=np.float64)).ravel()
    dec = np.atleast_1d(np.asarray(dec, dtype=np.float64)).ravel()
    if ra.shape != dec.shape:
        raise GeometryError(f"ra and dec differ in shape: {ra.shape} vs {dec.shape}")
    rows = ltcube_pixel_rows(ltcube, ra, dec).ravel()
    cth = ltcube_costheta(ltcube, arr)
    keep = (cth >= np.cos(np.radians(thmax))) & (cth <= np.cos(np.radians(thmin)))

    a1 = np.zeros((e.size, cth.size))
    a2 = np.zeros((e.size, cth.size))
    have_w = efficiency and arr["weighted_exposure"] is not None
    f1_first, f2_first = irf.efficiency_factors(e)
    for name, r in irf.responses.items():
        a = r.aeff.value(e[:, None], cth[None, :]) * keep[None, :]
        if not efficiency:
            a1 += a
            continue
        if efficiency_mode == "per_type":
            f1, f2 = r.aeff.efficiency_factors(e)
        elif efficiency_mode == "first":
            f1, f2 = f1_first, f2_first
        else:
            raise GeometryError(
                f"efficiency_mode must be 'first' or 'per_type', got {efficiency_mode!r}")
        a1 += np.asarray(f1)[:, None] * a
        if have_w:
            a2 += np.asarray(f2)[:, None] * a
    wlt = arr["weighted_exposure"] if arr["weighted_exposure"] is not None else \
        np.zeros_like(arr["exposure"])
    return exposure_from_livetime(arr["exposure"], wlt, np.ascontiguousarray(a1),
                                  np.ascontiguousarray(a2), np.ascontiguousarray(rows))
