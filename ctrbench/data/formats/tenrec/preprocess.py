"""Tenrec QB-Video / QK-Video CSV -> train / valid / gold parquet, the event table, feature_map.json, manifest.json.

Two passes over one file, memory bounded by a block and one user bucket (plus the vocabularies):

1. ``TenrecReader`` validates the rows (header by name, ``\\N`` missing, bad rows by kind) while the input is
   hashed on a thread; every good row goes to ``N = ceil(file bytes / bucket_bytes)`` parquet buckets by
   ``user_id % N`` (``ctrbench.data.buckets``), and the distinct raw ids of each categorical column are
   accumulated (``ctrbench.data.distinct``): local id = 1 + rank among them, 0 = missing;
2. ``samples.SampleWriter`` takes one bucket at a time: splits by position within each user, histories per
   behaviour by reference into ``events.parquet``, rows in source line order within the bucket.

Every row is a sample with four labels (``tasks``, default click, like, follow, share; the label columns not
chosen stay in the splits, unused). ``group_by = user_id`` (a vocabulary id: one group per user). On the output:
``row_id`` is the physical line; nothing depends on ``block_bytes``, and another bucket count only reorders the
same rows. Everything is written under partial names and published at the end, after the splits were checked
(none empty; a task with one class in a split is allowed and recorded, not every task).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

from ctrbench.data.buckets import KeyBuckets, bucket_count
from ctrbench.data.distinct import DistinctCounts
from ctrbench.data.formats.tenrec.options import OPTIONS
from ctrbench.data.formats.tenrec.reader import BLOCK_BYTES, BUCKET_SCHEMA, MISSING, PLAYS, TenrecReader, check_header
from ctrbench.data.formats.tenrec.samples import CATEGORICAL, SampleWriter, Vocab
from ctrbench.data.manifest import DataManifest, RowCounts
from ctrbench.data.outputs import COMPRESSION, ROW_GROUP_ROWS, StagedOutputs, output_paths
from ctrbench.data.raw_input import input_file, input_hasher
from ctrbench.data.schema import ROW_ID, Feature, FeatureMap, SequenceGroup, Task
from ctrbench.data.splits import SPLITS, check_split_files, check_split_labels
from ctrbench.provenance import package_versions

# one user bucket per this much input (~1 M rows): pass 2 holds one bucket (~170 bytes a row); QK-Video's ~16 GB
# make ~500 bucket files, open at once in pass 1 (smaller buckets would near the usual limit of 1024 open files)
DEFAULT_BUCKET_BYTES = 32 << 20
SOURCE = "tenrec"
HISTORY_RULE = (
    "group <behaviour>_history: the user's earlier rows (strictly smaller position) with that behaviour = 1, by "
    "reference: rows [<behaviour>_history_start, <behaviour>_history_end) of events.parquet, whose rows are "
    "grouped by (bucket, behaviour, user) in position order; models read the most recent max_len, left-padded with 0"
)
SPLIT_RULE = (
    "by position within each user (file order): gold = the last round(n * gold) of the user's n rows, valid = "
    "the round(n * (valid + gold)) - round(n * gold) before them, train = the rest; rounding half up"
)
IDS_RULE = "local id = 1 + rank of the raw value among the sorted distinct raw values of the file; 0 = \\N / empty"


def option_problems(options: Mapping) -> list[str]:
    """What options.yaml cannot say: the valid and gold shares leave train some rows."""
    splits = options["splits"]
    if splits["valid"] + splits["gold"] >= 1:
        return [f"splits: valid + gold = {splits['valid'] + splits['gold']} leaves train no rows; it must be < 1"]
    return []


def history_group(behavior: str) -> str:
    """The sequence group of a behaviour's history (its start and end columns add ``_start`` / ``_end``)."""
    return f"{behavior}_history"


def history_groups(options: Mapping) -> tuple[str, ...]:
    """The groups the resolved ``options`` make: one per ``history.behaviors``."""
    return tuple(history_group(b) for b in options["history"]["behaviors"])


def preprocess_tenrec(
    raw_path: str | Path,
    *,
    outputs: Mapping[str, str | Path],
    dataset_name: str = "tenrec",
    options: Mapping | None = None,
    block_bytes: int = BLOCK_BYTES,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = COMPRESSION,
    progress: bool = True,
) -> dict:
    """Preprocess one Tenrec video CSV; returns the manifest as written to ``outputs["manifest"]``.

    ``options``: the dataset-config keys of options.yaml (defaults there). ``outputs`` maps ``train``, ``valid``,
    ``gold``, ``events``, ``feature_map`` and ``manifest`` to paths (``events`` defaults to beside train).
    """
    raw_path = Path(raw_path)
    if not raw_path.is_file():
        raise FileNotFoundError(f"{raw_path}: no such file (the raw file of a tenrec dataset)")
    options = OPTIONS.resolve(options or {})
    if problems := option_problems(options):
        raise ValueError(f"tenrec options: {'; '.join(problems)}")
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
    tasks, history = options["tasks"], options["history"]
    check_header(raw_path)
    paths = output_paths(None, outputs)
    n_buckets = bucket_count(raw_path.stat().st_size, bucket_bytes)
    knobs = {"buckets": n_buckets, "block_bytes": block_bytes, "bucket_bytes": bucket_bytes}
    knobs |= {"row_group_rows": row_group_rows, "compression": compression}

    staged = StagedOutputs(paths)
    opened: list = []  # every parquet writer opened, closed on failure
    work = Path(tempfile.mkdtemp(prefix=f".{paths['train'].name}.buckets.", dir=paths["train"].parent))
    hasher = input_hasher(options["input_hash"])
    reader = TenrecReader(raw_path, max_bad_rows=options["max_bad_rows"], block_bytes=block_bytes, hasher=hasher)
    try:
        buckets = KeyBuckets(work, n_buckets, BUCKET_SCHEMA, opened=opened)
        distinct = {name: DistinctCounts(1) for name in CATEGORICAL}
        with tqdm(
            total=raw_path.stat().st_size, unit="B", unit_scale=True, desc=dataset_name, disable=not progress
        ) as bar:
            reader.on_bytes = bar.update
            for block in reader:
                for name, values in distinct.items():
                    raw = block.columns[name]
                    values.add(raw[raw != MISSING])
                buckets.add(block.to_arrow(), block.columns["user_id"])
        buckets.close()
        sha256 = hasher.hexdigest() if hasher is not None else None
        vocab = Vocab({name: values.result()[0][0] for name, values in distinct.items()})
        if too_many := [name for name in CATEGORICAL if vocab.size(name) > 2**31 - 1]:
            raise ValueError(f"{raw_path}: too many distinct {', '.join(too_many)} for int32 ids")

        samples = SampleWriter(
            staged.temps, vocab, tasks=tasks, history_behaviors=history["behaviors"], fields=history["fields"],
            valid=options["splits"]["valid"], gold=options["splits"]["gold"], row_group_rows=row_group_rows,
            compression=compression, opened=opened,
        )  # fmt: skip
        for table in tqdm(buckets.read(), total=len(buckets), desc="user buckets", disable=not progress):
            samples.add_bucket(table)
        samples.close()
        writers = samples.writers
        single_class = check_split_labels(
            {name: (w.rows, w.task_positives) for name, w in writers.items()},
            source=raw_path,
            empty_hint=lambda name: _empty_hint(name, options, samples),
        )
        written = {name: w.rows for name, w in writers.items()}
        check_split_files({k: staged.temps[k] for k in SPLITS}, expected_total=reader.rows, expected_counts=written)
        _feature_map(dataset_name, vocab, options).save(staged.temps["feature_map"])
        manifest = DataManifest(
            dataset=dataset_name,
            format="tenrec",
            inputs={
                "raw": input_file(
                    raw_path, options["input_hash"], sha256, lines=reader.lines, data_lines=reader.data_lines
                )
            },
            options={**options, **knobs},
            rows=RowCounts(read=reader.data_lines, written=sum(written.values()), bad=reader.bad.total),
            bad_rows=dict(reader.bad.counts),
            bad_row_examples=list(reader.bad.examples),
            dropped={},
            splits={name: w.summary() for name, w in writers.items()},
            split_times=None,
            outputs=staged.describe((*SPLITS, "feature_map")),
            packages=package_versions(("numpy", "pyarrow")),
            details={
                "distinct": {name: len(vocab.values[name]) for name in CATEGORICAL},
                "missing": reader.missing,
                "history_events": samples.events,
                "users": {"all": samples.users, **{f"with_{k}_rows": n for k, n in samples.users_with.items()}},
                "max_rows_per_user": samples.max_user_rows,
                "single_class_tasks": single_class,
                "extra_columns": reader.extra_columns,
            },
        )
        return staged.publish(manifest)
    except BaseException:
        staged.discard(opened)
        if hasher is not None:
            hasher.close()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _empty_hint(name: str, options: Mapping, samples: SampleWriter) -> str:
    share = options["splits"]["gold"] if name == "gold" else options["splits"]["valid"]
    return (
        f"splits.{name}={share} of each user's rows rounds to 0 for all {samples.users} users "
        f"(at most {samples.max_user_rows} rows each); raise splits.{name}"
    )


def _feature_map(dataset_name: str, vocab: Vocab, options: Mapping) -> FeatureMap:
    """Tasks, the categorical ids, one history group per behaviour over the item fields (``<b>_<field>``)."""
    history = options["history"]
    behaviors, fields = history["behaviors"], history["fields"]
    return FeatureMap(
        dataset=dataset_name,
        tasks=[Task(t) for t in options["tasks"]],
        features=[Feature(name, "categorical", vocab_size=vocab.size(name)) for name in CATEGORICAL]
        + [
            Feature(
                f"{b}_{f}",
                "sequence",
                vocab_size=vocab.size(f),
                shares_vocab_with=f,
                group=history_group(b),
                event_column=f,
            )
            for b in behaviors
            for f in fields
        ],
        sequence_groups=[
            SequenceGroup(
                history_group(b),
                history["max_len"],
                storage="events",
                start=f"{history_group(b)}_start",
                end=f"{history_group(b)}_end",
            )
            for b in behaviors
        ],
        group_by="user_id",
        extra={
            "source": SOURCE,
            "history": HISTORY_RULE,
            "splits": SPLIT_RULE,
            "ids": IDS_RULE,
            "distinct": {name: len(vocab.values[name]) for name in CATEGORICAL},
            "columns_not_features": [
                ROW_ID,
                PLAYS,
                *(b for b in ("click", "follow", "like", "share") if b not in options["tasks"]),
            ],
            "watching_times": "plays of the video after the exposure: an outcome, not a feature (-1 = \\N)",
        },
    )


__all__ = ["DEFAULT_BUCKET_BYTES", "option_problems", "preprocess_tenrec"]
