"""docs/vision.md shows a result a reader is glad to see, and the figures printed on the page are the ones it gets."""

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "vision.md"


def test_the_vision_page_trains_a_classifier_above_95_percent_and_prints_what_the_page_shows(tmp_path, monkeypatch):
    text = PAGE.read_text()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
            exec(compile(block, PAGE.name, "exec"), namespace)
    got = float(re.search(r"^accuracy ([\d.]+)%$", printed.getvalue(), flags=re.M).group(1))
    shown = float(re.search(r"# accuracy ([\d.]+)%", text).group(1))
    assert got >= 95.0, f"the page's classifier reaches only {got}%"
    assert abs(got - shown) <= 1.0, f"the page says {shown}% but running it gives {got}%: update the page"
    label, p = re.search(r"^(\S+) with p=([\d.]+)$", printed.getvalue(), flags=re.M).groups()
    assert label == "0" and float(p) >= 0.95  # the page's last line, as its comment says
