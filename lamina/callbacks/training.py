"""Callbacks that change how a training step is taken: gradient clipping, gradient accumulation, frozen norm stats."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lamina.learner.callback import Callback, CancelBatchException, TrainEvalCallback
from lamina.learner.precision import MixedPrecision
from lamina.learner.recorder import batch_size

__all__ = ["BnFreeze", "GradientAccumulation", "GradientClip", "frozen_norm_layers"]

_STAT_NORMS = (nn.modules.batchnorm._NormBase,)  # batch and instance norms: the layers with running statistics


class GradientClip(Callback):
    """Clip the norm of the model's gradients to ``max_norm`` before each step (``clip_grad_norm_``).

    Runs after ``MixedPrecision`` unscales the gradients. ``last_norm`` is the norm before clipping.

    Args:
        max_norm: the largest allowed total norm.
        norm_type: the p of the p-norm (``float("inf")`` for the max norm).

    Examples:
        >>> GradientClip(max_norm=0.5).max_norm
        0.5
    """

    run_after = (MixedPrecision,)

    def __init__(self, max_norm: float = 1.0, norm_type: float = 2.0) -> None:
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        if not norm_type > 0:
            raise ValueError(f"norm_type must be > 0 (2.0 for the euclidean norm), got {norm_type}")
        self.max_norm, self.norm_type = float(max_norm), float(norm_type)
        self.last_norm: Tensor | None = None

    def before_step(self) -> None:
        params = [p for p in self.learn.model.parameters() if p.grad is not None]
        self.last_norm = nn.utils.clip_grad_norm_(params, self.max_norm, self.norm_type)


class GradientAccumulation(Callback):
    """Accumulate gradients over batches until ``n_acc`` items have been seen, then take one step.

    Each batch's loss is scaled by ``bs / n_acc`` for the backward pass (``learn.loss`` is restored after it), so with
    a mean-reduced loss the step uses the mean gradient over the accumulated items, as one batch of ``n_acc`` would.
    When the batches do not divide ``n_acc`` the gradients are rescaled before the step to stay a mean. Items left
    over when ``fit`` ends are not stepped on.

    Args:
        n_acc: items to accumulate before each step.

    Examples:
        >>> GradientAccumulation(n_acc=64).n_acc
        64
        >>> GradientAccumulation().state_dict()
        {'count': 0}
    """

    run_after = (MixedPrecision,)  # its after_backward restores the loss before this one may cancel the batch
    run_valid = False

    def __init__(self, n_acc: int = 32) -> None:
        if isinstance(n_acc, bool) or not isinstance(n_acc, int) or n_acc < 1:
            raise ValueError(f"n_acc must be an int >= 1 (items per step), got {n_acc!r}")
        self.n_acc, self.count = n_acc, 0
        self._loss: Tensor | None = None
        self._scaled: Tensor | None = None

    def before_fit(self) -> None:
        self.count = 0
        if self.learn.opt is not None:
            self.learn.opt.zero_grad()

    def state_dict(self) -> dict[str, Any]:
        """The items accumulated since the last step (their gradients are saved by the checkpoint itself)."""
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.count = state["count"]

    def before_backward(self) -> None:
        learn = self.learn
        self._loss = learn.loss
        self._scaled = learn.loss = learn.loss * (batch_size(learn.xb, learn.yb) / self.n_acc)

    def after_backward(self) -> None:
        learn = self.learn
        loss, scaled = self._loss, self._scaled
        self._loss = self._scaled = None
        if loss is not None and learn.loss is scaled:
            learn.loss = loss
        self.count += batch_size(learn.xb, learn.yb)
        if self.count < self.n_acc:
            raise CancelBatchException()  # no step and no zero_grad: the gradients keep accumulating
        if self.count != self.n_acc:
            _scale_grads_(self.learn.model.parameters(), self.n_acc / self.count)
        self.count = 0


def _scale_grads_(params: Iterable[Tensor], factor: float) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        torch._foreach_mul_(grads, factor)


def frozen_norm_layers(model: nn.Module, param_lists: Sequence[Sequence[Tensor]], frozen_idx: int) -> list[nn.Module]:
    """The batch / instance norm layers of ``model`` whose parameters all belong to the groups before ``frozen_idx``.

    Layers without parameters (``affine=False``) belong to no group and are never returned.

    Args:
        model: the network.
        param_lists: the optimizer's parameter groups.
        frozen_idx: groups before this index are frozen.

    Examples:
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1), nn.BatchNorm1d(1))
        >>> groups = [list(model[:2].parameters()), list(model[2:].parameters())]
        >>> frozen_norm_layers(model, groups, frozen_idx=1)
        [BatchNorm1d(3, ...)]
    """
    frozen = {id(p) for group in param_lists[:frozen_idx] for p in group}
    layers: list[nn.Module] = []
    for m in model.modules():
        params = list(m.parameters(recurse=False))
        if isinstance(m, _STAT_NORMS) and params and all(id(p) in frozen for p in params):
            layers.append(m)
    return layers


class BnFreeze(Callback):
    """Keep the batch / instance norm layers of the frozen parameter groups in eval mode during training, so their
    running statistics stay those of pretraining (see ``Learner.freeze``).

    Examples:
        >>> BnFreeze().name
        'bn_freeze'
    """

    run_after = (TrainEvalCallback,)  # which puts the whole model in train mode first

    def before_train(self) -> None:
        opt = self.learn.opt
        if opt is None or opt.frozen_idx == 0:
            return
        for layer in frozen_norm_layers(self.learn.model, opt.param_lists, opt.frozen_idx):
            layer.eval()
