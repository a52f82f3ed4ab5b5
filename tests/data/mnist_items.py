"""Transforms that turn the MNIST sample's (image array, label) items into typed tensors, as a user would write."""

import numpy as np
import torch

from lamina.core.tensors import TensorImageBW
from lamina.core.transform import ItemTransform, Transform


class PickImage(ItemTransform):
    """Take the image array of an (image, label) item as a 1 x 28 x 28 uint8 TensorImageBW."""

    def encodes(self, x: tuple):
        return TensorImageBW(torch.from_numpy(np.ascontiguousarray(x[0]))[None])


class PickLabel(ItemTransform):
    """Take the label of an (image, label) item as a digit name."""

    def encodes(self, x: tuple):
        return str(int(x[1]))


class RandomShift(Transform):
    """Roll the image by a random number of pixels on the training set (a random item transform)."""

    split_idx = 0

    def encodes(self, x: TensorImageBW):
        return x.roll(int(torch.randint(-2, 3, ())), dims=-1)


def mnist_items(mnist: dict, n_train: int, n_valid: int) -> tuple[list, list[list[int]]]:
    # the file is sorted by digit: take evenly spaced items so every digit is present
    tr = np.linspace(0, len(mnist["y_train"]) - 1, n_train).astype(int)
    va = np.linspace(0, len(mnist["y_valid"]) - 1, n_valid).astype(int)
    xs = list(mnist["x_train"][tr]) + list(mnist["x_valid"][va])
    ys = list(mnist["y_train"][tr]) + list(mnist["y_valid"][va])
    return list(zip(xs, ys)), [list(range(n_train)), list(range(n_train, n_train + n_valid))]
