"""The package's layering (DESIGN.md section 1), read from the import statements of every
module: a layer imports only itself, layers to its left and the base modules; kernels
import only numpy, numba and the numba policy; compute layers draw nothing."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "fermixr"
ORDER = ["io", "select", "irf", "exposure", "model", "srcmap", "likelihood", "simulate",
         "fit", "estimators", "plot", "engine", "api", "cli"]
BASE = {"errors", "conventions", "geom", "_jit", "_parallel", "_version", "__init__"}
COMPUTE = ORDER[:ORDER.index("fit") + 1]
KERNEL_OK = {"numpy", "numba", "math", "types", "__future__"}
# known imports against the order, each for a reason
EXCEPTIONS: set = set()   # none left: every import follows the order


def _imports(path: Path):
    """(module, kind, target) of every import in ``path``: kind 'fermixr' (target dotted
    below fermixr) or 'ext' (top-level package)."""
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    module = ".".join(parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                tail = node.module.split(".") if node.module else [node.names[0].name]
                yield module, "fermixr", ".".join(base + tail)
            elif node.module.startswith("fermixr"):
                yield module, "fermixr", node.module[len("fermixr."):]
            else:
                yield module, "ext", node.module.split(".")[0]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fermixr."):
                    yield module, "fermixr", a.name[len("fermixr."):]
                else:
                    yield module, "ext", a.name.split(".")[0]


def _all_imports():
    return [imp for f in sorted(PKG.rglob("*.py")) for imp in _imports(f)]


def test_the_scan_sees_the_package():
    found = _all_imports()
    assert len({m for m, _, _ in found}) > 60
    assert ("likelihood.dispersed", "fermixr", "likelihood._dispersed_kernels") in found
    assert ("likelihood._dispersed_kernels", "fermixr", "likelihood._kernels") in found
    assert ("engine.roi_output", "fermixr", "plot") in found
    assert ("plot.roi", "ext", "numpy") in found


def test_layers_import_only_to_their_left():
    bad = []
    for mod, kind, tgt in _all_imports():
        me, to = mod.split(".")[0], tgt.split(".")[0]
        if kind != "fermixr" or me not in ORDER or to in BASE or to == me:
            continue
        if to not in ORDER:
            bad.append((mod, tgt, "unknown layer"))
        elif ORDER.index(to) > ORDER.index(me) and (mod, to) not in EXCEPTIONS:
            bad.append((mod, tgt))
    assert bad == []


def test_kernels_import_only_numpy_numba_the_jit_policy_and_kernels():
    bad = []
    for mod, kind, tgt in _all_imports():
        if not mod.endswith("_kernels"):
            continue
        if (kind == "fermixr" and tgt != "_jit" and not tgt.endswith("_kernels")) or \
                (kind == "ext" and tgt not in KERNEL_OK):
            bad.append((mod, tgt))
    assert bad == []


def test_compute_layers_do_not_plot_or_touch_zarr():
    bad = [(m, t) for m, k, t in _all_imports()
           if k == "ext" and m.split(".")[0] in COMPUTE
           and (t == "matplotlib" or (t == "zarr" and not m.startswith("io.")))]
    assert bad == []
    # and the plot layer draws from arrays and geometries only
    bad = [(m, t) for m, k, t in _all_imports()
           if m.startswith("plot.") and k == "fermixr" and t.split(".")[0] not in BASE | {"plot"}]
    assert bad == []


def test_no_exceptions_to_the_order_are_left():
    # the recipe's analysis steps run on the analysis state and the estimators, not on the
    # facade: nothing under engine imports api
    assert not any(m.startswith("engine") and t.startswith("api")
                   for m, k, t in _all_imports() if k == "fermixr")
