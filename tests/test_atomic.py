"""Partial outputs: written beside their target, and what a killed writer left cleared when the job starts again."""

import os

import pytest

from ctrbench.atomic import atomic_path, clear_stale_partials, partial_path


def test_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "checkpoint.pt"
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half")
        raise RuntimeError("killed midway")
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_clear_stale_partials_removes_what_killed_writers_left_and_nothing_else(tmp_path):
    checkpoint, train_log, train = tmp_path / "checkpoint.pt", tmp_path / "train_log.jsonl", tmp_path / "train.parquet"
    live = {checkpoint: "best", train_log: "{}", train: "rows", tmp_path / "gold.parquet": "rows"}
    for path, text in live.items():
        path.write_text(text)
    # what `kill -9` leaves: partial files of dead (and of any) pids, the trainer's temp save of the staged
    # checkpoint, and the UserBehavior preprocessing's bucket folder
    stale = [
        tmp_path / ".checkpoint.pt.4242.partial",
        tmp_path / ".checkpoint.pt.4242.partial.tmp",
        tmp_path / f".checkpoint.pt.{os.getpid()}.partial",
        tmp_path / ".train_log.jsonl.4242.partial",
        tmp_path / ".train.parquet.buckets.k3j2x9",
    ]
    for path in stale[:-1]:
        path.write_text("partial")
    stale[-1].mkdir()
    (stale[-1] / "bucket00000.parquet").write_text("bucket")
    # not partials of these outputs: another output's partial, a user's file, a name that only starts alike
    others = [tmp_path / ".gold.parquet.4242.partial", tmp_path / ".checkpoint.pt.bak", tmp_path / ".checkpoint.pt2.1.partial"]
    for path in others:
        path.write_text("keep")

    removed = clear_stale_partials(checkpoint, train_log, train, tmp_path / "missing" / "metrics.json")

    assert sorted(removed) == sorted(stale)
    assert not any(path.exists() for path in stale)
    assert {path: path.read_text() for path in live} == live
    assert all(path.exists() for path in others)
    assert clear_stale_partials(checkpoint) == []


def test_partial_names_are_what_clear_stale_partials_clears(tmp_path):
    """The two sides of one naming convention: a partial of this very process counts as stale once its job restarts."""
    target = tmp_path / "gold_eval.json"
    partial_path(target).write_text("{")
    assert clear_stale_partials(target) == [partial_path(target)]
