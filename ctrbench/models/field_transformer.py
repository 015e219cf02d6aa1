"""A post-LN Transformer encoder over field tokens: the model this suite ran as "AutoInt" until the paper's AutoInt
(``autoint.py``) took that name; it is the seed experiment's Stage-3 description, not the published AutoInt.

Per block (``TransformerBlock(prenorm=False)``), on tokens ``X`` (``[B, F, d]``), with ``H`` heads of size ``d/H``:

    A   = softmax(Q K^T / sqrt(d/H)) V     per head; Q, K, V = X W_{Q,K,V} + b_{Q,K,V}
    X'  = LN(X + drop(concat_h(A) W_O + b_O))
    X'' = LN(X' + drop(ReLU(X' W_1 + b_1) W_2 + b_2))      W_1: [d, 2d]

then ``logit = w^T mean_f(X_f) + b``. What differs from AutoInt: biases on Q, K, V, an output projection, scaled
scores, LayerNorm, a 2d FFN and mean pooling, where AutoInt has none of these and flattens every field into its head.
"""

from __future__ import annotations

from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.layers import FeatureEmbedding, TransformerBlock
from ctrbench.models.registry import register


@register
class FieldTransformer(CTRModel):
    """Tokens (one per categorical field and per dense feature, ``x_i w_i + b_i``; ``x_i w_i`` with
    ``dense_bias=False``) -> ``num_layers`` post-LN self-attention blocks (residual, FFN of 2*d, ReLU) -> mean
    over tokens -> linear head. ``dropout`` applies to attention weights and to each residual branch."""

    arch = "field_transformer"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        num_layers: int = 2,
        num_heads: int = 2,
        dropout: float = 0.1,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        # std 0.01 rather than 1e-4: LayerNorm's eps (1e-5) would swamp the variance of tinier tokens
        self.embedding = FeatureEmbedding(
            feature_map,
            embedding_dim,
            dense_mode="per_feature",
            sparse=sparse_embeddings,
            init_std=1e-2,
            dense_bias=dense_bias,
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
