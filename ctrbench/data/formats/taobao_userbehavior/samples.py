"""Pass 2 of preprocessing: one sorted user bucket at a time -> sample rows and the event table.

A split's rows (``output_schema``) hold each history by reference, ``[history_start, history_end)``
rows of the event table (``EVENTS_SCHEMA``), to which every bucket appends its history events once.
``SampleWriter`` builds, for every target event of a bucket, its row and its ``negatives`` rows with
sampled items, and streams them to the split of the target's time (``_TableWriter``: row groups of
exactly ``row_group_rows`` rows), in source line order within the bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctrbench.data.buckets import read_bucket
from ctrbench.data.formats.taobao_userbehavior.reader import UserBehaviorBlock
from ctrbench.data.formats.taobao_userbehavior.vocab import NegativeSampler, Vocab
from ctrbench.data.outputs import EVENT_ROW_GROUP_ROWS
from ctrbench.data.schema import ROW_ID
from ctrbench.data.splits import SPLITS

ROW_GROUP_ROWS = 1 << 16  # rows are ~440 bytes wide (two 50-id histories): ~28 MB per row group
TARGET_CHUNK = 1 << 15  # targets per chunk of output rows
ROW_ID_FORMULA = "source_line * (1 + negatives) + k; k = 0 for the positive, 1..negatives for its sampled negatives"


class _TableWriter:
    """Streams one split to parquet in row groups of exactly ``row_group_rows`` rows."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_rows: int, compression: str):
        self.path = path
        self.row_group_rows = row_group_rows
        # no dictionary pages: consecutive histories overlap heavily, and zstd alone finds those long
        # repeats (half the size and half the write time of dictionary + zstd)
        self.writer = pq.ParquetWriter(path, schema, compression=compression, use_dictionary=False)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.positives = 0

    def add(self, table: pa.Table, positives: int) -> None:
        if not table.num_rows:
            return
        self.rows += table.num_rows
        self.positives += positives
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= self.row_group_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        merged = pa.concat_tables(self.pending)
        full = merged.num_rows if final else merged.num_rows // self.row_group_rows * self.row_group_rows
        for start in range(0, full, self.row_group_rows):  # one contiguous chunk per row group
            group = merged.slice(start, min(self.row_group_rows, full - start)).combine_chunks()
            self.writer.write_table(group, row_group_size=self.row_group_rows)
        rest = merged.slice(full)
        self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        if self.pending_rows:
            self._flush(final=True)
        self.writer.close()


def output_schema() -> pa.Schema:
    """A split's rows: each history by reference, ``[history_start, history_end)`` rows of the event table."""
    return pa.schema(
        [
            (ROW_ID, pa.int64()),
            ("label", pa.float32()),
            ("user_id", pa.int32()),
            ("item_id", pa.int32()),
            ("category_id", pa.int32()),
            ("hour", pa.int32()),
            ("dayofweek", pa.int32()),
            ("history_start", pa.int64()),
            ("history_end", pa.int64()),
            ("timestamp", pa.int64()),
        ]
    )


# the event table (EVENTS_FILE): the history events of every kept user, users contiguous, each in time order
EVENTS_SCHEMA = pa.schema([("item_history", pa.int32()), ("category_history", pa.int32())])


def _targets(sorted_block: UserBehaviorBlock, is_hist: np.ndarray, target_mask: np.ndarray, chunk: int):
    """Yield (target positions, history start, history end) in chunks of ``chunk`` targets.

    ``sorted_block`` is sorted by (user, timestamp, line). A target's history is every history
    event of the same user whose timestamp is strictly smaller: the events before the first event
    of the target's (user, timestamp) run. ``cum_hist[p]`` counts history events before position
    p, so the target's history is the history events ``[cum_hist[user_start], cum_hist[run_start])``
    (indices into the history events in sorted order). Targets come in source line order.
    """
    user, ts = sorted_block.user, sorted_block.timestamp
    n = len(user)
    pos = np.arange(n)
    new_user = np.ones(n, bool)
    new_user[1:] = user[1:] != user[:-1]
    new_run = new_user.copy()
    new_run[1:] |= ts[1:] != ts[:-1]
    user_start = np.maximum.accumulate(np.where(new_user, pos, 0))
    run_start = np.maximum.accumulate(np.where(new_run, pos, 0))
    del pos, new_user, new_run
    cum_hist = np.zeros(n + 1, np.int64)
    np.cumsum(is_hist, out=cum_hist[1:])
    targets = np.flatnonzero(target_mask)
    targets = targets[np.argsort(sorted_block.line[targets], kind="stable")]  # write in source line order
    for start in range(0, len(targets), chunk):
        t = targets[start : start + chunk]
        yield t, cum_hist[user_start[t]], cum_hist[run_start[t]]


class SampleWriter:
    """The outputs of pass 2: the event table and one ``_TableWriter`` per split (``writers``, whose ``rows`` and
    ``positives`` count what was written), fed one user bucket at a time; ``targets`` counts the target events.

    Every writer is appended to ``opened`` as soon as it exists, for the caller to close on failure.
    """

    def __init__(
        self,
        temps: Mapping[str, Path],
        vocab: Vocab,
        *,
        hist_codes: np.ndarray,
        target_codes: np.ndarray,
        negatives: int,
        sampling: str,
        seed: int,
        split_starts: list[int],
        offset_s: int,
        row_group_rows: int,
        compression: str,
        opened: list,
    ):
        self.schema = output_schema()
        self.event_writer = pq.ParquetWriter(temps["events"], EVENTS_SCHEMA, compression=compression)
        opened.append(self.event_writer)
        self.events_written = 0  # event table rows before the current bucket's
        self.writers: dict[str, _TableWriter] = {}
        for name in SPLITS:
            self.writers[name] = _TableWriter(temps[name], self.schema, row_group_rows, compression)
            opened.append(self.writers[name].writer)
        self.sampler = NegativeSampler(vocab, negatives, sampling, seed)
        self.vocab = vocab
        self.hist_codes, self.target_codes = hist_codes, target_codes
        self.split_starts = split_starts  # [valid_start, gold_start]
        self.offset_s = offset_s
        self.per_row = 1 + negatives
        self.label_row = np.zeros(self.per_row, np.float32)
        self.label_row[0] = 1.0
        self.targets = 0

    def add_bucket(self, path: Path) -> None:
        """Read the bucket file at ``path`` (deleted once read), sort it by (user, timestamp, line), append its
        history events to the event table and write the rows of its targets, a chunk of targets at a time."""
        events = UserBehaviorBlock.from_arrow(read_bucket(path))
        order = np.lexsort((events.line, events.timestamp, events.user))
        events = events.take(order)
        del order
        item = Vocab.local(self.vocab.items, events.item)
        category = Vocab.local(self.vocab.categories, events.category)
        is_hist = np.isin(events.behavior, self.hist_codes)
        # this bucket's history events, once each; a sample keeps where its history starts and ends there
        self.event_writer.write_table(
            pa.table({"item_history": item[is_hist], "category_history": category[is_hist]}, schema=EVENTS_SCHEMA),
            row_group_size=EVENT_ROW_GROUP_ROWS,
        )
        target_mask = np.isin(events.behavior, self.target_codes)
        for t, lo, hi in _targets(events, is_hist, target_mask, TARGET_CHUNK):
            self.targets += len(t)
            split = np.searchsorted(self.split_starts, events.timestamp[t], side="right")
            for s, name in enumerate(SPLITS):
                sel = np.flatnonzero(split == s)
                if not len(sel):
                    continue
                table = self._rows(events, item, category, t[sel], lo[sel], hi[sel])
                self.writers[name].add(table, positives=len(sel))
        self.events_written += int(is_hist.sum())

    def _rows(self, events: UserBehaviorBlock, item, category, tt, lo, hi) -> pa.Table:
        """The rows of targets ``tt`` (positions in the sorted bucket; their histories are the bucket's history
        events ``[lo, hi)``): each target's positive row, then its sampled negatives."""
        per_row = self.per_row
        line, ts = events.line[tt], events.timestamp[tt]
        pos_item, pos_cat = item[tt], category[tt]
        neg_item, neg_cat = self.sampler.sample(line, pos_item)
        local = ts + self.offset_s
        day = local // 86400
        hour = (local - day * 86400) // 3600 + 1
        dow = (day + 3) % 7 + 1  # 1970-01-01 was a Thursday; Monday = 1
        columns = {
            ROW_ID: (line[:, None] * per_row + np.arange(per_row)).reshape(-1),
            "label": np.tile(self.label_row, len(tt)),
            "user_id": np.repeat(Vocab.local(self.vocab.users, events.user[tt]), per_row),
            "item_id": np.column_stack([pos_item, neg_item]).reshape(-1),
            "category_id": np.column_stack([pos_cat, neg_cat]).reshape(-1),
            "hour": np.repeat(hour, per_row),
            "dayofweek": np.repeat(dow, per_row),
            "history_start": np.repeat(self.events_written + lo, per_row),
            "history_end": np.repeat(self.events_written + hi, per_row),
            "timestamp": np.repeat(ts, per_row),
        }
        return pa.table({k: pa.array(v, self.schema.field(k).type) for k, v in columns.items()}, schema=self.schema)

    def close(self) -> None:
        """Flush and close the split tables, then the event table."""
        for writer in self.writers.values():
            writer.close()
        self.event_writer.close()


__all__ = ["EVENTS_SCHEMA", "ROW_GROUP_ROWS", "ROW_ID_FORMULA", "SampleWriter", "output_schema"]
