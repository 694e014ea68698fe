"""View of a SED: E^2 dN/dE per bin with its errors (TS >= 4) or an arrow from its 95%
upper limit (TS < 4), over the global model's bowtie, and behind them the likelihood
profile of each bin as a colour band (-dlogL against E^2 dN/dE, from the bin's scan)."""

from __future__ import annotations

import numpy as np

from .roi import _figure

TS_POINT = 4.0        # below this a bin is drawn as an upper limit


def _profile_band(ax, ds, y_edges, dll_max=5.0):
    """Per bin, -dlogL of the held scan at each E^2 dN/dE of ``y_edges`` (interpolated
    in the norm), drawn from e_min to e_max."""
    mesh = None
    for j in range(ds.sizes["energy"]):
        x = np.asarray(ds["norm_scan"].values[j], dtype=float)
        d = np.asarray(ds["dloglike_scan"].values[j], dtype=float)
        ref = float(ds["ref_e2dnde"].values[j])
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(d)) and ref > 0):
            continue
        order = np.argsort(x)
        yc = np.sqrt(y_edges[1:] * y_edges[:-1]) / ref
        z = -np.interp(yc, x[order], d[order] - d.max(), right=-dll_max)
        z = np.clip(z, 0.0, dll_max)[:, None]
        xe = [float(ds["e_min"].values[j]), float(ds["e_max"].values[j])]
        mesh = ax.pcolormesh(xe, y_edges, z, cmap="Blues_r", vmin=0.0, vmax=dll_max,
                             shading="flat", alpha=0.8, rasterized=True)
    return mesh


def sed_figure(ds, title: str | None = None):
    """One panel, log-log: the profile band, the bowtie, points and upper limits."""
    fig = _figure((7.5, 5.0))
    ax = fig.subplots()
    e_ref = np.asarray(ds["e_ref"].values, dtype=float)
    e_lo = e_ref - np.asarray(ds["e_min"].values, dtype=float)
    e_hi = np.asarray(ds["e_max"].values, dtype=float) - e_ref
    y = np.asarray(ds["e2dnde"].values, dtype=float)
    ylo = np.asarray(ds["e2dnde_err_lo"].values, dtype=float)
    yhi = np.asarray(ds["e2dnde_err_hi"].values, dtype=float)
    yul = np.asarray(ds["e2dnde_ul95"].values, dtype=float)
    ts = np.asarray(ds["ts"].values, dtype=float)
    me = np.asarray(ds["model_energy"].values, dtype=float)
    m = np.asarray(ds["model_flux_dnde"].values, dtype=float) * me ** 2
    mlo = np.asarray(ds["model_flux_dnde_lo"].values, dtype=float) * me ** 2
    mhi = np.asarray(ds["model_flux_dnde_hi"].values, dtype=float) * me ** 2
    vals = np.concatenate([y[np.isfinite(y) & (y > 0)], yul[np.isfinite(yul) & (yul > 0)],
                           m[np.isfinite(m) & (m > 0)]])
    if vals.size:
        lo, hi = vals.min() / 10.0, vals.max() * 5.0
        y_edges = np.geomspace(lo, hi, 120)
        mesh = _profile_band(ax, ds, y_edges)
        if mesh is not None:
            fig.colorbar(mesh, ax=ax, label="-ΔlogL (scan of each bin)")
        ax.set_ylim(lo, hi)
    ax.fill_between(me, np.maximum(mlo, 1e-300), mhi, color="tab:orange", alpha=0.35,
                    label="global fit (1σ)")
    ax.plot(me, m, color="tab:orange")
    det = (ts >= TS_POINT) & np.isfinite(y)
    ax.errorbar(e_ref[det], y[det], xerr=[e_lo[det], e_hi[det]],
                yerr=[np.minimum(ylo[det], y[det] * (1 - 1e-9)), yhi[det]], fmt="o",
                color="k", ms=4, label=f"TS ≥ {TS_POINT:g}")
    ul = ~det & np.isfinite(yul) & (yul > 0)
    if ul.any():
        ax.errorbar(e_ref[ul], yul[ul], xerr=[e_lo[ul], e_hi[ul]], yerr=0.4 * yul[ul],
                    uplims=True, fmt="none", color="k", label="95% upper limit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Energy [MeV]")
    ax.set_ylabel("E² dN/dE [MeV cm⁻² s⁻¹]")
    ax.set_title(title or f"SED of {ds.attrs.get('name', '')}")
    ax.legend(loc="best", fontsize="small")
    return fig
