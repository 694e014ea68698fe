"""Views of a localization (the first pass's TS map and the scan's log L, with the fitted
position and its r68 / r95 ellipses, east to the left) and of a source search (sqrt TS
with the peaks marked and the new sources named)."""

from __future__ import annotations

import math

import numpy as np

from .roi import _figure


def _ellipse_xy(a, b, pa_deg, n=181):
    """(east, north) offsets of an ellipse with semi-axes a, b and its major axis at
    ``pa_deg`` east of north."""
    t = np.linspace(0.0, 2 * math.pi, n)
    p = math.radians(pa_deg)
    u = np.array([math.sin(p), math.cos(p)])           # major axis (east, north)
    v = np.array([math.cos(p), -math.sin(p)])
    pts = a * np.cos(t)[:, None] * u + b * np.sin(t)[:, None] * v
    return pts[:, 0], pts[:, 1]


def localize_figure(ds, title: str | None = None):
    """Two panels in tangent-plane offsets [deg] (east to the left): the TS map of the
    first pass around the old position, and 2 delta log L of the scan around the fitted
    one, each with the r68 and r95 ellipses of the result."""
    from ..geom.tangent import tangent_offsets

    a = ds.attrs
    fig = _figure((11.0, 4.8))
    ax1, ax2 = fig.subplots(1, 2)
    xi = np.asarray(ds["tsmap_xi"].values, float)
    eta = np.asarray(ds["tsmap_eta"].values, float)
    ts = np.asarray(ds["tsmap"].values, float)
    st = (xi[1] - xi[0]) / 2 if xi.size > 1 else 0.5
    im = ax1.imshow(ts, origin="lower", cmap="magma",
                    extent=[xi[0] - st, xi[-1] + st, eta[0] - st, eta[-1] + st])
    fig.colorbar(im, ax=ax1, label="TS")
    fx, fy = tangent_offsets(a["ra_preloc"], a["dec_preloc"], a["ra"], a["dec"])
    sigma = {"68": math.sqrt(2.30), "95": math.sqrt(5.99)}
    for ax, (cx, cy) in ((ax1, (float(fx), float(fy))), (ax2, (0.0, 0.0))):
        for lev, style in (("68", "-"), ("95", "--")):
            ex, ey = _ellipse_xy(sigma[lev] * a["pos_err_semimajor"],
                                 sigma[lev] * a["pos_err_semiminor"], a["pos_angle"])
            ax.plot(cx + ex, cy + ey, "c" + style, lw=1.2, label=f"r{lev}")
        ax.plot([cx], [cy], "c+", ms=10)
        ax.invert_xaxis()
        ax.set_xlabel("offset east [deg]")
        ax.set_ylabel("offset north [deg]")
    ax1.plot([0], [0], "wx", ms=8, label="before")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.set_title(title or f"{a['name']}: TS map (pass 1)")
    gx, gy = tangent_offsets(a["ra"], a["dec"], np.asarray(ds["scan_ra"].values),
                             np.asarray(ds["scan_dec"].values))
    dl = 2.0 * (np.asarray(ds["loglike_scan"].values, float) - float(a["loglike_loc"]))
    sc = ax2.scatter(np.ravel(gx), np.ravel(gy), c=np.ravel(dl), cmap="viridis", s=60)
    fig.colorbar(sc, ax=ax2, label="2 delta log L")
    ax2.set_title(f"scan ({a['method']}): r95 = {a['pos_r95']:.3g} deg, "
                  f"PA = {a['pos_angle']:.0f} deg")
    return fig


def find_sources_figure(ds, title: str | None = None):
    """sqrt(TS) of the first iteration's map with the peaks (circles) and the names of
    the sources added."""
    from ..geom.frames import transform

    fig = _figure((6.4, 5.4))
    ax = fig.subplots()
    sq = np.asarray(ds["map_sqrt_ts"].values, float)
    lon = np.asarray(ds["lon"].values, float)
    lat = np.asarray(ds["lat"].values, float)
    frame = str(ds.attrs.get("geom", {}).get("frame", "CEL")) if isinstance(
        ds.attrs.get("geom"), dict) else "CEL"
    if sq.ndim == 2:
        im = ax.pcolormesh(lon, lat, sq, cmap="magma", shading="nearest")
    else:
        im = ax.scatter(lon, lat, c=sq, s=12, cmap="magma", marker="s")
    fig.colorbar(im, ax=ax, label="sqrt(TS)")
    if ds.sizes.get("peak", 0):
        plon, plat = transform(np.asarray(ds["peak_ra"].values, float),
                               np.asarray(ds["peak_dec"].values, float), "CEL", frame)
        ax.scatter(plon, plat, s=80, facecolors="none", edgecolors="c", label="peaks")
        for x, y, n in zip(np.ravel(plon), np.ravel(plat), ds["peak_name"].values):
            if n:
                ax.annotate(str(n), (x, y), color="w", fontsize=7, xytext=(4, 4),
                            textcoords="offset points")
        ax.legend(loc="upper right", fontsize=8)
    ax.invert_xaxis()
    ax.set_xlabel(f"{'RA' if frame == 'CEL' else 'GLON'} [deg]")
    ax.set_ylabel(f"{'Dec' if frame == 'CEL' else 'GLAT'} [deg]")
    ax.set_title(title or f"find_sources: {ds.attrs.get('nsources', 0)} new source(s)")
    return fig
