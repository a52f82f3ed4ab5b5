"""Tokenizing a corpus: in several processes, streamed a chunk at a time, cached on disk by texts and rules."""

import tracemalloc
from collections import Counter

import pytest

from lamina.text import WordTokenizer, corpus_key, lowercase, split_words, tokenize_texts
from tests.text.tweets_data import tweets


class LazyTexts:
    """A corpus made on demand (never held in memory), counting how many texts were read."""

    def __init__(self, n: int, words: int = 50) -> None:
        self.n, self.words, self.reads = n, words, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for i in range(self.n):
            self.reads += 1
            yield " ".join(f"w{(i * 7 + k) % 300}" for k in range(self.words))  # a vocabulary of 300 words


def test_two_workers_give_the_same_tokens_and_counts_as_one_process():
    texts = tweets(600)["text"].tolist()
    one = tokenize_texts(texts, n_workers=1, chunk_size=100)
    two = tokenize_texts(texts, n_workers=2, chunk_size=100)
    tok = WordTokenizer()
    assert two.to_list() == one.to_list() == [tok.tokenize(t) for t in texts]
    assert two.counts == one.counts == Counter(t for tokens in one.to_list() for t in tokens)
    assert one.n_tokens == sum(map(len, one.to_list()))


def test_a_second_call_reads_the_cache_and_changing_a_rule_or_a_text_misses(tmp_path):
    texts = tweets(300)["text"].tolist()
    first = tokenize_texts(texts, cache_dir=tmp_path)
    again = tokenize_texts(texts, cache_dir=tmp_path, n_workers=2)
    assert not first.cache_hit and again.cache_hit and again.to_list() == first.to_list()
    assert again.counts == first.counts and len(again) == len(texts)
    fewer_rules = WordTokenizer(post_rules=[lowercase])
    changed_rule = tokenize_texts(texts, fewer_rules, cache_dir=tmp_path)
    assert not changed_rule.cache_hit and changed_rule.to_list()[0] == [t.lower() for t in split_words(texts[0])]
    changed_text = tokenize_texts([*texts[:-1], texts[-1] + "!"], cache_dir=tmp_path)
    assert not changed_text.cache_hit
    assert len(list(tmp_path.glob("*.tokens"))) == 3


def test_the_cache_key_depends_on_text_boundaries_and_rule_sources():
    tok = WordTokenizer()
    assert corpus_key(["ab", "c"], tok) != corpus_key(["a", "bc"], tok)

    def lowercase(tokens: list[str]) -> list[str]:  # same name as the registered rule, different code
        return [t.upper() for t in tokens]

    assert corpus_key(["a"], WordTokenizer(post_rules=[lowercase])) != corpus_key(
        ["a"], WordTokenizer(post_rules=["lowercase"])
    )


def test_streaming_to_the_cache_holds_a_few_chunks_not_the_corpus(tmp_path):
    peaks = {}
    tracemalloc.start()
    try:
        for n in (200, 800):
            tracemalloc.reset_peak()
            result = tokenize_texts(LazyTexts(n, words=20), chunk_size=50, cache_dir=tmp_path)
            peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        held = result.to_list()  # the corpus's tokens, read back from the cache file
        peak_held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.n_tokens == sum(map(len, held)) == 800 * 21
    assert peaks[800] < 1.25 * peaks[200], peaks  # four times the texts, about the same memory
    assert peak_held > 4 * peaks[800], (peak_held, peaks)


def test_parallel_workers_keep_at_most_two_chunks_each_in_flight():
    texts = LazyTexts(2000, words=5)
    seen = []
    results = tokenize_texts(texts, n_workers=2, chunk_size=50)
    seen.append(texts.reads)
    assert len(results) == 2000 and seen == [2000]
    # reading ahead is bounded: submitting stops at 2 * n_workers pending chunks (checked via the generator)
    from lamina.text.core import _tokenized_chunks

    texts = LazyTexts(2000, words=5)
    chunks = _tokenized_chunks(texts, WordTokenizer(), 2, 50)
    next(chunks)
    assert texts.reads <= 50 * (2 * 2 + 1)


def test_a_one_shot_iterator_with_a_cache_is_refused_and_a_lambda_rule_cannot_go_to_workers(tmp_path):
    with pytest.raises(TypeError, match="one-shot iterator"):
        tokenize_texts(iter(["a"]), cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"cannot be pickled.*n_workers=1"):
        tokenize_texts(["a"], WordTokenizer(post_rules=[lambda t: t]), n_workers=2)
    with pytest.raises(TypeError, match="texts must be strings, got float"):
        tokenize_texts(["a", float("nan")])
