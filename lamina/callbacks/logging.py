"""Where the training history goes besides the printed table: a CSV file (``CSVLogger``), TensorBoard
(``TensorBoardCallback``, needs ``pip install lamina[tensorboard]``), and a live loss figure (``ShowGraphCallback``).

All of them read the ``Recorder`` (``learn.recorder``) and run after it.
"""

from __future__ import annotations

import csv
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from lamina.core.utils import atomic_write
from lamina.learner.callback import Callback
from lamina.learner.recorder import Recorder

__all__ = ["CSVLogger", "ShowGraphCallback", "TensorBoardCallback", "summary_writer_class"]


def _cell(value: float, column: str) -> str:
    return str(int(value)) if column == "epoch" else repr(float(value))


class CSVLogger(Callback):
    """Writes the recorder's header, then one row per epoch, to ``learn.path / fname``; every row is on disk as soon
    as its epoch ends (the file is opened, appended to and closed each epoch).

    Args:
        fname: the file name, relative to ``learn.path``.
        append: add to an existing file with the same columns instead of starting a new one.

    Examples:
        >>> CSVLogger("log.csv").fname, CSVLogger().name
        ('log.csv', 'csv_logger')
    """

    order = 60
    run_after = (Recorder,)

    def __init__(self, fname: str | Path = "history.csv", append: bool = False) -> None:
        self.fname, self.append = fname, append

    @property
    def path(self) -> Path:
        """The file written to."""
        return Path(self.learn.path) / self.fname

    def before_fit(self) -> None:
        names = self.learn.recorder.names()
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.append and path.is_file() and path.stat().st_size > 0:
            with path.open(newline="") as f:
                header = next(csv.reader(f), [])
            if header != names:
                raise ValueError(
                    f"cannot append to {path}: its columns {header} differ from this run's {names}; "
                    "use another fname or append=False"
                )
            return
        with path.open("w", newline="") as f:
            csv.writer(f).writerow(names)

    def state_dict(self) -> dict[str, Any]:
        """The file's text so far: a resumed fit puts it back, dropping rows written after the checkpoint."""
        return {"csv": self.path.read_text() if self.path.is_file() else ""}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Write back the file as it was when ``state_dict`` was taken."""
        with atomic_write(self.path) as tmp:
            tmp.write_text(state["csv"])

    def after_epoch(self) -> None:
        recorder = self.learn.recorder
        if not recorder.values:
            return
        row = [_cell(v, name) for v, name in zip(recorder.values[-1], recorder.names())]
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow(row)

    def read_log(self) -> Any:
        """The file as a pandas ``DataFrame``."""
        import pandas as pd

        return pd.read_csv(self.path)


def summary_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, or an ``ImportError`` saying how to install TensorBoard.

    Examples:
        >>> import importlib.util
        >>> installed = importlib.util.find_spec("tensorboard") is not None
        >>> summary_writer_class().__name__ if installed else "SummaryWriter"
        'SummaryWriter'
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError(
            "TensorBoardCallback needs the tensorboard package: pip install lamina[tensorboard] "
            f"(or pip install tensorboard); the import failed with: {e}"
        ) from e
    return SummaryWriter


def _numeric_hypers(hypers: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in hypers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardCallback(Callback):
    """Logs to TensorBoard: the training loss and the optimizer's hyper-parameters per batch, the losses and metrics
    per epoch, the run's settings and final results (the HParams tab), and optionally the model's graph.

    Tags: ``train/loss`` and ``hypers/<name>`` (``hypers/<name>_group<i>`` with several parameter groups) per
    batch; ``epoch/<column>`` (``epoch/train_loss``, ``epoch/valid_loss``, ``epoch/<metric>``) per epoch; steps count
    on across fits.

    Args:
        log_dir: the folder of the event files, relative to ``learn.path``; ``runs/<date-time>`` when ``None``.
        trace_model: also log the model's graph (traced on the first training batch, in eval mode).

    Examples:
        >>> import importlib.util
        >>> if importlib.util.find_spec("tensorboard") is not None:
        ...     assert TensorBoardCallback(log_dir="runs/a").name == "tensor_board"
    """

    order = 60
    run_after = (Recorder,)
    run_valid = False

    def __init__(self, log_dir: str | Path | None = None, trace_model: bool = False) -> None:
        self._writer_class = summary_writer_class()
        self.log_dir, self.trace_model = log_dir, trace_model
        self.writer: Any = None
        self.step, self.epochs_done, self._traced = 0, 0, not trace_model

    def before_fit(self) -> None:
        sub = self.log_dir if self.log_dir is not None else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(self.learn.path) / sub
        if run_dir != getattr(self, "run_dir", None):
            self._traced = not self.trace_model  # one graph per run folder
        self.run_dir, self._lr_max = run_dir, 0.0
        self.writer = self._writer_class(log_dir=str(run_dir))

    def before_batch(self) -> None:
        if self._traced:
            return
        self._traced = True
        model, was_training = self.learn.model, self.learn.model.training
        model.eval()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # add_graph traces with torch.jit.trace
                self.writer.add_graph(model, tuple(self.learn.xb))
        finally:
            model.train(was_training)

    def after_batch(self) -> None:
        learn = self.learn
        if learn.yb:
            self.writer.add_scalar("train/loss", float(learn.loss.detach()), self.step)
        groups = learn.opt.hypers if learn.opt is not None else []
        for i, hypers in enumerate(groups):
            suffix = f"_group{i}" if len(groups) > 1 else ""
            for name, value in _numeric_hypers(hypers).items():
                self.writer.add_scalar(f"hypers/{name}{suffix}", value, self.step)
        if groups:
            self._lr_max = max(self._lr_max, float(groups[-1].get("lr", 0.0)))
        self.step += 1

    def after_epoch(self) -> None:
        recorder = self.learn.recorder
        if not recorder.values:
            return
        for name, value in list(zip(recorder.names(), recorder.values[-1]))[1:-1]:
            if not math.isnan(value):
                self.writer.add_scalar(f"epoch/{name}", value, self.epochs_done)
        self.epochs_done += 1

    def state_dict(self) -> dict[str, Any]:
        """The step counters, the highest lr so far and the run folder (relative to ``learn.path``): a resumed fit
        logs on in the same folder, from the same steps."""
        run_dir = Path(self.run_dir).relative_to(self.learn.path)
        return {"step": self.step, "epochs_done": self.epochs_done, "lr_max": self._lr_max, "run_dir": str(run_dir)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned, reopening the writer in the saved run folder."""
        self.step, self.epochs_done, self._lr_max = state["step"], state["epochs_done"], float(state["lr_max"])
        run_dir = Path(self.learn.path) / state["run_dir"]
        if run_dir != self.run_dir:
            self.writer.close()
            self.run_dir, self.writer = run_dir, self._writer_class(log_dir=str(run_dir))

    def _hparams(self) -> dict[str, Any]:
        learn = self.learn
        last = _numeric_hypers(learn.opt.hypers[-1]) if learn.opt is not None and learn.opt.hypers else {}
        return {
            "lr_max": self._lr_max,
            **{k: v for k, v in last.items() if k != "lr"},
            "n_epoch": learn.n_epoch,
            "bs": learn.dls.train.bs,
            "model": type(learn.model).__name__,
            "loss_func": getattr(learn.loss_func, "__name__", type(learn.loss_func).__name__),
            "opt_func": getattr(learn.opt_func, "__name__", type(learn.opt_func).__name__),
        }

    def after_fit(self) -> None:
        if self.writer is None:
            return
        recorder = self.learn.recorder
        if recorder.values:
            pairs = list(zip(recorder.names(), recorder.values[-1]))[1:-1]
            results = {f"hparam/{n}": v for n, v in pairs if not math.isnan(v)}
            self.writer.add_hparams(self._hparams(), results, run_name=".")
        self.writer.close()
        self.writer = None


def _notebook_display() -> Any:
    """IPython's ``display`` when running in a Jupyter kernel, else ``None`` (IPython is never imported here)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return None
    from IPython.display import display

    return display


class ShowGraphCallback(Callback):
    """Redraws the training loss per batch and the validation loss per epoch after every epoch.

    The figure (``self.fig``) is a bare matplotlib ``Figure``: no window opens and nothing blocks outside a
    notebook; in Jupyter it is shown and updated in place.

    Examples:
        >>> ShowGraphCallback().fig is None
        True
    """

    order = 65
    run_after = (Recorder,)

    def __init__(self) -> None:
        self.fig: Any = None
        self._handle: Any = None

    def before_fit(self) -> None:
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(6, 4))
        self.ax = self.fig.subplots()
        self._handle = None
        self._total = self.learn.n_epoch * len(self.learn.dls.train)

    def after_epoch(self) -> None:
        recorder = self.learn.recorder
        ax = self.ax
        ax.clear()
        ax.plot(range(len(recorder.losses)), recorder.losses, label="train")
        valid = [(i, row[2]) for i, row in zip(recorder.iters, recorder.values) if not math.isnan(row[2])]
        if valid:
            ax.plot(*zip(*valid), marker="o", label="valid")
        ax.set_xlim(0, max(self._total, len(recorder.losses), 1))
        ax.set_xlabel("batches")
        ax.set_ylabel("loss")
        ax.legend()
        self._show()

    def _show(self) -> None:
        display = _notebook_display()
        if display is None:
            return
        if self._handle is None:
            self._handle = display(self.fig, display_id=True)
        else:
            self._handle.update(self.fig)
