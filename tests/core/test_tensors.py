"""Semantic tensors keep their type and metadata through torch operations, strip cheaply, and draw themselves."""

import matplotlib.pyplot as plt
import numpy as np
import torch

from lamina.core.tensors import (
    Category,
    TensorBase,
    TensorBBox,
    TensorCategory,
    TensorImage,
    TensorImageBW,
    TensorMask,
    TensorPoint,
    as_plain,
    retain_type,
    retype,
)
from tests.conftest import assert_png


def test_typed_tensors_keep_their_type_through_common_operations():
    img = TensorImage(torch.rand(3, 8, 8))
    results = {
        "add": img + 1,
        "radd": 1 + img,
        "flip": img.flip(-1),
        "cat": torch.cat([img, img]),
        "stack": torch.stack([img, img]),
        "index": img[0],
        "slice": img[:, 2:4],
        "to": img.to("cpu", torch.float64),
        "clone": img.clone(),
        "inplace": img.clone().mul_(2),
        "permute": img.permute(1, 2, 0),
        "functional": torch.nn.functional.pad(img, (1, 1)),
    }
    for name, r in results.items():
        assert type(r) is TensorImage, f"{name} gave {type(r).__name__}"


def test_metadata_survives_operations_and_concatenation():
    pts = TensorPoint(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), img_size=(28, 28))
    assert (pts * 2).img_size == (28, 28)
    assert torch.cat([pts, pts]).img_size == (28, 28)
    assert pts[0].img_size == (28, 28)
    mask = TensorMask(torch.zeros(4, 4, dtype=torch.long), codes=["bg", "fg"])
    assert mask.flip(0).codes == ["bg", "fg"]


def test_mixed_inputs_follow_the_documented_rule():
    img = TensorImage(torch.ones(2, 2))
    mask = TensorMask(torch.ones(2, 2))
    assert type(torch.ones(2, 2) + img) is TensorImage  # a subclass beats plain Tensor
    assert type(img + mask) is TensorImage  # unrelated types: leftmost wins
    assert type(mask + img) is TensorMask
    assert type(TensorImageBW(torch.ones(2, 2)) + img) is TensorImageBW  # subclass beats parent


def test_as_plain_strips_types_without_copying():
    img = TensorImage(torch.rand(2, 3, 4, 4))
    batch = (img, [TensorCategory(torch.tensor([1, 0]))], {"p": TensorPoint(torch.zeros(1, 2))})
    plain = as_plain(batch)
    assert type(plain[0]) is torch.Tensor and type(plain[1][0]) is torch.Tensor and type(plain[2]["p"]) is torch.Tensor
    assert plain[0].data_ptr() == img.data_ptr()


def test_retain_type_casts_only_more_general_tensors():
    old = TensorImage(torch.zeros(1))
    assert type(retain_type(torch.ones(1), old)) is TensorImage
    cat = TensorCategory(torch.tensor(1))
    assert type(retain_type(cat, old)) is TensorCategory  # a different semantic type is kept


def test_construction_from_arrays_and_lists():
    assert TensorBase(np.arange(3)).tolist() == [0, 1, 2]
    assert type(TensorCategory(2)) is TensorCategory


def test_image_mask_points_and_boxes_draw_layered_on_one_axis(tmp_path):
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    img = TensorImage(torch.stack([xx / 31, yy / 31, torch.full_like(xx, 0.5, dtype=torch.float)]).float())
    mask = TensorMask(((xx - 16) ** 2 + (yy - 16) ** 2 < 64).long(), codes=["bg", "disc"])
    ax = img.show(figsize=(3, 3))
    mask.show(ctx=ax)
    TensorPoint(torch.tensor([[16.0, 16.0]])).show(ctx=ax)
    TensorBBox(torch.tensor([[8.0, 8.0, 24.0, 24.0]])).show(ctx=ax, labels=["disc"])
    Category("a disc").show(ctx=ax)
    assert len(ax.images) == 2 and len(ax.patches) == 1 and ax.get_title() == "a disc"
    assert ax.texts[0].get_text() == "disc"
    path = tmp_path / "layers.png"
    ax.figure.savefig(path)
    assert_png(path)
    # the mask overlay changes pixels inside the disc, not in the corner
    rgba = plt.imread(path)
    assert rgba.shape[2] == 4


def test_wrapping_a_tensor_never_retypes_one_that_something_else_holds():
    held = torch.zeros(2)
    img = TensorImage(held)
    assert type(held) is torch.Tensor and type(img) is TensorImage
    leaf = torch.zeros(2, requires_grad=True)
    leaf.sum().backward()
    grad_img = TensorImage(leaf.grad)  # torch holds the gradient: the wrapper is a new typed view of it
    assert type(leaf.grad) is torch.Tensor and type(grad_img) is TensorImage
    assert type(TensorImage(torch.ones(2) * 2)) is TensorImage


def test_retype_makes_a_new_typed_tensor_and_never_retypes_one_that_something_else_holds():
    held, listed = torch.zeros(2), [torch.zeros(2)]
    leaf = torch.zeros(2, requires_grad=True)
    leaf.sum().backward()
    for typed in (retype(held, TensorImage), retype(listed[0], TensorImage), retype(*listed, TensorImage)):
        assert type(typed) is TensorImage
    typed_grad = retype(leaf.grad, TensorImage)  # torch holds the gradient
    assert type(typed_grad) is TensorImage and typed_grad is not leaf.grad
    assert type(held) is type(listed[0]) is type(leaf.grad) is torch.Tensor
    in_graph = retype(leaf * 2, TensorImage)  # a fresh tensor in a graph keeps its history
    assert type(in_graph) is TensorImage and in_graph.grad_fn is not None
    fresh = torch.ones(2)
    typed = retype(fresh, TensorImage)
    assert typed is not fresh and type(fresh) is torch.Tensor and typed.data_ptr() == fresh.data_ptr()


def test_wrapping_an_unpacked_container_element_leaves_the_element_plain():
    holder, listed = (torch.zeros(2),), [torch.zeros(2)]
    assert type(TensorImage(*holder)) is TensorImage and type(TensorImage(*listed)) is TensorImage
    assert type(holder[0]) is torch.Tensor and type(listed[0]) is torch.Tensor


def test_a_tensor_type_with_slots_is_built_and_kept_through_a_pipeline():
    from lamina.core.transform import Pipeline, Transform

    class Slotted(TensorBase):
        __slots__ = ("extra",)

    class Double(Transform):
        def encodes(self, x: Slotted):
            return x * 2

    pipe = Pipeline([Double()])
    for _ in range(2):  # recorded step by step, then planned
        out = pipe(Slotted(torch.ones(2) + 1))
        assert type(out) is Slotted and out.tolist() == [4.0, 4.0]
