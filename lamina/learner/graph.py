"""Exported graphs: a learner's whole inference (preprocessing, model, decoding) as a graph that runs without Python.

``export_graph(learn, path, format)`` asks the learner's application for an :class:`InferenceGraph`: a plain
``nn.Module`` from the tensors a user has at inference time (``uint8`` images, category codes and raw numbers, user
and item indices) to probabilities and class indices (or values), with every learned statistic inside it as a
buffer. It is then written as one of

* ``"pt2"``: ``torch.export`` (load with ``torch.export.load(path).module()``, or from C++ with AOTInductor);
* ``"torchscript"``: ``torch.jit.script`` of the graph around the traced model (``torch.jit.load`` in Python, or
  ``torch::jit::load`` from C++ with libtorch, see ``examples/cpp``);
* ``"onnx"``: ``torch.onnx.export`` (ONNX Runtime, or any ONNX runtime).

Beside the graph, ``<path>.json`` describes it (one format for every application and graph format): its inputs
(name, dtype, shape with named dynamic sizes, meaning), its outputs, and the labels of class indices. Nothing in
either file needs lamina to run.

An application registers its builder with :func:`register_graph`; the learner floor knows no application.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from lamina.core.utils import atomic_write

if TYPE_CHECKING:
    from lamina.learner.learner import Learner

__all__ = [
    "GRAPH_FORMATS",
    "GraphError",
    "InferenceGraph",
    "export_graph",
    "graph_description",
    "register_graph",
    "sym_max",
    "sym_min",
]

GRAPH_FORMATS = ("pt2", "torchscript", "onnx")
GRAPH_FILE_FORMAT, GRAPH_FILE_VERSION = "lamina-graph", 1
_BUILDERS: dict[str, Callable[[Any], InferenceGraph]] = {}


class GraphError(ValueError):
    """A learner (or one of its data steps) that cannot be written as a graph; the message says which and why.

    Examples:
        >>> issubclass(GraphError, ValueError)
        True
    """


@dataclass
class InferenceGraph:
    """What an application gives :func:`export_graph`: the module and how to describe and trace it.

    Args:
        module: inputs to outputs, tensor code only (learned state as buffers).
        example_inputs: inputs to trace with (a batch of at least 2, so that the batch size stays dynamic).
        inputs: per input, ``{"name", "dtype", "shape", "description"}``; a string in ``shape`` names a dynamic size.
        outputs: per output, the same keys.
        info: application facts for the JSON file (``app``, ``kind``, ``labels``...).
        model_attr: the attribute of ``module`` holding the learner's model, traced on its own for TorchScript
            (models need not be scriptable; the code around them is written to be).

    Examples:
        >>> g = InferenceGraph(torch.nn.Identity(), (torch.zeros(2, 3),),
        ...                    [{"name": "x", "dtype": "float32", "shape": ["N", 3], "description": "features"}],
        ...                    [{"name": "y", "dtype": "float32", "shape": ["N", 3], "description": "the same"}])
        >>> g.dynamic_shapes() == ({0: torch.export.Dim.DYNAMIC},)
        True
    """

    module: nn.Module
    example_inputs: tuple[Tensor, ...]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)
    model_attr: str = "model"

    def dynamic_shapes(self) -> tuple[dict[int, Any], ...]:
        """``torch.export`` dynamic dimensions: every size named in the inputs' shapes is dynamic, within what the
        model allows (``Dim.DYNAMIC`` lets the exporter find the range, e.g. a least image size)."""
        return tuple(
            {k: torch.export.Dim.DYNAMIC for k, size in enumerate(spec["shape"]) if isinstance(size, str)}
            for spec in self.inputs
        )


def register_graph(app: str, builder: Callable[[Any], InferenceGraph]) -> None:
    """Register how learners of application ``app`` become an :class:`InferenceGraph`.

    Args:
        app: the application name (``learn.app``: ``"vision"``, ``"tabular"``, ``"collab"``).
        builder: ``learn -> InferenceGraph``; raises :class:`GraphError` for what it cannot express.

    Examples:
        >>> register_graph("doc_app", lambda learn: None)
        >>> "doc_app" in _BUILDERS
        True
    """
    _BUILDERS[app] = builder


def export_graph(learn: Learner, path: str | Path, format: str = "pt2") -> Path:
    """Write ``learn``'s whole inference as a graph file at ``path`` and its description at ``<path>.json``.

    Args:
        learn: a learner from an application factory (or ``load_learner``).
        path: the graph file (conventionally ``.pt2``, ``.pt`` or ``.onnx``).
        format: ``"pt2"``, ``"torchscript"`` or ``"onnx"``.

    Returns:
        ``path``.

    Examples:
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> learn = Learner(DataLoaders(DataLoader((torch.randn(8, 2), torch.randn(8, 1)))), torch.nn.Linear(2, 1))
        >>> export_graph(learn, "unused.pt2")
        Traceback (most recent call last):
        ...
        lamina.learner.graph.GraphError: this learner has no application...
    """
    if format not in GRAPH_FORMATS:
        raise GraphError(f"format must be one of {GRAPH_FORMATS}, got {format!r}")
    app = getattr(learn, "app", None)
    if app not in _BUILDERS:
        raise GraphError(
            f"this learner has no application that can write graphs ({app!r}): build it with vision_learner, "
            "tabular_learner or collab_learner (or load_learner), or register a builder with register_graph"
        )
    graph = _BUILDERS[app](learn)
    # a copy, so the learner's model is left as it is: in eval mode, on the CPU, with no gradients (the graph's
    # outputs then carry none, and programs need no torch.no_grad())
    module = copy.deepcopy(graph.module).eval().cpu().requires_grad_(False)
    path = Path(path)
    with torch.no_grad():
        writer = {"pt2": _write_pt2, "torchscript": _write_torchscript, "onnx": _write_onnx}[format]
        writer(graph, module, path)
    description = graph_description(graph, format)
    with atomic_write(Path(f"{path}.json")) as tmp:
        tmp.write_text(json.dumps(description, indent=2, default=_json_default))
    return path


def graph_description(graph: InferenceGraph, format: str) -> dict[str, Any]:
    """The JSON-safe description written beside a graph file.

    Args:
        graph: the graph.
        format: the graph file's format.

    Examples:
        >>> g = InferenceGraph(torch.nn.Identity(), (torch.zeros(2, 3),),
        ...                    [{"name": "x", "dtype": "float32", "shape": ["N", 3], "description": "features"}],
        ...                    [{"name": "y", "dtype": "float32", "shape": ["N", 3], "description": "the same"}])
        >>> d = graph_description(g, "onnx")
        >>> d["format"], d["graph_format"], d["inputs"][0]["shape"]
        ('lamina-graph', 'onnx', ['N', 3])
    """
    return {
        "format": GRAPH_FILE_FORMAT,
        "version": GRAPH_FILE_VERSION,
        "graph_format": format,
        **graph.info,
        "inputs": graph.inputs,
        "outputs": graph.outputs,
    }


def _json_default(value: Any) -> Any:
    """Labels of any kind in the JSON description: numpy scalars as Python values, anything else as its text."""
    return value.item() if hasattr(value, "item") else str(value)


def _write_pt2(graph: InferenceGraph, module: nn.Module, path: Path) -> None:
    program = torch.export.export(module, graph.example_inputs, dynamic_shapes=graph.dynamic_shapes())
    with atomic_write(path, suffix=f".tmp{path.suffix}") as tmp:  # torch.export.save expects its own suffix
        torch.export.save(program, str(tmp))


def _write_torchscript(graph: InferenceGraph, module: nn.Module, path: Path) -> None:
    model = getattr(module, graph.model_attr)
    model_inputs = _model_inputs(module, graph)
    traced = torch.jit.trace(model, model_inputs, check_trace=False)
    setattr(module, graph.model_attr, traced)
    try:
        scripted = torch.jit.script(module)
    finally:
        setattr(module, graph.model_attr, model)
    with atomic_write(path) as tmp:
        torch.jit.save(scripted, str(tmp))


def _model_inputs(module: nn.Module, graph: InferenceGraph) -> tuple[Tensor, ...]:
    """What the module passes its model for the example inputs (caught by a forward pre-hook)."""
    seen: list[tuple[Tensor, ...]] = []

    def catch(_: nn.Module, args: tuple[Tensor, ...]) -> None:
        seen.append(args)

    handle = getattr(module, graph.model_attr).register_forward_pre_hook(catch)
    try:
        module(*graph.example_inputs)
    finally:
        handle.remove()
    return seen[0]


def _write_onnx(graph: InferenceGraph, module: nn.Module, path: Path) -> None:
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise GraphError("ONNX export needs the packages onnx and onnxscript: pip install 'lamina[export]'") from None
    with atomic_write(path) as tmp:
        torch.onnx.export(
            module, graph.example_inputs, str(tmp), dynamo=True, dynamic_shapes=graph.dynamic_shapes(),
            input_names=[i["name"] for i in graph.inputs], output_names=[o["name"] for o in graph.outputs],
            external_data=False, verbose=False,
        )  # fmt: skip


def sym_min(a: int, b: int) -> int:
    """``min`` of two sizes that works eagerly, under ``torch.export`` (symbolic sizes) and in TorchScript.

    Examples:
        >>> sym_min(3, 5)
        3
    """
    if torch.jit.is_scripting():
        return min(a, b)
    return _symbolic(a, b, True)


def sym_max(a: int, b: int) -> int:
    """``max`` of two sizes that works eagerly, under ``torch.export`` and in TorchScript.

    Examples:
        >>> sym_max(3, 5)
        5
    """
    if torch.jit.is_scripting():
        return max(a, b)
    return _symbolic(a, b, False)


@torch.jit.unused
def _symbolic(a: int, b: int, smaller: bool) -> int:
    return torch.sym_min(a, b) if smaller else torch.sym_max(a, b)
