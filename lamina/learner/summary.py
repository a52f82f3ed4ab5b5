"""``learn.summary()``: one batch through the model with forward hooks, and a table of what it met.

Each layer (every module without children, and any module holding parameters of its own) gets a row: its name in
the model, its type, the shape of its output on the batch, its parameter count and whether those parameters train.
Below the table: the totals (all, trainable, frozen), the optimizer, the loss function and the callbacks.

Nothing on the learner changes: the batch runs without gradients in evaluation mode, the training flag of every
module is put back, and the hooks are removed, even when the model raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from lamina.core.tensors import as_plain

if TYPE_CHECKING:
    from lamina.learner.learner import Learner

__all__ = ["LayerRow", "LearnerSummary", "layer_rows", "summary"]


@dataclass(frozen=True)
class LayerRow:
    """One row of the summary: a layer and what it did with the batch.

    Args:
        name: the dotted name in the model (``"0.body.3"``).
        type: the class name.
        output_shape: the shape of its output on the batch (a tuple of shapes for several outputs); ``None`` when
            the batch did not reach it.
        params: its own parameter count.
        trainable: ``"yes"``, ``"no"`` (frozen), ``"partly"``, or ``""`` without parameters.

    Examples:
        >>> LayerRow("0", "Linear", (4, 2), 6, "yes").params
        6
    """

    name: str
    type: str
    output_shape: Any
    params: int
    trainable: str


@dataclass(frozen=True)
class LearnerSummary:
    """What :func:`summary` found; ``str()`` of it is the table.

    Args:
        model: the model's class name.
        input_shapes: the shapes of the batch's inputs.
        rows: one per layer, in the order of ``model.named_modules()``.
        total: every parameter of the model.
        trainable: the parameters that train.
        optimizer: the optimizer (with its learning rate and weight decay).
        loss: the loss function.
        callbacks: the callbacks' class names, in the order they run.

    Examples:
        >>> LearnerSummary("Linear", [(4, 3)], [], 8, 6, "Adam", "MSELossFlat", []).frozen
        2
    """

    model: str
    input_shapes: list[Any]
    rows: list[LayerRow]
    total: int
    trainable: int
    optimizer: str
    loss: str
    callbacks: list[str] = field(default_factory=list)

    @property
    def frozen(self) -> int:
        """The parameters that do not train."""
        return self.total - self.trainable

    def __str__(self) -> str:
        header = ("layer", "type", "output shape", "params", "trainable")
        cells = [header] + [(r.name, r.type, _shape(r.output_shape), f"{r.params:,}", r.trainable) for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        lines = [f"{self.model} on a batch of inputs {', '.join(_shape(s) for s in self.input_shapes)}"]
        for i, row in enumerate(cells):
            lines.append("  ".join(c.rjust(w) if j == 3 else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))))
            if i == 0:
                lines.append("-" * len(lines[-1]))
        lines += [
            f"total params: {self.total:,}; trainable: {self.trainable:,}; frozen: {self.frozen:,}",
            f"optimizer: {self.optimizer}",
            f"loss function: {self.loss}",
            f"callbacks: {', '.join(self.callbacks) or '-'}",
        ]
        return "\n".join(line.rstrip() for line in lines)


def _shape(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, torch.Size):
        return "x".join(map(str, value)) or "scalar"
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value)) or "scalar"
    return "(" + ", ".join(_shape(v) for v in value) + ")"


def _output_shape(output: Any) -> Any:
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return tuple(_output_shape(o) for o in output)
    return type(output).__name__


def _trainable(params: list[nn.Parameter]) -> str:
    if not params:
        return ""
    training = sum(p.requires_grad for p in params)
    return "yes" if training == len(params) else "no" if training == 0 else "partly"


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def _own_params(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters(recurse=False))


def layer_rows(model: nn.Module, *xb: Any) -> list[LayerRow]:
    """Run ``model(*xb)`` with forward hooks and a row per layer; the model's modes are restored after.

    Args:
        model: the network.
        *xb: its inputs.

    Examples:
        >>> rows = layer_rows(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), torch.zeros(5, 3))
        >>> [(r.name, r.type, r.output_shape, r.params) for r in rows]
        [('0', 'Linear', (5, 4), 16), ('1', 'ReLU', (5, 4), 0), ('2', 'Linear', (5, 2), 10)]
    """
    layers = [(n, m) for n, m in model.named_modules() if n and (_is_leaf(m) or _own_params(m))]
    shapes: dict[str, Any] = {}

    def hook(name: str) -> Any:
        return lambda module, args, output: shapes.__setitem__(name, _output_shape(output))

    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook(n)) for n, m in layers]
    try:
        with torch.no_grad():
            model.eval()(*xb)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    rows = []
    for name, m in layers:
        own = _own_params(m)
        rows.append(LayerRow(name, type(m).__name__, shapes.get(name), sum(p.numel() for p in own), _trainable(own)))
    return rows


def _describe_opt(learn: Learner) -> str:
    name = getattr(learn.opt_func, "__name__", type(learn.opt_func).__name__)
    if learn.opt is None:
        return f"{name} (not built yet: the first fit builds it), lr {learn.lr}"
    hypers = learn.opt.hypers[-1]
    shown = ", ".join(f"{k} {v:.3g}" for k, v in hypers.items() if k in ("lr", "wd") and isinstance(v, float))
    return f"{type(learn.opt).__name__} from {name}, {len(learn.opt.hypers)} parameter group(s); last group: {shown}"


def summary(learn: Learner) -> LearnerSummary:
    """Run one batch of ``learn``'s data (validation when there is one) through its model and summarize.

    Args:
        learn: the learner; left as it was (modes, gradients, callbacks, optimizer).

    Examples:
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> x = torch.randn(16, 3); y = x.sum(1, keepdim=True)
        >>> learn = Learner(DataLoaders(DataLoader((x, y), bs=8)), nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1)))
        >>> s = summary(learn)
        >>> s.total, s.trainable, s.frozen, s.rows[1].output_shape, s.loss
        (21, 21, 0, (8, 1), 'MSELossFlat')
    """
    dl = learn.dls.valid if len(learn.dls) > 1 else learn.dls.train
    batch = as_plain(dl.one_batch())
    xb = batch[: learn.dls.n_inp] if isinstance(batch, tuple) else (batch,)
    rows = layer_rows(learn.model, *xb)
    params = list(learn.model.parameters())
    loss = learn.loss_func
    return LearnerSummary(
        model=type(learn.model).__name__,
        input_shapes=[tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__ for x in xb],
        rows=rows,
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        optimizer=_describe_opt(learn),
        loss=getattr(loss, "__name__", type(loss).__name__),
        callbacks=[type(cb).__name__ for cb in learn.cbs],
    )
