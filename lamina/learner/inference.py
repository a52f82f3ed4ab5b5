"""Inference that leaves the learner as it found it: a private loop over a local loader and local collectors.

``Learner.predict`` / ``get_preds`` / ``validate`` / ``tta`` run here. Nothing is written on the learner (no
``learn.dl``, ``learn.xb``, ``learn.pred``, no callbacks added or removed), so one loaded learner can serve many
threads at once. The loop's own state lives on an :class:`InferenceRun`, and what is kept from each batch is decided
by the collectors handed to it (the local callback list): :class:`Gather` keeps predictions, targets, inputs and
per-item losses; :class:`Scores` keeps the loss and the metrics, on copies of the learner's metrics.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from lamina.core.tensors import as_plain
from lamina.learner.metrics import Metric
from lamina.learner.precision import to_float
from lamina.learner.recorder import Gather, batch_size

__all__ = ["Collector", "Gather", "InferenceRun", "Scores"]


class Collector(Protocol):
    """What an inference pass calls after each batch: ``after_batch(run)`` reads ``run.xb/yb/pred/loss``."""

    needs_loss: bool

    def after_batch(self, run: InferenceRun) -> None: ...


class InferenceRun:
    """One inference pass over a loader: the model, the loss and the batch being worked on, all local.

    Args:
        model: the network (put in eval mode if it is not).
        loss_func: computes ``run.loss`` when a collector needs it and the batch has targets.
        n_inp: how many leading batch elements are inputs.
        collectors: called after every batch (see :class:`Gather`, :class:`Scores`).
        autocast: run the forward pass and loss under ``torch.autocast`` in this dtype (``None``: no autocast).
        sync: ``sync(k, (xb, pred, yb))`` replaces batch ``k``'s inputs, predictions and targets before the loss
            (distributed inference gathers every rank's piece there); ``None``: nothing.

    Examples:
        >>> gather = Gather()
        >>> run = InferenceRun(nn.Linear(2, 3), nn.CrossEntropyLoss(), 1, [gather])
        >>> run.run([(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))] * 2)
        >>> tuple(gather.preds.shape), gather.targets.tolist()
        ((8, 3), [0, 0, 0, 0, 0, 0, 0, 0])
    """

    def __init__(
        self,
        model: nn.Module,
        loss_func: Callable[..., Tensor],
        n_inp: int,
        collectors: Sequence[Collector],
        autocast: torch.dtype | None = None,
        sync: Callable[[int, Any], Any] | None = None,
    ) -> None:
        self.model, self.loss_func, self.n_inp = model, loss_func, n_inp
        self.collectors, self.autocast, self.sync = list(collectors), autocast, sync
        self.xb: tuple[Any, ...] = ()
        self.yb: tuple[Any, ...] = ()
        self.pred: Any = None
        self.loss: Tensor | None = None

    def run(self, batches: Iterable[Any]) -> None:
        """Predict every batch of ``batches`` (a DataLoader or any iterable of batches) and feed the collectors."""
        if self.model.training:
            self.model.eval()
        needs_loss = any(c.needs_loss for c in self.collectors)
        with torch.no_grad():
            for k, batch in enumerate(batches):
                b = as_plain(batch)
                self.xb, self.yb = (b[: self.n_inp], b[self.n_inp :]) if isinstance(b, tuple) else ((b,), ())
                with self._autocast():
                    self.pred = self.model(*self.xb)
                    if self.sync is not None:
                        self.xb, self.pred, self.yb = self.sync(k, (self.xb, self.pred, self.yb))
                    self.loss = self.loss_func(self.pred, *self.yb) if needs_loss and self.yb else None
                if self.autocast is not None:
                    self.pred = to_float(self.pred)
                for c in self.collectors:
                    c.after_batch(self)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast is None:
            return contextlib.nullcontext()
        p = next(self.model.parameters(), None)
        return torch.autocast(p.device.type if p is not None else "cpu", dtype=self.autocast)


class Scores:
    """The mean loss and the metrics of an inference pass, on fresh copies of ``metrics`` (the originals, shared
    with the learner and other threads, are left alone).

    Args:
        metrics: the metrics to compute.

    Examples:
        >>> from lamina.learner.metrics import as_metric, accuracy
        >>> scores = Scores([as_metric(accuracy)])
        >>> run = InferenceRun(nn.Identity(), nn.CrossEntropyLoss(), 1, [scores])
        >>> run.run([(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 1]))])
        >>> [round(v, 3) for v in scores.values()]
        [0.813, 0.5]
    """

    needs_loss = True

    def __init__(self, metrics: Sequence[Metric]) -> None:
        self.metrics = [copy.copy(m) for m in metrics]
        for m in self.metrics:
            m.reset()
        self._sum, self._n = torch.zeros(()), 0

    def after_batch(self, run: InferenceRun) -> None:
        """Add this batch's loss (weighted by its size) and feed the metrics."""
        if not run.yb or run.loss is None:
            return
        bs = batch_size(run.xb, run.yb)
        self._sum = self._sum + run.loss.detach().float().cpu() * bs
        self._n += bs
        for m in self.metrics:
            m.accumulate(run.pred, *run.yb)

    def values(self) -> list[float]:
        """``[loss, *metrics]`` (NaN for what saw no labelled batch)."""
        loss = (self._sum / self._n).item() if self._n else float("nan")
        out = [loss]
        for m in self.metrics:
            v = m.value
            out.append(float("nan") if v is None else float(v.item()) if isinstance(v, Tensor) else float(v))
        return out
