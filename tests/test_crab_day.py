"""The whole data preparation through recipes on the real LAT day, against the Science
Tools' products (issues: data preparation, IRFs/livetime/ST products)."""

from __future__ import annotations

import numpy as np
import pytest

import fermixr
from fermixr.engine.run import list_run, run_recipe

pytestmark = pytest.mark.shared_data

CRAB = (83.6331, 22.0145)


def _recipe(crab_day, caldb_dir, **sections):
    rec = {
        "data": {"evfile": str(crab_day / "ft1.fits.gz"), "scfile": str(crab_day / "ft2.fits.gz"),
                 "caldb": str(caldb_dir)},
        "binning": {"coordsys": "GAL", "proj": "CAR", "npix": 100, "binsz": 0.2, "binsperdec": 10},
        "selection": {"emin": 200, "emax": 20000, "zmax": 90, "evclass": 128, "evtype": 3,
                      "ra": CRAB[0], "dec": CRAB[1]},
        "gtlike": {"irfs": "P8R2_SOURCE_V6"},
        # the reference livetime cube: no zenith cut, 20 bins in cos theta, nside 16
        "ltcube": {"zmax": 180, "dcostheta": 0.05, "binsz": 4.0},
        "steps": ["setup"],
    }
    for k, v in sections.items():
        if isinstance(v, dict) and isinstance(rec.get(k), dict):
            rec[k] = {**rec[k], **v}
        else:
            rec[k] = v
    return rec


@pytest.fixture(scope="module")
def crab_run(crab_day, caldb_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("crab")
    run_recipe(_recipe(crab_day, caldb_dir), outdir=out, verbose=False)
    return out


def _ref(crab_day, name, hdu=0):
    from astropy.io import fits

    with fits.open(crab_day / name) as h:
        return np.asarray(h[hdu].data), h[hdu].header


def test_counts_equal_gtbin_exactly(crab_run, crab_day):
    counts = fermixr.open_run(crab_run)["counts"]
    ref, hdr = _ref(crab_day, "cntmap.fits.gz")
    np.testing.assert_array_equal(counts["counts"].values, ref)
    assert int(counts["counts"].sum()) == 853
    for k in ("CTYPE1", "CTYPE2"):
        assert counts.attrs["wcs_header"][k] == hdr[k]
    for k in ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2"):
        assert counts.attrs["wcs_header"][k] == pytest.approx(hdr[k], abs=2e-5)


def test_ltcube_matches_gtltcube(crab_run, crab_day):
    from fermixr.io.ltcube import read_ltcube

    ours = fermixr.open_run(crab_run)["ltcube"].load()
    ref = read_ltcube(crab_day / "ltcube.fits.gz")
    a = ours["exposure"].values.sum(axis=1)
    b = ref["exposure"].values.sum(axis=1)
    sel = b > 0.01 * b.max()
    rel = np.abs(a[sel] / b[sel] - 1)
    cth = 0.5 * (ref["costheta_min"].values + ref["costheta_max"].values)
    mean_a = (ours["exposure"].values * cth).sum(1)[sel] / a[sel]
    mean_b = (ref["exposure"].values * cth).sum(1)[sel] / b[sel]
    print(f"\nltcube total livetime: median rel diff {np.median(rel):.2e}, worst {rel.max():.2e}; "
          f"mean cos theta worst {np.abs(mean_a - mean_b).max():.2e}")
    assert rel.max() < 1e-3
    assert np.abs(mean_a - mean_b).max() < 0.005


@pytest.fixture(scope="module")
def expmap_geometry_runs(crab_day, caldb_dir, tmp_path_factory):
    """Exposure on binned_expmap's geometry (40 x 40 pixels of 0.5 deg), once from our
    livetime cube and once from gtltcube's through data.ltcube."""
    out = tmp_path_factory.mktemp("expmap")
    binning = {"npix": 40, "binsz": 0.5}
    own = run_recipe(_recipe(crab_day, caldb_dir, binning=binning, steps=["exposure"]),
                     outdir=out / "own", verbose=False)
    given = run_recipe(
        _recipe(crab_day, caldb_dir, binning=binning, steps=["exposure"],
                data={"ltcube": str(crab_day / "ltcube.fits.gz")}),
        outdir=out / "given", verbose=False)
    return out, own, given


@pytest.mark.parametrize("which,tol", [("own", 0.02), ("given", 0.01)])
def test_exposure_matches_gtexpcube2(expmap_geometry_runs, crab_day, which, tol):
    out, *_ = expmap_geometry_runs
    exp = fermixr.open_run(out / which)["exposure"]["exposure"].values
    ref, _ = _ref(crab_day, "binned_expmap.fits.gz")
    rel = np.abs(exp / ref - 1)
    print(f"\nexposure ({which} ltcube) vs binned_expmap: median {np.median(rel):.2e}, "
          f"worst {rel.max():.2e}")
    assert rel.max() < tol


def test_psf_table_normalised_and_shrinking(crab_run):
    psf = fermixr.open_run(crab_run)["psf"].load()
    off = np.radians(psf["offset"].values)
    integ = np.trapezoid(2 * np.pi * np.sin(off) * psf["psf"].values, off, axis=1)
    assert np.abs(integ - 1).max() < 1e-3
    r68 = psf["containment_68"].values
    e = psf["energy_true"].values
    print("\nE [MeV]   r68 [deg]")
    for ei, ri in zip(e, r68):
        print(f"{ei:9.1f} {ri:8.3f}")
    assert np.all(np.diff(r68) < 0)
    assert r68[0] > 2.0 and 0.08 < r68[e > 1e4].max() < 0.25


def test_four_psf_components_share_one_ltcube(crab_day, caldb_dir, tmp_path):
    cache = tmp_path / "cache"
    comps = [{"selection": {"evtype": t}} for t in (4, 8, 16, 32)]
    rec = _recipe(crab_day, caldb_dir, components=comps, steps=["exposure"],
                  fileio={"cachedir": str(cache)}, binning={"npix": 20, "binsz": 0.5})
    states = run_recipe(rec, outdir=tmp_path / "a", verbose=False)
    lt = [states[f"ltcube/{i:02d}"] for i in range(4)]
    assert lt[0].status == "computed"
    assert [s.status for s in lt[1:]] == ["shared"] * 3
    assert len({s.key for s in lt}) == 1
    exp_keys = {states[f"exposure/{i:02d}"].key for i in range(4)}
    assert len(exp_keys) == 4
    rows = {r["name"]: r["state"] for r in list_run(tmp_path / "a")}
    assert rows["ltcube/00"] == "fresh"
    assert all(rows[f"ltcube/{i:02d}"] == "shared with ltcube/00" for i in (1, 2, 3))
    # another recipe on the same data and times, other binning: the cube is reused
    rec2 = _recipe(crab_day, caldb_dir, steps=["exposure"], fileio={"cachedir": str(cache)},
                   binning={"npix": 30, "binsz": 0.3})
    states2 = run_recipe(rec2, outdir=tmp_path / "b", verbose=False)
    assert states2["ltcube"].status == "cached" and states2["ltcube"].key == lt[0].key
    assert states2["exposure"].status == "computed"


def test_export_st_layouts_and_ltcube_roundtrip(crab_run, crab_day, caldb_dir, tmp_path):
    from astropy.io import fits

    from fermixr.engine.export import export_run

    files = {p.name: p for p in export_run(crab_run, dest=tmp_path)}
    assert set(files) == {"ltcube_00.fits", "ccube_00.fits", "bexpmap_00.fits"}
    pairs = {"ltcube_00.fits": "ltcube.fits.gz", "ccube_00.fits": "cntmap.fits.gz",
             "bexpmap_00.fits": "binned_expmap.fits.gz"}
    for ours, ref in pairs.items():
        with fits.open(files[ours]) as a, fits.open(crab_day / ref) as b:
            assert [h.name for h in a] == [h.name for h in b], ours
            for ha, hb in zip(a, b):
                if hasattr(hb, "columns"):
                    assert ha.columns.names == hb.columns.names, (ours, ha.name)
    with fits.open(files["ccube_00.fits"]) as a:
        np.testing.assert_array_equal(a[0].data, _ref(crab_day, "cntmap.fits.gz")[0])
    # the exported livetime cube read back through data.ltcube equals what we computed
    states = run_recipe(_recipe(crab_day, caldb_dir, steps=["ltcube"],
                                data={"ltcube": str(files["ltcube_00.fits"])}),
                        outdir=tmp_path / "back", verbose=False)
    back = fermixr.open_run(tmp_path / "back")["ltcube"].load()
    orig = fermixr.open_run(crab_run)["ltcube"].load()
    for v in ("exposure", "weighted_exposure"):
        np.testing.assert_array_equal(back[v].values, orig[v].values.astype(np.float32))
    assert states["ltcube"].task.step == "ltcube_file"


def test_ltcube_file_disagreeing_with_selection(crab_day, caldb_dir, tmp_path):
    from fermixr.errors import SelectionError

    rec = _recipe(crab_day, caldb_dir, steps=["ltcube"], ltcube={"zmax": 90},
                  data={"ltcube": str(crab_day / "ltcube.fits.gz")},
                  selection={"tmin": 239557417.5, "tmax": 239600000.0})
    with pytest.warns(UserWarning) as rec_w:
        run_recipe(rec, outdir=tmp_path / "w", verbose=False)
    text = " ".join(str(w.message) for w in rec_w)
    assert "outside the analysis GTIs" in text and "239643817.5" in text
    lt = fermixr.open_run(tmp_path / "w")["ltcube"]
    assert any("zmax" in m or "zenith" in m for m in lt.attrs["warnings"])
    # a livetime cube of another day: no overlap at all is an error
    from fermixr.io.ltcube import read_ltcube, write_ltcube

    other = read_ltcube(crab_day / "ltcube.fits.gz")
    shift = 10 * 86400.0
    other = other.assign(gti_start=other.gti_start + shift, gti_stop=other.gti_stop + shift)
    other.attrs.update(TSTART=other.attrs["TSTART"] + shift, TSTOP=other.attrs["TSTOP"] + shift)
    write_ltcube(other, tmp_path / "other.fits")
    rec = _recipe(crab_day, caldb_dir, steps=["ltcube"], data={"ltcube": str(tmp_path / "other.fits")})
    with pytest.raises(SelectionError, match="do not overlap"):
        run_recipe(rec, outdir=tmp_path / "e", verbose=False)
    assert not (tmp_path / "e" / "products" / "ltcube").exists()


def test_bexpmap_all_sky_cube_is_resampled(crab_day, caldb_dir, tmp_path):
    """gtlike.bexpmap: an all-sky exposure cube (here written by us from gtltcube's cube in
    gtexpcube2's layout) is used instead of computing; on binned_expmap's geometry it agrees
    with gtexpcube2 where pixel centres coincide and within the interpolation error across
    livetime-cube pixel edges elsewhere."""
    from fermixr.exposure.expmap import exposure_map
    from fermixr.geom import WcsGeom
    from fermixr.io.ltcube import read_ltcube
    from fermixr.io.st_fits import write_expcube
    from fermixr.irf.irfset import load_irfs

    ref, _ = _ref(crab_day, "binned_expmap.fits.gz")
    energies, _ = _ref(crab_day, "binned_expmap.fits.gz", "ENERGIES")
    allsky = WcsGeom(center=(0.0, 0.0), npix=(720, 360), binsz=0.5, proj="CAR", frame="GAL")
    exp = exposure_map(read_ltcube(crab_day / "ltcube.fits.gz"),
                       load_irfs("P8R2_SOURCE_V6", 3, caldb_dir), allsky,
                       np.asarray(energies["Energy"]))
    write_expcube(exp, tmp_path / "allsky_bexpmap.fits")
    rec = _recipe(crab_day, caldb_dir, steps=["exposure"], binning={"npix": 40, "binsz": 0.5},
                  gtlike={"bexpmap": str(tmp_path / "allsky_bexpmap.fits")})
    states = run_recipe(rec, outdir=tmp_path / "run", verbose=False)
    assert states["exposure"].task.step == "exposure_bexpmap" and "ltcube" not in states
    ours = fermixr.open_run(tmp_path / "run")["exposure"]["exposure"].values
    rel = np.abs(ours / ref - 1)
    print(f"\nbexpmap resampled vs binned_expmap: median {np.median(rel):.1e}, worst {rel.max():.1e}")
    assert np.median(rel) < 1e-6 and rel.max() < 0.02
