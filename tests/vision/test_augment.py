"""Promises of the batch augmentations in lamina.vision.augment."""

import numpy as np
import pytest
import torch

from lamina.core.tensors import TensorBBox, TensorCategory, TensorImage, TensorImageBW, TensorMask, TensorPoint
from lamina.core.transform import Pipeline
from lamina.vision.augment import (
    Brightness,
    ComposedGeometry,
    ComposedLighting,
    Contrast,
    Dihedral,
    Flip,
    GeometricAugment,
    Hue,
    RandomErasing,
    RandomResizedCropGPU,
    Rotate,
    Saturation,
    Warp,
    Zoom,
    aug_transforms,
)
from lamina.vision.transforms import points_inside

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
H = W = 32


def dot_batch(n: int, xs: list[float], ys: list[float]) -> tuple[TensorImage, TensorPoint]:
    """A batch of dark images, image i with a bright blob centred on pixel (xs[i], ys[i]), and the matching points."""
    gy, gx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    x, y = torch.tensor(xs)[:, None, None], torch.tensor(ys)[:, None, None]
    img = torch.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * 1.5**2))[:, None]
    pts = torch.stack([torch.tensor(xs), torch.tensor(ys)], -1)[:, None]
    return TensorImage(img.to(DEVICE)), TensorPoint(pts.to(DEVICE), img_size=(W, H))


def blob_centres(img: torch.Tensor) -> torch.Tensor:
    """B x 2 intensity-weighted (x, y) centre of the bright pixels (>= half the maximum) of each image."""
    img = img.float()[:, 0]
    bright = img * (img >= img.amax((1, 2), keepdim=True) * 0.5)
    gy, gx = torch.meshgrid(torch.arange(img.shape[1]), torch.arange(img.shape[2]), indexing="ij")
    total = bright.sum((1, 2))
    return torch.stack([(bright * gx.to(img)).sum((1, 2)) / total, (bright * gy.to(img)).sum((1, 2)) / total], -1)


def assert_dots_follow_points(tfm, n: int = 12) -> None:
    torch.manual_seed(0)
    xs, ys = (torch.rand(n) * 12 + 10).tolist(), (torch.rand(n) * 12 + 10).tolist()
    img, pts = dot_batch(n, xs, ys)
    out_img, out_pts = tfm((img, pts))
    assert isinstance(out_pts, TensorPoint) and out_img.device == img.device and out_pts.device == img.device
    h, w = out_img.shape[-2:]
    assert out_pts.img_size == (w, h)
    keep = points_inside(out_pts[:, 0], (w, h)) & (out_img.flatten(1).amax(1) > 0.3)
    keep &= (out_pts[:, 0, 0] > 2) & (out_pts[:, 0, 0] < w - 3) & (out_pts[:, 0, 1] > 2) & (out_pts[:, 0, 1] < h - 3)
    assert keep.sum() >= n // 2, "too few dots stayed on the image to check"
    dist = (blob_centres(out_img[keep]) - out_pts[keep, 0]).norm(dim=-1)
    assert dist.max() < 1.0, f"dots and points drifted apart by {dist.max():.2f} px"


GEOMETRIC = {
    "flip": Flip(p=1.0),
    "dihedral": Dihedral(p=1.0),
    "rotate": Rotate(40, p=1.0),
    "zoom": Zoom(1.2, 1.6, p=1.0),
    "zoom_out": Zoom(0.7, 0.9, p=1.0),
    "warp": Warp(0.3, p=1.0),
    "crop": RandomResizedCropGPU(24, min_scale=0.5),
    "composed": ComposedGeometry(
        [Flip(), Dihedral(), Rotate(30), Zoom(1.0, 1.4), Warp(0.2), RandomResizedCropGPU((20, 28), 0.6)],
        pad_mode="zeros",
    ),
    "aug_transforms": aug_transforms(max_rotate=30, max_warp=0.3, size=(24, 40), pad_mode="zeros")[0],
}


@pytest.mark.parametrize("name", list(GEOMETRIC))
def test_a_bright_dot_and_its_point_end_up_at_the_same_place(name):
    tfm = GEOMETRIC[name]
    tfm.pad_mode = "zeros"  # reflection would mirror the dot into the new border
    assert_dots_follow_points(tfm)


def test_flip_moves_a_point_to_the_mirrored_pixel():
    img, pts = dot_batch(1, [3.0], [5.0])
    out_img, out_pts = Flip(p=1.0)((img, pts))
    assert out_pts[0, 0].tolist() == pytest.approx([W - 1 - 3.0, 5.0], abs=1e-4)
    assert torch.allclose(out_img, img.flip(-1), atol=1e-5)


def square_batch(n: int) -> tuple[TensorImage, TensorBBox]:
    img = torch.zeros(n, 3, H, W)
    img[:, :, 9:15, 12:20] = 1.0  # rows 9..14, columns 12..19
    boxes = torch.tensor([[[12.0, 9.0, 19.0, 14.0], [0.0, 0.0, 0.0, 0.0]]]).repeat(n, 1, 1)
    return TensorImage(img.to(DEVICE)), TensorBBox(boxes.to(DEVICE), img_size=(W, H))


@pytest.mark.parametrize("name", ["flip", "dihedral", "rotate", "zoom", "warp", "crop", "composed"])
def test_the_refitted_box_contains_the_bright_square(name):
    torch.manual_seed(1)
    img, boxes = square_batch(8)
    labels = TensorCategory(torch.tensor([[1, 0]] * 8))
    out_img, out_boxes, out_labels = GEOMETRIC[name]((img, boxes, labels))
    assert out_labels is labels and out_boxes.shape == boxes.shape
    assert (out_boxes[:, 1] == 0).all(), "the padding box stays (0, 0, 0, 0)"
    for i in range(8):
        ys, xs = torch.nonzero(out_img[i, 0] > 0.75, as_tuple=True)
        if len(xs) == 0:
            assert (out_boxes[i, 0] == 0).all() or out_boxes[i, 0, 2] - out_boxes[i, 0, 0] < 2
            continue
        x1, y1, x2, y2 = out_boxes[i, 0].tolist()
        assert x1 - 1 <= xs.min() and xs.max() <= x2 + 1 and y1 - 1 <= ys.min() and ys.max() <= y2 + 1
        assert (x2 - x1 + 1) * (y2 - y1 + 1) <= 4 * len(xs) + 40, "the box is far larger than the square"


def test_a_box_that_leaves_the_image_is_zeroed_and_points_outside_keep_their_coordinates():
    class Shift(GeometricAugment):
        def matrix(self, n, height, width, device):
            m = torch.eye(3, device=device).repeat(n, 1, 1)
            m[:, 0, 2] = -1.5  # content moves right by 3/4 of the width
            return m

    img, boxes = square_batch(2)
    pts = TensorPoint(torch.tensor([[[20.0, 4.0]], [[2.0, 4.0]]], device=DEVICE), img_size=(W, H))
    _, out_boxes, out_pts = Shift()((img, boxes, pts))
    assert (out_boxes == 0).all(), "the square left the image, so its box is (0, 0, 0, 0)"
    assert out_pts[:, 0, 0].tolist() == pytest.approx([20.0 + 24, 2.0 + 24], abs=1e-3)
    assert points_inside(out_pts[:, 0], (W, H)).tolist() == [False, True]


def digit_masks(mnist, n: int) -> TensorMask:
    digits = torch.from_numpy(mnist["x_train"][:n].astype(np.int64))
    return TensorMask((digits > 60) * 3 + (digits > 180) * 4)  # codes 0, 3, 7


@pytest.mark.parametrize("pad_mode", ["reflection", "border"])
def test_masks_keep_only_their_codes_and_match_their_image(mnist, pad_mode):
    torch.manual_seed(2)
    mask = digit_masks(mnist, 16).to(DEVICE)
    img = TensorImageBW(mask[:, None].float() / 7)
    geometry = aug_transforms(max_rotate=30, min_zoom=0.8, max_zoom=1.3, size=40, pad_mode=pad_mode, mode="nearest")
    out_img, out_mask = geometry[0]((img, mask))
    assert out_mask.dtype == mask.dtype and isinstance(out_mask, TensorMask) and out_mask.shape == (16, 40, 40)
    assert set(out_mask.unique().tolist()) <= {0, 3, 7}
    agree = float(((out_img[:, 0] * 7 - out_mask).abs() < 0.5).float().mean())
    assert agree > 0.999, f"mask and image (sampled with nearest) disagree on {1 - agree:.1%} of pixels"


def test_lighting_changes_only_colour():
    torch.manual_seed(3)
    img, pts = dot_batch(8, [10.0] * 8, [20.0] * 8)
    img = TensorImage(img.expand(8, 3, H, W) * torch.tensor([0.9, 0.5, 0.2], device=DEVICE)[:, None, None] + 0.05)
    mask = TensorMask(torch.randint(0, 3, (8, H, W), device=DEVICE))
    aug = ComposedLighting([Brightness(0.4, p=1), Contrast(0.4, p=1), Saturation(0.4, p=1), Hue(0.2, p=1)])
    out_img, out_mask, out_pts = aug((img, mask, pts))
    assert out_mask is mask and out_pts is pts
    assert not torch.allclose(out_img, img, atol=1e-3) and out_img.min() >= 0 and out_img.max() <= 1
    assert torch.allclose(blob_centres(out_img.mean(1, keepdim=True)), pts[:, 0], atol=0.5)


def test_saturation_and_hue_leave_a_grey_image_unchanged(mnist):
    grey = torch.from_numpy(mnist["x_train"][:8]).float().div(255)[:, None].expand(8, 3, 28, 28)
    grey = TensorImage(grey.contiguous().to(DEVICE) * 0.9 + 0.05)
    for aug in (Saturation(0.8, p=1.0), Hue(0.5, p=1.0)):
        assert torch.allclose(aug(grey), grey, atol=1e-5)


def test_each_image_in_a_batch_gets_its_own_draw():
    torch.manual_seed(4)
    img, pts = dot_batch(16, [8.0] * 16, [10.0] * 16)
    for aug in (Rotate(30, p=1.0), Warp(0.3, p=1.0), Zoom(1.1, 1.5, p=1.0), Brightness(0.5, p=1.0)):
        out = aug(img).flatten(1)
        assert torch.cdist(out, out).add(torch.eye(16, device=DEVICE) * 1e3).min() > 1e-3, type(aug).__name__
    half = Flip(p=0.5)((img, pts))[1][:, 0, 0]
    assert 0 < (half == 8.0).sum() < 16, "with p=0.5 some images are flipped and some are not"


def test_validation_batches_are_untouched_by_training_only_augmentations(mnist):
    img = TensorImageBW(torch.from_numpy(mnist["x_valid"][:8]).float().div(255)[:, None].to(DEVICE))
    mask, pts = (
        digit_masks(mnist, 8).to(DEVICE),
        TensorPoint(torch.rand(8, 3, 2, device=DEVICE) * 27, img_size=(28, 28)),
    )
    batch = (img, mask, pts)
    out = Pipeline([*aug_transforms(flip_vert=True), RandomErasing(p=1.0)], split_idx=1)(batch)
    assert all(o is b for o, b in zip(out, batch))
    train = Pipeline([*aug_transforms(flip_vert=True, p_affine=1.0), RandomErasing(p=1.0)], split_idx=0)(batch)
    assert not torch.equal(train[0], img) and not torch.equal(train[2], pts)


def test_validation_resize_of_a_crop_is_a_centre_crop():
    img = TensorImage(torch.arange(32.0).view(1, 1, 4, 8).to(DEVICE))
    out = RandomResizedCropGPU(4)(img, split_idx=1)
    assert torch.allclose(out, img[..., 2:6])


def test_random_erasing_replaces_a_rectangle_of_normalized_images():
    torch.manual_seed(5)
    img = TensorImage(torch.full((16, 3, 20, 20), 7.0, device=DEVICE))
    out = RandomErasing(p=1.0, sl=0.05, sh=0.2, max_count=2)(img)
    erased = out[:, 0] != 7.0
    frac = erased.float().mean((1, 2))
    assert ((frac > 0.02) & (frac < 0.45)).all()
    assert (erased == (out != 7.0).all(1)).all(), "all channels of a pixel are erased together"
    rows, cols = erased.any(2), erased.any(1)
    assert ((rows.sum(1) * cols.sum(1)) >= erased.sum((1, 2))).all()


def test_batch_augmentation_needs_float_images_and_says_so():
    with pytest.raises(TypeError, match="IntToFloatTensor"):
        Rotate(p=1.0)(TensorImage(torch.zeros(2, 3, 8, 8, dtype=torch.uint8, device=DEVICE)))
    with pytest.raises(ValueError, match="p is a probability"):
        Flip(p=1.5)
    with pytest.raises(ValueError, match="after_batch"):
        Flip(p=1.0)(TensorImage(torch.zeros(3, 8, 8, device=DEVICE)))


def test_aug_transforms_composes_geometry_into_one_grid_sample(monkeypatch):
    calls = []
    real = torch.nn.functional.grid_sample
    monkeypatch.setattr(torch.nn.functional, "grid_sample", lambda *a, **k: calls.append(1) or real(*a, **k))
    img, pts = dot_batch(4, [8.0] * 4, [10.0] * 4)
    tfms = aug_transforms(p_affine=1.0)
    Pipeline(tfms, split_idx=0)((img, pts))
    assert len(calls) == 1
    assert [t.order for t in tfms] == [20, 30]


def test_a_pure_flip_takes_the_index_path_and_equals_sampling():
    from lamina.vision.transforms import _sampling_grid, warp_batch

    torch.manual_seed(0)
    img = TensorImage(torch.rand(4, 3, 9, 7))
    mats = torch.eye(3).repeat(4, 1, 1)
    mats[0, 0, 0] = -1  # mirror x
    mats[1, 1, 1] = -1  # mirror y
    mats[2, 0, 0] = mats[2, 1, 1] = -1  # both
    fast = warp_batch(img, mats)
    grid = _sampling_grid(mats, (9, 7), torch.float32)
    sampled = torch.nn.functional.grid_sample(img.as_subclass(torch.Tensor), grid, "bilinear", "reflection", False)
    assert torch.allclose(fast.as_subclass(torch.Tensor), sampled, atol=1e-6)
    assert torch.equal(fast[0], img[0].flip(-1)) and torch.equal(fast[3], img[3])


def test_composed_augmentations_are_stored_as_data_and_rebuild_with_the_same_members():
    import json

    from lamina.core.transform import transform_from_state, transform_to_state

    tfms = [*aug_transforms(max_rotate=25, size=(12, 16), pad_mode="zeros"), RandomErasing(p=1.0)]
    tfms[0].tfms.append(RandomResizedCropGPU(10, min_scale=0.5))
    tensors: dict = {}
    states = json.loads(json.dumps([transform_to_state(t, tensors, f"t{i}") for i, t in enumerate(tfms)]))
    again = [transform_from_state(s, tensors) for s in states]
    assert [type(t) for t in again] == [type(t) for t in tfms]
    for old, new in zip(tfms[:2], again[:2]):
        assert [(type(m), m.get_config()) for m in new.tfms] == [(type(m), m.get_config()) for m in old.tfms]
    img = TensorImage(torch.rand(3, 3, 20, 24))
    # validation is deterministic: the centre crop and size of the geometry, the lighting left out
    assert torch.equal(Pipeline(again, split_idx=1)(img), Pipeline(tfms, split_idx=1)(img))
    assert Pipeline(again, split_idx=1)(img).shape == (3, 3, 10, 10)
