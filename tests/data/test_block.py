"""Promises of the data block API, on real MNIST digits written to files and DataFrames by the tests."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lamina.core.tensors import MultiCategory, TensorCategory, TensorImageBW, TensorMultiCategory, TitledFloat
from lamina.core.transform import Transform
from lamina.data.block import (
    CategoryBlock,
    DataBlock,
    MultiCategoryBlock,
    RegressionBlock,
    SummaryError,
    TransformBlock,
)
from lamina.data.getters import ColReader, FileGetter, parent_label
from lamina.data.splitters import GrandparentSplitter, IndexSplitter
from lamina.data.transforms import IntToFloatTensor


class LoadDigit(Transform):
    """Open a digit saved as a .npy file as a 1 x 28 x 28 uint8 image (a user's own loader)."""

    def encodes(self, path: Path) -> TensorImageBW:
        return TensorImageBW(torch.from_numpy(np.load(path))[None])


def digit_image_block() -> TransformBlock:
    return TransformBlock(type_tfms=[LoadDigit()], batch_tfms=[IntToFloatTensor()])


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, mnist) -> Path:
    """Real digits 0-9 as .npy files: train/<digit>/<i>.npy (8 each) and valid/<digit>/<i>.npy (3 each)."""
    root = tmp_path_factory.mktemp("digits")
    for split, xs, ys, n in (
        ("train", mnist["x_train"], mnist["y_train"], 8),
        ("valid", mnist["x_valid"], mnist["y_valid"], 3),
    ):
        for d in range(10):
            (root / split / str(d)).mkdir(parents=True)
            for i, k in enumerate(np.flatnonzero(ys == d)[:n]):
                np.save(root / split / str(d) / f"{i}.npy", xs[k])
    return root


def digit_block(**changes) -> DataBlock:
    kwargs = {"get_items": FileGetter(extensions=".npy"), "get_y": parent_label, "splitter": GrandparentSplitter()}
    return DataBlock(blocks=(digit_image_block, CategoryBlock), **{**kwargs, **changes})


def test_a_folder_of_real_digits_gives_labelled_batches_through_parent_label(digit_folder):
    dls = digit_block().dataloaders(digit_folder, bs=16)
    assert (len(dls.train.dataset), len(dls.valid.dataset)) == (80, 30)
    assert dls.vocab == [str(d) for d in range(10)] and dls.n_inp == 1
    xb, yb = dls.valid.one_batch()
    assert isinstance(xb, TensorImageBW) and xb.shape == (16, 1, 28, 28) and xb.dtype == torch.float32
    assert isinstance(yb, TensorCategory) and yb.dtype == torch.long
    files = sorted((digit_folder / "valid").rglob("*.npy"))[:16]  # the validation loader keeps file order
    assert [dls.vocab[i] for i in yb.tolist()] == [f.parent.name for f in files]
    expected = torch.stack([torch.from_numpy(np.load(f)).float()[None] / 255 for f in files])
    assert torch.equal(xb.as_plain(), expected)
    xt, yt = dls.train.one_batch()
    assert xt.shape == (16, 1, 28, 28) and set(yt.tolist()) <= set(range(10))


def test_blocks_may_be_classes_instances_or_factories(digit_folder):
    a = digit_block().datasets(digit_folder)
    b = DataBlock(
        blocks=[digit_image_block(), CategoryBlock()],
        get_items=FileGetter(extensions=".npy"),
        get_y=parent_label,
        splitter=GrandparentSplitter(),
    ).datasets(digit_folder)
    assert a.vocab == b.vocab and a.splits == b.splits
    assert torch.equal(a[5][0], b[5][0]) and int(a[5][1]) == int(b[5][1])


def test_the_default_splitter_is_a_fixed_random_20_percent(digit_folder):
    dblock = DataBlock(
        blocks=(digit_image_block, CategoryBlock), get_items=FileGetter(extensions=".npy"), get_y=parent_label
    )
    splits = dblock.datasets(digit_folder).splits
    assert len(splits[1]) == 22 and sorted(splits[0] + splits[1]) == list(range(110))
    assert dblock.datasets(digit_folder).splits == splits


def test_each_datasets_call_learns_its_own_vocab():
    dblock = DataBlock((TransformBlock, CategoryBlock), get_y=str, splitter=IndexSplitter([0]))
    assert dblock.datasets([1, 2, 3]).vocab == ["2", "3"]
    assert dblock.datasets([7, 8, 9]).vocab == ["8", "9"]
    assert dblock.blocks[1].type_tfms[0].vocab_ is None


def test_a_batch_transform_of_the_same_class_replaces_the_blocks_one(digit_folder):
    dls = digit_block(batch_tfms=[IntToFloatTensor(div=510.0)]).dataloaders(digit_folder, bs=8)
    assert [t.div for t in dls.train.after_batch.fs] == [510.0]
    assert 0.4 < float(dls.valid.one_batch()[0].max()) <= 0.5
    assert [type(t).__name__ for t in dls.train.after_item.fs] == ["ToTensor"]


def test_a_new_item_that_is_the_element_itself_skips_the_getter_of_a_table_of_file_names(digit_folder):
    files = sorted((digit_folder / "valid").rglob("*.npy"))
    table = pd.DataFrame({"fname": [str(f.relative_to(digit_folder)) for f in files],
                          "label": [f.parent.name for f in files]})  # fmt: skip
    block = TransformBlock(type_tfms=[LoadDigit()], batch_tfms=[IntToFloatTensor()], element_types=(Path,))
    dblock = DataBlock((block, CategoryBlock), get_x=ColReader("fname", pref=digit_folder), get_y=ColReader("label"))
    dls = dblock.dataloaders(table, bs=8)
    by_path = dls.test_dl(files[:3]).one_batch()[0]  # paths: the images themselves, not rows
    by_row = dls.test_dl(table.iloc[:3]).one_batch()[0]  # rows, like the training items: read by the getter
    expected = torch.stack([torch.from_numpy(np.load(f)).float()[None] / 255 for f in files[:3]])
    assert torch.equal(by_path.as_plain(), expected) and torch.equal(by_row.as_plain(), expected)


def test_a_new_item_of_the_kind_of_the_training_items_still_goes_through_the_getter(digit_folder):
    files = sorted((digit_folder / "valid").rglob("*.npy"))
    neighbour = {f: files[(k + 1) % len(files)] for k, f in enumerate(files)}  # a getter from a path to another
    block = TransformBlock(type_tfms=[LoadDigit()], batch_tfms=[IntToFloatTensor()], element_types=(Path,))
    dblock = DataBlock((block, CategoryBlock), get_x=neighbour.__getitem__, get_y=parent_label)
    dls = dblock.dataloaders(files, bs=8)
    xb = dls.test_dl([files[0]]).one_batch()[0]
    assert torch.equal(xb.as_plain()[0], torch.from_numpy(np.load(files[1])).float()[None] / 255)


@pytest.fixture(scope="module")
def digit_frame(mnist) -> pd.DataFrame:
    """Rows of real digits with a space-separated tag column, one-hot tag columns and a brightness column."""
    idx = np.arange(0, 4000, 50)
    digits = mnist["y_train"][idx]
    tags = [f"{'even' if d % 2 == 0 else 'odd'} {'big' if d >= 5 else 'small'}" for d in digits]
    return pd.DataFrame(
        {
            "idx": idx,
            "tags": tags,
            "even": (digits % 2 == 0).astype(int),
            "big": (digits >= 5).astype(int),
            "brightness": mnist["x_train"][idx].mean(axis=(1, 2)) / 255,
        }
    )


def image_of(mnist):
    def get_image(row) -> TensorImageBW:
        return TensorImageBW(torch.from_numpy(mnist["x_train"][int(row["idx"])])[None])

    return get_image


def test_multi_category_block_reads_label_delim_strings_from_a_dataframe(digit_frame, mnist):
    dblock = DataBlock(
        blocks=(TransformBlock, MultiCategoryBlock),
        get_x=image_of(mnist),
        get_y=ColReader("tags", label_delim=" "),
        splitter=IndexSplitter(list(range(60, 80))),
    )
    dsets = dblock.datasets(digit_frame)
    assert dsets.vocab == ["big", "even", "odd", "small"]
    dls = dsets.dataloaders(bs=10, after_item=[], after_batch=[])
    _, yb = dls.valid.one_batch()
    assert isinstance(yb, TensorMultiCategory) and yb.shape == (10, 4) and yb.dtype == torch.float32
    assert yb.sum(1).tolist() == [2.0] * 10
    decoded = dsets.valid.decode(dsets.valid[0])[1]
    assert isinstance(decoded, MultiCategory)
    assert sorted(decoded) == sorted(digit_frame["tags"].iloc[60].split())


def test_multi_category_block_says_to_split_a_string_target(digit_frame, mnist):
    dblock = DataBlock((TransformBlock, MultiCategoryBlock), get_x=image_of(mnist), get_y=ColReader("tags"))
    with pytest.raises(TypeError, match=r"got the string 'even small'.*label_delim"):
        dblock.datasets(digit_frame)


def test_encoded_multi_category_block_reads_one_hot_columns(digit_frame, mnist):
    dblock = DataBlock(
        blocks=(TransformBlock, MultiCategoryBlock(encoded=True, vocab=["even", "big"])),
        get_x=image_of(mnist),
        get_y=ColReader(["even", "big"]),
    )
    dsets = dblock.datasets(digit_frame)
    y = dsets[3][1]
    assert y.tolist() == [float(digit_frame["even"].iloc[3]), float(digit_frame["big"].iloc[3])]
    assert sorted(dsets.decode(dsets[3])[1]) == sorted(digit_frame["tags"].iloc[3].split()[i] for i in range(2) if y[i])
    with pytest.raises(ValueError, match=r"needs vocab"):
        MultiCategoryBlock(encoded=True)


def test_regression_block_gives_float_targets_that_decode_to_titled_floats(digit_frame, mnist):
    dblock = DataBlock(
        blocks=(TransformBlock, RegressionBlock),
        get_x=image_of(mnist),
        get_y=ColReader("brightness"),
        splitter=IndexSplitter(list(range(70, 80))),
    )
    dls = dblock.dataloaders(digit_frame, bs=10)
    _, yb = dls.valid.one_batch()
    assert yb.dtype == torch.float32 and yb.shape == (10,)
    assert torch.allclose(yb, torch.tensor(digit_frame["brightness"].iloc[70:80].to_numpy(), dtype=torch.float32))
    decoded = dls.valid.dataset.decode(dls.valid.dataset[0])[1]
    assert isinstance(decoded, TitledFloat) and decoded == pytest.approx(digit_frame["brightness"].iloc[70])


def test_regression_block_checks_n_out_on_each_item(digit_frame, mnist):
    dblock = DataBlock((TransformBlock, RegressionBlock(n_out=2)), get_x=image_of(mnist), get_y=ColReader("brightness"))
    with pytest.raises(Exception, match=r"has 1 values but n_out=2"):
        dblock.datasets(digit_frame)[0]


def test_summary_prints_every_step_of_one_item(digit_folder, capsys):
    digit_block().summary(digit_folder, bs=4)
    out = capsys.readouterr().out
    expected = [
        "Getting items: 110 items",
        "Splitting with GrandparentSplitter: 80 training, 30 validation items",
        "element 0 (input, TransformBlock):",
        "LoadDigit: TensorImageBW of shape (1, 28, 28), uint8",
        "element 1 (target, CategoryBlock):",
        "parent_label: str '0'",
        "Categorize: TensorCategory of shape (), int64",
        "after_item ToTensor:",
        "Collating 4 items: (TensorImageBW of shape (4, 1, 28, 28), uint8, TensorCategory of shape (4,), int64)",
        "after_batch IntToFloatTensor: (TensorImageBW of shape (4, 1, 28, 28), float32",
        "Done: a training batch of 4 items",
    ]
    positions = [out.find(line) for line in expected]
    assert -1 not in positions, [line for line, p in zip(expected, positions) if p == -1]
    assert positions == sorted(positions)


def test_summary_names_the_failing_step_of_a_broken_getter(digit_folder, capsys):
    def broken_label(path):
        return path.parent.nme  # a typo a user could make

    with pytest.raises(
        SummaryError, match=r"step 'element 1 \(target\) step 1/2 `broken_label`' failed: AttributeError"
    ):
        digit_block(get_y=None, getters=[None, broken_label]).summary(digit_folder)
    out = capsys.readouterr().out
    assert "LoadDigit: TensorImageBW" in out
    assert "FAILED at step 'element 1 (target) step 1/2 `broken_label`': AttributeError" in out


def test_summary_names_an_empty_folder(tmp_path, capsys):
    with pytest.raises(SummaryError, match=r"step 'getting items' failed: ValueError: DataBlock found no items"):
        digit_block().summary(tmp_path)


def test_data_block_rejects_inconsistent_arguments():
    with pytest.raises(TypeError, match=r"blocks\[1\] is a str, not a TransformBlock"):
        DataBlock((TransformBlock, "category"))
    with pytest.raises(ValueError, match=r"n_inp must be in 1..2 for 2 blocks, got 3"):
        DataBlock((TransformBlock, CategoryBlock), n_inp=3)
    with pytest.raises(ValueError, match=r"get_x has 2 functions for 1 elements"):
        DataBlock((TransformBlock, CategoryBlock), get_x=[str, str])
    with pytest.raises(ValueError, match=r"`getters` \(one per block\) or `get_x`/`get_y`, not both"):
        DataBlock((TransformBlock, CategoryBlock), get_y=str, getters=[None, str])
    with pytest.raises(TypeError, match=r"builds after_item itself: pass item_tfms"):
        DataBlock((TransformBlock, CategoryBlock), get_y=str).dataloaders([1, 2, 3, 4, 5], after_item=[])


def test_two_inputs_and_one_target_with_n_inp():
    dblock = DataBlock(
        (TransformBlock, TransformBlock, CategoryBlock), get_x=[lambda o: o[0], lambda o: o[1]], get_y=lambda o: o[2]
    )
    dls = dblock.dataloaders([(float(i), float(-i), "ab"[i % 2]) for i in range(20)], bs=4)
    a, b, y = dls.valid.one_batch()
    assert dls.n_inp == 2 and torch.equal(a, -b) and y.tolist() == [int(v) % 2 for v in a.tolist()]


def test_a_splitter_that_keeps_every_item_for_training_gives_loaders_and_a_fit_without_validation(digit_folder):
    from torch import nn

    from lamina.learner import Learner, accuracy

    def train_on_everything(items):
        return list(range(len(items))), []

    dls = digit_block(splitter=train_on_everything).dataloaders(digit_folder, bs=16)
    assert len(dls) == 1 and len(dls.train.dataset) == 110
    lines = []
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    learn = Learner(dls, model, metrics=[accuracy], logger=lines.append, show_progress=False)
    learn.fit(2, lr=1e-2)
    assert lines[0].endswith(", no validation]")
    for row, line in zip(learn.recorder.values, lines[1:]):
        cells = line.split()
        assert cells[2] == cells[3] == "-"  # valid_loss and accuracy: not computed, and the table says so
        assert np.isfinite(row[1]) and np.isnan(row[2])
    assert len(lines) == 3 and learn.recorder.losses  # it did train
