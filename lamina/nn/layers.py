"""Model building blocks: conv + norm + activation, residual blocks, attention, upsampling and pooling heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "AdaptiveConcatPool2d",
    "ConvLayer",
    "Flatten",
    "PixelShuffle_ICNR",
    "ResBlock",
    "SelfAttention",
    "SigmoidRange",
    "SqueezeExcite",
    "emb_sz_rule",
    "icnr_init",
    "sigmoid_range",
]

NORMS = ("batch", "instance", None)


def _norm_layer(norm: str | None, n_channels: int, zero: bool) -> nn.Module | None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if norm is None:
        return None
    layer: nn.BatchNorm2d | nn.InstanceNorm2d
    layer = nn.BatchNorm2d(n_channels) if norm == "batch" else nn.InstanceNorm2d(n_channels, affine=True)
    with torch.no_grad():
        layer.weight.fill_(0.0 if zero else 1.0)
        layer.bias.zero_()
    return layer


class ConvLayer(nn.Sequential):
    """A 2d convolution followed by an optional norm layer and an optional activation, as an ``nn.Sequential``.

    The children are numbered ``0`` (conv), ``1`` (norm), ``2`` (activation), skipping the ones left out, so a
    ``ConvLayer`` has the same state-dict keys as torchvision's conv-norm-activation blocks.

    Args:
        ni: input channels.
        nf: output channels.
        ks: kernel size.
        stride: stride of the convolution.
        padding: zero padding; ``ks // 2`` (same size at stride 1) when ``None``.
        bias: whether the conv has a bias; only when there is no norm layer, when ``None``.
        norm: ``"batch"``, ``"instance"`` or ``None``.
        act: an activation class (``nn.ReLU``, ``nn.Mish``...) instantiated with no arguments, or ``None``.
        zero_norm: start the norm's weight at zero, so the block outputs zero (the last layer of a residual branch).
        groups: conv groups (``groups == ni`` makes a depthwise convolution).

    Examples:
        >>> layer = ConvLayer(3, 8, stride=2)
        >>> layer(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 8, 8, 8])
        >>> [type(m).__name__ for m in ConvLayer(3, 8, norm=None, act=nn.Mish)]
        ['Conv2d', 'Mish']
    """

    def __init__(
        self,
        ni: int,
        nf: int,
        ks: int = 3,
        stride: int = 1,
        padding: int | None = None,
        bias: bool | None = None,
        norm: str | None = "batch",
        act: type[nn.Module] | None = nn.ReLU,
        zero_norm: bool = False,
        groups: int = 1,
    ) -> None:
        if ni < 1 or nf < 1 or ks < 1 or stride < 1:
            raise ValueError(f"ni, nf, ks and stride must be >= 1, got ni={ni}, nf={nf}, ks={ks}, stride={stride}")
        norm_layer = _norm_layer(norm, nf, zero_norm)
        bias = norm_layer is None if bias is None else bias
        padding = ks // 2 if padding is None else padding
        conv = nn.Conv2d(ni, nf, ks, stride=stride, padding=padding, bias=bias, groups=groups)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        layers = [conv] + [m for m in (norm_layer, act() if act is not None else None) if m is not None]
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: rescale each channel by a gate computed from the global average of all channels.

    Args:
        n_channels: channels in and out.
        reduction: the hidden layer has ``n_channels // reduction`` channels (at least 1).

    Examples:
        >>> se = SqueezeExcite(32, reduction=8)
        >>> se(torch.ones(2, 32, 4, 4)).shape
        torch.Size([2, 32, 4, 4])
    """

    def __init__(self, n_channels: int, reduction: int = 16) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        hidden = max(1, n_channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            ConvLayer(n_channels, hidden, ks=1, norm=None, act=nn.ReLU),
            ConvLayer(hidden, n_channels, ks=1, norm=None, act=nn.Sigmoid),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Multiply ``x`` by its per-channel gate in (0, 1)."""
        return x * self.gate(x)


class SelfAttention(nn.Module):
    """Self-attention over the spatial positions of a feature map (SAGAN), added to the input as a residual.

    The residual weight ``gamma`` starts at zero, so a freshly built layer is the identity.

    Examples:
        >>> sa = SelfAttention(16)
        >>> x = torch.randn(2, 16, 5, 5)
        >>> torch.equal(sa(x), x)
        True
    """

    def __init__(self, n_channels: int) -> None:
        super().__init__()
        if n_channels < 8:
            raise ValueError(f"SelfAttention needs n_channels >= 8 (queries have n_channels // 8), got {n_channels}")
        self.query = nn.Conv2d(n_channels, n_channels // 8, 1, bias=False)
        self.key = nn.Conv2d(n_channels, n_channels // 8, 1, bias=False)
        self.value = nn.Conv2d(n_channels, n_channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        """``x + gamma * attention(x)``, where every position attends to every other."""
        q, k, v = (f(x).flatten(2) for f in (self.query, self.key, self.value))  # bs x c x positions
        weights = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # bs x positions x positions
        out = v @ weights.transpose(1, 2)
        return x + self.gamma * out.view_as(x)


class ResBlock(nn.Module):
    """A residual block of xresnet: two 3x3 convs (``expansion=1``) or a 1x1-3x3-1x1 bottleneck (``expansion=4``).

    The shortcut average-pools when ``stride > 1`` and projects with a 1x1 conv when the channels change (the
    "bag of tricks" ResNet-D). The last norm of the branch starts at zero, so the block starts as its shortcut.

    Args:
        ni: input channels.
        nf: output channels (the bottleneck is ``nf // expansion`` wide).
        stride: 1, or 2 to halve the spatial size.
        expansion: 1 (basic block) or 4 (bottleneck).
        act: the activation class (``nn.ReLU``, ``nn.Mish``...).
        se: add squeeze-and-excitation to the branch.
        sa: add self-attention to the branch.
        norm: the norm of every conv (see :class:`ConvLayer`).

    Examples:
        >>> block = ResBlock(16, 32, stride=2)
        >>> block(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 32, 4, 4])
        >>> ResBlock(64, 256, expansion=4, se=True, act=nn.Mish)(torch.randn(1, 64, 4, 4)).shape
        torch.Size([1, 256, 4, 4])
    """

    def __init__(
        self,
        ni: int,
        nf: int,
        stride: int = 1,
        expansion: int = 1,
        act: type[nn.Module] = nn.ReLU,
        se: bool = False,
        sa: bool = False,
        norm: str | None = "batch",
    ) -> None:
        super().__init__()
        if expansion not in (1, 4) or nf % expansion:
            raise ValueError(f"expansion must be 1 or 4 and divide nf, got expansion={expansion}, nf={nf}")
        mid = nf // expansion
        if expansion == 1:
            layers = [ConvLayer(ni, mid, stride=stride, norm=norm, act=act)]
        else:
            layers = [
                ConvLayer(ni, mid, ks=1, norm=norm, act=act),
                ConvLayer(mid, mid, stride=stride, norm=norm, act=act),
            ]
        layers.append(ConvLayer(mid, nf, ks=1 if expansion == 4 else 3, norm=norm, act=None, zero_norm=True))
        extras: list[nn.Module] = ([SqueezeExcite(nf)] if se else []) + ([SelfAttention(nf)] if sa else [])
        self.convs = nn.Sequential(*layers, *extras)
        pool: list[nn.Module] = [nn.AvgPool2d(stride, ceil_mode=True)] if stride != 1 else []
        proj: list[nn.Module] = [ConvLayer(ni, nf, ks=1, norm=norm, act=None)] if ni != nf else []
        self.shortcut = nn.Sequential(*pool, *proj)
        self.act = act()

    def forward(self, x: Tensor) -> Tensor:
        """``act(convs(x) + shortcut(x))``."""
        return self.act(self.convs(x) + self.shortcut(x))


def icnr_init(weight: Tensor, scale: int = 2) -> Tensor:
    """Fill a conv weight meant for ``nn.PixelShuffle(scale)`` so the shuffled output starts free of checkerboards.

    Each group of ``scale**2`` output channels that land in one upsampled pixel block gets the same kernel (ICNR,
    Aitken et al. 2017), so the first upsampling is a nearest-neighbour resize of a random conv.

    Args:
        weight: the conv weight, ``(nf * scale**2) x ni x k x k``; filled in place.
        scale: the pixel-shuffle factor.

    Examples:
        >>> w = icnr_init(torch.empty(8, 3, 1, 1), scale=2)
        >>> torch.equal(w[0], w[1]) and torch.equal(w[4], w[7])
        True
    """
    n_out = weight.shape[0]
    if n_out % (scale * scale):
        raise ValueError(f"the conv has {n_out} output channels, which is not a multiple of scale**2={scale * scale}")
    base = torch.empty(n_out // (scale * scale), *weight.shape[1:])
    nn.init.kaiming_normal_(base, nonlinearity="relu")
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale * scale, dim=0))
    return weight


class PixelShuffle_ICNR(nn.Sequential):
    """Upsample by ``scale``: a 1x1 conv to ``nf * scale**2`` channels (ICNR init), then ``nn.PixelShuffle``.

    Args:
        ni: input channels.
        nf: output channels; ``ni`` when ``None``.
        scale: the upsampling factor.
        norm: the conv's norm (see :class:`ConvLayer`).
        act: the activation after the shuffle, or ``None``.
        blur: smooth the output with a 2x2 average (pad right/bottom), against remaining checkerboards.

    Examples:
        >>> up = PixelShuffle_ICNR(8, 4, scale=2)
        >>> up(torch.randn(1, 8, 5, 5)).shape
        torch.Size([1, 4, 10, 10])
    """

    def __init__(
        self,
        ni: int,
        nf: int | None = None,
        scale: int = 2,
        norm: str | None = None,
        act: type[nn.Module] | None = nn.ReLU,
        blur: bool = False,
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        nf = ni if nf is None else nf
        conv = ConvLayer(ni, nf * scale * scale, ks=1, norm=norm, act=None)
        first = conv[0]
        assert isinstance(first, nn.Conv2d)
        icnr_init(first.weight, scale)
        layers: list[nn.Module] = [conv, nn.PixelShuffle(scale)]
        if blur:
            layers += [nn.ReplicationPad2d((0, 1, 0, 1)), nn.AvgPool2d(2, stride=1)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


def sigmoid_range(x: Tensor, low: float, high: float) -> Tensor:
    """A sigmoid scaled to ``(low, high)``: squashes outputs into a target range (ratings, keypoints).

    Args:
        x: the raw outputs.
        low: the lower bound.
        high: the upper bound.

    Examples:
        >>> sigmoid_range(torch.tensor([0.0, -100.0]), 0.0, 5.5).tolist()
        [2.75, 0.0]
    """
    return torch.sigmoid(x) * (high - low) + low


def emb_sz_rule(n_categories: int) -> int:
    """A rule of thumb for an embedding's width given a vocabulary size: ``min(600, round(1.6 * n ** 0.56))``.

    Examples:
        >>> emb_sz_rule(6), emb_sz_rule(671), emb_sz_rule(9067)
        (4, 61, 263)
    """
    if n_categories < 1:
        raise ValueError(f"n_categories must be >= 1, got {n_categories}")
    return min(600, round(1.6 * n_categories**0.56))


class SigmoidRange(nn.Module):
    """Squash the input into ``(low, high)`` with a scaled sigmoid (e.g. ratings between 0 and 5.5).

    Args:
        low: the lower bound.
        high: the upper bound, greater than ``low``.

    Examples:
        >>> SigmoidRange(0, 5)(torch.tensor([-100.0, 0.0, 100.0]))
        tensor([0.0000, 2.5000, 5.0000])
    """

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        if not high > low:
            raise ValueError(f"high must be greater than low, got low={low}, high={high}")
        self.low, self.high = low, high

    def forward(self, x: Tensor) -> Tensor:
        """``low + (high - low) * sigmoid(x)``."""
        return sigmoid_range(x, self.low, self.high)


class Flatten(nn.Module):
    """Flatten each item of a batch to a vector (``full=True``: the whole batch to one vector).

    Examples:
        >>> Flatten()(torch.zeros(2, 3, 4)).shape, Flatten(full=True)(torch.zeros(2, 3)).shape
        (torch.Size([2, 12]), torch.Size([6]))
    """

    def __init__(self, full: bool = False) -> None:
        super().__init__()
        self.full = full

    def forward(self, x: Tensor) -> Tensor:
        """The flattened view of ``x``."""
        return x.reshape(-1) if self.full else x.reshape(x.shape[0], -1)


class AdaptiveConcatPool2d(nn.Module):
    """Adaptive max pooling and adaptive average pooling, concatenated on the channels (twice the channels).

    Examples:
        >>> AdaptiveConcatPool2d()(torch.randn(2, 5, 7, 7)).shape
        torch.Size([2, 10, 1, 1])
    """

    def __init__(self, size: int | tuple[int, int] = 1) -> None:
        super().__init__()
        self.max_pool, self.avg_pool = nn.AdaptiveMaxPool2d(size), nn.AdaptiveAvgPool2d(size)

    def forward(self, x: Tensor) -> Tensor:
        """``cat([max_pool(x), avg_pool(x)], dim=1)``."""
        return torch.cat([self.max_pool(x), self.avg_pool(x)], dim=1)
