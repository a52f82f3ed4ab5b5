"""Hyper-parameter schedules, the callback that applies them every batch, and the learning-rate finder.

A schedule is a function of the training position ``pos`` in [0, 1] (``learn.pct_train``). ``start`` and ``end``
may be numpy arrays (one value per parameter group), so one schedule drives discriminative learning rates.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from lamina.learner.callback import Callback, CancelFitException, CancelValidException

__all__ = [
    "LRFinder",
    "ParamScheduler",
    "SuggestedLRs",
    "combine_scheds",
    "combined_cos",
    "lr_find",
    "minimum",
    "sched_cos",
    "sched_exp",
    "sched_lin",
    "sched_no",
    "sched_poly",
    "slide",
    "steep",
    "valley",
]

Schedule = Callable[[float], Any]
_PROBES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)  # where a schedule is compared with a checkpoint's


def sched_lin(start: Any, end: Any) -> Schedule:
    """Linear from ``start`` to ``end``.

    Examples:
        >>> sched_lin(0.0, 10.0)(0.25)
        2.5
    """
    return lambda pos: start + pos * (end - start)


def sched_cos(start: Any, end: Any) -> Schedule:
    """Half a cosine from ``start`` to ``end`` (flat at both ends).

    Examples:
        >>> round(sched_cos(0.0, 10.0)(0.5), 6)
        5.0
    """
    return lambda pos: start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def sched_no(start: Any, end: Any) -> Schedule:
    """Constant at ``start`` (``end`` is ignored).

    Examples:
        >>> sched_no(3.0, 9.0)(0.7)
        3.0
    """
    return lambda pos: start


def sched_exp(start: Any, end: Any) -> Schedule:
    """Exponential (geometric) from ``start`` to ``end``; both must be > 0.

    Examples:
        >>> round(sched_exp(1.0, 100.0)(0.5), 6)
        10.0
    """
    if np.any(np.asarray(start) <= 0) or np.any(np.asarray(end) <= 0):
        raise ValueError(f"sched_exp needs start and end > 0, got {start} and {end}")
    return lambda pos: start * (end / start) ** pos


def sched_poly(start: Any, end: Any, power: float) -> Schedule:
    """Polynomial decay ``start + (1 - (1 - pos) ** power) * (end - start)``.

    Examples:
        >>> sched_poly(0.0, 1.0, 2.0)(0.5)
        0.75
    """
    return lambda pos: start + (1 - (1 - pos) ** power) * (end - start)


def combine_scheds(pcts: Sequence[float], scheds: Sequence[Schedule]) -> Schedule:
    """Run ``scheds`` one after the other, each for its fraction ``pcts`` of training (fractions sum to 1).

    Examples:
        >>> f = combine_scheds([0.5, 0.5], [sched_lin(0.0, 1.0), sched_lin(1.0, 0.0)])
        >>> [round(f(p), 3) for p in (0.0, 0.25, 0.5, 0.75, 1.0)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if len(pcts) != len(scheds):
        raise ValueError(f"combine_scheds got {len(pcts)} fractions for {len(scheds)} schedules")
    if any(p < 0 for p in pcts) or abs(sum(pcts) - 1) > 1e-6:
        raise ValueError(f"schedule fractions must be >= 0 and sum to 1, got {list(pcts)}")
    bounds = [0.0, *itertools.accumulate(float(p) for p in pcts)]

    def combined(pos: float) -> Any:
        pos = min(max(pos, 0.0), 1.0)
        i = bisect.bisect_right(bounds, pos) - 1
        i = min(max(i, 0), len(scheds) - 1)
        while i > 0 and pcts[i] == 0:
            i -= 1
        width = pcts[i] or 1.0
        return scheds[i](min((pos - bounds[i]) / width, 1.0))

    return combined


def combined_cos(pct: float, start: Any, middle: Any, end: Any) -> Schedule:
    """Cosine from ``start`` to ``middle`` over the first ``pct`` of training, then cosine to ``end``
    (the one-cycle shape).

    Examples:
        >>> f = combined_cos(0.25, 1.0, 10.0, 0.0)
        >>> [round(f(p), 3) for p in (0.0, 0.25, 1.0)]
        [1.0, 10.0, 0.0]
    """
    return combine_scheds([pct, 1 - pct], [sched_cos(start, middle), sched_cos(middle, end)])


class ParamScheduler(Callback):
    """Set hyper-parameters from schedules before every training batch (names the optimizer lacks are skipped).

    Args:
        scheds: ``{hyper name: schedule}``, e.g. ``{"lr": sched_cos(1e-3, 1e-5)}``.

    Examples:
        >>> ParamScheduler({"lr": sched_lin(0.1, 0.0)}).scheds["lr"](0.5)
        0.05
        >>> saved = ParamScheduler({"lr": sched_no(0.1, 0.1)}).state_dict()
        >>> ParamScheduler({"lr": sched_lin(0.1, 0.0)}).load_state_dict(saved)
        Traceback (most recent call last):
        ...
        ValueError: the 'lr' schedule of the checkpoint's fit ... resume with the same fit method and lr, ...
    """

    order = 60
    run_valid = False

    def __init__(self, scheds: dict[str, Schedule]) -> None:
        self.scheds = dict(scheds)

    def before_fit(self) -> None:
        names = self.learn.opt.hyper_names if self.learn.opt is not None else frozenset()
        self._active = {k: f for k, f in self.scheds.items() if k in names}

    def state_dict(self) -> dict[str, Any]:
        """No state (the position is the learner's ``pct_train``), but the schedules' values at a few positions,
        so that resuming a checkpoint in a fit with other schedules (another lr or length) is refused."""
        return {
            name: [np.asarray(f(p), dtype=float).ravel().tolist() for p in _PROBES] for name, f in self.scheds.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check that the checkpoint's schedules are this fit's."""
        own = self.state_dict()
        for name in sorted(own.keys() | state.keys()):
            if name not in own or name not in state or not np.allclose(own[name], state[name], rtol=1e-9, atol=0):
                raise ValueError(
                    f"the {name!r} schedule of the checkpoint's fit ({state.get(name)} at positions {_PROBES}) is not "
                    f"this fit's ({own.get(name)}): resume with the same fit method and lr, moms, pct_start..."
                )

    def before_batch(self) -> None:
        opt, pos = self.learn.opt, self.learn.pct_train
        for name, f in self._active.items():
            opt.set_hyper(name, f(pos))  # type: ignore[union-attr]


class LRFinder(Callback):
    """Raise the learning rate exponentially each batch, recording the loss; stop when it diverges.

    Args:
        start_lr: first learning rate.
        end_lr: last learning rate.
        num_it: number of batches.
        stop_div: stop when the smoothed loss exceeds 4x its best.

    Examples:
        >>> LRFinder(1e-6, 1.0, 50).num_it
        50
    """

    order = 60
    run_valid = False

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, stop_div: bool = True) -> None:
        if not 0 < start_lr < end_lr:
            raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
        self.start_lr, self.end_lr, self.num_it, self.stop_div = start_lr, end_lr, num_it, stop_div

    def before_fit(self) -> None:
        self._model_state = copy.deepcopy(self.learn.model.state_dict())
        self._opt_state = copy.deepcopy(self.learn.opt.state_dict()) if self.learn.opt is not None else None
        self.best, self._avg, self._n = float("inf"), 0.0, 0

    def before_batch(self) -> None:
        pos = self.learn.train_iter / self.num_it
        self.learn.opt.set_hyper("lr", self.start_lr * (self.end_lr / self.start_lr) ** pos)  # type: ignore[union-attr]

    def after_batch(self) -> None:
        loss = float(self.learn.loss.detach())
        self._n += 1
        self._avg = 0.98 * self._avg + 0.02 * loss
        smoothed = self._avg / (1 - 0.98**self._n)
        self.best = min(self.best, smoothed)
        if (self.stop_div and (smoothed > 4 * self.best or not math.isfinite(loss))) or self._n >= self.num_it:
            raise CancelFitException()

    def before_validate(self) -> None:
        raise CancelValidException()

    def after_fit(self) -> None:
        self.learn.model.load_state_dict(self._model_state)
        if self._opt_state is not None and self.learn.opt is not None:
            self.learn.opt.load_state_dict(self._opt_state)


class SuggestedLRs(NamedTuple):
    """Learning rates suggested by ``lr_find``, by method name (also readable as attributes), and the figure of the
    loss against the learning rate when it was drawn (``figure.savefig(...)`` keeps it).

    Examples:
        >>> SuggestedLRs({"valley": 1e-3}).valley
        0.001
    """

    lrs: dict[str, float]
    figure: Any = None

    def __getattr__(self, name: str) -> float:
        try:
            return self.lrs[name]
        except KeyError:
            raise AttributeError(name) from None


def _curve(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    lr, loss = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    keep = np.isfinite(loss)
    return lr[keep], loss[keep]


def minimum(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """A tenth of the learning rate at the lowest loss.

    Examples:
        >>> minimum([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0])
        0.001
    """
    lr, loss = _curve(lrs, losses)
    return float(lr[int(np.argmin(loss))] / 10)


def steep(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The learning rate where the loss falls fastest against log(lr).

    Examples:
        >>> steep([1e-4, 1e-3, 1e-2, 1e-1], [1.0, 0.9, 0.3, 0.2])
        0.001
    """
    lr, loss = _curve(lrs, losses)
    if len(lr) < 2:
        return float(lr[0])
    return float(lr[int(np.argmin(np.diff(loss) / np.diff(np.log(lr))))])


def valley(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """Two thirds of the way down the longest stretch of falling loss: fast, but clear of the cliff.

    Examples:
        >>> valley([1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.9, 1.5, 1.0, 0.9, 3.0])
        0.001
    """
    lr, loss = _curve(lrs, losses)
    best_len, best_start, start = 0, 0, 0
    for i in range(1, len(loss) + 1):
        if i == len(loss) or loss[i] > loss[i - 1]:
            if i - start > best_len:
                best_len, best_start = i - start, start
            start = i
    idx = best_start + int((best_len - 1) * 2 / 3)
    return float(lr[idx])


def slide(lrs: Sequence[float], losses: Sequence[float], fraction: float = 0.75) -> float:
    """The learning rate where the loss has covered ``fraction`` of its fall from the start to the minimum.

    Examples:
        >>> slide([1e-4, 1e-3, 1e-2, 1e-1], [2.0, 1.8, 1.0, 0.9])
        0.01
    """
    lr, loss = _curve(lrs, losses)
    low = int(np.argmin(loss))
    target = loss[0] - fraction * (loss[0] - loss[low])
    idx = int(np.argmax(loss[: low + 1] <= target))
    return float(lr[idx])


def lr_find(
    learn: Any,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_it: int = 100,
    stop_div: bool = True,
    suggest_funcs: Sequence[Callable[[Sequence[float], Sequence[float]], float]] = (valley,),
    show_plot: bool = True,
) -> SuggestedLRs:
    """Train with an exponentially rising learning rate, then restore the model; return suggested rates.

    With ``show_plot`` the loss is drawn against the learning rate with the suggestions marked (shown in a notebook;
    kept as the result's ``figure``). The curve stays in ``learn.recorder`` (``learn.recorder.plot_lr_find()``).

    Args:
        learn: the Learner.
        start_lr: first learning rate.
        end_lr: last learning rate.
        num_it: number of batches.
        stop_div: stop when the loss diverges.
        suggest_funcs: functions ``(lrs, losses) -> lr`` (``valley``, ``minimum``, ``steep``, ``slide``).
        show_plot: draw the curve (the result's ``figure``).

    Examples:
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> x = torch.randn(512, 4); y = x.sum(1, keepdim=True)
        >>> learn = Learner(DataLoaders(DataLoader((x, y), bs=16, shuffle=True)), torch.nn.Linear(4, 1),
        ...                 show_progress=False, logger=None)
        >>> before = learn.model.weight.clone()
        >>> sugg = lr_find(learn, num_it=30)
        >>> torch.equal(before, learn.model.weight), 1e-7 < sugg.valley < 10, sugg.figure.axes[0].get_xscale()
        (True, True, 'log')
    """
    n_epoch = math.ceil(num_it / len(learn.dls.train))
    with learn.no_logging():
        learn.fit(n_epoch, cbs=[LRFinder(start_lr, end_lr, num_it, stop_div)])
    lrs = [v[-1] for v in learn.recorder.lrs]
    losses = learn.recorder.smooth_losses
    suggestions = {f.__name__: f(lrs, losses) for f in suggest_funcs}
    figure = learn.recorder.plot_lr_find(suggestions=suggestions) if show_plot else None
    return SuggestedLRs(suggestions, figure)
