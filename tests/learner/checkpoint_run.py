"""One training run of the checkpoint tests, in a process of its own (so it can be killed with SIGKILL).

    python -m tests.learner.checkpoint_run OUT [--workers N] [--loader-seed S] [--method fit_one_cycle|fine_tune]
        [--kill-at K] [--die-writing-at K] [--resume]

It trains a small CNN on real MNIST digits (with a random item transform and dropout, so every generator matters)
with a ``Checkpoint`` every 4 batches and at each epoch's end, a tracker that keeps the best model, and accuracy.
``--kill-at K`` kills the process (SIGKILL) after training batch K; ``--die-writing-at K`` kills it half-way through
writing the checkpoint of batch K. A finished run writes ``OUT/final.safetensors`` (the weights) and
``OUT/history.json`` (the Recorder's history).
"""

import argparse
import json
import os
import signal
from pathlib import Path

import torch
from safetensors.torch import save_file

from lamina.callbacks import SaveModelCallback
from lamina.core import set_seed
from lamina.core.utils import atomic_write
from lamina.data import Categorize, Datasets, IntToFloatTensor, mnist_sample_arrays
from lamina.learner import Callback, Learner, accuracy
from lamina.learner.checkpoint import Checkpoint, save_checkpoint
from tests.conftest import small_cnn
from tests.data.mnist_items import PickImage, PickLabel, RandomShift, mnist_items


class KillAt(Callback):
    """SIGKILL this process after training batch ``at`` (counted over the fit) of the fit of ``n_epoch`` epochs."""

    def __init__(self, at: int, n_epoch: int) -> None:
        self.at, self.n_epoch = at, n_epoch

    def after_batch(self) -> None:
        if self.learn.training and self.learn.train_iter == self.at and self.learn.n_epoch == self.n_epoch:
            os.kill(os.getpid(), signal.SIGKILL)


class DieWhileWriting(Checkpoint):
    """A Checkpoint whose write at batch ``at`` is cut half-way by SIGKILL (as a power cut would)."""

    def __init__(self, at: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.at = at

    def after_batch(self) -> None:
        if self.learn.train_iter != self.at:
            return super().after_batch()
        folder = self.learn.path / self.learn.model_dir
        full = save_checkpoint(self.learn, folder / "scratch" / "whole.ckpt", epoch_done=False).read_bytes()
        with atomic_write(folder / f"{self.fname}_{self._next:06d}.ckpt") as tmp:
            tmp.write_bytes(full[: len(full) // 2])
            os.kill(os.getpid(), signal.SIGKILL)


class Trained(Callback):
    """Writes the (epoch, batch) of every training batch this process trained to ``OUT/trained.json``."""

    def __init__(self, out: Path) -> None:
        self.out, self.batches = out, []

    def after_batch(self) -> None:
        if self.learn.training:
            self.batches.append((self.learn.epoch, self.learn.iter, self.learn.n_epoch))

    def after_fit(self) -> None:
        (self.out / "trained.json").write_text(json.dumps(self.batches))


def body_and_head(model):
    return [list(model[:6].parameters()), list(model[6:].parameters())]


def train(
    out: Path,
    workers: int = 0,
    loader_seed: int | None = None,
    method: str = "fit_one_cycle",
    kill_at: int | None = None,
    die_writing_at: int | None = None,
    resume: bool = False,
) -> None:
    """Train from set_seed(0) and write the final weights and history under ``out`` (see the module doc)."""
    torch.set_num_threads(1)
    set_seed(0)
    items, splits = mnist_items(mnist_sample_arrays(), 384, 128)
    dsets = Datasets(items, [[PickImage(), RandomShift()], [PickLabel(), Categorize()]], splits=splits)
    dls = dsets.dataloaders(bs=64, after_batch=[IntToFloatTensor()], num_workers=workers, seed=loader_seed,
                            device="cpu")  # fmt: skip
    learn = Learner(dls, small_cnn(), metrics=[accuracy], splitter=body_and_head, path=out, logger=None,
                    show_progress=False)  # fmt: skip
    every = {"every_n_batches": 4, "every_epoch": True}
    saver = DieWhileWriting(die_writing_at, **every) if die_writing_at else Checkpoint(**every)
    cbs = [saver, SaveModelCallback(monitor="accuracy"), Trained(out)]
    if kill_at is not None:
        cbs.append(KillAt(kill_at, n_epoch=2))  # in fine_tune: in the unfrozen phase
    if method == "fine_tune":
        learn.fine_tune(2, base_lr=5e-3, freeze_epochs=1, cbs=cbs, resume="auto" if resume else None)
    else:
        learn.fit_one_cycle(2, 5e-3, cbs=cbs, resume="auto" if resume else None)
    save_file({k: v.contiguous() for k, v in learn.model.state_dict().items()}, str(out / "final.safetensors"))
    r = learn.recorder
    history = {
        "losses": r.losses,
        "lrs": r.lrs,
        "moms": r.moms,
        "iters": r.iters,
        "values": [row[:-1] for row in r.values],
    }  # fmt: skip  (the last column is the time taken)
    (out / "history.json").write_text(json.dumps(history))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--loader-seed", type=int, default=None)
    parser.add_argument("--method", default="fit_one_cycle")
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--die-writing-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    a = parser.parse_args()
    train(a.out, a.workers, a.loader_seed, a.method, a.kill_at, a.die_writing_at, a.resume)


if __name__ == "__main__":
    main()
