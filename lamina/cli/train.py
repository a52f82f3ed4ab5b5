"""``lamina train <task>`` and ``lamina lr-find <task>``: the same options, two recipes.

``train`` builds the learner (:class:`~lamina.cli.task.Task.build`), trains it with a progress bar and the
per-epoch table, prints the validation metrics, draws the pictures into ``--out`` and exports the model there.
``lr-find`` builds the same learner and runs the learning-rate finder: ``lr_find.png`` and the suggestions.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

from lamina.cli.config import Option, add_options, config_toml, resolve
from lamina.cli.images import images_task
from lamina.cli.tabular import tabular_task
from lamina.cli.task import Config, Task, save_figure

__all__ = ["LR_FIND_OPTIONS", "TASKS", "add_parsers", "lr_find", "train"]

TASKS: dict[str, Task] = {t.name: t for t in (images_task(), tabular_task())}
"""The kinds of data ``train`` and ``lr-find`` handle, by sub-command."""

LR_FIND_OPTIONS = (
    Option("start_lr", float, 1e-7, "the first learning rate tried", minimum=0.0),
    Option("end_lr", float, 10.0, "the last learning rate tried", minimum=0.0),
    Option("num_it", int, 100, "batches (one learning rate each)", minimum=2),
)

TRAIN_HELP = """Train a model from the command line: the data, the network and the recipe from options (or a
--config TOML file), a progress bar and a table per epoch while it trains, then the validation metrics. Written to
--out: show_batch, results and (for classifiers) confusion_matrix pictures, loss.png and the exported model, which
`lamina predict`, `lamina export`, `lamina serve` and lamina.learner.load_learner read."""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def add_parsers(sub: Any) -> None:
    """Add ``train`` and ``lr-find``, with a sub-command per task, to the ``lamina`` sub-parsers ``sub``."""
    p_train = sub.add_parser("train", help="train a model on your images or table; pictures and model to --out",
                             description=TRAIN_HELP, formatter_class=_formatter)  # fmt: skip
    p_find = sub.add_parser("lr-find", help="plot the loss against the learning rate to choose --lr",
                            description="Run the learning-rate finder on the learner `lamina train` would build "
                            "(same options): writes lr_find.png to --out and prints the suggested rates.",
                            formatter_class=_formatter)  # fmt: skip
    train_tasks = p_train.add_subparsers(dest="task", metavar="{" + ",".join(TASKS) + "}")
    find_tasks = p_find.add_subparsers(dest="task", metavar="{" + ",".join(TASKS) + "}")
    for task in TASKS.values():
        p = train_tasks.add_parser(task.name, help=task.summary, description=task.summary, epilog=task.example,
                                   formatter_class=_formatter)  # fmt: skip
        add_options(p, task.options)
        p.add_argument("--print-config", action="store_true",
                       help="print the effective options as TOML (for --config) and exit without training")  # fmt: skip
        p.set_defaults(run=train, task_spec=task)
        p = find_tasks.add_parser(task.name, help=f"lr-find for: {task.summary}", epilog=task.example,
                                  formatter_class=_formatter)  # fmt: skip
        add_options(p, task.options + LR_FIND_OPTIONS)
        p.set_defaults(run=lr_find, task_spec=task)
    for parser in (p_train, p_find):
        parser.set_defaults(run=functools.partial(_no_task, parser))


def _no_task(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    parser.print_help(sys.stderr)
    return 2


def _start(task: Task, config: Config) -> tuple[Any, Path]:
    """Seed, make ``--out`` and build the learner: the first steps of both commands."""
    from lamina.core.utils import set_seed

    set_seed(config["seed"])
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    return task.build(config), out


def _print_metrics(learn: Any) -> None:
    values = learn.validate()
    names = ["loss", *(m.name for m in learn.metrics)]
    print("validation: " + ", ".join(f"{n} {v:.4f}" for n, v in zip(names, values)))


def train(args: argparse.Namespace) -> int:
    """Run ``lamina train <task>`` with the parsed ``args``; 0 when done."""
    task: Task = args.task_spec
    config = resolve(args, task.options, task.required if not args.print_config else ())
    if args.print_config:
        sys.stdout.write(config_toml(config))
        return 0
    learn, out = _start(task, config)
    task.fit(learn, config)
    _print_metrics(learn)
    written = task.report(learn, config, out)
    written.append(save_figure(learn.recorder.plot_loss(), out / "loss.png"))
    exported = learn.export(config["name"])
    print(f"wrote {', '.join(p.name for p in written)} and the model {exported}")
    return 0


def lr_find(args: argparse.Namespace) -> int:
    """Run ``lamina lr-find <task>`` with the parsed ``args``; 0 when done."""
    task: Task = args.task_spec
    config = resolve(args, task.options + LR_FIND_OPTIONS, task.required)
    learn, out = _start(task, config)
    found = learn.lr_find(start_lr=config["start_lr"], end_lr=config["end_lr"], num_it=config["num_it"])
    path = save_figure(found.figure, out / "lr_find.png")
    for name, lr in found.lrs.items():
        print(f"suggested learning rate ({name}): {lr:.2e}")
    print(f"wrote {path}; train with e.g. --lr {next(iter(found.lrs.values())):.1e}")
    return 0
