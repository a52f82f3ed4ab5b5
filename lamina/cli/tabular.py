"""``lamina train tabular`` / ``lamina lr-find tabular``: a classifier or regressor on the rows of a CSV file.

The recipe, in Python (what the command runs, option by option)::

    set_seed(seed)
    df = pd.read_csv(csv)
    dls = TabularDataLoaders.from_df(df, cat_names=cat, cont_names=cont, y_names=target, y_block=kind,
                                     valid_idx=..., valid_pct=valid_pct, seed=seed, bs=bs)
    learn = tabular_learner(dls, layers=layers, metrics=[accuracy] or [rmse], path=out)
    learn.fit_one_cycle(epochs, lr)
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lamina.cli.config import CLIError, Option
from lamina.cli.task import Config, Task, fit_options, save_figure

__all__ = ["TABULAR_OPTIONS", "columns", "tabular_task", "target_kind"]

MAX_CARD = 20  # as cont_cat_split: a number column with more distinct values is continuous

EXAMPLE = """examples:
  # predict price from every other column (categorical or continuous decided from the values)
  lamina train tabular diamonds.csv --target price --epochs 5
  # name the columns; a true/false column chooses the validation rows
  lamina train tabular diamonds.csv --target price --cat cut color clarity \\
      --cont carat depth table x y z --valid-col is_valid --epochs 10 --out runs/diamonds
  lamina lr-find tabular diamonds.csv --target price      # writes lr_find.png, prints suggestions
"""

TABULAR_OPTIONS = fit_options((
    Option("csv", str, None, "the table, one row per example", positional=True, metavar="FILE.csv"),
    Option("target", str, None, "the column to predict"),
    Option("cat", str, [], "categorical columns (if unset: the other columns that are text, or numbers with at "
           f"most {MAX_CARD} distinct values)", many=True, metavar="COL"),
    Option("cont", str, [], "continuous columns (if unset: the other columns of numbers)", many=True, metavar="COL"),
    Option("kind", str, "auto", "what to predict: 'classification' (a label), 'regression' (a number), or 'auto': "
           f"regression for a number column with more than {MAX_CARD} distinct values",
           choices=("auto", "classification", "regression")),
    Option("valid_col", str, None, "a true/false column marking the validation rows (instead of --valid-pct); it is "
           "not used as an input"),
    Option("layers", int, [], "widths of the hidden layers (200 100 if unset)", many=True, minimum=1, metavar="N"),
    Option("sep", str, ",", "the CSV's separator"),
))  # fmt: skip


def target_kind(values: pd.Series, kind: str) -> str:
    """``"regression"`` or ``"single"`` (classification) for the target ``values`` and the ``--kind`` option.

    Args:
        values: the target column.
        kind: ``"auto"``, ``"classification"`` or ``"regression"``.

    Examples:
        >>> target_kind(pd.Series(range(100)), "auto"), target_kind(pd.Series(["a", "b"]), "auto")
        ('regression', 'single')
    """
    if kind != "auto":
        return "regression" if kind == "regression" else "single"
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
    many = numeric and (pd.api.types.is_float_dtype(values.dtype) or values.nunique() > MAX_CARD)
    return "regression" if many else "single"


def columns(df: pd.DataFrame, target: str, cat: list[str], cont: list[str], skip: tuple[str, ...] = ()) -> tuple:
    """The categorical and continuous input columns: those named, and the other columns (not the target, not
    ``skip``) split by :func:`lamina.tabular.cont_cat_split` for a side left unnamed.

    Args:
        df: the table.
        target: the target column.
        cat: categorical columns named (may be empty).
        cont: continuous columns named (may be empty).
        skip: other columns that are no input.

    Examples:
        >>> df = pd.DataFrame({"cut": ["a", "b"], "carat": [0.2, 0.3], "price": [1.0, 2.0]})
        >>> columns(df, "price", [], [])
        (['cut'], ['carat'])
    """
    from lamina.tabular import cont_cat_split

    for name in (target, *cat, *cont, *skip):
        if name not in df.columns:
            raise CLIError(f"the column {name!r} is not in the table; its columns are {list(df.columns)}")
    rest = df.drop(columns=[target, *cat, *cont, *skip])
    other_cont, other_cat = cont_cat_split(rest, max_card=MAX_CARD)
    return list(cat) or other_cat, list(cont) or other_cont


def _read(c: Config) -> pd.DataFrame:
    path = Path(c["csv"])
    if not path.is_file():
        raise CLIError(f"the table {path} does not exist")
    try:
        return pd.read_csv(path, sep=c["sep"])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise CLIError(f"cannot read {path} as CSV: {e}") from e


def build(c: Config) -> Any:
    """The tabular learner of the options."""
    from lamina.learner import accuracy, rmse
    from lamina.tabular import TabularDataLoaders, tabular_learner

    df, valid_idx = _read(c), None
    skip = () if c["valid_col"] is None else (c["valid_col"],)
    cat, cont = columns(df, c["target"], c["cat"], c["cont"], skip)
    if c["valid_col"] is not None:
        valid_idx = np.flatnonzero(df[c["valid_col"]].astype(bool).to_numpy())
    kind = target_kind(df[str(c["target"])], c["kind"])
    name = "regression" if kind == "regression" else "classification"
    print(f"{len(df)} rows; predicting {c['target']!r} ({name}; --kind to change) from categorical {cat} and "
          f"continuous {cont}")  # fmt: skip
    extra = {} if c["device"] is None else {"device": c["device"]}
    dls = TabularDataLoaders.from_df(df, cat_names=cat, cont_names=cont, y_names=c["target"], y_block=kind,
                                     valid_idx=valid_idx, valid_pct=c["valid_pct"], seed=c["seed"], bs=c["bs"],
                                     **extra)  # fmt: skip
    metric = rmse if kind == "regression" else accuracy
    return tabular_learner(dls, layers=c["layers"] or None, metrics=[metric], path=c["out"])


def fit(learn: Any, c: Config) -> None:
    """``fit_one_cycle`` (the learner's default rate, 1e-2, when ``--lr`` is unset)."""
    learn.fit_one_cycle(c["epochs"], c["lr"])


def report(learn: Any, c: Config, out: Path) -> list[Path]:
    """``show_batch.csv`` and ``results.csv`` (decoded rows; the results with predictions), and
    ``confusion_matrix.png`` for a classifier, in ``out``."""
    written = []
    with contextlib.redirect_stdout(io.StringIO()):  # the tables go to files, not the screen
        tables = {"show_batch": learn.dls.show_batch(), "results": learn.show_results(max_n=20)}
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
    if learn.dls.processor.target.kind == "single":
        from lamina.vision import ClassificationInterpretation

        interp = ClassificationInterpretation.from_learner(learn)
        written.append(save_figure(interp.plot_confusion_matrix(), out / "confusion_matrix.png"))
    return written


def tabular_task() -> Task:
    """The ``tabular`` task of ``train`` and ``lr-find``.

    Examples:
        >>> tabular_task().required
        ('csv', 'target')
    """
    summary = "train a classifier or regressor on the rows of a CSV file"
    return Task("tabular", summary, EXAMPLE, TABULAR_OPTIONS, ("csv", "target"), build, fit, report)
