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
:func:`transform_from_state` rebuilds the transform from a registry of the classes the program imported.
"""

from __future__ import annotations

import inspect
import itertools
import linecache
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, cast

from torch import Tensor

from lamina.core.dispatch import TypeDispatch, input_types, result_type
from lamina.core.serial import SerialError, from_jsonable, to_jsonable
from lamina.core.tensors import (
    _SOLE_LOCAL_REFS,
    TensorBase,
    _getrefcount,
    _plain_ops,
    _retype_keeping,
    _take_metadata,
    _typed_ops_on,
    adopt_type,
    class_assignable,
)
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
# Inside a transform's methods torch ops return plain tensors (no subclass dispatch per op, about 3x cheaper):
# they run within _plain_ops, and the transform gives its result the input's type and metadata once.
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


_REGISTRY["lamina.core.transform.Transform"] = Transform
_TRANSFORM_CALL = Transform.__call__
_MAX_PLANS = 64  # input types a pipeline keeps a plan for (items of further types run step by step)
_PLAN_NUMBERS = itertools.count()  # gives each compiled plan its own file name for tracebacks


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


def _typed_result(res: Any, x: Any, cls: type | None = None) -> Any:
    """The result of an ``encodes``/``decodes`` on ``x`` with ``x``'s semantic type: a tensor of a more general type
    computed from a typed one takes its type and metadata; a result built as ``x``'s own type keeps ``x``'s metadata
    when it has none; anything else (a tuple from an ItemTransform included) is returned as it is. ``cls``, the class
    the method's return annotation names, comes first: a tensor of a more general type becomes ``cls`` (see
    :func:`adopt_type` for the metadata)."""
    if cls is not None and type(res) is not cls and isinstance(res, Tensor) and issubclass(cls, type(res)):
        return adopt_type(res, x, cls)
    tx = type(x)
    if type(res) is tx:
        if res is not x and isinstance(x, TensorBase) and x.__dict__ and not res.__dict__:
            res.__dict__.update(x.__dict__)
        return res
    return adopt_type(res, x) if isinstance(x, Tensor) else res


# How a pipeline's plan (see Pipeline) finishes a result of the type it recorded:
_KEEP = 0  # as it is: what the rule does with a result from a non-tensor, or of a type not more general than x's
_SAME = 1  # a typed tensor of the input's type: it takes the input's metadata if it has none
_ADOPT = 2  # a plain tensor from a tensor: it takes the input's type, or the step's return annotation when that is
# the input's kind (in place when nothing else holds it), and the input's metadata for the keys it lacks
_RULE = 3  # anything else (typed tensors of a parent type): _typed_result decides
_CAST = 4  # a plain tensor typed by the step's return annotation, of another kind than the input: no metadata


def _finish_mode(in_type: type, res_type: type, cls: type | None = None) -> int:
    """How ``_typed_result`` treats a result of ``res_type`` from an input of ``in_type`` with the return annotation
    ``cls`` (see the modes above)."""
    if cls is not None and res_type is not cls and issubclass(res_type, Tensor) and issubclass(cls, res_type):
        if res_type is Tensor and class_assignable(cls):
            same_kind = issubclass(in_type, Tensor) and (issubclass(in_type, cls) or issubclass(cls, in_type))
            return _ADOPT if same_kind else _CAST
        return _RULE
    if res_type is in_type:
        return _SAME if issubclass(in_type, TensorBase) else _KEEP
    if issubclass(in_type, Tensor) and issubclass(in_type, res_type):  # a more general result takes x's type
        return _ADOPT if res_type is Tensor and class_assignable(in_type) else _RULE
    return _KEEP


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


# One step of a plan (see Pipeline.__call__): the transform, its encodes for the type the item has there (None: call
# the step), the result type seen when the plan was recorded (None: always finish with the general rule), the type
# the step passed on to the next planned step (through the steps that let it pass), how to finish a result of the
# recorded type, the step's position in the pipeline, the class its return annotation names, and the step's
# split_idx when the plan was recorded.
_PlanStep = list[Any]


def _step_source(k: int, step: _PlanStep, split: int | None) -> list[str]:
    """The lines that run step ``k`` of a plan (its objects are the names ``t{k}``, ``f{k}``... of the plan's
    globals, see ``_compile_plan``)."""
    _, f, _, _, mode, pos, _, seen_split = step
    if f is None:  # a step with its own __call__, or one mapped over the elements of a tuple
        return [f"x = call{k}(x, split)", f"if type(x) is not O{k}: return pipe._run_steps(x, {pos + 1})"]
    lines: list[str] = []
    if split is not None:  # a changed split_idx drops the plan
        lines.append(f"if t{k}.split_idx != S{k}: return pipe._replan(in_type, x, {pos})")
        if seen_split is not None and seen_split != split:
            return lines  # not on this split
    if mode == _RULE:
        lines.append(f"x = typed_result(f{k}(t{k}, x), x, ret{k})")
        lines.append(f"if type(x) is not O{k}: return pipe._run_steps(x, {pos + 1})")
        return lines
    lines += [
        f"res = f{k}(t{k}, x)",
        f"if type(res) is not R{k}: return pipe._run_steps(typed_result(res, x, ret{k}), {pos + 1})",
    ]
    if mode == _SAME:
        lines.append("if res is not x and x.__dict__ and not res.__dict__: res.__dict__.update(x.__dict__)")
    elif mode in (_ADOPT, _CAST):  # a plain tensor takes the type, in place when nothing else holds it
        lines.append(f"if getrefcount(res) <= {_SOLE_LOCAL_REFS}: res.__class__ = O{k}")
        lines.append(f"else: res = retype_keeping(res, O{k})")
        if mode == _ADOPT:
            lines.append("if x.__dict__: take_metadata(res, x)")
    lines.append("x = res")
    return lines


def _compile_plan(pipe: Pipeline, in_type: type, plan: list[_PlanStep]) -> Callable[[Any], Any]:
    """The plan as a Python function of one item: the steps written out one after another, so an item pays for its
    transforms' own work and a few checks, not for a loop interpreting the plan. The source is registered with
    ``linecache``: tracebacks through a plan show its lines."""
    split, n = pipe.split_idx, len(pipe._fs)
    env: dict[str, Any] = {
        "type": type, "getrefcount": _getrefcount, "retype_keeping": _retype_keeping, "take_metadata": _take_metadata,
        "typed_result": _typed_result, "TransformError": TransformError, "pipe": pipe, "in_type": in_type,
        "split": split,
    }  # fmt: skip
    body: list[str] = []
    for k, step in enumerate(plan):
        t, f, res_type, out_type, _, pos, ret, seen_split = step
        env.update({f"t{k}": t, f"f{k}": f, f"R{k}": res_type, f"O{k}": out_type, f"ret{k}": ret, f"S{k}": seen_split})
        env[f"call{k}"] = pipe._calls[pos]
        body += [f"pos = {pos}  # step {pos + 1}/{n}: {t.name!r}", *_step_source(k, step, split)]
    source = "\n".join(
        ["def run(x):", "    try:"]
        + [f"        {line}" for line in body]
        + ["        return x", "    except TransformError:", "        raise",
           "    except Exception as e:", "        raise pipe._failed(pos, x, e) from e"]
    )  # fmt: skip
    filename = f"<lamina plan {next(_PLAN_NUMBERS)}: {type(pipe).__name__} on {in_type.__qualname__}>"
    exec(compile(source, filename, "exec"), env)
    run = cast(Callable[[Any], Any], env["run"])
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    weakref.finalize(run, linecache.cache.pop, filename, None)  # the lines go with the plan
    return run


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
        self._fs: tuple[Transform, ...] = tuple(sorted(fs, key=lambda t: t.order))
        # steps whose class overrides __call__ are called as they are; the others through _call_plain (the body of
        # Transform.__call__ without its _plain_ops entry, which the pipeline enters once for all steps)
        self._own_call = tuple(type(f).__call__ is not _TRANSFORM_CALL for f in self._fs)
        self._calls = tuple(f if own else f._call_plain for f, own in zip(self._fs, self._own_call))
        self._plans: dict[type, Callable[[Any], Any]] = {}  # input type -> its plan, compiled by _compile_plan
        self._split_idx = split_idx

    @property
    def split_idx(self) -> int | None:
        """The split this pipeline serves (0 training, 1 validation, None any); setting it drops the plans."""
        return self._split_idx

    @split_idx.setter
    def split_idx(self, value: int | None) -> None:
        self._split_idx = value
        self._plans = {}

    @property
    def fs(self) -> tuple[Transform, ...]:
        """The steps, in order (read-only: build a new Pipeline to change them)."""
        return self._fs

    def setup(self, items: Any = None) -> None:
        """Run each step's ``setups`` on ``items`` with only the earlier steps applied (in validation mode, so
        random training-only augmentations do not shape learned state)."""
        for i, t in enumerate(self.fs):
            t.setup(_Mapped(items, self.fs[:i], 1) if i and items is not None else items)

    # Per-item work is a few microseconds of tensor ops, so the pipeline's own cost matters. The first item of each
    # input type runs step by step (`_run_steps`) and records a plan: the steps that have an `encodes` for the type
    # the item has when it reaches them, with the type that step returned and the type it passed on. The plan is
    # compiled into a function with the steps written out (`_compile_plan`), which later items of that type run: no
    # dispatch lookups, no calls through `Transform`, and a result of the recorded type is finished without the
    # general rule (`_typed_result`), giving the recorded type. Only a result of another type (a transform whose
    # output type varies) needs a check: when the type it passes on is not the recorded one, the item goes on step
    # by step from the next step.

    def __call__(self, x: Any) -> Any:
        if _typed_ops_on():  # enter plain-op mode once for all steps
            with _plain_ops():
                return self._run(x)
        return self._run(x)

    def _run(self, x: Any) -> Any:
        """``__call__`` in plain-op mode (a Datasets calls it for all the pipelines of a batch's items)."""
        run = self._plans.get(type(x))
        return self._run_steps(x, 0, record=True) if run is None else run(x)

    def _replan(self, in_type: type, x: Any, pos: int) -> Any:
        """A step's ``split_idx`` changed since the plan for ``in_type`` was recorded: drop it, go on step by step."""
        self._plans.pop(in_type, None)
        return self._run_steps(x, pos)

    def _run_steps(self, x: Any, start: int, record: bool = False) -> Any:
        """Run the steps from ``start`` one by one; with ``record``, keep the plan for items of ``x``'s type."""
        split, in_type, pos = self.split_idx, type(x), start
        plan: list[list[Any]] = []  # the steps of _PlanStep, with the type each passes on filled in as x goes on
        try:
            for pos in range(start, len(self._fs)):
                t, tx = self._fs[pos], type(x)
                if plan:
                    plan[-1][3] = tx  # what the last planned step passed on (through the steps that let x pass)
                if self._own_call[pos] or (tx is tuple and not t._whole_tuple):
                    plan.append([t, None, None, None, _RULE, pos, None, t.split_idx])
                    x = self._calls[pos](x, split)
                    continue
                f = t._encodes_td._cache[tx]
                if f is None:  # x passes through: not in the plan
                    continue
                ret = t._encodes_td.returns[f]
                if split is not None and t.split_idx is not None and t.split_idx != split:
                    plan.append([t, f, None, None, _RULE, pos, ret, t.split_idx])
                    continue
                res = f(t, x)
                mode = _finish_mode(tx, type(res), ret)
                plan.append([t, f, None if mode == _RULE else type(res), None, mode, pos, ret, t.split_idx])
                x = _typed_result(res, x, ret)
        except TransformError:
            raise
        except Exception as e:
            raise self._failed(pos, x, e) from e
        if record and len(self._plans) < _MAX_PLANS:
            if plan:
                plan[-1][3] = type(x)
            self._plans[in_type] = _compile_plan(self, in_type, plan)
        return x

    def _failed(self, pos: int, x: Any, e: Exception) -> TransformError:
        return TransformError(
            f"pipeline step {pos + 1}/{len(self.fs)} `{self.fs[pos].name}` failed on {describe_item(x)}: "
            f"{type(e).__name__}: {e}"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_plans": {}}  # plans are rebuilt on the first items (they may hold lambdas)

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
