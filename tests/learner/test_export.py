"""Exports are one pickle-free file; anything foreign, tampered or unexportable is refused with a clear error."""

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from lamina.data import DataLoader, DataLoaders
from lamina.learner import ExportError, Learner, load_learner, read_export
from lamina.nn import build_model, model_names, register_model


def test_an_unknown_model_name_suggests_the_nearest_ones():
    register_model("test_export_linear")(nn.Linear)
    assert "test_export_linear" in model_names()
    with pytest.raises(ValueError, match=r"did you mean 'test_export_linear'"):
        build_model("test_export_linar", in_features=2, out_features=1)


def test_a_learner_built_by_hand_cannot_be_exported(tmp_path):
    x, y = torch.randn(32, 2), torch.randn(32, 1)
    learn = Learner(DataLoaders(DataLoader((x, y), bs=8)), nn.Linear(2, 1), path=tmp_path)
    with pytest.raises(ExportError, match="application factory"):
        learn.export()


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"learn\.export"):
        load_learner(tmp_path / "nothing.lamina")


def test_a_file_that_is_not_safetensors_is_refused(tmp_path):
    bad = tmp_path / "model.lamina"
    bad.write_bytes(b"\x80\x04\x95 this is a pickle, not an export")
    with pytest.raises(ExportError, match="not a lamina export"):
        load_learner(bad)


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    foreign = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ExportError, match="no valid description"):
        read_export(foreign)


def _export_with(tmp_path, spec):
    path = tmp_path / "tampered.lamina"
    save_file({"model.weight": torch.zeros(1, 2), "model.bias": torch.zeros(1)}, str(path),
              metadata={"lamina": json.dumps(spec)})  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"format": "other", "version": 1}, "not a lamina export"),
        ({"format": "lamina-export", "version": 99}, "export version 99"),
        ({"format": "lamina-export", "version": 1, "app": "os.system", "model": {}}, "unknown application"),
    ],
)
def test_a_tampered_description_is_refused_and_never_executed(tmp_path, spec, message):
    with pytest.raises(ExportError, match=message):
        load_learner(_export_with(tmp_path, spec))
