"""Pieces shared by the streaming raw-file readers (Criteo, TaobaoAd, UserBehavior).

- ``BadRows``: the skipped rows of a read, counted by kind, and the ``max_bad_rows`` budget;
  ``record_bad_rows``, one block's malformed lines and bad values put in line order and recorded;
- ``line_blocks``: a file read in byte blocks cut at the last newline (bounded memory), and
  ``CountsBytes``, the byte accounting a reader does around it;
- ``read_csv_lines``: one block's lines scanned in numpy and read by ``pyarrow.csv`` as raw bytes;
- ``describe_value``: a raw field value as it is quoted in error messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

MAX_EXAMPLES = 10  # bad-row messages kept for the manifest
DEFAULT_BLOCK_BYTES = 32 << 20  # bytes read at a time: a speed knob, not part of any output
# Raw CSV lines of every format are far shorter; a longer run without a newline means the file is not in the
# expected layout, and buffering it would break the memory bound.
MAX_LINE_BYTES = 1 << 20


@dataclass
class BadRows:
    """Skipped rows, counted by kind, with the first few messages for the manifest.

    The keys of ``counts`` are the kinds, in order: ``record`` takes kinds as indices into them.
    """

    counts: dict[str, int]
    examples: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, kinds: Iterable[str]) -> BadRows:
        """No bad rows yet, of the given kinds."""
        return cls(dict.fromkeys(kinds, 0))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def record(
        self,
        kinds: np.ndarray,
        message: Callable[[int], str],
        max_bad_rows: int,
        error: Callable[[str], Exception],
    ) -> None:
        """Count one block's bad rows, in line order; raise ``error`` once more than ``max_bad_rows``.

        ``kinds[i]`` is the kind (index into ``counts``) of the block's i-th bad row and
        ``message(i)`` its message. The rows up to the one that broke the limit are counted, and
        the error names that row (with a summary of the counts when ``max_bad_rows`` > 0).
        """
        names = list(self.counts)
        budget = max_bad_rows - self.total  # bad rows still allowed
        over = len(kinds) > budget
        counted = kinds[: budget + 1] if over else kinds  # up to the row that broke the limit
        for i, n in enumerate(np.bincount(counted, minlength=len(names))):
            self.counts[names[i]] += int(n)
        if over:
            text = message(budget)
            if max_bad_rows:
                summary = ", ".join(f"{k}={v}" for k, v in self.counts.items() if v)
                text += f" (more than max_bad_rows={max_bad_rows} bad rows: {summary})"
            raise error(text)
        for i in range(min(len(kinds), MAX_EXAMPLES - len(self.examples))):
            self.examples.append(message(i))


DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", " ": "space"}


def _separated(delimiter: str) -> str:
    return f"{DELIMITER_NAMES.get(delimiter, repr(delimiter))}-separated"


def _unquoted(text: bytes, quote_char: str | None) -> bytes:
    """``text`` without its quoted parts (for counting the delimiters that separate fields; one line only)."""
    return text if quote_char is None else b"".join(text.split(quote_char.encode())[::2])


def field_count_problem(
    text: bytes, n_fields: int, delimiter: str, delimiter_option: str | None, quote_char: str | None = None
) -> str:
    """What is wrong with a line (without its line end) that does not have ``n_fields`` fields.

    When another common delimiter splits it into exactly ``n_fields`` fields, the file is most
    likely in another layout, and the message says so (and names ``delimiter_option``, the
    setting that changes the delimiter, if the reader has one). Delimiters inside ``quote_char`` quotes are not
    counted.
    """
    if not text:
        return "empty line"
    text = _unquoted(text, quote_char)
    problem = f"expected {n_fields} {_separated(delimiter)} fields, found {text.count(delimiter.encode()) + 1}"
    for other in DELIMITER_NAMES:
        if other != delimiter and text.count(other.encode()) == n_fields - 1:
            fix = f" set {delimiter_option}" if delimiter_option else ""
            return f"{problem} (the line has {n_fields - 1} {other!r}: a {_separated(other)} file?{fix})"
    return problem


def record_bad_rows(
    bad: BadRows,
    path: Path,
    *,
    first_line: int,
    line_bad: np.ndarray,
    line_text: Callable[[int], bytes],
    stray_cr: np.ndarray | None,
    terminated: bool,
    n_fields: int,
    delimiter: str,
    delimiter_option: str | None = None,
    value_lines: np.ndarray,
    value_kinds: np.ndarray,
    value_problem: Callable[[int], str],
    max_bad_rows: int,
    error: Callable[[str], Exception],
    odd_quote: np.ndarray | None = None,
    quote_char: str | None = None,
) -> None:
    """Record one block's bad rows in line order (``BadRows.record``).

    Malformed lines (``line_bad``, per line of the block from ``first_line``: wrong field count,
    empty, a stray CR, or a quote left open, ``odd_quote``) are of kind 0 (``field_count``); ``line_text(k)`` is the k-th line's
    bytes, line end excluded (only called for the lines a message is written for). The rows whose
    values failed are at physical lines ``value_lines``, of kinds ``value_kinds``, and
    ``value_problem(j)`` describes the j-th (``column X: 'value' is not ...``).
    """
    bad_lines = np.flatnonzero(line_bad)
    lines = np.concatenate([first_line + bad_lines, value_lines])
    order = np.argsort(lines, kind="stable")
    lines = lines[order]
    kinds = np.concatenate([np.zeros(len(bad_lines), np.int8), value_kinds.astype(np.int8, copy=False)])[order]
    is_value = np.concatenate([np.zeros(len(bad_lines), bool), np.ones(len(value_lines), bool)])[order]
    source = np.concatenate([bad_lines, np.arange(len(value_lines))])[order]  # line index or value-row index

    def message(i: int) -> str:
        line, k = int(lines[i]), int(source[i])
        if is_value[i]:
            return f"{path}:{line}: {value_problem(k)}"
        if stray_cr is not None and stray_cr[k]:
            return f"{path}:{line}: carriage return inside the line"
        if odd_quote is not None and odd_quote[k]:
            return f"{path}:{line}: a {quote_char} quote opened and not closed on the line"
        last = k == len(line_bad) - 1 and not terminated
        hint = " (last line has no newline: truncated file?)" if last else ""
        text = line_text(k)
        text = text[:-1] if text.endswith(b"\r") else text  # CRLF line end
        problem = field_count_problem(text, n_fields, delimiter, delimiter_option, quote_char)
        return f"{path}:{line}: {problem}{hint}"

    bad.record(kinds, message, max_bad_rows, error)


class CountsBytes:
    """Reader mixin: ``bytes_read`` and the ``on_bytes`` callback, fed as ``line_blocks``' ``consumed``."""

    bytes_read: int
    on_bytes: Callable[[int], None] | None

    def _consumed(self, n_bytes: int) -> None:
        self.bytes_read += n_bytes
        if self.on_bytes is not None and n_bytes:
            self.on_bytes(n_bytes)


def line_blocks(
    path: Path,
    block_bytes: int,
    max_line_bytes: int,
    *,
    too_long: Callable[[], Exception],
    consumed: Callable[[int], None],
    hasher=None,
) -> Iterator[tuple[bytearray, int]]:
    """Yield ``(data, end)`` per block of the file: ``data[:end]`` holds complete lines.

    The last line of ``data[:end]`` lacks its newline only at the end of the file; the bytes after
    ``end`` are carried into the next block. The last pair (end of file) may have ``end == 0``.
    After the consumer is done with a block, ``consumed`` gets the number of bytes it used up.
    ``hasher`` (a hashlib object) is fed every byte read. A run of more than
    ``max(max_line_bytes, block_bytes)`` bytes without a newline raises ``too_long()``.
    """
    pending = b""
    with open(path, "rb") as handle:
        while True:
            # read in behind the carried-over bytes: no second block-sized copy (and its fresh pages)
            data = bytearray(len(pending) + block_bytes)
            data[: len(pending)] = pending
            with memoryview(data) as view, view[len(pending) :] as free:
                n = handle.readinto(free)
            eof = not n
            if len(pending) + n < len(data):
                del data[len(pending) + n :]
            if hasher is not None and n:
                hasher.update(memoryview(data)[len(pending) :])
            if eof:
                end, pending = len(data), b""
            else:
                end = data.rfind(b"\n") + 1
                if end == 0:  # no complete line yet: keep reading (tiny blocks, long lines)
                    if len(data) > max(max_line_bytes, block_bytes):
                        raise too_long()
                    pending = data
                    continue
                pending = data[end:]
            yield data, end
            consumed(len(data) - len(pending))
            if eof:
                break


@dataclass
class LineScan:
    """Where a block's lines are and which are bad before any value is parsed (``read_csv_lines``).

    ``ends``: end offset of every line in ``raw`` (the block's bytes); ``line_bad``: per line,
    empty, holding a stray CR, a quote left open (``odd_quote``, quoted files) or (when Arrow skipped lines) with the
    wrong field count; ``good_lines``: physical line number of each row Arrow read.
    """

    raw: np.ndarray
    ends: np.ndarray
    line_bad: np.ndarray
    stray_cr: np.ndarray
    good_lines: np.ndarray
    delimiter: int
    n_delims: np.ndarray | None = None
    quote: int | None = None  # the quote byte of a quoted file: delimiters inside quotes separate no field
    odd_quote: np.ndarray | None = None

    def line_text(self, k: int) -> bytes:
        """The k-th line's bytes without its newline (a stray CR shows as the byte that replaced it)."""
        return self.raw[int(self.ends[k - 1]) + 1 if k else 0 : int(self.ends[k])].tobytes()

    def delimiters(self) -> np.ndarray:
        """Delimiters per line outside quotes (counted on first use: ~2x the block in temporaries)."""
        if self.n_delims is None:
            delims = np.flatnonzero(self.raw == self.delimiter)
            if self.quote is not None:
                # outside quotes: an even number of quotes between the line's start and the delimiter
                quotes = np.flatnonzero(self.raw == self.quote)
                starts = np.concatenate([[0], self.ends[:-1] + 1])
                line_start = starts[np.searchsorted(self.ends, delims)]
                inside = (np.searchsorted(quotes, delims) - np.searchsorted(quotes, line_start)) % 2 == 1
                delims = delims[~inside]
            self.n_delims = np.diff(np.searchsorted(delims, self.ends), prepend=0)
        return self.n_delims


def find_bytes(raw: np.ndarray, value: int, step: int = 1 << 20) -> np.ndarray:
    """Offsets of ``value`` in ``raw``, a slice at a time: a block-sized bool temporary would be
    fresh memory for every block, and the kernel's zeroing of its pages cost as much as the compare."""
    if len(raw) <= step:
        return np.flatnonzero(raw == value)
    return np.concatenate([np.flatnonzero(raw[i : i + step] == value) + i for i in range(0, len(raw), step)])


def read_csv_lines(
    path: Path,
    data: bytes,
    start: int,
    end: int,
    terminated: bool,
    first_line: int,
    columns: list[str],
    delimiter: str,
    *,
    quote_char: str | None = None,
    include_columns: list[str] | None = None,
) -> tuple[pa.Table, LineScan]:
    """Read the complete lines ``data[start:end]`` with every column as raw bytes, quoting off unless ``quote_char``.

    The last line lacks its newline only when ``terminated`` is false (end of file);
    ``first_line`` is the physical number of the first. Returns Arrow's table of the lines with
    ``len(columns)`` fields (the others are skipped), only ``include_columns`` if given, and the ``LineScan`` that
    places its rows. With ``quote_char``, quoted fields may hold the delimiter (``"12,54"``); a line with an odd number
    of quotes is bad (a quote left open would run into the next line), and nothing else may span lines.
    """
    raw = np.frombuffer(data, np.uint8, count=end - start, offset=start)
    body = pa.py_buffer(data).slice(start, end - start)  # zero-copy view for Arrow
    ends = find_bytes(raw, 10)
    if not terminated:
        ends = np.append(ends, len(raw))
    n_lines = len(ends)
    starts = np.concatenate([[0], ends[:-1] + 1])
    length = ends - starts
    # Arrow silently drops empty lines (ignore_empty_lines, see below); they are field_count errors
    empty = (length == 0) | ((length == 1) & (raw[np.minimum(starts, len(raw) - 1)] == 13))
    delim = ord(delimiter)
    stray_cr = np.zeros(n_lines, bool)
    if data.find(b"\r", start, end) >= 0:
        # Arrow ends a line at a lone CR, numpy only at LF: a CR inside a line would split it in
        # two for Arrow and shift every later row. Such lines are bad.
        cr = np.flatnonzero(raw == 13)
        cr = cr[(cr + 1 < len(raw)) & (raw[np.minimum(cr + 1, len(raw) - 1)] != 10)]
        cr = cr[~empty[np.searchsorted(ends, cr)]]
        stray_cr[np.searchsorted(ends, cr)] = True
    odd_quote = np.zeros(n_lines, bool)
    if quote_char is not None and data.find(quote_char.encode(), start, end) >= 0:
        # a quote left open would make Arrow read on into the next line: such lines are bad
        quotes_per_line = np.bincount(np.searchsorted(ends, find_bytes(raw, ord(quote_char))), minlength=n_lines)
        odd_quote = quotes_per_line % 2 == 1
    if (stray_cr | odd_quote).any():
        # the bad lines are overwritten with a non-delimiter byte: one-field lines that Arrow skips as wrong-count rows
        edges = np.zeros(len(raw) + 1, np.int32)
        np.add.at(edges, starts[stray_cr | odd_quote], 1)
        np.add.at(edges, ends[stray_cr | odd_quote], -1)
        raw = raw.copy()
        raw[np.cumsum(edges[:-1]) > 0] = ord("x") if delim != ord("x") else ord("y")
        body = pa.py_buffer(raw)

    n_skipped = 0

    def skip(_row) -> str:
        nonlocal n_skipped
        n_skipped += 1
        return "skip"

    table = pa_csv.read_csv(
        pa.BufferReader(body),
        read_options=pa_csv.ReadOptions(
            column_names=columns,
            use_threads=True,
            block_size=max(1 << 20, (end - start) // 4),  # a few chunks: parallel, little per-chunk overhead
        ),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter,
            quote_char=quote_char or False,
            escape_char=False,
            # Arrow reads an empty line as a row of empty fields, not as an invalid row, so it
            # must drop them for its rows to stay aligned with the well-formed lines.
            ignore_empty_lines=True,
            invalid_row_handler=skip,
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types={c: pa.binary() for c in columns},  # raw bytes: no UTF-8 check, no inference
            strings_can_be_null=False,
            include_columns=include_columns,
        ),
    )
    del body
    quote = ord(quote_char) if quote_char is not None else None
    scan = LineScan(
        raw,
        ends,
        empty | stray_cr | odd_quote,
        stray_cr,
        np.empty(0, np.int64),
        delim,
        quote=quote,
        odd_quote=odd_quote,
    )
    if n_skipped:
        # only now count delimiters per line: which lines did Arrow skip? (vectorised, but it
        # costs ~2x the block in temporaries, so the clean common case avoids it)
        scan.line_bad |= scan.delimiters() != len(columns) - 1
    scan.good_lines = first_line + np.flatnonzero(~scan.line_bad)
    if table.num_rows != len(scan.good_lines):
        raise RuntimeError(
            f"{path}: lines {first_line}-{first_line + n_lines - 1}: Arrow read {table.num_rows} rows "
            f"where the line scan found {len(scan.good_lines)} well-formed lines"
        )
    return table, scan


def describe_value(value: bytes) -> str:
    """A raw field value for an error message: quoted, cut at 40 characters."""
    text = value.decode("utf-8", errors="replace")
    return repr(text if len(text) <= 40 else text[:40] + "...")
