"""Fits that tests/learner/test_distributed.py runs under ``torchrun --nproc_per_node=2`` and in one process.

Run as ``torchrun --nproc_per_node=2 tests/learner/distributed_worker.py OUT``: every rank writes what it saw to
``OUT/rank{r}.pt`` and trains with ``learn.path = OUT/files{r}`` (so a file written by rank 1 would show there).
With ``OUT elastic K`` it runs :func:`elastic` instead (rank 1 killed after batch K, then the group restarted by
``torchrun --max-restarts=1`` resumes from the newest checkpoint; K = -1 never kills):

    torchrun --nproc_per_node=2 --max-restarts=1 --rdzv-backend=c10d --rdzv-endpoint=127.0.0.1:29501 \\
        tests/learner/distributed_worker.py /tmp/killed elastic 22
"""

import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

from lamina.callbacks import CSVLogger, GradientAccumulation
from lamina.data import DataLoader, DataLoaders, mnist_sample_arrays
from lamina.learner import Callback, Learner, accuracy
from lamina.learner import distributed as D
from lamina.learner.checkpoint import Checkpoint

TIMEOUT = 30.0  # a rank that hangs fails the group, which `torchrun --max-restarts` then restarts
N_TRAIN, N_VALID = 521, 225  # uneven last batches: 521 = 16 * 32 + 9 (5 + 4 items), 225 = 7 * 32 + 1 (1 + 0)


def mnist_dls(bs: int) -> DataLoaders:
    """The MNIST sample as tensors: ``N_TRAIN`` shuffled training items, ``N_VALID`` validation items."""
    d = {k: torch.from_numpy(v) for k, v in mnist_sample_arrays().items()}
    g = torch.Generator().manual_seed(0)
    keep, keep_valid = torch.randperm(4000, generator=g)[:N_TRAIN], torch.randperm(1000, generator=g)[:N_VALID]
    x, xv = d["x_train"][keep].float().div(255), d["x_valid"][keep_valid].float().div(255)
    train = DataLoader((x, d["y_train"][keep]), bs=bs, shuffle=True, seed=0)
    valid = DataLoader((xv, d["y_valid"][keep_valid]), bs=bs)
    return DataLoaders(train, valid, device="cpu")


def make_learner(bs: int, path: Path | str = ".", **kwargs: Any) -> Learner:
    """The same small MLP (seeded) on the MNIST sample with per-process batch size ``bs``."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    return Learner(mnist_dls(bs), model, metrics=[accuracy], lr=1e-2, path=path, show_progress=False, **kwargs)


def weights(learn: Learner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learn.model.state_dict().items()}


def plain_fit(learn: Learner) -> dict[str, Any]:
    """Two epochs of one cycle; the epoch table, ``get_preds`` and ``validate``."""
    learn.fit_one_cycle(2)
    preds, targets = learn.get_preds()
    return {"table": learn.recorder.values, "preds": preds, "targets": targets, "validate": learn.validate()}


class CountSteps(Callback):
    def before_fit(self) -> None:
        self.steps = 0

    def after_step(self) -> None:
        self.steps += 1


class SaveMidEpoch(Callback):
    """Saves at batch 3 of epoch 0, while ``learn.model`` is the DDP wrapper (as a checkpoint callback would)."""

    def after_batch(self) -> None:
        if self.learn.training and self.learn.epoch == 0 and self.learn.iter == 3:
            self.learn.save("mid", with_opt=False)


def accumulated_fit(learn: Learner, count_syncs: bool) -> dict[str, Any]:
    """One epoch accumulating 64 items per step: how many steps and (under DDP) at which batches gradients were
    all-reduced."""
    syncs = []
    if count_syncs:

        def hook(state: object, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
            syncs.append(learn.iter)
            return allreduce_hook(None, bucket)

        learn.distributed.wrapped.register_comm_hook(None, hook)
    counter = CountSteps()
    learn.fit(1, cbs=[GradientAccumulation(n_acc=64), counter])
    return {"steps": counter.steps, "syncs": syncs}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    D.init_distributed(timeout=TIMEOUT)  # one group for every block below (each block then keeps it)
    rank = D.rank()
    result: dict[str, Any] = {}
    logged: list[str] = []
    learn = make_learner(16, out / f"files{rank}", logger=logged.append, cbs=[CSVLogger(), SaveMidEpoch()])
    with learn.distrib_ctx(timeout=TIMEOUT):
        result["world_size"], result["rank"] = D.world_size(), D.rank()
        result["ddp"] = plain_fit(learn)
        learn.save("final")
    result["ddp"]["weights"] = weights(learn)
    result["logged"] = logged
    result["unwrapped"] = type(learn.model).__name__
    learn = make_learner(16, out / f"files{rank}")
    with learn.distrib_ctx(timeout=TIMEOUT):
        result["accumulated"] = accumulated_fit(learn, count_syncs=True)
    result["accumulated"]["weights"] = weights(learn)
    learn = make_learner(16, out / f"files{rank}").to_bf16()
    with learn.distrib_ctx(timeout=TIMEOUT):
        result["bf16_accumulated"] = accumulated_fit(learn, count_syncs=True)
        result["bf16_accumulated"]["validate"] = learn.validate()
    learn = make_learner(16, out / f"files{rank}")
    learn.dls.train.seed = None  # each rank's torch generator differs: the block must still give one order
    torch.manual_seed(rank)
    with learn.distrib_ctx(timeout=TIMEOUT):
        result["seedless_items"] = torch.cat([xb.sum((1, 2)) for xb, _ in learn.dls.train])  # an image's identity
    try:
        with learn.distrib_ctx(sync_bn=True, timeout=TIMEOUT):
            pass
    except ValueError as e:
        result["sync_bn_error"] = str(e)
    learn = make_learner(16, out / f"files{rank}")
    with learn.distrib_ctx(strategy="fsdp", timeout=TIMEOUT):
        result["fsdp"] = plain_fit(learn)
        learn.save("fsdp", with_opt=False)
    result["fsdp"]["weights"] = weights(learn)
    result["fsdp_unwrapped"] = type(learn.model).__name__
    torch.save(result, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def launched_fit(out: Path) -> None:
    """What :func:`lamina.learner.distributed.launch` runs in each process: a short DDP fit, then its results."""
    torch.set_num_threads(1)
    learn = make_learner(16, logger=None)
    with learn.distrib_ctx(timeout=TIMEOUT):
        learn.fit(1)
        seen = (D.rank(), D.world_size())
    torch.save({"rank_world": seen, "weights": weights(learn)}, out / f"launched{seen[0]}.pt")


def fail_on_rank_1() -> None:
    """Raises in rank 1 only (for the launcher's error report)."""
    if int(os.environ["RANK"]) == 1:
        raise ValueError("boom on rank 1")


class KillRank1(Callback):
    """SIGKILL rank 1 after training batch ``at`` of the first attempt (torchrun counts restarts in the env)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_batch(self) -> None:
        first = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if self.learn.training and self.learn.train_iter == self.at and D.rank() == 1 and first:
            os.kill(os.getpid(), signal.SIGKILL)


def elastic(out: Path, kill_at: int) -> None:
    """Two epochs with a checkpoint every 4 batches; rank 1 dies at batch ``kill_at`` (-1: never) and the group that
    torchrun restarts resumes from the newest checkpoint. Rank 0 writes the final weights and history."""
    torch.set_num_threads(1)
    restarted = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0"
    learn = make_learner(16, out, logger=None, cbs=[Checkpoint(every_n_batches=4), KillRank1(kill_at)])
    with learn.distrib_ctx(timeout=TIMEOUT):
        learn.fit_one_cycle(2, resume="auto" if restarted else None)
        if D.is_main_process():
            torch.save({"weights": weights(learn), "history": learn.recorder.values, "restarted": restarted},
                       out / "final.pt")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[2:3] == ["elastic"]:
        elastic(Path(sys.argv[1]), int(sys.argv[3]))
    else:
        main(Path(sys.argv[1]))
