"""One ``Optimizer`` that runs a list of steppers over parameter groups, plus ``OptimWrapper`` and ``Lookahead``.

All three share the :class:`BaseOptimizer` interface the Learner and schedulers use: ``param_lists``, ``hypers``,
``set_hyper``/``set_hypers``, ``freeze_to``/``freeze``/``unfreeze``, ``zero_grad``, ``step``, ``state_dict``,
``load_state_dict`` and ``clear_state``.

Examples:
    >>> import torch
    >>> from lamina.optim.steppers import sgd_step, weight_decay
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = Optimizer([w], [weight_decay, sgd_step], lr=0.1, wd=0.0)
    >>> w.grad = torch.tensor([1.0, -1.0])
    >>> opt.step()
    >>> w.detach()
    tensor([0.9000, 1.1000])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lamina.optim.steppers import Stepper

__all__ = ["BaseOptimizer", "Lookahead", "OptimWrapper", "Optimizer", "parse_param_groups"]

ParamsLike = Iterable[Tensor] | Iterable[Iterable[Tensor]] | Iterable[dict[str, Any]]
HyperValue = float | Sequence[float] | np.ndarray | slice

_NON_NEGATIVE = frozenset({"lr", "eps", "wd", "trust_coeff", "weight_decay"})
_UNIT_OPEN = frozenset({"mom", "sqr_mom"})
_UNIT_CLOSED = frozenset({"nu_1", "nu_2"})


def _check_hyper(name: str, value: object) -> float:
    """``value`` as a float after checking it suits the hyper-parameter ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if name in _NON_NEGATIVE and v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    if name in _UNIT_OPEN and not 0 <= v < 1:
        raise ValueError(f"{name} must be in [0, 1), got {v}")
    if name in _UNIT_CLOSED and not 0 <= v <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


def _spread(name: str, value: slice, n_groups: int) -> list[float]:
    """The values a slice stands for: geometric from start to stop, or stop/10 for all groups but the last."""
    if value.step is not None or value.stop is None:
        raise ValueError(f"{name}: use slice(lo, hi) or slice(hi), got {value}")
    hi = _check_hyper(name, value.stop)
    if value.start is None:
        return [hi / 10] * (n_groups - 1) + [hi]
    lo = _check_hyper(name, value.start)
    if n_groups == 1:
        return [hi]
    if lo <= 0 or hi <= 0:
        raise ValueError(f"{name}: a slice spreads values geometrically, so both ends must be > 0, got {value}")
    values = [lo * (hi / lo) ** (i / (n_groups - 1)) for i in range(n_groups)]
    values[-1] = hi
    return values


def _per_group(name: str, value: object, n_groups: int) -> list[float]:
    """One checked float per group from a scalar, a sequence (one per group) or a slice."""
    if isinstance(value, slice):
        return [_check_hyper(name, v) for v in _spread(name, value, n_groups)]
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n_groups:
            raise ValueError(
                f"{name}: got {len(value)} values for {n_groups} parameter groups; "
                "pass one value per group, a single number or a slice"
            )
        return [_check_hyper(name, v) for v in value]
    return [_check_hyper(name, value)] * n_groups


def _check_tensors(groups: list[tuple[list[Tensor], dict[str, Any]]]) -> None:
    """Raise unless every group holds at least one leaf tensor and no tensor is in two places."""
    seen: set[int] = set()
    for i, (tensors, _) in enumerate(groups):
        if not tensors:
            raise ValueError(f"param group {i} has no tensors; remove it or give it parameters")
        for j, p in enumerate(tensors):
            if not isinstance(p, Tensor):
                raise TypeError(f"param group {i}, item {j} is a {type(p).__name__}, expected a Tensor")
            if not p.is_leaf:
                raise ValueError(f"param group {i}, item {j} is not a leaf tensor; optimize parameters, not results")
            if id(p) in seen:
                raise ValueError(f"param group {i}, item {j} appears twice; give each tensor to one group only")
            seen.add(id(p))


def _group_from_dict(index: int, group: dict[str, Any]) -> tuple[list[Tensor], dict[str, Any]]:
    """Split ``{"params": ..., **overrides}`` into its tensors and its overrides."""
    if "params" not in group:
        raise ValueError(f"param group {index} is a dict without a 'params' key: {sorted(group)}")
    tensors = group["params"]
    overrides = {k: v for k, v in group.items() if k != "params"}
    return ([tensors] if isinstance(tensors, Tensor) else list(tensors)), overrides


def parse_param_groups(params: ParamsLike) -> list[tuple[list[Tensor], dict[str, Any]]]:
    """Normalise ``params`` to a list of ``(tensors, hyper_overrides)``, one per group, checking each tensor.

    ``params`` is an iterable of tensors (one group), of iterables of tensors (one group each), or of dicts
    ``{"params": [...], **hyper_overrides}``.

    Examples:
        >>> a, b = torch.zeros(1, requires_grad=True), torch.zeros(2, requires_grad=True)
        >>> [len(t) for t, _ in parse_param_groups([[a], [b]])]
        [1, 1]
        >>> parse_param_groups([{"params": [a, b], "lr": 0.1}])[0][1]
        {'lr': 0.1}
    """
    if isinstance(params, Tensor):
        raise TypeError("params is a single Tensor; pass an iterable of tensors such as [tensor]")
    items: list[Any] = list(params)
    if not items:
        raise ValueError("params is empty; pass model.parameters(), a list of lists of tensors or a list of dicts")
    if all(isinstance(x, Tensor) for x in items):
        groups: list[tuple[list[Tensor], dict[str, Any]]] = [(items, {})]
    elif all(isinstance(x, dict) for x in items):
        groups = [_group_from_dict(i, d) for i, d in enumerate(items)]
    elif all(isinstance(x, Iterable) and not isinstance(x, (Tensor, str, dict)) for x in items):
        groups = [(list(x), {}) for x in items]
    else:
        kinds = sorted({type(x).__name__ for x in items})
        raise TypeError(f"params mixes {kinds}; pass tensors, lists of tensors, or dicts with a 'params' key")
    _check_tensors(groups)
    return groups


class BaseOptimizer:
    """The interface every lamina optimizer offers: groups of tensors, per-group hypers, freezing, state.

    Subclasses provide ``hypers``, ``hyper_names``, ``step``, ``state_dict``, ``load_state_dict``, ``clear_state``
    and ``_write_hyper``; the rest is shared.

    Examples:
        >>> from lamina.optim import SGD
        >>> isinstance(SGD([torch.zeros(1, requires_grad=True)]), BaseOptimizer)
        True
    """

    param_lists: list[list[Tensor]]
    _frozen_idx: int = 0

    @property
    def hypers(self) -> list[dict[str, float]]:
        """One dict of hyper-parameters per group."""
        raise NotImplementedError

    @property
    def hyper_names(self) -> frozenset[str]:
        """The names ``set_hyper`` accepts."""
        raise NotImplementedError

    @property
    def frozen_idx(self) -> int:
        """Groups before this index are frozen."""
        return self._frozen_idx

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """A read-only ``torch.optim``-style view (``{"params": [...], **hypers}``), for tools like GradScaler."""
        return [{"params": tensors, **h} for tensors, h in zip(self.param_lists, self.hypers)]

    def _write_hyper(self, name: str, values: list[float]) -> None:
        raise NotImplementedError

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update the parameters of the trainable groups; returns ``closure()`` when given."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only: safe for ``torch.load(weights_only=True)``."""
        raise NotImplementedError

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        raise NotImplementedError

    def clear_state(self) -> None:
        """Forget the accumulated statistics (momentum buffers, averages, step counts)."""
        raise NotImplementedError

    def set_hyper(self, name: str, value: HyperValue) -> None:
        """Set hyper-parameter ``name``: a number for all groups, a sequence (one per group) or a slice.

        ``slice(lo, hi)`` spreads values geometrically from ``lo`` (first group) to ``hi`` (last group);
        ``slice(hi)`` gives ``hi / 10`` to all groups but the last, which gets ``hi``.

        Examples:
            >>> from lamina.optim import Adam
            >>> opt = Adam([[torch.zeros(1, requires_grad=True)] for _ in range(3)])
            >>> opt.set_hyper("lr", slice(1e-5, 1e-3))
            >>> [h["lr"] for h in opt.hypers]
            [1e-05, 0.0001, 0.001]
        """
        if name not in self.hyper_names:
            known = ", ".join(sorted(self.hyper_names))
            raise ValueError(f"unknown hyper-parameter {name!r}; this optimizer knows: {known}")
        self._write_hyper(name, _per_group(name, value, len(self.param_lists)))

    def set_hypers(self, **hypers: HyperValue) -> None:
        """Call ``set_hyper`` for each keyword.

        Examples:
            >>> from lamina.optim import SGD
            >>> opt = SGD([torch.zeros(1, requires_grad=True)], mom=0.9)
            >>> opt.set_hypers(lr=0.5, mom=0.8)
            >>> opt.hypers[0]["lr"], opt.hypers[0]["mom"]
            (0.5, 0.8)
        """
        for name, value in hypers.items():
            self.set_hyper(name, value)

    def freeze_to(self, n: int) -> None:
        """Freeze the groups before ``n`` (``requires_grad`` off, skipped by ``step``) and unfreeze the rest.

        A negative ``n`` counts from the end.

        Examples:
            >>> from lamina.optim import SGD
            >>> groups = [[torch.zeros(1, requires_grad=True)] for _ in range(3)]
            >>> opt = SGD(groups)
            >>> opt.freeze_to(-1)
            >>> [g[0].requires_grad for g in groups], opt.frozen_idx
            ([False, False, True], 2)
        """
        count = len(self.param_lists)
        idx = n + count if n < 0 else n
        if not 0 <= idx <= count:
            raise ValueError(f"freeze_to needs n in [-{count}, {count}] for {count} groups, got {n}")
        for i, tensors in enumerate(self.param_lists):
            for p in tensors:
                p.requires_grad_(i >= idx)
                if i < idx:
                    p.grad = None
        self._frozen_idx = idx

    def freeze(self) -> None:
        """Freeze every group but the last (``freeze_to(-1)``)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Make every group trainable (``freeze_to(0)``)."""
        self.freeze_to(0)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) the gradients of every parameter."""
        for tensors in self.param_lists:
            for p in tensors:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_()
                    p.grad.zero_()


class _Block:
    """The parameters of one group that share a weight-decay flag, with their state."""

    __slots__ = ("decay", "index", "params", "state")

    def __init__(self, params: list[Tensor], index: list[int], decay: bool) -> None:
        self.params, self.index, self.decay = params, index, decay
        self.state: dict[str, list[Tensor]] = {}


def _make_blocks(tensors: list[Tensor], no_decay: set[int]) -> list[_Block]:
    """Split a group in two blocks, the tensors that decay and those in ``no_decay``; drop an empty block."""
    decays = [i for i, p in enumerate(tensors) if id(p) not in no_decay]
    keeps = [i for i, p in enumerate(tensors) if id(p) in no_decay]
    return [_Block([tensors[i] for i in idx], idx, flag) for idx, flag in ((decays, True), (keeps, False)) if idx]


_Work = tuple[list[Tensor], list[Tensor], dict[str, list[Tensor]], "list[int] | None"]


def _gather(block: _Block, frozen: bool = False) -> _Work | None:
    """The block's tensors that have a gradient, with their grads and state; ``None`` if none has one.

    In a frozen group only tensors whose ``requires_grad`` was turned back on count: a gradient left over from
    before freezing is never applied.
    """
    params = block.params
    if frozen:
        picked = [j for j, p in enumerate(params) if p.requires_grad and p.grad is not None]
        grads = [g for j in picked if (g := params[j].grad) is not None]
    else:
        grads = [g for p in params if (g := p.grad) is not None]
        if len(grads) == len(params):
            return params, grads, block.state, None
        picked = [j for j, p in enumerate(params) if p.grad is not None]
    if not grads:
        return None
    view = {name: [values[j] for j in picked] for name, values in block.state.items()}
    return [params[j] for j in picked], grads, view, picked


def _merge_state(block: _Block, view: dict[str, list[Tensor]], picked: list[int]) -> None:
    """Adopt state entries created on a subset of the block, zeros standing for the tensors left out."""
    for name, values in view.items():
        if name not in block.state:
            full = [torch.zeros_like(p) for p in block.params]
            for j, t in zip(picked, values):
                full[j] = t
            block.state[name] = full


def _load_block(block: _Block, saved: list[dict[str, Tensor]]) -> dict[str, list[Tensor]]:
    """Rebuild a block's state from per-tensor saved dicts, zeros for missing entries."""
    state: dict[str, list[Tensor]] = {}
    for name in sorted({n for d in saved for n in d}):
        values = []
        for p, d in zip(block.params, saved):
            t = d.get(name)
            if t is None:
                values.append(torch.zeros_like(p))
            elif not isinstance(t, Tensor) or t.shape != p.shape:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(
                    f"saved state {name!r} is {shape} for a parameter of shape {tuple(p.shape)}; "
                    "load a state dict saved with the same model and groups"
                )
            else:
                values.append(t.detach().to(device=p.device, dtype=p.dtype, copy=True))
        state[name] = values
    return state


def _saved_groups(state_dict: dict[str, Any], param_lists: list[list[Tensor]]) -> list[dict[str, Any]]:
    """The saved groups, after checking they line up with ``param_lists``."""
    groups = state_dict.get("groups") if isinstance(state_dict, dict) else None
    if not isinstance(groups, list) or len(groups) != len(param_lists):
        found = len(groups) if isinstance(groups, list) else "no"
        raise ValueError(
            f"state dict has {found} groups, this optimizer has {len(param_lists)}; "
            "load a state dict saved by an Optimizer over the same groups"
        )
    for i, (saved, tensors) in enumerate(zip(groups, param_lists)):
        if len(saved["state"]) != len(tensors):
            raise ValueError(f"state dict group {i} has {len(saved['state'])} tensors, this group has {len(tensors)}")
    return groups


class Optimizer(BaseOptimizer):
    """Run ``steppers`` in order over the tensors of each parameter group, vectorised with ``torch._foreach_*``.

    Args:
        params: tensors (one group), lists of tensors (one group each) or dicts ``{"params": [...], **overrides}``.
        steppers: the stats and steps to run (see ``lamina.optim.steppers``).
        no_decay: tensors that get weight decay 0 whatever their group's ``wd`` (norms, biases).
        **defaults: hyper-parameters of every group (``lr``, ``mom``, ``wd``...); dicts in ``params`` override them.

    Examples:
        >>> from lamina.optim.steppers import average_grad, momentum_step, weight_decay
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = Optimizer([w], [weight_decay, average_grad, momentum_step], lr=0.1, mom=0.9, wd=0.0)
        >>> for _ in range(2):
        ...     w.grad = torch.ones(2)
        ...     opt.step()
        >>> w.detach()  # 1 - 0.1 * (1 + 1.9)
        tensor([0.7100, 0.7100])
        >>> sorted(opt.state_dict()["groups"][0]["state"][0])
        ['grad_avg']
    """

    def __init__(
        self, params: ParamsLike, steppers: Sequence[Stepper], *, no_decay: Iterable[Tensor] = (), **defaults: float
    ) -> None:
        self.steppers = list(steppers)
        if not self.steppers or not all(callable(s) for s in self.steppers):
            raise ValueError(f"steppers must be a non-empty list of functions, got {steppers!r}")
        if "step" in defaults:
            raise ValueError("'step' is reserved (steppers receive the step number); rename that hyper-parameter")
        base = {name: _check_hyper(name, v) for name, v in defaults.items()}
        self._names = frozenset(base)
        groups = parse_param_groups(params)
        self.param_lists = [tensors for tensors, _ in groups]
        self._hypers = [self._group_hypers(i, base, overrides) for i, (_, overrides) in enumerate(groups)]
        skip = {id(t) for t in no_decay}
        self._blocks = [_make_blocks(tensors, skip) for tensors in self.param_lists]
        self._steps = [0] * len(groups)

    def _group_hypers(self, index: int, base: dict[str, float], overrides: dict[str, Any]) -> dict[str, float]:
        unknown = sorted(set(overrides) - self._names)
        if unknown:
            known = ", ".join(sorted(self._names))
            raise ValueError(f"param group {index} sets unknown hyper-parameters {unknown}; known: {known}")
        return {**base, **{name: _check_hyper(name, v) for name, v in overrides.items()}}

    @property
    def hypers(self) -> list[dict[str, float]]:
        """One live dict of hyper-parameters per group, read by every ``step``."""
        return self._hypers

    @property
    def hyper_names(self) -> frozenset[str]:
        """The names ``set_hyper`` accepts."""
        return self._names

    def _write_hyper(self, name: str, values: list[float]) -> None:
        for hypers, value in zip(self._hypers, values):
            hypers[name] = value

    def __repr__(self) -> str:
        names = [getattr(s, "__name__", None) or getattr(getattr(s, "func", s), "__name__", "?") for s in self.steppers]
        return f"Optimizer({len(self.param_lists)} groups, steppers={names}, hypers={self._hypers[-1]})"

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run the steppers over every tensor that has a gradient. Frozen groups have none (``freeze_to`` turns
        ``requires_grad`` off), except tensors re-enabled on purpose, such as normalization layers kept training."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for i in range(len(self._blocks)):
            self._step_group(i)
        return loss

    def _step_group(self, i: int) -> None:
        frozen = i < self._frozen_idx
        work = [(block, found) for block in self._blocks[i] if (found := _gather(block, frozen)) is not None]
        if not work:
            return
        hypers = self._hypers[i]
        self._steps[i] = step = self._steps[i] + 1
        for block, (params, grads, state, picked) in work:
            kwargs = hypers if block.decay else {**hypers, "wd": 0.0}
            for stepper in self.steppers:
                new_grads = stepper(params, grads, state, step=step, **kwargs)
                if new_grads is not None:
                    grads = new_grads
            if picked is not None:
                _merge_state(block, state, picked)

    def state_dict(self) -> dict[str, Any]:
        """``{"groups": [{"hypers", "step", "state": [{name: tensor} per tensor]}]}``; tensors are the live state."""
        groups = []
        for tensors, blocks, hypers, step in zip(self.param_lists, self._blocks, self._hypers, self._steps):
            per_tensor: list[dict[str, Tensor]] = [{} for _ in tensors]
            for block in blocks:
                for name, values in block.state.items():
                    for j, t in zip(block.index, values):
                        per_tensor[j][name] = t
            groups.append({"hypers": dict(hypers), "step": step, "state": per_tensor})
        return {"groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hypers, step counts and state (copied onto each parameter's device and dtype)."""
        groups = _saved_groups(state_dict, self.param_lists)
        hypers = [{name: _check_hyper(name, v) for name, v in saved["hypers"].items()} for saved in groups]
        for i, h in enumerate(hypers):
            if set(h) != self._names:
                raise ValueError(
                    f"state dict group {i} has hypers {sorted(h)}, this optimizer {sorted(self._names)}; "
                    "load a state dict saved by the same kind of optimizer"
                )
        states = [
            [_load_block(b, [saved["state"][j] for j in b.index]) for b in blocks]
            for blocks, saved in zip(self._blocks, groups)
        ]
        for i, saved in enumerate(groups):
            self._hypers[i].update(hypers[i])
            self._steps[i] = int(saved["step"])
            for block, state in zip(self._blocks[i], states[i]):
                block.state = state

    def clear_state(self) -> None:
        """Forget every statistic and reset the step counts."""
        for blocks in self._blocks:
            for block in blocks:
                block.state = {}
        self._steps = [0] * len(self._blocks)


def _torch_keys(group: dict[str, Any]) -> dict[str, tuple[str, int | None]]:
    """Map lamina hyper names to ``(torch key, index in a tuple or None)`` for a torch param group."""
    keys: dict[str, tuple[str, int | None]] = {}
    for key, value in group.items():
        if key == "betas":
            keys["mom"], keys["sqr_mom"] = ("betas", 0), ("betas", 1)
        elif key == "momentum":
            keys["mom"] = ("momentum", None)
        elif key == "alpha" and "betas" not in group:
            keys["sqr_mom"] = ("alpha", None)
        elif key == "weight_decay":
            keys["wd"] = ("weight_decay", None)
        elif isinstance(value, (int, float, Tensor)) and not isinstance(value, bool):
            keys[key] = (key, None)
    return keys


def _read(group: dict[str, Any], key: str, index: int | None) -> float:
    value = group[key] if index is None else group[key][index]
    return float(value)


def _write(group: dict[str, Any], key: str, index: int | None, value: float) -> None:
    if index is not None:
        items = list(group[key])
        items[index] = value
        group[key] = tuple(items)
    elif isinstance(group[key], Tensor):
        group[key].fill_(value)
    else:
        group[key] = value


def _split_no_decay(opt: torch.optim.Optimizer, skip: set[int]) -> list[list[tuple[int, bool]]]:
    """Move the ``skip`` tensors of each torch group to a twin group with weight decay 0.

    Returns, per original group, the indices of its torch groups, each with whether it decays.
    """
    targets: list[list[tuple[int, bool]]] = []
    for i, group in enumerate(list(opt.param_groups)):
        keep = [p for p in group["params"] if id(p) not in skip]
        if len(keep) == len(group["params"]):
            targets.append([(i, True)])
            continue
        if "weight_decay" not in group:
            raise ValueError(f"{type(opt).__name__} has no weight_decay, so no_decay has no meaning; drop no_decay")
        if not keep:
            group["weight_decay"] = 0.0
            targets.append([(i, False)])
            continue
        rest = [p for p in group["params"] if id(p) in skip]
        group["params"] = keep
        opt.add_param_group({**{k: v for k, v in group.items() if k != "params"}, "params": rest, "weight_decay": 0.0})
        targets.append([(i, True), (len(opt.param_groups) - 1, False)])
    return targets


class OptimWrapper(BaseOptimizer):
    """Give a ``torch.optim`` optimizer the lamina interface.

    Hyper names are mapped: ``mom`` is ``momentum`` or ``betas[0]``, ``sqr_mom`` is ``betas[1]`` or ``alpha``, ``wd``
    is ``weight_decay``; other numeric settings keep their torch names. ``hypers`` is a read-only view.

    Args:
        opt: a built torch optimizer, or a factory (``torch.optim.AdamW``, a ``partial``) called with the groups.
        params: the parameter groups, only with a factory (same forms as :class:`Optimizer`).
        no_decay: tensors that get weight decay 0 (moved to twin torch groups).
        **hypers: lamina-named hyper-parameters to set on every group.

    Examples:
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = OptimWrapper(torch.optim.SGD, [w], lr=0.1, mom=0.9)
        >>> opt.opt.param_groups[0]["momentum"]
        0.9
        >>> w.grad = torch.ones(2)
        >>> opt.step()
        >>> w.detach()
        tensor([0.9000, 0.9000])
    """

    def __init__(
        self,
        opt: torch.optim.Optimizer | Callable[..., torch.optim.Optimizer],
        params: ParamsLike | None = None,
        *,
        no_decay: Iterable[Tensor] = (),
        **hypers: HyperValue,
    ) -> None:
        if isinstance(opt, torch.optim.Optimizer):
            if params is not None:
                raise ValueError("params given with an already built torch optimizer; pass one or the other")
            overrides: list[dict[str, Any]] = [{} for _ in opt.param_groups]
            self.opt = opt
        elif callable(opt):
            if params is None:
                raise ValueError(f"params is needed to build {opt!r}; pass the parameters or a built optimizer")
            groups = parse_param_groups(params)
            self.opt = opt([{"params": tensors} for tensors, _ in groups])
            overrides = [o for _, o in groups]
        else:
            raise TypeError(f"opt must be a torch.optim.Optimizer or a factory of one, got {type(opt).__name__}")
        if not isinstance(self.opt, torch.optim.Optimizer):
            raise TypeError(f"the factory returned a {type(self.opt).__name__}, expected a torch.optim.Optimizer")
        self.param_lists = [list(g["params"]) for g in self.opt.param_groups]
        self._keys = _torch_keys(self.opt.param_groups[0])
        self._targets = _split_no_decay(self.opt, {id(t) for t in no_decay})
        self.set_hypers(**hypers)
        for i, group_overrides in enumerate(overrides):
            for name, value in group_overrides.items():
                self.set_hyper(name, [value if j == i else h[name] for j, h in enumerate(self.hypers)])

    @property
    def hypers(self) -> list[dict[str, float]]:
        """Lamina-named hyper-parameters of each group, read from the torch groups (a copy: use ``set_hyper``)."""
        groups = self.opt.param_groups
        return [
            {name: _read(groups[pairs[0][0]], key, idx) for name, (key, idx) in self._keys.items()}
            for pairs in self._targets
        ]

    @property
    def hyper_names(self) -> frozenset[str]:
        """The names ``set_hyper`` accepts."""
        return frozenset(self._keys)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The wrapped optimizer's own param groups."""
        return self.opt.param_groups

    def _write_hyper(self, name: str, values: list[float]) -> None:
        key, idx = self._keys[name]
        groups = self.opt.param_groups  # looked up each time: torch's load_state_dict replaces the group dicts
        for pairs, value in zip(self._targets, values):
            for index, decays in pairs:
                if decays or name != "wd":
                    _write(groups[index], key, idx, value)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Step the torch optimizer (frozen tensors have no gradient, so it leaves them alone)."""
        return self.opt.step(closure)

    def state_dict(self) -> dict[str, Any]:
        """The torch optimizer's state dict."""
        return self.opt.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict from an ``OptimWrapper`` over the same torch optimizer and groups."""
        self.opt.load_state_dict(state_dict)

    def clear_state(self) -> None:
        """Forget the torch optimizer's per-parameter state."""
        self.opt.state.clear()


class Lookahead(BaseOptimizer):
    """Lookahead: every ``k`` steps, move slow weights ``alpha`` of the way to the fast ones and restart from them.

    Args:
        opt: the inner lamina optimizer taking the fast steps.
        k: fast steps between two syncs.
        alpha: how far the slow weights move towards the fast ones at a sync.

    Examples:
        >>> from lamina.optim import SGD
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = Lookahead(SGD([w], lr=1.0), k=2, alpha=0.5)
        >>> for _ in range(2):
        ...     w.grad = torch.ones(1)
        ...     opt.step()
        >>> w.detach()  # fast weights reached -2, slow weights moved half way from 0
        tensor([-1.])
    """

    def __init__(self, opt: BaseOptimizer, k: int = 6, alpha: float = 0.5) -> None:
        if not isinstance(opt, BaseOptimizer):
            raise TypeError(f"Lookahead wraps a lamina optimizer, got {type(opt).__name__}; wrap it in OptimWrapper")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.opt, self.k, self.alpha = opt, k, float(alpha)
        self.param_lists = opt.param_lists
        self.count = 0
        self._slow: list[list[Tensor] | None] = [None] * len(self.param_lists)

    @property
    def hypers(self) -> list[dict[str, float]]:
        """The inner optimizer's hypers."""
        return self.opt.hypers

    @property
    def hyper_names(self) -> frozenset[str]:
        """The inner optimizer's hyper names."""
        return self.opt.hyper_names

    @property
    def frozen_idx(self) -> int:
        """The inner optimizer's first trainable group."""
        return self.opt.frozen_idx

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The inner optimizer's param groups."""
        return self.opt.param_groups

    def set_hyper(self, name: str, value: HyperValue) -> None:
        """Set a hyper-parameter of the inner optimizer."""
        self.opt.set_hyper(name, value)

    def freeze_to(self, n: int) -> None:
        """Freeze the inner optimizer's groups before ``n``."""
        self.opt.freeze_to(n)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One fast step; every ``k``-th also syncs slow and fast weights."""
        trainable = range(self.frozen_idx, len(self.param_lists))
        for i in trainable:
            if self._slow[i] is None:
                self._slow[i] = [p.detach().clone() for p in self.param_lists[i]]
        loss = self.opt.step(closure)
        self.count += 1
        if self.count % self.k == 0:
            for i in trainable:
                slow = self._slow[i]
                if slow is not None:
                    torch._foreach_lerp_(slow, self.param_lists[i], self.alpha)
                    torch._foreach_copy_(self.param_lists[i], slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The inner state dict, the step count and the slow weights."""
        return {"opt": self.opt.state_dict(), "count": self.count, "slow": self._slow}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        slow = state_dict["slow"]
        if len(slow) != len(self.param_lists):
            raise ValueError(
                f"state dict has slow weights for {len(slow)} groups, this optimizer has "
                f"{len(self.param_lists)}; load one saved with the same groups"
            )
        self.opt.load_state_dict(state_dict["opt"])
        self.count = int(state_dict["count"])
        self._slow = [
            None if s is None else [t.to(p, copy=True) for t, p in zip(s, tensors)]
            for s, tensors in zip(slow, self.param_lists)
        ]

    def clear_state(self) -> None:
        """Clear the inner state and forget the slow weights."""
        self.opt.clear_state()
        self.count = 0
        self._slow = [None] * len(self.param_lists)
