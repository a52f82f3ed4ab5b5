"""State as data: configuration and learned state as JSON-safe values plus a flat dict of tensors.

Nothing here pickles or executes code: values are numbers, strings, lists, dicts, ``None`` and tensors (stored
aside under a key), and classes are named by a registry that only holds classes the running program imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["SerialError", "from_jsonable", "to_jsonable"]

_TENSOR, _TUPLE, _NDARRAY = "__tensor__", "__tuple__", "__ndarray__"


class SerialError(TypeError):
    """A value that cannot be stored as data (JSON-safe values plus tensors).

    Examples:
        >>> to_jsonable({"f": print}, {})
        Traceback (most recent call last):
        ...
        lamina.core.serial.SerialError: f: a builtin_function_or_method cannot be stored as data...
    """


def to_jsonable(value: Any, tensors: dict[str, Tensor], key: str = "") -> Any:
    """``value`` as JSON-safe data; tensors are moved into ``tensors`` under a key derived from ``key``.

    Args:
        value: numbers, strings, ``None``, lists, tuples, dicts with string keys, tensors or numpy arrays.
        tensors: where tensors are put (plain, contiguous, on the CPU).
        key: the path of ``value``, used for tensor keys and error messages.

    Examples:
        >>> ts = {}
        >>> to_jsonable({"vocab_": ("a", "b"), "mean_": torch.tensor([0.5])}, ts, "norm")
        {'vocab_': {'__tuple__': ['a', 'b']}, 'mean_': {'__tensor__': 'norm.mean_'}}
        >>> list(ts)
        ['norm.mean_']
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, Tensor):
        tensors[key] = value.detach().as_subclass(Tensor).cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            tensors[key] = torch.from_numpy(np.ascontiguousarray(value))
            return {_NDARRAY: key}
        return [to_jsonable(v, tensors, f"{key}.{i}") for i, v in enumerate(value.tolist())]
    if isinstance(value, tuple):
        return {_TUPLE: [to_jsonable(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [to_jsonable(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise SerialError(f"{key or 'value'}: dict keys must be strings to be stored as data, got {bad[0]!r}")
        return {k: to_jsonable(v, tensors, f"{key}.{k}" if key else k) for k, v in value.items()}
    raise SerialError(
        f"{key or 'value'}: a {type(value).__name__} cannot be stored as data. Keep configuration and learned state "
        "as numbers, strings, lists, dicts or tensors (functions and arbitrary objects would need pickle)."
    )


def from_jsonable(data: Any, tensors: dict[str, Tensor]) -> Any:
    """Rebuild a value written by :func:`to_jsonable`.

    Examples:
        >>> ts = {}
        >>> data = to_jsonable({"shape": (2, 3), "w": torch.ones(2)}, ts)
        >>> back = from_jsonable(data, ts)
        >>> back["shape"], back["w"].tolist()
        ((2, 3), [1.0, 1.0])
    """
    if isinstance(data, list):
        return [from_jsonable(v, tensors) for v in data]
    if isinstance(data, dict):
        if len(data) == 1:
            ((k, v),) = data.items()
            if k == _TENSOR:
                return _lookup(tensors, v)
            if k == _NDARRAY:
                return _lookup(tensors, v).numpy()
            if k == _TUPLE:
                return tuple(from_jsonable(o, tensors) for o in v)
        return {k: from_jsonable(v, tensors) for k, v in data.items()}
    return data


def _lookup(tensors: dict[str, Tensor], key: Any) -> Tensor:
    if not isinstance(key, str) or key not in tensors:
        raise SerialError(f"stored state refers to a tensor {key!r} that is missing: the file is incomplete or foreign")
    return tensors[key]
