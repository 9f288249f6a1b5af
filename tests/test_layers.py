"""The import graph points one way: the runtime (enhance_edge/) <- train/ <- export/ <- benchmarks/.

A module may import its own layer and those below it, never one above: the runtime installs and
runs without the training stack, and each layer can be read without the ones built on it.
Imports inside functions count too (a lazy import is still an arrow).

Inside the runtime the same holds for its parts, lowest first: io/ (images, files) <- core/ (the
model, tiling, the Upscaler, the single-file path) <- eval/ (protocol, degradations, evaluation)
<- apps/ (the command line, the web page, the cluster). errors.py and the package's own
__init__.py (which imports its public names lazily) sit beside them all. And no runtime module
imports another that imports it back, however far round: a cycle at run time (imports under
``if TYPE_CHECKING:``, for annotations only, are not run and do not count there).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Source folder -> the package it installs as (pyproject.toml), lowest layer first.
LAYERS = {"enhance_edge": "enhance_edge", "train": "enhance_edge.train", "export": "enhance_edge.export",
          "benchmarks": "enhance_edge.benchmarks"}
PACKAGES = list(LAYERS.values())


def layer_of(module: str) -> int | None:
    """The layer (index in PACKAGES) a dotted module name belongs to; None outside the project."""
    found = [i for i, package in enumerate(PACKAGES) if module == package or module.startswith(package + ".")]
    return max(found) if found else None


def imported_modules(source: str, package: str) -> list[tuple[int, list[str]]]:
    """(line, absolute module names) of every import statement in ``source``, a module of
    ``package``; for `from X import name` both X and X.name (a name may be a submodule)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            base = ".".join(part for part in (base, node.module) if part)
            found.append((node.lineno, [base, *(f"{base}.{alias.name}" for alias in node.names)]))
    return found


def arrows_up(source: str, package: str) -> list[tuple[int, str]]:
    """(line, module) of each import in ``source``, a module of ``package``, into a layer above its own."""
    own = layer_of(package)
    found = []
    for line, names in imported_modules(source, package):
        above = [name for name in names if (layer_of(name) or 0) > own]
        found += [(line, above[0])] if above else []
    return found


def module_package(path: Path, folder: str) -> str:
    """The package a source file's module lives in, as installed: train/x.py -> enhance_edge.train."""
    parts = path.relative_to(ROOT / folder).parent.parts
    return ".".join((LAYERS[folder], *parts))


@pytest.mark.parametrize("folder", LAYERS)
def test_no_module_imports_a_layer_above_its_own(folder):
    sources = sorted((ROOT / folder).rglob("*.py"))
    assert sources, f"no Python files under {folder}/"
    found = [f"{path.relative_to(ROOT)}:{line} imports {module}" for path in sources
             for line, module in arrows_up(path.read_text(), module_package(path, folder))]
    assert found == []


@pytest.mark.parametrize("source, package, expected", [
    ("from ..benchmarks.timing import measure", "enhance_edge.export", ["enhance_edge.benchmarks.timing"]),
    ("def f():\n    from .train.config import TrainConfig", "enhance_edge", ["enhance_edge.train.config"]),
    ("import enhance_edge.export.quantize", "enhance_edge.train", ["enhance_edge.export.quantize"]),
    ("from enhance_edge import benchmarks", "enhance_edge.apps.web", ["enhance_edge.benchmarks"]),
    ("from ..train.config import GeneratorConfig\nfrom enhance_edge.core.model import open_session\nimport numpy",
     "enhance_edge.export", []),
])
def test_an_arrow_up_is_found_wherever_it_is_written(source, package, expected):
    assert [module for _, module in arrows_up(source, package)] == expected


# ---- inside the runtime ----

RUNTIME = "enhance_edge"
PARTS = ["io", "core", "eval", "apps"]  # lowest first; a part imports its own and those before it


def part_of(module: str) -> int | None:
    """The runtime part (index in PARTS) a dotted module name belongs to; -1 for the package itself and
    its top-level modules (errors), which any part may import; None outside the runtime."""
    names = module.split(".")
    if names[0] != RUNTIME or layer_of(module) != 0:
        return None
    return PARTS.index(names[1]) if len(names) > 1 and names[1] in PARTS else -1


def runtime_modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the runtime (a package by its __init__)."""
    modules = {}
    for path in sorted((ROOT / RUNTIME).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def arrows_across_parts(source: str, package: str) -> list[tuple[int, str]]:
    """(line, module) of each import in ``source``, a module of the runtime's ``package``, into a
    part above its own."""
    own = part_of(package)
    found = []
    for line, names in imported_modules(source, package):
        above = [name for name in names if (part_of(name) if part_of(name) is not None else -1) > own]
        found += [(line, above[0])] if above else []
    return found


def test_no_runtime_module_imports_a_part_above_its_own():
    found = []
    for module, path in runtime_modules().items():
        if module == RUNTIME:  # the package's lazy public names come from every part
            continue
        found += [f"{path.relative_to(ROOT)}:{line} imports {name}"
                  for line, name in arrows_across_parts(path.read_text(), package_of(module, path))]
    assert found == []


def run_time_imports(source: str, package: str) -> set[str]:
    """The modules ``source`` imports when it runs: every import but those under `if TYPE_CHECKING:`."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            node.body = [ast.Pass()]
    return {name for _, names in imported_modules(ast.unparse(tree), package) for name in names}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of ``graph`` (module -> modules it imports): its strongly connected components of
    more than one module, or of one that imports itself (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for after in sorted(graph.get(node, ())):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycle_between_runtime_modules():
    modules = runtime_modules()
    graph = {module: {name for name in run_time_imports(path.read_text(), package_of(module, path))
                      if name in modules and name != module}
             for module, path in modules.items()}
    assert import_cycles(graph) == []


@pytest.mark.parametrize("source, package, expected", [
    ("from ..apps.cli import main", "enhance_edge.core", ["enhance_edge.apps.cli"]),
    ("def f():\n    from ..eval import protocol", "enhance_edge.io", ["enhance_edge.eval"]),
    ("import enhance_edge.apps.web.service", "enhance_edge.eval", ["enhance_edge.apps.web.service"]),
    ("from .. import __version__\nfrom ..errors import ImageError\nfrom ..io.imageio import read_image",
     "enhance_edge.core", []),
    ("from ...core.upscaler import Upscaler\nfrom ...eval.protocol import score", "enhance_edge.apps.web", []),
])
def test_an_arrow_across_parts_is_found_wherever_it_is_written(source, package, expected):
    assert [module for _, module in arrows_across_parts(source, package)] == expected


def test_a_cycle_is_found_and_an_annotation_only_import_is_not_one():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .upscaler import Upscaler\n"
    assert "enhance_edge.core.upscaler" not in run_time_imports(source, "enhance_edge.core")
    assert "enhance_edge.core.upscaler" in run_time_imports("def f():\n    from .upscaler import Upscaler",
                                                            "enhance_edge.core")
