"""Tianchi / Taobao ``UserBehavior.csv``: the raw layout and a streaming reader.

Raw layout: one event per line, no header, 5 comma-separated integer-or-token fields
``user_id, item_id, category_id, behavior_type, timestamp``; the behaviour is one of ``pv``,
``cart``, ``fav``, ``buy`` and the timestamp is in unix seconds. The public file has 100M lines
(3.5 GB), grouped by user, but nothing here relies on any ordering of the lines.

Reading (``UserBehaviorReader``) is pure numpy over byte blocks cut at the last newline: line
boundaries and commas are found with one comparison each, the five fields of every well-formed
line are sliced out by index arithmetic, integers are decoded by a Horner loop over byte columns
(one n-byte gather per digit position) and behaviour tokens by packing their bytes into a uint32.
Every row keeps its exact 1-based physical line number (no CSV parser in between that could treat
a stray CR or an empty line differently). Bad rows are of four kinds (``BAD_ROW_KINDS``); with
``max_bad_rows=0`` the first raises ``UserBehaviorFormatError`` naming ``file:line``, column and
value, otherwise they are skipped and counted until more than ``max_bad_rows`` were seen.

The events of a block travel as a ``UserBehaviorBlock`` (numpy columns, one per field, and the
line number); ``BUCKET_SCHEMA`` is its arrow form, the layout of preprocessing's user buckets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import as_strided

from ctrbench.data.formats.taobao_userbehavior.options import DEFAULTS
from ctrbench.data.reading import (
    DEFAULT_BLOCK_BYTES,
    MAX_LINE_BYTES,
    BadRows,
    CountsBytes,
    describe_value,
    line_blocks,
    record_bad_rows,
)

COLUMNS = ["user_id", "item_id", "category_id", "behavior_type", "timestamp"]
N_FIELDS = len(COLUMNS)
BEHAVIORS = ("pv", "cart", "fav", "buy")  # behaviour code = index in this tuple
BAD_ROW_KINDS = ("field_count", "bad_id", "bad_behavior", "bad_timestamp")
_KIND_OF_COLUMN = np.array([1, 1, 1, 2, 3], np.int8)  # column -> index into BAD_ROW_KINDS
_MAX_DIGITS = 19  # 19 decimal digits fit uint64 during decoding; int64 range checked after
_INT64_MAX = np.uint64(2**63 - 1)

# behaviour token -> little-endian uint32 of its bytes, zero-padded to 4
_TOKEN_KEYS = np.array([int.from_bytes(b.encode().ljust(4, b"\0"), "little") for b in BEHAVIORS], np.uint32)


class UserBehaviorFormatError(ValueError):
    """A UserBehavior file that does not parse; the message names file, line, column and value."""


@dataclass
class UserBehaviorBlock:
    """The good events of one block in file order: ``line`` (1-based physical line, int64), raw
    ``user``/``item``/``category`` ids and ``timestamp`` (int64), ``behavior`` (int8 code into
    ``BEHAVIORS``)."""

    line: np.ndarray
    user: np.ndarray
    item: np.ndarray
    category: np.ndarray
    behavior: np.ndarray
    timestamp: np.ndarray

    FIELDS = ("line", "user", "item", "category", "behavior", "timestamp")

    def __len__(self) -> int:
        return len(self.line)

    def take(self, index) -> UserBehaviorBlock:
        return UserBehaviorBlock(*(getattr(self, k)[index] for k in self.FIELDS))

    def to_arrow(self) -> pa.Table:
        return pa.table({k: getattr(self, k) for k in self.FIELDS}, schema=BUCKET_SCHEMA)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> UserBehaviorBlock:
        return cls(*(table.column(k).to_numpy() for k in cls.FIELDS))

    @classmethod
    def concat(cls, blocks: list[UserBehaviorBlock]) -> UserBehaviorBlock:
        if not blocks:
            return cls.from_arrow(BUCKET_SCHEMA.empty_table())
        return cls(*(np.concatenate([getattr(b, k) for b in blocks]) for k in cls.FIELDS))


BUCKET_SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("user", pa.int64()),
        ("item", pa.int64()),
        ("category", pa.int64()),
        ("behavior", pa.int8()),
        ("timestamp", pa.int64()),
    ]
)


def _windows(padded: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """[n, width] bytes starting at each offset (one gather, no per-row Python)."""
    view = as_strided(padded, shape=(len(padded) - width + 1, width), strides=(1, 1))
    return view[starts]


def _parse_int(padded: np.ndarray, starts: np.ndarray, lens: np.ndarray, signed: bool):
    """Decimal integers (optional ``-`` when ``signed``) fitting int64 -> (int64 values, bad).

    Horner over the byte columns, one gather of n bytes per column: memory stays O(n), not
    O(n * width).
    """
    n = len(starts)
    neg = (padded[starts] == ord("-")) if signed else np.zeros(n, bool)
    first = starts + neg  # first digit
    n_digits = lens - neg
    ok = (n_digits >= 1) & (n_digits <= _MAX_DIGITS)
    values = np.zeros(n, np.uint64)
    for j in range(int(min(n_digits.max(initial=0), _MAX_DIGITS + 1))):  # the tail padding covers j <= 20
        digit = padded[first + j] - np.uint8(ord("0"))  # non-digits wrap to >= 10
        inside = j < n_digits
        ok &= ~inside | (digit < 10)
        values = np.where(inside, values * np.uint64(10) + digit, values)  # uint64 wraps; only <= 19 digits kept
    ok &= values <= _INT64_MAX
    values = np.where(ok, values, 0).astype(np.int64)
    return np.where(neg, -values, values), ~ok


def _parse_behavior(padded: np.ndarray, starts: np.ndarray, lens: np.ndarray):
    """pv / cart / fav / buy -> (int8 code, bad): the (up to) 4 bytes packed into one uint32."""
    if len(starts) == 0:
        return np.zeros(0, np.int8), np.zeros(0, bool)
    b = _windows(padded, starts, 4)
    b = np.where(np.arange(4) < lens[:, None], b, 0).astype(np.uint8)
    key = np.ascontiguousarray(b).view("<u4").ravel()
    match = key[:, None] == _TOKEN_KEYS[None, :]
    bad = ~match.any(axis=1) | (lens > 4)
    return match.argmax(axis=1).astype(np.int8), bad


class UserBehaviorReader(CountsBytes):
    """Iterate over a UserBehavior CSV as ``UserBehaviorBlock``s with bounded memory.

    After iteration: ``lines`` (physical lines), ``rows`` (good events yielded), ``bad``
    (``BadRows``) and ``bytes_read``. Iterating again restarts from the beginning. ``hasher`` (a
    hashlib object or ``BackgroundHasher``) is fed every byte read, ``on_bytes`` the byte count of every block.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bad_rows: int = DEFAULTS["max_bad_rows"],
        block_bytes: int = DEFAULT_BLOCK_BYTES,
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
        self.lines = 0
        self.rows = 0
        self.bytes_read = 0
        self.bad = BadRows.of(BAD_ROW_KINDS)

    @property
    def data_lines(self) -> int:
        return self.lines  # no header

    def __iter__(self) -> Iterator[UserBehaviorBlock]:
        self._reset()
        for data, end in line_blocks(
            self.path,
            self.block_bytes,
            MAX_LINE_BYTES,
            too_long=self._too_long,
            consumed=self._consumed,
            hasher=self.hasher,
        ):
            if end:
                block = self._parse_block(data, end, terminated=data[end - 1] == 10)
                if len(block):
                    self.rows += len(block)
                    yield block
        if self.rows == 0:
            skipped = f" ({self.bad.total} bad rows skipped)" if self.bad.total else ""
            raise UserBehaviorFormatError(f"{self.path}: no data rows{skipped}")

    def _too_long(self) -> UserBehaviorFormatError:
        return UserBehaviorFormatError(
            f"{self.path}:{self.lines + 1}: line longer than {MAX_LINE_BYTES} bytes; not a UserBehavior file?"
        )

    def _parse_block(self, data: bytes, end: int, terminated: bool) -> UserBehaviorBlock:
        """Parse the complete lines ``data[:end]``; the last lacks its newline only at end of file."""
        first_line = self.lines + 1
        raw = np.frombuffer(data, np.uint8, count=end)
        ends = np.flatnonzero(raw == 10)
        if not terminated:
            ends = np.append(ends, end)
        n_lines = len(ends)
        self.lines += n_lines
        starts = np.empty(n_lines, np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        stops = ends - ((ends > starts) & (raw[np.maximum(ends - 1, 0)] == 13))  # CRLF: drop the CR
        commas = np.flatnonzero(raw == ord(","))
        through = np.searchsorted(commas, ends)  # commas before each line's end
        n_commas = np.diff(through, prepend=0)
        count_ok = n_commas == N_FIELDS - 1
        good = np.flatnonzero(count_ok)
        offset = np.int32 if end < 2**31 - 64 else np.int64
        # [g, 5] start and length of each field of the well-formed lines (column by column: no
        # [g, 4] int64 temporaries)
        last = through[good] - 1  # index of each good line's last comma
        f_start = np.empty((len(good), N_FIELDS), offset)
        f_len = np.empty((len(good), N_FIELDS), offset)
        f_start[:, 0] = starts[good]
        for k in range(N_FIELDS - 1):
            comma = commas[last - (N_FIELDS - 2 - k)]
            f_len[:, k] = comma - f_start[:, k]
            f_start[:, k + 1] = comma + 1
        f_len[:, -1] = stops[good] - f_start[:, -1]
        del commas, through, starts, stops, last, comma
        padded = np.zeros(end + 24, np.uint8)  # reads may run past a field: pad the tail
        padded[:end] = raw

        g = len(good)
        first_bad_col = np.full(g, -1, np.int8)

        def mark(bad: np.ndarray, col: int) -> None:
            if bad.any():
                first_bad_col[bad & (first_bad_col < 0)] = col

        ids = []
        for col in range(3):
            values, bad = _parse_int(padded, f_start[:, col], f_len[:, col], signed=False)
            mark(bad, col)
            ids.append(values)
        behavior, bad = _parse_behavior(padded, f_start[:, 3], f_len[:, 3])
        mark(bad, 3)
        timestamp, bad = _parse_int(padded, f_start[:, 4], f_len[:, 4], signed=True)
        mark(bad, 4)
        block = UserBehaviorBlock((first_line + good).astype(np.int64), ids[0], ids[1], ids[2], behavior, timestamp)
        row_bad = first_bad_col >= 0
        if not count_ok.all() or row_bad.any():
            value_rows = np.flatnonzero(row_bad)

            def value_problem(j: int) -> str:
                row = int(value_rows[j])
                col = int(first_bad_col[row])
                value = data[int(f_start[row, col]) : int(f_start[row, col] + f_len[row, col])]
                problem = {
                    3: f"is not one of {', '.join(BEHAVIORS)}",
                    4: "is not an integer (unix seconds) that fits int64",
                }.get(col, "is not a non-negative integer that fits int64")
                return f"column {COLUMNS[col]}: {describe_value(value)} {problem}"

            record_bad_rows(
                self.bad, self.path, first_line=first_line, line_bad=~count_ok, stray_cr=None,
                line_text=lambda k: data[int(ends[k - 1]) + 1 if k else 0 : int(ends[k])],
                terminated=terminated, n_fields=N_FIELDS, delimiter=",", value_lines=block.line[value_rows],
                value_kinds=_KIND_OF_COLUMN[first_bad_col[value_rows]], value_problem=value_problem,
                max_bad_rows=self.max_bad_rows, error=UserBehaviorFormatError,
            )  # fmt: skip
            block = block.take(~row_bad)
        return block


def read_userbehavior(path: str | Path, **options) -> UserBehaviorBlock:
    """Read a whole (small) UserBehavior file into one block; options as ``UserBehaviorReader``."""
    return UserBehaviorBlock.concat(list(UserBehaviorReader(path, **options)))


__all__ = [
    "BAD_ROW_KINDS",
    "BEHAVIORS",
    "BUCKET_SCHEMA",
    "COLUMNS",
    "N_FIELDS",
    "UserBehaviorBlock",
    "UserBehaviorFormatError",
    "UserBehaviorReader",
    "read_userbehavior",
]
