"""DCNv3 (Li et al., 2024, arXiv 2407.13349): a linear and an exponential cross network, each with its
own logit, over multi-head field embeddings, trained with the Tri-BCE loss (after FuxiCTR's ``DCNv3``)."""

from __future__ import annotations

import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput, task_losses
from ctrbench.models.layers import FeatureEmbedding
from ctrbench.models.registry import register


class MultiHeadFeatureEmbedding(nn.Module):
    """Field tokens ``[B, F, H*d]`` -> per-head flat vectors ``[B, H, F*d]``, as FuxiCTR does it.

    Each token is cut into ``H`` heads of size ``d``; within a head, each field's ``d`` values are cut
    into two halves, and the head vector is ``[first halves of all fields, second halves of all fields]``.
    Every field (categorical, and each dense feature as a ``per_feature`` token) is one token. A dense
    token is ``x_i w_i + b_i`` (rtdl style); FuxiCTR's is ``x_i w_i`` (``nn.Linear(1, H*d, bias=False)``),
    which ``dense_bias=False`` gives.
    """

    def __init__(
        self,
        feature_map: FeatureMap,
        embedding_dim: int,
        num_heads: int,
        *,
        sparse: bool = False,
        dense_bias: bool = True,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim * num_heads, dense_mode="per_feature", sparse=sparse, dense_bias=dense_bias
        )

    @property
    def num_fields(self) -> int:
        return self.embedding.num_tokens

    def forward(self, batch: Batch) -> torch.Tensor:
        tokens = self.embedding(batch)  # [B, F, H*d]
        heads = torch.stack(torch.tensor_split(tokens, self.num_heads, dim=-1), dim=1)  # [B, H, F, d]
        first, second = torch.tensor_split(heads, 2, dim=-1)  # [B, H, F, d/2] each
        return torch.cat([first.flatten(2), second.flatten(2)], dim=-1)  # [B, H, F*d]


class SelfMaskCrossLayer(nn.Module):
    """One cross layer's ``[c || Mask(c)] + b`` with ``c = W x`` (``W``: ``[D/2, D]``, no bias).

    ``Mask(c) = c * relu(LN(c))`` (FuxiCTR: ``H * ReLU(LayerNorm(H))``), so the positions where
    ``LN(c) <= 0`` are zeroed; without layer norm it is ``c * relu(c)``. The caller multiplies the
    result by ``x0`` (LCN) or ``x_l`` (ECN) and adds the residual.
    """

    def __init__(self, input_dim: int, *, layer_norm: bool = True):
        super().__init__()
        if input_dim % 2:
            raise ValueError(f"DCNv3 cross input width must be even, got {input_dim}")
        self.w = nn.Linear(input_dim, input_dim // 2, bias=False)
        self.bias = nn.Parameter(torch.empty(input_dim))
        self.norm = nn.LayerNorm(input_dim // 2) if layer_norm else None
        nn.init.xavier_normal_(self.w.weight)
        nn.init.uniform_(self.bias)  # U(0, 1) as in the reference

    def mask(self, c: torch.Tensor) -> torch.Tensor:
        return c * torch.relu(self.norm(c) if self.norm is not None else c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.w(x)
        return torch.cat([c, self.mask(c)], dim=-1) + self.bias


class _CrossNetwork(nn.Module):
    """Stack of self-mask cross layers on ``[B, H, D]`` and a linear head -> ``[B, n_tasks]`` (mean over heads).
    With ``num_tasks=None`` it has no head and is used through :meth:`cross` (MDAF's static branch)."""

    exponential: bool = False

    def __init__(self, input_dim: int, num_layers: int, num_tasks: int | None, *, layer_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(SelfMaskCrossLayer(input_dim, layer_norm=layer_norm) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(input_dim, num_tasks) if num_tasks else None
        if self.fc is not None:
            nn.init.xavier_normal_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def cross(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = (x if self.exponential else x0) * layer(x) + x
            x = self.dropout(x)
        return x

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return self.fc(self.cross(x0)).mean(dim=1)  # [B, H, T] -> [B, T]


class LinearCrossNetwork(_CrossNetwork):
    """LCN: ``x_{l+1} = x0 * ([c_l || Mask(c_l)] + b_l) + x_l``; order grows linearly (l + 1)."""

    exponential = False


class ExponentialCrossNetwork(_CrossNetwork):
    """ECN: ``x_{2^l} = x_{2^{l-1}} * ([c || Mask(c)] + b) + x_{2^{l-1}}``; order doubles per layer."""

    exponential = True


@register
class DCNv3(CTRModel):
    """Multi-head field embeddings -> LCN (shallow) and ECN (deep) in parallel; each yields a logit
    (``aux["logit_lcn"]``, ``aux["logit_ecn"]``), the prediction is their mean. Trained with Tri-BCE:
    ``L + w_D L_D + w_S L_S`` with ``w = max(0, L_branch - L)`` per task. As in the reference the
    weights are not detached (gradients flow through them); ``detach_loss_weights=True`` stops them.
    Dense features are tokens ``x_i w_i + b_i``; ``dense_bias=False`` gives FuxiCTR's ``x_i w_i``."""

    arch = "dcnv3"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        num_heads: int = 2,
        num_lcn_layers: int = 3,
        num_ecn_layers: int = 3,
        dropout: float = 0.1,
        layer_norm: bool = True,
        detach_loss_weights: bool = False,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        if num_heads < 1 or embedding_dim < 1:
            raise ValueError(f"num_heads and embedding_dim must be positive, got {num_heads}, {embedding_dim}")
        self.detach_loss_weights = detach_loss_weights
        self.embedding = MultiHeadFeatureEmbedding(
            feature_map, embedding_dim, num_heads, sparse=sparse_embeddings, dense_bias=dense_bias
        )
        width = self.embedding.num_fields * embedding_dim
        kw = {"layer_norm": layer_norm, "dropout": dropout}
        self.lcn = LinearCrossNetwork(width, num_lcn_layers, feature_map.num_tasks, **kw)
        self.ecn = ExponentialCrossNetwork(width, num_ecn_layers, feature_map.num_tasks, **kw)

    def forward(self, batch: Batch) -> ModelOutput:
        x0 = self.embedding(batch)  # [B, H, F*d]
        logit_lcn, logit_ecn = self.lcn(x0), self.ecn(x0)
        return ModelOutput(logits=(logit_lcn + logit_ecn) * 0.5, aux={"logit_lcn": logit_lcn, "logit_ecn": logit_ecn})

    def loss(self, output: ModelOutput, batch: Batch) -> torch.Tensor:
        """Tri-BCE per task (each BCE a mean over the rows where the task's label is known), then the
        tasks' weighted mean."""
        loss = task_losses(output.logits, batch)  # [T]
        loss_d, loss_s = task_losses(output.aux["logit_ecn"], batch), task_losses(output.aux["logit_lcn"], batch)
        w_d, w_s = torch.clamp(loss_d - loss, min=0), torch.clamp(loss_s - loss, min=0)
        if self.detach_loss_weights:
            w_d, w_s = w_d.detach(), w_s.detach()
        return self.weighted_loss(loss + w_d * loss_d + w_s * loss_s)
