"""A set of instrument responses: one (Aeff, PSF, edisp) per event type of a partition.

``IRFSet.from_caldb("P8R2_SOURCE_V6", evtype=3)`` loads FRONT and BACK; ``evtype=60``
loads PSF0..PSF3.  Each response evaluates on its own (``aeff(..., event_type="BACK")``)
or summed over the selected types (the default for the effective area); the PSF and
energy dispersion summed over types are weighted by each type's effective area, which is
what a FRONT+BACK analysis sees.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IRFError
from .aeff import EffectiveArea
from .edisp import EnergyDispersion
from .psf import KingPSF

__all__ = ["Response", "IRFSet", "load_irfs"]


@dataclass(frozen=True)
class Response:
    """The responses of one event type."""

    event_type: str
    aeff: EffectiveArea
    psf: KingPSF
    edisp: EnergyDispersion


class IRFSet:
    """Responses of IRF ``irfs`` for the event types of ``evtype`` (in bit order)."""

    def __init__(self, irfs: str, evtype: int, responses: dict[str, Response],
                 caldb: str | None = None):
        if not responses:
            raise IRFError(f"IRF set {irfs!r} (evtype {evtype}) has no event type")
        self.irfs = irfs
        self.evtype = int(evtype)
        self.responses = dict(responses)
        self.caldb = caldb

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_caldb(cls, irfs: str, evtype=3, caldb: str | os.PathLike | None = None
                   ) -> "IRFSet":
        """Load the responses of ``irfs`` for the event types of ``evtype`` from a CALDB
        (a folder, or ``$CALDB``).  Loaded sets are cached per (name, mask, folder)."""
        from ..io.caldb import evtype_mask, resolve_caldb

        bcf = resolve_caldb(caldb)
        return _load_cached(str(irfs), evtype_mask(evtype), str(bcf))

    # -- bookkeeping ----------------------------------------------------------------
    @property
    def event_types(self) -> list[str]:
        return list(self.responses)

    def __repr__(self) -> str:
        return f"IRFSet({self.irfs!r}, evtype={self.evtype}, types={self.event_types})"

    def _select(self, event_type) -> list[Response]:
        if event_type is None:
            return list(self.responses.values())
        names = [event_type] if isinstance(event_type, str) else list(event_type)
        out = []
        for n in names:
            key = str(n).upper()
            if key not in self.responses:
                raise IRFError(
                    f"event type {n!r} is not in this IRF set ({self.irfs}, evtype "
                    f"{self.evtype}: {', '.join(self.responses)})"
                )
            out.append(self.responses[key])
        return out

    def __getitem__(self, event_type: str) -> Response:
        return self._select(event_type)[0]

    # -- evaluation -----------------------------------------------------------------
    def aeff(self, energy, costheta, phi=None, event_type=None) -> np.ndarray:
        """Effective area (cm2) summed over the selected event types."""
        rs = self._select(event_type)
        out = rs[0].aeff.value(energy, costheta, phi)
        for r in rs[1:]:
            out = out + r.aeff.value(energy, costheta, phi)
        return out

    def psf(self, offset, energy, costheta, event_type=None) -> np.ndarray:
        """PSF (sr^-1); with several event types the Aeff-weighted mean.  Shape:
        broadcast(energy, costheta) + offset.shape."""
        rs = self._select(event_type)
        if len(rs) == 1:
            return rs[0].psf.value(offset, energy, costheta)
        num = 0.0
        den = 0.0
        for r in rs:
            a = r.aeff.value(energy, costheta)
            num = num + a[..., None] * r.psf.value(offset, energy, costheta).reshape(
                a.shape + (-1,))
            den = den + a
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(den[..., None] > 0, num / den[..., None], 0.0)
        return out.reshape(np.shape(den) + np.shape(offset))

    def edisp(self, erec, etrue, costheta, event_type=None) -> np.ndarray:
        """Energy dispersion (MeV^-1); with several event types the Aeff-weighted mean."""
        rs = self._select(event_type)
        if len(rs) == 1:
            return rs[0].edisp.value(erec, etrue, costheta)
        num = 0.0
        den = 0.0
        for r in rs:
            a = r.aeff.value(etrue, costheta)
            num = num + a * r.edisp.value(erec, etrue, costheta)
            den = den + a
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, 0.0)

    def efficiency_factors(self, energy, event_type=None):
        """(f1, f2) livetime-fraction factors.  Without ``event_type`` those of the first
        type of the set (FRONT, PSF0 or EDISP0), as the Science Tools apply one pair of
        factors to every event type of an analysis."""
        r = self._select(event_type)[0] if event_type is not None else \
            next(iter(self.responses.values()))
        return r.aeff.efficiency_factors(energy)


@functools.lru_cache(maxsize=16)
def _load_cached(irfs: str, mask: int, bcf: str) -> IRFSet:
    from ..io.caldb import find_irf_files

    files = find_irf_files(irfs, mask, bcf)
    responses = {}
    name = irfs
    for t, f in files.items():
        name = f.irfs
        responses[t] = Response(
            event_type=t,
            aeff=EffectiveArea.from_files(f),
            psf=KingPSF.from_files(f),
            edisp=EnergyDispersion.from_files(f),
        )
    return IRFSet(name, mask, responses, caldb=str(Path(bcf)))


def load_irfs(irfs, evtype=3, caldb=None) -> IRFSet:
    """``irfs`` as an :class:`IRFSet`: an IRFSet passes through, a name is loaded."""
    if isinstance(irfs, IRFSet):
        return irfs
    return IRFSet.from_caldb(irfs, evtype, caldb)
