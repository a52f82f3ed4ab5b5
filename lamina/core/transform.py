"""Reversible, type-dispatched transforms and the pipelines that compose them.

A :class:`Transform` has three contracts, each chosen by the type of its input (see :mod:`lamina.core.dispatch`):
``encodes`` (the forward step), ``decodes`` (its inverse, for showing) and ``setups`` (learn state from data). Write
one method named ``encodes``, or several methods of any name marked with the :func:`encodes` decorator, each
annotated with the type it handles. Called on a tuple ``(x, y, ...)`` a transform is applied to each element by
that element's type and passes through the ones it has no method for; an :class:`ItemTransform` sees the tuple.

Inside ``encodes``/``decodes`` the input keeps its type and metadata, but torch operations return plain tensors
(subclass dispatch on every op would cost more than the op on small items); the transform gives its result the
input's semantic type back (element by element for tuples), unless the method built another typed tensor itself.

Configuration (the ``__init__`` arguments, stored under the same names) and learned state (attributes ending in
``_``) are data: :func:`transform_to_state` writes them as JSON-safe values plus tensors and
:func:`transform_from_state` rebuilds the transform from a registry of the classes the program imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from lamina.core.dispatch import TypeDispatch, input_types
from lamina.core.serial import SerialError, from_jsonable, to_jsonable
from lamina.core.tensors import TensorBase, adopt_type, retain_type
from lamina.core.utils import describe_item, listify

__all__ = [
    "ItemTransform",
    "Pipeline",
    "Transform",
    "TransformError",
    "decodes",
    "encodes",
    "registered_transforms",
    "setups",
    "show_any",
    "transform_from_state",
    "transform_to_state",
]

_ROLES = ("encodes", "decodes", "setups")
# Inside a transform's methods torch ops return plain tensors (no subclass dispatch per op, about 3x cheaper);
# the transform gives its result the input's type and metadata once, in ``_apply_one``.
_plain_ops = torch._C.DisableTorchFunctionSubclass
_ROLE_ATTR = "__lamina_role__"
_REGISTRY: dict[str, type[Transform]] = {}


def _mark(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        setattr(f, _ROLE_ATTR, role)
        return f

    return deco


encodes = _mark("encodes")
encodes.__doc__ = """Mark a method as an ``encodes`` for the type its input is annotated with.

Examples:
    >>> class Double(Transform):
    ...     @encodes
    ...     def _number(self, x: int): return 2 * x
    >>> Double()((3, "three"))
    (6, 'three')
"""
decodes = _mark("decodes")
decodes.__doc__ = """Mark a method as a ``decodes`` for the type its input is annotated with.

Examples:
    >>> class Shift(Transform):
    ...     def encodes(self, x: int): return x + 10
    ...     @decodes
    ...     def _back(self, x: int): return x - 10
    >>> Shift().decode(Shift()(1))
    1
"""
setups = _mark("setups")
setups.__doc__ = """Mark a method as a ``setups`` for the type of items it is annotated with.

Examples:
    >>> class Centre(Transform):
    ...     @setups
    ...     def _learn(self, items: list): self.mean_ = sum(items) / len(items)
    ...     def encodes(self, x: float): return x - self.mean_
    >>> c = Centre(); c.setup([1.0, 3.0]); c(5.0)
    3.0
"""


class TransformError(Exception):
    """A transform failed on an item: the message names the item, the pipeline step and what to do.

    Examples:
        >>> Pipeline([Transform(lambda x: 1 / x)])(0)
        Traceback (most recent call last):
        ...
        lamina.core.transform.TransformError: pipeline step 1/1 `<lambda>` failed on 0: ZeroDivisionError: ...
    """


def registered_transforms() -> dict[str, type[Transform]]:
    """Every ``Transform`` class the running program has defined, by ``module.QualName``.

    Examples:
        >>> "lamina.core.transform.Transform" in registered_transforms()
        True
    """
    return dict(_REGISTRY)


class Transform:
    """A reversible step applied by type, element by element over tuples.

    Args:
        enc: a function used as ``encodes`` (dispatching on its annotation); for quick, non-exportable transforms.
        dec: a function used as ``decodes``.
        split_idx: run only on this split (0: training, 1: validation); ``None`` runs everywhere.
        order: position in a :class:`Pipeline` (lower runs first).

    Examples:
        >>> from lamina.core.tensors import TensorImage, TensorPoint
        >>> class FlipX(Transform):
        ...     @encodes
        ...     def _image(self, x: TensorImage): return x.flip(-1)
        ...     @encodes
        ...     def _points(self, x: TensorPoint): return TensorPoint(torch.stack([4 - 1 - x[:, 0], x[:, 1]], 1))
        >>> img, pts = FlipX()((TensorImage(torch.arange(4.0).view(1, 1, 4)), TensorPoint(torch.tensor([[0., 0.]]))))
        >>> img.flatten().tolist(), pts.tolist()
        ([3.0, 2.0, 1.0, 0.0], [[3.0, 0.0]])
    """

    order: ClassVar[int] = 0
    split_idx: int | None = None
    _whole_tuple: ClassVar[bool] = False
    _encodes_td: ClassVar[TypeDispatch] = TypeDispatch()
    _decodes_td: ClassVar[TypeDispatch] = TypeDispatch()
    _setups_td: ClassVar[TypeDispatch] = TypeDispatch()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for role in _ROLES:
            td = getattr(cls, f"_{role}_td").copy()
            for name, f in cls.__dict__.items():
                if inspect.isfunction(f) and (name == role or getattr(f, _ROLE_ATTR, None) == role):
                    td.add(f)
            setattr(cls, f"_{role}_td", td)
        _REGISTRY[f"{cls.__module__}.{cls.__qualname__}"] = cls

    def __init__(
        self,
        enc: Callable[..., Any] | None = None,
        dec: Callable[..., Any] | None = None,
        split_idx: int | None = None,
        order: int | None = None,
    ) -> None:
        self.enc, self.dec = enc, dec
        if split_idx is not None:
            self.split_idx = split_idx
        if order is not None:
            self.order = order  # type: ignore[misc]
        for role, f in (("encodes", enc), ("decodes", dec)):
            if f is not None:
                td = getattr(self, f"_{role}_td").copy()
                td.add(_as_method(f), input_types(f))
                setattr(self, f"_{role}_td", td)

    @property
    def name(self) -> str:
        """The transform's name, for messages and summaries."""
        return getattr(self.enc, "__name__", None) or type(self).__name__

    def __call__(self, x: Any, split_idx: int | None = None) -> Any:
        with _plain_ops():
            return self._call_plain(x, split_idx)

    def _call_plain(self, x: Any, split_idx: int | None) -> Any:
        """``__call__`` without entering ``_plain_ops`` (a Pipeline enters it once for all its steps)."""
        if split_idx is not None and self.split_idx is not None and split_idx != self.split_idx:
            return x
        if type(x) is tuple and not self._whole_tuple:
            return tuple([self._apply_one(self._encodes_td, o) for o in x])
        return self._apply_one(self._encodes_td, x)

    def is_random(self, split_idx: int | None = None) -> bool:
        """Whether the same input may give a different output on split ``split_idx`` (a random augmentation).

        Loaders cache the items of deterministic pipelines (see :mod:`lamina.data.cache`). By convention a
        training-only transform (``split_idx=0``) is an augmentation, so it counts as random on the training split,
        and a transform built from a plain function counts as random (nothing is known about it). A subclass that
        draws random numbers on every split, or that is deterministic although training-only, overrides this.

        Examples:
            >>> Transform(split_idx=0).is_random(0), Transform(split_idx=0).is_random(1), Transform().is_random(0)
            (True, False, False)
        """
        if self.enc is not None:
            return True
        return self.split_idx == 0 and split_idx != 1

    def decode(self, x: Any, split_idx: int | None = None) -> Any:
        """Undo this transform on ``x`` (elements with no ``decodes`` pass through)."""
        if split_idx is not None and self.split_idx is not None and split_idx != self.split_idx:
            return x
        with _plain_ops():
            return self._apply(self._decodes_td, x)

    def setup(self, items: Any = None) -> None:
        """Learn data-driven state from ``items`` (the outputs of the earlier pipeline steps)."""
        f = self._setups_td[type(items)]
        if f is not None:
            f(self, items)

    def _apply(self, td: TypeDispatch, x: Any) -> Any:
        if type(x) is tuple and not self._whole_tuple:
            return tuple(self._apply_one(td, o) for o in x)
        return self._apply_one(td, x)

    def _apply_one(self, td: TypeDispatch, x: Any) -> Any:
        f = td._cache[type(x)]
        if f is None:
            return x
        res = f(self, x)
        if type(res) is type(x):
            if res is not x and isinstance(x, TensorBase) and x.__dict__ and not res.__dict__:
                res.__dict__.update(x.__dict__)  # a result built as the same type keeps the input's metadata
            return res
        if isinstance(res, Tensor):
            return adopt_type(res, x)
        if type(res) is tuple and type(x) is tuple and len(res) == len(x):
            return tuple([retain_type(r, o) for r, o in zip(res, x)])
        return res

    def get_config(self) -> dict[str, Any]:
        """The ``__init__`` arguments that rebuild this transform (read from attributes of the same names)."""
        if self.enc is not None or self.dec is not None:
            raise SerialError(
                f"{self.name}: a transform built from functions cannot be exported; write a Transform subclass"
            )
        config = {}
        for p in inspect.signature(type(self).__init__).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("enc", "dec"):
                continue
            if not hasattr(self, p.name) and p.default is p.empty:
                raise SerialError(f"{type(self).__name__} must keep its argument `{p.name}` as self.{p.name}")
            config[p.name] = getattr(self, p.name, p.default)
        return config

    def get_state(self) -> dict[str, Any]:
        """Learned state: public attributes whose names end with ``_`` (``vocab_``, ``mean_``)."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def __repr__(self) -> str:
        enc = ", ".join(t.__name__ for t in self._encodes_td)
        return f"{self.name}({enc})" if enc else self.name


_REGISTRY["lamina.core.transform.Transform"] = Transform
_TRANSFORM_CALL = Transform.__call__


class ItemTransform(Transform):
    """A transform that receives the whole tuple ``(x, y, ...)`` instead of each element.

    Examples:
        >>> class Swap(ItemTransform):
        ...     def encodes(self, xy): return (xy[1], xy[0])
        >>> Swap()((1, 2))
        (2, 1)
    """

    _whole_tuple: ClassVar[bool] = True


def _as_method(f: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Transform, x: Any) -> Any:
        return f(x)

    method.__name__ = getattr(f, "__name__", "function")
    return method


def transform_to_state(tfm: Transform, tensors: dict[str, Tensor], key: str = "tfm") -> dict[str, Any]:
    """Describe ``tfm`` as data: its registered class name, configuration and learned state.

    Args:
        tfm: the transform.
        tensors: where tensors of its state are put.
        key: prefix of the tensor keys.

    Examples:
        >>> t = Transform(split_idx=0)
        >>> transform_to_state(t, {})["config"]
        {'split_idx': 0, 'order': 0}
    """
    cls_name = f"{type(tfm).__module__}.{type(tfm).__qualname__}"
    return {
        "type": cls_name,
        "config": to_jsonable(tfm.get_config(), tensors, f"{key}.config"),
        "state": to_jsonable(tfm.get_state(), tensors, f"{key}.state"),
    }


def transform_from_state(data: dict[str, Any], tensors: dict[str, Tensor]) -> Transform:
    """Rebuild a transform written by :func:`transform_to_state`; only classes already imported can be named.

    Examples:
        >>> ts = {}
        >>> t = transform_from_state(transform_to_state(Transform(split_idx=1), ts), ts)
        >>> type(t).__name__, t.split_idx
        ('Transform', 1)
    """
    name = data.get("type") if isinstance(data, dict) else None
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise SerialError(
            f"unknown transform type {name!r}: import the module that defines it before loading "
            "(only transforms the program has imported can be rebuilt; nothing is executed from the file)"
        )
    tfm = cls(**from_jsonable(data.get("config", {}), tensors))
    for k, v in from_jsonable(data.get("state", {}), tensors).items():
        if not k.endswith("_") or k.startswith("_"):
            raise SerialError(f"{name}: state names end with '_', got {k!r}")
        setattr(tfm, k, v)
    return tfm


class _Mapped(Sequence[Any]):
    """A lazy view of ``items`` with some transforms applied (what a pipeline step's ``setups`` sees)."""

    def __init__(self, items: Any, steps: list[Transform], split_idx: int | None) -> None:
        self.items, self.steps, self.split_idx = items, steps, split_idx

    def _do(self, x: Any) -> Any:
        for t in self.steps:
            x = t(x, split_idx=self.split_idx)
        return x

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._do(o) for o in self.items[i]]
        return self._do(self.items[i])

    def __iter__(self) -> Iterator[Any]:
        return (self._do(o) for o in self.items)


def _showable(o: Any) -> bool:
    if isinstance(o, tuple):
        return all(hasattr(e, "show") for e in o)
    return hasattr(o, "show")


class Pipeline:
    """Transforms composed in ``order``: call to encode, ``decode`` to undo, ``show`` to draw.

    Args:
        funcs: transforms, transform classes (instantiated with no arguments) or plain functions.
        split_idx: the split this pipeline serves (0 training, 1 validation), passed to every transform.

    Examples:
        >>> p = Pipeline([Transform(lambda x: x + 1, lambda x: x - 1), Transform(lambda x: x * 10, lambda x: x / 10)])
        >>> p(1), p.decode(p(1))
        (20, 1.0)
    """

    def __init__(self, funcs: Any = None, split_idx: int | None = None) -> None:
        fs = [f() if isinstance(f, type) else f for f in listify(funcs)]
        fs = [f if isinstance(f, Transform) else Transform(f) for f in fs]
        self.fs: list[Transform] = sorted(fs, key=lambda t: t.order)
        self.split_idx = split_idx

    def setup(self, items: Any = None) -> None:
        """Run each step's ``setups`` on ``items`` with only the earlier steps applied (in validation mode, so
        random training-only augmentations do not shape learned state)."""
        for i, t in enumerate(self.fs):
            t.setup(_Mapped(items, self.fs[:i], 1) if i and items is not None else items)

    def __call__(self, x: Any) -> Any:
        split_idx, i = self.split_idx, 0
        try:
            with _plain_ops():  # once for all steps
                for i, f in enumerate(self.fs):  # noqa: B007 (i names the failing step)
                    # a step that keeps Transform.__call__ skips its own _plain_ops entry
                    x = f._call_plain(x, split_idx) if type(f).__call__ is _TRANSFORM_CALL else f(x, split_idx)
        except TransformError:
            raise
        except Exception as e:
            raise TransformError(
                f"pipeline step {i + 1}/{len(self.fs)} `{self.fs[i].name}` failed on {describe_item(x)}: "
                f"{type(e).__name__}: {e}"
            ) from e
        return x

    def decode(self, x: Any) -> Any:
        """Undo the steps in reverse order."""
        for f in reversed(self.fs):
            x = f.decode(x, split_idx=self.split_idx)
        return x

    def show(self, o: Any, ctx: Any = None, **kwargs: Any) -> Any:
        """Decode ``o`` step by step until it can show itself, draw it on ``ctx`` and return the axis."""
        for f in [*reversed(self.fs), None]:
            if _showable(o):
                return show_any(o, ctx=ctx, **kwargs)
            if f is None:
                break
            o = f.decode(o, split_idx=self.split_idx)
        raise TypeError(f"cannot show {describe_item(o)}: no step decodes it into a type with a `show` method")

    def __len__(self) -> int:
        return len(self.fs)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.fs)

    def __repr__(self) -> str:
        return "Pipeline: " + " -> ".join(repr(f) for f in self.fs)


def show_any(o: Any, ctx: Any = None, **kwargs: Any) -> Any:
    """Show ``o`` (or each element of a tuple, layered on one axis) and return the axis.

    Examples:
        >>> from lamina.core.tensors import Category, TensorImage
        >>> ax = show_any((TensorImage(torch.rand(3, 4, 4)), Category("noise")))
        >>> ax.get_title()
        'noise'
    """
    if isinstance(o, tuple):
        for e in o:
            ctx = e.show(ctx=ctx, **kwargs)
        return ctx
    return o.show(ctx=ctx, **kwargs)
