"""INFNet's building blocks (arXiv 2508.11565 v1, §3): cross attention over masked keys, the Proxy Gated Unit,
per-task heads evaluated at once, and the event tokens of several behaviour sequences.

Shapes: B = batch size, n = query tokens, L = key tokens (all behaviours' events), d = token size, T = tasks,
F = behaviours (sequence groups).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import MISSING_ID, FeatureMap
from ctrbench.models.layers import MLP, FeatureEmbedding, activation

POSITION_INIT_STD = 0.02


class CrossAttention(nn.Module):
    """``CA(Q, K, V) = softmax(Q W_Q (K W_K)^T / sqrt(d_k)) (V W_V)`` (eq. 9), queries ``[B, n, d]`` reading
    keys = values ``[B, L, d]``.

    The paper writes one head and no output projection; ``num_heads > 1`` splits ``d`` into heads of
    ``d_k = d / num_heads`` (concatenated, still without an output projection). ``key_mask`` ``[B, L]`` is
    True on real keys; masked keys get no weight. A row with no real key at all (an empty history) has
    nothing to read: its output is zero, so no padding reaches it and nothing is NaN (softmax over an
    empty set is undefined; the row attends to all positions to keep the kernel finite, then is zeroed).

    Computed query-side, the same numbers in another order: ``(Q W_Q)(K W_K)^T = (Q W_Q W_K^T) K^T`` per
    head and ``softmax(.) (V W_V) = (softmax(.) V) W_V``, so the few queries (proxies, task tokens) are
    projected and the L keys (every history event) never are: O(n L d) instead of O(L d^2).
    """

    def __init__(self, d: int, *, num_heads: int = 1, dropout: float = 0.0):
        super().__init__()
        if d % num_heads:
            raise ValueError(f"token size {d} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Linear(d, d, bias=False)  # W_Q (as nn.Linear stores it: [d_out, d_in])
        self.key = nn.Linear(d, d, bias=False)  # W_K
        self.value = nn.Linear(d, d, bias=False)  # W_V

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        (B, n, d), H, L = queries.shape, self.num_heads, keys.shape[1]
        per_head = lambda linear: linear.weight.view(H, d // H, d)  # [H, d_k, d]
        query_key = torch.einsum("hkd,hke->hde", per_head(self.query), per_head(self.key))  # W_Q,h^T W_K,h
        q = torch.einsum("bnd,hde->bhne", queries, query_key)  # [B, H, n, d]
        kv = keys.unsqueeze(1).expand(B, H, L, d)
        mask, has_key = None, None
        if key_mask is not None:
            has_key = key_mask.any(dim=1)  # [B]
            mask = (key_mask | ~has_key.unsqueeze(1))[:, None, None, :]
        dropout = self.dropout if self.training else 0.0
        read = F.scaled_dot_product_attention(q, kv, kv, attn_mask=mask, dropout_p=dropout, scale=(d // H) ** -0.5)
        out = torch.einsum("bhne,hke->bnhk", read, per_head(self.value)).reshape(B, n, d)
        if has_key is not None:
            out = torch.where(has_key[:, None, None], out, torch.zeros((), dtype=out.dtype, device=out.device))
        return out


class ProxyGatedUnit(nn.Module):
    """``PGU(X, X~) = X ⊙ σ(MLP(Flatten(X~)))`` (eq. 13): the ``ñ`` proxies ``[B, ñ, d]`` give one channel gate
    ``[B, d]`` per sample, broadcast over all ``n`` tokens ``[B, n, d]`` (cost independent of ``n``)."""

    def __init__(self, d: int, num_proxies: int, *, hidden_units: Sequence[int] = ()):
        super().__init__()
        self.mlp = MLP(num_proxies * d, hidden_units, output_dim=d)

    def gate(self, proxies: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(proxies.flatten(1)))  # [B, d]

    def forward(self, tokens: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
        return tokens * self.gate(proxies).unsqueeze(1)


class GroupedLinear(nn.Module):
    """One ``Linear(in -> out)`` per group, all applied at once: ``[B, G, in] -> [B, G, out]``, group g with its
    own ``weight[g]`` and ``bias[g]`` (initialised as ``nn.Linear``: U(±1/sqrt(in)))."""

    def __init__(self, groups: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bgi,gio->bgo", x, self.weight) + self.bias


class TaskHeads(nn.Module):
    """``MLP_i(T_i)`` for every task i at once (the logits of eq. 15): ``[B, T, d] -> [B, T]``; task i's MLP has
    its own weights and reads only its own token."""

    def __init__(
        self,
        num_tasks: int,
        d: int,
        hidden_units: Sequence[int] = (),
        *,
        activation_name: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        widths = [d, *hidden_units, 1]
        self.layers = nn.ModuleList(GroupedLinear(num_tasks, i, o) for i, o in itertools.pairwise(widths))
        self.activation = activation(activation_name)
        self.dropout = nn.Dropout(dropout)

    def forward(self, task_tokens: torch.Tensor) -> torch.Tensor:
        x = task_tokens
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.dropout(self.activation(x))
        return x.squeeze(-1)


def behaviour_fields(feature_map: FeatureMap) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per sequence group (one behaviour), its (sequence feature, shared categorical field) pairs. Raises where a feature shares no categorical table, or one
    smaller than its own vocabulary."""
    categorical = {f.name: f for f in feature_map.categorical}
    behaviours = []
    for group in feature_map.sequence_groups:
        pairs = []
        for f in feature_map.sequences_of(group.name):
            if f.shares_vocab_with not in categorical:
                raise ValueError(
                    f"sequence {f.name!r} of {feature_map.dataset!r} must share the vocabulary of a categorical "
                    f"target field (shares_vocab_with is {f.shares_vocab_with!r}): INFNet embeds events with the target tables"
                )
            if f.vocab_size > categorical[f.shares_vocab_with].vocab_size:  # its ids would read another field's rows
                raise ValueError(
                    f"sequence {f.name!r} of {feature_map.dataset!r} has vocab_size {f.vocab_size}, larger than that of "
                    f"{f.shares_vocab_with!r} ({categorical[f.shares_vocab_with].vocab_size}) whose table it shares"
                )
            pairs.append((f.name, f.shares_vocab_with))
        if pairs:
            behaviours.append((group.name, pairs))
    return behaviours


class BehaviourSequenceTokens(nn.Module):
    """The sequence tokens S ``[B, L, d]`` (eq. 4): every behaviour's events, behaviour after behaviour
    (``L = sum_a max_len_a``), each event ``s_{a,t} = W_a [e(id_1); ...; e(id_k)] + b_a`` from the embeddings of
    its ids in the target fields' tables, with a projection per behaviour (so one item liked and one item
    clicked are different tokens). ``mask [B, L]`` is True on real events (any id not padding).
    ``membership [F, L]`` (a buffer) marks which behaviour each position belongs to, for per-behaviour pooling.
    """

    def __init__(self, feature_map: FeatureMap, embedding: FeatureEmbedding, d: int, *, positions: bool = False):
        super().__init__()
        self.embedding = embedding
        self.behaviours = behaviour_fields(feature_map)
        width = embedding.embedding_dim
        self.project = nn.ModuleList(nn.Linear(len(pairs) * width, d) for _, pairs in self.behaviours)
        # the first table row of each event field, behaviour after behaviour: one lookup per behaviour
        rows = [embedding.offsets[embedding.field_index[field]] for _, pairs in self.behaviours for _, field in pairs]
        self.register_buffer("first_rows", torch.stack(rows), persistent=False)
        lengths = [feature_map.sequence_group(name).max_len for name, _ in self.behaviours]
        owner = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths, dtype=torch.long))
        self.register_buffer("membership", (owner == torch.arange(len(lengths)).unsqueeze(1)).float(), persistent=False)
        # optional: a learned vector per slot of each behaviour (slot max_len - 1 = the most recent event)
        self.positions = nn.Parameter(torch.empty(len(owner), d).normal_(std=POSITION_INIT_STD)) if positions else None

    @property
    def num_behaviours(self) -> int:
        return len(self.behaviours)

    @property
    def groups_read(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.behaviours)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, masks, start = [], [], 0
        for (_, pairs), project in zip(self.behaviours, self.project):
            ids = torch.stack([batch.sequences[name] for name, _ in pairs], dim=-1)  # [B, L_a, k]
            rows = self.embedding.embedding(ids + self.first_rows[start : start + len(pairs)])  # [B, L_a, k, d_e]
            tokens.append(project(rows.flatten(2)))
            masks.append((ids != MISSING_ID).any(dim=-1))
            start += len(pairs)
        tokens = torch.cat(tokens, dim=1)
        return tokens if self.positions is None else tokens + self.positions, torch.cat(masks, dim=1)

    def pool(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, L, x]`` -> ``[B, F, x]``: each behaviour's sum over its real events (zero for an empty history)."""
        return torch.einsum("fl,bl,blx->bfx", self.membership, mask.to(values.dtype), values)
