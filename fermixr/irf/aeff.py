"""Effective area of one event type, evaluated as the Science Tools' ``Aeff`` class does.

* The table (m2 in the file, cm2 here) lives on the (log10 E, cos theta) bin centres and
  is padded with repeated edge values at log10 E = 0, 10 and cos theta = -1, 1, so the
  area is constant beyond the outermost centres (e.g. below the first energy centre).
* Bilinear interpolation in log10 E and cos theta.
* Zero below the lowest cos theta edge of the table (0.2 for Pass 7/8); cos theta is
  capped at 0.99999 and at the highest bin centre.
* Optional azimuthal modulation (PHI_DEPENDENCE), looked up bin by bin without
  interpolation; off by default (as in the reference checks and gtexpcube2 with a
  livetime cube without phi bins).
* Livetime-fraction efficiency factors (EFFICIENCY_PARAMS): exposure =
  f1(E) * sum(livetime * Aeff) + f2(E) * sum(livetime * livetime_fraction * Aeff).
"""

from __future__ import annotations

import numpy as np

from ..errors import IRFError
from . import _kernels as K
from ._tables import as_float_array, centres, pad_grid

__all__ = ["EffectiveArea", "EfficiencyFactor"]


class EfficiencyFactor:
    """Livetime-fraction efficiency correction (``latResponse::EfficiencyFactor``).

    Each parameter row (a0, b0, a1, logEb1, a2, logEb2) is a continuous piecewise-linear
    function of log10(E/MeV).  Rows come in pairs (p0, p1): efficiency = p0 * ltfrac + p1.
    With two pairs (Pass 7: front and back in one HDU) the factors are their averages,
    as ``getLivetimeFactors`` returns them.
    """

    def __init__(self, rows):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        if rows.shape[0] not in (2, 4):
            raise IRFError(
                f"EFFICIENCY_PARAMS has {rows.shape[0]} rows, expected 2 (p0, p1) or 4 "
                f"(p0, p1 for front then back)"
            )
        self.rows = rows

    @staticmethod
    def _piecewise(row, loge):
        a0, b0, a1, le1, a2, le2 = row
        b1 = (a0 - a1) * le1 + b0
        b2 = (a1 - a2) * le2 + b1
        return np.where(loge < le1, a0 * loge + b0,
                        np.where(loge < le2, a1 * loge + b1, a2 * loge + b2))

    def factors(self, energy):
        """(f1, f2) at ``energy`` (MeV): exposure = f1 * livetime + f2 * weighted livetime."""
        loge = np.log10(as_float_array(energy))
        p0 = [self._piecewise(self.rows[i], loge) for i in range(0, self.rows.shape[0], 2)]
        p1 = [self._piecewise(self.rows[i], loge) for i in range(1, self.rows.shape[0], 2)]
        return sum(p1) / len(p1), sum(p0) / len(p0)

    def value(self, energy, livetime_fraction):
        """Efficiency p0(E) * livetime_fraction + p1(E) (averaged over front/back rows)."""
        f1, f2 = self.factors(energy)
        return f1 + f2 * as_float_array(livetime_fraction)


class EffectiveArea:
    """Effective area (cm2) of one event type versus true energy and inclination."""

    def __init__(self, table: dict, *, event_type: str = "", source: str = "",
                 phi_table: dict | None = None, efficiency_rows=None):
        loge, cth = centres(table)
        vals = np.asarray(table["values"]["EFFAREA"], dtype=np.float64) * 1e4  # m2 -> cm2
        self.event_type = event_type
        self.source = source
        self.loge_nodes, self.costh_nodes, self.table = pad_grid(loge, cth, vals)
        self.min_costh = float(table["ctheta_lo"][0])
        self.max_center = float(cth[-1])
        self.energy_bounds = (float(table["energ_lo"][0]), float(table["energ_hi"][-1]))
        self._phi = None
        if phi_table is not None:
            ploge, _ = centres(phi_table)
            names = list(phi_table["values"])
            ebounds = np.log10(np.concatenate((phi_table["energ_lo"], phi_table["energ_hi"][-1:])))
            cbounds = np.concatenate((phi_table["ctheta_lo"], phi_table["ctheta_hi"][-1:]))
            self._phi = (
                np.ascontiguousarray(ebounds, dtype=np.float64),
                np.ascontiguousarray(cbounds, dtype=np.float64),
                np.ascontiguousarray(phi_table["values"][names[0]], dtype=np.float64),
                np.ascontiguousarray(phi_table["values"][names[1]], dtype=np.float64),
                float(ploge[1] if ploge.size > 1 else ploge[0]),
            )
        self.efficiency = EfficiencyFactor(efficiency_rows) if efficiency_rows is not None else None

    @classmethod
    def from_files(cls, files) -> "EffectiveArea":
        from ..io.caldb import read_aeff

        t = read_aeff(files)
        return cls(t, event_type=files.event_type, source=f"{files.aeff[0]}[{files.aeff[1]}]",
                   phi_table=t["phi"], efficiency_rows=t["efficiency"])

    @property
    def has_phi_dependence(self) -> bool:
        return self._phi is not None

    def value(self, energy, costheta, phi=None) -> np.ndarray:
        """Effective area (cm2) at true ``energy`` (MeV) and inclination ``costheta``
        (broadcast together).  ``phi`` (deg) switches on the azimuthal modulation."""
        e, c = np.broadcast_arrays(as_float_array(energy), as_float_array(costheta))
        shape = e.shape
        loge = np.ascontiguousarray(np.log10(e).ravel())
        cf = np.ascontiguousarray(c.ravel())
        if np.any(loge > self.loge_nodes[-1]):
            raise IRFError(
                f"effective area {self.source}: energy above 1e10 MeV "
                f"(max requested {10 ** loge.max():.4g} MeV)"
            )
        out = K.aeff_values(loge, cf, self.loge_nodes, self.costh_nodes, self.table,
                            self.min_costh, self.max_center)
        if phi is not None and self._phi is not None:
            p = np.broadcast_to(as_float_array(phi), shape).ravel()
            eb, cb, p0, p1, lmin = self._phi
            out = out * K.phi_modulation(loge, cf, np.ascontiguousarray(p), eb, cb, p0, p1, lmin)
        return out.reshape(shape)

    __call__ = value

    def efficiency_factors(self, energy):
        """(f1, f2) livetime-fraction factors at ``energy``; (1, 0) without parameters."""
        e = as_float_array(energy)
        if self.efficiency is None:
            return np.ones_like(e), np.zeros_like(e)
        return self.efficiency.factors(e)


def aeff_reference(energy, costheta, loge_nodes, costh_nodes, table, min_costh, max_center):
    """Slow, obvious evaluation of the effective area at one point (test reference)."""
    c = float(costheta)
    if c < min_costh:
        return 0.0
    c = min(c, 0.99999, max_center)
    x = np.log10(float(energy))
    i = _st_index(loge_nodes, x)
    j = _st_index(costh_nodes, c)
    t = (x - loge_nodes[i - 1]) / (loge_nodes[i] - loge_nodes[i - 1])
    u = (c - costh_nodes[j - 1]) / (costh_nodes[j] - costh_nodes[j - 1])
    return ((1 - t) * (1 - u) * table[j - 1, i - 1] + t * (1 - u) * table[j - 1, i]
            + t * u * table[j, i] + (1 - t) * u * table[j, i - 1])


def _st_index(nodes, x):
    """Python version of the Science Tools' ``findIndex`` (test reference)."""
    nodes = list(nodes)
    if x == nodes[-1]:
        return len(nodes) - 1
    if x <= nodes[0]:
        return 1
    for i, v in enumerate(nodes):
        if v > x:
            return i
    return -1
