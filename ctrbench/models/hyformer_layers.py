"""HyFormer's building blocks (arXiv 2601.12681): non-sequence tokens from field groups, the per-layer sequence
encoders, query decoding (multi-head cross-attention) and query boosting (RankMixer's token mixing + per-token FFN).

Shapes: B = batch size, L = history length, D = token width (d_model), T = tokens mixed by query boosting,
N = query tokens, F = field tokens, e = embedding size.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.models.infnet_layers import CrossAttention, GroupedLinear
from ctrbench.models.layers import TransformerBlock
from ctrbench.models.long_sequence import CausalAttentionLayer, gather_rows, real_to_front


def field_groups(num_fields: int, num_groups: int) -> list[range]:
    """``num_fields`` field tokens cut into ``num_groups`` contiguous groups (feature-map order), sizes differing by at
    most one, the larger first: 7 fields in 3 groups -> [0, 1, 2], [3, 4], [5, 6]."""
    if not 1 <= num_groups <= num_fields:
        raise ValueError(
            f"num_field_groups must be between 1 and the number of field tokens ({num_fields}), got {num_groups}"
        )
    size, extra = divmod(num_fields, num_groups)
    bounds = [0]
    for g in range(num_groups):
        bounds.append(bounds[-1] + size + (g < extra))
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


class FieldGroupTokens(nn.Module):
    """The non-sequence tokens: ``ns_j = W_j [e_f for f in group j] + b_j``, ``[B, F, e] -> [B, T_ns, D]``."""

    def __init__(self, num_fields: int, embedding_dim: int, d_model: int, num_groups: int):
        super().__init__()
        self.groups = field_groups(num_fields, num_groups)
        self.project = nn.ModuleList(nn.Linear(len(g) * embedding_dim, d_model) for g in self.groups)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [p(fields[:, g.start : g.stop].flatten(1)) for g, p in zip(self.groups, self.project)], dim=1
        )


class SwiGLULayer(nn.Module):
    """``H' = LN(H + W_2 (SiLU(W_1 H) ⊙ W_3 H))`` on every event alone: O(L), no event reads another."""

    def __init__(self, d: int, *, multiplier: float = 2.0, dropout: float = 0.0):
        super().__init__()
        hidden = round(d * multiplier)
        self.gate_up = nn.Linear(d, 2 * hidden)  # W_1 and W_3 in one matmul
        self.down = nn.Linear(hidden, d)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.norm(x + self.dropout(self.down(F.silu(gate) * up)))


class TransformerLayer(TransformerBlock):
    """Full self-attention over the history (post-LN block, GELU FFN); a history with no real event attends to all
    its positions so the kernel stays finite (query decoding then reads nothing from it)."""

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        return super().forward(x, key_mask | ~key_mask.any(dim=1, keepdim=True))


class CausalSequenceLayer(CausalAttentionLayer):
    """LONGER-style: one pre-LN self-causal layer over the history, each event attending to the real events at or
    before it, so an event's state never depends on later ones. Without an L x L mask: the real events (contiguous,
    most recent last) are moved to the front, so SDPA's ``is_causal`` alone keeps padding away from every real event
    (a padding slot, now after them, reads them too; its state is padding's and is masked wherever it is read), and
    moved back after."""

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        front, back = real_to_front(key_mask)  # [B, L] each
        return gather_rows(super().forward(gather_rows(x, front), None, None), back)


def sequence_layer(kind: str, d: int, *, num_heads: int, multiplier: float, dropout: float) -> nn.Module:
    if kind == "transformer":
        return TransformerLayer(
            d, num_heads, prenorm=False, ffn_multiplier=multiplier, attention_dropout=dropout, ffn_dropout=dropout, residual_dropout=dropout
        )  # fmt: skip
    if kind == "swiglu":
        return SwiGLULayer(d, multiplier=multiplier, dropout=dropout)
    if kind == "longer":
        return CausalSequenceLayer(d, num_heads, ffn_multiplier=multiplier, dropout=dropout)
    raise ValueError(f"sequence_encoder must be 'transformer', 'swiglu' or 'longer', got {kind!r}")


class QueryDecoding(nn.Module):
    """``Q' = LN(Q + CA(Q, H))``: multi-head cross-attention from the N queries ``[B, N, D]`` to the encoded events
    ``[B, L, D]`` (padding masked; an empty history reads zero), residual, LayerNorm."""

    def __init__(self, d: int, *, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.attention = CrossAttention(d, num_heads=num_heads, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, queries: torch.Tensor, events: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.norm(queries + self.dropout(self.attention(queries, events, mask)))


def token_mixing(x: torch.Tensor) -> torch.Tensor:
    """RankMixer's parameter-free token mixing, ``[B, T, D] -> [B, T, D]`` with ``D % T == 0``: token t is cut into T
    pieces ``x_t = [x_t^1 .. x_t^T]`` of width D/T, and new token i is ``[x_1^i; x_2^i; ...; x_T^i]`` (a transpose of
    the [token, piece] grid, so a permutation of the B*T*D numbers)."""
    B, T, D = x.shape
    return x.view(B, T, T, D // T).transpose(1, 2).reshape(B, T, D)


class QueryBoosting(nn.Module):
    """RankMixer's block over ``X = [queries; non-sequence tokens]`` ``[B, T, D]``:
    ``S = LN(TokenMixing(X) + X)``, ``X' = LN(PFFN(S) + S)``, ``PFFN(s_t) = W2_t GELU(W1_t s_t + b1_t) + b2_t`` with
    weights of its own per token t."""

    def __init__(self, num_tokens: int, d: int, *, multiplier: float = 2.0, dropout: float = 0.0):
        super().__init__()
        if d % num_tokens:
            raise ValueError(
                f"query boosting splits each token into T = {num_tokens} pieces: d_model {d} must be divisible by T"
            )
        hidden = round(d * multiplier)
        self.up = GroupedLinear(num_tokens, d, hidden)
        self.down = GroupedLinear(num_tokens, hidden, d)
        self.dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)

    def per_token_ffn(self, s: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(F.gelu(self.up(s))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.norm1(token_mixing(x) + x)
        return self.norm2(self.dropout(self.per_token_ffn(s)) + s)
