"""Small helpers shared by every floor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["describe_item", "listify", "to_device"]


def listify(o: Any) -> list[Any]:
    """``o`` as a list: ``None`` is empty, a string or tensor is one element, other iterables are expanded.

    Examples:
        >>> listify(None), listify("ab"), listify((1, 2)), listify(3)
        ([], ['ab'], [1, 2], [3])
    """
    if o is None:
        return []
    if isinstance(o, list):
        return o
    if isinstance(o, (str, bytes, dict, Tensor)) or not isinstance(o, Iterable):
        return [o]
    return list(o)


def to_device(b: Any, device: torch.device | str | None, non_blocking: bool = False) -> Any:
    """Move every tensor in a (nested) tuple/list/dict to ``device``; types and metadata are kept.

    Examples:
        >>> to_device((torch.zeros(2), [torch.ones(1)]), "cpu")[1][0].device.type
        'cpu'
    """
    if device is None:
        return b
    if isinstance(b, Tensor):
        return b.to(device, non_blocking=non_blocking)
    if isinstance(b, (tuple, list)):
        return type(b)(to_device(o, device, non_blocking) for o in b)
    if isinstance(b, dict):
        return {k: to_device(v, device, non_blocking) for k, v in b.items()}
    return b


def describe_item(item: Any, limit: int = 80) -> str:
    """A short, one-line description of a data item for error messages.

    Examples:
        >>> describe_item(torch.zeros(3, 28, 28))
        'Tensor of shape (3, 28, 28)'
        >>> describe_item("images/cat/1.png")
        "'images/cat/1.png'"
    """
    if isinstance(item, Tensor):
        return f"{type(item).__name__} of shape {tuple(item.shape)}"
    if isinstance(item, tuple):
        return "(" + ", ".join(describe_item(o, limit // 2) for o in item) + ")"
    text = repr(item)
    return text if len(text) <= limit else text[: limit - 3] + "..."
