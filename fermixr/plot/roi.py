"""Views of a fitted ROI: the counts spectrum against the model (with the brightest
sources and the fractional residuals) and the counts, model and residual maps summed over
energy, on WCS grids as they are and on HEALPix regions resampled to a local projection."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..geom.frames import angular_separation, transform
from ..geom.hpx import HpxGeom
from ..geom.wcs import WcsGeom


def _figure(size):
    """A Figure on its own Agg canvas (pyplot's state and backend left alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` through a temporary sibling and one rename, so
    an interrupted write never leaves a truncated image under the final name."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# -- counts spectrum ---------------------------------------------------------------------
def poisson_errors(n) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) 1-sigma errors of observed counts ``n`` (Gehrels 1986, eqs. 7 and
    12 with S = 1): upper sqrt(n + 3/4) + 1, lower n - n (1 - 1/(9n) - 1/(3 sqrt n))^3
    (0 at n = 0)."""
    n = np.asarray(n, dtype=float)
    up = np.sqrt(n + 0.75) + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(n > 0, n - n * (1.0 - 1.0 / (9.0 * n) - 1.0 / (3.0 * np.sqrt(n))) ** 3,
                       0.0)
    return low, up


def counts_spectrum_figure(edges, counts, model, sources=None, *, title=None,
                           max_sources: int = 8):
    """Observed counts per energy bin with Poisson errors, the total model and the
    ``max_sources`` brightest of ``sources`` ({name: model counts per bin}), over a panel of
    the fractional residuals (counts - model) / model.

    edges : (n_bins + 1,) bin edges, MeV;  counts, model : (n_bins,) summed over pixels."""
    edges = np.asarray(edges, dtype=float)
    counts = np.asarray(counts, dtype=float)
    model = np.asarray(model, dtype=float)
    if edges.ndim != 1 or counts.shape != (edges.size - 1,) or model.shape != counts.shape:
        raise ValueError(f"counts spectrum: {edges.size} edges need {edges.size - 1} counts "
                         f"and model values; got {counts.shape} and {model.shape}")
    ectr = np.sqrt(edges[:-1] * edges[1:])
    fig = _figure((7.0, 6.0))
    top, bot = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    low, up = poisson_errors(counts)
    shown = counts > 0
    top.errorbar(ectr[shown], counts[shown], yerr=[low[shown], up[shown]],
                 xerr=[(ectr - edges[:-1])[shown], (edges[1:] - ectr)[shown]], fmt="o",
                 color="k", ms=4, label="counts", zorder=5)
    top.stairs(model, edges, baseline=None, color="tab:red", lw=1.8, label="model",
               zorder=4)
    if sources:
        # the tab10 colours but red, which is the total model's
        colors = [c for i, c in enumerate(f"C{k}" for k in range(10)) if i != 3]
        order = sorted(sources, key=lambda k: -float(np.sum(sources[k])))
        for i, name in enumerate(order[:max_sources]):
            v = np.asarray(sources[name], dtype=float)
            if np.any(v > 0):
                top.stairs(v, edges, baseline=None, lw=1.0, alpha=0.85, label=name,
                           color=colors[i % len(colors)])
    top.set_xscale("log")
    top.set_yscale("log")
    pos = np.concatenate([counts[counts > 0], model[model > 0]])
    if pos.size:
        top.set_ylim(0.3 * max(pos.min(), 0.05), 3.0 * pos.max())
    top.set_ylabel("counts per bin")
    top.legend(fontsize="small", ncol=2, loc="best")
    if title:
        top.set_title(title)
    ok = model > 0
    frac = np.full(model.shape, np.nan)
    frac[ok] = (counts[ok] - model[ok]) / model[ok]
    bot.errorbar(ectr[ok], frac[ok], yerr=[low[ok] / model[ok], up[ok] / model[ok]],
                 fmt="o", color="k", ms=4)
    bot.axhline(0.0, color="tab:red", lw=1.2)
    bot.set_xlabel("energy [MeV]")
    bot.set_ylabel("(counts - model) / model", fontsize="small")
    return fig


# -- maps --------------------------------------------------------------------------------
def sky_image(geom, values, center_radec=None, max_npix: int = 800):
    """``values`` on the sky (..., one value per pixel of ``geom``) as images: (images
    (..., ny, nx), grid), grid the ``WcsGeom`` they lie on.  WCS maps are returned as they
    are; HEALPix maps are sampled (nearest pixel) on a gnomonic grid around
    ``center_radec`` (default: the centre of the held pixels) at half the HEALPix
    resolution (Hammer-Aitoff for the whole sky); NaN outside the held pixels.  Several
    maps stacked on leading axes share one sampling."""
    values = np.asarray(values, dtype=float)
    if isinstance(geom, WcsGeom):
        lead = values.shape[:-2] if values.shape[-2:] == geom.shape else values.shape[:-1]
        return values.reshape(lead + geom.shape), geom
    if not isinstance(geom, HpxGeom):
        raise TypeError(f"sky_image: a WcsGeom or HpxGeom is needed, got {type(geom).__name__}")
    if values.shape[-1:] != (geom.npix,):
        raise ValueError(f"sky_image: {values.shape[-1] if values.ndim else 1} values for "
                         f"{geom.npix} HEALPix pixels")
    import healpy as hp

    res = math.degrees(hp.nside2resol(geom.nside))
    lon, lat = geom.pixel_centers()
    if center_radec is not None:
        c = transform(np.array([center_radec[0]]), np.array([center_radec[1]]), "CEL",
                      geom.frame)
        clon, clat = float(np.asarray(c[0])[0]), float(np.asarray(c[1])[0])
    else:
        v = np.array(hp.ang2vec(lon, lat, lonlat=True)).sum(axis=0)
        clon, clat = hp.vec2ang(v / np.linalg.norm(v), lonlat=True)
        clon, clat = float(np.ravel(clon)[0]), float(np.ravel(clat)[0])
    radius = float(np.max(angular_separation(lon, lat, clon, clat))) + res
    if geom.is_allsky or radius > 60.0:
        binsz = max(res / 2.0, 360.0 / max_npix)
        grid = WcsGeom((0.0, 0.0), (int(360 / binsz), int(180 / binsz)), binsz, "AIT",
                       geom.frame)
    else:
        binsz = max(res / 2.0, 2.0 * radius / max_npix)
        n = int(math.ceil(2.0 * radius / binsz))
        grid = WcsGeom((clon, clat), (n, n), binsz, "TAN", geom.frame)
    glon, glat = grid.pixel_centers()
    idx = np.full(grid.shape, -1, dtype=np.int64)
    ok = np.isfinite(glon) & np.isfinite(glat)
    idx[ok] = geom.world_to_pix(glon[ok], glat[ok])
    img = np.full(values.shape[:-1] + grid.shape, np.nan)
    held = idx >= 0
    img[..., held] = values[..., idx[held]]
    return img, grid


def residual_significance(counts, model, radius_pix: float = 0.0):
    """Signed significance of counts against the model in 2-D images: counts n and model m
    summed over a disk of ``radius_pix`` pixels around each pixel (the pixel alone at 0),
    then sign(n - m) sqrt(2 (n ln(n / m) - (n - m))), the likelihood-ratio significance
    of a Poisson count against a known expectation (right at low counts, where
    (n - m) / sqrt(m) is not).  NaN where the model is not positive or either image is
    NaN."""
    n = np.asarray(counts, dtype=float)
    m = np.asarray(model, dtype=float)
    bad = ~(np.isfinite(n) & np.isfinite(m))
    n, m = np.where(bad, 0.0, n), np.where(bad, 0.0, m)
    if radius_pix > 0:
        from scipy.ndimage import convolve

        r = int(math.floor(radius_pix))
        y, x = np.mgrid[-r:r + 1, -r:r + 1]
        disk = (x * x + y * y <= radius_pix * radius_pix).astype(float)
        n = convolve(n, disk, mode="constant")
        m = convolve(m, disk, mode="constant")
    out = np.full(n.shape, np.nan)
    ok = (m > 0) & ~bad
    nn, mm = n[ok], m[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(nn > 0, nn * np.log(nn / mm), 0.0) - (nn - mm)
    out[ok] = np.sign(nn - mm) * np.sqrt(np.clip(2.0 * t, 0.0, None))
    return out


def counts_maps_figure(geom, counts, model, markers=(), *, center_radec=None,
                       radius_deg: float = 0.0, title=None, max_labels: int = 10):
    """Three panels: counts, model counts (square-root scale) and the residual
    significance of the counts against the model (see :func:`residual_significance`),
    within ``radius_deg`` of each pixel on WCS maps (HEALPix maps: per pixel), each summed
    over energy; ``markers`` = [(name, ra, dec)] of point sources drawn on every panel,
    the first ``max_labels`` of them named."""
    from matplotlib.colors import PowerNorm

    (img_n, img_m), grid = sky_image(geom, np.stack([np.ravel(counts), np.ravel(model)]),
                                     center_radec)
    radius_pix = 0.0
    if radius_deg and isinstance(geom, WcsGeom):
        radius_pix = float(radius_deg) / abs(geom.cdelt[1])
    resid = residual_significance(img_n, img_m, radius_pix)
    fig = _figure((15.0, 5.0))
    lim = max(3.0, float(np.nanmax(np.abs(resid))) if np.isfinite(resid).any() else 3.0)
    lim = min(lim, 10.0)
    both = np.concatenate([img_n.ravel(), img_m.ravel()])
    vmax = float(np.nanmax(both)) if np.isfinite(both).any() else 1.0
    vmax = vmax if vmax > 0 else 1.0                  # an empty map draws, all dark
    panels = [("counts", img_n, "magma", PowerNorm(0.5, 0.0, vmax)),
              ("model counts", img_m, "magma", PowerNorm(0.5, 0.0, vmax)),
              ("residual significance" + (f" (counts within {radius_deg:g} deg)"
                                          if radius_pix else ""), resid, "RdBu_r", None)]
    xs = ys = names = ()
    if markers:
        names = [m[0] for m in markers]
        xs, ys = grid.world_to_pix(np.array([m[1] for m in markers], dtype=float),
                                   np.array([m[2] for m in markers], dtype=float), "CEL")
    lon_name, lat_name = ("RA", "Dec") if grid.frame == "CEL" else ("GLON", "GLAT")
    for i, (label, img, cmap, norm) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1, projection=grid.wcs)
        im = ax.imshow(img, origin="lower", cmap=cmap, norm=norm,
                       vmin=None if norm else -lim, vmax=None if norm else lim,
                       interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(label, fontsize="medium")
        ax.coords[0].set_axislabel(lon_name)
        ax.coords[1].set_axislabel(lat_name)
        ny, nx = img.shape
        nlab = 0
        for name, x, y in zip(names, np.atleast_1d(xs), np.atleast_1d(ys)):
            if not (np.isfinite(x) and np.isfinite(y) and -0.5 <= x < nx - 0.5
                    and -0.5 <= y < ny - 0.5):
                continue
            ax.plot(x, y, marker="+", color="cyan" if cmap == "magma" else "k", ms=7, mew=1.2)
            if nlab < max_labels:
                ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points",
                            fontsize="x-small", color="w" if cmap == "magma" else "k")
                nlab += 1
        ax.set_xlim(-0.5, nx - 0.5)
        ax.set_ylim(-0.5, ny - 0.5)
    if title:
        fig.suptitle(title)
    return fig
