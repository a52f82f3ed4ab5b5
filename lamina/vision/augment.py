"""Batch augmentation on the batch's device: geometry composed into one warp, lighting composed into one pass.

Geometry: every geometric augmentation gives one ``3 x 3`` matrix per image, in normalized coordinates
(``align_corners=False``: ``-1`` and ``1`` are the outer edges of the image). A matrix maps a point of the *output*
to the point of the *input* it is sampled from, as ``F.affine_grid`` expects; augmentations compose by matrix
product (the first transform of a list is leftmost), so a whole list costs one ``F.grid_sample``. A matrix whose
last row is not ``(0, 0, 1)`` is a perspective warp (:class:`Warp`); then the grid is built by the homography and
still sampled once. Images are sampled bilinearly, masks with ``nearest`` (codes stay the codes they were), with the
same padding, so the new area of a mask matches the new area of its image (with ``pad_mode="zeros"`` it gets code 0).
Points and boxes move by the inverse matrix so they stay on the same content.

The warp itself (:func:`~lamina.vision.transforms.warp_batch`) lives with the item transforms, whose coordinates
it shares: the centre of pixel column ``i`` is ``x = i``. Points that leave the image keep their coordinates
(outside ``[-0.5, W - 0.5]``; find them with :func:`~lamina.vision.transforms.points_inside`); nothing is replaced
by a sentinel. Boxes: the 4 corners move, an
axis-aligned box is re-fitted around them and clipped to the image; boxes that leave it become ``(0, 0, 0, 0)``,
so labels stay aligned.

Lighting works on float images in ``[0, 1]``: brightness and contrast act in logit space
(``sigmoid(contrast * logit(x) + logit(brightness))``), saturation and hue are ``3 x 3`` colour matrices (luma
preserving, so grey images are left unchanged); all of them compose into one pass.

Order: ``IntToFloatTensor`` (10) < geometry (20) < lighting (30) < ``Normalize`` (99) < :class:`RandomErasing` (100).
Each image gets its own random draw and its own coin for ``p``, drawn with torch on the batch's device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lamina.core.serial import SerialError
from lamina.core.tensors import TensorImage, TensorImageBase, TensorPoint
from lamina.core.transform import ItemTransform, Transform, exportable, transform_from_state, transform_to_state
from lamina.vision.transforms import PAD_MODES, _batch_hw, _check_batch, _pair, homography_from_corners, warp_batch

__all__ = [
    "Brightness",
    "ComposedGeometry",
    "ComposedLighting",
    "Contrast",
    "Dihedral",
    "Flip",
    "GeometricAugment",
    "Hue",
    "LightingAugment",
    "RandomErasing",
    "RandomResizedCropGPU",
    "Rotate",
    "Saturation",
    "Warp",
    "Zoom",
    "apply_lighting",
    "aug_transforms",
    "rotation_matrices",
]

MODES = ("bilinear", "nearest")
LUMA = (0.299, 0.587, 0.114)


def _eye(n: int, device: torch.device | str | None = None) -> Tensor:
    return torch.eye(3, device=device).expand(n, 3, 3).clone()


def _uniform(n: int, low: float, high: float, device: torch.device | str | None) -> Tensor:
    return low + (high - low) * torch.rand(n, device=device)


def _check_p(p: float) -> float:
    if not 0 <= p <= 1:
        raise ValueError(f"p is a probability and must be in [0, 1], got {p}")
    return p


def _members_from_data(tfms: Sequence[Any], kind: type[Transform], owner: str) -> list[Any]:
    """Composed members as given, or rebuilt from their stored states (registered classes only)."""
    members = [transform_from_state(t, {}) if isinstance(t, dict) else t for t in tfms]
    bad = [t for t in members if not isinstance(t, kind)]
    if bad:
        raise TypeError(f"{owner} composes {kind.__name__} instances, got {bad!r}")
    return members


def _members_as_data(tfms: Sequence[Transform], owner: str) -> list[dict[str, Any]]:
    """The states of composed members (class name, configuration, state): JSON-safe data, no tensors."""
    states = []
    for i, t in enumerate(tfms):
        tensors: dict[str, Tensor] = {}
        states.append(transform_to_state(t, tensors, f"{owner}.tfms.{i}"))
        if tensors:
            raise SerialError(f"{owner}: member {t.name} keeps tensors; a composed augmentation stores plain values")
    return states


def _coin(n: int, p: float, device: torch.device | str | None) -> Tensor:
    """One boolean per image: ``True`` with probability ``p``."""
    return torch.rand(n, device=device) < p


def _batch_info(x: Any) -> tuple[int, torch.device]:
    elements = x if isinstance(x, tuple) else (x,)
    for o in elements:
        if isinstance(o, (TensorImageBase, TensorPoint)):
            return int(o.shape[0]), o.device
    raise ValueError("found no image, mask, points or boxes in the batch to augment")


# ---------------------------------------------------------------- geometric augmentations


class GeometricAugment(ItemTransform):
    """Base of geometric batch augmentations: write ``matrix`` (one ``3 x 3`` per image) and get the rest.

    The base draws whether each image is transformed (probability ``p``), uses the identity for the others, and
    warps images, masks, points and boxes of the batch together. Training only (``split_idx = 0``).

    Args:
        p: probability that an image is transformed.

    Examples:
        A shear in a few lines:

        >>> class Shear(GeometricAugment):
        ...     def __init__(self, max_shear: float = 0.3, p: float = 0.5):
        ...         super().__init__(p=p)
        ...         self.max_shear = max_shear
        ...     def matrix(self, n, height, width, device):
        ...         m = torch.eye(3, device=device).repeat(n, 1, 1)
        ...         m[:, 0, 1] = (torch.rand(n, device=device) * 2 - 1) * self.max_shear
        ...         return m
        >>> img = TensorImage(torch.rand(4, 3, 8, 8))
        >>> tuple(Shear(p=1.0)(img).shape), Shear()(img, split_idx=1) is img
        ((4, 3, 8, 8), True)
    """

    order = 20  # after IntToFloatTensor (10), before lighting (30) and Normalize (99)
    split_idx: int | None = 0
    mode: str = "bilinear"
    pad_mode: str = "reflection"

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        self.p = _check_p(p)

    def matrix(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        """``n x 3 x 3`` output-to-input matrices (normalized coordinates) for images of ``height x width``."""
        raise NotImplementedError(f"{type(self).__name__} must define matrix(n, height, width, device)")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The output ``(height, width)`` for an input of ``height x width`` (unchanged by default)."""
        return height, width

    def draw(self, n: int, height: int, width: int, device: torch.device, train: bool) -> Tensor:
        """The matrices for a batch: ``matrix`` where the coin says so, the identity elsewhere (and in validation)."""
        if not train or self.p == 0:
            return _eye(n, device)
        mats = self.matrix(n, height, width, device)
        if self.p >= 1:
            return mats
        return torch.where(_coin(n, self.p, device)[:, None, None], mats, _eye(n, device))

    def __call__(self, x: Any, split_idx: int | None = None) -> Any:
        self._train = split_idx != 1
        return super().__call__(x, split_idx)

    def encodes(self, x: Any) -> Any:
        elements = x if isinstance(x, tuple) else (x,)
        (height, width), (n, device) = _batch_hw(elements), _batch_info(x)
        train = getattr(self, "_train", True)
        out_hw = self.output_size(height, width)
        mats = self.draw(n, height, width, device, train)
        if not train and out_hw == (height, width) and bool((mats == _eye(n, device)).all()):
            return x
        return warp_batch(x, mats, out_hw, self.mode, self.pad_mode)


@exportable
class Flip(GeometricAugment):
    """Flip images left-right with probability ``p``.

    Args:
        p: probability that an image is flipped.

    Examples:
        >>> img = TensorImage(torch.arange(3.0).view(1, 1, 1, 3))
        >>> Flip(p=1.0)(img).flatten().tolist()
        [2.0, 1.0, 0.0]
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p=p)

    def matrix(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        m = _eye(n, device)
        m[:, 0, 0] = -1
        return m


@exportable
class Dihedral(GeometricAugment):
    """One of the 8 symmetries of the square (flips, transposition, quarter turns), uniformly, with probability ``p``.

    On a non-square image the transposition is done in normalized coordinates, so it also stretches the content
    (use square images, or :class:`Flip` and ``flip_vert=False``).

    Args:
        p: probability that an image is transformed (the identity is one of the 8 draws).

    Examples:
        >>> img = TensorImage(torch.rand(16, 1, 4, 4))
        >>> out = Dihedral()(img)
        >>> bool(torch.allclose(out.sum((1, 2, 3)), img.sum((1, 2, 3)), atol=1e-4))
        True
    """

    def __init__(self, p: float = 1.0) -> None:
        super().__init__(p=p)

    def matrix(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        k = torch.randint(0, 8, (n,), device=device)
        sx = 1 - 2 * (k & 1).float()
        sy = 1 - 2 * ((k >> 1) & 1).float()
        transpose = ((k >> 2) & 1).bool()
        m = _eye(n, device)
        m[:, 0, 0], m[:, 1, 1] = sx, sy
        swapped = m[:, [1, 0, 2]]  # rows swapped: (u, v) -> (v, u) after the flips
        return torch.where(transpose[:, None, None], swapped, m)


def rotation_matrices(degrees: Tensor, height: int, width: int) -> Tensor:
    """``B x 3 x 3`` rotations by ``degrees`` (clockwise on screen) about the centre, in normalized coordinates.

    The aspect ratio is accounted for, so a rotation of a non-square image does not shear it.

    Args:
        degrees: one angle per image.
        height: image height in pixels.
        width: image width in pixels.

    Examples:
        >>> rotation_matrices(torch.tensor([90.0]), 2, 4)[0, :2].round().tolist()
        [[0.0, -0.0, 0.0], [2.0, 0.0, 0.0]]
    """
    rad = degrees * (math.pi / 180)
    cos, sin = rad.cos(), rad.sin()
    m = _eye(len(degrees), degrees.device)
    m[:, 0, 0], m[:, 0, 1] = cos, -sin * height / width
    m[:, 1, 0], m[:, 1, 1] = sin * width / height, cos
    return m


@exportable
class Rotate(GeometricAugment):
    """Rotate images by a uniform angle in ``[-max_deg, max_deg]`` degrees with probability ``p``.

    Args:
        max_deg: largest rotation, in degrees.
        p: probability that an image is rotated.

    Examples:
        >>> tuple(Rotate(30, p=1.0)(TensorImage(torch.rand(2, 3, 8, 12))).shape)
        (2, 3, 8, 12)
    """

    def __init__(self, max_deg: float = 10.0, p: float = 0.75) -> None:
        super().__init__(p=p)
        if max_deg < 0:
            raise ValueError(f"max_deg must be >= 0, got {max_deg}")
        self.max_deg = max_deg

    def matrix(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        return rotation_matrices(_uniform(n, -self.max_deg, self.max_deg, device), height, width)


@exportable
class Zoom(GeometricAugment):
    """Zoom by a uniform factor in ``[min_zoom, max_zoom]`` about a random centre with probability ``p``.

    Args:
        min_zoom: smallest zoom (below 1 zooms out, padding with ``pad_mode``).
        max_zoom: largest zoom.
        p: probability that an image is zoomed.

    Examples:
        >>> tuple(Zoom(1.5, 2.0, p=1.0)(TensorImage(torch.rand(2, 3, 8, 8))).shape)
        (2, 3, 8, 8)
    """

    def __init__(self, min_zoom: float = 1.0, max_zoom: float = 1.1, p: float = 0.75) -> None:
        super().__init__(p=p)
        if not 0 < min_zoom <= max_zoom:
            raise ValueError(f"need 0 < min_zoom <= max_zoom, got min_zoom={min_zoom}, max_zoom={max_zoom}")
        self.min_zoom, self.max_zoom = min_zoom, max_zoom

    def matrix(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        scale = 1 / _uniform(n, self.min_zoom, self.max_zoom, device)
        room = (1 - scale).abs()  # how far the centre may move and keep the view inside the image
        m = _eye(n, device)
        m[:, 0, 0], m[:, 1, 1] = scale, scale
        m[:, 0, 2] = (torch.rand(n, device=device) * 2 - 1) * room
        m[:, 1, 2] = (torch.rand(n, device=device) * 2 - 1) * room
        return m


@exportable
class Warp(GeometricAugment):
    """A random perspective warp: each corner of the view moves by up to ``magnitude`` (normalized units).

    Args:
        magnitude: largest corner displacement, as a fraction of the half-size of the image.
        p: probability that an image is warped.

    Examples:
        >>> tuple(Warp(0.3, p=1.0)(TensorImage(torch.rand(2, 3, 8, 8))).shape)
        (2, 3, 8, 8)
    """

    def __init__(self, magnitude: float = 0.2, p: float = 0.75) -> None:
        super().__init__(p=p)
        if not 0 <= magnitude < 1:
            raise ValueError(f"magnitude must be in [0, 1), got {magnitude}")
        self.magnitude = magnitude

    def matrix(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=device)
        moved = corners + (torch.rand(n, 4, 2, device=device) * 2 - 1) * self.magnitude
        return homography_from_corners(moved)


def _crop_matrices(centre: Tensor, half: Tensor) -> Tensor:
    """Matrices viewing the window of normalized ``centre`` and half-extent ``half`` (both ``B x 2``)."""
    m = _eye(len(centre), centre.device)
    m[:, 0, 0], m[:, 1, 1] = half[:, 0], half[:, 1]
    m[:, :2, 2] = centre
    return m


@exportable
class RandomResizedCropGPU(GeometricAugment):
    """Crop a random area (fraction ``min_scale..1``, aspect in ``ratio``) of each image and resize it to ``size``.

    Validation (``split_idx=1``) takes the largest centre crop of the output's aspect ratio. A drawn crop larger
    than the image is shrunk to fit along that axis.

    Args:
        size: output ``int`` or ``(height, width)``.
        min_scale: smallest fraction of the image area kept.
        ratio: range of the crop's aspect ratio ``width / height`` (drawn log-uniformly).

    Examples:
        >>> img = TensorImage(torch.rand(2, 3, 16, 24))
        >>> tuple(RandomResizedCropGPU(8)(img).shape), tuple(RandomResizedCropGPU(8)(img, split_idx=1).shape)
        ((2, 3, 8, 8), (2, 3, 8, 8))
    """

    split_idx: int | None = None

    def __init__(
        self, size: int | tuple[int, int], min_scale: float = 0.08, ratio: tuple[float, float] = (3 / 4, 4 / 3)
    ) -> None:
        super().__init__(p=1.0)
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio!r}")
        self.size, self.size_ = size, _pair(size)
        self.min_scale, self.ratio = min_scale, tuple(ratio)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.size_

    def draw(self, n: int, height: int, width: int, device: torch.device, train: bool) -> Tensor:
        if train:
            area = _uniform(n, self.min_scale, 1.0, device) * (height * width)
            aspect = _uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), device).exp()
            half = torch.stack([(area * aspect).sqrt() / width, (area / aspect).sqrt() / height], -1).clamp(max=1)
            centre = (torch.rand(n, 2, device=device) * 2 - 1) * (1 - half)
            return _crop_matrices(centre, half)
        aspect_out = self.size_[1] / self.size_[0]
        if width / height > aspect_out:
            half_xy = (height * aspect_out / width, 1.0)
        else:
            half_xy = (1.0, width / aspect_out / height)
        half = torch.tensor(half_xy, device=device).expand(n, 2)
        return _crop_matrices(torch.zeros(n, 2, device=device), half)


@exportable
class ComposedGeometry(GeometricAugment):
    """Several geometric augmentations composed into one matrix per image: one grid sample for the whole list.

    Args:
        tfms: the augmentations, applied in this order (the product of their matrices, first leftmost); each may
            also be given as its stored state (how an export keeps them as data).
        size: output ``int`` or ``(height, width)`` (the whole view is resized, squishing if the aspect changes);
            the input size when ``None``. A member that sets the size (:class:`RandomResizedCropGPU`) wins.
        mode: ``"bilinear"`` or ``"nearest"`` for images.
        pad_mode: ``"reflection"``, ``"zeros"`` or ``"border"``.

    Examples:
        >>> aug = ComposedGeometry([Flip(), Rotate(20), Zoom(1.0, 1.5), Warp(0.1)], size=6)
        >>> img = TensorImage(torch.rand(4, 3, 8, 8))
        >>> tuple(aug(img).shape), tuple(aug(img, split_idx=1).shape)
        ((4, 3, 6, 6), (4, 3, 6, 6))
    """

    split_idx: int | None = None

    def __init__(
        self,
        tfms: Sequence[GeometricAugment | dict[str, Any]],
        size: int | tuple[int, int] | None = None,
        mode: str = "bilinear",
        pad_mode: str = "reflection",
    ) -> None:
        super().__init__(p=1.0)
        members = _members_from_data(tfms, GeometricAugment, "ComposedGeometry")
        if mode not in MODES or pad_mode not in PAD_MODES:
            raise ValueError(f"mode must be one of {MODES} and pad_mode one of {PAD_MODES}, got {mode!r}, {pad_mode!r}")
        self.tfms, self.size, self.mode, self.pad_mode = members, size, mode, pad_mode
        self.size_ = _pair(size) if size is not None else None

    def get_config(self) -> dict[str, Any]:
        """The configuration as data: each member by its registered class, configuration and state."""
        return {"tfms": _members_as_data(self.tfms, "ComposedGeometry"), "size": self.size, "mode": self.mode,
                "pad_mode": self.pad_mode}  # fmt: skip

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        hw = self.size_ or (height, width)
        for t in self.tfms:
            hw = t.output_size(*hw)
        return hw

    def draw(self, n: int, height: int, width: int, device: torch.device, train: bool) -> Tensor:
        mats = _eye(n, device)
        hw = (height, width)
        for t in self.tfms:
            if t.split_idx is None or train:  # training-only members are the identity in validation
                mats = mats @ t.draw(n, hw[0], hw[1], device, train)
            hw = t.output_size(*hw)
        return mats


# ---------------------------------------------------------------- lighting


LightingParams = tuple[Tensor, Tensor, Tensor]  # per image: logit scale (B), logit shift (B), colour matrix (B x 3 x 3)


def _identity_lighting(n: int, device: torch.device) -> LightingParams:
    return torch.ones(n, device=device), torch.zeros(n, device=device), _eye(n, device)


def _compose_lighting(first: LightingParams, then: LightingParams) -> LightingParams:
    """``then`` after ``first``: logit affines compose, colour matrices multiply (colour is applied first)."""
    a1, b1, c1 = first
    a2, b2, c2 = then
    return a2 * a1, a2 * b1 + b2, c2 @ c1


def apply_lighting(img: Tensor, params: LightingParams, eps: float = 1e-5) -> Tensor:
    """Apply composed lighting to a ``B x C x H x W`` float batch in ``[0, 1]``: colour matrix, then logit affine.

    The colour matrix is used on 3-channel images only (one channel has no colour).

    Args:
        img: float images in ``[0, 1]``.
        params: ``(logit scale, logit shift, colour matrix)`` per image.
        eps: values are clamped to ``[eps, 1 - eps]`` before the logit.

    Examples:
        >>> img = torch.full((1, 3, 2, 2), 0.25)
        >>> params = (torch.ones(1), torch.zeros(1), torch.eye(3)[None])
        >>> round(apply_lighting(img, params)[0, 0, 0, 0].item(), 4)
        0.25
    """
    if not img.is_floating_point():
        raise TypeError(f"lighting needs float images in [0, 1], got {img.dtype}: put IntToFloatTensor before it")
    scale, shift, colour = (p.to(img.dtype) for p in params)
    out = img
    if img.shape[1] == 3 and not bool((colour == torch.eye(3, device=colour.device, dtype=colour.dtype)).all()):
        c = colour.view(-1, 3, 3, 1, 1)  # broadcast arithmetic beats a batched matmul with inner size 3
        out = (c[:, :, 0] * out[:, 0:1] + c[:, :, 1] * out[:, 1:2] + c[:, :, 2] * out[:, 2:3]).clamp_(0, 1)
    if bool((scale != 1).any() or (shift != 0).any()):
        logit = out.clamp(eps, 1 - eps).logit()
        out = torch.sigmoid(logit * scale[:, None, None, None] + shift[:, None, None, None])
    return out


class LightingAugment(Transform):
    """Base of lighting augmentations: write ``params`` (per-image logit scale/shift and colour matrix).

    Only images change; masks, points and boxes pass through. Training only (``split_idx = 0``).

    Args:
        p: probability that an image is changed.

    Examples:
        A darkening in a few lines (shift the logits down by 1):

        >>> class Darken(LightingAugment):
        ...     def params(self, n, device):
        ...         colour = torch.eye(3, device=device).repeat(n, 1, 1)
        ...         return torch.ones(n, device=device), torch.full((n,), -1.0, device=device), colour
        >>> img = TensorImage(torch.full((2, 3, 4, 4), 0.5))
        >>> bool((Darken()(img) < 0.5).all())
        True
    """

    order = 30  # after geometry (20), before Normalize (99)
    split_idx: int | None = 0

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        self.p = _check_p(p)

    def params(self, n: int, device: torch.device) -> LightingParams:
        """Per-image ``(logit scale, logit shift, colour matrix)``."""
        raise NotImplementedError(f"{type(self).__name__} must define params(n, device)")

    def draw(self, n: int, device: torch.device) -> LightingParams:
        """``params`` where the coin says so, the identity elsewhere."""
        if self.p == 0:
            return _identity_lighting(n, device)
        drawn = self.params(n, device)
        if self.p >= 1:
            return drawn
        keep = _coin(n, self.p, device)
        ident = _identity_lighting(n, device)
        return (
            torch.where(keep, drawn[0], ident[0]),
            torch.where(keep, drawn[1], ident[1]),
            torch.where(keep[:, None, None], drawn[2], ident[2]),
        )

    def encodes(self, x: TensorImage) -> Tensor:
        _check_batch(x, 4, "images (B x C x H x W)")
        return apply_lighting(x, self.draw(x.shape[0], x.device))


def _log_uniform_factor(n: int, max_change: float, device: torch.device) -> Tensor:
    """Factors in ``[1 - max_change, 1 / (1 - max_change)]``, log-uniform (as likely to halve as to double)."""
    if not 0 <= max_change < 1:
        raise ValueError(f"max_lighting must be in [0, 1), got {max_change}")
    bound = -math.log(1 - max_change)
    return _uniform(n, -bound, bound, device).exp()


@exportable
class Brightness(LightingAugment):
    """Change brightness: add ``logit(b)`` in logit space, ``b`` uniform in ``0.5 ± max_lighting / 2``.

    Args:
        max_lighting: largest change (0 to 1).
        p: probability that an image is changed.

    Examples:
        >>> img = TensorImage(torch.full((8, 3, 2, 2), 0.5))
        >>> bool((Brightness(0.4, p=1.0)(img) - 0.5).abs().max() <= 0.2 + 1e-6)
        True
    """

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75) -> None:
        super().__init__(p=p)
        if not 0 <= max_lighting < 1:
            raise ValueError(f"max_lighting must be in [0, 1), got {max_lighting}")
        self.max_lighting = max_lighting

    def params(self, n: int, device: torch.device) -> LightingParams:
        b = _uniform(n, 0.5 - self.max_lighting / 2, 0.5 + self.max_lighting / 2, device)
        scale, _, colour = _identity_lighting(n, device)
        return scale, b.logit(), colour


@exportable
class Contrast(LightingAugment):
    """Change contrast: scale logits by a log-uniform factor in ``[1 - max_lighting, 1 / (1 - max_lighting)]``.

    Args:
        max_lighting: largest change (0 to 1).
        p: probability that an image is changed.

    Examples:
        >>> img = TensorImage(torch.full((4, 3, 2, 2), 0.5))
        >>> bool(torch.allclose(Contrast(0.5, p=1.0)(img), img))  # mid-grey is the fixed point
        True
    """

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75) -> None:
        super().__init__(p=p)
        _log_uniform_factor(0, max_lighting, torch.device("cpu"))
        self.max_lighting = max_lighting

    def params(self, n: int, device: torch.device) -> LightingParams:
        _, shift, colour = _identity_lighting(n, device)
        return _log_uniform_factor(n, self.max_lighting, device), shift, colour


@exportable
class Saturation(LightingAugment):
    """Change saturation: blend each pixel with its luma by a log-uniform factor (grey images stay unchanged).

    Args:
        max_lighting: largest change (0 to 1).
        p: probability that an image is changed.

    Examples:
        >>> grey = TensorImage(torch.rand(4, 1, 3, 3).expand(4, 3, 3, 3).contiguous())
        >>> bool(torch.allclose(Saturation(0.5, p=1.0)(grey), grey, atol=1e-5))
        True
    """

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75) -> None:
        super().__init__(p=p)
        _log_uniform_factor(0, max_lighting, torch.device("cpu"))
        self.max_lighting = max_lighting

    def params(self, n: int, device: torch.device) -> LightingParams:
        factor = _log_uniform_factor(n, self.max_lighting, device)[:, None, None]
        luma = torch.tensor(LUMA, device=device).expand(3, 3)  # every row: the luma weights
        colour = factor * torch.eye(3, device=device) + (1 - factor) * luma
        scale, shift, _ = _identity_lighting(n, device)
        return scale, shift, colour


_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.595716, -0.274453, -0.321263), (0.211456, -0.522591, 0.311135))


@exportable
class Hue(LightingAugment):
    """Rotate hue by up to ``max_hue`` of a half turn (a rotation of the chroma plane in YIQ space).

    Args:
        max_hue: largest rotation, as a fraction of 180 degrees.
        p: probability that an image is changed.

    Examples:
        >>> grey = TensorImage(torch.rand(4, 1, 3, 3).expand(4, 3, 3, 3).contiguous())
        >>> bool(torch.allclose(Hue(0.5, p=1.0)(grey), grey, atol=1e-4))
        True
    """

    def __init__(self, max_hue: float = 0.1, p: float = 0.75) -> None:
        super().__init__(p=p)
        if not 0 <= max_hue <= 1:
            raise ValueError(f"max_hue must be in [0, 1], got {max_hue}")
        self.max_hue = max_hue

    def params(self, n: int, device: torch.device) -> LightingParams:
        angle = _uniform(n, -self.max_hue, self.max_hue, device) * math.pi
        rot = _eye(n, device)
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = angle.cos(), -angle.sin(), angle.sin(), angle.cos()
        to_yiq = torch.tensor(_RGB_TO_YIQ, device=device)
        scale, shift, _ = _identity_lighting(n, device)
        return scale, shift, torch.linalg.inv(to_yiq) @ rot @ to_yiq


@exportable
class ComposedLighting(LightingAugment):
    """Several lighting augmentations composed into one pass over the pixels.

    Args:
        tfms: the augmentations (each keeps its own ``p`` and draw), or their stored states.

    Examples:
        >>> aug = ComposedLighting([Brightness(0.3), Contrast(0.3), Saturation(0.3), Hue(0.1)])
        >>> img = TensorImage(torch.rand(4, 3, 5, 5))
        >>> out = aug(img)
        >>> tuple(out.shape), bool(((out >= 0) & (out <= 1)).all()), aug(img, split_idx=1) is img
        ((4, 3, 5, 5), True, True)
    """

    def __init__(self, tfms: Sequence[LightingAugment | dict[str, Any]]) -> None:
        super().__init__(p=1.0)
        self.tfms = _members_from_data(tfms, LightingAugment, "ComposedLighting")

    def get_config(self) -> dict[str, Any]:
        """The configuration as data: each member by its registered class, configuration and state."""
        return {"tfms": _members_as_data(self.tfms, "ComposedLighting")}

    def params(self, n: int, device: torch.device) -> LightingParams:
        params = _identity_lighting(n, device)
        for t in self.tfms:
            params = _compose_lighting(params, t.draw(n, device))
        return params


# ---------------------------------------------------------------- erasing


def _erase_masks(n: int, height: int, width: int, sl: float, sh: float, min_aspect: float, device: Any) -> Tensor:
    """One random rectangle per image as a ``B x 1 x H x W`` boolean mask."""
    area = _uniform(n, sl, sh, device) * (height * width)
    aspect = _uniform(n, math.log(min_aspect), -math.log(min_aspect), device).exp()
    rect_h = (area / aspect).sqrt().round().clamp(0, height)
    rect_w = (area * aspect).sqrt().round().clamp(0, width)
    top = (torch.rand(n, device=device) * (height - rect_h + 1)).floor()
    left = (torch.rand(n, device=device) * (width - rect_w + 1)).floor()
    rows = torch.arange(height, device=device)[None, :, None]
    cols = torch.arange(width, device=device)[None, None, :]
    t, lft = top[:, None, None], left[:, None, None]
    inside = (rows >= t) & (rows < t + rect_h[:, None, None]) & (cols >= lft) & (cols < lft + rect_w[:, None, None])
    return inside[:, None]


@exportable
class RandomErasing(Transform):
    """Replace up to ``max_count`` random rectangles of each (normalized) image by standard normal noise.

    Runs after ``Normalize`` (order 100), training only; masks, points and boxes are untouched.

    Args:
        p: probability that an image gets erased rectangles.
        sl: smallest area of a rectangle, as a fraction of the image.
        sh: largest area of a rectangle, as a fraction of the image.
        min_aspect: smallest aspect ratio of a rectangle (the largest is its inverse).
        max_count: most rectangles per image (the count is uniform in ``1..max_count``).

    Examples:
        >>> img = TensorImage(torch.zeros(8, 3, 10, 10))
        >>> out = RandomErasing(p=1.0, sl=0.1, sh=0.3)(img)
        >>> bool(((out != 0).float().mean((1, 2, 3)) > 0.05).all())
        True
    """

    order = 100
    split_idx: int | None = 0

    def __init__(
        self, p: float = 0.5, sl: float = 0.0, sh: float = 0.3, min_aspect: float = 0.3, max_count: int = 1
    ) -> None:
        super().__init__()
        self.p = _check_p(p)
        if not 0 <= sl <= sh <= 1:
            raise ValueError(f"need 0 <= sl <= sh <= 1, got sl={sl}, sh={sh}")
        if not 0 < min_aspect <= 1:
            raise ValueError(f"min_aspect must be in (0, 1], got {min_aspect}")
        if max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        self.sl, self.sh, self.min_aspect, self.max_count = sl, sh, min_aspect, max_count

    def encodes(self, x: TensorImage) -> Tensor:
        _check_batch(x, 4, "images (B x C x H x W)")
        n, _, height, width = x.shape
        chosen = _coin(n, self.p, x.device)
        count = torch.randint(1, self.max_count + 1, (n,), device=x.device)
        erase = torch.zeros(n, 1, height, width, dtype=torch.bool, device=x.device)
        for k in range(self.max_count):
            rect = _erase_masks(n, height, width, self.sl, self.sh, self.min_aspect, x.device)
            erase |= rect & (chosen & (count > k))[:, None, None, None]
        return torch.where(erase, torch.randn_like(x), x)


# ---------------------------------------------------------------- defaults


def aug_transforms(
    mult: float = 1.0,
    do_flip: bool = True,
    flip_vert: bool = False,
    max_rotate: float = 10.0,
    min_zoom: float = 1.0,
    max_zoom: float = 1.1,
    max_lighting: float = 0.2,
    max_warp: float = 0.2,
    p_affine: float = 0.75,
    p_lighting: float = 0.75,
    xtra_tfms: Sequence[Transform] | None = None,
    size: int | tuple[int, int] | None = None,
    mode: str = "bilinear",
    pad_mode: str = "reflection",
) -> list[Transform]:
    """A good default list of batch augmentations: one composed geometry (one grid sample) and one lighting pass.

    Args:
        mult: multiplies ``max_rotate``, ``max_lighting`` and ``max_warp``.
        do_flip: flip (left-right, or dihedral with ``flip_vert``) with probability 0.5.
        flip_vert: use all 8 dihedral symmetries (for images with no up or down: satellite, microscopy).
        max_rotate: largest rotation in degrees.
        min_zoom: smallest zoom.
        max_zoom: largest zoom.
        max_lighting: largest brightness and contrast change.
        max_warp: largest perspective warp.
        p_affine: probability of each geometric augmentation.
        p_lighting: probability of each lighting augmentation.
        xtra_tfms: more transforms appended to the list.
        size: output size of the geometry (``None`` keeps the batch's).
        mode: image interpolation, ``"bilinear"`` or ``"nearest"``.
        pad_mode: ``"reflection"``, ``"zeros"`` or ``"border"``.

    Examples:
        >>> tfms = aug_transforms()
        >>> [type(t).__name__ for t in tfms], [type(t).__name__ for t in tfms[0].tfms]
        (['ComposedGeometry', 'ComposedLighting'], ['Flip', 'Rotate', 'Zoom', 'Warp'])
    """
    geometry: list[GeometricAugment] = []
    if do_flip:
        geometry.append(Dihedral(p=0.5) if flip_vert else Flip(p=0.5))
    if max_rotate:
        geometry.append(Rotate(max_rotate * mult, p=p_affine))
    if min_zoom < 1 or max_zoom > 1:
        geometry.append(Zoom(min_zoom, max_zoom, p=p_affine))
    if max_warp:
        geometry.append(Warp(min(max_warp * mult, 0.99), p=p_affine))
    tfms: list[Transform] = []
    if geometry or size is not None:
        tfms.append(ComposedGeometry(geometry, size=size, mode=mode, pad_mode=pad_mode))
    if max_lighting:
        lighting = min(max_lighting * mult, 0.99)
        tfms.append(ComposedLighting([Brightness(lighting, p=p_lighting), Contrast(lighting, p=p_lighting)]))
    return tfms + list(xtra_tfms or [])
