"""GEN, the feature generation encoder of GE4Rec (Yin et al., ICML 2025, "From Feature Interaction to Feature
Generation"), and the asymmetric pair term that scores generated fields against the original ones.

For field embeddings ``E = [e_1; ...; e_F]`` (``F x d``):

    G = gamma * act(W vec(E))        reshaped to F x d; W is one bias-free Fd x Fd map, act ReLU
    pairs(G, E) = sum_{i<j} <g_i, e_j>

Every generated field ``g_i`` is a function of all fields, so the pair term models interactions of any order that
W learns, while DeepFM's FM term is the special case G = E (``sum_{i<j} <e_i, e_j>``). The pair term is asymmetric:
with G != E, swapping two fields changes it, so field order is part of the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GEN_GAMMA = 6.0  # gamma of the published Avazu runs


class FeatureGeneration(nn.Module):
    """``G = gamma * ReLU(W vec(E))``: ``[B, F, d] -> [B, F, d]``."""

    def __init__(self, num_fields: int, dim: int, gamma: float = GEN_GAMMA):
        super().__init__()
        self.gamma = gamma
        self.linear = nn.Linear(num_fields * dim, num_fields * dim, bias=False)  # W

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        generated = self.gamma * F.relu(self.linear(tokens.flatten(1)))  # [B, F*d]
        return generated.view_as(tokens)  # [B, F, d]


class GeneratedPairInteraction(nn.Module):
    """``sum_{i<j} <g_i, e_j>``: ``[B, F, d] x [B, F, d] -> [B, 1]``, as ``sum_j <sum_{i<j} g_i, e_j>`` (one
    exclusive prefix sum over the fields instead of the F x F products)."""

    def forward(self, generated: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        earlier = generated.cumsum(dim=1) - generated  # [B, F, d]: row j holds sum_{i<j} g_i
        return (earlier * tokens).sum(dim=(1, 2)).unsqueeze(1)  # [B, 1]
