"""Batched tensors: processed parquet rows as column tensors, and the batches models consume.

Histories stored by reference (``SequenceGroup.storage == "events"``) are gathered here, per batch:
the most recent ``max_len`` events before each row's ``end`` (and not before its ``start``) from the
dataset's ``EventTable``, with one ``[B, max_len]`` index gather per feature. A group with times also gets
each event's time gap to its row (``Batch.time_gaps``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ctrbench.data.schema import EVENTS_FILE, MISSING_ID, FeatureMap

TIME_KEY = "\0time"  # the gathered event times, under a key no feature can have


class EventTable:
    """The event columns of a dataset's by-reference histories, as int32 tensors (one row per event)."""

    def __init__(self, columns: dict[str, torch.Tensor]):
        self.columns = columns

    def gather(
        self, sources: dict[str, str], start: torch.Tensor, end: torch.Tensor, max_len: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``{feature: [B, max_len] int64}`` for ``sources`` (feature -> event column): the events
        ``end - max_len .. end - 1`` of each column, oldest first, ``MISSING_ID`` where that lies before ``start`` (a
        shorter history: left padding); and ``known [B, max_len]``, True on real events. The positions are
        computed once for the group's columns."""
        positions = end.unsqueeze(1) + torch.arange(-max_len, 0, dtype=end.dtype)  # [B, L]
        known = positions >= start.unsqueeze(1)
        if len(self.columns[next(iter(sources.values()))]) == 0:  # no user has a history event: every history is empty
            return {name: torch.full((len(end), max_len), MISSING_ID, dtype=torch.long) for name in sources}, known
        index = positions.clamp(min=0)
        gathered = {
            name: torch.where(known, self.columns[column][index], MISSING_ID).long() for name, column in sources.items()
        }
        return gathered, known

    @classmethod
    def beside(cls, split_path: str | Path, feature_map: FeatureMap) -> EventTable | None:
        """The event table in the split's folder (None when no group is stored by reference), read once per process."""
        columns = tuple(feature_map.event_columns())
        if not columns:
            return None
        path = Path(split_path).resolve().parent / EVENTS_FILE
        stat = path.stat()  # a rewritten file is another entry, even where mtimes are coarse
        return _load_events(str(path), columns, (stat.st_ino, stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=2)  # the train and valid sources of a job share one table
def _load_events(path: str, columns: tuple[str, ...], identity: tuple[int, int, int]) -> EventTable:
    table = pq.read_table(path, columns=list(columns))
    # to_numpy is a zero-copy view of Arrow's read-only buffer; astype makes the one writable copy torch wants
    return EventTable({name: torch.from_numpy(table.column(name).to_numpy().astype(np.int32)) for name in columns})


@dataclass
class Batch:
    """One mini-batch; B is the batch size, T the number of tasks. Every model's ``forward`` takes exactly this."""

    labels: torch.Tensor  # [B, T] float32
    label_mask: torch.Tensor | None = None  # [B, T] bool, True where the label is known; None: all known
    categorical: torch.Tensor | None = None  # [B, n_categorical] int64 local ids, FeatureMap order
    dense: torch.Tensor | None = None  # [B, n_dense] float32
    sequences: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [B, max_len] int64
    group: torch.Tensor | None = None  # [B] int64, for per-group metrics
    # sequence group -> [B, max_len] int64: seconds from each event to the row's time (>= 0), 0 on padding;
    # only groups with times (SequenceGroup.timestamp)
    time_gaps: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)
        return Batch(
            labels=move(self.labels),
            label_mask=move(self.label_mask),
            categorical=move(self.categorical),
            dense=move(self.dense),
            sequences={k: move(v) for k, v in self.sequences.items()},
            group=move(self.group),
            time_gaps={k: move(v) for k, v in self.time_gaps.items()},
        )


def table_columns(table: pa.Table, feature_map: FeatureMap) -> dict[str, np.ndarray]:
    """The columns of ``feature_map.columns()`` as numpy arrays; sequences as ``[N, max_len]`` (no Python lists)."""
    columns = {}
    for f in feature_map.sequences:
        if feature_map.sequence_group(f.group).by_reference:
            continue  # its start and end columns are read below; the events come from the EventTable
        col = table.column(f.name).combine_chunks()
        # fixed_size_list<int32>[L] -> [N, L]; writable (one copy): torch.from_numpy warns on arrow's read-only buffers
        max_len = feature_map.max_len(f)
        values = col.flatten()  # the list values of these rows only (offsets applied)
        if len(values) != len(col) * max_len:
            raise ValueError(f"sequence {f.name!r}: {len(values)} ids for {len(col)} rows of max_len {max_len}")
        columns[f.name] = values.to_numpy(zero_copy_only=False, writable=True).reshape(len(col), max_len)
    for name in feature_map.columns():
        if name not in columns:
            columns[name] = table.column(name).to_numpy()
    return columns


class TensorDataset:
    """Rows held as a few contiguous column tensors (int32 ids to halve memory).

    Indexing with a tensor of row indices returns a ``Batch``: one gather per column kind,
    no per-row Python.
    """

    def __init__(self, feature_map: FeatureMap, columns: dict[str, np.ndarray], events: EventTable | None = None):
        self.feature_map = fm = feature_map
        self.events = events

        def stack(names: list[str], dtype) -> torch.Tensor | None:
            if not names:
                return None
            return torch.from_numpy(np.stack([np.asarray(columns[n], dtype=dtype) for n in names], axis=1))

        self.labels = stack(fm.labels, np.float32)
        # a task without a mask column is known on every row
        self.label_mask = None
        if any(fm.masks):
            known = [np.asarray(columns[m]) > 0 if m else np.ones(len(self.labels), bool) for m in fm.masks]
            self.label_mask = torch.from_numpy(np.stack(known, axis=1))
        self.categorical = stack([f.name for f in fm.categorical], np.int32)
        self.dense = stack([f.name for f in fm.dense], np.float32)
        fixed = [f for f in fm.sequences if not fm.sequence_group(f.group).by_reference]
        self.sequences = {f.name: torch.from_numpy(np.asarray(columns[f.name], dtype=np.int32)) for f in fixed}
        # by-reference groups: each row's [start, end) in the event table, gathered per batch
        self.bounds = {
            g.name: (
                torch.from_numpy(np.array(columns[g.start], dtype=np.int64)),
                torch.from_numpy(np.array(columns[g.end], dtype=np.int64)),
            )
            for g in fm.sequence_groups
            if g.by_reference
        }
        # by column: KuaiRand's per-behaviour groups all measure from one row time, held once
        self.row_times = {
            name: torch.from_numpy(np.array(columns[name], dtype=np.int64))
            for name in dict.fromkeys(g.row_time for g in fm.sequence_groups if g.row_time)
        }
        if self.bounds and events is None:
            raise ValueError(f"dataset {fm.dataset!r} stores histories by reference: its EventTable is needed")
        # np.array copies: arrow's buffers are read-only, which torch.from_numpy warns about
        self.group = torch.from_numpy(np.array(columns[fm.group_by], dtype=np.int64)) if fm.group_by else None

    def __len__(self) -> int:
        return self.labels.shape[0]

    def batch(self, index: torch.Tensor | slice) -> Batch:
        take = lambda t: None if t is None else t[index]
        cat = take(self.categorical)
        sequences = {k: v[index].long() for k, v in self.sequences.items()}
        fm = self.feature_map
        time_gaps = {}
        for group, (start, end) in self.bounds.items():
            spec = fm.sequence_group(group)
            sources = {f.name: f.event_source for f in fm.sequences_of(group)}
            if spec.timestamp:
                sources[TIME_KEY] = spec.timestamp
            gathered, known = self.events.gather(sources, start[index], end[index], spec.max_len)
            if spec.timestamp:
                gap = self.row_times[spec.row_time][index].unsqueeze(1) - gathered.pop(TIME_KEY)
                time_gaps[group] = torch.where(known, gap.clamp(min=0), 0)
            sequences |= gathered
        return Batch(
            labels=self.labels[index],
            label_mask=take(self.label_mask),
            categorical=None if cat is None else cat.long(),
            dense=take(self.dense),
            sequences=sequences,
            group=take(self.group),
            time_gaps=time_gaps,
        )

    def iter_batches(self, batch_size: int):
        """Batches in file order (evaluation)."""
        for start in range(0, len(self), batch_size):
            yield self.batch(slice(start, start + batch_size))

    @classmethod
    def from_table(cls, table: pa.Table, feature_map: FeatureMap, events: EventTable | None = None) -> TensorDataset:
        return cls(feature_map, table_columns(table, feature_map), events)

    @classmethod
    def from_parquet(cls, path: str | Path, feature_map: FeatureMap) -> TensorDataset:
        table = pq.read_table(path, columns=feature_map.columns())
        return cls.from_table(table, feature_map, EventTable.beside(path, feature_map))
