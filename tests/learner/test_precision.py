"""Mixed precision (bfloat16 on the CPU, float16 with loss scaling) and channels-last, on real MNIST digits."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from lamina.callbacks.training import GradientAccumulation
from lamina.data import DataLoader, DataLoaders
from lamina.learner import Callback, Learner, accuracy
from lamina.learner.precision import ChannelsLast, MixedPrecision, next_loss_scale, to_float, unscale_grads_


def digits(mnist: dict[str, np.ndarray], split: str, n: int) -> tuple[Tensor, Tensor]:
    """``n`` evenly spaced digits of ``split`` (the arrays are sorted by digit) as float images N x 1 x 28 x 28."""
    x, y = mnist[f"x_{split}"], mnist[f"y_{split}"]
    idx = np.linspace(0, len(x) - 1, n).astype(int)
    return torch.tensor(x[idx]).float().div(255).unsqueeze(1), torch.tensor(y[idx])


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def learner(mnist: dict[str, np.ndarray], model: nn.Module, n_train: int = 512, **kwargs: Any) -> Learner:
    x, y = digits(mnist, "train", n_train)
    xv, yv = digits(mnist, "valid", 200)
    dls = DataLoaders(DataLoader((x, y), bs=64, shuffle=True, seed=0), DataLoader((xv, yv), bs=100))
    return Learner(dls, model, **kwargs)


def fit(learn: Learner, n_epoch: int, **kwargs: Any) -> None:
    with learn.no_bar(), learn.no_logging():
        learn.fit(n_epoch, **kwargs)


class Dtypes(Callback):
    """Records the dtype of the predictions right after the forward pass and after the loss."""

    order = 20  # after MixedPrecision

    def __init__(self) -> None:
        self.pred: set[torch.dtype] = set()
        self.pred_after_loss: set[torch.dtype] = set()

    def after_pred(self) -> None:
        self.pred.add(self.learn.pred.dtype)

    def after_loss(self) -> None:
        self.pred_after_loss.add(self.learn.pred.dtype)


def test_bf16_mixed_precision_trains_on_cpu(mnist: dict[str, np.ndarray]) -> None:
    dtypes = Dtypes()
    learn = learner(mnist, mlp(), lr=1e-2, metrics=[accuracy], cbs=[dtypes]).to_bf16()
    with learn.no_bar():
        loss_before = learn.validate()[0]
    fit(learn, 2)
    loss_after, acc = learn.recorder.values[-1][2:4]  # type: ignore[attr-defined]
    assert dtypes.pred == {torch.bfloat16}, "the forward pass must run in bfloat16"
    assert dtypes.pred_after_loss == {torch.float32}, "predictions are handed on in float32"
    assert loss_after < loss_before / 2 and acc > 0.7
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())
    assert not torch.is_autocast_enabled("cpu"), "autocast must not leak out of the batch"


def test_without_mixed_precision_the_forward_pass_stays_float32(mnist: dict[str, np.ndarray]) -> None:
    removed, disabled = Dtypes(), Dtypes()
    fit(learner(mnist, mlp(), n_train=128, cbs=[removed]).to_bf16().to_fp32(), 1)
    fit(learner(mnist, mlp(), n_train=128, cbs=[disabled, MixedPrecision(torch.bfloat16, enabled=False)]), 1)
    assert removed.pred == disabled.pred == {torch.float32}


def test_bf16_predictions_are_gathered_in_float32(mnist: dict[str, np.ndarray]) -> None:
    learn = learner(mnist, mlp(), n_train=64).to_bf16()
    with learn.no_bar():
        preds, _ = learn.get_preds()
    assert preds.dtype == torch.float32 and preds.shape == (200, 10)


def cpu_fp16_autocast() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return bool(nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float16)
    except (RuntimeError, AssertionError):
        return False


needs_fp16 = pytest.mark.skipif(not cpu_fp16_autocast(), reason="this torch has no float16 autocast on the CPU")


@needs_fp16
def test_fp16_mixed_precision_scales_the_loss_and_trains(mnist: dict[str, np.ndarray]) -> None:
    dtypes = Dtypes()
    mp = MixedPrecision(torch.float16, init_scale=2.0**10, growth_interval=4)
    learn = learner(mnist, mlp(), lr=3e-3, cbs=[dtypes, mp])
    with learn.no_bar():
        loss_before = learn.validate()[0]
    fit(learn, 2)
    assert dtypes.pred == {torch.float16}
    assert learn.recorder.values[-1][2] < loss_before / 2  # type: ignore[attr-defined]
    assert max(learn.recorder.losses) < 5, "the recorder must see the unscaled loss"  # type: ignore[attr-defined]
    assert mp.skipped_steps == 0 and mp.scale == 2.0**10 * 2**4  # 16 good steps: the scale doubled 4 times


@needs_fp16
def test_fp16_skips_steps_whose_gradients_overflow_and_backs_off_the_scale(mnist: dict[str, np.ndarray]) -> None:
    model = mlp()
    init = copy.deepcopy(model.state_dict())
    mp = MixedPrecision(torch.float16, init_scale=2.0**140)  # beyond float32: the scaled gradients are infinite
    learn = learner(mnist, model, n_train=192, lr=1e-2, cbs=[mp])
    fit(learn, 1)
    assert mp.skipped_steps == 3 and mp.scale == 2.0**137
    assert all(torch.equal(v, init[k]) for k, v in model.state_dict().items()), "a skipped step changes nothing"


@needs_fp16
def test_fp16_with_gradient_accumulation_records_the_true_loss(mnist: dict[str, np.ndarray]) -> None:
    init = mlp()
    learn = learner(mnist, copy.deepcopy(init), n_train=128, cbs=[GradientAccumulation(128), MixedPrecision()])
    fit(learn, 1)
    x, y = digits(mnist, "train", 128)
    losses = learn.recorder.losses  # type: ignore[attr-defined]
    assert len(losses) == 2  # two batches of 64, one step at the end
    with torch.no_grad():
        full = learn.loss_func(init(x), y).item()
    assert np.mean(losses) == pytest.approx(full, rel=1e-2), "the mean batch loss of one unchanged model"


def test_mixed_precision_rejects_float16_weights(mnist: dict[str, np.ndarray]) -> None:
    learn = learner(mnist, mlp().half(), n_train=64, cbs=[MixedPrecision(torch.float16)])
    with pytest.raises(ValueError, match=r"keeps float32 weights, but 1.weight is float16; call model.float\(\)"):
        fit(learn, 1)


def test_mixed_precision_rejects_a_dtype_that_is_not_half() -> None:
    with pytest.raises(ValueError, match=r"dtype must be torch\.float16 or torch\.bfloat16, got torch\.float32"):
        MixedPrecision(torch.float32)


def test_unscaling_divides_the_gradients_and_reports_overflow() -> None:
    grads = [torch.tensor([2.0, -4.0]), torch.tensor([8.0], dtype=torch.float64)]
    assert unscale_grads_(grads, 2.0) is False
    assert grads[0].tolist() == [1.0, -2.0] and grads[1].tolist() == [4.0]
    assert unscale_grads_([torch.tensor([1.0]), torch.tensor([float("nan")])], 2.0) is True
    assert unscale_grads_([], 2.0) is False


def test_the_loss_scale_halves_on_overflow_and_doubles_after_growth_interval_good_steps() -> None:
    scale, good = 8.0, 0
    history = []
    for found_inf in (False, False, False, True, False, False, False):
        scale, good = next_loss_scale(scale, good, found_inf, growth_interval=3)
        history.append(scale)
    assert history == [8.0, 8.0, 16.0, 8.0, 8.0, 8.0, 16.0]


def test_to_float_casts_only_half_tensors() -> None:
    out = to_float({"a": [torch.ones(1, dtype=torch.float16)], "b": torch.ones(1, dtype=torch.float64)})
    assert out["a"][0].dtype == torch.float32 and out["b"].dtype == torch.float64


class InputLayout(Callback):
    order = 20  # after ChannelsLast

    def before_fit(self) -> None:
        self.channels_last: set[bool] = set()

    def after_pred(self) -> None:
        self.channels_last.add(self.learn.xb[0].is_contiguous(memory_format=torch.channels_last))


@pytest.mark.parametrize("with_channels_last", [True, False])
def test_channels_last_puts_the_model_and_the_inputs_in_channels_last(
    mnist: dict[str, np.ndarray], with_channels_last: bool
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 10))  # fmt: skip
    x, y = digits(mnist, "train", 128)
    xv, yv = digits(mnist, "valid", 64)
    rgb = DataLoaders(DataLoader((x.expand(-1, 3, -1, -1).contiguous(), y), bs=32),
                      DataLoader((xv.expand(-1, 3, -1, -1).contiguous(), yv), bs=64))  # fmt: skip
    layout = InputLayout()
    learn = Learner(rgb, model, cbs=[layout, *([ChannelsLast()] if with_channels_last else [])])
    fit(learn, 1)
    convs = [model[0].weight, model[2].weight]
    assert all(w.is_contiguous(memory_format=torch.channels_last) == with_channels_last for w in convs)
    assert layout.channels_last == {with_channels_last}
