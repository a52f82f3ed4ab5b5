"""Callbacks that watch a value of the per-epoch table and act on it: stop early, keep the best model, lower the
learning rate on a plateau, stop on a non-finite loss.

A tracker reads the row the ``Recorder`` has just written (``learn.recorder.values[-1]``), so ``monitor`` is any
column of ``learn.recorder.names()`` but ``epoch`` and ``time``: ``"valid_loss"``, ``"train_loss"`` or a metric name.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lamina.learner.callback import Callback, CancelBatchException, CancelFitException

__all__ = [
    "EarlyStoppingCallback",
    "PatienceCallback",
    "ReduceLROnPlateau",
    "SaveModelCallback",
    "TerminateOnNaNCallback",
    "TrackerCallback",
    "infer_comp",
    "is_improvement",
]

_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "msle", "perplexity")
_COMPS = ("less", "greater")


def infer_comp(monitor: str) -> str:
    """``"less"`` when a smaller ``monitor`` is better (losses, errors, mse/mae, perplexity), else ``"greater"``.

    Examples:
        >>> infer_comp("valid_loss"), infer_comp("error_rate"), infer_comp("rmse"), infer_comp("accuracy")
        ('less', 'less', 'less', 'greater')
    """
    name = monitor.lower()
    return "less" if any(word in name for word in _LOWER_IS_BETTER) else "greater"


def is_improvement(value: float, best: float, comp: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in the direction ``comp``; NaN never does.

    Args:
        value: the new value.
        best: the best value so far.
        comp: ``"less"`` (smaller is better) or ``"greater"``.
        min_delta: the margin an improvement must exceed.

    Examples:
        >>> is_improvement(0.5, 0.6, "less"), is_improvement(0.55, 0.6, "less", min_delta=0.1)
        (True, False)
        >>> is_improvement(float("nan"), float("inf"), "less")
        False
    """
    if comp == "less":
        return value < best - min_delta
    if comp == "greater":
        return value > best + min_delta
    raise ValueError(f"comp must be 'less' or 'greater', got {comp!r}")


class TrackerCallback(Callback):
    """Track the best value of ``monitor`` at the end of each epoch: ``best``, ``best_epoch`` and ``new_best``.

    Args:
        monitor: the column to watch: ``"valid_loss"``, ``"train_loss"`` or a metric name.
        comp: ``"less"`` or ``"greater"`` (which way is better); inferred from the name when ``None``.
        min_delta: how much better a value must be to count as an improvement.
        reset_on_fit: forget the best value at the start of each ``fit``.

    Examples:
        >>> t = TrackerCallback(monitor="accuracy")
        >>> t.comp, t.best
        ('greater', -inf)
        >>> t.load_state_dict({"best": 0.9, "best_epoch": 2, "new_best": False}); t.state_dict()["best"]
        0.9
    """

    order = 60

    def __init__(
        self, monitor: str = "valid_loss", comp: str | None = None, min_delta: float = 0.0, reset_on_fit: bool = True
    ) -> None:
        if comp is not None and comp not in _COMPS:
            raise ValueError(f"comp must be 'less', 'greater' or None (inferred from the monitor name), got {comp!r}")
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        self.monitor, self.comp = monitor, comp or infer_comp(monitor)
        self.min_delta, self.reset_on_fit = float(min_delta), reset_on_fit
        self.new_best, self.best_epoch = False, -1
        self.best = self._worst()

    def state_dict(self) -> dict[str, Any]:
        """The best value so far, its epoch and whether the last epoch set it."""
        return {"best": self.best, "best_epoch": self.best_epoch, "new_best": self.new_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.best, self.best_epoch, self.new_best = float(state["best"]), state["best_epoch"], state["new_best"]

    def _worst(self) -> float:
        return math.inf if self.comp == "less" else -math.inf

    def before_fit(self) -> None:
        names = self.learn.recorder.names()
        columns = names[1:-1]
        if self.monitor not in columns:
            raise ValueError(f"monitor {self.monitor!r} is not recorded; choose one of {columns}")
        self._index = names.index(self.monitor)
        if self.reset_on_fit:
            self.best, self.best_epoch = self._worst(), -1

    def after_epoch(self) -> None:
        value = float(self.learn.recorder.values[-1][self._index])
        self.new_best = is_improvement(value, self.best, self.comp, self.min_delta)
        if self.new_best:
            self.best, self.best_epoch = value, self.learn.epoch


class PatienceCallback(TrackerCallback):
    """A tracker that acts after ``patience`` epochs without improvement: counts them in ``wait`` and calls
    ``out_of_patience`` (which subclasses implement).

    Examples:
        >>> issubclass(EarlyStoppingCallback, PatienceCallback), issubclass(ReduceLROnPlateau, PatienceCallback)
        (True, True)
    """

    def __init__(
        self, monitor: str, comp: str | None, min_delta: float, patience: int, reset_on_fit: bool = True
    ) -> None:
        super().__init__(monitor, comp, min_delta, reset_on_fit)
        self.patience = _check_patience(patience)
        self.wait = 0

    def before_fit(self) -> None:
        super().before_fit()
        self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        """The tracker's state and the epochs waited without improvement."""
        return {**super().state_dict(), "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        super().load_state_dict(state)
        self.wait = state["wait"]

    def after_epoch(self) -> None:
        super().after_epoch()
        self.wait = 0 if self.new_best else self.wait + 1
        if self.wait >= self.patience:
            self.out_of_patience()

    def out_of_patience(self) -> None:
        """What to do after ``patience`` epochs without improvement."""
        raise NotImplementedError


class EarlyStoppingCallback(PatienceCallback):
    """Stop training (``CancelFitException``) when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: the column to watch.
        comp: ``"less"`` or ``"greater"``; inferred when ``None``.
        min_delta: how much better a value must be to count as an improvement.
        patience: epochs without improvement to wait before stopping.
        reset_on_fit: forget the best value at the start of each ``fit``.

    Examples:
        >>> EarlyStoppingCallback(patience=3).patience
        3
    """

    order = 70  # after the other trackers, so they see the epoch that stops training

    def __init__(
        self,
        monitor: str = "valid_loss",
        comp: str | None = None,
        min_delta: float = 0.0,
        patience: int = 1,
        reset_on_fit: bool = True,
    ) -> None:
        super().__init__(monitor, comp, min_delta, patience, reset_on_fit)

    def out_of_patience(self) -> None:
        self.learn.logger(f"No improvement of {self.monitor} since epoch {self.best_epoch}: stopping early.")
        raise CancelFitException()


class SaveModelCallback(TrackerCallback):
    """Save the model each time ``monitor`` improves and load the best one when ``fit`` ends.

    With ``every_epoch`` it saves ``{fname}_{epoch}`` every epoch (or every ``n`` epochs) instead; with ``at_end`` it
    saves the final model as ``fname`` when ``fit`` ends. In both cases nothing is loaded at the end.

    Args:
        monitor: the column to watch.
        comp: ``"less"`` or ``"greater"``; inferred when ``None``.
        min_delta: how much better a value must be to count as an improvement.
        fname: file name (without extension) under ``learn.path / learn.model_dir``.
        every_epoch: ``False``, ``True`` (every epoch) or ``n`` (every ``n`` epochs).
        at_end: save the final model instead of the best one.
        with_opt: save and load the optimizer state too.
        reset_on_fit: forget the best value at the start of each ``fit``.

    Examples:
        >>> SaveModelCallback(fname="best", every_epoch=2).every_epoch
        2
    """

    def __init__(
        self,
        monitor: str = "valid_loss",
        comp: str | None = None,
        min_delta: float = 0.0,
        fname: str = "model",
        every_epoch: bool | int = False,
        at_end: bool = False,
        with_opt: bool = False,
        reset_on_fit: bool = True,
    ) -> None:
        super().__init__(monitor, comp, min_delta, reset_on_fit)
        if not isinstance(every_epoch, int) or every_epoch < 0:
            raise ValueError(f"every_epoch must be False, True or an int >= 1, got {every_epoch!r}")
        if not fname:
            raise ValueError("fname must be a non-empty file name, got ''")
        self.fname, self.every_epoch, self.at_end, self.with_opt = fname, int(every_epoch), at_end, with_opt
        self._saved_best = False

    def before_fit(self) -> None:
        super().before_fit()
        self._saved_best = False

    def state_dict(self) -> dict[str, Any]:
        """The tracker's state and whether a best model was saved (to load at the end)."""
        return {**super().state_dict(), "saved_best": self._saved_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        super().load_state_dict(state)
        self._saved_best = state["saved_best"]

    def after_epoch(self) -> None:
        epoch = self.learn.epoch
        if self.every_epoch:
            if epoch % self.every_epoch == 0:
                self.learn.save(f"{self.fname}_{epoch}", with_opt=self.with_opt)
            return
        super().after_epoch()
        if self.new_best and not self.at_end:
            self.learn.logger(f"Better model found at epoch {epoch} with {self.monitor} value: {self.best:.6g}.")
            self.learn.save(self.fname, with_opt=self.with_opt)
            self._saved_best = True

    def after_fit(self) -> None:
        if self.at_end:
            self.learn.save(self.fname, with_opt=self.with_opt)
        elif self._saved_best:
            self.learn.load(self.fname, with_opt=self.with_opt)


class ReduceLROnPlateau(PatienceCallback):
    """Divide the learning rate of every parameter group by ``factor`` (not below ``min_lr``) when ``monitor`` has
    not improved for ``patience`` epochs.

    A schedule that sets the lr every batch (``fit_one_cycle``) overrides it: use this with ``fit``.

    Args:
        monitor: the column to watch.
        comp: ``"less"`` or ``"greater"``; inferred when ``None``.
        min_delta: how much better a value must be to count as an improvement.
        patience: epochs without improvement to wait before reducing.
        factor: the divisor (> 1).
        min_lr: the learning rate never goes below this.
        reset_on_fit: forget the best value at the start of each ``fit``.

    Examples:
        >>> ReduceLROnPlateau(patience=2, factor=5.0).factor
        5.0
    """

    def __init__(
        self,
        monitor: str = "valid_loss",
        comp: str | None = None,
        min_delta: float = 0.0,
        patience: int = 1,
        factor: float = 10.0,
        min_lr: float = 0.0,
        reset_on_fit: bool = True,
    ) -> None:
        super().__init__(monitor, comp, min_delta, patience, reset_on_fit)
        if not factor > 1:
            raise ValueError(f"factor divides the lr, so it must be > 1, got {factor} (to divide by 10, pass 10)")
        if not min_lr >= 0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")
        self.factor, self.min_lr = float(factor), float(min_lr)

    def out_of_patience(self) -> None:
        self.wait = 0
        opt = self.learn.opt
        assert opt is not None
        old = [h["lr"] for h in opt.hypers]
        new = [max(lr / self.factor, self.min_lr) for lr in old]
        if new != old:
            opt.set_hyper("lr", new)
            shown = ", ".join(f"{lr:.3g}" for lr in new)
            self.learn.logger(f"Epoch {self.learn.epoch}: no improvement of {self.monitor}, lr reduced to {shown}.")


class TerminateOnNaNCallback(Callback):
    """Stop training (``CancelFitException``) as soon as a batch loss is NaN or infinite, saying where.

    The loss is checked before the backward pass: that batch is cancelled (no gradient, no optimizer step), so the
    weights stay the last finite ones; then the fit stops at the end of the batch.

    Examples:
        >>> TerminateOnNaNCallback().name
        'terminate_on_nan'
    """

    order = 15  # after the callbacks that set the loss (default order 0, mixed precision's 10)

    def __init__(self) -> None:
        self._bad: float | None = None

    def before_fit(self) -> None:
        self._bad = None

    def after_loss(self) -> None:
        loss = self.learn.loss.detach()
        if not bool(torch.isfinite(loss).all()):
            self._bad = loss.float().mean().item()
            raise CancelBatchException()  # skips the backward pass and the step; after_batch still runs

    def after_batch(self) -> None:
        if self._bad is None:
            return
        learn, value, self._bad = self.learn, self._bad, None
        phase = "training" if learn.training else "validation"
        learn.logger(f"Loss is {value} at epoch {learn.epoch}, {phase} batch {learn.iter}: stopping training.")
        raise CancelFitException()


def _check_patience(patience: int) -> int:
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an int >= 1 (epochs without improvement), got {patience!r}")
    return patience
