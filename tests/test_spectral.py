"""Spectral models: kernels against slow references, gradients against finite differences,
integrals against scipy.integrate.quad, known values, defaults and the registry."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from scipy import integrate, special

from fermixr.errors import FileFormatError, GeometryError, InputFileError, ModelError
from fermixr.model import _kernels as K
from fermixr.model import spectral as S

# ---------------------------------------------------------------------------------------
# Slow, obvious references: the Science Tools formulas written out with numpy.
# ---------------------------------------------------------------------------------------


def ref_powerlaw(e, p):
    n0, g, e0 = p
    return n0 * (e / e0) ** g


def ref_powerlaw2(e, p):
    nn, g, lo, hi = p
    if g == -1.0:
        return nn / e / np.log(hi / lo)
    return nn * (g + 1.0) * e ** g / (hi ** (g + 1.0) - lo ** (g + 1.0))


def ref_bpl(e, p):
    n0, g1, g2, eb = p
    return np.where(e < eb, n0 * (e / eb) ** g1, n0 * (e / eb) ** g2)


def ref_bpl2(e, p):
    nn, g1, g2, eb, lo, hi = p

    def piece(a, b, g):
        if b <= a:
            return 0.0
        if g == -1.0:                     # (the Science Tools divide by zero here)
            return eb * np.log(b / a)
        return eb * ((b / eb) ** (g + 1) - (a / eb) ** (g + 1)) / (g + 1)

    d = piece(lo, min(hi, eb), g1) + piece(max(lo, eb), hi, g2)
    return nn / d * np.where(e < eb, (e / eb) ** g1, (e / eb) ** g2)


def ref_logparabola(e, p):
    n0, al, be, eb = p
    x = e / eb
    return n0 * x ** (-(al + be * np.log(x)))


def ref_expcutoff(e, p):
    n0, g, e0, eb, p1, p2, p3 = p
    ln = np.log(e / eb)
    cut = np.exp(-((e - eb) / p1 + p2 * ln + p3 * ln * ln))
    return n0 * (e / e0) ** g * np.where(e < eb, 1.0, cut)


def ref_plsec(e, p):
    n0, g1, e0, ec, b = p
    return n0 * (e / e0) ** g1 * np.exp(-(e / ec) ** b)


def ref_plsec2(e, p):
    n0, g1, e0, a, b = p
    return n0 * (e / e0) ** g1 * np.exp(np.minimum(-a * e ** b, np.log(1e100)))


def ref_plsec3(e, p):
    n0, gs, e0, d, b = p
    x = e / e0
    return n0 * np.exp(np.minimum((gs + d * b) * np.log(x) + d * (1 - x ** b), np.log(1e100)))


def ref_plsec4(e, p):
    # evaluated in extended precision: the closed form cancels for small Index2
    e = np.asarray(e, dtype=np.longdouble)
    n0, gs, e0, d, b = np.asarray(p, dtype=np.longdouble)
    y = np.log(e / e0)
    t = b * y
    # Science Tools: Taylor series for |Index2 ln x| < 1e-2 (here to t^6), else closed form
    series = y * (gs - d * y * (1 / 2 + t / 6 + t ** 2 / 24 + t ** 3 / 120 + t ** 4 / 720
                                + t ** 5 / 5040 + t ** 6 / 40320))
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = (gs + d / b) * y + d / b / b * (1 - np.exp(t))
    z = np.where(np.abs(t) < 1e-2, series, closed)
    return n0 * np.exp(np.minimum(z, np.log(1e100)))


def ref_band(e, p):
    n0, al, be, ep, sc = p
    x = e / sc
    if al <= be:
        return n0 * x ** be
    epk = ep / sc
    xb = epk * (al - be)
    low = n0 * x ** al * np.exp(-x / epk)
    high = n0 * x ** be * xb ** (al - be) * np.exp(be - al)
    return np.where(x < xb, low, high)


def ref_constant(e, p):
    return np.full(np.shape(e), p[0])


REFS = {
    "PowerLaw": ref_powerlaw, "PowerLaw2": ref_powerlaw2, "BrokenPowerLaw": ref_bpl,
    "BrokenPowerLaw2": ref_bpl2, "LogParabola": ref_logparabola, "ExpCutoff": ref_expcutoff,
    "PLSuperExpCutoff": ref_plsec, "PLSuperExpCutoff2": ref_plsec2,
    "PLSuperExpCutoff3": ref_plsec3, "PLSuperExpCutoff4": ref_plsec4,
    "BandFunction": ref_band, "ConstantValue": ref_constant,
}


def random_p(tag: str, rng: np.random.Generator) -> np.ndarray:
    """Random physical parameters in the range real spectra take."""
    u = rng.uniform
    pref = 10 ** u(-14, -9)
    if tag == "PowerLaw":
        return np.array([pref, u(-3.5, -1.0), 10 ** u(2, 4)])
    if tag == "PowerLaw2":
        return np.array([10 ** u(-9, -5), u(-3.5, -0.5), 10 ** u(1.5, 2.3), 10 ** u(4.5, 6)])
    if tag == "BrokenPowerLaw":
        return np.array([pref, u(-3, -1), u(-4, -1.5), 10 ** u(2.5, 4)])
    if tag == "BrokenPowerLaw2":
        return np.array([10 ** u(-9, -5), u(-3, -1), u(-4, -1.5), 10 ** u(1.5, 5.5),
                         10 ** u(1.5, 2.3), 10 ** u(4.5, 6)])
    if tag == "LogParabola":
        return np.array([pref, u(1.0, 3.0), u(-0.15, 0.5), 10 ** u(2.5, 4)])
    if tag == "ExpCutoff":
        p3 = 0.0 if rng.random() < 0.5 else u(0.0, 0.1)
        return np.array([pref, u(-3, -1.5), 1000.0, 10 ** u(2, 4), 10 ** u(3, 5),
                         u(-0.5, 0.5), p3])
    if tag == "PLSuperExpCutoff":
        return np.array([pref, u(-3, -0.5), 10 ** u(2.5, 3.5), 10 ** u(3, 5), u(0.3, 2.0)])
    if tag == "PLSuperExpCutoff2":
        return np.array([pref, u(-3, -0.5), 10 ** u(2.5, 3.5), 10 ** u(-4, -2), u(0.3, 1.0)])
    if tag == "PLSuperExpCutoff3":
        return np.array([pref, u(-2.5, -1.0), 10 ** u(2.5, 3.5), u(0.05, 1.0), u(0.3, 1.5)])
    if tag == "PLSuperExpCutoff4":
        return np.array([pref, u(-2.5, -1.0), 10 ** u(2.5, 3.5), u(0.05, 1.0), u(0.0, 1.5)])
    if tag == "BandFunction":
        return np.array([10 ** u(-6, -2), u(-1.5, 0.0), u(-3.5, -2.0), 10 ** u(2, 4), 1000.0])
    if tag == "ConstantValue":
        return np.array([10 ** u(-12, -8)])
    raise KeyError(tag)


def special_ps(tag: str) -> list[np.ndarray]:
    """Edge cases: integer indices (a = 0 limits), Index2 -> 0, clamps, zero cut-offs."""
    if tag == "PowerLaw":
        return [np.array([1e-11, -1.0, 1000.0]), np.array([1e-11, -2.0, 1000.0])]
    if tag == "PowerLaw2":
        return [np.array([1e-7, -1.0, 100.0, 1e5]), np.array([1e-7, -2.0, 100.0, 1e5])]
    if tag == "BrokenPowerLaw2":
        return [np.array([1e-7, -1.0, -2.0, 1e3, 100.0, 1e5]),
                np.array([1e-7, -1.5, -2.5, 50.0, 100.0, 1e5])]
    if tag == "PLSuperExpCutoff":
        return [np.array([1e-11, -2.0, 1000.0, 3000.0, 1.0]),
                np.array([1e-11, -1.0, 1000.0, 3000.0, 1.0])]
    if tag == "PLSuperExpCutoff2":
        return [np.array([1e-11, -2.0, 1000.0, 0.0, 1.0]),
                np.array([1e-11, -1.5, 1000.0, 1e-3, 1.0])]
    if tag == "PLSuperExpCutoff4":
        return [np.array([1e-11, -1.8, 1000.0, 0.4, 0.0]),
                np.array([1e-11, -1.8, 1000.0, 0.4, 1e-5]),
                np.array([1e-11, -1.8, 1000.0, 0.4, 2.0 / 3.0]),
                np.array([1e-11, -1.8, 1000.0, 0.0, 2.0 / 3.0])]
    if tag == "LogParabola":
        return [np.array([1e-11, 2.0, 0.0, 1000.0]), np.array([1e-11, 2.0, 1e-7, 1000.0]),
                np.array([1e-11, 2.0, -1e-7, 1000.0])]
    if tag == "BandFunction":
        return [np.array([1e-3, -2.0, -1.5, 1000.0, 1000.0])]     # alpha <= beta
    if tag == "ExpCutoff":
        return [np.array([1e-11, -2.0, 1000.0, 500.0, 5000.0, 0.0, 0.0])]
    return []


TAGS = sorted(REFS)
RANGES = [(100.0, 316227.766), (1000.0, 1e5), (1000.0, 1010.0), (3e4, 3.1e4), (150.0, 160.0)]


def quad_ref(f, e1, e2, moment, breaks=()):
    """High-accuracy reference: quad in u = ln E."""
    def g(u):
        return float(f(np.array([np.exp(np.longdouble(u))]))[0]) * math.exp(u) ** (moment + 1)

    pts = [math.log(b) for b in breaks if e1 < b < e2]
    val, _ = integrate.quad(g, math.log(e1), math.log(e2), points=pts or None,
                            epsabs=0.0, epsrel=1e-12, limit=500)
    return val


def ref_breaks(tag, p):
    if tag in ("BrokenPowerLaw", "BrokenPowerLaw2"):
        return (p[3],)
    if tag == "ExpCutoff":
        return (p[3],)
    if tag == "BandFunction" and p[1] > p[2]:
        return (p[3] * (p[1] - p[2]),)
    return ()


# ---------------------------------------------------------------------------------------
# Tier 1: kernels against the references
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("tag", TAGS)
def test_kernel_matches_reference(tag):
    rng = np.random.default_rng(zlib.crc32(tag.encode()))
    model = S.get_spectral_model(tag)()
    e = 10 ** rng.uniform(1.5, 6.0, 200)
    for p in [random_p(tag, rng) for _ in range(20)] + special_ps(tag):
        got = model.evaluate(e, p)
        want = np.asarray(REFS[tag](e, p), dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=0, err_msg=f"{tag} {p}")


@pytest.mark.parametrize("tag", TAGS)
def test_gradient_matches_finite_differences(tag):
    rng = np.random.default_rng(7 + len(tag))
    model = S.get_spectral_model(tag)()
    e = 10 ** rng.uniform(1.7, 5.8, 60)
    for p in [random_p(tag, rng) for _ in range(8)] + special_ps(tag):
        # keep energies away from breaks, where dN/dE is not differentiable
        brk = ref_breaks(tag, p)
        ee = e[np.all([np.abs(np.log(e / b)) > 1e-3 for b in brk], axis=0)] if brk else e
        g = model.gradient(ee, p)
        assert g.shape == (model.npar, ee.size)
        for k in range(model.npar):
            h = 1e-5 * max(abs(p[k]), 1e-3 if k else abs(p[k]))
            if tag == "PLSuperExpCutoff4" and k == 4 and p[k] == 0.0:
                h = 1e-5
            # the reference in extended precision, so that its round-off does not swamp
            # the difference quotient
            pl = p.astype(np.longdouble)
            el = ee.astype(np.longdouble)
            pp, pm = pl.copy(), pl.copy()
            pp[k] += h
            pm[k] -= h
            fd = np.asarray((REFS[tag](el, pp) - REFS[tag](el, pm)) / (2 * h), dtype=float)
            # 1e-6 relative with a floor at 1e-8 of the row's largest derivative and at
            # 1e-10 f / |p_k| (derivatives that vanish, e.g. a break outside the limits)
            f = REFS[tag](ee, p)
            tol = (1e-6 * np.abs(fd) + 1e-8 * np.abs(fd).max()
                   + 1e-10 * np.abs(f) / max(abs(p[k]), 1e-3) + 1e-300)
            bad = np.abs(g[k] - fd) > tol
            assert not bad.any(), (tag, model.par_names[k], p, g[k][bad][:3], fd[bad][:3])


def test_gradient_of_clamped_exponent_is_zero_for_shape():
    m = S.PLSuperExpCutoff2()
    p = np.array([1e-11, -2.0, 1000.0, -0.5, 1.0])     # -a E^b > ln(1e100) at E > 461 MeV
    e = np.array([1000.0, 1e4])
    f = m.evaluate(e, p)
    np.testing.assert_allclose(f, 1e-11 * (e / 1000.0) ** -2.0 * 1e100, rtol=1e-12)
    g = m.gradient(e, p)
    assert np.all(g[3] == 0.0) and np.all(g[4] == 0.0)
    np.testing.assert_allclose(g[0], f / 1e-11, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# Integrals
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("tag", TAGS)
def test_flux_and_eflux_match_quad(tag):
    rng = np.random.default_rng(11 + len(tag) * 3)
    model = S.get_spectral_model(tag)()
    worst = 0.0
    for p in [random_p(tag, rng) for _ in range(5)] + special_ps(tag):
        ref = lambda e, p=p: REFS[tag](e, p)  # noqa: E731
        for e1, e2 in RANGES:
            for moment, fn in ((0, model.flux), (1, model.eflux)):
                want = quad_ref(ref, e1, e2, moment, ref_breaks(tag, p))
                got = fn(e1, e2, p)
                rel = abs(got - want) / abs(want)
                worst = max(worst, rel)
                assert rel < 1e-6, (tag, p, e1, e2, moment, got, want)
    assert worst < 1e-8, (tag, worst)


@pytest.mark.parametrize("tag", TAGS)
def test_analytic_integrals_agree_with_numeric_rule(tag):
    """Where a closed form is used it agrees with the adaptive Gauss-Legendre rule to
    1e-9; the rule itself is what non-analytic cases use."""
    rng = np.random.default_rng(3 + len(tag))
    model = S.get_spectral_model(tag)()
    for p in [random_p(tag, rng) for _ in range(4)] + special_ps(tag):
        for e1, e2 in RANGES:
            for moment in (0, 1):
                an = model._analytic_integral(np.array([e1]), np.array([e2]), p, moment)[0]
                if not np.isfinite(an):
                    continue
                nu = model._numeric_integral(e1, e2, p, moment)
                assert abs(an - nu) <= 1e-9 * abs(nu), (tag, p, e1, e2, moment, an, nu)


def test_flux_broadcasts_and_reverses_sign():
    m = S.PowerLaw()
    p = m.make_p(Prefactor=1e-11, Index=-2.3)
    edges = np.geomspace(100.0, 1e5, 11)
    f = m.flux(edges[:-1], edges[1:], p)
    assert f.shape == (10,)
    np.testing.assert_allclose(f.sum(), m.flux(100.0, 1e5, p), rtol=1e-12)
    assert m.flux(1e5, 100.0, p) == pytest.approx(-m.flux(100.0, 1e5, p), rel=1e-14)
    assert m.flux(300.0, 300.0, p) == 0.0
    assert isinstance(m.flux(100.0, 1e3, p), float)


@pytest.mark.parametrize("tag", ["PowerLaw2", "LogParabola", "BrokenPowerLaw2",
                                 "PLSuperExpCutoff4", "ExpCutoff"])
def test_flux_gradient_matches_finite_differences(tag):
    rng = np.random.default_rng(5)
    m = S.get_spectral_model(tag)()
    p = random_p(tag, rng)
    e1, e2 = np.array([100.0, 1000.0]), np.array([316227.766, 1e4])
    for fn, gfn in ((m.flux, m.flux_gradient), (m.eflux, m.eflux_gradient)):
        g = gfn(e1, e2, p)
        assert g.shape == (m.npar, 2)
        for k in range(m.npar):
            h = 1e-5 * max(abs(p[k]), 1e-2)
            pp, pm = p.copy(), p.copy()
            pp[k] += h
            pm[k] -= h
            fd = (fn(e1, e2, pp) - fn(e1, e2, pm)) / (2 * h)
            scale = np.abs(fn(e1, e2, p)) / max(abs(p[k]), 1e-2)
            np.testing.assert_allclose(g[k], fd, rtol=1e-6, atol=1e-7 * scale.max(),
                                       err_msg=f"{tag} {m.par_names[k]}")


@pytest.mark.parametrize("a", [2.5, 1.0, 0.3, 1e-9, 0.0, -1e-9, -0.5, -1.0, -1.7, -3.0,
                               -4.2])
def test_gamma_difference_matches_quad(a):
    for x1, x2 in [(1e-3, 0.5), (0.01, 3.0), (0.5, 0.52), (2.0, 40.0), (10.0, 11.0)]:
        got = S._gamma_diff(a, x1, x2)
        want, _ = integrate.quad(lambda u: math.exp(a * u - math.exp(u)), math.log(x1),
                                 math.log(x2), epsabs=0, epsrel=1e-13, limit=200)
        assert abs(got - want) <= 1e-10 * abs(want), (a, x1, x2, got, want)


def test_numeric_rule_converges_to_1e_12():
    m = S.LogParabola()
    p = np.array([1e-11, 2.2, 0.35, 1200.0])
    got = m._numeric_integral(100.0, 316227.766, p, 0)
    want = m._analytic_integral(np.array([100.0]), np.array([316227.766]), p, 0)[0]
    assert abs(got / want - 1) < 1e-12


# ---------------------------------------------------------------------------------------
# Known values
# ---------------------------------------------------------------------------------------
def test_known_values():
    pl = S.PowerLaw()
    p = pl.make_p(Prefactor=3.1e-12, Index=-2.4, Scale=1500.0)
    assert pl.evaluate(1500.0, p) == pytest.approx(3.1e-12, rel=1e-15)
    # flux of an E^-2 power law from 1 to 10 GeV: N E0^2 (1/1000 - 1/10000)
    p2 = pl.make_p(Prefactor=1e-12, Index=-2.0, Scale=1000.0)
    assert pl.flux(1000.0, 1e4, p2) == pytest.approx(1e-12 * 1e6 * 9e-4, rel=1e-14)
    # index -1 (photon flux) and -2 (energy flux) logarithmic limits
    p1 = pl.make_p(Prefactor=1e-12, Index=-1.0, Scale=1000.0)
    assert pl.flux(100.0, 1e5, p1) == pytest.approx(1e-12 * 1000.0 * math.log(1e3), rel=1e-14)
    assert pl.eflux(100.0, 1e5, p2) == pytest.approx(1e-12 * 1e6 * math.log(1e3), rel=1e-14)

    pl2 = S.PowerLaw2()
    for g in (-2.3, -1.0, -0.5):
        q = pl2.make_p(Integral=2.5e-7, Index=g, LowerLimit=100.0, UpperLimit=5e5)
        assert pl2.flux(100.0, 5e5, q) == pytest.approx(2.5e-7, rel=1e-13)
    bpl2 = S.BrokenPowerLaw2()
    q = bpl2.make_p(Integral=2e-7, Index1=-1.7, Index2=-2.9, BreakValue=2000.0)
    assert bpl2.flux(100.0, 1e5, q) == pytest.approx(2e-7, rel=1e-13)
    # continuity at the break
    eb = 2000.0
    lo, hi = bpl2.evaluate([eb * (1 - 1e-12), eb], q)
    assert lo == pytest.approx(hi, rel=1e-9)

    lp = S.LogParabola()
    q = lp.make_p(norm=4e-12, alpha=2.1, beta=0.3, Eb=800.0)
    assert lp.evaluate(800.0, q) == pytest.approx(4e-12, rel=1e-15)
    # symmetric parabola: the E^2 dN/dE peak at ln(E/Eb) = (2 - alpha)/(2 beta)
    epk = 800.0 * math.exp((2 - 2.1) / (2 * 0.3))
    e = epk * np.array([0.999, 1.0, 1.001])
    sed = e ** 2 * lp.evaluate(e, q)
    assert sed[1] > sed[0] and sed[1] > sed[2]

    p4 = S.PLSuperExpCutoff4()
    q = p4.make_p(Prefactor=2e-12, IndexS=-1.6, Scale=1500.0, ExpfactorS=0.5, Index2=0.6667)
    assert p4.evaluate(1500.0, q) == pytest.approx(2e-12, rel=1e-15)
    # local slope at Scale is IndexS
    h = 1e-5
    s = (math.log(p4.evaluate(1500.0 * math.exp(h), q)) -
         math.log(p4.evaluate(1500.0 * math.exp(-h), q))) / (2 * h)
    assert s == pytest.approx(-1.6, abs=1e-8)

    ple = S.PLSuperExpCutoff()
    q = ple.make_p(Prefactor=1e-11, Index1=-1.5, Scale=1000.0, Cutoff=3000.0, Index2=1.0)
    assert ple.evaluate(3000.0, q) == pytest.approx(1e-11 * 3 ** -1.5 * math.exp(-1), rel=1e-14)
    # exact: flux above Ec of N (E/E0)^-2 exp(-E/Ec) = N E0^2/Ec Gamma(-1, 1)
    #        = N E0^2/Ec (e^-1 - E1(1))
    q = ple.make_p(Prefactor=1e-11, Index1=-2.0, Scale=1000.0, Cutoff=3000.0, Index2=1.0)
    want = 1e-11 * 1000.0 ** 2 / 3000.0 * (math.exp(-1.0) - special.exp1(1.0))
    assert ple.flux(3000.0, 1e8, q) == pytest.approx(want, rel=1e-13)

    cv = S.ConstantValue()
    assert cv.flux(10.0, 20.0, np.array([2.0])) == pytest.approx(20.0, rel=1e-15)
    assert cv.eflux(10.0, 20.0, np.array([2.0])) == pytest.approx(300.0, rel=1e-15)


# ---------------------------------------------------------------------------------------
# FileFunction
# ---------------------------------------------------------------------------------------
def _write_table(path, e, f, err=True):
    with open(path, "w") as fh:
        fh.write("# energy dnde err\n\n")
        for a, b in zip(e, f):
            a, b = float(a), float(b)
            fh.write(f"{a!r} {b!r} {0.1 * b!r}\n" if err else f"{a!r}\t{b!r}\n")


def test_filefunction_table_nodes_and_loglog_interpolation(tmp_path):
    e = np.array([50.0, 200.0, 1000.0, 5000.0, 4e4])
    f = np.array([3e-7, 1e-8, 2e-10, 4e-12, 1e-14])
    _write_table(tmp_path / "t.txt", e, f)
    ff = S.FileFunction.from_file(tmp_path / "t.txt")
    p = np.array([1.7])
    np.testing.assert_allclose(ff.evaluate(e, p), 1.7 * f, rtol=1e-13)
    mid = np.sqrt(e[:-1] * e[1:])
    np.testing.assert_allclose(ff.evaluate(mid, p), 1.7 * np.sqrt(f[:-1] * f[1:]), rtol=1e-13)
    # a quarter of the way in ln E: a quarter of the way in ln dN/dE
    q = e[1] * (e[2] / e[1]) ** 0.25
    assert ff.evaluate(q, p) == pytest.approx(1.7 * f[1] * (f[2] / f[1]) ** 0.25, rel=1e-13)
    np.testing.assert_allclose(ff.gradient(mid, p)[0], np.sqrt(f[:-1] * f[1:]), rtol=1e-13)
    # exact piecewise integrals against quad
    for e1, e2 in [(50.0, 4e4), (120.0, 130.0), (300.0, 7000.0), (1000.0, 5000.0)]:
        for moment, fn in ((0, ff.flux), (1, ff.eflux)):
            want = quad_ref(lambda x: ff.evaluate(x, p), e1, e2, moment, tuple(e))
            assert fn(e1, e2, p) == pytest.approx(want, rel=1e-9)
    # flux gradient: flux at unit normalisation
    np.testing.assert_allclose(ff.flux_gradient(100.0, 1e4, p)[0], ff.flux(100.0, 1e4, [1.0]),
                               rtol=1e-14)
    # outside the table: an error as in the Science Tools, unless extrapolating
    with pytest.raises(GeometryError, match="outside the table range"):
        ff.evaluate([10.0, 100.0], p)
    with pytest.raises(GeometryError, match="outside the table range"):
        ff.flux(100.0, 1e5, p)
    ffx = S.FileFunction.from_file(tmp_path / "t.txt", extrapolate=True)
    slope = math.log(f[-1] / f[-2]) / math.log(e[-1] / e[-2])
    assert ffx.evaluate(8e4, p) == pytest.approx(1.7 * f[-1] * 2 ** slope, rel=1e-12)
    want = quad_ref(lambda x: ffx.evaluate(x, p), 20.0, 1e5, 0, tuple(e))
    assert ffx.flux(20.0, 1e5, p) == pytest.approx(want, rel=1e-9)


def test_filefunction_bad_files(tmp_path):
    with pytest.raises(InputFileError, match="nope.txt"):
        S.FileFunction.from_file(tmp_path / "nope.txt")
    (tmp_path / "one.txt").write_text("100.0\n200.0\n")
    with pytest.raises(FileFormatError, match="line 1"):
        S.FileFunction.from_file(tmp_path / "one.txt")
    (tmp_path / "neg.txt").write_text("100 1e-9\n200 0\n")
    with pytest.raises(FileFormatError, match="row 2"):
        S.FileFunction.from_file(tmp_path / "neg.txt")
    with pytest.raises(ModelError, match="no table"):
        S.FileFunction().evaluate(100.0, [1.0])


@pytest.mark.shared_data
def test_filefunction_isotropic_template(crab_day):
    path = crab_day / "iso_P8R2_SOURCE_V6_v06.txt"
    tab = np.loadtxt(path)
    ff = S.FileFunction.from_file(path)
    assert ff.energy.size == tab.shape[0] == 40
    np.testing.assert_allclose(ff.evaluate(tab[:, 0], [1.0]), tab[:, 1], rtol=1e-13)
    mid = np.sqrt(tab[:-1, 0] * tab[1:, 0])
    np.testing.assert_allclose(ff.evaluate(mid, [1.0]), np.sqrt(tab[:-1, 1] * tab[1:, 1]),
                               rtol=1e-12)
    # photon flux of the isotropic spectrum over the 1-day data range (200 MeV - 20 GeV)
    want = quad_ref(lambda x: ff.evaluate(x, [1.0]), 200.0, 2e4, 0, tuple(tab[:, 0]))
    assert ff.flux(200.0, 2e4, [1.0]) == pytest.approx(want, rel=1e-10)
    assert 1e-6 < want < 1e-4   # ph cm-2 s-1 sr-1 scale of the isotropic background


# ---------------------------------------------------------------------------------------
# Defaults, registry, errors
# ---------------------------------------------------------------------------------------
def test_defaults_match_fermipy_models_yaml():
    # fermipy/data/models.yaml (Fermipy 0.16): PowerLaw Prefactor 1e-12 with bounds 1e-5..1e3
    # in units of its scale, Index 2 scale -1 in [0, 5], Scale 1000.
    pl = S.PowerLaw()
    pref, idx, sc = pl.params
    assert (pref.name, pref.value, pref.scale, pref.min, pref.max) == \
        ("Prefactor", 1.0, 1e-12, 1e-5, 1e3)
    assert (idx.name, idx.value, idx.scale, idx.min, idx.max) == ("Index", 2.0, -1.0, 0.0, 5.0)
    assert (sc.name, sc.value, sc.free) == ("Scale", 1000.0, False)
    np.testing.assert_allclose(pl.default_p(), [1e-12, -2.0, 1000.0])
    assert pl.norm_param == "Prefactor" and pl.index_params == ("Index",)
    assert pl.shape_params == ("Index",)
    # PowerLaw2: Integral 1e-6, limits 100 MeV - 100 GeV
    np.testing.assert_allclose(S.PowerLaw2().default_p(), [1e-6, -2.0, 100.0, 1e5])
    # LogParabola: norm 1e-12, alpha 2, beta 0 in [-2, 2], Eb 1000
    lp = S.LogParabola()
    np.testing.assert_allclose(lp.default_p(), [1e-12, 2.0, 0.0, 1000.0])
    assert lp.params[2].min == -2.0 and lp.params[2].max == 2.0
    assert lp.norm_param == "norm" and lp.index_params == ("alpha", "beta")
    # PLSuperExpCutoff: Cutoff 1000, Index2 1 in [0, 2]; PLSuperExpCutoff2 Expfactor 0
    np.testing.assert_allclose(S.PLSuperExpCutoff().default_p(), [1e-12, -2.0, 1000.0, 1000.0, 1.0])
    np.testing.assert_allclose(S.PLSuperExpCutoff2().default_p(), [1e-12, -2.0, 1000.0, 0.0, 1.0])
    # ExpCutoff: Index -2.1, Ebreak 10, P1 150
    np.testing.assert_allclose(S.ExpCutoff().default_p(),
                               [1e-12, -2.1, 1000.0, 10.0, 150.0, 0.0, 0.0])
    assert S.FileFunction.norm_param == "Normalization"
    assert S.ConstantValue.norm_param == "Value"
    assert S.PowerLaw2.norm_param == "Integral"
    for cls in S.SPECTRAL_MODELS.values():
        m = cls()
        assert m.norm_param in m.par_names
        assert set(m.index_params) <= set(m.par_names)
        for q in m.params:   # defaults lie within their bounds
            q.check(where=cls.tag)


def test_registry_and_errors():
    assert S.get_spectral_model("LogParabola") is S.LogParabola
    assert set(S.SPECTRAL_MODELS) >= {
        "PowerLaw", "PowerLaw2", "BrokenPowerLaw", "BrokenPowerLaw2", "LogParabola",
        "ExpCutoff", "PLSuperExpCutoff", "PLSuperExpCutoff2", "PLSuperExpCutoff3",
        "PLSuperExpCutoff4", "BandFunction", "ConstantValue", "FileFunction"}
    with pytest.raises(ModelError, match=r"unknown spectral model 'PowerLow'.*LogParabola.*"
                                          r"PowerLaw2"):
        S.get_spectral_model("PowerLow")
    with pytest.raises(ValueError):
        S.get_spectral_model("DMFitFunction")
    pl = S.PowerLaw()
    with pytest.raises(ModelError, match=r"expected 3 physical values for \(Prefactor, "
                                          r"Index, Scale\)"):
        pl.evaluate(100.0, [1e-12, -2.0])
    with pytest.raises(ModelError, match="no parameter 'index'"):
        pl.make_p(index=-2.0)
    with pytest.raises(GeometryError, match="energies > 0"):
        pl.evaluate([0.0, 100.0], pl.default_p())


def test_inputs_not_mutated_and_shapes_kept():
    m = S.PLSuperExpCutoff4()
    p = m.make_p(ExpfactorS=0.3)
    p0 = p.copy()
    e = np.geomspace(100.0, 1e5, 12).reshape(3, 4)
    e0 = e.copy()
    assert m.evaluate(e, p).shape == (3, 4)
    assert m.gradient(e, p).shape == (5, 3, 4)
    m.flux(e[:, :1], e[:, 1:], p)
    m.flux_gradient(e[0, 0], e[2, 3], p)
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(e, e0)
    assert np.ndim(m.evaluate(1000.0, p)) == 0


def test_kernel_helpers_small_argument_limits():
    # expm1_over / dexpm1_over_da continuous through a = 0
    for s in (0.1, 3.0, 8.0):
        assert K.expm1_over(0.0, s) == s
        assert K.expm1_over(1e-9, s) == pytest.approx(s, rel=1e-8)
        for a in (1e-6, 1e-3, 0.05, -0.05, 0.7):
            fd = (K.expm1_over(a + 1e-7, s) - K.expm1_over(a - 1e-7, s)) / 2e-7
            assert K.dexpm1_over_da(a, s) == pytest.approx(fd, rel=1e-6)
    # the PLEC4 series and closed forms meet at |t| = 0.1
    for t in (0.0999999, 0.1000001, -0.0999999, -0.1000001):
        assert K._g4(t) == pytest.approx((t - math.expm1(t)) / t ** 2, rel=1e-12)
        assert K._dg4(t) == pytest.approx(((2 - t) * math.expm1(t) - 2 * t) / t ** 3, rel=1e-9)
