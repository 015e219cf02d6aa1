"""The Tianchi UserBehavior reader, the CTR-sample builder (histories, negatives, time splits) and the
synthetic generator with its planted sequential signal.

Expected outputs are rebuilt here independently, one event at a time in plain Python (``reference``),
and compared row by row with what ``preprocess_userbehavior`` wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from ctrbench.data.batch import TensorDataset
from ctrbench.data.formats import FORMATS
from ctrbench.data.formats.taobao_userbehavior.preprocess import preprocess_userbehavior
from ctrbench.data.formats.taobao_userbehavior.reader import (
    BAD_ROW_KINDS,
    BEHAVIORS,
    UserBehaviorFormatError,
    UserBehaviorReader,
    read_userbehavior,
)
from ctrbench.data.formats.taobao_userbehavior.synthetic import (
    DAYS,
    START,
    synthetic_sizes,
    write_synthetic_userbehavior,
)
from ctrbench.data.formats.taobao_userbehavior.vocab import DistinctCounts, user_sampled
from ctrbench.data.outputs import OUTPUT_FILES
from ctrbench.data.schema import FeatureMap
from ctrbench.data.splits import UnusableSplitError
from ctrbench.provenance import sha256_file

SAMPLE = Path(__file__).parent / "data" / "taobao_userbehavior" / "UserBehavior_head1000.csv"
SPLIT_NAMES = ("train", "valid", "gold")
COLUMNS = [
    "row_id",
    "label",
    "user_id",
    "item_id",
    "category_id",
    "hour",
    "dayofweek",
    "history_start",
    "history_end",
    "timestamp",
]


@dataclass(frozen=True)
class Event:
    line: int
    user: int
    item: int
    category: int
    behavior: str
    ts: int


def plain_events(path: Path) -> list[Event]:
    events = []
    for n, text in enumerate(path.read_text().splitlines(), start=1):
        u, i, c, b, t = text.split(",")
        events.append(Event(n, int(u), int(i), int(c), b, int(t)))
    return events


def reference(
    events: list[Event],
    *,
    max_len: int = 50,
    history: tuple = BEHAVIORS,
    targets: tuple = BEHAVIORS,
    negatives: int = 1,
    utc_offset_hours: float = 8,
    time_range: tuple[str, str] | None = None,
    valid_days: int = 1,
    gold_days: int = 1,
) -> dict:
    """The expected positive rows by row_id, and the id maps, one event at a time."""
    tz = dt.timezone(dt.timedelta(hours=utc_offset_hours))

    def local(ts: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts, tz)

    if time_range is not None:
        lo, hi = (dt.date.fromisoformat(d) for d in time_range)
        events = [e for e in events if lo <= local(e.ts).date() <= hi]
    user_id = {u: k + 1 for k, u in enumerate(sorted({e.user for e in events}))}
    item_id = {i: k + 1 for k, i in enumerate(sorted({e.item for e in events}))}
    category_id = {c: k + 1 for k, c in enumerate(sorted({e.category for e in events}))}
    pair_counts = Counter((e.item, e.category) for e in events)
    best: dict[int, tuple[int, int]] = {}
    for (i, c), n in sorted(pair_counts.items()):
        if i not in best or n > best[i][1]:  # ties keep the smaller category (sorted order)
            best[i] = (c, n)
    item_category = {item_id[i]: category_id[c] for i, (c, _) in best.items()}
    by_user = defaultdict(list)
    for e in sorted(events, key=lambda e: (e.ts, e.line)):
        by_user[e.user].append(e)
    last_day = max(local(e.ts).date() for e in events)
    gold_from = last_day - dt.timedelta(days=gold_days - 1)
    valid_from = gold_from - dt.timedelta(days=valid_days)
    rows = {}
    for e in events:
        if e.behavior not in targets:
            continue
        earlier = [x for x in by_user[e.user] if x.ts < e.ts and x.behavior in history]
        hist = earlier[-max_len:]
        assert all(x.ts < e.ts for x in hist)  # the no-leak property, stated in the reference itself
        pad = [0] * (max_len - len(hist))
        when = local(e.ts)
        rows[e.line * (1 + negatives)] = {
            "split": "gold" if when.date() >= gold_from else "valid" if when.date() >= valid_from else "train",
            "label": 1.0,
            "user_id": user_id[e.user],
            "item_id": item_id[e.item],
            "category_id": category_id[e.category],
            "hour": when.hour + 1,
            "dayofweek": when.isoweekday(),
            "item_history": pad + [item_id[x.item] for x in hist],
            "category_history": pad + [category_id[x.category] for x in hist],
            "timestamp": e.ts,
        }
    return {
        "rows": rows,
        "events": events,
        "item_category": item_category,
        "n_users": len(user_id),
        "n_items": len(item_id),
        "n_categories": len(category_id),
    }


KNOBS = ("block_bytes", "bucket_bytes", "row_group_rows", "compression")


def run(raw: Path, out: Path, **given) -> dict:
    """Preprocess with dataset-config options (history, targets, time_split, ...) and speed knobs (``KNOBS``)."""
    knobs = {k: given.pop(k) for k in KNOBS if k in given}
    return preprocess_userbehavior(raw, out, dataset_name="ub", options=given, progress=False, **knobs)


def split_rows(out: Path, split: str) -> list[dict]:
    """A split's rows with their histories rebuilt in plain Python from events.parquet (by reference:
    ``[history_start, history_end)``; the last max_len of them, left-padded with 0) in place of the bounds."""
    max_len = FeatureMap.load(out / "feature_map.json").sequence_groups[0].max_len
    events = pq.read_table(out / "events.parquet").to_pydict()
    rows = []
    for row in pq.read_table(out / f"{split}.parquet").to_pylist():
        start, end = row.pop("history_start"), row.pop("history_end")
        assert 0 <= start <= end <= len(events["item_history"])
        for name in ("item_history", "category_history"):
            history = events[name][max(start, end - max_len) : end]
            row[name] = [0] * (max_len - len(history)) + history
        rows.append(row)
    return rows


def load_rows(out: Path) -> dict[int, dict]:
    """Every output row by row_id, with its split and its histories."""
    rows = {}
    for split in SPLIT_NAMES:
        for row in split_rows(out, split):
            assert row["row_id"] not in rows
            rows[row["row_id"]] = dict(row, split=split)
    return rows


def check_against_reference(out: Path, ref: dict, negatives: int) -> dict[int, dict]:
    rows = load_rows(out)
    per = 1 + negatives
    positives = {rid: r for rid, r in rows.items() if r["label"] == 1.0}
    assert len(rows) == per * len(ref["rows"])
    assert set(positives) == set(ref["rows"])
    for rid, expected in ref["rows"].items():
        got = {k: v for k, v in rows[rid].items() if k != "row_id"}
        assert got == expected, rid
    for rid, row in rows.items():
        k = rid % per
        if k == 0:
            continue
        pos = rows[rid - k]
        assert row["label"] == 0.0 and pos["label"] == 1.0
        for key in ("split", "user_id", "hour", "dayofweek", "item_history", "category_history", "timestamp"):
            assert row[key] == pos[key], (rid, key)
        assert row["item_id"] != pos["item_id"]
        assert row["category_id"] == ref["item_category"][row["item_id"]]  # the item's real category
    return rows


def with_lines(tmp_path: Path, name: str, inserts: dict[int, str], base: Path = SAMPLE, tail: str = "") -> Path:
    """A copy of ``base`` with ``inserts[n]`` placed so that it becomes physical line n."""
    lines = base.read_text().splitlines(keepends=True)
    for n in sorted(inserts):
        lines.insert(n - 1, inserts[n])
    path = tmp_path / name
    path.write_text("".join(lines) + tail)
    return path


# ------------------------------------------------------------------------------------------------
# reader


def test_real_sample_parses_like_plain_python():
    block = read_userbehavior(SAMPLE)
    events = plain_events(SAMPLE)
    assert len(block) == len(events) == 1000
    np.testing.assert_array_equal(block.line, np.arange(1, 1001))
    for name in ("user", "item", "category", "ts"):
        column = block.timestamp if name == "ts" else getattr(block, name)
        assert column.dtype == np.int64
        assert column.tolist() == [getattr(e, name) for e in events]
    assert [BEHAVIORS[b] for b in block.behavior] == [e.behavior for e in events]
    counts = Counter(e.behavior for e in events)
    assert counts == {"pv": 906, "fav": 43, "cart": 28, "buy": 23}
    assert len(np.unique(block.user)) == 11
    # line 1 of the file, written out by hand
    assert (block.user[0], block.item[0], block.category[0], block.behavior[0], block.timestamp[0]) == (
        1,
        2268318,
        2520377,
        0,
        1511544070,
    )


@pytest.mark.parametrize("block_bytes", [1, 7, 100, 4096])
def test_reader_block_size_and_crlf_do_not_matter(tmp_path, block_bytes):
    whole = read_userbehavior(SAMPLE)
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(SAMPLE.read_bytes().replace(b"\n", b"\r\n"))
    for path in (SAMPLE, crlf):
        reader = UserBehaviorReader(path, block_bytes=block_bytes)
        blocks = list(reader)
        assert reader.lines == 1000 and reader.rows == 1000
        for name in whole.FIELDS:
            np.testing.assert_array_equal(np.concatenate([getattr(b, name) for b in blocks]), getattr(whole, name))


BAD_CASES = [
    ("field_count", "1,2268318,2520377,pv\n", "expected 5 comma-separated fields, found 4"),
    ("field_count", "\n", "empty line"),
    ("field_count", "\r\n", "empty line"),
    (
        "field_count",
        "1\t2268318\t2520377\tpv\t1511544070\n",
        "expected 5 comma-separated fields, found 1 (the line has 4 '\\t': a tab-separated file?)",
    ),
    ("field_count", "1,2268318,2520377,pv,1511544070,7\n", "expected 5 comma-separated fields, found 6"),
    ("bad_id", "-1,2268318,2520377,pv,1511544070\n", "column user_id: '-1'"),
    ("bad_id", "1,x2268318,2520377,pv,1511544070\n", "column item_id: 'x2268318'"),
    ("bad_id", "1,,2520377,pv,1511544070\n", "column item_id: ''"),
    ("bad_id", "1,2268318,9223372036854775808,pv,1511544070\n", "column category_id: '9223372036854775808'"),
    ("bad_id", "1,2268318,123456789012345678901234,pv,1511544070\n", "column category_id"),
    ("bad_behavior", "1,2268318,2520377,click,1511544070\n", "column behavior_type: 'click'"),
    ("bad_behavior", "1,2268318,2520377,PV,1511544070\n", "column behavior_type: 'PV'"),
    ("bad_behavior", "1,2268318,2520377,pvv,1511544070\n", "column behavior_type: 'pvv'"),
    ("bad_behavior", "1,2268318,2520377,,1511544070\n", "column behavior_type: ''"),
    ("bad_timestamp", "1,2268318,2520377,pv,1511544070.5\n", "column timestamp: '1511544070.5'"),
    ("bad_timestamp", "1,2268318,2520377,buy,\n", "column timestamp: ''"),
    ("bad_timestamp", "1,2268318,2520377,buy,15115x4070\n", "column timestamp: '15115x4070'"),
]


@pytest.mark.parametrize("kind,line,expected", BAD_CASES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD_CASES)])
def test_bad_row_names_file_line_and_column(tmp_path, kind, line, expected):
    path = with_lines(tmp_path, "bad.csv", {101: line})
    with pytest.raises(UserBehaviorFormatError) as error:
        read_userbehavior(path, block_bytes=997)
    message = str(error.value)
    assert f"bad.csv:101: {expected}" in message
    reader = UserBehaviorReader(path, max_bad_rows=1)
    block = read_userbehavior(path, max_bad_rows=1)
    assert len(block) == 1000 and 101 not in block.line and block.line[-1] == 1001
    list(reader)
    assert reader.bad.counts == {k: int(k == kind) for k in BAD_ROW_KINDS}
    assert reader.bad.examples == [message]


def test_edge_values_accepted(tmp_path):
    path = tmp_path / "edge.csv"
    path.write_text("9223372036854775807,007,0,fav,-5\n1,2,3,cart,0")  # no final newline is fine
    block = read_userbehavior(path)
    assert block.user.tolist() == [2**63 - 1, 1]
    assert block.item.tolist() == [7, 2] and block.category.tolist() == [0, 3]
    assert [BEHAVIORS[b] for b in block.behavior] == ["fav", "cart"]
    assert block.timestamp.tolist() == [-5, 0]


def test_truncated_last_line_empty_file_and_cr_inside_a_line(tmp_path):
    path = with_lines(tmp_path, "cut.csv", {}, tail="1,2268318,2520377,p")
    with pytest.raises(
        UserBehaviorFormatError, match=r"cut\.csv:1001: expected 5 comma-separated fields, found 4 .*truncated"
    ):
        read_userbehavior(path)
    assert len(read_userbehavior(path, max_bad_rows=1)) == 1000
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(UserBehaviorFormatError, match="no data rows"):
        read_userbehavior(empty)
    cr = with_lines(tmp_path, "cr.csv", {5: "1,2268318,2520377,pv\r,1511544070\n"})
    with pytest.raises(UserBehaviorFormatError, match=r"cr\.csv:5: column behavior_type"):
        read_userbehavior(cr)


def test_max_bad_rows_skips_and_counts_then_fails_leaving_nothing(tmp_path):
    inserts = {3: "\n", 200: "1,-2,3,pv,1511544070\n", 600: "1,2,3,view,1511544070\n", 1001: "1,2,3,pv,soon\n"}
    path = with_lines(tmp_path, "four_bad.csv", inserts)
    manifest = run(path, tmp_path / "ok", max_bad_rows=4)
    assert manifest["bad_rows"] == {"field_count": 1, "bad_id": 1, "bad_behavior": 1, "bad_timestamp": 1}
    assert manifest["rows"]["read"] == 1004 and manifest["rows"]["bad"] == 4
    assert manifest["details"]["events"]["read"] == 1000
    assert [e.split(": ")[0].rsplit(":", 1)[1] for e in manifest["bad_row_examples"]] == ["3", "200", "600", "1001"]

    # the good rows give the clean file's positives (line numbers shift, so row ids and negatives differ)
    def positives(out: Path) -> list:
        rows = [r for r in load_rows(out).values() if r["label"] == 1.0]
        return sorted(json.dumps({k: v for k, v in r.items() if k != "row_id"}, sort_keys=True) for r in rows)

    assert positives(tmp_path / "ok") == positives(run(SAMPLE, tmp_path / "clean") and tmp_path / "clean")
    out = tmp_path / "fails"
    with pytest.raises(UserBehaviorFormatError, match=r"four_bad\.csv:1001: .*more than max_bad_rows=3"):
        run(path, out, max_bad_rows=3)
    assert list(out.iterdir()) == []  # no partial outputs, no bucket folder
    with pytest.raises(UserBehaviorFormatError, match=r"four_bad\.csv:3: empty line$"):
        run(path, out)
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# preprocessing on the real sample


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    manifest = run(SAMPLE, out)
    return out, manifest


def test_sample_rows_match_an_independent_rebuild(sample_run):
    out, manifest = sample_run
    ref = reference(plain_events(SAMPLE))
    rows = check_against_reference(out, ref, negatives=1)
    assert manifest["kind"] == "ctrbench.data_manifest" and manifest["format"] == "taobao_userbehavior"
    assert manifest["details"]["events"] == {
        "read": 1000,
        "in_range": 1000,
        "targets": 1000,
        "out_of_range": 0,
        "user_sampled_out": 0,
        "kept": 1000,
    }
    assert manifest["details"]["users"] == {"in_range": 11, "kept": 11, "sampled_out": 0}
    assert manifest["rows"] == {"read": 1000, "written": 2000, "bad": 0}
    assert manifest["inputs"]["raw"]["lines"] == manifest["inputs"]["raw"]["data_lines"] == 1000
    assert manifest["inputs"]["raw"]["hash"] == "sha256" and manifest["inputs"]["raw"]["sha256"] == sha256_file(SAMPLE)
    for split in SPLIT_NAMES:
        facts = manifest["splits"][split]
        assert facts["rows"] == sum(r["split"] == split for r in rows.values())
        assert facts["positives"] * 2 == facts["rows"] and facts["label_rate"] == 0.5
    assert set(manifest["outputs"]) == {"train", "valid", "gold", "events", "feature_map"}
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())
    assert manifest["split_times"]["gold_start"] == "2017-12-03T00:00:00+08:00"
    assert manifest["split_times"]["valid_start"] == "2017-12-02T00:00:00+08:00"
    # histories: empty ones (each user's first event), partly padded ones, and full ones all occur
    hist = np.array([r["item_history"] for r in rows.values()])
    filled = (hist > 0).sum(axis=1)
    assert (filled == 0).any() and ((filled > 0) & (filled < 50)).any() and (filled == 50).any()
    # right-aligned: padding only on the left
    assert all(h[: 50 - f].max(initial=0) == 0 for h, f in zip(hist, filled))


def test_sample_schema_feature_map_and_loading(sample_run):
    out, _ = sample_run
    schema = pq.read_schema(out / "train.parquet")
    assert schema.names == COLUMNS
    assert str(schema.field("history_end").type) == "int64"  # histories by reference, not per row
    events = pq.read_table(out / "events.parquet")
    # every history event once (the sample's 1000 events are all of history behaviours), whatever the number of rows
    assert events.schema.names == ["item_history", "category_history"] and events.num_rows == 1000
    assert str(schema.field("user_id").type) == "int32" and str(schema.field("row_id").type) == "int64"
    fm = FeatureMap.load(out / "feature_map.json")
    ref = reference(plain_events(SAMPLE))
    sizes = {f.name: f.vocab_size for f in fm.features}
    assert sizes == {
        "user_id": ref["n_users"] + 1,
        "item_id": ref["n_items"] + 1,
        "category_id": ref["n_categories"] + 1,
        "hour": 25,
        "dayofweek": 8,
        "item_history": ref["n_items"] + 1,
        "category_history": ref["n_categories"] + 1,
    }
    assert {f.name: (fm.max_len(f), f.shares_vocab_with) for f in fm.sequences} == {
        "item_history": (50, "item_id"),
        "category_history": (50, "category_id"),
    }
    assert fm.labels == ["label"] and fm.group_by == "user_id"
    assert "source_line * (1 + negatives) + k" in fm.extra["row_id"]
    assert fm.extra["distinct"] == {"users": 11, "items": 743, "categories": 219}
    data = TensorDataset.from_parquet(out / "gold.parquet", fm)
    batch = data.batch(slice(0, 8))
    assert batch.sequences["item_history"].shape == (8, 50) and batch.categorical.shape == (8, 5)


def test_splits_are_ordered_in_time(sample_run):
    out, _ = sample_run
    ts = {s: pq.read_table(out / f"{s}.parquet", columns=["timestamp"]).column(0).to_numpy() for s in SPLIT_NAMES}
    assert all(len(v) for v in ts.values())
    assert ts["train"].max() < ts["valid"].min() and ts["valid"].max() < ts["gold"].min()
    gold_start = int(dt.datetime(2017, 12, 3, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp())
    assert ts["gold"].min() >= gold_start > ts["valid"].max() >= gold_start - 86400 > ts["train"].max()


def test_options_time_range_and_stray_timestamps(tmp_path):
    # stray events (as the real file has) for existing users: outside the range they must vanish from
    # targets *and* histories
    strays = {
        2: "1,999999,888888,pv,1511000000\n",  # 2017-11-18
        500: "100002,999998,888888,buy,2145916800\n",  # 2038
        900: "1000011,999997,888887,cart,-3600\n",
    }
    path = with_lines(tmp_path, "strays.csv", strays)
    options = {
        "history": {"max_len": 5, "behaviors": ["pv", "buy"]},
        "targets": {"behaviors": ["buy", "cart", "fav"], "negatives": 3, "sampling": "uniform"},
        "time_split": {"valid_days": 2, "gold_days": 2},
        "time_range": ["2017-11-25", "2017-12-03"],
    }
    manifest = run(path, tmp_path / "out", **options)
    assert manifest["details"]["events"]["out_of_range"] == 3 and manifest["details"]["events"]["read"] == 1003
    assert manifest["bad_rows"] == dict.fromkeys(BAD_ROW_KINDS, 0)
    ref = reference(
        plain_events(path),
        max_len=5,
        history=("pv", "buy"),
        targets=("buy", "cart", "fav"),
        negatives=3,
        time_range=("2017-11-25", "2017-12-03"),
        valid_days=2,
        gold_days=2,
    )
    assert len(ref["events"]) == 1000
    rows = check_against_reference(tmp_path / "out", ref, negatives=3)
    assert manifest["details"]["events"]["targets"] == len(ref["rows"]) == 43 + 28 + 23
    assert {r["split"] for r in rows.values()} == set(SPLIT_NAMES)
    assert manifest["split_times"]["valid_start"] == "2017-11-30T00:00:00+08:00"
    # without a time range the strays stay and move the gold period to 2038: the valid day before holds no
    # target, and the empty split is an error before anything is published
    with pytest.raises(
        UnusableSplitError,
        match=r"strays\.csv: valid split is empty: no target events \(buy\) on 2037-12-31\.\.2037-12-31 "
        r"\(1970-01-01\.\.2038-01-01\)$",
    ):
        run(path, tmp_path / "wide", targets={"behaviors": ["buy"]})
    assert list((tmp_path / "wide").iterdir()) == []


def test_same_second_events_are_not_history(tmp_path):
    path = tmp_path / "ties.csv"
    path.write_text(
        "7,100,10,pv,1511600000\n"
        "7,101,10,pv,1511600000\n"  # same second as line 1: neither sees the other
        "7,102,11,cart,1511600001\n"
        "7,103,12,pv,1511599999\n"  # earlier, though later in the file
        "8,100,10,pv,1511600000\n"
        "9,100,10,pv,1511686400\n"  # the next two days: the valid and gold splits must not be empty
        "9,101,10,pv,1511772800\n"
    )
    run(path, tmp_path / "out", history={"max_len": 3}, targets={"negatives": 1})
    rows = load_rows(tmp_path / "out")
    item = {100: 1, 101: 2, 102: 3, 103: 4}
    history = {rid // 2: r["item_history"] for rid, r in rows.items() if r["label"] == 1.0}
    assert history == {
        1: [0, 0, item[103]],
        2: [0, 0, item[103]],
        3: [item[103], item[100], item[101]],  # chronological, then file order within a second
        4: [0, 0, 0],
        5: [0, 0, 0],
        6: [0, 0, 0],
        7: [0, 0, item[100]],
    }


def test_block_size_and_bucket_count_do_not_change_the_result(sample_run, tmp_path):
    out, manifest = sample_run
    small = run(SAMPLE, tmp_path / "small", block_bytes=333)
    for key in ("train", "valid", "gold", "events", "feature_map"):
        assert small["outputs"][key]["sha256"] == manifest["outputs"][key]["sha256"], key
    # more buckets: the same rows (negatives are keyed by line, not by bucket), in another order
    many = run(SAMPLE, tmp_path / "many", bucket_bytes=5000)
    assert many["options"]["buckets"] == 8
    assert load_rows(tmp_path / "many") == load_rows(out)


def test_determinism_and_seed(sample_run, tmp_path):
    out, manifest = sample_run
    again = run(SAMPLE, tmp_path / "again")
    assert all(again["outputs"][k]["sha256"] == manifest["outputs"][k]["sha256"] for k in (*SPLIT_NAMES, "events"))
    other = run(SAMPLE, tmp_path / "other", split_seed=1)
    assert other["outputs"]["train"]["sha256"] != manifest["outputs"]["train"]["sha256"]
    a, b = load_rows(out), load_rows(tmp_path / "other")
    assert {k: v for k, v in a.items() if k % 2 == 0} == {k: v for k, v in b.items() if k % 2 == 0}
    assert [v["item_id"] for k, v in sorted(a.items()) if k % 2] != [
        v["item_id"] for k, v in sorted(b.items()) if k % 2
    ]


def test_bad_options_rejected(tmp_path):
    for options in (
        {"targets": {"sampling": "hard"}},
        {"targets": {"negatives": 0}},
        {"targets": {"behaviors": []}},
        {"history": {"behaviors": ["click"]}},
        {"time_split": {"gold_days": 0}},
        {"time_range": ["2017-12-03", "2017-11-25"]},
        {"max_len": 5},
    ):
        with pytest.raises(ValueError):
            run(SAMPLE, tmp_path / "x", **options)
        assert not (tmp_path / "x").exists()  # rejected before anything is created


def test_format_registry_reads_the_dataset_config(tmp_path):
    fmt = FORMATS["taobao_userbehavior"]
    assert getattr(fmt, "has_sequences", None) is True
    raw = tmp_path / "raw.csv"
    fmt.write_synthetic(raw, rows=1500, seed=2)
    outputs = {key: tmp_path / "p" / name for key, name in OUTPUT_FILES.items()}
    dataset = {
        "format": "taobao_userbehavior",
        "history": {"max_len": 7, "behaviors": ["pv", "cart"]},
        "targets": {"behaviors": ["pv"], "negatives": 2, "sampling": "uniform"},
        "time_split": {"valid_days": 2, "gold_days": 1},
        "time_range": ["2017-11-25", "2017-12-03"],
        "split_seed": 5,
        "user_fraction": 0.5,
    }
    manifest = fmt.preprocess(
        raw, outputs=outputs, dataset_name="tb", options=fmt.options.of_entry(dataset), progress=False
    )
    assert manifest["options"]["history"] == {"max_len": 7, "behaviors": ["pv", "cart"]}
    assert manifest["options"]["targets"]["negatives"] == 2 and manifest["options"]["user_fraction"] == 0.5
    details = manifest["details"]
    assert 0 < details["users"]["kept"] < details["users"]["in_range"] and details["events"]["user_sampled_out"] > 0
    assert manifest["options"]["split_seed"] == 5 and manifest["format"] == "taobao_userbehavior"
    fm = FeatureMap.load(outputs["feature_map"])
    assert fm.dataset == "tb" and fm.max_len(fm.sequences[0]) == 7
    assert json.loads(outputs["manifest"].read_text())["splits"]["train"]["label_rate"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------------------
# generated data


@pytest.fixture(scope="module")
def shuffled_synthetic(tmp_path_factory):
    """A small generated file with its lines shuffled: nothing may depend on the file order."""
    folder = tmp_path_factory.mktemp("syn")
    raw = folder / "ordered.csv"
    write_synthetic_userbehavior(raw, 3000, seed=4)
    lines = raw.read_text().splitlines(keepends=True)
    random.Random(0).shuffle(lines)
    shuffled = folder / "shuffled.csv"
    shuffled.write_text("".join(lines))
    return shuffled


def test_generated_rows_match_an_independent_rebuild(shuffled_synthetic, tmp_path):
    options = {"history": {"max_len": 8, "behaviors": ["pv", "cart", "fav"]}, "targets": {"negatives": 2}}
    manifest = run(shuffled_synthetic, tmp_path / "out", **options)
    ref = reference(plain_events(shuffled_synthetic), max_len=8, negatives=2, history=("pv", "cart", "fav"))
    rows = check_against_reference(tmp_path / "out", ref, negatives=2)
    assert manifest["details"]["events"]["targets"] == 3000 and len(rows) == 9000
    hist = np.array([r["item_history"] for r in rows.values()])
    assert (hist == 0).all(axis=1).any() and (hist[:, 0] == 0).any() and (hist > 0).all(axis=1).any()
    # 3 buckets instead of 1 and tiny blocks: the same rows
    run(shuffled_synthetic, tmp_path / "b", block_bytes=4099, bucket_bytes=40_000, **options)
    assert load_rows(tmp_path / "b") == rows


def test_popularity_sampling_follows_event_counts(shuffled_synthetic, tmp_path):
    events = plain_events(shuffled_synthetic)
    counts = Counter(e.item for e in events)
    item_raw = sorted(counts)
    mean_count = {}
    for sampling in ("popularity", "uniform"):
        run(shuffled_synthetic, tmp_path / sampling, targets={"negatives": 4, "sampling": sampling})
        negatives = [r["item_id"] for r in load_rows(tmp_path / sampling).values() if r["label"] == 0.0]
        mean_count[sampling] = np.mean([counts[item_raw[i - 1]] for i in negatives])
    assert mean_count["popularity"] > 3 * mean_count["uniform"]


def test_generator_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_synthetic_userbehavior(a, 2000, seed=3)
    write_synthetic_userbehavior(b, 2000, seed=3)
    write_synthetic_userbehavior(c, 2000, seed=4)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_generator_layout_and_sizes(tmp_path):
    path = tmp_path / "default.csv"
    facts = write_synthetic_userbehavior(path, 150_000, seed=0)
    block = read_userbehavior(path)
    assert len(block) == facts["rows"] == 150_000 and facts["bytes"] == path.stat().st_size
    assert path.read_text().count("\n") == 150_000  # newline-terminated, no header
    assert len(np.unique(block.user)) == facts["users"] == 7500  # ~20 events per user
    assert len(np.unique(block.item)) == facts["distinct_items"]
    assert 1000 <= facts["distinct_items"] <= facts["items"] <= 10_000  # a few thousand items
    assert len(np.unique(block.category)) <= facts["categories"] == synthetic_sizes(150_000)["categories"]
    rates = np.bincount(block.behavior, minlength=4) / len(block)
    np.testing.assert_allclose(rates, [0.89, 0.055, 0.03, 0.025], atol=0.005)
    assert block.timestamp.min() >= START and block.timestamp.max() < START + DAYS * 86400
    days = np.bincount((block.timestamp - START) // 86400, minlength=DAYS)
    assert (days > 0.9 * len(block) / DAYS).all()  # every local day well covered
    order = np.lexsort((block.line, block.user))
    same_user = block.user[order][1:] == block.user[order][:-1]
    assert (np.diff(block.timestamp[order])[same_user] >= 0).all()  # increasing per user in file order


def test_generator_plants_a_sequential_signal(tmp_path):
    """Recency beats both older history and a static per-user category profile.

    All three assertions fail without the planted copying (COPY_PROB = 0: last5 ~0.60, older
    ~0.58, static ~0.64 on this setup) and hold with it (~0.75 / 0.64 / 0.69).
    """
    raw = tmp_path / "raw.csv"
    write_synthetic_userbehavior(raw, 20_000, seed=1)
    run(raw, tmp_path / "out")
    train = pq.read_table(tmp_path / "out" / "train.parquet", columns=["label", "user_id", "category_id"])
    positives = Counter()
    per_user = Counter()
    for u, c, y in zip(*(train.column(k).to_numpy() for k in ("user_id", "category_id", "label"))):
        if y == 1.0:
            positives[u, c] += 1
            per_user[u] += 1
    gold = split_rows(tmp_path / "out", "gold")
    y = np.array([r["label"] for r in gold])
    cat = np.array([r["category_id"] for r in gold])
    user = np.array([r["user_id"] for r in gold])
    hist = np.array([r["category_history"] for r in gold])
    last5 = roc_auc_score(y, (hist[:, -5:] == cat[:, None]).any(axis=1))
    older = roc_auc_score(y, (hist[:, :-5] == cat[:, None]).any(axis=1))
    static = roc_auc_score(y, [positives[u, c] / max(per_user[u], 1) for u, c in zip(user, cat)])
    assert last5 > 0.68
    assert last5 > older + 0.06
    assert last5 > static + 0.025


def test_distinct_counts_merge_matches_one_unique(monkeypatch):
    monkeypatch.setattr(DistinctCounts, "MERGE_ROWS", 50)  # merge often
    rng = np.random.default_rng(0)
    acc = DistinctCounts(2)
    parts = [rng.integers(0, 30, (2, int(rng.integers(0, 120)))) for _ in range(40)]
    for a, b in parts:
        acc.add(a, b)
    (a, b), counts = acc.result()
    expected = Counter(zip(*np.concatenate(parts, axis=1).tolist()))
    assert dict(zip(zip(a.tolist(), b.tolist()), counts.tolist())) == expected
    assert list(zip(a.tolist(), b.tolist())) == sorted(expected)  # lexicographic order


# ------------------------------------------------------------------------------------------------
# user subsample (user_fraction)

_M64 = 2**64 - 1


def _splitmix(x: int) -> int:
    x ^= x >> 30
    x = x * 0xBF58476D1CE4E5B9 & _M64
    x ^= x >> 27
    x = x * 0x94D049BB133111EB & _M64
    return x ^ (x >> 31)


def hash_unit(user: int, seed: int) -> float:
    """The user-sampling hash in plain Python ints, as U[0, 1): a user is kept iff this < fraction."""
    h = _splitmix((seed * 0x9E3779B97F4A7C15 + 2) & _M64)
    h = _splitmix(h ^ (user * 0x9E3779B97F4A7C15 & _M64))
    return (h >> 11) * 2.0**-53


def kept_users(events: list[Event], fraction: float, seed: int = 0) -> set[int]:
    return {u for u in {e.user for e in events} if hash_unit(u, seed) < fraction}


FRACTION = 0.3
SUBSAMPLE_OPTIONS = {"history": {"max_len": 8}, "targets": {"negatives": 2}, "user_fraction": FRACTION}


@pytest.fixture(scope="module")
def user_sample(tmp_path_factory):
    """1000 generated users (20k events) with shuffled lines, subsampled to FRACTION."""
    folder = tmp_path_factory.mktemp("users")
    ordered = folder / "ordered.csv"
    write_synthetic_userbehavior(ordered, 20_000, seed=6)
    lines = ordered.read_text().splitlines(keepends=True)
    random.Random(1).shuffle(lines)
    raw = folder / "shuffled.csv"
    raw.write_text("".join(lines))
    manifest = run(raw, folder / "out", **SUBSAMPLE_OPTIONS)
    return raw, ordered, folder / "out", manifest, plain_events(raw)


def test_user_fraction_keeps_about_f_of_the_users_with_all_their_events(user_sample):
    _, _, out, manifest, events = user_sample
    users = {e.user for e in events}
    kept = kept_users(events, FRACTION)
    assert len(users) == manifest["details"]["users"]["in_range"] == 1000
    # binomial(1000, 0.3): sd 14.5; the kept set is fixed, so this is a check of the hash, not a flaky draw
    assert abs(len(kept) - FRACTION * len(users)) < 4 * (len(users) * FRACTION * (1 - FRACTION)) ** 0.5
    assert manifest["details"]["users"] == {"in_range": 1000, "kept": len(kept), "sampled_out": 1000 - len(kept)}
    kept_events = [e for e in events if e.user in kept]
    assert manifest["details"]["events"] == {
        "read": 20_000,
        "in_range": 20_000,
        "targets": len(kept_events),
        "out_of_range": 0,
        "user_sampled_out": 20_000 - len(kept_events),
        "kept": len(kept_events),
    }
    # every row, history and negative is what an independent rebuild from the kept users' raw events
    # alone gives: all events of a kept user are targets and fill its histories, nothing of another user
    ref = reference(kept_events, max_len=8, negatives=2)
    rows = check_against_reference(out, ref, negatives=2)
    assert {rid // 3 for rid, r in rows.items() if r["label"] == 1.0} == {e.line for e in kept_events}
    assert manifest["options"]["user_fraction"] == FRACTION


def test_user_fraction_vocabularies_and_negatives_come_from_kept_users(user_sample):
    _, _, out, manifest, events = user_sample
    kept = kept_users(events, FRACTION)
    kept_events = [e for e in events if e.user in kept]
    sizes = {f.name: f.vocab_size for f in FeatureMap.load(out / "feature_map.json").features}
    distinct = {
        "users": len(kept),
        "items": len({e.item for e in kept_events}),
        "categories": len({e.category for e in kept_events}),
    }
    assert manifest["details"]["distinct"] == distinct
    assert (sizes["user_id"], sizes["item_id"], sizes["category_id"]) == tuple(v + 1 for v in distinct.values())
    assert distinct["items"] < len({e.item for e in events})  # dropped users' items have no id
    fm = FeatureMap.load(out / "feature_map.json")
    assert fm.extra["user_fraction"] == FRACTION and fm.extra["users_in_range"] == 1000
    # popularity negatives follow the kept events' item counts (items local to the kept vocabulary)
    item_raw = sorted({e.item for e in kept_events})
    counts = Counter(e.item for e in kept_events)
    negatives = [r["item_id"] for r in load_rows(out).values() if r["label"] == 0.0]
    assert 1 <= min(negatives) and max(negatives) <= len(item_raw)
    mean_negative = np.mean([counts[item_raw[i - 1]] for i in negatives])
    assert mean_negative > 3 * np.mean(list(counts.values()))


def test_user_fraction_does_not_depend_on_blocks_buckets_or_file_order(user_sample, tmp_path):
    raw, ordered, out, manifest, _ = user_sample
    small = run(raw, tmp_path / "small", block_bytes=4099, bucket_bytes=40_000, **SUBSAMPLE_OPTIONS)
    assert small["options"]["buckets"] > 1 == manifest["options"]["buckets"]
    assert load_rows(tmp_path / "small") == load_rows(out)
    # the unshuffled file: other line numbers (row ids, negatives, same-second history order), the same
    # users and events
    run(ordered, tmp_path / "ordered", bucket_bytes=60_000, **SUBSAMPLE_OPTIONS)

    def positives(folder: Path) -> Counter:
        rows = load_rows(folder).values()
        return Counter((r["user_id"], r["item_id"], r["category_id"], r["timestamp"]) for r in rows if r["label"])

    assert positives(tmp_path / "ordered") == positives(out)


def test_user_fraction_other_seed_keeps_other_users(user_sample, tmp_path):
    raw, _, _, _, events = user_sample
    other = run(raw, tmp_path / "other", **{**SUBSAMPLE_OPTIONS, "split_seed": 1})
    kept0, kept1 = kept_users(events, FRACTION, 0), kept_users(events, FRACTION, 1)
    assert len(kept0 & kept1) < 0.5 * len(kept1)  # ~FRACTION of them by chance
    kept1_events = [e for e in events if e.user in kept1]
    assert other["details"]["users"]["kept"] == len(kept1) and other["details"]["events"]["kept"] == len(kept1_events)
    assert other["details"]["distinct"]["items"] == len({e.item for e in kept1_events})
    # the hash itself: independent of the block an id arrives in, ~fraction of many ids
    ids = np.arange(0, 2_000_000, 7, dtype=np.int64)
    mask = user_sampled(ids, FRACTION, 0)
    assert abs(mask.mean() - FRACTION) < 0.005
    assert [hash_unit(int(u), 0) < FRACTION for u in ids[:500]] == mask[:500].tolist()
    np.testing.assert_array_equal(np.concatenate([user_sampled(p, FRACTION, 0) for p in np.array_split(ids, 7)]), mask)


def test_user_fraction_one_writes_the_same_bytes(sample_run, tmp_path):
    _, manifest = sample_run
    full = run(SAMPLE, tmp_path / "full", user_fraction=1.0)
    assert full["outputs"] == manifest["outputs"]  # sha256 of the splits and the feature map
    assert full["options"]["user_fraction"] == manifest["options"]["user_fraction"] == 1.0
    assert "user_fraction" not in FeatureMap.load(tmp_path / "full" / "feature_map.json").extra
    # the sampling path with every user kept writes the same splits too
    units = [hash_unit(u, 0) for u in {e.user for e in plain_events(SAMPLE)}]
    assert max(units) < 0.999
    every = run(SAMPLE, tmp_path / "every", user_fraction=max(units) + 1e-9)
    assert every["details"]["users"]["sampled_out"] == 0 and every["details"]["events"]["user_sampled_out"] == 0
    for key in SPLIT_NAMES:
        assert every["outputs"][key]["sha256"] == manifest["outputs"][key]["sha256"], key
    assert every["outputs"]["feature_map"]["sha256"] != manifest["outputs"]["feature_map"]["sha256"]


@pytest.mark.parametrize(
    "fraction", [0, 0.0, -0.5, 1.0000001, 2, float("nan"), float("inf"), "half", "0.5", None, True]
)
def test_user_fraction_out_of_range_rejected(tmp_path, fraction):
    with pytest.raises(ValueError, match=r"user_fraction"):
        run(SAMPLE, tmp_path / "x", user_fraction=fraction)
    assert not (tmp_path / "x").exists()  # rejected before anything is created


def test_user_fraction_keeping_nobody_fails_cleanly(tmp_path):
    with pytest.raises(ValueError, match=r"user_fraction=1e-12 .* keeps none of the 11 users"):
        run(SAMPLE, tmp_path / "x", user_fraction=1e-12)
    assert list((tmp_path / "x").iterdir()) == []


def test_input_identified_by_size_and_mtime_when_asked(sample_run, tmp_path):
    _, manifest = sample_run
    cheap = run(SAMPLE, tmp_path / "cheap", input_hash="size+mtime")
    assert (
        cheap["inputs"]["raw"]["hash"] == "size+mtime"
        and cheap["inputs"]["raw"]["sha256"] is None
        and "mtime" in cheap["inputs"]["raw"]
    )
    assert cheap["outputs"] == manifest["outputs"]


@pytest.mark.parametrize(
    "days,message",
    [
        (
            {"time_split": {"valid_days": 2, "gold_days": 7}},
            (
                "train split is empty: valid_days=2 + gold_days=7 cover every day of the data "
                "(2017-11-25..2017-12-03); lower them"
            ),
        ),
    ],
)
def test_empty_time_split_is_an_error_at_preprocessing(tmp_path, days, message):
    # (a split with rows always holds both labels here: every target row comes with its negatives)
    out = tmp_path / "out"
    with pytest.raises(UnusableSplitError) as error:
        run(SAMPLE, out, **days)
    assert str(error.value) == f"{SAMPLE}: {message}"
    assert list(out.iterdir()) == []  # nothing published, no bucket folder left


def test_split_without_targets_is_an_error_at_preprocessing(tmp_path):
    # the last day has events, but none of the target behaviour
    lines = SAMPLE.read_text().splitlines(keepends=True)
    path = tmp_path / "no_buy_last_day.csv"
    path.write_text(
        "".join(line.replace(",buy,", ",pv,") if int(line.split(",")[4]) >= 1512230400 else line for line in lines)
    )
    with pytest.raises(
        UnusableSplitError,
        match=r"gold split is empty: no target events \(buy\) on 2017-12-03\.\.2017-12-03 \(2017-11-25\.\.2017-12-03\)$",
    ):
        run(path, tmp_path / "out", targets={"behaviors": ["buy"]})
    assert list((tmp_path / "out").iterdir()) == []


def test_a_model_reads_another_history_length_from_the_same_processed_data(sample_run, tmp_path):
    """training.history_max_len: trained, checkpointed and scored on gold at 7 events, from data processed at 50."""
    import torch

    from ctrbench.evaluate import evaluate_gold
    from ctrbench.train.checkpoint import load_checkpoint
    from ctrbench.train.trainer import TrainOutputs, train

    out, _ = sample_run
    training = {"device": "cpu", "batch_size": 64, "steps_per_epoch": 2, "max_epochs": 1, "patience": 1,
                "eval_batch_size": 256, "history_max_len": {"history": 7},
                "optimizer": {"embedding": {"name": "adam", "lr": 0.01}, "dense": {"name": "adamw", "lr": 0.01}}}  # fmt: skip
    outputs = TrainOutputs(tmp_path / "c.pt", tmp_path / "m.json", tmp_path / "l.jsonl")
    train(train_path=out / "train.parquet", valid_path=out / "valid.parquet", feature_map_path=out / "feature_map.json",
          arch="bst", params={"embedding_dim": 4, "mlp_hidden": [8]}, training=training, seed=0, outputs=outputs,
          progress=False)  # fmt: skip
    model, _ = load_checkpoint(outputs.checkpoint, torch.device("cpu"))
    assert model.feature_map.sequence_groups[0].max_len == 7 and model.encoder.position.shape[0] == 8
    record = evaluate_gold(checkpoint_path=outputs.checkpoint, gold_path=out / "gold.parquet",
                           output_path=tmp_path / "gold.json", device="cpu")  # fmt: skip
    assert record.rows == len(split_rows(out, "gold")) and record.tasks["label"].auc is not None


def test_no_history_event_at_all_gives_empty_histories(tmp_path):
    """Targets of one behaviour, histories of another that never occurs: an empty event table, all-padding
    histories, and a model still trains on them."""
    from ctrbench.data.sources import InMemorySource

    lines = [line for line in SAMPLE.read_text().splitlines() if ",fav," not in line]
    raw = tmp_path / "no_fav.csv"
    raw.write_text("\n".join(lines) + "\n")
    run(raw, tmp_path / "out", history={"behaviors": ["fav"]}, targets={"behaviors": ["pv"]})
    assert pq.read_table(tmp_path / "out" / "events.parquet").num_rows == 0
    fm = FeatureMap.load(tmp_path / "out" / "feature_map.json")
    batch = InMemorySource(tmp_path / "out" / "train.parquet", fm).data.batch(slice(0, 4))
    assert batch.sequences["item_history"].shape == (4, 50) and not batch.sequences["item_history"].any()
