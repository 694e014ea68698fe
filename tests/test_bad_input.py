"""Bad input stops a run with one clear line naming the file/option, exit 2, and writes
no product."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "quickstart.yaml"


def _recipe(tmp_path, steps=("setup",), **changes):
    doc = yaml.safe_load(EXAMPLE.read_text())
    for key in ("evfile", "scfile", "caldb"):
        doc["data"][key] = str((EXAMPLE.parent / doc["data"][key]).resolve())
    for section, values in changes.items():
        doc.setdefault(section, {}).update(values)
    doc["steps"] = list(steps)
    p = tmp_path / "recipe.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def _run(tmp_path, recipe):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", "run", str(recipe), "--outdir", str(out)],
                       capture_output=True, text=True, cwd=REPO)
    products = sorted(p.name for p in (out / "products").glob("*")) if (out / "products").exists() else []
    return r, products


@pytest.mark.parametrize("changes,expect", [
    ({"data": {"evfile": "/nonexistent/ft1.fits"}}, "data.evfile: file '/nonexistent/ft1.fits' does not exist"),
    ({"data": {"scfile": "/nonexistent/ft2.fits"}}, "data.scfile: file '/nonexistent/ft2.fits' does not exist"),
    ({"gtlike": {"irfs": "P8R9_NOPE_V1"}}, "unknown IRF name 'P8R9_NOPE_V1'.*offers: FXR_SYNTH_V1"),
    ({"selection": {"filter": "DATA_QUAL>0 && (LAT_CONFIG==1"}}, "selection.filter"),
])
def test_bad_input_before_any_work(tmp_path, changes, expect):
    import re

    r, products = _run(tmp_path, _recipe(tmp_path, **changes))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("fermixr: error")]
    assert len(lines) == 1 and re.search(expect, lines[0]), r.stderr
    assert "Traceback" not in r.stderr
    assert products == []


def test_file_list_naming_a_missing_file(tmp_path):
    lst = tmp_path / "ft1.lst"
    lst.write_text(str((EXAMPLE.parent / "data" / "ft1.fits").resolve()) + "\nmissing_ft1.fits\n")
    r, products = _run(tmp_path, _recipe(tmp_path, data={"evfile": f"@{lst}"}))
    assert r.returncode == 2
    assert "line 2 names" in r.stderr and "missing_ft1.fits" in r.stderr
    assert products == []


def test_empty_selection_names_the_cuts_and_writes_no_events(tmp_path):
    r, products = _run(tmp_path, _recipe(tmp_path, steps=["counts"],
                                         selection={"emin": 90000, "emax": 100000, "evtype": 1,
                                                    "zmax": 5}))
    assert r.returncode == 2, r.stderr
    assert "events" not in products and "counts" not in products
    assert "selection" in r.stderr.lower() and "no event" in r.stderr.lower()


def test_bad_model_value_is_bad_input(tmp_path):
    """A sky-model value the recipe schema lets through (a spectral model's name) fails in
    the model layer with a ModelError: exit 2, one line naming the source."""
    doc = yaml.safe_load(_recipe(tmp_path).read_text())
    doc["model"] = {"isodiff": str((EXAMPLE.parent / doc["model"]["isodiff"]).resolve()),
                    "sources": [{"name": "extra", "ra": 83.0, "dec": 22.5,
                                 "SpectrumType": "PowerLow"}]}
    p = tmp_path / "recipe.yaml"
    p.write_text(yaml.safe_dump(doc))
    r, products = _run(tmp_path, p)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("fermixr: error")]
    assert len(lines) == 1 and "(extra).SpectrumType: unknown spectral type 'PowerLow'" \
        in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_exit_codes_follow_the_builtin_base():
    """Every fermixr error that is a ValueError, LookupError or FileNotFoundError is bad
    input (exit 2); the others (StoreError, StepError) and foreign errors are failures
    (exit 1)."""
    import inspect

    from fermixr import errors
    from fermixr.cli import exit_code

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.FermixrError) and c is not errors.FermixrError]
    assert {"RecipeError", "ModelError", "LikelihoodError", "FileFormatError",
            "StoreError", "StepError"} <= {c.__name__ for c in classes}
    for c in classes:
        bad_input = issubclass(c, (ValueError, LookupError, FileNotFoundError))
        assert exit_code(c("x")) == (2 if bad_input else 1), c.__name__
    assert exit_code(errors.StepError("x")) == 1
    assert exit_code(errors.ModelError("x")) == 2
    assert exit_code(ValueError("x")) == 1
    assert exit_code(KeyError("x")) == 1
