"""Source-map timings: 50 point sources and one Galactic-diffuse-like map cube on a
30-energy x 200 x 200 WCS geometry (0.1 deg pixels), with a synthetic King PSF.

    python benchmarks/srcmaps.py

Goals: 50 point sources < 20 s, the map cube < 10 s, peak memory < 4 GiB.
"""

from __future__ import annotations

import resource
import time

import numpy as np


def king_psf(energies):
    from fermixr.srcmap.tables import RadialTable

    off = np.concatenate(([0.0], np.logspace(-3, np.log10(30.0), 400)))
    sig = np.maximum(3.0 * (energies / 100.0) ** -0.8, 0.04)[:, None]
    gam = 2.3
    val = (1 + off[None] ** 2 / (2 * gam * sig ** 2)) ** -gam
    return off, val / RadialTable(off, val).integral()[:, None]


def main():
    from fermixr.geom import WcsGeom
    from fermixr.srcmap.diffuse import mapcube_map
    from fermixr.srcmap.exposure import cube_exposure
    from fermixr.srcmap.point import point_source_map, wcs_pixel_vectors

    energies = np.logspace(2, 5, 30)
    off, psf = king_psf(energies)
    geom = WcsGeom((184.56, -5.78), 200, 0.1, proj="CAR", frame="GAL")
    rng = np.random.default_rng(1)
    ra0, dec0 = 83.63, 22.01
    pos = np.column_stack((ra0 + rng.uniform(-12, 12, 50), dec0 + rng.uniform(-12, 12, 50)))
    expo = np.linspace(2e10, 5e10, 30)

    # warm-up (numba compilation / cache load)
    point_source_map(geom, energies, ra0, dec0, expo, off, psf)
    t0 = time.perf_counter()
    pixels = (*wcs_pixel_vectors(geom), geom.solid_angle("exact"))
    total = np.zeros((30,) + geom.shape, dtype=np.float32)
    for ra, dec in pos:
        total += point_source_map(geom, energies, ra, dec, expo, off, psf, _pixels=pixels)
    t_pts = time.perf_counter() - t0
    print(f"50 point sources, 30 x 200 x 200:     {t_pts:6.2f} s  "
          f"({t_pts / 50 * 1e3:.0f} ms per source)")

    # Galactic-diffuse-like cube: smooth, on a 0.125 deg CAR grid covering ROI + 20 deg margin
    cg = WcsGeom((184.56, -5.78), (480, 480), 0.125, proj="CAR", frame="GAL")
    ce = np.logspace(1.5, 5.5, 25)
    lon, lat = cg.pixel_centers()
    dl = ((lon - 184.56 + 180) % 360) - 180
    spatial = (1 + 4 * np.exp(-0.5 * (lat / 2.0) ** 2)) * (1 + 0.3 * np.cos(np.radians(3 * dl)))
    cube = spatial[None] * (ce[:, None, None] / 1e3) ** -2.6 * 1e-7
    eg = WcsGeom((184.56, -5.78), 60, 1.0, proj="CAR", frame="GAL")
    el, eb = eg.pixel_centers()
    ecube = expo[:, None, None] * (1 + 0.1 * np.sin(np.radians(eb)))[None]
    t0 = time.perf_counter()
    m = mapcube_map(geom, energies, (cube, cg, ce), cube_exposure(ecube, eg, "linear"), off, psf)
    t_dif = time.perf_counter() - t0
    print(f"map cube (30 x 200 x 200, rfactor 2): {t_dif:6.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"peak memory (max RSS):                {peak:6.2f} GiB")
    print(f"goals: points < 20 s {'OK' if t_pts < 20 else 'MISSED'}, "
          f"cube < 10 s {'OK' if t_dif < 10 else 'MISSED'}, memory < 4 GiB "
          f"{'OK' if peak < 4 else 'MISSED'}")
    assert np.isfinite(m).all() and np.isfinite(total).all()


if __name__ == "__main__":
    main()
