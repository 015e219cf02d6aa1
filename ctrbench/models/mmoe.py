"""MMoE, Multi-gate Mixture-of-Experts (Ma et al., KDD'18): experts shared by all tasks, one softmax gate per task."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ctrbench.data.schema import FeatureMap
from ctrbench.models.multitask import EMBEDDING_INIT_STD, MixtureOfExperts, MultiTaskModel
from ctrbench.models.registry import register

# FuxiCTR's MMoE config (model_zoo/multitask/MMoE/config/model_config.yaml), for the presets: embedding_dim 64,
# num_experts 8, expert_hidden (512, 256, 128), gate_hidden (128, 64), tower_hidden (128, 64), ReLU, dropout 0,
# no batch norm, Adam lr 1e-3, embedding_regularizer 1e-6, batch 128. Multitask-Recommendation-Library
# (AliExpress): embedding 128, 8 experts of (512, 256), linear gates, towers (128, 64), dropout 0.2, batch norm.


@register
class MMoE(MultiTaskModel):
    """``y_k = h^k(f^k(x))``, ``f^k(x) = sum_i g^k(x)_i f_i(x)``, ``g^k(x) = softmax(W_gk x)``: E expert MLPs
    ``f_i`` shared by the tasks, one gate ``g^k`` and one tower ``h^k`` per task. ``aux["gates"]``: ``g^k(x)``,
    ``[B, T, E]``. An empty ``gate_hidden`` is the paper's linear gate; FuxiCTR's default puts an MLP before it."""

    arch = "mmoe"
    one_gate = False  # OMoE: one gate for every task

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
            self.inputs.output_dim, num_experts, expert_hidden, num_gates=1 if self.one_gate else feature_map.num_tasks,
            gate_hidden=gate_hidden, dropout=dropout, batch_norm=batch_norm,
        )  # fmt: skip
        self.towers = self.make_towers(self.moe.output_dim, tower_hidden, dropout, batch_norm)

    def represent(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mixtures, gates = self.moe(x)  # [B, T, H], [B, T, E] (one gate: [B, 1, H], [B, 1, E])
        if self.one_gate:
            tasks = self.feature_map.num_tasks
            return mixtures.squeeze(1), {"gates": gates.expand(-1, tasks, -1)}
        return mixtures, {"gates": gates}
