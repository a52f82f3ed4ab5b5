"""A pipeline's route changes what it costs, never what it computes.

Random pipelines, built from steps that return every kind of result (plain or typed tensors, tensors with metadata,
numbers, tuples), annotated or not, limited to a split or not, run three ways on the same items: through the
pipeline (its routes), through `run_untyped` followed by `as_type` (what a loader does), and step by step with each
transform called on its own. All three give the same types, values and metadata, item after item.
"""

import random

import pytest
import torch

from lamina.core.tensors import TensorBase, TensorImage, TensorImageBW, TensorMask, TensorPoint
from lamina.core.transform import ItemTransform, Pipeline, Transform, as_type
from lamina.data.core import Datasets
from lamina.data.load import DataLoader


class _Add(Transform):
    def encodes(self, x: TensorImage):
        return x + 1


class _AddAnnotated(Transform):
    def encodes(self, x: TensorImage) -> TensorImage:
        return x + 1


class _ToBW(Transform):
    def encodes(self, x: TensorImage) -> TensorImageBW:
        return x[:1]


class _Typed(Transform):  # builds a typed tensor of another kind itself
    def encodes(self, x: TensorImageBW):
        return TensorMask(x.long())


class _Meta(Transform):  # a result with metadata: off the route from here
    def encodes(self, x: TensorImage):
        return TensorImage(x * 2, source="meta")


class _Varies(Transform):  # the result type depends on the value
    def encodes(self, x: TensorImage):
        return int(x.sum()) if float(x.sum()) > 40 else x - 1


class _Number(Transform):
    def encodes(self, x: int) -> TensorPoint:
        return torch.full((2, 2), float(x))


class _Points(Transform):
    def encodes(self, x: TensorPoint):
        return x * 3


class _TrainOnly(Transform):
    split_idx = 0

    def encodes(self, x: TensorImage):
        return x.flip(-1)


class _Pair(ItemTransform):
    def encodes(self, x: TensorImage) -> tuple:
        return (x, 1)


class _Start(ItemTransform):
    def encodes(self, item: tuple) -> TensorImage:
        return torch.as_tensor(item[0], dtype=torch.float32)


class _Label(ItemTransform):
    def encodes(self, item: tuple) -> int:
        return item[1]


_STEPS = [_Add, _AddAnnotated, _ToBW, _Typed, _Meta, _Varies, _Number, _Points, _TrainOnly, _Pair]


def _item(k: int) -> tuple:
    return (torch.arange(6.0).view(1, 2, 3) * k, k)


def _describe(v):
    if isinstance(v, tuple):
        return tuple(_describe(o) for o in v)
    if isinstance(v, torch.Tensor):
        return (type(v), v.tolist(), dict(v.__dict__))
    return (type(v), v)


def _one_by_one(pipe: Pipeline, x):
    for t in pipe.fs:
        x = t(x, split_idx=pipe.split_idx)
    return x


@pytest.mark.parametrize("seed", range(60))
def test_a_random_pipeline_computes_the_same_on_its_route_as_step_by_step(seed):
    rng = random.Random(seed)
    steps = [_Start()] + [rng.choice(_STEPS)() for _ in range(rng.randint(1, 5))]
    pipe = Pipeline(steps, split_idx=rng.choice([None, 0, 1]))
    for k in [0, 1, 3, 9, 0, 1, 3, 9]:
        expected = _describe(_one_by_one(pipe, _item(k)))
        assert _describe(pipe(_item(k))) == expected, (pipe, k)
        v, cls = pipe.run_untyped(_item(k))
        assert _describe(v if cls is None else as_type(v, cls)) == expected, (pipe, k)


def test_a_loader_batch_matches_the_items_typed_one_by_one():
    items = [_item(k) for k in range(8)]
    for steps in ([_Start(), _Add()], [_Start(), _ToBW(), _Typed()], [_Start(), _Meta()], [_Start(), _TrainOnly()]):
        ds = Datasets(items, [steps, [_Label()]], splits=[list(range(8))]).train
        xb, yb = next(iter(DataLoader(ds, bs=8)))
        one = [ds[i] for i in range(8)]
        assert type(xb) is type(one[0][0]) and xb.__dict__ == one[0][0].__dict__
        assert torch.equal(xb.as_subclass(torch.Tensor), torch.stack([o[0].as_subclass(torch.Tensor) for o in one]))
        assert yb.tolist() == list(range(8)) and isinstance(xb, TensorBase)
