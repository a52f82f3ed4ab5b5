"""Export and reload text learners as data: tokenizer state, vocabularies and the registered model, no pickle.

The description holds the kind (``"lm"``, ``"classifier"`` or ``"transformer"``), the tokenizer's ``state()`` (its
rules by registered name, or a subword model's JSON), the token vocabulary, the class names and the padding index.
``rebuild`` gives a learner whose ``predict(text)`` works without the training data: the tokenizer is rebuilt with
:func:`lamina.text.core.tokenizer_from_state` (a transformer's from its ``tokenizer.json``, see
:mod:`lamina.text.transformers`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lamina.data.load import DataLoader, DataLoaders
from lamina.learner.export import ExportError, model_n_out, register_app
from lamina.learner.learner import Learner
from lamina.learner.losses import CrossEntropyLossFlat
from lamina.text.core import tokenizer_from_state
from lamina.text.learner import LMLearner, ModelResetter, TextClassifierLearner, TextLearner
from lamina.text.models import AWD_LSTM

__all__ = ["TEXT_KINDS", "describe_text", "placeholder_dataloaders", "rebuild_text"]

TEXT_KINDS = ("lm", "classifier", "transformer")


def describe_text(learn: Learner, tensors: dict[str, Tensor]) -> dict[str, Any]:
    """The JSON-safe data description of a text learner.

    Args:
        learn: a learner from ``language_model_learner``, ``text_classifier_learner`` or
            ``transformer_classifier_learner``.
        tensors: receives tensors of the description (none for text).

    Examples:
        >>> describe_text(Learner.__new__(Learner), {})
        Traceback (most recent call last):
        ...
        lamina.learner.export.ExportError: only text learners ...
    """
    describe = getattr(learn, "export_description", None)
    if callable(describe):
        return dict(describe())
    if not isinstance(learn, TextLearner):
        raise ExportError("only text learners (language_model_learner, text_classifier_learner) export as a text app")
    bs = learn.dls.loaders[-1].bs
    return {
        "kind": "lm" if isinstance(learn, LMLearner) else "classifier",
        "tokenizer": learn.tokenizer.state(),
        "text_vocab": learn.text_vocab,
        "pad_idx": learn.pad_idx,
        "vocab": getattr(learn, "vocab", None),
        "bs": bs,
    }


def placeholder_dataloaders(pad_idx: int, lm: bool, bs: int = 64) -> DataLoaders:
    """DataLoaders holding one padding item: what an inference learner needs, without any training data.

    Args:
        pad_idx: the padding token.
        lm: targets are token ids (a language model) rather than one class per text.
        bs: the batch size recorded on the loaders.

    Examples:
        >>> [tuple(t.shape) for t in placeholder_dataloaders(1, lm=True).train.one_batch()]
        [(1, 2), (1, 2)]
    """
    x = torch.full((1, 2), pad_idx, dtype=torch.long)
    y = x.clone() if lm else torch.zeros(1, dtype=torch.long)
    dl = DataLoader((x, y), bs=bs)
    return DataLoaders(dl, dl)


def _check_sizes(model: nn.Module, text_vocab: list[str], vocab: list[Any] | None, kind: str) -> None:
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, AWD_LSTM) and encoder.vocab_sz != len(text_vocab):
        raise ExportError(f"the token vocabulary has {len(text_vocab)} words but the model embeds {encoder.vocab_sz}: "
                          "the file is foreign or tampered")  # fmt: skip
    if kind == "classifier" and (vocab is None or model_n_out(model) != len(vocab)):
        raise ExportError(f"the classes {vocab!r:.80} do not fit the model's {model_n_out(model)} outputs: the file is "
                          "foreign or tampered")  # fmt: skip


def rebuild_text(spec: dict[str, Any], tensors: dict[str, Tensor], model: nn.Module, loss_func: Any) -> Learner:
    """An inference text learner from an export's description and its rebuilt model.

    Args:
        spec: the description written by :func:`describe_text`.
        tensors: the export's ``app.*`` tensors.
        model: the rebuilt model, weights loaded.
        loss_func: the rebuilt loss (cross-entropy when ``None``).

    Examples:
        >>> rebuild_text({"kind": "poem"}, {}, nn.Linear(1, 1), None)
        Traceback (most recent call last):
        ...
        lamina.learner.export.ExportError: the text export names an unknown kind 'poem'...
    """
    kind = spec.get("kind")
    if kind not in TEXT_KINDS:
        raise ExportError(f"the text export names an unknown kind {kind!r} (expected one of {list(TEXT_KINDS)}): the "
                          "file is foreign or tampered")  # fmt: skip
    loss = loss_func if loss_func is not None else CrossEntropyLossFlat()
    if kind == "transformer":
        from lamina.text.transformers import rebuild_transformer

        return rebuild_transformer(spec, model, loss)
    text_vocab, vocab, pad_idx = list(spec["text_vocab"]), spec.get("vocab"), int(spec["pad_idx"])
    _check_sizes(model, text_vocab, vocab, kind)
    tokenizer = tokenizer_from_state(spec["tokenizer"])
    dls = placeholder_dataloaders(pad_idx, kind == "lm", int(spec.get("bs", 64)))
    common: dict[str, Any] = {"loss_func": loss, "metrics": [], "tokenizer": tokenizer, "text_vocab": text_vocab,
                              "pad_idx": pad_idx, "show_progress": False, "logger": None}  # fmt: skip
    if kind == "lm":
        return LMLearner(dls, model, cbs=[ModelResetter()], **common)
    return TextClassifierLearner(dls, model, vocab=list(vocab or []), **common)


register_app("text", describe_text, rebuild_text)
