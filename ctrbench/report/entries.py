"""The results the report compares: (train record, gold record) pairs, loaded and checked for comparability."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctrbench.data.manifest import DataManifest
from ctrbench.report.formatting import finite
from ctrbench.results import Cost, GoldRecord, TrainRecord, read_record


class GoldHashMismatch(ValueError):
    """Results of one dataset were evaluated on different gold files, so they cannot be compared."""

    def __init__(self, dataset: str, models_by_hash: dict[str, list[str]]):
        self.dataset = dataset
        self.models_by_hash = models_by_hash
        detail = "; ".join(f"{', '.join(models)}: gold_sha256 {digest}" for digest, models in models_by_hash.items())
        super().__init__(f"dataset {dataset!r} has results evaluated on different gold files ({detail})")


@dataclass
class ResultEntry:
    """The two records of one (dataset, model): training and the gold evaluation."""

    dataset: str
    model: str
    train: TrainRecord
    gold: GoldRecord
    train_path: str | None = None
    gold_path: str | None = None

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.model}"

    @property
    def arch(self) -> str:
        return self.train.arch

    @property
    def tasks(self) -> list[str]:
        return self.train.tasks

    @property
    def cost(self) -> Cost:
        return self.train.cost

    @property
    def gold_sha256(self) -> str:
        return self.gold.gold_sha256

    @property
    def gold_identity(self) -> str:
        """The gold rows and the event table their histories point into: what results must share to be compared."""
        return f"{self.gold.gold_sha256} (events {self.gold.events_sha256[:12]})"

    def gold_metric(self, task: str, name: str) -> float | None:
        return finite(getattr(self.gold.tasks[task], name))

    def valid_metric(self, task: str, name: str) -> float | None:
        return finite(getattr(self.train.best_valid[task], name))

    def mean_gold(self, name: str) -> float | None:
        values = [v for v in (self.gold_metric(t, name) for t in self.tasks) if v is not None]
        return float(np.mean(values)) if values else None

    @property
    def model_info(self) -> dict:
        """Facts about how the model ran (e.g. ``mamba_backend``), as training recorded them (the evaluation's
        copy, taken from the checkpoint, is listed in the provenance where it differs)."""
        return self.train.model_info


def info_text(value) -> str:
    """One model_info value as text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def starts_from_text(initialised_from: dict | None) -> str:
    """A training phase's start, as the record keeps it: "from deepfm_gen's embedding, gen (epoch 3)"."""
    if not initialised_from:
        return ""
    source = initialised_from.get("model") or initialised_from["checkpoint"]
    return f"from {source}'s {', '.join(initialised_from['parts'])} (epoch {initialised_from['epoch']})"


def model_info_text(info: dict) -> str:
    return ", ".join(f"{key}: {info_text(value)}" for key, value in info.items())


def load_entries(pairs: Iterable[tuple[str | Path, str | Path]]) -> list[ResultEntry]:
    """Read (train_metrics.json, gold_eval.json) pairs; both records must be of the same dataset, model and tasks."""
    entries = []
    for train_path, gold_path in pairs:
        train, gold = read_record(train_path, TrainRecord), read_record(gold_path, GoldRecord)
        for key in ("dataset", "model"):
            if getattr(train, key) != getattr(gold, key):
                raise ValueError(f"{key} differs between {train_path} ({getattr(train, key)!r}) and {gold_path} ({getattr(gold, key)!r})")
        if list(gold.tasks) != train.tasks:
            raise ValueError(f"{train_path} has tasks {train.tasks} but {gold_path} has {list(gold.tasks)}")
        entries.append(ResultEntry(train.dataset, train.model, train, gold, str(train_path), str(gold_path)))
    return entries


def check_gold_hashes(entries: Iterable[ResultEntry], manifests: dict[str, DataManifest] | None = None) -> None:
    """Raise GoldHashMismatch when one dataset's results were scored on different gold files (or event tables),
    or on other ones than its current preprocessing manifest names (shown as 'manifest')."""
    by_dataset: dict[str, dict[str, list[str]]] = {}
    for dataset, manifest in (manifests or {}).items():
        identity = f"{manifest.outputs['gold'].sha256} (events {manifest.outputs['events'].sha256[:12]})"
        by_dataset.setdefault(dataset, {})[identity] = ["manifest"]
    for entry in entries:
        by_dataset.setdefault(entry.dataset, {}).setdefault(entry.gold_identity, []).append(entry.model)
    for dataset, models_by_hash in by_dataset.items():
        if len(models_by_hash) > 1:
            raise GoldHashMismatch(dataset, models_by_hash)


def check_comparable(entries: Sequence[ResultEntry], missing: Sequence[tuple[str, str]]) -> None:
    """One result per (dataset, model), none also listed as missing, and one set of tasks per dataset."""
    seen: set[tuple[str, str]] = set()
    tasks: dict[str, tuple[list[str], str]] = {}
    for entry in entries:
        key = (entry.dataset, entry.model)
        if key in seen:
            raise ValueError(f"two results for {entry.label}")
        seen.add(key)
        first = tasks.setdefault(entry.dataset, (entry.tasks, entry.model))
        if first[0] != entry.tasks:
            raise ValueError(f"dataset {entry.dataset!r}: {first[1]} has tasks {first[0]} but {entry.model} has {entry.tasks}")
    both = sorted(seen & {tuple(pair) for pair in missing})
    if both:
        raise ValueError(f"listed as missing but results were given: {', '.join(f'{d}/{m}' for d, m in both)}")
