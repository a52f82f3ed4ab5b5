"""Transforms every application needs: labels to indices and back, tensors, normalization."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lamina.core.tensors import (
    Category,
    MultiCategory,
    TensorCategory,
    TensorImage,
    TensorMask,
    TensorMultiCategory,
    retype,
)
from lamina.core.transform import Transform, decodes, encodes, exportable

__all__ = [
    "Categorize",
    "IntToFloatTensor",
    "MultiCategorize",
    "Normalize",
    "OneHotEncode",
    "ToTensor",
    "imagenet_stats",
]

imagenet_stats: tuple[list[float], list[float]] = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
NA_LABEL = "#na#"


def _plain_label(o: Any) -> Any:
    """A label as a plain Python value (numpy and tensor scalars unwrapped) so vocabs stay JSON-safe."""
    if isinstance(o, (np.generic, Tensor)):
        return o.item()
    return o


def _preview(vocab: Sequence[Any], n: int = 8) -> str:
    shown = ", ".join(repr(v) for v in list(vocab)[:n])
    return f"[{shown}{', ...' if len(vocab) > n else ''}] ({len(vocab)} labels)"


class _VocabMixin:
    """Shared vocab handling: ``vocab_`` is learned state, ``_o2i`` is derived from it on demand."""

    vocab_: list[Any] | None
    add_na: bool
    _o2i_for: list[Any] | None = None
    _o2i: dict[Any, int]

    def _learn_vocab(self, labels: list[Any], sort: bool) -> None:
        uniq = list(dict.fromkeys(labels))
        if sort:
            try:
                uniq = sorted(uniq)
            except TypeError:
                uniq = sorted(uniq, key=str)
        self.vocab_ = [NA_LABEL, *uniq] if self.add_na else uniq

    def _index(self, label: Any, step: str) -> int:
        if self.vocab_ is None:
            raise RuntimeError(f"{step} has no vocab: call setup(items) or pass vocab=[...]")
        if self._o2i_for is not self.vocab_:
            self._o2i, self._o2i_for = {v: i for i, v in enumerate(self.vocab_)}, self.vocab_
        label = _plain_label(label)
        try:
            return self._o2i[label]
        except (KeyError, TypeError):
            if self.add_na:
                return 0
            raise KeyError(
                f"label {label!r} is not in the vocab {_preview(self.vocab_)}. The vocab is learned from the "
                f"training split: pass vocab=[...] with every label, or add_na=True to map unseen labels to "
                f"{NA_LABEL!r}"
            ) from None


@exportable
class Categorize(_VocabMixin, Transform):
    """Map a label to its index in a vocab learned from the training items (``'dog' -> 1 -> 'dog'``).

    Args:
        vocab: the labels, in order; learned (sorted) from the training items when ``None``.
        sort: sort a learned vocab.
        add_na: reserve index 0 for ``'#na#'`` and map unseen labels to it instead of raising.

    Examples:
        >>> c = Categorize()
        >>> c.setup(["dog", "cat", "dog"])
        >>> c.vocab_, int(c("dog")), c.decode(c("dog"))
        (['cat', 'dog'], 1, 'dog')
    """

    order = 1

    def __init__(self, vocab: Sequence[Any] | None = None, sort: bool = True, add_na: bool = False) -> None:
        super().__init__()
        self.vocab, self.sort, self.add_na = (list(vocab) if vocab is not None else None), sort, add_na
        self.vocab_ = ([NA_LABEL, *self.vocab] if add_na else list(self.vocab)) if self.vocab is not None else None

    def setups(self, items: Any) -> None:
        if self.vocab is None:
            self._learn_vocab([_plain_label(o) for o in items], self.sort)

    def encodes(self, x: Any) -> TensorCategory:
        return retype(torch.scalar_tensor(self._index(x, "Categorize"), dtype=torch.long), TensorCategory)

    @decodes
    def _decode(self, x: TensorCategory) -> Category:
        assert self.vocab_ is not None
        return Category(str(self.vocab_[int(x)]))


@exportable
class MultiCategorize(_VocabMixin, Transform):
    """Map a list of labels to a tensor of vocab indices (multi-label targets).

    Args:
        vocab: the labels; learned from the training items when ``None``.
        add_na: reserve index 0 for ``'#na#'`` and map unseen labels to it.

    Examples:
        >>> mc = MultiCategorize()
        >>> mc.setup([["cat"], ["dog", "cat"]])
        >>> mc(["dog", "cat"]).tolist(), mc.decode(mc(["dog"]))
        ([1, 0], ['dog'])
    """

    order = 1

    def __init__(self, vocab: Sequence[Any] | None = None, add_na: bool = False) -> None:
        super().__init__()
        self.vocab, self.add_na = (list(vocab) if vocab is not None else None), add_na
        self.vocab_ = ([NA_LABEL, *self.vocab] if add_na else list(self.vocab)) if self.vocab is not None else None

    def setups(self, items: Any) -> None:
        if self.vocab is None:
            self._learn_vocab([_plain_label(o) for labels in items for o in labels], sort=True)

    @encodes
    def _encode(self, x: list) -> TensorMultiCategory:
        return TensorMultiCategory(torch.tensor([self._index(o, "MultiCategorize") for o in x], dtype=torch.long))

    @decodes
    def _decode(self, x: TensorMultiCategory) -> MultiCategory:
        assert self.vocab_ is not None
        return MultiCategory([self.vocab_[int(i)] for i in x])


@exportable
class OneHotEncode(Transform):
    """Turn a tensor of category indices into a float one-hot vector of length ``c`` (and back).

    Args:
        c: the number of classes; taken from the ``vocab_`` of an earlier pipeline step when ``None``.

    Examples:
        >>> ohe = OneHotEncode(c=4)
        >>> ohe(TensorMultiCategory([0, 2])).tolist(), ohe.decode(ohe(TensorMultiCategory([1]))).tolist()
        ([1.0, 0.0, 1.0, 0.0], [1])
    """

    order = 2

    def __init__(self, c: int | None = None) -> None:
        super().__init__()
        self.c = c
        self.c_ = c

    def setups(self, items: Any) -> None:
        if self.c is not None:
            return
        steps = getattr(items, "steps", [])
        vocab = next((t.vocab_ for t in reversed(steps) if getattr(t, "vocab_", None) is not None), None)
        if vocab is None:
            raise ValueError("OneHotEncode needs the number of classes: pass c=..., or put MultiCategorize before it")
        self.c_ = len(vocab)

    @encodes
    def _encode(self, x: TensorMultiCategory) -> TensorMultiCategory:
        if self.c_ is None:
            raise RuntimeError("OneHotEncode has no class count: call setup(items) or pass c=...")
        out = torch.zeros(self.c_, dtype=torch.float32)
        out[x.as_plain().long()] = 1.0
        return TensorMultiCategory(out)

    @decodes
    def _decode(self, x: TensorMultiCategory) -> TensorMultiCategory:
        return TensorMultiCategory(torch.nonzero(x.as_plain() > 0.5).flatten())


@exportable
class ToTensor(Transform):
    """Turn numpy arrays (and objects with a ``to_tensor()`` method, such as images) into tensors.

    Examples:
        >>> type(ToTensor()(np.zeros((2, 2)))).__name__
        'Tensor'
    """

    order = 5

    @encodes
    def _array(self, x: np.ndarray) -> Tensor:
        return torch.from_numpy(x)

    @encodes
    def _convertible(self, x: object) -> Any:
        to_tensor = getattr(x, "to_tensor", None)
        return to_tensor() if callable(to_tensor) and not isinstance(x, Tensor) else x


@exportable
class IntToFloatTensor(Transform):
    """Images from integers in [0, ``div``] to floats in [0, 1]; masks to ``long`` codes.

    Args:
        div: the value that maps to 1.0.

    Examples:
        >>> t = IntToFloatTensor()
        >>> img = TensorImage(torch.tensor([[[0, 255]]], dtype=torch.uint8))
        >>> t(img).tolist(), t.decode(t(img)).tolist()
        ([[[0.0, 1.0]]], [[[0, 255]]])
    """

    order = 10

    def __init__(self, div: float = 255.0) -> None:
        super().__init__()
        if div <= 0:
            raise ValueError(f"div must be > 0, got {div}")
        self.div = div

    @encodes
    def _image(self, x: TensorImage) -> Tensor:
        return x if x.is_floating_point() else x.float().div_(self.div)

    @encodes
    def _mask(self, x: TensorMask) -> Tensor:
        return x.long()

    @decodes
    def _decode(self, x: TensorImage) -> Tensor:
        if not x.is_floating_point():
            return x
        return (x * self.div).round_().clamp_(0, self.div).to(torch.uint8)


@exportable
class Normalize(Transform):
    """Normalize images per channel with ``mean``/``std`` (given, or computed from training batches in ``setups``).

    Args:
        mean: one value per channel; computed from data when ``None``.
        std: one value per channel; computed from data when ``None``.
        axes: the batch axes averaged over when computing stats (all but channels).

    Examples:
        >>> norm = Normalize(mean=[0.5], std=[0.25])
        >>> x = TensorImage(torch.tensor([[[[0.5, 1.0]]]]))
        >>> norm(x).flatten().tolist(), norm.decode(norm(x)).flatten().tolist()
        ([0.0, 2.0], [0.5, 1.0])
    """

    order = 99

    def __init__(
        self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None, axes: Sequence[int] = (0, 2, 3)
    ) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (to compute them from the training data)")
        self.mean = list(mean) if mean is not None else None
        self.std = list(std) if std is not None else None
        self.axes = tuple(axes)
        if std is not None and min(std) <= 0:
            raise ValueError(f"std must be > 0 for every channel, got {list(std)}")
        self.mean_ = self._stat(self.mean)
        self.std_ = self._stat(self.std)

    @classmethod
    def from_stats(cls, mean: Sequence[float], std: Sequence[float]) -> Normalize:
        """A Normalize with fixed statistics (e.g. ``Normalize.from_stats(*imagenet_stats)``)."""
        return cls(mean=mean, std=std)

    @staticmethod
    def _stat(v: Sequence[float] | None) -> Tensor | None:
        return None if v is None else torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1)

    def setups(self, items: Any) -> None:
        if self.mean is not None:
            return
        xs = [b[0] if isinstance(b, tuple) else b for b in items]
        xs = [x for x in xs if isinstance(x, TensorImage)]
        if not xs:
            raise ValueError("Normalize found no TensorImage in the batches to compute stats from: pass mean and std")
        x = torch.cat([x.as_plain().float() for x in xs])
        self.mean_ = x.mean(dim=self.axes, keepdim=True).view(1, -1, 1, 1)
        self.std_ = x.std(dim=self.axes, keepdim=True).view(1, -1, 1, 1).clamp_min(1e-7)

    def _stats_for(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.mean_ is None or self.std_ is None:
            raise RuntimeError("Normalize has no stats: call setup on training batches or pass mean and std")
        if not x.is_floating_point():
            raise TypeError(f"Normalize needs float images, got {x.dtype}: put IntToFloatTensor before it")
        mean, std = self.mean_.to(x.device, x.dtype), self.std_.to(x.device, x.dtype)
        return (mean[0], std[0]) if x.ndim == 3 else (mean, std)

    @encodes
    def _encode(self, x: TensorImage) -> Tensor:
        mean, std = self._stats_for(x)
        return (x - mean) / std

    @decodes
    def _decode(self, x: TensorImage) -> Tensor:
        mean, std = self._stats_for(x)
        return x * std + mean
