"""Rows spread over files on disk by an integer key (a user id), for preprocessing in bounded memory.

A format that must see all of a user's rows together (histories, splits by position or time) streams its input
once into ``KeyBuckets``: rows are gathered until ``buffer_rows`` are pending, then each goes to the file of
``key % n`` (a stable partition, so every bucket keeps its rows in input order), and the buckets are read back
one at a time (``read_bucket``). The files are Arrow IPC streams (lz4): temporary, written once and read once,
and unlike parquet they hold no footer that grows with every write, so hundreds of buckets fed thousands of
small batches cost no memory beyond the buffer. Memory is the buffer while writing and one bucket while reading;
``bucket_count`` sizes the buckets from the input's bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

BUCKET_COMPRESSION = "lz4"  # written once and read once: speed over size
# rows gathered before they are spread over the buckets: ~200 bytes each while spread (Tenrec's 11 int columns)
BUFFER_ROWS = 1 << 18


def bucket_count(input_bytes: int, bucket_bytes: int) -> int:
    """Buckets for ``input_bytes`` of raw input, about ``bucket_bytes`` of it per bucket (at least one)."""
    if bucket_bytes < 1:
        raise ValueError(f"bucket_bytes must be >= 1, got {bucket_bytes}")
    return max(1, math.ceil(input_bytes / bucket_bytes))


def read_bucket(path: Path, delete: bool = True) -> pa.Table:
    """A bucket file's rows, in the order they were added; ``delete``: remove the file once read."""
    with pa.ipc.open_stream(path) as reader:
        table = reader.read_all()
    if delete:
        path.unlink()
    return table


class KeyBuckets:
    """``n`` files ``bucket00000.arrows`` .. in ``directory`` with ``schema``; rows go by ``key % n``.

    Every writer is appended to ``opened`` (when given) as soon as it exists, for the caller to close on failure.
    """

    def __init__(
        self, directory: Path, n: int, schema: pa.Schema, *, opened: list | None = None, buffer_rows: int = BUFFER_ROWS
    ):
        if n < 1 or buffer_rows < 1:
            raise ValueError(f"a bucket count and buffer_rows must be >= 1, got {n} and {buffer_rows}")
        self.paths = [Path(directory) / f"bucket{i:05d}.arrows" for i in range(n)]
        self.schema = schema
        self.buffer_rows = buffer_rows
        self.rows = np.zeros(n, np.int64)
        self._pending: list[tuple[pa.Table, np.ndarray]] = []
        self._pending_rows = 0
        options = pa.ipc.IpcWriteOptions(compression=BUCKET_COMPRESSION)
        self._writers = []
        for path in self.paths:
            self._writers.append(pa.ipc.new_stream(str(path), schema, options=options))
            if opened is not None:
                opened.append(self._writers[-1])

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, table: pa.Table, keys: np.ndarray) -> None:
        """Append ``table``'s rows to the bucket of their ``keys`` (non-negative ints), in table order per bucket."""
        self._pending.append((table, keys % len(self.paths)))
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.buffer_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables([t for t, _ in self._pending])
        bucket = np.concatenate([b for _, b in self._pending])
        self._pending, self._pending_rows = [], 0
        n = len(self.paths)
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(n + 1))
        table = table.take(pa.array(order))
        for i in np.flatnonzero(np.diff(bounds)):
            self._writers[i].write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]))
            self.rows[i] += bounds[i + 1] - bounds[i]

    def close(self) -> None:
        self._flush()
        for writer in self._writers:
            writer.close()

    def read(self, delete: bool = True) -> Iterator[pa.Table]:
        """Each bucket's rows in turn (after ``close``); ``delete``: remove each file once read."""
        for path in self.paths:
            yield read_bucket(path, delete)


__all__ = ["BUCKET_COMPRESSION", "BUFFER_ROWS", "KeyBuckets", "bucket_count", "read_bucket"]
