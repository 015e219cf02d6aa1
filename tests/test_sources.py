"""Batch sources: the streaming source visits every row once per pass in a seeded order, memory bounded by its
buffer; both sources shard global batches over data-parallel processes."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctrbench.data.schema import Feature, FeatureMap, tasks_of
from ctrbench.data.sources import InMemorySource, StreamingSource, in_memory_bytes, open_source

FM = FeatureMap(dataset="s", tasks=tasks_of(["label"]), features=[Feature("c0", "categorical", vocab_size=10**6), Feature("d0", "dense")])


def write_split(path, rows: int, row_group_rows: int) -> None:
    """c0 holds the row's index, so batches say which rows they hold."""
    table = pa.table({
        "row_id": np.arange(rows, dtype=np.int64), "label": (np.arange(rows) % 2).astype(np.float32),
        "c0": np.arange(rows, dtype=np.int32), "d0": np.zeros(rows, np.float32),
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=row_group_rows)


def rows_of(batches) -> np.ndarray:
    return np.concatenate([b.categorical[:, 0].numpy() for b in batches])


def test_streaming_pass_visits_every_row_once_in_a_seeded_order(tmp_path):
    write_split(tmp_path / "t.parquet", 10_000, 700)
    source = StreamingSource(tmp_path / "t.parquet", FM, shuffle_buffer_rows=2000)
    passes = {}
    for seed, pass_index in [(1, 0), (1, 0), (1, 1), (2, 0)]:
        order = np.concatenate([rows.categorical[:, 0].numpy()[index.numpy()] for rows, index in source.pass_rows(seed, pass_index)])
        assert np.array_equal(np.sort(order), np.arange(10_000))  # every row exactly once
        passes.setdefault((seed, pass_index), []).append(order)
    assert np.array_equal(*passes[(1, 0)])  # same seed and pass: same order, across runs
    assert not np.array_equal(passes[(1, 0)][0], passes[(1, 1)][0])  # the next pass: another order
    assert not np.array_equal(passes[(1, 0)][0], passes[(2, 0)][0])
    assert not np.array_equal(passes[(1, 0)][0], np.arange(10_000))  # shuffled


def test_streaming_training_batches_cover_each_pass_exactly(tmp_path):
    write_split(tmp_path / "t.parquet", 1000, 64)
    source = StreamingSource(tmp_path / "t.parquet", FM, shuffle_buffer_rows=200)
    batches = source.train_batches(128, seed=0)
    first = rows_of(next(batches) for _ in range(1000 // 128))  # 896 rows, all of pass 0
    assert len(np.unique(first)) == len(first) == 896
    rest = rows_of([next(batches)])  # pass 0's last 104 rows open the next batch, then pass 1 begins
    assert set(np.arange(1000)) - set(first) == set(rest[:104])
    assert all(len(next(batches)) == 128 for _ in range(20))


@pytest.mark.parametrize("kind", ["memory", "streaming"])
def test_processes_share_global_batches_without_overlap(tmp_path, kind):
    write_split(tmp_path / "t.parquet", 4096, 256)
    make = (lambda: InMemorySource(tmp_path / "t.parquet", FM)) if kind == "memory" else (
        lambda: StreamingSource(tmp_path / "t.parquet", FM, shuffle_buffer_rows=512))
    shards = [make().train_batches(256, seed=5, rank=r, world_size=2) for r in range(2)]
    for _ in range(8):
        a, b = (rows_of([next(s)]) for s in shards)
        assert len(a) == len(b) == 128 and not set(a) & set(b)
    if kind == "memory":  # the two shares of a global batch are exactly one process's batch
        whole = make().train_batches(256, seed=5)
        shards = [make().train_batches(256, seed=5, rank=r, world_size=2) for r in range(2)]
        for _ in range(4):
            assert np.array_equal(rows_of([next(whole)]), np.concatenate([rows_of([next(s)]) for s in shards]))
    evaluated = [rows_of(make().eval_batches(1000, rank=r, world_size=2)) for r in range(2)]
    assert np.array_equal(np.sort(np.concatenate(evaluated)), np.arange(4096))


def test_batch_size_must_split_over_the_processes(tmp_path):
    write_split(tmp_path / "t.parquet", 100, 50)
    with pytest.raises(ValueError, match="split evenly over 3 processes"):
        next(InMemorySource(tmp_path / "t.parquet", FM).train_batches(64, seed=0, rank=0, world_size=3))


def test_auto_streams_above_the_memory_limit(tmp_path):
    write_split(tmp_path / "t.parquet", 50_000, 5000)
    size = in_memory_bytes(tmp_path / "t.parquet", FM)
    assert size == 50_000 * (4 + 4 + 4)  # label, c0, d0 as float32 / int32 / float32 tensors
    assert open_source(tmp_path / "t.parquet", FM, {"kind": "auto", "memory_limit_mb": size / 2**20 * 2}).kind == "memory"
    assert open_source(tmp_path / "t.parquet", FM, {"kind": "auto", "memory_limit_mb": size / 2**20 / 2}).kind == "streaming"
    with pytest.raises(ValueError, match="loader kind"):
        open_source(tmp_path / "t.parquet", FM, {"kind": "mmap"})


def test_streaming_holds_one_buffer_not_the_split(tmp_path):
    """The rows held at once are at most the shuffle buffer plus one row group, whatever the split's size
    (bench/loader.py measures the peak RSS this gives on 1x and 10x the rows)."""
    for rows in (20_000, 200_000):
        write_split(tmp_path / f"{rows}.parquet", rows, 1500)
        source = StreamingSource(tmp_path / f"{rows}.parquet", FM, shuffle_buffer_rows=4000)
        held = [len(chunk) for chunk, _ in source.pass_rows(0, 0)]
        assert sum(held) == rows and max(held) < 4000 + 1500
