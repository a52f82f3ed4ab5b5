"""Transforms apply by type over tuples, decode, set up from earlier steps' outputs, and rebuild from data."""

import json

import pytest
import torch

from lamina.core.serial import SerialError
from lamina.core.tensors import Category, TensorBBox, TensorCategory, TensorImage, TensorMask, TensorPoint
from lamina.core.transform import (
    ItemTransform,
    Pipeline,
    Transform,
    TransformError,
    decodes,
    encodes,
    exportable,
    registered_transforms,
    transform_from_state,
    transform_to_state,
)
from lamina.data.transforms import Categorize, MultiCategorize, Normalize, OneHotEncode


class FlipX(Transform):
    """Horizontal flip of an image and of its (x, y) pixel points."""

    @encodes
    def _image(self, x: TensorImage):
        return x.flip(-1)

    @encodes
    def _points(self, x: TensorPoint):
        w = x.img_size[0]
        return TensorPoint(torch.stack([w - 1 - x[:, 0], x[:, 1]], 1))


def test_dog_encodes_to_one_and_decodes_to_dog():
    cat = Categorize()
    cat.setup(["dog", "cat", "dog", "bird"])
    assert cat.vocab_ == ["bird", "cat", "dog"]
    enc = cat("dog")
    assert type(enc) is TensorCategory and int(enc) == 2
    dec = cat.decode(enc)
    assert dec == "dog" and isinstance(dec, Category)


def test_flip_on_image_and_points_moves_both_each_its_own_way():
    img = torch.zeros(1, 5, 8)
    img[0, 3, 1] = 1.0  # a bright dot at x=1, y=3
    pts = TensorPoint(torch.tensor([[1.0, 3.0]]), img_size=(8, 5))
    out_img, out_pts = FlipX()((TensorImage(img), pts))
    y, x = (out_img[0] == 1).nonzero()[0].tolist()
    assert (x, y) == (6, 3)
    assert out_pts.tolist() == [[6.0, 3.0]]
    assert out_pts.img_size == (8, 5)


def test_elements_without_a_method_pass_through_and_types_are_kept():
    class AddOne(Transform):
        def encodes(self, x: TensorImage):
            return x.as_plain() + 1  # returns a plain tensor

    out = AddOne()((TensorImage(torch.zeros(2)), "label", 3))
    assert type(out[0]) is TensorImage and out[1:] == ("label", 3)


def test_a_pipeline_step_sets_up_on_the_outputs_of_the_earlier_steps_only():
    seen = {}

    class Lower(Transform):
        def encodes(self, x: str):
            return x.lower()

    class Spy(Transform):
        order = 1

        def setups(self, items):
            seen["items"] = list(items)

    class Later(Transform):
        order = 2

        def encodes(self, x: str):
            return x + "!"

    Pipeline([Later(), Spy(), Lower()]).setup(["Dog", "CAT"])
    assert seen["items"] == ["dog", "cat"]  # Lower ran, Later did not


def test_pipeline_sorts_by_order_and_decodes_in_reverse():
    class Double(Transform):
        order = 2

        def encodes(self, x: int):
            return x * 2

        def decodes(self, x: int):
            return x // 2

    class Inc(Transform):
        order = 1

        def encodes(self, x: int):
            return x + 1

        def decodes(self, x: int):
            return x - 1

    p = Pipeline([Double(), Inc()])
    assert p(3) == 8 and p.decode(8) == 3


def test_split_idx_runs_a_transform_on_its_split_only():
    class TrainOnly(Transform):
        split_idx = 0

        def encodes(self, x: int):
            return x + 100

    assert Pipeline([TrainOnly()], split_idx=0)(1) == 101
    assert Pipeline([TrainOnly()], split_idx=1)(1) == 1


def test_item_transform_sees_the_whole_tuple():
    class Swap(ItemTransform):
        def encodes(self, xy):
            return xy[1], xy[0]

    assert Swap()(("x", "y")) == ("y", "x")


def test_several_encodes_and_decodes_on_one_class_by_decorator():
    class Both(Transform):
        @encodes
        def _num(self, x: int):
            return x + 1

        @encodes
        def _txt(self, x: str):
            return x.upper()

        @decodes
        def _num_back(self, x: int):
            return x - 1

    t = Both()
    assert t((1, "a", 2.5)) == (2, "A", 2.5)
    assert t.decode(2) == 1


def test_a_failing_step_names_the_step_and_the_item():
    class Boom(Transform):
        def encodes(self, x: int):
            raise ValueError("bad value, fix it by passing a smaller number")

    with pytest.raises(TransformError, match=r"step 2/2 `Boom`.*int.*|step 2/2 `Boom` failed on 7") as err:
        Pipeline([Transform(lambda x: x), Boom()])(7)
    assert "smaller number" in str(err.value)


def _roundtrip(tfm):
    tensors: dict = {}
    data = json.loads(json.dumps(transform_to_state(tfm, tensors)))
    return transform_from_state(data, tensors)


def test_transforms_rebuilt_from_exported_state_behave_the_same():
    cat = Categorize()
    cat.setup(["b", "a", "c"])
    cat2 = _roundtrip(cat)
    assert cat2.vocab_ == cat.vocab_ and int(cat2("c")) == int(cat("c"))

    norm = Normalize()
    norm.setup([TensorImage(torch.rand(4, 3, 5, 5) * 3 + 1)])
    x = TensorImage(torch.rand(2, 3, 5, 5))
    assert torch.equal(_roundtrip(norm)(x), norm(x))

    mc = MultiCategorize()
    mc.setup([["x"], ["y", "z"]])
    ohe = OneHotEncode(c=3)
    p, p2 = Pipeline([mc, ohe]), Pipeline([_roundtrip(mc), _roundtrip(ohe)])
    assert torch.equal(p(["z", "x"]), p2(["z", "x"]))


def test_unknown_or_function_transforms_cannot_be_loaded_or_exported():
    with pytest.raises(SerialError, match="not registered as exportable"):
        transform_from_state({"type": "os.system", "config": {}, "state": {}}, {})
    with pytest.raises(SerialError, match="subclass"):
        transform_to_state(Transform(lambda x: x), {})


class WritesAFile(Transform):
    """A helper of the user's program: its ``__init__`` has a side effect a file must never be able to trigger."""

    def __init__(self, path: str = "unused") -> None:
        super().__init__()
        self.path = path
        with open(path, "w") as f:
            f.write("constructed")


def test_a_crafted_export_cannot_construct_an_unregistered_transform(tmp_path):
    target = tmp_path / "written_by_the_file.txt"
    crafted = {"type": f"{WritesAFile.__module__}.{WritesAFile.__qualname__}", "config": {"path": str(target)}}
    with pytest.raises(SerialError, match=r"WritesAFile.*not registered as exportable.*@lamina\.core\.exportable"):
        transform_from_state(crafted, {})
    assert not target.exists()


def test_registered_transforms_rebuild_and_the_registry_holds_only_registered_classes():
    @exportable
    class Shift(Transform):
        def __init__(self, by: int = 1) -> None:
            super().__init__()
            self.by = by

        def encodes(self, x: int):
            return x + self.by

    assert _roundtrip(Shift(by=5))(1) == 6
    names = registered_transforms()
    assert f"{Shift.__module__}.{Shift.__qualname__}" in names
    assert f"{WritesAFile.__module__}.{WritesAFile.__qualname__}" not in names
    assert "lamina.data.transforms.Normalize" in names


def test_stored_config_that_does_not_fit_the_class_is_a_serial_error_naming_it():
    with pytest.raises(SerialError, match=r"Categorize.*does not rebuild"):
        transform_from_state({"type": "lamina.data.transforms.Categorize", "config": {"no_such_arg": 1}}, {})


def test_pipeline_show_decodes_until_the_item_can_show_itself():
    cat = Categorize()
    cat.setup(["cat", "dog"])
    p = Pipeline([cat])
    ax = p.show(cat("dog"))
    assert ax.get_title() == "dog"


# A pipeline runs its first item of each input type step by step and records a plan that later items of that type
# follow; these tests compare the planned runs with the transforms called one by one.


def _one_by_one(pipe: Pipeline, x):
    for t in pipe.fs:
        x = t(x, split_idx=pipe.split_idx)
    return x


class _ToImage(ItemTransform):
    """(array, label) -> image, or the label alone for odd labels: the output type varies by item."""

    def encodes(self, item: tuple):
        return TensorImage(torch.as_tensor(item[0])) if item[1] % 2 == 0 else item[1]


class _Halve(Transform):
    @encodes
    def _image(self, x: TensorImage):
        return x.float() / 2  # a plain tensor: the pipeline gives it the image's type back

    @encodes
    def _label(self, x: int):
        return x * 10


def test_a_planned_pipeline_follows_items_whose_type_changes_from_item_to_item():
    pipe = Pipeline([_ToImage(), _Halve(), Transform(lambda x: x + 1)])
    items = [(torch.full((1, 2, 2), float(k)), k) for k in (0, 1, 2, 3, 4)]
    for item in items + items:  # the second round runs on the plans recorded in the first
        got, expected = pipe(item), _one_by_one(pipe, item)
        assert type(got) is type(expected) and torch.equal(torch.as_tensor(got), torch.as_tensor(expected))
    assert type(pipe(items[0])) is TensorImage and pipe(items[1]) == 11


def test_a_planned_step_keeps_metadata_and_never_retypes_a_tensor_held_elsewhere():
    class Shift(Transform):
        def encodes(self, x: TensorPoint):
            self.last_ = x.as_plain() + 1  # the result is also held here
            return self.last_

    shift = Shift()
    pipe = Pipeline([shift, Transform(lambda x: x * 2)])
    for _ in range(3):
        out = pipe(TensorPoint(torch.zeros(1, 2), img_size=(8, 8)))
        assert type(out) is TensorPoint and out.img_size == (8, 8) and out.tolist() == [[2.0, 2.0]]
        assert type(shift.last_) is torch.Tensor, "the tensor the transform kept is not retyped in place"


def test_a_plan_follows_a_split_idx_changed_after_it_was_recorded():
    class Plus(Transform):
        def encodes(self, x: int):
            return x + 100

    plus = Plus(split_idx=0)
    pipe = Pipeline([plus, Transform(lambda x: x + 1)], split_idx=1)
    assert pipe(1) == pipe(1) == 2
    plus.split_idx = None
    assert pipe(1) == 102


class Inverse(Transform):
    def encodes(self, x: int):
        return 1 // x


def _planned_pipeline_failing_on_1() -> Pipeline:
    pipe = Pipeline([Transform(lambda x: x - 1), Inverse()])
    assert pipe(3) == 0  # records the plan
    return pipe


def test_a_planned_step_that_fails_still_names_the_step_and_the_item():
    pipe = _planned_pipeline_failing_on_1()
    with pytest.raises(TransformError, match=r"step 2/2 `Inverse` failed on 0.*ZeroDivisionError"):
        pipe(1)


def test_an_annotated_result_keeps_its_own_metadata_and_takes_the_inputs_only_within_its_kind():
    class ToBoxes(Transform):
        def encodes(self, x: int) -> TensorBBox:
            return TensorPoint(torch.zeros(1, 4), img_size=(8, 8))  # a parent type: the annotation narrows it

    class MaskToImage(Transform):
        def encodes(self, x: TensorMask) -> TensorImage:
            return x.as_plain().float()  # another kind of tensor: the mask's codes do not come along

    boxes, image = Pipeline([ToBoxes()]), Pipeline([MaskToImage()])
    for _ in range(3):  # step by step, then on the plan
        out = boxes(1)
        assert type(out) is TensorBBox and out.img_size == (8, 8)
        img = image(TensorMask(torch.zeros(2, 2), codes=["a", "b"]))
        assert type(img) is TensorImage and img.__dict__ == {}


def test_the_first_item_of_a_type_is_finished_as_the_later_ones():
    class Noted(Transform):
        def encodes(self, x: TensorImage):
            res = x.as_plain() * 2
            res.note = "kept"  # an attribute of the result's own
            return res

    pipe = Pipeline([Noted()])
    outs = [pipe(TensorImage(torch.ones(2), source="a")) for _ in range(3)] + [Noted()(TensorImage(torch.ones(2)))]
    assert all(type(o) is TensorImage and o.note == "kept" for o in outs)
    assert all(o.source == "a" for o in outs[:3])


def test_a_traceback_through_a_pipeline_shows_the_failing_steps_own_source():
    import traceback

    pipe = _planned_pipeline_failing_on_1()
    with pytest.raises(TransformError) as info:
        pipe(1)
    shown = "".join(traceback.format_exception(info.value))
    assert "return 1 // x" in shown and "<lamina plan" not in shown


def test_setting_a_pipelines_split_idx_drops_its_plans():
    class Plus(Transform):
        split_idx = 0

        def encodes(self, x: int):
            return x + 100

    pipe = Pipeline([Plus()], split_idx=0)
    assert pipe(1) == pipe(1) == 101
    pipe.split_idx = 1
    assert pipe(1) == pipe(1) == 1


_INPUTS = {
    "int": lambda: 3,
    "str": lambda: "a",
    "plain tensor": lambda: torch.zeros(2),
    "image": lambda: TensorImage(torch.zeros(1, 2, 2)),
    "points with img_size": lambda: TensorPoint(torch.zeros(1, 2), img_size=(4, 4)),
    "tuple": lambda: (TensorImage(torch.zeros(1, 2, 2)), 1),
}
_RESULTS = {
    "int": lambda: 5,
    "plain tensor": lambda: torch.ones(2),
    "image": lambda: TensorImage(torch.ones(1, 2, 2)),
    "category": lambda: TensorCategory(torch.tensor(1)),
    "tuple": lambda: (torch.ones(1, 2, 2), 2),
}


@pytest.mark.parametrize("returns", [None, TensorImage, TensorPoint, torch.Tensor])
@pytest.mark.parametrize("result", list(_RESULTS))
@pytest.mark.parametrize("given", list(_INPUTS))
def test_a_planned_step_types_every_kind_of_result_as_the_step_by_step_rule_does(given, result, returns):
    make = _RESULTS[result]

    def encodes(self, x):
        return make()

    if returns is not None:
        encodes.__annotations__["return"] = returns
    make_step = type("Make", (ItemTransform,), {"encodes": encodes})
    pipe = Pipeline([make_step()])
    first, planned = pipe(_INPUTS[given]()), pipe(_INPUTS[given]())  # recorded step by step, then run on the plan
    stepwise = make_step()(_INPUTS[given]())
    for a, b, c in zip(*(r if isinstance(r, tuple) else (r,) for r in (first, planned, stepwise))):
        assert type(a) is type(b) is type(c)
        assert getattr(a, "__dict__", None) == getattr(b, "__dict__", None) == getattr(c, "__dict__", None)


class _Decode(ItemTransform):
    def encodes(self, item: tuple) -> TensorImage:
        return torch.as_tensor(item[0]) / 255  # plain: the annotation gives the type

    def decodes(self, x: TensorImage) -> TensorImage:
        return x * 255


def test_an_encodes_annotated_with_a_tensor_type_gives_its_plain_results_that_type():
    pipe = Pipeline([_Decode(), Transform(lambda x: x + 1)])
    for _ in range(3):  # step by step, then on the recorded plan
        out = pipe((torch.full((1, 2, 2), 255.0), 0))
        assert type(out) is TensorImage and out.flatten().tolist() == [2.0] * 4
    assert type(_Decode().decode(TensorImage(torch.ones(1)))) is TensorImage


def test_an_annotation_never_retypes_a_tensor_held_elsewhere_and_keeps_the_inputs_metadata():
    class Keep(Transform):
        def encodes(self, x: TensorPoint) -> TensorPoint:
            self.last_ = x.as_plain() * 2  # the result is also held here
            return self.last_

    class FromArray(Transform):
        kept = torch.zeros(1, 2)

        def encodes(self, x: int) -> TensorImage:
            return self.kept

    keep, from_array = Keep(), FromArray()
    for _ in range(3):
        out = Pipeline([keep])(TensorPoint(torch.ones(1, 2), img_size=(8, 8)))
        assert type(out) is TensorPoint and out.img_size == (8, 8) and type(keep.last_) is torch.Tensor
        assert type(Pipeline([from_array])(1)) is TensorImage and type(FromArray.kept) is torch.Tensor
