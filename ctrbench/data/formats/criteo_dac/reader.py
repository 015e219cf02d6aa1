"""Streaming reader for the raw Criteo Display Advertising Challenge (DAC) ``train.txt`` layout.

Layout: one example per line, no header, 40 delimiter-separated fields ``label, I1..I13, C1..C26``;
the label is 0/1, ``I*`` are integer counts, ``C*`` are 32-bit hashes written as 8 hex digits, and
an empty field is a missing value. The same reader also takes the DeepCTR CSV sample (``,``, a
header line, dense written as floats such as ``260.0``) through ``delimiter``, ``header`` and
``dense_values="float"``.

Memory stays bounded by ``block_bytes`` whatever the file size (the real file is 45.8M lines,
11 GB): the file is read in byte blocks cut at the last newline, and each block goes through

1. a numpy pass over the raw bytes: line boundaries, delimiters per line, so every row keeps its
   1-based physical line number and lines with the wrong field count are known up front;
2. ``pyarrow.csv.read_csv`` with every column as raw bytes, quoting off, skipping the
   wrong-count lines through ``invalid_row_handler`` (step 1 already recorded them);
3. vectorised validation and transforms over the Arrow offsets/data buffers (no per-row Python,
   ``ctrbench.data.fields``).

Steps 1-3 run on ``workers`` threads, a few blocks at once (``parallel_blocks.ordered_map``);
the blocks come out in file order and bad rows are recorded in line order in the caller's
thread, so the rows, the counts and the first error are those of a serial read.

Transforms (all vectorised):

- label -> float32 0.0 / 1.0;
- dense -> float32 ``sign(x) * log1p(|x|)``; missing -> 0.0. The sign is kept because a few raw
  values are negative (I2 = -1, -2, -3 in the real data): plain ``log1p`` would give NaN or
  -inf there, and clipping at 0 would merge them with the value 0;
- categorical -> int32 local id in ``[0, hash_bins)``: missing -> ``MISSING_ID`` (0), otherwise
  ``1 + (uint32(hex) % (hash_bins - 1))``.

Bad rows are of four kinds (``BAD_ROW_KINDS``). With ``max_bad_rows=0`` the first one raises a
``CriteoFormatError`` naming file, physical line, column and problem; with ``max_bad_rows=N`` bad
rows are skipped and counted by kind, and reading fails once more than N were seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ctrbench.data.fields import FLOAT_PATTERN, parse_float, parse_hex8, parse_int, parse_label, per_chunk
from ctrbench.data.formats.criteo_dac.options import DEFAULTS
from ctrbench.data.parallel_blocks import ordered_map
from ctrbench.data.raw_input import count_newlines
from ctrbench.data.reading import (
    DEFAULT_BLOCK_BYTES,
    MAX_LINE_BYTES,
    BadRows,
    CountsBytes,
    describe_value,
    line_blocks,
    read_csv_lines,
    record_bad_rows,
)
from ctrbench.data.schema import ROW_ID

LABEL = "label"
DENSE = [f"I{i}" for i in range(1, 14)]
CATEGORICAL = [f"C{i}" for i in range(1, 27)]
COLUMNS = [LABEL, *DENSE, *CATEGORICAL]
N_FIELDS = len(COLUMNS)

BAD_ROW_KINDS = ("field_count", "bad_label", "bad_dense", "bad_categorical")
DENSE_VALUES = ("integer", "float")

# blocks parsed at once, besides the one the caller works on: two keep both cores of a small
# machine busy (Arrow's read, numpy's parse and the caller's parquet write overlap)
DEFAULT_WORKERS = 2

FLOAT_HINT = "for decimal dense values set reader.dense_values: float (config: reader: {dense_values: float})"
DENSE_TRANSFORM = "float32 sign(x) * log1p(|x|); missing -> 0.0"
CATEGORICAL_TRANSFORM = "int32 missing -> 0; else 1 + (uint32(8 hex digits) % (hash_bins - 1))"

_KIND_OF_COLUMN = np.array([1] + [2] * len(DENSE) + [3] * len(CATEGORICAL), dtype=np.int8)  # index into BAD_ROW_KINDS


class CriteoFormatError(ValueError):
    """A Criteo file that does not parse; the message names file, line, column and problem."""


@dataclass
class CriteoBlock:
    """The good rows of one block, in file order, already transformed.

    ``columns`` holds ``row_id`` (int64, 1-based physical line), ``label`` (float32),
    ``I1..I13`` (float32) and ``C1..C26`` (int32), in that order.
    """

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns[ROW_ID])

    @property
    def row_id(self) -> np.ndarray:
        return self.columns[ROW_ID]

    def take(self, index: np.ndarray) -> CriteoBlock:
        return CriteoBlock({k: v[index] for k, v in self.columns.items()})

    def to_arrow(self) -> pa.Table:
        return pa.table({k: pa.array(v) for k, v in self.columns.items()}, schema=OUTPUT_SCHEMA)

    @staticmethod
    def concat(blocks: list[CriteoBlock]) -> CriteoBlock:
        if not blocks:
            return CriteoBlock({name: np.empty(0, dtype=t.to_pandas_dtype()) for name, t in _OUTPUT_TYPES})
        return CriteoBlock({k: np.concatenate([b.columns[k] for b in blocks]) for k in blocks[0].columns})


_OUTPUT_TYPES = (
    [(ROW_ID, pa.int64()), (LABEL, pa.float32())]
    + [(c, pa.float32()) for c in DENSE]
    + [(c, pa.int32()) for c in CATEGORICAL]
)
OUTPUT_SCHEMA = pa.schema(_OUTPUT_TYPES)


@dataclass
class _Lines:
    """One block of complete lines, ``data[start:end]``, numbered from ``first_line``."""

    data: bytes
    start: int
    end: int
    first_line: int
    n_lines: int
    header_lines: int  # 1 when the block also held the header line (before ``start``)


@dataclass
class _Parsed:
    """A block's good rows, and what its bad rows need to be recorded in the caller's thread."""

    lines: _Lines
    block: CriteoBlock | None
    record_bad: Callable[[], None] | None


class CriteoReader(CountsBytes):
    """Iterate over a Criteo DAC file as transformed ``CriteoBlock``s with bounded memory.

    After iteration: ``lines`` (physical lines, header included), ``data_lines`` (lines after the
    header, bad ones included), ``rows`` (good rows yielded), ``bad`` (``BadRows``) and
    ``bytes_read``. Iterating again restarts from the beginning. ``workers`` threads parse blocks
    ahead of the caller (0: all in the caller's thread); the result does not depend on it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        hash_bins: int = DEFAULTS["hash_bins"],
        delimiter: str = DEFAULTS["reader"]["delimiter"],
        header: bool = DEFAULTS["reader"]["header"],
        dense_values: str = DEFAULTS["reader"]["dense_values"],
        max_bad_rows: int = DEFAULTS["max_bad_rows"],
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        on_bytes: Callable[[int], None] | None = None,
        workers: int = DEFAULT_WORKERS,
    ):
        if len(delimiter) != 1 or delimiter in "\r\n" or ord(delimiter) > 127:
            raise ValueError(f"delimiter must be one ASCII character other than CR/LF, got {delimiter!r}")
        if dense_values not in DENSE_VALUES:
            raise ValueError(f"dense_values must be one of {DENSE_VALUES}, got {dense_values!r}")
        if not 2 <= hash_bins <= 2**31 - 1:
            raise ValueError(f"hash_bins must be in [2, 2**31 - 1] (int32 ids), got {hash_bins}")
        if max_bad_rows < 0 or block_bytes < 1 or workers < 0:
            raise ValueError("max_bad_rows and workers must be >= 0 and block_bytes >= 1")
        self.path = Path(path)
        self.hash_bins = int(hash_bins)
        self.delimiter = delimiter
        self.header = bool(header)
        self.dense_values = dense_values
        self.max_bad_rows = int(max_bad_rows)
        self.block_bytes = int(block_bytes)
        self.on_bytes = on_bytes
        self.workers = int(workers)
        self._reset()

    def _reset(self) -> None:
        self.lines = 0
        self.rows = 0
        self.bytes_read = 0
        self.bad = BadRows.of(BAD_ROW_KINDS)

    @property
    def data_lines(self) -> int:
        return self.lines - (1 if self.header and self.lines else 0)

    def __iter__(self) -> Iterator[CriteoBlock]:
        self._reset()
        for parsed in ordered_map(self._parse, self._blocks(), workers=self.workers, ahead=max(self.workers, 1)):
            self.lines += parsed.lines.header_lines + parsed.lines.n_lines
            if parsed.record_bad is not None:
                parsed.record_bad()  # in line order, here: may raise for the first bad line
            if parsed.block is not None and len(parsed.block):
                self.rows += len(parsed.block)
                yield parsed.block
            self._consumed(parsed.lines.end)
        if self.rows == 0:
            skipped = f" ({self.bad.total} bad rows skipped)" if self.bad.total else ""
            raise CriteoFormatError(f"{self.path}: no data rows{skipped}")

    def _blocks(self) -> Iterator[_Lines]:
        """The file's blocks of complete lines, numbered; runs ahead of ``self.lines``."""
        self._scanned = 0  # lines handed out so far
        header_pending = self.header
        for data, end in line_blocks(
            self.path, self.block_bytes, MAX_LINE_BYTES, too_long=self._too_long, consumed=lambda _: None
        ):
            start = header = 0
            if header_pending and end:
                start, header = self._check_header(data, end), 1
                header_pending = False
            n_lines = count_newlines(data, start, end) + (end > start and data[end - 1] != 10)
            yield _Lines(data, start, end, self._scanned + header + 1, n_lines, header)
            self._scanned += header + n_lines

    def _too_long(self) -> CriteoFormatError:
        return CriteoFormatError(
            f"{self.path}:{self._scanned + 1}: line longer than {MAX_LINE_BYTES} bytes; not a Criteo file?"
        )

    def _check_header(self, data: bytes, end: int) -> int:
        """Check the header line; returns the offset of the first data line."""
        nl = data.find(b"\n", 0, end)
        stop = end if nl < 0 else nl
        names = data[:stop].rstrip(b"\r").decode("utf-8", errors="replace").split(self.delimiter)
        if names != COLUMNS:
            raise CriteoFormatError(
                f"{self.path}:1: header {names[:4]}... ({len(names)} columns) is not label, I1..I13, C1..C26"
            )
        return end if nl < 0 else nl + 1

    def _parse(self, lines: _Lines) -> _Parsed:
        """Parse one block of lines (on a worker thread: touches no reader state)."""
        data, start, end, first_line = lines.data, lines.start, lines.end, lines.first_line
        if end <= start:
            return _Parsed(lines, None, None)
        terminated = data[end - 1] == 10  # the last line lacks its newline only at end of file
        table, scan = read_csv_lines(self.path, data, start, end, terminated, first_line, COLUMNS, self.delimiter)
        line_bad, good_lines = scan.line_bad, scan.good_lines

        n = table.num_rows
        first_bad_col = np.full(n, -1, np.int16)  # first failing column per row, -1 if none

        def mark(bad: np.ndarray, col: int) -> None:
            if bad.any():
                first_bad_col[bad & (first_bad_col < 0)] = col

        label, bad = per_chunk(table.column(0), parse_label)
        mark(bad, 0)
        columns: dict[str, np.ndarray] = {ROW_ID: good_lines.astype(np.int64), LABEL: label.astype(np.float32)}
        parse_dense = parse_int if self.dense_values == "integer" else parse_float
        for j, name in enumerate(DENSE, start=1):
            x, _missing, bad = per_chunk(table.column(j), parse_dense)
            mark(bad, j)
            columns[name] = (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)
        for j, name in enumerate(CATEGORICAL, start=1 + len(DENSE)):
            ids, bad = per_chunk(table.column(j), lambda chunk: parse_hex8(chunk, self.hash_bins))
            mark(bad, j)
            columns[name] = ids.astype(np.int32, copy=False)

        block = CriteoBlock(columns)
        row_bad = first_bad_col >= 0
        record_bad = None
        if line_bad.any() or row_bad.any():
            value_rows = np.flatnonzero(row_bad)
            value_lines = block.row_id[value_rows]
            value_kinds = _KIND_OF_COLUMN[first_bad_col[value_rows]]

            def value_problem(j: int) -> str:
                row = int(value_rows[j])
                col = int(first_bad_col[row])
                return f"column {COLUMNS[col]}: {self._value_problem(col, table.column(col)[row].as_py())}"

            def record_bad() -> None:
                record_bad_rows(
                    self.bad, self.path, first_line=first_line, line_bad=line_bad, line_text=scan.line_text,
                    stray_cr=scan.stray_cr, terminated=terminated, n_fields=N_FIELDS, delimiter=self.delimiter,
                    delimiter_option="reader.delimiter", value_lines=value_lines, value_kinds=value_kinds,
                    value_problem=value_problem, max_bad_rows=self.max_bad_rows, error=CriteoFormatError,
                )  # fmt: skip

            block = block.take(~row_bad)
        else:
            del table, scan
        # mimalloc keeps freed Arrow pages for reuse; handing them back keeps the peak near the blocks in flight
        pa.default_memory_pool().release_unused()
        return _Parsed(lines, block, record_bad)

    def _value_problem(self, col: int, value: bytes) -> str:
        if col == 0:
            return f"{describe_value(value)} is not 0 or 1"
        if col > len(DENSE):
            return f"{describe_value(value)} is not 8 hex digits"
        if self.dense_values == "float":
            return f"{describe_value(value)} is not a number"
        text = value.decode("utf-8", errors="replace")
        if re.match(FLOAT_PATTERN, text) and any(c in text for c in ".eE"):
            # a decimal such as 260.0 (the DeepCTR sample): the float mode reads it
            return f"{describe_value(value)} is not an integer; {FLOAT_HINT}"
        return f"{describe_value(value)} is not an integer"


def read_criteo(path: str | Path, **options) -> CriteoBlock:
    """Read a whole (small) Criteo file into one ``CriteoBlock``; options as ``CriteoReader``."""
    return CriteoBlock.concat(list(CriteoReader(path, **options)))
