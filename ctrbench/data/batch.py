"""Batched tensors: processed parquet rows as column tensors, and the batches models consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ctrbench.data.schema import FeatureMap


@dataclass
class Batch:
    """One mini-batch; B is the batch size, T the number of tasks. Every model's ``forward`` takes exactly this."""

    labels: torch.Tensor  # [B, T] float32
    label_mask: torch.Tensor | None = None  # [B, T] bool, True where the label is known; None: all known
    categorical: torch.Tensor | None = None  # [B, n_categorical] int64 local ids, FeatureMap order
    dense: torch.Tensor | None = None  # [B, n_dense] float32
    sequences: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [B, max_len] int64
    group: torch.Tensor | None = None  # [B] int64, for per-group metrics

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(
            labels=move(self.labels),
            label_mask=move(self.label_mask),
            categorical=move(self.categorical),
            dense=move(self.dense),
            sequences={k: move(v) for k, v in self.sequences.items()},
            group=move(self.group),
        )


def table_columns(table: pa.Table, feature_map: FeatureMap) -> dict[str, np.ndarray]:
    """The columns of ``feature_map.columns()`` as numpy arrays; sequences as ``[N, max_len]`` (no Python lists)."""
    columns = {}
    for f in feature_map.sequences:
        col = table.column(f.name).combine_chunks()
        # fixed_size_list<int32>[L] -> [N, L]; writable (one copy): torch.from_numpy warns on arrow's read-only buffers
        values = col.values if col.offset == 0 else col.flatten()
        max_len = feature_map.max_len(f)
        columns[f.name] = values.to_numpy(zero_copy_only=False, writable=True)[: len(col) * max_len].reshape(len(col), max_len)
    for name in feature_map.columns():
        if name not in columns:
            columns[name] = table.column(name).to_numpy()
    return columns


class TensorDataset:
    """Rows held as a few contiguous column tensors (int32 ids to halve memory).

    Indexing with a tensor of row indices returns a ``Batch``: one gather per column kind,
    no per-row Python.
    """

    def __init__(self, feature_map: FeatureMap, columns: dict[str, np.ndarray]):
        self.feature_map = fm = feature_map

        def stack(names: list[str], dtype) -> torch.Tensor | None:
            if not names:
                return None
            return torch.from_numpy(np.stack([np.asarray(columns[n], dtype=dtype) for n in names], axis=1))

        self.labels = stack(fm.labels, np.float32)
        # a task without a mask column is known on every row
        self.label_mask = None
        if any(fm.masks):
            known = [np.asarray(columns[m]) > 0 if m else np.ones(len(self.labels), bool) for m in fm.masks]
            self.label_mask = torch.from_numpy(np.stack(known, axis=1))
        self.categorical = stack([f.name for f in fm.categorical], np.int32)
        self.dense = stack([f.name for f in fm.dense], np.float32)
        self.sequences = {f.name: torch.from_numpy(np.asarray(columns[f.name], dtype=np.int32)) for f in fm.sequences}
        # np.array copies: arrow's buffers are read-only, which torch.from_numpy warns about
        self.group = torch.from_numpy(np.array(columns[fm.group_by], dtype=np.int64)) if fm.group_by else None

    def __len__(self) -> int:
        return self.labels.shape[0]

    def batch(self, index: torch.Tensor | slice) -> Batch:
        take = lambda t: None if t is None else t[index]  # noqa: E731
        cat = take(self.categorical)
        return Batch(
            labels=self.labels[index],
            label_mask=take(self.label_mask),
            categorical=None if cat is None else cat.long(),
            dense=take(self.dense),
            sequences={k: v[index].long() for k, v in self.sequences.items()},
            group=take(self.group),
        )

    def iter_batches(self, batch_size: int):
        """Batches in file order (evaluation)."""
        for start in range(0, len(self), batch_size):
            yield self.batch(slice(start, start + batch_size))

    @classmethod
    def from_table(cls, table: pa.Table, feature_map: FeatureMap) -> TensorDataset:
        return cls(feature_map, table_columns(table, feature_map))

    @classmethod
    def from_parquet(cls, path: str | Path, feature_map: FeatureMap) -> TensorDataset:
        return cls.from_table(pq.read_table(path, columns=feature_map.columns()), feature_map)
