"""No function of the project is longer than MAX_LINES: a longer one is several steps that want names.
No function of the runtime takes more than MAX_PARAMETERS: more are settings that want one object
(core.upscale_settings.UpscaleSettings)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("enhance_edge", "train", "export", "benchmarks")
MAX_LINES = 80  # from the `def` line to the last line of the body, decorators not counted
MAX_PARAMETERS = 10  # self and cls not counted; *args and **kwargs one each
PARAMETER_FOLDERS = ("enhance_edge",)  # train/, export/ and benchmarks/ commands still take each option


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


def many_parameters(source: str) -> list[tuple[str, int]]:
    """(name, parameters) of every function and method in ``source`` that takes more than MAX_PARAMETERS."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            names = [arg.arg for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
                     if arg is not None]
            count = len([name for name in names if name not in ("self", "cls")])
            if count > MAX_PARAMETERS:
                found.append((node.name, count))
    return found


def test_the_parameter_check_counts_keywords_and_catch_alls_but_not_self():
    names = ", ".join(f"a{i}" for i in range(MAX_PARAMETERS - 2))
    assert many_parameters(f"def fits({names}, *args, **kwargs):\n    pass\n") == []
    assert many_parameters(f"class A:\n    def fits(self, {names}, b, *, c):\n        pass\n") == []
    assert many_parameters(f"def many({names}, b, *, c, d):\n    pass\n") == [("many", MAX_PARAMETERS + 1)]
    assert many_parameters(f"async def many({names}, b, c, **d):\n    pass\n") == [("many", MAX_PARAMETERS + 1)]


def test_no_runtime_function_takes_more_than_max_parameters():
    found = [f"{path.relative_to(ROOT)}: {name} ({count} parameters)" for folder in PARAMETER_FOLDERS
             for path in sorted((ROOT / folder).rglob("*.py")) for name, count in many_parameters(path.read_text())]
    assert found == [], "\n".join(found)
