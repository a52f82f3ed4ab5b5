"""Data augmentation that mixes the items of a training batch: MixUp (blend two images) and CutMix (paste a box).

Both draw one ``lam ~ Beta(alpha, alpha)`` per item and pair item ``i`` with item ``perm[i]`` of a random
permutation of the batch. Integer (class) targets are not mixed: the loss becomes, item by item,
``lam * loss(pred, y) + (1 - lam) * loss(pred, y[perm])`` (the loss needs a ``reduction`` attribute, as every lamina
loss has). Floating-point targets (one-hot or multi-label for BCE, regression values) are mixed directly:
``lam * y + (1 - lam) * y[perm]``. Validation batches are never touched.

The maths are pure functions (``mix_inputs``, ``cutmix_boxes``, ``box_mask``, ``cut_mix``, ``mixed_loss``); the
callbacks draw the random numbers and apply them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lamina.learner.callback import Callback
from lamina.learner.recorder import batch_size

__all__ = ["CutMix", "MixUp", "MixingCallback", "box_mask", "cut_mix", "cutmix_boxes", "mix_inputs", "mixed_loss"]


def _broadcastable(lam: Tensor, x: Tensor) -> Tensor:
    """``lam`` of shape ``(N,)`` as ``(N, 1, ..., 1)`` in ``x``'s dtype and device."""
    return lam.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def mix_inputs(x: Tensor, other: Tensor, lam: Tensor) -> Tensor:
    """The convex combination ``lam * x + (1 - lam) * other``, item by item (``lam`` holds one value per item).

    Args:
        x: a batch ``(N, ...)``.
        other: a batch of the same shape (usually ``x`` shuffled).
        lam: weights of ``x``, shape ``(N,)``, in ``[0, 1]``.

    Examples:
        >>> mix_inputs(torch.ones(2, 3), torch.zeros(2, 3), torch.tensor([0.25, 1.0]))
        tensor([[0.2500, 0.2500, 0.2500],
                [1.0000, 1.0000, 1.0000]])
    """
    if x.shape != other.shape or lam.shape != (len(x),):
        raise ValueError(
            f"mix_inputs needs x and other of the same shape and one lam per item, got {tuple(x.shape)}, "
            f"{tuple(other.shape)} and lam of shape {tuple(lam.shape)}"
        )
    w = _broadcastable(lam, x)
    return w * x + (1 - w) * other


def cutmix_boxes(lam: Tensor, centers: Tensor, height: int, width: int) -> Tensor:
    """Boxes covering about ``1 - lam`` of a ``height x width`` image, centred at ``centers``, clipped to the image.

    Args:
        lam: the fraction of each image to keep, shape ``(N,)``.
        centers: ``(N, 2)`` integer ``(row, column)`` of each box's centre.
        height: image height.
        width: image width.

    Returns:
        ``(N, 4)`` long tensor of ``[top, left, bottom, right]`` (bottom and right excluded).

    Examples:
        >>> cutmix_boxes(torch.tensor([0.75, 0.0]), torch.tensor([[4, 4], [0, 0]]), 8, 8).tolist()
        [[2, 2, 6, 6], [0, 0, 4, 4]]
    """
    side = torch.sqrt(1 - lam.double().clamp(0, 1))
    cut_h, cut_w = (side * height).round().long(), (side * width).round().long()
    top, left = centers[:, 0].long() - cut_h // 2, centers[:, 1].long() - cut_w // 2
    boxes = torch.stack([top, left, top + cut_h, left + cut_w], dim=1)
    limits = torch.tensor([height, width, height, width])
    return torch.minimum(boxes.clamp(min=0), limits)


def box_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    """A boolean ``(N, height, width)`` mask, true inside each item's box ``[top, left, bottom, right]``.

    Args:
        boxes: ``(N, 4)`` boxes, as from ``cutmix_boxes``.
        height: image height.
        width: image width.

    Examples:
        >>> box_mask(torch.tensor([[0, 1, 2, 3]]), 3, 3).int()
        tensor([[[0, 1, 1],
                 [0, 1, 1],
                 [0, 0, 0]]], dtype=torch.int32)
    """
    rows = torch.arange(height, device=boxes.device).view(1, -1, 1)
    cols = torch.arange(width, device=boxes.device).view(1, 1, -1)
    top, left, bottom, right = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def cut_mix(x: Tensor, other: Tensor, boxes: Tensor) -> Tensor:
    """``x`` with each item's box (on the last two dims) replaced by the same box of ``other``.

    Args:
        x: a batch ``(N, ..., H, W)``.
        other: a batch of the same shape.
        boxes: ``(N, 4)`` boxes ``[top, left, bottom, right]``.

    Examples:
        >>> cut_mix(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), torch.tensor([[0, 0, 1, 2]]))
        tensor([[[1., 1.],
                 [0., 0.]]])
    """
    if x.shape != other.shape or x.ndim < 3:
        raise ValueError(
            f"cut_mix needs two batches of images (N, ..., H, W) of the same shape, got {tuple(x.shape)} and "
            f"{tuple(other.shape)}"
        )
    mask = box_mask(boxes.to(x.device), x.shape[-2], x.shape[-1])
    mask = mask.view(len(x), *([1] * (x.ndim - 3)), *x.shape[-2:])
    return torch.where(mask, other, x)


@contextlib.contextmanager
def _reduction_none(loss_func: Any) -> Iterator[None]:
    old = getattr(loss_func, "reduction", None)
    if old is None:
        raise TypeError(
            f"mixing class targets needs a loss with a `reduction` attribute (to get one loss per item), got "
            f"{getattr(loss_func, '__name__', type(loss_func).__name__)}: use a lamina loss such as "
            "CrossEntropyLossFlat()"
        )
    loss_func.reduction = "none"
    try:
        yield
    finally:
        loss_func.reduction = old


def mixed_loss(
    loss_func: Callable[..., Tensor], pred: Tensor, yb: tuple[Any, ...], other_yb: tuple[Any, ...], lam: Tensor
) -> Tensor:
    """The mean over items of ``lam * loss(pred, *yb) + (1 - lam) * loss(pred, *other_yb)``.

    Per-item losses come from the loss with ``reduction="none"`` (each item's elements averaged, e.g. the pixels of
    a segmentation mask); the loss's own reduction is restored after.

    Args:
        loss_func: a loss with a ``reduction`` attribute.
        pred: the model's outputs.
        yb: the targets of the batch.
        other_yb: the targets of the items mixed in.
        lam: weight of ``yb`` per item, shape ``(N,)``.

    Examples:
        >>> from lamina.learner.losses import CrossEntropyLossFlat
        >>> pred = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> y, y2 = (torch.tensor([0, 1]),), (torch.tensor([1, 0]),)
        >>> loss = mixed_loss(CrossEntropyLossFlat(), pred, y, y2, torch.tensor([1.0, 1.0]))
        >>> bool(torch.isclose(loss, CrossEntropyLossFlat()(pred, *y)))
        True
    """
    with _reduction_none(loss_func):
        first, second = loss_func(pred, *yb), loss_func(pred, *other_yb)
    n = len(lam)
    first, second = first.reshape(n, -1).mean(1), second.reshape(n, -1).mean(1)
    w = lam.to(device=first.device, dtype=first.dtype)
    return (w * first + (1 - w) * second).mean()


class MixingCallback(Callback):
    """Base of the batch-mixing callbacks: draws ``lam`` and a permutation per training batch, mixes the inputs
    (through ``mix_input``), and mixes the targets or the loss.

    Subclasses implement ``prepare(lam, x) -> lam`` (draw anything else, return the effective weight of each item)
    and ``mix_input(x, other) -> Tensor``. After each training batch ``lam`` and ``perm`` hold what was used.

    Args:
        alpha: the Beta distribution's parameter (> 0): small values mix little, 1 is uniform.
        seed: seeds the random draws for reproducible runs.

    Examples:
        >>> class Swap(MixingCallback):
        ...     def prepare(self, lam, x): return torch.zeros_like(lam)
        ...     def mix_input(self, x, other): return other
        >>> Swap(alpha=1.0).run_valid
        False
        >>> a, b = Swap(alpha=1.0, seed=1), Swap(alpha=1.0, seed=2)
        >>> b.load_state_dict(a.state_dict()); b._rng.random() == a._rng.random()
        True
    """

    run_valid = False

    def __init__(self, alpha: float, seed: int | None = None) -> None:
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0 (the Beta distribution's parameter), got {alpha}")
        self.alpha, self.seed = float(alpha), seed
        self._rng = np.random.default_rng(seed)
        self.lam: Tensor | None = None
        self.perm: Tensor | None = None
        self.other_yb: tuple[Any, ...] = ()
        self.mixed_targets = False

    def state_dict(self) -> dict[str, Any]:
        """The state of the callback's random generator (its draws go on where they were on resume)."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self._rng.bit_generator.state = state["rng"]

    def prepare(self, lam: Tensor, x: Tensor) -> Tensor:
        """Draw what else the mix needs for the batch ``x`` and return the effective weight of each item."""
        raise NotImplementedError

    def mix_input(self, x: Tensor, other: Tensor) -> Tensor:
        """Mix one input batch with its permuted copy (with the state ``prepare`` drew)."""
        raise NotImplementedError

    def before_batch(self) -> None:
        learn = self.learn
        n = batch_size(learn.xb, learn.yb)
        floats = [x for x in learn.xb if isinstance(x, Tensor) and x.is_floating_point() and len(x) == n]
        if not floats:
            kinds = [getattr(x, "dtype", type(x).__name__) for x in learn.xb]
            raise TypeError(
                f"{type(self).__name__} mixes floating-point inputs, got inputs of type {kinds}: convert them to "
                "float in the data pipeline (e.g. x.float() / 255)"
            )
        drawn = torch.from_numpy(self._rng.beta(self.alpha, self.alpha, size=n)).float()
        perm = torch.from_numpy(self._rng.permutation(n)).to(floats[0].device)
        self.lam, self.perm = self.prepare(drawn, floats[0]).to(floats[0].device), perm
        learn.xb = tuple(self.mix_input(x, x[perm]) if any(x is f for f in floats) else x for x in learn.xb)
        ys = [y for y in learn.yb if isinstance(y, Tensor)]
        self.mixed_targets = bool(ys) and all(y.is_floating_point() for y in ys)
        if self.mixed_targets:
            learn.yb = tuple(mix_inputs(y, y[perm], self.lam) for y in learn.yb)
            self.other_yb = ()
        else:
            self.other_yb = tuple(y[perm] if isinstance(y, Tensor) and len(y) == n else y for y in learn.yb)

    def after_loss(self) -> None:
        if self.mixed_targets or self.lam is None or not self.learn.yb:
            return
        learn = self.learn
        learn.loss = mixed_loss(learn.loss_func, learn.pred, learn.yb, self.other_yb, self.lam)


class MixUp(MixingCallback):
    """MixUp: each training input becomes ``lam * x[i] + (1 - lam) * x[perm[i]]`` with ``lam ~ Beta(alpha, alpha)``.

    ``lam`` is folded to ``max(lam, 1 - lam)``, so each item stays closest to itself (and to its own target).
    See the module docstring for how targets and the loss are mixed.

    Args:
        alpha: the Beta distribution's parameter (> 0).
        seed: seeds the random draws.

    Examples:
        >>> MixUp().alpha, MixUp().run_valid
        (0.4, False)
    """

    def __init__(self, alpha: float = 0.4, seed: int | None = None) -> None:
        super().__init__(alpha, seed)

    def prepare(self, lam: Tensor, x: Tensor) -> Tensor:
        return torch.maximum(lam, 1 - lam)

    def mix_input(self, x: Tensor, other: Tensor) -> Tensor:
        assert self.lam is not None
        return mix_inputs(x, other, self.lam)


class CutMix(MixingCallback):
    """CutMix: a random box of each training image (last two dims) is replaced by the same box of another image;
    ``lam`` becomes the fraction of the image kept.

    The box covers about ``1 - lam`` of the image for ``lam ~ Beta(alpha, alpha)``, centred uniformly at random and
    clipped at the borders; after each batch ``boxes`` holds ``[top, left, bottom, right]`` per item.

    Args:
        alpha: the Beta distribution's parameter (> 0).
        seed: seeds the random draws.

    Examples:
        >>> CutMix().alpha
        1.0
    """

    def __init__(self, alpha: float = 1.0, seed: int | None = None) -> None:
        super().__init__(alpha, seed)
        self.boxes: Tensor | None = None
        self._size = torch.Size()

    def prepare(self, lam: Tensor, x: Tensor) -> Tensor:
        if x.ndim < 3:
            raise ValueError(f"CutMix needs image batches (N, ..., H, W), got inputs of shape {tuple(x.shape)}")
        height, width = self._size = x.shape[-2:]
        centers = torch.from_numpy(np.stack([self._rng.integers(0, size, len(x)) for size in (height, width)], 1))
        self.boxes = cutmix_boxes(lam, centers, height, width)
        area = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        return 1 - area.float() / (height * width)

    def mix_input(self, x: Tensor, other: Tensor) -> Tensor:
        assert self.boxes is not None
        if x.ndim < 3 or x.shape[-2:] != self._size:
            return x  # an input of another layout (e.g. tabular features beside the image) is kept
        return cut_mix(x, other, self.boxes)
