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

import sys
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
    "adopt_type",
    "as_plain",
    "class_assignable",
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

    ``TensorImage(t)`` makes a new tensor object sharing ``t``'s storage. For a result computed on the spot, as in an
    ``encodes``, ``retype(t, TensorImage)`` is cheaper: it gives that very tensor the class (see :func:`retype`).

    Args:
        data: a tensor, array or nested list.
        **meta: metadata kept on the tensor and on every result computed from it.

    Examples:
        >>> t = TensorBase([1.0, 2.0])
        >>> type(t * 2).__name__, type(torch.cat([t, t])).__name__
        ('TensorBase', 'TensorBase')
    """

    _show_args: ClassVar[dict[str, Any]] = {}

    def __new__(cls, data: Any, **meta: Any) -> TensorBase:
        if type(data) is Tensor:  # the common case: wrapping a plain tensor
            res: TensorBase = retype(data, cls)
        else:
            res = retype(data if isinstance(data, Tensor) else torch.as_tensor(np.asarray(data)), cls)
            if isinstance(data, TensorBase) and data.__dict__:
                res.__dict__.update(data.__dict__)
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
    res = retype(new, cls)
    if isinstance(old, TensorBase) and old.__dict__:
        res.__dict__.update(old.__dict__)
    return res


def _refs_of_argument(t: Tensor) -> int:
    return sys.getrefcount(t)


def _calibrate_refs(how: str) -> int:
    """The count ``sys.getrefcount`` gives for a tensor nothing else holds, as lamina's code meets it, or -1 when this
    interpreter and torch do not tell it apart from a tensor also held elsewhere, by Python or by C++ (no count is
    that low, so nothing changes class in place). ``how``:

    - ``"local"``: one local variable holds it (how ``Pipeline`` checks a step's result);
    - ``"argument"``: inside a function whose argument one local of its caller holds (how :func:`adopt_type` checks);
    - ``"temporary"``: inside a function called with the result of an expression (how :func:`retype` checks).

    Each probe holds its tensor the way the code it calibrates does; the held ones add one more holder."""
    leaf = torch.zeros(1, requires_grad=True)
    leaf.sum().backward()  # leaf.grad is a tensor C++ also holds: retyping it in place would retype leaf.grad

    def sole() -> int:
        if how == "temporary":
            return _refs_of_argument(torch.empty(0))
        t = torch.empty(0)
        return _refs_of_argument(t) if how == "argument" else sys.getrefcount(t)

    def held_by_python() -> int:
        t = torch.empty(0)
        holder = [t]
        if how == "temporary":
            return min(_refs_of_argument(t), _refs_of_argument(holder[0]), _refs_of_argument(*holder))
        return _refs_of_argument(t) if how == "argument" else sys.getrefcount(t)

    def held_by_cxx() -> int:
        if how == "temporary":
            return _refs_of_argument(leaf.grad)  # type: ignore[arg-type]
        t = leaf.grad
        return _refs_of_argument(t) if how == "argument" else sys.getrefcount(t)  # type: ignore[arg-type]

    fresh = sole()
    return fresh if min(held_by_python(), held_by_cxx()) > fresh else -1


_FRESH_REFS = _calibrate_refs("argument")
# what lamina.core.transform compares a step's result (a local) with before it changes its class in place
_SOLE_LOCAL_REFS = _calibrate_refs("local")
_TEMPORARY_REFS = _calibrate_refs("temporary")
_getrefcount = sys.getrefcount


_ASSIGNABLE: dict[type, bool] = {}


def class_assignable(cls: type) -> bool:
    """Whether a plain tensor's ``__class__`` can be set to ``cls`` (not when ``cls`` adds ``__slots__``).

    Examples:
        >>> class Slotted(TensorBase):
        ...     __slots__ = ("extra",)
        >>> class_assignable(TensorImage), class_assignable(Slotted)
        (True, False)
    """
    known = _ASSIGNABLE.get(cls)
    if known is None:
        probe = torch.empty(0)
        try:
            probe.__class__ = cls
            known = True
        except TypeError:
            known = False
        _ASSIGNABLE[cls] = known
    return known


def adopt_type(new: Any, old: Any, cls: type | None = None) -> Any:
    """:func:`retain_type` for a result the caller just computed: when nothing else references ``new``, it becomes
    ``old``'s type in place (no new tensor object, so no allocation or garbage-collector work); otherwise a typed
    view is made, which keeps ``new``'s own attributes. The result takes ``old``'s metadata for the keys it lacks
    when it becomes ``old``'s kind of tensor (``old``'s type, a subclass or a parent).

    Args:
        new: the result (held in one local variable of the caller, or passed straight from the call computing it).
        old: the input whose metadata the result takes (when it is a tensor), and whose type, unless ``cls`` is given.
        cls: the type to give ``new`` instead of ``old``'s (a step's return annotation), when it is more specific.

    Examples:
        >>> old = TensorImage(torch.zeros(1))
        >>> res = torch.ones(2)
        >>> type(adopt_type(res, old)).__name__, type(adopt_type(torch.ones(2), "a path", TensorMask)).__name__
        ('TensorImage', 'TensorMask')
    """
    if cls is None:
        cls = type(old)
        if not isinstance(old, Tensor):
            return new
    tn = type(new)
    if tn is cls or not issubclass(cls, tn) or not isinstance(new, Tensor):
        return new
    if tn is Tensor and sys.getrefcount(new) <= _FRESH_REFS and class_assignable(cls):
        new.__class__ = cls  # the caller's variable and this argument are the only references: no one else sees it
        res = new
    else:
        res = _retype_keeping(new, cls)
    if isinstance(old, Tensor) and old.__dict__ and (isinstance(old, cls) or issubclass(cls, type(old))):
        _take_metadata(res, old)
    return res


def _retype_keeping(t: Tensor, cls: type[_TensorT]) -> _TensorT:
    """:func:`retype` for a tensor that may carry attributes of its own (metadata): the result keeps them."""
    res = retype(t, cls)
    if res is not t and t.__dict__:
        res.__dict__.update(t.__dict__)
    return res


def _take_metadata(res: Tensor, source: Tensor) -> None:
    """Give ``res`` the metadata of ``source`` for the keys ``res`` lacks (its own values win)."""
    own = res.__dict__
    own.update({k: v for k, v in source.__dict__.items() if k not in own})


def retype(t: Tensor, cls: type[_TensorT]) -> _TensorT:
    """``t`` as a ``cls`` sharing its storage. Called with a tensor nothing else holds, the result of an expression
    (``retype(torch.from_numpy(a)[None], TensorImageBW)``), that tensor takes the class: the cheapest way to build a
    typed tensor. Otherwise ``t`` keeps its type and the result is a new tensor: outside autograd a detached alias
    given the class (half the cost of ``_make_subclass``, a third of ``as_subclass``), in a graph ``as_subclass``,
    which keeps the history.

    Examples:
        >>> t = torch.zeros(2)
        >>> type(retype(t, TensorImage)).__name__, type(t).__name__, type(retype(torch.ones(2), TensorMask)).__name__
        ('TensorImage', 'Tensor', 'TensorMask')
    """
    # a plain tensor (a typed one would run detach through its dispatch) to a class that takes class assignment
    assignable = type(t) is Tensor and (_ASSIGNABLE.get(cls) or class_assignable(cls))
    if assignable and _getrefcount(t) <= _TEMPORARY_REFS:
        t.__class__ = cls  # this call holds the only reference: no one else can see the change
        return t  # type: ignore[return-value]
    if t.requires_grad or t.is_inference():  # (a tensor with a grad_fn requires grad)
        return t.as_subclass(cls)
    if assignable:
        alias = t.detach()
        alias.__class__ = cls
        return alias  # type: ignore[return-value]
    return Tensor._make_subclass(cls, t, False)
