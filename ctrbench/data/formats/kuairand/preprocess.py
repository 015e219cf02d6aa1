"""KuaiRand (Pure, 1K, 27K): the release's ``data/`` directory -> multi-task samples with behaviour histories.

``preprocess_kuairand`` runs in two passes over the logs, with memory bounded by a block, one user bucket and the
tables by local id, whatever the number of log rows. The tables follow the distinct users and videos the logs show:
~45 bytes per video in pass 2, up to ~90 while a feature file is read, and pass 1's distinct count of 24 bytes per
video (2-3x that while it merges): KuaiRand-27K shows 32 M videos (1.5 to 3 GB), 1K 4.4 M (0.2 to 0.4 GB), Pure 7.6 K.

1. ``events``: the logs (``logs.LogReader``; the standard ones, and the random one with ``logs:
   standard+random``) are validated and bucketed by ``user_id % N`` on disk (``N = ceil(log bytes /
   bucket_bytes)``), while the distinct users, videos (with the first day each was shown) and tabs are counted;
2. the feature files are read (``sides``) for exactly the logged users and videos and turned into id tables
   (``features``; the statistics' quantile edges are taken over the videos shown on a train day);
3. ``samples``: one bucket at a time, every exposure becomes a row with its labels, features and, per behaviour,
   the bounds of its history in the event table.

Splits by Beijing days of ``time_ms`` (never ``date``/``hourmin``): gold = the last ``gold_days`` days of the
logs, valid = the ``valid_days`` before, train = the rest. A split left empty is an error here; a task with one
class in a split is not, unless every task has one (``details.single_class_tasks`` lists them). Users or videos of
the logs that lack a feature row get missing-feature ids (0) and are counted (``details``), not refused.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from ctrbench.data.formats.kuairand.events import bucket_logs
from ctrbench.data.formats.kuairand.features import FeatureTables, statistic_tables, user_tables, video_tables
from ctrbench.data.formats.kuairand.layout import (
    BAD_ROW_KINDS,
    BEHAVIOR_LABELS,
    BEIJING_OFFSET_MS,
    FILES,
    LABEL_COLUMNS,
    USER_KINDS,
    VIDEO_KINDS,
    KuaiRandFormatError,
)
from ctrbench.data.formats.kuairand.logs import LogReader
from ctrbench.data.formats.kuairand.options import OPTIONS, option_problems
from ctrbench.data.formats.kuairand.records import feature_map, manifest
from ctrbench.data.formats.kuairand.samples import SampleWriter
from ctrbench.data.formats.kuairand.sides import SideTable, read_side
from ctrbench.data.outputs import COMPRESSION, StagedOutputs, output_paths
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES, BadRows
from ctrbench.data.splits import SPLITS, check_split_files, check_split_labels
from ctrbench.data.timesplit import local_iso, local_split_times, split_starts

DEFAULT_BUCKET_BYTES = 64 << 20  # one user bucket per this much log input
# rows are ~340 bytes wide in memory (60-odd columns, 14 int64 history bounds with the default 7 behaviours): ~22 MB
# per row group, of which each split writer holds one pending and encodes up to two
ROW_GROUP_ROWS = 1 << 16
_OFFSET_S = BEIJING_OFFSET_MS // 1000


def input_files(directory: Path, logs: str) -> dict[str, list[Path]]:
    """The files of each kind (``layout.FILES``) the run reads; a kind it needs and lacks is a FileNotFoundError."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: not a directory (format kuairand reads the release's data/ folder)")
    found = {kind: spec.matches(directory) for kind, spec in FILES.items()}
    if logs == "standard":
        found["log_random"] = []
    needed = [k for k, spec in FILES.items() if spec.required or (k == "log_random" and logs != "standard")]
    if missing := [FILES[k].pattern for k in needed if not found[k]]:
        raise FileNotFoundError(f"{directory}: no file matches {', '.join(missing)} (format kuairand, logs: {logs})")
    return found


def _feature_tables(files, logged, options, train_videos, read) -> tuple[FeatureTables, dict]:
    """The id tables of the logged users and videos, one feature file kind at a time (each kind's raw values are
    freed as they become ids), and the files read by kind."""
    features, read_files = FeatureTables(), {}
    users = SideTable("user_id", USER_KINDS, len(logged.users))
    read(files["user_features"], users, logged.users, "KuaiRand user_features")
    user_tables(features, users)
    basic = SideTable("video_id", VIDEO_KINDS, len(logged.videos))
    read(files["video_basic"], basic, logged.videos, "KuaiRand video_features_basic")
    video_tables(features, basic, train_videos, options["statistic_buckets"])
    statistics = SideTable("video_id", dict.fromkeys(options["statistics"], "number"), len(logged.videos))
    if options["statistics"]:  # else the files are not read
        read(files["video_statistic"], statistics, logged.videos, "KuaiRand video_features_statistic")
    statistic_tables(features, statistics, train_videos, options["statistic_buckets"])
    read_files = {"user_features": users.files, "video_basic": basic.files, "video_statistic": statistics.files}
    return features, read_files


def preprocess_kuairand(
    raw_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    outputs: Mapping[str, str | Path] | None = None,
    dataset_name: str = "kuairand",
    options: Mapping | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = COMPRESSION,
    progress: bool = True,
) -> dict:
    """Preprocess a KuaiRand ``data/`` directory (``raw_path``) into train / valid / gold parquet, the event table,
    the feature map and the manifest (returned, as written); outputs as ``preprocess_criteo``. Options: options.yaml
    (tasks, logs, history, time_split, statistics, statistic_buckets, max_bad_rows, input_hash)."""
    raw_path = Path(raw_path)
    paths = output_paths(out_dir, outputs)
    options = OPTIONS.resolve(options or {})
    history, split = options["history"], options["time_split"]
    behaviors = list(history["behaviors"])
    max_lens = {b: history["max_len_by_behavior"].get(b, history["max_len"]) for b in behaviors}
    if problems := option_problems(options):
        raise ValueError("; ".join(problems))
    if row_group_rows < 1 or bucket_bytes < 1 or block_bytes < 1:
        raise ValueError("row_group_rows, bucket_bytes and block_bytes must be >= 1")
    wanted = {*options["tasks"], *(BEHAVIOR_LABELS[b] for b in behaviors)}
    labels = [c for c in LABEL_COLUMNS if c in wanted]
    files = input_files(raw_path, options["logs"])
    log_paths = files["log_standard"] + files["log_random"]
    n_buckets = max(1, math.ceil(sum(p.stat().st_size for p in log_paths) / bucket_bytes))
    knobs = {"buckets": n_buckets, "block_bytes": block_bytes, "bucket_bytes": bucket_bytes,
             "row_group_rows": row_group_rows, "compression": compression}  # fmt: skip

    staged = StagedOutputs(paths)
    opened: list = []
    work = Path(tempfile.mkdtemp(prefix=f".{paths['train'].name}.buckets.", dir=paths["train"].parent))
    bad = BadRows.of(BAD_ROW_KINDS)
    max_bad_rows, input_hash = options["max_bad_rows"], options["input_hash"]
    reader = LogReader(
        log_paths, labels, bad, max_bad_rows=max_bad_rows, input_hash=input_hash, block_bytes=block_bytes
    )

    def read(kind_paths, table, vocabulary, layout):
        return read_side(kind_paths, table, vocabulary, bad, max_bad_rows=max_bad_rows, input_hash=input_hash,
                         block_bytes=block_bytes, layout=layout)  # fmt: skip

    samples = None
    try:
        logged = bucket_logs(reader, work, n_buckets, opened, progress=progress)
        valid_s, gold_s = split_starts(logged.t_max // 1000, _OFFSET_S, split["valid_days"], split["gold_days"])
        train_videos = np.zeros(len(logged.videos) + 1, bool)
        train_videos[1:] = logged.video_first_day < (valid_s + _OFFSET_S) // 86400  # shown on a train day
        features, sides = _feature_tables(files, logged, options, train_videos, read)
        del train_videos
        samples = SampleWriter(
            staged.temps, features, logged, tasks=options["tasks"], behaviors=behaviors, fields=history["fields"],
            split_starts_ms=[valid_s * 1000, gold_s * 1000], row_group_rows=row_group_rows,
            compression=compression, opened=opened,
        )  # fmt: skip
        for path in tqdm(logged.bucket_paths, desc="user buckets", disable=not progress):
            samples.add_bucket(path)
            pa.default_memory_pool().release_unused()
        samples.close()
        single_class = _check_splits(samples, staged, raw_path, logged, valid_s, gold_s, options)
        split_times = local_split_times(logged.t_min // 1000, valid_s, gold_s, logged.t_max // 1000, _OFFSET_S)
        fm = feature_map(dataset_name, features, logged, options=options, max_lens=max_lens, split_times=split_times)
        fm.save(staged.temps["feature_map"])
        record = manifest(
            dataset_name, logs=reader.files, sides=sides, logged=logged, features=features, samples=samples, bad=bad,
            options=options, knobs=knobs, split_times=split_times, single_class=single_class, staged=staged,
        )  # fmt: skip
        return staged.publish(record)
    except BaseException:
        if samples is not None:
            samples.settle()
        staged.discard(opened)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_splits(samples, staged, raw_path, logged, valid_s: int, gold_s: int, options) -> dict[str, list[str]]:
    """No split empty (a hint names its days against the data's) nor single-class in every task, splits disjoint
    and adding up; returns the tasks with one class, by split."""

    def day(seconds: int) -> str:
        return local_iso(seconds, _OFFSET_S)[:10]

    first, last = day(logged.t_min // 1000), day(logged.t_max // 1000)
    days = {"train": f"before {day(valid_s)}", "valid": f"on {day(valid_s)}..{day(gold_s - 1)}",
            "gold": f"on {day(gold_s)}..{last}"}  # fmt: skip
    split = options["time_split"]

    def hint(name: str) -> str:
        lower = f"; valid_days={split['valid_days']} + gold_days={split['gold_days']} leave no train day, lower them"
        return f"no exposure {days[name]} (the logs span {first}..{last}){lower if name == 'train' else ''}"

    rows, positives = samples.rows, samples.positives
    counts = {name: (rows[name], positives[name]) for name in SPLITS}
    single_class = check_split_labels(counts, source=raw_path, empty_hint=hint)
    # small batches: row ids increase within a bucket, so only the batches that straddle a bucket boundary need the
    # (slow) uniqueness fallback
    check_split_files(
        {k: staged.temps[k] for k in SPLITS},
        expected_total=sum(rows.values()),
        expected_counts=rows,
        batch_rows=1 << 16,
    )
    return single_class


__all__ = ["DEFAULT_BUCKET_BYTES", "ROW_GROUP_ROWS", "KuaiRandFormatError", "input_files", "preprocess_kuairand"]
