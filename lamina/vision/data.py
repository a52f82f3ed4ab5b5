"""Vision data blocks (images, masks, points, boxes) and the item transforms they bring.

Each block says what its element needs at the three places of the data block API (see :mod:`lamina.data.block`):

* :func:`ImageBlock`: open the file as ``cls``; per batch ``IntToFloatTensor``.
* :func:`MaskBlock`: open the file as ``PILMask``; per item check its size against the image's, name its codes.
* :func:`PointBlock`: ``N x 2`` ``(x, y)`` pixels to ``TensorPoint``; per item take ``img_size`` from the image.
* :func:`BBoxBlock`: ``N x 4`` ``(x1, y1, x2, y2)`` pixels to ``TensorBBox``; ``img_size`` per item; zero padding.
* :func:`BBoxLblBlock`: one label per box, as vocab indices; padded with 0 (``'#na#'``) with the boxes.

Points and boxes stay in pixel coordinates of the current image: the item transforms of
:mod:`lamina.vision.transforms` and the batch augmentations of :mod:`lamina.vision.augment` move them with the
pixels. Items with different numbers of boxes are padded in ``before_batch`` (:class:`PadBoxes`), so they collate.

``dls.show_batch()`` draws every combination: the image, then each target on the same axis (a category or a number
as the title, a mask as an overlay, points as markers, boxes as rectangles with their labels).

The factories that build image DataLoaders in one call (``ImageDataLoaders``, ``SegmentationDataLoaders``) are in
:mod:`lamina.vision.factories`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lamina.core.tensors import (
    MultiCategory,
    TensorBBox,
    TensorImageBase,
    TensorMask,
    TensorMultiCategory,
    TensorPoint,
    retain_type,
)
from lamina.core.transform import ItemTransform, Transform, decodes, exportable
from lamina.data.block import TransformBlock
from lamina.data.transforms import IntToFloatTensor, MultiCategorize
from lamina.vision.core import _IMAGE_SOURCES, LoadImage
from lamina.vision.image import PILBase, PILImage, PILMask

__all__ = [
    "AddMaskCodes",
    "BBoxBlock",
    "BBoxLblBlock",
    "BoxLabels",
    "CheckMaskSize",
    "ImageBlock",
    "MaskBlock",
    "PadBoxes",
    "PointBlock",
    "SetImageSize",
]


# ---------------------------------------------------------------- transforms of the blocks


class _LoadNamed(LoadImage):
    """:class:`LoadImage` that remembers the file each image came from (``image.source``) for error messages.

    Like :class:`LoadImage` it takes every source an image class's ``create`` reads, not only paths."""

    def encodes(self, source: object) -> Any:
        img = super().encodes(source)
        if isinstance(source, (str, Path)):
            vars(img)["source"] = str(source)
        return img


def _source(img: Any) -> str:
    return str(vars(img).get("source", "<an image not loaded from a file>"))


@exportable
class CheckMaskSize(ItemTransform):
    """Check that every mask of an item has the size of the item's image (before any resize).

    A mask that does not match its image cannot be cropped or resized with it: the error names both files. A blank
    mask standing in for an unreadable file (``LoadImage(skip_bad=True)``) is resized to its image instead.

    Examples:
        >>> img, mask = PILImage.create(np.zeros((4, 6, 3), np.uint8)), PILMask.create(np.zeros((4, 5), np.uint8))
        >>> CheckMaskSize()((img, mask))
        Traceback (most recent call last):
        ...
        ValueError: the mask <an image not loaded from a file> is 5x4 pixels but its image ... is 6x4...
    """

    order = 1  # before ToTensor (5) and the resizing item transforms (6)

    def encodes(self, x: Any) -> Any:
        elements = x if isinstance(x, tuple) else (x,)
        images = [o for o in elements if isinstance(o, PILBase) and not isinstance(o, PILMask)]
        if images and isinstance(x, tuple):
            x = tuple(o.resize(images[0].size) if isinstance(o, PILMask) and vars(o).get("blank") else o for o in x)
            elements = x
        for mask in (o for o in elements if isinstance(o, PILMask)):
            if images and images[0].size != mask.size:
                (mw, mh), (iw, ih) = mask.size, images[0].size
                raise ValueError(
                    f"the mask {_source(mask)} is {mw}x{mh} pixels but its image {_source(images[0])} is {iw}x{ih}: "
                    "a mask must match its image pixel for pixel. Resize the mask file to its image's size "
                    "(PILMask.create(path).resize(image_size) keeps the codes), then give the DataBlock "
                    "item_tfms=Resize(size) to bring images and masks to one size together"
                )
        return x


@exportable
class AddMaskCodes(Transform):
    """Name the codes of masks: ``TensorMask.codes`` is set on the way in and on the way back (for showing).

    Args:
        codes: the name of each code, code 0 first; masks keep no names when ``None``.

    Examples:
        >>> m = AddMaskCodes(["background", "digit"])(TensorMask(torch.zeros(2, 2, dtype=torch.long)))
        >>> m.codes
        ['background', 'digit']
    """

    order = 7  # after ToTensor (5)

    def __init__(self, codes: Sequence[str] | None = None) -> None:
        super().__init__()
        self.codes = list(codes) if codes is not None else None

    def encodes(self, x: TensorMask) -> TensorMask:
        return self._named(x)

    @decodes
    def _decode(self, x: TensorMask) -> TensorMask:
        return self._named(x)

    def _named(self, x: TensorMask) -> TensorMask:
        out = TensorMask(x)
        if self.codes is not None:
            out.__dict__["codes"] = self.codes
        return out


def _coordinates(x: Any, width: int, what: str) -> Tensor:
    """``x`` (a list, array or tensor of numbers) as a float32 ``N x width`` tensor, checked."""
    if isinstance(x, Tensor):
        t = x.detach().float()
    else:
        try:
            t = torch.from_numpy(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError) as e:
            raise TypeError(f"{what} must be numbers, got {type(x).__name__} {x!r}") from e
    if t.numel() == 0:
        return t.reshape(0, width)
    if t.ndim > 2 or t.shape[-1] != width:
        raise ValueError(
            f"{what} must be N x {width} pixel coordinates, got shape {tuple(t.shape)}: make get_y return one "
            f"row of {width} numbers per {'point' if width == 2 else 'box'}"
        )
    return t.reshape(-1, width)


class _ToPoints(ItemTransform):
    """Points from a list/array of ``(x, y)`` pixel coordinates to a ``TensorPoint`` (``N x 2``)."""

    order = 1

    def encodes(self, x: Any) -> TensorPoint:
        return TensorPoint(_coordinates(x, 2, "points"))


class _ToBoxes(ItemTransform):
    """Boxes from a list/array of ``(x1, y1, x2, y2)`` pixel coordinates to a ``TensorBBox`` (``N x 4``)."""

    order = 1

    def encodes(self, x: Any) -> TensorBBox:
        boxes = _coordinates(x, 4, "boxes")
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if bool(bad.any()):
            k = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"box {k} {boxes[k].tolist()} has x2 < x1 or y2 < y1: boxes are (x1, y1, x2, y2), top-left corner "
                "first; convert (x, y, width, height) boxes with x2 = x + width, y2 = y + height"
            )
        return TensorBBox(boxes)


@exportable
class SetImageSize(ItemTransform):
    """Give the points and boxes of an item the ``img_size`` ``(width, height)`` of the item's image.

    Examples:
        >>> from lamina.core.tensors import TensorImage
        >>> img, pts = SetImageSize()((TensorImage(torch.zeros(3, 4, 6)), TensorPoint(torch.zeros(1, 2))))
        >>> pts.img_size
        (6, 4)
    """

    order = 6  # after ToTensor (5); Resize (also 6) sets the same value for its output

    def encodes(self, x: Any) -> Any:
        if not isinstance(x, tuple):
            return x
        image = next((o for o in x if isinstance(o, TensorImageBase)), None)
        if image is None:
            return x
        size = (int(image.shape[-1]), int(image.shape[-2]))
        return tuple(type(o)(o, img_size=size) if isinstance(o, TensorPoint) else o for o in x)


class _LabelsAsList(ItemTransform):
    """Box labels as a list (a tuple would otherwise be split element by element)."""

    order = 0

    def encodes(self, x: Any) -> list[Any]:
        if isinstance(x, str):
            raise TypeError(f"box labels must be a list with one label per box, got the string {x!r}")
        return list(x)


class BoxLabels(MultiCategory):
    """Decoded labels of the boxes of one item; drawn next to their boxes when it knows them.

    Args:
        labels: one label per box (``'#na#'`` for padding).
        boxes: the ``N x 4`` boxes, to place each label; without them the labels become the title.

    Examples:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> ax = BoxLabels(["cat", "#na#"], boxes=torch.tensor([[1.0, 1.0, 5.0, 5.0], [0, 0, 0, 0]])).show()
        >>> [t.get_text() for t in ax.texts]
        ['cat']
    """

    def __init__(self, labels: Sequence[Any] = (), boxes: Tensor | None = None) -> None:
        super().__init__(labels)
        self.boxes = boxes

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        """Write each label at the top-left corner of its box (padding and vanished boxes skipped)."""
        if self.boxes is None:
            return super().show(ctx=ctx, **kwargs)
        import matplotlib.pyplot as plt

        from lamina.core.show import _new_ax

        ax = _new_ax(ctx)
        colours = plt.get_cmap("tab10")
        boxes = self.boxes.detach().cpu().as_subclass(Tensor).reshape(-1, 4).tolist()
        for i, ((x1, y1, x2, y2), label) in enumerate(zip(boxes, self)):
            if x1 == y1 == x2 == y2 == 0 or label == "#na#":
                continue
            box = {"facecolor": colours(i % 10), "pad": 1}
            ax.text(x1, y1, str(label), color="white", fontsize=8, va="bottom", bbox=box)
        return ax


class _BoxCategorize(MultiCategorize):
    """``MultiCategorize`` whose decoded labels know their boxes (see :class:`_TieBoxLabels`)."""

    @decodes
    def _decode_boxes(self, x: TensorMultiCategory) -> BoxLabels:
        assert self.vocab_ is not None
        return BoxLabels([self.vocab_[int(i)] for i in x], boxes=x.__dict__.get("boxes"))


def _box_label_positions(x: tuple[Any, ...]) -> tuple[int | None, int | None]:
    boxes = next((k for k, o in enumerate(x) if isinstance(o, TensorBBox)), None)
    labels = next(
        (k for k, o in enumerate(x) if isinstance(o, TensorMultiCategory) and not o.is_floating_point()), None
    )
    return boxes, labels


class _TieBoxLabels(ItemTransform):
    """On decoding an item, hand its boxes to its box labels so the labels can be drawn on them."""

    order = 8

    @decodes
    def _decode(self, x: tuple) -> tuple:
        b, k = _box_label_positions(x)
        if b is None or k is None:
            return x
        out = list(x)
        out[k] = TensorMultiCategory(x[k], boxes=x[b])
        return tuple(out)


def _pad_rows(t: Tensor, n: int, value: float) -> Tensor:
    """``t`` (``N x ...``) with rows of ``value`` added to make ``n`` rows; type and metadata kept."""
    if len(t) == n:
        return t
    pad = t.new_full((n - len(t), *t.shape[1:]), value)
    return retain_type(torch.cat([t.as_subclass(Tensor), pad.as_subclass(Tensor)]), t)


class PadBoxes(Transform):
    """Pad the boxes (zeros) and box labels (index 0, ``'#na#'``) of a batch's items to the same number.

    Runs in ``before_batch`` on the list of items; an all-zero box is padding (``show`` skips it).

    Examples:
        >>> items = [(TensorBBox(torch.ones(2, 4)), TensorMultiCategory([1, 2])),
        ...          (TensorBBox(torch.ones(1, 4)), TensorMultiCategory([3]))]
        >>> boxes, labels = PadBoxes()(items)[1]
        >>> boxes.tolist(), labels.tolist()
        ([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]], [3, 0])
    """

    def encodes(self, items: list) -> list:
        positions = [_box_label_positions(it) for it in items]
        if all(b is None for b, _ in positions):
            return items
        n = max(len(it[b]) for it, (b, _) in zip(items, positions) if b is not None)
        out = []
        for j, (it, (b, k)) in enumerate(zip(items, positions)):
            if b is not None and k is not None and len(it[b]) != len(it[k]):
                raise ValueError(
                    f"item {j} of the batch has {len(it[b])} boxes but {len(it[k])} box labels: "
                    "the labels getter must give exactly one label per box"
                )
            new = list(it)
            for pos, value in ((b, 0.0), (k, 0)):
                if pos is not None:
                    new[pos] = _pad_rows(it[pos], n, value)
            out.append(tuple(new))
        return out


# ---------------------------------------------------------------- blocks


def ImageBlock(cls: type[PILBase] = PILImage, skip_bad: bool = False) -> TransformBlock:
    """Images as ``cls`` (colour ``PILImage`` by default) from files or from memory, scaled to floats in [0, 1] per
    batch. ``get_x`` may give a path, encoded bytes, a numpy array, a tensor or a PIL image (see :class:`LoadImage`).

    Those are the image on its own: when the items are something else (table rows, indices), a new item that is one
    of them skips ``get_x``, so ``dls.test_dl([path])`` and ``learn.predict(path)`` work after ``from_df``.

    Args:
        cls: the image class.
        skip_bad: replace unreadable files by blank images with a warning (see :class:`LoadImage`).

    Examples:
        >>> ImageBlock().batch_tfms
        [IntToFloatTensor(TensorImage, TensorMask)]
        >>> ImageBlock().type_tfms[0](np.zeros((28, 28), dtype=np.uint8)).shape  # an array in memory
        (3, 28, 28)
    """
    return TransformBlock(
        type_tfms=[_LoadNamed(cls, skip_bad=skip_bad)], batch_tfms=[IntToFloatTensor()], element_types=_IMAGE_SOURCES
    )


def MaskBlock(codes: Sequence[str] | None = None, skip_bad: bool = False) -> TransformBlock:
    """Segmentation masks (integer codes) from files or from memory, checked against their image's size, named by
    ``codes``.

    Args:
        codes: the name of each code, code 0 first.
        skip_bad: replace unreadable mask files by blank masks (all code 0) with a warning.

    Examples:
        >>> [type(t).__name__ for t in MaskBlock(codes=["background", "digit"]).item_tfms]
        ['CheckMaskSize', 'AddMaskCodes']
    """
    return TransformBlock(
        type_tfms=[_LoadNamed(PILMask, skip_bad=skip_bad)],
        item_tfms=[CheckMaskSize(), AddMaskCodes(codes)],
        batch_tfms=[IntToFloatTensor()],
        element_types=_IMAGE_SOURCES,
    )


def PointBlock() -> TransformBlock:
    """Keypoints: ``get_y`` gives ``(x, y)`` pixel coordinates (``N x 2``), they become a ``TensorPoint``.

    Every item of a batch must have the same number of points. ``img_size`` is taken from the item's image.

    Examples:
        >>> PointBlock().type_tfms[0]([(3, 4), (5, 6)]).tolist()
        [[3.0, 4.0], [5.0, 6.0]]
    """
    return TransformBlock(type_tfms=[_ToPoints()], item_tfms=[SetImageSize()])


def BBoxBlock() -> TransformBlock:
    """Bounding boxes: ``get_y`` gives ``(x1, y1, x2, y2)`` pixel boxes (``N x 4``), they become a ``TensorBBox``.

    Items may have different numbers of boxes: :class:`PadBoxes` pads them in ``before_batch``.

    Examples:
        >>> BBoxBlock().type_tfms[0]([[1, 2, 8, 9]]).tolist(), BBoxBlock().dl_kwargs
        ([[1.0, 2.0, 8.0, 9.0]], {'before_batch': [PadBoxes(list)]})
    """
    return TransformBlock(type_tfms=[_ToBoxes()], item_tfms=[SetImageSize()], dl_kwargs={"before_batch": [PadBoxes()]})


def BBoxLblBlock(vocab: Sequence[Any] | None = None, add_na: bool = True) -> TransformBlock:
    """The label of each box (one per box, in the boxes' order), as indices in a vocab.

    Padding labels get index 0, so keep ``add_na=True`` (index 0 is then ``'#na#'``) when items have different
    numbers of boxes.

    Args:
        vocab: the labels; learned (sorted) from the training items when ``None``.
        add_na: reserve index 0 for ``'#na#'`` (the padding).

    Examples:
        >>> block = BBoxLblBlock(vocab=["cat", "dog"])
        >>> block.type_tfms[1](["dog", "dog"]).tolist()
        [2, 2]
    """
    categorize = _BoxCategorize(vocab=vocab, add_na=add_na)
    return TransformBlock(
        type_tfms=[_LabelsAsList(), categorize], item_tfms=[_TieBoxLabels()], dl_kwargs={"before_batch": [PadBoxes()]}
    )
