"""Drawing helpers used by the ``show`` methods of semantic types. matplotlib is imported only when drawing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["get_grid", "show_boxes", "show_image", "show_mask", "show_points", "show_title"]


def _new_ax(ctx: Any, figsize: tuple[float, float] | None = None) -> Any:
    if ctx is not None:
        return ctx
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize or (3, 3))
    ax.axis("off")
    return ax


def _to_hwc(im: Any) -> np.ndarray:
    """An image as an ``H x W`` or ``H x W x C`` numpy array (channels-first tensors are transposed)."""
    if isinstance(im, Tensor):
        arr = im.detach().cpu().as_subclass(Tensor)
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = arr.permute(1, 2, 0)
        elif arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
            arr = arr.permute(1, 2, 0)
        a = arr.numpy()
    else:
        a = np.asarray(im)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype.kind == "f":
        a = np.clip(a, 0.0, 1.0)
    return a


def show_image(
    im: Any,
    ctx: Any = None,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    cmap: str | None = None,
    **kwargs: Any,
) -> Any:
    """Draw an image (tensor ``C x H x W``, array ``H x W x C``, or PIL image) on ``ctx`` and return the axis.

    Args:
        im: the image.
        ctx: the matplotlib axis to draw on; a new one when ``None``.
        figsize: size of the new figure when ``ctx`` is ``None``.
        title: optional axis title.
        cmap: colour map for single-channel images.
        **kwargs: passed to ``imshow``.

    Examples:
        >>> ax = show_image(torch.rand(3, 8, 8), title="noise")
        >>> ax.get_title()
        'noise'
    """
    ax = _new_ax(ctx, figsize)
    a = _to_hwc(im)
    ax.imshow(a, cmap=cmap if a.ndim == 2 else None, **kwargs)
    if title is not None:
        ax.set_title(title)
    ax.axis("off")
    return ax


def show_mask(
    mask: Any,
    ctx: Any = None,
    n_codes: int | None = None,
    alpha: float = 0.5,
    cmap: str = "tab20",
    **kwargs: Any,
) -> Any:
    """Overlay an integer mask on ``ctx``, one colour per code, and return the axis.

    Args:
        mask: ``H x W`` integer codes.
        ctx: axis to draw on (usually already holding the image); a new one when ``None``.
        n_codes: number of codes, so colours stay the same across masks; from the data when ``None``.
        alpha: opacity of the overlay.
        cmap: a qualitative colour map.
        **kwargs: passed to ``imshow``.

    Examples:
        >>> ax = show_mask(torch.tensor([[0, 1], [2, 1]]), n_codes=3)
        >>> len(ax.images)
        1
    """
    ax = _new_ax(ctx)
    a = _to_hwc(mask)
    vmax = (n_codes - 1) if n_codes else max(int(a.max()), 1)
    ax.imshow(a, alpha=alpha, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest", **kwargs)
    ax.axis("off")
    return ax


def show_points(points: Tensor, ctx: Any = None, **kwargs: Any) -> Any:
    """Draw ``N x 2`` ``(x, y)`` pixel coordinates as markers on ``ctx`` and return the axis.

    Examples:
        >>> ax = show_points(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> ax.collections[0].get_offsets().tolist()
        [[1.0, 2.0], [3.0, 4.0]]
    """
    ax = _new_ax(ctx)
    p = points.detach().cpu().as_subclass(Tensor).reshape(-1, 2).numpy()
    ax.scatter(p[:, 0], p[:, 1], **kwargs)
    return ax


def show_boxes(
    boxes: Tensor,
    ctx: Any = None,
    labels: Sequence[str] | None = None,
    color: str | None = None,
    linewidth: float = 2.0,
) -> Any:
    """Draw ``N x 4`` ``(x1, y1, x2, y2)`` boxes as rectangles, with optional labels, and return the axis.

    Args:
        boxes: the boxes in pixel coordinates; all-zero rows (padding) are skipped.
        ctx: axis to draw on; a new one when ``None``.
        labels: one text per box.
        color: one colour for all boxes; a colour per box when ``None``.
        linewidth: rectangle line width.

    Examples:
        >>> ax = show_boxes(torch.tensor([[1.0, 1.0, 5.0, 6.0]]), labels=["cat"])
        >>> len(ax.patches), ax.texts[0].get_text()
        (1, 'cat')
    """
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    ax = _new_ax(ctx)
    b = boxes.detach().cpu().as_subclass(Tensor).reshape(-1, 4)
    colors = plt.get_cmap("tab10")
    for i, (x1, y1, x2, y2) in enumerate(b.tolist()):
        if x1 == y1 == x2 == y2 == 0:
            continue
        c = color or colors(i % 10)
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=c, linewidth=linewidth))
        if labels is not None and i < len(labels):
            ax.text(x1, y1, str(labels[i]), color="white", fontsize=8, va="bottom", bbox={"facecolor": c, "pad": 1})
    if not ax.images:
        ax.autoscale_view()
    return ax


def show_title(text: str, ctx: Any = None, **kwargs: Any) -> Any:
    """Set ``text`` as the title of ``ctx`` (a new axis when ``None``), appending to a title already there.

    Examples:
        >>> ax = show_title("cat")
        >>> show_title("dog", ctx=ax).get_title()
        'cat\\ndog'
    """
    ax = _new_ax(ctx)
    old = ax.get_title()
    ax.set_title(f"{old}\n{text}" if old else text, **kwargs)
    return ax


def get_grid(
    n: int,
    nrows: int | None = None,
    ncols: int | None = None,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
) -> tuple[Any, list[Any]]:
    """A figure with ``n`` axes on a grid (rows and columns chosen when not given), axes turned off.

    Args:
        n: number of axes wanted.
        nrows: rows of the grid.
        ncols: columns of the grid.
        figsize: figure size; 3 inches per cell when ``None``.
        title: figure title.

    Examples:
        >>> fig, axs = get_grid(5)
        >>> len(axs)
        5
    """
    import matplotlib.pyplot as plt

    if n < 1:
        raise ValueError(f"get_grid needs n >= 1 axes, got {n}")
    if nrows is None and ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if nrows is None:
        nrows = math.ceil(n / int(ncols or 1))
    if ncols is None:
        ncols = math.ceil(n / nrows)
    fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (3 * ncols, 3 * nrows), squeeze=False)
    flat = list(axs.flatten())
    for ax in flat:
        ax.axis("off")
    for ax in flat[n:]:
        fig.delaxes(ax)
    if title is not None:
        fig.suptitle(title)
    return fig, flat[:n]
