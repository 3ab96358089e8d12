"""The house's size rules (issue #22): no module under ``savs/`` over 600 lines, no function over 80, so each stays a
room one can read whole."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in ``source`` longer than ``limit`` lines, decorators excluded."""
    functions = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    sized = [(n.name, n.end_lineno - n.lineno + 1) for n in functions]
    return [(name, lines) for name, lines in sized if lines > limit]


def test_no_module_is_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "savs").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}  # fmt: skip
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_the_limit():
    long = {f"{p.relative_to(ROOT)}:{name}": n for p in sorted((ROOT / "savs").rglob("*.py"))
            for name, n in long_functions(p.read_text())}  # fmt: skip
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_function_check_counts_lines():
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    assert long_functions(f"def f():\n{body}\n\ndef g():\n    pass\n") == [("f", 81)]
    indented = body.replace("\n", "\n    ")
    assert long_functions(f"class A:\n    def m(self):\n    {indented}\n", limit=81) == []
    assert long_functions(f"class A:\n    def m(self):\n    {indented}\n") == [("m", 81)]
