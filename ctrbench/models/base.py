"""The interface every CTR model implements; the trainer and evaluator know nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap


@dataclass
class ModelOutput:
    logits: torch.Tensor  # [B, n_tasks], before the sigmoid
    aux: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. branch logits, gate values


class CTRModel(nn.Module):
    """Base class: a model maps a ``Batch`` to logits, one column per label of the feature map.

    Hyper-parameters are keyword arguments of ``__init__`` (with CPU-sized defaults); the config's
    ``params`` mapping is passed as they are, so an unknown key fails before training starts.
    ``sparse_embeddings`` asks for ``nn.Embedding(sparse=True)`` so that SGD / SparseAdam update
    only the rows a batch touched. Embedding tables are recognised as ``nn.Embedding`` modules.
    """

    arch: ClassVar[str] = ""
    needs_sequences: ClassVar[bool] = False  # True: the dataset must have behaviour sequences

    def __init__(self, feature_map: FeatureMap, *, sparse_embeddings: bool = False):
        super().__init__()
        self.feature_map = feature_map
        self.sparse_embeddings = sparse_embeddings

    def forward(self, batch: Batch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def model_info(self) -> dict:
        """Facts about how the model ran that its params do not fix (e.g. which Mamba kernel), for the results."""
        return {}

    def loss(self, output: ModelOutput, batch: Batch) -> torch.Tensor:
        """Mean binary cross-entropy over the batch and the tasks; models with auxiliary losses override it."""
        return F.binary_cross_entropy_with_logits(output.logits, batch.labels)
