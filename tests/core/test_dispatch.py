"""Type dispatch picks the most specific function along the MRO; unions and tuples mean either type."""

from __future__ import annotations

import pytest

from lamina.core.dispatch import TypeDispatch, annotation_types, input_types
from lamina.core.tensors import TensorBase, TensorImage, TensorImageBW, TensorMask


def f_image(self, x: TensorImage):
    return "image"


def f_base(self, x: TensorBase):
    return "base"


def f_any(self, x):
    return "any"


def f_union(self, x: int | str):
    return "int-or-str"


def test_an_annotation_matches_its_subclasses_and_the_most_specific_wins():
    td = TypeDispatch([f_base, f_image])
    assert td[TensorImageBW] is f_image
    assert td[TensorMask] is f_base
    assert td[int] is None


def test_no_annotation_means_any_input():
    td = TypeDispatch([f_any, f_image])
    assert td[float] is f_any and td[TensorImage] is f_image


def test_union_and_tuple_annotations_register_both_types():
    assert set(input_types(f_union)) == {int, str}
    assert annotation_types((int, str)) == (int, str)
    td = TypeDispatch([f_union])
    assert td[bool] is f_union and td[str] is f_union and td[float] is None


def test_adding_a_function_updates_cached_lookups():
    td = TypeDispatch([f_base])
    assert td[TensorImage] is f_base
    td.add(f_image)
    assert td[TensorImage] is f_image


def test_an_unresolvable_annotation_is_a_clear_error():
    def bad(self, x: NoSuchType):  # noqa: F821
        return x

    with pytest.raises(TypeError, match="NoSuchType"):
        input_types(bad)
