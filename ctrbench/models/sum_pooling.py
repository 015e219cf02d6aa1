"""Sum pooling: the simplest reader of a whole history, the baseline of the long-sequence models.

With event tokens ``e_j`` (``[S*d]``, the event's ids' embeddings concatenated) and ``mask_j`` True on real events:

    u = sum_{j : mask_j} e_j                       (pooling: sum)
    u = sum_{j : mask_j} e_j / max(1, n_real)      (pooling: mean)

(an empty history gives u = 0), and the prediction is an MLP over ``[u; every field token]`` (the target fields among
them, so history and candidate meet only in the MLP). Its cost is one pass over the history, linear in its length.
The dense features, where a dataset has them, are one field token ``x W + b`` (``dense_bias=False``: ``x W``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.bst import EMBEDDING_INIT_STD
from ctrbench.models.layers import MLP, FeatureEmbedding
from ctrbench.models.registry import register
from ctrbench.models.sequence import BehaviourTokens

HistoryPooling = Literal["sum", "mean"]


def pool_history(history: torch.Tensor, mask: torch.Tensor, pooling: HistoryPooling) -> torch.Tensor:
    """``[B, L, D]`` event tokens, ``[B, L]`` mask -> ``[B, D]``: the sum (or mean) over the real events only."""
    total = torch.einsum("bl,bld->bd", mask.to(history.dtype), history)  # padding weighs exactly 0
    if pooling == "sum":
        return total
    return total / mask.sum(dim=1, keepdim=True).clamp(min=1)


@register
class SumPooling(CTRModel):
    arch = "sum_pooling"
    needs_sequences = True

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        embedding_init_std: float = EMBEDDING_INIT_STD,
        history_group: str | None = None,
        pooling: HistoryPooling = "sum",
        mlp_hidden: Sequence[int] = (200, 80),
        mlp_dropout: float = 0.0,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        if pooling not in ("sum", "mean"):
            raise ValueError(f"pooling must be 'sum' or 'mean', got {pooling!r}")
        self.pooling = pooling
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="single", sparse=sparse_embeddings, init_std=embedding_init_std,
            dense_bias=dense_bias,
        )
        self.tokens = BehaviourTokens(feature_map, self.embedding, group=history_group)
        width = self.tokens.token_dim + self.embedding.num_tokens * embedding_dim
        self.mlp = MLP(width, mlp_hidden, dropout=mlp_dropout, output_dim=feature_map.num_tasks)

    def forward(self, batch: Batch) -> ModelOutput:
        history, _, mask = self.tokens(batch)  # [B, L, S*d], [B, L]
        others = self.embedding(batch).flatten(1)  # every field token, [B, F*d]
        return ModelOutput(logits=self.mlp(torch.cat([pool_history(history, mask, self.pooling), others], dim=1)))
