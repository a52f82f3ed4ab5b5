"""Subword tokenizers (Hugging Face ``tokenizers``): trained on the training texts, decoded exactly, stored as JSON."""

import json

import pytest

from lamina.text import (
    SPECIAL_TOKENS,
    SubwordTokenizer,
    TextDataLoaders,
    fix_html,
    tokenize_texts,
    tokenizer_from_state,
)
from tests.text.tweets_data import tweets

pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [" ".join(t.split()) for t in tweets(1500)["text"]]


@pytest.mark.parametrize("model", ["bpe", "unigram"])
def test_a_trained_subword_tokenizer_decodes_its_tokens_back_to_the_text(model, texts):
    tok = SubwordTokenizer(model, vocab_size=600)
    tok.train(texts[:600])
    vocab = tok.vocab
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS) and len(vocab) <= 600
    seen = set("".join(fix_html(t) for t in texts[:600]))
    unseen_texts = [t for t in texts[1000:1100] if set(fix_html(t)) <= seen]  # not trained on; no new character
    assert len(unseen_texts) > 50
    for text in unseen_texts:
        tokens = tok.tokenize(text)
        assert tokens[0] == "xxbos" and tok.decode(tokens) == fix_html(text)
    novel = next(c for c in "\u2603\u4e2d\u0416\u20ac" if c not in seen)
    assert tok.decode(tok.tokenize(f"price: {novel}5")) == "price: xxunk5"  # a character never seen is unknown
    n_words = sum(len(t.split()) for t in texts[1000:1100])
    n_tokens = sum(len(tok.tokenize(t)) - 1 for t in texts[1000:1100])
    assert n_words < n_tokens < 4 * n_words  # words split into a few pieces, not into characters


def test_the_state_is_the_libraries_own_json_and_rebuilds_the_same_tokenizer(texts):
    tok = SubwordTokenizer("bpe", vocab_size=500)
    tok.train(texts[:800])
    state = json.loads(json.dumps(tok.state()))
    assert state["kind"] == "subword" and json.loads(state["tokenizer_json"])["model"]["type"] == "BPE"
    again = tokenizer_from_state(state)
    assert [again.tokenize(t) for t in texts[800:850]] == [tok.tokenize(t) for t in texts[800:850]]


def test_an_untrained_subword_tokenizer_says_to_train_it():
    with pytest.raises(ValueError, match=r"not trained: call tokenizer\.train"):
        SubwordTokenizer().tokenize("hello")
    with pytest.raises(ValueError, match="not trained"):
        tokenize_texts(["hello"], SubwordTokenizer())


def test_subword_tokens_go_through_workers_and_the_cache(texts, tmp_path):
    tok = SubwordTokenizer("bpe", vocab_size=600)
    tok.train(texts[:800])
    one = tokenize_texts(texts[:300], tok, cache_dir=tmp_path)
    two = tokenize_texts(texts[:300], tok, n_workers=2, chunk_size=100)
    assert two.to_list() == one.to_list() == tok.tokenize_batch(texts[:300])
    assert tokenize_texts(texts[:300], tok, cache_dir=tmp_path).cache_hit


def test_from_df_trains_the_subword_tokenizer_on_the_training_texts_only():
    df = tweets(1200)
    tok = SubwordTokenizer("bpe", vocab_size=400)
    dls = TextDataLoaders.from_df(df, label_col="sentiment", valid_col="is_valid", tokenizer=tok, bs=16, min_freq=1)
    assert tok.is_trained and dls.tokenizer.state() == tok.state()
    trained_alone = SubwordTokenizer("bpe", vocab_size=400)
    trained_alone.train(df.loc[~df["is_valid"], "text"])
    assert tok.vocab == trained_alone.vocab
    x, _ = dls.valid.one_batch()
    row = x[-1][x[-1] != dls.pad_idx]
    assert dls.decode_ids(row) in {" ".join(t.split()) for t in df.loc[df["is_valid"], "text"]}


def test_in_a_data_block_tokenize_trains_an_untrained_subword_tokenizer_on_the_training_items_only():
    from operator import itemgetter

    from lamina.data.block import CategoryBlock, DataBlock
    from lamina.data.splitters import IndexSplitter
    from lamina.text import TextBlock

    rows = tweets(400).to_dict("records")
    valid_idx = [i for i, r in enumerate(rows) if r["is_valid"]]
    block = TextBlock(SubwordTokenizer("bpe", vocab_size=300), min_freq=1)
    dblock = DataBlock(
        blocks=(block, CategoryBlock),
        get_x=itemgetter("text"),
        get_y=itemgetter("sentiment"),
        splitter=IndexSplitter(valid_idx),
    )
    dls = dblock.dataloaders(rows, bs=8)
    alone = SubwordTokenizer("bpe", vocab_size=300)
    alone.train(r["text"] for r in rows if not r["is_valid"])
    assert dls.tokenizer.is_trained and dls.tokenizer.vocab == alone.vocab
    assert set(dls.text_vocab) <= set(alone.vocab)
