"""The two text loaders: contiguous token streams for a language model, and length-bucketed, left-padded batches
for a classifier. Both read their documents once (through the dataset's pipelines) into one flat tensor of token
ids plus offsets, and make every batch by slicing or gathering from it.

Language model (:class:`LMDataLoader`): each epoch the documents are shuffled (training) and concatenated into one
stream, the stream is cut into ``bs`` rows, and batch ``k`` is the next columns of those rows: ``x`` is ``bs x L``
and ``y`` is ``x`` shifted by one token, and row ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k`` (so a
model can carry its hidden state across batches). In training ``L`` varies around ``seq_len`` (see
:func:`jittered_lengths`: ULMFiT's variable back-propagation through time), so the model does not always see the
same cut points; in validation every batch but the last has ``L == seq_len``.

Classifier (:class:`BucketDataLoader`): texts of similar length go in the same batch so little padding is needed.
Training shuffles the texts, sorts each chunk of ``bs * bucket_factor`` texts by length, cuts batches and shuffles
the batches (the batch holding the longest text comes first, so a batch too large for memory fails at once);
validation sorts all texts by length. Padding goes at the start of each row (the last position is the last real
token) and the padding mask is ``x == pad_idx``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lamina.core.tensors import TensorText, retype
from lamina.data.load import DataLoader, _SetupBatches, collate

__all__ = ["BucketDataLoader", "LMDataLoader", "bucket_order", "jittered_lengths", "pad_left"]


# ---------------------------------------------------------------- pure functions


def jittered_lengths(total: int, seq_len: int, n: int, generator: torch.Generator, half_prob: float = 0.05,
                     rel_std: float = 5 / 70) -> list[int]:  # fmt: skip
    """``n`` sequence lengths of about ``seq_len`` that add up to exactly ``total`` (ULMFiT's variable BPTT).

    Each length is drawn as ``seq_len`` (or ``seq_len / 2`` with probability ``half_prob``) plus Gaussian noise
    of standard deviation ``rel_std * seq_len`` (ULMFiT: 5 tokens at 70), kept in ``[seq_len / 4, 2 * seq_len]``;
    the lengths are then scaled to add up to ``total`` (rounding at cumulative boundaries), so an epoch has exactly
    ``n`` batches and covers every token.

    Args:
        total: the tokens to cover (columns of the stream).
        seq_len: the target length.
        n: how many lengths.
        generator: the random generator.
        half_prob: the chance of a half-length draw.
        rel_std: the noise, as a share of ``seq_len``.

    Examples:
        >>> lengths = jittered_lengths(1000, 70, 15, torch.Generator().manual_seed(0))
        >>> len(lengths), sum(lengths), min(lengths) > 40, max(lengths) < 100
        (15, 1000, True, True)
    """
    if n < 1 or total < n:
        raise ValueError(f"cannot cut {total} tokens into {n} sequences of at least one token")
    half = torch.rand(n, generator=generator) < half_prob
    base = torch.where(half, torch.tensor(seq_len / 2), torch.tensor(float(seq_len)))
    raw = (base + rel_std * seq_len * torch.randn(n, generator=generator)).clamp(max(1.0, seq_len / 4), 2.0 * seq_len)
    bounds = torch.round(torch.cumsum(raw, 0) * (total / float(raw.sum()))).long()
    bounds[-1] = total
    lengths = torch.diff(bounds, prepend=torch.zeros(1, dtype=torch.long))
    if int(lengths.min()) < 1:  # rounding squeezed a length to 0: fall back to even lengths
        lengths = torch.full((n,), total // n, dtype=torch.long)
        lengths[: total % n] += 1
    return lengths.tolist()


def bucket_order(lengths: Tensor, bs: int, bucket_factor: int, generator: torch.Generator | None,
                 drop_last: bool = False) -> list[Tensor]:  # fmt: skip
    """The batches (tensors of item indices) of one epoch, grouped by length.

    With a ``generator`` (training): shuffle the items, sort each chunk of ``bs * bucket_factor`` by decreasing
    length, cut into batches, shuffle the batches and put the one holding the longest item first. Without
    (validation): all items sorted by decreasing length, cut into batches.

    Args:
        lengths: the length of each item.
        bs: batch size.
        bucket_factor: batches per sorted chunk.
        generator: draws the shuffles; ``None`` sorts everything.
        drop_last: drop the items that do not fill a last batch (after shuffling).

    Examples:
        >>> batches = bucket_order(torch.tensor([5, 1, 9, 3]), bs=2, bucket_factor=50, generator=None)
        >>> [b.tolist() for b in batches]
        [[2, 0], [3, 1]]
    """
    n = len(lengths)
    if generator is None:
        order = torch.argsort(lengths, descending=True, stable=True)
    else:
        perm = torch.randperm(n, generator=generator)
        if drop_last:
            perm = perm[: n // bs * bs]
        size = bs * bucket_factor
        chunks = [c[torch.argsort(lengths[c], descending=True, stable=True)] for c in torch.split(perm, size)]
        order = torch.cat(chunks) if chunks else perm
    batches = list(torch.split(order, bs))
    if drop_last and batches and len(batches[-1]) < bs:
        batches.pop()
    if generator is not None and len(batches) > 1:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        longest = max(range(len(batches)), key=lambda k: int(lengths[batches[k]].max()))
        batches.insert(0, batches.pop(longest))
    return batches


def pad_left(flat: Tensor, offsets: Tensor, lengths: Tensor, idx: Tensor, pad_idx: int) -> Tensor:
    """Items ``idx`` of a flat tensor of documents as a ``len(idx) x max_len`` batch, padded at the start.

    Args:
        flat: all documents' token ids, one after the other.
        offsets: where each document starts in ``flat``.
        lengths: each document's length.
        idx: the documents of the batch.
        pad_idx: the padding id.

    Examples:
        >>> flat = torch.tensor([7, 8, 9, 4])
        >>> pad_left(flat, torch.tensor([0, 3]), torch.tensor([3, 1]), torch.tensor([1, 0]), pad_idx=1).tolist()
        [[1, 1, 4], [7, 8, 9]]
    """
    lens = lengths[idx]
    width = int(lens.max()) if len(lens) else 0
    cols = torch.arange(width)
    start = (width - lens)[:, None]
    src = offsets[idx][:, None] + cols[None, :] - start
    real = cols[None, :] >= start
    return torch.where(real, flat[src.clamp(0, max(len(flat) - 1, 0))], torch.full_like(src, pad_idx))


# ---------------------------------------------------------------- reading the documents


def _as_ids(x: Any, i: int) -> Tensor:
    if isinstance(x, Tensor):
        t = x.as_subclass(Tensor)
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.int64))
        except (TypeError, ValueError) as e:
            raise TypeError(f"item {i}: token ids must be a sequence of ints, got {type(x).__name__} {x!r}") from e
    if t.ndim != 1 or t.is_floating_point():
        raise TypeError(f"item {i}: token ids must be a 1-d integer sequence, got shape {tuple(t.shape)} {t.dtype}")
    return t.long()


def _read_items(dataset: Any) -> list[Any]:
    """Every item of ``dataset`` (tuples ``(ids, *targets)``, or bare id sequences) in order."""
    n = len(dataset)
    getitems = getattr(dataset, "__getitems__", None)
    items = getitems(list(range(n))) if getitems is not None else [dataset[i] for i in range(n)]
    return [it if isinstance(it, tuple) else (it,) for it in items]


def _flatten(docs: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """All documents in one tensor, with each one's offset and length."""
    lengths = torch.tensor([len(d) for d in docs], dtype=torch.long)
    offsets = torch.cumsum(lengths, 0) - lengths
    flat = torch.cat(list(docs)) if len(docs) else torch.zeros(0, dtype=torch.long)
    return flat, offsets, lengths


def _pad_idx_of(dataset: Any) -> int | None:
    """The id of ``xxpad`` in the vocab learned by the dataset's ``Numericalize``, when it has one."""
    from lamina.text.core import PAD

    tls = getattr(dataset, "tls", None)
    for t in reversed(tls[0].tfms.fs if tls else []):
        vocab = getattr(t, "vocab_", None)
        if vocab is not None and PAD in vocab:
            return list(vocab).index(PAD)
    return None


def _as_text(parts: Sequence[Tensor]) -> list[TensorText]:
    """Views of token ids typed as ``TensorText``: new tensor objects sharing their storage."""
    return [p.as_subclass(TensorText) for p in parts]


def _copied(b: tuple[TensorText, TensorText]) -> tuple[TensorText, TensorText]:
    """A batch of views of the token stream as new tensors, so batch transforms that work in place (or a caller
    writing into a batch) cannot change the stream of later batches and epochs."""
    return (retype(b[0].as_plain().clone(), TensorText), retype(b[1].as_plain().clone(), TensorText))


class _TextLoaderMixin:
    """Decoding rows of ids back to text (through the dataset's pipeline when it has one)."""

    dataset: Any
    table: Callable[..., Any]  # a batch as a DataFrame of decoded columns: each loader's own

    def show_batch(
        self,
        b: Any = None,
        max_n: int = 9,
        nrows: int | None = None,
        ncols: int | None = None,
        figsize: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Draw up to ``max_n`` items of ``b`` (or of one batch) as one table (decoded text, target) and return the
        figure; the rows are those of :meth:`table`.

        Args:
            b: a batch of this loader; one is made when ``None``.
            max_n: most rows.
            nrows: the table's rows when given (instead of ``max_n``).
            ncols: not used (a table has its own columns); accepted as in ``DataLoader.show_batch``.
            figsize: the figure size.
            **kwargs: passed to :func:`~lamina.text.show.show_text_table` (``max_chars``, ``width``).
        """
        from lamina.text.show import show_text_table

        return show_text_table(self.table(b, nrows or max_n), figsize=figsize, **kwargs)

    def decode_text(self, ids: Tensor) -> str:
        """The readable text of one row of token ids (padding dropped).

        Examples:
            >>> dl = BucketDataLoader([([5, 6], 0), ([7], 1)], bs=2, pad_idx=1)
            >>> dl.decode_text(torch.tensor([1, 7]))
            '7'
        """
        tls = getattr(self.dataset, "tls", None)
        if tls is not None:
            return str(tls[0].decode(TensorText(ids)))
        pad = getattr(self, "pad_idx", None)
        return " ".join(str(i) for i in ids.tolist() if i != pad)


# ---------------------------------------------------------------- language model


class LMDataLoader(_TextLoaderMixin, DataLoader):
    """Contiguous ``bs x L`` token runs of the concatenated documents for a language model: ``(x, y)`` with ``y``
    the next token of each position of ``x``, both :class:`~lamina.core.tensors.TensorText`.

    Every epoch (training: ``shuffle=True``) reorders the documents, so each epoch sees a different stream. Batches
    are views of the epoch's stream (copied before batch transforms, which then cannot change it); item transforms do
    not apply (documents are read once as ids).
    Every batch has ``bs`` rows, so ``drop_last`` has no effect. Batches are made in this process by slicing
    (``num_workers`` must be 0).

    Args:
        dataset: a ``Datasets`` whose items are ``(TensorText,)`` (a ``TextBlock(is_lm=True)``), or a sequence of
            token-id sequences.
        bs: rows of each batch.
        seq_len: tokens of each row (the mean length when jittered).
        shuffle: reorder the documents every epoch (training).
        jitter: in training, vary each batch's length around ``seq_len`` (see :func:`jittered_lengths`).
        **kwargs: the :class:`~lamina.data.load.DataLoader` settings (``seed``, ``device``, ``after_batch``...).

    Examples:
        >>> docs = [list(range(k * 10, k * 10 + 10)) for k in range(10)]  # 100 tokens
        >>> dl = LMDataLoader(docs, bs=4, seq_len=6)
        >>> [tuple(x.shape) for x, y in dl], dl.one_batch()[1][0].tolist()
        ([(4, 6), (4, 6), (4, 6), (4, 6)], [1, 2, 3, 4, 5, 6])
    """

    def __init__(self, dataset: Any, bs: int = 64, seq_len: int = 72, shuffle: bool = False, jitter: bool = True,
                 **kwargs: Any) -> None:  # fmt: skip
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if kwargs.get("num_workers", 0):
            raise ValueError("LMDataLoader makes batches by slicing one tensor in this process: use num_workers=0")
        do_setup = kwargs.pop("do_setup", True)
        kwargs["cache"] = False
        super().__init__(dataset, bs=bs, shuffle=shuffle, do_setup=False, **kwargs)
        self.seq_len, self.jitter = seq_len, jitter
        self._args.update(seq_len=seq_len, jitter=jitter)
        docs = [_as_ids(it[0], i) for i, it in enumerate(_read_items(dataset))]
        self.flat, self.offsets, self.lengths = _flatten([d for d in docs if len(d)])  # empty texts add nothing
        self.n_cols = len(self.flat) // bs
        if self.n_cols < 2:
            raise ValueError(
                f"the documents hold {len(self.flat)} tokens, too few for bs={bs} rows of at least 2 tokens: "
                "use a smaller bs or more text"
            )
        if do_setup:
            self.after_item.setup(dataset)
            self.after_batch.setup(_SetupBatches(self))

    def __len__(self) -> int:
        return math.ceil((self.n_cols - 1) / self.seq_len)

    def _generator(self, advance: bool, order_seed: int | None = None) -> torch.Generator | None:
        """This epoch's random generator, seeded with ``order_seed`` (by default from ``seed`` and the epoch), or
        ``None`` without shuffling: nothing random happens."""
        g = None
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self._order_seed() if order_seed is None else order_seed)
        if advance:
            self.epoch += 1
        return g

    def _stream(self, g: torch.Generator | None) -> Tensor:
        """This epoch's token stream: the documents in shuffled order (training) or as they are."""
        if g is None:
            return self.flat
        order = torch.randperm(len(self.lengths), generator=g)
        lens = self.lengths[order]
        starts = torch.cumsum(lens, 0) - lens
        # position p of the new stream reads flat[p + shift(p)], shift being constant over each document: built as
        # the running sum of its changes at document starts (cheaper than repeating it token by token)
        shift = self.offsets[order] - starts
        changes = torch.zeros(len(self.flat), dtype=torch.long)
        changes.index_add_(0, starts, torch.diff(shift, prepend=shift.new_zeros(1)))
        idx = torch.cumsum(changes, 0).add_(torch.arange(len(self.flat)))
        return torch.index_select(self.flat, 0, idx)

    def _epoch(self, advance: bool, order_seed: int | None = None) -> list[tuple[TensorText, TensorText]]:
        """This epoch's batches, made at once as views of the stream cut into ``bs`` rows."""
        g = self._generator(advance, order_seed)
        stream = self._stream(g)
        rows = stream[: self.bs * self.n_cols].view(self.bs, self.n_cols)
        total, n = self.n_cols - 1, len(self)
        if g is not None and self.jitter:
            lengths = jittered_lengths(total, self.seq_len, n, g)
        else:
            lengths = [self.seq_len] * (n - 1) + [total - self.seq_len * (n - 1)]
        xs, ys = torch.split(rows[:, :-1], lengths, 1), torch.split(rows[:, 1:], lengths, 1)
        return list(zip(_as_text(xs), _as_text(ys)))

    def _descriptions(self, advance: bool, order_seed: int | None = None) -> list[tuple[Any, int | None]]:
        self._batches = self._epoch(advance, order_seed)
        return [(k, None) for k in range(len(self._batches))]

    def _fetch(self, desc: tuple[Any, int | None]) -> Any:
        return self._batches[desc[0]]

    def __iter__(self) -> Iterator[Any]:
        self._start_epoch()  # this epoch's batches (in the order a loaded state had), and where to start
        position, start = self._position, self._position["batch"]
        plain = self.device is None and not len(self.after_batch)
        for done, b in enumerate(self._batches[start:], start + 1):
            position["batch"] = done
            yield b if plain else self._finish(_copied(b))
        self._position = {"epoch": self.epoch, "batch": 0, "order_seed": None}

    def one_batch(self) -> Any:
        """The first batch of an epoch (without advancing the epoch)."""
        return self._finish(_copied(self._epoch(advance=False)[0]))

    def table(self, b: Any = None, max_n: int = 9, preds: Tensor | None = None) -> Any:
        """A DataFrame of up to ``max_n`` rows of a batch: each row's text, its target text and, given ``preds``
        (next-token scores ``bs x L x vocab`` or ids ``bs x L``), the predicted text.

        Examples:
            >>> LMDataLoader([list(range(20))], bs=2, seq_len=3).table(max_n=1)["target"].tolist()
            ['1 2 3']
        """
        import pandas as pd

        x, y = self.one_batch() if b is None else b
        n = min(max_n, len(x))
        columns = {"text": [self.decode_text(x[i]) for i in range(n)],
                   "target": [self.decode_text(y[i]) for i in range(n)]}  # fmt: skip
        if preds is not None:
            ids = preds.argmax(-1) if preds.is_floating_point() else preds
            columns["prediction"] = [self.decode_text(ids[i]) for i in range(n)]
        return pd.DataFrame(columns)


# ---------------------------------------------------------------- classifier


class BucketDataLoader(_TextLoaderMixin, DataLoader):
    """Classifier batches ``(x, *targets)``: texts of similar length together, padded at the start with ``pad_idx``.

    ``x`` is a :class:`~lamina.core.tensors.TensorText` ``bs x L`` (``L`` the longest text of the batch); the
    padding mask is ``x == pad_idx``. Validation batches are sorted by length, so they do not come in dataset order:
    :meth:`get_idxs` gives the dataset index of each item of an epoch and :meth:`restore_order` puts predictions
    back in dataset order. With ``sort=False`` batches keep the dataset order (what ``test_dl`` uses).

    Args:
        dataset: a ``Datasets`` of ``(TensorText, target...)`` items, or a sequence of tuples ``(ids, target...)``
            whose ids are sequences of ints (e.g. ids from a Hugging Face tokenizer) and targets ints or tensors.
        bs: batch size.
        shuffle: training order (shuffled, bucketed by length).
        pad_idx: the padding id; the index of ``xxpad`` in the dataset's ``Numericalize`` vocab when ``None``.
        bucket_factor: in training, batches per chunk sorted by length (larger: less padding, less randomness).
        sort: without shuffling, sort by length (``True``) or keep the dataset order.
        **kwargs: the :class:`~lamina.data.load.DataLoader` settings (``seed``, ``device``, ``num_workers``...).

    Examples:
        >>> items = [([5, 6, 7], 0), ([8], 1), ([9, 10], 1)]
        >>> x, y = BucketDataLoader(items, bs=3, pad_idx=1).one_batch()
        >>> x.tolist(), y.tolist()
        ([[5, 6, 7], [1, 9, 10], [1, 1, 8]], [0, 1, 1])
    """

    def __init__(self, dataset: Any, bs: int = 64, shuffle: bool = False, pad_idx: int | None = None,
                 bucket_factor: int = 50, sort: bool = True, **kwargs: Any) -> None:  # fmt: skip
        if bucket_factor < 1:
            raise ValueError(f"bucket_factor must be >= 1, got {bucket_factor}")
        do_setup = kwargs.pop("do_setup", True)
        kwargs["cache"] = False
        super().__init__(dataset, bs=bs, shuffle=shuffle, do_setup=False, **kwargs)
        pad = pad_idx if pad_idx is not None else _pad_idx_of(dataset)
        if pad is None:
            raise ValueError("BucketDataLoader needs pad_idx: the dataset has no Numericalize vocab with 'xxpad'")
        self.pad_idx, self.bucket_factor, self.sort = int(pad), bucket_factor, sort
        self._args.update(pad_idx=self.pad_idx, bucket_factor=bucket_factor, sort=sort)
        items = _read_items(dataset)
        self.flat, self.offsets, self.lengths = _flatten([_as_ids(it[0], i) for i, it in enumerate(items)])
        self.targets = [collate([it[k] for it in items]) for k in range(1, len(items[0]))]
        if do_setup:
            self.after_item.setup(dataset)
            self.after_batch.setup(_SetupBatches(self))

    def get_idxs(self, advance: bool = False, order_seed: int | None = None) -> list[Tensor]:
        """The dataset indices of each batch of an epoch (moving on to the next epoch when ``advance``).

        Args:
            advance: count this epoch as started.
            order_seed: the seed of a shuffled order; from ``seed`` and the epoch (or torch's RNG) when ``None``.

        Examples:
            >>> dl = BucketDataLoader([([5], 0), ([6, 7], 1)], bs=1, pad_idx=1)
            >>> [b.tolist() for b in dl.get_idxs()]
            [[1], [0]]
        """
        g: torch.Generator | None = None
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self._order_seed() if order_seed is None else order_seed)
        if advance:
            self.epoch += 1
        if g is None and not self.sort:
            return list(torch.split(torch.arange(len(self.lengths)), self.bs))
        return bucket_order(self.lengths, self.bs, self.bucket_factor, g, self.drop_last and self.shuffle)

    def restore_order(self, values: Tensor) -> Tensor:
        """Rows of ``values`` made in this (non-shuffled) loader's order, put back in dataset order.

        Examples:
            >>> dl = BucketDataLoader([([5], 0), ([6, 7], 1)], bs=2, pad_idx=1)
            >>> x, y = dl.one_batch()
            >>> dl.restore_order(y).tolist()
            [0, 1]
        """
        if self.shuffle:
            raise ValueError("restore_order needs a loader that is not shuffled (its order is the same every epoch)")
        idx = torch.cat(self.get_idxs())
        out = values.clone()
        out[idx] = values
        return out

    def _descriptions(self, advance: bool, order_seed: int | None = None) -> list[tuple[Any, int | None]]:
        return [(b, None) for b in self.get_idxs(advance, order_seed)]

    def _fetch(self, desc: tuple[Any, int | None]) -> Any:
        idx = desc[0]
        x = retype(pad_left(self.flat, self.offsets, self.lengths, idx, self.pad_idx), TensorText)
        ys = [retype(t.as_subclass(Tensor)[idx], type(t)) if isinstance(t, Tensor) else [t[i] for i in idx.tolist()]
              for t in self.targets]  # fmt: skip
        return (x, *ys)

    def _new_cache(self) -> Any:
        return None

    def table(self, b: Any = None, max_n: int = 9, preds: Tensor | None = None) -> Any:
        """A DataFrame of up to ``max_n`` items of a batch: text, target (decoded) and, given ``preds``, prediction.

        Examples:
            >>> BucketDataLoader([([5, 6], 0)], bs=1, pad_idx=1).table()["text"].tolist()
            ['5 6']
        """
        import pandas as pd

        b = self.one_batch() if b is None else b
        x = b[0]
        n = min(max_n, len(x))
        columns: dict[str, list[str]] = {"text": [self.decode_text(x[i]) for i in range(n)]}
        if len(b) > 1:
            columns["target"] = [self._decode_target(b[1][i]) for i in range(n)]
        if preds is not None:
            p = preds.argmax(-1) if preds.ndim > 1 and preds.is_floating_point() else preds
            typed = retype(p.as_subclass(Tensor), type(b[1])) if len(b) > 1 and isinstance(b[1], Tensor) else p
            columns["prediction"] = [self._decode_target(typed[i]) for i in range(n)]
        return pd.DataFrame(columns)

    def _decode_target(self, y: Any) -> str:
        tls = getattr(self.dataset, "tls", None)
        if tls is not None and len(tls) > 1:
            return str(tls[1].decode(y))
        return str(y.item() if isinstance(y, Tensor) and y.ndim == 0 else y)
