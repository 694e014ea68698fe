"""Numba kernel of the exposure cube: livetime distributions x effective area."""

from __future__ import annotations

import numpy as np

from .._jit import pnjit, prange


@pnjit
def exposure_from_livetime(lt, wlt, a1, a2, rows):
    """Exposure (cm2 s) of shape (n_energy, n_dir).

    ``lt``, ``wlt``: livetime and livetime-fraction weighted livetime, (n_pix, n_cth);
    ``a1``, ``a2``: (n_energy, n_cth) effective areas at the cos theta bin points already
    multiplied by the efficiency factors f1 and f2 (and summed over event types);
    ``rows``: livetime-cube row of each direction (-1: no row, exposure 0).
    exposure[e, d] = sum_c a1[e, c] lt[rows[d], c] + a2[e, c] wlt[rows[d], c].
    """
    ne = a1.shape[0]
    nc = a1.shape[1]
    nd = rows.shape[0]
    out = np.zeros((ne, nd))
    for d in prange(nd):
        r = rows[d]
        if r < 0:
            continue
        for e in range(ne):
            s = 0.0
            for c in range(nc):
                s += a1[e, c] * lt[r, c] + a2[e, c] * wlt[r, c]
            out[e, d] = s
    return out


def exposure_from_livetime_reference(lt, wlt, a1, a2, rows):
    """Slow, obvious version of :func:`exposure_from_livetime` (test reference)."""
    out = np.zeros((a1.shape[0], len(rows)))
    for d, r in enumerate(rows):
        if r < 0:
            continue
        out[:, d] = a1 @ lt[r] + a2 @ wlt[r]
    return out
