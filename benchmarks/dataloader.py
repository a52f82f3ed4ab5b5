"""Data loading speed: the tensor fast path and an item-wise pipeline, each against plain torch.utils.data.

1. Tensor fast path: ``DataLoader((x, y), bs, shuffle)`` vs ``torch.utils.data.DataLoader(TensorDataset(x, y))``.
   Target: lamina throughput >= 1.0x torch's.
2. Item-wise pipeline of three transforms on the real MNIST sample (image array -> typed tensor, random shift on
   the training set, uint8 -> float) vs a hand-written ``Dataset`` doing the same work through
   ``torch.utils.data.DataLoader``. Target: lamina time <= 1.3x.

Both sides run with one torch thread in the main process (torch gives each worker one too). The fast path reports the
best of five epochs of each side, run in turn; the item pipeline, whose sides are closer, the median over 15 rounds
of the ratio between a lamina epoch and a hand-written epoch run right after it: CPU time of this process with 0
workers (all the work is here), wall clock with 2.

Run: ``python benchmarks/dataloader.py`` (prints figures and ratios).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.utils.data as tud

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_times, paired_ratio

from lamina.core.tensors import TensorImageBW
from lamina.core.transform import ItemTransform, Transform
from lamina.data import DataLoader, mnist_sample_arrays


def epoch(dl: object) -> int:
    n = 0
    for b in dl:  # type: ignore[attr-defined]
        n += len(b[0])
    return n


def tensor_fast_path(n: int = 100_000, bs: int = 256) -> None:
    x, y = torch.randn(n, 32), torch.randint(0, 10, (n,))
    ours = DataLoader((x, y), bs=bs, shuffle=True, seed=0)
    theirs = tud.DataLoader(tud.TensorDataset(x, y), batch_size=bs, shuffle=True)
    t_ours, t_theirs = best_times([lambda: epoch(ours), lambda: epoch(theirs)])
    print(
        f"tensor fast path: lamina {n / t_ours:,.0f} items/s, torch TensorDataset {n / t_theirs:,.0f} items/s, "
        f"throughput ratio {t_theirs / t_ours:.1f}x (target >= 1.0x)"
    )


class Image(ItemTransform):
    def encodes(self, item: tuple) -> TensorImageBW:  # type: ignore[type-arg]
        return torch.from_numpy(item[0])[None]  # the return annotation types it


class Shift(Transform):
    split_idx = 0

    def encodes(self, x: TensorImageBW) -> torch.Tensor:
        return x.roll(int(torch.randint(-2, 3, ())), dims=-1)


class ToFloat(Transform):
    def encodes(self, x: TensorImageBW) -> torch.Tensor:
        return x.float().div_(255)


class Label(ItemTransform):
    def encodes(self, item: tuple) -> int:  # type: ignore[type-arg]
        return int(item[1])


class HandWritten(tud.Dataset):
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = torch.from_numpy(self.x[i])[None]
        img = img.roll(int(torch.randint(-2, 3, ())), dims=-1)
        return img.float().div_(255), int(self.y[i])


def item_pipeline(workers: int) -> None:
    from lamina.data import Datasets

    d = mnist_sample_arrays()
    x, y = d["x_train"], d["y_train"]
    items = list(zip(x, y))
    ds = Datasets(items, [[Image(), Shift(), ToFloat()], [Label()]], splits=[list(range(len(items)))]).train
    ours = DataLoader(ds, bs=64, shuffle=True, seed=0, num_workers=workers, persistent_workers=workers > 0)
    theirs = tud.DataLoader(HandWritten(x, y), batch_size=64, shuffle=True, num_workers=workers,
                            persistent_workers=workers > 0)  # fmt: skip
    # with 0 workers all the work is in this process: CPU time leaves out the moments the machine gave to others
    clock, what = (time.process_time, "CPU") if workers == 0 else (time.perf_counter, "wall")
    t_ours, t_theirs, ratio = paired_ratio(lambda: epoch(ours), lambda: epoch(theirs), rounds=15, clock=clock)
    print(
        f"item pipeline, {workers} workers: lamina {t_ours:.3f}s/epoch, hand-written Dataset {t_theirs:.3f}s/epoch "
        f"({what} time, medians), ratio {ratio:.2f}x (median of 15 paired rounds; target <= 1.3x)"
    )


if __name__ == "__main__":
    # data loading is per-item work: one intra-op thread in the main process, as torch gives each worker
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tensor_fast_path()
    item_pipeline(0)
    item_pipeline(2)
