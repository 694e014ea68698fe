"""Readers of the map files Gammapy reads, in pure astropy (Gammapy is not needed):

* the Science Tools' loose cubes, as Gammapy's Fermi-LAT tutorial reads them: a gtbin
  counts cube and a predicted-background cube of the same layout (image + ``EBOUNDS``), a
  gtexpcube2 exposure cube (image + ``ENERGIES``) and a gtpsf PSF file (``PSF`` +
  ``THETA``);
* a ``gammapy.datasets.MapDataset`` file as ``MapDataset.write`` writes it: ``COUNTS``,
  ``EXPOSURE``, ``BACKGROUND``, ``PSF`` (+ ``PSF_EXPOSURE``), ``EDISP`` (a kernel map),
  ``MASK_SAFE`` / ``MASK_FIT``, each map with its ``<NAME>_BANDS`` table describing the
  non-spatial axes.

Every reader returns plain arrays with energies in MeV and angles in deg; a missing file
is an :class:`~fermixr.errors.InputFileError`, a missing HDU or column a
:class:`~fermixr.errors.FileFormatError` naming the file and the HDU.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError
from .headers import numeric_header

__all__ = ["GammapyMap", "GtPsf", "read_counts_cube", "read_exposure_cube", "read_gtpsf",
           "read_map_dataset", "MAP_DATASET_REQUIRED"]

MAP_DATASET_REQUIRED = ("COUNTS", "EXPOSURE", "BACKGROUND", "PSF")
"""The HDUs of a MapDataset file fermixr needs (EDISP, MASK_SAFE and MASK_FIT are
optional: without them no dispersion and no mask)."""


@dataclasses.dataclass(frozen=True)
class GammapyMap:
    """A map read from a file: ``data`` with the non-spatial axes first (outermost axis
    first, as numpy orders a FITS cube) and the sky last ((ny, nx) for an image; nothing
    for a region map); ``axes`` (name, nodes, edges or None) in the same order, energies
    in MeV and angles in deg; ``header`` the image header (None for a region map)."""

    data: np.ndarray
    axes: tuple
    header: object = None
    path: str = ""
    hdu: str = ""

    def axis(self, name: str):
        """(nodes, edges or None) of axis ``name``."""
        for n, nodes, edges in self.axes:
            if n == name:
                return nodes, edges
        raise FileFormatError(f"{self.path}: HDU {self.hdu} has no {name!r} axis (axes: "
                              f"{', '.join(a[0] for a in self.axes) or 'none'})")

    @property
    def geom(self):
        from ..geom.wcs import WcsGeom

        if self.header is None:
            raise FileFormatError(f"{self.path}: HDU {self.hdu} is not a sky image")
        return WcsGeom.from_header(numeric_header(self.header, self.path, hdu=self.hdu))


@dataclasses.dataclass(frozen=True)
class GtPsf:
    """A PSF versus offset at true energies: ``energies`` (n,) MeV, ``theta`` (m,) deg,
    ``psf`` (n, m) sr^-1, ``exposure`` (n,) cm2 s (or None)."""

    energies: np.ndarray
    theta: np.ndarray
    psf: np.ndarray
    exposure: np.ndarray | None = None


def _open(path, what):
    from astropy.io import fits

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{what}: file {str(p)!r} does not exist")
    try:
        hl = fits.open(p, memmap=False)
        hl.verify("silentfix")
        return hl
    except OSError as exc:
        raise FileFormatError(f"{what}: cannot read {str(p)!r} as FITS: {exc}") from None


def _hdu(hl, name, path, what):
    names = [h.name.upper() for h in hl]
    if name.upper() not in names:
        raise FileFormatError(f"{what} {str(path)!r}: no {name} HDU (HDUs in the file: "
                              f"{', '.join(names)})")
    return hl[names.index(name.upper())]


def _convert(values, unit, target: str, kind: str, path, hdu, col):
    """``values`` in ``unit`` as float64 in ``target``; FileFormatError naming the file,
    HDU and column when ``unit`` is not a(n) ``kind``."""
    import astropy.units as u

    try:
        return np.asarray((np.asarray(values, dtype=np.float64) * u.Unit(unit)).to_value(
            u.Unit(target)), dtype=np.float64)
    except (ValueError, u.UnitsError, TypeError):
        raise FileFormatError(f"{path}: HDU {hdu} column {col}: unit {unit!r} is not an "
                              f"{kind}") from None


def _to_mev(values, unit, path, hdu, col):
    return _convert(values, unit, "MeV", "energy", path, hdu, col)


def _to_deg(values, unit, path, hdu, col):
    return _convert(values, unit, "deg", "angle", path, hdu, col)


def _column(h, name, path):
    cols = [c.upper() for c in h.columns.names]
    if name.upper() not in cols:
        raise FileFormatError(f"{path}: HDU {h.name} has no column {name} (columns: "
                              f"{', '.join(h.columns.names)})")
    real = h.columns.names[cols.index(name.upper())]
    return np.asarray(h.data[real]), (h.columns[real].unit or "")


def _ebounds(hl, path, what):
    """Bin edges (n + 1,) MeV of an EBOUNDS table (gtbin writes keV: the default unit)."""
    h = _hdu(hl, "EBOUNDS", path, what)
    lo, ulo = _column(h, "E_MIN", path)
    hi, uhi = _column(h, "E_MAX", path)
    lo = _to_mev(lo, ulo or "keV", path, "EBOUNDS", "E_MIN")
    hi = _to_mev(hi, uhi or "keV", path, "EBOUNDS", "E_MAX")
    if not np.allclose(lo[1:], hi[:-1], rtol=1e-5):
        raise FileFormatError(f"{path}: EBOUNDS bins are not contiguous")
    return np.append(lo, hi[-1])


def _image(hl, name, path, what):
    h = _hdu(hl, name, path, what)
    if h.data is None or h.header.get("NAXIS", 0) < 2:
        raise FileFormatError(f"{what} {str(path)!r}: HDU {name} holds no image")
    return np.asarray(h.data, dtype=np.float64), h.header.copy()


def read_counts_cube(path, what: str = "counts cube") -> GammapyMap:
    """A gtbin-style cube (counts, or predicted background counts): the primary image
    (n_energy, ny, nx) with its ``EBOUNDS`` bin edges."""
    with _open(path, what) as hl:
        data, hdr = _image(hl, "PRIMARY", path, what)
        edges = _ebounds(hl, path, what)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape[0] != edges.size - 1:
        raise FileFormatError(f"{what} {str(path)!r}: image of shape {data.shape} for "
                              f"{edges.size - 1} EBOUNDS bins")
    nodes = np.sqrt(edges[:-1] * edges[1:])
    return GammapyMap(data, (("energy", nodes, edges),), hdr, str(path), "PRIMARY")


def read_exposure_cube(path, what: str = "exposure cube") -> GammapyMap:
    """A gtexpcube2-style exposure cube: the primary image (n_energy, ny, nx) in cm2 s at
    the true energies of its ``ENERGIES`` table."""
    with _open(path, what) as hl:
        data, hdr = _image(hl, "PRIMARY", path, what)
        h = _hdu(hl, "ENERGIES", path, what)
        col = h.columns.names[0]
        e = _to_mev(h.data[col], h.columns[col].unit or "MeV", path, "ENERGIES", col)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape[0] != e.size:
        raise FileFormatError(f"{what} {str(path)!r}: image of shape {data.shape} for "
                              f"{e.size} ENERGIES rows")
    return GammapyMap(data, (("energy_true", e, None),), hdr, str(path), "PRIMARY")


def read_gtpsf(path, what: str = "gtpsf PSF file") -> GtPsf:
    """A gtpsf output: ``PSF`` (Energy [MeV], Exposure [cm2 s], Psf [sr^-1] per offset)
    and ``THETA`` (the offsets, deg)."""
    with _open(path, what) as hl:
        h = _hdu(hl, "PSF", path, what)
        e, ue = _column(h, "Energy", path)
        expo, _ = _column(h, "Exposure", path)
        psf, _ = _column(h, "Psf", path)
        t = _hdu(hl, "THETA", path, what)
        theta, ut = _column(t, "Theta", path)
    e = _to_mev(e, ue or "MeV", path, "PSF", "Energy")
    theta = _to_deg(theta, ut or "deg", path, "THETA", "Theta")
    psf = np.asarray(psf, dtype=np.float64).reshape(e.size, -1)
    if psf.shape[1] != theta.size:
        raise FileFormatError(f"{what} {str(path)!r}: {psf.shape[1]} PSF values per energy "
                              f"for {theta.size} THETA rows")
    return GtPsf(e, theta, psf, np.asarray(expo, dtype=np.float64))


# -------------------------------------------------------------------------------------
# MapDataset files
# -------------------------------------------------------------------------------------
def _unique_in_order(a):
    a = np.asarray(a)
    _, idx = np.unique(a, return_index=True, axis=0)
    return a[np.sort(idx)]


def _bands_axes(hl, name, path):
    """The non-spatial axes of map HDU ``name`` from its BANDS table, in numpy order
    (outermost first): [(axis name, nodes, edges or None)]."""
    bands = hl[name].header.get("BANDSHDU", f"{name}_BANDS")
    h = _hdu(hl, str(bands), path, "MapDataset file")
    axes = []
    i = 1
    while f"AXCOLS{i}" in h.header:
        cols = [c.strip() for c in str(h.header[f"AXCOLS{i}"]).split(",")]
        if len(cols) == 2:
            lo, ulo = _column(h, cols[0], path)
            hi, _ = _column(h, cols[1], path)
            pairs = _unique_in_order(np.stack([lo, hi], axis=1).astype(np.float64))
            edges = np.append(pairs[:, 0], pairs[-1, 1])
            nodes = None
            unit = ulo
            base = cols[0].upper().rsplit("_MIN", 1)[0]
            if base == "E":
                base = "ENERGY"
        else:
            v, unit = _column(h, cols[0], path)
            nodes = _unique_in_order(np.asarray(v, dtype=np.float64))
            edges = None
            base = cols[0].upper()
            have = [c.upper() for c in h.columns.names]
            if f"{base}_MIN" in have and f"{base}_MAX" in have:
                # a node axis: Gammapy still writes the bins around the nodes
                lo, _ = _column(h, f"{base}_MIN", path)
                hi, _ = _column(h, f"{base}_MAX", path)
                pairs = _unique_in_order(np.stack([lo, hi], axis=1).astype(np.float64))
                if pairs.shape[0] == nodes.size:
                    edges = np.append(pairs[:, 0], pairs[-1, 1])
        kind = base.lower()
        if kind.startswith("energy"):
            conv = _to_mev
        elif kind in ("rad", "theta"):
            conv = _to_deg
        else:
            conv = None
        if conv is not None:
            edges = None if edges is None else conv(edges, unit or ("keV" if kind == "energy"
                                                                    else "MeV"), path,
                                                    bands, cols[0])
            nodes = None if nodes is None else conv(nodes, unit or "MeV", path, bands,
                                                    cols[0])
        if nodes is None and edges is not None:
            nodes = np.sqrt(edges[:-1] * edges[1:]) if kind.startswith("energy") and \
                np.all(edges > 0) else 0.5 * (edges[:-1] + edges[1:])
            if kind.startswith("energy"):
                # Gammapy writes the centre column too: prefer it when given
                cname = "ENERGY_TRUE" if kind == "energy_true" else "ENERGY"
                if cname in [c.upper() for c in h.columns.names]:
                    v, uc = _column(h, cname, path)
                    ctr = _unique_in_order(np.asarray(v, dtype=np.float64))
                    if ctr.size == nodes.size:
                        nodes = _to_mev(ctr, uc or "MeV", path, bands, cname)
        axes.append((kind, nodes, edges))
        i += 1
    return tuple(reversed(axes))


def _map(hl, name, path):
    from astropy.io import fits

    h = hl[name]
    axes = _bands_axes(hl, name, path)
    shape = tuple(a[1].size for a in axes)
    if isinstance(h, fits.BinTableHDU):        # a region map: one row per outer channel
        col = "DATA" if "DATA" in [c.upper() for c in h.columns.names] else h.columns.names[-1]
        v, _ = _column(h, col, path)
        data = np.asarray(v, dtype=np.float64)
        if data.size != int(np.prod(shape)):
            raise FileFormatError(f"{path}: HDU {name} holds {data.size} values for axes "
                                  f"of shape {shape}")
        return GammapyMap(data.reshape(shape), axes, None, str(path), name)
    data = np.asarray(h.data, dtype=np.float64)
    if data.shape[:len(shape)] != shape or data.ndim != len(shape) + 2:
        raise FileFormatError(f"{path}: HDU {name} of shape {data.shape} does not match its "
                              f"BANDS axes {shape} plus a sky image")
    return GammapyMap(data, axes, h.header.copy(), str(path), name)


def read_map_dataset(path) -> dict:
    """The maps of a MapDataset file: {"counts", "exposure", "background", "psf",
    "psf_exposure", "edisp", "mask_safe", "mask_fit"} (:class:`GammapyMap`; the optional
    ones None when absent).  The HDUs of :data:`MAP_DATASET_REQUIRED` must be there."""
    what = "MapDataset file"
    with _open(path, what) as hl:
        names = [h.name.upper() for h in hl]
        for req in MAP_DATASET_REQUIRED:
            if req not in names:
                raise FileFormatError(
                    f"{what} {str(path)!r}: no {req} HDU; fermixr needs "
                    f"{', '.join(MAP_DATASET_REQUIRED)} (HDUs in the file: "
                    f"{', '.join(names)})")
        out = {}
        for key in ("counts", "exposure", "background", "psf", "psf_exposure", "edisp",
                    "mask_safe", "mask_fit"):
            nm = key.upper()
            out[key] = _map(hl, nm, path) if nm in names else None
    for key in ("counts", "exposure", "background"):
        if out[key].header is None:
            raise FileFormatError(f"{what} {str(path)!r}: HDU {key.upper()} is not a WCS "
                                  "image (HEALPix and region datasets are not imported)")
    return out
