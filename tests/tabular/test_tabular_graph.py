"""A tabular learner leaves Python: its graph takes category codes and raw values (NaN where missing), fills,
flags and normalizes inside, and in a process where lamina cannot be imported predicts what `learn.predict` does on
50 real diamonds, for a regression and a classification target, in every graph format."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diamonds_data import CATS, CONTS, Y, diamonds, valid_positions

from lamina.learner import load_learner
from lamina.tabular import TabularDataLoaders, graph_inputs, tabular_learner
from tests.graph_runner import run_graph

FORMATS = [("pt2", "pt2"), ("torchscript", "pt"), ("onnx", "onnx")]


def _fit(df, y_names, cat_names):
    torch.manual_seed(0)
    dls = TabularDataLoaders.from_df(df, cat_names=cat_names, cont_names=CONTS, y_names=y_names,
                                     valid_idx=valid_positions(len(df)), bs=64, seed=0)  # fmt: skip
    learn = tabular_learner(dls)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1)
    return learn


def _with_gaps(df):
    """Real rows with some values missing (so FillMissing learns fills and adds flag columns)."""
    df = df.copy()
    rng = np.random.default_rng(0)
    for c in ("carat", "depth"):
        df.loc[rng.random(len(df)) < 0.05, c] = np.nan
    return df


@pytest.fixture(scope="module")
def regression():
    df = _with_gaps(diamonds(1500))
    return _fit(df, Y, CATS), df


@pytest.fixture(scope="module")
def classification():
    df = _with_gaps(diamonds(1500))
    return _fit(df, "cut", ["color", "clarity"]), df


@pytest.mark.parametrize("fmt,ext", FORMATS)
@pytest.mark.parametrize("which", ["regression", "classification"])
def test_a_tabular_graph_runs_without_lamina_and_agrees_with_predict_on_50_rows(which, fmt, ext, request, tmp_path):
    learn, df = request.getfixturevalue(which)
    rows = df.iloc[-50:].reset_index(drop=True)
    assert rows[["carat", "depth"]].isna().any().any(), "some rows have missing values"
    path = learn.export_graph(tmp_path / f"model.{ext}", format=fmt)
    ((preds, index),) = run_graph(path, fmt, [tuple(t.numpy() for t in graph_inputs(learn, rows))])
    for k in range(len(rows)):
        decoded, dec, p = learn.predict(rows.iloc[k])
        np.testing.assert_allclose(preds[k], p.numpy(), rtol=1e-5, atol=1e-5)
        if which == "classification":
            assert int(index[k]) == int(dec) and learn.dls.vocab[int(index[k])] == decoded


def test_unknown_categories_get_code_0_and_the_description_lists_columns_codes_and_labels(classification, tmp_path):
    learn, df = classification
    rows = df.iloc[:2].copy()
    rows.loc[0, "color"] = "not a colour"
    cats, conts = graph_inputs(learn, rows)
    assert cats[0, 0] == 0 and cats[1, 0] > 0 and conts.dtype == torch.float32
    path = learn.export_graph(tmp_path / "cut.pt2")
    spec = json.loads(Path(f"{path}.json").read_text())
    assert spec["app"] == "tabular" and spec["kind"] == "single" and spec["labels"] == learn.dls.vocab
    cats_spec, conts_spec = spec["inputs"]
    assert cats_spec["columns"] == ["color", "clarity"] and conts_spec["columns"] == CONTS
    assert cats_spec["codes"]["color"][cats[1, 0]] == rows.loc[1, "color"]


def test_a_loaded_export_writes_the_same_graph(regression, tmp_path):
    learn, df = regression
    loaded = load_learner(learn.export(tmp_path / "diamonds.lamina"))
    rows = df.iloc[:10].reset_index(drop=True)
    inputs = [tuple(t.numpy() for t in graph_inputs(loaded, rows))]
    ((a, _),) = run_graph(learn.export_graph(tmp_path / "a.pt", format="torchscript"), "torchscript", inputs)
    ((b, _),) = run_graph(loaded.export_graph(tmp_path / "b.pt", format="torchscript"), "torchscript", inputs)
    np.testing.assert_allclose(a, b, rtol=1e-6)
