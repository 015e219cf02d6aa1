"""One optimisation step, the unit that the training loop, benchmarks and tests share."""

from __future__ import annotations

import contextlib

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


def train_step(
    model: torch.nn.Module, loss_of: CTRModel, optimizer, batch: Batch, device: torch.device, precision: str = "fp32"
) -> torch.Tensor:
    """Forward (``model``: the CTR model, or its DDP wrapper), the loss of the unwrapped model ``loss_of``,
    backward and one optimizer step; returns the detached loss."""
    output = forward(model, batch, device, precision)
    loss = loss_of.loss(output, batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()
