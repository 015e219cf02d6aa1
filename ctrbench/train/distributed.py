"""Data-parallel training with PyTorch's own engine: DDP in processes started by ``torchrun``.

``torchrun`` (``torch.distributed.run``) starts one process per GPU, or a configured number of CPU
processes, and gives each ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; ``Distributed.from_env``
reads them and joins the process group (NCCL on GPUs, gloo on CPUs). Without them it is the
single-process case, where every collective is a no-op. Each process trains on its own share of
every global batch; DDP averages the gradients, so N processes with batches of B/N take the steps
one process takes with B (up to floating-point summation order). Validation predictions are
gathered from every process before any metric, and only rank 0 writes outputs.

Sparse embedding gradients are all-reduced by gloo but not by NCCL, so sparse embeddings with
several GPU processes are refused (``sparse_problem``).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_type: str, backend: str = "auto") -> Distributed:
        """The process's place in a ``torchrun`` job (joining its process group), or the single process."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        if backend == "auto":
            backend = "nccl" if device_type == "cuda" else "gloo"
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device_id = None
        if device_type == "cuda":
            # NCCL collectives (and all_gather_object) run on the current device: one GPU per process
            device_id = torch.device("cuda", local_rank)
            torch.cuda.set_device(device_id)
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=dt.timedelta(minutes=30), device_id=device_id)
        return cls(dist.get_rank(), world_size, local_rank, backend)

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.enabled:
            return model
        problem = sparse_problem(self.backend, getattr(model, "sparse_embeddings", False))
        if problem:
            raise ValueError(problem)
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def gather(self, array: np.ndarray | None) -> np.ndarray | None:
        """Every process's array, concatenated in rank order (each process gets the whole). Every process
        must call it with an array, or every process with None (a collective is never skipped by one rank)."""
        if not self.enabled:
            return array
        parts: list = [None] * self.world_size
        dist.all_gather_object(parts, array)
        if any(part is None for part in parts):
            if not all(part is None for part in parts):
                raise RuntimeError("gather: some processes had an array and others None")
            return None
        return np.concatenate(parts)

    def values(self, value):
        """One small value from every process, in rank order (a list of one without processes)."""
        if not self.enabled:
            return [value]
        parts: list = [None] * self.world_size
        dist.all_gather_object(parts, value)
        return parts

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def sparse_problem(backend: str | None, sparse_embeddings: bool) -> str | None:
    """Why sparse embedding gradients cannot be trained with this backend, or None."""
    if sparse_embeddings and backend == "nccl":
        return (
            "sparse embedding gradients cannot be all-reduced by NCCL (several GPU processes): choose a dense "
            "embedding optimizer (training.optimizer.embedding.name: adam or adamw), or one process"
        )
    return None
