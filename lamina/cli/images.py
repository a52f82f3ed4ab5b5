"""``lamina train images`` / ``lamina lr-find images``: an image classifier on a folder of images.

The recipe, in Python (what the command runs, option by option)::

    set_seed(seed)
    dls = ImageDataLoaders.from_folder(folder, valid_pct=valid_pct, seed=seed, item_tfms=Resize(size), bs=bs)
    # or, with --labels: ImageDataLoaders.from_csv(folder, labels, fn_col=..., label_col=..., ...)
    learn = vision_learner(dls, arch, pretrained=..., weights=pretrained, metrics=[accuracy], path=out)
    learn.fine_tune(epochs, ...)  # with pretrained weights; learn.fit_one_cycle(epochs, lr) from scratch
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lamina.cli.config import CLIError, Option
from lamina.cli.task import Config, Task, fit_options, save_figure

__all__ = ["IMAGE_OPTIONS", "images_task"]

EXAMPLE = """examples:
  # labels from the parent folder names (cats/1.jpg, dogs/2.jpg...); 20% held out at random
  lamina train images photos/ --arch resnet18 --size 128 --epochs 3 --out runs/photos
  # a table of file names and labels, fine-tuning ImageNet weights from a file
  lamina train images cells/ --labels labels.csv --arch mobilenet_v2 \\
      --pretrained mobilenet_v2-b0353104.pth --size 128 --bs 32 --epochs 3
  lamina lr-find images photos/ --arch resnet18 --size 128     # writes lr_find.png, prints suggestions
"""

IMAGE_OPTIONS = fit_options((
    Option("folder", str, None, "the folder of images: <label>/<image> anywhere below it, or train/ and valid/ "
           "sub-folders (then those are the split), or any layout with --labels", positional=True),
    Option("labels", str, None, "a CSV file (relative to FOLDER, or a path) with a row per image: file name "
           "(relative to FOLDER) and label", metavar="CSV"),
    Option("fn_col", str, "fname", "the column of --labels with the file names"),
    Option("label_col", str, "label", "the column of --labels with the labels"),
    Option("valid_col", str, None, "a true/false column of --labels marking validation images (instead of "
           "--valid-pct)"),
    Option("arch", str, "resnet18", "the network: resnet18, resnet34, resnet50, mobilenet_v2, xresnet18, "
           "simple_cnn..."),
    Option("pretrained", str, None, "start from ImageNet weights: a weights file, or 'imagenet' for the published "
           "ones (downloaded once, checksummed); trains from scratch if unset", metavar="WEIGHTS"),
    Option("freeze_epochs", int, 1, "with --pretrained: epochs training the new head only, before --epochs of all",
           minimum=0),
    Option("size", int, 224, "images are resized (squished) to SIZE x SIZE pixels", minimum=8),
    Option("workers", int, 0, "processes loading images (0: in the main process)", minimum=0),
))  # fmt: skip


def _loader_kwargs(c: Config) -> dict[str, Any]:
    from lamina.vision import Resize

    kwargs: dict[str, Any] = {"item_tfms": Resize(c["size"]), "bs": c["bs"], "seed": c["seed"]}
    if c["workers"]:
        kwargs["num_workers"] = c["workers"]
    if c["device"] is not None:
        kwargs["device"] = c["device"]
    return kwargs


def image_dls(c: Config) -> Any:
    """The DataLoaders the options describe (see the module's recipe)."""
    from lamina.vision import ImageDataLoaders

    folder = Path(c["folder"])
    if not folder.is_dir():
        raise CLIError(f"the image folder {folder} does not exist (or is not a folder)")
    kwargs = _loader_kwargs(c)
    if c["labels"] is not None:
        table = folder / c["labels"]
        if not table.is_file():
            raise CLIError(f"--labels {c['labels']}: no such file (looked at {table})")
        cols = {"fn_col": c["fn_col"], "label_col": c["label_col"], "valid_col": c["valid_col"]}
        return ImageDataLoaders.from_csv(folder, table, valid_pct=c["valid_pct"], **cols, **kwargs)
    if c["valid_col"] is not None:
        raise CLIError("--valid-col names a column of --labels: give --labels too, or use --valid-pct")
    if (folder / "train").is_dir() and (folder / "valid").is_dir():
        return ImageDataLoaders.from_folder(folder, **kwargs)
    return ImageDataLoaders.from_folder(folder, valid_pct=c["valid_pct"], **kwargs)


def build(c: Config) -> Any:
    """The vision learner of the options."""
    from lamina.learner import accuracy
    from lamina.vision import vision_learner

    pretrained = c["pretrained"]
    if pretrained not in (None, "imagenet") and not Path(pretrained).is_file():
        raise CLIError(f"--pretrained {pretrained}: no such weights file (or say 'imagenet' for the published ones)")
    dls = image_dls(c)
    weights = None if pretrained in (None, "imagenet") else pretrained
    shown = ", ".join(map(str, dls.vocab[:10])) + ("..." if len(dls.vocab) > 10 else "")
    print(f"{len(dls.train.dataset)} training and {len(dls.valid.dataset)} validation images, "
          f"{len(dls.vocab)} classes: {shown}")  # fmt: skip
    return vision_learner(dls, c["arch"], pretrained=pretrained is not None, weights=weights, metrics=[accuracy],
                          path=c["out"])  # fmt: skip


def fit(learn: Any, c: Config) -> None:
    """``fine_tune`` when the body was pretrained (and so frozen), else ``fit_one_cycle``."""
    if c["pretrained"] is not None:
        lr = {} if c["lr"] is None else {"base_lr": c["lr"]}
        learn.fine_tune(c["epochs"], freeze_epochs=c["freeze_epochs"], **lr)
    else:
        learn.fit_one_cycle(c["epochs"], c["lr"])


def report(learn: Any, c: Config, out: Path) -> list[Path]:
    """``show_batch.png``, ``results.png`` and ``confusion_matrix.png`` in ``out``."""
    from lamina.vision import ClassificationInterpretation, show_results

    mixed = learn.dls.valid.new(shuffle=True, seed=c["seed"])  # a folder sorted by label: show a mix
    interp = ClassificationInterpretation.from_learner(learn)
    return [
        save_figure(learn.dls.show_batch(max_n=9), out / "show_batch.png"),
        save_figure(show_results(learn, dl=mixed, max_n=9), out / "results.png"),
        save_figure(interp.plot_confusion_matrix(), out / "confusion_matrix.png"),
    ]


def images_task() -> Task:
    """The ``images`` task of ``train`` and ``lr-find``.

    Examples:
        >>> images_task().name, images_task().required
        ('images', ('folder',))
    """
    summary = "train an image classifier on a folder of images"
    return Task("images", summary, EXAMPLE, IMAGE_OPTIONS, ("folder",), build, fit, report)
