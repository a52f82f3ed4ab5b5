"""`from lamina.collab.all import *`: one import for notebooks, built from the floors' `__all__` lists."""

from lamina.collab import all as collab_all
from tests.all_namespace import check_namespace, shadowed


def test_the_namespace_is_every_floors_public_names_and_nothing_private():
    check_namespace(collab_all, "collab")


def test_the_names_a_collab_notebook_needs_are_there():
    assert {"CollabDataLoaders", "collab_learner", "rmse", "load_learner", "Learner", "EmbeddingDotBias"} <= set(
        collab_all.__all__
    )


def test_only_the_intended_names_are_shadowed_by_a_later_floor():
    assert shadowed(collab_all) == {}
