"""The training history of a real MNIST run reaches a CSV file pandas reads, real TensorBoard event files and a
loss figure, exactly as the Recorder saw it."""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lamina.callbacks.logging import CSVLogger, ShowGraphCallback, TensorBoardCallback, summary_writer_class
from lamina.data import DataLoader, DataLoaders
from lamina.learner.callback import Callback
from lamina.learner.learner import Learner
from lamina.learner.losses import CrossEntropyLossFlat
from lamina.learner.metrics import accuracy
from tests.conftest import assert_png


def mnist_learner(mnist: dict[str, np.ndarray], tmp_path, n_train: int = 320, bs: int = 64) -> Learner:
    """A small MLP on evenly spaced real digits, with accuracy, writing under ``tmp_path``."""
    ti = np.linspace(0, len(mnist["x_train"]) - 1, n_train).astype(int)
    vi = np.linspace(0, len(mnist["x_valid"]) - 1, 128).astype(int)
    x, y = torch.from_numpy(mnist["x_train"][ti]).float() / 255, torch.from_numpy(mnist["y_train"][ti])
    xv, yv = torch.from_numpy(mnist["x_valid"][vi]).float() / 255, torch.from_numpy(mnist["y_valid"][vi])
    dls = DataLoaders(DataLoader((x, y), bs=bs, shuffle=True, seed=0), DataLoader((xv, yv), bs=bs))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=[accuracy], path=tmp_path)


def quiet_fit(learn: Learner, n_epoch: int, cbs: list[Callback], lr: float = 1e-2) -> None:
    with learn.no_bar(), learn.no_logging():
        learn.fit(n_epoch, lr=lr, cbs=cbs)


# ----- CSVLogger ------------------------------------------------------------------------------------------------
class ReadCSVAfterEachEpoch(Callback):
    """Reads the CSV file with pandas at the end of each epoch, after the logger wrote its row."""

    order = 90

    def __init__(self, logger: CSVLogger) -> None:
        self.logger, self.rows_seen = logger, []

    def after_epoch(self) -> None:
        self.rows_seen.append(len(pd.read_csv(self.logger.path)))


def test_csv_logger_writes_the_recorders_header_and_rows_readable_by_pandas(mnist, tmp_path):
    learn = mnist_learner(mnist, tmp_path)
    logger = CSVLogger("logs/history.csv")
    reader = ReadCSVAfterEachEpoch(logger)
    quiet_fit(learn, 3, [logger, reader])
    df = pd.read_csv(tmp_path / "logs" / "history.csv")
    recorder = learn.recorder  # type: ignore[attr-defined]
    assert list(df.columns) == recorder.names() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    np.testing.assert_allclose(df.to_numpy(dtype=float), np.array(recorder.values), rtol=1e-12)
    assert df["epoch"].tolist() == [0, 1, 2] and df["epoch"].dtype.kind == "i"
    assert reader.rows_seen == [1, 2, 3], "each epoch's row is on disk when the epoch ends"
    assert df["valid_loss"].iloc[-1] < df["valid_loss"].iloc[0]
    pd.testing.assert_frame_equal(logger.read_log(), df)


def test_csv_logger_appends_without_a_second_header_or_starts_over(mnist, tmp_path):
    learn = mnist_learner(mnist, tmp_path)
    quiet_fit(learn, 2, [CSVLogger()])
    quiet_fit(learn, 1, [CSVLogger(append=True)])
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert len(lines) == 4 and lines.count(lines[0]) == 1
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [0, 1, 0]
    quiet_fit(learn, 1, [CSVLogger()])
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1, "append=False starts a new file"


def test_csv_logger_refuses_to_append_different_columns(mnist, tmp_path):
    (tmp_path / "history.csv").write_text("epoch,train_loss,valid_loss,time\n0,1.0,1.0,0.1\n")
    learn = mnist_learner(mnist, tmp_path)
    with pytest.raises(ValueError, match=r"cannot append.*differ.*append=False"):
        quiet_fit(learn, 1, [CSVLogger(append=True)])


# ----- TensorBoardCallback --------------------------------------------------------------------------------------
def read_events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return events


def test_tensorboard_logs_batch_losses_epoch_values_and_hyper_parameters(mnist, tmp_path):
    pytest.importorskip("tensorboard")
    learn = mnist_learner(mnist, tmp_path)
    quiet_fit(learn, 2, [TensorBoardCallback(log_dir="tb")])
    events = read_events(tmp_path / "tb")
    recorder = learn.recorder  # type: ignore[attr-defined]
    train = events.Scalars("train/loss")
    assert [e.step for e in train] == list(range(2 * len(learn.dls.train)))
    np.testing.assert_allclose([e.value for e in train], recorder.losses, rtol=1e-6)
    for column, name in ((1, "epoch/train_loss"), (2, "epoch/valid_loss"), (3, "epoch/accuracy")):
        logged = events.Scalars(name)
        assert [e.step for e in logged] == [0, 1]
        np.testing.assert_allclose([e.value for e in logged], [row[column] for row in recorder.values], rtol=1e-6)
    lrs = events.Scalars("hypers/lr")
    assert len(lrs) == len(train) and lrs[0].value == pytest.approx(1e-2)
    assert "hypers/mom" in events.Tags()["scalars"]
    assert events.Scalars("hparam/valid_loss")[0].value == pytest.approx(recorder.values[-1][2], rel=1e-6)
    hparams = events.PluginTagToContent("hparams")
    session = next(v for k, v in hparams.items() if "session_start" in k)
    assert b"lr_max" in session and b"n_epoch" in session and b"CrossEntropyLossFlat" in session


class TrainingModes(Callback):
    """Whether the model was in training mode when each training batch ran through it."""

    order = 90
    run_valid = False

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def after_pred(self) -> None:
        self.seen.append(self.learn.model.training)


def test_tensorboard_can_trace_the_model_graph_and_keeps_counting_steps_across_fits(mnist, tmp_path):
    pytest.importorskip("tensorboard")
    learn = mnist_learner(mnist, tmp_path)
    tb, modes = TensorBoardCallback(log_dir="tb", trace_model=True), TrainingModes()
    quiet_fit(learn, 1, [tb, modes])
    quiet_fit(learn, 1, [tb, modes])
    events = read_events(tmp_path / "tb")
    assert events.Tags()["graph"], "the graph was written"
    n = len(learn.dls.train)
    assert [e.step for e in events.Scalars("train/loss")] == list(range(2 * n))
    assert [e.step for e in events.Scalars("epoch/valid_loss")] == [0, 1]
    assert modes.seen == [True] * 2 * n, "tracing (in eval mode) left the model in training mode"


def test_tensorboard_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install lamina\[tensorboard\]"):
        summary_writer_class()
    with pytest.raises(ImportError, match=r"pip install lamina\[tensorboard\]"):
        TensorBoardCallback()


# ----- ShowGraphCallback ----------------------------------------------------------------------------------------
def test_show_graph_redraws_losses_each_epoch_without_opening_windows(mnist, tmp_path):
    learn = mnist_learner(mnist, tmp_path)
    graph = ShowGraphCallback()
    open_figures = plt.get_fignums()
    quiet_fit(learn, 2, [graph])
    assert plt.get_fignums() == open_figures, "no pyplot figure (window) was opened"
    recorder = learn.recorder  # type: ignore[attr-defined]
    train_line, valid_line = graph.fig.axes[0].get_lines()
    np.testing.assert_allclose(train_line.get_ydata(), recorder.losses)
    np.testing.assert_allclose(valid_line.get_ydata(), [row[2] for row in recorder.values])
    assert list(valid_line.get_xdata()) == recorder.iters == [5, 10]
    graph.fig.savefig(tmp_path / "losses.png")
    assert_png(tmp_path / "losses.png")
