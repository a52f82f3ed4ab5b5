"""Item transforms: crop, pad and resize one item (image, mask, points, boxes) with one random draw per item.

Every transform here picks a *window* of the source image (``top, left, height, width`` in pixels, allowed to
reach outside the image, which is then padded) and resizes it to the output size. All elements of an item share
the window: images are resized with antialiased bilinear interpolation (uint8 stays uint8), masks with nearest
(codes stay integer), points and boxes are moved by the same geometry and get the new ``img_size``.

Coordinates: the centre of pixel column ``i`` is ``x = i`` (as matplotlib draws images), so an image of width
``W`` spans ``x`` in ``[-0.5, W - 0.5]``. Points that leave the image keep their (outside) coordinates; test them
with :func:`points_inside`. Boxes are clipped to ``[0, W - 1] x [0, H - 1]``; a box that leaves the image
entirely becomes ``(0, 0, 0, 0)`` (which ``show`` skips), so boxes and their labels stay aligned.

Sizes are an ``int`` (square) or ``(height, width)``, as in torch; ``img_size`` metadata is ``(width, height)``.

The batch warp used by :mod:`lamina.vision.augment` (:func:`warp_batch`) lives here too, as it shares these
coordinates and the box clipping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lamina.core.tensors import (  # noqa: F401 (TensorImage: doctests)
    TensorBBox,
    TensorImage,
    TensorImageBase,
    TensorMask,
    TensorPoint,
    retain_type,
)
from lamina.core.transform import ItemTransform, exportable
from lamina.vision.image import PILBase

__all__ = [
    "CropPad",
    "RandomCrop",
    "RandomResizedCrop",
    "Resize",
    "clip_boxes",
    "crop_resize_item",
    "homography_from_corners",
    "points_inside",
    "warp_batch",
]

PAD_MODES = ("zeros", "border", "reflection")
RESIZE_METHODS = ("crop", "squish", "pad")
Window = tuple[int, int, int, int]  # top, left, height, width (source pixels; may reach outside the image)


def _pair(size: int | tuple[int, int], name: str = "size") -> tuple[int, int]:
    """``size`` as ``(height, width)``, validated."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or any(not isinstance(s, int) or s < 1 for s in hw):
        raise ValueError(f"{name} must be an int >= 1 or a (height, width) pair of them, got {size!r}")
    return hw[0], hw[1]


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def points_inside(points: Tensor, img_size: tuple[int, int]) -> Tensor:
    """Which points lie on the image of ``img_size`` ``(width, height)`` (``x`` in ``[-0.5, W - 0.5]``, same for y).

    Args:
        points: ``... x 2`` pixel coordinates ``(x, y)``.
        img_size: ``(width, height)``.

    Examples:
        >>> points_inside(torch.tensor([[0.0, 0.0], [9.6, 1.0]]), (10, 10)).tolist()
        [True, False]
    """
    w, h = img_size
    x, y = points[..., 0], points[..., 1]
    return (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


def clip_boxes(boxes: Tensor, img_size: tuple[int, int], vanished: Tensor | None = None) -> Tensor:
    """Clip ``... x 4`` boxes to ``[0, W-1] x [0, H-1]``; boxes fully outside (or in ``vanished``) become zeros.

    All-zero input boxes (padding) stay all zeros, so labels stay aligned with boxes.

    Args:
        boxes: ``(x1, y1, x2, y2)`` pixel coordinates.
        img_size: ``(width, height)`` of the image the boxes are on.
        vanished: optional extra boolean mask (shape ``boxes.shape[:-1]``) of boxes to zero.

    Examples:
        >>> clip_boxes(torch.tensor([[-3.0, 2.0, 4.0, 12.0], [20.0, 1.0, 30.0, 5.0]]), (10, 10)).tolist()
        [[0.0, 2.0, 4.0, 9.0], [0.0, 0.0, 0.0, 0.0]]
    """
    w, h = img_size
    x1, y1, x2, y2 = boxes.unbind(-1)
    gone = (x2 < 0) | (y2 < 0) | (x1 > w - 1) | (y1 > h - 1) | (boxes == 0).all(-1)
    if vanished is not None:
        gone = gone | vanished
    out = torch.stack([x1.clamp(0, w - 1), y1.clamp(0, h - 1), x2.clamp(0, w - 1), y2.clamp(0, h - 1)], -1)
    return out.masked_fill(gone.unsqueeze(-1), 0.0)


def _source_index(start: int, n: int, size: int, pad_mode: str) -> tuple[Tensor, Tensor]:
    """Source indices for ``n`` output positions from ``start``, and which of them fall inside ``[0, size)``."""
    i = torch.arange(start, start + n)
    inside = (i >= 0) & (i < size)
    if pad_mode == "reflection":  # mirror about the edge: -1 -> 0, size -> size - 1
        i = i.remainder(2 * size)
        i = torch.where(i >= size, 2 * size - 1 - i, i)
    return i.clamp(0, size - 1), inside


def _crop_pad(x: Tensor, window: Window, pad_mode: str) -> Tensor:
    """The window of ``x`` (``... x H x W``), padded where it reaches outside the image."""
    top, left, height, width = window
    rows, rows_in = _source_index(top, height, x.shape[-2], pad_mode)
    cols, cols_in = _source_index(left, width, x.shape[-1], pad_mode)
    out = x.index_select(-2, rows).index_select(-1, cols)
    if pad_mode == "zeros" and not (bool(rows_in.all()) and bool(cols_in.all())):
        out = out * (rows_in[:, None] & cols_in[None, :]).to(out.dtype)
    return out


def _resize_image(img: Tensor, out_hw: tuple[int, int]) -> Tensor:
    """Antialiased bilinear resize of ``C x H x W``; uint8 stays uint8."""
    if tuple(img.shape[-2:]) == out_hw:
        return img
    if img.dtype == torch.uint8 and img.device.type == "cpu":
        return F.interpolate(img[None], size=out_hw, mode="bilinear", antialias=True, align_corners=False)[0]
    res = F.interpolate(img[None].float(), size=out_hw, mode="bilinear", antialias=True, align_corners=False)[0]
    if img.is_floating_point():
        return res.to(img.dtype)
    return res.round_().clamp_(0, torch.iinfo(img.dtype).max).to(img.dtype)


def _resize_mask(mask: Tensor, out_hw: tuple[int, int]) -> Tensor:
    """Nearest resize of an ``H x W`` mask; the codes (and the dtype) stay as they were."""
    if tuple(mask.shape[-2:]) == out_hw:
        return mask
    res = F.interpolate(mask[None, None].float(), size=out_hw, mode="nearest-exact")[0, 0]
    return res.round_().to(mask.dtype)


def _move_points(pts: Tensor, window: Window, out_hw: tuple[int, int]) -> Tensor:
    """Pixel ``(x, y)`` points on the source to the resized window (pixel centres map to pixel centres)."""
    top, left, height, width = window
    scale = pts.new_tensor([out_hw[1] / width, out_hw[0] / height])
    offset = pts.new_tensor([left, top])
    return (pts.float() - offset + 0.5) * scale - 0.5


def crop_resize_item(x: Any, window: Window, out_hw: tuple[int, int], pad_mode: str = "zeros") -> Any:
    """Cut ``window`` (``top, left, height, width``) out of every element of ``x`` and resize it to ``out_hw``.

    Images, masks, points and boxes are handled by type; other elements (labels...) pass through.

    Args:
        x: one element or a tuple ``(image, mask, points, boxes, ...)`` of one item.
        window: the source window in pixels; it may reach outside the image (padded with ``pad_mode``).
        out_hw: output ``(height, width)``.
        pad_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Examples:
        >>> img = TensorImage(torch.arange(16, dtype=torch.uint8).view(1, 4, 4))
        >>> pts = TensorPoint(torch.tensor([[1.0, 2.0]]), img_size=(4, 4))
        >>> out_img, out_pts = crop_resize_item((img, pts), (1, 1, 2, 2), (2, 2))
        >>> out_img.tolist(), out_pts.tolist(), out_pts.img_size
        ([[[5, 6], [9, 10]]], [[0.0, 1.0]], (2, 2))
    """
    if isinstance(x, tuple):
        return tuple(crop_resize_item(o, window, out_hw, pad_mode) for o in x)
    if isinstance(x, PILBase):
        return _crop_resize_pil(x, window, out_hw, pad_mode)
    img_size = (out_hw[1], out_hw[0])
    if isinstance(x, TensorBBox):
        corners = _move_points(x.view(-1, 2, 2), window, out_hw).view(x.shape)
        return TensorBBox(clip_boxes(corners, img_size), img_size=img_size)
    if isinstance(x, TensorPoint):
        return TensorPoint(_move_points(x, window, out_hw), img_size=img_size)
    if isinstance(x, TensorMask):
        return retain_type(_resize_mask(_crop_pad(x, window, pad_mode), out_hw), x)
    if isinstance(x, TensorImageBase):
        return retain_type(_resize_image(_crop_pad(x, window, pad_mode), out_hw), x)
    return x


def _crop_resize_pil(x: PILBase, window: Window, out_hw: tuple[int, int], pad_mode: str) -> Any:
    """A PIL image's window resized in one antialiased ``resize(box=...)`` (several times faster than the tensor
    path on decoded photos); a window reaching outside the image is padded on the tensor path instead."""
    top, left, height, width = window
    w, h = x.size
    if top < 0 or left < 0 or top + height > h or left + width > w:
        return crop_resize_item(x.to_tensor(), window, out_hw, pad_mode)
    box = (left, top, left + width, top + height)
    return type(x)(x.image.resize((out_hw[1], out_hw[0]), x.default_resample, box=box))


def _source_hw(x: Any) -> tuple[int, int]:
    """``(height, width)`` of the item's image or mask, else from its points' ``img_size``."""
    elements = x if isinstance(x, tuple) else (x,)
    for o in elements:
        if isinstance(o, PILBase):
            return int(o.size[1]), int(o.size[0])
        if isinstance(o, TensorImageBase):
            return int(o.shape[-2]), int(o.shape[-1])
    for o in elements:
        if isinstance(o, TensorPoint) and o.__dict__.get("img_size") is not None:
            w, h = o.__dict__["img_size"]
            return int(h), int(w)
    raise ValueError(f"cannot tell the image size of the item {x!r}: give an image, a mask or points with img_size")


def _aspect_window(h: int, w: int, aspect: float, fit: str) -> tuple[int, int]:
    """The ``(height, width)`` of aspect ``width / height == aspect`` inside (``fit="crop"``) or around the image."""
    wider = w / h > aspect
    if (fit == "crop") == wider:
        return h, max(1, round(h * aspect))
    return max(1, round(w / aspect)), w


def _place(h: int, w: int, height: int, width: int, random: bool) -> Window:
    """A window of ``height x width`` at a random position inside the image (or centred, or when it is larger)."""
    if random and height <= h and width <= w:
        top = int(torch.randint(0, h - height + 1, ()).item())
        left = int(torch.randint(0, w - width + 1, ()).item())
        return top, left, height, width
    return (h - height) // 2, (w - width) // 2, height, width


class _WindowTransform(ItemTransform):
    """Base of the item transforms: ``window(h, w, train)`` picks the source window; the rest is shared."""

    order = 4  # before ToTensor (5): decoded PIL images are cropped and resized by PIL; tensors on the tensor path
    size_: tuple[int, int]
    pad_mode: str = "zeros"

    def window(self, h: int, w: int, train: bool) -> Window:
        raise NotImplementedError

    def __call__(self, x: Any, split_idx: int | None = None) -> Any:
        self._train = split_idx != 1
        return super().__call__(x, split_idx)

    def encodes(self, x: Any) -> Any:
        h, w = _source_hw(x)
        window = self.window(h, w, getattr(self, "_train", True))
        return crop_resize_item(x, window, self.size_, self.pad_mode)


@exportable
class Resize(_WindowTransform):
    """Resize items to ``size`` by cropping, squishing or padding to its aspect ratio first.

    Training crops at a random position; validation (``split_idx=1``) crops the centre.

    Args:
        size: output ``int`` or ``(height, width)``.
        method: ``"crop"`` (fill the output, cut the excess), ``"squish"`` (change the aspect ratio) or
            ``"pad"`` (keep all the image, pad the rest).
        pad_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` for ``method="pad"``.

    Examples:
        >>> img = TensorImage(torch.zeros(3, 40, 60, dtype=torch.uint8))
        >>> [tuple(Resize(20, m)(img).shape) for m in ("crop", "squish", "pad")]
        [(3, 20, 20), (3, 20, 20), (3, 20, 20)]
    """

    def __init__(self, size: int | tuple[int, int], method: str = "crop", pad_mode: str = "zeros") -> None:
        super().__init__()
        self.size, self.size_ = size, _pair(size)
        self.method = _check_choice(method, RESIZE_METHODS, "method")
        self.pad_mode = _check_choice(pad_mode, PAD_MODES, "pad_mode")

    def is_random(self, split_idx: int | None = None) -> bool:
        """Cropping picks a random position in training (the centre in validation); squish and pad never draw."""
        return self.method == "crop" and split_idx != 1

    def window(self, h: int, w: int, train: bool) -> Window:
        if self.method == "squish":
            return 0, 0, h, w
        height, width = _aspect_window(h, w, self.size_[1] / self.size_[0], self.method)
        return _place(h, w, height, width, random=train and self.method == "crop")


@exportable
class RandomResizedCrop(_WindowTransform):
    """Crop a random area (fraction ``min_scale..1``, aspect in ``ratio``) and resize it to ``size``.

    Validation (``split_idx=1``) takes the largest centre crop of the output's aspect ratio instead.

    Args:
        size: output ``int`` or ``(height, width)``.
        min_scale: smallest fraction of the image area kept.
        ratio: range of the crop's aspect ratio ``width / height`` (drawn log-uniformly).

    Examples:
        >>> img = TensorImage(torch.zeros(3, 40, 60, dtype=torch.uint8))
        >>> tuple(RandomResizedCrop(16)(img).shape), tuple(RandomResizedCrop((8, 16))(img, split_idx=1).shape)
        ((3, 16, 16), (3, 8, 16))
    """

    def __init__(
        self, size: int | tuple[int, int], min_scale: float = 0.08, ratio: tuple[float, float] = (3 / 4, 4 / 3)
    ) -> None:
        super().__init__()
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio!r}")
        self.size, self.size_, self.min_scale, self.ratio = size, _pair(size), min_scale, tuple(ratio)

    def is_random(self, split_idx: int | None = None) -> bool:
        """Random everywhere but validation (``split_idx=1``)."""
        return split_idx != 1

    def window(self, h: int, w: int, train: bool) -> Window:
        if train:
            log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
            for _ in range(10):
                area = h * w * (self.min_scale + (1 - self.min_scale) * float(torch.rand(())))
                aspect = math.exp(log_lo + (log_hi - log_lo) * float(torch.rand(())))
                width, height = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
                if 1 <= width <= w and 1 <= height <= h:
                    return _place(h, w, height, width, random=True)
        height, width = _aspect_window(h, w, self.size_[1] / self.size_[0], "crop")
        return _place(h, w, height, width, random=False)


@exportable
class CropPad(_WindowTransform):
    """Centre-crop or pad (no resizing) items to ``size``.

    Args:
        size: output ``int`` or ``(height, width)``.
        pad_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` where the output is larger than the image.

    Examples:
        >>> img = TensorImage(torch.ones(1, 2, 4, dtype=torch.uint8))
        >>> CropPad((4, 2))(img)[0].tolist()
        [[0, 0], [1, 1], [1, 1], [0, 0]]
    """

    def __init__(self, size: int | tuple[int, int], pad_mode: str = "zeros") -> None:
        super().__init__()
        self.size, self.size_ = size, _pair(size)
        self.pad_mode = _check_choice(pad_mode, PAD_MODES, "pad_mode")

    def window(self, h: int, w: int, train: bool) -> Window:
        return _place(h, w, *self.size_, random=False)


@exportable
class RandomCrop(_WindowTransform):
    """Crop ``size`` at a random position in training, at the centre in validation (pad images that are smaller).

    Args:
        size: output ``int`` or ``(height, width)``.
        pad_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` where the output is larger than the image.

    Examples:
        >>> img = TensorImage(torch.arange(16, dtype=torch.uint8).view(1, 4, 4))
        >>> RandomCrop(2)(img, split_idx=1)[0].tolist()
        [[5, 6], [9, 10]]
    """

    def __init__(self, size: int | tuple[int, int], pad_mode: str = "zeros") -> None:
        super().__init__()
        self.size, self.size_ = size, _pair(size)
        self.pad_mode = _check_choice(pad_mode, PAD_MODES, "pad_mode")

    def is_random(self, split_idx: int | None = None) -> bool:
        """Random everywhere but validation (``split_idx=1``)."""
        return split_idx != 1

    def window(self, h: int, w: int, train: bool) -> Window:
        return _place(h, w, *self.size_, random=train)


# ---------------------------------------------------------------- batch warping (used by lamina.vision.augment)


def homography_from_corners(corners: Tensor) -> Tensor:
    """The ``B x 3 x 3`` homographies mapping the output corners ``(-1,-1), (1,-1), (1,1), (-1,1)`` to ``corners``.

    Args:
        corners: ``B x 4 x 2`` normalized input coordinates of the 4 output corners, in that order.

    Examples:
        >>> square = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]])
        >>> torch.allclose(homography_from_corners(square), torch.eye(3)[None], atol=1e-6)
        True
    """
    src = corners.new_tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]).expand_as(corners)
    x, y = src[..., 0], src[..., 1]
    u, v = corners[..., 0], corners[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    a = torch.cat([rows_u, rows_v], 1)  # B x 8 x 8
    h = torch.linalg.solve(a, torch.cat([u, v], 1))
    return torch.cat([h, torch.ones_like(h[:, :1])], 1).view(-1, 3, 3)


def _is_affine(mats: Tensor) -> bool:
    last = mats[:, 2]
    return bool((last[:, :2] == 0).all() and (last[:, 2] == 1).all())


def _sampling_grid(mats: Tensor, out_hw: tuple[int, int], dtype: torch.dtype) -> Tensor:
    """The ``B x H x W x 2`` grid of input coordinates sampled for each output pixel."""
    n, (h, w) = mats.shape[0], out_hw
    # pixel centres in [-1, 1] (align_corners=False), mapped by broadcast arithmetic: affine_grid and a batched
    # matmul with inner size 3 are several times slower on the CPU
    ys = (torch.arange(h, device=mats.device, dtype=mats.dtype) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=mats.device, dtype=mats.dtype) * 2 + 1) / w - 1
    gx, gy = xs.view(1, 1, w), ys.view(1, h, 1)
    m = mats.view(n, 9, 1, 1)
    gx_out, gy_out = m[:, 0] * gx + m[:, 1] * gy + m[:, 2], m[:, 3] * gx + m[:, 4] * gy + m[:, 5]
    if not _is_affine(mats):
        den = (m[:, 6] * gx + m[:, 7] * gy + m[:, 8]).clamp_min(1e-6)
        gx_out, gy_out = gx_out / den, gy_out / den
    return torch.stack([gx_out, gy_out], -1).to(dtype)


def _to_normalized(pts: Tensor, wh: tuple[int, int]) -> Tensor:
    return (pts * 2 + 1) / pts.new_tensor(wh) - 1


def _to_pixels(pts: Tensor, wh: tuple[int, int]) -> Tensor:
    return ((pts + 1) * pts.new_tensor(wh) - 1) / 2


def _warp_points(pts: Tensor, inv: Tensor, in_wh: tuple[int, int], out_wh: tuple[int, int]) -> Tensor:
    """``B x N x 2`` pixel points of the input to where their content lands in the output."""
    u = _to_normalized(pts.float(), in_wh)
    hom = torch.cat([u, torch.ones_like(u[..., :1])], -1) @ inv.transpose(1, 2)
    return _to_pixels(hom[..., :2] / hom[..., 2:], out_wh)


def _move_boxes(boxes: Tensor, inv: Tensor, in_wh: tuple[int, int], out_wh: tuple[int, int]) -> Tensor:
    """``B x N x 4`` boxes: move the 4 corners, re-fit an axis-aligned box, clip (boxes that leave become 0)."""
    x1, y1, x2, y2 = boxes.float().unbind(-1)
    corners = torch.stack([x1, y1, x2, y1, x2, y2, x1, y2], -1).view(boxes.shape[0], -1, 2)
    moved = _warp_points(corners, inv, in_wh, out_wh).view(*boxes.shape[:2], 4, 2)
    fitted = torch.cat([moved.amin(2), moved.amax(2)], -1)
    empty = (boxes == 0).all(-1)
    return clip_boxes(fitted, out_wh, vanished=empty)


def _check_float(x: Tensor, is_mask: bool) -> None:
    if not is_mask and not x.is_floating_point():
        raise TypeError(f"batch augmentation needs float images, got {x.dtype}: put IntToFloatTensor before it")


def _warp_pixels(x: Tensor, grid: Tensor, mode: str, pad_mode: str, is_mask: bool) -> Tensor:
    _check_float(x, is_mask)
    if is_mask:
        res = F.grid_sample(x[:, None].float(), grid.float(), "nearest", pad_mode, align_corners=False)[:, 0]
        return res.round_().to(x.dtype)
    return F.grid_sample(x, grid.to(x.dtype), mode, pad_mode, align_corners=False)


def _check_batch(o: Tensor, ndim: int, what: str) -> None:
    if o.ndim != ndim:
        raise ValueError(
            f"batch augmentation expects a batch of {what} with {ndim} dims, got shape {tuple(o.shape)}: "
            "use it in after_batch (or add a batch dimension)"
        )


def warp_batch(
    x: Any, mats: Tensor, out_hw: tuple[int, int] | None = None, mode: str = "bilinear", pad_mode: str = "reflection"
) -> Any:
    """Warp every element of a batch (images, masks, points, boxes) by ``mats``, with one grid sample per element.

    Args:
        x: a batch element or a tuple of them; other elements (labels...) pass through.
        mats: ``B x 3 x 3`` output-to-input matrices in normalized coordinates.
        out_hw: output ``(height, width)``; the input's when ``None``.
        mode: ``"bilinear"`` or ``"nearest"`` for images (masks always use nearest).
        pad_mode: ``"reflection"``, ``"zeros"`` or ``"border"``.

    Examples:
        >>> img = TensorImage(torch.arange(4.0).view(1, 1, 1, 4))
        >>> pts = TensorPoint(torch.tensor([[[0.0, 0.0]]]), img_size=(4, 1))
        >>> flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))[None]
        >>> out_img, out_pts = warp_batch((img, pts), flip)
        >>> out_img.flatten().tolist(), out_pts.tolist()
        ([3.0, 2.0, 1.0, 0.0], [[[3.0, 0.0]]])
    """
    elements = x if isinstance(x, tuple) else (x,)
    in_hw = _batch_hw(elements)
    out_hw = out_hw or in_hw
    in_wh, out_wh = (in_hw[1], in_hw[0]), (out_hw[1], out_hw[0])
    pad = {"reflection": "reflection", "zeros": "zeros", "border": "border"}[pad_mode]
    has_pixels = any(isinstance(o, TensorImageBase) for o in elements)
    flips = _pure_flips(mats) if out_hw == in_hw else None
    grid = _sampling_grid(mats, out_hw, torch.float32) if has_pixels and flips is None else None
    inv = torch.linalg.inv(mats)
    res: list[Any] = []
    for o in elements:
        if isinstance(o, TensorBBox):
            _check_batch(o, 3, "boxes (B x N x 4)")
            res.append(TensorBBox(_move_boxes(o, inv, in_wh, out_wh), img_size=out_wh))
        elif isinstance(o, TensorPoint):
            _check_batch(o, 3, "points (B x N x 2)")
            res.append(TensorPoint(_warp_points(o, inv, in_wh, out_wh), img_size=out_wh))
        elif isinstance(o, TensorImageBase):
            is_mask = isinstance(o, TensorMask)
            _check_batch(o, 3 if is_mask else 4, "masks (B x H x W)" if is_mask else "images (B x C x H x W)")
            if flips is not None:
                _check_float(o, is_mask)
                res.append(retain_type(_flip_pixels(o, *flips), o))
            else:
                assert grid is not None
                res.append(retain_type(_warp_pixels(o, grid, mode, pad, is_mask), o))
        else:
            res.append(o)
    return tuple(res) if isinstance(x, tuple) else res[0]


def _pure_flips(mats: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(flip_x, flip_y)`` per image when every matrix is a pure mirror (diagonal of +-1, no shift): then pixel
    centres land exactly on pixel centres and flipping indices gives what sampling would, far cheaper."""
    eye_abs = torch.diag(mats.new_tensor([1.0, 1.0, 1.0]))
    if not bool((mats.abs() == eye_abs).all()) or not bool((mats[:, 2, 2] == 1).all()):
        return None
    return mats[:, 0, 0] < 0, mats[:, 1, 1] < 0


def _flip_pixels(o: Tensor, flip_x: Tensor, flip_y: Tensor) -> Tensor:
    shape = (-1,) + (1,) * (o.ndim - 1)
    if bool(flip_x.any()):
        o = torch.where(flip_x.view(shape), o.flip(-1), o)
    if bool(flip_y.any()):
        o = torch.where(flip_y.view(shape), o.flip(-2), o)
    return o


def _batch_hw(elements: Sequence[Any]) -> tuple[int, int]:
    """``(height, width)`` of a batch: from its images or masks, else from its points' ``img_size``."""
    for o in elements:
        if isinstance(o, TensorImageBase):
            return int(o.shape[-2]), int(o.shape[-1])
    for o in elements:
        if isinstance(o, TensorPoint) and o.__dict__.get("img_size") is not None:
            w, h = o.__dict__["img_size"]
            return int(h), int(w)
    raise ValueError("cannot tell the image size of the batch: give images, masks or points with img_size")
