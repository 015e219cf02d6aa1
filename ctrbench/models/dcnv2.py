"""DCN-V2 (Wang et al., 2021): an explicit cross network and an MLP over the flat feature vector."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.layers import MLP, CrossNetMix, CrossNetV2, FeatureEmbedding
from ctrbench.models.registry import register


@register
class DCNv2(CTRModel):
    """x0 = [flattened categorical embeddings, raw dense values] (``[B, D]``), then
    ``structure="stacked"``: cross -> MLP -> linear, or ``"parallel"``: [cross(x0), MLP(x0)] -> linear.
    ``cross_type="full"`` is the full-rank CrossNetV2, ``"mix"`` the low-rank mixture of experts.
    An empty ``mlp_hidden`` leaves the cross network alone."""

    arch = "dcnv2"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        num_cross_layers: int = 3,
        cross_type: str = "full",
        low_rank: int = 32,
        num_experts: int = 4,
        structure: str = "parallel",
        mlp_hidden: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        batch_norm: bool = False,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        if cross_type not in ("full", "mix"):
            raise ValueError(f"cross_type must be 'full' or 'mix', got {cross_type!r}")
        if structure not in ("stacked", "parallel"):
            raise ValueError(f"structure must be 'stacked' or 'parallel', got {structure!r}")
        self.structure = structure
        self.embedding = FeatureEmbedding(feature_map, embedding_dim, dense_mode="none", sparse=sparse_embeddings)
        width = self.embedding.num_categorical * embedding_dim + self.embedding.num_dense
        if cross_type == "full":
            self.cross = CrossNetV2(width, num_cross_layers)
        else:
            self.cross = CrossNetMix(width, num_cross_layers, low_rank=low_rank, num_experts=num_experts)
        self.mlp = MLP(width, tuple(mlp_hidden), dropout=dropout, batch_norm=batch_norm) if mlp_hidden else None
        if self.mlp is None:
            head_in = width
        else:
            head_in = self.mlp.output_dim + (width if structure == "parallel" else 0)
        self.head = nn.Linear(head_in, feature_map.num_tasks)

    def forward(self, batch: Batch) -> ModelOutput:
        parts = []
        if self.embedding.num_categorical:
            parts.append(self.embedding(batch).flatten(1))  # [B, n_cat * d]
        if self.embedding.num_dense:
            parts.append(batch.dense)
        x0 = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]  # [B, D]
        cross = self.cross(x0)
        if self.mlp is None:
            h = cross
        elif self.structure == "stacked":
            h = self.mlp(cross)
        else:
            h = torch.cat([cross, self.mlp(x0)], dim=1)
        return ModelOutput(logits=self.head(h))
