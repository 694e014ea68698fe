"""The light curve: flux per time bin with its error, 95% upper limits as arrows where the
bin's TS is below 4, failed bins marked on the time axis, and the constant-flux line."""

from __future__ import annotations

import numpy as np

from .roi import _figure

MJDREF = 51910.0 + 7.428703703703703e-4     # Fermi MET 0 in MJD (TT)


def lightcurve_figure(tmin, tmax, flux, flux_err, flux_ul95, ts, fit_success, *,
                      flux_const=None, name="", ts_threshold: float = 4.0):
    """Flux (ph cm-2 s-1) versus time (MJD) of one source: points with errors where the
    fit succeeded and TS >= ``ts_threshold``, the 95% upper limit as a downward arrow
    below it, failed bins as grey ticks at the bottom, and ``flux_const`` as a line."""
    t0 = np.asarray(tmin, float) / 86400.0 + MJDREF
    t1 = np.asarray(tmax, float) / 86400.0 + MJDREF
    tc, half = 0.5 * (t0 + t1), 0.5 * (t1 - t0)
    f, fe = np.asarray(flux, float), np.asarray(flux_err, float)
    ul, ts = np.asarray(flux_ul95, float), np.asarray(ts, float)
    ok = np.asarray(fit_success, bool)
    det = ok & (ts >= ts_threshold)
    lim = ok & ~det & np.isfinite(ul)
    fig = _figure((8.0, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    if det.any():
        ax.errorbar(tc[det], f[det], xerr=half[det], yerr=fe[det], fmt="o", color="k",
                    ms=4, label=f"flux (TS >= {ts_threshold:g})")
    if lim.any():
        ax.errorbar(tc[lim], ul[lim], xerr=half[lim], yerr=0.25 * ul[lim], uplims=True,
                    fmt="none", color="tab:blue", label="95% upper limit")
    if flux_const is not None and np.isfinite(flux_const):
        ax.axhline(float(flux_const), color="tab:red", ls="--",
                   label=f"constant flux {float(flux_const):.3g}")
    bad = ~ok
    if bad.any():
        ax.plot(tc[bad], np.zeros(int(bad.sum())), "|", color="0.5", ms=12,
                label="no fit (see status)")
    ax.set_xlabel("time [MJD]")
    ax.set_ylabel("flux [ph cm$^{-2}$ s$^{-1}$]")
    ax.set_ylim(bottom=0)
    ax.set_title(f"light curve of {name}" if name else "light curve")
    ax.legend(loc="best", fontsize="small")
    return fig
