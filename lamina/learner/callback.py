"""The callback contract: events between every step of training, cancellation by exception, ordering.

A callback is an object with methods named after events (``before_batch``, ``after_loss``...). It reaches the
learner as ``self.learn`` and may read or replace anything there (``xb``, ``yb``, ``pred``, ``loss``, ``model``,
``opt``...): the loop uses what it finds. Raising ``Cancel*Exception`` skips the rest of that step, and fires the
matching ``after_cancel_*`` event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from lamina.learner.learner import Learner

__all__ = [
    "EVENTS",
    "Callback",
    "CancelBackwardException",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidException",
    "TrainEvalCallback",
    "sort_callbacks",
]

EVENTS: tuple[str, ...] = (
    "before_fit", "before_epoch", "before_train", "before_batch", "after_pred", "after_loss",
    "before_backward", "after_backward", "before_step", "after_step", "after_cancel_batch", "after_batch",
    "after_cancel_backward", "after_cancel_step", "after_cancel_train", "after_train", "before_validate",
    "after_cancel_validate", "after_validate", "after_cancel_epoch", "after_epoch", "after_cancel_fit", "after_fit",
)  # fmt: skip


class CancelFitException(Exception):
    """Stop training now; ``after_cancel_fit`` then ``after_fit`` run.

    Examples:
        >>> class Stop(Callback):
        ...     def before_fit(self): raise CancelFitException()
        >>> "after_cancel_fit" in EVENTS
        True
    """


class CancelEpochException(Exception):
    """Skip the rest of this epoch.

    Examples:
        >>> class Stop(Callback):
        ...     def before_epoch(self): raise CancelEpochException()
        >>> "after_cancel_epoch" in EVENTS
        True
    """


class CancelTrainException(Exception):
    """Skip the rest of this epoch's training phase (validation still runs).

    Examples:
        >>> class Stop(Callback):
        ...     def before_train(self): raise CancelTrainException()
        >>> "after_cancel_train" in EVENTS
        True
    """


class CancelValidException(Exception):
    """Skip the rest of this epoch's validation phase.

    Examples:
        >>> class Stop(Callback):
        ...     def before_validate(self): raise CancelValidException()
        >>> "after_cancel_validate" in EVENTS
        True
    """


class CancelBatchException(Exception):
    """Skip the rest of this batch (no backward pass or step if raised before them).

    Examples:
        >>> class Stop(Callback):
        ...     def before_batch(self): raise CancelBatchException()
        >>> "after_cancel_batch" in EVENTS
        True
    """


class CancelBackwardException(Exception):
    """Skip the backward pass of this batch.

    Examples:
        >>> class Stop(Callback):
        ...     def before_batch(self): raise CancelBackwardException()
        >>> "after_cancel_backward" in EVENTS
        True
    """


class CancelStepException(Exception):
    """Skip the optimizer step of this batch.

    Examples:
        >>> class Stop(Callback):
        ...     def before_batch(self): raise CancelStepException()
        >>> "after_cancel_step" in EVENTS
        True
    """


class Callback:
    """Base class of callbacks: implement any event methods; reach the learner as ``self.learn``.

    Class attributes: ``order`` (lower runs first), ``run_before`` / ``run_after`` (callback classes or names this
    one must run before / after), ``run_train`` / ``run_valid`` (whether batch events fire in each phase).

    Training state (the checkpoint contract): a callback that holds state a resumed fit needs (a best value, a
    counter, a generator) defines ``state_dict() -> dict`` and ``load_state_dict(state)``. The dict holds tensors,
    numbers, strings, ``None`` and lists or str-keyed dicts of them, no other objects: a ``Checkpoint`` stores it
    without pickle (tensors in safetensors, the rest as JSON, so tuples come back as lists) under the callback's
    ``name``, and a fit with ``resume=`` hands it back to the callback of that name, after every ``before_fit``
    (and, for a checkpoint taken mid-epoch, after the resumed epoch's ``before_train``). ``load_state_dict`` may
    raise ``ValueError`` when the state does not fit (say what differs and what to do).

    Examples:
        >>> class DoubleLoss(Callback):
        ...     def after_loss(self): self.learn.loss = self.learn.loss * 2
        >>> DoubleLoss().name
        'double_loss'
        >>> type("CSVLogger", (Callback,), {})().name, type("TerminateOnNaNCallback", (Callback,), {})().name
        ('csv_logger', 'terminate_on_nan')
        >>> class Peek(Callback):
        ...     def before_fit(self): return self.model
        >>> Peek().before_fit()
        Traceback (most recent call last):
        ...
        AttributeError: 'Peek' object has no attribute 'model': ... write self.learn.model
        >>> class Count(Callback):
        ...     def __init__(self): self.n = 0
        ...     def after_batch(self): self.n += 1
        ...     def state_dict(self): return {"n": self.n}
        ...     def load_state_dict(self, state): self.n = state["n"]
        >>> c = Count(); c.load_state_dict({"n": 7}); c.state_dict()
        {'n': 7}
    """

    order: ClassVar[int] = 0
    run_before: ClassVar[Sequence[type | str]] = ()
    run_after: ClassVar[Sequence[type | str]] = ()
    run_train: bool = True
    run_valid: bool = True
    learn: Learner

    @property
    def name(self) -> str:
        """The snake_case class name without a ``Callback`` suffix: the attribute the learner exposes it under."""
        n = type(self).__name__
        n = n[: -len("Callback")] if n.endswith("Callback") and n != "Callback" else n
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z]|[A-Z]{2})|(?<=[A-Z])(?=[A-Z][a-z])", "_", n).lower()

    def events(self) -> list[str]:
        """The events this callback implements."""
        return [e for e in EVENTS if callable(getattr(self, e, None))]

    def __repr__(self) -> str:
        return type(self).__name__

    if not TYPE_CHECKING:  # for mypy, a callback's attributes stay checked (no catch-all)

        def __getattr__(self, name: str) -> Any:
            """Only reached for a missing attribute: when the learner has it, say to write ``self.learn.<name>``
            (callbacks reach the learner explicitly; nothing is forwarded)."""
            learn = self.__dict__.get("learn")
            known = hasattr(learn, name) if learn is not None else name in _LEARNER_NAMES
            if name.startswith("__") or name == "learn" or not known:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}: callbacks reach the learner explicitly, "
                f"write self.learn.{name}"
            )


_LEARNER_NAMES = frozenset({
    "model", "dls", "dl", "opt", "loss_func", "metrics", "xb", "yb", "pred", "loss", "training", "epoch", "n_epoch",
    "iter", "n_iter", "train_iter", "n_train_iter", "pct_train", "recorder", "logger", "cbs", "lr", "path",
})  # fmt: skip


def _matches(cb: Callback, ref: type | str) -> bool:
    return isinstance(cb, ref) if isinstance(ref, type) else type(cb).__name__ == ref


def sort_callbacks(cbs: Iterable[Callback]) -> list[Callback]:
    """Order callbacks by ``order``, then make every ``run_before`` / ``run_after`` constraint hold.

    Examples:
        >>> class A(Callback): order = 10
        >>> class B(Callback): run_before = (A,); order = 20
        >>> sort_callbacks([A(), B()])
        [B, A]
    """
    pending = sorted(cbs, key=lambda c: c.order)
    out: list[Callback] = []
    while pending:
        for i, cb in enumerate(pending):
            others = pending[:i] + pending[i + 1 :]
            blocked = any(
                any(_matches(o, r) for r in cb.run_after) or any(_matches(cb, r) for r in o.run_before) for o in others
            )
            if not blocked:
                out.append(pending.pop(i))
                break
        else:
            raise ValueError(f"callbacks {pending} have run_before/run_after constraints that form a cycle")
    return out


class TrainEvalCallback(Callback):
    """Switches the model between train and eval mode and keeps the learner's counters
    (``epoch``, ``iter``, ``n_iter``, ``train_iter``, ``pct_train``).

    Examples:
        >>> TrainEvalCallback.order < 0
        True
    """

    order = -10

    def before_fit(self) -> None:
        self.learn.train_iter, self.learn.pct_train = 0, 0.0
        self.learn.n_train_iter = max(len(self.learn.dls.train) * self.learn.n_epoch, 1)

    def after_batch(self) -> None:
        if self.learn.training:
            self.learn.train_iter += 1
            self.learn.pct_train = self.learn.train_iter / self.learn.n_train_iter

    def before_train(self) -> None:
        self.learn.pct_train = self.learn.epoch / self.learn.n_epoch
        self.learn.model.train()

    def before_validate(self) -> None:
        self.learn.model.eval()
