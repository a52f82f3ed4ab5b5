"""The tabular model: an embedding per categorical column, continuous columns (optionally embedded piecewise
linearly over quantile bins), then an MLP with batch norm and dropout.

Piecewise-linear encoding (Gorishniy et al., 2022, "On Embeddings for Numerical Features in Tabular Deep
Learning"): with bin edges ``b_0 < ... < b_T`` of a feature, component ``t`` is 0 below bin ``t``, 1 above it and
the position inside it in between. A per-feature linear layer turns the ``T`` components into a small embedding, so
the network starts from a flexible, monotone description of each number instead of one scalar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lamina.nn.layers import emb_sz_rule
from lamina.nn.registry import register_model

__all__ = [
    "PiecewiseLinearEmbedding",
    "TabularModel",
    "emb_sz_rule",
    "get_emb_sz",
    "piecewise_linear_encode",
    "quantile_bin_edges",
]


def get_emb_sz(
    cardinalities: Sequence[int], names: Sequence[str] | None = None, sizes: dict[str, int] | None = None
) -> list[tuple[int, int]]:
    """``(n_codes, width)`` per categorical column; ``sizes`` overrides the rule by column name.

    Args:
        cardinalities: number of codes of each column (its vocab, ``#na#`` included).
        names: the column names (needed with ``sizes``).
        sizes: widths chosen by hand, by column name.

    Examples:
        >>> get_emb_sz([6, 8], ["cut", "color"], {"color": 3})
        [(6, 4), (8, 3)]
    """
    names = list(names) if names is not None else [str(i) for i in range(len(cardinalities))]
    sizes = sizes or {}
    return [(int(n), int(sizes.get(c, emb_sz_rule(n)))) for n, c in zip(cardinalities, names)]


def quantile_bin_edges(conts: Tensor, n_bins: int = 16, max_rows: int = 100_000) -> Tensor:
    """Bin edges per column (``n_cont x (n_bins + 1)``) at the quantiles of ``conts``, forced strictly increasing
    (repeated quantiles of discrete columns become thin bins).

    Args:
        conts: training values, N x n_cont.
        n_bins: bins per column.
        max_rows: quantiles are computed on at most this many evenly spaced rows.

    Examples:
        >>> quantile_bin_edges(torch.arange(101.0)[:, None], n_bins=4).tolist()
        [[0.0, 25.0, 50.0, 75.0, 100.0]]
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    x = conts.float()
    if len(x) > max_rows:
        x = x[torch.linspace(0, len(x) - 1, max_rows).long()]
    q = torch.linspace(0, 1, n_bins + 1)
    edges = torch.quantile(x, q, dim=0).T.contiguous() if len(x) else q.repeat(conts.shape[1], 1)
    for t in range(1, n_bins + 1):
        edges[:, t] = torch.maximum(edges[:, t], edges[:, t - 1] + 1e-4)
    return edges


def piecewise_linear_encode(x: Tensor, edges: Tensor) -> Tensor:
    """Piecewise-linear encoding of ``x`` (B x n_cont) over ``edges`` (n_cont x (T + 1)): B x n_cont x T, each
    component in [0, 1]: values beyond the training range saturate instead of extrapolating (robust to outliers).

    Args:
        x: values.
        edges: strictly increasing bin edges per column.

    Examples:
        >>> piecewise_linear_encode(torch.tensor([[1.5], [9.0]]), torch.tensor([[0.0, 1.0, 2.0, 3.0]])).tolist()
        [[[1.0, 0.5, 0.0]], [[1.0, 1.0, 1.0]]]
    """
    left, width = edges[:, :-1], edges[:, 1:] - edges[:, :-1]
    return ((x.unsqueeze(-1) - left) / width).clamp(0.0, 1.0)


class PiecewiseLinearEmbedding(nn.Module):
    """Each continuous column encoded piecewise linearly, then a per-column linear layer and a ReLU.

    Args:
        n_cont: number of continuous columns.
        n_bins: bins per column.
        emb_sz: embedding width per column.

    Examples:
        >>> emb = PiecewiseLinearEmbedding(3, n_bins=8, emb_sz=4)
        >>> emb(torch.randn(5, 3)).shape
        torch.Size([5, 12])
    """

    edges: Tensor

    def __init__(self, n_cont: int, n_bins: int = 16, emb_sz: int = 8) -> None:
        super().__init__()
        self.register_buffer("edges", torch.linspace(-2.0, 2.0, n_bins + 1).repeat(n_cont, 1))
        self.weight = nn.Parameter(torch.randn(n_cont, n_bins, emb_sz) / n_bins**0.5)
        self.bias = nn.Parameter(torch.zeros(n_cont, emb_sz))

    def set_edges(self, edges: Tensor) -> None:
        """Use these bin edges (e.g. :func:`quantile_bin_edges` of the training rows)."""
        if edges.shape != self.edges.shape:
            raise ValueError(f"edges must have shape {tuple(self.edges.shape)}, got {tuple(edges.shape)}")
        self.edges.copy_(edges)

    def forward(self, x: Tensor) -> Tensor:
        enc = piecewise_linear_encode(x, self.edges)
        out = torch.einsum("bnt,ntd->bnd", enc, self.weight) + self.bias
        return torch.relu(out).flatten(1)


def _block(n_in: int, n_out: int, p: float, use_bn: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(n_in, n_out, bias=not use_bn), nn.ReLU(inplace=True)]
    if use_bn:
        layers.append(nn.BatchNorm1d(n_out))
    if p:
        layers.append(nn.Dropout(p))
    return layers


@register_model("tabular_model")
class TabularModel(nn.Module):
    """Embeddings of categorical columns and (embedded) continuous columns into an MLP.

    Args:
        emb_szs: ``(n_codes, width)`` per categorical column (see :func:`get_emb_sz`).
        n_cont: number of continuous columns.
        out_sz: number of outputs.
        layers: widths of the hidden layers.
        ps: dropout after each hidden layer (one value for all, or one per layer).
        embed_p: dropout on the concatenated embeddings.
        y_range: ``(low, high)``: outputs squashed into it by a scaled sigmoid.
        bn_cont: batch-normalize the continuous columns.
        use_bn: batch norm after each hidden layer.
        cont_embed: ``"ple"`` adds piecewise-linear embeddings of the continuous columns; ``None`` feeds them raw.
        n_bins: bins per continuous column for ``"ple"``.
        cont_emb_sz: embedding width per continuous column for ``"ple"``.
        raw_cont: with ``"ple"``, also feed the (batch-normalized) values themselves (they extrapolate to outliers).

    Examples:
        >>> model = TabularModel([(6, 4), (8, 5)], n_cont=3, out_sz=1, layers=[16, 8], y_range=(0.0, 2.0))
        >>> out = model(torch.tensor([[1, 2], [0, 7]]), torch.randn(2, 3))
        >>> out.shape, bool(((out > 0) & (out < 2)).all())
        (torch.Size([2, 1]), True)
    """

    def __init__(
        self,
        emb_szs: Sequence[Sequence[int]],
        n_cont: int,
        out_sz: int,
        layers: Sequence[int] = (200, 100),
        ps: float | Sequence[float] = 0.0,
        embed_p: float = 0.0,
        y_range: Sequence[float] | None = None,
        bn_cont: bool = True,
        use_bn: bool = True,
        cont_embed: str | None = "ple",
        n_bins: int = 16,
        cont_emb_sz: int = 8,
        raw_cont: bool = False,
    ) -> None:
        super().__init__()
        if cont_embed not in (None, "ple"):
            raise ValueError(f"cont_embed must be 'ple' or None, got {cont_embed!r}")
        ps_list = [float(ps)] * len(layers) if isinstance(ps, (int, float)) else [float(p) for p in ps]
        if len(ps_list) != len(layers):
            raise ValueError(f"ps needs one dropout per layer ({len(layers)}), got {len(ps_list)}")
        self.embeds = nn.ModuleList([nn.Embedding(int(n), int(sz)) for n, sz in emb_szs])
        self.emb_drop = nn.Dropout(embed_p)
        self.bn_cont = nn.BatchNorm1d(n_cont) if bn_cont and n_cont and (raw_cont or not cont_embed) else None
        self.cont_emb = PiecewiseLinearEmbedding(n_cont, n_bins, cont_emb_sz) if cont_embed and n_cont else None
        self.raw_cont = raw_cont or self.cont_emb is None
        n_raw = n_cont if self.raw_cont else 0
        n_in = sum(int(sz) for _, sz in emb_szs) + n_raw + (n_cont * cont_emb_sz if self.cont_emb else 0)
        sizes = [n_in, *[int(n) for n in layers]]
        body: list[nn.Module] = []
        for i, p in enumerate(ps_list):
            body += _block(sizes[i], sizes[i + 1], p, use_bn)
        self.layers = nn.Sequential(*body, nn.Linear(sizes[-1], out_sz))
        self.y_range = None if y_range is None else (float(y_range[0]), float(y_range[1]))

    def forward(self, x_cat: Tensor, x_cont: Tensor) -> Tensor:
        parts: list[Tensor] = []
        if len(self.embeds):
            parts.append(self.emb_drop(torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embeds)], 1)))
        if x_cont.shape[1]:
            if self.raw_cont:
                parts.append(self.bn_cont(x_cont) if self.bn_cont is not None else x_cont)
            if self.cont_emb is not None:
                parts.append(self.cont_emb(x_cont))
        out = self.layers(torch.cat(parts, 1))
        if self.y_range is not None:
            low, high = self.y_range
            out = torch.sigmoid(out) * (high - low) + low
        return out

    @staticmethod
    def kwargs_from(**kwargs: Any) -> dict[str, Any]:
        """JSON-safe model arguments (tuples as lists), as stored in ``learn.model_spec``.

        Examples:
            >>> TabularModel.kwargs_from(emb_szs=[(6, 4)], y_range=(0, 1))
            {'emb_szs': [[6, 4]], 'y_range': [0, 1]}
        """

        def plain(v: Any) -> Any:
            return [plain(o) for o in v] if isinstance(v, (list, tuple)) else v

        return {k: plain(v) for k, v in kwargs.items()}
