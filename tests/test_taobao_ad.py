"""The TaobaoAd_x1 reader and preprocessing (ctrbench.data.formats.taobao_ad) on FuxiCTR's real samples, on bad
input, and on its own synthetic data; expected values are computed here in plain Python, one field at a time."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctrbench.data.batch import TensorDataset
from ctrbench.data.formats import FORMATS
from ctrbench.data.formats.taobao_ad.fields import stable_hash
from ctrbench.data.formats.taobao_ad.preprocess import preprocess_taobao_ad
from ctrbench.data.formats.taobao_ad.reader import (
    BAD_ROW_KINDS,
    CATEGORICAL,
    HEADER,
    TaobaoAdBlock,
    TaobaoAdFormatError,
    TaobaoAdReader,
    read_taobao_ad,
)
from ctrbench.data.formats.taobao_ad.synthetic import write_synthetic_taobao_ad
from ctrbench.data.outputs import OUTPUT_FILES
from ctrbench.data.schema import FeatureMap
from ctrbench.data.splits import UnusableSplitError
from ctrbench.provenance import sha256_file

DATA = Path(__file__).parent / "data" / "taobao_ad"
TRAIN = DATA / "train_sample.csv"
TEST = DATA / "test_sample.csv"
BINS = 1000
MAX_LEN = 5
NAMES = HEADER.split(",")
MASK64 = 2**64 - 1


# ------------------------------------------------------------------ the transforms, in plain Python


def ref_hash(text: str) -> int:
    """FNV-1a 64 then murmur3 fmix64, one byte at a time."""
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & MASK64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK64
    return h ^ (h >> 33)


def ref_id(text: str, bins: int = BINS) -> int:
    return 0 if text == "" else 1 + ref_hash(text) % (bins - 1)


def expected_row(fields: list[str], *, bins: int = BINS, max_len: int = MAX_LEN) -> dict:
    value = dict(zip(NAMES, fields, strict=True))
    price = float(value["price"]) if value["price"] else 0.0
    ids = [ref_id(t, bins) for t in value["click_sequence"].split("^")] if value["click_sequence"] else []
    recent = ids[-max_len:]
    return {
        "clk": float(int(value["clk"])),
        "group_id": ref_hash(value["userid"]) >> 1 if value["userid"] else 0,
        **{c: ref_id(value[c], bins) for c in CATEGORICAL},
        "price": math.copysign(math.log1p(abs(price)), price) if price else 0.0,
        "click_sequence": [0] * (max_len - len(recent)) + recent,
    }


def check_rows(block: TaobaoAdBlock, path: Path, *, bins: int = BINS, max_len: int = MAX_LEN, offset: int = 0):
    lines = path.read_text().splitlines()[1:]
    assert len(block) == len(lines)
    np.testing.assert_array_equal(block.row_id, offset + np.arange(2, len(lines) + 2))
    for i, line in enumerate(lines):
        want = expected_row(line.split(","), bins=bins, max_len=max_len)
        for name, value in want.items():
            got = block.columns[name][i]
            if name == "price":
                assert got == pytest.approx(value, rel=1e-6), (i, name)
            elif name == "click_sequence":
                assert got.tolist() == value, (i + 2, name)
            else:
                assert got == value, (i + 2, name)


def test_reference_hash_is_fnv1a_then_fmix64():
    # FNV-1a 64 test vector: "a" -> 0xaf63dc4c8601ec8c; fmix64 of it computed by hand above
    h = (0xCBF29CE484222325 ^ ord("a")) * 0x100000001B3 & MASK64
    assert h == 0xAF63DC4C8601EC8C
    values = ["", "a", "170301", "430548_1007", "x" * 70, "ü"]
    assert stable_hash(values).tolist() == [ref_hash(v) for v in values]


# ---------------------------------------------------------------------------------- real samples


def test_fixtures_are_the_fuxictr_samples():
    for path in (TRAIN, TEST):
        lines = path.read_bytes().split(b"\n")
        assert lines[0].decode() == HEADER and lines[-1] == b""
        assert len(lines) == 102  # header, 100 rows, final newline


@pytest.mark.parametrize("path", [TRAIN, TEST], ids=["train", "test"])
def test_real_samples_match_plain_python_field_by_field(path):
    block = read_taobao_ad(path, hash_bins=BINS, max_len=MAX_LEN)
    assert len(block) == 100
    check_rows(block, path)
    labels = [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]
    assert block.columns["clk"].tolist() == labels and sum(labels) == 4
    assert block.columns["clk"].dtype == np.float32 and block.columns["price"].dtype == np.float32
    assert block.columns["userid"].dtype == np.int32 and block.columns["group_id"].dtype == np.int64
    assert block.columns["click_sequence"].shape == (100, MAX_LEN)


def test_real_sample_rows_checked_by_hand():
    block = read_taobao_ad(TRAIN, hash_bins=BINS, max_len=MAX_LEN)
    row = {line: i for i, line in enumerate(block.row_id.tolist())}
    seq = block.columns["click_sequence"]
    # line 2: 170301^573514, price 3.9, pvalue_level and new_user_class_level empty
    r = row[2]
    assert seq[r].tolist() == [0, 0, 0, ref_id("170301"), ref_id("573514")]
    assert block.columns["price"][r] == pytest.approx(math.log1p(3.9))
    assert block.columns["pvalue_level"][r] == 0 and block.columns["new_user_class_level"][r] == 0
    assert block.columns["userid"][r] == ref_id("874257") and block.columns["pid"][r] == ref_id("430548_1007")
    # line 4: six ids, the last five kept, most recent (last written) in the last column
    assert seq[row[4]].tolist() == [ref_id(t) for t in ["573514", "158525", "633154", "383937", "431258"]]
    # line 7: empty click_sequence -> all padding; line 12: brand empty -> 0
    assert seq[row[7]].tolist() == [0] * MAX_LEN
    assert block.columns["brand"][row[12]] == 0 and block.columns["brand"][row[2]] == ref_id("339907")
    # line 35: no user profile at all
    for name in ("cms_segid", "cms_group_id", "final_gender_code", "age_level", "shopping_level", "occupation"):
        assert block.columns[name][row[35]] == 0, name
    # line 10: a click
    assert block.columns["clk"][row[10]] == 1.0 and block.columns["clk"][row[7]] == 0.0
    assert ((seq > 0).sum(axis=1) == 0).sum() == 75  # rows with an empty click_sequence


def test_click_sequence_shares_the_adgroup_id_hashing():
    block = read_taobao_ad(TRAIN, hash_bins=BINS, max_len=MAX_LEN)
    row = {line: i for i, line in enumerate(block.row_id.tolist())}
    # line 9's target adgroup 170301 is the first click of line 2's sequence; 573514 (line 89) the second
    assert block.columns["adgroup_id"][row[9]] == block.columns["click_sequence"][row[2], -2] != 0
    assert block.columns["adgroup_id"][row[89]] == block.columns["click_sequence"][row[2], -1] != 0
    # and in general: every clicked id that is also some row's target gets that row's id
    lines = TRAIN.read_text().splitlines()[1:]
    target = {line.split(",")[3]: block.columns["adgroup_id"][i] for i, line in enumerate(lines)}
    shared = 0
    for i, line in enumerate(lines):
        tokens = [t for t in line.split(",")[-1].split("^") if t][-MAX_LEN:]
        for j, token in enumerate(tokens):
            if token in target:
                assert block.columns["click_sequence"][i, MAX_LEN - len(tokens) + j] == target[token]
                shared += 1
    assert shared > 20


def test_truncation_keeps_the_most_recent_ids_right_aligned():
    block = read_taobao_ad(TRAIN, hash_bins=BINS, max_len=2)
    row = {line: i for i, line in enumerate(block.row_id.tolist())}
    seq = block.columns["click_sequence"]
    assert seq[row[4]].tolist() == [ref_id("383937"), ref_id("431258")]
    assert seq[row[3]].tolist() == [0, ref_id("680144")]
    check_rows(block, TRAIN, max_len=2)
    wide = read_taobao_ad(TRAIN, hash_bins=BINS, max_len=50)
    assert wide.columns["click_sequence"][row[4]].tolist()[-7:] == [0] + [
        ref_id(t) for t in ["170301", "573514", "158525", "633154", "383937", "431258"]
    ]


def test_crlf_line_ends_read_like_lf(tmp_path):
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(TRAIN.read_bytes().replace(b"\n", b"\r\n"))
    assert_same(read_taobao_ad(crlf, hash_bins=BINS), read_taobao_ad(TRAIN, hash_bins=BINS))


# ----------------------------------------------------------------------------------- preprocess


def outputs_in(directory: Path) -> dict[str, Path]:
    return {key: directory / name for key, name in OUTPUT_FILES.items()}


KNOBS = ("block_bytes", "row_group_rows", "compression")


def run(tmp_path, name="out", files=None, **given):
    """Preprocess with dataset-config options (defaults: ``hash_bins`` BINS, ``history.max_len`` MAX_LEN) and speed
    knobs (``KNOBS``)."""
    files = files or {"train": TRAIN, "valid": None, "gold": TEST}
    knobs = {k: given.pop(k) for k in KNOBS if k in given}
    options = {"hash_bins": BINS, "history": {"max_len": MAX_LEN}, **given}
    return preprocess_taobao_ad(
        files, outputs=outputs_in(tmp_path / name), dataset_name="tb", options=options, progress=False, **knobs
    )


def row_ids(path: Path) -> list[int]:
    return pq.read_table(path, columns=["row_id"]).column(0).to_pylist()


def test_preprocess_real_samples_splits_feature_map_and_manifest(tmp_path):
    manifest = run(tmp_path, splits={"valid": 0.1}, split_seed=2)  # a seed whose valid rows hold a positive
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())  # no leftovers
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["kind"] == "ctrbench.data_manifest" and manifest["format"] == "taobao_ad"
    assert manifest["rows"] == {"read": 200, "written": 200, "bad": 0}
    assert manifest["bad_rows"] == dict.fromkeys(BAD_ROW_KINDS, 0)
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == {"train": 90, "valid": 10, "gold": 100}
    assert manifest["splits"]["gold"]["positives"] == 4 and manifest["splits"]["gold"]["label_rate"] == 0.04
    assert manifest["inputs"]["train"] == {
        "path": str(TRAIN), "bytes": TRAIN.stat().st_size, "hash": "sha256", "sha256": sha256_file(TRAIN),
        "mtime": None, "lines": 101, "data_lines": 100, "row_id_offset": 0,
    }  # fmt: skip
    assert manifest["inputs"]["gold"]["sha256"] == sha256_file(TEST)
    assert "valid" not in manifest["inputs"] and manifest["inputs"]["gold"]["row_id_offset"] == 101
    for key in ("train", "valid", "gold", "feature_map"):
        assert manifest["outputs"][key]["sha256"] == sha256_file(out / OUTPUT_FILES[key])

    fm = FeatureMap.load(out / "feature_map.json")
    assert fm.labels == ["clk"] and fm.group_by == "group_id"
    assert [f.name for f in fm.categorical] == CATEGORICAL and all(f.vocab_size == BINS for f in fm.categorical)
    assert [f.name for f in fm.dense] == ["price"]
    (seq,) = fm.sequences
    assert (seq.name, seq.vocab_size, fm.max_len(seq), seq.shares_vocab_with) == (
        "click_sequence",
        BINS,
        5,
        "adgroup_id",
    )
    assert fm.extra["source"] == "taobao_ad_x1" and fm.extra["hash_bins"] == BINS and fm.extra["transforms"]

    train, valid, gold = (row_ids(out / f"{s}.parquet") for s in ("train", "valid", "gold"))
    assert sorted(train + valid) == list(range(2, 102)) and not set(train) & set(valid)
    assert gold == list(range(103, 203))  # test file lines 2..101 after the train file's 101 lines
    table = pq.read_table(out / "train.parquet")
    kind = table.schema.field("click_sequence").type
    assert pa.types.is_fixed_size_list(kind) and kind.list_size == 5 and kind.value_type == pa.int32()
    data = TensorDataset.from_parquet(out / "gold.parquet", fm)
    assert len(data) == 100 and tuple(data.sequences["click_sequence"].shape) == (100, 5)
    assert data.group is not None and data.labels.sum().item() == 4
    check_rows(read_taobao_ad(TEST, hash_bins=BINS, max_len=MAX_LEN, row_id_offset=101), TEST, offset=101)


def test_valid_split_from_train_is_exact_seeded_and_disjoint(tmp_path):
    facts = write_synthetic_taobao_ad(tmp_path / "raw", 1000, seed=2)
    files = {"train": tmp_path / "raw" / "train.csv", "valid": None, "gold": tmp_path / "raw" / "test.csv"}
    n_train = facts["train_rows"]
    seen = {}
    for fraction, seed in [(0.1, 0), (0.29, 0), (0.1, 1)]:
        m = run(tmp_path, f"o{fraction}{seed}", files=files, splits={"valid": fraction}, split_seed=seed)
        out = tmp_path / f"o{fraction}{seed}"
        assert m["splits"]["valid"]["rows"] == round(fraction * n_train)
        assert m["splits"]["train"]["rows"] == n_train - round(fraction * n_train)
        train, valid = row_ids(out / "train.parquet"), row_ids(out / "valid.parquet")
        assert sorted(train + valid) == list(range(2, n_train + 2)) and not set(train) & set(valid)
        seen[(fraction, seed)] = valid
    assert seen[(0.1, 0)] != seen[(0.1, 1)]  # the seed matters
    again = run(tmp_path, "again", files=files, splits={"valid": 0.1}, split_seed=0)
    assert row_ids(tmp_path / "again" / "valid.parquet") == seen[(0.1, 0)]
    assert again["outputs"] == run(tmp_path, "again2", files=files, splits={"valid": 0.1}, split_seed=0)["outputs"]


def test_valid_file_is_used_when_present(tmp_path):
    lines = TRAIN.read_text().splitlines(keepends=True)
    valid = tmp_path / "valid.csv"
    valid.write_text("".join(lines[:1] + lines[70:]))  # header + 31 rows
    m = run(tmp_path, files={"train": TRAIN, "valid": valid, "gold": TEST}, splits={"valid": 0.5})
    assert {k: v["rows"] for k, v in m["splits"].items()} == {"train": 100, "valid": 31, "gold": 100}
    assert m["options"]["valid_from"] == "valid"
    out = tmp_path / "out"
    assert row_ids(out / "valid.parquet") == list(range(103, 134))  # after train.csv's 101 lines
    assert row_ids(out / "gold.parquet") == list(range(133 + 2, 133 + 102))  # after 101 + 32 lines
    fm = FeatureMap.load(out / "feature_map.json")
    got = TensorDataset.from_parquet(out / "valid.parquet", fm)
    want = read_taobao_ad(valid, hash_bins=BINS, max_len=MAX_LEN)
    np.testing.assert_array_equal(got.sequences["click_sequence"].numpy(), want.columns["click_sequence"])


# ------------------------------------------------------------------------------------- bad input


def replace_field(line: str, column: str, value: str) -> str:
    fields = line.rstrip("\n").split(",")
    fields[NAMES.index(column)] = value
    return ",".join(fields) + "\n"


BASE = TRAIN.read_text().splitlines(keepends=True)[:11]  # header + 10 rows; line k is BASE[k - 1]


def with_line(k: int, text: str) -> list[str]:
    return BASE[: k - 1] + [text] + BASE[k:]


BAD_CASES = {
    # name: (lines, bad physical line, kind, message pattern)
    "missing_field": (
        with_line(3, BASE[2].rsplit(",", 1)[0] + "\n"),
        3,
        "field_count",
        r"expected 19 comma-separated fields, found 18$",
    ),
    "extra_field": (
        with_line(5, BASE[4].rstrip("\n") + ",x\n"),
        5,
        "field_count",
        r"comma-separated fields, found 20$",
    ),
    "empty_line": (BASE[:6] + ["\n"] + BASE[6:], 7, "field_count", r": empty line$"),
    "tab_separated": (
        with_line(4, BASE[3].replace(",", "\t")),
        4,
        "field_count",
        r"expected 19 comma-separated fields, found 1 \(the line has 18 '\\t': a tab-separated file\?\)$",
    ),
    "carriage_return": (with_line(5, BASE[4].replace(",", "\r", 1)), 5, "field_count", r"carriage return"),
    "truncated": (BASE[:-1] + [BASE[-1][:40]], 11, "field_count", r"found \d+ \(last line has no newline"),
    "label": (with_line(4, replace_field(BASE[3], "clk", "2")), 4, "bad_label", r"column clk: '2' is not 0 or 1"),
    "label_empty": (with_line(9, replace_field(BASE[8], "clk", "")), 9, "bad_label", r"column clk: '' is not 0 or 1"),
    "price": (with_line(2, replace_field(BASE[1], "price", "abc")), 2, "bad_price", r"column price: 'abc' is not a"),
    "price_nan": (with_line(6, replace_field(BASE[5], "price", "nan")), 6, "bad_price", r"column price: 'nan' is not"),
    "seq_empty_id": (
        with_line(6, replace_field(BASE[5], "click_sequence", "1^^2")),
        6,
        "bad_sequence",
        r"column click_sequence: '1\^\^2' has an empty id at position 2",
    ),
    "seq_leading": (
        with_line(8, replace_field(BASE[7], "click_sequence", "^5")),
        8,
        "bad_sequence",
        r"column click_sequence: '\^5' has an empty id at position 1",
    ),
    "seq_trailing": (
        with_line(3, replace_field(BASE[2], "click_sequence", "5^")),
        3,
        "bad_sequence",
        r"column click_sequence: '5\^' has an empty id at position 2",
    ),
    "seq_not_integer": (
        with_line(10, replace_field(BASE[9], "click_sequence", "170301^12a")),
        10,
        "bad_sequence",
        r"column click_sequence: '170301\^12a' has id '12a' at position 2, not an integer",
    ),
    "seq_negative": (
        with_line(11, replace_field(BASE[10], "click_sequence", "-5")),
        11,
        "bad_sequence",
        r"has id '-5' at position 1, not an integer",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_line_and_column(tmp_path, case):
    lines, bad_line, _kind, pattern = BAD_CASES[case]
    path = tmp_path / "train.csv"
    path.write_text("".join(lines))
    with pytest.raises(TaobaoAdFormatError) as err:
        read_taobao_ad(path)
    assert str(err.value).startswith(f"{path}:{bad_line}: "), str(err.value)
    assert re.search(pattern, str(err.value)), str(err.value)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_skipped_and_counted_when_allowed(tmp_path, case):
    lines, bad_line, kind, _ = BAD_CASES[case]
    path = tmp_path / "train.csv"
    path.write_text("".join(lines))
    reader = TaobaoAdReader(path, hash_bins=BINS, max_len=MAX_LEN, max_bad_rows=1)
    block = TaobaoAdBlock.concat(list(reader), MAX_LEN)
    assert reader.bad.counts == {k: int(k == kind) for k in BAD_ROW_KINDS}
    assert bad_line not in block.row_id and len(block) == reader.data_lines - 1
    assert reader.bad.examples[0].startswith(f"{path}:{bad_line}: ")
    # the neighbours are untouched
    good = read_taobao_ad(TRAIN, hash_bins=BINS, max_len=MAX_LEN)
    if case not in ("empty_line",):  # an inserted line shifts the later line numbers
        keep = np.isin(good.row_id, block.row_id)
        for name in good.columns:
            np.testing.assert_array_equal(good.columns[name][keep], block.columns[name], err_msg=name)


HEADER_CASES = {
    "renamed": HEADER.replace("adgroup_id", "item_id"),
    "reordered": HEADER.replace("userid,adgroup_id", "adgroup_id,userid"),
    "extra": HEADER + ",extra",
    "no_header": BASE[1].rstrip("\n"),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_header_mismatch_is_an_error_naming_file_and_expected_header(tmp_path, case):
    path = tmp_path / "test.csv"
    path.write_text(HEADER_CASES[case] + "\n" + "".join(BASE[1:]))
    with pytest.raises(TaobaoAdFormatError) as err:
        read_taobao_ad(path, max_bad_rows=100)
    assert str(err.value).startswith(f"{path}:1: header") and HEADER in str(err.value)
    with pytest.raises(TaobaoAdFormatError, match=re.escape(f"{path}:1: header")):
        run(tmp_path, files={"train": TRAIN, "valid": None, "gold": path}, max_bad_rows=100)
    assert list((tmp_path / "out").glob("*")) == []


def test_empty_and_header_only_files_are_errors(tmp_path):
    empty, header_only = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header_only.write_text(HEADER + "\n")
    with pytest.raises(TaobaoAdFormatError, match=r"empty\.csv: empty file"):
        read_taobao_ad(empty)
    with pytest.raises(TaobaoAdFormatError, match=r"header\.csv: no data rows"):
        read_taobao_ad(header_only)


def mixed_bad_files(tmp_path) -> tuple[Path, Path]:
    train = TRAIN.read_text().splitlines(keepends=True)
    train[4] = replace_field(train[4], "price", "x")  # line 5: bad_price
    train[19] = train[19].rsplit(",", 2)[0] + "\n"  # line 20: field_count
    train[29] = replace_field(replace_field(train[29], "clk", "-1"), "click_sequence", "1^^1")  # line 30: once, label
    test = TEST.read_text().splitlines(keepends=True)
    test[50] = replace_field(test[50], "click_sequence", "7^x")  # line 51 of test: bad_sequence
    (tmp_path / "train.csv").write_text("".join(train))
    (tmp_path / "test.csv").write_text("".join(test))
    return tmp_path / "train.csv", tmp_path / "test.csv"


def test_max_bad_rows_counts_over_all_files_and_failure_leaves_nothing(tmp_path):
    train, test = mixed_bad_files(tmp_path)
    files = {"train": train, "valid": None, "gold": test}
    out = tmp_path / "out"
    with pytest.raises(TaobaoAdFormatError, match=re.escape(f"{train}:5: column price: 'x' is not a number")):
        run(tmp_path, files=files, split_seed=2)  # a seed whose valid rows hold a positive
    assert list(out.iterdir()) == []
    with pytest.raises(TaobaoAdFormatError, match=re.escape(f"{test}:51: column click_sequence: '7^x'")) as err:
        run(tmp_path, files=files, max_bad_rows=3, split_seed=2)  # the fourth bad row is in the test file
    assert "more than max_bad_rows=3" in str(err.value)
    assert list(out.iterdir()) == []

    m = run(tmp_path, files=files, max_bad_rows=4, split_seed=2)
    assert m["bad_rows"] == {"field_count": 1, "bad_label": 1, "bad_price": 1, "bad_sequence": 1}
    assert m["rows"] == {"read": 200, "written": 196, "bad": 4}
    assert [e.split(":")[1] for e in m["bad_row_examples"]] == ["5", "20", "30", "51"]
    assert sum(s["rows"] for s in m["splits"].values()) == 196
    assert sum(s["planned_rows"] for s in m["splits"].values()) == 200
    gold = row_ids(out / "gold.parquet")
    assert 101 + 51 not in gold and 101 + 50 in gold and len(gold) == 99
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())


# ------------------------------------------------------------------------ determinism and blocks


def assert_same(a: TaobaoAdBlock, b: TaobaoAdBlock) -> None:
    assert list(a.columns) == list(b.columns)
    for name in a.columns:
        np.testing.assert_array_equal(a.columns[name], b.columns[name], err_msg=name)


@pytest.mark.parametrize("block_bytes", [1, 97, 4096])
def test_block_size_does_not_change_what_is_read(tmp_path, block_bytes):
    train, _ = mixed_bad_files(tmp_path)
    for path, bad in ((TRAIN, 0), (TEST, 0), (train, 3)):
        small = read_taobao_ad(path, hash_bins=BINS, block_bytes=block_bytes, max_bad_rows=bad)
        assert_same(small, read_taobao_ad(path, hash_bins=BINS, block_bytes=1 << 24, max_bad_rows=bad))


def test_preprocess_bytes_do_not_depend_on_block_size(tmp_path):
    write_synthetic_taobao_ad(tmp_path / "raw", 1500, seed=4)
    files = {"train": tmp_path / "raw" / "train.csv", "valid": None, "gold": tmp_path / "raw" / "test.csv"}
    blocks = list(TaobaoAdReader(files["train"], block_bytes=8 << 10))
    assert len(blocks) > 5 and sum(len(b) for b in blocks) == 1200
    a = run(tmp_path, "a", files=files, block_bytes=5000, row_group_rows=100, hash_bins=50_000, history={"max_len": 50})
    b = run(
        tmp_path, "b", files=files, block_bytes=1 << 24, row_group_rows=100, hash_bins=50_000, history={"max_len": 50}
    )
    assert a["outputs"] == b["outputs"]  # same bytes, same hashes
    assert pq.ParquetFile(tmp_path / "a" / "gold.parquet").metadata.num_row_groups == 3


# ------------------------------------------------------------------------- synthetic and formats


def test_synthetic_data_round_trips_through_the_reader(tmp_path):
    facts = write_synthetic_taobao_ad(tmp_path / "a", 2000, seed=1)
    write_synthetic_taobao_ad(tmp_path / "b", 2000, seed=1)
    write_synthetic_taobao_ad(tmp_path / "c", 2000, seed=2)
    for name in ("train.csv", "test.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert (facts["train_rows"], facts["test_rows"]) == (1600, 400)
    assert 0.04 < facts["label_rate"] < 0.2

    train = read_taobao_ad(tmp_path / "a" / "train.csv", hash_bins=100_000, max_len=50)
    test = read_taobao_ad(tmp_path / "a" / "test.csv", hash_bins=100_000, max_len=50)
    assert (len(train), len(test)) == (1600, 400)
    assert train.columns["clk"].sum() + test.columns["clk"].sum() == facts["positives"]
    check_rows(test, tmp_path / "a" / "test.csv", bins=100_000, max_len=50)
    seq = train.columns["click_sequence"]
    length = (seq > 0).sum(axis=1)
    assert 0.15 < (length == 0).mean() < 0.35  # empty sequences
    assert (length == 50).any()  # some were longer than max_len
    assert 0 < (train.columns["pvalue_level"] == 0).mean() < 1 and 0 < (train.columns["brand"] == 0).mean() < 1
    assert 0 < (train.columns["cms_segid"] == 0).mean() < 0.3  # users without a profile
    # the planted signal is visible in the processed columns: a target among the row's clicks
    # (same hashing for both) is clicked more often
    hit = (seq == train.columns["adgroup_id"][:, None]).any(axis=1)
    label = train.columns["clk"]
    assert hit.mean() > 0.1 and label[hit].mean() > 2 * label[~hit].mean()


def test_format_registry_entry(tmp_path):
    fmt = FORMATS["taobao_ad"]
    assert fmt.has_sequences
    raw = tmp_path / "raw"
    facts = write_synthetic_taobao_ad(raw, 500, 3)  # (path, rows, seed), like every write_synthetic
    assert facts["rows"] == 500
    assert fmt.raw_files(raw) == [str(raw / "train.csv"), str(raw / "test.csv")]
    dataset = {"hash_bins": 5000, "history": {"max_len": 20}, "splits": {"valid": 0.2}, "split_seed": 1}
    m = fmt.preprocess(raw, outputs=outputs_in(tmp_path / "o1"), dataset_name="syn", options=dataset, progress=False)
    assert {k: v["rows"] for k, v in m["splits"].items()} == {"train": 320, "valid": 80, "gold": 100}
    fm = FeatureMap.load(tmp_path / "o1" / "feature_map.json")
    assert fm.max_len(fm.sequences[0]) == 20 and fm.categorical[0].vocab_size == 5000 and fm.dataset == "syn"

    shutil.copy(raw / "test.csv", raw / "valid.csv")
    assert fmt.raw_files(raw) == [str(raw / n) for n in ("train.csv", "test.csv", "valid.csv")]
    m = fmt.preprocess(raw, outputs=outputs_in(tmp_path / "o2"), dataset_name="syn", progress=False)  # defaults
    assert {k: v["rows"] for k, v in m["splits"].items()} == {"train": 400, "valid": 100, "gold": 100}
    assert m["options"]["hash_bins"] == 2_000_000 and m["options"]["history"]["max_len"] == 50
    (raw / "test.csv").unlink()
    with pytest.raises(FileNotFoundError, match="test.csv"):
        fmt.preprocess(raw, outputs=outputs_in(tmp_path / "o3"), dataset_name="syn", progress=False)


def test_empty_split_is_an_error_at_preprocessing(tmp_path):
    with pytest.raises(UnusableSplitError) as error:
        run(tmp_path, splits={"valid": 0.001})
    assert str(error.value) == (
        f"{TRAIN.parent}: valid split is empty: splits.valid=0.001 of the train file's 100 data lines leaves it no "
        "rows; change splits.valid or add a valid.csv"
    )
    assert not (tmp_path / "out").exists()  # found from the planned sizes, before anything was written


def test_single_class_split_is_an_error_at_preprocessing(tmp_path):
    # the sample's 10 valid rows for split_seed 0 hold none of its 4 clicks; a test file without clicks
    test = tmp_path / "test.csv"
    lines = TEST.read_text().splitlines(keepends=True)
    test.write_text("".join([lines[0]] + [replace_field(line, "clk", "0") for line in lines[1:]]))
    for files, split_seed, split, source in [
        ({"train": TRAIN, "valid": None, "gold": TEST}, 0, "valid", TRAIN),
        ({"train": TRAIN, "valid": None, "gold": test}, 2, "gold", test),
    ]:
        with pytest.raises(UnusableSplitError) as error:
            run(tmp_path, files=files, split_seed=split_seed)
        rows = 10 if split == "valid" else 100
        assert str(error.value).endswith(
            f"{split} split has a single class: all its {rows} rows have label 0 (AUC needs both); "
            f"its rows come from {source}"
        ), str(error.value)
        assert list((tmp_path / "out").iterdir()) == []
