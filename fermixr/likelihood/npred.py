"""Predicted counts from source maps, as the Science Tools' binned likelihood forms them.

A source map S_k (cm2 s per pixel) is given at the true-energy nodes E_k (the counts bin
edges).  gtlike integrates S(E) dN/dE(E) over each bin with the trapezoid rule in log E on
E S(E) dN/dE(E) (``Source::pixelCounts``, "quadrature in log-log space"):

    counts_i = ln(E_{i+1}/E_i) / 2 * (E_i dN/dE(E_i) S_i + E_{i+1} dN/dE(E_{i+1}) S_{i+1})

so the counts are linear in the map values, with per-node weights
w_k = E_k dN/dE(E_k) ln(E_{k+1}/E_k)/2 (to bin k) and ... ln(E_k/E_{k-1})/2 (to bin k-1).
The same form gives every derivative with respect to a spectral parameter, with dN/dE
replaced by its derivative.
"""

from __future__ import annotations

import numpy as np

from ..errors import GeometryError


def node_weights(energies, dnde) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) weights, each (n_bins,): counts_i = lower_i S_i + upper_i S_{i+1}."""
    e = np.asarray(energies, dtype=np.float64)
    f = np.asarray(dnde, dtype=np.float64)
    half_dlog = 0.5 * np.log(e[1:] / e[:-1])
    return half_dlog * e[:-1] * f[..., :-1], half_dlog * e[1:] * f[..., 1:]


def second_node_weights(model, energies, p, ks, x, scales, factor):
    """Second derivatives of one source's node weights with respect to its free
    parameters ``ks`` (indices into the physical parameter vector ``p``; ``x`` their
    scaled values, ``scales`` their scales, ``factor`` an overall exposure scale): two
    (n_k, n_k, n_bins) arrays (lower, upper), in scaled units, by central differences of
    the analytic spectral gradient (exactly zero for norm-norm pairs), symmetrised."""
    ks = np.asarray(ks)
    nb = len(energies) - 1
    d2lo = np.zeros((ks.size, ks.size, nb))
    d2hi = np.zeros_like(d2lo)
    for b, kb in enumerate(ks):
        h = 1e-5 * max(1.0, abs(x[b])) * abs(scales[b])
        pp, pm = p.copy(), p.copy()
        pp[kb] += h
        pm[kb] -= h
        dG = (np.asarray(model.gradient(energies, pp))[ks]
              - np.asarray(model.gradient(energies, pm))[ks]) / (2.0 * h)
        gl, gh = node_weights(energies, dG)
        fac = (factor * np.asarray(scales) * scales[b])[:, None]
        d2lo[:, b] = gl * fac
        d2hi[:, b] = gh * fac
    # differences are not exactly symmetric
    return 0.5 * (d2lo + np.swapaxes(d2lo, 0, 1)), 0.5 * (d2hi + np.swapaxes(d2hi, 0, 1))


def model_counts(srcmap, energies, dnde) -> np.ndarray:
    """Counts per bin and pixel (n_bins, ...) of one source: ``srcmap`` (n_nodes, ...) at
    ``energies`` (n_nodes,) and its spectrum ``dnde`` at the same nodes."""
    s = np.asarray(srcmap, dtype=np.float64)
    lo, hi = node_weights(energies, dnde)
    shape = (-1,) + (1,) * (s.ndim - 1)
    return lo.reshape(shape) * s[:-1] + hi.reshape(shape) * s[1:]


def measured_model_counts(srcmap, true_edges, dnde, drm=None, n_extra: int = 0):
    """Counts per MEASURED bin (n_meas, ...) of one source.

    ``srcmap`` (n_true + 1, ...) is the source map at the true-energy nodes ``true_edges``
    (the measured edges extended by ``n_extra`` bins on each side when energy dispersion is
    on), ``dnde`` the spectrum at those nodes.  With a response matrix ``drm``
    (n_meas, n_true) the true-bin counts are dispersed into the measured bins; without one
    (``gtlike.edisp`` off, or the source listed in ``edisp_disable``) the measured bins take
    the true-bin counts of the same energies."""
    true_counts = model_counts(srcmap, true_edges, dnde)
    if drm is None:
        n_true = true_counts.shape[0]
        return true_counts[n_extra:n_true - n_extra]
    m = np.asarray(drm, dtype=np.float64)
    if m.shape[1] != true_counts.shape[0]:
        raise GeometryError(f"response matrix has {m.shape[1]} true-energy bins, the source "
                            f"map {true_counts.shape[0]}")
    return np.tensordot(m, true_counts, axes=(1, 0))


def model_cube(srcmaps, true_edges, dnde_by_source, *, names=(), drm=None, edisp=True,
               edisp_disable=(), n_extra: int = 0) -> np.ndarray:
    """The model counts cube (n_meas, ...) of several sources: ``srcmaps``
    (n_src, n_true + 1, ...), ``dnde_by_source`` (n_src, n_true + 1).  Energy dispersion
    is applied with ``drm`` to every source except those named in ``edisp_disable``."""
    from ..irf.drm import source_drm

    out = None
    for i, s in enumerate(np.asarray(srcmaps)):
        name = names[i] if i < len(names) else str(i)
        m = None
        if drm is not None and edisp and name not in set(edisp_disable or ()):
            m = source_drm(name, drm, edisp=True)
        c = measured_model_counts(s, true_edges, dnde_by_source[i], m, n_extra)
        out = c if out is None else out + c
    return out
