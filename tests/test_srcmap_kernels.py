"""srcmap kernels against slow numpy references on random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from fermixr.srcmap import _kernels as K
from fermixr.srcmap.tables import RadialTable, unit_vectors


def _interp_ref(r, off, val):
    """Slow reference: log-log between positive nodes, linear otherwise, 0 beyond."""
    if r < 0 or r > off[-1]:
        return 0.0
    i = min(np.searchsorted(off, r, side="right") - 1, off.size - 2)
    if r == off[-1]:
        return val[-1]
    if off[i] > 0 and val[i] > 0 and val[i + 1] > 0:
        t = np.log(r / off[i]) / np.log(off[i + 1] / off[i])
        return float(np.exp(np.log(val[i]) + t * np.log(val[i + 1] / val[i])))
    t = (r - off[i]) / (off[i + 1] - off[i])
    return float(val[i] + t * (val[i + 1] - val[i]))


def _angle_ref(a, b):
    return np.arccos(np.clip(np.sum(a * b, axis=-1), -1, 1))


@pytest.fixture
def table():
    rng = np.random.default_rng(3)
    off = np.concatenate(([0.0], np.sort(rng.uniform(1e-3, 20.0, 60))))
    val = rng.uniform(0.0, 5.0, (3, off.size))
    val[1, 10:15] = 0.0          # zero nodes -> linear pieces
    return RadialTable(off, val)


def test_interp_radial_matches_reference(table):
    rng = np.random.default_rng(4)
    r = np.concatenate((rng.uniform(0, 21.0, 500), table.offsets[:5], [table.offsets[-1]]))
    got = table.at(r)
    for k in range(3):
        ref = [_interp_ref(np.radians(x), table.off_rad, table.values[k]) for x in r]
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-300)
    assert np.all(got[:, r > table.offsets[-1]] == 0)


def test_separation_matches_reference():
    rng = np.random.default_rng(5)
    v = unit_vectors(rng.uniform(0, 360, 300), rng.uniform(-90, 90, 300))
    s = unit_vectors(12.0, -40.0)
    got = K.separation(np.ascontiguousarray(v), s)
    # arccos loses precision near 0; compare where it is accurate
    np.testing.assert_allclose(got, _angle_ref(v, s), atol=1e-7)


def test_wcs_pixel_mean_matches_reference(table):
    rng = np.random.default_rng(6)
    ny, nx = 4, 5
    lon_c = 30 + np.arange(nx + 1) * 0.7 + rng.uniform(-0.01, 0.01, nx + 1)
    lat_c = -5 + np.arange(ny + 1) * 0.6
    lo, la = np.meshgrid(lon_c, lat_c)
    corners = unit_vectors(lo, la)
    centers = unit_vectors(0.5 * (lo[:-1, :-1] + lo[1:, 1:]), 0.5 * (la[:-1, :-1] + la[1:, 1:]))
    corners[0, 0] = np.nan          # a corner outside the projection -> centre value
    nsub = rng.integers(1, 5, (ny, nx))
    src = unit_vectors(31.1, -4.2)
    got = K.wcs_pixel_mean(np.ascontiguousarray(centers), np.ascontiguousarray(corners), src,
                           nsub, *table.args())
    for j in range(ny):
        for i in range(nx):
            n = nsub[j, i]
            if n == 1 or (j == 0 and i == 0):
                pts = centers[j, i][None]
            else:
                u = (np.arange(n) + 0.5) / n
                uu, vv = np.meshgrid(u, u)
                uu, vv = uu.ravel()[:, None], vv.ravel()[:, None]
                p = ((1 - uu) * (1 - vv) * corners[j, i] + uu * (1 - vv) * corners[j, i + 1]
                     + (1 - uu) * vv * corners[j + 1, i] + uu * vv * corners[j + 1, i + 1])
                pts = p / np.linalg.norm(p, axis=1, keepdims=True)
            r = np.degrees(_angle_ref(pts, src))
            for k in range(3):
                ref = np.mean([_interp_ref(np.radians(x), table.off_rad, table.values[k]) for x in r])
                assert got[k, j, i] == pytest.approx(ref, rel=1e-7, abs=1e-12)


def test_samples_mean_matches_reference(table):
    rng = np.random.default_rng(7)
    samples = unit_vectors(rng.uniform(0, 10, (6, 9)), rng.uniform(-5, 5, (6, 9)))
    src = unit_vectors(4.0, 1.0)
    got = K.samples_mean(np.ascontiguousarray(samples), src, *table.args())
    r = _angle_ref(samples, src)
    for k in range(3):
        ref = [np.mean([_interp_ref(x, table.off_rad, table.values[k]) for x in row]) for row in r]
        np.testing.assert_allclose(got[k], ref, rtol=1e-7)
