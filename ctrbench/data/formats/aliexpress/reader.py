"""The processed AliExpress multi-task CSVs (FuxiCTR/BARS ``tiny_mtl`` / ``AliExpress_*``, the
Multitask-Recommendation-Library's ``AliExpress_NL`` ..): the streaming reader.

Layout (one CSV per split, comma-separated, no quoting, first line the header)::

    search_id, categorical_1 .. categorical_16, numerical_1 .. numerical_63, click, conversion

Columns are found by their header names, never by position: some copies put ``conversion`` before
``click``, and columns no reader needs are allowed (reported, not read). ``click`` and ``conversion`` are
0/1 labels; ``conversion`` means clicked and purchased (CTCVR), so a conversion row is a click row.

What the sample (reczoo/FuxiCTR ``data/tiny_mtl``, copied in ``tests/data/aliexpress``) shows, and what is
done with it:

- ``categorical_*``: small non-negative integer codes. The value v becomes the local id ``v + 1`` (0 is the
  missing id: an empty field), so a field's table has ``max v + 2`` rows, as the Multitask-Recommendation-
  Library sizes it (``field_dims = max + 1``, no padding row there). A non-integer, a negative value or one
  above ``max_categorical_value`` is a bad row (``bad_integer``).
- ``numerical_*``: already scaled into [0, 1] by the release (``0.083333``, ``1.0``; ``numerical_58..60`` are
  written ``0``); passed through as float32, as both libraries do (FuxiCTR: ``numeric``, no normaliser). An
  empty field is 0.0 (counted); a value that is not a finite number is a bad row (``bad_number``).
- ``search_id``: one search (query) of a user. Within every search id of the sample, ``categorical_1..9`` and
  ``numerical_1..23`` never vary (the user and query side), the other columns do (the items shown): it is the
  gAUC group (int64, kept as is). It must be a non-negative integer (``bad_integer``). Rows of one search are
  not contiguous in the files.

Reading streams like the other CSV readers (``ctrbench.data.headed_csv``): byte blocks cut at the last newline, a
numpy line scan (physical line numbers, field counts), ``pyarrow.csv`` with every column as raw bytes, then
vectorised parsing (``fields.parse_int64`` for the integers; Arrow's string -> float cast for the numericals,
with the per-row check of ``fields.parse_float`` only for a chunk the cast refuses). Bad rows are of four
kinds (``BAD_ROW_KINDS``); with ``max_bad_rows=0`` the first raises ``AliExpressFormatError`` naming file,
line, column and value, otherwise they are skipped and counted until more than ``max_bad_rows`` were seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ctrbench.data.blocks import ColumnBlock
from ctrbench.data.csv_header import read_header
from ctrbench.data.fields import parse_float, parse_int64, parse_label, per_chunk
from ctrbench.data.formats.aliexpress.options import DEFAULTS
from ctrbench.data.headed_csv import CsvBlock, HeadedCsvReader
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES, BadRows
from ctrbench.data.schema import MISSING_ID, ROW_ID

GROUP = "search_id"
CATEGORICAL = [f"categorical_{i}" for i in range(1, 17)]
NUMERICAL = [f"numerical_{i}" for i in range(1, 64)]
TASKS = ["click", "conversion"]
COLUMNS = [GROUP, *CATEGORICAL, *NUMERICAL, *TASKS]  # the release's order (headers are read by name)
LAYOUT = "AliExpress multi-task"
BAD_ROW_KINDS = ("field_count", "bad_label", "bad_integer", "bad_number")
_LABEL, _INTEGER, _NUMBER = 1, 2, 3  # indices into BAD_ROW_KINDS

OUTPUT_SCHEMA = pa.schema(
    [(ROW_ID, pa.int64()), *((t, pa.float32()) for t in TASKS), (GROUP, pa.int64())]
    + [(c, pa.int32()) for c in CATEGORICAL]
    + [(c, pa.float32()) for c in NUMERICAL]
)


class AliExpressFormatError(ValueError):
    """An AliExpress CSV that does not parse; the message names file, line, column and problem."""


def check_header(path: str | Path) -> list[str]:
    """The file's column names, in its order; ``AliExpressFormatError`` when it is empty or lacks a column."""
    return read_header(path, COLUMNS, layout=LAYOUT, error=AliExpressFormatError)


def _parse_numbers(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 values, missing, bad): Arrow's cast in one go; a chunk it refuses is checked row by row."""
    try:
        values = chunk.view(pa.string()).cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return parse_float(chunk)  # an empty or malformed value somewhere in the chunk
    finite = np.isfinite(values)
    return np.where(finite, values, 0.0), np.zeros(len(values), bool), ~finite


class AliExpressReader(HeadedCsvReader):
    """Iterate over one AliExpress CSV as ``ColumnBlock``s (``OUTPUT_SCHEMA``) with bounded memory.

    ``row_id = row_id_offset + physical line``. ``bad`` may be a ``BadRows`` shared with other readers:
    ``max_bad_rows`` then bounds their total. After iteration: ``lines`` (physical, header included),
    ``data_lines``, ``rows`` (good rows yielded), ``bytes_read``, ``extra_columns`` (header names not read),
    and the value facts of the good rows: ``categorical_max`` (per field, -1 if never present),
    ``numerical_min`` / ``numerical_max``, ``numerical_missing`` (empty fields read as 0.0), and
    ``conversion_without_click``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_categorical_value: int = DEFAULTS["max_categorical_value"],
        max_bad_rows: int = DEFAULTS["max_bad_rows"],
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        row_id_offset: int = 0,
        bad: BadRows | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ):
        if not 0 <= max_categorical_value <= 2**31 - 3:
            raise ValueError(
                f"max_categorical_value must be in [0, 2**31 - 3] (int32 ids), got {max_categorical_value}"
            )
        if max_bad_rows < 0 or block_bytes < 1 or row_id_offset < 0:
            raise ValueError("max_bad_rows and row_id_offset must be >= 0 and block_bytes >= 1")
        super().__init__(
            path, wanted=COLUMNS, required=COLUMNS, error=AliExpressFormatError, layout=LAYOUT,
            block_bytes=block_bytes, on_bytes=on_bytes, require_rows=True,
        )  # fmt: skip
        self.max_categorical_value = int(max_categorical_value)
        self.max_bad_rows = int(max_bad_rows)
        self.row_id_offset = int(row_id_offset)
        self._shared_bad = bad
        self._reset()

    def _reset(self) -> None:
        self.bad = self._shared_bad if self._shared_bad is not None else BadRows.of(BAD_ROW_KINDS)
        self._bad_before = self.bad.total
        self.categorical_max = np.full(len(CATEGORICAL), -1, np.int64)
        self.numerical_min = np.full(len(NUMERICAL), np.inf)
        self.numerical_max = np.full(len(NUMERICAL), -np.inf)
        self.numerical_missing = 0
        self.conversion_without_click = 0

    @property
    def bad_rows(self) -> int:
        """Bad rows of this file (the shared ``bad`` may also count other files')."""
        return self.bad.total - self._bad_before

    def __iter__(self) -> Iterator[ColumnBlock]:
        self._reset()
        yield from self.parsed(self._parse)

    def _parse(self, raw: CsvBlock) -> ColumnBlock:
        """The good rows of ``raw``, checked in the layout's order (a row reports its first bad column)."""
        columns: dict[str, np.ndarray] = {ROW_ID: (raw.lines + self.row_id_offset).astype(np.int64)}
        search_id, missing, bad = per_chunk(raw.column(GROUP), parse_int64)
        raw.mark(GROUP, bad | missing | (search_id < 0), _INTEGER, "is not a non-negative integer")
        columns[GROUP] = search_id
        in_range = f"is not an integer in [0, max_categorical_value={self.max_categorical_value}]"
        for name in CATEGORICAL:
            values, missing, bad = per_chunk(raw.column(name), parse_int64)
            raw.mark(name, bad | (values < 0) | (values > self.max_categorical_value), _INTEGER, in_range)
            columns[name] = np.where(missing, MISSING_ID, values + 1).astype(np.int32)
        missing_numbers = np.zeros(len(raw), np.int64)
        for name in NUMERICAL:
            values, missing, bad = per_chunk(raw.column(name), _parse_numbers)
            raw.mark(name, bad, _NUMBER, "is not a number")
            missing_numbers += missing
            columns[name] = values.astype(np.float32)
        for name in TASKS:
            label, bad = per_chunk(raw.column(name), parse_label)
            raw.mark(name, bad, _LABEL, "is not 0 or 1")
            columns[name] = label
        block = ColumnBlock(OUTPUT_SCHEMA, {f.name: columns[f.name] for f in OUTPUT_SCHEMA})
        keep = raw.settle(self.bad, self.max_bad_rows, AliExpressFormatError)
        if not keep.all():
            block = block.take(keep)
            missing_numbers = missing_numbers[keep]
        self._note_values(block, int(missing_numbers.sum()))
        return block

    def _note_values(self, block: ColumnBlock, missing_numbers: int) -> None:
        """Fold the good rows of a block into the value facts (vocabulary sizes, numerical ranges)."""
        if not len(block):
            return
        self.numerical_missing += missing_numbers
        cols = block.columns
        self.categorical_max = np.maximum(self.categorical_max, [int(cols[c].max()) - 1 for c in CATEGORICAL])
        self.numerical_min = np.minimum(self.numerical_min, [float(cols[c].min()) for c in NUMERICAL])
        self.numerical_max = np.maximum(self.numerical_max, [float(cols[c].max()) for c in NUMERICAL])
        self.conversion_without_click += int(np.count_nonzero((cols["conversion"] == 1) & (cols["click"] == 0)))


def read_aliexpress(path: str | Path, **options) -> ColumnBlock:
    """Read a whole (small) file into one block; options as ``AliExpressReader``."""
    return ColumnBlock.concat(list(AliExpressReader(path, **options)), OUTPUT_SCHEMA)


__all__ = [
    "BAD_ROW_KINDS",
    "CATEGORICAL",
    "COLUMNS",
    "GROUP",
    "LAYOUT",
    "NUMERICAL",
    "OUTPUT_SCHEMA",
    "TASKS",
    "AliExpressFormatError",
    "AliExpressReader",
    "check_header",
    "read_aliexpress",
]
