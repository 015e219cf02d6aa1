"""MDAF: a static-feature branch and a behaviour-sequence branch fused by a learned gate.

- static branch: DCNv3's multi-head field embeddings and its linear and exponential cross networks
  (without their heads) over every non-sequence feature (target item and category, user, time);
  the two crossed vectors ``c_s``, concatenated, are projected: ``h_s = BN_s(W_s c_s + b_s)``, ``[B, fusion_dim]``;
- sequence branch: Mamba4Rec's encoder (state at the last event, crossed with the target) or BST's
  transformer over ``[history; target]`` (outputs concatenated), ``c_q``, projected:
  ``h_q = BN_q(W_q c_q + b_q)``, ``[B, fusion_dim]``; it has its own embedding table for the target
  fields (``sequence_embedding_dim``), initialised as the standalone model's;
- gate ``g = sigmoid(W [h_s; h_q] + b)``, one value per sample; fused ``g * h_s + (1 - g) * h_q``;
  an MLP head ``(128, 64)`` with dropout. ``aux["gate"]`` returns ``g`` (``[B]``): ``g`` near 1 means
  the prediction rests on the static features, near 0 on the history.

``BN`` is batch normalisation (``branch_norm``; without it ``h = W c + b``, the fusion as first
specified): each feature of ``h_s`` and ``h_q`` is centred and scaled over the batch (then a learned
scale and shift; under data parallelism each process normalises over its own share of the batch), so the
gate weighs two vectors of one scale. Without it the gate shuts on the static branch before either
branch has learned: ``h_s`` and ``h_q`` have non-zero batch means (at initialisation ``h_s`` is nearly
the same vector for every sample, DCNv3's embeddings starting at N(0, 1e-4)), so every gate weight acts
as one more bias and Adam, moving each weight by about its learning rate per step, drives
``W [h_s; h_q]`` alike for all samples up to ``2 * fusion_dim`` times faster than the gate's bias alone could;
while the branches carry no signal yet (BST's plateau), muting the varying ``h_q`` (``g -> 1``) is the
cheapest way down the loss, and the sequence branch's gradient, scaled by ``1 - g``, fades with it. In
the default run (synthetic UserBehavior) MDAF-BST's gate logit rose from 0 to 2.1 in 20 steps while the
gate's bias moved 0.03, and the model ended with its gate at 1.000 on the gold split and gold AUC 0.524;
normalised, the logit stayed within 0.6 of 0, the gate ended at 0.48 and the gold AUC at 0.695
(``bench/mdaf_gate.py --epochs 2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput, OutputDescription
from ctrbench.models.bst import EMBEDDING_INIT_STD as BST_INIT_STD
from ctrbench.models.bst import pool_sequence, pooled_width
from ctrbench.models.dcnv3 import ExponentialCrossNetwork, LinearCrossNetwork, MultiHeadFeatureEmbedding
from ctrbench.models.layers import MLP, FeatureEmbedding
from ctrbench.models.mamba import Backend
from ctrbench.models.mamba4rec import EMBEDDING_INIT_STD as MAMBA4REC_INIT_STD
from ctrbench.models.mamba4rec import target_interaction
from ctrbench.models.registry import register
from ctrbench.models.sequence import (
    BehaviourTokens,
    MambaSequenceEncoder,
    TransformerSequenceEncoder,
    target_fields_map,
)


@register
class MDAF(CTRModel):
    arch = "mdaf"
    needs_sequences = True

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        sequence_encoder: Literal["mamba", "bst"] = "mamba",
        static_embedding_dim: int = 16,
        static_heads: int = 2,
        num_lcn_layers: int = 3,
        num_ecn_layers: int = 3,
        sequence_embedding_dim: int = 32,
        sequence_init_std: float | None = None,
        d_model: int = 32,
        sequence_layers: int = 1,
        num_heads: int = 2,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        sequence_dropout: float = 0.1,
        fusion_dim: int = 128,
        mlp_hidden: Sequence[int] = (128, 64),
        dropout: float = 0.2,
        branch_norm: bool = True,
        backend: Backend = "auto",
        history_group: str | None = None,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        if sequence_encoder not in ("mamba", "bst"):
            raise ValueError(f"sequence_encoder must be 'mamba' or 'bst', got {sequence_encoder!r}")
        self.sequence_encoder = sequence_encoder

        self.static_embedding = MultiHeadFeatureEmbedding(
            feature_map, static_embedding_dim, static_heads, sparse=sparse_embeddings, dense_bias=dense_bias
        )
        width = self.static_embedding.num_fields * static_embedding_dim
        self.lcn = LinearCrossNetwork(width, num_lcn_layers, None)
        self.ecn = ExponentialCrossNetwork(width, num_ecn_layers, None)
        self.static_proj = nn.Linear(2 * static_heads * width, fusion_dim)
        self.static_norm = nn.BatchNorm1d(fusion_dim) if branch_norm else nn.Identity()

        if sequence_init_std is None:
            # the standalone model's init: MDAF-BST's branch with Mamba4Rec's 0.02 sat on BST's plateau
            # (gold AUC 0.61 against 0.75 at 0.05 in the default run)
            sequence_init_std = BST_INIT_STD if sequence_encoder == "bst" else MAMBA4REC_INIT_STD
        sequence_table = FeatureEmbedding(
            target_fields_map(feature_map, history_group), sequence_embedding_dim, sparse=sparse_embeddings, init_std=sequence_init_std
        )
        self.tokens = BehaviourTokens(feature_map, sequence_table, history_group)
        if sequence_encoder == "mamba":
            self.encoder = MambaSequenceEncoder(
                self.tokens.token_dim, d_model=d_model, num_layers=sequence_layers, d_state=d_state, d_conv=d_conv,
                expand=expand, dropout=sequence_dropout, backend=backend,
            )  # fmt: skip
            sequence_width = 3 * d_model
        else:
            self.encoder = TransformerSequenceEncoder(
                self.tokens.token_dim, self.tokens.max_len, d_model=d_model, num_layers=sequence_layers,
                num_heads=num_heads, dropout=sequence_dropout,
            )  # fmt: skip
            sequence_width = pooled_width(d_model, self.tokens.max_len, "concat")
        self.sequence_proj = nn.Linear(sequence_width, fusion_dim)
        self.sequence_norm = nn.BatchNorm1d(fusion_dim) if branch_norm else nn.Identity()

        self.gate = nn.Linear(2 * fusion_dim, 1)
        # start at g = 0.5; with unnormalised branches this alone did not keep the gate open (module docstring)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)
        self.head = MLP(fusion_dim, mlp_hidden, dropout=dropout, output_dim=feature_map.num_tasks)

    def model_info(self) -> dict:
        info = {"sequence_encoder": self.sequence_encoder}
        if self.sequence_encoder == "mamba":
            info["mamba_backend"] = self.encoder.backend
        return info

    def extra_outputs(self) -> list[OutputDescription]:
        return [
            OutputDescription(
                key="gate",
                title="gate g",
                axis_label="g (0: sequence, 1: static branch)",
                reading="g≈1: static branch, g≈0: sequence branch",
                collapse_margin=0.02,
                collapse_warning="the fusion collapsed onto one branch",
            )
        ]

    def static_branch(self, batch: Batch) -> torch.Tensor:
        x0 = self.static_embedding(batch)  # [B, H, F*d]
        crossed = torch.cat([self.lcn.cross(x0), self.ecn.cross(x0)], dim=-1)  # [B, H, 2*F*d]
        return self.static_norm(self.static_proj(crossed.flatten(1)))  # [B, fusion_dim]

    def sequence_branch(self, batch: Batch) -> torch.Tensor:
        history, target, mask = self.tokens(batch)
        if self.sequence_encoder == "mamba":
            features = target_interaction(self.encoder, self.encoder(history, mask), target)
        else:
            outputs, mask = self.encoder(history, target, mask)
            features = pool_sequence(outputs, mask, "concat")
        return self.sequence_norm(self.sequence_proj(features))  # [B, fusion_dim]

    def forward(self, batch: Batch) -> ModelOutput:
        h_static, h_sequence = self.static_branch(batch), self.sequence_branch(batch)
        g = torch.sigmoid(self.gate(torch.cat([h_static, h_sequence], dim=1)))  # [B, 1]
        fused = g * h_static + (1 - g) * h_sequence
        return ModelOutput(logits=self.head(fused), aux={"gate": g.squeeze(1)})
