"""``fermixr healview``: a HEALPix map file (a counts or model cube, a TS map, ...) as an
image: the sum of its energy planes or one plane, in a Mollweide view of the whole sky or,
for a partial map (explicit pixel indices), a cartesian view around the pixels it holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError, RecipeError

__all__ = ["read_healpix_map", "healview"]


def read_healpix_map(path, hdu=None):
    """(full-sky map with NaN where the file has no pixel, nside, nest, coordsys, planes)
    of a HEALPix table HDU."""
    from astropy.io import fits

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such file")
    try:
        hdul = fits.open(p, memmap=False)
    except OSError as e:
        raise FileFormatError(f"{p}: not a readable FITS file ({e})") from None
    with hdul:
        cands = [h for h in hdul[1:] if isinstance(h, fits.BinTableHDU)
                 and str(h.header.get("PIXTYPE", "")).upper() == "HEALPIX"]
        if hdu is not None:
            cands = [h for h in cands if h.name.upper() == str(hdu).upper()]
        if not cands:
            raise FileFormatError(f"{p}: no HEALPix table{' named ' + repr(hdu) if hdu else ''}"
                                  " (PIXTYPE = 'HEALPIX')")
        h = cands[0]
        nside = int(h.header["NSIDE"])
        nest = str(h.header.get("ORDERING", "RING")).upper() == "NESTED"
        coordsys = str(h.header.get("COORDSYS", "C")).upper()[:1]
        cols = [c for c in h.columns.names if c.upper() != "PIX"]
        planes = np.vstack([np.asarray(h.data[c], dtype=float).ravel() for c in cols])
        pix = np.asarray(h.data["PIX"], dtype=np.int64) if "PIX" in h.columns.names else None
    npix = 12 * nside * nside
    full = np.full((planes.shape[0], npix), np.nan)
    if pix is None:
        if planes.shape[1] != npix:
            raise FileFormatError(f"{p}: {planes.shape[1]} values per plane but NSIDE {nside} "
                                  f"has {npix} pixels and there is no PIX column")
        full[:] = planes
    else:
        full[:, pix] = planes
    return full, nside, nest, coordsys, cols


def healview(path, output, *, hdu=None, plane=None, log=False, title=None) -> Path:
    """Draw the map of ``path`` (all planes summed, or plane number ``plane``) into the
    PNG ``output``."""
    import healpy as hp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full, nside, nest, coordsys, cols = read_healpix_map(path, hdu)
    if plane is None:
        img = np.nansum(full, axis=0)
        img[np.all(np.isnan(full), axis=0)] = np.nan
        what = f"sum of {len(cols)} planes"
    else:
        if not 0 <= int(plane) < len(cols):
            raise RecipeError(f"--plane {plane}: the map has planes 0..{len(cols) - 1}")
        img = full[int(plane)]
        what = f"plane {plane} ({cols[int(plane)]})"
    if log:
        img = np.where(img > 0, np.log10(np.where(img > 0, img, 1.0)), np.nan)
        what += ", log10"
    title = title or f"{Path(path).name}: {what}"
    have = np.flatnonzero(np.isfinite(img))
    if have.size == 0:
        raise FileFormatError(f"{path}: the map holds no finite value")
    unit = {"G": "GLON/GLAT", "C": "RA/Dec", "E": "ecliptic"}.get(coordsys, coordsys)
    if have.size > 0.5 * img.size:
        hp.mollview(np.where(np.isfinite(img), img, hp.UNSEEN), nest=nest, title=title,
                    unit=unit)
    else:
        th, ph = hp.pix2ang(nside, have, nest=nest)
        lon, lat = np.degrees(ph), 90.0 - np.degrees(th)
        lon0 = float(np.degrees(np.angle(np.mean(np.exp(1j * np.radians(lon))))))
        dlon = ((lon - lon0 + 180.0) % 360.0) - 180.0
        pad = 2.0 * hp.nside2resol(nside, arcmin=True) / 60.0
        hp.cartview(np.where(np.isfinite(img), img, hp.UNSEEN), nest=nest, rot=(lon0, 0.0),
                    lonra=[dlon.min() - pad, dlon.max() + pad],
                    latra=[lat.min() - pad, lat.max() + pad], title=title, unit=unit)
    hp.graticule(dpar=5 if have.size < 0.5 * img.size else 30,
                 dmer=5 if have.size < 0.5 * img.size else 30, alpha=0.4)
    out = Path(output)
    fig = plt.gcf()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
