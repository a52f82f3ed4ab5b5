"""Type dispatch: pick a function by the type of its input, following the MRO.

A :class:`TypeDispatch` is a small registry ``type -> function``. Lookup walks the input type's MRO and returns the
function registered for the most specific type, so a function annotated ``TensorImage`` also serves
``TensorImageBW``. ``A | B`` and ``(A, B)`` register for both types; no annotation means ``object`` (any input).
Results are cached per concrete type, so a lookup on the hot path is one dict access.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["TypeDispatch", "annotation_types", "input_types", "result_type"]


def annotation_types(annotation: Any) -> tuple[type, ...]:
    """The concrete types an annotation stands for: ``A | B``, ``Union[A, B]`` and ``(A, B)`` give both.

    Examples:
        >>> annotation_types(int | str)
        (<class 'int'>, <class 'str'>)
        >>> annotation_types(inspect.Parameter.empty)
        (<class 'object'>,)
    """
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is None:
        return (object,)
    if isinstance(annotation, tuple):
        return tuple(t for a in annotation for t in annotation_types(a))
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for a in typing.get_args(annotation) for t in annotation_types(a))
    origin = typing.get_origin(annotation)
    if origin is not None:
        return (origin,)
    if isinstance(annotation, type):
        return (annotation,)
    raise TypeError(f"cannot dispatch on the annotation {annotation!r}: annotate with a class, `A | B` or `(A, B)`")


def input_types(func: Callable[..., Any], method: bool = True) -> tuple[type, ...]:
    """The types of the input a function dispatches on: the annotation of its first parameter (after ``self`` for a
    ``method``; for a plain function such as ``str.upper`` the first parameter is the input, whatever its name).

    String annotations (``from __future__ import annotations``) are evaluated in the function's module.

    Args:
        func: the function.
        method: ``func`` is defined in a class body and takes ``self`` first.

    Examples:
        >>> def f(self, x: int | float): ...
        >>> input_types(f)
        (<class 'int'>, <class 'float'>)
        >>> input_types(str.upper, method=False)
        (<class 'object'>,)
    """
    params = list(inspect.signature(func).parameters.values())
    if method and params and params[0].name == "self":
        params = params[1:]
    if not params:
        raise TypeError(f"{func.__qualname__} takes no input to dispatch on")
    ann = params[0].annotation
    if isinstance(ann, str):
        try:
            ann = eval(ann, getattr(func, "__globals__", {}))
        except NameError as e:
            raise TypeError(f"cannot resolve the annotation {ann!r} of {func.__qualname__}: {e}") from e
    return annotation_types(ann)


def result_type(func: Callable[..., Any]) -> type | None:
    """The class a function's return annotation names, or ``None`` when it names no single class (no annotation,
    ``A | B``, a generic such as ``list[int]``) or the function has no signature to read.

    String annotations (``from __future__ import annotations``) are evaluated in the function's module; one that
    does not resolve raises, as an input annotation does.

    Examples:
        >>> def f(self, x: int) -> float: ...
        >>> def g(self, x: int) -> int | None: ...
        >>> def h(self, x) -> Any: ...
        >>> result_type(f), result_type(g), result_type(h), result_type(max)
        (<class 'float'>, None, None, None)
    """
    try:
        ann = inspect.signature(func).return_annotation
    except (TypeError, ValueError):  # a builtin without a signature
        return None
    if isinstance(ann, str):
        try:
            ann = eval(ann, getattr(func, "__globals__", {}))
        except NameError as e:
            raise TypeError(
                f"cannot resolve the return annotation {ann!r} of {func.__qualname__}: {e} (define or import the "
                "class at module level, before the function)"
            ) from e
    if ann in (inspect.Signature.empty, Any) or not isinstance(ann, type) or isinstance(ann, types.GenericAlias):
        return None
    return ann


class _LookupCache(dict[type, "Callable[..., Any] | None"]):
    """type -> function (or None), filled on first lookup by walking the MRO; hits are one C-level dict access."""

    def __init__(self, funcs: dict[type, Callable[..., Any]]) -> None:
        super().__init__()
        self.funcs = funcs

    def __missing__(self, t: type) -> Callable[..., Any] | None:
        found = next((self.funcs[k] for k in t.__mro__ if k in self.funcs), None)
        self[t] = found
        return found


class TypeDispatch:
    """A registry of functions chosen by the type of their input, most specific type first.

    Args:
        funcs: functions to register; each is registered for the type(s) of its annotated input.

    Examples:
        >>> def f_num(self, x: int | float): return "number"
        >>> def f_any(self, x): return "anything"
        >>> td = TypeDispatch([f_num, f_any])
        >>> td[bool].__name__, td[str].__name__
        ('f_num', 'f_any')
    """

    def __init__(self, funcs: list[Callable[..., Any]] | None = None) -> None:
        self._funcs: dict[type, Callable[..., Any]] = {}
        self._cache = _LookupCache(self._funcs)
        self.returns: dict[Callable[..., Any], type | None] = {}  # function -> the class its return annotation names
        for f in funcs or []:
            self.add(f)

    def add(
        self, func: Callable[..., Any], for_types: tuple[type, ...] | None = None, returns: type | None = None
    ) -> None:
        """Register ``func`` for ``for_types`` (from its annotation when ``None``); a later one replaces an earlier.
        ``returns``: the class its results are (from its return annotation when ``None``), see :func:`result_type`."""
        for t in for_types or input_types(func):
            self._funcs[t] = func
        self.returns[func] = returns or result_type(func)
        self._cache.clear()

    def copy(self) -> TypeDispatch:
        """A new registry with the same functions, to extend without touching this one."""
        new = TypeDispatch()
        new._funcs.update(self._funcs)
        new.returns.update(self.returns)
        return new

    def __getitem__(self, t: type) -> Callable[..., Any] | None:
        return self._cache[t]

    def __len__(self) -> int:
        return len(self._funcs)

    def __iter__(self) -> Iterator[type]:
        return iter(self._funcs)

    def __repr__(self) -> str:
        inner = ", ".join(f"{t.__name__}: {f.__name__}" for t, f in self._funcs.items())
        return f"TypeDispatch({inner})"
