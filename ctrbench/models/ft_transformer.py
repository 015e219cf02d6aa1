"""FT-Transformer (Gorishniy et al., 2021, rtdl): feature tokenizer + pre-LN Transformer + CLS head."""

from __future__ import annotations

import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.layers import FeatureEmbedding, TransformerBlock, uniform_token
from ctrbench.models.registry import register


@register
class FTTransformer(CTRModel):
    """Tokens: categorical fields, then the dense features as ONE token (``dense_tokens="single"``, ``x W + b``)
    or one each (``"per_feature"``, ``x_i w_i + b_i``, rtdl's; ``dense_bias=False`` drops the biases), then a
    learned CLS token (appended, as in rtdl). Pre-LN blocks (FFN 4*d, GELU), then ``pooling`` (CLS token or mean
    of all tokens) and the rtdl head LN -> ReLU -> Linear, whose LN is the final LN a pre-LN stack needs. Unlike
    rtdl, the first block also normalises its input (our tokens are not scaled for a raw residual stream)."""

    arch = "ft_transformer"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        d_token: int = 16,
        num_layers: int = 2,
        num_heads: int = 2,
        attention_dropout: float = 0.1,
        ffn_dropout: float = 0.1,
        residual_dropout: float = 0.0,
        dense_tokens: str = "single",
        pooling: str = "cls",
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        if dense_tokens not in ("single", "per_feature"):
            raise ValueError(f"dense_tokens must be 'single' or 'per_feature', got {dense_tokens!r}")
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.pooling = pooling
        # std 0.01 rather than 1e-4: LayerNorm's eps (1e-5) would swamp the variance of tinier tokens
        self.tokenizer = FeatureEmbedding(
            feature_map, d_token, dense_mode=dense_tokens, sparse=sparse_embeddings, init_std=1e-2,
            dense_bias=dense_bias,
        )
        self.cls = uniform_token(d_token)
        self.blocks = nn.Sequential(
            *(
                TransformerBlock(
                    d_token,
                    num_heads,
                    prenorm=True,
                    ffn_multiplier=4.0,
                    ffn_activation="gelu",
                    attention_dropout=attention_dropout,
                    ffn_dropout=ffn_dropout,
                    residual_dropout=residual_dropout,
                )
                for _ in range(num_layers)
            )
        )
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, feature_map.num_tasks))

    @property
    def num_tokens(self) -> int:
        """Tokens the Transformer sees, CLS included."""
        return self.tokenizer.num_tokens + 1

    def tokens(self, batch: Batch) -> torch.Tensor:
        """``[B, num_tokens, d_token]``: feature tokens with the CLS token last."""
        x = self.tokenizer(batch)
        return torch.cat([x, self.cls.expand(x.shape[0], 1, -1)], dim=1)

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.blocks(self.tokens(batch))  # [B, T, d]
        pooled = x[:, -1] if self.pooling == "cls" else x.mean(dim=1)
        return ModelOutput(logits=self.head(pooled))
