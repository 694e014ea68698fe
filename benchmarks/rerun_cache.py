"""Re-running an unchanged recipe: the second run finds every product cached.

Runs the built-in example twice into a fresh run directory through the CLI and prints the
wall time of each run (whole command, and the engine's own figure) and their ratio.

    python benchmarks/rerun_cache.py [RECIPE]
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(recipe: Path, outdir: Path) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", "run", str(recipe), "--outdir",
                        str(outdir)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    engine = float(re.search(r"run finished in ([0-9.]+) s", r.stderr).group(1))
    summary = r.stderr.strip().splitlines()[-1]
    return wall, engine, summary


def main() -> None:
    recipe = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "examples" / "quickstart.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        w1, e1, s1 = run(recipe, out)
        w2, e2, s2 = run(recipe, out)
    print(f"recipe: {recipe}")
    print(f"first run : command {w1:6.2f} s, engine {e1:6.2f} s   ({s1})")
    print(f"second run: command {w2:6.2f} s, engine {e2:6.2f} s   ({s2})")
    print(f"ratio second/first: command {w2 / w1:.1%}, engine {e2 / e1:.1%}")
    print("(numba's on-disk cache is warm after the first ever run; the first figure of a "
          "fresh install also includes compiling the kernels)")


if __name__ == "__main__":
    main()
