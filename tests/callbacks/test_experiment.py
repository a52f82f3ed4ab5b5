"""A fit on the real iris measurements becomes an MLflow run (read back from a local store with MlflowClient) and an
offline Weights & Biases run (read back from the files it writes) holding the fit's settings, every batch loss, the
per-epoch losses and metrics exactly as the Recorder saw them, the loss plot and the exported model."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

from lamina.callbacks.experiment import ExperimentLogger, MLflowCallback, WandbCallback, fit_params
from lamina.learner import Learner, load_learner
from lamina.learner.callback import Callback
from lamina.learner.metrics import accuracy
from lamina.tabular import TabularDataLoaders, tabular_learner
from tests.conftest import assert_png


def iris_frame():
    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"].map(dict(enumerate(["setosa", "versicolor", "virginica"])))
    return frame


def iris_learner(tmp_path) -> Learner:
    frame = iris_frame()
    dls = TabularDataLoaders.from_df(frame, cat_names=[], cont_names=list(frame.columns[:4]), y_names="target",
                                     bs=32, seed=0, valid_pct=0.2)  # fmt: skip
    torch.manual_seed(0)
    learn = tabular_learner(dls, layers=[16], metrics=[accuracy], path=tmp_path)
    learn.logger, learn.show_progress = (lambda line: None), False
    return learn


class FailAtEpoch(Callback):
    order = 80

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_epoch(self) -> None:
        if self.learn.epoch == self.epoch:
            raise RuntimeError("the fit dies")


def test_fit_params_are_the_settings_of_the_fit_about_to_start(tmp_path):
    learn = iris_learner(tmp_path)
    learn.n_epoch = 3
    learn.create_opt()
    learn.opt.set_hyper("lr", 0.02)
    params = fit_params(learn)
    assert params["lr"] == 0.02 and params["bs"] == 32 and params["epochs"] == 3
    assert params["model"] == "tabular_model" or params["model"].startswith("tabular")
    assert params["parameters"] == sum(p.numel() for p in learn.model.parameters())
    assert params["optimizer"] == learn.opt_func.__name__ and params["loss_func"] == type(learn.loss_func).__name__


def test_the_contract_names_the_method_a_new_tracker_must_write():
    with pytest.raises(NotImplementedError, match="must implement _open"):
        ExperimentLogger()._open({})


# ----- MLflow ---------------------------------------------------------------------------------------------------
@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A local ``file:`` store in ``tmp_path`` (MLflow 3 keeps that backend behind its documented opt-in)."""
    pytest.importorskip("mlflow", reason="skipped: mlflow is not installed (pip install lamina[mlflow])")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def mlflow_run(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, f"expected one run, got {len(runs)}"
    return client, runs[0]


def history(client, run_id: str, key: str) -> tuple[list[int], list[float]]:
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    return [m.step for m in points], [m.value for m in points]


def test_an_mlflow_run_holds_params_every_batch_loss_epoch_metrics_the_plot_and_the_model(mlflow_store, tmp_path):
    learn = iris_learner(tmp_path)
    learn.fit_one_cycle(3, 1e-2, cbs=[MLflowCallback(mlflow_store, experiment="iris", params={"seed": 0})])
    client, run = mlflow_run(mlflow_store, "iris")
    recorder = learn.recorder
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["bs"] == "32" and params["epochs"] == "3" and params["seed"] == "0"
    assert float(params["lr"]) == pytest.approx(1e-2) and params["optimizer"] == learn.opt_func.__name__
    steps, losses = history(client, run.info.run_id, "train_loss")
    assert steps == list(range(len(recorder.losses))) and np.allclose(losses, recorder.losses, rtol=1e-6)
    for column, key in (("valid_loss", "valid_loss"), ("accuracy", "accuracy"), ("train_loss", "epoch_train_loss")):
        steps, values = history(client, run.info.run_id, key)
        col = recorder.names().index(column)
        assert steps == [0, 1, 2] and np.allclose(values, [row[col] for row in recorder.values], rtol=1e-6)
    _, lrs = history(client, run.info.run_id, "lr")
    assert np.allclose(lrs, [v[-1] for v in recorder.lrs]) and lrs[0] == pytest.approx(1e-2 / 25), "one cycle's lrs"
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["loss.png", "model.lamina"]
    folder = client.download_artifacts(run.info.run_id, "", str(tmp_path / "downloaded"))
    assert_png(tmp_path / "downloaded" / "loss.png")
    loaded = load_learner(f"{folder}/model.lamina")
    xs = iris_frame().iloc[::30, :4]
    expected = learn.get_preds(dl=learn.dls.test_dl(xs))[0]
    assert torch.allclose(loaded.get_preds(dl=loaded.dls.test_dl(xs))[0], expected)


def test_a_failed_fit_ends_its_mlflow_run_as_failed_with_its_losses_and_without_a_model(mlflow_store, tmp_path):
    learn = iris_learner(tmp_path)
    with pytest.raises(RuntimeError, match="the fit dies"):
        learn.fit(3, 1e-2, cbs=[MLflowCallback(mlflow_store, experiment="fail"), FailAtEpoch(1)])
    client, run = mlflow_run(mlflow_store, "fail")
    assert run.info.status == "FAILED"
    assert history(client, run.info.run_id, "valid_loss")[0] == [0, 1]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["loss.png"]


def test_the_lr_finder_makes_no_run_and_a_learner_that_cannot_export_warns(mlflow_store, tmp_path):
    from mlflow.tracking import MlflowClient

    learn = iris_learner(tmp_path)
    learn.add_cbs([MLflowCallback(mlflow_store, experiment="plain")])
    learn.lr_find(num_it=10)
    assert MlflowClient(tracking_uri=mlflow_store).get_experiment_by_name("plain") is None
    learn.app = None  # as a hand-made Learner: it cannot be rebuilt from a file
    with pytest.warns(UserWarning, match="MLflowCallback: the model is not logged"):
        learn.fit(1, 1e-2)
    client, run = mlflow_run(mlflow_store, "plain")
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["loss.png"]


# ----- Weights & Biases -----------------------------------------------------------------------------------------
def wandb_records(path) -> list:
    """The protobuf records of an offline run's ``run-<id>.wandb`` file (a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data, records, chunk, block = path.read_bytes(), [], b"", 32768
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos = 7  # ":W&B", a 2-byte magic number and a version byte
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a record header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def finished_run_records(path, timeout: float = 60.0) -> list:
    """The records of a finished run: wandb's service process may still be writing the file when ``finish`` returns."""
    deadline = time.monotonic() + timeout
    while True:
        records = wandb_records(path)
        if any(r.HasField("exit") for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def test_an_offline_wandb_run_writes_config_every_batch_loss_epoch_metrics_the_plot_and_the_model(tmp_path):
    wandb = pytest.importorskip("wandb", reason="skipped: wandb is not installed (pip install lamina[wandb])")
    learn = iris_learner(tmp_path)
    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_meta=True)
    callback = WandbCallback(project="iris", mode="offline", dir=str(tmp_path), settings=settings)
    learn.fit_one_cycle(2, 1e-2, cbs=[callback])
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    records = finished_run_records(next(run_dir.glob("run-*.wandb")))
    configs = [r.run.config for r in records if r.HasField("run")] + [r.config for r in records if r.HasField("config")]
    config = {i.key: json.loads(i.value_json) for c in configs for i in c.update}
    assert config["bs"] == 32 and config["epochs"] == 2 and config["lr"] == pytest.approx(1e-2)
    rows = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for r in records if r.HasField("history")]  # fmt: skip
    recorder = learn.recorder
    batches = [row for row in rows if "train_loss" in row]
    assert [row["batch"] for row in batches] == list(range(len(recorder.losses)))
    assert np.allclose([row["train_loss"] for row in batches], recorder.losses, rtol=1e-6)
    epochs = [row for row in rows if "valid_loss" in row]
    assert [row["epoch"] for row in epochs] == [0, 1]
    assert np.allclose([row["accuracy"] for row in epochs], [v[3] for v in recorder.values], rtol=1e-6)
    (image,) = [row["loss_plot/path"] for row in rows if "loss_plot/path" in row]
    assert_png(run_dir / "files" / image)
    saved = {f.path for r in records if r.HasField("files") for f in r.files.files}
    assert {"loss.png", "model.lamina", image} <= saved
    artifacts = [r.artifact for r in records if r.HasField("artifact")]
    assert [(a.type, a.name) for a in artifacts] == [("model", f"model-{run_dir.name.rsplit('-', 1)[-1]}")]
    assert_png(run_dir / "files" / "loss.png")
    loaded = load_learner(run_dir / "files" / "model.lamina")
    xs = iris_frame().iloc[::30, :4]
    expected = learn.get_preds(dl=learn.dls.test_dl(xs))[0]
    assert torch.allclose(loaded.get_preds(dl=loaded.dls.test_dl(xs))[0], expected)
