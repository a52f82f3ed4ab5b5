"""Export and reload vision learners: the inference data pipeline as data, no pickle, no training code.

The export's JSON holds the task kind, the vocab (or mask codes), the image class opened from files, the
validation item transforms (``Resize``...) and batch transforms (``IntToFloatTensor``, ``Normalize`` with its
statistics, ``ScalePoints``), each by registered class name + configuration + state
(:func:`~lamina.core.transform.transform_to_state`). Training-only transforms (augmentations) are left out.
``rebuild`` gives a :class:`~lamina.vision.learner.VisionLearner` whose ``predict(path | PIL | array)`` and
``dls.test_dl(files)`` work without the training data or the functions that labelled it.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from torch import Tensor, nn

from lamina.core.serial import SerialError
from lamina.core.transform import Transform, transform_from_state, transform_to_state
from lamina.data.core import Datasets
from lamina.data.load import DataLoader, DataLoaders
from lamina.learner.export import ExportError, model_n_out, register_app
from lamina.learner.learner import Learner
from lamina.vision.core import LoadImage
from lamina.vision.image import PILImage
from lamina.vision.learner import TARGET_KINDS, VisionLearner, image_load_step, vision_loss

__all__ = ["describe_vision", "inference_dataloaders", "rebuild_vision"]


def _states(tfms: list[Transform], tensors: dict[str, Tensor], key: str) -> list[dict[str, Any]]:
    """The validation-time transforms of a pipeline as data; one that cannot be described is an error."""
    out = []
    for i, t in enumerate(t for t in tfms if t.split_idx != 0):
        try:
            out.append(transform_to_state(t, tensors, f"app.{key}.{i}"))
        except SerialError as e:
            raise ExportError(f"cannot export the {key} step {t.name}: {e}") from None
    return out


def describe_vision(learn: Learner, tensors: dict[str, Tensor]) -> dict[str, Any]:
    """The JSON-safe data description of a vision learner (transforms' tensors go into ``tensors``).

    Args:
        learn: a learner from ``vision_learner`` / ``unet_learner``.
        tensors: receives the tensors of the transforms' state.

    Examples:
        >>> describe_vision(Learner.__new__(Learner), {})
        Traceback (most recent call last):
        ...
        lamina.learner.export.ExportError: only a VisionLearner (vision_learner, unet_learner) ...
    """
    if not isinstance(learn, VisionLearner):
        raise ExportError("only a VisionLearner (vision_learner, unet_learner) can be exported as a vision app")
    dls = learn.dls
    dl = dls.loaders[1] if len(dls.loaders) > 1 else dls.loaders[0]
    norm = next((t for t in dl.after_batch.fs if type(t).__name__ == "Normalize"), None)
    return {
        "kind": learn.target,
        "vocab": learn.vocab,
        "thresh": learn.thresh,
        "img_cls": image_load_step(dls).cls,
        "item_tfms": _states(list(dl.after_item.fs), tensors, "item_tfms"),
        "batch_tfms": _states(list(dl.after_batch.fs), tensors, "batch_tfms"),
        "stats": None if norm is None else {"mean": getattr(norm, "mean", None), "std": getattr(norm, "std", None)},
        "bs": dl.bs,
    }


def inference_dataloaders(
    img_cls: str, item_tfms: list[Transform], batch_tfms: list[Transform], bs: int = 64
) -> DataLoaders:
    """DataLoaders that only serve ``test_dl(items)``: open images as ``img_cls``, then the given transforms.

    They hold one blank placeholder image (never loaded unless asked), not the training data.

    Args:
        img_cls: ``"PILImage"``, ``"PILImageBW"``...
        item_tfms: the validation item transforms (already set up).
        batch_tfms: the validation batch transforms (already set up).
        bs: batch size.

    Examples:
        >>> from lamina.data.transforms import IntToFloatTensor, ToTensor
        >>> dls = inference_dataloaders("PILImage", [ToTensor()], [IntToFloatTensor()])
        >>> xb = dls.test_dl([np.full((4, 5, 3), 255, dtype=np.uint8)]).one_batch()[0]
        >>> tuple(xb.shape), float(xb.max())
        ((1, 3, 4, 5), 1.0)
    """
    placeholder = PILImage.create(np.zeros((8, 8, 3), dtype=np.uint8))
    ds = Datasets([placeholder], tfms=[[_Open(img_cls)]], n_inp=1, split_idx=1)
    dl = DataLoader(ds, bs=bs, after_item=item_tfms, after_batch=batch_tfms, do_setup=False)
    return DataLoaders(dl, dl)


class _Open(LoadImage):
    """``LoadImage`` that also turns arrays and PIL images (not only paths) into the image class."""

    def encodes(self, x: object) -> Any:
        return self._image_cls.create(cast(Any, x)) if not isinstance(x, self._image_cls) else x


def rebuild_vision(spec: dict[str, Any], tensors: dict[str, Tensor], model: nn.Module, loss_func: Any) -> Learner:
    """An inference :class:`VisionLearner` from an export's data description and its rebuilt model.

    Args:
        spec: the description written by :func:`describe_vision`.
        tensors: the export's ``app.*`` tensors.
        model: the rebuilt model, weights loaded.
        loss_func: the rebuilt loss (the kind's default when ``None``).

    Examples:
        >>> rebuild_vision({"kind": "nonsense"}, {}, nn.Linear(1, 1), None)
        Traceback (most recent call last):
        ...
        lamina.learner.export.ExportError: the vision export names an unknown task kind 'nonsense'...
    """
    kind = spec.get("kind")
    if kind not in TARGET_KINDS:
        raise ExportError(f"the vision export names an unknown task kind {kind!r}: the file is foreign or tampered")
    try:
        item_tfms = [transform_from_state(d, tensors) for d in spec.get("item_tfms", [])]
        batch_tfms = [transform_from_state(d, tensors) for d in spec.get("batch_tfms", [])]
    except SerialError as e:
        raise ExportError(f"the vision export's transforms cannot be rebuilt: {e}") from None
    vocab, n_model = spec.get("vocab"), model_n_out(model)
    if vocab is not None and not isinstance(vocab, list):
        raise ExportError(f"the vision export's vocab must be a list, got {type(vocab).__name__}")
    if kind in ("single", "multi") and vocab is not None and n_model != len(vocab):
        raise ExportError(
            f"the vocab has {len(vocab)} labels but the model has {n_model} outputs: the file is tampered"
        )
    dls = inference_dataloaders(str(spec.get("img_cls", "PILImage")), item_tfms, batch_tfms, int(spec.get("bs", 64)))
    loss = loss_func if loss_func is not None else vision_loss(kind)
    return VisionLearner(dls, model, loss_func=loss, metrics=[], target=kind, vocab=vocab,
                         thresh=float(spec.get("thresh", 0.5)), show_progress=False, logger=None)  # fmt: skip


register_app("vision", describe_vision, rebuild_vision)
