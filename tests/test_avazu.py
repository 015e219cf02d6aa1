"""The raw Avazu layout: the reader on the real sample, derived hour / weekday / weekend, train vocabularies with a
minimum count, bad input, splits, and the seeded generator's layout, determinism and planted signal.

``tests/data/avazu/avazu_sample.txt`` is shenweichen/DeepCTR: examples/avazu_sample.txt (PROVENANCE:
avazu/avazu_sample.txt), copied byte for byte: the raw header and 100 rows of hour 14102100, 20 clicks.
"""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DATA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from test_workflow import TINY_CONFIG, snakemake, with_changes, workflow_copy

from ctrbench.data.formats import FORMATS
from ctrbench.data.formats.avazu.preprocess import option_problems, preprocess_avazu
from ctrbench.data.formats.avazu.reader import (
    CATEGORICAL,
    COLUMNS,
    FEATURES,
    AvazuFormatError,
    AvazuReader,
    read_avazu,
)
from ctrbench.data.formats.avazu.synthetic import write_synthetic_avazu
from ctrbench.data.schema import FeatureMap
from ctrbench.data.splits import SPLITS
from ctrbench.data.stamps import parse_stamps
from ctrbench.data.vocabulary import OOV_ID, hash_values

SAMPLE = DATA / "avazu" / "avazu_sample.txt"


def hand_derived(stamp: str) -> tuple[int, int, int]:
    """FuxiCTR's convert_hour / convert_weekday / convert_weekend, with the standard library."""
    weekday = int(dt.date(2000 + int(stamp[:2]), int(stamp[2:4]), int(stamp[4:6])).strftime("%w"))
    return int(stamp[6:8]), weekday, int(weekday in (0, 6))


def test_reader_on_the_real_sample():
    frame = pd.read_csv(SAMPLE, dtype=str)
    (block,) = read_avazu(SAMPLE)
    assert len(block) == 100 and block.row_id.tolist() == list(range(2, 102))
    assert block.label.tolist() == frame["click"].astype(float).tolist() and block.label.sum() == 20
    assert list(block.keys) == FEATURES and len(FEATURES) == 24 and "id" not in FEATURES
    expected = np.array([hand_derived(s) for s in frame["hour"]])
    derived = np.stack([block.keys[name][0] for name in ("hour", "weekday", "weekend")], axis=1)
    assert (derived == expected).all() and tuple(expected[0]) == (0, 2, 0)  # 2014-10-21 was a Tuesday
    for name in CATEGORICAL:  # one key per distinct string of the column, none missing
        keys, missing = block.keys[name]
        assert not missing.any()
        pairs = set(zip(frame[name], keys.tolist()))
        assert len(pairs) == frame[name].nunique() == len(set(keys.tolist())), name


@pytest.mark.parametrize("stamp", ["14102100", "14102612", "14102523", "16022901", "14123105", "00010100", "99123123"])
def test_derived_fields_follow_the_hand_computation(stamp):
    derived, value, bad = parse_stamps(pa.array([stamp.encode()], pa.binary()))
    assert not bad[0] and value[0] == int(stamp)
    assert (int(derived["hour"][0]), int(derived["weekday"][0]), int(derived["weekend"][0])) == hand_derived(stamp)


def test_bad_hours_are_refused():
    stamps = ["14022912", "14130100", "14100012", "14103200", "14102124", "1410210", "141021000", "", "x4102100"]
    _, _, bad = parse_stamps(pa.array([s.encode() for s in stamps], pa.binary()))
    assert bad.tolist() == [True] * len(stamps)  # 2014 is no leap year; month 13; day 0, 32; hour 24; lengths


def test_keys_are_per_string_whatever_the_length_and_the_slice():
    values = [b"", b"a", b"a\x00", b"12345678", b"123456789", b"1234567812345678", b"12345678123456789", b"-1"]
    keys, missing = hash_values(pa.array(values, pa.binary()))
    assert missing.tolist() == [True] + [False] * 7 and keys[0] == 0
    assert len(set(keys[1:].tolist())) == 7
    again, _ = hash_values(pa.array([b"x", *values[::-1]], pa.binary()).slice(1))  # offsets shifted, other order
    assert again[::-1].tolist() == keys.tolist()


def write_rows(path, rows):
    """A raw Avazu CSV of the sample's first row with (hour, site_id, click) replaced per row."""
    base = SAMPLE.read_text().splitlines()[1].split(",")
    lines = [",".join(COLUMNS)]
    for hour, site, click in rows:
        fields = list(base)
        fields[COLUMNS.index("hour")], fields[COLUMNS.index("site_id")], fields[1] = hour, site, click
        lines.append(",".join(fields))
    path.write_text("\n".join(lines) + "\n")


def test_min_count_vocabulary_on_train_and_the_out_of_vocabulary_id(tmp_path):
    """By hour: train is 2014-10-21, valid the 22nd, gold the 23rd. site_id counts in train: a 3, b 2, c 1."""
    day = lambda d: f"1410{d}00"
    train = [(day(21), "a", "1"), (day(21), "a", "0"), (day(21), "b", "0"), (day(21), "a", "0")]
    train += [(day(21), "b", "1"), (day(21), "c", "0")]
    rows = [*train, (day(22), "c", "1"), (day(22), "a", "0"), (day(23), "d", "1"), (day(23), "b", "0")]
    write_rows(tmp_path / "raw.csv", rows)
    options = {"split_by": "hour", "hour_split": {"valid_start": 14102200, "gold_start": 14102300}, "min_count": 2}
    manifest = preprocess_avazu(tmp_path / "raw.csv", tmp_path / "out", options=options, progress=False)
    assert {k: s["rows"] for k, s in manifest["splits"].items()} == {"train": 6, "valid": 2, "gold": 2}
    site = {k: pq.read_table(tmp_path / "out" / f"{k}.parquet").column("site_id").to_pylist() for k in SPLITS}
    a, b = 2, 3  # by decreasing train count
    assert site == {"train": [a, a, b, a, b, OOV_ID], "valid": [OOV_ID, a], "gold": [OOV_ID, b]}
    fm = FeatureMap.load(tmp_path / "out" / "feature_map.json")
    assert fm.labels == ["click"] and [f.name for f in fm.categorical] == FEATURES
    assert {f.name: f.vocab_size for f in fm.categorical}["site_id"] == 2 + 2  # missing, OOV, a, b
    assert fm.extra["vocabularies"]["site_id"] == {
        "kept_values": 2, "train_distinct_values": 3, "values_below_min_count": 1, "train_rows_below_min_count": 1
    }  # fmt: skip
    with_one = preprocess_avazu(
        tmp_path / "raw.csv", tmp_path / "one", options={**options, "min_count": 1}, progress=False
    )
    assert with_one["details"]["vocabularies"]["site_id"]["kept_values"] == 3


def _corrupt(line: str, column: str, value: str) -> str:
    fields = line.split(",")
    fields[COLUMNS.index(column)] = value
    return ",".join(fields)


BAD = [
    (lambda line: line.rsplit(",", 1)[0], "field_count", r"expected 24 comma-separated fields, found 23"),
    (lambda line: _corrupt(line, "click", "2"), "bad_label", r"column click: '2' is not 0 or 1"),
    (lambda line: _corrupt(line, "hour", "14102124"), "bad_hour", r"column hour: '14102124' is not a YYMMDDHH hour"),
    (lambda line: _corrupt(line, "hour", "2014-10-21"), "bad_hour", r"column hour: '2014-10-21' is not a YYMMDDHH"),
]


@pytest.mark.parametrize(("corrupt", "kind", "message"), BAD)
def test_bad_rows_name_file_line_and_problem_or_are_counted(tmp_path, corrupt, kind, message):
    lines = SAMPLE.read_text().splitlines()[:6]
    lines[3] = corrupt(lines[3])
    path = tmp_path / "raw.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AvazuFormatError, match=rf"raw.csv:4: {message}"):
        read_avazu(path)
    reader = AvazuReader(path, max_bad_rows=1)
    assert [int(r) for b in reader for r in b.row_id] == [2, 3, 5, 6]
    assert reader.bad.total == reader.bad.counts[kind] == 1


def test_header_lacking_a_column_and_empty_file(tmp_path):
    lines = SAMPLE.read_text().splitlines()[:3]
    (tmp_path / "raw.csv").write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    with pytest.raises(AvazuFormatError, match=r"raw.csv:1: header lacks column C21 of the raw Avazu layout"):
        preprocess_avazu(tmp_path / "raw.csv", tmp_path / "out", progress=False)
    (tmp_path / "raw.csv").write_bytes(b"")
    with pytest.raises(AvazuFormatError, match=r"raw.csv: empty file"):
        preprocess_avazu(tmp_path / "raw.csv", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_option_problems():
    resolve = FORMATS["avazu"].options.resolve
    assert option_problems(resolve({})) == []
    assert option_problems(resolve({"split_by": "hour"}))[0].startswith("hour_split: split_by hour needs")
    late = resolve({"split_by": "hour", "hour_split": {"valid_start": 14103000, "gold_start": 14102900}})
    assert "must be before gold_start" in option_problems(late)[0]
    assert resolve({})["min_count"] == 2 and resolve({})["splits"] == {"train": 0.8, "valid": 0.1, "gold": 0.1}


ROWS = 30_000


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("avazu")
    facts = write_synthetic_avazu(root / "raw.csv", ROWS, seed=3)
    manifest = preprocess_avazu(root / "raw.csv", root / "out", progress=False)
    return root, facts, manifest


def test_synthetic_layout_and_its_preprocessing(synthetic):
    root, facts, manifest = synthetic
    assert (root / "raw.csv").read_text().split("\n", 1)[0] == SAMPLE.read_text().split("\n", 1)[0]
    frame = pd.read_csv(root / "raw.csv", dtype=str)
    assert frame["hour"].is_monotonic_increasing and frame["hour"].iloc[[0, -1]].tolist() == ["14102100", "14103023"]
    assert frame["site_id"].str.fullmatch("[0-9a-f]{8}").all() and frame["C20"].eq("-1").any()
    app = frame["site_id"] == "85f751fd"  # app traffic: the site columns hold the release's placeholders
    assert 0.25 < app.mean() < 0.45 and (frame.loc[~app, "app_id"] == "ecad2386").all()
    assert int(frame["click"].astype(int).sum()) == facts["clicks"] and 0.14 < facts["click_rate"] < 0.2
    assert manifest["rows"] == {"read": ROWS, "written": ROWS, "bad": 0}
    assert {k: s["rows"] for k, s in manifest["splits"].items()} == {"train": 24_000, "valid": 3000, "gold": 3000}
    ip = manifest["details"]["vocabularies"]["device_ip"]
    assert ip["values_below_min_count"] > 1000 and ip["kept_values"] < ip["train_distinct_values"]
    gold = pq.read_table(root / "out" / "gold.parquet")
    assert (gold.column("device_ip").to_numpy() == OOV_ID).mean() > 0.05  # the long tail, as in the real data
    derived = np.array([hand_derived(frame["hour"].iloc[i - 2]) for i in gold.column("row_id").to_numpy()[:50]])
    hour_ids = gold.column("hour").to_numpy()[:50]
    assert len(set(zip(hour_ids.tolist(), derived[:, 0].tolist()))) == len(set(derived[:, 0].tolist()))


def test_generator_and_preprocessing_are_deterministic(synthetic, tmp_path):
    root, facts, manifest = synthetic
    again = write_synthetic_avazu(tmp_path / "raw.csv", ROWS, seed=3)
    assert json.dumps(again, sort_keys=True) == json.dumps(facts, sort_keys=True)
    assert (tmp_path / "raw.csv").read_bytes() == (root / "raw.csv").read_bytes()
    assert preprocess_avazu(tmp_path / "raw.csv", tmp_path / "out", progress=False)["outputs"] == manifest["outputs"]
    assert write_synthetic_avazu(tmp_path / "other.csv", ROWS, seed=4)["clicks"] != facts["clicks"]


def test_the_planted_signal_is_learnable_with_the_interaction(synthetic):
    """From the raw file: a logistic regression on the site_category x device_type cell, hour of day and
    banner_pos beats one on the same fields one-hot without the cross."""
    root, _, _ = synthetic
    frame = pd.read_csv(root / "raw.csv", dtype=str)
    hour = frame["hour"].str[6:8]
    cross = pd.get_dummies(frame["site_category"] + "|" + frame["device_type"])
    plain = pd.get_dummies(frame[["site_category", "device_type", "banner_pos"]].assign(hh=hour))
    crossed = pd.concat([cross, pd.get_dummies(frame[["banner_pos"]].assign(hh=hour))], axis=1)
    y = frame["click"].astype(int).to_numpy()
    train, test = np.arange(len(y)) % 5 != 0, np.arange(len(y)) % 5 == 0
    auc = {}
    for name, x in (("plain", plain), ("crossed", crossed)):
        x = x.to_numpy(dtype=float)
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x[train], y[train])
        auc[name] = roc_auc_score(y[test], model.predict_proba(x[test])[:, 1])
    assert auc["crossed"] > 0.69 and auc["crossed"] > auc["plain"] + 0.03, auc


def test_the_workflow_generates_and_preprocesses_avazu_and_reads_a_bars_directory(tmp_path):
    """The embedded default's path: generate_synthetic writes the raw Avazu CSV, the preprocess job reads it; a
    bars_csv entry reads a split directory (the Avazu_x1 sample renamed to train / valid / test.csv)."""
    bars = tmp_path / "Avazu_x1"
    bars.mkdir()
    for split, name in (("train", "train"), ("valid", "valid"), ("test", "test")):
        (bars / f"{name}.csv").write_bytes((DATA / "bars_csv" / f"avazu_x1_{split}_sample.csv").read_bytes())

    def change(config):
        config["datasets"] = {
            "av": {"format": "avazu", "synthetic": {"rows": 2000, "seed": 1}, "min_count": 3},
            "x1": {"format": "bars_csv", "path": str(bars)},
        }
        config["benchmark"]["datasets"] = ["av", "x1"]

    work = workflow_copy(tmp_path)
    targets = ["results/av/data/manifest.json", "results/x1/data/manifest.json"]
    result = snakemake(work, *targets, config=with_changes(TINY_CONFIG, change))
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((work / "results/av/data/manifest.json").read_text())
    assert manifest["rows"]["written"] == 2000 and manifest["options"]["min_count"] == 3
    assert json.loads((work / "results/x1/data/manifest.json").read_text())["splits"]["valid"]["rows"] == 10
