"""The ``lamina`` command: ``lamina demo`` shows the data floor on real MNIST digits."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def demo(out: Path) -> int:
    """Load the MNIST sample through Datasets and DataLoaders, print what a batch is, and save a picture of one."""
    import numpy as np
    import torch

    from lamina.core.tensors import TensorImageBW
    from lamina.core.transform import ItemTransform
    from lamina.data import Categorize, Datasets, IntToFloatTensor, Normalize, mnist_sample_arrays

    class Image(ItemTransform):
        def encodes(self, item: tuple) -> TensorImageBW:
            return TensorImageBW(torch.from_numpy(np.ascontiguousarray(item[0]))[None])

    class Label(ItemTransform):
        def encodes(self, item: tuple) -> str:
            return str(int(item[1]))

    start = time.perf_counter()
    d = mnist_sample_arrays()
    items = list(zip(d["x_train"], d["y_train"])) + list(zip(d["x_valid"], d["y_valid"]))
    n_train = len(d["y_train"])
    splits = [list(range(n_train)), list(range(n_train, len(items)))]
    dsets = Datasets(items, [[Image()], [Label(), Categorize()]], splits=splits)
    dls = dsets.dataloaders(bs=64, after_batch=[IntToFloatTensor(), Normalize()], seed=0)
    xb, yb = dls.one_batch()
    print(f"MNIST sample: {len(dsets.train)} training and {len(dsets.valid)} validation digits, vocab {dls.vocab}")
    print(f"a batch: {type(xb).__name__} {tuple(xb.shape)} {xb.dtype}, {type(yb).__name__} {tuple(yb.shape)}")
    print(f"normalized batch: mean {xb.mean().item():+.3f}, std {xb.std().item():.3f}")
    n_batches = sum(1 for _ in dls.train)
    print(f"one training epoch: {n_batches} batches in {time.perf_counter() - start:.2f}s (including setup)")
    out.mkdir(parents=True, exist_ok=True)
    fig = dls.show_batch(max_n=16)
    fig.savefig(out / "show_batch.png")
    print(f"wrote {out / 'show_batch.png'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lamina`` console script.

    Examples:
        >>> main(["--version"])
        lamina 0.1.0
        0
    """
    from lamina import __version__

    parser = argparse.ArgumentParser(prog="lamina", description="lamina: a layered deep-learning library")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    p_demo = sub.add_parser("demo", help="load real MNIST digits through the data floor and save a batch picture")
    p_demo.add_argument("--out", type=Path, default=Path("lamina_out"), help="folder for the pictures")
    args = parser.parse_args(argv)
    if args.version:
        print(f"lamina {__version__}")
        return 0
    if args.command == "demo":
        import matplotlib

        matplotlib.use("Agg")
        return demo(args.out)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
