"""WCS sky grids built as gtbin and Fermipy build them.

A :class:`WcsGeom` is a 2-D celestial or Galactic grid: reference direction ``CRVAL`` at
reference pixel ``CRPIX`` (gtbin and Fermipy: ``(npix + 1) / 2``, the map centre), pixel
increments ``CDELT1 = -binsz`` (longitude grows to the left) and ``CDELT2 = +binsz``, and
any projection wcslib knows (CAR, AIT, TAN, ...).  Pixel <-> sky conversions go through
astropy's wcslib, which is what gtbin's ``astro::SkyProj`` calls.  Array index ``[y, x]``
(0-based) is FITS pixel ``(x + 1, y + 1)``.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError
from .frames import normalize_frame, transform

_THREAD_MIN = 1_000_000  # events; below this one wcslib call is faster
_LON_NAME = {"CEL": "RA", "GAL": "GLON"}
_LAT_NAME = {"CEL": "DEC", "GAL": "GLAT"}


# the projection codes of wcslib (Calabretta & Greisen 2002, plus HEALPix ones)
_WCSLIB_PROJECTIONS = frozenset(
    "AZP SZP TAN STG SIN ARC ZPN ZEA AIR CYP CEA CAR MER SFL PAR MOL AIT COP COE COD COO "
    "BON PCO TSC CSC QSC HPX XPH".split()
)


def _ctype(name: str, proj: str) -> str:
    return f"{name:-<4}-{proj}"


def npix_for_width(roiwidth: float, binsz: float) -> int:
    """Pixels along a side of a map ``roiwidth`` wide with pixels of ``binsz`` [deg]:
    ``ceil(roiwidth / binsz)`` (the map covers at least the width asked for; Fermipy
    0.16's rule, see shared/reference/fermipy-0.16.md), float noise rounded away first
    (3.0 / 0.1 = 30.000000000000004 is 30 pixels), at least 1."""
    q = float(roiwidth) / float(binsz)
    r = round(q)
    n = r if abs(q - r) <= 1e-9 * max(1.0, abs(q)) else math.ceil(q)
    return max(1, int(n))


class WcsGeom:
    """A WCS grid.

    Parameters
    ----------
    center : (lon, lat) of the reference pixel [deg] in ``frame`` (CRVAL).
    npix : int or (nx, ny).
    binsz : pixel size [deg], or (bx, by); CDELT1 = -bx, CDELT2 = +by.
    proj : wcslib projection code (``"CAR"``, ``"AIT"``, ``"TAN"``, ...).
    frame : ``"CEL"`` or ``"GAL"``.
    crpix : (crpix1, crpix2), 1-based FITS convention; default ``((nx + 1)/2, (ny + 1)/2)``.
    rotation : CROTA2 [deg] (gtbin's ``axisrot``), default 0.
    cdelt : explicit signed (cdelt1, cdelt2), overriding ``binsz`` (for headers).
    """

    __slots__ = ("_lon", "_lat", "_nx", "_ny", "_cdelt", "_crpix", "_proj", "_frame",
                 "_rotation", "_wcs")

    def __init__(self, center, npix, binsz=None, proj="CAR", frame="CEL", crpix=None,
                 rotation=0.0, cdelt=None):
        try:
            lon, lat = (float(v) for v in center)
        except (TypeError, ValueError):
            raise GeometryError(f"WCS geometry: center must be (lon, lat) in deg, got {center!r}") from None
        if not (math.isfinite(lon) and math.isfinite(lat) and -90.0 <= lat <= 90.0):
            raise GeometryError(f"WCS geometry: invalid center ({lon}, {lat}); lat must be in [-90, 90]")
        nx, ny = _pair(npix, "npix")
        if nx != int(nx) or ny != int(ny) or nx < 1 or ny < 1:
            raise GeometryError(f"WCS geometry: npix must be positive integers, got {npix!r}")
        if cdelt is not None:
            c1, c2 = _pair(cdelt, "cdelt")
            if c1 == 0 or c2 == 0 or not (math.isfinite(c1) and math.isfinite(c2)):
                raise GeometryError(f"WCS geometry: cdelt must be finite and non-zero, got {cdelt!r}")
        else:
            if binsz is None:
                raise GeometryError("WCS geometry: give binsz (pixel size in deg)")
            bx, by = _pair(binsz, "binsz")
            if not (bx > 0 and by > 0 and math.isfinite(bx) and math.isfinite(by)):
                raise GeometryError(f"WCS geometry: binsz must be > 0 deg, got {binsz!r}")
            c1, c2 = -bx, by
        if crpix is None:
            crpix = ((nx + 1) / 2.0, (ny + 1) / 2.0)
        p1, p2 = _pair(crpix, "crpix")
        proj = str(proj).strip().upper()
        if len(proj) != 3 or not proj.isalpha():
            raise GeometryError(f"WCS geometry: projection must be a 3-letter wcslib code, got {proj!r}")
        self._lon = lon % 360.0
        self._lat = lat
        self._nx, self._ny = int(nx), int(ny)
        self._cdelt = (float(c1), float(c2))
        self._crpix = (float(p1), float(p2))
        self._proj = proj
        self._frame = normalize_frame(frame)
        self._rotation = float(rotation)
        self._wcs = None
        if proj not in _WCSLIB_PROJECTIONS:
            raise GeometryError(
                f"WCS geometry: unknown projection {proj!r}; wcslib knows "
                f"{', '.join(sorted(_WCSLIB_PROJECTIONS))}"
            )
        # the astropy WCS itself is built on first use: importing astropy.wcs costs a
        # quarter of a second, which a cached re-run should not pay

    # --- construction ------------------------------------------------------------------
    @classmethod
    def from_header(cls, header) -> "WcsGeom":
        """Geometry of a FITS image header (astropy ``Header`` or a mapping of cards);
        a third (energy) axis is ignored."""
        h = header

        def get(key, default=None):
            try:
                v = h[key]
            except (KeyError, IndexError):
                return default
            return default if v is None else v

        ctype1, ctype2 = str(get("CTYPE1", "")).strip(), str(get("CTYPE2", "")).strip()
        if not ctype1 or not ctype2:
            raise GeometryError("WCS header: CTYPE1/CTYPE2 missing")
        frame, proj = _parse_ctypes(ctype1, ctype2)
        nx, ny = get("NAXIS1"), get("NAXIS2")
        if nx is None or ny is None:
            raise GeometryError("WCS header: NAXIS1/NAXIS2 missing")
        if get("CDELT1") is not None and get("CDELT2") is not None:
            cdelt = (float(get("CDELT1")), float(get("CDELT2")))
            rot = float(get("CROTA2", 0.0) or 0.0)
        elif get("CD1_1") is not None:
            cd12, cd21 = float(get("CD1_2", 0.0)), float(get("CD2_1", 0.0))
            if cd12 != 0.0 or cd21 != 0.0:
                raise GeometryError("WCS header: rotated CD matrices are not supported; use CDELT/CROTA2")
            cdelt = (float(get("CD1_1")), float(get("CD2_2")))
            rot = 0.0
        else:
            raise GeometryError("WCS header: neither CDELT1/CDELT2 nor CD1_1/CD2_2 present")
        for k in ("PC1_2", "PC2_1"):
            if float(get(k, 0.0) or 0.0) != 0.0:
                raise GeometryError(f"WCS header: {k} != 0 (rotated PC matrix) is not supported")
        crpix = (float(get("CRPIX1")), float(get("CRPIX2")))
        center = (float(get("CRVAL1")), float(get("CRVAL2")))
        return cls(center, (int(nx), int(ny)), proj=proj, frame=frame, crpix=crpix,
                   rotation=rot, cdelt=cdelt)

    @classmethod
    def from_config(cls, binning: dict, center_radec) -> "WcsGeom":
        """Geometry from Fermipy's ``binning`` options and the ROI centre (ra, dec) [deg].

        Uses ``binsz`` (0.1), ``roiwidth`` (10), ``npix`` (default
        :func:`npix_for_width`), ``proj`` (AIT), ``coordsys`` (CEL).  For ``coordsys: GAL`` the centre is
        converted as Fermipy does (astropy, ICRS -> Galactic).
        """
        from .frames import fermipy_cel_to_gal

        b = dict(binning or {})
        binsz = float(b.get("binsz") if b.get("binsz") is not None else 0.1)
        if not binsz > 0:
            raise GeometryError(f"binning.binsz must be > 0 deg, got {b.get('binsz')!r}")
        npix = b.get("npix")
        if npix is None:
            roiwidth = float(b.get("roiwidth") if b.get("roiwidth") is not None else 10.0)
            if not roiwidth > 0:
                raise GeometryError(f"binning.roiwidth must be > 0 deg, got {b.get('roiwidth')!r}")
            npix = npix_for_width(roiwidth, binsz)
        proj = b.get("proj") or "AIT"
        frame = normalize_frame(b.get("coordsys") or "CEL")
        ra, dec = (float(v) for v in center_radec)
        if frame == "GAL":
            lon, lat = fermipy_cel_to_gal(ra, dec)
        else:
            lon, lat = ra, dec
        return cls((lon, lat), npix, binsz, proj=proj, frame=frame)

    # --- properties --------------------------------------------------------------------
    @property
    def frame(self) -> str:
        return self._frame

    @property
    def proj(self) -> str:
        return self._proj

    @property
    def center(self) -> tuple[float, float]:
        """(CRVAL1, CRVAL2) [deg] in the geometry frame."""
        return (self._lon, self._lat)

    @property
    def npix(self) -> tuple[int, int]:
        return (self._nx, self._ny)

    @property
    def nx(self) -> int:
        return self._nx

    @property
    def ny(self) -> int:
        return self._ny

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape (ny, nx)."""
        return (self._ny, self._nx)

    @property
    def cdelt(self) -> tuple[float, float]:
        return self._cdelt

    @property
    def crpix(self) -> tuple[float, float]:
        return self._crpix

    @property
    def rotation(self) -> float:
        return self._rotation

    @property
    def binsz(self) -> float:
        """Pixel size [deg] (|CDELT2|; see :attr:`cdelt` for non-square pixels)."""
        return abs(self._cdelt[1])

    @property
    def width(self) -> tuple[float, float]:
        return (self._nx * abs(self._cdelt[0]), self._ny * abs(self._cdelt[1]))

    @property
    def wcs(self):
        """astropy 2-D ``WCS`` of the grid (built once)."""
        if self._wcs is None:
            import warnings

            from astropy.wcs import WCS

            hdr = self.to_header()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    w = WCS(hdr)
                    w.wcs.set()
            except Exception as exc:  # wcslib raises several types
                raise GeometryError(
                    f"WCS geometry: wcslib rejects projection {self._proj!r} with this grid: {exc}"
                ) from None
            self._wcs = w
        return self._wcs

    # --- FITS header ---------------------------------------------------------------------
    def to_header(self) -> dict:
        """FITS cards of the grid, as gtbin writes them (dict in card order)."""
        c = {
            "NAXIS": 2,
            "NAXIS1": self._nx,
            "NAXIS2": self._ny,
            "CTYPE1": _ctype(_LON_NAME[self._frame], self._proj),
            "CRPIX1": self._crpix[0],
            "CRVAL1": self._lon,
            "CDELT1": self._cdelt[0],
            "CUNIT1": "deg",
            "CTYPE2": _ctype(_LAT_NAME[self._frame], self._proj),
            "CRPIX2": self._crpix[1],
            "CRVAL2": self._lat,
            "CDELT2": self._cdelt[1],
            "CUNIT2": "deg",
            "CROTA2": self._rotation,
        }
        if self._frame == "CEL":
            c["EQUINOX"] = 2000.0
            c["RADESYS"] = "FK5"
        return c

    # --- pixels <-> sky ------------------------------------------------------------------
    def pix_to_world(self, x, y, frame=None):
        """(lon, lat) [deg] of 0-based pixel coordinates (x, y); NaN outside the
        projection's domain.  ``frame`` defaults to the geometry frame."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        import warnings

        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore")
            lon, lat = self.wcs.wcs_pix2world(x, y, 0)
        lon = np.where(np.isfinite(lon), np.mod(lon, 360.0), np.nan)
        if frame is not None and normalize_frame(frame) != self._frame:
            ok = np.isfinite(lon) & np.isfinite(lat)
            lo, la = np.full(lon.shape, np.nan), np.full(lat.shape, np.nan)
            if ok.any():
                lo[ok], la[ok] = transform(lon[ok], lat[ok], self._frame, frame)
            lon, lat = lo, la
        return lon, lat

    def pixel_centers(self, frame=None):
        """(lon, lat) [deg] of every pixel centre, arrays of shape (ny, nx)."""
        y, x = np.mgrid[0:self._ny, 0:self._nx].astype(np.float64)
        return self.pix_to_world(x, y, frame)

    def world_to_pix(self, lon, lat, frame=None):
        """0-based pixel coordinates (x, y) (floats) of directions (lon, lat) [deg] given
        in ``frame`` (default: the geometry frame; CEL<->GAL with the Science Tools'
        rotation).  NaN where the projection is undefined."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if frame is not None and normalize_frame(frame) != self._frame:
            lon, lat = transform(lon, lat, frame, self._frame)
            lon, lat = np.asarray(lon), np.asarray(lat)
        x1, y1 = self._world_to_fits_pix(lon, lat)
        return x1 - 1.0, y1 - 1.0

    def _world_to_fits_pix(self, lon, lat):
        """1-based FITS pixel coordinates from wcslib (as ``astro::SkyProj::sph2pix``).

        Large inputs are projected in chunks on threads (wcslib releases the GIL), each
        thread with its own copy of the WCS; the result is the same as one call.
        """
        import copy
        import os
        import warnings

        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        n = lon.size
        nthreads = min(os.cpu_count() or 1, 8)
        if n < _THREAD_MIN or nthreads < 2 or lon.ndim != 1:
            with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                warnings.simplefilter("ignore")
                x1, y1 = self.wcs.wcs_world2pix(lon, lat, 1)
            return np.asarray(x1, dtype=np.float64), np.asarray(y1, dtype=np.float64)
        from concurrent.futures import ThreadPoolExecutor

        x1 = np.empty(n, dtype=np.float64)
        y1 = np.empty(n, dtype=np.float64)
        bounds = np.linspace(0, n, nthreads + 1).astype(np.int64)

        def work(k):
            w = copy.deepcopy(self.wcs)
            a, b = bounds[k], bounds[k + 1]
            with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                warnings.simplefilter("ignore")
                xx, yy = w.wcs_world2pix(lon[a:b], lat[a:b], 1)
            x1[a:b] = xx
            y1[a:b] = yy

        with ThreadPoolExecutor(nthreads) as ex:
            list(ex.map(work, range(nthreads)))
        return x1, y1

    def pixel_index(self, lon, lat, frame=None):
        """(ix, iy) integer array indices of the pixels holding (lon, lat), -1 outside.
        Pixel i covers FITS coordinates [i + 0.5, i + 1.5), gtbin's convention."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if frame is not None and normalize_frame(frame) != self._frame:
            lon, lat = transform(lon, lat, frame, self._frame)
        x1, y1 = self._world_to_fits_pix(np.asarray(lon), np.asarray(lat))
        ix = _fits_to_index(x1, self._nx)
        iy = _fits_to_index(y1, self._ny)
        out = (ix < 0) | (iy < 0)
        ix[out] = -1
        iy[out] = -1
        return ix, iy

    def contains(self, lon, lat, frame=None):
        """Boolean array: does the direction fall inside the map?"""
        ix, _ = self.pixel_index(lon, lat, frame)
        return ix >= 0

    # --- solid angle -------------------------------------------------------------------
    def solid_angle(self, method: str = "exact") -> np.ndarray:
        """Solid angle [sr] of every pixel, shape (ny, nx).

        ``"exact"``: area of the spherical quadrilateral through the four pixel corners
        (great-circle sides; exact to O(binsz^4) for every projection); pixels whose corners
        leave the projection's domain get 0.  ``"st"``: the Science Tools' approximation
        (``WcsMap2::solidAngle``: great-circle width between the left and right edge
        midpoints times the latitude difference of the top and bottom edge midpoints).
        """
        if method == "exact":
            yc, xc = np.mgrid[0:self._ny + 1, 0:self._nx + 1].astype(np.float64) - 0.5
            lon, lat = self.pix_to_world(xc, yc)
            v = _unit_vectors(lon, lat)
            a = v[:-1, :-1]
            b = v[:-1, 1:]
            c = v[1:, 1:]
            d = v[1:, :-1]
            om = _triangle_area(a, b, c) + _triangle_area(a, c, d)
            return np.where(np.isfinite(om), om, 0.0)
        if method == "st":
            y, x = np.mgrid[0:self._ny, 0:self._nx].astype(np.float64)
            ll, bl = self.pix_to_world(x - 0.5, y)
            lr, br = self.pix_to_world(x + 0.5, y)
            _, bb = self.pix_to_world(x, y - 0.5)
            _, bt = self.pix_to_world(x, y + 0.5)
            vl, vr = _unit_vectors(ll, bl), _unit_vectors(lr, br)
            dot = np.clip(np.sum(vl * vr, axis=-1), -1.0, 1.0)
            om = np.abs(np.arccos(dot) * np.radians(bt - bb))
            return np.where(np.isfinite(om), om, 0.0)
        raise GeometryError(f"solid_angle: method must be 'exact' or 'st', got {method!r}")

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Canonical JSON-able description (used for cache keys and dataset attrs)."""
        return {
            "type": "wcs",
            "frame": self._frame,
            "proj": self._proj,
            "crval": [self._lon, self._lat],
            "crpix": [self._crpix[0], self._crpix[1]],
            "cdelt": [self._cdelt[0], self._cdelt[1]],
            "npix": [self._nx, self._ny],
            "rotation": self._rotation,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "WcsGeom":
        if not isinstance(d, dict) or d.get("type") != "wcs":
            raise GeometryError(f"not a WCS geometry dict: {d!r}")
        try:
            return cls(tuple(d["crval"]), tuple(d["npix"]), proj=d["proj"], frame=d["frame"],
                       crpix=tuple(d["crpix"]), rotation=d.get("rotation", 0.0),
                       cdelt=tuple(d["cdelt"]))
        except KeyError as exc:
            raise GeometryError(f"WCS geometry dict lacks key {exc.args[0]!r}: {d!r}") from None

    def __eq__(self, other) -> bool:
        return isinstance(other, WcsGeom) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(repr(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        return (f"WcsGeom({self._frame} {self._proj}, center=({self._lon:.4f}, {self._lat:.4f}), "
                f"npix=({self._nx}, {self._ny}), binsz={self.binsz:g} deg)")


# --- helpers ---------------------------------------------------------------------------
def _pair(v, what):
    if np.ndim(v) == 0:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise GeometryError(f"WCS geometry: {what} must be a number or a pair, got {v!r}") from None
        return f, f
    vals = list(v)
    if len(vals) != 2:
        raise GeometryError(f"WCS geometry: {what} must be a number or a pair, got {v!r}")
    return float(vals[0]), float(vals[1])


def _parse_ctypes(ctype1: str, ctype2: str):
    def split(ct):
        parts = ct.split("-")
        name = parts[0].upper()
        proj = parts[-1].upper() if len(parts) > 1 else ""
        return name, proj

    n1, p1 = split(ctype1)
    n2, p2 = split(ctype2)
    if (n1, n2) == ("RA", "DEC"):
        frame = "CEL"
    elif (n1, n2) == ("GLON", "GLAT"):
        frame = "GAL"
    else:
        raise GeometryError(
            f"WCS header: CTYPE1/2 {ctype1!r}/{ctype2!r} are not RA/DEC or GLON/GLAT axes"
        )
    if p1 != p2 or len(p1) != 3:
        raise GeometryError(f"WCS header: inconsistent projections in {ctype1!r}/{ctype2!r}")
    return frame, p1


def _fits_to_index(p1, n):
    """gtbin's LinearBinner(0.5, n + 0.5, 1): index of FITS coordinate p1, -1 outside."""
    out = np.full(p1.shape, -1, dtype=np.int64)
    ok = (p1 >= 0.5) & (p1 < n + 0.5)
    out[ok] = ((p1[ok] - 0.5) / 1.0).astype(np.int64)
    return out


def _unit_vectors(lon, lat):
    lo, la = np.radians(lon), np.radians(lat)
    cb = np.cos(la)
    return np.stack([cb * np.cos(lo), cb * np.sin(lo), np.sin(la)], axis=-1)


def _triangle_area(a, b, c):
    # Van Oosterom & Strackee: tan(E/2) = |a.(b x c)| / (1 + a.b + b.c + c.a)
    num = np.abs(np.sum(a * np.cross(b, c), axis=-1))
    den = 1.0 + np.sum(a * b, axis=-1) + np.sum(b * c, axis=-1) + np.sum(c * a, axis=-1)
    return 2.0 * np.arctan2(num, den)
