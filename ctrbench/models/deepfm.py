"""DeepFM (Guo et al., 2017): first-order + FM second-order + DNN, all on shared field embeddings; with ``gen``,
DeepFM+GEN (the LLM-CTR family's baseline): the pair term scores GEN's generated fields against the embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.gen import GEN_GAMMA, FeatureGeneration, GeneratedPairInteraction
from ctrbench.models.layers import MLP, FeatureEmbedding, FMInteraction
from ctrbench.models.registry import register


@register
class DeepFM(CTRModel):
    """logits = first-order + FM(field tokens) + DNN(flattened field tokens).

    Dense features are per-feature tokens ``x_i * v_i + b_i`` so that they join the FM; FuxiCTR's (and the
    paper's) are ``x_i * v_i``, which ``dense_bias=False`` gives. With several
    tasks, the first-order term and the DNN have one output per task and the (scalar) FM term is
    shared; with one task this is exactly DeepFM.

    With ``gen`` (DeepFM+GEN, see ``gen.py``) the second-order term is ``sum_{i<j} <g_i, e_j>`` with
    ``G = gen_gamma * ReLU(W vec(E))``; the DNN still reads ``vec(E)``:

        logit = b + first-order + sum_{i<j} <g_i, e_j> + MLP(vec(E))

    With ``gen`` off, ``G = E`` and the pair term is the FM term."""

    arch = "deepfm"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        mlp_hidden: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        batch_norm: bool = False,
        gen: bool = False,
        gen_gamma: float = GEN_GAMMA,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        n_tasks = feature_map.num_tasks
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="per_feature", sparse=sparse_embeddings, dense_bias=dense_bias
        )
        # first order: one weight per categorical row (per task), same layout and offsets as the tokens
        self.linear_cat = None
        if self.embedding.num_categorical:
            self.linear_cat = nn.Embedding(self.embedding.embedding.num_embeddings, n_tasks, sparse=sparse_embeddings)
            nn.init.normal_(self.linear_cat.weight, std=1e-4)
        self.linear_dense = nn.Linear(self.embedding.num_dense, n_tasks, bias=False) if self.embedding.num_dense else None
        self.bias = nn.Parameter(torch.zeros(n_tasks))
        self.fm = FMInteraction()
        self.gen = FeatureGeneration(self.embedding.num_tokens, embedding_dim, gen_gamma) if gen else None
        self.pairs = GeneratedPairInteraction() if gen else None
        self.dnn = MLP(
            self.embedding.num_tokens * embedding_dim,
            tuple(mlp_hidden),
            dropout=dropout,
            batch_norm=batch_norm,
            output_dim=n_tasks,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        tokens = self.embedding(batch)  # [B, F, d]
        second_order = self.fm(tokens) if self.gen is None else self.pairs(self.gen(tokens), tokens)  # [B, 1]
        logits = self.bias + second_order + self.dnn(tokens.flatten(1))  # [B, n_tasks]
        if self.linear_dense is not None:
            logits = logits + self.linear_dense(batch.dense)
        if self.linear_cat is not None:
            logits = logits + self.linear_cat(batch.categorical + self.embedding.offsets).sum(dim=1)
        return ModelOutput(logits=logits)
