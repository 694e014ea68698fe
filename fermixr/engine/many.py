"""Many regions of interest in one command: ``fermixr run A.yaml B.yaml ... --outdir DIR``,
and recipes that expand to many regions (a ``targets`` section).

Each region runs into its own sub-folder ``DIR/<region name>`` and, unless its recipe
names a ``fileio.cachedir`` of its own, all of them share one product store, ``DIR/.store``.

A recipe with a ``targets`` section expands to one region per target: ``targets.names``
(source names or associations, resolved as ``selection.target`` is, in ``targets.catalog``
then ``model.catalogs``), and/or every source of ``targets.catalog`` passing the cut
``targets.where`` on its columns (at most ``targets.max``, the most significant first).
Each region is the recipe centred on its target and named after it.  A name that no
catalog holds, or a cut naming no column, stops the command before any work.

The run is one plan, in two passes on one Dask client:

1. the data products of every region (GTIs, events, counts, livetime cube, exposure, PSF,
   source maps) as ONE task graph: a product that several regions need with the same
   inputs and options -- the livetime cube of one FT2 file, GTI set and zenith cut -- has
   one key and is computed once; independent tasks run together on the cluster;
2. each region's recipe (its analysis steps: fits, SEDs, light curves ...) as one task per
   region, spread over the workers (:func:`fermixr._parallel.ordered_map`), finding its
   data products in the store.

Every recipe is loaded and checked before any work; a region whose recipe is bad or whose
run fails is recorded with its one-line reason and the others still run (keep going); the
caller reports the failures at the end.  Products are committed to the store by the worker
that makes them: a worker killed mid-run loses no finished product or region (Dask runs
its unfinished tasks again on the others; a rerun finds the finished ones cached).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import RecipeError

__all__ = ["RoiOutcome", "RegionSpec", "roi_names", "expand_regions", "select_targets",
           "run_many"]


@dataclasses.dataclass
class RoiOutcome:
    """What happened to one region: ``status`` is "done" or "failed"; ``error`` the
    exception of a failure; ``states`` the data products' task states ({name: status})."""

    name: str
    recipe: str
    outdir: Path
    status: str
    seconds: float
    error: BaseException | None = None
    states: dict | None = None

    @property
    def computed(self) -> int:
        return sum((s if isinstance(s, str) else s.status) == "computed"
                   for s in (self.states or {}).values())


@dataclasses.dataclass(frozen=True)
class RegionSpec:
    """One region: its name, the recipe file and the sections laid over it (a target's
    centre)."""

    name: str
    recipe: Path
    overrides: dict = dataclasses.field(default_factory=dict)


def roi_names(recipes) -> list[str]:
    """The sub-folder of each recipe: its file name without the extension.  Two recipes
    with one name are refused (their products would land in one folder)."""
    names = []
    for r in recipes:
        p = Path(r)
        names.append(p.stem if p.suffix in (".yaml", ".yml") else p.name)
    _check_unique(list(zip(names, map(str, recipes))))
    return names


def _check_unique(pairs) -> None:
    seen: dict[str, str] = {}
    for n, r in pairs:
        if n in seen:
            what = (f"recipes {seen[n]!r} and {r!r}" if seen[n] != r
                    else f"recipe {r!r} has two regions that")
            raise RecipeError(f"{what} would both write into the sub-folder {n!r}; rename "
                              "one of them")
        seen[n] = r


def _own_cachedir(path: Path) -> bool:
    """Whether the recipe file names its own ``fileio.cachedir``."""
    doc = _yaml(path)
    fio = doc.get("fileio") if isinstance(doc, dict) else None
    return isinstance(fio, dict) and fio.get("cachedir") is not None


def _yaml(path: Path):
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, ValueError, yaml.YAMLError):   # ValueError: not UTF-8
        return {}           # load_recipe says what is wrong with it


def has_targets(path) -> bool:
    """Whether the recipe file has a ``targets`` section naming targets or a cut."""
    doc = _yaml(Path(path))
    t = doc.get("targets") if isinstance(doc, dict) else None
    return isinstance(t, dict) and bool(t.get("names") or t.get("where"))


# ------------------------------------------------------------------ the targets ----------
def region_name(target: str) -> str:
    """A folder name for a target: spaces and path separators become ``_``."""
    return re.sub(r"[\s/\\:]+", "_", str(target).strip()) or "target"


_CUT_OPS = {ast.Gt: np.greater, ast.GtE: np.greater_equal, ast.Lt: np.less,
            ast.LtE: np.less_equal, ast.Eq: np.equal, ast.NotEq: np.not_equal}
_ARITH = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
          ast.Div: np.true_divide}


def _eval_cut(where: str, columns, origin: str):
    """The boolean mask of the rows passing ``where`` (and, or, not, comparisons, + - * /,
    abs, numbers and strings) on the catalog's ``columns``."""
    try:
        tree = ast.parse(where.strip(), mode="eval")
    except SyntaxError as exc:
        raise RecipeError(f"{origin}: targets.where {where!r}: not an expression "
                          f"({exc.msg}); write e.g. 'Signif_Avg > 30 and abs(GLAT) > 10'"
                          ) from None
    names = {c.lower(): c for c in columns}

    def col(name):
        c = names.get(name.lower())
        if c is None:
            import difflib

            near = difflib.get_close_matches(name, list(columns), n=3)
            raise RecipeError(f"{origin}: targets.where {where!r}: the catalog has no column "
                              f"{name!r}" + (f"; did you mean {', '.join(near)}?" if near
                                             else ""))
        v = np.asarray(columns[c])
        if v.dtype.kind in "SU" or v.dtype == object:
            v = np.array([str(x.decode() if isinstance(x, bytes) else x).strip() for x in v])
        return v

    def ev(node):
        if isinstance(node, ast.BoolOp):
            vals = [np.asarray(ev(v), bool) for v in node.values]
            f = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = vals[0]
            for v in vals[1:]:
                out = f(out, v)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return np.logical_not(np.asarray(ev(node.operand), bool))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return np.negative(ev(node.operand))
        if isinstance(node, ast.Compare):
            left, out = ev(node.left), None
            for op, right in zip(node.ops, node.comparators):
                if type(op) not in _CUT_OPS:
                    break
                r = ev(right)
                with np.errstate(invalid="ignore"):
                    m = _CUT_OPS[type(op)](left, r)
                out = m if out is None else np.logical_and(out, m)
                left = r
            else:
                return out
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return _ARITH[type(node.op)](ev(node.left), ev(node.right))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "abs" and len(node.args) == 1 and not node.keywords):
            return np.abs(ev(node.args[0]))
        if isinstance(node, ast.Name):
            return col(node.id)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        raise RecipeError(f"{origin}: targets.where {where!r}: {ast.unparse(node)!r} is not "
                          "allowed; use column names, numbers, comparisons, and/or/not, "
                          "+ - * / and abs()")

    mask = np.asarray(ev(tree.body))
    if mask.dtype != bool or mask.shape != (len(next(iter(columns.values()))),):
        raise RecipeError(f"{origin}: targets.where {where!r}: not a condition on the rows "
                          "(compare a column with a value, e.g. 'Signif_Avg > 30')")
    return mask


def select_targets(catalog, where: str, limit: int | None = None, *, base=None,
                   origin: str = "recipe") -> list[tuple[str, float, float]]:
    """``(Source_Name, ra, dec)`` of the sources of ``catalog`` (a name such as 4FGL-DR4,
    or a file) passing ``where``, the most significant (``Signif_Avg``) first, at most
    ``limit``."""
    from ..io.catalog import read_catalog_table, resolve_catalog

    table = read_catalog_table(resolve_catalog(catalog, base=base))
    cols = table.columns
    mask = _eval_cut(where, cols, origin)
    idx = np.flatnonzero(mask)
    if "Signif_Avg" in cols:
        sig = np.asarray(cols["Signif_Avg"], float)[idx]
        idx = idx[np.argsort(np.where(np.isfinite(sig), -sig, np.inf), kind="stable")]
    if limit:
        idx = idx[:int(limit)]
    names = [str(v.decode() if isinstance(v, bytes) else v).strip()
             for v in np.asarray(cols["Source_Name"])[idx]]
    ra = np.asarray(cols["RAJ2000"], float)[idx]
    dec = np.asarray(cols["DEJ2000"], float)[idx]
    return [(n, float(a), float(d)) for n, a, d in zip(names, ra, dec)]


def _centre(ra: float, dec: float) -> dict:
    return {"selection": {"ra": float(ra), "dec": float(dec), "glon": None, "glat": None,
                          "target": None},
            "targets": {"names": None, "catalog": None, "where": None, "max": None}}


def expand_regions(recipe) -> list[RegionSpec]:
    """The regions of one recipe file: itself, or one per target of its ``targets``
    section.  Raises :class:`RecipeError` naming every target no catalog holds."""
    from .recipe import load_recipe

    path = Path(recipe)
    stem = path.stem if path.suffix in (".yaml", ".yml") else path.name
    if not has_targets(path):
        return [RegionSpec(stem, path)]
    rec = load_recipe(path)
    t = rec.options[0].targets
    base = path.resolve().parent
    cats = ([t.catalog] if t.catalog else []) + list(rec.options[0].model.catalogs or ())
    out: list[RegionSpec] = []
    if t.names:
        from ..errors import ModelError
        from ..model.catalog import find_target

        if not cats:
            raise RecipeError(f"{path}: targets.names: resolving names needs a catalog; give "
                              "targets.catalog or model.catalogs (e.g. 4FGL-DR4)")
        bad = []
        for name in t.names:
            try:
                m = find_target(name, cats, base=base)
            except ModelError as exc:
                bad.append((name, str(exc).replace(f"selection.target {name!r}: ", "")
                            .replace(" or give selection.ra/dec", "")))
                continue
            out.append(RegionSpec(region_name(name), path, _centre(m.ra, m.dec)))
        if bad:
            names = ", ".join(repr(n) for n, _ in bad)
            raise RecipeError(f"{path}: targets.names: {len(bad)} unknown source(s): {names} "
                              f"(first: {bad[0][1]})")
    if t.where:
        if not t.catalog:
            raise RecipeError(f"{path}: targets.where {t.where!r} needs targets.catalog "
                              "(e.g. 4FGL-DR4)")
        for n, ra, dec in select_targets(t.catalog, t.where, t.max, base=base,
                                         origin=str(path)):
            out.append(RegionSpec(region_name(n), path, _centre(ra, dec)))
        if not out:
            raise RecipeError(f"{path}: targets.where {t.where!r}: no source of "
                              f"{t.catalog} passes the cut")
    _check_unique([(r.name, str(path)) for r in out])
    return out


# ------------------------------------------------------------------ the running ----------
def _run_region(item):
    """Pass 2 of one region, on a worker (or here): its recipe, its data products found
    in the store.  Returns {task name: status} and the seconds."""
    from .recipe import load_recipe
    from .run import run_recipe

    path, overrides, force, verbose = item
    t0 = time.monotonic()
    rec = load_recipe(path, **overrides)
    states = run_recipe(rec, scheduler=None, force=force, verbose=verbose,
                        summary=verbose)
    return {n: s.status for n, s in states.items()}, time.monotonic() - t0


def _prefixed(tasks, name: str):
    from .executor import Task

    return [Task(f"{name}/{t.name}", t.step, t.params,
                 {r: f"{name}/{d}" for r, d in t.inputs.items()}, t.files) for t in tasks]


def run_many(recipes, outdir, *, scheduler=None, client=None, force=(), verbose=True,
             stream=None) -> list[RoiOutcome]:
    """Run every region of ``recipes`` into ``outdir/<name>`` (see the module docstring);
    returns one :class:`RoiOutcome` per region, in order.  ``client``: a Dask client to use
    instead of the one ``scheduler`` names.  Interrupts propagate."""
    from .._parallel import ordered_map
    from .analysis_steps import ANALYSIS_STEPS
    from .executor import Executor, estimate_memory
    from .plan import plan_tasks
    from .preflight import check_data
    from .recipe import load_recipe
    from .run import _given_client, dask_client

    stream = stream if stream is not None else sys.stderr
    recipes = [Path(r) for r in recipes]
    roi_names(recipes)                                  # one sub-folder per recipe file
    regions: list[RegionSpec] = []
    for r in recipes:
        regions.extend(expand_regions(r))             # unknown targets: stop here
    _check_unique([(g.name, str(g.recipe)) for g in regions])
    root = Path(outdir).expanduser().resolve()
    shared = root / ".store"
    out: dict[str, RoiOutcome] = {}
    loaded = {}
    for g in regions:                                   # every recipe checked before any work
        fio = {"outdir": str(root / g.name)}
        if not _own_cachedir(g.recipe):
            fio["cachedir"] = str(shared)
        ov = {**g.overrides, "fileio": fio}
        t0 = time.monotonic()
        try:
            rec = load_recipe(g.recipe, **ov)
            tasks = plan_tasks(rec)                     # every input file exists
            check_data(rec)                             # the selection lies within the data
            steps = {n for n, _ in rec.steps if n in ANALYSIS_STEPS}
            known = {t.step for t in tasks} | {t.name for t in tasks} | steps
            badf = [f for f in force if f not in known]
            if badf:
                raise RecipeError(f"--force {', '.join(badf)}: not a step or product of "
                                  f"this recipe; known: {', '.join(sorted(known))}")
            loaded[g.name] = (g, rec, tasks, ov, steps)
        except Exception as exc:                        # noqa: BLE001 -- recorded, the rest run
            out[g.name] = RoiOutcome(g.name, str(g.recipe), root / g.name, "failed",
                                     time.monotonic() - t0, exc)
    phase_a: dict[str, dict] = {n: {} for n in loaded}
    with (dask_client(scheduler) if client is None else _given_client(client)) as client:
        root.mkdir(parents=True, exist_ok=True)     # a bad --scheduler leaves nothing
        # pass 1: the data products of every region sharing the store, one graph
        merged, owner = [], {}
        for n, (g, rec, tasks, ov, steps) in loaded.items():
            if ov["fileio"].get("cachedir") == str(shared):
                for t in _prefixed(tasks, n):
                    merged.append(t)
                    owner[t.name] = n
        t_a = time.monotonic()
        if merged:
            if verbose:
                print(f"== data products of {len(set(owner.values()))} regions "
                      f"({len(merged)} tasks, shared ones made once)", file=stream)
            fa = set(force) | {f"{n}/{f}" for n in loaded for f in force}
            ex = Executor(root / ".plan", shared, client=client, force=fa, verbose=verbose,
                          stream=stream, keep_going=True)
            states = ex.run(merged)
            for name, st in states.items():
                n = owner[name]
                phase_a[n][name[len(n) + 1:]] = (st.status, st.seconds)
                if st.status == "failed" and n not in out:
                    out[n] = RoiOutcome(n, str(loaded[n][0].recipe), root / n, "failed",
                                        0.0, st.error)
        secs_a = time.monotonic() - t_a
        # pass 2: each region's recipe, one task per region
        todo = [n for n in loaded if n not in out]
        items = []
        for n in todo:
            g, rec, tasks, ov, steps = loaded[n]
            fb = tuple(f for f in force if f in steps) if ov["fileio"].get("cachedir") == \
                str(shared) else tuple(force)
            items.append((g.recipe, ov, fb, verbose and client is None))
        mem = {id(it): max([estimate_memory(t) for t in loaded[n][2]] or [0])
               for n, it in zip(todo, items)}

        def said(i, item, res):
            n = todo[i]
            if not verbose:
                return
            if isinstance(res, BaseException):
                print(f"== region {n}: failed: {res}", file=stream)
            else:
                print(f"== region {i + 1}/{len(todo)}: {n} done in {res[1]:.2f} s",
                      file=stream)

        if verbose and todo:
            print(f"== {len(todo)} regions: their steps"
                  + (" on the cluster" if client is not None else ""), file=stream)
        results = ordered_map(client, _run_region, items, errors="return", on_result=said,
                              memory=lambda it: mem[id(it)], name="fermixr-region")
        for n, res in zip(todo, results):
            g = loaded[n][0]
            if isinstance(res, BaseException):
                out[n] = RoiOutcome(n, str(g.recipe), root / n, "failed", 0.0, res)
                continue
            statuses, secs = res
            statuses = _record_pass1(root / n, phase_a[n], statuses)
            share = secs_a / max(1, len(todo))
            out[n] = RoiOutcome(n, str(g.recipe), root / n, "done", secs + share,
                                states=statuses)
    return [out[g.name] for g in regions]


def _record_pass1(run_dir: Path, first: dict, statuses: dict) -> dict:
    """The region's ``run.json`` and statuses with what pass 1 did for its data products
    (computed, shared with another region, cached) instead of pass 2's "cached"."""
    statuses = dict(statuses)
    for name, (st, _) in first.items():
        if name in statuses:
            statuses[name] = st
    manifest = run_dir / "run.json"
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return statuses
    for t in doc.get("tasks", []):
        if t["name"] in first:
            t["status"], t["seconds"] = first[t["name"]][0], round(first[t["name"]][1], 3)
    tmp = manifest.with_name(f".run.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, manifest)
    return statuses
