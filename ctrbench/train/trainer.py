"""The one trainer for every model: the loop that owns validation, early stopping, the best checkpoint,
the JSON-lines log and the cost bill around ``train_step``.

It takes batches from a batch source (in memory or streamed from parquet: ``open_source``) without
knowing which, and runs the same in one process or in each process of a ``torchrun`` job (DDP, see
``distributed``): every process trains on its share of each global batch, validation predictions
are gathered before any metric, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from ctrbench.atomic import atomic_path
from ctrbench.data.schema import FeatureMap
from ctrbench.data.sources import open_source
from ctrbench.inference import predict
from ctrbench.metrics import task_metrics
from ctrbench.models.base import FROZEN
from ctrbench.models.registry import build_model
from ctrbench.provenance import provenance
from ctrbench.results import MEAN_AUC, Cost, EpochRecord, GroupCost, TaskMetrics, TrainRecord, write_record
from ctrbench.train.checkpoint import load_parts, save_checkpoint
from ctrbench.train.cost import (
    FLOP_BATCH_ROWS,
    PeakMemory,
    device_name,
    forward_flops_per_sample,
    parameter_cost,
    resolve_device,
)
from ctrbench.train.distributed import Distributed
from ctrbench.train.optim import GroupedOptimizer, check_groups, embeddings_are_sparse
from ctrbench.train.step import train_step

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


def with_task_weights(feature_map: FeatureMap, weights: dict | None) -> FeatureMap:
    """The feature map with the training's task weights (``{task: weight}``) in place of the reader's."""
    if not weights:
        return feature_map
    unknown = sorted(set(weights) - set(feature_map.labels))
    if unknown:
        raise ValueError(f"training.task_weights names {unknown}; dataset {feature_map.dataset!r} has tasks {feature_map.labels}")
    tasks = [dataclasses.replace(t, weight=float(weights.get(t.name, t.weight))) for t in feature_map.tasks]
    return dataclasses.replace(feature_map, tasks=tasks)


def monitored_value(metrics: dict[str, dict], monitor: str) -> float:
    """What early stopping maximises: the mean validation AUC over the tasks, or one task's AUC."""
    if monitor == MEAN_AUC:
        aucs = [m["auc"] for m in metrics.values() if m["auc"] is not None]
        return float(np.mean(aucs)) if aucs else float("nan")
    auc = metrics[monitor.removeprefix("auc:")]["auc"]
    return float("nan") if auc is None else auc


def validate(model, source, batch_size: int, device, precision: str, world: Distributed) -> dict[str, dict]:
    """Per-task metrics on a split, every process's predictions gathered first."""
    scored = predict(model, source.eval_batches(batch_size, rank=world.rank, world_size=world.world_size), device, precision)
    gathered = {key: world.gather(scored[key]) for key in ("labels", "probs", "mask", "groups")}
    fm = model.feature_map
    return task_metrics(fm.labels, gathered["labels"], gathered["probs"], gathered["groups"], gathered["mask"])


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
    init: dict | None = None,
) -> TrainRecord:
    """Train one model and write its checkpoint, ``TrainRecord`` and JSON-lines log (rank 0); returns the record.
    ``init``: ``{"checkpoint": path, "parts": [...], "model": its name}``, submodules to start from another run's
    weights (a training phase)."""
    seed_everything(seed)
    precision = training.get("precision", "fp32")
    distributed = training.get("distributed") or {}
    world = Distributed.from_env(resolve_device(training["device"]).type, distributed.get("backend", "auto"))
    device = resolve_device(training["device"], world.local_rank)
    feature_map = with_task_weights(FeatureMap.load(feature_map_path), training.get("task_weights"))
    feature_map = feature_map.with_max_lens(training.get("history_max_len"))
    monitor = f"auc:{training['monitor_task']}" if training.get("monitor_task") else MEAN_AUC
    if monitor != MEAN_AUC and monitor[4:] not in feature_map.labels:
        raise ValueError(f"training.monitor_task {monitor[4:]!r} is not a task of {feature_map.dataset!r}: {feature_map.labels}")
    load_start = time.perf_counter()
    train_source = open_source(train_path, feature_map, training.get("loader"))
    valid_source = open_source(valid_path, feature_map, training.get("loader"))
    log.info("%d train (%s) / %d valid rows in %.1fs", train_source.rows, train_source.kind, valid_source.rows, time.perf_counter() - load_start)

    optimizer_config = training["optimizer"]
    model = build_model(arch, feature_map, params, sparse_embeddings=embeddings_are_sparse(optimizer_config))
    initialised_from = {"model": init.get("model"), **load_parts(model, init["checkpoint"], init["parts"])} if init else None
    model = model.to(device)
    wrapped = world.wrap(model, device)
    if world.enabled:
        # every process built the same initial weights from `seed`; from here each draws its own dropout masks
        torch.manual_seed(seed + world.rank)
    groups = model.parameter_groups()
    check_groups(model, groups)
    optimizer = GroupedOptimizer(groups, optimizer_config, model.no_weight_decay())
    memory = PeakMemory(device)

    batch_size = min(int(training["batch_size"]), train_source.rows)
    steps = training.get("steps_per_epoch") or math.ceil(train_source.rows / batch_size)
    batches = train_source.train_batches(batch_size, seed, rank=world.rank, world_size=world.world_size)
    eval_batch = int(training.get("eval_batch_size") or DEFAULT_EVAL_BATCH_SIZE)
    patience, max_epochs = int(training["patience"]), int(training["max_epochs"])

    epochs: list[EpochRecord] = []
    best_value, best_epoch, best_valid = -math.inf, 0, None
    train_seconds, train_samples = 0.0, 0
    # the best checkpoint and the log are staged beside their outputs and renamed once training has
    # finished (rank 0 only), so an interrupted or failed run never leaves files that look complete
    with contextlib.ExitStack() as stack:
        staged_checkpoint = stack.enter_context(atomic_path(outputs.checkpoint)) if world.is_main else None
        jsonl = stack.enter_context(open(stack.enter_context(atomic_path(outputs.log_jsonl)), "w")) if world.is_main else None
        for epoch in range(1, max_epochs + 1):
            wrapped.train()
            sync(device)
            epoch_start = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            bar = tqdm(range(steps), desc=f"{(meta or {}).get('model', arch)} epoch {epoch}/{max_epochs}", disable=not (progress and world.is_main), mininterval=2, leave=False)
            for _ in bar:
                loss_sum += train_step(wrapped, model, optimizer, next(batches).to(device), device, precision)
            bar.close()
            mean_loss = sum(world.values(float(loss_sum.item()))) / (steps * world.world_size)
            if not math.isfinite(mean_loss):
                raise FloatingPointError(f"{arch}: training diverged in epoch {epoch} (non-finite loss); lower the learning rates")
            sync(device)
            epoch_train_seconds = max(world.values(time.perf_counter() - epoch_start))
            epoch_samples = steps * batch_size
            train_seconds += epoch_train_seconds
            train_samples += epoch_samples

            valid_metrics = validate(model, valid_source, eval_batch, device, precision, world)
            value = monitored_value(valid_metrics, monitor)
            improved = value > best_value
            if improved:
                best_value, best_epoch, best_valid = value, epoch, valid_metrics
                if world.is_main:
                    save_checkpoint(staged_checkpoint, model, arch, params, epoch, precision)
            record = EpochRecord(
                epoch=epoch,
                train_loss=mean_loss,
                valid={name: TaskMetrics(**m) for name, m in valid_metrics.items()},
                monitored=value if math.isfinite(value) else None,
                best_so_far=improved,
                epoch_seconds=time.perf_counter() - epoch_start,
                train_seconds=epoch_train_seconds,
                samples_per_s=epoch_samples / epoch_train_seconds,
            )
            epochs.append(record)
            if jsonl is not None:
                jsonl.write(record.model_dump_json() + "\n")
                jsonl.flush()
            log.info(
                "epoch %d: train loss %.5f, valid %s %.5f%s (%.1fs)",
                epoch, mean_loss, monitor, value, " *" if improved else "", record.epoch_seconds,
            )  # fmt: skip
            if epoch - best_epoch >= patience:
                log.info("early stop: no better valid %s for %d epochs (best epoch %d)", monitor, patience, best_epoch)
                break
        if best_valid is None:
            raise RuntimeError(f"{arch}: validation {monitor} was never defined (does the valid split hold both classes?)")
        world.barrier()  # every process is done before rank 0 publishes

    meta = meta or {}
    state_bytes = optimizer.state_bytes()
    costs = parameter_cost(groups)
    record = TrainRecord(
        dataset=meta.get("dataset", feature_map.dataset),
        model=meta.get("model", arch),
        config_sha256=meta.get("config_sha256"),
        arch=arch,
        params=params,
        training=training,
        seed=seed,
        model_info=model.model_info(),
        initialised_from=initialised_from,
        tasks=feature_map.labels,
        history_lengths={g: feature_map.sequence_group(g).max_len for g in model.history_groups_read()},
        monitor=monitor,
        best_epoch=best_epoch,
        best_valid={name: TaskMetrics(**m) for name, m in best_valid.items()},
        stopped_early=len(epochs) < max_epochs,
        epochs=epochs,
        cost=Cost(
            parameter_groups={
                group: GroupCost(
                    **cost,
                    trainable=group != FROZEN,
                    optimizer=optimizer.names.get(group),
                    optimizer_state_bytes=state_bytes.get(group, 0),
                )
                for group, cost in costs.items()
            },
            optimizer_state_bytes=sum(state_bytes.values()),
            sparse_embeddings=model.sparse_embeddings,
            # the job's bill: the processes' RSS together on a CPU (they share its memory), the largest GPU's on GPUs
            peak_memory_bytes=(max if device.type == "cuda" else sum)(world.values(memory.peak_bytes())),
            peak_memory_kind=memory.kind,
            train_samples_per_s=train_samples / train_seconds,
            train_seconds=train_seconds,
            seconds_per_epoch=float(np.mean([e.epoch_seconds for e in epochs])),
            forward_flops_per_sample=forward_flops_per_sample(
                model, next(valid_source.eval_batches(FLOP_BATCH_ROWS)).to(device)
            ),
            device=device.type,
            device_name=device_name(device),
            processes=world.world_size,
            precision=precision,
            loader=train_source.kind,
        ),
        provenance=meta.get("provenance") or provenance(),
    )
    if world.is_main:
        write_record(outputs.metrics, record)
    return record


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
