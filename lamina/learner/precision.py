"""Mixed precision training on ``torch.amp`` (autocast, and loss scaling for float16) and channels-last layout.

``MixedPrecision`` runs the forward pass and the loss under ``torch.autocast``. With float16 it also scales the loss
before the backward pass so small gradients do not underflow, unscales the gradients before the step, skips the step
when one is infinite or NaN, and adapts the scale: halved after an overflow, doubled after ``growth_interval`` good
steps. bfloat16 has the range of float32, so it needs no scaling and runs on the CPU too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lamina.learner.callback import Callback, CancelStepException

__all__ = ["ChannelsLast", "MixedPrecision", "next_loss_scale", "to_float", "unscale_grads_"]

_HALF_TYPES = (torch.float16, torch.bfloat16)


def unscale_grads_(grads: Sequence[Tensor], scale: float) -> bool:
    """Divide ``grads`` by ``scale`` in place; return whether any of them holds an infinite or NaN value.

    Args:
        grads: gradient tensors (on any devices).
        scale: the loss scale they were computed with.

    Examples:
        >>> g = [torch.tensor([4.0, 8.0]), torch.tensor([2.0])]
        >>> unscale_grads_(g, 4.0), g[0].tolist()
        (False, [1.0, 2.0])
        >>> unscale_grads_([torch.tensor([float("inf")])], 2.0)
        True
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    buckets: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for g in grads:
        buckets.setdefault((g.device, g.dtype), []).append(g)
    found = []
    for (device, _), bucket in buckets.items():
        flag = torch.zeros((), device=device)
        inv_scale = torch.full((), 1.0 / scale, dtype=torch.float32, device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(bucket, flag, inv_scale)
        found.append(flag.cpu())
    return bool(torch.stack(found).sum() > 0) if found else False


def next_loss_scale(
    scale: float,
    good_steps: int,
    found_inf: bool,
    growth_interval: int = 2000,
    growth_factor: float = 2.0,
    backoff_factor: float = 0.5,
) -> tuple[float, int]:
    """The loss scale and count of good steps after one step: back off on overflow, grow after enough good steps.

    Args:
        scale: the current loss scale.
        good_steps: steps without overflow since the scale last changed.
        found_inf: whether this step's gradients overflowed.
        growth_interval: good steps before the scale grows.
        growth_factor: multiplier when growing.
        backoff_factor: multiplier after an overflow.

    Examples:
        >>> next_loss_scale(1024.0, 5, found_inf=True)
        (512.0, 0)
        >>> next_loss_scale(1024.0, 1, found_inf=False, growth_interval=2)
        (2048.0, 0)
        >>> next_loss_scale(1024.0, 0, found_inf=False, growth_interval=2)
        (1024.0, 1)
    """
    if found_inf:
        return scale * backoff_factor, 0
    if good_steps + 1 >= growth_interval:
        return scale * growth_factor, 0
    return scale, good_steps + 1


def to_float(obj: Any) -> Any:
    """``obj`` with its float16 / bfloat16 tensors cast to float32 (through tuples, lists and dicts).

    Examples:
        >>> out = to_float((torch.ones(1, dtype=torch.bfloat16), torch.ones(1, dtype=torch.long)))
        >>> [t.dtype for t in out]
        [torch.float32, torch.int64]
    """
    if isinstance(obj, Tensor):
        return obj.float() if obj.dtype in _HALF_TYPES else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_float(o) for o in obj)
    if isinstance(obj, dict):
        return {k: to_float(v) for k, v in obj.items()}
    return obj


def _device_type(model: nn.Module) -> str:
    p = next(model.parameters(), None)
    return p.device.type if p is not None else "cpu"


class MixedPrecision(Callback):
    """Train under ``torch.autocast`` in ``dtype``; with float16, scale the loss and skip steps that overflow.

    The forward pass and the loss run under autocast; predictions are cast back to float32 after the loss, so
    metrics and ``get_preds`` see float32. ``learn.loss`` holds the unscaled loss except during the backward pass.
    ``scale`` is the current loss scale and ``skipped_steps`` counts the steps skipped for an overflow.

    Args:
        dtype: ``torch.float16`` or ``torch.bfloat16``.
        init_scale: the first loss scale (float16 only).
        growth_interval: steps without overflow before the scale doubles (float16 only).
        enabled: ``False`` makes the callback do nothing.

    Examples:
        >>> mp = MixedPrecision(torch.bfloat16)
        >>> mp.dtype, mp.uses_scaler
        (torch.bfloat16, False)
        >>> MixedPrecision(torch.float16).scale
        65536.0
        >>> MixedPrecision(torch.float16).state_dict()
        {'scale': 65536.0, 'good_steps': 0, 'skipped_steps': 0}
    """

    order = 10

    def __init__(
        self,
        dtype: torch.dtype = torch.float16,
        init_scale: float = 2.0**16,
        growth_interval: int = 2000,
        enabled: bool = True,
    ) -> None:
        if dtype not in _HALF_TYPES:
            raise ValueError(f"dtype must be torch.float16 or torch.bfloat16, got {dtype}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"growth_interval must be an int >= 1, got {growth_interval!r}")
        self.dtype, self.enabled, self.growth_interval = dtype, enabled, growth_interval
        self.uses_scaler = enabled and dtype == torch.float16
        self.scale, self.skipped_steps, self._good_steps = float(init_scale), 0, 0
        self._autocast: torch.autocast | None = None
        self._unscaled_loss: Tensor | None = None
        self._found_inf: bool | None = None

    def before_fit(self) -> None:
        if not self.uses_scaler:
            return
        half = [n for n, p in self.learn.model.named_parameters() if p.dtype == torch.float16]
        if half:
            raise ValueError(
                f"MixedPrecision keeps float32 weights, but {half[0]} is float16; call model.float() before training"
            )

    def state_dict(self) -> dict[str, Any]:
        """The loss scale, the steps since it last changed and the steps skipped."""
        return {"scale": self.scale, "good_steps": self._good_steps, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.scale, self._good_steps = float(state["scale"]), state["good_steps"]
        self.skipped_steps = state["skipped_steps"]

    def before_batch(self) -> None:
        if not self.enabled:
            return
        self._exit_autocast()
        self._autocast = torch.autocast(_device_type(self.learn.model), dtype=self.dtype)
        self._autocast.__enter__()

    def after_pred(self) -> None:
        if not self.learn.yb:
            self._exit_autocast()

    def after_loss(self) -> None:
        self._exit_autocast()

    def before_backward(self) -> None:
        if self.uses_scaler:
            self._unscaled_loss = self.learn.loss
            self.learn.loss = self.learn.loss.float() * self.scale

    def after_backward(self) -> None:
        if self._unscaled_loss is not None:
            self.learn.loss, self._unscaled_loss = self._unscaled_loss, None

    def before_step(self) -> None:
        if not self.uses_scaler:
            return
        opt = self.learn.opt
        assert opt is not None
        grads = [p.grad for group in opt.param_lists for p in group if p.grad is not None]
        self._found_inf = unscale_grads_(grads, self.scale)
        if self._found_inf:
            self.skipped_steps += 1
            raise CancelStepException()

    def after_step(self) -> None:
        if self._found_inf is None:
            return
        self.scale, self._good_steps = next_loss_scale(
            self.scale, self._good_steps, self._found_inf, self.growth_interval
        )
        self._found_inf = None

    def after_batch(self) -> None:
        self._exit_autocast()

    def after_fit(self) -> None:
        self._exit_autocast()

    def _exit_autocast(self) -> None:
        if self._autocast is None:
            return
        self._autocast.__exit__(None, None, None)
        self._autocast = None
        self.learn.pred = to_float(self.learn.pred)


class ChannelsLast(Callback):
    """Put the model and every 4-D input batch in ``torch.channels_last`` memory format (faster convolutions on
    tensor cores, usually with ``MixedPrecision``).

    Examples:
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 2, (8,))
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(64, 2))
        >>> dls = DataLoaders(DataLoader((x, y), bs=4), DataLoader((x, y), bs=4))
        >>> learn = Learner(dls, model, cbs=[ChannelsLast()])
        >>> with learn.no_logging(), learn.no_bar(): learn.fit(1)
        >>> model[0].weight.is_contiguous(memory_format=torch.channels_last)
        True
    """

    order = -5

    def before_fit(self) -> None:
        self.learn.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in torch's stubs

    def before_batch(self) -> None:
        self.learn.xb = tuple(
            x.contiguous(memory_format=torch.channels_last) if isinstance(x, Tensor) and x.dim() == 4 else x
            for x in self.learn.xb
        )
