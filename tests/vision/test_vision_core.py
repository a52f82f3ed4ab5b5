"""Image I/O promises: each source and mode is converted one defined way, and bad files say what to do."""

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image

from lamina.core.tensors import TensorImage, TensorImageBW, TensorMask
from lamina.core.transform import transform_from_state, transform_to_state
from lamina.data.external import package_file
from lamina.data.transforms import ToTensor
from lamina.vision import (
    ImageLoadError,
    LoadImage,
    PILImage,
    PILImageBW,
    PILMask,
    verify_images,
)


@pytest.fixture(scope="module")
def solar_png() -> Path:
    """A real 300 x 300 greyscale photo of a solar cell, from PyPI elpv-dataset."""
    return package_file("elpv_dataset", "data/images/cell0001.png")


def test_mnist_png_round_trips_pixel_for_pixel(tmp_path, mnist):
    digit = mnist["x_train"][7]
    Image.fromarray(digit).save(tmp_path / "7.png")
    bw = PILImageBW.create(tmp_path / "7.png")
    assert isinstance(bw.to_tensor(), TensorImageBW) and bw.to_tensor().dtype == torch.uint8
    assert np.array_equal(bw.to_tensor()[0].numpy(), digit)
    rgb = PILImage.create(str(tmp_path / "7.png")).to_tensor()
    assert isinstance(rgb, TensorImage) and rgb.shape == (3, 28, 28)
    assert all(np.array_equal(rgb[c].numpy(), digit) for c in range(3))


def test_every_source_gives_the_same_image(tmp_path, mnist):
    digit = mnist["x_valid"][3]
    path = tmp_path / "d.png"
    Image.fromarray(digit).save(path)
    sources = [path, str(path), path.read_bytes(), digit, torch.from_numpy(digit)[None], Image.fromarray(digit)]
    for src in sources:
        got = PILImageBW.create(src)
        assert got.size == (28, 28) and np.array_equal(np.asarray(got.image), digit), type(src)
    floats = PILImageBW.create(torch.from_numpy(digit).float().div(255)[None])
    assert np.array_equal(np.asarray(floats.image), digit)


def test_a_grey_source_resized_as_a_colour_image_equals_the_converted_one_resized(solar_png):
    from lamina.vision.transforms import Resize

    grey = PILImage.create(solar_png)
    assert grey.image.mode == "L" and grey.shape == (3, 300, 300)
    via_rgb = PILImage(Image.open(solar_png).convert("RGB"))
    for tfm in (Resize(128, method="squish"), Resize((90, 120), method="pad")):
        a, b = (o.to_tensor() if isinstance(o, PILImage) else o for o in (tfm(grey), tfm(via_rgb)))
        assert a.shape[0] == 3 and torch.equal(a, b)


def test_to_tensor_through_the_ToTensor_transform(mnist):
    img = PILImage.create(mnist["x_train"][0])
    t = ToTensor()(img)
    assert type(t) is TensorImage and t.shape == img.shape == (3, 28, 28)
    mask = ToTensor()(PILMask.create(np.array([[0, 3]], dtype=np.uint8)))
    assert type(mask) is TensorMask and mask.dtype == torch.int64 and mask.tolist() == [[0, 3]]


def test_jpeg_with_size_hint_is_downscaled_while_decoding(tmp_path, solar_png):
    path = tmp_path / "cell.jpg"
    Image.open(solar_png).save(path, quality=90)
    full = PILImageBW.create(path)
    assert full.size == (300, 300)
    small = PILImageBW.create(path, size_hint=(100, 100))
    assert small.size == (150, 150)  # the smallest JPEG scale (1/2) still at least 100 x 100
    assert PILImage.create(path, size_hint=70).size == (75, 75)
    colour = PILImage.create(path, size_hint=(100, 100)).to_tensor()  # a grey JPEG: the plane on 3 channels
    assert colour.shape == (3, 150, 150) and torch.equal(colour[0], colour[2])
    thumb = np.asarray(full.resize((150, 150)).image, dtype=float)
    assert np.abs(np.asarray(small.image, dtype=float) - thumb).mean() < 6  # the same picture, smaller


def test_size_hint_leaves_png_alone(solar_png):
    assert PILImageBW.create(solar_png, size_hint=(50, 50)).size == (300, 300)


def _with_orientation(tmp_path: Path, orientation: int) -> Path:
    """A 40 x 20 JPEG stored black with a white top-left corner, tagged with an EXIF orientation."""
    a = np.zeros((20, 40), dtype=np.uint8)
    a[:8, :8] = 255
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(a).save(path, exif=exif, quality=95)
    return path


def test_exif_orientation_is_applied(tmp_path):
    img = PILImageBW.create(_with_orientation(tmp_path, 6))  # 6: rotate 90 degrees clockwise to display
    assert img.size == (20, 40)
    a = np.asarray(img.image)
    assert a[:8, -8:].mean() > 200 and a[-8:, :8].mean() < 50  # stored top-left is now top-right
    assert PILImageBW.create(_with_orientation(tmp_path, 1)).size == (40, 20)
    flipped = np.asarray(PILImageBW.create(_with_orientation(tmp_path, 2)).image)  # 2: mirror left-right
    assert flipped[:8, -8:].mean() > 200


def test_size_hint_on_a_rotated_jpeg_is_read_in_display_orientation(tmp_path):
    a = np.random.default_rng(0).integers(0, 255, (200, 400), dtype=np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    path = tmp_path / "rot.jpg"
    Image.fromarray(a).save(path, exif=exif)
    assert PILImage.create(path, size_hint=(100, 200)).size == (100, 200)  # (w, h) as displayed


def _palette_image() -> Image.Image:
    p = Image.new("P", (3, 1))
    p.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    p.putdata([0, 1, 2])
    return p


def test_palette_is_colour_for_images_and_codes_for_masks(tmp_path):
    path = tmp_path / "p.png"
    _palette_image().save(path)
    assert PILImage.create(path).to_tensor()[:, 0].T.tolist() == [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    assert PILMask.create(path).to_tensor().tolist() == [[0, 1, 2]]
    grey = PILImageBW.create(path).to_tensor()[0, 0].tolist()
    assert grey == [0, 76, 29]  # ITU-R 601 luma of black, red, blue


def test_rgba_is_composited_on_white(tmp_path):
    a = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    assert PILImage.create(tmp_path / "a.png").to_tensor()[:, 0].T.tolist() == [
        [255, 0, 0],
        [255, 255, 255],
        [127, 127, 127],
    ]
    assert PILImageBW.create(tmp_path / "a.png").to_tensor()[0, 0, 1].item() == 255


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    p = _palette_image()
    p.info["transparency"] = 0
    p.save(tmp_path / "t.png", transparency=0)
    assert PILImage.create(tmp_path / "t.png").to_tensor()[:, 0, 0].tolist() == [255, 255, 255]
    assert PILMask.create(tmp_path / "t.png").to_tensor().tolist() == [[0, 1, 2]]


def test_16_bit_greys_are_scaled_to_8_bits_and_kept_as_codes_in_masks(tmp_path):
    a = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert PILImageBW.create(tmp_path / "deep.png").to_tensor().flatten().tolist() == [0, 100, 255]
    assert PILImage.create(tmp_path / "deep.png").to_tensor()[:, 0, 1].tolist() == [100, 100, 100]
    assert PILMask.create(tmp_path / "deep.png").to_tensor().tolist() == [[0, 25700, 65535]]
    assert PILImageBW.create(a).to_tensor().flatten().tolist() == [0, 100, 255]


def test_colour_to_grey_and_grey_masks(mnist):
    colour = np.stack([mnist["x_train"][0]] * 3, -1)
    assert np.array_equal(PILImageBW.create(colour).to_tensor()[0].numpy(), mnist["x_train"][0])
    assert PILMask.create(colour).to_tensor().max().item() == mnist["x_train"][0].max()  # equal channels: codes


def test_colourful_mask_is_refused_with_the_fix(tmp_path):
    a = np.zeros((2, 2, 3), dtype=np.uint8)
    a[0, 0] = (255, 0, 0)
    Image.fromarray(a).save(tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"m\.png: a mask must hold integer codes.*map each colour to a code"):
        PILMask.create(tmp_path / "m.png")


def test_resize_keeps_the_class_and_masks_keep_their_codes():
    mask = PILMask.create(np.array([[0, 5], [9, 5]], dtype=np.uint8))
    big = mask.resize(7)
    assert type(big) is PILMask and big.size == (7, 7)
    assert set(big.to_tensor().unique().tolist()) == {0, 5, 9}
    img = PILImage.create(np.zeros((4, 6, 3), dtype=np.uint8)).resize((3, 2))
    assert type(img) is PILImage and img.shape == (3, 2, 3)


def test_wrong_mode_in_constructor_says_to_use_create():
    with pytest.raises(ValueError, match=r"PILImage holds a PIL image in mode RGB or L, got RGBA: use PILImage.create"):
        PILImage(Image.new("RGBA", (2, 2)))


def _truncated_copy(src: Path, dest: Path) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


def test_truncated_png_names_the_file_and_the_fix(tmp_path, solar_png):
    bad = _truncated_copy(solar_png, tmp_path / "broken.png")
    with pytest.raises(ImageLoadError, match=r"broken\.png: cannot decode.*run verify_images\(paths\)") as info:
        PILImage.create(bad)
    assert isinstance(info.value, OSError)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        PILImage.create(tmp_path / "nowhere.png")


def test_verify_images_finds_the_corrupt_files_among_good_ones(tmp_path, solar_png, mnist):
    good = []
    for i in range(6):
        good.append(tmp_path / f"good{i}.png")
        Image.fromarray(mnist["x_train"][i]).save(good[-1])
    truncated = _truncated_copy(solar_png, tmp_path / "truncated.png")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 4)
    paths = [*good[:3], truncated, *good[3:], garbage, tmp_path / "missing.png"]
    expected = [truncated, garbage, tmp_path / "missing.png"]
    assert verify_images(paths) == expected
    assert verify_images([str(p) for p in paths], n_workers=3) == expected
    assert verify_images(good) == []


def test_load_image_raises_on_a_bad_file_by_default(tmp_path, solar_png):
    bad = _truncated_copy(solar_png, tmp_path / "bad.png")
    with pytest.raises(ImageLoadError, match=r"bad\.png"):
        LoadImage()(bad)


def test_load_image_skip_bad_warns_and_gives_a_blank_image_of_the_last_size(tmp_path, solar_png):
    bad = _truncated_copy(solar_png, tmp_path / "bad.png")
    load = LoadImage(PILImageBW, skip_bad=True)
    assert load(solar_png).size == (300, 300)
    with pytest.warns(UserWarning, match=r"bad\.png is unreadable.*blank 300x300 image.*verify_images"):
        blank = load(bad)
    assert type(blank) is PILImageBW and blank.size == (300, 300) and blank.to_tensor().max().item() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(str(solar_png)).size == (300, 300)  # good files after a bad one load as usual


def test_load_image_skip_bad_before_any_good_file_uses_size_hint(tmp_path, solar_png):
    bad = _truncated_copy(solar_png, tmp_path / "bad.png")
    with pytest.warns(UserWarning, match="blank 64x32"):
        blank = LoadImage("PILMask", skip_bad=True, size_hint=(64, 32))(bad)
    assert type(blank) is PILMask and blank.to_tensor().shape == (32, 64)


def test_load_image_state_round_trips_and_checks_its_class():
    load = LoadImage(PILMask, skip_bad=True, size_hint=(8, 8))
    tensors: dict = {}
    again = transform_from_state(transform_to_state(load, tensors), tensors)
    assert isinstance(again, LoadImage) and (again.cls, again.skip_bad, again.size_hint) == ("PILMask", True, (8, 8))
    with pytest.raises(ValueError, match=r"cls must be one of \['PILImage', 'PILImageBW', 'PILMask'\]"):
        LoadImage(int)  # type: ignore[arg-type]


def test_bytes_that_are_not_an_image_name_the_source():
    with pytest.raises(ImageLoadError, match=r"<bytes>: cannot identify"):
        PILImage.create(io.BytesIO(b"xyz").getvalue())


@pytest.mark.parametrize("cut", ["truncated", "garbage after a JPEG header"])
def test_a_file_that_fails_to_decode_is_closed(tmp_path, solar_png, cut):
    import gc

    if cut == "truncated":
        bad = _truncated_copy(solar_png, tmp_path / "bad.png")
    else:
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            PILImage.create(bad)
        except ImageLoadError:
            pass
        else:
            pytest.fail(f"{bad.name} decoded without an error")
        gc.collect()  # an unclosed file object warns when it is collected
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
