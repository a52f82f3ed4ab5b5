"""The Learner: data, model, loss and optimizer, trained by a small loop that fires an event between every step.

The loop is ``_fit`` / ``_epoch`` / ``_phase`` / ``_batch`` below; everything else (schedules, mixed precision,
progress bars, early stopping...) is a callback that reads and writes the learner's attributes. What a callback
writes is what the loop uses: a new ``learn.xb`` is what the model sees, a new ``learn.loss`` is what is
back-propagated.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lamina.core.tensors import TensorCategory, TensorMultiCategory, as_plain, retain_type
from lamina.core.utils import atomic_write, listify
from lamina.data.load import DataLoader, DataLoaders
from lamina.learner.callback import (
    Callback,
    CancelBackwardException,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    TrainEvalCallback,
    sort_callbacks,
)
from lamina.learner.checkpoint import FitStage, Resume, checkpoint_stage, resume_file
from lamina.learner.inference import Collector, Gather, InferenceRun, Scores
from lamina.learner.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from lamina.learner.metrics import Metric, as_metric
from lamina.learner.precision import MixedPrecision
from lamina.learner.progress import ProgressCallback
from lamina.learner.recorder import Recorder
from lamina.learner.schedule import ParamScheduler, combine_scheds, combined_cos, lr_find, sched_cos, sched_no
from lamina.optim import Adam, BaseOptimizer

__all__ = ["Learner", "atomic_save", "default_loss_func", "is_norm_or_bias", "trainable_params"]

_PHASE_FREE = frozenset({"before_fit", "after_fit", "after_cancel_fit", "before_epoch", "after_epoch",
                         "after_cancel_epoch"})  # fmt: skip
_TARGET_LOCK = threading.Lock()
_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def default_loss_func(target: Any) -> nn.Module:
    """The loss that suits a batch's target: cross-entropy for categories, BCE for one-hot multi-labels, MSE else.

    Examples:
        >>> type(default_loss_func(TensorCategory(torch.tensor([0, 1])))).__name__
        'CrossEntropyLossFlat'
    """
    if isinstance(target, TensorMultiCategory) or (isinstance(target, Tensor) and target.is_floating_point()
                                                   and isinstance(target, TensorCategory)):  # fmt: skip
        return BCEWithLogitsLossFlat()
    if isinstance(target, Tensor) and not target.is_floating_point():
        return CrossEntropyLossFlat()
    return MSELossFlat()


def is_norm_or_bias(module: nn.Module, name: str) -> bool:
    """Whether parameter ``name`` of ``module`` belongs to a normalization layer or is a bias.

    Examples:
        >>> is_norm_or_bias(nn.BatchNorm1d(3), "weight"), is_norm_or_bias(nn.Linear(2, 2), "weight")
        (True, False)
    """
    return isinstance(module, _NORM_TYPES) or name == "bias"


def trainable_params(model: nn.Module) -> list[Tensor]:
    """The parameters of ``model`` that require gradients.

    Examples:
        >>> len(trainable_params(nn.Linear(2, 2)))
        2
    """
    return [p for p in model.parameters() if p.requires_grad]


def _norm_and_bias_params(model: nn.Module) -> list[Tensor]:
    return [p for m in model.modules() for n, p in m.named_parameters(recurse=False) if is_norm_or_bias(m, n)]


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash never leaves a half-written file.

    Args:
        obj: what to save (state dicts: tensors and plain values).
        path: the destination.

    Examples:
        >>> import tempfile
        >>> p = atomic_save({"w": torch.ones(2)}, Path(tempfile.mkdtemp()) / "x.pth")
        >>> torch.load(p, weights_only=True)["w"].tolist()
        [1.0, 1.0]
    """
    path = Path(path)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return path


class Learner:
    """Train ``model`` on ``dls`` with ``loss_func`` and an optimizer from ``opt_func``, through callbacks.

    Args:
        dls: training and validation loaders.
        model: the network; moved to ``dls.device`` when that is set.
        loss_func: a loss ``f(pred, *yb)``; chosen from the target type when ``None`` (see ``default_loss_func``).
        opt_func: builds the optimizer from parameter groups (``Adam``, ``SGD``... from ``lamina.optim``).
        lr: default learning rate.
        splitter: ``model -> list of parameter lists`` (the groups for freezing and discriminative lrs).
        cbs: extra callbacks.
        metrics: metric functions or ``Metric`` instances, computed on the validation set.
        wd: weight decay (the optimizer's default when ``None``).
        wd_bn_bias: also decay normalization weights and biases.
        train_bn: keep training normalization layers of frozen groups.
        moms: momentum (beta1) schedule ``(start, middle, end)`` for one-cycle training.
        path: the folder holding ``model_dir``.
        model_dir: where ``save`` writes, relative to ``path``.
        show_progress: show progress bars (``learn.no_bar()`` hides them for a block).
        logger: receives the per-epoch table lines; ``None`` is silent (``learn.no_logging()`` for a block).
        device: where the model and the batches go; ``None`` keeps ``dls.device`` (``DataLoaders`` picks the
            accelerator when there is one, see ``lamina.data.default_device``). The table's header names it.

    Examples:
        >>> from lamina.data.load import DataLoader, DataLoaders
        >>> x = torch.randn(256, 2); y = (x[:, 0] > 0).long()
        >>> dls = DataLoaders(DataLoader((x[:192], y[:192]), bs=32, shuffle=True),
        ...                   DataLoader((x[192:], y[192:]), bs=64))
        >>> learn = Learner(dls, nn.Linear(2, 2), lr=0.1)
        >>> with learn.no_logging(), learn.no_bar(): learn.fit(3)
        >>> learn.validate()[0] < 0.5
        True
    """

    recorder: Recorder  # every learner has one (added in __init__, reachable like any callback by its name)
    app: str | None = None  # set by application factories: how ``export`` describes and rebuilds the data
    model_spec: dict[str, Any] | None = None  # set by application factories: registered model name and arguments

    def __init__(
        self,
        dls: DataLoaders,
        model: nn.Module,
        loss_func: Callable[..., Tensor] | None = None,
        opt_func: Callable[..., BaseOptimizer] = Adam,
        lr: float | slice = 1e-3,
        splitter: Callable[[nn.Module], Sequence[Sequence[Tensor]]] | None = None,
        cbs: Sequence[Callback] | None = None,
        metrics: Sequence[Any] | None = None,
        wd: float | None = None,
        wd_bn_bias: bool = False,
        train_bn: bool = True,
        moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
        path: str | Path = ".",
        model_dir: str | Path = "models",
        show_progress: bool = True,
        logger: Callable[[str], None] | None = print,
        device: torch.device | str | None = None,
    ) -> None:
        self.dls, self.model = dls, model
        if device is not None:
            dls.to(device)
        if dls.device is not None:
            self.model.to(dls.device)
        self.loss_func = loss_func if loss_func is not None else self._infer_loss()
        self.opt_func, self.lr, self.wd, self.wd_bn_bias, self.train_bn = opt_func, lr, wd, wd_bn_bias, train_bn
        self.splitter = splitter or (lambda m: [trainable_params(m)])
        self.moms, self.path, self.model_dir = moms, Path(path), Path(model_dir)
        self.metrics: list[Metric] = [as_metric(m) for m in listify(metrics)]
        self.opt: BaseOptimizer | None = None
        self.logger: Callable[[str], None] = logger or _noop_log
        self.training, self.epoch, self.n_epoch, self.iter, self.n_iter = False, 0, 1, 0, 0
        self.start_epoch = 0  # the first epoch ``_fit`` runs: 0, unless a callback resuming a fit moves it
        self.train_iter, self.n_train_iter, self.pct_train = 0, 1, 0.0
        self.xb: tuple[Any, ...] = ()
        self.yb: tuple[Any, ...] = ()
        self.pred: Any = None
        self.loss: Tensor = torch.tensor(0.0)
        self.dl: DataLoader = dls.train
        self.cbs: list[Callback] = []
        self._handlers: dict[tuple[str, bool], list[Callable[[], None]]] = {}
        progress = self._default_progress() if show_progress else []
        self.add_cbs([TrainEvalCallback(), Recorder(), *progress, *listify(cbs)])

    # ----- callbacks -------------------------------------------------------------------------------------------
    @staticmethod
    def _default_progress() -> list[Callback]:

        return [ProgressCallback()]

    def _infer_loss(self) -> Callable[..., Tensor]:
        b = self.dls.train.one_batch()
        ys = b[self.dls.n_inp :] if isinstance(b, tuple) else ()
        if not ys:
            raise ValueError("cannot choose a loss: the batches carry no target. Pass loss_func=...")
        return default_loss_func(ys[0])

    def add_cbs(self, cbs: Sequence[Callback | type[Callback]]) -> Learner:
        """Add callbacks (instances, or classes to instantiate); each is reachable as ``learn.<cb.name>``."""
        for cb in cbs:
            cb = cb() if isinstance(cb, type) else cb
            cb.learn = self
            self.cbs.append(cb)
            setattr(self, cb.name, cb)
        self._rebuild_handlers()
        return self

    def remove_cbs(self, cbs: Sequence[Callback | type[Callback]]) -> Learner:
        """Remove callbacks (instances, or classes: every instance of them)."""
        for cb in cbs:
            gone = [c for c in self.cbs if (c is cb or (isinstance(cb, type) and isinstance(c, cb)))]
            for c in gone:
                self.cbs.remove(c)
                if getattr(self, c.name, None) is c:
                    delattr(self, c.name)
        self._rebuild_handlers()
        return self

    @contextlib.contextmanager
    def added_cbs(self, cbs: Sequence[Callback | type[Callback]] | None) -> Iterator[None]:
        """Add callbacks for the duration of a ``with`` block."""
        cbs = [cb() if isinstance(cb, type) else cb for cb in listify(cbs)]
        self.add_cbs(cbs)
        try:
            yield
        finally:
            self.remove_cbs(cbs)

    @contextlib.contextmanager
    def removed_cbs(self, cbs: Sequence[Callback | type[Callback]]) -> Iterator[None]:
        """Remove callbacks for the duration of a ``with`` block."""
        gone = [c for c in self.cbs if any(c is cb or (isinstance(cb, type) and isinstance(c, cb)) for cb in cbs)]
        self.remove_cbs(gone)
        try:
            yield
        finally:
            self.add_cbs(gone)

    def _rebuild_handlers(self) -> None:
        """Pre-compute, per event and phase, the bound methods to call: firing an event is one dict lookup."""
        self.cbs = sort_callbacks(self.cbs)
        self._handlers = {}
        for cb in self.cbs:
            for event in cb.events():
                for training in (True, False):
                    if event in _PHASE_FREE or (cb.run_train if training else cb.run_valid):
                        self._handlers.setdefault((event, training), []).append(getattr(cb, event))

    def __call__(self, event: str) -> None:
        for handler in self._handlers.get((event, self.training), ()):
            handler()

    def show_training_loop(self) -> str:
        """Which callbacks run at each event, in order (returned and printed)."""
        from lamina.learner.callback import EVENTS

        lines = []
        for event in EVENTS:
            names = [type(cb).__name__ for cb in self.cbs if event in cb.events()]
            lines.append(f"{event:<22} {', '.join(names) if names else '-'}")
        text = "\n".join(lines)
        print(text)
        return text

    @contextlib.contextmanager
    def no_logging(self) -> Iterator[None]:
        """Silence the per-epoch table inside a ``with`` block."""
        old, self.logger = self.logger, _noop_log
        try:
            yield
        finally:
            self.logger = old

    @contextlib.contextmanager
    def no_bar(self) -> Iterator[None]:
        """Hide progress bars inside a ``with`` block."""

        with self.removed_cbs([ProgressCallback]):
            yield

    # ----- the loop ---------------------------------------------------------------------------------------------
    def _with_events(self, f: Callable[[], None], name: str, cancel: type[Exception]) -> None:
        try:
            self(f"before_{name}")
            f()
        except cancel:
            self(f"after_cancel_{name}")
        self(f"after_{name}")

    def _fit(self) -> None:
        for epoch in range(self.start_epoch, self.n_epoch):
            self.epoch = epoch
            self._with_events(self._epoch, "epoch", CancelEpochException)

    def _epoch(self) -> None:
        self.dl, self.training = self.dls.train, True
        self._with_events(self._phase, "train", CancelTrainException)
        if len(self.dls) > 1:
            self.dl, self.training = self.dls.valid, False
            with torch.no_grad():
                self._with_events(self._phase, "validate", CancelValidException)

    def _phase(self) -> None:
        self.n_iter = len(self.dl)
        for i, batch in enumerate(self.dl, self.dl.start_batch):  # a resumed epoch starts mid-way
            self.iter, b = i, as_plain(batch)
            n = self.dls.n_inp
            self.xb, self.yb = (b[:n], b[n:]) if isinstance(b, tuple) else ((b,), ())
            self._with_events(self._batch, "batch", CancelBatchException)

    def _batch(self) -> None:
        self.pred = self.model(*self.xb)
        self("after_pred")
        if not self.yb:
            return
        self.loss = self.loss_func(self.pred, *self.yb)
        self("after_loss")
        if not self.training:
            return
        self._with_events(self._backward, "backward", CancelBackwardException)
        self._with_events(self._step, "step", CancelStepException)
        assert self.opt is not None
        self.opt.zero_grad()

    def _backward(self) -> None:
        self.loss.backward()

    def _step(self) -> None:
        assert self.opt is not None
        self.opt.step()

    # ----- fitting ---------------------------------------------------------------------------------------------
    def create_opt(self) -> BaseOptimizer:
        """Build the optimizer from the splitter's groups; norms and biases get no weight decay unless asked."""
        self.opt = self._new_opt()
        return self.opt

    def _new_opt(self) -> BaseOptimizer:
        groups = [list(g) for g in self.splitter(self.model)]
        no_decay = [] if self.wd_bn_bias else _norm_and_bias_params(self.model)
        kwargs: dict[str, Any] = {"no_decay": no_decay}
        if self.wd is not None:
            kwargs["wd"] = self.wd
        opt = self.opt_func(groups, **kwargs)
        opt.set_hyper("lr", self.lr)
        return opt

    def fit(
        self,
        n_epoch: int,
        lr: float | slice | None = None,
        wd: float | None = None,
        cbs: Sequence[Callback] | None = None,
        reset_opt: bool = False,
        resume: str | Path | None = None,
    ) -> None:
        """Train for ``n_epoch`` epochs at a constant learning rate (schedules come from callbacks).

        Args:
            n_epoch: number of epochs.
            lr: learning rate (a ``slice`` spreads it over parameter groups); ``self.lr`` when ``None``.
            wd: weight decay for this fit.
            cbs: callbacks added for this fit only.
            reset_opt: build a fresh optimizer (forgetting its state).
            resume: a checkpoint to continue from at its exact batch (written by a ``Checkpoint`` callback in a fit
                with the same arguments), or ``"auto"`` for the newest one in ``path/model_dir`` (none: start from
                scratch). See ``lamina.learner.checkpoint``.
        """
        if n_epoch < 0:
            raise ValueError(f"n_epoch must be >= 0, got {n_epoch}")
        file = resume_file(self, resume)
        with self.added_cbs([*listify(cbs), *([Resume(file)] if file is not None else [])]):
            if reset_opt or self.opt is None:
                self.create_opt()
            assert self.opt is not None
            self.opt.set_hyper("lr", self.lr if lr is None else lr)
            if wd is not None:
                self.opt.set_hyper("wd", wd)
            self.n_epoch, self.start_epoch = n_epoch, 0
            try:
                self._with_events(self._fit, "fit", CancelFitException)
            except BaseException as error:
                self._release_after_error(error)
                raise
            finally:
                self.training, self.dl = False, self.dls.train

    def _release_after_error(self, error: BaseException) -> None:
        """A fit died of an unexpected error: fire ``after_fit`` so callbacks release what they hold (hooks,
        autocast, open writers); failures there are attached to the original error, never raised instead of it."""
        for handler in self._handlers.get(("after_fit", self.training), ()):
            try:
                handler()
            except Exception as e:
                if hasattr(error, "add_note"):
                    error.add_note(f"while cleaning up, {handler.__qualname__} also failed: {e!r}")

    def freeze_to(self, n: int) -> None:
        """Freeze the parameter groups before ``n``; normalization layers keep training when ``train_bn``."""
        if self.opt is None:
            self.create_opt()
        assert self.opt is not None
        self.opt.freeze_to(n)
        if self.train_bn:
            for m in self.model.modules():
                if isinstance(m, _NORM_TYPES):
                    for p in m.parameters(recurse=False):
                        p.requires_grad_(True)
        self.opt.clear_state()

    def freeze(self) -> None:
        """Train only the last parameter group (the head)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every parameter group."""
        self.freeze_to(0)

    def fit_one_cycle(
        self,
        n_epoch: int,
        lr_max: float | slice | None = None,
        div: float = 25.0,
        div_final: float = 1e5,
        pct_start: float = 0.25,
        wd: float | None = None,
        moms: tuple[float, float, float] | None = None,
        cbs: Sequence[Callback] | None = None,
        reset_opt: bool = False,
        resume: str | Path | None = None,
    ) -> None:
        """One cycle: lr warms up from ``lr_max/div`` to ``lr_max`` (cosine) then anneals to ``lr_max/div_final``
        while momentum goes the other way (``moms``).

        Args:
            n_epoch: number of epochs.
            lr_max: peak learning rate (a ``slice`` spreads it over groups); ``self.lr`` when ``None``.
            div: initial lr is ``lr_max / div``.
            div_final: final lr is ``lr_max / div_final``.
            pct_start: fraction of training spent warming up.
            wd: weight decay.
            moms: momentum at start, middle and end.
            cbs: extra callbacks for this fit.
            reset_opt: build a fresh optimizer.
            resume: a checkpoint to continue from, or ``"auto"`` (see ``fit``).
        """

        lr = self._lr_per_group(self.lr if lr_max is None else lr_max, reset_opt)
        m = moms or self.moms
        scheds = {
            "lr": combined_cos(pct_start, lr / div, lr, lr / div_final),
            "mom": combined_cos(pct_start, m[0], m[1], m[2]),
        }
        self.fit(n_epoch, lr=lr, wd=wd, cbs=[ParamScheduler(scheds), *listify(cbs)], resume=resume)

    def fit_flat_cos(
        self,
        n_epoch: int,
        lr: float | slice | None = None,
        div_final: float = 1e5,
        pct_start: float = 0.75,
        wd: float | None = None,
        cbs: Sequence[Callback] | None = None,
        reset_opt: bool = False,
        resume: str | Path | None = None,
    ) -> None:
        """Flat learning rate for ``pct_start`` of training, then cosine annealing to ``lr / div_final``.

        Args:
            n_epoch: number of epochs.
            lr: the flat learning rate.
            div_final: final lr is ``lr / div_final``.
            pct_start: fraction of training at the flat rate.
            wd: weight decay.
            cbs: extra callbacks for this fit.
            reset_opt: build a fresh optimizer.
            resume: a checkpoint to continue from, or ``"auto"`` (see ``fit``).
        """

        v = self._lr_per_group(self.lr if lr is None else lr, reset_opt)
        sched = combine_scheds([pct_start, 1 - pct_start], [sched_no(v, v), sched_cos(v, v / div_final)])
        self.fit(n_epoch, lr=v, wd=wd, cbs=[ParamScheduler({"lr": sched}), *listify(cbs)], resume=resume)

    def fit_sgdr(
        self,
        n_cycles: int,
        cycle_len: int,
        lr_max: float | slice | None = None,
        cycle_mult: int = 2,
        wd: float | None = None,
        cbs: Sequence[Callback] | None = None,
        reset_opt: bool = False,
        resume: str | Path | None = None,
    ) -> None:
        """SGD with warm restarts: ``n_cycles`` cosine cycles, the first ``cycle_len`` epochs, each ``cycle_mult``
        times longer than the last.

        Args:
            n_cycles: number of cycles.
            cycle_len: epochs in the first cycle.
            lr_max: learning rate at the start of each cycle.
            cycle_mult: growth of each cycle's length.
            wd: weight decay.
            cbs: extra callbacks for this fit.
            reset_opt: build a fresh optimizer.
            resume: a checkpoint to continue from, or ``"auto"`` (see ``fit``).
        """

        v = self._lr_per_group(self.lr if lr_max is None else lr_max, reset_opt)
        lens = [cycle_len * cycle_mult**i for i in range(n_cycles)]
        total = sum(lens)
        sched = combine_scheds([n / total for n in lens], [sched_cos(v, 0.0) for _ in lens])
        self.fit(total, lr=v, wd=wd, cbs=[ParamScheduler({"lr": sched}), *listify(cbs)], resume=resume)

    def fine_tune(
        self,
        epochs: int,
        base_lr: float = 2e-3,
        freeze_epochs: int = 1,
        lr_mult: float = 100,
        pct_start: float = 0.3,
        div: float = 5.0,
        resume: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        """Transfer learning: train the head with the body frozen, then everything with discriminative rates.

        Args:
            epochs: epochs of the unfrozen phase.
            base_lr: the head's learning rate (halved for the unfrozen phase).
            freeze_epochs: epochs with only the head training.
            lr_mult: the first group's lr is ``lr_mult`` times smaller than the last's.
            pct_start: warm-up fraction of the unfrozen phase.
            div: initial lr divisor of the unfrozen phase.
            resume: a checkpoint to continue from, or ``"auto"`` (see ``fit``): the frozen phase is skipped when the
                checkpoint was taken in the unfrozen one.
            **kwargs: passed to ``fit_one_cycle``.
        """
        file = resume_file(self, resume)
        stage = checkpoint_stage(file) if file is not None else None
        cbs = listify(kwargs.pop("cbs", None))
        self.freeze()
        if freeze_epochs and stage != "fine_tune:unfrozen":
            self.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, cbs=[FitStage("fine_tune:frozen"), *cbs],
                               resume=file, **kwargs)  # fmt: skip
        base_lr /= 2
        self.unfreeze()
        self.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div,
                           cbs=[FitStage("fine_tune:unfrozen"), *cbs],
                           resume=file if stage == "fine_tune:unfrozen" else None, **kwargs)  # fmt: skip

    def _lr_per_group(self, lr: float | slice, reset_opt: bool = False) -> Any:
        """The learning rate as a numpy array with one value per parameter group (what schedules interpolate)."""
        import numpy as np

        if reset_opt or self.opt is None:
            self.create_opt()
        assert self.opt is not None
        self.opt.set_hyper("lr", lr)
        return np.array([h["lr"] for h in self.opt.hypers])

    # ----- inference -------------------------------------------------------------------------------------------
    # Inference never writes on the learner (see lamina.learner.inference): one learner can serve many threads.
    def _infer(self, dl: DataLoader, collectors: Sequence[Collector]) -> None:
        """One pass of the model over ``dl`` in a private loop, feeding ``collectors``; the learner is only read."""
        mixed = [cb for cb in self.cbs if isinstance(cb, MixedPrecision) and cb.enabled]
        dtype = mixed[0].dtype if mixed else None
        InferenceRun(self.model, self.loss_func, self.dls.n_inp, collectors, autocast=dtype).run(dl)

    def validate(self, dl: DataLoader | None = None) -> list[float]:
        """The validation loss and metrics on ``dl`` (the validation loader by default)."""
        scores = Scores(self.metrics)
        self._infer(dl or self.dls.valid, [scores])
        return scores.values()

    def get_preds(
        self,
        dl: DataLoader | None = None,
        with_input: bool = False,
        with_decoded: bool = False,
        with_loss: bool = False,
        act: Callable[[Tensor], Tensor] | None = None,
    ) -> tuple[Any, ...]:
        """Predictions (after the loss's activation) and targets over ``dl``, gathered on the CPU.

        Args:
            dl: the loader (validation by default).
            with_input: also return the inputs (kept only when asked).
            with_decoded: also return decoded predictions (the loss's ``decodes``: argmax or threshold).
            with_loss: also return the per-item loss.
            act: the activation; the loss's ``activation`` (or identity) when ``None``.

        Returns:
            ``(inputs?, preds, targets, decoded?, losses?)`` in that order; targets is ``None`` for unlabelled data.
        """
        gather = Gather(with_input=with_input, with_loss=with_loss)
        self._infer(dl or self.dls.valid, [gather])
        act = act or getattr(self.loss_func, "activation", None) or (lambda x: x)
        raw = gather.preds
        preds = act(raw)
        out: list[Any] = [gather.inputs] if with_input else []
        out += [preds, gather.targets]
        if with_decoded:
            decodes = getattr(self.loss_func, "decodes", None)
            out.append(decodes(raw) if decodes is not None else preds)  # decodes takes raw outputs
        if with_loss:
            out.append(gather.losses)
        return tuple(out)

    def predict(self, item: Any) -> tuple[Any, Tensor, Tensor]:
        """Predict one raw item (like the items the data was built from).

        Returns:
            ``(decoded, index, probs)``: the decoded prediction (e.g. the label), the decoded tensor (e.g. the class
            index) and the activated outputs.
        """
        dl = self.dls.test_dl([item])
        inp, preds, _, dec = self.get_preds(dl=dl, with_input=True, with_decoded=True)
        dec = retain_type(dec, self._target_example())
        full = dl.decode_batch((*inp, dec), max_n=1)[0]
        ds = self.dls.valid.dataset if len(self.dls) > 1 else self.dls.train.dataset
        if hasattr(ds, "decode") and isinstance(full, tuple):
            full = ds.decode(full)
        decoded = full[self.dls.n_inp] if isinstance(full, tuple) and len(full) > self.dls.n_inp else full
        return decoded, dec[0], preds[0]

    def _target_example(self) -> Any:
        """An (empty) target of the type the data produces, so decoded predictions regain that type (computed once,
        under a lock: the first predictions may come from several threads at once)."""
        with _TARGET_LOCK:
            if getattr(self, "_target_like", None) is None:
                b = self.dls.train.one_batch()
                ys = b[self.dls.n_inp :] if isinstance(b, tuple) else ()
                self._target_like = ys[0][:0] if ys and isinstance(ys[0], Tensor) else torch.empty(0)
        return self._target_like

    def tta(self, n: int = 4, beta: float = 0.25, dl: DataLoader | None = None) -> tuple[Tensor, Tensor]:
        """Test-time augmentation: ``beta`` x plain predictions + (1 - beta) x the mean of ``n`` augmented runs.

        Args:
            n: augmented passes (the training transforms run on the validation items).
            beta: weight of the plain predictions.
            dl: the loader (validation by default).
        """
        dl = dl or self.dls.valid
        plain, targets = self.get_preds(dl=dl)
        ds = dl.dataset
        if not hasattr(ds, "new"):
            raise TypeError("tta needs a dataset with `new(items, split_idx=...)`, e.g. Datasets")
        aug_dl = dl.new(dataset=ds.new(ds.items, with_labels=True, split_idx=0))
        aug = torch.stack([self.get_preds(dl=aug_dl)[0] for _ in range(n)]).mean(0)
        return beta * plain + (1 - beta) * aug, targets

    # ----- saving ----------------------------------------------------------------------------------------------
    def save(self, name: str, with_opt: bool = True) -> Path:
        """Write model (and optimizer) state to ``path/model_dir/name.pth`` atomically; returns the file."""
        state: dict[str, Any] = {"model": self.model.state_dict()}
        if with_opt and self.opt is not None:
            state["opt"] = self.opt.state_dict()
        return atomic_save(state, self.path / self.model_dir / f"{name}.pth")

    def load(self, name: str, with_opt: bool = True, strict: bool = True) -> Learner:
        """Load state written by ``save`` (with ``weights_only=True``: no code runs from the file).

        All or nothing: every key and shape of the model state, and the optimizer state (tried on a scratch
        optimizer), are checked before anything is copied; a checkpoint that does not fit leaves the learner as
        it was.

        Args:
            name: the file is ``path/model_dir/name.pth``.
            with_opt: also load the optimizer state, when the file has one.
            strict: the model's keys and the file's must be the same (shapes must always match).
        """
        file = self.path / self.model_dir / f"{name}.pth"
        if not file.is_file():
            raise FileNotFoundError(f"no saved model at {file}: call learn.save({name!r}) first")
        device = next(self.model.parameters(), torch.empty(0)).device
        state = torch.load(file, map_location=device, weights_only=True)
        if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
            raise ValueError(f"{file} is not a checkpoint written by learn.save (no 'model' state); nothing was loaded")
        _check_model_state(self.model, state["model"], strict, file)
        load_opt = with_opt and "opt" in state
        if load_opt:
            try:
                self._new_opt().load_state_dict(state["opt"])  # a scratch optimizer: the check copies nothing
            except Exception as e:
                raise ValueError(
                    f"{file}: the optimizer state does not fit this learner's optimizer ({e}); nothing was loaded. "
                    "Load with with_opt=False to take the model weights only"
                ) from e
        self.model.load_state_dict(state["model"], strict=strict)
        if load_opt:
            if self.opt is None:
                self.create_opt()
            assert self.opt is not None
            self.opt.load_state_dict(state["opt"])
        return self

    def export(self, fname: str | Path = "export.lamina") -> Path:
        """Write the model, loss and data description to one pickle-free file (``path/fname``) for
        ``lamina.learner.load_learner``; see ``lamina.learner.export``."""
        from lamina.learner.export import export_learner

        return export_learner(self, self.path / fname)

    def export_graph(self, path: str | Path, format: str = "pt2") -> Path:
        """Write the whole inference (preprocessing, model, decoding) as a graph that runs without Python:
        ``"pt2"`` (torch.export), ``"torchscript"`` or ``"onnx"``, with its description at ``<path>.json``; see
        ``lamina.learner.graph``. A relative ``path`` is taken from ``learn.path``."""
        from lamina.learner.graph import export_graph

        return export_graph(self, self.path / path, format)

    # ----- precision shortcuts ---------------------------------------------------------------------------------
    def to_fp16(self, **kwargs: Any) -> Learner:
        """Train with float16 autocast and loss scaling (``MixedPrecision``)."""

        return self.add_cbs([MixedPrecision(dtype=torch.float16, **kwargs)])

    def to_bf16(self, **kwargs: Any) -> Learner:
        """Train with bfloat16 autocast (works on CPU)."""

        return self.add_cbs([MixedPrecision(dtype=torch.bfloat16, **kwargs)])

    def to_fp32(self) -> Learner:
        """Remove mixed precision."""

        return self.remove_cbs([MixedPrecision])

    def lr_find(self, **kwargs: Any) -> Any:
        """Run the learning-rate finder (see ``lamina.learner.schedule.lr_find``); the model is restored after."""

        return lr_find(self, **kwargs)

    def to(self, device: torch.device | str) -> Learner:
        """Move the model and future batches to ``device``."""
        self.model.to(device)
        self.dls.to(device)
        return self

    def __repr__(self) -> str:
        return f"Learner({type(self.model).__name__}, loss={type(self.loss_func).__name__}, cbs={self.cbs})"


def _check_model_state(model: nn.Module, saved: dict[str, Any], strict: bool, file: Path) -> None:
    """Raise, naming every problem, unless ``saved`` fits ``model``: same keys (when ``strict``), same shapes."""
    own = model.state_dict()
    problems = [
        f"{k} has shape {tuple(v.shape)} in the file but {tuple(own[k].shape)} in the model"
        for k, v in saved.items()
        if k in own and isinstance(v, Tensor) and v.shape != own[k].shape
    ]
    if strict:
        missing, unexpected = sorted(own.keys() - saved.keys()), sorted(saved.keys() - own.keys())
        problems += [f"{k} is missing from the file" for k in missing[:5]]
        problems += [f"{k} is in the file but not in the model" for k in unexpected[:5]]
    if problems:
        raise ValueError(
            f"{file} does not fit this model: {'; '.join(problems)}. Nothing was loaded (the model and optimizer "
            "are unchanged); check the architecture, or pass strict=False to load only the matching keys"
        )


def _noop_log(_: str) -> None:
    return None
