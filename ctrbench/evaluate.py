"""Gold evaluation: the best checkpoint of a model on the one gold split every model shares."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.parquet as pq

from ctrbench.data.schema import EVENTS_FILE
from ctrbench.data.sources import open_source
from ctrbench.inference import predict
from ctrbench.metrics import distribution_summary, task_metrics
from ctrbench.predictions import PREDICTIONS_FILE, ROW_ID, write_predictions
from ctrbench.provenance import provenance, sha256_file
from ctrbench.results import ExtraOutput, GoldRecord, PredictionsFile, TaskMetrics, write_record
from ctrbench.train.checkpoint import load_checkpoint
from ctrbench.train.cost import device_name, resolve_device
from ctrbench.train.trainer import DEFAULT_EVAL_BATCH_SIZE


def evaluate_gold(
    *,
    checkpoint_path: str | Path,
    gold_path: str | Path,
    output_path: str | Path,
    predictions_path: str | Path | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str | None = None,
    loader: dict | None = None,
    meta: dict | None = None,
) -> GoldRecord:
    """Score the gold split and write its ``GoldRecord`` (metrics per task, row count, hashes) and the per-row
    predictions (``ctrbench.predictions``; default ``PREDICTIONS_FILE`` beside the record).

    Each extra output the model describes (``CTRModel.extra_outputs``, e.g. MDAF's gate: g near 1
    leans on the static-feature branch, near 0 on the sequence branch) is summarised over the whole
    split (``distribution_summary`` of every value, flattened) with its description, so the report
    can draw it without knowing the model. ``precision`` defaults to the one the model trained in.
    """
    torch_device = resolve_device(device)
    model, ckpt = load_checkpoint(checkpoint_path, torch_device)
    precision = precision or ckpt.get("precision", "fp32")
    gold = open_source(gold_path, model.feature_map, loader)
    start = time.perf_counter()
    scored = predict(model, gold.eval_batches(batch_size or DEFAULT_EVAL_BATCH_SIZE), torch_device, precision)
    seconds = time.perf_counter() - start
    tasks = model.feature_map.labels
    per_task = task_metrics(tasks, scored["labels"], scored["probs"], scored["groups"], scored["mask"])
    predictions_path = Path(predictions_path or Path(output_path).with_name(PREDICTIONS_FILE))
    row_id = pq.read_table(gold_path, columns=[ROW_ID]).column(ROW_ID).to_numpy()  # the split's order, as scored
    predictions_sha256 = write_predictions(
        predictions_path, tasks, row_id, scored["labels"], scored["probs"], scored["mask"], scored["groups"]
    )
    extra = []
    for description in model.extra_outputs():
        values = scored["aux"][description.key]
        extra.append(
            ExtraOutput(
                key=description.key,
                title=description.title,
                axis_label=description.axis_label,
                reading=description.reading,
                kind=description.kind,
                shape=[int(size) for size in values.shape],
                summary=distribution_summary(values.reshape(-1), value_range=description.value_range),
                collapse_margin=description.collapse_margin,
                collapse_warning=description.collapse_warning,
            )
        )
    meta = meta or {}
    record = GoldRecord(
        dataset=meta.get("dataset", model.feature_map.dataset),
        model=meta.get("model", ckpt["arch"]),
        config_sha256=meta.get("config_sha256"),
        seed=meta.get("seed"),
        arch=ckpt["arch"],
        checkpoint_epoch=ckpt["epoch"],
        precision=precision,
        rows=gold.rows,
        tasks={name: TaskMetrics(**m) for name, m in per_task.items()},
        gold_sha256=sha256_file(gold_path),
        events_sha256=sha256_file(Path(gold_path).parent / EVENTS_FILE),
        checkpoint_sha256=sha256_file(checkpoint_path),
        eval_seconds=seconds,
        eval_samples_per_s=gold.rows / seconds if seconds > 0 else None,
        device=torch_device.type,
        device_name=device_name(torch_device),
        model_info=ckpt.get("model_info", {}),
        extra_outputs=extra,
        predictions=PredictionsFile(file=os.path.relpath(predictions_path, Path(output_path).parent), sha256=predictions_sha256),
        provenance=meta.get("provenance") or provenance(),
    )
    write_record(output_path, record)
    return record
