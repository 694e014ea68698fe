"""Fermipy's command-line tools over files, as ``fermixr`` sub-commands:

* ``coadd``: add counts cubes (WCS or HEALPix) made on one grid, e.g. the same ROI from
  several time ranges (``fermipy-coadd``);
* ``vstack``: stack the energy planes of several HEALPix maps into one cube
  (``fermipy-vstack``);
* ``collect-sources``: the source tables of many ROIs' ``write_roi`` outputs (``.fits``,
  ``.npy``, ``.yaml``) in one table, names prefixed ``roi_NNNNN_`` and an ``roi`` column;
  only the sources found by ``find_sources`` (``PS ...``) unless ``all_sources``
  (``fermipy-collect-sources``);
* ``cluster-sources``: group the collected sources closer than a distance (deg) or a
  number of sigma of their position errors (single linkage), mark each group's
  representative (the member nearest the group's npred-weighted centroid) and the others
  as duplicates, or drop the duplicates (``fermipy-cluster-sources``).

Outputs are never written over an existing file unless ``clobber``; every writer writes a
temporary file and renames it into place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError, RecipeError

__all__ = ["coadd", "vstack", "collect_sources", "cluster_sources"]


def _check_output(path, clobber: bool) -> Path:
    p = Path(path)
    if p.exists() and not clobber:
        raise RecipeError(f"{p}: exists; give --clobber to replace it (nothing was written)")
    if p.parent and not p.parent.is_dir():
        raise InputFileError(f"{p.parent}: the output folder does not exist")
    return p


def _write_hdul(hdul, path: Path) -> Path:
    from .roi_output import write_atomic

    return write_atomic(path, lambda tmp: hdul.writeto(tmp, overwrite=True))


def _open(path):
    from astropy.io import fits

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such file")
    try:
        return fits.open(p, memmap=False)
    except OSError as e:
        raise FileFormatError(f"{p}: not a readable FITS file ({e})") from None


def _map_hdu(hdul, path, hdu=None):
    """The map HDU of a counts/model cube file: ``hdu`` by name, else the primary image,
    else the first table with a HEALPix header (PIXTYPE = HEALPIX)."""
    from astropy.io import fits

    if hdu is not None:
        names = [h.name.upper() for h in hdul]
        if str(hdu).upper() not in names:
            raise FileFormatError(f"{path}: no HDU {hdu!r}; HDUs: {', '.join(names)}")
        return hdul[names.index(str(hdu).upper())]
    if hdul[0].data is not None and hdul[0].header.get("NAXIS", 0) >= 2:
        return hdul[0]
    for h in hdul[1:]:
        if isinstance(h, fits.BinTableHDU) and str(h.header.get("PIXTYPE", "")).upper() \
                == "HEALPIX":
            return h
    raise FileFormatError(f"{path}: no map (a primary image or a HEALPix table)")


_GEOM_KEYS = ("NSIDE", "ORDERING", "COORDSYS", "INDXSCHM", "FIRSTPIX", "LASTPIX", "CTYPE1",
              "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "NAXIS",
              "NAXIS1", "NAXIS2", "NAXIS3")


def coadd(files, output, *, clobber: bool = False) -> Path:
    """Sum counts cubes of one geometry (the first file's, header and other HDUs kept);
    a file on another grid is refused naming the header key that differs."""
    from astropy.io import fits

    if len(files) < 1:
        raise RecipeError("coadd: give at least one input file")
    out = _check_output(output, clobber)
    first = _open(files[0])
    with first:
        h0 = _map_hdu(first, files[0])
        idx = [h.name for h in first].index(h0.name)
        total, cols = _map_data(h0)
        hdul = fits.HDUList([h.copy() for h in first])
    for f in files[1:]:
        with _open(f) as other:
            h = _map_hdu(other, f)
            for k in _GEOM_KEYS:
                if h0.header.get(k) != h.header.get(k):
                    raise FileFormatError(f"{f}: {k} = {h.header.get(k)!r} differs from "
                                          f"{files[0]}'s {h0.header.get(k)!r}; coadd adds "
                                          "maps of one grid only")
            data, _ = _map_data(h)
            total = total + data
    _set_map_data(hdul[idx], total, cols)
    hdul[idx].header["NFILES"] = (len(files), "number of maps added by fermixr coadd")
    return _write_hdul(hdul, out)


def _map_data(h):
    """(array, column names or None) of an image or HEALPix-table HDU; HEALPix tables give
    (n_columns, n_pixels)."""
    from astropy.io import fits

    if isinstance(h, fits.BinTableHDU):
        cols = [c for c in h.columns.names if c.upper() != "PIX"]
        return np.vstack([np.asarray(h.data[c], dtype=np.float64) for c in cols]), cols
    return np.asarray(h.data, dtype=np.float64), None


def _set_map_data(h, data, cols):
    if cols is None:
        h.data = data.astype(h.data.dtype if h.data.dtype.kind == "f" else np.float64)
    else:
        for c, row in zip(cols, data):
            h.data[c] = row


def vstack(files, output, *, hdu=None, clobber: bool = False) -> Path:
    """Stack the energy planes (the CHANNELn columns) of HEALPix maps of one pixelisation
    into one cube, in the order of ``files``; the first file's header describes the
    pixels."""
    from astropy.io import fits

    out = _check_output(output, clobber)
    planes, ref = [], None
    for f in files:
        with _open(f) as hl:
            h = _map_hdu(hl, f, hdu)
            if not isinstance(h, fits.BinTableHDU):
                raise FileFormatError(f"{f}: HDU {h.name} is not a HEALPix table; vstack "
                                      "stacks HEALPix maps")
            if ref is None:
                ref = h.header.copy()
            else:
                for k in ("NSIDE", "ORDERING", "COORDSYS", "INDXSCHM", "NAXIS2"):
                    if ref.get(k) != h.header.get(k):
                        raise FileFormatError(f"{f}: {k} = {h.header.get(k)!r} differs from "
                                              f"{files[0]}'s {ref.get(k)!r}")
            data, _ = _map_data(h)
            planes.extend(data)
            pix = np.asarray(h.data["PIX"]) if "PIX" in h.columns.names else None
    cols = [fits.Column(name=f"CHANNEL{i + 1}", format="E", array=p)
            for i, p in enumerate(planes)]
    if pix is not None:
        cols.insert(0, fits.Column(name="PIX", format="J", array=pix))
    tab = fits.BinTableHDU.from_columns(cols, name=hdu or "SKYMAP")
    for k in ("PIXTYPE", "ORDERING", "COORDSYS", "NSIDE", "FIRSTPIX", "LASTPIX", "INDXSCHM",
              "HPX_REG", "HPX_CONV"):
        if k in ref:
            tab.header[k] = ref[k]
    tab.header["NFILES"] = (len(files), "number of maps stacked by fermixr vstack")
    return _write_hdul(fits.HDUList([fits.PrimaryHDU(), tab]), out)


# --------------------------------------------------------------------------------------
# source tables of many ROIs
# --------------------------------------------------------------------------------------
def _source_table(path):
    from astropy.table import Table

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such file")
    if p.suffix == ".fits" or p.name.endswith(".fits.gz"):
        try:
            return Table.read(p)
        except Exception as e:          # astropy raises many types here
            raise FileFormatError(f"{p}: not a write_roi source table ({e})") from None
    if p.suffix in (".npy", ".yaml", ".yml"):
        if p.suffix == ".npy":
            doc = np.load(p, allow_pickle=True).flat[0]
        else:
            import yaml

            doc = yaml.safe_load(p.read_text())
        srcs = doc.get("sources") if isinstance(doc, dict) else None
        if not isinstance(srcs, dict):
            raise FileFormatError(f"{p}: no 'sources' dictionary (a write_roi output is "
                                  "expected)")
        rows = []
        for name, d in srcs.items():
            row = {k: v for k, v in d.items() if np.ndim(v) == 0 and not isinstance(v, dict)}
            row.setdefault("name", name)
            rows.append(row)
        keys = sorted({k for r in rows for k in r})
        return Table(rows=[[r.get(k, _missing(rows, k)) for k in keys] for r in rows],
                     names=keys)
    raise FileFormatError(f"{p}: expected a write_roi output (.fits, .npy or .yaml)")


def _missing(rows, key):
    for r in rows:
        if key in r:
            return "" if isinstance(r[key], str) else np.nan
    return np.nan


def collect_sources(files, output, *, all_sources: bool = False,
                    clobber: bool = False) -> Path:
    """One FITS table of the sources of many ROIs' write_roi outputs (see the module
    docstring); returns the file written."""
    from astropy.table import Column, vstack as table_vstack

    out = _check_output(output, clobber)
    tabs = []
    for i, f in enumerate(files):
        t = _source_table(f)
        if "name" not in t.colnames:
            raise FileFormatError(f"{f}: the source table has no 'name' column")
        keep = [all_sources or str(n).startswith("PS") for n in t["name"]]
        t = t[np.asarray(keep, dtype=bool)]
        t["name"] = [f"roi_{i:05d}_{n}" for n in t["name"]]
        t.add_column(Column(name="roi", data=np.full(len(t), i, dtype=np.int32)))
        t.add_column(Column(name="roi_file", data=[str(f)] * len(t)))
        tabs.append(t)
    tab = table_vstack(tabs, join_type="outer") if tabs else None
    if tab is None:
        raise RecipeError("collect-sources: give at least one write_roi output")
    from .roi_output import write_atomic

    write_atomic(out, lambda tmp: tab.write(tmp, format="fits", overwrite=True))
    return out


def _unit_vectors(glon, glat):
    lo, la = np.radians(glon), np.radians(glat)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)


def cluster_sources(table_file, output, *, dist: float | None = None,
                    sigma: float | None = None, remove_duplicates: bool = False,
                    clobber: bool = False) -> Path:
    """Group sources of a collected table closer than ``dist`` degrees, or than ``sigma``
    combined position errors (``pos_err`` columns), by single linkage; in each group the
    member nearest the npred-weighted centroid represents it.  Adds ``cluster_ids`` (the
    representative's name, "" for a lone source), ``cluster_size`` and ``duplicate``, or
    drops the duplicates with ``remove_duplicates``."""
    from astropy.table import Table
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if (dist is None) == (sigma is None):
        raise RecipeError("cluster-sources: give exactly one of --dist (deg) and --sigma")
    out = _check_output(output, clobber)
    p = Path(table_file)
    if not p.is_file():
        raise InputFileError(f"{p}: no such file")
    tab = Table.read(p)
    for c in ("GLON", "GLAT", "npred") + (("pos_err",) if sigma is not None else ()):
        if c not in tab.colnames:
            raise FileFormatError(f"{p}: no column {c!r} (a collect-sources table is "
                                  "expected)")
    names = np.asarray(tab["name"] if "name" in tab.colnames else tab["Source_Name"],
                       dtype=str)
    v = _unit_vectors(np.asarray(tab["GLON"], float), np.asarray(tab["GLAT"], float))
    sep = np.degrees(np.arccos(np.clip(v @ v.T, -1.0, 1.0)))
    if dist is not None:
        link = sep < float(dist)
    else:
        e = np.asarray(tab["pos_err"], float)
        e = np.where(np.isfinite(e) & (e > 0), e, np.inf)
        link = sep < float(sigma) * np.sqrt(e[:, None] ** 2 + e[None, :] ** 2)
    np.fill_diagonal(link, False)
    i, j = np.nonzero(link)
    n = len(tab)
    ncl, label = connected_components(coo_matrix((np.ones(i.size), (i, j)), shape=(n, n)),
                                      directed=False)
    w = np.asarray(tab["npred"], float)
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    rep = np.arange(n)
    size = np.ones(n, dtype=int)
    for c in range(ncl):
        members = np.flatnonzero(label == c)
        if members.size == 1:
            continue
        ww = w[members] if w[members].sum() > 0 else np.ones(members.size)
        centre = (v[members] * ww[:, None]).sum(axis=0)
        centre /= np.linalg.norm(centre)
        best = members[int(np.argmax(v[members] @ centre))]
        rep[members] = best
        size[members] = members.size
    out_tab = tab.copy()
    out_tab["cluster_ids"] = np.where(size > 1, names[rep], "")
    out_tab["cluster_size"] = size
    out_tab["duplicate"] = rep != np.arange(n)
    if remove_duplicates:
        out_tab = out_tab[~np.asarray(out_tab["duplicate"])]
    from .roi_output import write_atomic

    write_atomic(out, lambda tmp: out_tab.write(tmp, format="fits", overwrite=True))
    return out
