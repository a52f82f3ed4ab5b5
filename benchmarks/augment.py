"""Claim: ``aug_transforms()`` on a 64 x 3 x 224 x 224 float batch is >= 3x faster than the same operations applied
image by image (target: ratio >= 3 on CPU, against baseline (b) below: each operation applied to each image, as a
per-item pipeline does). Baseline (a) isolates the gain of batching alone, with composition kept; it is printed
for information.

Batched: the default list (one composed geometry = one ``grid_sample``, one composed lighting pass) on the batch.
Baselines, in the same process, on the same batch, same probabilities (``p = 1`` everywhere so every operation runs):
(a) a Python loop calling the same composed transforms on each image (a batch of one);
(b) a Python loop applying each operation separately to each image (flip, rotate, zoom, warp: one warp each;
brightness, contrast: one pass each), the way a per-item pipeline does it.
Figures are best-of-n wall times. On a GPU (when ``torch.cuda.is_available()``) the batched images/s is also shown.

Run: ``python benchmarks/augment.py [--bs 64] [--size 224] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time

from lamina.core.tensors import TensorImage
from lamina.core.transform import Pipeline, Transform
from lamina.vision.augment import Brightness, Contrast, Flip, Rotate, Warp, Zoom, aug_transforms


def batched(tfms: list[Transform]) -> Callable[[TensorImage], TensorImage]:
    pipe = Pipeline(tfms, split_idx=0)
    return lambda x: pipe(x)


def looped(tfms: list[Transform]) -> Callable[[TensorImage], TensorImage]:
    pipe = Pipeline(tfms, split_idx=0)
    return lambda x: TensorImage(torch.cat([pipe(x[i : i + 1]) for i in range(len(x))]))


def separate_ops() -> list[Transform]:
    return [Flip(p=1), Rotate(10, p=1), Zoom(1.0, 1.1, p=1), Warp(0.2, p=1), Brightness(0.2, p=1), Contrast(0.2, p=1)]


def measure(device: str, bs: int, size: int, repeats: int, baselines: bool) -> None:
    torch.manual_seed(0)
    x = TensorImage(torch.rand(bs, 3, size, size, device=device))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    tfms = aug_transforms(p_affine=1.0, p_lighting=1.0)

    def timed(fn: Callable[[TensorImage], TensorImage]) -> float:
        return best_time(lambda: (fn(x), sync()), repeats=repeats)

    t_batch = timed(batched(tfms))
    print(f"[{device}] batched aug_transforms: {t_batch * 1e3:8.1f} ms  {bs / t_batch:8.0f} images/s")
    if not baselines:
        return
    t_loop = timed(looped(tfms))
    t_sep = timed(looped(separate_ops()))
    print(f"[{device}] loop, same composed ops:  {t_loop * 1e3:8.1f} ms  {bs / t_loop:8.0f} images/s")
    print(f"[{device}] loop, one op at a time:   {t_sep * 1e3:8.1f} ms  {bs / t_sep:8.0f} images/s")
    gain = t_loop / t_batch
    print(f"[{device}] speed-up vs (a) loop of the composed ops: {gain:.2f}x (batching alone, for information)")
    print(f"[{device}] speed-up vs (b) the operations applied image by image: {t_sep / t_batch:.2f}x (target >= 3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"batch {args.bs} x 3 x {args.size} x {args.size}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    measure("cpu", args.bs, args.size, args.repeats, baselines=True)
    if torch.cuda.is_available():
        measure("cuda", args.bs, args.size, max(args.repeats, 10), baselines=True)


if __name__ == "__main__":
    main()
