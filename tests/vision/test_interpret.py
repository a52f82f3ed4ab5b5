"""Interpretation of a tiny CNN trained one epoch on real MNIST digits: the confusion matrix, report and IoU agree
with scikit-learn and numpy, and the plots hold what they should."""

import matplotlib

matplotlib.use("Agg")

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support
from torch import nn

from lamina.data import Normalize, imagenet_stats
from lamina.learner.learner import Learner
from lamina.learner.losses import CrossEntropyLossFlat
from lamina.vision import ImageDataLoaders, SegmentationDataLoaders
from lamina.vision.interpret import (
    ClassificationInterpretation,
    SegmentationInterpretation,
    confusion_matrix,
    show_results,
)
from tests.conftest import assert_png
from tests.vision.test_vision_data import digit_masks, mask_of


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    assert_png(path, min_bytes=5000)
    return path


@pytest.fixture(scope="module")
def digit_learner(mnist_root, tmp_path_factory):
    """A tiny CNN trained one epoch on 400 real training digits; 200 validation digits."""
    sub = tmp_path_factory.mktemp("digits")
    for split, n in (("train", 40), ("valid", 20)):
        for d in range(10):
            (sub / split / str(d)).mkdir(parents=True)
            for p in sorted((mnist_root / split / str(d)).glob("*.png"))[:n]:
                shutil.copy(p, sub / split / str(d) / p.name)
    torch.manual_seed(0)
    dls = ImageDataLoaders.from_folder(sub, batch_tfms=[Normalize.from_stats(*imagenet_stats)], bs=16, seed=0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
    learn = Learner(dls, model, show_progress=False, logger=None)
    learn.fit_one_cycle(1, 1e-2)
    return learn


@pytest.fixture(scope="module")
def interp(digit_learner):
    return ClassificationInterpretation.from_learner(digit_learner)


def test_confusion_matrix_equals_sklearns_and_counts_every_validation_digit(interp):
    cm = interp.confusion_matrix()
    expected = sk_confusion_matrix(interp.targets.numpy(), interp.preds.argmax(1).numpy(), labels=list(range(10)))
    assert np.array_equal(cm, expected)
    assert cm.sum() == len(interp.dl.dataset) == 200
    assert interp.vocab == [str(d) for d in range(10)]
    assert 0.3 < np.trace(cm) / cm.sum() < 1 and (cm.sum(0) > 0).sum() >= 5  # a real, imperfect classifier


def test_most_confused_lists_the_off_diagonal_cells_largest_first(interp):
    cm = interp.confusion_matrix()
    pairs = interp.most_confused(min_val=1)
    off = {(str(i), str(j)): int(cm[i, j]) for i in range(10) for j in range(10) if i != j and cm[i, j] > 0}
    assert {(a, p): c for a, p, c in pairs} == off and len(pairs) == len(off)
    assert [c for *_, c in pairs] == sorted(off.values(), reverse=True)
    assert all(c >= 3 for *_, c in interp.most_confused(min_val=3))


def test_classification_report_matches_sklearn(interp, capsys):
    report = interp.print_classification_report(digits=4)
    assert capsys.readouterr().out.strip() == report.strip()
    p, r, f, s = precision_recall_fscore_support(
        interp.targets.numpy(), interp.decoded.numpy(), labels=list(range(10)), zero_division=0
    )
    rows = {line.split()[0]: line.split()[1:] for line in report.splitlines()[1:11]}
    for d in range(10):
        assert [float(v) for v in rows[str(d)]] == pytest.approx([p[d], r[d], f[d], s[d]], abs=1e-4)


def test_top_losses_are_the_largest_per_item_cross_entropies(interp, digit_learner):
    losses, idxs = interp.top_losses(5)
    assert torch.equal(losses, interp.losses.sort(descending=True).values[:5])
    # the per-item loss really is the cross-entropy of the stored probabilities
    ce = -interp.preds[idxs, interp.targets[idxs]].log()
    assert losses.tolist() == pytest.approx(ce.tolist(), rel=1e-3)


def test_plot_confusion_matrix_writes_every_count_and_the_vocab(interp, tmp_path):
    fig = interp.plot_confusion_matrix(figsize=(6, 6))
    save(fig, tmp_path / "confusion.png")
    ax = fig.axes[0]
    cm = interp.confusion_matrix()
    assert len(ax.texts) == 100
    assert [int(t.get_text()) for t in ax.texts] == cm.reshape(-1).tolist()
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(d) for d in range(10)]
    normalized = interp.plot_confusion_matrix(normalize=True).axes[0]
    row_sums = np.array([float(t.get_text()) for t in normalized.texts]).reshape(10, 10).sum(1)
    assert row_sums == pytest.approx(np.ones(10), abs=0.06)


def test_plot_top_losses_titles_name_prediction_actual_loss_and_probability(interp, tmp_path):
    fig = interp.plot_top_losses(6, nrows=2)
    save(fig, tmp_path / "top_losses.png")
    losses, idxs = interp.top_losses(6)
    assert len(fig.axes) == 6
    for ax, i, loss in zip(fig.axes, idxs.tolist(), losses.tolist()):
        pred, actual, shown_loss, prob = ax.get_title().split("/")
        assert actual == interp.dl.dataset.items[i].parent.name
        assert pred == str(int(interp.preds[i].argmax()))
        assert float(shown_loss) == pytest.approx(loss, abs=0.006)
        assert float(prob) == pytest.approx(float(interp.preds[i].max()), abs=0.006)
        assert len(ax.images) == 1 and np.asarray(ax.images[0].get_array()).max() > 100  # decoded pixels, 0..255


def test_show_results_titles_target_slash_prediction_coloured_by_correctness(digit_learner, tmp_path):
    fig = show_results(digit_learner, max_n=6)
    save(fig, tmp_path / "results.png")
    files = digit_learner.dls.valid.dataset.items[:6]
    preds = digit_learner.get_preds()[0][:6].argmax(1)
    assert len(fig.axes) == 6
    for ax, path, pred in zip(fig.axes, files, preds.tolist()):
        assert ax.get_title() == f"{path.parent.name}/{pred}"
        right = path.parent.name == str(pred)
        assert matplotlib.colors.same_color(ax.title.get_color(), "green" if right else "red")


def test_confusion_matrix_rejects_classes_outside_the_range():
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        confusion_matrix([0, 2], [0, 1], 2)


@pytest.fixture(scope="module")
def seg_learner(mnist_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    names = digit_masks(mnist_root, root / "seg", per_digit=6)
    dls = SegmentationDataLoaders.from_label_func(
        root / "seg", names, mask_of, codes=["background", "digit"], bs=8, seed=0
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 2, 3, 1, 1))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(axis=1), show_progress=False, logger=None)
    learn.fit(1, 1e-2)
    return learn


def test_segmentation_iou_and_dice_per_class_match_a_numpy_count(seg_learner, tmp_path):
    interp = SegmentationInterpretation.from_learner(seg_learner)
    preds, targets = seg_learner.get_preds()[:2]
    pred, targ = preds.argmax(1).numpy(), targets.numpy()
    scores = interp.per_class_scores()
    assert list(scores.index) == ["background", "digit"]
    for c, code in enumerate(["background", "digit"]):
        inter = np.logical_and(pred == c, targ == c).sum()
        union = np.logical_or(pred == c, targ == c).sum()
        assert scores.loc[code, "iou"] == pytest.approx(inter / union)
        assert scores.loc[code, "dice"] == pytest.approx(2 * inter / ((pred == c).sum() + (targ == c).sum()))
        assert 0 <= scores.loc[code, "iou"] <= 1
    assert scores["pixels"].sum() == targ.size
    fig = interp.plot_top_losses(3)
    save(fig, tmp_path / "seg_top_losses.png")
    assert len(fig.axes) == 9
    assert [ax.get_title() for ax in fig.axes[1:3]] == ["target", "prediction"]
    assert all(len(ax.images) == 2 for i, ax in enumerate(fig.axes) if i % 3)


def test_show_results_draws_target_then_predicted_mask_over_each_image(seg_learner, tmp_path):
    fig = show_results(seg_learner, max_n=4)
    save(fig, tmp_path / "seg_results.png")
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes[:2]] == ["target", "prediction"]
    _, yb = seg_learner.dls.valid.one_batch()
    shown = np.asarray(fig.axes[0].images[1].get_array())
    assert np.array_equal(shown, yb[0].cpu().numpy())
    assert all(len(ax.images) == 2 for ax in fig.axes)


def test_a_vision_learner_shows_its_results_and_interprets_itself(mnist_root):
    from lamina.data import get_image_files, parent_label
    from lamina.vision import ImageDataLoaders, PILImageBW, vision_learner

    path = mnist_root
    files = get_image_files(path)[::25]
    dls = ImageDataLoaders.from_lists(path, files, [parent_label(f) for f in files], seed=0, img_cls=PILImageBW)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, show_progress=False, logger=None)
    learn.fit(1, 1e-2)
    fig = learn.show_results(max_n=4)
    assert len(fig.axes) == 4 and all("/" in ax.get_title() for ax in fig.axes)
    interp = learn.interpret()
    assert isinstance(interp, ClassificationInterpretation)
    assert interp.confusion_matrix().sum() == len(dls.valid.dataset)


def blank_margins(path: Path) -> dict[str, float]:
    """The share of the picture's width (left, right) or height (top, bottom) that is empty white border."""
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("L"))
    rows, cols = np.flatnonzero((pixels < 250).any(1)), np.flatnonzero((pixels < 250).any(0))
    h, w = pixels.shape
    return {"left": cols[0] / w, "right": (w - 1 - cols[-1]) / w, "top": rows[0] / h, "bottom": (h - 1 - rows[-1]) / h}


def title_boxes(fig) -> list:
    renderer = fig.canvas.get_renderer()
    texts = [ax.title for ax in fig.axes] + list(fig.texts)  # the figure's texts hold its suptitle
    return [t.get_window_extent(renderer) for t in texts if t.get_text()]


def test_plot_top_losses_titles_of_long_real_labels_fit_their_cells_without_overlapping(interp, tmp_path):
    from lamina.vision.models.pretrained import imagenet_classes

    names = sorted(imagenet_classes(), key=len)[-10:]  # 'American Staffordshire terrier', ... as the ten classes
    named = ClassificationInterpretation(
        interp.learn, interp.dl, interp.preds, interp.targets, interp.decoded, interp.losses, vocab=names
    )
    fig = named.plot_top_losses(9)
    save(fig, tmp_path / "top_losses.png")
    losses, idxs = named.top_losses(9)
    for ax, i, loss in zip(fig.axes, idxs.tolist(), losses.tolist()):  # every word is still there
        pred, actual = int(named.decoded[i]), int(named.targets[i])
        shown = ax.get_title().replace("\n", "")
        assert shown == f"{names[pred]}/{names[actual]}/{loss:.2f}/{float(named.preds[i, pred]):.2f}"
    boxes = title_boxes(fig)
    assert len(boxes) == 10
    overlapping = [(a, b) for a in range(10) for b in range(a + 1, 10) if boxes[a].overlaps(boxes[b])]
    assert overlapping == []
    assert all(fig.bbox.x0 <= b.x0 and b.x1 <= fig.bbox.x1 and b.y1 <= fig.bbox.y1 for b in boxes)


def test_show_results_fills_its_picture_with_small_margins(digit_learner, tmp_path):
    fig = show_results(digit_learner, max_n=16)
    margins = blank_margins(save(fig, tmp_path / "results.png"))
    assert max(margins.values()) < 0.06, margins
    boxes = title_boxes(fig)
    assert len(boxes) == 16 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
