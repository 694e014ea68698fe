"""Helpers shared by the IRF classes: bin-centre grids padded the Science Tools' way."""

from __future__ import annotations

import numpy as np

# the padding nodes of latResponse's tables (log10 E in MeV, cos theta)
LOGE_PAD = (0.0, 10.0)
COSTH_PAD = (-1.0, 1.0)


def centres(table: dict) -> tuple[np.ndarray, np.ndarray]:
    """(log10 of the geometric energy-bin centres, arithmetic cos theta centres)."""
    elo = np.asarray(table["energ_lo"], dtype=np.float64)
    ehi = np.asarray(table["energ_hi"], dtype=np.float64)
    clo = np.asarray(table["ctheta_lo"], dtype=np.float64)
    chi = np.asarray(table["ctheta_hi"], dtype=np.float64)
    return np.log10(np.sqrt(elo * ehi)), 0.5 * (clo + chi)


def pad_grid(loge: np.ndarray, costh: np.ndarray, values: np.ndarray):
    """Pad the node axes with log10 E = 0, 10 and cos theta = -1, 1 and repeat the edge
    values there.  ``values`` has shape (n_costheta, n_energy, ...)."""
    xs = np.concatenate(([LOGE_PAD[0]], loge, [LOGE_PAD[1]]))
    ys = np.concatenate(([COSTH_PAD[0]], costh, [COSTH_PAD[1]]))
    v = np.asarray(values, dtype=np.float64)
    v = np.concatenate((v[:, :1], v, v[:, -1:]), axis=1)
    v = np.concatenate((v[:1], v, v[-1:]), axis=0)
    return xs, ys, np.ascontiguousarray(v)


def as_float_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)
