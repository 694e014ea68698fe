"""Several recipes -- regions of interest -- in one command:
``fermixr run A.yaml B.yaml ... --outdir DIR``.

Each recipe runs into its own sub-folder ``DIR/<recipe name>`` and, unless it names a
``fileio.cachedir`` of its own, all of them share one product store, ``DIR/.store``: the
store is content-addressed, so a product that several regions need with the same inputs and
options (the livetime cube of one FT2 file, GTI set and zenith cut; the PSF table; the
energy-dispersion matrix) is computed once and found by the others.  The recipes share one
Dask client.  Every recipe is loaded and checked before any work; a region whose recipe
is bad or whose run fails is recorded with its one-line reason and the others still run
(keep going); the caller reports the failures at the end.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from ..errors import RecipeError

__all__ = ["RoiOutcome", "roi_names", "run_many"]


@dataclasses.dataclass
class RoiOutcome:
    """What happened to one region: ``status`` is "done" or "failed"; ``error`` the
    exception of a failure; ``states`` the data products' task states of a success."""

    name: str
    recipe: str
    outdir: Path
    status: str
    seconds: float
    error: BaseException | None = None
    states: dict | None = None

    @property
    def computed(self) -> int:
        return sum(s.status == "computed" for s in (self.states or {}).values())


def roi_names(recipes) -> list[str]:
    """The sub-folder of each recipe: its file name without the extension.  Two recipes
    with one name are refused (their products would land in one folder)."""
    names = []
    for r in recipes:
        p = Path(r)
        names.append(p.stem if p.suffix in (".yaml", ".yml") else p.name)
    seen: dict[str, str] = {}
    for r, n in zip(recipes, names):
        if n in seen:
            raise RecipeError(f"recipes {seen[n]!r} and {str(r)!r} would both write into the "
                              f"sub-folder {n!r}; rename one of them")
        seen[n] = str(r)
    return names


def _own_cachedir(path: Path) -> bool:
    """Whether the recipe file names its own ``fileio.cachedir``."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False          # load_recipe says what is wrong with it
    fio = doc.get("fileio") if isinstance(doc, dict) else None
    return isinstance(fio, dict) and fio.get("cachedir") is not None


def run_many(recipes, outdir, *, scheduler=None, force=(), verbose=True, stream=None
             ) -> list[RoiOutcome]:
    """Run every recipe into ``outdir/<name>`` (see the module docstring); returns one
    :class:`RoiOutcome` per recipe, in order.  Interrupts propagate."""
    from .plan import plan_tasks
    from .preflight import check_data
    from .recipe import load_recipe
    from .run import dask_client, run_recipe

    stream = stream if stream is not None else sys.stderr
    recipes = [Path(r) for r in recipes]
    names = roi_names(recipes)
    root = Path(outdir).expanduser().resolve()
    shared = root / ".store"
    loaded, out = {}, []
    for r, n in zip(recipes, names):           # every recipe checked before any work
        fio = {"outdir": str(root / n)}
        if not _own_cachedir(r):
            fio["cachedir"] = str(shared)
        t0 = time.monotonic()
        try:
            rec = load_recipe(r, fileio=fio)
            plan_tasks(rec)                   # every input file exists
            check_data(rec)                   # the selection lies within the data
            loaded[n] = rec
        except Exception as exc:              # noqa: BLE001 -- recorded, the rest run
            out.append(RoiOutcome(n, str(r), root / n, "failed", time.monotonic() - t0, exc))
    root.mkdir(parents=True, exist_ok=True)
    with dask_client(scheduler) as client:
        for i, (r, n) in enumerate(zip(recipes, names)):
            if n not in loaded:
                continue
            if verbose:
                print(f"== region {i + 1}/{len(recipes)}: {n} ({r})", file=stream)
            t0 = time.monotonic()
            try:
                states = run_recipe(loaded[n], scheduler=None, client=client, force=force,
                                    verbose=verbose, stream=stream, summary=verbose)
            except Exception as exc:          # noqa: BLE001 -- recorded, the rest run
                out.append(RoiOutcome(n, str(r), root / n, "failed",
                                      time.monotonic() - t0, exc))
                if verbose:
                    print(f"== region {n}: failed: {exc}", file=stream)
                continue
            out.append(RoiOutcome(n, str(r), root / n, "done", time.monotonic() - t0,
                                  states=states))
    order = {n: k for k, n in enumerate(names)}
    return sorted(out, key=lambda o: order[o.name])
