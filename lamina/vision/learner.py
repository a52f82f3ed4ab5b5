"""Vision learners: a pretrained body with a new head (classification, multi-label, regression, keypoints), a U-Net.

``vision_learner`` builds a registered architecture, loads its pretrained weights, cuts it at its pooling layer,
puts a new head on it (``n_out`` from the data), freezes the body and adds the weights' normalization to the
batch transforms. ``unet_learner`` puts a ``DynamicUnet`` decoder on the same body for segmentation. Both record
``learn.app = "vision"`` and a JSON-safe ``learn.model_spec`` (``"vision_classifier"`` / ``"vision_unet"``), so
``learn.export()`` writes a pickle-free file that :func:`lamina.learner.load_learner` rebuilds without the
training data (see :mod:`lamina.vision.export`).

Keypoints are learned in ``[-1, 1]`` coordinates: :class:`ScalePoints` maps pixel points there per batch (after
the augmentations) and back in ``decodes``; the head ends in ``SigmoidRange(-1, 1)`` and :class:`ReshapePoints`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lamina.core.tensors import TensorMask, TensorMultiCategory, TensorPoint
from lamina.core.transform import Pipeline, Transform, exportable
from lamina.data.load import DataLoader, DataLoaders
from lamina.data.transforms import Normalize, imagenet_stats
from lamina.learner.export import warn_if_not_exportable
from lamina.learner.learner import Learner
from lamina.learner.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from lamina.learner.metrics import DiceMulti, mae
from lamina.nn.registry import build_model, register_model, registered_name
from lamina.vision.core import LoadImage
from lamina.vision.models import (
    LIBRARIES,
    PRETRAINED_WEIGHTS,
    ArchInfo,
    DynamicUnet,
    arch_info,
    body_splitter,
    create_body,
    create_head,
    library_arch_name,
    load_pretrained,
    num_features_model,
    unet_splitter,
)

__all__ = [
    "TARGET_KINDS",
    "ReshapePoints",
    "ScalePoints",
    "VisionLearner",
    "image_load_step",
    "target_kind",
    "unet_learner",
    "vision_classifier",
    "vision_learner",
    "vision_loss",
    "vision_unet",
]

TARGET_KINDS = ("single", "multi", "regression", "points", "mask")
Arch = str | Callable[[], nn.Module] | nn.Module


# ---------------------------------------------------------------- keypoints


def _size_of(x: TensorPoint) -> Tensor:
    size = x.__dict__.get("img_size")
    if size is None:
        raise ValueError("ScalePoints needs points with img_size (width, height): build them with PointBlock()")
    return torch.tensor([float(size[0]), float(size[1])], device=x.device)


@exportable
class ScalePoints(Transform):
    """Pixel points ``(x, y)`` of an image of ``img_size`` ``(width, height)`` to ``[-1, 1]``, and back in decodes.

    A batch transform placed after the augmentations (which move points in pixels).

    Examples:
        >>> pts = TensorPoint(torch.tensor([[[0.0, 8.0], [16.0, 4.0]]]), img_size=(16, 8))
        >>> scaled = ScalePoints()(pts)
        >>> scaled.tolist(), ScalePoints().decode(scaled).tolist()
        ([[[-1.0, 1.0], [1.0, 0.0]]], [[[0.0, 8.0], [16.0, 4.0]]])
    """

    order = 100  # after the batch augmentations and Normalize (99)

    def encodes(self, x: TensorPoint) -> TensorPoint:
        return TensorPoint(x.as_plain() * 2 / _size_of(x) - 1, img_size=x.__dict__.get("img_size"))

    def decodes(self, x: TensorPoint) -> TensorPoint:
        return TensorPoint((x.as_plain() + 1) * _size_of(x) / 2, img_size=x.__dict__.get("img_size"))


class ReshapePoints(nn.Module):
    """The last layer of a keypoint head: ``B x 2N`` outputs to ``B x N x 2`` points.

    Examples:
        >>> ReshapePoints(3)(torch.zeros(4, 6)).shape
        torch.Size([4, 3, 2])
    """

    def __init__(self, n_points: int) -> None:
        super().__init__()
        if n_points < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        self.n_points = n_points

    def forward(self, x: Tensor) -> Tensor:
        """Reshape the outputs into points."""
        return x.view(x.shape[0], self.n_points, 2)


# ---------------------------------------------------------------- registered builders


@register_model("vision_classifier")
def vision_classifier(
    arch: str,
    n_out: int,
    n_in: int = 3,
    cut: int | None = None,
    lin_ftrs: Sequence[int] | None = None,
    ps: float = 0.5,
    concat_pool: bool = True,
    y_range: Sequence[float] | None = None,
    n_points: int | None = None,
) -> nn.Sequential:
    """``nn.Sequential(body, head)`` of the registered ``arch`` (randomly initialized), as ``vision_learner`` builds.

    Args:
        arch: a registered architecture name (``"resnet18"``, ``"mobilenet_v2"``...).
        n_out: the head's outputs.
        n_in: the input channels.
        cut: where to cut the network (found by probing when ``None``).
        lin_ftrs: hidden sizes of the head.
        ps: dropout of the head.
        concat_pool: average and max pooling concatenated.
        y_range: squash the outputs into ``(low, high)``.
        n_points: end with :class:`ReshapePoints` (keypoints; ``n_out == 2 * n_points``).

    Examples:
        >>> vision_classifier("xresnet18", 3, lin_ftrs=[8]).eval()(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 3])
    """
    return _classifier(build_model(arch), n_out, n_in, cut, lin_ftrs, ps, concat_pool, y_range, n_points)


def _classifier(
    model: nn.Module,
    n_out: int,
    n_in: int,
    cut: int | None,
    lin_ftrs: Sequence[int] | None,
    ps: float,
    concat_pool: bool,
    y_range: Sequence[float] | None,
    n_points: int | None,
) -> nn.Sequential:
    body = create_body(model, cut=cut, n_in=n_in)
    bounds = None if y_range is None else (float(y_range[0]), float(y_range[1]))
    head = create_head(num_features_model(body), n_out, lin_ftrs=lin_ftrs, ps=ps, concat_pool=concat_pool,
                       y_range=bounds)  # fmt: skip
    if n_points is not None:
        if n_out != 2 * n_points:
            raise ValueError(f"keypoints need n_out = 2 * n_points = {2 * n_points}, got n_out={n_out}")
        head.append(ReshapePoints(n_points))
    return nn.Sequential(body, head)


@register_model("vision_unet")
def vision_unet(
    arch: str, n_out: int, img_size: Sequence[int], n_in: int = 3, cut: int | None = None, **unet_kwargs: Any
) -> DynamicUnet:
    """A ``DynamicUnet`` over the body of the registered ``arch`` (randomly initialized), as ``unet_learner`` builds.

    Args:
        arch: a registered architecture name.
        n_out: output channels (classes).
        img_size: ``(height, width)`` used to probe the encoder.
        n_in: the input channels.
        cut: where to cut the network (found by probing when ``None``).
        **unet_kwargs: more ``DynamicUnet`` arguments (``blur``, ``self_attention``, ``y_range``...).

    Examples:
        >>> vision_unet("xresnet18", 2, (32, 32)).eval()(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 2, 32, 32])
    """
    return _unet(build_model(arch), n_out, img_size, n_in, cut, unet_kwargs)


def _unet(
    model: nn.Module, n_out: int, img_size: Sequence[int], n_in: int, cut: int | None, kwargs: dict[str, Any]
) -> DynamicUnet:
    y_range = kwargs.get("y_range")
    kwargs = {**kwargs, **({"y_range": (float(y_range[0]), float(y_range[1]))} if y_range is not None else {})}
    return DynamicUnet(create_body(model, cut=cut, n_in=n_in), n_out, tuple(img_size), **kwargs)


# ---------------------------------------------------------------- targets, losses, data


def target_kind(target: Any) -> str:
    """The kind of a batch's target: ``single``, ``multi``, ``regression``, ``points`` or ``mask``.

    Examples:
        >>> from lamina.core.tensors import TensorCategory
        >>> target_kind(TensorCategory(torch.tensor([0, 1]))), target_kind(TensorPoint(torch.zeros(2, 1, 2)))
        ('single', 'points')
    """
    if isinstance(target, TensorPoint):
        return "points"
    if isinstance(target, TensorMask):
        return "mask"
    if isinstance(target, TensorMultiCategory):
        return "multi"
    if isinstance(target, Tensor) and not target.is_floating_point():
        return "single"
    if isinstance(target, Tensor):
        return "regression"
    raise TypeError(f"cannot tell the kind of a {type(target).__name__} target: pass loss_func= and n_out=")


def vision_loss(kind: str) -> nn.Module:
    """The default loss of a target kind: cross-entropy (single, mask: pixel-wise), BCE (multi), MSE otherwise.

    Examples:
        >>> type(vision_loss("multi")).__name__, vision_loss("mask").axis
        ('BCEWithLogitsLossFlat', 1)
    """
    if kind not in TARGET_KINDS:
        raise ValueError(f"unknown target kind {kind!r}: expected one of {list(TARGET_KINDS)}")
    if kind == "single":
        return CrossEntropyLossFlat()
    if kind == "mask":
        return CrossEntropyLossFlat(axis=1)
    return BCEWithLogitsLossFlat() if kind == "multi" else MSELossFlat()


def _batch_parts(dls: DataLoaders) -> tuple[Tensor, Any]:
    b = dls.train.one_batch()
    if not isinstance(b, tuple) or len(b) <= dls.n_inp:
        raise ValueError("the batches carry no target: vision learners need labelled data (x, y)")
    return b[0], b[dls.n_inp]


def _n_out(kind: str, target: Any, vocab: Sequence[Any] | None, n_out: int | None) -> int:
    """The head's outputs the data needs; an ``n_out`` that contradicts the data is an error."""
    if kind in ("single", "multi") and vocab is not None:
        needed: int | None = len(vocab)
    elif kind == "points":
        needed = 2 * int(target.shape[-2])
    elif kind == "regression":
        needed = int(target.shape[-1]) if target.ndim > 1 else 1
    else:
        needed = None
    if n_out is not None and needed is not None and n_out != needed:
        raise ValueError(
            f"n_out={n_out} does not fit the data, which needs {needed} outputs ({kind} target"
            f"{f' with a vocab of {needed}' if vocab is not None and kind != 'points' else ''}): pass n_out={needed} "
            "or leave it None"
        )
    if n_out is None and needed is None:
        raise ValueError(f"cannot infer n_out for a {kind} target: pass n_out=...")
    return int(n_out if n_out is not None else needed)  # type: ignore[arg-type]


def _with_batch_tfm(dl: DataLoader, tfm: Transform) -> None:
    dl.after_batch = Pipeline([*dl.after_batch.fs, tfm], split_idx=dl.after_batch.split_idx)


def _add_normalize(dls: DataLoaders, n_in: int, stats: tuple[Sequence[float], Sequence[float]]) -> None:
    """Append ``Normalize`` with ``stats`` (averaged over channels unless ``n_in == 3``) where none is yet."""
    if any(isinstance(t, Normalize) for t in dls.train.after_batch.fs):
        return
    mean, std = list(stats[0]), list(stats[1])
    if n_in != len(mean):
        mean, std = [float(np.mean(mean))] * n_in, [float(np.mean(std))] * n_in
    norm = Normalize.from_stats(mean, std)
    for dl in dls.loaders:
        _with_batch_tfm(dl, norm)


def _add_point_scaling(dls: DataLoaders) -> None:
    if not any(isinstance(t, ScalePoints) for t in dls.train.after_batch.fs):
        scale = ScalePoints()
        for dl in dls.loaders:
            _with_batch_tfm(dl, scale)


def image_load_step(dls: DataLoaders) -> LoadImage:
    """The step of ``dls``'s input pipeline that opens images (its ``cls`` is the image class).

    Examples:
        >>> import tempfile
        >>> from lamina.datasets import mnist_digits
        >>> from lamina.vision.factories import ImageDataLoaders
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = mnist_digits(tmp, n=2, name="{digit}/{k}.png")
        ...     dls = ImageDataLoaders.from_folder(tmp, valid_pct=0.5, seed=0, bs=2)
        >>> image_load_step(dls).cls
        'PILImage'
    """
    ds = dls.loaders[1 if len(dls.loaders) > 1 else 0].dataset
    tls = getattr(ds, "tls", None)
    for t in tls[0].tfms.fs if tls else []:
        if isinstance(t, LoadImage):
            return t
    raise TypeError("a vision learner needs Datasets whose input pipeline opens images (ImageBlock / LoadImage)")


# ---------------------------------------------------------------- the learner


class VisionLearner(Learner):
    """A :class:`~lamina.learner.Learner` on images that predicts on a path, a PIL image, an array or a ``PILImage``.

    Args:
        *args: as :class:`~lamina.learner.Learner`.
        target: the kind of target (see :data:`TARGET_KINDS`).
        vocab: the class names (single- and multi-label) or mask codes.
        thresh: the probability above which a label is predicted (multi-label).
        **kwargs: as :class:`~lamina.learner.Learner`.

    Examples:
        >>> issubclass(VisionLearner, Learner)
        True
    """

    def __init__(
        self,
        *args: Any,
        target: str = "single",
        vocab: Sequence[Any] | None = None,
        thresh: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if target not in TARGET_KINDS:
            raise ValueError(f"target must be one of {list(TARGET_KINDS)}, got {target!r}")
        super().__init__(*args, **kwargs)
        self.target, self.vocab, self.thresh = target, None if vocab is None else list(vocab), thresh

    def show_results(self, **kwargs: Any) -> Any:
        """Inputs with targets and predictions for one batch; see :func:`lamina.vision.interpret.show_results`."""
        from lamina.vision.interpret import show_results

        return show_results(self, **kwargs)

    def interpret(self, **kwargs: Any) -> Any:
        """A :class:`~lamina.vision.interpret.ClassificationInterpretation` (or segmentation) of the validation set."""
        from lamina.vision.interpret import ClassificationInterpretation, SegmentationInterpretation

        seg = target_kind(self._target_example()) == "mask"
        cls = SegmentationInterpretation if seg else ClassificationInterpretation
        return cls.from_learner(self, **kwargs)

    def _item(self, item: Any) -> Any:
        if isinstance(item, (str, Path)):
            return item
        return image_load_step(self.dls)._image_cls.create(item)

    def predict(self, item: Any) -> tuple[Any, Tensor, Tensor]:
        """Predict one image: a file path, a PIL image, an ``H x W [x C]`` uint8 array or a lamina image.

        Returns:
            ``(decoded, index, probs)``: the label (list of labels for multi-label, pixel points of the model's
            input image for keypoints, codes for masks, values for regression), the decoded tensor and the
            activated outputs.
        """
        dl = self.dls.test_dl([self._item(item)])
        inp, preds, _, dec = self.get_preds(dl=dl, with_input=True, with_decoded=True)
        return self._decode(preds[0], dec[0], inp[0][0])

    def _decode(self, probs: Tensor, dec: Tensor, image: Tensor) -> tuple[Any, Tensor, Tensor]:
        if self.target == "single":
            index = int(dec)
            return (self.vocab[index] if self.vocab else index), dec, probs
        if self.target == "multi":
            hot = probs > self.thresh
            names = [self.vocab[i] if self.vocab else i for i in torch.nonzero(hot).flatten().tolist()]
            return names, hot, probs
        if self.target == "points":
            size = (int(image.shape[-1]), int(image.shape[-2]))
            pixels = ScalePoints().decode(TensorPoint(probs, img_size=size))
            return pixels.as_plain(), dec, probs
        return dec, dec, probs


def _arch_name(arch: Arch, factory: str) -> str | None:
    """The registry name of ``arch`` (a name, a registered builder, a timm/torchvision constructor or timm network);
    ``None`` warns that the learner won't export."""
    if isinstance(arch, str):
        return arch
    name = (None if isinstance(arch, nn.Module) else registered_name(arch)) or library_arch_name(arch)
    if name is None:
        label = type(arch).__name__ if isinstance(arch, nn.Module) else getattr(arch, "__name__", arch)
        warnings.warn(
            f"{factory}: {label!r} is not a registered model, so this learner will not "
            "export (an export rebuilds the model by its registered name). Register it with "
            "@lamina.nn.register_model('a_name') on a function whose arguments are JSON-safe, then pass it or its name",
            UserWarning,
            stacklevel=3,
        )
    return name


def _pretrained_model(
    arch: Arch, name: str | None, pretrained: bool, weights: str | Path | None, base: str | Path | None = None
) -> tuple[nn.Module, bool]:
    """The full network of ``arch`` with its pretrained weights loaded when asked; and whether it is pretrained.

    A network passed as a module keeps its own weights (pretrained unless ``pretrained=False``) unless ``weights`` is
    given; timm and torchvision weights come only from a local ``weights`` file, never from a download.
    """
    if isinstance(arch, nn.Module):
        model = arch
    elif name is not None or isinstance(arch, str):
        model = build_model(name if name is not None else str(arch))
    else:
        model = arch()
    if not isinstance(model, nn.Module):
        raise TypeError(f"arch must be a registered name or a callable returning an nn.Module, got {model!r}")
    label = name if name is not None else getattr(arch, "__name__", type(arch).__name__)
    if not pretrained:
        return model, False
    if weights is None and isinstance(arch, nn.Module):
        return model, True
    library = label.split("/", 1)[0] if "/" in label else None
    if weights is None and library in LIBRARIES:
        raise ValueError(
            f"{label!r}: lamina never downloads {library} weights; pass weights=<a local .pth/.safetensors file of "
            f"this architecture> (timm's and torchvision's own checkpoints load as they are), or pretrained=False to "
            "start from random weights"
        )
    if weights is None and label not in PRETRAINED_WEIGHTS:
        warnings.warn(
            f"{label!r} has no published weights: it trains from scratch. Pass weights=<file>, pretrained=False, or "
            f"use one of {sorted(PRETRAINED_WEIGHTS)}",
            UserWarning,
            stacklevel=3,
        )
        return model, False
    return load_pretrained(model, label, weights=weights, base=base), True


def _prepare(
    dls: DataLoaders, n_in: int | None, normalize: bool, loaded: bool, kind: str, x: Tensor, info: ArchInfo
) -> int:
    """The input channels (from the batch when ``None``); add the weights' normalization (the architecture's own
    statistics, else ImageNet's) and point scaling to ``dls``."""
    n_in = int(x.shape[1]) if n_in is None else n_in
    if normalize and loaded:
        _add_normalize(dls, n_in, info.stats or imagenet_stats)
    if kind == "points":
        _add_point_scaling(dls)
    return n_in


def vision_learner(
    dls: DataLoaders,
    arch: Arch,
    pretrained: bool = True,
    weights: str | Path | None = None,
    n_out: int | None = None,
    loss_func: Any = None,
    metrics: Any = None,
    normalize: bool = True,
    n_in: int | None = None,
    cut: int | None = None,
    lin_ftrs: Sequence[int] | None = None,
    ps: float = 0.5,
    concat_pool: bool = True,
    y_range: Sequence[float] | None = None,
    **learner_kwargs: Any,
) -> VisionLearner:
    """A learner: the pretrained body of ``arch`` (frozen when weights were loaded), a new head for ``dls``.

    Args:
        dls: image DataLoaders (category, multi-category, regression or point targets).
        arch: a registered name (``"resnet34"``, ``"mobilenet_v2"``, ``"timm/resnet50"``,
            ``"torchvision/resnet18"``...), a builder (``mobilenet_v2``, ``torchvision.models.resnet18``) or a network
            (``timm.create_model(...)``: used with its own weights); an unregistered callable or module works but the
            learner will not export (a warning says so). timm and torchvision networks bring their cut and
            normalization statistics (see :func:`~lamina.vision.models.arch_info`).
        pretrained: load the published weights (or ``weights``); offline without them is an error; timm and
            torchvision weights are never downloaded: pass ``weights`` or ``pretrained=False``.
        weights: an explicit weights file.
        n_out: the head's outputs (from the vocab or the targets when ``None``; a contradiction is an error).
        loss_func: chosen from the target kind when ``None`` (see :func:`vision_loss`).
        metrics: metrics computed on the validation set.
        normalize: add the weights' normalization (ImageNet stats) to the batch transforms.
        n_in: input channels (from the data when ``None``).
        cut: where to cut the network (from its metadata, else found by probing, when ``None``).
        lin_ftrs: hidden sizes of the head.
        ps: dropout of the head.
        concat_pool: average and max pooling concatenated.
        y_range: squash the outputs into ``(low, high)``; ``(-1, 1)`` for keypoints.
        **learner_kwargs: passed to :class:`VisionLearner` (``lr``, ``cbs``, ``path``, ``thresh``...).

    Examples:
        >>> vision_learner(None, "resnt18")
        Traceback (most recent call last):
        ...
        ValueError: unknown model 'resnt18'; did you mean 'resnet18'...
    """
    name = _arch_name(arch, "vision_learner")
    model, loaded = _pretrained_model(arch, name, pretrained, weights)
    info = arch_info(model, name)
    cut = info.cut if cut is None else cut
    x, target = _batch_parts(dls)
    kind = target_kind(target)
    n_out = _n_out(kind, target, dls.vocab, n_out)
    n_points = n_out // 2 if kind == "points" else None
    y_range = (-1.0, 1.0) if kind == "points" and y_range is None else y_range
    n_in = _prepare(dls, n_in, normalize, loaded, kind, x, info)
    head: dict[str, Any] = {"lin_ftrs": None if lin_ftrs is None else list(lin_ftrs), "ps": ps,
                            "concat_pool": concat_pool,
                            "y_range": None if y_range is None else [float(v) for v in y_range]}  # fmt: skip
    net = _classifier(model, n_out, n_in, cut, n_points=n_points, **head)
    learn = VisionLearner(dls, net, loss_func=loss_func if loss_func is not None else vision_loss(kind),
                          metrics=metrics, splitter=body_splitter, target=kind, vocab=dls.vocab,
                          **learner_kwargs)  # fmt: skip
    if loaded:  # a random body has nothing to keep: it trains from the start
        learn.freeze()
    learn.app = "vision"
    if name is not None:
        kwargs = {"arch": name, "n_out": n_out, "n_in": n_in, "cut": cut, "n_points": n_points, **head}
        learn.model_spec = {"name": "vision_classifier", "kwargs": kwargs}
        warn_if_not_exportable(learn, "vision_learner")
    return learn


def _mask_codes(dls: DataLoaders) -> list[Any] | None:
    for t in dls.train.after_item.fs:
        codes = getattr(t, "codes", None)
        if codes is not None:
            return list(codes)
    return None


def unet_learner(
    dls: DataLoaders,
    arch: Arch,
    pretrained: bool = True,
    weights: str | Path | None = None,
    n_out: int | None = None,
    loss_func: Any = None,
    metrics: Any = None,
    normalize: bool = True,
    n_in: int | None = None,
    img_size: Sequence[int] | None = None,
    cut: int | None = None,
    **kwargs: Any,
) -> VisionLearner:
    """A segmentation learner: a ``DynamicUnet`` decoder over the (frozen, pretrained) body of ``arch``.

    Args:
        dls: segmentation DataLoaders (images and masks of integer codes), or image-to-image DataLoaders.
        arch: a registered name (``"timm/resnet18"`` too), a callable returning the network, or a network.
        pretrained: load the published weights (or ``weights``; timm/torchvision: only ``weights``).
        weights: an explicit weights file.
        n_out: classes (from the mask codes when ``None``).
        loss_func: pixel-wise ``CrossEntropyLossFlat(axis=1)`` for masks, ``MSELossFlat()`` for image targets, when
            ``None``.
        metrics: chosen by the target when ``None``: ``[DiceMulti()]`` for masks, ``[mae]`` for image targets.
        normalize: add the weights' normalization to the batch transforms.
        n_in: input channels (from the data when ``None``).
        img_size: ``(height, width)`` to probe the encoder (the batches' when ``None``).
        cut: where to cut the network.
        **kwargs: ``DynamicUnet`` arguments (``blur``, ``self_attention``, ``y_range``, ``last_cross``,
            ``bottle``, ``norm_type``) and :class:`VisionLearner` arguments.

    Examples:
        >>> unet_learner(None, "xresnet1")
        Traceback (most recent call last):
        ...
        ValueError: unknown model 'xresnet1'; did you mean 'xresnet18'...
    """
    unet_keys = ("blur", "self_attention", "y_range", "last_cross", "bottle", "norm_type")
    unet_kwargs = {k: kwargs.pop(k) for k in unet_keys if k in kwargs}
    name = _arch_name(arch, "unet_learner")
    model, loaded = _pretrained_model(arch, name, pretrained, weights)
    info = arch_info(model, name)
    cut = info.cut if cut is None else cut
    x, target = _batch_parts(dls)
    kind, codes = _unet_kind(target), _mask_codes(dls)
    n_out = _unet_n_out(kind, target, codes, n_out)
    size = [int(s) for s in (x.shape[-2:] if img_size is None else img_size)]
    n_in = _prepare(dls, n_in, normalize, loaded, "mask", x, info)
    net = _unet(model, n_out, size, n_in, cut, unet_kwargs)
    metrics = ([DiceMulti()] if kind == "mask" else [mae]) if metrics is None else metrics
    learn = VisionLearner(dls, net, loss_func=loss_func if loss_func is not None else vision_loss(kind),
                          metrics=metrics, splitter=unet_splitter, target=kind, vocab=codes, **kwargs)  # fmt: skip
    if loaded:  # a random body has nothing to keep: it trains from the start
        learn.freeze()
    learn.app = "vision"
    if name is not None:
        spec_kwargs = {"arch": name, "n_out": n_out, "img_size": size, "n_in": n_in, "cut": cut, **unet_kwargs}
        learn.model_spec = {"name": "vision_unet", "kwargs": spec_kwargs}
        warn_if_not_exportable(learn, "unet_learner")
    return learn


def _unet_kind(target: Any) -> str:
    """``"mask"`` for segmentation masks, ``"regression"`` for image targets (image to image); others are refused."""
    kind = target_kind(target)
    if kind not in ("mask", "regression") or (kind == "regression" and target.ndim != 4):
        raise TypeError(
            f"unet_learner needs mask targets (MaskBlock) or image targets (ImageBlock as the target), got a {kind} "
            f"target of shape {tuple(target.shape)}: use vision_learner for labels, points or values"
        )
    return kind


def _unet_n_out(kind: str, target: Tensor, codes: list[Any] | None, n_out: int | None) -> int:
    """The output channels: the mask codes' count, or the target images' channels."""
    if n_out is not None:
        return n_out
    if kind == "regression":
        return int(target.shape[1])
    if codes is None:
        raise ValueError("the masks have no codes to count the classes: pass n_out= or MaskBlock(codes=...)")
    return len(codes)
