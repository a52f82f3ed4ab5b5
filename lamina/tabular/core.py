"""Tabular data as DataFrames: procs that learn on the training rows, date parts, and column splitting.

A *proc* is a :class:`~lamina.core.transform.Transform` on a :class:`TabularFrame` (a DataFrame plus the names of
its categorical and continuous columns). ``setups`` learns state from the training rows only (vocabularies, fill
values, means); ``encodes`` applies it, vectorised, to any rows; ``decodes`` turns processed columns back into
readable values. Configuration is the ``__init__`` arguments and learned state is attributes ending in ``_``, so a
proc is stored as data (see :func:`~lamina.core.transform.transform_to_state`), never pickled.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lamina.core.transform import Transform, exportable
from lamina.nn.layers import emb_sz_rule

__all__ = [
    "NA_LABEL",
    "Categorify",
    "FillMissing",
    "Normalize",
    "TabularError",
    "TabularFrame",
    "TabularTarget",
    "add_datepart",
    "cont_cat_split",
]

NA_LABEL = "#na#"
_TARGET_KINDS = ("regression", "single", "multi")


class TabularError(ValueError):
    """Bad tabular input: the message names the column or split, the step, and the fix."""


class TabularFrame:
    """A DataFrame with the names of its categorical and continuous columns: what procs read and write.

    Args:
        df: the rows (procs write processed columns into it).
        cat_names: categorical columns.
        cont_names: continuous columns.

    Examples:
        >>> tf = TabularFrame(pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]}), ["a"], ["b"])
        >>> len(tf), tf.rows(np.array([1])).df["a"].tolist()
        (2, ['y'])
    """

    def __init__(self, df: pd.DataFrame, cat_names: Sequence[str], cont_names: Sequence[str]) -> None:
        self.df, self.cat_names, self.cont_names = df, list(cat_names), list(cont_names)

    def copy(self) -> TabularFrame:
        """A frame whose columns can be replaced without touching this one (a shallow, copy-on-write copy)."""
        return TabularFrame(self.df.copy(deep=False), self.cat_names, self.cont_names)

    def rows(self, idx: Any) -> TabularFrame:
        """The frame restricted to the rows at positions ``idx`` (a copy)."""
        return TabularFrame(self.df.iloc[idx], self.cat_names, self.cont_names)

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        return f"TabularFrame({len(self)} rows, cat_names={self.cat_names}, cont_names={self.cont_names})"


def _plain(value: Any) -> Any:
    """A label as a plain Python value (numpy scalars unwrapped) so vocabularies stay JSON-safe."""
    return value.item() if isinstance(value, np.generic) else value


def _sorted_labels(series: pd.Series) -> list[Any]:
    """The distinct non-missing labels of ``series``: category order for categoricals, else sorted."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [_plain(v) for v in series.dtype.categories]
    uniq = [_plain(v) for v in pd.unique(series.dropna())]
    try:
        return sorted(uniq)
    except TypeError:
        return sorted(uniq, key=str)


def _codes(series: pd.Series, labels: Sequence[Any]) -> np.ndarray:
    """Positions of ``series`` values in ``labels`` (0-based), -1 for missing or unseen values; vectorised."""
    return pd.Index(list(labels), dtype=object).get_indexer(series).astype(np.int64)


def _most_frequent(series: pd.Series, k: int) -> set[Any]:
    """The ``k`` most frequent non-missing labels of ``series`` (ties broken by the label's text, so it is stable)."""
    counts = series.value_counts(dropna=True)
    ranked = sorted(zip(counts.index, counts.to_numpy()), key=lambda lc: (-int(lc[1]), str(lc[0])))
    return {_plain(label) for label, _ in ranked[:k]}


@exportable
class Categorify(Transform):
    """Categorical columns to integer codes; the vocabulary of each column is learned on the training rows.

    Code 0 is reserved for ``#na#``: missing values and categories never seen in training map to it.

    A column with more than ``max_card`` distinct training values (an ID, a number given as a category) would get
    a huge embedding that makes every step slow: setting up warns, naming the column and the fixes. The documented
    cap is ``max_vocab``: keep the ``max_vocab`` most frequent labels of each column (ties by label text); the
    others map to ``#na#`` like unseen ones.

    Args:
        max_card: warn about columns with more distinct values than this; ``None`` never warns.
        max_vocab: keep at most this many labels per column (the most frequent); ``None`` keeps them all.

    Examples:
        >>> tf = TabularFrame(pd.DataFrame({"cut": ["Ideal", "Good", "Ideal"]}), ["cut"], [])
        >>> proc = Categorify()
        >>> proc.setup(tf.rows([0, 1]))
        >>> proc.classes_["cut"]
        ['#na#', 'Good', 'Ideal']
        >>> new = TabularFrame(pd.DataFrame({"cut": ["Good", "Fair", None]}), ["cut"], [])
        >>> proc(new).df["cut"].tolist()
        [1, 0, 0]
        >>> proc.decode(proc(new)).df["cut"].tolist()
        ['Good', '#na#', '#na#']
        >>> capped = Categorify(max_vocab=1)
        >>> capped.setup(tf)
        >>> capped.classes_["cut"]
        ['#na#', 'Ideal']
    """

    order = 1

    def __init__(self, max_card: int | None = 10_000, max_vocab: int | None = None) -> None:
        super().__init__()
        for name, value in (("max_card", max_card), ("max_vocab", max_vocab)):
            if value is not None and value < 1:
                raise ValueError(f"Categorify: {name} must be >= 1 or None, got {value}")
        self.max_card, self.max_vocab = max_card, max_vocab

    def setups(self, to: TabularFrame) -> None:
        self.classes_ = {c: [NA_LABEL, *self._labels(to.df[c], c)] for c in to.cat_names}

    def _labels(self, series: pd.Series, name: str) -> list[Any]:
        labels = _sorted_labels(series)
        if self.max_vocab is not None and len(labels) > self.max_vocab:
            keep = _most_frequent(series, self.max_vocab)
            labels = [v for v in labels if v in keep]
        if self.max_card is not None and len(labels) > self.max_card:
            n, width = len(labels), emb_sz_rule(len(labels) + 1)
            warnings.warn(
                f"Categorify: categorical column {name!r} has {n:,} distinct values in the training rows (more than "
                f"max_card={self.max_card:,}): its embedding would have {n + 1:,} rows x {width} = "
                f"{(n + 1) * width:,} weights and slow every step. If it is an ID, drop it; if it is a number, move "
                "it to cont_names; or keep the most frequent labels with Categorify(max_vocab=...) (the rest become "
                "'#na#'). Categorify(max_card=None) silences this",
                UserWarning,
                stacklevel=2,
            )
        return labels

    def encodes(self, to: TabularFrame) -> TabularFrame:
        to = to.copy()
        for c, vocab in self.classes_.items():
            to.df[c] = _codes(to.df[c], vocab[1:]) + 1
        return to

    def decodes(self, to: TabularFrame) -> TabularFrame:
        to = to.copy()
        for c, vocab in self.classes_.items():
            to.df[c] = np.asarray(vocab, dtype=object)[to.df[c].to_numpy(np.int64)]
        return to


@exportable
class FillMissing(Transform):
    """Fill missing continuous values (median of the training rows by default) and flag them in ``<col>_na``.

    A ``<col>_na`` column (a new categorical) is added for each continuous column that has missing values in the
    training rows; missing values that only appear later are filled without a flag (the model's inputs are fixed).

    Args:
        fill_strategy: ``"median"``, ``"mean"`` or ``"constant"``.
        fill_value: the value used by ``"constant"``, and for a column with no training value at all.
        add_col: add the ``<col>_na`` indicator columns.

    Examples:
        >>> tf = TabularFrame(pd.DataFrame({"carat": [1.0, None, 3.0, 10.0]}), [], ["carat"])
        >>> proc = FillMissing()
        >>> proc.setup(tf.rows([0, 1, 2]))
        >>> out = proc(tf)
        >>> proc.fill_, out.df["carat"].tolist(), out.df["carat_na"].tolist(), out.cat_names
        ({'carat': 2.0}, [1.0, 2.0, 3.0, 10.0], [False, True, False, False], ['carat_na'])
    """

    order = 0

    def __init__(self, fill_strategy: str = "median", fill_value: float = 0.0, add_col: bool = True) -> None:
        super().__init__()
        if fill_strategy not in ("median", "mean", "constant"):
            raise ValueError(f"fill_strategy must be 'median', 'mean' or 'constant', got {fill_strategy!r}")
        self.fill_strategy, self.fill_value, self.add_col = fill_strategy, float(fill_value), add_col

    def setups(self, to: TabularFrame) -> None:
        df = to.df[to.cont_names]
        if self.fill_strategy == "constant":
            stats = pd.Series(self.fill_value, index=to.cont_names)
        else:
            stats = df.median() if self.fill_strategy == "median" else df.mean()
        self.fill_ = {c: float(self.fill_value if pd.isna(v) else v) for c, v in stats.items()}
        self.na_cols_ = [c for c in to.cont_names if self.add_col and bool(df[c].isna().any())]

    def encodes(self, to: TabularFrame) -> TabularFrame:
        to = to.copy()
        for c, value in self.fill_.items():
            missing = to.df[c].isna()
            if c in self.na_cols_:
                to.df[f"{c}_na"] = missing.to_numpy()
            if missing.any():
                to.df[c] = to.df[c].fillna(value)
        flags = [f"{c}_na" for c in self.na_cols_ if f"{c}_na" not in to.cat_names]
        return TabularFrame(to.df, [*to.cat_names, *flags], to.cont_names)


@exportable
class Normalize(Transform):
    """Continuous columns to zero mean and unit variance, with statistics of the training rows.

    Examples:
        >>> tf = TabularFrame(pd.DataFrame({"depth": [1.0, 3.0, 100.0]}), [], ["depth"])
        >>> proc = Normalize()
        >>> proc.setup(tf.rows([0, 1]))
        >>> out = proc(tf)
        >>> proc.means_, [round(v, 3) for v in out.df["depth"]]
        ({'depth': 2.0}, [-1.0, 1.0, 98.0])
        >>> proc.decode(out).df["depth"].tolist()
        [1.0, 3.0, 100.0]
    """

    order = 2

    def __init__(self) -> None:
        super().__init__()

    def setups(self, to: TabularFrame) -> None:
        df = to.df[to.cont_names].astype(np.float64)
        self.means_ = {c: float(v) for c, v in df.mean().fillna(0.0).items()}
        self.stds_ = {c: float(v) if v > 1e-7 else 1.0 for c, v in df.std(ddof=0).fillna(1.0).items()}

    def encodes(self, to: TabularFrame) -> TabularFrame:
        to = to.copy()
        for c, m in self.means_.items():
            to.df[c] = ((to.df[c].to_numpy(np.float64) - m) / self.stds_[c]).astype(np.float32)
        return to

    def decodes(self, to: TabularFrame) -> TabularFrame:
        to = to.copy()
        for c, m in self.means_.items():
            to.df[c] = to.df[c].to_numpy(np.float64) * self.stds_[c] + m
        return to


def _multi_hot(df: pd.DataFrame, label_delim: str | None) -> pd.DataFrame:
    """A multi-label target as one 0/1 column per label: true/false columns as they are, or one column's labels
    joined by ``label_delim`` split into columns (vectorised)."""
    if label_delim is None:
        return df.astype(np.float32)
    return df.iloc[:, 0].fillna("").astype(str).str.get_dummies(sep=label_delim).astype(np.float32)


@exportable
class TabularTarget(Transform):
    """Target columns to a tensor: floats for ``"regression"``, class indices for ``"single"``, multi-hot floats
    for ``"multi"`` (several true/false columns, or one column of labels joined by ``label_delim``).

    Args:
        kind: ``"regression"``, ``"single"`` or ``"multi"``.
        label_delim: for ``"multi"`` with one column, the separator between labels.

    Examples:
        >>> target = TabularTarget("single")
        >>> df = pd.DataFrame({"cut": ["Ideal", "Good", "Ideal"]})
        >>> target.setup(df)
        >>> target.vocab_, target(df).tolist(), target.decode(torch.tensor([1, 0])).tolist()
        (['Good', 'Ideal'], [1, 0, 1], ['Ideal', 'Good'])
    """

    def __init__(self, kind: str = "regression", label_delim: str | None = None) -> None:
        super().__init__()
        if kind not in _TARGET_KINDS:
            raise ValueError(f"y_block must be one of {_TARGET_KINDS}, got {kind!r}")
        self.kind, self.label_delim = kind, label_delim

    def setups(self, df: pd.DataFrame) -> None:
        if self.kind == "single":
            self.vocab_: list[Any] | None = _sorted_labels(df.iloc[:, 0])
        elif self.kind == "multi":
            self.vocab_ = [_plain(c) for c in _multi_hot(df, self.label_delim).columns]
        else:
            self.vocab_ = None

    def encodes(self, df: pd.DataFrame) -> Tensor:
        if self.kind == "regression":
            values = torch.from_numpy(np.array(df.to_numpy(np.float32), order="C"))
            return values[:, 0].clone() if values.shape[1] == 1 else values
        assert self.vocab_ is not None, "TabularTarget: call setup(df) before encoding targets"
        if self.kind == "single":
            codes = _codes(df.iloc[:, 0], self.vocab_)
            if (codes < 0).any():
                bad = df.iloc[:, 0][codes < 0].iloc[0]
                raise TabularError(
                    f"target column {df.columns[0]!r}: label {bad!r} was not in the training rows (vocab "
                    f"{self.vocab_[:8]}); drop those rows or make sure every class appears in training"
                )
            return torch.from_numpy(np.array(codes, order="C"))
        hot = _multi_hot(df, self.label_delim).reindex(columns=self.vocab_, fill_value=0.0)
        return torch.from_numpy(np.array(hot.to_numpy(np.float32), order="C"))

    def decodes(self, y: Tensor) -> Any:
        if self.kind == "regression" or self.vocab_ is None:
            return y.numpy()
        vocab = np.asarray(self.vocab_, dtype=object)
        if self.kind == "single":
            return vocab[y.long().numpy()]
        return [list(vocab[row.numpy() > 0.5]) for row in y]


def add_datepart(df: pd.DataFrame, field_name: str, prefix: str | None = None, drop: bool = True) -> pd.DataFrame:
    """A copy of ``df`` with the date column ``field_name`` expanded into parts (year, month, week, day of week,
    month/quarter/year start and end flags, elapsed seconds).

    Args:
        df: the table.
        field_name: the date column (dates or strings pandas can parse).
        prefix: prefix of the new columns (``field_name`` without a trailing "date" when ``None``).
        drop: remove the original column.

    Examples:
        >>> out = add_datepart(pd.DataFrame({"saledate": ["2024-01-31", "2024-03-01"]}), "saledate")
        >>> out[["saleYear", "saleMonth", "saleIs_month_end", "saleDayofweek", "saleElapsed"]].values.tolist()
        [[2024, 1, True, 2, 1706659200], [2024, 3, False, 4, 1709251200]]
    """
    if field_name not in df.columns:
        raise TabularError(f"add_datepart: no column {field_name!r}; the columns are {list(df.columns)}")
    dates = pd.to_datetime(df[field_name])
    if prefix is None:
        prefix = field_name[:-4] if field_name.lower().endswith("date") else field_name
    parts: dict[str, pd.Series] = {
        "Year": dates.dt.year, "Month": dates.dt.month, "Week": dates.dt.isocalendar().week.astype("int64"),
        "Day": dates.dt.day, "Dayofweek": dates.dt.day_of_week, "Dayofyear": dates.dt.day_of_year,
        "Is_month_end": dates.dt.is_month_end, "Is_month_start": dates.dt.is_month_start,
        "Is_quarter_end": dates.dt.is_quarter_end, "Is_quarter_start": dates.dt.is_quarter_start,
        "Is_year_end": dates.dt.is_year_end, "Is_year_start": dates.dt.is_year_start,
        "Elapsed": (dates - pd.Timestamp(0)) // pd.Timedelta(seconds=1),
    }  # fmt: skip
    out = df.drop(columns=[field_name]) if drop else df.copy()
    return out.assign(**{f"{prefix}{k}": v.to_numpy() for k, v in parts.items()})


def cont_cat_split(
    df: pd.DataFrame, max_card: int = 20, dep_var: str | Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """Split the columns into continuous and categorical names: floats, and integers with more than ``max_card``
    distinct values, are continuous; everything else is categorical.

    Args:
        df: the table.
        max_card: integer columns with at most this many distinct values are categorical.
        dep_var: target column(s) to leave out.

    Examples:
        >>> df = pd.DataFrame({"price": [1.5, 2.0], "cut": ["a", "b"], "n": [1, 2], "y": [0.0, 1.0]})
        >>> cont_cat_split(df, dep_var="y")
        (['price'], ['cut', 'n'])
    """
    skip = {dep_var} if isinstance(dep_var, str) else set(dep_var or ())
    cont: list[str] = []
    cat: list[str] = []
    for c in df.columns:
        if c in skip:
            continue
        dtype = df[c].dtype
        numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        is_cont = pd.api.types.is_float_dtype(dtype) or (numeric and df[c].nunique() > max_card)
        (cont if is_cont else cat).append(c)
    return cont, cat
