"""Cost accounting: parameter bytes by kind, peak memory and the device a run used."""

from __future__ import annotations

import platform
import resource

import torch
from torch import nn

from ctrbench.train.optim import split_parameters


def parameter_cost(model: nn.Module) -> dict[str, int]:
    groups = split_parameters(model)
    cost = {}
    for group, params in groups.items():
        cost[f"params_{group}"] = sum(p.numel() for p in params)
        cost[f"param_bytes_{group}"] = sum(p.numel() * p.element_size() for p in params)
    return cost


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"training.device is {requested!r} but CUDA is not available on {platform.node()}")
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
