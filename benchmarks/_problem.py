"""The benchmark problem shared by fermixr and Gammapy (pure numpy, no import of either).

One ROI: ``nbins`` logarithmic energy bins from 100 MeV to 100 GeV, ``npix`` x ``npix``
pixels of ``binsz`` deg in a plate-carree (CAR) grid centred on (RA, Dec) = (180, 0) in ICRS,
``nsrc`` point sources with power-law spectra and an isotropic background, a flat exposure
(the same in every pixel and at every energy) and a Gaussian PSF whose width falls with
energy and is truncated at ``TRUNC_K`` sigma (the radius holding 99.9% of an untruncated
Gaussian: Gammapy's default kernel containment).

Truth, start values and counts come from one seeded generator, so two processes (one with
fermixr, one with Gammapy) build identical problems.  The counts are Poisson draws of a model
computed here and by neither library: each source's flux integrated analytically over each
bin, spread by a Gaussian of the width at the bin's logarithmic centre and integrated over
each pixel exactly (products of error functions on the flat grid), plus the background
template.  Sources sit on pixel centres, where Gammapy's point-source gridding puts the whole
flux in one pixel, so both libraries model the same thing and differ only by their
quadratures (fermixr: maps at the bin edges, log-log trapezoid; Gammapy: exact bin integral,
PSF at the bin centre).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.special import erf

CENTER = (180.0, 0.0)           # RA, Dec of the map centre, deg (ICRS)
EMIN, EMAX = 100.0, 1e5          # MeV
EXPOSURE = 3e11                  # cm2 s, every pixel and energy
E_REF = 1000.0                   # MeV, reference energy of every power law
TRUNC_K = math.sqrt(-2.0 * math.log(1e-3))   # 3.717: 99.9% of a 2D Gaussian
BKG_INDEX = 2.1
BKG_PREFACTOR = 1.5e-9           # ph / cm2 / s / MeV / sr at E_REF (~1.4e-5 /cm2/s/sr > 100 MeV)


def psf_sigma_deg(energy_mev) -> np.ndarray:
    """Gaussian PSF width (deg): 0.53 deg at 100 MeV falling as E^-0.8 to a floor of
    0.066 deg (68% containment 0.8 deg and 0.1 deg, roughly the LAT's)."""
    e = np.asarray(energy_mev, dtype=float)
    return np.maximum(0.8 * (e / 100.0) ** -0.8, 0.1) / 1.51


def truncated_gaussian(rad_deg, sigma_deg) -> np.ndarray:
    """PSF density (sr^-1) at offsets ``rad_deg`` (n,) for widths ``sigma_deg`` (nE,):
    a flat-sky 2D Gaussian cut at TRUNC_K sigma and renormalised to 1 inside the cut."""
    r = np.radians(np.asarray(rad_deg, dtype=float))[None, :]
    s = np.radians(np.asarray(sigma_deg, dtype=float))[:, None]
    inside = 1.0 - math.exp(-0.5 * TRUNC_K ** 2)
    val = np.exp(-0.5 * (r / s) ** 2) / (2.0 * math.pi * s ** 2 * inside)
    return np.where(r <= TRUNC_K * s, val, 0.0)


def psf_offsets_deg(sigma_max_deg: float, n: int = 1200) -> np.ndarray:
    """Offsets of the radial PSF tables: fine enough that the cut is sharp."""
    return np.linspace(0.0, 1.02 * TRUNC_K * sigma_max_deg, n)


def node_weights(edges, dnde):
    """fermixr's (and gtlike's) per-node weights of the log-log trapezoid: counts in bin i
    = lo_i S_i + hi_i S_{i+1} for a map S at the edges (re-derived here, not imported)."""
    e = np.asarray(edges, dtype=float)
    h = 0.5 * np.log(e[1:] / e[:-1])
    return h * e[:-1] * dnde[:-1], h * e[1:] * dnde[1:]


def pl_dnde(e, prefactor, index):
    return prefactor * (np.asarray(e, dtype=float) / E_REF) ** (-index)


def pl_integral(e1, e2, prefactor, index):
    g = 1.0 - index
    return prefactor * E_REF / g * ((e2 / E_REF) ** g - (e1 / E_REF) ** g)


@dataclasses.dataclass
class Problem:
    nbins: int
    npix: int
    binsz: float
    edges: np.ndarray          # (nbins + 1,) MeV
    ix: np.ndarray             # (nsrc,) pixel column of each source
    iy: np.ndarray             # (nsrc,) pixel row
    ra: np.ndarray             # (nsrc,) deg
    dec: np.ndarray            # (nsrc,) deg
    prefactor: np.ndarray      # (nsrc,) ph / cm2 / s / MeV at E_REF, truth
    index: np.ndarray          # (nsrc,) photon index (positive), truth, fixed in the fits
    start: np.ndarray          # (nsrc,) start prefactors of both fits
    bkg_start: float           # start background norm (truth 1)
    seed: int

    @property
    def nsrc(self) -> int:
        return self.ra.size

    @property
    def names(self) -> list[str]:
        return [f"src{k:02d}" for k in range(self.nsrc)]

    def pixel_lonlat(self):
        """Pixel-centre (lon, lat) 1D axes (deg) of the CAR grid (x increasing to the east =
        decreasing RA, as FITS images)."""
        x = np.arange(self.npix) - 0.5 * (self.npix - 1)
        return CENTER[0] - x * self.binsz, CENTER[1] + x * self.binsz

    def pixel_solid_angle(self) -> np.ndarray:
        """(npix, npix) exact solid angle (sr) of each CAR pixel (rows = lat)."""
        _, lat = self.pixel_lonlat()
        lo = np.radians(lat - 0.5 * self.binsz)
        hi = np.radians(lat + 0.5 * self.binsz)
        om = math.radians(self.binsz) * (np.sin(hi) - np.sin(lo))
        return np.repeat(om[:, None], self.npix, axis=1)

    def bkg_node_map(self) -> np.ndarray:
        """(nbins + 1, npix * npix) background map at the edges per unit norm (cm2 s sr,
        the fermixr source map of the isotropic source)."""
        m = (EXPOSURE * self.pixel_solid_angle()).ravel()
        return np.broadcast_to(m, (self.nbins + 1, m.size))

    def bkg_counts(self) -> np.ndarray:
        """(nbins, npix, npix) background counts per unit norm: the node map combined with
        the background spectrum by the log-log trapezoid (what fermixr predicts; handed to
        Gammapy as its background template)."""
        lo, hi = node_weights(self.edges, pl_dnde(self.edges, BKG_PREFACTOR, BKG_INDEX))
        m = EXPOSURE * self.pixel_solid_angle()
        return (lo + hi)[:, None, None] * m[None]

    def truth_npred(self) -> np.ndarray:
        """(nbins, npix, npix) expected counts of the truth (see the module notes)."""
        e1, e2 = self.edges[:-1], self.edges[1:]
        sig = psf_sigma_deg(np.sqrt(e1 * e2))
        b = self.binsz
        grid = (np.arange(self.npix + 1) - 0.5 * self.npix) * b   # pixel edges, deg
        out = self.bkg_counts().copy()
        for k in range(self.nsrc):
            x0 = (self.ix[k] - 0.5 * (self.npix - 1)) * b
            y0 = (self.iy[k] - 0.5 * (self.npix - 1)) * b
            flux = pl_integral(e1, e2, self.prefactor[k], self.index[k]) * EXPOSURE
            s = sig[:, None] * math.sqrt(2.0)
            fx = np.diff(0.5 * erf((grid[None, :] - x0) / s), axis=1)
            fy = np.diff(0.5 * erf((grid[None, :] - y0) / s), axis=1)
            out += flux[:, None, None] * fy[:, :, None] * fx[:, None, :]
        return out

    def counts(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed + 1000)
        return rng.poisson(self.truth_npred()).astype(np.float64)


def make_problem(nbins=30, npix=200, binsz=0.05, nsrc=50, seed=42) -> Problem:
    rng = np.random.default_rng(seed)
    edges = np.geomspace(EMIN, EMAX, nbins + 1)
    margin = max(2, int(round(0.1 * npix)))
    # distinct pixel-centre positions, away from the edges
    cells = rng.choice((npix - 2 * margin) ** 2, size=nsrc, replace=False)
    iy, ix = np.divmod(cells, npix - 2 * margin)
    ix = ix + margin
    iy = iy + margin
    x = ix - 0.5 * (npix - 1)
    y = iy - 0.5 * (npix - 1)
    ra = CENTER[0] - x * binsz
    dec = CENTER[1] + y * binsz
    prefactor = 10 ** rng.uniform(-14.0, -12.0, nsrc)   # ph/cm2/s/MeV at 1 GeV
    index = rng.uniform(1.8, 2.6, nsrc)
    start = prefactor * np.exp(rng.normal(0.0, 0.3, nsrc))
    return Problem(nbins=nbins, npix=npix, binsz=binsz, edges=edges, ix=ix, iy=iy, ra=ra,
                   dec=dec, prefactor=prefactor, index=index, start=start, bkg_start=1.2,
                   seed=seed)
