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

Reading streams like the other CSV readers (``ctrbench.data.headed_csv``): byte blocks cut at the last newline, a
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
from ctrbench.data.csv_header import read_header
from ctrbench.data.fields import binary_views, parse_int64, parse_label, per_chunk
from ctrbench.data.formats.tenrec.options import DEFAULTS
from ctrbench.data.headed_csv import CsvBlock, HeadedCsvReader
from ctrbench.data.reading import BadRows

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
_PROBLEM = {
    **dict.fromkeys(IDS, "is not a non-negative integer id"),
    **dict.fromkeys(BEHAVIORS, "is not 0 or 1"),
    **dict.fromkeys(CODES, "is not an integer or \\N"),
    PLAYS: "is not a non-negative integer or \\N",
}

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


class TenrecReader(HeadedCsvReader):
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
        super().__init__(
            path, wanted=COLUMNS, required=COLUMNS, error=TenrecFormatError, layout=LAYOUT, block_bytes=block_bytes,
            hasher=hasher, on_bytes=on_bytes, require_rows=True,
        )  # fmt: skip
        self.max_bad_rows = int(max_bad_rows)
        self._reset()

    def _reset(self) -> None:
        self.bad = BadRows.of(BAD_ROW_KINDS)
        self.missing = dict.fromkeys([*CODES, PLAYS], 0)

    def __iter__(self) -> Iterator[ColumnBlock]:
        self._reset()
        yield from self.parsed(self._parse)

    def _parse(self, raw: CsvBlock) -> ColumnBlock:
        """The good rows of ``raw``, checked in the layout's order (a row reports its first bad column)."""
        columns: dict[str, np.ndarray] = {"line": raw.lines.astype(np.int64)}
        missing: dict[str, np.ndarray] = {}
        for name in COLUMNS:
            if name in BEHAVIORS:
                label, bad = per_chunk(raw.column(name), parse_label)
                columns[name] = label.astype(np.int8)
            elif name in IDS:
                columns[name], gone, bad = per_chunk(raw.column(name), parse_int64)
                bad |= gone | (columns[name] < 0)
            else:
                columns[name], missing[name], bad = per_chunk(raw.column(name), parse_optional_int)
                if name == PLAYS:
                    bad |= ~missing[name] & (columns[name] < 0)
            raw.mark(name, bad, _KIND[name], _PROBLEM[name])
        block = ColumnBlock(BUCKET_SCHEMA, {f.name: columns[f.name] for f in BUCKET_SCHEMA})
        keep = raw.settle(self.bad, self.max_bad_rows, TenrecFormatError)
        if not keep.all():
            block = block.take(keep)
            missing = {name: flags[keep] for name, flags in missing.items()}
        for name, flags in missing.items():
            self.missing[name] += int(flags.sum())
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
