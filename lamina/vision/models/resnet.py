"""ResNet-18/34/50 (He et al. 2015) with torchvision's module names, so its published ImageNet weights load as is.

The layout follows torchvision's "v1.5": a 7x7 stem, max-pooling, four stages, and in a bottleneck the stride sits
on the 3x3 conv. The state-dict keys (``conv1.weight``, ``layer1.0.bn2.running_mean``, ``layer2.0.downsample.0``,
``fc.weight``...) and shapes are torchvision's.
"""

from __future__ import annotations

from torch import Tensor, nn

from lamina.nn.registry import register_model

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50"]


def _conv(ni: int, nf: int, ks: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False)


def _downsample(ni: int, nf: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut (1x1 conv + BN) when the shape changes; ``None`` for the identity."""
    if stride == 1 and ni == nf:
        return None
    return nn.Sequential(_conv(ni, nf, 1, stride), nn.BatchNorm2d(nf))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut (ResNet-18/34); ``nf`` output channels.

    Args:
        ni: input channels.
        nf: output channels.
        stride: stride of the first conv (and of the projection shortcut).

    Examples:
        >>> import torch
        >>> BasicBlock(8, 16, stride=2)(torch.randn(1, 8, 6, 6)).shape
        torch.Size([1, 16, 3, 3])
    """

    expansion = 1

    def __init__(self, ni: int, nf: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(ni, nf, 3, stride), nn.BatchNorm2d(nf)
        self.conv2, self.bn2 = _conv(nf, nf, 3), nn.BatchNorm2d(nf)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(ni, nf, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """A 1x1 (reduce) - 3x3 (stride) - 1x1 (expand by 4) bottleneck with a shortcut (ResNet-50 and deeper).

    Args:
        ni: input channels.
        width: channels of the 3x3 conv; the block outputs ``4 * width``.
        stride: stride of the 3x3 conv (and of the projection shortcut).

    Examples:
        >>> import torch
        >>> Bottleneck(64, 16)(torch.randn(1, 64, 4, 4)).shape
        torch.Size([1, 64, 4, 4])
    """

    expansion = 4

    def __init__(self, ni: int, width: int, stride: int = 1) -> None:
        super().__init__()
        nf = width * self.expansion
        self.conv1, self.bn1 = _conv(ni, width, 1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = _conv(width, nf, 1), nn.BatchNorm2d(nf)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(ni, nf, stride)

    def forward(self, x: Tensor) -> Tensor:
        """The three conv-BN layers (ReLU between them), plus the shortcut, then ReLU."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _stage(
    block: type[BasicBlock | Bottleneck], ni: int, width: int, n_blocks: int, stride: int
) -> tuple[nn.Sequential, int]:
    """``n_blocks`` blocks, the first with ``stride``; returns the stage and its output channels."""
    nf = width * block.expansion
    blocks = [block(ni if j == 0 else nf, width, stride if j == 0 else 1) for j in range(n_blocks)]
    return nn.Sequential(*blocks), nf


class ResNet(nn.Module):
    """A ResNet: 7x7 stem, max-pool, four stages of ``block`` (64, 128, 256, 512 wide), average pool, linear head.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, four numbers (``[2, 2, 2, 2]`` for ResNet-18).
        n_out: number of classes.
        c_in: input channels.

    Examples:
        >>> import torch
        >>> ResNet(BasicBlock, [1, 1, 1, 1], n_out=3)(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 3])
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], n_out: int = 1000, c_in: int = 3):
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be four block counts >= 1 (e.g. [2, 2, 2, 2]), got {layers}")
        if n_out < 1:
            raise ValueError(f"n_out must be >= 1, got {n_out}")
        self.conv1 = nn.Conv2d(c_in, 64, 7, stride=2, padding=3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1, ni = _stage(block, 64, 64, layers[0], stride=1)
        self.layer2, ni = _stage(block, ni, 128, layers[1], stride=2)
        self.layer3, ni = _stage(block, ni, 256, layers[2], stride=2)
        self.layer4, ni = _stage(block, ni, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ni, n_out)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """Class scores, ``bs x n_out``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@register_model("resnet18")
def resnet18(n_out: int = 1000, c_in: int = 3) -> ResNet:
    """ResNet-18: basic blocks ``[2, 2, 2, 2]``; 11,689,512 parameters with 1000 classes.

    Examples:
        >>> sum(p.numel() for p in resnet18().parameters())
        11689512
    """
    return ResNet(BasicBlock, [2, 2, 2, 2], n_out=n_out, c_in=c_in)


@register_model("resnet34")
def resnet34(n_out: int = 1000, c_in: int = 3) -> ResNet:
    """ResNet-34: basic blocks ``[3, 4, 6, 3]``; 21,797,672 parameters with 1000 classes.

    Examples:
        >>> resnet34(n_out=10).fc.out_features
        10
    """
    return ResNet(BasicBlock, [3, 4, 6, 3], n_out=n_out, c_in=c_in)


@register_model("resnet50")
def resnet50(n_out: int = 1000, c_in: int = 3) -> ResNet:
    """ResNet-50: bottleneck blocks ``[3, 4, 6, 3]``; 25,557,032 parameters with 1000 classes.

    Examples:
        >>> resnet50(n_out=10).fc.in_features
        2048
    """
    return ResNet(Bottleneck, [3, 4, 6, 3], n_out=n_out, c_in=c_in)
