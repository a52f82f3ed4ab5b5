"""Semantic tensors: tensors that know what they hold and keep that type through torch operations.

The rule for results (documented in ``docs/architecture.md``):

* A torch operation on a typed tensor returns that type: ``TensorImage + 1``, ``img.flip(-1)``, ``img[0]``,
  ``torch.cat([img, img])`` and ``img.to(device)`` are all ``TensorImage``.
* Mixed inputs follow torch's own choice of which ``__torch_function__`` runs: a subclass beats its parent
  (``Tensor + TensorImage`` is a ``TensorImage``), and between unrelated types the leftmost argument wins
  (``TensorImage + TensorMask`` is a ``TensorImage``).
* Metadata (``TensorPoint.img_size``, ``TensorMask.codes``...) is copied from the first argument of the result's
  type that carries any.
* Before the forward pass the learner calls :func:`as_plain`, so models, losses and optimizers see plain
  ``torch.Tensor`` and never pay for subclass dispatch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor
from torch.overrides import get_default_nowrap_functions

_TensorT = TypeVar("_TensorT", bound=Tensor)

__all__ = [
    "Category",
    "MultiCategory",
    "TensorBBox",
    "TensorBase",
    "TensorCategory",
    "TensorImage",
    "TensorImageBW",
    "TensorImageBase",
    "TensorMask",
    "TensorMultiCategory",
    "TensorPoint",
    "TensorText",
    "TitledFloat",
    "TitledStr",
    "as_plain",
    "retain_type",
    "retype",
]

_NO_WRAP = get_default_nowrap_functions()
_run_plain = torch._C._disabled_torch_function_impl
# Inside `with _plain_ops():` torch ops on typed tensors skip subclass dispatch and return plain tensors (transforms
# run there, and retype their results once); `_typed_ops_on()` is False there. Checking costs a fifth of entering.
_plain_ops = torch._C.DisableTorchFunctionSubclass
_typed_ops_on = torch._C._is_torch_function_enabled


def _meta_source(args: Iterable[Any], cls: type[TensorBase]) -> TensorBase | None:
    """The first argument (looking one level into lists and tuples) of type ``cls`` that carries metadata."""
    for a in args:
        if isinstance(a, cls) and a.__dict__:
            return a
        if isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, cls) and b.__dict__:
                    return b
    return None


def _wrap(ret: Any, cls: type, meta: dict[str, Any] | None) -> Any:
    if isinstance(ret, Tensor):
        if type(ret) is not cls:
            ret = ret.as_subclass(cls)
        if meta:
            ret.__dict__.update(meta)
        return ret
    if isinstance(ret, (tuple, list)) and ret and isinstance(ret[0], Tensor):
        return type(ret)(_wrap(r, cls, meta) for r in ret)
    return ret


class TensorBase(Tensor):
    """A ``torch.Tensor`` that keeps its type (and metadata) through torch operations.

    ``TensorImage(t)`` makes a new tensor object sharing ``t``'s storage; ``t`` keeps its own type.
    ``TensorBase(data, **meta)`` takes ``data``, a tensor, array or nested list, and ``meta``, metadata kept on the
    tensor and on every result computed from it.

    Examples:
        >>> t = TensorBase([1.0, 2.0])
        >>> type(t * 2).__name__, type(torch.cat([t, t])).__name__
        ('TensorBase', 'TensorBase')
    """

    _show_args: ClassVar[dict[str, Any]] = {}

    def __new__(cls, data: Any, **meta: Any) -> TensorBase:
        if isinstance(data, Tensor):
            res: TensorBase = retype(data, cls)
            if data.__dict__:
                res.__dict__.update(data.__dict__)
        else:
            res = retype(torch.as_tensor(np.asarray(data)), cls)
        if meta:
            res.__dict__.update(meta)
        return res

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        # run the op with subclass dispatch off (in C), then give the result this type and the metadata
        ret = _run_plain(func, types, tuple(args), kwargs or {})
        if func in _NO_WRAP:
            return ret
        src = _meta_source(args, cls)
        return _wrap(ret, cls, src.__dict__ if src is not None else None)

    def as_plain(self) -> Tensor:
        """This tensor as a plain ``torch.Tensor`` sharing the same storage.

        Examples:
            >>> type(TensorImage(torch.zeros(3, 2, 2)).as_plain()).__name__
            'Tensor'
        """
        return self.as_subclass(Tensor)


class TensorImageBase(TensorBase):
    """Anything laid out like an image (``[B x] [C x] H x W``): images and masks share geometry, not meaning.

    Examples:
        >>> issubclass(TensorMask, TensorImage), issubclass(TensorMask, TensorImageBase)
        (False, True)
    """

    _show_args: ClassVar[dict[str, Any]] = {"cmap": "viridis"}

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        """Draw the image on ``ctx`` (a new axis when ``None``) and return the axis."""
        from lamina.core.show import show_image

        return show_image(self, ctx=ctx, **{**self._show_args, **kwargs})


class TensorImage(TensorImageBase):
    """A ``C x H x W`` image (or a ``B x C x H x W`` batch), uint8 in [0, 255] or float in [0, 1].

    Examples:
        >>> img = TensorImage(torch.rand(3, 4, 5))
        >>> type(img.flip(-1)).__name__, type(img[0]).__name__, type(img + 1).__name__
        ('TensorImage', 'TensorImage', 'TensorImage')
    """


class TensorImageBW(TensorImage):
    """A single-channel image, drawn in greys.

    Examples:
        >>> type(TensorImageBW(torch.zeros(1, 2, 2)) * 2).__name__
        'TensorImageBW'
    """

    _show_args: ClassVar[dict[str, Any]] = {"cmap": "Greys_r"}


class TensorMask(TensorImageBase):
    """A segmentation mask of integer codes (``H x W``); ``codes`` optionally names them.

    Examples:
        >>> m = TensorMask(torch.tensor([[0, 1], [2, 1]]), codes=["bg", "cat", "dog"])
        >>> m.flip(0).codes
        ['bg', 'cat', 'dog']
    """

    _show_args: ClassVar[dict[str, Any]] = {"alpha": 0.5, "cmap": "tab20"}

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        """Overlay the mask on ``ctx`` with one colour per code and return the axis."""
        from lamina.core.show import show_mask

        codes = self.__dict__.get("codes")
        n_codes = len(codes) if codes is not None else None
        return show_mask(self, ctx=ctx, n_codes=n_codes, **{**self._show_args, **kwargs})


class TensorPoint(TensorBase):
    """Keypoints as an ``N x 2`` tensor of ``(x, y)`` pixel coordinates; ``img_size`` is ``(width, height)``.

    Examples:
        >>> p = TensorPoint(torch.tensor([[1.0, 2.0]]), img_size=(28, 28))
        >>> (p * 2).img_size, type(p[0]).__name__
        ((28, 28), 'TensorPoint')
    """

    _show_args: ClassVar[dict[str, Any]] = {"s": 40, "marker": "x", "c": "red"}

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        """Draw the points as markers on ``ctx`` and return the axis."""
        from lamina.core.show import show_points

        return show_points(self, ctx=ctx, **{**self._show_args, **kwargs})


class TensorBBox(TensorPoint):
    """Boxes as an ``N x 4`` tensor of ``(x1, y1, x2, y2)`` pixel coordinates; ``img_size`` is ``(width, height)``.

    Examples:
        >>> b = TensorBBox(torch.tensor([[0.0, 0.0, 4.0, 4.0]]), img_size=(8, 8))
        >>> type(b + 1).__name__, (b + 1).img_size
        ('TensorBBox', (8, 8))
    """

    _show_args: ClassVar[dict[str, Any]] = {}

    def show(self, ctx: Any = None, labels: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """Draw the boxes as rectangles (with ``labels`` when given) on ``ctx`` and return the axis."""
        from lamina.core.show import show_boxes

        return show_boxes(self, ctx=ctx, labels=labels, **kwargs)


class TensorCategory(TensorBase):
    """The index of a category in a vocab.

    Examples:
        >>> type(TensorCategory(3) + 0).__name__
        'TensorCategory'
    """


class TensorMultiCategory(TensorCategory):
    """Several category indices, or their one-hot encoding.

    Examples:
        >>> type(TensorMultiCategory([0, 2])[0]).__name__
        'TensorMultiCategory'
    """


class TensorText(TensorBase):
    """Token ids of a text.

    Examples:
        >>> type(TensorText([5, 7, 9])[:2]).__name__
        'TensorText'
    """


class TitledStr(str):
    """A string that shows itself as the title of an axis.

    Examples:
        >>> TitledStr("hello").upper()
        'HELLO'
    """

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        """Set this string as the title of ``ctx`` and return the axis."""
        from lamina.core.show import show_title

        return show_title(str(self), ctx=ctx, **kwargs)


class Category(TitledStr):
    """A decoded category label; shows itself as a title.

    Examples:
        >>> Category("dog") == "dog"
        True
    """


class TitledFloat(float):
    """A float that shows itself as the title of an axis (a decoded regression target).

    Examples:
        >>> TitledFloat(1.5) + 1
        2.5
    """

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        """Set this number as the title of ``ctx`` and return the axis."""
        from lamina.core.show import show_title

        return show_title(f"{float(self):.3g}", ctx=ctx, **kwargs)


class MultiCategory(list[Any]):
    """Decoded labels of a multi-label target; shows itself as a ``;``-joined title.

    Examples:
        >>> MultiCategory(["cat", "dog"])
        ['cat', 'dog']
    """

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        """Set the labels, joined by ``;``, as the title of ``ctx`` and return the axis."""
        from lamina.core.show import show_title

        return show_title(";".join(str(o) for o in self), ctx=ctx, **kwargs)


def as_plain(x: Any) -> Any:
    """Strip semantic types from a tensor or a (nested) tuple/list/dict of tensors, without copying data.

    Examples:
        >>> xb = (TensorImage(torch.zeros(2, 3, 4, 4)), [TensorCategory([0, 1])])
        >>> [type(o).__name__ for o in (as_plain(xb)[0], as_plain(xb)[1][0])]
        ['Tensor', 'Tensor']
    """
    if isinstance(x, Tensor):
        return x if type(x) is Tensor else x.as_subclass(Tensor)
    if isinstance(x, (tuple, list)):
        return type(x)(as_plain(o) for o in x)
    if isinstance(x, dict):
        return {k: as_plain(v) for k, v in x.items()}
    return x


def retain_type(new: Any, old: Any) -> Any:
    """Give ``new`` the semantic type (and metadata) of ``old`` when ``new`` is a tensor of a more general type.

    Examples:
        >>> old = TensorPoint(torch.zeros(1, 2), img_size=(4, 4))
        >>> new = retain_type(torch.ones(1, 2), old)
        >>> type(new).__name__, new.img_size
        ('TensorPoint', (4, 4))
    """
    if not isinstance(new, Tensor) or not isinstance(old, Tensor):
        return new
    cls = type(old)
    if type(new) is cls or not issubclass(cls, type(new)):
        return new
    return _typed_alias(new, cls, old)


def _take_metadata(res: Tensor, source: Tensor) -> None:
    """Give ``res`` (a tensor the caller just created) the metadata of ``source`` for the keys it lacks."""
    own = res.__dict__
    own.update({k: v for k, v in source.__dict__.items() if k not in own})


def _typed_alias(t: Tensor, cls: type[_TensorT], meta_from: Tensor | None = None) -> _TensorT:
    """A new ``cls`` tensor sharing ``t``'s storage (``t`` itself never changes), with ``t``'s own attributes and,
    for the keys it lacks, those of ``meta_from``."""
    res = retype(t, cls)
    if t.__dict__:
        res.__dict__.update(t.__dict__)
    if meta_from is not None and meta_from.__dict__:
        _take_metadata(res, meta_from)
    return res


def retype(t: Tensor, cls: type[_TensorT]) -> _TensorT:
    """``t`` as a ``cls``: a new tensor object sharing ``t``'s storage; ``t`` itself never changes. Outside autograd
    the result is a detached alias; a tensor in a graph keeps its history (``as_subclass``).

    Examples:
        >>> t = torch.zeros(2)
        >>> typed = retype(t, TensorImage)
        >>> type(typed).__name__, type(t).__name__, typed.data_ptr() == t.data_ptr()
        ('TensorImage', 'Tensor', True)
    """
    if t.requires_grad or t.is_inference():  # (a tensor with a grad_fn requires grad)
        return t.as_subclass(cls)
    return Tensor._make_subclass(cls, t, False)
