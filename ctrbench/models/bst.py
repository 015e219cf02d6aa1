"""BST, Behavior Sequence Transformer (Chen et al., 2019, arXiv 1905.06874).

The user's behaviour sequence plus the target item go through a transformer (post-LN, LeakyReLU FFN,
learned position embeddings in place of the paper's time-gap buckets, which the processed data does
not carry); its outputs, concatenated as in the paper (or pooled), join the flattened embeddings of
the other features in an MLP. Embeddings start at N(0, 0.05): FuxiCTR's 1e-4 (or 0.02) leaves the
target-history matching this model learns on a plateau for hundreds of steps. The dense features, where a
dataset has them, are one token ``x W + b`` (``dense_bias=False``: ``x W``, as FuxiCTR embeds numeric features).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.layers import MLP, FeatureEmbedding
from ctrbench.models.registry import register
from ctrbench.models.sequence import BehaviourTokens, TransformerSequenceEncoder

Pooling = Literal["concat", "mean", "target"]

EMBEDDING_INIT_STD = 0.05  # also MDAF-BST's sequence table


def pool_sequence(outputs: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """``[B, L+1, d]`` encoder outputs (target last, padding zeroed) -> ``[B, (L+1)*d]`` or ``[B, d]``."""
    if pooling == "concat":
        return outputs.flatten(1)
    if pooling == "mean":
        return outputs.sum(dim=1) / mask.sum(dim=1, keepdim=True)
    return outputs[:, -1]


def pooled_width(d_model: int, max_len: int, pooling: Pooling) -> int:
    if pooling not in ("concat", "mean", "target"):
        raise ValueError(f"pooling must be 'concat', 'mean' or 'target', got {pooling!r}")
    return (max_len + 1) * d_model if pooling == "concat" else d_model


@register
class BST(CTRModel):
    arch = "bst"
    needs_sequences = True

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        embedding_init_std: float = EMBEDDING_INIT_STD,
        d_model: int | None = None,
        num_layers: int = 1,
        num_heads: int = 2,
        dropout: float = 0.1,
        pooling: Pooling = "concat",
        mlp_hidden: Sequence[int] = (256, 128),
        mlp_dropout: float = 0.1,
        history_group: str | None = None,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        self.pooling = pooling
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="single", sparse=sparse_embeddings, init_std=embedding_init_std,
            dense_bias=dense_bias,
        )
        self.tokens = BehaviourTokens(feature_map, self.embedding, history_group)
        self.encoder = TransformerSequenceEncoder(
            self.tokens.token_dim, self.tokens.max_len, d_model=d_model, num_layers=num_layers, num_heads=num_heads, dropout=dropout
        )
        width = pooled_width(self.encoder.d_model, self.tokens.max_len, pooling) + self.embedding.num_tokens * embedding_dim
        self.mlp = MLP(width, mlp_hidden, activation_name="leaky_relu", dropout=mlp_dropout, output_dim=feature_map.num_tasks)

    def forward(self, batch: Batch) -> ModelOutput:
        history, target, mask = self.tokens(batch)
        outputs, mask = self.encoder(history, target, mask)  # [B, L+1, d_model]
        others = self.embedding(batch).flatten(1)  # every field token, [B, F*d]
        return ModelOutput(logits=self.mlp(torch.cat([pool_sequence(outputs, mask, self.pooling), others], dim=1)))
