"""Tabular application: DataFrame procs, processed-tensor loaders, the tabular model and learner."""

from lamina.tabular.core import (
    NA_LABEL,
    Categorify,
    FillMissing,
    Normalize,
    TabularError,
    TabularFrame,
    TabularTarget,
    add_datepart,
    cont_cat_split,
)
from lamina.tabular.data import TabularDataLoaders, TabularDataset, TabularPandas, TabularProcessor, infer_y_block
from lamina.tabular.graph import TabularGraph, graph_inputs, tabular_graph
from lamina.tabular.learner import TabularLearner, tabular_learner, tabular_loss, tabular_model_kwargs
from lamina.tabular.model import (
    PiecewiseLinearEmbedding,
    TabularModel,
    emb_sz_rule,
    get_emb_sz,
    piecewise_linear_encode,
    quantile_bin_edges,
)

__all__ = [
    "NA_LABEL",
    "Categorify",
    "FillMissing",
    "Normalize",
    "PiecewiseLinearEmbedding",
    "TabularDataLoaders",
    "TabularDataset",
    "TabularError",
    "TabularFrame",
    "TabularGraph",
    "TabularLearner",
    "TabularModel",
    "TabularPandas",
    "TabularProcessor",
    "TabularTarget",
    "add_datepart",
    "cont_cat_split",
    "emb_sz_rule",
    "get_emb_sz",
    "graph_inputs",
    "infer_y_block",
    "piecewise_linear_encode",
    "quantile_bin_edges",
    "tabular_graph",
    "tabular_learner",
    "tabular_loss",
    "tabular_model_kwargs",
]
