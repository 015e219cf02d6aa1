"""CSV files with a header line, read by column name in blocks of complete lines (bounded memory).

``HeadedCsvReader`` reads the header (``csv_header.header_columns``: a UTF-8 BOM and a CRLF line end tolerated,
every required column named exactly once), and yields ``CsvBlock``s: the block's rows as raw-bytes Arrow columns (only the wanted columns
the header has), placed on their physical lines by ``read_csv_lines``' line scan. Its caller parses the columns
vectorised and marks the values that fail (``CsvBlock.mark``); ``CsvBlock.settle`` then records the block's bad
rows (wrong field count, an open quote, a stray CR, the marked values) in line order under ``max_bad_rows`` and
returns the rows to keep. The column order of a file does not matter, and columns no one asked for are skipped.

A format's reader either iterates over a ``HeadedCsvReader`` (the KuaiRand files) or subclasses it and yields its own
blocks, ``parsed`` from the raw ones (AliExpress, Tenrec, TaobaoAd_x1; the last overrides ``_read_header`` to demand
its exact header).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa

from ctrbench.data.csv_header import header_columns
from ctrbench.data.reading import (
    DEFAULT_BLOCK_BYTES,
    MAX_LINE_BYTES,
    BadRows,
    CountsBytes,
    LineScan,
    describe_value,
    line_blocks,
    read_csv_lines,
    record_bad_rows,
)

T = TypeVar("T")


@dataclass
class CsvBlock:
    """The rows of one block: ``table`` (raw bytes, by column name), ``lines`` (the physical line of each row)."""

    reader: HeadedCsvReader
    table: pa.Table
    scan: LineScan
    first_line: int
    terminated: bool
    first_bad: np.ndarray = field(init=False)  # per row: header index of its first bad value, -1 if none
    kind: np.ndarray = field(init=False)  # per row: the bad-row kind of that value
    problem: np.ndarray = field(init=False)  # per row: index into problems, what that value is not
    problems: list[str | Callable[[object], str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.first_bad = np.full(self.table.num_rows, -1, np.int16)
        self.kind = np.zeros(self.table.num_rows, np.int8)
        self.problem = np.zeros(self.table.num_rows, np.int16)

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def lines(self) -> np.ndarray:
        return self.scan.good_lines

    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)

    def mark(self, name: str, bad: np.ndarray, kind: int, problem: str | Callable[[object], str]) -> None:
        """Rows whose ``name`` value is bad (``kind``: index into the reader's bad-row kinds; ``problem``: what the
        value is not, e.g. "is not an integer", or a function of the value that says it). A row reports the first
        column marked bad in it: mark the columns in the order they should be reported (e.g. header order)."""
        if bad.any():
            first = bad & (self.first_bad < 0)
            self.first_bad[first] = self.reader.header.index(name)
            self.kind[first] = kind
            self.problem[first] = len(self.problems)
            self.problems.append(problem)

    def settle(self, bad_rows: BadRows, max_bad_rows: int, error: Callable[[str], Exception]) -> np.ndarray:
        """Record this block's bad rows; the bool mask of the rows to keep (or raise ``error``). The kept rows are
        counted in the reader's ``rows``."""
        row_bad = self.first_bad >= 0
        self.reader.rows += len(row_bad) - int(row_bad.sum())
        if not self.scan.line_bad.any() and not row_bad.any():
            return ~row_bad
        value_rows = np.flatnonzero(row_bad)
        header = self.reader.header

        def value_problem(j: int) -> str:
            row, col = int(value_rows[j]), int(self.first_bad[value_rows[j]])
            value = self.table.column(header[col])[row].as_py()
            problem = self.problems[self.problem[row]]
            return f"column {header[col]}: {describe_value(value)} {problem(value) if callable(problem) else problem}"

        reader = self.reader
        record_bad_rows(
            bad_rows, reader.path, first_line=self.first_line, line_bad=self.scan.line_bad,
            line_text=self.scan.line_text, stray_cr=self.scan.stray_cr, terminated=self.terminated,
            n_fields=len(header), delimiter=reader.delimiter, value_lines=self.lines[value_rows], value_kinds=self.kind[value_rows],
            value_problem=value_problem, max_bad_rows=max_bad_rows, error=error, odd_quote=self.scan.odd_quote,
            quote_char=reader.quote_char,
        )  # fmt: skip
        return ~row_bad


class HeadedCsvReader(CountsBytes):
    """Iterate over a CSV with a header line as ``CsvBlock``s.

    ``wanted``: the columns to read (those the header lacks are left out, unless ``required``); ``error`` builds
    the exception raised for an unusable file: empty, a bad header, a line too long, or, with ``require_rows``, no
    row kept (``CsvBlock.settle``) once the file is read. ``layout`` names the layout in those messages. After
    iteration: ``header``, ``lines`` (physical, header included), ``data_lines``, ``rows`` (the rows ``settle`` kept),
    ``bytes_read``. ``hasher`` is fed every byte read, ``on_bytes`` the byte count of every block.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        wanted: Sequence[str],
        required: Sequence[str],
        error: Callable[[str], Exception] = ValueError,
        layout: str = "expected",
        delimiter: str = ",",
        quote_char: str | None = None,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        hasher=None,
        on_bytes: Callable[[int], None] | None = None,
        require_rows: bool = False,
    ):
        self.path = Path(path)
        self.wanted, self.required = list(wanted), list(required)
        self.error, self.layout = error, layout
        self.delimiter, self.quote_char = delimiter, quote_char
        self.block_bytes = int(block_bytes)
        self.hasher, self.on_bytes = hasher, on_bytes
        self.require_rows = require_rows
        self.header: list[str] = []
        self.lines = self.rows = self.bytes_read = 0

    @property
    def data_lines(self) -> int:
        return max(self.lines - 1, 0)

    @property
    def present(self) -> list[str]:
        """The wanted columns the header has (the columns of every block's table)."""
        return [name for name in self.wanted if name in self.header]

    @property
    def extra_columns(self) -> list[str]:
        """The header's columns that are not read."""
        return [name for name in self.header if name not in self.wanted]

    def _read_header(self, line: bytes) -> None:
        """Set ``header`` from the header ``line`` (line end excluded), or raise ``error``."""
        if self.delimiter != ",":
            raise ValueError("csv_header reads comma-separated headers only")
        if self.quote_char:  # a writer that quotes every string quotes the names too
            line = line.replace(self.quote_char.encode(), b"")
        self.header = header_columns(self.path, line, self.required, layout=self.layout, error=self.error)

    def __iter__(self) -> Iterator[CsvBlock]:
        return self.blocks()

    def blocks(self) -> Iterator[CsvBlock]:
        """The file's ``CsvBlock``s, in order (what iterating yields; a subclass parses them into its own blocks)."""
        self.header, self.lines, self.rows, self.bytes_read = [], 0, 0, 0
        for data, end in line_blocks(
            self.path, self.block_bytes, MAX_LINE_BYTES, too_long=self._too_long, consumed=self._consumed,
            hasher=self.hasher,
        ):  # fmt: skip
            start = 0
            if not self.header and end:
                newline = data.find(b"\n", 0, end)
                self._read_header(bytes(data[: end if newline < 0 else newline]))
                self.lines = 1
                start = end if newline < 0 else newline + 1
            if end > start:
                yield self._block(data, start, end)  # not held here: the raw table goes once the caller is done
        if not self.header:
            raise self.error(f"{self.path}: empty file; expected a header line naming the {self.layout} columns")
        if self.require_rows and not self.rows:
            raise self.error(f"{self.path}: no data rows ({self.data_lines} lines, all bad or none)")

    def parsed(self, parse: Callable[[CsvBlock], T]) -> Iterator[T]:
        """``parse`` of every block, the empty results left out. Each raw block is let go (and Arrow's unused memory
        released) before its result is yielded: memory holds one block's raw columns at a time."""
        for raw in self.blocks():
            block = parse(raw)
            del raw
            pa.default_memory_pool().release_unused()
            if len(block):
                yield block

    def _block(self, data: bytearray, start: int, end: int) -> CsvBlock:
        """The complete lines ``data[start:end]`` (the last lacks its newline only at the end of the file)."""
        terminated = data[end - 1] == 10
        table, scan = read_csv_lines(
            self.path, data, start, end, terminated, self.lines + 1, self.header, self.delimiter,
            quote_char=self.quote_char, include_columns=self.present,
        )  # fmt: skip
        block = CsvBlock(self, table, scan, self.lines + 1, terminated)
        self.lines += len(scan.ends)
        return block

    def _too_long(self) -> Exception:
        return self.error(f"{self.path}:{self.lines + 1}: line longer than {MAX_LINE_BYTES} bytes; not a CSV file?")


__all__ = ["CsvBlock", "HeadedCsvReader"]
