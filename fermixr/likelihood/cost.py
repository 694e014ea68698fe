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

Costs add: ``cost_a + cost_b`` is a :class:`CostSum` (joint components, as the Science
Tools' SummedLikelihood: parameters with the same name are the same parameter), and
Gaussian priors (:mod:`fermixr.likelihood.priors`) add the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ..errors import GeometryError, RecipeError
from ..model.spectral import SpectralModel, get_spectral_model
from . import _kernels as K
from .npred import node_weights, second_node_weights

__all__ = ["Cost", "CostSum", "BinnedPoissonCost", "SourceTerm", "PARALLEL_MIN_WORK"]

PARALLEL_MIN_WORK = 2_000_000
"""Map elements touched per pass above which the parallel kernels are used."""
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
            raise RecipeError(f"cost of {self.npar} free parameter(s) "
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
                raise RecipeError(f"CostSum: {c!r} is not a cost (expected a "
                                  "BinnedPoissonCost, a prior or a CostSum)")
        if not flat:
            raise RecipeError("CostSum needs at least one cost")
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
                    raise RecipeError(
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
            raise RecipeError(f"parameter {n!r}: the components' bounds do not overlap "
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
            raise RecipeError(f"source {name!r}: {model!r} is not a spectral model")
        npar = model.npar
        p = np.array(p, dtype=np.float64).ravel()
        if p.size != npar:
            raise RecipeError(f"source {name!r}: {p.size} parameter value(s) for "
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
                raise RecipeError(f"source {name!r}: free mask of {fr.size} entries for "
                                  f"{npar} parameters ({', '.join(model.par_names)})")
        sc = (np.array([q.scale for q in model.params], dtype=float) if scale is None
              else np.array(scale, dtype=float).ravel())
        if sc.size != npar or np.any(sc == 0) or not np.all(np.isfinite(sc)):
            raise RecipeError(f"source {name!r}: scales {sc.tolist()} must be {npar} "
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
            raise RecipeError(f"source {name!r}: parameter {model.par_names[k]} has min "
                              f"{b[k, 0]} > max {b[k, 1]}")
        if not np.all(np.isfinite(p)):
            raise RecipeError(f"source {name!r}: parameter values {p.tolist()} are not "
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
                raise RecipeError(f"source {source.name!r}: cannot make a default "
                                  f"{source.spectrum} instance ({exc}); pass model=") from None
        pars = {q.name: q for q in source.spectral}
        missing = [n for n in model.par_names if n not in pars]
        if missing:
            raise RecipeError(f"source {source.name!r}: spectral parameters {missing} of "
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
        raise RecipeError(f"cannot read a likelihood source from {item!r}; expected a "
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


# =======================================================================================
# the binned Poisson likelihood of one component
# =======================================================================================
class BinnedPoissonCost(Cost):
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
        if counts.ndim < 2:
            raise GeometryError(f"counts must be (n_bins, pixels...); got shape "
                                f"{counts.shape}")
        self.spatial_shape = counts.shape[1:]
        nb = counts.shape[0]
        self.counts = np.ascontiguousarray(counts.reshape(nb, -1), dtype=np.float64)
        npix = self.counts.shape[1]
        if not np.all(np.isfinite(self.counts)) or np.any(self.counts < 0):
            raise RecipeError("counts must be finite and >= 0")
        e = np.asarray(energies, dtype=np.float64).ravel()
        if e.size != nb + 1 or not np.all(e > 0) or not np.all(np.diff(e) > 0):
            raise GeometryError(f"energies must be the {nb + 1} increasing positive node "
                                f"energies (MeV) of {nb} counts bins; got {e.size} values")
        self.energies = e
        maps = np.asarray(srcmaps)
        if maps.dtype not in (np.float32, np.float64):
            maps = maps.astype(np.float64)
        terms = [SourceTerm.coerce(s) for s in sources]
        if maps.ndim < 3 or maps.shape[0] != len(terms) or maps.shape[1] != nb + 1 \
                or int(np.prod(maps.shape[2:])) != npix:
            raise GeometryError(
                f"srcmaps must be (n_src={len(terms)}, n_nodes={nb + 1}, pixels={npix}); "
                f"got shape {maps.shape}")
        self.srcmaps = np.ascontiguousarray(maps.reshape(maps.shape[0], nb + 1, npix))
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise RecipeError(f"sources named more than once: {dup}")
        self.sources = tuple(terms)
        self.source_names = tuple(names)
        if wmap is None:
            self.wmap = _EMPTY
        else:
            w = np.asarray(wmap, dtype=np.float64)
            if w.size != nb * npix:
                raise GeometryError(f"wmap must have the counts' shape {counts.shape}; got "
                                    f"{w.shape}")
            w = np.ascontiguousarray(w.reshape(nb, npix))
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise RecipeError("wmap (likelihood weights) must be finite and >= 0")
            self.wmap = w
        # exposure scale factors, one per source
        esc = np.full(len(terms), float(expscale))
        if src_expscale is not None:
            if isinstance(src_expscale, dict):
                for k, v in src_expscale.items():
                    if k not in names:
                        raise RecipeError(f"src_expscale names {k!r}, which is not a source "
                                          f"of this component ({', '.join(names)})")
                    esc[names.index(k)] *= float(v)
            else:
                f = np.asarray(src_expscale, dtype=float).ravel()
                if f.size != len(terms):
                    raise RecipeError(f"src_expscale: {f.size} factors for {len(terms)} "
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
        # parameters
        pnames, x0, bnds, scales, isnorm, qsrc, qk = [], [], [], [], [], [], []
        free_src = [j for j, t in enumerate(terms) if t.free.any()]
        for jj, j in enumerate(free_src):
            t = terms[j]
            for k in np.flatnonzero(t.free):
                pnames.append(f"{t.name}:{t.model.par_names[k]}")
                x0.append(t.p[k] / t.scale[k])
                bnds.append(t.bounds[k])
                scales.append(t.scale[k])
                isnorm.append(t.model.par_names[k] == t.model.norm_param)
                qsrc.append(jj)
                qk.append(int(k))
        self.parameters = tuple(pnames)
        self.x0 = np.array(x0, dtype=float)
        self.bounds = np.array(bnds, dtype=float).reshape(-1, 2)
        self.scales = np.array(scales, dtype=float)
        self.is_norm = np.array(isnorm, dtype=bool)
        self._free_src = np.array(free_src, dtype=np.int64)
        self._q_local = np.array(qsrc, dtype=np.int64)          # index into _free_src
        self._q_map = self._free_src[self._q_local] if qsrc else np.zeros(0, np.int64)
        self._q_k = np.array(qk, dtype=np.int64)
        work = max(1, len(free_src)) * (nb + 1) * npix
        self._parallel = (work >= PARALLEL_MIN_WORK) if parallel is None else bool(parallel)
        self.blk = max(1, int(blk))
        if seg is None:
            per_pix = max(1, len(free_src)) * (self.blk + 1) * self.srcmaps.itemsize
            seg = int(np.clip(_UNIT_BYTES // per_pix, 1024, 16384)) // 256 * 256
        self.seg = max(1, min(int(seg), npix))
        self.info_seg = max(1, min(npix, int(np.clip(_INFO_BYTES // (8 * max(1, len(pnames))),
                                                     1024, 1 << 20))))
        self._half_dlog = 0.5 * np.log(e[1:] / e[:-1])
        # the fixed sources, summed once
        fixed_src = np.array([j for j, t in enumerate(terms) if not t.free.any()
                              and esc[j] != 0.0], dtype=np.int64)
        if fixed_src.size:
            lo, hi = self._node_weights_of(fixed_src)
            fc = np.zeros((nb, npix))
            mc = K.model_cube_parallel if (fixed_src.size * (nb + 1) * npix
                                           >= PARALLEL_MIN_WORK) else K.model_cube_serial
            mc(_EMPTY, self.srcmaps, fixed_src, lo, hi, k0, k1, fc)
            self.fixed = fc
        else:
            self.fixed = _EMPTY
        self._last: _Eval | None = None
        self._sums = {}

    # -- parameters -> node weights -----------------------------------------------------
    def physical_params(self, x) -> dict[str, np.ndarray]:
        """Physical parameter vectors of every source at the free values ``x``."""
        x = self._x(x)
        out = {t.name: t.p.copy() for t in self.sources}
        for q in range(self.npar):
            t = self.sources[self._q_map[q]]
            out[t.name][self._q_k[q]] = x[q] * self.scales[q]
        return out

    def _p_of(self, j: int, x) -> np.ndarray:
        t = self.sources[j]
        sel = np.flatnonzero(self._q_map == j)
        if sel.size == 0:
            return t.p
        p = t.p.copy()
        p[self._q_k[sel]] = x[sel] * self.scales[sel]
        return p

    def _node_weights_of(self, srcs, x=None):
        """(lo, hi), each (len(srcs), n_bins), for sources ``srcs`` (map indices)."""
        lo = np.zeros((len(srcs), self.counts.shape[0]))
        hi = np.zeros_like(lo)
        for a, j in enumerate(srcs):
            t = self.sources[j]
            p = t.p if x is None else self._p_of(j, x)
            f = t.model.evaluate(self.energies, p)
            lo[a], hi[a] = node_weights(self.energies, f)
            lo[a] *= self.expscale[j]
            hi[a] *= self.expscale[j]
        return lo, hi

    def _weights(self, x, derivs: bool):
        """lo, hi (n_free_src, n_bins) and, if ``derivs``, dlo, dhi (npar, n_bins): the
        derivatives of the node weights w.r.t. the scaled free parameters."""
        nfs = self._free_src.size
        nb = self.counts.shape[0]
        lo = np.zeros((nfs, nb))
        hi = np.zeros((nfs, nb))
        dlo = np.zeros((self.npar, nb)) if derivs else None
        dhi = np.zeros((self.npar, nb)) if derivs else None
        for jj, j in enumerate(self._free_src):
            t = self.sources[j]
            p = self._p_of(j, x)
            f = t.model.evaluate(self.energies, p)
            c = self.expscale[j]
            lo[jj], hi[jj] = node_weights(self.energies, f)
            lo[jj] *= c
            hi[jj] *= c
            if derivs:
                qs = np.flatnonzero(self._q_local == jj)
                G = t.model.gradient(self.energies, p)[self._q_k[qs]]
                gl, gh = node_weights(self.energies, G)
                dlo[qs] = gl * (c * self.scales[qs])[:, None]
                dhi[qs] = gh * (c * self.scales[qs])[:, None]
        return lo, hi, dlo, dhi

    def _second_weights(self, x):
        """d2lo, d2hi (npar, npar, n_bins): second derivatives of the node weights for
        pairs of parameters of the same source (zero elsewhere), by central differences
        of the analytic spectral gradient (exactly zero for norm-norm pairs)."""
        nb = self.counts.shape[0]
        d2lo = np.zeros((self.npar, self.npar, nb))
        d2hi = np.zeros_like(d2lo)
        for jj, j in enumerate(self._free_src):
            t = self.sources[j]
            qs = np.flatnonzero(self._q_local == jj)
            if qs.size == 0:
                continue
            blk = np.ix_(qs, qs)
            d2lo[blk], d2hi[blk] = second_node_weights(
                t.model, self.energies, self._p_of(j, x), self._q_k[qs], x[qs],
                self.scales[qs], self.expscale[j])
        return d2lo, d2hi

    # -- evaluation ---------------------------------------------------------------------
    def _loglike_kernel(self):
        return K.loglike_parallel if self._parallel else K.loglike_serial

    def _cube_kernel(self):
        return K.model_cube_parallel if self._parallel else K.model_cube_serial

    def __call__(self, x) -> float:
        x = self._x(x)
        last = self._last
        if last is not None and last.key == x.tobytes():
            return last.value
        lo, hi, _, _ = self._weights(x, False)
        k0, k1 = self.bin_range
        ll, _, _ = self._loglike_kernel()(self.counts, self.wmap, self.fixed, self.srcmaps,
                                          self._free_src, lo, hi, k0, k1, self.seg,
                                          self.blk, False, _EMPTY)
        return -float(ll)

    def _evaluate(self, x) -> _Eval:
        key = x.tobytes()
        last = self._last
        if last is not None and last.key == key:
            return last
        lo, hi, dlo, dhi = self._weights(x, True)
        k0, k1 = self.bin_range
        nb, npix = self.counts.shape
        m = np.empty((nb, npix)) if (k0, k1) == (0, nb) else np.zeros((nb, npix))
        ll, A, B = self._loglike_kernel()(self.counts, self.wmap, self.fixed, self.srcmaps,
                                          self._free_src, lo, hi, k0, k1, self.seg,
                                          self.blk, True, m)
        ql = self._q_local
        g = -(np.sum(dlo * A[ql], axis=1) + np.sum(dhi * B[ql], axis=1))
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
        k0, k1 = self.bin_range
        m = np.zeros(self.counts.shape)
        self._cube_kernel()(self.fixed, self.srcmaps, self._free_src, lo, hi, k0, k1, m)
        return m

    def _info(self, x, m, observed: bool) -> np.ndarray:
        _, _, dlo, dhi = self._weights(x, True)
        k0, k1 = self.bin_range
        v = np.empty(self.counts.shape)
        K.info_weights(self.counts, self.wmap, m, k0, k1, observed, v)
        return K.info_matrix(v, self.srcmaps, self._q_map, dlo, dhi, k0, k1, self.info_seg)

    def fisher(self, x) -> np.ndarray:
        """Expected information sum_{i,p} w/m dm/dx_a dm/dx_b (npar, npar), scaled units."""
        x = self._x(x)
        if self.npar == 0:
            return np.zeros((0, 0))
        return self._info(x, self._model_at(x), False)

    def hessian(self, x) -> np.ndarray:
        """Observed information: the exact Hessian of -log L,
        sum w n/m^2 dm_a dm_b - sum w (n/m - 1) d2m/dx_a dx_b."""
        x = self._x(x)
        if self.npar == 0:
            return np.zeros((0, 0))
        ev = self._evaluate(x)
        H = self._info(x, ev.model, True)
        d2lo, d2hi = self._second_weights(x)
        ql = self._q_local
        # only pairs within one source have second derivatives
        T = np.einsum("abi,bi->ab", d2lo, ev.A[ql]) + np.einsum("abi,bi->ab", d2hi,
                                                                  ev.B[ql])
        same = ql[:, None] == ql[None, :]
        return H - np.where(same, T, 0.0)

    # -- products -----------------------------------------------------------------------
    def model_cube(self, x=None) -> np.ndarray:
        """Model counts (n_bins, *spatial shape) at ``x`` (default ``x0``); bins outside
        ``bin_range`` are 0."""
        x = self.x0 if x is None else self._x(x)
        return self._model_at(x).reshape((-1,) + self.spatial_shape).copy()

    def source_cube(self, name: str, x=None) -> np.ndarray:
        """Model counts of one source (n_bins, *spatial shape)."""
        x = self.x0 if x is None else self._x(x)
        j = self._source_index(name)
        lo, hi = self._node_weights_of([j], x)
        k0, k1 = self.bin_range
        out = np.zeros(self.counts.shape)
        K.model_cube_serial(_EMPTY, self.srcmaps, np.array([j], dtype=np.int64), lo, hi,
                            k0, k1, out)
        return out.reshape((-1,) + self.spatial_shape)

    def npred(self, x=None, weighted: bool = False) -> np.ndarray:
        """Predicted counts per source and bin (n_src, n_bins); with ``weighted`` the
        weighted sum over pixels (sum w m)."""
        x = self.x0 if x is None else self._x(x)
        key = bool(weighted)
        if key not in self._sums:
            k0, k1 = self.bin_range
            ns = K.node_sums_parallel if self._parallel else K.node_sums_serial
            self._sums[key] = ns(self.srcmaps, self.wmap if weighted else _EMPTY, k0, k1)
        L, U = self._sums[key]
        lo, hi = self._node_weights_of(range(len(self.sources)), x)
        return lo * L + hi * U

    def _source_index(self, name: str) -> int:
        try:
            return self.source_names.index(name)
        except ValueError:
            raise RecipeError(f"no source {name!r} in this likelihood component "
                              f"({', '.join(self.source_names)})") from None

    def __repr__(self) -> str:
        nb, npix = self.counts.shape
        return (f"BinnedPoissonCost({len(self.sources)} sources, {self.npar} free "
                f"parameters, {nb} bins x {npix} pixels)")
