"""The result contract: the versioned records that training and gold evaluation write and the report reads.

Defined once, here, as strict pydantic models: a record with a missing or unknown field is refused
when it is written as well as when it is read, so the report never guesses. Every record carries its
``kind`` and ``version``; a file of another kind, or of a version this ctrbench does not read (an
older result, or one written by a newer ctrbench), is refused with an error that names the file,
the versions and what to do.

- ``TrainRecord`` (``train_metrics.json``): what was trained and how (arch, params, training settings,
  precision, processes), every epoch's validation metrics per task, the best epoch, the cost bill
  (parameters per group, frozen ones included; optimizer state; peak memory; throughput) and provenance.
- ``GoldRecord`` (``gold_eval.json``): metrics per task on the gold split, its sha256, the checkpoint's, the
  per-row predictions file and its sha256 (``ctrbench.predictions``), and the model's extra outputs
  (``ExtraOutput``, e.g. MDAF's gate distribution) as the model describes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ctrbench.atomic import atomic_write_text

RESULT_VERSION = 4  # 3: TrainRecord.initialised_from (training phases); 4: seeds, GoldRecord.predictions
MEAN_AUC = "mean_auc"  # TrainRecord.monitor when early stopping compares the mean validation AUC over the tasks
Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


class ResultError(ValueError):
    """A result file that this ctrbench cannot read: wrong kind, another version, or a malformed record."""


class StrictRecord(BaseModel):
    """The base of every record: a field is required, typed and known, or the record is refused."""

    # strict: no coercion ("3" is not an int, True not a float); no NaN or infinity: an undefined metric is None
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class TaskMetrics(StrictRecord):
    logloss: float | None
    auc: float | None  # None when the split holds one class of this task
    accuracy: float | None
    gauc: float | None  # None without a user column, or when no user has both classes
    rows: int  # rows where this task's label is known
    label_rate: float | None


class EpochRecord(StrictRecord):
    epoch: int
    train_loss: float  # weighted task loss, mean over the epoch's steps and processes
    valid: dict[str, TaskMetrics]
    monitored: float | None  # the value early stopping compares (see TrainRecord.monitor)
    best_so_far: bool
    epoch_seconds: float
    train_seconds: float
    samples_per_s: float


class GroupCost(StrictRecord):
    params: int
    bytes: int
    trainable: bool
    optimizer: str | None  # None for the frozen group
    optimizer_state_bytes: int


class Cost(StrictRecord):
    parameter_groups: dict[str, GroupCost]  # embedding, dense, frozen and any group a model declares
    optimizer_state_bytes: int
    sparse_embeddings: bool
    peak_memory_bytes: int  # the largest of the processes
    peak_memory_kind: Literal["cpu_peak_rss", "cuda_max_allocated"]
    train_samples_per_s: float  # all processes together
    train_seconds: float
    seconds_per_epoch: float
    device: str
    device_name: str
    processes: int
    precision: Precision
    loader: Literal["memory", "streaming"]
    forward_flops_per_sample: float | None = None  # torch.utils.flop_counter's count of one forward, per sample

    def params(self, trainable: bool | None = None) -> int:
        return sum(g.params for g in self.parameter_groups.values() if trainable is None or g.trainable == trainable)


class Provenance(StrictRecord):
    packages: dict[str, str]
    git_commit: str | None
    host: str


class VersionedRecord(StrictRecord):
    """A record file: its ``kind`` names what it is, its ``version`` the layout; ``read_record`` checks both."""

    kind: str
    version: int
    REBUILD: ClassVar[str]  # what to rerun when a file of another version is found


class _Result(VersionedRecord):
    """What identifies a result, in both records: its kind (each record's own), version, dataset, model (the
    config's name), the hash of the settings it depends on, and the architecture."""

    REBUILD: ClassVar[str] = "rerun that model's train and gold_eval jobs"
    version: Literal[4] = RESULT_VERSION
    dataset: str
    model: str
    config_sha256: str | None
    arch: str


class TrainRecord(_Result):
    kind: Literal["ctrbench.train"] = "ctrbench.train"
    params: dict
    training: dict
    seed: int
    model_info: dict
    # a phase's start: {model, checkpoint, arch, epoch, parts} of the run whose weights it loaded (config init_from)
    initialised_from: dict | None = None
    tasks: list[str]
    # events per history the model read, by the sequence groups it reads (training.history_max_len, else the
    # dataset's max_len); {} for a model that reads no history
    history_lengths: dict[str, int] = {}
    monitor: str  # MEAN_AUC, or "auc:<task>" (that task's validation AUC)
    best_epoch: int
    best_valid: dict[str, TaskMetrics]
    stopped_early: bool
    epochs: list[EpochRecord]
    cost: Cost
    provenance: Provenance


class Histogram(StrictRecord):
    edges: list[float]  # increasing, one more than counts
    counts: list[int]
    below: int  # values under the first edge
    above: int  # values over the last edge

    @model_validator(mode="after")
    def _consistent(self) -> Histogram:
        if len(self.edges) != len(self.counts) + 1 or not self.counts:
            raise ValueError(f"{len(self.edges)} edges for {len(self.counts)} counts")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError("edges must increase")
        if min(self.counts) < 0 or self.below < 0 or self.above < 0:
            raise ValueError("counts must be >= 0")
        return self


class Quantiles(StrictRecord):
    p05: float
    p25: float
    p50: float
    p75: float
    p95: float


class Distribution(StrictRecord):
    """``metrics.distribution_summary`` of a sample of values."""

    count: int
    mean: float
    std: float
    min: float
    max: float
    quantiles: Quantiles
    histogram: Histogram


class ExtraOutput(StrictRecord):
    """A model's extra per-sample output on the gold set, summarised as the model describes it."""

    key: str
    title: str
    axis_label: str
    reading: str
    kind: Literal["distribution"]
    shape: list[int]  # of the output over the whole split, e.g. [rows] or [rows, k]
    summary: Distribution
    # the report flags the run when the mean is this close to either end of the histogram's range, with the warning
    collapse_margin: float | None = None
    collapse_warning: str = ""


class PredictionsFile(StrictRecord):
    """The gold evaluation's per-row predictions (``ctrbench.predictions``), beside its record."""

    file: str  # the name, in the record's folder
    sha256: str


class GoldRecord(_Result):
    kind: Literal["ctrbench.gold_eval"] = "ctrbench.gold_eval"
    seed: int | None  # the training run's (None: evaluated outside the workflow without it)
    checkpoint_epoch: int
    precision: Precision
    rows: int
    tasks: dict[str, TaskMetrics]
    gold_sha256: str
    events_sha256: str  # the event table the gold rows' histories point into (an empty table without them)
    checkpoint_sha256: str
    eval_seconds: float
    eval_samples_per_s: float | None
    device: str
    device_name: str
    model_info: dict
    extra_outputs: list[ExtraOutput]
    predictions: PredictionsFile
    provenance: Provenance


Record = TypeVar("Record", bound=VersionedRecord)


def write_record(path: str | Path, record: VersionedRecord) -> None:
    atomic_write_text(path, record.model_dump_json(indent=2) + "\n")


def read_record(path: str | Path, cls: type[Record]) -> Record:
    """Read and check one record; raises ResultError naming the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ResultError(f"{path}: not a readable result file ({error})") from None
    expected = cls.model_fields["kind"].default
    readable = cls.model_fields["version"].default
    if isinstance(data, dict) and "kind" not in data and "version" not in data:
        raise ResultError(
            f"{path}: written before {expected} records were versioned; this ctrbench reads version {readable}: {cls.REBUILD}"
        )
    if not isinstance(data, dict) or data.get("kind") != expected:
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ResultError(f"{path}: expected a {expected!r} record, found kind {found!r}")
    version = data.get("version")
    if version != readable:
        newer = isinstance(version, int) and version > readable
        action = "update ctrbench to read it" if newer else cls.REBUILD
        raise ResultError(f"{path}: {expected} version {version!r} is not the version {readable} this ctrbench reads ({action})")
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise ResultError(f"{path}: malformed {expected} record ({problems})") from None
