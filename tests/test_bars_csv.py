"""The FuxiCTR / BARS CSV splits: the real Avazu_x1 sample, files written in the Criteo_x4 and Avazu_x2 layouts,
declared and default feature kinds, train vocabularies with a minimum count, a valid split drawn from train, bad
input.

``tests/data/bars_csv/avazu_x1_{train,valid,test}_sample.csv`` are datawhalechina/torch-rechub:
examples/ranking/data/avazu/{train,valid,test}_sample.csv at commit 77056e20e94ccd5ae66adb065b07f7b961929c47
(PROVENANCE: bars_csv/), copied byte for byte: header ``label,feat_1..feat_22``, 70 / 10 / 20 rows of integer ids
in one global index space.
"""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import DATA

from ctrbench.data.formats import FORMATS
from ctrbench.data.formats.bars_csv.preprocess import preprocess_bars_csv
from ctrbench.data.formats.bars_csv.reader import BarsFormatError, BarsReader
from ctrbench.data.outputs import output_paths
from ctrbench.data.schema import MISSING_ID, FeatureMap
from ctrbench.data.splits import SPLITS
from ctrbench.data.vocabulary import OOV_ID

SAMPLE = {k: DATA / "bars_csv" / f"avazu_x1_{name}_sample.csv" for k, name in zip(SPLITS, ("train", "valid", "test"))}


def run(tmp_path, raw, **options):
    out = tmp_path / "out"
    manifest = preprocess_bars_csv(raw, outputs=output_paths(out, None), options=options, progress=False)
    tables = {k: pq.read_table(out / f"{k}.parquet").to_pandas() for k in SPLITS}
    return manifest, tables, FeatureMap.load(out / "feature_map.json")


def expected_ids(train: pd.Series, column: pd.Series, min_count: int) -> list[int]:
    """FuxiCTR's vocabulary by hand: values kept by train count (>= min_count), ids 2.. by decreasing count, the
    rest and unseen values 1, empty 0 (ties: any order, so compared as a partition)."""
    counts = train.value_counts()
    kept = counts[counts >= min_count]
    ids = {v: 2 + i for i, v in enumerate(kept.index)}
    return [MISSING_ID if v == "" else ids.get(v, OOV_ID) for v in column]


def same_partition(a, b) -> bool:
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


def test_the_real_avazu_x1_sample(tmp_path):
    manifest, tables, fm = run(tmp_path, SAMPLE)
    frames = {k: pd.read_csv(path, dtype=str, keep_default_na=False) for k, path in SAMPLE.items()}
    assert {k: s["rows"] for k, s in manifest["splits"].items()} == {"train": 70, "valid": 10, "gold": 20}
    assert fm.labels == ["label"] and [f.name for f in fm.categorical] == [f"feat_{i}" for i in range(1, 23)]
    assert tables["gold"]["row_id"].tolist() == list(range(70 + 1 + 11 + 2, 70 + 1 + 11 + 22))  # files concatenated
    for k in SPLITS:
        assert tables[k]["label"].tolist() == frames[k]["label"].astype(float).tolist()
    for name in ("feat_3", "feat_10", "feat_22"):
        for k in SPLITS:
            ids = tables[k][name].tolist()
            hand = expected_ids(frames["train"][name], frames[k][name], 1)
            assert same_partition(ids, hand) and [i == OOV_ID for i in ids] == [i == OOV_ID for i in hand]
        assert {f.name: f.vocab_size for f in fm.categorical}[name] == frames["train"][name].nunique() + 2
    assert (tables["gold"]["feat_10"] == OOV_ID).any()  # an id never seen in train


def write_criteo_x4(directory, rows=400, seed=0):
    """``Label,I1..I13,C1..C26``: raw integer counts (some empty), 8-hex-digit categoricals (some empty)."""
    rng = np.random.default_rng(seed)
    directory.mkdir()
    header = ["Label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]
    for name, n in (("train.csv", rows), ("test.csv", rows // 4)):
        lines = [",".join(header)]
        for _ in range(n):
            dense = ["" if rng.random() < 0.2 else str(int(rng.integers(-2, 500))) for _ in range(13)]
            cats = ["" if rng.random() < 0.1 else f"{int(rng.zipf(1.5)) % 50:08x}" for _ in range(26)]
            lines.append(",".join([str(int(rng.random() < 0.3)), *dense, *cats]))
        (directory / name).write_text("\n".join(lines) + "\n")
    return header


def test_criteo_x4_layout_numeric_declared_categorical_the_rest_valid_from_train(tmp_path):
    header = write_criteo_x4(tmp_path / "raw")
    dense = [f"I{i}" for i in range(1, 14)]
    options = {"label": "Label", "features": {"numeric": dense}, "min_count": 3, "splits": {"valid": 0.25}}
    manifest, tables, fm = run(tmp_path, tmp_path / "raw", **options)
    assert {k: s["rows"] for k, s in manifest["splits"].items()} == {"train": 300, "valid": 100, "gold": 100}
    assert [f.name for f in fm.dense] == dense and [f.name for f in fm.categorical] == header[14:]
    raw = pd.read_csv(tmp_path / "raw" / "train.csv", dtype=str, keep_default_na=False)
    train_rows = tables["train"]["row_id"].to_numpy() - 2  # data line index in train.csv
    valid_rows = tables["valid"]["row_id"].to_numpy() - 2
    for name in ("C1", "C7"):
        for rows, table in ((train_rows, tables["train"]), (valid_rows, tables["valid"])):
            hand = expected_ids(raw[name].iloc[train_rows], raw[name].iloc[rows], 3)
            ids = table[name].tolist()
            assert same_partition(ids, hand) and [i <= 1 for i in ids] == [i <= 1 for i in hand]
    i2 = raw["I2"].iloc[train_rows]
    assert tables["train"]["I2"].tolist() == [float(v) if v else 0.0 for v in i2]
    test = pd.read_csv(tmp_path / "raw" / "test.csv", dtype=str, keep_default_na=False)
    empty = sum(int((frame[dense] == "").to_numpy().sum()) for frame in (raw, test))
    assert manifest["details"]["numeric_missing"] == empty
    (tmp_path / "again").mkdir()
    again = run(tmp_path / "again", tmp_path / "raw", **options)[0]
    assert again["outputs"] == manifest["outputs"]  # the valid draw is seeded


def test_avazu_x2_layout_labels_as_floats_and_excluded_columns(tmp_path):
    """``click,C1,banner_pos,...,mday,hour,wday`` (label-encoded integers) with an ``id`` column left out."""
    columns = ["id", "click", "C1", "banner_pos", "site_id", "mday", "hour", "wday"]
    rng = np.random.default_rng(1)
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, n in (("train.csv", 60), ("valid.csv", 20), ("test.csv", 20)):
        rows = [[str(i), f"{rng.integers(0, 2)}.0", *(str(int(v)) for v in rng.integers(0, 6, 6))] for i in range(n)]
        (raw / name).write_text("\n".join([",".join(columns)] + [",".join(r) for r in rows]) + "\n")
    manifest, tables, fm = run(tmp_path, raw, label="click", exclude=["id"])
    assert [f.name for f in fm.categorical] == columns[2:] and fm.dense == []
    assert {k: s["rows"] for k, s in manifest["splits"].items()} == {"train": 60, "valid": 20, "gold": 20}
    assert manifest["details"]["features"]["categorical"] == columns[2:]
    assert set(tables["train"]["click"].unique()) == {0.0, 1.0}


def _lines(tmp_path, index, value, column="feat_5"):
    lines = SAMPLE["train"].read_text().splitlines()[:6]
    fields = lines[index].split(",")
    names = lines[0].split(",")
    if value is None:
        fields = fields[:-1]
    else:
        fields[names.index(column)] = value
    lines[index] = ",".join(fields)
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "train.csv"


@pytest.mark.parametrize(
    ("value", "column", "numeric", "kind", "message"),
    [
        (None, "feat_5", [], "field_count", r"expected 23 comma-separated fields, found 22"),
        ("2", "label", [], "bad_label", r"column label: '2' is not 0 or 1"),
        ("0.5", "label", [], "bad_label", r"column label: '0.5' is not 0 or 1"),
        ("n/a", "feat_5", ["feat_5"], "bad_number", r"column feat_5: 'n/a' is not a number"),
    ],
)
def test_bad_rows_name_file_line_and_problem_or_are_counted(tmp_path, value, column, numeric, kind, message):
    path = _lines(tmp_path, 3, value, column)
    categorical = [f"feat_{i}" for i in range(1, 23) if f"feat_{i}" not in numeric]
    reader = BarsReader(path, label="label", categorical=categorical, numeric=numeric)
    with pytest.raises(BarsFormatError, match=rf"train.csv:4: {message}"):
        list(reader)
    reader = BarsReader(path, label="label", categorical=categorical, numeric=numeric, max_bad_rows=1)
    assert [int(r) for b in reader for r in b.row_id] == [2, 3, 5, 6]
    assert reader.bad.total == reader.bad.counts[kind] == 1


def test_headers_and_declarations_are_checked_before_reading(tmp_path):
    with pytest.raises(BarsFormatError, match=r"avazu_x1_train_sample.csv:1: header lacks column click"):
        preprocess_bars_csv(SAMPLE, outputs=output_paths(tmp_path / "o", None), options={"label": "click"})
    with pytest.raises(BarsFormatError, match=r"the label 'label' is also declared a feature"):
        preprocess_bars_csv(
            SAMPLE, outputs=output_paths(tmp_path / "o", None), options={"features": {"categorical": ["label"]}}
        )
    with pytest.raises(BarsFormatError, match=r"header lacks column feat_99"):
        options = {"features": {"categorical": ["feat_1"], "numeric": ["feat_99"]}}
        preprocess_bars_csv(SAMPLE, outputs=output_paths(tmp_path / "o", None), options=options)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train.csv").write_bytes(SAMPLE["train"].read_bytes())
    assert FORMATS["bars_csv"].path_problem(raw) == f"{str(raw)!r} lacks test.csv"
    (raw / "test.csv").write_bytes(SAMPLE["gold"].read_bytes())
    assert FORMATS["bars_csv"].path_problem(raw) is None
    assert FORMATS["bars_csv"].raw_files(raw) == [str(raw / "train.csv"), str(raw / "test.csv")]
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


AVAZU_SAMPLE = DATA / "avazu" / "avazu_sample.txt"
DERIVED = {
    "hour": {"from": "hour", "kind": "hour_of_day"},
    "weekday": {"from": "hour", "kind": "weekday"},
    "weekend": {"from": "hour", "kind": "weekend"},
}


def test_avazu_x4_layout_with_derived_hour_fields(tmp_path):
    """Avazu_x4 as BARS ships it: the raw Avazu columns in train / valid / test.csv; id excluded, hour replaced by
    hour of day, weekday and weekend (the 24 fields of the published runs)."""
    lines = AVAZU_SAMPLE.read_text().splitlines()
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, rows in (("train.csv", lines[1:71]), ("valid.csv", lines[71:81]), ("test.csv", lines[81:])):
        (raw / name).write_text("\n".join([lines[0], *rows]) + "\n")
    options = {"label": "click", "exclude": ["id"], "features": {"derived": DERIVED}, "min_count": 2}
    manifest, tables, fm = run(tmp_path, raw, **options)
    header = lines[0].split(",")
    assert [f.name for f in fm.categorical] == [*header[3:], "hour", "weekday", "weekend"] and len(fm.categorical) == 24
    assert {f.name: f.vocab_size for f in fm.categorical}["weekday"] == 3  # one day (a Tuesday): missing, OOV, 2
    assert set(tables["gold"]["weekday"]) == {2} and manifest["splits"]["gold"]["rows"] == 20
    (raw / "valid.csv").write_text(lines[0] + "\n" + lines[71].replace(",14102100,", ",14102199,") + "\n")
    with pytest.raises(BarsFormatError, match=r"valid.csv:2: column hour: '14102199' is not a YYMMDDHH hour"):
        run(tmp_path / "bad", raw, **options)
    options["features"]["categorical"] = ["C1", "hour"]
    with pytest.raises(BarsFormatError, match=r"derived fields \['hour'\] are also declared label or features"):
        run(tmp_path / "taken", raw, **options)
