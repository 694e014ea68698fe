"""HEALPix sky grids (all-sky or a disk region), as Fermipy's ``projtype: HPX`` builds them.

A region holds the pixels whose *centres* lie within ``radius`` of the region centre
(``healpy.query_disc(..., inclusive=False)``, as Fermipy's ``DISK(lon,lat,radius)``
region strings select them), in increasing pixel-index order.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError
from .frames import normalize_frame, transform

_ORDERINGS = {"RING": "RING", "NESTED": "NESTED", "NEST": "NESTED"}


class HpxGeom:
    """A HEALPix grid.

    Parameters
    ----------
    nside : power of two (or give ``order``: nside = 2**order).
    ordering : ``"RING"`` or ``"NESTED"``.
    frame : ``"CEL"`` or ``"GAL"``.
    region : None (all sky) or (lon, lat, radius) [deg] in ``frame``, or a dict with those
        keys.
    """

    __slots__ = ("_nside", "_nest", "_frame", "_region", "_pix")

    def __init__(self, nside=None, ordering="RING", frame="CEL", region=None, order=None):
        if nside is None and order is None:
            raise GeometryError("HEALPix geometry: give nside or order")
        if order is not None:
            o = int(order)
            if o != order or not 0 <= o <= 29:
                raise GeometryError(f"HEALPix geometry: order must be an integer in [0, 29], got {order!r}")
            ns = 2 ** o
            if nside is not None and int(nside) != ns:
                raise GeometryError(f"HEALPix geometry: nside {nside} and order {order} disagree")
            nside = ns
        ns = int(nside)
        if ns != nside or ns < 1 or (ns & (ns - 1)) != 0 or ns > 2 ** 29:
            raise GeometryError(f"HEALPix geometry: nside must be a power of 2, got {nside!r}")
        key = str(ordering).strip().upper()
        if key not in _ORDERINGS:
            raise GeometryError(f"HEALPix geometry: ordering must be RING or NESTED, got {ordering!r}")
        self._nside = ns
        self._nest = _ORDERINGS[key] == "NESTED"
        self._frame = normalize_frame(frame)
        self._region = _parse_region(region)
        self._pix = self._compute_pix()

    def _compute_pix(self) -> np.ndarray:
        import healpy as hp

        if self._region is None:
            pix = np.arange(hp.nside2npix(self._nside), dtype=np.int64)
        else:
            lon, lat, rad = self._region
            vec = hp.ang2vec(lon, lat, lonlat=True)
            pix = np.sort(hp.query_disc(self._nside, vec, math.radians(rad), inclusive=False,
                                        nest=self._nest).astype(np.int64))
            if pix.size == 0:
                raise GeometryError(
                    f"HEALPix region DISK({lon}, {lat}, {rad}) holds no pixel centre at nside "
                    f"{self._nside}; use a larger radius or a higher order"
                )
        pix.setflags(write=False)
        return pix

    # --- construction ------------------------------------------------------------------
    @classmethod
    def from_config(cls, binning: dict, center_radec) -> "HpxGeom":
        """Geometry from Fermipy's ``binning`` options: ``hpx_order`` (10),
        ``hpx_ordering_scheme`` (RING), ``coordsys`` (CEL) and a disk region of radius
        ``roiwidth / 2`` around the ROI centre (Fermipy's ``create_hpx_disk_region_string``);
        ``hpx_region: null`` with ``roiwidth >= 360`` gives the whole sky."""
        from .frames import fermipy_cel_to_gal

        b = dict(binning or {})
        order = b.get("hpx_order")
        order = 10 if order is None else order
        ordering = b.get("hpx_ordering_scheme") or "RING"
        frame = normalize_frame(b.get("coordsys") or "CEL")
        roiwidth = float(b.get("roiwidth") if b.get("roiwidth") is not None else 10.0)
        ra, dec = (float(v) for v in center_radec)
        lon, lat = fermipy_cel_to_gal(ra, dec) if frame == "GAL" else (ra, dec)
        region = None if roiwidth >= 360.0 else (lon, lat, 0.5 * roiwidth)
        return cls(order=order, ordering=ordering, frame=frame, region=region)

    # --- properties --------------------------------------------------------------------
    @property
    def nside(self) -> int:
        return self._nside

    @property
    def order(self) -> int:
        return int(round(math.log2(self._nside)))

    @property
    def nest(self) -> bool:
        return self._nest

    @property
    def ordering(self) -> str:
        return "NESTED" if self._nest else "RING"

    @property
    def frame(self) -> str:
        return self._frame

    @property
    def region(self):
        """None (all sky) or (lon, lat, radius) [deg]."""
        return self._region

    @property
    def is_allsky(self) -> bool:
        return self._region is None

    @property
    def pix(self) -> np.ndarray:
        """HEALPix indices held (sorted, read-only int64)."""
        return self._pix

    @property
    def npix(self) -> int:
        return int(self._pix.size)

    @property
    def shape(self) -> tuple[int]:
        return (self.npix,)

    @property
    def npix_allsky(self) -> int:
        return 12 * self._nside * self._nside

    # --- pixels <-> sky ------------------------------------------------------------------
    def pixel_centers(self, frame=None):
        """(lon, lat) [deg] of the held pixels' centres in ``frame`` (default: own frame)."""
        import healpy as hp

        lon, lat = hp.pix2ang(self._nside, self._pix, nest=self._nest, lonlat=True)
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if frame is not None and normalize_frame(frame) != self._frame:
            lon, lat = transform(lon, lat, self._frame, frame)
        return lon, lat

    def solid_angle(self) -> np.ndarray:
        """Solid angle [sr] of each held pixel (all equal: 4 pi / npix_allsky)."""
        return np.full(self.npix, 4.0 * math.pi / self.npix_allsky)

    def healpix_index(self, lon, lat, frame=None) -> np.ndarray:
        """HEALPix index (in this ordering) of directions (lon, lat) [deg] in ``frame``."""
        import healpy as hp

        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if frame is not None and normalize_frame(frame) != self._frame:
            lon, lat = transform(lon, lat, frame, self._frame)
        return np.asarray(hp.ang2pix(self._nside, lon, lat, nest=self._nest, lonlat=True),
                          dtype=np.int64)

    def world_to_pix(self, lon, lat, frame=None) -> np.ndarray:
        """Position in :attr:`pix` (0 .. npix-1) of each direction, -1 outside the region."""
        hpix = self.healpix_index(lon, lat, frame)
        return self.local_index(hpix)

    def local_index(self, hpix) -> np.ndarray:
        """Position in :attr:`pix` of HEALPix indices ``hpix`` (-1 when not held)."""
        hpix = np.asarray(hpix, dtype=np.int64)
        if self._region is None:
            return hpix.copy()
        pos = np.searchsorted(self._pix, hpix)
        pos_c = np.minimum(pos, self._pix.size - 1)
        return np.where(self._pix[pos_c] == hpix, pos_c, -1).astype(np.int64)

    def contains(self, lon, lat, frame=None):
        return self.world_to_pix(lon, lat, frame) >= 0

    def reorder_index(self, ordering: str) -> np.ndarray:
        """HEALPix indices of the held pixels in ``ordering`` (same pixels, other scheme)."""
        import healpy as hp

        target = _ORDERINGS.get(str(ordering).strip().upper())
        if target is None:
            raise GeometryError(f"ordering must be RING or NESTED, got {ordering!r}")
        if (target == "NESTED") == self._nest:
            return self._pix.copy()
        if self._nest:
            return np.asarray(hp.nest2ring(self._nside, self._pix), dtype=np.int64)
        return np.asarray(hp.ring2nest(self._nside, self._pix), dtype=np.int64)

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"type": "hpx", "frame": self._frame, "nside": self._nside,
             "ordering": self.ordering, "region": None}
        if self._region is not None:
            lon, lat, rad = self._region
            d["region"] = {"type": "disk", "lon": lon, "lat": lat, "radius": rad}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HpxGeom":
        if not isinstance(d, dict) or d.get("type") != "hpx":
            raise GeometryError(f"not a HEALPix geometry dict: {d!r}")
        try:
            return cls(nside=d["nside"], ordering=d["ordering"], frame=d["frame"],
                       region=d.get("region"))
        except KeyError as exc:
            raise GeometryError(f"HEALPix geometry dict lacks key {exc.args[0]!r}: {d!r}") from None

    def __eq__(self, other) -> bool:
        return isinstance(other, HpxGeom) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        reg = "all sky" if self._region is None else "DISK(%.4f, %.4f, %g)" % self._region
        return f"HpxGeom(nside={self._nside}, {self.ordering}, {self._frame}, {reg}, npix={self.npix})"


def _parse_region(region):
    if region is None:
        return None
    if isinstance(region, dict):
        if str(region.get("type", "disk")).lower() != "disk":
            raise GeometryError(f"HEALPix region: only disk regions are supported, got {region!r}")
        try:
            vals = (region["lon"], region["lat"], region["radius"])
        except KeyError as exc:
            raise GeometryError(f"HEALPix region dict lacks {exc.args[0]!r}: {region!r}") from None
    elif isinstance(region, str):
        s = region.strip()
        if not (s.upper().startswith("DISK(") and s.endswith(")")):
            raise GeometryError(f"HEALPix region string must be 'DISK(lon,lat,radius)', got {region!r}")
        vals = s[5:-1].split(",")
        if len(vals) != 3:
            raise GeometryError(f"HEALPix region string must be 'DISK(lon,lat,radius)', got {region!r}")
    else:
        vals = tuple(region)
        if len(vals) != 3:
            raise GeometryError(f"HEALPix region must be (lon, lat, radius), got {region!r}")
    lon, lat, rad = (float(v) for v in vals)
    if not (-90 <= lat <= 90 and rad > 0 and math.isfinite(lon)):
        raise GeometryError(f"HEALPix region: invalid (lon, lat, radius) = ({lon}, {lat}, {rad})")
    return (lon % 360.0, lat, rad)
