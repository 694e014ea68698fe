"""The weighted-photon light curve: relative or absolute flux per cell (points with their
profile errors where TS >= 4, 95% upper limits otherwise) and, when computed, the Bayesian
blocks as a step line."""

from __future__ import annotations

import numpy as np

from .roi import _figure


def wtlike_figure(ds, ts_threshold: float = 4.0):
    """Figure of a ``wtlike`` Dataset (flux in ph cm-2 s-1 versus MJD)."""
    mref = float(ds.attrs.get("MJDREF", 51910.0 + 7.428703703703703e-4))
    t0 = ds["tmin"].values / 86400.0 + mref
    t1 = ds["tmax"].values / 86400.0 + mref
    tc, half = 0.5 * (t0 + t1), 0.5 * (t1 - t0)
    f = ds["flux"].values
    lo, hi = ds["flux_err_lo"].values, ds["flux_err_hi"].values
    ul, ts = ds["flux_ul95"].values, ds["ts"].values
    ok = np.isfinite(f)
    det = ok & (ts >= ts_threshold)
    lim = ok & ~det & np.isfinite(ul)
    fig = _figure((9.0, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    small = len(f) > 400
    if det.any():
        ax.errorbar(tc[det], f[det], xerr=None if small else half[det],
                    yerr=[lo[det], hi[det]], fmt="." if small else "o", color="k",
                    ms=2 if small else 4, lw=0.5, label=f"cells (TS >= {ts_threshold:g})")
    if lim.any():
        ax.errorbar(tc[lim], ul[lim], yerr=0.2 * ul[lim], uplims=True, fmt="none",
                    color="tab:blue", lw=0.5, label="95% upper limit")
    if "block_flux" in ds:
        b0 = ds["block_tmin"].values / 86400.0 + mref
        b1 = ds["block_tmax"].values / 86400.0 + mref
        bf = ds["block_flux"].values
        x = np.column_stack([b0, b1]).ravel()
        y = np.column_stack([bf, bf]).ravel()
        ax.plot(x, y, color="tab:red", lw=1.5, label=f"Bayesian blocks ({bf.size})")
    ax.axhline(float(ds.attrs["flux_ref"]), color="0.4", ls="--", lw=1,
               label="fitted flux")
    ax.set_xlabel("time [MJD]")
    ax.set_ylabel("flux [ph cm$^{-2}$ s$^{-1}$]")
    ax.set_ylim(bottom=0)
    ax.set_title(f"weighted-photon light curve of {ds.attrs.get('name', '')}")
    ax.legend(loc="best", fontsize="small")
    return fig
