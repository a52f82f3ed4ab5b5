"""The composable optimizer: pure stepper functions, one ``Optimizer`` class and the usual factories.

Examples:
    >>> import torch
    >>> from lamina.optim import Adam
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = Adam([w], lr=0.1, wd=0.0)
    >>> w.grad = torch.ones(2)
    >>> opt.step()
    >>> w.detach()
    tensor([-0.1000, -0.1000])
"""

from lamina.optim.factories import LAMB, LARS, SGD, Adam, Lion, QHAdam, RAdam, RMSProp, ranger
from lamina.optim.optimizer import BaseOptimizer, Lookahead, Optimizer, OptimWrapper, parse_param_groups
from lamina.optim.steppers import (
    Stepper,
    adam_step,
    average_grad,
    average_sqr_grad,
    get_state,
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

__all__ = [
    "LAMB",
    "LARS",
    "SGD",
    "Adam",
    "BaseOptimizer",
    "Lion",
    "Lookahead",
    "OptimWrapper",
    "Optimizer",
    "QHAdam",
    "RAdam",
    "RMSProp",
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
    "parse_param_groups",
    "qhadam_step",
    "radam_step",
    "ranger",
    "rms_prop_step",
    "sgd_step",
    "weight_decay",
]
