"""Hooks see what layers compute and never outlive their use; ActivationStats records true statistics of a real
MNIST training run and draws them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lamina.callbacks.hooks import (
    ActivationStats,
    Hook,
    Hooks,
    activation_stats,
    hook_output,
    hook_outputs,
    model_sizes,
)
from lamina.data import DataLoader, DataLoaders
from lamina.learner.callback import Callback, CancelFitException
from lamina.learner.learner import Learner
from lamina.learner.losses import CrossEntropyLossFlat
from tests.conftest import assert_png


def mnist_dls(mnist: dict[str, np.ndarray], n_train: int = 320, bs: int = 64) -> DataLoaders:
    """Evenly spaced real digits as float (N, 1, 28, 28) images in [0, 1]."""
    ti = np.linspace(0, len(mnist["x_train"]) - 1, n_train).astype(int)
    vi = np.linspace(0, len(mnist["x_valid"]) - 1, 128).astype(int)
    x = torch.from_numpy(mnist["x_train"][ti]).float().unsqueeze(1) / 255
    xv = torch.from_numpy(mnist["x_valid"][vi]).float().unsqueeze(1) / 255
    y, yv = torch.from_numpy(mnist["y_train"][ti]), torch.from_numpy(mnist["y_valid"][vi])
    return DataLoaders(DataLoader((x, y), bs=bs, shuffle=True, seed=0), DataLoader((xv, yv), bs=bs))


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1),  # 14x14
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),  # 7x7
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def all_hooks(model: nn.Module) -> int:
    """How many forward hooks are on the model's modules."""
    return sum(len(m._forward_hooks) for m in model.modules())


def test_a_hook_stores_exactly_what_its_layer_outputs():
    model, x = small_cnn(), torch.rand(4, 1, 28, 28)
    with hook_output(model[1]) as hook:
        out = model(x)
    expected = torch.relu(model[0](x))
    torch.testing.assert_close(hook.stored, expected)
    assert not hook.stored.requires_grad, "detached by default"
    assert out.shape == (4, 10)


def test_undetached_outputs_keep_their_graph():
    model = small_cnn()
    with hook_outputs([model[0], model[2]], detach=False) as hooks:
        model(torch.rand(2, 1, 28, 28)).sum().backward()
        assert all(o.grad_fn is not None for o in hooks.stored)
    assert [tuple(o.shape) for o in hooks.stored] == [(2, 8, 14, 14), (2, 16, 7, 7)]


def test_hooks_are_gone_after_remove_or_the_with_block():
    model = small_cnn()
    hook = Hook(model[0], fn=lambda m, i, o: o.mean())
    assert all_hooks(model) == 1
    hook.remove()
    hook.remove()  # twice is harmless
    assert all_hooks(model) == 0
    with Hooks(model.children()) as hooks:
        assert all_hooks(model) == len(model) == len(hooks)
    assert all_hooks(model) == 0
    stale = hooks[0].stored
    model(torch.rand(1, 1, 28, 28))
    assert hooks[0].stored is stale, "a removed hook stores nothing more"


def test_hooks_can_move_outputs_to_the_cpu_and_apply_a_function():
    layer = nn.Linear(3, 2)
    with Hook(layer, fn=lambda m, inputs, out: (inputs[0].shape, out.device.type), cpu=True) as hook:
        layer(torch.rand(5, 3))
    assert hook.stored == (torch.Size([5, 3]), "cpu")
    with pytest.raises(TypeError, match=r"nn\.Module, got str"):
        Hook("conv")  # type: ignore[arg-type]


def test_model_sizes_gives_each_childs_output_shape_and_keeps_the_mode():
    model = small_cnn().train()
    sizes = model_sizes(model, (28, 28))
    assert [tuple(s) for s in sizes] == [
        (1, 8, 14, 14), (1, 8, 14, 14), (1, 16, 7, 7), (1, 16, 7, 7), (1, 16, 1, 1), (1, 16), (1, 10),
    ]  # fmt: skip
    assert model.training and all_hooks(model) == 0
    assert tuple(model_sizes(model.eval(), (64, 32))[2]) == (1, 16, 16, 8) and not model.training
    with pytest.raises(ValueError, match="n_in="):
        model_sizes(nn.Sequential(nn.ReLU()), (4, 4))
    assert tuple(model_sizes(nn.Sequential(nn.ReLU()), (4, 4), n_in=2)[0]) == (1, 2, 4, 4)


def test_activation_stats_match_numpy():
    a = torch.randn(1000) * 2 + 1
    a[:100] = 0
    stats, hist = activation_stats(a, near_zero=0.01, bins=10, hist_max=5.0)
    v = a.numpy()
    np.testing.assert_allclose(stats.numpy(), [v.mean(), v.std(ddof=1), np.mean(np.abs(v) <= 0.01)], rtol=1e-5)
    np.testing.assert_allclose(hist.numpy(), np.histogram(np.abs(v), bins=10, range=(0, 5))[0])


class KeepPred(Callback):
    """Keeps the model output of every training batch (the output of the last, hooked, layer)."""

    order = 10
    run_valid = False

    def __init__(self) -> None:
        self.preds: list[torch.Tensor] = []

    def after_pred(self) -> None:
        self.preds.append(self.learn.pred.detach().clone())


def fit_with_stats(mnist, stats: ActivationStats, n_epoch: int = 1) -> tuple[Learner, KeepPred]:
    learn = Learner(mnist_dls(mnist), small_cnn(), loss_func=CrossEntropyLossFlat())
    keep = KeepPred()
    with learn.no_bar(), learn.no_logging():
        learn.fit(n_epoch, lr=3e-3, cbs=[stats, keep])
    return learn, keep


def test_activation_stats_records_every_training_batch_of_each_layer(mnist):
    stats = ActivationStats()
    learn, keep = fit_with_stats(mnist, stats, n_epoch=2)
    n_batches = 2 * len(learn.dls.train)
    assert stats.layer_names == ["Conv2d", "Conv2d", "Linear"], "by default: the leaf layers with parameters"
    assert stats.stats.shape == (n_batches, 3, 3) and stats.hists.shape == (n_batches, 3, 40)
    last = torch.stack(keep.preds)  # the Linear layer's output is the prediction
    torch.testing.assert_close(stats.stats[:, 2, 0], last.mean(dim=(1, 2)))
    torch.testing.assert_close(stats.stats[:, 2, 1], last.flatten(1).std(dim=1))
    assert all_hooks(learn.model) == 0, "no hook is left after fit"


class KeepLayer(Callback):
    """Keeps the output of one layer for every training batch, through a hook of its own."""

    order = 10
    run_valid = False

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.outputs: list[torch.Tensor] = []

    def before_fit(self) -> None:
        self.hook = hook_output(self.layer)

    def after_pred(self) -> None:
        self.outputs.append(self.hook.stored.clone())

    def after_fit(self) -> None:
        self.hook.remove()


def test_activation_stats_of_a_relu_are_its_true_zero_fraction_every_other_batch(mnist):
    model = small_cnn()
    learn = Learner(mnist_dls(mnist), model, loss_func=CrossEntropyLossFlat())
    stats, keep = ActivationStats(modules=[model[1]], every=2), KeepLayer(model[1])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=3e-3, cbs=[stats, keep])
    assert len(keep.outputs) == len(learn.dls.train) == 5
    recorded = keep.outputs[::2]  # train_iter 0, 2, 4
    assert stats.stats.shape == (3, 1, 3)
    zeros = torch.stack([(o.abs() <= 0.01).float().mean() for o in recorded])
    torch.testing.assert_close(stats.stats[:, 0, 2], zeros)
    assert bool((zeros > 0.1).all()), "a ReLU layer has many zeros"
    torch.testing.assert_close(stats.stats[:, 0, 0], torch.stack([o.mean() for o in recorded]))
    assert all_hooks(learn.model) == 0


def test_activation_stats_removes_its_hooks_when_fit_is_cancelled(mnist):
    class StopEarly(Callback):
        def after_batch(self) -> None:
            if self.learn.train_iter >= 2:
                raise CancelFitException

    stats = ActivationStats(every=2)
    learn = Learner(mnist_dls(mnist), small_cnn(), loss_func=CrossEntropyLossFlat())
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=[stats, StopEarly()])
    assert all_hooks(learn.model) == 0
    assert stats.stats.shape[0] == 1, "batches 0 and 1 ran; every=2 recorded batch 0 only"


def test_activation_stats_plots_are_real_pictures(mnist, tmp_path):
    stats = ActivationStats()
    fit_with_stats(mnist, stats)
    stats.plot_layer_stats(0).savefig(tmp_path / "layer.png")
    stats.color_dim().savefig(tmp_path / "colors.png")
    stats.color_dim(-1).savefig(tmp_path / "colors_last.png")
    for name in ("layer.png", "colors.png", "colors_last.png"):
        assert_png(tmp_path / name)
    with pytest.raises(IndexError, match=r"layer index 3 .* 3 layers"):
        stats.plot_layer_stats(3)


def test_bad_settings_are_refused_with_the_value():
    with pytest.raises(ValueError, match=r"every must be >= 1.*got 0"):
        ActivationStats(every=0)
    with pytest.raises(ValueError, match="bins=0"):
        ActivationStats(bins=0)
