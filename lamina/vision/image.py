"""Images as thin wrappers around a ``PIL.Image.Image``, each with one defined conversion from whatever was read.

Every source (a path, bytes, a numpy array, a tensor or a PIL image) goes through the same steps: open, decode
(JPEGs are downscaled while decoding when a smaller ``size_hint`` is given), turn by the EXIF orientation, then
convert to the class's mode:

==================  =====================================================================================
class               conversion
==================  =====================================================================================
:class:`PILImage`   ``RGB``. Alpha (RGBA, LA, palettes with transparency) is composited on white; 16-bit
                    and 32-bit integer greys are scaled to 8 bits (``v / 257``); float greys are clipped to
                    [0, 1] and scaled to [0, 255]; palettes, greys and CMYK go through Pillow's ``convert``.
:class:`PILImageBW` ``L`` (8-bit grey), with the same alpha and bit-depth rules.
:class:`PILMask`    integer codes: palette indices and grey levels are kept as they are (never looked up in
                    the palette), 16/32-bit codes are kept as 32-bit integers (mode ``I``), RGB is accepted
                    only when its three channels are equal.
==================  =====================================================================================

Arrays are ``H x W [x C]`` (numpy's layout), tensors ``[C x] H x W`` (torch's); floats are read as [0, 1].
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps
from torch import Tensor

from lamina.core.tensors import TensorImage, TensorImageBase, TensorImageBW, TensorMask, retype

__all__ = [
    "ImageLoadError",
    "PILBase",
    "PILImage",
    "PILImageBW",
    "PILMask",
    "open_image",
    "to_colour_mode",
    "to_mask_mode",
]

ImageSource = str | Path | bytes | np.ndarray | Tensor | Image.Image
_FIX = "run verify_images(paths) to list unreadable files, then remove them"
# what Pillow raises on truncated or corrupt data (UnidentifiedImageError is an OSError)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_BYTE_MODES = {"L": 1, "RGB": 3, "RGBA": 4}  # modes whose raw bytes are uint8 pixels, and their channels
_P = TypeVar("_P", bound="PILBase")


class ImageLoadError(OSError):
    """An image file could not be opened or decoded; the message names the file and how to find the others.

    Examples:
        >>> try:
        ...     PILImage.create(b"not an image")
        ... except ImageLoadError as e:
        ...     print(str(e).split(" (")[0])
        <bytes>: cannot identify the image
    """


def _source_name(src: Any) -> str:
    if isinstance(src, (str, Path)):
        return str(src)
    return f"<{type(src).__name__}>"


def _as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """``n`` -> ``(n, n)``; a ``(width, height)`` pair is checked and returned."""
    w, h = (size, size) if isinstance(size, int) else size
    if w < 1 or h < 1:
        raise ValueError(f"an image size is (width, height) with both >= 1, got {size!r}")
    return int(w), int(h)


def _array_to_8bit(a: np.ndarray) -> np.ndarray:
    """uint8 as is; floats as [0, 1]; other integers as is when they fit in 0..255, else as int32 codes."""
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        return (np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if a.dtype.kind in "biu" and a.dtype != np.uint16:
        fits = a.size == 0 or (a.min() >= 0 and a.max() <= 255)
        return a.astype(np.uint8 if fits else np.int32)
    if a.dtype == np.uint16 and a.ndim == 2:
        return a
    raise ValueError(f"cannot make an image from an array of dtype {a.dtype} and shape {a.shape}")


def _from_array(a: np.ndarray, channels_first: bool) -> Image.Image:
    """A PIL image from ``H x W``, ``H x W x C`` (or ``C x H x W`` when ``channels_first``) with C in 1, 3, 4."""
    if a.ndim == 3 and channels_first:
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))):
        layout = "C x H x W" if channels_first else "H x W x C"
        raise ValueError(f"an image array must be H x W or {layout} with C in (1, 3, 4), got shape {a.shape}")
    a = np.ascontiguousarray(_array_to_8bit(a))
    if a.ndim == 3 and a.dtype != np.uint8:
        a = a.astype(np.uint8)
    return Image.fromarray(a)


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(ExifTags.Base.Orientation, 1))
    except _DECODE_ERRORS:
        return 1


def open_image(
    src: ImageSource, draft_mode: str | None = None, size_hint: int | tuple[int, int] | None = None
) -> Image.Image:
    """Open, decode and orient an image from any source; no mode conversion (see :meth:`PILBase.create`).

    Args:
        src: a path, encoded bytes, an ``H x W [x C]`` array, a ``[C x] H x W`` tensor or a PIL image.
        draft_mode: the mode a JPEG is decoded to when ``size_hint`` is given (``"RGB"`` or ``"L"``).
        size_hint: ``(width, height)`` (or one int) the image will be shrunk to: a JPEG is decoded at the
            smallest scale (1, 1/2, 1/4 or 1/8) that is still at least this big.

    Raises:
        ImageLoadError: the file is truncated or corrupt (the message names it and the fix).
        FileNotFoundError: the path does not exist.

    Examples:
        >>> open_image(np.zeros((2, 3), dtype=np.uint8)).size
        (3, 2)
    """
    if isinstance(src, Image.Image):
        return src
    if isinstance(src, Tensor):
        return _from_array(src.detach().cpu().as_subclass(Tensor).numpy(), channels_first=True)
    if isinstance(src, np.ndarray):
        return _from_array(src, channels_first=False)
    fp = io.BytesIO(src) if isinstance(src, bytes) else src
    step, im = "identify", None
    try:
        im = Image.open(fp)
        step = "decode"
        if draft_mode is not None and size_hint is not None and im.format == "JPEG":
            w, h = _as_size(size_hint)
            im.draft(draft_mode, (h, w) if _orientation(im) in _TRANSPOSED else (w, h))
        im.load()
        # a loaded PNG has read any EXIF chunk into info: without one, no orientation to look up (which loads again)
        if (im.format != "PNG" or "exif" in im.info) and _orientation(im) != 1:
            ImageOps.exif_transpose(im, in_place=True)
    except FileNotFoundError:
        raise
    except _DECODE_ERRORS as e:
        if im is not None:  # PIL keeps a file it opened itself until the image is closed
            im.close()
        raise ImageLoadError(
            f"{_source_name(src)}: cannot {step} the image ({type(e).__name__}: {e}). The file is truncated or "
            f"corrupt: {_FIX} (or load through LoadImage(skip_bad=True) to replace them with blank images)"
        ) from e
    return im


def _to_8bit_grey(im: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer greys scaled by 1/257 (65535 -> 255); float greys read as [0, 1]."""
    a = np.asarray(im)
    if im.mode == "F":
        return Image.fromarray((np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8))
    return Image.fromarray((np.clip(a.astype(np.float64), 0, 65535) / 257.0).round().astype(np.uint8))


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info)


def _on_white(im: Image.Image) -> Image.Image:
    """Composite an image with transparency on a white background, as RGB."""
    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, im.convert("RGBA")).convert("RGB")


def to_colour_mode(im: Image.Image, mode: str) -> Image.Image:
    """``im`` as ``"RGB"`` or ``"L"``: alpha composited on white, high bit depths scaled to 8 bits.

    Args:
        im: any PIL image.
        mode: ``"RGB"`` or ``"L"``.

    Examples:
        >>> to_colour_mode(Image.new("RGBA", (1, 1), (255, 0, 0, 0)), "RGB").getpixel((0, 0))
        (255, 255, 255)
    """
    if im.mode == mode:
        return im
    if im.mode in _HIGH_DEPTH:
        im = _to_8bit_grey(im)
    elif _has_alpha(im):
        im = _on_white(im)
    return im if im.mode == mode else im.convert(mode)


def to_mask_mode(im: Image.Image) -> Image.Image:
    """``im`` as integer codes: ``"L"`` for 8-bit codes, ``"I"`` for wider ones; palettes keep their indices.

    Examples:
        >>> p = Image.new("P", (2, 1), 3); p.putpalette([0, 0, 0] * 3 + [200, 10, 10])
        >>> np.asarray(to_mask_mode(p)).tolist()
        [[3, 3]]
    """
    if im.mode in ("L", "I"):
        return im
    if im.mode in ("P", "PA", "LA"):
        return Image.fromarray(np.asarray(im)[..., 0] if im.mode != "P" else np.asarray(im))
    if im.mode == "1":
        return Image.fromarray(np.asarray(im).astype(np.uint8))
    if im.mode.startswith("I;16"):
        return Image.fromarray(np.asarray(im).astype(np.int32))
    a = np.asarray(im.convert("RGB"))
    if (a == a[..., :1]).all():
        return Image.fromarray(np.ascontiguousarray(a[..., 0]))
    raise ValueError(
        f"a mask must hold integer codes, got a {im.mode} image with colours: save masks as palette (P) or "
        "greyscale (L) PNGs, or map each colour to a code before loading"
    )


class PILBase:
    """An image held as a ``PIL.Image.Image`` in one fixed mode, converted on creation (see the module doc).

    Args:
        image: a PIL image already in one of the class's ``modes``; use :meth:`create` to convert anything else.

    Examples:
        >>> PILImage(Image.new("RGB", (4, 2))).size
        (4, 2)
    """

    modes: ClassVar[tuple[str, ...]] = ("RGB", "L", "I")
    draft_mode: ClassVar[str | None] = None
    default_resample: ClassVar[Image.Resampling] = Image.Resampling.BILINEAR

    def __init__(self, image: Image.Image) -> None:
        if not isinstance(image, Image.Image) or image.mode not in self.modes:
            got = image.mode if isinstance(image, Image.Image) else type(image).__name__
            raise ValueError(
                f"{type(self).__name__} holds a PIL image in mode {' or '.join(self.modes)}, got {got}: "
                f"use {type(self).__name__}.create(...) to convert it"
            )
        self.image = image

    @classmethod
    def _convert(cls, im: Image.Image) -> Image.Image:
        return im

    @classmethod
    def create(cls: type[_P], src: ImageSource | PILBase, size_hint: int | tuple[int, int] | None = None) -> _P:
        """Read ``src`` (path, bytes, array, tensor, PIL image or another lamina image) into this class.

        Args:
            src: the image source; arrays are ``H x W [x C]``, tensors ``[C x] H x W``, floats in [0, 1].
            size_hint: ``(width, height)`` the image is about to be shrunk to; JPEGs decode faster and smaller
                (at least this big) when it is given. Other formats ignore it.

        Examples:
            >>> PILImageBW.create(torch.zeros(1, 5, 7)).size
            (7, 5)
        """
        if isinstance(src, PILBase):
            src = src.image
        im = open_image(src, cls.draft_mode, size_hint)
        try:
            return cls(cls._convert(im))
        except ValueError as e:
            raise ValueError(f"{_source_name(src)}: {e}") from None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels, as in PIL.

        Examples:
            >>> PILImage.create(np.zeros((2, 3, 3), dtype=np.uint8)).size
            (3, 2)
        """
        return self.image.size

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape :meth:`to_tensor` gives: ``(C, H, W)`` for images, ``(H, W)`` for masks.

        Examples:
            >>> PILImage.create(np.zeros((2, 3, 3), dtype=np.uint8)).shape
            (3, 2, 3)
        """
        w, h = self.size
        return (h, w)

    def _array(self) -> np.ndarray:
        im = self.image
        if im.mode in _BYTE_MODES:  # the raw bytes in a writable buffer: a third cheaper than np.array(image)
            w, h = im.size
            channels = _BYTE_MODES[im.mode]
            return np.frombuffer(bytearray(im.tobytes()), np.uint8).reshape(
                (h, w, channels) if channels > 1 else (h, w)
            )
        return np.array(im)

    def to_tensor(self) -> TensorImageBase:
        """The image as a typed tensor, channels first (each class gives its own type, dtype and layout).

        Examples:
            >>> PILMask.create(np.ones((2, 2), dtype=np.uint8)).to_tensor().tolist()
            [[1, 1], [1, 1]]
        """
        t = torch.from_numpy(self._array())
        return retype(t.permute(2, 0, 1).contiguous() if t.ndim == 3 else t, TensorImageBase)

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        """Draw the image on ``ctx`` (a new axis when ``None``) through its tensor's ``show`` and return the axis.

        Examples:
            >>> import matplotlib; matplotlib.use("Agg")
            >>> ax = PILImage.create(np.zeros((4, 4, 3), dtype=np.uint8)).show()
            >>> type(ax).__name__
            'Axes'
        """
        return self.to_tensor().show(ctx=ctx, **kwargs)

    def resize(self: _P, size: int | tuple[int, int], resample: Image.Resampling | None = None) -> _P:
        """A new image of this class resized to ``size`` (``(width, height)`` or one int for a square).

        Args:
            size: the new ``(width, height)``.
            resample: a ``PIL.Image.Resampling`` filter; bilinear for images, nearest for masks by default.

        Examples:
            >>> PILMask.create(np.eye(4, dtype=np.uint8)).resize((8, 2)).size
            (8, 2)
        """
        im = self.image.resize(_as_size(size), self.default_resample if resample is None else resample)
        return type(self)(im)

    def __repr__(self) -> str:
        w, h = self.size
        return f"{type(self).__name__} mode={self.image.mode} size={w}x{h}"


class PILImage(PILBase):
    """A colour image; :meth:`to_tensor` gives a ``TensorImage`` uint8 ``3 x H x W``.

    A colour source is held in mode ``RGB``. A grey source stays in mode ``L`` until :meth:`to_tensor` repeats it on
    the three channels: resizing and cropping then touch a third of the bytes, with the same result (they work on
    each channel alone).

    Examples:
        >>> img = PILImage.create(np.full((2, 3), 7, dtype=np.uint8))  # grey is repeated on 3 channels
        >>> img, img.to_tensor().shape, img.to_tensor()[:, 0, 0].tolist()
        (PILImage mode=L size=3x2, torch.Size([3, 2, 3]), [7, 7, 7])
    """

    modes: ClassVar[tuple[str, ...]] = ("RGB", "L")
    draft_mode: ClassVar[str | None] = "RGB"

    @classmethod
    def _convert(cls, im: Image.Image) -> Image.Image:
        return to_colour_mode(im, "L" if im.mode in ("L", *_HIGH_DEPTH) else "RGB")  # grey stays one plane

    @property
    def shape(self) -> tuple[int, ...]:
        """``(3, H, W)``, the shape of :meth:`to_tensor`."""
        w, h = self.size
        return (3, h, w)

    def to_tensor(self) -> TensorImage:
        """The image as a ``TensorImage`` of uint8, ``3 x H x W``."""
        t = torch.from_numpy(self._array())
        if t.ndim == 2:  # a grey source: the same plane on the three channels
            return retype(t[None].expand(3, -1, -1).contiguous(), TensorImage)
        return retype(t.permute(2, 0, 1).contiguous(), TensorImage)


class PILImageBW(PILBase):
    """A greyscale image in mode ``L``; :meth:`to_tensor` gives a ``TensorImageBW`` uint8 ``1 x H x W``.

    Examples:
        >>> PILImageBW.create(np.zeros((2, 3, 3), dtype=np.uint8)).to_tensor().shape
        torch.Size([1, 2, 3])
    """

    modes: ClassVar[tuple[str, ...]] = ("L",)
    draft_mode: ClassVar[str | None] = "L"

    @classmethod
    def _convert(cls, im: Image.Image) -> Image.Image:
        return to_colour_mode(im, "L")

    @property
    def shape(self) -> tuple[int, ...]:
        """``(1, H, W)``, the shape of :meth:`to_tensor`."""
        w, h = self.size
        return (1, h, w)

    def to_tensor(self) -> TensorImageBW:
        """The image as a ``TensorImageBW`` of uint8, ``1 x H x W``."""
        return retype(torch.from_numpy(self._array())[None], TensorImageBW)


class PILMask(PILBase):
    """A segmentation mask of integer codes (mode ``L`` or ``I``); :meth:`to_tensor` gives an int64 ``TensorMask``.

    Palette PNGs keep their palette indices as codes. JPEG masks are not downscaled on decode (the codes would
    blur), and resizing uses nearest-neighbour so no new codes appear.

    Examples:
        >>> m = PILMask.create(np.array([[0, 2], [1, 2]], dtype=np.uint8))
        >>> m.to_tensor().dtype, m.shape
        (torch.int64, (2, 2))
    """

    modes: ClassVar[tuple[str, ...]] = ("L", "I")
    default_resample: ClassVar[Image.Resampling] = Image.Resampling.NEAREST

    @classmethod
    def _convert(cls, im: Image.Image) -> Image.Image:
        return to_mask_mode(im)

    def to_tensor(self) -> TensorMask:
        """The mask as a ``TensorMask`` of int64 codes, ``H x W``."""
        return retype(torch.from_numpy(self._array().astype(np.int64)), TensorMask)
