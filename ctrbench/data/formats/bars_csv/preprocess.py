"""FuxiCTR / BARS split directories -> train / valid / gold parquet + feature_map.json + manifest.json, streaming.

The raw input is a directory holding ``train.csv``, optionally ``valid.csv``, and ``test.csv`` (the gold split),
or a mapping of ``train``, ``gold`` (and ``valid``) to files. The headers are checked first (every file must
hold the label and every feature column, in any order); the feature columns are those of ``features``, or,
when ``features.categorical`` is left out, every column of train.csv's header but the label, the numeric ones,
the sources of the derived ones and ``exclude``; ``features.derived`` adds hour of day / weekday / weekend fields
computed from a YYMMDDHH column (Avazu_x4's 24 fields). Then a newline count per file (which also hashes it) and the two reads of
``ctrbench.data.vocab_splits``: the train split's value counts, then the ids (vocabularies with ``min_count``,
out-of-vocabulary id 1) written to each split's parquet. Without valid.csv the valid split is a seeded, exact
``splits.valid`` fraction of train.csv's data lines (``SplitAssigner``). ``row_id = row_id_offset + physical
line``, the files numbered as if concatenated (train, valid, test). Everything is written under partial names and
renamed only at the end, after the splits were checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ctrbench.data.csv_header import read_header
from ctrbench.data.formats.bars_csv.options import OPTIONS
from ctrbench.data.formats.bars_csv.reader import BAD_ROW_KINDS, LAYOUT, BarsFormatError, BarsReader
from ctrbench.data.manifest import DataManifest, RowCounts
from ctrbench.data.outputs import COMPRESSION, ROW_GROUP_ROWS, StagedOutputs, output_paths
from ctrbench.data.raw_input import count_lines, input_files_of, input_hasher
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES
from ctrbench.data.splits import SPLIT_BLOCK_LINES, SPLITS, SplitAssigner, check_split_labels, resolve_split_counts
from ctrbench.data.vocab_splits import feature_map, write_vocab_splits
from ctrbench.provenance import package_versions

SOURCE = "bars_csv"
SPLIT_FILES = {"train": "train.csv", "valid": "valid.csv", "gold": "test.csv"}  # in a raw directory; valid optional


def input_files(raw: str | Path | Mapping[str, str | Path]) -> dict[str, Path]:
    """The input files by split (train, valid if there is one, gold); a missing one is a ``FileNotFoundError``."""
    if isinstance(raw, (str, Path)):
        files = {key: Path(raw) / name for key, name in SPLIT_FILES.items()}
        if not files["valid"].is_file():
            del files["valid"]
    else:
        files = {key: Path(path) for key, path in raw.items()}
        if not {"train", "gold"} <= set(files) <= set(SPLIT_FILES):
            raise ValueError(f"files must map train, gold and optionally valid to paths, got {dict(raw)}")
    files = {key: files[key] for key in SPLITS if key in files}
    for key, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (the {key} split of a bars_csv dataset)")
    return files


def resolve_features(train_header: list[str], options: Mapping) -> tuple[list[str], list[str]]:
    """(categorical columns, numeric columns); ``BarsFormatError`` when the label is among them or a derived
    field's name is taken by another feature."""
    label, numeric = options["label"], list(options["features"].get("numeric", []))
    derived = options["features"].get("derived", {})
    categorical = options["features"].get("categorical")
    if categorical is None:
        skip = {label, *numeric, *options["exclude"], *(spec["from"] for spec in derived.values())}
        categorical = [name for name in train_header if name not in skip]
    categorical = list(categorical)
    if label in categorical or label in numeric:
        raise BarsFormatError(f"the label {label!r} is also declared a feature")
    if both := sorted(set(categorical) & set(numeric)):
        raise BarsFormatError(f"columns {both} are declared both categorical and numeric")
    if taken := sorted(set(derived) & {label, *categorical, *numeric}):
        raise BarsFormatError(f"derived fields {taken} are also declared label or features")
    if not categorical and not numeric and not derived:
        raise BarsFormatError(f"no feature columns: train.csv's header holds only {train_header}")
    return categorical, numeric


def preprocess_bars_csv(
    raw: str | Path | Mapping[str, str | Path],
    *,
    outputs: Mapping[str, str | Path],
    dataset_name: str = "bars_csv",
    options: Mapping | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = COMPRESSION,
    progress: bool = True,
) -> dict:
    """Preprocess a BARS split directory; returns the manifest as written to ``outputs["manifest"]``."""
    inputs = input_files(raw)
    options = OPTIONS.resolve(options or {})
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
    paths = output_paths(None, outputs)
    label = options["label"]
    train_header = read_header(inputs["train"], [label], layout=LAYOUT, error=BarsFormatError)
    categorical, numeric = resolve_features(train_header, options)
    derived = options["features"].get("derived", {})
    sources = [spec["from"] for spec in derived.values()]
    for path in inputs.values():  # every file, before any long pass
        needed = list(dict.fromkeys([label, *categorical, *numeric, *sources]))
        read_header(path, needed, layout=LAYOUT, error=BarsFormatError)

    lines, sha256, offsets = {}, {}, {}
    for key, path in inputs.items():
        hasher = input_hasher(options["input_hash"])
        offsets[key] = sum(lines.values())
        lines[key] = count_lines(path, hasher=hasher)
        sha256[key] = hasher.hexdigest() if hasher is not None else None
    data_lines = {k: max(n - 1, 0) for k, n in lines.items()}
    valid_fraction = options["splits"]["valid"]
    if "valid" in inputs:
        planned = dict(data_lines)
    else:
        shares = {"train": 1.0 - valid_fraction, "valid": valid_fraction}
        planned = {**resolve_split_counts(data_lines["train"], shares), "gold": data_lines["gold"]}

    def empty_hint(name: str) -> str:
        if name != "valid" or "valid" in inputs:
            return f"{inputs[name]} has {planned[name]} data lines{', all bad' if planned[name] else ''}"
        return f"splits.valid={valid_fraction} of the {data_lines['train']} data lines of train.csv gives it {planned[name]}"

    source = inputs["train"].parent
    check_split_labels({k: (planned[k], None) for k in SPLITS}, source=source, empty_hint=empty_hint)
    readers: dict[str, BarsReader] = {}

    def read(bad, on_bytes):
        for key, path in inputs.items():
            if key == "train" and "valid" not in inputs:
                draws = SplitAssigner({"train": planned["train"], "valid": planned["valid"]}, options["split_seed"])
                assign = draws.labels_for
            else:
                split = np.int8(SPLITS.index(key))
                assign = lambda lines, split=split: np.full(len(lines), split, np.int8)
            readers[key] = BarsReader(
                path, label=label, categorical=categorical, numeric=numeric, derived=derived, assign=assign,
                row_id_offset=offsets[key], max_bad_rows=options["max_bad_rows"], block_bytes=block_bytes,
                on_bytes=on_bytes, bad=bad,
            )  # fmt: skip
            yield from readers[key]

    staged = StagedOutputs(paths)
    try:
        result = write_vocab_splits(
            read, staged=staged, label=label, categorical=[*categorical, *derived], numeric=numeric,
            min_count=options["min_count"], bad_kinds=BAD_ROW_KINDS,
            total_bytes=sum(p.stat().st_size for p in inputs.values()), source=source, empty_hint=empty_hint,
            row_group_rows=row_group_rows, compression=compression, desc=dataset_name, progress=progress,
        )  # fmt: skip
        extra = {
            "source": SOURCE,
            "min_count": options["min_count"],
            "valid_from": "valid.csv" if "valid" in inputs else f"a {valid_fraction} share of train.csv",
            "extra_columns": {key: r.extra_columns for key, r in readers.items()},
        }
        feature_map(dataset_name, label, result.vocabularies, numeric, extra).save(staged.temps["feature_map"])
        manifest = DataManifest(
            dataset=dataset_name,
            format=SOURCE,
            inputs=input_files_of(inputs, options["input_hash"], sha256, lines=lines, data_lines=data_lines, offsets=offsets),
            options={
                **options,
                "split_block_lines": SPLIT_BLOCK_LINES,
                "block_bytes": block_bytes,
                "row_group_rows": row_group_rows,
                "compression": compression,
            },
            rows=RowCounts(read=sum(data_lines.values()), written=result.rows, bad=result.bad.total),
            bad_rows=dict(result.bad.counts),
            bad_row_examples=list(result.bad.examples),
            dropped={},
            splits={k: w.summary(planned[k]) for k, w in result.writers.items()},
            split_times=None,
            outputs=staged.describe((*SPLITS, "feature_map")),
            packages=package_versions(("numpy", "pyarrow")),
            details={
                "features": {"categorical": categorical, "numeric": numeric, "derived": derived},
                "vocabularies": {k: v.facts() for k, v in result.vocabularies.items()},
                "numeric_missing": sum(r.numeric_missing for r in readers.values()),
            },
        )
        return staged.publish(manifest)
    except BaseException:
        staged.discard()
        raise


__all__ = ["SPLIT_FILES", "input_files", "preprocess_bars_csv", "resolve_features"]
