"""The tutorial notebooks and the site's nav: what can be checked without executing them.

The notebooks are executed by the docs build (`mkdocs build --strict`, the docs stage of `.ci/run`); these tests keep
them diff-friendly (no committed outputs) and check that every name a notebook takes from a `lamina.<app>.all`
import is there.
"""

import ast
import builtins
import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "docs" / "tutorials").glob("*.ipynb"))
MKDOCS = (ROOT / "mkdocs.yml").read_text()


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def free_names(code: str) -> set[str]:
    """Names the code reads but never binds itself (by assignment, def, class, import or parameter)."""
    tree = ast.parse(code)
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store | ast.Del) else read).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return read - bound - set(dir(builtins))


def test_there_is_a_tutorial_for_each_application_and_topic():
    names = {p.stem for p in NOTEBOOKS}
    assert {"vision", "segmentation", "tabular", "collab", "deployment", "callback", "datablock"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_committed_notebook_has_no_outputs_and_runs_on_python(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    dirty = [i for i, c in enumerate(code_cells(path)) if c["outputs"] or c["execution_count"] is not None]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; clear them (outputs come from the docs build)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_name_a_notebook_takes_from_an_all_import_is_there(path):
    code = "\n".join(source(c) for c in code_cells(path))
    star = re.findall(r"^from (lamina\.\w+\.all) import \*$", code, flags=re.M)
    assert len(star) == 1, f"{path.name} should start from one `from lamina.<app>.all import *`"
    missing = free_names(code) - set(importlib.import_module(star[0]).__all__)
    assert not missing, f"{path.name} uses {sorted(missing)}, which {star[0]} does not export"


def test_every_tutorial_is_in_the_site_nav():
    assert [p.name for p in NOTEBOOKS if f"tutorials/{p.name}" not in MKDOCS] == []


def test_every_lamina_package_has_an_api_reference_page():
    packages = sorted(p.parent.name for p in (ROOT / "lamina").glob("*/__init__.py"))
    missing = [p for p in packages if f"- lamina.{p}: api/{p}.md" not in MKDOCS]
    assert not missing, f"add `- lamina.<name>: api/<name>.md` under 'API reference' in mkdocs.yml for {missing}"


def test_free_names_ignores_what_the_code_binds_itself():
    code = "import numpy as np\nx = np.ones(2)\ndef f(a):\n    return a + x + vision_learner\nprint(f(1), Path)"
    assert free_names(code) == {"vision_learner", "Path"}
