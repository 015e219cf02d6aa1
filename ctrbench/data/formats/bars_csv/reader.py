"""The FuxiCTR / BARS CSV splits (``train.csv``, ``valid.csv``, ``test.csv``): the reader of one such file.

Layout: a header, comma-separated, no quoting; one 0/1 label column (named in the config: ``label`` in Avazu_x1,
``click`` in Avazu_x2 / x4, ``Label`` in Criteo_x4; ``0.0`` / ``1.0`` are read too) and feature columns declared
as categorical (every value a string: hex ids, integers already encoded by another project, anything) or numeric
(a decimal number, empty -> 0.0), or derived from a ``YYMMDDHH`` column (hour of day, weekday, weekend, as
FuxiCTR derives them for Avazu_x4: ``ctrbench.data.stamps``). Columns are taken by header name; columns no one asked for are skipped.
Categorical values become 64-bit keys of their bytes (``ctrbench.data.vocabulary``), ids come later from the train
split's vocabulary. Bad rows are of four kinds (``BAD_ROW_KINDS``): a wrong field count, a label not 0/1, a
numeric value that is not a number, a derived field's source that is not a YYMMDDHH hour; with ``max_bad_rows=0`` the first raises ``BarsFormatError`` naming file,
line, column and value, otherwise they are skipped and counted until more than ``max_bad_rows`` were seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from ctrbench.data.fields import parse_float, parse_label, per_chunk
from ctrbench.data.headed_csv import CsvBlock, HeadedCsvReader
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES, BadRows
from ctrbench.data.stamps import STAMP_PROBLEM, derived_column
from ctrbench.data.vocab_splits import KeyBlock
from ctrbench.data.vocabulary import hash_column

LAYOUT = "BARS CSV"
BAD_ROW_KINDS = ("field_count", "bad_label", "bad_number", "bad_hour")
_LABEL, _NUMBER, _HOUR = 1, 2, 3  # indices into BAD_ROW_KINDS


class BarsFormatError(ValueError):
    """A BARS CSV that does not parse; the message names file, line, column and problem."""


def parse_label_number(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``0`` / ``1`` (or any number equal to 0 or 1, e.g. ``1.0``) -> (float32 label, bad)."""
    label, bad = parse_label(arr)
    if bad.any():
        values, missing, not_number = parse_float(arr)
        fixed = bad & ~missing & ~not_number & ((values == 0) | (values == 1))
        label[fixed], bad = values[fixed].astype(np.float32), bad & ~fixed
    return label, bad


class BarsReader(HeadedCsvReader):
    """Iterate over one split file as ``KeyBlock``s (categorical keys: ``categorical``, then ``derived``, a name ->
    ``{from: column, kind: hour_of_day | weekday | weekend}``). ``assign``: the split (int8 index into train, valid, gold) of
        each row from its data line index (0 = the line after the header); ``row_id_offset`` is added to the physical
        line (files numbered as if concatenated)."""

    def __init__(
        self,
        path: str | Path,
        *,
        label: str,
        categorical: Sequence[str],
        numeric: Sequence[str] = (),
        derived: Mapping[str, Mapping[str, str]] | None = None,
        assign: Callable[[np.ndarray], np.ndarray] | None = None,
        row_id_offset: int = 0,
        max_bad_rows: int = 0,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        on_bytes: Callable[[int], None] | None = None,
        bad: BadRows | None = None,
    ):
        if max_bad_rows < 0 or block_bytes < 1 or row_id_offset < 0:
            raise ValueError("max_bad_rows and row_id_offset must be >= 0 and block_bytes >= 1")
        self.derived = {name: dict(spec) for name, spec in (derived or {}).items()}
        sources = [spec["from"] for spec in self.derived.values()]
        wanted = list(dict.fromkeys([label, *categorical, *numeric, *sources]))
        super().__init__(
            path, wanted=wanted, required=wanted, error=BarsFormatError, layout=LAYOUT, block_bytes=block_bytes,
            on_bytes=on_bytes, require_rows=True,
        )  # fmt: skip
        self.label, self.categorical, self.numeric = label, list(categorical), list(numeric)
        self.assign = assign or (lambda lines: np.zeros(len(lines), np.int8))
        self.row_id_offset = int(row_id_offset)
        self.max_bad_rows = int(max_bad_rows)
        self.bad = bad if bad is not None else BadRows.of(BAD_ROW_KINDS)
        self.numeric_missing = 0

    def __iter__(self) -> Iterator[KeyBlock]:
        yield from self.parsed(self._parse)

    def _parse(self, raw: CsvBlock) -> KeyBlock:
        label, bad = per_chunk(raw.column(self.label), parse_label_number)
        raw.mark(self.label, bad, _LABEL, "is not 0 or 1")
        numbers, missing_numbers = {}, np.zeros(len(raw), np.int64)
        for name in self.numeric:
            values, missing, bad = per_chunk(raw.column(name), parse_float)
            raw.mark(name, bad, _NUMBER, "is not a number")
            numbers[name], missing_numbers = values.astype(np.float32), missing_numbers + missing
        derived = {}
        for name, spec in self.derived.items():
            derived[name], bad = derived_column(raw.column(spec["from"]), spec["kind"])
            raw.mark(spec["from"], bad, _HOUR, STAMP_PROBLEM)
        keep = raw.settle(self.bad, self.max_bad_rows, BarsFormatError)
        self.numeric_missing += int(missing_numbers[keep].sum())
        keys = {}
        for name in self.categorical:
            values, missing = hash_column(raw.column(name))
            keys[name] = (values[keep], missing[keep])
        for name, values in derived.items():
            keys[name] = (values[keep], np.zeros(int(keep.sum()), bool))
        lines = raw.lines[keep].astype(np.int64)
        return KeyBlock(
            row_id=lines + self.row_id_offset,
            label=label[keep].astype(np.float32),
            split=self.assign(lines - 2),
            keys=keys,
            numeric={name: values[keep] for name, values in numbers.items()},
        )


__all__ = ["BAD_ROW_KINDS", "LAYOUT", "BarsFormatError", "BarsReader", "parse_label_number"]
