"""Vision data promises, on real images: the MNIST sample's PNGs and the ELPV solar-cell photos, plus masks, points
and boxes these tests compute from the real pixels."""

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lamina.core.tensors import TensorBBox, TensorImage, TensorMask, TensorMultiCategory, TensorPoint
from lamina.core.transform import TransformError
from lamina.data import DataBlock, Normalize, RegressionBlock
from lamina.datasets import SOLAR_CELL_LABELS, solar_cells
from lamina.vision import (
    BBoxBlock,
    BBoxLblBlock,
    ImageBlock,
    ImageDataLoaders,
    PadBoxes,
    PILImageBW,
    PointBlock,
    Resize,
    SegmentationDataLoaders,
)


@pytest.fixture(scope="session")
def solar_root(tmp_path_factory) -> Path:
    return solar_cells(tmp_path_factory.mktemp("cache"))


def some_digits(root: Path, per_digit: int, split: str = "train") -> list[Path]:
    return [p for d in range(10) for p in sorted((root / split / str(d)).glob("*.png"))[:per_digit]]


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float64)


# ---------------------------------------------------------------- classification from folders, names, tables


def test_from_folder_gives_normalized_batches_labelled_by_the_digit_folder(mnist_root):
    dls = ImageDataLoaders.from_folder(mnist_root, batch_tfms=[Normalize()], bs=64)
    assert dls.vocab == [str(d) for d in range(10)]
    assert (len(dls.train.dataset), len(dls.valid.dataset)) == (4000, 1000)
    xb, yb = dls.valid.one_batch()
    assert isinstance(xb, TensorImage) and xb.shape == (64, 3, 28, 28) and xb.dtype == torch.float32
    files = dls.valid.dataset.items[:64]
    assert [dls.vocab[i] for i in yb.tolist()] == [p.parent.name for p in files]
    xt, _ = dls.train.one_batch()
    assert abs(float(xt.mean())) < 0.15 and abs(float(xt.std()) - 1) < 0.15
    # decoding undoes the normalization exactly: the first validation image comes back as its PNG's pixels
    img = dls.valid.decode_batch((xb, yb), max_n=1)[0][0]
    assert torch.equal(img[0].as_subclass(torch.Tensor), torch.from_numpy(pixels(files[0]).astype(np.uint8)))


def test_from_folder_with_valid_pct_splits_all_images_at_random_the_same_way_every_time(mnist_root):
    a = ImageDataLoaders.from_folder(mnist_root, valid_pct=0.1, seed=3, bs=32)
    b = ImageDataLoaders.from_folder(mnist_root, valid_pct=0.1, seed=3, bs=32)
    assert len(a.valid.dataset) == 500 and len(a.train.dataset) == 4500
    assert list(a.valid.dataset.items) == list(b.valid.dataset.items)
    assert {p.parts[-3] for p in a.valid.dataset.items} == {"train", "valid"}


def test_path_name_and_regex_labellers_and_lists_give_the_same_labels(mnist_root, tmp_path):
    files = some_digits(mnist_root, 6)
    for p in files:  # names that carry the label, e.g. 7_2803.png
        shutil.copy(p, tmp_path / f"{p.parent.name}_{p.stem}.png")
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    truth = [n.split("_")[0] for n in names]
    made = [
        ImageDataLoaders.from_name_re(tmp_path, names, r"^(\d)_\d+\.png$", bs=8),
        ImageDataLoaders.from_name_func(tmp_path, names, label_of_name, bs=8),
        ImageDataLoaders.from_path_func(tmp_path, names, lambda p: p.name[0], bs=8),
        ImageDataLoaders.from_lists(tmp_path, names, truth, bs=8),
    ]
    for dls in made:
        assert dls.vocab == [str(d) for d in range(10)]
        _, yb = dls.valid.one_batch()
        shown = [dls.vocab[i] for i in yb.tolist()]
        assert len(shown) == 8 and all(s in truth for s in shown)
    # the same seed gives the same split, whatever the labeller
    assert len({tuple(dls.valid.one_batch()[1].tolist()) for dls in made}) == 1


def label_of_name(name: str) -> str:
    return name.split("_")[0]


def solar_table(root: Path, per_label: int) -> pd.DataFrame:
    df = pd.read_csv(root / "labels.csv")
    return df.groupby("label").head(per_label).reset_index(drop=True)


def test_from_df_reads_the_solar_cells_with_their_labels(solar_root):
    df = solar_table(solar_root, 12)
    dls = ImageDataLoaders.from_df(df, solar_root, fn_col="fname", label_col="label", item_tfms=Resize(64), bs=8)
    assert dls.vocab == sorted(SOLAR_CELL_LABELS)
    xb, yb = dls.valid.one_batch()
    assert xb.shape == (8, 3, 64, 64)
    rows = dls.valid.dataset.items.iloc[:8]
    assert [dls.vocab[i] for i in yb.tolist()] == list(rows["label"])
    # the batch holds the photo of each row (300 x 300 grey, resized to 64)
    first = torch.from_numpy(pixels(solar_root / rows["fname"].iloc[0]))[None, None].float() / 255
    small = torch.nn.functional.interpolate(first, size=(64, 64), mode="bilinear", antialias=True)[0, 0]
    assert float((xb[0, 0].as_subclass(torch.Tensor) - small).abs().mean()) < 0.02


def test_from_df_splits_by_a_valid_column_and_reads_multi_labels_and_numbers(solar_root):
    df = solar_table(solar_root, 8)
    df["tags"] = df["kind"] + " " + df["label"]
    df["is_valid"] = np.arange(len(df)) % 4 == 0
    dls = ImageDataLoaders.from_df(
        df, solar_root, fn_col="fname", label_col="tags", label_delim=" ", valid_col="is_valid", item_tfms=Resize(32)
    )
    assert len(dls.valid.dataset) == int(df["is_valid"].sum())
    assert set(dls.vocab) == {"mono", "poly", *SOLAR_CELL_LABELS}
    _, yb = dls.valid.one_batch()
    assert isinstance(yb, TensorMultiCategory) and yb.sum(1).tolist() == [2.0] * len(yb)
    reg = ImageDataLoaders.from_df(
        df, solar_root, fn_col="fname", label_col="proba", y_block=RegressionBlock(), item_tfms=Resize(32), bs=4
    )
    _, yr = reg.valid.one_batch()
    assert yr.dtype == torch.float32 and set(np.round(yr.numpy() * 3).tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_from_csv_reads_the_table_next_to_the_images(solar_root):
    solar_table(solar_root, 5).to_csv(solar_root / "subset.csv", index=False)
    dls = ImageDataLoaders.from_csv(solar_root, "subset.csv", fn_col="fname", label_col="label", item_tfms=Resize(32))
    assert len(dls.train.dataset) + len(dls.valid.dataset) == 20 and dls.vocab == sorted(SOLAR_CELL_LABELS)
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        ImageDataLoaders.from_csv(solar_root, "missing.csv")


def copy_digits(files: list[Path], dest: Path, split: str, label: str) -> None:
    (dest / split / label).mkdir(parents=True, exist_ok=True)
    for p in files:
        shutil.copy(p, dest / split / label / p.name)


def test_a_class_with_a_single_image_warns_naming_it(mnist_root, tmp_path):
    copy_digits(some_digits(mnist_root, 3)[:3], tmp_path, "train", "0")
    copy_digits(some_digits(mnist_root, 1)[1:2], tmp_path, "train", "1")
    copy_digits(some_digits(mnist_root, 1, "valid")[:1], tmp_path, "valid", "0")
    with pytest.warns(UserWarning, match=r"\['1'\] have a single image"):
        dls = ImageDataLoaders.from_folder(tmp_path, bs=2)
    assert dls.vocab == ["0", "1"]


def test_a_class_with_no_training_image_is_an_error_naming_it(mnist_root, tmp_path):
    copy_digits(some_digits(mnist_root, 3)[:3], tmp_path, "train", "0")
    copy_digits(some_digits(mnist_root, 2, "valid")[4:6], tmp_path, "valid", "2")
    with pytest.raises(ValueError, match="class '2' has validation images but no training image"):
        ImageDataLoaders.from_folder(tmp_path, bs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dls = ImageDataLoaders.from_folder(tmp_path, vocab=["0", "1", "2"], bs=2)
    assert dls.valid.one_batch()[1].tolist() == [2, 2]


# ---------------------------------------------------------------- segmentation: masks thresholded from the digits


def mask_of(image: Path) -> Path:
    return image.parent.parent / "masks" / image.name


def digit_masks(mnist_root: Path, dest: Path, per_digit: int = 4) -> list[str]:
    (dest / "images").mkdir(parents=True)
    (dest / "masks").mkdir()
    names = []
    for p in some_digits(mnist_root, per_digit):
        name = f"{p.parent.name}_{p.name}"
        shutil.copy(p, dest / "images" / name)
        Image.fromarray((pixels(p) > 127).astype(np.uint8)).save(dest / "masks" / name)
        names.append(f"images/{name}")
    return names


def test_segmentation_masks_come_with_their_images_pixel_for_pixel(mnist_root, tmp_path):
    names = digit_masks(mnist_root, tmp_path)
    dls = SegmentationDataLoaders.from_label_func(tmp_path, names, mask_of, codes=["background", "digit"], bs=8)
    xb, yb = dls.valid.one_batch()
    assert isinstance(yb, TensorMask) and yb.shape == (8, 28, 28) and yb.dtype == torch.int64
    assert yb.codes == ["background", "digit"]
    assert torch.equal(yb.as_subclass(torch.Tensor), (xb[:, 0] * 255 > 127).long().as_subclass(torch.Tensor))
    resized = SegmentationDataLoaders.from_label_func(tmp_path, names, mask_of, item_tfms=Resize(56), bs=8)
    xr, yr = resized.train.one_batch()
    assert xr.shape == (8, 3, 56, 56) and yr.shape == (8, 56, 56) and set(yr.unique().tolist()) == {0, 1}
    agree = ((xr[:, 0] > 0.5).long().as_subclass(torch.Tensor) == yr.as_subclass(torch.Tensor)).float().mean()
    assert float(agree) > 0.97


def test_a_mask_of_another_size_than_its_image_is_an_error_naming_the_file_and_the_fix(mnist_root, tmp_path):
    names = digit_masks(mnist_root, tmp_path, per_digit=1)
    bad = mask_of(tmp_path / names[3])
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(bad)
    dls = SegmentationDataLoaders.from_label_func(tmp_path, names, mask_of, bs=10, valid_pct=0.1)
    with pytest.raises(TransformError, match=rf"the mask {bad} is 30x30 pixels but its image .* is 28x28.*Resize"):
        for dl in dls.loaders:
            list(dl)


# ---------------------------------------------------------------- points and boxes computed from the real pixels


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[: a.shape[0], : a.shape[1]]
    return float((xs * a).sum() / a.sum()), float((ys * a).sum() / a.sum())


class Lookup:
    """A picklable getter: the value stored for an item."""

    def __init__(self, table: dict) -> None:
        self.table = table

    def __call__(self, item):
        return self.table[item]


def test_points_follow_the_digits_centre_of_mass_through_a_resize(mnist_root):
    files = some_digits(mnist_root, 3)
    centres = Lookup({p: [centre_of_mass(pixels(p))] for p in files})
    dblock = DataBlock(blocks=(ImageBlock(PILImageBW), PointBlock), get_y=centres, item_tfms=Resize(56))
    dls = dblock.dataloaders(files, bs=6)
    xb, pb = dls.valid.one_batch()
    assert isinstance(pb, TensorPoint) and pb.shape == (6, 1, 2) and pb.img_size == (56, 56)
    for img, pt in zip(xb, pb):
        x, y = centre_of_mass(img[0].as_subclass(torch.Tensor).double().numpy())
        assert abs(pt[0, 0] - x) < 0.35 and abs(pt[0, 1] - y) < 0.35
    plain = DataBlock(blocks=(ImageBlock, PointBlock), get_y=centres).dataloaders(files, bs=6)
    _, pp = plain.valid.one_batch()
    items = plain.valid.dataset.items[:6]
    assert pp.img_size == (28, 28) and torch.allclose(pp[:, 0], torch.tensor([centres(p)[0] for p in items]))


def test_points_that_are_not_pairs_are_an_error_saying_what_get_y_must_return():
    with pytest.raises(ValueError, match=r"points must be N x 2 pixel coordinates, got shape \(3,\)"):
        PointBlock().type_tfms[0]([1.0, 2.0, 3.0])


def bounding_box(a: np.ndarray, x_offset: int = 0) -> list[float]:
    ys, xs = np.nonzero(a)
    return [float(xs.min() + x_offset), float(ys.min()), float(xs.max() + x_offset), float(ys.max())]


def digit_scenes(mnist_root: Path, dest: Path, n: int = 12) -> tuple[list[Path], dict, dict]:
    """Canvases of 56 x 28 with one digit (even scenes) or two side by side (odd scenes)."""
    files, boxes, labels = some_digits(mnist_root, 3), {}, {}
    scenes = []
    for k in range(n):
        parts = [files[(2 * k) % len(files)]] + ([files[(2 * k + 7) % len(files)]] if k % 2 else [])
        canvas = np.zeros((28, 56), np.uint8)
        path = dest / f"scene_{k}.png"
        boxes[path], labels[path] = [], []
        for j, p in enumerate(parts):
            canvas[:, 28 * j : 28 * j + 28] = pixels(p).astype(np.uint8)
            boxes[path].append(bounding_box(pixels(p), 28 * j))
            labels[path].append(p.parent.name)
        Image.fromarray(canvas).save(path)
        scenes.append(path)
    return scenes, boxes, labels


def test_boxes_and_their_labels_of_items_with_different_counts_are_padded_together(mnist_root, tmp_path):
    scenes, boxes, labels = digit_scenes(mnist_root, tmp_path)
    dblock = DataBlock(
        blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), getters=[None, Lookup(boxes), Lookup(labels)], n_inp=1
    )
    dls = dblock.dataloaders(scenes, bs=4)
    assert dls.vocab[0] == "#na#" and set(dls.vocab[1:]) <= {str(d) for d in range(10)}
    for xb, bb, lb in dls.valid:
        assert isinstance(bb, TensorBBox) and bb.shape[1:] == (2, 4) and bb.img_size == (56, 28)
        for img, bx, lab, path in zip(xb, bb, lb, dls.valid.dataset.items):
            n = len(boxes[path])
            assert torch.equal(bx[:n], torch.tensor(boxes[path])) and bx[n:].abs().sum() == 0
            assert [dls.vocab[i] for i in lab[:n].tolist()] == labels[path] and lab[n:].tolist() == [0] * (2 - n)
            ink = img[0].as_subclass(torch.Tensor) > 0  # every lit pixel lies in a box
            inside = torch.zeros_like(ink)
            for x1, y1, x2, y2 in bx[:n].long().tolist():
                inside[y1 : y2 + 1, x1 : x2 + 1] = True
            assert not (ink & ~inside).any()


def test_pad_boxes_refuses_items_with_a_label_count_different_from_the_box_count():
    items = [(TensorBBox(torch.ones(2, 4)), TensorMultiCategory([1]))]
    with pytest.raises(ValueError, match="item 0 of the batch has 2 boxes but 1 box labels"):
        PadBoxes()(items)


def test_boxes_given_as_width_and_height_are_an_error_explaining_the_layout():
    with pytest.raises(ValueError, match=r"box 0 .* has x2 < x1 or y2 < y1"):
        BBoxBlock().type_tfms[0]([[10, 10, 3, 4]])


# ---------------------------------------------------------------- unreadable files and images from memory


def test_from_folder_with_skip_bad_replaces_a_corrupt_file_by_a_blank_image_and_warns(tmp_path):
    from lamina.datasets import mnist_digits

    for split in ("train", "valid"):
        mnist_digits(tmp_path, n=3, split=split, name="{split}/{digit}/{index}.png")
    good = sorted((tmp_path / "valid" / "7").glob("*.png"))[0]
    (tmp_path / "valid" / "7" / "zz_broken.png").write_bytes(good.read_bytes()[:100])
    dls = ImageDataLoaders.from_folder(tmp_path, bs=7, skip_bad=True)
    with pytest.warns(UserWarning, match=r"zz_broken\.png is unreadable.*blank 28x28 image"):
        xb, yb = dls.valid.one_batch()
    assert xb.shape == (7, 3, 28, 28) and [dls.vocab[i] for i in yb.tolist()] == ["3"] * 3 + ["7"] * 4
    broken = [p.name for p in dls.valid.dataset.items].index("zz_broken.png")
    assert xb[broken].max() == 0 and all(xb[i].max() > 0.9 for i in range(7) if i != broken)


def test_segmentation_from_label_func_passes_skip_bad_to_images_and_masks(tmp_path):
    from lamina.datasets import mnist_digits

    names = mnist_digits(tmp_path, name="{digit}_{k}.png", mask_name="mask_{digit}_{k}.png")
    (tmp_path / "mask_3_0.png").write_bytes((tmp_path / "mask_3_0.png").read_bytes()[:60])
    dls = SegmentationDataLoaders.from_label_func(
        tmp_path, names, lambda p: p.with_name(f"mask_{p.name}"), valid_pct=0.5, seed=0, bs=8, skip_bad=True
    )
    masks = {}
    with pytest.warns(UserWarning, match=r"mask_3_0\.png is unreadable"):
        for dl in (dls.train.new(shuffle=False, drop_last=False), dls.valid):
            _, mb = dl.one_batch()
            masks.update(zip((p.name for p in dl.dataset.items), mb))
    assert len(masks) == 8 and all(m.shape == (28, 28) for m in masks.values())
    assert masks["3_0.png"].max() == 0 and all(m.max() == 1 for name, m in masks.items() if name != "3_0.png")


def digit_centres(images: np.ndarray) -> list[list[tuple[float, float]]]:
    return [[centre_of_mass(a.astype(np.float64))] for a in images]


@pytest.mark.parametrize("source", ["array", "tensor", "PIL image", "PNG bytes"])
def test_image_block_takes_digits_from_memory_as_they_come_from_get_x(mnist, source):
    arrays = mnist["x_train"][:12]
    as_source = {
        "array": lambda a: a,
        "tensor": torch.from_numpy,
        "PIL image": Image.fromarray,
        "PNG bytes": lambda a: png_bytes(a),
    }[source]
    items, centres = [as_source(a) for a in arrays], digit_centres(arrays)
    dblock = DataBlock(
        blocks=(ImageBlock(PILImageBW), PointBlock), get_x=lambda i: items[i], get_y=lambda i: centres[i],
        splitter=lambda idx: (list(range(8)), list(range(8, 12))),
    )  # fmt: skip
    xb, pb = dblock.dataloaders(list(range(12)), bs=4).valid.one_batch()
    assert xb.shape == (4, 1, 28, 28) and pb.shape == (4, 1, 2) and pb.img_size == (28, 28)
    assert torch.equal((xb[:, 0] * 255).round().byte().as_subclass(torch.Tensor), torch.from_numpy(arrays[8:]))
    assert torch.allclose(pb[:, 0], torch.tensor([c[0] for c in centres[8:]], dtype=torch.float32))


def png_bytes(a: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_item_the_image_block_cannot_read_names_the_item_and_the_sources_it_takes(mnist):
    rows = [{"pixels": a} for a in mnist["x_train"][:8]]  # get_x forgot to take the array out of the row
    dblock = DataBlock(blocks=(ImageBlock, PointBlock), get_x=lambda i: rows[i], get_y=lambda i: [(14.0, 14.0)])
    with pytest.raises(TransformError, match=r"cannot make an image of \{'pixels': array.*\(dict\).*numpy array"):
        dblock.dataloaders(list(range(8)), bs=2).valid.one_batch()
