"""Running a model: the forward pass in a precision (training and prediction share it) and batched prediction over
a split (validation and gold evaluation)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import numpy as np
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


class _Columns:
    """Per-row outputs collected into a few growing numpy buffers (capacity doubled as needed). Keeping one small
    tensor per batch instead leaves thousands of small objects between a model's large, short-lived activations,
    and glibc's heap then cannot hand their pages back (bench/history_length.py's BST job at 1,000 events peaked
    hundreds of MiB higher that way)."""

    def __init__(self):
        self.buffers: dict[str, np.ndarray] = {}
        self.rows = 0

    def add(self, n: int, **columns: np.ndarray) -> None:
        for name, values in columns.items():
            buffer = self.buffers.get(name)
            if buffer is None or len(buffer) < self.rows + n:
                grown = np.empty((max(2 * self.rows, self.rows + n, 1024), *values.shape[1:]), values.dtype)
                if buffer is not None:
                    grown[: self.rows] = buffer[: self.rows]
                self.buffers[name] = buffer = grown
            buffer[self.rows : self.rows + n] = values
        self.rows += n

    def get(self, name: str) -> np.ndarray | None:
        return self.buffers[name][: self.rows].copy() if name in self.buffers else None


@torch.no_grad()
def predict(model: CTRModel, batches: Iterable[Batch], device: torch.device, precision: str = "fp32") -> dict:
    """``{'labels': [N, T], 'probs': [N, T], 'mask': [N, T] bool or None, 'groups': [N] or None, 'aux': {key: [N, ...]}}``
    over ``batches`` (concatenated in order); probabilities in float32 whatever the precision. Of the model's aux
    outputs, only those its ``extra_outputs()`` describes are kept (a gate of several experts per task would cost
    tens of bytes per row over a large split). A process whose share of a split is empty gets arrays of 0 rows of
    the same kinds."""
    fm = model.feature_map
    kept_aux = {description.key for description in model.extra_outputs()}
    was_training = model.training
    model.eval()
    columns = _Columns()
    for batch in batches:
        output = forward(model, batch.to(device), device, precision)
        found = {"labels": batch.labels.numpy(), "probs": torch.sigmoid(output.logits).cpu().numpy()}
        if batch.label_mask is not None:
            found["mask"] = batch.label_mask.numpy()
        if batch.group is not None:
            found["groups"] = batch.group.numpy()
        found |= {f"aux:{key}": value.cpu().numpy() for key, value in output.aux.items() if key in kept_aux}
        columns.add(len(batch), **found)
    model.train(was_training)
    if columns.rows == 0:
        columns.add(0, labels=np.zeros((0, fm.num_tasks), np.float32), probs=np.zeros((0, fm.num_tasks), np.float32))
        if any(fm.masks):
            columns.add(0, mask=np.zeros((0, fm.num_tasks), bool))
        if fm.group_by:
            columns.add(0, groups=np.zeros(0, np.int64))
    return {
        "labels": columns.get("labels"),
        "probs": columns.get("probs"),
        "mask": columns.get("mask"),
        "groups": columns.get("groups"),
        "aux": {name.removeprefix("aux:"): columns.get(name) for name in columns.buffers if name.startswith("aux:")},
    }
