"""The KuaiRand logs (``log_standard_*.csv``, ``log_random_*.csv``): a streaming, vectorised reader.

Each file is read by header name (``HeadedCsvReader``: byte blocks, a numpy line scan, ``pyarrow.csv`` with every
column as raw bytes), so the column order of a file does not matter and a file may lack the layout columns nothing
uses (the 27K EDA extract has 7 of the 19). Required: ``user_id, video_id, time_ms, tab`` and the label columns the
run uses (its tasks and behaviours). Every layout column present is checked, in header order: an integer of at most
18 digits (``bad_integer``; ids also non-negative), the 0/1 columns 0 or 1 (``bad_label``); a line with another
field count is ``field_count``. With ``max_bad_rows=0`` the first bad row raises ``KuaiRandFormatError`` naming
file, line, column and value; otherwise bad rows are skipped and counted (over every file of the run together).

``row_id`` = the file's ``row_id_offset`` (the physical lines of the files read before it) + the physical line, so
it is unique over the run's logs and names its source line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ctrbench.data.fields import parse_int64, per_chunk
from ctrbench.data.formats.kuairand.layout import (
    BAD_INTEGER,
    BAD_LABEL,
    FLAG_COLUMNS,
    LOG_COLUMNS,
    LOG_KEYS,
    KuaiRandFormatError,
)
from ctrbench.data.headed_csv import HeadedCsvReader
from ctrbench.data.raw_input import input_hasher
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES, BadRows

_IDS = ("user_id", "video_id")


@dataclass
class LogBlock:
    """The good exposures of one block in file order: ``row_id``, ``user``, ``video``, ``time_ms``, ``tab`` (int64)
    and ``labels`` (label column -> int8 0/1, the columns the run asked for)."""

    row_id: np.ndarray
    user: np.ndarray
    video: np.ndarray
    time_ms: np.ndarray
    tab: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.row_id)

    def to_arrow(self, schema: pa.Schema) -> pa.Table:
        """As a table of ``schema`` (``bucket_schema``)."""
        columns = {"row_id": self.row_id, "user": self.user, "video": self.video, "time_ms": self.time_ms}
        columns |= {"tab": self.tab, **self.labels}
        return pa.table({name: columns[name] for name in schema.names}, schema=schema)


def bucket_schema(labels: Sequence[str]) -> pa.Schema:
    """The exposures as pass 1 buckets them: keys as read, labels as int8."""
    keys = [(name, pa.int64()) for name in ("row_id", "user", "video", "time_ms", "tab")]
    return pa.schema(keys + [(label, pa.int8()) for label in labels])


@dataclass
class LogFile:
    """What was read from one log file: its lines (physical, header included), data lines, good rows, sha256 (None
    unless hashed) and where its row ids start."""

    path: Path
    row_id_offset: int
    lines: int = 0
    data_lines: int = 0
    rows: int = 0
    sha256: str | None = None


class LogReader:
    """Iterate over the log files ``paths`` (in this order) as ``LogBlock``s with bounded memory.

    ``labels``: the label columns to return (required in every header). ``bad`` counts the bad rows of every file
    (shared with the feature-file readers: one ``max_bad_rows`` budget). After iteration, ``files`` holds one
    ``LogFile`` per file. ``on_bytes`` gets the byte count of every block.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[str],
        bad: BadRows,
        *,
        max_bad_rows: int,
        input_hash: str = "sha256",
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        on_bytes: Callable[[int], None] | None = None,
    ):
        self.paths = [Path(p) for p in paths]
        self.labels = list(labels)
        self.bad, self.max_bad_rows = bad, int(max_bad_rows)
        self.input_hash, self.block_bytes, self.on_bytes = input_hash, int(block_bytes), on_bytes
        self.files: list[LogFile] = []

    def __iter__(self) -> Iterator[LogBlock]:
        self.files = []
        offset = 0
        for path in self.paths:
            record = LogFile(path, offset)
            self.files.append(record)
            hasher = input_hasher(self.input_hash)
            csv = HeadedCsvReader(
                path, wanted=LOG_COLUMNS, required=[*LOG_KEYS, *self.labels], error=KuaiRandFormatError,
                layout="KuaiRand log", require_rows=True,
                block_bytes=self.block_bytes, hasher=hasher, on_bytes=self.on_bytes,
            )  # fmt: skip
            try:
                for block in csv:
                    parsed = self._parse(block, offset)
                    if len(parsed):
                        yield parsed
            except BaseException:
                if hasher is not None:
                    hasher.close()
                raise
            record.sha256 = hasher.hexdigest() if hasher is not None else None
            record.lines, record.data_lines, record.rows = csv.lines, csv.data_lines, csv.rows
            offset += csv.lines

    def _parse(self, block, offset: int) -> LogBlock:
        values: dict[str, np.ndarray] = {}
        needed = {*LOG_KEYS, *self.labels}
        for name in block.reader.present:  # header order: a row reports its first bad column
            parsed, missing, bad = per_chunk(block.column(name), parse_int64)
            # every log column is an integer the release always writes: an empty one is a bad row, not a 0
            block.mark(name, missing, BAD_INTEGER, "is empty (every log column holds an integer)")
            if name in _IDS:
                bad |= parsed < 0
                block.mark(name, bad, BAD_INTEGER, "is not a non-negative integer (at most 18 digits)")
            else:
                block.mark(name, bad, BAD_INTEGER, "is not an integer (at most 18 digits)")
            if name in FLAG_COLUMNS:
                block.mark(name, ~bad & (parsed != 0) & (parsed != 1), BAD_LABEL, "is not 0 or 1")
            if name in needed:  # the other columns are only checked
                values[name] = parsed
        keep = block.settle(self.bad, self.max_bad_rows, KuaiRandFormatError)
        return LogBlock(
            row_id=(block.lines[keep] + offset).astype(np.int64),
            user=values["user_id"][keep],
            video=values["video_id"][keep],
            time_ms=values["time_ms"][keep],
            tab=values["tab"][keep],
            labels={name: values[name][keep].astype(np.int8) for name in self.labels},
        )


__all__ = ["LogBlock", "LogFile", "LogReader", "bucket_schema"]
