"""Text data: vocabularies, the text block in a DataBlock, classifier and language-model loaders, factories."""

import csv
import json
from collections import Counter
from operator import itemgetter

import numpy as np
import pandas as pd
import pytest
import torch

from lamina.core.serial import SerialError
from lamina.core.tensors import TensorCategory, TensorText
from lamina.core.transform import transform_from_state, transform_to_state
from lamina.data.block import CategoryBlock, DataBlock
from lamina.text import (
    PAD,
    SPECIAL_TOKENS,
    BucketDataLoader,
    LMDataLoader,
    Numericalize,
    TextBlock,
    TextDataLoaders,
    Tokenize,
    WordTokenizer,
    build_vocab,
    show_text_results,
)
from tests.conftest import assert_png
from tests.text.tweets_data import tweets


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return tweets(2000)


@pytest.fixture(scope="module")
def clas(df) -> TextDataLoaders:
    return TextDataLoaders.from_df(df, label_col="sentiment", valid_col="is_valid", bs=32, seed=0, min_freq=2)


@pytest.fixture(scope="module")
def lm(df) -> TextDataLoaders:
    return TextDataLoaders.from_df(df, is_lm=True, valid_col="is_valid", bs=16, seq_len=20, seed=0, min_freq=2)


def test_build_vocab_puts_specials_first_then_frequent_tokens_and_caps_the_size():
    counts = Counter({"b": 5, "a": 5, "c": 2, "d": 1, "xxmaj": 9})
    assert build_vocab(counts, min_freq=2) == [*SPECIAL_TOKENS, "a", "b", "c"]
    assert build_vocab(counts, min_freq=1, max_vocab=len(SPECIAL_TOKENS) + 1) == [*SPECIAL_TOKENS, "a"]


def test_numericalize_learns_its_vocab_from_training_tokens_and_maps_unknowns_to_0():
    num = Numericalize(min_freq=2)
    num.setup([["xxbos", "car", "car", "bus"], ["car", "bike", "bike"]])
    assert num.vocab_[num.vocab_.index(PAD)] == PAD and num.vocab_.index(PAD) == 1
    assert num.vocab_[len(SPECIAL_TOKENS) :] == ["car", "bike"]
    ids = num(["car", "bus", "tram"])
    assert isinstance(ids, TensorText) and ids.tolist() == [8, 0, 0] and ids.dtype == torch.int64


def test_numericalize_and_tokenize_are_stored_as_data_and_rebuilt():
    tok, num = Tokenize(WordTokenizer(post_rules=["mark_capitalized", "lowercase"])), Numericalize(min_freq=1)
    num.setup([tok("Hello world")])
    tensors: dict = {}
    states = json.loads(json.dumps([transform_to_state(t, tensors) for t in (tok, num)]))
    tok2, num2 = (transform_from_state(s, tensors) for s in states)
    assert num2.vocab_ == num.vocab_ and num2(tok2("Hello world")).tolist() == num(tok("Hello world")).tolist()
    assert tok2.decode(num2.decode(num2(tok2("Hello world")))) == "Hello world"


def test_a_fixed_vocab_must_start_with_unk_and_hold_pad():
    with pytest.raises(ValueError, match="must start with 'xxunk'"):
        Numericalize(vocab=["a", "b"])


def test_from_df_splits_by_the_valid_column_and_learns_labels_and_tokens_from_training_rows(clas, df):
    assert len(clas.train.dataset) == int((~df["is_valid"]).sum()) and len(clas.valid.dataset) == df["is_valid"].sum()
    assert clas.vocab == ["negative", "neutral", "positive"]
    assert clas.text_vocab[:4] == ["xxunk", "xxpad", "xxbos", "xxeos"] and clas.pad_idx == 1
    assert clas.tokenizer.state()["kind"] == "word"
    train_tokens = Counter(t for text in df.loc[~df["is_valid"], "text"] for t in WordTokenizer().tokenize(text))
    assert set(clas.text_vocab) - set(SPECIAL_TOKENS) == {t for t, c in train_tokens.items() if c >= 2} - set(
        SPECIAL_TOKENS
    )


def test_classifier_batches_are_padded_at_the_start_and_the_mask_marks_padding(clas):
    x, y = clas.train.one_batch()
    assert isinstance(x, TensorText) and isinstance(y, TensorCategory) and x.shape[0] == 32
    mask = x == clas.pad_idx
    assert mask.any() and not mask[:, -1].any()  # the last position is always a real token
    # padding only at the start: once a row has a real token, no padding follows
    assert bool((mask.int().diff(dim=1) <= 0).all())
    assert bool((x[~mask] != clas.pad_idx).all()) and bool((x[:, :][~mask].ge(0)).all())


def test_training_batches_are_bucketed_by_length_and_validation_is_sorted(clas):
    dl = clas.train
    lengths = dl.lengths
    spreads = [int(lengths[b].max() - lengths[b].min()) for b in dl.get_idxs()]
    random_spread = [int(lengths[b].max() - lengths[b].min()) for b in torch.randperm(len(lengths)).split(32)]
    assert np.mean(spreads) < np.mean(random_spread) / 3
    assert len(dl.get_idxs()) == len(dl) == len(lengths) // 32  # drop_last in training
    first = dl.get_idxs()[0]
    assert int(lengths[first].max()) == int(lengths.max())  # the longest batch first
    valid = torch.cat(clas.valid.get_idxs())
    assert torch.equal(clas.valid.lengths[valid], clas.valid.lengths.sort(descending=True, stable=True).values)
    assert sorted(valid.tolist()) == list(range(len(clas.valid.dataset)))


def test_each_training_epoch_is_a_new_order_of_the_same_items(clas):
    dl = clas.train.new(seed=3)
    a, b = [torch.cat(list(dl.get_idxs(advance=True))) for _ in range(2)]
    n = len(dl.lengths)
    assert len(a) == len(b) == n // 32 * 32 and not torch.equal(a, b)  # the items that do not fill a batch vary
    assert len(set(a.tolist())) == len(a) and len(set(a.tolist()) & set(b.tolist())) >= len(a) - 2 * (n % 32)
    assert [len(x) for x, _ in dl] == [32] * len(dl)


def test_a_batch_holds_the_numericalized_text_and_label_of_its_items(clas, df):
    dl = clas.valid
    idx = dl.get_idxs()[0]
    x, y = dl.one_batch()
    valid_rows = df[df["is_valid"]].reset_index(drop=True)
    for row, i in enumerate(idx[:5].tolist()):
        text, label = valid_rows.loc[i, "text"], valid_rows.loc[i, "sentiment"]
        ids = x[row][x[row] != clas.pad_idx]
        assert ids.tolist() == clas.encode(text).tolist()
        assert clas.vocab[int(y[row])] == label
    assert torch.equal(dl.restore_order(torch.cat([b[1] for b in dl])), torch.tensor(
        [clas.vocab.index(s) for s in valid_rows["sentiment"]]))  # fmt: skip


def test_test_dl_keeps_the_order_of_the_texts_given(clas):
    texts = ["I love this car so much, best ride ever", "bad", "Google self-driving cars"]
    (x,) = clas.test_dl(texts).one_batch()
    assert [clas.decode_ids(row) for row in x] == [
        clas.decode_ids(clas.encode(t)) for t in texts
    ]  # fmt: skip
    assert clas.decode_ids(x[1]) == "bad"


def test_lm_batches_are_contiguous_runs_and_y_is_x_shifted_by_one(lm):
    dl = lm.valid
    batches = list(dl)
    assert all(isinstance(x, TensorText) and isinstance(y, TensorText) for x, y in batches)
    assert all(x.shape == (16, 20) for x, _ in batches[:-1])
    stream_x = torch.cat([x for x, _ in batches], dim=1)
    stream_y = torch.cat([y for _, y in batches], dim=1)
    assert torch.equal(stream_x[:, 1:], stream_y[:, :-1])  # y is x shifted, and batch k+1 continues batch k
    n_tokens = sum(len(lm.encode(t)) for t in tweets(2000).query("is_valid")["text"])
    assert stream_x.numel() + 16 >= n_tokens - 16 and stream_x.numel() <= n_tokens  # every token, up to a row end


def test_lm_training_shuffles_documents_each_epoch_and_jitters_lengths(lm):
    dl = lm.train.new(seed=1)
    e1, e2 = list(dl), list(dl)
    assert len(e1) == len(e2) == len(dl)
    lengths = [x.shape[1] for x, _ in e1]
    assert len(set(lengths)) > 3 and abs(np.mean(lengths) - 20) < 1.5
    s1, s2 = torch.cat([x for x, _ in e1], 1), torch.cat([x for x, _ in e2], 1)
    assert s1.shape == s2.shape and not torch.equal(s1, s2)
    dropped = len(dl.flat) - s1.numel()  # the tokens after the last full column of the bs rows
    c1, c2 = Counter(s1.flatten().tolist()), Counter(s2.flatten().tolist())
    assert sum(((c1 - c2) + (c2 - c1)).values()) <= 2 * dropped  # the same tokens, reordered
    assert all(torch.equal(x[:, 1:], y[:, :-1]) for x, y in e1)


def test_lm_vocab_is_the_token_vocab_and_text_round_trips(lm):
    assert lm.is_lm and lm.vocab == lm.text_vocab and lm.pad_idx == 1
    ids = lm.encode("Google cars are cool")
    assert ids[0] == lm.text_vocab.index("xxbos") and lm.decode_ids(ids) == "Google cars are cool"


def test_text_block_works_in_a_data_block_with_raw_strings(df):
    dblock = DataBlock(blocks=(TextBlock(min_freq=2), CategoryBlock), get_x=itemgetter("text"),
                       get_y=itemgetter("sentiment"))  # fmt: skip
    rows = df.sample(300, random_state=0).to_dict("records")
    dls = dblock.dataloaders(rows, bs=16, seed=0)
    assert isinstance(dls, TextDataLoaders) and isinstance(dls.train, BucketDataLoader)
    x, _ = dls.valid.one_batch()
    assert x.shape[0] == 16 and dls.vocab == ["negative", "neutral", "positive"]
    lm_block = DataBlock(blocks=TextBlock(is_lm=True, seq_len=10, min_freq=1), get_x=itemgetter("text"))
    lm = lm_block.dataloaders(rows, bs=8)
    assert isinstance(lm.train, LMDataLoader) and lm.valid.one_batch()[0].shape == (8, 10)


def test_from_csv_reads_latin_1_and_from_folder_reads_labels_from_folders(df, tmp_path):
    path = tmp_path / "tweets.csv"
    some = df.sample(200, random_state=0)
    some.to_csv(path, index=False, encoding="latin-1", quoting=csv.QUOTE_ALL)  # some tweets hold a bare \r
    dls = TextDataLoaders.from_csv(path, encoding="latin-1", label_col="sentiment", valid_col="is_valid", bs=8)
    assert dls.vocab == ["negative", "neutral", "positive"] and len(dls.valid.dataset) == some["is_valid"].sum()
    assert dls.train.dataset.items[0][0] == WordTokenizer().tokenize(some.query("not is_valid")["text"].iloc[0])
    for i, row in some.head(60).iterrows():
        folder = tmp_path / "tw" / ("valid" if row["is_valid"] else "train") / row["sentiment"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(row["text"])
    fdls = TextDataLoaders.from_folder(tmp_path / "tw", bs=4, min_freq=1)
    assert len(fdls.train.dataset) + len(fdls.valid.dataset) == 60
    assert fdls.vocab == sorted(some.head(60).query("not is_valid")["sentiment"].unique())
    lm = TextDataLoaders.from_folder(tmp_path / "tw", is_lm=True, valid_pct=0.2, bs=4, seq_len=8, min_freq=1)
    assert lm.valid.one_batch()[0].shape == (4, 8) and len(lm.train.dataset) == 48


def test_from_ids_builds_a_classifier_loader_from_another_tokenizers_ids():
    ids = [[101, 7, 8, 102], [101, 9, 102], [101, 5, 5, 5, 5, 102], [101, 102]]
    dls = TextDataLoaders.from_ids(ids, ["pos", "neg", "pos", "neg"], valid_idx=[3], pad_idx=0, bs=3)
    x, y = dls.train.one_batch()
    assert x.tolist() == [[101, 5, 5, 5, 5, 102], [0, 0, 101, 7, 8, 102], [0, 0, 0, 101, 9, 102]]
    assert dls.vocab == ["neg", "pos"] and y.tolist() == [1, 1, 0] and dls.pad_idx == 0 and dls.text_vocab is None


def test_show_batch_draws_a_table_of_decoded_texts_and_labels(clas, tmp_path):
    fig = clas.valid.show_batch(max_n=4)
    cells = fig.axes[0].tables[0].get_celld()
    assert cells[(0, 0)].get_text().get_text() == "text" and cells[(0, 1)].get_text().get_text() == "target"
    _, y = clas.valid.one_batch()
    assert cells[(1, 1)].get_text().get_text() == clas.vocab[int(y[0])]
    fig.savefig(tmp_path / "batch.png", dpi=80)
    assert_png(tmp_path / "batch.png", 5000)
    table = clas.table(max_n=3)
    assert list(table.columns) == ["text", "target"] and len(table) == 3


def test_show_text_results_adds_the_prediction_column(clas, lm, tmp_path):
    b = clas.valid.one_batch()
    probs = torch.nn.functional.one_hot(torch.full((len(b[0]),), 2), 3).float()
    fig = show_text_results(clas.valid, b, probs, max_n=3)
    cells = fig.axes[0].tables[0].get_celld()
    assert cells[(0, 2)].get_text().get_text() == "prediction" and cells[(1, 2)].get_text().get_text() == "positive"
    fig.savefig(tmp_path / "results.png", dpi=80)
    assert_png(tmp_path / "results.png", 5000)
    x, y = lm.valid.one_batch()
    table = lm.valid.table((x, y), max_n=2, preds=torch.nn.functional.one_hot(y, len(lm.vocab)).float())
    assert table["prediction"].tolist() == table["target"].tolist()


def test_factories_explain_bad_columns_and_missing_labels(df):
    with pytest.raises(KeyError, match="column 'label' is not in the DataFrame"):
        TextDataLoaders.from_df(df, label_col="label")
    with pytest.raises(ValueError, match="needs label_col"):
        TextDataLoaders.from_df(df)
    with pytest.raises(ValueError, match="have no labels"):
        TextDataLoaders.from_df(df, is_lm=True, label_col="sentiment")
    with pytest.raises(ValueError, match="too few for bs=64"):
        LMDataLoader([[1, 2, 3]], bs=64)
    with pytest.raises(SerialError, match="not registered"):
        TextDataLoaders.from_df(df.head(50), label_col="sentiment", min_freq=1,
                                tokenizer=WordTokenizer(post_rules=[lambda t: t])).tokenizer.state()  # fmt: skip


def test_the_shuffled_lm_stream_is_the_documents_concatenated_in_a_random_order():
    docs = [list(range(100 * k, 100 * k + n)) for k, n in enumerate([3, 1, 0, 5, 2, 4])]
    dl = LMDataLoader(docs, bs=2, seq_len=3, shuffle=True, seed=7)
    g = torch.Generator().manual_seed(7)
    stream = dl._stream(g)
    order = torch.randperm(5, generator=torch.Generator().manual_seed(7)).tolist()  # the empty document is dropped
    kept = [d for d in docs if d]
    assert stream.tolist() == [t for i in order for t in kept[i]]


def test_lm_and_classifier_loaders_iterate_under_inference_mode(lm, clas):
    with torch.inference_mode():
        assert len(list(lm.train)) == len(lm.train) and len(list(clas.valid)) == len(clas.valid)


@pytest.mark.parametrize("kind", ["lm", "clas"])
def test_a_text_loaders_state_resumes_an_epoch_in_the_same_order(kind, lm, clas):
    dl = (lm if kind == "lm" else clas).train.new(seed=None)
    it = iter(dl)
    next(it), next(it)
    state = dl.state_dict()
    rest = [b[1].clone() for b in it]
    again = dl.new()
    again.load_state_dict(state)
    assert again.start_batch == 2
    resumed = [b[1] for b in again]
    assert len(resumed) == len(rest) == len(dl) - 2 and all(torch.equal(a, b) for a, b in zip(resumed, rest))


def test_a_batch_transform_working_in_place_does_not_change_the_lm_stream():
    from lamina.core.transform import Transform

    class Zero(Transform):
        def encodes(self, x: TensorText) -> TensorText:
            return x.zero_()

    docs = [list(range(1, 41))]
    dl = LMDataLoader(docs, bs=2, seq_len=5, after_batch=[Zero()])
    assert all(int(x.abs().sum()) == 0 for x, _ in dl)
    assert dl.flat.tolist() == list(range(1, 41)) and LMDataLoader(docs, bs=2, seq_len=5).one_batch()[0].sum() > 0
