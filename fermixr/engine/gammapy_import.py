"""Gammapy data as a fermixr analysis state.

:func:`import_gammapy` turns a Gammapy ``MapDataset`` file, or the Science Tools' loose
cubes Gammapy reads (counts cube, predicted-background cube, exposure cube, gtpsf PSF
file, as in Gammapy's Fermi-LAT tutorial), into an
:class:`~fermixr.likelihood.roi.AnalysisState` on which fermixr's estimators (tsmap, sed,
fit, ...) run.

The state predicts what Gammapy's ``MapDataset.npred`` predicts for the same file and
model: in each true-energy bin of the exposure, the spectrum integrated over the bin times
the bin's exposure at the source and its PSF at the bin's centre, then the dispersion
kernel (see :class:`TrueGrid` for how fermixr's likelihood is made to integrate each true
bin that way):

* one component: the counts on the file's WCS grid (optionally a cut-out); its true-energy
  nodes three per exposure bin (:class:`TrueGrid`), and always a response matrix: the
  ``EDISP`` kernel (at the grid's centre) on the exposure's true bins, or, without one,
  Gammapy's diagonal response (the fraction of each true bin inside each counts bin);
* the background cube as a source ``gammapy_background`` of fixed shape with a free norm
  (a ``ConstantValue`` spectrum, Value = 1), dispersed like every source: its true-bin
  counts solve kernel^T t = cube (:func:`background_true_counts`), so its predicted counts
  are the cube times the norm in every bin;
* a ``map_maker`` making the maps of point sources and of RadialGaussian / RadialDisk
  sources per true bin from the imported exposure (at the source) and the imported PSF
  (per offset, linear in log energy between its energies, at the bin's centre), with
  fermixr's own source-map code (:func:`fermixr.srcmap.point_source_map`,
  :func:`fermixr.srcmap.extended_source_map`), so a test source's counts follow from its
  spectrum as every fermixr source's do;
* masks (``MASK_SAFE`` x ``MASK_FIT``) as likelihood weights of 0 and 1.

Loose cubes (gtexpcube2's exposure at energies, no bins) take the true bins Gammapy's
Fermi-LAT tutorial gives them: about the exposure's energies (geometric midpoints, half a
step beyond the ends), with the diagonal response.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, GeometryError, InputFileError, ModelError, RecipeError
from ..likelihood.roi import AnalysisState, Component, map_key
from ..model.skymodel import SkyModel

__all__ = ["import_gammapy", "TrueGrid", "background_true_counts", "ImportedMapMaker",
           "BACKGROUND_NAME"]

BACKGROUND_NAME = "gammapy_background"

_LOOSE_KEYS = ("counts", "background", "exposure", "psf")


# -------------------------------------------------------------------------------------
# inputs
# -------------------------------------------------------------------------------------
def _loose_files(path_or_files) -> dict | None:
    """{counts, background, exposure, psf} paths of loose cubes, or None for a MapDataset
    file.  A folder is searched for one file of each kind ('*counts*', '*background*' or
    '*bkg*', '*exposure*', '*psf*')."""
    if isinstance(path_or_files, dict):
        missing = [k for k in _LOOSE_KEYS if not path_or_files.get(k)]
        unknown = sorted(set(path_or_files) - set(_LOOSE_KEYS))
        if missing or unknown:
            raise RecipeError(
                f"gammapy import: the loose cubes need the keys {', '.join(_LOOSE_KEYS)}; "
                + (f"missing {', '.join(missing)}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown {', '.join(unknown)}" if unknown else ""))
        return {k: Path(path_or_files[k]) for k in _LOOSE_KEYS}
    p = Path(path_or_files)
    if p.is_dir():
        pats = {"counts": ("*counts*",), "background": ("*background*", "*bkg*"),
                "exposure": ("*exposure*",), "psf": ("*psf*",)}
        out = {}
        for k, globs in pats.items():
            hits = sorted({f for g in globs for f in p.glob(g + ".fits*")})
            if len(hits) != 1:
                raise InputFileError(
                    f"gammapy import: folder {str(p)!r}: expected one {k} file "
                    f"({' or '.join(g + '.fits[.gz]' for g in globs)}), found "
                    f"{len(hits)}{': ' + ', '.join(h.name for h in hits) if hits else ''}; "
                    "give the files as a dict {counts, background, exposure, psf}")
            out[k] = hits[0]
        return out
    if not p.is_file():
        raise InputFileError(f"gammapy import: {str(p)!r} does not exist (give a MapDataset "
                             "FITS file, a folder of loose cubes, or a dict of their paths)")
    return None


def _cutout_slices(geom, center, width):
    """(y slice, x slice) of the cut-out of ``width`` (lon, lat) deg around ``center``
    (lon, lat in the grid's frame; default the grid centre), as Gammapy's Map.cutout."""
    if width is None:
        return slice(None), slice(None)
    try:
        wl, wb = (float(v) for v in (width if np.ndim(width) else (width, width)))
    except (TypeError, ValueError):
        raise GeometryError(f"gammapy import: width: got {width!r}; expected a width in deg "
                            "or (lon width, lat width)") from None
    if center is None:
        xc, yc = (geom.nx - 1) / 2.0, (geom.ny - 1) / 2.0
    else:
        x, y = geom.world_to_pix(float(center[0]), float(center[1]))
        xc, yc = float(np.ravel(x)[0]), float(np.ravel(y)[0])
    nx = int(round(wl / abs(geom.cdelt[0])))
    ny = int(round(wb / abs(geom.cdelt[1])))
    x0 = int(round(xc - (nx - 1) / 2.0))
    y0 = int(round(yc - (ny - 1) / 2.0))
    if nx < 1 or ny < 1 or x0 < 0 or y0 < 0 or x0 + nx > geom.nx or y0 + ny > geom.ny:
        raise GeometryError(f"gammapy import: a cut-out of {wl:g} x {wb:g} deg around pixel "
                            f"({xc:.1f}, {yc:.1f}) does not fit in the {geom.nx} x {geom.ny} "
                            "pixel map; give a smaller width or another centre")
    return slice(y0, y0 + ny), slice(x0, x0 + nx)


def _sub_geom(geom, ys, xs):
    from ..geom.wcs import WcsGeom

    x0 = xs.start or 0
    y0 = ys.start or 0
    nx = (xs.stop or geom.nx) - x0
    ny = (ys.stop or geom.ny) - y0
    c1, c2 = geom.crpix
    return WcsGeom(geom.center, (nx, ny), proj=geom.proj, frame=geom.frame,
                   crpix=(c1 - x0, c2 - y0), rotation=geom.rotation, cdelt=geom.cdelt)


def _same_grid(a, b, what_a, what_b):
    ha, hb = a.to_header(), b.to_header()
    for k in ("CTYPE1", "CTYPE2", "NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "CRVAL1",
              "CRVAL2", "CDELT1", "CDELT2"):
        va, vb = ha.get(k), hb.get(k)
        same = (va == vb) if isinstance(va, str) else np.isclose(float(va), float(vb),
                                                                 rtol=1e-6, atol=1e-9)
        if not same:
            raise GeometryError(f"gammapy import: the {what_b} is on another sky grid than "
                                f"the {what_a} ({k} = {vb!r}, expected {va!r}); fermixr "
                                "needs them on one grid")


# -------------------------------------------------------------------------------------
# maps of sources
# -------------------------------------------------------------------------------------
def _interp_rows_log_energy(e_rows, rows, e_out):
    """Rows (n, m) given at energies ``e_rows`` interpolated linearly in log E to
    ``e_out`` (held at the end rows outside)."""
    le = np.log(np.asarray(e_rows, dtype=np.float64))
    lo = np.log(np.asarray(e_out, dtype=np.float64))
    j = np.clip(np.searchsorted(le, lo) - 1, 0, le.size - 2) if le.size > 1 else \
        np.zeros(lo.size, dtype=int)
    if le.size == 1:
        return np.repeat(rows[:1], lo.size, axis=0)
    w = np.clip((lo - le[j]) / (le[j + 1] - le[j]), 0.0, 1.0)
    return rows[j] * (1.0 - w)[:, None] + rows[j + 1] * w[:, None]


class ImportedMapMaker:
    """``maker(src, i)``: the (n_nodes, n_pix) map of ``src`` on the imported grid: per
    true-energy bin, the exposure of the bin at the source times the PSF at the bin's
    centre (Gammapy's model), spread on the bin's quadrature nodes (:func:`true_grid`);
    the background source gives its own node maps.  Maps are kept per spatial model
    (read-only)."""

    MEMO_MAX = 64

    def __init__(self, geom, grid, exposure, exposure_geom, psf, background=None):
        self.geom = geom
        self.grid = grid
        self.nodes = grid.nodes
        self.exposure = np.asarray(exposure, dtype=np.float64)
        if self.exposure.shape[0] != grid.centres.size:
            raise GeometryError(f"gammapy import: {self.exposure.shape[0]} exposure planes "
                                f"for {grid.centres.size} true-energy bins")
        self.exposure_geom = exposure_geom
        self.psf_offsets = np.asarray(psf.theta, dtype=np.float64)
        self.psf_values = np.ascontiguousarray(
            _interp_rows_log_energy(psf.energies, np.asarray(psf.psf, dtype=np.float64),
                                    grid.centres))
        self.background = background          # (name, key, map) or None
        self._memo: dict = {}

    def exposure_at(self, ra, dec) -> np.ndarray:
        """Exposure (n_true_bins,) cm2 s of each true-energy bin at (ra, dec) (deg ICRS),
        bilinear on the sky."""
        from ..geom.frames import transform

        g = self.exposure_geom
        lon, lat = transform(np.atleast_1d(float(ra)), np.atleast_1d(float(dec)), "CEL",
                             g.frame)
        x, y = g.world_to_pix(float(lon[0]), float(lat[0]))
        x, y = float(np.ravel(x)[0]), float(np.ravel(y)[0])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise GeometryError(f"gammapy import: source at (ra, dec) = ({ra:.4f}, "
                                f"{dec:.4f}) is outside the exposure cube's projection")
        x = min(max(x, 0.0), g.nx - 1.0)
        y = min(max(y, 0.0), g.ny - 1.0)
        x0, y0 = min(int(x), g.nx - 2) if g.nx > 1 else 0, min(int(y), g.ny - 2) if g.ny > 1 \
            else 0
        fx, fy = x - x0, y - y0
        cube = self.exposure
        x1, y1 = min(x0 + 1, g.nx - 1), min(y0 + 1, g.ny - 1)
        return (cube[:, y0, x0] * (1 - fx) * (1 - fy) + cube[:, y0, x1] * fx * (1 - fy)
                + cube[:, y1, x0] * (1 - fx) * fy + cube[:, y1, x1] * fx * fy)

    def bin_maps(self, src) -> np.ndarray:
        """(n_true_bins, n_pix): the map of ``src`` in each true-energy bin (exposure x
        PSF at the bin's centre, integrated over each pixel), cm2 s."""
        from ..srcmap import extended_source_map, point_source_map

        kind = src.spatial_model
        if kind not in ("PointSource", "RadialGaussian", "RadialDisk"):
            raise ModelError(f"source {src.name!r}: a state imported from Gammapy makes maps "
                             f"of PointSource, RadialGaussian and RadialDisk sources, not "
                             f"{kind!r}")
        ra, dec = src.param("RA").physical, src.param("DEC").physical
        expo = self.exposure_at(ra, dec)
        e = self.grid.centres
        if kind == "PointSource":
            m = point_source_map(self.geom, e, ra, dec, expo, self.psf_offsets,
                                 self.psf_values)
        else:
            size = src.param("Sigma" if kind == "RadialGaussian" else "Radius").physical
            m = extended_source_map(self.geom, e, (kind, size), expo, self.psf_offsets,
                                    self.psf_values, ra=ra, dec=dec)
        return np.asarray(m, dtype=np.float64).reshape(e.size, -1)

    def __call__(self, src, i=0):
        if self.background is not None and src.name == self.background[0] and \
                map_key(src) == self.background[1]:
            return self.background[2]
        mk = json.dumps(src.spatial_key(), sort_keys=True, default=str)
        hit = self._memo.get(mk)
        if hit is not None:
            return hit
        m = self.grid.spread(self.bin_maps(src))
        m.setflags(write=False)
        if len(self._memo) >= self.MEMO_MAX:
            self._memo.pop(next(iter(self._memo)))
        self._memo[mk] = m
        return m


# -------------------------------------------------------------------------------------
# the true-energy grid
# -------------------------------------------------------------------------------------
_GL = 0.5 / math.sqrt(3.0)       # Gauss-Legendre 2-point abscissae: mid -+ this x width


class TrueGrid:
    """fermixr's true-energy nodes for Gammapy's true-energy bins.

    Gammapy predicts, in true bin j, F_j x M_j (F_j the spectrum integrated over the bin,
    M_j the exposure x PSF of the bin, constant across it) and then applies the
    dispersion kernel.  fermixr's likelihood integrates E dN/dE(E) S(E) over each interval
    between nodes with the trapezoid rule in ln E.  Here each true bin
    [t_j, t_{j+1}] holds two nodes at the 2-point Gauss-Legendre abscissae in ln E, and
    the bin edges are nodes where every map is 0: the trapezoid weights of the two inner
    nodes are then (ln t_{j+1} - ln t_j)(1 + 1/sqrt 3)/4 each, and the maps there are
    ``M_j x factor`` with ``factor = 2 / (1 + 1/sqrt 3)`` so that the node sum is the
    Gauss-Legendre rule for F_j x M_j (for a spectrum E^-Gamma its error is
    ((Gamma - 1) ln(t_{j+1}/t_j))^4 / 4320: 2.5e-5 for bins of 4 per decade at Gamma 2,
    4e-4 at Gamma 3; the trapezoid rule on the bin edges alone is off by
    ((Gamma - 1) ln(t_{j+1}/t_j))^2 / 12, 2.8% and 11%).
    Each of the three intervals of bin j goes through column j of the kernel: the
    response matrix has a column per interval.

    edges : (n + 1,) true bin edges, MeV; centres : (n,) the bins' centres (geometric
    means, as Gammapy's log axes); nodes : (3 n + 1,).
    """

    def __init__(self, edges, centres=None):
        t = np.asarray(edges, dtype=np.float64)
        if t.ndim != 1 or t.size < 2 or not np.all(np.diff(t) > 0) or t[0] <= 0:
            raise GeometryError(f"gammapy import: true-energy bin edges must increase from "
                                f"> 0 MeV; got {t!r}")
        self.edges = t
        self.centres = (np.sqrt(t[:-1] * t[1:]) if centres is None
                        else np.asarray(centres, dtype=np.float64))
        lt = np.log(t)
        mid, w = 0.5 * (lt[1:] + lt[:-1]), lt[1:] - lt[:-1]
        n = t.size - 1
        ln = np.empty(3 * n + 1)
        ln[0::3] = lt
        ln[1::3] = mid - _GL * w
        ln[2::3] = mid + _GL * w
        self.nodes = np.exp(ln)
        self.nodes[0::3] = t                  # the edges exactly
        self.factor = 2.0 / (1.0 + 2.0 * _GL)

    @property
    def n_bins(self) -> int:
        return self.edges.size - 1

    def spread(self, per_bin) -> np.ndarray:
        """(3 n + 1, ...) node maps of per-bin maps (n, ...)."""
        b = np.asarray(per_bin, dtype=np.float64)
        out = np.zeros((self.nodes.size,) + b.shape[1:])
        out[1::3] = self.factor * b
        out[2::3] = self.factor * b
        return out

    def drm(self, kernel) -> np.ndarray:
        """(n_meas, 3 n) response matrix of a kernel (n, n_meas) (the fraction of true
        bin j measured in bin i): each interval of bin j takes column j."""
        k = np.asarray(kernel, dtype=np.float64)
        return np.ascontiguousarray(np.repeat(k, 3, axis=0).T)

    def bin_weights(self) -> np.ndarray:
        """(n,): the counts of true bin j per unit of its per-bin map for dN/dE = 1, i.e.
        the rule's integral of 1 over the bin (t_{j+1} - t_j to ~1e-5)."""
        from ..likelihood.npred import model_counts

        unit = self.spread(np.ones(self.n_bins))
        c = model_counts(unit, self.nodes, np.ones(self.nodes.size))
        return c[0::3] + c[1::3] + c[2::3]


def background_true_counts(kernel, cube) -> np.ndarray:
    """True-bin counts t (n_true, n_pix) with kernel^T t = ``cube`` (n_meas, n_pix), so that
    the background, dispersed like every source, gives back its measured cube: the
    solution nearest (least squares) to the cube shared out by the kernel.  An error when
    the kernel cannot reproduce the cube (a measured bin no true bin reaches)."""
    k = np.asarray(kernel, dtype=np.float64)
    b = np.asarray(cube, dtype=np.float64)
    reach = k.sum(axis=0)
    if np.any((reach <= 0) & np.any(b != 0, axis=1)):
        bad = int(np.flatnonzero((reach <= 0) & np.any(b != 0, axis=1))[0])
        raise FileFormatError(f"gammapy import: EDISP: no true-energy bin reaches measured "
                              f"bin {bad}, where the background is not 0")
    share = np.where(reach > 0, 1.0 / np.where(reach > 0, reach, 1.0), 0.0)
    t0 = k @ (b * share[:, None])
    t = t0 + np.linalg.pinv(k.T) @ (b - k.T @ t0)
    resid = np.abs(k.T @ t - b)
    if np.any(resid > 1e-9 * (np.abs(b) + np.abs(b).max(initial=0.0) * 1e-3)):
        raise FileFormatError("gammapy import: EDISP: the dispersion kernel cannot give "
                              "back the background cube (its rows are not independent)")
    return t


# -------------------------------------------------------------------------------------
# energy dispersion
# -------------------------------------------------------------------------------------
def _overlap(reco_edges, true_edges):
    """(n_true, n_reco) fraction of each true bin (linear in E) inside each reco bin:
    Gammapy's diagonal response."""
    a0, a1 = reco_edges[:-1][None], reco_edges[1:][None]
    b0, b1 = true_edges[:-1][:, None], true_edges[1:][:, None]
    return np.clip(np.fmin(a1, b1) - np.fmax(a0, b0), 0.0, None) / (b1 - b0)


def _true_axis(exp_edges, exp_nodes):
    """Edges of the exposure's true-energy bins: given, or about its nodes as Gammapy's
    log axes have them (geometric midpoints, half a step beyond the end nodes)."""
    if exp_edges is not None:
        return np.asarray(exp_edges, dtype=np.float64)
    le = np.log(np.asarray(exp_nodes, dtype=np.float64))
    if le.size < 2:
        raise GeometryError("gammapy import: an exposure at one true energy has no bins")
    mid = 0.5 * (le[1:] + le[:-1])
    return np.exp(np.concatenate([[2 * le[0] - mid[0]], mid, [2 * le[-1] - mid[-1]]]))


def _kernel(edisp, edges, true_edges, path):
    """(n_true, n_meas): the fraction of each true bin in each measured bin: the EDISP
    kernel at the grid's centre, or without one Gammapy's diagonal response (overlap)."""
    if edisp is None:
        return _overlap(edges, true_edges)
    _, k_true = edisp.axis("energy_true")
    _, e_reco_edges = edisp.axis("energy")
    if e_reco_edges is None or e_reco_edges.size != edges.size or \
            not np.allclose(e_reco_edges, edges, rtol=1e-5):
        raise FileFormatError(f"{path}: HDU EDISP: its reconstructed-energy bins do not "
                              "match the COUNTS bins")
    k = np.asarray(edisp.data, dtype=np.float64)
    if k.ndim == 4:              # (true, reco, ny, nx): the kernel at the grid's centre
        k = k[:, :, k.shape[2] // 2, k.shape[3] // 2]
    if k.shape[0] != true_edges.size - 1 or (
            k_true is not None and (k_true.size != true_edges.size
                                    or not np.allclose(k_true, true_edges, rtol=1e-5))):
        raise FileFormatError(
            f"{path}: HDU EDISP: its true-energy bins ({k.shape[0]}) are not the "
            f"EXPOSURE's ({true_edges.size - 1} bins, {true_edges[0]:.4g}.."
            f"{true_edges[-1]:.4g} MeV)")
    return k


# -------------------------------------------------------------------------------------
# the state
# -------------------------------------------------------------------------------------
def _background_source(spatial_file):
    from ..model.build import source_from_dict

    return source_from_dict({"name": BACKGROUND_NAME, "SpatialModel": "MapCubeFunction",
                             "Spatial_Filename": str(spatial_file),
                             "SpectrumType": "ConstantValue",
                             "spectral_pars": {"Value": {"value": 1.0, "scale": 1.0,
                                                         "min": 0.0, "max": 100.0,
                                                         "free": True}}},
                            where="gammapy import")


def _template(geom, counts3, edges, attrs):
    import xarray as xr

    from ..geom.axes import EnergyAxis
    from ..geom.coords import geom_coords, sky_dims

    return xr.Dataset({"counts": (("energy",) + sky_dims(geom), counts3,
                                  {"units": "count"})},
                      coords=geom_coords(geom, EnergyAxis(edges)), attrs=dict(attrs))


def import_gammapy(path_or_files, *, width=None, center=None) -> AnalysisState:
    """The analysis state of Gammapy data (see the module docstring).

    path_or_files : a MapDataset FITS file (``MapDataset.write``'s layout); or the loose
        cubes, as a dict {counts, background, exposure, psf} of paths or a folder holding
        one file of each (e.g. ``fermi-3fhl-gc``).
    width : cut the counts, background (and masks) to ``width`` deg, or (lon width, lat
        width), around ``center`` (lon, lat in the map's frame; default its centre), as
        Gammapy's ``Map.cutout``; None: the whole map.
    """
    from ..geom.coords import geom_attrs
    from ..geom.frames import transform
    from ..io import gammapy_maps_read as R

    files = _loose_files(path_or_files)
    if files is None:
        path = Path(path_or_files)
        d = R.read_map_dataset(path)
        counts_map, bkg_map, exp_map = d["counts"], d["background"], d["exposure"]
        psf_map = d["psf"]
        rad, _ = psf_map.axis("rad")
        e_psf, _ = psf_map.axis("energy_true")
        arr = psf_map.data
        if arr.ndim == 4:            # (energy_true, rad, ny, nx): at the grid's centre
            arr = arr[:, :, arr.shape[2] // 2, arr.shape[3] // 2]
        psf = R.GtPsf(e_psf, rad, np.asarray(arr, dtype=np.float64).reshape(e_psf.size, -1))
        edisp = d["edisp"]
        masks = [m for m in (d["mask_safe"], d["mask_fit"]) if m is not None]
        origin = str(path)
        bkg_file = path
    else:
        counts_map = R.read_counts_cube(files["counts"])
        bkg_map = R.read_counts_cube(files["background"], what="background cube")
        exp_map = R.read_exposure_cube(files["exposure"])
        psf = R.read_gtpsf(files["psf"])
        edisp = None
        masks = []
        origin = json.dumps({k: str(v) for k, v in files.items()})
        bkg_file = files["background"]
    _, edges = counts_map.axis("energy")
    _, b_edges = bkg_map.axis("energy")
    if b_edges is None or b_edges.size != edges.size or not np.allclose(b_edges, edges,
                                                                         rtol=1e-5):
        raise GeometryError(f"gammapy import: the background cube's energy bins "
                            f"({bkg_map.path}) are not the counts cube's ({counts_map.path})")
    full = counts_map.geom
    _same_grid(full, bkg_map.geom, f"counts cube ({counts_map.path})",
               f"background cube ({bkg_map.path})")
    ys, xs = _cutout_slices(full, center, width)
    geom = _sub_geom(full, ys, xs)
    counts3 = np.asarray(counts_map.data[:, ys, xs], dtype=np.float64)
    bkg3 = np.asarray(bkg_map.data[:, ys, xs], dtype=np.float64)
    nb = edges.size - 1
    ny, nx = counts3.shape[1:]
    counts = counts3.reshape(nb, -1)
    e_exp, e_exp_edges = exp_map.axis("energy_true")
    grid = TrueGrid(_true_axis(e_exp_edges, e_exp), e_exp)
    kernel = _kernel(edisp, edges, grid.edges, origin)
    drm = grid.drm(kernel)
    t_bkg = background_true_counts(kernel, bkg3.reshape(nb, -1))
    bmaps = grid.spread(t_bkg / grid.bin_weights()[:, None])
    wmap = None
    for m in masks:
        mk = np.asarray(m.data, dtype=np.float64)
        if mk.ndim == 2:
            mk = np.broadcast_to(mk, (nb,) + mk.shape)
        if mk.shape[0] != nb:
            raise FileFormatError(f"{m.path}: HDU {m.hdu}: {mk.shape[0]} energy planes for "
                                  f"{nb} counts bins")
        mk = (mk[:, ys, xs] > 0).astype(np.float64).reshape(nb, -1)
        wmap = mk if wmap is None else wmap * mk
    if wmap is not None and np.all(wmap == 1.0):
        wmap = None
    bkg_src = _background_source(bkg_file)
    key = map_key(bkg_src)
    bmaps.setflags(write=False)
    maker = ImportedMapMaker(geom, grid, exp_map.data, exp_map.geom, psf,
                             background=(BACKGROUND_NAME, key, bmaps))
    attrs = dict(geom_attrs(geom))
    attrs["gammapy_import"] = origin
    comp = Component(counts=counts, edges=edges, maps={BACKGROUND_NAME: bmaps},
                     nodes=grid.nodes, map_keys={BACKGROUND_NAME: key}, drm=drm, wmap=wmap,
                     sky_shape=(ny, nx),
                     geom_attrs=attrs, template=_template(geom, counts3, edges, attrs))
    lon_c, lat_c = geom.pix_to_world((nx - 1) / 2.0, (ny - 1) / 2.0)
    ra, dec = transform(np.atleast_1d(float(np.ravel(lon_c)[0])),
                        np.atleast_1d(float(np.ravel(lat_c)[0])), geom.frame, "CEL")
    return AnalysisState(components=(comp,), model=SkyModel((bkg_src,)), map_maker=maker,
                         roi_center=(float(ra[0]), float(dec[0])), coordsys=geom.frame)
