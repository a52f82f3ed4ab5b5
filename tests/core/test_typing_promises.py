"""Typing a value never changes a tensor that something else holds: not its type, not its metadata, not its identity.

Every public way lamina gives a tensor its semantic type (the constructors, `retype`, `retain_type`, `as_type`, a
transform's result rule, a pipeline, collate and a loader's batch) is run on a tensor held in each way a program
holds one; afterwards the holder still holds the same object, of the same type, with the same attributes.
"""

import weakref

import numpy as np
import pytest
import torch

from lamina.core.tensors import TensorImage, TensorMask, TensorPoint, retain_type, retype
from lamina.core.transform import ItemTransform, Pipeline, Transform, as_type
from lamina.data.core import Datasets
from lamina.data.load import DataLoader, collate

_GLOBAL: list[torch.Tensor] = []


class _Holder:
    def __init__(self, t: torch.Tensor) -> None:
        self.t = t


def _holders():
    """name -> a function making (a tensor, a function returning what the holder holds now, what keeps it alive)."""

    def local():
        t = torch.zeros(1, 2, 2)
        return t, lambda: t, t

    def list_element():
        box = [torch.zeros(1, 2, 2)]
        return box[0], lambda: box[0], box

    def tuple_element():
        box = (torch.zeros(1, 2, 2),)
        return box[0], lambda: box[0], box

    def attribute():
        h = _Holder(torch.zeros(1, 2, 2))
        return h.t, lambda: h.t, h

    def module_global():
        _GLOBAL[:] = [torch.zeros(1, 2, 2)]
        return _GLOBAL[0], lambda: _GLOBAL[0], None

    def closure():
        t = torch.zeros(1, 2, 2)

        def get():
            return t

        return get(), get, get

    def weak_reference():
        t = torch.zeros(1, 2, 2)
        cache = weakref.WeakValueDictionary({"k": t})
        return cache["k"], lambda: cache["k"], t

    def numpy_base():
        a = np.zeros((1, 2, 2), dtype=np.float32)
        t = torch.from_numpy(a)
        return t, lambda: t, a

    def view():
        base = torch.zeros(2, 1, 2, 2)
        v = base[0]
        return v, lambda: v, base

    def typed_with_metadata():
        t = TensorPoint(torch.zeros(3, 2), img_size=(8, 8))
        return t, lambda: t, t

    return {
        f.__name__: f
        for f in (local, list_element, tuple_element, attribute, module_global, closure, weak_reference,
                  numpy_base, view, typed_with_metadata)
    }  # fmt: skip


def _keep(t):
    """A transform that returns the very tensor it keeps (for any input)."""

    class Keep(ItemTransform):
        def encodes(self, x) -> TensorImage:
            return self.kept

    k = Keep()
    k.kept = t
    return k


def _typings():
    """name -> a function that types ``t`` (or passes it through a typing step) and returns the result."""
    points = TensorPoint(torch.ones(3, 2), img_size=(4, 4))
    return {
        "TensorImage(t)": lambda t: TensorImage(t),
        "TensorMask(t, codes=...)": lambda t: TensorMask(t, codes=["a"]),
        "retype": lambda t: retype(t, TensorImage),
        "retain_type": lambda t: retain_type(t, points),
        "as_type": lambda t: as_type(t, TensorImage),
        "Transform.__call__ (annotation)": lambda t: _keep(t)(0),
        "Transform.__call__ (input's type and metadata)": lambda t: Transform(lambda x: t)(points),
        "Pipeline": lambda t: Pipeline([_keep(t), Transform(lambda x: x)])(0),
        "Pipeline on a point with metadata": lambda t: Pipeline([Transform(lambda x: t)])(points),
        "Pipeline.run_untyped": lambda t: as_type(*Pipeline([_keep(t)]).run_untyped(0)),
        "collate": lambda t: collate([(t, 0), (t, 1)]),
        "DataLoader": lambda t: next(iter(DataLoader(Datasets([0, 1], [[_keep(t)], [lambda i: i]]), bs=2))),
    }


@pytest.mark.parametrize("typing", list(_typings()))
@pytest.mark.parametrize("holder", list(_holders()))
def test_typing_never_changes_a_tensor_held_elsewhere(holder, typing):
    t, held, keepalive = _holders()[holder]()
    before_type, before_meta, before_id = type(t), dict(t.__dict__), id(t)
    result = _typings()[typing](t)
    now = held()
    assert now is t and id(now) == before_id, "the holder still holds the same object"
    assert type(now) is before_type, f"{typing} changed the held tensor's type to {type(now).__name__}"
    assert now.__dict__ == before_meta, f"{typing} changed the held tensor's metadata: {now.__dict__}"
    assert result is not None
    del keepalive  # (held alive until here)


def test_metadata_never_flows_into_a_tensor_a_transform_keeps():
    fixed = TensorPoint(torch.zeros(1, 2))  # a fixed point the transform returns for every item, no metadata

    class Fixed(Transform):
        def encodes(self, x: TensorPoint):
            return fixed

    for size in ((8, 8), (16, 4)):
        out = Pipeline([Fixed()])(TensorPoint(torch.ones(1, 2), img_size=size))
        assert type(out) is TensorPoint and out.img_size == size  # the result takes this item's img_size
        assert fixed.__dict__ == {}, "the kept tensor got an item's metadata"
        assert Fixed()(TensorPoint(torch.ones(1, 2), img_size=size)).img_size == size


def test_a_pipeline_types_the_result_once_and_the_steps_see_plain_values_along_the_route():
    seen = []

    class ToImage(Transform):
        def encodes(self, x: float) -> TensorImage:
            return torch.full((1, 2, 2), x)

    class Double(Transform):
        def encodes(self, x: TensorImage):
            seen.append(type(x))
            return x * 2

    pipe = Pipeline([ToImage(), Double()])
    out = pipe(1.5)
    assert type(out) is TensorImage and out.flatten().tolist() == [3.0] * 4
    value, cls = pipe.run_untyped(1.5)
    assert type(value) is torch.Tensor and cls is TensorImage
    assert seen == [torch.Tensor, torch.Tensor], "dispatch was resolved ahead: no typed tensor per step"
    assert type(Double()(TensorImage(torch.ones(1)))) is TensorImage  # called alone, a transform types its result


def test_a_loader_batch_has_its_semantic_types_and_no_item_was_typed_on_the_way():
    seen = []

    class ToImage(Transform):
        def encodes(self, x: int) -> TensorImage:
            return torch.full((1, 2, 2), float(x))

    class Record(Transform):
        def encodes(self, x: TensorImage):
            seen.append(type(x))
            return x

    dl = DataLoader(Datasets(list(range(6)), [[ToImage(), Record()], [lambda i: i % 2]]), bs=3)
    xb, yb = next(iter(dl))
    assert type(xb) is TensorImage and tuple(xb.shape) == (3, 1, 2, 2) and yb.tolist() == [0, 1, 0]
    assert set(seen) == {torch.Tensor}


def test_the_library_uses_no_reference_counts_generated_code_or_class_assignment():
    import pathlib
    import re

    import lamina

    root = pathlib.Path(lamina.__file__).parent
    bad = re.compile(r"getrefcount|(?<![.\w])exec\(|(?<![.\w])compile\(|__class__\s*=[^=]")
    hits = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]  # fmt: skip
    assert not hits, hits
