"""Experiment trackers: each fit becomes a run of MLflow (``MLflowCallback``, ``pip install lamina[mlflow]``) or
Weights & Biases (``WandbCallback``, ``pip install lamina[wandb]``), with its settings, losses, metrics, loss plot and
exported model.

Both follow one contract, :class:`ExperimentLogger`: a run opens at ``before_fit`` with the fit's settings
(:func:`fit_params`), gets the training loss of every batch (``train_loss``, step = batch) and the learning rates
when they change (``lr``, ``lr_group<i>`` with several parameter groups), then per epoch the recorder's columns
(``epoch_train_loss``, ``valid_loss``, each metric; step = epoch), and at ``after_fit`` the loss plot
(``loss.png``, :meth:`~lamina.learner.recorder.Recorder.plot_loss`) and the exported model (``model.lamina``,
``learn.export``) as artifacts. The tracking libraries are imported when a callback is built, never by
``import lamina``.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from lamina.learner.callback import Callback
from lamina.learner.export import ExportError
from lamina.learner.recorder import Recorder
from lamina.learner.schedule import LRFinder

__all__ = ["ExperimentLogger", "MLflowCallback", "WandbCallback", "fit_params", "import_tracker"]


def import_tracker(module: str, extra: str) -> Any:
    """Import a tracking library, or raise an ``ImportError`` that says which extra installs it.

    Args:
        module: the module to import (``"mlflow"``, ``"wandb"``).
        extra: lamina's optional extra that installs it.

    Examples:
        >>> import_tracker("no_such_tracker", "nothing")
        Traceback (most recent call last):
        ...
        ImportError: this callback needs no_such_tracker: pip install lamina[nothing] ...
    """
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(
            f"this callback needs {module}: pip install lamina[{extra}] (or pip install {module}); the import failed "
            f"with: {e}"
        ) from e


def _name(obj: Any) -> str:
    return str(getattr(obj, "__name__", type(obj).__name__))


def fit_params(learn: Any) -> dict[str, Any]:
    """The settings of the fit about to start: lr (of the last parameter group) and wd, batch size, epochs, optimizer,
    loss, model (its registered name when it has one), trainable parameters, and ``lr_group<i>`` per group.

    Examples:
        >>> import torch
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> dls = DataLoaders(DataLoader((torch.randn(8, 2), torch.randn(8, 1)), bs=4))
        >>> learn = Learner(dls, torch.nn.Linear(2, 1), lr=0.1)
        >>> _ = learn.create_opt()
        >>> p = fit_params(learn); p["lr"], p["bs"], p["model"], p["parameters"]
        (0.1, 4, 'Linear', 3)
    """
    groups = learn.opt.hypers if learn.opt is not None else []
    spec = getattr(learn, "model_spec", None) or {}
    arch = (spec.get("kwargs") or {}).get("arch")
    model = f"{spec['name']}({arch})" if arch else spec.get("name", type(learn.model).__name__)
    params: dict[str, Any] = {
        "lr": float(groups[-1]["lr"]) if groups and "lr" in groups[-1] else learn.lr,
        "wd": float(groups[-1]["wd"]) if groups and "wd" in groups[-1] else learn.wd,
        "bs": learn.dls.train.bs,
        "epochs": getattr(learn, "n_epoch", None),
        "optimizer": _name(learn.opt_func),
        "loss_func": _name(learn.loss_func),
        "model": model,
        "parameters": sum(p.numel() for p in learn.model.parameters() if p.requires_grad),
    }
    if len(groups) > 1:
        params.update({f"lr_group{i}": float(h.get("lr", 0.0)) for i, h in enumerate(groups)})
    return params


class ExperimentLogger(Callback):
    """The shared loop of experiment trackers: one run per fit; subclasses implement the four ``_`` methods.

    ``_open(params)`` starts a run with the fit's settings, ``_log(metrics, step, axis)`` records numbers at a step
    of ``axis`` (``"batch"`` or ``"epoch"``), ``_upload(path)`` stores a file with the run, and ``_close(failed)``
    ends it. A fit run by the LR finder is not logged.

    Args:
        log_model: export the model (``learn.export``) at the end and store it; a learner that cannot export warns.
        log_plot: store the loss plot at the end.
        params: more settings to record with each run (JSON-safe values).

    Examples:
        >>> ExperimentLogger().log_model, ExperimentLogger(params={"seed": 0}).params
        (True, {'seed': 0})
    """

    order = 70
    run_after = (Recorder,)
    run_valid = False

    def __init__(self, log_model: bool = True, log_plot: bool = True, params: dict[str, Any] | None = None) -> None:
        self.log_model, self.log_plot, self.params = log_model, log_plot, dict(params or {})
        self._active = False
        self.step = 0
        self._lrs: list[float] = []

    # ----- the contract --------------------------------------------------------------------------------------------
    def _open(self, params: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _open(params)")

    def _log(self, metrics: dict[str, float], step: int, axis: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _log(metrics, step, axis)")

    def _upload(self, path: Path) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _upload(path)")

    def _close(self, failed: bool) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _close(failed)")

    # ----- events --------------------------------------------------------------------------------------------------
    def before_fit(self) -> None:
        self._active = False  # a run that failed to open is not closed
        if any(isinstance(cb, LRFinder) for cb in self.learn.cbs):
            return
        self.step, self._lrs = 0, []
        self._open({**fit_params(self.learn), **self.params})
        self._active = True

    def after_batch(self) -> None:
        learn = self.learn
        if not self._active or not learn.yb:
            return
        metrics = {"train_loss": float(learn.loss.detach())}
        lrs = [float(h.get("lr", 0.0)) for h in learn.opt.hypers] if learn.opt is not None else []
        if lrs != self._lrs:
            metrics.update({"lr": lrs[-1]} if len(lrs) == 1 else {f"lr_group{i}": lr for i, lr in enumerate(lrs)})
            self._lrs = lrs
        self._log(metrics, self.step, "batch")
        self.step += 1

    def after_epoch(self) -> None:
        recorder = self.learn.recorder
        if not self._active or not recorder.values:
            return
        row = dict(zip(recorder.names(), recorder.values[-1]))
        names = {"train_loss": "epoch_train_loss"}
        metrics = {names.get(k, k): v for k, v in row.items() if k not in ("epoch", "time") and not math.isnan(v)}
        self._log(metrics, int(row["epoch"]), "epoch")

    def after_fit(self) -> None:
        if not self._active:
            return
        self._active = False
        failed = sys.exc_info()[0] is not None  # after_fit also runs when the fit dies of an error
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for path in self._artifacts(Path(tmp), failed):
                    self._upload(path)
        finally:
            self._close(failed)

    def _artifacts(self, folder: Path, failed: bool) -> list[Path]:
        """The files to store: the loss plot and, unless the fit failed, the exported model."""
        paths = []
        if self.log_plot and self.learn.recorder.losses:
            import matplotlib.pyplot as plt

            fig = self.learn.recorder.plot_loss(skip_start=0)
            fig.savefig(folder / "loss.png", dpi=100)
            plt.close(fig)
            paths.append(folder / "loss.png")
        if self.log_model and not failed:
            try:
                paths.append(self.learn.export(folder / "model.lamina"))
            except ExportError as e:
                warnings.warn(f"{type(self).__name__}: the model is not logged: {e}", UserWarning, stacklevel=2)
        return paths


def _flat_value(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


class MLflowCallback(ExperimentLogger):
    """Logs each fit as an MLflow run: params, per batch and per epoch metrics, ``loss.png`` and ``model.lamina``.

    Metrics are sent in batches (one request per epoch and at the end), so a remote server is not called per batch.

    Args:
        tracking_uri: where runs go: a server URL, ``"sqlite:///mlflow.db"``, a ``file:`` folder; MLflow's
            default (``MLFLOW_TRACKING_URI`` or ``./mlruns``) when ``None``.
        experiment: the experiment's name (created when missing).
        run_name: the run's name; MLflow picks one when ``None``.
        tags: tags set on each run.
        **kwargs: ``log_model``, ``log_plot``, ``params`` (see :class:`ExperimentLogger`).

    Examples:
        >>> import importlib.util
        >>> if importlib.util.find_spec("mlflow") is not None:
        ...     assert MLflowCallback(experiment="digits").experiment == "digits"
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "lamina",
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        import_tracker("mlflow", "mlflow")
        self.tracking_uri, self.experiment, self.run_name, self.tags = tracking_uri, experiment, run_name, tags
        self.run_id = ""  # the last run's id
        self._pending: list[Any] = []

    def _open(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(self.experiment)
        run = self.client.create_run(experiment_id, run_name=self.run_name, tags=dict(self.tags or {}))
        self.run_id = run.info.run_id
        self.client.log_batch(self.run_id, params=[Param(k, str(_flat_value(v))) for k, v in params.items()])

    def _log(self, metrics: dict[str, float], step: int, axis: str) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if axis == "epoch":
            self._flush()

    def _flush(self) -> None:
        for i in range(0, len(self._pending), 1000):  # MLflow takes at most 1000 metrics per request
            self.client.log_batch(self.run_id, metrics=self._pending[i : i + 1000])
        self._pending = []

    def _upload(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def _close(self, failed: bool) -> None:
        try:
            self._flush()
        finally:
            self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


class WandbCallback(ExperimentLogger):
    """Logs each fit as a Weights & Biases run: config, per batch and per epoch metrics, the loss plot (an image and
    a file) and the exported model (a ``model`` artifact).

    Per-batch values are plotted against ``batch`` and per-epoch ones against ``epoch`` (``define_metric``).

    Args:
        project: the W&B project.
        run_name: the run's name; W&B picks one when ``None``.
        **kwargs: ``log_model``, ``log_plot``, ``params`` (see :class:`ExperimentLogger`), and any other argument
            of ``wandb.init`` (``mode="offline"``, ``dir``, ``entity``, ``group``, ``tags``, ``settings``...).

    Examples:
        >>> import importlib.util
        >>> if importlib.util.find_spec("wandb") is not None:
        ...     assert WandbCallback(project="digits", mode="offline").init_kwargs["mode"] == "offline"
    """

    def __init__(self, project: str = "lamina", run_name: str | None = None, **kwargs: Any) -> None:
        own = {k: kwargs.pop(k) for k in ("log_model", "log_plot", "params") if k in kwargs}
        super().__init__(**own)
        self._wandb = import_tracker("wandb", "wandb")
        self.project, self.run_name, self.init_kwargs = project, run_name, kwargs
        self.run: Any = None

    def _open(self, params: dict[str, Any]) -> None:
        kwargs = {"reinit": "create_new", **self.init_kwargs}
        config = {k: _flat_value(v) for k, v in params.items()}
        self.run = self._wandb.init(project=self.project, name=self.run_name, config=config, **kwargs)
        for axis in ("batch", "epoch"):
            self.run.define_metric(axis)
        for name in ("train_loss", "lr", "lr_group*"):
            self.run.define_metric(name, step_metric="batch")
        for name in ("epoch_train_loss", "valid_loss", *(m.name for m in self.learn.metrics)):
            self.run.define_metric(name, step_metric="epoch")

    def _log(self, metrics: dict[str, float], step: int, axis: str) -> None:
        self.run.log({axis: step, **metrics})

    def _upload(self, path: Path) -> None:
        kept = Path(self.run.dir) / path.name  # the run's own files: kept with an offline run until it is synced
        shutil.copyfile(path, kept)
        self.run.save(str(kept), base_path=self.run.dir, policy="now")
        if path.suffix == ".png":
            self.run.log({"loss_plot": self._wandb.Image(str(kept))})
            return
        artifact = self._wandb.Artifact(f"model-{self.run.id}", type="model")
        artifact.add_file(str(kept), name=path.name, policy="immutable", skip_cache=True)
        self.run.log_artifact(artifact)

    def _close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)
        self.run = None
