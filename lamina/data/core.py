"""Lazily transformed collections: :class:`TfmdLists` (one pipeline) and :class:`Datasets` (several in parallel).

Items are transformed when indexed, never ahead of time. Splits are lists of indices; ``.train`` and ``.valid``
are views that share the parent's transforms (and so their learned state), with ``split_idx`` 0 and 1 so random
training-only transforms run on the training set only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from lamina.core.tensors import _plain_ops
from lamina.core.transform import Pipeline, Transform, TransformError, as_type
from lamina.core.utils import describe_item

__all__ = ["Datasets", "TfmdLists", "index_items"]


def index_items(items: Any, idxs: Sequence[int]) -> Any:
    """The items at ``idxs``, keeping the container kind (list, array, tensor, DataFrame rows by position).

    Args:
        items: a list, tuple, numpy array, tensor, pandas Series or DataFrame.
        idxs: positions to take.

    Examples:
        >>> index_items(["a", "b", "c"], [2, 0])
        ['c', 'a']
    """
    if isinstance(items, (pd.DataFrame, pd.Series)):
        return items.iloc[list(idxs)]
    if isinstance(items, (np.ndarray, Tensor)):
        return items[np.asarray(idxs, dtype=np.int64)]
    return [items[i] for i in idxs]


def _get_item(items: Any, i: int) -> Any:
    if isinstance(items, pd.DataFrame):
        return items.iloc[i]
    if isinstance(items, pd.Series):
        return items.iloc[i]
    return items[i]


def _check_splits(splits: Sequence[Sequence[int]] | None, n: int) -> list[list[int]]:
    if splits is None:
        return [list(range(n))]
    out = [list(map(int, s)) for s in splits]
    for k, s in enumerate(out):
        bad = [i for i in s if not 0 <= i < n]
        if bad:
            raise IndexError(f"split {k} holds index {bad[0]}, out of range for {n} items: check the splitter")
    return out


class TfmdLists(Sequence[Any]):
    """Items with a pipeline applied lazily on indexing, with optional train/valid splits.

    Args:
        items: the raw items (list, array, tensor, Series or DataFrame rows).
        tfms: a :class:`Pipeline` or a list of transforms.
        splits: index lists, the first for training, the second for validation.
        split_idx: the split this collection serves (set on ``.train``/``.valid`` views).
        do_setup: run the pipeline's ``setups`` on the training items now.
        role: a word for error messages ("input", "target").

    Examples:
        >>> from lamina.data.transforms import Categorize
        >>> tl = TfmdLists(["dog", "cat", "dog"], [Categorize()], splits=[[0, 1], [2]])
        >>> int(tl[0]), tl.decode(tl[0]), len(tl.valid)
        (1, 'dog', 1)
    """

    def __init__(
        self,
        items: Any,
        tfms: Pipeline | Sequence[Any] | None = None,
        splits: Sequence[Sequence[int]] | None = None,
        split_idx: int | None = None,
        do_setup: bool = True,
        role: str = "item",
    ) -> None:
        self.items = items
        self.splits = _check_splits(splits, len(items))
        fs = tfms.fs if isinstance(tfms, Pipeline) else tfms
        self.tfms = Pipeline(fs, split_idx=split_idx)
        self.split_idx, self.role = split_idx, role
        if do_setup:
            self.setup()

    def setup(self) -> None:
        """Learn the pipeline's state from the training items (the first split)."""
        train = self.items if len(self.splits) == 1 else index_items(self.items, self.splits[0])
        self.tfms.setup(_RawItems(train))

    def __len__(self) -> int:
        return len(self.items)

    def _raw(self, i: int) -> Any:
        n = len(self.items)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {n} items")
        return _get_item(self.items, i)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not isinstance(i, (int, np.integer)):
            return [self[int(j)] for j in i]
        raw = (
            self.items[i] if type(self.items) is list and -len(self.items) <= i < len(self.items) else self._raw(int(i))
        )
        try:
            return self.tfms(raw)
        except TransformError as e:
            raise self._failed(int(i), raw, e) from e.__cause__

    def _failed(self, i: int, raw: Any, e: TransformError) -> TransformError:
        return TransformError(f"{self.role} of item {i} ({describe_item(raw)}): {e}")

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))

    def subset(self, i: int) -> TfmdLists:
        """The view of split ``i`` (0 training, 1 validation) sharing this collection's transforms."""
        return self.new(self.split_items(i), split_idx=i)

    def split_items(self, i: int) -> Any:
        """The raw items of split ``i``.

        Examples:
            >>> TfmdLists(["a", "b", "c"], splits=[[2, 0], [1]]).split_items(0)
            ['c', 'a']
        """
        if not 0 <= i < len(self.splits):
            raise IndexError(f"split {i} does not exist: there are {len(self.splits)} splits")
        return index_items(self.items, self.splits[i])

    @property
    def train(self) -> TfmdLists:
        """The training view."""
        return self.subset(0)

    @property
    def valid(self) -> TfmdLists:
        """The validation view."""
        return self.subset(1)

    @property
    def n_subsets(self) -> int:
        """How many splits there are."""
        return len(self.splits)

    def decode(self, o: Any) -> Any:
        """Undo the pipeline on an encoded item."""
        return self.tfms.decode(o)

    def show(self, o: Any, ctx: Any = None, **kwargs: Any) -> Any:
        """Decode ``o`` until it can show itself, draw it and return the axis."""
        return self.tfms.show(o, ctx=ctx, **kwargs)

    def new(self, items: Any, split_idx: int | None = None) -> TfmdLists:
        """The same (already set up) transforms over new items."""
        return TfmdLists(items, self.tfms, split_idx=split_idx, do_setup=False, role=self.role)

    @property
    def vocab(self) -> list[Any] | None:
        """The ``vocab_`` of the last transform that learned one, if any."""
        return _find_vocab(self.tfms.fs)

    def __repr__(self) -> str:
        return f"TfmdLists({len(self)} items, {self.tfms!r})"


def _find_vocab(fs: Sequence[Transform]) -> list[Any] | None:
    for t in reversed(fs):
        v = getattr(t, "vocab_", None)
        if v is not None:
            return list(v)
    return None


class _RawItems(Sequence[Any]):
    """Positional access to any item container, for ``setups``."""

    def __init__(self, items: Any) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [_get_item(self.items, j) for j in range(*i.indices(len(self)))]
        return _get_item(self.items, i)


class Datasets(Sequence[tuple[Any, ...]]):
    """Several pipelines over the same items, giving tuples ``(x, ..., y, ...)``.

    Args:
        items: the raw items.
        tfms: one list of transforms (or a Pipeline) per element of the tuple.
        splits: index lists, training first.
        n_inp: how many leading elements are model inputs (default: all but the last, or 1).
        tls: already built :class:`TfmdLists` (instead of ``items`` and ``tfms``).
        split_idx: the split this collection serves.
        do_setup: learn each pipeline's state from the training items.

    Examples:
        >>> from lamina.data.transforms import Categorize
        >>> ds = Datasets(["dog", "cat"], [[lambda s: s.upper()], [Categorize()]])
        >>> ds[0][0], int(ds[0][1]), ds.n_inp
        ('DOG', 1, 1)
    """

    def __init__(
        self,
        items: Any = None,
        tfms: Sequence[Any] | None = None,
        splits: Sequence[Sequence[int]] | None = None,
        n_inp: int | None = None,
        tls: Sequence[TfmdLists] | None = None,
        split_idx: int | None = None,
        do_setup: bool = True,
    ) -> None:
        if tls is None:
            if items is None:
                raise ValueError("Datasets needs `items` (and `tfms`), or already built `tls`")
            pipes = list(tfms) if tfms is not None else [[]]
            roles = ["input" if k < (n_inp or max(len(pipes) - 1, 1)) else "target" for k in range(len(pipes))]
            tls = [TfmdLists(items, t, splits, split_idx, do_setup, r) for t, r in zip(pipes, roles)]
        self.tls = list(tls)
        self.n_inp = n_inp if n_inp is not None else max(len(self.tls) - 1, 1)
        self.split_idx = split_idx

    @property
    def items(self) -> Any:
        """The raw items."""
        return self.tls[0].items

    @property
    def splits(self) -> list[list[int]]:
        """The split index lists."""
        return self.tls[0].splits

    def __len__(self) -> int:
        return len(self.tls[0])

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, (int, np.integer)):
            return self._fetch([int(i)])[0]
        idxs = range(*i.indices(len(self))) if isinstance(i, slice) else i
        return [self[int(j)] for j in idxs]

    def __getitems__(self, idxs: Sequence[int]) -> list[tuple[Any, ...]]:
        """The items at ``idxs`` (what ``torch.utils.data`` and lamina's DataLoader fetch a batch with).

        Examples:
            >>> from lamina.data.transforms import Categorize
            >>> [(x, int(y)) for x, y in Datasets(["dog", "cat"], [[str.upper], [Categorize()]]).__getitems__([1, 0])]
            [('CAT', 0), ('DOG', 1)]
        """
        if type(self).__getitem__ is not Datasets.__getitem__:  # a subclass's own __getitem__ says what an item is
            return [self[i] for i in idxs]
        return self._fetch(idxs)

    def _fetch(self, idxs: Sequence[int]) -> list[tuple[Any, ...]]:
        columns, types = self._fetch_columns(idxs)
        typed = [[as_type(v, c) for v in col] if c is not None else col for col, c in zip(columns, types)]
        return list(zip(*typed))

    def fetch_columns(self, idxs: Sequence[int]) -> tuple[list[list[Any]], list[type | None]]:
        """The items at ``idxs`` as columns (one list per element of the tuple) with their values left untyped, and
        the semantic type of each column (``None`` where the values already carry their types): a loader collates
        each column and types the batch once.

        Examples:
            >>> from lamina.core.tensors import TensorImage
            >>> from lamina.core.transform import Transform
            >>> class ToImage(Transform):
            ...     def encodes(self, x: float) -> TensorImage: return torch.full((1, 2, 2), x)
            >>> (xs, ys), types = Datasets([0.0, 1.0], [[ToImage()], [lambda v: int(v)]]).fetch_columns([1, 0])
            >>> type(xs[0]).__name__, ys, [t.__name__ if t else t for t in types]
            ('Tensor', [1, 0], ['TensorImage', None])
        """
        if type(self).__getitem__ is not Datasets.__getitem__:  # a subclass's own __getitem__ says what an item is
            return [list(col) for col in zip(*[self[i] for i in idxs])], [None] * len(self.tls)
        return self._fetch_columns(idxs)

    def _fetch_columns(self, idxs: Sequence[int]) -> tuple[list[list[Any]], list[type | None]]:
        tls = self.tls
        items = tls[0].items
        if type(items) is not list or any(tl.items is not items for tl in tls):
            return [[tl[i] for i in idxs] for tl in tls], [None] * len(tls)
        # the hot path: every pipeline reads one list, so each raw item is fetched once; the pipelines run in
        # plain-op mode, entered once for the batch, and leave typing to the caller
        runs = [tl.tfms._untyped for tl in tls]
        values: list[list[Any]] = [[] for _ in runs]
        kinds: list[list[type | None]] = [[] for _ in runs]
        i, raw, k = 0, None, 0  # the item and the pipeline at work, for the error message
        with _plain_ops():
            try:
                for i in idxs:
                    raw = items[i]
                    for k, run in enumerate(runs):
                        v, c = run(raw)
                        values[k].append(v)
                        kinds[k].append(c)
            except TransformError as e:
                raise tls[k]._failed(int(i), raw, e) from e.__cause__
            except (IndexError, TypeError):
                tls[0]._raw(int(i))  # raises the error that names the index and the length
                raise
        types: list[type | None] = []
        for k, (vs, cs) in enumerate(zip(values, kinds)):
            if cs.count(cs[0]) == len(cs):
                types.append(cs[0])
            else:  # items of this element have different types: each is typed on its own
                values[k] = [as_type(v, c) if c is not None else v for v, c in zip(vs, cs)]
                types.append(None)
        return values, types

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return (self[i] for i in range(len(self)))

    def subset(self, i: int) -> Datasets:
        """The view of split ``i`` (0 training, 1 validation)."""
        first = self.tls[0]
        if all(tl.items is first.items and tl.splits == first.splits for tl in self.tls):
            items = first.split_items(i)  # the pipelines keep sharing one container of raw items
            return Datasets(tls=[tl.new(items, split_idx=i) for tl in self.tls], n_inp=self.n_inp, split_idx=i)
        return Datasets(tls=[tl.subset(i) for tl in self.tls], n_inp=self.n_inp, split_idx=i)

    @property
    def train(self) -> Datasets:
        """The training view."""
        return self.subset(0)

    @property
    def valid(self) -> Datasets:
        """The validation view."""
        return self.subset(1)

    @property
    def n_subsets(self) -> int:
        """How many splits there are."""
        return len(self.splits)

    def decode(self, o: Sequence[Any]) -> tuple[Any, ...]:
        """Undo each pipeline on its element of ``o``."""
        return tuple(tl.decode(x) for tl, x in zip(self.tls, o))

    def show(self, o: Sequence[Any], ctx: Any = None, **kwargs: Any) -> Any:
        """Draw every element of ``o`` on one axis (image, then its label as a title...) and return it."""
        for tl, x in zip(self.tls, o):
            ctx = tl.show(x, ctx=ctx, **kwargs)
        return ctx

    def new(self, items: Any, with_labels: bool = True, split_idx: int | None = 1) -> Datasets:
        """The same transforms over new items; only the input pipelines when ``with_labels`` is False."""
        tls = self.tls if with_labels else self.tls[: self.n_inp]
        return Datasets(tls=[tl.new(items, split_idx) for tl in tls], n_inp=self.n_inp, split_idx=split_idx)

    @property
    def vocab(self) -> list[Any] | None:
        """The vocab of the target pipeline, if it learned one."""
        return self.tls[-1].vocab

    def dataloaders(self, bs: int = 64, **kwargs: Any) -> Any:
        """Training and validation :class:`~lamina.data.load.DataLoader` s over the splits.

        Args:
            bs: batch size.
            **kwargs: passed to :meth:`lamina.data.load.DataLoaders.from_dsets`; ``dls_type`` (a ``DataLoaders``
                subclass, e.g. one a block asks for in its ``dl_kwargs``) is the class of the result.
        """
        from lamina.data.load import DataLoaders

        dls_type = kwargs.pop("dls_type", DataLoaders)
        if not (isinstance(dls_type, type) and issubclass(dls_type, DataLoaders)):
            raise TypeError(f"dls_type must be a DataLoaders subclass, got {dls_type!r}")
        return dls_type.from_dsets(*[self.subset(i) for i in range(self.n_subsets)], bs=bs, **kwargs)

    def __repr__(self) -> str:
        return f"Datasets({len(self)} items, {len(self.tls)} pipelines, splits {[len(s) for s in self.splits]})"
