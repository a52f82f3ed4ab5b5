"""A U-Net built over any encoder: the skip connections are found by running a dummy image through it with hooks.

``DynamicUnet`` records the output of the encoder's children just before each change of resolution, builds one
decoder block per such skip (upsample, concatenate the skip, two convs), upsamples back to the input size and ends
with a 1x1 conv to ``n_out`` channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lamina.callbacks.hooks import Hooks, hook_outputs, model_sizes
from lamina.nn.layers import ConvLayer, PixelShuffle_ICNR, SelfAttention, SigmoidRange

__all__ = ["DynamicUnet", "UnetBlock", "skip_indices", "unet_splitter"]


def skip_indices(sizes: Sequence[Sequence[int]]) -> list[int]:
    """The indices of the children whose output is the last one at its resolution (the next child changes it).

    Args:
        sizes: the output shapes of the encoder's children, in order (see ``model_sizes``).

    Examples:
        >>> skip_indices([(1, 8, 32, 32), (1, 8, 32, 32), (1, 16, 16, 16), (1, 32, 8, 8)])
        [1, 2]
    """
    return [i for i in range(len(sizes) - 1) if tuple(sizes[i][-2:]) != tuple(sizes[i + 1][-2:])]


def _fit_to(x: Tensor, size: Sequence[int]) -> Tensor:
    """``x`` resized (nearest) to the spatial ``size`` when it differs (odd input sizes round differently)."""
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=tuple(size), mode="nearest")


class UnetBlock(nn.Module):
    """A decoder block: upsample ``x`` 2x, resize it to the skip's size, concatenate the normalised skip, two convs.

    Args:
        up_in_c: the channels of the decoder input ``x``.
        skip_c: the channels of the skip connection.
        out_c: the output channels; ``max(up_in_c // 2, skip_c)`` when ``None``.
        blur: blur after the pixel shuffle, against checkerboard artefacts.
        self_attention: end with a self-attention layer (needs ``out_c >= 8``).
        norm_type: the norm of the convs (``"batch"``, ``"instance"`` or ``None``).

    Examples:
        >>> block = UnetBlock(16, 4)
        >>> block(torch.randn(2, 16, 5, 5), torch.randn(2, 4, 9, 9)).shape
        torch.Size([2, 8, 9, 9])
    """

    def __init__(
        self,
        up_in_c: int,
        skip_c: int,
        out_c: int | None = None,
        blur: bool = False,
        self_attention: bool = False,
        norm_type: str | None = "batch",
    ) -> None:
        super().__init__()
        up_c = max(up_in_c // 2, 1)
        out_c = max(up_c, skip_c) if out_c is None else out_c
        self.out_c = out_c
        self.up = PixelShuffle_ICNR(up_in_c, up_c, blur=blur, norm=norm_type)
        self.skip_norm = nn.BatchNorm2d(skip_c)
        self.convs = nn.Sequential(
            ConvLayer(up_c + skip_c, out_c, norm=norm_type),
            ConvLayer(out_c, out_c, norm=norm_type),
            *([SelfAttention(out_c)] if self_attention else []),
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """The decoded features at the skip's resolution."""
        up = _fit_to(self.up(x), skip.shape[-2:])
        return self.convs(torch.cat([up, F.relu(self.skip_norm(skip))], dim=1))


class _CrossBlock(nn.Module):
    """A residual block on the decoder output concatenated with the input image (``bottle``: 1x1 bottleneck)."""

    def __init__(self, n_channels: int, bottle: bool, norm_type: str | None) -> None:
        super().__init__()
        mid = max(n_channels // 2, 1) if bottle else n_channels
        first = ConvLayer(n_channels, mid, ks=1 if bottle else 3, norm=norm_type)
        self.convs = nn.Sequential(first, ConvLayer(mid, n_channels, norm=norm_type, act=None, zero_norm=True))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.convs(x))


def _in_channels(encoder: nn.Module) -> int:
    """The input channels of the first convolution of ``encoder``."""
    for m in encoder.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise ValueError(
        f"the encoder {type(encoder).__name__} has no nn.Conv2d: DynamicUnet needs a convolutional encoder"
    )


def _decoder(
    skip_sizes: Sequence[Sequence[int]], n_feat: int, blur: bool, self_attention: bool, norm_type: str | None
) -> tuple[nn.ModuleList, int]:
    """One ``UnetBlock`` per skip, coarsest first, starting from ``n_feat`` channels; and their output channels."""
    blocks, up_c = nn.ModuleList(), n_feat
    for j, skip in enumerate(reversed(skip_sizes)):
        block = UnetBlock(up_c, int(skip[1]), blur=blur, self_attention=self_attention and j == 0, norm_type=norm_type)
        blocks.append(block)
        up_c = block.out_c
    return blocks, up_c


def _stage_container(encoder: nn.Module) -> nn.Module:
    """The module whose children are the encoder's stages: ``encoder``, or the innermost of its single-child wrappers
    (e.g. the body ``Sequential(features)`` of a MobileNet)."""
    while len(children := list(encoder.children())) == 1 and list(children[0].children()):
        encoder = children[0]
    return encoder


def _as_size(img_size: int | Sequence[int]) -> tuple[int, int]:
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"img_size must be an int or (height, width) of positive ints, got {img_size!r}")
    return int(size[0]), int(size[1])


class DynamicUnet(nn.Module):
    """A U-Net over any encoder: skip connections at each change of resolution, found by probing with ``img_size``.

    The encoder's children (or those of its single child, for wrappers) must run in order and give 4-d feature maps
    (a ``create_body`` body, an ``nn.Sequential`` of stages). Their outputs are hooked; the hooks are taken off by
    ``remove_hooks()`` or when the model is deleted.
    The output is ``B x n_out x H x W`` for any input ``B x C x H x W`` (sizes that do not divide evenly are resized).

    Args:
        encoder: the downsampling network.
        n_out: output channels (classes).
        img_size: the input size used to probe the encoder (int or ``(height, width)``).
        blur: blur the upsampling layers.
        self_attention: add self-attention after the first (coarsest) decoder block.
        y_range: squash the output into ``(low, high)`` with a sigmoid.
        last_cross: concatenate the input image to the decoder output and add a residual block.
        bottle: use a 1x1 bottleneck in that residual block.
        norm_type: the norm of the decoder's convs: ``"batch"``, ``"instance"`` or ``None``.

    Examples:
        >>> enc = nn.Sequential(*[nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1), nn.ReLU()) for c in (3, 6, 12)])
        >>> unet = DynamicUnet(enc, n_out=2, img_size=32)
        >>> unet(torch.randn(1, 3, 33, 30)).shape
        torch.Size([1, 2, 33, 30])
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_out: int,
        img_size: int | Sequence[int],
        blur: bool = False,
        self_attention: bool = False,
        y_range: tuple[float, float] | None = None,
        last_cross: bool = True,
        bottle: bool = False,
        norm_type: str | None = "batch",
    ) -> None:
        super().__init__()
        if n_out < 1:
            raise ValueError(f"n_out must be >= 1 (the output channels), got {n_out}")
        size, n_in = _as_size(img_size), _in_channels(encoder)
        stages = _stage_container(encoder)
        sizes = model_sizes(stages, size, n_in=n_in)
        if any(len(s) != 4 for s in sizes):
            raise ValueError(
                f"every child of the encoder must output a 4-d feature map, got shapes {[tuple(s) for s in sizes]}: "
                "cut the classifier head off first (create_body)"
            )
        idxs = skip_indices(sizes)
        if not idxs:
            raise ValueError(f"the encoder never changes resolution on a {size} input: it cannot feed a U-Net")
        children = list(stages.children())
        self.encoder, self.n_in = encoder, n_in
        self._hooks: Hooks | None = hook_outputs([children[i] for i in idxs], detach=False)
        n_feat = int(sizes[-1][1])
        self.middle = nn.Sequential(
            ConvLayer(n_feat, 2 * n_feat, norm=norm_type), ConvLayer(2 * n_feat, n_feat, norm=norm_type)
        )
        self.decoder, up_c = _decoder([sizes[i] for i in idxs], n_feat, blur, self_attention, norm_type)
        self.final_up = self._final_upsample(up_c, tuple(sizes[idxs[0]][-2:]), size, blur, norm_type)
        cross_c = up_c + self.n_in
        self.cross = _CrossBlock(cross_c, bottle, norm_type) if last_cross else None
        self.head = nn.Sequential(
            nn.Conv2d(cross_c if last_cross else up_c, n_out, 1), *([SigmoidRange(*y_range)] if y_range else [])
        )

    @staticmethod
    def _final_upsample(
        n_channels: int, from_size: Sequence[int], to_size: Sequence[int], blur: bool, norm_type: str | None
    ) -> nn.Module:
        """2x pixel-shuffle upsamplings from the largest skip's size towards the input size (identity when none)."""
        layers: list[nn.Module] = []
        h = from_size[0]
        while 2 * h <= to_size[0] + 1:
            layers.append(PixelShuffle_ICNR(n_channels, n_channels, blur=blur, norm=norm_type))
            h *= 2
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """The per-pixel outputs ``B x n_out x H x W`` for an image batch ``B x C x H x W``."""
        if self._hooks is None:
            raise RuntimeError("the skip-connection hooks were removed (remove_hooks()): build a new DynamicUnet")
        y = self.middle(self.encoder(x))
        skips = self._hooks.stored[::-1]
        for block, skip in zip(self.decoder, skips):
            y = block(y, skip)
        for hook in self._hooks:
            hook.stored = None
        y = _fit_to(self.final_up(y), x.shape[-2:])
        if self.cross is not None:
            y = self.cross(torch.cat([y, x], dim=1))
        return self.head(y)

    def remove_hooks(self) -> None:
        """Take the skip-connection hooks off the encoder (the model cannot run after this)."""
        hooks = self.__dict__.get("_hooks")
        if hooks is not None:
            hooks.remove()
            self._hooks = None

    def __del__(self) -> None:
        self.remove_hooks()


def unet_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Two parameter groups of a ``DynamicUnet``: the encoder's, then the decoder's (everything else).

    Examples:
        >>> enc = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 2, 1))
        >>> unet = DynamicUnet(enc, n_out=2, img_size=16)
        >>> groups = unet_splitter(unet)
        >>> len(groups[0]), sum(map(len, groups)) == len(list(unet.parameters()))
        (4, True)
    """
    if not isinstance(model, DynamicUnet):
        raise TypeError(f"unet_splitter expects a DynamicUnet, got {type(model).__name__}: write a splitter for it")
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    rest = [p for p in model.parameters() if id(p) not in encoder_ids]
    return [list(model.encoder.parameters()), rest]
