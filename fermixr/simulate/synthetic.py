"""A small synthetic LAT data set written in the real file formats.

This is the input of fermixr's built-in example: one day (by default) of a survey-mode orbit
(FT2), a synthetic instrument response ``FXR_SYNTH_V1`` in a CALDB tree (Pass 8 FRONT/BACK
layout), and photon events (FT1) drawn from an isotropic background and a few power-law point
sources folded through that response.  Every file has the HDU names, columns, formats, units
and header keywords of the real LAT files, so the whole data preparation runs on it through
the readers used for real data.

Nothing here is real LAT data or a real LAT response.  The files say so in COMMENT cards.

Physics of the simulation (the truth is written to ``truth.yaml``):

* Orbit: circular, ``altitude_km`` above a spherical Earth, inclination 25.6 deg, nodal
  precession from J2.  Spacecraft z axis tilted from the zenith towards the orbit pole by the
  rocking angle (+``rock_deg`` on one orbit, -``rock_deg`` on the next, smooth switch), x
  axis perpendicular to z in the plane holding the Sun (as the LAT flies).  Geomagnetic
  columns from a tilted dipole; SAA passages from an elliptical lon/lat region (rows with
  IN_SAA true and zero LIVETIME, excluded from the GTIs).
* Exposure: effective area ``aeff_cm2`` (smooth analytic, written on the P8R2_SOURCE_V6 grids),
  the livetime-fraction efficiency ``1 + p0(E) (f - 0.9)`` of EFFICIENCY_PARAMS, the live
  fraction f of the FT2 row, and (optionally) occultation by the Earth (no photon from
  zenith angles beyond the geometric horizon, ~113 deg).  The attitude is computed at the
  exact photon time, so an FT2-row based livetime cube approximates it as it does real data.
* PSF: the double King function of the tables with its energy scaling; each photon is drawn
  from the Science Tools' interpolation of the tables (a bilinear mix in log energy and
  cos theta of the PSFs at the four neighbouring table nodes, small-angle normalisation
  truncated at 90 deg).
* Energy dispersion: the Pass 8 form (two asymmetric generalised Gaussians) with constant
  table parameters and the energy/inclination dependence in EDISP_SCALING_PARAMS, so the
  tabulated response equals the one used to draw the events.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..conventions import FERMI_MJDREF

IRF_NAME = "FXR_SYNTH_V1"
PASS_VER = "P8R2"            # event-class bit layout the FT1 file follows
EVCLASS_SOURCE = 128
SYNTH_DATE = "2025-01-01T00:00:00"   # fixed creation date: files are byte-reproducible
MJDREFI = 51910
MJDREFF = 7.428703703703703e-4

_SYNTH_COMMENT = (
    "SYNTHETIC DATA made by fermixr.io.synthetic for fermixr's built-in example. "
    "Not LAT data and not a LAT instrument response."
)

_MU_EARTH = 3.986004418e14        # m3 s-2
_R_EARTH = 6378137.0              # m, equatorial
_R_EARTH_MEAN = 6371200.0         # m, reference radius of the geomagnetic field
_FLATTENING = 1.0 / 298.257223563
_J2 = 1.08262668e-3
_DIPOLE_POLE = (80.4, -72.6)      # geographic lat, lon (deg) of the geomagnetic north pole
_B0_FILE_UNITS = 3.0              # dipole equatorial surface field, in the scale real FT2
                                  # files use for B_MCILWAIN (0.30 G x 10)

# Galactic pole and node (J2000): NGP RA, Dec and the longitude of the celestial pole
_NGP_RA, _NGP_DEC, _L_NCP = 192.85948, 27.12825, 122.93192


# ----------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticSource:
    """A point source with a power law dN/dE ~ E**-index.

    ``flux`` is the photon flux (ph cm-2 s-1) between ``flux_emin`` and ``flux_emax`` (MeV),
    the Science Tools' PowerLaw2 normalisation.  ``variability``: optional time
    variability, a tuple of (tstart, tstop, factor) (MET s): the flux is ``factor`` times
    ``flux`` within [tstart, tstop) (the first interval holding a time wins) and ``flux``
    elsewhere; the photons are drawn per FT2 row with the factor at the row's midpoint.
    Empty (the default): a steady source, drawn exactly as without the field.
    """

    name: str
    ra: float
    dec: float
    flux: float
    index: float
    flux_emin: float = 100.0
    flux_emax: float = 100000.0
    variability: tuple = ()

    def __repr__(self) -> str:
        # the dataclass's repr, without ``variability`` when empty: configuration stamps
        # made from reprs (benchmarks/_mission.py) stay those of steady sources
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                 if f.name != "variability" or self.variability]
        return f"{type(self).__name__}({', '.join(parts)})"

    def multiplier(self, met) -> np.ndarray:
        """The flux factor at times ``met`` (1 outside the ``variability`` intervals)."""
        t = np.asarray(met, dtype=float)
        out = np.ones(t.shape)
        done = np.zeros(t.shape, dtype=bool)
        for a, b, f in self.variability:
            if not (float(b) > float(a) and float(f) >= 0):
                raise ValueError(f"SyntheticSource {self.name!r}: variability interval "
                                 f"({a}, {b}, {f}); expected tstart < tstop and factor >= 0")
            inside = (t >= float(a)) & (t < float(b)) & ~done
            out[inside] = float(f)
            done |= inside
        return out

    def prefactor(self, scale: float = 1000.0) -> float:
        """dN/dE at ``scale`` MeV (ph cm-2 s-1 MeV-1)."""
        return self.flux / _powerlaw_integral(self.flux_emin, self.flux_emax, self.index,
                                              scale)

    def dnde(self, energy):
        return self.prefactor(1000.0) * (np.asarray(energy, float) / 1000.0) ** (-self.index)

    def integral(self, e1, e2):
        return self.prefactor(1000.0) * _powerlaw_integral(e1, e2, self.index, 1000.0)


@dataclass(frozen=True)
class IsotropicBackground:
    """Isotropic power-law intensity; ``intensity`` in ph cm-2 s-1 sr-1 between
    ``flux_emin`` and ``flux_emax`` (MeV).  It stands in for all diffuse emission."""

    name: str = "isodiff"
    intensity: float = 2.0e-4
    index: float = 2.3
    flux_emin: float = 100.0
    flux_emax: float = 100000.0

    def prefactor(self, scale: float = 1000.0) -> float:
        return self.intensity / _powerlaw_integral(self.flux_emin, self.flux_emax,
                                                   self.index, scale)

    def dnde(self, energy):
        return self.prefactor(1000.0) * (np.asarray(energy, float) / 1000.0) ** (-self.index)

    def integral(self, e1, e2):
        return self.prefactor(1000.0) * _powerlaw_integral(e1, e2, self.index, 1000.0)


DEFAULT_SOURCES = (
    SyntheticSource("SYN_CRAB", 83.6331, 22.0145, flux=6.0e-6, index=2.2),
    SyntheticSource("SYN_HARD", 86.5000, 23.3000, flux=1.5e-6, index=1.8),
    SyntheticSource("SYN_SOFT", 80.0000, 17.0000, flux=4.0e-6, index=2.6),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines the synthetic data set (with the seed, all of it)."""

    seed: int = 20250101
    tstart: float = 300000000.0          # MET s
    duration: float = 86400.0            # s
    row_dt: float = 30.0                 # FT2 row length, s
    roi_ra: float = 83.6331
    roi_dec: float = 22.0145
    roi_radius: float = 12.0             # deg (cut on reconstructed direction)
    emin: float = 100.0                  # MeV (cut on reconstructed energy)
    emax: float = 100000.0
    etrue_min: float = 50.0              # true-energy range simulated
    etrue_max: float = 200000.0
    background_margin: float = 25.0      # deg beyond the ROI over which background is drawn
    sources: tuple = DEFAULT_SOURCES
    background: IsotropicBackground = field(default_factory=IsotropicBackground)
    earth_occultation: bool = True
    # orbit
    altitude_km: float = 545.0
    inclination: float = 25.6            # deg
    raan0: float = 120.0                 # deg, right ascension of the ascending node at tstart
    arglat0: float = 0.0                 # deg, argument of latitude at tstart
    rock_deg: float = 50.0
    rock_switch: float = 0.15            # sharpness of the rocking switch (fraction of sin)
    # SAA: ellipse in geographic lon/lat (deg)
    saa_lon: float = -45.0
    saa_lat: float = -18.0
    saa_half_lon: float = 50.0
    saa_half_lat: float = 14.0

    def replace(self, **kw) -> "SyntheticConfig":
        return dataclasses.replace(self, **kw)


# ----------------------------------------------------------------------------------------
# small geometry helpers
# ----------------------------------------------------------------------------------------
def _powerlaw_integral(e1, e2, index, scale):
    """Integral of (E/scale)**-index dE from e1 to e2."""
    if abs(index - 1.0) < 1e-12:
        return scale * np.log(np.asarray(e2, float) / np.asarray(e1, float))
    g = 1.0 - index
    return scale * ((np.asarray(e2, float) / scale) ** g
                    - (np.asarray(e1, float) / scale) ** g) / g


def _radec_to_vec(ra, dec):
    ra = np.radians(np.asarray(ra, float))
    dec = np.radians(np.asarray(dec, float))
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def _vec_to_radec(v):
    v = np.asarray(v, float)
    ra = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(v[..., 2] / np.linalg.norm(v, axis=-1), -1, 1)))
    return ra, dec


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _dot(a, b):
    return np.einsum("...i,...i->...", a, b)


def _angle_deg(a, b):
    return np.degrees(np.arccos(np.clip(_dot(a, b), -1.0, 1.0)))


def _rotz(angle_rad, v):
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1], v[..., 2]],
                    axis=-1)


def _offset_directions(d, offset_rad, posangle_rad):
    """Directions at angular distance ``offset_rad`` from unit vectors ``d`` at position
    angle ``posangle_rad`` (exact on the sphere)."""
    ref = np.zeros_like(d)
    ref[..., 2] = 1.0
    near_pole = np.abs(d[..., 2]) > 0.999
    ref[near_pole] = (1.0, 0.0, 0.0)
    e1 = _unit(np.cross(ref, d))
    e2 = np.cross(d, e1)
    so = np.sin(offset_rad)[..., None]
    return _unit(np.cos(offset_rad)[..., None] * d
                 + so * (np.cos(posangle_rad)[..., None] * e1
                         + np.sin(posangle_rad)[..., None] * e2))


def _galactic_matrix():
    """Rotation taking equatorial (J2000) unit vectors to Galactic ones."""
    ngp = _radec_to_vec(_NGP_RA, _NGP_DEC)
    ncp = np.array([0.0, 0.0, 1.0])
    # x_gal points to l = 0, b = 0; the NCP has galactic longitude _L_NCP
    y_ncp = _unit(ncp - ngp * (ncp @ ngp))   # direction of the NCP in the galactic plane
    theta = math.radians(_L_NCP)
    # a unit vector e in the galactic plane with longitude lam satisfies
    # e = cos(lam) x + sin(lam) y ; choose x, y so that y_ncp has longitude _L_NCP
    w = np.cross(ngp, y_ncp)   # longitude _L_NCP + 90 deg
    x = math.cos(theta) * y_ncp - math.sin(theta) * w
    y = math.sin(theta) * y_ncp + math.cos(theta) * w
    return np.stack([x, y, ngp])


_GAL = _galactic_matrix()


def equatorial_to_galactic(ra, dec):
    """(l, b) in deg of equatorial (ra, dec) in deg (J2000)."""
    v = _radec_to_vec(ra, dec) @ _GAL.T
    return _vec_to_radec(v)


def met_to_jd(met):
    return FERMI_MJDREF + np.asarray(met, float) / 86400.0 + 2400000.5


def _gmst_rad(met):
    jd = met_to_jd(met)
    return np.radians((280.46061837 + 360.98564736629 * (jd - 2451545.0)) % 360.0)


def _sun_vec(met):
    """Low-precision apparent Sun direction (equatorial), good to ~0.01 deg."""
    n = met_to_jd(met) - 2451545.0
    mean_lon = np.radians((280.460 + 0.9856474 * n) % 360.0)
    g = np.radians((357.528 + 0.9856003 * n) % 360.0)
    lam = mean_lon + np.radians(1.915 * np.sin(g) + 0.020 * np.sin(2 * g))
    eps = np.radians(23.439 - 4.0e-7 * n)
    return np.stack([np.cos(lam), np.cos(eps) * np.sin(lam), np.sin(eps) * np.sin(lam)],
                    axis=-1)


def _quaternion(x, y, z):
    """Quaternion (q1, q2, q3 vector part, q4 scalar; q4 >= 0) of the rotation whose matrix
    has columns x, y, z (spacecraft axes in J2000), as FT2 QSJ_1..4."""
    m = np.stack([x, y, z], axis=-1)      # (..., 3, 3): columns are the axes
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    q = np.empty(x.shape[:-1] + (4,))
    # branch on the largest of (tr, m00, m11, m22) for numerical stability
    cand = np.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], axis=-1)
    k = np.argmax(cand, axis=-1)
    for case in range(4):
        sel = k == case
        if not np.any(sel):
            continue
        a = m[sel]
        if case == 0:
            s = 2.0 * np.sqrt(1.0 + a[:, 0, 0] + a[:, 1, 1] + a[:, 2, 2])
            qw = 0.25 * s
            qx = (a[:, 2, 1] - a[:, 1, 2]) / s
            qy = (a[:, 0, 2] - a[:, 2, 0]) / s
            qz = (a[:, 1, 0] - a[:, 0, 1]) / s
        elif case == 1:
            s = 2.0 * np.sqrt(1.0 + a[:, 0, 0] - a[:, 1, 1] - a[:, 2, 2])
            qw = (a[:, 2, 1] - a[:, 1, 2]) / s
            qx = 0.25 * s
            qy = (a[:, 0, 1] + a[:, 1, 0]) / s
            qz = (a[:, 0, 2] + a[:, 2, 0]) / s
        elif case == 2:
            s = 2.0 * np.sqrt(1.0 + a[:, 1, 1] - a[:, 0, 0] - a[:, 2, 2])
            qw = (a[:, 0, 2] - a[:, 2, 0]) / s
            qx = (a[:, 0, 1] + a[:, 1, 0]) / s
            qy = 0.25 * s
            qz = (a[:, 1, 2] + a[:, 2, 1]) / s
        else:
            s = 2.0 * np.sqrt(1.0 + a[:, 2, 2] - a[:, 0, 0] - a[:, 1, 1])
            qw = (a[:, 1, 0] - a[:, 0, 1]) / s
            qx = (a[:, 0, 2] + a[:, 2, 0]) / s
            qy = (a[:, 1, 2] + a[:, 2, 1]) / s
            qz = 0.25 * s
        q[sel] = np.stack([qx, qy, qz, qw], axis=-1)
    q *= np.where(q[..., 3:4] < 0, -1.0, 1.0)
    return q


# ----------------------------------------------------------------------------------------
# orbit and attitude
# ----------------------------------------------------------------------------------------
def orbit_period(cfg: SyntheticConfig) -> float:
    a = _R_EARTH + cfg.altitude_km * 1e3
    return 2.0 * math.pi * math.sqrt(a ** 3 / _MU_EARTH)


def spacecraft_state(met, cfg: SyntheticConfig) -> dict:
    """Position, attitude and environment of the spacecraft at MET times ``met`` (s).

    Returns unit vectors (shape (n, 3), J2000): ``zenith``, ``scz``, ``scx``, ``scy``,
    ``npole`` (orbit pole), ``sun``; ``position`` (m); angles (deg): ``rock``, ``lat_geo``,
    ``lon_geo``, ``lambda_mag`` (dipole magnetic latitude), ``invariant_lat``; ``alt`` (m),
    ``l_mcilwain`` (Earth radii), ``b_mcilwain`` (file scale, see B_MCILWAIN),
    ``in_saa`` (bool), ``livefrac``.
    """
    met = np.atleast_1d(np.asarray(met, float))
    t = met - cfg.tstart
    a = _R_EARTH + cfg.altitude_km * 1e3
    n_mean = math.sqrt(_MU_EARTH / a ** 3)
    inc = math.radians(cfg.inclination)
    raan_dot = -1.5 * n_mean * _J2 * (_R_EARTH / a) ** 2 * math.cos(inc)
    u = math.radians(cfg.arglat0) + n_mean * t
    om = math.radians(cfg.raan0) + raan_dot * t
    cu, su, co, so = np.cos(u), np.sin(u), np.cos(om), np.sin(om)
    ci, si = math.cos(inc), math.sin(inc)
    zen = np.stack([co * cu - so * su * ci, so * cu + co * su * ci, su * si], axis=-1)
    npole = np.stack([so * si, -co * si, np.full_like(u, ci)], axis=-1)
    period = 2.0 * math.pi / n_mean
    rock = cfg.rock_deg * np.clip(np.sin(math.pi * t / period) / cfg.rock_switch, -1.0, 1.0)
    rr = np.radians(rock)[:, None]
    scz = _unit(np.cos(rr) * zen + np.sin(rr) * npole)
    sun = _sun_vec(met)
    scx = _unit(sun - _dot(sun, scz)[:, None] * scz)
    scy = np.cross(scz, scx)

    gmst = _gmst_rad(met)
    lat = np.degrees(np.arcsin(np.clip(zen[:, 2], -1, 1)))
    lon = (np.degrees(np.arctan2(zen[:, 1], zen[:, 0]) - gmst) + 180.0) % 360.0 - 180.0
    r_surface = _R_EARTH * (1.0 - _FLATTENING * np.sin(np.radians(lat)) ** 2)
    alt = a - r_surface

    pole_ecef = _radec_to_vec(_DIPOLE_POLE[1], _DIPOLE_POLE[0])
    pole_eci = _rotz(gmst, np.broadcast_to(pole_ecef, zen.shape))
    sin_lam = np.clip(_dot(zen, pole_eci), -1.0, 1.0)
    lam = np.degrees(np.arcsin(sin_lam))
    cos2 = 1.0 - sin_lam ** 2
    lshell = (a / _R_EARTH_MEAN) / cos2
    inv_lat = np.degrees(np.arccos(np.sqrt(1.0 / lshell)))
    bfield = _B0_FILE_UNITS * (_R_EARTH_MEAN / a) ** 3 * np.sqrt(1.0 + 3.0 * sin_lam ** 2)

    dlon = (lon - cfg.saa_lon + 180.0) % 360.0 - 180.0
    in_saa = (dlon / cfg.saa_half_lon) ** 2 + ((lat - cfg.saa_lat) / cfg.saa_half_lat) ** 2 < 1
    livefrac = np.clip(0.94 - 0.12 * (lshell - 1.0), 0.80, 0.95)

    return dict(met=met, position=zen * a, zenith=zen, scz=scz, scx=scx, scy=scy,
                npole=npole, sun=sun, rock=rock, lat_geo=lat, lon_geo=lon, alt=alt,
                lambda_mag=lam, invariant_lat=inv_lat, l_mcilwain=lshell,
                b_mcilwain=bfield, in_saa=in_saa, livefrac=livefrac)


def horizon_zenith_angle(cfg: SyntheticConfig) -> float:
    """Zenith angle (deg) of the Earth's geometric horizon seen from the orbit."""
    a = _R_EARTH + cfg.altitude_km * 1e3
    return 180.0 - math.degrees(math.asin(_R_EARTH_MEAN / a))


def make_ft2_rows(cfg: SyntheticConfig) -> dict:
    """The SC_DATA columns (numpy arrays, FT2 names) of the configured time range."""
    nrow = int(round(cfg.duration / cfg.row_dt))
    start = cfg.tstart + cfg.row_dt * np.arange(nrow)
    stop = start + cfg.row_dt
    st = spacecraft_state(start, cfg)
    ra_zen, dec_zen = _vec_to_radec(st["zenith"])
    ra_z, dec_z = _vec_to_radec(st["scz"])
    ra_x, dec_x = _vec_to_radec(st["scx"])
    ra_np, dec_np = _vec_to_radec(st["npole"])
    ra_sun, dec_sun = _vec_to_radec(st["sun"])
    livetime = np.where(st["in_saa"], 0.0, st["livefrac"] * (stop - start))
    q = _quaternion(st["scx"], st["scy"], st["scz"])
    return {
        "START": start, "STOP": stop,
        "SC_POSITION": st["position"].astype(np.float32),
        "LAT_GEO": st["lat_geo"], "LON_GEO": st["lon_geo"], "RAD_GEO": st["alt"],
        "RA_ZENITH": ra_zen, "DEC_ZENITH": dec_zen,
        "B_MCILWAIN": st["b_mcilwain"], "L_MCILWAIN": st["l_mcilwain"],
        "GEOMAG_LAT": st["invariant_lat"], "LAMBDA": st["lambda_mag"],
        "IN_SAA": st["in_saa"],
        "RA_SCZ": ra_z, "DEC_SCZ": dec_z, "RA_SCX": ra_x, "DEC_SCX": dec_x,
        "RA_NPOLE": ra_np, "DEC_NPOLE": dec_np, "ROCK_ANGLE": st["rock"],
        "LAT_MODE": np.where(st["in_saa"], 4, 5).astype(np.int32),
        "LAT_CONFIG": np.ones(nrow, np.uint8),
        "DATA_QUAL": np.ones(nrow, np.int16),
        "LIVETIME": livetime,
        "QSJ_1": q[:, 0], "QSJ_2": q[:, 1], "QSJ_3": q[:, 2], "QSJ_4": q[:, 3],
        "RA_SUN": ra_sun, "DEC_SUN": dec_sun,
    }


def good_time_intervals(ft2: dict) -> tuple[np.ndarray, np.ndarray]:
    """GTIs: maximal runs of contiguous FT2 rows with non-zero livetime."""
    good = np.asarray(ft2["LIVETIME"]) > 0
    start, stop = np.asarray(ft2["START"]), np.asarray(ft2["STOP"])
    edges = np.diff(np.concatenate([[0], good.astype(np.int8), [0]]))
    first = np.nonzero(edges == 1)[0]
    last = np.nonzero(edges == -1)[0] - 1
    # split runs at gaps in time
    g_start, g_stop = [], []
    for i0, i1 in zip(first, last):
        cut = np.nonzero(start[i0 + 1:i1 + 1] > stop[i0:i1] + 1e-6)[0]
        bounds = np.concatenate([[i0], i0 + 1 + cut, [i1 + 1]])
        for b0, b1 in zip(bounds[:-1], bounds[1:]):
            g_start.append(start[b0])
            g_stop.append(stop[b1 - 1])
    return np.asarray(g_start, float), np.asarray(g_stop, float)


# ----------------------------------------------------------------------------------------
# the synthetic instrument response
# ----------------------------------------------------------------------------------------
def _edges(lo_exp, hi_exp, step):
    n = int(round((hi_exp - lo_exp) / step))
    return 10.0 ** (lo_exp + step * np.arange(n + 1))


def irf_grids() -> dict:
    """Bin edges of the tables, the same grids as P8R2_SOURCE_V6 (energies MeV)."""
    aeff_e = np.concatenate([_edges(0.75, 4.25, 0.0625), _edges(4.25, 6.5, 0.125)[1:]])
    return {
        "aeff_energy": aeff_e,                          # 74 bins
        "aeff_ctheta": np.linspace(0.2, 1.0, 33),        # 32 bins
        "par_energy": _edges(0.75, 6.5, 0.25),           # 23 bins (PSF, edisp, phi dep.)
        "par_ctheta": np.linspace(0.2, 1.0, 9),          # 8 bins
        "fisheye_energy": _edges(0.75, 6.5, 0.125),      # 46 bins
        "fisheye_ctheta": np.linspace(0.2, 1.0, 17),     # 16 bins
    }


# effective area: A(E, c) = A_inf * R(E) * G(c), per conversion type (m2)
_AEFF = {
    "FRONT": dict(a_inf=0.47, e0=140.0, k=2.2, e_hi=3.0e6, m=1.5),
    "BACK": dict(a_inf=0.42, e0=180.0, k=2.4, e_hi=3.0e6, m=1.5),
}
_AEFF_CTH_MIN = 0.2
_AEFF_CTH_SCALE = 0.35

# livetime-fraction efficiency: rows p0 (slope on the live fraction) and p1 (offset), each
# the six parameters (a0, b0, a1, logEb1, a2, logEb2) of the Science Tools' piecewise-linear
# function of log10(E); chosen so that the factor is exactly 1 at live fraction 0.9
_EFFICIENCY = np.array([[0.0, 0.50, -0.10, 3.0, 0.0, 4.0],
                        [0.0, 0.55, 0.09, 3.0, 0.0, 4.0]])

# PSF: double King in units of the scale S_P(E) = sqrt((c0 (E/100)^beta)^2 + c1^2) (rad);
# table parameters are constant in energy, widths grow mildly off axis
_PSF = {
    "FRONT": dict(c0=0.0290, c1=0.00058, beta=-0.8),   # r68 ~ 4.0 deg at 100 MeV, 0.08 deg
    "BACK": dict(c0=0.0471, c1=0.00109, beta=-0.8),    # r68 ~ 6.5 deg at 100 MeV, 0.15 deg
}
_PSF_SHAPE = dict(score=1.0, stail=2.2, gcore=3.0, gtail=2.0, tail_fraction=0.12,
                  offaxis=0.35)

# energy dispersion: constant table parameters; scale
# S_D = c0 logE^2 + c1 c^2 + c2 logE + c3 c + c4 logE c + c5
_EDISP_PARS = dict(F=0.85, S1=0.80, K1=1.00, BIAS=0.0, BIAS2=0.0, S2=1.60, K2=1.10,
                   PINDEX1=2.0, PINDEX2=1.4)
_EDISP_SCALE = {
    "FRONT": np.array([0.013, 0.0, -0.104, -0.026, 0.0, 0.351]),
    "BACK": np.array([0.013, 0.0, -0.104, -0.026, 0.0, 0.370]),
}


def aeff_m2(energy, costheta, conv: str):
    """Analytic effective area (m2) of the synthetic response for ``conv`` FRONT/BACK."""
    p = _AEFF[conv]
    e = np.asarray(energy, float)
    c = np.asarray(costheta, float)
    r = 1.0 / (1.0 + (e / p["e0"]) ** (-p["k"])) / (1.0 + (e / p["e_hi"]) ** p["m"])
    x = np.clip((c - _AEFF_CTH_MIN) / _AEFF_CTH_SCALE, 0.0, None)
    g = np.where(c > _AEFF_CTH_MIN, 1.0 - np.exp(-x * x), 0.0)
    return p["a_inf"] * r * g


def aeff_cm2(energy, costheta, conv: str | None = None):
    """Effective area in cm2, FRONT+BACK when ``conv`` is None."""
    if conv is None:
        return 1e4 * (aeff_m2(energy, costheta, "FRONT") + aeff_m2(energy, costheta, "BACK"))
    return 1e4 * aeff_m2(energy, costheta, conv)


def _eff_param(pars, loge):
    a0, b0, a1, lb1, a2, lb2 = pars
    b1 = (a0 - a1) * lb1 + b0
    b2 = (a1 - a2) * lb2 + b1
    return np.where(loge < lb1, a0 * loge + b0,
                    np.where(loge < lb2, a1 * loge + b1, a2 * loge + b2))


def efficiency_factor(energy, livefrac):
    """Livetime-fraction efficiency p0(E) * f + p1(E) of the synthetic response."""
    loge = np.log10(np.asarray(energy, float))
    return (_eff_param(_EFFICIENCY[0], loge) * np.asarray(livefrac, float)
            + _eff_param(_EFFICIENCY[1], loge))


def psf_scale(energy, conv: str):
    """S_P(E) (rad) of PSF_SCALING_PARAMS."""
    p = _PSF[conv]
    e = np.asarray(energy, float)
    return np.sqrt((p["c0"] * (e / 100.0) ** p["beta"]) ** 2 + p["c1"] ** 2)


def _king_cdf(u, gamma):
    """Integral of the normalised planar King function within u = (r/sigma)^2 / 2."""
    return 1.0 - (1.0 + u / gamma) ** (1.0 - gamma)


def psf_table_params(conv: str) -> dict:
    """(ncth, nE) arrays NCORE, NTAIL, SCORE, STAIL, GCORE, GTAIL at the table nodes, the
    values written to RPSF_<conv>; NCORE normalises the PSF (small-angle, to 90 deg)."""
    g = irf_grids()
    elo, ehi = g["par_energy"][:-1], g["par_energy"][1:]
    clo, chi = g["par_ctheta"][:-1], g["par_ctheta"][1:]
    enode = np.sqrt(elo * ehi)
    cnode = 0.5 * (clo + chi)
    sh = _PSF_SHAPE
    widen = 1.0 + sh["offaxis"] * (1.0 - cnode)[:, None] * np.ones((1, enode.size))
    score = sh["score"] * widen
    stail = sh["stail"] * widen
    gcore = np.full_like(score, sh["gcore"])
    gtail = np.full_like(score, sh["gtail"])
    # tail weight relative to the core (probability ratio tail/core)
    ratio = sh["tail_fraction"] / (1.0 - sh["tail_fraction"])
    ntail = ratio * score ** 2 / stail ** 2
    s = psf_scale(enode, conv)[None, :]
    half_pi = 0.5 * math.pi
    core_norm = 2 * math.pi * (score * s) ** 2 * _king_cdf((half_pi / (score * s)) ** 2 / 2,
                                                          gcore)
    tail_norm = 2 * math.pi * (stail * s) ** 2 * _king_cdf((half_pi / (stail * s)) ** 2 / 2,
                                                          gtail)
    ncore = 1.0 / (core_norm + ntail * tail_norm)
    return dict(NCORE=ncore, NTAIL=ntail, SCORE=score, STAIL=stail, GCORE=gcore, GTAIL=gtail)


def psf_value(sep_deg, energy, costheta, conv: str):
    """PSF (sr^-1) at one (energy, costheta), evaluated as the Science Tools' Psf3 does on
    the synthetic tables: the double King at the four neighbouring nodes (node energies),
    mixed bilinearly in (log10 E, cos theta)."""
    sep = np.radians(np.asarray(sep_deg, float))
    corners, weights = _psf_corners(np.atleast_1d(float(energy)),
                                    np.atleast_1d(float(costheta)))
    tab = _psf_tables_f32(conv)
    enode = tab["enode"]
    out = np.zeros_like(sep)
    for (ie, ic), w in zip(corners, weights):
        ie, ic, w = int(ie[0]), int(ic[0]), float(w[0])
        s = psf_scale(enode[ie], conv)
        sc, st = tab["SCORE"][ic, ie] * s, tab["STAIL"][ic, ie] * s
        gc, gt = tab["GCORE"][ic, ie], tab["GTAIL"][ic, ie]
        nc, nt = tab["NCORE"][ic, ie], tab["NTAIL"][ic, ie]
        core = (1 - 1 / gc) * (1 + (sep / sc) ** 2 / 2 / gc) ** (-gc)
        tail = (1 - 1 / gt) * (1 + (sep / st) ** 2 / 2 / gt) ** (-gt)
        out = out + w * nc * (core + nt * tail)
    return out


def _psf_tables_f32(conv: str) -> dict:
    g = irf_grids()
    elo, ehi = g["par_energy"][:-1], g["par_energy"][1:]
    clo, chi = g["par_ctheta"][:-1], g["par_ctheta"][1:]
    tab = {k: v.astype(np.float32).astype(float) for k, v in psf_table_params(conv).items()}
    e32 = (elo.astype(np.float32).astype(float), ehi.astype(np.float32).astype(float))
    c32 = (clo.astype(np.float32).astype(float), chi.astype(np.float32).astype(float))
    tab["enode"] = np.sqrt(e32[0] * e32[1])
    tab["cnode"] = 0.5 * (c32[0] + c32[1])
    return tab


def _psf_corners(energy, costheta):
    """Node indices and bilinear weights of the four table corners for each photon."""
    g = irf_grids()
    elo, ehi = g["par_energy"][:-1], g["par_energy"][1:]
    clo, chi = g["par_ctheta"][:-1], g["par_ctheta"][1:]
    lx = np.log10(np.sqrt(elo.astype(np.float32).astype(float)
                          * ehi.astype(np.float32).astype(float)))
    cx = 0.5 * (clo.astype(np.float32).astype(float) + chi.astype(np.float32).astype(float))
    le = np.clip(np.log10(energy), lx[0], lx[-1])
    cc = np.clip(costheta, cx[0], cx[-1])
    ie = np.clip(np.searchsorted(lx, le, side="right") - 1, 0, lx.size - 2)
    ic = np.clip(np.searchsorted(cx, cc, side="right") - 1, 0, cx.size - 2)
    t = (le - lx[ie]) / (lx[ie + 1] - lx[ie])
    u = (cc - cx[ic]) / (cx[ic + 1] - cx[ic])
    corners = [(ie, ic), (ie + 1, ic), (ie, ic + 1), (ie + 1, ic + 1)]
    weights = [(1 - t) * (1 - u), t * (1 - u), (1 - t) * u, t * u]
    return corners, weights


def edisp_scale(energy, costheta, conv: str):
    """S_D(E, cos theta) of EDISP_SCALING_PARAMS (cos theta clamped to the last node)."""
    p = _EDISP_SCALE[conv]
    loge = np.log10(np.asarray(energy, float))
    cnode_last = 0.95
    c = np.abs(np.minimum(np.asarray(costheta, float), cnode_last))
    return (p[0] * loge ** 2 + p[1] * c ** 2 + p[2] * loge + p[3] * c + p[4] * loge * c
            + p[5])


def edisp_value(e_rec, energy, costheta, conv: str):
    """Energy dispersion D(E_rec | E, cos theta) in MeV^-1 (Pass 8 form)."""
    p = _EDISP_PARS
    s = edisp_scale(energy, costheta, conv)
    x = (np.asarray(e_rec, float) - energy) / energy / s

    def base(xx, sigma, k, b, pidx):
        uu = xx - b
        up = np.where(uu > 0, uu, 0.0)
        um = np.where(uu < 0, -uu, 0.0)
        norm = pidx / sigma / math.gamma(1.0 / pidx) * k / (1 + k * k)
        return norm * np.exp(-(k * up / sigma) ** pidx) * np.exp(-(um / k / sigma) ** pidx)

    val = (p["F"] * base(x, p["S1"], p["K1"], p["BIAS"], p["PINDEX1"])
           + (1 - p["F"]) * base(x, p["S2"], p["K2"], p["BIAS2"], p["PINDEX2"]))
    return val / energy / s


# ----------------------------------------------------------------------------------------
# CALDB writer
# ----------------------------------------------------------------------------------------
def _cbd(conv):
    return [f"VERSION({IRF_NAME})", f"CLASS({IRF_NAME}_{conv})", "ENERG(18-560000)MeV",
            "CTHETA(0.2-1)", "PHI(0-360)deg", "NONE", "NONE", "NONE", "NONE"]


def _calib_header(hdr, conv, cnam, desc, hduclas2, hduvers="1.0.0", filt=None):
    hdr["TELESCOP"] = "GLAST"
    hdr["INSTRUME"] = "LAT"
    hdr["DETNAM"] = conv
    if filt is not None:
        hdr["FILTER"] = filt
    hdr["HDUCLASS"] = "OGIP"
    hdr["HDUDOC"] = "CAL/GEN/92-019"
    hdr["HDUCLAS1"] = "RESPONSE"
    hdr["HDUCLAS2"] = hduclas2
    hdr["HDUVERS"] = hduvers
    hdr["CCLS0001"] = "BCF"
    hdr["CDTP0001"] = "DATA"
    hdr["CCNM0001"] = cnam
    for i, v in enumerate(_cbd(conv), start=1):
        hdr[f"CBD{i}0001"] = v
    hdr["CVSD0001"] = ("2007-01-17", "Dataset validity start date (UTC)")
    hdr["CVST0001"] = "00:00:00"
    hdr["CDES0001"] = desc
    hdr["DATE"] = SYNTH_DATE
    hdr["ORIGIN"] = "fermixr"
    hdr.add_comment(_SYNTH_COMMENT)


def _grid_table_hdu(extname, energy_edges, ctheta_edges, columns, unit=None):
    """One-row BINTABLE with ENERG_LO/HI, CTHETA_LO/HI and (ncth, nE) parameter columns."""
    from astropy.io import fits

    ne, nc = energy_edges.size - 1, ctheta_edges.size - 1
    cols = [
        fits.Column("ENERG_LO", f"{ne}E", unit="MeV",
                    array=energy_edges[None, :-1].astype(np.float32)),
        fits.Column("ENERG_HI", f"{ne}E", unit="MeV",
                    array=energy_edges[None, 1:].astype(np.float32)),
        fits.Column("CTHETA_LO", f"{nc}E", array=ctheta_edges[None, :-1].astype(np.float32)),
        fits.Column("CTHETA_HI", f"{nc}E", array=ctheta_edges[None, 1:].astype(np.float32)),
    ]
    for name, values in columns:
        values = np.asarray(values, float)
        assert values.shape == (nc, ne), (name, values.shape)
        cols.append(fits.Column(name, f"{ne * nc}E", unit=unit, dim=f"({ne}, {nc})",
                                array=values[None].astype(np.float32)))
    hdu = fits.BinTableHDU.from_columns(cols, name=extname)
    hdu.header["1CTYP5"] = ("ENERGY", "Always use log(ENERGY) for interpolation")
    hdu.header["2CTYP5"] = ("COSTHETA", "Off-axis angle cosine")
    hdu.header["CREF5"] = "(ENERG_LO:ENERG_HI,CTHETA_LO:CTHETA_HI)"
    return hdu


def _primary(filename):
    from astropy.io import fits

    p = fits.PrimaryHDU()
    p.header["ORIGIN"] = ("fermixr", "name of organization making this file")
    p.header["FILENAME"] = filename
    p.header["DATE"] = SYNTH_DATE
    p.header.add_comment(_SYNTH_COMMENT)
    return p


def _bin_centres(edges, log=False):
    if log:
        return np.sqrt(edges[:-1] * edges[1:])
    return 0.5 * (edges[:-1] + edges[1:])


def _aeff_hdul():
    from astropy.io import fits

    g = irf_grids()
    ec = _bin_centres(g["aeff_energy"], log=True)
    cc = _bin_centres(g["aeff_ctheta"])
    pec = _bin_centres(g["par_energy"], log=True)
    hdus = [_primary(f"aeff_{IRF_NAME}_FB.fits")]
    for conv in ("FRONT", "BACK"):
        area = aeff_m2(ec[None, :], cc[:, None], conv)
        h = _grid_table_hdu(f"EFFECTIVE AREA_{conv}", g["aeff_energy"], g["aeff_ctheta"],
                            [("EFFAREA", area)], unit="m2")
        h.header["CSYSNAME"] = "XMA_POL"
        h.header["EARVERSN"] = "1992a"
        _calib_header(h.header, conv, "EFF_AREA", "GLAST LAT effective area", "EFF_AREA")
        hdus.append(h)
        zeros = np.zeros((g["par_ctheta"].size - 1, pec.size))
        h = _grid_table_hdu(f"PHI_DEPENDENCE_{conv}", g["par_energy"], g["par_ctheta"],
                            [("PHIDEP0", zeros), ("PHIDEP1", zeros)])
        h.header["EARVERSN"] = "1992a"
        _calib_header(h.header, conv, "PHI_DEP", "GLAST LAT effective area", "RPSF")
        h.header.add_comment("PHIDEP0 = 0: no azimuthal dependence of the effective area.")
        hdus.append(h)
        h = fits.BinTableHDU.from_columns(
            [fits.Column("EFFICIENCY_PARS", "6E", array=_EFFICIENCY.astype(np.float32))],
            name=f"EFFICIENCY_PARAMS_{conv}")
        _calib_header(h.header, conv, "EFFICIENCY_PARS", "GLAST LAT effective area",
                      "PSFPARAMS", hduvers="1.2.0", filt="NULL")
        h.header.add_comment("Row 1: p0 (slope on the livetime fraction), row 2: p1 "
                             "(offset); efficiency = p0(logE)*f + p1(logE) = 1 at f = 0.9.")
        hdus.append(h)
    return fits.HDUList(hdus)


def _psf_hdul():
    from astropy.io import fits

    g = irf_grids()
    hdus = [_primary(f"psf_{IRF_NAME}_FB.fits")]
    for conv in ("FRONT", "BACK"):
        pars = psf_table_params(conv)
        h = _grid_table_hdu(f"RPSF_{conv}", g["par_energy"], g["par_ctheta"],
                            [(k, pars[k]) for k in ("NCORE", "NTAIL", "SCORE", "STAIL",
                                                    "GCORE", "GTAIL")])
        h.header["CSYSNAME"] = "XMA_POL"
        h.header["EARVERSN"] = "1992a"
        _calib_header(h.header, conv, "RPSF", "GLAST LAT point spread function", "RPSF")
        h.header["PSFVER"] = (3, "File format version")
        hdus.append(h)
        p = _PSF[conv]
        h = fits.BinTableHDU.from_columns(
            [fits.Column("PSFSCALE", "3E",
                         array=np.array([[p["c0"], p["c1"], p["beta"]]], np.float32))],
            name=f"PSF_SCALING_PARAMS_{conv}")
        _calib_header(h.header, conv, "PSF_SCALING", "GLAST LAT point spread function",
                      "PSFPARAMS", hduvers="1.2.0", filt="NULL")
        hdus.append(h)
        zeros = np.zeros((g["fisheye_ctheta"].size - 1, g["fisheye_energy"].size - 1))
        h = _grid_table_hdu(f"FISHEYE_CORRECTION_{conv}", g["fisheye_energy"],
                            g["fisheye_ctheta"],
                            [("MEAN", zeros), ("MEDIAN", zeros), ("PEAK", zeros)])
        h.header["CSYSNAME"] = "XMA_POL"
        h.header["EARVERSN"] = "1992a"
        _calib_header(h.header, conv, "FISHEYE_CORR", "GLAST LAT point spread function",
                      "RPSF")
        h.header["PSFVER"] = (3, "File format version")
        h.header.add_comment("No fisheye correction in the synthetic response (all zero).")
        hdus.append(h)
    return fits.HDUList(hdus)


def _edisp_hdul():
    from astropy.io import fits

    g = irf_grids()
    shape = (g["par_ctheta"].size - 1, g["par_energy"].size - 1)
    hdus = [_primary(f"edisp_{IRF_NAME}_FB.fits")]
    for conv in ("FRONT", "BACK"):
        cols = [(k, np.full(shape, _EDISP_PARS[k]))
                for k in ("F", "S1", "K1", "BIAS", "BIAS2", "S2", "K2", "PINDEX1", "PINDEX2")]
        h = _grid_table_hdu(f"ENERGY DISPERSION_{conv}", g["par_energy"], g["par_ctheta"],
                            cols)
        h.header["CSYSNAME"] = "XMA_POL"
        h.header["EARVERSN"] = "1992a"
        _calib_header(h.header, conv, "EDISP", "GLAST LAT ENERGY DISPERSION", "EDISP")
        h.header["EDISPVER"] = (3, "File format version")
        hdus.append(h)
        h = fits.BinTableHDU.from_columns(
            [fits.Column("EDISPSCALE", "6E",
                         array=_EDISP_SCALE[conv][None].astype(np.float32))],
            name=f"EDISP_SCALING_PARAMS_{conv}")
        _calib_header(h.header, conv, "EDISP_SCALING", "GLAST LAT ENERGY DISPERSION",
                      "EDISPPARAMS", hduvers="1.2.0", filt="NULL")
        hdus.append(h)
    return fits.HDUList(hdus)


def _caldb_index_hdul(entries):
    from astropy.io import fits

    n = len(entries)

    def col(name, fmt, key, dtype=None):
        vals = [e[key] for e in entries]
        arr = np.array(vals, dtype=dtype) if dtype is not None else np.array(vals)
        return fits.Column(name, fmt, array=arr)

    cbd = np.array([[s.ljust(70) for s in e["cbd"]] for e in entries])
    cols = [
        fits.Column("TELESCOP", "10A", array=np.array(["GLAST"] * n)),
        fits.Column("INSTRUME", "10A", array=np.array(["LAT"] * n)),
        col("DETNAM", "20A", "detnam"),
        col("FILTER", "10A", "filter"),
        fits.Column("CAL_DEV", "20A", array=np.array(["ONLINE"] * n)),
        col("CAL_DIR", "70A", "dir"),
        col("CAL_FILE", "40A", "file"),
        fits.Column("CAL_CLAS", "3A", array=np.array(["BCF"] * n)),
        fits.Column("CAL_DTYP", "4A", array=np.array(["DATA"] * n)),
        col("CAL_CNAM", "20A", "cnam"),
        fits.Column("CAL_CBD", "630A70", array=np.array(["".join(r) for r in cbd])),
        col("CAL_XNO", "I", "xno", np.int16),
        fits.Column("CAL_VSD", "10A", array=np.array(["2007-01-17"] * n)),
        fits.Column("CAL_VST", "8A", array=np.array(["00:00:00"] * n)),
        fits.Column("REF_TIME", "D", array=np.full(n, 54117.0)),
        fits.Column("CAL_QUAL", "I", array=np.zeros(n, np.int16)),
        fits.Column("CAL_DATE", "10A", array=np.array([SYNTH_DATE[:10]] * n)),
        col("CAL_DESC", "70A", "desc"),
    ]
    h = fits.BinTableHDU.from_columns(cols, name="CIF")
    h.header["CIFVERSN"] = (" 1.1", "Version of CIF format")
    h.header.add_comment(_SYNTH_COMMENT)
    p = fits.PrimaryHDU()
    p.header.add_comment(_SYNTH_COMMENT)
    return fits.HDUList([p, h])


def write_caldb(caldb_root) -> dict:
    """Write the FXR_SYNTH_V1 CALDB under ``caldb_root`` (``data/glast/lat/bcf/{ea,psf,
    edisp}`` and ``data/glast/lat/caldb.indx``).  Returns the written paths."""
    root = Path(caldb_root)
    lat = root / "data" / "glast" / "lat"
    out = {}
    entries = []
    for sub, prefix, build in (("ea", "aeff", _aeff_hdul), ("psf", "psf", _psf_hdul),
                               ("edisp", "edisp", _edisp_hdul)):
        d = lat / "bcf" / sub
        d.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}_{IRF_NAME}_FB.fits"
        hdul = build()
        hdul.writeto(d / name, overwrite=True)
        out[sub] = d / name
        for xno, hdu in enumerate(hdul[1:], start=1):
            entries.append(dict(
                detnam=hdu.header["DETNAM"], filter=hdu.header.get("FILTER", "NONE"),
                dir=f"data/glast/lat/bcf/{sub}", file=name, cnam=hdu.header["CCNM0001"],
                cbd=[hdu.header[f"CBD{i}0001"] for i in range(1, 10)], xno=xno,
                desc=hdu.header["CDES0001"]))
    index = lat / "caldb.indx"
    _caldb_index_hdul(entries).writeto(index, overwrite=True)
    out["index"] = index
    return out


# ----------------------------------------------------------------------------------------
# event simulation
# ----------------------------------------------------------------------------------------
# P8R2 EVENT_CLASS words of SOURCE-class events and their frequencies in real data
_EVCLASS_WORDS = np.array([16877567, 16876031, 16876543, 16811007, 16810495, 100351, 98815])
_EVCLASS_FREQ = np.array([950, 238, 113, 75, 75, 22, 11], float)


def _energy_envelope(cfg, spectrum, ltf_max, nbin=200):
    """Bins in true energy with the flux integral and an upper bound of
    A(E, cos theta) * efficiency over each bin (for rejection sampling)."""
    edges = np.geomspace(cfg.etrue_min, cfg.etrue_max, nbin + 1)
    fint = spectrum.integral(edges[:-1], edges[1:])
    sub = np.geomspace(edges[:-1], edges[1:], 9, axis=1)       # (nbin, 9) points per bin
    env = aeff_cm2(sub, 1.0) * np.maximum(efficiency_factor(sub, ltf_max),
                                          efficiency_factor(sub, 0.0))
    env = env.max(axis=1) * 1.02          # safety margin over the bin
    return edges, fint, env


def _sample_powerlaw_in_bins(rng, lo, hi, index):
    u = rng.random(lo.size)
    if abs(index - 1.0) < 1e-12:
        return lo * (hi / lo) ** u
    g = 1.0 - index
    return (lo ** g + u * (hi ** g - lo ** g)) ** (1.0 / g)


def _detect(cfg, rng, spectrum, directions_fn, solid_angle, ft2, chunk=200_000):
    """Draw the photons of one component that the LAT detects (true quantities).

    ``directions_fn(rng, n)`` gives n true directions (unit vectors); ``solid_angle`` is the
    solid angle they are drawn over (1 for a point source).  Returns arrays time, energy,
    direction (n, 3), costheta, conversion (0 front / 1 back), and the number of candidates.
    """
    live = np.asarray(ft2["LIVETIME"], float)
    start = np.asarray(ft2["START"], float)
    dt = np.asarray(ft2["STOP"], float) - start
    ltfrac = np.where(dt > 0, live / dt, 0.0)
    if getattr(spectrum, "variability", ()):
        # a variable source: each row's livetime weighted by the flux factor at its middle
        weight = live * spectrum.multiplier(start + 0.5 * dt)
    else:
        weight = live
    total_live = weight.sum()
    edges, fint, env = _energy_envelope(cfg, spectrum, ltfrac.max())
    w = fint * env
    lam = w.sum() * total_live * solid_angle
    ncand = int(rng.poisson(lam))
    bin_cdf = np.cumsum(w) / w.sum()
    row_cdf = np.cumsum(weight) / total_live
    horizon = horizon_zenith_angle(cfg)
    keep = {k: [] for k in ("time", "energy", "dir", "cth", "conv")}
    done = 0
    while done < ncand:
        n = min(chunk, ncand - done)
        done += n
        jb = np.minimum(np.searchsorted(bin_cdf, rng.random(n), side="right"), fint.size - 1)
        energy = _sample_powerlaw_in_bins(rng, edges[jb], edges[jb + 1], spectrum.index)
        row = np.minimum(np.searchsorted(row_cdf, rng.random(n), side="right"),
                         live.size - 1)
        time = start[row] + rng.random(n) * dt[row]
        d = directions_fn(rng, n)
        u_acc = rng.random(n)
        st = spacecraft_state(time, cfg)
        cth = _dot(d, st["scz"])
        area = aeff_cm2(energy, cth)
        accept_p = area * efficiency_factor(energy, ltfrac[row]) / env[jb]
        ok = u_acc < accept_p
        if cfg.earth_occultation:
            ok &= _angle_deg(d, st["zenith"]) < horizon
        if np.any(accept_p > 1.0 + 1e-9):
            raise AssertionError("rejection envelope too low (internal error)")
        u_conv = rng.random(n)
        front_frac = np.divide(aeff_cm2(energy, cth, "FRONT"), area,
                               out=np.zeros_like(area), where=area > 0)
        conv = (u_conv >= front_frac).astype(np.int16)
        keep["time"].append(time[ok])
        keep["energy"].append(energy[ok])
        keep["dir"].append(d[ok])
        keep["cth"].append(cth[ok])
        keep["conv"].append(conv[ok])
    out = {k: (np.concatenate(v) if v else np.zeros((0, 3) if k == "dir" else 0))
           for k, v in keep.items()}
    out["n_candidates"] = ncand
    return out


def _sample_king(rng, sigma, gamma, rmax):
    """Radii (rad) from the planar King function truncated at rmax."""
    fmax = _king_cdf((rmax / sigma) ** 2 / 2.0, gamma)
    u = rng.random(sigma.size) * fmax
    return sigma * np.sqrt(2.0 * gamma * ((1.0 - u) ** (1.0 / (1.0 - gamma)) - 1.0))


def _apply_psf(rng, energy, cth, conv, directions):
    """Reconstructed directions: offsets drawn from the tabulated PSF (node mixture)."""
    n = energy.size
    offset = np.zeros(n)
    corners, weights = _psf_corners(energy, cth)
    wcum = np.cumsum(np.stack(weights, axis=1), axis=1)
    u_corner = rng.random(n)
    pick = np.minimum((u_corner[:, None] >= wcum).sum(axis=1), 3)
    u_comp = rng.random(n)
    half_pi = 0.5 * math.pi
    for ci, cname in enumerate(("FRONT", "BACK")):
        tab = _psf_tables_f32(cname)
        for k, (ie, ic) in enumerate(corners):
            sel = (conv == ci) & (pick == k)
            if not np.any(sel):
                continue
            e_i, c_i = ie[sel], ic[sel]
            s = psf_scale(tab["enode"][e_i], cname)
            sc, st = tab["SCORE"][c_i, e_i] * s, tab["STAIL"][c_i, e_i] * s
            gc, gt = tab["GCORE"][c_i, e_i], tab["GTAIL"][c_i, e_i]
            nt = tab["NTAIL"][c_i, e_i]
            wc = sc ** 2 * _king_cdf((half_pi / sc) ** 2 / 2, gc)
            wt = nt * st ** 2 * _king_cdf((half_pi / st) ** 2 / 2, gt)
            tail = u_comp[sel] < wt / (wc + wt)
            sigma = np.where(tail, st, sc)
            gamma = np.where(tail, gt, gc)
            offset[sel] = _sample_king(rng, sigma, gamma, half_pi)
    posangle = rng.random(n) * 2.0 * math.pi
    return _offset_directions(directions, offset, posangle), np.degrees(offset)


def _apply_edisp(rng, energy, cth, conv):
    """Reconstructed energies drawn from the Pass 8 dispersion of the synthetic tables."""
    n = energy.size
    p = _EDISP_PARS
    s_d = np.where(conv == 0, edisp_scale(energy, cth, "FRONT"),
                   edisp_scale(energy, cth, "BACK"))
    first = rng.random(n) < p["F"]
    sigma = np.where(first, p["S1"], p["S2"])
    k = np.where(first, p["K1"], p["K2"])
    b = np.where(first, p["BIAS"], p["BIAS2"])
    pidx = np.where(first, p["PINDEX1"], p["PINDEX2"])
    negative = rng.random(n) < k * k / (1.0 + k * k)
    gam = rng.gamma(1.0 / pidx)
    mag = gam ** (1.0 / pidx)
    uu = np.where(negative, -k * sigma * mag, sigma / k * mag)
    x = b + uu
    return energy * (1.0 + s_d * x)


def _cap_directions(center_vec, radius_deg):
    cos_r = math.cos(math.radians(radius_deg))

    def draw(rng, n):
        cosa = 1.0 - rng.random(n) * (1.0 - cos_r)
        pa = rng.random(n) * 2 * math.pi
        return _offset_directions(np.broadcast_to(center_vec, (n, 3)).copy(),
                                  np.arccos(cosa), pa)

    return draw, 2 * math.pi * (1.0 - cos_r)


def simulate_events(cfg: SyntheticConfig, ft2: dict, rng: np.random.Generator):
    """Draw the FT1 events.

    Returns ``(columns, counts, component)``: the EVENTS columns (FT1 names, sorted by
    TIME), per-component counts (``n_candidates``, ``n_detected``, ``n_selected``) and, per
    event, the index of the component it came from (sources in order, then background).
    """
    roi_vec = _radec_to_vec(cfg.roi_ra, cfg.roi_dec)
    comps = []
    for src in cfg.sources:
        v = _radec_to_vec(src.ra, src.dec)
        comps.append((src.name, src, (lambda rng, n, v=v: np.broadcast_to(v, (n, 3)).copy()),
                      1.0))
    draw, omega = _cap_directions(roi_vec, cfg.roi_radius + cfg.background_margin)
    comps.append((cfg.background.name, cfg.background, draw, omega))

    parts, truth = [], {}
    for ic, (name, spec, fn, omega) in enumerate(comps):
        det = _detect(cfg, rng, spec, fn, omega, ft2)
        rdir, offset = _apply_psf(rng, det["energy"], det["cth"], det["conv"], det["dir"])
        erec = _apply_edisp(rng, det["energy"], det["cth"], det["conv"])
        in_roi = (_angle_deg(rdir, roi_vec) <= cfg.roi_radius)
        in_e = (erec >= cfg.emin) & (erec <= cfg.emax)
        sel = in_roi & in_e
        truth[name] = dict(n_candidates=int(det["n_candidates"]),
                           n_detected=int(det["energy"].size), n_selected=int(sel.sum()))
        parts.append(dict(time=det["time"][sel], etrue=det["energy"][sel],
                          energy=erec[sel], dir=rdir[sel], conv=det["conv"][sel],
                          comp=np.full(int(sel.sum()), ic, np.int16)))
    ev = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(ev["time"], kind="stable")
    ev = {k: v[order] for k, v in ev.items()}
    return _ft1_columns(cfg, ft2, rng, ev), truth, ev["comp"]


def _ft1_columns(cfg, ft2, rng, ev):
    n = ev["time"].size
    st = spacecraft_state(ev["time"], cfg) if n else None
    d = ev["dir"]
    ra, dec = _vec_to_radec(d) if n else (np.zeros(0), np.zeros(0))
    glon, glat = _vec_to_radec(d @ _GAL.T) if n else (np.zeros(0), np.zeros(0))
    if n:
        theta = _angle_deg(d, st["scz"])
        phi = np.degrees(np.arctan2(_dot(d, st["scy"]), _dot(d, st["scx"]))) % 360.0
        zenith = _angle_deg(d, st["zenith"])
        zen = st["zenith"]
        north = np.zeros_like(zen)
        north[:, 2] = 1.0
        east = _unit(np.cross(north, zen))
        loc_north = np.cross(zen, east)
        azimuth = np.degrees(np.arctan2(_dot(d, east), _dot(d, loc_north))) % 360.0
    else:
        theta = phi = zenith = azimuth = np.zeros(0)

    # runs: one per GTI; RUN_ID = integer MET a few seconds before the GTI start
    g_start, g_stop = good_time_intervals(ft2)
    gi = np.clip(np.searchsorted(g_start, ev["time"], side="right") - 1, 0,
                 max(g_start.size - 1, 0))
    run_id = (np.floor(g_start) - 3).astype(np.int64)[gi] if n else np.zeros(0, np.int64)
    # livetime since the start of the run, from the FT2 live fractions
    start = np.asarray(ft2["START"], float)
    stop = np.asarray(ft2["STOP"], float)
    live = np.asarray(ft2["LIVETIME"], float)
    cum = np.concatenate([[0.0], np.cumsum(live)])
    row = np.clip(np.searchsorted(start, ev["time"], side="right") - 1, 0, start.size - 1)
    frac = (ev["time"] - start[row]) / (stop[row] - start[row])
    lt_at = cum[row] + frac * live[row]
    g_row = np.clip(np.searchsorted(start, g_start[gi], side="left"), 0, start.size - 1)
    ev_live = lt_at - cum[g_row]
    # event ids: increasing within a run, with gaps for the events not downlinked
    event_id = np.zeros(n, np.int64)
    for r in np.unique(run_id):
        sel = np.nonzero(run_id == r)[0]
        event_id[sel] = np.cumsum(rng.integers(1, 400, sel.size))
    # event class and type bits
    words = _EVCLASS_WORDS[rng.choice(_EVCLASS_WORDS.size, size=n,
                                      p=_EVCLASS_FREQ / _EVCLASS_FREQ.sum())]
    psf_q = rng.integers(0, 4, n)
    edisp_q = rng.integers(0, 4, n)
    type_words = (1 << ev["conv"].astype(np.int64)) | (1 << (2 + psf_q)) | (1 << (6 + edisp_q))
    return {
        "ENERGY": ev["energy"], "RA": ra, "DEC": dec, "L": glon, "B": glat,
        "THETA": theta, "PHI": phi, "ZENITH_ANGLE": zenith, "EARTH_AZIMUTH_ANGLE": azimuth,
        "TIME": ev["time"], "EVENT_ID": event_id.astype(np.int32),
        "RUN_ID": run_id.astype(np.int32), "RECON_VERSION": np.zeros(n, np.int16),
        "CALIB_VERSION": np.zeros((n, 3), np.int16),
        "EVENT_CLASS": _bits32(words), "EVENT_TYPE": _bits32(type_words),
        "CONVERSION_TYPE": ev["conv"].astype(np.int16), "LIVETIME": ev_live,
        **{f"DIFRSP{i}": np.zeros(n, np.float32) for i in range(5)},
    }


def _bits32(words):
    """(n, 32) bool array of 32-bit words, element 0 the most significant bit (FITS 32X)."""
    words = np.asarray(words, np.int64)
    return ((words[:, None] >> np.arange(31, -1, -1)) & 1).astype(bool)


def bits_to_int(bits) -> np.ndarray:
    """Inverse of the FITS 32X layout: (n, 32) bools -> integer words."""
    b = np.asarray(bits, bool)
    return (b.astype(np.int64) << np.arange(b.shape[1] - 1, -1, -1)).sum(axis=1)


# ----------------------------------------------------------------------------------------
# expected counts (independent quadrature over time, direction and energy)
# ----------------------------------------------------------------------------------------
def expected_detected(cfg: SyntheticConfig, ft2: dict, substeps: int = 6,
                      n_energy: int = 400, n_rings: int = 40, n_az: int = 48) -> dict:
    """Expected number of detected photons (true quantities, before PSF, dispersion and
    cuts) of every component: a midpoint quadrature of flux x Aeff x efficiency x livetime
    over time (``substeps`` per FT2 row), true energy and (background) the drawing cap."""
    start = np.asarray(ft2["START"], float)
    stop = np.asarray(ft2["STOP"], float)
    live = np.asarray(ft2["LIVETIME"], float)
    dt = stop - start
    ltfrac = np.where(dt > 0, live / dt, 0.0)
    frac = (np.arange(substeps) + 0.5) / substeps
    times = (start[:, None] + frac[None, :] * dt[:, None]).ravel()
    wt = np.repeat(live / substeps, substeps)
    f_row = np.repeat(ltfrac, substeps)
    keep = wt > 0
    times, wt, f_row = times[keep], wt[keep], f_row[keep]
    st = spacecraft_state(times, cfg)
    horizon = horizon_zenith_angle(cfg)

    edges = np.geomspace(cfg.etrue_min, cfg.etrue_max, n_energy + 1)
    ec = np.sqrt(edges[:-1] * edges[1:])
    loge = np.log10(ec)
    p0 = _eff_param(_EFFICIENCY[0], loge)
    p1 = _eff_param(_EFFICIENCY[1], loge)
    # A(E, c) = G(c) * Q(E): build Q from the analytic form
    q = np.zeros_like(ec)
    for conv in ("FRONT", "BACK"):
        p = _AEFF[conv]
        q += 1e4 * p["a_inf"] / (1.0 + (ec / p["e0"]) ** (-p["k"])) / (1.0 + (ec / p["e_hi"])
                                                                        ** p["m"])

    def g_of(c):
        x = np.clip((c - _AEFF_CTH_MIN) / _AEFF_CTH_SCALE, 0.0, None)
        return np.where(c > _AEFF_CTH_MIN, 1.0 - np.exp(-x * x), 0.0)

    out = {}

    def time_sum(dvec, spectrum):
        fint = spectrum.integral(edges[:-1], edges[1:])
        s_slope = np.sum(fint * q * p0)
        s_off = np.sum(fint * q * p1)
        c = _dot(st["scz"], dvec)
        vis = np.ones_like(c, bool)
        if cfg.earth_occultation:
            vis = _angle_deg(st["zenith"], dvec) < horizon
        w_t = wt
        if getattr(spectrum, "variability", ()):   # as drawn: the factor at row middles
            w_t = wt * np.repeat(spectrum.multiplier(start + 0.5 * dt), substeps)[keep]
        return np.sum(w_t * g_of(c) * vis * (s_slope * f_row + s_off))

    for src in cfg.sources:
        out[src.name] = float(time_sum(_radec_to_vec(src.ra, src.dec), src))

    # background: rings of equal solid angle x azimuth bins over the drawing cap
    radius = cfg.roi_radius + cfg.background_margin
    cos_r = math.cos(math.radians(radius))
    cos_edges = np.linspace(1.0, cos_r, n_rings + 1)
    cos_mid = 0.5 * (cos_edges[:-1] + cos_edges[1:])
    az = (np.arange(n_az) + 0.5) * 2 * math.pi / n_az
    roi_vec = _radec_to_vec(cfg.roi_ra, cfg.roi_dec)
    dirs = _offset_directions(np.broadcast_to(roi_vec, (n_rings * n_az, 3)).copy(),
                              np.repeat(np.arccos(cos_mid), n_az), np.tile(az, n_rings))
    d_omega = 2 * math.pi * (1.0 - cos_r) / dirs.shape[0]
    bkg = cfg.background
    fint = bkg.integral(edges[:-1], edges[1:])
    s_slope = np.sum(fint * q * p0)
    s_off = np.sum(fint * q * p1)
    total = 0.0
    for i0 in range(0, times.size, 2000):
        sl = slice(i0, i0 + 2000)
        c = st["scz"][sl] @ dirs.T
        vis = np.ones_like(c, bool)
        if cfg.earth_occultation:
            vis = st["zenith"][sl] @ dirs.T > math.cos(math.radians(horizon))
        total += np.sum((wt[sl] * (s_slope * f_row[sl] + s_off))[:, None] * g_of(c) * vis)
    out[bkg.name] = float(total * d_omega)
    return out


# ----------------------------------------------------------------------------------------
# FITS writers for FT1 / FT2
# ----------------------------------------------------------------------------------------
def _met_to_isot(met):
    from astropy.time import Time, TimeDelta

    t = Time(MJDREFI + MJDREFF, format="mjd", scale="tt") + TimeDelta(float(met), format="sec")
    return t.utc.isot


def _time_keywords(hdr, tstart, tstop):
    hdr["TELESCOP"] = ("GLAST", "name of telescope generating data")
    hdr["INSTRUME"] = ("LAT", "name of instrument generating data")
    hdr["EQUINOX"] = (2000.0, "equinox for ra and dec")
    hdr["RADECSYS"] = ("FK5", "world coord. system for this file")
    hdr["DATE"] = (SYNTH_DATE, "creation date (fixed: reproducible files)")
    hdr["DATE-OBS"] = (_met_to_isot(tstart), "start date and time (UTC)")
    hdr["DATE-END"] = (_met_to_isot(tstop), "end date and time (UTC)")
    hdr["TSTART"] = (float(tstart), "mission time of the start of the observation")
    hdr["TSTOP"] = (float(tstop), "mission time of the end of the observation")
    hdr["MJDREFI"] = (float(MJDREFI), "Integer part of MJD of SC clock start")
    hdr["MJDREFF"] = (MJDREFF, "Fractional part of MJD of SC clock start")
    hdr["TIMEUNIT"] = ("s", "units for the time related keywords")
    hdr["TIMEZERO"] = (0.0, "clock correction")
    hdr["TIMESYS"] = ("TT", "type of time system that is used")
    hdr["TIMEREF"] = ("LOCAL", "reference frame used for times")
    hdr["CLOCKAPP"] = (False, "whether a clock drift correction was applied")
    hdr["GPS_OUT"] = (False, "whether GPS time was unavailable")
    hdr["OBSERVER"] = ("fermixr synthetic", "not an observation")
    hdr["ORIGIN"] = ("fermixr", "name of organization making file")


_FT2_COLUMNS = [
    # name, format, unit, tlmin, tlmax
    ("START", "D", "s", 0.0, 1e10), ("STOP", "D", "s", 0.0, 1e10),
    ("SC_POSITION", "3E", "m", None, None),
    ("LAT_GEO", "E", "deg", -90.0, 90.0), ("LON_GEO", "E", "deg", 0.0, 360.0),
    ("RAD_GEO", "D", "m", 0.0, 10000.0),
    ("RA_ZENITH", "E", "deg", 0.0, 360.0), ("DEC_ZENITH", "E", "deg", -90.0, 90.0),
    ("B_MCILWAIN", "E", "Gauss", 0.0, 100.0), ("L_MCILWAIN", "E", "Earth_Radii", 0.0, 100.0),
    ("GEOMAG_LAT", "E", "deg", 0.0, 90.0), ("LAMBDA", "E", "deg", -90.0, 90.0),
    ("IN_SAA", "L", None, None, None),
    ("RA_SCZ", "E", "deg", 0.0, 360.0), ("DEC_SCZ", "E", "deg", -90.0, 90.0),
    ("RA_SCX", "E", "deg", 0.0, 360.0), ("DEC_SCX", "E", "deg", -90.0, 90.0),
    ("RA_NPOLE", "E", "deg", 0.0, 360.0), ("DEC_NPOLE", "E", "deg", -90.0, 90.0),
    ("ROCK_ANGLE", "E", "deg", -180.0, 180.0),
    ("LAT_MODE", "J", None, None, None), ("LAT_CONFIG", "B", None, None, None),
    ("DATA_QUAL", "I", None, None, None), ("LIVETIME", "D", "s", None, None),
    ("QSJ_1", "D", None, None, None), ("QSJ_2", "D", None, None, None),
    ("QSJ_3", "D", None, None, None), ("QSJ_4", "D", None, None, None),
    ("RA_SUN", "E", "deg", 0.0, 360.0), ("DEC_SUN", "E", "deg", -90.0, 90.0),
]

_FT1_COLUMNS = [
    ("ENERGY", "E", "MeV", 0.0, 1e7), ("RA", "E", "deg", 0.0, 360.0),
    ("DEC", "E", "deg", -90.0, 90.0), ("L", "E", "deg", 0.0, 360.0),
    ("B", "E", "deg", -90.0, 90.0), ("THETA", "E", "deg", 0.0, 180.0),
    ("PHI", "E", "deg", 0.0, 360.0), ("ZENITH_ANGLE", "E", "deg", 0.0, 180.0),
    ("EARTH_AZIMUTH_ANGLE", "E", "deg", 0.0, 360.0), ("TIME", "D", "s", 0.0, 1e10),
    ("EVENT_ID", "J", None, 0, 2147483647), ("RUN_ID", "J", None, 0, 2147483647),
    ("RECON_VERSION", "I", None, 0, 32767), ("CALIB_VERSION", "3I", None, None, None),
    ("EVENT_CLASS", "32X", None, 0, 32767), ("EVENT_TYPE", "32X", None, 0, 32767),
    ("CONVERSION_TYPE", "I", None, 0, 32767), ("LIVETIME", "D", "s", 0.0, 1e10),
    ("DIFRSP0", "E", None, 0.0, 1e38), ("DIFRSP1", "E", None, 0.0, 1e38),
    ("DIFRSP2", "E", None, 0.0, 1e38), ("DIFRSP3", "E", None, 0.0, 1e38),
    ("DIFRSP4", "E", None, 0.0, 1e38),
]


def _table_hdu(spec, data, extname):
    from astropy.io import fits

    cols = []
    for name, fmt, unit, _lo, _hi in spec:
        arr = np.asarray(data[name])
        if fmt == "E" or fmt.endswith("E"):
            arr = arr.astype(np.float32)
        cols.append(fits.Column(name, fmt, unit=unit, array=arr))
    hdu = fits.BinTableHDU.from_columns(cols, name=extname)
    for i, (name, fmt, unit, lo, hi) in enumerate(spec, start=1):
        if lo is not None:
            hdu.header[f"TLMIN{i}"] = lo
            hdu.header[f"TLMAX{i}"] = hi
    return hdu


def write_ft2(path, ft2: dict, cfg: SyntheticConfig):
    from astropy.io import fits

    tstart, tstop = float(ft2["START"][0]), float(ft2["STOP"][-1])
    prim = fits.PrimaryHDU()
    _time_keywords(prim.header, tstart, tstop)
    prim.header["FILENAME"] = Path(path).name
    prim.header["CREATOR"] = ("fermixr.io.synthetic", "software creating file")
    prim.header.add_comment(_SYNTH_COMMENT)
    hdu = _table_hdu(_FT2_COLUMNS, ft2, "SC_DATA")
    _time_keywords(hdu.header, tstart, tstop)
    hdu.header["TASSIGN"] = ("SATELLITE", "location where time assignment performed")
    hdu.header.add_comment(_SYNTH_COMMENT)
    hdu.header.add_comment("Circular orbit, rocking profile, dipole geomagnetic field and an "
                           "elliptical SAA region (rows IN_SAA with LIVETIME 0).")
    hdu.header.add_comment("B_MCILWAIN follows the numeric scale of real FT2 files "
                           "(dipole field in units of 0.1 G).")
    fits.HDUList([prim, hdu]).writeto(path, overwrite=True)


def write_ft1(path, events: dict, gti_start, gti_stop, cfg: SyntheticConfig, truth=None):
    from astropy.io import fits

    tstart, tstop = float(cfg.tstart), float(cfg.tstart + cfg.duration)
    prim = fits.PrimaryHDU()
    _time_keywords(prim.header, tstart, tstop)
    prim.header["FILENAME"] = Path(path).name
    prim.header["CREATOR"] = ("fermixr.io.synthetic", "software creating file")
    prim.header.add_comment(_SYNTH_COMMENT)

    ev = _table_hdu(_FT1_COLUMNS, events, "EVENTS")
    h = ev.header
    _time_keywords(h, tstart, tstop)
    h["HDUCLASS"] = ("OGIP", "format conforms to OGIP standard")
    h["HDUCLAS1"] = ("EVENTS", "extension contains events")
    h["HDUCLAS2"] = ("ALL", "extension contains all events detected")
    h["PASS_VER"] = (PASS_VER, "event class bit layout of the file")
    h["NDIFRSP"] = (5, "Number of diffuse response labels")
    for i in range(5):
        h[f"DIFRSP{i}"] = ("NONE", f"Diffuse response label for component {i}")
    dss = [
        (f"BIT_MASK(EVENT_CLASS,{EVCLASS_SOURCE},{PASS_VER})", "DIMENSIONLESS", "1:1", None),
        (f"BIT_MASK(EVENT_TYPE,3,{PASS_VER})", "DIMENSIONLESS", "1:1", None),
        ("TIME", "s", "TABLE", ":GTI"),
        ("POS(RA,DEC)", "deg",
         f"CIRCLE({cfg.roi_ra:g},{cfg.roi_dec:g},{cfg.roi_radius:g})", None),
        ("ENERGY", "MeV", f"{cfg.emin:g}:{cfg.emax:g}", None),
    ]
    for i, (typ, uni, val, ref) in enumerate(dss, start=1):
        h[f"DSTYP{i}"] = typ
        h[f"DSUNI{i}"] = uni
        h[f"DSVAL{i}"] = val
        if ref is not None:
            h[f"DSREF{i}"] = ref
    h["NDSKEYS"] = len(dss)
    h.add_comment(_SYNTH_COMMENT)
    h.add_comment(f"Instrument response: {IRF_NAME} (synthetic CALDB shipped with fermixr).")
    h.add_comment(f"Simulation seed {cfg.seed}; the truth is in truth.yaml beside this file.")

    gti = fits.BinTableHDU.from_columns(
        [fits.Column("START", "D", unit="s", array=np.asarray(gti_start, float)),
         fits.Column("STOP", "D", unit="s", array=np.asarray(gti_stop, float))], name="GTI")
    g = gti.header
    _time_keywords(g, tstart, tstop)
    g["HDUCLASS"] = ("OGIP", "format conforms to OGIP standard")
    g["HDUCLAS1"] = ("GTI", "extension contains good time intervals")
    g["HDUCLAS2"] = ("ALL", "extension contains all science time")
    g["ONTIME"] = (float(np.sum(np.asarray(gti_stop) - np.asarray(gti_start))),
                   "sum of GTI lengths")
    g["TELAPSE"] = (tstop - tstart, "TSTOP - TSTART")
    g.add_comment(_SYNTH_COMMENT)
    fits.HDUList([prim, ev, gti]).writeto(path, overwrite=True)


# ----------------------------------------------------------------------------------------
# side files: isotropic spectrum, XML model, truth
# ----------------------------------------------------------------------------------------
def write_isotropic_spectrum(path, cfg: SyntheticConfig):
    """Isotropic template (energy MeV, dN/dE ph cm-2 s-1 MeV-1 sr-1, error), as the LAT
    team's iso_*.txt files."""
    e = np.geomspace(30.0, 1.0e6, 46)
    f = cfg.background.dnde(e)
    with open(path, "w") as fh:
        for ei, fi in zip(e, f):
            fh.write(f"{ei:.6g} {fi:.6e} {0.01 * fi:.6e}\n")


def write_source_model(path, cfg: SyntheticConfig, iso_file: str):
    """Science Tools XML model holding the true sources (PowerLaw2) and the isotropic
    background (FileFunction)."""
    lines = ['<?xml version="1.0" ?>', '<source_library title="fermixr synthetic truth">']
    b = cfg.background
    lines += [
        f'  <source type="DiffuseSource" name="{b.name}">',
        f'    <spectrum type="FileFunction" file="{iso_file}">',
        '      <parameter scale="1.0" name="Normalization" min="0.0" max="1000.0" '
        'value="1.0" free="1"/>',
        '    </spectrum>',
        '    <spatialModel type="ConstantValue">',
        '      <parameter scale="1.0" name="Value" min="0.0" max="10.0" value="1.0" '
        'free="0"/>',
        '    </spatialModel>',
        '  </source>',
    ]
    for s in cfg.sources:
        lines += [
            f'  <source type="PointSource" name="{s.name}">',
            '    <spectrum type="PowerLaw2">',
            f'      <parameter scale="1e-07" name="Integral" min="1e-05" max="1000.0" '
            f'value="{s.flux / 1e-7:.6g}" free="1"/>',
            f'      <parameter scale="-1.0" name="Index" min="0.0" max="5.0" '
            f'value="{s.index:.6g}" free="1"/>',
            f'      <parameter scale="1.0" name="LowerLimit" min="10.0" max="1000000.0" '
            f'value="{s.flux_emin:g}" free="0"/>',
            f'      <parameter scale="1.0" name="UpperLimit" min="10.0" max="1000000.0" '
            f'value="{s.flux_emax:g}" free="0"/>',
            '    </spectrum>',
            '    <spatialModel type="SkyDirFunction">',
            f'      <parameter scale="1.0" name="RA" min="-360.0" max="360.0" '
            f'value="{s.ra:.6g}" free="0"/>',
            f'      <parameter scale="1.0" name="DEC" min="-90.0" max="90.0" '
            f'value="{s.dec:.6g}" free="0"/>',
            '    </spatialModel>',
            '  </source>',
        ]
    lines.append('</source_library>')
    Path(path).write_text("\n".join(lines) + "\n")


def _truth_dict(cfg, truth_counts, expected, n_events, gti):
    srcs = []
    for s in cfg.sources:
        l, b = equatorial_to_galactic(s.ra, s.dec)
        srcs.append(dict(
            name=s.name, ra=s.ra, dec=s.dec, glon=round(float(l), 6), glat=round(float(b), 6),
            spectrum=dict(type="PowerLaw2", Integral=s.flux, Index=s.index,
                          LowerLimit=s.flux_emin, UpperLimit=s.flux_emax,
                          Prefactor_at_1000MeV=float(f"{s.prefactor(1000.0):.6e}")),
            expected_detected=round(expected[s.name], 3), **truth_counts[s.name]))
        if s.variability:
            srcs[-1]["variability"] = [[float(a), float(b), float(f)]
                                       for a, b, f in s.variability]
    b = cfg.background
    return dict(
        description=("Synthetic LAT data set of fermixr (not real data). Events drawn from "
                     "the sources below through the synthetic response " + IRF_NAME + "."),
        seed=cfg.seed, irfs=IRF_NAME, evclass=EVCLASS_SOURCE, evtype=3,
        time=dict(tstart=cfg.tstart, tstop=cfg.tstart + cfg.duration, n_gti=int(gti[0].size),
                  ontime=float(np.sum(gti[1] - gti[0]))),
        roi=dict(ra=cfg.roi_ra, dec=cfg.roi_dec, radius=cfg.roi_radius, emin=cfg.emin,
                 emax=cfg.emax),
        simulated_true_energy=[cfg.etrue_min, cfg.etrue_max],
        earth_occultation=cfg.earth_occultation,
        horizon_zenith_angle=round(horizon_zenith_angle(cfg), 4),
        n_events=int(n_events),
        sources=srcs,
        background=dict(name=b.name, type="isotropic power law",
                        intensity=b.intensity, index=b.index, flux_emin=b.flux_emin,
                        flux_emax=b.flux_emax, drawn_within_deg=cfg.roi_radius
                        + cfg.background_margin,
                        expected_detected=round(expected[b.name], 3),
                        **truth_counts[b.name]),
        orbit=dict(altitude_km=cfg.altitude_km, inclination=cfg.inclination,
                   raan0=cfg.raan0, arglat0=cfg.arglat0, rock_deg=cfg.rock_deg,
                   period_s=round(orbit_period(cfg), 3)),
        notes=[
            "expected_detected: photons the LAT detects (true energy in "
            "simulated_true_energy, before PSF, energy dispersion and ROI/energy cuts); "
            "n_detected is the drawn number, n_selected the number in the FT1 file.",
            "The background is isotropic and stands in for all diffuse emission.",
            "Earth occultation: no photon arrives from zenith angles above "
            "horizon_zenith_angle; livetime cubes with zmax above it over-predict counts.",
            "Only FRONT/BACK responses exist for " + IRF_NAME + "; the PSF/EDISP type bits of "
            "EVENT_TYPE are random quartiles.",
        ],
    )


# ----------------------------------------------------------------------------------------
# the one entry point
# ----------------------------------------------------------------------------------------
def make_example_dataset(outdir, config: SyntheticConfig | None = None, *,
                         compute_expected: bool = True) -> dict:
    """Generate the synthetic data set into ``outdir``.

    Writes ``ft2.fits``, ``ft1.fits``, ``caldb/`` (the FXR_SYNTH_V1 response and
    ``caldb.indx``), ``iso_FXR_SYNTH_V1.txt``, ``source_model.xml`` and ``truth.yaml``.
    Deterministic: the same config (seed included) gives byte-identical files.
    Returns a dict of paths (``ft1``, ``ft2``, ``caldb``, ``caldb_ea``, ``caldb_psf``,
    ``caldb_edisp``, ``caldb_index``, ``iso``, ``model``, ``truth``) plus ``truth_dict``,
    the content of truth.yaml.
    """
    import yaml

    cfg = config or SyntheticConfig()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)

    ft2 = make_ft2_rows(cfg)
    gti = good_time_intervals(ft2)
    events, counts, _comp = simulate_events(cfg, ft2, rng)
    expected = (expected_detected(cfg, ft2) if compute_expected
                else {k: float("nan") for k in counts})

    paths = dict(ft2=out / "ft2.fits", ft1=out / "ft1.fits", caldb=out / "caldb",
                 iso=out / f"iso_{IRF_NAME}.txt", model=out / "source_model.xml",
                 truth=out / "truth.yaml")
    write_ft2(paths["ft2"], ft2, cfg)
    write_ft1(paths["ft1"], events, gti[0], gti[1], cfg)
    paths.update({f"caldb_{k}": v for k, v in write_caldb(paths["caldb"]).items()})
    write_isotropic_spectrum(paths["iso"], cfg)
    write_source_model(paths["model"], cfg, paths["iso"].name)
    truth = _truth_dict(cfg, counts, expected, events["TIME"].size, gti)
    with open(paths["truth"], "w") as fh:
        fh.write("# Truth of fermixr's synthetic example data set (made by "
                 "fermixr.io.synthetic.make_example_dataset). NOT real LAT data.\n")
        yaml.safe_dump(truth, fh, sort_keys=False, default_flow_style=None, width=100)
    paths["truth_dict"] = truth
    return paths
