"""Every option can come from a TOML file; the command line wins; unknown keys and bad values are named."""

import argparse

import pytest

from lamina.cli import main
from lamina.cli.config import CLIError, Option, config_toml, load_config, resolve

OPTIONS = (
    Option("folder", str, None, "images", positional=True),
    Option("epochs", int, 3, "epochs", minimum=1),
    Option("lr", float, None, "learning rate"),
    Option("cat", str, [], "columns", many=True),
    Option("kind", str, "auto", "kind", choices=("auto", "regression")),
)


def parse(*argv):
    parser = argparse.ArgumentParser()
    from lamina.cli.config import add_options

    add_options(parser, OPTIONS)
    return parser.parse_args(list(argv))


def test_the_command_line_overrides_the_file_which_overrides_the_defaults(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('folder = "cells"\nepochs = 5\nlr = 1e-3\ncat = ["cut", "color"]\n')
    assert resolve(parse("--config", str(toml), "--epochs", "2"), OPTIONS) == {
        "folder": "cells", "epochs": 2, "lr": 0.001, "cat": ["cut", "color"], "kind": "auto"}  # fmt: skip
    assert resolve(parse("other", "--cat", "x"), OPTIONS)["folder"] == "other"


def test_a_key_may_be_spelled_with_dashes_as_on_the_command_line(tmp_path):
    (tmp_path / "run.toml").write_text("valid-pct = 0.1")
    assert load_config(tmp_path / "run.toml", [Option("valid_pct", float, 0.2, "share")]) == {"valid_pct": 0.1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epoch = 3", "unknown key 'epoch'"),
        ('epochs = "three"', "epochs must be int, got 'three'"),
        ("epochs = 0", "epochs must be >= 1, got 0"),
        ('kind = "classify"', "kind must be one of ['auto', 'regression']"),
        ('cat = "cut"', "cat must be a list"),
        ("epochs = ", "is not valid TOML"),
    ],
)
def test_a_bad_config_file_is_an_error_naming_the_key(tmp_path, text, message):
    (tmp_path / "run.toml").write_text(text)
    with pytest.raises(CLIError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve(parse("--config", str(tmp_path / "run.toml")), OPTIONS)


def test_a_required_option_given_nowhere_is_an_error_saying_where_to_give_it():
    with pytest.raises(CLIError, match="missing folder: give it on the command line or in the --config file"):
        resolve(parse(), OPTIONS, required=("folder",))


def test_print_config_writes_toml_that_reads_back_to_the_same_options(tmp_path, capsys):
    argv = ["train", "tabular", "table.csv", "--target", "price", "--cat", "cut", "color", "--lr", "0.003"]
    assert main([*argv, "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert 'csv = "table.csv"\ntarget = "price"\ncat = ["cut", "color"]\n' in printed and "lr = 0.003\n" in printed
    (tmp_path / "run.toml").write_text(printed)
    assert main(["train", "tabular", "--config", str(tmp_path / "run.toml"), "--print-config"]) == 0
    assert capsys.readouterr().out == printed


def test_an_unknown_key_in_a_train_config_exits_2_with_one_error_line(tmp_path, capsys):
    (tmp_path / "run.toml").write_text('folder = "x"\nepocs = 2\n')
    assert main(["train", "images", "--config", str(tmp_path / "run.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown key 'epocs'" in err and err.count("\n") == 1


def test_toml_strings_escape_quotes_and_backslashes():
    text = config_toml({"out": 'C:\\runs\\"a"', "flag": True, "unset": None})
    import tomllib

    assert tomllib.loads(text) == {"out": 'C:\\runs\\"a"', "flag": True}
