"""AliExpress multi-task CSVs: the reader on the real sample, columns by name, bad input, preprocessing.

``tests/data/aliexpress/train.csv`` and ``test.csv`` are the first 50 and 41 lines of reczoo/FuxiCTR:
data/tiny_mtl/train.csv and test.csv (PROVENANCE: aliexpress_multitask/), copied byte for byte: header
``search_id,categorical_1..16,numerical_1..63,click,conversion``; train holds 1 click, test 5 clicks and 1
conversion.
"""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import REPO
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from test_workflow import TINY_CONFIG, snakemake, with_changes, workflow_copy

from ctrbench.data.formats import FORMATS
from ctrbench.data.formats.aliexpress.preprocess import preprocess_aliexpress
from ctrbench.data.formats.aliexpress.reader import (
    COLUMNS,
    NUMERICAL,
    AliExpressFormatError,
    AliExpressReader,
    read_aliexpress,
)
from ctrbench.data.formats.aliexpress.synthetic import write_synthetic_aliexpress
from ctrbench.data.outputs import output_paths
from ctrbench.data.schema import FeatureMap
from ctrbench.data.splits import SPLITS, UnusableSplitError

SAMPLE = REPO / "tests" / "data" / "aliexpress"


def lines_of(path):
    return path.read_text().splitlines()


def test_reader_on_the_real_sample():
    block = read_aliexpress(SAMPLE / "train.csv")
    assert len(block) == 49 and block.columns["row_id"].tolist() == list(range(2, 51))
    first = lines_of(SAMPLE / "train.csv")[1].split(",")  # 363,7,0,0,1,18,4,34,0,3,...
    assert block.columns["search_id"][0] == 363 == int(first[0])
    assert [block.columns[f"categorical_{i}"][0] for i in range(1, 17)] == [int(v) + 1 for v in first[1:17]]
    assert block.columns["numerical_2"][0] == np.float32(0.083333)
    assert block.columns["numerical_58"].max() == 0.0  # written as a bare 0 in the release
    assert block.columns["row_id"][block.columns["click"] == 1].tolist() == [49]  # the one click, on line 49
    gold = read_aliexpress(SAMPLE / "test.csv", row_id_offset=50)
    assert (gold.columns["click"].sum(), gold.columns["conversion"].sum()) == (5, 1)
    assert gold.columns["row_id"][0] == 52


def test_columns_are_found_by_header_name_not_position(tmp_path):
    """Other copies put conversion before click; any order (and an unused column) reads the same rows."""
    rows = [line.split(",") for line in lines_of(SAMPLE / "test.csv")]
    rng = np.random.default_rng(0)
    order = [*rng.permutation(len(COLUMNS) - 2), len(COLUMNS) - 1, len(COLUMNS) - 2]  # ..., conversion, click
    (tmp_path / "swapped.csv").write_text("".join(",".join([r[i] for i in order] + ["x"]) + "\n" for r in rows))
    header = lines_of(tmp_path / "swapped.csv")[0].split(",")
    assert header[-3:] == ["conversion", "click", "x"]
    reader = AliExpressReader(tmp_path / "swapped.csv")
    swapped = next(iter(reader))
    original = read_aliexpress(SAMPLE / "test.csv")
    assert reader.extra_columns == ["x"]
    assert all(np.array_equal(swapped.columns[c], original.columns[c]) for c in original.columns)


def _replace(line: str, column: str, value: str) -> str:
    fields = line.split(",")
    fields[COLUMNS.index(column)] = value
    return ",".join(fields)


BAD = [
    (lambda line: line.rsplit(",", 1)[0], "field_count", r"expected 82 comma-separated fields, found 81"),
    (
        lambda line: _replace(line, "categorical_3", "2.5"),
        "bad_integer",
        r"column categorical_3: '2.5' is not an integer",
    ),
    (lambda line: _replace(line, "search_id", "q7"), "bad_integer", r"column search_id: 'q7' is not a non-negative"),
    (
        lambda line: _replace(line, "categorical_7", "10000001"),
        "bad_integer",
        r"column categorical_7: '10000001' is not an integer in \[0, max_categorical_value=10000000\]",
    ),
    (lambda line: _replace(line, "conversion", "2"), "bad_label", r"column conversion: '2' is not 0 or 1"),
    (lambda line: _replace(line, "numerical_40", "n/a"), "bad_number", r"column numerical_40: 'n/a' is not a number"),
]


@pytest.mark.parametrize(("corrupt", "kind", "message"), BAD)
def test_every_bad_row_kind_names_file_line_and_problem_or_is_counted(tmp_path, corrupt, kind, message):
    lines = lines_of(SAMPLE / "train.csv")[:6]
    lines[3] = corrupt(lines[3])
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AliExpressFormatError, match=rf"train.csv:4: {message}"):
        read_aliexpress(path)
    reader = AliExpressReader(path, max_bad_rows=1)
    assert [int(b.columns["row_id"][k]) for b in reader for k in range(len(b))] == [2, 3, 5, 6]
    assert reader.bad.total == reader.bad.counts[kind] == 1


def test_a_file_without_good_rows_has_no_data_rows(tmp_path):
    lines = lines_of(SAMPLE / "train.csv")
    path = tmp_path / "train.csv"
    path.write_text(lines[0] + "\n")
    with pytest.raises(AliExpressFormatError, match=r"train.csv: no data rows \(0 lines, all bad or none\)"):
        read_aliexpress(path)
    path.write_text("\n".join([lines[0], lines[1].rsplit(",", 1)[0], _replace(lines[2], "click", "2")]) + "\n")
    with pytest.raises(AliExpressFormatError, match=r"train.csv: no data rows \(2 lines, all bad or none\)"):
        read_aliexpress(path, max_bad_rows=2)


def test_missing_file_header_lacking_a_column_and_empty_file(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train.csv").write_bytes((SAMPLE / "train.csv").read_bytes())
    assert FORMATS["aliexpress"].path_problem(raw) == f"{str(raw)!r} lacks test.csv"
    with pytest.raises(FileNotFoundError, match=r"raw/test.csv: no such file \(the gold split"):
        preprocess_aliexpress(raw, outputs=output_paths(tmp_path / "out", None), progress=False)
    lines = lines_of(SAMPLE / "test.csv")
    (raw / "test.csv").write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    with pytest.raises(AliExpressFormatError, match=r"test.csv:1: header lacks column conversion"):
        preprocess_aliexpress(raw, outputs=output_paths(tmp_path / "out", None), progress=False)
    (raw / "test.csv").write_bytes(b"")
    with pytest.raises(AliExpressFormatError, match=r"test.csv: empty file"):
        preprocess_aliexpress(raw, outputs=output_paths(tmp_path / "out", None), progress=False)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_the_real_samples_through_preprocessing(tmp_path):
    """The real train rows hold one click: whichever of train and valid gets it, the other has one class in
    both tasks, which is refused. The test file as train: conversion (one positive) has one class in one split,
    which a multi-task dataset allows and records."""
    with pytest.raises(UnusableSplitError, match=r"split has a single class in every task: .* click=0, conversion=0"):
        preprocess_aliexpress(SAMPLE, outputs=output_paths(tmp_path / "a", None), progress=False)
    assert list((tmp_path / "a").iterdir()) == []  # nothing published, nothing partial left
    files = {"train": SAMPLE / "test.csv", "gold": SAMPLE / "test.csv"}
    options = {"splits": {"valid": 0.25}, "split_seed": 1}
    manifest = preprocess_aliexpress(files, outputs=output_paths(tmp_path / "b", None), options=options, progress=False)
    assert {k: s["rows"] for k, s in manifest["splits"].items()} == {"train": 30, "valid": 10, "gold": 40}
    assert [t for ts in manifest["details"]["single_class_tasks"].values() for t in ts] == ["conversion"]
    fm = FeatureMap.load(tmp_path / "b" / "feature_map.json")
    assert fm.labels == ["click", "conversion"] and fm.group_by == "search_id"
    assert fm.categorical[6].vocab_size == 49 + 2  # categorical_7 goes up to 49 in these rows
    assert len(fm.dense) == 63 and fm.extra["numerical_range"]["numerical_58"] == [0.0, 0.0]


def planted_features(table):
    """The planted signal's inputs: one-hot (categorical_7, item pair) and (categorical_5, item pair) interactions
    (``synthetic`` docstring), and the numericals."""

    def interaction(query, first, second, codes):
        pair = table.column(first).to_numpy() - 1 + 2 * (table.column(second).to_numpy() - 1)
        cell = (table.column(query).to_numpy() - 1) * 4 + pair
        return np.eye(codes * 4)[cell]

    numbers = np.stack([table.column(c).to_numpy() for c in NUMERICAL], axis=1)
    return np.hstack(
        [
            interaction("categorical_7", "categorical_10", "categorical_11", 50),
            interaction("categorical_5", "categorical_12", "categorical_13", 19),
            numbers,
        ]
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("aliexpress")
    facts = write_synthetic_aliexpress(root / "raw", 3000, seed=2)
    manifest = preprocess_aliexpress(root / "raw", outputs=output_paths(root / "out", None), progress=False)
    return {"root": root, "facts": facts, "manifest": manifest}


def test_synthetic_layout_and_its_preprocessing(synthetic):
    root, facts, manifest = synthetic["root"], synthetic["facts"], synthetic["manifest"]
    assert (root / "raw" / "train.csv").read_text().split("\n", 1)[0] == (SAMPLE / "train.csv").read_text().split(
        "\n", 1
    )[0]
    assert manifest["rows"] == {"read": 3000, "written": 3000, "bad": 0}
    assert {k: s["rows"] for k, s in manifest["splits"].items()} == {"train": 2160, "valid": 240, "gold": 600}
    tables = {k: pq.read_table(root / "out" / f"{k}.parquet") for k in SPLITS}
    for k, table in tables.items():
        labels = {t: int(np.sum(table.column(t).to_numpy())) for t in ("click", "conversion")}
        assert manifest["splits"][k]["task_positives"] == labels
        assert not np.any((table.column("conversion").to_numpy() == 1) & (table.column("click").to_numpy() == 0))
    clicks = sum(s["task_positives"]["click"] for s in manifest["splits"].values())
    assert clicks == sum(f["clicks"] for f in facts["files"].values())
    assert manifest["details"]["conversion_without_click"] == 0
    fm = FeatureMap.load(root / "out" / "feature_map.json")
    largest = max(int(np.max(t.column("categorical_7").to_numpy())) for t in tables.values())
    assert fm.categorical[6].vocab_size == largest + 1  # ids are value + 1: the table has max value + 2 rows
    assert all(0.0 <= lo <= hi <= 1.0 for lo, hi in fm.extra["numerical_range"].values())

    # the two tasks carry the planted, different signals: gold AUC of a logistic regression on the train rows
    train, gold = tables["train"], tables["gold"]
    for task, floor in (("click", 0.7), ("conversion", 0.62)):  # ~100 conversions to learn from
        model = LogisticRegression(C=0.5, max_iter=500).fit(planted_features(train), train.column(task).to_numpy())
        auc = roc_auc_score(gold.column(task).to_numpy(), model.predict_proba(planted_features(gold))[:, 1])
        assert auc > floor, (task, auc)


def test_outputs_are_seeded_and_the_generator_writes_the_same_bytes(synthetic, tmp_path):
    again = write_synthetic_aliexpress(tmp_path / "raw", 3000, seed=2)
    assert json.dumps(again, sort_keys=True) == json.dumps(synthetic["facts"], sort_keys=True)
    for name in ("train.csv", "test.csv"):
        assert (tmp_path / "raw" / name).read_bytes() == (synthetic["root"] / "raw" / name).read_bytes()
    manifest = preprocess_aliexpress(tmp_path / "raw", outputs=output_paths(tmp_path / "out", None), progress=False)
    assert manifest["outputs"] == synthetic["manifest"]["outputs"]
    other = write_synthetic_aliexpress(tmp_path / "other", 3000, seed=3)
    assert other["files"] != synthetic["facts"]["files"]


def test_the_workflow_writes_a_synthetic_directory_and_preprocesses_it(tmp_path):
    """A directory format's ``synthetic`` entry: generate_synthetic writes train.csv and test.csv into
    results/<dataset>/raw/, the preprocess job reads that directory (and a Tenrec file, raw/data.txt, beside it)."""

    def change(config):
        config["datasets"] = {
            "ali": {"format": "aliexpress", "synthetic": {"rows": 600, "seed": 1}, "splits": {"valid": 0.2}},
            "ten": {"format": "tenrec", "synthetic": {"rows": 800, "seed": 1}, "history": {"max_len": 5}},
        }
        config["benchmark"]["datasets"] = ["ali", "ten"]

    work = workflow_copy(tmp_path)
    targets = ["results/ali/data/manifest.json", "results/ten/data/manifest.json"]
    result = snakemake(work, *targets, config=with_changes(TINY_CONFIG, change))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (work / "results/ali/raw").glob("*.csv")) == ["test.csv", "train.csv"]
    assert (work / "results/ten/raw/data.txt").is_file()
    manifest = json.loads((work / "results/ali/data/manifest.json").read_text())
    assert manifest["rows"]["written"] == 600 and manifest["splits"]["gold"]["rows"] == 120
    assert json.loads((work / "results/ten/data/manifest.json").read_text())["rows"]["written"] == 800
