"""Vision I/O: the image classes (from :mod:`lamina.vision.image`), a checker for unreadable files, a loader.

Pillow and torch only; nothing here knows about the learner.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor

from lamina.core.transform import Transform, exportable
from lamina.core.utils import describe_item
from lamina.vision.image import (
    _DECODE_ERRORS,
    ImageLoadError,
    PILBase,
    PILImage,
    PILImageBW,
    PILMask,
    open_image,
    to_colour_mode,
    to_mask_mode,
)

__all__ = [
    "ImageLoadError",
    "LoadImage",
    "PILBase",
    "PILImage",
    "PILImageBW",
    "PILMask",
    "image_classes",
    "open_image",
    "to_colour_mode",
    "to_mask_mode",
    "verify_images",
]


def image_classes() -> dict[str, type[PILBase]]:
    """The image classes :class:`LoadImage` accepts, by name.

    Examples:
        >>> sorted(image_classes())
        ['PILImage', 'PILImageBW', 'PILMask']
    """
    return {c.__name__: c for c in (PILImage, PILImageBW, PILMask)}


def _is_readable(path: Path) -> bool:
    """The file opens and decodes completely (every pixel read, not only the header)."""
    try:
        with Image.open(path) as im:
            im.load()
    except _DECODE_ERRORS:  # FileNotFoundError is an OSError: a missing file is unreadable too
        return False
    return True


def verify_images(paths: Iterable[str | Path], n_workers: int = 0) -> list[Path]:
    """The files among ``paths`` that cannot be fully decoded (truncated, corrupt, missing), in input order.

    Every file is decoded completely, so this takes about as long as reading the data set once.

    Args:
        paths: image files.
        n_workers: threads to decode with (Pillow releases the GIL while decoding); 0 decodes in this thread.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("L", (8, 8)).save(folder / "good.png")
        >>> _ = (folder / "bad.png").write_bytes((folder / "good.png").read_bytes()[:30])
        >>> [p.name for p in verify_images([folder / "good.png", folder / "bad.png"])]
        ['bad.png']
    """
    if n_workers < 0:
        raise ValueError(f"n_workers must be >= 0, got {n_workers}")
    items = [Path(p) for p in paths]
    if n_workers == 0:
        ok = [_is_readable(p) for p in items]
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            ok = list(pool.map(_is_readable, items))
    return [p for p, good in zip(items, ok) if not good]


_IMAGE_SOURCES = (str, Path, bytes, np.ndarray, Tensor, Image.Image, PILBase)
_EXPECTED_SOURCES = (
    "a path (str or Path), encoded bytes, an H x W [x C] numpy array, a [C x] H x W tensor or a PIL / lamina image"
)


@exportable
class LoadImage(Transform):
    """Make ``cls`` from any image source ``cls.create`` reads (a path, bytes, an array, a tensor, a PIL image);
    the first step of a vision pipeline. Anything else is refused with the item and the sources it accepts.

    With ``skip_bad=True`` a truncated or corrupt file does not stop training: it is replaced by a blank (black)
    image of the size of the last image that loaded (of ``size_hint`` before any, else 1 x 1; a later resize
    step makes it fit the batch) and a ``UserWarning`` names the file. Use it to get through a long run; then
    run :func:`verify_images` and remove the files it lists. A missing file still raises ``FileNotFoundError``.

    Args:
        cls: the image class (or its name): ``PILImage``, ``PILImageBW`` or ``PILMask``.
        skip_bad: replace unreadable files by blank images with a warning instead of raising ``ImageLoadError``.
        size_hint: ``(width, height)`` the images are about to be resized to (JPEGs then decode faster).

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "grey.png"
        >>> Image.new("L", (6, 4), 9).save(path)
        >>> LoadImage()(path).to_tensor().shape  # a colour image: the grey plane on 3 channels
        torch.Size([3, 4, 6])
        >>> LoadImage(PILImageBW)(str(path)).to_tensor().shape
        torch.Size([1, 4, 6])
        >>> LoadImage(PILImageBW)(np.zeros((2, 5), dtype=np.uint8)).size  # an array in memory: H x W
        (5, 2)
    """

    def __init__(
        self,
        cls: type[PILBase] | str = PILImage,
        skip_bad: bool = False,
        size_hint: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        name = cls if isinstance(cls, str) else cls.__name__
        known = image_classes()
        if name not in known or (not isinstance(cls, str) and known[name] is not cls):
            raise ValueError(f"LoadImage: cls must be one of {sorted(known)} (or its name), got {cls!r}")
        self.cls, self.skip_bad, self.size_hint = name, skip_bad, size_hint
        self._image_cls = known[name]
        self._last_size: tuple[int, int] | None = None

    def encodes(self, source: object) -> Any:
        if not isinstance(source, _IMAGE_SOURCES):
            raise TypeError(
                f"LoadImage({self.cls}) cannot make an image of {describe_item(source)} ({type(source).__name__}): "
                f"it expects {_EXPECTED_SOURCES}. Make get_x (or the getter of the image block) return one of these"
            )
        try:
            img = self._image_cls.create(source, size_hint=self.size_hint)
        except ImageLoadError as e:
            if not self.skip_bad:
                raise
            return self._blank(source, e)
        self._last_size = img.size
        return img

    def _blank(self, source: object, error: ImageLoadError) -> PILBase:
        size = self._last_size or self.size_hint or 1
        size = (size, size) if isinstance(size, int) else size
        name = source if isinstance(source, (str, Path)) else describe_item(source)
        warnings.warn(
            f"LoadImage(skip_bad=True): {name} is unreadable ({error.__cause__!r}); using a blank {size[0]}x"
            f"{size[1]} image instead. Run verify_images(paths) to list unreadable files, then remove them",
            UserWarning,
            stacklevel=2,
        )
        img = self._image_cls.create(Image.new("I" if self.cls == "PILMask" else "L", size, 0))
        vars(img)["blank"] = True  # a stand-in: a blank mask takes its image's size (see CheckMaskSize)
        return img
