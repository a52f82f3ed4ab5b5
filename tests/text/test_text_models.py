"""The AWD-LSTM, its language model and its classifier keep the promises the ULMFiT recipe relies on."""

import warnings

import pytest
import torch
from torch import nn

from lamina.nn.registry import build_model
from lamina.text.models import (
    AWD_LSTM,
    WeightDropLSTM,
    awd_lstm_classifier_split,
    awd_lstm_lm_split,
    embedding_dropout,
    get_language_model,
    get_text_classifier,
    masked_concat_pool,
    sequence_dropout,
)

NO_DROPOUT = {"hidden_p": 0.0, "input_p": 0.0, "embed_p": 0.0, "weight_p": 0.0}


def small_encoder(**kwargs):
    return AWD_LSTM(40, emb_sz=6, n_hid=10, n_layers=3, **{**NO_DROPOUT, **kwargs})


def test_weight_drop_lstm_without_dropout_computes_what_torch_lstm_computes():
    torch.manual_seed(0)
    layer = WeightDropLSTM(5, 7, weight_p=0.0)
    ref = nn.LSTM(5, 7, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, f"{name}_l0").copy_(getattr(layer, name))
    x = torch.randn(3, 9, 5)
    out, (h, c) = layer(x)
    ref_out, (ref_h, ref_c) = ref(x)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(h, ref_h, atol=1e-6)
    assert torch.allclose(c, ref_c, atol=1e-6)


def test_weight_drop_draws_a_new_hidden_weight_mask_each_training_call_and_none_in_eval_without_warnings():
    torch.manual_seed(0)
    layer = WeightDropLSTM(4, 6, weight_p=0.5)
    x = torch.randn(2, 5, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = layer(x)[0], layer(x)[0]
        a.sum().backward()
        layer.eval()
        e1, e2 = layer(x)[0], layer(x)[0]
    assert not torch.allclose(a, b)
    assert torch.equal(e1, e2)
    assert layer.weight_hh.grad is not None and layer.weight_hh.grad.abs().sum() > 0


def test_embedding_dropout_removes_whole_words_and_sequence_dropout_keeps_one_mask_per_sequence():
    torch.manual_seed(0)
    w = embedding_dropout(torch.ones(200, 3), 0.5)
    dropped = (w == 0).all(1)
    assert 50 < int(dropped.sum()) < 150 and torch.all(w[~dropped] == 2.0)
    out = sequence_dropout(torch.ones(4, 7, 16), 0.5)
    assert torch.equal(out, out[:, :1].expand_as(out)) and (out == 0).any()
    assert torch.equal(sequence_dropout(torch.ones(2, 3, 4), 0.5, training=False), torch.ones(2, 3, 4))


def test_the_encoder_carries_its_state_between_calls_until_reset():
    torch.manual_seed(0)
    enc = small_encoder().eval()
    x = torch.randint(2, 40, (2, 10))
    whole, _ = enc.encode(x)
    first, second = enc(x[:, :6]), enc(x[:, 6:])
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-6)
    enc.reset()
    assert torch.allclose(enc(x[:, 6:]), enc.encode(x[:, 6:])[0])  # from zeros again


def test_encode_is_pure_and_a_batch_of_another_size_starts_from_zeros():
    enc = small_encoder().eval()
    enc(torch.randint(2, 40, (3, 4)))
    kept = [t.clone() for t in enc.hidden[0]]
    enc.encode(torch.randint(2, 40, (3, 4)))
    assert all(torch.equal(a, b) for a, b in zip(kept, enc.hidden[0]))
    x = torch.randint(2, 40, (5, 4))
    assert torch.allclose(enc(x), enc.encode(x)[0])


def test_the_encoder_rejects_float_inputs_and_out_of_range_settings():
    with pytest.raises(ValueError, match="token ids"):
        small_encoder()(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="weight_p must be in"):
        AWD_LSTM(10, weight_p=1.0)
    with pytest.raises(ValueError, match="pad_idx"):
        AWD_LSTM(10, pad_idx=10)


def test_the_language_model_decoder_shares_the_embedding_matrix():
    lm = get_language_model(40, emb_sz=6, n_hid=10, n_layers=2)
    assert lm.decoder.decoder.weight is lm.encoder.embedding.weight
    lm(torch.randint(0, 40, (2, 5))).sum().backward()
    assert lm.encoder.embedding.weight.grad is not None


def test_a_tiny_language_model_learns_a_repeating_sequence():
    torch.manual_seed(0)
    lm = get_language_model(14, emb_sz=16, n_hid=32, n_layers=2, **NO_DROPOUT, output_p=0.0)
    stream = torch.arange(2, 14).repeat(40)  # 2, 3, ..., 13, 2, 3...
    opt = torch.optim.Adam(lm.parameters(), lr=3e-2)
    for step in range(80):
        start = (step * 7) % 300
        x = torch.stack([stream[start + i * 20 : start + i * 20 + 10] for i in range(4)])
        y = torch.stack([stream[start + i * 20 + 1 : start + i * 20 + 11] for i in range(4)])
        loss = nn.functional.cross_entropy(lm(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        lm.reset()
    lm.eval()
    acc = (lm(stream[None, :50]).argmax(-1) == stream[None, 1:51]).float().mean()
    assert acc > 0.95


def test_masked_concat_pool_ignores_padding():
    out = torch.tensor([[[100.0], [1.0], [3.0]], [[2.0], [4.0], [6.0]]])
    mask = torch.tensor([[True, False, False], [False, False, False]])
    assert masked_concat_pool(out, mask).tolist() == [[3.0, 3.0, 2.0], [6.0, 6.0, 4.0]]
    assert masked_concat_pool(out, torch.ones(2, 3, dtype=torch.bool))[0, 1:].tolist() == [0.0, 0.0]


def test_the_classifier_reads_a_long_text_in_chunks_exactly_as_in_one_pass():
    torch.manual_seed(0)
    chunked = get_text_classifier(40, 3, emb_sz=6, n_hid=10, n_layers=2, seq_len=4, **NO_DROPOUT).eval()
    whole = get_text_classifier(40, 3, emb_sz=6, n_hid=10, n_layers=2, seq_len=64, **NO_DROPOUT).eval()
    whole.load_state_dict(chunked.state_dict())
    x = torch.randint(2, 40, (2, 23))
    assert torch.allclose(chunked(x), whole(x), atol=1e-5)


def test_padding_chunks_before_a_text_do_not_change_its_prediction():
    torch.manual_seed(0)
    clf = get_text_classifier(40, 3, emb_sz=6, n_hid=10, n_layers=2, seq_len=4, **NO_DROPOUT).eval()
    text = torch.randint(2, 40, (1, 8))
    padded = torch.cat([torch.full((1, 8), 1), text], 1)  # two chunks of padding first
    batch = torch.cat([padded, torch.randint(2, 40, (1, 16))])  # beside a text with no padding
    assert torch.allclose(clf(text)[0], clf(batch)[0], atol=1e-6)


def test_only_the_last_max_len_positions_are_trained_through():
    clf = get_text_classifier(40, 2, emb_sz=6, n_hid=10, n_layers=2, seq_len=4, max_len=4, **NO_DROPOUT)
    x = torch.cat([torch.full((2, 4), 7), torch.full((2, 4), 9)], 1)  # word 7 only in the first chunk
    clf(x).sum().backward()
    grad = clf.encoder.embedding.weight.grad
    assert grad[7].abs().sum() == 0 and grad[9].abs().sum() > 0


def test_the_splitters_give_every_parameter_to_exactly_one_group_for_gradual_unfreezing():
    clf = get_text_classifier(40, 2, emb_sz=6, n_hid=10, n_layers=3)
    groups = awd_lstm_classifier_split(clf)
    assert len(groups) == 5  # embedding, 3 LSTM layers, head
    ids = [id(p) for g in groups for p in g]
    assert sorted(ids) == sorted(id(p) for p in clf.parameters()) and len(set(ids)) == len(ids)
    lm = get_language_model(40, emb_sz=6, n_hid=10, n_layers=3)
    lm_ids = [id(p) for g in awd_lstm_lm_split(lm) for p in g]
    assert sorted(lm_ids) == sorted(id(p) for p in lm.parameters()) and len(awd_lstm_lm_split(lm)) == 4


def test_the_models_build_from_their_registered_names_with_json_arguments():
    lm = build_model("awd_lstm_lm", vocab_sz=30, config={"emb_sz": 4, "n_hid": 8, "n_layers": 2}, drop_mult=0.5)
    assert lm.encoder.rnns[0].weight_p == pytest.approx(0.1)
    with torch.device("meta"):
        clf = build_model("awd_lstm_classifier", vocab_sz=30, n_class=2, config={"emb_sz": 4, "n_hid": 8})
    assert next(clf.parameters()).is_meta
    with pytest.raises(ValueError, match="unknown AWD_LSTM config keys"):
        get_language_model(30, config={"hidden_size": 4})
