"""Gradient accumulation, gradient clipping and BnFreeze, on real MNIST digits."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from lamina.callbacks.training import BnFreeze, GradientAccumulation, GradientClip, frozen_norm_layers
from lamina.data import DataLoader, DataLoaders
from lamina.learner import Callback, Learner
from lamina.optim import SGD


def digits(mnist: dict[str, np.ndarray], split: str, n: int) -> tuple[Tensor, Tensor]:
    """``n`` evenly spaced digits of ``split`` (the arrays are sorted by digit) as float images N x 1 x 28 x 28."""
    x, y = mnist[f"x_{split}"], mnist[f"y_{split}"]
    idx = np.linspace(0, len(x) - 1, n).astype(int)
    return torch.tensor(x[idx]).float().div(255).unsqueeze(1), torch.tensor(y[idx])


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def learner(mnist: dict[str, np.ndarray], model: nn.Module, n_train: int, bs: int, **kwargs: object) -> Learner:
    x, y = digits(mnist, "train", n_train)
    xv, yv = digits(mnist, "valid", 100)
    dls = DataLoaders(DataLoader((x, y), bs=bs), DataLoader((xv, yv), bs=100))
    return Learner(dls, model, **kwargs)  # type: ignore[arg-type]


def fit(learn: Learner, n_epoch: int = 1, **kwargs: object) -> None:
    with learn.no_bar(), learn.no_logging():
        learn.fit(n_epoch, **kwargs)  # type: ignore[arg-type]


class CountSteps(Callback):
    """Counts the optimizer steps actually taken."""

    def before_fit(self) -> None:
        self.steps = 0

    def after_step(self) -> None:
        self.steps += 1


def max_weight_gap(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def test_gradient_accumulation_over_4_batches_of_16_equals_one_batch_of_64(mnist: dict[str, np.ndarray]) -> None:
    init = linear_model()
    acc, big, every = copy.deepcopy(init), copy.deepcopy(init), copy.deepcopy(init)
    steps = CountSteps()
    learn_acc = learner(mnist, acc, 64, bs=16, opt_func=SGD, lr=0.5, cbs=[GradientAccumulation(n_acc=64), steps])
    fit(learn_acc)
    fit(learner(mnist, big, 64, bs=64, opt_func=SGD, lr=0.5))
    fit(learner(mnist, every, 64, bs=16, opt_func=SGD, lr=0.5))
    assert steps.steps == 1
    assert max_weight_gap(acc, big) < 1e-5
    assert max_weight_gap(init, big) > 1e-3, "the step must move the weights, or the comparison proves nothing"
    assert max_weight_gap(every, big) > 1e-3, "stepping every batch must differ from the big batch"


def test_gradient_accumulation_records_the_unscaled_batch_losses(mnist: dict[str, np.ndarray]) -> None:
    init = linear_model()
    learn = learner(mnist, copy.deepcopy(init), 64, bs=16, opt_func=SGD, lr=0.5, cbs=[GradientAccumulation(64)])
    fit(learn)
    x, y = digits(mnist, "train", 64)
    with torch.no_grad():  # no step happens before the 4th batch ends, so every batch sees the initial weights
        expected = [learn.loss_func(init(x[i : i + 16]), y[i : i + 16]).item() for i in range(0, 64, 16)]
    assert learn.recorder.losses == pytest.approx(expected, rel=1e-5)  # type: ignore[attr-defined]


def test_gradient_accumulation_steps_on_the_mean_gradient_when_batches_do_not_divide_n_acc(
    mnist: dict[str, np.ndarray],
) -> None:
    init = linear_model()
    acc, big = copy.deepcopy(init), copy.deepcopy(init)
    steps = CountSteps()
    # batches of 16 with n_acc=40: one step after 48 items; the last 16 items wait for a step that never comes
    fit(learner(mnist, acc, 64, bs=16, opt_func=SGD, lr=0.5, cbs=[GradientAccumulation(n_acc=40), steps]))
    x, y = digits(mnist, "train", 64)
    xv, yv = digits(mnist, "valid", 100)
    dls = DataLoaders(DataLoader((x[:48], y[:48]), bs=48), DataLoader((xv, yv), bs=100))
    fit(Learner(dls, big, opt_func=SGD, lr=0.5))
    assert steps.steps == 1
    assert max_weight_gap(acc, big) < 1e-5


def test_gradient_accumulation_rejects_a_non_positive_n_acc() -> None:
    with pytest.raises(ValueError, match=r"n_acc must be an int >= 1 \(items per step\), got 0"):
        GradientAccumulation(n_acc=0)


class GradNorm(Callback):
    """Records the total gradient norm the optimizer is about to use."""

    run_after = (GradientClip,)

    def before_fit(self) -> None:
        self.norms: list[float] = []

    def before_step(self) -> None:
        grads = [p.grad for p in self.learn.model.parameters() if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())


def test_gradient_clip_bounds_the_gradient_norm_the_optimizer_sees(mnist: dict[str, np.ndarray]) -> None:
    clip, probe = GradientClip(max_norm=0.05), GradNorm()
    raw = GradNorm()
    fit(learner(mnist, linear_model(), 256, bs=32, opt_func=SGD, lr=0.1, cbs=[raw]))
    assert max(raw.norms) > 0.05, "without clipping the gradients must be larger, or the test proves nothing"
    fit(learner(mnist, linear_model(), 256, bs=32, opt_func=SGD, lr=0.1, cbs=[clip, probe]))
    assert len(probe.norms) == 8
    assert max(probe.norms) <= 0.05 * (1 + 1e-4)
    assert clip.last_norm is not None


def test_gradient_clip_rejects_a_non_positive_max_norm() -> None:
    with pytest.raises(ValueError, match="max_norm must be > 0, got 0"):
        GradientClip(max_norm=0)


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
    head = nn.Sequential(nn.Linear(4 * 13 * 13, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    return nn.Sequential(body, head)


def body_head(model: nn.Module) -> list[list[Tensor]]:
    return [list(model[0].parameters()), list(model[1].parameters())]


def stats(bn: nn.Module) -> list[Tensor]:
    return [t.clone() for t in bn.buffers()]


def same(a: list[Tensor], b: list[Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("with_bn_freeze", [True, False])
def test_bn_freeze_keeps_the_running_stats_of_frozen_norm_layers(
    mnist: dict[str, np.ndarray], with_bn_freeze: bool
) -> None:
    model = bn_model()
    cbs = [BnFreeze()] if with_bn_freeze else []
    learn = learner(mnist, model, 128, bs=32, splitter=body_head, lr=1e-2, cbs=cbs)
    learn.freeze()
    body_bn, head_bn = model[0][1], model[1][1]
    body_before, head_before = stats(body_bn), stats(head_bn)
    fit(learn)
    assert same(stats(body_bn), body_before) == with_bn_freeze
    assert not same(stats(head_bn), head_before), "the head is trainable: its statistics must move"


def test_bn_freeze_lets_every_norm_layer_learn_once_unfrozen(mnist: dict[str, np.ndarray]) -> None:
    model = bn_model()
    learn = learner(mnist, model, 128, bs=32, splitter=body_head, lr=1e-2, cbs=[BnFreeze()])
    learn.unfreeze()
    before = stats(model[0][1])
    fit(learn)
    assert not same(stats(model[0][1]), before)


def test_frozen_norm_layers_are_those_whose_parameters_are_all_frozen() -> None:
    model = bn_model()
    groups = body_head(model)
    assert frozen_norm_layers(model, groups, 1) == [model[0][1]]
    assert frozen_norm_layers(model, groups, 2) == [model[0][1], model[1][1]]
    assert frozen_norm_layers(model, groups, 0) == []
