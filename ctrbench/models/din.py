"""DIN, Deep Interest Network (Zhou et al., KDD 2018, arXiv 1706.06978), after FuxiCTR's ``DIN`` / ``DIN_Attention``.

Each history event j is a token ``e_j`` (its ids' embeddings concatenated, ``[S*d]``) and the candidate is ``v_A``
(the target fields' embeddings, same tables). The activation unit scores every real event against the candidate:

    w_j = a(e_j, v_A) = MLP_a([v_A; e_j; v_A - e_j; v_A * e_j])          (hidden layers ``attention_hidden``, linear
                                                                          scalar output, no sigmoid)

(the paper's Fig. 2 / the authors' code, in FuxiCTR's order: the candidate first; any order of the four parts is the
same function up to the first layer's weights). As the paper, the weights are not normalised ("to reserve the
intensity of user interests"); ``use_softmax`` takes ``w = softmax_j(w_j)`` over the real events instead (FuxiCTR's
``din_use_softmax``). The user's interest in the candidate is the weighted sum over the real events

    u = sum_{j : mask_j} w_j e_j                                          (an empty history gives u = 0)

and the prediction an MLP over ``[u; every field token]`` (the target fields, user id, ... and the dense token
``x W + b``, or ``x W`` with ``dense_bias=False``).

Dice (paper eq. 9), the activation of the attention MLP by default (as FuxiCTR; the head is ReLU by default, as
FuxiCTR, ``mlp_activation: dice`` gives the paper's):

    f(s) = p(s) * s + (1 - p(s)) * alpha * s,   p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + eps))

with E and Var the mini-batch's statistics in training and their running averages in evaluation (a BatchNorm
without affine). The attention MLP runs once on the real events of the whole batch, packed ``[N, 4*S*d]``: padding
is never scored, so it cannot enter Dice's batch statistics nor the sum, and padded positions cost nothing.
Embeddings start at N(0, 0.05) as BST's (FuxiCTR's 1e-4 makes ``v_A * e_j`` vanish at the start).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.bst import EMBEDDING_INIT_STD
from ctrbench.models.layers import MLP, FeatureEmbedding
from ctrbench.models.registry import register
from ctrbench.models.sequence import BehaviourTokens


class Dice(nn.Module):
    """Dice on ``[N, units]``: ``p * s + (1 - p) * alpha * s`` with ``p = sigmoid(BN(s))`` (BatchNorm without affine;
    ``alpha`` starts at 0, as FuxiCTR, so Dice starts as a smooth ReLU). A batch of one row uses the running statistics."""

    def __init__(self, units: int, *, eps: float = 1e-8, momentum: float = 0.01):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.alpha = nn.Parameter(torch.zeros(units))
        self.register_buffer("running_mean", torch.zeros(units))
        self.register_buffer("running_var", torch.ones(units))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        batch_stats = self.training and s.shape[0] > 1  # one row has no variance
        normed = F.batch_norm(
            s, self.running_mean, self.running_var, training=batch_stats, momentum=self.momentum, eps=self.eps
        )
        # p s + (1 - p) alpha s, with fewer [N, units] temporaries (elementwise work dominates DIN's CPU step)
        return s * (self.alpha + torch.sigmoid(normed) * (1 - self.alpha))


def din_mlp(
    input_dim: int, hidden: Sequence[int], *, activation_name: str, dropout: float, output_dim: int
) -> nn.Module:
    """:class:`MLP`, or the same stack with Dice after each hidden layer (Dice needs its width)."""
    if activation_name.lower() != "dice":
        return MLP(input_dim, hidden, activation_name=activation_name, dropout=dropout, output_dim=output_dim)
    layers: list[nn.Module] = []
    width = input_dim
    for units in hidden:
        layers += [nn.Linear(width, units), Dice(units)] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        width = units
    return nn.Sequential(*layers, nn.Linear(width, output_dim))


class DINAttention(nn.Module):
    """The activation unit and weighted sum: ``history [B, L, D]``, ``target [B, D]``, ``mask [B, L]`` ->
    ``(u [B, D], w [B, L])``, with ``w`` exactly 0 on padding (and on every event of an empty history)."""

    def __init__(
        self, token_dim: int, hidden: Sequence[int], *, activation_name: str, dropout: float, use_softmax: bool
    ):
        super().__init__()
        self.use_softmax = use_softmax
        self.unit = din_mlp(4 * token_dim, hidden, activation_name=activation_name, dropout=dropout, output_dim=1)

    def scores(self, history: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``a(e_j, v_A)`` on the real events, 0 on padding: ``[B, L]``."""
        real = mask.nonzero(as_tuple=True)  # (rows, positions) of the N real events
        e, v = history[real], target[real[0]]  # [N, D] each
        a = self.unit(torch.cat([v, e, v - e, v * e], dim=-1)).squeeze(-1)  # [N]
        return a.new_zeros(mask.shape).index_put(real, a)

    def forward(
        self, history: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.scores(history, target, mask)  # [B, L]
        if self.use_softmax:
            # padding at the dtype's minimum weighs exactly 0; an empty row's uniform weights are then zeroed by the mask
            w = w.masked_fill(~mask, torch.finfo(w.dtype).min).softmax(dim=-1) * mask
        return torch.einsum("bl,bld->bd", w.to(history.dtype), history), w  # u: [B, D]


@register
class DIN(CTRModel):
    arch = "din"
    needs_sequences = True

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        embedding_init_std: float = EMBEDDING_INIT_STD,
        history_group: str | None = None,
        attention_hidden: Sequence[int] = (64,),
        attention_activation: str = "dice",
        attention_dropout: float = 0.0,
        use_softmax: bool = False,
        mlp_hidden: Sequence[int] = (200, 80),
        mlp_activation: str = "relu",
        mlp_dropout: float = 0.0,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="single", sparse=sparse_embeddings, init_std=embedding_init_std,
            dense_bias=dense_bias,
        )
        self.tokens = BehaviourTokens(feature_map, self.embedding, group=history_group)
        self.attention = DINAttention(
            self.tokens.token_dim, attention_hidden, activation_name=attention_activation, dropout=attention_dropout,
            use_softmax=use_softmax,
        )  # fmt: skip
        width = self.tokens.token_dim + self.embedding.num_tokens * embedding_dim
        self.mlp = din_mlp(
            width, mlp_hidden, activation_name=mlp_activation, dropout=mlp_dropout, output_dim=feature_map.num_tasks
        )

    def forward(self, batch: Batch) -> ModelOutput:
        history, target, mask = self.tokens(batch)  # [B, L, S*d], [B, S*d], [B, L]
        interest, _ = self.attention(history, target, mask)  # [B, S*d]
        others = self.embedding(batch).flatten(1)  # every field token (the target fields among them), [B, F*d]
        return ModelOutput(logits=self.mlp(torch.cat([interest, others], dim=1)))
