"""The ULMFiT learners on real tweets: the language model trains and writes, its encoder moves to a classifier that
unfreezes gradually, and inference (predict, validate, interpretation) leaves the learners as it found them."""

import pandas as pd
import pytest
import torch

from lamina.learner.metrics import Perplexity, accuracy
from lamina.text import TextDataLoaders
from lamina.text.learner import (
    LMLearner,
    RNNRegularizer,
    TextClassifierLearner,
    language_model_learner,
    text_classifier_learner,
)
from lamina.text.models import AWD_LSTM
from tests.text.tweets_data import tweets

TINY = {"emb_sz": 16, "n_hid": 24, "n_layers": 2}


@pytest.fixture(scope="module")
def trained_lm(tmp_path_factory):
    torch.manual_seed(0)
    df = tweets(300)
    dls = TextDataLoaders.from_df(df, is_lm=True, valid_col="is_valid", bs=16, seq_len=20, seed=0, min_freq=2)
    learn = language_model_learner(
        dls,
        AWD_LSTM,
        config=TINY,
        metrics=[accuracy, Perplexity()],
        path=tmp_path_factory.mktemp("lm"),
        show_progress=False,
        logger=None,
    )
    before = learn.validate()
    learn.fit_one_cycle(2, 2e-2)
    return learn, before, df


@pytest.fixture(scope="module")
def classifier(trained_lm):
    lm, _, df = trained_lm
    lm.save_encoder("enc")
    dls = TextDataLoaders.from_df(
        df, label_col="sentiment", valid_col="is_valid", bs=16, seed=0, text_vocab=lm.text_vocab
    )
    learn = text_classifier_learner(
        dls, AWD_LSTM, config=TINY, seq_len=12, path=lm.path, show_progress=False, logger=None
    )
    learn.load_encoder("enc")
    return learn


def test_the_language_model_learns_the_tweets_and_reports_perplexity(trained_lm):
    learn, before, _ = trained_lm
    after = learn.validate()
    assert isinstance(learn, LMLearner) and len(after) == 3
    assert after[0] < before[0] - 0.5
    assert after[2] < before[2] and 1 < after[2] < len(learn.text_vocab)  # perplexity: exp of the per-token loss


def test_predict_continues_a_text_by_n_words_and_a_seed_makes_it_repeatable(trained_lm):
    learn = trained_lm[0]
    start = "I think self driving cars"
    text = learn.predict(start, n_words=6, temperature=0.8, seed=1)
    assert text.lower().startswith("i think self driving cars")
    assert len(learn.numericalize(text)) > len(learn.numericalize(start))
    assert text == learn.predict(start, n_words=6, temperature=0.8, seed=1)
    assert learn.predict(start, n_words=6, temperature=0) == learn.predict(start, n_words=6, temperature=0)


def test_inference_leaves_the_language_models_carried_state_and_mode_alone(trained_lm):
    learn = trained_lm[0]
    learn.model.train()
    learn.model(learn.dls.train.one_batch()[0].as_plain())
    carried = learn.model.encoder.hidden
    first = learn.validate()
    learn.predict("hello", n_words=3)
    assert learn.model.encoder.hidden is carried
    assert learn.validate() == first  # every validation starts from a reset state
    learn.model.reset()


def test_the_activation_regularizers_raise_the_training_loss_and_leave_no_hooks(trained_lm):
    learn = trained_lm[0]
    one = learn.dls.train.one_batch()
    learn.model.train()
    losses = {}
    for alpha in (0.0, 50.0):
        reg = RNNRegularizer(alpha=alpha, beta=alpha)
        reg.learn = learn
        reg.before_fit()
        reg.before_batch()
        torch.manual_seed(0)
        learn.training, learn.loss = True, torch.tensor(1.0)
        learn.model(one[0].as_plain())
        reg.after_loss()
        losses[alpha] = float(learn.loss.detach())
        reg.after_fit()
    learn.training = False
    assert losses[0.0] == 1.0 and losses[50.0] > 1.0
    assert not learn.model.encoder.rnns[-1]._forward_hooks and not learn.model.output_dp._forward_hooks


def test_load_encoder_copies_the_language_models_encoder_into_the_classifier(trained_lm, classifier):
    lm = trained_lm[0]
    for k, v in lm.model.encoder.state_dict().items():
        assert torch.equal(classifier.model.encoder.state_dict()[k], v), k


def test_load_encoder_matches_words_by_name_when_the_vocabularies_differ(trained_lm):
    lm, _, df = trained_lm
    dls = TextDataLoaders.from_df(df, label_col="sentiment", valid_col="is_valid", bs=16, seed=0, min_freq=1)
    other = text_classifier_learner(dls, AWD_LSTM, config=TINY, path=lm.path, show_progress=False, logger=None)
    other.load_encoder("enc")
    emb, lm_emb = other.model.encoder.embedding.weight, lm.model.encoder.embedding.weight
    shared = next(t for t in other.text_vocab[10:] if t in lm.text_vocab)
    assert torch.equal(emb[other.text_vocab.index(shared)], lm_emb[lm.text_vocab.index(shared)])
    new = next(t for t in other.text_vocab if t not in lm.text_vocab)
    assert torch.allclose(emb[other.text_vocab.index(new)], lm_emb.mean(0))


def test_load_encoder_refuses_an_encoder_of_another_size_and_loads_nothing(trained_lm, classifier):
    lm, _, _df = trained_lm
    dls = classifier.dls
    wide = text_classifier_learner(dls, AWD_LSTM, config={**TINY, "n_hid": 30}, path=lm.path, show_progress=False)
    kept = wide.model.encoder.rnns[0].weight_hh.clone()
    with pytest.raises(ValueError, match="does not fit this encoder"):
        wide.load_encoder("enc")
    assert torch.equal(wide.model.encoder.rnns[0].weight_hh, kept)


def test_freeze_to_minus_two_trains_the_last_lstm_layer_and_the_head_only(classifier):
    learn = classifier
    learn.freeze_to(-2)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.fit(1, 1e-2)
    after = learn.model.state_dict()
    assert torch.equal(before["encoder.embedding.weight"], after["encoder.embedding.weight"])
    assert torch.equal(before["encoder.rnns.0.weight_hh"], after["encoder.rnns.0.weight_hh"])
    assert not torch.equal(before["encoder.rnns.1.weight_hh"], after["encoder.rnns.1.weight_hh"])
    assert not torch.equal(before["head.layers.2.weight"], after["head.layers.2.weight"])
    learn.unfreeze()


def test_classifier_predict_gives_label_index_and_probabilities_and_changes_nothing(classifier):
    learn = classifier
    state = {k: v.clone() for k, v in learn.model.state_dict().items()}
    label, index, probs = learn.predict("I love my new self-driving car!")
    assert isinstance(learn, TextClassifierLearner) and label in learn.vocab and learn.vocab[int(index)] == label
    assert probs.shape == (3,) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in state.items())
    assert learn.predict_texts(["I love my new self-driving car!", "meh"])[0] == label


def test_show_results_is_a_table_of_readable_texts_targets_and_predictions(classifier, capsys):
    df = classifier.show_results(max_n=4)
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["text", "target", "prediction"] and len(df) == 4
    assert not df.text.str.contains("xxpad").any() and set(df.target) <= set(classifier.vocab)
    assert "prediction" in capsys.readouterr().out


def test_interpretation_counts_every_validation_text_and_saves_its_figures(classifier, tmp_path):
    interp = classifier.interpret()
    cm = interp.confusion_matrix()
    n_valid = len(classifier.dls.valid.dataset)
    assert cm.shape == (3, 3) and cm.sum() == n_valid
    top = interp.top_losses(5)
    assert list(top.loss) == sorted(top.loss, reverse=True) and top.text.str.len().min() > 0
    assert (top.target != top.prediction).sum() >= 1
    interp.plot_confusion_matrix().savefig(tmp_path / "confusion.png")
    interp.plot_top_losses(5).savefig(tmp_path / "top_losses.png")
    assert (tmp_path / "confusion.png").stat().st_size > 5000 and (tmp_path / "top_losses.png").stat().st_size > 5000


def test_the_factories_refuse_other_architectures_and_data_without_a_tokenizer(classifier):
    with pytest.raises(ValueError, match="AWD_LSTM"):
        text_classifier_learner(classifier.dls, "gru")
    ids_dls = TextDataLoaders.from_ids([[5, 6], [7], [8, 9], [5]], ["a", "b", "a", "b"], [3], pad_idx=0, bs=2)
    with pytest.raises(TypeError, match="tokenizer"):
        text_classifier_learner(ids_dls, AWD_LSTM)
