"""Confusion counts for any classifier, on a floor every application can use: the matrix and its most confused
pairs, as small numpy functions that need no Learner (``lamina.vision.interpret`` and ``lamina.text.interpret``
draw them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["confusion_matrix", "draw_confusion_matrix", "most_confused_pairs"]


def confusion_matrix(targets: Any, predictions: Any, n_classes: int) -> np.ndarray:
    """Counts of (actual, predicted) class pairs: rows are actual classes, columns predicted, in index order.

    Args:
        targets: actual class indices (any shape; flattened).
        predictions: predicted class indices, same number as ``targets``.
        n_classes: number of classes (the matrix is ``n_classes x n_classes``).

    Examples:
        >>> confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], 3).tolist()
        [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    """
    t = np.asarray(targets).reshape(-1).astype(np.int64)
    p = np.asarray(predictions).reshape(-1).astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"got {t.size} targets but {p.size} predictions: give one prediction per target")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    for name, a in (("targets", t), ("predictions", p)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} must lie in [0, {n_classes - 1}], got values in [{a.min()}, {a.max()}]")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def most_confused_pairs(cm: np.ndarray, labels: Sequence[Any], min_val: int = 1) -> list[tuple[Any, Any, int]]:
    """Off-diagonal cells of ``cm`` with at least ``min_val`` items, as ``(actual, predicted, count)``, most first.

    Args:
        cm: confusion matrix, rows actual, columns predicted.
        labels: the name of each class.
        min_val: smallest count kept.

    Examples:
        >>> most_confused_pairs(np.array([[5, 2, 0], [3, 4, 1], [0, 0, 6]]), ["a", "b", "c"])
        [('b', 'a', 3), ('a', 'b', 2), ('b', 'c', 1)]
    """
    cm = np.asarray(cm)
    if len(labels) != cm.shape[0]:
        raise ValueError(f"got {len(labels)} labels for a {cm.shape[0]}-class matrix: give one label per class")
    pairs = [
        (labels[i], labels[j], int(cm[i, j]))
        for i in range(cm.shape[0])
        for j in range(cm.shape[1])
        if i != j and cm[i, j] >= min_val
    ]
    return sorted(pairs, key=lambda p: -p[2])


def draw_confusion_matrix(
    cm: np.ndarray,
    labels: Sequence[Any],
    normalize: bool = False,
    title: str = "Confusion matrix",
    cmap: str = "Blues",
    figsize: tuple[float, float] | None = None,
    digits: int = 2,
) -> Any:
    """Draw ``cm`` with its number in every cell and ``labels`` on both axes; return the matplotlib figure.

    Args:
        cm: confusion matrix, rows actual, columns predicted.
        labels: the name of each class.
        normalize: show each row as fractions of its actual class instead of counts.
        title: figure title.
        cmap: matplotlib colour map.
        figsize: figure size (grows with the number of classes when ``None``).
        digits: decimals of normalized values.

    Examples:
        >>> cm = np.array([[3, 1], [0, 2]])
        >>> [t.get_text() for t in draw_confusion_matrix(cm, ["cat", "dog"]).axes[0].texts]
        ['3', '1', '0', '2']
        >>> [t.get_text() for t in draw_confusion_matrix(cm, ["cat", "dog"], normalize=True).axes[0].texts]
        ['0.75', '0.25', '0.00', '1.00']
    """
    import matplotlib.pyplot as plt

    values = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    n = len(labels)
    fig, ax = plt.subplots(figsize=figsize or (max(4.0, 0.6 * n + 2), max(4.0, 0.6 * n + 2)))
    ax.imshow(values, cmap=cmap, interpolation="nearest")
    ax.set_title(title)
    ticks = np.arange(n)
    ax.set_xticks(ticks, [str(v) for v in labels], rotation=90)
    ax.set_yticks(ticks, [str(v) for v in labels])
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    half = values.max() / 2 if values.size else 0
    for i in range(n):
        for j in range(n):
            text = f"{values[i, j]:.{digits}f}" if normalize else str(int(values[i, j]))
            ax.text(j, i, text, ha="center", va="center", color="white" if values[i, j] > half else "black")
    fig.tight_layout()
    return fig
