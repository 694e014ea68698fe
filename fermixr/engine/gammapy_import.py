"""Gammapy data as a fermixr analysis state.

:func:`import_gammapy` turns a Gammapy ``MapDataset`` file, or the Science Tools' loose
cubes Gammapy reads (counts cube, predicted-background cube, exposure cube, gtpsf PSF
file, as in Gammapy's Fermi-LAT tutorial), into an
:class:`~fermixr.likelihood.roi.AnalysisState` on which fermixr's estimators (tsmap, sed,
fit, ...) run:

* one component: the counts on the file's WCS grid (optionally a cut-out), the bin edges as
  the true-energy nodes of the maps;
* the background cube as a source ``gammapy_background`` of fixed shape with a free norm
  (a ``ConstantValue`` spectrum, Value = 1): its node maps are the one solution of the
  node equations that reproduces the cube exactly in every bin (see
  :func:`background_node_maps`), so its predicted counts are the cube times the norm;
* a ``map_maker`` making the maps of point sources and of RadialGaussian / RadialDisk
  sources from the imported exposure (at the source, interpolated log-log in energy) and
  the imported PSF (per offset, linear in log energy between its energies), with fermixr's
  own source-map code (:func:`fermixr.srcmap.point_source_map`,
  :func:`fermixr.srcmap.extended_source_map`), at the state's true-energy nodes, so a test
  source's counts follow from its spectrum as every fermixr source's do;
* masks (``MASK_SAFE`` x ``MASK_FIT``) as likelihood weights of 0 and 1;
* energy dispersion: a MapDataset whose ``EDISP`` kernel only puts each true-energy bin
  where its energies lie (Gammapy's diagonal response, as its Fermi-LAT tutorial builds
  it) has none; a kernel on true-energy bins whose edges are the counts bin edges
  extended by whole bins at each end becomes the response matrix; any other kernel is
  refused with a clear error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, GeometryError, InputFileError, ModelError, RecipeError
from ..likelihood.roi import AnalysisState, Component, map_key
from ..model.skymodel import SkyModel

__all__ = ["import_gammapy", "background_node_maps", "ImportedMapMaker", "BACKGROUND_NAME"]

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
# the background
# -------------------------------------------------------------------------------------
def background_node_maps(cube, edges) -> np.ndarray:
    """Node maps S (n_bins + 1, n_pix) of a source with dN/dE = 1 whose predicted counts
    (fermixr's log-trapezoid rule, :mod:`fermixr.likelihood.npred`) are ``cube``
    (n_bins, n_pix) in every bin: with h_i = ln(E_{i+1}/E_i)/2 and T_k = E_k S_k,

        T_i + T_{i+1} = cube_i / h_i,

    n equations in n + 1 unknowns: every solution is T_k = (-1)^k T_0 + c_k; T_0 is the
    one closest (least squares) to the smooth T that splits each bin's value evenly
    between its edges.  Exact to rounding in each bin."""
    b = np.asarray(cube, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    nb = b.shape[0]
    h = 0.5 * np.log(e[1:] / e[:-1])
    q = b / h[:, None]                              # T_i + T_{i+1}
    c = np.zeros((nb + 1,) + b.shape[1:])
    for i in range(nb):
        c[i + 1] = q[i] - c[i]
    smooth = np.empty_like(c)
    smooth[0] = 0.5 * q[0]
    smooth[-1] = 0.5 * q[-1]
    if nb > 1:
        smooth[1:-1] = 0.25 * (q[:-1] + q[1:])
    sign = (-1.0) ** np.arange(nb + 1)
    t0 = np.sum(sign[:, None] * (smooth - c), axis=0) / (nb + 1)
    t = sign[:, None] * t0[None] + c
    return t / e[:, None]


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


def _loglog(e_nodes, values, e_out):
    """Positive values (n, ...) at ``e_nodes`` interpolated log-log to ``e_out`` (linear
    in log E held at the ends beyond them)."""
    v = np.asarray(values, dtype=np.float64)
    le = np.log(np.asarray(e_nodes, dtype=np.float64))
    lo = np.log(np.asarray(e_out, dtype=np.float64))
    if le.size == 1:
        return np.repeat(v[:1], lo.size, axis=0)
    j = np.clip(np.searchsorted(le, lo) - 1, 0, le.size - 2)
    w = np.clip((lo - le[j]) / (le[j + 1] - le[j]), 0.0, 1.0)
    a, b = v[j], v[j + 1]
    shape = (-1,) + (1,) * (v.ndim - 1)
    w = w.reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.exp(np.log(a) * (1 - w) + np.log(b) * w)
    return np.where((a > 0) & (b > 0), ll, a * (1 - w) + b * w)


class ImportedMapMaker:
    """``maker(src, i)``: the (n_nodes, n_pix) map of ``src`` on the imported grid, from
    the imported exposure and PSF (see the module docstring); the background source gives
    its own node maps.  Maps are kept per spatial model (read-only)."""

    MEMO_MAX = 64

    def __init__(self, geom, nodes, exposure, exposure_geom, exposure_energies, psf,
                 background=None):
        self.geom = geom
        self.nodes = np.asarray(nodes, dtype=np.float64)
        self.exposure = np.asarray(exposure, dtype=np.float64)
        self.exposure_geom = exposure_geom
        self.exposure_energies = np.asarray(exposure_energies, dtype=np.float64)
        self.psf_offsets = np.asarray(psf.theta, dtype=np.float64)
        self.psf_values = np.ascontiguousarray(
            _interp_rows_log_energy(psf.energies, np.asarray(psf.psf, dtype=np.float64),
                                    self.nodes))
        self.background = background          # (name, key, map) or None
        self._memo: dict = {}

    def exposure_at(self, ra, dec) -> np.ndarray:
        """Exposure (n_nodes,) cm2 s at (ra, dec) (deg ICRS): bilinear on the sky,
        log-log in energy."""
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
        v = (cube[:, y0, x0] * (1 - fx) * (1 - fy) + cube[:, y0, x1] * fx * (1 - fy)
             + cube[:, y1, x0] * (1 - fx) * fy + cube[:, y1, x1] * fx * fy)
        return _loglog(self.exposure_energies, v, self.nodes)

    def __call__(self, src, i=0):
        from ..srcmap import extended_source_map, point_source_map

        if self.background is not None and src.name == self.background[0] and \
                map_key(src) == self.background[1]:
            return self.background[2]
        mk = json.dumps(src.spatial_key(), sort_keys=True, default=str)
        hit = self._memo.get(mk)
        if hit is not None:
            return hit
        kind = src.spatial_model
        if kind not in ("PointSource", "RadialGaussian", "RadialDisk"):
            raise ModelError(f"source {src.name!r}: a state imported from Gammapy makes maps "
                             f"of PointSource, RadialGaussian and RadialDisk sources, not "
                             f"{kind!r}")
        ra, dec = src.param("RA").physical, src.param("DEC").physical
        expo = self.exposure_at(ra, dec)
        if kind == "PointSource":
            m = point_source_map(self.geom, self.nodes, ra, dec, expo, self.psf_offsets,
                                 self.psf_values)
        else:
            size = src.param("Sigma" if kind == "RadialGaussian" else "Radius").physical
            m = extended_source_map(self.geom, self.nodes, (kind, size), expo,
                                    self.psf_offsets, self.psf_values, ra=ra, dec=dec)
        m = np.asarray(m, dtype=np.float64).reshape(self.nodes.size, -1)
        m.setflags(write=False)
        if len(self._memo) >= self.MEMO_MAX:
            self._memo.pop(next(iter(self._memo)))
        self._memo[mk] = m
        return m


# -------------------------------------------------------------------------------------
# energy dispersion
# -------------------------------------------------------------------------------------
def _overlap(reco_edges, true_edges):
    """(n_true, n_reco) fraction of each true bin (linear in E) inside each reco bin:
    Gammapy's diagonal response."""
    a0, a1 = reco_edges[:-1][None], reco_edges[1:][None]
    b0, b1 = true_edges[:-1][:, None], true_edges[1:][:, None]
    return np.clip(np.fmin(a1, b1) - np.fmax(a0, b0), 0.0, None) / (b1 - b0)


def _dispersion(edisp, edges, path):
    """(nodes, drm or None) for a MapDataset's EDISP kernel map (None: no EDISP)."""
    if edisp is None:
        return edges, None
    e_true_nodes, e_true_edges = edisp.axis("energy_true")
    _, e_reco_edges = edisp.axis("energy")
    if e_reco_edges is None or e_reco_edges.size != edges.size or \
            not np.allclose(e_reco_edges, edges, rtol=1e-5):
        raise FileFormatError(f"{path}: HDU EDISP: its reconstructed-energy bins do not "
                              "match the COUNTS bins")
    k = np.asarray(edisp.data, dtype=np.float64)
    if k.ndim == 4:              # (true, reco, ny, nx): the kernel at the grid's centre
        k = k[:, :, k.shape[2] // 2, k.shape[3] // 2]
    if e_true_edges is None:
        le = np.log(e_true_nodes)
        mid = np.exp(0.5 * (le[1:] + le[:-1]))
        e_true_edges = np.concatenate([[np.exp(2 * le[0] - np.log(mid[0]))], mid,
                                       [np.exp(2 * le[-1] - np.log(mid[-1]))]])
    if np.allclose(k, _overlap(edges, e_true_edges), atol=1e-4):
        return edges, None      # Gammapy's diagonal response: no dispersion
    n_t, n_b = e_true_edges.size - 1, edges.size - 1
    n_extra, rem = divmod(n_t - n_b, 2)
    if rem == 0 and n_extra >= 0 and np.allclose(
            e_true_edges[n_extra:n_extra + n_b + 1], edges, rtol=1e-5):
        return e_true_edges, np.ascontiguousarray(k.T)
    raise FileFormatError(
        f"{path}: HDU EDISP: a dispersion kernel on true-energy bins "
        f"{e_true_edges[0]:.4g}..{e_true_edges[-1]:.4g} MeV ({n_t} bins) that are not the "
        f"COUNTS bins ({edges[0]:.4g}..{edges[-1]:.4g} MeV, {n_b}) extended by whole bins "
        "at each end; fermixr imports such kernels only on those bins (or Gammapy's "
        "diagonal response)")


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
    nodes, drm = _dispersion(edisp, edges, origin)
    n_extra = (nodes.size - edges.size) // 2
    bmaps = np.zeros((nodes.size, counts.shape[1]))
    bmaps[n_extra:n_extra + nb + 1] = background_node_maps(bkg3.reshape(nb, -1), edges)
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
    e_exp, _ = exp_map.axis("energy_true")
    bkg_src = _background_source(bkg_file)
    key = map_key(bkg_src)
    bmaps.setflags(write=False)
    maker = ImportedMapMaker(geom, nodes, exp_map.data, exp_map.geom, e_exp, psf,
                             background=(BACKGROUND_NAME, key, bmaps))
    attrs = dict(geom_attrs(geom))
    attrs["gammapy_import"] = origin
    comp = Component(counts=counts, edges=edges, maps={BACKGROUND_NAME: bmaps}, nodes=nodes,
                     map_keys={BACKGROUND_NAME: key}, drm=drm, wmap=wmap,
                     edisp_disable=(BACKGROUND_NAME,), sky_shape=(ny, nx),
                     geom_attrs=attrs, template=_template(geom, counts3, edges, attrs))
    lon_c, lat_c = geom.pix_to_world((nx - 1) / 2.0, (ny - 1) / 2.0)
    ra, dec = transform(np.atleast_1d(float(np.ravel(lon_c)[0])),
                        np.atleast_1d(float(np.ravel(lat_c)[0])), geom.frame, "CEL")
    return AnalysisState(components=(comp,), model=SkyModel((bkg_src,)), map_maker=maker,
                         roi_center=(float(ra[0]), float(dec[0])), coordsys=geom.frame)
