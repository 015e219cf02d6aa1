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


def same_features(a: FeatureMap, b: FeatureMap) -> bool:
    """One feature map for weights to carry over: the same fields in the same order with the same vocabularies."""
    return [(f.name, f.vocab_size) for f in a.categorical] == [(f.name, f.vocab_size) for f in b.categorical] and [
        f.name for f in a.dense
    ] == [f.name for f in b.dense]


def without_adapters(key: str) -> str:
    """A state-dict key as it reads without LoRA adapters (peft names an adapted layer's own weight base_layer.*)."""
    return key.replace(".base_layer.", ".")


def load_parts(model: CTRModel, path: str | Path, parts: list[str]) -> dict:
    """Copy the weights of the submodules ``parts`` (e.g. ``embedding``, ``gen``) from another run's checkpoint into
    ``model``: a training phase starting where an earlier one ended. Both must be trained on one feature map, and
    each part must exist in both with the same tensors; returns what was loaded, for the train record."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not same_features(FeatureMap.from_json(ckpt["feature_map"]), model.feature_map):
        raise ValueError(
            f"{path}: trained on other features or vocabularies than this run's ({model.feature_map.dataset!r}); "
            "weights carry over between phases only on one feature map"
        )
    own = model.state_dict()
    loaded = {}
    for part in parts:
        prefix = part + "."
        theirs = {k: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        # ours -> its tensor in theirs: LoRA (peft) wraps a layer's weights as base_layer.*, and adapters this run
        # adds keep their initialisation (a phase may add LoRA to an LM an earlier phase trained whole)
        ours = {k: without_adapters(k) for k in own if k.startswith(prefix) and "lora_" not in k}
        if not theirs or not ours:
            where = f"the {ckpt['arch']} checkpoint {path}" if not theirs else f"this {type(model).__name__}"
            raise ValueError(f"init_from part {part!r}: {where} has no such part")
        if set(theirs) != set(ours.values()) or any(theirs[ours[k]].shape != own[k].shape for k in ours):
            differ = sorted(set(theirs) ^ set(ours.values())) or "shapes differ"
            raise ValueError(
                f"init_from part {part!r}: the {ckpt['arch']} checkpoint {path} holds other tensors or shapes "
                f"({differ}); are the params (e.g. embedding_dim) the same?"
            )
        loaded.update({k: theirs[source] for k, source in ours.items()})
    model.load_state_dict(loaded, strict=False)
    return {"checkpoint": str(path), "arch": ckpt["arch"], "epoch": ckpt["epoch"], "parts": list(parts)}
