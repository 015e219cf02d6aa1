"""Taobao display-ad click data in FuxiCTR's TaobaoAd_x1 CSV layout -> train / valid / gold parquet.

Layout (one CSV per split, comma-separated, no quoting, first line the header)::

    clk,time_stamp,userid,adgroup_id,pid,cate_id,campaign_id,customer,brand,price,cms_segid,
    cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,occupation,
    new_user_class_level,click_sequence

``clk`` is the 0/1 label, ``click_sequence`` the user's clicked adgroup ids joined by ``^`` (may be
empty), and an empty field is a missing value (profile fields often are).

What follows FuxiCTR, and where from:

- field kinds: the TaobaoAd_x1 benchmark config (reczoo/BARS:
  ranking/ctr/DIN/DIN_taobaoad_x1/README.md, the logged FuxiCTR v2.0.1 ``feature_cols``) treats
  userid, cms_segid, cms_group_id, final_gender_code, age_level, pvalue_level, shopping_level,
  occupation, new_user_class_level, adgroup_id, cate_id, campaign_id, customer, brand and pid as
  categorical strings, ``price`` as numeric, and copies userid into a ``group_id`` meta column for
  gAUC. ``time_stamp`` is not a feature there (FuxiCTR's older ``taobao_x0`` config derives an hour
  from it; every TaobaoAd_x1 sample row is on one day, so it is read but not used here).
- the sequence: reczoo/FuxiCTR model_zoo/DIN/config/dataset_config.yaml (``tiny_seq2``, the config
  for exactly this CSV layout) declares ``click_sequence`` as ``type: sequence, splitter: ^,
  share_embedding: adgroup_id``; the TaobaoAd_x1 dataset card (reczoo/Datasets:
  Taobao/TaobaoAd_x1/README.md) sets the maximal behaviour-sequence length to 50 (``max_len``).
- which end is recent: FuxiCTR's ``Tokenizer.encode_sequence`` (fuxictr/preprocess/tokenizer.py)
  calls keras ``pad_sequences`` with ``padding = truncating = "pre"`` (its default): it keeps the
  *last* ``max_len`` ids and left-pads with the padding id 0. So the last id is taken to be the
  most recent, as in ``schema.py`` ("most recent last"); the sample files cannot confirm the order
  (their time stamps all fall in the same seconds).

Where this differs from FuxiCTR, on purpose:

- categorical values are hashed, not counted into a vocabulary (no ``min_categr_count``): a
  streaming, one-pass reader with fixed-size embedding tables. ``stable_hash`` is FNV-1a 64 over
  the value's bytes followed by the murmur3 ``fmix64`` finaliser; the local id is
  ``1 + stable_hash(value) % (hash_bins - 1)``, empty -> 0 (``MISSING_ID``). ``click_sequence`` ids
  go through the very same function as ``adgroup_id`` values, so a clicked item and the same target
  item get the same id (the sequence's ``shares_vocab_with="adgroup_id"``).
- ``price``: FuxiCTR feeds the raw float (``type: numeric``, no normaliser). Raw prices span
  0.01 .. 10^8, so here ``price`` -> float32 ``sign(x) * log1p(|x|)`` (missing -> 0.0), the same
  transform as the Criteo dense columns.
- gAUC groups: ``group_id`` (int64) is ``stable_hash(userid) >> 1`` (missing -> 0), not the hashed
  ``userid`` feature: with ~1.1M users in 2M bins about 40% of users would share a bin with another
  user and be merged in per-user metrics. ``group_by = "group_id"``, as FuxiCTR's ``group_id``.
- an empty id inside a sequence (``1^^2``, ``^1``, ``1^``) and a non-integer id are bad rows here;
  FuxiCTR maps an empty token to padding.

``row_id`` is unique across all three splits: the files are numbered as if concatenated in the
order train, valid, test (header lines included), so ``row_id = row_id_offset + physical line``,
with offset 0 for the train file, its line count for the valid file, and so on (the manifest
records each file's offset). A large fixed offset (10^12) is avoided because
``splits.check_split_files`` keeps one byte per id up to the largest one.

Reading streams like ``ctrbench.data.formats.criteo_dac.reader``: byte blocks cut at the last newline, a numpy line
scan (physical line numbers, field counts), ``pyarrow.csv`` with every column as raw bytes, then
vectorised validation and transforms over the Arrow buffers; the sequence is split with
``pyarrow.compute.split_pattern`` and placed into a ``[rows, max_len]`` matrix by index arithmetic
on the list offsets. No per-row Python anywhere.

Bad rows come in four kinds (``BAD_ROW_KINDS``): wrong field count (also empty lines, carriage
returns inside a line, a truncated last line), ``clk`` not 0/1, ``price`` not a number, and a
malformed ``click_sequence``. With ``max_bad_rows=0`` the first raises a ``TaobaoAdFormatError``
naming file, line, column and problem; otherwise bad rows are skipped and counted (over all input
files together) until more than ``max_bad_rows`` were seen. A header that is not exactly the layout
above is always an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from tqdm import tqdm

from ctrbench.atomic import atomic_path
from ctrbench.data.fields import binary_views as _binary_views
from ctrbench.data.fields import parse_float as _parse_float
from ctrbench.data.fields import parse_label as _parse_label
from ctrbench.data.fields import per_chunk as _per_chunk
from ctrbench.data.formats.taobao_ad.options import DEFAULTS, OPTIONS
from ctrbench.data.manifest import DataManifest, RowCounts, SplitSummary
from ctrbench.data.outputs import (
    COMPRESSION,
    MAX_DISTINCT_BINS,
    ROW_GROUP_ROWS,
    SplitWriter,
    StagedOutputs,
    output_paths,
)
from ctrbench.data.raw_input import count_lines, input_file, input_hasher
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
from ctrbench.data.schema import DEFAULT_SEQUENCE_GROUP, MISSING_ID, ROW_ID, Feature, FeatureMap, SequenceGroup, Task
from ctrbench.data.splits import (
    SPLIT_BLOCK_LINES,
    SplitAssigner,
    check_split_files,
    check_split_labels,
    resolve_split_counts,
)
from ctrbench.provenance import package_versions

HEADER = (
    "clk,time_stamp,userid,adgroup_id,pid,cate_id,campaign_id,customer,brand,price,cms_segid,cms_group_id,"
    "final_gender_code,age_level,pvalue_level,shopping_level,occupation,new_user_class_level,click_sequence"
)
COLUMNS = HEADER.split(",")
N_FIELDS = len(COLUMNS)
LABEL = "clk"
TIME = "time_stamp"  # read, not used (see the module docstring)
USER = "userid"
ITEM = "adgroup_id"
PRICE = "price"
SEQUENCE = "click_sequence"
GROUP = "group_id"
SEQUENCE_SEPARATOR = "^"
# FuxiCTR's TaobaoAd_x1 categorical list, in its order: user side, then ad side
CATEGORICAL = [
    "userid",
    "cms_segid",
    "cms_group_id",
    "final_gender_code",
    "age_level",
    "pvalue_level",
    "shopping_level",
    "occupation",
    "new_user_class_level",
    "adgroup_id",
    "cate_id",
    "campaign_id",
    "customer",
    "brand",
    "pid",
]
DENSE = [PRICE]

BAD_ROW_KINDS = ("field_count", "bad_label", "bad_price", "bad_sequence")
_KIND_OF_COLUMN = np.zeros(len(COLUMNS), np.int8)  # column -> index into BAD_ROW_KINDS (only these columns fail)
_KIND_OF_COLUMN[[COLUMNS.index(LABEL), COLUMNS.index(PRICE), COLUMNS.index(SEQUENCE)]] = [1, 2, 3]

SOURCE = "taobao_ad_x1"
SPLIT_FILES = {"train": "train.csv", "valid": "valid.csv", "gold": "test.csv"}  # in a raw directory

CATEGORICAL_TRANSFORM = "int32 missing -> 0; else 1 + (stable_hash(utf-8 bytes) % (hash_bins - 1))"
PRICE_TRANSFORM = "float32 sign(x) * log1p(|x|); missing -> 0.0"
SEQUENCE_TRANSFORM = (
    "split on '^'; each id hashed like adgroup_id; the last max_len ids (most recent last), "
    "right-aligned, left-padded with 0; empty field -> all 0"
)
GROUP_TRANSFORM = "int64 stable_hash(userid) >> 1; missing -> 0"
HASH_FUNCTION = "stable_hash = murmur3 fmix64(FNV-1a 64(bytes))"
ROW_ID_RULE = "row_id_offset of the file (lines of the files before it: train, valid, test) + physical line"

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_FMIX = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


class TaobaoAdFormatError(ValueError):
    """A Taobao ad CSV that does not parse; the message names file, line, column and problem."""


# ---------------------------------------------------------------------------------------- hashing


def _fnv1a_fmix(starts: np.ndarray, lens: np.ndarray, data: np.ndarray) -> np.ndarray:
    """uint64 ``stable_hash`` of the byte strings ``data[start:start + len]``, vectorised.

    The FNV loop runs over byte positions, each step over the strings still that long (sorted
    longest first, so they are a prefix): the work is the total byte count, whatever the mix of
    lengths.
    """
    n = len(starts)
    if n == 0:
        return np.empty(0, np.uint64)
    order = np.argsort(-lens.astype(np.int64), kind="stable")  # longest first
    s = starts[order].astype(np.int64)
    neg = -lens[order].astype(np.int64)  # ascending
    h = np.full(n, _FNV_OFFSET, np.uint64)
    for j in range(int(-neg[0])):
        k = int(np.searchsorted(neg, -j, side="left"))  # strings longer than j
        h[:k] ^= data[s[:k] + j]
        h[:k] *= _FNV_PRIME
    h ^= h >> np.uint64(33)
    h *= _FMIX[0]
    h ^= h >> np.uint64(33)
    h *= _FMIX[1]
    h ^= h >> np.uint64(33)
    out = np.empty(n, np.uint64)
    out[order] = h
    return out


def stable_hash(values: pa.Array | list) -> np.ndarray:
    """uint64 ``fmix64(FNV-1a 64)`` of each value's bytes (str values as UTF-8); fixed forever."""
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(values, pa.binary())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_string(values.type):
        values = values.cast(pa.binary())
    offsets, padded = _binary_views(values)
    return _fnv1a_fmix(offsets[:-1], np.diff(offsets), padded)


def _local_ids(hashes: np.ndarray, hash_bins: int) -> np.ndarray:
    return (np.uint64(1) + hashes % np.uint64(hash_bins - 1)).astype(np.int32)


def _hash_categorical(arr: pa.Array, hash_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw bytes -> (int32 local ids, 0 for empty; uint64 stable hashes, 0 for empty)."""
    offsets, padded = _binary_views(arr)
    lens = np.diff(offsets)
    present = np.flatnonzero(lens > 0)
    hashes = np.zeros(len(arr), np.uint64)
    hashes[present] = _fnv1a_fmix(offsets[:-1][present], lens[present], padded)
    ids = np.full(len(arr), MISSING_ID, np.int32)
    ids[present] = _local_ids(hashes[present], hash_bins)
    return ids, hashes


def _parse_sequence(arr: pa.Array, hash_bins: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``^``-joined ids -> (int32 [n, max_len] right-aligned local ids, bad rows)."""
    n = len(arr)
    out = np.zeros((n, max_len), np.int32)
    if n == 0:
        return out, np.zeros(0, bool)
    field_len = np.diff(_binary_views(arr)[0])
    lists = pc.split_pattern(arr, SEQUENCE_SEPARATOR)
    list_offsets = np.asarray(lists.offsets).astype(np.int64)
    list_offsets -= list_offsets[0]  # flatten() below starts at the first list's first token
    counts = np.diff(list_offsets)
    token_offsets, token_data = _binary_views(lists.flatten())
    token_lens = np.diff(token_offsets)
    row = np.repeat(np.arange(n), counts)
    real = field_len[row] > 0  # "" splits into one empty token: an empty field is an empty sequence
    # a token is bad when empty or holding a byte other than 0-9
    used = token_data[: token_offsets[-1]]
    non_digit = np.flatnonzero((used - np.uint8(ord("0"))) > 9)
    bad_token = token_lens == 0
    bad_token[np.searchsorted(token_offsets, non_digit, side="right") - 1] = True
    bad = np.zeros(n, bool)
    bad[row[bad_token & real]] = True
    # keep the last max_len ids of each good row, the last one in the last column
    index_in_row = np.arange(len(row)) - list_offsets[row]
    from_end = counts[row] - 1 - index_in_row
    keep = np.flatnonzero(real & ~bad[row] & (from_end < max_len))
    ids = _local_ids(_fnv1a_fmix(token_offsets[:-1][keep], token_lens[keep], token_data), hash_bins)
    out[row[keep], max_len - 1 - from_end[keep]] = ids
    return out, bad


def _sequence_problem(value: bytes) -> str:
    """Why a click_sequence value is bad (for the few messages that are shown)."""
    for i, token in enumerate(value.split(SEQUENCE_SEPARATOR.encode()), start=1):
        if not token:
            return f"has an empty id at position {i}"
        if not token.isdigit():
            return f"has id {describe_value(token)} at position {i}, not an integer"
    return "is not ^-joined integer ids"


# ------------------------------------------------------------------------------------------ blocks


def _output_types(max_len: int) -> list[tuple[str, pa.DataType]]:
    return (
        [(ROW_ID, pa.int64()), (LABEL, pa.float32()), (GROUP, pa.int64())]
        + [(c, pa.int32()) for c in CATEGORICAL]
        + [(PRICE, pa.float32()), (SEQUENCE, pa.list_(pa.int32(), max_len))]
    )


def output_schema(max_len: int) -> pa.Schema:
    """Parquet schema of a processed split; ``click_sequence`` is ``fixed_size_list<int32>[max_len]``."""
    return pa.schema(_output_types(max_len))


@dataclass
class TaobaoAdBlock:
    """Good rows of one block in file order, transformed; ``click_sequence`` is int32 [n, max_len]."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns[ROW_ID])

    @property
    def row_id(self) -> np.ndarray:
        return self.columns[ROW_ID]

    def take(self, index) -> TaobaoAdBlock:
        return TaobaoAdBlock({k: v[index] for k, v in self.columns.items()})

    def to_arrow(self) -> pa.Table:
        max_len = self.columns[SEQUENCE].shape[1]
        arrays = []
        for name, _ in _output_types(max_len):
            value = self.columns[name]
            if name == SEQUENCE:
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(value.reshape(-1)), max_len))
            else:
                arrays.append(pa.array(value))
        return pa.Table.from_arrays(arrays, schema=output_schema(max_len))

    @staticmethod
    def empty(max_len: int) -> TaobaoAdBlock:
        columns = {name: np.empty(0, t.to_pandas_dtype()) for name, t in _output_types(max_len) if name != SEQUENCE}
        columns[SEQUENCE] = np.empty((0, max_len), np.int32)
        return TaobaoAdBlock({name: columns[name] for name, _ in _output_types(max_len)})

    @staticmethod
    def concat(blocks: list[TaobaoAdBlock], max_len: int) -> TaobaoAdBlock:
        if not blocks:
            return TaobaoAdBlock.empty(max_len)
        return TaobaoAdBlock({k: np.concatenate([b.columns[k] for b in blocks]) for k in blocks[0].columns})


# ------------------------------------------------------------------------------------------ reader


def check_header(path: str | Path) -> None:
    """Raise ``TaobaoAdFormatError`` unless the file's first line is exactly ``HEADER``."""
    path = Path(path)
    with open(path, "rb") as handle:
        first = handle.readline(MAX_LINE_BYTES)
    if not first:
        raise TaobaoAdFormatError(f"{path}: empty file; expected the header line {HEADER!r}")
    _check_header_line(path, first)


def _check_header_line(path: Path, line: bytes) -> None:
    got = line.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
    if got != HEADER:
        names = got.split(",")
        diff = [f"{i + 1}: {a!r} != {b!r}" for i, (a, b) in enumerate(zip(names, COLUMNS)) if a != b][:3]
        detail = "; ".join(diff) if diff else f"{len(names)} columns, expected {N_FIELDS}"
        raise TaobaoAdFormatError(
            f"{path}:1: header is not the TaobaoAd_x1 layout ({detail}); expected exactly {HEADER!r}"
        )


class TaobaoAdReader(CountsBytes):
    """Iterate over one Taobao ad CSV as transformed ``TaobaoAdBlock``s with bounded memory.

    ``row_id_offset`` is added to the physical line numbers. ``bad`` may be a ``BadRows`` shared
    with other readers: ``max_bad_rows`` then bounds their total. After iteration: ``lines``
    (physical, header included), ``data_lines``, ``rows`` (good rows yielded), ``bytes_read``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        hash_bins: int = DEFAULTS["hash_bins"],
        max_len: int = DEFAULTS["history"]["max_len"],
        max_bad_rows: int = DEFAULTS["max_bad_rows"],
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        row_id_offset: int = 0,
        bad: BadRows | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ):
        if not 2 <= hash_bins <= 2**31 - 1:
            raise ValueError(f"hash_bins must be in [2, 2**31 - 1] (int32 ids), got {hash_bins}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if max_bad_rows < 0 or block_bytes < 1 or row_id_offset < 0:
            raise ValueError("max_bad_rows and row_id_offset must be >= 0 and block_bytes >= 1")
        self.path = Path(path)
        self.hash_bins = int(hash_bins)
        self.max_len = int(max_len)
        self.max_bad_rows = int(max_bad_rows)
        self.block_bytes = int(block_bytes)
        self.row_id_offset = int(row_id_offset)
        self.on_bytes = on_bytes
        self._shared_bad = bad
        self._reset()

    def _reset(self) -> None:
        self.lines = 0
        self.rows = 0
        self.bytes_read = 0
        self.bad = self._shared_bad if self._shared_bad is not None else BadRows.of(BAD_ROW_KINDS)
        self._bad_before = self.bad.total

    @property
    def data_lines(self) -> int:
        return max(self.lines - 1, 0)

    @property
    def bad_rows(self) -> int:
        """Bad rows of this file (the shared ``bad`` may also count other files')."""
        return self.bad.total - self._bad_before

    def __iter__(self) -> Iterator[TaobaoAdBlock]:
        self._reset()
        header_pending = True
        for data, end in line_blocks(
            self.path, self.block_bytes, MAX_LINE_BYTES, too_long=self._too_long, consumed=self._consumed
        ):
            start = 0
            if header_pending and end:
                nl = data.find(b"\n", 0, end)
                _check_header_line(self.path, data[: end if nl < 0 else nl])
                self.lines += 1
                start = end if nl < 0 else nl + 1
                header_pending = False
            if end > start:
                block = self._parse_block(data, start, end, terminated=data[end - 1] == 10)
                if len(block):
                    self.rows += len(block)
                    yield block
        if header_pending:
            raise TaobaoAdFormatError(f"{self.path}: empty file; expected the header line {HEADER!r}")
        if self.rows == 0:
            skipped = f" ({self.bad_rows} bad rows skipped)" if self.bad_rows else ""
            raise TaobaoAdFormatError(f"{self.path}: no data rows{skipped}")

    def _too_long(self) -> TaobaoAdFormatError:
        return TaobaoAdFormatError(
            f"{self.path}:{self.lines + 1}: line longer than {MAX_LINE_BYTES} bytes; not a TaobaoAd_x1 CSV?"
        )

    def _parse_block(self, data: bytes, start: int, end: int, terminated: bool) -> TaobaoAdBlock:
        """Parse the complete lines ``data[start:end]`` (the last lacks its newline only at end of file)."""
        first_line = self.lines + 1
        table, scan = read_csv_lines(self.path, data, start, end, terminated, first_line, COLUMNS, ",")
        self.lines += len(scan.ends)
        line_bad, good_lines = scan.line_bad, scan.good_lines

        n = table.num_rows
        first_bad_col = np.full(n, -1, np.int16)

        def mark(bad: np.ndarray, name: str) -> None:
            if bad.any():
                first_bad_col[bad & (first_bad_col < 0)] = COLUMNS.index(name)

        # checked in column order, so a row's first bad column is the one reported
        label, bad = _per_chunk(table.column(LABEL), _parse_label)
        mark(bad, LABEL)
        columns: dict[str, np.ndarray] = {
            ROW_ID: (good_lines + self.row_id_offset).astype(np.int64),
            LABEL: label.astype(np.float32),
        }
        price, _missing, bad = _per_chunk(table.column(PRICE), _parse_float)
        mark(bad, PRICE)
        sequence, bad = _per_chunk(
            table.column(SEQUENCE), lambda chunk: _parse_sequence(chunk, self.hash_bins, self.max_len)
        )
        mark(bad, SEQUENCE)
        for name in CATEGORICAL:
            ids, hashes = _per_chunk(table.column(name), lambda chunk: _hash_categorical(chunk, self.hash_bins))
            columns[name] = ids
            if name == USER:
                columns[GROUP] = (hashes >> np.uint64(1)).astype(np.int64)
        columns[PRICE] = (np.sign(price) * np.log1p(np.abs(price))).astype(np.float32)
        columns[SEQUENCE] = sequence.reshape(n, self.max_len)
        block = TaobaoAdBlock({name: columns[name] for name, _ in _output_types(self.max_len)})

        row_bad = first_bad_col >= 0
        if line_bad.any() or row_bad.any():
            value_rows = np.flatnonzero(row_bad)

            def value_problem(j: int, table: pa.Table = table) -> str:  # bound now: `table` is deleted below
                row = int(value_rows[j])
                col = int(first_bad_col[row])
                name, value = COLUMNS[col], table.column(col)[row].as_py()
                if name == LABEL:
                    problem = "is not 0 or 1"
                elif name == PRICE:
                    problem = "is not a number"
                else:
                    problem = _sequence_problem(value)
                return f"column {name}: {describe_value(value)} {problem}"

            record_bad_rows(
                self.bad, self.path, first_line=first_line, line_bad=line_bad, line_text=scan.line_text,
                stray_cr=scan.stray_cr, terminated=terminated, n_fields=N_FIELDS, delimiter=",",
                value_lines=block.row_id[value_rows] - self.row_id_offset,
                value_kinds=_KIND_OF_COLUMN[first_bad_col[value_rows]],
                value_problem=value_problem, max_bad_rows=self.max_bad_rows, error=TaobaoAdFormatError,
            )  # fmt: skip
            block = block.take(~row_bad)
        del table
        pa.default_memory_pool().release_unused()
        return block


def read_taobao_ad(path: str | Path, **options) -> TaobaoAdBlock:
    """Read a whole (small) file into one ``TaobaoAdBlock``; options as ``TaobaoAdReader``."""
    reader = TaobaoAdReader(path, **options)
    return TaobaoAdBlock.concat(list(reader), reader.max_len)


# -------------------------------------------------------------------------------------- preprocess


def preprocess_taobao_ad(
    raw: str | Path | Mapping[str, str | Path | None],
    *,
    outputs: Mapping[str, str | Path],
    dataset_name: str = "taobao_ad",
    options: Mapping | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = COMPRESSION,
    progress: bool = True,
) -> dict:
    """Preprocess TaobaoAd_x1 CSVs; returns the manifest as written to ``outputs["manifest"]``.

    ``raw``: the raw directory (train.csv, test.csv and maybe valid.csv), or ``{"train": path, "valid": path or
    None, "gold": path}``. The gold split is the test file; the valid split is the valid file when given,
    otherwise a seeded, exact ``splits.valid`` fraction of the train file's data lines (``SplitAssigner``; bad
    lines keep their slot). ``options``: the dataset-config keys of options.yaml (defaults there). ``outputs``
    maps ``train``, ``valid``, ``gold``, ``feature_map`` and ``manifest`` to paths. Everything is written under
    partial names and renamed only at the end, after the splits were checked (none empty or single-class).
    ``input_hash`` as ``preprocess_criteo``, per input file (hashed during the line-count pass).
    """
    files = split_files(raw) if isinstance(raw, (str, Path)) else raw
    unknown = set(files) - {"train", "valid", "gold"}
    if unknown or not files.get("train") or not files.get("gold"):
        raise ValueError(f"files must map train and gold (and optionally valid) to paths, got {dict(files)}")
    inputs = {k: Path(files[k]) for k in ("train", "valid", "gold") if files.get(k)}
    for key, path in inputs.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (the {key} split of a taobao_ad dataset)")
    options = OPTIONS.resolve(options or {})
    hash_bins, max_len, valid_fraction = options["hash_bins"], options["history"]["max_len"], options["splits"]["valid"]
    split_seed, max_bad_rows, input_hash = options["split_seed"], options["max_bad_rows"], options["input_hash"]
    valid_from_train = "valid" not in inputs
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
    paths = output_paths(None, outputs)
    for path in inputs.values():
        check_header(path)  # every file, before any long pass

    lines, sha256 = {}, {}
    for key, path in inputs.items():
        hasher = input_hasher(input_hash)
        lines[key] = count_lines(path, hasher=hasher)
        sha256[key] = hasher.hexdigest() if hasher is not None else None
    offsets, offset = {}, 0
    for key in inputs:  # train, valid, gold order
        offsets[key] = offset
        offset += lines[key]
    bad = BadRows.of(BAD_ROW_KINDS)
    readers = {
        key: TaobaoAdReader(
            path,
            hash_bins=hash_bins,
            max_len=max_len,
            max_bad_rows=max_bad_rows,
            block_bytes=block_bytes,
            row_id_offset=offsets[key],
            bad=bad,
        )
        for key, path in inputs.items()
    }
    data_lines = {k: max(n - 1, 0) for k, n in lines.items()}
    if valid_from_train:
        planned_train = resolve_split_counts(
            data_lines["train"], {"train": 1.0 - float(valid_fraction), "valid": float(valid_fraction)}
        )
        assigner = SplitAssigner(planned_train, split_seed)
        planned = {**planned_train, "gold": data_lines["gold"]}
    else:
        assigner = None
        planned = {k: data_lines[k] for k in ("train", "valid", "gold")}

    def empty_hint(name: str) -> str:
        return _empty_split_hint(name, inputs, planned, valid_fraction, valid_from_train)

    # a split planned empty fails now, before the long pass
    check_split_labels({k: (n, None) for k, n in planned.items()}, source=inputs["train"].parent, empty_hint=empty_hint)

    staged = StagedOutputs(paths)
    temps = staged.temps
    writers: dict[str, SplitWriter] = {}
    count_distinct = hash_bins <= MAX_DISTINCT_BINS
    seen = {c: np.zeros(hash_bins, bool) for c in [*CATEGORICAL, SEQUENCE]} if count_distinct else {}
    try:
        for name in ("train", "valid", "gold"):
            writers[name] = SplitWriter(
                temps[name],
                output_schema(max_len),
                row_group_rows,
                compression,
                concat=lambda blocks: TaobaoAdBlock.concat(blocks, max_len),
                label=LABEL,
            )
        total_bytes = sum(p.stat().st_size for p in inputs.values())
        with tqdm(total=total_bytes, unit="B", unit_scale=True, desc=dataset_name, disable=not progress) as bar:
            for key, reader in readers.items():
                reader.on_bytes = bar.update
                for block in reader:
                    if key == "train" and assigner is not None:
                        labels = assigner.labels_for(block.row_id - offsets["train"] - 2)  # line 2 = data line 0
                        writers["train"].add(block.take(labels == 0))
                        writers["valid"].add(block.take(labels == 1))
                    else:
                        writers[key].add(block)
                    for c, flags in seen.items():
                        flags[block.columns[c]] = True
                if reader.data_lines != data_lines[key]:
                    raise RuntimeError(
                        f"{reader.path}: counted {data_lines[key]} data lines, then read {reader.data_lines}: "
                        "file changed?"
                    )
        if assigner is not None:
            assigner.finish()
        for writer in writers.values():
            writer.close()
        written = {name: w.rows for name, w in writers.items()}
        rows_written = sum(r.rows for r in readers.values())
        check_split_labels(
            {name: (w.rows, w.positives) for name, w in writers.items()},
            source=inputs["train"].parent,
            empty_hint=empty_hint,
            single_class_hint=lambda name: (
                f"its rows come from {inputs['train' if name == 'valid' and valid_from_train else name]}"
            ),
        )
        check_split_files({k: temps[k] for k in writers}, expected_total=rows_written, expected_counts=written)

        transforms = {
            "categorical": CATEGORICAL_TRANSFORM,
            "price": PRICE_TRANSFORM,
            "click_sequence": SEQUENCE_TRANSFORM,
            "group_id": GROUP_TRANSFORM,
            "hash": HASH_FUNCTION,
            "row_id": ROW_ID_RULE,
        }
        feature_map = FeatureMap(
            dataset=dataset_name,
            tasks=[Task(LABEL)],
            features=[Feature(c, "categorical", vocab_size=hash_bins) for c in CATEGORICAL]
            + [Feature(PRICE, "dense")]
            + [
                Feature(
                    SEQUENCE, "sequence", vocab_size=hash_bins, shares_vocab_with=ITEM, group=DEFAULT_SEQUENCE_GROUP
                )
            ],
            sequence_groups=[SequenceGroup(DEFAULT_SEQUENCE_GROUP, max_len)],
            group_by=GROUP,
            extra={
                "source": SOURCE,
                "hash_bins": hash_bins,
                "max_len": max_len,
                "transforms": transforms,
                "unused_columns": [TIME],
                # distinct local ids seen per field over all splits (0 included where values are
                # missing or sequences padded): how full each hashed table is
                "distinct_ids": {c: int(np.count_nonzero(s)) for c, s in seen.items()} or None,
            },
        )
        feature_map.save(temps["feature_map"])

        manifest = DataManifest(
            dataset=dataset_name,
            format="taobao_ad",
            inputs={
                key: input_file(
                    path,
                    input_hash,
                    sha256[key],
                    lines=lines[key],
                    data_lines=data_lines[key],
                    row_id_offset=offsets[key],
                )
                for key, path in inputs.items()
            },
            options={
                **options,
                "valid_from": "train" if valid_from_train else "valid",
                "split_block_lines": SPLIT_BLOCK_LINES,
                "block_bytes": block_bytes,
                "row_group_rows": row_group_rows,
                "compression": compression,
            },
            rows=RowCounts(read=sum(r.data_lines for r in readers.values()), written=rows_written, bad=bad.total),
            bad_rows=dict(bad.counts),
            bad_row_examples=list(bad.examples),
            dropped={},
            splits={
                name: SplitSummary(
                    rows=w.rows,
                    positives=int(w.positives),
                    label_rate=w.positives / w.rows if w.rows else None,
                    planned_rows=planned[name],
                )
                for name, w in writers.items()
            },
            split_times=None,
            outputs=staged.describe(("train", "valid", "gold", "feature_map")),
            packages=package_versions(("numpy", "pyarrow")),
            details={"transforms": transforms},
        )
        return staged.publish(manifest)
    except BaseException:
        staged.discard(w.writer for w in writers.values())
        raise


def _empty_split_hint(
    name: str, inputs: Mapping[str, Path], planned: Mapping[str, int], valid_fraction: float, valid_from_train: bool
) -> str:
    """Why a split came out empty: too small a share of the train file, or only bad rows."""
    if name != "gold" and valid_from_train:
        source = f"splits.valid={valid_fraction} of the train file's {planned['train'] + planned['valid']} data lines"
        if planned[name] == 0:
            return f"{source} leaves it no rows; change splits.valid or add a valid.csv"
        return f"{source} gives it {planned[name]} rows, all of them bad rows"
    if planned[name] == 0:
        return f"{inputs[name]} has no data lines"
    return f"all {planned[name]} data lines of {inputs[name]} were bad rows"


def split_files(directory: str | Path) -> dict[str, Path | None]:
    """``{"train", "valid", "gold"}`` -> the CSVs of a raw directory (``valid`` None without valid.csv)."""
    directory = Path(directory)
    files: dict[str, Path | None] = {k: directory / name for k, name in SPLIT_FILES.items()}
    if not files["valid"].exists():
        files["valid"] = None
    return files


# --------------------------------------------------------------------------------------- synthetic

SYNTHETIC_CHUNK_ROWS = 65_536  # part of the format: changing it changes the bytes for a given seed
SYNTHETIC_TEST_SHARE = 0.2
PIDS = ("430548_1007", "430539_1007")
_DAY = 86_400
_TRAIN_START = 1494028800  # 2017-05-06 00:00:00 (UTC clock, as written)
_TEST_START = _TRAIN_START + 7 * _DAY  # 2017-05-13
FAVOURITE_WEIGHT = 1.0  # target item in the user's favourite category
IN_HISTORY_WEIGHT = 1.5  # target item among the clicked items of click_sequence
ITEM_EFFECT_STD = 0.5
SYNTHETIC_LABEL_RATE = 0.1


@dataclass
class _TaobaoParams:
    n_users: int
    n_items: int
    n_cates: int
    item_cate: np.ndarray  # [items]
    item_id: np.ndarray  # [items] adgroup ids as written
    item_campaign: np.ndarray
    item_customer: np.ndarray
    item_brand: np.ndarray  # -1 = missing
    item_price: np.ndarray  # float, 2 decimals
    item_effect: np.ndarray
    item_popularity_cdf: np.ndarray
    cate_items: np.ndarray  # item indices sorted by category
    cate_start: np.ndarray  # [cates + 1] into cate_items
    user_id: np.ndarray
    user_fav: np.ndarray  # favourite category per user
    user_profile: np.ndarray  # [users, 8] ints, -1 = missing
    bias: float = 0.0


_PROFILE_CARDINALITY = (98, 13, 2, 7, 3, 3, 2, 4)  # cms_segid .. new_user_class_level
_PROFILE_OFFSET = (0, 0, 1, 0, 1, 1, 0, 1)


def _make_taobao_params(seed: int, rows: int) -> _TaobaoParams:
    rng = np.random.default_rng([seed, 10])
    n_users = max(20, rows // 10)
    n_items = max(50, rows // 5)
    n_cates = max(5, min(300, n_items // 20))
    item_cate = np.concatenate([np.arange(n_cates), rng.integers(0, n_cates, n_items - n_cates)])
    rng.shuffle(item_cate)
    cate_items = np.argsort(item_cate, kind="stable")
    cate_start = np.searchsorted(item_cate[cate_items], np.arange(n_cates + 1))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    profile = np.stack([rng.integers(0, k, n_users) + o for k, o in zip(_PROFILE_CARDINALITY, _PROFILE_OFFSET)], axis=1)
    profile[rng.random(n_users) < 0.08] = -1  # users without a profile (as in the sample)
    profile[rng.random(n_users) < 0.5, 4] = -1  # pvalue_level often missing
    profile[rng.random(n_users) < 0.7, 7] = -1  # new_user_class_level mostly missing
    brand = rng.integers(1, 500_000, n_items)
    brand[rng.random(n_items) < 0.25] = -1
    params = _TaobaoParams(
        n_users=n_users,
        n_items=n_items,
        n_cates=n_cates,
        item_cate=item_cate,
        item_id=rng.choice(np.arange(1, 850_000), n_items, replace=False),
        item_campaign=rng.integers(1, 420_000, n_items),
        item_customer=rng.integers(1, 260_000, n_items),
        item_brand=brand,
        item_price=np.round(np.exp(rng.normal(4.5, 1.5, n_items)), 2).clip(0.01, 99_999.99),
        item_effect=rng.normal(0.0, ITEM_EFFECT_STD, n_items),
        item_popularity_cdf=np.cumsum(popularity / popularity.sum()),
        cate_items=cate_items,
        cate_start=cate_start,
        user_id=rng.choice(np.arange(1, 1_150_000), n_users, replace=False),
        user_fav=rng.integers(0, n_cates, n_users),
        user_profile=profile,
    )
    logit = _draw_rows(params, np.random.default_rng([seed, 11]), 20_000, _TRAIN_START)[0]
    lo, hi = -20.0, 20.0
    for _ in range(60):  # bias for the target label rate (bisection)
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(logit + mid)))) < SYNTHETIC_LABEL_RATE else (lo, mid)
    params.bias = (lo + hi) / 2
    return params


def _draw_rows(params: _TaobaoParams, rng: np.random.Generator, n: int, day_start: int):
    """(logit without bias, user index, item index, history offsets [n + 1], history item indices, times)."""
    user = rng.integers(0, params.n_users, n)
    # history: empty for a quarter of the rows, else 1..~60 items, mostly of the favourite category
    length = np.where(rng.random(n) < 0.25, 0, 1 + rng.geometric(0.08, n)).clip(0, 80)
    offsets = np.concatenate([[0], np.cumsum(length)])
    owner = np.repeat(user, length)
    fav = params.user_fav[owner]
    in_fav = rng.random(len(owner)) < 0.7
    span = params.cate_start[fav + 1] - params.cate_start[fav]
    fav_item = params.cate_items[params.cate_start[fav] + (rng.random(len(owner)) * span).astype(np.int64)]
    popular = np.searchsorted(params.item_popularity_cdf, rng.random(len(owner)), side="right")
    history = np.where(in_fav, fav_item, np.minimum(popular, params.n_items - 1))
    # the target: a popular item, or (30%) one the user clicked before
    item = np.minimum(np.searchsorted(params.item_popularity_cdf, rng.random(n), side="right"), params.n_items - 1)
    from_history = (rng.random(n) < 0.3) & (length > 0)
    pick = offsets[:-1] + (rng.random(n) * np.maximum(length, 1)).astype(np.int64)
    item = np.where(from_history, history[np.minimum(pick, max(len(history) - 1, 0))] if len(history) else item, item)
    # planted signal: item effect + favourite category + target among the clicked items
    row_of = np.repeat(np.arange(n), length)
    hit = np.zeros(n, bool)
    hit[row_of[history == item[row_of]]] = True
    logit = (
        params.item_effect[item]
        + FAVOURITE_WEIGHT * (params.item_cate[item] == params.user_fav[user])
        + IN_HISTORY_WEIGHT * hit
    )
    times = np.sort(day_start + rng.integers(0, _DAY, n))
    return logit, user, item, offsets, history, times


def _decimal(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, mask=missing).cast(pa.string())


def _price_text(price: np.ndarray) -> pa.Array:
    """Shortest decimal form, with ``.0`` on whole numbers as the real files write them (``189.0``)."""
    text = pa.array(price).cast(pa.string())
    whole = pc.binary_join_element_wise(text, pa.scalar("0"), ".")
    return pc.if_else(pc.match_substring(text, "."), text, whole)


def _synthetic_table(params: _TaobaoParams, rng: np.random.Generator, n: int, day_start: int) -> tuple[pa.Table, int]:
    logit, user, item, offsets, history, times = _draw_rows(params, rng, n, day_start)
    label = (rng.random(n) < 1 / (1 + np.exp(-(logit + params.bias)))).astype(np.int8)
    profile = params.user_profile[user]
    tokens = _decimal(params.item_id[history]) if len(history) else pa.array([], pa.string())
    sequence = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), tokens), SEQUENCE_SEPARATOR)
    brand = params.item_brand[item]
    columns = {
        LABEL: _decimal(label),
        TIME: pc.strftime(pa.array(times, pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S"),
        USER: _decimal(params.user_id[user]),
        ITEM: _decimal(params.item_id[item]),
        "pid": pa.array(np.array(PIDS)[rng.integers(0, len(PIDS), n)]),
        "cate_id": _decimal(params.item_cate[item] + 1),
        "campaign_id": _decimal(params.item_campaign[item]),
        "customer": _decimal(params.item_customer[item]),
        "brand": _decimal(brand, brand < 0),
        PRICE: _price_text(params.item_price[item]),
    }
    for j, name in enumerate(COLUMNS[10:18]):
        columns[name] = _decimal(profile[:, j], profile[:, j] < 0)
    columns[SEQUENCE] = sequence
    return pa.table([columns[c] for c in COLUMNS], names=COLUMNS), int(label.sum())


def write_synthetic_taobao_ad(directory: str | Path, rows: int, seed: int = 0) -> dict:
    """Write ``train.csv`` and ``test.csv`` in the TaobaoAd_x1 layout into ``directory``.

    ``rows`` in all: ``round(rows * SYNTHETIC_TEST_SHARE)`` (at least 1) go to test.csv (the day
    after the train days), the rest to train.csv. Users have a profile (sometimes missing, fields
    often empty) and a favourite category; a quarter of the rows have an empty click_sequence.
    Planted signal: ``logit = bias + item effect + FAVOURITE_WEIGHT * [item in the user's favourite
    category] + IN_HISTORY_WEIGHT * [item among the row's click_sequence]``. The bytes depend only
    on ``(rows, seed)``; memory is bounded by one chunk of ``SYNTHETIC_CHUNK_ROWS`` rows.
    """
    if rows < 2:
        raise ValueError(f"rows must be >= 2 (train and test both need a row), got {rows}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = _make_taobao_params(seed, rows)
    test_rows = max(1, round(rows * SYNTHETIC_TEST_SHARE))
    sizes = {"train": rows - test_rows, "gold": test_rows}
    options = pa_csv.WriteOptions(include_header=False, delimiter=",", quoting_style="none")
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    facts: dict = {"rows": rows, "seed": seed, "files": {}, "positives": 0}
    for stream, (key, n_rows) in enumerate(sizes.items()):
        path = directory / SPLIT_FILES[key]
        positives = 0
        with atomic_path(path) as temp:
            temp.write_bytes((HEADER + "\n").encode())
            with open(temp, "ab") as handle, pa_csv.CSVWriter(handle, schema, write_options=options) as writer:
                for chunk, start in enumerate(range(0, n_rows, SYNTHETIC_CHUNK_ROWS)):
                    n = min(SYNTHETIC_CHUNK_ROWS, n_rows - start)
                    day = _TRAIN_START + (chunk % 7) * _DAY if key == "train" else _TEST_START
                    table, pos = _synthetic_table(params, np.random.default_rng([seed, 12, stream, chunk]), n, day)
                    writer.write_table(table)
                    positives += pos
        facts["files"][SPLIT_FILES[key]] = {"rows": n_rows, "positives": positives, "bytes": path.stat().st_size}
        facts["positives"] += positives
    facts["train_rows"], facts["test_rows"] = sizes["train"], sizes["gold"]
    facts["label_rate"] = facts["positives"] / rows
    facts["bytes"] = sum(f["bytes"] for f in facts["files"].values())
    return facts


__all__ = [
    "BAD_ROW_KINDS",
    "CATEGORICAL",
    "COLUMNS",
    "HEADER",
    "TaobaoAdBlock",
    "TaobaoAdFormatError",
    "TaobaoAdReader",
    "check_header",
    "output_schema",
    "preprocess_taobao_ad",
    "read_taobao_ad",
    "split_files",
    "stable_hash",
    "write_synthetic_taobao_ad",
]
