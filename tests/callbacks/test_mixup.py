"""MixUp and CutMix mix training batches of real MNIST digits as promised, train with the mixed loss, and leave
validation alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lamina.callbacks.mixup import CutMix, MixUp, box_mask, cut_mix, cutmix_boxes, mix_inputs, mixed_loss
from lamina.data import DataLoader, DataLoaders
from lamina.learner.callback import Callback
from lamina.learner.learner import Learner
from lamina.learner.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat


def mnist_dls(
    mnist: dict[str, np.ndarray], n_train: int = 400, n_valid: int = 200, bs: int = 64, one_hot: bool = False
) -> DataLoaders:
    """Evenly spaced (so every digit is there) float images in [0, 1] and int64 labels (or one-hot floats)."""
    ti = np.linspace(0, len(mnist["x_train"]) - 1, n_train).astype(int)
    vi = np.linspace(0, len(mnist["x_valid"]) - 1, n_valid).astype(int)
    x, y = torch.from_numpy(mnist["x_train"][ti]).float() / 255, torch.from_numpy(mnist["y_train"][ti])
    xv, yv = torch.from_numpy(mnist["x_valid"][vi]).float() / 255, torch.from_numpy(mnist["y_valid"][vi])
    if one_hot:
        y, yv = F.one_hot(y, 10).float(), F.one_hot(yv, 10).float()
    return DataLoaders(DataLoader((x, y), bs=bs, shuffle=True, seed=0), DataLoader((xv, yv), bs=bs))


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


class Record(Callback):
    """Keeps a copy of the inputs, targets and loss of every batch, per phase, at the events it runs at."""

    def __init__(self, order: int) -> None:
        self.order = order  # type: ignore[misc]
        self.train: list[tuple[torch.Tensor, ...]] = []
        self.valid: list[tuple[torch.Tensor, ...]] = []
        self.losses: list[tuple[torch.Tensor, torch.Tensor]] = []

    def before_batch(self) -> None:
        xb, yb = self.learn.xb[0].clone(), self.learn.yb[0].clone()
        (self.train if self.learn.training else self.valid).append((xb, yb))

    def after_loss(self) -> None:
        if self.learn.training:
            self.losses.append((self.learn.pred.detach().clone(), self.learn.loss.detach().clone()))


def fit_recorded(learn: Learner, mixer: Callback, n_epoch: int = 1) -> tuple[Record, Record]:
    """Fit with a recorder before the mixer and one after it."""
    before, after = Record(order=-5), Record(order=5)
    with learn.no_bar(), learn.no_logging():
        learn.fit(n_epoch, lr=1e-2, cbs=[before, mixer, after])
    return before, after


def test_mixup_inputs_are_convex_combinations_of_two_batch_items(mnist):
    learn = Learner(mnist_dls(mnist), small_net(), loss_func=CrossEntropyLossFlat())
    mixer = MixUp(alpha=0.4, seed=1)
    before, after = fit_recorded(learn, mixer)
    (orig, _), (mixed, _) = before.train[-1], after.train[-1]
    assert mixer.lam is not None and mixer.perm is not None
    lam, perm = mixer.lam, mixer.perm
    assert sorted(perm.tolist()) == list(range(len(orig))), "perm is a permutation of the batch"
    assert bool(((lam >= 0.5) & (lam <= 1)).all()), "each item keeps the larger share of itself"
    # Solve for the weight from the pixels alone: it must be the recorded lam, with no residual.
    a, b = orig.flatten(1), orig[perm].flatten(1)
    moved = (a - b).pow(2).sum(1) > 0
    w = ((mixed.flatten(1) - b) * (a - b)).sum(1)[moved] / (a - b).pow(2).sum(1)[moved]
    torch.testing.assert_close(w, lam[moved], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mixed, lam.view(-1, 1, 1) * orig + (1 - lam.view(-1, 1, 1)) * orig[perm])
    assert not torch.equal(mixed, orig), "the batch was changed"


def test_cutmix_inputs_equal_one_image_outside_the_box_and_the_other_inside(mnist):
    learn = Learner(mnist_dls(mnist), small_net(), loss_func=CrossEntropyLossFlat())
    mixer = CutMix(alpha=1.0, seed=2)
    before, after = fit_recorded(learn, mixer)
    (orig, _), (mixed, _) = before.train[-1], after.train[-1]
    assert mixer.boxes is not None and mixer.perm is not None and mixer.lam is not None
    inside = box_mask(mixer.boxes, 28, 28)
    other = orig[mixer.perm]
    assert torch.equal(mixed[inside], other[inside]), "inside the box: the other image"
    assert torch.equal(mixed[~inside], orig[~inside]), "outside the box: the image itself"
    assert inside.any(), "some box was pasted"
    kept = 1 - inside.flatten(1).float().mean(1)
    torch.testing.assert_close(mixer.lam, kept), "lam is the fraction of the image kept"


def test_the_loss_used_is_the_mixed_loss_of_both_targets(mnist):
    loss_func = CrossEntropyLossFlat()
    learn = Learner(mnist_dls(mnist), small_net(), loss_func=loss_func)
    mixer = MixUp(alpha=1.0, seed=3)
    before, after = fit_recorded(learn, mixer)
    (_, y), (pred, loss) = before.train[-1], after.losses[-1]
    assert mixer.lam is not None and mixer.perm is not None
    lam = mixer.lam
    expected = (
        lam * F.cross_entropy(pred, y, reduction="none")
        + (1 - lam) * F.cross_entropy(pred, y[mixer.perm], reduction="none")
    ).mean()
    torch.testing.assert_close(loss, expected)
    assert not torch.isclose(loss, F.cross_entropy(pred, y)), "the plain loss was replaced"
    assert loss_func.reduction == "mean", "the loss's reduction is restored"


def test_one_hot_targets_are_mixed_like_the_inputs(mnist):
    learn = Learner(mnist_dls(mnist, one_hot=True), small_net(), loss_func=BCEWithLogitsLossFlat())
    mixer = CutMix(seed=4)
    before, after = fit_recorded(learn, mixer)
    (_, y), (_, y_mixed) = before.train[-1], after.train[-1]
    assert mixer.lam is not None and mixer.perm is not None
    lam = mixer.lam.view(-1, 1)
    torch.testing.assert_close(y_mixed, lam * y + (1 - lam) * y[mixer.perm])
    pred, loss = after.losses[-1]
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(pred, y_mixed))


@pytest.mark.parametrize("mixer", [MixUp(seed=0), CutMix(seed=0)], ids=["mixup", "cutmix"])
def test_validation_batches_are_untouched(mnist, mixer):
    dls = mnist_dls(mnist)
    learn = Learner(dls, small_net(), loss_func=CrossEntropyLossFlat())
    before, after = fit_recorded(learn, mixer)
    plain = [(xb, yb) for xb, yb in dls.valid]
    assert len(after.valid) == len(plain)
    for (xb, yb), (seen_x, seen_y) in zip(plain, after.valid):
        assert torch.equal(xb, seen_x) and torch.equal(yb, seen_y)
    assert all(not torch.equal(a[0], b[0]) for a, b in zip(before.train, after.train)), "training batches were mixed"


def test_training_with_mixup_on_mnist_still_lowers_the_loss(mnist):
    learn = Learner(mnist_dls(mnist, n_train=600), small_net(), loss_func=CrossEntropyLossFlat())
    with learn.no_bar(), learn.no_logging():
        start = learn.validate()[0]
        learn.fit(3, lr=1e-2, cbs=[MixUp(seed=0)])
    end = learn.validate()[0]
    assert end < start * 0.5, f"valid loss went from {start:.3f} to {end:.3f}"


def test_mixing_class_targets_with_a_loss_without_reduction_says_what_to_use(mnist):
    learn = Learner(mnist_dls(mnist), small_net(), loss_func=lambda pred, y: F.cross_entropy(pred, y))
    with pytest.raises(TypeError, match=r"reduction.*CrossEntropyLossFlat"), learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=[MixUp()])


def test_integer_images_are_refused_with_the_fix(mnist):
    x = torch.from_numpy(mnist["x_train"][:64])
    dls = DataLoaders(DataLoader((x, torch.from_numpy(mnist["y_train"][:64])), bs=32))
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), loss_func=CrossEntropyLossFlat())
    with pytest.raises(TypeError, match="float"), learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=[CutMix()])


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_a_non_positive_alpha_is_refused(alpha):
    with pytest.raises(ValueError, match=rf"alpha must be > 0.*{alpha}"):
        MixUp(alpha=alpha)


def test_boxes_cover_the_asked_area_away_from_borders():
    lam = torch.tensor([0.0, 0.75, 0.96, 1.0])
    boxes = cutmix_boxes(lam, torch.full((4, 2), 50), 100, 100)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert area.tolist() == [10000, 2500, 400, 0]
    edge = cutmix_boxes(torch.tensor([0.75]), torch.tensor([[0, 99]]), 100, 100)
    assert edge.tolist() == [[0, 74, 25, 100]], "boxes are clipped at the borders"


def test_pure_mixes_match_their_definitions():
    x, other = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    lam = torch.tensor([0.2, 0.5, 1.0])
    torch.testing.assert_close(mix_inputs(x, other, lam)[0], 0.2 * x[0] + 0.8 * other[0])
    boxes = torch.tensor([[0, 0, 4, 4], [1, 1, 3, 3], [0, 0, 0, 0]])
    out = cut_mix(x, other, boxes)
    assert torch.equal(out[0], other[0]) and torch.equal(out[2], x[2])
    assert torch.equal(out[1, 0, 1:3, 1:3], other[1, 0, 1:3, 1:3]) and out[1, 0, 0, 0] == x[1, 0, 0, 0]
    with pytest.raises(ValueError, match="one lam per item"):
        mix_inputs(x, other, lam[:2])
    pred, y = torch.randn(3, 5), torch.tensor([0, 1, 2])
    loss = mixed_loss(CrossEntropyLossFlat(), pred, (y,), (y.flip(0),), lam)
    ce = F.cross_entropy
    expected = (lam * ce(pred, y, reduction="none") + (1 - lam) * ce(pred, y.flip(0), reduction="none")).mean()
    torch.testing.assert_close(loss, expected)
