"""AliExpress multi-task CSVs -> train / valid / gold parquet + feature_map.json + manifest.json, streaming.

The raw input is a directory holding ``train.csv`` and ``test.csv`` (``SPLIT_FILES``), or a mapping of
``train`` and ``gold`` to files. Both headers are checked first (each file may order its columns its own
way), then two passes: a newline count per file (which also hashes it), then the streaming read
(``AliExpressReader``), every block appended to its split's parquet writer. The gold split is test.csv; the
valid split is a seeded, exact ``splits.valid`` fraction of train.csv's data lines (``SplitAssigner``; a bad
line keeps its slot, so skipping a row never moves another between splits).

Two tasks, ``click`` and ``conversion`` (clicked and purchased, so its AUC over all rows is the CTCVR AUC the
Multitask-Recommendation-Library reports). ``row_id = row_id_offset + physical line``, the files numbered as if
concatenated (train, then test). Every output is written under a partial name and renamed only at the end,
after the splits were checked (none empty; with two tasks a task with one class in a split is allowed, not
both).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ctrbench.data.blocks import ColumnBlock
from ctrbench.data.formats.aliexpress.options import OPTIONS
from ctrbench.data.formats.aliexpress.reader import (
    BAD_ROW_KINDS,
    CATEGORICAL,
    GROUP,
    NUMERICAL,
    OUTPUT_SCHEMA,
    TASKS,
    AliExpressReader,
    check_header,
)
from ctrbench.data.manifest import DataManifest, RowCounts
from ctrbench.data.outputs import COMPRESSION, ROW_GROUP_ROWS, SplitWriter, StagedOutputs, output_paths
from ctrbench.data.raw_input import count_lines, input_files_of, input_hasher
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES, BadRows
from ctrbench.data.schema import Feature, FeatureMap, Task
from ctrbench.data.splits import (
    SPLIT_BLOCK_LINES,
    SPLITS,
    SplitAssigner,
    check_split_files,
    check_split_labels,
    resolve_split_counts,
)
from ctrbench.provenance import package_versions

SOURCE = "aliexpress_multitask"
SPLIT_FILES = {"train": "train.csv", "gold": "test.csv"}  # in a raw directory
TASK_MEANING = {
    "click": "the item was clicked (CTR)",
    "conversion": "the item was clicked and purchased (CTCVR; 'purchase' in some copies)",
}
TRANSFORMS = {
    "categorical": "int32 id = value + 1 (0 = empty field); vocab_size = largest value over all splits + 2",
    "numerical": "float32, as written (the release scales them into [0, 1]); empty -> 0.0",
    "search_id": "int64, as written: the gAUC group (one search of one user)",
    "row_id": "row_id_offset of the file (lines of the files before it: train, test) + physical line",
}


def preprocess_aliexpress(
    raw: str | Path | Mapping[str, str | Path],
    *,
    outputs: Mapping[str, str | Path],
    dataset_name: str = "aliexpress",
    options: Mapping | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = COMPRESSION,
    progress: bool = True,
) -> dict:
    """Preprocess AliExpress multi-task CSVs; returns the manifest as written to ``outputs["manifest"]``.

    ``raw``: the raw directory (train.csv, test.csv) or ``{"train": path, "gold": path}``. ``options``: the
    dataset-config keys of options.yaml (defaults there). ``outputs`` maps ``train``, ``valid``, ``gold``,
    ``feature_map`` and ``manifest`` (and optionally ``events``) to paths.
    """
    inputs = input_files(raw)
    options = OPTIONS.resolve(options or {})
    valid_fraction, split_seed = options["splits"]["valid"], options["split_seed"]
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
    paths = output_paths(None, outputs)
    for path in inputs.values():
        check_header(path)  # every file, before any long pass

    lines, sha256, offsets = {}, {}, {}
    for key, path in inputs.items():  # train, then gold
        hasher = input_hasher(options["input_hash"])
        offsets[key] = sum(lines.values())
        lines[key] = count_lines(path, hasher=hasher)
        sha256[key] = hasher.hexdigest() if hasher is not None else None
    data_lines = {k: max(n - 1, 0) for k, n in lines.items()}
    planned = resolve_split_counts(data_lines["train"], {"train": 1.0 - valid_fraction, "valid": valid_fraction})
    planned["gold"] = data_lines["gold"]
    assigner = SplitAssigner({k: planned[k] for k in ("train", "valid")}, split_seed)
    source = inputs["train"].parent

    def empty_hint(name: str) -> str:
        if name == "gold":
            return f"{inputs['gold']} has {planned['gold']} data lines, {'all bad' if planned['gold'] else 'none'}"
        share = f"splits.valid={valid_fraction} of the {data_lines['train']} data lines of {inputs['train']}"
        return f"{share} gives it {planned[name]} rows{', all bad' if planned[name] else ''}"

    check_split_labels({k: (n, None) for k, n in planned.items()}, source=source, empty_hint=empty_hint)

    bad = BadRows.of(BAD_ROW_KINDS)
    readers = {
        key: AliExpressReader(
            path,
            max_categorical_value=options["max_categorical_value"],
            max_bad_rows=options["max_bad_rows"],
            block_bytes=block_bytes,
            row_id_offset=offsets[key],
            bad=bad,
        )
        for key, path in inputs.items()
    }
    staged = StagedOutputs(paths)
    concat = lambda blocks: ColumnBlock.concat(blocks, OUTPUT_SCHEMA)
    writers: dict[str, SplitWriter] = {}
    try:
        for name in SPLITS:
            writers[name] = SplitWriter(
                staged.temps[name], OUTPUT_SCHEMA, row_group_rows, compression, concat=concat, label=TASKS
            )
        total_bytes = sum(p.stat().st_size for p in inputs.values())
        with tqdm(total=total_bytes, unit="B", unit_scale=True, desc=dataset_name, disable=not progress) as bar:
            for key, reader in readers.items():
                reader.on_bytes = bar.update
                for block in reader:
                    if key == "train":
                        labels = assigner.labels_for(block.columns["row_id"] - 2)  # line 2 = data line 0
                        writers["train"].add(block.take(labels == 0))
                        writers["valid"].add(block.take(labels == 1))
                    else:
                        writers["gold"].add(block)
                if reader.data_lines != data_lines[key]:
                    raise RuntimeError(
                        f"{reader.path}: counted {data_lines[key]} data lines, then read {reader.data_lines}: "
                        "file changed?"
                    )
        assigner.finish()
        for writer in writers.values():
            writer.close()
        single_class = check_split_labels(
            {name: (w.rows, w.task_positives) for name, w in writers.items()},
            source=source,
            empty_hint=empty_hint,
        )
        written = {name: w.rows for name, w in writers.items()}
        read = sum(r.rows for r in readers.values())  # good rows the readers gave: each in exactly one split
        check_split_files({k: staged.temps[k] for k in SPLITS}, expected_total=read, expected_counts=written)
        _feature_map(dataset_name, readers).save(staged.temps["feature_map"])
        manifest = DataManifest(
            dataset=dataset_name,
            format="aliexpress",
            inputs=input_files_of(inputs, options["input_hash"], sha256, lines=lines, data_lines=data_lines, offsets=offsets),
            options={
                **options,
                "split_block_lines": SPLIT_BLOCK_LINES,
                "block_bytes": block_bytes,
                "row_group_rows": row_group_rows,
                "compression": compression,
            },
            rows=RowCounts(read=sum(data_lines.values()), written=sum(written.values()), bad=bad.total),
            bad_rows=dict(bad.counts),
            bad_row_examples=list(bad.examples),
            dropped={},
            splits={name: w.summary(planned[name]) for name, w in writers.items()},
            split_times=None,
            outputs=staged.describe((*SPLITS, "feature_map")),
            packages=package_versions(("numpy", "pyarrow")),
            details={
                "transforms": TRANSFORMS,
                "single_class_tasks": single_class,
                "numerical_missing": sum(r.numerical_missing for r in readers.values()),
                "conversion_without_click": sum(r.conversion_without_click for r in readers.values()),
                "extra_columns": {key: r.extra_columns for key, r in readers.items()},
            },
        )
        return staged.publish(manifest)
    except BaseException:
        staged.discard(w.writer for w in writers.values())
        raise


def _feature_map(dataset_name: str, readers: Mapping[str, AliExpressReader]) -> FeatureMap:
    """Tasks click and conversion, the 16 categorical fields (tables sized by the largest value seen in any
    split) and the 63 numericals, grouped by search for gAUC."""
    largest = np.max([r.categorical_max for r in readers.values()], axis=0)
    low = np.min([r.numerical_min for r in readers.values()], axis=0)
    high = np.max([r.numerical_max for r in readers.values()], axis=0)
    return FeatureMap(
        dataset=dataset_name,
        tasks=[Task(t) for t in TASKS],
        features=[Feature(c, "categorical", vocab_size=int(v) + 2) for c, v in zip(CATEGORICAL, largest)]
        + [Feature(c, "dense") for c in NUMERICAL],
        group_by=GROUP,
        extra={
            "source": SOURCE,
            "tasks": TASK_MEANING,
            "transforms": TRANSFORMS,
            "categorical_max_value": dict(zip(CATEGORICAL, largest.tolist())),
            "numerical_range": {c: [float(a), float(b)] for c, a, b in zip(NUMERICAL, low, high)},
            "columns_not_features": ["row_id"],
        },
    )


def input_files(raw: str | Path | Mapping[str, str | Path]) -> dict[str, Path]:
    """``raw`` (a raw directory or a split -> file mapping) -> the input files, train then gold; a missing
    file is a ``FileNotFoundError`` naming it."""
    if isinstance(raw, (str, Path)):
        files = {key: Path(raw) / name for key, name in SPLIT_FILES.items()}
    else:
        files = dict(raw)
        if set(files) != {"train", "gold"}:
            raise ValueError(f"files must map exactly train and gold to paths, got {files}")
    inputs = {key: Path(files[key]) for key in ("train", "gold")}
    for key, path in inputs.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (the {key} split of an aliexpress dataset)")
    return inputs


__all__ = ["SPLIT_FILES", "TASK_MEANING", "input_files", "preprocess_aliexpress"]
