"""show_batch draws every vision block combination on real images: what is on each axis is checked, and the PNG is
written (and big enough to hold a picture)."""

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from lamina.data import DataBlock, Normalize, RegressionBlock, imagenet_stats
from lamina.datasets import SOLAR_CELL_LABELS, solar_cells
from lamina.vision import (
    BBoxBlock,
    BBoxLblBlock,
    ImageBlock,
    ImageDataLoaders,
    PointBlock,
    Resize,
    SegmentationDataLoaders,
)
from tests.conftest import assert_png
from tests.vision.test_vision_data import Lookup, centre_of_mass, digit_masks, digit_scenes, mask_of, pixels


@pytest.fixture(scope="module")
def solar_root(tmp_path_factory) -> Path:
    return solar_cells(tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    assert_png(path, min_bytes=5000)
    return path


def test_images_with_categories_show_the_digit_as_title_in_a_grid(mnist_root, tmp_path):
    dls = ImageDataLoaders.from_folder(mnist_root, batch_tfms=[Normalize.from_stats(*imagenet_stats)], bs=16)
    b = dls.valid.one_batch()
    fig = dls.valid.show_batch(b, max_n=6, nrows=2, figsize=(6, 4))
    save(fig, tmp_path / "category.png")
    assert len(fig.axes) == 6 and tuple(fig.get_size_inches()) == (6, 4)
    files = dls.valid.dataset.items[:6]
    assert [ax.get_title() for ax in fig.axes] == [p.parent.name for p in files]
    # normalization is undone before drawing: the pixels shown are the PNG's
    shown = fig.axes[0].images[0].get_array()
    assert np.array_equal(np.asarray(shown)[..., 0], pixels(files[0]).astype(np.uint8))


def solar(root: Path, per_label: int) -> pd.DataFrame:
    df = pd.read_csv(root / "labels.csv").groupby("label").head(per_label).reset_index(drop=True)
    df["tags"] = df["kind"] + " " + df["label"]
    return df


def test_multi_labels_show_every_label_of_the_cell_as_title(solar_root, tmp_path):
    df = solar(solar_root, 4)
    dls = ImageDataLoaders.from_df(
        df, solar_root, fn_col="fname", label_col="tags", label_delim=" ", item_tfms=Resize(96), bs=8
    )
    fig = dls.valid.show_batch(max_n=4)
    save(fig, tmp_path / "multi.png")
    rows = dls.valid.dataset.items.iloc[:4]
    assert [ax.get_title() for ax in fig.axes] == [";".join(sorted(t.split())) for t in rows["tags"]]
    assert all(len(ax.images) == 1 for ax in fig.axes)


def test_regression_targets_show_the_number_as_title(solar_root, tmp_path):
    df = solar(solar_root, 3)
    dls = ImageDataLoaders.from_df(
        df, solar_root, fn_col="fname", label_col="proba", y_block=RegressionBlock(), item_tfms=Resize(96), bs=8
    )
    fig = dls.valid.show_batch(max_n=3, nrows=1)
    save(fig, tmp_path / "regression.png")
    rows = dls.valid.dataset.items.iloc[:3]
    assert [float(ax.get_title()) for ax in fig.axes] == pytest.approx(list(rows["proba"]), abs=1e-3)
    assert set(df["label"]) == set(SOLAR_CELL_LABELS)


def test_masks_are_overlaid_on_their_images(mnist_root, tmp_path):
    names = digit_masks(mnist_root, tmp_path / "seg", per_digit=2)
    dls = SegmentationDataLoaders.from_label_func(
        tmp_path / "seg", names, mask_of, codes=["background", "digit"], item_tfms=Resize(64), bs=4
    )
    fig = dls.valid.show_batch(max_n=4)
    save(fig, tmp_path / "masks.png")
    for ax in fig.axes:
        _, mask = ax.images
        assert mask.get_alpha() == 0.5 and np.asarray(mask.get_array()).shape == (64, 64)
        assert set(np.unique(np.asarray(mask.get_array()))) == {0, 1}


def test_points_are_drawn_where_the_digit_centre_of_mass_is(mnist_root, tmp_path):
    files = [p for d in range(10) for p in sorted((mnist_root / "train" / str(d)).glob("*.png"))[:2]]
    centres = Lookup({p: [centre_of_mass(pixels(p))] for p in files})
    dls = DataBlock(blocks=(ImageBlock, PointBlock), get_y=centres, item_tfms=Resize(84)).dataloaders(files, bs=4)
    fig = dls.valid.show_batch(max_n=4, figsize=(6, 6))
    save(fig, tmp_path / "points.png")
    for ax, path in zip(fig.axes, dls.valid.dataset.items):
        (x, y) = ax.collections[0].get_offsets()[0]
        cx, cy = centres(path)[0]
        assert (x, y) == pytest.approx(((cx + 0.5) * 3 - 0.5, (cy + 0.5) * 3 - 0.5), abs=1e-4)


def test_boxes_are_drawn_with_their_labels_and_padding_is_skipped(mnist_root, tmp_path):
    scenes, boxes, labels = digit_scenes(mnist_root, tmp_path)
    dblock = DataBlock(
        blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), getters=[None, Lookup(boxes), Lookup(labels)], n_inp=1
    )
    dls = dblock.dataloaders(scenes, bs=4, val_bs=3)
    fig = dls.valid.show_batch(max_n=3, ncols=1, figsize=(4, 6))
    save(fig, tmp_path / "boxes.png")
    for ax, path in zip(fig.axes, dls.valid.dataset.items):
        assert len(ax.patches) == len(boxes[path])
        assert [t.get_text() for t in ax.texts] == labels[path]
        corners = [(p.get_x(), p.get_y(), p.get_x() + p.get_width(), p.get_y() + p.get_height()) for p in ax.patches]
        assert corners == [pytest.approx(tuple(b)) for b in boxes[path]]
    assert {len(boxes[p]) for p in dls.valid.dataset.items[:3]} == {1, 2}


def test_augmented_boxes_and_points_are_drawn_after_the_batch_transforms(mnist_root, tmp_path):
    augment = pytest.importorskip("lamina.vision.augment", reason="lamina.vision.augment does not import yet")
    scenes, boxes, labels = digit_scenes(mnist_root, tmp_path)
    dblock = DataBlock(
        blocks=(ImageBlock, BBoxBlock, BBoxLblBlock),
        getters=[None, Lookup(boxes), Lookup(labels)],
        n_inp=1,
        item_tfms=Resize((56, 112)),
        batch_tfms=[*augment.aug_transforms(max_rotate=20), Normalize.from_stats(*imagenet_stats)],
    )
    dls = dblock.dataloaders(scenes, bs=4, seed=0)
    xb, bb, lb = dls.train.one_batch()
    fig = dls.train.show_batch((xb, bb, lb), max_n=4)
    save(fig, tmp_path / "augmented_boxes.png")
    for ax, bx in zip(fig.axes, bb):
        kept = int((bx.abs().sum(1) > 0).sum())
        assert len(ax.patches) == kept and len(ax.texts) == kept
        assert 0.0 <= float(torch.as_tensor(np.asarray(ax.images[0].get_array())).float().min())
