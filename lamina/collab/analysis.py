"""Reading a trained collab model: items ranked by bias, and item factors projected on their principal axes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lamina.collab.models import NamedEmbeddings

__all__ = ["pca", "plot_item_pca", "rank_by_bias"]


def pca(weights: Tensor, n_components: int = 3) -> Tensor:
    """The coordinates of the rows of ``weights`` on their first ``n_components`` principal axes.

    Args:
        weights: one row per point.
        n_components: how many axes to keep (at most the number of columns).

    Examples:
        >>> w = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
        >>> pca(w, 1).abs().squeeze(1).tolist()  # the points lie on one line: one axis explains them
        [1.4142, 0.0, 1.4142]
    """
    if weights.ndim != 2:
        raise ValueError(f"pca needs a 2-d tensor (points x features), got shape {tuple(weights.shape)}")
    if not 1 <= n_components <= weights.shape[1]:
        raise ValueError(f"n_components must be in [1, {weights.shape[1]}], got {n_components}")
    centred = weights.float() - weights.float().mean(0, keepdim=True)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    return u[:, :n_components] * s[:n_components]


def rank_by_bias(
    model: NamedEmbeddings, n: int = 10, liked: bool = True, items: Sequence[Any] | None = None
) -> list[tuple[Any, float]]:
    """The ``n`` most (or least) liked items by learned bias, as ``(item, bias)`` pairs, strongest first.

    Args:
        model: a model with ``bias(names)`` and ``classes`` (an ``EmbeddingDotBias``).
        n: how many items.
        liked: the highest biases when ``True``, the lowest when ``False``.
        items: the candidates (every item of the vocabulary when ``None``).

    Examples:
        >>> from lamina.collab.models import EmbeddingDotBias
        >>> m = EmbeddingDotBias(2, n_users=2, n_items=4)
        >>> m.classes = {"user": ["#na#", "ann"], "item": ["#na#", "tea", "jam", "egg"]}
        >>> with torch.no_grad(): m.item_bias.weight[1:, 0] = torch.tensor([0.5, -1.0, 2.0])
        >>> rank_by_bias(m, 2)
        [('egg', 2.0), ('tea', 0.5)]
        >>> rank_by_bias(m, 1, liked=False)
        [('jam', -1.0)]
    """
    if model.classes is None:
        raise ValueError("this model has no vocabularies: set model.classes = dls.classes (collab_learner does)")
    names = list(model.classes["item"][1:] if items is None else items)
    biases = model.bias(names, is_item=True)
    order = torch.argsort(biases, descending=liked, stable=True)[:n]
    return [(names[int(i)], round(float(biases[i]), 4)) for i in order]


def plot_item_pca(
    model: NamedEmbeddings,
    items: Sequence[Any],
    components: tuple[int, int] = (0, 1),
    labels: Sequence[str] | None = None,
    figsize: tuple[float, float] = (10.0, 10.0),
) -> Any:
    """Scatter the named items on two principal axes of their factors, each point labelled; returns the figure.

    The axes are computed from the factors of ``items`` only, so choose items with enough ratings (e.g. the most
    rated: ``dls.most_rated_items(50)``).

    Args:
        model: a collab model with ``weight(names)`` and ``classes``.
        items: the items to draw (at least 3).
        components: which two principal axes (0-based).
        labels: the text of each point (``str(item)`` when ``None``).
        figsize: size of the figure.

    Examples:
        >>> from lamina.collab.models import EmbeddingDotBias
        >>> m = EmbeddingDotBias(4, n_users=2, n_items=5)
        >>> m.classes = {"user": ["#na#", "ann"], "item": ["#na#", "a", "b", "c", "d"]}
        >>> fig = plot_item_pca(m, ["a", "b", "c", "d"])
        >>> len(fig.axes[0].texts)
        4
    """
    import matplotlib.pyplot as plt

    if len(items) < 3:
        raise ValueError(f"plot_item_pca needs at least 3 items to find principal axes, got {len(items)}")
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"labels needs one text per item ({len(items)}), got {len(labels)}")
    coords = pca(model.weight(items, is_item=True), max(components) + 1)
    xs, ys = coords[:, components[0]].tolist(), coords[:, components[1]].tolist()
    fig, ax = plt.subplots(figsize=figsize)
    ax.scatter(xs, ys, s=12, color="tab:blue")
    for x, y, text in zip(xs, ys, labels if labels is not None else [str(i) for i in items]):
        ax.annotate(text, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"principal axis {components[0]}")
    ax.set_ylabel(f"principal axis {components[1]}")
    ax.set_title("item factors")
    return fig
