"""The data model shared by every reader, model and report: which columns a processed dataset has.

A processed dataset is three parquet files (train / valid / gold) plus ``feature_map.json``.
Every feature is of one kind, so flat, sequence and multi-task datasets fit one model:

- ``dense``:       float32 scalar, already transformed (e.g. log1p);
- ``categorical``: int32 local id in ``[0, vocab_size)``; id 0 is reserved for missing values;
- ``sequence``:    list<int32> of ids of one **sequence group**, padded with 0, most recent last;
                   ``shares_vocab_with`` names a categorical feature whose table it reuses
                   (a history of item ids shares the target item's embedding).

A **sequence group** is a set of aligned sequence features (item, category, behaviour, time of the
same events) with its own ``max_len``; a row may have several groups of different lengths (one per
behaviour type). A group stored by reference may carry times: ``timestamp`` names the event-table column
holding each event's time and ``row_time`` the split column holding the row's (both unix seconds), and the
loader hands models each event's time gap to its row (``Batch.time_gaps``). A group's histories are stored
in one of two ways (``storage``):

- ``fixed``: each row holds its last ``max_len`` events as fixed-size list columns named after the
  group's features (readers whose raw data gives every row its own history, e.g. TaobaoAd);
- ``events``: **by reference**. The dataset keeps every user's events once, in ``EVENTS_FILE`` beside
  the splits (one row per event, users contiguous, each user's events in time order, a column per
  feature of the group, or the column a feature names as its ``event_column``), and each row holds the ``start`` (the user's first event) and ``end`` (one
  past the last event of its history) of its history there. The loader gathers the most recent
  ``max_len`` events at batch time, so disk and memory grow with the events, not with rows x
  ``max_len``, and one processed dataset serves models of any history length (``with_max_lens``).

A **task** is one label column (float32, 0/1) with a weight in the loss (default 1) and an
optional ``mask`` column (1 where the label is known, 0 where it is not: such rows count neither in
that task's loss nor in its metrics). A single-task dataset is the case of one task.

``group_by`` optionally names an int column (e.g. user id) that per-group metrics (gAUC) use.
``row_id`` (int64) identifies each row's source (line number), for provenance and split checks.

Feature maps are versioned (``format_version``). Version 1 (labels, sequences with their own
``max_len``) is read and upgraded; a newer version or an unknown feature kind is refused with an
error saying so, so that new kinds (text tokens, precomputed embeddings) can be added later
without an old reader misreading them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

FORMAT_VERSION = 2
MISSING_ID = 0  # reserved categorical id for a missing value, and the sequence padding id
ROW_ID = "row_id"
DEFAULT_SEQUENCE_GROUP = "history"
EVENTS_FILE = "events.parquet"  # a dataset's event table, beside its splits (empty without histories by reference)
STORAGES = ("fixed", "events")

FeatureType = Literal["dense", "categorical", "sequence"]
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureType)


class FeatureMapError(ValueError):
    """A feature map this version of ctrbench cannot use (unknown version or kind, inconsistent fields)."""


@dataclass(frozen=True)
class Task:
    name: str  # the label column
    weight: float = 1.0  # weight of this task's loss in the sum over tasks
    mask: str | None = None  # column that is 1 where the label is known


def tasks_of(names: list[str]) -> list[Task]:
    """Tasks of weight 1 without masks, one per label column."""
    return [Task(name) for name in names]


@dataclass(frozen=True)
class SequenceGroup:
    name: str
    max_len: int  # events per row, most recent kept
    timestamp: str | None = None  # "events" only: the event-table column holding each event's time (unix s)
    storage: str = "fixed"  # "fixed": list columns in the splits; "events": by reference into EVENTS_FILE
    start: str | None = None  # "events": the split column holding the row's first history event (event table row)
    end: str | None = None  # "events": the split column holding one past its last history event
    row_time: str | None = None  # with timestamp: the split column holding the row's time (unix s)

    @property
    def by_reference(self) -> bool:
        return self.storage == "events"


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    vocab_size: int | None = None  # categorical / sequence: number of embedding rows
    shares_vocab_with: str | None = None  # sequence only: name of a categorical feature
    group: str | None = None  # sequence only: its sequence group
    # by-reference sequence only: the EVENTS_FILE column holding its values (default: its name). Groups may read
    # one column: per-behaviour histories (click_video_id, like_video_id) over one event table's video_id
    event_column: str | None = None

    @property
    def event_source(self) -> str:
        return self.event_column or self.name


@dataclass
class FeatureMap:
    dataset: str
    tasks: list[Task]
    features: list[Feature]
    sequence_groups: list[SequenceGroup] = field(default_factory=list)
    group_by: str | None = None
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # reader-specific facts (hash bins, transforms)

    def __post_init__(self) -> None:
        where = f"feature map of {self.dataset!r}"
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise FeatureMapError(f"{where}: duplicate feature names")
        groups = {g.name: g for g in self.sequence_groups}
        if len(groups) != len(self.sequence_groups):
            raise FeatureMapError(f"{where}: duplicate sequence group names")
        for f in self.features:
            if f.type not in FEATURE_KINDS:
                raise FeatureMapError(
                    f"{where}: feature {f.name!r} has unknown kind {f.type!r}; known: {FEATURE_KINDS}"
                )
            if f.type in ("categorical", "sequence") and not (f.vocab_size and f.vocab_size > 0):
                raise FeatureMapError(f"{where}: feature {f.name!r}: {f.type} needs a positive vocab_size")
            if f.type == "sequence" and f.group not in groups:
                raise FeatureMapError(f"{where}: sequence {f.name!r} names unknown group {f.group!r}")
            if f.type != "sequence" and (f.group or f.shares_vocab_with or f.event_column):
                raise FeatureMapError(
                    f"{where}: only sequences have a group, an event column or share a vocabulary ({f.name!r})"
                )
            if f.event_column and not groups[f.group].by_reference:
                raise FeatureMapError(
                    f"{where}: sequence {f.name!r} names an event column, but its group is not stored by reference"
                )
            if f.shares_vocab_with is not None and f.shares_vocab_with not in names:
                raise FeatureMapError(
                    f"{where}: feature {f.name!r} shares the vocabulary of unknown {f.shares_vocab_with!r}"
                )
        for g in self.sequence_groups:
            if g.max_len < 1:
                raise FeatureMapError(f"{where}: sequence group {g.name!r} needs a positive max_len")
            if g.storage not in STORAGES or (g.by_reference != bool(g.start and g.end)):
                raise FeatureMapError(
                    f"{where}: sequence group {g.name!r}: storage {g.storage!r} needs start and end columns exactly when it is 'events'"
                )
            if (g.timestamp is None) != (g.row_time is None) or (g.timestamp and not g.by_reference):
                raise FeatureMapError(
                    f"{where}: sequence group {g.name!r}: timestamp (an event column) and row_time (a split column) "
                    "go together, and only in a group stored by reference"
                )
        if not self.tasks:
            raise FeatureMapError(f"{where}: no task (label column)")
        task_names = [t.name for t in self.tasks]
        if len(set(task_names)) != len(task_names) or set(task_names) & set(names):
            raise FeatureMapError(f"{where}: task names must be distinct and not feature names: {task_names}")
        if not all(t.weight >= 0 for t in self.tasks) or not sum(t.weight for t in self.tasks) > 0:
            raise FeatureMapError(f"{where}: task weights must be >= 0 and not all 0: {[t.weight for t in self.tasks]}")

    def of_type(self, kind: FeatureType) -> list[Feature]:
        return [f for f in self.features if f.type == kind]

    @property
    def dense(self) -> list[Feature]:
        return self.of_type("dense")

    @property
    def categorical(self) -> list[Feature]:
        return self.of_type("categorical")

    @property
    def sequences(self) -> list[Feature]:
        return self.of_type("sequence")

    def sequences_of(self, group: str) -> list[Feature]:
        return [f for f in self.sequences if f.group == group]

    def sequence_group(self, name: str) -> SequenceGroup:
        return next(g for g in self.sequence_groups if g.name == name)

    def max_len(self, feature: Feature) -> int:
        """Events per row of a sequence feature: its group's ``max_len``."""
        return self.sequence_group(feature.group).max_len

    @property
    def labels(self) -> list[str]:
        """The label columns, in task order."""
        return [t.name for t in self.tasks]

    @property
    def masks(self) -> list[str | None]:
        return [t.mask for t in self.tasks]

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def columns(self) -> list[str]:
        """Every split column a model's batches read: labels, masks, features (a by-reference group's start
        and end in place of its features), the gAUC group."""
        wanted = self.labels + [m for m in self.masks if m]
        for f in self.features:
            group = self.sequence_group(f.group) if f.type == "sequence" else None
            wanted += [group.start, group.end] if group is not None and group.by_reference else [f.name]
        wanted += [g.row_time for g in self.sequence_groups if g.row_time]
        return list(dict.fromkeys(wanted + ([self.group_by] if self.group_by else [])))

    def event_columns(self) -> list[str]:
        """The event table columns the by-reference groups read (each once)."""
        columns = [f.event_source for f in self.sequences if self.sequence_group(f.group).by_reference]
        return list(dict.fromkeys(columns + [g.timestamp for g in self.sequence_groups if g.timestamp]))

    def with_max_lens(self, max_lens: dict | None) -> FeatureMap:
        """The feature map with other history lengths (``{group: max_len}``) for groups stored by reference."""
        if not max_lens:
            return self
        groups = {g.name: g for g in self.sequence_groups}
        for name, max_len in max_lens.items():
            if name not in groups or not groups[name].by_reference:
                raise FeatureMapError(
                    f"training.history_max_len names {name!r}: dataset {self.dataset!r} has no sequence group of that name "
                    f"stored by reference (its groups: {', '.join(f'{g.name} ({g.storage})' for g in self.sequence_groups) or 'none'})"
                )
            groups[name] = replace(groups[name], max_len=int(max_len))
        return replace(self, sequence_groups=list(groups.values()))

    def to_json(self) -> dict:
        data = asdict(self)
        for f in data["features"]:  # written only where set, so feature maps without it keep their bytes
            if f["event_column"] is None:
                del f["event_column"]
        for g in data["sequence_groups"]:
            if g["row_time"] is None:
                del g["row_time"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> FeatureMap:
        version = data.get("format_version")
        if version == 1:
            data = _upgrade_v1(data)
        elif version != FORMAT_VERSION:
            raise FeatureMapError(
                f"feature map of {data.get('dataset')!r} has format_version {version!r}; this ctrbench reads 1 and "
                f"{FORMAT_VERSION} (a newer ctrbench wrote it? reprocess the data with this one)"
            )
        data = dict(data)
        for f in data["features"]:
            if f.get("type") not in FEATURE_KINDS:
                raise FeatureMapError(
                    f"feature map of {data.get('dataset')!r}: feature {f.get('name')!r} has kind {f.get('type')!r}, "
                    f"which this ctrbench does not know (known: {', '.join(FEATURE_KINDS)})"
                )
        try:
            data["features"] = [Feature(**f) for f in data["features"]]
            data["tasks"] = [Task(**t) for t in data["tasks"]]
            data["sequence_groups"] = [SequenceGroup(**g) for g in data.get("sequence_groups", [])]
            return cls(**data)
        except (TypeError, KeyError) as error:  # an unknown or missing key
            raise FeatureMapError(f"feature map of {data.get('dataset')!r} is malformed: {error}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FeatureMap:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except FeatureMapError as error:
            raise FeatureMapError(f"{path}: {error}") from None


def _upgrade_v1(data: dict) -> dict:
    """Version 1: ``labels`` (weight 1, no mask) and sequences each with a ``max_len``, one implicit group."""
    labels = data.get("labels") or []
    data = {k: v for k, v in data.items() if k != "labels"}
    data["tasks"] = [{"name": label} for label in labels]
    features, lengths = [], set()
    for f in data["features"]:
        f = dict(f)
        if f.get("type") == "sequence":
            lengths.add(f.pop("max_len"))
            f["group"] = DEFAULT_SEQUENCE_GROUP
        else:
            f.pop("max_len", None)
        features.append(f)
    if len(lengths) > 1:
        raise FeatureMapError(f"version-1 feature map of {data.get('dataset')!r}: sequences differ in max_len")
    data["features"] = features
    data["sequence_groups"] = [{"name": DEFAULT_SEQUENCE_GROUP, "max_len": lengths.pop()}] if lengths else []
    data["format_version"] = FORMAT_VERSION
    return data
