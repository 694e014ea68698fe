"""Every Analysis method as a recipe step, on the built-in example: products with their
contracts, the numbers they hold, and a second run that takes every result from the
store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import fermixr
from fermixr.conventions import validate_product
from fermixr.engine.run import run_recipe

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml"

STEPS = [
    "setup",
    {"free_norm": "isodiff"},
    {"free_source": {"name": "SYN_CRAB"}},
    {"add_source": {"name": "NEW1", "src_dict": {"ra": 85.0, "dec": 20.5, "Index": 2.0,
                                                 "Prefactor": 1e-13, "Scale": 1000.0},
                    "free": False}},
    {"free_parameter": {"name": "NEW1", "par": "Prefactor"}},
    {"set_parameter_bounds": {"name": "NEW1", "par": "Prefactor", "bounds": [0.0, 1e4]}},
    {"add_gauss_prior": {"name": "SYN_CRAB", "parName": "Index", "mean": 2.2, "sigma": 0.5}},
    "fit",
    "get_params",
    {"get_src_model": "SYN_CRAB"},
    {"get_sources": {"distance": 3.0}},
    {"profile_norm": {"name": "SYN_CRAB", "npts": 7}},
    {"profile": {"name": "SYN_CRAB", "parName": "Index", "npts": 5}},
    {"bowtie": {"name": "SYN_CRAB", "npts": 10}},
    "model_counts_map",
    {"write_xml": "after_fit.xml"},
    {"delete_source": "NEW1"},
    {"set_norm": {"name": "SYN_HARD", "value": 2.0}},
    {"zero_source": "SYN_SOFT"},
    {"generate_model": {"seed": 3}},
    "counts_map",
    {"print_params": {"allpars": True}},
    "print_roi",
    {"write_roi": "steps_roi"},
]


@pytest.fixture(scope="module")
def run(tmp_path_factory, example_setup):
    doc = yaml.safe_load(EXAMPLE.read_text())
    base = EXAMPLE.parent
    for k in ("evfile", "scfile", "caldb"):
        doc["data"][k] = str((base / doc["data"][k]).resolve())
    doc["model"]["catalogs"] = [str((base / c).resolve()) for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str((base / doc["model"]["isodiff"]).resolve())
    doc["gtlike"]["edisp"] = False
    doc["steps"] = STEPS
    out = example_setup(tmp_path_factory.mktemp("steps") / "run")   # the data products
    run_recipe(doc, outdir=out, verbose=False)
    first = json.loads((out / "run.json").read_text())["analysis_steps"]
    return doc, out, first


def test_every_step_runs_and_its_products_conform(run):
    doc, out, first = run
    status = [s["status"] for s in first]
    assert len(first) == len(STEPS) - 1                       # all but setup
    assert set(status) == {"applied", "computed"}
    r = fermixr.open_run(out)
    for name in ("fit", "get_params", "get_src_model", "get_sources", "profile_norm",
                 "profile", "bowtie", "model_counts_map", "counts_map", "roi"):
        assert name in r, name
        validate_product(r[name])
    assert (out / "after_fit.xml").is_file() and (out / "steps_roi.fits").is_file()


def test_the_numbers_in_the_products(run):
    doc, out, _ = run
    r = fermixr.open_run(out)
    fit = r["fit"]
    assert fit.attrs["fit_quality"] == 3
    assert set(fit["param"].values) == {"isodiff:Normalization", "SYN_CRAB:Prefactor",
                                        "SYN_CRAB:Index", "NEW1:Prefactor"}
    pars = r["get_params"].to_dataframe()
    assert pars["free"].sum() == 4
    assert pars.loc["NEW1:Prefactor", "max"] == 1e4
    crab = r["get_src_model"].to_dataframe().loc["SYN_CRAB"]
    assert crab["ts"] > 100 and crab["offset"] < 1e-3
    near = list(r["get_sources"]["source"].values)
    assert near[0] == "SYN_CRAB" and "SYN_SOFT" not in near and near[-1] == "isodiff"
    prof = r["profile_norm"]
    assert prof.sizes["point"] == 7 and prof["dloglike"].max() == 0.0
    assert prof.attrs["par_name"] == "Prefactor"
    idx = r["profile"]
    d = idx["dloglike"].values
    assert idx.sizes["point"] == 5 and d[2] == pytest.approx(0.0, abs=0.02)   # centred
    assert d[0] < -1 and d[-1] < -1                                           # +-3 errors
    bt = r["bowtie"]
    assert bt.sizes["energy"] == 10 and (bt["dnde_hi"] > bt["dnde"]).all()
    model = float(r["model_counts_map"]["model_counts"].sum())
    counts = float(r["counts"]["counts"].sum())
    assert model == pytest.approx(counts, rel=0.02)           # fitted norms: npred ~ counts
    sim = r["counts_map"]["counts"].values
    assert sim.sum() != counts and np.all(sim == np.round(sim))
    roi = r["roi"].to_dataframe()
    assert "NEW1" not in roi.index
    assert roi.loc["SYN_SOFT", "npred"] == 0.0                # zeroed
    assert roi.loc["SYN_HARD", "flux"] > 0


def test_a_second_run_takes_every_result_from_the_store(run):
    doc, out, first = run
    before = fermixr.open_run(out)
    values = {n: before[n].load() for n in ("fit", "profile", "counts_map", "roi")}
    run_recipe(doc, outdir=out, verbose=False)
    second = json.loads((out / "run.json").read_text())["analysis_steps"]
    assert [s["key"] for s in second] == [s["key"] for s in first]
    assert {s["status"] for s in second} == {"applied", "cached"}
    after = fermixr.open_run(out)
    for n, ds in values.items():
        assert after.path(n) == before.path(n)
        np.testing.assert_array_equal(after[n][list(ds.data_vars)[0]].values,
                                      ds[list(ds.data_vars)[0]].values)


def test_a_step_after_a_cached_fit_uses_its_covariance(run):
    """Changing only the last step recomputes it on the cached fit: its errors come from
    the stored covariance, the same numbers as when the fit ran in the same process."""
    doc, out, _ = run
    first = fermixr.open_run(out)["roi"].load()
    changed = dict(doc, steps=STEPS[:-1] + [{"write_roi": "steps_roi_again"}])
    run_recipe(changed, outdir=out, verbose=False)
    steps = json.loads((out / "run.json").read_text())["analysis_steps"]
    assert [s["status"] for s in steps if s["name"] in ("fit", "write_roi")] == \
        ["cached", "computed"]
    again = fermixr.open_run(out)["roi"].load()
    for k in ("flux_err", "eflux_err", "dnde_err", "pivot_energy"):
        np.testing.assert_allclose(again[k].values, first[k].values, rtol=1e-10)


def test_a_cached_write_roi_writes_its_files_again_when_they_are_gone(run):
    doc, out, _ = run
    files = [out / f"steps_roi{s}" for s in (".npy", ".fits", ".yaml", "_00.xml")]
    assert all(f.is_file() for f in files)
    before = np.load(files[0], allow_pickle=True).item()["roi"]["loglike"]
    files[1].unlink()
    run_recipe(doc, outdir=out, verbose=False)
    steps = json.loads((out / "run.json").read_text())["analysis_steps"]
    assert [s["status"] for s in steps if s["name"] in ("fit", "write_roi")] == \
        ["cached", "computed"]
    assert all(f.is_file() for f in files)
    assert np.load(files[0], allow_pickle=True).item()["roi"]["loglike"] == before
    run_recipe(doc, outdir=out, verbose=False)            # all there: cached again
    steps = json.loads((out / "run.json").read_text())["analysis_steps"]
    assert steps[-1]["status"] == "cached"


def test_a_discarded_fit_leaves_no_covariance_behind(run):
    """``fit: {update: false}`` keeps the model and the fit that belongs to it: a later
    bowtie has the kept fit's errors, not the discarded fit's (a prior squeezing the
    index makes the discarded fit's band much narrower)."""
    doc, out, _ = run
    kept = fermixr.open_run(out)["bowtie"].load()
    squeeze = {"add_gauss_prior": {"name": "SYN_CRAB", "parName": "Index", "mean": 2.2,
                                   "sigma": 0.001}}
    i_fit = STEPS.index("fit")
    bowtie = {"bowtie": {"name": "SYN_CRAB", "npts": 10}}
    for update, same in ((False, True), (True, False)):
        steps = STEPS[:i_fit + 1] + [squeeze, {"fit": {"update": update}}, bowtie]
        run_recipe(dict(doc, steps=steps), outdir=out, verbose=False)
        bt = fermixr.open_run(out)["bowtie"].load()
        ratio = bt["dnde_err"].values / kept["dnde_err"].values
        if same:
            np.testing.assert_allclose(ratio, 1.0, rtol=1e-10)
        else:
            assert ratio.min() < 0.8                          # the squeezed fit's band


def test_every_option_and_file_the_fit_reads_is_in_its_key(run, tmp_path):
    """An exposure scale, the optimizer section and the bytes of the isotropic table
    (rewritten with its size and mtime kept) all reach the fit's key."""
    import os
    import shutil

    doc, out, _ = run
    steps = STEPS[:STEPS.index("fit") + 1]
    base = dict(doc, steps=steps)
    iso = tmp_path / "iso.txt"
    shutil.copy(doc["model"]["isodiff"], iso)
    base["model"] = dict(doc["model"], isodiff=str(iso))

    def fit_of(recipe):
        run_recipe(recipe, outdir=out, verbose=False)
        rec = json.loads((out / "run.json").read_text())["analysis_steps"]
        f = fermixr.open_run(out)["fit"].load()
        return [s for s in rec if s["name"] == "fit"][0], dict(zip(f["param"].values,
                                                                  f["value"].values))

    s0, v0 = fit_of(base)
    s1, v1 = fit_of(dict(base, gtlike=dict(doc["gtlike"], expscale=2.0)))
    assert s1["key"] != s0["key"] and s1["status"] == "computed"
    # twice the exposure: about half the fitted norms (the fixed sources double too)
    assert v1["SYN_CRAB:Prefactor"] == pytest.approx(0.5 * v0["SYN_CRAB:Prefactor"], rel=0.05)
    s2, _ = fit_of(dict(base, optimizer={"optimizer": "NEWTON", "tol": 1e-4}))
    assert s2["key"] != s0["key"]
    # the isotropic table three times brighter, same size and mtime
    st = iso.stat()
    lines = []
    for line in iso.read_text().splitlines():
        e, *vals = line.split()           # energy, value, error: "%.6e" keeps the width
        lines.append(" ".join([e] + [f"{3 * float(v):.6e}" for v in vals]))
    iso.write_text("\n".join(lines) + "\n")
    os.utime(iso, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert iso.stat().st_size == st.st_size and iso.stat().st_mtime_ns == st.st_mtime_ns
    s3, v3 = fit_of(base)
    assert s3["key"] != s0["key"] and s3["status"] == "computed"
    assert v3["isodiff:Normalization"] == pytest.approx(v0["isodiff:Normalization"] / 3,
                                                        rel=0.05)


def test_a_failed_fit_is_recorded_as_failed_and_the_run_ends_with_an_error(run):
    from fermixr.errors import StepError

    doc, out, _ = run
    steps = STEPS[:STEPS.index("fit")] + [
        {"fit": {"optimizer": "NEWTON", "max_iter": 1, "retries": 1}}, "get_params"]
    for _ in range(2):            # computed, then taken from the store: failed both times
        with pytest.raises(StepError, match=r"1 analysis step\(s\) failed: step fit"):
            run_recipe(dict(doc, steps=steps), outdir=out, verbose=False)
        rec = json.loads((out / "run.json").read_text())["analysis_steps"]
        assert [s["status"] for s in rec][-2:] == ["failed", "computed"] or \
            [s["status"] for s in rec][-2:] == ["failed", "cached"]
        assert fermixr.open_run(out)["fit"].attrs["fit_success"] is False
