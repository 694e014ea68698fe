"""fermixr against Gammapy on Gammapy's own kind of problem, side by side.

Problem (benchmarks/_problem.py; defaults): 30 energy bins (100 MeV - 100 GeV) x 200 x 200
pixels of 0.05 deg, 50 point sources with power-law spectra on pixel centres, an isotropic
background template, a flat exposure, a Gaussian PSF with an energy-dependent width cut at
3.717 sigma (99.9% containment) on both sides, Poisson counts drawn from a truth computed by
neither library.  Free: the 50 amplitudes and the background norm (51 parameters); indices
and positions fixed at the truth.  Both fits start from the same perturbed amplitudes.

Gammapy: a ``MapDataset`` (counts, exposure, background, a ``PSFMap`` holding the truncated
Gaussian table, no energy dispersion), ``SkyModel`` s of ``PointSpatialModel`` x
``PowerLawSpectralModel`` plus a ``FoVBackgroundModel``, ``Fit().run`` (MIGRAD, then HESSE).
fermixr: source maps from ``fermixr.srcmap.point.point_source_map`` (exposure x the PSF
integrated over each pixel, at the bin edges), the background as a source (``ConstantValue``
spatial model, power-law spectrum of fixed index) whose map is the exposure x the pixel solid
angle, sources from ``fermixr.model.build.source_from_dict``, the analysis state of
``fermixr.likelihood.roi``, the fit through ``fermixr.Analysis.from_state(state).fit()``
(default optimizer) and ``.fit(optimizer="NEWTON")``; where ``Analysis.from_state`` does not
exist yet, through ``fermixr.fit.fitter.fit(build_cost(state), ...)`` with MINUIT (numerical
HESSE: today's default), MINUIT with the analytic Hessian, and NEWTON.

Timed: (a) building the 50 PSF-convolved source maps (fermixr) / the first
``dataset.npred()`` with fresh evaluators (Gammapy), each after a warm-up on a separate
one-source problem (numba compilation, Gammapy's first-use imports), the warm-up printed
too; (b) one log L after one amplitude changed (median of repeats); (c) the full fits.
Checks printed: each side's cost at the truth and at both best fits (Cash/2 against -log L),
and the largest relative amplitude difference among sources with TS > 25 (TS from the
NEWTON fit as (amplitude / error)^2).  Timings are printed, never asserted.

    /work/gammapy-venv/bin/python benchmarks/gammapy_side_by_side.py
        (one process: Gammapy 2.1 with regions 0.11 and fermixr share numpy/astropy; the
        fermixr imported is the installed one, PYTHONPATH=<checkout> picks another; the
        report prints which)
    python benchmarks/gammapy_side_by_side.py --gammapy-python /work/gammapy-venv/bin/python
        (fermixr here, Gammapy in a second process: when the two need different packages)
    options: --nbins 30 --npix 200 --nsrc 50 --seed 42 --repeat 20 --skip-slow
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _problem import (BKG_INDEX, BKG_PREFACTOR, CENTER, E_REF, EXPOSURE,  # noqa: E402
                      make_problem, psf_offsets_deg, psf_sigma_deg, truncated_gaussian)


def _median_time(fn, repeat):
    ts = []
    for k in range(repeat):
        t0 = time.perf_counter()
        fn(k)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


# =========================================================================================
# fermixr
# =========================================================================================
def _fermixr_geom(prob):
    from fermixr.geom.wcs import WcsGeom

    return WcsGeom(CENTER, prob.npix, binsz=prob.binsz, proj="CAR", frame="CEL")


def _fermixr_maps(prob, geom, which):
    """Source maps (len(which), n_nodes, n_pix) with fermixr's point-source code."""
    from fermixr.srcmap.point import point_source_map

    off = psf_offsets_deg(float(psf_sigma_deg(prob.edges).max()))
    table = truncated_gaussian(off, psf_sigma_deg(prob.edges))
    out = np.empty((len(which), prob.nbins + 1, prob.npix * prob.npix))
    for a, k in enumerate(which):
        m = point_source_map(geom, prob.edges, prob.ra[k], prob.dec[k], EXPOSURE, off, table)
        out[a] = m.reshape(prob.nbins + 1, -1)
    return out


def _fermixr_model(prob, prefactors, bkg_norm):
    from fermixr.model.build import source_from_dict
    from fermixr.model.skymodel import SkyModel

    srcs = []
    for k, name in enumerate(prob.names):
        srcs.append(source_from_dict({
            "name": name, "ra": float(prob.ra[k]), "dec": float(prob.dec[k]),
            "SpatialModel": "PointSource", "SpectrumType": "PowerLaw",
            "spectral_pars": {
                "Prefactor": {"value": float(prefactors[k]) / 1e-13, "scale": 1e-13,
                              "min": 0.0, "max": 1e4, "free": True},
                "Index": {"value": float(prob.index[k]), "scale": -1.0, "min": 0.0,
                          "max": 5.0, "free": False},
                "Scale": {"value": E_REF, "scale": 1.0, "free": False}}}))
    srcs.append(source_from_dict({
        "name": "bkg", "SpatialModel": "ConstantValue", "SpectrumType": "PowerLaw",
        "spectral_pars": {
            "Prefactor": {"value": float(bkg_norm), "scale": BKG_PREFACTOR, "min": 0.0,
                          "max": 100.0, "free": True},
            "Index": {"value": BKG_INDEX, "scale": -1.0, "min": 0.0, "max": 5.0,
                      "free": False},
            "Scale": {"value": E_REF, "scale": 1.0, "free": False}}}))
    return SkyModel(tuple(srcs))


def _fermixr_values(prob, names, values, model):
    """(prefactors (nsrc,), bkg norm) from a fit's parameter names and scaled values."""
    pref = np.full(prob.nsrc, np.nan)
    bkg = np.nan
    idx = {n: k for k, n in enumerate(prob.names)}
    for n, v in zip(names, values):
        src, par = n.rsplit(":", 1)
        if par != "Prefactor":
            continue
        if src == "bkg":
            bkg = float(v)
        else:
            pref[idx[src]] = float(v) * model.find(src).param("Prefactor").scale
    return pref, bkg


def run_fermixr(prob, counts, args, out):
    import fermixr
    from fermixr.fit.fitter import fit as run_fit
    from fermixr.likelihood.roi import AnalysisState, Component, build_cost

    geom = _fermixr_geom(prob)
    lon, lat = geom.pixel_centers()
    lon0, lat0 = prob.pixel_lonlat()
    out["geom_check_deg"] = float(max(np.abs(((lon - lon0[None, :] + 180) % 360) - 180).max(),
                                      np.abs(lat - lat0[:, None]).max()))

    # (a) source maps: warm-up (numba compilation) on one source, then the 50
    t0 = time.perf_counter()
    _fermixr_maps(prob, geom, [0])
    out["fx_srcmap_warmup"] = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    maps = _fermixr_maps(prob, geom, range(prob.nsrc))
    out["fx_srcmap"] = time.perf_counter() - t0
    out["fx_srcmap_cpu"] = time.process_time() - c0
    out["fx_srcmap_sum_rel"] = float(np.median(
        maps.sum(axis=2) / EXPOSURE))          # fraction of each PSF inside the map

    named = {n: maps[k] for k, n in enumerate(prob.names)}
    named["bkg"] = prob.bkg_node_map()
    comp = Component(counts=counts.reshape(prob.nbins, -1), edges=prob.edges, maps=named,
                     sky_shape=(prob.npix, prob.npix))
    del maps, named
    start_model = _fermixr_model(prob, prob.start, prob.bkg_start)
    state = AnalysisState(components=(comp,), model=start_model)

    t0 = time.perf_counter()
    cost = build_cost(state)
    out["fx_build_cost"] = time.perf_counter() - t0
    x0 = np.array(cost.x0, dtype=float)
    names = list(cost.parameters)
    out["fx_npar"] = len(names)

    # truth on fermixr's parameter scale
    true_model = _fermixr_model(prob, prob.prefactor, 1.0)
    xt = np.array([true_model.find(n.rsplit(":", 1)[0]).param("Prefactor").value
                   for n in names])
    out["fx_cost_truth"] = float(cost(xt))
    out["fx_cost_start"] = float(cost(x0))

    # (b) one log L after one amplitude changed
    cost(x0)
    j = names.index(f"{prob.names[0]}:Prefactor")

    def one(k):
        x = x0.copy()
        x[j] *= 1.0 + 0.01 * (k % 7 + 1)
        cost(x)

    one(0)
    out["fx_loglike"] = _median_time(one, args.repeat)

    def value_and_grad(k):
        x = x0.copy()
        x[j] *= 1.0 + 0.01 * (k % 7 + 1)
        cost.value_and_grad(x)

    value_and_grad(0)
    out["fx_loglike_grad"] = _median_time(value_and_grad, args.repeat)

    # (c) the fits, after one call of each kernel they use (numba compiles on first use
    # and caches on disk, so only a first run ever pays it; printed apart)
    t0 = time.perf_counter()
    cost.fisher(x0)
    cost.hessian(x0)
    out["fx_fit_warmup"] = time.perf_counter() - t0
    fits = {}
    has_from_state = hasattr(fermixr.Analysis, "from_state")
    out["fx_from_state"] = has_from_state
    if has_from_state:
        # the default; MINUIT given the analytic Hessian explicitly (the same as the default
        # once the default uses it); NEWTON
        runs = [("default", {}),
                ("MINUIT+hess", {"optimizer": "MINUIT", "analytic_hessian": True}),
                ("NEWTON", {"optimizer": "NEWTON"})]
    else:
        runs = [("MINUIT", {"optimizer": "MINUIT"}),
                ("MINUIT+hess", {"optimizer": "MINUIT", "analytic_hessian": True}),
                ("NEWTON", {"optimizer": "NEWTON"})]
        if args.skip_slow:
            runs = runs[1:]
    for label, kw in runs:
        t0, c0 = time.perf_counter(), time.process_time()
        if has_from_state:
            ana = fermixr.Analysis.from_state(state)
            res = ana.fit(**kw)
            opt = str(res.get("optimizer", kw.get("optimizer", "default")))
            opt = (f"{opt} (analytic Hessian)" if kw.get("analytic_hessian") else
                   f"{opt} (default)" if not kw else opt)
        else:
            res = run_fit(build_cost(state), **kw)
            opt = kw["optimizer"] + (" (analytic Hessian)" if kw.get("analytic_hessian")
                                     else "")
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        res = dict(res)
        full = [f"{s}:{p}" for s, p in zip(res["src_names"], res["par_names"])]
        pref, bkg = _fermixr_values(prob, full, res["values"], start_model)
        err, _ = _fermixr_values(prob, full, res["errors"], start_model)
        fits[label] = {"time": dt, "cpu": cpu, "optimizer": str(opt),
                       "loglike": float(res["loglike"]),
                       "success": bool(res.get("fit_success", True)),
                       "prefactor": pref.tolist(), "prefactor_err": err.tolist(),
                       "bkg": bkg, "cost_at_own_best": float(-res["loglike"])}
        print(f"  fermixr fit {label:12s} {dt:8.2f} s  -logL {-res['loglike']:.3f}  "
              f"success {res.get('fit_success')}", flush=True)
    out["fx_fits"] = fits
    out["_fx_cost"] = cost
    out["_fx_names"] = names
    out["_fx_model"] = start_model


def fermixr_cost_at(out, prob, prefactors, bkg):
    names = out["_fx_names"]
    idx = {n: k for k, n in enumerate(prob.names)}
    x = np.empty(len(names))
    for a, n in enumerate(names):
        src = n.rsplit(":", 1)[0]
        if src == "bkg":
            x[a] = bkg
        else:
            x[a] = prefactors[idx[src]] / out["_fx_model"].find(src).param("Prefactor").scale
    return float(out["_fx_cost"](x))


# =========================================================================================
# Gammapy
# =========================================================================================
def _gp_dataset(prob, counts, name="bench"):
    import astropy.units as u
    from gammapy.datasets import MapDataset
    from gammapy.irf import PSFMap
    from gammapy.maps import Map, MapAxis, WcsGeom

    e_reco = MapAxis.from_edges(prob.edges, unit="MeV", name="energy", interp="log")
    e_true = MapAxis.from_edges(prob.edges, unit="MeV", name="energy_true", interp="log")
    geom = WcsGeom.create(skydir=CENTER, npix=prob.npix, binsz=prob.binsz, frame="icrs",
                          proj="CAR", axes=[e_reco])
    geom_true = geom.to_image().to_cube([e_true])
    cmap = Map.from_geom(geom, data=counts.reshape(geom.data_shape), unit="")
    expo = Map.from_geom(geom_true, data=np.full(geom_true.data_shape, EXPOSURE),
                         unit="cm2 s")
    bkg = Map.from_geom(geom, data=prob.bkg_counts().reshape(geom.data_shape), unit="")
    # PSF: the same truncated Gaussian, tabulated at Gammapy's true-energy bin centres
    sig = psf_sigma_deg(e_true.center.to_value("MeV"))
    off = psf_offsets_deg(float(psf_sigma_deg(prob.edges).max()))
    rad = MapAxis.from_nodes(off * u.deg, name="rad", interp="lin")
    psf_geom = WcsGeom.create(npix=(2, 1), proj="CAR", binsz=180).to_cube([rad, e_true])
    table = truncated_gaussian(off, sig)                  # (n_energy, n_rad)
    data = np.broadcast_to(table[:, :, None, None], psf_geom.data_shape).copy()
    psf_map = Map.from_geom(psf_geom, data=data, unit="sr-1")
    psf_expo = Map.from_geom(psf_geom.squash(axis_name="rad"), unit="cm2 s", data=1.0)
    psf = PSFMap(psf_map=psf_map, exposure_map=psf_expo)
    return MapDataset(counts=cmap, exposure=expo, background=bkg, psf=psf, name=name), geom


def _gp_models(prob, prefactors, bkg_norm, dataset_name, which=None):
    import astropy.units as u
    from gammapy.modeling.models import (FoVBackgroundModel, Models, PointSpatialModel,
                                         PowerLawSpectralModel, SkyModel)

    which = range(prob.nsrc) if which is None else which
    models = []
    for k in which:
        spec = PowerLawSpectralModel(index=float(prob.index[k]),
                                     amplitude=float(prefactors[k]) * u.Unit("cm-2 s-1 MeV-1"),
                                     reference=E_REF * u.MeV)
        spec.index.frozen = True
        spec.amplitude.min = 0.0
        spat = PointSpatialModel(lon_0=float(prob.ra[k]) * u.deg,
                                 lat_0=float(prob.dec[k]) * u.deg, frame="icrs")
        spat.lon_0.frozen = True
        spat.lat_0.frozen = True
        models.append(SkyModel(spectral_model=spec, spatial_model=spat,
                               name=prob.names[k]))
    bkg = FoVBackgroundModel(dataset_name=dataset_name)
    bkg.spectral_model.norm.value = float(bkg_norm)
    bkg.spectral_model.norm.min = 0.0
    models.append(bkg)
    return Models(models)


def _gp_amplitudes(prob, models):
    pref = np.array([models[n].spectral_model.amplitude.quantity.to_value("cm-2 s-1 MeV-1")
                     for n in prob.names])
    bkg = float(models[-1].spectral_model.norm.value)
    return pref, bkg


def run_gammapy(prob, counts, args, out):
    import gammapy
    from gammapy.modeling import Fit

    out["gp_version"] = gammapy.__version__
    # warm-up on a one-source dataset (first-use imports and caches of Gammapy)
    t0 = time.perf_counter()
    ds, geom = _gp_dataset(prob, counts, name="warm")
    ds.models = _gp_models(prob, prob.start, prob.bkg_start, "warm", which=[0])
    ds.npred()
    ds.stat_sum()
    out["gp_warmup"] = time.perf_counter() - t0
    del ds

    t0 = time.perf_counter()
    ds, geom = _gp_dataset(prob, counts)
    out["gp_build_dataset"] = time.perf_counter() - t0
    lon, lat = geom.to_image().get_coord().lon, geom.to_image().get_coord().lat
    lon0, lat0 = prob.pixel_lonlat()
    out["gp_geom_check_deg"] = float(max(
        np.abs(((np.asarray(lon) - lon0[None, :] + 180) % 360) - 180).max(),
        np.abs(np.asarray(lat) - lat0[:, None]).max()))

    # (a) the first npred with fresh evaluators (PSF kernels, spatial maps, convolutions)
    ds.models = _gp_models(prob, prob.start, prob.bkg_start, "bench")
    t0, c0 = time.perf_counter(), time.process_time()
    ds.npred()
    out["gp_npred_first"] = time.perf_counter() - t0
    out["gp_npred_first_cpu"] = time.process_time() - c0

    # the truth and the start on Gammapy's side
    ds.models = _gp_models(prob, prob.prefactor, 1.0, "bench")
    out["gp_cost_truth"] = 0.5 * float(ds.stat_sum())
    ds.models = _gp_models(prob, prob.start, prob.bkg_start, "bench")
    out["gp_cost_start"] = 0.5 * float(ds.stat_sum())

    # (b) one log L after one amplitude changed
    amp = ds.models[prob.names[0]].spectral_model.amplitude
    a0 = float(amp.value)

    def one(k):
        amp.value = a0 * (1.0 + 0.01 * (k % 7 + 1))
        ds.stat_sum()

    one(0)
    out["gp_loglike"] = _median_time(one, args.repeat)
    amp.value = a0

    # (c) the fit
    ds.models = _gp_models(prob, prob.start, prob.bkg_start, "bench")
    ds.stat_sum()
    fit = Fit()
    t0, c0 = time.perf_counter(), time.process_time()
    result = fit.run(datasets=[ds])
    out["gp_fit"] = time.perf_counter() - t0
    out["gp_fit_cpu"] = time.process_time() - c0
    pref, bkg = _gp_amplitudes(prob, ds.models)
    out["gp_fit_success"] = bool(result.success)
    out["gp_fit_nfev"] = int(getattr(result.optimize_result, "nfev", -1))
    out["gp_prefactor"] = pref.tolist()
    out["gp_bkg"] = bkg
    out["gp_cost_best"] = 0.5 * float(result.total_stat)
    print(f"  gammapy fit              {out['gp_fit']:8.2f} s  Cash/2 {out['gp_cost_best']:.3f}"
          f"  success {result.success}  nfev {out['gp_fit_nfev']}", flush=True)
    # Gammapy's Cash/2 at fermixr's best fit is evaluated later by the caller
    out["_gp_dataset"] = ds


def gammapy_cost_at(out, prob, prefactors, bkg):
    ds = out["_gp_dataset"]
    ds.models = _gp_models(prob, prefactors, bkg, "bench")
    return 0.5 * float(ds.stat_sum())


# =========================================================================================
# report
# =========================================================================================
def _row(label, fx, gp):
    ratio = fx / gp if (gp and np.isfinite(gp) and np.isfinite(fx)) else float("nan")
    return f"  {label:52s} {fx:11.4g} {gp:11.4g} {ratio:10.3g}"


def report(prob, out):
    print()
    print(f"problem: {prob.nbins} bins x {prob.npix} x {prob.npix} px of {prob.binsz} deg, "
          f"{prob.nsrc} point sources + isotropic background, {out.get('fx_npar')} free "
          f"parameters; seed {prob.seed}")
    import fermixr

    print(f"fermixr from {os.path.dirname(fermixr.__file__)}")
    print(f"gammapy {out.get('gp_version')}, numpy {np.__version__}; pixel-centre check: "
          f"fermixr {out.get('geom_check_deg', float('nan')):.2g} deg, "
          f"gammapy {out.get('gp_geom_check_deg', float('nan')):.2g} deg from the shared grid")
    try:
        import numba

        nthreads = numba.get_num_threads()
    except ImportError:
        nthreads = "?"
    print(f"machine: {os.cpu_count()} cores, numba threads {nthreads}, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} (1, 5, 15 min) at the end")
    print()
    print("model equivalence (cost = -log L = Cash/2, same data):")
    for what in ("truth", "start"):
        fx, gp = out[f"fx_cost_{what}"], out[f"gp_cost_{what}"]
        print(f"  at the {what}:  fermixr {fx:.3f}   gammapy {gp:.3f}   difference "
              f"{fx - gp:+.3f}")
    fits = out["fx_fits"]
    ref_label = "NEWTON" if "NEWTON" in fits else list(fits)[-1]
    ref = fits[ref_label]
    fx_p = np.array(ref["prefactor"])
    fx_e = np.array(ref["prefactor_err"])
    gp_p = np.array(out["gp_prefactor"])
    ts = (fx_p / np.where(fx_e > 0, fx_e, np.inf)) ** 2
    sel = ts > 25
    print(f"  best fits:     fermixr {ref_label} -logL min {ref['cost_at_own_best']:.3f}   "
          f"gammapy Cash/2 min {out['gp_cost_best']:.3f}")
    print(f"  fermixr cost at gammapy's best fit {out['fx_cost_at_gp']:.3f} "
          f"(own minimum {ref['cost_at_own_best']:.3f}); gammapy Cash/2 at fermixr's best fit "
          f"{out['gp_cost_at_fx']:.3f} (own minimum {out['gp_cost_best']:.3f})")
    rel = np.abs(fx_p - gp_p) / np.abs(gp_p)
    if sel.any():
        k = int(np.argmax(np.where(sel, rel, -1)))
        print(f"  sources with TS > 25 (TS = (A/sigma_A)^2 of the fermixr {ref_label} fit): "
              f"{int(sel.sum())} of {prob.nsrc}; largest relative amplitude difference "
              f"{rel[k]:.3%} ({prob.names[k]}, TS {ts[k]:.0f}, "
              f"{rel[k] * fx_p[k] / max(fx_e[k], 1e-300):.2f} sigma); median "
              f"{np.median(rel[sel]):.3%}; median signed (fermixr/gammapy - 1) "
              f"{np.median((fx_p / gp_p - 1)[sel]):+.3%}")
    print(f"  background norm: fermixr {ref['bkg']:.5f}  gammapy {out['gp_bkg']:.5f}  "
          f"(truth 1)")
    for label, f in fits.items():
        if label == ref_label:
            continue
        d = np.nanmax(np.abs(np.array(f["prefactor"]) - fx_p)[sel] / fx_e[sel]) \
            if sel.any() else float("nan")
        print(f"  fermixr {label} vs {ref_label}: -logL {f['cost_at_own_best']:.3f} vs "
              f"{ref['cost_at_own_best']:.3f}; largest amplitude difference {d:.3f} sigma")
    print()
    print(f"  {'time [s]':52s} {'fermixr':>11s} {'gammapy':>11s} {'fx/gp':>10s}")
    print(_row(f"(a) {prob.nsrc} source maps / first npred()", out["fx_srcmap"],
               out["gp_npred_first"]))
    print(_row("    the same, CPU seconds (all threads)", out["fx_srcmap_cpu"],
               out["gp_npred_first_cpu"]))
    print(_row("    warm-up (one source: compile / first use)", out["fx_srcmap_warmup"],
               out["gp_warmup"]))
    print(_row("(b) log L after one amplitude change (median)", out["fx_loglike"],
               out["gp_loglike"]))
    print(_row("    fermixr log L + gradient (same change)", out["fx_loglike_grad"],
               out["gp_loglike"]))
    for label, f in fits.items():
        print(_row(f"(c) fit: fermixr {f['optimizer']} vs Fit().run", f["time"],
                   out["gp_fit"]))
        print(_row("    the same, CPU seconds (all threads)", f["cpu"], out["gp_fit_cpu"]))
    print(f"  {'    fermixr fit-kernel warm-up (Fisher + Hessian once)':52s} "
          f"{out['fx_fit_warmup']:11.4g}")
    via = ("fermixr.Analysis.from_state(state).fit()" if out["fx_from_state"] else
           "fermixr.fit.fitter.fit(build_cost(state)) (Analysis.from_state not available)")
    print(f"  fermixr fits via {via}; build_cost alone {out['fx_build_cost']:.3f} s; "
          f"gammapy fit {out['gp_fit_nfev']} evaluations, success {out['gp_fit_success']}")
    print(f"  fermixr source maps: median fraction of the PSF inside the map "
          f"{out['fx_srcmap_sum_rel']:.4f} (per node: exposure x 1 expected)")


def _public(d):
    return {k: v for k, v in d.items() if not k.startswith("_")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nbins", type=int, default=30)
    ap.add_argument("--npix", type=int, default=200)
    ap.add_argument("--nsrc", type=int, default=50)
    ap.add_argument("--binsz", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--skip-slow", action="store_true",
                    help="skip the fallback MINUIT fit with the numerical Hessian")
    ap.add_argument("--gammapy-python", default=None,
                    help="run the Gammapy side under this interpreter (second process)")
    ap.add_argument("--side", choices=("both", "gammapy"), default="both",
                    help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--eval", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    prob = make_problem(args.nbins, args.npix, args.binsz, args.nsrc, args.seed)
    t0 = time.perf_counter()
    counts = prob.counts()
    print(f"problem built and simulated in {time.perf_counter() - t0:.1f} s: "
          f"{counts.sum():.0f} counts", flush=True)

    if args.side == "gammapy":      # the child process of --gammapy-python
        out = {}
        run_gammapy(prob, counts, args, out)
        if args.eval:
            with open(args.eval) as f:
                ev = json.load(f)
            out["gp_cost_at_fx"] = gammapy_cost_at(out, prob, np.array(ev["prefactor"]),
                                                   ev["bkg"])
        with open(args.json, "w") as f:
            json.dump(_public(out), f)
        return

    out = {}
    print("fermixr side ...", flush=True)
    run_fermixr(prob, counts, args, out)
    fits = out["fx_fits"]
    ref = fits["NEWTON"] if "NEWTON" in fits else list(fits.values())[-1]
    if args.gammapy_python:
        print(f"gammapy side (in {args.gammapy_python}) ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            ev = os.path.join(tmp, "fx.json")
            res = os.path.join(tmp, "gp.json")
            with open(ev, "w") as f:
                json.dump({"prefactor": ref["prefactor"], "bkg": ref["bkg"]}, f)
            cmd = [args.gammapy_python, os.path.abspath(__file__), "--side", "gammapy",
                   "--json", res, "--eval", ev, "--nbins", str(args.nbins), "--npix",
                   str(args.npix), "--nsrc", str(args.nsrc), "--binsz", str(args.binsz),
                   "--seed", str(args.seed), "--repeat", str(args.repeat)]
            subprocess.run(cmd, check=True)
            with open(res) as f:
                out.update(json.load(f))
    else:
        print("gammapy side ...", flush=True)
        run_gammapy(prob, counts, args, out)
        out["gp_cost_at_fx"] = gammapy_cost_at(out, prob, np.array(ref["prefactor"]),
                                               ref["bkg"])
    out["fx_cost_at_gp"] = fermixr_cost_at(out, prob, np.array(out["gp_prefactor"]),
                                           out["gp_bkg"])
    report(prob, out)


if __name__ == "__main__":
    main()
