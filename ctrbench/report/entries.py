"""The results the report compares: (train record, gold record) pairs, one per training run (a seed), loaded and
checked for comparability, and grouped into one ``ModelResult`` per (dataset, model) over its seeds."""

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
        return f"{self.dataset}/{self.model}/seed{self.seed}"

    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def predictions_path(self) -> Path:
        return Path(self.gold_path or ".").parent / self.gold.predictions.file

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
        if gold.seed is not None and gold.seed != train.seed:
            raise ValueError(f"seed differs between {train_path} ({train.seed}) and {gold_path} ({gold.seed})")
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


def check_comparable(entries: Sequence[ResultEntry], missing: Sequence[tuple]) -> None:
    """One result per (dataset, model, seed), none also listed as missing ((dataset, model) or (dataset, model,
    seed)), and one set of tasks per dataset."""
    seen: set[tuple] = set()
    tasks: dict[str, tuple[list[str], str]] = {}
    for entry in entries:
        key = (entry.dataset, entry.model, entry.seed)
        if key in seen:
            raise ValueError(f"two results for {entry.label}")
        seen.add(key)
        first = tasks.setdefault(entry.dataset, (entry.tasks, entry.model))
        if first[0] != entry.tasks:
            raise ValueError(f"dataset {entry.dataset!r}: {first[1]} has tasks {first[0]} but {entry.model} has {entry.tasks}")
    given = seen | {key[:2] for key in seen}
    both = sorted(tuple(item) for item in missing if tuple(item) in given)
    if both:
        raise ValueError(f"listed as missing but results were given: {', '.join('/'.join(map(str, item)) for item in both)}")


MEASURED_COST = ("peak_memory_bytes", "train_samples_per_s", "train_seconds", "seconds_per_epoch")


@dataclass
class ModelResult:
    """A model's runs on one dataset, one per seed (seed order): the report's unit. Quality is the mean over the
    seeds; the bill is the first run's with its measured figures (memory, speed, time) averaged over the seeds."""

    runs: list[ResultEntry]

    def __post_init__(self):
        self.runs = sorted(self.runs, key=lambda run: run.seed)
        settings = {run.train.config_sha256 for run in self.runs} - {None}
        if len(settings) > 1:  # e.g. a partial report over a seed retrained with new settings and a stale one
            listed = ", ".join(f"seed {run.seed}: {str(run.train.config_sha256)[:12]}" for run in self.runs)
            raise ValueError(
                f"{self.runs[0].dataset}/{self.runs[0].model}: its seeds were trained with different settings "
                f"(config_sha256 {listed}); rerun the stale seeds before comparing them"
            )

    @property
    def first(self) -> ResultEntry:
        return self.runs[0]

    dataset = property(lambda self: self.first.dataset)
    model = property(lambda self: self.first.model)
    arch = property(lambda self: self.first.arch)
    tasks = property(lambda self: self.first.tasks)
    train = property(lambda self: self.first.train)  # settings, curves and params: the first seed's
    gold = property(lambda self: self.first.gold)
    gold_sha256 = property(lambda self: self.first.gold_sha256)
    model_info = property(lambda self: self.first.model_info)

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def cost(self) -> Cost:
        first = self.first.cost
        return first.model_copy(
            update={
                name: type(getattr(first, name))(np.mean([getattr(run.cost, name) for run in self.runs]))
                for name in MEASURED_COST
            }
        )

    def gold_values(self, task: str, name: str) -> list[float | None]:
        return [run.gold_metric(task, name) for run in self.runs]

    def valid_values(self, task: str, name: str) -> list[float | None]:
        return [run.valid_metric(task, name) for run in self.runs]

    def gold_metric(self, task: str, name: str) -> float | None:
        return _mean(self.gold_values(task, name))

    def valid_metric(self, task: str, name: str) -> float | None:
        return _mean(self.valid_values(task, name))

    def mean_gold(self, name: str) -> float | None:
        return _mean([run.mean_gold(name) for run in self.runs])


def _mean(values: list[float | None]) -> float | None:
    """The mean over the seeds; None when any seed lacks the value (a task with one class in the split lacks it in
    every seed alike, since they share the split)."""
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def group_runs(entries: Sequence[ResultEntry]) -> list[ModelResult]:
    """One ModelResult per (dataset, model), in first-seen order."""
    grouped: dict[tuple[str, str], list[ResultEntry]] = {}
    for entry in entries:
        grouped.setdefault((entry.dataset, entry.model), []).append(entry)
    return [ModelResult(runs) for runs in grouped.values()]
