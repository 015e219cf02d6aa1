"""OMoE, One-gate Mixture-of-Experts (the baseline of Ma et al., KDD'18): MMoE with one gate for every task."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ctrbench.data.schema import FeatureMap
from ctrbench.models.multitask import EMBEDDING_INIT_STD, MixtureOfExperts, MultiTaskModel
from ctrbench.models.registry import register

# FuxiCTR's model zoo has no OMoE; MMoE's config applies (see mmoe.py). Multitask-Recommendation-Library
# (AliExpress): embedding 128, 8 experts of (512, 256), one linear gate, towers (128, 64), dropout 0.2, batch norm.


@register
class OMoE(MultiTaskModel):
    """``y_k = h^k(f(x))``, ``f(x) = sum_i g(x)_i f_i(x)``, ``g(x) = softmax(W_g x)``: E expert MLPs and ONE gate
    shared by the tasks, one tower ``h^k`` per task. ``aux["gates"]``: ``g(x)`` repeated for each task,
    ``[B, T, E]`` (as MMoE's, so that the two read alike)."""

    arch = "omoe"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        embedding_init_std: float = EMBEDDING_INIT_STD,
        num_experts: int = 4,
        expert_hidden: Sequence[int] = (64,),
        gate_hidden: Sequence[int] = (),
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
        self.moe = MixtureOfExperts(
            self.inputs.output_dim, num_experts, expert_hidden, num_gates=1,
            gate_hidden=gate_hidden, dropout=dropout, batch_norm=batch_norm,
        )  # fmt: skip
        self.towers = self.make_towers(self.moe.output_dim, tower_hidden, dropout, batch_norm)

    def represent(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mixture, gate = self.moe(x)  # [B, 1, H], [B, 1, E]
        return mixture.squeeze(1), {"gates": gate.expand(-1, self.feature_map.num_tasks, -1)}
