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
3. vectorised validation and transforms over the Arrow offsets/data buffers (no per-row Python).

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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import as_strided

from ctrbench.data.reading import BadRows, CountsBytes, describe_value, line_blocks, read_csv_lines, record_bad_rows
from ctrbench.data.schema import MISSING_ID, ROW_ID

LABEL = "label"
DENSE = [f"I{i}" for i in range(1, 14)]
CATEGORICAL = [f"C{i}" for i in range(1, 27)]
COLUMNS = [LABEL, *DENSE, *CATEGORICAL]
N_FIELDS = len(COLUMNS)

BAD_ROW_KINDS = ("field_count", "bad_label", "bad_dense", "bad_categorical")
DENSE_VALUES = ("integer", "float")

DEFAULT_BLOCK_BYTES = 32 << 20
DEFAULT_HASH_BINS = 2_000_000
# A Criteo line is < 1 KiB; a longer run without a newline means the file is not this format, and
# buffering it would break the memory bound.
MAX_LINE_BYTES = 1 << 20

DENSE_TRANSFORM = "float32 sign(x) * log1p(|x|); missing -> 0.0"
CATEGORICAL_TRANSFORM = "int32 missing -> 0; else 1 + (uint32(8 hex digits) % (hash_bins - 1))"

_FLOAT_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_MAX_INT_DIGITS = 18  # always fits int64

# hex digit -> nibble, 255 for any other byte (both cases, as int(x, 16) accepts)
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)

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


def _binary_views(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets[n + 1], data) of a binary array, zero-copy, data padded by 8 zero bytes.

    The padding lets fixed-width windows start at any offset without reading past the end.
    """
    if len(arr) == 0:
        return np.zeros(1, np.int32), np.zeros(24, np.uint8)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    padded = np.zeros(len(data) + 24, np.uint8)
    padded[: len(data)] = data
    return offsets, padded


def _windows(padded: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """[n, width] bytes starting at each offset (one gather, no per-row Python)."""
    view = as_strided(padded, shape=(len(padded) - width + 1, width), strides=(1, 1))
    return view[starts]


def _parse_label(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    offsets, padded = _binary_views(arr)
    lens = np.diff(offsets)
    first = padded[offsets[:-1]]
    ok = (lens == 1) & ((first == ord("0")) | (first == ord("1")))
    return (first == ord("1")).astype(np.float32), ~ok


def _parse_int(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optional-minus decimal integers -> (float64 values, missing, bad)."""
    offsets, padded = _binary_views(arr)
    n = len(arr)
    lens = np.diff(offsets)
    missing = lens == 0
    width = int(min(lens.max(initial=0), 20))
    values = np.zeros(n, np.int64)
    if width == 0:
        return values.astype(np.float64), missing, np.zeros(n, bool)
    b = _windows(padded, offsets[:-1], width)
    pos = np.arange(width)
    inside = pos < lens[:, None]
    neg = b[:, 0] == ord("-")
    digit = b - np.uint8(ord("0"))  # non-digits wrap to >= 10
    is_digit = digit < 10
    n_digits = lens - neg
    ok = (is_digit | ~inside | ((pos == 0) & neg[:, None])).all(axis=1)
    ok &= (n_digits >= 1) & (n_digits <= _MAX_INT_DIGITS)
    use = inside & is_digit & ok[:, None]
    digit = digit.astype(np.int64)
    for j in range(width):  # Horner over at most 20 byte columns, vectorised over rows
        values = np.where(use[:, j], values * 10 + digit[:, j], values)
    values = np.where(neg, -values, values)
    return values.astype(np.float64), missing, ~missing & ~ok


def _parse_float(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decimal / scientific numbers (the DeepCTR sample writes ``260.0``) -> (values, missing, bad)."""
    lens = np.diff(_binary_views(arr)[0])
    missing = lens == 0
    ok = pc.match_substring_regex(arr, _FLOAT_PATTERN).to_numpy(zero_copy_only=False)
    safe = pc.if_else(pa.array(ok), arr, pa.scalar(b"0", pa.binary()))
    values = pc.cast(safe.cast(pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
    ok &= np.isfinite(values)
    return np.where(ok, values, 0.0), missing, ~missing & ~ok


def _parse_categorical(arr: pa.Array, hash_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """8 hex digits -> (int32 local ids, bad); the hex is decoded in numpy through a lookup table."""
    offsets, padded = _binary_views(arr)
    lens = np.diff(offsets)
    present = lens == 8
    # one unaligned 8-byte load per value: a uint64 view with a 1-byte stride over the data
    words = np.ndarray((len(padded) - 7,), dtype=np.uint64, buffer=padded, strides=(1,))
    nibbles = _HEX[words[offsets[:-1][present]].view(np.uint8).reshape(-1, 8)]
    bad_hex = (nibbles == 255).any(axis=1)
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # 4 bytes, big-endian order
    value = np.ascontiguousarray(packed).view(">u4").ravel().astype(np.uint64)
    ids = np.full(len(arr), MISSING_ID, np.int32)
    ids[present] = (1 + value % np.uint64(hash_bins - 1)).astype(np.int32)
    bad = (lens != 0) & ~present
    bad[present] |= bad_hex
    ids[bad] = MISSING_ID
    return ids, bad


def _per_chunk(column: pa.ChunkedArray, parse) -> list[np.ndarray]:
    """Apply a parser to each Arrow chunk (no combine_chunks copy) and join its outputs."""
    parts = [parse(chunk) for chunk in column.chunks or [pa.array([], pa.binary())]]
    return [np.concatenate(p) for p in zip(*parts)]


class CriteoReader(CountsBytes):
    """Iterate over a Criteo DAC file as transformed ``CriteoBlock``s with bounded memory.

    After iteration: ``lines`` (physical lines, header included), ``data_lines`` (lines after the
    header, bad ones included), ``rows`` (good rows yielded), ``bad`` (``BadRows``) and
    ``bytes_read``. Iterating again restarts from the beginning.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        hash_bins: int = DEFAULT_HASH_BINS,
        delimiter: str = "\t",
        header: bool = False,
        dense_values: str = "integer",
        max_bad_rows: int = 0,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        on_bytes: Callable[[int], None] | None = None,
    ):
        if len(delimiter) != 1 or delimiter in "\r\n" or ord(delimiter) > 127:
            raise ValueError(f"delimiter must be one ASCII character other than CR/LF, got {delimiter!r}")
        if dense_values not in DENSE_VALUES:
            raise ValueError(f"dense_values must be one of {DENSE_VALUES}, got {dense_values!r}")
        if not 2 <= hash_bins <= 2**31 - 1:
            raise ValueError(f"hash_bins must be in [2, 2**31 - 1] (int32 ids), got {hash_bins}")
        if max_bad_rows < 0 or block_bytes < 1:
            raise ValueError("max_bad_rows must be >= 0 and block_bytes >= 1")
        self.path = Path(path)
        self.hash_bins = int(hash_bins)
        self.delimiter = delimiter
        self.header = bool(header)
        self.dense_values = dense_values
        self.max_bad_rows = int(max_bad_rows)
        self.block_bytes = int(block_bytes)
        self.on_bytes = on_bytes
        self._reset()

    def options(self) -> dict:
        return {
            "delimiter": self.delimiter,
            "header": self.header,
            "dense_values": self.dense_values,
            "hash_bins": self.hash_bins,
            "max_bad_rows": self.max_bad_rows,
        }

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
        header_pending = self.header
        for data, end in line_blocks(
            self.path, self.block_bytes, MAX_LINE_BYTES, too_long=self._too_long, consumed=self._consumed
        ):
            start = 0
            if header_pending and end:
                start = self._check_header(data, end)
                header_pending = False
            if end > start:
                block = self._parse_block(data, start, end, terminated=data[end - 1] == 10)
                if len(block):
                    self.rows += len(block)
                    yield block
        if self.rows == 0:
            skipped = f" ({self.bad.total} bad rows skipped)" if self.bad.total else ""
            raise CriteoFormatError(f"{self.path}: no data rows{skipped}")

    def _too_long(self) -> CriteoFormatError:
        return CriteoFormatError(
            f"{self.path}:{self.lines + 1}: line longer than {MAX_LINE_BYTES} bytes; not a Criteo file?"
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
        self.lines += 1
        return end if nl < 0 else nl + 1

    def _parse_block(self, data: bytes, start: int, end: int, terminated: bool) -> CriteoBlock:
        """Parse the complete lines ``data[start:end]``; the last lacks its newline only at end of file."""
        first_line = self.lines + 1
        table, scan = read_csv_lines(self.path, data, start, end, terminated, first_line, COLUMNS, self.delimiter)
        self.lines += len(scan.ends)
        line_bad, good_lines = scan.line_bad, scan.good_lines

        n = table.num_rows
        first_bad_col = np.full(n, -1, np.int16)  # first failing column per row, -1 if none

        def mark(bad: np.ndarray, col: int) -> None:
            if bad.any():
                first_bad_col[bad & (first_bad_col < 0)] = col

        label, bad = _per_chunk(table.column(0), _parse_label)
        mark(bad, 0)
        columns: dict[str, np.ndarray] = {ROW_ID: good_lines.astype(np.int64), LABEL: label.astype(np.float32)}
        parse_dense = _parse_int if self.dense_values == "integer" else _parse_float
        for j, name in enumerate(DENSE, start=1):
            x, _missing, bad = _per_chunk(table.column(j), parse_dense)
            mark(bad, j)
            columns[name] = (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)
        for j, name in enumerate(CATEGORICAL, start=1 + len(DENSE)):
            ids, bad = _per_chunk(table.column(j), lambda chunk: _parse_categorical(chunk, self.hash_bins))
            mark(bad, j)
            columns[name] = ids.astype(np.int32, copy=False)

        block = CriteoBlock(columns)
        row_bad = first_bad_col >= 0
        if line_bad.any() or row_bad.any():
            value_rows = np.flatnonzero(row_bad)

            def value_problem(j: int, table: pa.Table = table) -> str:  # bound now: `table` is deleted below
                row = int(value_rows[j])
                col = int(first_bad_col[row])
                if col == 0:
                    problem = "is not 0 or 1"
                elif col <= len(DENSE):
                    problem = "is not an integer" if self.dense_values == "integer" else "is not a number"
                else:
                    problem = "is not 8 hex digits"
                return f"column {COLUMNS[col]}: {describe_value(table.column(col)[row].as_py())} {problem}"

            record_bad_rows(
                self.bad, self.path, first_line=first_line, line_bad=line_bad, n_delims=scan.delimiters(),
                stray_cr=scan.stray_cr, terminated=terminated, n_fields=N_FIELDS,
                value_lines=block.row_id[value_rows], value_kinds=_KIND_OF_COLUMN[first_bad_col[value_rows]],
                value_problem=value_problem, max_bad_rows=self.max_bad_rows, error=CriteoFormatError,
            )  # fmt: skip
            block = block.take(~row_bad)
        del table
        # mimalloc keeps freed Arrow pages for reuse; handing them back keeps the peak near one block's worth
        pa.default_memory_pool().release_unused()
        return block


def read_criteo(path: str | Path, **options) -> CriteoBlock:
    """Read a whole (small) Criteo file into one ``CriteoBlock``; options as ``CriteoReader``."""
    return CriteoBlock.concat(list(CriteoReader(path, **options)))


def count_lines(path: str | Path, block_bytes: int = 64 << 20, hasher=None) -> int:
    """Physical lines of a file: newlines, plus one for a last line without its newline.

    Optionally feeds every byte to ``hasher`` (a hashlib object) in the same pass.
    """
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(block_bytes):
            lines += chunk.count(b"\n")  # memchr-speed; faster than numpy's compare + count
            last = chunk[-1:]
            if hasher is not None:
                hasher.update(chunk)
    return lines + (last != b"\n")
