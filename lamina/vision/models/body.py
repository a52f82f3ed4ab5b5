"""Turn a classification network into a body (everything before its pooling) and put a new head on it.

``create_body`` finds the cut by probing the network with a dummy input, and adapts the first convolution to any
number of input channels; ``create_head`` builds the pooling + linear head; ``create_classifier`` joins the two as
``nn.Sequential(body, head)``, which ``body_splitter`` splits into two parameter groups (freezing, discriminative
learning rates).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lamina.callbacks.hooks import hook_outputs
from lamina.nn.layers import AdaptiveConcatPool2d, Flatten, SigmoidRange

__all__ = [
    "adapt_first_conv",
    "body_splitter",
    "create_body",
    "create_classifier",
    "create_head",
    "find_cut",
    "num_features_model",
]

_POOLING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, AdaptiveConcatPool2d, nn.Flatten, Flatten, nn.Linear)


def _first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The qualified name and the module of the first ``nn.Conv2d`` of ``model`` (in registration order)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d: it is not an image network (or pass n_in=None)")


def _collapses(child: nn.Module, before: Any, after: Any) -> bool:
    """Whether ``child`` (output ``after``, input shape ``before``) pools or flattens away the spatial dimensions."""
    if isinstance(child, _POOLING) or not isinstance(after, Tensor) or after.ndim != 4:
        return True
    return tuple(after.shape[-2:]) == (1, 1) and before is not None and tuple(before[-2:]) != (1, 1)


def find_cut(model: nn.Module, n_in: int | None = None, size: int = 128) -> int:
    """The index of the first child of ``model`` that pools or flattens: the body is every child before it.

    The model runs once on zeros of ``size x size`` (eval mode, no gradients); a child counts as pooling when it is an
    adaptive pooling, flatten or linear layer, gives a non 4-d output, or shrinks its input to ``1 x 1``. Children the
    forward never calls are skipped.

    Args:
        model: a classification network whose children run in order (stem, stages, pool, head).
        n_in: the input channels; those of its first conv when ``None``.
        size: the side of the probe image.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1))
        >>> find_cut(net)
        2
    """
    children = list(model.children())
    n_in = _first_conv(model)[1].in_channels if n_in is None else n_in
    param = next(model.parameters(), None)
    x = torch.zeros(2, n_in, size, size, device=param.device if param is not None else None)
    was_training = model.training
    try:
        with hook_outputs(children) as hooks, torch.no_grad():
            model.eval()
            model(x)
    except Exception as e:
        raise ValueError(f"probing {type(model).__name__} with a {tuple(x.shape)} input failed ({e}): pass cut=") from e
    finally:
        model.train(was_training)
    before: Any = x.shape
    for i, (child, out) in enumerate(zip(children, hooks.stored)):
        if out is None:
            continue
        if _collapses(child, before, out):
            if i == 0:
                break
            return i
        before = out.shape
    raise ValueError(
        f"cannot find where {type(model).__name__} pools: no child after the first pools or flattens a {size}x{size} "
        "input; pass cut= (an index of its children, or a function model -> body)"
    )


def _channel_mix(n_old: int, n_new: int) -> Tensor:
    """``n_new x n_old``: how the new conv's filter for each new channel is made from the old filters.

    Fewer channels: old channel ``i`` reads new channel ``i % n_new``, so the filters reading one channel are summed.
    More channels: new channel ``j`` repeats old channel ``j % n_old``; a filter repeated ``k`` times is divided by
    ``k``, so that repeating the channels of an input gives the old output.
    """
    mix = torch.zeros(n_new, n_old)
    if n_new < n_old:
        mix[torch.arange(n_old) % n_new, torch.arange(n_old)] = 1.0
    else:
        cols = torch.arange(n_new) % n_old
        mix[torch.arange(n_new), cols] = 1.0 / torch.bincount(cols, minlength=n_old)[cols].float()
    return mix


def adapt_first_conv(model: nn.Module, n_in: int) -> nn.Module:
    """Replace (in place) the first ``nn.Conv2d`` of ``model`` by one taking ``n_in`` channels; returns ``model``.

    The new filters are made from the old ones so that the network gives the same output when the channels of the
    input are repeated to fit: with ``c`` old channels, for ``n_in < c`` the new model on ``x`` equals the old model on
    ``x[:, [i % n_in for i in range(c)]]`` (e.g. a grey image repeated three times: the RGB filters are summed); for
    ``n_in > c`` the new model on ``x[:, [j % c for j in range(n_in)]]`` equals the old one on ``x`` (repeated filters
    are shared out). Nothing changes when ``n_in == c``.

    Args:
        model: the network (or body) to adapt.
        n_in: the number of input channels it should take.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> x = torch.randn(1, 1, 5, 5)
        >>> old = net(x.repeat(1, 3, 1, 1))
        >>> torch.allclose(adapt_first_conv(net, 1)(x), old, atol=1e-6), net[0].in_channels
        (True, 1)
    """
    if n_in < 1:
        raise ValueError(f"n_in must be >= 1 (the input channels), got {n_in}")
    name, conv = _first_conv(model)
    if conv.in_channels == n_in:
        return model
    if conv.groups != 1:
        raise ValueError(f"cannot adapt the grouped first conv {name!r} (groups={conv.groups}) to n_in={n_in}")
    new = nn.Conv2d(n_in, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,  # type: ignore[arg-type]
                    bias=conv.bias is not None, padding_mode=conv.padding_mode)  # fmt: skip
    new = new.to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        mix = _channel_mix(conv.in_channels, n_in).to(conv.weight)
        new.weight.copy_(torch.einsum("ji,oi...->oj...", mix, conv.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)  # type: ignore[union-attr]
    if not name:
        raise ValueError("the model itself is a single nn.Conv2d: build a new one with n_in input channels instead")
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, new)
    return model


def create_body(
    model: nn.Module, cut: int | Callable[[nn.Module], nn.Module] | None = None, n_in: int = 3
) -> nn.Module:
    """The body of a classification network: its layers before the pooling, taking ``n_in`` input channels.

    The body shares its layers with ``model`` (the first conv is replaced in place when ``n_in`` differs, see
    ``adapt_first_conv``).

    Args:
        model: a classification network (children: stem, stages, pooling, classifier).
        cut: keep the children before this index, or call ``cut(model)`` to get the body; found with ``find_cut``
            when ``None``.
        n_in: the input channels of the body.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1))
        >>> body = create_body(net, n_in=1)
        >>> body(torch.zeros(2, 1, 9, 9)).shape
        torch.Size([2, 8, 4, 4])
    """
    if cut is None:
        cut = find_cut(model)
    if callable(cut):
        body = cut(model)
    elif isinstance(cut, int):
        children = list(model.children())
        if not children[:cut]:
            raise ValueError(f"cut={cut} keeps none of the {len(children)} children of {type(model).__name__}")
        body = nn.Sequential(*children[:cut])
    else:
        raise TypeError(f"cut must be an int, a function model -> body, or None, got {type(cut).__name__}")
    return adapt_first_conv(body, n_in)


def num_features_model(model: nn.Module, sizes: Sequence[int] = (64, 128, 256)) -> int:
    """The channels of the output of ``model`` (a body), found by running a small zero input through it.

    Args:
        model: the body.
        sizes: the square input sides tried in turn, until one runs (small first: cheap).

    Examples:
        >>> num_features_model(nn.Sequential(nn.Conv2d(3, 5, 3), nn.Conv2d(5, 7, 3, stride=2)))
        7
    """
    n_in = _first_conv(model)[1].in_channels
    param = next(model.parameters(), None)
    was_training, errors = model.training, []
    model.eval()
    try:
        for size in sizes:
            try:
                with torch.no_grad():
                    out = model(torch.zeros(1, n_in, size, size, device=param.device if param is not None else None))
                return int(out.shape[1])
            except RuntimeError as e:
                errors.append(f"{size}: {e}")
    finally:
        model.train(was_training)
    raise ValueError(f"{type(model).__name__} failed on every probe size {list(sizes)}: {errors}")


def _dropouts(ps: float | Sequence[float], n_layers: int) -> list[float]:
    """One dropout probability per linear layer: a float ``p`` gives ``p / 2`` everywhere but ``p`` for the last."""
    if isinstance(ps, (int, float)):
        return [ps / 2] * (n_layers - 1) + [float(ps)]
    if len(ps) != n_layers:
        raise ValueError(f"ps needs one dropout per linear layer ({n_layers}), got {len(ps)}: {list(ps)}")
    return [float(p) for p in ps]


def _dropout(p: float) -> list[nn.Module]:
    return [nn.Dropout(p)] if p > 0 else []


def _norm_first_blocks(sizes: list[int], dropouts: list[float], first_bn: bool) -> list[nn.Module]:
    """Per linear layer: batch norm (not before the first unless ``first_bn``), dropout, linear, ReLU (not last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers += [nn.BatchNorm1d(a)] if first_bn or i > 0 else []
        layers += [*_dropout(dropouts[i]), nn.Linear(a, b)]
        layers += [nn.ReLU(inplace=True)] if i < len(sizes) - 2 else []
    return layers


def _linear_first_blocks(sizes: list[int], dropouts: list[float], first_bn: bool) -> list[nn.Module]:
    """(Batch norm), dropout on the pooled features; per hidden layer: linear, ReLU, batch norm, dropout; linear."""
    layers: list[nn.Module] = [*([nn.BatchNorm1d(sizes[0])] if first_bn else []), *_dropout(dropouts[0])]
    for i, (a, b) in enumerate(itertools.pairwise(sizes[:-1])):
        layers += [nn.Linear(a, b, bias=False), nn.ReLU(inplace=True), nn.BatchNorm1d(b), *_dropout(dropouts[i + 1])]
    return [*layers, nn.Linear(sizes[-2], sizes[-1])]


def create_head(
    nf: int,
    n_out: int,
    lin_ftrs: Sequence[int] | None = None,
    ps: float | Sequence[float] = 0.5,
    concat_pool: bool = True,
    first_bn: bool = True,
    bn_final: bool = False,
    lin_first: bool = False,
    y_range: tuple[float, float] | None = None,
) -> nn.Sequential:
    """A classifier head for a body with ``nf`` output channels: pool, flatten, then (batch norm, dropout, linear)s.

    Args:
        nf: the channels of the body's output.
        n_out: the number of outputs (classes).
        lin_ftrs: the sizes of the hidden linear layers; ``[512]`` when ``None``.
        ps: dropout before each linear layer (a float ``p``: ``p / 2`` before the hidden ones, ``p`` before the last).
        concat_pool: pool with max and average concatenated (``2 * nf`` features) instead of the average only.
        first_bn: batch norm the pooled features before the first linear layer.
        bn_final: batch norm the outputs.
        lin_first: put each hidden linear layer (and its ReLU) before its batch norm and dropout.
        y_range: squash the outputs into ``(low, high)`` with a sigmoid.

    Examples:
        >>> head = create_head(16, 3, lin_ftrs=[8])
        >>> head.eval()(torch.randn(2, 16, 4, 4)).shape, head[2].num_features
        (torch.Size([2, 3]), 32)
    """
    if nf < 1 or n_out < 1:
        raise ValueError(f"nf and n_out must be >= 1, got nf={nf}, n_out={n_out}")
    sizes = [2 * nf if concat_pool else nf, *([512] if lin_ftrs is None else lin_ftrs), n_out]
    dropouts = _dropouts(ps, len(sizes) - 1)
    pool: nn.Module = AdaptiveConcatPool2d() if concat_pool else nn.AdaptiveAvgPool2d(1)
    blocks = _linear_first_blocks if lin_first else _norm_first_blocks
    layers: list[nn.Module] = [pool, Flatten(), *blocks(sizes, dropouts, first_bn)]
    if bn_final:
        layers.append(nn.BatchNorm1d(sizes[-1], momentum=0.01))
    if y_range is not None:
        layers.append(SigmoidRange(*y_range))
    return nn.Sequential(*layers)


def create_classifier(
    model: nn.Module,
    n_out: int,
    cut: int | Callable[[nn.Module], nn.Module] | None = None,
    n_in: int = 3,
    **head_kwargs: Any,
) -> nn.Sequential:
    """``nn.Sequential(body, head)``: the body of ``model`` (see ``create_body``) with a new ``create_head`` head.

    Args:
        model: the classification network to take the body from.
        n_out: the number of outputs of the new head.
        cut: where to cut ``model`` (see ``create_body``).
        n_in: the input channels of the body.
        **head_kwargs: passed to ``create_head``.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1))
        >>> clf = create_classifier(net, 5, lin_ftrs=[4])
        >>> clf.eval()(torch.zeros(2, 3, 16, 16)).shape
        torch.Size([2, 5])
    """
    body = create_body(model, cut=cut, n_in=n_in)
    return nn.Sequential(body, create_head(num_features_model(body), n_out, **head_kwargs))


def body_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Two parameter groups of a classifier ``nn.Sequential(body, head)``: the body's, then the head's.

    Examples:
        >>> clf = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2))
        >>> [len(group) for group in body_splitter(clf)]
        [2, 2]
    """
    children = list(model.children())
    if len(children) != 2:
        raise ValueError(
            f"body_splitter expects nn.Sequential(body, head), got {type(model).__name__} with {len(children)} "
            "children: build the model with create_classifier, or write a splitter for it"
        )
    return [list(children[0].parameters()), list(children[1].parameters())]
