"""Data floor: lazily transformed collections, loaders, and the transforms every application needs."""

from lamina.data.core import Datasets, TfmdLists, index_items
from lamina.data.external import mnist_sample_arrays, package_file
from lamina.data.load import CollateError, DataLoader, DataLoaders, TensorSource, collate
from lamina.data.transforms import (
    Categorize,
    IntToFloatTensor,
    MultiCategorize,
    Normalize,
    OneHotEncode,
    ToTensor,
    imagenet_stats,
)

__all__ = [
    "Categorize",
    "CollateError",
    "DataLoader",
    "DataLoaders",
    "Datasets",
    "IntToFloatTensor",
    "MultiCategorize",
    "Normalize",
    "OneHotEncode",
    "TensorSource",
    "TfmdLists",
    "ToTensor",
    "collate",
    "imagenet_stats",
    "index_items",
    "mnist_sample_arrays",
    "package_file",
]
