"""Data-parallel scaling on the CPU: an epoch on 2 processes (DDP over gloo) vs the same epoch on 1 process.

The MNIST sample (4,000 training and 1,000 validation images, as tensors), an MLP 784 -> 512 -> 512 -> 10, global
batch 128 (1 process: bs 128; 2 processes: bs 64 each, so both sides take the same optimizer steps), Adam, progress
bars and logging off, each process on ONE thread. Figure: the best wall time of 3 one-epoch fits (after one warm-up
fit) including validation, on each side; the 2-process side is started with ``lamina.learner.distributed.launch``
and timed by rank 0. Ratio: 1-process time / 2-process time (the speed-up; 2.0 is perfect scaling, the rest is
gradient all-reduce, the gathered validation and waiting for the slower rank). Needs 2 free cores: on a shared
machine the ratio mostly measures the other tenants, so the CPU time of rank 0 is printed too (its share of the
work: 0.5 of the single process's is no overhead).

Run: ``python benchmarks/distributed.py``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from lamina.data import DataLoader, DataLoaders, mnist_sample_arrays
from lamina.learner import Learner, is_main_process, launch

GLOBAL_BS = 128


def make_learner(bs: int) -> Learner:
    d = {k: torch.from_numpy(v) for k, v in mnist_sample_arrays().items()}
    x, xv = d["x_train"].float().div(255), d["x_valid"].float().div(255)
    dls = DataLoaders(DataLoader((x, d["y_train"]), bs=bs, shuffle=True, seed=0),
                      DataLoader((xv, d["y_valid"]), bs=bs), device="cpu")  # fmt: skip
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))  # fmt: skip
    return Learner(dls, model, lr=1e-3, show_progress=False, logger=None)


def epoch_time(n_procs: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process, all its threads) of one-epoch fits, each the best of 3, with this
    process's share of the global batch."""
    torch.set_num_threads(1)
    learn = make_learner(GLOBAL_BS // n_procs)
    walls, cpus = [], []
    with learn.distrib_ctx():
        learn.fit(1)  # warm-up
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            learn.fit(1)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def _rank(out: Path) -> None:
    """One process of the 2-process side: rank 0 writes its times."""
    wall, cpu = epoch_time(2)
    if is_main_process():
        out.write_text(json.dumps({"wall": wall, "cpu": cpu}))


def main() -> None:
    one, one_cpu = epoch_time(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "two.json"
        launch(_rank, 2, out)
        two = json.loads(out.read_text())
    print(f"epoch, 1 process x 1 thread (bs {GLOBAL_BS}): {one * 1000:.0f} ms wall, {one_cpu * 1000:.0f} ms CPU")
    print(f"epoch, 2 processes x 1 thread (bs {GLOBAL_BS // 2} each, DDP/gloo): {two['wall'] * 1000:.0f} ms wall, "
          f"{two['cpu'] * 1000:.0f} ms CPU on rank 0")  # fmt: skip
    print(f"speed-up (1 process / 2 processes, wall): {one / two['wall']:.2f}x (2.00x is perfect scaling)")
    print(f"work per rank (rank 0 CPU / 1 process CPU): {two['cpu'] / one_cpu:.2f} (0.50 is no overhead)")


if __name__ == "__main__":
    main()
