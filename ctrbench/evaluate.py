"""Gold evaluation: the best checkpoint of a model on the one gold split every model shares."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ctrbench.atomic import atomic_write_text
from ctrbench.data.batch import TensorDataset
from ctrbench.inference import predict
from ctrbench.metrics import distribution_summary, task_metrics
from ctrbench.provenance import sha256_file
from ctrbench.train.cost import device_name, resolve_device
from ctrbench.train.trainer import DEFAULT_EVAL_BATCH_SIZE, load_checkpoint


def evaluate_gold(
    *,
    checkpoint_path: str | Path,
    gold_path: str | Path,
    output_path: str | Path,
    batch_size: int | None = None,
    device: str = "auto",
    meta: dict | None = None,
) -> dict:
    """Score the gold split and write ``gold_eval.json`` (metrics per task, row count, hashes).

    A model that returns a gate per sample (``ModelOutput.aux["gate"]``, e.g. MDAF: g near 1 leans
    on the static-feature branch, near 0 on the sequence branch) also gets ``gate``, the
    ``distribution_summary`` of all gate values (flattened), and ``gate_shape``, the shape of the
    gate array over the whole split (``[rows]`` or ``[rows, k]``). A checkpoint with a
    ``model_info`` dict (e.g. the Mamba backend used) has it copied as ``model_info``.
    """
    torch_device = resolve_device(device)
    model, ckpt = load_checkpoint(checkpoint_path, torch_device)
    gold = TensorDataset.from_parquet(gold_path, model.feature_map)
    start = time.perf_counter()
    scored = predict(model, gold, batch_size or DEFAULT_EVAL_BATCH_SIZE, torch_device)
    seconds = time.perf_counter() - start
    labels = model.feature_map.labels
    per_task = task_metrics(labels, scored["labels"], scored["probs"], scored["groups"])
    result = {
        **(meta or {}),
        "arch": ckpt["arch"],
        "checkpoint_epoch": ckpt["epoch"],
        "rows": len(gold),
        "metrics": per_task[labels[0]],
        "task_metrics": per_task,
        "gold_sha256": sha256_file(gold_path),
        "checkpoint_sha256": sha256_file(checkpoint_path),
        "eval_seconds": seconds,
        "eval_samples_per_s": len(gold) / seconds if seconds > 0 else None,
        "device": torch_device.type,
        "device_name": device_name(torch_device),
    }
    gate = scored.get("aux_gate")
    if gate is not None:
        result["gate_shape"] = [int(size) for size in gate.shape]
        result["gate"] = distribution_summary(gate.reshape(-1))
    if "model_info" in ckpt:
        result["model_info"] = ckpt["model_info"]
    atomic_write_text(output_path, json.dumps(result, indent=2) + "\n")
    return result
