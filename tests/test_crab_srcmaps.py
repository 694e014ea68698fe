"""Source maps through recipes on the real LAT day, against gtsrcmaps (issue: sky model and
source maps)."""

from __future__ import annotations

import numpy as np
import pytest

import fermixr
from fermixr.engine.run import run_recipe

pytestmark = pytest.mark.shared_data

CRAB = (83.6331, 22.0145)


def _recipe(crab_day, caldb_dir, **sections):
    rec = {
        "data": {"evfile": str(crab_day / "ft1.fits.gz"), "scfile": str(crab_day / "ft2.fits.gz"),
                 "caldb": str(caldb_dir), "ltcube": str(crab_day / "ltcube.fits.gz")},
        "binning": {"coordsys": "GAL", "proj": "CAR", "npix": 100, "binsz": 0.2, "binsperdec": 10},
        "selection": {"emin": 200, "emax": 20000, "zmax": 90, "evclass": 128, "evtype": 3,
                      "ra": CRAB[0], "dec": CRAB[1]},
        # the reference source maps have the 21 planes of the counts bins' edges: no extra
        # true-energy bins for energy dispersion
        "gtlike": {"irfs": "P8R2_SOURCE_V6", "edisp_bins": 0},
        "ltcube": {"zmax": 180},
        "model": {"isodiff": [{"name": "Extragal_diffuse",
                               "file": str(crab_day / "iso_P8R2_SOURCE_V6_v06.txt")}]},
        "steps": ["srcmaps"],
    }
    for k, v in sections.items():
        rec[k] = {**rec.get(k, {}), **v} if isinstance(v, dict) else v
    return rec


def _ref_hdu(crab_day, name):
    from astropy.io import fits

    with fits.open(crab_day / "srcmap.fits.gz") as h:
        return np.asarray(h[name].data, dtype=np.float64)


@pytest.fixture(scope="module")
def own_and_given(crab_day, caldb_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("srcmaps")
    run_recipe(_recipe(crab_day, caldb_dir), outdir=out / "own", verbose=False)
    states = run_recipe(_recipe(crab_day, caldb_dir,
                                gtlike={"srcmap": str(crab_day / "srcmap.fits.gz")}),
                        outdir=out / "given", verbose=False)
    assert states["srcmap/Extragal_diffuse"].task.step == "srcmap_file"
    return out


def test_isotropic_source_map_matches_gtsrcmaps(own_and_given, crab_day):
    ours = fermixr.open_run(own_and_given / "own")["srcmap/Extragal_diffuse"]["srcmap"].values[0]
    ref = _ref_hdu(crab_day, "Extragal_diffuse")
    planes = np.abs(ours.sum(axis=(1, 2)) / ref.sum(axis=(1, 2)) - 1)
    pix = np.abs(ours / ref - 1)
    print(f"\nExtragal_diffuse vs gtsrcmaps: plane sums worst {planes.max():.2e}; per pixel "
          f"median {np.median(pix):.2e}, worst {pix.max():.2e}")
    assert planes.max() < 0.01
    assert pix.max() < 0.03


def test_gtlike_srcmap_hdus_give_the_same_model_counts(own_and_given, crab_day):
    from fermixr.likelihood.npred import model_counts
    from fermixr.model.spectral import FileFunction

    own = fermixr.open_run(own_and_given / "own")["srcmaps"]
    given = fermixr.open_run(own_and_given / "given")["srcmaps"]
    e = own["energy_true"].values
    np.testing.assert_allclose(given["energy_true"].values, e, rtol=1e-6)
    # the given HDU is used as it is
    np.testing.assert_allclose(given["srcmap"].values[0], _ref_hdu(crab_day, "Extragal_diffuse"),
                               rtol=1e-6)
    iso = FileFunction.from_file(crab_day / "iso_P8R2_SOURCE_V6_v06.txt")
    dnde = iso.evaluate(e, np.array([1.0]))
    a = model_counts(own["srcmap"].values[0], e, dnde).sum(axis=(1, 2))
    b = model_counts(given["srcmap"].values[0], e, dnde).sum(axis=(1, 2))
    print("\nisotropic model counts per bin (own / gtsrcmaps):", np.round(a / b, 4))
    np.testing.assert_allclose(a, b, rtol=0.01)


def test_point_source_map_sums_to_exposure(crab_day, caldb_dir):
    """A point source's map over a large ROI holds exposure x 1 per unit dN/dE (>= 1 GeV,
    where 30 deg hold the whole PSF)."""
    from fermixr.exposure.expcube import exposure_at
    from fermixr.geom import WcsGeom
    from fermixr.io.ltcube import read_ltcube
    from fermixr.irf.irfset import load_irfs
    from fermixr.srcmap.build import source_map_array

    lt = read_ltcube(crab_day / "ltcube.fits.gz")
    irfs = load_irfs("P8R2_SOURCE_V6", 3, caldb_dir)
    geom = WcsGeom(center=CRAB, npix=(120, 120), binsz=0.25, proj="CAR", frame="CEL")
    e = np.geomspace(1000.0, 100000.0, 5)
    for ra, dec in (CRAB, (CRAB[0] + 0.13, CRAB[1] - 0.07)):
        spatial = {"SpatialModel": "PointSource", "spatial_pars": {"RA": ra, "DEC": dec}}
        m = source_map_array(spatial, geom, e, lt, irfs, CRAB)
        expo = exposure_at(lt, irfs, [ra], [dec], e)[:, 0]
        np.testing.assert_allclose(m.sum(axis=(1, 2)), expo, rtol=0.01)
