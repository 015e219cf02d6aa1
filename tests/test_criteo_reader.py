"""The streaming Criteo reader and the preprocessing built on it, on real samples and on bad input."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ctrbench.data.batch import TensorDataset
from ctrbench.data.formats.criteo_dac.preprocess import preprocess_criteo
from ctrbench.data.formats.criteo_dac.reader import (
    CATEGORICAL,
    COLUMNS,
    DENSE,
    CriteoBlock,
    CriteoFormatError,
    CriteoReader,
    read_criteo,
)
from ctrbench.data.formats.criteo_dac.synthetic import write_synthetic_criteo
from ctrbench.data.outputs import OUTPUT_FILES
from ctrbench.data.schema import FeatureMap
from ctrbench.provenance import sha256_file

DATA = Path(__file__).parent / "data" / "criteo"
HEAD50 = DATA / "train_head50.txt"
DEEPCTR = DATA / "criteo_sample.txt"
BINS = 1000


def expected_row(fields: list[str], *, bins: int = BINS) -> dict[str, float | int]:
    """The transforms written out independently, one Python value at a time."""
    out: dict[str, float | int] = {"label": float(int(fields[0]))}
    for name, text in zip(DENSE, fields[1:14]):
        x = float(text) if text else 0.0
        out[name] = math.copysign(math.log1p(abs(x)), x) if x else 0.0
    for name, text in zip(CATEGORICAL, fields[14:]):
        out[name] = 1 + int(text, 16) % (bins - 1) if text else 0
    return out


def check_rows(block, lines: list[str], delimiter: str, first_line: int) -> None:
    assert len(block) == len(lines)
    np.testing.assert_array_equal(block.row_id, np.arange(first_line, first_line + len(lines)))
    for i, line in enumerate(lines):
        fields = line.rstrip("\n").split(delimiter)
        assert len(fields) == 40
        for name, value in expected_row(fields).items():
            got = block.columns[name][i]
            if name in CATEGORICAL:
                assert got == value, (i, name)
            else:
                assert got == pytest.approx(value, rel=1e-6, abs=1e-7), (i, name)


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines))
    return path


def test_raw_dac_sample_reads_end_to_end():
    block = read_criteo(HEAD50, hash_bins=BINS)
    lines = lines_of(HEAD50)
    assert len(block) == 50
    check_rows(block, lines, "\t", first_line=1)
    # a few values written out by hand from line 1 of the file
    assert block.columns["I1"][0] == pytest.approx(math.log1p(1))
    assert block.columns["I12"][0] == 0.0  # empty field
    assert block.columns["C1"][0] == 1 + 0x68FD1E64 % (BINS - 1)
    assert block.columns["C22"][0] == 0  # empty field -> MISSING_ID
    assert block.columns["label"].dtype == np.float32
    assert block.columns["I1"].dtype == np.float32
    assert block.columns["C1"].dtype == np.int32


def test_deepctr_csv_sample_reads_end_to_end():
    block = read_criteo(DEEPCTR, hash_bins=BINS, delimiter=",", header=True, dense_values="float")
    lines = lines_of(DEEPCTR)
    assert len(block) == 200
    check_rows(block, lines[1:], ",", first_line=2)  # row_id is the physical line: header is line 1
    # line 3 has I2 = -1: the sign survives the log transform
    assert block.columns["I2"][1] == pytest.approx(-math.log(2))
    assert 0 < block.columns["label"].mean() < 1


def test_float_dense_needs_float_mode():
    with pytest.raises(
        CriteoFormatError,
        match=r"criteo_sample\.txt:2: column I3: '260\.0' is not an integer; .*set reader\.dense_values: float",
    ):
        read_criteo(DEEPCTR, delimiter=",", header=True)


def test_csv_given_to_the_tab_reader_names_the_delimiter():
    # the DeepCTR sample without its options: the header line already has 40 comma-separated fields
    with pytest.raises(
        CriteoFormatError,
        match=r"criteo_sample\.txt:1: expected 40 tab-separated fields, found 1 \(the line has 39 ',': "
        r"a comma-separated file\? set reader\.delimiter\)$",
    ):
        read_criteo(DEEPCTR)


def test_wrong_header_is_rejected(tmp_path):
    lines = lines_of(DEEPCTR)
    path = write(tmp_path / "h.csv", [lines[0].replace("I1,", "X1,")] + lines[1:5])
    with pytest.raises(CriteoFormatError, match=r"h\.csv:1: header"):
        read_criteo(path, delimiter=",", header=True, dense_values="float")


def test_crlf_line_ends_read_like_lf(tmp_path):
    crlf = write(tmp_path / "crlf.txt", [line.replace("\n", "\r\n") for line in lines_of(HEAD50)])
    a, b = read_criteo(HEAD50, hash_bins=BINS), read_criteo(crlf, hash_bins=BINS)
    for name in a.columns:
        np.testing.assert_array_equal(a.columns[name], b.columns[name])


def replace_field(line: str, column: str, value: str) -> str:
    fields = line.rstrip("\n").split("\t")
    fields[COLUMNS.index(column)] = value
    return "\t".join(fields) + "\n"


BASE = lines_of(HEAD50)[:10]
BAD_CASES = {
    # name: (lines, 1-based bad line, message pattern)
    "field_count": (
        BASE[:2] + [BASE[2].rsplit("\t", 1)[0] + "\n"] + BASE[3:],
        3,
        r"expected 40 tab-separated fields, found 39$",
    ),
    "extra_field": (
        BASE[:4] + [BASE[4].rstrip("\n") + "\tx\n"] + BASE[5:],
        5,
        r"expected 40 tab-separated fields, found 41$",
    ),
    "empty_line": (BASE[:6] + ["\n"] + BASE[6:], 7, r": empty line$"),
    "empty_crlf_line": (BASE[:6] + ["\r\n"] + BASE[6:], 7, r": empty line$"),
    "comma_separated_line": (
        BASE[:3] + [BASE[3].replace("\t", ",")] + BASE[4:],
        4,
        (
            r"expected 40 tab-separated fields, found 1 \(the line has 39 ',': a comma-separated file\? "
            r"set reader\.delimiter\)$"
        ),
    ),
    "dense": (BASE[:1] + [replace_field(BASE[1], "I5", "abc")] + BASE[2:], 2, r"column I5: 'abc' is not an integer$"),
    "dense_sign_only": (
        BASE[:3] + [replace_field(BASE[3], "I4", "-")] + BASE[4:],
        4,
        r"column I4: '-' is not an integer$",
    ),
    "dense_plus": (
        BASE[:3] + [replace_field(BASE[3], "I13", "+5")] + BASE[4:],
        4,
        r"column I13: '\+5' is not an integer$",
    ),
    "dense_float": (
        BASE[:5] + [replace_field(BASE[5], "I1", "1.5")] + BASE[6:],
        6,
        (
            r"column I1: '1\.5' is not an integer; for decimal dense values set reader\.dense_values: float "
            r"\(config: reader: \{dense_values: float\}\)$"
        ),
    ),
    "label": (BASE[:3] + [replace_field(BASE[3], "label", "2")] + BASE[4:], 4, r"column label: '2' is not 0 or 1"),
    "label_empty": (BASE[:8] + [replace_field(BASE[8], "label", "")] + BASE[9:], 9, r"column label: '' is not 0 or 1"),
    "hex": (BASE[:7] + [replace_field(BASE[7], "C3", "zzzzzzzz")] + BASE[8:], 8, r"column C3: 'zzzzzzzz' is not 8 hex"),
    "hex_length": (
        BASE[:2] + [replace_field(BASE[2], "C26", "abcdef1")] + BASE[3:],
        3,
        r"column C26: 'abcdef1' is not 8 hex",
    ),
    "carriage_return": (BASE[:4] + [BASE[4].replace("\t", "\r", 1)] + BASE[5:], 5, r"carriage return"),
    "truncated_last_line": (
        BASE[:-1] + [BASE[-1][:100]],
        10,
        r"expected 40 tab-separated fields, found \d+ \(last line has no newline",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_line_and_problem(tmp_path, case):
    lines, bad_line, pattern = BAD_CASES[case]
    path = write(tmp_path / "train.txt", lines)
    with pytest.raises(CriteoFormatError) as err:
        read_criteo(path)
    assert str(err.value).startswith(f"{path}:{bad_line}: "), str(err.value)
    assert re.search(pattern, str(err.value)), str(err.value)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_skipped_and_counted_when_allowed(tmp_path, case):
    lines, bad_line, _ = BAD_CASES[case]
    path = write(tmp_path / "train.txt", lines)
    reader = CriteoReader(path, max_bad_rows=1)
    block = CriteoBlock.concat(list(reader))
    assert reader.bad.total == 1
    assert bad_line not in block.row_id
    assert len(block) == reader.data_lines - 1
    assert reader.bad.examples and reader.bad.examples[0].startswith(f"{path}:{bad_line}: ")


def test_empty_file_is_an_error(tmp_path):
    path = write(tmp_path / "empty.txt", [])
    with pytest.raises(CriteoFormatError, match=r"empty\.txt: no data rows"):
        read_criteo(path)


def test_header_only_is_an_error(tmp_path):
    path = write(tmp_path / "header.csv", lines_of(DEEPCTR)[:1])
    with pytest.raises(CriteoFormatError, match="no data rows"):
        read_criteo(path, delimiter=",", header=True, dense_values="float")


def mixed_bad_file(tmp_path) -> Path:
    lines = lines_of(HEAD50)
    lines[4] = replace_field(lines[4], "I2", "x")  # line 5: bad_dense
    lines[9] = lines[9].rsplit("\t", 2)[0] + "\n"  # line 10: field_count
    lines[19] = replace_field(lines[19], "C7", "0123456g")  # line 20: bad_categorical
    lines[29] = replace_field(lines[29], "label", "-1")  # line 30: bad_label
    lines[39] = replace_field(replace_field(lines[39], "I1", "?"), "C1", "?")  # line 40: counted once, as dense
    return write(tmp_path / "mixed.txt", lines)


def test_max_bad_rows_skips_counts_and_fails_when_exceeded(tmp_path):
    path = mixed_bad_file(tmp_path)
    reader = CriteoReader(path, max_bad_rows=5, hash_bins=BINS)
    block = CriteoBlock.concat(list(reader))
    assert reader.bad.counts == {"field_count": 1, "bad_label": 1, "bad_dense": 2, "bad_categorical": 1}
    assert len(block) == 45 and reader.rows == 45 and reader.data_lines == 50
    assert sorted(set(range(1, 51)) - set(block.row_id.tolist())) == [5, 10, 20, 30, 40]
    assert [e.split(":")[1] for e in reader.bad.examples] == ["5", "10", "20", "30", "40"]
    # the good rows are untouched by their neighbours' problems
    full = read_criteo(HEAD50, hash_bins=BINS)
    keep = np.isin(full.row_id, block.row_id)
    for name in full.columns:
        np.testing.assert_array_equal(full.columns[name][keep], block.columns[name])

    with pytest.raises(
        CriteoFormatError, match=r"mixed\.txt:40: column I1: '\?' is not an integer \(more than max_bad_rows=4"
    ):
        read_criteo(path, max_bad_rows=4)
    with pytest.raises(CriteoFormatError, match=r"mixed\.txt:5: column I2: 'x' is not an integer$"):
        read_criteo(path)


def test_all_rows_bad_is_an_error(tmp_path):
    path = write(tmp_path / "bad.txt", [replace_field(line, "label", "7") for line in BASE])
    with pytest.raises(CriteoFormatError, match=r"no data rows \(10 bad rows skipped\)"):
        read_criteo(path, max_bad_rows=100)


def assert_same(a, b) -> None:
    assert list(a.columns) == list(b.columns)
    for name in a.columns:
        np.testing.assert_array_equal(a.columns[name], b.columns[name], err_msg=name)


@pytest.mark.parametrize("block_bytes", [1, 97, 4096])
def test_tiny_blocks_read_like_one_big_block(tmp_path, block_bytes):
    raw = tmp_path / "syn.tsv"
    write_synthetic_criteo(raw, 300, seed=5)
    assert_same(read_criteo(raw, block_bytes=block_bytes), read_criteo(raw, block_bytes=1 << 24))
    mixed = mixed_bad_file(tmp_path)
    assert_same(
        read_criteo(mixed, block_bytes=block_bytes, max_bad_rows=5),
        read_criteo(mixed, block_bytes=1 << 24, max_bad_rows=5),
    )
    assert_same(
        read_criteo(DEEPCTR, block_bytes=block_bytes, delimiter=",", header=True, dense_values="float"),
        read_criteo(DEEPCTR, delimiter=",", header=True, dense_values="float"),
    )


def test_many_blocks_are_streamed(tmp_path):
    raw = tmp_path / "syn.tsv"
    write_synthetic_criteo(raw, 2000, seed=1)
    blocks = list(CriteoReader(raw, block_bytes=64 << 10))
    assert len(blocks) > 5
    assert sum(len(b) for b in blocks) == 2000
    assert max(len(b) for b in blocks) < 400  # bounded by the block size, not the file


def test_preprocess_writes_splits_feature_map_and_manifest(tmp_path):
    raw = tmp_path / "raw.tsv"
    write_synthetic_criteo(raw, 3000, seed=2)
    out = tmp_path / "out"
    manifest = preprocess_criteo(raw, out, options={"hash_bins": BINS, "split_seed": 3}, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())  # no leftovers
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["rows"] == {"read": 3000, "written": 3000, "bad": 0}
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == {"train": 2400, "valid": 300, "gold": 300}
    assert manifest["inputs"]["raw"]["hash"] == "sha256" and manifest["inputs"]["raw"]["sha256"] == sha256_file(raw)  # the default
    for key in ("train", "valid", "gold", "feature_map"):
        assert manifest["outputs"][key]["sha256"] == sha256_file(out / OUTPUT_FILES[key])

    fm = FeatureMap.load(out / "feature_map.json")
    assert [f.name for f in fm.dense] == DENSE and [f.name for f in fm.categorical] == CATEGORICAL
    assert all(f.vocab_size == BINS for f in fm.categorical)
    assert fm.extra["hash_bins"] == BINS and set(fm.extra["distinct_ids"]) == set(CATEGORICAL)

    full = read_criteo(raw, hash_bins=BINS)
    row_ids = []
    for split in ("train", "valid", "gold"):
        table = pq.read_table(out / f"{split}.parquet")
        assert table.schema.field("row_id").type == "int64" and table.schema.field("C1").type == "int32"
        ids = table.column("row_id").to_numpy()
        assert (np.diff(ids) > 0).all()  # file order
        rows = np.searchsorted(full.row_id, ids)
        for name in full.columns:
            np.testing.assert_array_equal(table.column(name).to_numpy(), full.columns[name][rows])
        data = TensorDataset.from_parquet(out / f"{split}.parquet", fm)
        assert len(data) == manifest["splits"][split]["rows"]
        assert data.labels.mean().item() == pytest.approx(manifest["splits"][split]["label_rate"])
        assert int(data.categorical.max()) < BINS and int(data.categorical.min()) >= 0
        row_ids.append(ids)
    assert sorted(np.concatenate(row_ids).tolist()) == list(range(1, 3001))


def test_preprocess_output_does_not_depend_on_block_size(tmp_path):
    raw = tmp_path / "raw.tsv"
    write_synthetic_criteo(raw, 3000, seed=4)
    a = preprocess_criteo(raw, tmp_path / "a", options={"hash_bins": BINS}, block_bytes=5000, row_group_rows=500, progress=False)
    b = preprocess_criteo(raw, tmp_path / "b", options={"hash_bins": BINS}, block_bytes=1 << 24, row_group_rows=500, progress=False)
    assert a["outputs"] == b["outputs"]  # same bytes, same hashes
    assert pq.ParquetFile(tmp_path / "a" / "train.parquet").metadata.num_row_groups == 5


def test_failed_preprocess_leaves_nothing_that_looks_complete(tmp_path):
    path = mixed_bad_file(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(CriteoFormatError, match=r"mixed\.txt:5:"):
        preprocess_criteo(path, out, options={"hash_bins": BINS}, progress=False)
    assert list(out.iterdir()) == []
    with pytest.raises(CriteoFormatError, match="max_bad_rows=4"):
        preprocess_criteo(path, out, options={"hash_bins": BINS, "max_bad_rows": 4}, progress=False)
    assert list(out.iterdir()) == []

    manifest = preprocess_criteo(path, out, options={"hash_bins": BINS, "max_bad_rows": 5}, progress=False)
    assert manifest["bad_rows"] == {"field_count": 1, "bad_label": 1, "bad_dense": 2, "bad_categorical": 1}
    assert manifest["rows"] == {"read": 50, "written": 45, "bad": 5}
    assert sum(s["rows"] for s in manifest["splits"].values()) == 45
    assert sum(s["planned_rows"] for s in manifest["splits"].values()) == 50


def test_explicit_output_paths(tmp_path):
    outputs = {key: tmp_path / key / f"x_{name}" for key, name in OUTPUT_FILES.items()}
    manifest = preprocess_criteo(HEAD50, options={"hash_bins": BINS, "splits": {"valid": 5, "gold": 5}}, outputs=outputs, progress=False)
    assert all(p.exists() for p in outputs.values())
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == {"train": 40, "valid": 5, "gold": 5}
    assert manifest["outputs"]["train"]["path"] == "../train/x_train.parquet"


def reference_int(text: bytes) -> int | None:
    """The integer rule one value at a time: optional '-', 1..18 ASCII digits."""
    digits = text[1:] if text.startswith(b"-") else text
    if not 1 <= len(digits) <= 18 or not all(48 <= c <= 57 for c in digits):
        return None
    return int(text)


def reference_hex(text: bytes, bins: int) -> int | None:
    if len(text) != 8 or not all(c in b"0123456789abcdefABCDEF" for c in text):
        return None
    return 1 + int(text, 16) % (bins - 1)


def fuzz_values(seed: int, n: int = 20_000) -> list[bytes]:
    """Values near both parsers' edges: lengths 0..22, digits, hex of both cases, signs, odd bytes."""
    rng = np.random.default_rng(seed)
    pools = [b"0123456789", b"0123456789abcdefABCDEF", b"09afAFgG/:@`-+ .\x00\x10\x7f\x80\xff"]
    values = []
    for _ in range(n):
        pool = pools[rng.choice(3, p=[0.5, 0.35, 0.15])]
        length = int(rng.choice([rng.integers(0, 23), 8]))
        value = bytes(rng.choice(np.frombuffer(pool, np.uint8), length))
        values.append(b"-" + value if rng.random() < 0.1 else value)
    return values + [b"", b"-", b"-0", b"99999999", b"-99999999", b"123456789", b"9" * 18, b"-" + b"9" * 18, b"1" * 19]


@pytest.mark.parametrize("seed", [0, 1])
def test_word_parsers_match_a_per_value_reference(seed):
    import pyarrow as pa

    from ctrbench.data.fields import parse_hex8, parse_int

    values = fuzz_values(seed)
    arr = pa.array(values, pa.binary()).slice(1)  # a sliced array: offsets start past 0
    values = values[1:]
    got, missing, bad = parse_int(arr)
    want = [reference_int(v) for v in values]
    np.testing.assert_array_equal(missing, [v == b"" for v in values])
    np.testing.assert_array_equal(bad, [w is None and v != b"" for v, w in zip(values, want)])
    np.testing.assert_array_equal(got, [float(w) if w is not None else 0.0 for w in want])
    # mixed lengths, then only empty or 8-byte values (read straight from Arrow's buffer), then all empty
    hex_only = [v for v in values if len(v) in (0, 8)]
    for case in (values, hex_only, [b""] * 5):
        for bins in (BINS, 2**31 - 1):
            ids, bad = parse_hex8(pa.array([b"x", *case], pa.binary()).slice(1), bins)
            want = [reference_hex(v, bins) for v in case]
            np.testing.assert_array_equal(bad, [w is None and v != b"" for v, w in zip(case, want)])
            np.testing.assert_array_equal(ids, [w if w is not None else 0 for w in want])


def many_bad_blocks(tmp_path) -> Path:
    """A synthetic file whose bad lines fall into several small blocks."""
    raw = tmp_path / "syn.tsv"
    write_synthetic_criteo(raw, 3000, seed=7)
    lines = lines_of(raw)
    lines[400] = replace_field(lines[400], "I3", "2.5")
    lines[1500] = "\n"
    lines[2900] = lines[2900].replace("\t", ",")
    lines[2950] = replace_field(lines[2950], "C9", "xyz")
    return write(tmp_path / "bad_blocks.tsv", lines)


def test_parallel_read_is_the_serial_read(tmp_path):
    path = many_bad_blocks(tmp_path)
    readers = {w: CriteoReader(path, hash_bins=BINS, max_bad_rows=4, block_bytes=20_000, workers=w) for w in (0, 1, 3)}
    blocks = {w: CriteoBlock.concat(list(r)) for w, r in readers.items()}
    for w in (1, 3):
        assert_same(blocks[0], blocks[w])
        assert readers[w].bad == readers[0].bad and readers[w].lines == readers[0].lines == 3000
        assert readers[w].bytes_read == readers[0].bytes_read == path.stat().st_size
    assert [e.split(":")[1] for e in readers[3].bad.examples] == ["401", "1501", "2901", "2951"]
    # the first error raised is the first bad line, though later blocks are parsed at the same time
    for w in (0, 3):
        with pytest.raises(CriteoFormatError, match=r"bad_blocks\.tsv:401: column I3: '2\.5' is not an integer"):
            read_criteo(path, block_bytes=20_000, workers=w)
        with pytest.raises(CriteoFormatError, match=r"bad_blocks\.tsv:2901: .*more than max_bad_rows=2"):
            read_criteo(path, block_bytes=20_000, max_bad_rows=2, workers=w)


def test_line_too_long_comes_after_an_earlier_bad_line(tmp_path):
    raw = tmp_path / "syn.tsv"
    write_synthetic_criteo(raw, 2000, seed=8)
    lines = lines_of(raw)
    lines[10] = replace_field(lines[10], "label", "x")
    path = write(tmp_path / "long.tsv", lines[:1500] + ["1" * (2 << 20)])
    with pytest.raises(CriteoFormatError, match=r"long\.tsv:11: column label"):
        read_criteo(path, block_bytes=50_000)
    with pytest.raises(CriteoFormatError, match=r"long\.tsv:1501: line longer than"):
        read_criteo(path, block_bytes=50_000, max_bad_rows=1)


def test_preprocess_output_does_not_depend_on_threads(tmp_path):
    path = many_bad_blocks(tmp_path)
    given = {"options": {"hash_bins": BINS, "max_bad_rows": 4}, "block_bytes": 20_000, "row_group_rows": 700, "progress": False}
    serial = preprocess_criteo(path, tmp_path / "serial", workers=0, **given)
    parallel = preprocess_criteo(path, tmp_path / "parallel", **given)
    assert serial["outputs"] == parallel["outputs"]  # the same bytes: sha256 of splits and feature map
    assert serial == parallel  # and the same manifest
    for name in OUTPUT_FILES.values():
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "parallel" / name).read_bytes(), name


def test_input_identified_by_size_and_mtime_when_asked(tmp_path):
    raw = tmp_path / "raw.tsv"
    write_synthetic_criteo(raw, 500, seed=2)
    hashed = preprocess_criteo(raw, tmp_path / "a", options={"hash_bins": BINS}, progress=False)
    cheap = preprocess_criteo(raw, tmp_path / "b", options={"hash_bins": BINS, "input_hash": "size+mtime"}, progress=False)
    assert cheap["inputs"]["raw"]["hash"] == "size+mtime" and cheap["inputs"]["raw"]["sha256"] is None
    assert cheap["inputs"]["raw"]["bytes"] == raw.stat().st_size
    assert datetime.fromisoformat(cheap["inputs"]["raw"]["mtime"]).timestamp() == pytest.approx(raw.stat().st_mtime)
    assert hashed["inputs"]["raw"]["mtime"] is None  # a hashed input's manifest does not change with a copy's mtime
    assert cheap["outputs"] == hashed["outputs"]
    with pytest.raises(ValueError, match=r"criteo_dac options: input_hash: 'md5' is not one of \['sha256', 'size\+mtime'\]"):
        preprocess_criteo(raw, tmp_path / "c", options={"input_hash": "md5"}, progress=False)


def test_empty_split_is_an_error_at_preprocessing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(
        ValueError,
        match=r"train_head50\.txt: valid split is empty: splits=\{.*\} give it 0 of the 50 data lines; change splits",
    ):
        preprocess_criteo(HEAD50, out, options={"splits": {"valid": 0.001, "gold": 0.1}}, progress=False)
    assert list(out.iterdir()) == []  # found from the planned sizes, before the long pass


def test_single_class_split_is_an_error_at_preprocessing(tmp_path):
    path = write(tmp_path / "negatives.txt", [replace_field(line, "label", "0") for line in lines_of(HEAD50)])
    out = tmp_path / "out"
    with pytest.raises(
        ValueError,
        match=r"negatives\.txt: train split has a single class: all its 40 rows have label 0 \(AUC needs both\); "
        r"the data has 0 positives in 50 rows$",
    ):
        preprocess_criteo(path, out, options={"splits": {"valid": 5, "gold": 5}}, progress=False)
    assert list(out.iterdir()) == []
