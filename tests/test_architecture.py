"""The package's shape: layered subpackages, no import cycle, no upward import.

The import graph is read from the source (``ast``), not from a running interpreter, so
every import counts: module level, inside functions, under ``TYPE_CHECKING``. Each module
belongs to one layer of :data:`LAYERS`; a module may import from its own layer and the
layers below it only. An import inside a function is allowed only where it keeps Keras
(and so TensorFlow) from loading with the importing module: its target must import Keras
at module level, and the line says so with the comment ``# Keras on demand``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cellcutter_nb"
#: Bottom to top. Top-level modules other than the package's own ``__init__`` /
#: ``__main__`` form the ground floor; a subpackage is one layer.
LAYERS: tuple[str, ...] = ("ground floor", "data", "prep", "core", "experiments", "app",
                           "entry points")
SUBPACKAGE_LAYER = {"data": 1, "prep": 2, "core": 3, "experiments": 4, "app": 5}
LAZY_MARK = "Keras on demand"
MAX_MODULE_LINES = 400
MAX_TRAIN_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["cellcutter_nb", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def layer(module: str) -> int:
    """Index in :data:`LAYERS` of a module of the package."""
    parts = module.split(".")
    if module in ("cellcutter_nb", "cellcutter_nb.__main__"):
        return len(LAYERS) - 1
    if len(parts) == 2 and parts[1] not in SUBPACKAGE_LAYER:
        return 0
    if parts[1] not in SUBPACKAGE_LAYER:
        raise KeyError(f"{module}: subpackage {parts[1]!r} has no layer; add it to LAYERS")
    return SUBPACKAGE_LAYER[parts[1]]


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The package modules an import statement names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    found = []
    for alias in node.names:
        for candidate in (f"{name}.{alias.name}", name):
            if candidate in MODULES:
                found.append(candidate)
                break
    return found


class _Imports(ast.NodeVisitor):
    """Every import of a package module, with whether it sits inside a function."""

    def __init__(self, module: str, lines: list[str]) -> None:
        self.module, self.lines, self.depth = module, lines, 0
        self.found: list[tuple[str, bool, str]] = []  # (target, in a function, source line)

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def _add(self, node: ast.Import | ast.ImportFrom) -> None:
        for target in _targets(self.module, node):
            if target != self.module and not self.module.startswith(target + "."):
                self.found.append((target, self.depth > 0, self.lines[node.lineno - 1]))

    visit_Import = visit_ImportFrom = _add


def _imports() -> dict[str, list[tuple[str, bool, str]]]:
    out = {}
    for module, path in MODULES.items():
        text = path.read_text()
        visitor = _Imports(module, text.splitlines())
        visitor.visit(ast.parse(text))
        out[module] = visitor.found
    return out


IMPORTS = _imports()


def _closure(start: str, module_level_only: bool = True) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for target, lazy, _ in IMPORTS[m]:
            if (not lazy or not module_level_only) and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


#: Modules that load Keras when imported: the backend and whatever imports it at module level.
KERAS_MODULES = {m for m in MODULES if m == "cellcutter_nb.backend"
                 or "cellcutter_nb.backend" in _closure(m)}


def test_every_module_has_a_layer():
    assert {m: LAYERS[layer(m)] for m in MODULES}  # raises for a module outside the layers


def test_no_import_cycle():
    edges = {m: {t for t, _, _ in found} for m, found in IMPORTS.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t] if t in path else [m, t]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])


def test_no_upward_import():
    upward = [f"{m} ({LAYERS[layer(m)]}) -> {t} ({LAYERS[layer(t)]})"
              for m, found in IMPORTS.items() for t, _, _ in found if layer(t) > layer(m)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_function_level_imports_only_keep_keras_lazy():
    bad = [f"{m}: {line.strip()}" for m, found in IMPORTS.items() for t, lazy, line in found
           if lazy and (t not in KERAS_MODULES or LAZY_MARK not in line)]
    assert not bad, (f"imports inside functions that do not keep Keras lazy (import at module "
                     f"level, or mark a Keras import with '# {LAZY_MARK}'):\n" + "\n".join(bad))


def test_plain_package_import_loads_no_keras():
    assert not _closure("cellcutter_nb") & KERAS_MODULES


def test_modules_and_training_steps_stay_small():
    long = {m: n for m, p in MODULES.items()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
    tree = ast.parse(MODULES["cellcutter_nb.core.train"].read_text())
    functions = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
                 if isinstance(n, ast.FunctionDef)}
    assert {f: n for f, n in functions.items() if n > MAX_TRAIN_FUNCTION_LINES} == {}


def test_the_checks_see_what_they_check():
    # the graph is not empty, the layers are populated and Keras is found where it lives
    assert sum(map(len, IMPORTS.values())) > 100
    assert {layer(m) for m in MODULES} == set(range(len(LAYERS)))
    assert {"cellcutter_nb.core.loss", "cellcutter_nb.core.train"} <= KERAS_MODULES
    assert "cellcutter_nb.data.synth" not in KERAS_MODULES
    assert layer("cellcutter_nb.app.cli") > layer("cellcutter_nb.experiments.paper")
