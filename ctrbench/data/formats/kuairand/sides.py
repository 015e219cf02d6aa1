"""The KuaiRand feature files (users, video basics, video statistics): streaming readers into tables by local id.

Each file is read by header name with quoting on (``"(0,10]"``, ``"12,54,60"``), a block at a time; only the rows
of users or videos that the logs hold are kept, written straight into arrays indexed by local id (``SideTable``), so
memory follows the vocabulary, not the file. Values:

- ids (``user_id``, ``video_id``, ``author_id``, ``music_id``) and codes (``is_live_streamer``, ``onehot_feat4``,
  ``music_type``): whole numbers written as integers or as floats (``87433.0``, ``4.0``); not a whole number ->
  ``bad_integer``; empty -> missing (an empty key -> ``bad_integer``);
- tokens (``user_active_degree``, the ``_range`` buckets, ``video_type``, ``upload_type``, the first ``tag``):
  any string, empty -> missing;
- numbers (``video_duration``, the statistics): decimal or scientific, empty -> missing (NaN); else ``bad_number``.

A key read a second time (in the same or another file of the kind) is a bad row of kind ``duplicate_id``: the first
one read is kept. Bad rows count against the run's one ``max_bad_rows``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctrbench.data.fields import parse_float, per_chunk
from ctrbench.data.formats.kuairand.layout import BAD_INTEGER, BAD_NUMBER, DUPLICATE_ID, KuaiRandFormatError
from ctrbench.data.formats.kuairand.vocab import MISSING_INT, TokenVocab, local_ids, whole_numbers
from ctrbench.data.headed_csv import CsvBlock, HeadedCsvReader
from ctrbench.data.raw_input import input_hasher
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES, BadRows

# how a column is read: "id" / "code" (whole numbers), "token" (strings), "first_token" (the first of a comma
# list), "number" (floats)
KINDS = ("id", "code", "token", "first_token", "number")


@dataclass
class SideFile:
    """What was read from one feature file (as ``logs.LogFile``): lines, data lines, rows kept, sha256."""

    path: Path
    lines: int = 0
    data_lines: int = 0
    rows: int = 0
    sha256: str | None = None


@dataclass
class SideTable:
    """One kind of feature file, by local id (``index 0`` = padding): ``values[column]`` is int64 (ids and codes,
    ``MISSING_INT`` where missing), int32 (tokens: provisional ids, see ``tokens``) or float32 (numbers, NaN where
    missing); ``found[i]`` whether key ``i`` had a row."""

    key: str
    columns: Mapping[str, str]  # column -> kind
    size: int  # local ids 1..size
    values: dict[str, np.ndarray] = field(default_factory=dict)
    found: np.ndarray = field(default=None)
    tokens: dict[str, TokenVocab] = field(default_factory=dict)
    files: list[SideFile] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.found = np.zeros(self.size + 1, bool)
        for name, kind in self.columns.items():
            if kind in ("id", "code"):
                self.values[name] = np.full(self.size + 1, MISSING_INT, np.int64)
            elif kind == "number":
                self.values[name] = np.full(self.size + 1, np.nan, np.float32)
            else:
                self.values[name] = np.zeros(self.size + 1, np.int32)
                self.tokens[name] = TokenVocab()

    @property
    def matched(self) -> int:
        """Keys of the vocabulary that had a row."""
        return int(self.found.sum())


def _parse(block: CsvBlock, name: str, kind: str, is_key: bool):
    """One column of a block: parsed values (numpy), or the raw column for tokens; bad values marked."""
    column = block.column(name)
    if kind in ("id", "code"):
        values, missing, bad = whole_numbers(column)
        if is_key:
            bad |= missing | (values < 0)
        what = "is not a non-negative whole number" if is_key else "is not a whole number (at most 2**53)"
        block.mark(name, bad, BAD_INTEGER, what)
        return values
    if kind == "number":
        values, missing, bad = per_chunk(column, parse_float)
        block.mark(name, bad, BAD_NUMBER, "is not a number")
        return np.where(missing | bad, np.nan, values).astype(np.float32)
    if kind == "first_token":
        return pa.chunked_array(
            [pc.list_element(pc.split_pattern(c, ",", max_splits=1), 0) for c in column.chunks], pa.binary()
        )
    return column


def _duplicates(local: np.ndarray, candidates: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Which ``candidates`` rows repeat a key (``local`` id): read in an earlier block, or earlier in this one."""
    repeat = np.zeros(len(local), bool)
    rows = np.flatnonzero(candidates)
    order = rows[np.argsort(local[rows], kind="stable")]
    repeat[order[1:][local[order][1:] == local[order][:-1]]] = True
    repeat[rows] |= found[local[rows]]
    return repeat


def read_side(
    paths: Sequence[Path],
    table: SideTable,
    vocabulary: np.ndarray,
    bad: BadRows,
    *,
    max_bad_rows: int,
    input_hash: str,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    on_bytes: Callable[[int], None] | None = None,
    layout: str = "KuaiRand feature file",
) -> SideTable:
    """Fill ``table`` from the files ``paths`` (in order): the rows whose key is in ``vocabulary`` (sorted raw ids;
    local id = position + 1). Every column of ``table.columns`` is required in each header."""
    wanted = [table.key, *table.columns]
    kinds = {table.key: "id", **table.columns}
    for path in paths:
        record = SideFile(path)
        table.files.append(record)
        hasher = input_hasher(input_hash)
        csv = HeadedCsvReader(
            path, wanted=wanted, required=wanted, error=KuaiRandFormatError, layout=layout, quote_char='"',
            block_bytes=block_bytes, hasher=hasher, on_bytes=on_bytes,
        )  # fmt: skip
        try:
            for block in csv:
                values = {name: _parse(block, name, kinds[name], name == table.key) for name in csv.present}
                position, member = local_ids(vocabulary, values[table.key])
                member &= block.first_bad < 0
                repeat = _duplicates(position + 1, member, table.found)
                block.mark(table.key, repeat, DUPLICATE_ID, f"repeats a {table.key} read before (the first is kept)")
                keep = block.settle(bad, max_bad_rows, KuaiRandFormatError) & member
                local = position[keep] + 1
                table.found[local] = True
                record.rows += len(local)
                for name, kind in table.columns.items():
                    if kind in ("token", "first_token"):
                        table.values[name][local] = table.tokens[name].encode(values[name].filter(pa.array(keep)))
                    else:
                        table.values[name][local] = values[name][keep]
        except BaseException:
            if hasher is not None:
                hasher.close()
            raise
        record.sha256 = hasher.hexdigest() if hasher is not None else None
        record.lines, record.data_lines = csv.lines, csv.data_lines
    return table


__all__ = ["KINDS", "SideFile", "SideTable", "read_side"]
