"""Text data: tokens to ids (:class:`Numericalize`), the text block, and text DataLoaders in one call.

A text element's pipeline is ``Tokenize`` (a string to tokens; token lists pass through) then ``Numericalize``
(tokens to a :class:`~lamina.core.tensors.TensorText` of ids, with a vocabulary learned from the training texts).
Decoding runs it backwards: ids to tokens (padding dropped) to readable text.

:class:`TextBlock` puts that pipeline in a :class:`~lamina.data.block.DataBlock` and asks for the text loaders of
:mod:`lamina.text.loaders` (:class:`LMDataLoader` for a language model, :class:`BucketDataLoader` for a classifier)
and for :class:`TextDataLoaders`. In a DataBlock each text is tokenized in this process when the loader first reads
it; the factories (``TextDataLoaders.from_df``...) tokenize the whole corpus first with
:func:`~lamina.text.core.tokenize_texts` (in parallel, optionally cached on disk) and give the blocks token lists.

Agreed conventions: the vocabulary starts with the special tokens (``xxunk``, ``xxpad``, ``xxbos``, ``xxeos``...),
so ``pad_idx == 1``; ``dls.text_vocab`` is the token vocabulary, ``dls.vocab`` the class names of a classifier (the
token vocabulary for a language model), ``dls.tokenizer`` the tokenizer (``state()`` / ``tokenizer_from_state``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lamina.core.tensors import TensorText, TitledStr, retype
from lamina.core.transform import ItemTransform, Transform, decodes, exportable
from lamina.data.block import DEFAULT_SPLIT_SEED, CategoryBlock, DataBlock, TransformBlock
from lamina.data.getters import get_files
from lamina.data.load import DataLoaders
from lamina.data.splitters import IndexSplitter, RandomSplitter
from lamina.data.transforms import Categorize
from lamina.text.core import PAD, SPECIAL_TOKENS, TextTokenizer, WordTokenizer, tokenize_texts, tokenizer_from_state
from lamina.text.loaders import BucketDataLoader, LMDataLoader

__all__ = [
    "Numericalize",
    "TextBlock",
    "TextDataLoaders",
    "Tokenize",
    "Tokens",
    "build_vocab",
]


class Tokens(list[str]):
    """Decoded tokens of a text (what ``Numericalize`` decodes ids into, before ``Tokenize`` joins them).

    Examples:
        >>> Tokens(["xxbos", "hi"])
        ['xxbos', 'hi']
    """


def build_vocab(counts: Counter[str], min_freq: int = 3, max_vocab: int = 60000) -> list[str]:
    """A vocabulary: the special tokens first, then the tokens seen at least ``min_freq`` times, most frequent first
    (ties alphabetical), at most ``max_vocab`` entries in all.

    Args:
        counts: how often each token occurs in the training texts.
        min_freq: the fewest occurrences to get an id.
        max_vocab: the largest vocabulary (special tokens included).

    Examples:
        >>> build_vocab(Counter({"the": 5, "cat": 3, "dog": 3, "rare": 1}), min_freq=2)
        ['xxunk', 'xxpad', 'xxbos', 'xxeos', 'xxmaj', 'xxup', 'xxrep', 'xxwrep', 'the', 'cat', 'dog']
    """
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    if max_vocab <= len(SPECIAL_TOKENS):
        raise ValueError(f"max_vocab must exceed the {len(SPECIAL_TOKENS)} special tokens, got {max_vocab}")
    specials = set(SPECIAL_TOKENS)
    words = sorted((t for t, c in counts.items() if c >= min_freq and t not in specials), key=lambda t: (-counts[t], t))
    return [*SPECIAL_TOKENS, *words[: max_vocab - len(SPECIAL_TOKENS)]]


@exportable
class Tokenize(Transform):
    """A string to its tokens with ``tokenizer`` (token lists pass through: the factories tokenize up front);
    decodes tokens back into readable text. A subword tokenizer not yet trained is trained in ``setups`` on the
    training texts.

    Args:
        tokenizer: a word or subword tokenizer, or its ``state()``; ``WordTokenizer()`` when ``None``.

    Examples:
        >>> t = Tokenize()
        >>> t("Hello AI"), t.decode(Tokens(t("Hello AI")))
        (['xxbos', 'xxmaj', 'hello', 'xxup', 'ai'], 'Hello AI')
    """

    order = 0

    def __init__(self, tokenizer: TextTokenizer | dict[str, Any] | None = None) -> None:
        super().__init__()
        if isinstance(tokenizer, dict):
            tokenizer = tokenizer_from_state(tokenizer)
        self.tokenizer: TextTokenizer = tokenizer if tokenizer is not None else WordTokenizer()

    def get_config(self) -> dict[str, Any]:
        """The tokenizer as data (see ``tokenizer.state()``)."""
        return {"tokenizer": self.tokenizer.state()}

    def setups(self, items: Any) -> None:
        if not self.tokenizer.is_trained:
            self.tokenizer.train(t for t in items if isinstance(t, str))

    def encodes(self, x: str) -> list:
        return self.tokenizer.tokenize(x)

    @decodes
    def _text(self, x: Tokens) -> TitledStr:
        return TitledStr(self.tokenizer.decode(x))


@exportable
class Numericalize(Transform):
    """Tokens to a :class:`~lamina.core.tensors.TensorText` of ids; the vocabulary ``vocab_`` is learned from the
    training texts (see :func:`build_vocab`) unless given. Unknown tokens get the id of ``xxunk`` (0).

    Args:
        vocab: a fixed vocabulary (it must hold ``xxunk`` first and ``xxpad``); learned when ``None``.
        min_freq: the fewest occurrences in the training texts for a token to get an id.
        max_vocab: the largest vocabulary.

    Examples:
        >>> num = Numericalize(min_freq=1)
        >>> num.setup([["xxbos", "a", "b", "a"]])
        >>> ids = num(["xxbos", "a", "zebra"])
        >>> ids.tolist(), num.vocab_[8:], num.decode(ids)
        ([2, 8, 0], ['a', 'b'], ['xxbos', 'a', 'xxunk'])
    """

    order = 1
    _o2i_for: list[str] | None = None

    def __init__(self, vocab: Sequence[str] | None = None, min_freq: int = 3, max_vocab: int = 60000) -> None:
        super().__init__()
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        self.vocab = list(vocab) if vocab is not None else None
        self.min_freq, self.max_vocab = min_freq, max_vocab
        self.vocab_: list[str] | None = None
        if self.vocab is not None:
            if not self.vocab or self.vocab[0] != SPECIAL_TOKENS[0] or PAD not in self.vocab:
                raise ValueError(f"a vocab must start with {SPECIAL_TOKENS[0]!r} and hold {PAD!r}: build it with "
                                 "build_vocab(counts) or take dls.text_vocab")  # fmt: skip
            self.vocab_ = list(self.vocab)

    def setups(self, items: Any) -> None:
        if self.vocab is not None:
            return
        counts: Counter[str] = Counter()
        for tokens in items:
            if isinstance(tokens, str):
                raise TypeError(f"Numericalize learns from token lists, got the string {tokens[:50]!r}: put "
                                "Tokenize before it")  # fmt: skip
            counts.update(tokens)
        self.vocab_ = build_vocab(counts, self.min_freq, self.max_vocab)

    def _index(self) -> dict[str, int]:
        if self.vocab_ is None:
            raise ValueError("Numericalize has no vocab: set it up on training tokens first (or pass vocab=)")
        if self._o2i_for is not self.vocab_:
            self._o2i = {t: i for i, t in enumerate(self.vocab_)}
            self._o2i_for = self.vocab_
        return self._o2i

    def encodes(self, x: list) -> TensorText:
        o2i = self._index()
        return retype(torch.from_numpy(np.array([o2i.get(t, 0) for t in x], dtype=np.int64)), TensorText)

    @decodes
    def _tokens(self, x: TensorText) -> Tokens:
        assert self.vocab_ is not None
        pad = self._index().get(PAD)
        return Tokens(self.vocab_[i] for i in x.reshape(-1).tolist() if i != pad)


class TextBlock(TransformBlock):
    """Texts for a DataBlock: ``Tokenize`` then ``Numericalize``, with the language-model loader (``is_lm``) or the
    bucketed classifier loader, and :class:`TextDataLoaders` as the result.

    Args:
        tokenizer: the tokenizer; ``WordTokenizer()`` when ``None``.
        is_lm: for a language model (items are texts only; batches are ``(x, y)`` token runs).
        seq_len: a language model's tokens per row.
        min_freq: see :class:`Numericalize`.
        max_vocab: see :class:`Numericalize`.
        vocab: a fixed token vocabulary (e.g. the language model's, to fine-tune a classifier on it).

    Examples:
        >>> df = pd.DataFrame({"text": ["good car", "bad car", "good ride", "bad ride"] * 5,
        ...                    "label": ["pos", "neg", "pos", "neg"] * 5})
        >>> dblock = DataBlock((TextBlock(min_freq=1), CategoryBlock), get_x=itemgetter("text"),
        ...                    get_y=itemgetter("label"))
        >>> dls = dblock.dataloaders(df.to_dict("records"), bs=4)
        >>> type(dls).__name__, dls.vocab, dls.pad_idx, dls.one_batch()[0].shape[0]
        ('TextDataLoaders', ['neg', 'pos'], 1, 4)
    """

    def __init__(self, tokenizer: TextTokenizer | None = None, is_lm: bool = False, seq_len: int = 72,
                 min_freq: int = 3, max_vocab: int = 60000, vocab: Sequence[str] | None = None) -> None:  # fmt: skip
        dl_kwargs: dict[str, Any] = {"dl_type": LMDataLoader if is_lm else BucketDataLoader,
                                     "dls_type": TextDataLoaders}  # fmt: skip
        if is_lm:
            dl_kwargs["seq_len"] = seq_len
        super().__init__(type_tfms=[Tokenize(tokenizer), Numericalize(vocab, min_freq, max_vocab)],
                         dl_kwargs=dl_kwargs)  # fmt: skip
        self.is_lm, self.seq_len = is_lm, seq_len


def _splits(n: int, valid_pct: float, seed: int | None, valid: Any) -> tuple[list[int], list[int]]:
    """Training and validation indices: rows where ``valid`` is true, else a random ``valid_pct``."""
    if valid is not None:
        mask = np.asarray(valid, dtype=bool).reshape(-1)
        if len(mask) != n:
            raise ValueError(f"the validation mask has {len(mask)} entries for {n} texts")
        return np.flatnonzero(~mask).tolist(), np.flatnonzero(mask).tolist()
    train, valid_idx = RandomSplitter(valid_pct, seed=DEFAULT_SPLIT_SEED if seed is None else seed)(range(n))
    return list(train), list(valid_idx)


class _FileTexts(Sequence[str]):
    """The contents of text files, read when asked for (so a corpus of files streams through tokenization)."""

    def __init__(self, paths: Sequence[Path], encoding: str) -> None:
        self.paths, self.encoding = list(paths), encoding

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.paths[i].read_text(encoding=self.encoding)


class TextDataLoaders(DataLoaders):
    """Text DataLoaders (a language model's or a classifier's) in one call, and what the text models need from them.

    The factories tokenize every text first (:func:`~lamina.text.core.tokenize_texts`: ``n_workers`` processes,
    cached in ``cache_dir`` when given), train a subword tokenizer on the training texts when it needs it, then build
    a :class:`~lamina.data.block.DataBlock` of a :class:`TextBlock` (and a ``CategoryBlock`` for a classifier).

    Examples:
        >>> df = pd.DataFrame({"text": ["I love it", "I hate it"] * 10, "label": ["pos", "neg"] * 10})
        >>> dls = TextDataLoaders.from_df(df, label_col="label", min_freq=1, bs=4, seed=0)
        >>> dls.vocab, dls.text_vocab[:2], dls.pad_idx, dls.train.one_batch()[0].shape
        (['neg', 'pos'], ['xxunk', 'xxpad'], 1, torch.Size([4, 5]))
    """

    def _loader(self) -> LMDataLoader | BucketDataLoader:
        dl = self.train
        if not isinstance(dl, (LMDataLoader, BucketDataLoader)):
            raise TypeError(f"TextDataLoaders holds text loaders (LMDataLoader, BucketDataLoader), got {dl!r}")
        return dl

    @property
    def is_lm(self) -> bool:
        """Whether these are a language model's loaders."""
        return isinstance(self.train, LMDataLoader)

    def _text_tfm(self, cls: type) -> Any:
        tls = getattr(self.train.dataset, "tls", None)
        return next((t for t in reversed(tls[0].tfms.fs) if isinstance(t, cls)), None) if tls else None

    @property
    def text_vocab(self) -> list[str] | None:
        """The token vocabulary (``None`` for loaders built from ids)."""
        num = self._text_tfm(Numericalize)
        return list(num.vocab_) if num is not None and num.vocab_ is not None else None

    @property
    def vocab(self) -> list[Any] | None:
        """The class names of a classifier; the token vocabulary of a language model."""
        if self.is_lm:
            return self.text_vocab
        return super().vocab

    @property
    def pad_idx(self) -> int:
        """The padding id."""
        pad = getattr(self.train, "pad_idx", None)
        if pad is not None:
            return int(pad)
        vocab = self.text_vocab
        return vocab.index(PAD) if vocab is not None else 1

    @property
    def tokenizer(self) -> TextTokenizer | None:
        """The tokenizer the texts went through (``None`` for loaders built from ids)."""
        tok = self._text_tfm(Tokenize)
        return tok.tokenizer if tok is not None else None

    def encode(self, text: str) -> TensorText:
        """One text as the ids these loaders' pipeline gives it (tokenized, numericalized).

        Examples:
            >>> dls = TextDataLoaders.from_df(pd.DataFrame({"text": ["a b c d"] * 20}), is_lm=True, bs=2,
            ...                               seq_len=4, min_freq=1)
            >>> dls.encode("a d z").tolist(), dls.decode_ids(dls.encode("a d z"))
            ([2, 8, 11, 0], 'a d xxunk')
        """
        tok, num = self._text_tfm(Tokenize), self._text_tfm(Numericalize)
        if tok is None or num is None:
            raise ValueError("these loaders were built from ids: encode texts with the tokenizer that made them")
        return TensorText(num(tok(text)))

    def decode_ids(self, ids: Any) -> str:
        """Readable text from token ids (padding dropped)."""
        return self._loader().decode_text(torch.as_tensor(ids))

    def table(self, b: Any = None, max_n: int = 9) -> pd.DataFrame:
        """A DataFrame of a training batch, decoded: text and target columns (see the loaders' ``table``)."""
        return self._loader().table(b, max_n)

    def test_dl(self, items: Any, with_labels: bool = False, **kwargs: Any) -> Any:
        """A loader over new texts (or ``(text, label)`` pairs ``with_labels``) in the given order.

        Examples:
            >>> df = pd.DataFrame({"text": ["I love it", "I hate it"] * 10, "label": ["pos", "neg"] * 10})
            >>> dls = TextDataLoaders.from_df(df, label_col="label", min_freq=1, bs=4)
            >>> (x,) = dls.test_dl(["love", "I hate it"]).one_batch()
            >>> dls.decode_ids(x[0]), x[0].tolist()[:3]
            ('love', [1, 1, 1])
        """
        rows = [tuple(o) if with_labels else (o,) for o in items]
        base = self.loaders[1] if len(self.loaders) > 1 else self.loaders[0]
        ds = base.dataset.new(rows, with_labels=with_labels)
        extra = {} if self.is_lm else {"sort": False}
        return base.new(dataset=ds, shuffle=False, drop_last=False, **{**extra, **kwargs})

    @classmethod
    def from_df(
        cls,
        df: pd.DataFrame,
        text_col: str = "text",
        label_col: str | None = None,
        valid_pct: float = 0.2,
        valid_col: str | None = None,
        is_lm: bool = False,
        seed: int | None = None,
        bs: int = 64,
        seq_len: int = 72,
        tokenizer: TextTokenizer | None = None,
        min_freq: int = 3,
        max_vocab: int = 60000,
        text_vocab: Sequence[str] | None = None,
        n_workers: int = 1,
        cache_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> TextDataLoaders:
        """Loaders over a DataFrame of texts (and labels for a classifier).

        Args:
            df: the table.
            text_col: the column of texts.
            label_col: the column of labels (a classifier); must be ``None`` with ``is_lm``.
            valid_pct: the random share of rows for validation (used when ``valid_col`` is ``None``).
            valid_col: a boolean column, true for validation rows.
            is_lm: language-model loaders.
            seed: the random split's seed (``DEFAULT_SPLIT_SEED`` when ``None``) and the loaders' seed.
            bs: batch size.
            seq_len: a language model's tokens per row.
            tokenizer: the tokenizer (trained on the training texts if it needs it); ``WordTokenizer()``.
            min_freq: see :class:`Numericalize`.
            max_vocab: see :class:`Numericalize`.
            text_vocab: a fixed token vocabulary (e.g. a language model's ``dls.text_vocab``).
            n_workers: tokenizing processes.
            cache_dir: cache the tokens there (see :func:`~lamina.text.core.tokenize_texts`).
            **kwargs: passed to the loaders (``val_bs``, ``device``...).
        """
        for col in (text_col, label_col, valid_col):
            if col is not None and col not in df.columns:
                raise KeyError(f"column {col!r} is not in the DataFrame; its columns are {list(df.columns)}")
        if is_lm and label_col is not None:
            raise ValueError("a language model's texts have no labels: drop label_col, or use is_lm=False")
        if not is_lm and label_col is None:
            raise ValueError("a classifier needs label_col (the column of labels), or pass is_lm=True")
        texts = df[text_col].tolist()
        labels = df[label_col].tolist() if label_col is not None else None
        valid = df[valid_col].to_numpy() if valid_col is not None else None
        splits = _splits(len(texts), valid_pct, seed, valid)
        return cls._from_texts(texts, labels, splits, is_lm, seed, bs, seq_len, tokenizer, min_freq, max_vocab,
                               text_vocab, n_workers, cache_dir, **kwargs)  # fmt: skip

    @classmethod
    def _from_texts(cls, texts: Sequence[str], labels: Sequence[Any] | None, splits: tuple[list[int], list[int]],
                    is_lm: bool, seed: int | None, bs: int, seq_len: int, tokenizer: TextTokenizer | None,
                    min_freq: int, max_vocab: int, text_vocab: Sequence[str] | None, n_workers: int,
                    cache_dir: str | Path | None, **kwargs: Any) -> TextDataLoaders:  # fmt: skip
        """The shared recipe: train the tokenizer if needed, tokenize everything, build the DataBlock."""
        tok = tokenizer if tokenizer is not None else WordTokenizer()
        if not tok.is_trained:
            tok.train(texts[i] for i in splits[0])
        tokens = tokenize_texts(texts, tok, n_workers=n_workers, cache_dir=cache_dir).to_list()
        block = TextBlock(tok, is_lm, seq_len, min_freq, max_vocab, text_vocab)
        if is_lm:
            dblock = DataBlock(blocks=(block,), get_x=itemgetter(0), splitter=IndexSplitter(splits[1]))
            items: list[Any] = [(t,) for t in tokens]
        else:
            assert labels is not None
            dblock = DataBlock(blocks=(block, CategoryBlock), get_x=itemgetter(0), get_y=itemgetter(1),
                               splitter=IndexSplitter(splits[1]))  # fmt: skip
            items = list(zip(tokens, labels))
        dls = dblock.dataloaders(items, bs=bs, seed=seed, **kwargs)
        assert isinstance(dls, TextDataLoaders)
        return dls

    @classmethod
    def from_csv(cls, csv: str | Path, encoding: str = "utf-8", **kwargs: Any) -> TextDataLoaders:
        """Loaders over a CSV file of texts: read with pandas (empty cells and texts such as ``NA`` stay strings),
        then :meth:`from_df`.

        Args:
            csv: the file.
            encoding: its text encoding (e.g. ``"latin-1"``).
            **kwargs: passed to :meth:`from_df` (``text_col``, ``label_col``, ``is_lm``...).

        Examples:
            >>> import tempfile
            >>> path = Path(tempfile.mkdtemp()) / "t.csv"
            >>> pd.DataFrame({"text": ["yes sir", "no way"] * 10, "label": ["y", "n"] * 10}).to_csv(path)
            >>> TextDataLoaders.from_csv(path, label_col="label", min_freq=1, bs=4).vocab
            ['n', 'y']
        """
        return cls.from_df(pd.read_csv(csv, encoding=encoding, keep_default_na=False), **kwargs)

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        train: str = "train",
        valid: str = "valid",
        valid_pct: float | None = None,
        is_lm: bool = False,
        extensions: Iterable[str] = (".txt",),
        encoding: str = "utf-8",
        seed: int | None = None,
        **kwargs: Any,
    ) -> TextDataLoaders:
        """Loaders over text files: a classifier's labels are the names of the files' folders
        (``path/train/<label>/*.txt`` and ``path/valid/<label>/*.txt``); a language model reads every file.

        Files are read when tokenized, one chunk at a time. With ``valid_pct`` the files under ``path/train`` (every
        file under ``path`` for a language model) are split at random; else ``valid`` is the validation folder.

        Args:
            path: the data folder.
            train: the training folder's name.
            valid: the validation folder's name.
            valid_pct: split randomly instead of by folder.
            is_lm: language-model loaders.
            extensions: the suffixes of text files.
            encoding: the files' text encoding.
            seed: see :meth:`from_df`.
            **kwargs: passed on as in :meth:`from_df` (``bs``, ``seq_len``, ``tokenizer``, ``n_workers``...).

        Examples:
            >>> import tempfile
            >>> root = Path(tempfile.mkdtemp())
            >>> for split, label, k in [(s, lab, k) for s in ("train", "valid") for lab in ("neg", "pos")
            ...                         for k in range(4)]:
            ...     (root / split / label).mkdir(parents=True, exist_ok=True)
            ...     _ = (root / split / label / f"{k}.txt").write_text(f"so {label} {k}")
            >>> dls = TextDataLoaders.from_folder(root, min_freq=1, bs=2)
            >>> dls.vocab, len(dls.train.dataset), len(dls.valid.dataset)
            (['neg', 'pos'], 8, 8)
        """
        path = Path(path)
        if valid_pct is not None:
            files = get_files(path if is_lm else path / train, extensions=extensions)
            texts = _FileTexts(files, encoding)
            splits = _splits(len(files), valid_pct, seed, None)
        else:
            train_files = get_files(path / train, extensions=extensions)
            valid_files = get_files(path / valid, extensions=extensions)
            files = train_files + valid_files
            texts = _FileTexts(files, encoding)
            splits = (list(range(len(train_files))), list(range(len(train_files), len(files))))
        if not files:
            raise ValueError(f"no files ending in {tuple(extensions)} under {path}: check the path and extensions")
        labels = None if is_lm else [p.parent.name for p in files]
        args = {"bs": 64, "seq_len": 72, "tokenizer": None, "min_freq": 3, "max_vocab": 60000, "text_vocab": None,
                "n_workers": 1, "cache_dir": None}  # fmt: skip
        own = {k: kwargs.pop(k, v) for k, v in args.items()}
        return cls._from_texts(texts, labels, splits, is_lm, seed, **own, **kwargs)

    @classmethod
    def from_ids(cls, ids: Sequence[Sequence[int]], labels: Sequence[Any], valid_idx: Sequence[int], pad_idx: int,
                 bs: int = 64, seed: int | None = None, vocab: Sequence[Any] | None = None,
                 **kwargs: Any) -> TextDataLoaders:  # fmt: skip
        """Classifier loaders over texts already turned into ids (e.g. by a Hugging Face tokenizer).

        Args:
            ids: each text's token ids.
            labels: each text's label (class names, learned as a vocab from the training labels unless ``vocab``).
            valid_idx: the indices of the validation texts.
            pad_idx: the padding id of that tokenizer.
            bs: batch size.
            seed: the loaders' seed.
            vocab: the class names in order.
            **kwargs: passed to the loaders.

        Examples:
            >>> dls = TextDataLoaders.from_ids([[5, 6], [7], [8, 9, 9], [5]], ["a", "b", "a", "b"], [3], pad_idx=0,
            ...                                bs=3)
            >>> x, y = dls.train.one_batch()
            >>> x.tolist(), y.tolist(), dls.vocab, dls.pad_idx
            ([[8, 9, 9], [0, 5, 6], [0, 0, 7]], [0, 0, 1], ['a', 'b'], 0)
        """
        from lamina.data.core import Datasets

        if len(ids) != len(labels):
            raise ValueError(f"got {len(ids)} id lists but {len(labels)} labels: give one label per text")
        valid_set = {int(i) for i in valid_idx}
        splits = [[i for i in range(len(ids)) if i not in valid_set], sorted(valid_set)]
        items = [(list(map(int, t)), y) for t, y in zip(ids, labels)]
        dsets = Datasets(items, tfms=[[_Element(0), _AsTensorText()], [_Element(1), Categorize(vocab=vocab)]],
                         splits=splits, n_inp=1)  # fmt: skip
        dls = dsets.dataloaders(bs=bs, seed=seed, dl_type=BucketDataLoader, dls_type=cls, pad_idx=pad_idx, **kwargs)
        assert isinstance(dls, TextDataLoaders)
        return dls


@exportable
class _Element(ItemTransform):
    """Element ``k`` of an item tuple."""

    order = -100

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def encodes(self, x: Any) -> Any:
        return x[self.k]


@exportable
class _AsTensorText(Transform):
    """A list of ids as a ``TensorText``."""

    def encodes(self, x: list) -> TensorText:
        return retype(torch.from_numpy(np.array(x, dtype=np.int64)), TensorText)
