"""fermixr -> Gammapy -> fermixr: the example run exported as a Gammapy MapDataset
(``export_gammapy``), imported back (``Analysis.from_gammapy``) and refitted.

Independent references: the original run's own fit (fermixr's likelihood on its own
products), and Gammapy's ``MapDataset.npred_signal`` of the same file and model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("gammapy", reason="gammapy (the optional `gammapy` extra) is not "
                                      "installed: the round trip is checked against it")

from fermixr.engine.gammapy_export import fitted_model          # noqa: E402

NAME = "SYN_CRAB"


def _gammapy_npred(path, models_yaml, diagonal=False):
    """Gammapy's predicted counts of NAME per measured bin for the MapDataset file
    ``path`` with the models of ``models_yaml``; with ``diagonal`` the file's EDISP kernel
    is replaced by Gammapy's diagonal response (no dispersion), and that dataset is written
    beside ``path`` (returned second)."""
    from gammapy.datasets import MapDataset
    from gammapy.irf import EDispKernelMap
    from gammapy.modeling.models import Models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = MapDataset.read(path)
        out = path
        if diagonal:
            ds.edisp = EDispKernelMap.from_diagonal_response(
                energy_axis=ds.counts.geom.axes["energy"],
                energy_axis_true=ds.exposure.geom.axes["energy_true"])
            out = path.with_name("diagonal_" + path.name)
            ds.write(out, overwrite=True)
            ds = MapDataset.read(out)
        ds.models = Models.read(models_yaml)
        return ds.npred_signal(model_names=[NAME]).data.sum(axis=(1, 2)), out


def _imported_npred(path, src):
    """fermixr's predicted counts of ``src`` per measured bin on the imported file."""
    from fermixr.api import Analysis
    from fermixr.likelihood.roi import component_costs

    gta = Analysis.from_gammapy(path)
    gta.model = gta.model.add(src)
    return component_costs(gta.state)[0].source_cube(NAME).sum(axis=1), gta


def test_export_import_refit_round_trip(syn_run, syn_export, tmp_path):
    """Per measured bin, the imported state's counts of the fitted source are Gammapy's
    npred of the same file and model within 1% (measured 0.2-0.5%: what is left is
    Gammapy renormalising its PSF kernel to 1 where fermixr's map loses the tail beyond
    the 5-degree ROI), with the file's dispersion and with Gammapy's diagonal response in
    its place (a no-dispersion dataset Gammapy wrote).  Refitted from another start, the
    source's flux and index land within 0.1 sigma of the original run's fit (the
    background, the other sources' fitted model, fixed as they were; measured -0.036 and
    -0.052 sigma, where Gammapy's own fit of the file lands at -0.017 and -0.019 sigma:
    test_gammapy_export.py).  Before the import integrated each true bin as Gammapy does,
    its counts were 0.91-1.04 of Gammapy's per bin (1.24 in the first bin without
    dispersion)."""
    dest, _ = syn_export
    path = dest / "mapdataset_00.fits"
    models = dest / "gammapy_models.yaml"
    orig = fitted_model(syn_run).find(NAME)

    gp, _ = _gammapy_npred(path, models)
    fx, gta = _imported_npred(path, orig)
    comp = gta.state.components[0]
    assert comp.drm is not None and comp.drm.shape == (12, 3 * 14)   # 12 + 2 true bins
    print("\nbin  E (MeV)  fermixr  Gammapy  ratio (dispersed)")
    for k, (a, b) in enumerate(zip(fx, gp)):
        print(f"{k:3d} {comp.edges[k]:8.1f} {a:8.3f} {b:8.3f} {a / b:8.5f}")
    np.testing.assert_allclose(fx, gp, rtol=0.01)

    gp_d, diag_path = _gammapy_npred(_copy(path, tmp_path), models, diagonal=True)
    fx_d, _ = _imported_npred(diag_path, orig)
    print("without dispersion:", np.round(fx_d / gp_d, 5))
    np.testing.assert_allclose(fx_d, gp_d, rtol=0.01)
    # the dispersion (0.4-1% here) is applied as Gammapy applies it
    np.testing.assert_allclose(fx / fx_d, gp / gp_d, rtol=1e-3)

    # the refit
    gta.free_source("gammapy_background", free=False)
    pref, index = orig.param("Prefactor"), orig.param("Index")
    gta.set_parameter(NAME, "Prefactor", pref.physical * 0.6)
    gta.set_parameter(NAME, "Index", index.physical + 0.3)
    gta.free_source(NAME, pars=["Prefactor", "Index"])
    out = gta.fit(tol=1e-6)          # the maximum itself, not the default stop
    assert out["fit_success"]
    new = gta.state.model.find(NAME)
    s_pref, s_idx = abs(pref.error * pref.scale), abs(index.error * index.scale)
    d_pref = (new.param("Prefactor").physical - pref.physical) / s_pref
    d_idx = (new.param("Index").physical - index.physical) / s_idx
    print(f"Prefactor run {pref.physical:.5g} +- {s_pref:.3g}, round trip "
          f"{new.param('Prefactor').physical:.5g}: {d_pref:+.4f} sigma")
    print(f"Index     run {index.physical:.5f} +- {s_idx:.4f}, round trip "
          f"{new.param('Index').physical:.5f}: {d_idx:+.4f} sigma")
    assert abs(d_pref) < 0.1 and abs(d_idx) < 0.1


def _copy(path, folder):
    import shutil

    out = folder / path.name
    shutil.copy(path, out)
    return out
