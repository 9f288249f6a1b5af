"""No function of the project is longer than MAX_LINES: a longer one is several steps that want names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("enhance_edge", "train", "export", "benchmarks")
MAX_LINES = 80  # from the `def` line to the last line of the body, decorators not counted


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of every function and method in ``source`` longer than MAX_LINES."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_LINES]


def test_the_check_counts_functions_and_methods_without_their_decorators():
    def body(lines, indent):
        return "".join(f"{indent}x{i} = {i}\n" for i in range(lines))

    assert long_functions(f"def long():\n{body(MAX_LINES, '    ')}") == [("long", MAX_LINES + 1)]
    assert long_functions(f"class A:\n    def long(self):\n{body(MAX_LINES, ' ' * 8)}") == [("long", MAX_LINES + 1)]
    decorated = "@decorator\n" * 5 + f"def fits():\n{body(MAX_LINES - 1, '    ')}"
    assert long_functions(decorated) == []


def test_no_function_is_longer_than_max_lines():
    found = [f"{path.relative_to(ROOT)}: {name} ({lines} lines)" for folder in FOLDERS
             for path in sorted((ROOT / folder).rglob("*.py")) for name, lines in long_functions(path.read_text())]
    assert found == [], "\n".join(found)
