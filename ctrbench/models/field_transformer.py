"""AutoInt (Song et al., 2019): multi-head self-attention over field tokens."""

from __future__ import annotations

from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.layers import FeatureEmbedding, TransformerBlock
from ctrbench.models.registry import register


@register
class AutoInt(CTRModel):
    """Tokens (one per categorical field and per dense feature) -> ``num_layers`` post-LN
    self-attention blocks (residual, FFN of 2*d, ReLU) -> mean over tokens -> linear head.
    ``dropout`` applies to attention weights and to each residual branch."""

    arch = "autoint"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        num_layers: int = 2,
        num_heads: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        # std 0.01 rather than 1e-4: LayerNorm's eps (1e-5) would swamp the variance of tinier tokens
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="per_feature", sparse=sparse_embeddings, init_std=1e-2
        )
        self.blocks = nn.Sequential(
            *(
                TransformerBlock(
                    embedding_dim,
                    num_heads,
                    prenorm=False,
                    ffn_multiplier=2.0,
                    ffn_activation="relu",
                    attention_dropout=dropout,
                    residual_dropout=dropout,
                )
                for _ in range(num_layers)
            )
        )
        self.head = nn.Linear(embedding_dim, feature_map.num_tasks)

    def forward(self, batch: Batch) -> ModelOutput:
        tokens = self.blocks(self.embedding(batch))  # [B, F, d]
        return ModelOutput(logits=self.head(tokens.mean(dim=1)))
