"""Batch sources: where the trainer and the evaluator get batches from, without knowing which one they have.

- ``InMemorySource``: the whole split as column tensors (fast; for data that fits in RAM). Training
  batches are gathered from seeded permutations, continued across epochs.
- ``StreamingSource``: the split read from parquet row group by row group. Each pass visits the row
  groups in a seeded shuffled order and mixes rows through a shuffle buffer, so memory is bounded
  by the buffer (plus one row group), not by the split. Every row is visited exactly once per pass;
  the rows left over at a pass's end start the next pass's first batch.

Both give each of ``world_size`` data-parallel processes its own share of every global batch
(``rank``), so ``world_size`` processes with per-process batches of ``batch_size / world_size``
see the same global batches as one process (in-memory), or disjoint row groups (streaming).
``open_source`` picks one by the ``loader`` settings: ``auto`` streams above a size threshold.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ctrbench.data.batch import Batch, EventTable, TensorDataset, table_columns
from ctrbench.data.schema import FeatureMap

log = logging.getLogger(__name__)

LOADER_KINDS = ("auto", "memory", "streaming")
DEFAULT_LOADER = {"kind": "auto", "memory_limit_mb": 4096, "shuffle_buffer_rows": 1 << 18}


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


def _check_shards(batch_size: int, world_size: int, rank: int) -> int:
    if not 0 <= rank < world_size or batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} must split evenly over {world_size} processes (rank {rank})")
    return batch_size // world_size


class InMemorySource:
    kind = "memory"

    def __init__(self, path: str | Path, feature_map: FeatureMap):
        self.path, self.feature_map = Path(path), feature_map
        self.data = TensorDataset.from_parquet(path, feature_map)

    @property
    def rows(self) -> int:
        return len(self.data)

    def train_batches(self, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Endless: this process's share of every global batch of ``min(batch_size, rows)`` rows."""
        sampler = EpochSampler(self.rows, min(batch_size, self.rows), seed)
        share = _check_shards(sampler.batch_size, world_size, rank)
        while True:
            index = sampler.next_batch()
            yield self.data.batch(index if world_size == 1 else index[rank * share : (rank + 1) * share])

    def eval_batches(self, batch_size: int, *, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """This process's contiguous share of the rows, in file order (all of them for one process)."""
        bounds = np.linspace(0, self.rows, world_size + 1).round().astype(int)
        for start in range(bounds[rank], bounds[rank + 1], batch_size):
            yield self.data.batch(slice(start, min(start + batch_size, bounds[rank + 1])))


class StreamingSource:
    kind = "streaming"

    def __init__(self, path: str | Path, feature_map: FeatureMap, *, shuffle_buffer_rows: int = DEFAULT_LOADER["shuffle_buffer_rows"]):
        self.path, self.feature_map = Path(path), feature_map
        self.file = pq.ParquetFile(self.path)
        self.group_rows = [self.file.metadata.row_group(i).num_rows for i in range(self.file.num_row_groups)]
        self.shuffle_buffer_rows = int(shuffle_buffer_rows)
        self.columns = feature_map.columns()
        self.events = EventTable.beside(path, feature_map)

    @property
    def rows(self) -> int:
        return sum(self.group_rows)

    def _read(self, groups: list[int]) -> TensorDataset:
        table = self.file.read_row_groups(groups, columns=self.columns)
        return TensorDataset(self.feature_map, table_columns(table, self.feature_map), self.events)

    def pass_rows(
        self, seed: int, pass_index: int, *, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[TensorDataset, torch.Tensor]]:
        """One pass of this process's row groups, as shuffled chunks of rows (each row exactly once).

        Row groups come in a permutation drawn from ``(seed, pass_index)``; process ``rank`` takes every
        ``world_size``-th. Whole row groups fill a buffer of at least ``shuffle_buffer_rows`` rows, which
        is permuted and handed out (``(rows, order)``); rows mix within a buffer, and buffers follow the
        shuffled groups.
        """
        rng = np.random.default_rng([seed, pass_index])
        order = rng.permutation(len(self.group_rows))[rank::world_size].tolist()
        pending: list[int] = []
        pending_rows = 0
        for i, group in enumerate(order):
            pending.append(group)
            pending_rows += self.group_rows[group]
            if pending_rows >= self.shuffle_buffer_rows or i == len(order) - 1:
                chunk = self._read(pending)
                yield chunk, torch.from_numpy(rng.permutation(len(chunk)))
                pending, pending_rows = [], 0
                pa.default_memory_pool().release_unused()

    def train_batches(self, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Endless: batches of this process's share (``batch_size / world_size`` rows), pass after pass."""
        share = _check_shards(min(batch_size, self.rows), world_size, rank)
        if len(self.group_rows) < world_size:
            raise ValueError(f"{self.path}: {len(self.group_rows)} row groups cannot feed {world_size} processes")
        carry: Batch | None = None
        pass_index = 0
        while True:
            for chunk, order in self.pass_rows(seed, pass_index, rank=rank, world_size=world_size):
                start = 0
                if carry is not None:  # the rows a chunk left over open the next batch
                    need = share - len(carry)
                    if need > len(order):
                        carry = _concat([carry, chunk.batch(order)])
                        continue
                    yield _concat([carry, chunk.batch(order[:need])])
                    carry, start = None, need
                while start + share <= len(order):
                    yield chunk.batch(order[start : start + share])
                    start += share
                if start < len(order):
                    carry = chunk.batch(order[start:])
            pass_index += 1

    def eval_batches(self, batch_size: int, *, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """This process's row groups (every ``world_size``-th), in file order, read one at a time."""
        for group in range(rank, len(self.group_rows), world_size):
            yield from self._read([group]).iter_batches(batch_size)


def _concat(batches: list[Batch]) -> Batch:
    cat = lambda ts: None if ts[0] is None else torch.cat(ts)
    first = batches[0]
    return Batch(
        labels=torch.cat([b.labels for b in batches]),
        label_mask=cat([b.label_mask for b in batches]),
        categorical=cat([b.categorical for b in batches]),
        dense=cat([b.dense for b in batches]),
        sequences={k: torch.cat([b.sequences[k] for b in batches]) for k in first.sequences},
        group=cat([b.group for b in batches]),
        time_gaps={k: torch.cat([b.time_gaps[k] for b in batches]) for k in first.time_gaps},
    )


def in_memory_bytes(path: str | Path, feature_map: FeatureMap) -> int:
    """What ``InMemorySource`` holds for the split: rows x the bytes of a row's tensors (float32 labels and
    dense values, int32 ids and fixed-size histories, a bool per masked task, int64 group, int64 bounds of
    by-reference histories and their row times); the event table is held once for every split and is not counted here."""
    fm = feature_map
    fixed = [f for f in fm.sequences if not fm.sequence_group(f.group).by_reference]
    per_row = 4 * (fm.num_tasks + len(fm.categorical) + len(fm.dense) + sum(fm.max_len(f) for f in fixed))
    per_row += 16 * sum(g.by_reference for g in fm.sequence_groups)  # int64 start and end (the events are shared)
    per_row += 8 * len({g.row_time for g in fm.sequence_groups if g.row_time})  # int64 row times, one per column
    per_row += fm.num_tasks * any(fm.masks) + 8 * bool(fm.group_by)
    return pq.ParquetFile(path).metadata.num_rows * per_row


def open_source(path: str | Path, feature_map: FeatureMap, loader: dict | None = None) -> InMemorySource | StreamingSource:
    """The batch source the ``loader`` settings ask for (``kind``: auto, memory or streaming)."""
    settings = {**DEFAULT_LOADER, **(loader or {})}
    kind = settings["kind"]
    if kind not in LOADER_KINDS:
        raise ValueError(f"loader kind must be one of {LOADER_KINDS}, got {kind!r}")
    if kind == "auto":
        size = in_memory_bytes(path, feature_map)
        kind = "streaming" if size > settings["memory_limit_mb"] * 2**20 else "memory"
        log.info("%s: %.0f MiB of columns -> %s loader", Path(path).name, size / 2**20, kind)
    if kind == "memory":
        return InMemorySource(path, feature_map)
    return StreamingSource(path, feature_map, shuffle_buffer_rows=settings["shuffle_buffer_rows"])
