"""XResNet: the "bag of tricks" ResNet (He et al. 2018, ResNet-D) built from :class:`lamina.nn.layers.ResBlock`.

Compared with the original ResNet: a stem of three 3x3 convs instead of one 7x7, shortcuts that average-pool
before their 1x1 projection, and the last norm of every residual branch initialised to zero so each block starts
as the identity. Options: the activation (``"relu"``, ``"mish"``, ``"silu"``), squeeze-and-excitation and
self-attention.
"""

from __future__ import annotations

from torch import nn

from lamina.nn.layers import ConvLayer, Flatten, ResBlock
from lamina.nn.registry import register_model

__all__ = ["ACTIVATIONS", "XResNet", "xresnet18", "xresnet34", "xresnet50", "xresnet101"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "mish": nn.Mish, "silu": nn.SiLU}
"""Activation names accepted by :class:`XResNet` (names keep the model's arguments JSON-safe)."""


def _activation(act_cls: str | type[nn.Module]) -> type[nn.Module]:
    if isinstance(act_cls, str):
        if act_cls.lower() not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act_cls!r}: use one of {sorted(ACTIVATIONS)} or an nn.Module class")
        return ACTIVATIONS[act_cls.lower()]
    return act_cls


class XResNet(nn.Sequential):
    """An XResNet as an ``nn.Sequential``: stem, max-pool, four stages of :class:`ResBlock`, then the head.

    Children: ``0..2`` the stem convs, ``3`` max-pool, ``4..7`` the stages, ``8`` pool, ``9`` flatten,
    ``10`` dropout, ``11`` the linear classifier; ``model[:8]`` is the body.

    Args:
        expansion: 1 (basic blocks) or 4 (bottlenecks).
        layers: blocks per stage, four numbers.
        n_out: number of classes.
        c_in: input channels.
        act_cls: the activation, a name of :data:`ACTIVATIONS` or an ``nn.Module`` class.
        se: squeeze-and-excitation in every block.
        sa: self-attention in the last block of the first stage.
        p: dropout before the classifier.

    Examples:
        >>> import torch
        >>> XResNet(1, [1, 1, 1, 1], n_out=4, act_cls="mish")(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 4])
        >>> XResNet(1, [1, 1, 1, 1])[:8](torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 512, 2, 2])
    """

    def __init__(
        self,
        expansion: int,
        layers: list[int],
        n_out: int = 1000,
        c_in: int = 3,
        act_cls: str | type[nn.Module] = "relu",
        se: bool = False,
        sa: bool = False,
        p: float = 0.0,
    ) -> None:
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be four block counts >= 1 (e.g. [2, 2, 2, 2]), got {layers}")
        if n_out < 1 or not 0 <= p < 1:
            raise ValueError(f"n_out must be >= 1 and 0 <= p < 1, got n_out={n_out}, p={p}")
        act = _activation(act_cls)
        sizes = [c_in, 32, 32, 64]
        stem = [ConvLayer(sizes[i], sizes[i + 1], stride=2 if i == 0 else 1, act=act) for i in range(3)]
        stages, ni = [], 64
        for i, (width, n_blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            nf = width * expansion
            blocks = [
                ResBlock(
                    ni if j == 0 else nf,
                    nf,
                    stride=2 if (i > 0 and j == 0) else 1,
                    expansion=expansion,
                    act=act,
                    se=se,
                    sa=sa and i == 0 and j == n_blocks - 1,
                )
                for j in range(n_blocks)
            ]
            stages.append(nn.Sequential(*blocks))
            ni = nf
        head = [nn.AdaptiveAvgPool2d(1), Flatten(), nn.Dropout(p), nn.Linear(ni, n_out)]
        super().__init__(*stem, nn.MaxPool2d(3, stride=2, padding=1), *stages, *head)

    def __getitem__(self, idx: slice | int) -> nn.Module:
        """A child by index, or a slice of the children as a plain ``nn.Sequential`` (``model[:8]``, the body)."""
        if isinstance(idx, slice):
            return nn.Sequential(*list(self.children())[idx])
        return super().__getitem__(idx)


@register_model("xresnet18")
def xresnet18(n_out: int = 1000, c_in: int = 3, act_cls: str = "relu", se: bool = False, sa: bool = False) -> XResNet:
    """XResNet-18: basic blocks ``[2, 2, 2, 2]``. Arguments as :class:`XResNet`.

    Examples:
        >>> import torch
        >>> xresnet18(n_out=2)(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 2])
    """
    return XResNet(1, [2, 2, 2, 2], n_out=n_out, c_in=c_in, act_cls=act_cls, se=se, sa=sa)


@register_model("xresnet34")
def xresnet34(n_out: int = 1000, c_in: int = 3, act_cls: str = "relu", se: bool = False, sa: bool = False) -> XResNet:
    """XResNet-34: basic blocks ``[3, 4, 6, 3]``. Arguments as :class:`XResNet`.

    Examples:
        >>> xresnet34(n_out=5)[-1].out_features
        5
    """
    return XResNet(1, [3, 4, 6, 3], n_out=n_out, c_in=c_in, act_cls=act_cls, se=se, sa=sa)


@register_model("xresnet50")
def xresnet50(n_out: int = 1000, c_in: int = 3, act_cls: str = "relu", se: bool = False, sa: bool = False) -> XResNet:
    """XResNet-50: bottleneck blocks ``[3, 4, 6, 3]``. Arguments as :class:`XResNet`.

    Examples:
        >>> xresnet50(n_out=5)[-1].in_features
        2048
    """
    return XResNet(4, [3, 4, 6, 3], n_out=n_out, c_in=c_in, act_cls=act_cls, se=se, sa=sa)


@register_model("xresnet101")
def xresnet101(n_out: int = 1000, c_in: int = 3, act_cls: str = "relu", se: bool = False, sa: bool = False) -> XResNet:
    """XResNet-101: bottleneck blocks ``[3, 4, 23, 3]``. Arguments as :class:`XResNet`.

    Examples:
        >>> len(xresnet101(n_out=5)[6])
        23
    """
    return XResNet(4, [3, 4, 23, 3], n_out=n_out, c_in=c_in, act_cls=act_cls, se=se, sa=sa)
