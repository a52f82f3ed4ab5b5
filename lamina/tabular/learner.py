"""The tabular learner: defaults chosen from the target, one-row prediction, and pickle-free export.

``tabular_learner`` picks the loss from the kind of target (MSE for regression, cross-entropy for one label, BCE
for several), builds a registered ``TabularModel`` with JSON-safe arguments, and fits the piecewise-linear bins of
the continuous columns to the training rows. ``learn.export`` stores the processor (procs' state, column names,
target vocab) as data; ``lamina.learner.load_learner`` rebuilds a :class:`TabularLearner` ready for inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from lamina.data.load import DataLoader
from lamina.learner.export import ExportError, model_n_out, register_app, warn_if_not_exportable
from lamina.learner.learner import Learner
from lamina.learner.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from lamina.nn.registry import build_model
from lamina.tabular.data import TabularDataLoaders, TabularDataset, TabularProcessor
from lamina.tabular.model import TabularModel, get_emb_sz, quantile_bin_edges

__all__ = ["TabularLearner", "tabular_learner", "tabular_loss", "tabular_model_kwargs"]


def tabular_loss(kind: str) -> Any:
    """The default loss for a target kind: MSE (regression), cross-entropy (single), BCE on logits (multi).

    Examples:
        >>> type(tabular_loss("multi")).__name__
        'BCEWithLogitsLossFlat'
    """
    losses = {"regression": MSELossFlat, "single": CrossEntropyLossFlat, "multi": BCEWithLogitsLossFlat}
    if kind not in losses:
        raise ValueError(f"unknown target kind {kind!r}: expected one of {list(losses)}")
    return losses[kind]()


def _n_out(processor: TabularProcessor) -> int:
    target = processor.target
    if target is None:
        raise ValueError("the data has no target (y_names is empty): pass n_out=... to tabular_learner")
    if target.kind == "regression":
        return len(processor.y_names)
    assert target.vocab_ is not None
    return len(target.vocab_)


def tabular_model_kwargs(
    processor: TabularProcessor,
    layers: Sequence[int] | None = None,
    n_out: int | None = None,
    y_range: Sequence[float] | None = None,
    emb_szs: dict[str, int] | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """JSON-safe arguments of the ``TabularModel`` that fits ``processor``'s columns and target.

    Args:
        processor: the data's processor (after setup).
        layers: hidden widths (``[200, 100]`` when ``None``).
        n_out: outputs (from the target when ``None``).
        y_range: output range of a regression.
        emb_szs: embedding widths by column name, overriding the rule.
        config: more ``TabularModel`` arguments (``ps``, ``embed_p``, ``cont_embed``, ``n_bins``...).

    Examples:
        >>> import numpy as np
        >>> df = pd.DataFrame({"cut": ["a", "b"], "carat": [1.0, 2.0], "price": [1.0, 2.0]})
        >>> proc = TabularProcessor([], [], ["carat"], ["price"])
        >>> _ = proc.setup(df, np.arange(2))
        >>> tabular_model_kwargs(proc, layers=[8])["out_sz"]
        1
    """
    cardinalities = [len(_vocab(processor, c)) for c in processor.cat_names_]
    return TabularModel.kwargs_from(
        emb_szs=get_emb_sz(cardinalities, processor.cat_names_, emb_szs),
        n_cont=len(processor.cont_names_),
        out_sz=n_out if n_out is not None else _n_out(processor),
        layers=list(layers) if layers is not None else [200, 100],
        **({"y_range": y_range} if y_range is not None else {}),
        **(config or {}),
    )


def _vocab(processor: TabularProcessor, column: str) -> list[Any]:
    for p in processor.procs:
        classes = getattr(p, "classes_", None)
        if isinstance(classes, dict) and column in classes:
            return list(classes[column])
    raise ValueError(f"categorical column {column!r} has no vocabulary: include Categorify in procs")


class TabularLearner(Learner):
    """A :class:`~lamina.learner.Learner` for tabular data: ``predict`` on one row and ``show_results``.

    Examples:
        >>> issubclass(TabularLearner, Learner)
        True
    """

    def _processor(self) -> TabularProcessor:
        ds = self.dls.train.dataset
        if not isinstance(ds, TabularDataset) or ds.processor is None:
            raise TypeError("TabularLearner needs TabularDataLoaders (datasets built by TabularPandas)")
        return ds.processor

    def predict(self, item: Any) -> tuple[Any, Tensor, Tensor]:
        """Predict one raw row (a ``pd.Series`` or a dict of column values).

        Returns:
            ``(decoded, raw, preds)``: the readable prediction (value, label or list of labels), the decoded tensor
            (value, class index or multi-hot booleans) and the activated outputs (values or probabilities).
        """
        row = item.to_frame().T if isinstance(item, pd.Series) else pd.DataFrame([dict(item)])
        dl = self.dls.test_dl(row.reset_index(drop=True))
        preds, _, dec = self.get_preds(dl=dl, with_decoded=True)
        processor = self._processor()
        readable = next(iter(processor.decode_target(dec.float() if dec.dtype == torch.bool else dec).values()))
        value = readable[0]
        return (value.item() if hasattr(value, "item") else value), dec[0], preds[0]

    def show_results(self, dl: DataLoader | None = None, max_n: int = 10) -> pd.DataFrame:
        """Print and return ``max_n`` rows of ``dl`` (validation by default), decoded, with a ``<target>_pred``
        column per target.

        Args:
            dl: the loader.
            max_n: most rows shown.
        """
        dl = dl or self.dls.valid
        inputs, _, targets, dec = self.get_preds(dl=dl, with_input=True, with_decoded=True)
        processor = self._processor()
        df = processor.decode(inputs[0][:max_n], inputs[1][:max_n], None if targets is None else targets[:max_n])
        dec = dec[:max_n]
        for name, values in processor.decode_target(dec.float() if dec.dtype == torch.bool else dec).items():
            df[f"{name}_pred"] = values
        print(df.to_string())
        return df


def _fit_to_data(model: TabularModel, dls: TabularDataLoaders, kind: str) -> None:
    """Start the model from the training rows: quantile bins for the continuous embeddings and, for a regression
    without ``y_range``, the output bias at the mean target (the first steps then learn shape, not scale)."""
    ds = dls.train.dataset
    with torch.no_grad():
        if model.cont_emb is not None:
            model.cont_emb.set_edges(quantile_bin_edges(ds.conts, model.cont_emb.weight.shape[1]))
        head = model.layers[-1]
        if kind == "regression" and model.y_range is None and ds.ys is not None and isinstance(head, torch.nn.Linear):
            head.bias.copy_(ds.ys.float().reshape(len(ds.ys), -1).mean(0))


def tabular_learner(
    dls: TabularDataLoaders,
    layers: Sequence[int] | None = None,
    emb_szs: dict[str, int] | None = None,
    config: dict[str, Any] | None = None,
    n_out: int | None = None,
    y_range: Sequence[float] | None = None,
    loss_func: Any = None,
    metrics: Any = None,
    lr: float = 1e-2,
    wd: float | None = 0.01,
    **kwargs: Any,
) -> TabularLearner:
    """A :class:`TabularLearner` with a registered ``TabularModel`` sized for ``dls`` and a loss for its target.

    Args:
        dls: loaders from :class:`TabularDataLoaders`.
        layers: hidden widths (``[200, 100]`` when ``None``).
        emb_szs: embedding widths by column name, overriding the size rule.
        config: more ``TabularModel`` arguments (``ps``, ``embed_p``, ``cont_embed``, ``n_bins``, ``cont_emb_sz``).
        n_out: outputs (from the target when ``None``).
        y_range: squash regression outputs into ``(low, high)``.
        loss_func: the loss; from the target kind when ``None``.
        metrics: metrics computed on the validation set.
        lr: default learning rate.
        wd: weight decay.
        **kwargs: passed to :class:`~lamina.learner.Learner`.

    Examples:
        >>> import numpy as np
        >>> df = pd.DataFrame({"cut": list("ab" * 50), "carat": np.linspace(0, 1, 100)})
        >>> df["price"] = df["carat"] * 2
        >>> dls = TabularDataLoaders.from_df(df, cat_names=["cut"], cont_names=["carat"], y_names="price", seed=0)
        >>> learn = tabular_learner(dls, layers=[16])
        >>> learn.app, learn.model_spec["name"], type(learn.loss_func).__name__
        ('tabular', 'tabular_model', 'MSELossFlat')
    """
    processor = dls.train.dataset._processor()
    model_kwargs = tabular_model_kwargs(processor, layers, n_out, y_range, emb_szs, config)
    model = build_model("tabular_model", **model_kwargs)
    assert isinstance(model, TabularModel)
    kind = processor.target.kind if processor.target is not None else "regression"
    _fit_to_data(model, dls, kind)
    loss_func = tabular_loss(kind) if loss_func is None else loss_func
    learn = TabularLearner(dls, model, loss_func=loss_func, metrics=metrics, lr=lr, wd=wd, **kwargs)
    learn.app, learn.model_spec = "tabular", {"name": "tabular_model", "kwargs": model_kwargs}
    warn_if_not_exportable(learn, "tabular_learner")
    return learn


def _describe(learn: Learner, tensors: dict[str, Tensor]) -> dict[str, Any]:
    ds = learn.dls.train.dataset
    if not isinstance(ds, TabularDataset) or ds.processor is None:
        raise TypeError("a tabular export needs TabularDataLoaders (datasets built by TabularPandas)")
    bs = learn.dls.valid.bs if len(learn.dls) > 1 else learn.dls.train.bs
    return {"processor": ds.processor.to_state(tensors, "app.tabular"), "bs": bs}


def _rebuild(spec: dict[str, Any], tensors: dict[str, Tensor], model: torch.nn.Module, loss_func: Any) -> Learner:
    processor = TabularProcessor.from_state(spec["processor"], tensors)
    target, n_model = processor.target, model_n_out(model)
    if target is not None and target.kind != "regression" and n_model != _n_out(processor):
        raise ExportError(
            f"the target's vocab has {_n_out(processor)} classes but the model has {n_model} outputs: the file is "
            "foreign or tampered"
        )
    # one placeholder row so the loaders exist; inference data comes from ``dls.test_dl(df)``
    cats = torch.zeros(1, len(processor.cat_names_), dtype=torch.long)
    placeholder = TabularDataset(cats, torch.zeros(1, len(processor.cont_names_)), None, processor)
    dls = TabularDataLoaders(DataLoader(placeholder, bs=int(spec.get("bs", 64))))
    loss = loss_func if loss_func is not None else tabular_loss(getattr(processor.target, "kind", "regression"))
    return TabularLearner(dls, model, loss_func=loss)


register_app("tabular", _describe, _rebuild)
