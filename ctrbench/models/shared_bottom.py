"""Shared-Bottom (Caruana, 1997; the baseline of Ma et al., KDD'18): one bottom network for every task, then
a tower per task."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ctrbench.data.schema import FeatureMap
from ctrbench.models.layers import MLP
from ctrbench.models.multitask import EMBEDDING_INIT_STD, MultiTaskModel
from ctrbench.models.registry import register

# FuxiCTR's SharedBottom config (model_zoo/multitask/SharedBottom/config/model_config.yaml), for the presets:
# embedding_dim 128, bottom_hidden (512, 256, 128), tower_hidden (128, 64), ReLU, dropout 0, no batch norm,
# Adam lr 1e-3, embedding_regularizer 1e-6, batch 128. Multitask-Recommendation-Library (AliExpress): embedding
# 128, bottom (512, 256), towers (128, 64), dropout 0.2, batch norm in every MLP, lr 1e-3, batch 2048.


@register
class SharedBottom(MultiTaskModel):
    """``y_k = h^k(f(x))``: the bottom MLP ``f`` is shared, the towers ``h^k`` (MLP + linear) are the tasks' own.
    ``x`` is the shared input of :mod:`ctrbench.models.multitask` (pooled histories included)."""

    arch = "shared_bottom"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        embedding_init_std: float = EMBEDDING_INIT_STD,
        bottom_hidden: Sequence[int] = (64,),
        tower_hidden: Sequence[int] = (32,),
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__(
            feature_map,
            sparse_embeddings=sparse_embeddings,
            embedding_dim=embedding_dim,
            embedding_init_std=embedding_init_std,
        )
        self.bottom = MLP(self.inputs.output_dim, tuple(bottom_hidden), dropout=dropout, batch_norm=batch_norm)
        self.towers = self.make_towers(self.bottom.output_dim, tower_hidden, dropout, batch_norm)

    def represent(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.bottom(x), {}  # [B, H]: the same input for every tower
