"""Small helpers shared by every floor."""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "atomic_write",
    "describe_item",
    "listify",
    "map_tensors",
    "remove_stale_temporaries",
    "set_seed",
    "to_device",
]


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed every random generator lamina and torch draw from: Python's ``random``, numpy's global generator, torch's
    CPU generator and every CUDA device's. Loaders without a ``seed`` of their own draw their shuffling and their
    batches' seeds from torch's generator, so a whole training run follows.

    With ``deterministic``, torch also uses deterministic algorithms only (``torch.use_deterministic_algorithms``,
    cuDNN's deterministic mode, no cuDNN benchmarking; and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless it is set,
    which cuBLAS needs for it): the same seed then gives the same weights on a GPU too, usually a little slower. An
    operation with no deterministic implementation then raises. Without it, those settings are left as they are.

    Args:
        seed: a non-negative integer.
        deterministic: also switch torch to deterministic algorithms.

    Examples:
        >>> set_seed(3)
        >>> first = (random.random(), float(np.random.rand()), torch.rand(2).tolist())
        >>> set_seed(3)
        >>> first == (random.random(), float(np.random.rand()), torch.rand(2).tolist())
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))  # seeds every CUDA device as well
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


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


_LIVE_TEMPORARIES: set[Path] = set()  # temporaries of this process's unfinished writes, removed at exit


def _remove_live_temporaries() -> None:
    for tmp in list(_LIVE_TEMPORARIES):
        tmp.unlink(missing_ok=True)


atexit.register(_remove_live_temporaries)


def _writer_is_gone(tmp: Path, prefix: str) -> bool:
    """Whether the process that named ``tmp`` has ended (temporaries from older versions carry no process id)."""
    pid_text = tmp.name[len(prefix) :].split("-", 1)[0]
    if not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return tmp not in _LIVE_TEMPORARIES
    if os.name == "nt":  # os.kill(pid, 0) would send Ctrl+C there: keep other processes' temporaries
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # the process exists but belongs to someone else
        return False
    return False


def remove_stale_temporaries(path: str | Path, suffix: str = ".tmp") -> list[Path]:
    """Delete the temporaries that killed writes of ``path`` left beside it; a write still running keeps its own.

    Args:
        path: the destination whose ``.{name}.*{suffix}`` temporaries are checked.
        suffix: the temporaries' suffix.

    Returns:
        The paths deleted.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".out.txt.1a2b3c4d.tmp").write_text("half")  # left by a write killed mid-way
        >>> [p.name for p in remove_stale_temporaries(folder / "out.txt")], list(folder.iterdir())
        (['.out.txt.1a2b3c4d.tmp'], [])
    """
    path = Path(path)
    prefix = f".{path.name}."
    if not path.parent.is_dir():
        return []
    stale = [
        p
        for p in path.parent.iterdir()
        if p.name.startswith(prefix) and p.name.endswith(suffix) and _writer_is_gone(p, prefix)
    ]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _new_temporary(path: Path, suffix: str) -> Path:
    """Create an empty temporary beside ``path``, named for this process, with the permissions of a plain open."""
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:  # mode 0o666 under the umask, as open(..., "w") would give (mkstemp gives 0o600)
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


@contextlib.contextmanager
def atomic_write(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends normally the file is flushed to disk and
    renamed over ``path``, otherwise it is deleted. A crash or an error never leaves ``path`` half-written.

    Temporaries that earlier writes of ``path`` left when killed are deleted first, and the ones of this process are
    deleted at interpreter exit. The saved file gets the permissions ``open(path, "w")`` would give under the umask.

    Args:
        path: the destination (its folder is created).
        suffix: the temporary file's suffix.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_write(folder / "out.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (folder / "out.txt").read_text(), sorted(p.name for p in folder.iterdir())
        ('done', ['out.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path, suffix)
    tmp = _new_temporary(path, suffix)
    _LIVE_TEMPORARIES.add(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _LIVE_TEMPORARIES.discard(tmp)
