"""Procs learn their state on the training rows only, apply it everywhere, and store it as data."""

import numpy as np
import pandas as pd
import pytest
import torch
from diamonds_data import CATS, CONTS, Y, diamonds

from lamina.core.transform import transform_from_state, transform_to_state
from lamina.tabular import (
    NA_LABEL,
    Categorify,
    FillMissing,
    Normalize,
    TabularPandas,
    TabularTarget,
    add_datepart,
    cont_cat_split,
)


def _split_without(df: pd.DataFrame, column: str, value: str) -> tuple[np.ndarray, np.ndarray]:
    """Training rows never have ``column == value``; validation rows are every such row plus every fifth other."""
    hit = (df[column] == value).to_numpy()
    pos = np.arange(len(df))
    valid = hit | (pos % 5 == 0)
    return pos[~valid], pos[valid]


def test_a_category_seen_only_in_validation_maps_to_na():
    df = diamonds()
    train, valid = _split_without(df, "clarity", "I1")
    to = TabularPandas(df, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=(train, valid))
    vocab = next(p for p in to.processor.procs if isinstance(p, Categorify)).classes_["clarity"]
    assert vocab[0] == NA_LABEL and "I1" not in vocab
    col = to.processor.cat_names_.index("clarity")
    i1_rows = np.flatnonzero(df["clarity"].to_numpy()[valid] == "I1")
    assert len(i1_rows) > 0
    assert (to.valid.cats[i1_rows, col] == 0).all()
    assert (to.train.cats[:, col] > 0).all()


def test_the_fill_value_is_the_median_of_the_training_rows_and_missing_rows_are_flagged():
    df = diamonds()
    train, valid = np.arange(0, 2000), np.arange(2000, 3000)
    df.loc[df.index[::7], "carat"] = np.nan
    df.loc[2000:, "carat"] = df.loc[2000:, "carat"] * 10  # validation rows would move a median taken over all rows
    to = TabularPandas(df, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=(train, valid))
    fill = next(p for p in to.processor.procs if isinstance(p, FillMissing))
    assert fill.fill_["carat"] == pytest.approx(df["carat"].iloc[train].median())
    assert fill.fill_["carat"] != pytest.approx(df["carat"].median())
    assert "carat_na" in to.processor.cat_names_
    decoded = to.processor.decode(to.valid.cats, to.valid.conts)
    missing = df["carat"].iloc[valid].isna().to_numpy()
    assert decoded["carat"][missing].to_numpy() == pytest.approx(fill.fill_["carat"], rel=1e-5)
    assert decoded["carat_na"][missing].tolist() == [True] * int(missing.sum())
    assert decoded["carat_na"][~missing].tolist() == [False] * int((~missing).sum())


def test_normalize_uses_the_statistics_of_the_training_rows():
    df = diamonds()
    train, valid = np.arange(0, 2400), np.arange(2400, 3000)
    to = TabularPandas(df, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=(train, valid))
    norm = next(p for p in to.processor.procs if isinstance(p, Normalize))
    assert norm.means_["depth"] == pytest.approx(df["depth"].iloc[train].mean())
    col = to.processor.cont_names_.index("depth")
    assert float(to.train.conts[:, col].mean()) == pytest.approx(0.0, abs=1e-4)
    expected = (df["depth"].iloc[valid] - norm.means_["depth"]) / norm.stds_["depth"]
    assert to.valid.conts[:, col].numpy() == pytest.approx(expected.to_numpy(), abs=1e-4)


def test_procs_round_trip_through_state_without_pickle():
    df = diamonds(500)
    df.loc[df.index[::9], "table"] = np.nan
    to = TabularPandas(df, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=(np.arange(400), np.arange(400, 500)))
    tensors: dict = {}
    states = [transform_to_state(p, tensors, f"p{i}") for i, p in enumerate(to.processor.procs)]
    import json

    json.dumps(states)  # JSON-safe: nothing needs pickle
    rebuilt = [transform_from_state(s, tensors) for s in states]
    for before, after in zip(to.processor.procs, rebuilt):
        assert type(after) is type(before) and after.get_state() == before.get_state()


def test_single_label_targets_get_a_vocab_and_class_indices():
    df = diamonds(600)
    to = TabularPandas(df, cat_names=["color", "clarity"], cont_names=CONTS, y_names="cut",
                       splits=(np.arange(500), np.arange(500, 600)))  # fmt: skip
    target = to.processor.target
    assert target is not None and target.kind == "single"
    assert target.vocab_ == sorted(df["cut"].iloc[:500].unique())
    assert to.ys.dtype == torch.int64
    assert target.decode(to.ys[:5]).tolist() == df["cut"].iloc[:5].tolist()


def test_multi_label_targets_become_multi_hot_rows():
    df = diamonds(300)
    df["labels"] = df["cut"] + ";" + df["color"]
    target = TabularTarget("multi", label_delim=";")
    target.setup(df[["labels"]])
    hot = target(df[["labels"]])
    assert hot.shape == (300, len(target.vocab_)) and (hot.sum(1) == 2).all()
    assert sorted(target.decode(hot[:1])[0]) == sorted([df["cut"][0], df["color"][0]])


def test_cont_cat_split_and_add_datepart_on_real_columns():
    df = diamonds(300)
    conts, cats = cont_cat_split(df, dep_var=Y)
    assert sorted(cats) == sorted(CATS) and sorted(conts) == sorted(CONTS)
    dates = pd.DataFrame({"saledate": pd.date_range("2024-12-30", periods=3, freq="D")})
    out = add_datepart(dates, "saledate")
    assert "saledate" not in out.columns
    assert out["saleYear"].tolist() == [2024, 2024, 2025] and out["saleIs_year_start"].tolist() == [False] * 2 + [True]


def test_a_categorical_column_with_100_000_values_warns_naming_it_before_any_training():
    import time
    import warnings

    n = 100_000  # an ID column: one value per row
    df = pd.DataFrame({"order_id": [f"o{i}" for i in range(n)], "cut": np.resize(diamonds(500)["cut"].to_numpy(), n),
                       "price": np.linspace(0.0, 1.0, n)})  # fmt: skip
    start = time.perf_counter()
    with pytest.warns(UserWarning, match=r"categorical column 'order_id' has 100,000 distinct values.*"
                      r"max_card=10,000.*100,001 rows x 600.*drop it.*Categorify\(max_vocab=") as caught:  # fmt: skip
        to = TabularPandas(df, cat_names=["order_id", "cut"], y_names="price")
    assert time.perf_counter() - start < 5  # only the table was processed: no model was built, nothing trained
    assert [str(w.message).split("'")[1] for w in caught if "distinct values" in str(w.message)] == ["order_id"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TabularPandas(df.iloc[:20_000], procs=[Categorify(max_card=None)], cat_names=["order_id", "cut"])
    assert len(to.processor.procs[1].classes_["order_id"]) == n + 1


def test_max_vocab_keeps_the_most_frequent_labels_and_maps_the_rest_to_na():
    df = diamonds(3_000)
    counts = df["clarity"].value_counts()
    proc = Categorify(max_vocab=3)
    to = TabularPandas(df, procs=[proc], cat_names=["clarity"], cont_names=[])
    kept = proc.classes_["clarity"]
    assert kept[0] == NA_LABEL and set(kept[1:]) == set(counts.index[:3]) and kept[1:] == sorted(kept[1:])
    rare = ~df["clarity"].isin(kept[1:]).to_numpy()
    assert (to.cats[rare, 0] == 0).all() and (to.cats[~rare, 0] > 0).all()
    again = transform_from_state(transform_to_state(proc, {}), {})
    assert (again.max_card, again.max_vocab, again.classes_) == (10_000, 3, proc.classes_)
