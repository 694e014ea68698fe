"""The binned Poisson likelihood with energy dispersion: true-energy counts from source
maps at the extended true-energy nodes, redistributed into the measured bins by each
source's response matrix (the Science Tools' ``Drm``), as gtlike does with ``edisp_bins``.

    m[i, p] = sum_s sum_k D_s[i, k] (lo_{s,k} S_{s,k,p} + hi_{s,k} S_{s,k+1,p})

It has the interface of :class:`~fermixr.likelihood.cost.BinnedPoissonCost` (scaled
parameter vector, ``value_and_grad``, ``fisher``, ``hessian``, ``model_cube``,
``source_cube``) and runs on the numba kernels of
:mod:`fermixr.likelihood._dispersed_kernels`:

* sources that share a response matrix (in practice all but the ``edisp_disable`` ones,
  which share the identity) form one GROUP: their true counts are summed per group and
  each group is dispersed once; the gradient folds the residuals back once per group
  (D^T r) and needs per source only two sums of map rows against it;
* each matrix is stored with its band (per measured row, the range of true bins with
  non-zero entries), so a banded response costs a few multiply-adds per pixel;
* sources without free parameters are summed once, at construction, into a fixed cube of
  MEASURED counts (their matrices do not change either);
* the Fisher matrix and the exact Hessian are built from per-parameter derivative rows of
  each pixel segment (effective node coefficients of D and the spectral derivatives) and
  one BLAS product per segment.

A source without dispersion (``edisp_disable``) has D = identity on the measured bins.
:class:`ReferenceDispersedPoissonCost` is the plain-numpy version (dense ``D_s @ true``
per source), kept as the slow reference for tests and benchmarks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import GeometryError
from . import _dispersed_kernels as KD
from .cost import (_CHUNK, _DELTA_PARALLEL_MIN, _EMPTY, _INFO_BYTES, _UNIT_BYTES,
                   PARALLEL_MIN_WORK, Cost, SourceTerm, _MapCost)

__all__ = ["DispersedPoissonCost", "ReferenceDispersedPoissonCost"]


def _band(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kl, kh) per row of ``d``: the non-zero entries of row i lie in kl <= k < kh
    (kl = kh = 0 for an all-zero row)."""
    nz = d != 0.0
    any_ = nz.any(axis=1)
    kl = np.where(any_, np.argmax(nz, axis=1), 0)
    kh = np.where(any_, d.shape[1] - np.argmax(nz[:, ::-1], axis=1), 0)
    return kl.astype(np.int64), kh.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class _Pack:
    """The kernel arguments describing a set of sources: ``order`` (positions in the
    cost's source list, grouped by matrix), ``idx`` (map indices, same order),
    ``gstart``, ``drm``, ``kl``/``kh``, ``tlo``/``thi`` (see the kernel module)."""

    order: np.ndarray
    idx: np.ndarray
    gstart: np.ndarray
    drm: np.ndarray
    kl: np.ndarray
    kh: np.ndarray
    tlo: np.ndarray
    thi: np.ndarray

    def args(self):
        return (self.idx, self.gstart, self.drm, self.kl, self.kh, self.tlo, self.thi)


class DispersedPoissonCost(_MapCost):
    """-log L of one binned component with energy dispersion.

    Parameters
    ----------
    counts : (n_meas, ...) observed counts (flattened over the spatial axes).
    srcmaps : (n_src, n_true + 1, ...) source maps at the true-energy nodes, float32 or
        float64 (never copied when C-contiguous), in the order of ``sources``.
    true_edges : (n_true + 1,) true-energy nodes, MeV.
    sources : sequence of :class:`SourceTerm`, fermixr ``Source`` objects or tuples.
    drms : one (n_meas, n_true) response matrix per source (identical matrices are
        recognised and share their work).
    wmap : optional (n_meas, ...) likelihood weights.
    scales : optional factor per source on its map (expscale / src_expscale).
    seg : pixel-segment length of the kernels' work units (default: sized so one unit's
        map rows stay in cache).  Results do not depend on the thread count, but do (at
        the 1e-15 level) on ``seg``.
    parallel : force the parallel (True) or serial (False) kernels; default by size.
    """

    def __init__(self, counts, srcmaps, true_edges, sources, drms, *, wmap=None,
                 scales=None, seg: int | None = None, parallel: bool | None = None):
        self._setup(counts, srcmaps, true_edges, sources, wmap)
        self.true_edges = self.nodes
        nm, npix = self.counts.shape
        nt = self.nodes.size - 1
        ns = len(self.sources)
        self.bin_range = (0, nm)
        if scales is not None:
            sc = np.asarray(scales, dtype=np.float64).ravel()
            if sc.size != ns:
                raise GeometryError(f"scales: {sc.size} factor(s) for {ns} sources")
            self.expscale = sc
        drms = list(drms)
        if len(drms) != ns:
            raise GeometryError(f"{len(drms)} response matrices for {ns} sources")
        # groups of sources with identical matrices
        keys: dict[bytes, int] = {}
        self._groups: list[np.ndarray] = []
        gid = np.empty(ns, dtype=np.int64)
        for j, d in enumerate(drms):
            d = np.ascontiguousarray(d, dtype=np.float64)
            if d.shape != (nm, nt):
                raise GeometryError(f"response matrix of shape {d.shape}; expected "
                                    f"({nm}, {nt})")
            k = d.tobytes()
            if k not in keys:
                keys[k] = len(self._groups)
                self._groups.append(d)
            gid[j] = keys[k]
        self._gid = gid
        self._bands = [_band(d) for d in self._groups]
        # the free sources, grouped by matrix, as the kernels see them
        free_src = [j for j, t in enumerate(self.sources) if t.free.any()]
        self._free = self._pack(free_src)
        self._set_parameters(self._free.order)
        nfs = len(free_src)
        work = max(1, nfs) * (nt + 1) * npix
        self._parallel = (work >= PARALLEL_MIN_WORK) if parallel is None else bool(parallel)
        self._parallel_opt = None if parallel is None else bool(parallel)
        self._packs: dict[tuple, _Pack] = {}
        if seg is None:
            per_pix = (max(1, nfs) * (nt + 1) * self.maps.itemsize
                       + 8 * (2 * len(self._groups) * nt + 2 * nm))
            seg = int(np.clip(_UNIT_BYTES // per_pix, 64, 16384)) // 32 * 32
        self.seg = max(1, min(int(seg), npix))
        self.info_seg = max(1, min(npix, int(np.clip(
            _INFO_BYTES // (8 * max(1, self.npar) * nm), 256, 1 << 20))))
        # the fixed sources, dispersed and summed once
        fixed_src = [j for j, t in enumerate(self.sources) if not t.free.any()
                     and self.expscale[j] != 0.0]
        if fixed_src:
            pk = self._pack(fixed_src)
            lo, hi = self._node_weights_of(pk.order)
            fc = np.empty((nm, npix))
            mc = KD.model_cube_parallel if (len(fixed_src) * (nt + 1) * npix
                                            >= PARALLEL_MIN_WORK) else KD.model_cube_serial
            mc(_EMPTY, self.maps, *pk.args(), lo, hi, self.seg, fc)
            self.fixed = fc
        else:
            self.fixed = _EMPTY

    # -- sources -> kernel arguments ----------------------------------------------------
    def _pack(self, srcs) -> _Pack:
        srcs = np.asarray(list(srcs), dtype=np.int64)
        nm, nt = self.counts.shape[0], self.nodes.size - 1
        used = sorted(set(int(self._gid[j]) for j in srcs))
        order = (np.concatenate([srcs[self._gid[srcs] == g] for g in used])
                 if used else np.zeros(0, np.int64))
        gstart = np.zeros(len(used) + 1, dtype=np.int64)
        for a, g in enumerate(used):
            gstart[a + 1] = gstart[a] + int(np.sum(self._gid[srcs] == g))
        drm = np.zeros((len(used), nm, nt))
        kl = np.zeros((len(used), nm), dtype=np.int64)
        kh = np.zeros((len(used), nm), dtype=np.int64)
        tlo = np.zeros(len(used), dtype=np.int64)
        thi = np.zeros(len(used), dtype=np.int64)
        for a, g in enumerate(used):
            drm[a] = self._groups[g]
            kl[a], kh[a] = self._bands[g]
            rows = kh[a] > kl[a]
            if rows.any():
                tlo[a] = kl[a][rows].min()
                thi[a] = kh[a][rows].max()
        return _Pack(order, order.copy(), gstart, drm, kl, kh, tlo, thi)

    # -- the kernels ----------------------------------------------------------------------
    def _new_cube(self) -> np.ndarray:
        return np.empty(self.counts.shape)

    def _run_loglike(self, lo, hi, want_grad, m):
        kern = KD.loglike_parallel if self._parallel else KD.loglike_serial
        return kern(self.counts, self.wmap, self.fixed, self.maps, *self._free.args(),
                    lo, hi, self.seg, want_grad, m)

    def _run_cube(self, lo, hi, m):
        kern = KD.model_cube_parallel if self._parallel else KD.model_cube_serial
        kern(self.fixed, self.maps, *self._free.args(), lo, hi, self.seg, m)

    def _run_delta(self, srcs, dlo, dhi, m, write):
        """(d log L, rounding scale, bad) of the node-weight changes dlo/dhi of sources
        ``srcs`` on cube ``m`` (``_dispersed_kernels.delta_loglike_serial``), or None when
        the pixel chunks they touch are not much less work than a full evaluation."""
        nm, npix = self.counts.shape
        mask = np.zeros(-(-npix // _CHUNK), dtype=bool)
        for a, j in enumerate(srcs):
            sup = self._support(j)
            mask |= (sup[:-1] & (dlo[a] != 0.0)[:, None]).any(axis=0)
            mask |= (sup[1:] & (dhi[a] != 0.0)[:, None]).any(axis=0)
        touched = int(mask.sum()) * _CHUNK
        if touched * (len(srcs) + 4) > 0.5 * npix * (self._order.size + 4):
            return None
        key = tuple(int(j) for j in srcs)
        pk = self._packs.get(key)
        if pk is None:
            if len(self._packs) > 64:
                self._packs.clear()
            pk = self._packs[key] = self._pack(srcs)
        row = {j: a for a, j in enumerate(key)}
        perm = np.array([row[int(j)] for j in pk.order], dtype=np.int64)
        par = (touched * len(srcs) * nm >= _DELTA_PARALLEL_MIN) \
            if self._parallel_opt is None else self._parallel_opt
        kern = KD.delta_loglike_parallel if par else KD.delta_loglike_serial
        return kern(self.counts, self.wmap, m, self.maps, *pk.args(),
                    np.ascontiguousarray(dlo[perm]), np.ascontiguousarray(dhi[perm]),
                    np.flatnonzero(mask).astype(np.int64), _CHUNK, bool(write))

    def _one_source(self, j, lo, hi, out):
        KD.model_cube_serial(_EMPTY, self.maps, *self._pack([j]).args(), lo, hi, self.seg,
                             out)

    def _coefficients(self, dlo, dhi):
        """Effective node coefficients C (npar, n_meas, n_true + 1) of dm_q and their
        node bands (cl, ch), each (npar, n_meas)."""
        nm, nt = self.counts.shape[0], self.nodes.size - 1
        C = np.zeros((self.npar, nm, nt + 1))
        cl = np.zeros((self.npar, nm), dtype=np.int64)
        ch = np.zeros((self.npar, nm), dtype=np.int64)
        for q, j in enumerate(self._q_map):
            g = self._gid[j]
            d = self._groups[g]
            C[q, :, :-1] += d * dlo[q][None, :]
            C[q, :, 1:] += d * dhi[q][None, :]
            kl, kh = self._bands[g]
            cl[q] = kl
            ch[q] = np.where(kh > kl, kh + 1, kl)
        return C, cl, ch

    def _run_info(self, v, dlo, dhi):
        """sum over pixel segments of G G^T, G the rows sqrt(v) dm_q of each segment."""
        nm, npix = self.counts.shape
        C, cl, ch = self._coefficients(dlo, dhi)
        rows = KD.info_rows_parallel if self._parallel else KD.info_rows_serial
        nq = self.npar
        F = np.zeros((nq, nq))
        seg = self.info_seg
        G = np.empty((nq, nm, seg))
        for p0 in range(0, npix, seg):
            p1 = min(npix, p0 + seg)
            if p1 - p0 != G.shape[2]:
                G = np.empty((nq, nm, p1 - p0))
            rows(v, self.maps, self._q_map, C, cl, ch, p0, p1, G)
            Gf = G.reshape(nq, -1)
            F += Gf @ Gf.T
        return 0.5 * (F + F.T)

    def __repr__(self) -> str:
        nm, npix = self.counts.shape
        return (f"DispersedPoissonCost({len(self.sources)} sources in {len(self._groups)} "
                f"response group(s), {self.npar} free parameters, {nm} bins x {npix} "
                "pixels)")


# =======================================================================================
# the slow reference: plain numpy, one dense D_s @ true_s per source
# =======================================================================================
class ReferenceDispersedPoissonCost(Cost):
    """The numpy implementation (dense matrix products, einsum Jacobian, Hessian by
    central differences of the gradient); same constructor and numbers as
    :class:`DispersedPoissonCost`, kept as its slow reference."""

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
