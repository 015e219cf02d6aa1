"""Format kuairand, bad input: every kind of bad row (wrong field count, a non-integer, a label other than 0/1, a bad
number, a repeated id, an open quote) names file, line and problem, or is skipped and counted under max_bad_rows;
missing files and header columns; nothing partial published after a failure; the core pieces the reader added.

The directories are generated in the release's exact layout (``kuairand_files.write_release``).
"""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest
from kuairand_files import LOG_COLUMNS, write_release

from ctrbench.data.distinct import DistinctCounts
from ctrbench.data.fields import parse_int64
from ctrbench.data.formats import FORMATS
from ctrbench.data.formats.kuairand.layout import STATISTIC_COLUMNS, KuaiRandFormatError
from ctrbench.data.formats.kuairand.preprocess import preprocess_kuairand
from ctrbench.data.formats.kuairand.sides import SideTable, read_side
from ctrbench.data.outputs import OUTPUT_FILES
from ctrbench.data.reading import BadRows
from ctrbench.data.splits import UnusableSplitError


def run(raw, out, **options):
    return preprocess_kuairand(raw, out, options={"input_hash": "size+mtime", **options}, progress=False)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    raw = tmp_path_factory.mktemp("kuairand") / "data"
    write_release(raw, seed=3)
    return raw


# ------------------------------------------------------------------------------------------------ bad input


def edit_line(path, line: int, edit) -> None:
    """Replace physical line ``line`` (1-based) of ``path`` by ``edit(old line)``."""
    lines = path.read_text().split("\n")
    lines[line - 1] = edit(lines[line - 1])
    path.write_text("\n".join(lines))


def set_field(column: str, value: str, header=LOG_COLUMNS):
    """An edit that sets ``column`` of an unquoted line with columns ``header`` (log part 1 is in layout order)."""

    def edit(line: str) -> str:
        fields = line.split(",")
        fields[list(header).index(column)] = value
        return ",".join(fields)

    return edit


PART1 = "log_standard_4_08_to_4_21_test_part1.csv"
STATISTICS_HEADER = ["video_id", *STATISTIC_COLUMNS]
BAD_INPUTS = {  # kind -> (file, line edited, edit, the line and problem the message names)
    "field_count": (PART1, 7, lambda line: line + ",5", r"7: expected 19 comma-separated fields, found 20"),
    "bad_integer": (PART1, 9, set_field("video_id", "12x"), r"9: column video_id: '12x' is not a non-negative integer"),
    "bad_label": (PART1, 11, set_field("is_like", "2"), r"11: column is_like: '2' is not 0 or 1"),
    "bad_number": (
        "video_features_statistic_test_part2.csv",
        3,
        set_field("play_cnt", "abc", STATISTICS_HEADER),
        r"3: column play_cnt: 'abc' is not a number",
    ),
    "duplicate_id": (
        "video_features_basic_test.csv",
        6,
        lambda line: line + "\n" + line,
        r"7: column video_id: '4' repeats a video_id read before \(the first is kept\)",
    ),
    "open_quote": (
        "user_features_test.csv",
        4,
        lambda line: line.replace('"', "", 1),
        r'4: a " quote opened and not closed on the line',
    ),
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_a_bad_row_names_file_line_and_problem_and_nothing_is_published(kind, release, tmp_path):
    raw = tmp_path / "data"
    shutil.copytree(release, raw)
    name, line, edit, message = BAD_INPUTS[kind]
    edit_line(raw / name, line, edit)
    out = tmp_path / "out"
    with pytest.raises(KuaiRandFormatError, match=f"{name}:{message}"):
        run(raw, out)
    assert sorted(p.name for p in out.iterdir()) == []  # no output, no partial file, no bucket folder left
    m = run(raw, out, max_bad_rows=1)
    field_count = kind in ("field_count", "open_quote")
    assert m["bad_rows"] == {k: int(k == kind or (field_count and k == "field_count")) for k in m["bad_rows"]}
    assert m["rows"]["bad"] == 1 and len(m["bad_row_examples"]) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())


def test_bad_rows_over_every_file_share_one_budget(release, tmp_path):
    raw = tmp_path / "data"
    shutil.copytree(release, raw)
    for kind in ("field_count", "bad_label", "duplicate_id"):
        name, line, edit, _ = BAD_INPUTS[kind]
        edit_line(raw / name, line, edit)
    m = run(raw, tmp_path / "ok", max_bad_rows=3)
    assert m["rows"]["read"] == m["rows"]["written"] + 2  # the two bad log rows are not samples
    assert {k: v for k, v in m["bad_rows"].items() if v} == {"field_count": 1, "bad_label": 1, "duplicate_id": 1}
    with pytest.raises(KuaiRandFormatError, match=r"more than max_bad_rows=2 bad rows: field_count=1, bad_label=1, "
                       r"duplicate_id=1"):  # fmt: skip
        run(raw, tmp_path / "over", max_bad_rows=2)


def test_missing_files_and_columns(release, tmp_path):
    raw = tmp_path / "data"
    shutil.copytree(release, raw)
    fmt = FORMATS["kuairand"]
    assert fmt.path_problem(raw) is None
    assert [p.rsplit("/", 1)[1] for p in fmt.raw_files(raw)] == [
        PART1, "log_standard_4_08_to_4_21_test_part2.csv", "log_random_4_22_to_5_08_test.csv",
        "user_features_test.csv", "video_features_basic_test.csv", "video_features_statistic_test_part1.csv",
        "video_features_statistic_test_part2.csv",
    ]  # fmt: skip
    (raw / "log_random_4_22_to_5_08_test.csv").unlink()
    run(raw, tmp_path / "standard")  # the random log is optional
    with pytest.raises(FileNotFoundError, match=r"no file matches log_random_\*.csv \(format kuairand, logs: "
                       r"standard\+random\)"):  # fmt: skip
        run(raw, tmp_path / "random", logs="standard+random")
    (raw / "user_features_test.csv").unlink()
    assert fmt.path_problem(raw) == f"{str(raw)!r} lacks user_features_*.csv"
    with pytest.raises(FileNotFoundError, match=r"no file matches user_features_\*.csv"):
        run(raw, tmp_path / "users")
    shutil.copy(release / "user_features_test.csv", raw)
    edit_line(raw / "video_features_basic_test.csv", 1, lambda line: line.replace("music_id", "music"))
    with pytest.raises(
        KuaiRandFormatError,
        match=r"video_features_basic_test.csv:1: header lacks column music_id of the KuaiRand "
        r"video_features_basic layout",
    ):
        run(raw, tmp_path / "header")
    assert not (tmp_path / "header" / "manifest.json").exists()


def test_an_empty_split_is_an_error_at_preprocessing(release, tmp_path):
    with pytest.raises(UnusableSplitError, match=r"train split is empty: no exposure before .* leave no train day"):
        run(release, tmp_path / "out", time_split={"valid_days": 5, "gold_days": 5})


# ------------------------------------------------------------------------------------------------ core pieces


def test_parse_int64_takes_the_arrow_cast_only_where_it_agrees_with_the_word_parser():
    values = [b"0", b"-0", b"1649408076860", b"-42", b"123456789012345678", b"007"]
    clean = parse_int64(pa.array(values, pa.binary()))  # one Arrow cast
    with_bad = parse_int64(pa.array([*values, b"1e3"], pa.binary()))  # the word parser finds the bad value
    np.testing.assert_array_equal(clean[0], [0, 0, 1649408076860, -42, 123456789012345678, 7])
    np.testing.assert_array_equal(with_bad[0][:-1], clean[0])
    assert not clean[2].any() and with_bad[2].tolist() == [False] * 6 + [True]
    assert clean[0].flags.writeable and with_bad[0].flags.writeable  # callers overwrite missing values in place
    long = parse_int64(pa.array([b"1234567890123456789"], pa.binary()))  # fits int64, but over 18 digits
    assert long[2].tolist() == [True]


def test_distinct_counts_track_each_keys_least_value(monkeypatch):
    monkeypatch.setattr(DistinctCounts, "MERGE_ROWS", 40)
    rng = np.random.default_rng(1)
    acc = DistinctCounts(1, track_min=True)
    keys, values = rng.integers(0, 50, 900), rng.integers(0, 10_000, 900)
    for part in np.array_split(np.arange(900), 17):
        acc.add(keys[part], values=values[part])
    (distinct,), counts = acc.result()
    assert distinct.tolist() == sorted(set(keys.tolist()))
    assert acc.minimum().tolist() == [int(values[keys == k].min()) for k in distinct]
    assert counts.tolist() == [int((keys == k).sum()) for k in distinct]


def test_feature_file_values_and_headers(tmp_path):
    """Codes must be whole numbers (``4.0`` is, ``4.5`` is not); an empty key is bad; a header names a column once."""
    path = tmp_path / "user_features_x.csv"
    path.write_text('user_id,onehot_feat4,fans_user_num_range\n0,4.0,"[1,10)"\n1,4.5,0\n,1,0\n')
    table = SideTable("user_id", {"onehot_feat4": "code", "fans_user_num_range": "token"}, 3)
    bad = BadRows.of(["field_count", "bad_integer", "bad_label", "bad_number", "duplicate_id"])
    with pytest.raises(KuaiRandFormatError, match=r"user_features_x.csv:3: column onehot_feat4: '4.5' is not a whole"):
        read_side([path], table, np.arange(3), bad, max_bad_rows=0, input_hash="sha256")
    bad = BadRows.of(bad.counts)
    table = SideTable("user_id", {"onehot_feat4": "code", "fans_user_num_range": "token"}, 3)
    read_side([path], table, np.arange(3), bad, max_bad_rows=2, input_hash="size+mtime")
    assert (
        bad.counts["bad_integer"] == 2
        and "user_features_x.csv:4: column user_id: '' is not a non-negative" in (bad.examples[1])
    )
    assert table.found.tolist() == [False, True, False, False] and table.values["onehot_feat4"][1] == 4
    path.write_text("user_id,onehot_feat4,fans_user_num_range,user_id\n0,1,0,0\n")
    with pytest.raises(KuaiRandFormatError, match=r"user_features_x.csv:1: header names column user_id more than once"):
        read_side([path], table, np.arange(3), bad, max_bad_rows=0, input_hash="sha256")


@pytest.mark.parametrize("column", ["time_ms", "is_click", "user_id"])
def test_an_empty_log_value_is_a_bad_row_not_a_zero(column, release, tmp_path):
    """The release writes every log column: an empty user, time or label would otherwise read as 0 (a 1970 event in
    train, user 0, a negative label)."""
    raw = tmp_path / "data"
    shutil.copytree(release, raw)
    edit_line(raw / PART1, 5, set_field(column, ""))
    with pytest.raises(KuaiRandFormatError, match=rf"{PART1}:5: column {column}: .*is empty"):
        run(raw, tmp_path / "out")
    m = run(raw, tmp_path / "kept", max_bad_rows=1)
    assert m["bad_rows"]["bad_integer"] == 1 and m["rows"]["bad"] == 1
