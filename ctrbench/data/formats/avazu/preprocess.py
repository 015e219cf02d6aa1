"""Raw Avazu CSV -> train / valid / gold parquet + feature_map.json + manifest.json, streaming.

Three passes over the one file: a newline count (which also hashes it; the random split draws need the number of
data lines), then the two reads of ``ctrbench.data.vocab_splits``: the train split's value counts, then the ids
(vocabularies with ``min_count``, out-of-vocabulary id 1) written to each split's parquet.

Splits (``split_by``): ``random``, a seeded, exact draw of the data lines by ``splits`` (``SplitAssigner``; a bad
line keeps its slot, so skipping a row never moves another; FuxiCTR's Avazu_x4 is this layout split 8:1:1), or
``hour``, by the row's ``hour`` at ``hour_split``'s two YYMMDDHH boundaries (Avazu's train file spans
2014-10-21..30: ``{valid_start: 14102900, gold_start: 14103000}`` keeps the last day for gold). Every output is
written under a partial name and renamed only at the end, after the splits were checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ctrbench.data.formats.avazu.options import OPTIONS
from ctrbench.data.formats.avazu.reader import (
    BAD_ROW_KINDS,
    DERIVED_RULE,
    FEATURES,
    LABEL,
    AvazuReader,
    check_header,
)
from ctrbench.data.manifest import DataManifest, RowCounts
from ctrbench.data.outputs import COMPRESSION, ROW_GROUP_ROWS, StagedOutputs, output_paths
from ctrbench.data.raw_input import count_lines, input_file, input_hasher
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES
from ctrbench.data.splits import REST, SPLIT_BLOCK_LINES, SPLITS, SplitAssigner, check_split_labels
from ctrbench.data.splits import resolve_split_counts as split_counts
from ctrbench.data.vocab_splits import feature_map, write_vocab_splits
from ctrbench.provenance import package_versions

SOURCE = "avazu"


def option_problems(options: Mapping) -> list[str]:
    """What options.yaml cannot say: the splits fit some file, and an hour split has ordered boundaries."""
    if options["split_by"] == "hour":
        bounds = options.get("hour_split")
        if bounds is None:
            return ["hour_split: split_by hour needs hour_split {valid_start, gold_start} (YYMMDDHH)"]
        if not bounds["valid_start"] < bounds["gold_start"]:
            return [f"hour_split: valid_start {bounds['valid_start']} must be before gold_start {bounds['gold_start']}"]
        return []
    spec = {"train": REST, **options["splits"]}
    sizes = [v for v in spec.values() if v != REST]
    try:
        split_counts(sum(sizes) if all(isinstance(v, int) for v in sizes) else 1_000_000, spec)
    except ValueError as error:
        return [f"splits: {error}"]
    return []


def preprocess_avazu(
    raw_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    outputs: Mapping[str, str | Path] | None = None,
    dataset_name: str = "avazu",
    options: Mapping | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = COMPRESSION,
    progress: bool = True,
) -> dict:
    """Preprocess one raw Avazu CSV; returns the manifest as written to ``manifest.json``.

    Outputs go to ``out_dir`` under the names of ``OUTPUT_FILES`` or to ``outputs`` (keys train, valid, gold,
    feature_map, manifest). ``options``: the dataset-config keys of options.yaml (defaults there).
    """
    raw_path = Path(raw_path)
    options = OPTIONS.resolve(options or {})
    if problems := option_problems(options):
        raise ValueError(f"avazu options: {'; '.join(problems)}")
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
    paths = output_paths(out_dir, outputs)
    check_header(raw_path)  # before the long passes
    hasher = input_hasher(options["input_hash"])
    total_lines = count_lines(raw_path, hasher=hasher)
    sha256 = hasher.hexdigest() if hasher is not None else None
    data_lines = max(total_lines - 1, 0)

    if options["split_by"] == "random":
        spec = {"train": REST, **options["splits"]}
        planned = split_counts(data_lines, spec)
        check_split_labels(
            {k: (n, None) for k, n in planned.items()},
            source=raw_path,
            empty_hint=lambda name: f"splits={spec} give it {planned[name]} of the {data_lines} data lines",
        )

        def assigner():
            draws = SplitAssigner(planned, options["split_seed"])
            return lambda lines, stamps: draws.labels_for(lines)
    else:
        valid_start, gold_start = options["hour_split"]["valid_start"], options["hour_split"]["gold_start"]
        planned = None

        def assigner():
            return lambda lines, stamps: (stamps >= valid_start).astype(np.int8) + (stamps >= gold_start)

    readers: list[AvazuReader] = []

    def read(bad, on_bytes):
        reader = AvazuReader(
            raw_path, assign=assigner(), max_bad_rows=options["max_bad_rows"], block_bytes=block_bytes,
            on_bytes=on_bytes, bad=bad,
        )  # fmt: skip
        readers.append(reader)
        return iter(reader)

    def empty_hint(name: str) -> str:
        if planned is not None:
            dropped = ", all bad rows" if planned[name] else ""
            return f"splits={options['splits']} give it {planned[name]} of the {data_lines} data lines{dropped}"
        first, last = readers[0].first_stamp, readers[0].last_stamp
        return f"hour_split={options['hour_split']} leaves it no row of hours {first}..{last}"

    staged = StagedOutputs(paths)
    try:
        result = write_vocab_splits(
            read, staged=staged, label=LABEL, categorical=FEATURES, numeric=[], min_count=options["min_count"],
            bad_kinds=BAD_ROW_KINDS, total_bytes=raw_path.stat().st_size, source=raw_path, empty_hint=empty_hint,
            row_group_rows=row_group_rows, compression=compression, desc=dataset_name, progress=progress,
        )  # fmt: skip
        reader = readers[0]
        if reader.data_lines != data_lines:
            raise RuntimeError(f"{raw_path}: counted {data_lines} data lines, then read {reader.data_lines}")
        extra = {
            "source": SOURCE,
            "min_count": options["min_count"],
            "derived": DERIVED_RULE,
            "hours": [reader.first_stamp, reader.last_stamp],
            "extra_columns": reader.extra_columns,
        }
        feature_map(dataset_name, LABEL, result.vocabularies, [], extra).save(staged.temps["feature_map"])
        manifest = DataManifest(
            dataset=dataset_name,
            format=SOURCE,
            inputs={
                "raw": input_file(raw_path, options["input_hash"], sha256, lines=total_lines, data_lines=data_lines)
            },
            options={
                **options,
                "split_block_lines": SPLIT_BLOCK_LINES,
                "block_bytes": block_bytes,
                "row_group_rows": row_group_rows,
                "compression": compression,
            },
            rows=RowCounts(read=data_lines, written=result.rows, bad=result.bad.total),
            bad_rows=dict(result.bad.counts),
            bad_row_examples=list(result.bad.examples),
            dropped={},
            splits={k: w.summary(planned[k] if planned else None) for k, w in result.writers.items()},
            split_times=None,
            outputs=staged.describe((*SPLITS, "feature_map")),
            packages=package_versions(("numpy", "pyarrow")),
            details={
                "derived": DERIVED_RULE,
                "vocabularies": {k: v.facts() for k, v in result.vocabularies.items()},
                "hours": [reader.first_stamp, reader.last_stamp],
            },
        )
        return staged.publish(manifest)
    except BaseException:
        staged.discard()
        raise


__all__ = ["option_problems", "preprocess_avazu"]
