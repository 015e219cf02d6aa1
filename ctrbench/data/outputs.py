"""The outputs of a preprocessor: their paths, the split writers and the all-or-nothing publish.

Every output is written under a partial name in its final folder (``StagedOutputs``) and renamed
only after all of them succeeded; ``manifest.json`` is renamed last, so a run that fails leaves
nothing that looks complete, and ``discard`` removes what a failed run wrote.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctrbench.atomic import partial_path
from ctrbench.data.manifest import DataManifest, OutputFile, SplitSummary
from ctrbench.data.schema import EVENTS_FILE
from ctrbench.provenance import sha256_file
from ctrbench.results import write_record

# parquet layout of the processed splits, shared by the formats' writers
ROW_GROUP_ROWS = 1 << 17
EVENT_ROW_GROUP_ROWS = 1 << 20  # the event table of histories by reference: a few int32 ids per event
COMPRESSION = "zstd"
# distinct ids per hashed field are counted with one bool per id; above this many bins it is not "cheap"
MAX_DISTINCT_BINS = 1 << 24

OUTPUT_FILES = {
    "train": "train.parquet",
    "valid": "valid.parquet",
    "gold": "gold.parquet",
    "events": EVENTS_FILE,  # histories stored by reference; empty for formats without them
    "feature_map": "feature_map.json",
    "manifest": "manifest.json",
}


def output_paths(out_dir: str | Path | None, outputs: Mapping[str, str | Path] | None) -> dict[str, Path]:
    """Path of every key of ``OUTPUT_FILES``: under ``out_dir``, or as ``outputs`` says (it wins)."""
    paths = {k: Path(out_dir) / name for k, name in OUTPUT_FILES.items()} if out_dir is not None else {}
    for key, value in (outputs or {}).items():
        if key not in OUTPUT_FILES:
            raise ValueError(f"unknown output {key!r}; expected some of {list(OUTPUT_FILES)}")
        paths[key] = Path(value)
    if "events" not in paths and "train" in paths:  # the loader finds the event table beside the splits
        paths["events"] = paths["train"].parent / EVENTS_FILE
    missing = [k for k in OUTPUT_FILES if k not in paths]
    if missing:
        raise ValueError(f"no path for outputs {missing}: give out_dir or outputs with every key")
    if len({p.resolve() for p in paths.values()}) != len(paths):
        raise ValueError(f"two outputs share a path: {paths}")
    return paths


class SplitWriter:
    """Streams one split to parquet in row groups of exactly ``row_group_rows`` rows.

    Takes blocks (``len``, ``take``, ``to_arrow`` and a ``columns[label]`` array per label), joined by
    ``concat`` (a list of blocks -> one block) before each row group is cut. ``label``: the label
    column, or the task columns of a multi-task dataset (``positives`` counts the first one's,
    ``task_positives`` each one's, which ``summary`` lists for a multi-task dataset only). With
    ``background`` the parquet encoding runs on a thread of its own (pyarrow releases the GIL), one
    table at a time and in order, so the bytes are the same; call ``settle`` before discarding after
    a failure. ``use_dictionary`` as ``pq.ParquetWriter``'s (e.g. only the
    low-cardinality columns: dictionary pages of nearly unique columns cost time and bytes).
    """

    WRITES_QUEUED = 2

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        row_group_rows: int,
        compression: str,
        *,
        concat: Callable[[list], object],
        label: str | Sequence[str],
        background: bool = False,
        use_dictionary: bool | list[str] = True,
    ):
        self.path = path
        self.row_group_rows = row_group_rows
        self.concat = concat
        self.multi_task = not isinstance(label, str)
        self.labels = (label,) if isinstance(label, str) else tuple(label)
        self.task_positives = dict.fromkeys(self.labels, 0.0)
        self.writer = pq.ParquetWriter(path, schema, compression=compression, use_dictionary=use_dictionary)
        self.pending: list = []
        self.pending_rows = 0
        self.rows = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet") if background else None
        self._writing: deque[Future] = deque()

    def add(self, block) -> None:
        if not len(block):
            return
        self.rows += len(block)
        for label in self.labels:
            self.task_positives[label] += float(block.columns[label].sum(dtype=np.float64))
        self.pending.append(block)
        self.pending_rows += len(block)
        if self.pending_rows >= self.row_group_rows:
            self._flush(final=False)

    @property
    def positives(self) -> float:
        """Positives of the (first) label."""
        return self.task_positives[self.labels[0]]

    def summary(self, planned_rows: int | None = None) -> SplitSummary:
        """The manifest's record of the split written: rows, positives, label rate, and the positives of every
        task where ``label`` named the task columns."""
        tasks = self.task_positives if self.multi_task else None
        return SplitSummary.of(self.rows, self.positives, planned_rows=planned_rows, task_positives=tasks)

    def _flush(self, final: bool) -> None:
        merged = self.concat(self.pending)
        full = len(merged) if final else len(merged) // self.row_group_rows * self.row_group_rows
        if full:
            self._write(merged.take(slice(0, full)).to_arrow())
        rest = merged.take(slice(full, None))
        self.pending, self.pending_rows = ([rest] if len(rest) else []), len(rest)

    def _write(self, table: pa.Table) -> None:
        if self._pool is None:
            self.writer.write_table(table, row_group_size=self.row_group_rows)
            return
        # up to WRITES_QUEUED tables wait for the one thread (in order): a slow row group does not
        # stall the caller at once, and memory stays bounded
        self._wait(keep=self.WRITES_QUEUED - 1)
        self._writing.append(self._pool.submit(self.writer.write_table, table, row_group_size=self.row_group_rows))

    def _wait(self, keep: int = 0) -> None:
        while len(self._writing) > keep:
            self._writing.popleft().result()

    def finish(self) -> None:
        """Write the last, partial row group (in the background: close several writers' at once)."""
        if self.pending_rows:
            self._flush(final=True)

    def close(self) -> None:
        self.finish()
        self._wait()
        self.writer.close()
        if self._pool is not None:
            self._pool.shutdown()

    def settle(self) -> None:
        """After a failure: drop queued writes, let the running one end (its error is not raised), stop the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._writing.clear()


class StagedOutputs:
    """``paths`` (as from ``output_paths``) written under partial names, published together.

    Creates the output folders; write each output to ``temps[key]``, then ``publish`` the
    manifest, or call ``discard`` when the run fails.
    """

    def __init__(self, paths: Mapping[str, Path]):
        self.paths = dict(paths)
        for path in self.paths.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        self.temps = {k: partial_path(p) for k, p in self.paths.items()}

    def describe(self, keys: Iterable[str]) -> dict[str, OutputFile]:
        """Manifest entries of the written outputs ``keys`` and of the event table: path relative to the manifest's
        folder, bytes, sha256. A reader that keeps no histories by reference writes no event table: an empty one is
        written here, so every processed dataset has the same files."""
        if not self.temps["events"].exists():
            pq.write_table(pa.table({}), self.temps["events"])
        return {
            key: OutputFile(
                path=os.path.relpath(self.paths[key], self.paths["manifest"].parent),
                bytes=self.temps[key].stat().st_size,
                sha256=sha256_file(self.temps[key]),
            )
            for key in dict.fromkeys([*keys, "events"])
        }

    def publish(self, manifest: DataManifest) -> dict:
        """Write ``manifest``, then rename the outputs it describes in order, the manifest last; returns the
        manifest as written (JSON types)."""
        write_record(self.temps["manifest"], manifest)
        # a stale manifest must not describe the new files while they are being renamed
        self.paths["manifest"].unlink(missing_ok=True)
        for key in (*manifest.outputs, "manifest"):
            os.replace(self.temps[key], self.paths[key])
        return manifest.model_dump(mode="json")

    def discard(self, writers: Iterable = ()) -> None:
        """After a failure: close ``writers`` (anything with ``close``) and delete every partial file."""
        for writer in writers:
            with contextlib.suppress(Exception):  # already failing: cleanup is best effort
                writer.close()
        for temp in self.temps.values():
            temp.unlink(missing_ok=True)
