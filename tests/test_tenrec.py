"""Tenrec QB-Video / QK-Video: reader, splits by position, per-behaviour histories by reference.

No public sample of the Tenrec files exists (tests/data/README.md, PROVENANCE): the reader is tested on files
written here in the exact layout (header ``user_id,item_id,click,follow,like,share,video_category,
watching_times,gender,age``, ``\\N`` for missing values), by hand and by ``write_synthetic_tenrec``.
"""

import csv
import hashlib

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from ctrbench.data.formats import FORMATS
from ctrbench.data.formats.tenrec.preprocess import preprocess_tenrec
from ctrbench.data.formats.tenrec.reader import MISSING, TenrecFormatError, TenrecReader, read_tenrec
from ctrbench.data.formats.tenrec.samples import split_starts
from ctrbench.data.formats.tenrec.synthetic import write_synthetic_tenrec
from ctrbench.data.outputs import output_paths
from ctrbench.data.schema import FeatureMap
from ctrbench.data.sources import InMemorySource
from ctrbench.data.splits import SPLITS, UnusableSplitError

HEADER = "user_id,item_id,click,follow,like,share,video_category,watching_times,gender,age"
BEHAVIORS = ("click", "like", "follow", "share")
GOOD = "7,100,1,0,1,0,3,2,1,4"


def write(path, lines, header=HEADER):
    path.write_text(header + "\n" + "".join(line + "\n" for line in lines))
    return path


def test_reader_reads_nulls_as_missing_and_columns_by_header_name(tmp_path):
    lines = [GOOD, "7,101,0,1,0,1,\\N,\\N,\\N,\\N", "8,100,0,0,0,0,,0,2,"]
    block = read_tenrec(write(tmp_path / "a.csv", lines))
    assert block.columns["line"].tolist() == [2, 3, 4]
    assert block.columns["video_category"].tolist() == [3, MISSING, MISSING]
    assert block.columns["watching_times"].tolist() == [2, MISSING, 0]
    assert block.columns["age"].tolist() == [4, MISSING, MISSING]
    assert [block.columns[b].tolist() for b in BEHAVIORS] == [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]]
    # another column order and a column the reader does not need: the same rows
    names = HEADER.split(",")
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    shuffled = [",".join([line.split(",")[i] for i in order] + ["5"]) for line in lines]
    reader = TenrecReader(write(tmp_path / "b.csv", shuffled, ",".join([names[i] for i in order] + ["exposure"])))
    blocks = list(reader)
    assert reader.extra_columns == ["exposure"]
    assert {k: v.tolist() for k, v in blocks[0].columns.items()} == {k: v.tolist() for k, v in block.columns.items()}
    assert reader.missing == {"video_category": 2, "gender": 1, "age": 2, "watching_times": 1}


BAD_LINES = [
    ("7,100,1,0,1,0,3,2,1", "field_count", r"expected 10 comma-separated fields, found 9"),
    ("x7,100,1,0,1,0,3,2,1,4", "bad_id", r"column user_id: 'x7' is not a non-negative integer id"),
    ("7,\\N,1,0,1,0,3,2,1,4", "bad_id", r"column item_id: '\\\\N' is not a non-negative integer id"),
    ("7,100,1,0,2,0,3,2,1,4", "bad_label", r"column like: '2' is not 0 or 1"),
    ("7,100,1,0,1,0,3,2,1,4.5", "bad_integer", r"column age: '4.5' is not an integer or \\N"),
    ("7,100,1,0,1,0,3,-2,1,4", "bad_integer", r"column watching_times: '-2' is not a non-negative integer or \\N"),
]


@pytest.mark.parametrize(("line", "kind", "message"), BAD_LINES)
def test_every_bad_row_kind_names_file_line_and_problem_or_is_counted(tmp_path, line, kind, message):
    path = write(tmp_path / "raw.csv", [GOOD, line, GOOD])
    with pytest.raises(TenrecFormatError, match=rf"raw.csv:3: {message}"):
        read_tenrec(path)
    reader = TenrecReader(path, max_bad_rows=1)
    assert sum(len(b) for b in reader) == 2
    assert reader.bad.total == reader.bad.counts[kind] == 1
    assert reader.bad.examples[0].startswith(f"{path}:3: ")


def test_a_file_of_bad_rows_only_has_no_data_rows(tmp_path):
    path = write(tmp_path / "raw.csv", [GOOD[:-2], "x" + GOOD])
    with pytest.raises(TenrecFormatError, match=r"raw.csv: no data rows \(2 lines, all bad or none\)"):
        read_tenrec(path, max_bad_rows=5)


def test_missing_file_header_lacking_a_column_and_empty_file_are_errors(tmp_path):
    out = output_paths(tmp_path / "out", None)
    with pytest.raises(FileNotFoundError, match=r"nope.csv: no such file"):
        preprocess_tenrec(tmp_path / "nope.csv", outputs=out, progress=False)
    assert FORMATS["tenrec"].path_problem(tmp_path / "nope.csv") is not None
    path = write(tmp_path / "raw.csv", [GOOD[: GOOD.rindex(",")]], HEADER[: HEADER.rindex(",")])
    with pytest.raises(TenrecFormatError, match=r"raw.csv:1: header lacks column age of the Tenrec video layout"):
        preprocess_tenrec(path, outputs=out, progress=False)
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(TenrecFormatError, match="empty file"):
        read_tenrec(tmp_path / "empty.csv")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """A generated file of 3000 rows (75 users, interleaved), preprocessed through 5 user buckets."""
    root = tmp_path_factory.mktemp("tenrec")
    raw = root / "raw.csv"
    facts = write_synthetic_tenrec(raw, 3000, seed=3)
    manifest = preprocess_tenrec(raw, outputs=output_paths(root / "out", None), bucket_bytes=20_000, progress=False)
    with open(raw, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {"raw": raw, "out": root / "out", "manifest": manifest, "rows": rows, "facts": facts}


def rebuild(rows):
    """Plain Python: local ids (1 + rank of the raw value, 0 for \\N), each row's line, user and position."""
    ids = {}
    for name in ("user_id", "item_id", "video_category"):
        values = sorted({int(r[name]) for r in rows if r[name] != "\\N"})
        ids[name] = {str(v): i + 1 for i, v in enumerate(values)} | {"\\N": 0}
    by_user, where = {}, {}
    for line, row in enumerate(rows, start=2):
        user_rows = by_user.setdefault(row["user_id"], [])
        where[line] = (row["user_id"], len(user_rows))
        user_rows.append(row)
    return ids, by_user, where


def history(ids, user_rows, position, behavior, field, max_len, include_own=False):
    end = position + 1 if include_own else position
    events = [ids[field][r[field]] for r in user_rows[:end] if r[behavior] == "1"][-max_len:]
    return [0] * (max_len - len(events)) + events


def test_histories_equal_a_plain_python_rebuild_and_never_reach_the_row_itself(processed):
    ids, by_user, where = rebuild(processed["rows"])
    fm = FeatureMap.load(processed["out"] / "feature_map.json")
    checked = own_differs = 0
    for max_len in (7, 400):  # truncated, and every event of every user
        fm_len = fm.with_max_lens({f"{b}_history": max_len for b in BEHAVIORS})
        for split in SPLITS:
            path = processed["out"] / f"{split}.parquet"
            batch = InMemorySource(path, fm_len).data.batch(slice(None))
            lines = pq.read_table(path, columns=["row_id"]).column(0).to_pylist()
            for b in BEHAVIORS:
                for field in ("item_id", "video_category"):
                    got = batch.sequences[f"{b}_{field}"].tolist()
                    for k, line in enumerate(lines):
                        user, position = where[line]
                        assert got[k] == history(ids, by_user[user], position, b, field, max_len), (split, line, b)
                        checked += 1
                        own = history(ids, by_user[user], position, b, field, max_len, include_own=True)
                        own_differs += own != got[k]
    assert checked == 2 * 3000 * 4 * 2
    assert own_differs > 100  # a rebuild that let the row's own event in would have failed


def test_splits_are_by_position_within_each_user(processed):
    where = rebuild(processed["rows"])[2]
    split_of = {}
    for split in SPLITS:
        for line in pq.read_table(processed["out"] / f"{split}.parquet", columns=["row_id"]).column(0).to_pylist():
            split_of[line] = split
    assert len(split_of) == 3000
    per_user = {}
    for line, (user, position) in where.items():
        per_user.setdefault(user, []).append((position, SPLITS.index(split_of[line])))
    for user, placed in per_user.items():
        n = len(placed)
        n_gold, n_held = int(n * 0.1 + 0.5 + 1e-9), int(n * 0.2 + 0.5 + 1e-9)  # rounded half up
        expected = [0] * (n - n_held) + [1] * (n_held - n_gold) + [2] * n_gold
        assert [s for _, s in sorted(placed)] == expected, user
    valid_start, gold_start = split_starts(np.array([1, 5, 10, 15]), 0.1, 0.1)  # 1.5 rounds up, 0.5 too
    assert (valid_start.tolist(), gold_start.tolist()) == ([1, 4, 8, 12], [1, 4, 9, 13])


def test_manifest_and_feature_map(processed):
    manifest, facts = processed["manifest"], processed["facts"]
    assert manifest["rows"] == {"read": 3000, "written": 3000, "bad": 0}
    assert sum(s["rows"] for s in manifest["splits"].values()) == 3000
    for split in SPLITS:
        table = pq.read_table(processed["out"] / f"{split}.parquet")
        counts = {b: int(sum(table.column(b).to_pylist())) for b in BEHAVIORS}
        assert manifest["splits"][split]["task_positives"] == counts
    assert manifest["details"]["missing"] == facts["missing"]
    assert manifest["options"]["buckets"] == 5
    fm = FeatureMap.load(processed["out"] / "feature_map.json")
    assert fm.labels == list(BEHAVIORS) and fm.group_by == "user_id"
    assert [g.name for g in fm.sequence_groups] == [f"{b}_history" for b in BEHAVIORS]
    click_item = next(f for f in fm.sequences if f.name == "click_item_id")
    assert (click_item.event_column, click_item.shares_vocab_with, click_item.group) == (
        "item_id",
        "item_id",
        "click_history",
    )
    assert fm.event_columns() == ["item_id", "video_category"]
    fmt = FORMATS["tenrec"]
    assert set(fmt.history_groups(fmt.options.resolve({}))) == {g.name for g in fm.sequence_groups}


def test_the_planted_signals_are_in_the_histories(processed):
    """Gold rows: the target's category among the user's recent clicks predicts the click, among its earlier
    likes the like (the synthetic interest is hidden: only the histories reveal it)."""
    fm = FeatureMap.load(processed["out"] / "feature_map.json").with_max_lens({"click_history": 5})
    batch = InMemorySource(processed["out"] / "gold.parquet", fm).data.batch(slice(None))
    category = batch.categorical[:, [f.name for f in fm.categorical].index("video_category")][:, None]
    for task, group, floor in (("click", "click", 0.58), ("like", "like", 0.62)):
        seen = (batch.sequences[f"{group}_video_category"] == category).any(dim=1).float()
        labels = batch.labels[:, fm.labels.index(task)]
        assert roc_auc_score(labels.numpy(), seen.numpy()) > floor, task


def test_outputs_do_not_depend_on_the_bucket_count_and_generation_is_seeded(processed, tmp_path):
    one = preprocess_tenrec(processed["raw"], outputs=output_paths(tmp_path / "one", None), progress=False)
    assert one["options"]["buckets"] == 1
    fm = FeatureMap.load(tmp_path / "one" / "feature_map.json")
    assert fm == FeatureMap.load(processed["out"] / "feature_map.json")
    for split in SPLITS:
        rows = []
        for out in (tmp_path / "one", processed["out"]):
            batch = InMemorySource(out / f"{split}.parquet", fm).data.batch(slice(None))
            order = np.argsort(pq.read_table(out / f"{split}.parquet", columns=["row_id"]).column(0).to_numpy())
            rows.append([batch.categorical[order].tolist(), {k: v[order].tolist() for k, v in batch.sequences.items()}])
        assert rows[0] == rows[1]
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    write_synthetic_tenrec(tmp_path / "a.csv", 3000, seed=3)
    write_synthetic_tenrec(tmp_path / "b.csv", 3000, seed=4)
    assert digest(tmp_path / "a.csv") == digest(processed["raw"]) != digest(tmp_path / "b.csv")


def test_a_task_with_one_class_is_recorded_an_empty_split_or_no_usable_task_is_an_error(tmp_path):
    users = [f"{u},{100 + k},{(k + u) % 2},0,{(k + u) // 2 % 2},0,3,1,1,2" for u in (1, 2) for k in range(10)]
    raw = write(tmp_path / "raw.csv", users)
    manifest = preprocess_tenrec(raw, outputs=output_paths(tmp_path / "a", None), progress=False)
    assert manifest["details"]["single_class_tasks"]["train"] == ["follow", "share"]
    with pytest.raises(UnusableSplitError, match=r"train split has a single class: all its 16 rows have label 0"):
        preprocess_tenrec(raw, outputs=output_paths(tmp_path / "b", None), options={"tasks": ["share"]}, progress=False)
    with pytest.raises(UnusableSplitError, match=r"valid split is empty: splits.valid=0.01 of each user's rows"):
        options = {"splits": {"valid": 0.01, "gold": 0.1}}
        preprocess_tenrec(raw, outputs=output_paths(tmp_path / "c", None), options=options, progress=False)
    for failed in ("b", "c"):  # nothing published, nothing partial left
        assert sorted(p.name for p in (tmp_path / failed).iterdir()) == []
    with pytest.raises(ValueError, match=r"valid \+ gold = 1.0 leaves train no rows"):
        preprocess_tenrec(
            raw, outputs=output_paths(tmp_path / "d", None), options={"splits": {"valid": 0.5, "gold": 0.5}}
        )
    bad = write(tmp_path / "bad.csv", [*users, "3,1,1,0,0,0,3,1,1,x"])
    with pytest.raises(TenrecFormatError, match=r"bad.csv:22: column age"):
        preprocess_tenrec(bad, outputs=output_paths(tmp_path / "e", None), progress=False)
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == []
