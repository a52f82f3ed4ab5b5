"""Metrics the Learner reads after each validation epoch.

A metric gets ``accumulate(pred, targ)`` per batch, with raw outputs (logits), and reports ``value`` (``None``
before any batch). ``as_metric`` turns plain functions such as ``accuracy`` into metrics. The label rule
(``decode_labels``), shared by every classification and segmentation metric here:

- ``pred`` of shape ``(N, C)`` for targets ``(N,)``: argmax over the last dim.
- ``pred`` ``(N, C, H, W, ...)`` for targets ``(N, H, W, ...)``: argmax over dim 1 (channels first, which wins when
  both layouts fit the shapes).
- ``pred`` of shape ``(N, L, C)`` for targets ``(N, L)``: argmax over the last dim (sequence outputs).
- a class dim of size 1, or a float ``pred`` with the targets' own shape: one binary logit, label ``pred > 0``.
- an integer ``pred`` with the targets' own shape: already labels, used as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AccumMetric",
    "AvgMetric",
    "BalancedAccuracy",
    "Dice",
    "DiceMulti",
    "ExplainedVariance",
    "F1Score",
    "JaccardCoeff",
    "MatthewsCorrCoef",
    "Metric",
    "Perplexity",
    "Precision",
    "R2Score",
    "Recall",
    "RocAucBinary",
    "accuracy",
    "accuracy_multi",
    "as_metric",
    "class_dim",
    "decode_labels",
    "error_rate",
    "foreground_acc",
    "mae",
    "mse",
    "rmse",
    "top_k_accuracy",
]

_ACTIVATIONS = ("no", "softmax", "sigmoid")
_AVERAGES = ("binary", "macro", "micro", "weighted")


class Metric:
    """Base of every metric: ``reset()``, then ``accumulate(pred, targ)`` once per batch, then read ``value``.

    Subclasses set ``name`` and implement the three members; ``__init__`` calls ``reset``.

    Examples:
        >>> class CountItems(Metric):
        ...     name = "count_items"
        ...     def reset(self): self.count = 0
        ...     def accumulate(self, pred, targ): self.count += len(targ)
        ...     @property
        ...     def value(self): return float(self.count) if self.count else None
        >>> metric = CountItems(); metric.accumulate(torch.zeros(3, 2), torch.zeros(3)); metric.value
        3.0
    """

    name: str = "metric"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every accumulated batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement reset()")

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        """Add one batch of raw predictions and targets."""
        raise NotImplementedError(f"{type(self).__name__} must implement accumulate(pred, targ)")

    @property
    def value(self) -> float | None:
        """The metric over every batch seen since ``reset``, or ``None`` when there was none."""
        raise NotImplementedError(f"{type(self).__name__} must implement the value property")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _func_name(func: Callable[..., Any]) -> str:
    while isinstance(func, partial):
        func = func.func
    return str(getattr(func, "__name__", type(func).__name__))


def _shapes(pred: Tensor, targ: Tensor) -> str:
    return f"predictions of shape {tuple(pred.shape)} for targets of shape {tuple(targ.shape)}"


def _check_callable(func: Any, owner: str) -> None:
    if not callable(func):
        raise TypeError(f"{owner} needs a callable func(pred, targ), got {func!r} of type {type(func).__name__}")


class AvgMetric(Metric):
    """Batch-size weighted mean of ``func(pred, targ)``, a scalar per batch; named after ``func``.

    Args:
        func: returns a scalar tensor (or float) for one batch.
        name: the name to report; defaults to ``func.__name__``.

    Examples:
        >>> metric = AvgMetric(accuracy)
        >>> metric.accumulate(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))  # 1 of 2 right
        >>> metric.accumulate(torch.tensor([[0.0, 3.0]]), torch.tensor([1]))  # 1 of 1 right
        >>> metric.name, round(metric.value, 4)
        ('accuracy', 0.6667)
    """

    def __init__(self, func: Callable[..., Any], name: str | None = None) -> None:
        _check_callable(func, "AvgMetric")
        self.func, self.name = func, name or _func_name(func)
        super().__init__()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        batch_size = targ.shape[0] if targ.ndim else 1
        with torch.no_grad():
            self.total += float(self.func(pred.detach(), targ.detach())) * batch_size
        self.count += batch_size

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


class AccumMetric(Metric):
    """Gathers every prediction and target (detached, on CPU) and computes ``func`` once, when ``value`` is read.

    The steps, in order: ``activation`` (softmax over ``dim_argmax``, or the last dim), argmax over ``dim_argmax``,
    ``preds >= thresh``, flatten both, convert to numpy, swap to ``func(targs, preds)``.

    Args:
        func: ``func(preds, targs, **kwargs)`` returning a number.
        dim_argmax: dim of the predictions to take the argmax over, or ``None`` for no argmax.
        activation: ``"no"``, ``"softmax"`` or ``"sigmoid"``, applied to the predictions first.
        thresh: turn predictions into booleans with ``preds >= thresh``.
        flatten: flatten predictions and targets to 1-D (they must hold as many items).
        to_np: give ``func`` numpy arrays (for scikit-learn style functions).
        invert_arg: call ``func(targs, preds)``, the scikit-learn order.
        name: the name to report; defaults to ``func.__name__``.
        **kwargs: extra keyword arguments for ``func``.

    Examples:
        >>> def mean_abs_error(targs, preds): return (preds - targs).abs().mean()
        >>> metric = AccumMetric(mean_abs_error, invert_arg=True)
        >>> metric.accumulate(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
        >>> metric.accumulate(torch.tensor([0.0]), torch.tensor([1.0]))
        >>> metric.name, metric.value
        ('mean_abs_error', 1.0)
    """

    def __init__(
        self,
        func: Callable[..., Any],
        dim_argmax: int | None = None,
        activation: str = "no",
        thresh: float | None = None,
        flatten: bool = True,
        to_np: bool = False,
        invert_arg: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        _check_callable(func, "AccumMetric")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        self.func, self.dim_argmax, self.activation, self.thresh = func, dim_argmax, activation, thresh
        self.flatten, self.to_np, self.invert_arg, self.kwargs = flatten, to_np, invert_arg, kwargs
        self.name = name or _func_name(func)
        super().__init__()

    def reset(self) -> None:
        self.preds: list[Tensor] = []
        self.targs: list[Tensor] = []

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        self.preds.append(pred.detach().cpu())
        self.targs.append(targ.detach().cpu())

    def _prepared(self) -> tuple[Tensor, Tensor]:
        preds, targs = torch.cat(self.preds), torch.cat(self.targs)
        if self.activation == "softmax":
            preds = F.softmax(preds.float(), dim=-1 if self.dim_argmax is None else self.dim_argmax)
        elif self.activation == "sigmoid":
            preds = torch.sigmoid(preds.float())
        if self.dim_argmax is not None:
            preds = preds.argmax(dim=self.dim_argmax)
        if self.thresh is not None:
            preds = preds >= self.thresh
        if self.flatten:
            if preds.numel() != targs.numel():
                raise ValueError(
                    f"{self.name}: cannot flatten {_shapes(preds, targs)}; set dim_argmax or flatten=False"
                )
            preds, targs = preds.reshape(-1), targs.reshape(-1)
        return preds, targs

    @property
    def value(self) -> float | None:
        if not self.preds:
            return None
        preds, targs = self._prepared()
        args: tuple[Any, Any] = (targs, preds) if self.invert_arg else (preds, targs)
        if self.to_np:
            args = (args[0].numpy(), args[1].numpy())
        return float(self.func(*args, **self.kwargs))


def as_metric(metric: Metric | Callable[..., Any]) -> Metric:
    """Turn ``metric`` into a ``Metric``: instances pass through, a plain function gets a fresh wrapper each call.

    A function is wrapped in ``AvgMetric``, unless it carries ``accumulate_whole = True`` (as ``rmse`` does): its
    mean over batches is not its value over the epoch, so it is wrapped in ``AccumMetric`` instead.

    Examples:
        >>> as_metric(accuracy)
        AvgMetric(name='accuracy')
        >>> as_metric(accuracy) is as_metric(accuracy)
        False
        >>> as_metric(rmse)
        AccumMetric(name='rmse')
        >>> f1 = F1Score(); as_metric(f1) is f1
        True
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, type) and issubclass(metric, Metric):
        raise TypeError(f"as_metric got the class {metric.__name__}; pass an instance instead: {metric.__name__}()")
    if callable(metric):
        return AccumMetric(metric) if getattr(metric, "accumulate_whole", False) else AvgMetric(metric)
    raise TypeError(f"a metric must be a Metric or a function f(pred, targ), got {type(metric).__name__} {metric!r}")


def class_dim(pred: Tensor, targ: Tensor) -> int:
    """The dim of ``pred`` that holds the classes for targets ``targ``: 1 (channels first) or -1 (last).

    Args:
        pred: raw model outputs with one more dim than ``targ``.
        targ: the targets.

    Examples:
        >>> class_dim(torch.zeros(4, 3), torch.zeros(4))
        -1
        >>> class_dim(torch.zeros(4, 3, 8, 8), torch.zeros(4, 8, 8))
        1
    """
    if pred.ndim == targ.ndim + 1:
        if pred.ndim >= 3 and pred.shape[:1] + pred.shape[2:] == targ.shape:
            return 1
        if pred.shape[:-1] == targ.shape:
            return -1
    raise ValueError(
        f"cannot find the class dim of {_shapes(pred, targ)}; "
        "expected (N, C) for (N,), (N, C, H, W) for (N, H, W) or (N, L, C) for (N, L)"
    )


def decode_labels(pred: Tensor, targ: Tensor) -> Tensor:
    """Labels predicted by raw outputs ``pred`` for targets ``targ``, following the module's label rule.

    Args:
        pred: raw model outputs (logits), or labels with the targets' shape.
        targ: the targets, used for their shape only.

    Examples:
        >>> decode_labels(torch.tensor([[0.1, 2.0], [3.0, -1.0]]), torch.tensor([1, 1]))
        tensor([1, 0])
        >>> decode_labels(torch.tensor([-0.5, 0.7]), torch.tensor([0, 1]))  # one binary logit per item
        tensor([0, 1])
    """
    if pred.shape == targ.shape:
        return (pred > 0).long() if pred.is_floating_point() else pred
    dim = class_dim(pred, targ)
    if pred.shape[dim] == 1:
        return (pred.squeeze(dim) > 0).long()
    return pred.argmax(dim=dim)


def accuracy(pred: Tensor, targ: Tensor) -> Tensor:
    """Share of items whose decoded label (see ``decode_labels``) equals the target.

    Args:
        pred: logits ``(N, C)``, ``(N, C, H, W)`` or ``(N, L, C)``.
        targ: class indices ``(N,)``, ``(N, H, W)`` or ``(N, L)``.

    Examples:
        >>> accuracy(torch.tensor([[0.1, 2.0], [3.0, -1.0], [0.0, 1.0]]), torch.tensor([1, 1, 1]))
        tensor(0.6667)
    """
    return (decode_labels(pred, targ) == targ).float().mean()


def error_rate(pred: Tensor, targ: Tensor) -> Tensor:
    """``1 - accuracy(pred, targ)``.

    Args:
        pred: logits, as for ``accuracy``.
        targ: class indices.

    Examples:
        >>> error_rate(torch.tensor([[0.1, 2.0], [3.0, -1.0]]), torch.tensor([1, 1]))
        tensor(0.5000)
    """
    return 1 - accuracy(pred, targ)


def top_k_accuracy(pred: Tensor, targ: Tensor, k: int = 5) -> Tensor:
    """Share of items whose target is among the ``k`` highest logits; use ``functools.partial`` to change ``k``.

    Args:
        pred: logits, as for ``accuracy``.
        targ: class indices.
        k: how many of the top classes count as a hit; more than the number of classes counts every class.

    Examples:
        >>> logits = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
        >>> top_k_accuracy(logits, torch.tensor([1, 2]), k=2)
        tensor(0.5000)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    dim = class_dim(pred, targ)
    top = pred.topk(min(k, pred.shape[dim]), dim=dim).indices
    return (top == targ.unsqueeze(dim)).any(dim=dim).float().mean()


def accuracy_multi(pred: Tensor, targ: Tensor, thresh: float = 0.5, sigmoid: bool = True) -> Tensor:
    """Multi-label accuracy: share of (item, label) pairs where ``activation(pred) > thresh`` matches the target.

    Args:
        pred: one logit (or probability when ``sigmoid=False``) per label, same number of items as ``targ``.
        targ: 0/1 targets, e.g. ``(N, n_labels)``.
        thresh: the probability above which a label is predicted.
        sigmoid: apply a sigmoid to ``pred`` first (``True`` for raw logits).

    Examples:
        >>> accuracy_multi(torch.tensor([[2.0, -1.0], [0.5, 0.3]]), torch.tensor([[1, 0], [0, 0]]))
        tensor(0.5000)
    """
    if pred.numel() != targ.numel():
        raise ValueError(f"accuracy_multi needs one prediction per target, got {_shapes(pred, targ)}")
    probs = torch.sigmoid(pred) if sigmoid else pred
    return ((probs.reshape(targ.shape) > thresh) == targ.bool()).float().mean()


def foreground_acc(pred: Tensor, targ: Tensor, bkg_idx: int = 0) -> Tensor:
    """Segmentation accuracy over the pixels whose target is not the background code ``bkg_idx`` (nan if none).

    Args:
        pred: logits ``(N, C, H, W)``.
        targ: class codes ``(N, H, W)``.
        bkg_idx: the background code to leave out.

    Examples:
        >>> pred = torch.tensor([[[[5.0, 0.0]], [[0.0, 5.0]]]])  # (1, 2, 1, 2): labels [[0, 1]]
        >>> foreground_acc(pred, torch.tensor([[[1, 1]]]))
        tensor(0.5000)
    """
    keep = targ != bkg_idx
    return (decode_labels(pred, targ)[keep] == targ[keep]).float().mean()


def _label_confusion(preds: Tensor, targs: Tensor, min_classes: int = 0) -> Tensor:
    """Confusion matrix (float64, targets on rows) of the labels decoded from raw ``preds`` against ``targs``."""
    labels, targs = decode_labels(preds, targs).reshape(-1).long(), targs.reshape(-1).long()
    if len(targs) and min(int(labels.min()), int(targs.min())) < 0:
        raise ValueError(f"labels must be class indices >= 0, got {min(int(labels.min()), int(targs.min()))}")
    n = max(min_classes, int(labels.max()) + 1, int(targs.max()) + 1) if len(targs) else min_classes
    return torch.bincount(targs * n + labels, minlength=n * n).reshape(n, n).double()


def _prf_score(preds: Tensor, targs: Tensor, kind: str, average: str, pos_label: int) -> float:
    """Precision, recall or F1 (``kind``) with scikit-learn's averages; 0 where a ratio is 0/0."""
    cm = _label_confusion(preds, targs, min_classes=pos_label + 1)
    tp, n_pred, n_true = cm.diag(), cm.sum(0), cm.sum(1)
    present = (n_pred + n_true) > 0
    if average == "binary":
        if int(present.sum()) > 2 or (int(present.sum()) == 2 and not bool(present[pos_label])):
            found = present.nonzero().flatten().tolist()
            raise ValueError(
                f"average='binary' needs two classes including pos_label={pos_label}, found labels {found}; "
                "use average='macro', 'micro' or 'weighted', or set pos_label"
            )
        keep = slice(pos_label, pos_label + 1)
        tp, n_pred, n_true = tp[keep], n_pred[keep], n_true[keep]
    elif average == "micro":
        tp, n_pred, n_true = tp.sum(0, keepdim=True), n_pred.sum(0, keepdim=True), n_true.sum(0, keepdim=True)
    denominator = {"precision": n_pred, "recall": n_true, "f1": (n_pred + n_true) / 2}[kind]
    scores = tp / denominator.clamp(min=0.5)  # counts are whole numbers: a 0 denominator has tp == 0
    if average == "macro":
        return float(scores[present].mean())
    if average == "weighted":
        return float((scores * n_true).sum() / n_true.sum().clamp(min=1))
    return float(scores[0])


class _PrecisionRecallF1(AccumMetric):
    """Shared body of ``Precision``, ``Recall`` and ``F1Score``; ``kind`` picks the score."""

    kind = "f1"

    def __init__(self, average: str = "binary", pos_label: int = 1) -> None:
        if average not in _AVERAGES:
            raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
        if pos_label < 0:
            raise ValueError(f"pos_label must be a class index >= 0, got {pos_label}")
        self.average, self.pos_label = average, pos_label
        score = partial(_prf_score, kind=self.kind, average=average, pos_label=pos_label)
        super().__init__(score, flatten=False, name=f"{self.kind}_score")


class F1Score(_PrecisionRecallF1):
    """F1 score of the decoded labels over the epoch, averaged as ``average`` says (scikit-learn's ``f1_score``).

    Args:
        average: ``"binary"`` (the ``pos_label`` class only), ``"macro"`` (mean over classes present), ``"micro"``
            (from the pooled counts) or ``"weighted"`` (mean weighted by each class's number of targets).
        pos_label: the positive class for ``average="binary"``.

    Examples:
        >>> metric = F1Score(average="macro")
        >>> metric.accumulate(torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]]), torch.tensor([0, 1, 0]))
        >>> round(metric.value, 4)
        0.6667
    """

    kind = "f1"


class Precision(_PrecisionRecallF1):
    """Precision (right share of the predicted positives) over the epoch, like scikit-learn's ``precision_score``.

    Args:
        average: ``"binary"``, ``"macro"``, ``"micro"`` or ``"weighted"``, as for ``F1Score``.
        pos_label: the positive class for ``average="binary"``.

    Examples:
        >>> metric = Precision()
        >>> metric.accumulate(torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]]), torch.tensor([0, 1, 0]))
        >>> metric.value
        0.5
    """

    kind = "precision"


class Recall(_PrecisionRecallF1):
    """Recall (found share of the true positives) over the epoch, like scikit-learn's ``recall_score``.

    Args:
        average: ``"binary"``, ``"macro"``, ``"micro"`` or ``"weighted"``, as for ``F1Score``.
        pos_label: the positive class for ``average="binary"``.

    Examples:
        >>> metric = Recall()
        >>> metric.accumulate(torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]]), torch.tensor([0, 1, 0]))
        >>> metric.value
        1.0
    """

    kind = "recall"


def _balanced_accuracy(preds: Tensor, targs: Tensor) -> float:
    """Mean recall over the classes that occur in the targets."""
    cm = _label_confusion(preds, targs)
    seen = cm.sum(1) > 0
    return float((cm.diag()[seen] / cm.sum(1)[seen]).mean())


class BalancedAccuracy(AccumMetric):
    """Mean per-class recall over the classes present in the targets, like ``balanced_accuracy_score``.

    Examples:
        >>> metric = BalancedAccuracy()
        >>> logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])  # labels [0, 0, 0, 1]
        >>> metric.accumulate(logits, torch.tensor([0, 0, 1, 1]))
        >>> metric.value
        0.75
    """

    def __init__(self) -> None:
        super().__init__(_balanced_accuracy, flatten=False, name="balanced_accuracy")


def _matthews_corrcoef(preds: Tensor, targs: Tensor) -> float:
    """Multi-class Matthews correlation from the confusion matrix; 0 when either side holds one class."""
    cm = _label_confusion(preds, targs)
    n_true, n_pred, total, correct = cm.sum(1), cm.sum(0), cm.sum(), cm.trace()
    cov_true_pred = correct * total - n_true @ n_pred
    cov_pred = total**2 - n_pred @ n_pred
    cov_true = total**2 - n_true @ n_true
    if float(cov_pred * cov_true) == 0:
        return 0.0
    return float(cov_true_pred / torch.sqrt(cov_true * cov_pred))


class MatthewsCorrCoef(AccumMetric):
    """Matthews correlation coefficient of the decoded labels, like scikit-learn's ``matthews_corrcoef``.

    Examples:
        >>> metric = MatthewsCorrCoef()
        >>> metric.accumulate(torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]]), torch.tensor([0, 1, 1]))
        >>> metric.value
        1.0
    """

    def __init__(self) -> None:
        super().__init__(_matthews_corrcoef, flatten=False, name="matthews_corrcoef")


def _binary_scores(preds: Tensor, targs: Tensor) -> Tensor:
    """One score per item, increasing with the positive class: the logit, or the logit gap for two columns."""
    if preds.numel() == targs.numel():
        return preds.reshape(-1).double()
    dim = class_dim(preds, targs)
    if preds.shape[dim] != 2:
        raise ValueError(f"RocAucBinary needs 1 or 2 logits per item, got {preds.shape[dim]}; it is for 2 classes")
    return (preds.select(dim, 1).double() - preds.select(dim, 0).double()).reshape(-1)


def _average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of ``values``, ties sharing the mean of their ranks."""
    sorted_values, order = values.sort()
    _, inverse, counts = torch.unique_consecutive(sorted_values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    ranks = torch.empty(len(values), dtype=torch.float64)
    ranks[order] = (ends - (counts.double() - 1) / 2)[inverse]
    return ranks


def _roc_auc_binary(preds: Tensor, targs: Tensor) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula; nan when one class is missing."""
    scores, positive = _binary_scores(preds, targs), targs.reshape(-1)
    if not bool(((positive == 0) | (positive == 1)).all()):
        raise ValueError(f"RocAucBinary needs 0/1 targets, got values {positive.unique().tolist()}")
    positive = positive.bool()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    return float((_average_ranks(scores)[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class RocAucBinary(AccumMetric):
    """Area under the ROC curve for 0/1 targets, from one logit per item or two (``roc_auc_score``).

    Examples:
        >>> metric = RocAucBinary()
        >>> metric.accumulate(torch.tensor([0.2, 1.5, -0.3, 0.9]), torch.tensor([0, 1, 1, 0]))
        >>> metric.value
        0.5
    """

    def __init__(self) -> None:
        super().__init__(_roc_auc_binary, flatten=False, name="roc_auc_score")


def _paired(pred: Tensor, targ: Tensor) -> tuple[Tensor, Tensor]:
    """Predictions reshaped to the targets' shape, both floating point."""
    if pred.numel() != targ.numel():
        raise ValueError(f"regression metrics need one prediction per target, got {_shapes(pred, targ)}")
    dtype = torch.promote_types(pred.dtype, torch.float32)
    return pred.reshape(targ.shape).to(dtype), targ.to(dtype)


def mse(pred: Tensor, targ: Tensor) -> Tensor:
    """Mean squared error; ``pred`` of shape ``(N, 1)`` is matched to targets ``(N,)``.

    Args:
        pred: predictions, as many as targets.
        targ: the targets.

    Examples:
        >>> mse(torch.tensor([[1.0], [3.0]]), torch.tensor([1.0, 1.0]))
        tensor(2.)
    """
    pred, targ = _paired(pred, targ)
    return ((pred - targ) ** 2).mean()


def rmse(pred: Tensor, targ: Tensor) -> Tensor:
    """Root mean squared error. ``as_metric`` accumulates it over the whole epoch (``accumulate_whole``).

    Args:
        pred: predictions, as many as targets.
        targ: the targets.

    Examples:
        >>> rmse(torch.tensor([0.0, 4.0]), torch.tensor([0.0, 0.0]))
        tensor(2.8284)
    """
    return mse(pred, targ).sqrt()


rmse.accumulate_whole = True  # type: ignore[attr-defined]


def mae(pred: Tensor, targ: Tensor) -> Tensor:
    """Mean absolute error.

    Args:
        pred: predictions, as many as targets.
        targ: the targets.

    Examples:
        >>> mae(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 1.0]))
        tensor(1.5000)
    """
    pred, targ = _paired(pred, targ)
    return (pred - targ).abs().mean()


def _ratio_score(residual_spread: Tensor, target_spread: Tensor) -> float:
    """Mean over outputs of ``1 - residual/target`` spread, 1 or 0 where the targets do not vary (scikit-learn)."""
    scores = 1 - residual_spread / torch.where(target_spread == 0, 1.0, target_spread)
    constant = torch.where(residual_spread == 0, 1.0, 0.0).double()
    return float(torch.where(target_spread == 0, constant, scores).mean())


def _two_dims(preds: Tensor, targs: Tensor) -> tuple[Tensor, Tensor]:
    """Predictions and targets as float64 ``(N, n_outputs)``."""
    preds, targs = _paired(preds, targs)
    return preds.double().reshape(len(targs), -1), targs.double().reshape(len(targs), -1)


def _r2_score(preds: Tensor, targs: Tensor) -> float:
    preds, targs = _two_dims(preds, targs)
    return _ratio_score(((targs - preds) ** 2).sum(0), ((targs - targs.mean(0)) ** 2).sum(0))


def _explained_variance(preds: Tensor, targs: Tensor) -> float:
    preds, targs = _two_dims(preds, targs)
    return _ratio_score((targs - preds).var(0, correction=0), targs.var(0, correction=0))


class R2Score(AccumMetric):
    """Coefficient of determination over the epoch, averaged over outputs (scikit-learn's ``r2_score``).

    Examples:
        >>> metric = R2Score()
        >>> metric.accumulate(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 3.0]))
        >>> metric.value
        0.5
    """

    def __init__(self) -> None:
        super().__init__(_r2_score, flatten=False, name="r2_score")


class ExplainedVariance(AccumMetric):
    """``1 - Var(targ - pred) / Var(targ)`` over the epoch, like ``explained_variance_score``.

    Examples:
        >>> metric = ExplainedVariance()
        >>> metric.accumulate(torch.tensor([2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 3.0]))  # off by a constant
        >>> metric.value
        1.0
    """

    def __init__(self) -> None:
        super().__init__(_explained_variance, flatten=False, name="explained_variance")


class Perplexity(Metric):
    """``exp`` of the mean cross-entropy per target token over the epoch; logits as in ``class_dim``.

    Args:
        ignore_index: a target value that is left out (padding).

    Examples:
        >>> metric = Perplexity()
        >>> metric.accumulate(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long))  # uniform over 4 tokens
        >>> round(metric.value, 4)
        4.0
    """

    name = "perplexity"

    def __init__(self, ignore_index: int = -100) -> None:
        self.ignore_index = ignore_index
        super().__init__()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        dim = class_dim(pred, targ)
        logits = pred.detach().movedim(dim, -1).reshape(-1, pred.shape[dim]).float()
        flat = targ.detach().reshape(-1).long()
        loss = F.cross_entropy(logits, flat, ignore_index=self.ignore_index, reduction="sum")
        self.total += float(loss)
        self.count += int((flat != self.ignore_index).sum())

    @property
    def value(self) -> float | None:
        return math.exp(self.total / self.count) if self.count else None


class _BinaryOverlap(Metric):
    """Running intersection and size sums of predicted and target foreground (label != 0) for binary masks."""

    def reset(self) -> None:
        self.intersection, self.sizes = 0, 0

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        predicted, target = decode_labels(pred.detach(), targ) != 0, targ.detach() != 0
        self.intersection += int((predicted & target).sum())
        self.sizes += int(predicted.sum()) + int(target.sum())


class Dice(_BinaryOverlap):
    """Binary dice ``2|P∩T| / (|P| + |T|)`` over every pixel of the epoch; foreground is label != 0.

    Examples:
        >>> pred = torch.tensor([[[[5.0, -5.0, -5.0]], [[-5.0, 5.0, 5.0]]]])  # (1, 2, 1, 3): labels [[0, 1, 1]]
        >>> metric = Dice(); metric.accumulate(pred, torch.tensor([[[1, 1, 0]]]))
        >>> metric.value
        0.5
    """

    name = "dice"

    @property
    def value(self) -> float | None:
        return 2 * self.intersection / self.sizes if self.sizes else None


class JaccardCoeff(_BinaryOverlap):
    """Binary Jaccard index (intersection over union) over every pixel of the epoch; foreground is label != 0.

    Examples:
        >>> pred = torch.tensor([[[[5.0, -5.0, -5.0]], [[-5.0, 5.0, 5.0]]]])  # labels [[0, 1, 1]]
        >>> metric = JaccardCoeff(); metric.accumulate(pred, torch.tensor([[[1, 1, 0]]]))
        >>> round(metric.value, 4)
        0.3333
    """

    name = "jaccard_coeff"

    @property
    def value(self) -> float | None:
        union = self.sizes - self.intersection
        return self.intersection / union if union else None


class DiceMulti(Metric):
    """Mean over classes of per-class dice, each from intersections and sizes summed over the whole epoch.

    Classes that appear neither in the predictions nor in the targets of the epoch are left out of the mean.

    Examples:
        >>> pred = torch.tensor([[[[5.0, 0.0, 0.0]], [[0.0, 5.0, 0.0]], [[0.0, 0.0, 5.0]]]])  # labels [[0, 1, 2]]
        >>> metric = DiceMulti(); metric.accumulate(pred, torch.tensor([[[0, 1, 1]]]))
        >>> round(metric.value, 4)  # class 0: 1, class 1: 2/3, class 2: 0
        0.5556
    """

    name = "dice_multi"

    def reset(self) -> None:
        self.intersection = torch.zeros(0, dtype=torch.float64)
        self.sizes = torch.zeros(0, dtype=torch.float64)

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        labels = decode_labels(pred.detach(), targ).reshape(-1).long().cpu()
        target = targ.detach().reshape(-1).long().cpu()
        n = max(len(self.sizes), pred.shape[class_dim(pred, targ)] if pred.ndim == targ.ndim + 1 else 0)
        n = max(n, int(labels.max()) + 1, int(target.max()) + 1) if len(target) else n
        hits = torch.bincount(labels[labels == target], minlength=n).double()
        sizes = (torch.bincount(labels, minlength=n) + torch.bincount(target, minlength=n)).double()
        self.intersection = F.pad(self.intersection, (0, n - len(self.intersection))) + hits
        self.sizes = F.pad(self.sizes, (0, n - len(self.sizes))) + sizes

    @property
    def value(self) -> float | None:
        present = self.sizes > 0
        if not bool(present.any()):
            return None
        return float((2 * self.intersection[present] / self.sizes[present]).mean())
