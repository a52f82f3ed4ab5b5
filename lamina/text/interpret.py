"""What a text classifier gets wrong: confusion matrix, most confused pairs, and the worst predictions as texts.

:func:`gather_texts` runs the model over a labelled loader in a private inference pass (the learner is only read)
and keeps each item's token ids without the padding, its probabilities, target and loss.
:class:`TextClassificationInterpretation` turns that into a confusion matrix (a table, or a figure) and a table or
figure of the texts with the highest losses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from lamina.learner.confusion import confusion_matrix, draw_confusion_matrix, most_confused_pairs
from lamina.learner.inference import InferenceRun

__all__ = ["GatheredTexts", "TextClassificationInterpretation", "gather_texts"]


@dataclass
class GatheredTexts:
    """Per item of a pass: token ids (no padding), probabilities, targets and losses.

    Examples:
        >>> GatheredTexts([[4]], torch.ones(1, 2) / 2, torch.tensor([0]), torch.tensor([0.7])).probs.shape
        torch.Size([1, 2])
    """

    ids: list[list[int]]
    probs: Tensor
    targets: Tensor
    losses: Tensor


class _TextCollector:
    """Keeps what :class:`GatheredTexts` holds, batch by batch, up to ``max_n`` items."""

    needs_loss = False

    def __init__(self, pad_idx: int, max_n: int | None) -> None:
        self.pad_idx, self.max_n = pad_idx, max_n
        self.ids: list[list[int]] = []
        self.logits: list[Tensor] = []
        self.targets: list[Tensor] = []

    def after_batch(self, run: InferenceRun) -> None:
        if self.max_n is not None and len(self.ids) >= self.max_n:
            return
        if not run.yb:
            raise ValueError("interpretation needs a labelled loader (texts with their classes)")
        x = run.xb[0].detach().cpu()
        self.ids += [[int(i) for i in row if i != self.pad_idx] for row in x]
        self.logits.append(run.pred.detach().float().cpu())
        self.targets.append(run.yb[0].detach().cpu().long())

    def result(self) -> GatheredTexts:
        if not self.ids:
            raise ValueError("the loader gave no batch")
        logits, targets = torch.cat(self.logits), torch.cat(self.targets)
        n = len(self.ids) if self.max_n is None else min(self.max_n, len(self.ids))
        losses = F.cross_entropy(logits, targets, reduction="none")
        return GatheredTexts(self.ids[:n], F.softmax(logits, -1)[:n], targets[:n], losses[:n])


def gather_texts(learn: Any, dl: Iterable[Any], max_n: int | None = None) -> GatheredTexts:
    """Run ``learn.model`` over the labelled loader ``dl`` (a private pass) and keep each item's ids and outcome.

    Args:
        learn: a text classifier learner (``model``, ``loss_func``, ``pad_idx``).
        dl: batches ``(x, y)`` of left-padded ids and class indices.
        max_n: stop keeping after this many items (all when ``None``).

    Examples:
        >>> from types import SimpleNamespace
        >>> model = torch.nn.Sequential(torch.nn.Embedding(5, 2), torch.nn.Flatten())  # 2 positions: 4 "classes"
        >>> learn = SimpleNamespace(model=model, loss_func=None, pad_idx=1)
        >>> got = gather_texts(learn, [(torch.tensor([[1, 3]]), torch.tensor([0]))])
        >>> got.ids, got.targets.tolist()
        ([[3]], [0])
    """
    collector = _TextCollector(int(learn.pad_idx), max_n)
    InferenceRun(learn.model, learn.loss_func, 1, [collector]).run(dl)
    return collector.result()


class TextClassificationInterpretation:
    """The predictions of a text classifier on a labelled loader, to see what it confuses and where it is worst.

    Args:
        learn: the learner (its ``vocab`` names the classes, ``decode_ids`` turns ids into text).
        gathered: the pass over the loader (see :func:`gather_texts`).

    Examples:
        >>> from types import SimpleNamespace
        >>> learn = SimpleNamespace(vocab=["neg", "pos"], decode_ids=lambda ids: " ".join(map(str, ids)))
        >>> got = GatheredTexts([[5], [6, 7]], torch.tensor([[0.9, 0.1], [0.8, 0.2]]), torch.tensor([0, 1]),
        ...                     torch.tensor([0.1, 1.6]))
        >>> interp = TextClassificationInterpretation(learn, got)
        >>> interp.confusion_matrix().tolist(), interp.most_confused()
        ([[1, 0], [1, 0]], [('pos', 'neg', 1)])
        >>> interp.top_losses(1)[["text", "target", "prediction"]].values.tolist()
        [['6 7', 'pos', 'neg']]
    """

    def __init__(self, learn: Any, gathered: GatheredTexts) -> None:
        self.learn, self.gathered = learn, gathered
        self.vocab = list(learn.vocab)
        self.preds = gathered.probs.argmax(1)

    @classmethod
    def from_learner(cls, learn: Any, dl: Iterable[Any] | None = None) -> TextClassificationInterpretation:
        """Interpret ``learn`` on ``dl`` (its validation loader when ``None``).

        Args:
            learn: a text classifier learner.
            dl: a labelled loader.
        """
        return cls(learn, gather_texts(learn, dl if dl is not None else learn.dls.valid))

    def confusion_matrix(self) -> np.ndarray:
        """Counts: rows are the actual classes, columns the predicted ones (in ``vocab`` order)."""
        return confusion_matrix(self.gathered.targets.numpy(), self.preds.numpy(), len(self.vocab))

    def most_confused(self, min_val: int = 1) -> list[tuple[Any, Any, int]]:
        """``(actual, predicted, count)`` of the off-diagonal cells with at least ``min_val`` items, most first."""
        return most_confused_pairs(self.confusion_matrix(), self.vocab, min_val)

    def top_losses(self, k: int = 9) -> pd.DataFrame:
        """The ``k`` items with the highest loss: text, target, prediction, probability of the prediction, loss."""
        order = self.gathered.losses.argsort(descending=True)[:k].tolist()
        probs = self.gathered.probs
        return pd.DataFrame({
            "text": [self.learn.decode_ids(self.gathered.ids[i]) for i in order],
            "target": [self.vocab[int(self.gathered.targets[i])] for i in order],
            "prediction": [self.vocab[int(self.preds[i])] for i in order],
            "probability": [round(float(probs[i, self.preds[i]]), 4) for i in order],
            "loss": [round(float(self.gathered.losses[i]), 4) for i in order],
        })  # fmt: skip

    def plot_confusion_matrix(self, normalize: bool = False, figsize: tuple[float, float] = (5, 5)) -> Any:
        """A matplotlib figure of the confusion matrix (row-normalized when ``normalize``).

        Args:
            normalize: show each row's shares instead of counts.
            figsize: the figure's size in inches.
        """
        return draw_confusion_matrix(self.confusion_matrix(), self.vocab, normalize, figsize=figsize)

    def plot_top_losses(self, k: int = 9, width: int = 90) -> Any:
        """A matplotlib figure listing the ``k`` worst texts with target / prediction / probability / loss.

        Args:
            k: how many texts.
            width: characters of each text shown.
        """
        import matplotlib.pyplot as plt

        df = self.top_losses(k)
        fig, ax = plt.subplots(figsize=(12, 0.5 + 0.45 * max(len(df), 1)))
        ax.axis("off")
        rows = zip(df["text"].astype(str), df["target"], df["prediction"], df["probability"], df["loss"])
        for row, (text, target, prediction, probability, loss) in enumerate(rows):
            text = text if len(text) <= width else text[: width - 3] + "..."
            line = f"{target} / {prediction} / {probability:.2f} / {loss:.2f}   {text}"
            ax.text(0.0, 1 - (row + 0.5) / max(len(df), 1), line, family="monospace", fontsize=9, va="center")
        ax.set_title("target / prediction / probability / loss   text", loc="left", family="monospace")
        return fig
