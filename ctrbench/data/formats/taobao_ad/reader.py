"""Taobao display-ad click data in FuxiCTR's TaobaoAd_x1 CSV layout (the streaming reader).

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
  streaming, one-pass reader with fixed-size embedding tables (``fields.stable_hash``; an empty
  value -> ``MISSING_ID``). ``click_sequence`` ids are hashed like ``adgroup_id`` values, so a
  clicked item and the same target item get the same id (``shares_vocab_with="adgroup_id"``).
- ``price``: FuxiCTR feeds the raw float (``type: numeric``, no normaliser). Raw prices span
  0.01 .. 10^8, so here ``price`` -> float32 ``sign(x) * log1p(|x|)`` (missing -> 0.0), the same
  transform as the Criteo dense columns.
- gAUC groups: ``group_id`` (int64) is ``stable_hash(userid) >> 1`` (missing -> 0), not the hashed
  ``userid`` feature: with ~1.1M users in 2M bins about 40% of users would share a bin with another
  user and be merged in per-user metrics. ``group_by = "group_id"``, as FuxiCTR's ``group_id``.
- an empty id inside a sequence (``1^^2``, ``^1``, ``1^``) and a non-integer id are bad rows here;
  FuxiCTR maps an empty token to padding.

Reading streams like the other CSV readers (``ctrbench.data.headed_csv``): byte blocks cut at the last newline, a
numpy line scan (physical line numbers, field counts), ``pyarrow.csv`` with every column as raw bytes, then
vectorised validation and transforms over the Arrow buffers (``fields`` parses the hashed ids and
``click_sequence``). No per-row Python anywhere. ``row_id = row_id_offset + physical line``.

Bad rows come in four kinds (``BAD_ROW_KINDS``): wrong field count (also empty lines, carriage
returns inside a line, a truncated last line), ``clk`` not 0/1, ``price`` not a number, and a
malformed ``click_sequence``. With ``max_bad_rows=0`` the first raises a ``TaobaoAdFormatError``
naming file, line, column and problem; otherwise bad rows are skipped and counted (over all input
files together) until more than ``max_bad_rows`` were seen. A header that is not exactly the layout
above is always an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ctrbench.data.fields import parse_float, parse_label, per_chunk
from ctrbench.data.formats.taobao_ad.fields import (
    SEQUENCE_SEPARATOR,
    hash_categorical,
    parse_sequence,
    sequence_problem,
    stable_hash,
)
from ctrbench.data.formats.taobao_ad.options import DEFAULTS
from ctrbench.data.headed_csv import CsvBlock, HeadedCsvReader
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES, MAX_LINE_BYTES, BadRows
from ctrbench.data.schema import ROW_ID

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

BAD_ROW_KINDS = ("field_count", "bad_label", "bad_price", "bad_sequence")  # only these three columns fail


class TaobaoAdFormatError(ValueError):
    """A Taobao ad CSV that does not parse; the message names file, line, column and problem."""


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


class TaobaoAdReader(HeadedCsvReader):
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
        super().__init__(
            path, wanted=COLUMNS, required=COLUMNS, error=TaobaoAdFormatError, layout="TaobaoAd_x1",
            block_bytes=block_bytes, on_bytes=on_bytes, require_rows=True,
        )  # fmt: skip
        self.hash_bins = int(hash_bins)
        self.max_len = int(max_len)
        self.max_bad_rows = int(max_bad_rows)
        self.row_id_offset = int(row_id_offset)
        self._shared_bad = bad
        self._reset()

    def _reset(self) -> None:
        self.bad = self._shared_bad if self._shared_bad is not None else BadRows.of(BAD_ROW_KINDS)
        self._bad_before = self.bad.total

    @property
    def bad_rows(self) -> int:
        """Bad rows of this file (the shared ``bad`` may also count other files')."""
        return self.bad.total - self._bad_before

    def _read_header(self, line: bytes) -> None:
        _check_header_line(self.path, line)  # exactly HEADER, not just its names
        self.header = list(COLUMNS)

    def __iter__(self) -> Iterator[TaobaoAdBlock]:
        self._reset()
        yield from self.parsed(self._parse)

    def _parse(self, raw: CsvBlock) -> TaobaoAdBlock:
        """The good rows of ``raw``, transformed; checked in column order (a row reports its first bad column)."""
        label, bad = per_chunk(raw.column(LABEL), parse_label)
        raw.mark(LABEL, bad, 1, "is not 0 or 1")
        columns: dict[str, np.ndarray] = {
            ROW_ID: (raw.lines + self.row_id_offset).astype(np.int64),
            LABEL: label.astype(np.float32),
        }
        price, _missing, bad = per_chunk(raw.column(PRICE), parse_float)
        raw.mark(PRICE, bad, 2, "is not a number")
        sequence, bad = per_chunk(
            raw.column(SEQUENCE), lambda chunk: parse_sequence(chunk, self.hash_bins, self.max_len)
        )
        raw.mark(SEQUENCE, bad, 3, sequence_problem)
        for name in CATEGORICAL:
            ids, hashes = per_chunk(raw.column(name), lambda chunk: hash_categorical(chunk, self.hash_bins))
            columns[name] = ids
            if name == USER:
                columns[GROUP] = (hashes >> np.uint64(1)).astype(np.int64)
        columns[PRICE] = (np.sign(price) * np.log1p(np.abs(price))).astype(np.float32)
        columns[SEQUENCE] = sequence.reshape(len(raw), self.max_len)
        block = TaobaoAdBlock({name: columns[name] for name, _ in _output_types(self.max_len)})
        keep = raw.settle(self.bad, self.max_bad_rows, TaobaoAdFormatError)
        return block if keep.all() else block.take(keep)


def read_taobao_ad(path: str | Path, **options) -> TaobaoAdBlock:
    """Read a whole (small) file into one ``TaobaoAdBlock``; options as ``TaobaoAdReader``."""
    reader = TaobaoAdReader(path, **options)
    return TaobaoAdBlock.concat(list(reader), reader.max_len)


__all__ = [
    "BAD_ROW_KINDS",
    "CATEGORICAL",
    "COLUMNS",
    "DENSE",
    "GROUP",
    "HEADER",
    "ITEM",
    "LABEL",
    "N_FIELDS",
    "PRICE",
    "SEQUENCE",
    "SEQUENCE_SEPARATOR",
    "TIME",
    "USER",
    "TaobaoAdBlock",
    "TaobaoAdFormatError",
    "TaobaoAdReader",
    "check_header",
    "output_schema",
    "read_taobao_ad",
    "stable_hash",
]
