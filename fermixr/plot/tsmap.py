"""Views of a TS map: sqrt(TS) on the sky with contours at sqrt(TS) = 3, 5, 7 ..., and the
distribution of TS over pixels against the null distribution 1/2 chi2_0 + 1/2 chi2_1
(survival function: P(TS > t) = 1/2 P(chi2_1 > t) for t > 0)."""

from __future__ import annotations

import numpy as np

from .roi import _figure


def null_survival(t) -> np.ndarray:
    """P(TS > t) of 1/2 chi2_0 + 1/2 chi2_1 (t >= 0): 1/2 erfc(sqrt(t / 2))."""
    from scipy.special import erfc

    t = np.asarray(t, dtype=float)
    return 0.5 * erfc(np.sqrt(np.maximum(t, 0.0) / 2.0))


def tsmap_figure(ds, title: str | None = None):
    """Two panels: the sqrt(TS) map (WCS pixels as they are; HEALPix pixels as points at
    their centres) and the TS survival histogram against the null distribution."""
    fig = _figure((11.0, 4.8))
    ax1, ax2 = fig.subplots(1, 2)
    sq = np.asarray(ds["sqrt_ts"].values, dtype=float)
    lon = np.asarray(ds["lon"].values, dtype=float)
    lat = np.asarray(ds["lat"].values, dtype=float)
    if sq.ndim == 2:
        im = ax1.imshow(sq, origin="lower", cmap="magma", interpolation="nearest")
        levels = [v for v in (3.0, 5.0, 7.0, 10.0, 15.0, 20.0) if v < np.nanmax(sq)]
        if levels:
            ax1.contour(sq, levels=levels, colors="w", linewidths=0.8)
        ax1.set_xlabel("x pixel")
        ax1.set_ylabel("y pixel")
    else:
        im = ax1.scatter(lon, lat, c=sq, s=12, cmap="magma", marker="s")
        ax1.invert_xaxis()
        ax1.set_xlabel("lon [deg]")
        ax1.set_ylabel("lat [deg]")
    fig.colorbar(im, ax=ax1, label="sqrt(TS)")
    ax1.set_title(title or str(ds.attrs.get("name", "TS map")))
    ts = np.sort(np.asarray(ds["ts"].values, dtype=float).ravel())
    ts = ts[np.isfinite(ts)]
    if ts.size:
        grid = np.linspace(0.0, max(float(ts[-1]), 10.0), 200)
        emp = 1.0 - np.searchsorted(ts, grid, side="right") / ts.size
        ax2.step(grid, np.maximum(emp, 0.5 / ts.size), where="post", label="pixels")
    grid = np.linspace(0.0, 30.0, 200)
    ax2.plot(grid, null_survival(grid), "k--", label="1/2 chi2_0 + 1/2 chi2_1")
    ax2.set_yscale("log")
    ax2.set_xlabel("TS")
    ax2.set_ylabel("P(TS > x)")
    ax2.legend(loc="upper right")
    return fig
