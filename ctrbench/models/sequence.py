"""Shared layers of the behaviour-sequence models (BST, Mamba4Rec, MDAF).

A dataset's histories are ``sequence`` features, each sharing the vocabulary of a categorical
"target" field (``item_history`` -> ``item_id``, ``category_history`` -> ``category_id``). An event
token is the concatenation of its ids' embeddings over the sequence features, looked up in the
target fields' tables, so history and target live in one space (as in BST / DIN).

Shapes: B = batch size, L = history length (``max_len``), S = number of sequence features,
d = embedding size, d_model = encoder width. Histories are right-aligned (most recent last) and
left-padded with id 0; ``mask`` is True on real events. Mamba4Rec's tables start at N(0, 0.02) as
RecBole's, BST's at N(0, 0.05), MDAF's sequence branch as its standalone model's (FuxiCTR's 1e-4 for
flat models leaves history matching on a long plateau).
"""

from __future__ import annotations

import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import MISSING_ID, FeatureMap
from ctrbench.models.layers import FeatureEmbedding, TransformerBlock
from ctrbench.models.mamba import MambaMixer


def history_fields(feature_map: FeatureMap, group: str | None = None) -> list[tuple[str, str]]:
    """(sequence feature, the categorical field whose vocabulary it shares) pairs of one sequence group (``group``,
    or the dataset's only one); raises if a model cannot use them."""
    sequences = feature_map.sequences
    if not sequences:
        raise ValueError(
            f"dataset {feature_map.dataset!r} has no behaviour sequence; sequence models need one "
            "(e.g. the taobao_userbehavior or taobao_ad formats)"
        )
    names = [g.name for g in feature_map.sequence_groups]
    if group is None and len(names) != 1:
        raise ValueError(
            f"dataset {feature_map.dataset!r} has several sequence groups ({', '.join(names)}); "
            "this model reads one group of aligned events (choose one with the model's history_group)"
        )
    if group is not None and group not in names:
        raise ValueError(f"history_group {group!r} is not a sequence group of {feature_map.dataset!r} ({', '.join(names)})")
    categorical = {f.name for f in feature_map.categorical}
    pairs = []
    for f in feature_map.sequences_of(group or names[0]):
        if f.shares_vocab_with not in categorical:
            raise ValueError(
                f"sequence {f.name!r} of {feature_map.dataset!r} must share the vocabulary of a categorical "
                f"target field (shares_vocab_with is {f.shares_vocab_with!r})"
            )
        pairs.append((f.name, f.shares_vocab_with))
    return pairs


def target_fields_map(feature_map: FeatureMap, group: str | None = None) -> FeatureMap:
    """The feature map restricted to the target fields of the histories (for a table of its own, as in MDAF)."""
    targets = {field for _, field in history_fields(feature_map, group)}
    return FeatureMap(
        dataset=feature_map.dataset,
        tasks=feature_map.tasks,
        features=[f for f in feature_map.categorical if f.name in targets],
    )


class BehaviourTokens(nn.Module):
    """A batch's histories and target as event tokens: ``history [B, L, S*d]``, ``target [B, S*d]``, ``mask [B, L]``.

    ``embedding`` is a :class:`FeatureEmbedding` holding the target fields (shared with the model's
    other features, or the sequence branch's own table). ``group`` picks one sequence group (default: the
    dataset's only one); ``time_gaps(batch)`` gives its events' seconds to the row, where the data has times.
    """

    def __init__(self, feature_map: FeatureMap, embedding: FeatureEmbedding, group: str | None = None):
        super().__init__()
        self.pairs = history_fields(feature_map, group)
        self.group = feature_map.sequence_groups[0].name if group is None else group
        self.embedding = embedding
        self.max_len = feature_map.sequence_group(self.group).max_len
        self.has_times = feature_map.sequence_group(self.group).timestamp is not None
        columns = {f.name: i for i, f in enumerate(feature_map.categorical)}
        # where each target field sits in batch.categorical; a buffer so it follows .to(device)
        self.register_buffer("target_columns", torch.tensor([columns[field] for _, field in self.pairs]), persistent=False)

    @property
    def token_dim(self) -> int:
        return len(self.pairs) * self.embedding.embedding_dim

    @property
    def groups_read(self) -> tuple[str, ...]:
        """The sequence group it reads (``CTRModel.history_groups_read`` collects these)."""
        return (self.group,)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        history = torch.cat([self.embedding.embed_field(field, batch.sequences[seq]) for seq, field in self.pairs], dim=-1)
        targets = batch.categorical[:, self.target_columns]  # [B, S]
        target = torch.cat([self.embedding.embed_field(field, targets[:, i]) for i, (_, field) in enumerate(self.pairs)], dim=-1)
        # an event is real where any of its ids is (all sequences are padded alike by the readers)
        mask = torch.stack([batch.sequences[seq] != MISSING_ID for seq, _ in self.pairs]).any(dim=0)
        return history, target, mask

    def time_gaps(self, batch: Batch) -> torch.Tensor | None:
        """``[B, L]`` int64 seconds from each event to its row (0 on padding), or None where the data has no times."""
        return batch.time_gaps.get(self.group) if self.has_times else None


class TimeGapEmbedding(nn.Module):
    """A learned vector per log2 bucket of an event's time gap to the target: ``bucket = min(floor(log2(1 + gap_s)),
    buckets - 1)``, so seconds, minutes, hours, days and months each get a few buckets (31 buckets reach 34 years).
    ``[B, L]`` seconds -> ``[B, L, d]``. Models build it only where the data has times (``BehaviourTokens.has_times``)."""

    def __init__(self, d: int, *, buckets: int = 32, init_std: float = 0.02):
        super().__init__()
        self.buckets = buckets
        self.table = nn.Parameter(torch.empty(buckets, d).normal_(std=init_std))  # dense: not under the sparse optimizer

    def bucket(self, gaps: torch.Tensor) -> torch.Tensor:
        return torch.log2(1.0 + gaps.clamp(min=0).double()).floor().long().clamp(max=self.buckets - 1)

    def forward(self, gaps: torch.Tensor) -> torch.Tensor:
        return self.table[self.bucket(gaps)]


POSITION_INIT_STD = 0.002


class TransformerSequenceEncoder(nn.Module):
    """BST's encoder: ``[history; target]`` plus learned position embeddings through post-LN transformer
    blocks (LeakyReLU FFN, as the paper), padding masked out of attention. Returns ``[B, L+1, d_model]``
    with padded positions zeroed, and the mask extended by the (always real) target position."""

    def __init__(
        self,
        token_dim: int,
        max_len: int,
        *,
        d_model: int | None = None,
        num_layers: int = 1,
        num_heads: int = 2,
        ffn_multiplier: float = 4.0,
        dropout: float = 0.1,
    ):
        super().__init__()
        d_model = d_model or token_dim
        self.d_model = d_model
        self.project = nn.Linear(token_dim, d_model) if d_model != token_dim else nn.Identity()
        # a Parameter, not an nn.Embedding: it is dense, so it is not put under the sparse-embedding optimizer.
        # Small next to the event tokens, so that which item an event is dominates the first attention
        # scores: at std 0.02 (as large as the tokens) target-history matching sat on a plateau for epochs
        self.position = nn.Parameter(torch.empty(max_len + 1, d_model).normal_(std=POSITION_INIT_STD))
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_model, num_heads, prenorm=False, ffn_multiplier=ffn_multiplier, ffn_activation="leaky_relu",
                attention_dropout=dropout, ffn_dropout=dropout, residual_dropout=dropout,
            )
            for _ in range(num_layers)
        )  # fmt: skip

    def forward(self, history: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.project(torch.cat([history, target.unsqueeze(1)], dim=1)) + self.position  # [B, L+1, d_model]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)  # [B, L+1]
        for block in self.blocks:
            tokens = block(tokens, key_mask=mask)
        return tokens * mask.unsqueeze(-1), mask


class MambaLayer(nn.Module):
    """One Mamba4Rec layer (RecBole's ``MambaLayer``): Mamba mixer, dropout, residual and LayerNorm (no residual
    in a one-layer stack, as the reference), then a position-wise FFN (4x, GELU) with residual and LayerNorm."""

    def __init__(self, d_model: int, *, d_state: int, d_conv: int, expand: int, dropout: float, residual: bool, backend: str):
        super().__init__()
        self.mamba = MambaMixer(d_model, d_state=d_state, d_conv=d_conv, expand=expand, backend=backend)
        self.residual = residual
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model, eps=1e-12)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout)
        )
        self.ffn_norm = nn.LayerNorm(d_model, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.mamba(x))
        h = self.norm(h + x if self.residual else h)
        return self.ffn_norm(self.ffn(h) + h)


class MambaSequenceEncoder(nn.Module):
    """Mamba4Rec's encoder: event tokens -> dropout -> LayerNorm -> Mamba layers -> the state at the most
    recent event, ``[B, d_model]``.

    Mamba reads left to right and is causal, so left padding would run through the state before the
    first event. As RecBole does, each history is moved to the front (real events first, padding after)
    and the output is read at the last real event, where no padding has been seen. An empty history
    gets a learned vector. This relies on what every reader writes: the real events of a history
    are contiguous and end at the last position (padding only before them).
    """

    def __init__(
        self,
        token_dim: int,
        *,
        d_model: int = 64,
        num_layers: int = 1,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dropout: float = 0.2,
        backend: str = "auto",
    ):
        super().__init__()
        self.d_model = d_model
        self.project = nn.Linear(token_dim, d_model) if d_model != token_dim else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model, eps=1e-12)
        self.layers = nn.ModuleList(
            MambaLayer(d_model, d_state=d_state, d_conv=d_conv, expand=expand, dropout=dropout, residual=num_layers > 1, backend=backend)
            for _ in range(num_layers)
        )  # fmt: skip
        self.empty = nn.Parameter(torch.zeros(d_model))

    @property
    def backend(self) -> str:
        """The Mamba implementation the last forward ran: ``"mamba_ssm"`` (CUDA kernels) or ``"torch"``."""
        return self.layers[0].mamba.backend

    def forward(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, _ = history.shape
        lengths = mask.sum(dim=1)  # [B]
        # real events to the front: position j reads the input at (j + padding) mod L
        order = (torch.arange(L, device=mask.device) + (L - lengths).unsqueeze(1)) % L  # [B, L]
        x = torch.gather(self.project(history), 1, order.unsqueeze(-1).expand(-1, -1, self.d_model))
        x = self.norm(self.dropout(x))
        for layer in self.layers:
            x = layer(x)
        last = torch.gather(x, 1, (lengths - 1).clamp(min=0).view(B, 1, 1).expand(-1, 1, self.d_model)).squeeze(1)
        return torch.where((lengths > 0).unsqueeze(-1), last, self.empty)
