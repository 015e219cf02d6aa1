"""Cost accounting: parameter counts and bytes per parameter group, peak memory and the device a run used."""

from __future__ import annotations

import platform
import resource

import torch
from torch import nn


def parameter_cost(groups: dict[str, list[nn.Parameter]]) -> dict[str, dict[str, int]]:
    """``{group: {"params": count, "bytes": bytes}}`` for every group, the frozen one included."""
    return {
        group: {"params": sum(p.numel() for p in params), "bytes": sum(p.numel() * p.element_size() for p in params)}
        for group, params in groups.items()
    }


FLOP_BATCH_ROWS = 4  # FLOPs per sample do not depend on the batch; an attention model's math path holds B x L x L


def forward_flops_per_sample(model: nn.Module, batch) -> float:
    """FLOPs of one forward pass per sample, as ``torch.utils.flop_counter`` counts them (matrix products,
    convolutions and attention; lookups and element-wise ops are not counted), on one evaluation batch.

    Attention runs on SDPA's math path here: the counter has no formula for the CPU flash kernel and would count its
    attention as nothing. With autograd on: under no_grad a view of a parameter (INFNet's task tokens) requires grad
    without a grad function, which the counter's module tracker refuses."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(batch)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / len(batch)


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present; with several processes on CUDA each takes the GPU of its local rank."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"training.device is {requested!r} but CUDA is not available on {platform.node()}")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


class PeakMemory:
    """Peak memory of a phase: CUDA peak allocated bytes on GPU, the process's peak RSS on CPU.

    Peak RSS cannot be reset, so on CPU it is the process peak up to now (data loading included);
    the two kinds are labelled in the results and never compared with each other.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss"
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def peak_bytes(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
