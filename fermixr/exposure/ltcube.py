"""Livetime cube (gtltcube) from FT2 spacecraft history and good time intervals.

What is computed, following the Science Tools (Likelihood ``LikeExposure``, map_tools
``Exposure``, healpix ``CosineBinner``):

- an all-sky HEALPix grid (nside from ``binsz`` as gtltcube derives it: the smallest power
  of two with 12 nside^2 >= 41252 deg^2 / binsz^2, so 1 deg -> 64), RING or NESTED,
  celestial or Galactic;
- ``int(1/dcostheta)`` bins in sqrt(1 - cos theta) from cos theta = 0 to 1 (0.025 -> 40
  bins; the Crab reference file has 20 bins, i.e. dcostheta = 0.05), theta the angle of the
  sky direction to the spacecraft z axis, bin 0 next to cos theta = 1;
- for every FT2 interval with LIVETIME > 0: its livetime times the fraction of
  [START, STOP] covered by the GTIs is added to every pixel with cos theta > 0 and, when
  ``zmax < 180``, an angle to that interval's zenith direction below ``zmax`` (a pixel is
  counted or not as a whole, per interval, as gtltcube does);
- the second table (WEIGHTED_EXPOSURE) gets that livetime times the livetime fraction
  LIVETIME / (STOP - START) of the interval;
- with ``phibins > 0`` also bins in the azimuth of the direction about the spacecraft z
  axis measured from its x axis, folded to 0..45 deg as gtltcube folds it.

The result is exact (no approximation): the kernel walks HEALPix rings and visits only
pixels that can be above the horizon of the instrument, of the zenith cut and of the
region, testing each visited pixel exactly; ``tests/test_ltcube_compute.py`` checks it
against the brute-force per-row x per-pixel computation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import FileFormatError, GeometryError, SelectionError
from ..io.ft2 import FT2_LTCUBE_COLUMNS, FT2_PHI_COLUMNS, ft2_info, iter_ft2_chunks
from ..select.gti import check_ft2_coverage
from ..io.ltcube import (
    THETABIN_SQRT,
    make_ltcube_dataset,
    nbins_from_dcostheta,
    nside_from_binsz,
)
from . import _kernels

__all__ = [
    "compute_ltcube",
    "compute_ltcube_reference",
    "ring_geometry",
    "prepare_rows",
]

_DEG = math.pi / 180.0


# --------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------

def _cel_to_gal_matrix() -> np.ndarray:
    """Rotation taking J2000 equatorial unit vectors to Galactic ones."""
    from astropy.coordinates import FK5, Galactic, SkyCoord
    import astropy.units as u

    basis = SkyCoord(ra=[0.0, 90.0, 0.0] * u.deg, dec=[0.0, 0.0, 90.0] * u.deg,
                     frame=FK5(equinox="J2000"))
    g = basis.transform_to(Galactic())
    l = g.l.rad
    b = g.b.rad
    cols = np.stack([np.cos(b) * np.cos(l), np.cos(b) * np.sin(l), np.sin(b)])
    return cols  # column j = image of basis vector j


def _unit(lon_deg, lat_deg):
    lon = np.asarray(lon_deg, dtype=np.float64) * _DEG
    lat = np.asarray(lat_deg, dtype=np.float64) * _DEG
    cl = np.cos(lat)
    return cl * np.cos(lon), cl * np.sin(lon), np.sin(lat)


@dataclass(frozen=True)
class RingGeometry:
    """HEALPix ring layout and pixel unit vectors (RING order, map frame)."""

    nside: int
    frame: str
    ring_first: np.ndarray
    ring_npix: np.ndarray
    ring_z: np.ndarray
    ring_r: np.ndarray
    ring_phi0: np.ndarray
    ring_invdphi: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    rotation: np.ndarray | None  # celestial -> map frame (None: identity)

    @property
    def npix(self) -> int:
        return 12 * self.nside * self.nside

    def kernel_arrays(self) -> dict:
        return dict(ring_first=self.ring_first, ring_npix=self.ring_npix, ring_z=self.ring_z,
                    ring_r=self.ring_r, ring_phi0=self.ring_phi0,
                    ring_invdphi=self.ring_invdphi, px=self.px, py=self.py, pz=self.pz)


def ring_geometry(nside: int, frame: str = "CEL") -> RingGeometry:
    """Ring table of a HEALPix grid: first pixel, pixel count, z = cos(colatitude),
    sin(colatitude), azimuth of the first pixel and pixels per radian of every ring."""
    import healpy as hp

    if nside < 1 or nside & (nside - 1):
        raise GeometryError(f"nside must be a power of two, got {nside}")
    nring = 4 * nside - 1
    start, npx, ct, st, _shifted = hp.ringinfo(nside, np.arange(1, nring + 1))
    start = np.asarray(start, dtype=np.int64)
    npx = np.asarray(npx, dtype=np.int64)
    phi0 = np.asarray(hp.pix2ang(nside, start)[1], dtype=np.float64)
    x, y, z = hp.pix2vec(nside, np.arange(12 * nside * nside))
    rot = None if frame == "CEL" else _cel_to_gal_matrix()
    return RingGeometry(
        nside=nside, frame=frame, ring_first=start, ring_npix=npx,
        ring_z=np.asarray(ct, dtype=np.float64), ring_r=np.asarray(st, dtype=np.float64),
        ring_phi0=phi0, ring_invdphi=npx / (2.0 * math.pi),
        px=np.ascontiguousarray(x, dtype=np.float64), py=np.ascontiguousarray(y, dtype=np.float64),
        pz=np.ascontiguousarray(z, dtype=np.float64), rotation=rot,
    )


def _region_arcs(geom: RingGeometry, region):
    """Per-ring (lo, cnt) index arcs covering the pixels whose centre lies within the
    region, and the RING-order mask of those pixels."""
    ra, dec, radius = (float(v) for v in region)
    if not (0.0 < radius <= 180.0):
        raise GeometryError(f"region radius must be in (0, 180] deg, got {radius}")
    c = np.array(_unit(ra, dec))
    if geom.rotation is not None:
        c = geom.rotation @ c
    mask = (geom.px * c[0] + geom.py * c[1] + geom.pz * c[2]) > math.cos(radius * _DEG)
    nring = geom.ring_first.size
    lo = np.zeros(nring, dtype=np.int64)
    cnt = np.zeros(nring, dtype=np.int64)
    for r in range(nring):
        n = int(geom.ring_npix[r])
        m = mask[geom.ring_first[r]: geom.ring_first[r] + n]
        k = int(m.sum())
        if k == 0:
            continue
        if k == n:
            cnt[r] = n
            continue
        starts = np.nonzero(m & ~np.roll(m, 1))[0]
        if starts.size == 1:
            lo[r], cnt[r] = starts[0], k
        else:  # not one arc (cannot happen for a cap): cover the ring, mask afterwards
            cnt[r] = n
    return lo, cnt, mask


# --------------------------------------------------------------------------------------
# FT2 rows -> kernel inputs
# --------------------------------------------------------------------------------------

def _merge_gti(gti_start, gti_stop):
    s = np.atleast_1d(np.asarray(gti_start, dtype=np.float64))
    e = np.atleast_1d(np.asarray(gti_stop, dtype=np.float64))
    if s.shape != e.shape:
        raise SelectionError(f"gti_start ({s.size}) and gti_stop ({e.size}) differ in length")
    keep = e > s
    s, e = s[keep], e[keep]
    if s.size == 0:
        raise SelectionError("no good time interval (GTI) of positive length: the livetime "
                             "cube would be empty")
    o = np.argsort(s, kind="stable")
    s, e = s[o], e[o]
    ms, me = [s[0]], [e[0]]
    for a, b in zip(s[1:], e[1:]):
        if a <= me[-1]:
            if b > me[-1]:
                me[-1] = b
        else:
            ms.append(a)
            me.append(b)
    return np.array(ms), np.array(me)


def _gti_covered(t, gs, ge, cum):
    """Total GTI time before each t (GTIs merged and sorted; cum[i] = time in GTIs < i)."""
    i = np.searchsorted(gs, t, side="right") - 1
    ii = np.maximum(i, 0)
    inside = np.clip(t - gs[ii], 0.0, ge[ii] - gs[ii])
    return np.where(i >= 0, cum[ii] + inside, 0.0)


def prepare_rows(chunk: Mapping, gs: np.ndarray, ge: np.ndarray, *, phibins: int = 0,
                 rotation: np.ndarray | None = None, source: str = "FT2 chunk") -> dict:
    """Kernel inputs of the FT2 rows of ``chunk`` that add livetime: unit vectors of the
    boresight (z), zenith and (azimuth bins) x axis in the map frame, their cylindrical
    radius/azimuth, ``dt`` = LIVETIME x GTI overlap fraction and ``dtw`` = dt x
    LIVETIME/(STOP-START).  ``gs``/``ge`` are merged, sorted GTIs."""
    need = list(FT2_LTCUBE_COLUMNS) + (list(FT2_PHI_COLUMNS) if phibins else [])
    missing = [c for c in need if c not in chunk]
    if missing:
        raise FileFormatError(
            f"{source}: spacecraft rows lack column(s) {', '.join(missing)} needed for the "
            "livetime cube"
        )
    start = np.asarray(chunk["START"], dtype=np.float64)
    stop = np.asarray(chunk["STOP"], dtype=np.float64)
    live = np.asarray(chunk["LIVETIME"], dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(ge - gs)[:-1]])
    dur = stop - start
    ok = (live > 0.0) & (dur > 0.0) & (stop > gs[0]) & (start < ge[-1])
    idx = np.nonzero(ok)[0]
    start, stop, live, dur = start[idx], stop[idx], live[idx], dur[idx]
    frac = (_gti_covered(stop, gs, ge, cum) - _gti_covered(start, gs, ge, cum)) / dur
    frac = np.minimum(frac, 1.0)
    keep = frac > 0.0
    idx = idx[keep]
    dt = live[keep] * frac[keep]
    dtw = dt * (live[keep] / dur[keep])

    def vec(ra_col, dec_col):
        x, y, z = _unit(np.asarray(chunk[ra_col])[idx], np.asarray(chunk[dec_col])[idx])
        if rotation is not None:
            x, y, z = (rotation[0, 0] * x + rotation[0, 1] * y + rotation[0, 2] * z,
                       rotation[1, 0] * x + rotation[1, 1] * y + rotation[1, 2] * z,
                       rotation[2, 0] * x + rotation[2, 1] * y + rotation[2, 2] * z)
        return x, y, z

    zx, zy, zz = vec("RA_SCZ", "DEC_SCZ")
    nx, ny, nz = vec("RA_ZENITH", "DEC_ZENITH")
    if phibins:
        xx, xy, xz = vec("RA_SCX", "DEC_SCX")
        d = xx * zx + xy * zy + xz * zz  # make x orthogonal to z
        xx, xy, xz = xx - d * zx, xy - d * zy, xz - d * zz
        nrm = np.sqrt(xx * xx + xy * xy + xz * xz)
        xx, xy, xz = xx / nrm, xy / nrm, xz / nrm
    else:
        xx = xy = xz = np.zeros(idx.size)
    c = np.ascontiguousarray
    return dict(
        zx=c(zx), zy=c(zy), zz=c(zz), zrho=c(np.hypot(zx, zy)), zphi=c(np.arctan2(zy, zx)),
        nx=c(nx), ny=c(ny), nz=c(nz), nrho=c(np.hypot(nx, ny)), nphi=c(np.arctan2(ny, nx)),
        xx=c(xx), xy=c(xy), xz=c(xz), dt=c(dt), dtw=c(dtw),
    )


def _row_modes(rows, region_vec, region_radius, cosmin, zmax, use_zenith):
    """Per row: 0 when no pixel of the region can count, 1 when every region pixel is in
    view of the boresight and inside the zenith cut, 2 otherwise (whole sky: all 2)."""
    n = rows["dt"].size
    if region_vec is None:
        return np.full(n, 2, dtype=np.int8)
    cx, cy, cz = region_vec
    eps = 1e-6  # deg of safety
    az = np.degrees(np.arccos(np.clip(rows["zx"] * cx + rows["zy"] * cy + rows["zz"] * cz, -1, 1)))
    horizon = math.degrees(math.acos(cosmin))
    inside = az + region_radius < horizon - eps
    outside = az - region_radius > horizon + eps
    if use_zenith:
        an = np.degrees(np.arccos(np.clip(rows["nx"] * cx + rows["ny"] * cy + rows["nz"] * cz, -1, 1)))
        inside &= an + region_radius < zmax - eps
        outside |= an - region_radius > zmax + eps
    mode = np.full(n, 2, dtype=np.int8)
    mode[inside] = 1
    mode[outside] = 0
    return mode


def _fill(out, geom_arrays, reg_lo, reg_cnt, use_region, rows, *, cosmin, nbins, coszmax,
          use_zenith, phibins, parallel, region_vec=None, region_radius=0.0, zmax=180.0):
    if rows["dt"].size == 0:
        return out
    row_mode = _row_modes(rows, region_vec, region_radius, cosmin, zmax, use_zenith)
    kern = _kernels.ring_fill_parallel if parallel else _kernels.ring_fill_serial
    nring = geom_arrays["ring_first"].size
    kern(**geom_arrays, reg_lo=reg_lo, reg_cnt=reg_cnt, use_region=use_region, **rows,
         row_mode=row_mode, cosmin=cosmin, nbins=nbins, sqrt_bins=True, coszmax=coszmax,
         use_zenith=use_zenith, phibins=phibins, ntask=min(nring, 64), out=out)
    return out


def _fill_task(geom_arrays, reg_lo, reg_cnt, use_region, rows, params):
    """dask task: the partial cube (RING order) of one block of prepared rows."""
    out = np.zeros((geom_arrays["px"].size, params["ncol"], 2))
    return _fill(out, geom_arrays, reg_lo, reg_cnt, use_region, rows,
                 cosmin=params["cosmin"], nbins=params["nbins"], coszmax=params["coszmax"],
                 use_zenith=params["use_zenith"], phibins=params["phibins"],
                 parallel=params["parallel"], region_vec=params["region_vec"],
                 region_radius=params["region_radius"], zmax=params["zmax"])


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------

def _checked(chunks, stats):
    """Chunks given as mappings: rows with NaN pointing or negative livetime dropped, their
    time span recorded in ``stats`` (as :func:`iter_ft2_chunks` does for files)."""
    from ..io.ft2 import drop_bad_ft2_rows

    for chunk in chunks:
        chunk = {k: np.asarray(v) for k, v in chunk.items()}
        yield drop_bad_ft2_rows(chunk, stats)
    if stats.get("rows_dropped"):
        import warnings

        why = ", ".join(f"{k}: {v}" for k, v in stats["dropped_by"].items())
        warnings.warn(f"spacecraft rows: dropped {stats['rows_dropped']} of "
                      f"{stats['rows_read']} with NaN or negative values ({why}); "
                      f"{stats['livetime_dropped']:.1f} s of livetime lost", stacklevel=3)


def _chunks_and_total(ft2, columns, chunk_rows, tmin, tmax, stats):
    if isinstance(ft2, Mapping):
        return (_checked([ft2], stats), int(np.asarray(ft2["START"]).size), "FT2 table")
    if isinstance(ft2, (str, bytes)) or hasattr(ft2, "__fspath__") or (
            isinstance(ft2, (list, tuple)) and ft2 and not isinstance(ft2[0], Mapping)):
        from ..io.ft2 import check_ft2_columns

        files = check_ft2_columns(ft2, columns)
        total = sum(ft2_info(f)["nrows"] for f in files)
        it = iter_ft2_chunks(files, columns, chunk_rows=chunk_rows, tmin=tmin, tmax=tmax,
                             stats=stats)
        return it, total, ", ".join(str(f) for f in files)
    if isinstance(ft2, Iterable):
        return _checked(ft2, stats), None, "FT2 chunks"
    raise TypeError(
        f"ft2 must be an FT2 file spec (path, list, @list) or an iterable of chunk dicts; "
        f"got {type(ft2).__name__}"
    )


def compute_ltcube(
    ft2,
    gti_start,
    gti_stop,
    *,
    zmax: float = 180.0,
    nside: int | None = None,
    binsz: float = 1.0,
    dcostheta: float = 0.025,
    phibins: int = 0,
    frame: str = "CEL",
    ordering: str = "NESTED",
    region=None,
    weighted: bool = True,
    progress=None,
    client=None,
    chunk_rows: int = 250_000,
    parallel: bool = True,
    ft2_tolerance: float = 1.0,
) -> xr.Dataset:
    """Livetime cube of the FT2 history ``ft2`` within the GTIs (gtltcube).

    ``ft2``: FT2 file(s) (path, list, ``@list``, glob) or an iterable of chunk dicts of
    numpy arrays with columns START, STOP, LIVETIME, RA_SCZ, DEC_SCZ, RA_ZENITH,
    DEC_ZENITH (+ RA_SCX, DEC_SCX for ``phibins``), e.g. from
    :func:`fermixr.io.ft2.iter_ft2_chunks`.  ``zmax`` (deg): zenith cut, 180 for none.
    ``nside`` overrides ``binsz``.  ``region=(ra, dec, radius)`` (deg, celestial) computes
    only the pixels whose centre is within ``radius``: the others stay 0, the dataset keeps
    the whole sky and a boolean coordinate ``in_region`` marks the computed pixels.
    ``weighted=False``: the weighted table is not wanted; it is returned filled with NaN
    so that it cannot be used by mistake (computing it costs nothing extra).
    ``progress(done_rows, total_rows)`` is called after each chunk (``total_rows`` None
    for an iterable).  ``client``: a
    ``dask.distributed.Client``; row blocks are then computed on its workers and summed.
    ``parallel``: use the multi-threaded kernel (numba threads) in this process.

    The GTIs must be covered by FT2 rows: time in them that no row spans (pieces longer
    than ``ft2_tolerance`` s) raises :class:`SelectionError` naming the intervals, since
    the cube would silently lack that livetime (cut the GTIs first with
    ``fermixr.select.gti.make_gti(..., trim_to_ft2=True)`` to accept it).  FT2 rows with NaN
    pointing or a negative livetime are dropped with a warning (``attrs``
    ``ft2_rows_dropped``, ``ft2_livetime_dropped_s``).

    Returns the ltcube contract (see :mod:`fermixr.io.ltcube`), float64 livetimes in s.
    """
    t0 = time.perf_counter()
    zmax = float(zmax)
    if not (0.0 < zmax <= 180.0):
        raise SelectionError(f"zmax must be in (0, 180] deg, got {zmax}")
    phibins = int(phibins)
    if phibins < 0:
        raise SelectionError(f"phibins must be >= 0, got {phibins}")
    frame = str(frame).upper()
    ordering = str(ordering).upper()
    if frame not in ("CEL", "GAL"):
        raise GeometryError(f"frame must be 'CEL' or 'GAL', got {frame!r}")
    if ordering not in ("NESTED", "RING"):
        raise GeometryError(f"ordering must be 'NESTED' or 'RING', got {ordering!r}")
    binsz_used = None if nside is not None else float(binsz)
    nside = int(nside) if nside is not None else nside_from_binsz(binsz)
    nbins = nbins_from_dcostheta(dcostheta)
    cosmin = 0.0
    ncol = nbins * (1 + phibins) if phibins else nbins
    gs, ge = _merge_gti(gti_start, gti_stop)

    geom = ring_geometry(nside, frame)
    garr = geom.kernel_arrays()
    nring = geom.ring_first.size
    region_vec, region_radius = None, 0.0
    if region is not None:
        reg_lo, reg_cnt, mask = _region_arcs(geom, region)
        use_region = True
        region_vec = np.array(_unit(region[0], region[1]))
        if geom.rotation is not None:
            region_vec = geom.rotation @ region_vec
        region_radius = float(region[2])
    else:
        reg_lo = np.zeros(nring, dtype=np.int64)
        reg_cnt = np.zeros(nring, dtype=np.int64)
        mask = None
        use_region = False
    use_zenith = zmax < 180.0
    coszmax = math.cos(zmax * _DEG)
    columns = list(FT2_LTCUBE_COLUMNS) + (list(FT2_PHI_COLUMNS) if phibins else [])
    stats: dict = {"coverage": []}
    chunks, total, source = _chunks_and_total(ft2, columns, chunk_rows, gs[0], ge[-1], stats)
    kw = dict(cosmin=cosmin, nbins=nbins, coszmax=coszmax, use_zenith=use_zenith,
              phibins=phibins, region_vec=region_vec, region_radius=region_radius, zmax=zmax)

    out, done, nrows_used = _fill_blocks(
        client, chunks, garr, reg_lo, reg_cnt, use_region, gs, ge, geom, phibins, ncol, kw,
        progress, total, source, parallel)

    cov = stats["coverage"]
    cs = np.concatenate([c[0] for c in cov]) if cov else np.zeros(0)
    ce = np.concatenate([c[1] for c in cov]) if cov else np.zeros(0)
    check_ft2_coverage(gs, ge, cs, ce, source=source, tol=ft2_tolerance)

    # RING -> requested ordering, split the two tables
    if mask is not None:
        out[~mask] = 0.0
    if ordering == "NESTED":
        import healpy as hp

        perm = hp.ring2nest(nside, np.arange(geom.npix))
        res = np.empty_like(out)
        res[perm] = out
        if mask is not None:
            m2 = np.empty_like(mask)
            m2[perm] = mask
            mask = m2
    else:
        res = out
    exp = res[..., 0]
    wexp = res[..., 1] if weighted else np.full(res.shape[:2], np.nan)
    if phibins:
        exp = exp[:, nbins:].reshape(geom.npix, phibins, nbins).transpose(0, 2, 1)
        wexp = wexp[:, nbins:].reshape(geom.npix, phibins, nbins).transpose(0, 2, 1)
    attrs = {
        "zmin": 0.0,
        "binsz": binsz_used,
        "weighted": bool(weighted),
        "ft2_rows_used": int(nrows_used),
        "ft2_rows_dropped": int(stats.get("rows_dropped", 0)),
        "ft2_livetime_dropped_s": float(stats.get("livetime_dropped", 0.0)),
        "creator": "fermixr.exposure.compute_ltcube",
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }
    if region is not None:
        attrs["region"] = [float(v) for v in region]
    ds = make_ltcube_dataset(
        np.ascontiguousarray(exp), np.ascontiguousarray(wexp), nside=nside, ordering=ordering,
        frame=frame, cosmin=cosmin, thetabin=THETABIN_SQRT, gti_start=gs, gti_stop=ge,
        tstart=float(gs[0]), tstop=float(ge[-1]), zmax=zmax, extra_attrs=attrs,
    )
    if mask is not None:
        ds = ds.assign_coords(in_region=("pix", mask))
    return ds


def _block_task(rows, geom_arrays, reg_lo, reg_cnt, use_region, params):
    """One block of prepared rows -> its partial cube (RING order); with the block's row
    count and number of rows used."""
    return _fill_task(geom_arrays, reg_lo, reg_cnt, use_region, rows, params)


def _fill_blocks(client, chunks, garr, reg_lo, reg_cnt, use_region, gs, ge, geom, phibins,
                 ncol, kw, progress, total, source, parallel):
    """Every block of FT2 rows to its partial cube -- here, or on the workers of
    ``client`` -- summed in block order (:func:`fermixr._parallel.ordered_map`), so that
    the cube is bit-identical whatever the number of workers, and equal to the one made
    without a cluster."""
    from .._parallel import ordered_map

    npix = geom.npix
    counts = {"done": 0, "used": 0}
    sizes: list[int] = []

    def blocks():
        for chunk in chunks:
            n = int(np.asarray(chunk["START"]).size) if "START" in chunk else 0
            rows = prepare_rows(chunk, gs, ge, phibins=phibins, rotation=geom.rotation,
                                source=source)
            counts["used"] += rows["dt"].size
            sizes.append(n)
            yield rows

    def mem(rows):      # the partial cube, the block's rows, the kernel's scratch
        return 2 * npix * ncol * 2 * 8 + 4 * sum(v.nbytes for v in rows.values()
                                                 if hasattr(v, "nbytes")) + 64 * 2**20

    def on_result(i, rows, part):
        counts["done"] += sizes[i]
        if progress is not None:
            progress(counts["done"], total)

    def add(acc, part):
        if acc is None:
            return part            # 0 + part == part: the first block starts the sum
        np.add(acc, part, out=acc)
        return acc

    params = dict(kw, ncol=ncol, parallel=True)
    local_params = dict(kw, ncol=ncol, parallel=parallel)

    def local(rows, g, lo, cnt, use, _params):
        return _fill_task(g, lo, cnt, use, rows, local_params)

    out = ordered_map(client, _block_task, blocks(), shared=(garr, reg_lo, reg_cnt,
                                                               use_region, params),
                      reduce=add, initial=None, memory=mem, on_result=on_result,
                      scatter=True, name="ltcube-rows", local=local)
    if out is None:
        out = np.zeros((npix, ncol, 2))
    done = counts["done"]
    if progress is not None and total is not None and done != total:
        progress(total, total)  # rows outside the GTI span were skipped unread
    return out, done, counts["used"]


def compute_ltcube_reference(ft2: Mapping, gti_start, gti_stop, *, zmax=180.0, nside=16,
                             dcostheta=0.025, phibins=0, ordering="NESTED") -> xr.Dataset:
    """Slow exact version (every row x every pixel, numpy) for tests on small inputs.
    Celestial frame, whole sky."""
    nbins = nbins_from_dcostheta(dcostheta)
    gs, ge = _merge_gti(gti_start, gti_stop)
    geom = ring_geometry(nside, "CEL")
    rows = prepare_rows(ft2, gs, ge, phibins=phibins)
    pvec = np.stack([geom.px, geom.py, geom.pz], axis=1)
    o, w = _kernels.ltcube_fill_reference(
        pvec, np.stack([rows["zx"], rows["zy"], rows["zz"]], 1),
        np.stack([rows["nx"], rows["ny"], rows["nz"]], 1),
        np.stack([rows["xx"], rows["xy"], rows["xz"]], 1), rows["dt"], rows["dtw"],
        0.0, nbins, True, math.cos(float(zmax) * _DEG), float(zmax) < 180.0, phibins)
    if ordering.upper() == "NESTED":
        import healpy as hp

        perm = hp.ring2nest(nside, np.arange(geom.npix))
        o2, w2 = np.empty_like(o), np.empty_like(w)
        o2[perm], w2[perm] = o, w
        o, w = o2, w2
    if phibins:
        o = o[:, nbins:].reshape(-1, phibins, nbins).transpose(0, 2, 1)
        w = w[:, nbins:].reshape(-1, phibins, nbins).transpose(0, 2, 1)
    return make_ltcube_dataset(o, w, nside=nside, ordering=ordering, gti_start=gs,
                               gti_stop=ge, zmax=float(zmax))
