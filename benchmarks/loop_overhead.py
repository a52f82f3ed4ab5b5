"""The cost of the Learner's loop: ``Learner.fit`` vs a hand-written PyTorch loop doing the same work.

Tiny MLP (64 -> 32 -> 2), in-memory data, batch size 64, 400 training batches and 40 validation batches per epoch,
3 epochs, SGD, one CPU thread, progress bars and logging off. Both sides shuffle each epoch, step, zero the
gradients and compute the validation loss. Time is the thread's CPU time (the work is single-threaded, and on a
shared machine wall time also counts other processes); the two sides alternate over repeats and each figure is the
median. Target: lamina / hand-written <= 1.10x.

Run: ``python benchmarks/loop_overhead.py``.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from lamina.data import DataLoader, DataLoaders
from lamina.learner import Learner
from lamina.optim import SGD

BS, N_TRAIN, N_VALID, EPOCHS = 64, 400 * 64, 40 * 64, 3


def make_data(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_TRAIN + N_VALID, 64, generator=g)
    y = (x[:, :8].sum(1) > 0).long()
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))


def hand_written(data: tuple[torch.Tensor, ...]) -> float:
    xt, yt, xv, yv = data
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, foreach=True)  # vectorised, like lamina's SGD
    loss_func = nn.CrossEntropyLoss()
    start = time.thread_time()
    for _ in range(EPOCHS):
        model.train()
        perm = torch.randperm(N_TRAIN)
        for i in range(0, N_TRAIN, BS):
            idx = perm[i : i + BS]
            loss = loss_func(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        total = torch.zeros(())
        with torch.no_grad():
            for i in range(0, N_VALID, BS):
                total += loss_func(model(xv[i : i + BS]), yv[i : i + BS]) * len(yv[i : i + BS])
        float(total / N_VALID)
    return time.thread_time() - start


def with_learner(data: tuple[torch.Tensor, ...]) -> float:
    xt, yt, xv, yv = data
    dls = DataLoaders(DataLoader((xt, yt), bs=BS, shuffle=True), DataLoader((xv, yv), bs=BS))
    learn = Learner(dls, make_model(), loss_func=nn.CrossEntropyLoss(), opt_func=SGD, lr=0.1)
    start = time.thread_time()
    with learn.no_bar(), learn.no_logging():
        learn.fit(EPOCHS)
    return time.thread_time() - start


def main(repeats: int = 5) -> float:
    torch.set_num_threads(1)
    data = make_data()
    with_learner(data)  # warm-up both paths
    hand_written(data)
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(with_learner(data))
        theirs.append(hand_written(data))
    t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
    ratio = t_ours / t_theirs
    print(f"loop overhead, {EPOCHS} epochs x (400 + 40) batches, 1 thread: Learner.fit {t_ours:.3f}s, "
          f"hand-written loop {t_theirs:.3f}s, ratio {ratio:.3f}x (target <= 1.10x)")  # fmt: skip
    return ratio


if __name__ == "__main__":
    main()
