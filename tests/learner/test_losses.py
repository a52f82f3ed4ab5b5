"""Losses match torch's functional losses on real outputs, decode as promised and rebuild from a JSON config."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

from lamina.learner.losses import (
    BCELossFlat,
    BCEWithLogitsLossFlat,
    CrossEntropyLossFlat,
    DiceLoss,
    FocalLoss,
    FocalLossFlat,
    L1LossFlat,
    LabelSmoothingCrossEntropy,
    MSELossFlat,
    focal_loss,
    soft_dice_loss,
)


def close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> bool:
    return actual.shape == expected.shape and torch.allclose(actual, expected, rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out logits (N, 10) of a softmax regression fitted by gradient descent on 1000 digits, and labels."""
    data = load_digits()
    x, y = torch.tensor(data.data / 16, dtype=torch.float32), torch.tensor(data.target)
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    for _ in range(100):
        model.zero_grad()
        F.cross_entropy(model(x[:1000]), y[:1000]).backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= 0.5 * param.grad
    with torch.no_grad():
        return model(x[1000:]), y[1000:]


@pytest.fixture(scope="module")
def segmentation() -> tuple[torch.Tensor, torch.Tensor]:
    """3-class masks of 200 digit images (dark / mid / bright pixels) and logits (N, 3, 8, 8) from blurred pixels."""
    images = torch.tensor(load_digits().images[:200], dtype=torch.float32)
    blurred = F.avg_pool2d(images[:, None], 3, stride=1, padding=1, count_include_pad=False)
    logits = -((blurred - torch.tensor([0.0, 8.0, 16.0])[None, :, None, None]) ** 2) / 16
    return logits, torch.bucketize(images, torch.tensor([4.5, 11.5]))


@pytest.fixture(scope="module")
def cancer() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, 1) of a least-squares linear score on standardized breast cancer features, and 0/1 labels."""
    data = load_breast_cancer()
    x = torch.tensor((data.data - data.data.mean(0)) / data.data.std(0), dtype=torch.float32)
    y = torch.tensor(data.target)
    coef = torch.linalg.lstsq(x[:300], (2 * y[:300] - 1).float()[:, None]).solution
    return 3 * x[300:] @ coef, y[300:]


# --- cross-entropy and friends ---


def test_flat_cross_entropy_equals_cross_entropy_on_reshaped_segmentation_logits(segmentation):
    logits, masks = segmentation
    flat_logits, flat_masks = logits.permute(0, 2, 3, 1).reshape(-1, 3), masks.reshape(-1)
    expected = F.cross_entropy(flat_logits, flat_masks)
    assert close(CrossEntropyLossFlat(axis=1)(logits, masks), expected)
    per_pixel = CrossEntropyLossFlat(axis=1, reduction="none")(logits, masks)
    assert close(per_pixel, F.cross_entropy(logits, masks, reduction="none"))
    channels_last = logits.permute(0, 2, 3, 1)
    assert close(CrossEntropyLossFlat(axis=-1)(channels_last, masks), expected)
    summed = CrossEntropyLossFlat(axis=1, reduction="sum")(logits, masks)
    assert close(summed, F.cross_entropy(flat_logits, flat_masks, reduction="sum"), tol=1e-4)


def test_flat_cross_entropy_passes_weight_ignore_index_and_label_smoothing(digits):
    logits, y = digits
    targets = y.clone()
    targets[::7] = -1
    weight = torch.linspace(0.5, 2.0, 10)
    loss_func = CrossEntropyLossFlat(weight=weight.tolist(), ignore_index=-1, label_smoothing=0.2)
    expected = F.cross_entropy(logits, targets, weight=weight, ignore_index=-1, label_smoothing=0.2)
    assert close(loss_func(logits, targets), expected)
    assert not close(CrossEntropyLossFlat()(logits, y), expected)


def test_cross_entropy_activation_and_decodes_give_softmax_and_argmax(digits, segmentation):
    logits, y = digits
    loss_func = CrossEntropyLossFlat()
    assert close(loss_func.activation(logits), F.softmax(logits, dim=-1))
    assert torch.equal(loss_func.decodes(logits), logits.argmax(-1))
    expected_accuracy = skm.accuracy_score(y.numpy(), logits.argmax(-1).numpy())
    assert (loss_func.decodes(logits) == y).float().mean().item() == pytest.approx(expected_accuracy)
    seg_logits, _ = segmentation
    seg_loss = CrossEntropyLossFlat(axis=1)
    assert close(seg_loss.activation(seg_logits).sum(1), torch.ones(200, 8, 8))
    assert torch.equal(seg_loss.decodes(seg_logits), seg_logits.argmax(1))


def test_a_wrong_axis_is_reported_with_the_fix(segmentation):
    logits, masks = segmentation
    with pytest.raises(ValueError, match=r"axis=-1.*use axis=1"):
        CrossEntropyLossFlat(axis=-1)(logits, masks)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_cross_entropy_equals_torch_label_smoothing(digits, eps, reduction):
    logits, y = digits
    expected = F.cross_entropy(logits, y, label_smoothing=eps, reduction=reduction)
    assert close(LabelSmoothingCrossEntropy(eps=eps, reduction=reduction)(logits, y), expected, tol=1e-4)


def test_label_smoothing_cross_entropy_flattens_segmentation_with_axis_1(segmentation):
    logits, masks = segmentation
    expected = F.cross_entropy(logits, masks, label_smoothing=0.1)
    assert close(LabelSmoothingCrossEntropy(eps=0.1, axis=1)(logits, masks), expected)
    assert torch.equal(LabelSmoothingCrossEntropy(axis=1).decodes(logits), logits.argmax(1))


# --- focal loss ---


@pytest.mark.parametrize("weight", [None, [float(w) for w in range(1, 11)]])
def test_focal_loss_with_gamma_zero_is_cross_entropy(digits, weight):
    logits, y = digits
    weight_tensor = None if weight is None else torch.tensor(weight)
    for reduction in ("mean", "sum", "none"):
        expected = F.cross_entropy(logits, y, weight=weight_tensor, reduction=reduction)
        assert close(FocalLoss(gamma=0.0, weight=weight, reduction=reduction)(logits, y), expected, tol=1e-4)


def test_focal_loss_down_weights_well_classified_items_by_one_minus_p_to_the_gamma(digits):
    logits, y = digits
    log_probs = F.log_softmax(logits.double(), 1).numpy()[np.arange(len(y)), y.numpy()]
    expected = -((1 - np.exp(log_probs)) ** 2) * log_probs
    per_item = FocalLoss(gamma=2.0, reduction="none")(logits, y)
    assert np.allclose(per_item.numpy(), expected, rtol=1e-4, atol=1e-6)
    assert FocalLoss(gamma=2.0)(logits, y) < F.cross_entropy(logits, y) / 2


def test_focal_loss_flat_on_segmentation_equals_focal_loss_on_flattened_pixels(segmentation):
    logits, masks = segmentation
    flat = focal_loss(logits.permute(0, 2, 3, 1).reshape(-1, 3), masks.reshape(-1), gamma=1.5)
    assert close(FocalLossFlat(axis=1, gamma=1.5)(logits, masks), flat)
    assert close(FocalLoss(gamma=1.5)(logits, masks), flat)  # classes on dim 1, like F.cross_entropy
    assert close(FocalLossFlat(axis=-1, gamma=1.5)(logits.permute(0, 2, 3, 1), masks), flat)
    assert torch.equal(FocalLossFlat(axis=-1).decodes(logits.permute(0, 2, 3, 1)), logits.argmax(1))
    per_pixel = FocalLossFlat(axis=1, gamma=1.5, reduction="none")(logits, masks)
    assert per_pixel.shape == masks.shape


# --- binary and regression losses ---


def test_bce_with_logits_flat_matches_torch_and_decodes_by_probability_threshold(cancer):
    logit, y = cancer
    assert logit.shape == (len(y), 1)
    expected = F.binary_cross_entropy_with_logits(logit[:, 0], y.float())
    assert close(BCEWithLogitsLossFlat()(logit, y), expected)
    weighted = F.binary_cross_entropy_with_logits(logit[:, 0], y.float(), pos_weight=torch.tensor([3.0]))
    assert close(BCEWithLogitsLossFlat(pos_weight=[3.0])(logit, y), weighted)
    for thresh in (0.5, 0.3):
        decoded = BCEWithLogitsLossFlat(thresh=thresh).decodes(logit)
        assert torch.equal(decoded, logit > math.log(thresh / (1 - thresh)))
    assert close(BCEWithLogitsLossFlat().activation(logit), torch.sigmoid(logit))


def test_bce_flat_takes_probabilities_and_matches_log_loss(cancer):
    logit, y = cancer
    probs = torch.sigmoid(logit.double())
    expected = skm.log_loss(y.numpy(), probs.numpy().ravel())
    assert BCELossFlat()(probs, y).item() == pytest.approx(expected, rel=1e-6)
    assert torch.equal(BCELossFlat(thresh=0.7).decodes(probs), probs > 0.7)
    assert torch.equal(BCELossFlat().activation(probs), probs)


def test_mse_and_l1_flat_equal_sklearn_errors_of_a_least_squares_fit():
    data = load_diabetes()
    x = torch.tensor(np.c_[data.data, np.ones(len(data.data))], dtype=torch.float64)
    y = torch.tensor(data.target)
    pred = x[300:] @ torch.linalg.lstsq(x[:300], y[:300, None]).solution  # (N, 1) for (N,) targets
    assert MSELossFlat()(pred, y[300:]).item() == pytest.approx(skm.mean_squared_error(y[300:], pred.ravel()))
    assert L1LossFlat()(pred, y[300:]).item() == pytest.approx(skm.mean_absolute_error(y[300:], pred.ravel()))
    assert MSELossFlat(reduction="none")(pred, y[300:]).shape == y[300:].shape
    assert L1LossFlat(reduction="sum")(pred, y[300:]).item() == pytest.approx(float((pred[:, 0] - y[300:]).abs().sum()))
    assert torch.equal(MSELossFlat().decodes(pred), pred)
    with pytest.raises(ValueError, match=r"\(142, 1\).*\(10,\)"):
        MSELossFlat()(pred, y[:10])


# --- dice loss ---


def test_dice_loss_is_one_minus_soft_dice_per_image_and_class(segmentation):
    logits, masks = segmentation
    probs = F.softmax(logits.double(), 1).numpy()
    one_hot = np.stack([(masks.numpy() == c) for c in range(3)], 1)
    intersection, sizes = (probs * one_hot).sum((2, 3)), (probs + one_hot).sum((2, 3))
    expected = 1 - (2 * intersection + 1.0) / (sizes + 1.0)
    per_item = DiceLoss(reduction="none")(logits.double(), masks)
    assert per_item.shape == (200, 3)
    assert np.allclose(per_item.numpy(), expected)
    assert DiceLoss()(logits.double(), masks).item() == pytest.approx(expected.mean())
    confident = F.one_hot(masks, 3).permute(0, 3, 1, 2).double() * 50
    assert DiceLoss(smooth=0.0)(confident, masks).item() == pytest.approx(0.0, abs=1e-12)
    assert torch.equal(DiceLoss().decodes(logits), logits.argmax(1))


def test_soft_dice_loss_refuses_mismatched_shapes(segmentation):
    logits, masks = segmentation
    with pytest.raises(ValueError, match=r"\(200, 3, 8, 8\)"):
        soft_dice_loss(F.softmax(logits, 1), masks[:, :4])


# --- the contract shared by every loss: config round trip, gradients, validation ---

CONFIGURED = [
    CrossEntropyLossFlat(axis=1, weight=[1.0, 2.0, 0.5], ignore_index=2, label_smoothing=0.1, reduction="sum"),
    LabelSmoothingCrossEntropy(eps=0.2, reduction="sum", axis=1),
    FocalLoss(gamma=1.0, weight=[0.5, 1.0, 2.0]),
    FocalLossFlat(axis=1, gamma=3.0, reduction="sum"),
    DiceLoss(axis=1, smooth=0.5, reduction="sum"),
]


@pytest.mark.parametrize("loss_func", CONFIGURED, ids=lambda loss: type(loss).__name__)
def test_config_survives_json_and_rebuilds_the_same_loss(segmentation, loss_func):
    logits, masks = segmentation
    config = json.loads(json.dumps(loss_func.get_config()))
    rebuilt = type(loss_func)(**config)
    assert rebuilt.get_config() == loss_func.get_config()
    assert close(rebuilt(logits, masks), loss_func(logits, masks))
    default = type(loss_func)(**({"axis": 1} if "axis" in config else {}))
    assert not close(default(logits, masks), loss_func(logits, masks))  # the config matters


@pytest.mark.parametrize(
    "loss_func",
    [BCEWithLogitsLossFlat(thresh=0.3, pos_weight=[2.0], reduction="sum"), BCELossFlat(thresh=0.6), MSELossFlat("sum")],
    ids=lambda loss: type(loss).__name__,
)
def test_binary_and_regression_configs_rebuild(cancer, loss_func):
    logit, y = cancer
    pred = torch.sigmoid(logit) if isinstance(loss_func, BCELossFlat) else logit
    rebuilt = type(loss_func)(**json.loads(json.dumps(loss_func.get_config())))
    assert rebuilt.get_config() == loss_func.get_config()
    assert close(rebuilt(pred, y), loss_func(pred, y))


def test_every_loss_passes_gradients_to_the_logits(segmentation):
    logits, masks = segmentation
    for loss_func in CONFIGURED:
        leaf = logits.clone().requires_grad_()
        loss_func(leaf, masks).backward()
        assert leaf.grad is not None and leaf.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CrossEntropyLossFlat(reduction="avg"), "'avg'"),
        (lambda: FocalLoss(gamma=-1.0), "gamma must be >= 0.0, got -1.0"),
        (lambda: LabelSmoothingCrossEntropy(eps=1.5), r"eps must be in \[0.0, 1.0\], got 1.5"),
        (lambda: CrossEntropyLossFlat(weight=[[1.0, 2.0]]), r"1-D.*\(1, 2\)"),
        (lambda: DiceLoss(smooth=-1.0), "smooth must be >= 0.0"),
        (lambda: BCEWithLogitsLossFlat(thresh=2.0), "thresh"),
    ],
)
def test_bad_settings_fail_at_construction_naming_the_value(build, message):
    with pytest.raises(ValueError, match=message):
        build()
