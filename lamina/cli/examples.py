"""The example commands: ``lamina quickstart`` (the main job: an image classifier on real MNIST digits, trained,
exported without pickle and reloaded), ``lamina demo`` (the lower floors on MNIST tensors) and ``lamina serve``
(an exported learner over HTTP, see :mod:`lamina.serve`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parsers", "demo", "quickstart"]

QUICKSTART_EXAMPLE = """example:
  lamina quickstart --out lamina_out --epochs 3      # about a minute on a laptop; 98% accuracy
"""
DEMO_EXAMPLE = """example:
  lamina demo --out lamina_out                        # Datasets, DataLoaders and a Learner on MNIST tensors
"""
SERVE_EXAMPLE = """example:
  lamina quickstart --out lamina_out            # trains and writes lamina_out/mnist.lamina
  lamina serve lamina_out/mnist.lamina --port 8000   # then open http://127.0.0.1:8000/ and drop a digit, or:
  curl -F file=@digit.png http://127.0.0.1:8000/predict
"""


def _mnist_dls(seed: int = 0) -> Any:
    """The MNIST sample as Datasets (item pipelines for image and label) and DataLoaders (batch normalization)."""
    import numpy as np
    import torch

    from lamina.core.tensors import TensorImageBW, retype
    from lamina.core.transform import ItemTransform
    from lamina.data import Categorize, Datasets, IntToFloatTensor, Normalize, mnist_sample_arrays

    class Image(ItemTransform):
        def encodes(self, item: tuple) -> TensorImageBW:
            return retype(torch.from_numpy(np.ascontiguousarray(item[0]))[None], TensorImageBW)

    class Label(ItemTransform):
        def encodes(self, item: tuple) -> str:
            return str(int(item[1]))

    d = mnist_sample_arrays()
    items = list(zip(d["x_train"], d["y_train"])) + list(zip(d["x_valid"], d["y_valid"]))
    n_train = len(d["y_train"])
    splits = [list(range(n_train)), list(range(n_train, len(items)))]
    dsets = Datasets(items, [[Image()], [Label(), Categorize()]], splits=splits)
    return dsets.dataloaders(bs=64, after_batch=[IntToFloatTensor(), Normalize()], seed=seed), d


def demo(out: Path, epochs: int = 2) -> int:
    """Load real MNIST digits through the data floor, train a small CNN with one-cycle, report and draw."""
    import torch
    from torch import nn

    from lamina.learner import Learner, accuracy

    torch.manual_seed(0)
    start = time.perf_counter()
    dls, d = _mnist_dls()
    xb, yb = dls.one_batch()
    print(f"MNIST sample: {len(dls.train.dataset)} training, {len(dls.valid.dataset)} validation digits")
    print(f"a batch: {type(xb).__name__} {tuple(xb.shape)}, {type(yb).__name__} {tuple(yb.shape)}; vocab {dls.vocab}")
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip
    learn = Learner(dls, model, metrics=[accuracy], path=out)
    learn.fit_one_cycle(epochs, 5e-3)
    loss, acc = learn.validate()
    print(f"validation accuracy after {epochs} epochs: {acc:.2%} (loss {loss:.4f})")
    label, _, probs = learn.predict((d["x_valid"][123], -1))
    print(f"predict(validation digit 123): {label!r} with p={float(probs.max()):.3f}, true {d['y_valid'][123]}")
    out.mkdir(parents=True, exist_ok=True)
    dls.show_batch(max_n=16).savefig(out / "show_batch.png", bbox_inches="tight")
    learn.recorder.plot_loss().savefig(out / "loss.png", bbox_inches="tight")
    saved = learn.save("mnist_demo")
    print(f"wrote {out / 'show_batch.png'}, {out / 'loss.png'} and {saved}")
    print(f"total time {time.perf_counter() - start:.1f}s")
    return 0


def quickstart(out: Path, epochs: int = 3, arch: str = "simple_cnn", lr: float = 1e-2) -> int:
    """The main job: train an image classifier on the real MNIST sample from scratch (images read from PNG files),
    report accuracy, draw results and a confusion matrix, export without pickle, reload and predict."""
    import torch

    from lamina.datasets import mnist_sample
    from lamina.learner import CrossEntropyLossFlat, accuracy, load_learner
    from lamina.vision import ClassificationInterpretation, ImageDataLoaders, PILImageBW, show_results, vision_learner

    torch.manual_seed(0)
    start = time.perf_counter()
    path = mnist_sample(out / "data")
    dls = ImageDataLoaders.from_folder(path, img_cls=PILImageBW, bs=64, seed=0)
    print(f"MNIST sample in {path}: {len(dls.train.dataset)} training, {len(dls.valid.dataset)} validation digits")
    smoothed = CrossEntropyLossFlat(label_smoothing=0.1)  # with three epochs from scratch, worth about half a point
    learn = vision_learner(dls, arch, pretrained=False, loss_func=smoothed, metrics=[accuracy], path=out)
    learn.fit_one_cycle(epochs, lr)
    loss, acc = learn.validate()
    print(f"validation accuracy after {epochs} epochs: {acc:.2%} (loss {loss:.4f})")
    out.mkdir(parents=True, exist_ok=True)
    sample = learn.dls.valid.new(shuffle=True, seed=1)  # the folder is sorted by digit: show a mix
    show_results(learn, dl=sample, max_n=16).savefig(out / "results.png", bbox_inches="tight")
    interp = ClassificationInterpretation.from_learner(learn)
    interp.plot_confusion_matrix().savefig(out / "confusion_matrix.png", bbox_inches="tight")
    print("most confused (actual, predicted, count):", interp.most_confused(min_val=2)[:5])
    exported = learn.export("mnist.lamina")
    image = next(iter(sorted((path / "valid" / "7").glob("*.png"))))
    label, _, probs = load_learner(exported).predict(image)
    p_max = float(probs.max())
    print(f"reloaded {exported.name} (no pickle) and predicted {image.name} in valid/7: {label!r}, p={p_max:.3f}")
    print(f"wrote {out / 'results.png'}, {out / 'confusion_matrix.png'}, {exported}")
    print(f"total time {time.perf_counter() - start:.1f}s")
    return 0


def _run_example(args: argparse.Namespace) -> int:
    if args.command == "quickstart":
        return quickstart(args.out, args.epochs, args.arch)
    return demo(args.out, args.epochs)


def _run_serve(args: argparse.Namespace) -> int:
    from lamina.serve import serve

    try:
        serve(args.model, args.host, args.port, args.max_batch, args.max_wait_ms)
    except (FileNotFoundError, ImportError, ValueError) as e:
        print(f"lamina serve: {e}", file=sys.stderr)
        return 1
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``quickstart``, ``demo`` and ``serve`` to the ``lamina`` sub-parsers ``sub``."""
    fmt = argparse.RawDescriptionHelpFormatter
    p_quick = sub.add_parser("quickstart", help="train an image classifier on real MNIST digits, export and predict",
                             epilog=QUICKSTART_EXAMPLE, formatter_class=fmt)  # fmt: skip
    p_quick.add_argument("--out", type=Path, default=Path("lamina_out"), help="folder for data, pictures and exports")
    p_quick.add_argument("--epochs", type=int, default=3, help="epochs of one-cycle training")
    p_quick.add_argument("--arch", default="simple_cnn", help="a registered architecture, trained from scratch")
    p_quick.set_defaults(run=_run_example)
    p_demo = sub.add_parser("demo", help="the lower floors on MNIST tensors: a small CNN, pictures and a checkpoint",
                            epilog=DEMO_EXAMPLE, formatter_class=fmt)  # fmt: skip
    p_demo.add_argument("--out", type=Path, default=Path("lamina_out"), help="folder for pictures and the model")
    p_demo.add_argument("--epochs", type=int, default=2, help="training epochs")
    p_demo.set_defaults(run=_run_example)
    p_serve = sub.add_parser("serve", help="serve an exported learner over HTTP (needs lamina[serve])",
                             formatter_class=fmt, epilog=SERVE_EXAMPLE)  # fmt: skip
    p_serve.add_argument("model", type=Path, help="a file written by learn.export()")
    p_serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p_serve.add_argument("--port", type=int, default=8000, help="TCP port")
    p_serve.add_argument("--max-batch", type=int, default=32, help="most requests run through the model at once")
    p_serve.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits to share a batch")
    p_serve.set_defaults(run=_run_serve)
