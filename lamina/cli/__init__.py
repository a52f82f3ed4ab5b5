"""The ``lamina`` command: train, predict and export from the shell, on the same public API as Python.

``main`` builds one argparse parser from the command modules (``train``/``lr-find`` in :mod:`lamina.cli.train`,
``predict``/``export`` in :mod:`lamina.cli.predict`, ``datasets`` in :mod:`lamina.cli.datasets`, ``quickstart``,
``demo`` and ``serve`` in :mod:`lamina.cli.examples`); each sets ``run``, the function that runs it. Bad input is
reported as one line ``error: ...`` on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lamina.cli import datasets, examples, predict, train
from lamina.cli.config import CLIError

__all__ = ["CLIError", "build_parser", "main"]

EPILOG = """start here:
  lamina quickstart                                   # a digit classifier on real MNIST images, in a minute
  lamina datasets get solar_cells                     # real photos to try `train images` on
  lamina train images FOLDER --epochs 3               # your own images, labelled by their folder names
  lamina train tabular FILE.csv --target COLUMN       # your own table
  lamina predict lamina_out/model.lamina NEW_IMAGES/  # use what you trained
Every command has --help, with examples."""

# the library's errors about bad input (a missing file or column, a bad value): one line each
INPUT_ERRORS = (ValueError, OSError)


def build_parser() -> argparse.ArgumentParser:
    """The ``lamina`` parser with every command.

    Examples:
        >>> build_parser().parse_args(["train", "images", "photos", "--epochs", "2"]).epochs
        2
    """
    parser = argparse.ArgumentParser(prog="lamina", description="lamina: a layered deep-learning library. Train, "
                                     "predict and export from the command line.", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    examples.add_parsers(sub)
    train.add_parsers(sub)
    predict.add_parsers(sub)
    datasets.add_parsers(sub)
    return parser


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in text:
        text += f": {error.filename}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lamina`` console script (and ``python -m lamina``).

    Args:
        argv: the arguments (``sys.argv[1:]`` when ``None``).

    Examples:
        >>> main(["--version"])
        lamina 0.1.0
        0
    """
    from lamina import __version__

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"lamina {__version__}")
        return 0
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    import matplotlib

    matplotlib.use("Agg")  # commands write pictures to files, never open windows
    try:
        return int(args.run(args))
    except (CLIError, *INPUT_ERRORS) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
