"""Image DataLoaders in one call: from class folders, file names, functions of the path, tables or lists, and
segmentation DataLoaders from a function giving each image's mask.

Each factory builds a :class:`~lamina.data.block.DataBlock` of the blocks of :mod:`lamina.vision.data` and calls its
``dataloaders``. Labels are checked before any image is opened (see :class:`ImageDataLoaders`).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lamina.data.block import CategoryBlock, DataBlock, MultiCategoryBlock
from lamina.data.getters import ColReader, RegexLabeller, get_image_files, parent_label
from lamina.data.load import DataLoaders
from lamina.data.splitters import ColSplitter, GrandparentSplitter, RandomSplitter
from lamina.vision.data import ImageBlock, MaskBlock
from lamina.vision.image import PILBase, PILImage

__all__ = ["ImageDataLoaders", "SegmentationDataLoaders"]


# ---------------------------------------------------------------- label checks


def _flat_labels(labels: Sequence[Any]) -> list[Any]:
    return [c for o in labels for c in (o if isinstance(o, (list, tuple)) else [o])]


def _check_classes(labels: Sequence[Any], splits: tuple[list[int], list[int]], vocab: Any) -> None:
    """Warn about classes with a single image; raise for classes seen only in validation (when no vocab is given)."""
    counts = Counter(_flat_labels(labels))
    lonely = sorted((str(c) for c, n in counts.items() if n == 1), key=str)
    if lonely:
        warnings.warn(
            f"the classes {lonely[:10]} have a single image each: the model sees it in training or in validation, "
            "never both. Add images of these classes or remove them",
            UserWarning,
            stacklevel=4,
        )
    if vocab is not None:
        return
    train = set(_flat_labels([labels[i] for i in splits[0]]))
    missing = [c for c in _flat_labels([labels[i] for i in splits[1]]) if c not in train]
    if missing:
        raise ValueError(
            f"the class {missing[0]!r} has validation images but no training image, so it is not in the vocab "
            f"(learned from the training split): add training images of {missing[0]!r}, change the split "
            "(valid_pct/seed), or pass vocab=[...] with every class"
        )


class _OnName:
    """Call ``func`` on a path's file name (picklable, so it works with worker processes)."""

    def __init__(self, func: Callable[[str], Any]) -> None:
        self.func = func

    def __call__(self, path: str | Path) -> Any:
        return self.func(Path(path).name)


def _split_seed(seed: int | None) -> int:
    from lamina.data.block import DEFAULT_SPLIT_SEED

    return DEFAULT_SPLIT_SEED if seed is None else seed


class ImageDataLoaders(DataLoaders):
    """Image classification (and regression) DataLoaders in one call, from folders, file names or a table.

    Every factory builds a :class:`~lamina.data.block.DataBlock` of ``(ImageBlock(img_cls), y_block)`` and calls
    its ``dataloaders``; ``item_tfms`` (e.g. ``Resize(128)``), ``batch_tfms`` (e.g. ``[*aug_transforms(),
    Normalize.from_stats(*imagenet_stats)]``) and ``**kwargs`` (``val_bs``, ``num_workers``, ``device``...) are
    passed on. Random splits use ``seed`` (``DEFAULT_SPLIT_SEED`` when ``None``), so they are the same every run.

    Labels are checked before anything loads: a class with a single image gives a ``UserWarning`` naming it; a
    class that has validation images but no training image raises ``ValueError`` naming it (unless ``vocab`` is
    given).

    Examples:
        >>> df = pd.DataFrame({"fname": ["a.png", "b.png", "c.png", "d.png"], "label": ["3", "3", "7", "7"],
        ...                    "is_valid": [False, False, True, True]})
        >>> ImageDataLoaders.from_df(df, valid_col="is_valid")  # no image is opened before the check
        Traceback (most recent call last):
        ...
        ValueError: the class '7' has validation images but no training image, so it is not in the vocab ...
    """

    @classmethod
    def _build(
        cls,
        path: str | Path,
        items: Any,
        get_x: Any,
        get_y: Any,
        splitter: Callable[[Any], Any],
        y_block: Any = None,
        vocab: Sequence[Any] | None = None,
        labels: Sequence[Any] | None = None,
        item_tfms: Any = None,
        batch_tfms: Any = None,
        bs: int = 64,
        img_cls: type[PILBase] = PILImage,
        skip_bad: bool = False,
        **kwargs: Any,
    ) -> ImageDataLoaders:
        """The shared recipe of the factories; ``labels`` (one per item) are checked when given; ``skip_bad`` goes to
        the image block's :class:`LoadImage` (unreadable files become blank images with a warning)."""
        if labels is not None:
            splits = splitter(items)
            _check_classes(labels, (list(splits[0]), list(splits[1])), vocab)
        y_block = y_block if y_block is not None else CategoryBlock(vocab=vocab)
        dblock = DataBlock(
            blocks=(ImageBlock(img_cls, skip_bad=skip_bad), y_block), get_x=get_x, get_y=get_y, splitter=splitter,
            item_tfms=item_tfms, batch_tfms=batch_tfms,
        )  # fmt: skip
        dls = dblock.dataloaders(items, bs=bs, path=str(path), **kwargs)
        return cls(*dls.loaders, path=str(path))

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        train: str = "train",
        valid: str = "valid",
        valid_pct: float | None = None,
        seed: int | None = None,
        vocab: Sequence[Any] | None = None,
        item_tfms: Any = None,
        batch_tfms: Any = None,
        bs: int = 64,
        **kwargs: Any,
    ) -> ImageDataLoaders:
        """Images in ``path/<train>/<label>/*`` and ``path/<valid>/<label>/*``, labelled by their folder.

        Args:
            path: the data set's folder.
            train: the training sub-folder.
            valid: the validation sub-folder.
            valid_pct: split every image of ``path`` at random instead (this fraction for validation).
            seed: seed of the random split.
            vocab: the labels; learned from the training images when ``None``.
            item_tfms: item transforms (e.g. ``Resize(64)``).
            batch_tfms: batch transforms (e.g. ``Normalize()``).
            bs: batch size.
            **kwargs: ``img_cls``, ``y_block``, ``skip_bad`` (unreadable files become blank images with a warning,
                see :class:`LoadImage`) and DataLoader arguments.

        Examples:
            >>> import tempfile
            >>> from PIL import Image
            >>> from lamina.datasets import mnist_digits
            >>> tmp = tempfile.TemporaryDirectory()
            >>> for split in ("train", "valid"):  # three real digits per class and split: <split>/<digit>/<index>.png
            ...     _ = mnist_digits(tmp.name, n=3, split=split, name="{split}/{digit}/{index}.png")
            >>> dls = ImageDataLoaders.from_folder(tmp.name, bs=6)
            >>> xb, yb = dls.valid.one_batch()
            >>> dls.vocab, tuple(xb.shape), [dls.vocab[i] for i in yb.tolist()]
            (['3', '7'], (6, 3, 28, 28), ['3', '3', '3', '7', '7', '7'])
            >>> first = np.array(Image.open(dls.valid.dataset.items[0]))  # the batch holds the PNG's pixels in [0, 1]
            >>> torch.equal((xb[0, 0] * 255).round().byte().as_subclass(torch.Tensor), torch.from_numpy(first))
            True
            >>> tmp.cleanup()
        """
        if valid_pct is None:
            items = get_image_files(path, folders=[train, valid])
            splitter: Callable[[Any], Any] = GrandparentSplitter(train, valid)
        else:
            items = get_image_files(path)
            splitter = RandomSplitter(valid_pct, seed=_split_seed(seed))
        if not items:
            inside = f" in its {train!r} and {valid!r} sub-folders" if valid_pct is None else ""
            raise ValueError(f"from_folder: no image files under {path}{inside} (files are found by their suffix: "
                             ".png, .jpg, .jpeg...); check the path")  # fmt: skip
        labels = [parent_label(p) for p in items]
        return cls._build(
            path, items, None, parent_label, splitter, vocab=vocab, labels=labels, item_tfms=item_tfms,
            batch_tfms=batch_tfms, bs=bs, **kwargs,
        )  # fmt: skip

    @classmethod
    def from_path_func(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        label_func: Callable[[Path], Any],
        valid_pct: float = 0.2,
        seed: int | None = None,
        **kwargs: Any,
    ) -> ImageDataLoaders:
        """Images ``fnames`` (relative to ``path``, or absolute) labelled by ``label_func(path_of_the_file)``.

        Args:
            path: the data set's folder.
            fnames: the image files.
            label_func: the label of a file from its path.
            valid_pct: fraction of random validation images.
            seed: seed of the random split.
            **kwargs: ``vocab``, ``item_tfms``, ``batch_tfms``, ``bs``, ``img_cls``, ``y_block``, ``skip_bad``,
                DataLoader arguments.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> tmp = tempfile.TemporaryDirectory()
            >>> fnames = mnist_digits(tmp.name, name="{digit}/{k}.png")  # four real digits of each class
            >>> dls = ImageDataLoaders.from_path_func(tmp.name, fnames, lambda p: p.parent.name, valid_pct=0.25, seed=0,
            ...                                       bs=2)
            >>> len(dls.train.dataset), len(dls.valid.dataset), dls.vocab
            (6, 2, ['3', '7'])
            >>> _, yb = dls.valid.one_batch()
            >>> [dls.vocab[i] for i in yb.tolist()] == [p.parent.name for p in dls.valid.dataset.items]
            True
            >>> tmp.cleanup()
        """
        items = [Path(path) / f for f in fnames]
        labels = [label_func(p) for p in items] if kwargs.get("y_block") is None else None
        splitter = RandomSplitter(valid_pct, seed=_split_seed(seed))
        return cls._build(path, items, None, label_func, splitter, labels=labels, **kwargs)

    @classmethod
    def from_name_func(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        label_func: Callable[[str], Any],
        valid_pct: float = 0.2,
        seed: int | None = None,
        **kwargs: Any,
    ) -> ImageDataLoaders:
        """Images ``fnames`` labelled by ``label_func(file_name)`` (the name only, e.g. ``'cat_12.jpg'``).

        Args:
            path: the data set's folder.
            fnames: the image files (relative to ``path``, or absolute).
            label_func: the label from a file name; a module-level function or class works with workers.
            valid_pct: fraction of random validation images.
            seed: seed of the random split.
            **kwargs: see :meth:`from_path_func`.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root, names = Path(tmp.name), mnist_digits(tmp.name)  # four real 3s and 7s, as "<digit>_<k>.png"
            >>> def word(name):
            ...     return "three" if name[0] == "3" else "seven"
            >>> dls = ImageDataLoaders.from_name_func(tmp.name, names, word, valid_pct=0.25, seed=0, bs=2)
            >>> _, yb = dls.valid.one_batch()
            >>> dls.vocab, [dls.vocab[i] for i in yb.tolist()] == [
            ...     word(p.name) for p in dls.valid.dataset.items]
            (['seven', 'three'], True)
            >>> tmp.cleanup()
        """
        return cls.from_path_func(path, fnames, _OnName(label_func), valid_pct=valid_pct, seed=seed, **kwargs)

    @classmethod
    def from_name_re(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        pat: str,
        valid_pct: float = 0.2,
        seed: int | None = None,
        **kwargs: Any,
    ) -> ImageDataLoaders:
        r"""Images ``fnames`` labelled by the first group of the regular expression ``pat`` on the file name.

        Args:
            path: the data set's folder.
            fnames: the image files.
            pat: e.g. ``r"^([a-z_]+)_\d+\.jpg$"``.
            valid_pct: fraction of random validation images.
            seed: seed of the random split.
            **kwargs: see :meth:`from_path_func`.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root, names = Path(tmp.name), mnist_digits(tmp.name)  # four real 3s and 7s, as "<digit>_<k>.png"
            >>> dls = ImageDataLoaders.from_name_re(tmp.name, names, r"^(\d)_\d+\.png$", valid_pct=0.25, seed=0, bs=2)
            >>> xb, yb = dls.valid.one_batch()
            >>> dls.vocab, tuple(xb.shape)
            (['3', '7'], (2, 3, 28, 28))
            >>> [dls.vocab[i] for i in yb.tolist()] == [p.name[0] for p in dls.valid.dataset.items]
            True
            >>> tmp.cleanup()
        """
        return cls.from_name_func(path, fnames, RegexLabeller(pat), valid_pct=valid_pct, seed=seed, **kwargs)

    @classmethod
    def from_df(
        cls,
        df: pd.DataFrame,
        path: str | Path = ".",
        fn_col: str | int = 0,
        label_col: str | int | Sequence[str | int] = 1,
        label_delim: str | None = None,
        valid_col: str | int | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        folder: str | None = None,
        suff: str = "",
        **kwargs: Any,
    ) -> ImageDataLoaders:
        """Images named in column ``fn_col`` of ``df`` (relative to ``path/folder``), labels in ``label_col``.

        Labels separated by ``label_delim`` in one string (``"cat dog"``) make a multi-label target. Give
        ``y_block=RegressionBlock()`` for numbers. Rows with a true ``valid_col`` are the validation split; a random
        ``valid_pct`` otherwise.

        Args:
            df: one row per image.
            path: the folder the file names are relative to.
            fn_col: the column (name or position) of the file names.
            label_col: the column(s) of the labels.
            label_delim: split labels on this separator (multi-label).
            valid_col: a boolean column marking validation rows.
            valid_pct: fraction of random validation rows when ``valid_col`` is ``None``.
            seed: seed of the random split.
            folder: a sub-folder of ``path`` holding the images.
            suff: appended to every file name (e.g. ``".png"``).
            **kwargs: ``vocab``, ``y_block``, ``item_tfms``, ``batch_tfms``, ``bs``, ``img_cls``, ``skip_bad``,
                DataLoader arguments.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root, names = Path(tmp.name), mnist_digits(tmp.name)  # four real 3s and 7s, as "<digit>_<k>.png"
            >>> df = pd.DataFrame({"fname": names, "label": [n[0] for n in names]})
            >>> df["is_valid"] = df["fname"].str.endswith("_0.png")  # the first image of each digit validates
            >>> dls = ImageDataLoaders.from_df(df, tmp.name, fn_col="fname", label_col="label", valid_col="is_valid")
            >>> _, yb = dls.valid.one_batch()
            >>> list(dls.valid.dataset.items["fname"]), [dls.vocab[i] for i in yb.tolist()]
            (['3_0.png', '7_0.png'], ['3', '7'])
            >>> tmp.cleanup()
        """
        if not isinstance(df, pd.DataFrame) or len(df) == 0:
            raise ValueError(f"from_df needs a DataFrame with one row per image, got {type(df).__name__} {df!r:.80}")
        root = Path(path) / folder if folder else Path(path)
        get_x, get_y = ColReader(fn_col, pref=root, suff=suff), ColReader(label_col, label_delim=label_delim)
        splitter: Callable[[Any], Any] = (
            ColSplitter(valid_col) if valid_col is not None else RandomSplitter(valid_pct, seed=_split_seed(seed))
        )
        if kwargs.get("y_block") is None:
            labels: list[Any] | None = [get_y(row) for _, row in df.iterrows()]
            if label_delim is not None:
                kwargs["y_block"] = MultiCategoryBlock(vocab=kwargs.get("vocab"))
        else:
            labels = None
        return cls._build(path, df.reset_index(drop=True), get_x, get_y, splitter, labels=labels, **kwargs)

    @classmethod
    def from_csv(
        cls, path: str | Path, csv_fname: str = "labels.csv", delimiter: str | None = None, **kwargs: Any
    ) -> ImageDataLoaders:
        """:meth:`from_df` on the table ``path/csv_fname``.

        Args:
            path: the data set's folder.
            csv_fname: the CSV file in it.
            delimiter: the CSV's separator (``,`` when ``None``).
            **kwargs: see :meth:`from_df`.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root, names = Path(tmp.name), mnist_digits(tmp.name)  # four real 3s and 7s, as "<digit>_<k>.png"
            >>> word = {"3": "three", "7": "seven"}  # a CSV reads digits as numbers: words stay strings
            >>> df = pd.DataFrame({"fname": names, "label": [word[n[0]] for n in names]})
            >>> df.to_csv(root / "labels.csv", index=False)
            >>> dls = ImageDataLoaders.from_csv(tmp.name, fn_col="fname", label_col="label", valid_pct=0.25, seed=0)
            >>> len(dls.train.dataset), len(dls.valid.dataset), dls.vocab
            (6, 2, ['seven', 'three'])
            >>> _, yb = dls.valid.one_batch()
            >>> [dls.vocab[i] for i in yb.tolist()] == [word[n[0]] for n in dls.valid.dataset.items["fname"]]
            True
            >>> tmp.cleanup()
        """
        table = Path(path) / csv_fname
        if not table.is_file():
            raise FileNotFoundError(f"from_csv: the table {table} does not exist: check path and csv_fname")
        return cls.from_df(pd.read_csv(table, sep=delimiter or ","), path=path, **kwargs)

    @classmethod
    def from_lists(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        labels: Sequence[Any],
        valid_pct: float = 0.2,
        seed: int | None = None,
        **kwargs: Any,
    ) -> ImageDataLoaders:
        """Images ``fnames`` with their ``labels`` (two lists of the same length; a list of labels each: multi-label).

        Args:
            path: the folder ``fnames`` are relative to.
            fnames: the image files.
            labels: one label (or list of labels) per file.
            valid_pct: fraction of random validation images.
            seed: seed of the random split.
            **kwargs: see :meth:`from_df`.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root, names = Path(tmp.name), mnist_digits(tmp.name)  # four real 3s and 7s, as "<digit>_<k>.png"
            >>> labels = [[n[0], "round" if n[0] == "3" else "straight"] for n in names]  # two labels each: multi-label
            >>> dls = ImageDataLoaders.from_lists(tmp.name, names, labels, valid_pct=0.25, seed=0, bs=2)
            >>> _, yb = dls.valid.one_batch()  # one-hot rows over the vocab
            >>> dls.vocab, yb.sum(1).tolist()
            (['3', '7', 'round', 'straight'], [2.0, 2.0])
            >>> [[dls.vocab[j] for j in row.nonzero().flatten().tolist()] for row in yb] == [labels[i] for i in
            ...  dls.valid.dataset.items]
            True
            >>> tmp.cleanup()
        """
        if len(fnames) != len(labels):
            raise ValueError(
                f"from_lists got {len(fnames)} file names but {len(labels)} labels: give one label per file"
            )
        files, targets = [Path(path) / f for f in fnames], list(labels)
        multi = bool(targets) and isinstance(targets[0], (list, tuple))
        if multi and kwargs.get("y_block") is None:
            kwargs["y_block"] = MultiCategoryBlock(vocab=kwargs.get("vocab"))
        splitter = RandomSplitter(valid_pct, seed=_split_seed(seed))
        return cls._build(
            path, list(range(len(files))), files.__getitem__, targets.__getitem__, splitter, labels=targets, **kwargs
        )


class SegmentationDataLoaders(DataLoaders):
    """Segmentation DataLoaders (an image and a mask of integer codes per item) in one call.

    Examples:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for k in range(5):
        ...     Image.new("L", (6, 4), 40 * k).save(root / f"{k}.png")
        ...     Image.new("L", (6, 4), k % 2).save(root / f"{k}_mask.png")
        >>> dls = SegmentationDataLoaders.from_label_func(
        ...     root, [f"{k}.png" for k in range(5)], lambda p: p.with_name(f"{p.stem}_mask.png"),
        ...     codes=["even", "odd"], bs=2)
        >>> xb, yb = dls.train.one_batch()
        >>> tuple(xb.shape), type(yb).__name__, yb.dtype, yb.codes
        ((2, 3, 4, 6), 'TensorMask', torch.int64, ['even', 'odd'])
    """

    @classmethod
    def from_label_func(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        label_func: Callable[[Path], Any],
        codes: Sequence[str] | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        item_tfms: Any = None,
        batch_tfms: Any = None,
        bs: int = 64,
        img_cls: type[PILBase] = PILImage,
        skip_bad: bool = False,
        **kwargs: Any,
    ) -> SegmentationDataLoaders:
        """Images ``fnames`` (relative to ``path``) with masks at ``label_func(image_path)``.

        Args:
            path: the data set's folder.
            fnames: the image files.
            label_func: the mask file of an image file.
            codes: the name of each code, code 0 first.
            valid_pct: fraction of random validation images.
            seed: seed of the random split (``DEFAULT_SPLIT_SEED`` when ``None``).
            item_tfms: item transforms (``Resize`` resizes image and mask together).
            batch_tfms: batch transforms (augmentations move masks with their images).
            bs: batch size.
            img_cls: the image class.
            skip_bad: unreadable images and masks become blank ones with a warning (see :class:`LoadImage`).
            **kwargs: DataLoader arguments.

        Examples:
            >>> import tempfile
            >>> from lamina.datasets import mnist_digits
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root = Path(tmp.name)  # four real 3s and 7s, each with a mask: the pixels above 127 are code 1
            >>> names = mnist_digits(tmp.name, name="{digit}_{k}.png", mask_name="mask_{digit}_{k}.png")
            >>> dls = SegmentationDataLoaders.from_label_func(
            ...     tmp.name, names, lambda p: p.with_name(f"mask_{p.name}"), codes=["background", "digit"], bs=2)
            >>> xb, mb = dls.valid.one_batch()  # the masks match their images pixel for pixel
            >>> tuple(mb.shape), mb.dtype, mb.codes
            ((2, 28, 28), torch.int64, ['background', 'digit'])
            >>> torch.equal(mb.as_subclass(torch.Tensor), (xb[:, 0] > 0.5).long().as_subclass(torch.Tensor))
            True
            >>> tmp.cleanup()
        """
        dblock = DataBlock(
            blocks=(ImageBlock(img_cls, skip_bad=skip_bad), MaskBlock(codes, skip_bad=skip_bad)), get_y=label_func,
            splitter=RandomSplitter(valid_pct, seed=_split_seed(seed)), item_tfms=item_tfms, batch_tfms=batch_tfms,
        )  # fmt: skip
        dls = dblock.dataloaders([Path(path) / f for f in fnames], bs=bs, path=str(path), **kwargs)
        return cls(*dls.loaders, path=str(path))
