"""Networks from timm and torchvision as vision learner architectures, when those libraries are installed.

Importing this module registers two model families in :mod:`lamina.nn.registry`: ``"timm/<name>"`` builds
``timm.create_model(name)`` and ``"torchvision/<name>"`` builds ``torchvision.models.get_model(name)``, both randomly
initialized; neither library is imported until such a name is built, and nothing is ever downloaded (pretrained
weights come from a local file: ``vision_learner(..., weights=path)``).

:func:`arch_info` reads what a vision learner needs from a network's own metadata: where the body ends (timm's
``feature_info``, ``global_pool`` and ``pretrained_cfg["classifier"]``; torchvision gives none, so the cut is found
by probing) and the normalization of its pretrained weights (timm's ``pretrained_cfg`` mean/std; the ``transforms()``
of torchvision's default weights).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from lamina.nn.registry import register_model_family

__all__ = [
    "LIBRARIES",
    "ArchInfo",
    "arch_info",
    "import_library",
    "library_arch_name",
    "timm_model",
    "torchvision_model",
]

LIBRARIES = ("timm", "torchvision")
"""The model families backed by another library: an architecture name ``"<library>/<model>"``."""

_MODULES = {"timm": "timm", "torchvision": "torchvision.models"}


def import_library(library: str) -> Any:
    """Import ``timm`` or ``torchvision.models``, or raise an ``ImportError`` that says how to install it.

    Any failure of the import counts (a torchvision built for another torch fails with a ``RuntimeError``).

    Examples:
        >>> import_library("keras")
        Traceback (most recent call last):
        ...
        ValueError: unknown model library 'keras': expected one of ['timm', 'torchvision']
    """
    if library not in _MODULES:
        raise ValueError(f"unknown model library {library!r}: expected one of {list(LIBRARIES)}")
    try:
        return importlib.import_module(_MODULES[library])
    except Exception as e:
        raise ImportError(
            f"'{library}/...' models need the {library} package, built for the torch installed here: pip install "
            f"{library} (the import failed with {type(e).__name__}: {e})"
        ) from e


def _no_pretrained(library: str, name: str, kwargs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``kwargs`` without the (false) download switches ``keys``; a true one is an error."""
    given = [k for k in keys if kwargs.get(k)]
    if given:
        raise ValueError(
            f"'{library}/{name}' is built without downloading, so {given[0]}= is refused: pass the weights file as "
            "vision_learner(..., weights=<local file>) instead"
        )
    return {k: v for k, v in kwargs.items() if k not in keys}


@register_model_family("timm")
def timm_model(name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)``: a randomly initialized timm network.

    Args:
        name: a timm model name (``"resnet18"``, ``"efficientnet_b0"``, ``"convnext_atto.d2_in1k"``...).
        **kwargs: passed to ``timm.create_model`` (``drop_rate``, ``in_chans``...); ``pretrained`` is refused.

    Examples:
        >>> timm_model("resnet18", pretrained=True)
        Traceback (most recent call last):
        ...
        ValueError: 'timm/resnet18' is built without downloading, so pretrained= is refused...
    """
    kwargs = _no_pretrained("timm", name, kwargs, ("pretrained",))
    timm = import_library("timm")
    if not timm.is_model(name):
        near = timm.list_models(f"*{name.split('.')[0][:6]}*")[:5]
        raise ValueError(f"timm has no model {name!r}; similar names: {near or 'none'} (see timm.list_models())")
    return timm.create_model(name, pretrained=False, **kwargs)


@register_model_family("torchvision")
def torchvision_model(name: str, **kwargs: Any) -> nn.Module:
    """``torchvision.models.get_model(name, weights=None, **kwargs)``: a randomly initialized torchvision network.

    Args:
        name: a torchvision classification model name (``"resnet18"``, ``"mobilenet_v2"``...).
        **kwargs: passed to ``get_model`` (``dropout``...); ``weights`` is refused.

    Examples:
        >>> torchvision_model("resnet18", weights="DEFAULT")
        Traceback (most recent call last):
        ...
        ValueError: 'torchvision/resnet18' is built without downloading, so weights= is refused...
    """
    kwargs = _no_pretrained("torchvision", name, kwargs, ("weights", "pretrained"))
    models = import_library("torchvision")
    names = models.list_models(module=models)  # the classification models (not detection, segmentation...)
    if name not in names:
        near = [n for n in names if n.startswith(name[:5])][:5]
        raise ValueError(f"torchvision has no classification model {name!r}; similar names: {near or 'none'}")
    return models.get_model(name, weights=None, **kwargs)


def _library_of(obj: Any) -> str | None:
    """``"timm"`` or ``"torchvision"`` when ``obj`` (a module, its class, or a function) comes from that library."""
    module = getattr(obj if callable(obj) and not isinstance(obj, nn.Module) else type(obj), "__module__", "") or ""
    return next((lib for lib in LIBRARIES if module == _MODULES[lib] or module.startswith(_MODULES[lib] + ".")), None)


def library_arch_name(arch: Callable[..., nn.Module] | nn.Module) -> str | None:
    """The registry name (``"timm/resnet18"``) of a timm or torchvision constructor or timm network, else ``None``.

    A timm network names itself (``pretrained_cfg["architecture"]``); a torchvision network does not (its class,
    ``ResNet``, serves several depths), so only its constructor (``torchvision.models.resnet18``) has a name.

    Examples:
        >>> library_arch_name(nn.Linear(2, 1)) is None
        True
    """
    library = _library_of(arch)
    if library is None:
        return None
    if isinstance(arch, nn.Module):
        cfg = getattr(arch, "pretrained_cfg", None) or {}
        return f"timm/{cfg['architecture']}" if library == "timm" and cfg.get("architecture") else None
    name = getattr(arch, "__name__", "")
    return f"{library}/{name}" if name and not name[0].isupper() else None  # a function, not a model class


@dataclass(frozen=True)
class ArchInfo:
    """What a network's metadata says about it: where its body ends and its pretrained weights' normalization.

    Args:
        cut: the index of the first child that is not body (pooling or classifier); ``None``: find it by probing.
        mean: the per-channel mean of its pretrained weights' inputs; ``None`` when unknown.
        std: the per-channel standard deviation; ``None`` when unknown.

    Examples:
        >>> ArchInfo(8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).stats
        ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    """

    cut: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def stats(self) -> tuple[list[float], list[float]] | None:
        """``(mean, std)`` as lists, or ``None`` when the metadata has none."""
        return None if self.mean is None or self.std is None else (list(self.mean), list(self.std))


def _timm_cut(model: nn.Module, cfg: dict[str, Any]) -> int | None:
    """The first top-level child after the last feature stage that pools (``global_pool``) or holds the classifier."""
    names = [n for n, _ in model.named_children()]
    features = getattr(model, "feature_info", None)
    last = features[-1]["module"].split(".")[0] if isinstance(features, list) and features else None
    if last not in names:
        return None
    ends = [names.index("global_pool")] if "global_pool" in names else []
    classifier = str(cfg.get("classifier") or "").split(".")[0]
    ends += [names.index(classifier)] if classifier in names else []
    ends = [i for i in ends if i > names.index(last)]
    return min(ends) if ends else None


def _torchvision_stats(name: str | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if name is None or not name.startswith("torchvision/"):
        return None
    models = import_library("torchvision")
    try:
        weights = models.get_model_weights(name.split("/", 1)[1]).DEFAULT
    except (ValueError, KeyError, AttributeError):  # a model without published weights
        return None
    tfm = weights.transforms()
    return tuple(map(float, tfm.mean)), tuple(map(float, tfm.std))


def arch_info(model: nn.Module, name: str | None = None) -> ArchInfo:
    """The cut and normalization statistics a timm or torchvision network's metadata gives; empty for others.

    Args:
        model: the full network (before cutting).
        name: its registry name (``"torchvision/resnet18"``), which finds torchvision's weights metadata.

    Examples:
        >>> arch_info(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)))
        ArchInfo(cut=None, mean=None, std=None)
    """
    library = _library_of(model)
    if library == "timm":
        cfg = dict(getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {})
        mean, std = cfg.get("mean"), cfg.get("std")
        if mean is None or std is None:
            return ArchInfo(_timm_cut(model, cfg))
        return ArchInfo(_timm_cut(model, cfg), tuple(map(float, mean)), tuple(map(float, std)))
    if library == "torchvision":
        found = _torchvision_stats(name)
        return ArchInfo(None, *found) if found is not None else ArchInfo()
    return ArchInfo()
