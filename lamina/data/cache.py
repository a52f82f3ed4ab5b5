"""Item caching: a loader keeps its items after their first full epoch and later batches are made by slicing.

When every item transform of a loader is deterministic on its split (decoding, deterministic resizing, labelling),
each epoch recomputes the same items: decoding a folder of PNGs every epoch is work thrown away. With caching, the
first complete epoch runs as usual (in workers if there are any) and keeps a copy of each collated batch, before
``after_batch``; at its end the batches are put back in item order, and every later epoch indexes those tensors like
the tensor fast path. Random batch augmentation is unaffected: it runs in ``after_batch``, after the cache.

``DataLoader(cache="auto")`` (the default) caches when it can prove the items repeat and they fit in
:data:`AUTO_CACHE_BYTES`: the loader's dataset is a :class:`~lamina.data.core.Datasets` or
:class:`~lamina.data.core.TfmdLists`, no transform declares itself random on the loader's split
(:meth:`~lamina.core.transform.Transform.is_random`: training-only transforms and transforms built from plain
functions count as random), and there is no ``before_batch``. ``cache=True`` caches whatever the dataset is (a
transform that says it is random is still refused, with the reason); ``cache=False`` never caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lamina.core.tensors import retain_type
from lamina.core.transform import Pipeline, Transform
from lamina.core.utils import map_tensors

__all__ = ["AUTO_CACHE_BYTES", "ItemCache", "random_step"]

AUTO_CACHE_BYTES = 512 * 2**20
"""The most memory ``cache="auto"`` spends on one loader's items (estimated from the first batch)."""


def _pipelines(dataset: Any) -> list[Pipeline] | None:
    """The item pipelines of a Datasets or TfmdLists (``None`` for other datasets: nothing can be proved)."""
    tls = getattr(dataset, "tls", None)
    if tls is not None and all(isinstance(getattr(tl, "tfms", None), Pipeline) for tl in tls):
        return [tl.tfms for tl in tls]
    tfms = getattr(dataset, "tfms", None)
    return [tfms] if isinstance(tfms, Pipeline) else None


def random_step(dataset: Any, pipes: Sequence[Pipeline], split_idx: int | None) -> Transform | bool | None:
    """The first transform that may give a different result for the same item on ``split_idx``.

    Returns the transform, ``None`` when every step is deterministic, or ``True`` when the dataset is not a
    lamina collection and its steps cannot be inspected.

    Args:
        dataset: the loader's dataset.
        pipes: the loader's own per-item pipelines (``after_item``).
        split_idx: the split the loader serves.

    Examples:
        >>> from lamina.data.core import Datasets
        >>> from lamina.data.transforms import Categorize
        >>> ds = Datasets(["a", "b"], [[Categorize()]])
        >>> random_step(ds, [], None) is None, random_step(ds, [Pipeline([Transform(split_idx=0)])], 0).split_idx
        (True, 0)
    """
    own = _pipelines(dataset)
    if own is None:
        return True
    for pipe in [*own, *pipes]:
        for t in pipe.fs:
            if t.is_random(split_idx):
                return t
    return None


def _nbytes(b: Any) -> int:
    if isinstance(b, Tensor):
        return b.element_size() * b.nelement()
    if isinstance(b, (tuple, list)):
        return sum(_nbytes(o) for o in b)
    if isinstance(b, dict):
        return sum(_nbytes(o) for o in b.values())
    return 0


def _clone(t: Tensor) -> Tensor:
    return retain_type(t.as_subclass(Tensor).clone(), t)


def _cat(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, Tensor):
        return retain_type(torch.cat([p.as_subclass(Tensor) for p in parts]), first)
    if isinstance(first, tuple):
        return tuple(_cat([p[j] for p in parts]) for j in range(len(first)))
    if isinstance(first, dict):
        return {k: _cat([p[k] for p in parts]) for k in first}
    if isinstance(first, list):
        return [o for p in parts for o in p]
    raise TypeError(f"cannot cache batches holding {type(first).__name__}: use cache=False")


def _take(b: Any, idx: Tensor | slice) -> Any:
    """Rows ``idx`` of every field, as new tensors (never views: ``after_batch`` may work in place)."""
    if isinstance(b, Tensor):
        rows = b.as_subclass(Tensor)[idx]
        return retain_type(rows.clone() if isinstance(idx, slice) else rows, b)
    if isinstance(b, tuple):
        return tuple(_take(o, idx) for o in b)
    if isinstance(b, dict):
        return {k: _take(v, idx) for k, v in b.items()}
    return b[idx] if isinstance(idx, slice) else [b[i] for i in idx.tolist()]


class ItemCache:
    """The collated items of one loader, filled from the batches of one full epoch, then indexed by batch.

    Args:
        n: how many items the loader's dataset has.
        budget: stop filling (and cache nothing) once the items would take more bytes than this.

    Examples:
        >>> cache = ItemCache(4)
        >>> cache.add([2, 0], (torch.tensor([20, 0]),)); cache.add([1, 3], (torch.tensor([10, 30]),))
        True
        True
        >>> cache.finish(lambda missing: None)
        >>> cache.get_batch(slice(0, 3))[0].tolist(), cache.get_batch(torch.tensor([3, 1]))[0].tolist()
        ([0, 10, 20], [30, 10])
    """

    def __init__(self, n: int, budget: int | None = None) -> None:
        self.n, self.budget = n, budget
        self.parts: list[tuple[Tensor, Any]] = []
        self.items: Any = None

    def add(self, idx: Sequence[int], batch: Any) -> bool:
        """Keep a copy of ``batch`` (the items at ``idx``); False when the items would exceed the budget."""
        if self.budget is not None and not self.parts and _nbytes(batch) / max(len(idx), 1) * self.n > self.budget:
            return False
        self.parts.append((torch.as_tensor(idx, dtype=torch.long), map_tensors(_clone, batch)))
        return True

    def finish(self, fetch: Any) -> None:
        """Fetch the items no batch held (``fetch(indices) -> batch``, e.g. those ``drop_last`` left out) and put
        everything in item order."""
        order = torch.cat([i for i, _ in self.parts])
        seen = torch.zeros(self.n, dtype=torch.bool)
        seen[order] = True
        missing = (~seen).nonzero().flatten()
        batches = [b for _, b in self.parts]
        if len(missing):
            batches.append(fetch(missing.tolist()))
            order = torch.cat([order, missing])
        self.items = _take(_cat(batches), torch.argsort(order))
        self.parts = []

    def get_batch(self, idx: Any) -> Any:
        """The cached items at ``idx`` (a slice or a tensor of indices), collated."""
        return _take(self.items, idx)
