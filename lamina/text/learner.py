"""Text learners: the ULMFiT language model and classifier on the AWD-LSTM, with their callbacks and encoder files.

``language_model_learner`` trains next-token prediction (the encoder's state carried across the contiguous
batches, reset by :class:`ModelResetter` at the start of each epoch and validation); ``predict(text, n_words,
temperature)`` continues a text. ``save_encoder`` / ``load_encoder`` move the trained encoder (as safetensors, with
its vocabulary, so a classifier with another vocabulary gets the rows of the words both know) to
``text_classifier_learner``, whose parameter groups (embedding, each LSTM layer, head) make ``freeze_to(-2)``...
gradual unfreezing. :class:`RNNRegularizer` adds activation regularisation (AR, on the dropped outputs the decoder
or head reads) and temporal activation regularisation (TAR, on the raw outputs of the last layer) to the loss.

Both learners record ``learn.app = "text"`` and a registered ``model_spec``, so ``learn.export()`` writes the
tokenizer's state, the vocabularies and the model as data plus safetensors (see :mod:`lamina.text.export`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lamina.core.utils import atomic_write
from lamina.data.load import DataLoader, DataLoaders
from lamina.learner.callback import Callback
from lamina.learner.export import warn_if_not_exportable
from lamina.learner.learner import Learner
from lamina.learner.losses import CrossEntropyLossFlat
from lamina.learner.metrics import Perplexity, accuracy
from lamina.nn.registry import build_model, registered_name
from lamina.text.core import EOS, UNK
from lamina.text.models import AWD_LSTM, awd_lstm_classifier_split, awd_lstm_lm_split

__all__ = [
    "LMLearner",
    "ModelResetter",
    "RNNRegularizer",
    "TextClassifierLearner",
    "TextLearner",
    "language_model_learner",
    "left_pad",
    "text_classifier_learner",
]


# ---------------------------------------------------------------- callbacks


class ModelResetter(Callback):
    """Resets the model's carried state (``model.reset()``) before each training and validation phase and after fit.

    Examples:
        >>> ModelResetter().name
        'model_resetter'
    """

    def _reset(self) -> None:
        reset = getattr(self.learn.model, "reset", None)
        if callable(reset):
            reset()

    def before_train(self) -> None:
        self._reset()

    def before_validate(self) -> None:
        self._reset()

    def after_fit(self) -> None:
        self._reset()


def _last_rnn(model: nn.Module) -> nn.Module:
    encoder = next((m for m in model.modules() if isinstance(m, AWD_LSTM)), None)
    if encoder is None:
        raise TypeError(f"RNNRegularizer needs a model with an AWD_LSTM encoder, got {type(model).__name__}")
    return cast(nn.Module, encoder.rnns[-1])


class RNNRegularizer(Callback):
    """AR and TAR: ``alpha * mean(dropped**2) + beta * mean((raw[t] - raw[t-1])**2)`` added to the training loss.

    ``raw`` is the last LSTM layer's output, ``dropped`` what the decoder reads after its dropout
    (``model.output_dp``; the raw output when the model has none). Hooks are on the model during fit only.

    Args:
        alpha: the weight of activation regularisation.
        beta: the weight of temporal activation regularisation.

    Examples:
        >>> RNNRegularizer(alpha=2.0, beta=1.0).alpha
        2.0
    """

    def __init__(self, alpha: float = 2.0, beta: float = 1.0) -> None:
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
        self.alpha, self.beta = float(alpha), float(beta)
        self._raw: list[Tensor] = []
        self._dropped: list[Tensor] = []
        self._handles: list[Any] = []

    def _keep_raw(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if module.training:
            self._raw.append(output[0])

    def _keep_dropped(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if module.training:
            self._dropped.append(output)

    def before_fit(self) -> None:
        model = self.learn.model
        self._handles = [_last_rnn(model).register_forward_hook(self._keep_raw)]
        output_dp = getattr(model, "output_dp", None)
        if isinstance(output_dp, nn.Module):
            self._handles.append(output_dp.register_forward_hook(self._keep_dropped))

    def before_batch(self) -> None:
        self._raw, self._dropped = [], []

    def after_loss(self) -> None:
        if not self.learn.training or not self._raw:
            return
        raw = [r for r in self._raw if r.requires_grad]  # a classifier's early chunks run without gradients
        dropped = [d for d in self._dropped if d.requires_grad] or raw
        terms = [self.alpha * d.float().pow(2).mean() for d in dropped if d.numel()]
        terms += [self.beta * (r[:, 1:] - r[:, :-1]).float().pow(2).mean() for r in raw if r.shape[1] > 1]
        if terms:
            self.learn.loss = self.learn.loss + torch.stack(terms).sum()
        self._raw, self._dropped = [], []

    def after_fit(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles, self._raw, self._dropped = [], [], []


# ---------------------------------------------------------------- shared text learner


def left_pad(ids: Sequence[Sequence[int]], pad_idx: int) -> Tensor:
    """Token id lists padded with ``pad_idx`` at the start to one ``n x max_len`` LongTensor.

    Args:
        ids: one list of token ids per text.
        pad_idx: the padding token.

    Examples:
        >>> left_pad([[5, 6, 7], [8]], 1).tolist()
        [[5, 6, 7], [1, 1, 8]]
    """
    length = max((len(i) for i in ids), default=0)
    out = torch.full((len(ids), max(length, 1)), pad_idx, dtype=torch.long)
    for row, seq in enumerate(ids):
        if len(seq):
            out[row, out.shape[1] - len(seq) :] = torch.as_tensor(list(seq), dtype=torch.long)
    return out


class TextLearner(Learner):
    """A :class:`~lamina.learner.Learner` that knows its tokenizer and token vocabulary, and moves its encoder.

    Args:
        *args: as :class:`~lamina.learner.Learner`.
        tokenizer: the tokenizer that made the data (``tokenize``, ``decode``, ``state``).
        text_vocab: the token vocabulary.
        pad_idx: the padding token's index.
        **kwargs: as :class:`~lamina.learner.Learner`.

    Examples:
        >>> issubclass(TextLearner, Learner)
        True
    """

    def __init__(self, *args: Any, tokenizer: Any, text_vocab: Sequence[str], pad_idx: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tokenizer, self.text_vocab, self.pad_idx = tokenizer, list(text_vocab), int(pad_idx)
        self._index = {t: i for i, t in enumerate(self.text_vocab)}
        self._unk = self._index.get(UNK, 0)

    def numericalize(self, text: str) -> list[int]:
        """The token ids of ``text`` (tokenized as the data was; unknown words map to the UNK token)."""
        if not isinstance(text, str):
            raise TypeError(f"expected a text (str), got {type(text).__name__}: {text!r:.80}")
        return [self._index.get(t, self._unk) for t in self.tokenizer.tokenize(text)]

    def decode_ids(self, ids: Sequence[int]) -> str:
        """Readable text from token ids (padding dropped)."""
        return str(self.tokenizer.decode([self.text_vocab[i] for i in ids if i != self.pad_idx]))

    def _encoder(self) -> AWD_LSTM:
        encoder = getattr(self.model, "encoder", None)
        if not isinstance(encoder, AWD_LSTM):
            raise TypeError(f"the model has no AWD_LSTM encoder (model.encoder), got {type(encoder).__name__}")
        return encoder

    def save_encoder(self, name: str) -> Path:
        """Write the encoder's weights and its vocabulary to ``path/model_dir/name.safetensors``, atomically.

        Args:
            name: the file's stem.
        """
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous().clone() for k, v in self._encoder().state_dict().items()}
        path = self.path / self.model_dir / f"{name}.safetensors"
        with atomic_write(path) as tmp:
            save_file(state, str(tmp), metadata={"text_vocab": json.dumps(self.text_vocab)})
        return path

    def load_encoder(self, name: str) -> TextLearner:
        """Load an encoder written by ``save_encoder``; words of this learner's vocabulary that the file's lacks
        start at the mean embedding. Shapes are checked before anything is copied.

        Args:
            name: the file's stem in ``path/model_dir``.
        """
        from safetensors import safe_open

        path = self.path / self.model_dir / f"{name}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"no saved encoder at {path}: call learn.save_encoder({name!r}) first")
        with safe_open(str(path), framework="pt") as f:
            saved_vocab = json.loads((f.metadata() or {}).get("text_vocab", "null"))
            state = {k: f.get_tensor(k) for k in f.keys()}
        if isinstance(saved_vocab, list) and saved_vocab != self.text_vocab and "embedding.weight" in state:
            state["embedding.weight"] = _match_embeddings(state["embedding.weight"], saved_vocab, self.text_vocab)
        encoder = self._encoder()
        own = encoder.state_dict()
        bad = [f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in state.items()
               if k in own and v.shape != own[k].shape]  # fmt: skip
        missing = sorted(set(own) - set(state))
        if bad or missing:
            raise ValueError(
                f"{path} does not fit this encoder ({bad[:3]}, missing {missing[:3]}): build both learners with the "
                "same AWD_LSTM config (emb_sz, n_hid, n_layers); nothing was loaded"
            )
        encoder.load_state_dict(state)
        if self.opt is not None:
            self.opt.clear_state()
        return self


def _match_embeddings(weight: Tensor, old_vocab: Sequence[str], new_vocab: Sequence[str]) -> Tensor:
    """Rows of ``weight`` (indexed by ``old_vocab``) rearranged for ``new_vocab``; unknown words get the mean row."""
    index = {t: i for i, t in enumerate(old_vocab)}
    out = weight.mean(0, keepdim=True).repeat(len(new_vocab), 1)
    pairs = [(i, index[t]) for i, t in enumerate(new_vocab) if t in index]
    if pairs:
        new_rows, old_rows = (torch.tensor(p) for p in zip(*pairs))
        out[new_rows] = weight[old_rows]
    return out


# ---------------------------------------------------------------- the language model


class LMLearner(TextLearner):
    """A language-model learner: ``predict(text, n_words, temperature)`` continues a text.

    Inference starts from a fresh state and puts the training state back after, under a lock, so ``validate`` and
    ``predict`` leave the learner as they found it.

    Examples:
        >>> issubclass(LMLearner, TextLearner)
        True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._infer_lock = threading.Lock()

    def _infer(self, dl: DataLoader, collectors: Sequence[Any]) -> None:
        encoder = self._encoder()
        with self._infer_lock:
            carried = encoder.hidden
            encoder.reset()
            try:
                super()._infer(dl, collectors)
            finally:
                encoder.hidden = carried

    def predict(  # type: ignore[override]
        self,
        text: str,
        n_words: int = 20,
        temperature: float = 1.0,
        no_unk: bool = True,
        seed: int | None = None,
    ) -> str:
        """``text`` followed by ``n_words`` sampled tokens, decoded to readable text.

        Args:
            text: the start.
            n_words: how many tokens to add.
            temperature: divides the logits (lower is more conservative; ``0`` always takes the likeliest token).
            no_unk: never sample the unknown token.
            seed: seed of the sampling (the global generator when ``None``).
        """
        if n_words < 0 or temperature < 0:
            raise ValueError(f"n_words and temperature must be >= 0, got n_words={n_words}, temperature={temperature}")
        ids = self.numericalize(text)
        eos = self._index.get(EOS)
        ids = ids[:-1] if ids and ids[-1] == eos and len(ids) > 1 else ids
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        new = _sample(self.model, self._encoder(), ids, n_words, temperature, self._unk if no_unk else None, generator)
        return self.decode_ids(ids + new)


def _sample(
    model: nn.Module,
    encoder: AWD_LSTM,
    ids: list[int],
    n_words: int,
    temperature: float,
    unk: int | None,
    generator: torch.Generator | None,
) -> list[int]:
    """Sample ``n_words`` ids after ``ids`` with the encoder's pure ``encode`` (the carried state is untouched)."""
    decoder = cast(nn.Module, model.decoder)
    device = encoder.embedding.weight.device
    if model.training:
        model.eval()
    new: list[int] = []
    with torch.no_grad():
        out, state = encoder.encode(torch.tensor([ids or [0]], device=device))
        for _ in range(n_words):
            logits = decoder(out[:, -1:])[0, -1].float().cpu()
            if unk is not None:
                logits[unk] = float("-inf")
            if temperature == 0:
                idx = int(logits.argmax())
            else:
                idx = int(torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator))
            new.append(idx)
            out, state = encoder.encode(torch.tensor([[idx]], device=device), state)
    return new


# ---------------------------------------------------------------- the classifier


class TextClassifierLearner(TextLearner):
    """A text classifier: ``predict("some text")`` gives ``(label, index, probabilities)``.

    Args:
        *args: as :class:`TextLearner`.
        vocab: the class names.
        **kwargs: as :class:`TextLearner`.

    Examples:
        >>> issubclass(TextClassifierLearner, TextLearner)
        True
    """

    def __init__(self, *args: Any, vocab: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vocab = list(vocab)

    def texts_dl(self, texts: Sequence[str], bs: int = 64) -> DataLoader:
        """An unlabelled loader of ``texts`` (tokenized, numericalized and left-padded as the training data).

        Args:
            texts: the texts.
            bs: the batch size.
        """
        return self.ids_dl([self.numericalize(t) for t in texts], bs)

    def ids_dl(self, ids: Sequence[Sequence[int]], bs: int = 64) -> DataLoader:
        """An unlabelled loader of token id lists, left-padded per batch.

        Args:
            ids: one list of ids per text.
            bs: the batch size.
        """
        if not len(ids):
            raise ValueError("no texts to predict: pass at least one")
        return DataLoader((left_pad(ids, self.pad_idx),), bs=bs, device=self.dls.device)

    def predict(self, item: str) -> tuple[Any, Tensor, Tensor]:
        """Classify one text.

        Returns:
            ``(label, index, probs)``: the class name, its index (a 0-d tensor) and the probabilities.
        """
        preds, _ = self.get_preds(dl=self.texts_dl([item], bs=1))
        index = preds[0].argmax()
        return self.vocab[int(index)], index, preds[0]

    def predict_texts(self, texts: Sequence[str], bs: int = 64) -> list[Any]:
        """The predicted class name of each text.

        Args:
            texts: the texts.
            bs: the batch size.
        """
        preds, _ = self.get_preds(dl=self.texts_dl(texts, bs))
        return [self.vocab[int(i)] for i in preds.argmax(1)]

    def show_results(self, dl: DataLoader | None = None, max_n: int = 10) -> pd.DataFrame:
        """Print and return a table of ``max_n`` texts of ``dl`` (validation by default): text, target, prediction.

        Args:
            dl: a labelled classifier loader.
            max_n: most rows shown.
        """
        from lamina.text.interpret import gather_texts

        got = gather_texts(self, dl or self.dls.valid, max_n=max_n)
        df = pd.DataFrame({
            "text": [self.decode_ids(i) for i in got.ids],
            "target": [self.vocab[int(t)] for t in got.targets],
            "prediction": [self.vocab[int(p)] for p in got.probs.argmax(1)],
        })  # fmt: skip
        print(df.to_string())
        return df

    def interpret(self, dl: DataLoader | None = None) -> Any:
        """A :class:`~lamina.text.interpret.TextClassificationInterpretation` of ``dl`` (validation by default)."""
        from lamina.text.interpret import TextClassificationInterpretation

        return TextClassificationInterpretation.from_learner(self, dl)


# ---------------------------------------------------------------- factories


def _register_export() -> None:
    """Make sure the ``"text"`` export application is registered (its module imports this one)."""
    import lamina.text.export  # noqa: F401


def _data_parts(dls: DataLoaders, factory: str) -> tuple[Any, list[str], int]:
    missing = [a for a in ("tokenizer", "text_vocab", "pad_idx") if getattr(dls, a, None) is None]
    if missing:
        raise TypeError(f"{factory} needs text DataLoaders (TextDataLoaders) with {missing}: build them with "
                        "TextDataLoaders.from_df / from_csv / from_folder")  # fmt: skip
    return dls.tokenizer, list(dls.text_vocab), int(dls.pad_idx)  # type: ignore[attr-defined]


def _arch_name(arch: Any) -> str:
    name = arch if isinstance(arch, str) else registered_name(arch)
    if name != "awd_lstm":
        raise ValueError(f"the text learners build AWD_LSTM models (arch=AWD_LSTM or 'awd_lstm'), got {arch!r}; for a "
                         "pretrained transformer pass its folder to text_classifier_learner")  # fmt: skip
    return name


def language_model_learner(
    dls: DataLoaders,
    arch: Any = AWD_LSTM,
    config: dict[str, Any] | None = None,
    drop_mult: float = 1.0,
    metrics: Any = None,
    alpha: float = 2.0,
    beta: float = 1.0,
    **kwargs: Any,
) -> LMLearner:
    """A language-model learner on ``dls`` (``is_lm=True`` loaders): AWD-LSTM with tied decoder, AR/TAR, resets.

    Args:
        dls: language-model DataLoaders (``x`` and ``y`` token ids, ``y`` shifted by one).
        arch: ``AWD_LSTM`` (or its registered name ``"awd_lstm"``).
        config: encoder settings over :data:`~lamina.text.models.AWD_LSTM_LM_CONFIG` (``emb_sz``, ``n_hid``...).
        drop_mult: scales every dropout.
        metrics: ``[accuracy, Perplexity()]`` when ``None``.
        alpha: the AR weight (:class:`RNNRegularizer`).
        beta: the TAR weight.
        **kwargs: passed to :class:`LMLearner` (``lr``, ``wd``, ``cbs``, ``path``...).

    Examples:
        >>> language_model_learner(None, "gru")
        Traceback (most recent call last):
        ...
        ValueError: the text learners build AWD_LSTM models (arch=AWD_LSTM or 'awd_lstm'), got 'gru'...
    """
    _arch_name(arch)
    tokenizer, text_vocab, pad_idx = _data_parts(dls, "language_model_learner")
    model_kwargs = {"vocab_sz": len(text_vocab), "config": {**(config or {}), "pad_idx": pad_idx},
                    "drop_mult": drop_mult}  # fmt: skip
    model = build_model("awd_lstm_lm", **model_kwargs)
    cbs = [ModelResetter(), RNNRegularizer(alpha, beta), *kwargs.pop("cbs", [])]
    metrics = [accuracy, Perplexity()] if metrics is None else metrics
    learn = LMLearner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=metrics, splitter=awd_lstm_lm_split,
                      cbs=cbs, tokenizer=tokenizer, text_vocab=text_vocab, pad_idx=pad_idx, **kwargs)  # fmt: skip
    learn.app, learn.model_spec = "text", {"name": "awd_lstm_lm", "kwargs": model_kwargs}
    _register_export()
    warn_if_not_exportable(learn, "language_model_learner")
    return learn


def text_classifier_learner(
    dls: DataLoaders,
    arch: Any = AWD_LSTM,
    seq_len: int = 72,
    config: dict[str, Any] | None = None,
    drop_mult: float = 0.5,
    lin_ftrs: Sequence[int] | None = None,
    ps: Sequence[float] | None = None,
    max_len: int = 1440,
    metrics: Any = None,
    alpha: float = 2.0,
    beta: float = 1.0,
    **kwargs: Any,
) -> Learner:
    """A text classifier on ``dls``: AWD-LSTM over chunks of ``seq_len`` with masked concat pooling, or, when
    ``arch`` is the folder of a Hugging Face model, that pretrained transformer (see
    :func:`lamina.text.transformers.transformer_classifier_learner`).

    Args:
        dls: classifier DataLoaders (left-padded token ids, class targets).
        arch: ``AWD_LSTM`` / ``"awd_lstm"``, or a Hugging Face model folder.
        seq_len: the encoder's chunk length.
        config: encoder settings over :data:`~lamina.text.models.AWD_LSTM_CLASSIFIER_CONFIG`.
        drop_mult: scales every dropout.
        lin_ftrs: hidden widths of the head.
        ps: the head's dropouts.
        max_len: how many last positions are pooled.
        metrics: ``[accuracy]`` when ``None``.
        alpha: the AR weight.
        beta: the TAR weight.
        **kwargs: passed to the learner (``lr``, ``wd``, ``cbs``, ``path``...).

    Examples:
        >>> text_classifier_learner(None, "lstm")
        Traceback (most recent call last):
        ...
        ValueError: the text learners build AWD_LSTM models (arch=AWD_LSTM or 'awd_lstm'), got 'lstm'...
    """
    if isinstance(arch, (str, Path)) and Path(arch).is_dir():
        from lamina.text.transformers import transformer_classifier_learner

        return transformer_classifier_learner(dls, arch, metrics=metrics, **kwargs)
    _arch_name(arch)
    tokenizer, text_vocab, pad_idx = _data_parts(dls, "text_classifier_learner")
    vocab = getattr(dls, "vocab", None)
    classes = list(vocab) if vocab is not None else []
    if not classes:
        raise TypeError("text_classifier_learner needs class names (dls.vocab): build the loaders with a label column")
    model_kwargs = {"vocab_sz": len(text_vocab), "n_class": len(classes), "config": {**(config or {}),
                    "pad_idx": pad_idx}, "drop_mult": drop_mult, "seq_len": seq_len, "max_len": max_len,
                    "lin_ftrs": None if lin_ftrs is None else list(lin_ftrs),
                    "ps": None if ps is None else list(ps)}  # fmt: skip
    model = build_model("awd_lstm_classifier", **model_kwargs)
    cbs = [RNNRegularizer(alpha, beta), *kwargs.pop("cbs", [])]
    learn = TextClassifierLearner(dls, model, loss_func=CrossEntropyLossFlat(),
                                  metrics=[accuracy] if metrics is None else metrics,
                                  splitter=awd_lstm_classifier_split, cbs=cbs, tokenizer=tokenizer,
                                  text_vocab=text_vocab, pad_idx=pad_idx, vocab=classes, **kwargs)  # fmt: skip
    learn.app, learn.model_spec = "text", {"name": "awd_lstm_classifier", "kwargs": model_kwargs}
    _register_export()
    warn_if_not_exportable(learn, "text_classifier_learner")
    return learn
