"""One optimisation step, the unit that the training loop, benchmarks and tests share."""

from __future__ import annotations

import torch

from ctrbench.data.batch import Batch
from ctrbench.inference import forward
from ctrbench.models.base import CTRModel


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
