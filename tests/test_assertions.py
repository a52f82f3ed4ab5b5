"""Every assertion in the tests is checked: no helper hidden behind ``and``/``or``, no assert on a tuple or a
literal (always true), no assert after the statement that raises inside ``pytest.raises`` (never reached)."""

import ast
from pathlib import Path

TESTS = Path(__file__).parent
_LITERALS = (ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Constant, ast.JoinedStr)


def _helper_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name if name.startswith("assert_") else None
    return None


def _unreached_in_raises(node: ast.With) -> list[int]:
    """Asserts after the first statement of a ``with pytest.raises(...)`` block: the raise skips them."""
    raises = any(
        isinstance(i.context_expr, ast.Call)
        and isinstance(i.context_expr.func, ast.Attribute)
        and i.context_expr.func.attr == "raises"
        for i in node.items
    )
    return [s.lineno for s in node.body[1:] if isinstance(s, ast.Assert)] if raises else []


def unchecked_assertions(source: str) -> list[int]:
    """Line numbers of assertions that can never fail (see the module docstring)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BoolOp) and any(_helper_name(v) for v in node.values):
            lines.append(node.lineno)
        if isinstance(node, ast.Assert) and isinstance(node.test, _LITERALS):
            lines.append(node.lineno)
        if isinstance(node, ast.With):
            lines.extend(_unreached_in_raises(node))
    return sorted(lines)


def test_the_checker_finds_each_kind_of_assertion_that_cannot_fail():
    source = (
        "assert_png(a) and assert_png(b)\n"  # 1: the second is never checked
        "assert (x == 1, 'message')\n"  # 2: a tuple is always true
        "assert_png(a)\n"
        "assert x and y\n"
        "with pytest.raises(ValueError):\n"
        "    f()\n"
        "    assert g()\n"  # 7: never reached
        "with pytest.warns(UserWarning):\n"
        "    f()\n"
        "    assert g()\n"
        "assert [x]\n"  # 11: a non-empty list is always true
    )
    assert unchecked_assertions(source) == [1, 2, 7, 11]


def test_no_test_has_an_assertion_that_cannot_fail():
    found = {
        f"{path.relative_to(TESTS)}:{line}"
        for path in TESTS.rglob("*.py")
        for line in unchecked_assertions(path.read_text())
    }
    assert not found, f"these assertions can never fail: {sorted(found)}"
