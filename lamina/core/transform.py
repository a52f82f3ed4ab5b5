"""Reversible, type-dispatched transforms and the pipelines that compose them.

A :class:`Transform` has three contracts, each chosen by the type of its input (see :mod:`lamina.core.dispatch`):
``encodes`` (the forward step), ``decodes`` (its inverse, for showing) and ``setups`` (learn state from data). Write
one method named ``encodes``, or several methods of any name marked with the :func:`encodes` decorator, each
annotated with the type it handles. Called on a tuple ``(x, y, ...)`` a transform is applied to each element by
that element's type and passes through the ones it has no method for; an :class:`ItemTransform` sees the tuple.

Inside ``encodes``/``decodes`` the input keeps its type and metadata, but torch operations return plain tensors
(subclass dispatch on every op would cost more than the op on small items); the transform gives its result the
input's semantic type back (element by element for tuples), unless the method built another typed tensor itself
or its return annotation names a more specific tensor type (``def encodes(self, x: np.ndarray) -> TensorImage``
returning a plain tensor gives a ``TensorImage``).

Configuration (the ``__init__`` arguments, stored under the same names) and learned state (attributes ending in
``_``) are data: :func:`transform_to_state` writes them as JSON-safe values plus tensors and
:func:`transform_from_state` rebuilds the transform, but only if its class was registered as exportable with
:func:`exportable` (lamina registers its own data-only transforms where they are defined): an export is data, and
the file never chooses which of the program's classes gets constructed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

from torch import Tensor

from lamina.core.dispatch import TypeDispatch, input_types, result_type
from lamina.core.serial import SerialError, from_jsonable, to_jsonable
from lamina.core.tensors import TensorBase, _plain_ops, _typed_alias, _typed_ops_on, retype
from lamina.core.utils import describe_item, listify

__all__ = [
    "ItemTransform",
    "Pipeline",
    "Transform",
    "TransformError",
    "as_type",
    "decodes",
    "encodes",
    "exportable",
    "registered_transforms",
    "setups",
    "show_any",
    "transform_from_state",
    "transform_to_state",
]

_ROLES = ("encodes", "decodes", "setups")
# Inside a transform's methods torch ops return plain tensors (no subclass dispatch per op, about 3x cheaper):
# they run within _plain_ops, and the transform gives its result the input's type and metadata once.
_ROLE_ATTR = "__lamina_role__"
_REGISTRY: dict[str, type[Transform]] = {}  # the classes registered with @exportable, by module.QualName


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


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


T = TypeVar("T", bound="type[Transform]")


def exportable(cls: T) -> T:
    """Register a ``Transform`` subclass as exportable: :func:`transform_from_state` may rebuild it from a file.

    Register only classes whose ``__init__`` stores its arguments as data and does nothing else (no files, no
    imports, no calls chosen by the arguments): a file chooses the arguments. Anything not registered is refused.

    Examples:
        >>> @exportable
        ... class AddOne(Transform):
        ...     def encodes(self, x: int): return x + 1
        >>> ts = {}
        >>> transform_from_state(transform_to_state(AddOne(), ts), ts)(1)
        2
    """
    if not (isinstance(cls, type) and issubclass(cls, Transform)):
        raise TypeError(f"@exportable registers Transform subclasses, got {cls!r}")
    _REGISTRY[_class_name(cls)] = cls
    return cls


def registered_transforms() -> dict[str, type[Transform]]:
    """The ``Transform`` classes registered with :func:`exportable`, by ``module.QualName``.

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
        >>> class Scale(Transform):
        ...     def encodes(self, x: list) -> TensorImage: return torch.tensor(x) / 255  # the annotation types it
        >>> type(Scale()([255, 0])).__name__
        'TensorImage'
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
                td.add(_as_method(f), input_types(f, method=False), result_type(f))
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
        return x if f is None else _typed_result(f(self, x), x, td.returns[f])

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


exportable(Transform)  # the identity with a split or an order: data only
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


exportable(ItemTransform)


def _as_method(f: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Transform, x: Any) -> Any:
        return f(x)

    method.__name__ = getattr(f, "__name__", "function")
    return method


def _typed_result(res: Any, x: Any, cls: type | None = None) -> Any:
    """The result of an ``encodes``/``decodes`` on ``x`` with ``x``'s semantic type.

    ``cls``, the class the method's return annotation names, comes first: a tensor of a more general type becomes a
    ``cls`` (taking ``x``'s metadata when ``x`` is that kind of tensor). Otherwise a tensor of a more general type than
    ``x``'s takes ``x``'s type and metadata, and a tensor of ``x``'s own type without metadata takes ``x``'s. Anything
    else (a tuple from an ItemTransform included) is returned as it is. Typing makes a new tensor object sharing the
    result's storage: a tensor the method returned but also holds (a fixed tensor it keeps) never changes.
    """
    if not isinstance(res, Tensor):
        return res
    tr = type(res)
    if cls is not None and tr is not cls and issubclass(cls, tr):
        same_kind = isinstance(x, Tensor) and (isinstance(x, cls) or issubclass(cls, type(x)))
        return _typed_alias(res, cls, x if same_kind else None)
    tx = type(x)
    if tr is tx:
        if res is not x and not res.__dict__ and x.__dict__:
            return _typed_alias(res, tx, x)
        return res
    if issubclass(tx, tr) and isinstance(x, Tensor):
        return _typed_alias(res, tx, x)
    return res


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
    return {
        "type": _class_name(type(tfm)),
        "config": to_jsonable(tfm.get_config(), tensors, f"{key}.config"),
        "state": to_jsonable(tfm.get_state(), tensors, f"{key}.state"),
    }


def transform_from_state(data: dict[str, Any], tensors: dict[str, Tensor]) -> Transform:
    """Rebuild a transform written by :func:`transform_to_state`; only classes registered with :func:`exportable`.

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
            f"transform type {name!r} is not registered as exportable, so it cannot be rebuilt from stored state. "
            "If it is your own data-only Transform, decorate its class with @lamina.core.exportable "
            "(nothing named by a file is constructed unless registered)"
        )
    config, state = from_jsonable(data.get("config", {}), tensors), from_jsonable(data.get("state", {}), tensors)
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise SerialError(f"{name}: stored config and state must be mappings, got {config!r} and {state!r}")
    try:
        tfm = cls(**config)
    except (TypeError, ValueError) as e:
        raise SerialError(f"{name}: the stored config {sorted(config)} does not rebuild the transform: {e}") from None
    for k, v in state.items():
        if not isinstance(k, str) or not k.endswith("_") or k.startswith("_"):
            raise SerialError(f"{name}: state names end with '_', got {k!r}")
        setattr(tfm, k, v)
    return tfm


class _Mapped(Sequence[Any]):
    """A lazy view of ``items`` with some transforms applied (what a pipeline step's ``setups`` sees)."""

    def __init__(self, items: Any, steps: Sequence[Transform], split_idx: int | None) -> None:
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


def _expected_type(in_type: type, ret: type | None) -> type | None:
    """The type the typing rule (:func:`_typed_result`) gives a step's result, known ahead from the type of its input
    and its return annotation ``ret``: for a plain tensor result when the answer is a tensor type, for a result of
    exactly that type otherwise. ``None`` when nothing says ahead (a non-tensor input and no annotation)."""
    if ret is not None and ret is not Tensor:
        return ret
    if issubclass(in_type, Tensor):
        return in_type
    return ret


def as_type(x: Any, cls: type) -> Any:
    """``x`` given the semantic type ``cls`` a pipeline resolved for it: a plain tensor becomes a new ``cls`` tensor
    sharing its storage; anything else (a value already of its type, a number) is returned as it is.

    Args:
        x: a value from :meth:`Pipeline.run_untyped` or an element of a collated batch.
        cls: its resolved type.

    Examples:
        >>> from lamina.core.tensors import TensorImage
        >>> t = torch.zeros(2)
        >>> type(as_type(t, TensorImage)).__name__, type(t).__name__, as_type(3, int)
        ('TensorImage', 'Tensor', 3)
    """
    if type(x) is Tensor and cls is not Tensor and issubclass(cls, Tensor):
        return retype(x, cls)
    return x


# One step of a route: its position, the transform, its encodes for the input type, that encodes' return annotation,
# the input type, the type its result gets (see _expected_type), whether that is a tensor type, the transform's
# split_idx when the route was resolved, and whether it runs on the pipeline's split.
_RouteStep = tuple[int, "Transform", Callable[..., Any], "type | None", type, type, bool, "int | None", bool]
_MAX_ROUTES = 64  # input types a pipeline keeps a route for (further types are resolved again each time)


class _Route:
    """How items of one input type go through a pipeline, resolved ahead from dispatch and return annotations:
    ``steps`` run on plain values; from position ``rest`` on (a step whose input or result type cannot be known
    ahead) the item goes step by step with its semantic type; ``out_type`` is the type after the last route step."""

    __slots__ = ("out_type", "rest", "steps")

    def __init__(self, steps: list[_RouteStep], out_type: type, rest: int) -> None:
        self.steps, self.out_type, self.rest = tuple(steps), out_type, rest


class Pipeline:
    """Transforms composed in ``order``: call to encode, ``decode`` to undo, ``show`` to draw.

    How an item goes through: for each input type the pipeline resolves a route once, from the methods dispatch
    picks and their return annotations (the rule of :func:`_typed_result`, applied ahead). Along the route values
    travel as plain tensors and each step's ``encodes`` is called directly; the result gets its semantic type once,
    at the end (``pipe(x)``), or a loader gives the whole collated batch its type (:meth:`run_untyped`, through
    ``Datasets.fetch_columns``). A value leaves the route and goes on step by step with its semantic type at a result
    of another type than resolved, a tensor carrying metadata such as ``img_size``, a step with its own ``__call__``
    or one mapped over a tuple, or a typed input going into a step whose result is not a tensor (it may hold it).

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
        self._fs: tuple[Transform, ...] = tuple(sorted(fs, key=lambda t: t.order))
        # what runs each step off the route: the body of Transform.__call__ without its _plain_ops entry (the
        # pipeline enters it once for all steps), or the step itself when its class has its own __call__
        self._calls = tuple(f._call_plain if type(f).__call__ is _TRANSFORM_CALL else f for f in self._fs)
        self._routes: dict[type, _Route] = {}
        self._split_idx = split_idx

    @property
    def split_idx(self) -> int | None:
        """The split this pipeline serves (0 training, 1 validation, None any); setting it resolves routes anew."""
        return self._split_idx

    @split_idx.setter
    def split_idx(self, value: int | None) -> None:
        self._split_idx = value
        self._routes = {}

    @property
    def fs(self) -> tuple[Transform, ...]:
        """The steps, in order (read-only: build a new Pipeline to change them)."""
        return self._fs

    def setup(self, items: Any = None) -> None:
        """Run each step's ``setups`` on ``items`` with only the earlier steps applied (in validation mode, so
        random training-only augmentations do not shape learned state)."""
        for i, t in enumerate(self.fs):
            t.setup(_Mapped(items, self.fs[:i], 1) if i and items is not None else items)

    def __call__(self, x: Any) -> Any:
        if _typed_ops_on():  # enter plain-op mode once for all steps
            with _plain_ops():
                return self._run(x)
        return self._run(x)

    def _run(self, x: Any) -> Any:
        """``__call__`` in plain-op mode (a Datasets calls it for all the pipelines of a batch's items)."""
        v, cls = self._untyped(x)
        return v if cls is None else as_type(v, cls)

    def run_untyped(self, x: Any) -> tuple[Any, type | None]:
        """Run ``x`` through the steps, leaving the semantic typing of the result to the caller: returns the value
        and the type :func:`as_type` gives it (``None`` when the value already has its type). Loaders call it in
        plain-op mode and type a collated batch once.

        Examples:
            >>> from lamina.core.tensors import TensorImage
            >>> class ToImage(Transform):
            ...     def encodes(self, x: list) -> TensorImage: return torch.tensor(x) / 255
            >>> v, cls = Pipeline([ToImage()]).run_untyped([255, 0])
            >>> type(v).__name__, cls.__name__
            ('Tensor', 'TensorImage')
        """
        if _typed_ops_on():  # the steps run in plain-op mode, as in __call__
            with _plain_ops():
                return self._untyped(x)
        return self._untyped(x)

    def _untyped(self, x: Any) -> tuple[Any, type | None]:
        """:meth:`run_untyped` in plain-op mode."""
        tx = type(x)
        route = self._routes.get(tx)
        if route is None:
            route = self._resolve(tx)
        if isinstance(x, TensorBase) and x.__dict__:  # metadata travels on typed values only
            return self._run_from(x, 0), None
        if route.steps:
            done, x = self._follow(route, x, tx)
            if done:
                return x, None
        if route.rest < len(self._fs):
            return self._run_from(as_type(x, route.out_type), route.rest), None
        return x, route.out_type

    def _follow(self, route: _Route, x: Any, tx: type) -> tuple[bool, Any]:
        """Run ``route``'s steps on plain values: ``(False, value)`` at its end, or ``(True, typed result)`` when a
        value left the route and went on step by step."""
        pos, in_type = 0, tx
        try:
            for pos, t, f, ret, in_type, expect, is_tensor, seen, active in route.steps:
                if t.split_idx != seen:  # changed since the route was resolved
                    self._routes.pop(tx, None)
                    return True, self._run_from(as_type(x, in_type), pos)
                if not active:
                    continue
                res = f(t, x)
                tr = type(res)
                if (tr is expect or (is_tensor and tr is Tensor)) and not (is_tensor and res.__dict__):
                    x = res
                else:  # off the route: type the result by the rule and go on step by step
                    return True, self._run_from(_typed_result(res, as_type(x, in_type), ret), pos + 1)
        except TransformError:
            raise
        except Exception as e:
            raise self._failed(pos, as_type(x, in_type), e) from e
        return False, x

    def _resolve(self, in_type: type) -> _Route:
        """The route of items of ``in_type`` (kept for the first ``_MAX_ROUTES`` input types)."""
        steps: list[_RouteStep] = []
        tx, split, rest = in_type, self._split_idx, len(self._fs)
        for pos, t in enumerate(self._fs):
            if self._calls[pos] is t or (tx is tuple and not t._whole_tuple):
                rest = pos
                break
            f = t._encodes_td[tx]
            if f is None:  # passes through
                continue
            ret = t._encodes_td.returns[f]
            expect = _expected_type(tx, ret)
            if expect is None or (issubclass(tx, TensorBase) and not issubclass(expect, Tensor)):
                rest = pos  # unknown ahead, or a typed input that may end up inside a non-tensor result
                break
            active = split is None or t.split_idx is None or t.split_idx == split
            steps.append((pos, t, f, ret, tx, expect, issubclass(expect, Tensor), t.split_idx, active))
            if active:
                tx = expect
        route = _Route(steps, tx, rest)
        if len(self._routes) < _MAX_ROUTES:
            self._routes[in_type] = route
        return route

    def _run_from(self, x: Any, start: int) -> Any:
        """Run the steps from ``start`` one by one on ``x``, each result given its semantic type."""
        split, pos = self._split_idx, start
        try:
            for pos in range(start, len(self._calls)):
                x = self._calls[pos](x, split)
        except TransformError:
            raise
        except Exception as e:
            raise self._failed(pos, x, e) from e
        return x

    def _failed(self, pos: int, x: Any, e: Exception) -> TransformError:
        return TransformError(
            f"pipeline step {pos + 1}/{len(self.fs)} `{self.fs[pos].name}` failed on {describe_item(x)}: "
            f"{type(e).__name__}: {e}"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_routes": {}}  # routes are resolved again where the pipeline lands

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
        return len(self._fs)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self._fs)

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
