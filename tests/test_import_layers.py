"""The import contract: no import cycles, and each part of the package imports only its own layer or
those below it (every import counts, including those inside functions)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monai_attn"

#: Top-level modules and packages of monai_attn, lowest layer first.
LAYERS: list[set[str]] = [
    {"errors", "quiet", "lazy_exports", "wording", "label_names"},
    {"geometry", "networks", "losses", "io"},
    {"bundle", "datasets", "dataset_preparation", "synthetic", "qc"},
    {"transforms", "fundus", "fundus_qc"},
    {"presets", "evaluation"},
    {"inference"},
    {"training"},
    {"cli", "commands"},
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (relative imports resolved)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_graph_sees_function_level_imports():
    graph = import_graph()
    assert "monai_attn.inference.outputs" in graph["monai_attn.inference.stages"]  # imported inside a method
    assert "monai_attn.bundle.lookup" in graph["monai_attn.commands.segment"]


def test_no_module_imports_itself_through_others():
    order = graphlib.TopologicalSorter(import_graph())
    try:
        order.prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_each_layer_imports_only_itself_and_below():
    layer_of = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    tops = {_top(m) for m in _modules()} - {""}
    assert tops == set(layer_of), f"modules without a layer: {sorted(tops - set(layer_of))}"
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items() if _top(module)
        for target in targets if _top(target) and layer_of[_top(target)] > layer_of[_top(module)]
    )
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_package_level_graph_has_no_cycle():
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        packages.setdefault(_top(module), set()).update(_top(t) for t in targets if _top(t) != _top(module))
    try:
        graphlib.TopologicalSorter(packages).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"package cycle: {' -> '.join(err.args[1])}")
