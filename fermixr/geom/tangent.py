"""The gnomonic (tangent-plane) projection around a direction: offsets towards east (xi)
and north (eta) in deg, and back.  Used where positions are fitted or drawn in a local
flat frame (localize, its plots)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["tangent_offsets", "tangent_to_sky"]


def tangent_offsets(ra0, dec0, ra, dec):
    """Gnomonic offsets (xi towards east, eta towards north) [deg] of (ra, dec) from
    (ra0, dec0)."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    a, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def tangent_to_sky(ra0, dec0, xi, eta):
    """(ra, dec) [deg] of gnomonic offsets (xi east, eta north) [deg] from (ra0, dec0)."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    x, y = np.radians(np.asarray(xi, float)), np.radians(np.asarray(eta, float))
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(np.cos(c) * np.sin(d0) + np.where(rho > 0, y * np.sin(c) * np.cos(d0)
                                                          / np.where(rho > 0, rho, 1), 0.0))
    ra = a0 + np.arctan2(x * np.sin(c), rho * np.cos(d0) * np.cos(c)
                         - y * np.sin(d0) * np.sin(c))
    ra = np.where(rho > 0, ra, a0)
    return np.degrees(ra) % 360.0, np.degrees(dec)
