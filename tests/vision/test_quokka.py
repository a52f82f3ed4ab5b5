"""The real keypoint and box annotation of the quokka photo shipped in PyPI ``imgaug`` stays on the animal through
item transforms and batch augmentation: points stay in the box, and the colour under each point stays the colour
that was under it in the photo (so the geometry of points and pixels agrees).

Needs the data-only install ``pip install --no-deps imgaug==0.4.0`` (nothing imports imgaug; only its files are read).
"""

import importlib.util
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from lamina.core.tensors import TensorBBox, TensorImage, TensorPoint
from lamina.data import DataBlock
from lamina.vision import (
    BBoxBlock,
    BBoxLblBlock,
    ImageBlock,
    PILImage,
    PointBlock,
    RandomResizedCrop,
    Resize,
    points_inside,
)
from tests.conftest import assert_png


def imgaug_folder() -> Path:
    spec = importlib.util.find_spec("imgaug")
    if spec is None or spec.origin is None:
        pytest.skip("the quokka photo ships in PyPI imgaug: pip install --no-deps imgaug==0.4.0 (data only)")
    folder = Path(spec.origin).parent
    if not (folder / "quokka.jpg").is_file() or not (folder / "quokka_annotations.json").is_file():
        pytest.skip(f"imgaug at {folder} lacks quokka.jpg / quokka_annotations.json: reinstall imgaug==0.4.0")
    return folder


@pytest.fixture(scope="module")
def quokka() -> dict:
    folder = imgaug_folder()
    notes = json.loads((folder / "quokka_annotations.json").read_text())
    box = notes["bounding_boxes"][0]
    return {
        "path": folder / "quokka.jpg",
        "points": [(float(k["x"]), float(k["y"])) for k in notes["keypoints"]],
        "names": [k["label"] for k in notes["keypoints"]],
        "box": [float(box[c]) for c in ("x1", "y1", "x2", "y2")],
        "label": box["label"],
    }


def colours_at(img: torch.Tensor, points: torch.Tensor, radius: float) -> torch.Tensor:
    """The mean colour (in [0, 1]) of the square patch of ``radius`` pixels around each ``(x, y)`` point."""
    img = img.as_subclass(torch.Tensor).float()
    img = img / 255 if img.max() > 1.5 else img
    k, (h, w) = max(1, round(radius)), img.shape[-2:]
    out = []
    for x, y in points.as_subclass(torch.Tensor).round().long().tolist():
        x, y = min(max(x, 0), w - 1), min(max(y, 0), h - 1)
        out.append(img[:, max(y - k, 0) : y + k + 1, max(x - k, 0) : x + k + 1].mean(dim=(1, 2)))
    return torch.stack(out)


class Const:
    """A picklable getter returning the same value for every item."""

    def __init__(self, value) -> None:
        self.value = value

    def __call__(self, item):
        return self.value


def quokka_dls(quokka: dict, item_tfms, batch_tfms, n: int = 8):
    dblock = DataBlock(
        blocks=(ImageBlock, PointBlock, BBoxBlock, BBoxLblBlock),
        getters=[None, Const(quokka["points"]), Const([quokka["box"]]), Const([quokka["label"]])],
        n_inp=1,
        splitter=lambda items: (list(range(len(items))), [0]),
        item_tfms=item_tfms,
        batch_tfms=batch_tfms,
    )
    return dblock.dataloaders([quokka["path"]] * n, bs=n, seed=1)


def check_on_the_animal(quokka: dict, xb, pb, bb) -> int:
    """Points inside the image stay inside the box and on their colour; returns how many points were checked.

    The colour under a point is averaged over a patch of 9 x 9 output pixels, and over the patch of the photo that
    covers as much of the quokka (the scale is read from the distances between the points).
    """
    photo = PILImage.create(quokka["path"]).to_tensor()
    original = torch.tensor(quokka["points"])
    checked = 0
    for img, pts, box in zip(xb, pb, bb):
        scale = float((torch.pdist(pts.as_subclass(torch.Tensor)) / torch.pdist(original)).median())
        ref = colours_at(photo, original, radius=4 / scale)
        here = colours_at(img, pts, radius=4)
        inside = points_inside(pts, (img.shape[-1], img.shape[-2]))
        # margin: interior points of the photo's box may leave the cropped, clipped box only by rounding
        x1, y1, x2, y2 = box[0].tolist()
        in_box = (pts[:, 0] >= x1 - 2) & (pts[:, 0] <= x2 + 2) & (pts[:, 1] >= y1 - 2) & (pts[:, 1] <= y2 + 2)
        assert bool(in_box[inside].all()), f"points {pts[inside & ~in_box].tolist()} left the box {box[0].tolist()}"
        error = (here - ref).abs().mean(1)[inside]
        assert float(error.mean()) < 0.06 and float(error.max()) < 0.2, error.tolist()
        checked += int(inside.sum())
    return checked


def test_item_transforms_keep_the_quokka_keypoints_on_their_pixels_and_in_the_box(quokka):
    dls = quokka_dls(quokka, item_tfms=RandomResizedCrop(256, min_scale=0.35), batch_tfms=None)
    xb, pb, bb, _ = dls.train.one_batch()
    assert isinstance(xb, TensorImage) and isinstance(pb, TensorPoint) and isinstance(bb, TensorBBox)
    assert pb.shape == (8, 7, 2) and pb.img_size == (256, 256) and dls.vocab == ["#na#", "animal"]
    checked = check_on_the_animal(quokka, xb, pb, bb)
    assert checked >= 20


def test_batch_augmentation_keeps_the_quokka_keypoints_on_their_pixels(quokka, tmp_path):
    augment = pytest.importorskip("lamina.vision.augment", reason="lamina.vision.augment does not import yet")
    tfms = augment.aug_transforms(max_rotate=30, min_zoom=0.9, max_zoom=1.3, max_warp=0.2, max_lighting=0, p_affine=1)
    dls = quokka_dls(quokka, item_tfms=Resize(224, method="squish"), batch_tfms=tfms)
    xb, pb, bb, lb = dls.train.one_batch()
    assert xb.is_floating_point() and pb.shape == (8, 7, 2)
    moved = (pb - pb[0]).abs().amax(dim=(1, 2))
    assert float(moved[1:].min()) > 1.0, "every image got its own random geometry"
    checked = check_on_the_animal(quokka, xb, pb, bb)
    assert checked >= 30
    fig = dls.train.show_batch((xb, pb, bb, lb), max_n=4, figsize=(8, 8))
    for ax in fig.axes:
        assert len(ax.images) == 1 and len(ax.patches) == 1 and ax.texts[0].get_text() == "animal"
        assert len(ax.collections[0].get_offsets()) == 7
    fig.savefig(tmp_path / "quokka.png", dpi=80)
    plt.close(fig)
    assert_png(tmp_path / "quokka.png", min_bytes=20000)


def test_the_colour_check_fails_when_points_do_not_follow_the_pixels(quokka):
    """The check above is not vacuous: points flipped left-right on an unflipped image land on other colours."""
    dls = quokka_dls(quokka, item_tfms=Resize(224, method="squish"), batch_tfms=None, n=2)
    xb, pb, bb, _ = dls.valid.one_batch()
    wrong = pb.clone()
    wrong[..., 0] = 223 - wrong[..., 0]
    with pytest.raises(AssertionError):
        check_on_the_animal(quokka, xb, wrong, bb)
