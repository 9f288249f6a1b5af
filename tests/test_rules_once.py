"""Each rule of the runtime's settings is written once: a strength is parsed by
core.strength.parse_strength alone, and only core.strength.checked_strength refuses a number for a
model without the strength input. A second parser or a second copy of their messages elsewhere
in enhance_edge/ fails here, naming the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "enhance_edge"
HOME = RUNTIME / "core" / "strength.py"  # where the strength rules live
# What only HOME may say: parse_strength's and checked_strength's messages.
MESSAGES = ("from 0 to 1", "has no strength control")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants in ``tree`` (they may describe a rule)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def second_strength_rules(source: str) -> list[tuple[int, str]]:
    """(line, what) of each strength rule in ``source``: float() of anything named strength, or
    a string (not a docstring; f-strings' parts too) with one of MESSAGES."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"
                and any("strength" in ast.unparse(arg).lower() for arg in node.args)):
            found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found += [(node.lineno, repr(message)) for message in MESSAGES if message in node.value]
    return found


def test_the_check_finds_a_second_parser_and_a_copied_message():
    source = '''
def parse(value):
    """A number from 0 to 1 (a docstring may say so)."""
    level = float(form["strength"])
    if not 0 <= level <= 1:
        raise ValueError(f"strength must be from 0 to 1, got {level}")
    return float(strength_text), float(width)
'''
    assert sorted(line for line, _ in second_strength_rules(source)) == [4, 6, 7]


def test_strength_is_parsed_and_refused_in_one_place():
    found = [f"{path.relative_to(ROOT)}:{line}: {what}" for path in sorted(RUNTIME.rglob("*.py")) if path != HOME
             for line, what in second_strength_rules(path.read_text())]
    assert found == [], "a second strength rule (core/strength.py has the one):\n" + "\n".join(found)


def test_the_rules_home_has_them():
    assert {what for _, what in second_strength_rules(HOME.read_text())} >= {repr(message) for message in MESSAGES}
