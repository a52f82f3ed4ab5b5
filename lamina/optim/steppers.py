"""Pure, vectorised stat and stepper functions: the maths of every lamina optimizer.

An optimizer is a list of steppers run in order on each parameter group. Every stepper has the one signature

    stepper(params, grads, state, *, step, **hypers) -> list[Tensor] | None

- ``params``: the group's parameters (``list[Tensor]``), updated in place.
- ``grads``: their gradients, in the same order. Steppers never modify them in place.
- ``state``: ``dict[str, list[Tensor]]``, one list per name, aligned with ``params``. Entries start at zero: create
  them with :func:`get_state` and update their tensors in place.
- ``step``: the 1-based number of the step being taken by this group.
- ``hypers``: the group's hyper-parameters (``lr``, ``mom``, ``sqr_mom``, ``eps``, ``wd``...) as keywords. A stepper
  names those it needs and swallows the others with ``**_``.

A stepper returns ``None``, or a new list of gradients that the following steppers see instead (``l2_reg`` does this,
so ``p.grad`` is left untouched). *Stats* (``average_grad``, ``average_sqr_grad``) only update ``state``; *steps*
(``sgd_step``, ``adam_step``...) move the parameters. Each function works on whole lists with ``torch._foreach_*``
ops, so a composed optimizer costs no more than a hand-fused one. Options that are not hyper-parameters
(``dampening``, ``clip``) are keyword arguments to fix with :func:`functools.partial`.

State names: ``grad_avg`` (first moment or momentum buffer) and ``sqr_avg`` (second moment).

Examples:
    >>> import torch
    >>> params, grads = [torch.ones(2)], [torch.full((2,), 0.5)]
    >>> state = {}
    >>> average_grad(params, grads, state, mom=0.9)
    >>> momentum_step(params, grads, state, lr=0.1)
    >>> params[0]
    tensor([0.9500, 0.9500])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "Stepper",
    "adam_step",
    "average_grad",
    "average_sqr_grad",
    "get_state",
    "l2_reg",
    "lamb_step",
    "larc_step",
    "lion_step",
    "momentum_step",
    "qhadam_step",
    "radam_step",
    "rms_prop_step",
    "sgd_step",
    "weight_decay",
]

Stepper = Callable[..., "list[Tensor] | None"]
"""A stat or step: ``f(params, grads, state, *, step, **hypers) -> list[Tensor] | None``."""


def get_state(state: dict[str, list[Tensor]], name: str, params: list[Tensor]) -> list[Tensor]:
    """Return ``state[name]``, creating it as zeros shaped like ``params`` on first use.

    Args:
        state: the group's state, as given to a stepper.
        name: the entry to fetch.
        params: the parameters the entry is aligned with.

    Examples:
        >>> state = {}
        >>> get_state(state, "grad_avg", [torch.ones(3)])
        [tensor([0., 0., 0.])]
        >>> list(state)
        ['grad_avg']
    """
    found = state.get(name)
    if found is None:
        found = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        state[name] = found
    return found


def _norms(tensors: list[Tensor]) -> Tensor:
    """The L2 norm of each tensor, stacked into one 1-D tensor."""
    return torch.stack(torch._foreach_norm(tensors))


def _safe_ratio(num: Tensor, den: Tensor, limit: float | None = None) -> list[Tensor]:
    """``num / den`` per tensor, 1 where either norm is zero, capped at ``limit``; as 0-dim tensors."""
    ratio = torch.where((num > 0) & (den > 0), num / den, torch.ones_like(num))
    if limit is not None:
        ratio = ratio.clamp(max=limit)
    return list(ratio.unbind())


def weight_decay(
    params: list[Tensor], grads: list[Tensor], state: dict[str, list[Tensor]], *, lr: float, wd: float, **_: object
) -> None:
    """Decoupled weight decay (AdamW): ``p *= 1 - lr * wd``.

    Args:
        params: parameters, decayed in place.
        grads: unused.
        state: unused.
        lr: learning rate.
        wd: weight decay; 0 turns this step off.

    Examples:
        >>> p = [torch.ones(2)]
        >>> weight_decay(p, [torch.zeros(2)], {}, lr=0.1, wd=0.5)
        >>> p[0]
        tensor([0.9500, 0.9500])
    """
    if wd != 0:
        torch._foreach_mul_(params, 1 - lr * wd)


def l2_reg(
    params: list[Tensor], grads: list[Tensor], state: dict[str, list[Tensor]], *, wd: float, **_: object
) -> list[Tensor] | None:
    """L2 regularisation: the following steppers see ``grad + wd * p`` (``p.grad`` itself is unchanged).

    Args:
        params: parameters.
        grads: gradients.
        state: unused.
        wd: weight decay; 0 turns this step off.

    Examples:
        >>> l2_reg([torch.ones(2)], [torch.zeros(2)], {}, wd=0.1)
        [tensor([0.1000, 0.1000])]
    """
    if wd == 0:
        return None
    return list(torch._foreach_add(grads, params, alpha=wd))


def average_grad(
    params: list[Tensor],
    grads: list[Tensor],
    state: dict[str, list[Tensor]],
    *,
    mom: float,
    dampening: bool = False,
    **_: object,
) -> None:
    """Stat ``grad_avg``: ``mom * avg + grad`` (SGD momentum), or ``mom * avg + (1 - mom) * grad`` if ``dampening``.

    Args:
        params: parameters (shape the state).
        grads: gradients.
        state: receives ``grad_avg``.
        mom: momentum, beta1 for Adam-likes.
        dampening: use the exponential moving average (Adam) instead of the momentum buffer (SGD).

    Examples:
        >>> state = {"grad_avg": [torch.ones(2)]}
        >>> average_grad([torch.zeros(2)], [torch.full((2,), 3.0)], state, mom=0.5, dampening=True)
        >>> state["grad_avg"]
        [tensor([2., 2.])]
    """
    avg = get_state(state, "grad_avg", params)
    if dampening:
        torch._foreach_lerp_(avg, grads, 1 - mom)
    else:
        torch._foreach_mul_(avg, mom)
        torch._foreach_add_(avg, grads)


def average_sqr_grad(
    params: list[Tensor],
    grads: list[Tensor],
    state: dict[str, list[Tensor]],
    *,
    sqr_mom: float,
    dampening: bool = True,
    **_: object,
) -> None:
    """Stat ``sqr_avg``: ``sqr_mom * avg + (1 - sqr_mom) * grad**2`` (without ``dampening``: ``+ grad**2``).

    Args:
        params: parameters (shape the state).
        grads: gradients.
        state: receives ``sqr_avg``.
        sqr_mom: decay of the average, beta2 for Adam-likes.
        dampening: weight the new square by ``1 - sqr_mom``.

    Examples:
        >>> state = {}
        >>> average_sqr_grad([torch.zeros(1)], [torch.tensor([2.0])], state, sqr_mom=0.75)
        >>> state["sqr_avg"]
        [tensor([1.])]
    """
    avg = get_state(state, "sqr_avg", params)
    torch._foreach_mul_(avg, sqr_mom)
    torch._foreach_addcmul_(avg, grads, grads, 1 - sqr_mom if dampening else 1.0)


def sgd_step(
    params: list[Tensor], grads: list[Tensor], state: dict[str, list[Tensor]], *, lr: float, **_: object
) -> None:
    """Plain gradient step: ``p -= lr * grad``.

    Args:
        params: parameters, updated in place.
        grads: gradients.
        state: unused.
        lr: learning rate.

    Examples:
        >>> p = [torch.ones(2)]
        >>> sgd_step(p, [torch.full((2,), 2.0)], {}, lr=0.25)
        >>> p[0]
        tensor([0.5000, 0.5000])
    """
    torch._foreach_add_(params, grads, alpha=-lr)


def momentum_step(
    params: list[Tensor], grads: list[Tensor], state: dict[str, list[Tensor]], *, lr: float, **_: object
) -> None:
    """Momentum step: ``p -= lr * grad_avg`` (run ``average_grad`` before it).

    Args:
        params: parameters, updated in place.
        grads: unused.
        state: holds ``grad_avg``.
        lr: learning rate.

    Examples:
        >>> p = [torch.zeros(2)]
        >>> momentum_step(p, [torch.zeros(2)], {"grad_avg": [torch.ones(2)]}, lr=0.5)
        >>> p[0]
        tensor([-0.5000, -0.5000])
    """
    torch._foreach_add_(params, state["grad_avg"], alpha=-lr)


def rms_prop_step(
    params: list[Tensor], grads: list[Tensor], state: dict[str, list[Tensor]], *, lr: float, eps: float, **_: object
) -> None:
    """RMSProp step: ``p -= lr * g / (sqrt(sqr_avg) + eps)``, ``g`` being ``grad_avg`` if tracked, else the gradient.

    Args:
        params: parameters, updated in place.
        grads: gradients.
        state: holds ``sqr_avg`` (and ``grad_avg`` when momentum is on).
        lr: learning rate.
        eps: added to the denominator.

    Examples:
        >>> p = [torch.zeros(1)]
        >>> rms_prop_step(p, [torch.tensor([1.0])], {"sqr_avg": [torch.tensor([4.0])]}, lr=1.0, eps=0.0)
        >>> p[0]
        tensor([-0.5000])
    """
    denom = torch._foreach_sqrt(state["sqr_avg"])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, state.get("grad_avg", grads), denom, -lr)


def adam_step(
    params: list[Tensor],
    grads: list[Tensor],
    state: dict[str, list[Tensor]],
    *,
    lr: float,
    mom: float,
    sqr_mom: float,
    eps: float,
    step: int,
    **_: object,
) -> None:
    """Adam step with bias correction: ``p -= lr * m_hat / (sqrt(v_hat) + eps)``.

    Run ``average_grad(dampening=True)`` and ``average_sqr_grad`` first. The bias correction of ``v`` is folded into
    ``eps`` and the step size (``sqrt(v_hat) + eps = (sqrt(v) + eps * sqrt(bc2)) / sqrt(bc2)``), which saves a pass
    over the tensors; results agree with ``torch.optim.Adam`` to float rounding.

    Args:
        params: parameters, updated in place.
        grads: unused.
        state: holds ``grad_avg`` and ``sqr_avg``.
        lr: learning rate.
        mom: beta1.
        sqr_mom: beta2.
        eps: added to the denominator.
        step: 1-based step number, for the bias correction.

    Examples:
        >>> p = [torch.zeros(1)]
        >>> state = {"grad_avg": [torch.tensor([0.1])], "sqr_avg": [torch.tensor([0.01])]}
        >>> adam_step(p, [], state, lr=0.1, mom=0.9, sqr_mom=0.99, eps=0.0, step=1)
        >>> p[0]  # the first Adam step moves by lr * sign(grad)
        tensor([-0.1000])
    """
    root_bias2 = (1 - sqr_mom**step) ** 0.5
    denom = torch._foreach_sqrt(state["sqr_avg"])
    torch._foreach_add_(denom, eps * root_bias2)  # sqrt(v) + eps * sqrt(bias2): one pass less than dividing first
    torch._foreach_addcdiv_(params, state["grad_avg"], denom, -lr * root_bias2 / (1 - mom**step))


def radam_step(
    params: list[Tensor],
    grads: list[Tensor],
    state: dict[str, list[Tensor]],
    *,
    lr: float,
    mom: float,
    sqr_mom: float,
    eps: float,
    step: int,
    **_: object,
) -> None:
    """Rectified Adam step: an Adam step scaled by the variance rectification, or a momentum step while it is undefined.

    The rectification is defined once the length of the approximated moving average, ``rho_t``, exceeds 5.

    Args:
        params: parameters, updated in place.
        grads: unused.
        state: holds ``grad_avg`` and ``sqr_avg``.
        lr: learning rate.
        mom: beta1.
        sqr_mom: beta2.
        eps: added to the denominator.
        step: 1-based step number.

    Examples:
        >>> p = [torch.zeros(1)]
        >>> state = {"grad_avg": [torch.tensor([0.1])], "sqr_avg": [torch.tensor([0.01])]}
        >>> radam_step(p, [], state, lr=0.1, mom=0.9, sqr_mom=0.99, eps=0.0, step=1)
        >>> p[0]  # early steps are bias-corrected momentum steps: 0.1 * 0.1 / (1 - 0.9)
        tensor([-0.1000])
    """
    bias1, bias2 = 1 - mom**step, 1 - sqr_mom**step
    rho_inf = 2 / (1 - sqr_mom) - 1
    rho = rho_inf - 2 * step * sqr_mom**step / bias2
    if rho <= 5:
        torch._foreach_add_(params, state["grad_avg"], alpha=-lr / bias1)
        return
    rect = ((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) ** 0.5
    denom = torch._foreach_sqrt(state["sqr_avg"])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, state["grad_avg"], denom, -lr * rect * bias2**0.5 / bias1)


def qhadam_step(
    params: list[Tensor],
    grads: list[Tensor],
    state: dict[str, list[Tensor]],
    *,
    lr: float,
    mom: float,
    sqr_mom: float,
    eps: float,
    nu_1: float,
    nu_2: float,
    step: int,
    **_: object,
) -> None:
    """Quasi-hyperbolic Adam step: numerator and denominator mix the raw gradient with the Adam averages.

    ``p -= lr * ((1 - nu_1) g + nu_1 m_hat) / (sqrt((1 - nu_2) g**2 + nu_2 v_hat) + eps)``.

    Args:
        params: parameters, updated in place.
        grads: gradients.
        state: holds ``grad_avg`` and ``sqr_avg`` (dampened averages).
        lr: learning rate.
        mom: beta1.
        sqr_mom: beta2.
        eps: added to the denominator.
        nu_1: weight of the first moment against the gradient (0: SGD-like, 1: Adam).
        nu_2: weight of the second moment against the squared gradient.
        step: 1-based step number.

    Examples:
        >>> p = [torch.zeros(1)]
        >>> state = {"grad_avg": [torch.tensor([0.1])], "sqr_avg": [torch.tensor([0.01])]}
        >>> qhadam_step(p, [torch.tensor([1.0])], state, lr=0.1, mom=0.9, sqr_mom=0.99, eps=0.0,
        ...             nu_1=1.0, nu_2=1.0, step=1)
        >>> p[0]  # with nu_1 = nu_2 = 1 this is Adam
        tensor([-0.1000])
    """
    num = torch._foreach_mul(state["grad_avg"], nu_1 / (1 - mom**step))
    torch._foreach_add_(num, grads, alpha=1 - nu_1)
    denom = torch._foreach_mul(state["sqr_avg"], nu_2 / (1 - sqr_mom**step))
    torch._foreach_addcmul_(denom, grads, grads, 1 - nu_2)
    torch._foreach_sqrt_(denom)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, num, denom, -lr)


def lamb_step(
    params: list[Tensor],
    grads: list[Tensor],
    state: dict[str, list[Tensor]],
    *,
    lr: float,
    mom: float,
    sqr_mom: float,
    eps: float,
    wd: float,
    step: int,
    max_trust: float = 10.0,
    **_: object,
) -> None:
    """LAMB step: the Adam direction plus ``wd * p``, rescaled per tensor by ``||p|| / ||update||``.

    The trust ratio is 1 where either norm is zero and is capped at ``max_trust``.

    Args:
        params: parameters, updated in place.
        grads: unused.
        state: holds ``grad_avg`` and ``sqr_avg`` (dampened averages).
        lr: learning rate.
        mom: beta1.
        sqr_mom: beta2.
        eps: added to the denominator.
        wd: weight decay, part of the update before the trust ratio.
        step: 1-based step number.
        max_trust: cap on the trust ratio.

    Examples:
        >>> p = [torch.tensor([3.0, 4.0])]
        >>> state = {"grad_avg": [torch.tensor([0.1, 0.1])], "sqr_avg": [torch.tensor([0.01, 0.01])]}
        >>> lamb_step(p, [], state, lr=0.1, mom=0.9, sqr_mom=0.99, eps=0.0, wd=0.0, step=1)
        >>> p[0]  # the update [1, 1] is rescaled to norm 5, then times lr
        tensor([2.6464, 3.6464])
    """
    denom = torch._foreach_sqrt(state["sqr_avg"])
    torch._foreach_div_(denom, (1 - sqr_mom**step) ** 0.5)
    torch._foreach_add_(denom, eps)
    torch._foreach_mul_(denom, 1 - mom**step)
    update = torch._foreach_div(state["grad_avg"], denom)
    if wd != 0:
        torch._foreach_add_(update, params, alpha=wd)
    torch._foreach_mul_(update, _safe_ratio(_norms(params), _norms(list(update)), max_trust))
    torch._foreach_add_(params, update, alpha=-lr)


def larc_step(
    params: list[Tensor],
    grads: list[Tensor],
    state: dict[str, list[Tensor]],
    *,
    lr: float,
    trust_coeff: float,
    eps: float,
    clip: bool = False,
    **_: object,
) -> None:
    """LARS/LARC step: ``p -= lr * r * g`` with the layer-wise ratio ``r = trust_coeff * ||p|| / (||g|| + eps)``.

    ``g`` is ``grad_avg`` when momentum is tracked, else the gradient. ``r`` is 1 where either norm is zero; with
    ``clip`` (LARC) it is capped at 1, so the local rate never exceeds ``lr``.

    Args:
        params: parameters, updated in place.
        grads: gradients.
        state: may hold ``grad_avg``.
        lr: learning rate.
        trust_coeff: scale of the ratio.
        eps: added to the gradient norm.
        clip: cap the ratio at 1.

    Examples:
        >>> p = [torch.tensor([3.0, 4.0])]
        >>> larc_step(p, [torch.tensor([0.0, 2.0])], {}, lr=1.0, trust_coeff=0.1, eps=0.0)
        >>> p[0]  # r = 0.1 * 5 / 2
        tensor([3.0000, 3.5000])
    """
    direction = state.get("grad_avg", grads)
    ratios = _safe_ratio(_norms(params) * trust_coeff, _norms(direction) + eps, 1.0 if clip else None)
    update = torch._foreach_mul(direction, ratios)
    torch._foreach_add_(params, update, alpha=-lr)


def lion_step(
    params: list[Tensor],
    grads: list[Tensor],
    state: dict[str, list[Tensor]],
    *,
    lr: float,
    mom: float,
    sqr_mom: float,
    **_: object,
) -> None:
    """Lion step: ``p -= lr * sign(lerp(m, g, 1 - mom))``, then ``m = lerp(m, g, 1 - sqr_mom)``.

    Lion keeps one average, ``grad_avg``, created here; its two betas are named ``mom`` and ``sqr_mom`` like Adam's.

    Args:
        params: parameters, updated in place.
        grads: gradients.
        state: receives ``grad_avg``.
        lr: learning rate.
        mom: beta1, mixes the average and the gradient for the update.
        sqr_mom: beta2, the decay of the tracked average.

    Examples:
        >>> p, state = [torch.zeros(2)], {}
        >>> lion_step(p, [torch.tensor([3.0, -0.5])], state, lr=0.1, mom=0.9, sqr_mom=0.99)
        >>> p[0], state["grad_avg"][0]
        (tensor([-0.1000,  0.1000]), tensor([ 0.0300, -0.0050]))
    """
    avg = get_state(state, "grad_avg", params)
    update = torch._foreach_lerp(avg, grads, 1 - mom)
    torch._foreach_sign_(update)
    torch._foreach_add_(params, update, alpha=-lr)
    torch._foreach_lerp_(avg, grads, 1 - sqr_mom)
