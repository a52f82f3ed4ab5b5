"""Collaborative filtering: ratings of items by users, learned as user and item factors.

``CollabDataLoaders.from_df`` -> ``collab_learner`` -> ``fit_one_cycle`` -> ``predict_pairs`` / ``most_liked`` /
``plot_item_pca`` -> ``export``; ``lamina.learner.load_learner`` brings an export back without this training code.
"""

from lamina.collab.analysis import pca, plot_item_pca, rank_by_bias
from lamina.collab.core import NA, UNKNOWN_POLICIES, UnknownNameError, encode_names, make_vocab
from lamina.collab.data import CollabDataLoaders, encode_ratings, resolve_columns, valid_mask
from lamina.collab.graph import CollabGraph, collab_graph
from lamina.collab.learner import CollabLearner, collab_learner, collab_model_spec
from lamina.collab.models import EmbeddingDotBias, EmbeddingNN, NamedEmbeddings, emb_sz_rule, sigmoid_range

__all__ = [
    "NA",
    "UNKNOWN_POLICIES",
    "CollabDataLoaders",
    "CollabGraph",
    "CollabLearner",
    "EmbeddingDotBias",
    "EmbeddingNN",
    "NamedEmbeddings",
    "UnknownNameError",
    "collab_graph",
    "collab_learner",
    "collab_model_spec",
    "emb_sz_rule",
    "encode_names",
    "encode_ratings",
    "make_vocab",
    "pca",
    "plot_item_pca",
    "rank_by_bias",
    "resolve_columns",
    "sigmoid_range",
    "valid_mask",
]
