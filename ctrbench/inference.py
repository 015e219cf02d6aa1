"""Running a model: the forward pass in a precision (training and prediction share it) and batched prediction over
a split (validation and gold evaluation)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch

from ctrbench.data.batch import Batch
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.results import PRECISIONS


def autocast(device: torch.device, precision: str):
    """Forward passes in ``precision``: bf16 autocast (CPU or CUDA), or nothing for fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def forward(model: torch.nn.Module, batch: Batch, device: torch.device, precision: str) -> ModelOutput:
    """The model's output with float32 logits and aux (losses and metrics are computed in fp32)."""
    with autocast(device, precision):
        output = model(batch)
    return ModelOutput(output.logits.float(), {k: v.float() for k, v in output.aux.items()})


@torch.no_grad()
def predict(model: CTRModel, batches: Iterable[Batch], device: torch.device, precision: str = "fp32") -> dict:
    """``{'labels': [N, T], 'probs': [N, T], 'mask': [N, T] bool or None, 'groups': [N] or None, 'aux': {key: [N, ...]}}``
    over ``batches`` (concatenated in order); probabilities in float32 whatever the precision."""
    was_training = model.training
    model.eval()
    labels, probs, masks, groups, aux = [], [], [], [], {}
    for batch in batches:
        output = forward(model, batch.to(device), device, precision)
        probs.append(torch.sigmoid(output.logits).cpu())
        labels.append(batch.labels)
        masks.append(batch.label_mask)
        groups.append(batch.group)
        for key, value in output.aux.items():
            aux.setdefault(key, []).append(value.cpu())
    model.train(was_training)
    fm = model.feature_map
    if not labels:  # a process whose share of a small split is empty: the same kinds of arrays, of 0 rows
        labels, probs = [torch.zeros(0, fm.num_tasks)], [torch.zeros(0, fm.num_tasks)]
        masks = [torch.zeros(0, fm.num_tasks, dtype=torch.bool)] if any(fm.masks) else [None]
        groups = [torch.zeros(0, dtype=torch.int64)] if fm.group_by else [None]
    join = lambda parts: None if not parts or parts[0] is None else torch.cat(parts).numpy()
    return {
        "labels": join(labels),
        "probs": join(probs),
        "mask": join(masks),
        "groups": join(groups),
        "aux": {key: torch.cat(values).numpy() for key, values in aux.items()},
    }
