"""Vision learners as graphs: ``uint8`` images of any size in, probabilities and class indices out.

The graph repeats what validation does to an image, as tensor code with the image's height and width left
symbolic: the validation window of the item transform (``Resize``: centre crop, pad or squish to the output's
aspect ratio; ``RandomResizedCrop``: the largest centre crop; ``CropPad``/``RandomCrop``: the centred window),
the antialiased bilinear resize of the uint8 pixels, bit for bit as the item transforms do it (Pillow's
fixed-point arithmetic for a window inside a Pillow image, :func:`pil_resize`; torch's kernel on the tensor path),
``IntToFloatTensor``'s division
and ``Normalize``'s statistics; then the model and the decoding of the task (softmax and argmax, sigmoid and the
threshold, the value, or the per-pixel argmax of a mask). Training-only steps (augmentations) are left out; any
other step is refused with a :class:`~lamina.learner.graph.GraphError` naming it.

The input is ``N x H x W x C`` ``uint8`` (a single image is a batch of one: ``img[None]``); images of one batch
share their size. The graph runs on the CPU (torch resizes uint8 images there).
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lamina.data.transforms import IntToFloatTensor, Normalize, ToTensor
from lamina.learner.graph import GraphError, InferenceGraph, register_graph, sym_max, sym_min
from lamina.vision.learner import VisionLearner
from lamina.vision.transforms import CropPad, RandomCrop, RandomResizedCrop, Resize

__all__ = ["VisionGraph", "VisionPreprocess", "pil_resize", "vision_graph"]


def _rounded_ratio(a: int, num: int, den: int) -> int:
    """``round(a * num / den)`` in integers (halves up), as sizes are computed eagerly and symbolically alike."""
    return (2 * a * num + den) // (2 * den)


def _source_rows(start: int, n: int, size: int, pad_mode: str) -> tuple[Tensor, Tensor]:
    """Source indices of ``n`` positions from ``start`` (clamped or mirrored into ``[0, size)``) and which are in."""
    i = torch.arange(n) + start
    inside = (i >= 0) & (i < size)
    if pad_mode == "reflection":  # mirror about the edge: -1 -> 0, size -> size - 1
        i = torch.remainder(i, 2 * size)
        i = torch.where(i >= size, 2 * size - 1 - i, i)
    return i.clamp(0, size - 1), inside


def _pil_taps(in_size: int, start: Tensor, length: Tensor, out: int) -> tuple[Tensor, Tensor]:
    """Pillow's bilinear (antialiased) resampling of the span ``[start, start + length)`` of an axis of ``in_size``
    pixels to ``out`` pixels: per output pixel, the source indices and integer weights of its taps (``out x K``).

    The arithmetic is Pillow's own: filter support scaled by the reduction, taps that may reach beyond the span
    (but not the image), weights normalized in float64 and rounded to 22-bit fixed point."""
    scale = length / out
    filterscale = torch.clamp(scale, min=1.0)
    center = start + (torch.arange(out, dtype=torch.float64) + 0.5) * scale
    first = torch.clamp(torch.trunc(center - filterscale + 0.5), min=0.0)
    size = torch.scalar_tensor(in_size, dtype=torch.float64)  # (a tensor: float(in_size) would fix the size)
    last = torch.minimum(torch.trunc(center + filterscale + 0.5), size)
    n_taps = (2 * in_size) // out + 3  # at least 2 * filterscale + 1 taps
    index = first[:, None] + torch.arange(n_taps, dtype=torch.float64)[None, :]
    weight = torch.clamp(1.0 - (((index - center[:, None]) + 0.5) / filterscale).abs(), min=0.0)
    weight = torch.where(index < last[:, None], weight, torch.zeros_like(weight))
    weight = weight / weight.sum(1, keepdim=True)
    fixed = torch.trunc(weight * 4194304.0 + 0.5).to(torch.int32)  # Pillow's 22-bit fixed point: 1 << 22
    return torch.minimum(index, size - 1).to(torch.int64), fixed


def _pil_pass(x: Tensor, dim: int, index: Tensor, fixed: Tensor) -> Tensor:
    """One separable pass along ``dim`` (2: rows, 3: columns) of int64 pixels, rounded and clipped to 0-255."""
    out, n_taps = index.shape[0], index.shape[1]
    taps = x.index_select(dim, index.flatten())
    if dim == 3:
        taps = taps.unflatten(3, (out, n_taps))
        acc = (taps * fixed).sum(4)
    else:
        taps = taps.unflatten(2, (out, n_taps))
        acc = (taps * fixed[:, :, None]).sum(3)
    return torch.clamp((acc + 2097152) // 4194304, 0, 255)  # round half up, then drop the 22 fraction bits


def pil_resize(images: Tensor, window: list[Tensor], out_h: int, out_w: int) -> Tensor:
    """``N x C x H x W`` uint8 images' ``window`` (``top, left, height, width`` as float64 scalars) resized to
    ``out_h x out_w`` exactly as Pillow's ``Image.resize(size, BILINEAR, box=...)``: the pixels lamina's decoders
    give (as tensor code, so it exports).

    Args:
        images: the images.
        window: the source box.
        out_h: output height.
        out_w: output width.

    Examples:
        >>> from PIL import Image
        >>> pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
        >>> ours = pil_resize(torch.from_numpy(pixels).permute(2, 0, 1)[None],
        ...                   [torch.tensor(v, dtype=torch.float64) for v in (2.0, 5.0, 20.0, 30.0)], 8, 12)
        >>> pils = np.asarray(Image.fromarray(pixels).resize((12, 8), Image.BILINEAR, box=(5, 2, 35, 22)))
        >>> bool((ours[0].permute(1, 2, 0).numpy() == pils).all())
        True
    """
    top, left, height, width = window
    x = images.to(torch.int32)  # sums stay below 2 ** 31: 255 times weights that add up to 2 ** 22
    cols, col_w = _pil_taps(x.shape[3], left, width, out_w)
    x = _pil_pass(x, 3, cols, col_w)
    rows, row_w = _pil_taps(x.shape[2], top, height, out_h)
    return _pil_pass(x, 2, rows, row_w).to(torch.uint8)


class VisionPreprocess(nn.Module):
    """``N x H x W x C`` ``uint8`` images to the model's normalized ``N x C x h x w`` float input.

    Args:
        size: the model's input ``(height, width)``, or ``None`` to keep the image's size.
        window: ``"crop"``, ``"pad"``, ``"squish"`` (aspect windows of ``Resize``) or ``"fixed"`` (a centred window
            of ``size``, no resize).
        pad_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` where the window reaches outside the image.
        div: what ``IntToFloatTensor`` divides by.
        mean: per-channel means of ``Normalize`` (``None``: no normalization).
        std: per-channel standard deviations.
        pil: images are decoded as Pillow images (``PILImage``...), so windows inside the image are resized as
            Pillow does; otherwise as the tensor path does (torch's kernel).

    Examples:
        >>> pre = VisionPreprocess((4, 4), "crop", "zeros", 255.0, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
        >>> tuple(pre(torch.full((2, 6, 8, 3), 255, dtype=torch.uint8)).shape)
        (2, 3, 4, 4)
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        size: tuple[int, int] | None,
        window: str,
        pad_mode: str,
        div: float,
        mean: list[float] | None,
        std: list[float] | None,
        pil: bool = True,
    ) -> None:
        super().__init__()
        self.pil = pil
        self.out_h, self.out_w = size if size is not None else (0, 0)
        self.window, self.pad_mode, self.div = window, pad_mode, float(div)
        self.normalize = mean is not None and std is not None
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.0]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std if std is not None else [1.0]).view(1, -1, 1, 1))

    def _window(self, h: int, w: int) -> tuple[int, int]:
        if self.window == "fixed":
            return self.out_h, self.out_w
        if self.window == "squish":
            return h, w
        height = _rounded_ratio(w, self.out_h, self.out_w)
        width = _rounded_ratio(h, self.out_w, self.out_h)
        if self.window == "crop":
            return sym_min(h, height), sym_min(w, width)
        return sym_max(h, height), sym_max(w, width)

    def forward(self, images: Tensor) -> Tensor:
        x = images.permute(0, 3, 1, 2)
        if self.out_h > 0:
            h, w = x.shape[2], x.shape[3]
            height, width = self._window(h, w)
            top, left = (h - height) // 2, (w - width) // 2
            if not self.pil:
                x = self._crop_pad_resize(x, top, left, height, width)
            else:
                box = [_as_float(top), _as_float(left), _as_float(height), _as_float(width)]
                resized = pil_resize(x, box, self.out_h, self.out_w)
                if self.window in ("pad", "fixed"):  # Pillow resizes a window inside the image, the tensor path
                    inside = (box[0] >= 0) & (box[1] >= 0) & (box[0] + box[2] <= h) & (box[1] + box[3] <= w)
                    resized = torch.where(inside, resized, self._crop_pad_resize(x, top, left, height, width))
                x = resized
        x = x.float() / self.div
        if self.normalize:
            x = (x - self.mean) / self.std
        return x

    def _crop_pad_resize(self, x: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
        """The tensor path of lamina's item transforms: cut (and pad) the window, resize with torch's uint8 kernel."""
        rows, rows_in = _source_rows(top, height, x.shape[2], self.pad_mode)
        cols, cols_in = _source_rows(left, width, x.shape[3], self.pad_mode)
        x = x.index_select(2, rows).index_select(3, cols)
        if self.pad_mode == "zeros":
            x = x * (rows_in[:, None] & cols_in[None, :]).to(x.dtype)
        return F.interpolate(x, size=[self.out_h, self.out_w], mode="bilinear", antialias=True, align_corners=False)


def _as_float(size: int) -> Tensor:
    return torch.scalar_tensor(size, dtype=torch.float64)


class VisionGraph(nn.Module):
    """Preprocessing, the model and the task's decoding: images in, ``(probabilities, indices)`` or values out.

    Args:
        preprocess: a :class:`VisionPreprocess`.
        model: the learner's model.
        kind: ``"single"``, ``"multi"``, ``"regression"`` or ``"mask"``.
        thresh: the multi-label threshold.

    Examples:
        >>> pre = VisionPreprocess(None, "squish", "zeros", 255.0, None, None)
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))
        >>> probs, index = VisionGraph(pre, net, "single", 0.5)(torch.zeros(2, 4, 4, 1, dtype=torch.uint8))
        >>> tuple(probs.shape), index.tolist()
        ((2, 3), [...])
    """

    def __init__(self, preprocess: VisionPreprocess, model: nn.Module, kind: str, thresh: float) -> None:
        super().__init__()
        self.preprocess, self.model, self.kind, self.thresh = preprocess, model, kind, float(thresh)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(self.preprocess(images))
        if self.kind == "single":
            return torch.softmax(out, 1), out.argmax(1)
        if self.kind == "multi":
            probs = torch.sigmoid(out)
            return probs, probs > self.thresh
        if self.kind == "mask":
            return torch.softmax(out, 1), out.argmax(1)
        return out, out


def _item_window(learn: VisionLearner) -> tuple[tuple[int, int] | None, str, str]:
    """The output size, window kind and pad mode of the validation item transform."""
    size: tuple[int, int] | None = None
    window, pad_mode = "squish", "zeros"
    for t in _validation_steps(_valid_loader(learn).after_item.fs):
        if isinstance(t, Resize):
            size, window, pad_mode = t.size_, t.method, t.pad_mode
        elif isinstance(t, RandomResizedCrop):
            size, window = t.size_, "crop"
        elif isinstance(t, (CropPad, RandomCrop)):
            size, window, pad_mode = t.size_, "fixed", t.pad_mode
        elif not isinstance(t, ToTensor):
            raise GraphError(f"the item transform {t.name} has no graph form: use Resize, RandomResizedCrop or CropPad")
    return size, window, pad_mode


def _batch_steps(learn: VisionLearner) -> tuple[float, list[float] | None, list[float] | None]:
    """``IntToFloatTensor``'s divisor and ``Normalize``'s statistics among the validation batch transforms."""
    div, mean, std = 1.0, None, None
    for t in _validation_steps(_valid_loader(learn).after_batch.fs):
        if isinstance(t, IntToFloatTensor):
            div = float(t.div)
        elif isinstance(t, Normalize) and t.mean_ is not None and t.std_ is not None:
            mean, std = t.mean_.flatten().tolist(), t.std_.flatten().tolist()
        elif not type(t).__name__ == "ScalePoints":
            raise GraphError(f"the batch transform {t.name} has no graph form (only IntToFloatTensor, Normalize)")
    return div, mean, std


def _decodes_with_pil(learn: VisionLearner) -> bool:
    """Whether the learner opens images as Pillow images (their item transforms then resize with Pillow)."""
    from lamina.vision.image import PILBase
    from lamina.vision.learner import image_load_step

    return issubclass(image_load_step(learn.dls)._image_cls, PILBase)


def _valid_loader(learn: VisionLearner) -> Any:
    return learn.dls.loaders[1] if len(learn.dls.loaders) > 1 else learn.dls.loaders[0]


def _validation_steps(fs: Any) -> list[Any]:
    return [t for t in fs if t.split_idx != 0]  # training-only steps (augmentations) do not run at inference


def vision_graph(learn: VisionLearner) -> InferenceGraph:
    """The :class:`~lamina.learner.graph.InferenceGraph` of a vision learner (see the module docstring).

    Examples:
        >>> vision_graph(object())
        Traceback (most recent call last):
        ...
        lamina.learner.graph.GraphError: only a VisionLearner ...
    """
    if not isinstance(learn, VisionLearner):
        raise GraphError("only a VisionLearner (vision_learner, unet_learner, load_learner) can be written as a graph")
    if learn.target == "points":
        raise GraphError("keypoint learners cannot be written as graphs yet: their points are relative to the crop")
    size, window, pad_mode = _item_window(learn)
    div, mean, std = _batch_steps(learn)
    graph = VisionGraph(
        VisionPreprocess(size, window, pad_mode, div, mean, std, pil=_decodes_with_pil(learn)),
        learn.model,
        learn.target,
        learn.thresh,
    )
    channels = int(next(p for p in learn.model.parameters() if p.ndim == 4).shape[1])
    example = torch.randint(0, 256, (2, (size or (32, 32))[0] + 3, (size or (32, 32))[1] + 5, channels))
    n_out = len(learn.vocab) if learn.vocab else "K"
    shapes = {
        "single": (["N", n_out], ["N"], "int64", "the class index (argmax)"),
        "multi": (["N", n_out], ["N", n_out], "bool", "probability > threshold per class"),
        "regression": (["N", n_out], ["N", n_out], "float32", "the values (same as the first output)"),
        "mask": (["N", n_out, *(size or ("h", "w"))], ["N", *(size or ("h", "w"))], "int64", "the code per pixel"),
    }[learn.target]
    return InferenceGraph(
        module=graph,
        example_inputs=(example.to(torch.uint8),),
        inputs=[{"name": "images", "dtype": "uint8", "shape": ["N", "H", "W", channels],
                 "description": "images as decoded (height x width x channels, values 0-255); one batch shares H, W"}],
        outputs=[{"name": "probs", "dtype": "float32", "shape": shapes[0], "description": "the activated outputs"},
                 {"name": "index", "dtype": shapes[2], "shape": shapes[1], "description": shapes[3]}],
        info={"app": "vision", "kind": learn.target, "labels": learn.vocab, "thresh": learn.thresh,
              "input_size": list(size) if size else None},
    )  # fmt: skip


register_graph("vision", vision_graph)
