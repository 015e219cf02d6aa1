"""The data model shared by every reader, model and report: which columns a processed dataset has.

A processed dataset is three parquet files (train / valid / gold) plus ``feature_map.json``.
Every column is one of four kinds, so flat, sequence and multi-task datasets fit one model:

- ``dense``:       float32 scalar, already transformed (e.g. log1p);
- ``categorical``: int32 local id in ``[0, vocab_size)``; id 0 is reserved for missing values;
- ``sequence``:    fixed-size list<int32> of ``max_len`` ids, padded with 0, most recent last;
                   ``shares_vocab_with`` names a categorical feature whose table it reuses
                   (a history of item ids shares the target item's embedding);
- labels:          one float32 column per task (``labels`` lists them in task order).

``group_by`` optionally names an int column (e.g. user id) that per-group metrics (gAUC) use.
``row_id`` (int64) is the source line number of each row, kept for provenance and split checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

FORMAT_VERSION = 1
MISSING_ID = 0  # reserved categorical id for a missing value, and the sequence padding id
ROW_ID = "row_id"

FeatureType = Literal["dense", "categorical", "sequence"]


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    vocab_size: int | None = None  # categorical / sequence: number of embedding rows
    max_len: int | None = None  # sequence only
    shares_vocab_with: str | None = None  # sequence only: name of a categorical feature


@dataclass
class FeatureMap:
    dataset: str
    labels: list[str]
    features: list[Feature]
    group_by: str | None = None
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # reader-specific facts (hash bins, transforms)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"feature map of {self.dataset!r}: duplicate feature names")
        for f in self.features:
            if f.type in ("categorical", "sequence") and not (f.vocab_size and f.vocab_size > 0):
                raise ValueError(f"feature {f.name!r}: {f.type} needs a positive vocab_size")
            if f.type == "sequence" and not (f.max_len and f.max_len > 0):
                raise ValueError(f"feature {f.name!r}: sequence needs a positive max_len")
            if f.shares_vocab_with is not None and f.shares_vocab_with not in names:
                raise ValueError(f"feature {f.name!r} shares the vocabulary of unknown {f.shares_vocab_with!r}")
        if not self.labels:
            raise ValueError(f"feature map of {self.dataset!r}: no label column")

    def of_type(self, kind: FeatureType) -> list[Feature]:
        return [f for f in self.features if f.type == kind]

    @property
    def dense(self) -> list[Feature]:
        return self.of_type("dense")

    @property
    def categorical(self) -> list[Feature]:
        return self.of_type("categorical")

    @property
    def sequences(self) -> list[Feature]:
        return self.of_type("sequence")

    @property
    def num_tasks(self) -> int:
        return len(self.labels)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "FeatureMap":
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"feature map format {data.get('format_version')!r} is not the supported {FORMAT_VERSION}"
            )
        data = dict(data)
        data["features"] = [Feature(**f) for f in data["features"]]
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "FeatureMap":
        return cls.from_json(json.loads(Path(path).read_text()))
