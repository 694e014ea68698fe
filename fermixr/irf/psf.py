"""Point-spread function of one event type (Science Tools ``Psf3``; PSFVER 3, used by
Pass 7 and Pass 8 IRFs).

The PSF is a double King function of the angular separation,

    P(r) = NCORE * [K(r; SCORE*s, GCORE) + NTAIL * K(r; STAIL*s, GTAIL)],
    K(r; sigma, g) = (1 - 1/g) (1 + u/g)^-g,  u = (r/sigma)^2 / 2,

with r in radians and the scale factor s(E) = sqrt((c0 (E/100 MeV)^beta)^2 + c1^2) from
PSF_SCALING_PARAMS (Pass 8: c0, c1, beta; Pass 7: c0, c1 of front, of back, beta).

As in ``Psf3``:

* parameters are attached to the (log10 E, cos theta) bin centres, padded with nodes at
  log10 E = 0, 10 and cos theta = -1, 1 repeating the edge parameters;
* each node is normalised with its own energy in s(E): to 1 over 0..90 deg by the
  flat-sky (small-angle) integral when the node energy is >= 120 MeV, by numerical
  integration over the sphere (2 pi sin r dr, 0..90 deg) below 120 MeV;
* the PSF at (E, theta) is the bilinear interpolation in (log10 E, cos theta) of the four
  surrounding node PSFs evaluated at the requested separation -- the values are
  interpolated, not the parameters.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import IRFError
from . import _kernels as K
from ._tables import as_float_array, centres, pad_grid

__all__ = ["KingPSF", "psf_scale_factor"]

PAR_NAMES = ("NCORE", "NTAIL", "SCORE", "STAIL", "GCORE", "GTAIL")
_NORM_RADIUS = math.pi / 2.0  # Psf3::normalize_pars(radius = 90 deg)
_NUMERIC_BELOW = 120.0  # MeV


def psf_scale_factor(energy, c0: float, c1: float, beta: float):
    """s(E) = sqrt((c0 (E/100)^beta)^2 + c1^2) (radians)."""
    t = c0 * (as_float_array(energy) / 100.0) ** beta
    return np.sqrt(t * t + c1 * c1)


def _scaling_pars(scaling, is_front: bool) -> tuple[float, float, float]:
    s = np.asarray(scaling, dtype=np.float64).ravel()
    if s.size == 3:
        return float(s[0]), float(s[1]), float(s[2])
    if s.size >= 5:
        return (float(s[0]), float(s[1]), float(s[4])) if is_front else \
            (float(s[2]), float(s[3]), float(s[4]))
    raise IRFError(f"PSF_SCALING_PARAMS has {s.size} values, expected 3 (Pass 8) or 5 (Pass 7)")


def _numeric_norm(p) -> float:
    """Integral of the node PSF over 0..90 deg with 2 pi sin(r) dr (composite
    Gauss-Legendre on log-spaced pieces refined around the core and tail widths)."""
    from scipy.integrate import quad

    def f(r):
        return K.double_king(r, p[0], p[1], p[2], p[3], p[4], p[5]) * 2.0 * math.pi * math.sin(r)

    pts = sorted({x for x in (p[2], 3 * p[2], p[3], 3 * p[3]) if 0 < x < _NORM_RADIUS})
    val, _ = quad(f, 0.0, _NORM_RADIUS, points=pts or None, limit=500, epsabs=0.0,
                  epsrel=1e-11)
    return val


def _flat_norm(p) -> float:
    rc = _NORM_RADIUS / p[2]
    rt = _NORM_RADIUS / p[3]
    return p[0] * (K.king_base_integral(0.5 * rc * rc, p[4]) * 2 * math.pi * p[2] ** 2
                   + p[1] * K.king_base_integral(0.5 * rt * rt, p[5]) * 2 * math.pi * p[3] ** 2)


class KingPSF:
    """PSF (sr^-1) of one event type versus separation, true energy and inclination."""

    def __init__(self, table: dict, scaling, *, is_front: bool = True, event_type: str = "",
                 source: str = ""):
        self.event_type = event_type
        self.source = source
        self.scaling = _scaling_pars(scaling, is_front)
        loge, cth = centres(table)
        raw = np.stack([np.asarray(table["values"][n], dtype=np.float64) for n in PAR_NAMES],
                       axis=-1)  # (n_costheta, n_energy, 6)
        xs, ys, pars = pad_grid(loge, cth, raw)
        self.loge_nodes = xs
        self.costh_nodes = ys
        self.node_energies = 10.0 ** xs
        sf = psf_scale_factor(self.node_energies, *self.scaling)
        pars = pars.copy()
        pars[..., 2] *= sf[None, :]
        pars[..., 3] *= sf[None, :]
        if np.any(pars[..., 4] < 0) or np.any(pars[..., 5] < 0):
            raise IRFError(f"PSF table {source}: negative King index (GCORE/GTAIL)")
        norms = np.empty(pars.shape[:2])
        for j in range(pars.shape[0]):
            for i in range(pars.shape[1]):
                p = pars[j, i]
                norms[j, i] = (_numeric_norm(p) if self.node_energies[i] < _NUMERIC_BELOW
                               else _flat_norm(p))
        pars[..., 0] /= norms
        self.node_norms = norms
        self.node_pars = np.ascontiguousarray(pars)

    @classmethod
    def from_files(cls, files) -> "KingPSF":
        from ..io.caldb import read_psf

        t = read_psf(files)
        if t["psfver"] not in (3,):
            raise IRFError(
                f"PSF file {files.psf[0]} has PSFVER={t['psfver']}; only the double-King "
                f"format with interpolated distributions (PSFVER 3, Pass 7 and Pass 8) is "
                f"supported"
            )
        return cls(t, t["scaling"], is_front=files.is_front, event_type=files.event_type,
                   source=f"{files.psf[0]}[{files.psf[1]}]")

    def value(self, offset, energy, costheta) -> np.ndarray:
        """PSF (sr^-1) at angular ``offset`` (deg) for true ``energy`` (MeV) and
        inclination ``costheta``.

        ``energy`` and ``costheta`` broadcast together to a shape B; ``offset`` is taken
        as an outer axis: the result has shape B + offset.shape.
        """
        e, c = np.broadcast_arrays(as_float_array(energy), as_float_array(costheta))
        off = as_float_array(offset)
        loge = np.ascontiguousarray(np.log10(e).ravel())
        if np.any(loge > self.loge_nodes[-1]):
            raise IRFError(f"PSF {self.source}: energy above 1e10 MeV")
        sep = np.ascontiguousarray(np.radians(off).ravel())
        out = K.psf3_values(sep, loge, np.ascontiguousarray(c.ravel()),
                            self.loge_nodes, self.costh_nodes, self.node_pars)
        return out.reshape(e.shape + off.shape)

    __call__ = value

    def integral(self, radius, energy, costheta) -> np.ndarray:
        """Flat-sky integral of the PSF within ``radius`` (deg), interpolated between the
        node integrals as ``Psf3::angularIntegral`` does for energies >= 120 MeV (below,
        the Science Tools integrate numerically; here the same node interpolation is
        used).  Shape as :meth:`value`."""
        e, c = np.broadcast_arrays(as_float_array(energy), as_float_array(costheta))
        r = np.radians(as_float_array(radius)).ravel()
        loge = np.log10(e).ravel()
        cf = c.ravel()
        out = np.empty((loge.size, r.size))
        p = self.node_pars
        for k in range(loge.size):
            i = K.find_index(self.loge_nodes, loge[k])
            j = K.find_index(self.costh_nodes, cf[k])
            t = (loge[k] - self.loge_nodes[i - 1]) / (self.loge_nodes[i] - self.loge_nodes[i - 1])
            u = (cf[k] - self.costh_nodes[j - 1]) / (self.costh_nodes[j] - self.costh_nodes[j - 1])
            acc = np.zeros(r.size)
            for (jj, ii, w) in ((j - 1, i - 1, (1 - t) * (1 - u)), (j - 1, i, t * (1 - u)),
                                (j, i, t * u), (j, i - 1, (1 - t) * u)):
                q = p[jj, ii]
                uc = 0.5 * (r / q[2]) ** 2
                ut = 0.5 * (r / q[3]) ** 2
                acc += w * q[0] * (
                    (1 - (1 + uc / q[4]) ** (1 - q[4])) * 2 * np.pi * q[2] ** 2
                    + q[1] * (1 - (1 + ut / q[5]) ** (1 - q[5])) * 2 * np.pi * q[3] ** 2)
            out[k] = acc
        return out.reshape(e.shape + np.shape(radius))


def psf_reference(offset_deg, energy, costheta, psf: KingPSF) -> float:
    """Slow, obvious evaluation of :class:`KingPSF` at one point (test reference)."""
    from .aeff import _st_index

    x = math.log10(energy)
    i = _st_index(psf.loge_nodes, x)
    j = _st_index(psf.costh_nodes, costheta)
    t = (x - psf.loge_nodes[i - 1]) / (psf.loge_nodes[i] - psf.loge_nodes[i - 1])
    u = (costheta - psf.costh_nodes[j - 1]) / (psf.costh_nodes[j] - psf.costh_nodes[j - 1])
    r = math.radians(offset_deg)

    def node(jj, ii):
        nc, nt, sc, st, gc, gt = psf.node_pars[jj, ii]
        gc1 = 1.001 if gc == 1 else gc
        gt1 = 1.001 if gt == 1 else gt
        kc = (1 - 1 / gc1) * (1 + (r / sc) ** 2 / 2 / gc1) ** (-gc1)
        kt = (1 - 1 / gt1) * (1 + (r / st) ** 2 / 2 / gt1) ** (-gt1)
        return nc * (kc + nt * kt)

    return ((1 - t) * (1 - u) * node(j - 1, i - 1) + t * (1 - u) * node(j - 1, i)
            + t * u * node(j, i) + (1 - t) * u * node(j, i - 1))
