"""4FGL / 3FGL catalog reader: spectra from catalog columns (checked by evaluating the
spectral models against the catalogs' own formulas), associations and name matching,
extended sources, selection, file lookup and errors.  Catalogs are written in tmp_path in
the 4FGL / 3FGL FITS layout."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from fermixr.errors import FileFormatError, InputFileError, ModelError
from fermixr.model.spatial import GAUSS_R68
from fermixr.model.catalog import (angular_separation, open_catalog, read_catalog,
                                   resolve_catalog, sky_selection_mask)
from fermixr.model.spectral import get_spectral_model

ROOT = Path(__file__).resolve().parent.parent

F32 = lambda x: float(np.float32(x))  # noqa: E731  (catalog columns are float32)

# -- writing catalogs in the 4FGL / 3FGL layout ----------------------------------------
STR_COLS = {"Source_Name": 18, "SpectrumType": 17, "Extended_Source_Name": 18,
            "ASSOC1": 28, "ASSOC2": 26, "ASSOC_FGL": 18, "ASSOC_FHL": 18, "ASSOC_GAM1": 17,
            "ASSOC_GAM2": 17, "ASSOC_GAM3": 17, "ASSOC_TEV": 24, "CLASS1": 5, "CLASS": 5,
            "Model_Form": 11, "Spatial_Function": 15, "Spatial_Filename": 32, "ASSOC": 26,
            "2FGL_Name": 18, "1FHL_Name": 18}
COLS_4FGL = ["Source_Name", "RAJ2000", "DEJ2000", "GLON", "GLAT", "Extended_Source_Name",
             "Signif_Avg", "Pivot_Energy", "Flux1000", "Energy_Flux100", "SpectrumType",
             "PL_Flux_Density", "Unc_PL_Flux_Density", "PL_Index", "Unc_PL_Index",
             "LP_Flux_Density", "Unc_LP_Flux_Density", "LP_Index", "Unc_LP_Index", "LP_beta",
             "Unc_LP_beta", "PLEC_Flux_Density", "Unc_PLEC_Flux_Density", "PLEC_Exp_Index",
             "ASSOC_FGL", "ASSOC_FHL", "ASSOC_GAM1", "ASSOC_GAM2", "ASSOC_GAM3", "ASSOC_TEV",
             "CLASS1", "ASSOC1", "ASSOC2", "ASSOC_PROB_BAY"]
COLS_DR3 = ["PLEC_IndexS", "Unc_PLEC_IndexS", "PLEC_ExpfactorS", "Unc_PLEC_ExpfactorS"]
COLS_DR1 = ["PLEC_Index", "Unc_PLEC_Index", "PLEC_Expfactor", "Unc_PLEC_Expfactor"]
COLS_3FGL = ["Source_Name", "RAJ2000", "DEJ2000", "GLON", "GLAT", "Extended_Source_Name",
             "Signif_Avg", "Pivot_Energy", "Flux_Density", "Unc_Flux_Density",
             "Spectral_Index", "Unc_Spectral_Index", "beta", "Unc_beta", "Cutoff",
             "Unc_Cutoff", "Exp_Index", "Unc_Exp_Index", "SpectrumType", "Sqrt_TS100_300",
             "Sqrt_TS300_1000", "ASSOC1", "ASSOC2", "CLASS1", "2FGL_Name", "1FHL_Name"]
EXT_COLS = ["Source_Name", "RAJ2000", "DEJ2000", "GLON", "GLAT", "Model_Form",
            "Model_SemiMajor", "Model_SemiMinor", "Model_PosAng", "Spatial_Function",
            "Spatial_Filename"]


def _table(rows, names, hdu_name):
    cols = []
    for n in names:
        vals = [r.get(n, "" if n in STR_COLS else np.nan) for r in rows]
        if n in STR_COLS:
            cols.append(fits.Column(name=n, format=f"{STR_COLS[n]}A",
                                    array=np.array([str(v) for v in vals],
                                                   dtype=f"S{STR_COLS[n]}")))
        else:
            cols.append(fits.Column(name=n, format="E", array=np.array(vals, dtype=np.float32)))
    return fits.BinTableHDU.from_columns(cols, name=hdu_name)


def write_catalog(path, rows, *, kind="4FGL-DR3", ext_rows=(), drop=(), ext_hdu=True,
                  main_name="LAT_Point_Source_Catalog"):
    names = {"4FGL-DR3": COLS_4FGL + COLS_DR3, "4FGL-DR1": COLS_4FGL + COLS_DR1,
             "3FGL": COLS_3FGL}[kind]
    names = [n for n in names if n not in drop]
    hdus = [fits.PrimaryHDU(), _table(rows, names, main_name)]
    if ext_hdu:
        hdus.append(_table(list(ext_rows), EXT_COLS,
                           "ExtendedSources" if kind != "3FGL" else "ExtendedSources"))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return Path(path)


def pl_row(name, ra, dec, k=1e-12, g=2.0, e0=1000.0, **kw):
    d = dict(Source_Name=name, RAJ2000=ra, DEJ2000=dec, SpectrumType="PowerLaw",
             Pivot_Energy=e0, PL_Flux_Density=k, PL_Index=g, LP_Flux_Density=k, LP_Index=g,
             LP_beta=0.0, PLEC_Flux_Density=k, PLEC_IndexS=g, PLEC_ExpfactorS=0.0,
             PLEC_Index=g, PLEC_Expfactor=0.0, PLEC_Exp_Index=0.6667, Signif_Avg=10.0)
    d.update(kw)
    return d


MKN421 = pl_row("4FGL J1104.4+3812", 166.1138, 38.2088, SpectrumType="LogParabola",
                Pivot_Energy=1137.1, LP_Flux_Density=2.07e-11, LP_Index=1.77, LP_beta=0.0111,
                Unc_LP_Flux_Density=1.5e-13, Unc_LP_Index=0.005, Unc_LP_beta=0.002,
                ASSOC1="Mkn 421", ASSOC_FGL="3FGL J1104.4+3812", ASSOC_FHL="3FHL J1104.4+3812",
                ASSOC_GAM1="2FHL J1104.4+3812", ASSOC_TEV="Markarian 421", CLASS1="BLL",
                Signif_Avg=210.5, ASSOC_PROB_BAY=1.0)


def _eval(src, energy):
    cls = get_spectral_model(src.spectrum)
    return cls().evaluate(np.asarray(energy, float), src.spectral_values())


# -- spectra ---------------------------------------------------------------------------
def test_4fgl_powerlaw_parameters_fermipy_convention(tmp_path):
    p = write_catalog(tmp_path / "cat.fits",
                      [pl_row("4FGL J0000.0+0000", 10.0, 20.0, k=3.2e-12, g=2.3, e0=1523.0,
                              Unc_PL_Flux_Density=4e-13, Unc_PL_Index=0.05)])
    s = read_catalog(p).sources[0]
    assert s.spectrum == "PowerLaw" and s.spatial_model == "PointSource"
    pf, ix, sc = s.spectral
    assert (pf.name, ix.name, sc.name) == ("Prefactor", "Index", "Scale")
    # Fermipy: scale 10**round(log10 K) = 1e-11 for 3.2e-12
    assert pf.scale == 1e-11 and math.isclose(pf.physical, F32(3.2e-12), rel_tol=1e-15)
    assert (pf.min, pf.max) == (1e-5, 1e3)
    assert ix.value == F32(2.3) and ix.scale == -1.0 and (ix.min, ix.max) == (0.0, 5.0)
    assert sc.value == sc.min == sc.max == F32(1523.0)
    assert not any(q.free for q in s.spectral + s.spatial)
    assert math.isclose(pf.error, F32(4e-13) / 1e-11, rel_tol=1e-12)
    assert math.isclose(ix.error, F32(0.05), rel_tol=1e-12)
    assert s.skydir == (F32(10.0), F32(20.0))
    # dN/dE at the pivot is the catalog's flux density
    assert math.isclose(_eval(s, [F32(1523.0)])[0], F32(3.2e-12), rel_tol=1e-12)
    # a soft index widens the bounds as Fermipy does: max(5, G + 1)
    p2 = write_catalog(tmp_path / "soft.fits", [pl_row("S", 1.0, 1.0, g=4.6)])
    ix2 = read_catalog(p2).sources[0].param("Index")
    assert (ix2.min, ix2.max) == (0.0, F32(4.6) + 1.0)


def test_4fgl_logparabola_and_dr3_plec4(tmp_path):
    k, gs, d, b, e0 = 5.5e-11, 1.3, 0.45, 0.6667, 1700.0
    psr = pl_row("4FGL J0534.5+2200", 83.63, 22.02, SpectrumType="PLSuperExpCutoff",
                 Pivot_Energy=e0, PLEC_Flux_Density=k, PLEC_IndexS=gs, PLEC_ExpfactorS=d,
                 PLEC_Exp_Index=b)
    cat = write_catalog(tmp_path / "dr3.fits", [MKN421, psr])
    c = open_catalog(cat)
    assert c.family == "4FGL-DR3" and len(c) == 2
    m = c.to_sky_model()
    lp = m["Mkn 421"]
    assert lp.spectrum == "LogParabola"
    assert [q.name for q in lp.spectral] == ["norm", "alpha", "beta", "Eb"]
    assert lp.param("norm").scale == 1e-11
    assert lp.param("alpha").physical == F32(1.77) and lp.param("beta").physical == F32(0.0111)
    assert lp.param("Eb").min == lp.param("Eb").max == F32(1137.1)
    e = np.array([300.0, 1137.1, 1e4])
    x = e / F32(1137.1)
    ref = F32(2.07e-11) * x ** (-(F32(1.77) + F32(0.0111) * np.log(x)))
    np.testing.assert_allclose(_eval(lp, e), ref, rtol=1e-6)

    pl4 = m["4FGL J0534.5+2200"]
    assert pl4.spectrum == "PLSuperExpCutoff4"
    assert pl4.param("IndexS").physical == -F32(gs) and pl4.param("IndexS").scale == -1.0
    assert pl4.param("ExpfactorS").physical == F32(d)
    assert pl4.param("Index2").physical == F32(b)
    # 4FGL-DR3 eq.: K (E/E0)^(d/b - Gs) exp(d/b^2 (1 - (E/E0)^b))
    e = np.geomspace(100.0, 1e5, 7)
    K, G, D, B, E0 = (F32(v) for v in (k, gs, d, b, e0))
    ref = K * (e / E0) ** (D / B - G) * np.exp(D / B ** 2 * (1 - (e / E0) ** B))
    np.testing.assert_allclose(_eval(pl4, e), ref, rtol=1e-6)


def test_4fgl_dr1_plec_is_plsuperexpcutoff2(tmp_path):
    k, g, a, b, e0 = 8.1e-11, 1.6, 0.0102, 0.6667, 1245.0
    row = pl_row("4FGL J0633.9+1746", 98.48, 17.77, SpectrumType="PLSuperExpCutoff",
                 Pivot_Energy=e0, PLEC_Flux_Density=k, PLEC_Index=g, PLEC_Expfactor=a,
                 PLEC_Exp_Index=b, Unc_PLEC_Index=0.01)
    c = open_catalog(write_catalog(tmp_path / "dr1.fits", [row], kind="4FGL-DR1"))
    assert c.family == "4FGL-DR1"
    s = c.to_sky_model().sources[0]
    assert s.spectrum == "PLSuperExpCutoff2"
    K, G, A, B, E0 = (F32(v) for v in (k, g, a, b, e0))
    assert math.isclose(s.param("Prefactor").physical, K * math.exp(A * E0 ** B), rel_tol=1e-12)
    assert s.param("Index1").physical == -G and s.param("Expfactor").physical == A
    e = np.geomspace(100.0, 1e5, 7)
    # 4FGL DR1 eq.: K (E/E0)^-G exp(a (E0^b - E^b))
    ref = K * (e / E0) ** (-G) * np.exp(A * (E0 ** B - e ** B))
    np.testing.assert_allclose(_eval(s, e), ref, rtol=1e-6)


def test_3fgl_spectra(tmp_path):
    rows = [dict(Source_Name="3FGL J0534.5+2201", RAJ2000=83.63, DEJ2000=22.02,
                 SpectrumType="PLExpCutoff", Pivot_Energy=635.0, Flux_Density=2.2e-9,
                 Spectral_Index=1.9, Cutoff=4100.0, Exp_Index=np.nan, Sqrt_TS100_300=30.0,
                 Sqrt_TS300_1000=40.0, ASSOC1="PSR J0534+2200"),
            dict(Source_Name="3FGL J1104.4+3812", RAJ2000=166.11, DEJ2000=38.21,
                 SpectrumType="PowerLaw", Pivot_Energy=1000.0, Flux_Density=2.5e-11,
                 Spectral_Index=1.77, ASSOC1="Mkn 421", **{"2FGL_Name": "2FGL J1104.4+3812"}),
            dict(Source_Name="3FGL J0633.9+1746", RAJ2000=98.48, DEJ2000=17.77,
                 SpectrumType="PLSuperExpCutoff", Pivot_Energy=1000.0, Flux_Density=5e-10,
                 Spectral_Index=1.2, Cutoff=1800.0, Exp_Index=0.64)]
    c = open_catalog(write_catalog(tmp_path / "gll_psc_v16.fit", rows, kind="3FGL"))
    assert c.family == "3FGL"
    m = c.to_sky_model()
    crab = m["PSR J0534+2200"]
    assert crab.spectrum == "PLSuperExpCutoff" and crab.param("Index2").physical == 1.0
    assert crab.meta["TS"] == pytest.approx(30.0 ** 2 + 40.0 ** 2, rel=1e-6)
    e = np.geomspace(100.0, 1e5, 5)
    E0, K, G, EC = F32(635.0), F32(2.2e-9), F32(1.9), F32(4100.0)
    ref = K * (e / E0) ** -G * np.exp((E0 / EC) - e / EC)        # 3FGL PLExpCutoff
    np.testing.assert_allclose(_eval(crab, e), ref, rtol=1e-6)
    gem = m["3FGL J0633.9+1746"]
    B = F32(0.64)
    ref = F32(5e-10) * (e / 1000.0) ** -F32(1.2) * np.exp((1000.0 / F32(1800.0)) ** B
                                                          - (e / F32(1800.0)) ** B)
    np.testing.assert_allclose(_eval(gem, e), ref, rtol=1e-6)
    assert m.find("2FGL J1104.4+3812").name == "3FGL J1104.4+3812"


# -- associations and name matching ------------------------------------------------------
def test_mkn421_name_matching(tmp_path):
    rows = [MKN421, pl_row("4FGL J1105.8+3944", 166.45, 39.74, ASSOC1="B2 1103+39"),
            pl_row("4FGL J1100.3+4019", 165.08, 40.33, ASSOC2="Mkn 421 halo")]
    m = read_catalog(write_catalog(tmp_path / "cat.fits", rows))
    src = m.find("4FGL J1104.4+3812")
    for key in ("mkn421", "Mkn 421", "MKN 421", "4fglj1104.4+3812", "3FGL J1104.4+3812",
                "Markarian 421", "2FHL J1104.4+3812"):
        assert m.find(key) is src, key
    assert src.associations[0] == "Mkn 421"
    assert src.meta["assoc"]["3FGL_Name"] == "3FGL J1104.4+3812"    # from ASSOC_FGL
    assert src.meta["CLASS1"] == "BLL" and src.meta["Signif_Avg"] == F32(210.5)
    assert src.meta["TS"] == pytest.approx(F32(210.5) ** 2)
    assert m.find("b2 1103+39").name == "4FGL J1105.8+3944"
    with pytest.raises(ModelError, match=r"no source matches 'Mkn 501'"):
        m.find("Mkn 501")


def test_ambiguous_association(tmp_path):
    rows = [pl_row("4FGL J0001.0+0000", 0.25, 0.0, ASSOC2="PKS 0000-00"),
            pl_row("4FGL J0002.0+0000", 0.5, 0.0, ASSOC1="PKS 0000-00")]
    m = read_catalog(write_catalog(tmp_path / "cat.fits", rows))
    with pytest.raises(ModelError, match=r"'pks 0000-00' matches several sources: "
                                          r"4FGL J0001.0\+0000, 4FGL J0002.0\+0000"):
        m.find("pks 0000-00")


# -- extended sources --------------------------------------------------------------------
def test_extended_sources(tmp_path):
    extdir = tmp_path / "Extended_12years"
    (extdir / "Templates").mkdir(parents=True)
    (extdir / "Templates" / "W44.fits").write_text("")
    rows = [pl_row("4FGL J1855.9+0121e", 283.99, 1.36, Extended_Source_Name="W44"),
            pl_row("4FGL J0822.1-4253e", 125.5, -42.9, Extended_Source_Name="Puppis A"),
            pl_row("4FGL J1801.3-2326e", 270.34, -23.44, Extended_Source_Name="W28")]
    ext = [dict(Source_Name="W44", RAJ2000=283.99, DEJ2000=1.36, Model_Form="Map",
                Spatial_Function="SpatialMap", Spatial_Filename="W44.fits"),
           dict(Source_Name="Puppis A", RAJ2000=125.5, DEJ2000=-42.9, Model_Form="Disk",
                Model_SemiMajor=0.37, Model_SemiMinor=0.37, Spatial_Function="RadialDisk",
                Spatial_Filename="PuppisA.fits"),
           dict(Source_Name="W28", RAJ2000=270.34, DEJ2000=-23.44, Model_Form="2D Gaussian",
                Model_SemiMajor=0.39, Model_SemiMinor=0.39, Spatial_Function="RadialGauss",
                Spatial_Filename="W28.fits")]
    cat = write_catalog(tmp_path / "cat.fits", rows, ext_rows=ext)
    m = read_catalog(cat, extdir=extdir)
    w44 = m["W44"]
    assert w44.spatial_model == "SpatialMap"
    assert w44.spatial_file == str(extdir / "Templates" / "W44.fits")
    assert w44.meta["Model_Form"] == "Map" and w44.meta["ra"] == F32(283.99)
    pup = m["Puppis A"]
    assert pup.spatial_model == "RadialDisk" and pup.param("Radius").physical == F32(0.37)
    w28 = m["w28"]
    assert w28.spatial_model == "RadialGaussian"
    assert math.isclose(w28.param("Sigma").physical, F32(0.39) / GAUSS_R68, rel_tol=1e-12)
    assert w28.skydir == (F32(270.34), F32(-23.44))
    # templates beside the catalog in the standard archive folder are found without extdir
    assert read_catalog(cat)["W44"].spatial_file == str(extdir / "Templates" / "W44.fits")
    # Fermipy's choice: templates for every extended source
    with pytest.raises(InputFileError, match=r"source '4FGL J0822.1-4253e' \(row 2\): "
                                             r"extended-source template 'PuppisA.fits' not "
                                             r"found in .*Extended_12years/Templates"):
        read_catalog(cat, extdir=extdir, radial_as_template=True)


def test_extended_source_without_ext_hdu(tmp_path):
    rows = [pl_row("4FGL J1855.9+0121e", 283.99, 1.36, Extended_Source_Name="W44")]
    p = write_catalog(tmp_path / "cat.fits", rows, ext_hdu=False)
    with pytest.raises(FileFormatError, match=r"no ExtendedSources HDU"):
        open_catalog(p)
    p = write_catalog(tmp_path / "cat2.fits", rows, ext_rows=[])
    with pytest.raises(FileFormatError, match=r"Extended_Source_Name 'W44' has no row"):
        read_catalog(p)


# -- errors --------------------------------------------------------------------------------
def test_missing_columns_named(tmp_path):
    rows = [pl_row("A", 1.0, 1.0), MKN421]
    p = write_catalog(tmp_path / "cat.fits", rows, drop=("PL_Index", "LP_beta", "Pivot_Energy"))
    with pytest.raises(FileFormatError,
                       match=r"cat\.fits: HDU LAT_POINT_SOURCE_CATALOG of this 4FGL-DR3-format "
                             r"catalog lacks columns Pivot_Energy \(for every source\); "
                             r"LP_beta \(for SpectrumType LogParabola\); PL_Index \(for "
                             r"SpectrumType PowerLaw\)"):
        open_catalog(p)
    p = write_catalog(tmp_path / "none.fits", rows,
                      drop=("PL_Flux_Density", "LP_Flux_Density", "PLEC_Flux_Density"))
    with pytest.raises(FileFormatError, match=r"none of the flux-density columns"):
        open_catalog(p)
    p = write_catalog(tmp_path / "hdu.fits", rows, main_name="SOMETHING")
    assert len(open_catalog(p)) == 2     # any table with Source_Name will do
    fits.HDUList([fits.PrimaryHDU()]).writeto(tmp_path / "empty.fits")
    with pytest.raises(FileFormatError, match=r"no HDU LAT_Point_Source_Catalog"):
        open_catalog(tmp_path / "empty.fits")


def test_bad_values_and_types(tmp_path):
    p = write_catalog(tmp_path / "cat.fits", [pl_row("A", 1.0, 1.0, PL_Index=np.nan)])
    with pytest.raises(FileFormatError, match=r"source 'A' \(row 1\): column PL_Index is nan"):
        read_catalog(p)
    p = write_catalog(tmp_path / "cat2.fits", [pl_row("B", 1.0, 1.0, SpectrumType="Band")])
    with pytest.raises(FileFormatError, match=r"source 'B' \(row 1\): SpectrumType 'Band'"):
        read_catalog(p)


# -- selection -----------------------------------------------------------------------------
def test_selection_radius_square_and(tmp_path):
    # ROI at (ra, dec) = (180, 0): offsets in deg along ra/dec
    pos = {"c0": (180.0, 0.0), "c2": (182.0, 0.0), "c4.5": (175.5, 0.0), "c5.5": (185.5, 0.0),
           "corner": (184.0, 4.0), "n6": (180.0, 6.0), "far": (0.0, 0.0)}
    rows = [pl_row(n, ra, dec) for n, (ra, dec) in pos.items()]
    c = open_catalog(write_catalog(tmp_path / "cat.fits", rows))
    names = np.array(c.names)
    sel = lambda **kw: set(names[c.select((180.0, 0.0), **kw)])  # noqa: E731
    assert sel() == set(pos)
    assert sel(src_radius=5.0) == {"c0", "c2", "c4.5"}
    # corner: 5.65 deg away but inside the 10 x 10 deg square
    assert sel(src_roiwidth=10.0) == {"c0", "c2", "c4.5", "corner"}
    assert sel(src_radius=5.0, src_roiwidth=10.0) == {"c0", "c2", "c4.5"}       # AND
    assert sel(src_radius=7.0, src_roiwidth=10.0) == {"c0", "c2", "c4.5", "corner"}
    assert sel(src_radius=7.0, src_roiwidth=13.0) == {"c0", "c2", "c4.5", "c5.5", "corner",
                                                      "n6"}
    # the galactic frame gives the same circle and a rotated square
    assert sel(src_radius=5.0, coordsys="GAL") == {"c0", "c2", "c4.5"}
    # in galactic axes the square is rotated: corner (5.3 deg up in b), n6 (5.5) and c5.5
    # (5.04 along l) fall outside, as offsets from separation and position angle say
    assert sel(src_roiwidth=10.0, coordsys="GAL") == {"c0", "c2", "c4.5"}
    assert sel(src_roiwidth=10.2, coordsys="GAL") == {"c0", "c2", "c4.5", "c5.5"}
    m = read_catalog(c.path, center=(180.0, 0.0), src_radius=5.0)
    assert sorted(m.names) == ["c0", "c2", "c4.5"]
    assert m["c2"].meta["offset"] == pytest.approx(2.0, abs=1e-5)


def test_angular_separation_against_astropy():
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    rng = np.random.default_rng(5)
    ra = rng.uniform(0, 360, 200)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 200)))
    ref = SkyCoord(83.6, 22.0, unit="deg").separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    np.testing.assert_allclose(angular_separation(83.6, 22.0, ra, dec), ref, atol=1e-10)
    m = sky_selection_mask(ra, dec, (83.6, 22.0), src_radius=60.0)
    assert m.sum() == (ref < 60.0).sum()


# -- finding files -------------------------------------------------------------------------
def test_resolve_catalog_names(tmp_path, monkeypatch):
    for var in ("FERMIPY_DATA_DIR", "FERMI_DIR", "FERMIXR_CATALOG_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert resolve_catalog("fermixr_example") == ROOT / "catalogs" / "fermixr_example.fits"
    with pytest.raises(InputFileError, match=r"catalog '4FGL-DR3': no file matching "
                                             r"gll_psc_v2\[89\].fit or .* in .*catalogs"):
        resolve_catalog("4FGL-DR3", base=tmp_path)
    d = tmp_path / "cats"
    d.mkdir()
    for v in (28, 31, 35):
        (d / f"gll_psc_v{v}.fit").write_text("")
    monkeypatch.setenv("FERMIXR_CATALOG_DIR", str(d))
    assert resolve_catalog("4FGL-DR3") == d / "gll_psc_v31.fit"
    assert resolve_catalog("4fgl-dr4") == d / "gll_psc_v35.fit"
    monkeypatch.setenv("FXR_CAT", str(d))
    assert resolve_catalog("$FXR_CAT/gll_psc_v28.fit") == d / "gll_psc_v28.fit"
    assert resolve_catalog("cats/gll_psc_v28.fit", base=tmp_path) == d / "gll_psc_v28.fit"
    with pytest.raises(InputFileError, match=r"catalog file 'nope.fits' not found \(looked "
                                             r"for .*nope.fits\); known catalog names: 3FGL"):
        resolve_catalog("nope.fits", base=tmp_path)


# -- the example catalog -----------------------------------------------------------------
def _load_script():
    spec = importlib.util.spec_from_file_location(
        "make_example_catalog", ROOT / "catalogs" / "make_example_catalog.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_catalog_matches_truth_and_script(tmp_path):
    truth = yaml.safe_load((ROOT / "examples" / "data" / "truth.yaml").read_text())
    c = open_catalog(ROOT / "catalogs" / "fermixr_example.fits")
    assert c.family.startswith("4FGL") and c.names == ["SYN_CRAB", "SYN_HARD", "SYN_SOFT"]
    m = c.to_sky_model()
    for t in truth["sources"]:
        s = m[t["name"]]
        assert s.spectrum == "PowerLaw"
        assert s.param("Index").physical == -F32(t["spectrum"]["Index"])
        assert s.param("Scale").physical == 1000.0
        assert s.param("Prefactor").physical == pytest.approx(
            t["spectrum"]["Prefactor_at_1000MeV"], rel=1e-6)
        assert s.skydir == (F32(t["ra"]), F32(t["dec"]))
        assert s.meta["GLON"] == F32(t["glon"])
    assert m.find("Synthetic Crab").name == "SYN_CRAB"
    assert m.find("synthetichard").name == "SYN_HARD"
    # the committed file is what the script writes
    out = _load_script().main(out=tmp_path / "regen.fits")
    with fits.open(out) as a, fits.open(ROOT / "catalogs" / "fermixr_example.fits") as b:
        assert [h.name for h in a] == [h.name for h in b] == \
            ["PRIMARY", "LAT_POINT_SOURCE_CATALOG", "EXTENDEDSOURCES"]
        assert a[1].columns.names == b[1].columns.names
        for n in a[1].columns.names:
            x, y = a[1].data[n], b[1].data[n]
            if x.dtype.kind == "f":
                np.testing.assert_array_equal(x, y)
            else:
                assert list(x) == list(y)
