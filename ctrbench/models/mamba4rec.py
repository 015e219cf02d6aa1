"""Mamba4Rec (Liu et al., 2024, arXiv 2403.03900) as a CTR model.

The history's event tokens go through Mamba layers (RecBole's Mamba4Rec: dropout, LayerNorm, Mamba
mixer with residual and LayerNorm, position-wise FFN); the state at the most recent event is the
user's sequence representation ``h``. Mamba4Rec scores the next item by ``<h, e_item>``; for CTR the
head is an MLP over ``[h, e_target, h * e_target]`` and the flattened embeddings of every field.

The mixer runs ``mamba_ssm``'s CUDA kernels where they import and the input is on CUDA, otherwise a
pure-PyTorch selective scan with the same parameters; ``model_info()`` records which one ran. The dense
features, where a dataset has them, are one field token ``x W + b`` (``dense_bias=False``: ``x W``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.layers import MLP, FeatureEmbedding
from ctrbench.models.mamba import Backend
from ctrbench.models.registry import register
from ctrbench.models.sequence import BehaviourTokens, MambaSequenceEncoder

EMBEDDING_INIT_STD = 0.02  # RecBole's; also MDAF-Mamba's sequence table


def target_interaction(encoder: MambaSequenceEncoder, state: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[h, t, h*t]`` with the target token ``t`` mapped into the encoder's space by its input projection: ``[B, 3*d_model]``."""
    t = encoder.project(target)
    return torch.cat([state, t, state * t], dim=1)


@register
class Mamba4Rec(CTRModel):
    arch = "mamba4rec"
    needs_sequences = True

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        embedding_init_std: float = EMBEDDING_INIT_STD,
        d_model: int = 32,
        num_layers: int = 1,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dropout: float = 0.2,
        mlp_hidden: Sequence[int] = (256, 128),
        mlp_dropout: float = 0.1,
        backend: Backend = "auto",
        history_group: str | None = None,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="single", sparse=sparse_embeddings, init_std=embedding_init_std,
            dense_bias=dense_bias,
        )
        self.tokens = BehaviourTokens(feature_map, self.embedding, history_group)
        self.encoder = MambaSequenceEncoder(
            self.tokens.token_dim, d_model=d_model, num_layers=num_layers, d_state=d_state, d_conv=d_conv,
            expand=expand, dropout=dropout, backend=backend,
        )  # fmt: skip
        width = 3 * d_model + self.embedding.num_tokens * embedding_dim
        self.mlp = MLP(width, mlp_hidden, dropout=mlp_dropout, output_dim=feature_map.num_tasks)

    def model_info(self) -> dict:
        return {"sequence_encoder": "mamba", "mamba_backend": self.encoder.backend}

    def forward(self, batch: Batch) -> ModelOutput:
        history, target, mask = self.tokens(batch)
        state = self.encoder(history, mask)  # [B, d_model]
        others = self.embedding(batch).flatten(1)
        return ModelOutput(logits=self.mlp(torch.cat([target_interaction(self.encoder, state, target), others], dim=1)))
