"""Timing helpers shared by the benchmarks: best-of-n wall time, so background noise inflates neither side."""

from __future__ import annotations

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
