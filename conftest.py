"""Shared pytest setup: doctest names, a headless matplotlib, and figures closed after each test."""

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace: dict) -> None:
    doctest_namespace["torch"] = torch
    doctest_namespace["np"] = np


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# pytest-xdist runs one worker per core: one torch thread per worker avoids oversubscribing the machine
torch.set_num_threads(1)
