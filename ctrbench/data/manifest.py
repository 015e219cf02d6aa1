"""The preprocessing manifest (``manifest.json``): one versioned record for every format, which the report reads.

What every processed dataset states the same way: the raw inputs and how they were identified, the options
the data depends on, rows read, written and left out (bad rows, and rows dropped for another reason, by kind),
each split's rows and label rate (and time range, where the split is by time), and every output's sha256.
What only one format knows (its transforms, event counts, vocabulary sizes) goes in ``details``, which the
report does not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from ctrbench.results import StrictRecord, VersionedRecord

MANIFEST_VERSION = 1


class InputFile(StrictRecord):
    path: str
    bytes: int
    hash: Literal["sha256", "size+mtime"]  # how the file is identified (raw_input.INPUT_HASHES)
    sha256: str | None  # None when identified by size and mtime
    mtime: str | None = None  # UTC, ISO 8601; with hash size+mtime
    lines: int  # physical lines, header included
    data_lines: int
    row_id_offset: int = 0  # row ids of this file's lines start here (formats with one file per split)


class RowCounts(StrictRecord):
    read: int  # data lines read
    written: int  # rows in the splits
    bad: int  # bad rows skipped (bad_rows)


class SplitSummary(StrictRecord):
    rows: int
    positives: int  # of the first task
    label_rate: float | None  # None for an empty split
    planned_rows: int | None = None  # before bad rows were dropped, where the split is drawn by count
    task_positives: dict[str, int] | None = None  # multi-task datasets: positives of every task

    @classmethod
    def of(
        cls,
        rows: int,
        positives: float,
        *,
        planned_rows: int | None = None,
        task_positives: Mapping[str, float] | None = None,
    ) -> SplitSummary:
        """The summary of a split of ``rows`` rows with ``positives`` positives (of the first task; counts may come
        as floats, sums of float labels): the label rate, None for an empty split."""
        return cls(
            rows=rows,
            positives=int(positives),
            label_rate=positives / rows if rows else None,
            planned_rows=planned_rows,
            task_positives=None if task_positives is None else {t: int(n) for t, n in task_positives.items()},
        )


class SplitTimes(StrictRecord):
    """Where splits are cut by time: local ISO 8601 moments. train = [first_event, valid_start), valid =
    [valid_start, gold_start), gold = [gold_start, last_event]."""

    first_event: str
    valid_start: str
    gold_start: str
    last_event: str


class OutputFile(StrictRecord):
    path: str  # relative to the manifest's folder
    bytes: int
    sha256: str


class DataManifest(VersionedRecord):
    REBUILD: ClassVar[str] = "rerun the dataset's preprocess job"

    kind: Literal["ctrbench.data_manifest"] = "ctrbench.data_manifest"
    version: Literal[1] = MANIFEST_VERSION
    dataset: str
    format: str
    inputs: dict[str, InputFile]  # "raw" for one-file formats; per split (TaobaoAd, AliExpress) or file name (KuaiRand)
    options: dict  # the format's options, then the layout knobs the run used (block and row-group sizes, compression)
    rows: RowCounts
    bad_rows: dict[str, int]  # by kind, every kind of the format listed
    bad_row_examples: list[str]
    dropped: dict[str, int]  # rows left out for other reasons than being malformed, by kind
    splits: dict[str, SplitSummary]
    split_times: SplitTimes | None
    outputs: dict[str, OutputFile]
    packages: dict[str, str]
    details: dict  # facts of this format only (transforms, event and vocabulary counts); not read by the report
