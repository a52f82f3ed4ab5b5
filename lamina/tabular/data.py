"""Tabular datasets and loaders: a DataFrame processed once into tensors, batched by slicing.

:class:`TabularProcessor` holds the procs, the column names and the target encoder: it learns on the training rows
and turns any DataFrame into ``cats`` (int64, N x n_cat), ``conts`` (float32, N x n_cont) and ``ys``.
:class:`TabularPandas` runs it on a DataFrame with a split; :class:`TabularDataset` serves rows of the processed
tensors through ``get_batch`` (lamina's DataLoader fast path); :class:`TabularDataLoaders` builds it all from a
DataFrame or a CSV file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lamina.core.transform import Transform, transform_from_state, transform_to_state
from lamina.core.utils import listify
from lamina.data.block import CategoryBlock, MultiCategoryBlock, RegressionBlock, TransformBlock
from lamina.data.load import DataLoader, DataLoaders
from lamina.tabular.core import Categorify, FillMissing, Normalize, TabularError, TabularFrame, TabularTarget

__all__ = ["TabularDataLoaders", "TabularDataset", "TabularPandas", "TabularProcessor", "infer_y_block"]


def _check_columns(df: pd.DataFrame, names: Sequence[str], role: str) -> None:
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise TabularError(
            f"{role} names column {missing[0]!r}, which is not in the DataFrame; its columns are {list(df.columns)}. "
            f"Fix the name in {role} or add the column"
        )
    repeated = [c for c in dict.fromkeys(names) if int((df.columns == c).sum()) > 1]
    if repeated:
        c = repeated[0]
        raise TabularError(
            f"the DataFrame has {int((df.columns == c).sum())} columns named {c!r} (used in {role}), so "
            f"df[{c!r}] is not one column: rename them, or keep the first with "
            "df = df.loc[:, ~df.columns.duplicated()]"
        )
    twice = [c for c in dict.fromkeys(names) if list(names).count(c) > 1]
    if twice:
        raise TabularError(f"{role} names column {twice[0]!r} twice: list each column once")


def _infinite_rows(values: np.ndarray) -> np.ndarray:
    """Positions of the rows holding +inf or -inf (any column of a 2-d array)."""
    inf = np.isinf(values)
    return np.flatnonzero(inf if inf.ndim == 1 else inf.any(axis=1))


def _refuse_infinite(values: np.ndarray, name: str, role: str, fix: str) -> None:
    rows = _infinite_rows(values)
    if len(rows):
        raise TabularError(
            f"{role} {name!r} holds +inf or -inf in {len(rows)} of {len(values)} rows (row positions "
            f"{rows[:5].tolist()}{'...' if len(rows) > 5 else ''}): Normalize would learn mean=inf and every "
            f"prediction would be NaN. {fix}"
        )


def _numeric(series: pd.Series, name: str, inf_as_missing: bool = False) -> np.ndarray:
    """A continuous column as float64 values; text that is not numbers is an error that suggests ``cat_names``, and
    so is +-inf unless ``inf_as_missing`` (then it becomes NaN, for FillMissing)."""
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(np.float64, na_value=np.nan)
    else:
        numbers = pd.to_numeric(series, errors="coerce")
        bad = numbers.isna() & series.notna()
        if bad.any():
            raise TabularError(
                f"continuous column {name!r} holds text, not numbers (e.g. {series[bad].iloc[0]!r} in "
                f"{int(bad.sum())} rows): move it to cat_names (see cont_cat_split), or convert it to numbers first"
            )
        values = numbers.to_numpy(np.float64, na_value=np.nan)
    if inf_as_missing:
        return np.where(np.isinf(values), np.nan, values)
    _refuse_infinite(values, name, "continuous column", "Pass inf_as_missing=True to treat them as missing "
                     "(FillMissing fills and flags them), or fix those values")  # fmt: skip
    return values


def _check_target(df: pd.DataFrame, y_names: Sequence[str]) -> None:
    for c in y_names:
        n_missing = int(df[c].isna().sum())
        if n_missing:
            raise TabularError(
                f"target column {c!r} has {n_missing} missing values (NaN) of {len(df)} rows: drop those rows "
                f"first, e.g. df = df.dropna(subset=[{c!r}])"
            )
        if pd.api.types.is_float_dtype(df[c].dtype):
            fix = f"Drop those rows first, e.g. df = df[np.isfinite(df[{c!r}])]"
            _refuse_infinite(df[c].to_numpy(np.float64), c, "target column", fix)


def infer_y_block(df: pd.DataFrame, y_names: Sequence[str], label_delim: str | None = None) -> str:
    """The kind of target: ``"multi"`` for several true/false columns or delimited labels, ``"regression"`` for
    floats, ``"single"`` otherwise (strings, integers, booleans).

    Args:
        df: the table.
        y_names: the target columns.
        label_delim: separator of labels in a multi-label text column.

    Examples:
        >>> df = pd.DataFrame({"price": [1.5, 2.0], "cut": ["a", "b"]})
        >>> infer_y_block(df, ["price"]), infer_y_block(df, ["cut"])
        ('regression', 'single')
    """
    if label_delim is not None or (len(y_names) > 1 and all(df[c].isin([0, 1, True, False]).all() for c in y_names)):
        return "multi"
    if all(pd.api.types.is_float_dtype(df[c].dtype) for c in y_names) or len(y_names) > 1:
        return "regression"
    return "single"


def _tabular_proc(p: Any, i: int) -> Transform:
    """Proc ``i`` of a proc list built (a class is instantiated) and checked to work on a :class:`TabularFrame`."""
    built = p() if isinstance(p, type) and issubclass(p, Transform) else p
    if not isinstance(built, Transform) or built._encodes_td[TabularFrame] is None:
        kind = p if isinstance(p, type) else type(p)
        raise TabularError(
            f"procs[{i}] is {kind.__module__}.{kind.__qualname__}, which does not process a table (it has no encodes "
            "for a TabularFrame; lamina.data's transforms work on items and batches). Use the tabular procs from "
            "lamina.tabular (Categorify, FillMissing, Normalize: e.g. lamina.tabular.Normalize instead of "
            "lamina.data.Normalize), or write a Transform whose encodes takes a TabularFrame"
        )
    return built


def _target_kind(y_block: Any, y_names: Sequence[str]) -> str:
    """A target kind from a kind name or a lamina.data block (``RegressionBlock``, ``CategoryBlock``,
    ``MultiCategoryBlock``, as a class or an instance)."""
    if isinstance(y_block, str):
        return y_block
    block = y_block() if isinstance(y_block, type) and issubclass(y_block, TransformBlock) else y_block
    kinds = {RegressionBlock: "regression", CategoryBlock: "single", MultiCategoryBlock: "multi"}
    kind = next((k for cls, k in kinds.items() if isinstance(block, cls)), None)
    if kind is None:
        raise TabularError(
            f"y_block must be 'regression', 'single', 'multi' or one of RegressionBlock, CategoryBlock, "
            f"MultiCategoryBlock (class or instance), got {y_block!r}"
        )
    n_out = getattr(block, "n_out", None)
    if n_out is not None and n_out != len(y_names):
        raise TabularError(f"RegressionBlock(n_out={n_out}) but y_names has {len(y_names)} columns {list(y_names)}")
    if kind == "single" and getattr(block.type_tfms[0], "vocab", None) is not None:
        raise TabularError(
            "CategoryBlock(vocab=...): a tabular target learns its vocab (sorted) from the training rows; pass "
            "CategoryBlock() and make sure every class appears in training"
        )
    return kind


class TabularProcessor:
    """Procs, column names and target encoder: learn on training rows, turn any DataFrame into tensors and back.

    Args:
        procs: procs (instances or classes), applied in their ``order``.
        cat_names: categorical columns.
        cont_names: continuous columns.
        y_names: target columns (none for unlabelled data).
        y_block: ``"regression"``, ``"single"`` or ``"multi"``, or the block (``RegressionBlock``,
            ``CategoryBlock``, ``MultiCategoryBlock``).
        label_delim: separator of labels in a multi-label text column.
        inf_as_missing: treat +-inf in continuous columns as missing (filled and flagged by ``FillMissing``);
            by default they are a :class:`TabularError` naming the column.

    Examples:
        >>> df = pd.DataFrame({"cut": ["a", "b", "a"], "carat": [1.0, None, 3.0], "price": [1.0, 2.0, 3.0]})
        >>> proc = TabularProcessor([Categorify, FillMissing, Normalize], ["cut"], ["carat"], ["price"])
        >>> cats, conts, ys = proc.setup(df, np.arange(3))
        >>> proc.cat_names_, cats.tolist(), ys.tolist()
        (['cut', 'carat_na'], [[1, 1], [2, 2], [1, 1]], [1.0, 2.0, 3.0])
    """

    def __init__(
        self,
        procs: Sequence[Transform | type[Transform]],
        cat_names: Sequence[str],
        cont_names: Sequence[str],
        y_names: Sequence[str] = (),
        y_block: Any = "regression",
        label_delim: str | None = None,
        inf_as_missing: bool = False,
    ) -> None:
        built = [_tabular_proc(p, i) for i, p in enumerate(listify(procs))]
        self.procs: list[Transform] = sorted(built, key=lambda p: p.order)
        self.inf_as_missing = inf_as_missing
        self.cat_names, self.cont_names, self.y_names = list(cat_names), list(cont_names), list(y_names)
        overlap = set(self.cat_names) & set(self.cont_names)
        if overlap:
            raise TabularError(f"columns {sorted(overlap)} are in both cat_names and cont_names: keep each in one")
        self.target = TabularTarget(_target_kind(y_block, self.y_names), label_delim) if self.y_names else None
        self.cat_names_, self.cont_names_ = list(self.cat_names), list(self.cont_names)

    def _frame(self, df: pd.DataFrame) -> TabularFrame:
        _check_columns(df, self.cat_names, "cat_names")
        _check_columns(df, self.cont_names, "cont_names")
        data: dict[str, Any] = {c: df[c].reset_index(drop=True) for c in self.cat_names}  # keeps category dtypes
        data.update({c: _numeric(df[c], c, self.inf_as_missing) for c in self.cont_names})
        return TabularFrame(pd.DataFrame(data, index=pd.RangeIndex(len(df))), self.cat_names, self.cont_names)

    def _tensors(self, frame: TabularFrame) -> tuple[Tensor, Tensor]:
        try:
            cats = frame.df[frame.cat_names].to_numpy(np.int64) if frame.cat_names else np.zeros((len(frame), 0))
        except (TypeError, ValueError):
            raise TabularError(
                f"categorical columns {frame.cat_names} are not integer codes after the procs: include Categorify "
                "in procs"
            ) from None
        conts = frame.df[frame.cont_names].to_numpy(np.float32) if frame.cont_names else np.zeros((len(frame), 0))
        return torch.from_numpy(np.array(cats, np.int64, order="C")), torch.from_numpy(
            np.array(conts, np.float32, order="C")
        )

    def _targets(self, df: pd.DataFrame) -> Tensor:
        assert self.target is not None
        _check_columns(df, self.y_names, "y_names")
        _check_target(df, self.y_names)
        return self.target(df[self.y_names])

    def setup(self, df: pd.DataFrame, train_idx: Any) -> tuple[Tensor, Tensor, Tensor | None]:
        """Learn every proc's state (and the target's) on the rows ``train_idx`` of ``df``; return ``df`` as
        ``(cats, conts, ys)`` tensors."""
        if self.y_names:
            _check_columns(df, self.y_names, "y_names")
            _check_target(df, self.y_names)
        frame = self._frame(df)
        for p in self.procs:
            p.setup(frame.rows(train_idx))
            frame = p(frame)
        self.cat_names_, self.cont_names_ = frame.cat_names, frame.cont_names
        if self.target is not None:
            self.target.setup(df[self.y_names].iloc[train_idx])
        return (*self._tensors(frame), self._targets(df) if self.target is not None else None)

    def process(self, df: pd.DataFrame, with_labels: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        """``df`` as ``(cats, conts, ys)`` tensors with the learned state (``ys`` is ``None`` without labels)."""
        frame = self._frame(df)
        for p in self.procs:
            frame = p(frame)
        return (*self._tensors(frame), self._targets(df) if with_labels and self.target is not None else None)

    def decode(self, cats: Tensor, conts: Tensor, ys: Tensor | None = None) -> pd.DataFrame:
        """Processed tensors back to a readable DataFrame: category labels, de-normalized values, decoded targets."""
        data: dict[str, Any] = {c: cats[:, i].numpy() for i, c in enumerate(self.cat_names_)}
        data.update({c: conts[:, i].double().numpy() for i, c in enumerate(self.cont_names_)})
        frame = TabularFrame(pd.DataFrame(data), self.cat_names_, self.cont_names_)
        for p in reversed(self.procs):
            frame = p.decode(frame)
        df = frame.df
        if ys is not None and self.target is not None:
            df = df.assign(**self.decode_target(ys))
        return df

    def decode_target(self, ys: Tensor) -> dict[str, Any]:
        """Target tensors to readable columns (one per regression target, else one labelled column)."""
        assert self.target is not None, "this processor has no target (y_names is empty)"
        dec = self.target.decode(ys.detach().cpu())
        if self.target.kind == "regression":
            dec = np.asarray(dec).reshape(len(ys), -1)
            return {c: dec[:, i] for i, c in enumerate(self.y_names)}
        if self.target.kind == "multi":
            return {"+".join(self.y_names) if self.target.label_delim is None else self.y_names[0]: dec}
        return {self.y_names[0]: dec}

    def to_state(self, tensors: dict[str, Tensor], key: str = "tabular") -> dict[str, Any]:
        """This processor as JSON-safe data (procs by registered name, config and learned state)."""
        return {
            "cat_names": self.cat_names, "cont_names": self.cont_names, "y_names": self.y_names,
            "cat_names_": self.cat_names_, "cont_names_": self.cont_names_, "inf_as_missing": self.inf_as_missing,
            "procs": [transform_to_state(p, tensors, f"{key}.procs.{i}") for i, p in enumerate(self.procs)],
            "target": None if self.target is None else transform_to_state(self.target, tensors, f"{key}.target"),
        }  # fmt: skip

    @classmethod
    def from_state(cls, data: dict[str, Any], tensors: dict[str, Tensor]) -> TabularProcessor:
        """Rebuild a processor written by :meth:`to_state` (only lamina's registered proc classes can be named)."""
        procs = [transform_from_state(p, tensors) for p in data["procs"]]
        target = transform_from_state(data["target"], tensors) if data.get("target") else None
        kind = target.kind if isinstance(target, TabularTarget) else "regression"
        proc = cls(procs, data["cat_names"], data["cont_names"], data["y_names"] if target else (), kind,
                   inf_as_missing=bool(data.get("inf_as_missing", False)))  # fmt: skip
        proc.target = target if isinstance(target, TabularTarget) else None
        proc.cat_names_, proc.cont_names_ = list(data["cat_names_"]), list(data["cont_names_"])
        return proc


class TabularDataset:
    """Processed rows: ``cats``, ``conts`` and (optionally) ``ys`` tensors, batched by slicing (``get_batch``).

    Args:
        cats: int64 codes, N x n_cat.
        conts: float32 values, N x n_cont.
        ys: targets (``None`` for unlabelled data).
        processor: the processor that made them (to decode, and to process new DataFrames).

    Examples:
        >>> ds = TabularDataset(torch.zeros(5, 1, dtype=torch.long), torch.zeros(5, 2), torch.arange(5.0), None)
        >>> len(ds), [tuple(t.shape) for t in ds.get_batch(slice(0, 2))], ds.n_inp
        (5, [(2, 1), (2, 2), (2,)], 2)
    """

    n_inp = 2

    def __init__(self, cats: Tensor, conts: Tensor, ys: Tensor | None, processor: TabularProcessor | None) -> None:
        if len(cats) != len(conts) or (ys is not None and len(ys) != len(cats)):
            raise ValueError(f"cats, conts and ys must have the same rows, got {len(cats)}, {len(conts)}, "
                             f"{None if ys is None else len(ys)}")  # fmt: skip
        self.cats, self.conts, self.ys, self.processor = cats, conts, ys, processor

    def __len__(self) -> int:
        return len(self.cats)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return self.get_batch(i)

    def get_batch(self, idx: Any) -> tuple[Tensor, ...]:
        """The rows ``idx`` (a slice or a tensor of indices): ``(cats, conts[, ys])``."""
        if self.ys is None:
            return self.cats[idx], self.conts[idx]
        return self.cats[idx], self.conts[idx], self.ys[idx]

    def _processor(self) -> TabularProcessor:
        if self.processor is None:
            raise TypeError("this TabularDataset has no processor: build it with TabularPandas to decode or add data")
        return self.processor

    def new(self, df: pd.DataFrame, with_labels: bool = False) -> TabularDataset:
        """A dataset of new rows processed with this one's learned state (what ``dls.test_dl(df)`` uses)."""
        return TabularDataset(*self._processor().process(df, with_labels), self.processor)

    def decode(self, b: tuple[Tensor, ...]) -> pd.DataFrame:
        """A batch ``(cats, conts[, ys])`` as a readable DataFrame."""
        return self._processor().decode(*[o.detach().cpu() for o in b])

    @property
    def vocab(self) -> list[Any] | None:
        """The target's vocabulary (``None`` for regression)."""
        target = self.processor.target if self.processor is not None else None
        return None if target is None else target.vocab_


def _split_positions(n: int, valid_idx: Any, valid_pct: float, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    if valid_idx is not None:
        mask = np.zeros(n, dtype=bool)
        mask[np.asarray(valid_idx, dtype=np.int64)] = True
    else:
        if not 0.0 <= valid_pct < 1.0:
            raise ValueError(f"valid_pct must be in [0, 1), got {valid_pct}")
        order = np.random.default_rng(seed).permutation(n)
        mask = np.zeros(n, dtype=bool)
        mask[order[: round(n * valid_pct)]] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _check_splits(splits: Sequence[Any], n: int) -> list[np.ndarray]:
    out = [np.asarray(s, dtype=np.int64) for s in splits]
    for name, s in zip(("training", "validation", "split 2", "split 3"), out):
        if len(s) == 0:
            raise TabularError(
                f"the {name} split is empty (0 of {n} rows): "
                + ("a DataFrame with no rows, or valid_idx covering every row" if name == "training" else
                   "give valid_idx with at least one row position, or a valid_pct large enough for one row")
            )  # fmt: skip
        if s.min() < 0 or s.max() >= n:
            raise TabularError(f"the {name} split has row positions outside 0..{n - 1}: pass positions, not labels")
    return out


class TabularPandas:
    """A DataFrame processed into tensors: procs learn on the training split and are applied to every row.

    Args:
        df: the table.
        procs: procs (classes or instances); ``[Categorify, FillMissing, Normalize]`` when ``None``.
        cat_names: categorical columns.
        cont_names: continuous columns.
        y_names: target column(s).
        y_block: ``"regression"``, ``"single"`` or ``"multi"``, or the block (``RegressionBlock()``,
            ``CategoryBlock()``, ``MultiCategoryBlock()``); inferred from the target's dtype when ``None``.
        splits: row positions of each split, training first; every row is training when ``None``.
        label_delim: separator of labels in a multi-label text column.
        inf_as_missing: treat +-inf in continuous columns as missing (``FillMissing`` fills and flags them); by
            default +-inf in a continuous column or the target is a :class:`TabularError` naming the column.

    Examples:
        >>> df = pd.DataFrame({"cut": ["a", "b", "a", "c"], "carat": [1.0, 2.0, 3.0, 4.0], "y": [0.1, 0.2, 0.3, 0.4]})
        >>> to = TabularPandas(df, cat_names=["cut"], cont_names=["carat"], y_names="y", splits=([0, 1, 2], [3]))
        >>> to.valid.cats.tolist(), to.processor.procs[1].classes_["cut"]
        ([[0]], ['#na#', 'a', 'b'])
    """

    def __init__(
        self,
        df: pd.DataFrame,
        procs: Sequence[Transform | type[Transform]] | None = None,
        cat_names: Sequence[str] | None = None,
        cont_names: Sequence[str] | None = None,
        y_names: str | Sequence[str] | None = None,
        y_block: Any = None,
        splits: Sequence[Any] | None = None,
        label_delim: str | None = None,
        inf_as_missing: bool = False,
    ) -> None:
        y_list = listify(y_names)
        _check_columns(df, y_list, "y_names")
        kind = y_block if y_block is not None else infer_y_block(df, y_list, label_delim) if y_list else "regression"
        procs = [Categorify, FillMissing, Normalize] if procs is None else procs
        self.processor = TabularProcessor(
            procs, cat_names or [], cont_names or [], y_list, kind, label_delim, inf_as_missing=inf_as_missing
        )
        self.splits = _check_splits(splits if splits is not None else [np.arange(len(df))], len(df))
        self.cats, self.conts, self.ys = self.processor.setup(df, self.splits[0])

    def subset(self, i: int) -> TabularDataset:
        """The dataset of split ``i`` (0: training, 1: validation)."""
        idx = torch.from_numpy(self.splits[i])
        return TabularDataset(
            self.cats[idx], self.conts[idx], None if self.ys is None else self.ys[idx], self.processor
        )

    @property
    def train(self) -> TabularDataset:
        """The training rows."""
        return self.subset(0)

    @property
    def valid(self) -> TabularDataset:
        """The validation rows."""
        if len(self.splits) < 2:
            raise IndexError("this TabularPandas has no validation split: pass splits=(train_idx, valid_idx)")
        return self.subset(1)

    def dataloaders(self, bs: int = 64, val_bs: int | None = None, **kwargs: Any) -> TabularDataLoaders:
        """Loaders over the splits (training shuffled, the others not), as
        :meth:`TabularDataLoaders.from_tabular`.

        Args:
            bs: training batch size.
            val_bs: validation batch size (``bs`` when ``None``).
            **kwargs: passed to every :class:`~lamina.data.load.DataLoader` (``device``, ``seed``...).

        Examples:
            >>> df = pd.DataFrame({"carat": np.arange(10.0), "y": np.arange(10.0)})
            >>> to = TabularPandas(df, cont_names=["carat"], y_names="y", splits=(range(8), range(8, 10)))
            >>> dls = to.dataloaders(bs=4)
            >>> len(dls.train), len(dls.valid.dataset)
            (2, 2)
        """
        return TabularDataLoaders.from_tabular(self, bs=bs, val_bs=val_bs, **kwargs)


class TabularDataLoaders(DataLoaders):
    """Training and validation loaders over a processed DataFrame; batches are ``(cats, conts, ys)`` slices.

    Examples:
        >>> df = pd.DataFrame({"cut": list("abab" * 10), "carat": np.arange(40.0), "price": np.arange(40.0)})
        >>> dls = TabularDataLoaders.from_df(df, cat_names=["cut"], cont_names=["carat"], y_names="price",
        ...                                  valid_idx=range(30, 40), bs=8)
        >>> len(dls.train.dataset), len(dls.valid.dataset), dls.n_inp, dls.train.fast
        (30, 10, 2, True)
    """

    @classmethod
    def from_df(
        cls,
        df: pd.DataFrame,
        procs: Sequence[Transform | type[Transform]] | None = None,
        cat_names: Sequence[str] | None = None,
        cont_names: Sequence[str] | None = None,
        y_names: str | Sequence[str] | None = None,
        y_block: Any = None,
        valid_idx: Any = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        bs: int = 64,
        val_bs: int | None = None,
        label_delim: str | None = None,
        inf_as_missing: bool = False,
        **kwargs: Any,
    ) -> TabularDataLoaders:
        """Process ``df`` (procs learn on the training rows) and build the loaders.

        Args:
            df: the table.
            procs: see :class:`TabularPandas`.
            cat_names: categorical columns.
            cont_names: continuous columns.
            y_names: target column(s).
            y_block: ``"regression"``, ``"single"``, ``"multi"`` or a block (inferred when ``None``).
            valid_idx: row positions of the validation rows; a random ``valid_pct`` of rows when ``None``.
            valid_pct: share of validation rows when ``valid_idx`` is ``None``.
            seed: seed of the random split (and of shuffling).
            bs: training batch size.
            val_bs: validation batch size (``bs`` when ``None``).
            label_delim: separator of labels in a multi-label text column.
            inf_as_missing: treat +-inf in continuous columns as missing (see :class:`TabularPandas`).
            **kwargs: passed to every :class:`~lamina.data.load.DataLoader` (``device``, ``shuffle``...).
        """
        train_idx, valid = _split_positions(len(df), valid_idx, valid_pct, seed)
        to = TabularPandas(
            df, procs, cat_names, cont_names, y_names, y_block, (train_idx, valid), label_delim, inf_as_missing
        )
        return cls.from_tabular(to, bs=bs, val_bs=val_bs, seed=seed, **kwargs)

    @classmethod
    def from_tabular(cls, to: TabularPandas, bs: int = 64, val_bs: int | None = None, **kwargs: Any) -> Any:
        """Loaders over the splits of a :class:`TabularPandas` (training shuffled, the others not)."""
        return cls.from_dsets(*[to.subset(i) for i in range(len(to.splits))], bs=bs, val_bs=val_bs, **kwargs)

    @classmethod
    def from_csv(cls, csv: str | Path, delimiter: str = ",", **kwargs: Any) -> TabularDataLoaders:
        """Read a CSV file with pandas and call :meth:`from_df` with ``kwargs``."""
        return cls.from_df(pd.read_csv(csv, delimiter=delimiter), **kwargs)

    @property
    def processor(self) -> TabularProcessor:
        """The processor holding the procs' learned state."""
        return self.train.dataset._processor()

    def show_batch(self, b: Any = None, max_n: int = 10, **kwargs: Any) -> pd.DataFrame:
        """Print and return up to ``max_n`` rows of a training batch, decoded (labels, de-normalized values).

        Args:
            b: a batch; one training batch when ``None``.
            max_n: most rows shown.
            **kwargs: passed to ``DataFrame.to_string``.
        """
        b = self.train.one_batch() if b is None else b
        df = self.train.dataset.decode(tuple(o[:max_n] for o in b))
        print(df.to_string(**kwargs))
        return df

    def test_dl(self, items: Any, with_labels: bool = False, **kwargs: Any) -> DataLoader:
        """A loader over a new DataFrame processed like the validation rows (state learned on training rows).

        Args:
            items: a DataFrame with the same columns (targets only needed ``with_labels``).
            with_labels: also encode the targets.
            **kwargs: changes to the validation loader's settings (e.g. ``bs``).
        """
        if not isinstance(items, pd.DataFrame):
            raise TypeError(f"test_dl needs a pandas DataFrame of rows, got {type(items).__name__}")
        return super().test_dl(items, with_labels=with_labels, **kwargs)
