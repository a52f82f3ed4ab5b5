"""``collab_learner`` and ``CollabLearner``: train on ratings, predict pairs by name, read the factors, export.

The default recipe (``benchmarks/collab.py``): ``collab_learner(dls, y_range=(0, 5.5))`` then
``learn.fit_one_cycle(5)``: 50 factors, MSE loss, Adam with decoupled weight decay 0.1, peak lr 5e-3.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from lamina.collab.analysis import plot_item_pca, rank_by_bias
from lamina.collab.data import CollabDataLoaders
from lamina.collab.models import NamedEmbeddings, emb_sz_rule
from lamina.learner.callback import Callback
from lamina.learner.export import ExportError, register_app, warn_if_not_exportable
from lamina.learner.learner import Learner
from lamina.learner.losses import MSELossFlat
from lamina.learner.metrics import rmse
from lamina.nn.registry import build_model

__all__ = ["CollabLearner", "collab_learner", "collab_model_spec"]


def collab_model_spec(
    classes: dict[str, list[Any]],
    n_factors: int = 50,
    use_nn: bool = False,
    emb_szs: dict[str, int] | None = None,
    layers: Sequence[int] | None = None,
    y_range: Sequence[float] | None = None,
    model_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The registered model name and JSON-safe arguments of a collab model for these vocabularies.

    Args:
        classes: ``{"user": vocab, "item": vocab}``.
        n_factors: width of the factors (dot-product model).
        use_nn: an ``EmbeddingNN`` instead of an ``EmbeddingDotBias``.
        emb_szs: ``{"user": width, "item": width}`` for the NN (``emb_sz_rule`` of each vocabulary by default).
        layers: hidden layer widths of the NN (``[100]`` by default).
        y_range: ``(low, high)`` bounds of the predictions.
        model_config: other arguments of the NN (``ps``, ``embed_p``, ``use_bn``).

    Examples:
        >>> collab_model_spec({"user": ["#na#", 1], "item": ["#na#", "a", "b"]}, n_factors=8, y_range=(0, 5.5))
        {'name': 'EmbeddingDotBias', 'kwargs': {'n_factors': 8, 'n_users': 2, 'n_items': 3, 'y_range': [0.0, 5.5]}}
    """
    n_users, n_items = len(classes["user"]), len(classes["item"])
    bounds = None if y_range is None else [float(v) for v in y_range]
    if not use_nn:
        if layers is not None or emb_szs is not None or model_config:
            raise ValueError("layers, emb_szs and model_config configure the NN model: pass use_nn=True as well")
        sizes = {"n_factors": n_factors, "n_users": n_users, "n_items": n_items}
        return {"name": "EmbeddingDotBias", "kwargs": {**sizes, "y_range": bounds}}
    widths = {"user": emb_sz_rule(n_users), "item": emb_sz_rule(n_items), **(emb_szs or {})}
    kwargs = {
        "emb_szs": [[n_users, widths["user"]], [n_items, widths["item"]]],
        "layers": list(layers) if layers is not None else [100],
        "y_range": bounds,
        **(model_config or {}),
    }
    return {"name": "EmbeddingNN", "kwargs": kwargs}


class CollabLearner(Learner):
    """A Learner over ratings that knows users and items by name (its ``dls`` are ``CollabDataLoaders``).

    Build it with :func:`collab_learner`; see ``Learner`` for the arguments.

    Examples:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"u": [1, 1, 2, 2], "i": ["a", "b", "a", "b"], "r": [5.0, 1.0, 4.0, 2.0]})
        >>> learn = collab_learner(CollabDataLoaders.from_df(df, valid_pct=0.0, bs=2), n_factors=2)
        >>> learn.predict_pairs([(1, "a"), (2, "b")]).shape
        torch.Size([2])
    """

    dls: CollabDataLoaders

    def fit(
        self,
        n_epoch: int,
        lr: float | slice | None = None,
        wd: float | None = None,
        cbs: Sequence[Callback] | None = None,
        reset_opt: bool = False,
        resume: str | Path | None = None,
    ) -> None:
        """Train for ``n_epoch`` epochs (see ``Learner.fit``); refused on a loaded learner, which has no data."""
        if not self.dls.trainable:
            raise ValueError(
                "this learner was loaded for inference and holds no ratings: to train it further, set "
                "learn.dls = CollabDataLoaders.from_df(...) with data whose vocabularies match"
            )
        super().fit(n_epoch, lr=lr, wd=wd, cbs=cbs, reset_opt=reset_opt, resume=resume)

    @property
    def collab_model(self) -> NamedEmbeddings:
        """The model, checked to be a collab model with vocabularies."""
        if not isinstance(self.model, NamedEmbeddings):
            raise TypeError(f"this needs a collab model (EmbeddingDotBias/EmbeddingNN), got {type(self.model)}")
        if self.model.classes is None:
            self.model.classes = self.dls.classes
        return self.model

    def predict_pairs(self, pairs: Any, unknown: str = "raise", bs: int | None = None) -> Tensor:
        """Predicted ratings of (user, item) pairs given by name: a frame with the user and item columns, or a list
        of ``(user, item)`` tuples.

        Args:
            pairs: the pairs.
            unknown: ``"raise"`` (an error naming users/items not seen in training) or ``"na"`` (use the zero
                ``"#na#"`` embedding, so the prediction rests on the known side's bias).
            bs: batch size.

        Returns:
            One predicted rating per pair (no progress bar is shown).
        """
        dl = self.dls.test_dl(pairs, unknown=unknown, bs=bs)
        return self.get_preds(dl=dl)[0]

    def predict(self, item: Any) -> tuple[float, Tensor, Tensor]:
        """Predict one ``(user, item)`` pair given by name (or a row with the user and item columns).

        Returns:
            ``(rating, rating_tensor, rating_tensor)``: the same value as a float and as the model's output, so
            the result unpacks like ``Learner.predict``'s ``(decoded, index, probs)``. An unseen user or item
            raises ``UnknownNameError`` naming it; use ``predict_pairs(..., unknown="na")`` for the fallback.
        """
        pairs = item.to_frame().T if hasattr(item, "to_frame") else [tuple(item)]
        pred = self.predict_pairs(pairs)[0]
        return float(pred), pred, pred

    def most_liked(self, n: int = 10, items: Sequence[Any] | None = None) -> list[tuple[Any, float]]:
        """The ``n`` items with the highest learned bias (liked beyond what their factors explain), as
        ``(item, bias)``; ``items`` restricts the candidates (e.g. ``dls.most_rated_items(1000)``)."""
        return rank_by_bias(self.collab_model, n, liked=True, items=items)

    def least_liked(self, n: int = 10, items: Sequence[Any] | None = None) -> list[tuple[Any, float]]:
        """The ``n`` items with the lowest learned bias, as ``(item, bias)``; see ``most_liked``."""
        return rank_by_bias(self.collab_model, n, liked=False, items=items)

    def plot_item_pca(self, items: Sequence[Any] | None = None, n_items: int = 50, **kwargs: Any) -> Any:
        """Item factors on two principal axes, labelled (see ``analysis.plot_item_pca``); the ``n_items`` most
        rated training items when ``items`` is ``None``."""
        chosen = list(items) if items is not None else self.dls.most_rated_items(n_items)
        return plot_item_pca(self.collab_model, chosen, **kwargs)


def collab_learner(
    dls: CollabDataLoaders,
    n_factors: int = 50,
    use_nn: bool = False,
    emb_szs: dict[str, int] | None = None,
    layers: Sequence[int] | None = None,
    y_range: Sequence[float] | None = None,
    loss_func: Any = None,
    lr: float = 5e-3,
    wd: float = 0.1,
    metrics: Sequence[Any] | None = None,
    model_config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> CollabLearner:
    """A learner for collaborative filtering: an ``EmbeddingDotBias`` (or ``EmbeddingNN``) on ``dls``.

    Args:
        dls: loaders from ``CollabDataLoaders.from_df``.
        n_factors: width of the factors of the dot-product model.
        use_nn: an ``EmbeddingNN`` instead of the dot-product model.
        emb_szs: ``{"user": width, "item": width}`` for the NN.
        layers: hidden layer widths of the NN.
        y_range: ``(low, high)`` bounds of the predictions, e.g. ``(0, 5.5)`` for 0.5-5 star ratings.
        loss_func: ``MSELossFlat()`` when ``None``.
        lr: default (peak) learning rate.
        wd: decoupled weight decay.
        metrics: ``[rmse]`` when ``None``.
        model_config: other arguments of the NN model (``ps``, ``embed_p``, ``use_bn``).
        **kwargs: passed to ``Learner``.

    Examples:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"u": [1, 1, 2, 2], "i": ["a", "b", "a", "b"], "r": [5.0, 1.0, 4.0, 2.0]})
        >>> learn = collab_learner(CollabDataLoaders.from_df(df, valid_pct=0.0, bs=2), y_range=(0, 5.5))
        >>> learn.app, learn.model_spec["name"], type(learn.loss_func).__name__
        ('collab', 'EmbeddingDotBias', 'MSELossFlat')
    """
    if not isinstance(dls, CollabDataLoaders):
        raise TypeError(f"collab_learner needs CollabDataLoaders (CollabDataLoaders.from_df), got {type(dls)}")
    spec = collab_model_spec(dls.classes, n_factors, use_nn, emb_szs, layers, y_range, model_config)
    model = build_model(spec["name"], **spec["kwargs"])
    assert isinstance(model, NamedEmbeddings)
    model.classes = dls.classes
    learn = CollabLearner(dls, model, loss_func=MSELossFlat() if loss_func is None else loss_func, lr=lr, wd=wd,
                          metrics=[rmse] if metrics is None else metrics, **kwargs)  # fmt: skip
    learn.app, learn.model_spec = "collab", spec
    warn_if_not_exportable(learn, "collab_learner")
    return learn


def _describe(learn: Learner, tensors: dict[str, Tensor]) -> dict[str, Any]:
    """The JSON-safe data description of a collab learner: vocabularies and column names."""
    dls = learn.dls
    if not isinstance(dls, CollabDataLoaders):
        raise ExportError(f"a collab learner needs CollabDataLoaders to be exported, got {type(dls).__name__}")
    return {"classes": dls.classes, "columns": dls.columns, "bs": dls.train.bs}


def _rebuild(spec: dict[str, Any], tensors: dict[str, Tensor], model: nn.Module, loss_func: Any) -> Learner:
    """An inference ``CollabLearner`` from an export's description and its rebuilt model."""
    classes, columns = spec.get("classes"), spec.get("columns")
    if not isinstance(classes, dict) or not isinstance(columns, dict) or not isinstance(model, NamedEmbeddings):
        raise ExportError("the collab export lacks its vocabularies or column names: the file is foreign or tampered")
    sizes = (len(classes.get("user", [])), len(classes.get("item", [])))
    if sizes != (model.user_weight.num_embeddings, model.item_weight.num_embeddings):
        raise ExportError(f"the vocabularies ({sizes}) do not fit the model's embeddings: the file is tampered")
    model.classes = classes
    dls = CollabDataLoaders.for_inference(classes, columns, bs=int(spec.get("bs", 128)))
    return CollabLearner(dls, model, loss_func=loss_func if loss_func is not None else MSELossFlat(), metrics=[])


register_app("collab", _describe, _rebuild)
