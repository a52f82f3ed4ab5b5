"""Vision application: image types and I/O (the data blocks, models and learner come on top of these)."""

from lamina.vision.core import (
    ImageLoadError,
    LoadImage,
    PILBase,
    PILImage,
    PILImageBW,
    PILMask,
    image_classes,
    open_image,
    to_colour_mode,
    to_mask_mode,
    verify_images,
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
