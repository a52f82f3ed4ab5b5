"""The main job, `lamina quickstart`, runs end to end: it trains, draws, exports without pickle and reloads."""

import os

from lamina.cli import main
from tests.conftest import assert_png
from tests.vision.test_interpret import blank_margins


def test_quickstart_trains_draws_exports_and_predicts(mnist_root, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(mnist_root.parent, out / "data")  # the session's PNG folders, instead of writing them again
    assert main(["quickstart", "--out", str(out), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    accuracy = float(printed.split("validation accuracy after 1 epochs: ")[1].split("%")[0])
    assert accuracy > 90  # one epoch from scratch; three reach about 98%
    assert_png(out / "results.png")
    assert_png(out / "confusion_matrix.png")
    assert max(blank_margins(out / "results.png").values()) < 0.05  # the digits fill the picture
    assert "(no pickle) and predicted 700.png in valid/7: '7'" in printed
    assert (out / "mnist.lamina").stat().st_size > 100_000
