"""The Recorder (losses, metrics, learning rates; the per-epoch table; plots) and prediction gathering.

Per-batch values are kept as tensors during an epoch and converted once at its end, so recording costs no device
synchronisation per batch.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lamina.learner.callback import Callback

__all__ = ["Gather", "GatherPreds", "Recorder", "batch_size"]


def batch_size(xb: tuple[Any, ...], yb: tuple[Any, ...]) -> int:
    """The number of items in a batch (from the first target, else the first input).

    Examples:
        >>> batch_size((torch.zeros(8, 3),), (torch.zeros(8),))
        8
    """
    for o in (*yb, *xb):
        if hasattr(o, "__len__"):
            return len(o)
    return 1


def smooth(values: list[float], beta: float) -> list[float]:
    """Exponential moving average with bias correction (the "smoothed loss").

    Examples:
        >>> [round(v, 3) for v in smooth([1.0, 1.0, 4.0], 0.5)]
        [1.0, 1.0, 2.714]
    """
    out, avg = [], 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return out


class Recorder(Callback):
    """Records training losses, learning rates and momentums per batch, and per epoch the train and valid losses
    and metrics; logs a clean table row per epoch through ``learn.logger``.

    Args:
        beta: smoothing of the plotted training loss.
        train_metrics: also compute metrics on the training set.

    Examples:
        >>> Recorder().names()[:3]
        ['epoch', 'train_loss', 'valid_loss']
        >>> r = Recorder(); r.losses = [0.5]; r._train_loss = 0.5
        >>> copy = Recorder(); copy.load_state_dict(r.state_dict()); copy.losses
        [0.5]
    """

    order = 50

    def __init__(self, beta: float = 0.98, train_metrics: bool = False) -> None:
        self.beta, self.train_metrics = beta, train_metrics
        self.losses: list[float] = []
        self.smooth_losses: list[float] = []
        self.lrs: list[list[float]] = []
        self.moms: list[list[float]] = []
        self.values: list[list[float]] = []
        self.iters: list[int] = []
        self.last_valid: list[float] = []
        self._batch_losses: list[Tensor] = []  # this epoch's, until its end
        self._sizes: list[int] = []
        self._train_loss = float("nan")

    def state_dict(self) -> dict[str, Any]:
        """The history (per-batch losses, lrs, momentums; per-epoch rows) and the epoch in progress: what a
        checkpoint saves so that a resumed fit ends with the history of an uninterrupted one."""
        batch_losses = self._batch_losses
        return {
            "losses": self.losses, "smooth_losses": self.smooth_losses, "lrs": self.lrs, "moms": self.moms,
            "values": self.values, "iters": self.iters, "last_valid": self.last_valid,
            "train_loss": self._train_loss,
            "batch_losses": torch.stack(batch_losses) if batch_losses else None,
            "sizes": list(getattr(self, "_sizes", [])),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.losses, self.smooth_losses = list(state["losses"]), list(state["smooth_losses"])
        self.lrs, self.moms = [list(v) for v in state["lrs"]], [list(v) for v in state["moms"]]
        self.values, self.iters = [list(v) for v in state["values"]], list(state["iters"])
        self.last_valid, self._train_loss = list(state["last_valid"]), float(state["train_loss"])
        losses = state["batch_losses"]
        if losses is not None and getattr(self, "learn", None) is not None:  # where this epoch's other losses will be
            losses = losses.to(next(self.learn.model.parameters(), torch.empty(0)).device)
        self._batch_losses, self._sizes = (list(losses.unbind()) if losses is not None else []), list(state["sizes"])

    def names(self) -> list[str]:
        """Column names of the per-epoch table."""
        metrics = [m.name for m in getattr(getattr(self, "learn", None), "metrics", [])]
        return ["epoch", "train_loss", "valid_loss", *metrics, "time"]

    def before_fit(self) -> None:
        self.losses, self.smooth_losses, self.lrs, self.moms, self.values, self.iters = [], [], [], [], [], []
        self._width = max(len(n) for n in self.names()) + 2
        device = next(self.learn.model.parameters(), torch.empty(0)).device
        note = "" if len(self.learn.dls) > 1 else ", no validation"
        self.learn.logger("".join(f"{n:>{self._width}}" for n in self.names()) + f"   [device: {device}{note}]")
        self._new_epoch()

    def before_epoch(self) -> None:
        self._new_epoch()

    def _new_epoch(self) -> None:
        """Start an epoch's row. Also run at ``before_fit`` and ``after_epoch``: a callback ordered before this one
        may cancel the epoch in ``before_epoch``, and its row (NaN losses) must still have a start time."""
        self._start = time.perf_counter()
        self.last_valid = []
        self._train_loss = float("nan")

    def before_train(self) -> None:
        self._batch_losses, self._sizes = [], []

    def before_validate(self) -> None:
        self._valid_sum, self._valid_n = torch.zeros(()), 0
        for m in self.learn.metrics:
            m.reset()

    def after_batch(self) -> None:
        learn = self.learn
        if not learn.yb:
            return
        bs = batch_size(learn.xb, learn.yb)
        loss = learn.loss.detach()
        if learn.training:
            self._batch_losses.append(loss)
            self._sizes.append(bs)
            hypers = learn.opt.hypers if learn.opt is not None else []
            self.lrs.append([h.get("lr", 0.0) for h in hypers])
            self.moms.append([h.get("mom", 0.0) for h in hypers])
            return
        self._valid_sum = self._valid_sum + loss.float().cpu() * bs
        self._valid_n += bs
        for m in learn.metrics:
            m.accumulate(learn.pred, *learn.yb)

    def after_train(self) -> None:
        self._flush()

    def after_fit(self) -> None:
        self._flush()  # a fit cancelled mid-epoch (e.g. by the LR finder) still keeps its batch losses

    def _flush(self) -> None:
        if not getattr(self, "_batch_losses", None):
            self._train_loss = float("nan")
            return
        losses = torch.stack(self._batch_losses).float().cpu().tolist()
        self._train_loss = float(np.average(losses, weights=self._sizes))
        self.losses.extend(losses)
        self.smooth_losses = smooth(self.losses, self.beta)
        self._batch_losses, self._sizes = [], []

    def after_validate(self) -> None:
        valid_loss = (self._valid_sum / self._valid_n).item() if self._valid_n else float("nan")
        self.last_valid = [valid_loss, *[_as_float(m.value) for m in self.learn.metrics]]

    def after_epoch(self) -> None:
        row = [
            float(self.learn.epoch),
            self._train_loss,
            *(self.last_valid or [float("nan")] * (1 + len(self.learn.metrics))),
            time.perf_counter() - self._start,
        ]
        self.values.append(row)
        self.iters.append(len(self.losses))
        cells = [_fmt(v, i, len(row), self._width) for i, v in enumerate(row)]
        if not self.last_valid:  # not validated (no validation set, or a cancelled phase): "-", not a NaN
            cells[2 : 3 + len(self.learn.metrics)] = [f"{'-':>{self._width}}"] * (1 + len(self.learn.metrics))
        self.learn.logger("".join(cells))
        self._new_epoch()

    # ----- plots ---------------------------------------------------------------------------------------------
    def plot_loss(self, skip_start: int = 5, with_valid: bool = True) -> Any:
        """Plot the smoothed training loss per batch and the validation loss per epoch; returns the figure."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")  # labels inside the figure
        xs = np.arange(skip_start, len(self.smooth_losses))
        ax.plot(xs, self.smooth_losses[skip_start:], label="train (smoothed)")
        if with_valid and self.values:
            ax.plot(self.iters, [r[2] for r in self.values], marker="o", label="valid")
        ax.set_xlabel("batches")
        ax.set_ylabel("loss")
        ax.legend()
        return fig

    def plot_sched(self) -> Any:
        """Plot the learning rate and momentum of the last parameter group per batch; returns the figure."""
        import matplotlib.pyplot as plt

        fig, axs = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
        for ax, values, name in zip(axs, (self.lrs, self.moms), ("lr", "mom")):
            ax.plot([v[-1] if v else 0.0 for v in values])
            ax.set_xlabel("batches")
            ax.set_ylabel(name)
        return fig

    def plot_lr_find(self, skip_end: int = 5, suggestions: dict[str, float] | None = None) -> Any:
        """Plot loss against learning rate (log scale) after ``lr_find``, marking suggestions; returns the figure."""
        import matplotlib.pyplot as plt

        lrs = [v[-1] for v in self.lrs]
        n = max(len(lrs) - skip_end, 1)
        fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")  # labels inside the figure
        ax.plot(lrs[:n], self.smooth_losses[:n])
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        for i, (name, lr) in enumerate((suggestions or {}).items()):
            idx = int(np.argmin(np.abs(np.log(np.array(lrs[:n])) - np.log(lr))))
            ax.plot(lr, self.smooth_losses[idx], "o", color=f"C{i + 1}", label=f"{name}: {lr:.2e}")
        if suggestions:
            ax.legend()
        return fig


def _as_float(v: Any) -> float:
    if v is None:
        return float("nan")
    return float(v.item()) if isinstance(v, Tensor) else float(v)


def _fmt(v: float, i: int, n: int, width: int) -> str:
    if i == 0:
        return f"{int(v):>{width}d}"
    if i == n - 1:
        return f"{time.strftime('%M:%S', time.gmtime(v)):>{width}}"
    return f"{v:>{width}.6f}"


class Gather:
    """Keeps the predictions and targets of an inference pass (and the inputs, per-item losses when asked).

    Args:
        with_input: keep the inputs too.
        with_loss: keep the loss of each item too.

    Examples:
        >>> Gather(with_loss=True).needs_loss
        True
    """

    def __init__(self, with_input: bool = False, with_loss: bool = False) -> None:
        self.with_input, self.with_loss, self.needs_loss = with_input, with_loss, with_loss
        self._preds: list[Tensor] = []
        self._targs: list[Tensor] = []
        self._inps: list[tuple[Tensor, ...]] = []
        self._losses: list[Tensor] = []

    def after_batch(self, run: Any) -> None:
        """Keep the outputs of the batch ``run`` (an inference run or a learner: ``pred``, ``xb``, ``yb``,
        ``loss_func``) just computed, on the CPU."""
        self._preds.append(_detach_cpu(run.pred))
        if run.yb:
            self._targs.append(_detach_cpu(run.yb[0]))
        if self.with_input:
            self._inps.append(tuple(_detach_cpu(x) for x in run.xb))
        if self.with_loss and run.yb:
            self._losses.append(_per_item_loss(run.loss_func, run.pred, run.yb))

    @property
    def preds(self) -> Tensor:
        """All predictions, concatenated."""
        if not self._preds:
            raise ValueError("no predictions: the loader gave no batch")
        return torch.cat(self._preds)

    @property
    def targets(self) -> Tensor | None:
        """All targets, concatenated (``None`` for unlabelled data)."""
        return torch.cat(self._targs) if self._targs else None

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        """All inputs, concatenated per input position."""
        return tuple(torch.cat(xs) for xs in zip(*self._inps))

    @property
    def losses(self) -> Tensor | None:
        """The loss of each item."""
        return torch.cat(self._losses) if self._losses else None


class GatherPreds(Callback, Gather):
    """Collects predictions and targets (and inputs, per-item losses when asked) during a validation pass of a fit;
    ``preds``, ``targets``, ``inputs`` and ``losses`` as :class:`Gather` gives them.

    Args:
        with_input: keep the inputs too.
        with_loss: compute the per-item loss too.

    Examples:
        >>> GatherPreds(with_input=True).with_input
        True
    """

    order = 60
    run_train = False

    def before_validate(self) -> None:
        Gather.__init__(self, self.with_input, self.with_loss)  # a fresh collection for each validation pass

    def after_batch(self) -> None:  # type: ignore[override]
        Gather.after_batch(self, self.learn)


def _detach_cpu(t: Any) -> Any:
    return t.detach().cpu() if isinstance(t, Tensor) else t


def _per_item_loss(loss_func: Any, pred: Tensor, yb: tuple[Any, ...]) -> Tensor:
    if getattr(loss_func, "reduction", None) is None:
        raise TypeError(f"with_loss needs a loss with a `reduction` attribute, got {type(loss_func).__name__}")
    per_item = copy.copy(loss_func)  # the learner's loss may be in use by another thread: change a copy
    per_item.reduction = "none"
    loss = per_item(pred, *yb).detach()
    n = batch_size((pred,), yb)
    return loss.reshape(n, -1).float().mean(1).cpu()
