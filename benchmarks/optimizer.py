"""Claim: a lamina AdamW step costs no more than ``torch.optim.AdamW(foreach=True)`` (target: ratio <= 1.10).

Two workloads, one CPU thread: (a) the 62 parameter tensors of a ResNet-18 (11.7M floats, shapes written out here),
(b) 600 tensors of 256 floats (where per-step Python overhead shows). Both optimizers take steps on their own copy of
the same parameters and gradients, timed in alternating repeats; each figure is the median over repeats of the mean
time per step. Time is the thread's CPU time (``time.thread_time``): the work is single-threaded, and on a shared
machine wall-clock time also counts the moments other processes hold the core.

Run: ``python benchmarks/optimizer.py [--repeats 15] [--steps-big 2] [--steps-small 50]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lamina.optim import Adam

RESNET18_PARAMS = 11_689_512


def resnet18_shapes() -> list[tuple[int, ...]]:
    """The parameter shapes of torchvision's resnet18, in ``model.parameters()`` order."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    in_ch = 64
    for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            first_in = in_ch if block == 0 else out_ch
            shapes += [(out_ch, first_in, 3, 3), (out_ch,), (out_ch,), (out_ch, out_ch, 3, 3), (out_ch,), (out_ch,)]
            if block == 0 and (stride != 1 or in_ch != out_ch):
                shapes += [(out_ch, in_ch, 1, 1), (out_ch,), (out_ch,)]
        in_ch = out_ch
    shapes += [(1000, 512), (1000,)]
    return shapes


def make_params(shapes: list[tuple[int, ...]], seed: int = 0) -> list[torch.nn.Parameter]:
    """Random parameters with random gradients attached."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=gen) * 0.1)
        p.grad = torch.randn(shape, generator=gen) * 0.01
        params.append(p)
    return params


def time_steps(step: Callable[[], object], steps: int) -> float:
    """Mean CPU seconds of this thread per call of ``step`` over ``steps`` calls."""
    start = time.thread_time()
    for _ in range(steps):
        step()
    return (time.thread_time() - start) / steps


def compare(shapes: list[tuple[int, ...]], steps: int, repeats: int) -> tuple[float, float]:
    """Median ms/step of lamina's Adam (AdamW semantics) and torch's AdamW(foreach=True) on ``shapes``."""
    hypers = {"lr": 1e-3, "eps": 1e-8, "wd": 0.01}
    ours = Adam(make_params(shapes), mom=0.9, sqr_mom=0.999, **hypers)
    theirs = torch.optim.AdamW(
        make_params(shapes), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, foreach=True
    )
    for _ in range(3):  # warm-up: creates the state, fills caches
        ours.step()
        theirs.step()
    lamina_times, torch_times = [], []
    for _ in range(repeats):
        lamina_times.append(time_steps(ours.step, steps))
        torch_times.append(time_steps(theirs.step, steps))
    return statistics.median(lamina_times) * 1e3, statistics.median(torch_times) * 1e3


def main() -> None:
    """Parse arguments, run both workloads, print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="alternating timed repeats per optimizer")
    parser.add_argument("--steps-big", type=int, default=2, help="steps per repeat on the ResNet-18 shapes")
    parser.add_argument("--steps-small", type=int, default=50, help="steps per repeat on the 600 small tensors")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shapes = resnet18_shapes()
    n_params = sum(torch.Size(s).numel() for s in shapes)
    assert n_params == RESNET18_PARAMS, f"ResNet-18 shapes add up to {n_params}, expected {RESNET18_PARAMS}"
    workloads = [
        (f"resnet18 ({len(shapes)} tensors, {n_params:,} floats)", shapes, args.steps_big),
        ("600 tensors x 256 floats", [(256,)] * 600, args.steps_small),
    ]
    print(f"AdamW step (wd=0.01), torch {torch.__version__}, threads={torch.get_num_threads()}")
    for name, workload, steps in workloads:
        ours, theirs = compare(workload, steps, args.repeats)
        print(f"{name}: lamina {ours:.3f} ms/step, torch {theirs:.3f} ms/step, ratio lamina/torch {ours / theirs:.3f}")


if __name__ == "__main__":
    main()
