"""Collaborative-filtering models: dot product of factors plus biases, and embeddings through an MLP.

Both take ``x``, a LongTensor ``N x 2`` of (user index, item index), and return ``N`` predictions. Row 0 of every
embedding is the ``"#na#"`` entry: zero and never trained (``padding_idx=0``), so an unknown user or item adds
nothing. After construction a model can be given the vocabularies (``model.classes``, not part of the state dict),
so that ``weight`` and ``bias`` take user and item names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lamina.collab.core import encode_names
from lamina.nn.layers import emb_sz_rule, sigmoid_range
from lamina.nn.registry import register_model

__all__ = ["EmbeddingDotBias", "EmbeddingNN", "NamedEmbeddings", "emb_sz_rule", "sigmoid_range"]


def _embedding(n: int, dim: int) -> nn.Embedding:
    """An embedding with small truncated-normal weights and a zero, untrained row 0 (``"#na#"``)."""
    if n < 1 or dim < 1:
        raise ValueError(f"an embedding needs at least 1 row and 1 column, got {n} x {dim}")
    emb = nn.Embedding(n, dim, padding_idx=0)
    with torch.no_grad():
        nn.init.trunc_normal_(emb.weight, std=0.01, a=-0.02, b=0.02)
        emb.weight[0].zero_()
    return emb


def _check_y_range(y_range: Sequence[float] | None) -> tuple[float, float] | None:
    if y_range is None:
        return None
    low, high = (float(v) for v in y_range)
    if not low < high:
        raise ValueError(f"y_range must be (low, high) with low < high, got {tuple(y_range)}")
    return low, high


class NamedEmbeddings(nn.Module):
    """Base of the collab models: looks users and items up by name through ``classes`` (the vocabularies).

    Examples:
        >>> m = EmbeddingDotBias(2, n_users=3, n_items=3)
        >>> m.classes = {"user": ["#na#", "ann", "bob"], "item": ["#na#", "tea", "jam"]}
        >>> m.indices(["jam"], is_item=True).tolist()
        [2]
    """

    classes: dict[str, list[Any]] | None = None
    user_weight: nn.Embedding
    item_weight: nn.Embedding

    def indices(self, names: Iterable[Any], is_item: bool = True) -> Tensor:
        """The embedding rows of users (or items) given by name; an unknown name is an error naming it.

        Args:
            names: user or item names, as in the data (a list, array or Series).
            is_item: items when ``True``, users when ``False``.
        """
        if self.classes is None:
            raise ValueError("this model has no vocabularies: set model.classes = dls.classes (collab_learner does)")
        kind = "item" if is_item else "user"
        if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
            raise TypeError(f"names must be a list of {kind} names, got {names!r}; wrap a single name in a list")
        return encode_names(list(names), self.classes[kind], kind)

    def weight(self, names: Iterable[Any], is_item: bool = True) -> Tensor:
        """The factor (embedding) vectors of the named items (or users), detached, one row per name.

        Args:
            names: user or item names, as in the data (a list, array or Series).
            is_item: items when ``True``, users when ``False``.
        """
        table = self.item_weight if is_item else self.user_weight
        return table.weight[self.indices(names, is_item).to(table.weight.device)].detach().cpu()

    def bias(self, names: Iterable[Any], is_item: bool = True) -> Tensor:
        """The learned biases of the named items (or users); this model has none (an ``EmbeddingNN``), so this
        raises: use ``EmbeddingDotBias`` (``collab_learner(dls, use_nn=False)``) to rank items by bias.

        Args:
            names: user or item names, as in the data (a list, array or Series).
            is_item: items when ``True``, users when ``False``.

        Examples:
            >>> EmbeddingNN([(2, 2), (2, 2)], layers=[2]).bias(["x"])
            Traceback (most recent call last):
            ...
            TypeError: EmbeddingNN has no per-user or per-item biases...
        """
        raise TypeError(
            f"{type(self).__name__} has no per-user or per-item biases: train an EmbeddingDotBias (collab_learner("
            "dls, use_nn=False)) to rank items by bias, or use weight(names) for the embeddings"
        )


@register_model("EmbeddingDotBias")
class EmbeddingDotBias(NamedEmbeddings):
    """Prediction = user factors . item factors + user bias + item bias, through ``sigmoid_range`` when ``y_range``.

    Args:
        n_factors: width of the factor vectors.
        n_users: number of users (vocabulary size, ``"#na#"`` included).
        n_items: number of items (vocabulary size, ``"#na#"`` included).
        y_range: ``(low, high)`` bounds of the predictions; unbounded when ``None``.

    Examples:
        >>> m = EmbeddingDotBias(4, n_users=3, n_items=5, y_range=(0.0, 5.5))
        >>> out = m(torch.tensor([[1, 2], [2, 4]]))
        >>> out.shape, bool(((out > 0) & (out < 5.5)).all())
        (torch.Size([2]), True)
    """

    def __init__(self, n_factors: int, n_users: int, n_items: int, y_range: Sequence[float] | None = None) -> None:
        super().__init__()
        self.y_range = _check_y_range(y_range)
        self.user_weight, self.item_weight = _embedding(n_users, n_factors), _embedding(n_items, n_factors)
        self.user_bias, self.item_bias = _embedding(n_users, 1), _embedding(n_items, 1)

    def forward(self, x: Tensor) -> Tensor:
        users, items = x[:, 0], x[:, 1]
        dot = (self.user_weight(users) * self.item_weight(items)).sum(1)
        res = dot + self.user_bias(users).squeeze(1) + self.item_bias(items).squeeze(1)
        return res if self.y_range is None else sigmoid_range(res, *self.y_range)

    def bias(self, names: Iterable[Any], is_item: bool = True) -> Tensor:
        """The learned biases of the named items (or users), detached: how much more (or less) they are liked than
        their factors explain.

        Args:
            names: user or item names, as in the data (a list, array or Series).
            is_item: items when ``True``, users when ``False``.

        Examples:
            >>> m = EmbeddingDotBias(2, n_users=2, n_items=3)
            >>> m.classes = {"user": ["#na#", "ann"], "item": ["#na#", "tea", "jam"]}
            >>> m.bias(["tea", "jam"]).shape
            torch.Size([2])
        """
        table = self.item_bias if is_item else self.user_bias
        return table.weight[self.indices(names, is_item).to(table.weight.device), 0].detach().cpu()


@register_model("EmbeddingNN")
class EmbeddingNN(NamedEmbeddings):
    """User and item embeddings, concatenated, through an MLP (Linear, ReLU, BatchNorm, Dropout per layer).

    Args:
        emb_szs: ``[(n_users, user_width), (n_items, item_width)]``.
        layers: widths of the hidden layers.
        ps: dropout after each hidden layer (one value for all, or one per layer).
        embed_p: dropout on the concatenated embeddings.
        y_range: ``(low, high)`` bounds of the predictions; unbounded when ``None``.
        use_bn: batch normalization after each hidden layer's activation.

    Examples:
        >>> m = EmbeddingNN([(3, 4), (5, 6)], layers=[8], y_range=(0.0, 5.5)).eval()
        >>> m(torch.tensor([[1, 2], [2, 4]])).shape
        torch.Size([2])
    """

    def __init__(
        self,
        emb_szs: Sequence[Sequence[int]],
        layers: Sequence[int] = (100,),
        ps: float | Sequence[float] = 0.0,
        embed_p: float = 0.0,
        y_range: Sequence[float] | None = None,
        use_bn: bool = True,
    ) -> None:
        super().__init__()
        if len(emb_szs) != 2 or any(len(s) != 2 for s in emb_szs):
            raise ValueError(f"emb_szs must be [(n_users, width), (n_items, width)], got {emb_szs!r}")
        drops = [float(ps)] * len(layers) if isinstance(ps, (int, float)) else [float(p) for p in ps]
        if len(drops) != len(layers):
            raise ValueError(f"ps needs one dropout per layer ({len(layers)}), got {len(drops)}")
        self.y_range = _check_y_range(y_range)
        (n_users, user_width), (n_items, item_width) = emb_szs
        self.user_weight, self.item_weight = _embedding(n_users, user_width), _embedding(n_items, item_width)
        self.embed_drop = nn.Dropout(embed_p)
        blocks: list[nn.Module] = []
        width = user_width + item_width
        for size, p in zip(layers, drops):
            blocks += [nn.Linear(width, size), nn.ReLU(), *([nn.BatchNorm1d(size)] if use_bn else []), nn.Dropout(p)]
            width = size
        self.layers = nn.Sequential(*blocks, nn.Linear(width, 1))

    def forward(self, x: Tensor) -> Tensor:
        emb = torch.cat([self.user_weight(x[:, 0]), self.item_weight(x[:, 1])], dim=1)
        res = self.layers(self.embed_drop(emb)).squeeze(1)
        return res if self.y_range is None else sigmoid_range(res, *self.y_range)
