"""Tenrec QB-Video / QK-Video interaction CSVs: the raw layout and a streaming reader.

Layout: one CSV, comma-separated, no quoting, first line the header::

    user_id,item_id,click,follow,like,share,video_category,watching_times,gender,age

Columns are found by header name (columns no reader needs are allowed and reported). ``\\N`` (the MySQL
export's NULL) is a missing value. There is no timestamp: the rows of a user are that user's interactions in
order, so file order within a user is time order; the rows of one user need not be contiguous.

- ``user_id``, ``item_id``: non-negative integers (``bad_id`` otherwise, ``\\N`` included);
- ``click``, ``follow``, ``like``, ``share``: 0/1 (``bad_label`` otherwise); every row is an exposure, and
  like, follow and share can happen without a click;
- ``video_category``, ``gender``, ``age``: integer codes or missing (``\\N`` or empty); ``watching_times`` (plays
  of the video, an outcome of the exposure, not a feature): a non-negative integer or missing. Anything else is
  ``bad_integer``.

Reading streams like the other CSV readers (``ctrbench.data.reading``): byte blocks cut at the last newline, a
numpy line scan, ``pyarrow.csv`` with every column as raw bytes, then ``fields.parse_int64`` / ``parse_label``
per column. A block's good rows come as a ``ColumnBlock`` of ``BUCKET_SCHEMA`` (raw ids as int64, ``MISSING``
where missing, the physical line number), the layout of preprocessing's user buckets. With ``max_bad_rows=0``
the first bad row raises ``TenrecFormatError`` naming file, line, column and value; otherwise bad rows are
skipped and counted by kind (``BAD_ROW_KINDS``) until more than ``max_bad_rows`` were seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ctrbench.data.blocks import ColumnBlock
from ctrbench.data.csv_header import header_columns, read_header
from ctrbench.data.fields import binary_views, parse_int64, parse_label, per_chunk
from ctrbench.data.formats.tenrec.options import DEFAULTS
from ctrbench.data.reading import (
    MAX_LINE_BYTES,
    BadRows,
    CountsBytes,
    describe_value,
    line_blocks,
    read_csv_lines,
    record_bad_rows,
)

IDS = ["user_id", "item_id"]
BEHAVIORS = ["click", "follow", "like", "share"]  # the labels, in file order
CODES = ["video_category", "gender", "age"]  # categorical codes, may be missing
PLAYS = "watching_times"
COLUMNS = [*IDS, *BEHAVIORS, "video_category", PLAYS, "gender", "age"]
LAYOUT = "Tenrec video"
NULL_TOKEN = b"\\N"
# Tenrec lines are ~33 bytes: a 32 MiB block (the other readers' default) is ~1 M rows and ~430 MiB of parse
# temporaries; 4 MiB blocks keep the reader near 160 MiB (2.4 M rows) and read as fast (fewer cache misses)
BLOCK_BYTES = 4 << 20
MISSING = np.iinfo(np.int64).min  # a missing code or play count in BUCKET_SCHEMA
BAD_ROW_KINDS = ("field_count", "bad_id", "bad_label", "bad_integer")
_KIND = {**dict.fromkeys(IDS, 1), **dict.fromkeys(BEHAVIORS, 2), **dict.fromkeys([*CODES, PLAYS], 3)}

BUCKET_SCHEMA = pa.schema(
    [("line", pa.int64()), *((c, pa.int64()) for c in IDS), *((b, pa.int8()) for b in BEHAVIORS)]
    + [(c, pa.int64()) for c in [*CODES, PLAYS]]
)


class TenrecFormatError(ValueError):
    """A Tenrec CSV that does not parse; the message names file, line, column and value."""


def check_header(path: str | Path) -> list[str]:
    """The file's column names, in its order; ``TenrecFormatError`` when it is empty or lacks a column."""
    return read_header(path, COLUMNS, layout=LAYOUT, error=TenrecFormatError)


def parse_optional_int(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integers where ``\\N`` or an empty field is missing -> (int64 values, ``MISSING`` where missing; missing;
    bad)."""
    values, missing, bad = parse_int64(chunk)
    offsets, padded = binary_views(chunk)
    starts = offsets[:-1]
    null = (np.diff(offsets) == 2) & (padded[starts] == NULL_TOKEN[0]) & (padded[starts + 1] == NULL_TOKEN[1])
    missing |= null
    bad &= ~null
    values[missing] = MISSING
    return values, missing, bad


class TenrecReader(CountsBytes):
    """Iterate over a Tenrec CSV as ``ColumnBlock``s of ``BUCKET_SCHEMA`` with bounded memory.

    After iteration: ``lines`` (physical, header included), ``data_lines``, ``rows`` (good rows yielded),
    ``bad`` (``BadRows``), ``bytes_read``, ``extra_columns`` (header names not read) and ``missing`` (missing
    values per column of ``CODES`` and ``watching_times``). ``hasher`` is fed every byte read, ``on_bytes`` the
    byte count of every block.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bad_rows: int = DEFAULTS["max_bad_rows"],
        block_bytes: int = BLOCK_BYTES,
        on_bytes: Callable[[int], None] | None = None,
        hasher=None,
    ):
        if max_bad_rows < 0 or block_bytes < 1:
            raise ValueError("max_bad_rows must be >= 0 and block_bytes >= 1")
        self.path = Path(path)
        self.max_bad_rows = int(max_bad_rows)
        self.block_bytes = int(block_bytes)
        self.on_bytes = on_bytes
        self.hasher = hasher
        self._reset()

    def _reset(self) -> None:
        self.lines = self.rows = self.bytes_read = 0
        self.names: list[str] = []
        self.bad = BadRows.of(BAD_ROW_KINDS)
        self.missing = dict.fromkeys([*CODES, PLAYS], 0)

    @property
    def data_lines(self) -> int:
        return max(self.lines - 1, 0)

    @property
    def extra_columns(self) -> list[str]:
        return [name for name in self.names if name not in COLUMNS]

    def __iter__(self) -> Iterator[ColumnBlock]:
        self._reset()
        for data, end in line_blocks(
            self.path,
            self.block_bytes,
            MAX_LINE_BYTES,
            too_long=self._too_long,
            consumed=self._consumed,
            hasher=self.hasher,
        ):
            start = 0
            if not self.names and end:
                nl = data.find(b"\n", 0, end)
                line = bytes(data[: end if nl < 0 else nl])
                self.names = header_columns(self.path, line, COLUMNS, layout=LAYOUT, error=TenrecFormatError)
                self.lines += 1
                start = end if nl < 0 else nl + 1
            if end > start:
                block = self._parse_block(data, start, end, terminated=data[end - 1] == 10)
                if len(block):
                    self.rows += len(block)
                    yield block
        if not self.names:
            raise TenrecFormatError(f"{self.path}: empty file; expected a header line naming the {LAYOUT} columns")
        if self.rows == 0:
            skipped = f" ({self.bad.total} bad rows skipped)" if self.bad.total else ""
            raise TenrecFormatError(f"{self.path}: no data rows{skipped}")

    def _too_long(self) -> TenrecFormatError:
        return TenrecFormatError(
            f"{self.path}:{self.lines + 1}: line longer than {MAX_LINE_BYTES} bytes; not a {LAYOUT} CSV?"
        )

    def _parse_block(self, data: bytes, start: int, end: int, terminated: bool) -> ColumnBlock:
        """Parse the complete lines ``data[start:end]`` (the last lacks its newline only at end of file)."""
        first_line = self.lines + 1
        table, scan = read_csv_lines(self.path, data, start, end, terminated, first_line, self.names, ",")
        self.lines += len(scan.ends)
        first_bad = np.full(table.num_rows, -1, np.int8)  # index into COLUMNS of each row's first bad column

        def mark(bad: np.ndarray, name: str) -> None:
            if bad.any():
                first_bad[bad & (first_bad < 0)] = COLUMNS.index(name)

        columns: dict[str, np.ndarray] = {"line": scan.good_lines.astype(np.int64)}
        missing: dict[str, np.ndarray] = {}
        for name in COLUMNS:  # checked in the layout's order: a row's first bad column is the one reported
            if name in BEHAVIORS:
                label, bad = per_chunk(table.column(name), parse_label)
                columns[name] = label.astype(np.int8)
            elif name in IDS:
                columns[name], gone, bad = per_chunk(table.column(name), parse_int64)
                bad |= gone | (columns[name] < 0)
            else:
                columns[name], missing[name], bad = per_chunk(table.column(name), parse_optional_int)
                if name == PLAYS:
                    bad |= ~missing[name] & (columns[name] < 0)
            mark(bad, name)
        block = ColumnBlock(BUCKET_SCHEMA, {f.name: columns[f.name] for f in BUCKET_SCHEMA})

        row_bad = first_bad >= 0
        if scan.line_bad.any() or row_bad.any():
            value_rows = np.flatnonzero(row_bad)

            def value_problem(j: int, table: pa.Table = table) -> str:
                row = int(value_rows[j])
                name = COLUMNS[int(first_bad[row])]
                problem = {
                    1: "is not a non-negative integer id",
                    2: "is not 0 or 1",
                    3: "is not an integer or \\N" if name != PLAYS else "is not a non-negative integer or \\N",
                }[_KIND[name]]
                return f"column {name}: {describe_value(table.column(name)[row].as_py())} {problem}"

            kinds = np.array([_KIND[c] for c in COLUMNS], np.int8)[first_bad[value_rows]]
            record_bad_rows(
                self.bad, self.path, first_line=first_line, line_bad=scan.line_bad, line_text=scan.line_text,
                stray_cr=scan.stray_cr, terminated=terminated, n_fields=len(self.names), delimiter=",",
                value_lines=block.columns["line"][value_rows], value_kinds=kinds, value_problem=value_problem,
                max_bad_rows=self.max_bad_rows, error=TenrecFormatError,
            )  # fmt: skip
            block = block.take(~row_bad)
            missing = {name: flags[~row_bad] for name, flags in missing.items()}
        for name, flags in missing.items():
            self.missing[name] += int(flags.sum())
        del table
        pa.default_memory_pool().release_unused()
        return block


def read_tenrec(path: str | Path, **options) -> ColumnBlock:
    """Read a whole (small) file into one block; options as ``TenrecReader``."""
    return ColumnBlock.concat(list(TenrecReader(path, **options)), BUCKET_SCHEMA)


__all__ = [
    "BAD_ROW_KINDS",
    "BEHAVIORS",
    "BLOCK_BYTES",
    "BUCKET_SCHEMA",
    "CODES",
    "COLUMNS",
    "IDS",
    "LAYOUT",
    "MISSING",
    "NULL_TOKEN",
    "PLAYS",
    "TenrecFormatError",
    "TenrecReader",
    "check_header",
    "parse_optional_int",
    "read_tenrec",
]
