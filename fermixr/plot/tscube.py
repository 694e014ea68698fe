"""Views of a TS cube: the broadband sqrt(TS) map with contours at sqrt(TS) = 3, 5, 7 ...,
and, where the cube has per-bin fits, the spectrum of the pixel of highest TS (norm times
the reference dN/dE x E^2 with 1-sigma errors, 95% upper limits where TS < 4)."""

from __future__ import annotations

import numpy as np

from .roi import _figure


def tscube_figure(ds, title: str | None = None):
    """One panel (the sqrt(TS) map), or two with the brightest pixel's spectrum."""
    has_sed = "norm" in ds
    fig = _figure((11.0, 4.8) if has_sed else (6.0, 4.8))
    axes = fig.subplots(1, 2 if has_sed else 1)
    ax1 = axes[0] if has_sed else axes
    sq = np.asarray(ds["sqrt_ts"].values, dtype=float)
    if sq.ndim == 2:
        im = ax1.imshow(sq, origin="lower", cmap="magma", interpolation="nearest")
        levels = [v for v in (3.0, 5.0, 7.0, 10.0, 15.0, 20.0) if v < np.nanmax(sq)]
        if levels:
            ax1.contour(sq, levels=levels, colors="w", linewidths=0.8)
        ax1.set_xlabel("x pixel")
        ax1.set_ylabel("y pixel")
    else:
        im = ax1.scatter(np.asarray(ds["lon"].values), np.asarray(ds["lat"].values), c=sq,
                         s=12, cmap="magma", marker="s")
        ax1.invert_xaxis()
        ax1.set_xlabel("lon [deg]")
        ax1.set_ylabel("lat [deg]")
    fig.colorbar(im, ax=ax1, label="sqrt(TS)")
    ax1.set_title(title or str(ds.attrs.get("name", "TS cube")))
    if has_sed:
        ax2 = axes[1]
        flat = np.nan_to_num(np.asarray(ds["ts"].values, dtype=float).ravel(), nan=-1.0)
        j = int(np.argmax(flat))
        nb = ds.sizes["energy"]
        norm = np.asarray(ds["norm"].values).reshape(-1, nb)[j]
        err = np.asarray(ds["norm_err"].values).reshape(-1, nb)[j]
        ul = np.asarray(ds["norm_ul"].values).reshape(-1, nb)[j]
        ts = np.asarray(ds["bin_ts"].values).reshape(-1, nb)[j]
        e = np.asarray(ds["e_ref"].values)
        e2 = np.asarray(ds["ref_dnde"].values) * e ** 2
        det = ts >= 4.0
        xerr = [e - np.asarray(ds["energy_min"].values), np.asarray(ds["energy_max"].values) - e]
        ax2.errorbar(e[det], (norm * e2)[det], yerr=(np.nan_to_num(err) * e2)[det],
                     xerr=[x[det] for x in xerr], fmt="o", color="k", label="TS >= 4")
        ax2.errorbar(e[~det], (ul * e2)[~det], yerr=0.3 * (ul * e2)[~det], uplims=True,
                     xerr=[x[~det] for x in xerr], fmt="none", color="0.4",
                     label="95% upper limit")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("E [MeV]")
        ax2.set_ylabel("E^2 dN/dE [MeV cm-2 s-1]")
        ax2.set_title(f"pixel of highest TS ({float(flat[j]):.1f})")
        ax2.legend(loc="best")
    return fig
