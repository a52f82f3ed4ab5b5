"""A registry of model builders by name, so a model can be described as data (name + JSON-safe arguments)."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "build_model",
    "model_builder",
    "model_families",
    "model_names",
    "register_model",
    "register_model_family",
    "registered_name",
]

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_FAMILIES: dict[str, Callable[..., nn.Module]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str | None = None) -> Callable[[F], F]:
    """Register a model builder (a class or function returning an ``nn.Module``) under ``name``.

    Args:
        name: the registry name; the builder's ``__name__`` when ``None``.

    Examples:
        >>> @register_model("doc_tiny_mlp")
        ... def tiny_mlp(n_in: int, n_out: int) -> nn.Module:
        ...     return nn.Linear(n_in, n_out)
        >>> build_model("doc_tiny_mlp", n_in=3, n_out=2)
        Linear(in_features=3, out_features=2, bias=True)
    """

    def deco(builder: F) -> F:
        key = name or builder.__name__
        if key in _MODELS and _MODELS[key] is not builder:
            raise ValueError(f"a model named {key!r} is already registered ({_MODELS[key]!r}): pick another name")
        _MODELS[key] = builder
        return builder

    return deco


def register_model_family(prefix: str) -> Callable[[F], F]:
    """Register a builder ``(name, **kwargs) -> nn.Module`` for every model name ``"<prefix>/<name>"``.

    A family is another library's catalogue (``"timm/resnet50"``, ``"torchvision/resnet18"``): its builder gets the
    part after the slash, so the names need not be listed in advance.

    Args:
        prefix: the part before the slash; no slash in it.

    Examples:
        >>> @register_model_family("doc_family")
        ... def doc_family(name: str, **kwargs: Any) -> nn.Module:
        ...     return {"linear": nn.Linear, "bilinear": nn.Bilinear}[name](**kwargs)
        >>> build_model("doc_family/linear", in_features=2, out_features=1)
        Linear(in_features=2, out_features=1, bias=True)
    """
    if not prefix or "/" in prefix:
        raise ValueError(f"a model family prefix is a non-empty name without '/', got {prefix!r}")

    def deco(builder: F) -> F:
        if prefix in _FAMILIES and _FAMILIES[prefix] is not builder:
            raise ValueError(f"a model family {prefix!r} is already registered ({_FAMILIES[prefix]!r}): pick another")
        _FAMILIES[prefix] = builder
        return builder

    return deco


def model_families() -> list[str]:
    """The registered family prefixes, sorted (a name ``"<prefix>/<model>"`` is built by its family).

    Examples:
        >>> isinstance(model_families(), list)
        True
    """
    return sorted(_FAMILIES)


def model_names() -> list[str]:
    """The registered model names, sorted.

    Examples:
        >>> isinstance(model_names(), list)
        True
    """
    return sorted(_MODELS)


def registered_name(builder: Any) -> str | None:
    """The name ``builder`` (a model class or function) is registered under; ``None`` when it is not registered.

    Examples:
        >>> registered_name(register_model("doc_bilinear")(nn.Bilinear)), registered_name(nn.Conv3d)
        ('doc_bilinear', None)
    """
    return next((key for key, b in _MODELS.items() if b is builder), None)


def model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered under ``name`` (or its family's, for ``"<prefix>/<model>"``); an unknown name is an
    error that suggests the nearest names.

    Examples:
        >>> model_builder("no_such_model")
        Traceback (most recent call last):
        ...
        ValueError: unknown model 'no_such_model'...
    """
    prefix, slash, rest = name.partition("/")
    if name not in _MODELS and slash and prefix in _FAMILIES:
        if not rest:
            raise ValueError(f"model name {name!r} names the {prefix!r} family but no model: write '{prefix}/<model>'")
        return functools.partial(_FAMILIES[prefix], rest)
    if name not in _MODELS:
        near = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
        families = f"; families: {', '.join(f'{f}/<model>' for f in model_families())}" if _FAMILIES else ""
        raise ValueError(f"unknown model {name!r}{hint} Registered: {', '.join(model_names()) or 'none'}{families}")
    return _MODELS[name]


def build_model(name: str, /, **kwargs: Any) -> nn.Module:
    """Build the model registered under ``name`` with keyword arguments (a model argument may itself be ``name``).

    Examples:
        >>> register_model("doc_linear")(nn.Linear)
        <class 'torch.nn.modules.linear.Linear'>
        >>> build_model("doc_linear", in_features=2, out_features=1).out_features
        1
    """
    return model_builder(name)(**kwargs)
