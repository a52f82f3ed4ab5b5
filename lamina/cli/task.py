"""What ``lamina train`` and ``lamina lr-find`` need to know about a kind of data: a :class:`Task`.

A task names its options and three steps, each a call of the public API: ``build`` (the DataLoaders and the
learner from the options), ``fit`` (the training recipe) and ``report`` (the pictures and tables written to
``--out``). A new kind of data (text, say) is one more module with one function returning a ``Task``, listed in
:data:`lamina.cli.train.TASKS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.cli.config import Option

__all__ = ["COMMON_OPTIONS", "Task", "fit_options", "save_figure"]

Config = dict[str, Any]

COMMON_OPTIONS = (
    Option("valid_pct", float, 0.2, "share of the data held out for validation, at random", minimum=0.0),
    Option("seed", int, 0, "seed of the split, the weights and the shuffling (the same seed, the same run)",
           minimum=0),
    Option("bs", int, 64, "batch size", minimum=1),
    Option("lr", float, None, "learning rate (run `lamina lr-find` to choose one); the recipe's default if unset",
           minimum=0.0),
    Option("epochs", int, 3, "epochs of training", minimum=1),
    Option("device", str, None, "cpu, cuda, cuda:1, mps...; the accelerator when there is one, if unset"),
    Option("out", str, "lamina_out", "folder for the pictures, the tables and the exported model", metavar="FOLDER"),
    Option("name", str, "model.lamina", "file name of the exported model, inside --out"),
)  # fmt: skip


def fit_options(options: tuple[Option, ...]) -> tuple[Option, ...]:
    """``options`` followed by the options every task shares (:data:`COMMON_OPTIONS`), without duplicates.

    Examples:
        >>> [o.name for o in fit_options((Option("folder", str, None, "the images", positional=True),))][:3]
        ['folder', 'valid_pct', 'seed']
    """
    own = {o.name for o in options}
    return options + tuple(o for o in COMMON_OPTIONS if o.name not in own)


@dataclass(frozen=True)
class Task:
    """A kind of data the ``train`` and ``lr-find`` commands handle.

    Args:
        name: the sub-command (``images``).
        summary: one line for ``--help``.
        example: example command lines for the epilog of ``--help``.
        options: every option (see :func:`fit_options`).
        required: options that must be set.
        build: the learner (with its DataLoaders) from the options.
        fit: train it.
        report: write the pictures and tables to the folder; returns the files written.

    Examples:
        >>> t = Task("toy", "a toy", "lamina train toy", (), (), print, print, lambda learn, c, out: [])
        >>> t.name
        'toy'
    """

    name: str
    summary: str
    example: str
    options: tuple[Option, ...]
    required: tuple[str, ...]
    build: Callable[[Config], Any]
    fit: Callable[[Any, Config], None]
    report: Callable[[Any, Config, Path], list[Path]]


def save_figure(figure: Any, path: Path) -> Path:
    """Write a matplotlib figure to ``path`` and close it (a command draws several; open figures cost memory).

    Args:
        figure: the figure.
        path: the PNG file.

    Examples:
        >>> import tempfile
        >>> import matplotlib.pyplot as plt
        >>> save_figure(plt.figure(), Path(tempfile.mkdtemp()) / "empty.png").stat().st_size > 0
        True
    """
    import matplotlib.pyplot as plt

    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path
