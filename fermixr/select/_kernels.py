"""Numba kernels of the selection layer (gtselect's event mask, gtbin's histograms).

Plain float64/int64 arrays and scalars in, arrays out; nothing else is imported.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit, pnjit, prange

# range-cut modes
RANGE_OFF = 0
RANGE_HALF_OPEN = 1  # lo < x <= hi   (RangeCut with lo != hi)
RANGE_CLOSED = 2     # lo <= x <= hi  (RangeCut with lo == hi)

# event-class modes
CLASS_OFF = 0
CLASS_BITS = 1      # (EVENT_CLASS & mask) != 0
CLASS_SCALAR = 2    # EVENT_CLASS >= value (Pass 6 and earlier)


@njit
def _in_range(x, lo, hi, mode):
    if mode == RANGE_HALF_OPEN:
        return lo < x and x <= hi
    if mode == RANGE_CLOSED:
        return lo <= x and x <= hi
    return True


@pnjit
def select_mask(energy, time, zenith, phase, ra, dec, evclass, evtype, convtype,
                rng_lo, rng_hi, rng_mode, cone, class_value, class_mode, type_mask, type_on,
                conv_value, gti_start, gti_stop, gti_on):
    """gtselect's acceptance of every event.

    Ranges (index 0 ENERGY, 1 TIME, 2 ZENITH_ANGLE, 3 PULSE_PHASE): ``rng_mode`` 0 off,
    1 ``lo < x <= hi``, 2 ``lo <= x <= hi``.  ``cone`` = (ra0, dec0, radius) [deg]: keep
    ``angsep < radius`` (CFITSIO haversine); radius < 0 turns it off.  ``class_mode`` 1:
    ``(EVENT_CLASS & class_value) != 0``, 2: ``EVENT_CLASS >= class_value``.  ``type_on``:
    ``(EVENT_TYPE & type_mask) != 0``.  ``conv_value`` >= 0: ``CONVERSION_TYPE ==
    conv_value``.  ``gti_on``: ``start <= TIME <= stop`` for some GTI (sorted, disjoint).
    Arrays of a cut that is off may be empty.
    """
    n = time.shape[0]
    out = np.empty(n, dtype=np.bool_)
    d2r = math.pi / 180.0
    ra0 = cone[0]
    dec0 = cone[1]
    rad = cone[2]
    cdec0 = math.cos(dec0 * d2r)
    ngti = gti_start.shape[0]
    for i in prange(n):
        ok = True
        if rng_mode[0] != 0 and not _in_range(energy[i], rng_lo[0], rng_hi[0], rng_mode[0]):
            ok = False
        if ok and rng_mode[1] != 0 and not _in_range(time[i], rng_lo[1], rng_hi[1], rng_mode[1]):
            ok = False
        if ok and rng_mode[2] != 0 and not _in_range(zenith[i], rng_lo[2], rng_hi[2], rng_mode[2]):
            ok = False
        if ok and rng_mode[3] != 0 and not _in_range(phase[i], rng_lo[3], rng_hi[3], rng_mode[3]):
            ok = False
        if ok and class_mode == CLASS_BITS and (evclass[i] & class_value) == 0:
            ok = False
        if ok and class_mode == CLASS_SCALAR and evclass[i] < class_value:
            ok = False
        if ok and type_on != 0 and (evtype[i] & type_mask) == 0:
            ok = False
        if ok and conv_value >= 0 and convtype[i] != conv_value:
            ok = False
        if ok and rad >= 0.0:
            sra = math.sin((ra0 - ra[i]) * d2r / 2.0)
            sdec = math.sin((dec0 - dec[i]) * d2r / 2.0)
            a = sdec * sdec + math.cos(dec[i] * d2r) * cdec0 * sra * sra
            if a < 0.0:
                a = 0.0
            if a > 1.0:
                a = 1.0
            sep = 2.0 * math.atan2(math.sqrt(a), math.sqrt(1.0 - a)) / d2r
            if not sep < rad:
                ok = False
        if ok and gti_on != 0:
            t = time[i]
            k = np.searchsorted(gti_start, t, side="right") - 1
            if k < 0 or k >= ngti or t > gti_stop[k]:
                ok = False
        out[i] = ok
    return out


@njit
def log_bin_index(energy, emin, emax, nbin):
    """gtbin's LogBinner: ``int(n * log(E / emin) / log(emax / emin))`` for
    ``emin <= E < emax``, else -1 (clamped to n - 1 against rounding)."""
    n = energy.shape[0]
    out = np.empty(n, dtype=np.int64)
    lden = math.log(emax / emin)
    for i in range(n):
        e = energy[i]
        if e >= emin and e < emax:
            k = int(nbin * math.log(e / emin) / lden)
            if k >= nbin:
                k = nbin - 1
            out[i] = k
        else:
            out[i] = -1
    return out


@njit
def edge_bin_index(values, edges):
    """Left-closed bins of arbitrary increasing ``edges``: k with edges[k] <= v <
    edges[k+1], else -1."""
    n = values.shape[0]
    nb = edges.shape[0] - 1
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        v = values[i]
        if v >= edges[0] and v < edges[nb]:
            k = np.searchsorted(edges, v, side="right") - 1
            if k >= nb:
                k = nb - 1
            out[i] = k
        else:
            out[i] = -1
    return out


@njit
def fits_pixel_index(p1, npix):
    """gtbin's LinearBinner(0.5, npix + 0.5, 1) on 1-based FITS pixel coordinates:
    ``int(p1 - 0.5)`` for ``0.5 <= p1 < npix + 0.5``, else -1 (NaN -> -1)."""
    n = p1.shape[0]
    out = np.empty(n, dtype=np.int64)
    hi = npix + 0.5
    for i in range(n):
        v = p1[i]
        if v >= 0.5 and v < hi:
            out[i] = int((v - 0.5) / 1.0)
        else:
            out[i] = -1
    return out


@njit
def histogram_3d(ie, iy, ix, ne, ny, nx):
    """Counts cube (ne, ny, nx) int64 of events with all three indices >= 0."""
    out = np.zeros((ne, ny, nx), dtype=np.int64)
    for i in range(ie.shape[0]):
        a = ie[i]
        b = iy[i]
        c = ix[i]
        if a >= 0 and b >= 0 and c >= 0 and a < ne and b < ny and c < nx:
            out[a, b, c] += 1
    return out


@njit
def histogram_2d(ie, ip, ne, npix):
    """Counts (ne, npix) int64 of events with both indices >= 0."""
    out = np.zeros((ne, npix), dtype=np.int64)
    for i in range(ie.shape[0]):
        a = ie[i]
        b = ip[i]
        if a >= 0 and b >= 0 and a < ne and b < npix:
            out[a, b] += 1
    return out
