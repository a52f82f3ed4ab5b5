"""A vision learner's whole inference leaves Python: written as a torch.export program, a TorchScript file and an
ONNX model, each runs in a process where lamina cannot be imported (and the TorchScript one from a C++ program), on
50 real digits and 50 real solar cells of their own sizes, and agrees with `learn.predict` on the image files: the
same labels, probabilities within 1e-4."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lamina.data.external import mnist_sample_arrays
from lamina.datasets import solar_cells
from lamina.learner.graph import GraphError
from lamina.vision import ImageDataLoaders, Resize
from lamina.vision.learner import vision_learner
from tests.graph_runner import run_graph

FORMATS = [("pt2", "pt2"), ("torchscript", "pt"), ("onnx", "onnx")]


def _quiet(learn):
    learn.logger = lambda line: None
    return learn


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A small CNN trained on real 3s and 7s (28 x 28 PNGs), and 50 other digits' files."""
    arrays, root = mnist_sample_arrays(), tmp_path_factory.mktemp("digits")
    for split in ("train", "valid"):
        for k, i in enumerate(np.flatnonzero(np.isin(arrays[f"y_{split}"], (3, 7)))[:60]):
            folder = root / split / str(arrays[f"y_{split}"][i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arrays[f"x_{split}"][i]).save(folder / f"{k}.png")
    dls = ImageDataLoaders.from_folder(root, bs=16)
    torch.manual_seed(0)
    learn = _quiet(vision_learner(dls, "simple_cnn", pretrained=False, show_progress=False))
    learn.fit_one_cycle(2, 1e-2)
    files = []
    for k, a in enumerate(arrays["x_valid"][-50:]):
        files.append(root / f"other_{k}.png")
        Image.fromarray(a).save(files[-1])
    return learn, files


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """A small CNN on real 300 x 300 solar cells resized to 64 (mono or poly), and 50 other cells' files."""
    root = solar_cells(tmp_path_factory.mktemp("cache"))
    labels = pd.read_csv(root / "labels.csv")
    kind = dict(zip(labels["fname"].map(lambda f: Path(f).name), labels["kind"]))
    files = [root / f for f in labels["fname"].iloc[:96]]
    dls = ImageDataLoaders.from_path_func(root, files, lambda p: kind[p.name], valid_pct=0.25, seed=0, bs=16,
                                          item_tfms=Resize(64))  # fmt: skip
    torch.manual_seed(0)
    learn = _quiet(vision_learner(dls, "simple_cnn", pretrained=False, show_progress=False))
    learn.fit_one_cycle(1, 1e-2)
    return learn, [root / f for f in labels["fname"].iloc[-50:]]


@pytest.mark.parametrize("fmt,ext", FORMATS)
@pytest.mark.parametrize("which", ["digits", "cells"])
def test_a_graph_runs_without_lamina_and_agrees_with_predict_on_50_real_images(which, fmt, ext, request, tmp_path):
    learn, files = request.getfixturevalue(which)
    path = learn.export_graph(tmp_path / f"model.{ext}", format=fmt)
    expected = [learn.predict(f) for f in files]
    pixels = [np.array(Image.open(f).convert("RGB")) for f in files]  # what a user has: the decoded image
    batches = [(np.stack(pixels[start : start + 25]),) for start in (0, 25)]  # batches of 25 images of one size
    for start, (probs, index) in zip((0, 25), run_graph(path, fmt, batches)):
        for k, (label, dec, p) in enumerate(expected[start : start + 25]):
            assert learn.dls.vocab[int(index[k])] == label and int(index[k]) == int(dec)
            np.testing.assert_allclose(probs[k], p.numpy(), atol=1e-4)


def test_the_graph_description_names_inputs_outputs_and_labels(cells, tmp_path):
    learn, _ = cells
    path = learn.export_graph(tmp_path / "cells.pt2")
    spec = json.loads(Path(f"{path}.json").read_text())
    assert spec["format"] == "lamina-graph" and spec["graph_format"] == "pt2" and spec["app"] == "vision"
    assert spec["labels"] == learn.dls.vocab and spec["input_size"] == [64, 64]
    assert spec["inputs"][0] == {**spec["inputs"][0], "name": "images", "dtype": "uint8", "shape": ["N", "H", "W", 3]}
    assert [o["name"] for o in spec["outputs"]] == ["probs", "index"]


def test_a_step_with_no_graph_form_is_refused_by_name(digits, tmp_path):
    from lamina.core.transform import Transform

    learn, _ = digits

    class Invert(Transform):
        def encodes(self, x: np.ndarray) -> np.ndarray:
            return 255 - x

    valid = learn.dls.loaders[1]
    learn.dls.loaders[1] = valid.new(after_item=[Invert(), *valid.after_item.fs])
    try:
        with pytest.raises(GraphError, match="Invert"):
            learn.export_graph(tmp_path / "no.pt2")
    finally:
        learn.dls.loaders[1] = valid


def test_an_unknown_format_is_refused(digits, tmp_path):
    learn, _ = digits
    with pytest.raises(GraphError, match="format must be one of"):
        learn.export_graph(tmp_path / "m.bin", format="tflite")


def _cpp_toolchain_missing() -> str | None:
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/include/png.h").exists():
        return "libpng headers are not installed (Debian: libpng-dev)"
    return None


@pytest.mark.skipif(_cpp_toolchain_missing() is not None, reason=f"C++ example: {_cpp_toolchain_missing()}")
def test_a_cpp_program_loads_the_torchscript_graph_reads_a_png_and_prints_the_label(digits, tmp_path):
    learn, files = digits
    graph = learn.export_graph(tmp_path / "digits.pt", format="torchscript")
    source, build = Path(__file__).resolve().parents[2] / "examples" / "cpp", tmp_path / "build"
    env = {**os.environ, "MAKEFLAGS": "-j2"}
    prefix = torch.utils.cmake_prefix_path
    for cmd in (["cmake", "-S", str(source), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}"],
                ["cmake", "--build", str(build)]):  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for png in files[:5]:
        out = subprocess.run([str(build / "lamina_predict"), str(graph), str(png)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        label, index, prob = out.stdout.split()
        expected, dec, probs = learn.predict(png)
        assert label == expected and int(index) == int(dec) and abs(float(prob) - float(probs[int(dec)])) < 1e-4
