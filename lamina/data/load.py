"""Loading batches: :class:`DataLoader` on ``torch.utils.data`` and :class:`DataLoaders` (train + valid).

How a batch is made: the main process cuts each epoch into batch descriptions ``(indices, seed)``. A worker (or
the main process when ``num_workers=0``) turns one description into a batch: it seeds ``random``, numpy and torch
with the batch's seed, fetches each item, applies ``after_item``, then ``before_batch`` to the list, then collates.
Because the randomness belongs to the batch and not to the worker, the same ``seed`` gives the same batches with 0
or N workers. The main process moves the batch to ``device`` and applies ``after_batch`` there (GPU augmentation).

Data that is already tensors (a tensor, a tuple of tensors, a :class:`TensorSource` or any object with
``get_batch(indices)``) with no item transforms is batched by slicing, never item by item. Items whose transforms
are deterministic (decoding, labelling, a fixed resize) are kept after their first full epoch and later epochs
slice them too: see :mod:`lamina.data.cache`.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.utils.data
from torch import Tensor

from lamina.core.show import get_grid
from lamina.core.tensors import TensorBase, _plain_ops, retain_type, retype
from lamina.core.transform import Pipeline, Transform, TransformError, as_type, show_any
from lamina.core.utils import describe_item, to_device
from lamina.data.cache import AUTO_CACHE_BYTES, ItemCache, random_step

__all__ = ["CollateError", "DataLoader", "DataLoaders", "TensorSource", "collate", "default_device", "shard_bounds"]


class CollateError(ValueError):
    """Items of a batch could not be put together (different shapes or structures).

    Examples:
        >>> collate([torch.zeros(2), torch.zeros(3)])
        Traceback (most recent call last):
        ...
        lamina.data.load.CollateError: the item of batch item 1 has shape (3,) but batch item 0 has (2,)...
    """

    def __init__(self, message: str, positions: tuple[int, int] = (0, 0)) -> None:
        super().__init__(message)
        self.positions = positions


_shape = operator.attrgetter("shape")


def _collate_field(values: list[Any], pad_value: float | None, field: str) -> Any:
    first = values[0]
    if isinstance(first, Tensor):
        with _plain_ops():  # `.shape` of a typed tensor would go through dispatch
            try:
                return retain_type(torch.stack(values), first)  # torch checks the shapes
            except RuntimeError:
                shapes = list(map(_shape, values))
                if shapes.count(shapes[0]) == len(shapes):
                    raise  # not a matter of shapes (dtypes, devices): torch's message says what
        k = next(k for k, s in enumerate(shapes) if s != shapes[0])
        if pad_value is None or any(len(s) != len(shapes[0]) for s in shapes):
            raise CollateError(
                f"{field} of batch item {k} has shape {tuple(shapes[k])} but batch item 0 has {tuple(shapes[0])}; "
                "items must share a shape to be stacked. For images add a `Resize` item transform; for "
                "variable-length data pass `collate_fn=functools.partial(collate, pad_value=...)`",
                (0, k),
            )
        size = [max(s[d] for s in shapes) for d in range(len(shapes[0]))]
        out = first.new_full((len(values), *size), pad_value)
        for i, v in enumerate(values):
            region: tuple[int | slice, ...] = (i, *[slice(0, n) for n in v.shape])
            out[region] = v
        return out
    if isinstance(first, (bool, int, float, np.number)):
        return torch.tensor(values)
    if isinstance(first, np.ndarray):
        return _collate_field([torch.from_numpy(v) for v in values], pad_value, field)
    if isinstance(first, dict):
        return {k: _collate_field([v[k] for v in values], pad_value, f"{field}[{k!r}]") for k in first}
    return list(values)


def collate(items: Sequence[Any], pad_value: float | None = None) -> Any:
    """Stack a list of items (tuples of tensors, numbers, arrays...) into a batch, keeping semantic types.

    Args:
        items: one entry per item; tuples are collated element by element.
        pad_value: pad tensors of different sizes to the largest with this value (no padding when ``None``).

    Examples:
        >>> from lamina.core.tensors import TensorImage
        >>> xb, yb = collate([(TensorImage(torch.zeros(1, 2, 2)), 0), (TensorImage(torch.ones(1, 2, 2)), 1)])
        >>> type(xb).__name__, tuple(xb.shape), yb.tolist()
        ('TensorImage', (2, 1, 2, 2), [0, 1])
        >>> collate([torch.tensor([1, 2]), torch.tensor([3])], pad_value=0).tolist()
        [[1, 2], [3, 0]]
    """
    if not items:
        raise CollateError("cannot collate an empty list of items")
    first = items[0]
    if not isinstance(first, tuple):
        return _collate_field(list(items), pad_value, "the item")
    if set(map(type, items)) != {type(first)} or set(map(len, items)) != {len(first)}:
        k = next((k for k, it in enumerate(items) if not isinstance(it, tuple) or len(it) != len(first)), None)
        if k is not None:
            raise CollateError(
                f"batch item {k} is {describe_item(items[k])} but batch item 0 has {len(first)} elements", (0, k)
            )
    return tuple([_collate_field(list(col), pad_value, f"element {j}") for j, col in enumerate(zip(*items))])


def shard_bounds(n_items: int, rank: int, world_size: int) -> tuple[int, int]:
    """Where ``rank``'s piece of a global batch of ``n_items`` starts and stops: ``world_size`` contiguous pieces in
    rank order, as even as possible (the first ``n_items % world_size`` ranks take one item more).

    A full global batch of ``world_size * bs`` items gives every rank ``bs``; only a last, incomplete one is uneven.

    Args:
        n_items: items in the global batch.
        rank: this process's rank.
        world_size: number of processes.

    Examples:
        >>> [shard_bounds(8, r, 2) for r in range(2)], [shard_bounds(5, r, 2) for r in range(2)]
        ([(0, 4), (4, 8)], [(0, 3), (3, 5)])
        >>> shard_bounds(1, 1, 2)  # an empty piece
        (1, 1)
    """
    base, extra = divmod(n_items, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + int(rank < extra)


def default_device(device: torch.device | str | None = None) -> torch.device:
    """``device`` when given; else CUDA when available, then Apple's MPS, else the CPU.

    Examples:
        >>> default_device("cpu")
        device(type='cpu')
        >>> default_device().type in ("cuda", "mps", "cpu")
        True
    """
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class TensorSource:
    """Tensors of equal length, indexed and batched by slicing (the fast path).

    Args:
        *tensors: tensors sharing their first dimension.

    Examples:
        >>> src = TensorSource(torch.arange(10.0), torch.arange(10))
        >>> [t.tolist() for t in src.get_batch(slice(2, 4))]
        [[2.0, 3.0], [2, 3]]
    """

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ValueError("TensorSource needs at least one tensor")
        n = len(tensors[0])
        bad = [tuple(t.shape) for t in tensors if len(t) != n]
        if bad:
            raise ValueError(f"all tensors must have the same length {n} in their first dimension, got {bad[0]}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return tuple(t[i] for t in self.tensors)

    def get_batch(self, idx: Any) -> tuple[Tensor, ...]:
        """The rows ``idx`` (a slice or a tensor of indices) of every tensor, as new tensors (not views, so batch
        transforms that work in place cannot change the source)."""
        return tuple(t[idx].clone() if isinstance(idx, slice) else t[idx] for t in self.tensors)


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed ``random``, numpy and torch for one batch.

    In the main process the global generators go on afterwards as if the batch had not been drawn from them: torch's
    CPU generator gets its exact state back (it also drives model initialization and dropout); ``random`` and numpy,
    whose states cost 15 and 100 us to save and restore, are reseeded from a number drawn from their own state before
    the batch, so what a program draws from them stays reproducible from its own seed.
    """
    if seed is None:
        yield
        return
    # item transforms run on the CPU: seeding torch's CPU generator directly is ~200x cheaper than torch.manual_seed,
    # which visits every device backend
    gen = torch.default_generator
    in_worker = torch.utils.data.get_worker_info() is not None
    saved = None
    if not in_worker:
        saved = (random.getrandbits(64), int(np.random.randint(2**32, dtype=np.uint64)), gen.get_state())
    random.seed(seed)
    np.random.seed(seed % 2**32)
    gen.manual_seed(seed)
    try:
        yield
    finally:
        if saved is not None:
            random.seed(saved[0])
            np.random.seed(saved[1])
            gen.set_state(saved[2])


def _collate_columns(columns: list[list[Any]]) -> tuple[Any, ...]:
    """A batch from the columns of its items (see ``Datasets.fetch_columns``), each collated as :func:`collate`
    collates one element of the items."""
    return tuple([_collate_field(col, None, f"element {j}") for j, col in enumerate(columns)])


def _typed_batch(b: tuple[Any, ...], types: list[type | None]) -> tuple[Any, ...]:
    """A batch collated from untyped columns with each element given its type (see ``Datasets.fetch_columns``)."""
    return tuple([as_type(f, c) if c is not None else f for f, c in zip(b, types)])


def _pack(b: Any) -> tuple[Any, Any]:
    """A batch as plain tensors plus the spec of their types and metadata (plain tensors cross processes through
    shared memory; typed ones would be pickled with their class every time)."""
    if isinstance(b, TensorBase):
        return b.as_subclass(Tensor), (type(b), b.__dict__ or None)
    if isinstance(b, (tuple, list)):
        parts = [_pack(o) for o in b]
        return type(b)(p for p, _ in parts), (type(b), [spec for _, spec in parts])
    return b, None


def _unpack(b: Any, spec: Any) -> Any:
    if spec is None:
        return b
    kind, inner = spec
    if kind in (tuple, list):
        return kind(_unpack(o, s) for o, s in zip(b, inner))
    res = retype(b, kind)
    if inner:
        res.__dict__.update(inner)
    return res


class _BatchMaker(torch.utils.data.Dataset):
    """The ``torch.utils.data`` face of a DataLoader: index = a batch description, item = a packed batch."""

    def __init__(self, dl: DataLoader) -> None:
        self.dl = dl

    def __getitem__(self, desc: Any) -> Any:
        return _pack(self.dl._fetch(desc))


class _EpochSampler:
    """The batch descriptions of the current epoch (kept across epochs with persistent workers)."""

    def __init__(self) -> None:
        self.descs: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.descs)

    def __len__(self) -> int:
        return len(self.descs)


def _identity(b: Any) -> Any:
    return b


def _as_pipeline(tfms: Any, split_idx: int | None) -> Pipeline:
    return Pipeline(tfms.fs if isinstance(tfms, Pipeline) else tfms, split_idx=split_idx)


class DataLoader:
    """Batches from a dataset, built on ``torch.utils.data`` (workers, pinned memory, prefetching).

    Args:
        dataset: anything indexable with a length (e.g. :class:`~lamina.data.core.Datasets`), a tensor, a tuple of
            tensors, or an object with ``get_batch(indices)``.
        bs: batch size.
        shuffle: shuffle each epoch.
        drop_last: drop the last, incomplete batch.
        num_workers: worker processes (0: load in the main process).
        pin_memory: pin batches in page-locked memory for faster copies to the GPU.
        device: where batches go before ``after_batch`` runs; ``None`` keeps them on the CPU.
        seed: makes shuffling and random item transforms reproducible (epoch ``e`` uses ``seed + e``).
        after_item: transforms applied to each item, in the workers.
        before_batch: transforms applied to the list of items of a batch, in the workers.
        after_batch: transforms applied to the collated batch on ``device``, in the main process.
        collate_fn: turns a list of items into a batch (default :func:`collate`).
        persistent_workers: keep worker processes alive between epochs.
        do_setup: learn the state of ``after_item``/``after_batch`` transforms from this loader's data.
        cache: keep the items (before ``after_batch``) after the first full epoch and slice them in later epochs:
            ``"auto"`` when the item transforms are provably deterministic and the items take at most
            :data:`~lamina.data.cache.AUTO_CACHE_BYTES`; ``True`` always (an error if a transform is random);
            ``False`` never. See :mod:`lamina.data.cache`.

    Examples:
        >>> dl = DataLoader((torch.arange(10.0), torch.arange(10)), bs=4, shuffle=True, seed=0)
        >>> [len(xb) for xb, yb in dl]
        [4, 4, 2]
    """

    def __init__(
        self,
        dataset: Any,
        bs: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        device: torch.device | str | None = None,
        seed: int | None = None,
        after_item: Any = None,
        before_batch: Any = None,
        after_batch: Any = None,
        collate_fn: Callable[[list[Any]], Any] = collate,
        persistent_workers: bool = False,
        do_setup: bool = True,
        cache: bool | str = "auto",
    ) -> None:
        if isinstance(dataset, Tensor):
            dataset = TensorSource(dataset)
        elif isinstance(dataset, tuple) and dataset and all(isinstance(t, Tensor) for t in dataset):
            dataset = TensorSource(*dataset)
        if bs < 1:
            raise ValueError(f"bs must be >= 1, got {bs}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if len(dataset) == 0:
            raise ValueError(
                "DataLoader got an empty dataset (0 items): check the items found and the split "
                "(e.g. a valid_pct or a splitter that leaves one split empty)"
            )
        self._args = dict(
            bs=bs, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers, pin_memory=pin_memory,
            seed=seed, collate_fn=collate_fn, persistent_workers=persistent_workers, cache=cache,
        )  # fmt: skip
        if cache not in (True, False, "auto"):
            raise ValueError(f'cache must be True, False or "auto", got {cache!r}')
        self.dataset, self.bs, self.shuffle, self.drop_last = dataset, bs, shuffle, drop_last
        self.num_workers, self.pin_memory, self.seed, self.collate_fn = num_workers, pin_memory, seed, collate_fn
        self.persistent_workers, self.cache = persistent_workers, cache
        self._cached: ItemCache | None = None
        self.device = torch.device(device) if device is not None else None
        split_idx = getattr(dataset, "split_idx", None)
        self.after_item = _as_pipeline(after_item, split_idx)
        self.before_batch = _as_pipeline(before_batch, split_idx)
        self.after_batch = _as_pipeline(after_batch, split_idx)
        self.n_inp: int = getattr(dataset, "n_inp", 1)
        self.epoch = 0
        self._position: dict[str, Any] = {"epoch": 0, "batch": 0, "order_seed": None}
        self._resume_at: dict[str, Any] | None = None
        self.rank, self.world_size = 0, 1  # see `shard`
        self._sampler = _EpochSampler()
        self._loader: torch.utils.data.DataLoader | None = None
        if do_setup:
            self.after_item.setup(dataset)
            self.after_batch.setup(_SetupBatches(self))

    @property
    def fast(self) -> bool:
        """True when batches are made by slicing tensors (or cached items) rather than item by item."""
        if self._cached is not None:
            return True
        return hasattr(self.dataset, "get_batch") and not len(self.after_item) and not len(self.before_batch)

    @property
    def cached(self) -> bool:
        """True once the items are cached and epochs slice them (see ``cache``)."""
        return self._cached is not None

    def _new_cache(self) -> ItemCache | None:
        """An empty cache to fill during this epoch, or ``None`` when this loader does not cache."""
        if self.cache is False or self.fast:
            return None
        step = random_step(self.dataset, [self.after_item], self.after_item.split_idx)
        if self.cache == "auto":
            if step is not None or len(self.before_batch):
                return None
            return ItemCache(len(self.dataset), AUTO_CACHE_BYTES)
        if isinstance(step, Transform) or len(self.before_batch):
            why = f"`{step.name}` is random on this split" if isinstance(step, Transform) else "it has a before_batch"
            raise ValueError(
                f"cache=True: this loader's items change from epoch to epoch ({why}); use cache=False, or move "
                "random augmentation to batch_tfms (after_batch runs after the cache)"
            )
        return ItemCache(len(self.dataset))

    def __len__(self) -> int:
        n, global_bs = len(self.dataset), self.bs * self.world_size
        return n // global_bs if self.drop_last else math.ceil(n / global_bs)

    def shard(self, rank: int, world_size: int) -> DataLoader:
        """Make this loader (in place) yield only ``rank``'s piece of each global batch; returns it.

        The epoch's order is the one a single process makes; global batch ``k`` is its items
        ``[k * world_size * bs, (k + 1) * world_size * bs)`` and is cut by :func:`shard_bounds`, so the ranks together
        see every item once, in that order. A rank whose piece of a last, incomplete batch is empty gets that batch's
        last item instead (every rank makes the same number of batches; ``lamina.learner.distributed`` gives the
        repeat no weight in training and drops it when gathering). ``shard(0, 1)`` undoes it.

        Args:
            rank: this process's rank, ``0 <= rank < world_size``.
            world_size: number of processes.

        Examples:
            >>> dl = DataLoader(torch.arange(10), bs=2).shard(1, 2)
            >>> [xb.tolist() for (xb,) in dl]
            [[2, 3], [6, 7], [9]]
        """
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.rank, self.world_size = rank, world_size
        return self

    def _order_seed(self) -> int:
        """The seed of the current epoch's order and batch seeds: ``seed + epoch``, or drawn from torch's RNG."""
        if self.seed is not None:
            return self.seed + self.epoch
        return int(torch.randint(0, 2**62, (1,)).item())

    def _descriptions(self, advance: bool, order_seed: int | None = None) -> list[tuple[Any, int | None]]:
        """This epoch's batches as ``(indices, seed)``; shuffling and seeds come from ``order_seed`` (by default
        from ``seed`` and the epoch, or torch's RNG)."""
        g = torch.Generator()
        g.manual_seed(self._order_seed() if order_seed is None else order_seed)
        if advance:
            self.epoch += 1
        n, bs, fast = len(self.dataset), self.bs, self.fast
        order = torch.randperm(n, generator=g) if self.shuffle else None
        base = None if fast else int(torch.randint(0, 2**31, (1,), generator=g).item())
        descs: list[tuple[Any, int | None]] = []
        global_bs, ranks = bs * self.world_size, self.world_size
        for k in range(len(self)):
            lo, hi = k * global_bs, min((k + 1) * global_bs, n)
            start, stop = shard_bounds(hi - lo, self.rank, ranks)
            lo, hi = (lo + start, lo + stop) if stop > start else (hi - 1, hi)  # an empty piece: the last item again
            idx: Any = slice(lo, hi) if order is None else order[lo:hi]
            if not fast:
                idx = list(range(lo, hi)) if order is None else idx.tolist()
            descs.append((idx, None if base is None else base + k * ranks + self.rank))
        return descs

    def _after_item(self, idx: Sequence[int], items: list[Any]) -> list[Any]:
        """``after_item`` on each item, in one plain-op context (its transforms run there anyway)."""
        out: list[Any] = []
        with _plain_ops():
            try:
                for x in items:
                    out.append(self.after_item(x))
            except TransformError as e:
                x, i = items[len(out)], idx[len(out)]
                raise TransformError(f"after_item, item {i} ({describe_item(x)}): {e}") from e.__cause__
        return out

    def _fetch(self, desc: tuple[Any, int | None]) -> Any:
        idx, seed = desc
        if self._cached is not None:
            return self._cached.get_batch(idx)
        if self.fast:
            return self.dataset.get_batch(idx)
        with _seeded(seed):
            by_columns = getattr(self.dataset, "fetch_columns", None)
            if by_columns is not None and self.collate_fn is collate and not self.after_item.fs + self.before_batch.fs:
                # nothing needs typed items: collate each column untyped and give the batch its types once
                columns, types = by_columns(idx)
                return _typed_batch(self._collate(lambda: _collate_columns(columns), idx), types)
            if hasattr(self.dataset, "__getitems__"):  # the batch-fetch protocol of torch.utils.data
                items = self.dataset.__getitems__(idx)
            else:
                items = list(map(self.dataset.__getitem__, idx))
            if len(self.after_item):
                items = self._after_item(idx, items)
            if len(self.before_batch):
                items = self.before_batch(items)
            return self._collate(lambda: self.collate_fn(items), idx)

    def _collate(self, make_batch: Callable[[], Any], idx: Sequence[int]) -> Any:
        """``make_batch()``, a collate error naming the dataset items it is about."""
        try:
            return make_batch()
        except CollateError as e:
            a, b = e.positions
            raise CollateError(f"cannot collate dataset items {idx[a]} and {idx[b]}: {e}", e.positions) from None

    def _finish(self, b: Any) -> Any:
        b = to_device(b, self.device, non_blocking=self.pin_memory)
        return self.after_batch(b) if len(self.after_batch) else b

    def _torch_loader(self) -> torch.utils.data.DataLoader:
        if self._loader is None or not self.persistent_workers:
            # torch draws each epoch's worker base seed from `generator`, or from the global generator when there is
            # none, which would move every later draw (dropout, init) with the number of workers. Batches carry
            # their own seeds (see `_seeded`), so a private generator costs nothing and keeps 0 and N workers alike.
            self._loader = torch.utils.data.DataLoader(
                _BatchMaker(self), batch_size=None, sampler=self._sampler, num_workers=self.num_workers,
                pin_memory=self.pin_memory, collate_fn=_identity, generator=torch.Generator(),
                persistent_workers=self.persistent_workers and self.num_workers > 0,
            )  # fmt: skip
        return self._loader

    def __iter__(self) -> Iterator[Any]:
        descs = self._start_epoch()
        filling = self._new_cache()
        position, start = self._position, self._position["batch"]
        for done, (desc, b) in enumerate(zip(descs[start:], self._raw_batches(descs[start:])), start + 1):
            if filling is not None and not filling.add(desc[0], b):
                filling = None  # over the memory budget
            position["batch"] = done
            yield self._finish(b)
        if filling is not None:  # a full epoch went by: later epochs slice the cache
            filling.finish(lambda missing: self._fetch((missing, None)))
            self._cached = filling
        self._position = {"epoch": self.epoch, "batch": 0, "order_seed": None}

    def _start_epoch(self) -> list[tuple[Any, int | None]]:
        """Begin an epoch: its batch descriptions, and ``_position`` at its first batch (or where a loaded state
        said it stopped, in the same order)."""
        at, self._resume_at = self._resume_at, None
        order_seed = at["order_seed"] if at is not None and at["order_seed"] is not None else self._order_seed()
        self._position = {"epoch": self.epoch, "batch": at["batch"] if at is not None else 0, "order_seed": order_seed}
        return self._descriptions(advance=True, order_seed=order_seed)

    @property
    def start_batch(self) -> int:
        """The batch the next iteration starts at: 0, unless ``load_state_dict`` was given an epoch in progress."""
        return self._resume_at["batch"] if self._resume_at is not None else 0

    def state_dict(self) -> dict[str, Any]:
        """Where this loader is: ``epoch`` (in progress, or next), ``batch`` (its batches already yielded) and
        ``order_seed`` (the seed of that epoch's order; ``None`` before it starts). Plain values: JSON-ready.

        Examples:
            >>> dl = DataLoader(torch.arange(10.0), bs=4, shuffle=True, seed=0)
            >>> it = iter(dl); _ = next(it)
            >>> dl.state_dict()
            {'epoch': 0, 'batch': 1, 'order_seed': 0}
        """
        return dict(self._position)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (see :meth:`state_dict`): the next iteration is epoch ``state["epoch"]``, in the
        order it had, starting at batch ``state["batch"]``; the batches before are skipped without being made.

        Examples:
            >>> dl = DataLoader(torch.arange(10.0), bs=4, shuffle=True)
            >>> it = iter(dl); first = next(it); state = dl.state_dict()
            >>> rest = [xb.tolist() for (xb,) in it]
            >>> dl.load_state_dict(state)
            >>> dl.start_batch, [xb.tolist() for (xb,) in dl] == rest
            (1, True)
        """
        epoch, batch, order_seed = state.get("epoch"), state.get("batch"), state.get("order_seed")
        if not (isinstance(epoch, int) and epoch >= 0 and isinstance(batch, int) and 0 <= batch <= len(self)):
            raise ValueError(
                f"a DataLoader state needs epoch >= 0 and batch in 0..{len(self)} (this loader's batches), got "
                f"{state!r}: load a state saved by a loader over the same data with the same bs and drop_last"
            )
        self.epoch = epoch
        self._position = {"epoch": epoch, "batch": batch, "order_seed": order_seed}
        self._resume_at = dict(self._position) if batch or order_seed is not None else None

    def _raw_batches(self, descs: list[tuple[Any, int | None]]) -> Iterator[Any]:
        """The batches of ``descs`` in order, before ``after_batch`` (made here or in the workers)."""
        if (self.num_workers == 0 and not self.pin_memory) or self._cached is not None:
            for desc in descs:
                yield self._fetch(desc)
            return
        self._sampler.descs = descs
        it = iter(self._torch_loader())
        while True:
            try:
                b = next(it)
            except StopIteration:
                return
            except Exception as e:
                # torch puts the worker's traceback in the message; dropping the frames lets the workers shut down
                # now rather than when the caller drops the exception (which costs seconds)
                del it
                raise e.with_traceback(None) from None
            yield _unpack(*b)

    def one_batch(self) -> Any:
        """The first batch of an epoch, made in this process without starting workers."""
        return self._finish(self._fetch(self._descriptions(advance=False)[0]))

    def to(self, device: torch.device | str | None) -> DataLoader:
        """Send future batches to ``device``."""
        self.device = torch.device(device) if device is not None else None
        return self

    def new(self, **changes: Any) -> DataLoader:
        """A DataLoader with the same settings and (shared, already set up) transforms, except ``changes``."""
        args: dict[str, Any] = dict(
            self._args, dataset=self.dataset, device=self.device, after_item=self.after_item.fs,
            before_batch=self.before_batch.fs, after_batch=self.after_batch.fs, do_setup=False,
        )  # fmt: skip
        args.update(changes)
        dl = type(self)(**args)
        if not {"dataset", "after_item", "before_batch", "cache"} & changes.keys() and args["cache"] is not False:
            dl._cached = self._cached  # the same items: share the cache
        return dl

    def decode(self, b: Any) -> Any:
        """Undo ``after_batch`` on a batch."""
        return self.after_batch.decode(b) if len(self.after_batch) else b

    def decode_batch(self, b: Any, max_n: int = 9) -> list[Any]:
        """Split a batch into at most ``max_n`` items, each decoded through ``after_batch`` and ``after_item``."""
        items = _unbatch(to_device(self.decode(b), "cpu"), max_n)
        return [self.after_item.decode(it) for it in items] if len(self.after_item) else items

    def show_batch(
        self,
        b: Any = None,
        max_n: int = 9,
        nrows: int | None = None,
        ncols: int | None = None,
        figsize: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Draw up to ``max_n`` decoded items of ``b`` (or of one batch) on a grid and return the figure.

        Args:
            b: a batch from this loader; one is made when ``None``.
            max_n: most items drawn.
            nrows: grid rows.
            ncols: grid columns.
            figsize: figure size.
            **kwargs: passed to each item's ``show``.
        """
        items = self.decode_batch(self.one_batch() if b is None else b, max_n)
        fig, axs = get_grid(len(items), nrows, ncols, figsize)
        show = getattr(self.dataset, "show", None)
        for it, ax in zip(items, axs):
            if show is not None:
                show(it, ctx=ax, **kwargs)
            else:
                show_any(it, ctx=ax, **kwargs)
        return fig

    def __repr__(self) -> str:
        return f"DataLoader({len(self.dataset)} items, bs={self.bs}, {len(self)} batches, device={self.device})"


class _SetupBatches(Sequence[Any]):
    """The first few batches of a loader (before ``after_batch``), for ``setups`` of batch transforms."""

    def __init__(self, dl: DataLoader, n: int = 4) -> None:
        self.dl, self.n = dl, min(n, len(dl))
        self._cache: list[Any] | None = None

    def _batches(self) -> list[Any]:
        if self._cache is None:
            descs = self.dl._descriptions(advance=False)[: self.n]
            self._cache = [to_device(self.dl._fetch(d), self.dl.device) for d in descs]
        return self._cache

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        return self._batches()[i]


def _unbatch(b: Any, max_n: int) -> list[Any]:
    def size(o: Any) -> int:
        return len(o) if isinstance(o, (Tensor, list)) else 0

    if isinstance(b, tuple):
        n = min([max_n, *(size(f) for f in b)])
        return [tuple(f[i] if size(f) else f for f in b) for i in range(n)]
    return [b[i] for i in range(min(max_n, size(b)))]


class DataLoaders:
    """A training and a validation :class:`DataLoader` (and any more), with shared helpers.

    Args:
        *loaders: training first, then validation.
        path: the folder models and exports go to.
        device: send all loaders' batches there. When ``None`` and no loader has a device yet, the accelerator is
            used when there is one (:func:`default_device`: CUDA, then MPS); pass ``"cpu"`` to stay on the CPU.

    Examples:
        >>> x = torch.randn(100, 3); y = (x.sum(1) > 0).long()
        >>> dls = DataLoaders(DataLoader((x[:80], y[:80]), bs=16, shuffle=True), DataLoader((x[80:], y[80:]), bs=32))
        >>> len(dls.train), len(dls.valid)
        (5, 1)
    """

    def __init__(self, *loaders: DataLoader, path: str = ".", device: torch.device | str | None = None) -> None:
        if not loaders:
            raise ValueError("DataLoaders needs at least one DataLoader (training first, then validation)")
        self.loaders, self.path = list(loaders), path
        if device is not None:
            self.to(device)
        elif all(dl.device is None for dl in self.loaders):
            chosen = default_device()
            if chosen.type != "cpu":  # on the CPU, batches stay where they are made: nothing to move
                self.to(chosen)

    @classmethod
    def from_dsets(
        cls,
        *dsets: Any,
        bs: int = 64,
        val_bs: int | None = None,
        shuffle: bool = True,
        path: str = ".",
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> DataLoaders:
        """Loaders over datasets (training first): the training one shuffles, the others do not.

        An empty validation set (a split that trains on everything, e.g. for the final model) gets no loader: the
        result has only the training loader and ``Learner.fit`` skips validation.

        Args:
            *dsets: training dataset first.
            bs: training batch size.
            val_bs: batch size of the others (``bs`` when ``None``).
            shuffle: shuffle the training loader.
            path: see :class:`DataLoaders`.
            device: see :class:`DataLoaders`.
            **kwargs: passed to every :class:`DataLoader`; ``dl_type`` (a :class:`DataLoader` subclass, e.g. the
                text loaders a block asks for in its ``dl_kwargs``) is the class of the loaders.
        """
        drop_last = kwargs.pop("drop_last", shuffle and len(dsets[0]) > bs)
        dl_type = kwargs.pop("dl_type", DataLoader)
        if not (isinstance(dl_type, type) and issubclass(dl_type, DataLoader)):
            raise TypeError(f"dl_type must be a DataLoader subclass, got {dl_type!r}")
        train = dl_type(dsets[0], bs=bs, shuffle=shuffle, drop_last=drop_last, device=device, **kwargs)
        rest = list(dsets[1:])
        while rest and len(rest[-1]) == 0:  # trailing empty sets (no validation): no loader
            rest.pop()
        empty = [i + 1 for i, d in enumerate(rest) if len(d) == 0]
        if empty:
            raise ValueError(
                f"dataset {empty[0]} is empty but later ones are not: only trailing sets (validation last) may be "
                "empty; check the splits"
            )
        loaders = [train.new(dataset=d, bs=val_bs or bs, shuffle=False, drop_last=False) for d in rest]
        return cls(train, *loaders, path=path)

    def __getitem__(self, i: int) -> DataLoader:
        return self.loaders[i]

    def __len__(self) -> int:
        return len(self.loaders)

    @property
    def train(self) -> DataLoader:
        """The training loader."""
        return self.loaders[0]

    @property
    def valid(self) -> DataLoader:
        """The validation loader."""
        if len(self.loaders) < 2:
            raise IndexError("these DataLoaders have no validation loader: give a split with validation items")
        return self.loaders[1]

    @property
    def device(self) -> torch.device | None:
        """Where batches go."""
        return self.train.device

    def to(self, device: torch.device | str | None) -> DataLoaders:
        """Send every loader's batches to ``device``."""
        for dl in self.loaders:
            dl.to(device)
        return self

    @property
    def n_inp(self) -> int:
        """How many leading elements of a batch are model inputs."""
        return self.train.n_inp

    @property
    def vocab(self) -> list[Any] | None:
        """The target vocab of the training dataset, if any."""
        return getattr(self.train.dataset, "vocab", None)

    def one_batch(self) -> Any:
        """One training batch."""
        return self.train.one_batch()

    def show_batch(self, **kwargs: Any) -> Any:
        """Draw a training batch; see :meth:`DataLoader.show_batch`."""
        return self.train.show_batch(**kwargs)

    def test_dl(self, items: Any, with_labels: bool = False, **kwargs: Any) -> DataLoader:
        """A loader over new items with the validation transforms (inputs only unless ``with_labels``).

        Args:
            items: raw items, like those the datasets were built from.
            with_labels: also build targets (the items must carry labels).
            **kwargs: changes to the validation loader's settings.
        """
        base = self.loaders[1] if len(self.loaders) > 1 else self.loaders[0]
        if not hasattr(base.dataset, "new"):
            raise TypeError(
                f"test_dl needs a dataset with `new(items)` (e.g. Datasets), got {type(base.dataset).__name__}"
            )
        ds = base.dataset.new(items, with_labels=with_labels)
        return base.new(dataset=ds, shuffle=False, drop_last=False, **{"cache": False, **kwargs})

    def __repr__(self) -> str:
        return f"DataLoaders({', '.join(repr(dl) for dl in self.loaders)})"
