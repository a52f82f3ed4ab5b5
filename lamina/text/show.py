"""Text batches as tables: decoded texts next to their targets (and predictions), drawn with matplotlib."""

from __future__ import annotations

import textwrap
from typing import Any

import pandas as pd
from torch import Tensor

__all__ = ["show_text_results", "show_text_table"]


def _cell(value: Any, max_chars: int, width: int) -> str:
    text = " ".join("".join(c for c in str(value) if c.isprintable() or c.isspace()).split())
    if len(text) > max_chars:
        text = text[: max_chars - 3] + "..."
    return "\n".join(textwrap.wrap(text, width)) or " "


def show_text_table(
    table: pd.DataFrame, max_chars: int = 300, width: int = 70, figsize: tuple[float, float] | None = None
) -> Any:
    """Draw a DataFrame of texts (one row per item, e.g. ``text``, ``target``, ``prediction``) as a table figure.

    Long texts are cut at ``max_chars`` characters and wrapped at ``width``; each row is as tall as its longest cell.

    Args:
        table: the rows to draw.
        max_chars: characters kept of each cell.
        width: characters per line of the first column (the others get a third of it).
        figsize: the figure size; from the number of lines when ``None``.

    Examples:
        >>> fig = show_text_table(pd.DataFrame({"text": ["a long tweet " * 20, "short"], "target": ["pos", "neg"]}))
        >>> cells = fig.axes[0].tables[0].get_celld()
        >>> len(cells), cells[(0, 1)].get_text().get_text(), cells[(2, 0)].get_text().get_text()
        (6, 'target', 'short')
    """
    import matplotlib.pyplot as plt

    if len(table) == 0:
        raise ValueError("show_text_table got an empty table: nothing to draw")
    widths = [width] + [max(width // 3, 12)] * (len(table.columns) - 1)
    cells = [[_cell(v, max_chars, w) for v, w in zip(row, widths)] for row in table.itertuples(index=False)]
    lines = [max(c.count("\n") + 1 for c in row) for row in cells]
    total = sum(lines) + 1
    fig, ax = plt.subplots(figsize=figsize or (12, 0.25 * total + 0.5))
    ax.axis("off")
    tab = ax.table(cellText=cells, colLabels=list(table.columns), loc="upper left", cellLoc="left",
                   colWidths=[w / sum(widths) for w in widths])  # fmt: skip
    tab.auto_set_font_size(False)
    tab.set_fontsize(9)
    for (r, _), cell in tab.get_celld().items():
        cell.set_height((lines[r - 1] if r > 0 else 1) / total)
        cell.get_text().set_verticalalignment("center")
    return fig


def show_text_results(dl: Any, b: Any, preds: Tensor, max_n: int = 9, max_chars: int = 300,
                      figsize: tuple[float, float] | None = None) -> Any:  # fmt: skip
    """Draw a batch's texts, targets and the model's predictions as a table figure (for ``show_results``).

    Args:
        dl: the text loader the batch came from (it decodes ids and targets).
        b: the batch ``(x, y)``.
        preds: the model's output for the batch: class probabilities (``bs x n_classes``), class indices, or for a
            language model next-token scores (``bs x L x vocab``) or ids.
        max_n: most rows drawn.
        max_chars: characters kept of each cell.
        figsize: the figure size.

    Examples:
        >>> from lamina.text.loaders import BucketDataLoader
        >>> dl = BucketDataLoader([([5, 6], 0), ([7], 1)], bs=2, pad_idx=1)
        >>> fig = show_text_results(dl, dl.one_batch(), torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
        >>> len(fig.axes[0].tables)
        1
    """
    return show_text_table(dl.table(b, max_n, preds=preds), max_chars=max_chars, figsize=figsize)
