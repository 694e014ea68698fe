"""The matplotlib views (fermixr.plot): what they draw is the data they were given, and
the residual statistics are right."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fermixr.geom.hpx import HpxGeom
from fermixr.geom.wcs import WcsGeom
from fermixr.plot import counts_maps_figure, counts_spectrum_figure, save_figure, sky_image
from fermixr.plot.roi import poisson_errors, residual_significance


def test_poisson_errors_follow_gehrels_table():
    # Gehrels (1986) tables 1 and 2, S = 1: 84.13% upper and lower limits
    n = np.array([0, 1, 2, 3, 5, 10])
    upper = np.array([1.841, 3.300, 4.638, 5.918, 8.382, 14.27])
    lower = np.array([0.0, 0.173, 0.708, 1.367, 2.840, 6.891])
    lo, up = poisson_errors(n)
    np.testing.assert_allclose(n + up, upper, rtol=0.015)     # 1.4% at n = 0
    np.testing.assert_allclose((n - lo)[1:], lower[1:], rtol=0.02)
    assert lo[0] == 0.0


def test_residual_significance_values():
    n = np.array([[5.0, 1.0, 0.0]])
    m = np.array([[1.0, 1.0, 0.5]])
    r = residual_significance(n, m)
    assert r[0, 0] == pytest.approx(math.sqrt(2 * (5 * math.log(5) - 4)), rel=1e-12)
    assert r[0, 1] == 0.0
    assert r[0, 2] == pytest.approx(-1.0, rel=1e-12)          # n = 0: -sqrt(2 m)
    # a disk of radius 1 pixel holds 5 pixels: n = 10, m = 5 away from the edges
    r = residual_significance(np.full((7, 7), 2.0), np.ones((7, 7)), radius_pix=1.0)
    assert r[3, 3] == pytest.approx(math.sqrt(2 * (10 * math.log(2) - 5)), rel=1e-12)
    # NaN where the model is 0 or the image is NaN
    m = np.ones((3, 3))
    m[0, 0] = 0.0
    n = np.ones((3, 3))
    n[1, 1] = np.nan
    r = residual_significance(n, m)
    assert np.isnan(r[0, 0]) and np.isnan(r[1, 1]) and np.isfinite(r).sum() == 7


def test_residual_significance_is_standard_normal_for_the_true_model():
    rng = np.random.default_rng(4)
    m = np.full((400, 400), 1.5)
    r = residual_significance(rng.poisson(m).astype(float), m, radius_pix=3.0)
    inner = r[10:-10:7, 10:-10:7]           # disks of 29 pixels, spaced apart
    assert abs(inner.mean()) < 0.05
    assert abs(inner.std() - 1.0) < 0.05


def test_sky_image_of_a_healpix_region_shows_every_pixel_where_it_lies():
    g = HpxGeom(nside=64, ordering="NESTED", frame="GAL", region=(184.5, -5.8, 4.0))
    values = np.arange(g.npix, dtype=float)
    img, grid = sky_image(g, values)
    assert isinstance(grid, WcsGeom) and grid.proj == "TAN" and grid.frame == "GAL"
    shown = np.unique(img[np.isfinite(img)])
    assert shown.size == g.npix                     # half-resolution sampling hits them all
    # each image pixel shows the HEALPix pixel its centre falls in
    lon, lat = grid.pixel_centers()
    ok = np.isfinite(img)
    np.testing.assert_array_equal(img[ok], g.world_to_pix(lon[ok], lat[ok]).astype(float))
    assert np.isnan(img[0, 0])                      # the corner lies outside the disk
    both, grid2 = sky_image(g, np.stack([values, -values]))   # one sampling for a stack
    assert grid2 == grid and both.shape == (2,) + img.shape
    np.testing.assert_array_equal(both[0], img)
    np.testing.assert_array_equal(both[1], -img)
    with pytest.raises(ValueError, match="3 values for"):
        sky_image(g, np.ones(3))


def test_sky_image_of_a_wcs_map_is_the_map():
    g = WcsGeom((83.6, 22.0), (4, 3), 0.5)
    v = np.arange(12.0)
    img, grid = sky_image(g, v)
    assert grid is g
    np.testing.assert_array_equal(img, v.reshape(3, 4))


def test_counts_spectrum_figure_draws_the_data_given(tmp_path):
    edges = np.geomspace(100, 1e5, 10)
    counts = np.array([50, 40, 31, 20, 9, 5, 2, 0, 1], dtype=float)
    model = np.array([48, 41, 30, 19, 10, 4.5, 2.2, 0.9, 0.4])
    srcs = {f"s{i}": model * f for i, f in enumerate((0.5, 0.3, 0.1, 0.05))}
    fig = counts_spectrum_figure(edges, counts, model, srcs, max_sources=3)
    top, bot = fig.axes
    labels = top.get_legend_handles_labels()[1]
    assert labels[:4] == ["model", "s0", "s1", "s2"] and "s3" not in labels
    pts = top.containers[0].lines[0].get_ydata()
    np.testing.assert_array_equal(pts, counts[counts > 0])
    stairs = [p for p in top.patches]
    np.testing.assert_array_equal(stairs[0].get_data().values, model)
    np.testing.assert_allclose(bot.containers[0].lines[0].get_ydata(),
                               (counts - model) / model)
    path = save_figure(fig, tmp_path / "spec.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="10 edges need 9 counts"):
        counts_spectrum_figure(edges, counts[:-1], model)


def test_counts_maps_figure_wcs_and_healpix(tmp_path):
    g = WcsGeom((83.6, 22.0), (40, 30), 0.1)
    rng = np.random.default_rng(1)
    m = np.full(g.shape, 0.8)
    fig = counts_maps_figure(g, rng.poisson(m).astype(float), m,
                             [("A", 83.6, 22.0), ("far", 200.0, -40.0)], radius_deg=0.25)
    axes = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in axes] == [
        "counts", "model counts", "residual significance (counts within 0.25 deg)"]
    texts = [t.get_text() for t in axes[0].texts]
    assert texts == ["A"]                           # the source outside is not drawn
    np.testing.assert_array_equal(axes[1].images[0].get_array(), m)
    hp = HpxGeom(nside=128, frame="CEL", region=(83.6, 22.0, 3.0))
    mh = np.full(hp.npix, 0.3)
    fig = counts_maps_figure(hp, rng.poisson(mh).astype(float), mh, [("A", 83.6, 22.0)],
                             center_radec=(83.6, 22.0))
    save_figure(fig, tmp_path / "hpx.png")
    assert (tmp_path / "hpx.png").stat().st_size > 10_000
    # an empty map (no counts, no model) still draws
    z = np.zeros(g.shape)
    fig = counts_maps_figure(g, z, z)
    resid = [a for a in fig.axes if a.get_title().startswith("residual")][0]
    assert np.all(np.ma.getmaskarray(resid.images[0].get_array())
                  | np.isnan(resid.images[0].get_array().filled(np.nan)))
    save_figure(fig, tmp_path / "empty.png")
