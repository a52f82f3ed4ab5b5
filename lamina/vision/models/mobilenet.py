"""MobileNetV2 (Sandler et al. 2018): inverted residual blocks, with torchvision's module names.

The state-dict keys (``features.0.0.weight``, ``features.1.conv.0.0.weight``, ..., ``features.18.0.weight``,
``classifier.1.weight``) and shapes are torchvision's, so its published ImageNet weights load as is.
"""

from __future__ import annotations

from torch import Tensor, nn

from lamina.nn.layers import ConvLayer
from lamina.nn.registry import register_model

__all__ = ["MOBILENET_V2_SETTINGS", "InvertedResidual", "MobileNetV2", "make_divisible", "mobilenet_v2"]

MOBILENET_V2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""Table 2 of the paper: per stage the expansion ``t``, output channels ``c``, blocks ``n`` and first stride ``s``."""


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never more than 10% below ``value``.

    Args:
        value: the channel count wanted (e.g. ``32 * width_mult``).
        divisor: the multiple to round to.

    Examples:
        >>> make_divisible(32 * 0.75), make_divisible(16 * 0.35), make_divisible(1280)
        (24, 8, 1280)
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_relu6(ni: int, nf: int, ks: int = 3, stride: int = 1, groups: int = 1) -> ConvLayer:
    return ConvLayer(ni, nf, ks=ks, stride=stride, groups=groups, act=nn.ReLU6)


class InvertedResidual(nn.Module):
    """Expand with a 1x1 conv (``expand_ratio`` times), filter with a depthwise 3x3, project back with a linear 1x1.

    The shortcut is added only when the block keeps the shape (stride 1, ``ni == nf``).

    Args:
        ni: input channels.
        nf: output channels.
        stride: 1 or 2 (on the depthwise conv).
        expand_ratio: the expansion ``t``; 1 leaves out the expanding conv.

    Examples:
        >>> import torch
        >>> block = InvertedResidual(16, 16, stride=1, expand_ratio=6)
        >>> block(torch.randn(1, 16, 8, 8)).shape, block.use_residual
        (torch.Size([1, 16, 8, 8]), True)
    """

    def __init__(self, ni: int, nf: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2) or expand_ratio < 1:
            raise ValueError(f"stride must be 1 or 2 and expand_ratio >= 1, got {stride} and {expand_ratio}")
        hidden = ni * expand_ratio
        expand = [_conv_bn_relu6(ni, hidden, ks=1)] if expand_ratio != 1 else []
        self.conv = nn.Sequential(
            *expand,
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, nf, 1, bias=False),
            nn.BatchNorm2d(nf),
        )
        self.use_residual = stride == 1 and ni == nf

    def forward(self, x: Tensor) -> Tensor:
        """``x + conv(x)`` when the shape is kept, else ``conv(x)``."""
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2: a 3x3 stem, the inverted-residual stages of :data:`MOBILENET_V2_SETTINGS`, a 1x1 conv, a head.

    Args:
        n_out: number of classes.
        width_mult: scales every channel count (rounded by :func:`make_divisible`); 1.0 is the published model.
        dropout: dropout before the classifier.

    Examples:
        >>> import torch
        >>> MobileNetV2(n_out=3, width_mult=0.35)(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 3])
    """

    def __init__(self, n_out: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        if n_out < 1 or width_mult <= 0 or not 0 <= dropout < 1:
            raise ValueError(
                f"need n_out >= 1, width_mult > 0 and 0 <= dropout < 1, got {n_out}, {width_mult}, {dropout}"
            )
        ni = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [_conv_bn_relu6(3, ni, stride=2)]
        for t, c, n, s in MOBILENET_V2_SETTINGS:
            nf = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(ni, nf, s if i == 0 else 1, t))
                ni = nf
        layers.append(_conv_bn_relu6(ni, last, ks=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, n_out))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Class scores, ``bs x n_out``."""
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


@register_model("mobilenet_v2")
def mobilenet_v2(n_out: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 (3,504,872 parameters with 1000 classes and ``width_mult=1``). Arguments as :class:`MobileNetV2`.

    Examples:
        >>> sum(p.numel() for p in mobilenet_v2().parameters())
        3504872
    """
    return MobileNetV2(n_out=n_out, width_mult=width_mult, dropout=dropout)
