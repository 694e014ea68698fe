"""The binned Poisson likelihood with energy dispersion: true-energy counts from source
maps at the extended true-energy nodes, redistributed into the measured bins by each
source's response matrix (the Science Tools' ``Drm``), as gtlike does with ``edisp_bins``.

    m[i, p] = sum_s sum_k D_s[i, k] (lo_{s,k} S_{s,k,p} + hi_{s,k} S_{s,k+1,p})

It has the interface of :class:`~fermixr.likelihood.cost.BinnedPoissonCost` (scaled
parameter vector, ``value_and_grad``, ``fisher``, ``hessian``) and is written in numpy:
the response matrix couples every true bin to every measured one, which the banded
kernels of the dispersion-free cost do not cover.  A source without dispersion
(``edisp_disable``) has D = identity on the measured bins.
"""

from __future__ import annotations

import numpy as np

from ..errors import GeometryError
from .cost import Cost, SourceTerm


class DispersedPoissonCost(Cost):
    def __init__(self, counts, srcmaps, true_edges, sources, drms, *, wmap=None,
                 scales=None):
        counts = np.asarray(counts, dtype=np.float64)
        nm = counts.shape[0]
        self.counts = counts.reshape(nm, -1)
        maps = np.asarray(srcmaps, dtype=np.float64)
        e = np.asarray(true_edges, dtype=np.float64)
        if maps.shape[1] != e.size:
            raise GeometryError(f"source maps have {maps.shape[1]} energy nodes, the true-energy "
                                f"axis {e.size}")
        self.maps = maps.reshape(maps.shape[0], e.size, -1)
        if scales is not None:   # expscale / src_expscale: one factor per source
            self.maps = self.maps * np.asarray(scales, dtype=np.float64)[:, None, None]
        self.w = (np.ones(self.counts.size) if wmap is None
                  else np.asarray(wmap, dtype=np.float64).reshape(-1))
        if self.w.size != self.counts.size:
            raise GeometryError(f"weights map of {self.w.size} values for a counts cube of "
                                f"{self.counts.size}")
        self.e = e
        self._half = 0.5 * np.log(e[1:] / e[:-1])
        self.terms = [SourceTerm.coerce(s) for s in sources]
        self.drms = [np.asarray(d, dtype=np.float64) for d in drms]
        for d in self.drms:
            if d.shape != (nm, e.size - 1):
                raise GeometryError(f"response matrix of shape {d.shape}; expected "
                                    f"({nm}, {e.size - 1})")
        names, bounds, scales, x0, index = [], [], [], [], []
        for j, t in enumerate(self.terms):
            for k in np.flatnonzero(t.free):
                names.append(f"{t.name}:{t.model.par_names[k]}")
                bounds.append(t.bounds[k])
                scales.append(t.scale[k])
                x0.append(t.p[k] / t.scale[k])
                index.append((j, int(k)))
        self.parameters = tuple(names)
        self.bounds = np.array(bounds, dtype=float).reshape(-1, 2)
        self.scales = np.array(scales, dtype=float)
        self.x0 = np.array(x0, dtype=float)
        self._index = index

    # -- pieces -----------------------------------------------------------------------
    def _params(self, x):
        ps = [t.p.copy() for t in self.terms]
        for (j, k), v, sc in zip(self._index, np.asarray(x, dtype=float), self.scales):
            ps[j][k] = v * sc
        return ps

    def _true(self, j, p):
        f = self.terms[j].model.evaluate(self.e, p)
        lo = self._half * self.e[:-1] * f[:-1]
        hi = self._half * self.e[1:] * f[1:]
        s = self.maps[j]
        return lo[:, None] * s[:-1] + hi[:, None] * s[1:]

    def _dtrue(self, j, p, ks):
        g = np.asarray(self.terms[j].model.gradient(self.e, p))[ks]
        dlo = self._half * self.e[:-1] * g[:, :-1]
        dhi = self._half * self.e[1:] * g[:, 1:]
        s = self.maps[j]
        return dlo[:, :, None] * s[None, :-1] + dhi[:, :, None] * s[None, 1:]

    def _model(self, ps):
        return sum(d @ self._true(j, p) for j, (d, p) in enumerate(zip(self.drms, ps)))

    def _jacobian(self, ps):
        """d m / d x (npar, n_meas * npix), in scaled units."""
        out = np.empty((len(self._index), self.counts.size))
        by_src: dict[int, list[int]] = {}
        for a, (j, _k) in enumerate(self._index):
            by_src.setdefault(j, []).append(a)
        for j, rows in by_src.items():
            ks = [self._index[a][1] for a in rows]
            dt = self._dtrue(j, ps[j], ks)                  # (nk, n_true, npix)
            dm = np.einsum("ik,akp->aip", self.drms[j], dt)
            out[rows] = dm.reshape(len(rows), -1) * self.scales[rows][:, None]
        return out

    # -- the cost ---------------------------------------------------------------------
    def _value(self, m) -> float:
        n, w = self.counts.ravel(), self.w
        pos = n > 0
        return float(-(np.sum(w[pos] * n[pos] * np.log(m[pos])) - np.sum(w * m)))

    def __call__(self, x) -> float:
        return self._value(self._model(self._params(x)).ravel())

    def value_and_grad(self, x):
        ps = self._params(x)
        m = self._model(ps).ravel()
        n = self.counts.ravel()
        r = self.w * (np.where(n > 0, n / np.where(m > 0, m, 1.0), 0.0) - 1.0)
        return self._value(m), -(self._jacobian(ps) @ r)

    def fisher(self, x):
        ps = self._params(x)
        m = self._model(ps).ravel()
        jac = self._jacobian(ps)
        inv = self.w * np.where(m > 0, 1.0 / np.where(m > 0, m, 1.0), 0.0)
        return (jac * inv) @ jac.T

    def hessian(self, x):
        """Observed information, by central differences of the analytic gradient."""
        x = np.asarray(x, dtype=float)
        h = np.empty((x.size, x.size))
        for a in range(x.size):
            step = 1e-5 * max(abs(x[a]), 1e-3)
            xp, xm = x.copy(), x.copy()
            xp[a] += step
            xm[a] -= step
            h[a] = (self.value_and_grad(xp)[1] - self.value_and_grad(xm)[1]) / (2 * step)
        return 0.5 * (h + h.T)

    def model_cube(self, x=None):
        x = self.x0 if x is None else x
        return self._model(self._params(x))

    def source_cube(self, name, x=None):
        x = self.x0 if x is None else x
        j = [t.name for t in self.terms].index(name)
        return self.drms[j] @ self._true(j, self._params(x)[j])
