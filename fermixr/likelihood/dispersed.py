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

from ..errors import GeometryError, RecipeError
from . import _dispersed_kernels as KD
from ._kernels import info_weights
from .cost import PARALLEL_MIN_WORK, Cost, SourceTerm
from .npred import node_weights, second_node_weights

__all__ = ["DispersedPoissonCost", "ReferenceDispersedPoissonCost"]

_EMPTY = np.zeros((0, 0))
_UNIT_BYTES = 3 << 20      # map bytes per log-likelihood work unit (kept in cache)
_INFO_BYTES = 8 << 20      # derivative rows per information-matrix segment


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


@dataclasses.dataclass(frozen=True)
class _Eval:
    key: bytes
    value: float
    grad: np.ndarray
    A: np.ndarray
    B: np.ndarray
    model: np.ndarray


class DispersedPoissonCost(Cost):
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
        counts = np.asarray(counts, dtype=np.float64)
        nm = counts.shape[0]
        self.spatial_shape = counts.shape[1:] if counts.ndim > 1 else (1,)
        self.counts = np.ascontiguousarray(counts.reshape(nm, -1))
        npix = self.counts.shape[1]
        maps = np.asarray(srcmaps)
        if maps.dtype not in (np.float32, np.float64):
            maps = maps.astype(np.float64)
        e = np.asarray(true_edges, dtype=np.float64).ravel()
        if maps.ndim < 2 or maps.shape[1] != e.size:
            nodes = maps.shape[1] if maps.ndim >= 2 else "?"
            raise GeometryError(f"source maps have {nodes} energy nodes, the true-energy "
                                f"axis {e.size}")
        terms = [SourceTerm.coerce(s) for s in sources]
        if maps.shape[0] != len(terms) or maps.size != len(terms) * e.size * npix:
            raise GeometryError(
                f"source maps must be (n_src={len(terms)}, n_nodes={e.size}, "
                f"pixels={npix}); got shape {maps.shape}")
        self.maps = np.ascontiguousarray(maps.reshape(len(terms), e.size, npix))
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise RecipeError(f"sources named more than once: {dup}")
        self.terms = terms
        self.sources = tuple(terms)
        self.source_names = tuple(names)
        if wmap is None:
            self.wmap = _EMPTY
        else:
            w = np.asarray(wmap, dtype=np.float64).reshape(-1)
            if w.size != self.counts.size:
                raise GeometryError(f"weights map of {w.size} values for a counts cube of "
                                    f"{self.counts.size}")
            self.wmap = np.ascontiguousarray(w.reshape(nm, npix))
        if scales is None:
            self.expscale = np.ones(len(terms))
        else:
            sc = np.asarray(scales, dtype=np.float64).ravel()
            if sc.size != len(terms):
                raise GeometryError(f"scales: {sc.size} factor(s) for {len(terms)} sources")
            self.expscale = sc
        self.e = e
        self.true_edges = e
        nt = e.size - 1
        drms = list(drms)
        if len(drms) != len(terms):
            raise GeometryError(f"{len(drms)} response matrices for {len(terms)} sources")
        self.drms = [np.asarray(d, dtype=np.float64) for d in drms]
        for d in self.drms:
            if d.shape != (nm, nt):
                raise GeometryError(f"response matrix of shape {d.shape}; expected "
                                    f"({nm}, {nt})")
        # groups of sources with identical matrices
        keys: dict[bytes, int] = {}
        self._groups: list[np.ndarray] = []
        gid = np.empty(len(terms), dtype=np.int64)
        for j, d in enumerate(self.drms):
            k = np.ascontiguousarray(d).tobytes()
            if k not in keys:
                keys[k] = len(self._groups)
                self._groups.append(np.ascontiguousarray(d))
            gid[j] = keys[k]
        self._gid = gid
        self._bands = [_band(d) for d in self._groups]
        # parameters (in source order, as the dispersion-free cost)
        pnames, bnds, psc, x0, isnorm, index = [], [], [], [], [], []
        for j, t in enumerate(terms):
            for k in np.flatnonzero(t.free):
                pnames.append(f"{t.name}:{t.model.par_names[k]}")
                bnds.append(t.bounds[k])
                psc.append(t.scale[k])
                x0.append(t.p[k] / t.scale[k])
                isnorm.append(t.model.par_names[k] == t.model.norm_param)
                index.append((j, int(k)))
        self.parameters = tuple(pnames)
        self.bounds = np.array(bnds, dtype=float).reshape(-1, 2)
        self.scales = np.array(psc, dtype=float)
        self.x0 = np.array(x0, dtype=float)
        self.is_norm = np.array(isnorm, dtype=bool)
        self._index = index
        # the free sources, grouped by matrix, as the kernels see them
        free_src = [j for j, t in enumerate(terms) if t.free.any()]
        self._free = self._pack(free_src)
        pos = {int(j): a for a, j in enumerate(self._free.order)}
        self._q_pos = np.array([pos[j] for j, _ in index], dtype=np.int64)
        self._q_map = np.array([j for j, _ in index], dtype=np.int64)
        self._q_k = np.array([k for _, k in index], dtype=np.int64)
        nfs = len(free_src)
        work = max(1, nfs) * e.size * npix
        self._parallel = (work >= PARALLEL_MIN_WORK) if parallel is None else bool(parallel)
        if seg is None:
            per_pix = (max(1, nfs) * e.size * self.maps.itemsize
                       + 8 * (2 * len(self._groups) * nt + 2 * nm))
            seg = int(np.clip(_UNIT_BYTES // per_pix, 64, 16384)) // 32 * 32
        self.seg = max(1, min(int(seg), npix))
        self.info_seg = max(1, min(npix, int(np.clip(
            _INFO_BYTES // (8 * max(1, len(pnames)) * nm), 256, 1 << 20))))
        # the fixed sources, dispersed and summed once
        fixed_src = [j for j, t in enumerate(terms) if not t.free.any()
                     and self.expscale[j] != 0.0]
        if fixed_src:
            pk = self._pack(fixed_src)
            lo, hi = self._node_weights_of(pk.order)
            fc = np.empty((nm, npix))
            mc = KD.model_cube_parallel if (len(fixed_src) * e.size * npix
                                            >= PARALLEL_MIN_WORK) else KD.model_cube_serial
            mc(_EMPTY, self.maps, *pk.args(), lo, hi, self.seg, fc)
            self.fixed = fc
        else:
            self.fixed = _EMPTY
        self._last: _Eval | None = None

    # -- sources -> kernel arguments ----------------------------------------------------
    def _pack(self, srcs) -> _Pack:
        srcs = np.asarray(list(srcs), dtype=np.int64)
        nm, nt = self.counts.shape[0], self.e.size - 1
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

    # -- parameters -> node weights -----------------------------------------------------
    def physical_params(self, x) -> dict[str, np.ndarray]:
        """Physical parameter vectors of every source at the free values ``x``."""
        ps = self._params(self._x(x))
        return {t.name: p for t, p in zip(self.terms, ps)}

    def _params(self, x):
        ps = [t.p.copy() for t in self.terms]
        for (j, k), v, sc in zip(self._index, np.asarray(x, dtype=float), self.scales):
            ps[j][k] = v * sc
        return ps

    def _node_weights_of(self, srcs, ps=None):
        """(lo, hi), each (len(srcs), n_true), with the exposure scale folded in."""
        nt = self.e.size - 1
        lo = np.zeros((len(srcs), nt))
        hi = np.zeros_like(lo)
        for a, j in enumerate(srcs):
            t = self.terms[j]
            p = t.p if ps is None else ps[j]
            lo[a], hi[a] = node_weights(self.e, t.model.evaluate(self.e, p))
            lo[a] *= self.expscale[j]
            hi[a] *= self.expscale[j]
        return lo, hi

    def _weights(self, x, derivs: bool):
        """lo, hi (n_free_src, n_true) in kernel order and, with ``derivs``, dlo, dhi
        (npar, n_true): derivatives w.r.t. the scaled free parameters."""
        ps = self._params(x)
        lo, hi = self._node_weights_of(self._free.order, ps)
        if not derivs:
            return lo, hi, None, None
        nt = self.e.size - 1
        dlo = np.zeros((self.npar, nt))
        dhi = np.zeros((self.npar, nt))
        for j in np.unique(self._q_map):
            qs = np.flatnonzero(self._q_map == j)
            t = self.terms[j]
            G = np.asarray(t.model.gradient(self.e, ps[j]))[self._q_k[qs]]
            gl, gh = node_weights(self.e, G)
            c = (self.expscale[j] * self.scales[qs])[:, None]
            dlo[qs] = gl * c
            dhi[qs] = gh * c
        return lo, hi, dlo, dhi

    def _second_weights(self, x):
        """d2lo, d2hi (npar, npar, n_true): second derivatives of the node weights for
        pairs of parameters of one source (zero elsewhere), by central differences of the
        analytic spectral gradient."""
        ps = self._params(x)
        nt = self.e.size - 1
        d2lo = np.zeros((self.npar, self.npar, nt))
        d2hi = np.zeros_like(d2lo)
        for j in np.unique(self._q_map):
            qs = np.flatnonzero(self._q_map == j)
            blk = np.ix_(qs, qs)
            d2lo[blk], d2hi[blk] = second_node_weights(
                self.terms[j].model, self.e, ps[j], self._q_k[qs], x[qs], self.scales[qs],
                self.expscale[j])
        return d2lo, d2hi

    # -- evaluation ---------------------------------------------------------------------
    def _loglike_kernel(self):
        return KD.loglike_parallel if self._parallel else KD.loglike_serial

    def _cube_kernel(self):
        return KD.model_cube_parallel if self._parallel else KD.model_cube_serial

    def __call__(self, x) -> float:
        x = self._x(x)
        last = self._last
        if last is not None and last.key == x.tobytes():
            return last.value
        lo, hi, _, _ = self._weights(x, False)
        ll, _, _ = self._loglike_kernel()(self.counts, self.wmap, self.fixed, self.maps,
                                          *self._free.args(), lo, hi, self.seg, False,
                                          _EMPTY)
        return -float(ll)

    def _evaluate(self, x) -> _Eval:
        key = x.tobytes()
        last = self._last
        if last is not None and last.key == key:
            return last
        lo, hi, dlo, dhi = self._weights(x, True)
        m = np.empty(self.counts.shape)
        ll, A, B = self._loglike_kernel()(self.counts, self.wmap, self.fixed, self.maps,
                                          *self._free.args(), lo, hi, self.seg, True, m)
        qp = self._q_pos
        g = -(np.sum(dlo * A[qp], axis=1) + np.sum(dhi * B[qp], axis=1))
        ev = _Eval(key, -float(ll), g, A, B, m)
        self._last = ev          # one-entry memo: iminuit asks for value and grad apart
        return ev

    def value_and_grad(self, x):
        ev = self._evaluate(self._x(x))
        return ev.value, ev.grad.copy()

    def _model_at(self, x) -> np.ndarray:
        last = self._last
        if last is not None and last.key == x.tobytes():
            return last.model
        lo, hi, _, _ = self._weights(x, False)
        m = np.empty(self.counts.shape)
        self._cube_kernel()(self.fixed, self.maps, *self._free.args(), lo, hi, self.seg, m)
        return m

    def _coefficients(self, dlo, dhi):
        """Effective node coefficients C (npar, n_meas, n_true + 1) of dm_q and their
        node bands (cl, ch), each (npar, n_meas)."""
        nm, nt = self.counts.shape[0], self.e.size - 1
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

    def _info(self, x, m, observed: bool) -> np.ndarray:
        """sum_{i,p} v dm_a dm_b with v = w/m (expected) or w n/m^2 (observed)."""
        _, _, dlo, dhi = self._weights(x, True)
        nm, npix = self.counts.shape
        v = np.empty((nm, npix))
        info_weights(self.counts, self.wmap, m, 0, nm, observed, v)
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

    def fisher(self, x) -> np.ndarray:
        """Expected information sum_{i,p} w/m dm/dx_a dm/dx_b (npar, npar), scaled units."""
        x = self._x(x)
        if self.npar == 0:
            return np.zeros((0, 0))
        return self._info(x, self._model_at(x), False)

    def hessian(self, x) -> np.ndarray:
        """Observed information: the exact Hessian of -log L,
        sum w n/m^2 dm_a dm_b - sum w (n/m - 1) d2m/dx_a dx_b (the second term from the
        gradient's residual sums and the second derivatives of the node weights)."""
        x = self._x(x)
        if self.npar == 0:
            return np.zeros((0, 0))
        ev = self._evaluate(x)
        H = self._info(x, ev.model, True)
        d2lo, d2hi = self._second_weights(x)
        qp = self._q_pos
        T = np.einsum("abk,bk->ab", d2lo, ev.A[qp]) + np.einsum("abk,bk->ab", d2hi,
                                                                 ev.B[qp])
        same = self._q_map[:, None] == self._q_map[None, :]
        return H - np.where(same, T, 0.0)

    # -- products -----------------------------------------------------------------------
    def model_cube(self, x=None) -> np.ndarray:
        """Model counts (n_meas, *spatial shape) at ``x`` (default ``x0``)."""
        x = self.x0 if x is None else self._x(x)
        return self._model_at(x).reshape((-1,) + tuple(self.spatial_shape)).copy()

    def source_cube(self, name: str, x=None) -> np.ndarray:
        """Model counts of one source (n_meas, *spatial shape)."""
        x = self.x0 if x is None else self._x(x)
        try:
            j = self.source_names.index(name)
        except ValueError:
            raise RecipeError(f"no source {name!r} in this likelihood component "
                              f"({', '.join(self.source_names)})") from None
        pk = self._pack([j])
        lo, hi = self._node_weights_of(pk.order, self._params(x))
        out = np.empty(self.counts.shape)
        KD.model_cube_serial(_EMPTY, self.maps, *pk.args(), lo, hi, self.seg, out)
        return out.reshape((-1,) + tuple(self.spatial_shape))

    def __repr__(self) -> str:
        nm, npix = self.counts.shape
        return (f"DispersedPoissonCost({len(self.terms)} sources in {len(self._groups)} "
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
