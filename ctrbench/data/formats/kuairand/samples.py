"""Pass 2 of preprocessing: one user bucket at a time -> sample rows and the event table of the histories.

Every exposure is a sample. Its behaviour histories are held by reference: for behaviour ``b``, the rows
``[<b>_start, <b>_end)`` of the event table (``EVENTS_FILE``) are the user's events with that behaviour strictly
before the sample's ``time_ms``, oldest first. The event table is written bucket by bucket and, within a bucket,
behaviour by behaviour (in the configured order), each behaviour's events grouped by user in (time_ms, row_id) order:
every (behaviour, user) run is contiguous, which is all the bounds need. Its columns are the configured video-side
fields (local ids) and ``time_s`` (the event's time, unix seconds), one row per (event, behaviour it shows).

A sample's bounds come from index arithmetic over its bucket sorted by (user, time_ms, row_id) — a stable sort by
time within each user, since row ids follow the file order: ``<b>_start`` is where the user's ``b`` events start and
``<b>_end`` counts those before the first exposure of the sample's (user, time_ms) run, so events sharing the
sample's time_ms (one request shows several videos at once) never enter its history, and neither does its own.
Rows are written in row_id order within a bucket (a file small enough for one bucket comes out in line order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctrbench.data.blocks import ColumnBlock
from ctrbench.data.buckets import read_bucket
from ctrbench.data.formats.kuairand.events import LoggedEvents
from ctrbench.data.formats.kuairand.features import FeatureTables
from ctrbench.data.formats.kuairand.layout import BEHAVIOR_LABELS, BEIJING_OFFSET_MS
from ctrbench.data.formats.kuairand.vocab import local_ids
from ctrbench.data.outputs import EVENT_ROW_GROUP_ROWS, SplitWriter
from ctrbench.data.schema import ROW_ID
from ctrbench.data.splits import SPLITS

CHUNK_ROWS = 1 << 16  # sample rows built at a time: ~50 columns each, so memory stays a few MB per chunk
HOUR_MS = 3_600_000
TIME_COLUMN = "time_s"  # the event table's and the splits' time in unix seconds (int32 holds it until 2038)


def sample_schema(tasks: Sequence[str], features: FeatureTables, behaviors: Sequence[str]) -> pa.Schema:
    """A split's columns: row id, the tasks (float32 0/1), the categorical features (int32), each behaviour's bounds
    in the event table (int64), time_ms and time_s (the sample's time in unix seconds, what histories' time gaps are
    measured from)."""
    fields = [(ROW_ID, pa.int64())] + [(t, pa.float32()) for t in tasks]
    fields += [(name, pa.int32()) for name in [*features.user, *features.video, "tab", "hour"]]
    fields += [(f"{b}_{end}", pa.int64()) for b in behaviors for end in ("start", "end")]
    return pa.schema(fields + [("time_ms", pa.int64()), (TIME_COLUMN, pa.int64())])


class SampleWriter:
    """The outputs of pass 2, fed one bucket at a time: the event table and one ``SplitWriter`` per split
    (``writers``). Counts: ``positives[split][task]``, ``behavior_events[b]`` (event table rows), ``unmatched``
    (exposures whose user / video lacked a feature row). The parquet writers are appended to ``opened`` on
    creation; after a failure, ``settle`` stops the background encoding first."""

    def __init__(
        self,
        temps: Mapping[str, Path],
        features: FeatureTables,
        logged: LoggedEvents,
        *,
        tasks: Sequence[str],
        behaviors: Sequence[str],
        fields: Sequence[str],
        split_starts_ms: Sequence[int],
        row_group_rows: int,
        compression: str,
        opened: list,
    ):
        self.features, self.logged = features, logged
        self.tasks, self.behaviors, self.fields = list(tasks), list(behaviors), list(fields)
        self.split_starts_ms = np.asarray(split_starts_ms, np.int64)  # [valid_start, gold_start]
        self.schema = sample_schema(tasks, features, behaviors)
        self.event_schema = pa.schema([(f, pa.int32()) for f in [*self.fields, TIME_COLUMN]])
        self.event_writer = None
        if self.behaviors:
            self.event_writer = pq.ParquetWriter(temps["events"], self.event_schema, compression=compression)
            opened.append(self.event_writer)
        self.writers: dict[str, SplitWriter] = {}
        # dictionary pages for the categorical ids and labels only: the row ids, times and history bounds are nearly
        # unique per row (zstd alone packs them smaller and faster)
        dictionary = [f.name for f in self.schema if f.type != pa.int64()]
        for name in SPLITS:
            # the parquet encoding runs on a thread of its own, overlapping the next chunk's gathers
            self.writers[name] = SplitWriter(
                temps[name], self.schema, row_group_rows, compression, label=self.tasks, background=True,
                concat=lambda blocks: ColumnBlock.concat(blocks, self.schema), use_dictionary=dictionary,
            )  # fmt: skip
            opened.append(self.writers[name].writer)
        self.behavior_events = dict.fromkeys(self.behaviors, 0)
        self.events_written = 0
        self.unmatched = {"user_features": 0, "video_basic": 0, "video_statistic": 0}

    def add_bucket(self, path: Path) -> None:
        """Read the bucket file at ``path`` (deleted once read), append its history events to the event table and
        write its samples to their splits, a chunk of rows at a time."""
        table = read_bucket(path)  # deleted once read
        column = {name: table.column(name).to_numpy() for name in table.column_names}
        del table
        user = (local_ids(self.logged.users, column["user"])[0] + 1).astype(np.int32)
        video = (local_ids(self.logged.videos, column["video"])[0] + 1).astype(np.int32)
        bounds = self._histories(user, video, column["time_ms"], column)
        found = self.features
        self.unmatched["user_features"] += int(np.count_nonzero(~found.user_found[user]))
        self.unmatched["video_basic"] += int(np.count_nonzero(~found.basic_found[video]))
        self.unmatched["video_statistic"] += int(np.count_nonzero(~found.statistic_found[video]))
        for start in range(0, len(user), CHUNK_ROWS):
            chunk = slice(start, start + CHUNK_ROWS)
            # copies: Arrow takes int64 arrays without copying, and a view would keep the whole bucket's arrays alive
            # for as long as some of its rows wait in a split writer for their row group
            columns = {k: v[chunk].copy() for k, v in (column | bounds).items()}
            self._write_rows(user[chunk], video[chunk], columns)

    def _write_rows(self, user: np.ndarray, video: np.ndarray, column: dict[str, np.ndarray]) -> None:
        """The samples of one chunk of exposures, to their splits."""
        time_ms = column["time_ms"]
        rows = {ROW_ID: column["row_id"]}
        rows |= {task: column[task].astype(np.float32) for task in self.tasks}
        rows |= {name: ids[user] for name, ids in self.features.user.items()}
        rows |= {name: ids[video] for name, ids in self.features.video.items()}
        rows["tab"] = local_ids(self.logged.tabs, column["tab"])[0] + 1
        rows["hour"] = (time_ms + BEIJING_OFFSET_MS) // HOUR_MS % 24 + 1
        rows |= {f"{b}_{end}": column[f"{b}_{end}"] for b in self.behaviors for end in ("start", "end")}
        rows["time_ms"] = time_ms
        rows[TIME_COLUMN] = time_ms // 1000
        split = np.searchsorted(self.split_starts_ms, time_ms, side="right")
        for s, name in enumerate(SPLITS):
            chosen = np.flatnonzero(split == s)
            if not len(chosen):
                continue
            if chosen[-1] - chosen[0] + 1 == len(chosen):  # contiguous rows: a slice, no copy
                chosen = slice(int(chosen[0]), int(chosen[-1]) + 1)
            self.writers[name].add(ColumnBlock(self.schema, {f.name: rows[f.name][chosen] for f in self.schema}))

    def _histories(self, user: np.ndarray, video: np.ndarray, time_ms: np.ndarray, column: dict) -> dict:
        """Each behaviour's ``<b>_start`` / ``<b>_end`` per row (bucket order); its events appended to the table."""
        if not self.behaviors:
            return {}
        # the bucket holds its rows in row_id order; sorted by (user, time_ms, row_id) for the arithmetic
        order = np.lexsort((column["row_id"], time_ms, user))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        su, st = user[order], time_ms[order]
        n = len(order)
        position = np.arange(n)
        new_user = np.ones(n, bool)
        new_user[1:] = su[1:] != su[:-1]
        new_run = new_user.copy()
        new_run[1:] |= st[1:] != st[:-1]
        user_start = np.maximum.accumulate(np.where(new_user, position, 0))[inverse]
        run_start = np.maximum.accumulate(np.where(new_run, position, 0))[inverse]
        bounds, events = {}, {f: [] for f in [*self.fields, TIME_COLUMN]}
        sorted_video, sorted_seconds = video[order], st // 1000
        for behavior in self.behaviors:
            shown = column[BEHAVIOR_LABELS[behavior]][order] == 1
            before = np.zeros(n + 1, np.int64)  # before[p]: this behaviour's events at sorted positions < p
            np.cumsum(shown, out=before[1:])
            bounds[f"{behavior}_start"] = self.events_written + before[user_start]
            bounds[f"{behavior}_end"] = self.events_written + before[run_start]
            for f in self.fields:
                events[f].append(self.features.video[f][sorted_video[shown]])
            events[TIME_COLUMN].append(sorted_seconds[shown])
            self.events_written += int(before[-1])
            self.behavior_events[behavior] += int(before[-1])
        arrays = {f: pa.array(np.concatenate(events[f]).astype(np.int32)) for f in events}
        self.event_writer.write_table(pa.table(arrays, schema=self.event_schema), row_group_size=EVENT_ROW_GROUP_ROWS)
        return bounds

    def close(self) -> None:
        """Flush and close the split tables, then the event table."""
        for writer in self.writers.values():
            writer.finish()  # the last row groups of the three splits encode at once
        for writer in self.writers.values():
            writer.close()
        if self.event_writer is not None:
            self.event_writer.close()

    def settle(self) -> None:
        """After a failure: let the background encoding stop (the parquet writers are in ``opened``)."""
        for writer in self.writers.values():
            writer.settle()

    @property
    def positives(self) -> dict[str, dict[str, int]]:
        """Positives of every task, by split."""
        return {name: {t: int(n) for t, n in w.task_positives.items()} for name, w in self.writers.items()}

    @property
    def rows(self) -> dict[str, int]:
        return {name: w.rows for name, w in self.writers.items()}


__all__ = ["TIME_COLUMN", "SampleWriter", "sample_schema"]
