"""TS cube (fermixr.estimators.tscube) against independent numbers: with the background
norms fixed its TS and amplitude are the TS map's, and its per-bin norms and TS are the TS
map's restricted to that bin; with a background norm free under its prior the TS, norm and
background norm are those of a direct scipy maximisation of the same likelihood written
out with numpy; the scans peak at the per-bin norms and hold no NaN or inf, and the 95%
limit lies where the profile falls by 1.353; the numba kernels agree with their numpy
references; Fermipy's FITS layout round-trips; bad input gives one error and writes
nothing; the recipe step writes the product and the file."""

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
from fermixr.estimators import _tscube_kernels as K
from fermixr.estimators import edits

from test_estimators_conformance import _doc

RADIUS = 3.0     # the footprint of fermixr.estimators.tscube (KERNEL_RADIUS)


@pytest.fixture(scope="module")
def gta(tmp_path_factory, roi_setup):
    g = roi_setup("wcs_no_edisp", tmp_path_factory.mktemp("tscube"))
    g.state.components
    return g


@pytest.fixture(scope="module")
def nocrab(gta):
    """The ROI without SYN_CRAB in the model (its counts stay: the cube peaks there),
    the isotropic norm free and fitted (the fit's covariance is the prior's)."""
    st = edits.delete_source(gta.state, "SYN_CRAB")[0]
    st = edits.free_sources(st, free=False)
    st = st[0] if isinstance(st, tuple) else st
    st = edits.free_norm(st, "isodiff")
    res = E.run("fit", st)
    assert res.dataset.attrs["fit_success"]
    return res.state


@pytest.fixture(scope="module")
def fixed_cube(nocrab):
    return E.run("tscube", nocrab).dataset


# ------------------------------------------------------------------ independent sums --
def _centre(ds):
    """(iy, ix) of the pixel where the test source's map was made (no shift)."""
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    return ny // 2, nx // 2


def _footprint_terms(st, lon, lat, kbin=None):
    """n, m, w, s and the free norms' counts B (q, nb) of the terms: the (bin, pixel)s
    within RADIUS of (lon, lat) where the test source's map made there (no shift, no
    kernel class) is positive."""
    from fermixr.estimators.tsmap import _source_counts, make_test_source
    from fermixr.likelihood.roi import component_costs

    comp = st.components[0]
    c = component_costs(st)[0]
    ne = comp.counts.shape[0]
    src = make_test_source(st, None, (lon, lat), comp.geom.frame)
    s = _source_counts(st, 0, src).reshape(ne, -1)
    plon, plat = (np.ravel(a) for a in comp.geom.pixel_centers())
    r = np.radians
    h = np.sin(r(plat - lat) / 2) ** 2 + np.cos(r(plat)) * np.cos(r(lat)) * np.sin(
        r(plon - lon) / 2) ** 2
    inside = np.degrees(2 * np.arcsin(np.sqrt(h))) <= RADIUS
    # the kernel is cut out of a map made at the centre pixel: its box reaches no farther
    # than that map's nearest edge (11 pixels on the 24 x 24 map)
    g = comp.geom
    ny, nx = g.shape
    cy, cx = ny // 2, nx // 2
    r = min(int(np.ceil(RADIUS / g.binsz)), cx, cy, nx - 1 - cx, ny - 1 - cy)
    yy, xx = np.indices((ny, nx))
    inside &= ((np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)).ravel()
    names = [p for p, isn in zip(c.parameters, c.is_norm) if isn]
    m = c.model_cube(c.x0).reshape(ne, -1)
    B = np.stack([c.source_cube(p.split(":")[0], c.x0).reshape(ne, -1) for p in names],
                 axis=-1)
    ks = slice(None) if kbin is None else slice(kbin, kbin + 1)
    n = comp.counts.reshape(ne, -1)
    w = np.ones_like(n)
    sk = s[ks][:, inside].ravel()
    on = sk > 0                     # the terms: where the test source's kernel is positive
    return (n[ks][:, inside].ravel()[on], m[ks][:, inside].ravel()[on],
            w[ks][:, inside].ravel()[on], sk[on],
            B[ks][:, inside].reshape(-1, len(names))[on], names,
            c.x0[[list(c.parameters).index(p) for p in names]])


def _loglike(A, d, n, m, w, s, B):
    mu = m + A * s + B @ d
    if np.any((mu <= 0) & (n > 0)):
        return -np.inf
    return float(np.sum(w * (np.where(n > 0, n * np.log(mu / m), 0.0) - (mu - m))))


# --------------------------------------------------------------------------- kernels --
def _random_problem(rng, nbg, ne=3, ny=9, nx=8, npix=30):
    n = rng.poisson(2.0, (ne, ny, nx)).astype(float)
    m = rng.uniform(1.0, 4.0, (ne, ny, nx))
    w = rng.uniform(0.5, 1.0, (ne, ny, nx))
    B = rng.uniform(0.1, 1.0, (ne, ny, nx, nbg))
    kern = rng.uniform(0.0, 1.0, (4, ne, 5, 5))
    kern[:, :, 0, :] = 0.0
    foot = (rng.uniform(size=(4, 5, 5)) > 0.2).astype(np.uint8)
    ix = rng.integers(-2, nx + 2, npix)
    iy = rng.integers(-2, ny + 2, npix)
    cls = rng.integers(0, 4, npix)
    theta = np.concatenate([rng.uniform(0.0, 2.0, (npix, 1)),
                            rng.uniform(-0.3, 0.3, (npix, nbg))], axis=1)
    return n, m, w, B, kern, foot, ix, iy, cls, theta


@pytest.mark.parametrize("nbg", [0, 2])
def test_numba_kernels_agree_with_their_numpy_references(nbg):
    rng = np.random.default_rng(11 + nbg)
    n, m, w, B, kern, foot, ix, iy, cls, theta = _random_problem(rng, nbg)
    npix, P = theta.shape
    sel = np.arange(npix, dtype=np.int64)
    box = K.wcs_box(kern, foot, nbg > 0)
    for k0, k1 in ((0, 3), (1, 2)):
        outs = []
        for f in (K.wcs_accumulate, K.wcs_accumulate_numpy):
            o = (np.zeros((npix, P)), np.zeros((npix, P, P)), np.zeros(npix))
            f(theta, n, m, w, B, kern, foot, box, ix, iy, cls, k0, k1, *o, sel)
            outs.append(o)
        for a, b in zip(*outs):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
        assert np.abs(outs[0][0]).sum() > 0
    # the sparse placement
    ne = n.shape[0]
    n2, m2, w2 = (a.reshape(ne, -1) for a in (n, m, w))
    B2 = B.reshape(ne, n2.shape[1], nbg)
    counts = rng.integers(0, 7, npix)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    idx = rng.integers(0, n2.shape[1], ptr[-1]).astype(np.int64)
    vals = rng.uniform(0.0, 1.0, (ne, ptr[-1]))
    vals[:, ::3] = 0.0
    outs = []
    for f in (K.sparse_accumulate, K.sparse_accumulate_numpy):
        o = (np.zeros((npix, P)), np.zeros((npix, P, P)), np.zeros(npix))
        f(theta, n2, m2, w2, B2, ptr, idx, vals, 0, ne, *o, sel)
        outs.append(o)
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    # the scans: log L at several norms, the background shifts fixed, minus norm 0
    apts = np.sort(rng.uniform(0.0, 3.0, (npix, 4)), axis=1)
    kbox = K.wcs_box(kern, foot, False)
    o1, o2 = np.zeros((npix, 4)), np.zeros((npix, 4))
    K.wcs_scan(apts, theta, n, m, w, B, kern, foot, kbox, ix, iy, cls, 0, ne, o1, sel)
    K.wcs_scan_numpy(apts, theta, n, m, w, B, kern, foot, kbox, ix, iy, cls, 0, ne, o2, sel)
    np.testing.assert_allclose(o1, o2, rtol=1e-11, atol=1e-11)
    # ... which is the accumulated log L at (a, d) minus that at (0, d)
    for q in range(4):
        th_a, th_0 = theta.copy(), theta.copy()
        th_a[:, 0], th_0[:, 0] = apts[:, q], 0.0
        la, l0 = np.zeros(npix), np.zeros(npix)
        for th, L in ((th_a, la), (th_0, l0)):
            K.wcs_accumulate_numpy(th, n, m, w, B, kern, foot, box, ix, iy, cls, 0, ne,
                                   np.zeros((npix, P)), np.zeros((npix, P, P)), L, sel)
        np.testing.assert_allclose(o1[:, q], la - l0, rtol=1e-9, atol=1e-9)
    o1, o2 = np.zeros((npix, 4)), np.zeros((npix, 4))
    K.sparse_scan(apts, theta, n2, m2, w2, B2, ptr, idx, vals, 0, ne, o1, sel)
    K.sparse_scan_numpy(apts, theta, n2, m2, w2, B2, ptr, idx, vals, 0, ne, o2, sel)
    np.testing.assert_allclose(o1, o2, rtol=1e-11, atol=1e-11)


# ------------------------------------------------------------------- fixed background --
@pytest.mark.parametrize("mode", [
    "wcs_no_edisp",
    pytest.param("healpix", marks=pytest.mark.slow),
    pytest.param("two_pixel_sizes", marks=pytest.mark.slow)])
def test_with_fixed_background_the_ts_is_the_ts_maps(gta, nocrab, fixed_cube, mode,
                                                      tmp_path):
    if mode == "wcs_no_edisp":
        st, cube = nocrab, fixed_cube
    else:
        from fermixr import Analysis

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = Analysis(_doc(mode, tmp_path)).setup()
        st = edits.delete_source(g.state, "SYN_CRAB")[0]
        cube = E.run("tscube", st, do_sed=False).dataset
    tsm = E.run("tsmap", st).dataset
    a, b = cube["ts"].values, tsm["ts"].values
    print(f"{mode}: max TS tscube {a.max():.4f}, tsmap {b.max():.4f}")
    assert b.max() > 100                       # the Crab, left out of the model
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # the norms to the precision that tol = 1e-3 on log L gives (one Newton step past
    # an estimated distance to the maximum below 1e-3)
    on = b > 1
    for v in ("amplitude", "npred"):
        np.testing.assert_allclose(cube[v].values[on], tsm[v].values[on], rtol=2e-3)
    assert cube.attrs["free_background"] == "[]"
    # Fermipy's file on any grid: the TS map (an image, or a HEALPix table), FITDATA,
    # EBOUNDS; without per-bin fits no SCANDATA
    from astropy.io import fits

    from fermixr.engine.tscube_output import write_tscube_fits

    path = write_tscube_fits(cube, tmp_path / "c.fits") if mode != "wcs_no_edisp" else None
    if path is not None:
        with fits.open(path) as h:
            names = [x.name for x in h]
            fit_ts = np.asarray(h["FITDATA"].data["fit_ts"])
            if mode == "healpix":
                assert names == ["PRIMARY", "TS_MAP", "FITDATA", "EBOUNDS"]
                np.testing.assert_allclose(h["TS_MAP"].data["CHANNEL1"], a.ravel())
            else:
                assert names == ["PRIMARY", "FITDATA", "EBOUNDS"]
                np.testing.assert_allclose(h[0].data, a)
        np.testing.assert_allclose(fit_ts, a.ravel())


def test_per_bin_norms_and_ts_are_the_ts_maps_of_that_bin(nocrab, fixed_cube):
    ds = fixed_cube
    edges = np.log10(np.append(ds["energy_min"].values, ds["energy_max"].values[-1]))
    pref = ds.attrs["prefactor"]
    for k in (0, 2, 5):
        tsm = E.run("tsmap", nocrab, loge_bounds=[edges[k], edges[k + 1]]).dataset
        ts_k = ds["bin_ts"].values[..., k]
        np.testing.assert_allclose(ts_k, tsm["ts"].values, rtol=1e-4, atol=1e-5)
        on = tsm["ts"].values > 1
        assert on.sum() > 3
        np.testing.assert_allclose(ds["norm"].values[..., k][on] * pref,
                                   tsm["amplitude"].values[on], rtol=2e-3)


def test_scans_peak_at_the_bin_norms_and_are_finite(nocrab, fixed_cube):
    ds = fixed_cube
    ns, dl = ds["norm_scan"].values, ds["dloglike_scan"].values
    norm, ts = ds["norm"].values, ds["bin_ts"].values
    assert ns.shape[-1] == 10 and np.isfinite(ns).all() and np.isfinite(dl).all()
    assert (ns[..., 0] == 0).all() and (np.diff(ns, axis=-1) > 0).all()
    assert (dl <= 0).all()
    best = np.argmax(dl, axis=-1)
    np.testing.assert_array_equal(np.take_along_axis(ns, best[..., None], -1)[..., 0], norm)
    np.testing.assert_allclose(dl.max(axis=-1), 0.0, atol=1e-12)
    pos = norm > 0
    np.testing.assert_allclose(ts[pos], -2 * dl[..., 0][pos], rtol=1e-9, atol=1e-9)
    # the scan spans +- norm_sigma sigma (clipped at 0) around the norm
    top = ns[..., -1]
    err = ds["norm_err"].values
    ok = np.isfinite(err) & (err > 0)
    np.testing.assert_allclose(top[ok], (norm + 5.0 * err)[ok], rtol=1e-9)
    # at the centre pixel, against log L written out with numpy: the error is the
    # curvature's, the upper limit lies 1.353 below the maximum
    iy, ix = _centre(ds)
    lon, lat = float(ds["lon"].values[iy, ix]), float(ds["lat"].values[iy, ix])
    for k in (0, 3):
        n, m, w, s, B, _, _ = _footprint_terms(nocrab, lon, lat, k)
        d0 = np.zeros(B.shape[1])
        a = float(norm[iy, ix, k])
        f = lambda x: _loglike(x, d0, n, m, w, s, B)          # noqa: E731
        ul = float(ds["norm_ul"].values[iy, ix, k])
        assert f(ul) - f(a) == pytest.approx(-1.3527717, abs=2e-5)
        h = 1e-4 * max(a, 1.0)
        curv = -(f(a + h) - 2 * f(a) + f(a - h)) / h ** 2 if a > h else \
            float(np.sum(w * n * s ** 2 / m ** 2))
        assert float(err[iy, ix, k]) == pytest.approx(1 / np.sqrt(curv), rel=1e-3)
        for q in (3, 7):
            assert dl[iy, ix, k, q] == pytest.approx(f(ns[iy, ix, k, q]) - f(a), abs=1e-7)
        # log L of the bin's fit over the footprint, gtlike's value (without log n!)
        base = float(np.sum(w * (np.where(n > 0, n * np.log(m), 0.0) - m)))
        assert float(ds["loglike"].values[iy, ix, k]) == pytest.approx(base + f(a),
                                                                        rel=1e-9)


# -------------------------------------------------------------------- free background --
def test_free_background_equals_a_direct_maximisation(nocrab):
    """The isotropic norm free within 2 x its fit error: the cube's TS, norm and
    background norm at the centre pixel are those of scipy's maximisation of the same
    log L (footprint terms plus the Gaussian prior) with and without the test source."""
    from scipy.optimize import minimize

    scale = 2.0
    ds = E.run("tscube", nocrab, cov_scale_bb=scale, do_sed=False).dataset
    assert json.loads(ds.attrs["free_background"]) == ["isodiff:Normalization"]
    assert ds.attrs["prior_covariance"] == "fit"
    iy, ix = _centre(ds)
    lon, lat = float(ds["lon"].values[iy, ix]), float(ds["lat"].values[iy, ix])
    n, m, w, s, B, names, x0 = _footprint_terms(nocrab, lon, lat)
    fc = nocrab.fit_covariance()
    i = list(fc[0]).index(names[0])
    prec = 1.0 / (scale * fc[1][i, i] / x0[0] ** 2)

    def neg(p, with_src):
        A = p[0] if with_src else 0.0
        d = p[-1:]
        return -(_loglike(A, d, n, m, w, s, B) - 0.5 * prec * d[0] ** 2)

    amax = float(ds["fit_norm"].values[iy, ix]) * 3 + 10
    r1 = minimize(neg, [1.0, 0.0], args=(True,), method="L-BFGS-B",
                  bounds=[(0, amax), (-1, None)], options={"ftol": 1e-15, "gtol": 1e-10})
    r0 = minimize(neg, [0.0], args=(False,), method="L-BFGS-B", bounds=[(-1, None)],
                  options={"ftol": 1e-15, "gtol": 1e-10})
    ts_direct = 2 * (r0.fun - r1.fun)
    ts = float(ds["ts"].values[iy, ix])
    print(f"free background: TS cube {ts:.5f}, direct {ts_direct:.5f}; norm "
          f"{float(ds['fit_norm'].values[iy, ix]):.5f} vs {r1.x[0]:.5f}")
    assert ts_direct > 100
    assert ts == pytest.approx(ts_direct, abs=1e-3)
    assert float(ds["fit_norm"].values[iy, ix]) == pytest.approx(r1.x[0], rel=1e-4)
    assert float(ds["fit_bkg_norm"].values[iy, ix, 0]) == pytest.approx(1 + r1.x[1],
                                                                           abs=1e-5)
    # per bin, the background free within cov_scale x the broadband fit's covariance
    # (from the Hessian of the broadband log L written out here) around its broadband value
    A1, d1 = r1.x
    mu = m + A1 * s + B[:, 0] * d1
    v = np.stack([s, B[:, 0]], axis=1)
    Hbb = -(v * (w * n / mu ** 2)[:, None]).T @ v
    Hbb[1, 1] -= prec
    var_d = np.linalg.inv(-Hbb)[1, 1]
    sed = E.run("tscube", nocrab, cov_scale_bb=scale, cov_scale=1.0, nnorm=4).dataset
    for k in (0, 2):
        nk, mk, wk, sk, Bk, _, _ = _footprint_terms(nocrab, lon, lat, k)

        def negk(p, with_src):
            A = p[0] if with_src else 0.0
            d = p[-1:]
            return -(_loglike(A, d, nk, mk, wk, sk, Bk) - 0.5 * (d[0] - d1) ** 2 / var_d)

        q1 = minimize(negk, [1.0, d1], args=(True,), method="L-BFGS-B",
                      bounds=[(0, amax), (-1, None)], options={"ftol": 1e-15, "gtol": 1e-10})
        q0 = minimize(negk, [d1], args=(False,), method="L-BFGS-B", bounds=[(-1, None)],
                      options={"ftol": 1e-15, "gtol": 1e-10})
        assert float(sed["bin_ts"].values[iy, ix, k]) == pytest.approx(2 * (q0.fun - q1.fun),
                                                                       abs=2e-3)
        assert float(sed["norm"].values[iy, ix, k]) == pytest.approx(q1.x[0], rel=2e-3)
    assert np.isfinite(sed["dloglike_scan"].values).all()
    # the prior matters: with a prior a thousand times narrower the background is held
    # and the TS is the fixed-background one
    tight = E.run("tscube", nocrab, cov_scale_bb=scale * 1e-8, do_sed=False).dataset
    fixed = E.run("tscube", nocrab, do_sed=False).dataset
    np.testing.assert_allclose(tight["ts"].values, fixed["ts"].values, rtol=1e-4,
                               atol=1e-4)
    assert abs(ts - float(fixed["ts"].values[iy, ix])) > 1e-3


# ------------------------------------------------------------------------ files, API --
def test_fits_layout_round_trip_plot_and_dict(gta, tmp_path):
    from astropy.io import fits
    from astropy.table import Table

    g = gta.copy()
    g.outdir = tmp_path
    g.delete_source("SYN_CRAB")
    out = g.tscube(prefix="c1", make_plots=True, nnorm=6)
    assert set(out) >= {"ts", "sqrt_ts", "npred", "amplitude", "name", "file", "src_dict",
                        "config", "tscube"}
    assert out["name"] == "c1_pointsource_powerlaw_2.00"
    path = tmp_path / "c1_tscube.fits"
    assert out["file"] == path.name and path.is_file()
    ds = out["tscube"]
    validate_product(ds, "tscube")
    ny, nx, nb = ds.sizes["y"], ds.sizes["x"], ds.sizes["energy"]
    with fits.open(path) as h:
        assert [x.name for x in h] == ["PRIMARY", "SCANDATA", "FITDATA", "EBOUNDS"]
        np.testing.assert_allclose(h[0].data, out["ts"])
        assert h[0].header["CTYPE1"].startswith("RA")
        assert len(h["SCANDATA"].data) == ny * nx == len(h["FITDATA"].data)
    # read as Fermipy's TSCube / CastroData do: a row per pixel, x fastest
    tab_s = Table.read(path, hdu="SCANDATA")
    tab_e = Table.read(path, hdu="EBOUNDS")
    tab_f = Table.read(path, hdu="FITDATA")
    iy, ix = 5, 7
    row = tab_s[iy * nx + ix]
    assert row["norm_scan"].shape == (nb, 6)
    np.testing.assert_allclose(row["norm_scan"], ds["norm_scan"].values[iy, ix])
    np.testing.assert_allclose(row["dloglike_scan"], ds["dloglike_scan"].values[iy, ix])
    for c, v in (("norm", "norm"), ("norm_err", "norm_err"), ("norm_ul", "norm_ul"),
                 ("ts", "bin_ts"), ("loglike", "loglike"), ("ref_npred", "ref_npred")):
        np.testing.assert_allclose(np.asarray(tab_s[c]).reshape(ny, nx, nb), ds[v].values)
    np.testing.assert_allclose(row["e_min"], ds["energy_min"].values)
    np.testing.assert_allclose(np.asarray(tab_f["fit_norm"]).reshape(ny, nx),
                               ds["fit_norm"].values)
    np.testing.assert_allclose(tab_e["E_MIN"], ds["energy_min"].values)
    np.testing.assert_allclose(tab_e["E_MAX"], ds["energy_max"].values)
    np.testing.assert_allclose(tab_e["REF_FLUX"], ds["ref_flux"].values)
    assert str(tab_e["E_MIN"].unit) == "MeV"
    # the reference fluxes are the test source's (index 2: the same energy flux per bin
    # of equal log width)
    ef = np.asarray(tab_e["REF_EFLUX"])
    np.testing.assert_allclose(ef, ef[0], rtol=1e-6)
    # fermixr's castro tools read a pixel's profiles (Fermipy's CastroData API)
    from fermixr.estimators.castro import CastroData

    cd = CastroData.create_from_fits(str(path), norm_type="norm", irow=iy * nx + ix)
    np.testing.assert_allclose(np.asarray(cd.mles()), ds["norm"].values[iy, ix],
                               rtol=1e-3, atol=1e-6 * float(ds["norm_err"].max()))
    cde = CastroData.create_from_fits(str(path), norm_type="eflux", irow=iy * nx + ix)
    assert np.asarray(cde.ts_vals()).shape == (nb,)
    assert (tmp_path / "c1_tscube.npy").is_file()
    doc = np.load(tmp_path / "c1_tscube.npy", allow_pickle=True).item()
    np.testing.assert_allclose(doc["ts"], out["ts"])
    assert (tmp_path / "c1_tscube_sqrt_ts.png").stat().st_size > 1000
    # the Crab (left out of the model) is the peak
    j = np.unravel_index(int(np.argmax(out["ts"])), out["ts"].shape)
    ra, dec = gta.state.model.find("SYN_CRAB").skydir
    assert abs(float(ds["lon"].values[j]) - ra) < 0.3
    assert abs(float(ds["lat"].values[j]) - dec) < 0.3


@pytest.mark.parametrize("kwargs,match", [
    ({"model": {"SpectrumType": "NoSuchSpectrum"}}, r"tscube: model: .*NoSuchSpectrum"),
    ({"model": "PointSource"}, r"tscube: model: got 'PointSource'; expected a source dict"),
    ({"nnorm": 1}, r"tscube: nnorm: got 1; expected an integer >= 2"),
    ({"tol_type": 2}, r"tscube: tol_type: got 2; expected 0 \(absolute\) or 1"),
    ({"cov_scale_bb": "x"}, r"tscube: cov_scale_bb: got 'x'; expected a number"),
    ({"remake_test_source": True}, r"tscube: remake_test_source: got True; .*not "
                                   r"implemented"),
    ({"bogus": 1}, r"tscube: unknown option 'bogus'"),
])
def test_bad_input_one_clear_error_nothing_written(gta, tmp_path, kwargs, match):
    g = gta.copy()
    g.outdir = tmp_path
    with pytest.raises(EstimatorError, match=match) as ei:
        g.tscube(prefix="bad", **kwargs)
    assert isinstance(ei.value, FermixrError) and isinstance(ei.value, ValueError)
    assert "\n" not in str(ei.value)
    assert not list(tmp_path.iterdir())


def test_per_bin_fits_need_one_energy_binning(gta):
    comp = gta.state.components[0]
    other = comp.replace(edges=comp.edges * 1.01,
                         nodes=None if comp.nodes is None else comp.nodes * 1.01)
    st = gta.state.replace(components=(comp, other))
    with pytest.raises(EstimatorError, match=r"tscube: do_sed: the components have "
                                             r"different energy bins"):
        E.run("tscube", st)


def test_st_scan_level_warns_that_it_has_no_effect(gta):
    from fermixr.engine.recipe import OptionWithoutEffectWarning, load_recipe
    from fermixr.estimators.tscube import TscubeWarning, _check

    with pytest.warns(TscubeWarning, match=r"tscube\.st_scan_level: set to 1, accepted "
                                           r"without effect"):
        _check(10, 5.0, 1e-3, 30, 0, 0, -1, -1, False, 1, "numba", None)
    with pytest.warns(OptionWithoutEffectWarning, match=r"tscube\.st_scan_level"):
        load_recipe({"tscube": {"st_scan_level": 2}})


def test_the_recipe_step_writes_the_product_and_fermipys_file(gta, tmp_path):
    from fermixr.engine.run import run_recipe

    doc = _doc("wcs_no_edisp", tmp_path)
    doc["steps"] = ["setup", {"tscube": {"prefix": "st", "nnorm": 4}}]
    outdir = Path(doc["fileio"]["outdir"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_recipe(copy.deepcopy(doc), outdir=outdir, verbose=False)
    rec = json.loads((outdir / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["computed"]
    assert (outdir / "st_tscube.fits").is_file()
    import fermixr

    ds = fermixr.open_run(outdir)["tscube"]
    validate_product(ds)
    assert ds.sizes["norm_point"] == 4
    ref = E.run("tscube", gta.state, nnorm=4).dataset
    np.testing.assert_allclose(ds["ts"].values, ref["ts"].values, rtol=1e-9, atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_recipe(copy.deepcopy(doc), outdir=outdir, verbose=False)
    rec = json.loads((outdir / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["cached"]
    # a cached step whose file is gone runs again and writes it
    (outdir / "st_tscube.fits").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_recipe(copy.deepcopy(doc), outdir=outdir, verbose=False)
    rec = json.loads((outdir / "run.json").read_text())["analysis_steps"]
    assert [r["status"] for r in rec] == ["computed"]
    assert (outdir / "st_tscube.fits").is_file()
