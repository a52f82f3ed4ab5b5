"""Promises of the item transforms in lamina.vision.transforms."""

import numpy as np
import pytest
import torch

from lamina.core.tensors import TensorBBox, TensorCategory, TensorImage, TensorMask, TensorPoint
from lamina.core.transform import Pipeline
from lamina.vision.transforms import CropPad, RandomCrop, RandomResizedCrop, Resize, clip_boxes, points_inside

H, W = 40, 60


def dot_item(x: float, y: float) -> tuple[TensorImage, TensorPoint]:
    """A dark uint8 3 x H x W image with a bright blob centred on pixel (x, y), and the matching point."""
    gy, gx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    blob = torch.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * 2.5**2))
    img = (blob * 255).round().to(torch.uint8).expand(3, H, W).contiguous()
    return TensorImage(img), TensorPoint(torch.tensor([[x, y]]), img_size=(W, H))


def blob_centre(img: torch.Tensor) -> torch.Tensor:
    g = img.float()[0]
    bright = g * (g >= g.max() * 0.5)
    gy, gx = torch.meshgrid(torch.arange(g.shape[0]), torch.arange(g.shape[1]), indexing="ij")
    return torch.stack([(bright * gx).sum(), (bright * gy).sum()]) / bright.sum()


TRANSFORMS = {
    "resize_crop": Resize(20, "crop"),
    "resize_squish": Resize((16, 30), "squish"),
    "resize_pad": Resize(24, "pad"),
    "resize_pad_reflection": Resize(24, "pad", pad_mode="reflection"),
    "random_resized_crop": RandomResizedCrop(24, min_scale=0.3),
    "crop_pad": CropPad((50, 40)),
    "random_crop": RandomCrop(32),
}


@pytest.mark.parametrize("split_idx", [0, 1])
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_a_bright_dot_and_its_point_end_up_at_the_same_place(name, split_idx):
    torch.manual_seed(0)
    checked = 0
    for x, y in [(30.0, 20.0), (22.0, 14.0), (38.0, 25.0), (29.5, 19.0)] * 3:
        img, pts = dot_item(x, y)
        out_img, out_pts = TRANSFORMS[name]((img, pts), split_idx=split_idx)
        assert out_img.dtype == torch.uint8 and isinstance(out_img, TensorImage)
        h, w = out_img.shape[-2:]
        assert out_pts.img_size == (w, h)
        px, py = out_pts[0].tolist()
        if not (3 < px < w - 4 and 3 < py < h - 4):
            continue
        checked += 1
        assert (blob_centre(out_img) - out_pts[0]).norm() < 0.75
    assert checked >= 4, "too few dots stayed on the image to check"


def square_item() -> tuple[TensorImage, TensorBBox, TensorCategory]:
    img = torch.zeros(3, H, W, dtype=torch.uint8)
    img[:, 12:22, 26:40] = 255  # rows 12..21, columns 26..39
    boxes = TensorBBox(torch.tensor([[26.0, 12.0, 39.0, 21.0], [0.0, 0.0, 2.0, 2.0]]), img_size=(W, H))
    return TensorImage(img), boxes, TensorCategory(torch.tensor([1, 2]))


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_boxes_follow_their_square_and_stay_aligned_with_labels(name):
    torch.manual_seed(1)
    for _ in range(5):
        img, boxes, labels = square_item()
        out_img, out_boxes, out_labels = TRANSFORMS[name]((img, boxes, labels))
        assert out_labels is labels and out_boxes.shape == boxes.shape
        ys, xs = torch.nonzero(out_img[0] > 128, as_tuple=True)
        if len(xs) == 0:
            assert (out_boxes[0] == 0).all()
            continue
        x1, y1, x2, y2 = out_boxes[0].tolist()
        assert (
            abs(x1 - xs.min()) <= 1 and abs(x2 - xs.max()) <= 1 and abs(y1 - ys.min()) <= 1 and abs(y2 - ys.max()) <= 1
        )


def test_a_box_cut_out_of_the_crop_becomes_zeros_and_keeps_its_place():
    img, boxes, labels = square_item()
    _, out_boxes, out_labels = CropPad((10, 10))((img, boxes, labels))  # centre rows 15..24, cols 25..34
    assert out_boxes.tolist() == [[1.0, 0.0, 9.0, 6.0], [0.0, 0.0, 0.0, 0.0]]
    assert out_labels.tolist() == [1, 2]


def test_points_outside_the_crop_keep_their_coordinates():
    img, pts = dot_item(5.0, 5.0)
    _, out_pts = CropPad(20)((img, pts))  # centre window rows 10..29, cols 20..39
    assert out_pts.tolist() == [[-15.0, -5.0]]
    assert not points_inside(out_pts, out_pts.img_size).any()


def digit_item(mnist, i: int) -> tuple[TensorImage, TensorMask]:
    digit = torch.from_numpy(mnist["x_train"][i].astype(np.uint8))
    mask = TensorMask((digit > 60).long() * 3 + (digit > 180).long() * 4)
    return TensorImage(digit[None].expand(3, 28, 28).contiguous()), mask


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_masks_keep_their_codes_and_dtype(mnist, name):
    torch.manual_seed(2)
    img, mask = digit_item(mnist, 7)
    out_img, out_mask = TRANSFORMS[name]((img, mask))
    assert isinstance(out_mask, TensorMask) and out_mask.dtype == torch.long
    assert out_mask.shape == out_img.shape[1:]
    assert set(out_mask.unique().tolist()) <= {0, 3, 7}


def test_squish_resize_of_a_real_digit_keeps_its_ink(mnist):
    img, _ = digit_item(mnist, 3)
    small = Resize(14, "squish")(img)
    assert small.shape == (3, 14, 14) and small.dtype == torch.uint8
    assert float(small.float().mean()) == pytest.approx(float(img.float().mean()), rel=0.03)


def test_validation_crops_are_the_centre_and_do_not_change_between_calls():
    img, _ = dot_item(30.0, 20.0)
    a = Pipeline([RandomResizedCrop(20)], split_idx=1)(img)
    b = Pipeline([Resize(20)], split_idx=1)(img)
    assert torch.equal(a, b) and torch.equal(a, Pipeline([Resize(20)], split_idx=1)(img))
    assert torch.equal(RandomCrop(20)(img, split_idx=1), img[:, 10:30, 20:40])


def test_training_crops_draw_a_new_window_per_item():
    torch.manual_seed(3)
    img, _ = dot_item(30.0, 20.0)
    outs = {RandomResizedCrop(16)(img).float().sum().item() for _ in range(10)}
    assert len(outs) > 5


def test_pad_modes_fill_the_border():
    img = TensorImage(torch.arange(1, 5, dtype=torch.uint8).view(1, 1, 4))
    rows = {m: CropPad((1, 8), pad_mode=m)(img)[0, 0].tolist() for m in ("zeros", "border", "reflection")}
    assert rows == {
        "zeros": [0, 0, 1, 2, 3, 4, 0, 0],
        "border": [1, 1, 1, 2, 3, 4, 4, 4],
        "reflection": [2, 1, 1, 2, 3, 4, 4, 3],
    }


def test_bad_arguments_name_the_value_and_the_fix():
    with pytest.raises(ValueError, match="method must be one of"):
        Resize(10, method="stretch")
    with pytest.raises(ValueError, match=r"size must be an int >= 1.*got 0"):
        RandomCrop(0)
    with pytest.raises(ValueError, match="min_scale"):
        RandomResizedCrop(10, min_scale=0)


def test_clip_boxes_zeroes_only_boxes_that_leave_the_image():
    boxes = torch.tensor([[-5.0, -5.0, 3.0, 3.0], [12.0, 0.0, 15.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    assert clip_boxes(boxes, (10, 10)).tolist() == [[0.0, 0.0, 3.0, 3.0], [0.0] * 4, [0.0] * 4]


def test_vision_item_transforms_say_when_they_draw_random_numbers():
    assert Resize(8).is_random(0) and not Resize(8).is_random(1) and not Resize(8, "squish").is_random(0)
    assert RandomResizedCrop(8).is_random(0) and not RandomResizedCrop(8).is_random(1)
    assert RandomCrop(8).is_random(None) and not CropPad(8).is_random(0)
