"""Regenerate fermixr's built-in example data set in ``examples/data``.

The data are synthetic (not LAT data): one day of a survey-mode orbit (``ft2.fits``), events
from three power-law point sources and an isotropic background (``ft1.fits``), the synthetic
instrument response FXR_SYNTH_V1 in a CALDB tree (``caldb/``), the true model
(``source_model.xml``, ``iso_FXR_SYNTH_V1.txt``) and ``truth.yaml``.

    python examples/make_example_data.py [outdir] [--seed N]

The output is deterministic: the same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fermixr.simulate.synthetic import SyntheticConfig, make_example_dataset


def main(argv=None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", nargs="?", default=str(here / "data"),
                        help="output folder (default: examples/data beside this script)")
    parser.add_argument("--seed", type=int, default=SyntheticConfig().seed,
                        help="random seed of the simulation")
    args = parser.parse_args(argv)
    paths = make_example_dataset(args.outdir, SyntheticConfig(seed=args.seed))
    truth = paths["truth_dict"]
    print(f"wrote {truth['n_events']} events to {paths['ft1']}")
    for key in ("ft2", "caldb", "model", "iso", "truth"):
        print(f"  {key:6s} {paths[key]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
