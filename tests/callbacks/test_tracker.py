"""Early stopping, saving the best model, lowering the lr on a plateau and stopping on NaN, on real MNIST digits."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from lamina.callbacks.tracker import (
    EarlyStoppingCallback,
    ReduceLROnPlateau,
    SaveModelCallback,
    TerminateOnNaNCallback,
    TrackerCallback,
    infer_comp,
    is_improvement,
)
from lamina.data import DataLoader, DataLoaders
from lamina.learner import AvgMetric, Callback, Learner
from lamina.optim import SGD


def digits(mnist: dict[str, np.ndarray], split: str, n: int) -> tuple[Tensor, Tensor]:
    """``n`` evenly spaced digits of ``split`` (the arrays are sorted by digit) as float images N x 1 x 28 x 28."""
    x, y = mnist[f"x_{split}"], mnist[f"y_{split}"]
    idx = np.linspace(0, len(x) - 1, n).astype(int)
    return torch.tensor(x[idx]).float().div(255).unsqueeze(1), torch.tensor(y[idx])


def learner(mnist: dict[str, np.ndarray], **kwargs: Any) -> Learner:
    x, y = digits(mnist, "train", 128)
    xv, yv = digits(mnist, "valid", 100)
    dls = DataLoaders(DataLoader((x, y), bs=32, shuffle=True, seed=0), DataLoader((xv, yv), bs=100))
    torch.manual_seed(0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), **kwargs)


def fit(learn: Learner, n_epoch: int, **kwargs: Any) -> list[str]:
    """Fit quietly; return what the callbacks logged (the table rows left out)."""
    logged: list[str] = []
    with learn.no_bar():
        learn.logger = logged.append
        learn.fit(n_epoch, **kwargs)
    return [m for m in logged if not m.lstrip()[:1].isdigit() and "train_loss" not in m]


def epoch_score(learn_ref: list[Learner], sign: float) -> AvgMetric:
    """A metric named ``score`` worth ``sign * epoch``: it improves (sign > 0) or worsens (sign < 0) every epoch."""

    def score(pred: Tensor, targ: Tensor) -> Tensor:
        return torch.tensor(sign * learn_ref[0].epoch)

    return AvgMetric(score)


def scored_learner(mnist: dict[str, np.ndarray], sign: float, **kwargs: Any) -> Learner:
    ref: list[Learner] = []
    learn = learner(mnist, metrics=[epoch_score(ref, sign)], **kwargs)
    ref.append(learn)
    return learn


def test_early_stopping_stops_when_the_valid_loss_stops_improving(mnist: dict[str, np.ndarray]) -> None:
    learn = learner(mnist, cbs=[EarlyStoppingCallback(patience=2)])
    logged = fit(learn, 10, lr=0.0)  # nothing learns: epoch 0 sets the best, epochs 1 and 2 fail to beat it
    assert len(learn.recorder.values) == 3  # type: ignore[attr-defined]
    assert logged == ["No improvement of valid_loss since epoch 0: stopping early."]


@pytest.mark.parametrize(("sign", "epochs_run"), [(-1.0, 2), (1.0, 5)])
def test_early_stopping_follows_a_metric_where_greater_is_better(
    mnist: dict[str, np.ndarray], sign: float, epochs_run: int
) -> None:
    learn = scored_learner(mnist, sign, cbs=[EarlyStoppingCallback(monitor="score", patience=1)])
    fit(learn, 5)
    assert len(learn.recorder.values) == epochs_run  # type: ignore[attr-defined]


class Snapshots(Callback):
    """Keeps a copy of the weights at the end of every epoch, as the trackers see them."""

    order = 55

    def before_fit(self) -> None:
        self.weights: list[dict[str, Tensor]] = []

    def after_epoch(self) -> None:
        self.weights.append(copy.deepcopy(self.learn.model.state_dict()))


class SpoilFrom(Callback):
    """From epoch ``start`` on, adds large noise to the weights after training, so validation gets worse."""

    def __init__(self, start: int) -> None:
        self.start = start

    def after_train(self) -> None:
        if self.learn.epoch >= self.start:
            gen = torch.Generator().manual_seed(self.learn.epoch)
            with torch.no_grad():
                for p in self.learn.model.parameters():
                    p.add_(torch.randn(p.shape, generator=gen) * 3.0)


def same_weights(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_save_model_restores_the_weights_of_the_best_epoch(mnist: dict[str, np.ndarray], tmp_path: Path) -> None:
    snaps = Snapshots()
    learn = learner(mnist, lr=1e-2, path=tmp_path, cbs=[SaveModelCallback(fname="best"), SpoilFrom(2), snaps])
    logged = fit(learn, 4)
    valid = [row[2] for row in learn.recorder.values]  # type: ignore[attr-defined]
    best = int(np.argmin(valid))
    assert best < 2 and min(valid[2:]) > max(valid[:2]), f"spoiled epochs must be worse: {valid}"
    assert same_weights(learn.model.state_dict(), snaps.weights[best])
    assert not same_weights(learn.model.state_dict(), snaps.weights[-1])
    assert (tmp_path / "models" / "best.pth").is_file()
    assert logged[-1].startswith(f"Better model found at epoch {best} with valid_loss value:")


def test_save_model_every_epoch_saves_each_epoch_and_keeps_the_final_weights(
    mnist: dict[str, np.ndarray], tmp_path: Path
) -> None:
    snaps = Snapshots()
    learn = learner(mnist, lr=1e-2, path=tmp_path, cbs=[SaveModelCallback(every_epoch=True), SpoilFrom(1), snaps])
    fit(learn, 3)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["model_0.pth", "model_1.pth", "model_2.pth"]
    assert same_weights(learn.model.state_dict(), snaps.weights[-1])
    saved = torch.load(tmp_path / "models" / "model_1.pth", weights_only=True)["model"]
    assert same_weights(saved, snaps.weights[1])


def test_save_model_at_end_saves_the_final_weights(mnist: dict[str, np.ndarray], tmp_path: Path) -> None:
    snaps = Snapshots()
    learn = learner(mnist, lr=1e-2, path=tmp_path, cbs=[SaveModelCallback(at_end=True), SpoilFrom(1), snaps])
    fit(learn, 2)
    saved = torch.load(tmp_path / "models" / "model.pth", weights_only=True)
    assert same_weights(saved["model"], snaps.weights[-1])
    assert "opt" not in saved


class LrPerEpoch(Callback):
    def before_fit(self) -> None:
        self.lrs: list[list[float]] = []

    def before_epoch(self) -> None:
        self.lrs.append([h["lr"] for h in self.learn.opt.hypers])  # type: ignore[union-attr]


def halves(model: nn.Module) -> list[list[Tensor]]:
    return [[model[1].weight], [model[1].bias]]


def test_reduce_lr_on_plateau_divides_every_group_lr_after_patience_epochs(mnist: dict[str, np.ndarray]) -> None:
    probe = LrPerEpoch()
    cb = ReduceLROnPlateau(monitor="score", patience=2, factor=10.0)
    learn = scored_learner(mnist, -1.0, opt_func=SGD, splitter=halves, cbs=[cb, probe])
    logged = fit(learn, 6, lr=slice(1e-3, 1e-2))
    # epoch 0 sets the best; after epochs 2 and 4 (two epochs without improvement each time) the lr is divided
    expected = [[1e-3, 1e-2]] * 3 + [[1e-4, 1e-3]] * 2 + [[1e-5, 1e-4]]
    assert np.allclose(probe.lrs, expected, rtol=1e-9)
    assert logged[0] == "Epoch 2: no improvement of score, lr reduced to 0.0001, 0.001."


def test_reduce_lr_on_plateau_leaves_the_lr_alone_while_the_metric_improves(mnist: dict[str, np.ndarray]) -> None:
    probe = LrPerEpoch()
    learn = scored_learner(mnist, 1.0, opt_func=SGD, cbs=[ReduceLROnPlateau(monitor="score"), probe])
    fit(learn, 4, lr=1e-2)
    assert probe.lrs == [[1e-2]] * 4


def test_reduce_lr_on_plateau_never_goes_below_min_lr(mnist: dict[str, np.ndarray]) -> None:
    probe = LrPerEpoch()
    cb = ReduceLROnPlateau(monitor="score", patience=1, min_lr=2e-3)
    learn = scored_learner(mnist, -1.0, opt_func=SGD, cbs=[cb, probe])
    fit(learn, 4, lr=1e-2)
    assert probe.lrs == [[1e-2], [1e-2], [2e-3], [2e-3]]


class NaNAt(Callback):
    """Makes the loss of one training batch NaN."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def after_loss(self) -> None:
        learn = self.learn
        if learn.training and (learn.epoch, learn.iter) == (self.epoch, self.batch):
            learn.loss = learn.loss * math.nan


@pytest.mark.parametrize("with_terminate", [True, False])
def test_terminate_on_nan_stops_training_at_the_first_nan_loss(
    mnist: dict[str, np.ndarray], with_terminate: bool
) -> None:
    cbs = [NaNAt(epoch=1, batch=2), *([TerminateOnNaNCallback()] if with_terminate else [])]
    learn = learner(mnist, lr=1e-2, cbs=cbs)
    logged = fit(learn, 3)
    n_batches = len(learn.dls.train)
    if with_terminate:
        assert learn.train_iter == n_batches + 3  # all of epoch 0, then batches 0, 1 and 2 of epoch 1
        assert len(learn.recorder.values) == 1  # type: ignore[attr-defined]
        assert logged == ["Loss is nan at epoch 1, training batch 2: stopping training."]
    else:
        assert learn.train_iter == 3 * n_batches


class Snapshot(Callback):
    """Keeps a copy of the weights as they were before each training batch."""

    def before_batch(self) -> None:
        if self.learn.training:
            self.weights = [p.detach().clone() for p in self.learn.model.parameters()]


def test_terminate_on_nan_stops_before_the_nan_loss_is_stepped_so_the_weights_stay_finite(
    mnist: dict[str, np.ndarray],
) -> None:
    snapshot = Snapshot()
    learn = learner(mnist, lr=1e-2, cbs=[NaNAt(epoch=0, batch=2), TerminateOnNaNCallback(), snapshot])
    logged = fit(learn, 2)
    assert logged == ["Loss is nan at epoch 0, training batch 2: stopping training."]
    for p, before in zip(learn.model.parameters(), snapshot.weights):
        assert bool(torch.isfinite(p).all())
        assert torch.equal(p, before)  # the NaN batch took no step
    assert all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in learn.model.parameters())


def test_a_tracker_names_the_columns_it_can_monitor(mnist: dict[str, np.ndarray]) -> None:
    learn = learner(mnist, cbs=[TrackerCallback(monitor="accuracy")])
    with pytest.raises(ValueError, match=r"monitor 'accuracy' is not recorded; choose one of \['train_loss', 'valid"):
        fit(learn, 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TrackerCallback(comp="lower"), "comp must be 'less', 'greater' or None.*got 'lower'"),
        (lambda: TrackerCallback(min_delta=-0.1), "min_delta must be a number >= 0, got -0.1"),
        (lambda: EarlyStoppingCallback(patience=0), "patience must be an int >= 1.*got 0"),
        (lambda: ReduceLROnPlateau(factor=0.1), "factor divides the lr, so it must be > 1, got 0.1"),
        (lambda: SaveModelCallback(every_epoch=-1), "every_epoch must be False, True or an int >= 1, got -1"),
    ],
)
def test_trackers_reject_bad_arguments_naming_the_value(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_the_direction_of_improvement_is_inferred_from_the_name() -> None:
    assert [infer_comp(n) for n in ("valid_loss", "train_loss", "error_rate", "mse", "accuracy", "f1_score")] == [
        "less",
        "less",
        "less",
        "less",
        "greater",
        "greater",
    ]


def test_an_improvement_must_beat_the_best_by_more_than_min_delta() -> None:
    assert is_improvement(0.89, 1.0, "less", min_delta=0.1)
    assert not is_improvement(0.9, 1.0, "less", min_delta=0.1)
    assert is_improvement(1.2, 1.0, "greater", min_delta=0.1)
    assert not is_improvement(1.05, 1.0, "greater", min_delta=0.1)
    assert not is_improvement(math.nan, math.inf, "less")


@pytest.mark.parametrize("cls", [EarlyStoppingCallback, ReduceLROnPlateau, SaveModelCallback])
def test_a_tracker_hands_its_best_and_patience_through_a_json_state(cls):
    import json

    tracker = cls(monitor="accuracy")
    tracker.best, tracker.best_epoch, tracker.new_best = 0.75, 3, True
    tracker.wait = 2  # patience trackers count it; SaveModelCallback does not, and its state leaves it out
    if cls is SaveModelCallback:
        tracker._saved_best = True
    copy = cls(monitor="accuracy")
    copy.load_state_dict(json.loads(json.dumps(tracker.state_dict())))
    assert (copy.best, copy.best_epoch, copy.new_best) == (0.75, 3, True)
    assert copy.state_dict() == tracker.state_dict()
