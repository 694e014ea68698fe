"""Spectral energy distribution (Fermipy's ``sed``): per energy bin, the normalisation of
a source relative to a reference power law, fitted and scanned with the likelihood of
that bin alone.

For each SED bin [e_min, e_max] (``loge_bins``, default the analysis bins; every edge must
be an analysis bin edge of every component):

* the source's spectrum is replaced by a power law of index ``bin_index`` (or, with
  ``use_local_index``, the local slope of the global spectrum at e_ref) normalised to the
  global model at e_ref = sqrt(e_min e_max); its ``norm`` is the factor on that reference;
* the bin's cost sees only the bin's measured energies (the plain cost's ``bin_range``;
  with energy dispersion the measured rows of the bin and the true-energy band they
  draw from), so one bin costs one bin's pixels;
* the norm is fitted together with the background normalisations that are free
  (``free_background``: those free in the model; ``free_radius``: the point-like and
  extended sources within that distance), each with a Gaussian prior of width
  ``cov_scale`` times its global-fit error (``cov_scale`` null: no prior).  The free
  parameters are all normalisations, so the bin's model counts are linear in them
  (:class:`_LinearBin`: a fixed cube and one unit cube per norm, taken once from the
  bin's cost objects) and the fit is convex: a projected Newton iteration on the exact
  Hessian reaches the optimum at the cost's rounding level (the ``optimizer`` mapping
  selects the general fitter on the cost objects instead);
* a likelihood scan of the norm with the others held (Fermipy's reoptimize=False) always
  includes norm 0 and ends where log L has fallen >= 2.71 below its maximum; every point
  is finite;
* TS = 2 (log L(norm) - log L(0)); the errors ``norm_err_lo``/``norm_err_hi`` where the
  held profile has fallen by 0.5, ``norm_err`` their mean (``norm_err_hi`` when the lower
  crossing is cut by norm = 0), the upper limits where it has fallen by
  0.5 (sqrt(2) erfinv(2c - 1))^2 (1.353 for c = 0.95), all found by root finding on the
  exact profile bracketed by the scan (what a spline of the scan approximates).

The global fit (the bowtie ``model_flux``, the source's parameters and covariance, the
priors' widths) is the state's last fit: fit before the SED, as in Fermipy practice.
``free_pars`` (Fermipy: the source's parameters freed in the global fit) conditions that
fit's covariance on the source's other parameters, which is the covariance of a global
fit with only ``free_pars`` free at the same optimum; it is not refitted.

The state given is never modified; a bin whose fit or scan has a problem is recorded, never
dropped: ``fit_status`` 0 converged, 1 iteration limit, 2 no step lowered the cost, 3 the
likelihood never fell 2.71 below its maximum (a bin without information: the limits are
NaN), 4 a scan point was not finite (replaced by -1e30, never NaN or inf); with the
``optimizer`` mapping, the general fitter's status.  ``fit_quality`` 3 when the bin fit's
Hessian is positive definite, else 1 (Fermipy's scale).  When log L at norm 0 is not finite
(the source alone predicts counts somewhere) the scan's first point is 1e-9 of the next.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import EstimatorError, FermixrError
from ..likelihood.roi import AnalysisState, map_key
from . import EstimatorResult, register

__all__ = ["sed", "sed_values", "ul_dloglike", "sed_dict"]

_TS_SCAN_DROP = 2.71      # the scan extends until log L has fallen this much
_LOGE_TOL = 1e-3          # loge_bins within this of an analysis edge (log10 MeV) match it


def ul_dloglike(confidence: float) -> float:
    """Drop of log L at the one-sided upper limit of ``confidence`` (1.353 for 0.95)."""
    from scipy.special import erfinv

    return 0.5 * (math.sqrt(2.0) * float(erfinv(2.0 * confidence - 1.0))) ** 2


# ------------------------------------------------------------------ options checked --
def _check_options(bin_index, use_local_index, free_background, free_radius, ul_confidence,
                   cov_scale, llscan_npts):
    def bad(key, value, want):
        raise EstimatorError(f"sed: {key}: got {value!r}; expected {want}")

    if isinstance(bin_index, bool) or not isinstance(bin_index, (int, float)) \
            or not math.isfinite(bin_index):
        bad("bin_index", bin_index, "a finite number (dN/dE ~ E^-bin_index)")
    for key, v in (("use_local_index", use_local_index), ("free_background", free_background)):
        if not isinstance(v, (bool, np.bool_)):
            bad(key, v, "true or false")
    if free_radius is not None and (isinstance(free_radius, bool) or not isinstance(
            free_radius, (int, float)) or not free_radius >= 0):
        bad("free_radius", free_radius, "null or a distance >= 0 in deg")
    if isinstance(ul_confidence, bool) or not isinstance(ul_confidence, (int, float)) \
            or not 0 < ul_confidence < 1:
        bad("ul_confidence", ul_confidence, "a confidence level between 0 and 1 (e.g. 0.95)")
    if cov_scale is not None and (isinstance(cov_scale, bool) or not isinstance(
            cov_scale, (int, float)) or not cov_scale > 0 or not math.isfinite(cov_scale)):
        bad("cov_scale", cov_scale, "null (no prior) or a number > 0")
    if isinstance(llscan_npts, bool) or not isinstance(llscan_npts, (int, np.integer)) \
            or llscan_npts < 5:
        bad("llscan_npts", llscan_npts, "an integer >= 5")


def sed_bins(state: AnalysisState, loge_bins=None) -> list[tuple[float, float]]:
    """[(e_min, e_max)] in MeV of the SED bins; ``loge_bins`` (log10 MeV) must lie on
    analysis bin edges of every component."""
    comps = state.components
    edges0 = np.asarray(comps[0].edges, dtype=float)
    if loge_bins is None:
        for ci, comp in enumerate(comps[1:], 1):
            if comp.edges.size != edges0.size or not np.allclose(comp.edges, edges0,
                                                                 rtol=1e-6):
                raise EstimatorError(
                    f"sed: component {ci} has other energy bins than component 0; give "
                    "loge_bins (log10 MeV) on edges that every component shares")
        return [(float(a), float(b)) for a, b in zip(edges0[:-1], edges0[1:])]
    try:
        lb = np.asarray(loge_bins, dtype=float).ravel()
    except (TypeError, ValueError):
        raise EstimatorError(f"sed: loge_bins: got {loge_bins!r}; expected a list of "
                             "increasing log10(E/MeV) bin edges") from None
    if lb.size < 2 or not np.all(np.isfinite(lb)) or np.any(np.diff(lb) <= 0):
        raise EstimatorError(f"sed: loge_bins: got {lb.tolist()!r}; expected at least two "
                             "increasing log10(E/MeV) bin edges")
    for ci, comp in enumerate(comps):
        le = np.log10(np.asarray(comp.edges, dtype=float))
        lo, hi = float(le[0]), float(le[-1])
        if lb[0] < lo - _LOGE_TOL or lb[-1] > hi + _LOGE_TOL:
            raise EstimatorError(
                f"sed: loge_bins {lb.tolist()!r} reach outside the analysis energy range "
                f"[{lo:.4f}, {hi:.4f}] (log10 MeV{'' if len(comps) == 1 else f', component {ci}'})")
        for v in lb:
            if np.min(np.abs(le - v)) > _LOGE_TOL:
                raise EstimatorError(
                    f"sed: loge_bins: {v:g} is not an analysis bin edge; the edges are "
                    f"{', '.join(f'{x:.4f}' for x in le)} (log10 MeV); choose SED bins made "
                    "of whole analysis bins")
    e = [float(edges0[np.argmin(np.abs(np.log10(edges0) - v))]) for v in lb]
    return list(zip(e[:-1], e[1:]))


def _bin_range(edges, e0, e1) -> tuple[int, int]:
    le = np.log10(np.asarray(edges, dtype=float))
    return (int(np.argmin(np.abs(le - math.log10(e0)))),
            int(np.argmin(np.abs(le - math.log10(e1)))))


# ------------------------------------------------------------------------ the costs --
class _ComponentTerms:
    """What a component's bin costs share: the source terms (background with only the
    chosen norms free, everything else fixed), maps, response matrices and scales."""

    def __init__(self, state, comp, model, target):
        from ..irf.drm import source_drm
        from ..likelihood.cost import SourceTerm

        for s in model:
            if s.name not in comp.maps:
                raise EstimatorError(f"sed: no source map of {s.name!r} in the analysis "
                                     "state")
            if comp.map_keys.get(s.name, map_key(s)) != map_key(s):
                raise EstimatorError(f"sed: the source map of {s.name!r} was made for "
                                     "another spatial model")
        self.comp = comp
        self.names = [s.name for s in model]
        self.itarget = self.names.index(target)
        self.terms = [None if s.name == target else
                      SourceTerm.from_source(s, model=state.spectral(s, comp)) for s in model]
        self.scales = [float(comp.src_expscale.get(s.name, comp.expscale)) for s in model]
        self.dispersed = comp.drm is not None
        if self.dispersed:
            self.drms = [source_drm(s.name, comp.drm, edisp=True,
                                    edisp_disable=comp.edisp_disable) for s in model]
            self.maps = comp.stacked(model, True)
        else:
            self.maps = comp.stacked(model, False)

    def cost(self, term, e0, e1, terms=None):
        from ..likelihood.cost import BinnedPoissonCost
        from ..likelihood.dispersed import DispersedPoissonCost

        comp = self.comp
        npix = comp.counts.shape[1]
        k0, k1 = _bin_range(comp.edges, e0, e1)
        terms = list(self.terms if terms is None else terms)
        terms[self.itarget] = term
        if not self.dispersed:
            return BinnedPoissonCost(comp.counts, self.maps, comp.edges, terms,
                                     wmap=comp.wmap, src_expscale=self.scales,
                                     bin_range=(k0, k1),
                                     parallel=_parallel(terms, k1 - k0 + 1, npix))
        rows = [d[k0:k1] for d in self.drms]
        nz = np.flatnonzero(np.any(np.stack([r != 0 for r in rows]), axis=(0, 1)))
        if nz.size:
            c0, c1 = int(nz[0]), int(nz[-1]) + 1
        else:
            c0, c1 = k0 + comp.n_extra, k1 + comp.n_extra
        return DispersedPoissonCost(
            comp.counts[k0:k1], self.maps[:, c0:c1 + 1], comp.nodes[c0:c1 + 1], terms,
            [np.ascontiguousarray(r[:, c0:c1]) for r in rows],
            wmap=None if comp.wmap is None else comp.wmap[k0:k1], scales=self.scales,
            parallel=_parallel(terms, c1 - c0 + 1, npix))


def _parallel(terms, nodes: int, npix: int) -> bool:
    """The costs' own rule (parallel kernels above PARALLEL_MIN_WORK map elements per
    pass), counted over the nodes a bin cost touches rather than all of them."""
    from ..likelihood.cost import PARALLEL_MIN_WORK

    nfree = max(1, sum(bool(t.free.any()) for t in terms))
    return nfree * nodes * npix >= PARALLEL_MIN_WORK


def _reference_term(name, ref_dnde, index, e_ref):
    """The bin's power law: Prefactor = norm x ref_dnde (scale ref_dnde, so the scaled
    value is the norm), Index = -index, Scale = e_ref; only the norm free, >= 0."""
    from ..likelihood.cost import SourceTerm
    from ..model.spectral import PowerLaw

    return SourceTerm.make(name, PowerLaw(), [ref_dnde, -index, e_ref],
                           free=[True, False, False],
                           bounds=[(0.0, None), (None, None), (None, None)],
                           scale=[ref_dnde, 1.0, 1.0])


# ------------------------------------------------------------------------- the fit --
def _newton(cost, x0, max_iter=50):
    """Minimise a convex cost within its bounds by projected Newton steps on the exact
    Hessian with a backtracking line search.  Returns (x, value, status, H): status 0
    when converged (the Newton decrement at the rounding level of the cost, or a step
    that no longer moves x), 1 at the iteration limit, 2 when no step lowers the cost;
    H the last Hessian of the parameters off their bounds (None: all on a bound)."""
    b = np.asarray(cost.bounds, dtype=float).reshape(-1, 2)
    lo, hi = b[:, 0], b[:, 1]
    x = np.clip(np.asarray(x0, dtype=float), lo, hi)
    f, g = cost.value_and_grad(x)
    status = 1
    H = None
    for _ in range(max_iter):
        noise = 1e-13 * max(1.0, abs(f))      # what a change of the cost can resolve
        act = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))
        fr = np.flatnonzero(~act)
        if not fr.size:
            status, H = 0, None
            break
        H = cost.hessian(x)[np.ix_(fr, fr)]
        gf = g[fr]
        # Jacobi-scaled solve (a prior's curvature may exceed the data's by 1e12); a
        # parameter without curvature (a norm of a bin without counts: log L linear in
        # it) steps straight to its bound
        hd = np.diag(H).copy()
        flat = ~(hd > 0)
        d = np.zeros(fr.size)
        if (~flat).any():
            k = np.flatnonzero(~flat)
            dg = np.sqrt(hd[k])
            d[k] = -np.linalg.lstsq(H[np.ix_(k, k)] / np.outer(dg, dg), gf[k] / dg,
                                    rcond=1e-14)[0] / dg
        d[flat] = -np.sign(gf[flat]) * 1e6 * (np.abs(x[fr][flat]) + 1.0)
        dec = -float(gf @ d)
        if not np.isfinite(dec):
            status = 2
            break
        if dec <= 0:                 # a flat or degenerate direction: steepest descent
            d = -gf
            dec = float(gf @ gf)
        if dec < 1e-6 * noise:
            status = 0
            break
        t = 1.0
        while t > 1e-12:
            xn = x.copy()
            xn[fr] = np.clip(x[fr] + t * d, lo[fr], hi[fr])
            fn = cost(xn)
            if np.isfinite(fn) and (fn <= f + 1e-4 * float(g @ (xn - x))
                                    or (t == 1.0 and dec < noise and fn - f <= noise)):
                break
            t *= 0.5
        else:
            status = 0 if dec < noise else 2
            break
        moved = np.max(np.abs(xn - x) / (np.abs(x) + 1e-8))
        x, f = xn, fn
        g = cost.grad(x)
        if moved < 1e-13 or dec < noise:      # the last step was at the rounding level
            status = 0
            break
    return x, float(f), status, H


def _quality(H) -> int:
    """Fermipy's fit_quality of a converged bin fit: 3 when the Hessian of the
    parameters off their bounds is positive definite (an accurate covariance), else 1."""
    if H is None:
        return 3
    try:
        np.linalg.cholesky(np.asarray(H, dtype=float))
        return 3
    except np.linalg.LinAlgError:
        return 1


def _source_params(state, src, free_pars=None) -> dict:
    """The source's spectral parameters from the global fit (the state's): names,
    physical values and errors, and their covariance (physical units; zero rows for
    parameters the fit did not vary) -- Fermipy's PARAMS.  ``free_pars`` (names): the
    global fit with only these of the source's parameters free, i.e. the fit's covariance
    conditioned on the source's other parameters (the inverse of the precision matrix's
    block of the remaining parameters; the background parameters of the fit stay)."""
    from .bowtie import physical_covariance

    n = len(src.spectral)
    pnames = [q.name for q in src.spectral]
    if free_pars is not None:
        bad = [p for p in free_pars if p not in pnames]
        if bad:
            raise EstimatorError(f"sed: free_pars: {bad!r} are not parameters of "
                                 f"{src.name!r} ({', '.join(pnames)})")
    fc = state.fit_covariance()
    names = list(fc[0]) if fc is not None else []
    fitted = [i for i, q in enumerate(src.spectral) if f"{src.name}:{q.name}" in names]
    cov = np.zeros((n, n))
    if fitted:
        full = np.asarray(fc[1], dtype=float)
        keep_src = [i for i in fitted if free_pars is None or pnames[i] in free_pars]
        drop = {f"{src.name}:{pnames[i]}" for i in fitted if i not in keep_src}
        rest = [k for k, nm in enumerate(names) if nm not in drop]
        if drop and rest:
            sub = np.linalg.inv(np.linalg.inv(full)[np.ix_(rest, rest)])
        else:
            sub = full[np.ix_(rest, rest)]
        pos = [rest.index(names.index(f"{src.name}:{pnames[i]}")) for i in keep_src]
        scales = np.array([src.spectral[i].scale for i in keep_src])
        cov[np.ix_(keep_src, keep_src)] = sub[np.ix_(pos, pos)] * np.outer(scales, scales)
    else:
        idx = np.array([i for i, q in enumerate(src.spectral) if q.free and q.error and (
            free_pars is None or q.name in free_pars)], dtype=int)
        if idx.size:
            cov[np.ix_(idx, idx)] = physical_covariance(state, src, idx)
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return {"param_names": pnames, "param_values": src.spectral_values(),
            "param_errors": err, "param_covariance": cov}


def _bowtie(state, src, cov, loge) -> dict:
    """dN/dE of the global model with its 1-sigma band from ``cov`` (physical units, all
    spectral parameters), as estimators.bowtie."""
    sm = state.spectral(src)
    p = src.spectral_values()
    e = 10 ** np.asarray(loge, dtype=float)
    f = np.asarray(sm.evaluate(e, p), dtype=float)
    g = np.asarray(sm.gradient(e, p), dtype=float)
    err = np.sqrt(np.clip(np.einsum("ai,ab,bi->i", g, cov, g), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        ferr = err / f
    return {"energies": e, "dnde": f, "dnde_err": err, "dnde_lo": f - err,
            "dnde_hi": f + err, "dnde_ferr": ferr}


# --------------------------------------------------------- the bin as a linear problem --
class _LinearBin:
    """A bin's likelihood when every free parameter is a normalisation: the model counts
    are linear in them, m = fixed + x @ D over the bin's cells (component, measured bin,
    pixel), with counts n and weights w.  ``fixed`` and the unit cubes D come from the
    bin's cost objects (their maps, response, exposure scales), once; then a value,
    gradient or Hessian is a few passes over the cells in numpy (no BLAS, so no thread
    pool is started for small products), and the cost objects are not called again.
    ``priors``: (index, mean, sigma) Gaussian priors on x.  The interface is the costs'
    (``bounds``, ``__call__``, ``value_and_grad``, ``grad``, ``hessian``): -log L."""

    def __init__(self, n, w, fixed, D, bounds, priors=()):
        self.n, self.w, self.fixed, self.D = n, w, fixed, D
        self.bounds = np.asarray(bounds, dtype=float).reshape(-1, 2)
        self.priors = tuple(priors)
        self.npar = D.shape[0]

    @classmethod
    def from_costs(cls, like, names, priors=()):
        """From the bin's cost (one per component, or their sum) and the free parameter
        names of ``like`` (norms only)."""
        ns, ws, fs, Ds = [], [], [], []
        for c in _likes(like):
            k0, k1 = c.bin_range
            shape = c.counts.shape
            cn = list(c.parameters)
            zeros = np.zeros(len(cn))
            fixed = np.asarray(c.model_cube(zeros)).reshape(shape)[k0:k1].ravel()
            D = np.zeros((len(names), fixed.size))
            for q, pname in enumerate(cn):
                x = zeros.copy()
                x[q] = 1.0
                cube = np.asarray(c.source_cube(pname.rsplit(":", 1)[0], x))
                D[names.index(pname)] = cube.reshape(shape)[k0:k1].ravel()
            n = c.counts[k0:k1].ravel()
            w = (np.ones_like(n) if c.wmap.size == 0 else c.wmap[k0:k1].ravel())
            keep = (n > 0) | (fixed != 0) | np.any(D != 0, axis=0)
            ns.append(n[keep])
            ws.append(w[keep])
            fs.append(fixed[keep])
            Ds.append(D[:, keep])
        return cls(np.concatenate(ns), np.concatenate(ws), np.concatenate(fs),
                   np.concatenate(Ds, axis=1), like.bounds, priors)

    def held(self, x, i):
        """The problem of parameter ``i`` alone, the others held at ``x`` (no priors:
        they are constant there)."""
        others = np.delete(np.arange(self.npar), i)
        fixed = (self.fixed + np.einsum("q,qp->p", x[others], self.D[others])
                 if others.size else self.fixed)
        return _LinearBin(self.n, self.w, fixed, self.D[i:i + 1], self.bounds[i:i + 1])

    def model(self, x):
        return self.fixed + np.einsum("q,qp->p", np.asarray(x, dtype=float), self.D)

    def loglike(self, x) -> float:
        m = self.model(x)
        pos = m > 0
        if np.any(~pos & (self.n > 0)):
            return -np.inf
        t = np.where(self.n > 0, self.n * np.log(np.where(pos, m, 1.0)), 0.0) - m
        return float(np.sum(self.w * t))

    def _prior(self, x):
        v, g, h = 0.0, np.zeros(self.npar), np.zeros(self.npar)
        for i, mean, sig in self.priors:
            z = (x[i] - mean) / sig
            v += 0.5 * z * z
            g[i] += z / sig
            h[i] += 1.0 / sig ** 2
        return v, g, h

    def __call__(self, x) -> float:
        x = np.asarray(x, dtype=float)
        return -self.loglike(x) + self._prior(x)[0]

    def value_and_grad(self, x):
        x = np.asarray(x, dtype=float)
        m = self.model(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.w * (np.where(self.n > 0, self.n / m, 0.0) - 1.0)
        pv, pg, _ = self._prior(x)
        return -self.loglike(x) + pv, -np.einsum("qp,p->q", self.D, r) + pg

    def grad(self, x):
        return self.value_and_grad(x)[1]

    def hessian(self, x):
        x = np.asarray(x, dtype=float)
        m = self.model(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(self.n > 0, self.w * self.n / (m * m), 0.0)
        H = np.einsum("qp,rp->qr", self.D * v, self.D, optimize=False)
        return H + np.diag(self._prior(x)[2])


# ----------------------------------------------------------------- profile and limits --
class _Profile:
    """log L of the bin as a function of the norm alone (the others held)."""

    def __init__(self, like, x, inorm):
        self.like, self.x, self.i = like, np.array(x, dtype=float), inorm
        self.x0 = float(x[inorm])
        self.l0 = -float(like(self.x))

    def __call__(self, v):
        x = self.x.copy()
        x[self.i] = v
        return -float(self.like(x)) - self.l0        # dlogL, <= 0 near the optimum

    def crossing(self, drop, side, sigma):
        """The norm on ``side`` (+1 above, -1 below the best) where dlogL = -drop; None
        below when norm 0 is reached first."""
        from scipy.optimize import brentq

        f = lambda v: self(v) + drop     # noqa: E731
        if side < 0:
            if self.x0 <= 0 or f(0.0) >= 0:
                return None
            return brentq(f, 0.0, self.x0, xtol=1e-10 * max(self.x0, 1e-300), rtol=1e-12)
        step = max(sigma, 1e-6 * self.x0, 1e-12)
        a, bnd = self.x0, self.x0 + step
        for _ in range(200):
            if f(bnd) < 0:
                return brentq(f, a, bnd, xtol=1e-12 * bnd, rtol=1e-12)
            a, bnd = bnd, self.x0 + 2 * (bnd - self.x0)
        return float("nan")


def _scan_grid(prof, sigma, npts, x_hi):
    """``npts`` norms: 0, then from below the best fit to past the point where log L has
    fallen 2.71 (``x_hi``)."""
    x0 = prof.x0
    top = x0 + 1.25 * (x_hi - x0)
    low = prof.crossing(_TS_SCAN_DROP, -1, sigma)
    start = 0.0 if low is None else max(0.0, x0 - 1.25 * (x0 - low))
    if start <= 0.0:
        return np.linspace(0.0, top, npts)
    return np.concatenate([[0.0], np.linspace(start, top, npts - 1)])


# -------------------------------------------------------------------------- helpers --
def _background_norms(state, src, free_background, free_radius) -> list[str]:
    """Names of the background sources whose norm is free in the bin fits."""
    from ..geom.frames import angular_separation

    out = []
    for s in state.model:
        if s.name == src.name:
            continue
        norm = s.param(state.spectral(s).norm_param)
        take = free_background and norm.free
        if not take and free_radius is not None and not s.is_diffuse \
                and src.skydir is not None and s.skydir is not None:
            sep = float(angular_separation(s.skydir[0], s.skydir[1], src.skydir[0],
                                           src.skydir[1]))
            take = sep <= free_radius
        if take:
            out.append(s.name)
    return out


def _global_error(state, s, par) -> float | None:
    """The error (scaled units) of parameter ``par`` of ``s`` from the state's fit, else
    its recorded error."""
    fc = state.fit_covariance()
    key = f"{s.name}:{par.name}"
    if fc is not None and key in fc[0]:
        v = float(fc[1][fc[0].index(key), fc[0].index(key)])
        if v > 0:
            return math.sqrt(v)
    return float(par.error) if par.error else None


def _bin_model(state, target, bkg):
    """The model of the bin fits: everything fixed but the chosen background norms."""
    model = state.model
    for s in state.model:
        norm = state.spectral(s).norm_param
        spec = tuple(q.replace(free=(s.name in bkg and q.name == norm))
                     for q in s.spectral)
        if spec != s.spectral:
            model = model.replace_source(s.replace(spectral=spec))
    return model


# ---------------------------------------------------------------------- the estimator --
def sed_values(state: AnalysisState, name: str, *, loge_bins=None, bin_index=2.0,
               use_local_index=False, free_background=False, free_radius=None,
               free_pars=None, ul_confidence=0.95, cov_scale=3.0, llscan_npts=20,
               optimizer=None) -> dict:
    """The SED of ``name`` as Fermipy's dict (arrays per bin; see the module docstring)."""
    from ..likelihood.priors import GaussianPrior
    from ..model.spectral import PowerLaw

    _check_options(bin_index, use_local_index, free_background, free_radius, ul_confidence,
                   cov_scale, llscan_npts)
    try:
        src = state.model.find(name)
    except FermixrError:
        raise EstimatorError(f"sed: no source {name!r} in the model "
                             f"({len(state.model)} sources)") from None
    if optimizer is not None and not isinstance(optimizer, dict):
        raise EstimatorError(f"sed: optimizer: got {optimizer!r}; expected null or a "
                             "mapping of optimizer options")
    if src.is_diffuse:
        raise EstimatorError(f"sed: {src.name!r} is a diffuse source; the SED is made for "
                             "point-like and extended sources")
    bins = sed_bins(state, loge_bins)
    o_params = _source_params(state, src, free_pars)
    sm = state.spectral(src)
    p_glob = src.spectral_values()
    bkg = _background_norms(state, src, bool(free_background), free_radius)
    bmodel = _bin_model(state, src.name, bkg)
    parts = [_ComponentTerms(state, c, bmodel, src.name) for c in state.components]
    priors = []
    if cov_scale is not None:
        for n in bkg:
            s = state.model.find(n)
            par = s.param(state.spectral(s).norm_param)
            err = _global_error(state, s, par)
            if err:
                priors.append(GaussianPrior(f"{n}:{par.name}", par.value, cov_scale * err))
    for key, (mean, sig) in state.priors.items():
        if key.split(":", 1)[0] in bkg:
            priors.append(GaussianPrior(key, mean, sig))
    dl_ul = ul_dloglike(ul_confidence)
    dl_95 = ul_dloglike(0.95)
    pl = PowerLaw()
    nb = len(bins)
    npts = int(llscan_npts)
    o = {k: np.full(nb, np.nan) for k in (
        "e_min", "e_ref", "e_max", "ref_dnde", "ref_flux", "ref_eflux", "ref_dnde_e_min",
        "ref_dnde_e_max", "ref_e2dnde", "ref_npred", "norm", "norm_err", "norm_err_lo",
        "norm_err_hi", "norm_ul95", "norm_ul", "ts", "loglike", "npred", "index")}
    o.update(o_params)
    o["fit_quality"] = np.zeros(nb, dtype=np.int64)
    o["fit_status"] = np.zeros(nb, dtype=np.int64)
    o["norm_scan"] = np.zeros((nb, npts))
    o["dloglike_scan"] = np.zeros((nb, npts))
    o["loglike_scan"] = np.zeros((nb, npts))
    for j, (e0, e1) in enumerate(bins):
        e_ref = math.sqrt(e0 * e1)
        ref_dnde = float(sm.evaluate(np.array([e_ref]), p_glob)[0])
        if not (np.isfinite(ref_dnde) and ref_dnde > 0):
            raise EstimatorError(f"sed: the global spectrum of {src.name!r} is "
                                 f"{ref_dnde!r} at {e_ref:.4g} MeV; the SED needs a "
                                 "positive reference (set its norm first)")
        if use_local_index:
            r = 1.001
            f2 = sm.evaluate(np.array([e_ref / r, e_ref * r]), p_glob)
            index = -float(np.log(f2[1] / f2[0]) / np.log(r * r))
        else:
            index = float(bin_index)
        term = _reference_term(src.name, ref_dnde, index, e_ref)
        pref = np.array([ref_dnde, -index, e_ref])
        like = parts[0].cost(term, e0, e1)
        for part in parts[1:]:
            like = like + part.cost(term, e0, e1)
        total = like
        for pr in priors:
            total = total + pr
        names = list(like.parameters)
        inorm = names.index(f"{src.name}:Prefactor")
        x_start = np.array(like.x0, dtype=float)
        x_start[inorm] = 1.0
        prior_idx = [(names.index(pr.parameter), pr.mean, pr.sigma) for pr in priors]
        lin = _LinearBin.from_costs(like, names, prior_idx)
        if optimizer:
            from ..fit.fitter import fit as run_fit

            res = run_fit(total, x_start, **optimizer)
            xb = np.array(res.values if res.fit_success else res.last_values
                          if res.last_values is not None else res.values, dtype=float)
            status, quality = int(res.fit_status), int(res.fit_quality)
        else:
            xb, _, status, H = _newton(lin, x_start)
            quality = _quality(H)
            if status:
                quality = min(quality, 1)
        # the held profile: the target's norm alone, the others at their best
        held = lin.held(xb, inorm)
        prof = _Profile(held, xb[inorm:inorm + 1], 0)
        hnn = float(held.hessian(xb[inorm:inorm + 1])[0, 0])
        sigma = 1.0 / math.sqrt(hnn) if hnn > 0 else max(prof.x0, 1.0)
        # the reference model's counts (the cells' unit cube of the target)
        ref_npred = float(held.D[0].sum())
        x_271 = prof.crossing(_TS_SCAN_DROP, 1, sigma)
        if not np.isfinite(x_271):
            status = max(status, 3)
            x_271 = prof.x0 + 10 * sigma
        grid = _scan_grid(prof, sigma, npts, x_271)
        dll = np.array([prof(v) for v in grid])
        if not np.isfinite(dll[0]):          # the model vanishes where counts are
            grid[0] = 1e-9 * grid[1]
            dll[0] = prof(grid[0])
        if not np.all(np.isfinite(dll)):
            status = max(status, 4)
            dll = np.where(np.isfinite(dll), dll, -1e30)
        x_hi = prof.crossing(0.5, 1, sigma)
        x_lo = prof.crossing(0.5, -1, sigma)
        err_hi = x_hi - prof.x0
        err_lo = prof.x0 - (0.0 if x_lo is None else x_lo)
        err = err_hi if x_lo is None else 0.5 * (err_hi + err_lo)
        ul = prof.crossing(dl_ul, 1, sigma)
        ul95 = ul if dl_95 == dl_ul else prof.crossing(dl_95, 1, sigma)
        ll_best = prof.l0
        o["e_min"][j], o["e_ref"][j], o["e_max"][j] = e0, e_ref, e1
        o["ref_dnde"][j] = ref_dnde
        o["ref_flux"][j] = float(pl.flux(e0, e1, pref))
        o["ref_eflux"][j] = float(pl.eflux(e0, e1, pref))
        o["ref_dnde_e_min"][j] = float(pl.evaluate(np.array([e0]), pref)[0])
        o["ref_dnde_e_max"][j] = float(pl.evaluate(np.array([e1]), pref)[0])
        o["ref_e2dnde"][j] = e_ref ** 2 * ref_dnde
        o["ref_npred"][j] = ref_npred
        o["norm"][j] = prof.x0
        o["norm_err"][j], o["norm_err_lo"][j], o["norm_err_hi"][j] = err, err_lo, err_hi
        o["norm_ul"][j], o["norm_ul95"][j] = ul, ul95
        at_zero = prof(0.0)
        o["ts"][j] = max(0.0, -2.0 * (at_zero if np.isfinite(at_zero) else dll[0]))
        o["loglike"][j] = ll_best
        o["npred"][j] = prof.x0 * ref_npred
        o["index"][j] = index
        o["fit_status"][j], o["fit_quality"][j] = status, quality
        o["norm_scan"][j] = grid
        o["dloglike_scan"][j] = dll
        o["loglike_scan"][j] = ll_best + dll
    for fam in ("flux", "eflux", "dnde", "e2dnde"):
        ref = o[f"ref_{fam}"]
        for suf in ("", "_err", "_err_lo", "_err_hi", "_ul95", "_ul"):
            o[f"{fam}{suf}"] = o[f"norm{suf}"] * ref
    o["e_ctr"] = o["e_ref"].copy()
    for k in ("e_min", "e_max", "e_ctr", "e_ref"):
        o[f"log{k}"] = np.log10(o[k])
    emin, emax = state.energy_range
    o["model_flux"] = _bowtie(state, src, o["param_covariance"],
                              np.linspace(math.log10(emin), math.log10(emax), 50))
    o.update(name=src.name, ul_confidence=float(ul_confidence), bin_index=float(bin_index),
             use_local_index=bool(use_local_index), free_background=bool(free_background),
             free_radius=free_radius, cov_scale=cov_scale, free_sources=list(bkg),
             llscan_npts=npts)
    return o


def _likes(cost):
    return cost.components if hasattr(cost, "components") else (cost,)


_BIN_VARS = {
    "e_min": "MeV", "e_ref": "MeV", "e_max": "MeV", "e_ctr": "MeV",
    "loge_min": "log10(MeV)", "loge_ref": "log10(MeV)", "loge_max": "log10(MeV)",
    "loge_ctr": "log10(MeV)",
    "ref_dnde": "cm-2 s-1 MeV-1", "ref_dnde_e_min": "cm-2 s-1 MeV-1",
    "ref_dnde_e_max": "cm-2 s-1 MeV-1", "ref_flux": "cm-2 s-1",
    "ref_eflux": "MeV cm-2 s-1", "ref_e2dnde": "MeV cm-2 s-1", "ref_npred": "count",
    "ts": "", "loglike": "", "npred": "count", "index": "", "fit_quality": "",
    "fit_status": "",
}
_FAMILY_UNITS = {"norm": "", "flux": "cm-2 s-1", "eflux": "MeV cm-2 s-1",
                 "dnde": "cm-2 s-1 MeV-1", "e2dnde": "MeV cm-2 s-1"}
_SUFFIXES = ("", "_err", "_err_lo", "_err_hi", "_ul95", "_ul")
_MODEL_KEYS = ("dnde", "dnde_lo", "dnde_hi", "dnde_err", "dnde_ferr")


def sed_dataset(o: dict):
    """Fermipy's sed() dict as the ``sed`` product."""
    import json

    import xarray as xr

    data = {}
    for k, u in _BIN_VARS.items():
        data[k] = ("energy", np.asarray(o[k]), {"units": u})
    for fam, u in _FAMILY_UNITS.items():
        for suf in _SUFFIXES:
            data[fam + suf] = ("energy", np.asarray(o[fam + suf], dtype=float), {"units": u})
    for k in ("norm_scan", "dloglike_scan", "loglike_scan"):
        data[k] = (("energy", "scan"), np.asarray(o[k], dtype=float))
    data["param_values"] = ("param", np.asarray(o["param_values"], dtype=float))
    data["param_errors"] = ("param", np.asarray(o["param_errors"], dtype=float))
    data["param_covariance"] = (("param", "param_b"),
                                np.asarray(o["param_covariance"], dtype=float))
    mf = o["model_flux"]
    for k in _MODEL_KEYS:
        data[f"model_flux_{k}"] = ("model_energy", np.asarray(mf[k], dtype=float),
                                   {"units": "" if k == "dnde_ferr" else "cm-2 s-1 MeV-1"})
    coords = {"model_energy": ("model_energy", np.asarray(mf["energies"], dtype=float),
                               {"units": "MeV"}),
              "param": ("param", np.array(o["param_names"], dtype=object))}
    attrs = {"fermixr_product": "sed", "name": str(o["name"]),
             "ul_confidence": float(o["ul_confidence"]),
             "bin_index": float(o["bin_index"]), "use_local_index": int(o["use_local_index"]),
             "free_background": int(o["free_background"]),
             "free_radius": json.dumps(o["free_radius"]),
             "cov_scale": json.dumps(o["cov_scale"]),
             "free_sources": json.dumps(list(o["free_sources"])),
             "llscan_npts": int(o["llscan_npts"])}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def sed_dict(ds, file=None) -> dict:
    """The ``sed`` product as Fermipy's sed() dict."""
    import json

    out = {}
    for k in list(_BIN_VARS) + [f + s for f in _FAMILY_UNITS for s in _SUFFIXES] + [
            "norm_scan", "dloglike_scan", "loglike_scan", "param_values", "param_errors",
            "param_covariance"]:
        out[k] = np.asarray(ds[k].values)
    out["model_flux"] = {"energies": np.asarray(ds["model_energy"].values)}
    for k in _MODEL_KEYS:
        out["model_flux"][k] = np.asarray(ds[f"model_flux_{k}"].values)
    out["param_names"] = [str(v) for v in ds["param"].values]
    a = ds.attrs
    out.update(name=str(a["name"]), file=file, ul_confidence=float(a["ul_confidence"]),
               config={"bin_index": float(a["bin_index"]),
                       "use_local_index": bool(a["use_local_index"]),
                       "free_background": bool(a["free_background"]),
                       "free_radius": json.loads(a["free_radius"]),
                       "cov_scale": json.loads(a["cov_scale"]),
                       "ul_confidence": float(a["ul_confidence"])},
               free_sources=json.loads(a["free_sources"]))
    return out


@register("sed", version="1", product="sed", section="sed", needs_source=True)
def sed(state: AnalysisState, name: str, *, loge_bins=None, bin_index=2.0,
        use_local_index=False, free_background=False, free_radius=None, free_pars=None,
        ul_confidence=0.95, cov_scale=3.0, llscan_npts=20, optimizer=None):
    """SED of a source: per energy bin the norm against a reference power law, its errors,
    upper limits, TS and likelihood scan, with the global fit's bowtie."""
    return EstimatorResult(sed_dataset(sed_values(
        state, name, loge_bins=loge_bins, bin_index=bin_index,
        use_local_index=use_local_index, free_background=free_background,
        free_radius=free_radius, free_pars=free_pars, ul_confidence=ul_confidence,
        cov_scale=cov_scale, llscan_npts=llscan_npts, optimizer=optimizer)))
