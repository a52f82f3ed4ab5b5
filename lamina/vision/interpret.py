"""Look at what a trained vision model does: predictions next to targets, confusion matrices, per-class scores and the
items the model gets most wrong.

The maths lives in small numpy functions (:func:`confusion_matrix`, :func:`classification_scores`,
:func:`segmentation_scores`, :func:`most_confused_pairs`) that need no Learner; the classes gather predictions once
with ``Learner.get_preds`` and draw. Inputs are never kept: the few items a plot needs are fetched again by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lamina.core.show import get_grid
from lamina.core.tensors import TensorMask, TensorPoint, retain_type
from lamina.core.utils import to_device
from lamina.learner.confusion import confusion_matrix, draw_confusion_matrix, most_confused_pairs

__all__ = [
    "ClassificationInterpretation",
    "Interpretation",
    "SegmentationInterpretation",
    "classification_scores",
    "confusion_matrix",
    "format_classification_report",
    "most_confused_pairs",
    "segmentation_scores",
    "show_results",
]

RIGHT, WRONG = "green", "red"


# ---------------------------------------------------------------- pure numpy maths


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(num.shape, empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def classification_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix (rows actual, columns predicted).

    A class never predicted has precision 0, a class never present has recall 0 (as scikit-learn's default).

    Examples:
        >>> s = classification_scores(np.array([[2, 0], [1, 1]]))
        >>> [round(float(v), 3) for v in s["precision"]], s["support"].tolist()
        ([0.667, 1.0], [2, 2])
    """
    cm = np.asarray(cm)
    hits = np.diag(cm).astype(np.float64)
    precision = _ratio(hits, cm.sum(0).astype(np.float64), 0.0)
    recall = _ratio(hits, cm.sum(1).astype(np.float64), 0.0)
    f1 = _ratio(2 * precision * recall, precision + recall, 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(1)}


def segmentation_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class IoU and Dice from a pixel confusion matrix; ``nan`` for a class in neither targets nor predictions.

    Examples:
        >>> s = segmentation_scores(np.array([[3, 1], [0, 2]]))
        >>> [round(float(v), 3) for v in s["iou"]], [round(float(v), 3) for v in s["dice"]]
        ([0.75, 0.667], [0.857, 0.8])
    """
    cm = np.asarray(cm).astype(np.float64)
    inter, actual, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    iou = _ratio(inter, actual + predicted - inter, float("nan"))
    dice = _ratio(2 * inter, actual + predicted, float("nan"))
    return {"iou": iou, "dice": dice}


def format_classification_report(cm: np.ndarray, labels: Sequence[Any], digits: int = 2) -> str:
    """A text table of precision, recall, F1 and support per class, plus accuracy and macro/weighted averages.

    Args:
        cm: confusion matrix, rows actual, columns predicted.
        labels: the name of each class.
        digits: decimals shown.

    Examples:
        >>> report = format_classification_report(np.array([[2, 0], [1, 1]]), ["no", "yes"])
        >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
                     precision recall f1-score support
        no                0.67   1.00     0.80       2
        yes               1.00   0.50     0.67       2
        accuracy                          0.75       4
        macro avg         0.83   0.75     0.73       4
        weighted avg      0.83   0.75     0.73       4
    """
    s = classification_scores(cm)
    support = s["support"]
    total = int(support.sum())
    width = max(12, *(len(str(c)) for c in labels))
    row = f"{{:<{width}}} {{:>9}} {{:>6}} {{:>8}} {{:>7}}"

    def num(v: float) -> str:
        return f"{v:.{digits}f}"

    lines = [row.format("", "precision", "recall", "f1-score", "support")]
    for i, c in enumerate(labels):
        lines.append(row.format(str(c), num(s["precision"][i]), num(s["recall"][i]), num(s["f1"][i]), support[i]))
    acc = float(np.trace(cm)) / total if total else 0.0
    lines.append(row.format("accuracy", "", "", num(acc), total))
    weights = support / total if total else np.zeros(len(support))
    for name, agg in (("macro avg", np.mean), ("weighted avg", lambda v: float((v * weights).sum()))):
        p, r, f = (agg(s[k]) for k in ("precision", "recall", "f1"))
        lines.append(row.format(name, num(p), num(r), num(f), total))
    return "\n".join(lines)


# ---------------------------------------------------------------- predictions on a batch, decoding, drawing


def _loader(learn: Any, ds_idx: int, dl: Any) -> Any:
    if dl is not None:
        return dl
    n = len(learn.dls.loaders)
    if not -n <= ds_idx < n:
        raise IndexError(f"ds_idx={ds_idx} but the learner has {n} loaders: use 0 (training) or 1 (validation)")
    return learn.dls[ds_idx]


def _predict(learn: Any, xb: Sequence[Tensor]) -> Tensor:
    """The model's decoded predictions (the loss's ``decodes`` of the raw outputs) for inputs ``xb``, on the CPU."""
    from lamina.core.tensors import as_plain

    model = learn.model
    device = next((p.device for p in model.parameters()), None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            raw = model(*as_plain(to_device(tuple(xb), device)))
    finally:
        model.train(was_training)
    act = getattr(learn.loss_func, "activation", None)
    decodes = getattr(learn.loss_func, "decodes", None)
    if decodes is not None:  # a loss's decodes takes the raw outputs (BCEWithLogitsLossFlat applies its own sigmoid)
        return decodes(raw).detach().cpu()
    return (act(raw) if act is not None else raw).detach().cpu()


def _typed_like(pred: Tensor, target: Tensor) -> Tensor:
    """``pred`` in the shape (when it has as many numbers) and semantic type of ``target``, so it decodes alike."""
    if pred.shape != target.shape and pred.numel() == target.numel():
        pred = pred.reshape(target.shape)
    return retain_type(pred, target)


def _fetch_batch(dl: Any, idxs: Sequence[int]) -> Any:
    """The items ``idxs`` of ``dl``'s dataset as one batch, made the way ``dl`` makes its batches."""
    items = [dl.after_item(dl.dataset[int(i)]) for i in idxs]
    if len(dl.before_batch):
        items = dl.before_batch(items)
    b = to_device(dl.collate_fn(items), dl.device)
    return dl.after_batch(b) if len(dl.after_batch) else b


def _kind(target: Any) -> str:
    if isinstance(target, TensorMask):
        return "mask"
    if type(target) is TensorPoint:
        return "points"
    return "label" if not isinstance(target, Tensor) or target.ndim <= 2 else "other"


def _decoded_label(ds: Any, y: Any, n_inp: int) -> Any:
    tls = getattr(ds, "tls", None)
    return tls[n_inp].decode(y) if tls is not None and len(tls) > n_inp else y


def _text(o: Any) -> str:
    if isinstance(o, Tensor):
        o = o.item() if o.numel() == 1 else o.tolist()
    if isinstance(o, (list, tuple)):
        return ";".join(_text(e) for e in o)
    return f"{o:.3g}" if isinstance(o, float) else str(o)


def _show_inputs(ds: Any, xs: Sequence[Any], ax: Any) -> Any:
    from lamina.core.transform import show_any

    tls = getattr(ds, "tls", None)
    for i, x in enumerate(xs):
        if tls is not None:
            tls[i].show(x, ctx=ax)
        else:
            show_any(x, ctx=ax)
    return ax


def _draw_label(ds: Any, target: tuple, pred: tuple, axs: list[Any], n_inp: int) -> None:
    t, p = (_decoded_label(ds, o[n_inp], n_inp) for o in (target, pred))
    ax = _show_inputs(ds, target[:n_inp], axs[0])
    if isinstance(t, float):
        ax.set_title(f"{_text(t)}/{_text(p)}")
        return
    same = sorted(map(str, t)) == sorted(map(str, p)) if isinstance(t, list) else _text(t) == _text(p)
    ax.set_title(f"{_text(t)}/{_text(p)}", color=RIGHT if same else WRONG)


def _draw_mask(ds: Any, target: tuple, pred: tuple, axs: list[Any], n_inp: int) -> None:
    for ax, item, title in zip(axs, (target, pred), ("target", "prediction")):
        _show_inputs(ds, item[:n_inp], ax)
        item[n_inp].show(ctx=ax)
        ax.set_title(title)


def _draw_points(ds: Any, target: tuple, pred: tuple, axs: list[Any], n_inp: int) -> None:
    ax = _show_inputs(ds, target[:n_inp], axs[0])
    target[n_inp].show(ctx=ax, c="lime", marker="+")
    pred[n_inp].show(ctx=ax, c="red", marker="x")
    ax.set_title("+ target, x prediction")


def _draw_other(ds: Any, target: tuple, pred: tuple, axs: list[Any], n_inp: int) -> None:
    from lamina.core.transform import show_any

    for ax, item, title in zip(axs, (target, pred), ("target", "prediction")):
        if hasattr(ds, "show"):
            ds.show(item, ctx=ax)
        else:
            for o in item:
                show_any(o, ctx=ax)
        ax.set_title(title)


_DRAWERS = {"label": _draw_label, "mask": _draw_mask, "points": _draw_points, "other": _draw_other}
_MIN_TITLE_SIZE = 8.0


def _wrapped(text: str, fits: Any) -> str:
    """``text`` broken into lines that ``fits`` (a test on one line): after a ``/`` where that is enough, else after
    spaces too; removing the line breaks gives ``text`` back.

    Examples:
        >>> _wrapped("tiger cat/Egyptian cat/0.12", lambda line: len(line) <= 12).splitlines()
        ['tiger cat/', 'Egyptian ', 'cat/0.12']
    """
    tokens = [text]
    for sep in ("/", " "):
        tokens = [piece for token in tokens for piece in _split_after(token, sep)]
        lines = [""]
        for token in tokens:
            if lines[-1] and not fits(lines[-1] + token):
                lines.append(token)
            else:
                lines[-1] += token
        if all(fits(line) for line in lines):
            break
    return "\n".join(lines)


def _split_after(text: str, sep: str) -> list[str]:
    parts = text.split(sep)
    return [p + sep for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _fit_titles(fig: Any, axs: Sequence[Any]) -> None:
    """Lay ``fig`` out tightly (small margins), then shrink and wrap each axes title that is wider than its grid
    cell, so neighbouring titles never overlap, and lay it out again for the wrapped lines."""
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    for ax in axs:
        title, text = ax.title, ax.title.get_text()
        spec = ax.get_subplotspec()
        room = 0.92 * spec.get_position(fig).width * fig.bbox.width if spec is not None else ax.bbox.width

        def fits(line: str, title: Any = title, room: float = room) -> bool:
            title.set_text(line)
            return bool(title.get_window_extent(renderer).width <= room)

        while not fits(text) and title.get_fontsize() > _MIN_TITLE_SIZE:
            title.set_fontsize(title.get_fontsize() - 1)
        title.set_text(_wrapped(text, fits))
    fig.tight_layout()


def show_results(
    learn: Any,
    ds_idx: int = 1,
    dl: Any = None,
    max_n: int = 9,
    nrows: int | None = None,
    ncols: int | None = None,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """Draw up to ``max_n`` items of one batch with their target and the model's prediction; return the figure.

    Everything is decoded through the data (normalization undone, labels as strings). Labels and numbers become a
    ``target/prediction`` title (green when right, red when wrong); a mask is drawn twice, target then prediction
    (two axes per item, so keep ``ncols`` even); points are drawn as green ``+`` (target) and red ``x``
    (prediction); other targets (boxes) are drawn by the data set, target then prediction.

    Args:
        learn: a trained Learner.
        ds_idx: which loader of ``learn.dls`` (0 training, 1 validation).
        dl: a loader to use instead.
        max_n: most items drawn (at most one batch).
        nrows: grid rows.
        ncols: grid columns.
        figsize: figure size.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from lamina.learner import Learner
        >>> from lamina.vision import ImageDataLoaders
        >>> root = Path(tempfile.mkdtemp())
        >>> for split, label, k in [(s, c, k) for s in ("train", "valid") for c in ("a", "b") for k in range(2)]:
        ...     (root / split / label).mkdir(parents=True, exist_ok=True)
        ...     Image.new("RGB", (8, 8), (k * 90, 0, 0)).save(root / split / label / f"{k}.png")
        >>> dls = ImageDataLoaders.from_folder(root, bs=4)
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
        >>> fig = show_results(Learner(dls, model, show_progress=False, logger=None), max_n=4)
        >>> len(fig.axes), fig.axes[0].get_title().split("/")[0]
        (4, 'a')
    """
    dl = _loader(learn, ds_idx, dl)
    b = dl.one_batch()
    n_inp = dl.n_inp
    xb, yb = b[:n_inp], b[n_inp:]
    if len(yb) != 1:
        raise ValueError(f"show_results draws items with exactly one target, got {len(yb)}: use dl.show_batch")
    pred = _typed_like(_predict(learn, xb), to_device(yb[0], "cpu"))
    targets = dl.decode_batch(b, max_n)
    preds = dl.decode_batch((*xb, pred), max_n)
    kind = _kind(yb[0])
    per_item = 2 if kind in ("mask", "other") else 1
    if per_item == 2 and nrows is None and ncols is None:
        ncols = 2
    fig, axs = get_grid(len(targets) * per_item, nrows, ncols, figsize)
    for i, (t, p) in enumerate(zip(targets, preds)):
        _DRAWERS[kind](dl.dataset, t, p, axs[i * per_item : (i + 1) * per_item], n_inp)
    _fit_titles(fig, axs)
    return fig


# ---------------------------------------------------------------- interpretations


class Interpretation:
    """Predictions, targets, decoded predictions and per-item losses of a learner over one loader (no inputs).

    Args:
        learn: the Learner.
        dl: the (unshuffled) loader the predictions come from, used to fetch items again by index.
        preds: activated predictions (``None`` when not kept).
        targets: targets.
        decoded: decoded predictions (class indices, masks...).
        losses: one loss per item.

    Examples:
        >>> targets, decoded, losses = torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([0.1, 2.0])
        >>> Interpretation(None, None, None, targets, decoded, losses).top_losses(1)
        (tensor([2.]), tensor([1]))
    """

    def __init__(
        self, learn: Any, dl: Any, preds: Tensor | None, targets: Tensor, decoded: Tensor, losses: Tensor
    ) -> None:
        if len(targets) != len(losses) or len(decoded) != len(targets):
            raise ValueError(
                f"got {len(targets)} targets, {len(decoded)} decoded predictions and {len(losses)} losses: "
                "they must come from the same pass (Learner.get_preds(with_decoded=True, with_loss=True))"
            )
        self.learn, self.dl, self.preds = learn, dl, preds
        self.targets, self.decoded, self.losses = targets, decoded, losses

    @classmethod
    def from_learner(cls, learn: Any, ds_idx: int = 1, dl: Any = None) -> Any:
        """Run ``learn`` once over ``learn.dls[ds_idx]`` (or ``dl``) and keep predictions, targets and losses.

        Args:
            learn: a trained Learner.
            ds_idx: which loader (0 training, 1 validation).
            dl: a loader to use instead; it must not shuffle or drop items, so indices match its dataset.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> from lamina.learner import Learner
            >>> from lamina.vision import ImageDataLoaders
            >>> tmp = tempfile.TemporaryDirectory()
            >>> for split in ("train", "valid"):  # three real digits per class and split: <split>/<digit>/<index>.png
            ...     _ = mnist_digits(tmp.name, n=3, split=split, name="{split}/{digit}/{index}.png")
            >>> _ = torch.manual_seed(0)
            >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 28 * 28, 2))  # untrained
            >>> learn = Learner(ImageDataLoaders.from_folder(tmp.name, bs=6), model, show_progress=False, logger=None)
            >>> interp = Interpretation.from_learner(learn)
            >>> len(interp.targets), tuple(interp.preds.shape)  # the 6 validation digits, 2 class probabilities each
            (6, (6, 2))
            >>> expected = torch.nn.functional.cross_entropy(interp.preds.log(), interp.targets, reduction="none")
            >>> torch.allclose(interp.losses, expected, atol=1e-5)  # one loss per item
            True
            >>> tmp.cleanup()
        """
        dl = _loader(learn, ds_idx, dl)
        if getattr(dl, "shuffle", False) or getattr(dl, "drop_last", False):
            raise ValueError("interpretation needs a loader that keeps item order: pass dl=dl.new(shuffle=False, "
                             "drop_last=False)")  # fmt: skip
        preds, targets, decoded, losses = learn.get_preds(dl=dl, with_decoded=True, with_loss=True)
        if targets is None:
            raise ValueError("interpretation needs labelled data, but the loader gave no targets")
        return cls(learn, dl, preds, targets, decoded, losses)

    def top_losses(self, k: int | None = None, largest: bool = True) -> tuple[Tensor, Tensor]:
        """The ``k`` largest (or smallest) losses and the dataset indices of their items (all items when ``None``).

        Examples:
            >>> losses = torch.tensor([1.0, 3.0, 2.0])
            >>> Interpretation(None, None, None, torch.zeros(3), torch.zeros(3), losses).top_losses()
            (tensor([3., 2., 1.]), tensor([1, 2, 0]))
        """
        n = len(self.losses)
        k = n if k is None else k
        if not 1 <= k <= n:
            raise ValueError(f"k must be between 1 and the number of items ({n}), got {k}")
        values, idxs = self.losses.topk(k, largest=largest)
        return values, idxs

    def _decoded_items(self, idxs: Tensor, with_pred: bool = False) -> list[tuple]:
        """Items ``idxs`` fetched again from the dataset and decoded; the stored prediction replaces the target when
        ``with_pred``."""
        b = _fetch_batch(self.dl, idxs.tolist())
        n_inp = self.dl.n_inp
        if with_pred:
            b = (*b[:n_inp], _typed_like(self.decoded[idxs].long(), to_device(b[n_inp], "cpu")))
        return self.dl.decode_batch(b, max_n=len(idxs))


class ClassificationInterpretation(Interpretation):
    """Confusion matrix, most confused pairs, a classification report and the worst items of a single-label classifier.

    Examples:
        >>> interp = ClassificationInterpretation(
        ...     None, None, torch.tensor([[0.9, 0.1], [0.4, 0.6]]), torch.tensor([0, 0]), torch.tensor([0, 1]),
        ...     torch.tensor([0.1, 0.9]), vocab=["cat", "dog"])
        >>> interp.confusion_matrix().tolist(), interp.most_confused()
        ([[1, 1], [0, 0]], [('cat', 'dog', 1)])
    """

    def __init__(self, *args: Any, vocab: Sequence[Any] | None = None) -> None:
        super().__init__(*args)
        if self.preds is None or self.preds.ndim != 2 or self.targets.ndim != 1:
            shape = None if self.preds is None else tuple(self.preds.shape)
            raise ValueError(
                f"ClassificationInterpretation needs (N, n_classes) predictions and N class targets, got predictions "
                f"{shape} and targets {tuple(self.targets.shape)}; use SegmentationInterpretation for masks"
            )
        vocab = vocab if vocab is not None else getattr(getattr(self.learn, "dls", None), "vocab", None)
        n = self.preds.shape[1]
        self.vocab: list[Any] = list(vocab) if vocab is not None else [str(i) for i in range(n)]
        if len(self.vocab) != n:
            raise ValueError(f"the model predicts {n} classes but the vocab has {len(self.vocab)}: {self.vocab}")

    def confusion_matrix(self) -> np.ndarray:
        """Counts of items per (actual, predicted) class, rows actual and columns predicted, in vocab order.

        Examples:
            >>> probs = torch.tensor([[.8, .1, .1], [.2, .7, .1], [.1, .6, .3], [.5, .2, .3], [.1, .2, .7]])
            >>> targets, losses = torch.tensor([0, 1, 2, 2, 2]), torch.zeros(5)  # five items, three classes
            >>> preds = probs.argmax(1)
            >>> interp = ClassificationInterpretation(None, None, probs, targets, preds, losses, vocab=list("abc"))
            >>> interp.confusion_matrix().tolist()  # row "c": one right, one taken for "a", one for "b"
            [[1, 0, 0], [0, 1, 0], [1, 1, 1]]
        """
        return confusion_matrix(self.targets.numpy(), self.decoded.numpy(), len(self.vocab))

    def most_confused(self, min_val: int = 1) -> list[tuple[Any, Any, int]]:
        """``(actual, predicted, count)`` for every mistake made at least ``min_val`` times, most frequent first.

        Examples:
            >>> probs = torch.tensor([[.8, .1, .1], [.2, .7, .1], [.1, .6, .3], [.5, .2, .3], [.1, .2, .7]])
            >>> targets, losses = torch.tensor([0, 1, 2, 2, 2]), torch.zeros(5)  # five items, three classes
            >>> preds = probs.argmax(1)
            >>> interp = ClassificationInterpretation(None, None, probs, targets, preds, losses, vocab=list("abc"))
            >>> interp.most_confused()
            [('c', 'a', 1), ('c', 'b', 1)]
            >>> interp.most_confused(min_val=2)
            []
        """
        return most_confused_pairs(self.confusion_matrix(), self.vocab, min_val)

    def print_classification_report(self, digits: int = 2) -> str:
        """Print precision, recall, F1 and support per class (and averages), and return the same text.

        Examples:
            >>> probs = torch.tensor([[.8, .1, .1], [.2, .7, .1], [.1, .6, .3], [.5, .2, .3], [.1, .2, .7]])
            >>> targets, losses = torch.tensor([0, 1, 2, 2, 2]), torch.zeros(5)  # five items, three classes
            >>> preds = probs.argmax(1)
            >>> interp = ClassificationInterpretation(None, None, probs, targets, preds, losses, vocab=list("abc"))
            >>> report = interp.print_classification_report()
                         precision recall f1-score support
            a                 0.50   1.00     0.67       1
            b                 0.50   1.00     0.67       1
            c                 1.00   0.33     0.50       3
            accuracy                          0.60       5
            macro avg         0.67   0.78     0.61       5
            weighted avg      0.80   0.60     0.57       5
            >>> report.splitlines()[3].split()
            ['c', '1.00', '0.33', '0.50', '3']
        """
        report = format_classification_report(self.confusion_matrix(), self.vocab, digits)
        print(report)
        return report

    def plot_confusion_matrix(
        self,
        normalize: bool = False,
        title: str = "Confusion matrix",
        cmap: str = "Blues",
        figsize: tuple[float, float] | None = None,
        digits: int = 2,
    ) -> Any:
        """Draw the confusion matrix with its number in every cell and the vocab on both axes; return the figure.

        Args:
            normalize: show each row as fractions of its actual class instead of counts.
            title: figure title.
            cmap: matplotlib colour map.
            figsize: figure size.
            digits: decimals of normalized values.

        Examples:
            >>> probs = torch.tensor([[.8, .1, .1], [.2, .7, .1], [.1, .6, .3], [.5, .2, .3], [.1, .2, .7]])
            >>> targets, losses = torch.tensor([0, 1, 2, 2, 2]), torch.zeros(5)  # five items, three classes
            >>> preds = probs.argmax(1)
            >>> interp = ClassificationInterpretation(None, None, probs, targets, preds, losses, vocab=list("abc"))
            >>> fig = interp.plot_confusion_matrix()
            >>> [t.get_text() for t in fig.axes[0].texts]  # the counts, row by row
            ['1', '0', '0', '0', '1', '0', '1', '1', '1']
            >>> [t.get_text() for t in interp.plot_confusion_matrix(normalize=True).axes[0].texts][6:]  # rows sum to 1
            ['0.33', '0.33', '0.33']
        """
        return draw_confusion_matrix(self.confusion_matrix(), self.vocab, normalize, title, cmap, figsize, digits)

    def plot_top_losses(
        self, k: int = 9, nrows: int | None = None, figsize: tuple[float, float] | None = None, largest: bool = True
    ) -> Any:
        """Draw the ``k`` items with the largest losses, titled ``prediction/actual/loss/probability``.

        The probability is the one the model gave its prediction. Only these ``k`` items are fetched again.

        Args:
            k: number of items.
            nrows: grid rows.
            figsize: figure size.
            largest: the smallest losses instead when False.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> from lamina.learner import Learner
            >>> from lamina.vision import ImageDataLoaders
            >>> tmp = tempfile.TemporaryDirectory()
            >>> for split in ("train", "valid"):  # three real digits per class and split: <split>/<digit>/<index>.png
            ...     _ = mnist_digits(tmp.name, n=3, split=split, name="{split}/{digit}/{index}.png")
            >>> _ = torch.manual_seed(0)
            >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 28 * 28, 2))  # untrained
            >>> learn = Learner(ImageDataLoaders.from_folder(tmp.name, bs=6), model, show_progress=False, logger=None)
            >>> interp = ClassificationInterpretation.from_learner(learn)
            >>> fig = interp.plot_top_losses(4, nrows=2)
            >>> losses, idxs = interp.top_losses(4)
            >>> titles = [ax.get_title().split("/") for ax in fig.axes]  # prediction/actual/loss/probability
            >>> [t[1] for t in titles] == [interp.dl.dataset.items[i].parent.name for i in idxs.tolist()]
            True
            >>> [float(t[2]) for t in titles] == [round(v, 2) for v in losses.tolist()]
            True
            >>> tmp.cleanup()
        """
        losses, idxs = self.top_losses(k, largest)
        items = self._decoded_items(idxs)
        fig, axs = get_grid(len(items), nrows, None, figsize, title="prediction/actual/loss/probability")
        assert self.preds is not None
        for ax, item, i, loss in zip(axs, items, idxs.tolist(), losses.tolist()):
            _show_inputs(self.dl.dataset, item[: self.dl.n_inp], ax)
            pred, actual = int(self.decoded[i]), int(self.targets[i])
            prob = float(self.preds[i, pred])
            ax.set_title(
                f"{self.vocab[pred]}/{self.vocab[actual]}/{loss:.2f}/{prob:.2f}",
                color=RIGHT if pred == actual else WRONG,
            )
        _fit_titles(fig, axs)
        return fig


class SegmentationInterpretation(Interpretation):
    """Per-class IoU and Dice over all pixels, and the worst items, of a segmentation model.

    Only the decoded masks are kept (as the smallest integer type that holds the codes), not the probabilities.

    Examples:
        >>> interp = SegmentationInterpretation(
        ...     None, None, torch.zeros(1, 2, 1, 3), torch.tensor([[[0, 1, 1]]]), torch.tensor([[[0, 1, 0]]]),
        ...     torch.tensor([0.5]), codes=["background", "digit"])
        >>> interp.per_class_scores()["iou"].tolist()
        [0.5, 0.5]
    """

    def __init__(self, *args: Any, codes: Sequence[Any] | None = None) -> None:
        super().__init__(*args)
        n = self._n_classes(codes)
        self.codes: list[Any] = list(codes) if codes is not None else [str(i) for i in range(n)]
        if len(self.codes) != n:
            raise ValueError(f"the model predicts {n} classes but {len(self.codes)} codes were given: {self.codes}")
        small = torch.uint8 if n <= 256 else torch.int32
        self.decoded, self.targets, self.preds = self.decoded.to(small), self.targets.to(small), None

    def _n_classes(self, codes: Sequence[Any] | None) -> int:
        if self.preds is not None and self.preds.ndim == self.targets.ndim + 1:
            return int(self.preds.shape[1])
        if codes is not None:
            return len(codes)
        return int(max(int(self.targets.max()), int(self.decoded.max()))) + 1

    @classmethod
    def from_learner(cls, learn: Any, ds_idx: int = 1, dl: Any = None) -> Any:
        """Run ``learn`` once over ``learn.dls[ds_idx]`` (or ``dl``); the codes come from the data's masks.

        Args:
            learn: a trained Learner.
            ds_idx: which loader (0 training, 1 validation).
            dl: a loader to use instead (unshuffled).

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> from lamina.learner import Learner
            >>> from lamina.learner.losses import CrossEntropyLossFlat
            >>> from lamina.vision import SegmentationDataLoaders
            >>> tmp = tempfile.TemporaryDirectory()  # eight real digits, each with its mask (pixels above 127: code 1)
            >>> names = mnist_digits(tmp.name, name="{digit}_{k}.png", mask_name="{digit}_{k}_mask.png")
            >>> dls = SegmentationDataLoaders.from_label_func(tmp.name, names,
            ...     lambda p: p.with_name(f"{p.stem}_mask.png"), codes=["background", "digit"], valid_pct=0.25, bs=4)
            >>> _ = torch.manual_seed(0)
            >>> model = torch.nn.Conv2d(3, 2, 1)  # untrained: one pixel-wise linear map
            >>> learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(axis=1), show_progress=False, logger=None)
            >>> interp = SegmentationInterpretation.from_learner(learn)
            >>> interp.codes, tuple(interp.targets.shape), interp.targets.dtype  # masks kept small, no probabilities
            (['background', 'digit'], (2, 28, 28), torch.uint8)
            >>> int(interp.confusion_matrix().sum()) == 2 * 28 * 28
            True
            >>> tmp.cleanup()
        """
        interp = Interpretation.from_learner(learn, ds_idx, dl)
        codes = getattr(interp.dl.one_batch()[interp.dl.n_inp], "codes", None) if interp.dl is not None else None
        return cls(learn, interp.dl, interp.preds, interp.targets, interp.decoded, interp.losses, codes=codes)

    def confusion_matrix(self) -> np.ndarray:
        """Pixel counts per (actual, predicted) code, rows actual and columns predicted.

        Examples:
            >>> targets = torch.tensor([[[0, 0, 1, 1]], [[0, 1, 1, 1]]])
            >>> decoded = torch.tensor([[[0, 1, 1, 1]], [[0, 0, 1, 1]]])
            >>> interp = SegmentationInterpretation(None, None, None, targets, decoded, torch.zeros(2),
            ...                                     codes=["bg", "digit"])
            >>> interp.confusion_matrix().tolist()  # pixels: rows actual, columns predicted
            [[2, 1], [1, 4]]
        """
        return confusion_matrix(self.targets.numpy(), self.decoded.numpy(), len(self.codes))

    def per_class_scores(self) -> Any:
        """A table (pandas DataFrame), one row per code: ``iou``, ``dice`` and ``pixels`` (actual pixel count).

        Examples:
            >>> targets = torch.tensor([[[0, 0, 1, 1]], [[0, 1, 1, 1]]])
            >>> decoded = torch.tensor([[[0, 1, 1, 1]], [[0, 0, 1, 1]]])
            >>> interp = SegmentationInterpretation(None, None, None, targets, decoded, torch.zeros(2),
            ...                                     codes=["bg", "digit"])
            >>> scores = interp.per_class_scores()
            >>> scores.round(3).to_dict("index")
            {'bg': {'iou': 0.5, 'dice': 0.667, 'pixels': 3}, 'digit': {'iou': 0.667, 'dice': 0.8, 'pixels': 5}}
        """
        import pandas as pd

        cm = self.confusion_matrix()
        scores = segmentation_scores(cm)
        return pd.DataFrame({"iou": scores["iou"], "dice": scores["dice"], "pixels": cm.sum(1)}, index=self.codes)

    def plot_top_losses(self, k: int = 4, figsize: tuple[float, float] | None = None, largest: bool = True) -> Any:
        """Draw the ``k`` items with the largest losses: the image, the target mask and the predicted mask per row.

        Args:
            k: number of items.
            figsize: figure size.
            largest: the smallest losses instead when False.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> from lamina.learner import Learner
            >>> from lamina.learner.losses import CrossEntropyLossFlat
            >>> from lamina.vision import SegmentationDataLoaders
            >>> tmp = tempfile.TemporaryDirectory()  # eight real digits, each with its mask (pixels above 127: code 1)
            >>> names = mnist_digits(tmp.name, name="{digit}_{k}.png", mask_name="{digit}_{k}_mask.png")
            >>> dls = SegmentationDataLoaders.from_label_func(tmp.name, names,
            ...     lambda p: p.with_name(f"{p.stem}_mask.png"), codes=["background", "digit"], valid_pct=0.25, bs=4)
            >>> _ = torch.manual_seed(0)
            >>> model = torch.nn.Conv2d(3, 2, 1)  # untrained: one pixel-wise linear map
            >>> learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(axis=1), show_progress=False, logger=None)
            >>> interp = SegmentationInterpretation.from_learner(learn)
            >>> fig = interp.plot_top_losses(2)  # one row per item: image, target mask, predicted mask
            >>> len(fig.axes), [ax.get_title() for ax in fig.axes[1:3]]
            (6, ['target', 'prediction'])
            >>> fig.axes[0].get_title() == f"loss {float(interp.top_losses(1)[0]):.3f}"
            True
            >>> tmp.cleanup()
        """
        losses, idxs = self.top_losses(k, largest)
        targets, preds = self._decoded_items(idxs), self._decoded_items(idxs, with_pred=True)
        fig, axs = get_grid(3 * len(targets), ncols=3, figsize=figsize)
        n_inp, ds = self.dl.n_inp, self.dl.dataset
        for row, (t, p, loss) in enumerate(zip(targets, preds, losses.tolist())):
            image_ax, target_ax, pred_ax = axs[3 * row : 3 * row + 3]
            _show_inputs(ds, t[:n_inp], image_ax).set_title(f"loss {loss:.3f}")
            for ax, item, title in ((target_ax, t, "target"), (pred_ax, p, "prediction")):
                _show_inputs(ds, item[:n_inp], ax)
                item[n_inp].show(ctx=ax)
                ax.set_title(title)
        _fit_titles(fig, axs)
        return fig
