"""Detector response matrix (DRM): energy dispersion in binned analyses.

The Science Tools' binned likelihood handles energy dispersion with one response matrix
computed at the ROI centre (Likelihood ``Drm.cxx``: ``Drm::compute_drm``,
``Drm::matrix_element``, ``Drm::convolve``, ``Drm_Cache::update``).  This module computes
the same matrix and applies it.

**True-energy axis.**  The measured (counts-cube) edges are extended by ``edisp_bins``
log bins on each side, of the width of the first / last measured bin
(:func:`true_energy_axis`; ``FitUtils::expand_energies``).  With ``edisp_bins = n > 0``
the Science Tools compute source maps at the ``n_meas + 2 n + 1`` extended nodes; with
``n < 0`` (the older approximation, and the only one of the Fermipy 0.16-era tools, which
always used ``|n| = 1``) the source maps stay on the measured nodes and the true counts of
the ``|n|`` extra bins at each end are extrapolated (:func:`extrapolate_true_counts`).

**Matrix element** [i, j]: the fraction of photons of true energy ``E_j`` (the geometric
centre sqrt(E_lo E_hi) of true bin j, as ``Drm::compute_drm`` takes it) reconstructed in
measured bin i, for the mean dispersion at the ROI centre:

    D_ij = T[sum_t A_t(E_j, mu) L(mu) int_{bin i} D_t(E'; E_j, mu) dE']
           / T[sum_t A_t(E_j, mu) L(mu)]

with t the event types of the selection (FRONT, BACK ...), L the livetime of each
cos-theta bin of the livetime-cube pixel holding the ROI centre, mu that bin's
``CosineBinner::costheta`` point (the bin centre in sqrt(1 - cos theta), or in cos theta
for linear cubes), A the phi-averaged effective area, and T[.] the trapezoid rule over the
mu values (``::integrate`` in Drm.cxx).  ``cth_weighting="livetime"`` replaces T by the
plain sum over bins (the exposure-weighted mean proper); the default ``"st"`` follows the
Science Tools.  The inner integral over the measured bin is done as the Science Tools do
to high accuracy (``IEdisp::integral``, adaptive Gaussian quadrature): here a vectorised
adaptive Gauss-Kronrod (7/15) rule in ln E' on the exposure-weighted dispersion.

**Model counts.**  ``measured = DRM @ true`` (:func:`apply_drm`), with ``true`` the counts
per true bin from the source maps at the extended nodes (log-trapezoid of E S(E) dN/dE,
:mod:`fermixr.likelihood.npred`).  A source without dispersion (listed in
``gtlike.edisp_disable``, or ``gtlike.edisp: false``) uses the identity restricted to the
measured bins (:func:`identity_drm`, :func:`source_drm`).  For ``edisp_bins < 0`` the
Science Tools convolve the spatially summed true spectrum and scale each pixel of the
measured bin by xi = measured / true (:func:`edisp_scale_factors`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr

from ..conventions import DIM_ENERGY, DIM_ENERGY_TRUE
from ..errors import GeometryError, IRFError

__all__ = [
    "true_energy_axis",
    "cth_weights",
    "drm_matrix",
    "drm_dataset",
    "apply_drm",
    "identity_drm",
    "source_drm",
    "extrapolate_true_counts",
    "convolve_true_spectrum",
    "edisp_scale_factors",
]

CTH_WEIGHTINGS = ("st", "livetime")

# Gauss-Kronrod 7/15 nodes on [-1, 1] (positive half, descending; the last is 0) and
# weights; the Gauss nodes are the odd entries.
_XGK = np.array([
    0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
    0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
    0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
    0.207784955007898467600689403773245, 0.0])
_WGK = np.array([
    0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
    0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
    0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
    0.204432940075298892414161999234649, 0.209482141084727828012999174891714])
_WG = np.array([
    0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
    0.381830050505118944950369775488975, 0.417959183673469387755102040816327])
_NODES = np.concatenate((-_XGK[:-1], _XGK[::-1]))          # 15 ascending nodes
_WK = np.concatenate((_WGK[:-1], _WGK[::-1]))
_WG15 = np.zeros(15)
_WG15[[1, 3, 5]] = _WG[:3]
_WG15[[9, 11, 13]] = _WG[2::-1]
_WG15[7] = _WG[3]


# ------------------------------------------------------------------------------------
# energy axes
# ------------------------------------------------------------------------------------
def _edges(edges, what="measured_edges") -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64).ravel()
    if e.size < 2 or not np.all(np.isfinite(e)) or np.any(e <= 0) or np.any(np.diff(e) <= 0):
        raise GeometryError(
            f"{what}: expected >= 2 strictly increasing positive energy edges in MeV, "
            f"got {np.asarray(edges).tolist()!r}"
        )
    return e


def true_energy_axis(measured_edges, edisp_bins: int) -> np.ndarray:
    """True-energy edges (MeV): ``measured_edges`` extended by ``|edisp_bins|`` bins on
    each side, log-spaced with the log width of the first (low end) and last (high end)
    measured bin.  ``edisp_bins = 0`` returns the measured edges.  Negative values (the
    Science Tools' older approximation) extend the axis the same way."""
    e = _edges(measured_edges)
    if int(edisp_bins) != edisp_bins:
        raise GeometryError(f"edisp_bins must be an integer, got {edisp_bins!r}")
    from ..geom.axes import extend_log_edges

    return extend_log_edges(e, edisp_bins)


def _n_extra(n_meas: int, n_true: int) -> int:
    d = n_true - n_meas
    if d < 0 or d % 2:
        raise GeometryError(
            f"a DRM maps n_true = n_meas + 2 * edisp_bins true bins; got n_meas={n_meas}, "
            f"n_true={n_true}"
        )
    return d // 2


# ------------------------------------------------------------------------------------
# inclination weights
# ------------------------------------------------------------------------------------
def _livetime_profile(livetime, ra, dec):
    """(LivetimeProfile, thetabin) from a profile, a livetime-cube Dataset or a path."""
    from .mean import LivetimeProfile

    if isinstance(livetime, LivetimeProfile):
        return livetime, None
    if isinstance(livetime, (str, Path)):
        from ..io.ltcube import read_ltcube

        livetime = read_ltcube(livetime)
    if isinstance(livetime, xr.Dataset):
        thetabin = livetime.attrs.get("thetabin", livetime.attrs.get("THETABIN"))
        return LivetimeProfile.from_ltcube(livetime, ra, dec), thetabin
    raise IRFError(
        f"livetime must be a LivetimeProfile, a livetime-cube Dataset or a path to one; "
        f"got {type(livetime).__name__}"
    )


def _binner_costheta(edges, thetabin=None) -> np.ndarray:
    """``CosineBinner::costheta`` of each bin (ascending edges): the centre in
    sqrt(1 - cos theta) for gtltcube's default binning, else the centre in cos theta.
    Without ``thetabin`` the binning is recognised from the edges."""
    e = np.asarray(edges, dtype=np.float64)
    s = np.sqrt(np.clip(1.0 - e, 0.0, None))
    if thetabin is None:
        sqrt_binning = np.allclose(np.diff(s), np.diff(s)[0], rtol=1e-6, atol=1e-9)
    else:
        sqrt_binning = str(thetabin).upper().startswith("SQRT")
    if sqrt_binning:
        u = 0.5 * (s[1:] + s[:-1])
        return 1.0 - u * u
    return 0.5 * (e[1:] + e[:-1])


def cth_weights(livetime, ra: float = 0.0, dec: float = 0.0, *, cth_weighting: str = "st"):
    """(cos theta points, weights) of the inclination average at (ra, dec): the
    weight of each livetime-cube bin is its livetime times, for ``"st"``, the trapezoid
    weight of its point among all points (Drm.cxx) or, for ``"livetime"``, 1."""
    if cth_weighting not in CTH_WEIGHTINGS:
        raise IRFError(f"cth_weighting must be one of {CTH_WEIGHTINGS}, got {cth_weighting!r}")
    prof, thetabin = _livetime_profile(livetime, ra, dec)
    mu = _binner_costheta(prof.edges, thetabin)
    lt = np.asarray(prof.livetime, dtype=np.float64)
    if cth_weighting == "livetime":
        return mu, lt.copy()
    order = np.argsort(mu)
    m = mu[order]
    q = np.zeros_like(m)
    if m.size > 1:
        d = np.diff(m)
        q[:-1] += 0.5 * d
        q[1:] += 0.5 * d
    w = np.empty_like(lt)
    w[order] = q * lt[order]
    return mu, w


# ------------------------------------------------------------------------------------
# the matrix
# ------------------------------------------------------------------------------------
def _irfset(irfs, evtype, caldb):
    if hasattr(irfs, "edisp") and hasattr(irfs, "aeff") and hasattr(irfs, "event_types"):
        return irfs
    from .irfset import load_irfs

    return load_irfs(irfs, evtype, caldb)


def _gk_integrate(func, a, b, owner, n_out, *, rtol, atol, max_depth):
    """Vectorised adaptive Gauss-Kronrod: sum over intervals [a, b] (grouped by
    ``owner``) of the integral of ``func(x (m, 15), idx (m,)) -> (m, 15)``.  An interval
    is accepted when |K15 - G7| <= max(rtol |K15|, atol * width / initial width)."""
    out = np.zeros(n_out)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    owner = np.asarray(owner, dtype=np.int64)
    width0 = b - a
    for depth in range(max_depth + 1):
        if a.size == 0:
            break
        half = 0.5 * (b - a)
        mid = 0.5 * (b + a)
        f = func(mid[:, None] + half[:, None] * _NODES[None, :], owner)
        k = half * (f @ _WK)
        err = np.abs(k - half * (f @ _WG15))
        tol = np.maximum(rtol * np.abs(k), atol * (b - a) / width0)
        ok = (err <= tol) | (depth == max_depth)
        np.add.at(out, owner[ok], k[ok])
        bad = ~ok
        if not np.any(bad):
            break
        a, b, owner, width0 = a[bad], b[bad], owner[bad], width0[bad]
        mid = 0.5 * (a + b)
        a, b = np.concatenate((a, mid)), np.concatenate((mid, b))
        owner = np.concatenate((owner, owner))
        width0 = np.concatenate((width0, width0))
    return out


def drm_matrix(irfs, livetime, ra: float, dec: float, measured_edges, true_edges=None, *,
               evtype=3, caldb=None, npts: int = 2, cth_weighting: str = "st",
               rtol: float = 1e-6, atol: float = 1e-10, max_depth: int = 30) -> np.ndarray:
    """Detector response matrix, shape (n_meas, n_true).

    ``irfs``: an IRFSet (or an object with ``aeff``, ``edisp`` and ``event_types``) or an
    IRF name loaded with ``evtype`` and ``caldb``.  ``livetime``: a
    :class:`~fermixr.irf.mean.LivetimeProfile`, a livetime-cube Dataset or its path (the
    pixel holding (``ra``, ``dec``), deg ICRS, is used).  ``true_edges`` default to the
    measured edges (see :func:`true_energy_axis`).  Element [i, j] is the probability
    that a photon of true energy sqrt(E_j E_j+1) is reconstructed in measured bin i
    (module docstring).  ``npts`` is the number of equal log sub-intervals per measured
    bin the adaptive quadrature starts from; ``rtol``/``atol`` its tolerances.
    """
    meas = _edges(measured_edges)
    true = meas if true_edges is None else _edges(true_edges, "true_edges")
    npts = int(npts)
    if npts < 1:
        raise GeometryError(f"npts must be >= 1, got {npts}")
    irf = _irfset(irfs, evtype, caldb)
    mu, wc = cth_weights(livetime, ra, dec, cth_weighting=cth_weighting)
    keep = wc > 0
    mu, wc = mu[keep], wc[keep]
    n_meas, n_true = meas.size - 1, true.size - 1
    out = np.zeros((n_meas, n_true))
    if mu.size == 0:
        return out
    etrue = np.sqrt(true[:-1] * true[1:])
    types = list(irf.event_types)
    # weights (n_true, n_types, n_cth), normalised per true energy
    w = np.stack([irf.aeff(etrue[:, None], mu[None, :], event_type=t) * wc[None, :]
                  for t in types], axis=1)
    den = w.sum(axis=(1, 2))
    good = den > 0
    w = np.where(good[:, None, None], w / np.where(good, den, 1.0)[:, None, None], 0.0)

    # initial intervals in u = ln E', npts per measured bin, for every (i, j) with weight
    lm = np.log(meas)
    frac = np.linspace(0.0, 1.0, npts + 1)
    ua = (lm[:-1, None] + np.diff(lm)[:, None] * frac[None, :-1])      # (n_meas, npts)
    ub = (lm[:-1, None] + np.diff(lm)[:, None] * frac[None, 1:])
    jj = np.nonzero(good)[0]
    ii = np.arange(n_meas)
    I, J = np.meshgrid(ii, jj, indexing="ij")                           # (n_meas, ngood)
    owner_ij = (I * n_true + J).ravel()
    a = ua[I.ravel()].ravel()
    b = ub[I.ravel()].ravel()
    owner = np.repeat(owner_ij, npts)

    def integrand(u, own):
        j = own % n_true
        er = np.exp(u)                                                  # (m, 15)
        tot = np.zeros_like(u)
        for k, t in enumerate(types):
            d = irf.edisp(er[:, :, None], etrue[j][:, None, None], mu[None, None, :],
                          event_type=t)                                  # (m, 15, nc)
            tot += np.einsum("mqc,mc->mq", d, w[j, k, :])
        return tot * er

    vals = _gk_integrate(integrand, a, b, owner, n_meas * n_true,
                         rtol=rtol, atol=atol, max_depth=max_depth)
    return vals.reshape(n_meas, n_true)


def drm_dataset(irfs, livetime, ra: float, dec: float, measured_edges, edisp_bins: int = 1,
                *, evtype=3, caldb=None, **kwargs) -> xr.Dataset:
    """The DRM as a Dataset: variable ``drm`` with dims (``energy``, ``energy_true``),
    coords the geometric centres and ``*_min``/``*_max`` edges (MeV) of both axes,
    attrs ra, dec, irfs, evtype, edisp_bins, cth_weighting.  Keyword arguments go to
    :func:`drm_matrix`."""
    from ..geom.axes import EnergyAxis

    meas = _edges(measured_edges)
    true = true_energy_axis(meas, edisp_bins)
    irf = _irfset(irfs, evtype, caldb)
    m = drm_matrix(irf, livetime, ra, dec, meas, true, **kwargs)
    coords = {}
    coords.update(EnergyAxis(meas, name=DIM_ENERGY).to_coords())
    coords.update(EnergyAxis(true, name=DIM_ENERGY_TRUE).to_coords())
    return xr.Dataset(
        {"drm": ((DIM_ENERGY, DIM_ENERGY_TRUE), m,
                 {"units": "", "long_name": "probability of measured bin given true energy"})},
        coords=coords,
        attrs={"ra": float(ra), "dec": float(dec), "irfs": str(getattr(irf, "irfs", irfs)),
               "evtype": int(getattr(irf, "evtype", evtype)), "edisp_bins": int(edisp_bins),
               "cth_weighting": kwargs.get("cth_weighting", "st")},
    )


# ------------------------------------------------------------------------------------
# applying it
# ------------------------------------------------------------------------------------
def apply_drm(true_counts, drm):
    """Measured counts (n_meas, ...) = DRM (n_meas, n_true) @ true counts (n_true, ...).
    With DataArrays (dim ``energy_true`` in both) the result is labelled."""
    if isinstance(drm, xr.Dataset):
        drm = drm["drm"]
    if isinstance(true_counts, xr.DataArray) and isinstance(drm, xr.DataArray):
        if true_counts.sizes.get(DIM_ENERGY_TRUE) != drm.sizes.get(DIM_ENERGY_TRUE):
            raise GeometryError(
                f"apply_drm: true counts have {true_counts.sizes.get(DIM_ENERGY_TRUE)} "
                f"'{DIM_ENERGY_TRUE}' bins, the DRM {drm.sizes.get(DIM_ENERGY_TRUE)}"
            )
        t = true_counts.drop_vars([c for c in true_counts.coords
                                   if DIM_ENERGY_TRUE in true_counts[c].dims])
        d = drm.drop_vars([c for c in drm.coords if DIM_ENERGY_TRUE in drm[c].dims])
        return xr.dot(d, t, dim=DIM_ENERGY_TRUE)
    m = np.asarray(drm, dtype=np.float64)
    t = np.asarray(true_counts, dtype=np.float64)
    if m.ndim != 2 or t.ndim < 1 or t.shape[0] != m.shape[1]:
        raise GeometryError(
            f"apply_drm: DRM of shape {m.shape} (n_meas, n_true) needs true counts with "
            f"{m.shape[1] if m.ndim == 2 else '?'} rows, got shape {t.shape}"
        )
    return np.tensordot(m, t, axes=(1, 0))


def identity_drm(n_meas: int, edisp_bins: int = 0) -> np.ndarray:
    """The no-dispersion matrix (n_meas, n_meas + 2 |edisp_bins|): measured bin i takes
    the counts of true bin i + |edisp_bins| (the same energy range)."""
    n = abs(int(edisp_bins))
    m = np.zeros((int(n_meas), int(n_meas) + 2 * n))
    m[np.arange(n_meas), np.arange(n_meas) + n] = 1.0
    return m


def source_drm(name: str, drm, *, edisp: bool = True, edisp_disable=()) -> np.ndarray:
    """The matrix a source uses: ``drm`` with energy dispersion on, else (``edisp``
    False, or ``name`` listed in ``edisp_disable``) the identity restricted to the
    measured bins, of the same shape."""
    m = np.asarray(drm["drm"] if isinstance(drm, xr.Dataset) else drm, dtype=np.float64)
    if m.ndim != 2:
        raise GeometryError(f"source_drm: expected a (n_meas, n_true) matrix, got shape {m.shape}")
    if isinstance(edisp_disable, str):
        edisp_disable = [edisp_disable]
    if edisp and name not in set(edisp_disable or ()):
        return m
    return identity_drm(m.shape[0], _n_extra(*m.shape))


# ------------------------------------------------------------------------------------
# the older approximation (edisp_bins < 0): extrapolated true spectrum, xi scaling
# ------------------------------------------------------------------------------------
def extrapolate_true_counts(true_counts, measured_edges, nbins: int = 1, *,
                            min_counts: float = 1e-2) -> np.ndarray:
    """True counts (n_meas, ...) extended by ``nbins`` extrapolated bins at each end
    (``Drm::extrapolate_lo``/``_hi``): in log counts versus log energy from the two end
    bins when both exceed ``min_counts`` (1e-2 in current Science Tools, 1e-10 in the
    Fermipy 0.16 era), else linearly in energy.  The ratios come from the first / last
    three measured edges."""
    e = _edges(measured_edges)
    c = np.asarray(true_counts, dtype=np.float64)
    if c.shape[0] != e.size - 1 or c.shape[0] < 2:
        raise GeometryError(
            f"extrapolate_true_counts: {c.shape[0]} true-count rows for {e.size - 1} "
            f"measured bins (need equal, >= 2)"
        )
    n = e.size - 1
    r_lo = math.log(e[0] / e[2]) / math.log(e[1] / e[2])
    d_lo = (e[0] - e[2]) / (e[1] - e[2])
    r_hi = math.log(e[n] / e[n - 2]) / math.log(e[n - 1] / e[n - 2])
    d_hi = (e[n] - e[n - 2]) / (e[n - 1] - e[n - 2])

    def ext(c_end, c_next, r, d):
        both = (c_end > min_counts) & (c_next > min_counts)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            logv = c_next * np.exp(r * np.log(np.where(both, c_end / c_next, 1.0)))
        return np.where(both, logv, d * (c_end - c_next) + c_next)

    rows = list(c)
    for _ in range(int(nbins)):
        rows.insert(0, ext(rows[0], rows[1], r_lo, d_lo))
        rows.append(ext(rows[-1], rows[-2], r_hi, d_hi))
    return np.stack(rows, axis=0)


def convolve_true_spectrum(true_counts, drm, measured_edges, *, min_counts: float = 1e-2
                           ) -> np.ndarray:
    """``Drm::convolve``: measured counts (n_meas, ...) from true counts on the measured
    bins only, the extra true bins of ``drm`` filled by :func:`extrapolate_true_counts`."""
    m = np.asarray(drm["drm"] if isinstance(drm, xr.Dataset) else drm, dtype=np.float64)
    nb = _n_extra(*m.shape)
    ext = extrapolate_true_counts(true_counts, measured_edges, nb, min_counts=min_counts)
    return apply_drm(ext, m)


def edisp_scale_factors(true_counts, drm, measured_edges, *, min_counts: float = 1e-2):
    """(xi, kref) of the older approximation (``Drm_Cache::update`` with edisp_bins < 0):
    xi_k = measured_k / true_k for the spatially summed spectrum ``true_counts``
    (n_meas,), measured counts below 0 set to 0; where true_k = 0, xi_k = measured_k /
    true_kref with kref the last lower bin with counts (``kref[k]``, else -1 and xi = 1).
    The model of pixel p in bin k is then xi_k x true counts of (kref[k] if >= 0 else k)."""
    t = np.asarray(true_counts, dtype=np.float64)
    if t.ndim != 1:
        raise GeometryError(f"edisp_scale_factors needs a 1-D true spectrum, got shape {t.shape}")
    meas = np.maximum(convolve_true_spectrum(t, drm, measured_edges, min_counts=min_counts), 0.0)
    xi = np.ones_like(t)
    kref = np.full(t.size, -1, dtype=np.int64)
    last = -1
    for k in range(t.size):
        if t[k] > 0:
            xi[k] = meas[k] / t[k]
            last = k
        elif last >= 0:
            xi[k] = meas[k] / t[last]
            kref[k] = last
    return xi, kref
