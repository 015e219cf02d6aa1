"""Seeded train / valid / gold assignment: exact sizes, determinism, streaming, and the written-file check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctrbench.data.formats.criteo_dac.preprocess import preprocess_criteo
from ctrbench.data.formats.criteo_dac.synthetic import write_synthetic_criteo
from ctrbench.data.splits import (
    DEFAULT_SPLITS,
    SplitAssigner,
    SplitCheckError,
    UnusableSplitError,
    assign_splits,
    check_split_files,
    check_split_labels,
    resolve_split_counts,
)

HEAD50 = Path(__file__).parent / "data" / "criteo" / "train_head50.txt"


@pytest.mark.parametrize("total", [0, 1, 2, 7, 10, 1001, 123_457])
def test_fractions_give_exact_counts(total):
    counts = resolve_split_counts(total, DEFAULT_SPLITS)
    assert list(counts) == ["train", "valid", "gold"]
    assert sum(counts.values()) == total
    for name, fraction in DEFAULT_SPLITS.items():
        assert abs(counts[name] - fraction * total) < 1  # largest remainder: off by less than one row


def test_row_counts_and_rest():
    assert resolve_split_counts(10_000, {"valid": 1000, "gold": 1000, "train": "rest"}) == {
        "train": 8000,
        "valid": 1000,
        "gold": 1000,
    }
    assert resolve_split_counts(1000, {"train": "rest", "valid": 0.05, "gold": 0.05}) == {
        "train": 900,
        "valid": 50,
        "gold": 50,
    }
    assert resolve_split_counts(30, {"train": 10, "valid": 10, "gold": 10}) == {"train": 10, "valid": 10, "gold": 10}
    # key order in a config does not change the result
    assert list(resolve_split_counts(30, {"gold": 10, "train": 10, "valid": 10})) == ["train", "valid", "gold"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"train": 0.8, "valid": 0.1, "gold": 0.05}, "sum to"),
        ({"train": 0.8, "valid": 100, "gold": "rest"}, "do not mix"),
        ({"train": "rest", "valid": "rest", "gold": 10}, "at most one"),
        ({"train": 50, "valid": 60, "gold": "rest"}, "only 100 data lines"),
        ({"train": 10, "valid": 10, "gold": 10}, "use 'rest'"),
        ({"train": "all", "valid": 1, "gold": 1}, "must be a fraction"),
        ({"train": -1, "valid": 1, "gold": "rest"}, "negative"),
    ],
)
def test_bad_split_specs_are_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_split_counts(100, spec)


def test_assignment_is_exact_disjoint_and_seeded():
    total = 200_001  # several split blocks, last one partial
    a = assign_splits(total, DEFAULT_SPLITS, seed=7)
    b = assign_splits(total, DEFAULT_SPLITS, seed=7)
    c = assign_splits(total, DEFAULT_SPLITS, seed=8)
    counts = resolve_split_counts(total, DEFAULT_SPLITS)
    for name in a:
        assert len(a[name]) == counts[name]
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["valid"], c["valid"])
    everything = np.concatenate(list(a.values()))
    assert len(everything) == total and len(np.unique(everything)) == total  # disjoint and complete
    # spread over the whole file, not bunched: each tenth of the file holds ~10% of valid
    share = np.bincount(a["valid"] * 10 // total, minlength=10) / len(a["valid"])
    assert np.all(np.abs(share - 0.1) < 0.01)


def test_streaming_requests_match_one_shot_assignment():
    counts = resolve_split_counts(150_000, {"valid": 0.1, "gold": 0.1, "train": "rest"})
    full = SplitAssigner(counts, seed=1).labels_all()
    streamed = SplitAssigner(counts, seed=1)
    rng = np.random.default_rng(0)
    pos, parts, asked = 0, [], []
    while pos < 150_000:  # irregular I/O blocks with gaps (skipped bad lines)
        step = int(rng.integers(1, 20_000))
        lines = np.arange(pos, min(pos + step, 150_000))
        lines = lines[rng.random(len(lines)) > 0.01]
        parts.append(streamed.labels_for(lines))
        asked.append(lines)
        pos += step
    streamed.finish()
    np.testing.assert_array_equal(np.concatenate(parts), full[np.concatenate(asked)])
    with pytest.raises(ValueError, match="in order"):
        streamed.labels_for(np.array([10]))


def test_requests_past_the_counted_lines_fail():
    assigner = SplitAssigner({"train": 8, "valid": 1, "gold": 1}, seed=0)
    with pytest.raises(ValueError, match="past the 10 data lines"):
        assigner.labels_for(np.array([10]))


def write_ids(path: Path, ids) -> Path:
    pq.write_table(pa.table({"row_id": pa.array(ids, pa.int64())}), path)
    return path


def test_check_split_files(tmp_path):
    paths = {
        "train": write_ids(tmp_path / "t.parquet", [1, 2, 5, 7]),
        "valid": write_ids(tmp_path / "v.parquet", [3, 6]),
        "gold": write_ids(tmp_path / "g.parquet", [4, 8]),
    }
    assert check_split_files(paths, expected_total=8) == {"train": 4, "valid": 2, "gold": 2}
    with pytest.raises(SplitCheckError, match="hold 8 rows"):
        check_split_files(paths, expected_total=9)
    with pytest.raises(SplitCheckError, match="differ"):
        check_split_files(paths, expected_counts={"train": 4, "valid": 3, "gold": 2})

    paths["gold"] = write_ids(tmp_path / "g.parquet", [4, 6])
    with pytest.raises(SplitCheckError, match="row_id 6 is in both valid and gold"):
        check_split_files(paths)
    paths["gold"] = write_ids(tmp_path / "g.parquet", [8, 4, 8])
    with pytest.raises(SplitCheckError, match="twice"):
        check_split_files(paths)
    paths["gold"] = write_ids(tmp_path / "g.parquet", [0])
    with pytest.raises(SplitCheckError, match="1-based"):
        check_split_files(paths)


def split_of_rows(out: Path) -> dict[int, str]:
    owner = {}
    for name in ("train", "valid", "gold"):
        for row_id in pq.read_table(out / f"{name}.parquet").column("row_id").to_pylist():
            owner[row_id] = name
    return owner


def test_preprocess_splits_are_seeded_and_independent_of_bad_rows(tmp_path):
    raw = tmp_path / "raw.tsv"
    write_synthetic_criteo(raw, 2000, seed=3)
    run = lambda src, out, seed, **kw: preprocess_criteo(
        src, tmp_path / out, options={"hash_bins": 100, "split_seed": seed}, progress=False, **kw
    )
    run(raw, "a", 1)
    run(raw, "b", 1, block_bytes=10_000)
    run(raw, "c", 2)
    a, b, c = split_of_rows(tmp_path / "a"), split_of_rows(tmp_path / "b"), split_of_rows(tmp_path / "c")
    assert a == b and a != c
    assert sorted(a) == list(range(1, 2001))

    lines = raw.read_text().splitlines(keepends=True)
    lines[99] = "2" + lines[99][1:]  # line 100: bad label, skipped
    broken = tmp_path / "broken.tsv"
    broken.write_text("".join(lines))
    manifest = preprocess_criteo(
        broken, tmp_path / "d", options={"hash_bins": 100, "split_seed": 1, "max_bad_rows": 1}, progress=False
    )
    d = split_of_rows(tmp_path / "d")
    assert 100 not in d and {k: v for k, v in a.items() if k != 100} == d  # no other row moved
    assert manifest["splits"][a[100]]["rows"] == manifest["splits"][a[100]]["planned_rows"] - 1


def test_preprocess_with_row_counts(tmp_path):
    manifest = preprocess_criteo(
        HEAD50, tmp_path, options={"hash_bins": 100, "splits": {"valid": 7, "gold": 3}}, progress=False
    )
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == {"train": 40, "valid": 7, "gold": 3}
    with pytest.raises(ValueError, match=r"criteo_dac options: splits: 'valid' is a required property"):
        preprocess_criteo(HEAD50, tmp_path / "x", options={"splits": {"train": 0.9, "test": 0.1}}, progress=False)


def test_check_split_labels_names_the_first_unusable_split():
    def hint(name: str) -> str:
        return f"why {name}"

    ok = {"train": (10, 3.0), "valid": (5, 1.0), "gold": (5, 4.0)}
    check_split_labels(ok, source="raw.txt", empty_hint=hint)  # both labels everywhere: no error
    cases = [
        ({**ok, "valid": (0, 0.0)}, "raw.txt: valid split is empty: why valid"),
        (
            {**ok, "gold": (5, 0.0)},
            "raw.txt: gold split has a single class: all its 5 rows have label 0 (AUC needs both); more gold",
        ),
        (
            {**ok, "train": (10, 10.0), "valid": (0, 0.0)},  # in counts order: train first
            "raw.txt: train split has a single class: all its 10 rows have label 1 (AUC needs both); more train",
        ),
    ]
    for counts, message in cases:
        with pytest.raises(UnusableSplitError) as error:
            check_split_labels(counts, source="raw.txt", empty_hint=hint, single_class_hint=lambda n: f"more {n}")
        assert str(error.value) == message
    # positives unknown (sizes planned before reading): only emptiness is checked
    check_split_labels({"train": (10, None)}, source="raw.txt", empty_hint=hint)
    with pytest.raises(UnusableSplitError, match="train split is empty"):
        check_split_labels({"train": (0, None)}, source="raw.txt", empty_hint=hint)


def test_check_split_labels_of_several_tasks_allows_a_single_class_task_but_not_all():
    """Multi-task: a task with one class in a split is returned (its AUC there is undefined), not an error;
    an empty split, or one where every task has one class, is."""
    hint = lambda name: f"why {name}"
    counts = {
        "train": (10, {"click": 3.0, "like": 0.0}),
        "valid": (5, {"click": 1.0, "like": 5.0}),
        "gold": (5, {"click": 2.0, "like": 1.0}),
    }
    assert check_split_labels(counts, source="raw", empty_hint=hint) == {
        "train": ["like"],
        "valid": ["like"],
        "gold": [],
    }
    with pytest.raises(UnusableSplitError) as error:
        check_split_labels({**counts, "gold": (5, {"click": 0.0, "like": 5.0})}, source="raw", empty_hint=hint)
    assert str(error.value) == (
        "raw: gold split has a single class in every task: all its 5 rows have click=0, like=1 "
        "(AUC needs both labels of at least one task)"
    )
    with pytest.raises(UnusableSplitError, match="raw: valid split is empty: why valid"):
        check_split_labels({**counts, "valid": (0, {"click": 0.0, "like": 0.0})}, source="raw", empty_hint=hint)
    # one task given as a mapping is the one-task rule
    with pytest.raises(UnusableSplitError, match="train split has a single class: all its 10 rows have label 1"):
        check_split_labels({"train": (10, {"click": 10.0})}, source="raw", empty_hint=hint)
