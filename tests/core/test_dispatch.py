"""Type dispatch picks the most specific function along the MRO; unions and tuples mean either type."""

from __future__ import annotations

import pytest

from lamina.core.dispatch import TypeDispatch, annotation_types, input_types, result_type
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


def test_a_return_annotation_names_the_result_class_and_an_unresolvable_one_is_a_clear_error():
    def image(self, x: int) -> TensorImage: ...

    def either(self, x: int) -> int | None: ...

    def bad(self, x: int) -> NoSuchType: ...  # noqa: F821

    assert result_type(image) is TensorImage and result_type(either) is None
    with pytest.raises(TypeError, match=r"return annotation 'NoSuchType' of .*bad"):
        result_type(bad)


def test_a_builtin_registers_for_given_types():
    td = TypeDispatch()
    td.add(max, (int,))
    assert td[bool] is max and td.returns[max] is None
