"""MkDocs hook: one API reference page per package named in the nav, generated from its docstrings.

A nav entry ``- lamina.text: api/text.md`` under "API reference" is all a package needs: the page is made here,
in memory, as the mkdocstrings directive ``::: lamina.text`` under a title. Nothing is written to ``docs/``.
"""

from __future__ import annotations

from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

API_DIR = "api/"


def api_entries(nav: list[Any]) -> dict[str, str]:
    """The ``{path: module}`` of every nav entry whose path is under ``api/``, the module being its title."""
    found: dict[str, str] = {}
    for entry in nav:
        if not isinstance(entry, dict):
            continue
        for title, value in entry.items():
            if isinstance(value, list):
                found.update(api_entries(value))
            elif isinstance(value, str) and value.startswith(API_DIR):
                found[value] = title
    return found


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add a generated page for each API entry of the nav that has no file of its own."""
    for path, module in api_entries(config.nav or []).items():
        if files.get_file_from_path(path) is None:
            page = f"# `{module}`\n\n::: {module}\n"
            files.append(File.generated(config, path, content=page))
    return files
