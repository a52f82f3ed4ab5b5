"""AWD-LSTM: an LSTM language-model encoder regularised by dropout in every place it can go.

Merity et al.'s recipe ("Regularizing and Optimizing LSTM Language Models"): whole words dropped from the embedding
matrix (``embed_p``), one dropout mask per sequence on the embeddings (``input_p``) and between the layers
(``hidden_p``), and DropConnect on each layer's hidden-to-hidden weights (``weight_p``). The layers are
:class:`WeightDropLSTM`, one LSTM layer whose weights are plain parameters handed to ``torch.lstm`` on each call, so
the dropped weight is an ordinary tensor of the graph: nothing is swapped on a module, nothing needs flattening.

:meth:`AWD_LSTM.encode` is pure (state in, state out); calling the module carries the state from one batch to the next
(the language-model batches are contiguous streams), detached, until :meth:`AWD_LSTM.reset`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lamina.nn.registry import register_model

__all__ = ["AWD_LSTM", "LSTMState", "RNNDropout", "WeightDropLSTM", "embedding_dropout", "sequence_dropout"]

LSTMState = tuple[Tensor, Tensor]  # (h, c), each ``1 x bs x n_hid``


def _check_p(name: str, p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")
    return float(p)


def sequence_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Dropout of ``bs x seq_len x features`` activations with one mask per sequence (the same units at every step).

    Args:
        x: the activations.
        p: the probability of dropping a unit.
        training: drop only when training.

    Examples:
        >>> out = sequence_dropout(torch.ones(2, 5, 8), 0.5)
        >>> bool((out == out[:, :1]).all()), sorted(set(out.flatten().tolist())) in ([0.0, 2.0], [2.0], [0.0])
        (True, True)
    """
    if not training or p == 0.0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p).div_(1 - p)
    return x * mask


def embedding_dropout(weight: Tensor, p: float, training: bool = True) -> Tensor:
    """The embedding matrix with whole rows (words) zeroed with probability ``p``, the others scaled by ``1/(1-p)``.

    Args:
        weight: ``vocab x emb_sz``.
        p: the probability of dropping a word.
        training: drop only when training.

    Examples:
        >>> w = embedding_dropout(torch.ones(1000, 4), 0.5)
        >>> bool(((w == 0).all(1) | (w == 2).all(1)).all())
        True
    """
    if not training or p == 0.0:
        return weight
    return weight * weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p).div_(1 - p)


class RNNDropout(nn.Module):
    """:func:`sequence_dropout` as a module (active in training mode only).

    Examples:
        >>> RNNDropout(0.3).eval()(torch.ones(1, 2, 3)).sum().item()
        6.0
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _check_p("p", p)

    def forward(self, x: Tensor) -> Tensor:
        """Drop the same units at every step of each sequence."""
        return sequence_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class WeightDropLSTM(nn.Module):
    """One batch-first LSTM layer with DropConnect on its hidden-to-hidden weights (a new mask per batch).

    Args:
        n_in: input features.
        n_hid: hidden (and output) features.
        weight_p: the probability of dropping each hidden-to-hidden weight while training.

    Examples:
        >>> layer = WeightDropLSTM(3, 5, weight_p=0.5)
        >>> out, (h, c) = layer(torch.zeros(2, 7, 3))
        >>> tuple(out.shape), tuple(h.shape), bool(torch.equal(out[:, -1], h[0]))
        ((2, 7, 5), (1, 2, 5), True)
    """

    def __init__(self, n_in: int, n_hid: int, weight_p: float = 0.5) -> None:
        super().__init__()
        if n_in < 1 or n_hid < 1:
            raise ValueError(f"n_in and n_hid must be >= 1, got n_in={n_in}, n_hid={n_hid}")
        self.n_in, self.n_hid, self.weight_p = n_in, n_hid, _check_p("weight_p", weight_p)
        self.weight_ih = nn.Parameter(torch.empty(4 * n_hid, n_in))
        self.weight_hh = nn.Parameter(torch.empty(4 * n_hid, n_hid))
        self.bias_ih = nn.Parameter(torch.empty(4 * n_hid))
        self.bias_hh = nn.Parameter(torch.empty(4 * n_hid))
        bound = 1 / math.sqrt(n_hid)
        for w in self.parameters():
            nn.init.uniform_(w, -bound, bound)

    def init_state(self, bs: int, device: torch.device | None = None) -> LSTMState:
        """Zeros ``(h, c)`` for a batch of ``bs`` sequences.

        Args:
            bs: the batch size.
            device: where (the layer's weights' device when ``None``).
        """
        device = device if device is not None else self.weight_hh.device
        zeros = torch.zeros(1, bs, self.n_hid, device=device, dtype=self.weight_hh.dtype)
        return zeros, zeros.clone()

    def forward(self, x: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """``bs x seq_len x n_in`` to ``bs x seq_len x n_hid`` outputs and the final ``(h, c)``."""
        if x.ndim != 3 or x.shape[-1] != self.n_in:
            raise ValueError(f"WeightDropLSTM expects bs x seq_len x {self.n_in} inputs, got {tuple(x.shape)}")
        state = self.init_state(x.shape[0], x.device) if state is None else state
        w_hh = F.dropout(self.weight_hh, self.weight_p, self.training)
        weights = [self.weight_ih, w_hh, self.bias_ih, self.bias_hh]
        out, h, c = torch.lstm(x, state, weights, True, 1, 0.0, self.training, False, True)
        return out, (h, c)

    def extra_repr(self) -> str:
        return f"{self.n_in}, {self.n_hid}, weight_p={self.weight_p}"


@register_model("awd_lstm")
class AWD_LSTM(nn.Module):
    """The AWD-LSTM encoder: ``bs x seq_len`` token ids to ``bs x seq_len x emb_sz`` outputs of its last layer.

    The last layer outputs ``emb_sz`` features so a decoder can share the embedding matrix (tied weights).

    Args:
        vocab_sz: the vocabulary's size.
        emb_sz: the embedding (and output) width.
        n_hid: the hidden width of every layer but the last.
        n_layers: the number of LSTM layers.
        pad_idx: the padding token (its embedding stays zero).
        hidden_p: dropout between layers (one mask per sequence).
        input_p: dropout on the embeddings (one mask per sequence).
        embed_p: the probability of dropping a whole word from the embedding matrix.
        weight_p: DropConnect on the hidden-to-hidden weights.

    Examples:
        >>> enc = AWD_LSTM(100, emb_sz=8, n_hid=16, n_layers=2)
        >>> out = enc(torch.randint(0, 100, (3, 5)))
        >>> tuple(out.shape), enc.hidden is not None
        ((3, 5, 8), True)
        >>> enc.reset(); enc.hidden is None
        True
    """

    def __init__(
        self,
        vocab_sz: int,
        emb_sz: int = 400,
        n_hid: int = 1152,
        n_layers: int = 3,
        pad_idx: int = 1,
        hidden_p: float = 0.3,
        input_p: float = 0.4,
        embed_p: float = 0.05,
        weight_p: float = 0.5,
    ) -> None:
        super().__init__()
        if vocab_sz < 1 or emb_sz < 1 or n_hid < 1 or n_layers < 1:
            raise ValueError(
                f"vocab_sz, emb_sz, n_hid and n_layers must be >= 1, got {vocab_sz}, {emb_sz}, {n_hid}, {n_layers}"
            )
        if not 0 <= pad_idx < vocab_sz:
            raise ValueError(f"pad_idx must index the vocabulary (0..{vocab_sz - 1}), got {pad_idx}")
        self.vocab_sz, self.emb_sz, self.n_hid, self.n_layers, self.pad_idx = vocab_sz, emb_sz, n_hid, n_layers, pad_idx
        self.embed_p = _check_p("embed_p", embed_p)
        self.embedding = nn.Embedding(vocab_sz, emb_sz, padding_idx=pad_idx)
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.1, 0.1)
            self.embedding.weight[pad_idx].zero_()
        sizes = [emb_sz] + [n_hid] * (n_layers - 1) + [emb_sz]
        self.rnns = nn.ModuleList([WeightDropLSTM(sizes[i], sizes[i + 1], weight_p) for i in range(n_layers)])
        self.input_dp = RNNDropout(input_p)
        self.hidden_dps = nn.ModuleList([RNNDropout(hidden_p) for _ in range(n_layers - 1)])
        self.hidden: list[LSTMState] | None = None

    def init_state(self, bs: int, device: torch.device | None = None) -> list[LSTMState]:
        """Zero states of every layer for a batch of ``bs`` sequences.

        Args:
            bs: the batch size.
            device: where (the weights' device when ``None``).
        """
        return [rnn.init_state(bs, device) for rnn in self.rnns]  # type: ignore[operator]

    def encode(self, x: Tensor, state: list[LSTMState] | None = None) -> tuple[Tensor, list[LSTMState]]:
        """The last layer's outputs for token ids ``x`` starting from ``state`` (zeros when ``None``), and the new
        state; pure: nothing is kept on the module.

        Args:
            x: ``bs x seq_len`` token ids.
            state: one ``(h, c)`` per layer.
        """
        if x.ndim != 2 or x.is_floating_point():
            raise ValueError(f"AWD_LSTM expects bs x seq_len token ids (a LongTensor), got {x.dtype} {tuple(x.shape)}")
        state = self.init_state(x.shape[0], x.device) if state is None else state
        weight = embedding_dropout(self.embedding.weight, self.embed_p, self.training)
        out = self.input_dp(F.embedding(x, weight, self.pad_idx))
        new_state = []
        for i, rnn in enumerate(self.rnns):
            out, layer_state = rnn(out, state[i])
            new_state.append(layer_state)
            if i < self.n_layers - 1:
                out = self.hidden_dps[i](out)
        return out, new_state

    def forward(self, x: Tensor) -> Tensor:
        """The last layer's outputs, starting from the state the previous batch left (detached); a batch of another
        size starts from zeros."""
        state = self.hidden
        if state is not None and state[0][0].shape[1] != x.shape[0]:
            state = None
        out, new_state = self.encode(x, state)
        self.hidden = [(h.detach(), c.detach()) for h, c in new_state]
        return out

    def reset(self) -> None:
        """Forget the carried state: the next batch starts from zeros."""
        self.hidden = None
