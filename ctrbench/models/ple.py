"""PLE, Progressive Layered Extraction (Tang et al., RecSys'20): stacked CGC levels of task-specific and shared
experts; the last level's task outputs feed the towers. ``expert_hidden`` is one list of widths for every level
(``[64]``) or one list per level (``[[512], [256]]``: level l's experts are MLPs of those widths, reading level
l-1's output width)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctrbench.data.schema import FeatureMap
from ctrbench.models.multitask import CGC, EMBEDDING_INIT_STD, MultiTaskModel
from ctrbench.models.registry import register

# FuxiCTR's PLE config (model_zoo/multitask/PLE/config/model_config.yaml), for the presets: embedding_dim 64,
# num_layers (levels) 1, num_shared_experts 8, num_specific_experts 1, expert_hidden (512, 256, 128), gate_hidden
# (128, 64), tower_hidden (128, 64), ReLU, dropout 0, no batch norm, Adam lr 1e-3, embedding_regularizer 1e-6,
# batch 128. Multitask-Recommendation-Library (AliExpress): embedding 128, 2 levels of one-layer experts (512,
# then 256), 4 shared and 4 specific experts per level, linear gates, towers (128, 64), dropout 0.2, batch norm.
# FuxiCTR gives every level the same expert widths; that library's per-level widths are expert_hidden [[512], [256]].


@register
class PLE(MultiTaskModel):
    """Level 1 reads ``x`` everywhere; level l reads the task and shared outputs of level l-1 (see :class:`CGC`):
    task k's gate mixes its own experts and the shared ones, the shared gate mixes every expert of the level
    (the last level has none: nothing reads it). ``y_k = h^k(y_k^(L))``. ``aux["gates"]``: the last level's
    task gates, ``[B, T, num_specific_experts + num_shared_experts]``, task k's own experts first."""

    arch = "ple"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        embedding_init_std: float = EMBEDDING_INIT_STD,
        num_levels: int = 2,
        num_specific_experts: int = 1,
        num_shared_experts: int = 2,
        expert_hidden: Sequence[int] | Sequence[Sequence[int]] = (64,),
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
        if problems := self.param_problems({"num_levels": num_levels, "expert_hidden": expert_hidden}):
            raise ValueError("; ".join(problems))
        width, levels = self.inputs.output_dim, []
        for level, hidden in enumerate(per_level(expert_hidden, num_levels)):
            levels.append(
                CGC(width, feature_map.num_tasks, num_specific_experts, num_shared_experts, hidden,
                    shared_gate=level < num_levels - 1, gate_hidden=gate_hidden, dropout=dropout, batch_norm=batch_norm)
            )  # fmt: skip
            width = levels[-1].output_dim
        self.levels = nn.ModuleList(levels)
        self.towers = self.make_towers(width, tower_hidden, dropout, batch_norm)

    @classmethod
    def param_problems(cls, params: dict, history_groups: tuple[str, ...] | None = None) -> list[str]:
        problems = super().param_problems(params, history_groups)
        levels = params.get("num_levels", 2)
        if not (isinstance(levels, int) and levels >= 1):
            return [*problems, f"num_levels must be an integer >= 1, got {levels!r}"]
        hidden = list(params.get("expert_hidden", (64,)))
        nested = [isinstance(h, (list, tuple)) for h in hidden]
        if any(nested) and not all(nested):
            problems.append(
                f"expert_hidden must be a list of widths or a list of such lists (one per level), got {hidden}"
            )
        elif any(nested) and len(hidden) != levels:
            problems.append(f"expert_hidden lists {len(hidden)} levels' widths, but num_levels is {levels}")
        elif not all(
            units and all(isinstance(u, int) and u >= 1 for u in units) for units in per_level(hidden, levels)
        ):
            problems.append(f"expert_hidden needs positive integer widths for every level, got {hidden}")
        return problems

    def represent(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        for level in self.levels:
            x, gates = level(x)  # [B, T+1, H] below the last level, [B, T, H] at it
        return x, {"gates": gates}


def per_level(expert_hidden: Sequence, num_levels: int) -> list[tuple[int, ...]]:
    """Each level's expert widths: ``expert_hidden`` itself for every level, or its l-th list (validated by
    :meth:`PLE.param_problems`)."""
    hidden = list(expert_hidden)
    if hidden and all(isinstance(h, (list, tuple)) for h in hidden):
        return [tuple(h) for h in hidden]
    return [tuple(hidden)] * num_levels
