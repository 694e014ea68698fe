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


def node_weights(energies, dnde) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) weights, each (n_bins,): counts_i = lower_i S_i + upper_i S_{i+1}."""
    e = np.asarray(energies, dtype=np.float64)
    f = np.asarray(dnde, dtype=np.float64)
    half_dlog = 0.5 * np.log(e[1:] / e[:-1])
    return half_dlog * e[:-1] * f[..., :-1], half_dlog * e[1:] * f[..., 1:]


def model_counts(srcmap, energies, dnde) -> np.ndarray:
    """Counts per bin and pixel (n_bins, ...) of one source: ``srcmap`` (n_nodes, ...) at
    ``energies`` (n_nodes,) and its spectrum ``dnde`` at the same nodes."""
    s = np.asarray(srcmap, dtype=np.float64)
    lo, hi = node_weights(energies, dnde)
    shape = (-1,) + (1,) * (s.ndim - 1)
    return lo.reshape(shape) * s[:-1] + hi.reshape(shape) * s[1:]
