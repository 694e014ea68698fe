"""The one conformance test every estimator joins by registering: each runs on the built-in
synthetic ROI (examples/data) made by the engine in four configurations -- WCS with energy
dispersion, WCS without, HEALPix, and two components (FRONT / BACK) of different pixel
sizes -- each with a weights map of ones and without (identical results); every product
meets its contract, and what an estimator returns does not depend on the configuration
beyond what the data change."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import fermixr.estimators as E
from fermixr.conventions import validate_product
from fermixr.likelihood.roi import AnalysisState

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml"
SOURCE = "SYN_CRAB"
MODES = {
    "wcs_edisp": {},
    "wcs_no_edisp": {"gtlike": {"edisp": False}},
    "healpix": {"binning": {"projtype": "HPX", "hpx_order": 7}},
    "two_pixel_sizes": {"components": [{"selection": {"evtype": 1}},
                                       {"selection": {"evtype": 2},
                                        "binning": {"binsz": 0.5}}]},
}


def _doc(mode: str, outdir: Path) -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    for k in ("evfile", "scfile", "caldb"):
        doc["data"][k] = str(EXAMPLE.parent / doc["data"][k])
    doc["model"]["catalogs"] = [str(EXAMPLE.parent / c) for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str(EXAMPLE.parent / doc["model"]["isodiff"])
    doc["model"]["src_roiwidth"] = 8.0
    doc.pop("steps")
    doc["binning"].update(roiwidth=6.0, binsz=0.25, binsperdec=4)
    doc["selection"].update(emin=500.0, emax=100000.0)
    for sec, v in MODES[mode].items():
        if sec == "components":
            doc[sec] = copy.deepcopy(v)
        else:
            doc.setdefault(sec, {}).update(v)
    doc["fileio"] = {"outdir": str(outdir / mode)}
    return doc


@pytest.fixture(scope="module")
def states(tmp_path_factory, roi_setup):
    """mode -> (state without weights, state with a weights map of ones): SYN_CRAB's norm
    and index and the isotropic norm free."""
    root = tmp_path_factory.mktemp("conformance")
    out = {}
    for mode in MODES:
        gta = roi_setup(mode, root)
        gta.free_source(SOURCE, pars=["Prefactor", "Index"])
        gta.free_norm("isodiff")
        st = gta.state
        ones = st.replace(components=tuple(c.replace(wmap=np.ones_like(c.counts))
                                           for c in st.components))
        out[mode] = (st, ones)
    return out


def _call(name, state):
    est = E.get(name)
    return E.run(name, state, SOURCE if est.needs_source else None)


def _numbers(ds) -> dict:
    """Every number of a product: data variables and numeric attributes."""
    out = {k: np.asarray(v.values, dtype=float) for k, v in ds.data_vars.items()
           if np.issubdtype(v.dtype, np.number) or v.dtype == bool}
    for k, v in ds.attrs.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out["attr:" + k] = np.asarray(float(v))
    return out


def test_the_registry_holds_the_moved_estimators():
    names = set(E.available())
    assert {"fit", "optimize", "profile", "profile_norm", "ts", "bowtie", "sourcedict"} <= names
    for n in names:
        est = E.get(n)
        assert est.version and est.product
        assert est.func.__doc__
    with pytest.raises(ValueError, match="unknown estimator 'nope'; available: bowtie"):
        E.get("nope")
    with pytest.raises(ValueError, match="ts: unknown option"):
        E.run("ts", None, SOURCE, bogus=1)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", E.available())
def test_estimator_conforms(states, name, mode):
    plain, weighted = states[mode]
    res = _call(name, plain)
    ds = res.dataset
    validate_product(ds, E.get(name).product)
    assert ds.attrs["fermixr_product"] == E.get(name).product
    # a weights map of ones changes nothing
    resw = _call(name, weighted)
    a, b = _numbers(ds), _numbers(resw.dataset)
    assert a.keys() == b.keys()
    rtol = 1e-6 if name in ("fit", "optimize") else 1e-9
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=rtol, atol=1e-12 * (np.nanmax(
            np.abs(a[k])) if a[k].size and np.isfinite(a[k]).any() else 1.0), err_msg=k,
            equal_nan=True)
    # the state given is never changed; a proposed state is a new one
    assert isinstance(plain, AnalysisState)
    if res.state is not None:
        assert res.state is not plain and plain.model is not res.state.model


@pytest.mark.parametrize("mode", list(MODES))
def test_estimators_agree_with_each_other(states, mode):
    """Numbers that several estimators report agree: TS from ts and from the source
    dictionary, npred, log L; the fit raises log L; the bright source is detected."""
    st, _ = states[mode]
    ts = _call("ts", st).dataset.attrs
    row = _call("sourcedict", st).dataset.sel(source=SOURCE)
    assert float(row["ts"]) == pytest.approx(ts["ts"], rel=1e-9)
    assert float(row["npred"]) == pytest.approx(ts["npred"], rel=1e-9)
    assert ts["ts"] > 25 and ts["npred"] > 10
    fit = _call("fit", st)
    assert fit.dataset.attrs["fit_success"] and fit.dataset.attrs["fit_quality"] >= 2
    assert fit.dataset.attrs["loglike"] >= ts["loglike"] - 1e-6
    after = fit.state
    # the profile of the fitted norm peaks at the best fit (within the grid step)
    prof = _call("profile_norm", after).dataset
    best = after.model.find(SOURCE).param("Prefactor").value
    x = prof["xvals"].values
    assert abs(x[int(np.argmax(prof["loglike"].values))] - best) <= (x[1] - x[0])
    # the bowtie is narrowest near the pivot energy of the source dictionary
    bt = _call("bowtie", after).dataset
    piv = float(_call("sourcedict", after).dataset.sel(source=SOURCE)["pivot_energy"])
    e_min = float(bt["energy"].values[int(np.argmin(bt["dnde_ferr"].values))])
    assert abs(math.log10(e_min / piv)) < 0.3


def test_estimator_options_have_the_option_tables_defaults():
    """An estimator's keyword options that its recipe section holds default to the table's
    values (the table is the home of defaults; the signature repeats them)."""
    from fermixr.engine import options as O

    checked = 0
    for name in E.available():
        est = E.get(name)
        if not est.section:
            continue
        table = O.SECTIONS[est.section]
        for key, default in est.options.items():
            if key in table:
                want = table[key].default
                want = list(want) if isinstance(want, tuple) else want
                got = list(default) if isinstance(default, tuple) else default
                assert got == want, f"{name}.{key}: {default!r} != table {want!r}"
                checked += 1
    assert checked >= 12


def test_summed_maps_of_components_on_different_grids_are_refused(states):
    from fermixr import Analysis
    from fermixr.errors import GeometryError

    st, _ = states["two_pixel_sizes"]
    gta = Analysis.from_state(st)
    with pytest.raises(GeometryError, match=r"model_counts: the components have different "
                                            r"grids \(counts shapes \(\d+, 576\), \(\d+, 144\)\)"):
        gta.model_counts_map()
    one, _ = states["wcs_edisp"]
    assert Analysis.from_state(one).model_counts_map().shape == one.components[0].template[
        "counts"].shape
