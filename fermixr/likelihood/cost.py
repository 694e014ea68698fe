"""The binned Poisson likelihood as a cost function in iminuit's style.

A cost is called with a vector ``x`` of the FREE parameters in the Science Tools' SCALED
units (the XML ``value``; the physical value is ``value * scale``), and returns -log L::

    cost = BinnedPoissonCost(counts, srcmaps, energies, sources, wmap=None)
    cost(x)                    # -log L  (errordef 0.5)
    cost.grad(x)               # d(-log L)/dx, analytic
    cost.fisher(x)             # expected information  sum w/m dm/dx_a dm/dx_b
    cost.hessian(x)            # observed information (exact second derivatives of -log L)
    cost.parameters            # ("source:param", ...) names of the entries of x
    cost.x0, cost.bounds       # start values and (lo, hi) bounds, scaled units

log L = sum_{bins, pixels} w (n log m - m), without -log n!: gtlike's
``BinnedLikelihood::value`` leaves that constant out too, so ``-cost(x)`` is the number
gtlike and Fermipy report as ``loglike``.

Model counts follow the Science Tools (see :mod:`fermixr.likelihood.npred`): source maps at
the energy NODES (bin edges) are combined with per-node weights from the spectrum,
m[i, p] = sum_s lo_{s,i} S_{s,i,p} + hi_{s,i} S_{s,i+1,p}.  The data stay separable by
(source, node, pixel): a parameter change only changes the small (source, bin) weight
arrays ``lo``/``hi`` and their derivatives; the maps are never rescaled or copied.  Sources
without free parameters are summed once, at construction, into a fixed cube.

A cost keeps the model cube of its last full evaluation.  When ``cost(x)`` differs from it
only in the parameters of a few sources (a scan, a TS, a one-parameter step), the value is
updated from that cube by the changed sources alone, m + dlo S_i + dhi S_{i+1}, over the
pixel chunks where their maps are non-zero: O(bins x their pixels) instead of
O(sources x bins x pixels).  A rounding bound on each update (the model's cancellation
under counts) and a cap on updates written into the cube keep the value within
``INCREMENTAL_RTOL`` of a full evaluation; otherwise, and for the gradient and the
information matrices, the cost evaluates every free source.

Costs add: ``cost_a + cost_b`` is a :class:`CostSum` (joint components, as the Science
Tools' SummedLikelihood: parameters with the same name are the same parameter), and
Gaussian priors (:mod:`fermixr.likelihood.priors`) add the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ..errors import GeometryError, LikelihoodError
from ..model.spectral import SpectralModel, get_spectral_model
from . import _kernels as K
from .npred import node_weights, second_node_weights

__all__ = ["Cost", "CostSum", "BinnedPoissonCost", "SourceTerm", "PARALLEL_MIN_WORK"]

PARALLEL_MIN_WORK = 2_000_000
"""Map elements touched per pass above which the parallel kernels are used."""
INCREMENTAL_MAX_SOURCES = 4
"""At most this many sources may differ from the last full evaluation for ``__call__`` to
update its model cube instead of evaluating every free source (and at most half of the
free sources)."""
INCREMENTAL_MAX_COMMITS = 32
"""Incremental updates written into the kept model cube before a full evaluation
replaces it (bounds the rounding carried from one update to the next)."""
INCREMENTAL_RTOL = 1e-12
"""An incremental log L whose rounding bound (summed over the updates it builds on)
exceeds this fraction of |log L| is replaced by a full evaluation."""
_CHUNK = 64                # pixels per chunk of the source-support masks
_DELTA_PARALLEL_MIN = PARALLEL_MIN_WORK   # changed map elements for a parallel update
_EPS = float(np.finfo(np.float64).eps)
_UNIT_BYTES = 3 << 20      # map bytes per log-likelihood work unit (kept in cache)
_INFO_BYTES = 8 << 20      # derivative rows per information-matrix segment

_EMPTY = np.zeros((0, 0))


# =======================================================================================
# base class and sums
# =======================================================================================
class Cost:
    """Common interface: ``parameters``, ``x0``, ``bounds``, ``__call__``, ``grad``,
    ``value_and_grad``, ``fisher``, ``hessian``; costs add with ``+``."""

    errordef = 0.5          # -log L: one standard deviation is a change of 0.5
    is_prior = False

    parameters: tuple[str, ...] = ()

    @property
    def npar(self) -> int:
        return len(self.parameters)

    # -- to be provided --------------------------------------------------------------
    def value_and_grad(self, x) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def fisher(self, x) -> np.ndarray:
        raise NotImplementedError

    def hessian(self, x) -> np.ndarray:
        raise NotImplementedError

    # -- derived -----------------------------------------------------------------------
    def __call__(self, x) -> float:
        return self.value_and_grad(x)[0]

    def grad(self, x) -> np.ndarray:
        return self.value_and_grad(x)[1]

    def loglike(self, x) -> float:
        """log L (the value Fermipy reports as ``loglike``)."""
        return -self(x)

    def _x(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.size != self.npar:
            raise LikelihoodError(f"cost of {self.npar} free parameter(s) "
                                  f"({', '.join(self.parameters)}) called with {x.size} value(s)")
        return x

    def __add__(self, other):
        if not isinstance(other, Cost):
            return NotImplemented
        return CostSum(self, other)

    def __radd__(self, other):
        if other == 0:          # sum([...]) starts from 0
            return self
        return NotImplemented


class CostSum(Cost):
    """Sum of costs (likelihood components and priors).  Parameters with the same name
    are one parameter; the sum's parameters are the union in order of first appearance
    (likelihood components first).  Bounds are intersected; start values come from the
    first component that has the parameter.  A prior must act on a free parameter of one
    of the likelihood components."""

    def __init__(self, *costs: Cost):
        flat: list[Cost] = []
        for c in costs:
            if isinstance(c, CostSum):
                flat.extend(c.components)
            elif isinstance(c, Cost):
                flat.append(c)
            else:
                raise LikelihoodError(f"CostSum: {c!r} is not a cost (expected a "
                                      "BinnedPoissonCost, a prior or a CostSum)")
        if not flat:
            raise LikelihoodError("CostSum needs at least one cost")
        likes = [c for c in flat if not c.is_prior]
        priors = [c for c in flat if c.is_prior]
        names: list[str] = []
        index: dict[str, int] = {}
        for c in likes:
            for n in c.parameters:
                if n not in index:
                    index[n] = len(names)
                    names.append(n)
        for c in priors:
            for n in c.parameters:
                if n not in index:
                    raise LikelihoodError(
                        f"prior on {n!r}: that is not a free parameter of the likelihood "
                        f"(free parameters: {', '.join(names) or 'none'}); free it or drop "
                        "the prior")
        self.components = tuple(likes + priors)
        self.parameters = tuple(names)
        self._maps = [np.array([index[n] for n in c.parameters], dtype=np.int64)
                      for c in self.components]
        x0 = np.full(len(names), np.nan)
        lo = np.full(len(names), -np.inf)
        hi = np.full(len(names), np.inf)
        for c, mp in zip(self.components, self._maps):
            if c.is_prior:
                continue
            cx0 = np.asarray(c.x0, dtype=float)
            cb = np.asarray(c.bounds, dtype=float).reshape(-1, 2)
            for k, g in enumerate(mp):
                if np.isnan(x0[g]):
                    x0[g] = cx0[k]
                lo[g] = max(lo[g], cb[k, 0])
                hi[g] = min(hi[g], cb[k, 1])
        bad = np.flatnonzero(lo > hi)
        if bad.size:
            n = names[bad[0]]
            raise LikelihoodError(f"parameter {n!r}: the components' bounds do not overlap "
                                  f"(intersection [{lo[bad[0]]}, {hi[bad[0]]}])")
        self.x0 = x0
        self.bounds = np.stack([lo, hi], axis=1)

    @property
    def is_norm(self) -> np.ndarray:
        out = np.zeros(self.npar, dtype=bool)
        for c, mp in zip(self.components, self._maps):
            if not c.is_prior and hasattr(c, "is_norm"):
                out[mp] |= np.asarray(c.is_norm, dtype=bool)
        return out

    def value_and_grad(self, x):
        x = self._x(x)
        val = 0.0
        g = np.zeros(self.npar)
        for c, mp in zip(self.components, self._maps):
            v, gc = c.value_and_grad(x[mp])
            val += v
            np.add.at(g, mp, gc)
        return val, g

    def __call__(self, x) -> float:
        x = self._x(x)
        return float(sum(c(x[mp]) for c, mp in zip(self.components, self._maps)))

    def _matrix(self, x, which: str) -> np.ndarray:
        x = self._x(x)
        H = np.zeros((self.npar, self.npar))
        for c, mp in zip(self.components, self._maps):
            H[np.ix_(mp, mp)] += getattr(c, which)(x[mp])
        return H

    def fisher(self, x) -> np.ndarray:
        return self._matrix(x, "fisher")

    def hessian(self, x) -> np.ndarray:
        return self._matrix(x, "hessian")

    def __repr__(self) -> str:
        return f"CostSum({len(self.components)} components, {self.npar} parameters)"


# =======================================================================================
# the sources a cost sees
# =======================================================================================
@dataclasses.dataclass(frozen=True, eq=False)
class SourceTerm:
    """One source as the likelihood sees it: name, spectral model instance, PHYSICAL
    parameter vector (model order), free mask, per-parameter scale and (lo, hi) bounds in
    SCALED units (the XML ``min``/``max``; -inf/inf for none)."""

    name: str
    model: SpectralModel
    p: np.ndarray
    free: np.ndarray
    scale: np.ndarray
    bounds: np.ndarray

    @classmethod
    def make(cls, name, model, p, free=None, bounds=None, scale=None) -> "SourceTerm":
        """Build and check a term.  ``model``: instance, class or tag; ``p``: physical
        values; ``free``: bool mask, or parameter names; ``bounds``: (npar, 2) scaled,
        default the model's parameter specs; ``scale``: default the model's specs."""
        name = str(name)
        if isinstance(model, str):
            model = get_spectral_model(model)
        if isinstance(model, type):
            model = model()
        if not isinstance(model, SpectralModel):
            raise LikelihoodError(f"source {name!r}: {model!r} is not a spectral model")
        npar = model.npar
        p = np.array(p, dtype=np.float64).ravel()
        if p.size != npar:
            raise LikelihoodError(f"source {name!r}: {p.size} parameter value(s) for "
                                  f"{model.tag} ({', '.join(model.par_names)})")
        if free is None:
            fr = np.zeros(npar, dtype=bool)
        elif all(isinstance(f, str) for f in np.atleast_1d(free)) and np.size(free):
            fr = np.zeros(npar, dtype=bool)
            for f in np.atleast_1d(free):
                fr[model.param_index(str(f))] = True
        else:
            fr = np.array(free, dtype=bool).ravel()
            if fr.size != npar:
                raise LikelihoodError(f"source {name!r}: free mask of {fr.size} entries for "
                                      f"{npar} parameters ({', '.join(model.par_names)})")
        sc = (np.array([q.scale for q in model.params], dtype=float) if scale is None
              else np.array(scale, dtype=float).ravel())
        if sc.size != npar or np.any(sc == 0) or not np.all(np.isfinite(sc)):
            raise LikelihoodError(f"source {name!r}: scales {sc.tolist()} must be {npar} "
                                  "finite non-zero numbers")
        if bounds is None:
            b = np.array([[-np.inf if q.min is None else q.min,
                           np.inf if q.max is None else q.max] for q in model.params],
                         dtype=float).reshape(npar, 2)
        else:
            b = np.array([[-np.inf if lo is None else lo, np.inf if hi is None else hi]
                          for lo, hi in bounds], dtype=float).reshape(npar, 2)
        if np.any(b[:, 0] > b[:, 1]):
            k = int(np.flatnonzero(b[:, 0] > b[:, 1])[0])
            raise LikelihoodError(f"source {name!r}: parameter {model.par_names[k]} has min "
                                  f"{b[k, 0]} > max {b[k, 1]}")
        if not np.all(np.isfinite(p)):
            raise LikelihoodError(f"source {name!r}: parameter values {p.tolist()} are not "
                                  "all finite")
        for a in (p, fr, sc, b):
            a.setflags(write=False)
        return cls(name, model, p, fr, sc, b)

    @classmethod
    def from_source(cls, source, model: SpectralModel | None = None) -> "SourceTerm":
        """From a :class:`fermixr.model.source.Source` (its spectral Parameters give value,
        scale, min, max, free).  ``model`` overrides the instance made from the tag (needed
        for FileFunction, whose instance holds the table)."""
        if model is None:
            try:
                model = get_spectral_model(source.spectrum)()
            except TypeError as exc:
                raise LikelihoodError(f"source {source.name!r}: cannot make a default "
                                      f"{source.spectrum} instance ({exc}); pass model=") from None
        pars = {q.name: q for q in source.spectral}
        missing = [n for n in model.par_names if n not in pars]
        if missing:
            raise LikelihoodError(f"source {source.name!r}: spectral parameters {missing} of "
                                  f"{model.tag} are missing")
        qs = [pars[n] for n in model.par_names]
        return cls.make(source.name, model, [q.physical for q in qs],
                        free=[q.free for q in qs],
                        bounds=[(q.min, q.max) for q in qs],
                        scale=[q.scale for q in qs])

    @classmethod
    def coerce(cls, item) -> "SourceTerm":
        if isinstance(item, SourceTerm):
            return item
        if hasattr(item, "spectral") and hasattr(item, "spectrum"):
            return cls.from_source(item)
        if isinstance(item, (tuple, list)) and 3 <= len(item) <= 6:
            return cls.make(*item)
        raise LikelihoodError(f"cannot read a likelihood source from {item!r}; expected a "
                              "SourceTerm, a fermixr Source or a tuple (name, model, p, free"
                              "[, bounds[, scale]])")

    @property
    def x(self) -> np.ndarray:
        """Scaled values (value = physical / scale)."""
        return self.p / self.scale


@dataclasses.dataclass(frozen=True)
class _Eval:
    key: bytes
    value: float
    grad: np.ndarray
    A: np.ndarray
    B: np.ndarray
    model: np.ndarray


@dataclasses.dataclass
class _Base:
    """The last full evaluation, the start of the incremental ones: free values ``x``,
    node weights ``lo``/``hi`` of the free sources (kernel order), the model cube ``m``,
    the cost ``value`` (-log L) at ``x``; ``commits``: incremental updates written into
    ``m`` since (``x``, ``lo``, ``hi``, ``value`` then follow them); ``err``: their summed
    rounding scale (units of the machine epsilon, see ``_kernels.delta_term``)."""

    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    m: np.ndarray
    value: float
    commits: int = 0
    err: float = 0.0


# =======================================================================================
# what the plain and the dispersed costs share
# =======================================================================================
class _MapCost(Cost):
    """The part of a binned Poisson cost that does not depend on how source maps become
    model counts: the inputs checked, the free parameters, the node weights of the
    spectra and their derivatives, a one-entry memo of the last evaluation, and the
    Fisher matrix and exact Hessian assembled from the kernels' sums.

    A subclass calls :meth:`_setup` then :meth:`_set_parameters` with the free sources
    in its kernels' order, and provides ``_run_loglike(lo, hi, want_grad, m)`` ->
    (log L, A, B), ``_run_cube(lo, hi, m)``, ``_run_info(v, dlo, dhi)`` -> information
    matrix, ``_one_source(j, lo, hi, out)`` and ``_new_cube()``.  A and B hold, per free
    source in kernel order and node, the residual sums the gradient needs."""

    def _setup(self, counts, maps, nodes, sources, wmap, n_nodes: int | None = None) -> None:
        """Check and store counts (n_meas, n_pix), maps (n_src, n_nodes, n_pix), the
        node energies (``n_nodes`` of them when given), the source terms and the weights
        map."""
        counts = np.asarray(counts)
        if counts.ndim < 2:
            raise GeometryError(f"counts must be (n_bins, pixels...); got shape "
                                f"{counts.shape}")
        nm = counts.shape[0]
        self.spatial_shape = tuple(counts.shape[1:])
        self.counts = np.ascontiguousarray(counts.reshape(nm, -1), dtype=np.float64)
        npix = self.counts.shape[1]
        if not np.all(np.isfinite(self.counts)) or np.any(self.counts < 0):
            b, j = np.argwhere(~np.isfinite(self.counts) | (self.counts < 0))[0]
            raise LikelihoodError(f"counts must be finite and >= 0; energy bin {b}, pixel {j} "
                                  f"holds {self.counts[b, j]!r}")
        e = np.asarray(nodes, dtype=np.float64).ravel()
        if n_nodes is not None and e.size != n_nodes:
            raise GeometryError(f"energies must be the {n_nodes} node energies (MeV) of "
                                f"{n_nodes - 1} counts bins; got {e.size} values")
        if e.size < 2 or not np.all(e > 0) or not np.all(np.diff(e) > 0):
            shown = e.tolist() if e.size <= 8 else f"{e.size} values"
            raise GeometryError(f"energies must be at least 2 increasing positive node "
                                f"energies (MeV); got {shown}")
        self.nodes = e
        terms = [SourceTerm.coerce(s) for s in sources]
        m = np.asarray(maps)
        if m.dtype not in (np.float32, np.float64):
            m = m.astype(np.float64)
        if m.ndim < 3 or m.shape[0] != len(terms) or m.shape[1] != e.size \
                or int(np.prod(m.shape[2:])) != npix:
            raise GeometryError(
                f"srcmaps must be (n_src={len(terms)}, n_nodes={e.size}, pixels={npix}); "
                f"got shape {m.shape}")
        self.maps = np.ascontiguousarray(m.reshape(len(terms), e.size, npix))
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise LikelihoodError(f"sources named more than once: {dup}")
        self.sources = tuple(terms)
        self.source_names = tuple(names)
        if wmap is None:
            self.wmap = _EMPTY
        else:
            w = np.asarray(wmap, dtype=np.float64)
            if w.size != nm * npix:
                raise GeometryError(f"wmap must have the counts' shape {counts.shape}; got "
                                    f"{w.shape}")
            w = np.ascontiguousarray(w.reshape(nm, npix))
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                b, j = np.argwhere(~np.isfinite(w) | (w < 0))[0]
                raise LikelihoodError(f"wmap (likelihood weights) must be finite and >= 0; "
                                      f"energy bin {b}, pixel {j} holds {w[b, j]!r}")
            self.wmap = w
        self.expscale = np.ones(len(terms))
        self._last: _Eval | None = None
        self._base: _Base | None = None
        self._vmemo: tuple[bytes, float] | None = None
        self._supp: dict[int, np.ndarray] = {}
        self.incremental = True     # False: every __call__ evaluates all free sources
        self.n_evaluations = {"full": 0, "incremental": 0}

    def _set_parameters(self, order) -> None:
        """The free parameters, source by source in model order, and where each one's
        source sits in the kernels' order ``order`` (the free sources)."""
        order = np.asarray(order, dtype=np.int64)
        pos = {int(j): a for a, j in enumerate(order)}
        pnames, x0, bnds, scales, isnorm, qsrc, qk = [], [], [], [], [], [], []
        for j, t in enumerate(self.sources):
            for k in np.flatnonzero(t.free):
                pnames.append(f"{t.name}:{t.model.par_names[k]}")
                x0.append(t.p[k] / t.scale[k])
                bnds.append(t.bounds[k])
                scales.append(t.scale[k])
                isnorm.append(t.model.par_names[k] == t.model.norm_param)
                qsrc.append(j)
                qk.append(int(k))
        self._order = order
        self.parameters = tuple(pnames)
        self.x0 = np.array(x0, dtype=float)
        self.bounds = np.array(bnds, dtype=float).reshape(-1, 2)
        self.scales = np.array(scales, dtype=float)
        self.is_norm = np.array(isnorm, dtype=bool)
        self._q_map = np.array(qsrc, dtype=np.int64)              # source of each parameter
        self._q_k = np.array(qk, dtype=np.int64)                  # its index in the model
        self._q_pos = np.array([pos[j] for j in qsrc], dtype=np.int64)   # kernel position
        self._src_pos = np.full(len(self.sources), -1, dtype=np.int64)
        self._src_pos[order] = np.arange(order.size)      # kernel position of each source

    # -- parameters -> node weights -----------------------------------------------------
    def physical_params(self, x) -> dict[str, np.ndarray]:
        """Physical parameter vectors of every source at the free values ``x``."""
        x = self._x(x)
        return {t.name: self._p_of(j, x) for j, t in enumerate(self.sources)}

    def _p_of(self, j: int, x) -> np.ndarray:
        t = self.sources[j]
        sel = np.flatnonzero(self._q_map == j)
        if sel.size == 0:
            return t.p
        p = t.p.copy()
        p[self._q_k[sel]] = np.asarray(x, dtype=float)[sel] * self.scales[sel]
        return p

    def _node_weights_of(self, srcs, x=None):
        """(lo, hi), each (len(srcs), n_nodes - 1), of sources ``srcs`` (indices), with
        their exposure scales folded in."""
        lo = np.zeros((len(srcs), self.nodes.size - 1))
        hi = np.zeros_like(lo)
        for a, j in enumerate(srcs):
            p = self.sources[j].p if x is None else self._p_of(j, x)
            lo[a], hi[a] = node_weights(self.nodes, self.sources[j].model.evaluate(self.nodes, p))
            lo[a] *= self.expscale[j]
            hi[a] *= self.expscale[j]
        return lo, hi

    def _weights(self, x, derivs: bool):
        """lo, hi (n_free_src, n_nodes - 1) in kernel order and, with ``derivs``, dlo,
        dhi (npar, n_nodes - 1): their derivatives w.r.t. the scaled free parameters."""
        lo, hi = self._node_weights_of(self._order, x)
        if not derivs:
            return lo, hi, None, None
        dlo = np.zeros((self.npar, self.nodes.size - 1))
        dhi = np.zeros_like(dlo)
        for j in self._order:
            qs = np.flatnonzero(self._q_map == j)
            t = self.sources[j]
            G = np.asarray(t.model.gradient(self.nodes, self._p_of(j, x)))[self._q_k[qs]]
            gl, gh = node_weights(self.nodes, G)
            c = (self.expscale[j] * self.scales[qs])[:, None]
            dlo[qs] = gl * c
            dhi[qs] = gh * c
        return lo, hi, dlo, dhi

    def _second_weights(self, x):
        """d2lo, d2hi (npar, npar, n_nodes - 1): second derivatives of the node weights
        for pairs of parameters of one source (zero elsewhere), by central differences of
        the analytic spectral gradient (exactly zero for norm-norm pairs)."""
        d2lo = np.zeros((self.npar, self.npar, self.nodes.size - 1))
        d2hi = np.zeros_like(d2lo)
        for j in self._order:
            qs = np.flatnonzero(self._q_map == j)
            blk = np.ix_(qs, qs)
            d2lo[blk], d2hi[blk] = second_node_weights(
                self.sources[j].model, self.nodes, self._p_of(j, x), self._q_k[qs], x[qs],
                self.scales[qs], self.expscale[j])
        return d2lo, d2hi

    # -- evaluation ---------------------------------------------------------------------
    def __call__(self, x) -> float:
        """-log L at ``x``.  When ``x`` differs from the last full evaluation (kept with its
        model cube) in the parameters of a few sources only, the cube is updated by those
        sources' changes, m + dlo S_i + dhi S_{i+1}, over the pixels where their maps are
        non-zero, and log L by the change of its terms there (``_incremental``)."""
        x = self._x(x)
        key = x.tobytes()
        last = self._last
        if last is not None and last.key == key:
            return last.value
        vm = self._vmemo
        if vm is not None and vm[0] == key:
            return vm[1]
        if self.incremental and self._base is not None:
            v = self._incremental(x)
            if v is not None:
                self._vmemo = (key, v)
                self.n_evaluations["incremental"] += 1
                return v
        return self._full_value(x)

    def _cube_buffer(self) -> np.ndarray:
        """A model cube to overwrite: the kept one unless the gradient memo shares it (so
        a cost holds at most two cubes: the kept one and the gradient memo's)."""
        b = self._base
        if b is not None and (self._last is None or self._last.model is not b.m):
            return b.m
        return self._new_cube()

    def _full_value(self, x) -> float:
        lo, hi, _, _ = self._weights(x, False)
        m = self._cube_buffer()
        self._base = None
        ll = float(self._run_loglike(lo, hi, False, m)[0])
        self.n_evaluations["full"] += 1
        self._base = _Base(x.copy(), lo, hi, m, -ll)
        self._vmemo = None
        return -ll

    def _evaluate(self, x) -> _Eval:
        key = x.tobytes()
        last = self._last
        if last is not None and last.key == key:
            return last
        lo, hi, dlo, dhi = self._weights(x, True)
        # the kept cube is replaced by this one (and so is the memo that may share it)
        m = self._new_cube() if self._base is None else self._base.m
        self._base = None
        self._last = None
        ll, A, B = self._run_loglike(lo, hi, True, m)
        self.n_evaluations["full"] += 1
        qp = self._q_pos
        g = -(np.sum(dlo * A[qp], axis=1) + np.sum(dhi * B[qp], axis=1))
        ev = _Eval(key, -float(ll), g, A, B, m)
        self._last = ev          # one-entry memo: iminuit asks for value and grad apart
        self._base = _Base(x.copy(), lo, hi, m, ev.value)
        self._vmemo = None
        return ev

    # -- incremental evaluation -----------------------------------------------------------
    def _run_delta(self, srcs, dlo, dhi, m, write):
        return None                  # no incremental kernel: always evaluate fully

    def _support(self, j: int) -> np.ndarray:
        """(n_nodes, n_chunks) bool: the pixel chunks where source j's map is non-zero at
        each node (computed on first use, kept)."""
        s = self._supp.get(j)
        if s is None:
            s = K.chunk_support(self.maps, int(j), _CHUNK)
            self._supp[j] = s
        return s

    def _incremental(self, x) -> float | None:
        """-log L at ``x`` from the kept full evaluation when only a few sources differ,
        or None (a full evaluation is needed: too many sources changed, too much work,
        a non-finite weight, a model <= 0 under counts, or a rounding bound over
        INCREMENTAL_RTOL).  With two or more sources changed (a sequence of one-source
        steps) the update is written into the kept cube, which then stands for ``x``."""
        b = self._base
        if not np.isfinite(b.value):
            return None
        diff = x != b.x
        if not diff.any():
            return b.value
        srcs = np.unique(self._q_map[diff])
        if srcs.size > INCREMENTAL_MAX_SOURCES or 2 * srcs.size > self._order.size:
            return None
        pos = self._src_pos[srcs]
        lo, hi = self._node_weights_of(srcs, x)
        dlo = lo - b.lo[pos]
        dhi = hi - b.hi[pos]
        if not (np.all(np.isfinite(dlo)) and np.all(np.isfinite(dhi))):
            return None
        write = srcs.size >= 2 and b.commits < INCREMENTAL_MAX_COMMITS
        if write and self._last is not None and self._last.model is b.m:
            self._last = None        # the gradient memo's cube is about to change
        res = self._run_delta(srcs, dlo, dhi, b.m, write)
        if res is None:
            return None
        dll, err, bad = res
        value = b.value - dll
        if bad or (b.err + err) * _EPS > INCREMENTAL_RTOL * max(abs(value), 1.0):
            if write:
                self._base = None    # its cube is half updated
            return None
        if write:
            b.x = x.copy()
            b.lo[pos] = lo
            b.hi[pos] = hi
            b.value = value
            b.commits += 1
            b.err += err
        return value

    def value_and_grad(self, x):
        ev = self._evaluate(self._x(x))
        return ev.value, ev.grad.copy()

    def _model_at(self, x) -> np.ndarray:
        last = self._last
        if last is not None and last.key == x.tobytes():
            return last.model
        b = self._base
        if b is not None and b.commits == 0 and b.x.tobytes() == x.tobytes():
            return b.m
        lo, hi, _, _ = self._weights(x, False)
        m = self._new_cube()
        self._run_cube(lo, hi, m)
        return m

    def _info(self, x, m, observed: bool) -> np.ndarray:
        """sum_{i,p} v dm_a dm_b with v = w/m (expected) or w n/m^2 (observed)."""
        _, _, dlo, dhi = self._weights(x, True)
        v = np.empty(self.counts.shape)
        k0, k1 = self.bin_range
        K.info_weights(self.counts, self.wmap, m, k0, k1, observed, v)
        return self._run_info(v, dlo, dhi)

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
        T = np.einsum("abi,bi->ab", d2lo, ev.A[qp]) + np.einsum("abi,bi->ab", d2hi,
                                                                  ev.B[qp])
        same = self._q_map[:, None] == self._q_map[None, :]   # one source's pairs only
        return H - np.where(same, T, 0.0)

    # -- products -----------------------------------------------------------------------
    def model_cube(self, x=None) -> np.ndarray:
        """Model counts (n_meas, *spatial shape) at ``x`` (default ``x0``)."""
        x = self.x0 if x is None else self._x(x)
        return self._model_at(x).reshape((-1,) + self.spatial_shape).copy()

    def source_cube(self, name: str, x=None) -> np.ndarray:
        """Model counts of one source (n_meas, *spatial shape)."""
        x = self.x0 if x is None else self._x(x)
        j = self._source_index(name)
        lo, hi = self._node_weights_of([j], x)
        out = self._new_cube()
        self._one_source(j, lo, hi, out)
        return out.reshape((-1,) + self.spatial_shape)

    def _source_index(self, name: str) -> int:
        try:
            return self.source_names.index(name)
        except ValueError:
            raise LikelihoodError(f"no source {name!r} in this likelihood component "
                                  f"({', '.join(self.source_names)})") from None


# =======================================================================================
# the binned Poisson likelihood of one component
# =======================================================================================
class BinnedPoissonCost(_MapCost):
    """-log L of one binned component.

    Parameters
    ----------
    counts : (n_bins, ...) observed counts (a WCS cube (n_bins, ny, nx) or HEALPix
        (n_bins, n_pix); flattened over the spatial axes).
    srcmaps : (n_src, n_bins + 1, ...) source maps at the energy nodes, float32 or float64,
        in the order of ``sources`` (counts per unit dN/dE, cm2 s ...).  Never copied when
        C-contiguous.
    energies : (n_bins + 1,) node energies, MeV (the counts bin edges).
    sources : sequence of :class:`SourceTerm`, fermixr ``Source`` objects or tuples
        (name, model, physical p, free mask[, bounds (scaled)[, scale]]).
    wmap : optional (n_bins, ...) likelihood weights (log L = sum w (n log m - m)).
    expscale : factor on every map of this component (e.g. a phase-interval width).
    src_expscale : {source name: factor} (or a sequence, one per source) on single maps.
    bin_range : (k0, k1): use energy bins k0 <= i < k1 only (default all).
    seg, blk : pixel-segment length and energy-bin block of the kernels' work units
        (default: segments sized so one unit's map rows stay in cache, blocks of 2 bins).
        Results do not depend on the thread count, but do (at the 1e-15 level) on these.
    parallel : force the parallel (True) or serial (False) kernels; default by size.
    """

    def __init__(self, counts, srcmaps, energies, sources: Sequence, *, wmap=None,
                 expscale: float = 1.0, src_expscale=None, bin_range=None,
                 seg: int | None = None, blk: int = 2, parallel: bool | None = None):
        counts = np.asarray(counts)
        nb = counts.shape[0] if counts.ndim else 0
        self._setup(counts, srcmaps, energies, sources, wmap, n_nodes=nb + 1)
        self.energies = self.nodes
        names = self.source_names
        npix = self.counts.shape[1]
        # exposure scale factors, one per source
        esc = np.full(len(names), float(expscale))
        if src_expscale is not None:
            if isinstance(src_expscale, dict):
                for k, v in src_expscale.items():
                    if k not in names:
                        raise LikelihoodError(f"src_expscale names {k!r}, which is not a source "
                                              f"of this component ({', '.join(names)})")
                    esc[names.index(k)] *= float(v)
            else:
                f = np.asarray(src_expscale, dtype=float).ravel()
                if f.size != len(names):
                    raise LikelihoodError(f"src_expscale: {f.size} factors for {len(names)} "
                                          "sources")
                esc *= f
        self.expscale = esc
        if bin_range is None:
            k0, k1 = 0, nb
        else:
            k0, k1 = (int(v) for v in bin_range)
            if not 0 <= k0 < k1 <= nb:
                raise GeometryError(f"bin_range {bin_range} must satisfy 0 <= k0 < k1 <= "
                                    f"{nb}")
        self.bin_range = (k0, k1)
        free_src = [j for j, t in enumerate(self.sources) if t.free.any()]
        self._set_parameters(free_src)
        work = max(1, len(free_src)) * (nb + 1) * npix
        self._parallel = (work >= PARALLEL_MIN_WORK) if parallel is None else bool(parallel)
        self._parallel_opt = None if parallel is None else bool(parallel)
        self.blk = max(1, int(blk))
        if seg is None:
            per_pix = max(1, len(free_src)) * (self.blk + 1) * self.maps.itemsize
            seg = int(np.clip(_UNIT_BYTES // per_pix, 1024, 16384)) // 256 * 256
        self.seg = max(1, min(int(seg), npix))
        self.info_seg = max(1, min(npix, int(np.clip(
            _INFO_BYTES // (8 * max(1, self.npar)), 1024, 1 << 20))))
        # the fixed sources, summed once
        fixed_src = np.array([j for j, t in enumerate(self.sources) if not t.free.any()
                              and esc[j] != 0.0], dtype=np.int64)
        if fixed_src.size:
            lo, hi = self._node_weights_of(fixed_src)
            fc = np.zeros((nb, npix))
            mc = K.model_cube_parallel if (fixed_src.size * (nb + 1) * npix
                                           >= PARALLEL_MIN_WORK) else K.model_cube_serial
            mc(_EMPTY, self.maps, fixed_src, lo, hi, k0, k1, fc)
            self.fixed = fc
        else:
            self.fixed = _EMPTY
        self._sums = {}

    # -- the kernels ----------------------------------------------------------------------
    def _new_cube(self) -> np.ndarray:
        k0, k1 = self.bin_range
        nb = self.counts.shape[0]
        return np.empty(self.counts.shape) if (k0, k1) == (0, nb) else \
            np.zeros(self.counts.shape)

    def _run_loglike(self, lo, hi, want_grad, m):
        k0, k1 = self.bin_range
        kern = K.loglike_parallel if self._parallel else K.loglike_serial
        return kern(self.counts, self.wmap, self.fixed, self.maps, self._order, lo, hi,
                    k0, k1, self.seg, self.blk, want_grad, m)

    def _run_cube(self, lo, hi, m):
        k0, k1 = self.bin_range
        kern = K.model_cube_parallel if self._parallel else K.model_cube_serial
        kern(self.fixed, self.maps, self._order, lo, hi, k0, k1, m)

    def _run_delta(self, srcs, dlo, dhi, m, write):
        """(d log L, rounding scale, bad) of the node-weight changes dlo/dhi of sources
        ``srcs`` on cube ``m`` (see ``_kernels.delta_loglike_serial``), or None when the
        chunks they touch are not much less work than a full evaluation."""
        k0, k1 = self.bin_range
        nb, npix = self.counts.shape
        mask = np.zeros((nb, -(-npix // _CHUNK)), dtype=bool)
        for a, j in enumerate(srcs):
            sup = self._support(j)
            mask |= sup[:-1] & (dlo[a] != 0.0)[:, None]
            mask |= sup[1:] & (dhi[a] != 0.0)[:, None]
        mask[:k0] = False
        mask[k1:] = False
        per_bin = mask.sum(axis=1)
        touched = int(per_bin.sum()) * _CHUNK
        if touched * (2 * len(srcs) + 6) > 0.5 * (k1 - k0) * npix * (self._order.size + 6):
            return None
        ubin = np.flatnonzero(per_bin)
        uptr = np.zeros(ubin.size + 1, dtype=np.int64)
        np.cumsum(per_bin[ubin], out=uptr[1:])
        chunks = np.nonzero(mask)[1].astype(np.int64)
        par = (touched * len(srcs) >= _DELTA_PARALLEL_MIN) if self._parallel_opt is None \
            else self._parallel_opt
        kern = K.delta_loglike_parallel if par else K.delta_loglike_serial
        return kern(self.counts, self.wmap, m, self.maps, np.asarray(srcs, dtype=np.int64),
                    dlo, dhi, ubin.astype(np.int64), uptr, chunks, _CHUNK, bool(write))

    def _one_source(self, j, lo, hi, out):
        k0, k1 = self.bin_range
        K.model_cube_serial(_EMPTY, self.maps, np.array([j], dtype=np.int64), lo, hi,
                            k0, k1, out)

    def _run_info(self, v, dlo, dhi):
        k0, k1 = self.bin_range
        return K.info_matrix(v, self.maps, self._q_map, dlo, dhi, k0, k1, self.info_seg)

    # -- products -----------------------------------------------------------------------
    def npred(self, x=None, weighted: bool = False) -> np.ndarray:
        """Predicted counts per source and bin (n_src, n_bins); with ``weighted`` the
        weighted sum over pixels (sum w m)."""
        x = self.x0 if x is None else self._x(x)
        key = bool(weighted)
        if key not in self._sums:
            k0, k1 = self.bin_range
            ns = K.node_sums_parallel if self._parallel else K.node_sums_serial
            self._sums[key] = ns(self.maps, self.wmap if weighted else _EMPTY, k0, k1)
        L, U = self._sums[key]
        lo, hi = self._node_weights_of(range(len(self.sources)), x)
        return lo * L + hi * U

    def __repr__(self) -> str:
        nb, npix = self.counts.shape
        return (f"BinnedPoissonCost({len(self.sources)} sources, {self.npar} free "
                f"parameters, {nb} bins x {npix} pixels)")
