"""The data contracts in schemas/products: well-formed, and the checker catches violations."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest
import xarray as xr

from fermixr.conventions import load_schema, product_names, validate_product
from fermixr.errors import ProductError

REQUIRED = {"events", "gti", "ltcube", "exposure", "counts", "psf", "srcmaps", "drm", "model_counts",
            "fit", "likelihood_scan", "sed", "tsmap", "lightcurve", "roi"}


def test_every_required_contract_exists_and_is_valid_json_schema():
    names = set(product_names())
    assert REQUIRED <= names, REQUIRED - names
    for n in names:
        jsonschema.Draft202012Validator.check_schema(load_schema(f"products/{n}.schema.json"))


def _counts(dims=("energy", "y", "x"), units="MeV"):
    shape = {"energy": 2, "y": 3, "x": 4, "pix": 5}
    sky = dims[1:]
    return xr.Dataset(
        {"counts": (dims, np.zeros([shape[d] for d in dims], np.int32))},
        coords={
            "energy": ("energy", [150.0, 300.0], {"units": units}),
            "energy_min": ("energy", [100.0, 200.0], {"units": units}),
            "energy_max": ("energy", [200.0, 400.0], {"units": units}),
            "lon": (sky, np.zeros([shape[d] for d in sky]), {"units": "deg"}),
            "lat": (sky, np.zeros([shape[d] for d in sky]), {"units": "deg"}),
        },
        attrs={"fermixr_product": "counts", "geom": {"type": "wcs", "frame": "GAL"}},
    )


def test_conforming_counts_passes_wcs_and_hpx():
    validate_product(_counts())
    ds = _counts(("energy", "pix"))
    ds.attrs["geom"] = {"type": "hpx", "frame": "CEL", "nside": 1, "ordering": "RING"}
    validate_product(ds)


def test_violations_are_named():
    with pytest.raises(ProductError, match=r"coords\.energy\.attrs\.units"):
        validate_product(_counts(units="GeV"))
    bad = _counts().transpose("y", "x", "energy")
    with pytest.raises(ProductError, match=r"data_vars\.counts\.dims"):
        validate_product(bad)
    nog = _counts()
    del nog.attrs["geom"]
    with pytest.raises(ProductError, match="'geom' is a required property"):
        validate_product(nog)
    with pytest.raises(ProductError, match="no data contract named 'nope'"):
        validate_product(_counts(), "nope")
