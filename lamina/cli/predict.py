"""``lamina predict`` (an exported model on image files, folders or CSV rows) and ``lamina export`` (an exported
model as a graph that runs without Python: TorchScript, torch.export or ONNX)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from lamina.cli.config import CLIError, Option, add_options, resolve

__all__ = ["EXPORT_OPTIONS", "PREDICT_OPTIONS", "add_parsers", "export", "predict", "predict_table"]

PREDICT_EXAMPLE = """examples:
  lamina predict lamina_out/model.lamina photos/new/             # every image in a folder
  lamina predict lamina_out/model.lamina a.jpg b.jpg --csv predictions.csv
  lamina predict runs/diamonds/model.lamina new_rows.csv        # a tabular model: one prediction per row
"""

EXPORT_EXAMPLE = """examples:
  lamina export lamina_out/model.lamina --format onnx           # writes lamina_out/model.onnx and model.onnx.json
  lamina export lamina_out/model.lamina --format torchscript --out deploy/model.pt
"""

_MODEL = Option("model", str, None, "a model exported by `lamina train` (or learn.export())", positional=True,
                metavar="MODEL.lamina")  # fmt: skip
_DEVICE = Option("device", str, None, "cpu, cuda, mps...; the CPU if unset")
PREDICT_OPTIONS = (
    _MODEL,
    Option("inputs", str, [], "image files or folders of images (image models), or CSV files (tabular models)",
           positional=True, many=True, metavar="INPUT"),
    Option("csv", str, None, "write the predictions to this CSV file instead of printing them", metavar="OUT.csv"),
    Option("bs", int, 64, "batch size", minimum=1),
    _DEVICE,
)  # fmt: skip
SUFFIXES = {"pt2": ".pt2", "torchscript": ".pt", "onnx": ".onnx"}
EXPORT_OPTIONS = (
    _MODEL,
    Option("format", str, "pt2", "pt2 (torch.export), torchscript (libtorch, C++) or onnx (ONNX Runtime)",
           choices=tuple(SUFFIXES)),
    Option("out", str, None, "the graph file (MODEL with .pt2, .pt or .onnx if unset); its description is written "
           "beside it as <out>.json", metavar="FILE"),
)  # fmt: skip


def add_parsers(sub: Any) -> None:
    """Add ``predict`` and ``export`` to the ``lamina`` sub-parsers ``sub``."""
    kwargs: dict[str, Any] = {"formatter_class": argparse.RawDescriptionHelpFormatter}
    p = sub.add_parser("predict", help="label images or CSV rows with an exported model", epilog=PREDICT_EXAMPLE,
                       description="Predict with a model written by `lamina train` (or learn.export()): prints a "
                       "table, one row per image or CSV row, or writes it with --csv.", **kwargs)  # fmt: skip
    add_options(p, PREDICT_OPTIONS)
    p.set_defaults(run=predict)
    p = sub.add_parser("export", help="write an exported model as a graph for deployment (pt2, torchscript, onnx)",
                       epilog=EXPORT_EXAMPLE, description="Write the whole inference of an exported model "
                       "(preprocessing, network, decoding) as a graph that runs without Python or lamina; see "
                       "docs/deploy.md.", **kwargs)  # fmt: skip
    add_options(p, EXPORT_OPTIONS)
    p.set_defaults(run=export)


def _image_files(inputs: list[str]) -> list[Path]:
    from lamina.data import get_image_files

    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = get_image_files(path)
            if not found:
                raise CLIError(f"no image files in the folder {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CLIError(f"the input {path} does not exist")
    return files


def _image_table(learn: Any, inputs: list[str], bs: int) -> pd.DataFrame:
    files = _image_files(inputs)
    if getattr(learn, "target", None) != "single":  # labels of other kinds: one by one, decoded by the learner
        return pd.DataFrame({"input": [str(f) for f in files], "prediction": [str(learn.predict(f)[0]) for f in files]})
    preds, _, dec = learn.get_preds(dl=learn.dls.test_dl(files, bs=bs), with_decoded=True)
    vocab = learn.vocab if learn.vocab is not None else learn.dls.vocab
    return pd.DataFrame({"input": [str(f) for f in files], "prediction": [vocab[i] for i in dec.long().tolist()],
                         "probability": preds.max(1).values.numpy().round(4)})  # fmt: skip


def _row_table(learn: Any, inputs: list[str], bs: int) -> pd.DataFrame:
    import torch

    for name in inputs:
        if not Path(name).is_file():
            raise CLIError(f"the input {name} does not exist (a tabular model predicts the rows of CSV files)")
    df = pd.concat([pd.read_csv(name) for name in inputs], ignore_index=True)
    preds, _, dec = learn.get_preds(dl=learn.dls.test_dl(df, bs=bs), with_decoded=True)
    processor = learn.dls.processor
    out = df.copy()
    for name, values in processor.decode_target(dec.float() if dec.dtype == torch.bool else dec).items():
        out[f"{name}_pred"] = values
    if processor.target.kind == "single":
        out["probability"] = preds.max(1).values.numpy().round(4)
    return out


def predict_table(model: str | Path, inputs: list[str], bs: int = 64, device: str | None = None) -> pd.DataFrame:
    """The predictions of the exported ``model`` on ``inputs``, a row each: what ``lamina predict`` prints.

    Args:
        model: the exported file.
        inputs: image files and folders (an image model), or CSV files (a tabular model).
        bs: batch size.
        device: where to run the model (the CPU when ``None``).

    Examples:
        >>> predict_table("missing.lamina", ["a.png"])
        Traceback (most recent call last):
        ...
        lamina.cli.config.CLIError: the model missing.lamina does not exist...
    """
    from lamina.learner import load_learner

    if not Path(model).is_file():
        raise CLIError(f"the model {model} does not exist: train one with `lamina train`, or check the path")
    learn = load_learner(model, device=device)
    if learn.app == "vision":
        return _image_table(learn, inputs, bs)
    if learn.app == "tabular":
        return _row_table(learn, inputs, bs)
    raise CLIError(f"lamina predict handles image and tabular models; {model} is a {learn.app!r} model: use "
                   "load_learner(...).predict in Python")  # fmt: skip


def predict(args: argparse.Namespace) -> int:
    """Run ``lamina predict``; 0 when done."""
    c = resolve(args, PREDICT_OPTIONS, ("model", "inputs"))
    table = predict_table(c["model"], c["inputs"], c["bs"], c["device"])
    if c["csv"] is not None:
        table.to_csv(c["csv"], index=False)
        print(f"wrote {len(table)} predictions to {c['csv']}")
    else:
        with pd.option_context("display.max_rows", None, "display.max_colwidth", None):
            print(table.to_string(index=False))
    return 0


def export(args: argparse.Namespace) -> int:
    """Run ``lamina export``; 0 when done."""
    from lamina.learner import load_learner

    c = resolve(args, EXPORT_OPTIONS, ("model",))
    model = Path(c["model"])
    if not model.is_file():
        raise CLIError(f"the model {model} does not exist: train one with `lamina train`, or check the path")
    out = Path(c["out"]) if c["out"] is not None else model.with_suffix(SUFFIXES[c["format"]])
    path = load_learner(model).export_graph(out.resolve(), format=c["format"])
    print(f"wrote {path} and {path}.json ({c['format']})")
    return 0
