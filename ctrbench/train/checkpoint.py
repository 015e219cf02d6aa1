"""The one place that writes and reads checkpoints: the trainer saves, the evaluator and tools load."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel
from ctrbench.models.registry import build_model


def save_checkpoint(path: str | Path, model: CTRModel, arch: str, params: dict, epoch: int, precision: str) -> None:
    """Everything needed to rebuild the model: arch, params, the feature map (task weights included), weights."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")  # a crash mid-save keeps the previous best intact
    torch.save(
        {
            "arch": arch,
            "params": params,
            "sparse_embeddings": model.sparse_embeddings,
            "feature_map": model.feature_map.to_json(),
            "epoch": epoch,
            "precision": precision,
            "model_info": model.model_info(),
            "state_dict": model.state_dict(),
        },
        tmp,
    )
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: torch.device) -> tuple[CTRModel, dict]:
    """Rebuild the model a checkpoint was trained as; returns (model, checkpoint dict)."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    feature_map = FeatureMap.from_json(ckpt["feature_map"])
    model = build_model(ckpt["arch"], feature_map, ckpt["params"], sparse_embeddings=ckpt["sparse_embeddings"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device), ckpt
