"""Promises of the splitters: each returns (train_idx, valid_idx) and says clearly when a split cannot be made."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lamina.data.getters import get_files
from lamina.data.splitters import (
    ColSplitter,
    EndSplitter,
    FileSplitter,
    FuncSplitter,
    GrandparentSplitter,
    IndexSplitter,
    MaskSplitter,
    RandomSplitter,
    TrainTestSplitter,
)


def test_random_splitter_with_a_seed_is_reproducible_disjoint_and_covers_every_item():
    items = list(range(103))
    train, valid = RandomSplitter(valid_pct=0.2, seed=7)(items)
    assert (train, valid) == RandomSplitter(valid_pct=0.2, seed=7)(items)
    assert not set(train) & set(valid)
    assert sorted(train + valid) == items
    assert len(valid) == 21
    assert RandomSplitter(valid_pct=0.2, seed=8)(items)[1] != valid


@pytest.mark.parametrize("pct", [1.0, -0.1, 1.5])
def test_random_splitter_rejects_a_valid_pct_outside_0_1(pct):
    with pytest.raises(ValueError, match=r"valid_pct must be strictly between 0 and 1"):
        RandomSplitter(valid_pct=pct)


def test_random_splitter_with_valid_pct_0_keeps_everything_for_training_and_the_loaders_have_no_validation():
    from lamina.data import Datasets

    items = list(range(40))
    assert RandomSplitter(valid_pct=0)(items) == (items, [])
    dsets = Datasets(items, [[lambda i: float(i)], [lambda i: i % 2]], splits=RandomSplitter(valid_pct=0)(items))
    dls = dsets.dataloaders(bs=8)
    assert len(dls.loaders) == 1 and len(dls.train.dataset) == 40


def test_random_splitter_says_when_the_validation_split_would_be_empty():
    with pytest.raises(ValueError, match=r"no item in the validation split \(2 items\)"):
        RandomSplitter(valid_pct=0.1, seed=0)(["a", "b"])


def test_stratified_split_keeps_the_class_proportions_of_real_labels(mnist):
    # an unbalanced subset of real MNIST labels: 300 zeros, 100 ones, 40 twos
    y = mnist["y_train"]
    idx = np.concatenate([np.flatnonzero(y == 0)[:300], np.flatnonzero(y == 1)[:100], np.flatnonzero(y == 2)[:40]])
    labels = y[idx]
    train, valid = TrainTestSplitter(test_size=0.25, random_state=0, stratify=labels)(list(idx))
    assert sorted(train + valid) == list(range(len(idx)))
    assert not set(train) & set(valid)
    counts = {d: int((labels[valid] == d).sum()) for d in (0, 1, 2)}
    assert counts == {0: 75, 1: 25, 2: 10}
    assert TrainTestSplitter(test_size=0.25, random_state=0, stratify=labels)(list(idx)) == (train, valid)


def test_stratified_split_takes_a_function_of_the_item_and_a_train_size():
    items = [f"{c}_{i}" for c in "ab" for i in range(20)]
    train, valid = TrainTestSplitter(test_size=10, train_size=20, random_state=1, stratify=lambda s: s[0])(items)
    assert len(train) == 20 and len(valid) == 10
    assert sum(items[i][0] == "a" for i in valid) == 5
    assert sum(items[i][0] == "a" for i in train) == 10


def test_unstratified_train_test_split_without_shuffle_keeps_item_order():
    assert TrainTestSplitter(test_size=0.2, shuffle=False)(list(range(10))) == (list(range(8)), [8, 9])


def test_stratifying_a_class_with_one_item_names_that_class():
    with pytest.raises(ValueError, match=r"class 'c' has a single item"):
        TrainTestSplitter(stratify=["a"] * 5 + ["b"] * 5 + ["c"])(list(range(11)))


def test_train_test_splitter_rejects_sizes_that_do_not_fit():
    with pytest.raises(ValueError, match=r"test_size as a count must be in 1..9 for 10 items, got 10"):
        TrainTestSplitter(test_size=10)(list(range(10)))
    with pytest.raises(ValueError, match=r"cannot give 8 training and 5 validation items"):
        TrainTestSplitter(test_size=5, train_size=8)(list(range(10)))


def _tree(root: Path) -> None:
    for name in ["train/3/a.npy", "train/3/b.npy", "train/7/c.npy", "valid/3/d.npy", "valid/7/e.npy", "test/3/f.npy"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / name, np.zeros(2))


def test_grandparent_splitter_splits_a_real_folder_tree_and_leaves_other_folders_out(tmp_path):
    _tree(tmp_path)
    files = get_files(tmp_path, extensions=".npy")
    train, valid = GrandparentSplitter()(files)
    assert [files[i].name for i in train] == ["a.npy", "b.npy", "c.npy"]
    assert [files[i].name for i in valid] == ["d.npy", "e.npy"]
    _, test = GrandparentSplitter(valid_name="test")(files)
    assert [files[i].name for i in test] == ["f.npy"]


def test_grandparent_splitter_lists_the_folders_it_found_when_one_is_missing(tmp_path):
    _tree(tmp_path)
    with pytest.raises(ValueError, match=r"'validation'.*\['test', 'train', 'valid'\]"):
        GrandparentSplitter(valid_name="validation")(get_files(tmp_path))


def test_index_func_and_mask_splitters_pick_the_validation_items():
    items = list("abcdef")
    assert IndexSplitter([4, 1])(items) == ([0, 2, 3, 5], [1, 4])
    assert FuncSplitter(lambda s: s in "ae")(items) == ([1, 2, 3, 5], [0, 4])
    assert MaskSplitter(np.array([0, 0, 1, 0, 0, 1]))(items) == ([0, 1, 3, 4], [2, 5])


def test_splitters_refuse_empty_splits_and_bad_inputs():
    with pytest.raises(ValueError, match=r"FuncSplitter put no item in the validation split"):
        FuncSplitter(lambda s: False)(list("abc"))
    with pytest.raises(ValueError, match=r"FuncSplitter put every one of the 3 items"):
        FuncSplitter(lambda s: True)(list("abc"))
    with pytest.raises(IndexError, match=r"validation index 9 is out of range for 3 items"):
        IndexSplitter([9])(list("abc"))
    with pytest.raises(ValueError, match=r"the mask has 2 entries for 3 items"):
        MaskSplitter([True, False])(list("abc"))


def test_file_splitter_reads_the_validation_file_names(tmp_path):
    listing = tmp_path / "valid.txt"
    listing.write_text("b.png\n\nd.png\n")
    items = [tmp_path / n for n in ["a.png", "b.png", "c.png", "d.png"]]
    assert FileSplitter(listing)(items) == ([0, 2], [1, 3])
    with pytest.raises(FileNotFoundError, match=r"missing.txt does not exist"):
        FileSplitter(tmp_path / "missing.txt")(items)


def test_col_splitter_uses_a_boolean_column_and_names_a_missing_one():
    df = pd.DataFrame({"x": range(4), "is_valid": [True, False, False, True], "other": [0, 1, 1, 0]})
    assert ColSplitter()(df) == ([1, 2], [0, 3])
    assert ColSplitter("other")(df) == ([0, 3], [1, 2])
    with pytest.raises(KeyError, match=r"column 'valid' is missing.*'is_valid'"):
        ColSplitter("valid")(df)
    with pytest.raises(TypeError, match=r"splits DataFrame rows, got list"):
        ColSplitter()([1, 2])


def test_end_splitter_takes_the_last_or_first_items():
    assert EndSplitter(valid_pct=0.3)(list(range(10))) == (list(range(7)), [7, 8, 9])
    assert EndSplitter(valid_pct=0.3, valid_last=False)(list(range(10))) == (list(range(3, 10)), [0, 1, 2])
    with pytest.raises(ValueError, match=r"EndSplitter: valid_pct must be strictly between 0 and 1, got 2"):
        EndSplitter(valid_pct=2)
