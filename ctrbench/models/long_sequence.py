"""Shared layers of the long-sequence models (LONGER, HyFormer): token merge, the global/causal attention rule, and
masked multi-head attention between two token sets.

Shapes: B = batch size, L = history length, K = merge size, L' = ceil(L / K) merged tokens, m = global
tokens, q / n = query / key tokens, d = token width, H = heads. Histories are right-aligned (most recent
last) and left-padded, as everywhere in the suite; sequence token positions count from the oldest slot.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.models.layers import TransformerBlock

MergeMode = Literal["concat", "inner_trans"]


class TokenMerge(nn.Module):
    """Groups of K adjacent events -> one token: ``M_i = W [x_{iK+1}; ...; x_{(i+1)K}] + b`` (concatenation,
    ``[B, L', K*d] -> [B, L', d_out]``), after, for ``inner_trans``, one transformer block inside each group
    (LONGER's InnerTrans, ``[x_{iK+1..(i+1)K}] <- TransformerBlock(...)``, bidirectional within the group).

    L not divisible by K is padded at the old end, so groups are counted from the most recent event and extra
    left padding leaves them unchanged. Padded events enter as zeros (and are masked inside InnerTrans); a
    merged token is real where any of its events is. ``K = 1`` is no merge (the identity).
    """

    def __init__(
        self,
        d: int,
        merge_size: int,
        *,
        mode: MergeMode = "concat",
        num_heads: int = 2,
        ffn_multiplier: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if mode not in ("concat", "inner_trans"):
            raise ValueError(f"merge must be 'concat' or 'inner_trans', got {mode!r}")
        if merge_size < 1:
            raise ValueError(f"merge_size must be >= 1, got {merge_size}")
        self.merge_size, self.mode = merge_size, mode
        self.inner = None
        if merge_size > 1 and mode == "inner_trans":
            self.inner = TransformerBlock(
                d, num_heads, prenorm=True, ffn_multiplier=ffn_multiplier, ffn_dropout=dropout, residual_dropout=dropout
            )
        self.linear = nn.Linear(merge_size * d, d) if merge_size > 1 else nn.Identity()

    def merged_length(self, length: int) -> int:
        return -(-length // self.merge_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, L, d]`` (padding rows anything), ``mask [B, L]`` -> ``[B, L', d]``, ``[B, L']``."""
        K = self.merge_size
        x = x * mask.unsqueeze(-1)  # padded events enter as zeros
        if K == 1:
            return x, mask
        (B, _, d), extra = x.shape, -x.shape[1] % K
        x = F.pad(x, (0, 0, extra, 0))  # [B, L'K, d], padded at the old (left) end
        events = F.pad(mask, (extra, 0), value=False).view(B, -1, K)  # [B, L', K]
        groups = x.view(B, -1, K, d)  # [B, L', K, d]
        if self.inner is not None:
            real = events.reshape(-1, K)  # [B*L', K]
            any_real = real.any(dim=1, keepdim=True)
            # an all-padding group attends to its own (zero) slots to stay finite; its output is zeroed below
            inner = self.inner(groups.reshape(-1, K, d), key_mask=real | ~any_real)
            groups = (inner * real.unsqueeze(-1)).view(B, -1, K, d)
        return self.linear(groups.flatten(2)), events.any(dim=2)


def global_causal_mask(
    num_global: int,
    query_positions: torch.Tensor,
    key_positions: torch.Tensor,
    query_real: torch.Tensor,
    key_real: torch.Tensor,
) -> torch.Tensor:
    """The boolean attention mask ``[B, 1, m+q, m+n]`` (True = attend) of queries ``[G; S_q]`` over keys ``[G; S_n]``
    (LONGER's rule; ``MaskedAttention.global_causal`` computes the same attention, building only its q x n
    sequence part, and only for q < n):

    - a global query attends to every global key and every real sequence key;
    - a sequence query at position i attends to real sequence keys at positions j <= i, and to no global key
      (so no sequence state ever depends on the candidate or the other per-request features);
    - a padded sequence query (a short history) may attend to everything, so its softmax is finite; its state
      must be discarded by the caller (it is never a key: its ``key_real`` is False).

    ``query_positions [q]`` / ``key_positions [n]``: the sequence tokens' positions (oldest first); ``query_real
    [B, m+q]``, ``key_real [B, m+n]``: True on global and real sequence tokens.
    """
    m = num_global
    q_global = torch.arange(m + len(query_positions), device=key_real.device) < m  # [m+q]
    k_global = torch.arange(m + len(key_positions), device=key_real.device) < m  # [m+n]
    q_pos = torch.cat([query_positions.new_zeros(m), query_positions])  # [m+q]
    k_pos = torch.cat([key_positions.new_zeros(m), key_positions])  # [m+n]
    causal = ~k_global[None, :] & (k_pos[None, :] <= q_pos[:, None])  # [m+q, m+n] sequence query rule
    rule = torch.where(q_global[:, None], torch.ones_like(causal), causal)  # global queries see all
    allowed = rule.unsqueeze(0) & key_real.unsqueeze(1)  # [B, m+q, m+n]
    allowed = allowed | ~query_real.unsqueeze(-1)  # padded queries: anything, discarded later
    return allowed.unsqueeze(1)


def real_to_front(real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row permutations ``front``, ``back`` ``[B, n]`` of right-aligned tokens (``real [B, n]`` contiguous, most recent
    last): ``x.gather(1, front)`` moves the r real tokens to slots 0..r-1 in order (padding after them), and
    ``y.gather(1, back)`` moves them back. With real tokens first, SDPA's ``is_causal`` alone keeps padding away from
    every real token (a padding slot, after them, reads them; its state is padding's and must be discarded)."""
    n = real.shape[1]
    padding = n - real.sum(dim=1, keepdim=True)  # [B, 1]
    slots = torch.arange(n, device=real.device)
    return (slots + padding) % n, (slots - padding) % n


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x [B, n, d]`` reordered per row by ``index [B, n]``: ``out[b, i] = x[b, index[b, i]]``."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class MaskedAttention(nn.Module):
    """Multi-head attention of queries ``[B, q, d]`` over keys = values ``[B, n, d]`` with a boolean mask
    ``[B, 1, q, n]``: ``softmax(Q K^T / sqrt(d_h) masked) V`` per head, heads concatenated, output projection.
    Through ``F.scaled_dot_product_attention`` (its fused kernels where they apply). ``mask=None``: causal over
    positions (query i reads keys 0..i, SDPA's ``is_causal``: no mask tensor at all). ``global_causal``: LONGER's
    rule (``global_causal_mask``) computed without a queries x keys mask per row."""

    def __init__(self, d: int, num_heads: int, *, dropout: float = 0.0):
        super().__init__()
        if d % num_heads:
            raise ValueError(f"d_model {d} is not divisible by num_heads={num_heads}")
        self.num_heads, self.dropout = num_heads, dropout
        self.query = nn.Linear(d, d)
        self.key_value = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def attend(
        self, Q: torch.Tensor, KV: torch.Tensor, mask: torch.Tensor | None, causal: bool = False
    ) -> torch.Tensor:
        """Projected queries ``Q [B, q, d]`` over projected keys and values ``KV [B, n, 2d]`` -> ``[B, q, d]``
        (heads concatenated, before the output projection)."""
        (B, q, d), n, H = Q.shape, KV.shape[1], self.num_heads
        Q = Q.view(B, q, H, d // H).transpose(1, 2)  # [B, H, q, d/H]
        Kt, V = KV.view(B, n, 2, H, d // H).permute(2, 0, 3, 1, 4)  # [B, H, n, d/H] each
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(Q, Kt, V, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        return y.transpose(1, 2).reshape(B, q, d)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.out(self.attend(self.query(queries), self.key_value(keys), mask, causal=mask is None))

    def global_causal(
        self, queries: torch.Tensor, keys: torch.Tensor, num_global: int, key_real: torch.Tensor
    ) -> torch.Tensor:
        """``global_causal_mask``'s attention, queries ``[G; S_q]`` ``[B, m+q, d]`` over keys ``[G; S_n]``
        ``[B, m+n, d]``, where ``S_q`` are the q most recent of the n sequence tokens ``S_n`` and ``key_real [B, n]``
        marks the real ones (contiguous, most recent last). Real query rows equal the masked formulation's; padded
        sequence query rows are finite and must be discarded. Two SDPA calls instead of one ``[B, 1, m+q, m+n]`` mask:

        - global queries over every key with a key-padding mask ``[B, 1, 1, m+n]`` (broadcast over the queries);
        - sequence queries over the sequence keys only, causal: for q = n (every token a query: LONGER's self
          layers, and its cross layer without query sampling) real tokens moved to the front and ``is_causal``, no
          mask at all; for q < n a ``[B, 1, q, n]`` mask (q, LONGER's sampled queries, is small).
        """
        m, q, n = num_global, queries.shape[1] - num_global, key_real.shape[1]
        Q, KV = self.query(queries), self.key_value(keys)  # [B, m+q, d], [B, m+n, 2d]
        key_mask = torch.cat([key_real.new_ones(key_real.shape[0], m), key_real], dim=1)[:, None, None]
        global_out = self.attend(Q[:, :m], KV, key_mask)  # [B, m, d]
        if q == n:
            front, back = real_to_front(key_real)
            moved = self.attend(gather_rows(Q[:, m:], front), gather_rows(KV[:, m:], front), None, causal=True)
            sequence_out = gather_rows(moved, back)  # [B, n, d]
        else:
            positions = torch.arange(n, device=key_real.device)
            mask = global_causal_mask(0, positions[n - q :], positions, key_real[:, n - q :], key_real)
            sequence_out = self.attend(Q[:, m:], KV[:, m:], mask)  # [B, q, d]
        return self.out(torch.cat([global_out, sequence_out], dim=1))


class CausalAttentionLayer(nn.Module):
    """One pre-LN layer on the query tokens: ``O <- O + Attn(LN(O), LN(R), mask)``, ``O <- O + FFN(LN(O))``.
    With ``R = O`` it is a self-causal layer; with ``R = [G; H]`` and ``O = [G; H_s]`` LONGER's cross-causal one."""

    def __init__(
        self,
        d: int,
        num_heads: int,
        *,
        ffn_multiplier: float = 4.0,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ):
        super().__init__()
        hidden = round(d * ffn_multiplier)
        self.attention = MaskedAttention(d, num_heads, dropout=attention_dropout)
        self.ffn = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d))
        self.norm_attention, self.norm_ffn = nn.LayerNorm(d), nn.LayerNorm(d)  # queries are among the keys: one LN
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        *,
        num_global: int | None = None,
        key_real: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``keys=None``: self attention over ``queries``; ``mask=None``: causal over positions; ``key_real`` (with
        ``num_global``): ``MaskedAttention.global_causal``'s rule, no mask tensor."""
        normed = self.norm_attention(queries)
        context = normed if keys is None else self.norm_attention(keys)
        if key_real is None:
            attended = self.attention(normed, context, mask)
        else:
            attended = self.attention.global_causal(normed, context, num_global, key_real)
        x = queries + self.dropout(attended)
        return x + self.dropout(self.ffn(self.norm_ffn(x)))
