"""Shared fixtures: the location of the LAT reference data in ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """``$FERMIXR_SHARED_DATA`` if set, else ``<repo>/../shared/data``; None if absent."""
    env = os.environ.get("FERMIXR_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(_REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "lat-crab-1day").is_dir() and (c / "caldb").is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip(
            "LAT reference data not found: set FERMIXR_SHARED_DATA or place shared/data "
            "beside the repository"
        )
    return d


@pytest.fixture(scope="session")
def crab_day(shared_data) -> Path:
    return shared_data / "lat-crab-1day"


@pytest.fixture(scope="session")
def caldb_dir(shared_data) -> Path:
    return shared_data / "caldb"
