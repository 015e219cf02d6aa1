"""The raw Avazu CTR layout (Kaggle's ``train``; FuxiCTR/BARS ``Avazu_x4`` before its 8:1:1 split): the reader.

Layout: one CSV with a header, comma-separated, no quoting::

    id, click, hour, C1, banner_pos, site_id, site_domain, site_category, app_id, app_domain, app_category,
    device_id, device_ip, device_model, device_type, device_conn_type, C14, C15, C16, C17, C18, C19, C20, C21

``id`` (up to 20 digits, beyond int64) is not a feature and is not read. ``click`` is the 0/1 label. ``hour`` is
``YYMMDDHH`` (``14102100`` = 2014-10-21, 00:00 to 01:00). The 21 other columns are categorical, taken as strings
(hex ids such as ``1fbe01fe``, small integers such as ``1005``, ``-1``); they become ids through a vocabulary of
the train split (``ctrbench.data.vocabulary``). From ``hour`` come three more categorical fields, as FuxiCTR's
Avazu_x4 preprocessing derives them (``convert_hour``, ``convert_weekday``, ``convert_weekend``)::

    hour    = HH                                  (0..23, the hour of day)
    weekday = day of week of 20YY-MM-DD, %w style (0 = Sunday .. 6 = Saturday)
    weekend = 1 if weekday in {0, 6} else 0

so a row has the 24 fields of the published runs (``FEATURES``). Reading streams like the other headed-CSV
readers (``ctrbench.data.headed_csv``: blocks of complete lines, physical line numbers, columns by header name).
Bad rows are of three kinds (``BAD_ROW_KINDS``): a wrong field count, a label not 0/1, an ``hour`` that is not
a valid ``YYMMDDHH``; with ``max_bad_rows=0`` the first raises ``AvazuFormatError`` naming file, line, column and
value, otherwise they are skipped and counted until more than ``max_bad_rows`` were seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ctrbench.data.csv_header import read_header
from ctrbench.data.fields import parse_label, per_chunk
from ctrbench.data.headed_csv import CsvBlock, HeadedCsvReader
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES, BadRows
from ctrbench.data.stamps import parse_stamps
from ctrbench.data.vocab_splits import KeyBlock
from ctrbench.data.vocabulary import hash_column

LABEL = "click"
STAMP = "hour"  # the raw YYMMDDHH column
CATEGORICAL = [
    "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id", "app_domain", "app_category",
    "device_id", "device_ip", "device_model", "device_type", "device_conn_type",
    *(f"C{i}" for i in range(14, 22)),
]  # fmt: skip
COLUMNS = ["id", LABEL, STAMP, *CATEGORICAL]  # the release's order (headers are read by name)
DERIVED = ["hour", "weekday", "weekend"]  # from the raw hour; "hour" is then the hour of day
FEATURES = [*CATEGORICAL, *DERIVED]
LAYOUT = "raw Avazu"
BAD_ROW_KINDS = ("field_count", "bad_label", "bad_hour")
_LABEL, _HOUR = 1, 2  # indices into BAD_ROW_KINDS
DERIVED_RULE = {
    "hour": "HH of hour = YYMMDDHH (0..23)",
    "weekday": "day of week of 20YY-MM-DD, 0 = Sunday .. 6 = Saturday (FuxiCTR's strftime('%w'))",
    "weekend": "1 when weekday is 0 or 6, else 0",
}


class AvazuFormatError(ValueError):
    """An Avazu CSV that does not parse; the message names file, line, column and problem."""


def check_header(path: str | Path) -> list[str]:
    """The file's column names; ``AvazuFormatError`` when it is empty or lacks a column (``id`` may be absent)."""
    return read_header(path, COLUMNS[1:], layout=LAYOUT, error=AvazuFormatError)


class AvazuReader(HeadedCsvReader):
    """Iterate over a raw Avazu CSV as ``KeyBlock``s: label, the 21 categorical columns as 64-bit keys of their
    strings, the derived hour / weekday / weekend (keys = their values), and each row's split from ``assign``
    (``(data line indices from 0, YYMMDDHH stamps) -> int8 split``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        assign: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        max_bad_rows: int = 0,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        on_bytes: Callable[[int], None] | None = None,
        bad: BadRows | None = None,
    ):
        if max_bad_rows < 0 or block_bytes < 1:
            raise ValueError("max_bad_rows must be >= 0 and block_bytes >= 1")
        wanted = COLUMNS[1:]
        super().__init__(
            path, wanted=wanted, required=wanted, error=AvazuFormatError, layout=LAYOUT, block_bytes=block_bytes,
            on_bytes=on_bytes, require_rows=True,
        )  # fmt: skip
        self.assign = assign or (lambda lines, stamps: np.zeros(len(lines), np.int8))
        self.max_bad_rows = int(max_bad_rows)
        self.bad = bad if bad is not None else BadRows.of(BAD_ROW_KINDS)
        self.first_stamp = self.last_stamp = None

    def __iter__(self) -> Iterator[KeyBlock]:
        yield from self.parsed(self._parse)

    def _parse(self, raw: CsvBlock) -> KeyBlock:
        label, bad = per_chunk(raw.column(LABEL), parse_label)
        raw.mark(LABEL, bad, _LABEL, "is not 0 or 1")
        parts = [parse_stamps(chunk) for chunk in raw.column(STAMP).chunks or [pa.array([], pa.binary())]]
        stamps, bad = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
        raw.mark(STAMP, bad, _HOUR, "is not a YYMMDDHH hour (a real date, hour 00-23)")
        keep = raw.settle(self.bad, self.max_bad_rows, AvazuFormatError)
        lines = raw.lines[keep].astype(np.int64)
        keys = {}
        for name in CATEGORICAL:
            values, missing = hash_column(raw.column(name))
            keys[name] = (values[keep], missing[keep])
        for name in DERIVED:
            values = np.concatenate([p[0][name] for p in parts])[keep]
            keys[name] = (values, np.zeros(len(values), bool))
        stamps = stamps[keep]
        if len(stamps):
            low, high = int(stamps.min()), int(stamps.max())
            self.first_stamp = low if self.first_stamp is None else min(self.first_stamp, low)
            self.last_stamp = high if self.last_stamp is None else max(self.last_stamp, high)
        split = self.assign(lines - 2, stamps)  # data line 0 is physical line 2
        return KeyBlock(row_id=lines, label=label[keep].astype(np.float32), split=split, keys=keys)


def read_avazu(path: str | Path, **options) -> list[KeyBlock]:
    """Every block of a (small) file; options as ``AvazuReader``."""
    return list(AvazuReader(path, **options))


__all__ = [
    "BAD_ROW_KINDS",
    "CATEGORICAL",
    "COLUMNS",
    "DERIVED",
    "DERIVED_RULE",
    "FEATURES",
    "LABEL",
    "AvazuFormatError",
    "AvazuReader",
    "check_header",
    "read_avazu",
]
