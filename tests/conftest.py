from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctrbench.data.schema import Feature, FeatureMap, tasks_of

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def write_processed_split(path: Path, feature_map: FeatureMap, rows: int, seed: int) -> None:
    """A processed split with a planted signal: the label depends on c0 and on dense d0."""
    rng = np.random.default_rng(seed)
    columns = {"row_id": np.arange(rows, dtype=np.int64)}
    for f in feature_map.categorical:
        columns[f.name] = rng.integers(0, f.vocab_size, rows).astype(np.int32)
    for f in feature_map.dense:
        columns[f.name] = rng.normal(size=rows).astype(np.float32)
    logit = np.where(columns["c0"] % 2 == 0, 1.5, -1.5) + columns["d0"]
    columns["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    pq.write_table(pa.table(columns), path)


@pytest.fixture
def tiny_processed(tmp_path) -> dict:
    """train / valid / gold parquet files and feature map of a small flat dataset."""
    fm = FeatureMap(
        dataset="tiny",
        tasks=tasks_of(["label"]),
        features=[Feature("d0", "dense"), Feature("d1", "dense")]
        + [Feature(f"c{i}", "categorical", vocab_size=20) for i in range(3)],
    )
    paths = {"feature_map": tmp_path / "feature_map.json"}
    fm.save(paths["feature_map"])
    for i, (split, rows) in enumerate({"train": 2048, "valid": 512, "gold": 512}.items()):
        paths[split] = tmp_path / f"{split}.parquet"
        write_processed_split(paths[split], fm, rows, seed=i)
    paths["events"] = tmp_path / "events.parquet"  # every processed dataset has one (empty: no history by reference)
    pq.write_table(pa.table({}), paths["events"])
    return paths
