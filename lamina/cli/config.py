"""Options of the ``lamina`` commands, declared once: each builds its argparse argument, is read from a TOML config
file (``--config run.toml``) and is written back by ``--print-config``.

The effective value of an option is the command line's when given, else the config file's, else its default. A
config file is flat: one ``key = value`` per option, named as on the command line without the dashes
(``valid_pct = 0.1`` or ``valid-pct = 0.1``). An unknown key, or a value of the wrong type, is an error naming it.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CLIError", "Option", "add_options", "config_toml", "load_config", "resolve"]


class CLIError(ValueError):
    """Bad input to a ``lamina`` command; printed as one line ``error: ...`` with exit code 2.

    Examples:
        >>> issubclass(CLIError, ValueError)
        True
    """


@dataclass(frozen=True)
class Option:
    """One option of a command: its name, type, default and help, shared by argparse and the config file.

    Args:
        name: the Python name (``valid_pct``); the flag is ``--valid-pct``.
        type: ``int``, ``float``, ``str`` or ``bool`` (a bool is a ``--flag`` / ``--no-flag`` pair).
        default: the value when neither the command line nor the config file gives one (``None``: unset).
        help: one line for ``--help``.
        positional: a positional argument (it may still come from the config file).
        many: takes several values (a list).
        choices: the allowed values.
        minimum: the smallest allowed value of a number.
        metavar: the placeholder shown in ``--help``.

    Examples:
        >>> Option("epochs", int, 3, "epochs of training", minimum=1).flag
        '--epochs'
    """

    name: str
    type: type
    default: Any
    help: str
    positional: bool = False
    many: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        """The command-line spelling: ``--valid-pct`` (or the bare name of a positional argument)."""
        return self.name if self.positional else "--" + self.name.replace("_", "-")

    def check(self, value: Any, where: str) -> Any:
        """``value`` if it has the right type and range (ints are accepted for floats), else a :class:`CLIError`."""
        values = value if self.many else [value]
        if self.many and not isinstance(value, list):
            raise CLIError(f"{where}: {self.name} must be a list, got {value!r}")
        for v in values:
            ok = isinstance(v, self.type) and not (self.type is not bool and isinstance(v, bool))
            if self.type is float and isinstance(v, int) and not isinstance(v, bool):
                ok = True
            if not ok:
                raise CLIError(f"{where}: {self.name} must be {self.type.__name__}, got {v!r}")
            if self.choices is not None and v not in self.choices:
                raise CLIError(f"{where}: {self.name} must be one of {list(self.choices)}, got {v!r}")
            if self.minimum is not None and v < self.minimum:
                raise CLIError(f"{where}: {self.name} must be >= {self.minimum}, got {v!r}")
        return [self.type(v) for v in values] if self.many else self.type(value)


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option], config: bool = True) -> None:
    """Add ``options`` to ``parser`` (every default ``None``, so that what was typed can be told apart), and
    ``--config`` when ``config``.

    Args:
        parser: the command's parser.
        options: its options.
        config: also add ``--config FILE``.

    Examples:
        >>> p = argparse.ArgumentParser()
        >>> add_options(p, [Option("epochs", int, 3, "epochs"), Option("pretrained", bool, False, "use weights")])
        >>> vars(p.parse_args(["--epochs", "2"]))
        {'epochs': 2, 'pretrained': None, 'config': None}
    """
    for o in options:
        shown = "" if o.default is None or o.default is False or o.default == [] else f" (default: {o.default})"
        kwargs: dict[str, Any] = {"help": o.help + shown, "default": None}
        if o.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=o.type, choices=o.choices, metavar=o.metavar)
            if o.many:
                kwargs["nargs"] = "*" if o.positional else "+"
            elif o.positional:
                kwargs["nargs"] = "?"
        if o.positional:
            kwargs.pop("default")
            kwargs["default"] = [] if o.many else None
            parser.add_argument(o.name, **kwargs)
        else:
            parser.add_argument(o.flag, dest=o.name, **kwargs)
    if config:
        parser.add_argument("--config", type=Path, metavar="FILE.toml",
                            help="read options from a TOML file (the command line overrides it)")  # fmt: skip


def load_config(path: str | Path, options: Sequence[Option]) -> dict[str, Any]:
    """The options set by the TOML file ``path``, checked against ``options``.

    Args:
        path: the config file.
        options: the command's options.

    Examples:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "run.toml"; _ = f.write_text("epochz = 3")
        >>> load_config(f, [Option("epochs", int, 3, "epochs")])
        Traceback (most recent call last):
        ...
        lamina.cli.config.CLIError: ...run.toml: unknown key 'epochz'; the keys of this command are ['epochs']
    """
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"the config file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CLIError(f"{path} is not valid TOML: {e}") from e
    by_name = {o.name: o for o in options}
    config = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in by_name:
            raise CLIError(f"{path}: unknown key {key!r}; the keys of this command are {sorted(by_name)}")
        config[name] = by_name[name].check(value, str(path))
    return config


def resolve(args: argparse.Namespace, options: Sequence[Option], required: Sequence[str] = ()) -> dict[str, Any]:
    """The effective options: the command line's values over the config file's (``args.config``) over defaults.

    Args:
        args: the parsed command line.
        options: the command's options.
        required: names that must end up set (a positional argument given in neither place, say).

    Examples:
        >>> opts = [Option("epochs", int, 3, "epochs"), Option("lr", float, None, "learning rate")]
        >>> resolve(argparse.Namespace(epochs=None, lr=0.01, config=None), opts)
        {'epochs': 3, 'lr': 0.01}
    """
    from_file = load_config(args.config, options) if getattr(args, "config", None) else {}
    config = {}
    for o in options:
        typed = getattr(args, o.name, None)
        if typed is not None and typed != []:
            config[o.name] = o.check(typed, "the command line")
        else:
            config[o.name] = from_file.get(o.name, o.default)
    missing = [o.flag for o in options if o.name in required and config[o.name] in (None, [])]
    if missing:
        raise CLIError(f"missing {', '.join(missing)}: give it on the command line or in the --config file")
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string with ASCII escapes is a TOML basic string


def config_toml(config: Mapping[str, Any]) -> str:
    """``config`` as TOML that ``--config`` reads back (unset options, ``None``, are left out).

    Examples:
        >>> print(config_toml({"folder": "data/cells", "epochs": 3, "lr": None, "cat": ["cut", "color"]}), end="")
        folder = "data/cells"
        epochs = 3
        cat = ["cut", "color"]
    """
    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in config.items() if v is not None)
