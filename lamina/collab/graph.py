"""Collaborative-filtering learners as graphs: user and item indices in, predicted ratings out.

Indices are positions in the learner's vocabularies (``learn.dls.classes``; 0 is ``"#na#"``, the zero embedding of
unknown users and items), which the graph's JSON lists; the model's ``y_range`` is inside the graph.
"""

import torch
from torch import Tensor, nn

from lamina.collab.learner import CollabLearner
from lamina.learner.graph import GraphError, InferenceGraph, register_graph

__all__ = ["CollabGraph", "collab_graph"]


class CollabGraph(nn.Module):
    """``(users, items)`` index vectors to ratings.

    Args:
        model: the learner's collab model (it takes ``N x 2`` user/item index pairs).

    Examples:
        >>> class Add(torch.nn.Module):
        ...     def forward(self, x): return x.sum(1).float()
        >>> CollabGraph(Add())(torch.tensor([1, 2]), torch.tensor([3, 4])).tolist()
        [4.0, 6.0]
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        return self.model(torch.stack([users, items], 1))


def collab_graph(learn: CollabLearner) -> InferenceGraph:
    """The :class:`~lamina.learner.graph.InferenceGraph` of a collab learner.

    Examples:
        >>> collab_graph(object())
        Traceback (most recent call last):
        ...
        lamina.learner.graph.GraphError: only a CollabLearner ...
    """
    if not isinstance(learn, CollabLearner):
        raise GraphError("only a CollabLearner (collab_learner, load_learner) can be written as a graph")
    model = learn.collab_model
    vocab = model.classes or {}
    return InferenceGraph(
        module=CollabGraph(model),
        example_inputs=(torch.tensor([1, 2, 1]), torch.tensor([1, 1, 2])),
        inputs=[{"name": "users", "dtype": "int64", "shape": ["N"], "description": "user indices in `users`"},
                {"name": "items", "dtype": "int64", "shape": ["N"], "description": "item indices in `items`"}],
        outputs=[{"name": "ratings", "dtype": "float32", "shape": ["N"], "description": "predicted ratings"}],
        info={"app": "collab", "kind": "regression", "users": vocab.get("user"), "items": vocab.get("item")},
    )  # fmt: skip


register_graph("collab", collab_graph)
