"""Metrics accumulated over uneven batches of real model outputs equal scikit-learn on the full arrays."""

from __future__ import annotations

import json
import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

from lamina.learner.metrics import (
    AccumMetric,
    AvgMetric,
    BalancedAccuracy,
    Dice,
    DiceMulti,
    ExplainedVariance,
    F1Score,
    JaccardCoeff,
    MatthewsCorrCoef,
    Metric,
    Perplexity,
    Precision,
    R2Score,
    Recall,
    RocAucBinary,
    accuracy,
    accuracy_multi,
    as_metric,
    class_dim,
    decode_labels,
    error_rate,
    foreground_acc,
    mae,
    mse,
    rmse,
    top_k_accuracy,
)

BATCH_SIZES = (37, 100, 3)  # then the rest: uneven on purpose


def feed(metric: Metric, pred: torch.Tensor, targ: torch.Tensor) -> float | None:
    """Reset ``metric``, accumulate it over batches of 37, 100, 3 and the rest, and return its value."""
    metric.reset()
    start = 0
    for size in (*BATCH_SIZES, len(targ)):
        metric.accumulate(pred[start : start + size], targ[start : start + size])
        start += size
        if start >= len(targ):
            break
    return metric.value


def fit_linear(x: torch.Tensor, y: torch.Tensor, n_out: int, loss: str, steps: int = 100) -> torch.nn.Linear:
    """A linear model trained by full-batch gradient descent: softmax or logistic regression."""
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], n_out)
    loss_func = {
        "ce": lambda out: F.cross_entropy(out, y),
        "bce": lambda out: F.binary_cross_entropy_with_logits(out.reshape(y.shape), y.float()),
    }[loss]
    for _ in range(steps):
        model.zero_grad()
        loss_func(model(x)).backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= 0.5 * param.grad
    return model


def standardize(x: np.ndarray, train: slice) -> torch.Tensor:
    mean, std = x[train].mean(0), x[train].std(0) + 1e-8
    return torch.tensor((x - mean) / std, dtype=torch.float32)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out logits (N, 10) of a softmax regression trained on the first 1000 digits, and the true labels."""
    data = load_digits()
    x, y = torch.tensor(data.data / 16, dtype=torch.float32), torch.tensor(data.target)
    model = fit_linear(x[:1000], y[:1000], 10, "ce", steps=100)
    with torch.no_grad():
        return model(x[1000:]), y[1000:]


@pytest.fixture(scope="module")
def cancer() -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out single logits (N,) of a logistic regression on breast cancer, and the 0/1 labels."""
    data = load_breast_cancer()
    x, y = standardize(data.data, slice(0, 300)), torch.tensor(data.target)
    model = fit_linear(x[:300], y[:300], 1, "bce", steps=50)
    with torch.no_grad():
        return model(x[300:]).squeeze(1), y[300:]


@pytest.fixture(scope="module")
def diabetes() -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out predictions (N, 1) of a linear regression on diabetes, and the targets (N,)."""
    data = load_diabetes()
    x, y = standardize(data.data, slice(0, 300)), torch.tensor(data.target, dtype=torch.float32)
    design = torch.cat([x, torch.ones(len(x), 1)], 1)  # least squares with an intercept
    coef = torch.linalg.lstsq(design[:300], y[:300, None]).solution
    return design[300:] @ coef, y[300:]


def two_logits(logit: torch.Tensor) -> torch.Tensor:
    """The (N, 2) logits equivalent to one binary logit per item."""
    return torch.stack([torch.zeros_like(logit), logit], dim=1)


# --- the label rule ---


def test_label_rule_argmaxes_the_last_dim_for_classes_and_dim_1_for_segmentation():
    pred = torch.tensor([[[[0.0, 5.0]], [[5.0, 0.0]]]])  # (1, 2, 1, 2)
    assert class_dim(pred, torch.zeros(1, 1, 2)) == 1
    assert decode_labels(pred, torch.zeros(1, 1, 2)).tolist() == [[[1, 0]]]
    sequence = torch.tensor([[[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]]])  # (N=1, L=2, C=3)
    assert decode_labels(sequence, torch.zeros(1, 2)).tolist() == [[1, 0]]
    assert decode_labels(torch.tensor([[-1.0], [2.0]]), torch.zeros(2)).tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5,\)"):
        class_dim(torch.zeros(4, 3), torch.zeros(5))


# --- accuracy family through AvgMetric ---


def test_accuracy_and_error_rate_over_uneven_batches_equal_accuracy_score(digits):
    logits, y = digits
    expected = skm.accuracy_score(y.numpy(), logits.argmax(1).numpy())
    assert 0.8 < expected < 1.0  # a real, imperfect model
    assert feed(as_metric(accuracy), logits, y) == pytest.approx(expected, abs=1e-6)
    assert feed(as_metric(error_rate), logits, y) == pytest.approx(1 - expected, abs=1e-6)


def test_accuracy_of_one_binary_logit_thresholds_at_zero(cancer):
    logit, y = cancer
    expected = skm.accuracy_score(y.numpy(), (logit > 0).numpy())
    assert feed(as_metric(accuracy), logit, y) == pytest.approx(expected, abs=1e-6)
    assert feed(as_metric(accuracy), logit[:, None], y) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_accuracy_equals_top_k_accuracy_score(digits, k):
    logits, y = digits
    metric = AvgMetric(partial(top_k_accuracy, k=k))
    assert metric.name == "top_k_accuracy"
    expected = skm.top_k_accuracy_score(y.numpy(), logits.numpy(), k=k, labels=np.arange(10))
    assert feed(metric, logits, y) == pytest.approx(expected, abs=1e-6)


def test_accuracy_multi_equals_one_minus_hamming_loss_on_multilabel_digits():
    data = load_digits()
    x, digit = torch.tensor(data.data / 16, dtype=torch.float32), torch.tensor(data.target)
    labels = torch.stack([digit % 2 == 0, digit > 4, (digit == 2) | (digit == 3) | (digit == 5) | (digit == 7)], 1)
    model = fit_linear(x[:1000], labels[:1000].float(), 3, "bce", steps=100)
    with torch.no_grad():
        logits, targ = model(x[1000:]), labels[1000:].long()
    expected = 1 - skm.hamming_loss(targ.numpy(), (logits > 0).numpy())
    assert 0.6 < expected < 1.0
    assert feed(as_metric(accuracy_multi), logits, targ) == pytest.approx(expected, abs=1e-6)
    probs = torch.sigmoid(logits)
    expected_07 = 1 - skm.hamming_loss(targ.numpy(), (probs > 0.7).numpy())
    metric = AvgMetric(partial(accuracy_multi, thresh=0.7, sigmoid=False))
    assert feed(metric, probs, targ) == pytest.approx(expected_07, abs=1e-6)
    assert expected_07 != pytest.approx(expected)


# --- label metrics accumulated over the epoch ---


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
@pytest.mark.parametrize(
    ("metric_class", "sk_func"),
    [(F1Score, skm.f1_score), (Precision, skm.precision_score), (Recall, skm.recall_score)],
)
def test_precision_recall_f1_averages_equal_sklearn_on_digits(digits, metric_class, sk_func, average):
    logits, y = digits
    expected = sk_func(y.numpy(), logits.argmax(1).numpy(), average=average)
    assert feed(metric_class(average=average), logits, y) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("pos_label", [0, 1])
@pytest.mark.parametrize(
    ("metric_class", "sk_func"),
    [(F1Score, skm.f1_score), (Precision, skm.precision_score), (Recall, skm.recall_score)],
)
def test_binary_scores_equal_sklearn_from_one_or_two_logits(cancer, metric_class, sk_func, pos_label):
    logit, y = cancer
    expected = sk_func(y.numpy(), (logit > 0).long().numpy(), pos_label=pos_label)
    assert feed(metric_class(pos_label=pos_label), logit, y) == pytest.approx(expected, abs=1e-9)
    assert feed(metric_class(pos_label=pos_label), two_logits(logit), y) == pytest.approx(expected, abs=1e-9)


def test_binary_average_refuses_more_than_two_classes(digits):
    logits, y = digits
    with pytest.raises(ValueError, match="average='macro'"):
        feed(F1Score(), logits, y)
    with pytest.raises(ValueError, match="'avg'"):
        F1Score(average="avg")


def test_balanced_accuracy_and_matthews_equal_sklearn(digits, cancer):
    for logits, y in (digits, cancer):
        labels = decode_labels(logits, y).numpy()
        expected = skm.balanced_accuracy_score(y.numpy(), labels)
        assert feed(BalancedAccuracy(), logits, y) == pytest.approx(expected, abs=1e-9)
        assert feed(MatthewsCorrCoef(), logits, y) == pytest.approx(skm.matthews_corrcoef(y.numpy(), labels), abs=1e-9)


def test_classes_missing_from_the_targets_or_from_both_sides_follow_sklearn(digits):
    logits, y = digits
    labels = logits.argmax(1)
    no_true_three = y != 3  # the model still predicts some 3s: a class only in the predictions
    assert (labels[no_true_three] == 3).any()
    y_sub, labels_sub = y[no_true_three].numpy(), labels[no_true_three].numpy()
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        expected = skm.balanced_accuracy_score(y_sub, labels_sub)
    assert feed(BalancedAccuracy(), logits[no_true_three], y[no_true_three]) == pytest.approx(expected, abs=1e-9)
    no_three = (y != 3) & (labels != 3)  # class 3 on neither side: macro leaves it out
    expected = skm.f1_score(y[no_three].numpy(), labels[no_three].numpy(), average="macro")
    assert feed(F1Score(average="macro"), logits[no_three], y[no_three]) == pytest.approx(expected, abs=1e-9)


def test_roc_auc_equals_roc_auc_score_also_with_ties(cancer):
    logit, y = cancer
    expected = skm.roc_auc_score(y.numpy(), logit.numpy())
    assert 0.8 < expected < 1.0
    assert feed(RocAucBinary(), logit, y) == pytest.approx(expected, abs=1e-9)
    assert feed(RocAucBinary(), F.log_softmax(two_logits(logit), 1), y) == pytest.approx(expected, abs=1e-6)
    coarse = logit.round()  # many tied scores
    assert len(coarse.unique()) < len(coarse) / 5
    assert feed(RocAucBinary(), coarse, y) == pytest.approx(skm.roc_auc_score(y.numpy(), coarse.numpy()), abs=1e-9)


def test_roc_auc_is_nan_with_one_class_and_refuses_multiclass(cancer, digits):
    logit, y = cancer
    assert math.isnan(feed(RocAucBinary(), logit[y == 1], y[y == 1]))
    with pytest.raises(ValueError, match="1 or 2 logits"):
        feed(RocAucBinary(), *digits)


# --- regression ---


def test_mse_and_mae_averaged_over_batches_equal_sklearn(diabetes):
    pred, y = diabetes
    assert pred.shape == (len(y), 1)
    expected_mse = skm.mean_squared_error(y.numpy(), pred.numpy().ravel())
    assert feed(as_metric(mse), pred, y) == pytest.approx(expected_mse, rel=1e-5)
    assert feed(as_metric(mae), pred, y) == pytest.approx(skm.mean_absolute_error(y.numpy(), pred.numpy()), rel=1e-5)


def test_rmse_is_accumulated_over_the_whole_epoch_not_averaged_per_batch(diabetes):
    pred, y = diabetes
    expected = math.sqrt(skm.mean_squared_error(y.numpy(), pred.numpy().ravel()))
    assert feed(as_metric(rmse), pred, y) == pytest.approx(expected, rel=1e-5)
    assert feed(AvgMetric(rmse), pred, y) != pytest.approx(expected, rel=1e-5)  # why as_metric does not use it


def test_r2_and_explained_variance_equal_sklearn_single_and_multi_output(diabetes):
    pred, y = diabetes
    assert 0.2 < skm.r2_score(y.numpy(), pred.numpy().ravel()) < 0.9
    assert feed(R2Score(), pred, y) == pytest.approx(skm.r2_score(y.numpy(), pred.numpy().ravel()), abs=1e-6)
    expected_ev = skm.explained_variance_score(y.numpy(), pred.numpy().ravel())
    assert feed(ExplainedVariance(), pred, y) == pytest.approx(expected_ev, abs=1e-6)
    pred2, y2 = torch.cat([pred, pred.sqrt()], 1), torch.stack([y, y.sqrt() + 1], 1)  # two outputs, second biased
    assert feed(R2Score(), pred2, y2) == pytest.approx(skm.r2_score(y2.numpy(), pred2.numpy()), abs=1e-6)
    expected_ev2 = skm.explained_variance_score(y2.numpy(), pred2.numpy())
    assert feed(ExplainedVariance(), pred2, y2) == pytest.approx(expected_ev2, abs=1e-6)


# --- perplexity ---


def test_perplexity_is_exp_of_mean_cross_entropy_also_for_sequences_with_padding(digits):
    logits, y = digits
    expected = math.exp(skm.log_loss(y.numpy(), F.softmax(logits.double(), 1).numpy(), labels=np.arange(10)))
    assert feed(Perplexity(), logits, y) == pytest.approx(expected, rel=1e-5)
    n = len(y) // 4 * 4
    sequences, targets = logits[:n].reshape(-1, 4, 10), y[:n].reshape(-1, 4).clone()  # (N, L, C) for (N, L)
    targets[::3, 1] = -100
    kept = targets.reshape(-1) != -100
    kept_loss = skm.log_loss(y[:n][kept].numpy(), F.softmax(logits[:n][kept].double(), 1).numpy(), labels=range(10))
    assert feed(Perplexity(), sequences, targets) == pytest.approx(math.exp(kept_loss), rel=1e-5)


# --- segmentation on thresholded digit images ---


@pytest.fixture(scope="module")
def segmentation() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digit images as masks: targets from the real pixels, logits from the blurred pixels (a crude real model).

    Returns binary logits (N, 2, 8, 8) and masks (N, 8, 8), then 3-class logits (N, 4, 8, 8) (a 4th class that
    never occurs) and 3-class masks from dark / mid / bright pixels.
    """
    images = torch.tensor(load_digits().images, dtype=torch.float32)[:300]
    blurred = F.avg_pool2d(images[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
    binary_logits = torch.stack([torch.zeros_like(blurred), blurred - 6.0], 1)
    centers = torch.tensor([0.0, 8.0, 16.0])
    multi_logits = -((blurred[:, None] - centers[None, :, None, None]) ** 2)
    multi_logits = torch.cat([multi_logits, torch.full_like(blurred[:, None], -1e4)], 1)
    return binary_logits, (images > 7).long(), multi_logits, torch.bucketize(images, torch.tensor([4.5, 11.5]))


def test_dice_and_jaccard_equal_hand_computed_overlap_of_the_whole_epoch(segmentation):
    logits, masks, _, _ = segmentation
    predicted, target = (logits.argmax(1) == 1).numpy(), masks.numpy().astype(bool)
    intersection, sizes = (predicted & target).sum(), predicted.sum() + target.sum()
    assert 0.5 < 2 * intersection / sizes < 0.95
    assert feed(Dice(), logits, masks) == pytest.approx(2 * intersection / sizes, abs=1e-12)
    assert feed(JaccardCoeff(), logits, masks) == pytest.approx(intersection / (sizes - intersection), abs=1e-12)
    sk_jaccard = skm.jaccard_score(target.ravel(), predicted.ravel())
    assert feed(JaccardCoeff(), logits, masks) == pytest.approx(sk_jaccard, abs=1e-12)


def test_dice_multi_sums_per_class_counts_over_the_epoch_and_skips_absent_classes(segmentation):
    _, _, logits, masks = segmentation
    predicted, target = logits.argmax(1).numpy(), masks.numpy()
    assert set(np.unique(target)) == {0, 1, 2}
    per_class = [
        2 * ((predicted == c) & (target == c)).sum() / ((predicted == c).sum() + (target == c).sum()) for c in range(3)
    ]
    assert feed(DiceMulti(), logits, masks) == pytest.approx(np.mean(per_class), abs=1e-12)
    batch_mean = np.mean([feed(DiceMulti(), logits[i : i + 1], masks[i : i + 1]) for i in range(10)])
    assert feed(DiceMulti(), logits[:10], masks[:10]) != pytest.approx(batch_mean, abs=1e-6)


def test_segmentation_accuracy_and_foreground_accuracy_count_pixels(segmentation):
    _, _, logits, masks = segmentation
    predicted, target = logits.argmax(1).numpy().ravel(), masks.numpy().ravel()
    assert feed(as_metric(accuracy), logits, masks) == pytest.approx(skm.accuracy_score(target, predicted), abs=1e-6)
    for background in (0, 2):
        keep = target != background
        expected = (predicted[keep] == target[keep]).mean()
        assert float(foreground_acc(logits, masks, bkg_idx=background)) == pytest.approx(expected, abs=1e-6)
    assert float(foreground_acc(logits, masks)) != pytest.approx(float(accuracy(logits, masks)), abs=1e-3)


# --- AccumMetric with a scikit-learn function, and the contract ---


def test_accum_metric_runs_activation_argmax_thresh_numpy_and_inverted_args(digits, cancer):
    logits, y = digits
    metric = AccumMetric(skm.f1_score, dim_argmax=-1, to_np=True, invert_arg=True, average="macro")
    assert metric.name == "f1_score"
    assert feed(metric, logits, y) == pytest.approx(skm.f1_score(y.numpy(), logits.argmax(1).numpy(), average="macro"))
    logit, target = cancer
    metric = AccumMetric(skm.accuracy_score, activation="sigmoid", thresh=0.8, to_np=True, invert_arg=True)
    expected = skm.accuracy_score(target.numpy(), (torch.sigmoid(logit) >= 0.8).numpy())
    assert feed(metric, logit, target) == pytest.approx(expected)
    softmax_auc = AccumMetric(
        lambda targs, probs: skm.roc_auc_score(targs, probs[:, 1]),
        activation="softmax",
        flatten=False,
        to_np=True,
        invert_arg=True,
    )
    assert feed(softmax_auc, two_logits(logit), target) == pytest.approx(
        skm.roc_auc_score(target.numpy(), logit.numpy())
    )


def test_metrics_start_empty_reset_and_never_share_state(digits):
    logits, y = digits
    for metric in (as_metric(accuracy), F1Score(average="macro"), Perplexity(), Dice(), DiceMulti(), as_metric(rmse)):
        assert metric.value is None
    first, second = as_metric(accuracy), as_metric(accuracy)
    assert first is not second
    first.accumulate(logits[:10], y[:10])
    assert second.value is None
    first.reset()
    assert first.value is None
    f1 = F1Score(average="micro")
    assert as_metric(f1) is f1
    assert json.dumps({m.name: feed(m, logits, y) for m in (as_metric(accuracy), f1)})  # plain floats


def test_bad_metrics_and_settings_fail_with_the_fix(digits):
    with pytest.raises(TypeError, match=r"F1Score\(\)"):
        as_metric(F1Score)
    with pytest.raises(TypeError, match="int"):
        as_metric(3)
    with pytest.raises(ValueError, match="'softmx'"):
        AccumMetric(skm.accuracy_score, activation="softmx")
    with pytest.raises(ValueError, match="dim_argmax"):
        feed(AccumMetric(skm.accuracy_score), *digits)
    with pytest.raises(ValueError, match=r"\(10, 3\)"):
        mse(torch.zeros(10, 3), torch.zeros(10))
