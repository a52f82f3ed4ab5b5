"""The data block API: describe a data set by the kinds of its parts, then build Datasets and DataLoaders from it.

A :class:`TransformBlock` says what one kind of data needs at three places:

* ``type_tfms`` go in that element's :class:`~lamina.data.core.Datasets` pipeline, after its getter (open a file,
  map a label to its index). They run per item and may learn state from the training items (``setups``).
* ``item_tfms`` go in the DataLoader's ``after_item`` (per item, before collating: resize, crop).
* ``batch_tfms`` go in the DataLoader's ``after_batch`` (on the collated batch, on the device: scale, normalize).

A :class:`DataBlock` joins one block per element of the ``(x, ..., y, ...)`` tuple with how to find the items
(``get_items``), how to read each element from an item (``get_x``/``get_y`` or ``getters``) and how to split them
(``splitter``). Transforms are copied for every ``datasets``/``dataloaders`` call, so state learned from one source
(a vocab, normalization statistics) never leaks into another.

A block may name the types its element already has on its own (``element_types``: an image block takes a path, an
array, a PIL image). A new item of such a type, when the training items are of another kind (table rows, indices),
is that element already: it skips the getter. So ``dls.test_dl([path])`` and ``learn.predict(path)`` work on
DataLoaders built from a table of file names, as they do on ones built from the files.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lamina.core.tensors import MultiCategory, TensorMultiCategory, TitledFloat
from lamina.core.transform import ItemTransform, Pipeline, Transform, decodes
from lamina.core.utils import describe_item, listify
from lamina.data.core import Datasets, TfmdLists, index_items
from lamina.data.load import DataLoaders
from lamina.data.splitters import RandomSplitter
from lamina.data.transforms import Categorize, MultiCategorize, OneHotEncode, ToTensor

__all__ = [
    "DEFAULT_SPLIT_SEED",
    "CategoryBlock",
    "DataBlock",
    "EncodedMultiCategorize",
    "MultiCategoryBlock",
    "RegressionBlock",
    "RegressionSetup",
    "SummaryError",
    "TransformBlock",
]

DEFAULT_SPLIT_SEED = 42
"""Seed of the default splitter, ``RandomSplitter(valid_pct=0.2, seed=DEFAULT_SPLIT_SEED)``."""


class TransformBlock:
    """What one kind of data needs: transforms for its pipeline, for each item and for each batch.

    Args:
        type_tfms: transforms of this element's Datasets pipeline (e.g. open an image, ``Categorize``).
        item_tfms: transforms added to the DataLoader's ``after_item``.
        batch_tfms: transforms added to the DataLoader's ``after_batch``.
        dl_kwargs: DataLoader arguments this kind of data needs (e.g. a padding ``collate_fn``).
        element_types: the types the element has on its own, which ``type_tfms`` take as they are (an image block:
            paths, arrays, PIL images); a new item of one of them, unlike the training items, skips the getter.

    Examples:
        >>> block = TransformBlock(type_tfms=[Categorize()])
        >>> block
        TransformBlock(type_tfms=[Categorize(object)], item_tfms=[], batch_tfms=[])
    """

    def __init__(
        self,
        type_tfms: Any = None,
        item_tfms: Any = None,
        batch_tfms: Any = None,
        dl_kwargs: dict[str, Any] | None = None,
        element_types: Sequence[type] = (),
    ) -> None:
        self.type_tfms: list[Any] = list(listify(type_tfms))
        self.item_tfms: list[Any] = list(listify(item_tfms))
        self.batch_tfms: list[Any] = list(listify(batch_tfms))
        self.dl_kwargs: dict[str, Any] = dict(dl_kwargs or {})
        self.element_types: tuple[type, ...] = tuple(element_types)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(type_tfms={self.type_tfms}, item_tfms={self.item_tfms}, "
            f"batch_tfms={self.batch_tfms})"
        )


class CategoryBlock(TransformBlock):
    """Single-label classification targets: a label becomes its index in a vocab learned from the training items.

    Args:
        vocab: the labels in order; learned from the training split when ``None``.
        sort: sort a learned vocab.
        add_na: reserve index 0 for unseen labels instead of raising on them.

    Examples:
        >>> CategoryBlock(vocab=["cat", "dog"]).type_tfms[0].vocab_
        ['cat', 'dog']
    """

    def __init__(self, vocab: Sequence[Any] | None = None, sort: bool = True, add_na: bool = False) -> None:
        super().__init__(type_tfms=[Categorize(vocab=vocab, sort=sort, add_na=add_na)])


class _LabelList(ItemTransform):
    """Check that a multi-label target is a collection of labels, and make it a list (before MultiCategorize)."""

    order = 0

    def encodes(self, x: Any) -> list[Any]:
        if isinstance(x, str):
            raise TypeError(
                f"a multi-label target must be a list of labels, got the string {x!r}: split it, e.g. "
                "get_y=ColReader('labels', label_delim=' ')"
            )
        if isinstance(x, (list, tuple, set, np.ndarray)) or hasattr(x, "tolist"):
            return list(x)
        raise TypeError(f"a multi-label target must be a list of labels, got {type(x).__name__} {x!r}")


class EncodedMultiCategorize(Transform):
    """Multi-label targets already one-hot encoded (one 0/1 value per label) as a float tensor, and back.

    Args:
        vocab: the label of each position.

    Examples:
        >>> t = EncodedMultiCategorize(vocab=["cat", "dog", "owl"])
        >>> t([1, 0, 1]).tolist(), t.decode(t([1, 0, 1]))
        ([1.0, 0.0, 1.0], ['cat', 'owl'])
    """

    order = 1

    def __init__(self, vocab: Sequence[Any]) -> None:
        super().__init__()
        if vocab is None or len(vocab) == 0:
            raise ValueError("EncodedMultiCategorize needs the vocab: the label name of every encoded column")
        self.vocab = list(vocab)
        self.vocab_ = list(vocab)

    def encodes(self, x: Any) -> TensorMultiCategory:
        values = np.asarray(x.as_plain() if hasattr(x, "as_plain") else x, dtype=np.float32).reshape(-1)
        if len(values) != len(self.vocab_):
            raise ValueError(
                f"an encoded multi-label target has {len(values)} values but the vocab has {len(self.vocab_)} "
                "labels: read one column per vocab label (e.g. ColReader(vocab))"
            )
        return TensorMultiCategory(torch.from_numpy(values))

    @decodes
    def _decode(self, x: TensorMultiCategory) -> MultiCategory:
        return MultiCategory([self.vocab_[i] for i in torch.nonzero(x.as_plain() > 0.5).flatten().tolist()])


class MultiCategoryBlock(TransformBlock):
    """Multi-label targets: a list of labels (or already one-hot encoded columns) to a float one-hot vector.

    Labels in one string (``"cat dog"``) are split by the getter: ``get_y=ColReader("tags", label_delim=" ")``.

    Args:
        encoded: the targets are already one-hot (one 0/1 value per label); ``vocab`` is then required.
        vocab: the labels; learned (sorted) from the training split when ``None`` and not ``encoded``.
        add_na: reserve index 0 for unseen labels instead of raising on them.

    Examples:
        >>> [type(t).__name__ for t in MultiCategoryBlock().type_tfms]
        ['_LabelList', 'MultiCategorize', 'OneHotEncode']
    """

    def __init__(self, encoded: bool = False, vocab: Sequence[Any] | None = None, add_na: bool = False) -> None:
        if encoded:
            if vocab is None:
                raise ValueError("MultiCategoryBlock(encoded=True) needs vocab=[the label of each encoded column]")
            super().__init__(type_tfms=[EncodedMultiCategorize(vocab)])
        else:
            super().__init__(type_tfms=[_LabelList(), MultiCategorize(vocab=vocab, add_na=add_na), OneHotEncode()])
        self.encoded = encoded


class RegressionSetup(Transform):
    """Regression targets (a number or a list of numbers) as a float tensor; decoded back to ``TitledFloat`` (s).

    Args:
        n_out: the number of values each target must have (checked); any when ``None``.

    Examples:
        >>> t = RegressionSetup()
        >>> t(2.5).item(), t.decode(t(2.5)), t.decode(t([1.0, 2.0]))
        (2.5, 2.5, [1.0, 2.0])
    """

    order = 1

    def __init__(self, n_out: int | None = None) -> None:
        super().__init__()
        if n_out is not None and n_out < 1:
            raise ValueError(f"n_out must be >= 1, got {n_out}")
        self.n_out = n_out

    def encodes(self, x: Any) -> Tensor:
        if isinstance(x, Tensor):
            out = x.detach().float()
        else:
            try:
                out = torch.from_numpy(np.asarray(x, dtype=np.float32))
            except (TypeError, ValueError) as e:
                raise TypeError(f"a regression target must be numbers, got {type(x).__name__} {x!r}") from e
        if self.n_out is not None and out.numel() != self.n_out:
            raise ValueError(f"a regression target has {out.numel()} values but n_out={self.n_out}: check get_y")
        return out if out.ndim == 0 else out.reshape(-1)

    @decodes
    def _decode(self, x: Tensor) -> TitledFloat | list[TitledFloat]:
        if x.ndim == 0:
            return TitledFloat(float(x))
        return [TitledFloat(v) for v in x.reshape(-1).tolist()]


class RegressionBlock(TransformBlock):
    """Regression targets: floats (one, or ``n_out`` per item), decoded to ``TitledFloat`` (s) for showing.

    Args:
        n_out: the number of values per target (checked on every item); any when ``None``.

    Examples:
        >>> RegressionBlock(n_out=2).type_tfms[0](np.array([1, 2])).tolist()
        [1.0, 2.0]
    """

    def __init__(self, n_out: int | None = None) -> None:
        super().__init__(type_tfms=[RegressionSetup(n_out)])
        self.n_out = n_out


class SummaryError(RuntimeError):
    """A step of :meth:`DataBlock.summary` failed; the message names the step and the original error.

    Examples:
        >>> str(SummaryError("step 'getting items' failed: FileNotFoundError: no folder"))
        "step 'getting items' failed: FileNotFoundError: no folder"
    """


def _kind(item: Any) -> tuple[type, ...]:
    """The types of items of the same kind as ``item``: any path (``str`` or ``os.PathLike``) for a path."""
    return (str, os.PathLike) if isinstance(item, (str, os.PathLike)) else (type(item),)


class _Getter(ItemTransform):
    """The first step of an element's pipeline: read that element from the whole raw item.

    An item of one of ``element_types`` that is not of the kind of the training items (learned in ``setups``) is
    the element already, e.g. an image path given to a pipeline that reads file names from table rows: it passes.
    """

    order = -100

    def __init__(self, func: Callable[[Any], Any], element_types: Sequence[type] = ()) -> None:
        super().__init__()
        self.func, self.element_types = func, tuple(element_types)
        self.item_kind_: tuple[type, ...] | None = None

    def setups(self, items: Any) -> None:
        if self.element_types and len(items):
            self.item_kind_ = _kind(items[0])

    @property
    def name(self) -> str:
        return getattr(self.func, "__name__", None) or repr(self.func)

    def encodes(self, x: Any) -> Any:
        kind = self.item_kind_
        if kind is not None and isinstance(x, self.element_types) and not isinstance(x, kind):
            return x
        return self.func(x)

    def __repr__(self) -> str:
        return f"getter {self.name}"


def _as_block(block: Any, position: int) -> TransformBlock:
    """A block given as an instance, a class, or a function returning one, as an instance."""
    if isinstance(block, TransformBlock):
        return block
    if callable(block):
        made = block()
        if isinstance(made, TransformBlock):
            return made
        block = made
    raise TypeError(
        f"blocks[{position}] is a {type(block).__name__}, not a TransformBlock: pass a block class "
        "(CategoryBlock), an instance (CategoryBlock(vocab=...)) or TransformBlock(type_tfms=[...])"
    )


def _per_element(getter: Any, n: int, name: str) -> list[Any]:
    if getter is None or callable(getter):
        return [getter] * n
    getters = list(getter)
    if len(getters) != n:
        raise ValueError(f"{name} has {len(getters)} functions for {n} elements: give one function, or one each")
    return getters


def _resolve_getters(n_blocks: int, n_inp: int, get_x: Any, get_y: Any, getters: Any) -> list[Any]:
    """One getter (or ``None``: the raw item) per block."""
    if getters is not None:
        if get_x is not None or get_y is not None:
            raise ValueError("DataBlock: give `getters` (one per block) or `get_x`/`get_y`, not both")
        getters = list(getters)
        if len(getters) != n_blocks:
            raise ValueError(f"DataBlock: `getters` has {len(getters)} functions for {n_blocks} blocks: give one each")
        return getters
    if n_blocks == n_inp and get_y is not None:
        raise ValueError(f"DataBlock: get_y was given but all {n_blocks} blocks are inputs (n_inp={n_inp})")
    return _per_element(get_x, n_inp, "get_x") + _per_element(get_y, n_blocks - n_inp, "get_y")


def _merge_tfms(block_tfms: list[Any], own_tfms: list[Any]) -> list[Any]:
    """Block transforms (one per class) then the DataBlock's own, which replace block ones of the same class;
    copied, and sorted by ``order`` (stable)."""
    fs = [f() if isinstance(f, type) else f for f in [*block_tfms, *own_tfms]]
    fs = [f if isinstance(f, Transform) else Transform(f) for f in fs]
    n_block, kept, seen = len(block_tfms), [], set()
    own_types = {type(f) for f in fs[n_block:] if type(f) not in (Transform, ItemTransform)}
    for k, f in enumerate(fs):
        kind = type(f)
        if k < n_block and kind not in (Transform, ItemTransform) and (kind in own_types or kind in seen):
            continue
        seen.add(kind)
        kept.append(f)
    return sorted(copy.deepcopy(kept), key=lambda t: t.order)


def _describe(x: Any) -> str:
    """Type and a one-line description of an intermediate result, for summaries."""
    if isinstance(x, Tensor):
        return f"{describe_item(x)}, {str(x.dtype).replace('torch.', '')}"
    if isinstance(x, tuple):
        return "(" + ", ".join(_describe(o) for o in x) + ")"
    text = " ".join(describe_item(x).split())
    return text if text.startswith(type(x).__name__) else f"{type(x).__name__} {text}"


def _run_step(name: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one summary step, ``func(*args, **kwargs)``; on failure print and raise an error that names it."""
    try:
        return func(*args, **kwargs)
    except Exception as e:
        print(f"FAILED at step '{name}': {type(e).__name__}: {e}")
        raise SummaryError(f"DataBlock.summary: step '{name}' failed: {type(e).__name__}: {e}") from e


class DataBlock:
    """A recipe for Datasets and DataLoaders: one block per tuple element, how to get, read and split the items.

    Args:
        blocks: one :class:`TransformBlock` (class, instance or function returning one) per element, inputs first.
        get_items: ``source -> items`` (e.g. :func:`~lamina.data.getters.get_files`); the source itself when ``None``.
        get_x: reads the inputs from an item: one function for every input, or a list with one per input.
        get_y: reads the targets from an item: one function, or one per target.
        splitter: ``items -> (train_idx, valid_idx)``; default ``RandomSplitter(0.2, seed=DEFAULT_SPLIT_SEED)``,
            a random 20% validation split that is the same on every run.
        item_tfms: transforms added to the blocks' item transforms (replacing a block one of the same class).
        batch_tfms: transforms added to the blocks' batch transforms (replacing a block one of the same class).
        n_inp: how many leading blocks are inputs; ``len(blocks) - 1`` (at least 1) when ``None``.
        getters: one function per block instead of ``get_x``/``get_y`` (``None`` entries keep the raw item).

    Examples:
        >>> dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_y=lambda n: "odd" if n % 2 else "even")
        >>> dls = dblock.dataloaders(list(range(10)), bs=4)
        >>> xb, yb = dls.valid.one_batch()
        >>> xb.tolist(), yb.tolist(), dls.vocab
        ([5, 6], [1, 0], ['even', 'odd'])
    """

    def __init__(
        self,
        blocks: Sequence[Any] | Any,
        get_items: Callable[[Any], Any] | None = None,
        get_x: Any = None,
        get_y: Any = None,
        splitter: Callable[[Any], Any] | None = None,
        item_tfms: Any = None,
        batch_tfms: Any = None,
        n_inp: int | None = None,
        getters: Sequence[Any] | None = None,
    ) -> None:
        self.blocks = [_as_block(b, k) for k, b in enumerate(listify(blocks))]
        if not self.blocks:
            raise ValueError("DataBlock needs at least one block, e.g. blocks=(TransformBlock, CategoryBlock)")
        n = len(self.blocks)
        self.n_inp = n_inp if n_inp is not None else max(n - 1, 1)
        if not 1 <= self.n_inp <= n:
            raise ValueError(f"DataBlock: n_inp must be in 1..{n} for {n} blocks, got {n_inp}")
        self.getters = _resolve_getters(n, self.n_inp, get_x, get_y, getters)
        self.get_items = get_items
        self.splitter = splitter if splitter is not None else RandomSplitter(0.2, seed=DEFAULT_SPLIT_SEED)
        self.item_tfms, self.batch_tfms = list(listify(item_tfms)), list(listify(batch_tfms))
        self.dl_kwargs: dict[str, Any] = {}
        for b in self.blocks:
            self.dl_kwargs.update(b.dl_kwargs)

    def _items(self, source: Any) -> Any:
        items = self.get_items(source) if self.get_items is not None else source
        if not hasattr(items, "__len__"):
            items = list(items)
        if len(items) == 0:
            how = f"get_items={getattr(self.get_items, '__name__', self.get_items)!r}" if self.get_items else "source"
            raise ValueError(f"DataBlock found no items in {describe_item(source)} ({how}): check the path/source")
        return items

    def _splits(self, items: Any) -> list[list[int]]:
        splits = self.splitter(items)
        if not isinstance(splits, (tuple, list)) or len(splits) < 2:
            raise TypeError(f"the splitter {self.splitter!r} must return (train_idx, valid_idx), got {splits!r}")
        return [[int(i) for i in s] for s in splits]

    def _element_tfms(self, k: int) -> list[Any]:
        """Element ``k``'s pipeline: its getter, then (copies of) its block's type transforms."""
        block, func = self.blocks[k], self.getters[k]
        getter = [_Getter(func, block.element_types)] if func is not None else []
        return getter + copy.deepcopy(block.type_tfms)

    def _role(self, k: int) -> str:
        return "input" if k < self.n_inp else "target"

    def datasets(self, source: Any) -> Datasets:
        """The items of ``source``, split, with one pipeline per block.

        Examples:
            >>> from lamina.data.splitters import IndexSplitter
            >>> dblock = DataBlock((TransformBlock, CategoryBlock), get_y=str, splitter=IndexSplitter([2]))
            >>> dsets = dblock.datasets([5, 6, 5])
            >>> dsets.train[1], dsets.vocab
            ((6, TensorCategory(1)), ['5', '6'])
        """
        items = self._items(source)
        pipes = [self._element_tfms(k) for k in range(len(self.blocks))]
        return Datasets(items, tfms=pipes, splits=self._splits(items), n_inp=self.n_inp)

    def _loader_kwargs(self) -> dict[str, Any]:
        after_item = _merge_tfms([t for b in self.blocks for t in b.item_tfms], [*self.item_tfms, ToTensor()])
        after_batch = _merge_tfms([t for b in self.blocks for t in b.batch_tfms], self.batch_tfms)
        return {**self.dl_kwargs, "after_item": after_item, "after_batch": after_batch}

    def dataloaders(self, source: Any, bs: int = 64, **kwargs: Any) -> DataLoaders:
        """Training and validation DataLoaders over ``source``.

        ``after_item`` is the blocks' item transforms, ``item_tfms`` and ``ToTensor()``; ``after_batch`` the blocks'
        batch transforms and ``batch_tfms``; each sorted by ``order``.

        Args:
            source: what ``get_items`` reads (a folder, a DataFrame, a list).
            bs: batch size.
            **kwargs: passed to :meth:`~lamina.data.load.DataLoaders.from_dsets` (``val_bs``, ``device``, ``seed``...).

        Examples:
            >>> dls = DataBlock((TransformBlock, RegressionBlock), get_y=float).dataloaders(list(range(20)), bs=8)
            >>> dls.train.one_batch()[1].dtype
            torch.float32
        """
        for key in ("after_item", "after_batch"):
            if key in kwargs:
                raise TypeError(f"DataBlock.dataloaders builds {key} itself: pass item_tfms/batch_tfms to DataBlock")
        return self.datasets(source).dataloaders(bs=bs, **{**self._loader_kwargs(), **kwargs})

    def summary(self, source: Any, bs: int = 4) -> None:
        """Walk one training item through every step, printing each result; a failing step is named.

        Steps: getting items, splitting, each step of each element's pipeline (its setup, then the item through it),
        building the DataLoaders, the item transforms, collating ``bs`` items, the batch transforms.

        Args:
            source: what ``get_items`` reads.
            bs: the size of the batch collated at the end.

        Examples:
            >>> from lamina.data.splitters import IndexSplitter
            >>> dblock = DataBlock((TransformBlock, CategoryBlock), get_y=str, splitter=IndexSplitter([2]))
            >>> dblock.summary([5, 6, 5])
            Getting items: 3 items, the first int 5
            Splitting with IndexSplitter: 2 training, 1 validation items
            Walking training item 0: int 5
            element 0 (input, TransformBlock):
              start: int 5
            element 1 (target, CategoryBlock):
              start: int 5
              str: str '5'
              Categorize: TensorCategory of shape (), int64
            Building the DataLoaders (bs=4)
            after_item ToTensor: (int 5, TensorCategory of shape (), int64)
            Collating 2 items: (Tensor of shape (2,), int64, TensorCategory of shape (2,), int64)
            Done: a training batch of 2 items
        """
        items = _run_step("getting items", self._items, source)
        print(f"Getting items: {len(items)} items, the first {_describe(TfmdLists(items, [], do_setup=False)[0])}")
        splits = _run_step("splitting", self._splits, items)
        name = getattr(self.splitter, "__name__", None) or type(self.splitter).__name__
        print(f"Splitting with {name}: {len(splits[0])} training, {len(splits[1])} validation items")
        if not splits[0]:
            raise SummaryError("DataBlock.summary: step 'splitting' left the training split empty: check the splitter")
        train = TfmdLists(index_items(items, splits[0]), [], do_setup=False)
        sample = train[0]
        print(f"Walking training item {splits[0][0]}: {_describe(sample)}")
        tls = [self._summarize_element(k, train, items, splits) for k in range(len(self.blocks))]
        dsets = Datasets(tls=tls, n_inp=self.n_inp)
        kwargs = {**self._loader_kwargs(), "seed": 0}
        dls = _run_step("building the DataLoaders", dsets.dataloaders, bs=bs, **kwargs)
        print(f"Building the DataLoaders (bs={bs})")
        self._summarize_batch(dls, dsets, bs)

    def _summarize_element(self, k: int, train: TfmdLists, items: Any, splits: list[list[int]]) -> TfmdLists:
        role, x = self._role(k), train[0]
        fs = Pipeline(self._element_tfms(k)).fs
        print(f"element {k} ({role}, {type(self.blocks[k]).__name__}):\n  start: {_describe(x)}")
        for j, t in enumerate(fs):
            step = f"element {k} ({role}) step {j + 1}/{len(fs)} `{t.name}`"
            _run_step(f"{step}: setup on the training items", Pipeline(fs[: j + 1]).setup, train)
            x = _run_step(step, t, x, split_idx=0)
            print(f"  {t.name}: {_describe(x)}")
        return TfmdLists(items, fs, splits, do_setup=False, role=role)

    def _summarize_batch(self, dls: DataLoaders, dsets: Datasets, bs: int) -> None:
        dl, x = dls.train, dsets.train[0]
        for t in dl.after_item.fs:
            x = _run_step(f"item transform `{t.name}`", t, x, split_idx=0)
            print(f"after_item {t.name}: {_describe(x)}")
        n = min(bs, len(dsets.train))
        batch = _run_step(f"collating {n} items", lambda: dl.collate_fn([dl.after_item(o) for o in dsets.train[:n]]))
        print(f"Collating {n} items: {_describe(batch)}")
        for t in dl.after_batch.fs:
            batch = _run_step(f"batch transform `{t.name}`", t, batch, split_idx=0)
            print(f"after_batch {t.name}: {_describe(batch)}")
        print(f"Done: a training batch of {n} items")

    def __repr__(self) -> str:
        blocks = ", ".join(type(b).__name__ for b in self.blocks)
        return f"DataBlock(blocks=({blocks}), n_inp={self.n_inp}, splitter={self.splitter!r})"
