"""Vocabularies of users and items, and turning names into embedding indices (pure functions).

A vocabulary is a plain list: ``"#na#"`` first (index 0, reserved for names never seen in training), then the
distinct names of the training split, sorted. Lists of numbers and strings are JSON-safe, so a vocabulary is stored
in an export as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

__all__ = ["NA", "UNKNOWN_POLICIES", "UnknownNameError", "encode_names", "make_vocab"]

NA = "#na#"
UNKNOWN_POLICIES = ("raise", "na")


class UnknownNameError(ValueError):
    """A user or item that was not in the training data, named in the message."""


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (JSON-safe); anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def make_vocab(values: Iterable[Any]) -> list[Any]:
    """``"#na#"`` followed by the distinct values, sorted (kept in order of appearance when they cannot be sorted).

    Missing values (``None``, NaN) are left out: they are never a user or an item.

    Examples:
        >>> make_vocab([3, 1, 3, 2])
        ['#na#', 1, 2, 3]
        >>> make_vocab(np.array(["b", "a", "b"]))
        ['#na#', 'a', 'b']
    """
    distinct = pd.unique(pd.Series(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values))
    kept = [_plain(v) for v in distinct.tolist() if not pd.isna(v)]
    try:
        kept = sorted(kept)
    except TypeError:
        pass
    return [NA, *kept]


def _describe_unknown(names: Sequence[Any], kind: str, column: str | None, vocab: Sequence[Any]) -> str:
    shown = ", ".join(repr(_plain(n)) for n in names[:5]) + (f" (and {len(names) - 5} more)" if len(names) > 5 else "")
    where = f" (column {column!r})" if column else ""
    return (
        f"{kind} {shown}{where} not seen in training ({len(vocab) - 1} known {kind}s, e.g. "
        f"{', '.join(repr(v) for v in vocab[1:4])}): predict only for known {kind}s, or pass unknown='na' to use "
        f"the '#na#' entry (a zero embedding: the prediction falls back on the other side's bias)"
    )


def encode_names(
    names: Sequence[Any] | np.ndarray | pd.Series,
    vocab: Sequence[Any],
    kind: str = "user",
    column: str | None = None,
    unknown: str = "raise",
) -> Tensor:
    """The indices of ``names`` in ``vocab`` as a LongTensor; unknown names raise, or map to 0 (``"#na#"``).

    Args:
        names: users or items, as they appear in the data.
        vocab: a vocabulary from :func:`make_vocab`.
        kind: ``"user"`` or ``"item"``, for messages.
        column: the column the names come from, for messages.
        unknown: ``"raise"`` (an :class:`UnknownNameError` naming them) or ``"na"`` (index 0).

    Examples:
        >>> encode_names([2, 1], ["#na#", 1, 2]).tolist()
        [2, 1]
        >>> encode_names([7], ["#na#", 1, 2], unknown="na").tolist()
        [0]
        >>> encode_names([7], ["#na#", 1, 2], kind="item")
        Traceback (most recent call last):
        ...
        lamina.collab.core.UnknownNameError: item 7 not seen in training (2 known items, ...
    """
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"unknown must be one of {UNKNOWN_POLICIES}, got {unknown!r}")
    values = np.asarray(names, dtype=object) if not isinstance(names, (np.ndarray, pd.Series)) else names
    codes = pd.Index(list(vocab), dtype=object).get_indexer(values)
    missing = codes < 0
    if missing.any():
        if unknown == "raise":
            bad = list(pd.unique(pd.Series(np.asarray(values, dtype=object)[missing])))
            raise UnknownNameError(_describe_unknown(bad, kind, column, vocab))
        codes[missing] = 0
    return torch.from_numpy(codes.astype(np.int64))
