"""The one trainer for every model: seeded batches, grouped optimizer, per-epoch validation,
early stopping on validation AUC, the best checkpoint, a JSON-lines log and the cost bill."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ctrbench.atomic import atomic_path, atomic_write_text
from ctrbench.data.batch import TensorDataset
from ctrbench.data.schema import FeatureMap
from ctrbench.inference import predict
from ctrbench.metrics import task_metrics
from ctrbench.models.registry import build_model
from ctrbench.train.cost import PeakMemory, device_name, parameter_cost, resolve_device
from ctrbench.train.optim import GroupedOptimizer, embeddings_are_sparse

log = logging.getLogger(__name__)
DEFAULT_EVAL_BATCH_SIZE = 8192


@dataclass
class TrainOutputs:
    checkpoint: Path
    metrics: Path
    log_jsonl: Path


def seed_everything(seed: int) -> None:
    # cuBLAS needs a fixed workspace to be deterministic; it must be set before CUDA initialises
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # deterministic kernels where PyTorch has them; on CUDA a few ops (sparse index_add, attention
    # backward) have none and only warn: runs are bit-identical on CPU, close on GPU
    torch.use_deterministic_algorithms(True, warn_only=True)


def save_checkpoint(path: Path, model, arch: str, params: dict, feature_map: FeatureMap, epoch: int) -> None:
    tmp = path.with_name(path.name + ".tmp")  # a crash mid-save keeps the previous best intact
    torch.save(
        {
            "arch": arch,
            "params": params,
            "sparse_embeddings": model.sparse_embeddings,
            "feature_map": feature_map.to_json(),
            "epoch": epoch,
            "model_info": model.model_info(),
            "state_dict": model.state_dict(),
        },
        tmp,
    )
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: torch.device):
    """Rebuild the model a checkpoint was trained as; returns (model, checkpoint dict)."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    feature_map = FeatureMap.from_json(ckpt["feature_map"])
    model = build_model(ckpt["arch"], feature_map, ckpt["params"], sparse_embeddings=ckpt["sparse_embeddings"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device), ckpt


class EpochSampler:
    """Yields index tensors of ``batch_size`` from seeded permutations, continued across epochs, so an
    epoch of a fixed step count picks up where the last one stopped. The last ``num_rows % batch_size``
    rows of each permutation are dropped (full batches only); a new permutation drops different ones."""

    def __init__(self, num_rows: int, batch_size: int, seed: int):
        self.num_rows, self.batch_size = num_rows, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.position = torch.randperm(num_rows, generator=self.generator), 0

    def next_batch(self) -> torch.Tensor:
        if self.position + self.batch_size > self.num_rows:
            self.order, self.position = torch.randperm(self.num_rows, generator=self.generator), 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return index


def _mean_auc(metrics: dict) -> float:
    aucs = [m["auc"] for m in metrics.values() if m["auc"] is not None]
    return float(np.mean(aucs)) if aucs else float("nan")


def train(
    *,
    train_path: str | Path,
    valid_path: str | Path,
    feature_map_path: str | Path,
    arch: str,
    params: dict,
    training: dict,
    seed: int,
    outputs: TrainOutputs,
    meta: dict | None = None,
    progress: bool = True,
) -> dict:
    """Train one model and write its checkpoint, metrics JSON and JSON-lines log; returns the metrics."""
    seed_everything(seed)
    device = resolve_device(training["device"])
    feature_map = FeatureMap.load(feature_map_path)
    load_start = time.perf_counter()
    train_set = TensorDataset.from_parquet(train_path, feature_map)
    valid_set = TensorDataset.from_parquet(valid_path, feature_map)
    log.info("loaded %d train / %d valid rows in %.1fs", len(train_set), len(valid_set), time.perf_counter() - load_start)

    optimizer_config = training["optimizer"]
    model = build_model(arch, feature_map, params, sparse_embeddings=embeddings_are_sparse(optimizer_config)).to(device)
    optimizer = GroupedOptimizer(model, optimizer_config)
    memory = PeakMemory(device)

    batch_size = int(training["batch_size"])
    steps = training.get("steps_per_epoch") or math.ceil(len(train_set) / batch_size)
    sampler = EpochSampler(len(train_set), min(batch_size, len(train_set)), seed)
    eval_batch = int(training.get("eval_batch_size") or DEFAULT_EVAL_BATCH_SIZE)
    patience, max_epochs = int(training["patience"]), int(training["max_epochs"])

    epochs, best_auc, best_epoch, best_valid = [], -math.inf, 0, None
    train_seconds, train_samples = 0.0, 0
    # the best checkpoint and the log are staged beside their outputs and renamed once training
    # has finished, so an interrupted or failed run never leaves files that look complete
    with (
        atomic_path(outputs.checkpoint) as staged_checkpoint,
        atomic_path(outputs.log_jsonl) as staged_log,
        open(staged_log, "w") as jsonl,
    ):
        for epoch in range(1, max_epochs + 1):
            model.train()
            sync(device)
            epoch_start = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            bar = tqdm(range(steps), desc=f"{arch} epoch {epoch}/{max_epochs}", disable=not progress, mininterval=2, leave=False)
            for _ in bar:
                batch = train_set.batch(sampler.next_batch()).to(device)
                output = model(batch)
                loss = model.loss(output, batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach()
            bar.close()
            if not torch.isfinite(loss_sum):
                raise FloatingPointError(
                    f"{arch}: training diverged in epoch {epoch} (non-finite loss); lower the learning rates"
                )
            sync(device)
            epoch_train_seconds = time.perf_counter() - epoch_start
            epoch_samples = steps * sampler.batch_size
            train_seconds += epoch_train_seconds
            train_samples += epoch_samples

            valid = predict(model, valid_set, eval_batch, device)
            valid_metrics = task_metrics(feature_map.labels, valid["labels"], valid["probs"], valid["groups"])
            valid_auc = _mean_auc(valid_metrics)
            primary = valid_metrics[feature_map.labels[0]]
            record = {
                "epoch": epoch,
                "train_loss": float(loss_sum.item() / steps),
                "valid_logloss": primary["logloss"],
                "valid_auc": primary["auc"],
                "valid_gauc": primary["gauc"],
                "valid_mean_auc": valid_auc,
                "valid_tasks": valid_metrics,
                "epoch_seconds": time.perf_counter() - epoch_start,
                "train_seconds": epoch_train_seconds,
                "samples_per_s": epoch_samples / epoch_train_seconds,
            }
            improved = valid_auc > best_auc
            if improved:
                best_auc, best_epoch, best_valid = valid_auc, epoch, valid_metrics
                save_checkpoint(staged_checkpoint, model, arch, params, feature_map, epoch)
            record["best_so_far"] = improved
            epochs.append(record)
            jsonl.write(json.dumps(record) + "\n")
            jsonl.flush()
            log.info(
                "epoch %d: train loss %.5f, valid logloss %.5f, valid AUC %.5f%s (%.1fs)",
                epoch, record["train_loss"], primary["logloss"], valid_auc, " *" if improved else "", record["epoch_seconds"],
            )
            if epoch - best_epoch >= patience:
                log.info("early stop: no better valid AUC for %d epochs (best epoch %d)", patience, best_epoch)
                break
        if best_valid is None:
            raise RuntimeError(f"{arch}: validation AUC was never defined (does the valid split hold both classes?)")

    state_bytes = optimizer.state_bytes()
    metrics = {
        **(meta or {}),
        "arch": arch,
        "params": params,
        "training": training,
        "seed": seed,
        "model_info": model.model_info(),
        "best_epoch": best_epoch,
        "best_valid": best_valid[feature_map.labels[0]],
        "best_valid_tasks": best_valid,
        "stopped_early": len(epochs) < max_epochs,
        "epochs": [{k: v for k, v in e.items() if k != "valid_tasks"} for e in epochs],
        "cost": {
            **parameter_cost(model),
            "optimizer_state_bytes": sum(state_bytes.values()),
            "optimizer_state_bytes_by_group": state_bytes,
            "optimizers": optimizer.names,
            "sparse_embeddings": model.sparse_embeddings,
            "peak_memory_bytes": memory.peak_bytes(),
            "peak_memory_kind": memory.kind,
            "train_samples_per_s": train_samples / train_seconds,
            "train_seconds": train_seconds,
            "seconds_per_epoch": float(np.mean([e["epoch_seconds"] for e in epochs])),
            "device": device.type,
            "device_name": device_name(device),
        },
    }
    atomic_write_text(outputs.metrics, json.dumps(metrics, indent=2) + "\n")
    return metrics


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
