"""Losses that know their activation and how to decode predictions.

Every loss here is an ``nn.Module`` with ``forward(pred, targ)``, ``activation(pred)`` (raw outputs to
probabilities or values), ``decodes(pred)`` (raw outputs to labels or values) and a ``reduction`` of ``"mean"``,
``"sum"`` or ``"none"``. ``get_config()`` returns JSON-safe settings (weight tensors as lists) and ``cls(**config)``
rebuilds the same loss.

The "Flat" losses accept outputs and targets of any matching layout: ``CrossEntropyLossFlat(axis=1)`` flattens
``(N, C, H, W)`` outputs to ``(N*H*W, C)`` so one loss serves classification and segmentation, and the regression
and binary losses reshape ``(N, 1)`` outputs to ``(N,)`` targets. With ``reduction="none"`` they return one loss per
target element, in the targets' shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BCELossFlat",
    "BCEWithLogitsLossFlat",
    "CrossEntropyLossFlat",
    "DiceLoss",
    "FocalLoss",
    "FocalLossFlat",
    "L1LossFlat",
    "LabelSmoothingCrossEntropy",
    "MSELossFlat",
    "focal_loss",
    "label_smoothing_cross_entropy",
    "soft_dice_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_range(name: str, value: float, low: float, high: float | None = None) -> float:
    if value < low or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return float(value)


def _as_weight(weight: Sequence[float] | Tensor | None, name: str) -> Tensor | None:
    """``weight`` as a 1-D float tensor (lists come back from ``get_config``), or ``None``."""
    if weight is None:
        return None
    tensor = torch.as_tensor(weight, dtype=torch.float32).detach().clone()
    if tensor.ndim != 1:
        raise ValueError(f"{name} must be 1-D, one value per class, got shape {tuple(tensor.shape)}")
    return tensor


def _like(weight: Tensor | None, pred: Tensor) -> Tensor | None:
    """``weight`` on the device and in the float dtype of ``pred`` (the loss may not have been moved with the model)."""
    return None if weight is None else weight.to(device=pred.device, dtype=pred.dtype)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _flat_logits(pred: Tensor, targ: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """Class dim ``axis`` moved last and everything else flattened: logits ``(M, C)`` and targets ``(M,)``."""
    logits = pred.movedim(axis, -1)
    logits = logits.reshape(-1, logits.shape[-1])
    flat = targ.reshape(-1)
    if len(logits) != len(flat):
        raise ValueError(
            f"predictions of shape {tuple(pred.shape)} with classes on axis={axis} do not match targets of shape "
            f"{tuple(targ.shape)}; use axis=1 for (N, C, H, W) outputs and axis=-1 for (N, C) or (N, L, C)"
        )
    return logits, flat.long()


def _matched(pred: Tensor, targ: Tensor, owner: str) -> tuple[Tensor, Tensor]:
    """Predictions reshaped to the targets' shape; targets cast to the predictions' float dtype."""
    if pred.numel() != targ.numel():
        raise ValueError(
            f"{owner} needs one prediction per target, got predictions of shape {tuple(pred.shape)} for targets "
            f"of shape {tuple(targ.shape)}"
        )
    return pred.reshape(targ.shape), targ.to(pred.dtype)


class _ConfigLoss(nn.Module):
    """Shared members: ``get_config`` from ``config_keys``, identity ``activation`` and ``decodes``."""

    config_keys: tuple[str, ...] = ("reduction",)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-safe (tensors as lists): ``type(self)(**config)`` rebuilds the loss."""
        config = {key: getattr(self, key) for key in self.config_keys}
        return {key: value.tolist() if isinstance(value, Tensor) else value for key, value in config.items()}

    def activation(self, pred: Tensor) -> Tensor:
        """Raw outputs to what the loss compares with the targets (probabilities, or the outputs themselves)."""
        return pred

    def decodes(self, pred: Tensor) -> Tensor:
        """Raw outputs to decoded predictions (labels, booleans or values)."""
        return pred

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())


class CrossEntropyLossFlat(_ConfigLoss):
    """Cross-entropy over the class dim ``axis``, after flattening every other dim; softmax, argmax to decode.

    Args:
        axis: the class dim of the outputs: -1 for ``(N, C)`` or ``(N, L, C)``, 1 for ``(N, C, H, W)``.
        weight: one weight per class, or ``None``.
        ignore_index: a target value that adds no loss.
        label_smoothing: share of the target mass spread evenly over the classes, in ``[0, 1]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one loss per target, in the targets' shape).

    Examples:
        >>> loss_func = CrossEntropyLossFlat(axis=1)
        >>> pred = torch.zeros(2, 3, 4, 4)  # segmentation logits: (N, C, H, W)
        >>> round(float(loss_func(pred, torch.zeros(2, 4, 4, dtype=torch.long))), 4)  # log(3)
        1.0986
        >>> loss_func.decodes(pred).shape
        torch.Size([2, 4, 4])
        >>> CrossEntropyLossFlat(weight=[1.0, 2.0]).get_config()["weight"]
        [1.0, 2.0]
    """

    config_keys = ("axis", "weight", "ignore_index", "label_smoothing", "reduction")
    weight: Tensor | None

    def __init__(
        self,
        axis: int = -1,
        weight: Sequence[float] | Tensor | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.axis, self.ignore_index, self.reduction = int(axis), int(ignore_index), _check_reduction(reduction)
        self.label_smoothing = _check_range("label_smoothing", label_smoothing, 0.0, 1.0)
        self.register_buffer("weight", _as_weight(weight, "weight"), persistent=False)

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        logits, flat = _flat_logits(pred, targ, self.axis)
        loss = F.cross_entropy(
            logits,
            flat,
            weight=_like(self.weight, logits),
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            reduction=self.reduction,
        )
        return loss.reshape(targ.shape) if self.reduction == "none" else loss

    def activation(self, pred: Tensor) -> Tensor:
        return F.softmax(pred, dim=self.axis)

    def decodes(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=self.axis)


class BCEWithLogitsLossFlat(_ConfigLoss):
    """Binary cross-entropy on logits, one per target; sigmoid activation, decodes to ``probability > thresh``.

    Args:
        thresh: the probability above which ``decodes`` predicts 1.
        pos_weight: weight of the positive examples, one per label (last dim of the targets), or ``None``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> loss_func = BCEWithLogitsLossFlat()
        >>> pred = torch.tensor([[0.0], [2.0]])  # (N, 1) outputs for (N,) targets
        >>> round(float(loss_func(pred, torch.tensor([1.0, 1.0]))), 4)
        0.4100
        >>> loss_func.decodes(torch.tensor([-1.0, 0.5]))
        tensor([False,  True])
    """

    config_keys = ("thresh", "pos_weight", "reduction")
    pos_weight: Tensor | None

    def __init__(
        self, thresh: float = 0.5, pos_weight: Sequence[float] | Tensor | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.thresh, self.reduction = _check_range("thresh", thresh, 0.0, 1.0), _check_reduction(reduction)
        self.register_buffer("pos_weight", _as_weight(pos_weight, "pos_weight"), persistent=False)

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        pred, targ = _matched(pred, targ, type(self).__name__)
        return F.binary_cross_entropy_with_logits(
            pred, targ, pos_weight=_like(self.pos_weight, pred), reduction=self.reduction
        )

    def activation(self, pred: Tensor) -> Tensor:
        return torch.sigmoid(pred)

    def decodes(self, pred: Tensor) -> Tensor:
        return torch.sigmoid(pred) > self.thresh


class BCELossFlat(_ConfigLoss):
    """Binary cross-entropy on probabilities (the model ends with a sigmoid); decodes to ``pred > thresh``.

    Args:
        thresh: the probability above which ``decodes`` predicts 1.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> loss_func = BCELossFlat()
        >>> round(float(loss_func(torch.tensor([[0.5], [0.9]]), torch.tensor([1.0, 0.0]))), 4)
        1.4979
        >>> loss_func.decodes(torch.tensor([0.2, 0.7]))
        tensor([False,  True])
    """

    config_keys = ("thresh", "reduction")

    def __init__(self, thresh: float = 0.5, reduction: str = "mean") -> None:
        super().__init__()
        self.thresh, self.reduction = _check_range("thresh", thresh, 0.0, 1.0), _check_reduction(reduction)

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        pred, targ = _matched(pred, targ, type(self).__name__)
        return F.binary_cross_entropy(pred, targ, reduction=self.reduction)

    def decodes(self, pred: Tensor) -> Tensor:
        return pred > self.thresh


class MSELossFlat(_ConfigLoss):
    """Mean squared error, outputs reshaped to the targets' shape; activation and decodes return the outputs.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> MSELossFlat()(torch.tensor([[1.0], [3.0]]), torch.tensor([1.0, 1.0]))
        tensor(2.)
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        pred, targ = _matched(pred, targ, type(self).__name__)
        return F.mse_loss(pred, targ, reduction=self.reduction)


class L1LossFlat(_ConfigLoss):
    """Mean absolute error, outputs reshaped to the targets' shape; activation and decodes return the outputs.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> L1LossFlat()(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 1.0]))
        tensor(1.5000)
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        pred, targ = _matched(pred, targ, type(self).__name__)
        return F.l1_loss(pred, targ, reduction=self.reduction)


def label_smoothing_cross_entropy(logits: Tensor, targ: Tensor, eps: float = 0.1, reduction: str = "mean") -> Tensor:
    """Cross-entropy against ``(1 - eps) * one_hot(targ) + eps / C``: ``(1 - eps) * nll + eps * mean(-log p)``.

    Args:
        logits: raw outputs ``(M, C)``.
        targ: class indices ``(M,)``.
        eps: the share of the target mass spread evenly over the ``C`` classes.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> logits = torch.tensor([[2.0, 0.0, 0.0]])
        >>> label_smoothing_cross_entropy(logits, torch.tensor([0]), eps=0.0)  # plain cross-entropy
        tensor(0.2395)
    """
    log_probs = F.log_softmax(logits, dim=-1)
    nll = -log_probs.gather(-1, targ.long().unsqueeze(-1)).squeeze(-1)
    return _reduce((1 - eps) * nll - eps * log_probs.mean(dim=-1), reduction)


class LabelSmoothingCrossEntropy(_ConfigLoss):
    """Cross-entropy with label smoothing ``eps``, equal to ``F.cross_entropy(label_smoothing=eps)``; flattens like
    ``CrossEntropyLossFlat``.

    Args:
        eps: the share of the target mass spread evenly over the classes, in ``[0, 1]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        axis: the class dim of the outputs (-1, or 1 for ``(N, C, H, W)``).

    Examples:
        >>> loss_func = LabelSmoothingCrossEntropy(eps=0.1)
        >>> round(float(loss_func(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0]))), 4)
        0.3728
        >>> loss_func.decodes(torch.tensor([[2.0, 0.0, 3.0]]))
        tensor([2])
    """

    config_keys = ("eps", "reduction", "axis")

    def __init__(self, eps: float = 0.1, reduction: str = "mean", axis: int = -1) -> None:
        super().__init__()
        self.eps, self.reduction, self.axis = _check_range("eps", eps, 0.0, 1.0), _check_reduction(reduction), int(axis)

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        logits, flat = _flat_logits(pred, targ, self.axis)
        loss = label_smoothing_cross_entropy(logits, flat, self.eps, self.reduction)
        return loss.reshape(targ.shape) if self.reduction == "none" else loss

    def activation(self, pred: Tensor) -> Tensor:
        return F.softmax(pred, dim=self.axis)

    def decodes(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=self.axis)


def focal_loss(
    logits: Tensor, targ: Tensor, gamma: float = 2.0, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Focal loss ``-w[t] * (1 - p_t) ** gamma * log(p_t)``; the weighted mean divides by the summed ``w[t]``.

    With ``gamma=0`` it is ``F.cross_entropy(logits, targ, weight=weight)``.

    Args:
        logits: raw outputs ``(M, C)``.
        targ: class indices ``(M,)``.
        gamma: focusing power, >= 0: larger values lower the loss of well classified items.
        weight: one weight per class, or ``None``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> logits, targ = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0])
        >>> focal_loss(logits, targ, gamma=0.0), F.cross_entropy(logits, targ)
        (tensor(1.1269), tensor(1.1269))
    """
    targ = targ.long()
    log_p = F.log_softmax(logits, dim=-1).gather(-1, targ.unsqueeze(-1)).squeeze(-1)
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    if weight is None:
        return _reduce(loss, reduction)
    item_weight = weight.to(loss.dtype)[targ]
    if reduction == "mean":
        return (loss * item_weight).sum() / item_weight.sum()
    return _reduce(loss * item_weight, reduction)


class FocalLoss(_ConfigLoss):
    """Focal loss on ``(N, C)`` logits (classes on dim 1, as in ``F.cross_entropy``); softmax, argmax to decode.

    Args:
        gamma: focusing power, >= 0; 0 gives plain cross-entropy.
        weight: one weight per class, or ``None``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> loss_func = FocalLoss(gamma=2.0)
        >>> round(float(loss_func(torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0]))), 4)
        0.8259
        >>> FocalLoss(gamma=1.0, weight=[1.0, 3.0]).get_config()
        {'gamma': 1.0, 'weight': [1.0, 3.0], 'reduction': 'mean'}
    """

    config_keys: tuple[str, ...] = ("gamma", "weight", "reduction")
    axis = 1
    weight: Tensor | None

    def __init__(
        self, gamma: float = 2.0, weight: Sequence[float] | Tensor | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.gamma, self.reduction = _check_range("gamma", gamma, 0.0), _check_reduction(reduction)
        self.register_buffer("weight", _as_weight(weight, "weight"), persistent=False)

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        logits, flat = _flat_logits(pred, targ, self.axis)
        loss = focal_loss(logits, flat, self.gamma, _like(self.weight, logits), self.reduction)
        return loss.reshape(targ.shape) if self.reduction == "none" else loss

    def activation(self, pred: Tensor) -> Tensor:
        return F.softmax(pred, dim=self.axis)

    def decodes(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=self.axis)


class FocalLossFlat(FocalLoss):
    """``FocalLoss`` with the class dim ``axis`` of your choice, every other dim flattened.

    Args:
        axis: the class dim of the outputs: -1 for ``(N, C)`` or ``(N, L, C)``, 1 for ``(N, C, H, W)``.
        gamma: focusing power, >= 0.
        weight: one weight per class, or ``None``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one loss per target, in the targets' shape).

    Examples:
        >>> loss_func = FocalLossFlat(axis=-1, gamma=0.0)
        >>> pred, targ = torch.zeros(2, 5, 4), torch.zeros(2, 5, dtype=torch.long)  # (N, L, C) sequence outputs
        >>> round(float(loss_func(pred, targ)), 4)  # log(4)
        1.3863
    """

    config_keys = ("axis", "gamma", "weight", "reduction")

    def __init__(
        self,
        axis: int = -1,
        gamma: float = 2.0,
        weight: Sequence[float] | Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(gamma=gamma, weight=weight, reduction=reduction)
        self.axis = int(axis)


def soft_dice_loss(probs: Tensor, targ: Tensor, smooth: float = 1.0) -> Tensor:
    """``1 - (2 * sum(p * t) + smooth) / (sum(p + t) + smooth)`` per item and class, ``t`` the one-hot targets.

    Args:
        probs: class probabilities ``(N, C, ...)``.
        targ: class indices ``(N, ...)``.
        smooth: added to both sides of the ratio, so empty classes score 0 loss.

    Examples:
        >>> probs = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]).transpose(0, 1)  # (1, 2, 2): a perfect prediction
        >>> soft_dice_loss(probs, torch.tensor([[0, 1]]), smooth=0.0)
        tensor([[0., 0.]])
    """
    n_items, n_classes = probs.shape[:2]
    if probs.shape[:1] + probs.shape[2:] != targ.shape:
        raise ValueError(f"probabilities of shape {tuple(probs.shape)} do not match targets {tuple(targ.shape)}")
    one_hot = F.one_hot(targ.long(), n_classes).movedim(-1, 1).to(probs.dtype)
    intersection = (probs * one_hot).reshape(n_items, n_classes, -1).sum(-1)
    sizes = (probs + one_hot).reshape(n_items, n_classes, -1).sum(-1)
    return 1 - (2 * intersection + smooth) / (sizes + smooth)


class DiceLoss(_ConfigLoss):
    """Soft dice loss over softmax probabilities and one-hot targets; ``"none"`` gives one loss per (item, class).

    Args:
        axis: the class dim of the outputs (1 for ``(N, C, H, W)``).
        smooth: added to both sides of the dice ratio, >= 0.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> loss_func = DiceLoss(smooth=0.0)
        >>> pred = torch.tensor([[[[9.0, -9.0]], [[-9.0, 9.0]]]])  # (1, 2, 1, 2): confident labels [[0, 1]]
        >>> round(float(loss_func(pred, torch.tensor([[[0, 1]]]))), 4)
        0.0
        >>> loss_func.decodes(pred)
        tensor([[[0, 1]]])
    """

    config_keys = ("axis", "smooth", "reduction")

    def __init__(self, axis: int = 1, smooth: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.axis, self.smooth = int(axis), _check_range("smooth", smooth, 0.0)
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        probs = self.activation(pred).movedim(self.axis, 1)
        return _reduce(soft_dice_loss(probs, targ, self.smooth), self.reduction)

    def activation(self, pred: Tensor) -> Tensor:
        return F.softmax(pred, dim=self.axis)

    def decodes(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=self.axis)
