"""Benchmark of one SED: 20 energy bins (100 MeV - 100 GeV), 100 x 100 pixels, 20 point
sources and an isotropic template; the SED of the brightest source with the background
normalisations free in every bin (free_background, Gaussian priors of 3 x their global
errors), without plots or files.  Issue 16 asks <= 1 s.

The ROI is synthetic and built directly as an analysis state (no files): per source a
Gaussian PSF whose width falls with energy, on a flat exposure; counts are a Poisson draw
of the model; the global fit (NEWTON) gives the errors the priors use.  Printed, not
asserted: the time of the first call (numba compilation included) and the median of the
next ``--repeat`` calls.

    python benchmarks/sed.py [--npix 100] [--nbins 20] [--nsrc 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def build(npix=100, nbins=20, nsrc=20, seed=3):
    from fermixr.likelihood.roi import AnalysisState, Component
    from fermixr.model.build import source_from_dict
    from fermixr.model.skymodel import SkyModel

    rng = np.random.default_rng(seed)
    binsz = 0.1
    e = np.geomspace(100.0, 1e5, nbins + 1)
    c = (np.arange(npix) - 0.5 * (npix - 1)) * binsz
    yy, xx = np.meshgrid(c, c, indexing="ij")
    omega = math.radians(binsz) ** 2
    expo = 3e11 * (0.55 + 0.45 * np.tanh(np.log10(e / 100.0)))          # cm2 s per node
    sig = np.maximum(0.8 * (e / 100.0) ** -0.8, 0.1) / 1.51               # deg
    center = (180.0, 0.0)
    sources, maps = [], {}
    for k in range(nsrc):
        dx, dy = (0.0, 0.0) if k == 0 else rng.uniform(-4.0, 4.0, 2)
        pref = 3e-11 if k == 0 else 10 ** rng.uniform(-12.0, -11.0)
        src = source_from_dict({"name": f"src{k:02d}", "ra": center[0] + dx,
                                "dec": center[1] + dy, "SpectrumType": "PowerLaw",
                                "Prefactor": pref, "Index": float(rng.uniform(1.8, 2.6)),
                                "Scale": 1000.0}, center)
        r2 = (xx - dx) ** 2 + (yy - dy) ** 2
        blob = np.exp(-0.5 * r2[None] / sig[:, None, None] ** 2) \
            / (2 * math.pi * sig[:, None, None] ** 2) * binsz ** 2
        maps[src.name] = (expo[:, None, None] * blob).reshape(nbins + 1, -1)
        sources.append(src)
    iso = source_from_dict({"name": "isotropic", "ra": center[0], "dec": center[1],
                            "SpectrumType": "PowerLaw", "Prefactor": 1.5e-9 * omega * 1e3,
                            "Index": 2.1, "Scale": 1000.0}, center)
    maps[iso.name] = np.repeat(expo[:, None], npix * npix, axis=1) / 1e3
    sources.append(iso)
    model = SkyModel(tuple(sources))
    comp = Component(counts=np.zeros((nbins, npix * npix)), edges=e, maps=maps,
                     sky_shape=(npix, npix))
    st = AnalysisState([comp], model, roi_center=center)
    from fermixr.estimators import edits
    from fermixr.estimators.ts import model_cubes

    cube = model_cubes(st)[0]
    st = st.with_counts([rng.poisson(cube).astype(float)])
    for s in model:                                    # every normalisation free
        st = edits.free_source(st, s.name, free=False)
        st = st[0] if isinstance(st, tuple) else st
        st = edits.free_norm(st, s.name)
        st = st[0] if isinstance(st, tuple) else st
    return st


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npix", type=int, default=100)
    ap.add_argument("--nbins", type=int, default=20)
    ap.add_argument("--nsrc", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    from fermixr.estimators.fit import fit_state
    from fermixr.estimators.sed import sed

    st = build(a.npix, a.nbins, a.nsrc)
    t0 = time.perf_counter()
    out, st = fit_state(st, optimizer="NEWTON")
    print(f"global fit (NEWTON, {len(out['values'])} norms): "
          f"{time.perf_counter() - t0:.2f} s, fit_quality {out['fit_quality']}")
    t0 = time.perf_counter()
    ds = sed(st, "src00", free_background=True).dataset
    first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(a.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        ds = sed(st, "src00", free_background=True).dataset
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    nfree = len(ds.attrs["free_sources"].split(","))
    print(f"SED of src00: {ds.sizes['energy']} bins, {a.npix} x {a.npix} pixels, "
          f"{a.nsrc + 1} sources, {nfree} background norms free with priors")
    print(f"first call (compilation included): {first:.2f} s")
    print(f"one SED: median {np.median(times):.3f} s wall over {a.repeat} calls "
          f"(min {min(times):.3f} s); CPU time of the process {np.median(cpu):.3f} s "
          "(median; on a shared machine the wall time includes waiting for a core)")
    print(f"TS per bin: {np.round(ds['ts'].values, 1)}")
    print(f"norm per bin: {np.round(ds['norm'].values, 3)}")


if __name__ == "__main__":
    main()
