"""Loaders of (user, item) -> rating data: vocabularies from the training split, batches by slicing tensors.

A batch is ``(x, y)``: ``x`` a LongTensor ``N x 2`` of (user index, item index) and ``y`` a float tensor ``N`` of
ratings. Index 0 of each vocabulary is ``"#na#"``: validation rows whose user or item never appears in the training
split get it (their embedding is zero, so the prediction leans on the other side's bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lamina.collab.core import encode_names, make_vocab
from lamina.data.load import DataLoader, DataLoaders, TensorSource

__all__ = ["CollabDataLoaders", "encode_ratings", "resolve_columns", "valid_mask"]

_ROLES = ("user", "item", "rating")
_PAIR = ("user", "item")


def resolve_columns(
    ratings: pd.DataFrame, user_name: str | None, item_name: str | None, rating_name: str | None
) -> dict[str, str]:
    """The user, item and rating column names: the given ones, else the first, second and third columns.

    Args:
        ratings: the data frame.
        user_name: the user column (first column when ``None``).
        item_name: the item column (second column when ``None``).
        rating_name: the rating column (third column when ``None``).

    Examples:
        >>> resolve_columns(pd.DataFrame({"u": [1], "m": [2], "r": [3.0]}), None, None, None)
        {'user': 'u', 'item': 'm', 'rating': 'r'}
    """
    given = {"user": user_name, "item": item_name, "rating": rating_name}
    cols = list(ratings.columns)
    out: dict[str, str] = {}
    for k, role in enumerate(_ROLES):
        name = given[role]
        if name is None:
            if len(cols) <= k:
                raise ValueError(f"no {role} column: the frame has only {cols}; pass {role}_name=...")
            name = str(cols[k])
        elif name not in ratings.columns:
            raise KeyError(f"{role}_name={name!r} is not a column of the ratings; columns are {cols}")
        out[role] = name
    return out


def valid_mask(
    n: int, valid_pct: float = 0.2, seed: int | None = None, valid_idx: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """A boolean mask of the validation rows: ``valid_idx`` (positions or a boolean mask) when given, else each
    row with probability ``valid_pct`` (``numpy.random.default_rng(seed).random(n) < valid_pct``).

    Args:
        n: number of rows.
        valid_pct: fraction of rows to hold out when ``valid_idx`` is ``None``.
        seed: seed of the random split.
        valid_idx: explicit validation rows.

    Examples:
        >>> valid_mask(5, valid_idx=[0, 3]).tolist()
        [True, False, False, True, False]
        >>> int(valid_mask(1000, 0.2, seed=0).sum())
        193
    """
    if valid_idx is None:
        if not 0.0 <= valid_pct < 1.0:
            raise ValueError(f"valid_pct must be in [0, 1), got {valid_pct}")
        return np.random.default_rng(seed).random(n) < valid_pct
    idx = np.asarray(valid_idx)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise ValueError(f"a boolean valid_idx needs one entry per row ({n}), got shape {idx.shape}")
        return idx.copy()
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"valid_idx holds positions outside [0, {n}): min {idx.min()}, max {idx.max()}")
    mask = np.zeros(n, dtype=bool)
    mask[idx.astype(np.int64)] = True
    return mask


def encode_ratings(
    df: pd.DataFrame,
    classes: dict[str, list[Any]],
    columns: dict[str, str],
    unknown: str = "raise",
    with_labels: bool = True,
) -> tuple[Tensor, ...]:
    """``(x, y)`` tensors of a ratings frame (``(x,)`` without labels): x is ``N x 2`` (user, item) indices.

    Args:
        df: rows with the user and item columns (and the rating column when ``with_labels``).
        classes: the vocabularies, ``{"user": [...], "item": [...]}``.
        columns: the column names, ``{"user": ..., "item": ..., "rating": ...}``.
        unknown: ``"raise"`` or ``"na"`` for names not in the vocabularies (see ``encode_names``).
        with_labels: also return the ratings as float32.

    Examples:
        >>> df = pd.DataFrame({"u": ["a", "b"], "m": [10, 20], "r": [4.0, 3.5]})
        >>> classes = {"user": ["#na#", "a", "b"], "item": ["#na#", 10, 20]}
        >>> x, y = encode_ratings(df, classes, {"user": "u", "item": "m", "rating": "r"})
        >>> x.tolist(), y.tolist()
        ([[1, 1], [2, 2]], [4.0, 3.5])
    """
    parts = [
        encode_names(df[columns[k]].to_numpy(dtype=object), classes[k], k, columns[k], unknown)
        for k in ("user", "item")
    ]
    x = torch.stack(parts, dim=1)
    if not with_labels:
        return (x,)
    ratings = pd.to_numeric(df[columns["rating"]], errors="coerce").to_numpy(dtype=np.float32)
    bad = np.flatnonzero(np.isnan(ratings))
    if bad.size:
        raise ValueError(
            f"column {columns['rating']!r} has {bad.size} missing or non-numeric ratings (first at row "
            f"{df.index[bad[0]]!r}: {df[columns['rating']].iloc[bad[0]]!r}); drop or fill them first"
        )
    return x, torch.from_numpy(ratings)


def _check_names(df: pd.DataFrame, columns: dict[str, str]) -> None:
    for role in ("user", "item"):
        missing = df[columns[role]].isna().to_numpy()
        if missing.any():
            row = df.index[np.flatnonzero(missing)[0]]
            raise ValueError(f"{role} column {columns[role]!r} is missing at row {row!r}: drop those rows first")


class CollabDataLoaders(DataLoaders):
    """Training and validation loaders of ratings, with the user and item vocabularies (``classes``).

    Args:
        *loaders: training first, then validation; each over tensors ``(x, y)``.
        classes: ``{"user": vocab, "item": vocab}``, learned on the training split.
        columns: ``{"user": ..., "item": ..., "rating": ...}`` column names.
        path: the folder models and exports go to.
        device: send all loaders' batches there.
        trainable: ``False`` for the placeholder loaders of a loaded learner (no training data).

    Examples:
        >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": ["a", "b", "a", "c", "b"], "r": [5, 3, 4, 2, 1.0]})
        >>> dls = CollabDataLoaders.from_df(df, valid_idx=[4], bs=2)
        >>> dls.classes
        {'user': ['#na#', 1, 2], 'item': ['#na#', 'a', 'b', 'c']}
        >>> xb, yb = dls.valid.one_batch()
        >>> xb.tolist(), yb.tolist()  # user 3 was not in training: index 0
        ([[0, 2]], [1.0])
    """

    def __init__(
        self,
        *loaders: DataLoader,
        classes: dict[str, list[Any]],
        columns: dict[str, str],
        path: str = ".",
        device: torch.device | str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(*loaders, path=path, device=device)
        missing = [k for k in ("user", "item") if k not in classes]
        if missing:
            raise ValueError(f"classes needs a 'user' and an 'item' vocabulary, missing {missing}")
        self.classes, self.columns, self.trainable = classes, columns, trainable

    @classmethod
    def from_df(
        cls,
        ratings: pd.DataFrame,
        user_name: str | None = None,
        item_name: str | None = None,
        rating_name: str | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        valid_idx: Sequence[int] | np.ndarray | None = None,
        bs: int = 64,
        val_bs: int | None = None,
        shuffle: bool = True,
        path: str = ".",
        device: torch.device | str | None = None,
    ) -> CollabDataLoaders:
        """Loaders from a ratings frame, one row per (user, item, rating); vocabularies from the training rows.

        Args:
            ratings: the ratings.
            user_name: the user column (first column when ``None``).
            item_name: the item column (second column when ``None``).
            rating_name: the rating column (third column when ``None``).
            valid_pct: fraction of rows held out at random (when ``valid_idx`` is ``None``).
            seed: seed of the random split and of the shuffling.
            valid_idx: explicit validation rows (positions, or a boolean mask).
            bs: training batch size.
            val_bs: validation batch size (``2 * bs`` when ``None``).
            shuffle: shuffle the training rows each epoch.
            path: the folder models and exports go to.
            device: where batches go.
        """
        columns = resolve_columns(ratings, user_name, item_name, rating_name)
        _check_names(ratings, columns)
        mask = valid_mask(len(ratings), valid_pct, seed, valid_idx)
        train_df, valid_df = ratings[~mask], ratings[mask]
        if not len(train_df):
            raise ValueError("the split leaves no training rows: lower valid_pct or pass fewer valid_idx")
        classes = {k: make_vocab(train_df[columns[k]]) for k in ("user", "item")}
        train = DataLoader(
            TensorSource(*encode_ratings(train_df, classes, columns)), bs=bs, shuffle=shuffle, seed=seed,
            drop_last=shuffle and len(train_df) > bs, device=device,
        )  # fmt: skip
        loaders = [train]
        if len(valid_df):
            valid_tensors = encode_ratings(valid_df, classes, columns, unknown="na")
            loaders.append(train.new(dataset=TensorSource(*valid_tensors), bs=val_bs or 2 * bs, shuffle=False,
                                     drop_last=False))  # fmt: skip
        return cls(*loaders, classes=classes, columns=columns, path=path)

    @classmethod
    def for_inference(
        cls, classes: dict[str, list[Any]], columns: dict[str, str], bs: int = 128, path: str = "."
    ) -> CollabDataLoaders:
        """Loaders with vocabularies but no data (one placeholder row), for a learner loaded from an export:
        they make ``test_dl`` work; fitting on them is refused.

        Args:
            classes: the vocabularies.
            columns: the column names.
            bs: batch size of the loaders ``test_dl`` makes.
            path: the folder models and exports go to.

        Examples:
            >>> dls = CollabDataLoaders.for_inference({"user": ["#na#", 1], "item": ["#na#", "a"]},
            ...                                       {"user": "u", "item": "i", "rating": "r"})
            >>> dls.test_dl([(1, "a")]).one_batch()[0].tolist(), dls.trainable
            ([[1, 1]], False)
        """
        placeholder = TensorSource(torch.zeros(1, 2, dtype=torch.long), torch.full((1,), float("nan")))
        return cls(DataLoader(placeholder, bs=bs), classes=classes, columns=columns, path=path, trainable=False)

    def _frame(self, items: Any, with_labels: bool) -> pd.DataFrame:
        if isinstance(items, pd.DataFrame):
            return items
        roles = ("user", "item", "rating") if with_labels else ("user", "item")
        rows = [tuple(r) for r in items]
        bad = next((r for r in rows if len(r) < len(roles)), None)
        if bad is not None:
            raise ValueError(f"each item must be a ({', '.join(roles)}) tuple, got {bad!r}")
        return pd.DataFrame([r[: len(roles)] for r in rows], columns=[self.columns[k] for k in roles])

    def test_dl(
        self, items: Any, with_labels: bool = False, unknown: str = "raise", bs: int | None = None, **kwargs: Any
    ) -> DataLoader:
        """A loader over new (user, item) pairs, by name: a frame with the user and item columns, or a list of
        ``(user, item)`` tuples (``(user, item, rating)`` with labels).

        Args:
            items: the pairs.
            with_labels: also carry the ratings (the frame's rating column, or the tuples' third element).
            unknown: ``"raise"`` for users/items not seen in training, or ``"na"`` to use the ``"#na#"`` entry.
            bs: batch size (the validation loader's when ``None``).
            **kwargs: other changes to the loader's settings.

        Examples:
            >>> dls = CollabDataLoaders.for_inference({"user": ["#na#", 1], "item": ["#na#", "a"]},
            ...                                       {"user": "u", "item": "i", "rating": "r"})
            >>> dls.test_dl([(1, "a"), (2, "a")], unknown="na").one_batch()[0].tolist()
            [[1, 1], [0, 1]]
        """
        df = self._frame(items, with_labels)
        if not len(df):
            raise ValueError("test_dl got no (user, item) pairs")
        tensors = encode_ratings(df, self.classes, self.columns, unknown=unknown, with_labels=with_labels)
        base = self.loaders[1] if len(self.loaders) > 1 else self.loaders[0]
        changes: dict[str, Any] = {"bs": bs or base.bs, **kwargs}
        return base.new(dataset=TensorSource(*tensors), shuffle=False, drop_last=False, **changes)

    def decode(self, b: tuple[Tensor, ...]) -> pd.DataFrame:
        """A batch ``(x[, y])`` as a table of user and item names (and ratings), columns named as in the data.

        Examples:
            >>> dls = CollabDataLoaders.for_inference({"user": ["#na#", 7], "item": ["#na#", "Heat"]},
            ...                                       {"user": "u", "item": "i", "rating": "r"})
            >>> dls.decode((torch.tensor([[1, 1], [0, 1]]), torch.tensor([4.5, 2.0])))
                  u     i    r
            0     7  Heat  4.5
            1  #na#  Heat  2.0
        """
        x = b[0].detach().cpu().long()
        table: dict[str, Any] = {
            self.columns[k]: np.asarray(self.classes[k], dtype=object)[x[:, i].numpy()] for i, k in enumerate(_PAIR)
        }
        if len(b) > 1:
            table[self.columns["rating"]] = b[1].detach().cpu().float().numpy()
        return pd.DataFrame(table)

    def show_batch(self, b: Any = None, max_n: int = 10, **kwargs: Any) -> pd.DataFrame:
        """Print and return up to ``max_n`` rows of a training batch as user and item names with their ratings.

        Args:
            b: a batch ``(x, y)``; one training batch when ``None``.
            max_n: most rows shown.
            **kwargs: passed to ``DataFrame.to_string``.

        Examples:
            >>> df = pd.DataFrame({"user": [1, 1, 2, 2], "movie": ["Heat", "Up", "Up", "Jaws"], "r": [5, 3, 4, 2.0]})
            >>> shown = CollabDataLoaders.from_df(df, valid_pct=0.0, shuffle=False, bs=4).show_batch(max_n=2)
               user movie    r
            0     1  Heat  5.0
            1     1    Up  3.0
        """
        if b is None and not self.trainable:
            raise ValueError("these loaders hold no training data (a loaded learner): pass a batch, show_batch(b)")
        b = self.train.one_batch() if b is None else b
        df = self.decode(tuple(o[:max_n] for o in b))
        print(df.to_string(**kwargs))
        return df

    def most_rated_items(self, n: int = 50) -> list[Any]:
        """The ``n`` items with the most training ratings, most rated first.

        Examples:
            >>> df = pd.DataFrame({"u": [1, 2, 3, 1], "i": ["x", "y", "y", "z"], "r": [1.0, 2, 3, 4]})
            >>> CollabDataLoaders.from_df(df, valid_pct=0.0).most_rated_items(2)
            ['y', 'x']
        """
        if not self.trainable:
            raise ValueError("these loaders hold no training data (a loaded learner): name the items explicitly")
        x = self.train.dataset.tensors[0]
        counts = torch.bincount(x[:, 1], minlength=len(self.classes["item"]))
        counts[0] = -1  # "#na#" is not an item
        order = torch.sort(counts, descending=True, stable=True).indices[: min(n, len(counts) - 1)]
        return [self.classes["item"][int(i)] for i in order]
