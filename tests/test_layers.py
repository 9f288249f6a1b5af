"""The import graph points one way: the runtime (enhance_edge/) <- train/ <- export/ <- benchmarks/.

A module may import its own layer and those below it, never one above: the runtime installs and
runs without the training stack, and each layer can be read without the ones built on it.
Imports inside functions count too (a lazy import is still an arrow).
"""

from __future__ import annotations

import ast
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
    ("from enhance_edge import benchmarks", "enhance_edge.web", ["enhance_edge.benchmarks"]),
    ("from ..train.config import GeneratorConfig\nfrom enhance_edge.model import open_session\nimport numpy",
     "enhance_edge.export", []),
])
def test_an_arrow_up_is_found_wherever_it_is_written(source, package, expected):
    assert [module for _, module in arrows_up(source, package)] == expected
