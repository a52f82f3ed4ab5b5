"""Tabular learners as graphs: category codes and raw numbers in, predictions out.

The graph takes the codes of the categorical columns (``Categorify``'s vocab; :func:`graph_inputs` maps a DataFrame
to them outside the graph) and the raw continuous values, missing ones as NaN. Inside, as validation does, it fills
what is missing with ``FillMissing``'s learned values, adds the ``<col>_na`` flag columns, normalizes with
``Normalize``'s statistics, runs the model and decodes: the values for regression (the model's ``y_range``
included), softmax probabilities and the class index, or sigmoid probabilities and the threshold for multi-label.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from lamina.learner.graph import GraphError, InferenceGraph, register_graph
from lamina.tabular.core import Categorify, FillMissing, Normalize, TabularError
from lamina.tabular.data import TabularProcessor
from lamina.tabular.learner import TabularLearner

__all__ = ["TabularGraph", "graph_inputs", "tabular_graph"]


class TabularGraph(nn.Module):
    """Codes and raw values to predictions, with the procs' learned state as buffers.

    Args:
        model: the learner's ``TabularModel``.
        fill: per continuous column, the value that replaces NaN (float32).
        flag_columns: indices of the continuous columns whose missing flags are extra categorical columns.
        flag_codes: per flag column, the codes of "present" and "missing" (``2 x n``).
        mean: per continuous column, the mean subtracted (float64; 0 without ``Normalize``).
        std: per continuous column, the standard deviation divided by (float64; 1 without ``Normalize``).
        kind: ``"regression"``, ``"single"`` or ``"multi"``.
        thresh: the multi-label threshold.

    Examples:
        >>> class Sum(torch.nn.Module):
        ...     def forward(self, cats, conts): return conts.sum(1, keepdim=True) + cats.sum(1, keepdim=True)
        >>> g = TabularGraph(Sum(), torch.tensor([5.0]), torch.tensor([0]), torch.tensor([[1], [2]]),
        ...                  torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64), "regression", 0.5)
        >>> g(torch.zeros(1, 0, dtype=torch.long), torch.tensor([[float("nan")]]))[0].tolist()
        [[7.0]]
    """

    fill: Tensor
    flag_columns: Tensor
    flag_codes: Tensor
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        model: nn.Module,
        fill: Tensor,
        flag_columns: Tensor,
        flag_codes: Tensor,
        mean: Tensor,
        std: Tensor,
        kind: str,
        thresh: float,
    ) -> None:
        super().__init__()
        self.model, self.kind, self.thresh = model, kind, float(thresh)
        for name, value in (("fill", fill), ("flag_columns", flag_columns), ("flag_codes", flag_codes),
                            ("mean", mean), ("std", std)):  # fmt: skip
            self.register_buffer(name, value)

    def forward(self, cats: Tensor, conts: Tensor) -> tuple[Tensor, Tensor]:
        missing = torch.isnan(conts)
        flags = missing.index_select(1, self.flag_columns).long()
        flag_codes = torch.where(flags > 0, self.flag_codes[1], self.flag_codes[0])
        # in float64 as Normalize computes, then float32 (the model's piecewise-linear bins magnify rounding)
        x_cont = ((torch.where(missing, self.fill, conts).double() - self.mean) / self.std).float()
        out = self.model(torch.cat([cats, flag_codes], 1), x_cont)
        if self.kind == "single":
            return torch.softmax(out, 1), out.argmax(1)
        if self.kind == "multi":
            probs = torch.sigmoid(out)
            return probs, probs > self.thresh
        return out, out


def _processor_of(learn: Any, what: str) -> TabularProcessor:
    if not isinstance(learn, TabularLearner):
        raise GraphError(f"only a TabularLearner (tabular_learner, load_learner) {what}")
    return learn._processor()


def _procs(processor: TabularProcessor) -> tuple[Categorify | None, FillMissing | None, Normalize | None]:
    found: dict[type, Any] = {Categorify: None, FillMissing: None, Normalize: None}
    for p in processor.procs:
        if type(p) not in found:
            raise GraphError(f"the proc {type(p).__name__} has no graph form: use Categorify, FillMissing, Normalize")
        found[type(p)] = p
    return found[Categorify], found[FillMissing], found[Normalize]


def _per_cont(
    processor: TabularProcessor, values: Mapping[Any, float] | None, default: float, dtype: torch.dtype
) -> Tensor:
    return torch.tensor([float((values or {}).get(c, default)) for c in processor.cont_names], dtype=dtype)


def _flags(processor: TabularProcessor, cat: Categorify | None, fill: FillMissing | None) -> tuple[Tensor, Tensor]:
    """Which continuous columns add a flag column, and the codes of its "present" / "missing" values."""
    na_cols = list(fill.na_cols_) if fill is not None and fill.add_col else []
    columns, codes = [], []
    for c in na_cols:
        vocab = list(cat.classes_.get(f"{c}_na", [])) if cat is not None else []
        columns.append(processor.cont_names.index(c))
        codes.append([vocab.index(v) if v in vocab else 0 for v in (False, True)])
    return torch.tensor(columns, dtype=torch.long), torch.tensor(codes, dtype=torch.long).reshape(-1, 2).T


def tabular_graph(learn: TabularLearner) -> InferenceGraph:
    """The :class:`~lamina.learner.graph.InferenceGraph` of a tabular learner (see the module docstring).

    Examples:
        >>> tabular_graph(object())
        Traceback (most recent call last):
        ...
        lamina.learner.graph.GraphError: only a TabularLearner ...
    """
    processor = _processor_of(learn, "can be written as a graph")
    cat, fill, norm = _procs(processor)
    flag_columns, flag_codes = _flags(processor, cat, fill)
    kind = processor.target.kind if processor.target is not None else "regression"
    vocab = processor.target.vocab_ if processor.target is not None else None
    mean = _per_cont(processor, norm.means_ if norm else None, 0.0, torch.float64)
    std = _per_cont(processor, norm.stds_ if norm else None, 1.0, torch.float64)
    fill_values = _per_cont(processor, fill.fill_ if fill else None, 0.0, torch.float32)
    thresh = float(getattr(learn.loss_func, "thresh", 0.5))
    module = TabularGraph(learn.model, fill_values, flag_columns, flag_codes, mean, std, kind, thresh)
    n_cat, n_cont = len(processor.cat_names), len(processor.cont_names)
    example = (torch.ones(3, n_cat, dtype=torch.long), torch.tensor([[0.5] * n_cont, [float("nan")] * n_cont] * 2)[:3])
    n_out: Any = len(vocab) if vocab else len(processor.y_names) or 1
    index = {"single": ("int64", ["N"], "the class index"), "multi": ("bool", ["N", n_out], "probability > thresh"),
             "regression": ("float32", ["N", n_out], "the values")}[kind]  # fmt: skip
    return InferenceGraph(
        module=module,
        example_inputs=example,
        inputs=[{"name": "cats", "dtype": "int64", "shape": ["N", n_cat], "columns": processor.cat_names,
                 "description": "category codes (0: unknown or missing), in the order of `columns`",
                 "codes": {c: list(cat.classes_[c]) for c in processor.cat_names} if cat else {}},
                {"name": "conts", "dtype": "float32", "shape": ["N", n_cont], "columns": processor.cont_names,
                 "description": "raw continuous values, NaN where missing, in the order of `columns`"}],
        outputs=[{"name": "preds", "dtype": "float32", "shape": ["N", n_out], "description": "the activated outputs"},
                 {"name": "index", "dtype": index[0], "shape": index[1], "description": index[2]}],
        info={"app": "tabular", "kind": kind, "labels": list(vocab) if vocab else None,
              "targets": processor.y_names},
    )  # fmt: skip


def graph_inputs(learn: TabularLearner, df: pd.DataFrame) -> tuple[Tensor, Tensor]:
    """The graph's two inputs for the rows of ``df``: category codes (unknown values get 0) and raw values.

    Args:
        learn: the learner the graph was written from.
        df: rows with (at least) the learner's categorical and continuous columns.

    Examples:
        >>> graph_inputs(object(), pd.DataFrame())
        Traceback (most recent call last):
        ...
        lamina.learner.graph.GraphError: only a TabularLearner ...
    """
    processor = _processor_of(learn, "has graph inputs")
    cat, _, _ = _procs(processor)
    missing = [c for c in [*processor.cat_names, *processor.cont_names] if c not in df.columns]
    if missing:
        raise TabularError(f"the rows lack the columns {missing} the learner was trained on")
    codes = []
    for c in processor.cat_names:
        index = {v: k for k, v in enumerate(cat.classes_[c])} if cat else {}
        codes.append([index.get(v, 0) for v in df[c].tolist()])
    cats = torch.tensor(codes, dtype=torch.long).reshape(len(processor.cat_names), len(df)).T.contiguous()
    conts = torch.tensor(df[processor.cont_names].to_numpy(np.float32, na_value=np.nan)).reshape(len(df), -1)
    return cats, conts


register_graph("tabular", tabular_graph)
