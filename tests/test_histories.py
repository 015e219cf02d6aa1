"""Histories stored by reference: the loader's gather equals a plain-Python rebuild, at any max_len."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ctrbench.data.schema import EVENTS_FILE, Feature, FeatureMap, FeatureMapError, SequenceGroup, tasks_of
from ctrbench.data.sources import InMemorySource, StreamingSource, in_memory_bytes

GROUP = SequenceGroup("history", max_len=5, storage="events", start="history_start", end="history_end")
FM = FeatureMap(
    dataset="ref", tasks=tasks_of(["label"]), sequence_groups=[GROUP],
    features=[Feature("item_id", "categorical", vocab_size=1000),
              Feature("item_history", "sequence", vocab_size=1000, shares_vocab_with="item_id", group="history"),
              Feature("category_history", "sequence", vocab_size=50, group="history")],
)  # fmt: skip


@pytest.fixture
def dataset(tmp_path):
    """30 users with 0..40 events each; every sample points at a prefix of its user's events."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 41, 30)
    items = rng.integers(1, 1000, lengths.sum()).astype(np.int32)
    categories = rng.integers(1, 50, lengths.sum()).astype(np.int32)
    pq.write_table(pa.table({"item_history": items, "category_history": categories}), tmp_path / EVENTS_FILE)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    user = rng.integers(0, 30, 400)
    ends = starts[user] + (rng.random(400) * (lengths[user] + 1)).astype(np.int64)
    pq.write_table(pa.table({
        "row_id": np.arange(400, dtype=np.int64), "label": rng.integers(0, 2, 400).astype(np.float32),
        "item_id": np.arange(1, 401, dtype=np.int32),  # unique: it names the row in the batches
        "history_start": starts[user].astype(np.int64), "history_end": ends,
    }), tmp_path / "train.parquet", row_group_size=64)  # fmt: skip
    return {
        "items": items,
        "categories": categories,
        "start": starts[user],
        "end": ends,
        "path": tmp_path / "train.parquet",
    }


def rebuilt(events: np.ndarray, start: int, end: int, max_len: int) -> list[int]:
    history = [int(e) for e in events[start:end]][-max_len:]
    return [0] * (max_len - len(history)) + history


@pytest.mark.parametrize("max_len", [1, 5, 64])
def test_gathered_histories_equal_a_plain_rebuild(dataset, max_len):
    fm = FM.with_max_lens({"history": max_len})
    batch = InMemorySource(dataset["path"], fm).data.batch(slice(None))
    for name, events in (("item_history", dataset["items"]), ("category_history", dataset["categories"])):
        assert batch.sequences[name].shape == (400, max_len)
        expected = [rebuilt(events, s, e, max_len) for s, e in zip(dataset["start"], dataset["end"])]
        assert batch.sequences[name].tolist() == expected
    assert (batch.sequences["item_history"][dataset["end"] == dataset["start"]] == 0).all()  # empty histories


def test_streaming_gathers_the_same_histories(dataset):
    memory = InMemorySource(dataset["path"], FM)
    streaming = StreamingSource(dataset["path"], FM, shuffle_buffer_rows=100)
    # row (its unique item id) -> its history
    a = {
        int(r): s.tolist()
        for b in memory.eval_batches(64)
        for r, s in zip(b.categorical[:, 0], b.sequences["item_history"])
    }
    b = {
        int(r): s.tolist()
        for b in streaming.eval_batches(64)
        for r, s in zip(b.categorical[:, 0], b.sequences["item_history"])
    }
    assert len(a) == 400 and a == b


def test_only_groups_stored_by_reference_take_another_max_len():
    with pytest.raises(FeatureMapError, match="no sequence group of that name stored by reference"):
        FM.with_max_lens({"clicks": 10})
    fixed = FeatureMap(
        dataset="fixed", tasks=tasks_of(["label"]), sequence_groups=[SequenceGroup("history", 5)],
        features=[Feature("item_id", "categorical", vocab_size=9), Feature("item_history", "sequence", vocab_size=9, group="history")],
    )  # fmt: skip
    with pytest.raises(FeatureMapError, match=r"history \(fixed\)"):
        fixed.with_max_lens({"history": 10})
    with pytest.raises(FeatureMapError, match="needs start and end columns exactly when it is 'events'"):
        FeatureMap(dataset="x", tasks=tasks_of(["label"]), features=[Feature("c", "categorical", vocab_size=2)],
                   sequence_groups=[SequenceGroup("h", 5, storage="events")])  # fmt: skip


def test_groups_read_one_event_column_each_over_their_own_bounds(dataset, tmp_path):
    """Per-behaviour histories over one event table: two groups name the same event column (``event_column``) and
    each gathers it within its own [start, end). The column is read once."""
    recent = SequenceGroup("recent", max_len=3, storage="events", start="recent_start", end="recent_end")
    fm = FeatureMap(
        dataset="ref", tasks=tasks_of(["label"]), sequence_groups=[GROUP, recent],
        features=[Feature("item_id", "categorical", vocab_size=1000),
                  Feature("item_history", "sequence", vocab_size=1000, shares_vocab_with="item_id", group="history"),
                  Feature("recent_items", "sequence", vocab_size=1000, group="recent", event_column="item_history")],
    )  # fmt: skip
    assert fm.event_columns() == ["item_history"]
    table = pq.read_table(dataset["path"])
    recent_start = np.maximum(dataset["start"], dataset["end"] - 2)  # the last two events only
    table = table.append_column("recent_start", pa.array(recent_start)).append_column(
        "recent_end", pa.array(dataset["end"])
    )
    pq.write_table(table, dataset["path"])
    assert FeatureMap.from_json(fm.to_json()) == fm
    batch = InMemorySource(dataset["path"], fm).data.batch(slice(None))
    expected = [rebuilt(dataset["items"], s, e, 3) for s, e in zip(recent_start, dataset["end"])]
    assert batch.sequences["recent_items"].tolist() == expected
    assert (batch.sequences["recent_items"][:, 0] == 0).all()  # two events at most in a window of three
    assert batch.sequences["item_history"].tolist() == [
        rebuilt(dataset["items"], s, e, 5) for s, e in zip(dataset["start"], dataset["end"])
    ]
    assert "event_column" not in FM.to_json()["features"][1]  # unset: not written, feature maps keep their bytes
    with pytest.raises(FeatureMapError, match="names an event column, but its group is not stored by reference"):
        FeatureMap(dataset="x", tasks=tasks_of(["label"]), sequence_groups=[SequenceGroup("h", 5)],
                   features=[Feature("s", "sequence", vocab_size=9, group="h", event_column="t")])  # fmt: skip


def test_groups_with_times_give_each_event_its_gap_to_the_row(dataset):
    """A group naming an event-table ``timestamp`` and a split ``row_time`` gets ``Batch.time_gaps``: the row's time
    minus each gathered event's, 0 on padding; the streaming loader (whose batches join chunks) gives the same."""
    rng = np.random.default_rng(1)
    n_events = len(dataset["items"])
    event_time = np.sort(rng.integers(1_600_000_000, 1_600_100_000, n_events)).astype(np.int32)
    events = pq.read_table(dataset["path"].parent / EVENTS_FILE).append_column("time_s", pa.array(event_time))
    pq.write_table(events, dataset["path"].parent / EVENTS_FILE)
    row_time = (1_600_200_000 + np.arange(400)).astype(np.int64)
    pq.write_table(pq.read_table(dataset["path"]).append_column("when", pa.array(row_time)), dataset["path"], row_group_size=64)
    timed = SequenceGroup(
        "history", max_len=5, storage="events", start="history_start", end="history_end", timestamp="time_s", row_time="when"
    )
    fm = FeatureMap(dataset="ref", tasks=FM.tasks, features=FM.features, sequence_groups=[timed])
    assert fm.event_columns() == ["item_history", "category_history", "time_s"] and "when" in fm.columns()
    assert in_memory_bytes(dataset["path"], fm) - in_memory_bytes(dataset["path"], FM) == 400 * 8  # int64 row times
    assert FeatureMap.from_json(fm.to_json()) == fm and "row_time" not in FM.to_json()["sequence_groups"][0]
    batch = InMemorySource(dataset["path"], fm).data.batch(slice(None))
    for row, (s, e) in enumerate(zip(dataset["start"], dataset["end"])):
        times = [int(t) for t in event_time[s:e]][-5:]
        assert batch.time_gaps["history"][row].tolist() == [0] * (5 - len(times)) + [int(row_time[row]) - t for t in times]
    streaming = StreamingSource(dataset["path"], fm, shuffle_buffer_rows=100)
    streamed = next(streaming.train_batches(150, seed=0))  # 150 rows: a batch joined from two chunks
    expected = InMemorySource(dataset["path"], fm).data.batch(streamed.categorical[:, 0] - 1)  # item id = row + 1
    assert torch.equal(streamed.time_gaps["history"], expected.time_gaps["history"])
    with pytest.raises(FeatureMapError, match="timestamp .* and row_time .* go together"):
        FeatureMap(dataset="x", tasks=FM.tasks, features=FM.features,
                   sequence_groups=[SequenceGroup("history", 5, storage="events", start="a", end="b", timestamp="t")])  # fmt: skip
    with pytest.raises(FeatureMapError, match="only in a group stored by reference"):
        FeatureMap(dataset="x", tasks=FM.tasks, features=[FM.features[0]],
                   sequence_groups=[SequenceGroup("history", 5, timestamp="t", row_time="w")])  # fmt: skip
