"""Batched prediction over a whole split, shared by validation and gold evaluation."""

from __future__ import annotations

import numpy as np
import torch

from ctrbench.data.batch import TensorDataset
from ctrbench.models.base import CTRModel


@torch.no_grad()
def predict(model: CTRModel, dataset: TensorDataset, batch_size: int, device: torch.device) -> dict[str, np.ndarray]:
    """{'labels': [N, T], 'probs': [N, T], 'groups': [N] or None, plus every aux output, concatenated}."""
    was_training = model.training
    model.eval()
    probs, aux = [], {}
    for batch in dataset.iter_batches(batch_size):
        output = model(batch.to(device))
        probs.append(torch.sigmoid(output.logits).float().cpu())
        for key, value in output.aux.items():
            aux.setdefault(key, []).append(value.float().cpu())
    model.train(was_training)
    result = {
        "labels": dataset.labels.numpy(),
        "probs": torch.cat(probs).numpy(),
        "groups": None if dataset.group is None else dataset.group.numpy(),
    }
    result.update({f"aux_{key}": torch.cat(values).numpy() for key, values in aux.items()})
    return result
