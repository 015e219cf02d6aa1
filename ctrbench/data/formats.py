"""Dataset formats: for each raw layout a config's ``format`` names, how to preprocess it and how
to write a synthetic file in that layout (the embedded default goes through the real reader)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ctrbench.data.criteo import DEFAULT_HASH_BINS
from ctrbench.data.preprocess import preprocess_criteo
from ctrbench.data.synthetic import write_synthetic_criteo


@dataclass(frozen=True)
class DatasetFormat:
    preprocess: Callable[..., dict]  # (raw_path, outputs, dataset_name, options) -> manifest
    write_synthetic: Callable[..., dict]  # (path, rows, seed) -> facts about what was planted


def _preprocess_criteo(raw_path: str | Path, outputs: dict, dataset_name: str, dataset: dict, progress: bool) -> dict:
    splits = dict(dataset["splits"])
    splits.setdefault("train", "rest")
    return preprocess_criteo(
        raw_path,
        outputs=outputs,
        dataset_name=dataset_name,
        hash_bins=dataset.get("hash_bins", DEFAULT_HASH_BINS),
        max_bad_rows=dataset.get("max_bad_rows", 0),
        splits=splits,
        split_seed=dataset.get("split_seed", 0),
        progress=progress,
        **dataset.get("reader", {}),
    )


FORMATS: dict[str, DatasetFormat] = {
    "criteo_dac": DatasetFormat(preprocess=_preprocess_criteo, write_synthetic=write_synthetic_criteo),
}
