"""Export a trained learner to one file without pickle, and load it back without the training code.

The file is a safetensors file: the model's weights (``model.*``) and any tensors of the application's state
(``app.*``), with a JSON description in the file's own metadata: the format and version, the application, the
model as a registered name plus JSON-safe arguments, the loss (class and configuration) and the application's
data description (vocabularies, statistics, transforms by registered name and state).

Loading reads that JSON, builds the model from the registry, loads the weights and lets the application rebuild
its inference data pipeline. Nothing in the file is executed: the only code that runs is lamina's own, and the
application module is chosen from a fixed list.
"""

from __future__ import annotations

import importlib
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from lamina.core.serial import SerialError, from_jsonable, to_jsonable
from lamina.core.utils import atomic_write
from lamina.nn.registry import build_model

if TYPE_CHECKING:
    from lamina.learner.learner import Learner

__all__ = [
    "EXPORT_FORMAT",
    "ExportError",
    "export_learner",
    "load_learner",
    "model_n_out",
    "read_export",
    "register_app",
    "warn_if_not_exportable",
]

EXPORT_FORMAT, EXPORT_VERSION = "lamina-export", 1
Describe = Callable[["Learner", dict[str, Tensor]], dict[str, Any]]
Rebuild = Callable[[dict[str, Any], dict[str, Tensor], torch.nn.Module, Any], "Learner"]
_APPS: dict[str, tuple[Describe, Rebuild]] = {}
_APP_MODULES = {
    "tabular": "lamina.tabular",
    "collab": "lamina.collab",
    "vision": "lamina.vision",
    "text": "lamina.text",
}


class ExportError(ValueError):
    """A file that is not a (valid) lamina export, or a learner that cannot be exported.

    Examples:
        >>> issubclass(ExportError, ValueError)
        True
    """


def register_app(name: str, describe: Describe, rebuild: Rebuild) -> None:
    """Register how an application describes its learner's data as JSON (+ tensors) and rebuilds it.

    Args:
        name: the application name stored in the file (``"tabular"``, ``"collab"``...).
        describe: ``(learn, tensors) -> dict`` of JSON-safe values; tensors go into ``tensors``.
        rebuild: ``(spec, tensors, model, loss_func) -> Learner`` ready for inference.

    Examples:
        >>> register_app("doc_app", lambda learn, t: {}, lambda spec, t, model, loss: None)
        >>> "doc_app" in _APPS
        True
    """
    _APPS[name] = (describe, rebuild)


def _loss_spec(loss_func: Any) -> dict[str, Any] | None:
    from lamina.learner import losses

    name = type(loss_func).__name__
    if name in losses.__all__ and hasattr(loss_func, "get_config"):
        return {"type": name, "config": loss_func.get_config()}
    return None


def _build_loss(spec: dict[str, Any] | None) -> Any:
    if spec is None:
        return None
    from lamina.learner import losses

    if spec.get("type") not in losses.__all__:
        raise ExportError(f"the export names an unknown loss {spec.get('type')!r}: the file is foreign or tampered")
    return getattr(losses, spec["type"])(**spec.get("config", {}))


def export_learner(learn: Learner, path: str | Path) -> Path:
    """Write ``learn`` (model weights, loss, and its application's data description) to one file, atomically.

    The learner must come from an application factory (``tabular_learner``, ``collab_learner``...), which records
    ``learn.app`` and ``learn.model_spec`` (registered model name and arguments).

    Examples:
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> learn = Learner(DataLoaders(DataLoader((torch.randn(8, 2), torch.randn(8, 1)))), torch.nn.Linear(2, 1))
        >>> export_learner(learn, "unused.lamina")
        Traceback (most recent call last):
        ...
        lamina.learner.export.ExportError: this learner cannot be exported: build it with an application factory...
    """
    tensors: dict[str, Tensor] = {}
    spec = _describe(learn, tensors)
    weights = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in learn.model.state_dict().items()}
    weights.update({k if k.startswith("app.") else f"app.{k}": v.contiguous() for k, v in tensors.items()})
    return _atomic_save_file(weights, {"lamina": json.dumps(spec)}, Path(path))


def _describe(learn: Learner, tensors: dict[str, Tensor]) -> dict[str, Any]:
    """The export's JSON description of ``learn`` (the application's tensors go into ``tensors``)."""
    app, model_spec = getattr(learn, "app", None), getattr(learn, "model_spec", None)
    if app not in _APPS or model_spec is None:
        raise ExportError(
            "this learner cannot be exported: build it with an application factory (e.g. tabular_learner), which "
            "records the application and the registered model, so it can be rebuilt without your training code"
        )
    try:
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "app": app,
            "model": to_jsonable(model_spec, tensors, "app.model_spec"),
            "loss": _loss_spec(learn.loss_func),
            "data": _APPS[app][0](learn, tensors),
        }
    except SerialError as e:
        raise ExportError(f"this learner cannot be exported: {e}") from None


def warn_if_not_exportable(learn: Learner, factory: str) -> None:
    """Warn, when a learner is built, if ``learn.export()`` would fail (rather than after the training is paid for).

    The check describes the learner as an export would, without its weights. Factories call it last.

    Args:
        learn: the learner just built.
        factory: the factory's name, for the message.

    Examples:
        >>> import warnings
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> learn = Learner(DataLoaders(DataLoader((torch.randn(8, 2), torch.randn(8, 1)))), torch.nn.Linear(2, 1))
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_if_not_exportable(learn, "my_factory")
        >>> "will not export" in str(caught[0].message)
        True
    """
    try:
        _describe(learn, {})
    except (TypeError, ValueError) as e:  # ExportError, SerialError, an application's own check
        warnings.warn(f"{factory}: this learner will not export (learn.export() would fail): {e}", UserWarning,
                      stacklevel=3)  # fmt: skip


def _atomic_save_file(tensors: dict[str, Tensor], metadata: dict[str, str], path: Path) -> Path:
    from safetensors.torch import save_file

    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_export(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The JSON description and the tensors of an export; a foreign, truncated or tampered file is refused.

    Examples:
        >>> read_export("no/such/file.lamina")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no exported learner at no/such/file.lamina: call learn.export('no/such/file.lamina') first
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported learner at {path}: call learn.export({str(path)!r}) first")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise ExportError(f"{path} is not a lamina export (not a readable safetensors file): {e}") from None
    try:
        spec = json.loads(meta["lamina"])
    except (KeyError, json.JSONDecodeError, RecursionError) as e:
        raise ExportError(f"{path} is a safetensors file but not a lamina export (no valid description): {e}") from None
    if not isinstance(spec, dict) or spec.get("format") != EXPORT_FORMAT:
        raise ExportError(
            f"{path} is not a lamina export (format {spec.get('format') if isinstance(spec, dict) else spec!r})"
        )
    if spec.get("version") != EXPORT_VERSION:
        raise ExportError(f"{path} has export version {spec.get('version')!r}; this lamina reads {EXPORT_VERSION}")
    return spec, tensors


def load_learner(path: str | Path, device: torch.device | str | None = None) -> Learner:
    """Rebuild an inference learner from an export, without the training code, data or labelling functions.

    The described model is first built on the ``meta`` device (no memory) and its shapes checked against the
    file's weights, so a description that asks for more than the file holds is refused before anything is
    allocated. A malformed description is an :class:`ExportError` naming the file and the field.

    Args:
        path: the exported file.
        device: where to put the model (CPU when ``None``).

    Examples:
        >>> import tempfile, pathlib
        >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.lamina"
        >>> _ = bad.write_bytes(b"not an export")
        >>> load_learner(bad)
        Traceback (most recent call last):
        ...
        lamina.learner.export.ExportError: ...is not a lamina export...
    """
    spec, tensors = read_export(path)
    app = spec.get("app")
    if not isinstance(app, str) or (app not in _APPS and app not in _APP_MODULES):
        raise ExportError(f"{path} names an unknown application {app!r}: the file is foreign or tampered")
    if app not in _APPS:
        importlib.import_module(_APP_MODULES[app])  # lamina's own module registers the application
    name, kwargs = _model_spec(spec, tensors, path)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    _check_shapes(_build(name, kwargs, path, torch.device("meta")), state, path)
    model = _build(name, kwargs, path)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ExportError(f"{path}: the weights do not fit the described model ({e})") from None
    model.eval()
    if device is not None:
        model.to(device)
    app_tensors = {k: v for k, v in tensors.items() if k.startswith("app.")}
    learn = _rebuild(app, spec, app_tensors, model, _field(path, "loss", _build_loss, spec.get("loss")), path)
    learn.app, learn.model_spec = app, {"name": name, "kwargs": kwargs}
    return learn


_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError, ImportError, OverflowError)


def _field(path: str | Path, field: str, f: Callable[..., Any], *args: Any) -> Any:
    """``f(*args)``, with any failure an :class:`ExportError` naming the file and the field it read."""
    try:
        return f(*args)
    except ExportError as e:
        raise ExportError(f"{path}: field {field!r}: {e}") from None
    except _MALFORMED as e:
        detail = f"the key {e.args[0]!r} is missing" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        raise ExportError(f"{path}: field {field!r} is malformed ({detail}): the file is foreign or tampered") from None


def _model_spec(spec: dict[str, Any], tensors: dict[str, Tensor], path: str | Path) -> tuple[str, dict[str, Any]]:
    """The registered model name and its arguments; anything else in their place is an error."""
    model_spec = _field(path, "model", from_jsonable, spec.get("model"), tensors)
    name = model_spec.get("name") if isinstance(model_spec, dict) else None
    kwargs = model_spec.get("kwargs", {}) if isinstance(model_spec, dict) else None
    if not isinstance(name, str) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ExportError(
            f"{path}: field 'model' must be {{'name': <registered model>, 'kwargs': {{...}}}}, got {model_spec!r:.200}"
        )
    return name, kwargs


def _build(name: str, kwargs: dict[str, Any], path: str | Path, device: torch.device | None = None) -> nn.Module:
    """The registered model ``name`` built with ``kwargs`` (on ``device``: ``meta`` allocates nothing)."""

    def build() -> nn.Module:
        if device is None:
            return build_model(name, **kwargs)
        with device:
            return build_model(name, **kwargs)

    try:
        return cast(nn.Module, _field(path, f"model ({name})", build))
    except RuntimeError as e:  # a shape the layers reject
        raise ExportError(f"{path}: field 'model' ({name}) does not build: {e}") from None


def _check_shapes(meta_model: nn.Module, state: dict[str, Tensor], path: str | Path) -> None:
    """Compare the described model's tensors (built on ``meta``) with the file's weights, names and shapes."""
    wanted = {k: tuple(v.shape) for k, v in meta_model.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items()}
    if wanted == stored:
        return
    missing, extra = sorted(set(wanted) - set(stored)), sorted(set(stored) - set(wanted))
    shapes = [
        f"{k}: described {wanted[k]}, stored {stored[k]}" for k in wanted if k in stored and wanted[k] != stored[k]
    ]
    size = sum(math.prod(s) for s in wanted.values())
    raise ExportError(
        f"{path}: the described model ({size:,} values) does not fit the file's weights "
        f"({sum(math.prod(s) for s in stored.values()):,} values); missing {missing[:3]}, unexpected {extra[:3]}, "
        f"shapes {shapes[:3]}: the file is foreign or tampered, nothing was allocated"
    )


def _rebuild(
    app: str, spec: dict[str, Any], tensors: dict[str, Tensor], model: nn.Module, loss: Any, path: str | Path
) -> Learner:
    data = spec.get("data")
    if not isinstance(data, dict):
        raise ExportError(f"{path}: field 'data' must be a mapping, got {type(data).__name__}")
    return cast("Learner", _field(path, "data", _APPS[app][1], data, tensors, model, loss))


def model_n_out(model: nn.Module) -> int | None:
    """The outputs of ``model``'s last linear or convolution layer (``None`` when it has none).

    Applications use it to check a vocab against the model at load.

    Examples:
        >>> model_n_out(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))
        3
    """
    for m in reversed(list(model.modules())):
        if isinstance(m, nn.Linear):
            return int(m.out_features)
        if isinstance(m, nn.modules.conv._ConvNd):
            return int(m.out_channels)
    return None
