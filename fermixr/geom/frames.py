"""Sky frames: celestial (``"CEL"``, J2000 RA/Dec) and Galactic (``"GAL"``).

Two conversions live here, on purpose:

* :func:`cel_to_gal` / :func:`gal_to_cel` use the rotation of the Science Tools'
  ``astro::SkyDir`` (Euler angles 282.8592, 62.8717 and 32.93224 deg).  It differs from
  the IAU/astropy transformation by up to ~1.5 arcsec, and gtbin, gtexpcube2 and gtsrcmaps
  place events and pixels with it: binning the shared Crab day with astropy's FK5 or ICRS
  Galactic frame misplaces 6 of 853 events against ``cntmap.fits.gz``; with this rotation
  the cube is identical.  The FT1 ``L``/``B`` columns agree with it to float32 precision.
* :func:`fermipy_cel_to_gal` / :func:`fermipy_gal_to_cel` use astropy (ICRS <-> Galactic),
  which is how Fermipy turns a configuration's ``ra/dec`` into ``xref/yref`` (or
  ``glon/glat`` into ``ra/dec``) before it calls the Science Tools.  Use them for
  configuration values only.

Angles are degrees; longitudes are returned in [0, 360).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError

FRAMES = ("CEL", "GAL")

_ALIASES = {
    "CEL": "CEL", "C": "CEL", "ICRS": "CEL", "FK5": "CEL", "EQUATORIAL": "CEL", "RADEC": "CEL",
    "EQU": "CEL", "J2000": "CEL",
    "GAL": "GAL", "G": "GAL", "GALACTIC": "GAL",
}


def normalize_frame(frame) -> str:
    """``"CEL"`` or ``"GAL"`` for the spellings Fermipy and the Science Tools accept."""
    key = str(frame).strip().upper()
    try:
        return _ALIASES[key]
    except KeyError:
        raise GeometryError(
            f"unknown sky frame {frame!r}: expected 'CEL' (RA/Dec J2000) or 'GAL' (Galactic)"
        ) from None


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _st_equatorial_to_galactic() -> np.ndarray:
    # CLHEP composition: rotateZ(a).rotateX(b).rotateZ(c) left-multiplies each step,
    # so the matrix is Rz(c) @ Rx(b) @ Rz(a).
    d = math.pi / 180.0
    return _rz(32.93224 * d) @ _rx(-62.8717 * d) @ _rz(-282.8592 * d)


#: Rotation of the Science Tools from equatorial (J2000) to Galactic unit vectors.
EQ_TO_GAL = _st_equatorial_to_galactic()
EQ_TO_GAL.setflags(write=False)
#: Its inverse (the transpose).
GAL_TO_EQ = np.ascontiguousarray(EQ_TO_GAL.T)
GAL_TO_EQ.setflags(write=False)


def _as_f64_1d(a):
    arr = np.asarray(a, dtype=np.float64)
    return np.ascontiguousarray(arr.reshape(-1)), arr.shape


def _rotate(lon, lat, rot):
    lo, shape = _as_f64_1d(lon)
    la, shape2 = _as_f64_1d(lat)
    if lo.shape != la.shape:
        raise GeometryError(f"longitude and latitude differ in shape: {shape} vs {shape2}")
    from ._kernels import rotate_lonlat  # numba on first use, not at import

    out_lon, out_lat = rotate_lonlat(lo, la, np.ascontiguousarray(rot))
    if shape == ():
        return float(out_lon[0]), float(out_lat[0])
    return out_lon.reshape(shape), out_lat.reshape(shape)


def cel_to_gal(ra, dec):
    """(l, b) [deg] of (ra, dec) [deg] with the Science Tools' rotation."""
    return _rotate(ra, dec, EQ_TO_GAL)


def gal_to_cel(glon, glat):
    """(ra, dec) [deg] of (l, b) [deg] with the Science Tools' rotation."""
    return _rotate(glon, glat, GAL_TO_EQ)


def transform(lon, lat, frame_in, frame_out):
    """Convert (lon, lat) [deg] from ``frame_in`` to ``frame_out`` (Science Tools rotation).
    Returns new arrays (copies when the frames agree)."""
    fi, fo = normalize_frame(frame_in), normalize_frame(frame_out)
    if fi == fo:
        lo = np.array(lon, dtype=np.float64)
        la = np.array(lat, dtype=np.float64)
        if lo.shape == ():
            return float(lo), float(la)
        return lo, la
    if fi == "CEL":
        return cel_to_gal(lon, lat)
    return gal_to_cel(lon, lat)


# astropy's ICRS -> Galactic rotation (galactic_xyz = M @ icrs_xyz), the transformation
# Fermipy applies to configured positions; a constant, so configuration does not need to
# import astropy.coordinates (tests compare it with astropy).
ICRS_TO_GALACTIC = np.array([
    [-0.05487565771259163, -0.8734370519556159, -0.48383507361671546],
    [0.4941094371927268, -0.44482972122329517, 0.7469821839866676],
    [-0.8676661375596576, -0.19807633727300059, 0.45598381368730156],
])


def _rotate_point(lon: float, lat: float, m: np.ndarray) -> tuple[float, float]:
    lo, la = math.radians(float(lon)), math.radians(float(lat))
    v = m @ np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])
    lon_out = math.degrees(math.atan2(v[1], v[0])) % 360.0
    lat_out = math.degrees(math.asin(max(-1.0, min(1.0, v[2]))))
    return lon_out, lat_out


def fermipy_cel_to_gal(ra: float, dec: float) -> tuple[float, float]:
    """(l, b) [deg] of a configured (ra, dec) as Fermipy computes it (astropy, ICRS)."""
    return _rotate_point(ra, dec, ICRS_TO_GALACTIC)


def fermipy_gal_to_cel(glon: float, glat: float) -> tuple[float, float]:
    """(ra, dec) [deg] of a configured (glon, glat) as Fermipy computes it (astropy, ICRS)."""
    return _rotate_point(glon, glat, ICRS_TO_GALACTIC.T)


def ait_offsets(lon0: float, lat0: float, lon, lat, frame: str):
    """Offsets (x, y) [deg] of (lon, lat) in a Hammer-Aitoff projection centred on
    (lon0, lat0) with 1 deg pixels, x growing towards smaller longitude (FITS convention,
    CDELT1 < 0): Fermipy's ``sky_to_offset`` frame, in which its ``offset_ra/dec``,
    ``offset_glon/glat`` and square source selections are measured.  ``frame``: CEL or
    GAL, the frame of all four angles."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = (["RA---AIT", "DEC--AIT"] if normalize_frame(frame) == "CEL"
                   else ["GLON-AIT", "GLAT-AIT"])
    w.wcs.crval = [float(lon0), float(lat0)]
    w.wcs.crpix = [1.0, 1.0]
    w.wcs.cdelt = [-1.0, 1.0]
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    if lon.size == 0:
        return np.zeros(0), np.zeros(0)
    x, y = w.wcs_world2pix(lon, np.atleast_1d(np.asarray(lat, dtype=np.float64)), 0)
    return np.asarray(x), np.asarray(y)


_KERNEL_MIN_SIZE = 100_000


def angular_separation(lon1, lat1, lon2: float, lat2: float):
    """Angular distance [deg] of points (lon1, lat1) from the point (lon2, lat2) (same
    frame), with CFITSIO's haversine formula (the one gtselect's ``angsep`` cut uses)."""
    lo, shape = _as_f64_1d(lon1)
    la, _ = _as_f64_1d(lat1)
    if lo.size < _KERNEL_MIN_SIZE:
        # few points (catalog selections, planning): numpy, without loading numba's cache
        d2r = math.pi / 180.0
        sra = np.sin((float(lon2) - lo) * d2r / 2.0)
        sdec = np.sin((float(lat2) - la) * d2r / 2.0)
        a = np.clip(sdec * sdec + np.cos(la * d2r) * math.cos(float(lat2) * d2r) * sra * sra,
                    0.0, 1.0)
        out = 2.0 * np.arctan2(np.sqrt(a), np.sqrt(1.0 - a)) / d2r
    else:
        from ._kernels import angsep_deg

        out = angsep_deg(lo, la, float(lon2), float(lat2))
    if shape == ():
        return float(out[0])
    return out.reshape(shape)
