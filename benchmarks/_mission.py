"""A 17-year synthetic FT1/FT2 of one region, made by fermixr's own simulator, for the
light-curve benchmarks (full-likelihood and weighted-photon curves).

    from _mission import mission_dataset
    paths = mission_dataset()            # made once, then found in the cache folder

The region is the built-in example's (the SYN_CRAB field, steady power-law sources and an
isotropic background through the synthetic response FXR_SYNTH_V1) with a 5 deg event cut
and an 8 deg background margin, so that 17 years stay a few million events.  The files are
written under ``$FERMIXR_MISSION_CACHE`` (default ``~/.cache/fermixr/mission-<years>y``)
with a stamp of the configuration; a folder whose stamp differs is remade, never reused.
Making 17 years took 12.7 min on one core, 12.8 GB of memory at its peak and 3.3 GB of disk
(FT2 2.7 GB with 17.9M rows, FT1 0.6 GB with 6.1M events).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

YEAR = 365.25 * 86400.0


def mission_config(years: float = 17.0, **overrides):
    from fermixr.simulate.synthetic import SyntheticConfig

    kw = dict(duration=years * YEAR, roi_radius=5.0, background_margin=8.0)
    kw.update(overrides)
    return SyntheticConfig(**kw)


def mission_dataset(years: float = 17.0, cache=None, **overrides) -> dict:
    """Paths of the mission data set (``ft1``, ``ft2``, ``caldb``, ``iso``, ``model``,
    ``truth``), made if the cache folder does not hold this configuration."""
    from fermixr.simulate.synthetic import make_example_dataset

    cfg = mission_config(years, **overrides)
    root = Path(cache or os.environ.get("FERMIXR_MISSION_CACHE")
                or Path.home() / ".cache" / "fermixr" / f"mission-{years:g}y")
    stamp = json.dumps({k: repr(v) for k, v in sorted(vars(cfg).items())}, sort_keys=True)
    names = dict(ft1="ft1.fits", ft2="ft2.fits", caldb="caldb", iso="iso_FXR_SYNTH_V1.txt",
                 model="source_model.xml", truth="truth.yaml")
    paths = {k: root / v for k, v in names.items()}
    stamp_file = root / "config.json"
    if not (stamp_file.exists() and stamp_file.read_text() == stamp
            and all(p.exists() for p in paths.values())):
        print(f"making the {years:g}-year synthetic mission in {root} (once; ~13 min, ~13 GB of memory)",
              file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        root.mkdir(parents=True, exist_ok=True)
        stamp_file.unlink(missing_ok=True)
        make_example_dataset(root, cfg, compute_expected=False)
        stamp_file.write_text(stamp)
        print(f"made in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return paths


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="make (or find) the synthetic mission data set")
    ap.add_argument("--years", type=float, default=17.0)
    ap.add_argument("--cache", default=None)
    a = ap.parse_args()
    for k, v in mission_dataset(a.years, a.cache).items():
        print(f"{k}: {v}")
