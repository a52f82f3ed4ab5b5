"""Data set promises: real images land on disk once, exactly, and downloads are checked or fail saying what to do."""

import hashlib
import io
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lamina.datasets import (
    MARKER,
    SOLAR_CELL_LABELS,
    DownloadError,
    cache_dir,
    download,
    file_sha256,
    mnist_sample,
    solar_cells,
)
from lamina.vision import PILImageBW


@pytest.fixture(scope="session")
def solar_root(tmp_path_factory) -> Path:
    """The solar cells written once per test session."""
    return solar_cells(tmp_path_factory.mktemp("cache"))


def _split_files(root: Path, split: str) -> dict[int, Path]:
    return {int(p.stem): p for p in (root / split).glob("*/*.png")}


def test_mnist_sample_has_4000_train_and_1000_valid_pngs_equal_to_the_arrays(mnist_root, mnist):
    for split, n in (("train", 4000), ("valid", 1000)):
        files = _split_files(mnist_root, split)
        assert sorted(files) == list(range(n))
        x, y = mnist[f"x_{split}"], mnist[f"y_{split}"]
        for i, path in files.items():
            assert int(path.parent.name) == y[i], path
            assert np.array_equal(PILImageBW.create(path).to_tensor()[0].numpy(), x[i]), path
    per_digit = [len(list((mnist_root / "train" / str(d)).glob("*.png"))) for d in range(10)]
    assert per_digit == [400] * 10


def test_mnist_sample_is_written_once(mnist_root):
    before = {p: p.stat().st_mtime_ns for p in (mnist_root / "valid").glob("*/*.png")}
    assert mnist_sample(mnist_root.parent) == mnist_root
    assert {p: p.stat().st_mtime_ns for p in (mnist_root / "valid").glob("*/*.png")} == before


def test_a_half_written_folder_is_rebuilt(tmp_path):
    root = solar_cells(tmp_path)
    (root / MARKER).unlink()  # as if the process had died before finishing
    for path in sorted((root / "images").glob("*.png"))[:100]:
        path.unlink()
    (root / "images" / "stray.tmp").write_text("left over")
    assert solar_cells(tmp_path) == root
    assert (root / MARKER).is_file() and not (root / "images" / "stray.tmp").exists()
    assert len(list((root / "images").glob("*.png"))) == 2624
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_solar_cells_are_2624_real_images_in_4_classes(solar_root):
    labels = pd.read_csv(solar_root / "labels.csv")
    assert list(labels.columns) == ["fname", "proba", "kind", "label"]
    assert len(labels) == 2624 and len(list((solar_root / "images").glob("*.png"))) == 2624
    assert sorted(labels["label"].unique()) == sorted(SOLAR_CELL_LABELS)
    assert set(labels["kind"]) == {"mono", "poly"}
    grade = (labels["proba"] * 3).round().astype(int)
    assert (labels["label"] == [SOLAR_CELL_LABELS[g] for g in grade]).all()
    assert labels["label"].value_counts()["functional"] == 1508
    first = PILImageBW.create(solar_root / labels["fname"][0])
    assert first.size == (300, 300) and first.to_tensor().float().std() > 10  # a photo, not a blank


def test_cache_dir_uses_base(tmp_path):
    assert cache_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()


def _no_network(*args, **kwargs):
    raise AssertionError("the network was used")


def test_download_uses_a_file_already_in_place_without_the_network(tmp_path, monkeypatch):
    placed = cache_dir(tmp_path) / "downloads" / "weights.bin"
    placed.parent.mkdir()
    placed.write_bytes(b"by hand")
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    digest = hashlib.sha256(b"by hand").hexdigest()
    assert download("http://127.0.0.1:9/weights.bin", digest, base=tmp_path) == placed


def test_download_offline_names_the_url_and_where_to_put_the_file(tmp_path):
    with pytest.raises(DownloadError) as info:
        download("http://127.0.0.1:9/x.tgz", "0" * 64, base=tmp_path, timeout=2)
    message = str(info.value)
    assert "cannot download http://127.0.0.1:9/x.tgz" in message
    assert f"put the file at {tmp_path / 'downloads' / 'x.tgz'}" in message and "0" * 64 in message
    assert list((tmp_path / "downloads").iterdir()) == []


def test_download_with_a_wrong_checksum_deletes_the_file_and_says_so(tmp_path):
    src = tmp_path / "src" / "data.csv"
    src.parent.mkdir()
    src.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"has SHA-256 [0-9a-f]{64}, expected f+; the partial file .* was deleted"):
        download(src.as_uri(), "f" * 64, base=tmp_path / "cache")
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []
    good = download(src.as_uri(), file_sha256(src), base=tmp_path / "cache")
    assert good.read_text() == "a,b\n1,2\n"


def _archive(path: Path, files: dict[str, bytes]) -> Path:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            for name, data in files.items():
                z.writestr(name, data)
        return path
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["pack.tgz", "pack.zip"])
def test_download_extracts_archives_once(tmp_path, name):
    src = _archive(tmp_path / name, {"pack/a.txt": b"alpha", "pack/sub/b.txt": b"beta"})
    folder = download(src.as_uri(), file_sha256(src), base=tmp_path / "cache", extract=True)
    assert folder == tmp_path / "cache" / "downloads" / "pack"
    assert (folder / "pack" / "sub" / "b.txt").read_bytes() == b"beta"
    digest = file_sha256(src)
    src.unlink()  # the cached archive and the folder are all a second call needs
    assert download(src.as_uri(), digest, base=tmp_path / "cache", extract=True) == folder


def test_zip_entries_pointing_outside_the_folder_are_refused(tmp_path):
    src = _archive(tmp_path / "evil.zip", {"../escape.txt": b"x"})
    with pytest.raises(ValueError, match=r"refusing to extract '\.\./escape\.txt'"):
        download(src.as_uri(), file_sha256(src), base=tmp_path / "cache", extract=True)
    assert not (tmp_path / "cache" / "escape.txt").exists()


def test_download_offline_with_a_wrong_file_in_place_says_to_replace_it(tmp_path):
    placed = cache_dir(tmp_path) / "downloads" / "x.tgz"
    placed.parent.mkdir()
    placed.write_bytes(b"old version")
    with pytest.raises(DownloadError, match=r"the file there now has SHA-256 [0-9a-f]{64}: replace it"):
        download("http://127.0.0.1:9/x.tgz", "0" * 64, base=tmp_path, timeout=2)
    assert placed.read_bytes() == b"old version"
