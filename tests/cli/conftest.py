"""Real data for the command-line tests: a small folder of MNIST digits and a small diamonds table, written once."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lamina.datasets import diamonds, mnist_digits

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> Path:
    """40 real 3s and 40 real 7s as ``<digit>/<k>.png``: labels from the folder names."""
    root = tmp_path_factory.mktemp("digits")
    mnist_digits(root, digits=(3, 7), n=40, name="{digit}/{k}.png")
    return root


@pytest.fixture(scope="session")
def diamonds_csv(tmp_path_factory) -> Path:
    """400 real diamonds written as CSV, with an ``is_valid`` column marking 80 of them."""
    folder = tmp_path_factory.mktemp("diamonds")
    df = pd.read_csv(diamonds(folder / "cache")).sample(400, random_state=0).reset_index(drop=True)
    df["is_valid"] = np.arange(len(df)) % 5 == 0
    path = folder / "diamonds.csv"
    df.to_csv(path, index=False)
    return path


def run_lamina(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m lamina ARGS`` as a user runs it, with this checkout on the path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "lamina", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)  # fmt: skip
