"""View of a residual significance map (the ``residmap`` product): the sigma map truncated
at +-5 and the histogram of sigma against the standard normal it follows on a null map."""

from __future__ import annotations

import math

import numpy as np

from .roi import _figure, sky_image

__all__ = ["residmap_figure"]


def residmap_figure(geom, sigma, *, center_radec=None, title=None, vmax: float = 5.0):
    """Figure with the ``sigma`` map (one value per pixel of ``geom``) in a diverging
    colour scale clipped at +-``vmax`` and its histogram with the N(0, 1) density."""
    from matplotlib.colors import Normalize

    sigma = np.asarray(sigma, dtype=float).ravel()
    fig = _figure((11.0, 4.8))
    ax_map, ax_hist = fig.subplots(1, 2, width_ratios=[1.15, 1.0])
    img, _grid = sky_image(geom, sigma, center_radec=center_radec)
    im = ax_map.imshow(np.clip(img, -vmax, vmax), origin="lower", cmap="RdBu_r",
                       norm=Normalize(-vmax, vmax), interpolation="nearest")
    fig.colorbar(im, ax=ax_map, shrink=0.85, label="significance [sigma]")
    ax_map.set_xlabel("x [pixel]")
    ax_map.set_ylabel("y [pixel]")
    ax_map.set_title("residual significance" if title is None else title)

    ok = sigma[np.isfinite(sigma)]
    lim = max(vmax, float(np.ceil(np.abs(ok).max())) if ok.size else vmax)
    bins = np.linspace(-lim, lim, int(4 * lim) + 1)
    ax_hist.hist(ok, bins=bins, density=True, histtype="stepfilled", alpha=0.5,
                 color="C0", label="map pixels")
    x = np.linspace(-lim, lim, 401)
    ax_hist.plot(x, np.exp(-0.5 * x ** 2) / math.sqrt(2.0 * math.pi), color="k",
                 label="N(0, 1)")
    if ok.size:
        mean, std = float(ok.mean()), float(ok.std())
        ax_hist.plot(x, np.exp(-0.5 * ((x - mean) / std) ** 2)
                     / (std * math.sqrt(2.0 * math.pi)), color="C3", ls="--",
                     label=f"mean {mean:.2f}, std {std:.2f}")
    ax_hist.set_yscale("log")
    ax_hist.set_ylim(1e-4, 1.0)
    ax_hist.set_xlabel("significance [sigma]")
    ax_hist.set_ylabel("probability density")
    ax_hist.legend(loc="upper right", fontsize="small")
    return fig
