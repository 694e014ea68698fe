"""Names, units and attribute keys shared by every product, and the contract checker.

A product is an ``xarray.Dataset``.  Its data contract (variables, dims, coords, units,
attrs) is a JSON Schema in ``schemas/products/<name>.schema.json`` applied to
``ds.to_dict(data=False)``; :func:`validate_product` checks a dataset against it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from .errors import ProductError

# --- dimension names -----------------------------------------------------------------
DIM_ENERGY = "energy"            # reconstructed energy bins (counts, model cubes)
DIM_ENERGY_TRUE = "energy_true"  # true-energy nodes (exposure, source maps, IRFs)
DIM_X = "x"                      # WCS pixel columns
DIM_Y = "y"                      # WCS pixel rows
DIM_PIX = "pix"                  # HEALPix pixels (all-sky or a region subset)
DIM_COSTHETA = "costheta"        # inclination bins of a livetime cube
DIM_PHI = "phi"                  # azimuth bins of a livetime cube
DIM_EVENT = "event"              # rows of an event list
DIM_GTI = "gti"                  # good time intervals
DIM_SOURCE = "source"            # sources of a sky model
DIM_OFFSET = "offset"            # angular separation axis of PSF tables

# --- units -------------------------------------------------------------------------
UNIT_ENERGY = "MeV"
UNIT_ANGLE = "deg"
UNIT_TIME = "s"
UNIT_EXPOSURE = "cm2 s"
UNIT_AREA = "cm2"
UNIT_PSF = "sr-1"

# --- attribute keys ----------------------------------------------------------------
ATTR_PRODUCT = "fermixr_product"   # contract name, e.g. "counts"
ATTR_PROVENANCE = "provenance"     # dict written by the engine
ATTR_MJDREF = "MJDREF"
ATTR_TSTART = "TSTART"
ATTR_TSTOP = "TSTOP"
ATTR_GEOM = "geom"                 # canonical geometry dict (see fermixr.geom)

# MET reference of the Fermi mission (MJDREFI + MJDREFF)
FERMI_MJDREF = 51910.0 + 7.428703703703703e-4


def _schema_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    # installed wheel: fermixr/_data/schemas; source checkout: <repo>/schemas
    return [here / "_data" / "schemas", here.parent / "schemas"]


def schema_path(relpath: str) -> Path:
    """Path of a schema file shipped with fermixr (``recipe.schema.json``,
    ``products/counts.schema.json`` ...)."""
    for d in _schema_dirs():
        p = d / relpath
        if p.exists():
            return p
    raise FileNotFoundError(
        f"fermixr schema {relpath!r} not found in {[str(d) for d in _schema_dirs()]}"
    )


@functools.lru_cache(maxsize=None)
def load_schema(relpath: str) -> dict:
    with open(schema_path(relpath)) as f:
        return json.load(f)


def product_names() -> list[str]:
    """Names of every product contract in ``schemas/products``."""
    for d in _schema_dirs():
        p = d / "products"
        if p.is_dir():
            return sorted(f.name.split(".")[0] for f in p.glob("*.schema.json"))
    return []


def validate_product(ds, name: str | None = None) -> None:
    """Check ``ds`` against its contract; raise :class:`ProductError` listing every
    violation with its path.  ``name`` defaults to ``ds.attrs['fermixr_product']``."""
    import jsonschema

    name = name or ds.attrs.get(ATTR_PRODUCT)
    if not name:
        raise ProductError(
            "dataset has no 'fermixr_product' attribute and no contract name was given"
        )
    try:
        schema = load_schema(f"products/{name}.schema.json")
    except FileNotFoundError:
        raise ProductError(
            f"no data contract named {name!r}; known: {', '.join(product_names())}"
        ) from None
    doc = json.loads(json.dumps(ds.to_dict(data=False), default=_jsonable))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"  at {'.'.join(str(p) for p in e.absolute_path) or '<dataset>'}: {e.message}"
            for e in errors[:20]
        ]
        raise ProductError(
            f"dataset does not conform to the {name!r} contract "
            f"({len(errors)} problem(s)):\n" + "\n".join(lines)
        )


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
