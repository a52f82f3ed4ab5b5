"""`from lamina.tabular.all import *`: one import for notebooks, built from the floors' `__all__` lists."""

from lamina.tabular import all as tabular_all
from tests.all_namespace import check_namespace, shadowed


def test_the_namespace_is_every_floors_public_names_and_nothing_private():
    check_namespace(tabular_all, "tabular")


def test_the_names_a_tabular_notebook_needs_are_there():
    assert {
        "TabularDataLoaders",
        "tabular_learner",
        "rmse",
        "Categorify",
        "FillMissing",
        "load_learner",
        "Learner",
    } <= set(tabular_all.__all__)


def test_only_the_intended_names_are_shadowed_by_a_later_floor():
    assert shadowed(tabular_all) == {"Normalize": ("lamina.data", "lamina.tabular")}
