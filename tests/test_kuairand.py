"""Format kuairand: the readers on the real KuaiRand rows and on files generated in the release's exact layout,
histories rebuilt in plain Python against the loader's gather, splits by Beijing day (bad input:
``test_kuairand_input.py``).

Real rows (``tests/data/kuairand/``, sources in its README): the first 100 users and videos of KuaiRand-Pure's
feature files, the first 30 videos of its statistics, and 100 + 96 rows of KuaiRand-27K's standard and random logs
from an EDA extract that kept 7 of the 19 log columns (plus its own ``seq_index``). Those logs are read as they are
(the columns a run needs are there for the click task and history) and, in ``full_layout``, widened into the
19-column layout: the 7 real columns kept, the other 12 derived from them here (not real values).
"""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import DATA
from kuairand_files import LOG_COLUMNS, Reference, read_rows, write_release

from ctrbench.data.formats import FORMATS
from ctrbench.data.formats.kuairand.layout import USER_FEATURES, KuaiRandFormatError
from ctrbench.data.formats.kuairand.preprocess import preprocess_kuairand
from ctrbench.data.formats.kuairand.sides import SideTable, read_side
from ctrbench.data.reading import BadRows
from ctrbench.data.schema import FeatureMap
from ctrbench.data.sources import InMemorySource

REAL = DATA / "kuairand"
BEHAVIORS = ("click", "like", "follow", "comment", "forward", "hate", "long_view")


def run(raw, out, **options):
    return preprocess_kuairand(raw, out, options={"input_hash": "size+mtime", **options}, progress=False)


def gathered(out, max_len: int) -> dict[str, dict]:
    """Per split: row_id, the columns, and every history as the loader gathers it (max_len events per group)."""
    fm = FeatureMap.load(out / "feature_map.json")
    fm = fm.with_max_lens({g.name: max_len for g in fm.sequence_groups})
    result = {}
    for split in ("train", "valid", "gold"):
        table = pq.read_table(out / f"{split}.parquet")
        batch = InMemorySource(out / f"{split}.parquet", fm).data.batch(slice(None))
        result[split] = {
            "table": table.to_pydict(),
            "sequences": {k: v.tolist() for k, v in batch.sequences.items()},
            "time_gaps": {k: v.tolist() for k, v in batch.time_gaps.items()},
        }
    return result


def check_histories(out, reference: Reference, behaviors, fields, max_len: int) -> int:
    """Every history of every sample equals the plain rebuild (its last max_len, left-padded); returns how many
    non-empty histories were compared."""
    compared = 0
    for split in gathered(out, max_len).values():
        row_ids = split["table"]["row_id"]
        for b in behaviors:
            for f in fields:
                expected = reference.histories(b, f)
                got = split["sequences"][f"{b}_{f}"]
                for row_id, history in zip(row_ids, got):
                    want = expected[row_id][-max_len:]
                    assert history == [0] * (max_len - len(want)) + want, (split, b, f, row_id)
                    compared += bool(want)
    return compared


# ------------------------------------------------------------------------------------------------ real rows


def test_the_real_feature_files_read_by_header_name_with_their_quirks():
    _, rows = read_rows(REAL / "user_features_pure_head100.csv")
    users = SideTable("user_id", {"user_active_degree": "token", "fans_user_num_range": "token",
                                  "is_live_streamer": "code", "onehot_feat4": "code"}, 100)  # fmt: skip
    bad = BadRows.of(["field_count", "bad_integer", "bad_label", "bad_number", "duplicate_id"])
    read_side([REAL / "user_features_pure_head100.csv"], users, np.arange(100), bad, max_bad_rows=0,
              input_hash="sha256")  # fmt: skip
    assert users.matched == 100 and bad.total == 0 and users.files[0].data_lines == 100
    ranges, tokens = users.tokens["fans_user_num_range"].final(users.values["fans_user_num_range"])
    assert [tokens[i - 1] for i in ranges[1:]] == [r["fans_user_num_range"] for r in rows]  # "[100,1k)" in one piece
    assert "[100,1k)" in tokens
    assert users.values["is_live_streamer"][2] == -124  # user 1: the release's missing code, mapped to 0 later
    assert users.values["onehot_feat4"][5] == np.iinfo(np.int64).min  # user 4: an empty float value
    assert users.values["onehot_feat4"][1] == 1  # user 0 writes 1.0

    _, rows = read_rows(REAL / "video_features_basic_pure_head100.csv")
    basic = SideTable("video_id", {"video_duration": "number", "music_type": "code", "tag": "first_token"}, 100)
    read_side([REAL / "video_features_basic_pure_head100.csv"], basic, np.arange(100), bad, max_bad_rows=0,
              input_hash="sha256")  # fmt: skip
    durations = [float(r["video_duration"]) if r["video_duration"] else np.nan for r in rows]
    np.testing.assert_array_equal(basic.values["video_duration"][1:], np.array(durations, np.float32))
    assert np.isnan(basic.values["video_duration"][1:]).sum() == 7
    ids, tags = basic.tokens["tag"].final(basic.values["tag"])
    assert [tags[i - 1] if i else "" for i in ids[1:]] == [r["tag"].split(",")[0] for r in rows]
    assert rows[7]["tag"] == "20,67" and tags[ids[8] - 1] == "20"  # a quoted list: its first tag

    header, rows = read_rows(REAL / "video_features_statistic_pure_head.csv")
    assert "follow_user_num1" in header and "follow_user_num" not in header
    stats = SideTable("video_id", {"follow_user_num1": "number", "play_progress": "number"}, 40)
    read_side([REAL / "video_features_statistic_pure_head.csv"], stats, np.arange(40), bad, max_bad_rows=0,
              input_hash="sha256")  # fmt: skip
    assert stats.matched == 30 and not stats.found[31:].any()  # videos 30..39 have no row
    for name in ("follow_user_num1", "play_progress"):
        np.testing.assert_array_equal(stats.values[name][1:31], np.array([float(r[name]) for r in rows], np.float32))


def test_the_real_27k_log_rows_as_they_are(tmp_path):
    """The 7-column EDA extract (UTF-8 BOM, an extra seq_index column) serves a click task with a click history."""
    out = tmp_path / "out"
    m = run(REAL, out, tasks=["is_click"], history={"behaviors": ["click"]})
    assert m["rows"] == {"read": 100, "written": 100, "bad": 0}  # the random log is left out by default
    assert m["details"]["users"] == {"in_logs": 5, "with_features": 1, "without_features": 4}  # user 0 is in the head
    compared = check_histories(out, Reference(REAL), ["click"], ["video_id"], max_len=64)
    assert compared > 20
    assert m["split_times"]["valid_start"] == "2022-04-09T00:00:00+08:00"
    assert m["split_times"]["first_event"].startswith("2022-04-07T23:44")  # date says 20220408: time_ms rules
    fm = FeatureMap.load(out / "feature_map.json")
    assert [t.name for t in fm.tasks] == ["is_click"] and fm.group_by == "user_id"
    with pytest.raises(KuaiRandFormatError, match=r"log_standard_27k_history_window_examples.csv:1: header lacks "
                       r"columns is_like, is_follow, is_comment, is_forward, is_hate and 1 more of the KuaiRand log "
                       r"layout \(found 8 columns: 'user_id,time_ms,"):  # fmt: skip
        run(REAL, tmp_path / "defaults")  # the default tasks need label columns the extract lacks


def full_layout(directory) -> None:
    """The real 27K rows widened to the 19 log columns (the 12 absent ones derived from the real 7, see the module
    docstring), with the real feature files beside them."""
    directory.mkdir()
    for name in ("user_features_pure_head100.csv", "video_features_basic_pure_head100.csv",
                 "video_features_statistic_pure_head.csv"):  # fmt: skip
        shutil.copy(REAL / name, directory / name)
    for name in ("log_standard_27k_history_window_examples.csv", "log_random_27k_history_window_examples.csv"):
        _, rows = read_rows(REAL / name)
        widened = []
        for row in rows:
            video, click = int(row["video_id"]), int(row["is_click"])
            derived = dict.fromkeys(LOG_COLUMNS, 0) | {k: row[k] for k in row if k in LOG_COLUMNS}
            derived |= {"is_like": int(click and video % 3 == 0), "long_view": int(click and video % 2 == 0),
                        "is_follow": int(video % 11 == 0), "is_rand": int("random" in name)}  # fmt: skip
            widened.append(derived)
        with open(directory / name.replace("_examples", ""), "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(LOG_COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(widened)


def test_full_layout_rows_from_the_27k_sample_with_every_behaviour(tmp_path):
    raw = tmp_path / "data"
    full_layout(raw)
    out = tmp_path / "out"
    m = run(raw, out, logs="standard+random", time_split={"valid_days": 3})  # 05-05..07: one click
    assert m["rows"]["read"] == 196 and m["rows"]["written"] == 196
    assert m["inputs"]["log_random_27k_history_window.csv"]["row_id_offset"] == 101  # after the standard log
    reference = Reference(raw, logs="standard+random")
    compared = check_histories(out, reference, BEHAVIORS, ["video_id"], max_len=200)
    assert compared > 50
    # most of the 27K extract's videos are not among the Pure head's 100: they get missing ids, counted, no error
    shown = {e["video_id"] for e in reference.exposures}
    assert m["details"]["videos"] == {"in_logs": len(shown), "without_basic_features": len(shown - set(range(100))),
                                      "without_statistics": len(shown - set(range(30)))}  # fmt: skip
    assert 0 < len(shown & set(range(100)))  # random-log videos of the candidate pool share Pure's ids
    gold = pq.read_table(out / "gold.parquet").to_pydict()
    for row_id, author in zip(gold["row_id"], gold["author_id"]):
        video = next(e["video_id"] for e in reference.exposures if e["row_id"] == row_id)
        assert author == reference.video_field(video, "author_id")


# ------------------------------------------------------------------------------------------ generated layout


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    raw = tmp_path_factory.mktemp("kuairand") / "data"
    write_release(raw, seed=3)
    return raw


@pytest.fixture(scope="module")
def processed(release, tmp_path_factory):
    """The generated release with both logs, several user buckets and small read blocks."""
    out = tmp_path_factory.mktemp("processed")
    manifest = preprocess_kuairand(
        release, out, options={"logs": "standard+random", "time_split": {"valid_days": 1, "gold_days": 2},
                               "history": {"fields": ["video_id", "author_id", "music_id", "tag"]}},
        bucket_bytes=20_000, block_bytes=8192, progress=False,
    )  # fmt: skip
    return out, manifest, Reference(release, logs="standard+random")


@pytest.mark.parametrize("max_len", [500, 3])
def test_histories_equal_a_plain_rebuild(processed, max_len):
    """Every behaviour's history of every sample, at full length and cut to the last 3, equals the rebuild."""
    out, manifest, reference = processed
    assert manifest["options"]["buckets"] > 3  # users spread over several buckets, each a separate pass-2 step
    compared = check_histories(out, reference, BEHAVIORS, ["video_id", "author_id", "music_id", "tag"], max_len)
    assert compared > 1000
    assert manifest["details"]["history_events"]["click"] == sum(e["is_click"] for e in reference.exposures)


@pytest.mark.parametrize("max_len", [500, 3])
def test_every_history_event_carries_its_time_gap_to_the_sample(processed, max_len):
    """The loader's time gaps (sample's second minus event's second, 0 on padding) equal the plain rebuild's, for
    every behaviour, at full length and cut to the last 3; every group names its time columns."""
    out, _, reference = processed
    fm = FeatureMap.load(out / "feature_map.json")
    assert {(g.timestamp, g.row_time) for g in fm.sequence_groups} == {("time_s", "time_s")}
    compared = 0
    for split in gathered(out, max_len).values():
        for b in BEHAVIORS:
            expected = reference.histories(b, "time_gap")
            for row_id, gaps in zip(split["table"]["row_id"], split["time_gaps"][b]):
                want = expected[row_id][-max_len:]
                assert gaps == [0] * (max_len - len(want)) + want, (b, row_id)
                compared += sum(g > 0 for g in want)
    assert compared > 1000


def test_rows_carry_the_exposures_labels_features_and_day(processed, release):
    out, manifest, reference = processed
    by_row = {e["row_id"]: e for e in reference.exposures}
    _, users = read_rows(next(release.glob("user_features_*.csv")))
    users = {int(u["user_id"]): u for u in users}
    fm = FeatureMap.load(out / "feature_map.json")
    tokens = fm.extra["tokens"]
    tabs = sorted({e["tab"] for e in reference.exposures})
    first_day = (min(e["time_ms"] for e in reference.exposures) + 8 * 3600_000) // 86_400_000
    last_day = (max(e["time_ms"] for e in reference.exposures) + 8 * 3600_000) // 86_400_000
    seen = 0
    for split, days in (("train", range(first_day, last_day - 2)), ("valid", [last_day - 2]),
                        ("gold", [last_day - 1, last_day])):  # fmt: skip
        table = pq.read_table(out / f"{split}.parquet").to_pydict()
        assert manifest["splits"][split]["rows"] == len(table["row_id"]) > 0
        for i, row_id in enumerate(table["row_id"]):
            e = by_row.pop(row_id)
            assert (e["time_ms"] + 8 * 3600_000) // 86_400_000 in days
            assert [table[t][i] for t in ("is_click", "is_like", "long_view")] == [e["is_click"], e["is_like"],
                                                                                 e["long_view"]]  # fmt: skip
            assert table["user_id"][i] == reference.user_id[e["user_id"]]
            assert table["video_id"][i] == reference.video_id[e["video_id"]]
            assert table["tab"][i] == tabs.index(e["tab"]) + 1
            assert table["hour"][i] == (e["time_ms"] // 3600_000 + 8) % 24 + 1
            user = users.get(e["user_id"])
            if user is None:  # the logs hold users without a feature row: missing ids, not an error
                assert all(table[name][i] == 0 for name in USER_FEATURES)
                continue
            seen += 1
            degree = table["user_active_degree"][i]
            assert tokens["user_active_degree"][degree - 1] == user["user_active_degree"]
            assert tokens["fans_user_num_range"][table["fans_user_num_range"][i] - 1] == user["fans_user_num_range"]
            assert (table["is_live_streamer"][i] == 0) == (user["is_live_streamer"] == "-124")
            assert (table["onehot_feat4"][i] == 0) == (user["onehot_feat4"] == "")
    assert not by_row and seen > 100  # every exposure is a sample, once
    without = sum(e["user_id"] not in users for e in reference.exposures)
    assert manifest["details"]["exposures_without"]["user_features"] == without > 0
    assert manifest["details"]["users"]["without_features"] == 2


def test_statistics_buckets_take_their_edges_from_the_train_videos(processed, release):
    out, _, reference = processed
    fm = FeatureMap.load(out / "feature_map.json")
    valid_day = (max(e["time_ms"] for e in reference.exposures) + 8 * 3600_000) // 86_400_000 - 2
    train_videos = {
        e["video_id"] for e in reference.exposures if (e["time_ms"] + 8 * 3600_000) // 86_400_000 < valid_day
    }
    values = {}
    for path in sorted(release.glob("video_features_statistic_*.csv")):
        values |= {int(r["video_id"]): float(r["play_cnt"]) for r in read_rows(path)[1]}
    train_values = [v for video, v in values.items() if video in train_videos]
    edges = np.unique(np.quantile(train_values, np.arange(1, 10) / 10))
    assert fm.extra["bucket_edges_values"]["stat_play_cnt"] == pytest.approx(edges.tolist())
    assert len(train_videos) < len({e["video_id"] for e in reference.exposures})  # some videos only later
    table = pq.read_table(out / "train.parquet").to_pydict()
    by_row = {e["row_id"]: e for e in reference.exposures}
    for row_id, bucket in zip(table["row_id"], table["stat_play_cnt"]):
        value = values.get(by_row[row_id]["video_id"])
        assert bucket == (0 if value is None else 1 + int(np.sum(edges < np.float32(value))))


def test_same_time_events_never_leak(tmp_path, release):
    """One request shows three videos at one time_ms; the first is clicked. None of the three sees that click; the
    next exposure of the user does. Events after a sample never enter its history."""
    raw = tmp_path / "data"
    shutil.copytree(release, raw)
    for path in raw.glob("log_*.csv"):
        path.unlink()
    t0 = 1649400000000  # user 9 gives the valid and gold days both labels
    rows = [(7, 11, t0, 1), (7, 12, t0, 0), (7, 13, t0, 0), (7, 14, t0 + 1, 0), (7, 15, t0 + 86_400_000, 1),
            (7, 16, t0 + 2 * 86_400_000, 0), (8, 17, t0 - 5, 1), (8, 18, t0 + 2 * 86_400_000, 0),
            (9, 19, t0 + 86_400_000, 0), (9, 20, t0 + 2 * 86_400_000, 1)]  # fmt: skip
    with open(raw / "log_standard_test.csv", "w") as handle:
        handle.write(",".join(LOG_COLUMNS) + "\n")
        for user, video, t, click in rows:
            values = dict.fromkeys(LOG_COLUMNS, 0) | {"user_id": user, "video_id": video, "time_ms": t,
                                                      "is_click": click}  # fmt: skip
            handle.write(",".join(str(values[c]) for c in LOG_COLUMNS) + "\n")
    out = tmp_path / "out"
    run(raw, out, history={"behaviors": ["click"], "fields": ["video_id"]})
    histories = {}
    for split in gathered(out, 4).values():
        for row_id, history in zip(split["table"]["row_id"], split["sequences"]["click_video_id"]):
            histories[row_id - 1] = [v for v in history if v]  # line 2 is rows[0]
    video = {v: i + 1 for i, v in enumerate(sorted(r[1] for r in rows))}
    assert histories == {1: [], 2: [], 3: [], 4: [video[11]], 5: [video[11]], 6: [video[11], video[15]], 7: [],
                         8: [video[17]], 9: [], 10: []}  # fmt: skip


def test_the_bytes_do_not_depend_on_the_block_size(release, tmp_path):
    a = run(release, tmp_path / "a", statistics=["play_cnt"])
    b = preprocess_kuairand(release, tmp_path / "b", options={"input_hash": "size+mtime", "statistics": ["play_cnt"]},
                            block_bytes=4096, progress=False)  # fmt: skip
    for key in ("train", "valid", "gold", "events"):
        assert a["outputs"][key]["sha256"] == b["outputs"][key]["sha256"]


def test_options_without_histories_or_statistics(release, tmp_path):
    """No behaviour: no sequence group and an empty event table; no statistic: the statistics files are not read."""
    out = tmp_path / "out"
    m = run(release, out, tasks=["is_follow", "is_click"], history={"behaviors": []}, statistics=[])
    fm = FeatureMap.load(out / "feature_map.json")
    assert fm.sequence_groups == [] and [t.name for t in fm.tasks] == ["is_follow", "is_click"]
    assert pq.read_table(out / "events.parquet").num_rows == 0
    assert not any(name.startswith("video_features_statistic") for name in m["inputs"])
    assert "stat_play_cnt" not in {f.name for f in fm.features} and m["splits"]["train"]["positives"] > 0
    fmt = FORMATS["kuairand"]
    options = fmt.options.resolve({"history": {"behaviors": ["click"], "max_len_by_behavior": {"like": 9}}})
    assert fmt.option_problems(options) == [
        "history.max_len_by_behavior names ['like'], which history.behaviors does not list"
    ]
    m = run(release, tmp_path / "lengths", history={"behaviors": ["click", "like"], "max_len_by_behavior": {"like": 9}})
    groups = {g.name: g.max_len for g in FeatureMap.load(tmp_path / "lengths" / "feature_map.json").sequence_groups}
    assert groups == {"click": 50, "like": 9}


def test_the_synthetic_directory_goes_through_the_same_reader(tmp_path):
    """The embedded default (``write_synthetic_kuairand``, KuaiRand-Pure layout) is read as real data is: every
    exposure a sample, its absent users and videos counted, its histories those of the plain rebuild."""
    raw = tmp_path / "data"
    facts = FORMATS["kuairand"].write_synthetic(raw, rows=3000, seed=2)
    assert FORMATS["kuairand"].path_problem(raw) is None
    out = tmp_path / "out"
    m = run(raw, out)
    assert m["rows"] == {"read": 3000, "written": 3000, "bad": 0}
    assert m["details"]["users"]["without_features"] == facts["absent"]["users"] > 0
    assert m["details"]["videos"]["without_basic_features"] == facts["absent"]["videos_basic"]
    for task in ("is_click", "is_like", "long_view"):
        assert sum(s["task_positives"][task] for s in m["splits"].values()) == round(facts["rates"][task] * 3000)
    compared = check_histories(out, Reference(raw), ["click", "like", "long_view"], ["video_id", "author_id"], 50)
    assert compared > 1000


def test_without_statistics_no_video_is_counted_as_missing_them(release, tmp_path):
    """``statistics: []`` reads no statistic: the manifest must not report every video and exposure as lacking one."""
    m = run(release, tmp_path / "out", statistics=[])
    assert "without_statistics" not in m["details"]["videos"]
    assert "video_statistic" not in m["details"]["exposures_without"]
    assert not [f for f in FeatureMap.load(tmp_path / "out" / "feature_map.json").features if f.name.startswith("stat_")]
    counted = run(release, tmp_path / "with")
    assert "without_statistics" in counted["details"]["videos"] and "video_statistic" in counted["details"]["exposures_without"]
