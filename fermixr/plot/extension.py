"""View of an extension test: the likelihood profile in width (2 (lnL - lnL_ptsrc) against
the 68% containment radius, log scale), every width evaluated marked, with the best fit and
its 1-sigma interval and the 95% upper limit."""

from __future__ import annotations

import json

import numpy as np

from .roi import _figure


def extension_figure(ds, title: str | None = None):
    """One panel: 2 dlnL against width (the scan grid as points, every evaluated width as
    the line), ext with ext_err_lo/hi shaded, ext_ul95 dashed, TS_ext = 2.71 dotted."""
    fig = _figure((6.4, 4.6))
    ax = fig.subplots()
    a = ds.attrs
    ll_pt = float(a["loglike_ptsrc"])
    wp = np.asarray(ds["profile_width"].values, dtype=float)
    lp = np.asarray(ds["profile_loglike"].values, dtype=float)
    ax.plot(wp, 2.0 * (lp - ll_pt), "-", color="C0", lw=1.2, label="profile")
    ax.plot(ds["width"].values, 2.0 * np.asarray(ds["dloglike"].values), "o", ms=4,
            color="C0", label="scan")
    ext = float(a["ext"])
    ax.axvline(ext, color="C1", lw=1.2, label=f"ext = {ext:.3g} deg")
    lo, hi = float(a["ext_err_lo"]), float(a["ext_err_hi"])
    if np.isfinite(lo) and np.isfinite(hi):
        ax.axvspan(ext - lo, ext + hi, color="C1", alpha=0.2, label="1 sigma")
    ul = float(a["ext_ul95"])
    if np.isfinite(ul):
        ax.axvline(ul, color="C3", ls="--", lw=1.2, label=f"95% UL = {ul:.3g} deg")
    ax.axhline(2.71, color="k", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("68% containment radius [deg]")
    ax.set_ylabel("2 (lnL - lnL_ptsrc)")
    flags = json.loads(a.get("flags", "{}") or "{}")
    note = f"TS_ext = {float(a['ts_ext']):.2f}" + ("  (flags: " + ", ".join(flags) + ")"
                                                   if flags else "")
    ax.set_title((title or f"{a['name']}: {a['spatial_model']}") + "\n" + note, fontsize=9)
    ax.legend(loc="best", fontsize=8)
    return fig
