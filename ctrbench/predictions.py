"""Per-row gold predictions: what a gold evaluation scored, row by row, kept beside its record.

One Parquet file per run (``gold_predictions.parquet``): ``row_id`` (the gold split's own row id, in its order),
then per task ``label:<task>`` (int8; null where the task's label is unknown on that row) and ``prob:<task>``
(float32), and ``group`` (the user id gAUC groups by) where the split has one. The labels ride along so that any
metric can be recomputed, and any two models compared row by row, without the checkpoint or the gold file; the
record (``GoldRecord.predictions``) keeps the file's sha256, which ``read_predictions`` checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctrbench.atomic import atomic_path
from ctrbench.provenance import sha256_file

PREDICTIONS_FILE = "gold_predictions.parquet"  # beside the run's gold_eval.json
ROW_ID = "row_id"
GROUP = "group"


class PredictionsError(ValueError):
    """A predictions file that does not match its record, or another run's gold rows."""


@dataclass
class GoldPredictions:
    """One run's predictions: ``labels``, ``probs`` and ``known`` are ``[N, T]`` (``known``: the label exists)."""

    tasks: list[str]
    row_id: np.ndarray  # [N] int64
    labels: np.ndarray  # [N, T] float64, 0 where unknown
    probs: np.ndarray  # [N, T] float64
    known: np.ndarray  # [N, T] bool
    groups: np.ndarray | None  # [N] int64

    def task(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row ids, labels, probabilities) of the rows where ``name``'s label is known."""
        i = self.tasks.index(name)
        rows = self.known[:, i]
        return self.row_id[rows], self.labels[rows, i], self.probs[rows, i]


def write_predictions(
    path: str | Path,
    tasks: list[str],
    row_id: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    mask: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> str:
    """Write the file (whole or not at all) and return its sha256. ``labels``/``probs``/``mask`` are ``[N, T]``."""
    if len(row_id) != len(probs):
        raise ValueError(f"{len(row_id)} row ids for {len(probs)} predicted rows")
    columns = {ROW_ID: pa.array(np.asarray(row_id, np.int64))}
    for i, task in enumerate(tasks):
        unknown = None if mask is None else ~np.asarray(mask[:, i], bool)
        columns[f"label:{task}"] = pa.array(np.asarray(labels[:, i]).astype(np.int8), mask=unknown)
        columns[f"prob:{task}"] = pa.array(np.asarray(probs[:, i], np.float32))
    if groups is not None:
        columns[GROUP] = pa.array(np.asarray(groups, np.int64))
    with atomic_path(path) as temporary:
        pq.write_table(pa.table(columns), temporary)
    return sha256_file(path)


def read_predictions(path: str | Path, tasks: list[str], sha256: str | None = None) -> GoldPredictions:
    """Read one run's predictions of ``tasks``; with ``sha256`` (its record's), the file must be the one scored."""
    if sha256 is not None and (found := sha256_file(path)) != sha256:
        raise PredictionsError(f"{path}: sha256 {found[:12]} is not the {sha256[:12]} its gold record names (rerun its gold_eval)")
    table = pq.read_table(path)
    wanted = [ROW_ID] + [f"{kind}:{task}" for task in tasks for kind in ("label", "prob")]
    if missing := [name for name in wanted if name not in table.column_names]:
        raise PredictionsError(f"{path}: no column {', '.join(missing)}")
    labels = [table.column(f"label:{task}") for task in tasks]
    return GoldPredictions(
        tasks=list(tasks),
        row_id=table.column(ROW_ID).to_numpy(),
        labels=np.stack([c.fill_null(0).to_numpy().astype(np.float64) for c in labels], axis=1),
        probs=np.stack([table.column(f"prob:{task}").to_numpy().astype(np.float64) for task in tasks], axis=1),
        known=np.stack([c.is_valid().to_numpy(zero_copy_only=False) for c in labels], axis=1),
        groups=table.column(GROUP).to_numpy() if GROUP in table.column_names else None,
    )
