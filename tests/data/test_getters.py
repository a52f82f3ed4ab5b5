"""Promises of the getters: sorted, deterministic file listings; labels and columns read with clear errors."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lamina.data.getters import (
    ColReader,
    FileGetter,
    ImageGetter,
    RegexLabeller,
    get_files,
    get_image_files,
    parent_label,
)


@pytest.fixture
def digit_tree(tmp_path, mnist) -> Path:
    """Real MNIST digits as .npy and .png files in nested folders, plus a text file and hidden entries."""
    for digit, name in enumerate(["z/9.npy", "a/2.NPY", "a/b/c/1.npy", "top.npy"]):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        with open(tmp_path / name, "wb") as f:  # a file object keeps the upper-case suffix as written
            np.save(f, mnist["x_train"][digit])
    Image.fromarray(mnist["x_train"][4]).save(tmp_path / "a" / "digit.png")
    (tmp_path / "a" / "notes.txt").write_text("not data")
    (tmp_path / ".hidden").mkdir()
    np.save(tmp_path / ".hidden" / "x.npy", mnist["x_train"][5])
    np.save(tmp_path / "a" / ".skip.npy", mnist["x_train"][6])
    return tmp_path


def rel(paths, root):
    return [p.relative_to(root).as_posix() for p in paths]


def test_get_files_lists_every_file_sorted_recursing_and_skipping_hidden(digit_tree):
    files = get_files(digit_tree)
    assert rel(files, digit_tree) == ["a/2.NPY", "a/b/c/1.npy", "a/digit.png", "a/notes.txt", "top.npy", "z/9.npy"]
    assert files == get_files(str(digit_tree))
    assert all(isinstance(p, Path) for p in files)


def test_get_files_filters_extensions_in_any_case_and_spelling(digit_tree):
    npy = ["a/2.NPY", "a/b/c/1.npy", "top.npy", "z/9.npy"]
    assert rel(get_files(digit_tree, extensions=".npy"), digit_tree) == npy
    assert rel(get_files(digit_tree, extensions=["NPY"]), digit_tree) == npy
    assert rel(get_files(digit_tree, extensions=[".png", ".txt"]), digit_tree) == ["a/digit.png", "a/notes.txt"]
    assert np.array_equal(np.load(get_files(digit_tree, extensions=".npy")[-1]), np.load(digit_tree / "z" / "9.npy"))


def test_get_files_without_recursion_and_within_folders(digit_tree):
    assert rel(get_files(digit_tree, recurse=False), digit_tree) == ["top.npy"]
    assert rel(get_files(digit_tree, folders=["z", "a"], recurse=False), digit_tree) == [
        "a/2.NPY",
        "a/digit.png",
        "a/notes.txt",
        "z/9.npy",
    ]
    assert rel(get_files(digit_tree, folders=["a"], extensions=".npy"), digit_tree) == ["a/2.NPY", "a/b/c/1.npy"]


def test_get_files_names_a_missing_folder(digit_tree):
    with pytest.raises(FileNotFoundError, match=r"nowhere is not a folder"):
        get_files(digit_tree / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"the folder .*valid does not exist"):
        get_files(digit_tree, folders=["valid"])


def test_image_files_are_found_by_suffix_and_open_as_the_saved_digit(digit_tree, mnist):
    images = get_image_files(digit_tree)
    assert rel(images, digit_tree) == ["a/digit.png"]
    assert np.array_equal(np.asarray(Image.open(images[0])), mnist["x_train"][4])
    assert ImageGetter("a")(digit_tree) == images
    assert rel(FileGetter("a", extensions=".npy", recurse=False)(digit_tree), digit_tree) == ["a/2.NPY"]


def test_parent_label_is_the_folder_name():
    assert parent_label(Path("mnist") / "train" / "7" / "12.npy") == "7"
    assert parent_label("12.npy") == ""


def test_regex_labeller_reads_a_group_and_names_the_path_that_does_not_match():
    labeller = RegexLabeller(r"/([a-z_]+)_\d+\.jpg$")
    assert labeller(Path("pets/great_pyrenees_12.jpg")) == "great_pyrenees"
    with pytest.raises(ValueError, match=r"does not match the path 'pets/readme.txt'"):
        labeller("pets/readme.txt")
    with pytest.raises(ValueError, match=r"'pets/cat_1.jpg' from its start"):
        RegexLabeller(r"cat_(\d)", match=True)("pets/cat_1.jpg")
    assert RegexLabeller(r"cat_\d", match=False)("pets/cat_1.jpg") == "cat_1"


def test_col_reader_reads_columns_with_prefix_suffix_and_label_delim():
    df = pd.DataFrame({"name": ["a", "b"], "tags": ["cat dog", np.nan], "n": [1, 2]})
    row = df.iloc[0]
    assert ColReader("name", pref="img/", suff=".png")(row) == "img/a.png"
    assert ColReader("name", pref=Path("img"), suff=".png")(row) == Path("img") / "a.png"
    assert ColReader("tags", label_delim=" ")(row) == ["cat", "dog"]
    assert ColReader("tags", label_delim=" ")(df.iloc[1]) == []
    assert ColReader(["name", "n"])(row) == ["a", 1]
    assert ColReader(2)(row) == 1
    assert ColReader("n")({"n": 5}) == 5


def test_col_reader_names_a_missing_column_and_the_row():
    df = pd.DataFrame({"name": ["a"]}, index=[17])
    with pytest.raises(KeyError, match=r"column 'label' is missing from row 17 \(columns: \['name'\]\)"):
        ColReader("label")(df.iloc[0])
    with pytest.raises(ValueError, match=r"at least one column"):
        ColReader([])
