"""Radial tables (PSF or PSF-convolved source profiles) shared by the source-map modules.

A radial table is ``offsets`` (deg, ascending, first >= 0) and ``values`` (nE, noff) in
sr^-1.  Helpers here validate them, prepare the arrays the kernels take, compute sphere
integrals and containment radii, and give unit vectors of sky directions.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError


class RadialTable:
    """Validated radial table with the kernel-ready arrays (radians, logs)."""

    __slots__ = ("offsets", "values", "off_rad", "logoff", "logval")

    def __init__(self, offsets, values, n_energy=None, what="psf"):
        off = np.asarray(offsets, dtype=np.float64).ravel()
        val = np.asarray(values, dtype=np.float64)
        if val.ndim == 1:
            val = val[None, :]
        if off.size < 2 or np.any(np.diff(off) <= 0) or off[0] < 0 or not np.all(np.isfinite(off)):
            raise GeometryError(
                f"{what} offsets must be >= 2 strictly ascending angles >= 0 deg, got "
                f"{off.size} values from {off[:1]} to {off[-1:]}")
        if val.ndim != 2 or val.shape[1] != off.size:
            raise GeometryError(
                f"{what} values must have shape (n_energy, {off.size}) to match the offsets, "
                f"got {val.shape}")
        if n_energy is not None and val.shape[0] != n_energy:
            raise GeometryError(
                f"{what} table has {val.shape[0]} energy rows but {n_energy} energies were given")
        if not np.all(np.isfinite(val)) or np.any(val < 0):
            raise GeometryError(f"{what} values must be finite and >= 0 (sr^-1)")
        self.offsets = off
        self.values = np.ascontiguousarray(val)
        self.off_rad = np.radians(off)
        with np.errstate(divide="ignore"):
            self.logoff = np.log(self.off_rad)
            self.logval = np.ascontiguousarray(np.log(self.values))

    @property
    def n_energy(self) -> int:
        return self.values.shape[0]

    def args(self):
        """(off_rad, logoff, values, logval) in the order the kernels take them."""
        return self.off_rad, self.logoff, self.values, self.logval

    def at(self, sep_deg) -> np.ndarray:
        """Values (nE, n) at separations ``sep_deg`` (deg)."""
        from ._kernels import radial_at

        s = np.ascontiguousarray(np.radians(np.asarray(sep_deg, dtype=np.float64).ravel()))
        return radial_at(s, *self.args())

    def integral(self, rmax_deg=None, n=4000) -> np.ndarray:
        """Integral over the sphere cap of radius ``rmax_deg`` (default: the whole table)
        of each row: 2 pi int sin r f(r) dr on a fine log grid (nE,)."""
        rmax = self.offsets[-1] if rmax_deg is None else min(float(rmax_deg), self.offsets[-1])
        r = np.concatenate(([0.0], np.geomspace(max(rmax * 1e-6, 1e-7), rmax, n)))
        f = self.at(r) * 2 * np.pi * np.sin(np.radians(r))
        return np.trapezoid(f, np.radians(r), axis=1)

    def containment(self, fraction: float, n=4000) -> np.ndarray:
        """Radius (deg) containing ``fraction`` of each row's total (nE,)."""
        rmax = self.offsets[-1]
        r = np.concatenate(([0.0], np.geomspace(max(rmax * 1e-6, 1e-7), rmax, n)))
        f = self.at(r) * 2 * np.pi * np.sin(np.radians(r))
        rr = np.radians(r)
        cum = np.concatenate((np.zeros((f.shape[0], 1)),
                              np.cumsum(0.5 * (f[:, 1:] + f[:, :-1]) * np.diff(rr), axis=1)), axis=1)
        out = np.empty(f.shape[0])
        for k in range(f.shape[0]):
            tot = cum[k, -1]
            out[k] = np.interp(fraction * tot, cum[k], r) if tot > 0 else rmax
        return out


def unit_vectors(lon, lat) -> np.ndarray:
    """Unit vectors (..., 3) of directions (deg); NaN stays NaN."""
    lo = np.radians(np.asarray(lon, dtype=np.float64))
    la = np.radians(np.asarray(lat, dtype=np.float64))
    cb = np.cos(la)
    return np.stack([cb * np.cos(lo), cb * np.sin(lo), np.sin(la)], axis=-1)


def as_energy_vector(x, n_energy: int, what: str) -> np.ndarray:
    """A per-energy vector (nE,) from a scalar or array, validated."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(n_energy, float(a))
    a = a.ravel()
    if a.size != n_energy:
        raise GeometryError(f"{what} must have one value per energy ({n_energy}), got {a.size}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise GeometryError(f"{what} must be finite and >= 0")
    return a


def check_energies(energies) -> np.ndarray:
    e = np.atleast_1d(np.asarray(energies, dtype=np.float64)).ravel()
    if e.size < 1 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise GeometryError(f"energies must be finite and > 0 MeV, got {e[:5]}...")
    return e


def pixel_size_rad(solid_angle) -> np.ndarray:
    return np.sqrt(np.maximum(np.asarray(solid_angle, dtype=np.float64), 0.0))


def nsub_rule(sep_rad, size_rad, rfactor: float, r_core_rad: float, nmax: int) -> np.ndarray:
    """Samples per pixel axis for the pixel average of a radial profile.

    The sample spacing is at most ``max(d, h) / (8 rfactor)`` (d: distance of the pixel
    centre from the profile centre, h: pixel size), so the midpoint-rule error of a
    power-law tail r^-a stays below ~a^2 / (24 (8 rfactor)^2) (0.6% for a = 6,
    rfactor = 2); pixels within 3 h of the centre also resolve the core: spacing
    <= ``r_core / 4``.  Clipped to [1, nmax].
    """
    d = np.asarray(sep_rad, dtype=np.float64)
    h = np.asarray(size_rad, dtype=np.float64)
    scale = np.maximum(d, h)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.ceil(8.0 * float(rfactor) * h / scale)
        if r_core_rad > 0:
            core = np.ceil(4.0 * h / r_core_rad)
            n = np.where(d < 3 * h, np.maximum(n, core), n)
    n = np.where(np.isfinite(n), n, 1.0)
    return np.clip(n, 1, int(nmax)).astype(np.int64)


def degrees_to_rad(x):
    return x * math.pi / 180.0
