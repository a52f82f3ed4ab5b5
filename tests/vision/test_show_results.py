"""show_results draws every kind of vision target next to the model's prediction, on real MNIST digits: multi-label
titles, keypoints in pixels, regression numbers and segmentation masks, each checked against the model's own
outputs and written to a PNG with a real picture in it."""

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import numpy as np
import pytest
import torch

from lamina.data import DataBlock, MultiCategoryBlock, RandomSplitter, RegressionBlock
from lamina.vision import ImageBlock, PILImageBW, PointBlock, SegmentationDataLoaders, unet_learner, vision_learner
from tests.conftest import assert_png
from tests.vision.test_vision_data import Lookup, centre_of_mass, digit_masks, mask_of, pixels, some_digits


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    assert_png(path, min_bytes=5000)
    return path


@pytest.fixture(scope="module")
def files(mnist_root) -> list[Path]:
    """Two real training digits of each class."""
    return some_digits(mnist_root, 2)


def learner(dls):
    torch.manual_seed(0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, show_progress=False, logger=None)
    learn.fit(1, 1e-2)
    return learn


def digits_block(blocks, get_y) -> DataBlock:
    return DataBlock(blocks=(ImageBlock(PILImageBW), *blocks), get_y=get_y, splitter=RandomSplitter(0.2, seed=0))


def test_multi_label_results_title_the_true_labels_over_the_labels_predicted_above_one_half(files, tmp_path):
    tags = Lookup({p: [p.parent.name, "odd" if int(p.parent.name) % 2 else "even"] for p in files})
    dls = digits_block([MultiCategoryBlock], tags).dataloaders(files, bs=4)
    learn = learner(dls)
    fig = learn.show_results(max_n=4)
    save(fig, tmp_path / "multi.png")
    probs = learn.get_preds()[0][:4]
    assert len(fig.axes) == 4
    for ax, path, p in zip(fig.axes, dls.valid.dataset.items, probs):
        target, predicted = ax.get_title().split("/")
        assert target == ";".join(label for label in dls.vocab if label in tags(path))
        assert predicted == ";".join(dls.vocab[j] for j in torch.nonzero(p > 0.5).flatten().tolist())
        right = sorted(tags(path)) == sorted(predicted.split(";"))
        assert matplotlib.colors.same_color(ax.title.get_color(), "green" if right else "red")
        assert len(ax.images) == 1


def test_keypoint_results_mark_the_true_centre_of_mass_and_the_prediction_in_pixels(files, tmp_path):
    centres = Lookup({p: [centre_of_mass(pixels(p))] for p in files})
    dls = digits_block([PointBlock], centres).dataloaders(files, bs=4)
    learn = learner(dls)
    fig = learn.show_results(max_n=4)
    save(fig, tmp_path / "points.png")
    scaled = learn.get_preds()[0][:4]  # the model's points in [-1, 1] of a 28 x 28 image
    assert len(fig.axes) == 4
    for ax, path, s in zip(fig.axes, dls.valid.dataset.items, scaled):
        target, predicted = (c.get_offsets() for c in ax.collections)
        assert np.asarray(target) == pytest.approx(np.array(centres(path)), abs=1e-4)
        assert np.asarray(predicted) == pytest.approx(((s + 1) * 14).numpy(), abs=1e-4)
        assert ax.get_title() == "+ target, x prediction"


def test_regression_results_title_the_true_and_the_predicted_number(files, tmp_path):
    ink = Lookup({p: float((pixels(p) > 127).mean()) for p in files})  # the fraction of the picture that is digit
    dls = digits_block([RegressionBlock()], ink).dataloaders(files, bs=4)
    learn = learner(dls)
    fig = learn.show_results(max_n=4)
    save(fig, tmp_path / "regression.png")
    preds = learn.get_preds()[0][:4].flatten()
    assert len(fig.axes) == 4
    for ax, path, pred in zip(fig.axes, dls.valid.dataset.items, preds.tolist()):
        target, predicted = (float(v) for v in ax.get_title().split("/"))
        assert target == pytest.approx(ink(path), rel=5e-3) and predicted == pytest.approx(pred, rel=5e-3, abs=1e-3)
        colour = ax.title.get_color()  # a number is not right or wrong
        assert not matplotlib.colors.same_color(colour, "green") and not matplotlib.colors.same_color(colour, "red")


def test_unet_results_draw_the_target_mask_then_the_predicted_mask_over_each_digit(mnist_root, tmp_path):
    names = digit_masks(mnist_root, tmp_path / "seg", per_digit=2)
    dls = SegmentationDataLoaders.from_label_func(
        tmp_path / "seg", names, mask_of, codes=["background", "digit"], valid_pct=0.2, bs=4, seed=0
    )
    torch.manual_seed(0)
    learn = unet_learner(dls, "xresnet18", pretrained=False, show_progress=False, logger=None)  # untrained will do
    fig = learn.show_results(max_n=2)
    save(fig, tmp_path / "unet.png")
    preds, targets = learn.get_preds()[:2]
    assert [ax.get_title() for ax in fig.axes] == ["target", "prediction"] * 2
    for k in range(2):
        target_ax, pred_ax = fig.axes[2 * k : 2 * k + 2]
        assert all(len(ax.images) == 2 for ax in (target_ax, pred_ax))  # the digit, then its mask on top
        assert np.array_equal(np.asarray(target_ax.images[1].get_array()), targets[k].numpy())
        assert np.array_equal(np.asarray(pred_ax.images[1].get_array()), preds[k].argmax(0).numpy())
