"""gtpsf-style PSF table at the Crab on the shared day."""

from __future__ import annotations

import numpy as np
import pytest

from fermixr.conventions import validate_product
from fermixr.exposure.psftable import psf_table


pytestmark = pytest.mark.shared_data

CRAB = (83.6331, 22.0145)


def _read_ltcube(path):
    fermixr_ltcube = pytest.importorskip("fermixr.io.ltcube")
    return fermixr_ltcube.read_ltcube(path)


@pytest.fixture(scope="module")
def table(crab_day, caldb_dir):
    lt = _read_ltcube(crab_day / "ltcube.fits.gz")
    energies = np.logspace(2, 5, 13)
    offsets = np.concatenate(([0.0], np.logspace(-4, np.log10(180.0), 1500)))
    return psf_table(lt, "P8R2_SOURCE_V6", *CRAB, energies, caldb=caldb_dir, offsets=offsets)


def test_psf_table_normalisation_and_radii(table):
    validate_product(table)
    r = np.radians(table.offset.values)
    integ = np.trapezoid(2 * np.pi * np.sin(r) * table.psf.values, r, axis=1)
    print("\n   E (MeV)   r68     r95     r99   (deg)   sphere integral")
    for i, e in enumerate(table.energy_true.values):
        print(f"{e:10.1f} {table.containment_68.values[i]:7.3f} "
              f"{table.containment_95.values[i]:7.3f} {table.containment_99.values[i]:7.3f}"
              f"   {integ[i]:.5f}")
    np.testing.assert_allclose(integ, 1.0, atol=1e-3)
    r68 = table.containment_68.values
    assert 3.0 < r68[0] < 8.0  # several deg at 100 MeV
    assert np.all(np.diff(r68[:-2]) < 0)
    assert np.all((r68[table.energy_true.values > 1e4] > 0.08)
                  & (r68[table.energy_true.values > 1e4] < 0.2))
    assert np.all(table.containment_68 < table.containment_95)
    assert np.all(table.containment_95 < table.containment_99)
    assert np.all(table.exposure > 1e7) and np.all(table.exposure < 1e9)
    # the renormalisation is a small correction (flat-sky node normalisation)
    assert np.all(np.abs(table.norm_correction - 1) < 5e-3)
