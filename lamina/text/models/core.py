"""Language model and classifier built on the AWD-LSTM encoder, registered so an export can rebuild them by name.

:func:`get_language_model`: the encoder and a linear decoder whose weights are the embedding matrix (tied), so the
model predicts the next token at every position. :func:`get_text_classifier`: the encoder run over the whole text in
chunks of ``seq_len`` (the state carried from chunk to chunk, so a long text fits), then masked concat pooling (the
last output, the max and the mean over the real tokens) and a small head. Classifier inputs are padded at the start
(the last position holds the last real token); the padding mask is ``x == pad_idx``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from lamina.nn.registry import register_model
from lamina.text.models.awdlstm import AWD_LSTM, LSTMState, RNNDropout, WeightDropLSTM

__all__ = [
    "AWD_LSTM_CLASSIFIER_CONFIG",
    "AWD_LSTM_LM_CONFIG",
    "LanguageModel",
    "LinearDecoder",
    "PoolingClassifier",
    "SequenceClassifier",
    "awd_lstm_classifier_split",
    "awd_lstm_lm_split",
    "get_language_model",
    "get_text_classifier",
    "masked_concat_pool",
]

# the dropout of the ULMFiT paper (Howard & Ruder 2018); ``drop_mult`` scales every probability
AWD_LSTM_LM_CONFIG: dict[str, Any] = {"emb_sz": 400, "n_hid": 1152, "n_layers": 3, "hidden_p": 0.15,
                                      "input_p": 0.25, "embed_p": 0.02, "weight_p": 0.2, "output_p": 0.1}  # fmt: skip
AWD_LSTM_CLASSIFIER_CONFIG: dict[str, Any] = {"emb_sz": 400, "n_hid": 1152, "n_layers": 3, "hidden_p": 0.3,
                                              "input_p": 0.4, "embed_p": 0.05, "weight_p": 0.5,
                                              "output_p": 0.4}  # fmt: skip
_DROPOUTS = ("hidden_p", "input_p", "embed_p", "weight_p", "output_p")


class LinearDecoder(nn.Module):
    """Dropout on the encoder's outputs, then a linear layer to the vocabulary (weights tied to ``tie_to``).

    Args:
        n_out: the vocabulary's size.
        n_hid: the encoder's output width.
        output_p: dropout on the encoder's outputs (one mask per sequence).
        tie_to: an embedding whose weight matrix the decoder shares; a weight of its own when ``None``.

    Examples:
        >>> emb = nn.Embedding(10, 4)
        >>> dec = LinearDecoder(10, 4, tie_to=emb)
        >>> dec.decoder.weight is emb.weight, tuple(dec(torch.zeros(2, 3, 4)).shape)
        (True, (2, 3, 10))
    """

    def __init__(self, n_out: int, n_hid: int, output_p: float = 0.1, tie_to: nn.Embedding | None = None) -> None:
        super().__init__()
        self.output_dp = RNNDropout(output_p)
        self.decoder = nn.Linear(n_hid, n_out)
        nn.init.zeros_(self.decoder.bias)
        if tie_to is not None:
            if tuple(tie_to.weight.shape) != (n_out, n_hid):
                raise ValueError(f"cannot tie a {n_hid}->{n_out} decoder to an embedding {tuple(tie_to.weight.shape)}")
            self.decoder.weight = tie_to.weight

    def forward(self, x: Tensor) -> Tensor:
        """``bs x seq_len x n_hid`` to ``bs x seq_len x n_out`` logits."""
        return cast(Tensor, self.decoder(self.output_dp(x)))


class LanguageModel(nn.Module):
    """An encoder and a decoder: next-token logits at every position; the encoder carries its state between calls.

    Args:
        encoder: the AWD-LSTM.
        decoder: the linear decoder.

    Examples:
        >>> lm = get_language_model(50, emb_sz=8, n_hid=16, n_layers=2)
        >>> tuple(lm(torch.randint(0, 50, (2, 6))).shape)
        (2, 6, 50)
    """

    def __init__(self, encoder: AWD_LSTM, decoder: LinearDecoder) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    @property
    def output_dp(self) -> nn.Module:
        """The dropout whose output the decoder reads (activation regularisation looks at it)."""
        return self.decoder.output_dp

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``bs x seq_len x vocab`` for token ids ``bs x seq_len``."""
        return cast(Tensor, self.decoder(self.encoder(x)))

    def reset(self) -> None:
        """Forget the encoder's carried state."""
        self.encoder.reset()


def masked_concat_pool(out: Tensor, mask: Tensor) -> Tensor:
    """``[last output, max over real tokens, mean over real tokens]`` of ``bs x seq_len x n`` outputs.

    Inputs are padded at the start, so the last position is the last real token. A row with no real token pools to
    zeros.

    Args:
        out: the encoder's outputs.
        mask: ``bs x seq_len``, True at padding.

    Examples:
        >>> out = torch.tensor([[[9.0], [1.0], [3.0]]])
        >>> masked_concat_pool(out, torch.tensor([[True, False, False]])).tolist()
        [[3.0, 3.0, 2.0]]
    """
    real = (~mask).unsqueeze(-1)
    n_real = real.sum(1).clamp(min=1)
    mean = out.masked_fill(~real, 0.0).sum(1) / n_real
    maxed = out.masked_fill(~real, float("-inf")).max(1).values
    maxed = torch.where(torch.isinf(maxed), torch.zeros_like(maxed), maxed)
    return torch.cat([out[:, -1], maxed, mean], dim=1)


class PoolingClassifier(nn.Module):
    """Masked concat pooling, then ``[BatchNorm, Dropout, Linear, ReLU]`` blocks ending in ``n_out`` logits.

    Args:
        n_in: the encoder's output width (pooling gives ``3 * n_in`` features).
        n_out: the number of classes.
        lin_ftrs: hidden widths between pooling and the output.
        ps: the dropout before each linear layer (one per layer).

    Examples:
        >>> head = PoolingClassifier(4, 3, lin_ftrs=[5], ps=[0.1, 0.2]).eval()
        >>> tuple(head(torch.zeros(2, 6, 4), torch.zeros(2, 6, dtype=torch.bool)).shape)
        (2, 3)
    """

    def __init__(self, n_in: int, n_out: int, lin_ftrs: Sequence[int] = (50,), ps: Sequence[float] = (0.2, 0.1)):
        super().__init__()
        sizes = [3 * n_in, *lin_ftrs, n_out]
        if len(ps) != len(sizes) - 1:
            raise ValueError(f"ps needs one dropout per linear layer ({len(sizes) - 1}), got {list(ps)}")
        layers: list[nn.Module] = []
        for i, (n_a, n_b) in enumerate(itertools.pairwise(sizes)):
            layers += [nn.BatchNorm1d(n_a), nn.Dropout(ps[i]), nn.Linear(n_a, n_b)]
            if i < len(sizes) - 2:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, out: Tensor, mask: Tensor) -> Tensor:
        """Logits ``bs x n_out`` from outputs ``bs x seq_len x n_in`` and the padding mask."""
        return cast(Tensor, self.layers(masked_concat_pool(out, mask)))


class SequenceClassifier(nn.Module):
    """The encoder over the whole (left-padded) text in chunks of ``seq_len``, then the pooling head.

    The state is carried from chunk to chunk; a row whose chunk is all padding keeps its zero state. Only the last
    ``max_len`` positions keep their outputs (for pooling) and gradients; earlier chunks run without gradients, so
    memory is bounded however long the text.

    Args:
        encoder: the AWD-LSTM.
        head: the pooling classifier.
        seq_len: the chunk length.
        max_len: how many last positions are pooled and trained through.

    Examples:
        >>> clf = get_text_classifier(50, 3, emb_sz=8, n_hid=16, n_layers=2, seq_len=4).eval()
        >>> tuple(clf(torch.randint(2, 50, (2, 11))).shape)
        (2, 3)
    """

    def __init__(self, encoder: AWD_LSTM, head: PoolingClassifier, seq_len: int = 72, max_len: int = 1440) -> None:
        super().__init__()
        if seq_len < 1 or max_len < 1:
            raise ValueError(f"seq_len and max_len must be >= 1, got seq_len={seq_len}, max_len={max_len}")
        self.encoder, self.head, self.seq_len, self.max_len = encoder, head, seq_len, max_len

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's outputs over the last ``max_len`` positions of ``x`` and their padding mask."""
        if x.ndim != 2:
            raise ValueError(f"the classifier expects bs x seq_len token ids, got shape {tuple(x.shape)}")
        length = x.shape[1]
        state: list[LSTMState] | None = None
        outs, masks = [], []
        for start in range(0, length, self.seq_len):
            chunk = x[:, start : start + self.seq_len]
            pad = chunk == self.encoder.pad_idx
            kept = start + chunk.shape[1] > length - self.max_len
            with torch.set_grad_enabled(kept and torch.is_grad_enabled()):
                out, new_state = self.encoder.encode(chunk, state)
            all_pad = pad.all(1).view(1, -1, 1)
            state = [(h.masked_fill(all_pad, 0.0), c.masked_fill(all_pad, 0.0)) for h, c in new_state]
            if kept:
                outs.append(out)
                masks.append(pad)
        return torch.cat(outs, 1), torch.cat(masks, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``bs x n_class`` for left-padded token ids ``bs x seq_len``."""
        out, mask = self.encode(x)
        return cast(Tensor, self.head(out, mask))

    def reset(self) -> None:
        """Nothing is carried between batches: a no-op, so every text model answers ``reset()``."""


def _encoder_config(config: dict[str, Any] | None, base: dict[str, Any], drop_mult: float) -> dict[str, Any]:
    """The base config updated by ``config``, every dropout times ``drop_mult``; an unknown key is an error."""
    merged = {**base, **(config or {})}
    unknown = sorted(set(merged) - set(base) - {"pad_idx"})
    if unknown:
        raise ValueError(f"unknown AWD_LSTM config keys {unknown}: expected some of {sorted(base)} or 'pad_idx'")
    if drop_mult < 0:
        raise ValueError(f"drop_mult must be >= 0, got {drop_mult}")
    return {k: (v * drop_mult if k in _DROPOUTS else v) for k, v in merged.items()}


@register_model("awd_lstm_lm")
def get_language_model(
    vocab_sz: int, config: dict[str, Any] | None = None, drop_mult: float = 1.0, **overrides: Any
) -> LanguageModel:
    """An AWD-LSTM language model with tied weights (:data:`AWD_LSTM_LM_CONFIG` updated by ``config``).

    Args:
        vocab_sz: the vocabulary's size.
        config: encoder settings (``emb_sz``, ``n_hid``, ``n_layers``, dropouts, ``pad_idx``) and ``output_p``.
        drop_mult: scales every dropout probability.
        **overrides: more settings, as in ``config``.

    Examples:
        >>> lm = get_language_model(30, emb_sz=6, n_hid=10, n_layers=2)
        >>> lm.decoder.decoder.weight is lm.encoder.embedding.weight
        True
    """
    cfg = _encoder_config({**(config or {}), **overrides}, AWD_LSTM_LM_CONFIG, drop_mult)
    output_p = cfg.pop("output_p")
    encoder = AWD_LSTM(vocab_sz, **cfg)
    return LanguageModel(encoder, LinearDecoder(vocab_sz, encoder.emb_sz, output_p, tie_to=encoder.embedding))


@register_model("awd_lstm_classifier")
def get_text_classifier(
    vocab_sz: int,
    n_class: int,
    config: dict[str, Any] | None = None,
    drop_mult: float = 1.0,
    seq_len: int = 72,
    max_len: int = 1440,
    lin_ftrs: Sequence[int] | None = None,
    ps: Sequence[float] | None = None,
    **overrides: Any,
) -> SequenceClassifier:
    """An AWD-LSTM classifier (:data:`AWD_LSTM_CLASSIFIER_CONFIG` updated by ``config``) with a pooling head.

    Args:
        vocab_sz: the vocabulary's size.
        n_class: the number of classes.
        config: encoder settings and ``output_p`` (the dropout before the head's first linear layer).
        drop_mult: scales every dropout probability.
        seq_len: the chunk length of the encoder.
        max_len: how many last positions are pooled.
        lin_ftrs: hidden widths of the head (``[50]`` when ``None``).
        ps: the head's dropouts, one per linear layer (``output_p`` then ``0.1`` when ``None``).
        **overrides: more encoder settings, as in ``config``.

    Examples:
        >>> clf = get_text_classifier(30, 2, emb_sz=6, n_hid=10, n_layers=2)
        >>> type(clf.encoder).__name__, clf.head.layers[-1].out_features
        ('AWD_LSTM', 2)
    """
    cfg = _encoder_config({**(config or {}), **overrides}, AWD_LSTM_CLASSIFIER_CONFIG, drop_mult)
    output_p = cfg.pop("output_p")
    lin_ftrs = [50] if lin_ftrs is None else list(lin_ftrs)
    ps = [output_p] + [0.1 * drop_mult] * len(lin_ftrs) if ps is None else list(ps)
    encoder = AWD_LSTM(vocab_sz, **cfg)
    return SequenceClassifier(encoder, PoolingClassifier(encoder.emb_sz, n_class, lin_ftrs, ps), seq_len, max_len)


def _rnn_groups(encoder: AWD_LSTM) -> list[list[Tensor]]:
    return [list(cast(WeightDropLSTM, rnn).parameters()) for rnn in encoder.rnns]


def awd_lstm_lm_split(model: nn.Module) -> list[list[Tensor]]:
    """Parameter groups of a language model: one per LSTM layer, then the embedding with the (tied) decoder.

    Examples:
        >>> [len(g) for g in awd_lstm_lm_split(get_language_model(20, emb_sz=4, n_hid=6, n_layers=2))]
        [4, 4, 2]
    """
    if not isinstance(model, LanguageModel):
        raise TypeError(f"awd_lstm_lm_split needs a LanguageModel, got {type(model).__name__}")
    last: list[Tensor] = [*model.encoder.embedding.parameters(), model.decoder.decoder.bias]
    return [*_rnn_groups(model.encoder), last]


def awd_lstm_classifier_split(model: nn.Module) -> list[list[Tensor]]:
    """Parameter groups of a classifier: the embedding, one per LSTM layer, then the head (``freeze_to(-2)`` trains
    the last LSTM layer and the head).

    Examples:
        >>> [len(g) for g in awd_lstm_classifier_split(get_text_classifier(20, 2, emb_sz=4, n_hid=6, n_layers=2))]
        [1, 4, 4, 8]
    """
    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"awd_lstm_classifier_split needs a SequenceClassifier, got {type(model).__name__}")
    return [list(model.encoder.embedding.parameters()), *_rnn_groups(model.encoder), list(model.head.parameters())]
