"""Ready-made optimizers: each is an :class:`Optimizer` with a list of steppers and default hyper-parameters.

Every factory takes ``params`` (tensors, lists of tensors, or dicts ``{"params": [...], **overrides}``), ``lr``, its
hyper-parameters as keywords, and ``no_decay`` (tensors that get no weight decay). ``mom`` is the momentum of SGD and
beta1 of the Adam family; ``sqr_mom`` is beta2. ``decouple_wd=True`` decays weights directly (``p *= 1 - lr * wd``,
AdamW); ``False`` adds ``wd * p`` to the gradient (L2, as ``torch.optim.SGD``/``Adam`` do).

A new optimizer is a few lines: write the step, list it after the stats it needs.

Examples:
    >>> import torch
    >>> from lamina.optim import Optimizer, weight_decay
    >>> def sign_step(params, grads, state, *, lr, **_):
    ...     torch._foreach_add_(params, torch._foreach_sign(grads), alpha=-lr)
    >>> def SignSGD(params, lr=1e-3, wd=0.0, no_decay=()):
    ...     return Optimizer(params, [weight_decay, sign_step], lr=lr, wd=wd, no_decay=no_decay)
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> w.grad = torch.tensor([3.0, -0.2])
    >>> SignSGD([w], lr=0.1).step()
    >>> w.detach()
    tensor([-0.1000,  0.1000])
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from torch import Tensor

from lamina.optim.optimizer import Lookahead, Optimizer, ParamsLike
from lamina.optim.steppers import (
    Stepper,
    adam_step,
    average_grad,
    average_sqr_grad,
    l2_reg,
    lamb_step,
    larc_step,
    lion_step,
    momentum_step,
    qhadam_step,
    radam_step,
    rms_prop_step,
    sgd_step,
    weight_decay,
)

__all__ = ["LAMB", "LARS", "SGD", "Adam", "Lion", "QHAdam", "RAdam", "RMSProp", "ranger"]

_ema: Stepper = partial(average_grad, dampening=True)


def _decay(decouple_wd: bool) -> Stepper:
    return weight_decay if decouple_wd else l2_reg


def SGD(
    params: ParamsLike,
    lr: float = 1e-3,
    *,
    mom: float = 0.0,
    wd: float = 0.0,
    decouple_wd: bool = True,
    no_decay: Iterable[Tensor] = (),
) -> Optimizer:
    """Stochastic gradient descent, with momentum when ``mom > 0`` at construction.

    With ``decouple_wd=False`` it computes what ``torch.optim.SGD(momentum=mom, weight_decay=wd)`` does.

    Args:
        params: the parameter groups.
        lr: learning rate.
        mom: momentum (0: plain SGD; the buffer exists only if ``mom > 0`` here).
        wd: weight decay.
        decouple_wd: decoupled weight decay instead of L2.
        no_decay: tensors without weight decay.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.ones(1))
        >>> opt = SGD([w], lr=0.1, mom=0.9)
        >>> w.grad = torch.ones(1)
        >>> opt.step()
        >>> w.detach()
        tensor([0.9000])
    """
    steps: list[Stepper] = [_decay(decouple_wd)] + ([average_grad, momentum_step] if mom != 0 else [sgd_step])
    return Optimizer(params, steps, lr=lr, mom=mom, wd=wd, no_decay=no_decay)


def RMSProp(
    params: ParamsLike,
    lr: float = 1e-2,
    *,
    mom: float = 0.0,
    sqr_mom: float = 0.99,
    eps: float = 1e-8,
    wd: float = 0.0,
    decouple_wd: bool = True,
    no_decay: Iterable[Tensor] = (),
) -> Optimizer:
    """RMSProp: divide the gradient (or its momentum average when ``mom > 0``) by the root mean square of gradients.

    With ``mom=0`` it computes what ``torch.optim.RMSprop(alpha=sqr_mom)`` does.

    Args:
        params: the parameter groups.
        lr: learning rate.
        mom: momentum of the numerator (the average exists only if ``mom > 0`` here).
        sqr_mom: decay of the mean square.
        eps: added to the denominator.
        wd: weight decay.
        decouple_wd: decoupled weight decay instead of L2.
        no_decay: tensors without weight decay.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = RMSProp([w], lr=0.01, sqr_mom=0.75, eps=0.0)
        >>> w.grad = torch.ones(1)
        >>> opt.step()
        >>> w.detach()  # 0.01 / sqrt(0.25)
        tensor([-0.0200])
    """
    momentum: list[Stepper] = [average_grad] if mom != 0 else []
    steps = [_decay(decouple_wd), average_sqr_grad, *momentum, rms_prop_step]
    return Optimizer(params, steps, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, no_decay=no_decay)


def Adam(
    params: ParamsLike,
    lr: float = 1e-3,
    *,
    mom: float = 0.9,
    sqr_mom: float = 0.99,
    eps: float = 1e-5,
    wd: float = 0.01,
    decouple_wd: bool = True,
    no_decay: Iterable[Tensor] = (),
) -> Optimizer:
    """Adam; with ``wd > 0`` and ``decouple_wd`` (the default) this is AdamW.

    Matches ``torch.optim.AdamW(betas=(mom, sqr_mom))``, or ``torch.optim.Adam`` with ``decouple_wd=False``.

    Args:
        params: the parameter groups.
        lr: learning rate.
        mom: beta1.
        sqr_mom: beta2.
        eps: added to the denominator.
        wd: weight decay.
        decouple_wd: decoupled weight decay (AdamW) instead of L2.
        no_decay: tensors without weight decay.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> opt = Adam([w], lr=0.1, wd=0.0)
        >>> w.grad = torch.tensor([2.0, -3.0])
        >>> opt.step()
        >>> w.detach()  # the first step moves each weight by about lr
        tensor([-0.1000,  0.1000])
    """
    steps: list[Stepper] = [_decay(decouple_wd), _ema, average_sqr_grad, adam_step]
    return Optimizer(params, steps, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, no_decay=no_decay)


def RAdam(
    params: ParamsLike,
    lr: float = 1e-3,
    *,
    mom: float = 0.9,
    sqr_mom: float = 0.99,
    eps: float = 1e-5,
    wd: float = 0.0,
    decouple_wd: bool = True,
    no_decay: Iterable[Tensor] = (),
) -> Optimizer:
    """Rectified Adam: momentum steps until the variance estimate is reliable, then rectified Adam steps.

    Matches ``torch.optim.RAdam(betas=(mom, sqr_mom), decoupled_weight_decay=decouple_wd)``.

    Args:
        params: the parameter groups.
        lr: learning rate.
        mom: beta1.
        sqr_mom: beta2.
        eps: added to the denominator.
        wd: weight decay.
        decouple_wd: decoupled weight decay instead of L2.
        no_decay: tensors without weight decay.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = RAdam([w], lr=0.1)
        >>> w.grad = torch.ones(1)
        >>> opt.step()
        >>> w.detach()
        tensor([-0.1000])
    """
    steps: list[Stepper] = [_decay(decouple_wd), _ema, average_sqr_grad, radam_step]
    return Optimizer(params, steps, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, no_decay=no_decay)


def QHAdam(
    params: ParamsLike,
    lr: float = 1e-3,
    *,
    mom: float = 0.999,
    sqr_mom: float = 0.999,
    nu_1: float = 0.7,
    nu_2: float = 1.0,
    eps: float = 1e-8,
    wd: float = 0.0,
    decouple_wd: bool = True,
    no_decay: Iterable[Tensor] = (),
) -> Optimizer:
    """Quasi-hyperbolic Adam: Adam whose moments are mixed with the raw gradient by ``nu_1`` and ``nu_2``.

    Args:
        params: the parameter groups.
        lr: learning rate.
        mom: beta1.
        sqr_mom: beta2.
        nu_1: weight of the first moment against the gradient.
        nu_2: weight of the second moment against the squared gradient.
        eps: added to the denominator.
        wd: weight decay.
        decouple_wd: decoupled weight decay instead of L2.
        no_decay: tensors without weight decay.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = QHAdam([w], lr=0.1)
        >>> w.grad = torch.ones(1)
        >>> opt.step()
        >>> w.detach()
        tensor([-0.1000])
    """
    steps: list[Stepper] = [_decay(decouple_wd), _ema, average_sqr_grad, qhadam_step]
    hypers = {"mom": mom, "sqr_mom": sqr_mom, "nu_1": nu_1, "nu_2": nu_2, "eps": eps, "wd": wd}
    return Optimizer(params, steps, lr=lr, no_decay=no_decay, **hypers)


def LARS(
    params: ParamsLike,
    lr: float = 1e-3,
    *,
    mom: float = 0.9,
    trust_coeff: float = 0.02,
    eps: float = 1e-8,
    wd: float = 0.0,
    clip: bool = True,
    decouple_wd: bool = True,
    no_decay: Iterable[Tensor] = (),
) -> Optimizer:
    """LARS/LARC: momentum SGD whose step is scaled per tensor by ``trust_coeff * ||p|| / ||g||``.

    Args:
        params: the parameter groups.
        lr: learning rate.
        mom: momentum (the buffer exists only if ``mom > 0`` here).
        trust_coeff: scale of the layer-wise ratio.
        eps: added to the gradient norm.
        wd: weight decay.
        clip: cap the ratio at 1 (LARC), so no tensor moves faster than ``lr``.
        decouple_wd: decoupled weight decay instead of L2.
        no_decay: tensors without weight decay.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> opt = LARS([w], lr=1.0, mom=0.0, trust_coeff=0.1, eps=0.0, clip=False)
        >>> w.grad = torch.tensor([0.0, 2.0])
        >>> opt.step()
        >>> w.detach()
        tensor([3.0000, 3.5000])
    """
    momentum: list[Stepper] = [average_grad] if mom != 0 else []
    steps: list[Stepper] = [_decay(decouple_wd), *momentum, partial(larc_step, clip=clip)]
    return Optimizer(params, steps, lr=lr, mom=mom, trust_coeff=trust_coeff, eps=eps, wd=wd, no_decay=no_decay)


def LAMB(
    params: ParamsLike,
    lr: float = 1e-3,
    *,
    mom: float = 0.9,
    sqr_mom: float = 0.99,
    eps: float = 1e-5,
    wd: float = 0.0,
    no_decay: Iterable[Tensor] = (),
) -> Optimizer:
    """LAMB: the Adam update plus ``wd * p``, rescaled per tensor by ``||p|| / ||update||`` (capped at 10).

    Args:
        params: the parameter groups.
        lr: learning rate.
        mom: beta1.
        sqr_mom: beta2.
        eps: added to the denominator.
        wd: weight decay, inside the trust-ratio update.
        no_decay: tensors without weight decay.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> opt = LAMB([w], lr=0.1, eps=0.0)
        >>> w.grad = torch.ones(2)
        >>> opt.step()
        >>> w.detach()
        tensor([2.6464, 3.6464])
    """
    steps: list[Stepper] = [_ema, average_sqr_grad, lamb_step]
    return Optimizer(params, steps, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, no_decay=no_decay)


def Lion(
    params: ParamsLike,
    lr: float = 1e-4,
    *,
    mom: float = 0.9,
    sqr_mom: float = 0.99,
    wd: float = 0.0,
    no_decay: Iterable[Tensor] = (),
) -> Optimizer:
    """Lion: step by the sign of a momentum average; use a 3-10x smaller ``lr`` and larger ``wd`` than AdamW.

    Args:
        params: the parameter groups.
        lr: learning rate.
        mom: beta1, mixes average and gradient for the update.
        sqr_mom: beta2, decay of the tracked average.
        wd: decoupled weight decay.
        no_decay: tensors without weight decay.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> opt = Lion([w], lr=0.1)
        >>> w.grad = torch.tensor([5.0, -0.01])
        >>> opt.step()
        >>> w.detach()
        tensor([-0.1000,  0.1000])
    """
    return Optimizer(params, [weight_decay, lion_step], lr=lr, mom=mom, sqr_mom=sqr_mom, wd=wd, no_decay=no_decay)


def ranger(
    params: ParamsLike,
    lr: float = 1e-3,
    *,
    mom: float = 0.95,
    sqr_mom: float = 0.99,
    eps: float = 1e-6,
    wd: float = 0.01,
    k: int = 6,
    alpha: float = 0.5,
    decouple_wd: bool = True,
    no_decay: Iterable[Tensor] = (),
) -> Lookahead:
    """Ranger: ``Lookahead(RAdam(...), k, alpha)``.

    Args:
        params: the parameter groups.
        lr: learning rate.
        mom: beta1.
        sqr_mom: beta2.
        eps: added to the denominator.
        wd: weight decay.
        k: fast steps between syncs of the slow weights.
        alpha: how far slow weights move towards the fast ones.
        decouple_wd: decoupled weight decay instead of L2.
        no_decay: tensors without weight decay.

    Examples:
        >>> import torch
        >>> opt = ranger([torch.nn.Parameter(torch.zeros(1))])
        >>> type(opt).__name__, type(opt.opt).__name__, opt.k
        ('Lookahead', 'Optimizer', 6)
    """
    inner = RAdam(params, lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, decouple_wd=decouple_wd, no_decay=no_decay)
    return Lookahead(inner, k=k, alpha=alpha)
