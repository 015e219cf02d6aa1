"""Tianchi / Taobao ``UserBehavior.csv``: a streaming reader and the CTR-sample builder on top of it.

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

Preprocessing (``preprocess_userbehavior``) turns events into CTR samples with behaviour
histories, with memory bounded by the block size, one user bucket and the vocabularies:

1. pass 1 streams the file, validates it, drops events outside ``time_range`` (counted as
   ``out_of_range``), then, with ``user_fraction < 1``, the events of users outside the user
   subsample (counted as ``user_sampled_out``), appends the rest to
   ``N = ceil(file size * user_fraction / bucket_bytes)`` bucket parquet files by
   ``user_id % N`` in a temporary folder beside the outputs, and accumulates the distinct users,
   the per-(item, category) event counts and the time span (each block reduced with a sort,
   merged with the running result now and then);
2. pass 2 loads one bucket at a time, sorts it by (user, timestamp, line) and builds, for every
   target event, the user's history events strictly before the target's timestamp (same-second
   events excluded) -- the most recent ``max_len``, right-aligned, left-padded with 0 -- through
   cumsum / running-max index arithmetic and an ``[n, max_len]`` gather, in chunks of targets;
   each positive gets ``negatives`` sampled items with their real categories.

The user subsample keeps a user iff a splitmix64 hash of ``(seed, raw user id)``, read as a number
in [0, 1), is below ``user_fraction``: a pure function of the id, so the kept users depend neither
on the file order, the block size nor the bucket count, and a kept user keeps all its events
(complete histories). Everything after the filter (ids, item popularity and categories, time span,
samples) is exactly what preprocessing a file holding only the kept users' lines would give, with
the original line numbers; ``user_fraction=1`` skips the filter and gives the same bytes as before
the option existed.

Rows are written bucket by bucket, in source line order within a bucket (a positive, then its
negatives), so a file small enough for one bucket comes out in line order, as Criteo's does.
Sampling is keyed by a counter-based hash of ``(seed, source line, k, attempt)``, so the samples
depend neither on ``block_bytes`` nor on the bucket count: the output bytes do not depend on
``block_bytes`` at all, and another bucket count only reorders the same rows.

On 1M synthetic events (2 shared cores) this takes 3.6-5.5 s at ~470 MiB peak RSS; most of the time goes
into encoding the two 50-id histories of every output row into parquet.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.lib.stride_tricks import as_strided
from tqdm import tqdm

from ctrbench.data.formats.taobao_userbehavior.options import DEFAULTS, OPTIONS
from ctrbench.data.manifest import DataManifest, RowCounts, SplitSummary, SplitTimes
from ctrbench.data.outputs import COMPRESSION, OUTPUT_FILES, StagedOutputs, output_paths
from ctrbench.data.raw_input import input_file, input_hasher
from ctrbench.data.reading import (
    DEFAULT_BLOCK_BYTES,
    MAX_LINE_BYTES,
    BadRows,
    CountsBytes,
    describe_value,
    line_blocks,
    record_bad_rows,
)
from ctrbench.data.schema import DEFAULT_SEQUENCE_GROUP, ROW_ID, Feature, FeatureMap, SequenceGroup, Task
from ctrbench.data.splits import SPLITS, check_split_files, check_split_labels
from ctrbench.provenance import package_versions

COLUMNS = ["user_id", "item_id", "category_id", "behavior_type", "timestamp"]
N_FIELDS = len(COLUMNS)
BEHAVIORS = ("pv", "cart", "fav", "buy")  # behaviour code = index in this tuple
BAD_ROW_KINDS = ("field_count", "bad_id", "bad_behavior", "bad_timestamp")
_KIND_OF_COLUMN = np.array([1, 1, 1, 2, 3], np.int8)  # column -> index into BAD_ROW_KINDS

DEFAULT_BUCKET_BYTES = 64 << 20  # one user bucket per this much input
_MAX_DIGITS = 19  # 19 decimal digits fit uint64 during decoding; int64 range checked after
_INT64_MAX = np.uint64(2**63 - 1)

ROW_GROUP_ROWS = 1 << 16  # rows are ~440 bytes wide (two 50-id histories): ~28 MB per row group
TARGET_CHUNK = 1 << 15  # targets per chunk of output rows
EVENT_ROW_GROUP_ROWS = 1 << 20  # the event table: two int32 ids per event (8 MB per row group)
BUCKET_COMPRESSION = "lz4"
ROW_ID_FORMULA = "source_line * (1 + negatives) + k; k = 0 for the positive, 1..negatives for its sampled negatives"

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


# ---------------------------------------------------------------------------------------------
# preprocessing


class _DistinctCounts:
    """Distinct keys (tuples of int64 columns, sorted lexicographically) with summed counts.

    Blocks are reduced with a sort on arrival and merged with the running result only when the
    unmerged parts outgrow it, so merging costs O(total log total) over the whole file.
    """

    MERGE_ROWS = 1 << 20  # unmerged rows tolerated before merging, at least

    def __init__(self, n_keys: int):
        self.n_keys = n_keys
        self.merged: tuple[list[np.ndarray], np.ndarray] | None = None
        self.parts: list[tuple[list[np.ndarray], np.ndarray]] = []
        self.part_rows = 0

    @staticmethod
    def _reduce(keys: list[np.ndarray], counts: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        if len(counts) == 0:
            return keys, counts
        order = np.lexsort(keys[::-1])  # first key primary
        keys = [k[order] for k in keys]
        change = np.zeros(len(counts), bool)
        change[0] = True
        for k in keys:
            change[1:] |= k[1:] != k[:-1]
        starts = np.flatnonzero(change)
        return [k[starts] for k in keys], np.add.reduceat(counts[order], starts)

    def add(self, *keys: np.ndarray) -> None:
        part = self._reduce(list(keys), np.ones(len(keys[0]), np.int64))
        self.parts.append(part)
        self.part_rows += len(part[1])
        if self.part_rows > max(self.MERGE_ROWS, len(self.merged[1]) if self.merged else 0):
            self._merge()

    def _merge(self) -> None:
        parts = self.parts + ([self.merged] if self.merged else [])
        if not parts:
            self.merged = ([np.zeros(0, np.int64) for _ in range(self.n_keys)], np.zeros(0, np.int64))
        else:
            keys = [np.concatenate([p[0][i] for p in parts]) for i in range(self.n_keys)]
            self.merged = self._reduce(keys, np.concatenate([p[1] for p in parts]))
        self.parts, self.part_rows = [], 0

    def result(self) -> tuple[list[np.ndarray], np.ndarray]:
        self._merge()
        return self.merged


@dataclass
class _Vocab:
    """Raw id -> local id (1..V, 0 = padding) for users, items, categories; item facts."""

    users: np.ndarray  # sorted distinct raw ids
    items: np.ndarray
    categories: np.ndarray
    item_counts: np.ndarray  # [V_items] events per item (in range, every behaviour)
    item_category: np.ndarray  # [V_items] local category id of each item (most frequent, ties -> smallest)
    items_with_several_categories: int

    @classmethod
    def build(cls, users: np.ndarray, pair_keys: list[np.ndarray], pair_counts: np.ndarray) -> _Vocab:
        item, cat = pair_keys  # sorted by (item, category)
        first = np.flatnonzero(np.r_[True, item[1:] != item[:-1]]) if len(item) else np.zeros(0, np.int64)
        items = item[first]
        item_counts = np.add.reduceat(pair_counts, first) if len(item) else np.zeros(0, np.int64)
        # most frequent category per item, ties -> smallest id: sort by (item, -count, category)
        order = np.lexsort((cat, -pair_counts, item))
        best = cat[order][first]
        categories = np.unique(cat)
        return cls(
            users=users,
            items=items,
            categories=categories,
            item_counts=item_counts,
            item_category=(np.searchsorted(categories, best) + 1).astype(np.int32),
            items_with_several_categories=int(np.count_nonzero(np.diff(first, append=len(item)) > 1)),
        )

    @staticmethod
    def local(sorted_ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
        return (np.searchsorted(sorted_ids, raw) + 1).astype(np.int32)


_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arithmetic wraps; numpy does not warn for arrays)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _user_sampled(users: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Bool mask: raw user ids kept by the ``fraction`` user subsample under ``seed``.

    Kept iff ``mix(mix(seed * GOLDEN + 2) ^ (user * GOLDEN))``, top 53 bits read as U[0, 1), is
    below ``fraction`` (stream 2; the negatives use stream 1): one hash per id, no state, so the
    same id is kept in every block and bucket. Part of the output format: changing it changes
    which users a given (fraction, seed) keeps.
    """
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed & (2**64 - 1)) * _GOLDEN + np.uint64(2))
        h = _mix(h ^ (users.astype(np.uint64) * _GOLDEN))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < fraction


def _uniform(seed: int, lines: np.ndarray, k: int, attempt: int) -> np.ndarray:
    """U[0, 1) keyed by (seed, source line, negative index k, attempt): no generator state."""
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed & (2**64 - 1)) * _GOLDEN + np.uint64(1))
        h = _mix(h ^ (lines.astype(np.uint64) * _GOLDEN))
        h = _mix(h ^ np.uint64(((k & 0xFFFFFFFF) << 32) | (attempt & 0xFFFFFFFF)))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


class _NegativeSampler:
    """``negatives`` items per positive, never the positive item, by popularity or uniformly."""

    MAX_ATTEMPTS = 10_000

    def __init__(self, vocab: _Vocab, negatives: int, sampling: str, seed: int):
        self.n_items = len(vocab.items)
        self.cum = np.cumsum(vocab.item_counts).astype(np.float64) if sampling == "popularity" else None
        self.item_category = vocab.item_category
        self.negatives = negatives
        self.seed = seed

    def _draw(self, lines: np.ndarray, k: int, attempt: int) -> np.ndarray:
        u = _uniform(self.seed, lines, k, attempt)
        if self.cum is None:
            index = (u * self.n_items).astype(np.int64)
        else:
            index = np.searchsorted(self.cum, u * self.cum[-1], side="right")
        return np.minimum(index, self.n_items - 1).astype(np.int32) + 1  # local item ids

    def sample(self, lines: np.ndarray, positive_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """([n, negatives] local item ids, [n, negatives] their local category ids)."""
        items = np.empty((len(lines), self.negatives), np.int32)
        for k in range(self.negatives):
            drawn = self._draw(lines, k + 1, 0)
            clash = np.flatnonzero(drawn == positive_items)
            attempt = 1
            while len(clash):
                if attempt > self.MAX_ATTEMPTS:
                    raise RuntimeError("negative sampling keeps drawing the positive item")
                drawn[clash] = self._draw(lines[clash], k + 1, attempt)
                clash = clash[drawn[clash] == positive_items[clash]]
                attempt += 1
            items[:, k] = drawn
        return items, self.item_category[items - 1]


class _TableWriter:
    """Streams one split to parquet in row groups of exactly ``row_group_rows`` rows."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_rows: int, compression: str):
        self.path = path
        self.row_group_rows = row_group_rows
        # no dictionary pages: consecutive histories overlap heavily, and zstd alone finds those long
        # repeats (half the size and half the write time of dictionary + zstd)
        self.writer = pq.ParquetWriter(path, schema, compression=compression, use_dictionary=False)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.positives = 0

    def add(self, table: pa.Table, positives: int) -> None:
        if not table.num_rows:
            return
        self.rows += table.num_rows
        self.positives += positives
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= self.row_group_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        merged = pa.concat_tables(self.pending)
        full = merged.num_rows if final else merged.num_rows // self.row_group_rows * self.row_group_rows
        for start in range(0, full, self.row_group_rows):  # one contiguous chunk per row group
            group = merged.slice(start, min(self.row_group_rows, full - start)).combine_chunks()
            self.writer.write_table(group, row_group_size=self.row_group_rows)
        rest = merged.slice(full)
        self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        if self.pending_rows:
            self._flush(final=True)
        self.writer.close()


def output_schema() -> pa.Schema:
    """A split's rows: each history by reference, ``[history_start, history_end)`` rows of the event table."""
    return pa.schema(
        [
            (ROW_ID, pa.int64()),
            ("label", pa.float32()),
            ("user_id", pa.int32()),
            ("item_id", pa.int32()),
            ("category_id", pa.int32()),
            ("hour", pa.int32()),
            ("dayofweek", pa.int32()),
            ("history_start", pa.int64()),
            ("history_end", pa.int64()),
            ("timestamp", pa.int64()),
        ]
    )


# the event table (EVENTS_FILE): the history events of every kept user, users contiguous, each in time order
EVENTS_SCHEMA = pa.schema([("item_history", pa.int32()), ("category_history", pa.int32())])


def _behavior_codes(names: Sequence[str], what: str, allow_empty: bool) -> np.ndarray:
    names = list(names)
    unknown = [b for b in names if b not in BEHAVIORS]
    if unknown or (not names and not allow_empty) or len(set(names)) != len(names):
        raise ValueError(f"{what} must be distinct names among {BEHAVIORS}, got {names}")
    return np.array(sorted(BEHAVIORS.index(b) for b in names), np.int8)


def _local_midnight(date, offset_s: int) -> int:
    """Unix seconds of 00:00 local time on ``date`` (a date or 'YYYY-MM-DD')."""
    if isinstance(date, dt.datetime):
        date = date.date()
    day = date if isinstance(date, dt.date) else dt.date.fromisoformat(str(date))
    return (day - dt.date(1970, 1, 1)).days * 86400 - offset_s


def _iso(ts: int, offset_s: int) -> str:
    try:
        return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(seconds=offset_s))).isoformat()
    except (OverflowError, ValueError, OSError):  # a stray timestamp past year 9999 (no time_range given)
        return f"unix {ts}"


def _empty_split_hint(
    name: str, options: dict, t_min: int, valid_start: int, gold_start: int, t_max: int, offset_s: int
) -> str:
    """Why a time split holds no target: the days it was given, against the days of the data."""

    def day(ts: int) -> str:
        return _iso(ts, offset_s)[:10]

    valid_days, gold_days = options["time_split"]["valid_days"], options["time_split"]["gold_days"]
    data_days = f"({day(t_min)}..{day(t_max)})"
    if name == "train" and t_min >= valid_start:
        return f"valid_days={valid_days} + gold_days={gold_days} cover every day of the data {data_days}; lower them"
    days = {
        "train": f"before {day(valid_start)}",
        "valid": f"on {day(valid_start)}..{day(gold_start - 1)}",
        "gold": f"on {day(gold_start)}..{day(t_max)}",
    }[name]
    return f"no target events ({', '.join(options['targets']['behaviors'])}) {days} {data_days}"


def _targets(sorted_block: UserBehaviorBlock, is_hist: np.ndarray, target_mask: np.ndarray, chunk: int):
    """Yield (target positions, history start, history end) in chunks of ``chunk`` targets.

    ``sorted_block`` is sorted by (user, timestamp, line). A target's history is every history
    event of the same user whose timestamp is strictly smaller: the events before the first event
    of the target's (user, timestamp) run. ``cum_hist[p]`` counts history events before position
    p, so the target's history is the history events ``[cum_hist[user_start], cum_hist[run_start])``
    (indices into the history events in sorted order). Targets come in source line order.
    """
    user, ts = sorted_block.user, sorted_block.timestamp
    n = len(user)
    pos = np.arange(n)
    new_user = np.ones(n, bool)
    new_user[1:] = user[1:] != user[:-1]
    new_run = new_user.copy()
    new_run[1:] |= ts[1:] != ts[:-1]
    user_start = np.maximum.accumulate(np.where(new_user, pos, 0))
    run_start = np.maximum.accumulate(np.where(new_run, pos, 0))
    del pos, new_user, new_run
    cum_hist = np.zeros(n + 1, np.int64)
    np.cumsum(is_hist, out=cum_hist[1:])
    targets = np.flatnonzero(target_mask)
    targets = targets[np.argsort(sorted_block.line[targets], kind="stable")]  # write in source line order
    for start in range(0, len(targets), chunk):
        t = targets[start : start + chunk]
        yield t, cum_hist[user_start[t]], cum_hist[run_start[t]]


def preprocess_userbehavior(
    raw_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    outputs: Mapping[str, str | Path] | None = None,
    dataset_name: str = "taobao_userbehavior",
    options: Mapping | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = COMPRESSION,
    progress: bool = True,
) -> dict:
    """Preprocess one raw UserBehavior CSV into CTR samples; returns the manifest (also written).

    Every target event (behaviour in ``target_behaviors``, inside ``time_range``) is a positive
    row; each gets ``negatives`` rows with sampled items (``sampling``: "popularity" = weighted by
    event count, or "uniform"), sharing its user, time and histories. Histories hold the user's
    events with behaviour in ``history_behaviors`` strictly before the target's timestamp, the
    most recent ``max_len``, most recent last, left-padded with 0.

    Splits by local time (``utc_offset_hours``): gold = targets in the last ``gold_days``
    calendar days of the data, valid = the ``valid_days`` before, train = the rest.
    ``time_range`` = (first, last) local dates, inclusive; events outside are dropped from
    targets and histories and counted as ``out_of_range``. Outputs and ``input_hash`` (the sha256
    is computed on a thread during the first pass) as ``preprocess_criteo``. A split left empty
    (e.g. ``valid_days + gold_days`` covering every day) is an error here, not in training.

    ``user_fraction`` in (0, 1] keeps a deterministic subsample of the users (hash of the raw
    user id and ``seed``, see ``_user_sampled``) with all their events; the in-range events of
    the others are dropped and counted as ``user_sampled_out``. Ids, the popularity table of the
    negatives, item categories and the split dates come from the kept users' events only.
    ``1.0`` (the default) keeps everyone and writes the same bytes as without the option.
    """
    raw_path = Path(raw_path)
    paths = output_paths(out_dir, outputs)
    options = OPTIONS.resolve(options or {})
    max_len, history_behaviors = options["history"]["max_len"], options["history"]["behaviors"]
    target_behaviors, negatives, sampling = (options["targets"][k] for k in ("behaviors", "negatives", "sampling"))
    valid_days, gold_days = options["time_split"]["valid_days"], options["time_split"]["gold_days"]
    utc_offset_hours, time_range, fraction = (
        options["utc_offset_hours"],
        options["time_range"],
        float(options["user_fraction"]),
    )
    max_bad_rows, seed, input_hash = options["max_bad_rows"], options["split_seed"], options["input_hash"]
    hist_codes = _behavior_codes(history_behaviors, "history_behaviors", allow_empty=True)
    target_codes = _behavior_codes(target_behaviors, "target_behaviors", allow_empty=False)
    if row_group_rows < 1 or bucket_bytes < 1:
        raise ValueError("row_group_rows and bucket_bytes must be >= 1")
    if not 0.0 < fraction <= 1.0:  # NaN passes the schema's bounds
        raise ValueError(f"user_fraction must be a number in (0, 1] (the share of users kept), got {fraction}")
    sample_users = fraction < 1.0
    offset_s = round(utc_offset_hours * 3600)
    if time_range is not None:
        if len(time_range) != 2:
            raise ValueError(f"time_range must be (first, last) local dates, got {time_range!r}")
        range_lo = _local_midnight(time_range[0], offset_s)
        range_hi = _local_midnight(time_range[1], offset_s) + 86400  # exclusive
        if range_hi <= range_lo:
            raise ValueError(f"time_range {time_range!r}: last date before first")
        time_range = [str(time_range[0]), str(time_range[1])]
    # buckets hold about bucket_bytes of *kept* input each (for fraction 1: the same count as always)
    n_buckets = max(1, math.ceil(raw_path.stat().st_size * fraction / bucket_bytes))
    knobs = {
        "buckets": n_buckets,
        "block_bytes": block_bytes,
        "bucket_bytes": bucket_bytes,
        "row_group_rows": row_group_rows,
        "compression": compression,
    }

    staged = StagedOutputs(paths)
    temps = staged.temps
    writers: dict[str, _TableWriter] = {}
    bucket_writers: list[pq.ParquetWriter] = []
    event_writer: pq.ParquetWriter | None = None
    work = Path(tempfile.mkdtemp(prefix=f".{paths['train'].name}.buckets.", dir=paths["train"].parent))
    hasher = input_hasher(input_hash)
    reader = UserBehaviorReader(raw_path, max_bad_rows=max_bad_rows, block_bytes=block_bytes, hasher=hasher)
    try:
        # ---- pass 1: validate, filter by time, bucket by user, count
        bucket_paths = [work / f"bucket{i:05d}.parquet" for i in range(n_buckets)]
        bucket_writers = [pq.ParquetWriter(p, BUCKET_SCHEMA, compression=BUCKET_COMPRESSION) for p in bucket_paths]
        users = _DistinctCounts(1)
        pairs = _DistinctCounts(2)
        useful_codes = np.union1d(hist_codes, target_codes)
        out_of_range = in_range = sampled_out = kept = 0
        t_min, t_max = None, None
        with tqdm(
            total=raw_path.stat().st_size, unit="B", unit_scale=True, desc=raw_path.name, disable=not progress
        ) as bar:
            reader.on_bytes = bar.update
            for block in reader:
                if time_range is not None:
                    inside = (block.timestamp >= range_lo) & (block.timestamp < range_hi)
                    out_of_range += len(block) - int(inside.sum())
                    block = block.take(inside)
                if not len(block):
                    continue
                in_range += len(block)
                # every in-range user (the kept ones are picked from these after the pass: the hash is
                # a function of the id alone), so the manifest can report the realised fraction
                users.add(block.user)
                if sample_users:
                    # Only the kept users' events reach the vocabularies, the popularity table of the
                    # negatives and the item -> category map: the outputs are then those of a file
                    # holding only the kept users, every id has rows that train its embedding (most
                    # items of a small subsample's dropped users would never be seen), and negatives
                    # follow the popularity the model trains on rather than items absent from its data.
                    sampled = _user_sampled(block.user, fraction, seed)
                    sampled_out += len(block) - int(sampled.sum())
                    block = block.take(sampled)
                    if not len(block):
                        continue
                kept += len(block)
                t_min = min(int(block.timestamp.min()), t_min if t_min is not None else 2**63)
                t_max = max(int(block.timestamp.max()), t_max if t_max is not None else -(2**63))
                pairs.add(block.item, block.category)
                block = block.take(np.isin(block.behavior, useful_codes))
                bucket = block.user % n_buckets
                order = np.argsort(bucket, kind="stable")
                bounds = np.searchsorted(bucket[order], np.arange(n_buckets + 1))
                table = block.take(order).to_arrow()
                for i in np.flatnonzero(np.diff(bounds)):
                    bucket_writers[i].write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]))
        for w in bucket_writers:
            w.close()
        sha256 = hasher.hexdigest() if hasher is not None else None
        if in_range == 0:
            raise UserBehaviorFormatError(
                f"{raw_path}: no events inside time_range {time_range} ({out_of_range} outside)"
            )
        all_users = users.result()[0][0]
        n_users_in_range = len(all_users)
        kept_users = all_users[_user_sampled(all_users, fraction, seed)] if sample_users else all_users
        if kept == 0:
            raise ValueError(
                f"{raw_path}: user_fraction={fraction} (seed {seed}) keeps none of the {len(all_users)} users "
                f"({sampled_out} events dropped); use a larger user_fraction"
            )
        vocab = _Vocab.build(kept_users, *pairs.result())
        del users, pairs, all_users, kept_users
        for name, ids in (("users", vocab.users), ("items", vocab.items), ("categories", vocab.categories)):
            if len(ids) >= 2**31 - 1:
                raise ValueError(f"{raw_path}: {len(ids)} distinct {name} do not fit int32 ids")
        if len(vocab.items) < 2:
            raise ValueError(f"{raw_path}: negative sampling needs at least 2 distinct items, found {len(vocab.items)}")

        last_day = (t_max + offset_s) // 86400
        gold_start = (last_day - gold_days + 1) * 86400 - offset_s
        valid_start = gold_start - valid_days * 86400

        # ---- pass 2: one bucket at a time
        schema = output_schema()
        event_writer = pq.ParquetWriter(temps["events"], EVENTS_SCHEMA, compression=compression)
        events_written = 0  # event table rows before the current bucket's
        for name in SPLITS:
            writers[name] = _TableWriter(temps[name], schema, row_group_rows, compression)
        sampler = _NegativeSampler(vocab, negatives, sampling, seed)
        per_row = 1 + negatives
        label_row = np.zeros(per_row, np.float32)
        label_row[0] = 1.0
        targets_total = 0
        for path in tqdm(bucket_paths, desc="user buckets", disable=not progress):
            events = UserBehaviorBlock.from_arrow(pq.read_table(path))
            path.unlink()
            order = np.lexsort((events.line, events.timestamp, events.user))
            events = events.take(order)
            del order
            item = _Vocab.local(vocab.items, events.item)
            category = _Vocab.local(vocab.categories, events.category)
            is_hist = np.isin(events.behavior, hist_codes)
            # this bucket's history events, once each; a sample keeps where its history starts and ends there
            event_writer.write_table(
                pa.table({"item_history": item[is_hist], "category_history": category[is_hist]}, schema=EVENTS_SCHEMA),
                row_group_size=EVENT_ROW_GROUP_ROWS,
            )
            target_mask = np.isin(events.behavior, target_codes)
            for t, lo, hi in _targets(events, is_hist, target_mask, TARGET_CHUNK):
                targets_total += len(t)
                split = np.searchsorted([valid_start, gold_start], events.timestamp[t], side="right")
                for s, name in enumerate(SPLITS):
                    sel = np.flatnonzero(split == s)
                    if not len(sel):
                        continue
                    tt = t[sel]
                    line, ts = events.line[tt], events.timestamp[tt]
                    pos_item, pos_cat = item[tt], category[tt]
                    neg_item, neg_cat = sampler.sample(line, pos_item)
                    local = ts + offset_s
                    day = local // 86400
                    hour = (local - day * 86400) // 3600 + 1
                    dow = (day + 3) % 7 + 1  # 1970-01-01 was a Thursday; Monday = 1
                    columns = {
                        ROW_ID: (line[:, None] * per_row + np.arange(per_row)).reshape(-1),
                        "label": np.tile(label_row, len(tt)),
                        "user_id": np.repeat(_Vocab.local(vocab.users, events.user[tt]), per_row),
                        "item_id": np.column_stack([pos_item, neg_item]).reshape(-1),
                        "category_id": np.column_stack([pos_cat, neg_cat]).reshape(-1),
                        "hour": np.repeat(hour, per_row),
                        "dayofweek": np.repeat(dow, per_row),
                        "history_start": np.repeat(events_written + lo[sel], per_row),
                        "history_end": np.repeat(events_written + hi[sel], per_row),
                        "timestamp": np.repeat(ts, per_row),
                    }
                    table = pa.table(
                        {k: pa.array(v, schema.field(k).type) for k, v in columns.items()},
                        schema=schema,
                    )
                    del columns
                    writers[name].add(table, positives=len(tt))
            events_written += int(is_hist.sum())
            del events, item, category, is_hist, target_mask
            pa.default_memory_pool().release_unused()
        if targets_total == 0:
            raise ValueError(f"{raw_path}: no target events (behaviours {list(target_behaviors)}) in range")
        for writer in writers.values():
            writer.close()
        event_writer.close()
        # every target row has its negatives, so a split with rows has both labels: only emptiness can fail
        check_split_labels(
            {name: (w.rows, w.positives) for name, w in writers.items()},
            source=raw_path,
            empty_hint=lambda name: _empty_split_hint(name, options, t_min, valid_start, gold_start, t_max, offset_s),
        )
        written = {name: w.rows for name, w in writers.items()}
        # small batches: row ids increase within a bucket, so only the batches that straddle a bucket
        # boundary need the (slow) uniqueness fallback
        check_split_files(
            {k: temps[k] for k in SPLITS},
            expected_total=sum(written.values()),
            expected_counts=written,
            batch_rows=1 << 16,
        )

        split_times = {
            "first_event": _iso(t_min, offset_s),
            "valid_start": _iso(valid_start, offset_s),
            "gold_start": _iso(gold_start, offset_s),
            "last_event": _iso(t_max, offset_s),
        }
        distinct = {"users": len(vocab.users), "items": len(vocab.items), "categories": len(vocab.categories)}
        # recorded in the feature map only when users were sampled: with fraction 1 the feature map keeps
        # the bytes it had before the option existed (readers: extra.get("user_fraction", 1.0))
        user_sample_extra = (
            {
                "user_fraction": fraction,
                "user_sample": "users kept iff a splitmix64 hash of (seed, raw user id), as U[0, 1), is "
                "below user_fraction; kept users keep all their events; ids, item popularity (negatives), "
                "item categories and split dates come from the kept users' events only",
                "users_in_range": n_users_in_range,
            }
            if sample_users
            else {}
        )
        feature_map = FeatureMap(
            dataset=dataset_name,
            tasks=[Task("label")],
            features=[
                Feature("user_id", "categorical", vocab_size=len(vocab.users) + 1),
                Feature("item_id", "categorical", vocab_size=len(vocab.items) + 1),
                Feature("category_id", "categorical", vocab_size=len(vocab.categories) + 1),
                Feature("hour", "categorical", vocab_size=25),
                Feature("dayofweek", "categorical", vocab_size=8),
                Feature(
                    "item_history",
                    "sequence",
                    vocab_size=len(vocab.items) + 1,
                    shares_vocab_with="item_id",
                    group=DEFAULT_SEQUENCE_GROUP,
                ),
                Feature(
                    "category_history",
                    "sequence",
                    vocab_size=len(vocab.categories) + 1,
                    shares_vocab_with="category_id",
                    group=DEFAULT_SEQUENCE_GROUP,
                ),
            ],
            # by reference: the rows [history_start, history_end) of the event table; max_len is the default
            # length models gather (training.history_max_len asks for another without reprocessing)
            sequence_groups=[
                SequenceGroup(
                    DEFAULT_SEQUENCE_GROUP, max_len, storage="events", start="history_start", end="history_end"
                )
            ],
            group_by="user_id",
            extra={
                "source": "taobao_userbehavior",
                "utc_offset_hours": utc_offset_hours,
                "history_behaviors": [BEHAVIORS[c] for c in hist_codes],
                "target_behaviors": [BEHAVIORS[c] for c in target_codes],
                "negatives": negatives,
                "sampling": sampling,
                "seed": seed,
                "time_range": time_range,
                "split_times": split_times,
                "row_id": ROW_ID_FORMULA,
                "ids": "local id = 1 + rank of the raw id among the sorted distinct raw ids of in-range events; "
                "0 = padding / missing",
                "negative_category": "the item's most frequent category (ties -> smallest raw id)",
                "hour": "local hour + 1 (1..24)",
                "dayofweek": "local weekday, 1 = Monday .. 7 = Sunday",
                "history": "events of the user strictly before the target's timestamp, by reference: rows "
                "[history_start, history_end) of events.parquet; models read the most recent max_len, most recent "
                "last, left-padded with 0",
                "distinct": distinct,
                "items_with_several_categories": vocab.items_with_several_categories,
                "columns_not_features": [ROW_ID, "timestamp"],
                **user_sample_extra,
            },
        )
        feature_map.save(temps["feature_map"])

        manifest = DataManifest(
            dataset=dataset_name,
            format="taobao_userbehavior",
            inputs={"raw": input_file(raw_path, input_hash, sha256, lines=reader.lines, data_lines=reader.data_lines)},
            options={**options, **knobs},
            rows=RowCounts(read=reader.data_lines, written=sum(written.values()), bad=reader.bad.total),
            bad_rows=dict(reader.bad.counts),
            bad_row_examples=list(reader.bad.examples),
            # events left out other than bad rows, by kind (the report lists them beside bad_rows)
            dropped={"out_of_range": out_of_range, "user_sampled_out": sampled_out},
            splits={
                name: SplitSummary(
                    rows=w.rows, positives=int(w.positives), label_rate=w.positives / w.rows if w.rows else None
                )
                for name, w in writers.items()
            },
            split_times=SplitTimes(**split_times),
            outputs=staged.describe((*SPLITS, "feature_map")),
            packages=package_versions(("numpy", "pyarrow")),
            details={
                # read = in_range + out_of_range; in_range = kept + user_sampled_out
                "events": {
                    "read": reader.rows,
                    "in_range": in_range,
                    "targets": targets_total,
                    "out_of_range": out_of_range,
                    "user_sampled_out": sampled_out,
                    "kept": kept,
                },
                "users": {
                    "in_range": n_users_in_range,
                    "kept": len(vocab.users),
                    "sampled_out": n_users_in_range - len(vocab.users),
                },
                "distinct": distinct,
            },
        )
        return staged.publish(manifest)
    except BaseException:
        staged.discard(
            [*(w.writer for w in writers.values()), *bucket_writers, *([event_writer] if event_writer else [])]
        )
        if hasher is not None:
            hasher.close()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = [
    "BAD_ROW_KINDS",
    "BEHAVIORS",
    "COLUMNS",
    "OUTPUT_FILES",
    "UserBehaviorBlock",
    "UserBehaviorFormatError",
    "UserBehaviorReader",
    "output_schema",
    "preprocess_userbehavior",
    "read_userbehavior",
]
