"""Timing helpers shared by the benchmarks: best-of-n wall time, so background noise inflates neither side."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """The shortest wall time of ``repeats`` calls of ``fn`` after ``warmup`` calls, in seconds."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def best_times(fns: list[Callable[[], object]], repeats: int = 5, warmup: int = 1) -> list[float]:
    """The shortest wall time of each of ``fns`` over ``repeats`` rounds that call them in turn, after ``warmup``
    rounds: a slow spell of the machine then hits every side alike, not whichever side ran during it."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def paired_ratio(
    ours: Callable[[], object],
    baseline: Callable[[], object],
    rounds: int = 9,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float, float]:
    """Time ``ours`` and ``baseline`` in turn for ``rounds`` rounds (after one warm-up round) and return the median time
    of each and the median of the per-round ratios ``ours / baseline``. Each ratio compares two runs made moments
    apart, so a slow spell of a shared machine inflates both; the median drops the rounds a spell split. ``clock``:
    wall time by default; ``time.process_time`` for work done in this process only (what the scheduler gave it)."""
    ours()
    baseline()
    times: list[tuple[float, float]] = []
    for _ in range(rounds):
        start = clock()
        ours()
        mid = clock()
        baseline()
        times.append((mid - start, clock() - mid))
    return (
        statistics.median(a for a, _ in times),
        statistics.median(b for _, b in times),
        statistics.median(a / b for a, b in times),
    )
