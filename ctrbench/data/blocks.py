"""A block of processed rows as numpy columns, the unit readers hand to ``outputs.SplitWriter``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass
class ColumnBlock:
    """Rows as one numpy array per column of ``schema`` (all of one length), in schema order."""

    schema: pa.Schema
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns[self.schema.names[0]])

    def take(self, index) -> ColumnBlock:
        return ColumnBlock(self.schema, {name: values[index] for name, values in self.columns.items()})

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_arrays([pa.array(self.columns[f.name], f.type) for f in self.schema], schema=self.schema)

    @staticmethod
    def empty(schema: pa.Schema) -> ColumnBlock:
        return ColumnBlock(schema, {f.name: np.empty(0, f.type.to_pandas_dtype()) for f in schema})

    @staticmethod
    def concat(blocks: list[ColumnBlock], schema: pa.Schema) -> ColumnBlock:
        if not blocks:
            return ColumnBlock.empty(schema)
        return ColumnBlock(schema, {f.name: np.concatenate([b.columns[f.name] for b in blocks]) for f in schema})


__all__ = ["ColumnBlock"]
