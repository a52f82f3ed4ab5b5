"""Splitters: callables ``items -> (train_idx, valid_idx)`` that decide which items are for validation.

Every splitter returns two lists of ints in item order (shuffling is the DataLoader's job) and raises when a split
would be empty, naming the splitter, what it looked at and how to fix it. Random splitters take a ``seed`` so the
same items always split the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ColSplitter",
    "EndSplitter",
    "FileSplitter",
    "FuncSplitter",
    "GrandparentSplitter",
    "IndexSplitter",
    "MaskSplitter",
    "RandomSplitter",
    "Splits",
    "TrainTestSplitter",
]

Splits = tuple[list[int], list[int]]


def _check_pct(name: str, value: float, step: str) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{step}: {name} must be strictly between 0 and 1, got {value}")


def _from_mask(mask: Any, step: str, hint: str) -> Splits:
    """Training and validation indices from a boolean mask (True: validation); both must be non-empty."""
    m = np.asarray(mask, dtype=bool).reshape(-1)
    valid, train = np.flatnonzero(m).tolist(), np.flatnonzero(~m).tolist()
    if not valid:
        raise ValueError(f"{step} put no item in the validation split ({len(m)} items): {hint}")
    if not train:
        raise ValueError(f"{step} put every one of the {len(m)} items in the validation split: {hint}")
    return train, valid


class RandomSplitter:
    """Put a random ``valid_pct`` of the items in the validation split.

    Args:
        valid_pct: the fraction of items for validation, in (0, 1); ``0`` keeps every item for training (the final
            model, trained on everything: ``fit`` then skips validation).
        seed: makes the split reproducible; ``None`` draws a new split each call.

    Examples:
        >>> train, valid = RandomSplitter(valid_pct=0.25, seed=0)(list("abcdefgh"))
        >>> len(train), len(valid), sorted(train + valid) == list(range(8))
        (6, 2, True)
        >>> RandomSplitter(valid_pct=0)(list("abc"))
        ([0, 1, 2], [])
    """

    def __init__(self, valid_pct: float = 0.2, seed: int | None = None) -> None:
        if valid_pct != 0:
            _check_pct("valid_pct", valid_pct, "RandomSplitter")
        self.valid_pct, self.seed = valid_pct, seed

    def __call__(self, items: Sequence[Any]) -> Splits:
        n = len(items)
        if self.valid_pct == 0:
            return list(range(n)), []
        n_valid = round(self.valid_pct * n)
        mask = np.zeros(n, dtype=bool)
        mask[np.random.default_rng(self.seed).permutation(n)[:n_valid]] = True
        return _from_mask(mask, f"RandomSplitter(valid_pct={self.valid_pct})", "use more items or a larger valid_pct")

    def __repr__(self) -> str:
        return f"RandomSplitter(valid_pct={self.valid_pct}, seed={self.seed})"


def _count(size: float | int | None, n: int, name: str) -> int | None:
    """A split size given as a fraction in (0, 1) or a count in [1, n) as a count of items."""
    if size is None:
        return None
    if isinstance(size, float):
        _check_pct(name, size, "TrainTestSplitter")
        return round(size * n)
    if not 0 < size < n:
        raise ValueError(f"TrainTestSplitter: {name} as a count must be in 1..{n - 1} for {n} items, got {size}")
    return int(size)


def _apportion(total: int, counts: np.ndarray) -> np.ndarray:
    """Split ``total`` across classes in proportion to ``counts`` (largest remainders get the leftovers)."""
    exact = total * counts / counts.sum()
    out = np.floor(exact).astype(np.int64)
    rest = total - int(out.sum())
    order = np.argsort(-(exact - out), kind="stable")
    out[order[:rest]] += 1
    return np.minimum(out, counts)


def _stratified(labels: np.ndarray, n_test: int, n_train: int, rng: np.random.Generator) -> Splits:
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        lonely = classes[int(np.argmin(counts))]
        raise ValueError(
            f"TrainTestSplitter: class '{lonely}' has a single item, too few to stratify: "
            "merge rare classes or drop `stratify`"
        )
    test_k = _apportion(n_test, counts)
    train_k = _apportion(n_train, counts - test_k) if n_train < len(labels) - n_test else counts - test_k
    train: list[int] = []
    test: list[int] = []
    for k in range(len(classes)):
        where = rng.permutation(np.flatnonzero(inverse == k))
        test += where[: test_k[k]].tolist()
        train += where[test_k[k] : test_k[k] + train_k[k]].tolist()
    return sorted(train), sorted(test)


class TrainTestSplitter:
    """Split like scikit-learn's ``train_test_split``, optionally stratified by label (no scikit-learn needed).

    With ``stratify``, every class keeps its share of the items in both splits (up to rounding).

    Args:
        test_size: validation size, a fraction in (0, 1) or a number of items.
        random_state: seed of the shuffle.
        stratify: one label per item, or a function ``item -> label``.
        train_size: training size (fraction or count); the rest of the items when ``None``.
        shuffle: shuffle before splitting; without it the first items train and the next ones validate.

    Examples:
        >>> labels = ["a"] * 8 + ["b"] * 2
        >>> train, valid = TrainTestSplitter(test_size=0.5, random_state=0, stratify=labels)(range(10))
        >>> sorted(labels[i] for i in valid)
        ['a', 'a', 'a', 'a', 'b']
    """

    def __init__(
        self,
        test_size: float | int = 0.2,
        random_state: int | None = None,
        stratify: Sequence[Any] | Callable[[Any], Any] | None = None,
        train_size: float | int | None = None,
        shuffle: bool = True,
    ) -> None:
        if stratify is not None and not shuffle:
            raise ValueError("TrainTestSplitter: stratified splits need shuffle=True (or pass stratify=None)")
        self.test_size, self.random_state, self.stratify = test_size, random_state, stratify
        self.train_size, self.shuffle = train_size, shuffle

    def _labels(self, items: Sequence[Any]) -> np.ndarray | None:
        if self.stratify is None:
            return None
        labels = [self.stratify(o) for o in items] if callable(self.stratify) else list(self.stratify)
        if len(labels) != len(items):
            raise ValueError(f"TrainTestSplitter: stratify has {len(labels)} labels for {len(items)} items")
        return np.asarray([str(o) for o in labels])

    def __call__(self, items: Sequence[Any]) -> Splits:
        n = len(items)
        n_test = _count(self.test_size, n, "test_size") or 0
        n_train = _count(self.train_size, n, "train_size") or n - n_test
        if n_test < 1 or n_train < 1 or n_test + n_train > n:
            raise ValueError(
                f"TrainTestSplitter: {n} items cannot give {n_train} training and {n_test} validation items: "
                "change test_size/train_size or use more items"
            )
        rng = np.random.default_rng(self.random_state)
        labels = self._labels(items)
        if labels is not None:
            return _stratified(labels, n_test, n_train, rng)
        if not self.shuffle:
            return list(range(n_train)), list(range(n_train, n_train + n_test))
        order = rng.permutation(n)
        return sorted(order[n_test : n_test + n_train].tolist()), sorted(order[:n_test].tolist())


class IndexSplitter:
    """Put the items at ``valid_idx`` in the validation split and the others in training.

    Examples:
        >>> IndexSplitter([1, 3])(list("abcde"))
        ([0, 2, 4], [1, 3])
    """

    def __init__(self, valid_idx: Sequence[int]) -> None:
        self.valid_idx = [int(i) for i in valid_idx]
        if not self.valid_idx:
            raise ValueError("IndexSplitter got no validation indices: pass the positions of the validation items")

    def __call__(self, items: Sequence[Any]) -> Splits:
        n = len(items)
        bad = [i for i in self.valid_idx if not 0 <= i < n]
        if bad:
            raise IndexError(f"IndexSplitter: validation index {bad[0]} is out of range for {n} items")
        mask = np.zeros(n, dtype=bool)
        mask[self.valid_idx] = True
        return _from_mask(mask, "IndexSplitter", "give fewer validation indices")


class GrandparentSplitter:
    """Split file paths by the name of their grandparent folder (``train/cat/1.png`` trains).

    Items in neither folder are left out of both splits.

    Args:
        train_name: grandparent folder of the training files.
        valid_name: grandparent folder of the validation files.

    Examples:
        >>> GrandparentSplitter()(["data/train/3/a.png", "data/valid/3/b.png", "data/train/7/c.png"])
        ([0, 2], [1])
    """

    def __init__(self, train_name: str = "train", valid_name: str = "valid") -> None:
        self.train_name, self.valid_name = train_name, valid_name

    def __call__(self, items: Sequence[Any]) -> Splits:
        names = [Path(o).parent.parent.name for o in items]
        train = [i for i, g in enumerate(names) if g == self.train_name]
        valid = [i for i, g in enumerate(names) if g == self.valid_name]
        for split, name in ((train, self.train_name), (valid, self.valid_name)):
            if not split:
                found = sorted(set(names))[:10]
                raise ValueError(
                    f"GrandparentSplitter: no item lies in a folder named {name!r} two levels up "
                    f"(grandparent folders found: {found}): pass train_name/valid_name matching your folders"
                )
        return train, valid


class FuncSplitter:
    """Put the items for which ``func(item)`` is true in the validation split.

    Examples:
        >>> FuncSplitter(lambda o: o % 4 == 0)(range(1, 9))
        ([0, 1, 2, 4, 5, 6], [3, 7])
    """

    def __init__(self, func: Callable[[Any], Any]) -> None:
        if not callable(func):
            raise TypeError(f"FuncSplitter needs a function item -> bool, got {type(func).__name__}")
        self.func = func

    def __call__(self, items: Sequence[Any]) -> Splits:
        mask = [bool(self.func(o)) for o in items]
        return _from_mask(mask, "FuncSplitter", "check that the function returns True for validation items only")


class MaskSplitter:
    """Put the items where ``mask`` is true in the validation split.

    Examples:
        >>> MaskSplitter([False, True, False, True])(list("abcd"))
        ([0, 2], [1, 3])
    """

    def __init__(self, mask: Sequence[bool] | np.ndarray) -> None:
        self.mask = np.asarray(mask, dtype=bool).reshape(-1)

    def __call__(self, items: Sequence[Any]) -> Splits:
        if len(self.mask) != len(items):
            raise ValueError(f"MaskSplitter: the mask has {len(self.mask)} entries for {len(items)} items")
        return _from_mask(self.mask, "MaskSplitter", "the mask needs both True (validation) and False entries")


class FileSplitter:
    """Put the files whose names are listed (one a line) in the text file ``fname`` in the validation split.

    Examples:
        >>> import tempfile, os
        >>> listing = os.path.join(tempfile.mkdtemp(), "valid.txt")
        >>> _ = open(listing, "w").write("b.png\\n")
        >>> FileSplitter(listing)(["x/a.png", "x/b.png", "x/c.png"])
        ([0, 2], [1])
    """

    def __init__(self, fname: str | Path) -> None:
        self.fname = Path(fname)

    def __call__(self, items: Sequence[Any]) -> Splits:
        if not self.fname.is_file():
            raise FileNotFoundError(f"FileSplitter: the list of validation files {self.fname} does not exist")
        names = {line.strip() for line in self.fname.read_text().splitlines() if line.strip()}
        mask = [Path(o).name in names for o in items]
        hint = f"{self.fname} lists {len(names)} names; they are matched against each item's file name"
        return _from_mask(mask, "FileSplitter", hint)


class ColSplitter:
    """Split DataFrame rows by a boolean column (true: validation).

    Examples:
        >>> df = pd.DataFrame({"x": [1, 2, 3], "is_valid": [False, True, False]})
        >>> ColSplitter()(df)
        ([0, 2], [1])
    """

    def __init__(self, col: str | int = "is_valid") -> None:
        self.col = col

    def __call__(self, items: Any) -> Splits:
        if not isinstance(items, pd.DataFrame):
            raise TypeError(f"ColSplitter splits DataFrame rows, got {type(items).__name__}: pass a DataFrame")
        if self.col not in items.columns:
            raise KeyError(
                f"ColSplitter: column {self.col!r} is missing; the DataFrame has {list(items.columns)[:20]}: "
                "pass col=<the name of the boolean validation column>"
            )
        mask = items[self.col].fillna(False).astype(bool).to_numpy()
        return _from_mask(mask, f"ColSplitter({self.col!r})", f"column {self.col!r} needs both True and False rows")


class EndSplitter:
    """Put the last (or first) ``valid_pct`` of the items in the validation split (for time-ordered data).

    Args:
        valid_pct: the fraction of items for validation, in (0, 1).
        valid_last: take the validation items from the end; from the start when False.

    Examples:
        >>> EndSplitter(valid_pct=0.25)(list("abcdefgh"))
        ([0, 1, 2, 3, 4, 5], [6, 7])
    """

    def __init__(self, valid_pct: float = 0.2, valid_last: bool = True) -> None:
        _check_pct("valid_pct", valid_pct, "EndSplitter")
        self.valid_pct, self.valid_last = valid_pct, valid_last

    def __call__(self, items: Sequence[Any]) -> Splits:
        n = len(items)
        n_valid = round(self.valid_pct * n)
        mask = np.zeros(n, dtype=bool)
        if n_valid:
            mask[n - n_valid :] = True
        mask = mask if self.valid_last else mask[::-1]
        return _from_mask(mask, f"EndSplitter(valid_pct={self.valid_pct})", "use more items or a larger valid_pct")
