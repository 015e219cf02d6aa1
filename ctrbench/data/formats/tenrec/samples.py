"""Pass 2 of Tenrec preprocessing: one user bucket at a time -> sample rows and the event table.

Every row of the file is a sample (an exposure with four labels). Within a bucket the rows are sorted by
(user, line): a row's *position* is its index among its user's rows, in file order, which is time order.

- Splits by position (``split_starts``): a user with ``n`` rows gives ``round(n * gold)`` last rows to gold and
  the ``round(n * (valid + gold)) - round(n * gold)`` before them to valid (rounded half up), the rest to train.
- Histories by reference, one group per behaviour ``b``: the event table gets, per bucket and behaviour, the
  rows with ``b = 1`` in (user, position) order (its columns: the item fields' local ids), so its rows are
  grouped by (behaviour, user) in order. A sample at position ``p`` of user ``u`` points at
  ``[b_history_start, b_history_end)``: the events of ``u`` with ``b`` at positions ``< p`` (its own row never).
  With ``cum`` the exclusive running count of ``b`` events in the sorted bucket, that is
  ``[base + cum[first row of u], base + cum[p's row])``: index arithmetic, no per-user loop.

Rows are written bucket by bucket, in source line order within a bucket (``row_id`` = the physical line): a
bucket holds its rows in that order already, so only the split and the history bounds are computed in sorted
order and scattered back; the output columns are built a chunk of rows at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctrbench.data.blocks import ColumnBlock
from ctrbench.data.formats.tenrec.reader import BEHAVIORS, CODES, MISSING, PLAYS
from ctrbench.data.outputs import EVENT_ROW_GROUP_ROWS, SplitWriter
from ctrbench.data.schema import MISSING_ID, ROW_ID
from ctrbench.data.splits import SPLITS

OUTPUT_CHUNK_ROWS = 1 << 16  # rows turned into output columns at a time (memory: the bucket's raw columns, not 3x)
CATEGORICAL = ["user_id", "item_id", *CODES]  # every one a feature, ids from ``Vocab``
_ROUNDING_SLACK = 1e-9  # n * share lands a hair below .5 in binary (0.15 * 10): round those halves up too


def output_schema(history_behaviors: Sequence[str]) -> pa.Schema:
    """A split's rows: row id, the four labels, the categorical ids, the play count (-1 missing; not a
    feature) and each history group's bounds in the event table."""
    return pa.schema(
        [(ROW_ID, pa.int64()), *((b, pa.float32()) for b in BEHAVIORS)]
        + [(c, pa.int32()) for c in CATEGORICAL]
        + [(PLAYS, pa.int32())]
        + [(f"{b}_history_{end}", pa.int64()) for b in history_behaviors for end in ("start", "end")]
    )


def events_schema(fields: Sequence[str]) -> pa.Schema:
    """The event table: one int32 local-id column per item field a history event carries."""
    return pa.schema([(f, pa.int32()) for f in fields])


@dataclass
class Vocab:
    """Raw code -> local id per categorical column: 1 + rank among the sorted distinct raw values; 0 = missing."""

    values: dict[str, np.ndarray]  # column -> sorted distinct raw values (int64)

    def local(self, name: str, raw: np.ndarray) -> np.ndarray:
        ids = (np.searchsorted(self.values[name], raw) + 1).astype(np.int32)
        ids[raw == MISSING] = MISSING_ID
        return ids

    def size(self, name: str) -> int:
        """Embedding rows of a column: its distinct values and the missing id."""
        return len(self.values[name]) + 1


def split_starts(size: np.ndarray, valid: float, gold: float) -> tuple[np.ndarray, np.ndarray]:
    """(first valid position, first gold position) of users with ``size`` rows: shares rounded half up."""
    in_gold = np.floor(size * gold + 0.5 + _ROUNDING_SLACK).astype(np.int64)
    in_valid_or_gold = np.floor(size * (valid + gold) + 0.5 + _ROUNDING_SLACK).astype(np.int64)
    return size - in_valid_or_gold, size - in_gold


class SampleWriter:
    """The outputs of pass 2: the event table and one ``SplitWriter`` per split (``writers``), fed one user bucket
    at a time. Counts: ``events`` per history behaviour, ``users`` and the users with a valid / gold row.

    Every parquet writer is appended to ``opened`` as soon as it exists, for the caller to close on failure.
    """

    def __init__(
        self,
        temps: Mapping[str, Path],
        vocab: Vocab,
        *,
        tasks: Sequence[str],
        history_behaviors: Sequence[str],
        fields: Sequence[str],
        valid: float,
        gold: float,
        row_group_rows: int,
        compression: str,
        opened: list,
    ):
        self.vocab = vocab
        self.history_behaviors, self.fields = list(history_behaviors), list(fields)
        self.valid, self.gold = valid, gold
        self.schema = output_schema(self.history_behaviors)
        self.event_schema = events_schema(self.fields)
        self.event_writer = pq.ParquetWriter(temps["events"], self.event_schema, compression=compression)
        opened.append(self.event_writer)
        self.writers: dict[str, SplitWriter] = {}
        concat = lambda blocks: ColumnBlock.concat(blocks, self.schema)
        for name in SPLITS:
            self.writers[name] = SplitWriter(
                temps[name], self.schema, row_group_rows, compression, concat=concat, label=list(tasks)
            )
            opened.append(self.writers[name].writer)
        self.events_written = 0
        self.events = dict.fromkeys(self.history_behaviors, 0)
        self.users = 0
        self.users_with = dict.fromkeys(("valid", "gold"), 0)
        self.max_user_rows = 0

    def add_bucket(self, table: pa.Table) -> None:
        """One bucket's rows (``reader.BUCKET_SCHEMA``, in source line order): its history events appended to the
        event table, its samples to their splits, ``OUTPUT_CHUNK_ROWS`` rows at a time."""
        raw = {}
        for name in table.schema.names:  # one column at a time: the Arrow copy of the bucket goes as it is read
            raw[name] = table.column(name).to_numpy()
            table = table.drop_columns([name])
        del table
        n = len(raw["line"])
        order = np.lexsort((raw["line"], raw["user_id"]))  # sorted position -> row
        user = raw["user_id"][order]
        first = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
        del user
        size = np.diff(np.r_[first, n])
        user_first = np.repeat(first, size)  # per sorted position: where its user's rows start
        position = np.arange(n) - user_first
        valid_start, gold_start = split_starts(size, self.valid, self.gold)
        split = np.empty(n, np.int8)  # per row
        split[order] = (position >= np.repeat(valid_start, size)).astype(np.int8) + (
            position >= np.repeat(gold_start, size)
        )
        del position
        self.users += len(size)
        self.users_with["valid"] += int(np.count_nonzero(valid_start < gold_start))
        self.users_with["gold"] += int(np.count_nonzero(gold_start < size))
        self.max_user_rows = max(self.max_user_rows, int(size.max()))

        # per row: its history bounds, relative to the bucket's first event of the behaviour (int32: a bucket is far
        # below 2**31 rows), and where in the event table those events start
        bounds: dict[str, np.ndarray] = {}
        bases: dict[str, int] = {}
        event_parts = []
        base = self.events_written
        for b in self.history_behaviors:
            happened = raw[b][order] == 1
            cum = np.zeros(n + 1, np.int32)
            np.cumsum(happened, out=cum[1:])
            for end, values in (("start", cum[user_first]), ("end", cum[:-1])):  # end: events before this row only
                bounds[f"{b}_history_{end}"] = np.empty(n, np.int32)
                bounds[f"{b}_history_{end}"][order] = values
                bases[f"{b}_history_{end}"] = base
            rows = order[happened]  # this behaviour's events, in (user, position) order
            event_parts.append({f: self.vocab.local(f, raw[f][rows]) for f in self.fields})
            base += len(rows)
            self.events[b] += len(rows)
        del order, user_first
        if event_parts:
            events = {f: np.concatenate([p[f] for p in event_parts]) for f in self.fields}
            self.event_writer.write_table(
                pa.table(events, schema=self.event_schema), row_group_size=EVENT_ROW_GROUP_ROWS
            )
        self.events_written = base
        for lo in range(0, n, OUTPUT_CHUNK_ROWS):
            chunk = slice(lo, lo + OUTPUT_CHUNK_ROWS)
            columns = {ROW_ID: raw["line"][chunk]}
            columns |= {name: bases[name] + values[chunk].astype(np.int64) for name, values in bounds.items()}
            columns |= {b: raw[b][chunk].astype(np.float32) for b in BEHAVIORS}
            columns |= {name: self.vocab.local(name, raw[name][chunk]) for name in CATEGORICAL}
            plays = raw[PLAYS][chunk]
            columns[PLAYS] = np.where(plays == MISSING, -1, plays).astype(np.int32)
            block = ColumnBlock(self.schema, {f.name: columns[f.name] for f in self.schema})
            for s, name in enumerate(SPLITS):
                self.writers[name].add(block.take(split[chunk] == s))

    def close(self) -> None:
        """Flush and close the split tables, then the event table."""
        for writer in self.writers.values():
            writer.close()
        self.event_writer.close()


__all__ = ["CATEGORICAL", "SampleWriter", "Vocab", "events_schema", "output_schema", "split_starts"]
