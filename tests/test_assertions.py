"""Every assertion in the tests is checked: no helper hidden behind ``and``/``or``, no assert on a tuple."""

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _helper_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name if name.startswith("assert_") else None
    return None


def short_circuited_or_tuple_asserts(source: str) -> list[int]:
    """Line numbers where an ``assert_*`` helper sits inside ``and``/``or`` or an ``assert`` tests a tuple."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BoolOp) and any(_helper_name(v) for v in node.values):
            lines.append(node.lineno)
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Tuple):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_checker_finds_a_helper_behind_and_and_an_assert_on_a_tuple():
    source = "assert_png(a) and assert_png(b)\nassert (x == 1, 'message')\nassert_png(a)\nassert x and y\n"
    assert short_circuited_or_tuple_asserts(source) == [1, 2]


def test_no_test_hides_an_assertion_where_it_never_runs():
    found = {
        f"{path.relative_to(TESTS)}:{line}"
        for path in TESTS.rglob("*.py")
        for line in short_circuited_or_tuple_asserts(path.read_text())
    }
    assert not found, f"these assertions can never fail: {sorted(found)}"
