"""TS map (fermixr.estimators.tsmap) against simulations with known truth: on source-free
realisations of the model TS follows 1/2 chi2_0 + 1/2 chi2_1; at an injected source the
map's TS equals the TS of a fit of that source's norm at that position (background fixed);
the numba kernels agree with their numpy references; the recipe step and the Analysis
method write Fermipy's FITS file; bad input gives one clear error and writes nothing."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import fermixr.estimators as E
from fermixr.conventions import validate_product
from fermixr.errors import EstimatorError, FermixrError
from fermixr.estimators import _tsmap_kernels as K
from fermixr.estimators import edits
from fermixr.estimators.ts import ts_value
from fermixr.estimators.tsmap import solve_amplitudes

from test_estimators_conformance import _doc


@pytest.fixture(scope="module")
def gta(tmp_path_factory, roi_setup):
    g = roi_setup("wcs_no_edisp", tmp_path_factory.mktemp("tsmap"))
    g.state.components                                      # read the products once
    return g


def test_null_distribution_is_half_chi2_0_half_chi2_1(gta):
    """A background-only model (the isotropic emission alone, its norm raised to 1000 so
    that the ROI holds ~4e4 counts: with the example's ~200 counts the Poisson regime is
    far from the asymptotic one), counts simulated from it and the TS map over it: every
    pixel is null.  Pixels within a PSF are correlated, so 40 realisations are pooled."""
    st = gta.state
    for name in ("SYN_CRAB", "SYN_HARD"):
        st = edits.delete_source(st, name)[0]
    st = edits.set_norm(st, "isodiff", 1000.0)
    st = st[0] if isinstance(st, tuple) else st
    assert st.components[0].counts.sum() > 0
    ts = []
    for seed in range(40):
        sim = edits.generate_model(st, seed=1000 + seed)[0]
        ts.append(E.run("tsmap", sim).dataset["ts"].values.ravel())
    ts = np.concatenate(ts)
    p_gt = float(np.mean(ts > 2.71))
    p_0 = float(np.mean(ts == 0.0))
    print(f"null: {ts.size} pixels, P(TS > 2.71) = {p_gt:.4f}, P(TS = 0) = {p_0:.4f}")
    assert abs(p_gt - 0.05) <= 0.01
    assert abs(p_0 - 0.5) <= 0.05


@pytest.fixture(scope="module")
def states(tmp_path_factory, gta, roi_setup):
    """mode -> state: the conformance ROI on WCS without dispersion (the gta fixture),
    with dispersion, on HEALPix and with two components of different pixel sizes."""
    root = tmp_path_factory.mktemp("tsmap_modes")
    cache = {"wcs_no_edisp": gta.state}

    def get(mode):
        if mode not in cache:
            cache[mode] = roi_setup(mode, root).state
        return cache[mode]

    return get


@pytest.mark.parametrize("mode", ["wcs_no_edisp", "wcs_edisp", "healpix",
                                  "two_pixel_sizes"])
def test_ts_at_an_injected_source_equals_the_fixed_background_fit(states, mode):
    """A source injected at a pixel centre ~1.2 deg from the ROI centre, counts simulated
    with it; the map (without it in the background) peaks at its pixel with the TS and
    amplitude of a fit of its norm alone at that position."""
    from fermixr.estimators.fit import fit_state

    st = states(mode)
    base = E.run("tsmap", st, max_kernel_radius=1.0).dataset
    lon, lat = base["lon"].values.ravel(), base["lat"].values.ravel()
    j = int(np.argmin((lon - 84.6) ** 2 + (lat - 22.9) ** 2))
    src_dict = {"ra": float(lon[j]), "dec": float(lat[j]), "SpectrumType": "PowerLaw",
                "Index": 2.0, "Prefactor": 1.5e-10, "Scale": 1000.0}
    inj, _ = edits.add_source(st, "INJ", src_dict, free=False)
    sim = edits.generate_model(inj, seed=7)[0]
    ds = E.run("tsmap", sim, exclude=["INJ"]).dataset
    ts_map = float(ds["ts"].values.ravel()[j])
    amp_map = float(ds["amplitude"].values.ravel()[j])
    assert int(np.argmax(ds["ts"].values)) == j
    # the independent number: fit INJ's norm alone (everything else fixed)
    fixed = edits.free_sources(sim, free=False)[0]
    fixed = edits.free_parameter(fixed, "INJ", "Prefactor")
    out, fitted = fit_state(fixed)
    assert out["fit_success"]
    ts_fit = ts_value(fitted, "INJ")
    amp_fit = fitted.model.find("INJ").param("Prefactor").physical
    print(f"injected ({mode}): TS map {ts_map:.3f}, TS fit {ts_fit:.3f}, "
          f"ratio {ts_map / ts_fit:.5f}; amplitude map {amp_map:.4g} fit {amp_fit:.4g}")
    assert ts_fit > 25
    assert ts_map == pytest.approx(ts_fit, rel=0.02)
    assert amp_map == pytest.approx(amp_fit, rel=0.03)
    # with the source in the background the pixel is null again
    assert float(E.run("tsmap", sim).dataset["ts"].values.ravel()[j]) < 9


def _random_terms(rng, nb, ny, nx):
    n = rng.poisson(3.0, (nb, ny, nx)).astype(float)
    m = rng.uniform(1.0, 5.0, (nb, ny, nx))
    w = rng.uniform(0.5, 1.0, (nb, ny, nx))
    return n, m, w


def test_numba_and_numpy_kernels_agree():
    """The numba sums (terms with counts visited sparsely, the zero-count terms as the
    kernel's weighted sum, FFT correlations at A = 0) equal the numpy references over
    every term; the solver agrees between backends and with a brute-force maximum."""
    from fermixr.estimators.tsmap import _Part, _box_radii

    rng = np.random.default_rng(5)
    nb, ny, nx = 4, 13, 11
    n, m, w = _random_terms(rng, nb, ny, nx)
    n[rng.uniform(size=n.shape) < 0.4] = 0.0          # sparse counts
    kern = rng.uniform(0.0, 1.0, (4, nb, 5, 5))
    kern[:, :, 0, 0] = 0.0
    kern[:, 3, 0, :] = 0.0                             # bin 3: a box of half-width 1
    kern[:, 3, -1, :] = 0.0
    kern[:, 3, :, 0] = 0.0
    kern[:, 3, :, -1] = 0.0
    assert list(_box_radii(kern)) == [2, 2, 2, 1]
    npix = 40
    ix = rng.integers(-2, nx + 2, npix)
    iy = rng.integers(-2, ny + 2, npix)
    cls = rng.integers(0, 4, npix)
    A = rng.uniform(0.0, 2.0, npix)
    sel = np.arange(npix, dtype=np.int64)
    n2, m2, w2 = (a.reshape(nb, -1) for a in (n, m, w))
    counts = rng.integers(0, 9, npix)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    idx = rng.integers(0, ny * nx, ptr[-1]).astype(np.int64)
    vals = rng.uniform(0.0, 1.0, (nb, ptr[-1]))
    parts = [(("wcs", kern, ix, iy, cls, (nb, ny, nx)), n2, m2, w2),
             (("hpx", vals, ptr, idx), n2, m2, w2)]
    for part in parts:
        outs = []
        for backend in ("numba", "numpy"):
            o = _Part(part, npix, backend, sel)
            g = [np.zeros(npix) for _ in range(4)]
            o.sums(A, sel, np.ones(npix, dtype=bool), *g)
            z = [np.zeros(npix) for _ in range(2)]
            o.sums_at_zero(sel, *z)
            outs.append(g + z + [o.C, o.ksum])
        for a, b in zip(*outs):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    # the direct kernel: only the pixels asked for, dl only where wanted
    o = _Part(parts[0], npix, "numba", sel)
    g = [np.zeros(npix) for _ in range(4)]
    want = np.arange(npix) % 2 == 0
    K.wcs_accumulate(A, *o.cells, ny, nx, kern, o.rk, o.xr, ix, iy, cls, want, *g,
                     sel[:20])
    assert np.all(g[0][20:] == 0) and np.all(g[2][1::2] == 0)
    # the solver with either backend, and against a brute-force maximum of lnL(A)
    a1, ts1, _, _, u1 = solve_amplitudes(parts, npix, backend="numba", ul=True)
    a2, ts2, _, _, u2 = solve_amplitudes(parts, npix, backend="numpy", ul=True)
    np.testing.assert_allclose(ts1, ts2, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(a1, a2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(u1, u2, rtol=1e-6)
    # each pixel's lnL depends on its own amplitude only: one grid for all pixels
    grid = np.linspace(0.0, 3.0 * max(u1.max(), 1.0), 3001)
    dl = np.empty((grid.size, npix))
    for i, a in enumerate(grid):
        g = [np.zeros(npix) for _ in range(3)]
        Aj = np.full(npix, a)
        K.wcs_accumulate_numpy(Aj, n, m, w, kern, ix, iy, cls, True, *g)
        K.sparse_accumulate_numpy(Aj, n2, m2, w2, ptr, idx, vals, True, *g)
        dl[i] = g[2]
    best = np.maximum(2.0 * dl.max(axis=0), 0.0)
    assert np.all(ts1 >= best - 1e-9)
    assert np.all(ts1 <= best + 1e-3 * np.maximum(best, 1.0))
    assert (ts1 == 0).any() and (ts1 > 0).any()
    # the upper limit: where the scanned lnL falls 1.353 below its maximum (above A)
    for j in range(npix):
        prof = dl[:, j] - max(dl[:, j].max(), 0.0)
        above = grid >= a1[j]
        k = np.nonzero(above & (prof <= -1.353))[0][0]
        u_scan = np.interp(-1.353, [prof[k], prof[k - 1]], [grid[k], grid[k - 1]])
        assert u1[j] == pytest.approx(u_scan, rel=2e-3, abs=2 * (grid[1] - grid[0]))


def test_fits_file_plot_and_dict(gta, tmp_path):
    from astropy.io import fits

    g = gta.copy()
    g.outdir = tmp_path
    out = g.tsmap(prefix="t1", exclude=["SYN_CRAB"], make_plots=True)
    assert set(out) >= {"ts", "sqrt_ts", "npred", "amplitude", "name", "file", "src_dict"}
    assert out["name"] == "t1_pointsource_powerlaw_2.00"
    assert out["src_dict"]["Index"] == 2.0
    path = Path(out["file"])
    assert path == tmp_path / "t1_tsmap.fits"
    with fits.open(path) as h:
        assert [x.name for x in h] == ["PRIMARY", "SQRT_TS_MAP", "NPRED_MAP", "N_MAP",
                                       "FLUX_MAP", "FLUX_ERR_MAP", "FLUX_UL95_MAP"]
        np.testing.assert_allclose(h["FLUX_UL95_MAP"].data, out["flux_ul95"])
        assert h["FLUX_MAP"].header["BUNIT"] == "cm-2 s-1"
        np.testing.assert_allclose(h[0].data, out["ts"])
        np.testing.assert_allclose(h["SQRT_TS_MAP"].data, out["sqrt_ts"])
        np.testing.assert_allclose(h["NPRED_MAP"].data, out["npred"])
        np.testing.assert_allclose(h["N_MAP"].data, out["amplitude"])
        assert h[0].header["CTYPE1"].startswith("RA")
    assert (tmp_path / "t1_tsmap.npy").is_file()
    assert (tmp_path / "t1_tsmap_sqrt_ts.png").stat().st_size > 1000
    # the Crab (left out of the background) is the peak, where its TS is
    j = np.unravel_index(int(np.argmax(out["ts"])), out["ts"].shape)
    ra, dec = gta.state.model.find("SYN_CRAB").skydir
    ds = out["dataset"]
    assert abs(float(ds["lon"].values[j]) - ra) < 0.3 and \
        abs(float(ds["lat"].values[j]) - dec) < 0.3
    assert out["ts"][j] == pytest.approx(ts_value(gta.state, "SYN_CRAB"), rel=0.05)
    validate_product(ds, "tsmap")


@pytest.mark.parametrize("kwargs,match", [
    ({"model": {"SpectrumType": "NoSuchSpectrum"}}, r"tsmap: model: .*NoSuchSpectrum"),
    ({"model": "PointSource"}, r"tsmap: model: got 'PointSource'; expected a source dict"),
    ({"exclude": ["NOPE"]}, r"tsmap: exclude: no source 'NOPE' in the model"),
    ({"loge_bounds": [6.0, 7.0]}, r"tsmap: loge_bounds \[6.0, 7.0\] select no energy bin"),
    ({"max_kernel_radius": 0.0}, r"tsmap: max_kernel_radius: got 0.0"),
    ({"map_skydir": [150.0, -40.0]}, r"tsmap: the region .* holds no pixel of the map"),
    ({"disk": [83.6, 22.0, -1.0]}, r"tsmap: disk: got \[83.6, 22.0, -1.0\]"),
    ({"pixel_mask": np.zeros((3, 3), bool)}, r"tsmap: pixel_mask: got an array of bool"),
    ({"bogus": 1}, r"tsmap: unknown option 'bogus'"),
])
def test_bad_input_one_clear_error_nothing_written(gta, tmp_path, kwargs, match):
    g = gta.copy()
    g.outdir = tmp_path
    with pytest.raises(EstimatorError, match=match) as ei:
        g.tsmap(prefix="bad", **kwargs)
    assert isinstance(ei.value, FermixrError) and isinstance(ei.value, ValueError)
    assert "\n" not in str(ei.value)
    assert not list(tmp_path.iterdir())


def test_a_state_that_cannot_make_maps_is_refused(gta):
    st = gta.state.replace(map_maker=None)
    with pytest.raises(EstimatorError, match="cannot make the test source's maps"):
        E.run("tsmap", st)


def test_the_recipe_step_writes_the_product_and_fermipys_file(gta, tmp_path):
    from fermixr.engine.run import run_recipe
    from fermixr.engine.store import open_product_dir  # noqa: F401  (store layout)

    doc = _doc("wcs_no_edisp", Path(gta.outdir).parent)
    doc["steps"] = ["setup", {"tsmap": {"prefix": "st", "exclude": ["SYN_CRAB"],
                                        "max_kernel_radius": 2.0}}]
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["computed"]
    assert (Path(gta.outdir) / "st_tsmap.fits").is_file()
    import fermixr

    ds = fermixr.open_run(gta.outdir)["tsmap"]
    validate_product(ds)
    assert float(ds["ts"].max()) > 100
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["cached"]
    # a cached step whose file is gone runs again and writes it
    (Path(gta.outdir) / "st_tsmap.fits").unlink()
    run_recipe(copy.deepcopy(doc), outdir=gta.outdir, verbose=False)
    rec = json.loads((Path(gta.outdir) / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["computed"]
    assert (Path(gta.outdir) / "st_tsmap.fits").is_file()


def test_likelihood_weights_weight_every_term(gta):
    """A uniform weights map of 1/2 halves every log-likelihood difference: TS halves and
    the amplitude stays; a weights map of zero on one energy bin equals loge_bounds
    leaving that bin out."""
    st = gta.state
    ref = E.run("tsmap", st, exclude=["SYN_CRAB"]).dataset
    half = st.replace(components=tuple(c.replace(wmap=np.full_like(c.counts, 0.5))
                                       for c in st.components))
    ds = E.run("tsmap", half, exclude=["SYN_CRAB"]).dataset
    # (the iterations stop at a predicted gain below 1e-5: TS agrees to ~1e-7)
    np.testing.assert_allclose(ds["ts"].values, 0.5 * ref["ts"].values, rtol=1e-6,
                               atol=1e-6)
    on = ref["ts"].values > 1
    # (the amplitude, a Newton step past a predicted gain < 1e-5, to ~1e-5 of itself)
    np.testing.assert_allclose(ds["amplitude"].values[on], ref["amplitude"].values[on],
                               rtol=1e-4)
    edges = np.log10(st.components[0].edges)
    w = np.ones_like(st.components[0].counts)
    w[0] = 0.0
    cut = st.replace(components=(st.components[0].replace(wmap=w),))
    a = E.run("tsmap", cut, exclude=["SYN_CRAB"]).dataset
    b = E.run("tsmap", st, exclude=["SYN_CRAB"], loge_bounds=[edges[1], edges[-1]]).dataset
    np.testing.assert_allclose(a["ts"].values, b["ts"].values, rtol=1e-6, atol=1e-6)
    assert float(b["ts"].max()) < float(ref["ts"].max())


def test_the_threshold_option_warns_that_it_has_no_effect():
    from fermixr.engine.recipe import OptionWithoutEffectWarning
    from fermixr.engine.tsmap_output import tsmap_options

    with pytest.warns(OptionWithoutEffectWarning, match=r"tsmap\.threshold: set to 0\.05"):
        tsmap_options({"model": None}, {"threshold": 0.05})


def _full(gta):
    return E.run("tsmap", gta.state, exclude=["SYN_CRAB"]).dataset


def test_a_region_equals_the_full_map_there_at_a_cost_in_proportion(gta, tmp_path):
    """A box (map_skydir + map_size: a cut-out of the ROI grid, as Fermipy's), a disk (the
    cut-out of its bounding box, NaN outside) and a pixel mask (the whole grid, NaN
    outside) give the full map's values on their pixels; the work (pixels computed and
    pixel evaluations of the iterations) follows the region's pixels."""
    full = _full(gta)
    lon, lat = full["lon"].values, full["lat"].values
    ny, nx = lon.shape
    cy, cx = ny // 2 + 3, nx // 2 - 2
    g = gta.copy()
    g.outdir = tmp_path
    out = g.tsmap(prefix="box", exclude=["SYN_CRAB"],
                  map_skydir=[float(lon[cy, cx]), float(lat[cy, cx])], map_size=0.45)
    box = out["dataset"]
    from fermixr.geom.coords import geom_from_attrs

    h = int(np.floor(0.5 * 0.45 / geom_from_attrs(full.attrs).binsz + 1e-9))
    assert box["ts"].shape == (2 * h + 1, 2 * h + 1)
    sub = (slice(cy - h, cy + h + 1), slice(cx - h, cx + h + 1))
    np.testing.assert_allclose(box["lon"].values, lon[sub])
    np.testing.assert_allclose(box["lat"].values, lat[sub])
    for k in ("ts", "amplitude", "npred", "flux", "flux_err", "flux_ul95"):
        np.testing.assert_allclose(box[k].values, full[k].values[sub], rtol=1e-6,
                                   atol=1e-6 * float(np.nanmax(np.abs(full[k].values))),
                                   err_msg=k)
    validate_product(box, "tsmap")
    from astropy.io import fits

    with fits.open(out["file"]) as f:
        assert f[0].data.shape == box["ts"].shape
        assert f[0].header["CRVAL1"] == pytest.approx(full.attrs["wcs_header"]["CRVAL1"])
    # a disk: the cut-out of its bounding box, NaN outside the disk
    r = 0.3
    d = E.run("tsmap", gta.state, exclude=["SYN_CRAB"],
              disk=[float(lon[cy, cx]), float(lat[cy, cx]), r]).dataset
    inside = np.isfinite(d["ts"].values)
    from fermixr.geom.frames import angular_separation

    sep = angular_separation(d["lon"].values.ravel(), d["lat"].values.ravel(),
                             float(lon[cy, cx]), float(lat[cy, cx])).reshape(inside.shape)
    np.testing.assert_array_equal(inside, sep <= r)
    j = np.nonzero((np.abs(lon[..., None] - d["lon"].values[inside]) < 1e-9)
                   & (np.abs(lat[..., None] - d["lat"].values[inside]) < 1e-9))
    np.testing.assert_allclose(d["ts"].values[inside][j[2]], full["ts"].values[j[0], j[1]],
                               rtol=1e-6, atol=1e-6)
    # a pixel mask: the whole grid
    mask = np.zeros((ny, nx), bool)
    mask[::3, ::2] = True
    pm = E.run("tsmap", gta.state, exclude=["SYN_CRAB"], pixel_mask=mask).dataset
    assert pm["ts"].shape == (ny, nx)
    assert np.all(np.isnan(pm["ts"].values[~mask]))
    np.testing.assert_allclose(pm["ts"].values[mask], full["ts"].values[mask], rtol=1e-6,
                               atol=1e-6)
    # the work follows the pixels
    n_full = full.attrs["pixels_computed"]
    assert n_full == ny * nx
    assert box.attrs["pixels_computed"] == (2 * h + 1) ** 2
    assert pm.attrs["pixels_computed"] == int(mask.sum())
    for ds in (box, d, pm):
        frac = ds.attrs["pixels_computed"] / n_full
        work = ds.attrs["pixel_evaluations"] / full.attrs["pixel_evaluations"]
        print(f"region: {frac:.3f} of the pixels, {work:.3f} of the evaluations")
        assert work <= 2.0 * frac + 0.01


def test_the_kernel_trimming_changes_ts_by_less_than_1e_4(gta, monkeypatch):
    """Per energy bin the outer square rings holding <= KERNEL_TOL of the kernel's sum
    are dropped: on Gaussian kernels of widths 1 and 4 pixels (in a 41 x 41 box) the
    narrow one loses its far rings, the dropped mass stays below the tolerance; on the
    conformance ROI (whose kernels keep every ring) TS does not move."""
    import fermixr.estimators.tsmap as T

    yy, xx = np.mgrid[-20:21, -20:21]
    kern = np.stack([np.exp(-0.5 * (xx ** 2 + yy ** 2) / s ** 2) for s in (1.0, 4.0)])[None]
    tot = kern.sum(axis=(2, 3))
    trimmed = T._trim_kernel(kern.copy(), 1e-6)
    lost = 1.0 - trimmed.sum(axis=(2, 3)) / tot
    r = T._box_radii(trimmed)
    print(f"trimmed half-widths {list(r)}, lost fractions {lost.ravel()}")
    assert r[0] < 10 and r[1] == 20
    assert np.all(lost <= 1e-6) and lost[0, 0] > 0
    ref = _full(gta)
    monkeypatch.setattr(T, "KERNEL_TOL", 0.0)
    untrimmed = _full(gta)
    d = np.abs(ref["ts"].values - untrimmed["ts"].values)
    print(f"kernel trimming at {T.KERNEL_TOL}: max |dTS| {d.max():.2e}")
    assert d.max() < 1e-4


def test_the_upper_limit_and_error_against_a_direct_likelihood_scan(gta):
    """At a few pixels near the ROI centre (where the test source's kernel was made, so
    that it is the source's own map there) the test source is added to the model and its
    norm scanned through the ordinary likelihood: the flux upper limit is where the scan
    falls 1.353 below its maximum (norm >= 0); TS and the curvature error agree.  Pixels:
    the Crab's (left out of the background), and with the Crab in the background the
    largest and the smallest TS within 0.6 deg of the centre."""
    from fermixr.geom.frames import transform
    from fermixr.likelihood.roi import build_cost

    st = gta.state
    ex = E.run("tsmap", st, exclude=["SYN_CRAB"], max_kernel_radius=3.0).dataset
    inc = E.run("tsmap", st, max_kernel_radius=3.0).dataset
    lon, lat = ex["lon"].values.ravel(), ex["lat"].values.ravel()
    c = lon.size // 2 + int(np.sqrt(lon.size)) // 2
    near = np.hypot(lon - lon[c], lat - lat[c]) < 0.6
    ts_in = inc["ts"].values.ravel()
    picks = [(ex, "SYN_CRAB", int(np.argmax(ex["ts"].values))),
             (inc, None, int(np.argmax(np.where(near, ts_in, -1)))),
             (inc, None, int(np.argmin(np.where(near, ts_in, np.inf))))]
    for ds, drop, j in picks:
        bkg = edits.delete_source(st, drop)[0] if drop else st
        ra, dec = (float(np.ravel(v)[0]) for v in transform(
            np.atleast_1d(lon[j]), np.atleast_1d(lat[j]), ds.attrs["geom"]["frame"], "CEL"))
        src = {"ra": ra, "dec": dec, "SpectrumType": "PowerLaw", "Index": 2.0,
               "Prefactor": 1e-12, "Scale": 1000.0}
        st2, _ = edits.add_source(bkg, "TEST", src, free=False)
        st2 = edits.free_sources(st2, free=False)[0]
        st2 = edits.free_parameter(st2, "TEST", "Prefactor")
        cost = build_cost(st2)
        par = st2.model.find("TEST").param("Prefactor")
        unit = par.physical / par.value                    # physical per scaled unit
        # flux of the test source per unit physical prefactor over the map's range
        emin, emax = ds.attrs["emin"], ds.attrs["emax"]
        f1 = 1000.0 * (1000.0 / emin - 1000.0 / emax)      # int (E / 1 GeV)^-2 dE
        a_ul = float(ds["flux_ul95"].values.ravel()[j]) / f1
        grid = np.linspace(0.0, 2.0 * a_ul, 4001)
        lnl = -np.array([cost(np.array([g / unit])) for g in grid])
        ts_scan = 2 * (lnl.max() - lnl[0])
        lnl -= lnl.max()
        k = int(np.argmax(lnl))
        after = np.nonzero((np.arange(grid.size) > k) & (lnl <= -1.353))[0][0]
        a_scan = np.interp(-1.353, [lnl[after], lnl[after - 1]],
                           [grid[after], grid[after - 1]])
        ts_map = float(ds["ts"].values.ravel()[j])
        print(f"pixel {j}: TS map {ts_map:.3f} scan {ts_scan:.3f}; UL prefactor map "
              f"{a_ul:.5g} scan {a_scan:.5g}")
        assert a_ul == pytest.approx(a_scan, rel=0.02)   # as TS: the kernel vs the map
        assert ts_map == pytest.approx(ts_scan, rel=0.02, abs=0.05)
        if ts_map > 25:       # the curvature error against the scan near the maximum
            err = float(ds["amplitude_err"].values.ravel()[j])
            i1 = int(np.argmin(np.abs(grid - (grid[k] + err))))
            assert lnl[i1] == pytest.approx(-0.5, abs=0.05)


@pytest.mark.slow
@pytest.mark.shared_data
def test_the_crab_is_the_maximum_of_the_real_days_ts_map(crab_day, caldb_dir, tmp_path):
    """The shared Crab day, the Crab left out of the background: the TS map's maximum
    lies within one pixel of the Crab."""
    from fermixr import Analysis
    from test_crab_fit import _config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = Analysis(_config(crab_day, caldb_dir, tmp_path)).setup()
    ds = E.run("tsmap", g.state, exclude=["Crab"], flux_ul=False).dataset
    from fermixr.geom.coords import geom_from_attrs

    geom = geom_from_attrs(ds.attrs)
    x, y = geom.world_to_pix(83.6331, 22.0145, frame="CEL")
    ts = np.where(np.isfinite(ds["ts"].values), ds["ts"].values, -1)
    jy, jx = np.unravel_index(int(np.argmax(ts)), ts.shape)
    print(f"Crab at pixel ({float(x):.2f}, {float(y):.2f}); TS maximum {ts[jy, jx]:.1f} "
          f"at ({jx}, {jy})")
    assert abs(jx - float(x)) <= 1.0 and abs(jy - float(y)) <= 1.0
    assert ts[jy, jx] > 100


def test_sum_over_energy_is_the_fit_on_the_summed_images(states):
    """Gammapy's default mode: counts, background and kernel summed over energy.  With one
    energy bin selected it is the per-energy map itself; over all bins the TS at an
    injected source equals a direct maximisation of the Poisson likelihood of the summed
    images (scipy, in numpy); weights that vary with energy are refused."""
    from scipy.optimize import minimize_scalar

    from fermixr.estimators.tsmap import _source_counts, make_test_source

    st = states("wcs_no_edisp")
    edges = np.log10(st.components[0].edges)
    one = [float(edges[3]), float(edges[4])]
    a = E.run("tsmap", st, loge_bounds=one, flux_ul=False).dataset
    b = E.run("tsmap", st, loge_bounds=one, flux_ul=False, sum_over_energy=True).dataset
    np.testing.assert_allclose(b["ts"].values, a["ts"].values, rtol=1e-9, atol=1e-9)
    assert b.attrs["sum_over_energy"] is True or b.attrs["sum_over_energy"] == 1

    base = E.run("tsmap", st, flux_ul=False).dataset
    lon, lat = base["lon"].values.ravel(), base["lat"].values.ravel()
    j = int(np.argmin((lon - 84.6) ** 2 + (lat - 22.9) ** 2))
    src = {"ra": float(lon[j]), "dec": float(lat[j]), "SpectrumType": "PowerLaw",
           "Index": 2.0, "Prefactor": 1.5e-10, "Scale": 1000.0}
    sim = edits.generate_model(edits.add_source(st, "INJ", src, free=False)[0], seed=7)[0]
    ds = E.run("tsmap", sim, exclude=["INJ"], flux_ul=False, sum_over_energy=True).dataset
    ts_map = float(ds["ts"].values.ravel()[j])
    # the independent number: the summed images and a scalar maximisation
    from fermixr.likelihood.roi import component_costs

    bkg = sim.model.remove("INJ")
    c = component_costs(sim, bkg)[0]
    comp = sim.components[0]
    m = np.asarray(c.model_cube(c.x0)).reshape(comp.counts.shape).sum(axis=0)
    n = np.asarray(comp.counts).sum(axis=0)
    test = make_test_source(sim, None, (float(lon[j]), float(lat[j])), "CEL")
    k = _source_counts(sim, 0, test).reshape(comp.counts.shape).sum(axis=0)
    ny, nx = comp.geom.shape
    yy, xx = np.divmod(np.arange(ny * nx), nx)
    jy, jx = divmod(j, nx)
    r = int(np.ceil(3.0 / comp.geom.binsz))
    near = (np.abs(yy - jy) <= r) & (np.abs(xx - jx) <= r)
    n, m, k = n.ravel()[near], m.ravel()[near], k.ravel()[near]

    def nll(A):
        return -(np.sum(n * np.log(m + A * k) - A * k) - np.sum(n * np.log(m)))

    res = minimize_scalar(nll, bounds=(0.0, 1e5), method="bounded",
                          options={"xatol": 1e-10})
    ts_direct = -2.0 * res.fun
    print(f"sum_over_energy: TS map {ts_map:.3f}, direct {ts_direct:.3f}")
    assert ts_direct > 25
    assert ts_map == pytest.approx(ts_direct, rel=0.02)
    w = [c.replace(wmap=np.linspace(0.5, 1.0, c.counts.shape[0])[:, None]
                   * np.ones_like(c.counts)) for c in st.components]
    with pytest.raises(EstimatorError, match="sum_over_energy: component 0 has likelihood "
                                             "weights that vary with energy"):
        E.run("tsmap", st.replace(components=tuple(w)), sum_over_energy=True)
