"""Small helpers shared by every floor."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["atomic_write", "describe_item", "listify", "map_tensors", "to_device"]


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


def map_tensors(f: Callable[[Tensor], Any], b: Any) -> Any:
    """Apply ``f`` to every tensor in a (nested) tuple/list/dict, keeping the structure; other values pass through.

    Examples:
        >>> map_tensors(lambda t: t * 2, (torch.ones(1), ["a", {"k": torch.ones(1)}]))
        (tensor([2.]), ['a', {'k': tensor([2.])}])
    """
    if isinstance(b, Tensor):
        return f(b)
    if isinstance(b, (tuple, list)):
        return type(b)(map_tensors(f, o) for o in b)
    if isinstance(b, dict):
        return {k: map_tensors(f, v) for k, v in b.items()}
    return b


def to_device(b: Any, device: torch.device | str | None, non_blocking: bool = False) -> Any:
    """Move every tensor in a (nested) tuple/list/dict to ``device``; types and metadata are kept.

    Examples:
        >>> to_device((torch.zeros(2), [torch.ones(1)]), "cpu")[1][0].device.type
        'cpu'
    """
    if device is None:
        return b
    return map_tensors(lambda t: t.to(device, non_blocking=non_blocking), b)


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


@contextlib.contextmanager
def atomic_write(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends normally the file is flushed to disk and
    renamed over ``path``, otherwise it is deleted. A crash or an error never leaves ``path`` half-written.

    Args:
        path: the destination (its folder is created).
        suffix: the temporary file's suffix.

    Examples:
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_write(folder / "out.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (folder / "out.txt").read_text(), sorted(p.name for p in folder.iterdir())
        ('done', ['out.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
