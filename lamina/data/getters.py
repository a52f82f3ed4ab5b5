"""Getters: find the items of a data set (files in folders) and read parts of one item (a label, a column).

File listings are sorted, so the same folder always gives the same items in the same order; hidden files and
folders (names starting with ``.``) are skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "ColReader",
    "FileGetter",
    "ImageGetter",
    "RegexLabeller",
    "get_files",
    "get_image_files",
    "image_extensions",
    "parent_label",
]

image_extensions: frozenset[str] = frozenset(
    {".bmp", ".gif", ".ico", ".jpe", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".tif", ".tiff", ".webp"}
)


def _normalize_extensions(extensions: Iterable[str] | str | None) -> set[str] | None:
    if extensions is None:
        return None
    exts = [extensions] if isinstance(extensions, str) else list(extensions)
    return {(e if e.startswith(".") else f".{e}").lower() for e in exts}


def _files_in(folder: Path, extensions: set[str] | None, recurse: bool) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(root) / f
            for f in files
            if not f.startswith(".") and (extensions is None or Path(f).suffix.lower() in extensions)
        ]
        if not recurse:
            break
    return found


def get_files(
    path: str | Path,
    extensions: Iterable[str] | str | None = None,
    recurse: bool = True,
    folders: Sequence[str] | None = None,
) -> list[Path]:
    """The files under ``path``, sorted, optionally only some extensions and some top-level folders.

    Args:
        path: the folder to list.
        extensions: keep files with these suffixes (``".npy"`` or ``"npy"``, any case); all files when ``None``.
        recurse: also list sub-folders, at any depth.
        folders: only look inside these sub-folders of ``path`` (e.g. ``["train"]``).

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ["b.txt", "a.TXT", "sub/c.txt", "sub/d.csv"]:
        ...     (root / name).parent.mkdir(exist_ok=True); _ = (root / name).write_text("x")
        >>> [p.relative_to(root).as_posix() for p in get_files(root, extensions=".txt")]
        ['a.TXT', 'b.txt', 'sub/c.txt']
        >>> [p.name for p in get_files(root, recurse=False)]
        ['a.TXT', 'b.txt']
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"get_files: {path} is not a folder: check the path of the data set")
    roots = [path / f for f in folders] if folders else [path]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"get_files: the folder {missing[0]} does not exist: check `folders`={list(folders or [])}"
        )
    exts = _normalize_extensions(extensions)
    return sorted(p for r in roots for p in _files_in(r, exts, recurse))


def get_image_files(path: str | Path, recurse: bool = True, folders: Sequence[str] | None = None) -> list[Path]:
    """The image files under ``path`` (by suffix, see ``image_extensions``), sorted.

    Args:
        path: the folder to list.
        recurse: also list sub-folders.
        folders: only look inside these sub-folders of ``path``.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ["1.png", "2.JPG", "notes.txt"]:
        ...     _ = (root / name).write_bytes(b"")
        >>> [p.name for p in get_image_files(root)]
        ['1.png', '2.JPG']
    """
    return get_files(path, extensions=image_extensions, recurse=recurse, folders=folders)


class FileGetter:
    """A ``get_items`` that lists the files under ``source / suffix`` (see :func:`get_files`).

    Args:
        suffix: a sub-path appended to the source folder.
        extensions: keep only these file suffixes.
        recurse: also list sub-folders.
        folders: only look inside these sub-folders.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()); (root / "data").mkdir()
        >>> _ = (root / "data" / "a.npy").write_bytes(b""); _ = (root / "data" / "b.txt").write_bytes(b"")
        >>> [p.name for p in FileGetter("data", extensions=[".npy"])(root)]
        ['a.npy']
    """

    def __init__(
        self,
        suffix: str = "",
        extensions: Iterable[str] | str | None = None,
        recurse: bool = True,
        folders: Sequence[str] | None = None,
    ) -> None:
        self.suffix, self.extensions, self.recurse, self.folders = suffix, extensions, recurse, folders

    def __call__(self, source: str | Path) -> list[Path]:
        return get_files(Path(source) / self.suffix, self.extensions, self.recurse, self.folders)

    def __repr__(self) -> str:
        return f"FileGetter(suffix={self.suffix!r}, extensions={self.extensions!r})"


class ImageGetter(FileGetter):
    """A ``get_items`` that lists the image files under ``source / suffix``.

    Args:
        suffix: a sub-path appended to the source folder.
        recurse: also list sub-folders.
        folders: only look inside these sub-folders.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()); _ = (root / "x.png").write_bytes(b"")
        >>> [p.name for p in ImageGetter()(root)]
        ['x.png']
    """

    def __init__(self, suffix: str = "", recurse: bool = True, folders: Sequence[str] | None = None) -> None:
        super().__init__(suffix, image_extensions, recurse, folders)

    def __repr__(self) -> str:
        return f"ImageGetter(suffix={self.suffix!r})"


def parent_label(path: str | Path) -> str:
    """The name of the folder holding the file (``mnist/7/12.png -> '7'``): labels from folder names.

    Examples:
        >>> parent_label("mnist/train/7/12.png")
        '7'
    """
    return os.path.basename(os.path.dirname(path))  # str or Path, without building a Path


class RegexLabeller:
    """A label read from a file path with a regular expression (its first group, or the whole match).

    Args:
        pat: the pattern, e.g. ``r"^([a-z_]+)_\\d+\\.jpg$"``.
        match: anchor the pattern at the start of the path (``re.match``); search anywhere when False.

    Examples:
        >>> RegexLabeller(r"([a-z]+)_\\d+\\.jpg$")("pets/great_pyrenees_12.jpg")
        'pyrenees'
        >>> RegexLabeller(r"([a-z]+)_\\d+\\.jpg$")("pets/readme.txt")
        Traceback (most recent call last):
        ...
        ValueError: RegexLabeller: the pattern '([a-z]+)_\\\\d+\\\\.jpg$' does not match the path 'pets/readme.txt'...
    """

    def __init__(self, pat: str, match: bool = False) -> None:
        self.pat, self.match = pat, match
        self._regex = re.compile(pat)

    def __call__(self, path: str | Path) -> str:
        text = Path(path).as_posix() if isinstance(path, Path) else str(path)
        found = (self._regex.match if self.match else self._regex.search)(text)
        if found is None:
            how = "from its start (match=True)" if self.match else "anywhere in it"
            raise ValueError(
                f"RegexLabeller: the pattern {self.pat!r} does not match the path {text!r} {how}: "
                "fix the pattern, or filter out files it should not label (e.g. get_files(extensions=...))"
            )
        return found.group(1) if found.groups() else found.group(0)

    def __repr__(self) -> str:
        return f"RegexLabeller({self.pat!r}, match={self.match})"


def _read_one(row: Any, col: str | int) -> Any:
    if isinstance(row, pd.Series):
        if col in row.index:
            return row[col]
        if isinstance(col, int) and 0 <= col < len(row):
            return row.iloc[col]
        available = list(row.index)[:20]
    else:
        try:
            return row[col]
        except (KeyError, IndexError, TypeError):
            available = list(row.keys())[:20] if hasattr(row, "keys") else []
    where = f"row {row.name}" if isinstance(row, pd.Series) else f"item {type(row).__name__}"
    raise KeyError(f"ColReader: column {col!r} is missing from {where} (columns: {available}): check `cols`")


class ColReader:
    """Read one or several columns of a DataFrame row, adding a prefix/suffix or splitting labels.

    Args:
        cols: a column name or position, or a list of them (then a list of values is returned).
        pref: prepended to the value (a folder ``Path`` gives a ``Path``, ``pref / f"{value}{suff}"``).
        suff: appended to the value.
        label_delim: split the (string) value into a list of labels on this separator; a missing value is ``[]``.

    Examples:
        >>> df = pd.DataFrame({"name": ["a", "b"], "tags": ["cat dog", "dog"]})
        >>> ColReader("name", pref="images/", suff=".png")(df.iloc[0]), ColReader("tags", label_delim=" ")(df.iloc[0])
        ('images/a.png', ['cat', 'dog'])
    """

    def __init__(
        self,
        cols: str | int | Sequence[str | int],
        pref: str | Path = "",
        suff: str = "",
        label_delim: str | None = None,
    ) -> None:
        self.cols = cols
        self._cols: list[str | int] = [cols] if isinstance(cols, (str, int)) else list(cols)
        if not self._cols:
            raise ValueError("ColReader needs at least one column name or position")
        self.pref, self.suff, self.label_delim = pref, suff, label_delim

    def _process(self, value: Any) -> Any:
        if isinstance(self.pref, Path):
            return self.pref / f"{value}{self.suff}"
        if self.pref or self.suff:
            return f"{self.pref}{value}{self.suff}"
        if self.label_delim is None:
            return value
        if not isinstance(value, str):
            return [] if value is None or (isinstance(value, float) and pd.isna(value)) else list(value)
        return [o for o in value.split(self.label_delim) if o]

    def __call__(self, row: Any) -> Any:
        values = [self._process(_read_one(row, c)) for c in self._cols]
        return values[0] if len(values) == 1 else values

    def __repr__(self) -> str:
        return f"ColReader({self.cols!r})"
