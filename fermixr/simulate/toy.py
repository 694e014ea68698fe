"""A small synthetic region of interest with known truth, for simulation tests, benchmarks
and examples of the likelihood and the fitters.

Source maps are built analytically (no IRFs): a smooth exposure (cm2 s) that varies with
energy and position, a Gaussian PSF-like blob for point sources whose width shrinks with
energy, an isotropic template and a structured "Galactic ridge" template.  Everything is
deterministic; randomness only enters through :meth:`ToyROI.simulate` with an explicit
``np.random.Generator``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..likelihood.cost import BinnedPoissonCost, SourceTerm
from ..model.spectral import get_spectral_model

__all__ = ["ToyROI", "toy_roi", "point_source_map"]

_DEG2SR = (math.pi / 180.0) ** 2


def _grid(npix: int, binsz: float):
    c = (np.arange(npix) - 0.5 * (npix - 1)) * binsz
    return np.meshgrid(c, c, indexing="ij")        # (y, x) in deg


def _exposure(energies, yy, xx, level=3e11):
    e = np.asarray(energies, float)[:, None, None]
    spectral = level * (0.55 + 0.45 * np.tanh(np.log10(e / 100.0)))      # rises with E
    r2 = (xx ** 2 + yy ** 2)[None]
    return spectral * (1.0 - 0.004 * r2)


def point_source_map(energies, npix=30, binsz=0.2, x0=0.0, y0=0.0, level=3e11):
    """Map (n_nodes, npix, npix) of a point source at (x0, y0) deg: exposure x the
    fraction of a Gaussian PSF (68% radius ~0.8 deg (E/100 MeV)^-0.8, >= 0.1 deg) in
    each pixel."""
    yy, xx = _grid(npix, binsz)
    e = np.asarray(energies, float)
    sig = np.maximum(0.8 * (e / 100.0) ** -0.8, 0.1) / 1.51
    r2 = (xx - x0) ** 2 + (yy - y0) ** 2
    frac = np.exp(-0.5 * r2[None] / sig[:, None, None] ** 2) \
        * binsz ** 2 / (2.0 * math.pi * sig[:, None, None] ** 2)
    return _exposure(e, yy, xx, level) * frac


@dataclasses.dataclass(frozen=True, eq=False)
class ToyROI:
    energies: np.ndarray          # (n_nodes,) MeV
    srcmaps: np.ndarray           # (n_src, n_nodes, npix, npix)
    sources: tuple[SourceTerm, ...]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def cost(self, counts, sources=None, **kw) -> BinnedPoissonCost:
        return BinnedPoissonCost(counts, self.srcmaps, self.energies,
                                 self.sources if sources is None else sources, **kw)

    def expected(self, sources=None) -> np.ndarray:
        """Model counts (n_bins, npix, npix) at the truth (or at ``sources``)."""
        nb = self.energies.size - 1
        c = self.cost(np.zeros((nb,) + self.srcmaps.shape[2:]), sources)
        return c.model_cube()

    def simulate(self, rng: np.random.Generator, sources=None) -> np.ndarray:
        return rng.poisson(self.expected(sources)).astype(np.float64)

    def with_free(self, free: dict[str, list[str]], bounds: dict | None = None,
                  values: dict | None = None) -> tuple[SourceTerm, ...]:
        """Source terms with the named parameters free (all others fixed); ``bounds``
        {"src:par": (lo, hi)} in scaled units; ``values`` {"src:par": physical value}."""
        out = []
        for s in self.sources:
            names = s.model.par_names
            fr = [n in free.get(s.name, ()) for n in names]
            b = s.bounds.copy()
            p = s.p.copy()
            for k, n in enumerate(names):
                key = f"{s.name}:{n}"
                if bounds and key in bounds:
                    b[k] = bounds[key]
                if values and key in values:
                    p[k] = values[key]
            out.append(SourceTerm.make(s.name, s.model, p, fr, b, s.scale))
        return tuple(out)


def toy_roi(npix: int = 30, nbins: int = 10, binsz: float = 0.2, emin: float = 100.0,
            emax: float = 1e5, with_null: bool = False,
            dtype=np.float64) -> ToyROI:
    """The reference toy: a PowerLaw point source "PS" at the centre, an isotropic
    background "iso" (PowerLaw, index 2.1), a structured diffuse background "gal"
    (LogParabola) and, with ``with_null``, a second point source "NULL" of zero flux at
    (1.4, -1.0) deg.  Truth in ``sources`` (all parameters fixed; free them with
    :meth:`ToyROI.with_free`)."""
    e = np.geomspace(emin, emax, nbins + 1)
    yy, xx = _grid(npix, binsz)
    expo = _exposure(e, yy, xx)
    omega = binsz ** 2 * _DEG2SR
    ps = point_source_map(e, npix, binsz)
    iso = expo * omega
    ridge = np.exp(-0.5 * (yy - 0.3) ** 2 / 0.8 ** 2) * (1.0 + 0.08 * xx) + 0.15
    gal = expo * omega * ridge[None]
    maps = [ps, iso, gal]
    PL = get_spectral_model("PowerLaw")()
    LP = get_spectral_model("LogParabola")()
    terms = [
        SourceTerm.make("PS", PL, PL.make_p(Prefactor=3e-12, Index=-2.2, Scale=1000.0),
                        None, [(1e-5, 1e3), (0.0, 5.0), (None, None)],
                        [1e-12, -1.0, 1.0]),
        SourceTerm.make("iso", PL, PL.make_p(Prefactor=1.5e-10, Index=-2.1, Scale=1000.0),
                        None, [(1e-5, 1e3), (0.0, 5.0), (None, None)],
                        [1e-10, -1.0, 1.0]),
        SourceTerm.make("gal", LP, LP.make_p(norm=5e-10, alpha=2.4, beta=0.08, Eb=1000.0),
                        None, None, [1e-10, 1.0, 1.0, 1.0]),
    ]
    if with_null:
        maps.append(point_source_map(e, npix, binsz, x0=1.4, y0=-1.0))
        terms.append(SourceTerm.make("NULL", PL, PL.make_p(Prefactor=0.0, Index=-2.0,
                                                           Scale=1000.0),
                                     None, [(0.0, 1e3), (0.0, 5.0), (None, None)],
                                     [1e-12, -1.0, 1.0]))
    srcmaps = np.ascontiguousarray(np.stack(maps).astype(dtype))
    return ToyROI(e, srcmaps, tuple(terms))
