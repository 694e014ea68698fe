"""IRF kernels against slow references on random inputs, CALDB lookup and errors."""

from __future__ import annotations


import numpy as np
import pytest

from fermixr.errors import InputFileError, IRFError
from fermixr.exposure._expcube_kernels import (exposure_from_livetime,
                                               exposure_from_livetime_reference)
from fermixr.io import caldb as C
from fermixr.irf import _kernels as K
from fermixr.irf.aeff import EfficiencyFactor, aeff_reference
from fermixr.irf.edisp import edisp3_reference
from fermixr.irf.irfset import IRFSet
from fermixr.irf.psf import psf_reference


# ---------------------------------------------------------------- event types (no data)
def test_evtype_names():
    assert C.evtype_names(3) == ("FB", ["FRONT", "BACK"])
    assert C.evtype_names(1) == ("FB", ["FRONT"])
    assert C.evtype_names(60) == ("PSF", ["PSF0", "PSF1", "PSF2", "PSF3"])
    assert C.evtype_names(16) == ("PSF", ["PSF2"])
    assert C.evtype_names(960)[1] == ["EDISP0", "EDISP1", "EDISP2", "EDISP3"]
    assert C.evtype_names("BACK") == ("FB", ["BACK"])
    assert C.evtype_names(["PSF0", "PSF3"])[1] == ["PSF0", "PSF3"]


@pytest.mark.parametrize("mask, match", [(5, "mixes partitions"), (65, "mixes partitions"),
                                         (0, "selects no"), (1024, "no LAT event type")])
def test_evtype_errors(mask, match):
    with pytest.raises(IRFError, match=match):
        C.evtype_names(mask)


def test_resolve_caldb_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("CALDB", raising=False)
    with pytest.raises(InputFileError, match=r"\$CALDB is not set"):
        C.resolve_caldb()
    with pytest.raises(InputFileError, match="holds no LAT response files"):
        C.resolve_caldb(tmp_path)


def test_efficiency_factor_piecewise():
    row = [1.0, 0.0, 0.5, 2.0, 0.0, 4.0]  # slope 1 to logE 2, 0.5 to 4, flat after
    eff = EfficiencyFactor([row, [0, 1, 0, 2, 0, 4]])
    f1, f2 = eff.factors(np.array([10.0, 1e3, 1e5]))
    np.testing.assert_allclose(f2, [1.0, 2.5, 3.0])
    np.testing.assert_allclose(f1, [1.0, 1.0, 1.0])


# ---------------------------------------------------------------- kernels vs references
def test_find_index_and_bilinear_random():
    rng = np.random.default_rng(1)
    xs = np.concatenate(([0.0], np.sort(rng.uniform(0.5, 9.5, 7)), [10.0]))
    ys = np.concatenate(([-1.0], np.sort(rng.uniform(-0.5, 0.95, 5)), [1.0]))
    vals = rng.uniform(0, 5, (ys.size, xs.size))
    from fermixr.irf.aeff import _st_index

    for x in np.concatenate((rng.uniform(-1, 10, 50), xs)):
        assert K.find_index(xs, x) == _st_index(xs, x)
    for _ in range(50):
        x, y = rng.uniform(0, 10), rng.uniform(-1, 1)
        i, j = _st_index(xs, x), _st_index(ys, y)
        t = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
        u = (y - ys[j - 1]) / (ys[j] - ys[j - 1])
        ref = ((1 - t) * (1 - u) * vals[j - 1, i - 1] + t * (1 - u) * vals[j - 1, i]
               + t * u * vals[j, i] + (1 - t) * u * vals[j, i - 1])
        assert K.bilinear_at(xs, ys, vals, x, y) == pytest.approx(ref, rel=1e-12)
    assert K.find_index(xs, 10.5) == -1


def test_exposure_kernel_random():
    rng = np.random.default_rng(2)
    lt = rng.uniform(0, 100, (30, 8))
    wlt = rng.uniform(0, 90, (30, 8))
    a1 = rng.uniform(0, 1e4, (5, 8))
    a2 = rng.uniform(-1e3, 1e3, (5, 8))
    rows = rng.integers(-1, 30, 40)
    np.testing.assert_allclose(exposure_from_livetime(lt, wlt, a1, a2, rows),
                               exposure_from_livetime_reference(lt, wlt, a1, a2, rows),
                               rtol=1e-12)


# ---------------------------------------------------------------- on the shared CALDB
@pytest.fixture(scope="module")
def irf(caldb_dir):
    return IRFSet.from_caldb("P8R2_SOURCE_V6", 3, caldb_dir)


@pytest.mark.shared_data
def test_caldb_lookup(caldb_dir, monkeypatch):
    bcf = C.resolve_caldb(caldb_dir)
    assert bcf.name == "bcf"
    assert C.resolve_caldb(bcf) == bcf
    monkeypatch.setenv("CALDB", str(caldb_dir))
    assert C.resolve_caldb() == bcf
    names = C.caldb_irf_names(caldb_dir)
    assert {"P8R2_SOURCE_V6", "P8R3_SOURCE_V2", "P7SOURCE_V6"} <= set(names)
    files = C.find_irf_files("P8R2_SOURCE_V6", 60, caldb_dir)
    assert list(files) == ["PSF0", "PSF1", "PSF2", "PSF3"]
    assert files["PSF2"].psf[1] == "RPSF_PSF2"
    assert files["PSF2"].efficiency[1] == "EFFICIENCY_PARAMS_PSF2"
    p7 = C.find_irf_files("P7SOURCE_V6", 3, caldb_dir)
    assert p7["BACK"].aeff[0].name.startswith("aeff_P7SOURCE_V6_back")
    with pytest.raises(IRFError, match="P8R2_SOURCE_V6") as exc:
        C.find_irf_files("P8R9_NOPE_V1", 3, caldb_dir)
    assert "offers" in str(exc.value)
    with pytest.raises(IRFError, match="no PSF0 responses .*FRONT, BACK"):
        C.find_irf_files("P7SOURCE_V6", 4, caldb_dir)


@pytest.mark.shared_data
def test_aeff_kernel_vs_reference(irf):
    rng = np.random.default_rng(3)
    a = irf["FRONT"].aeff
    e = 10 ** rng.uniform(0.5, 6.7, 200)
    c = rng.uniform(0.1, 1.0, 200)
    fast = a.value(e, c)
    slow = [aeff_reference(ei, ci, a.loge_nodes, a.costh_nodes, a.table, a.min_costh,
                           a.max_center) for ei, ci in zip(e, c)]
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    assert np.all(fast[c < 0.2] == 0)
    # constant beyond the outermost energy centre (the padded nodes repeat the edges)
    assert a.value(2.0, 0.9) == pytest.approx(a.value(5.0, 0.9), rel=1e-12)
    # phi modulation averages close to 1 and changes the value
    phis = np.linspace(0, 360, 73)
    mod = a.value(np.full(73, 1e3), np.full(73, 0.6), phis) / a.value(1e3, 0.6)
    assert 0.9 < mod.mean() < 1.1 and mod.std() > 0


@pytest.mark.shared_data
def test_psf_kernel_vs_reference_and_norm(irf):
    rng = np.random.default_rng(4)
    p = irf["BACK"].psf
    e = 10 ** rng.uniform(0.8, 6.2, 40)
    c = rng.uniform(0.2, 1.0, 40)
    off = np.array([0.0, 0.01, 0.3, 2.0, 15.0])
    fast = p.value(off, e, c)
    assert fast.shape == (40, 5)
    for k in range(40):
        for m in range(5):
            assert fast[k, m] == pytest.approx(psf_reference(off[m], e[k], c[k], p), rel=1e-10)
    # nodes >= 120 MeV: flat-sky integral to 90 deg is 1; at a 10 MeV node the sphere one
    r = np.radians(np.concatenate(([0], np.logspace(-5, np.log10(90), 20000))))
    ie = np.searchsorted(p.node_energies, 1000.0)
    E = p.node_energies[ie]
    ct = p.costh_nodes[4]
    flat = np.trapezoid(2 * np.pi * r * p.value(np.degrees(r), E, ct), r)
    assert flat == pytest.approx(1.0, abs=2e-4)
    E10 = p.node_energies[2]
    assert E10 < 120
    sph = np.trapezoid(2 * np.pi * np.sin(r) * p.value(np.degrees(r), E10, ct), r)
    assert sph == pytest.approx(1.0, abs=2e-4)


@pytest.mark.shared_data
def test_edisp_kernel_vs_reference(caldb_dir):
    from fermixr.io.caldb import find_irf_files
    from fermixr.irf.edisp import EnergyDispersion

    f = find_irf_files("P8R2_SOURCE_V6", 2, caldb_dir)["BACK"]
    ed = EnergyDispersion.from_files(f)
    rng = np.random.default_rng(5)
    et = 10 ** rng.uniform(1, 6, 60)
    er = et * rng.uniform(0.5, 1.6, 60)
    c = rng.uniform(0.15, 1.0, 60)
    fast = ed.value(er, et, c)
    slow = [edisp3_reference(a, b, cc, ed) for a, b, cc in zip(er, et, c)]
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    # normalised over E_rec
    x = np.linspace(0.05, 4.0, 40001)
    for e0 in (100.0, 3162.0, 1e5):
        integ = np.trapezoid(ed.value(e0 * x, e0, 0.7), e0 * x)
        assert integ == pytest.approx(1.0, abs=5e-3)


@pytest.mark.shared_data
def test_irfset_partitions_and_pass7(caldb_dir):
    psf_types = IRFSet.from_caldb("P8R2_SOURCE_V6", 60, caldb_dir)
    fb = IRFSet.from_caldb("P8R2_SOURCE_V6", 3, caldb_dir)
    e = np.array([300.0, 3e3, 3e4])
    # PSF-type partition sums to about the FRONT+BACK area (same events, other split)
    ratio = psf_types.aeff(e, 0.8) / fb.aeff(e, 0.8)
    np.testing.assert_allclose(ratio, 1.0, atol=0.03)
    with pytest.raises(IRFError, match="not in this IRF set"):
        fb.aeff(e, 0.8, event_type="PSF0")
    # the FB mean PSF lies between FRONT and BACK
    pf = fb.psf([0.0], 1e3, 0.8, "FRONT")[0]
    pb = fb.psf([0.0], 1e3, 0.8, "BACK")[0]
    pm = fb.psf([0.0], 1e3, 0.8)[0]
    assert min(pf, pb) < pm < max(pf, pb)
    p7 = IRFSet.from_caldb("P7SOURCE_V6", 3, caldb_dir)
    assert p7["FRONT"].edisp.version == 2
    a7 = p7.aeff(1e3, 1.0)
    assert 5000 < a7 < 12000
    x = np.linspace(0.1, 3.0, 20001)
    integ = np.trapezoid(p7.edisp(1e3 * x, 1e3, 0.9, "FRONT"), 1e3 * x)
    assert integ == pytest.approx(1.0, abs=1e-2)
    r = np.radians(np.concatenate(([0], np.logspace(-5, np.log10(90), 20000))))
    flat = np.trapezoid(2 * np.pi * r * p7["BACK"].psf.value(np.degrees(r), 1e3, 0.75), r)
    assert flat == pytest.approx(1.0, abs=1e-2)
